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
pub struct Ca {
    cert: Certificate,
    key: KeyPair,
}

impl Ca {
    /// A new self-signed CA named `name` (its CN).
    pub fn new(name: &str) -> Ca {
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

    /// Its certificate, PEM.
    pub fn pem(&self) -> String {
        self.cert.pem()
    }

    /// A certificate of `params` signed by this CA, and its new key.
    pub fn sign(&self, params: CertificateParams) -> (Certificate, KeyPair) {
        let key = KeyPair::generate().expect("generate a key");
        let cert = params
            .signed_by(&key, &self.cert, &self.key)
            .expect("sign the certificate");
        (cert, key)
    }

    /// A leaf certificate for `sans` (IP addresses or DNS names) and its new key.
    fn issue(
        &self,
        name: &str,
        sans: &[&str],
        usages: &[ExtendedKeyUsagePurpose],
    ) -> (Certificate, KeyPair) {
        let sans: Vec<String> = sans.iter().map(|s| s.to_string()).collect();
        let mut params = CertificateParams::new(sans).expect("certificate parameters");
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = usages.to_vec();
        self.sign(params)
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
    /// The CA, to issue more broker certificates ([`Pki::issue_server_keystore`]).
    ca: Ca,
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
        Pki { dir, ca }
    }

    /// Writes `file`: a PEM keystore like `server.pem` (a new key, a new certificate from the
    /// CA for `127.0.0.1` and `localhost`, then the CA's) whose subject is `CN=<cn>`; the
    /// broker's own subject is `gregor e2e broker`. What a certificate rotation brings.
    pub fn issue_server_keystore(&self, file: &str, cn: &str) -> PathBuf {
        let (cert, key) = self.ca.issue(
            cn,
            &["127.0.0.1", "localhost"],
            &[
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ],
        );
        let path = self.path(file);
        let pem = format!(
            "{}{}{}",
            key.serialize_pem(),
            cert.pem(),
            self.ca.cert.pem()
        );
        std::fs::write(&path, pem).unwrap_or_else(|e| panic!("{file}: {e}"));
        path
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

    /// A keystore (key, then certificate) holding the rogue client certificate, which no node
    /// trusts: what a node that does not belong shows. Written on first use.
    pub fn rogue_keystore(&self) -> PathBuf {
        let path = self.path("rogue-keystore.pem");
        if !path.is_file() {
            let read = |name: &str| {
                std::fs::read_to_string(self.path(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
            };
            std::fs::write(&path, format!("{}{}", read("rogue.key"), read("rogue.pem")))
                .unwrap_or_else(|e| panic!("rogue-keystore.pem: {e}"));
        }
        path
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

/// The PKI's keys and certificates as the Java stores a Kafka deployment holds, made by
/// OpenSSL (PKCS12 from the PEM files) and Java's keytool (JKS from those, truststores by
/// `keytool -importcert`), in the [`Pki`]'s directory:
///
/// | file              | what                                         | passwords                   |
/// |-------------------|----------------------------------------------|-----------------------------|
/// | `server.p12`      | the broker's key entry "broker" and chain    | [`Self::SERVER_STORE`]      |
/// | `server.jks`      | the same, as JKS, the key with its own password | [`Self::SERVER_STORE`], key [`Self::SERVER_KEY`] |
/// | `client.p12`      | the client certificate's key entry "client"  | [`Self::CLIENT_STORE`]      |
/// | `client.jks`      | the same, as JKS                             | [`Self::CLIENT_STORE`], key [`Self::CLIENT_KEY`] |
/// | `truststore.jks`  | the CA, a trusted-certificate entry          | [`Self::TRUST`]             |
/// | `truststore.p12`  | the same, PKCS12 (certificates encrypted)    | [`Self::TRUST`]             |
pub struct JavaStores<'a> {
    pki: &'a Pki,
}

impl JavaStores<'_> {
    pub const SERVER_STORE: &'static str = "broker-store-secret";
    pub const SERVER_KEY: &'static str = "broker-key-secret";
    pub const CLIENT_STORE: &'static str = "client-store-secret";
    pub const CLIENT_KEY: &'static str = "client-key-secret";
    pub const TRUST: &'static str = "trust-secret";

    /// The path of one of the stores above.
    pub fn path(&self, name: &str) -> PathBuf {
        self.pki.path(name)
    }
}

impl Pki {
    /// Makes the [`JavaStores`] (needs `openssl` and Java's `keytool` on the PATH).
    pub fn java_stores(&self) -> JavaStores<'_> {
        let run = |program: &str, args: &[&str]| {
            let out = std::process::Command::new(program)
                .args(args)
                .current_dir(self.dir.path())
                .output()
                .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
            assert!(
                out.status.success(),
                "{program} {args:?}: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        };
        let pass = |p: &str| format!("pass:{p}");
        let (server, client) = (JavaStores::SERVER_STORE, JavaStores::CLIENT_STORE);
        run(
            "openssl",
            &[
                "pkcs12",
                "-export",
                "-in",
                "server.pem",
                "-name",
                "broker",
                "-passout",
                &pass(server),
                "-out",
                "server.p12",
            ],
        );
        std::fs::write(
            self.path("client-chain.pem"),
            format!(
                "{}{}",
                std::fs::read_to_string(self.path("client.pem")).expect("client.pem"),
                std::fs::read_to_string(self.path("ca.pem")).expect("ca.pem")
            ),
        )
        .expect("write client-chain.pem");
        run(
            "openssl",
            &[
                "pkcs12",
                "-export",
                "-in",
                "client-chain.pem",
                "-inkey",
                "client.key",
                "-name",
                "client",
                "-passout",
                &pass(client),
                "-out",
                "client.p12",
            ],
        );
        for (p12, jks, alias, store, key) in [
            (
                "server.p12",
                "server.jks",
                "broker",
                server,
                JavaStores::SERVER_KEY,
            ),
            (
                "client.p12",
                "client.jks",
                "client",
                client,
                JavaStores::CLIENT_KEY,
            ),
        ] {
            run(
                "keytool",
                &[
                    "-importkeystore",
                    "-noprompt",
                    "-srckeystore",
                    p12,
                    "-srcstoretype",
                    "PKCS12",
                    "-srcstorepass",
                    store,
                    "-srcalias",
                    alias,
                    "-destkeystore",
                    jks,
                    "-deststoretype",
                    "JKS",
                    "-deststorepass",
                    store,
                    "-destkeypass",
                    key,
                ],
            );
        }
        for (file, kind) in [("truststore.jks", "JKS"), ("truststore.p12", "PKCS12")] {
            run(
                "keytool",
                &[
                    "-importcert",
                    "-noprompt",
                    "-alias",
                    "ca",
                    "-file",
                    "ca.pem",
                    "-keystore",
                    file,
                    "-storetype",
                    kind,
                    "-storepass",
                    JavaStores::TRUST,
                ],
            );
        }
        JavaStores { pki: self }
    }
}
