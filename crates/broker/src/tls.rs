//! TLS for `SSL` listeners: Kafka's `ssl.*` broker keys turned into a rustls server config.
//!
//! ```text
//!  ssl.* keys (global, or listener.name.<name>.ssl.* for one listener)
//!        │ TlsSettings::from_props: checked when the config is applied
//!        ▼
//!  TlsSettings::server_config: PEM files read, rustls ServerConfig (ring) ──► TlsAcceptor
//!        at start: a bad key or certificate stops the broker with the file and the reason
//! ```
//!
//! Keystores and truststores are PEM (`ssl.keystore.type=PEM`, Kafka's own PEM support,
//! KIP-651): a file at `ssl.keystore.location` with the private key and the certificate chain,
//! or the same inline in `ssl.keystore.key` and `ssl.keystore.certificate.chain`. JKS and
//! PKCS12 stores, and encrypted private keys (`ssl.key.password`), are refused with how to
//! convert them. `ssl.client.auth` (`required`, `requested`, `none`) checks client certificates
//! against the truststore's CAs.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// The `ssl.*` keys gregor reads (others under `ssl.` are reported as not used).
pub const SSL_KEYS: &[&str] = &[
    "ssl.keystore.type",
    "ssl.keystore.location",
    "ssl.keystore.password",
    "ssl.keystore.key",
    "ssl.keystore.certificate.chain",
    "ssl.key.password",
    "ssl.truststore.type",
    "ssl.truststore.location",
    "ssl.truststore.password",
    "ssl.truststore.certificates",
    "ssl.client.auth",
    "ssl.enabled.protocols",
    "ssl.protocol",
];

/// Keys whose values are secrets: never shown by DescribeConfigs.
pub const SENSITIVE_SSL_KEYS: &[&str] = &[
    "ssl.keystore.password",
    "ssl.keystore.key",
    "ssl.key.password",
    "ssl.truststore.password",
];

/// A TLS setting that cannot be served.
#[derive(Debug, thiserror::Error)]
#[error("{key}: {reason}")]
pub struct TlsError {
    /// The key (or the file it names) at fault.
    pub key: String,
    /// Why.
    pub reason: String,
}

fn error(key: &str, reason: impl Into<String>) -> TlsError {
    TlsError {
        key: key.to_string(),
        reason: reason.into(),
    }
}

/// `ssl.client.auth`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClientAuth {
    /// No client certificate is asked for (Kafka's default).
    #[default]
    None,
    /// A certificate is asked for; a client without one is served, one with a certificate the
    /// truststore does not vouch for is refused.
    Requested,
    /// A client without a certificate the truststore vouches for is refused.
    Required,
}

/// Where PEM text comes from: a file or the config value itself.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Pem {
    File(PathBuf),
    Inline(String),
}

/// The `ssl.*` settings of one listener, checked but not yet read from disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// The private key and certificate chain: one PEM, or key and chain apart.
    keystore: Option<(Pem, Option<Pem>)>,
    /// CAs that client certificates must chain to.
    truststore: Option<Pem>,
    /// `ssl.client.auth`.
    pub client_auth: ClientAuth,
    /// `ssl.enabled.protocols`: TLSv1.2 and/or TLSv1.3.
    tls12: bool,
    tls13: bool,
}

impl TlsSettings {
    /// Checks one listener's `ssl.*` keys (listener-prefixed ones already folded in).
    pub fn from_props(props: &BTreeMap<String, String>) -> Result<TlsSettings, TlsError> {
        let get = |k: &str| {
            props
                .get(k)
                .map(|v| v.trim())
                .filter(|v| !v.is_empty())
                .map(str::to_string)
        };
        for key in ["ssl.keystore.type", "ssl.truststore.type"] {
            if let Some(t) = get(key) {
                if !t.eq_ignore_ascii_case("PEM") {
                    return Err(error(
                        key,
                        format!(
                            "{t} stores are not read by gregor; use PEM (for example \
                             `openssl pkcs12 -in store.p12 -nodes` gives the key and \
                             certificates as PEM)"
                        ),
                    ));
                }
            }
        }
        if get("ssl.key.password").is_some() {
            return Err(error(
                "ssl.key.password",
                "encrypted private keys are not read by gregor yet; give the key unencrypted \
                 (`openssl pkcs8 -topk8 -nocrypt`) in a file only the broker can read",
            ));
        }
        let keystore = match (
            get("ssl.keystore.location"),
            get("ssl.keystore.key"),
            get("ssl.keystore.certificate.chain"),
        ) {
            (Some(_), Some(_), _) | (Some(_), _, Some(_)) => {
                return Err(error(
                    "ssl.keystore.location",
                    "set either ssl.keystore.location or ssl.keystore.key with \
                     ssl.keystore.certificate.chain, not both",
                ))
            }
            (Some(path), None, None) => Some((Pem::File(path.into()), None)),
            (None, Some(key), Some(chain)) => Some((Pem::Inline(key), Some(Pem::Inline(chain)))),
            (None, Some(_), None) | (None, None, Some(_)) => {
                return Err(error(
                    "ssl.keystore.key",
                    "ssl.keystore.key and ssl.keystore.certificate.chain go together",
                ))
            }
            (None, None, None) => None,
        };
        let truststore = match (
            get("ssl.truststore.location"),
            get("ssl.truststore.certificates"),
        ) {
            (Some(_), Some(_)) => {
                return Err(error(
                    "ssl.truststore.location",
                    "set either ssl.truststore.location or ssl.truststore.certificates",
                ))
            }
            (Some(path), None) => Some(Pem::File(path.into())),
            (None, Some(pem)) => Some(Pem::Inline(pem)),
            (None, None) => None,
        };
        let client_auth = match get("ssl.client.auth")
            .as_deref()
            .map(str::to_ascii_lowercase)
        {
            None => ClientAuth::None,
            Some(v) => match v.as_str() {
                "none" => ClientAuth::None,
                "requested" => ClientAuth::Requested,
                "required" => ClientAuth::Required,
                _ => {
                    return Err(error(
                        "ssl.client.auth",
                        format!("{v}: expected required, requested or none"),
                    ))
                }
            },
        };
        let (mut tls12, mut tls13) = (false, false);
        let protocols = get("ssl.enabled.protocols").unwrap_or_else(|| "TLSv1.2,TLSv1.3".into());
        for p in protocols
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
        {
            match p {
                "TLSv1.2" => tls12 = true,
                "TLSv1.3" => tls13 = true,
                _ => {
                    return Err(error(
                        "ssl.enabled.protocols",
                        format!("{p}: gregor serves TLSv1.2 and TLSv1.3 only"),
                    ))
                }
            }
        }
        if !tls12 && !tls13 {
            return Err(error("ssl.enabled.protocols", "no protocol enabled"));
        }
        if client_auth != ClientAuth::None && truststore.is_none() {
            return Err(error(
                "ssl.client.auth",
                "client certificates are checked against the truststore's CAs: set \
                 ssl.truststore.location (PEM)",
            ));
        }
        Ok(TlsSettings {
            keystore,
            truststore,
            client_auth,
            tls12,
            tls13,
        })
    }

    /// Whether a truststore is set (a broker dialling a peer on this listener needs one).
    pub fn has_truststore(&self) -> bool {
        self.truststore.is_some()
    }

    /// What a broker dialling a peer's listener with these settings uses: the truststore's
    /// CAs, and the keystore as its own certificate (for a peer requiring client ones).
    pub fn client_config(&self) -> Result<Arc<rustls::ClientConfig>, TlsError> {
        let Some(roots) = self.roots()? else {
            return Err(error(
                "ssl.truststore.location",
                "no truststore to check peers with",
            ));
        };
        let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| error("ssl.enabled.protocols", e.to_string()))?
        .with_root_certificates(roots);
        let config = match self.key_and_chain()? {
            None => builder.with_no_client_auth(),
            Some((blame, key, chain)) => builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| error(&blame, e.to_string()))?,
        };
        Ok(Arc::new(config))
    }

    /// The truststore's CAs, if one is set.
    fn roots(&self) -> Result<Option<RootCertStore>, TlsError> {
        let Some(pem) = &self.truststore else {
            return Ok(None);
        };
        let (key, text) = read_pem(
            pem,
            "ssl.truststore.location",
            "ssl.truststore.certificates",
        )?;
        let mut roots = RootCertStore::empty();
        for cert in certificates(&text, &key)? {
            roots
                .add(cert)
                .map_err(|e| error(&key, format!("not a usable CA certificate: {e}")))?;
        }
        Ok(Some(roots))
    }

    /// The keystore's private key and certificate chain, with the name to blame for them.
    #[allow(clippy::type_complexity)]
    fn key_and_chain(
        &self,
    ) -> Result<Option<(String, PrivateKeyDer<'static>, Vec<CertificateDer<'static>>)>, TlsError>
    {
        let Some((key_pem, chain_pem)) = &self.keystore else {
            return Ok(None);
        };
        let (key_key, key_text) = read_pem(key_pem, "ssl.keystore.location", "ssl.keystore.key")?;
        let (chain_key, chain_text) = match chain_pem {
            Some(p) => read_pem(p, "ssl.keystore.location", "ssl.keystore.certificate.chain")?,
            None => (key_key.clone(), key_text.clone()),
        };
        if key_text.contains("ENCRYPTED PRIVATE KEY") {
            return Err(error(
                &key_key,
                "the private key is encrypted; gregor reads unencrypted PEM keys \
                 (`openssl pkcs8 -topk8 -nocrypt`)",
            ));
        }
        let key = PrivateKeyDer::from_pem_slice(key_text.as_bytes())
            .map_err(|e| error(&key_key, format!("no PEM private key found: {e}")))?;
        let chain = certificates(&chain_text, &chain_key)?;
        Ok(Some((key_key, key, chain)))
    }

    /// Reads the keystore and truststore and builds the listener's server config.
    pub fn server_config(&self) -> Result<Arc<ServerConfig>, TlsError> {
        let Some((key_key, key, chain)) = self.key_and_chain()? else {
            return Err(error(
                "ssl.keystore.location",
                "an SSL listener needs the broker's private key and certificate chain \
                 (ssl.keystore.type=PEM with ssl.keystore.location)",
            ));
        };
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut versions = Vec::new();
        if self.tls13 {
            versions.push(&rustls::version::TLS13);
        }
        if self.tls12 {
            versions.push(&rustls::version::TLS12);
        }
        let builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_protocol_versions(&versions)
            .map_err(|e| error("ssl.enabled.protocols", e.to_string()))?;
        let roots = match self.client_auth {
            ClientAuth::None => None,
            _ => self.roots()?,
        };
        let builder = match (roots, self.client_auth) {
            (None, _) | (_, ClientAuth::None) => builder.with_no_client_auth(),
            (Some(roots), auth) => {
                let verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
                let verifier = if auth == ClientAuth::Requested {
                    verifier.allow_unauthenticated()
                } else {
                    verifier
                };
                let verifier = verifier.build().map_err(|e| {
                    error(
                        "ssl.truststore.location",
                        format!("cannot check client certificates: {e}"),
                    )
                })?;
                builder.with_client_cert_verifier(verifier)
            }
        };
        let config = builder.with_single_cert(chain, key).map_err(|e| {
            error(
                &key_key,
                format!("the key does not fit the certificate: {e}"),
            )
        })?;
        Ok(Arc::new(config))
    }
}

/// The PEM text and the name to blame for it: the file's path, or the inline key.
fn read_pem(pem: &Pem, file_key: &str, inline_key: &str) -> Result<(String, String), TlsError> {
    match pem {
        Pem::File(path) => {
            let name = format!("{file_key} {}", path.display());
            let bytes = std::fs::read(path).map_err(|e| error(&name, e.to_string()))?;
            let text = String::from_utf8(bytes).unwrap_or_default();
            if !text.contains("-----BEGIN") {
                return Err(error(
                    &name,
                    "not a PEM file (JKS and PKCS12 stores are not read by gregor; convert \
                     them to PEM)",
                ));
            }
            Ok((name, text))
        }
        Pem::Inline(text) => Ok((inline_key.to_string(), text.clone())),
    }
}

fn certificates(text: &str, key: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(text.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| error(key, format!("bad PEM certificate: {e}")))?;
    if certs.is_empty() {
        return Err(error(key, "no PEM certificate found"));
    }
    Ok(certs)
}

/// The principal Kafka's default `ssl.principal.mapping.rules` gives a client certificate: its
/// subject's distinguished name as Java's `X500Principal.getName()` writes it (RFC 2253: most
/// specific first, `CN=alice,OU=eng,O=Example`). `None` if the certificate does not parse.
pub fn certificate_principal(cert: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert).ok()?;
    let registry = x509_parser::objects::oid_registry();
    let mut rdns = Vec::new();
    for rdn in cert.subject().iter_rdn() {
        let mut parts = Vec::new();
        for attr in rdn.iter() {
            // Java's RFC 2253 keywords; any other attribute by its dotted OID.
            let name = x509_parser::objects::oid2abbrev(attr.attr_type(), registry)
                .ok()
                .filter(|n| {
                    matches!(
                        *n,
                        "CN" | "C" | "L" | "ST" | "O" | "OU" | "STREET" | "DC" | "UID"
                    )
                })
                .map_or_else(|| attr.attr_type().to_id_string(), str::to_string);
            let value = attr.as_str().ok()?;
            parts.push(format!("{name}={}", escape_dn_value(value)));
        }
        rdns.push(parts.join("+"));
    }
    rdns.reverse();
    Some(rdns.join(","))
}

/// RFC 2253's escaping of an attribute value.
fn escape_dn_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        let special = matches!(c, ',' | '+' | '"' | '\\' | '<' | '>' | ';')
            || (i == 0 && (c == '#' || c == ' '))
            || (i == last && c == ' ');
        if special {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Whether `key` is one of the `ssl.*` keys gregor reads.
pub fn is_ssl_key(key: &str) -> bool {
    SSL_KEYS.contains(&key)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A CA and a server certificate for 127.0.0.1 signed by it, as PEM.
    struct TestPki {
        pub ca: String,
        pub server_key: String,
        pub server_chain: String,
    }

    fn test_pki() -> TestPki {
        let ca_key = rcgen::KeyPair::generate().expect("key");
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = ca.self_signed(&ca_key).expect("ca");
        let key = rcgen::KeyPair::generate().expect("key");
        let params = rcgen::CertificateParams::new(vec!["127.0.0.1".into(), "localhost".into()])
            .expect("params");
        let cert = params.signed_by(&key, &ca, &ca_key).expect("signed");
        TestPki {
            ca: ca.pem(),
            server_key: key.serialize_pem(),
            server_chain: format!("{}{}", cert.pem(), ca.pem()),
        }
    }

    fn props(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn a_client_certificate_s_principal_is_its_subject_as_rfc_2253() {
        let key = rcgen::KeyPair::generate().expect("key");
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        let mut dn = rcgen::DistinguishedName::new();
        dn.push(rcgen::DnType::CountryName, "US");
        dn.push(rcgen::DnType::OrganizationName, "Example, Inc");
        dn.push(rcgen::DnType::OrganizationalUnitName, "eng");
        dn.push(rcgen::DnType::CommonName, "alice");
        params.distinguished_name = dn;
        let cert = params.self_signed(&key).expect("cert");
        assert_eq!(
            certificate_principal(cert.der()).as_deref(),
            Some("CN=alice,OU=eng,O=Example\\, Inc,C=US")
        );
        assert_eq!(certificate_principal(b"not a certificate"), None);
        assert_eq!(escape_dn_value(" a+b "), "\\ a\\+b\\ ");
    }

    #[test]
    fn a_pem_keystore_in_one_file_or_inline_builds_a_server_config() {
        let pki = test_pki();
        let dir = tempfile::tempdir().expect("dir");
        let file = dir.path().join("server.pem");
        std::fs::write(&file, format!("{}{}", pki.server_key, pki.server_chain)).expect("write");
        let path = file.display().to_string();
        let s = TlsSettings::from_props(&props(&[
            ("ssl.keystore.type", "PEM"),
            ("ssl.keystore.location", &path),
        ]))
        .expect("settings");
        s.server_config().expect("config from a file");
        let s = TlsSettings::from_props(&props(&[
            ("ssl.keystore.key", &pki.server_key),
            ("ssl.keystore.certificate.chain", &pki.server_chain),
        ]))
        .expect("settings");
        s.server_config().expect("config from inline PEM");
    }

    #[test]
    fn stores_gregor_cannot_read_are_refused_with_the_reason() {
        let e =
            TlsSettings::from_props(&props(&[("ssl.keystore.type", "JKS")])).expect_err("refused");
        assert_eq!(e.key, "ssl.keystore.type");
        assert!(e.reason.contains("PEM"), "{e}");
        let e = TlsSettings::from_props(&props(&[("ssl.key.password", "secret")]))
            .expect_err("refused");
        assert_eq!(e.key, "ssl.key.password");
        let e = TlsSettings::from_props(&props(&[("ssl.client.auth", "required")]))
            .expect_err("refused");
        assert!(e.reason.contains("truststore"), "{e}");
        let e = TlsSettings::from_props(&props(&[("ssl.client.auth", "sometimes")]))
            .expect_err("refused");
        assert_eq!(e.key, "ssl.client.auth");
        let e = TlsSettings::from_props(&props(&[("ssl.enabled.protocols", "TLSv1.1")]))
            .expect_err("refused");
        assert!(e.reason.contains("TLSv1.1"), "{e}");
        // No keystore: the listener cannot serve.
        let e = TlsSettings::from_props(&props(&[]))
            .expect("settings")
            .server_config()
            .expect_err("refused");
        assert_eq!(e.key, "ssl.keystore.location");
        // A file that is not PEM (a JKS store, say).
        let dir = tempfile::tempdir().expect("dir");
        let file = dir.path().join("server.jks");
        std::fs::write(&file, [0xfe, 0xed, 0xfe, 0xed, 0, 0, 0, 2]).expect("write");
        let path = file.display().to_string();
        let e = TlsSettings::from_props(&props(&[("ssl.keystore.location", &path)]))
            .expect("settings")
            .server_config()
            .expect_err("refused");
        assert!(e.reason.contains("not a PEM file"), "{e}");
        // A key that does not belong to the certificate.
        let pki = test_pki();
        let other = test_pki();
        let e = TlsSettings::from_props(&props(&[
            ("ssl.keystore.key", &other.server_key),
            ("ssl.keystore.certificate.chain", &pki.server_chain),
        ]))
        .expect("settings")
        .server_config()
        .expect_err("refused");
        assert_eq!(e.key, "ssl.keystore.key", "{e}");
    }

    /// A TLS client reaches a broker connection through an SSL listener's acceptor: the
    /// handshake, a request and its answer, all encrypted; a client that does not trust the CA
    /// fails the handshake.
    #[tokio::test]
    async fn a_request_is_answered_over_tls() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};

        let pki = test_pki();
        let config = TlsSettings::from_props(&props(&[
            ("ssl.keystore.key", &pki.server_key),
            ("ssl.keystore.certificate.chain", &pki.server_chain),
        ]))
        .expect("settings")
        .server_config()
        .expect("config");
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        let dir = tempfile::tempdir().expect("tempdir");
        let mut broker_config = crate::config::BrokerConfig {
            data_dir: dir.path().to_path_buf(),
            ..Default::default()
        };
        broker_config.group.offsets_topic_num_partitions = 1;
        let broker = crate::broker::test_broker(broker_config);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (_stop, rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            while let Ok((stream, peer)) = listener.accept().await {
                let Ok(tls) = acceptor.accept(stream).await else {
                    continue;
                };
                let (broker, rx) = (Arc::clone(&broker), rx.clone());
                let pool = Arc::new(crate::memory_pool::MemoryPool::new(None));
                tokio::spawn(crate::connection::serve(
                    broker,
                    pool,
                    crate::connection::ClientStream::Tls(Box::new(tls)),
                    peer,
                    crate::connection::Identity {
                        listener: crate::request::ListenerName::new("SSL"),
                        ..Default::default()
                    },
                    rx,
                ));
            }
        });

        let connector = |ca: &str| {
            let mut roots = RootCertStore::empty();
            for cert in certificates(ca, "ca").expect("ca") {
                roots.add(cert).expect("root");
            }
            let config = rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
            tokio_rustls::TlsConnector::from(Arc::new(config))
        };
        let name = rustls_pki_types::ServerName::try_from("127.0.0.1").expect("name");
        let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let mut tls = connector(&pki.ca)
            .connect(name.clone(), tcp)
            .await
            .expect("handshake");
        // ApiVersions v0, correlation id 7, no client id.
        tls.write_all(&[0, 0, 0, 10, 0, 18, 0, 0, 0, 0, 0, 7, 0xff, 0xff])
            .await
            .expect("send");
        let mut size = [0u8; 4];
        tls.read_exact(&mut size).await.expect("size");
        let mut body = vec![0u8; i32::from_be_bytes(size) as usize];
        tls.read_exact(&mut body).await.expect("body");
        assert_eq!(&body[0..4], &7i32.to_be_bytes(), "correlation id");
        assert_eq!(&body[4..6], &0i16.to_be_bytes(), "error code");

        let stranger = test_pki();
        let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
        assert!(
            connector(&stranger.ca).connect(name, tcp).await.is_err(),
            "a client that does not trust the broker's CA must fail the handshake"
        );
    }
}
