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

use arc_swap::ArcSwap;
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
    "ssl.allow.dn.changes",
    "ssl.allow.san.changes",
    crate::principal_mapping::SSL_PRINCIPAL_MAPPING_RULES,
];

/// The `ssl.*` keys a listener reloads without a restart, set per broker as
/// `listener.name.<listener>.<key>` (Kafka's `SslConfigs.RECONFIGURABLE_CONFIGS`).
pub use gregor_metadata::controller::{listener_ssl_config, RECONFIGURABLE_SSL_CONFIGS};

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
    /// `ssl.allow.dn.changes`: whether a reloaded keystore's certificates may name another
    /// subject (Kafka's default: no).
    allow_dn_changes: bool,
    /// `ssl.allow.san.changes`: whether they may carry other subject alternative names.
    allow_san_changes: bool,
    /// `ssl.principal.mapping.rules` (KIP-371): a client certificate's subject to its name.
    principal_mapper: Arc<crate::principal_mapping::SslPrincipalMapper>,
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
        let flag = |key: &str| match get(key).map(|v| v.to_ascii_lowercase()).as_deref() {
            None | Some("false") => Ok(false),
            Some("true") => Ok(true),
            Some(v) => Err(error(key, format!("{v}: expected true or false"))),
        };
        let allow_dn_changes = flag("ssl.allow.dn.changes")?;
        let allow_san_changes = flag("ssl.allow.san.changes")?;
        let principal_mapper = principal_mapper(props)?;
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
            allow_dn_changes,
            allow_san_changes,
            principal_mapper: Arc::new(principal_mapper),
        })
    }

    /// How a client certificate's subject becomes its principal on this listener.
    pub fn principal_mapper(&self) -> Arc<crate::principal_mapping::SslPrincipalMapper> {
        Arc::clone(&self.principal_mapper)
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
        Ok(self.keys_and_entries()?.map(|(keys, _)| keys))
    }

    /// The keystore's keys, and what each entry's certificate names (for a reload's checks).
    fn keys_and_entries(&self) -> Result<Option<(StoreKeys, Vec<CertificateEntry>)>, TlsError> {
        let Some(spec) = &self.keystore else {
            return Ok(None);
        };
        let store = spec.load()?;
        let entries = store
            .entries
            .iter()
            .filter_map(|e| {
                let leaf = e.chain.first()?;
                Some(CertificateEntry::of(&e.alias, leaf))
            })
            .collect();
        let keys = store.certified_keys(&rustls::crypto::ring::default_provider())?;
        if keys.aliases().len() > 1 {
            tracing::info!(
                keystore = %store.blame,
                aliases = ?keys.aliases(),
                "the keystore holds several key entries: each handshake takes the first whose \
                 key the peer can verify"
            );
        }
        Ok(Some((keys, entries)))
    }

    /// Reads the keystore and truststore and builds the listener's server config.
    pub fn server_config(&self) -> Result<Arc<ServerConfig>, TlsError> {
        Ok(self.build()?.server)
    }

    /// The modification times of the store files (`None` for inline PEM or a file that cannot
    /// be read): a reload of the same settings rereads the stores when one of these changed.
    fn stamps(&self) -> [Option<std::time::SystemTime>; 2] {
        let stamp = |path: Option<&std::path::Path>| {
            path.and_then(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok())
        };
        [
            stamp(self.keystore.as_ref().and_then(|k| k.file())),
            stamp(self.truststore.as_ref().and_then(|t| t.file())),
        ]
    }

    /// Reads the stores once for everything a listener serves and dials with.
    fn build(&self) -> Result<Built, TlsError> {
        let stamps = self.stamps();
        let Some((keys, entries)) = self.keys_and_entries()? else {
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
        let roots = self.roots()?.map(Arc::new);
        let builder = match (roots.clone(), self.client_auth) {
            (None, _) | (_, ClientAuth::None) => builder.with_no_client_auth(),
            (Some(roots), auth) => {
                let verifier = WebPkiClientVerifier::builder_with_provider(roots, provider);
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
        let keys = Arc::new(keys);
        let config = builder.with_cert_resolver(Arc::clone(&keys) as _);
        Ok(Built {
            server: Arc::new(config),
            keys,
            roots,
            entries,
            stamps,
        })
    }
}

/// One listener's stores, read: what it serves, and what dialling a peer with them shows and
/// trusts.
struct Built {
    server: Arc<ServerConfig>,
    keys: Arc<StoreKeys>,
    roots: Option<Arc<RootCertStore>>,
    entries: Vec<CertificateEntry>,
    stamps: [Option<std::time::SystemTime>; 2],
}

/// What a keystore entry's certificate names: what Kafka's `CertificateEntries` compares when
/// a keystore is reloaded (its subject unless `ssl.allow.dn.changes`, its subject alternative
/// names unless `ssl.allow.san.changes`).
#[derive(Debug, Clone, PartialEq, Eq)]
struct CertificateEntry {
    alias: String,
    subject: String,
    sans: std::collections::BTreeSet<String>,
}

impl CertificateEntry {
    fn of(alias: &str, cert: &[u8]) -> CertificateEntry {
        let sans = x509_parser::parse_x509_certificate(cert)
            .ok()
            .and_then(|(_, c)| {
                c.subject_alternative_name().ok().flatten().map(|ext| {
                    ext.value
                        .general_names
                        .iter()
                        .map(|n| match n {
                            x509_parser::extensions::GeneralName::DNSName(d) => format!("DNS:{d}"),
                            x509_parser::extensions::GeneralName::IPAddress(ip) => {
                                match <[u8; 4]>::try_from(*ip) {
                                    Ok(v4) => format!("IP:{}", std::net::Ipv4Addr::from(v4)),
                                    Err(_) => match <[u8; 16]>::try_from(*ip) {
                                        Ok(v6) => format!("IP:{}", std::net::Ipv6Addr::from(v6)),
                                        Err(_) => format!("IP:{ip:?}"),
                                    },
                                }
                            }
                            other => format!("{other:?}"),
                        })
                        .collect()
                })
            })
            .unwrap_or_default();
        CertificateEntry {
            alias: alias.to_string(),
            subject: certificate_principal(cert).unwrap_or_default(),
            sans,
        }
    }
}

/// Why a keystore cannot replace the one a listener serves: its certificates name another
/// subject or other alternative names than the old one's (Kafka's rule; the flags allow it).
fn identity_change(
    old: &[CertificateEntry],
    new: &[CertificateEntry],
    next: &TlsSettings,
) -> Option<String> {
    let dn_changed = !next.allow_dn_changes
        && old
            .iter()
            .map(|e| &e.subject)
            .ne(new.iter().map(|e| &e.subject));
    let san_changed =
        !next.allow_san_changes && old.iter().map(|e| &e.sans).ne(new.iter().map(|e| &e.sans));
    (dn_changed || san_changed).then(|| {
        let show = |entries: &[CertificateEntry]| {
            entries
                .iter()
                .map(|e| format!("{} {:?}", e.subject, e.sans))
                .collect::<Vec<_>>()
                .join("; ")
        };
        format!(
            "Keystore DistinguishedName or SubjectAltNames do not match: existing={{{}}}, new={{{}}} \
             (ssl.allow.dn.changes and ssl.allow.san.changes allow it)",
            show(old),
            show(new)
        )
    })
}

/// The stores a listener serves now, and what they were read from.
struct Loaded {
    settings: TlsSettings,
    entries: Vec<CertificateEntry>,
    stamps: [Option<std::time::SystemTime>; 2],
}

/// One SSL listener's TLS, reloadable while it serves (KIP-226's dynamic SSL stores): each
/// handshake takes the server config current when the connection was accepted, so connections
/// open before a reload keep theirs. For the inter-broker listener it also holds what this
/// broker dials its peers with, swapped in place ([`ReloadableTls::client_config`]).
///
/// ```text
///  AlterConfigs listener.name.<l>.ssl.* ─► validate (stores load, key fits, same subject/SANs)
///       ─► committed ─► applied image ─► reload: swap server config, client cert, verifier
/// ```
pub struct ReloadableTls {
    /// The listener's name, for the log.
    listener: String,
    /// The server config new handshakes take.
    server: ArcSwap<ServerConfig>,
    /// The certificate this broker shows a peer that asks for one.
    client_keys: Arc<SwapClientCert>,
    /// The trust this broker checks peers' certificates with (`None` without a truststore).
    client_roots: Option<Arc<SwapServerVerifier>>,
    /// What is loaded; the lock serialises reloads.
    loaded: std::sync::Mutex<Loaded>,
    /// `ssl.principal.mapping.rules`, static as in Kafka (not among the reloaded keys).
    principal_mapper: Arc<crate::principal_mapping::SslPrincipalMapper>,
    /// The controller listener's: client certificates are always asked for at the TLS level
    /// (the quorum protocol needs them; `ssl.client.auth` is applied per connection).
    client_auth_override: Option<ClientAuth>,
}

impl std::fmt::Debug for ReloadableTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReloadableTls")
            .field("listener", &self.listener)
            .finish_non_exhaustive()
    }
}

impl ReloadableTls {
    /// Reads the listener's stores.
    pub fn new(listener: &str, settings: TlsSettings) -> Result<ReloadableTls, TlsError> {
        ReloadableTls::with_client_auth(listener, settings, None)
    }

    /// Reads the controller listener's stores: its server side asks every client for a
    /// certificate whatever `ssl.client.auth` says, now and after each reload.
    pub fn for_quorum(listener: &str, settings: TlsSettings) -> Result<ReloadableTls, TlsError> {
        ReloadableTls::with_client_auth(listener, settings, Some(ClientAuth::Requested))
    }

    fn with_client_auth(
        listener: &str,
        mut settings: TlsSettings,
        client_auth_override: Option<ClientAuth>,
    ) -> Result<ReloadableTls, TlsError> {
        if let Some(auth) = client_auth_override {
            settings.client_auth = auth;
        }
        let built = settings.build()?;
        let client_roots = match &built.roots {
            Some(roots) => Some(Arc::new(SwapServerVerifier(ArcSwap::new(server_verifier(
                roots,
            )?)))),
            None => None,
        };
        Ok(ReloadableTls {
            client_auth_override,
            principal_mapper: settings.principal_mapper(),
            listener: listener.to_string(),
            server: ArcSwap::new(built.server),
            client_keys: Arc::new(SwapClientCert(ArcSwap::new(built.keys))),
            client_roots,
            loaded: std::sync::Mutex::new(Loaded {
                settings,
                entries: built.entries,
                stamps: built.stamps,
            }),
        })
    }

    /// How a client certificate's subject becomes its principal on this listener.
    pub fn principal_mapper(&self) -> Arc<crate::principal_mapping::SslPrincipalMapper> {
        Arc::clone(&self.principal_mapper)
    }

    /// The server config current now (the controller listener's quorum takes it per handshake).
    pub fn server_config(&self) -> Arc<ServerConfig> {
        self.server.load_full()
    }

    /// `next` as this listener serves it (the controller listener's client auth override).
    fn served(&self, next: &TlsSettings) -> TlsSettings {
        let mut next = next.clone();
        if let Some(auth) = self.client_auth_override {
            next.client_auth = auth;
        }
        next
    }

    /// An acceptor for the next connection: the server config current now.
    pub fn acceptor(&self) -> tokio_rustls::TlsAcceptor {
        tokio_rustls::TlsAcceptor::from(self.server.load_full())
    }

    /// What this broker dials a peer with: the listener's truststore and keystore, as they are
    /// at each handshake (a reload changes both for new connections).
    pub fn client_config(&self) -> Result<Arc<rustls::ClientConfig>, TlsError> {
        let Some(verifier) = &self.client_roots else {
            return Err(error(
                "ssl.truststore.location",
                "no truststore to check peers with",
            ));
        };
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .map_err(|e| error("ssl.enabled.protocols", e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::clone(verifier) as _)
        .with_client_cert_resolver(Arc::clone(&self.client_keys) as _);
        Ok(Arc::new(config))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Loaded> {
        self.loaded.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Checks that `next` could replace what the listener serves: its stores load, the key
    /// fits its certificate, the certificates name the same subject and alternative names
    /// (unless allowed), and a truststore stays if there was one (peers are dialled with it).
    pub fn validate(&self, next: &TlsSettings) -> Result<(), TlsError> {
        let entries = self.lock().entries.clone();
        self.check(&entries, &self.served(next)).map(|_| ())
    }

    fn check(&self, old: &[CertificateEntry], next: &TlsSettings) -> Result<Built, TlsError> {
        let built = next.build()?;
        if let Some(reason) = identity_change(old, &built.entries, next) {
            return Err(error("ssl.keystore.location", reason));
        }
        if self.client_roots.is_some() && built.roots.is_none() {
            return Err(error(
                "ssl.truststore.location",
                "this listener's truststore is what the broker checks its peers with: it \
                 cannot be removed",
            ));
        }
        Ok(built)
    }

    /// Serves `next` from the next handshake on, when it differs from what is loaded or, with
    /// `reread`, when a store file changed since it was read (Kafka rereads a store whose path
    /// is submitted again when its modification time changed). `Ok(false)`: nothing to do; an
    /// error leaves the listener as it was.
    pub fn reload(&self, next: &TlsSettings, reread: bool) -> Result<bool, TlsError> {
        let next = &self.served(next);
        let mut loaded = self.lock();
        let same = loaded.settings == *next && (!reread || loaded.stamps == next.stamps());
        if same {
            return Ok(false);
        }
        let built = self.check(&loaded.entries, next)?;
        self.server.store(built.server);
        self.client_keys.0.store(built.keys);
        if let (Some(swap), Some(roots)) = (&self.client_roots, &built.roots) {
            swap.0.store(server_verifier(roots)?);
        }
        tracing::info!(
            listener = %self.listener,
            certificates = ?built.entries.iter().map(|e| &e.subject).collect::<Vec<_>>(),
            "SSL stores reloaded: new connections get the new certificate"
        );
        *loaded = Loaded {
            settings: next.clone(),
            entries: built.entries,
            stamps: built.stamps,
        };
        Ok(true)
    }
}

fn server_verifier(
    roots: &Arc<RootCertStore>,
) -> Result<Arc<rustls::client::WebPkiServerVerifier>, TlsError> {
    rustls::client::WebPkiServerVerifier::builder_with_provider(
        Arc::clone(roots),
        Arc::new(rustls::crypto::ring::default_provider()),
    )
    .build()
    .map_err(|e| {
        error(
            "ssl.truststore.location",
            format!("cannot check peer certificates: {e}"),
        )
    })
}

/// The keystore's keys a dialling broker shows, swapped by a reload.
#[derive(Debug)]
struct SwapClientCert(ArcSwap<StoreKeys>);

impl rustls::client::ResolvesClientCert for SwapClientCert {
    fn resolve(
        &self,
        root_hint_subjects: &[&[u8]],
        sigschemes: &[rustls::SignatureScheme],
    ) -> Option<Arc<rustls::sign::CertifiedKey>> {
        rustls::client::ResolvesClientCert::resolve(
            self.0.load().as_ref(),
            root_hint_subjects,
            sigschemes,
        )
    }

    fn has_certs(&self) -> bool {
        rustls::client::ResolvesClientCert::has_certs(self.0.load().as_ref())
    }
}

/// The truststore a dialling broker checks its peers with, swapped by a reload.
#[derive(Debug)]
struct SwapServerVerifier(ArcSwap<rustls::client::WebPkiServerVerifier>);

impl rustls::client::danger::ServerCertVerifier for SwapServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &rustls_pki_types::CertificateDer<'_>,
        intermediates: &[rustls_pki_types::CertificateDer<'_>],
        server_name: &rustls_pki_types::ServerName<'_>,
        ocsp_response: &[u8],
        now: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        self.0
            .load()
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.0.load().verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.0.load().verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.load().supported_verify_schemes()
    }
}

/// The SSL listeners this broker serves, by name (upper case), for the AlterConfigs checks and
/// the reloads that follow the applied images.
#[derive(Debug, Default)]
pub struct ListenerTls {
    listeners: std::sync::RwLock<Vec<(String, Arc<ReloadableTls>)>>,
}

impl ListenerTls {
    /// Registers a listener's TLS.
    pub fn add(&self, name: &str, tls: Arc<ReloadableTls>) {
        let mut listeners = self.listeners.write().unwrap_or_else(|p| p.into_inner());
        listeners.push((name.to_ascii_uppercase(), tls));
    }

    /// A listener's TLS, by name (any case).
    pub fn get(&self, name: &str) -> Option<Arc<ReloadableTls>> {
        let listeners = self.listeners.read().unwrap_or_else(|p| p.into_inner());
        listeners
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, t)| Arc::clone(t))
    }

    /// Every listener's TLS.
    pub fn all(&self) -> Vec<(String, Arc<ReloadableTls>)> {
        self.listeners
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
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

/// `ssl.principal.mapping.rules`, checked as Kafka's listeners check it when they start (a
/// rule that does not parse stops the start). Unset is Kafka's `DEFAULT`. A value with no rule
/// at all is refused too: Kafka would start and then refuse every client certificate.
fn principal_mapper(
    props: &BTreeMap<String, String>,
) -> Result<crate::principal_mapping::SslPrincipalMapper, TlsError> {
    use crate::principal_mapping::{SslPrincipalMapper, SSL_PRINCIPAL_MAPPING_RULES};
    let Some(rules) = props.get(SSL_PRINCIPAL_MAPPING_RULES) else {
        return Ok(SslPrincipalMapper::default());
    };
    let mapper =
        SslPrincipalMapper::parse(rules).map_err(|e| error(SSL_PRINCIPAL_MAPPING_RULES, e.0))?;
    if mapper.is_empty() {
        return Err(error(
            SSL_PRINCIPAL_MAPPING_RULES,
            "no rule given, so every client certificate would be refused (DEFAULT keeps the \
             subject as the name)",
        ));
    }
    Ok(mapper)
}

/// Whether `key` is one of the `ssl.*` keys gregor reads.
pub fn is_ssl_key(key: &str) -> bool {
    SSL_KEYS.contains(&key)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A TLS client that trusts the CA certificates of `ca` (PEM) and shows none of its own.
    fn client_trusting(ca: &str) -> Arc<rustls::ClientConfig> {
        use rustls_pki_types::pem::PemObject;
        let mut roots = RootCertStore::empty();
        for cert in rustls_pki_types::CertificateDer::pem_slice_iter(ca.as_bytes()) {
            roots.add(cert.expect("ca")).expect("root");
        }
        Arc::new(
            rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth(),
        )
    }

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

    /// A CA and certificates it signs for `names`, with `cn` as their subject.
    struct Issuer {
        key: rcgen::KeyPair,
        cert: rcgen::Certificate,
    }

    impl Issuer {
        fn new() -> Issuer {
            let key = rcgen::KeyPair::generate().expect("key");
            let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
            ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
            let cert = ca.self_signed(&key).expect("ca");
            Issuer { key, cert }
        }

        /// A PEM keystore (key, certificate, CA) for `cn` and `names`.
        fn keystore(&self, cn: &str, names: &[&str]) -> String {
            let key = rcgen::KeyPair::generate().expect("key");
            let mut params = rcgen::CertificateParams::new(
                names.iter().map(|n| n.to_string()).collect::<Vec<_>>(),
            )
            .expect("params");
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, cn);
            let cert = params
                .signed_by(&key, &self.cert, &self.key)
                .expect("signed");
            format!("{}{}{}", key.serialize_pem(), cert.pem(), self.cert.pem())
        }
    }

    /// The serial number of the certificate a TLS client gets from `config`'s listener.
    async fn served_serial(acceptor: tokio_rustls::TlsAcceptor, ca: &str) -> Vec<u8> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            if let Ok((stream, _)) = listener.accept().await {
                let _ = acceptor.accept(stream).await;
            }
        });
        let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let name = rustls_pki_types::ServerName::try_from("localhost").expect("name");
        let tls = tokio_rustls::TlsConnector::from(client_trusting(ca))
            .connect(name, tcp)
            .await
            .expect("handshake");
        let leaf = tls.get_ref().1.peer_certificates().expect("certs")[0].clone();
        let (_, cert) = x509_parser::parse_x509_certificate(&leaf).expect("x509");
        cert.raw_serial().to_vec()
    }

    fn serial_of(pem: &str) -> Vec<u8> {
        use rustls_pki_types::pem::PemObject;
        let leaf = rustls_pki_types::CertificateDer::pem_slice_iter(pem.as_bytes())
            .next()
            .expect("a certificate")
            .expect("pem");
        let (_, cert) = x509_parser::parse_x509_certificate(&leaf).expect("x509");
        cert.raw_serial().to_vec()
    }

    /// A reload swaps the certificate new handshakes get; the same path rewritten is reread
    /// only when asked to (a resubmission), and a store naming another subject or other
    /// alternative names, one that does not load, or a wrong password is refused and the
    /// listener keeps its certificate.
    #[tokio::test]
    async fn a_reload_swaps_the_certificate_and_refuses_what_does_not_fit() {
        let ca = Issuer::new();
        let ca_pem = ca.cert.pem();
        let dir = tempfile::tempdir().expect("dir");
        let file = dir.path().join("server.pem");
        let path = file.display().to_string();
        let first = ca.keystore("broker", &["localhost"]);
        std::fs::write(&file, &first).expect("write");
        let settings = |path: &str| {
            TlsSettings::from_props(&props(&[
                ("ssl.keystore.type", "PEM"),
                ("ssl.keystore.location", path),
            ]))
            .expect("settings")
        };
        let tls = ReloadableTls::new("SSL", settings(&path)).expect("loads");
        assert_eq!(
            served_serial(tls.acceptor(), &ca_pem).await,
            serial_of(&first)
        );
        let before = tls.acceptor();

        // A new key and certificate for the same subject, at a new path.
        let second = ca.keystore("broker", &["localhost"]);
        let file2 = dir.path().join("server-2.pem");
        std::fs::write(&file2, &second).expect("write");
        let path2 = file2.display().to_string();
        assert!(tls.reload(&settings(&path2), false).expect("reloads"));
        assert_eq!(
            served_serial(tls.acceptor(), &ca_pem).await,
            serial_of(&second)
        );
        // An acceptor taken before (a connection accepted before) keeps the old certificate.
        assert_eq!(served_serial(before, &ca_pem).await, serial_of(&first));
        // The same settings: nothing to do.
        assert!(!tls.reload(&settings(&path2), false).expect("same"));

        // The file replaced in place: reread on a resubmission, when its time changed.
        let third = ca.keystore("broker", &["localhost"]);
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(&file2, &third).expect("write");
        let later = std::time::SystemTime::now() + std::time::Duration::from_secs(2);
        std::fs::File::options()
            .write(true)
            .open(&file2)
            .and_then(|f| f.set_modified(later))
            .expect("touch");
        assert!(!tls.reload(&settings(&path2), false).expect("not reread"));
        assert!(tls.reload(&settings(&path2), true).expect("reread"));
        assert_eq!(
            served_serial(tls.acceptor(), &ca_pem).await,
            serial_of(&third)
        );

        // Refusals: the listener keeps the third certificate.
        let refused = |pem: &str, name: &str| {
            let f = dir.path().join(name);
            std::fs::write(&f, pem).expect("write");
            let e = tls
                .reload(&settings(&f.display().to_string()), true)
                .expect_err("refused");
            e.to_string()
        };
        let e = refused(&ca.keystore("intruder", &["localhost"]), "dn.pem");
        assert!(e.contains("DistinguishedName"), "{e}");
        assert!(e.contains("CN=intruder"), "{e}");
        let e = refused(&ca.keystore("broker", &["elsewhere"]), "san.pem");
        assert!(e.contains("SubjectAltNames"), "{e}");
        let e = refused("not a store", "garbage.pem");
        assert!(e.contains("garbage.pem"), "{e}");
        let e = tls
            .reload(
                &settings(&dir.path().join("missing.pem").display().to_string()),
                true,
            )
            .expect_err("a missing file");
        assert!(e.to_string().contains("missing.pem"), "{e}");
        // A key that does not belong to the certificate.
        let other = ca.keystore("broker", &["localhost"]);
        let key_end = other.find("-----END PRIVATE KEY-----").expect("key") + 26;
        let cert_start = third.find("-----BEGIN CERTIFICATE-----").expect("cert");
        let e = refused(
            &format!("{}{}", &other[..key_end], &third[cert_start..]),
            "mismatch.pem",
        );
        assert!(e.contains("does not fit"), "{e}");
        // A JKS store with the wrong password.
        let e = tls
            .reload(
                &TlsSettings::from_props(&props(&[
                    ("ssl.keystore.location", &fixture("server.jks")),
                    ("ssl.keystore.password", "wrong-password"),
                    ("ssl.key.password", "keypass"),
                ]))
                .expect("settings"),
                true,
            )
            .expect_err("wrong password");
        assert!(!e.to_string().contains("wrong-password"), "{e}");
        assert_eq!(
            served_serial(tls.acceptor(), &ca_pem).await,
            serial_of(&third)
        );

        // With ssl.allow.dn.changes and ssl.allow.san.changes, another subject is taken.
        let renamed = ca.keystore("renamed", &["localhost", "elsewhere"]);
        let f = dir.path().join("renamed.pem");
        std::fs::write(&f, &renamed).expect("write");
        let allowed = TlsSettings::from_props(&props(&[
            ("ssl.keystore.type", "PEM"),
            ("ssl.keystore.location", &f.display().to_string()),
            ("ssl.allow.dn.changes", "true"),
            ("ssl.allow.san.changes", "true"),
        ]))
        .expect("settings");
        assert!(tls.reload(&allowed, false).expect("allowed"));
        assert_eq!(
            served_serial(tls.acceptor(), &ca_pem).await,
            serial_of(&renamed)
        );
    }

    /// Whether a server with `server` finishes a handshake with a client using `client`.
    async fn server_accepts(server: Arc<ServerConfig>, client: Arc<rustls::ClientConfig>) -> bool {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let accepted = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.ok()?;
            let tls = tokio_rustls::TlsAcceptor::from(server).accept(stream).await;
            tls.ok().map(|_| ())
        });
        let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let name = rustls_pki_types::ServerName::try_from("localhost").expect("name");
        let _ = tokio_rustls::TlsConnector::from(client)
            .connect(name, tcp)
            .await;
        accepted.await.ok().flatten().is_some()
    }

    /// The controller listener's stores (`for_quorum`) ask every client for a certificate at
    /// the TLS level whatever `ssl.client.auth` says, and still do after a reload: a client
    /// showing one the truststore does not vouch for is refused, where a client listener with
    /// the same settings (`ssl.client.auth` unset) does not ask for it.
    #[tokio::test]
    async fn the_quorum_s_stores_ask_for_client_certificates_across_reloads() {
        use rustls_pki_types::pem::PemObject;
        let ca = Issuer::new();
        let rogue = Issuer::new();
        let dir = tempfile::tempdir().expect("dir");
        let write = |name: &str, pem: &str| {
            let f = dir.path().join(name);
            std::fs::write(&f, pem).expect("write");
            f.display().to_string()
        };
        let ca_pem = ca.cert.pem();
        let trust = write("ca.pem", &ca_pem);
        let settings = |keystore: &str| {
            TlsSettings::from_props(&props(&[
                ("ssl.keystore.type", "PEM"),
                ("ssl.keystore.location", keystore),
                ("ssl.truststore.type", "PEM"),
                ("ssl.truststore.location", &trust),
            ]))
            .expect("settings")
        };
        let first = write("node.pem", &ca.keystore("node", &["localhost"]));
        let second = write("node-2.pem", &ca.keystore("node", &["localhost"]));
        let stranger = rogue.keystore("stranger", &[]);
        let key =
            rustls_pki_types::PrivateKeyDer::from_pem_slice(stranger.as_bytes()).expect("key");
        let chain: Vec<_> = rustls_pki_types::CertificateDer::pem_slice_iter(stranger.as_bytes())
            .map(|c| c.expect("pem"))
            .collect();
        let mut roots = RootCertStore::empty();
        for cert in rustls_pki_types::CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
            roots.add(cert.expect("ca")).expect("root");
        }
        let client = Arc::new(
            rustls::ClientConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, key)
            .expect("client certificate"),
        );
        let plain = ReloadableTls::new("SSL", settings(&first)).expect("loads");
        assert!(
            server_accepts(plain.server_config(), Arc::clone(&client)).await,
            "a client listener without ssl.client.auth does not ask for the certificate"
        );
        let quorum = ReloadableTls::for_quorum("CONTROLLER", settings(&first)).expect("loads");
        assert!(!server_accepts(quorum.server_config(), Arc::clone(&client)).await);
        assert!(quorum.reload(&settings(&second), false).expect("reloads"));
        assert!(
            !server_accepts(quorum.server_config(), Arc::clone(&client)).await,
            "the quorum's stores still ask for a client certificate after a reload"
        );
    }

    #[test]
    fn reconfigurable_keys_are_the_listener_prefixed_stores() {
        assert_eq!(
            listener_ssl_config("listener.name.ssl.ssl.keystore.location"),
            Some(("ssl", "ssl.keystore.location"))
        );
        assert_eq!(
            listener_ssl_config("listener.name.ssl.ssl.client.auth"),
            None
        );
        assert_eq!(listener_ssl_config("ssl.keystore.location"), None);
        assert_eq!(listener_ssl_config("listener.name..ssl.keystore.key"), None);
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

        let connector = |ca: &str| tokio_rustls::TlsConnector::from(client_trusting(ca));
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
