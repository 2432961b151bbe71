//! SASL authentication on `SASL_PLAINTEXT` and `SASL_SSL` listeners (KIP-43, KIP-152), and
//! re-authentication of a live connection (KIP-368).
//!
//! ```text
//!  connection ─ frame ─► SaslSession::intercept(frame, now)
//!   before authentication:
//!     ApiVersions ──────────────► Pass: the router answers it
//!     SaslHandshake v0-v1 ──────► Reply: the mechanism chosen, or UNSUPPORTED_SASL_MECHANISM
//!     SaslAuthenticate v0-v2 ───► Authenticated: User:<name>, session_lifetime_ms (v1+)
//!                                 ReplyAndClose SASL_AUTHENTICATION_FAILED
//!     anything else ────────────► Close (Kafka closes a connection that skips SASL)
//!   authenticated:
//!     SaslHandshake, session with a lifetime, none begun in the last second
//!                   ────────────► re-authentication: the same exchange again, same mechanism,
//!                                 same user, else closed; a new lifetime from its end
//!     any request after the session expired
//!                   ────────────► Expired: closed at once, replies not yet written dropped
//!     anything else ────────────► Pass
//! ```
//!
//! The mechanisms served:
//! - PLAIN (RFC 4616): the users and passwords are those of the listener's JAAS config, as
//!   Kafka's `PlainLoginModule` takes them (`listener.name.<listener>.plain.sasl.jaas.config`,
//!   entries `user_<name>="<password>"`);
//! - SCRAM-SHA-256 and SCRAM-SHA-512 (`scram.rs`): two SaslAuthenticate rounds, against the
//!   credentials in the metadata log ([`ScramCredentials`]), looked up at every login and
//!   re-authentication, so a deleted or changed credential stops a live connection at its next
//!   re-authentication.
//!
//! Re-authentication follows Kafka's `SaslServerAuthenticator` and `KafkaChannel`: with
//! `connections.max.reauth.ms` > 0 for the mechanism (per listener and mechanism as
//! `listener.name.<l>.<mechanism>.connections.max.reauth.ms`), a session lasts that long from
//! the end of its (re-)authentication and SaslAuthenticate v1+ tells the client so. The
//! session expires whether or not the client was told (v0 clients cannot re-authenticate and
//! are closed on their first request after it). A SaslHandshake on an authenticated connection
//! begins a re-authentication only when the session has a lifetime and the last one began at
//! least a second ago; otherwise the router answers it ILLEGAL_SASL_STATE. Any other request
//! during a re-authentication closes the connection, as Kafka's authenticator does.
//!
//! The session is I/O-free: it takes a frame and the time, and says what the connection does
//! with it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

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
pub const SERVED_MECHANISMS: &[&str] = &["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"];

/// Where SCRAM credentials come from (the broker's metadata image).
pub trait ScramCredentials: Send + Sync {
    fn credential(&self, user: &str, mechanism: ScramMechanism) -> Option<ScramCredential>;

    /// A delegation token's SCRAM credential (KIP-48: a login with `tokenauth=true`, the token
    /// id as user): `None` where tokens are off, or the token is unknown or expired.
    fn token_credential(
        &self,
        _token_id: &str,
        _mechanism: ScramMechanism,
    ) -> Option<TokenCredential> {
        None
    }
}

/// What a delegation token's login needs (`crate::delegation_tokens`).
#[derive(Debug, Clone)]
pub struct TokenCredential {
    /// Derived from the token's HMAC (base64), its password.
    pub credential: ScramCredential,
    /// The owner's user name: the connection's principal once authenticated.
    pub owner: String,
    /// Milliseconds until the token expires: the session ends then at the latest (Kafka's
    /// `CREDENTIAL_LIFETIME_MS` negotiated property).
    pub remaining_ms: u64,
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

/// The broker key of KIP-368's session lifetime.
pub const CONNECTIONS_MAX_REAUTH_MS: &str = "connections.max.reauth.ms";

/// Kafka re-authenticates a connection at most once a second (`KafkaChannel`): a SaslHandshake
/// sooner after the last re-authentication began is answered as outside a SASL exchange.
const MIN_REAUTH_INTERVAL: Duration = Duration::from_secs(1);

/// A listener-level form of [`CONNECTIONS_MAX_REAUTH_MS`], as Kafka reads it under
/// `listener.name.<listener>.`: the key itself, or prefixed by a mechanism in lower case
/// (`scram-sha-256.connections.max.reauth.ms`).
pub fn is_reauth_key(key: &str) -> bool {
    key == CONNECTIONS_MAX_REAUTH_MS
        || key
            .strip_suffix(".connections.max.reauth.ms")
            .is_some_and(|m| !m.is_empty() && !m.contains('.'))
}

/// One SASL listener's settings: its mechanisms, for PLAIN its users, and the session
/// lifetime of each mechanism.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaslSettings {
    /// `sasl.enabled.mechanisms`.
    pub mechanisms: Vec<String>,
    /// PLAIN's users and passwords.
    plain_users: BTreeMap<String, String>,
    /// `connections.max.reauth.ms` per mechanism, where positive (KIP-368); a mechanism absent
    /// here has sessions without end.
    max_reauth_ms: BTreeMap<String, u64>,
    /// OAUTHBEARER's validator, when the listener enables it (`oauthbearer.rs`).
    oauthbearer: Option<Arc<crate::oauthbearer::OAuthBearerServer>>,
}

impl SaslSettings {
    /// Reads one listener's keys (its `listener.name.<name>.` keys already folded over the
    /// global ones): `sasl.enabled.mechanisms` (gregor's default: PLAIN),
    /// `plain.sasl.jaas.config` (or `sasl.jaas.config`), and for each mechanism
    /// `<mechanism>.connections.max.reauth.ms` or else `connections.max.reauth.ms` (Kafka's
    /// `SaslChannelBuilder` order; 0 or less: no re-authentication).
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
                    "{m} is not served by gregor yet; PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 and \
                     OAUTHBEARER are"
                ),
            ));
        }
        let mut max_reauth_ms = BTreeMap::new();
        for m in &mechanisms {
            let own = format!("{}.{CONNECTIONS_MAX_REAUTH_MS}", m.to_ascii_lowercase());
            let found = props
                .get_key_value(&own)
                .or_else(|| props.get_key_value(CONNECTIONS_MAX_REAUTH_MS));
            if let Some((key, value)) = found {
                let ms: i64 = value.trim().parse().map_err(|_| {
                    error(
                        key,
                        format!("{value:?} is not a number of milliseconds (Kafka's LONG)"),
                    )
                })?;
                if ms > 0 {
                    max_reauth_ms.insert(m.clone(), ms as u64);
                }
            }
        }
        let oauthbearer = if mechanisms
            .iter()
            .any(|m| m == crate::oauthbearer::MECHANISM)
        {
            let server = crate::oauthbearer::OAuthBearerServer::from_props(props)
                .map_err(|e| error(&e.key, e.reason))?;
            Some(Arc::new(server))
        } else {
            None
        };
        if !mechanisms.iter().any(|m| m == "PLAIN") {
            // SCRAM's users are in the metadata log: no JAAS config to read.
            return Ok(SaslSettings {
                mechanisms,
                plain_users: BTreeMap::new(),
                max_reauth_ms,
                oauthbearer,
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
            max_reauth_ms,
            oauthbearer,
        })
    }

    /// Starts what the listener's mechanisms run in the background (OAUTHBEARER's JWKS
    /// refresher), on the current tokio runtime.
    pub fn start_background(&self) {
        if let Some(o) = &self.oauthbearer {
            o.start();
        }
    }

    /// The session lifetime of `mechanism` in ms, when re-authentication is on for it.
    pub fn max_reauth_ms(&self, mechanism: &str) -> Option<u64> {
        self.max_reauth_ms.get(mechanism).copied()
    }
}

/// The value of JAAS option `key` among `options` (as [`parse_jaas`] gives them): the last
/// one given, as a later option overrides an earlier one in Kafka's `JaasConfig`.
pub(crate) fn jaas_option<'a>(options: &'a [(String, String)], key: &str) -> Option<&'a str> {
    options
        .iter()
        .rev()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
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
    /// Send this response and go on reading: the exchange ended in a login.
    Authenticated(Bytes, Login),
    /// Send this response, then close: authentication failed.
    ReplyAndClose(Bytes, String),
    /// Close without an answer: a request before authentication.
    Close(String),
    /// Close at once, dropping replies not yet written (Kafka's `SocketServer` drops a
    /// channel's in-flight responses): a request after the session expired.
    Expired(String),
}

/// What a completed SASL exchange established.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Login {
    /// The user, now the connection's principal.
    pub user: String,
    /// A re-authentication of a live session (KIP-368), not the connection's first login.
    pub reauthentication: bool,
    /// The session's lifetime in ms (0: without end), as SaslAuthenticate v1+ tells it.
    pub session_lifetime_ms: i64,
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
    /// OAUTHBEARER was agreed; waiting for the client's first message.
    OAuthBearer,
    /// OAUTHBEARER's token was refused with this JSON error; waiting for the client's `\x01`
    /// (another first message is read as a new attempt, as Kafka reads it).
    OAuthBearerRefused(String),
    /// Authenticated: see [`SaslSession::session`].
    Done,
    /// A re-authentication asked for another mechanism than the session's: its next frame
    /// closes the connection with this reason (Kafka's REAUTH_BAD_MECHANISM, after a
    /// handshake answered as if it were fine).
    BadMechanism(String),
}

/// An authenticated session.
#[derive(Debug, Clone)]
struct Session {
    user: String,
    mechanism: String,
    /// When it ends unless re-authenticated; `None`: never.
    expires: Option<Instant>,
}

/// One connection's SASL exchange.
pub struct SaslSession {
    settings: Arc<SaslSettings>,
    scram: Arc<dyn ScramCredentials>,
    state: State,
    /// The handshake was v0: the tokens come as bare size-prefixed frames.
    raw_tokens: bool,
    /// The mechanism of the exchange under way.
    mechanism: String,
    /// The session, once authenticated; kept through a re-authentication, whose user must be
    /// the same.
    session: Option<Session>,
    /// A re-authentication is under way.
    reauthenticating: bool,
    /// The delegation token of the SCRAM exchange under way (owner, time left), if it is a
    /// token's login.
    pending_token: Option<(String, u64)>,
    /// The session was authenticated with a delegation token: it may not manage tokens.
    token_authenticated: bool,
    /// When the last re-authentication began (one a second at most).
    last_reauth_start: Option<Instant>,
    /// The time left to the OAUTHBEARER token just checked (it bounds the session).
    credential_lifetime_ms: Option<u64>,
}

impl std::fmt::Debug for SaslSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SaslSession")
            .field("mechanisms", &self.settings.mechanisms)
            .field("user", &self.user())
            .field("reauthenticating", &self.reauthenticating)
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
            mechanism: String::new(),
            session: None,
            reauthenticating: false,
            pending_token: None,
            token_authenticated: false,
            last_reauth_start: None,
            credential_lifetime_ms: None,
        }
    }

    /// Whether the session was authenticated with a delegation token (KIP-48).
    pub fn token_authenticated(&self) -> bool {
        self.token_authenticated
    }

    /// The authenticated user, once there is one (also while it re-authenticates).
    pub fn user(&self) -> Option<&str> {
        self.session.as_ref().map(|s| s.user.as_str())
    }

    /// A SCRAM failure as Kafka words it during a re-authentication ("Authentication failed
    /// during re-authentication due to invalid credentials ...").
    fn reword(&self, message: String) -> String {
        if self.reauthenticating {
            message.replacen("during authentication", "during re-authentication", 1)
        } else {
            message
        }
    }

    /// Decides what becomes of `frame` (a request without its size prefix) arriving at `now`.
    pub fn intercept(&mut self, frame: &Bytes, now: Instant) -> Result<Intercept, ProtocolError> {
        if let State::BadMechanism(why) = &self.state {
            return Ok(Intercept::Close(why.clone()));
        }
        if self.raw_tokens && !matches!(self.state, State::Handshake | State::Done) {
            return Ok(self.raw_step(frame, now));
        }
        if frame.len() < 8 {
            // Too short: the router refuses it as it refuses any other.
            return Ok(Intercept::Pass);
        }
        let key = i16::from_be_bytes([frame[0], frame[1]]);
        let version = i16::from_be_bytes([frame[2], frame[3]]);
        let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
        let api = ApiKey::try_from(key).ok();
        if matches!(self.state, State::Done) {
            // Kafka's order (SocketServer): a handshake that may begin a re-authentication,
            // then the expiry, then the request as usual.
            let expires = self.session.as_ref().and_then(|s| s.expires);
            let may_reauthenticate = expires.is_some()
                && self
                    .last_reauth_start
                    .is_none_or(|t| now.saturating_duration_since(t) >= MIN_REAUTH_INTERVAL);
            if api == Some(ApiKey::SaslHandshake) && may_reauthenticate {
                self.state = State::Handshake;
                self.reauthenticating = true;
                self.last_reauth_start = Some(now);
            } else if expires.is_some_and(|at| now > at) {
                return Ok(Intercept::Expired(format!(
                    "the SASL session of User:{} expired (connections.max.reauth.ms) without \
                     re-authentication; {} request refused",
                    self.user().unwrap_or_default(),
                    api.map_or_else(|| format!("API {key}"), |a| format!("{a:?}"))
                )));
            } else {
                return Ok(Intercept::Pass);
            }
        }
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
                    Ok(self.authenticate(correlation_id, version, &req, now)?)
                }
            }
            _ => Ok(Intercept::Close(format!(
                "{} request {}",
                api.map_or_else(|| format!("API {key}"), |a| format!("{a:?}")),
                if self.reauthenticating {
                    "during SASL re-authentication"
                } else {
                    "before SASL authentication"
                }
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
        let previous = self.session.as_ref().map(|s| s.mechanism.as_str());
        self.state = match previous {
            Some(previous) if self.reauthenticating && previous != wanted => {
                State::BadMechanism(format!(
                    "SASL mechanism '{wanted}' requested by client is not supported for \
                     re-authentication of mechanism '{previous}'"
                ))
            }
            _ if wanted == crate::oauthbearer::MECHANISM => State::OAuthBearer,
            _ => match ScramMechanism::from_mechanism_name(&wanted) {
                Some(m) => State::ScramFirst(m),
                None => State::Plain,
            },
        };
        self.mechanism = wanted;
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
        now: Instant,
    ) -> Result<Intercept, ProtocolError> {
        match self.step(&req.auth_bytes, now) {
            Ok((auth_bytes, login)) => {
                let lifetime = login.as_ref().map_or(0, |l| l.session_lifetime_ms);
                let resp = SaslAuthenticateResponse::default()
                    .with_auth_bytes(Bytes::from(auth_bytes))
                    .with_session_lifetime_ms(lifetime);
                let bytes = crate::request::encode_with(correlation_id, version, &resp)?;
                Ok(match login {
                    Some(login) => Intercept::Authenticated(bytes, login),
                    None => Intercept::Reply(bytes),
                })
            }
            Err((code, message)) => {
                let resp = SaslAuthenticateResponse::default()
                    .with_error_code(code.code())
                    .with_error_message(Some(StrBytes::from_string(message.clone())));
                let bytes = crate::request::encode_with(correlation_id, version, &resp)?;
                Ok(Intercept::ReplyAndClose(bytes, message))
            }
        }
    }

    /// One round of the agreed mechanism: the server's token and, when it completes the
    /// exchange, the login; or the error and its message.
    #[allow(clippy::type_complexity)]
    fn step(
        &mut self,
        auth_bytes: &[u8],
        now: Instant,
    ) -> Result<(Vec<u8>, Option<Login>), (ErrorCode, String)> {
        let failed = |message: &str| (ErrorCode::SASL_AUTHENTICATION_FAILED, message.to_string());
        match std::mem::replace(&mut self.state, State::Handshake) {
            State::Plain => match plain_user(auth_bytes, &self.settings.plain_users) {
                Some(user) => Ok((Vec::new(), Some(self.complete(user, now)?))),
                None => Err(failed(
                    "Authentication failed: Invalid username or password",
                )),
            },
            State::ScramFirst(m) => {
                let scram = Arc::clone(&self.scram);
                let mut token = None;
                let lookup = |user: &str, token_auth: bool| {
                    if !token_auth {
                        return scram.credential(user, m);
                    }
                    let t = scram.token_credential(user, m)?;
                    token = Some((t.owner, t.remaining_ms));
                    Some(t.credential)
                };
                let started = ScramExchange::start_with_tokens(m, auth_bytes, lookup);
                self.pending_token = token;
                match started {
                    Ok((exchange, server_first)) => {
                        self.state = State::ScramFinal(Box::new(exchange));
                        Ok((server_first, None))
                    }
                    Err(e) => Err(failed(&self.reword(e.0))),
                }
            }
            State::ScramFinal(exchange) => match exchange.finish(auth_bytes) {
                Ok((user, server_final)) => {
                    // A token's login authenticates its owner (Kafka's
                    // `DelegationTokenCredentialCallback`).
                    let user = match &self.pending_token {
                        Some((owner, _)) => owner.clone(),
                        None => user,
                    };
                    Ok((server_final, Some(self.complete(user, now)?)))
                }
                Err(e) => Err(failed(&self.reword(e.0))),
            },
            // The client's acknowledgement of the JSON error (RFC 7628 3.2.3): now the failure.
            State::OAuthBearerRefused(json) if auth_bytes == [1u8] => Err(failed(&json)),
            State::OAuthBearer | State::OAuthBearerRefused(_) => {
                self.oauthbearer_step(auth_bytes, now)
            }
            State::BadMechanism(why) => Err(failed(&why)),
            State::Handshake | State::Done => Err((
                ErrorCode::ILLEGAL_SASL_STATE,
                "Unexpected SaslAuthenticate request: no SaslHandshake before it".to_string(),
            )),
        }
    }

    /// OAUTHBEARER's client first message (`oauthbearer.rs`): a login, the JSON error the
    /// client must acknowledge, or a failure with Kafka's message.
    fn oauthbearer_step(
        &mut self,
        auth_bytes: &[u8],
        now: Instant,
    ) -> Result<(Vec<u8>, Option<Login>), (ErrorCode, String)> {
        use crate::oauthbearer;
        let failed = |message: String| (ErrorCode::SASL_AUTHENTICATION_FAILED, message);
        let first = oauthbearer::parse_client_first(auth_bytes).map_err(|why| {
            oauthbearer::log_refusal("invalid OAUTHBEARER client first message", &why);
            failed(oauthbearer::invalid_credentials_message(
                self.reauthenticating,
            ))
        })?;
        let Some(server) = self.settings.oauthbearer.as_ref() else {
            return Err(failed(
                "Authentication could not be performed due to an internal error on the server"
                    .to_string(),
            ));
        };
        match server.validate(&first.token) {
            Err(refused) => {
                oauthbearer::log_refusal("OAUTHBEARER token refused", &refused.reason);
                let json = refused.json();
                self.state = State::OAuthBearerRefused(json.clone());
                Ok((json.into_bytes(), None))
            }
            Ok(token) => {
                if !first.authorization_id.is_empty() && first.authorization_id != token.principal {
                    return Err(failed(format!(
                        "Authentication failed: Client requested an authorization id ({}) that \
                         is different from the token's principal name ({})",
                        first.authorization_id, token.principal
                    )));
                }
                let left = token.expires_at_ms - oauthbearer::unix_now_ms();
                self.credential_lifetime_ms = Some(u64::try_from(left).unwrap_or(0));
                Ok((Vec::new(), Some(self.complete(token.principal, now)?)))
            }
        }
    }

    /// Ends a successful exchange at `now`: the session and its expiry. A re-authentication
    /// must keep the session's user (Kafka: "Cannot change principals during
    /// re-authentication").
    fn complete(&mut self, user: String, now: Instant) -> Result<Login, (ErrorCode, String)> {
        let reauthentication = self.reauthenticating;
        if let Some(previous) = self.session.as_ref().filter(|_| reauthentication) {
            if previous.user != user {
                return Err((
                    ErrorCode::SASL_AUTHENTICATION_FAILED,
                    format!(
                        "Cannot change principals during re-authentication from User.{}: \
                         User.{user}",
                        previous.user
                    ),
                ));
            }
        }
        let token = self.pending_token.take();
        // Kafka's `SaslServerAuthenticator`: a credential with an end (a delegation token)
        // bounds the session, with or without `connections.max.reauth.ms`.
        let lifetime = match (self.settings.max_reauth_ms(&self.mechanism), &token) {
            (Some(max), Some((_, remaining))) => Some(max.min(*remaining)),
            (None, Some((_, remaining))) => Some(*remaining),
            (max, None) => max,
        };
        // An OAUTHBEARER token's expiry bounds it the same way.
        let lifetime = match (lifetime, self.credential_lifetime_ms.take()) {
            (Some(l), Some(c)) => Some(l.min(c)),
            (l, c) => l.or(c),
        };
        self.token_authenticated = token.is_some();
        // A lifetime beyond what the clock can add is no end at all.
        let expires = lifetime.and_then(|ms| now.checked_add(Duration::from_millis(ms)));
        self.session = Some(Session {
            user: user.clone(),
            mechanism: self.mechanism.clone(),
            expires,
        });
        self.state = State::Done;
        self.reauthenticating = false;
        Ok(Login {
            user,
            reauthentication,
            session_lifetime_ms: lifetime.map_or(0, |ms| i64::try_from(ms).unwrap_or(i64::MAX)),
        })
    }

    /// A raw SASL token after a SaslHandshake v0 (KIP-43's first form, before
    /// SaslAuthenticate): the server's token goes back size-prefixed, without a Kafka header; a
    /// failure closes the connection unanswered, as Kafka does. The session's lifetime applies
    /// here too, untold.
    fn raw_step(&mut self, token: &[u8], now: Instant) -> Intercept {
        match self.step(token, now) {
            Ok((reply, login)) => {
                let mut out = Vec::with_capacity(4 + reply.len());
                out.extend_from_slice(&(reply.len() as u32).to_be_bytes());
                out.extend_from_slice(&reply);
                match login {
                    Some(login) => Intercept::Authenticated(Bytes::from(out), login),
                    None => Intercept::Reply(Bytes::from(out)),
                }
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
pub(crate) mod tests {
    use super::*;

    /// The clock of tests that do not move it.
    fn now() -> Instant {
        Instant::now()
    }
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
            s.intercept(&v0("PLAIN"), now()).expect("ok"),
            Intercept::Reply(_)
        ));
        let token = Bytes::from_static(b"\0alice\0alice-secret");
        assert_eq!(
            s.intercept(&token, now()).expect("ok"),
            Intercept::Authenticated(
                Bytes::from_static(&[0, 0, 0, 0]),
                Login {
                    user: "alice".into(),
                    reauthentication: false,
                    session_lifetime_ms: 0
                }
            ),
            "PLAIN's empty answer, size-prefixed"
        );
        assert_eq!(s.user(), Some("alice"));

        let mut s = session();
        s.intercept(&v0("PLAIN"), now()).expect("ok");
        assert!(matches!(
            s.intercept(&Bytes::from_static(b"\0alice\0nope"), now())
                .expect("ok"),
            Intercept::Close(_)
        ));
        assert_eq!(s.user(), None);

        // SCRAM in two bare rounds.
        let m = ScramMechanism::Sha512;
        let mut s = session();
        s.intercept(&v0("SCRAM-SHA-512"), now()).expect("ok");
        let first = "n=carol,r=abc";
        let Intercept::Reply(r) = s
            .intercept(&Bytes::from(format!("n,,{first}")), now())
            .expect("ok")
        else {
            panic!("server-first");
        };
        let server_first = String::from_utf8(r[4..].to_vec()).expect("utf8");
        let (client_final, _) =
            crate::scram::tests::client_final(m, "carol-secret", first, &server_first);
        assert!(matches!(
            s.intercept(&Bytes::from(client_final), now()).expect("ok"),
            Intercept::Authenticated(..)
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
                    s.intercept(&handshake(name), now()).expect("ok"),
                    Intercept::Reply(_)
                ));
                let first = "n=carol,r=nonce123";
                let Intercept::Reply(r) = s
                    .intercept(&authenticate(format!("n,,{first}").as_bytes(), 2), now())
                    .expect("ok")
                else {
                    panic!("server-first");
                };
                let server_first = String::from_utf8(auth_bytes(&r)).expect("utf8");
                let (client_final, expected) =
                    crate::scram::tests::client_final(m, password, first, &server_first);
                let got = s
                    .intercept(&authenticate(client_final.as_bytes(), 2), now())
                    .expect("ok");
                if ok {
                    let Intercept::Authenticated(r, _) = got else {
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
        s.intercept(&handshake("SCRAM-SHA-256"), now()).expect("ok");
        assert!(matches!(
            s.intercept(&authenticate(b"n,,n=mallory,r=x", 2), now())
                .expect("ok"),
            Intercept::ReplyAndClose(..)
        ));
    }

    /// A request frame (no size prefix) of `api` at `version`.
    pub(crate) fn frame<R: Encodable + HeaderVersion>(
        api: ApiKey,
        version: i16,
        body: &R,
    ) -> Bytes {
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

    /// A SaslHandshake v1 frame for `mechanism`.
    pub(crate) fn handshake(mechanism: &str) -> Bytes {
        frame(
            ApiKey::SaslHandshake,
            1,
            &SaslHandshakeRequest::default()
                .with_mechanism(StrBytes::from_string(mechanism.into())),
        )
    }

    /// A SaslAuthenticate frame of `message` at `version`.
    pub(crate) fn authenticate(message: &[u8], version: i16) -> Bytes {
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
        assert_eq!(
            s.intercept(&api_versions, now()).expect("ok"),
            Intercept::Pass
        );
        let Intercept::Reply(r) = s.intercept(&handshake("PLAIN"), now()).expect("ok") else {
            panic!("the handshake is answered");
        };
        assert_eq!(error_code(&r, false), 0);
        assert_eq!(s.user(), None);
        let Intercept::Authenticated(r, _) = s
            .intercept(&authenticate(b"\0alice\0alice-secret", 2), now())
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
        assert_eq!(s.intercept(&metadata, now()).expect("ok"), Intercept::Pass);
    }

    #[test]
    fn a_session_closes_on_a_bad_password_a_skipped_step_or_an_early_request() {
        let mut s = session();
        s.intercept(&handshake("PLAIN"), now()).expect("ok");
        match s
            .intercept(&authenticate(b"\0alice\0guess", 1), now())
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
        match s.intercept(&handshake("SCRAM-SHA-256"), now()).expect("ok") {
            Intercept::ReplyAndClose(r, _) => assert_eq!(
                error_code(&r, false),
                ErrorCode::UNSUPPORTED_SASL_MECHANISM.code()
            ),
            other => panic!("{other:?}"),
        }

        let mut s = session();
        match s
            .intercept(&authenticate(b"\0alice\0alice-secret", 0), now())
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
            s.intercept(&metadata, now()).expect("ok"),
            Intercept::Close(_)
        ));
        // A frame whose body does not decode is a protocol error, as anywhere else.
        let mut s = session();
        let truncated = handshake("PLAIN").slice(..12);
        assert!(s.intercept(&truncated, now()).is_err());
    }

    // ---- re-authentication (KIP-368) ----

    /// Settings with PLAIN and both SCRAMs, and these extra keys.
    fn reauth_settings(extra: &[(&str, &str)]) -> Arc<SaslSettings> {
        let mut props: BTreeMap<String, String> = [
            ("plain.sasl.jaas.config", JAAS),
            (
                "sasl.enabled.mechanisms",
                "PLAIN,SCRAM-SHA-256,SCRAM-SHA-512",
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        props.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        Arc::new(SaslSettings::from_props(&props).expect("settings"))
    }

    /// carol's SCRAM credentials, which a test may delete or change as an operator would.
    struct Store(std::sync::Mutex<Option<&'static str>>);

    impl ScramCredentials for Store {
        fn credential(&self, user: &str, m: ScramMechanism) -> Option<ScramCredential> {
            let password = (*self.0.lock().expect("not poisoned"))?;
            (user == "carol").then(|| crate::scram::tests::credential(m, password))
        }
    }

    fn store(password: &'static str) -> Arc<Store> {
        Arc::new(Store(std::sync::Mutex::new(Some(password))))
    }

    /// The session lifetime of a SaslAuthenticate v2 reply.
    fn lifetime(reply: &Bytes) -> i64 {
        use gregor_protocol::protocol::Decodable;
        let mut body = reply.slice(9..);
        SaslAuthenticateResponse::decode(&mut body, 2)
            .expect("decodes")
            .session_lifetime_ms
    }

    /// A PLAIN exchange at `t` (handshake v1, SaslAuthenticate `version`): the last answer.
    fn plain(
        s: &mut SaslSession,
        user: &str,
        password: &str,
        version: i16,
        t: Instant,
    ) -> Intercept {
        let hs = s.intercept(&handshake("PLAIN"), t).expect("ok");
        let Intercept::Reply(r) = hs else {
            return hs;
        };
        assert_eq!(error_code(&r, false), 0, "the handshake is accepted");
        let token = format!("\0{user}\0{password}");
        s.intercept(&authenticate(token.as_bytes(), version), t)
            .expect("ok")
    }

    /// A SCRAM exchange at `t` with `password`: the last answer.
    fn scram(s: &mut SaslSession, m: ScramMechanism, password: &str, t: Instant) -> Intercept {
        let name = match m {
            ScramMechanism::Sha256 => "SCRAM-SHA-256",
            ScramMechanism::Sha512 => "SCRAM-SHA-512",
        };
        let hs = s.intercept(&handshake(name), t).expect("ok");
        let Intercept::Reply(_) = hs else {
            return hs;
        };
        let first = "n=carol,r=nonce42";
        let got = s
            .intercept(&authenticate(format!("n,,{first}").as_bytes(), 2), t)
            .expect("ok");
        let Intercept::Reply(r) = got else {
            return got;
        };
        let server_first = String::from_utf8(auth_bytes(&r)).expect("utf8");
        let (client_final, _) =
            crate::scram::tests::client_final(m, password, first, &server_first);
        s.intercept(&authenticate(client_final.as_bytes(), 2), t)
            .expect("ok")
    }

    /// A delegation token's login (`tokenauth=true`, KIP-48): the token id as user and its
    /// HMAC as password; the session is its owner's, marked token-authenticated, and ends at the
    /// token's expiry even without `connections.max.reauth.ms` (and at the earlier of the two
    /// with it). Without the extension the token id is an unknown user.
    #[test]
    fn a_delegation_token_logs_in_as_its_owner_until_it_expires() {
        struct Tokens;
        impl ScramCredentials for Tokens {
            fn credential(&self, _: &str, _: ScramMechanism) -> Option<ScramCredential> {
                None
            }
            fn token_credential(
                &self,
                token_id: &str,
                m: ScramMechanism,
            ) -> Option<TokenCredential> {
                (token_id == "tok-1").then(|| TokenCredential {
                    credential: crate::scram::tests::credential(m, "token-hmac"),
                    owner: "alice".into(),
                    remaining_ms: 5_000,
                })
            }
        }
        let m = ScramMechanism::Sha512;
        let login = |settings: Arc<SaslSettings>, first: &str, password: &str| {
            let mut s = SaslSession::new(settings, Arc::new(Tokens));
            let t = now();
            s.intercept(&handshake("SCRAM-SHA-512"), t).expect("ok");
            let got = s
                .intercept(&authenticate(format!("n,,{first}").as_bytes(), 2), t)
                .expect("ok");
            let Intercept::Reply(r) = got else {
                return (s, got);
            };
            let server_first = String::from_utf8(auth_bytes(&r)).expect("utf8");
            let (client_final, _) =
                crate::scram::tests::client_final(m, password, first, &server_first);
            let done = s
                .intercept(&authenticate(client_final.as_bytes(), 2), t)
                .expect("ok");
            (s, done)
        };
        let first = "n=tok-1,r=nonce42,tokenauth=true";
        let (s, done) = login(settings(), first, "token-hmac");
        match done {
            Intercept::Authenticated(_, l) => {
                assert_eq!((l.user.as_str(), l.session_lifetime_ms), ("alice", 5_000));
            }
            other => panic!("{other:?}"),
        }
        assert!(s.token_authenticated());
        assert_eq!(s.user(), Some("alice"));
        // connections.max.reauth.ms shorter than the token: the shorter wins.
        let (_, done) = login(
            reauth_settings(&[("connections.max.reauth.ms", "2000")]),
            first,
            "token-hmac",
        );
        assert!(
            matches!(done, Intercept::Authenticated(_, ref l) if l.session_lifetime_ms == 2_000),
            "{done:?}"
        );
        // A wrong password, an unknown token, or the id without the extension: refused.
        for (first, password) in [
            (first, "wrong"),
            ("n=tok-2,r=nonce42,tokenauth=true", "token-hmac"),
            ("n=tok-1,r=nonce42", "token-hmac"),
        ] {
            let (s, done) = login(settings(), first, password);
            assert!(
                matches!(done, Intercept::ReplyAndClose(..)),
                "{first}: {done:?}"
            );
            assert!(!s.token_authenticated());
        }
        // An ordinary login is not token-authenticated.
        let mut s = session();
        assert!(matches!(
            scram(&mut s, m, "carol-secret", now()),
            Intercept::Authenticated(..)
        ));
        assert!(!s.token_authenticated());
    }

    fn metadata() -> Bytes {
        frame(
            ApiKey::Metadata,
            12,
            &gregor_protocol::messages::MetadataRequest::default(),
        )
    }

    #[test]
    fn the_session_lifetime_follows_kafka_s_keys() {
        let s = reauth_settings(&[]);
        assert_eq!(s.max_reauth_ms("PLAIN"), None, "off by default");
        let s = reauth_settings(&[("connections.max.reauth.ms", "60000")]);
        for m in ["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] {
            assert_eq!(s.max_reauth_ms(m), Some(60_000), "{m}");
        }
        // The mechanism's own key wins over the listener's; 0 or less is off.
        let s = reauth_settings(&[
            ("connections.max.reauth.ms", "60000"),
            ("scram-sha-256.connections.max.reauth.ms", "5000"),
            ("plain.connections.max.reauth.ms", "0"),
            ("scram-sha-512.connections.max.reauth.ms", "-1"),
        ]);
        assert_eq!(s.max_reauth_ms("SCRAM-SHA-256"), Some(5000));
        assert_eq!(s.max_reauth_ms("PLAIN"), None);
        assert_eq!(s.max_reauth_ms("SCRAM-SHA-512"), None);
        let mut props: BTreeMap<String, String> =
            [("plain.sasl.jaas.config".to_string(), JAAS.to_string())]
                .into_iter()
                .collect();
        props.insert("plain.connections.max.reauth.ms".into(), "soon".into());
        let e = SaslSettings::from_props(&props).expect_err("not a number");
        assert_eq!(e.key, "plain.connections.max.reauth.ms");
        assert!(is_reauth_key("connections.max.reauth.ms"));
        assert!(is_reauth_key("scram-sha-512.connections.max.reauth.ms"));
        assert!(!is_reauth_key(".connections.max.reauth.ms"));
        assert!(!is_reauth_key("sasl_ssl.plain.connections.max.reauth.ms"));
        assert!(!is_reauth_key("connections.max.idle.ms"));
    }

    /// SaslAuthenticate v1+ tells the lifetime; v0 cannot, yet the session ends all the same.
    /// The first request after the end closes the connection; up to it, requests pass.
    #[test]
    fn a_session_without_reauthentication_ends_at_its_lifetime() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        for version in [0, 1, 2] {
            let mut s = SaslSession::new(
                reauth_settings(&[("connections.max.reauth.ms", "10000")]),
                Arc::new(Carol),
            );
            let got = plain(&mut s, "alice", "alice-secret", version, t0);
            let Intercept::Authenticated(r, login) = got else {
                panic!("{got:?}");
            };
            assert_eq!(login.session_lifetime_ms, 10_000);
            assert!(!login.reauthentication);
            if version == 2 {
                assert_eq!(lifetime(&r), 10_000, "told to the client");
            }
            for at in [ms(1), ms(9_999), ms(10_000)] {
                assert_eq!(
                    s.intercept(&metadata(), t0 + at).expect("ok"),
                    Intercept::Pass
                );
            }
            match s.intercept(&metadata(), t0 + ms(10_001)).expect("ok") {
                Intercept::Expired(why) => {
                    assert!(
                        why.contains("User:alice") && why.contains("Metadata"),
                        "{why}"
                    )
                }
                other => panic!("v{version}: {other:?}"),
            }
        }
        // Without a lifetime, a session lasts as long as its connection.
        let mut s = session();
        let got = plain(&mut s, "alice", "alice-secret", 2, t0);
        let Intercept::Authenticated(r, login) = got else {
            panic!("{got:?}");
        };
        assert_eq!((lifetime(&r), login.session_lifetime_ms), (0, 0));
        let later = t0 + Duration::from_secs(30 * 86_400);
        assert_eq!(
            s.intercept(&metadata(), later).expect("ok"),
            Intercept::Pass
        );
    }

    /// A handshake on an authenticated connection re-authenticates it: a new lifetime from the
    /// end of the re-authentication, the same principal, requests passing again. Even an
    /// expired session may re-authenticate (the handshake is looked at before the expiry).
    #[test]
    fn reauthentication_renews_the_session() {
        let t0 = Instant::now();
        let secs = Duration::from_secs;
        let settings = reauth_settings(&[("connections.max.reauth.ms", "10000")]);
        let mut s = SaslSession::new(settings.clone(), Arc::new(Carol));
        assert!(matches!(
            plain(&mut s, "alice", "alice-secret", 2, t0),
            Intercept::Authenticated(..)
        ));
        let got = plain(&mut s, "alice", "alice-secret", 2, t0 + secs(9));
        let Intercept::Authenticated(r, login) = got else {
            panic!("{got:?}");
        };
        assert!(login.reauthentication);
        assert_eq!((login.user.as_str(), lifetime(&r)), ("alice", 10_000));
        assert_eq!(
            s.intercept(&metadata(), t0 + secs(18)).expect("ok"),
            Intercept::Pass
        );
        assert!(matches!(
            s.intercept(&metadata(), t0 + secs(20)).expect("ok"),
            Intercept::Expired(_)
        ));
        // Expired, but a handshake still begins a re-authentication, as in Kafka.
        assert!(matches!(
            plain(&mut s, "alice", "alice-secret", 1, t0 + secs(25)),
            Intercept::Authenticated(..)
        ));
        assert_eq!(
            s.intercept(&metadata(), t0 + secs(30)).expect("ok"),
            Intercept::Pass
        );
        assert_eq!(s.user(), Some("alice"));

        // SCRAM, and a v0 handshake with bare tokens, re-authenticate the same way.
        let mut s = SaslSession::new(settings.clone(), store("carol-secret"));
        let m = ScramMechanism::Sha512;
        assert!(matches!(
            scram(&mut s, m, "carol-secret", t0),
            Intercept::Authenticated(..)
        ));
        assert!(matches!(
            scram(&mut s, m, "carol-secret", t0 + secs(8)),
            Intercept::Authenticated(
                _,
                Login {
                    reauthentication: true,
                    ..
                }
            )
        ));
        let v0 = frame(
            ApiKey::SaslHandshake,
            0,
            &SaslHandshakeRequest::default()
                .with_mechanism(StrBytes::from_static_str("SCRAM-SHA-512")),
        );
        let t = t0 + secs(16);
        assert!(matches!(
            s.intercept(&v0, t).expect("ok"),
            Intercept::Reply(_)
        ));
        let first = "n=carol,r=bare";
        let Intercept::Reply(r) = s
            .intercept(&Bytes::from(format!("n,,{first}")), t)
            .expect("ok")
        else {
            panic!("server-first");
        };
        let server_first = String::from_utf8(r[4..].to_vec()).expect("utf8");
        let (client_final, _) =
            crate::scram::tests::client_final(m, "carol-secret", first, &server_first);
        assert!(matches!(
            s.intercept(&Bytes::from(client_final), t).expect("ok"),
            Intercept::Authenticated(
                _,
                Login {
                    reauthentication: true,
                    session_lifetime_ms: 10_000,
                    ..
                }
            )
        ));
        assert_eq!(
            s.intercept(&metadata(), t0 + secs(25)).expect("ok"),
            Intercept::Pass
        );
    }

    /// What a security team sets the lifetime for: once a credential is deleted or changed, the
    /// next re-authentication of a live connection fails and closes it.
    #[test]
    fn a_deleted_or_changed_credential_fails_the_next_reauthentication() {
        let t0 = Instant::now();
        let secs = Duration::from_secs;
        let settings = reauth_settings(&[("connections.max.reauth.ms", "10000")]);
        for change in [None, Some("new-secret")] {
            let credentials = store("carol-secret");
            let mut s = SaslSession::new(settings.clone(), credentials.clone());
            let m = ScramMechanism::Sha256;
            assert!(matches!(
                scram(&mut s, m, "carol-secret", t0),
                Intercept::Authenticated(..)
            ));
            *credentials.0.lock().expect("not poisoned") = change;
            match scram(&mut s, m, "carol-secret", t0 + secs(9)) {
                Intercept::ReplyAndClose(r, why) => {
                    assert_eq!(
                        error_code(&r, true),
                        ErrorCode::SASL_AUTHENTICATION_FAILED.code(),
                        "{why}"
                    );
                    assert!(why.contains("during re-authentication"), "{why}");
                }
                other => panic!("{change:?}: {other:?}"),
            }
        }
    }

    /// A re-authentication may change neither the principal nor the mechanism, and nothing but
    /// the SASL exchange may come during it.
    #[test]
    fn reauthentication_keeps_the_user_and_the_mechanism() {
        let t0 = Instant::now();
        let t = t0 + Duration::from_secs(5);
        let settings = reauth_settings(&[("connections.max.reauth.ms", "10000")]);
        let mut s = SaslSession::new(settings.clone(), store("carol-secret"));
        plain(&mut s, "alice", "alice-secret", 2, t0);
        match plain(&mut s, "admin", "admin-secret", 2, t) {
            Intercept::ReplyAndClose(r, why) => {
                assert_eq!(
                    error_code(&r, true),
                    ErrorCode::SASL_AUTHENTICATION_FAILED.code()
                );
                assert_eq!(
                    why,
                    "Cannot change principals during re-authentication from User.alice: User.admin"
                );
            }
            other => panic!("{other:?}"),
        }
        // Another mechanism: the handshake is answered, the next frame closes (Kafka's
        // REAUTH_BAD_MECHANISM), even for the same user.
        let mut s = SaslSession::new(settings.clone(), store("carol-secret"));
        scram(&mut s, ScramMechanism::Sha256, "carol-secret", t0);
        let Intercept::Reply(r) = s.intercept(&handshake("SCRAM-SHA-512"), t).expect("ok") else {
            panic!("the handshake is answered");
        };
        assert_eq!(error_code(&r, false), 0);
        match s
            .intercept(&authenticate(b"n,,n=carol,r=x", 2), t)
            .expect("ok")
        {
            Intercept::Close(why) => {
                assert!(why.contains("re-authentication of mechanism"), "{why}")
            }
            other => panic!("{other:?}"),
        }
        // A request in the middle of a re-authentication closes the connection.
        let mut s = SaslSession::new(settings, store("carol-secret"));
        plain(&mut s, "alice", "alice-secret", 2, t0);
        s.intercept(&handshake("PLAIN"), t).expect("ok");
        match s.intercept(&metadata(), t).expect("ok") {
            Intercept::Close(why) => {
                assert!(why.contains("during SASL re-authentication"), "{why}")
            }
            other => panic!("{other:?}"),
        }
    }

    /// Without a lifetime there is no re-authentication, and with one at most one begins a
    /// second: such a handshake goes to the router, which answers ILLEGAL_SASL_STATE.
    #[test]
    fn reauthentication_needs_a_lifetime_and_a_second_since_the_last() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let mut s = session();
        plain(&mut s, "alice", "alice-secret", 2, t0);
        assert_eq!(
            s.intercept(&handshake("PLAIN"), t0 + ms(5000)).expect("ok"),
            Intercept::Pass
        );
        let settings = reauth_settings(&[("connections.max.reauth.ms", "10000")]);
        let mut s = SaslSession::new(settings, Arc::new(Carol));
        plain(&mut s, "alice", "alice-secret", 2, t0);
        assert!(
            matches!(
                plain(&mut s, "alice", "alice-secret", 2, t0 + ms(100)),
                Intercept::Authenticated(..)
            ),
            "the first re-authentication may come at once"
        );
        assert_eq!(
            s.intercept(&handshake("PLAIN"), t0 + ms(1099)).expect("ok"),
            Intercept::Pass
        );
        assert!(matches!(
            plain(&mut s, "alice", "alice-secret", 2, t0 + ms(1100)),
            Intercept::Authenticated(..)
        ));
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
            let _ = s.intercept(&hs, now());
            for f in frames {
                let f = Bytes::from(f);
                let _ = s.intercept(&f, now());
                let _ = s.intercept(&authenticate(&f, 2), now());
            }
            proptest::prop_assert_eq!(s.user(), None);
        }

        /// Whatever an authenticated client sends, and whenever: its user never changes (a
        /// valid login as another user included), nothing passes after the lifetime without a
        /// completed re-authentication, and once the session closes the connection the
        /// connection is gone (the test stops there, as the connection does).
        #[test]
        fn a_session_keeps_its_user_and_its_deadline(
            steps in proptest::collection::vec((0u8..7, 0u64..4000, proptest::collection::vec(proptest::prelude::any::<u8>(), 0..40)), 1..12),
        ) {
            let t0 = Instant::now();
            let mut s = SaslSession::new(
                reauth_settings(&[("connections.max.reauth.ms", "3000")]),
                Arc::new(Carol),
            );
            let got = plain(&mut s, "alice", "alice-secret", 2, t0);
            proptest::prop_assert!(matches!(got, Intercept::Authenticated(..)));
            let mut now = t0;
            let mut expires = t0 + Duration::from_millis(3000);
            for (kind, advance, bytes) in steps {
                now += Duration::from_millis(advance);
                let frame = match kind {
                    0 => handshake("PLAIN"),
                    1 => handshake("SCRAM-SHA-256"),
                    2 => authenticate(b"\0alice\0alice-secret", 2),
                    3 => authenticate(b"\0admin\0admin-secret", 1),
                    4 => authenticate(&bytes, 2),
                    5 => metadata(),
                    _ => Bytes::from(bytes),
                };
                let reauthenticating = s.reauthenticating;
                let got = s.intercept(&frame, now);
                proptest::prop_assert_eq!(s.user(), Some("alice"));
                match got {
                    Ok(Intercept::Authenticated(_, login)) => {
                        proptest::prop_assert_eq!(login.user.as_str(), "alice");
                        proptest::prop_assert!(login.reauthentication);
                        expires = now + Duration::from_millis(3000);
                    }
                    Ok(Intercept::Pass) => {
                        // Only an authenticated, live session passes requests on (a frame
                        // too short for a header goes to the router, which refuses it, and
                        // ApiVersions is answered at any step of an exchange).
                        let api_versions = frame.get(..2) == Some(&[0, 18][..]);
                        proptest::prop_assert!(
                            frame.len() < 8 || api_versions || (!reauthenticating && now <= expires),
                            "passed at {:?} past the deadline", now - t0
                        );
                    }
                    Ok(Intercept::Reply(_)) => {}
                    Ok(Intercept::ReplyAndClose(..) | Intercept::Close(_) | Intercept::Expired(_))
                    | Err(_) => break,
                }
            }
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
