//! [`Pki`]: the certificates of one TLS test, made with rcgen in a temporary directory, and
//! the `--set` entries that make a broker serve them (Kafka's `ssl.*` keys with PEM files).
//!
//! ```text
//!   CA "gregor e2e CA" ──signs──▶ server: 127.0.0.1 (IP SAN), localhost   (server.pem)
//!                      └─signs──▶ client certificate                     (client.pem/.key)
//!   CA "gregor e2e rogue CA" ──▶ client certificate nobody trusts        (rogue.pem/.key)
//! ```

use std::path::PathBuf;

use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use tempfile::TempDir;

/// A certificate authority: its certificate and the key it signs with.
struct Ca {
    cert: Certificate,
    key: KeyPair,
}

impl Ca {
    fn new(name: &str) -> Ca {
        let key = KeyPair::generate().expect("generate a CA key");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA parameters");
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params.self_signed(&key).expect("self-sign the CA");
        Ca { cert, key }
    }

    /// A leaf certificate for `sans` (IP addresses or DNS names) and its new key.
    fn issue(
        &self,
        name: &str,
        sans: &[&str],
        usages: &[ExtendedKeyUsagePurpose],
    ) -> (Certificate, KeyPair) {
        let key = KeyPair::generate().expect("generate a key");
        let sans: Vec<String> = sans.iter().map(|s| s.to_string()).collect();
        let mut params = CertificateParams::new(sans).expect("certificate parameters");
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = usages.to_vec();
        let cert = params
            .signed_by(&key, &self.cert, &self.key)
            .expect("sign the certificate");
        (cert, key)
    }
}

/// The PEM files of one test, in a temporary directory removed at the end:
///
/// | file                  | what                                                       |
/// |-----------------------|------------------------------------------------------------|
/// | `ca.pem`              | the CA clients and the broker trust                        |
/// | `server.pem`          | the broker's PKCS#8 key, its certificate, then the CA's    |
/// | `client.pem` / `.key` | a client certificate signed by the CA, and its key         |
/// | `rogue.pem` / `.key`  | a client certificate signed by another CA nobody trusts    |
pub struct Pki {
    /// Holds the files; removed when the test drops the `Pki`.
    dir: TempDir,
}

impl Pki {
    /// Makes both CAs and the three certificates, and writes the files.
    pub fn generate() -> Pki {
        let dir = tempfile::Builder::new()
            .prefix("gregor-e2e-pki-")
            .tempdir()
            .expect("create a temporary dir for the certificates");
        let ca = Ca::new("gregor e2e CA");
        let (server, server_key) = ca.issue(
            "gregor e2e broker",
            &["127.0.0.1", "localhost"],
            // A broker is also its peers' client (inter.broker.listener.name=SSL with
            // ssl.client.auth=required): both usages, as Kafka's docs ask of broker certificates.
            &[
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ],
        );
        let (client, client_key) = ca.issue(
            "gregor e2e client",
            &[],
            &[ExtendedKeyUsagePurpose::ClientAuth],
        );
        let rogue_ca = Ca::new("gregor e2e rogue CA");
        let (rogue, rogue_key) = rogue_ca.issue(
            "gregor e2e rogue client",
            &[],
            &[ExtendedKeyUsagePurpose::ClientAuth],
        );
        let write = |name: &str, pem: String| {
            std::fs::write(dir.path().join(name), pem).unwrap_or_else(|e| panic!("{name}: {e}"));
        };
        write("ca.pem", ca.cert.pem());
        write(
            "server.pem",
            format!(
                "{}{}{}",
                server_key.serialize_pem(),
                server.pem(),
                ca.cert.pem()
            ),
        );
        write("client.pem", client.pem());
        write("client.key", client_key.serialize_pem());
        write("rogue.pem", rogue.pem());
        write("rogue.key", rogue_key.serialize_pem());
        Pki { dir }
    }

    /// The path of one of the files above.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The `--set` entries that make the broker's TLS listeners serve `server.pem`.
    pub fn keystore_config(&self) -> Vec<String> {
        vec![
            "ssl.keystore.type=PEM".to_string(),
            format!(
                "ssl.keystore.location={}",
                self.path("server.pem").display()
            ),
        ]
    }

    /// The `--set` entries that make the broker ask for client certificates from the CA
    /// (`mode`: `ssl.client.auth`, `required` or `requested`).
    pub fn client_auth_config(&self, mode: &str) -> Vec<String> {
        vec![
            "ssl.truststore.type=PEM".to_string(),
            format!("ssl.truststore.location={}", self.path("ca.pem").display()),
            format!("ssl.client.auth={mode}"),
        ]
    }
}
