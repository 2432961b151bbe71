//! Kafka's key stores and trust stores (`ssl.keystore.*`, `ssl.key.password`,
//! `ssl.truststore.*`) read into rustls types, for the broker's SSL listeners and for gregor's
//! own client and tools.
//!
//! ```text
//!  ssl.* keys ──StoreSpec::keystore / ::truststore (Kafka's DefaultSslEngineFactory rules)──┐
//!                                                                                           ▼
//!  file bytes ── detected: FEEDFEED → JKS, DER → PKCS12, "-----BEGIN" → PEM ── checked against
//!  ssl.*.type ── parse_jks / PKCS12 (p12-keystore) / PEM (an encrypted PKCS#8 key opened with
//!  ssl.key.password) ──► Keystore { KeyEntry { alias, key, chain } } ──► StoreKeys (a rustls
//!  cert resolver) ;  trusted certificates ──► the caller's RootCertStore
//! ```
//!
//! What follows Kafka (4.4) and Java 17:
//! - the type defaults to JKS; as with Java's `keystore.type.compat`, a store of type JKS may be
//!   a PKCS12 file and the other way round. A PEM file, or `ssl.keystore.key`, with no type set
//!   is read as PEM (Kafka would refuse it as JKS; gregor read PEM before it read stores, and
//!   such configs keep working). A type that names a format the file is not is refused.
//! - a JKS or PKCS12 keystore needs `ssl.keystore.password`; its keys are opened with
//!   `ssl.key.password`, or the store's password when that is unset, and every key entry must
//!   open with it (Java's SunX509 key manager refuses the store otherwise). A PEM keystore takes
//!   no store password; `ssl.key.password` opens its encrypted PKCS#8 key.
//! - `ssl.truststore.password` is optional for JKS and PKCS12: without it a JKS store is read
//!   without its integrity check, and a PKCS12 store gives only the certificates it holds
//!   unencrypted (none, for a store made by Java 17's keytool). A PEM truststore takes none.
//! - trusted are a store's trusted-certificate entries and the first certificate of each key
//!   entry (Java's `TrustStoreUtil`); a PKCS12 certificate without Java's trusted-certificate
//!   attribute and without a key (as `openssl pkcs12 -export -nokeys` writes them) is not.
//! - with several key entries, each handshake takes the first, in store order, whose key can
//!   sign with a scheme the peer offers (Java picks one whose key type the handshake needs).
//!
//! Parsing is I/O-free (`parse_jks`, `parse_pkcs12`): bytes in, entries out, and a damaged
//! file or a wrong password is an error, never a panic. Passwords never reach Debug output.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;

use pkcs8::der::asn1::{ContextSpecific, ObjectIdentifier, OctetString, OctetStringRef};
use pkcs8::der::{Decode, Encode, Reader, SliceReader};
use rustls::crypto::CryptoProvider;
use rustls::sign::CertifiedKey;
use rustls::SignatureScheme;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use sha1::{Digest, Sha1};

/// A secret from the config (a store or key password, an inline key): `Debug` hides it.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    pub fn new(secret: impl Into<String>) -> Password {
        Password(secret.into())
    }

    fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[hidden]")
    }
}

/// A store that cannot be used: the config key (with the file, when there is one) at fault,
/// and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{key}: {reason}")]
pub struct StoreError {
    pub key: String,
    pub reason: String,
}

fn error(key: &str, reason: impl Into<String>) -> StoreError {
    StoreError {
        key: key.to_string(),
        reason: reason.into(),
    }
}

/// `ssl.keystore.type` / `ssl.truststore.type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StoreType {
    Jks,
    Pkcs12,
    Pem,
}

impl StoreType {
    /// Java's KeyStore types ignore case (`jks`, `pkcs12`, `PEM`).
    fn parse(key: &str, value: &str) -> Result<StoreType, StoreError> {
        match value.to_ascii_uppercase().as_str() {
            "JKS" => Ok(StoreType::Jks),
            "PKCS12" => Ok(StoreType::Pkcs12),
            "PEM" => Ok(StoreType::Pem),
            _ => Err(error(
                key,
                format!(
                    "{value}: gregor reads JKS, PKCS12 and PEM stores (convert others with \
                     `keytool -importkeystore -deststoretype PKCS12`)"
                ),
            )),
        }
    }

    fn name(self) -> &'static str {
        match self {
            StoreType::Jks => "JKS",
            StoreType::Pkcs12 => "PKCS12",
            StoreType::Pem => "PEM",
        }
    }
}

/// What a store file holds, from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Jks,
    Jceks,
    Pkcs12,
    Pem,
    Unknown,
}

fn detect(bytes: &[u8]) -> Format {
    match bytes {
        [0xfe, 0xed, 0xfe, 0xed, ..] => Format::Jks,
        [0xce, 0xce, 0xce, 0xce, ..] => Format::Jceks,
        [0x30, ..] => Format::Pkcs12,
        _ if bytes.windows(10).any(|w| w == b"-----BEGIN") => Format::Pem,
        _ => Format::Unknown,
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum KeySource {
    File(PathBuf),
    /// `ssl.keystore.key` and `ssl.keystore.certificate.chain`.
    Inline {
        key: Password,
        chain: String,
    },
}

/// A keystore as configured, checked but not yet read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeystoreSpec {
    /// `ssl.keystore.type` when given (unset means Kafka's JKS, or PEM for PEM content).
    declared: Option<StoreType>,
    source: KeySource,
    password: Option<Password>,
    key_password: Option<Password>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum TrustSource {
    File(PathBuf),
    /// `ssl.truststore.certificates`.
    Inline(String),
}

/// A truststore as configured, checked but not yet read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TruststoreSpec {
    declared: Option<StoreType>,
    source: TrustSource,
    password: Option<Password>,
}

/// Reads the keystore keys of one set of properties (`get` answers a key's trimmed, non-empty
/// value), with Kafka's rules for which go together.
pub fn keystore_spec(
    get: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<KeystoreSpec>, StoreError> {
    let declared = get("ssl.keystore.type")
        .map(|t| StoreType::parse("ssl.keystore.type", &t))
        .transpose()?;
    let password = get("ssl.keystore.password").map(Password::new);
    let key_password = get("ssl.key.password").map(Password::new);
    let location = get("ssl.keystore.location");
    let source = match (
        get("ssl.keystore.key"),
        get("ssl.keystore.certificate.chain"),
    ) {
        (Some(key), chain) => {
            if let Some(t) = declared.filter(|t| *t != StoreType::Pem) {
                return Err(error(
                    "ssl.keystore.key",
                    format!(
                        "a key given in the config is PEM, but ssl.keystore.type is {}",
                        t.name()
                    ),
                ));
            }
            let Some(chain) = chain else {
                return Err(error(
                    "ssl.keystore.key",
                    "ssl.keystore.key and ssl.keystore.certificate.chain go together",
                ));
            };
            if location.is_some() {
                return Err(error(
                    "ssl.keystore.location",
                    "set either ssl.keystore.location or ssl.keystore.key with \
                     ssl.keystore.certificate.chain, not both",
                ));
            }
            if password.is_some() {
                return Err(error(
                    "ssl.keystore.password",
                    "a PEM keystore has no store password; an encrypted key takes \
                     ssl.key.password",
                ));
            }
            KeySource::Inline {
                key: Password::new(key),
                chain,
            }
        }
        (None, Some(_)) => {
            return Err(error(
                "ssl.keystore.certificate.chain",
                "ssl.keystore.key and ssl.keystore.certificate.chain go together",
            ))
        }
        (None, None) => match location {
            Some(path) => KeySource::File(path.into()),
            None if password.is_some() => {
                return Err(error(
                    "ssl.keystore.password",
                    "set, but there is no keystore (ssl.keystore.location)",
                ))
            }
            None => return Ok(None),
        },
    };
    if matches!(source, KeySource::File(_)) {
        match (declared, &password) {
            (Some(StoreType::Pem), Some(_)) => {
                return Err(error(
                    "ssl.keystore.password",
                    "a PEM keystore has no store password; an encrypted key takes \
                     ssl.key.password",
                ))
            }
            (Some(t @ (StoreType::Jks | StoreType::Pkcs12)), None) => {
                return Err(error(
                    "ssl.keystore.password",
                    format!("a {} keystore needs its password", t.name()),
                ))
            }
            _ => {}
        }
    }
    Ok(Some(KeystoreSpec {
        declared,
        source,
        password,
        key_password,
    }))
}

/// Reads the truststore keys of one set of properties, with Kafka's rules.
pub fn truststore_spec(
    get: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<TruststoreSpec>, StoreError> {
    let declared = get("ssl.truststore.type")
        .map(|t| StoreType::parse("ssl.truststore.type", &t))
        .transpose()?;
    let password = get("ssl.truststore.password").map(Password::new);
    let source = match (
        get("ssl.truststore.location"),
        get("ssl.truststore.certificates"),
    ) {
        (Some(_), Some(_)) => {
            return Err(error(
                "ssl.truststore.location",
                "set either ssl.truststore.location or ssl.truststore.certificates",
            ))
        }
        (None, Some(pem)) => {
            if let Some(t) = declared.filter(|t| *t != StoreType::Pem) {
                return Err(error(
                    "ssl.truststore.certificates",
                    format!(
                        "certificates given in the config are PEM, but ssl.truststore.type is {}",
                        t.name()
                    ),
                ));
            }
            TrustSource::Inline(pem)
        }
        (Some(path), None) => TrustSource::File(path.into()),
        (None, None) if password.is_some() => {
            return Err(error(
                "ssl.truststore.password",
                "set, but there is no truststore (ssl.truststore.location)",
            ))
        }
        (None, None) => return Ok(None),
    };
    let pem_declared = declared == Some(StoreType::Pem) || matches!(source, TrustSource::Inline(_));
    if pem_declared && password.is_some() {
        return Err(error(
            "ssl.truststore.password",
            "a PEM truststore has no password",
        ));
    }
    Ok(Some(TruststoreSpec {
        declared,
        source,
        password,
    }))
}

/// One key entry: the private key (PKCS#8 from stores) and its certificate chain, leaf first.
pub struct KeyEntry {
    pub alias: String,
    pub key: PrivateKeyDer<'static>,
    pub chain: Vec<CertificateDer<'static>>,
}

impl fmt::Debug for KeyEntry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyEntry")
            .field("alias", &self.alias)
            .field("chain", &self.chain.len())
            .finish_non_exhaustive()
    }
}

/// A keystore's key entries, and what to name in an error about them.
#[derive(Debug)]
pub struct Keystore {
    pub blame: String,
    pub entries: Vec<KeyEntry>,
}

/// The contents of a store file, and what to name in an error about it.
fn read_file(key: &str, path: &PathBuf) -> Result<(String, Vec<u8>), StoreError> {
    let blame = format!("{key} {}", path.display());
    let bytes = std::fs::read(path).map_err(|e| error(&blame, e.to_string()))?;
    Ok((blame, bytes))
}

/// Checks the format a file holds against the type the config declares.
fn check_format(
    blame: &str,
    type_key: &str,
    declared: Option<StoreType>,
    format: Format,
) -> Result<StoreType, StoreError> {
    let found = match format {
        Format::Jks => StoreType::Jks,
        Format::Pkcs12 => StoreType::Pkcs12,
        Format::Pem => StoreType::Pem,
        Format::Jceks => {
            return Err(error(
                blame,
                "a JCEKS store, which gregor does not read: convert it with `keytool \
                 -importkeystore -srcstoretype JCEKS -deststoretype PKCS12`",
            ))
        }
        Format::Unknown => return Err(error(blame, "not a JKS, PKCS12 or PEM store")),
    };
    match declared {
        Some(StoreType::Pem) if found != StoreType::Pem => Err(error(
            blame,
            format!(
                "{type_key} is PEM, but the file is a {} store: set {type_key}={} and its \
                 password",
                found.name(),
                found.name()
            ),
        )),
        Some(t) if t != StoreType::Pem && found == StoreType::Pem => Err(error(
            blame,
            format!(
                "{type_key} is {}, but the file is PEM: set {type_key}=PEM",
                t.name()
            ),
        )),
        _ => Ok(found),
    }
}

impl KeystoreSpec {
    /// The keystore file, when it is one (not inline PEM): what a reload checks for a change.
    pub fn file(&self) -> Option<&std::path::Path> {
        match &self.source {
            KeySource::File(path) => Some(path),
            KeySource::Inline { .. } => None,
        }
    }

    /// Reads the keystore: at least one key entry with its chain, or an error naming the key
    /// and file at fault.
    pub fn load(&self) -> Result<Keystore, StoreError> {
        let (blame, entries) = match &self.source {
            KeySource::Inline { key, chain } => {
                let entry = pem_key_entry(
                    "ssl.keystore.key",
                    key.expose(),
                    chain,
                    self.key_password.as_ref(),
                )
                .map_err(|e| {
                    if e.key == "chain" {
                        error("ssl.keystore.certificate.chain", e.reason)
                    } else {
                        e
                    }
                })?;
                ("ssl.keystore.key".to_string(), vec![entry])
            }
            KeySource::File(path) => {
                let (blame, bytes) = read_file("ssl.keystore.location", path)?;
                let found =
                    check_format(&blame, "ssl.keystore.type", self.declared, detect(&bytes))?;
                let entries = match found {
                    StoreType::Pem => {
                        if self.password.is_some() {
                            return Err(error(
                                &blame,
                                "a PEM keystore has no store password (ssl.keystore.password); \
                                 an encrypted key takes ssl.key.password",
                            ));
                        }
                        let text = String::from_utf8_lossy(&bytes);
                        let entry = pem_key_entry(&blame, &text, &text, self.key_password.as_ref())
                            .map_err(|e| {
                                if e.key == "chain" {
                                    error(&blame, e.reason)
                                } else {
                                    e
                                }
                            })?;
                        vec![entry]
                    }
                    store => {
                        let Some(password) = &self.password else {
                            return Err(error(
                                "ssl.keystore.password",
                                format!("{blame} is a {} store: set its password", store.name()),
                            ));
                        };
                        let key_password = self.key_password.as_ref().unwrap_or(password);
                        let keys = if store == StoreType::Jks {
                            jks_key_entries(&bytes, password, key_password)
                        } else {
                            pkcs12_key_entries(&bytes, password, key_password)
                        };
                        keys.map_err(|e| error(&blame, e))?
                    }
                };
                (blame, entries)
            }
        };
        if entries.is_empty() {
            return Err(error(
                &blame,
                "holds no private key entry (a truststore given as the keystore?)",
            ));
        }
        Ok(Keystore { blame, entries })
    }
}

impl TruststoreSpec {
    /// The truststore file, when it is one (not inline PEM).
    pub fn file(&self) -> Option<&std::path::Path> {
        match &self.source {
            TrustSource::File(path) => Some(path),
            TrustSource::Inline(_) => None,
        }
    }

    /// Reads the truststore's trusted certificates: at least one, or an error.
    pub fn load(&self) -> Result<Vec<CertificateDer<'static>>, StoreError> {
        let (blame, certs) = match &self.source {
            TrustSource::Inline(pem) => {
                let blame = "ssl.truststore.certificates".to_string();
                let certs = pem_certificates(pem).map_err(|e| error(&blame, e))?;
                (blame, certs)
            }
            TrustSource::File(path) => {
                let (blame, bytes) = read_file("ssl.truststore.location", path)?;
                let found =
                    check_format(&blame, "ssl.truststore.type", self.declared, detect(&bytes))?;
                let password = self.password.as_ref().map(Password::expose);
                let certs = match found {
                    StoreType::Pem if password.is_some() => {
                        return Err(error(&blame, "a PEM truststore has no password"))
                    }
                    StoreType::Pem => pem_certificates(&String::from_utf8_lossy(&bytes)),
                    StoreType::Jks => jks_trusted(&bytes, password),
                    StoreType::Pkcs12 => pkcs12_trusted(&bytes, password),
                }
                .map_err(|e| error(&blame, e))?;
                (blame, certs)
            }
        };
        if certs.is_empty() {
            let hint = match (&self.source, &self.password) {
                (TrustSource::File(_), None) => {
                    " readable without a password: set ssl.truststore.password"
                }
                _ => {
                    " (a PKCS12 store needs Java's trusted-certificate entries, as `keytool \
                     -importcert` makes them)"
                }
            };
            return Err(error(&blame, format!("holds no trusted certificate{hint}")));
        }
        Ok(certs)
    }
}

/// A PEM key entry as Kafka's PemStore reads it: exactly one private key (PKCS#8; PKCS#1 and
/// SEC1 too), encrypted PKCS#8 when `key_password` is set, and at least one certificate.
/// Errors about the chain carry the key `chain`, for the caller to name.
fn pem_key_entry(
    blame: &str,
    key_text: &str,
    chain_text: &str,
    key_password: Option<&Password>,
) -> Result<KeyEntry, StoreError> {
    let key_blocks: Vec<&str> = pem_blocks(key_text)
        .filter(|(label, _)| label.ends_with("PRIVATE KEY"))
        .map(|(_, block)| block)
        .collect();
    let block = match key_blocks.as_slice() {
        [] => return Err(error(blame, "no PEM private key found")),
        [one] => *one,
        more => {
            return Err(error(
                blame,
                format!("expected one private key, found {}", more.len()),
            ))
        }
    };
    if block.contains("Proc-Type: 4,ENCRYPTED") {
        return Err(error(
            blame,
            "the key is in OpenSSL's legacy encrypted format, which Kafka and gregor do not \
             read: convert it with `openssl pkcs8 -topk8 -v2 aes-256-cbc`",
        ));
    }
    let encrypted = block.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----");
    let key = match (encrypted, key_password) {
        (false, None) => PrivateKeyDer::from_pem_slice(block.as_bytes())
            .map_err(|e| error(blame, format!("no PEM private key found: {e}")))?,
        (true, None) => {
            return Err(error(
                blame,
                "the private key is encrypted: set ssl.key.password",
            ))
        }
        (false, Some(_)) => {
            return Err(error(
                blame,
                "ssl.key.password is set, but the private key is not encrypted",
            ))
        }
        (true, Some(password)) => {
            let (_, der) = pkcs8::der::pem::decode_vec(block.as_bytes())
                .map_err(|e| error(blame, format!("a damaged encrypted key: {e}")))?;
            let plain = decrypt_pkcs8(&der, password.expose()).map_err(|e| error(blame, e))?;
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(plain))
        }
    };
    let chain = pem_certificates(chain_text).map_err(|e| error("chain", e))?;
    if chain.is_empty() {
        return Err(error("chain", "no PEM certificate found"));
    }
    Ok(KeyEntry {
        alias: "kafka".to_string(),
        key,
        chain,
    })
}

/// The PEM blocks of `text`, as (label, the block from BEGIN to END inclusive).
fn pem_blocks(text: &str) -> impl Iterator<Item = (&str, &str)> {
    let mut rest = text;
    std::iter::from_fn(move || loop {
        let start = rest.find("-----BEGIN ")?;
        let after = &rest[start + 11..];
        let label_end = after.find("-----")?;
        let label = &after[..label_end];
        let end_marker = format!("-----END {label}-----");
        let Some(end) = rest[start..].find(&end_marker) else {
            rest = &after[label_end..];
            continue;
        };
        let block_end = start + end + end_marker.len();
        let block = &rest[start..block_end];
        rest = &rest[block_end..];
        return Some((label, block));
    })
}

/// An encrypted PKCS#8 key (RFC 5208 EncryptedPrivateKeyInfo, PBES2: PBKDF2 or scrypt with
/// AES or 3DES) opened with `password`: the PKCS#8 bytes.
fn decrypt_pkcs8(der: &[u8], password: &str) -> Result<Vec<u8>, String> {
    let info = pkcs8::EncryptedPrivateKeyInfoRef::try_from(der).map_err(|e| {
        format!(
            "an encryption gregor cannot read ({e}); re-encrypt the key with `openssl pkcs8 \
             -topk8 -v2 aes-256-cbc`"
        )
    })?;
    let plain = info.decrypt(password.as_bytes()).map_err(|_| {
        "cannot decrypt the private key with ssl.key.password: wrong password".to_string()
    })?;
    Ok(plain.as_bytes().to_vec())
}

/// Every PEM certificate in `text` (none is not an error here).
fn pem_certificates(text: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    CertificateDer::pem_slice_iter(text.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("bad PEM certificate: {e}"))
}

// ---------------------------------------------------------------------------------------------
// JKS: Sun's JavaKeyStore format, read from its documented layout.
//
//   magic FEEDFEED, version (1 or 2), entry count, then per entry:
//     tag (1 = private key, 2 = trusted certificate), alias (Java UTF), creation time (ms)
//     key:     protected key (Sun KeyProtector's EncryptedPrivateKeyInfo), certificate count,
//              certificates
//     trusted: one certificate
//   a certificate: its type (version 2 only, "X.509"), length, DER bytes
//   then SHA-1(password as UTF-16BE ‖ "Mighty Aphrodite" ‖ everything before)
// ---------------------------------------------------------------------------------------------

const JKS_MAGIC: u32 = 0xfeed_feed;
/// The salt of the store's integrity digest, as Sun's JavaKeyStore writes it.
const JKS_WHITENER: &[u8] = b"Mighty Aphrodite";
/// Sun's proprietary key protection algorithm (`1.3.6.1.4.1.42.2.17.1.1`).
const SUN_KEY_PROTECTOR: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.6.1.4.1.42.2.17.1.1");

/// One entry of a JKS store.
#[derive(Debug)]
pub enum JksEntry {
    /// A private key, still protected by its password, and its chain.
    Key {
        alias: String,
        protected: Vec<u8>,
        chain: Vec<CertificateDer<'static>>,
    },
    /// A trusted certificate.
    Trusted {
        alias: String,
        cert: CertificateDer<'static>,
    },
}

/// Why a store could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    /// The password does not fit the store (its integrity check failed).
    WrongPassword,
    /// Not a well-formed store.
    Damaged(String),
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ParseError::WrongPassword => f.write_str(
                "the store's integrity check failed: wrong password (or a damaged file)",
            ),
            ParseError::Damaged(why) => write!(f, "a damaged store: {why}"),
        }
    }
}

/// A bounds-checked reader over the store's bytes.
struct Bytes<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Bytes<'a> {
    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8], ParseError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|end| *end <= self.buf.len())
            .ok_or_else(|| ParseError::Damaged(format!("truncated in {what}")))?;
        let out = &self.buf[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn u16(&mut self, what: &str) -> Result<u16, ParseError> {
        let b = self.take(2, what)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    fn u32(&mut self, what: &str) -> Result<u32, ParseError> {
        let b = self.take(4, what)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    fn utf(&mut self, what: &str) -> Result<String, ParseError> {
        let n = self.u16(what)?;
        Ok(String::from_utf8_lossy(self.take(usize::from(n), what)?).into_owned())
    }

    fn certificate(&mut self, version: u32) -> Result<CertificateDer<'static>, ParseError> {
        if version == 2 {
            let kind = self.utf("a certificate type")?;
            if kind != "X.509" {
                return Err(ParseError::Damaged(format!(
                    "a {kind} certificate (only X.509 is used for TLS)"
                )));
            }
        }
        let n = self.u32("a certificate")?;
        let der = self.take(n as usize, "a certificate")?;
        Ok(CertificateDer::from(der.to_vec()))
    }
}

/// Java's password bytes for JKS: each UTF-16 code unit, big-endian.
fn java_password_bytes(password: &str) -> Vec<u8> {
    password.encode_utf16().flat_map(u16::to_be_bytes).collect()
}

/// Parses a JKS store. With a password the store's integrity digest is checked; without one
/// it is not, as Java loads a store with a null password.
pub fn parse_jks(bytes: &[u8], password: Option<&str>) -> Result<Vec<JksEntry>, ParseError> {
    let mut r = Bytes { buf: bytes, pos: 0 };
    if r.u32("the header")? != JKS_MAGIC {
        return Err(ParseError::Damaged("not a JKS store".into()));
    }
    let version = r.u32("the header")?;
    if version != 1 && version != 2 {
        return Err(ParseError::Damaged(format!(
            "unknown JKS version {version}"
        )));
    }
    let count = r.u32("the header")?;
    let mut entries = Vec::new();
    for _ in 0..count {
        let tag = r.u32("an entry")?;
        let alias = r.utf("an alias")?;
        r.take(8, "an entry's date")?;
        match tag {
            1 => {
                let n = r.u32("a key")?;
                let protected = r.take(n as usize, "a key")?.to_vec();
                let certs = r.u32("a certificate chain")?;
                let mut chain = Vec::new();
                for _ in 0..certs {
                    chain.push(r.certificate(version)?);
                }
                entries.push(JksEntry::Key {
                    alias,
                    protected,
                    chain,
                });
            }
            2 => {
                let cert = r.certificate(version)?;
                entries.push(JksEntry::Trusted { alias, cert });
            }
            other => {
                return Err(ParseError::Damaged(format!(
                    "entry '{alias}' has the unknown tag {other}"
                )))
            }
        }
    }
    let body = r.pos;
    let stored = r.take(20, "the integrity digest")?;
    if let Some(password) = password {
        let mut digest = Sha1::new();
        digest.update(java_password_bytes(password));
        digest.update(JKS_WHITENER);
        digest.update(&bytes[..body]);
        if digest.finalize().as_slice() != stored {
            return Err(ParseError::WrongPassword);
        }
    }
    Ok(entries)
}

/// Opens a key protected by Sun's KeyProtector: the PKCS#8 bytes, or `None` when the password
/// does not fit. The protected bytes are an EncryptedPrivateKeyInfo whose data is
/// salt (20) ‖ key XOR keystream ‖ SHA-1(password ‖ key), the keystream being the chain
/// d1 = SHA-1(password ‖ salt), d2 = SHA-1(password ‖ d1), ...
pub fn jks_recover_key(protected: &[u8], password: &str) -> Result<Option<Vec<u8>>, ParseError> {
    let damaged = |e: pkcs8::der::Error| ParseError::Damaged(format!("a protected key: {e}"));
    let mut reader = SliceReader::new(protected).map_err(damaged)?;
    let (oid, data) = reader
        .sequence(|r| {
            let alg: pkcs8::AlgorithmIdentifierRef<'_> = r.decode()?;
            let data: &OctetStringRef = r.decode()?;
            Ok::<_, pkcs8::der::Error>((alg.oid, data.as_bytes().to_vec()))
        })
        .map_err(damaged)?;
    if oid != SUN_KEY_PROTECTOR {
        return Err(ParseError::Damaged(format!(
            "a key protected with {oid}, not Sun's JKS key protector"
        )));
    }
    if data.len() < 40 {
        return Err(ParseError::Damaged("a protected key too short".into()));
    }
    let (salt, rest) = data.split_at(20);
    let (encrypted, check) = rest.split_at(rest.len() - 20);
    let password = java_password_bytes(password);
    let mut plain = Vec::with_capacity(encrypted.len());
    let mut digest: Vec<u8> = salt.to_vec();
    for chunk in encrypted.chunks(20) {
        digest = Sha1::new()
            .chain_update(&password)
            .chain_update(&digest)
            .finalize()
            .to_vec();
        plain.extend(chunk.iter().zip(&digest).map(|(c, k)| c ^ k));
    }
    let expected = Sha1::new()
        .chain_update(&password)
        .chain_update(&plain)
        .finalize();
    if expected.as_slice() != check {
        return Ok(None);
    }
    Ok(Some(plain))
}

fn pkcs8_key(plain: Vec<u8>, alias: &str) -> Result<PrivateKeyDer<'static>, String> {
    pkcs8::PrivateKeyInfoRef::from_der(&plain)
        .map_err(|e| format!("entry '{alias}': the key is not PKCS#8: {e}"))?;
    Ok(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(plain)))
}

fn wrong_key_password(alias: &str) -> String {
    format!(
        "cannot recover the key of entry '{alias}' with ssl.key.password (or \
         ssl.keystore.password when ssl.key.password is unset): wrong password"
    )
}

fn jks_key_entries(
    bytes: &[u8],
    password: &Password,
    key_password: &Password,
) -> Result<Vec<KeyEntry>, String> {
    let entries = parse_jks(bytes, Some(password.expose())).map_err(|e| match e {
        ParseError::WrongPassword => format!("{e}: check ssl.keystore.password"),
        e => e.to_string(),
    })?;
    let mut out = Vec::new();
    for entry in entries {
        let JksEntry::Key {
            alias,
            protected,
            chain,
        } = entry
        else {
            continue;
        };
        let plain = jks_recover_key(&protected, key_password.expose())
            .map_err(|e| format!("entry '{alias}': {e}"))?
            .ok_or_else(|| wrong_key_password(&alias))?;
        let key = pkcs8_key(plain, &alias)?;
        // Java's key manager skips a key entry without a certificate.
        if chain.is_empty() {
            continue;
        }
        out.push(KeyEntry { alias, key, chain });
    }
    Ok(out)
}

fn jks_trusted(
    bytes: &[u8],
    password: Option<&str>,
) -> Result<Vec<CertificateDer<'static>>, String> {
    let entries = parse_jks(bytes, password).map_err(|e| match e {
        ParseError::WrongPassword => format!("{e}: check ssl.truststore.password"),
        e => e.to_string(),
    })?;
    Ok(entries
        .into_iter()
        .filter_map(|e| match e {
            JksEntry::Trusted { cert, .. } => Some(cert),
            JksEntry::Key { chain, .. } => chain.into_iter().next(),
        })
        .collect())
}

// ---------------------------------------------------------------------------------------------
// PKCS12, through p12-keystore (PBES2 with AES, and the legacy 3DES and RC2-40 that older Java
// and `openssl pkcs12 -legacy` write; MACs with SHA-1 and SHA-2).
// ---------------------------------------------------------------------------------------------

/// A PKCS12 store's key entries and trusted certificates, opened with `password`.
#[derive(Debug, Default)]
pub struct Pkcs12Contents {
    pub keys: Vec<KeyEntry>,
    pub trusted: Vec<CertificateDer<'static>>,
}

fn pkcs12_error(e: p12_keystore::error::Error) -> ParseError {
    use p12_keystore::error::Error as E;
    match e {
        E::MacError(_) | E::UnpadError | E::Pkcs5Error(_) | E::InvalidPrivateKey => {
            ParseError::WrongPassword
        }
        E::UnsupportedEncryptionScheme | E::UnsupportedMacAlgorithm => ParseError::Damaged(
            "an encryption or MAC algorithm gregor cannot read; re-export the store with \
             `keytool -importkeystore -deststoretype PKCS12` (AES)"
                .into(),
        ),
        E::InvalidParameters => ParseError::Damaged(
            "unsupported parameters (an iteration count above 1,000,000?)".into(),
        ),
        e => ParseError::Damaged(e.to_string()),
    }
}

/// Parses a PKCS12 store with its password: its MAC is checked and every bag decrypted. Keys
/// are linked to their certificates by local key id, and their chains built by issuer, as
/// Java's PKCS12KeyStore does.
pub fn parse_pkcs12(bytes: &[u8], password: &str) -> Result<Pkcs12Contents, ParseError> {
    let archive =
        p12_keystore::Pkcs12Archive::from_pkcs12(bytes, password).map_err(pkcs12_error)?;
    let mut out = Pkcs12Contents::default();
    for (i, key) in archive.keys.iter().enumerate() {
        let alias = key
            .friendly_name
            .clone()
            .unwrap_or_else(|| format!("#{}", i + 1));
        let Some(id) = &key.local_key_id else {
            continue;
        };
        let Some(leaf) = archive
            .certs
            .iter()
            .find(|c| c.local_key_id.as_deref() == Some(id.as_ref()))
        else {
            continue;
        };
        let mut chain = vec![&leaf.cert];
        while chain.len() < 16 {
            let last = chain[chain.len() - 1];
            if last.issuer() == last.subject() {
                break;
            }
            let Some(next) = archive
                .certs
                .iter()
                .map(|c| &c.cert)
                .find(|c| c.subject() == last.issuer() && !chain.contains(c))
            else {
                break;
            };
            chain.push(next);
        }
        out.keys.push(KeyEntry {
            alias,
            key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.key.as_der().to_vec())),
            chain: chain
                .iter()
                .map(|c| CertificateDer::from(c.as_der().to_vec()))
                .collect(),
        });
    }
    out.trusted = archive
        .certs
        .iter()
        .filter(|c| c.trusted && c.local_key_id.is_none())
        .map(|c| CertificateDer::from(c.cert.as_der().to_vec()))
        .collect();
    Ok(out)
}

fn pkcs12_key_entries(
    bytes: &[u8],
    password: &Password,
    key_password: &Password,
) -> Result<Vec<KeyEntry>, String> {
    let contents = parse_pkcs12(bytes, password.expose()).map_err(|e| match e {
        ParseError::WrongPassword => format!("{e}: check ssl.keystore.password"),
        e => e.to_string(),
    })?;
    if key_password != password {
        // One password opens a PKCS12 store made by keytool (which ignores -keypass for
        // PKCS12) or openssl; Java would fail to recover the keys with another one.
        if let Some(entry) = contents.keys.first() {
            return Err(format!(
                "{} (a PKCS12 store's keys take the store's password: leave ssl.key.password \
                 unset or set it to ssl.keystore.password)",
                wrong_key_password(&entry.alias)
            ));
        }
    }
    Ok(contents.keys)
}

/// Object identifiers of the PKCS12 bags read without a password.
const ID_DATA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.7.1");
const CERT_BAG: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.12.10.1.3");
const X509_CERTIFICATE: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.22.1");
const LOCAL_KEY_ID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.9.21");
/// Java's trusted-certificate attribute (`trustedKeyUsage`).
const ORACLE_TRUSTED_KEY_USAGE: ObjectIdentifier =
    ObjectIdentifier::new_unwrap("2.16.840.1.113894.746875.1.1");

/// The trusted certificates a PKCS12 store holds outside its encrypted parts, as Java reads a
/// store with a null password: no MAC check, encrypted bags skipped.
fn pkcs12_unencrypted_trusted(bytes: &[u8]) -> Result<Vec<CertificateDer<'static>>, ParseError> {
    let damaged = |e: pkcs8::der::Error| ParseError::Damaged(e.to_string());
    let pfx = pkcs12::Pfx::from_der(bytes).map_err(damaged)?;
    if pfx.auth_safe.content_type != ID_DATA {
        return Err(ParseError::Damaged("a public-key protected store".into()));
    }
    let octets = |any: &pkcs8::der::Any| -> Result<Vec<u8>, ParseError> {
        let der = any.to_der().map_err(damaged)?;
        Ok(OctetString::from_der(&der)
            .map_err(damaged)?
            .as_bytes()
            .to_vec())
    };
    let safes =
        pkcs12::AuthenticatedSafe::from_der(&octets(&pfx.auth_safe.content)?).map_err(damaged)?;
    let mut trusted = Vec::new();
    for safe in safes.iter().filter(|s| s.content_type == ID_DATA) {
        let bags =
            pkcs12::safe_bag::SafeContents::from_der(&octets(&safe.content)?).map_err(damaged)?;
        for bag in bags.iter().filter(|b| b.bag_id == CERT_BAG) {
            let has = |oid: ObjectIdentifier| {
                bag.bag_attributes
                    .as_ref()
                    .is_some_and(|attrs| attrs.iter().any(|a| a.oid == oid))
            };
            if !has(ORACLE_TRUSTED_KEY_USAGE) || has(LOCAL_KEY_ID) {
                continue;
            }
            let cert = ContextSpecific::<pkcs12::CertBag>::from_der(&bag.bag_value)
                .map_err(damaged)?
                .value;
            if cert.cert_id == X509_CERTIFICATE {
                trusted.push(CertificateDer::from(cert.cert_value.as_bytes().to_vec()));
            }
        }
    }
    Ok(trusted)
}

fn pkcs12_trusted(
    bytes: &[u8],
    password: Option<&str>,
) -> Result<Vec<CertificateDer<'static>>, String> {
    let Some(password) = password else {
        return pkcs12_unencrypted_trusted(bytes).map_err(|e| e.to_string());
    };
    let contents = parse_pkcs12(bytes, password).map_err(|e| match e {
        ParseError::WrongPassword => format!("{e}: check ssl.truststore.password"),
        e => e.to_string(),
    })?;
    let mut certs = contents.trusted;
    certs.extend(
        contents
            .keys
            .into_iter()
            .filter_map(|k| k.chain.into_iter().next()),
    );
    Ok(certs)
}

// ---------------------------------------------------------------------------------------------
// The keys as rustls serves them.
// ---------------------------------------------------------------------------------------------

impl Keystore {
    /// The entries as rustls keys, each checked against its certificate.
    pub fn certified_keys(&self, provider: &CryptoProvider) -> Result<StoreKeys, StoreError> {
        let mut keys = Vec::with_capacity(self.entries.len());
        for entry in &self.entries {
            let der = match (&entry.key, entry.chain.first()) {
                (PrivateKeyDer::Pkcs8(k), Some(leaf)) => {
                    PrivateKeyDer::Pkcs8(ec_key_with_public_key(k.secret_pkcs8_der(), leaf))
                }
                (k, _) => k.clone_key(),
            };
            let key = CertifiedKey::from_der(entry.chain.clone(), der, provider).map_err(|e| {
                error(
                    &self.blame,
                    format!(
                        "entry '{}': the key does not fit the certificate, or is of a kind \
                             gregor cannot use: {e}",
                        entry.alias
                    ),
                )
            })?;
            keys.push((entry.alias.clone(), Arc::new(key)));
        }
        Ok(StoreKeys { keys })
    }
}

/// DER: `tag`, the length, `content`.
fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(content);
    out
}

/// Java writes an EC key's PKCS#8 without the public key (RFC 5915's optional `publicKey`),
/// which ring needs: this one with the public key of its certificate put in. Any other key,
/// or anything that does not parse, comes back as it was (and ring then checks the pair).
fn ec_key_with_public_key(pkcs8: &[u8], leaf: &CertificateDer<'_>) -> PrivatePkcs8KeyDer<'static> {
    const EC_PUBLIC_KEY: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.2.1");
    let completed = || -> Option<Vec<u8>> {
        let info = pkcs8::PrivateKeyInfoRef::from_der(pkcs8).ok()?;
        if info.algorithm.oid != EC_PUBLIC_KEY {
            return None;
        }
        let mut r = SliceReader::new(info.private_key.as_bytes()).ok()?;
        let (version, secret, params, has_public) = r
            .sequence(|r| {
                let version: u8 = r.decode()?;
                let secret: &OctetStringRef = r.decode()?;
                let (mut params, mut has_public) = (None, false);
                while !r.is_finished() {
                    let field = r.decode::<pkcs8::der::asn1::AnyRef<'_>>()?.to_der()?;
                    match field.first() {
                        Some(0xa0) => params = Some(field),
                        Some(0xa1) => has_public = true,
                        _ => {}
                    }
                }
                Ok::<_, pkcs8::der::Error>((
                    version,
                    secret.as_bytes().to_vec(),
                    params,
                    has_public,
                ))
            })
            .ok()?;
        if has_public {
            return None;
        }
        let cert = rustls::server::ParsedCertificate::try_from(leaf).ok()?;
        let spki = cert.subject_public_key_info();
        let spki = pkcs8::SubjectPublicKeyInfoRef::from_der(spki.as_ref()).ok()?;
        let point = spki.subject_public_key.raw_bytes();
        let mut bit_string = vec![0u8];
        bit_string.extend_from_slice(point);
        let mut ec = tlv(0x02, &[version]);
        ec.extend(tlv(0x04, &secret));
        ec.extend(params.unwrap_or_default());
        ec.extend(tlv(0xa1, &tlv(0x03, &bit_string)));
        let mut body = tlv(0x02, &[0]);
        body.extend(info.algorithm.to_der().ok()?);
        body.extend(tlv(0x04, &tlv(0x30, &ec)));
        Some(tlv(0x30, &body))
    };
    PrivatePkcs8KeyDer::from(completed().unwrap_or_else(|| pkcs8.to_vec()))
}

/// A keystore's keys for rustls: each handshake gets the first, in store order, whose key can
/// sign with a scheme the peer offers.
pub struct StoreKeys {
    keys: Vec<(String, Arc<CertifiedKey>)>,
}

impl StoreKeys {
    /// The aliases, in the order they are tried.
    pub fn aliases(&self) -> Vec<&str> {
        self.keys.iter().map(|(a, _)| a.as_str()).collect()
    }

    fn choose(&self, offered: &[SignatureScheme]) -> Option<Arc<CertifiedKey>> {
        self.keys
            .iter()
            .find(|(_, k)| k.key.choose_scheme(offered).is_some())
            .map(|(_, k)| Arc::clone(k))
    }
}

impl fmt::Debug for StoreKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoreKeys")
            .field("aliases", &self.aliases())
            .finish()
    }
}

impl rustls::server::ResolvesServerCert for StoreKeys {
    fn resolve(&self, hello: rustls::server::ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.choose(hello.signature_schemes())
    }
}

impl rustls::client::ResolvesClientCert for StoreKeys {
    fn resolve(
        &self,
        _root_hint_subjects: &[&[u8]],
        sigschemes: &[SignatureScheme],
    ) -> Option<Arc<CertifiedKey>> {
        self.choose(sigschemes)
    }

    fn has_certs(&self) -> bool {
        !self.keys.is_empty()
    }
}

#[cfg(test)]
mod tests {
    //! The fixtures under `testdata/keystores` were made by Java 17's keytool and OpenSSL
    //! (`scripts/make-keystore-fixtures` remakes them and lists what each holds).

    use super::*;

    fn fixture(name: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("testdata/keystores")
            .join(name)
    }

    fn bytes(name: &str) -> Vec<u8> {
        std::fs::read(fixture(name)).expect("fixture")
    }

    fn props<'a>(pairs: &'a [(&'a str, String)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |k: &str| {
            pairs
                .iter()
                .find(|(key, _)| *key == k)
                .map(|(_, v)| v.clone())
        }
    }

    fn keystore(pairs: &[(&str, String)]) -> Result<Keystore, StoreError> {
        keystore_spec(&props(pairs))?
            .expect("a keystore is configured")
            .load()
    }

    fn truststore(pairs: &[(&str, String)]) -> Result<Vec<CertificateDer<'static>>, StoreError> {
        truststore_spec(&props(pairs))?
            .expect("a truststore is configured")
            .load()
    }

    fn at(name: &str) -> String {
        fixture(name).display().to_string()
    }

    fn s(v: &str) -> String {
        v.to_string()
    }

    /// The CA certificate every fixture chains to.
    fn ca() -> CertificateDer<'static> {
        pem_certificates(&String::from_utf8(bytes("ca.pem")).expect("utf8"))
            .expect("ca")
            .remove(0)
    }

    fn provider() -> CryptoProvider {
        rustls::crypto::ring::default_provider()
    }

    #[test]
    fn a_jks_keystore_opens_with_its_key_password() {
        let ks = keystore(&[
            ("ssl.keystore.type", s("JKS")),
            ("ssl.keystore.location", at("server.jks")),
            ("ssl.keystore.password", s("storepass")),
            ("ssl.key.password", s("keypass")),
        ])
        .expect("keystore");
        assert_eq!(ks.entries.len(), 1, "the trusted entry is not a key");
        let entry = &ks.entries[0];
        assert_eq!(entry.alias, "server");
        assert_eq!(entry.chain.len(), 2, "server, then the CA");
        assert_eq!(entry.chain[1], ca());
        ks.certified_keys(&provider()).expect("the key fits");
    }

    #[test]
    fn wrong_jks_passwords_are_named() {
        let e = keystore(&[
            ("ssl.keystore.location", at("server.jks")),
            ("ssl.keystore.password", s("nope")),
            ("ssl.key.password", s("keypass")),
        ])
        .expect_err("wrong store password");
        assert!(e.key.ends_with("server.jks"), "{e}");
        assert!(e.reason.contains("ssl.keystore.password"), "{e}");
        // ssl.key.password unset: the store's password is tried on the key, as Kafka does.
        let e = keystore(&[
            ("ssl.keystore.location", at("server.jks")),
            ("ssl.keystore.password", s("storepass")),
        ])
        .expect_err("the key has its own password");
        assert!(e.reason.contains("entry 'server'"), "{e}");
        assert!(e.reason.contains("ssl.key.password"), "{e}");
        assert!(
            !e.to_string().contains("storepass"),
            "no secret in errors: {e}"
        );
        let e = keystore(&[
            ("ssl.keystore.location", at("server.jks")),
            ("ssl.keystore.password", s("storepass")),
            ("ssl.key.password", s("wrong")),
        ])
        .expect_err("wrong key password");
        assert!(e.reason.contains("wrong password"), "{e}");
        // The store's password may be missing only for a truststore.
        let e = keystore(&[("ssl.keystore.location", at("server.jks"))]).expect_err("no password");
        assert_eq!(e.key, "ssl.keystore.password", "{e}");
        let e = keystore_spec(&props(&[
            ("ssl.keystore.type", s("PKCS12")),
            ("ssl.keystore.location", at("server-aes.p12")),
        ]))
        .expect_err("refused before reading");
        assert_eq!(e.key, "ssl.keystore.password");
    }

    #[test]
    fn pkcs12_keystores_with_modern_and_legacy_encryption_open() {
        for (file, what) in [
            ("server-aes.p12", "keytool, PBES2 AES-256 and HMAC-SHA256"),
            (
                "server-legacy.p12",
                "keytool legacy, RC2-40 and 3DES, HMAC-SHA1",
            ),
            ("server-openssl.p12", "openssl, AES"),
            ("server-openssl-3des.p12", "openssl, 3DES and HMAC-SHA1"),
        ] {
            for declared in ["PKCS12", "JKS"] {
                // Java's keystore.type.compat: a JKS type reads PKCS12 files too.
                let ks = keystore(&[
                    ("ssl.keystore.type", s(declared)),
                    ("ssl.keystore.location", at(file)),
                    ("ssl.keystore.password", s("storepass")),
                ])
                .unwrap_or_else(|e| panic!("{what}: {e}"));
                assert_eq!(ks.entries.len(), 1, "{what}");
                assert_eq!(ks.entries[0].chain.len(), 2, "{what}: server, then the CA");
                assert_eq!(ks.entries[0].chain[1], ca(), "{what}");
                ks.certified_keys(&provider())
                    .unwrap_or_else(|e| panic!("{what}: {e}"));
            }
            let e = keystore(&[
                ("ssl.keystore.location", at(file)),
                ("ssl.keystore.password", s("wrong")),
            ])
            .expect_err("wrong password");
            assert!(e.reason.contains("wrong password"), "{what}: {e}");
        }
        // PKCS12 keys take the store's password; another ssl.key.password fails, as on Kafka.
        let e = keystore(&[
            ("ssl.keystore.location", at("server-aes.p12")),
            ("ssl.keystore.password", s("storepass")),
            ("ssl.key.password", s("keypass")),
        ])
        .expect_err("a PKCS12 key has the store's password");
        assert!(e.reason.contains("entry 'server'"), "{e}");
        let ks = keystore(&[
            ("ssl.keystore.location", at("server-aes.p12")),
            ("ssl.keystore.password", s("storepass")),
            ("ssl.key.password", s("storepass")),
        ])
        .expect("the same password twice is fine");
        assert_eq!(ks.entries[0].alias, "server");
    }

    #[test]
    fn truststores_and_their_optional_password() {
        for (file, password) in [
            ("truststore.jks", Some("trustpass")),
            ("truststore.jks", None),
            ("truststore.p12", Some("trustpass")),
            ("truststore-plain.p12", None),
            ("truststore-plain.p12", Some("trustpass")),
            ("ca.pem", None),
        ] {
            let mut pairs = vec![("ssl.truststore.location", at(file))];
            if let Some(p) = password {
                pairs.push(("ssl.truststore.password", s(p)));
            }
            let certs = truststore(&pairs).unwrap_or_else(|e| panic!("{file} {password:?}: {e}"));
            assert_eq!(certs, vec![ca()], "{file} {password:?}");
        }
        // A keystore read as a truststore: its trusted entry and its key entry's certificate.
        let certs = truststore(&[
            ("ssl.truststore.location", at("server.jks")),
            ("ssl.truststore.password", s("storepass")),
        ])
        .expect("truststore");
        assert_eq!(certs.len(), 2);
        assert!(certs.contains(&ca()));
        // keytool's PKCS12 encrypts certificates: without the password nothing is readable.
        let e = truststore(&[("ssl.truststore.location", at("truststore.p12"))])
            .expect_err("nothing readable");
        assert!(e.reason.contains("set ssl.truststore.password"), "{e}");
        // openssl's certificates lack Java's trusted attribute: Java trusts none of them.
        let e = truststore(&[
            ("ssl.truststore.location", at("truststore-openssl.p12")),
            ("ssl.truststore.password", s("trustpass")),
        ])
        .expect_err("no trusted entry");
        assert!(e.reason.contains("keytool"), "{e}");
        for (file, what) in [("truststore.jks", "JKS"), ("truststore.p12", "PKCS12")] {
            let e = truststore(&[
                ("ssl.truststore.location", at(file)),
                ("ssl.truststore.password", s("wrong")),
            ])
            .expect_err("wrong password");
            assert!(e.reason.contains("ssl.truststore.password"), "{what}: {e}");
        }
        let e = truststore_spec(&props(&[
            ("ssl.truststore.type", s("PEM")),
            ("ssl.truststore.location", at("ca.pem")),
            ("ssl.truststore.password", s("x")),
        ]))
        .expect_err("PEM has no password");
        assert_eq!(e.key, "ssl.truststore.password");
        let e = truststore_spec(&props(&[("ssl.truststore.password", s("x"))]))
            .expect_err("a password without a store");
        assert_eq!(e.key, "ssl.truststore.password");
    }

    #[test]
    fn encrypted_pem_keys_open_with_ssl_key_password() {
        let chain = String::from_utf8(bytes("server-chain.pem")).expect("utf8");
        for file in ["server-key-aes.pem", "server-key-3des.pem"] {
            let key = String::from_utf8(bytes(file)).expect("utf8");
            let ks = keystore(&[
                ("ssl.keystore.type", s("PEM")),
                ("ssl.keystore.key", key.clone()),
                ("ssl.keystore.certificate.chain", chain.clone()),
                ("ssl.key.password", s("keypass")),
            ])
            .unwrap_or_else(|e| panic!("{file}: {e}"));
            ks.certified_keys(&provider())
                .unwrap_or_else(|e| panic!("{file}: {e}"));
            let e = keystore(&[
                ("ssl.keystore.key", key.clone()),
                ("ssl.keystore.certificate.chain", chain.clone()),
                ("ssl.key.password", s("wrong")),
            ])
            .expect_err("wrong password");
            assert_eq!(e.key, "ssl.keystore.key");
            assert!(e.reason.contains("wrong password"), "{file}: {e}");
            let e = keystore(&[
                ("ssl.keystore.key", key.clone()),
                ("ssl.keystore.certificate.chain", chain.clone()),
            ])
            .expect_err("no password");
            assert!(e.reason.contains("set ssl.key.password"), "{file}: {e}");
            // In one file with the chain.
            let dir = tempfile::tempdir().expect("dir");
            let path = dir.path().join("server.pem");
            std::fs::write(&path, format!("{key}{chain}")).expect("write");
            let ks = keystore(&[
                ("ssl.keystore.type", s("PEM")),
                ("ssl.keystore.location", path.display().to_string()),
                ("ssl.key.password", s("keypass")),
            ])
            .unwrap_or_else(|e| panic!("{file} in a file: {e}"));
            assert_eq!(ks.entries[0].chain.len(), 2);
        }
        let plain = String::from_utf8(bytes("server-key.pem")).expect("utf8");
        let e = keystore(&[
            ("ssl.keystore.key", plain.clone()),
            ("ssl.keystore.certificate.chain", chain.clone()),
            ("ssl.key.password", s("keypass")),
        ])
        .expect_err("a password for a plain key");
        assert!(e.reason.contains("not encrypted"), "{e}");
        let e = keystore(&[
            ("ssl.keystore.key", format!("{plain}{plain}")),
            ("ssl.keystore.certificate.chain", chain.clone()),
        ])
        .expect_err("two keys");
        assert!(e.reason.contains("one private key, found 2"), "{e}");
        let e = keystore(&[
            ("ssl.keystore.key", plain),
            ("ssl.keystore.certificate.chain", s("no certificate here")),
        ])
        .expect_err("no chain");
        assert_eq!(e.key, "ssl.keystore.certificate.chain");
    }

    #[test]
    fn a_type_that_names_another_format_is_refused() {
        let e = keystore(&[
            ("ssl.keystore.type", s("PEM")),
            ("ssl.keystore.location", at("server.jks")),
        ])
        .expect_err("PEM declared, JKS found");
        assert!(e.reason.contains("ssl.keystore.type=JKS"), "{e}");
        let e = truststore(&[
            ("ssl.truststore.type", s("JKS")),
            ("ssl.truststore.location", at("ca.pem")),
        ])
        .expect_err("JKS declared, PEM found");
        assert!(e.reason.contains("ssl.truststore.type=PEM"), "{e}");
        let e = truststore(&[
            ("ssl.truststore.location", at("jceks.jks")),
            ("ssl.truststore.password", s("storepass")),
        ])
        .expect_err("JCEKS");
        assert!(e.reason.contains("JCEKS"), "{e}");
        let e = keystore_spec(&props(&[("ssl.keystore.type", s("BCFKS"))])).expect_err("type");
        assert_eq!(e.key, "ssl.keystore.type");
        let e = keystore_spec(&props(&[
            ("ssl.keystore.type", s("JKS")),
            ("ssl.keystore.key", s("k")),
            ("ssl.keystore.certificate.chain", s("c")),
        ]))
        .expect_err("inline keys are PEM");
        assert_eq!(e.key, "ssl.keystore.key");
        // A store given where the keystore goes, with no key in it.
        let e = keystore(&[
            ("ssl.keystore.location", at("truststore.jks")),
            ("ssl.keystore.password", s("trustpass")),
        ])
        .expect_err("no key entry");
        assert!(e.reason.contains("no private key entry"), "{e}");
        // The PEM file with no type: read as PEM, as gregor always did.
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("server.pem");
        let pem = format!(
            "{}{}",
            String::from_utf8(bytes("server-key.pem")).expect("utf8"),
            String::from_utf8(bytes("server-chain.pem")).expect("utf8")
        );
        std::fs::write(&path, pem).expect("write");
        keystore(&[("ssl.keystore.location", path.display().to_string())])
            .expect("an untyped PEM keystore");
    }

    #[test]
    fn several_key_entries_are_all_opened_and_chosen_by_the_peer_s_schemes() {
        let ks = keystore(&[
            ("ssl.keystore.location", at("two-keys.jks")),
            ("ssl.keystore.password", s("storepass")),
        ])
        .expect("keystore");
        let keys = ks.certified_keys(&provider()).expect("keys");
        assert_eq!(keys.aliases(), ["ec", "rsa"], "store order");
        let ecdsa = keys
            .choose(&[SignatureScheme::ECDSA_NISTP256_SHA256])
            .expect("the EC key");
        let rsa = keys
            .choose(&[SignatureScheme::RSA_PSS_SHA256])
            .expect("the RSA key");
        assert_ne!(ecdsa.cert[0], rsa.cert[0]);
        assert_eq!(
            keys.choose(&[
                SignatureScheme::RSA_PSS_SHA256,
                SignatureScheme::ECDSA_NISTP256_SHA256
            ])
            .map(|k| k.cert[0].clone()),
            Some(ecdsa.cert[0].clone()),
            "the first in store order that fits"
        );
        assert!(keys.choose(&[SignatureScheme::ED448]).is_none());
        assert!(!format!("{keys:?}").contains("PRIVATE"));
    }

    /// Damaged stores: every truncation and a byte flipped at every offset of a JKS store, and
    /// truncations of a PKCS12 one, end in an error, never a panic.
    #[test]
    fn damaged_stores_are_errors_not_panics() {
        let jks = bytes("server.jks");
        for n in 0..jks.len() {
            assert!(
                parse_jks(&jks[..n], Some("storepass")).is_err(),
                "cut at {n}"
            );
        }
        for i in 0..jks.len() {
            let mut copy = jks.clone();
            copy[i] ^= 0x41;
            // Without a password the digest is not checked: parsing or key recovery fails,
            // or the flip fell inside a certificate.
            if let Ok(entries) = parse_jks(&copy, None) {
                for e in entries {
                    if let JksEntry::Key { protected, .. } = e {
                        let _ = jks_recover_key(&protected, "keypass");
                    }
                }
            }
            assert!(parse_jks(&copy, Some("storepass")).is_err(), "flip at {i}");
        }
        let p12 = bytes("server-aes.p12");
        for n in (0..p12.len()).step_by(7) {
            assert!(parse_pkcs12(&p12[..n], "storepass").is_err(), "cut at {n}");
            assert!(pkcs12_unencrypted_trusted(&p12[..n]).is_err(), "cut at {n}");
        }
        assert!(
            jks_recover_key(&[0x30, 0x03, 0x02, 0x01, 0x00], "x").is_err(),
            "a non-key is refused"
        );
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("cut.jks");
        std::fs::write(&path, &jks[..jks.len() / 2]).expect("write");
        let e = keystore(&[
            ("ssl.keystore.location", path.display().to_string()),
            ("ssl.keystore.password", s("storepass")),
        ])
        .expect_err("damaged");
        assert!(e.key.ends_with("cut.jks"), "{e}");
        assert!(e.reason.contains("damaged"), "{e}");
        let missing = dir.path().join("missing.jks");
        let e = keystore(&[
            ("ssl.keystore.location", missing.display().to_string()),
            ("ssl.keystore.password", s("storepass")),
        ])
        .expect_err("missing");
        assert!(e.key.ends_with("missing.jks"), "{e}");
    }

    proptest::proptest! {
        /// Arbitrary bytes, and a real store with arbitrary bytes written over part of it, never
        /// make a parser panic.
        #[test]
        fn parsers_never_panic(
            noise in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512),
            at in 0usize..4096,
        ) {
            let mut jks = bytes("server.jks");
            let at = at % jks.len();
            let end = (at + noise.len()).min(jks.len());
            jks[at..end].copy_from_slice(&noise[..end - at]);
            if let Ok(entries) = parse_jks(&jks, None) {
                for e in entries {
                    if let JksEntry::Key { protected, .. } = e {
                        let _ = jks_recover_key(&protected, "keypass");
                    }
                }
            }
            let mut headed = JKS_MAGIC.to_be_bytes().to_vec();
            headed.extend_from_slice(&noise);
            let _ = parse_jks(&headed, Some("storepass"));
            let _ = jks_recover_key(&noise, "keypass");
            let mut p12 = bytes("truststore-plain.p12");
            let at = at % p12.len();
            let end = (at + noise.len()).min(p12.len());
            p12[at..end].copy_from_slice(&noise[..end - at]);
            let _ = pkcs12_unencrypted_trusted(&p12);
            let _ = parse_pkcs12(&p12, "trustpass");
            let _ = pkcs12_unencrypted_trusted(&noise);
            let _ = decrypt_pkcs8(&noise, "keypass");
            let _ = pem_blocks(&String::from_utf8_lossy(&noise)).count();
        }
    }

    #[test]
    fn passwords_never_show_in_debug_output() {
        let spec = keystore_spec(&props(&[
            ("ssl.keystore.location", at("server.jks")),
            ("ssl.keystore.password", s("storepass")),
            ("ssl.key.password", s("keypass")),
        ]))
        .expect("spec")
        .expect("keystore");
        let shown = format!("{spec:?}");
        assert!(
            !shown.contains("storepass") && !shown.contains("keypass"),
            "{shown}"
        );
        let ks = spec.load().expect("load");
        assert!(!format!("{ks:?}").contains("BEGIN"));
    }
}
