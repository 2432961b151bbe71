//! TLS for `SSL` listeners: Kafka's `ssl.*` broker keys turned into a rustls server config.
//!
//! ```text
//!  ssl.* keys (global, or listener.name.<name>.ssl.* for one listener)
//!        │ TlsSettings::from_props: checked when the config is applied
//!        ▼
//!  TlsSettings::server_config: stores read (gregor_client::keystore), rustls ServerConfig (ring)
//!        ──► TlsAcceptor; at start a bad store, password, key or certificate stops the broker
//!        with the key and the file at fault
//! ```
//!
//! Keystores and truststores are what Kafka reads: JKS (Kafka's default type), PKCS12 and PEM
//! (KIP-651: a file, or the key and chain inline in `ssl.keystore.key` and
//! `ssl.keystore.certificate.chain`), with `ssl.keystore.password`, `ssl.key.password` (the
//! key's own password in a JKS store; an encrypted PKCS#8 PEM key's) and the optional
//! `ssl.truststore.password`. `gregor_client::keystore` holds the formats and Kafka's rules for
//! which keys go together. `ssl.client.auth` (`required`, `requested`, `none`) checks client
//! certificates against the truststore's certificates.

use std::collections::BTreeMap;
use std::sync::Arc;

use gregor_client::keystore::{self, KeystoreSpec, StoreError, StoreKeys, TruststoreSpec};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};

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

impl From<StoreError> for TlsError {
    fn from(e: StoreError) -> TlsError {
        TlsError {
            key: e.key,
            reason: e.reason,
        }
    }
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

/// The `ssl.*` settings of one listener, checked but not yet read from disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsSettings {
    /// The private key(s) and certificate chain(s): a JKS, PKCS12 or PEM store.
    keystore: Option<KeystoreSpec>,
    /// The certificates that client (and, dialling out, peer) certificates must chain to.
    truststore: Option<TruststoreSpec>,
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
        let keystore = keystore::keystore_spec(&get)?;
        let truststore = keystore::truststore_spec(&get)?;
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
                "client certificates are checked against the truststore's certificates: set \
                 ssl.truststore.location",
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
        let config = match self.keys()? {
            None => builder.with_no_client_auth(),
            Some(keys) => builder.with_client_cert_resolver(Arc::new(keys)),
        };
        Ok(Arc::new(config))
    }

    /// The truststore's certificates, if one is set.
    fn roots(&self) -> Result<Option<RootCertStore>, TlsError> {
        let Some(spec) = &self.truststore else {
            return Ok(None);
        };
        let mut roots = RootCertStore::empty();
        for cert in spec.load()? {
            roots.add(cert).map_err(|e| {
                error(
                    "ssl.truststore.location",
                    format!("not a usable trusted certificate: {e}"),
                )
            })?;
        }
        Ok(Some(roots))
    }

    /// The keystore's keys, each checked against its certificate, if a keystore is set.
    fn keys(&self) -> Result<Option<StoreKeys>, TlsError> {
        let Some(spec) = &self.keystore else {
            return Ok(None);
        };
        let store = spec.load()?;
        let keys = store.certified_keys(&rustls::crypto::ring::default_provider())?;
        if keys.aliases().len() > 1 {
            tracing::info!(
                keystore = %store.blame,
                aliases = ?keys.aliases(),
                "the keystore holds several key entries: each handshake takes the first whose \
                 key the peer can verify"
            );
        }
        Ok(Some(keys))
    }

    /// Reads the keystore and truststore and builds the listener's server config.
    pub fn server_config(&self) -> Result<Arc<ServerConfig>, TlsError> {
        let Some(keys) = self.keys()? else {
            return Err(error(
                "ssl.keystore.location",
                "an SSL listener needs the broker's private key and certificate chain \
                 (ssl.keystore.location with ssl.keystore.password, or PEM)",
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
        let config = builder.with_cert_resolver(Arc::new(keys));
        Ok(Arc::new(config))
    }
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
    fn settings_that_cannot_serve_are_refused_with_the_reason() {
        let e = TlsSettings::from_props(&props(&[("ssl.keystore.type", "JCEKS")]))
            .expect_err("refused");
        assert_eq!(e.key, "ssl.keystore.type");
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
        // A JKS store without its password (Kafka's rule), and a damaged one.
        let dir = tempfile::tempdir().expect("dir");
        let file = dir.path().join("server.jks");
        std::fs::write(&file, [0xfe, 0xed, 0xfe, 0xed, 0, 0, 0, 2]).expect("write");
        let path = file.display().to_string();
        let e = TlsSettings::from_props(&props(&[("ssl.keystore.location", &path)]))
            .expect("settings")
            .server_config()
            .expect_err("refused");
        assert_eq!(e.key, "ssl.keystore.password", "{e}");
        let e = TlsSettings::from_props(&props(&[
            ("ssl.keystore.location", &path),
            ("ssl.keystore.password", "secret"),
        ]))
        .expect("settings")
        .server_config()
        .expect_err("refused");
        assert!(e.key.ends_with("server.jks"), "{e}");
        assert!(e.reason.contains("damaged"), "{e}");
        assert!(!e.to_string().contains("secret"), "{e}");
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
        assert!(e.reason.contains("does not fit"), "{e}");
    }

    /// A store made by keytool (`gregor-client`'s fixtures).
    fn fixture(name: &str) -> String {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../client/testdata/keystores")
            .join(name)
            .display()
            .to_string()
    }

    /// A broker listener on JKS stores requiring client certificates, and a peer dialling it
    /// with a JKS keystore of two key entries and a PKCS12 truststore: both handshakes' keys
    /// come from the stores, and a peer whose key the truststore does not vouch for is refused.
    #[tokio::test]
    async fn jks_and_pkcs12_stores_serve_a_mutual_tls_handshake() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};

        let (server_jks, trust_jks, two_keys, trust_p12) = (
            fixture("server.jks"),
            fixture("truststore.jks"),
            fixture("two-keys.jks"),
            fixture("truststore.p12"),
        );
        let server = TlsSettings::from_props(&props(&[
            ("ssl.keystore.location", &server_jks),
            ("ssl.keystore.password", "storepass"),
            ("ssl.key.password", "keypass"),
            ("ssl.truststore.location", &trust_jks),
            ("ssl.client.auth", "required"),
        ]))
        .expect("settings")
        .server_config()
        .expect("server config");
        let acceptor = tokio_rustls::TlsAcceptor::from(server);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    if let Ok(mut tls) = acceptor.accept(stream).await {
                        let peer = tls
                            .get_ref()
                            .1
                            .peer_certificates()
                            .and_then(|c| c.first().cloned())
                            .and_then(|c| certificate_principal(&c))
                            .unwrap_or_default();
                        let _ = tls.write_all(format!("{peer}\n").as_bytes()).await;
                        let _ = tls.shutdown().await;
                    }
                });
            }
        });
        let dial = |settings: TlsSettings| async move {
            let connector =
                tokio_rustls::TlsConnector::from(settings.client_config().expect("client config"));
            let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
            let name = rustls_pki_types::ServerName::try_from("localhost").expect("name");
            let mut tls = connector.connect(name, tcp).await?;
            let mut said = String::new();
            tls.read_to_string(&mut said).await?;
            Ok::<_, std::io::Error>(said)
        };
        let peer = TlsSettings::from_props(&props(&[
            ("ssl.keystore.location", &two_keys),
            ("ssl.keystore.password", "storepass"),
            ("ssl.truststore.type", "PKCS12"),
            ("ssl.truststore.location", &trust_p12),
            ("ssl.truststore.password", "trustpass"),
        ]))
        .expect("settings");
        let said = dial(peer).await.expect("handshake");
        // The first key entry in store order whose key fits: the EC one.
        assert_eq!(said.trim(), "CN=gregor fixture ec");
        // A certificate the broker's truststore does not know: the handshake fails.
        let pki = test_pki();
        let dir = tempfile::tempdir().expect("dir");
        let stranger = dir.path().join("stranger.pem");
        std::fs::write(&stranger, format!("{}{}", pki.server_key, pki.server_chain))
            .expect("write");
        let stranger = TlsSettings::from_props(&props(&[
            ("ssl.keystore.type", "PEM"),
            ("ssl.keystore.location", &stranger.display().to_string()),
            ("ssl.truststore.location", &trust_p12),
            ("ssl.truststore.password", "trustpass"),
        ]))
        .expect("settings");
        let refused = dial(stranger).await;
        assert!(
            refused.as_ref().map_or(true, |said| said.is_empty()),
            "a client certificate from another CA must be refused: {refused:?}"
        );
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
            use rustls_pki_types::pem::PemObject;
            for cert in rustls_pki_types::CertificateDer::pem_slice_iter(ca.as_bytes()) {
                roots.add(cert.expect("ca")).expect("root");
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
