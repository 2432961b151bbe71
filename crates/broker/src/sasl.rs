//! SASL authentication on `SASL_PLAINTEXT` and `SASL_SSL` listeners (KIP-43, KIP-152).
//!
//! ```text
//!  connection ─ frame ─► SaslSession::intercept (until authenticated)
//!     ApiVersions ──────────────► Pass: the router answers it
//!     SaslHandshake v1 ─────────► Reply: the mechanism chosen, or UNSUPPORTED_SASL_MECHANISM
//!     SaslAuthenticate v0-v2 ───► Reply NONE: authenticated as User:<name>
//!                                 ReplyAndClose SASL_AUTHENTICATION_FAILED
//!     anything else ────────────► Close (Kafka closes a connection that skips SASL)
//! ```
//!
//! The mechanisms served:
//! - PLAIN (RFC 4616): the users and passwords are those of the listener's JAAS config, as
//!   Kafka's `PlainLoginModule` takes them (`listener.name.<listener>.plain.sasl.jaas.config`,
//!   entries `user_<name>="<password>"`);
//! - SCRAM-SHA-256 and SCRAM-SHA-512 (`scram.rs`): two SaslAuthenticate rounds, against the
//!   credentials in the metadata log ([`ScramCredentials`]).
//!
//! The session is I/O-free: it takes a frame and says what the connection does with it.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use gregor_protocol::error::ErrorCode;
use gregor_protocol::messages::{
    ApiKey, RequestHeader, SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest,
    SaslHandshakeResponse,
};
use gregor_protocol::protocol::{Decodable, StrBytes};

use crate::request::ProtocolError;
use crate::scram::{ScramCredential, ScramExchange, ScramMechanism};

/// The mechanisms gregor serves.
pub const SERVED_MECHANISMS: &[&str] = &["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"];

/// Where SCRAM credentials come from (the broker's metadata image).
pub trait ScramCredentials: Send + Sync {
    fn credential(&self, user: &str, mechanism: ScramMechanism) -> Option<ScramCredential>;
}

/// Kafka's `PlainLoginModule`, the one JAAS module PLAIN takes.
const PLAIN_LOGIN_MODULE: &str = "org.apache.kafka.common.security.plain.PlainLoginModule";

/// A SASL setting that cannot be served.
#[derive(Debug, thiserror::Error)]
#[error("{key}: {reason}")]
pub struct SaslError {
    pub key: String,
    pub reason: String,
}

fn error(key: &str, reason: impl Into<String>) -> SaslError {
    SaslError {
        key: key.to_string(),
        reason: reason.into(),
    }
}

/// One SASL listener's settings: its mechanisms and, for PLAIN, its users.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaslSettings {
    /// `sasl.enabled.mechanisms`.
    pub mechanisms: Vec<String>,
    /// PLAIN's users and passwords.
    plain_users: BTreeMap<String, String>,
}

impl SaslSettings {
    /// Reads one listener's keys (its `listener.name.<name>.` keys already folded over the
    /// global ones): `sasl.enabled.mechanisms` (gregor's default: PLAIN) and
    /// `plain.sasl.jaas.config` (or `sasl.jaas.config`).
    pub fn from_props(props: &BTreeMap<String, String>) -> Result<SaslSettings, SaslError> {
        let mechanisms: Vec<String> = props
            .get("sasl.enabled.mechanisms")
            .map(|v| {
                v.split(',')
                    .map(|m| m.trim().to_ascii_uppercase())
                    .filter(|m| !m.is_empty())
                    .collect()
            })
            .unwrap_or_else(|| vec!["PLAIN".to_string()]);
        if mechanisms.is_empty() {
            return Err(error("sasl.enabled.mechanisms", "no mechanism enabled"));
        }
        if let Some(m) = mechanisms
            .iter()
            .find(|m| !SERVED_MECHANISMS.contains(&m.as_str()))
        {
            return Err(error(
                "sasl.enabled.mechanisms",
                format!(
                    "{m} is not served by gregor yet; PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512 are"
                ),
            ));
        }
        if !mechanisms.iter().any(|m| m == "PLAIN") {
            // SCRAM's users are in the metadata log: no JAAS config to read.
            return Ok(SaslSettings {
                mechanisms,
                plain_users: BTreeMap::new(),
            });
        }
        let jaas = props
            .get("plain.sasl.jaas.config")
            .or_else(|| props.get("sasl.jaas.config"));
        let Some(jaas) = jaas else {
            return Err(error(
                "plain.sasl.jaas.config",
                "PLAIN needs its users: set listener.name.<listener>.plain.sasl.jaas.config to \
                 PlainLoginModule required user_<name>=\"<password>\" ...;",
            ));
        };
        let (module, options) =
            parse_jaas(jaas).map_err(|reason| error("plain.sasl.jaas.config", reason))?;
        if module != PLAIN_LOGIN_MODULE {
            return Err(error(
                "plain.sasl.jaas.config",
                format!("{module}: PLAIN takes {PLAIN_LOGIN_MODULE}"),
            ));
        }
        let plain_users: BTreeMap<String, String> = options
            .into_iter()
            .filter_map(|(k, v)| k.strip_prefix("user_").map(|u| (u.to_string(), v)))
            .collect();
        if plain_users.is_empty() {
            return Err(error(
                "plain.sasl.jaas.config",
                "no user_<name>=\"<password>\" entry: nobody could log in",
            ));
        }
        Ok(SaslSettings {
            mechanisms,
            plain_users,
        })
    }
}

/// Parses a JAAS config entry, `<LoginModule> <flag> key="value" ... ;`: the module and the
/// options.
pub(crate) fn parse_jaas(text: &str) -> Result<(String, Vec<(String, String)>), String> {
    let text = text.trim();
    let text = text
        .strip_suffix(';')
        .ok_or("a JAAS config ends with ';'")?;
    let mut rest = text.trim_start();
    let mut word = || -> Option<String> {
        let end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        let w = rest[..end].to_string();
        rest = rest[end..].trim_start();
        (!w.is_empty()).then_some(w)
    };
    let module = word().ok_or("no login module")?;
    let flag = word().ok_or("no control flag after the login module")?;
    if !matches!(
        flag.as_str(),
        "required" | "requisite" | "sufficient" | "optional"
    ) {
        return Err(format!(
            "{flag}: the control flag is required, requisite, sufficient or optional"
        ));
    }
    let mut options = Vec::new();
    while !rest.is_empty() {
        let eq = rest.find('=').ok_or("an option without '='")?;
        let key = rest[..eq].trim().to_string();
        if key.is_empty() || key.contains(char::is_whitespace) {
            return Err(format!("bad option name {key:?}"));
        }
        let after = rest[eq + 1..].trim_start();
        let (value, tail) = if let Some(quoted) = after.strip_prefix('"') {
            let close = quoted.find('"').ok_or("an unclosed '\"'")?;
            (quoted[..close].to_string(), &quoted[close + 1..])
        } else {
            let end = after.find(char::is_whitespace).unwrap_or(after.len());
            (after[..end].to_string(), &after[end..])
        };
        options.push((key, value));
        rest = tail.trim_start();
    }
    Ok((module, options))
}

/// What the connection does with a frame.
#[derive(Debug, PartialEq, Eq)]
pub enum Intercept {
    /// Route it as usual (authenticated, or ApiVersions).
    Pass,
    /// Send this response (size-prefixed) and go on reading.
    Reply(Bytes),
    /// Send this response, then close: authentication failed.
    ReplyAndClose(Bytes, String),
    /// Close without an answer: a request before authentication.
    Close(String),
}

/// Where a connection's authentication stands.
#[derive(Debug, Clone)]
enum State {
    /// Waiting for SaslHandshake.
    Handshake,
    /// PLAIN was agreed; waiting for SaslAuthenticate.
    Plain,
    /// SCRAM was agreed; waiting for the client's first message.
    ScramFirst(ScramMechanism),
    /// Waiting for the client's final message.
    ScramFinal(Box<ScramExchange>),
    /// Authenticated as this user.
    Done(String),
}

/// One connection's SASL exchange.
pub struct SaslSession {
    settings: Arc<SaslSettings>,
    scram: Arc<dyn ScramCredentials>,
    state: State,
    /// The handshake was v0: the tokens come as bare size-prefixed frames.
    raw_tokens: bool,
}

impl std::fmt::Debug for SaslSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SaslSession")
            .field("mechanisms", &self.settings.mechanisms)
            .field("user", &self.user())
            .finish_non_exhaustive()
    }
}

impl SaslSession {
    pub fn new(settings: Arc<SaslSettings>, scram: Arc<dyn ScramCredentials>) -> Self {
        SaslSession {
            settings,
            scram,
            state: State::Handshake,
            raw_tokens: false,
        }
    }

    /// The authenticated user, once there is one.
    pub fn user(&self) -> Option<&str> {
        match &self.state {
            State::Done(user) => Some(user),
            _ => None,
        }
    }

    /// Decides what becomes of `frame` (a request without its size prefix).
    pub fn intercept(&mut self, frame: &Bytes) -> Result<Intercept, ProtocolError> {
        if self.raw_tokens && !matches!(self.state, State::Handshake | State::Done(_)) {
            return Ok(self.raw_step(frame));
        }
        if matches!(self.state, State::Done(_)) || frame.len() < 8 {
            // Too short: the router refuses it as it refuses any other.
            return Ok(Intercept::Pass);
        }
        let key = i16::from_be_bytes([frame[0], frame[1]]);
        let version = i16::from_be_bytes([frame[2], frame[3]]);
        let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
        let api = ApiKey::try_from(key).ok();
        match api {
            Some(ApiKey::ApiVersions) => Ok(Intercept::Pass),
            Some(api @ (ApiKey::SaslHandshake | ApiKey::SaslAuthenticate)) => {
                let Some((min, max)) = crate::handlers::served_range(api) else {
                    return Ok(Intercept::Pass);
                };
                if version < min || version > max {
                    // The router refuses the version (and closes, logging it).
                    return Ok(Intercept::Pass);
                }
                let mut body = frame.clone();
                let decode_error = |e: anyhow::Error| ProtocolError::Decode {
                    api,
                    version,
                    reason: e.to_string(),
                };
                RequestHeader::decode(&mut body, api.request_header_version(version))
                    .map_err(decode_error)?;
                if api == ApiKey::SaslHandshake {
                    let req =
                        SaslHandshakeRequest::decode(&mut body, version).map_err(decode_error)?;
                    Ok(self.handshake(correlation_id, version, &req)?)
                } else {
                    let req = SaslAuthenticateRequest::decode(&mut body, version)
                        .map_err(decode_error)?;
                    Ok(self.authenticate(correlation_id, version, &req)?)
                }
            }
            _ => Ok(Intercept::Close(format!(
                "{} request before SASL authentication",
                api.map_or_else(|| format!("API {key}"), |a| format!("{a:?}"))
            ))),
        }
    }

    fn handshake(
        &mut self,
        correlation_id: i32,
        version: i16,
        req: &SaslHandshakeRequest,
    ) -> Result<Intercept, ProtocolError> {
        let mechanisms: Vec<StrBytes> = self
            .settings
            .mechanisms
            .iter()
            .map(|m| StrBytes::from_string(m.clone()))
            .collect();
        let mut resp = SaslHandshakeResponse::default().with_mechanisms(mechanisms);
        if !matches!(self.state, State::Handshake) {
            resp = resp.with_error_code(ErrorCode::ILLEGAL_SASL_STATE.code());
            let bytes = crate::request::encode_with(correlation_id, version, &resp)?;
            return Ok(Intercept::ReplyAndClose(
                bytes,
                "a second SaslHandshake".to_string(),
            ));
        }
        let wanted = req.mechanism.to_ascii_uppercase();
        if !self.settings.mechanisms.contains(&wanted) {
            // Kafka answers the enabled mechanisms and closes.
            resp = resp.with_error_code(ErrorCode::UNSUPPORTED_SASL_MECHANISM.code());
            let bytes = crate::request::encode_with(correlation_id, version, &resp)?;
            return Ok(Intercept::ReplyAndClose(
                bytes,
                format!("SASL mechanism {} is not enabled", &*req.mechanism),
            ));
        }
        self.raw_tokens = version == 0;
        self.state = match ScramMechanism::from_mechanism_name(&wanted) {
            Some(m) => State::ScramFirst(m),
            None => State::Plain,
        };
        Ok(Intercept::Reply(crate::request::encode_with(
            correlation_id,
            version,
            &resp,
        )?))
    }

    fn authenticate(
        &mut self,
        correlation_id: i32,
        version: i16,
        req: &SaslAuthenticateRequest,
    ) -> Result<Intercept, ProtocolError> {
        let fail = |code: ErrorCode, message: &str| -> Result<Intercept, ProtocolError> {
            let resp = SaslAuthenticateResponse::default()
                .with_error_code(code.code())
                .with_error_message(Some(StrBytes::from_string(message.to_string())));
            let bytes = crate::request::encode_with(correlation_id, version, &resp)?;
            Ok(Intercept::ReplyAndClose(bytes, message.to_string()))
        };
        match self.step(&req.auth_bytes) {
            Ok(auth_bytes) => {
                let resp =
                    SaslAuthenticateResponse::default().with_auth_bytes(Bytes::from(auth_bytes));
                Ok(Intercept::Reply(crate::request::encode_with(
                    correlation_id,
                    version,
                    &resp,
                )?))
            }
            Err((code, message)) => fail(code, &message),
        }
    }

    /// One round of the agreed mechanism: the server's token, or the error and its message.
    fn step(&mut self, auth_bytes: &[u8]) -> Result<Vec<u8>, (ErrorCode, String)> {
        let failed = |message: &str| (ErrorCode::SASL_AUTHENTICATION_FAILED, message.to_string());
        match std::mem::replace(&mut self.state, State::Handshake) {
            State::Plain => match plain_user(auth_bytes, &self.settings.plain_users) {
                Some(user) => {
                    self.state = State::Done(user);
                    Ok(Vec::new())
                }
                None => Err(failed(
                    "Authentication failed: Invalid username or password",
                )),
            },
            State::ScramFirst(m) => {
                let lookup = |user: &str| self.scram.credential(user, m);
                match ScramExchange::start(m, auth_bytes, lookup) {
                    Ok((exchange, server_first)) => {
                        self.state = State::ScramFinal(Box::new(exchange));
                        Ok(server_first)
                    }
                    Err(e) => Err(failed(&e.0)),
                }
            }
            State::ScramFinal(exchange) => match exchange.finish(auth_bytes) {
                Ok((user, server_final)) => {
                    self.state = State::Done(user);
                    Ok(server_final)
                }
                Err(e) => Err(failed(&e.0)),
            },
            State::Handshake | State::Done(_) => Err((
                ErrorCode::ILLEGAL_SASL_STATE,
                "Unexpected SaslAuthenticate request: no SaslHandshake before it".to_string(),
            )),
        }
    }

    /// A raw SASL token after a SaslHandshake v0 (KIP-43's first form, before
    /// SaslAuthenticate): the server's token goes back size-prefixed, without a Kafka header; a
    /// failure closes the connection unanswered, as Kafka does.
    fn raw_step(&mut self, token: &[u8]) -> Intercept {
        match self.step(token) {
            Ok(reply) => {
                let mut out = Vec::with_capacity(4 + reply.len());
                out.extend_from_slice(&(reply.len() as u32).to_be_bytes());
                out.extend_from_slice(&reply);
                Intercept::Reply(Bytes::from(out))
            }
            Err((_, message)) => Intercept::Close(message),
        }
    }
}

/// PLAIN's message, `[authzid] NUL authcid NUL passwd` (RFC 4616): the user when the password
/// is theirs (and no other identity is asked for, as Kafka's PlainSaslServer requires).
fn plain_user(message: &[u8], users: &BTreeMap<String, String>) -> Option<String> {
    let text = std::str::from_utf8(message).ok()?;
    let mut parts = text.split('\0');
    let (authzid, authcid, password) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() || authcid.is_empty() {
        return None;
    }
    if !authzid.is_empty() && authzid != authcid {
        return None;
    }
    let expected = users.get(authcid)?;
    // Compared in constant time for equal lengths: no timing hint of a password's prefix.
    let same = expected.len() == password.len()
        && expected
            .bytes()
            .zip(password.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0;
    same.then(|| authcid.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use gregor_protocol::protocol::{Encodable, HeaderVersion};

    const JAAS: &str = r#"org.apache.kafka.common.security.plain.PlainLoginModule required
        username="admin" password="admin-secret"
        user_admin="admin-secret" user_alice="alice-secret";"#;

    fn settings() -> Arc<SaslSettings> {
        let props = [
            ("plain.sasl.jaas.config".to_string(), JAAS.to_string()),
            (
                "sasl.enabled.mechanisms".to_string(),
                "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512".to_string(),
            ),
        ]
        .into_iter()
        .collect();
        Arc::new(SaslSettings::from_props(&props).expect("settings"))
    }

    /// SCRAM credentials of one user, "carol" (password "carol-secret"), both mechanisms.
    struct Carol;

    impl ScramCredentials for Carol {
        fn credential(&self, user: &str, m: ScramMechanism) -> Option<ScramCredential> {
            (user == "carol").then(|| crate::scram::tests::credential(m, "carol-secret"))
        }
    }

    fn session() -> SaslSession {
        SaslSession::new(settings(), Arc::new(Carol))
    }

    /// The auth bytes of a SaslAuthenticate v2 reply.
    fn auth_bytes(reply: &Bytes) -> Vec<u8> {
        use gregor_protocol::protocol::Decodable;
        let mut body = reply.slice(9..); // size, correlation id, tagged fields
        let resp = SaslAuthenticateResponse::decode(&mut body, 2).expect("decodes");
        assert_eq!(resp.error_code, 0, "{:?}", resp.error_message);
        resp.auth_bytes.to_vec()
    }

    /// After a SaslHandshake v0 the tokens are bare frames and so are the answers; a bad token
    /// closes the connection unanswered.
    #[test]
    fn a_v0_handshake_takes_bare_tokens() {
        let v0 = |mechanism: &str| {
            frame(
                ApiKey::SaslHandshake,
                0,
                &SaslHandshakeRequest::default()
                    .with_mechanism(StrBytes::from_string(mechanism.into())),
            )
        };
        let mut s = session();
        assert!(matches!(
            s.intercept(&v0("PLAIN")).expect("ok"),
            Intercept::Reply(_)
        ));
        let token = Bytes::from_static(b"\0alice\0alice-secret");
        assert_eq!(
            s.intercept(&token).expect("ok"),
            Intercept::Reply(Bytes::from_static(&[0, 0, 0, 0])),
            "PLAIN's empty answer, size-prefixed"
        );
        assert_eq!(s.user(), Some("alice"));

        let mut s = session();
        s.intercept(&v0("PLAIN")).expect("ok");
        assert!(matches!(
            s.intercept(&Bytes::from_static(b"\0alice\0nope"))
                .expect("ok"),
            Intercept::Close(_)
        ));
        assert_eq!(s.user(), None);

        // SCRAM in two bare rounds.
        let m = ScramMechanism::Sha512;
        let mut s = session();
        s.intercept(&v0("SCRAM-SHA-512")).expect("ok");
        let first = "n=carol,r=abc";
        let Intercept::Reply(r) = s
            .intercept(&Bytes::from(format!("n,,{first}")))
            .expect("ok")
        else {
            panic!("server-first");
        };
        let server_first = String::from_utf8(r[4..].to_vec()).expect("utf8");
        let (client_final, _) =
            crate::scram::tests::client_final(m, "carol-secret", first, &server_first);
        assert!(matches!(
            s.intercept(&Bytes::from(client_final)).expect("ok"),
            Intercept::Reply(_)
        ));
        assert_eq!(s.user(), Some("carol"));
    }

    #[test]
    fn scram_authenticates_in_two_rounds_with_either_hash() {
        for (name, m) in [
            ("SCRAM-SHA-256", ScramMechanism::Sha256),
            ("SCRAM-SHA-512", ScramMechanism::Sha512),
        ] {
            for (password, ok) in [("carol-secret", true), ("guess", false)] {
                let mut s = session();
                assert!(matches!(
                    s.intercept(&handshake(name)).expect("ok"),
                    Intercept::Reply(_)
                ));
                let first = "n=carol,r=nonce123";
                let Intercept::Reply(r) = s
                    .intercept(&authenticate(format!("n,,{first}").as_bytes(), 2))
                    .expect("ok")
                else {
                    panic!("server-first");
                };
                let server_first = String::from_utf8(auth_bytes(&r)).expect("utf8");
                let (client_final, expected) =
                    crate::scram::tests::client_final(m, password, first, &server_first);
                let got = s
                    .intercept(&authenticate(client_final.as_bytes(), 2))
                    .expect("ok");
                if ok {
                    let Intercept::Reply(r) = got else {
                        panic!("{got:?}");
                    };
                    use base64::Engine;
                    let want = format!(
                        "v={}",
                        base64::engine::general_purpose::STANDARD.encode(expected)
                    );
                    assert_eq!(auth_bytes(&r), want.into_bytes());
                    assert_eq!(s.user(), Some("carol"));
                } else {
                    let Intercept::ReplyAndClose(r, _) = got else {
                        panic!("{got:?}");
                    };
                    assert_eq!(
                        error_code(&r, true),
                        ErrorCode::SASL_AUTHENTICATION_FAILED.code()
                    );
                    assert_eq!(s.user(), None);
                }
            }
        }
        // An unknown user fails at the first round.
        let mut s = session();
        s.intercept(&handshake("SCRAM-SHA-256")).expect("ok");
        assert!(matches!(
            s.intercept(&authenticate(b"n,,n=mallory,r=x", 2))
                .expect("ok"),
            Intercept::ReplyAndClose(..)
        ));
    }

    /// A request frame (no size prefix) of `api` at `version`.
    fn frame<R: Encodable + HeaderVersion>(api: ApiKey, version: i16, body: &R) -> Bytes {
        let header = RequestHeader::default()
            .with_request_api_key(api as i16)
            .with_request_api_version(version)
            .with_correlation_id(9)
            .with_client_id(Some(StrBytes::from_static_str("t")));
        let mut buf = BytesMut::new();
        header
            .encode(&mut buf, api.request_header_version(version))
            .expect("header");
        body.encode(&mut buf, version).expect("body");
        buf.freeze()
    }

    fn handshake(mechanism: &str) -> Bytes {
        frame(
            ApiKey::SaslHandshake,
            1,
            &SaslHandshakeRequest::default()
                .with_mechanism(StrBytes::from_string(mechanism.into())),
        )
    }

    fn authenticate(message: &[u8], version: i16) -> Bytes {
        frame(
            ApiKey::SaslAuthenticate,
            version,
            &SaslAuthenticateRequest::default().with_auth_bytes(Bytes::copy_from_slice(message)),
        )
    }

    /// The error code of an encoded response (after size, correlation id and, for flexible
    /// versions, the header's tagged fields).
    fn error_code(reply: &Bytes, flexible: bool) -> i16 {
        let at = if flexible { 9 } else { 8 };
        i16::from_be_bytes([reply[at], reply[at + 1]])
    }

    #[test]
    fn jaas_configs_parse_as_kafka_writes_them() {
        let (module, options) = parse_jaas(JAAS).expect("parses");
        assert_eq!(module, PLAIN_LOGIN_MODULE);
        assert_eq!(options.len(), 4);
        assert_eq!(options[2], ("user_admin".into(), "admin-secret".into()));
        assert!(parse_jaas("PlainLoginModule required user_a=\"b\"").is_err());
        assert!(parse_jaas("PlainLoginModule always user_a=\"b\";").is_err());
        assert!(parse_jaas("PlainLoginModule required user_a=\"b;").is_err());
        let props = |jaas: &str| -> BTreeMap<String, String> {
            [("plain.sasl.jaas.config".to_string(), jaas.to_string())]
                .into_iter()
                .collect()
        };
        let e = SaslSettings::from_props(&props(
            "org.apache.kafka.common.security.scram.ScramLoginModule required;",
        ))
        .expect_err("not PLAIN's module");
        assert!(e.reason.contains("PlainLoginModule"), "{e}");
        let e = SaslSettings::from_props(&props(
            "org.apache.kafka.common.security.plain.PlainLoginModule required username=\"a\";",
        ))
        .expect_err("no users");
        assert!(e.reason.contains("user_"), "{e}");
        // SCRAM alone needs no JAAS config: its users are in the metadata log.
        let scram_only: BTreeMap<String, String> = [(
            "sasl.enabled.mechanisms".to_string(),
            "SCRAM-SHA-512".to_string(),
        )]
        .into_iter()
        .collect();
        assert!(SaslSettings::from_props(&scram_only).is_ok());
        let mut p = props(JAAS);
        p.insert("sasl.enabled.mechanisms".into(), "GSSAPI".into());
        let e = SaslSettings::from_props(&p).expect_err("GSSAPI");
        assert!(e.reason.contains("GSSAPI"), "{e}");
        assert!(SaslSettings::from_props(&BTreeMap::new()).is_err());
    }

    #[test]
    fn plain_authenticates_the_jaas_users_only() {
        let users = settings().plain_users.clone();
        assert_eq!(
            plain_user(b"\0alice\0alice-secret", &users).as_deref(),
            Some("alice")
        );
        assert_eq!(
            plain_user(b"alice\0alice\0alice-secret", &users).as_deref(),
            Some("alice")
        );
        for bad in [
            &b"\0alice\0admin-secret"[..],
            b"\0alice\0alice-secre",
            b"\0alice\0alice-secrets",
            b"\0mallory\0x",
            b"admin\0alice\0alice-secret",
            b"\0alice",
            b"\0\0",
            b"\0alice\0alice-secret\0more",
            &[0xff, 0, 0x61, 0, 0x62],
        ] {
            assert_eq!(plain_user(bad, &users), None, "{bad:?}");
        }
    }

    #[test]
    fn a_session_authenticates_after_the_handshake_and_then_passes_requests_on() {
        let mut s = session();
        let api_versions = frame(
            ApiKey::ApiVersions,
            3,
            &gregor_protocol::messages::ApiVersionsRequest::default(),
        );
        assert_eq!(s.intercept(&api_versions).expect("ok"), Intercept::Pass);
        let Intercept::Reply(r) = s.intercept(&handshake("PLAIN")).expect("ok") else {
            panic!("the handshake is answered");
        };
        assert_eq!(error_code(&r, false), 0);
        assert_eq!(s.user(), None);
        let Intercept::Reply(r) = s
            .intercept(&authenticate(b"\0alice\0alice-secret", 2))
            .expect("ok")
        else {
            panic!("authenticated");
        };
        assert_eq!(error_code(&r, true), 0);
        assert_eq!(s.user(), Some("alice"));
        let metadata = frame(
            ApiKey::Metadata,
            12,
            &gregor_protocol::messages::MetadataRequest::default(),
        );
        assert_eq!(s.intercept(&metadata).expect("ok"), Intercept::Pass);
    }

    #[test]
    fn a_session_closes_on_a_bad_password_a_skipped_step_or_an_early_request() {
        let mut s = session();
        s.intercept(&handshake("PLAIN")).expect("ok");
        match s
            .intercept(&authenticate(b"\0alice\0guess", 1))
            .expect("ok")
        {
            Intercept::ReplyAndClose(r, _) => assert_eq!(
                error_code(&r, false),
                ErrorCode::SASL_AUTHENTICATION_FAILED.code()
            ),
            other => panic!("{other:?}"),
        }
        assert_eq!(s.user(), None);

        let props = [("plain.sasl.jaas.config".to_string(), JAAS.to_string())]
            .into_iter()
            .collect();
        let plain_only = Arc::new(SaslSettings::from_props(&props).expect("settings"));
        let mut s = SaslSession::new(plain_only, Arc::new(Carol));
        match s.intercept(&handshake("SCRAM-SHA-256")).expect("ok") {
            Intercept::ReplyAndClose(r, _) => assert_eq!(
                error_code(&r, false),
                ErrorCode::UNSUPPORTED_SASL_MECHANISM.code()
            ),
            other => panic!("{other:?}"),
        }

        let mut s = session();
        match s
            .intercept(&authenticate(b"\0alice\0alice-secret", 0))
            .expect("ok")
        {
            Intercept::ReplyAndClose(r, _) => {
                assert_eq!(error_code(&r, false), ErrorCode::ILLEGAL_SASL_STATE.code())
            }
            other => panic!("{other:?}"),
        }

        let mut s = session();
        let metadata = frame(
            ApiKey::Metadata,
            12,
            &gregor_protocol::messages::MetadataRequest::default(),
        );
        assert!(matches!(
            s.intercept(&metadata).expect("ok"),
            Intercept::Close(_)
        ));
        // A frame whose body does not decode is a protocol error, as anywhere else.
        let mut s = session();
        let truncated = handshake("PLAIN").slice(..12);
        assert!(s.intercept(&truncated).is_err());
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 300, ..Default::default() })]

        /// Whatever a client sends before and during authentication, the session answers,
        /// closes or passes it on: it never panics, and arbitrary bytes never authenticate.
        #[test]
        fn arbitrary_frames_never_panic_nor_authenticate(
            frames in proptest::collection::vec(proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200), 1..6),
            mechanism in 0usize..4,
            raw in proptest::prelude::any::<bool>(),
        ) {
            let mut s = session();
            let names = ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "GSSAPI"];
            let hs = frame(
                ApiKey::SaslHandshake,
                if raw { 0 } else { 1 },
                &SaslHandshakeRequest::default()
                    .with_mechanism(StrBytes::from_static_str(names[mechanism])),
            );
            let _ = s.intercept(&hs);
            for f in frames {
                let f = Bytes::from(f);
                let _ = s.intercept(&f);
                let _ = s.intercept(&authenticate(&f, 2));
            }
            proptest::prop_assert_eq!(s.user(), None);
        }

        /// SCRAM messages and certificates from a peer are parsed without panicking.
        #[test]
        fn scram_and_certificate_parsers_take_any_bytes(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
            for m in [ScramMechanism::Sha256, ScramMechanism::Sha512] {
                let cred = crate::scram::tests::credential(m, "p");
                if let Ok((x, _)) = ScramExchange::start(m, &bytes, |_| Some(cred.clone())) {
                    proptest::prop_assert!(x.finish(&bytes).is_err());
                }
            }
            let _ = crate::tls::certificate_principal(&bytes);
        }
    }
}
