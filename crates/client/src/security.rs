//! The client's side of secured listeners: TLS (rustls) and SASL (PLAIN, SCRAM-SHA-256/512,
//! OAUTHBEARER with a token from a file or an unsecured JWT),
//! set with Kafka's client properties (`security.protocol`, `ssl.truststore.location` with a
//! JKS, PKCS12 or PEM store, `ssl.keystore.*`, `sasl.mechanism`, `sasl.jaas.config`, ...), as
//! Kafka's tools take them from `--command-config`.
//!
//! ```text
//!  TCP connect ─(SSL, SASL_SSL: TLS handshake, the broker's name checked)─► ApiVersions
//!     ─(SASL_*: SaslHandshake v1, then SaslAuthenticate: PLAIN in one round, SCRAM in two,
//!       the server's signature checked)─► requests
//! ```

use std::fmt;
use std::sync::Arc;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use hmac::{Hmac, Mac};
use rand::distributions::{Alphanumeric, DistString};
use sha2::{Digest, Sha256, Sha512};

use crate::keystore;

/// How a client reaches a secured listener.
#[derive(Debug, Clone, Default)]
pub struct Security {
    /// TLS (SSL, SASL_SSL).
    pub tls: Option<Arc<rustls::ClientConfig>>,
    /// SASL login (SASL_PLAINTEXT, SASL_SSL).
    pub sasl: Option<SaslLogin>,
}

/// A SASL mechanism the client speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaslMechanism {
    Plain,
    ScramSha256,
    ScramSha512,
    /// RFC 7628: a bearer token (see [`SaslLogin`] for where it comes from).
    OAuthBearer,
}

impl SaslMechanism {
    pub fn name(self) -> &'static str {
        match self {
            SaslMechanism::Plain => "PLAIN",
            SaslMechanism::ScramSha256 => "SCRAM-SHA-256",
            SaslMechanism::ScramSha512 => "SCRAM-SHA-512",
            SaslMechanism::OAuthBearer => "OAUTHBEARER",
        }
    }
}

/// A SASL user and password (`Debug` hides the password). For OAUTHBEARER, `username` is the
/// principal when known and `password` says where each login's token comes from:
/// `file:<path>` (Kafka's `sasl.oauthbearer.token.endpoint.url=file:...`, read at each login)
/// or `unsecured:<JAAS options>` (Kafka's `unsecuredLogin*` options of
/// `OAuthBearerLoginModule`: an `alg: none` JWT made at each login).
#[derive(Clone)]
pub struct SaslLogin {
    pub mechanism: SaslMechanism,
    pub username: String,
    pub password: String,
}

impl fmt::Debug for SaslLogin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SaslLogin")
            .field("mechanism", &self.mechanism)
            .field("username", &self.username)
            .field("password", &"[hidden]")
            .finish()
    }
}

impl Security {
    /// Reads Kafka's client properties. Unknown keys are for other uses and left alone; a
    /// setting this client cannot honour is an error saying which and why.
    pub fn from_properties<'a>(
        props: impl IntoIterator<Item = (&'a str, &'a str)>,
    ) -> Result<Security, String> {
        let props: Vec<(&str, &str)> = props.into_iter().collect();
        let get = |key: &str| {
            props
                .iter()
                .rev()
                .find(|(k, _)| *k == key)
                .map(|(_, v)| v.trim())
                .filter(|v| !v.is_empty())
        };
        let protocol = get("security.protocol")
            .unwrap_or("PLAINTEXT")
            .to_ascii_uppercase();
        let (tls, sasl) = match protocol.as_str() {
            "PLAINTEXT" => (false, false),
            "SSL" => (true, false),
            "SASL_PLAINTEXT" => (false, true),
            "SASL_SSL" => (true, true),
            other => {
                return Err(format!(
                    "security.protocol {other}: not a Kafka security protocol"
                ))
            }
        };
        let mut out = Security::default();
        if tls {
            out.tls = Some(tls_config(&get)?);
        }
        if sasl {
            let mechanism = match get("sasl.mechanism")
                .or(get("sasl.mechanisms"))
                .unwrap_or("PLAIN")
                .to_ascii_uppercase()
                .as_str()
            {
                "PLAIN" => SaslMechanism::Plain,
                "SCRAM-SHA-256" => SaslMechanism::ScramSha256,
                "SCRAM-SHA-512" => SaslMechanism::ScramSha512,
                "OAUTHBEARER" => {
                    out.sasl = Some(oauthbearer_login(&get)?);
                    return Ok(out);
                }
                other => {
                    return Err(format!(
                        "sasl.mechanism {other}: gregor's tools speak PLAIN, SCRAM-SHA-256, \
                         SCRAM-SHA-512 and OAUTHBEARER"
                    ))
                }
            };
            let from_jaas = get("sasl.jaas.config").map(jaas_user).transpose()?;
            let (username, password) = match (from_jaas, get("sasl.username"), get("sasl.password"))
            {
                (Some(up), _, _) => up,
                (None, Some(u), Some(p)) => (u.to_string(), p.to_string()),
                _ => {
                    return Err(
                        "a SASL login needs a user and password: sasl.jaas.config (or \
                                sasl.username and sasl.password)"
                            .to_string(),
                    )
                }
            };
            out.sasl = Some(SaslLogin {
                mechanism,
                username,
                password,
            });
        }
        Ok(out)
    }
}

/// The TLS side of Kafka's client properties: the truststore (`ssl.truststore.*`, or
/// librdkafka's `ssl.ca.location`, PEM) and, for a client certificate, the keystore
/// (`ssl.keystore.*` with `ssl.key.password`, or librdkafka's `ssl.key.location` and
/// `ssl.certificate.location`, PEM), read as Kafka's clients read them: JKS, PKCS12 or PEM
/// (`keystore.rs`).
fn tls_config<'p>(
    get: &dyn Fn(&str) -> Option<&'p str>,
) -> Result<Arc<rustls::ClientConfig>, String> {
    let kafka = |key: &str| get(key).map(str::to_string);
    let truststore = match keystore::truststore_spec(&kafka).map_err(|e| e.to_string())? {
        Some(spec) => spec,
        None => {
            let Some(ca) = get("ssl.ca.location") else {
                return Err("an SSL connection needs the certificates to trust: \
                            ssl.truststore.location (JKS, PKCS12 or PEM)"
                    .to_string());
            };
            let librdkafka = |key: &str| match key {
                "ssl.truststore.location" => Some(ca.to_string()),
                "ssl.truststore.type" => Some("PEM".to_string()),
                _ => None,
            };
            keystore::truststore_spec(&librdkafka)
                .map_err(|e| e.to_string())?
                .ok_or("ssl.ca.location: no truststore")?
        }
    };
    let mut roots = rustls::RootCertStore::empty();
    for cert in truststore.load().map_err(|e| e.to_string())? {
        roots
            .add(cert)
            .map_err(|e| format!("the truststore: not a usable trusted certificate: {e}"))?;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots);
    let keystore = match keystore::keystore_spec(&kafka).map_err(|e| e.to_string())? {
        Some(spec) => Some(spec.load().map_err(|e| e.to_string())?),
        None => match (get("ssl.key.location"), get("ssl.certificate.location")) {
            (Some(key_path), Some(chain_path)) => {
                let read = |key: &str, path: &str| {
                    std::fs::read_to_string(path).map_err(|e| format!("{key} {path}: {e}"))
                };
                let key_pem = read("ssl.key.location", key_path)?;
                let chain_pem = read("ssl.certificate.location", chain_path)?;
                let librdkafka = |key: &str| match key {
                    "ssl.keystore.type" => Some("PEM".to_string()),
                    "ssl.keystore.key" => Some(key_pem.clone()),
                    "ssl.keystore.certificate.chain" => Some(chain_pem.clone()),
                    "ssl.key.password" => kafka(key),
                    _ => None,
                };
                let rename = |e: keystore::StoreError| match e.key.as_str() {
                    "ssl.keystore.key" => format!("ssl.key.location {key_path}: {}", e.reason),
                    "ssl.keystore.certificate.chain" => {
                        format!("ssl.certificate.location {chain_path}: {}", e.reason)
                    }
                    _ => e.to_string(),
                };
                let spec = keystore::keystore_spec(&librdkafka).map_err(rename)?;
                spec.map(|s| s.load()).transpose().map_err(rename)?
            }
            _ => None,
        },
    };
    let config = match keystore {
        None => builder.with_no_client_auth(),
        Some(store) => {
            let keys = store.certified_keys(&provider).map_err(|e| e.to_string())?;
            builder.with_client_cert_resolver(Arc::new(keys))
        }
    };
    Ok(Arc::new(config))
}

/// OAUTHBEARER's login from Kafka's client properties: a token file
/// (`sasl.oauthbearer.token.endpoint.url=file:<path>`), or the unsecured JWT options of the
/// JAAS config (`OAuthBearerLoginModule required unsecuredLoginStringClaim_sub="alice";`).
fn oauthbearer_login<'p>(get: &dyn Fn(&str) -> Option<&'p str>) -> Result<SaslLogin, String> {
    if let Some(url) = get("sasl.oauthbearer.token.endpoint.url") {
        let Some(path) = url.strip_prefix("file:") else {
            return Err(format!(
                "sasl.oauthbearer.token.endpoint.url {url}: gregor's tools read a token from a \
                 file: URL; fetch it with your identity provider's tool"
            ));
        };
        let path = path.strip_prefix("//").unwrap_or(path);
        std::fs::metadata(path)
            .map_err(|e| format!("sasl.oauthbearer.token.endpoint.url {url}: {e}"))?;
        return Ok(SaslLogin {
            mechanism: SaslMechanism::OAuthBearer,
            username: String::new(),
            password: format!("file:{path}"),
        });
    }
    let jaas = get("sasl.jaas.config").unwrap_or_default();
    let options = jaas_options(jaas);
    let sub = options
        .iter()
        .find(|(k, _)| k == "unsecuredLoginStringClaim_sub")
        .map(|(_, v)| v.clone());
    match sub {
        Some(sub) if jaas.contains("OAuthBearerLoginModule") => Ok(SaslLogin {
            mechanism: SaslMechanism::OAuthBearer,
            username: sub,
            password: format!("unsecured:{jaas}"),
        }),
        _ => Err(
            "an OAUTHBEARER login needs a token: sasl.oauthbearer.token.endpoint.url=\
                  file:<path>, or sasl.jaas.config=org.apache.kafka.common.security.oauthbearer.\
                  OAuthBearerLoginModule required unsecuredLoginStringClaim_sub=\"<user>\";"
                .to_string(),
        ),
    }
}

/// The `key="value"` (or `key=value`) options of a JAAS config, in order.
fn jaas_options(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = text.trim().trim_end_matches(';');
    // The login module and the control flag come first.
    for _ in 0..2 {
        rest = rest.trim_start();
        rest = &rest[rest.find(char::is_whitespace).unwrap_or(rest.len())..];
    }
    loop {
        rest = rest.trim_start();
        let Some(eq) = rest.find('=') else {
            return out;
        };
        let key = rest[..eq].trim().to_string();
        let after = &rest[eq + 1..];
        let (value, tail) = match after.strip_prefix('"') {
            Some(q) => match q.find('"') {
                Some(end) => (q[..end].to_string(), &q[end + 1..]),
                None => (q.to_string(), ""),
            },
            None => {
                let end = after.find(char::is_whitespace).unwrap_or(after.len());
                (after[..end].to_string(), &after[end..])
            }
        };
        out.push((key, value));
        rest = tail;
    }
}

/// The client first message of an OAUTHBEARER login (RFC 7628):
/// `n,,\x01auth=Bearer <token>\x01\x01`, the token made or read now.
pub(crate) fn oauthbearer_first_message(login: &SaslLogin) -> Result<Vec<u8>, String> {
    let token = if let Some(path) = login.password.strip_prefix("file:") {
        std::fs::read_to_string(path)
            .map_err(|e| format!("the OAUTHBEARER token file {path}: {e}"))?
            .trim()
            .to_string()
    } else if let Some(jaas) = login.password.strip_prefix("unsecured:") {
        unsecured_jwt(&jaas_options(jaas), now_s())?
    } else {
        return Err("no OAUTHBEARER token source".to_string());
    };
    if token.is_empty()
        || !token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
    {
        return Err("the OAUTHBEARER token is not a compact JWT".to_string());
    }
    Ok(format!("n,,\x01auth=Bearer {token}\x01\x01").into_bytes())
}

fn now_s() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Kafka's `OAuthBearerUnsecuredLoginCallbackHandler`: an `alg: none` JWT with the claims of
/// the `unsecuredLoginStringClaim_<name>`, `unsecuredLoginNumberClaim_<name>` and
/// `unsecuredLoginListClaim_<name>` options (a list's first character is its separator), `iat`
/// now and `exp` after `unsecuredLoginLifetimeSeconds` (3600).
fn unsecured_jwt(options: &[(String, String)], now: u64) -> Result<String, String> {
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut claims = serde_json::Map::new();
    let mut lifetime = 3600u64;
    for (key, value) in options {
        if let Some(name) = key.strip_prefix("unsecuredLoginStringClaim_") {
            claims.insert(name.to_string(), serde_json::Value::from(value.clone()));
        } else if let Some(name) = key.strip_prefix("unsecuredLoginNumberClaim_") {
            let n: f64 = value
                .parse()
                .map_err(|_| format!("{key}: {value:?} is not a number"))?;
            claims.insert(name.to_string(), serde_json::Value::from(n));
        } else if let Some(name) = key.strip_prefix("unsecuredLoginListClaim_") {
            let mut chars = value.chars();
            let items: Vec<serde_json::Value> = match chars.next() {
                Some(sep) => chars
                    .as_str()
                    .split(sep)
                    .filter(|i| !i.is_empty())
                    .map(serde_json::Value::from)
                    .collect(),
                None => Vec::new(),
            };
            claims.insert(name.to_string(), serde_json::Value::from(items));
        } else if key == "unsecuredLoginLifetimeSeconds" {
            lifetime = value
                .parse()
                .map_err(|_| format!("{key}: {value:?} is not a number of seconds"))?;
        }
    }
    claims.insert("iat".into(), serde_json::Value::from(now));
    claims.insert("exp".into(), serde_json::Value::from(now + lifetime));
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#);
    let body = URL_SAFE_NO_PAD.encode(serde_json::Value::Object(claims).to_string());
    Ok(format!("{header}.{body}."))
}

/// `username` and `password` of a client JAAS config
/// (`...LoginModule required username="alice" password="secret";`).
fn jaas_user(text: &str) -> Result<(String, String), String> {
    let option = |name: &str| -> Option<String> {
        let at = text.find(&format!("{name}="))?;
        let rest = &text[at + name.len() + 1..];
        let rest = rest.strip_prefix('"')?;
        Some(rest[..rest.find('"')?].to_string())
    };
    match (option("username"), option("password")) {
        (Some(u), Some(p)) => Ok((u, p)),
        _ => Err("sasl.jaas.config: no username=\"...\" and password=\"...\"".to_string()),
    }
}

fn hmac(m: SaslMechanism, key: &[u8], data: &[u8]) -> Vec<u8> {
    fn mac<M: Mac + hmac::digest::KeyInit>(key: &[u8], data: &[u8]) -> Vec<u8> {
        let mut m = <M as hmac::digest::KeyInit>::new_from_slice(key)
            .expect("HMAC takes keys of any length");
        m.update(data);
        m.finalize().into_bytes().to_vec()
    }
    match m {
        SaslMechanism::ScramSha512 => mac::<Hmac<Sha512>>(key, data),
        _ => mac::<Hmac<Sha256>>(key, data),
    }
}

fn hash(m: SaslMechanism, data: &[u8]) -> Vec<u8> {
    match m {
        SaslMechanism::ScramSha512 => Sha512::digest(data).to_vec(),
        _ => Sha256::digest(data).to_vec(),
    }
}

fn salted_password(m: SaslMechanism, password: &str, salt: &[u8], iterations: u32) -> Vec<u8> {
    match m {
        SaslMechanism::ScramSha512 => {
            pbkdf2::pbkdf2_hmac_array::<Sha512, 64>(password.as_bytes(), salt, iterations).to_vec()
        }
        _ => {
            pbkdf2::pbkdf2_hmac_array::<Sha256, 32>(password.as_bytes(), salt, iterations).to_vec()
        }
    }
}

/// The client's side of one SCRAM exchange (RFC 5802).
pub struct ScramClient {
    mechanism: SaslMechanism,
    password: String,
    client_first_bare: String,
    nonce: String,
    /// Set by `client_final`: what the server must sign.
    expected_server_signature: Vec<u8>,
}

impl ScramClient {
    /// The client's first message.
    pub fn start(login: &SaslLogin) -> (ScramClient, Vec<u8>) {
        let nonce = Alphanumeric.sample_string(&mut rand::thread_rng(), 32);
        let user = login.username.replace('=', "=3D").replace(',', "=2C");
        let bare = format!("n={user},r={nonce}");
        let first = format!("n,,{bare}").into_bytes();
        (
            ScramClient {
                mechanism: login.mechanism,
                password: login.password.clone(),
                client_first_bare: bare,
                nonce,
                expected_server_signature: Vec::new(),
            },
            first,
        )
    }

    /// The client's final message, from the server's first.
    pub fn client_final(&mut self, server_first: &[u8]) -> Result<Vec<u8>, String> {
        let text = std::str::from_utf8(server_first).map_err(|_| "server-first is not UTF-8")?;
        let attr = |k: &str| {
            text.split(',')
                .find_map(|a| a.strip_prefix(k))
                .map(str::to_string)
        };
        let nonce = attr("r=").ok_or("server-first has no nonce")?;
        if !nonce.starts_with(&self.nonce) {
            return Err("the server's nonce does not extend the client's".to_string());
        }
        let salt = B64
            .decode(attr("s=").ok_or("server-first has no salt")?)
            .map_err(|_| "the salt is not base64")?;
        let iterations: u32 = attr("i=")
            .ok_or("server-first has no iteration count")?
            .parse()
            .map_err(|_| "bad iteration count")?;
        if !(1..=1_000_000).contains(&iterations) {
            return Err(format!("iteration count {iterations} out of range"));
        }
        let m = self.mechanism;
        let salted = salted_password(m, &self.password, &salt, iterations);
        let client_key = hmac(m, &salted, b"Client Key");
        let stored_key = hash(m, &client_key);
        let without_proof = format!("c=biws,r={nonce}");
        let auth = format!("{},{text},{without_proof}", self.client_first_bare);
        let signature = hmac(m, &stored_key, auth.as_bytes());
        let proof: Vec<u8> = client_key
            .iter()
            .zip(&signature)
            .map(|(a, b)| a ^ b)
            .collect();
        let server_key = hmac(m, &salted, b"Server Key");
        self.expected_server_signature = hmac(m, &server_key, auth.as_bytes());
        Ok(format!("{without_proof},p={}", B64.encode(proof)).into_bytes())
    }

    /// Checks the server's final message: the server knew the credential too.
    pub fn verify(&self, server_final: &[u8]) -> Result<(), String> {
        let text = std::str::from_utf8(server_final).map_err(|_| "server-final is not UTF-8")?;
        if let Some(e) = text.strip_prefix("e=") {
            return Err(format!("the server refused: {e}"));
        }
        let v = text
            .strip_prefix("v=")
            .ok_or("server-final has no signature")?;
        let v = B64
            .decode(v)
            .map_err(|_| "the server signature is not base64")?;
        if v != self.expected_server_signature {
            return Err("the server's signature is wrong: it does not hold this credential".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 7677's example, from the client's side.
    #[test]
    fn scram_client_matches_rfc_7677() {
        let login = SaslLogin {
            mechanism: SaslMechanism::ScramSha256,
            username: "user".into(),
            password: "pencil".into(),
        };
        let (mut c, _) = ScramClient::start(&login);
        c.nonce = "rOprNGfwEbeRWgbNEkqO".into();
        c.client_first_bare = "n=user,r=rOprNGfwEbeRWgbNEkqO".into();
        let fin = c
            .client_final(
                b"r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096",
            )
            .expect("final");
        assert_eq!(
            String::from_utf8(fin).expect("utf8"),
            "c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,\
             p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ="
        );
        c.verify(b"v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=")
            .expect("the RFC's server signature");
        assert!(c.verify(b"v=AAAA").is_err());
        assert!(c.verify(b"e=invalid-proof").is_err());
        // A server nonce that does not extend the client's is refused.
        let (mut c, _) = ScramClient::start(&login);
        assert!(c.client_final(b"r=other,s=AAAA,i=4096").is_err());
    }

    /// A client.properties written for Kafka's tools: a JKS or PKCS12 truststore, a keystore
    /// for a client certificate, and librdkafka's PEM pair with an encrypted key.
    #[test]
    fn client_properties_with_java_stores_become_tls_settings() {
        let fixture =
            |name: &str| format!("{}/testdata/keystores/{name}", env!("CARGO_MANIFEST_DIR"));
        let (jks, p12, keystore, key, chain) = (
            fixture("truststore.jks"),
            fixture("truststore.p12"),
            fixture("server.jks"),
            fixture("server-key-aes.pem"),
            fixture("server-chain.pem"),
        );
        let ok = |props: Vec<(&str, &str)>| {
            Security::from_properties(props.clone())
                .unwrap_or_else(|e| panic!("{props:?}: {e}"))
                .tls
                .expect("TLS")
        };
        ok(vec![
            ("security.protocol", "SSL"),
            ("ssl.truststore.location", &jks),
            ("ssl.truststore.password", "trustpass"),
        ]);
        // Kafka's default type, no password: read without the integrity check.
        ok(vec![
            ("security.protocol", "SSL"),
            ("ssl.truststore.location", &jks),
        ]);
        let with_cert = ok(vec![
            ("security.protocol", "SASL_SSL"),
            ("sasl.username", "a"),
            ("sasl.password", "b"),
            ("ssl.truststore.type", "PKCS12"),
            ("ssl.truststore.location", &p12),
            ("ssl.truststore.password", "trustpass"),
            ("ssl.keystore.location", &keystore),
            ("ssl.keystore.password", "storepass"),
            ("ssl.key.password", "keypass"),
        ]);
        assert!(with_cert.client_auth_cert_resolver.has_certs());
        let librdkafka = ok(vec![
            ("security.protocol", "SSL"),
            ("ssl.ca.location", &fixture("ca.pem")),
            ("ssl.key.location", &key),
            ("ssl.certificate.location", &chain),
            ("ssl.key.password", "keypass"),
        ]);
        assert!(librdkafka.client_auth_cert_resolver.has_certs());
        for (props, blamed) in [
            (
                vec![
                    ("security.protocol", "SSL"),
                    ("ssl.truststore.location", jks.as_str()),
                    ("ssl.truststore.password", "wrong"),
                ],
                "ssl.truststore.password",
            ),
            (
                vec![
                    ("security.protocol", "SSL"),
                    ("ssl.truststore.location", jks.as_str()),
                    ("ssl.keystore.location", keystore.as_str()),
                    ("ssl.keystore.password", "storepass"),
                    ("ssl.key.password", "wrong"),
                ],
                "entry 'server'",
            ),
            (
                vec![
                    ("security.protocol", "SSL"),
                    ("ssl.ca.location", jks.as_str()),
                    ("ssl.key.location", key.as_str()),
                    ("ssl.certificate.location", chain.as_str()),
                ],
                "ssl.truststore.type=JKS",
            ),
            (
                vec![
                    ("security.protocol", "SSL"),
                    ("ssl.truststore.location", jks.as_str()),
                    ("ssl.key.location", key.as_str()),
                    ("ssl.certificate.location", chain.as_str()),
                ],
                "set ssl.key.password",
            ),
        ] {
            let e = Security::from_properties(props.clone()).expect_err("refused");
            assert!(e.contains(blamed), "{props:?}: {e}");
            assert!(!e.contains("storepass") && !e.contains("keypass"), "{e}");
        }
    }

    #[test]
    fn kafka_client_properties_become_settings() {
        let s = Security::from_properties([
            ("security.protocol", "SASL_PLAINTEXT"),
            ("sasl.mechanism", "SCRAM-SHA-512"),
            (
                "sasl.jaas.config",
                "org.apache.kafka.common.security.scram.ScramLoginModule required \
                 username=\"alice\" password=\"s3cret\";",
            ),
        ])
        .expect("settings");
        assert!(s.tls.is_none());
        let login = s.sasl.expect("a login");
        assert_eq!(login.mechanism, SaslMechanism::ScramSha512);
        assert_eq!(
            (login.username.as_str(), login.password.as_str()),
            ("alice", "s3cret")
        );
        assert!(!format!("{login:?}").contains("s3cret"));
        assert!(Security::from_properties([])
            .expect("plaintext")
            .sasl
            .is_none());
        for bad in [
            vec![("security.protocol", "TLS")],
            vec![("security.protocol", "SSL")],
            vec![("security.protocol", "SASL_PLAINTEXT")],
            vec![
                ("security.protocol", "SASL_PLAINTEXT"),
                ("sasl.mechanism", "GSSAPI"),
                ("sasl.username", "a"),
                ("sasl.password", "b"),
            ],
            vec![("security.protocol", "SSL"), ("ssl.truststore.type", "JKS")],
        ] {
            assert!(Security::from_properties(bad.clone()).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn oauthbearer_logins_take_a_token_file_or_make_an_unsecured_jwt() {
        let s = Security::from_properties([
            ("security.protocol", "SASL_PLAINTEXT"),
            ("sasl.mechanism", "OAUTHBEARER"),
            (
                "sasl.jaas.config",
                "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required \
                 unsecuredLoginStringClaim_sub=\"alice\" unsecuredLoginListClaim_scope=\",a,b\" \
                 unsecuredLoginNumberClaim_n=\"7\" unsecuredLoginLifetimeSeconds=\"60\";",
            ),
        ])
        .expect("settings");
        let login = s.sasl.expect("a login");
        assert_eq!(login.mechanism, SaslMechanism::OAuthBearer);
        assert_eq!(login.username, "alice");
        let first =
            String::from_utf8(oauthbearer_first_message(&login).expect("token")).expect("utf8");
        let token = first
            .strip_prefix("n,,\x01auth=Bearer ")
            .and_then(|t| t.strip_suffix("\x01\x01"))
            .expect("RFC 7628 framing");
        let parts: Vec<&str> = token.split('.').collect();
        assert_eq!(parts.len(), 3);
        assert_eq!(parts[2], "", "unsigned");
        let claims: serde_json::Value = serde_json::from_slice(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(parts[1])
                .expect("b64"),
        )
        .expect("json");
        assert_eq!(claims["sub"], "alice");
        assert_eq!(claims["scope"], serde_json::json!(["a", "b"]));
        assert_eq!(claims["n"], 7.0);
        assert_eq!(
            claims["exp"].as_u64().expect("exp") - claims["iat"].as_u64().expect("iat"),
            60
        );

        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("token.jwt");
        std::fs::write(&path, "aaa.bbb.ccc\n").expect("write");
        let url = format!("file:{}", path.display());
        let s = Security::from_properties([
            ("security.protocol", "SASL_SSL"),
            ("ssl.ca.location", "/nonexistent"),
            ("sasl.mechanism", "OAUTHBEARER"),
            ("sasl.oauthbearer.token.endpoint.url", url.as_str()),
        ]);
        assert!(s.is_err(), "the truststore is still needed");
        let s = Security::from_properties([
            ("security.protocol", "SASL_PLAINTEXT"),
            ("sasl.mechanism", "OAUTHBEARER"),
            ("sasl.oauthbearer.token.endpoint.url", url.as_str()),
        ])
        .expect("settings");
        let login = s.sasl.expect("a login");
        assert_eq!(
            oauthbearer_first_message(&login).expect("token"),
            b"n,,\x01auth=Bearer aaa.bbb.ccc\x01\x01"
        );
        // Read at each login: a renewed file is used by the next one.
        std::fs::write(&path, "new.token.x").expect("write");
        assert!(
            String::from_utf8_lossy(&oauthbearer_first_message(&login).expect("token"))
                .contains("new.token.x")
        );
        std::fs::write(&path, "not a token").expect("write");
        assert!(oauthbearer_first_message(&login).is_err());

        for bad in [
            vec![("sasl.oauthbearer.token.endpoint.url", "https://idp/token")],
            vec![(
                "sasl.oauthbearer.token.endpoint.url",
                "file:/nonexistent/token",
            )],
            vec![(
                "sasl.jaas.config",
                "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required;",
            )],
            vec![],
        ] {
            let mut props = vec![
                ("security.protocol", "SASL_PLAINTEXT"),
                ("sasl.mechanism", "OAUTHBEARER"),
            ];
            props.extend(bad.iter().copied());
            assert!(
                Security::from_properties(props.clone()).is_err(),
                "{props:?}"
            );
        }
    }
}
