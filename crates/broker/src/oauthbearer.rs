//! SASL/OAUTHBEARER (RFC 7628, KIP-255) with Kafka's two server-side validators: the
//! unsecured-JWT one of development setups (`OAuthBearerUnsecuredValidatorCallbackHandler`,
//! Kafka's default) and KIP-768's `OAuthBearerValidatorCallbackHandler`, which checks a signed
//! JWT against the keys of a JWKS endpoint.
//!
//! ```text
//!  SaslSession (sasl.rs) ── client first message ──► parse_client_first
//!        │                    n,[a=authzid],^Aauth=Bearer <jwt>^A[key=value^A]*^A
//!        ▼
//!  OAuthBearerServer::validate(jwt, wall clock)
//!     ├─ Unsecured: alg "none", no signature, principal/scope claims from the JAAS options
//!     └─ Jwks: signature (RS/PS 256-512, ES256/384) with a key of JwksKeys, exp/iat/nbf with
//!              clock skew, aud, iss, sub and scope claims from sasl.oauthbearer.* keys
//!        │
//!        ├─ ValidToken { principal, expiry }  ─► login; the session ends at the token's expiry
//!        │                                       or connections.max.reauth.ms, whichever first
//!        └─ TokenFailure ─► {"status":"invalid_token"} to the client, which answers ^A, and
//!                           then SASL_AUTHENTICATION_FAILED with that JSON, and the close
//!
//!  JwksKeys: the key set in memory (an ArcSwap), so a login never waits on I/O. A background
//!  task (started with the listener) fetches the JWKS (http:, https:, file:) every
//!  sasl.oauthbearer.jwks.endpoint.refresh.ms, at once on an unknown kid (at most once per
//!  retry backoff), and with exponential backoff while the endpoint fails.
//! ```
//!
//! Everything but [`JwksKeys`]'s task is I/O-free: the validators take the time as an
//! argument.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use base64::Engine;
use serde_json::Value;
use tracing::{info, warn};

/// The mechanism's name.
pub const MECHANISM: &str = "OAUTHBEARER";

/// The broker keys of OAUTHBEARER's token validation (KIP-768) that gregor reads; every
/// broker's DescribeConfigs lists them, as Kafka's does.
pub const VALIDATION_KEYS: &[&str] = &[
    "sasl.oauthbearer.clock.skew.seconds",
    "sasl.oauthbearer.expected.audience",
    "sasl.oauthbearer.expected.issuer",
    "sasl.oauthbearer.jwks.endpoint.refresh.ms",
    "sasl.oauthbearer.jwks.endpoint.retry.backoff.max.ms",
    "sasl.oauthbearer.jwks.endpoint.retry.backoff.ms",
    "sasl.oauthbearer.jwks.endpoint.url",
    "sasl.oauthbearer.scope.claim.name",
    "sasl.oauthbearer.sub.claim.name",
];

/// Kafka's login module for OAUTHBEARER, the one JAAS module the mechanism takes.
pub const LOGIN_MODULE: &str =
    "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule";

/// Kafka's default server callback handler: unsecured JWTs.
pub const UNSECURED_VALIDATOR: &str = "org.apache.kafka.common.security.oauthbearer.internals.unsecured.OAuthBearerUnsecuredValidatorCallbackHandler";

/// KIP-768's validator (its public name since Kafka 3.1, and its older internal one).
pub const JWKS_VALIDATOR: &str =
    "org.apache.kafka.common.security.oauthbearer.OAuthBearerValidatorCallbackHandler";
const JWKS_VALIDATOR_INTERNAL: &str =
    "org.apache.kafka.common.security.oauthbearer.secured.OAuthBearerValidatorCallbackHandler";

/// The message Kafka's authenticator answers for a client message it cannot parse (a
/// `SaslException`), `{}` standing for "authentication" or "re-authentication".
pub fn invalid_credentials_message(reauthentication: bool) -> String {
    format!(
        "Authentication failed during {} due to invalid credentials with SASL mechanism {MECHANISM}",
        if reauthentication {
            "re-authentication"
        } else {
            "authentication"
        }
    )
}

/// An OAUTHBEARER setting that cannot be served: the key at fault and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuthConfigError {
    pub key: String,
    pub reason: String,
}

fn config_error(key: &str, reason: impl Into<String>) -> OAuthConfigError {
    OAuthConfigError {
        key: key.to_string(),
        reason: reason.into(),
    }
}

// ---------------------------------------------------------------------------------------------
// The client's first message.

/// RFC 7628's client first message as Kafka reads it (`OAuthBearerClientInitialResponse`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientFirst {
    /// `a=<authzid>`, empty when absent.
    pub authorization_id: String,
    /// The bearer token.
    pub token: String,
    /// SASL extensions (every `key=value` pair but `auth`).
    pub extensions: BTreeMap<String, String>,
}

/// Parses `n,[a=<saslname>],\x01auth=Bearer <token>\x01[key=value\x01]*\x01`. The error is for
/// the broker's log; the client is told Kafka's generic message.
pub fn parse_client_first(message: &[u8]) -> Result<ClientFirst, String> {
    const SEP: char = '\u{1}';
    let text = std::str::from_utf8(message).map_err(|_| "not UTF-8".to_string())?;
    let rest = text
        .strip_prefix("n,")
        .ok_or("no GS2 header 'n,' (channel binding is not supported)")?;
    let (authz, rest) = rest.split_once(',').ok_or("no ',' after the GS2 header")?;
    let authorization_id = if authz.is_empty() {
        String::new()
    } else {
        let name = authz
            .strip_prefix("a=")
            .ok_or("the GS2 header's second field is not 'a=<authzid>'")?;
        if !valid_saslname(name) {
            return Err(format!("invalid authorization id {name:?}"));
        }
        name.to_string()
    };
    let pairs = rest
        .strip_prefix(SEP)
        .and_then(|r| r.strip_suffix(SEP))
        .ok_or("the key/value pairs are not framed by \\x01")?;
    let mut properties = BTreeMap::new();
    if !pairs.is_empty() {
        let body = pairs
            .strip_suffix(SEP)
            .ok_or("a key/value pair does not end with \\x01")?;
        for pair in body.split(SEP) {
            let (key, value) = pair
                .split_once('=')
                .ok_or_else(|| format!("{pair:?} is not key=value"))?;
            if key.is_empty() || !key.bytes().all(|b| b.is_ascii_alphabetic()) {
                return Err(format!("extension name {key:?} is invalid"));
            }
            if value.is_empty()
                || !value.bytes().all(|b| {
                    (0x21..=0x7e).contains(&b) || matches!(b, b' ' | b'\t' | b'\r' | b'\n')
                })
            {
                return Err(format!("the value of {key:?} is invalid"));
            }
            properties.insert(key.to_string(), value.to_string());
        }
    }
    let auth = properties.remove("auth").ok_or("'auth' not specified")?;
    let (scheme, token) = auth.split_once(' ').ok_or("invalid 'auth' format")?;
    let token = token.trim_start_matches(' ');
    if scheme.is_empty()
        || !scheme
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_')
        || token.is_empty()
        || !token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return Err("invalid 'auth' format".to_string());
    }
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(format!("invalid scheme {scheme}"));
    }
    Ok(ClientFirst {
        authorization_id,
        token: token.to_string(),
        extensions: properties,
    })
}

/// RFC 5801's saslname: 0x01-0x7F but '=' and ',', with "=2C" and "=3D" as escapes.
fn valid_saslname(name: &str) -> bool {
    let b = name.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'=' => {
                if !(name[i..].starts_with("=2C") || name[i..].starts_with("=3D")) {
                    return false;
                }
                i += 3;
            }
            b',' | 0 | 0x80..=0xff => return false,
            _ => i += 1,
        }
    }
    !b.is_empty()
}

// ---------------------------------------------------------------------------------------------
// Validation results.

/// A token that passed validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidToken {
    /// The principal's name (`User:<name>`).
    pub principal: String,
    /// The token's expiry, ms since the epoch (its `exp` claim).
    pub expires_at_ms: i64,
    /// Its scope.
    pub scope: BTreeSet<String>,
}

/// A token that did not: what the client is told, and why (for the broker's log).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenFailure {
    /// For `insufficient_scope`, the required scope as Kafka writes it (`[a, b]`).
    pub scope: Option<String>,
    /// Why, for the log (never sent to the client).
    pub reason: String,
}

impl TokenFailure {
    fn invalid(reason: impl Into<String>) -> TokenFailure {
        TokenFailure {
            scope: None,
            reason: reason.into(),
        }
    }

    /// The JSON error the server sends instead of completing (RFC 7628 3.2.2), as Kafka's
    /// `OAuthBearerSaslServer` writes it.
    pub fn json(&self) -> String {
        match &self.scope {
            None => r#"{"status":"invalid_token"}"#.to_string(),
            Some(scope) => format!(r#"{{"status":"insufficient_scope", "scope":"{scope}"}}"#),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// JWT pieces.

/// Decodes a JWT segment: base64url (Kafka's unsecured parser takes the standard alphabet
/// too), padding optional.
fn b64(segment: &str) -> Option<Vec<u8>> {
    use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
    let trimmed = segment.trim_end_matches('=');
    URL_SAFE_NO_PAD
        .decode(trimmed)
        .or_else(|_| STANDARD_NO_PAD.decode(trimmed))
        .ok()
}

fn json_object(segment: &str, what: &str) -> Result<serde_json::Map<String, Value>, TokenFailure> {
    let bytes = b64(segment).ok_or_else(|| {
        TokenFailure::invalid(format!("{what}: malformed Base64 URL encoded value"))
    })?;
    match serde_json::from_slice::<Value>(&bytes) {
        Ok(Value::Object(map)) => Ok(map),
        _ => Err(TokenFailure::invalid(format!("{what}: malformed JSON"))),
    }
}

/// A claim that must be a number, if present.
fn number_claim(
    claims: &serde_json::Map<String, Value>,
    name: &str,
) -> Result<Option<f64>, TokenFailure> {
    match claims.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n
            .as_f64()
            .map(Some)
            .ok_or_else(|| TokenFailure::invalid(format!("the '{name}' claim is not a number"))),
        Some(other) => Err(TokenFailure::invalid(format!(
            "the '{name}' claim was not of type Number: {}",
            type_name(other)
        ))),
    }
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "Boolean",
        Value::Number(_) => "Number",
        Value::String(_) => "String",
        Value::Array(_) => "List",
        Value::Object(_) => "Object",
    }
}

fn seconds_to_ms(s: f64) -> i64 {
    (s * 1000.0).round() as i64
}

/// Kafka's scope: a string claim is one scope (unsecured) or space-separated scopes (KIP-768),
/// a list claim its non-blank items.
fn scope_of(
    claims: &serde_json::Map<String, Value>,
    name: &str,
    split_string: bool,
) -> BTreeSet<String> {
    match claims.get(name) {
        Some(Value::String(s)) if split_string => {
            s.split_whitespace().map(str::to_string).collect()
        }
        Some(Value::String(s)) if !s.trim().is_empty() => [s.trim().to_string()].into(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| match v {
                Value::String(s) => s.trim().to_string(),
                other => other.to_string(),
            })
            .filter(|s| !s.is_empty())
            .collect(),
        _ => BTreeSet::new(),
    }
}

/// Kafka's `List.toString()` of the required scope, as it goes into the error JSON.
fn list_string(items: &[String]) -> String {
    format!("[{}]", items.join(", "))
}

// ---------------------------------------------------------------------------------------------
// The unsecured validator.

/// `OAuthBearerUnsecuredValidatorCallbackHandler`: an `alg: none` JWS without signature, its
/// options from the JAAS config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsecuredValidator {
    /// `unsecuredValidatorPrincipalClaimName` (default `sub`).
    principal_claim: String,
    /// `unsecuredValidatorScopeClaimName` (default `scope`).
    scope_claim: String,
    /// `unsecuredValidatorRequiredScope`, space-separated.
    required_scope: Vec<String>,
    /// `unsecuredValidatorAllowableClockSkewMs` (default 0).
    clock_skew_ms: i64,
}

impl UnsecuredValidator {
    pub fn from_options(
        options: &[(String, String)],
    ) -> Result<UnsecuredValidator, OAuthConfigError> {
        let option = |k: &str| {
            crate::sasl::jaas_option(options, k)
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_string)
        };
        let clock_skew_ms = match option("unsecuredValidatorAllowableClockSkewMs") {
            None => 0,
            Some(v) => {
                let n: i32 = v.parse().map_err(|_| {
                    config_error(
                        "oauthbearer.sasl.jaas.config",
                        format!("unsecuredValidatorAllowableClockSkewMs: {v:?} is not an integer"),
                    )
                })?;
                if n < 0 {
                    return Err(config_error(
                        "oauthbearer.sasl.jaas.config",
                        format!("Allowable clock skew millis must not be negative: {v}"),
                    ));
                }
                i64::from(n)
            }
        };
        Ok(UnsecuredValidator {
            principal_claim: option("unsecuredValidatorPrincipalClaimName")
                .unwrap_or_else(|| "sub".into()),
            scope_claim: option("unsecuredValidatorScopeClaimName")
                .unwrap_or_else(|| "scope".into()),
            required_scope: option("unsecuredValidatorRequiredScope")
                .map(|s| {
                    s.split(' ')
                        .filter(|x| !x.is_empty())
                        .map(str::to_string)
                        .collect()
                })
                .unwrap_or_default(),
            clock_skew_ms,
        })
    }

    /// Kafka's checks, in its order, at `now_ms` (ms since the epoch).
    pub fn validate(&self, token: &str, now_ms: i64) -> Result<ValidToken, TokenFailure> {
        if token.contains("..") {
            return Err(TokenFailure::invalid(
                "Malformed compact serialization contains '..'",
            ));
        }
        let splits: Vec<&str> = token.split('.').collect();
        if splits.len() != 3 {
            return Err(TokenFailure::invalid(
                "Unsecured JWS compact serializations must have 3 dot-separated Base64URL-encoded values",
            ));
        }
        let header = json_object(splits[0], "header")?;
        let claims = json_object(splits[1], "claims")?;
        match header.get("alg") {
            Some(Value::String(alg)) if alg == "none" => {}
            None => {
                return Err(TokenFailure::invalid(
                    "JWS header must have an Algorithm value",
                ))
            }
            _ => {
                return Err(TokenFailure::invalid(
                    "Unsecured JWS must have 'none' for an algorithm",
                ))
            }
        }
        if !splits[2].is_empty() {
            return Err(TokenFailure::invalid(
                "Unsecured JWS must not contain a digital signature",
            ));
        }
        if let Some(v) = claims.get(&self.scope_claim) {
            if !matches!(v, Value::String(_) | Value::Array(_) | Value::Null) {
                return Err(TokenFailure::invalid(format!(
                    "The '{}' claim was not of type List: {}",
                    self.scope_claim,
                    type_name(v)
                )));
            }
        }
        let Some(exp) = number_claim(&claims, "exp")? else {
            return Err(TokenFailure::invalid("No expiration time in JWT"));
        };
        let principal = match claims.get(&self.principal_claim) {
            Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
            Some(Value::String(_)) | None | Some(Value::Null) => {
                return Err(TokenFailure::invalid(format!(
                    "No principal name in JWT claim: {}",
                    self.principal_claim
                )))
            }
            Some(other) => {
                return Err(TokenFailure::invalid(format!(
                    "The '{}' claim was not of type String: {}",
                    self.principal_claim,
                    type_name(other)
                )))
            }
        };
        let iat = number_claim(&claims, "iat")?;
        if let Some(iat) = iat {
            if 1000.0 * iat > (now_ms + self.clock_skew_ms) as f64 {
                return Err(TokenFailure::invalid(format!(
                    "The Issued At value ({iat:.6} seconds) was after the indicated time ({now_ms} ms) \
                     plus allowable clock skew ({} ms)",
                    self.clock_skew_ms
                )));
            }
        }
        if (now_ms - self.clock_skew_ms) as f64 >= 1000.0 * exp {
            return Err(TokenFailure::invalid(format!(
                "The indicated time ({now_ms} ms) minus allowable clock skew ({} ms) was on or after \
                 the Expiration Time value ({exp:.6} seconds)",
                self.clock_skew_ms
            )));
        }
        if let Some(iat) = iat {
            if exp <= iat {
                return Err(TokenFailure::invalid(format!(
                    "The Expiration Time time ({exp:.6} seconds) was not after the Issued At time \
                     ({iat:.6} seconds)"
                )));
            }
        }
        let scope = scope_of(&claims, &self.scope_claim, false);
        if let Some(missing) = self.required_scope.iter().find(|s| !scope.contains(*s)) {
            return Err(TokenFailure {
                scope: Some(list_string(&self.required_scope)),
                reason: format!(
                    "The provided scope ({}) was missing a required scope ({missing}).  All \
                     required scope elements: {}",
                    list_string(&scope.iter().cloned().collect::<Vec<_>>()),
                    list_string(&self.required_scope)
                ),
            });
        }
        Ok(ValidToken {
            principal,
            expires_at_ms: seconds_to_ms(exp),
            scope,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// JWKS and signatures.

/// One verification key of a JWKS (RFC 7517): RSA or EC (P-256, P-384).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Jwk {
    pub kid: Option<String>,
    /// The `alg` the key is pinned to, if it says.
    pub alg: Option<String>,
    pub key: JwkKey,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JwkKey {
    /// Modulus and exponent, big-endian.
    Rsa { n: Vec<u8>, e: Vec<u8> },
    /// The uncompressed point 0x04 || x || y, and the curve.
    Ec { curve: EcCurve, point: Vec<u8> },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EcCurve {
    P256,
    P384,
}

/// Parses a JWKS document: its signing keys of the types served. Keys of other types, or
/// whose `use` is not `sig`, are skipped, as jose4j skips them.
pub fn parse_jwks(bytes: &[u8]) -> Result<Vec<Jwk>, String> {
    let doc: Value = serde_json::from_slice(bytes).map_err(|e| format!("not JSON: {e}"))?;
    let keys = doc
        .get("keys")
        .and_then(Value::as_array)
        .ok_or("no \"keys\" array")?;
    let mut out = Vec::new();
    for k in keys {
        let s = |name: &str| k.get(name).and_then(Value::as_str);
        if s("use").is_some_and(|u| u != "sig") {
            continue;
        }
        let bytes_of = |name: &str| s(name).and_then(b64);
        let key = match s("kty") {
            Some("RSA") => match (bytes_of("n"), bytes_of("e")) {
                (Some(n), Some(e)) if !n.is_empty() && !e.is_empty() => JwkKey::Rsa { n, e },
                _ => continue,
            },
            Some("EC") => {
                let (curve, len) = match s("crv") {
                    Some("P-256") => (EcCurve::P256, 32),
                    Some("P-384") => (EcCurve::P384, 48),
                    _ => continue,
                };
                match (bytes_of("x"), bytes_of("y")) {
                    (Some(x), Some(y)) if x.len() == len && y.len() == len => {
                        let mut point = Vec::with_capacity(1 + 2 * len);
                        point.push(4);
                        point.extend_from_slice(&x);
                        point.extend_from_slice(&y);
                        JwkKey::Ec { curve, point }
                    }
                    _ => continue,
                }
            }
            _ => continue,
        };
        out.push(Jwk {
            kid: s("kid").map(str::to_string),
            alg: s("alg").map(str::to_string),
            key,
        });
    }
    Ok(out)
}

/// Whether `key` can check a signature of `alg`.
fn key_fits(key: &Jwk, alg: &str) -> bool {
    if key.alg.as_deref().is_some_and(|a| a != alg) {
        return false;
    }
    match &key.key {
        JwkKey::Rsa { .. } => alg.starts_with("RS") || alg.starts_with("PS"),
        JwkKey::Ec { curve, .. } => {
            matches!(
                (curve, alg),
                (EcCurve::P256, "ES256") | (EcCurve::P384, "ES384")
            )
        }
    }
}

/// Checks `signature` over `message` with `key` for `alg`.
fn verify(alg: &str, key: &JwkKey, message: &[u8], signature: &[u8]) -> bool {
    use ring::signature as sig;
    match key {
        JwkKey::Rsa { n, e } => {
            let params: &sig::RsaParameters = match alg {
                "RS256" => &sig::RSA_PKCS1_2048_8192_SHA256,
                "RS384" => &sig::RSA_PKCS1_2048_8192_SHA384,
                "RS512" => &sig::RSA_PKCS1_2048_8192_SHA512,
                "PS256" => &sig::RSA_PSS_2048_8192_SHA256,
                "PS384" => &sig::RSA_PSS_2048_8192_SHA384,
                "PS512" => &sig::RSA_PSS_2048_8192_SHA512,
                _ => return false,
            };
            sig::RsaPublicKeyComponents { n, e }
                .verify(params, message, signature)
                .is_ok()
        }
        JwkKey::Ec { curve, point } => {
            let alg: &dyn sig::VerificationAlgorithm = match (curve, alg) {
                (EcCurve::P256, "ES256") => &sig::ECDSA_P256_SHA256_FIXED,
                (EcCurve::P384, "ES384") => &sig::ECDSA_P384_SHA384_FIXED,
                _ => return false,
            };
            sig::UnparsedPublicKey::new(alg, point)
                .verify(message, signature)
                .is_ok()
        }
    }
}

/// The signature algorithms KIP-768's validator takes here.
const SIGNED_ALGS: &[&str] = &[
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384",
];

// ---------------------------------------------------------------------------------------------
// KIP-768's validator.

/// `OAuthBearerValidatorCallbackHandler` with `BrokerJwtValidator`'s rules (jose4j's
/// consumer: a signature from a JWKS key, `exp` and `iat` required, `nbf` honoured, the
/// clock skew on each, `aud` and `iss` when configured).
#[derive(Debug)]
pub struct JwtValidator {
    /// `sasl.oauthbearer.expected.audience` (any one must be in `aud`).
    expected_audience: Vec<String>,
    /// `sasl.oauthbearer.expected.issuer`.
    expected_issuer: Option<String>,
    /// `sasl.oauthbearer.sub.claim.name` (default `sub`).
    sub_claim: String,
    /// `sasl.oauthbearer.scope.claim.name` (default `scope`).
    scope_claim: String,
    /// `sasl.oauthbearer.clock.skew.seconds` (default 30).
    clock_skew_s: i64,
    keys: Arc<JwksKeys>,
}

/// What a key lookup found.
enum KeyLookup {
    Found(Vec<Jwk>),
    /// The key set is not there yet (the endpoint has not answered).
    Unavailable(String),
    /// No key with this kid (a refresh is asked for).
    UnknownKid(String),
}

impl JwtValidator {
    /// Checks `token` at `now_ms` (ms since the epoch).
    pub fn validate(&self, token: &str, now_ms: i64) -> Result<ValidToken, TokenFailure> {
        let splits: Vec<&str> = token.split('.').collect();
        if splits.len() != 3 || splits.iter().any(|s| s.is_empty()) {
            return Err(TokenFailure::invalid(
                "Malformed JWT provided; expected three sections (header, payload, and signature)",
            ));
        }
        let header = json_object(splits[0], "header")?;
        let claims = json_object(splits[1], "payload")?;
        let alg = header.get("alg").and_then(Value::as_str).unwrap_or("");
        if !SIGNED_ALGS.contains(&alg) {
            return Err(TokenFailure::invalid(format!(
                "the JWS algorithm {alg:?} is not accepted (one of {})",
                SIGNED_ALGS.join(", ")
            )));
        }
        let signature =
            b64(splits[2]).ok_or_else(|| TokenFailure::invalid("signature: malformed Base64"))?;
        let kid = header.get("kid").and_then(Value::as_str);
        let candidates = match self.keys.lookup(kid, alg) {
            KeyLookup::Found(keys) => keys,
            KeyLookup::Unavailable(why) => return Err(TokenFailure::invalid(why)),
            KeyLookup::UnknownKid(why) => return Err(TokenFailure::invalid(why)),
        };
        let signed = &token.as_bytes()[..splits[0].len() + 1 + splits[1].len()];
        if !candidates
            .iter()
            .any(|k| verify(alg, &k.key, signed, &signature))
        {
            return Err(TokenFailure::invalid(format!(
                "JWT rejected due to invalid signature ({alg}, kid {})",
                kid.unwrap_or("none")
            )));
        }
        let skew_ms = self.clock_skew_s.saturating_mul(1000);
        let Some(exp) = number_claim(&claims, "exp")? else {
            return Err(TokenFailure::invalid(
                "No Expiration Time (exp) claim present.",
            ));
        };
        let Some(iat) = number_claim(&claims, "iat")? else {
            return Err(TokenFailure::invalid("No Issued At (iat) claim present."));
        };
        let exp_ms = seconds_to_ms(exp);
        if now_ms >= exp_ms.saturating_add(skew_ms) {
            return Err(TokenFailure::invalid(format!(
                "The JWT is no longer valid - the evaluation time {now_ms} ms is on or after the \
                 Expiration Time (exp={exp}) claim value (even when providing {} seconds of \
                 leeway to account for clock skew).",
                self.clock_skew_s
            )));
        }
        if let Some(nbf) = number_claim(&claims, "nbf")? {
            if now_ms.saturating_add(skew_ms) < seconds_to_ms(nbf) {
                return Err(TokenFailure::invalid(format!(
                    "The JWT is not yet valid as the evaluation time {now_ms} ms is before the Not \
                     Before (nbf={nbf}) claim time (even when providing {} seconds of leeway).",
                    self.clock_skew_s
                )));
            }
        }
        // jose4j requires iat but, without issued-at restrictions, does not check its value.
        let _ = iat;
        let audiences: Vec<String> = match claims.get("aud") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::String(s)) => vec![s.clone()],
            Some(Value::Array(a)) => a
                .iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect(),
            Some(other) => {
                return Err(TokenFailure::invalid(format!(
                    "the aud claim is a {}",
                    type_name(other)
                )))
            }
        };
        if self.expected_audience.is_empty() {
            // jose4j's default: a token naming an audience needs the consumer to expect one.
            if !audiences.is_empty() {
                return Err(TokenFailure::invalid(format!(
                    "Audience (aud) claim {audiences:?} present in the JWT but no expected audience \
                     value(s) were provided (sasl.oauthbearer.expected.audience)"
                )));
            }
        } else if audiences.is_empty() {
            return Err(TokenFailure::invalid("No Audience (aud) claim present."));
        } else if !audiences.iter().any(|a| self.expected_audience.contains(a)) {
            return Err(TokenFailure::invalid(format!(
                "Audience (aud) claim {audiences:?} doesn't contain an acceptable identifier. \
                 Expected one of {:?} as an aud value.",
                self.expected_audience
            )));
        }
        if let Some(expected) = &self.expected_issuer {
            match claims.get("iss").and_then(Value::as_str) {
                Some(iss) if iss == expected => {}
                Some(iss) => {
                    return Err(TokenFailure::invalid(format!(
                    "Issuer (iss) claim value ({iss}) doesn't match expected value of {expected}"
                )))
                }
                None => return Err(TokenFailure::invalid("No Issuer (iss) claim present.")),
            }
        }
        let principal = match claims.get(&self.sub_claim) {
            Some(Value::String(s)) if !s.trim().is_empty() => s.trim().to_string(),
            _ => {
                return Err(TokenFailure::invalid(format!(
                    "The {} claim value is missing or empty",
                    self.sub_claim
                )))
            }
        };
        Ok(ValidToken {
            principal,
            expires_at_ms: exp_ms,
            scope: scope_of(&claims, &self.scope_claim, true),
        })
    }
}

/// Where the JWKS comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
enum JwksSource {
    File(std::path::PathBuf),
    Http { url: String },
}

/// The key set now held, and how it got there.
#[derive(Debug, Default)]
struct KeyState {
    keys: Vec<Jwk>,
    /// A key set was read at least once.
    loaded: bool,
    /// The last fetch's failure, if it failed.
    last_error: Option<String>,
}

/// The JWKS keys in memory and their refresher.
#[derive(Debug)]
pub struct JwksKeys {
    source: JwksSource,
    /// `sasl.oauthbearer.jwks.endpoint.url`, for log lines.
    url: String,
    current: ArcSwap<KeyState>,
    /// For an https: endpoint, the TLS client (Kafka's `ssl.truststore.*` JAAS options, else
    /// the system's CA bundle).
    tls: Option<Arc<rustls::ClientConfig>>,
    refresh_every: Duration,
    backoff_min: Duration,
    backoff_max: Duration,
    /// Set once the background task runs.
    started: AtomicBool,
    /// Wakes the task for an early refresh (an unknown kid).
    wake: Arc<tokio::sync::Notify>,
    /// When the last early refresh was asked for (at most one per backoff).
    last_expedite: Mutex<Option<Instant>>,
}

impl JwksKeys {
    fn lookup(&self, kid: Option<&str>, alg: &str) -> KeyLookup {
        let state = self.current.load();
        if !state.loaded {
            return KeyLookup::Unavailable(format!(
                "no JWKS from {} yet{}",
                self.url,
                state
                    .last_error
                    .as_deref()
                    .map(|e| format!(": {e}"))
                    .unwrap_or_default()
            ));
        }
        let found: Vec<Jwk> = state
            .keys
            .iter()
            .filter(|k| kid.is_none_or(|kid| k.kid.as_deref() == Some(kid)) && key_fits(k, alg))
            .cloned()
            .collect();
        if found.is_empty() {
            self.expedite();
            return KeyLookup::UnknownKid(format!(
                "no key in the JWKS of {} for kid {} and {alg}; refreshing it",
                self.url,
                kid.unwrap_or("(none)")
            ));
        }
        KeyLookup::Found(found)
    }

    /// Asks the task for an early refresh, at most once per retry backoff.
    fn expedite(&self) {
        let now = Instant::now();
        let Ok(mut last) = self.last_expedite.lock() else {
            return;
        };
        if last.is_some_and(|t| {
            now.saturating_duration_since(t) < self.backoff_min.max(Duration::from_millis(500))
        }) {
            return;
        }
        *last = Some(now);
        drop(last);
        self.wake.notify_one();
    }

    /// Reads the key set once, now (file: sources at start; tests).
    fn load_now(&self, bytes: &[u8]) -> Result<usize, String> {
        let keys = parse_jwks(bytes)?;
        let n = keys.len();
        self.current.store(Arc::new(KeyState {
            keys,
            loaded: true,
            last_error: None,
        }));
        Ok(n)
    }

    fn record_failure(&self, error: String) {
        let old = self.current.load();
        self.current.store(Arc::new(KeyState {
            keys: old.keys.clone(),
            loaded: old.loaded,
            last_error: Some(error),
        }));
    }
}

/// Starts [`JwksKeys`]'s refresher on the current tokio runtime, once.
fn spawn_refresher(keys: &Arc<JwksKeys>) {
    if keys.started.swap(true, Ordering::SeqCst) {
        return;
    }
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        keys.started.store(false, Ordering::SeqCst);
        return;
    };
    // The task holds the keys only while it fetches: it ends once the listener's settings are
    // dropped.
    let weak: Weak<JwksKeys> = Arc::downgrade(keys);
    let wake = Arc::clone(&keys.wake);
    runtime.spawn(async move {
        let mut backoff: Option<Duration> = None;
        loop {
            let Some(keys) = weak.upgrade() else { return };
            let fetched = fetch(&keys.source, keys.tls.as_ref()).await;
            let wait = match fetched.and_then(|bytes| keys.load_now(&bytes)) {
                Ok(n) => {
                    if backoff.is_some() || keys.current.load().last_error.is_some() {
                        info!(url = %keys.url, keys = n, "JWKS fetched; OAUTHBEARER logins are checked against it");
                    }
                    backoff = None;
                    keys.refresh_every
                }
                Err(e) => {
                    let next = backoff.map_or(keys.backoff_min, |b| (b * 2).min(keys.backoff_max));
                    backoff = Some(next);
                    let loaded = keys.current.load().loaded;
                    warn!(url = %keys.url, error = %e, retry_in_ms = next.as_millis() as u64,
                        "JWKS endpoint (sasl.oauthbearer.jwks.endpoint.url) could not be read; {}",
                        if loaded {
                            "OAUTHBEARER logins are checked against the keys read before"
                        } else {
                            "OAUTHBEARER logins are refused until it answers"
                        });
                    keys.record_failure(e);
                    next
                }
            };
            // Woken early for an unknown kid, else after the refresh interval or backoff.
            drop(keys);
            let notified = wake.notified();
            tokio::select! {
                _ = notified => {}
                _ = tokio::time::sleep(wait) => {}
            }
        }
    });
}

/// How long one JWKS fetch may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest JWKS read.
const MAX_JWKS_BYTES: usize = 1 << 20;

async fn fetch(
    source: &JwksSource,
    tls: Option<&Arc<rustls::ClientConfig>>,
) -> Result<Vec<u8>, String> {
    match source {
        JwksSource::File(path) => tokio::fs::read(path)
            .await
            .map_err(|e| format!("{}: {e}", path.display())),
        JwksSource::Http { url } => {
            match tokio::time::timeout(FETCH_TIMEOUT, http_get(url, tls)).await {
                Ok(r) => r,
                Err(_) => Err(format!("no answer within {} s", FETCH_TIMEOUT.as_secs())),
            }
        }
    }
}

/// One HTTP/1.1 GET of an `http:` or `https:` URL with hyper's client (the body read to its
/// end, at most [`MAX_JWKS_BYTES`]).
async fn http_get(url: &str, tls: Option<&Arc<rustls::ClientConfig>>) -> Result<Vec<u8>, String> {
    let uri: hyper::Uri = url.parse().map_err(|e| format!("{url}: {e}"))?;
    let https = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => return Err(format!("{url}: only http:, https: and file: URLs are read")),
    };
    let authority = uri
        .authority()
        .ok_or_else(|| format!("{url}: no host"))?
        .as_str()
        .to_string();
    let host = uri.host().unwrap_or_default();
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let request = hyper::Request::get(path)
        .header(hyper::header::HOST, authority.as_str())
        .header(hyper::header::ACCEPT, "application/json")
        .header(hyper::header::USER_AGENT, "gregor")
        .body(http_body_util::Empty::<hyper::body::Bytes>::new())
        .map_err(|e| format!("{url}: {e}"))?;
    let tcp = tokio::net::TcpStream::connect((host, port))
        .await
        .map_err(|e| format!("connect to {authority}: {e}"))?;
    let (status, body) = if https {
        let tls = tls.ok_or_else(|| format!("{url}: no TLS settings for an https: URL"))?;
        let name = rustls_pki_types::ServerName::try_from(host.to_string())
            .map_err(|e| format!("{url}: {e}"))?;
        let stream = tokio_rustls::TlsConnector::from(Arc::clone(tls))
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS with {authority}: {e}"))?;
        send(stream, request).await
    } else {
        send(tcp, request).await
    }
    .map_err(|e| format!("GET {url}: {e}"))?;
    if !(200..300).contains(&status) {
        return Err(format!("GET {url}: HTTP {status}"));
    }
    Ok(body)
}

/// Sends `request` over `stream` (one HTTP/1.1 connection) and reads the answer's status and
/// body, refusing a body over [`MAX_JWKS_BYTES`].
async fn send<S>(
    stream: S,
    request: hyper::Request<http_body_util::Empty<hyper::body::Bytes>>,
) -> Result<(u16, Vec<u8>), String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    use http_body_util::BodyExt;
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
    // The connection is driven by its own task; it ends when the sender is dropped.
    let driver = tokio::spawn(async move {
        let _ = connection.await;
    });
    let answer = async {
        let response = sender
            .send_request(request)
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        let body = http_body_util::Limited::new(response.into_body(), MAX_JWKS_BYTES)
            .collect()
            .await
            .map_err(|e| format!("the body: {e}"))?
            .to_bytes();
        Ok((status, body.to_vec()))
    }
    .await;
    driver.abort();
    answer
}

// ---------------------------------------------------------------------------------------------
// One listener's OAUTHBEARER server.

/// Which validator a listener runs.
#[derive(Debug)]
enum Validator {
    Unsecured(UnsecuredValidator),
    Jwks(JwtValidator),
}

/// One listener's OAUTHBEARER: its validator, built from the listener's keys.
#[derive(Debug)]
pub struct OAuthBearerServer {
    validator: Validator,
    /// The keys it was built from (two servers are the same when these are).
    source: BTreeMap<String, String>,
}

impl PartialEq for OAuthBearerServer {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

impl Eq for OAuthBearerServer {}

/// The keys of one listener that say how OAUTHBEARER is served (already folded: its
/// `listener.name.<l>.` keys over the global ones).
fn oauth_keys(props: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    props
        .iter()
        .filter(|(k, _)| {
            k.starts_with("sasl.oauthbearer.")
                || k.as_str() == "oauthbearer.sasl.jaas.config"
                || k.as_str() == "sasl.jaas.config"
                || k.as_str() == "oauthbearer.sasl.server.callback.handler.class"
                || k.as_str() == "sasl.server.callback.handler.class"
        })
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

impl OAuthBearerServer {
    /// Reads a listener's OAUTHBEARER keys, as Kafka's `SaslChannelBuilder` does: the JAAS
    /// config (`oauthbearer.sasl.jaas.config` or `sasl.jaas.config`, OAuthBearerLoginModule),
    /// the callback handler (`oauthbearer.sasl.server.callback.handler.class`, default the
    /// unsecured validator), and for KIP-768's handler the `sasl.oauthbearer.*` keys.
    pub fn from_props(
        props: &BTreeMap<String, String>,
    ) -> Result<OAuthBearerServer, OAuthConfigError> {
        let source = oauth_keys(props);
        let (jaas_key, jaas) = match props.get_key_value("oauthbearer.sasl.jaas.config") {
            Some(kv) => kv,
            None => props.get_key_value("sasl.jaas.config").ok_or_else(|| {
                config_error(
                    "oauthbearer.sasl.jaas.config",
                    format!(
                        "OAUTHBEARER needs a JAAS config: set listener.name.<listener>.oauthbearer.sasl.jaas.config \
                         to {LOGIN_MODULE} required;"
                    ),
                )
            })?,
        };
        let (module, options) =
            crate::sasl::parse_jaas(jaas).map_err(|reason| config_error(jaas_key, reason))?;
        if module != LOGIN_MODULE {
            return Err(config_error(
                jaas_key,
                format!("{module}: OAUTHBEARER takes {LOGIN_MODULE}"),
            ));
        }
        let handler = props
            .get("oauthbearer.sasl.server.callback.handler.class")
            .or_else(|| props.get("sasl.server.callback.handler.class"))
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty());
        let validator = match handler.as_deref() {
            None | Some(UNSECURED_VALIDATOR) => {
                Validator::Unsecured(UnsecuredValidator::from_options(&options)?)
            }
            Some(JWKS_VALIDATOR | JWKS_VALIDATOR_INTERNAL) => {
                Validator::Jwks(jwt_validator(props, &options)?)
            }
            Some(other) => {
                return Err(config_error(
                    "oauthbearer.sasl.server.callback.handler.class",
                    format!(
                    "{other} is not served by gregor; it runs {UNSECURED_VALIDATOR} (the default) \
                         or {JWKS_VALIDATOR}"
                ),
                ))
            }
        };
        Ok(OAuthBearerServer { validator, source })
    }

    /// Starts what runs in the background (the JWKS refresher), on the current runtime.
    pub fn start(&self) {
        if let Validator::Jwks(v) = &self.validator {
            spawn_refresher(&v.keys);
        }
    }

    /// Validates `token` now.
    pub fn validate(&self, token: &str) -> Result<ValidToken, TokenFailure> {
        self.validate_at(token, unix_now_ms())
    }

    /// Validates `token` at `now_ms`.
    pub fn validate_at(&self, token: &str, now_ms: i64) -> Result<ValidToken, TokenFailure> {
        match &self.validator {
            Validator::Unsecured(v) => v.validate(token, now_ms),
            Validator::Jwks(v) => {
                spawn_refresher(&v.keys);
                v.validate(token, now_ms)
            }
        }
    }
}

/// Logs why a token or a client message was refused: at INFO the first time a kind of reason
/// is seen in a minute (`refusal_log`, its digits, times and values left out of the key),
/// then at debug, so a client retrying a bad token does not flood the log.
pub(crate) fn log_refusal(what: &str, reason: &str) {
    let kind: String = reason.chars().filter(|c| !c.is_ascii_digit()).collect();
    let key = format!("OAUTHBEARER {what}: {kind}");
    match crate::refusal_log::admit(std::net::IpAddr::from([0, 0, 0, 0]), &key) {
        crate::refusal_log::Verdict::Quiet => tracing::debug!(%reason, "{what}"),
        crate::refusal_log::Verdict::Log { repeated } => {
            info!(%reason, repeats_not_logged = repeated, "{what}")
        }
    }
}

/// The wall clock in ms since the epoch.
pub fn unix_now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn jwt_validator(
    props: &BTreeMap<String, String>,
    options: &[(String, String)],
) -> Result<JwtValidator, OAuthConfigError> {
    // Kafka takes these keys from the broker config or, for older setups, the JAAS options.
    let get = |key: &str| {
        props
            .get(key)
            .cloned()
            .or_else(|| crate::sasl::jaas_option(options, key).map(str::to_string))
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    let ms = |key: &str, default: u64| -> Result<u64, OAuthConfigError> {
        match get(key) {
            None => Ok(default),
            Some(v) => v.parse::<u64>().map_err(|_| {
                config_error(key, format!("{v:?} is not a non-negative number of ms"))
            }),
        }
    };
    let url_key = "sasl.oauthbearer.jwks.endpoint.url";
    let url = get(url_key).ok_or_else(|| {
        config_error(
            url_key,
            format!("{JWKS_VALIDATOR} needs the JWKS endpoint: an http(s): or file: URL"),
        )
    })?;
    let source = if let Some(path) = url.strip_prefix("file:") {
        // file:/path and file:///path both name /path.
        let path = path.strip_prefix("//").unwrap_or(path);
        JwksSource::File(std::path::PathBuf::from(path))
    } else if url.starts_with("http://") || url.starts_with("https://") {
        JwksSource::Http { url: url.clone() }
    } else {
        return Err(config_error(
            url_key,
            format!("{url}: not an http:, https: or file: URL"),
        ));
    };
    let tls = if url.starts_with("https://") {
        Some(jwks_tls(options).map_err(|reason| config_error(url_key, reason))?)
    } else {
        None
    };
    let clock_skew_s = match get("sasl.oauthbearer.clock.skew.seconds") {
        None => 30,
        Some(v) => v.parse::<i64>().ok().filter(|n| *n >= 0).ok_or_else(|| {
            config_error(
                "sasl.oauthbearer.clock.skew.seconds",
                format!("{v:?} is not a non-negative number"),
            )
        })?,
    };
    let refresh_ms = ms("sasl.oauthbearer.jwks.endpoint.refresh.ms", 3_600_000)?;
    if refresh_ms < 10_000 {
        return Err(config_error(
            "sasl.oauthbearer.jwks.endpoint.refresh.ms",
            "must be at least 10000 (Kafka's bound)",
        ));
    }
    let backoff_min = ms("sasl.oauthbearer.jwks.endpoint.retry.backoff.ms", 100)?;
    let backoff_max = ms(
        "sasl.oauthbearer.jwks.endpoint.retry.backoff.max.ms",
        10_000,
    )?;
    let keys = Arc::new(JwksKeys {
        source: source.clone(),
        url: url.clone(),
        current: ArcSwap::from_pointee(KeyState::default()),
        tls,
        refresh_every: Duration::from_millis(refresh_ms),
        backoff_min: Duration::from_millis(backoff_min.max(1)),
        backoff_max: Duration::from_millis(backoff_max.max(backoff_min).max(1)),
        started: AtomicBool::new(false),
        wake: Arc::new(tokio::sync::Notify::new()),
        last_expedite: Mutex::new(None),
    });
    if let JwksSource::File(path) = &source {
        // Kafka reads a file JWKS at start and refuses a missing or damaged one.
        let bytes = std::fs::read(path)
            .map_err(|e| config_error(url_key, format!("{}: {e}", path.display())))?;
        keys.load_now(&bytes)
            .map_err(|e| config_error(url_key, format!("{}: {e}", path.display())))?;
    }
    Ok(JwtValidator {
        expected_audience: get("sasl.oauthbearer.expected.audience")
            .map(|v| {
                v.split(',')
                    .map(|a| a.trim().to_string())
                    .filter(|a| !a.is_empty())
                    .collect()
            })
            .unwrap_or_default(),
        expected_issuer: get("sasl.oauthbearer.expected.issuer"),
        sub_claim: get("sasl.oauthbearer.sub.claim.name").unwrap_or_else(|| "sub".into()),
        scope_claim: get("sasl.oauthbearer.scope.claim.name").unwrap_or_else(|| "scope".into()),
        clock_skew_s,
        keys,
    })
}

/// The system's CA bundles; the first found is trusted for https: JWKS endpoints.
const SYSTEM_CA_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/cert.pem",
];

/// The TLS client of an https: JWKS endpoint: the truststore of the JAAS options, as Kafka's
/// `JaasOptionsUtils` reads it (`ssl.truststore.location`, `.type`, `.password`, or inline
/// `ssl.truststore.certificates`), else the system's CA bundle.
fn jwks_tls(options: &[(String, String)]) -> Result<Arc<rustls::ClientConfig>, String> {
    use gregor_client::keystore::truststore_spec;
    let option = |k: &str| crate::sasl::jaas_option(options, k).map(str::to_string);
    let spec = match truststore_spec(&option).map_err(|e| e.to_string())? {
        Some(spec) => spec,
        None => {
            let bundle = SYSTEM_CA_BUNDLES
                .iter()
                .find(|p| std::path::Path::new(p).exists())
                .ok_or(
                    "an https: JWKS endpoint needs the CAs to trust: no system CA bundle found; \
                     set ssl.truststore.location in the JAAS config",
                )?;
            let system = |k: &str| match k {
                "ssl.truststore.location" => Some(bundle.to_string()),
                "ssl.truststore.type" => Some("PEM".to_string()),
                _ => None,
            };
            truststore_spec(&system)
                .map_err(|e| e.to_string())?
                .ok_or("no system truststore")?
        }
    };
    let mut roots = rustls::RootCertStore::empty();
    for cert in spec.load().map_err(|e| e.to_string())? {
        // A bundle may hold certificates rustls cannot use; the others still count.
        let _ = roots.add(cert);
    }
    if roots.is_empty() {
        return Err("the truststore holds no usable CA certificate".to_string());
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use ring::rand::SystemRandom;
    use ring::signature::{self as sig, KeyPair};
    use serde_json::json;

    /// base64url without padding, as JWTs write segments.
    pub(crate) fn b64url(bytes: &[u8]) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    }

    /// An unsecured JWS (`alg: none`) of these claims.
    pub(crate) fn unsecured_token(claims: &Value) -> String {
        format!(
            "{}.{}.",
            b64url(br#"{"alg":"none"}"#),
            b64url(claims.to_string().as_bytes())
        )
    }

    const NOW_MS: i64 = 1_800_000_000_000;
    const NOW_S: i64 = NOW_MS / 1000;

    #[test]
    fn the_client_first_message_is_read_as_kafka_reads_it() {
        let m = parse_client_first(b"n,,\x01auth=Bearer abc.def.\x01\x01").expect("parses");
        assert_eq!(m.token, "abc.def.");
        assert_eq!(m.authorization_id, "");
        assert!(m.extensions.is_empty());

        let m = parse_client_first(
            b"n,a=alice,\x01auth=bearer  x-y_z.1\x01traceId=123 abc\x01logicalCluster=lkc-1\x01\x01",
        )
        .expect("parses");
        assert_eq!(m.authorization_id, "alice");
        assert_eq!(m.token, "x-y_z.1");
        assert_eq!(
            m.extensions,
            [
                ("logicalCluster".to_string(), "lkc-1".to_string()),
                ("traceId".to_string(), "123 abc".to_string())
            ]
            .into()
        );
        // An escaped authzid is a saslname.
        assert!(parse_client_first(b"n,a=a=2Cb,\x01auth=Bearer t\x01\x01").is_ok());

        for bad in [
            &b""[..],
            b"y,,\x01auth=Bearer t\x01\x01",     // channel binding
            b"n,,auth=Bearer t\x01\x01",         // not framed
            b"n,,\x01auth=Bearer t\x01",         // no final \x01
            b"n,,\x01\x01",                      // no auth
            b"n,,\x01auth=Basic dXNlcg\x01\x01", // another scheme
            b"n,,\x01auth=Bearer\x01\x01",       // no token
            b"n,,\x01auth=Bearer a/b\x01\x01",   // a character a token cannot have
            b"n,,\x01auth=Bearer t\x01ke-y=v\x01\x01", // an extension name not [A-Za-z]+
            b"n,,\x01auth=Bearer t\x01key=\x01\x01", // an empty extension value
            b"n,a=a=b,\x01auth=Bearer t\x01\x01", // '=' not escaped
            b"n,,\x01auth=Bearer t\x01\xff=1\x01\x01",
        ] {
            assert!(
                parse_client_first(bad).is_err(),
                "{:?} accepted",
                String::from_utf8_lossy(bad)
            );
        }
    }

    fn unsecured(options: &[(&str, &str)]) -> UnsecuredValidator {
        let options: Vec<(String, String)> = options
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        UnsecuredValidator::from_options(&options).expect("options")
    }

    #[test]
    fn the_unsecured_validator_checks_what_kafka_checks() {
        let v = unsecured(&[]);
        let ok = unsecured_token(&json!({"sub": "alice", "iat": NOW_S - 10, "exp": NOW_S + 3600}));
        let t = v.validate(&ok, NOW_MS).expect("valid");
        assert_eq!(t.principal, "alice");
        assert_eq!(t.expires_at_ms, (NOW_S + 3600) * 1000);

        let refused = |token: String, v: &UnsecuredValidator, why: &str| {
            let e = v.validate(&token, NOW_MS).expect_err(why);
            assert!(e.reason.contains(why), "{why}: got {}", e.reason);
            e
        };
        // Expired, at the second itself too.
        refused(
            unsecured_token(&json!({"sub": "a", "exp": NOW_S})),
            &v,
            "on or after the Expiration Time",
        );
        // Issued in the future.
        refused(
            unsecured_token(&json!({"sub": "a", "iat": NOW_S + 5, "exp": NOW_S + 60})),
            &v,
            "Issued At value",
        );
        // ... unless within the clock skew.
        let skewed = unsecured(&[("unsecuredValidatorAllowableClockSkewMs", "6000")]);
        assert!(skewed
            .validate(
                &unsecured_token(&json!({"sub": "a", "iat": NOW_S + 5, "exp": NOW_S + 60})),
                NOW_MS
            )
            .is_ok());
        assert!(skewed
            .validate(
                &unsecured_token(&json!({"sub": "a", "exp": NOW_S - 5})),
                NOW_MS
            )
            .is_ok());
        refused(
            unsecured_token(&json!({"sub": "a", "iat": NOW_S + 3, "exp": NOW_S + 2})),
            &skewed,
            "was not after the Issued At time",
        );
        refused(
            unsecured_token(&json!({"sub": "a"})),
            &v,
            "No expiration time",
        );
        refused(
            unsecured_token(&json!({"exp": NOW_S + 60})),
            &v,
            "No principal name in JWT claim: sub",
        );
        refused(
            unsecured_token(&json!({"sub": 7, "exp": NOW_S + 60})),
            &v,
            "not of type String",
        );
        refused(
            unsecured_token(&json!({"sub": "a", "exp": "soon"})),
            &v,
            "not of type Number",
        );
        // A signed token, or one claiming another algorithm.
        refused(
            format!("{}sig", ok),
            &v,
            "must not contain a digital signature",
        );
        refused(
            format!(
                "{}.{}.",
                b64url(br#"{"alg":"RS256"}"#),
                b64url(br#"{"sub":"a","exp":1e12}"#)
            ),
            &v,
            "'none' for an algorithm",
        );
        refused("a..b".to_string(), &v, "contains '..'");
        refused("abc".to_string(), &v, "3 dot-separated");
        refused("!!!.e30.".to_string(), &v, "malformed Base64");
        refused(
            format!("{}.bm90IGpzb24.", b64url(br#"{"alg":"none"}"#)),
            &v,
            "malformed JSON",
        );

        // Another principal claim.
        let v2 = unsecured(&[("unsecuredValidatorPrincipalClaimName", "client_id")]);
        let t = v2
            .validate(
                &unsecured_token(&json!({"client_id": "svc", "exp": NOW_S + 60})),
                NOW_MS,
            )
            .expect("valid");
        assert_eq!(t.principal, "svc");
    }

    #[test]
    fn a_missing_scope_is_insufficient_scope() {
        let v = unsecured(&[
            (
                "unsecuredValidatorRequiredScope",
                "LOGIN_TO_KAFKA KAFKA_BROKER",
            ),
            ("unsecuredValidatorScopeClaimName", "scp"),
        ]);
        let good = unsecured_token(
            &json!({"sub": "a", "exp": NOW_S + 60, "scp": ["KAFKA_BROKER", "LOGIN_TO_KAFKA", "x"]}),
        );
        let t = v.validate(&good, NOW_MS).expect("valid");
        assert!(t.scope.contains("LOGIN_TO_KAFKA"));
        let bad = unsecured_token(&json!({"sub": "a", "exp": NOW_S + 60, "scp": ["KAFKA_BROKER"]}));
        let e = v.validate(&bad, NOW_MS).expect_err("scope");
        assert_eq!(
            e.json(),
            r#"{"status":"insufficient_scope", "scope":"[LOGIN_TO_KAFKA, KAFKA_BROKER]"}"#
        );
        // A string claim is one scope to the unsecured validator, as to Kafka's.
        let one = unsecured_token(
            &json!({"sub": "a", "exp": NOW_S + 60, "scp": "LOGIN_TO_KAFKA KAFKA_BROKER"}),
        );
        assert!(v.validate(&one, NOW_MS).is_err());
        // Other failures are invalid_token, without scope.
        let e = v
            .validate(&unsecured_token(&json!({"sub": "a"})), NOW_MS)
            .expect_err("no exp");
        assert_eq!(e.json(), r#"{"status":"invalid_token"}"#);
    }

    #[test]
    fn bad_unsecured_options_are_refused() {
        for (k, v) in [
            ("unsecuredValidatorAllowableClockSkewMs", "-1"),
            ("unsecuredValidatorAllowableClockSkewMs", "soon"),
        ] {
            assert!(UnsecuredValidator::from_options(&[(k.into(), v.into())]).is_err());
        }
    }

    /// A P-256 key made for the test, and its JWK.
    pub(crate) struct EcKey {
        pair: sig::EcdsaKeyPair,
        pub(crate) kid: String,
    }

    impl EcKey {
        pub(crate) fn generate(kid: &str) -> EcKey {
            let rng = SystemRandom::new();
            let pkcs8 =
                sig::EcdsaKeyPair::generate_pkcs8(&sig::ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
                    .expect("generate");
            let pair = sig::EcdsaKeyPair::from_pkcs8(
                &sig::ECDSA_P256_SHA256_FIXED_SIGNING,
                pkcs8.as_ref(),
                &rng,
            )
            .expect("load");
            EcKey {
                pair,
                kid: kid.to_string(),
            }
        }

        pub(crate) fn jwk(&self) -> Value {
            let point = self.pair.public_key().as_ref();
            json!({"kty": "EC", "crv": "P-256", "kid": self.kid, "use": "sig", "alg": "ES256",
                "x": b64url(&point[1..33]), "y": b64url(&point[33..65])})
        }

        pub(crate) fn sign(&self, claims: &Value) -> String {
            let header = json!({"alg": "ES256", "typ": "JWT", "kid": self.kid});
            let signed = format!(
                "{}.{}",
                b64url(header.to_string().as_bytes()),
                b64url(claims.to_string().as_bytes())
            );
            let s = self
                .pair
                .sign(&SystemRandom::new(), signed.as_bytes())
                .expect("sign");
            format!("{signed}.{}", b64url(s.as_ref()))
        }
    }

    /// An RSA key made by `openssl genpkey` (ring does not generate RSA keys).
    struct RsaKey {
        pair: sig::RsaKeyPair,
        kid: String,
    }

    impl RsaKey {
        fn generate(kid: &str) -> RsaKey {
            let dir = tempfile::tempdir().expect("tempdir");
            let path = dir.path().join("key.der");
            let out = std::process::Command::new("openssl")
                .args([
                    "genpkey",
                    "-algorithm",
                    "RSA",
                    "-pkeyopt",
                    "rsa_keygen_bits:2048",
                ])
                .args(["-outform", "DER", "-out"])
                .arg(&path)
                .output()
                .expect("openssl runs");
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let der = std::fs::read(&path).expect("key");
            // OpenSSL 3.0 writes PKCS#1 here, later ones PKCS#8.
            let pair = sig::RsaKeyPair::from_der(&der)
                .or_else(|_| sig::RsaKeyPair::from_pkcs8(&der))
                .expect("an RSA key");
            RsaKey {
                pair,
                kid: kid.to_string(),
            }
        }

        fn jwk(&self) -> Value {
            let (n, e) = rsa_public_components(self.pair.public().as_ref());
            json!({"kty": "RSA", "kid": self.kid, "use": "sig", "n": b64url(&n), "e": b64url(&e)})
        }

        fn sign(&self, alg: &str, claims: &Value) -> String {
            let header = json!({"alg": alg, "typ": "JWT", "kid": self.kid});
            let signed = format!(
                "{}.{}",
                b64url(header.to_string().as_bytes()),
                b64url(claims.to_string().as_bytes())
            );
            let mut s = vec![0; self.pair.public().modulus_len()];
            let encoding: &dyn sig::RsaEncoding = match alg {
                "PS256" => &sig::RSA_PSS_SHA256,
                _ => &sig::RSA_PKCS1_SHA256,
            };
            self.pair
                .sign(encoding, &SystemRandom::new(), signed.as_bytes(), &mut s)
                .expect("sign");
            format!("{signed}.{}", b64url(&s))
        }
    }

    /// n and e of a DER RSAPublicKey (SEQUENCE { INTEGER n, INTEGER e }).
    fn rsa_public_components(der: &[u8]) -> (Vec<u8>, Vec<u8>) {
        fn tlv(b: &[u8]) -> (u8, &[u8], &[u8]) {
            let tag = b[0];
            let (len, at) = if b[1] < 0x80 {
                (b[1] as usize, 2)
            } else {
                let n = (b[1] & 0x7f) as usize;
                (
                    b[2..2 + n].iter().fold(0usize, |a, x| a << 8 | *x as usize),
                    2 + n,
                )
            };
            (tag, &b[at..at + len], &b[at + len..])
        }
        let (_, seq, _) = tlv(der);
        let (_, n, rest) = tlv(seq);
        let (_, e, _) = tlv(rest);
        let strip = |x: &[u8]| x.iter().skip_while(|b| **b == 0).copied().collect();
        (strip(n), strip(e))
    }

    /// A KIP-768 server over a file JWKS holding `keys`, with these extra keys.
    fn jwks_server(
        keys: &[Value],
        extra: &[(&str, &str)],
    ) -> (OAuthBearerServer, tempfile::TempDir) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("jwks.json");
        std::fs::write(&path, json!({ "keys": keys }).to_string()).expect("write");
        let mut props: BTreeMap<String, String> = [
            (
                "oauthbearer.sasl.jaas.config",
                format!("{LOGIN_MODULE} required;"),
            ),
            (
                "oauthbearer.sasl.server.callback.handler.class",
                JWKS_VALIDATOR.to_string(),
            ),
            (
                "sasl.oauthbearer.jwks.endpoint.url",
                format!("file:{}", path.display()),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        for (k, v) in extra {
            props.insert(k.to_string(), v.to_string());
        }
        (OAuthBearerServer::from_props(&props).expect("server"), dir)
    }

    fn claims(sub: &str, exp: i64) -> Value {
        json!({"sub": sub, "iat": NOW_S - 5, "exp": exp})
    }

    #[test]
    fn kip_768_checks_the_signature_against_the_jwks() {
        let key = EcKey::generate("k1");
        let other = EcKey::generate("k1");
        let (server, _dir) = jwks_server(&[key.jwk()], &[]);
        let t = server
            .validate_at(&key.sign(&claims("alice", NOW_S + 600)), NOW_MS)
            .expect("valid");
        assert_eq!(t.principal, "alice");
        // Another key with the same kid: a bad signature.
        let e = server
            .validate_at(&other.sign(&claims("alice", NOW_S + 600)), NOW_MS)
            .expect_err("bad signature");
        assert!(e.reason.contains("invalid signature"), "{}", e.reason);
        // A payload changed after signing.
        let token = key.sign(&claims("alice", NOW_S + 600));
        let parts: Vec<&str> = token.split('.').collect();
        let forged = format!(
            "{}.{}.{}",
            parts[0],
            b64url(claims("root", NOW_S + 600).to_string().as_bytes()),
            parts[2]
        );
        assert!(server.validate_at(&forged, NOW_MS).is_err());
        // An unknown kid.
        let stranger = EcKey::generate("k2");
        let e = server
            .validate_at(&stranger.sign(&claims("a", NOW_S + 600)), NOW_MS)
            .expect_err("unknown kid");
        assert!(e.reason.contains("no key"), "{}", e.reason);
        // alg none is not a signature.
        let e = server
            .validate_at(&unsecured_token(&claims("a", NOW_S + 600)), NOW_MS)
            .expect_err("none");
        assert_eq!(e.json(), r#"{"status":"invalid_token"}"#);
    }

    #[test]
    fn kip_768_takes_rsa_keys() {
        let key = RsaKey::generate("rsa-1");
        let (server, _dir) = jwks_server(&[key.jwk()], &[]);
        for alg in ["RS256", "PS256"] {
            let t = server
                .validate_at(&key.sign(alg, &claims("bob", NOW_S + 600)), NOW_MS)
                .unwrap_or_else(|e| panic!("{alg}: {}", e.reason));
            assert_eq!(t.principal, "bob");
        }
        // One signature byte changed.
        let token = key.sign("RS256", &claims("bob", NOW_S + 600));
        let at = token.len() - 10;
        let flipped = if &token[at..=at] == "A" { "B" } else { "A" };
        let token = format!("{}{flipped}{}", &token[..at], &token[at + 1..]);
        assert!(server.validate_at(&token, NOW_MS).is_err());
    }

    #[test]
    fn kip_768_checks_time_audience_issuer_and_subject() {
        let key = EcKey::generate("k");
        let (plain, _d1) = jwks_server(&[key.jwk()], &[]);
        let at = |s: &OAuthBearerServer, c: Value| s.validate_at(&key.sign(&c), NOW_MS);
        // exp, with the default 30 s of skew.
        assert!(at(&plain, claims("a", NOW_S - 20)).is_ok());
        assert!(at(&plain, claims("a", NOW_S - 31)).is_err());
        assert!(
            at(&plain, json!({"sub": "a", "iat": NOW_S})).is_err(),
            "no exp"
        );
        assert!(
            at(&plain, json!({"sub": "a", "exp": NOW_S + 60})).is_err(),
            "no iat"
        );
        assert!(at(
            &plain,
            json!({"sub": "a", "iat": NOW_S, "exp": NOW_S + 60, "nbf": NOW_S + 100})
        )
        .is_err());
        assert!(at(
            &plain,
            json!({"sub": "a", "iat": NOW_S, "exp": NOW_S + 60, "nbf": NOW_S + 10})
        )
        .is_ok());
        assert!(
            at(&plain, json!({"iat": NOW_S, "exp": NOW_S + 60})).is_err(),
            "no sub"
        );
        // An audience in the token with none expected (jose4j's rule).
        assert!(at(
            &plain,
            json!({"sub": "a", "iat": NOW_S, "exp": NOW_S + 60, "aud": "kafka"})
        )
        .is_err());

        let (strict, _d2) = jwks_server(
            &[key.jwk()],
            &[
                ("sasl.oauthbearer.expected.audience", "kafka, other"),
                ("sasl.oauthbearer.expected.issuer", "https://idp.example"),
                ("sasl.oauthbearer.sub.claim.name", "client_id"),
                ("sasl.oauthbearer.clock.skew.seconds", "0"),
            ],
        );
        let good = json!({"client_id": "svc", "iat": NOW_S, "exp": NOW_S + 60,
            "aud": ["x", "kafka"], "iss": "https://idp.example", "scope": "a b"});
        let t = at(&strict, good.clone()).expect("valid");
        assert_eq!(t.principal, "svc");
        assert_eq!(t.scope, ["a".to_string(), "b".to_string()].into());
        let with = |k: &str, v: Value| {
            let mut c = good.clone();
            c[k] = v;
            c
        };
        assert!(at(&strict, with("aud", json!("nobody"))).is_err());
        assert!(at(&strict, with("aud", Value::Null)).is_err());
        assert!(at(&strict, with("iss", json!("https://evil.example"))).is_err());
        assert!(at(&strict, with("iss", Value::Null)).is_err());
        assert!(at(&strict, with("client_id", json!(""))).is_err());
        assert!(
            at(&strict, with("exp", json!(NOW_S - 1))).is_err(),
            "no skew"
        );
    }

    #[test]
    fn kip_768_settings_are_checked_at_start() {
        let base = |extra: &[(&str, &str)]| {
            let mut props: BTreeMap<String, String> = [
                (
                    "oauthbearer.sasl.jaas.config",
                    format!("{LOGIN_MODULE} required;"),
                ),
                (
                    "oauthbearer.sasl.server.callback.handler.class",
                    JWKS_VALIDATOR.to_string(),
                ),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
            for (k, v) in extra {
                props.insert(k.to_string(), v.to_string());
            }
            OAuthBearerServer::from_props(&props)
        };
        let key_of = |r: Result<OAuthBearerServer, OAuthConfigError>| r.expect_err("refused").key;
        assert_eq!(key_of(base(&[])), "sasl.oauthbearer.jwks.endpoint.url");
        assert_eq!(
            key_of(base(&[(
                "sasl.oauthbearer.jwks.endpoint.url",
                "file:/nonexistent/jwks.json"
            )])),
            "sasl.oauthbearer.jwks.endpoint.url"
        );
        assert_eq!(
            key_of(base(&[(
                "sasl.oauthbearer.jwks.endpoint.url",
                "ftp://x/jwks"
            )])),
            "sasl.oauthbearer.jwks.endpoint.url"
        );
        assert_eq!(
            key_of(base(&[
                (
                    "sasl.oauthbearer.jwks.endpoint.url",
                    "http://127.0.0.1:1/jwks"
                ),
                ("sasl.oauthbearer.clock.skew.seconds", "-3"),
            ])),
            "sasl.oauthbearer.clock.skew.seconds"
        );
        assert!(base(&[(
            "sasl.oauthbearer.jwks.endpoint.url",
            "http://127.0.0.1:1/jwks"
        )])
        .is_ok());
        // Another handler, another login module, no JAAS config.
        let props = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        assert!(OAuthBearerServer::from_props(&props(&[
            (
                "oauthbearer.sasl.jaas.config",
                &format!("{LOGIN_MODULE} required;")
            ),
            (
                "oauthbearer.sasl.server.callback.handler.class",
                "com.example.Mine"
            ),
        ]))
        .is_err());
        assert!(OAuthBearerServer::from_props(&props(&[(
            "sasl.jaas.config",
            "org.apache.kafka.common.security.plain.PlainLoginModule required;"
        )]))
        .is_err());
        assert!(OAuthBearerServer::from_props(&props(&[])).is_err());
        // The default: the unsecured validator.
        assert!(OAuthBearerServer::from_props(&props(&[(
            "sasl.jaas.config",
            &format!("{LOGIN_MODULE} required unsecuredLoginStringClaim_sub=\"admin\";")
        )]))
        .is_ok());
    }

    #[test]
    fn jwks_documents_keep_the_signing_keys_they_can_use() {
        let ec = EcKey::generate("e");
        let doc = json!({"keys": [
            ec.jwk(),
            {"kty": "RSA", "kid": "enc", "use": "enc", "n": "AQAB", "e": "AQAB"},
            {"kty": "oct", "k": "c2VjcmV0"},
            {"kty": "EC", "crv": "P-521", "x": "AA", "y": "AA"},
            {"kty": "EC", "crv": "P-256", "x": "AA", "y": "AA"},
        ]});
        let keys = parse_jwks(doc.to_string().as_bytes()).expect("parses");
        assert_eq!(keys.len(), 1);
        assert_eq!(keys[0].kid.as_deref(), Some("e"));
        assert!(parse_jwks(b"[]").is_err());
        assert!(parse_jwks(b"{").is_err());
    }

    /// hyper's client reads a chunked body, reports a status outside 2xx, and refuses a body
    /// over the JWKS bound.
    #[tokio::test]
    async fn http_gets_read_chunks_and_refuse_errors_and_oversized_bodies() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        async fn serve_once(reply: Vec<u8>) -> String {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            let port = listener.local_addr().expect("addr").port();
            tokio::spawn(async move {
                if let Ok((mut s, _)) = listener.accept().await {
                    let mut buf = [0u8; 2048];
                    let _ = s.read(&mut buf).await;
                    let _ = s.write_all(&reply).await;
                }
            });
            format!("http://127.0.0.1:{port}/jwks.json")
        }
        let chunked = serve_once(
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
                .to_vec(),
        )
        .await;
        assert_eq!(http_get(&chunked, None).await.expect("chunked"), b"abcde");
        let missing =
            serve_once(b"HTTP/1.1 404 Not Found\r\nContent-Length: 4\r\n\r\nnope".to_vec()).await;
        let e = http_get(&missing, None).await.expect_err("404");
        assert!(e.contains("HTTP 404"), "{e}");
        let mut big = format!(
            "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n",
            MAX_JWKS_BYTES + 1
        )
        .into_bytes();
        big.resize(big.len() + MAX_JWKS_BYTES + 1, b' ');
        let oversized = serve_once(big).await;
        assert!(
            http_get(&oversized, None).await.is_err(),
            "a body over the bound"
        );
        let garbage = serve_once(b"SSH-2.0-OpenSSH\r\n\r\n".to_vec()).await;
        assert!(http_get(&garbage, None).await.is_err(), "not HTTP");
        assert!(http_get("ftp://127.0.0.1/jwks", None).await.is_err());
        assert!(
            http_get("https://127.0.0.1:1/jwks", None).await.is_err(),
            "no TLS settings"
        );
    }

    /// A JWKS served over HTTP by a task of the test: fetched by the refresher; a token signed
    /// with a key added later is accepted after the refresh its unknown kid asks for; an
    /// endpoint that is down refuses logins.
    #[tokio::test]
    async fn the_jwks_is_fetched_over_http_and_refreshed_on_an_unknown_kid() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let first = EcKey::generate("one");
        let second = EcKey::generate("two");
        let served = Arc::new(Mutex::new(json!({"keys": [first.jwk()]}).to_string()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let body = Arc::clone(&served);
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let mut buf = [0u8; 2048];
                let _ = s.read(&mut buf).await;
                let b = body.lock().expect("lock").clone();
                let reply = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{b}",
                    b.len()
                );
                let _ = s.write_all(reply.as_bytes()).await;
            }
        });
        let props: BTreeMap<String, String> = [
            (
                "oauthbearer.sasl.jaas.config",
                format!("{LOGIN_MODULE} required;"),
            ),
            (
                "oauthbearer.sasl.server.callback.handler.class",
                JWKS_VALIDATOR.to_string(),
            ),
            (
                "sasl.oauthbearer.jwks.endpoint.url",
                format!("http://127.0.0.1:{port}/jwks.json"),
            ),
            (
                "sasl.oauthbearer.jwks.endpoint.retry.backoff.ms",
                "10".to_string(),
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let server = OAuthBearerServer::from_props(&props).expect("server");
        let now = unix_now_ms() / 1000;
        let c = json!({"sub": "carol", "iat": now, "exp": now + 600});
        server.start();
        let until_ok = |token: String| {
            let server = &server;
            async move {
                for _ in 0..200 {
                    if server.validate(&token).is_ok() {
                        return true;
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                false
            }
        };
        assert!(until_ok(first.sign(&c)).await, "the first key is fetched");
        *served.lock().expect("lock") = json!({"keys": [first.jwk(), second.jwk()]}).to_string();
        assert!(
            until_ok(second.sign(&c)).await,
            "an unknown kid fetches the JWKS again, long before the hourly refresh"
        );

        // Nothing listens here: logins are refused, and say why in the log reason.
        let closed = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let dead_port = closed.local_addr().expect("addr").port();
        drop(closed);
        let mut props = props.clone();
        props.insert(
            "sasl.oauthbearer.jwks.endpoint.url".into(),
            format!("http://127.0.0.1:{dead_port}/jwks.json"),
        );
        let down = OAuthBearerServer::from_props(&props).expect("server");
        down.start();
        tokio::time::sleep(Duration::from_millis(100)).await;
        let e = down.validate(&first.sign(&c)).expect_err("no keys");
        assert!(e.reason.contains("no JWKS"), "{}", e.reason);
        assert!(e.reason.contains("connect"), "{}", e.reason);
        assert_eq!(e.json(), r#"{"status":"invalid_token"}"#);
    }

    /// An https: JWKS endpoint with a certificate of a CA the JAAS options trust; without that
    /// truststore (the system's CAs) the fetch fails on the certificate.
    #[tokio::test]
    async fn the_jwks_is_fetched_over_https_with_the_jaas_truststore() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let ca_key = rcgen::KeyPair::generate().expect("key");
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = ca.self_signed(&ca_key).expect("ca");
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".into()])
            .expect("params")
            .signed_by(&key, &ca, &ca_key)
            .expect("signed");
        let server = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone()],
            rustls_pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into()),
        )
        .expect("server config");
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(server));
        let signer = EcKey::generate("tls");
        let body = json!({"keys": [signer.jwk()]}).to_string();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let Ok(mut s) = acceptor.accept(tcp).await else {
                    continue;
                };
                let mut buf = [0u8; 2048];
                let _ = s.read(&mut buf).await;
                let reply = format!(
                    "HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(reply.as_bytes()).await;
                let _ = s.shutdown().await;
            }
        });
        let dir = tempfile::tempdir().expect("tempdir");
        let ca_pem = dir.path().join("ca.pem");
        std::fs::write(&ca_pem, ca.pem()).expect("write");
        let server_with = |jaas: String| {
            let props: BTreeMap<String, String> = [
                ("oauthbearer.sasl.jaas.config", jaas),
                (
                    "oauthbearer.sasl.server.callback.handler.class",
                    JWKS_VALIDATOR.to_string(),
                ),
                (
                    "sasl.oauthbearer.jwks.endpoint.url",
                    format!("https://127.0.0.1:{port}/jwks"),
                ),
                (
                    "sasl.oauthbearer.jwks.endpoint.retry.backoff.ms",
                    "10".to_string(),
                ),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect();
            OAuthBearerServer::from_props(&props).expect("server")
        };
        let trusted = server_with(format!(
            "{LOGIN_MODULE} required ssl.truststore.type=\"PEM\" ssl.truststore.location=\"{}\";",
            ca_pem.display()
        ));
        let untrusted = server_with(format!("{LOGIN_MODULE} required;"));
        trusted.start();
        untrusted.start();
        let now = unix_now_ms() / 1000;
        let token = signer.sign(&json!({"sub": "tls", "iat": now, "exp": now + 60}));
        let mut ok = false;
        for _ in 0..200 {
            if trusted.validate(&token).is_ok() {
                ok = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(ok, "{:?}", trusted.validate(&token));
        let e = untrusted
            .validate(&token)
            .expect_err("a CA the system does not know");
        assert!(
            e.reason.contains("TLS") || e.reason.contains("certificate"),
            "{}",
            e.reason
        );
    }

    // -----------------------------------------------------------------------------------------
    // The exchange in a SASL session (sasl.rs), frames in, replies out.

    mod exchange {
        use super::*;
        use crate::sasl::tests::frame;
        use crate::sasl::{Intercept, SaslSession, SaslSettings, ScramCredentials};
        use crate::scram::{ScramCredential, ScramMechanism};
        use bytes::Bytes;
        use gregor_protocol::error::ErrorCode;
        use gregor_protocol::messages::{ApiKey, SaslAuthenticateResponse};
        use gregor_protocol::protocol::Decodable;

        struct NoScram;
        impl ScramCredentials for NoScram {
            fn credential(&self, _: &str, _: ScramMechanism) -> Option<ScramCredential> {
                None
            }
        }

        fn session(extra: &[(&str, &str)]) -> SaslSession {
            let mut props: BTreeMap<String, String> = [
                ("sasl.enabled.mechanisms", "OAUTHBEARER,PLAIN"),
                (
                    "sasl.jaas.config",
                    "org.apache.kafka.common.security.plain.PlainLoginModule required \
                     user_admin=\"admin\";",
                ),
                (
                    "oauthbearer.sasl.jaas.config",
                    "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule \
                     required unsecuredValidatorRequiredScope=\"kafka\";",
                ),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
            for (k, v) in extra {
                props.insert(k.to_string(), v.to_string());
            }
            let settings = SaslSettings::from_props(&props).expect("settings");
            SaslSession::new(Arc::new(settings), Arc::new(NoScram))
        }

        fn handshake() -> Bytes {
            crate::sasl::tests::handshake("OAUTHBEARER")
        }

        fn authenticate(message: &[u8]) -> Bytes {
            crate::sasl::tests::authenticate(message, 2)
        }

        fn response(reply: &Bytes) -> SaslAuthenticateResponse {
            let mut body = reply.slice(9..); // size, correlation id, tagged fields
            SaslAuthenticateResponse::decode(&mut body, 2).expect("decodes")
        }

        fn first(token: &str) -> Vec<u8> {
            format!("n,,\x01auth=Bearer {token}\x01\x01").into_bytes()
        }

        fn token(sub: &str, life_s: i64, scope: &[&str]) -> String {
            let now = unix_now_ms() / 1000;
            unsecured_token(&json!({"sub": sub, "iat": now, "exp": now + life_s, "scope": scope}))
        }

        /// Logs in with `token`; the login's session lifetime.
        fn login(s: &mut SaslSession, token: &str, at: Instant) -> Result<i64, Intercept> {
            assert!(matches!(
                s.intercept(&handshake(), at).expect("handshake"),
                Intercept::Reply(_)
            ));
            match s
                .intercept(&authenticate(&first(token)), at)
                .expect("authenticate")
            {
                Intercept::Authenticated(reply, login) => {
                    let r = response(&reply);
                    assert_eq!(r.error_code, 0);
                    assert_eq!(r.session_lifetime_ms, login.session_lifetime_ms);
                    Ok(login.session_lifetime_ms)
                }
                other => Err(other),
            }
        }

        #[test]
        fn a_valid_token_logs_in_for_its_lifetime_or_the_configured_one() {
            let now = Instant::now();
            let mut s = session(&[]);
            let life = login(&mut s, &token("alice", 600, &["kafka"]), now).expect("login");
            // Without connections.max.reauth.ms the token's expiry bounds the session (Kafka).
            assert!((595_000..=600_000).contains(&life), "{life}");
            assert_eq!(s.user(), Some("alice"));

            let mut s = session(&[("connections.max.reauth.ms", "60000")]);
            assert_eq!(
                login(&mut s, &token("alice", 600, &["kafka"]), now),
                Ok(60_000)
            );
            let mut s = session(&[("oauthbearer.connections.max.reauth.ms", "3600000")]);
            let life = login(&mut s, &token("alice", 30, &["kafka"]), now).expect("login");
            assert!((25_000..=30_000).contains(&life), "{life}");
        }

        #[test]
        fn a_refused_token_gets_the_json_error_then_the_failure() {
            let now = Instant::now();
            for (token, json) in [
                (
                    token("alice", -60, &["kafka"]),
                    r#"{"status":"invalid_token"}"#,
                ),
                (
                    token("alice", 600, &["other"]),
                    r#"{"status":"insufficient_scope", "scope":"[kafka]"}"#,
                ),
            ] {
                let mut s = session(&[]);
                s.intercept(&handshake(), now).expect("handshake");
                let Intercept::Reply(reply) =
                    s.intercept(&authenticate(&first(&token)), now).expect("ok")
                else {
                    panic!("the JSON error first");
                };
                let r = response(&reply);
                assert_eq!(r.error_code, 0);
                assert_eq!(&r.auth_bytes[..], json.as_bytes());
                let Intercept::ReplyAndClose(reply, _) =
                    s.intercept(&authenticate(b"\x01"), now).expect("ok")
                else {
                    panic!("then the failure");
                };
                let r = response(&reply);
                assert_eq!(r.error_code, ErrorCode::SASL_AUTHENTICATION_FAILED.code());
                assert_eq!(r.error_message.as_deref(), Some(json));
                assert_eq!(s.user(), None);
            }
            // After the JSON error, another first message is a new attempt (as in Kafka).
            let mut s = session(&[]);
            s.intercept(&handshake(), now).expect("handshake");
            s.intercept(&authenticate(&first(&token("a", -60, &["kafka"]))), now)
                .expect("ok");
            assert!(matches!(
                s.intercept(&authenticate(&first(&token("a", 60, &["kafka"]))), now)
                    .expect("ok"),
                Intercept::Authenticated(..)
            ));
        }

        #[test]
        fn malformed_messages_and_foreign_authzids_fail_with_kafka_s_messages() {
            let now = Instant::now();
            let good = token("alice", 600, &["kafka"]);
            for (message, expected) in [
                (
                    b"n,,auth=Bearer x\x01\x01".to_vec(),
                    "Authentication failed during authentication due to invalid credentials \
                     with SASL mechanism OAUTHBEARER"
                        .to_string(),
                ),
                (
                    format!("n,a=bob,\x01auth=Bearer {good}\x01\x01").into_bytes(),
                    "Authentication failed: Client requested an authorization id (bob) that is \
                     different from the token's principal name (alice)"
                        .to_string(),
                ),
                (
                    // \x01 without a refusal before it: not a first message.
                    b"\x01".to_vec(),
                    "Authentication failed during authentication due to invalid credentials \
                     with SASL mechanism OAUTHBEARER"
                        .to_string(),
                ),
            ] {
                let mut s = session(&[]);
                s.intercept(&handshake(), now).expect("handshake");
                let Intercept::ReplyAndClose(reply, _) =
                    s.intercept(&authenticate(&message), now).expect("ok")
                else {
                    panic!("{expected}");
                };
                let r = response(&reply);
                assert_eq!(r.error_code, ErrorCode::SASL_AUTHENTICATION_FAILED.code());
                assert_eq!(r.error_message.as_deref(), Some(expected.as_str()));
            }
            // The authzid of the token's own principal is fine.
            let mut s = session(&[]);
            s.intercept(&handshake(), now).expect("handshake");
            let m = format!("n,a=alice,\x01auth=Bearer {good}\x01ext=1\x01\x01");
            assert!(matches!(
                s.intercept(&authenticate(m.as_bytes()), now).expect("ok"),
                Intercept::Authenticated(..)
            ));
        }

        #[test]
        fn re_authentication_takes_a_new_token_of_the_same_principal() {
            let start = Instant::now();
            let mut s = session(&[("connections.max.reauth.ms", "10000")]);
            assert_eq!(
                login(&mut s, &token("alice", 600, &["kafka"]), start),
                Ok(10_000)
            );
            // A new token for alice, 5 s later.
            let later = start + Duration::from_secs(5);
            assert_eq!(
                login(&mut s, &token("alice", 600, &["kafka"]), later),
                Ok(10_000)
            );
            assert_eq!(s.user(), Some("alice"));
            // A token of bob on alice's connection is refused and the connection closed.
            let later = start + Duration::from_secs(10);
            match login(&mut s, &token("bob", 600, &["kafka"]), later) {
                Err(Intercept::ReplyAndClose(reply, _)) => {
                    let r = response(&reply);
                    assert_eq!(r.error_code, ErrorCode::SASL_AUTHENTICATION_FAILED.code());
                    assert!(
                        r.error_message
                            .as_deref()
                            .unwrap_or_default()
                            .contains("Cannot change principals"),
                        "{:?}",
                        r.error_message
                    );
                }
                other => panic!("{other:?}"),
            }
        }

        #[test]
        fn a_session_expires_with_its_token() {
            let start = Instant::now();
            let mut s = session(&[]);
            let life = login(&mut s, &token("alice", 2, &["kafka"]), start).expect("login");
            assert!(life <= 2000, "{life}");
            let metadata = frame(
                ApiKey::Metadata,
                12,
                &gregor_protocol::messages::MetadataRequest::default(),
            );
            assert_eq!(
                s.intercept(&metadata, start + Duration::from_millis(100))
                    .expect("ok"),
                Intercept::Pass
            );
            assert!(matches!(
                s.intercept(&metadata, start + Duration::from_secs(3))
                    .expect("ok"),
                Intercept::Expired(_)
            ));
        }
    }
}
