//! TLS listeners on the key and trust stores a Kafka deployment already has: JKS (Kafka's
//! default `ssl.keystore.type`) and PKCS12, with `ssl.keystore.password`, `ssl.key.password`
//! and `ssl.truststore.password`, against the real binary with real clients. The stores are
//! made at each run from the test's PKI by OpenSSL and Java's keytool (`Pki::java_stores`).
//!
//! ```text
//!   Kafka's console producer/consumer (JKS or PKCS12 keystore + truststore) ─┐
//!   confluent-kafka (PKCS12 keystore, PEM CA) ──────────────────────────────┼─TLS, client
//!   gregor's CLI (--command-config with JKS keystore + truststore) ──────────┘ certificate
//!                                                  required ─▶ SSL://127.0.0.1:Q ─▶ gregor
//!   gregor server with a wrong password, a damaged store, a truststore as keystore ─▶ exits,
//!   naming the key and the file
//! ```

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use gregor_e2e::broker::{gregor_bin, gregor_cli_roundtrip, gregor_with_config, wait_accepting};
use gregor_e2e::check;
use gregor_e2e::kafka_tools::Toolbox;
use gregor_e2e::pki::{JavaStores, Pki};
use gregor_e2e::{run_command, run_python_json_or, unique_topic, Broker};
use serde_json::Value;

/// How long one client run may take.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(90);
/// How long a broker with a bad store may take to give up.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Starts a broker with a PLAINTEXT listener (the harness's) and an SSL one configured by
/// `ssl`; returns it and the SSL address once that accepts connections.
fn start(ssl: &[String]) -> (Broker, SocketAddr) {
    let tls = gregor_e2e::ports::reserve();
    let mut sets = vec![format!("listeners=PLAINTEXT://127.0.0.1:0,SSL://{tls}")];
    sets.extend_from_slice(ssl);
    let sets: Vec<&str> = sets.iter().map(String::as_str).collect();
    let broker = Broker::start_with(&sets);
    wait_accepting(tls, Duration::from_secs(10), || broker.logs());
    (broker, tls)
}

/// The broker's SSL keys on JKS stores, with no type given (Kafka's default, JKS), the key
/// with a password of its own, client certificates required.
fn jks_broker_config(stores: &JavaStores) -> Vec<String> {
    vec![
        format!(
            "ssl.keystore.location={}",
            stores.path("server.jks").display()
        ),
        format!("ssl.keystore.password={}", JavaStores::SERVER_STORE),
        format!("ssl.key.password={}", JavaStores::SERVER_KEY),
        format!(
            "ssl.truststore.location={}",
            stores.path("truststore.jks").display()
        ),
        format!("ssl.truststore.password={}", JavaStores::TRUST),
        "ssl.client.auth=required".to_string(),
    ]
}

/// A client.properties as Kafka's tools take it, in the PKI's directory.
fn client_properties(stores: &JavaStores, name: &str, lines: &[String]) -> String {
    let path = stores.path(name);
    let mut text = "security.protocol=SSL\n".to_string();
    for l in lines {
        text.push_str(l);
        text.push('\n');
    }
    std::fs::write(&path, text).expect("write client properties");
    path.display().to_string()
}

/// Kafka's console producer writes `count` lines to `topic` and its console consumer reads
/// them back from the beginning, both with `config`; asserts every line came back.
fn java_console_roundtrip(broker: &Broker, tls: SocketAddr, config: &str, topic: &str) {
    let toolbox = Toolbox::installed();
    let count = 200;
    let lines: Vec<String> = (0..count).map(|i| format!("java-{i:04}")).collect();
    let input = lines.join("\n") + "\n";
    let at = tls.to_string();
    let produced = toolbox.run(
        "kafka-console-producer.sh",
        &[
            "--bootstrap-server",
            &at,
            "--topic",
            topic,
            "--command-config",
            config,
        ],
        Some(input.as_bytes()),
        CLIENT_TIMEOUT,
    );
    produced
        .ok()
        .unwrap_or_else(|e| panic!("console producer: {e}; log:\n{}", broker.logs()));
    let consumed = toolbox.run(
        "kafka-console-consumer.sh",
        &[
            "--bootstrap-server",
            &at,
            "--topic",
            topic,
            "--from-beginning",
            "--max-messages",
            &count.to_string(),
            "--timeout-ms",
            "30000",
            "--command-config",
            config,
        ],
        None,
        CLIENT_TIMEOUT,
    );
    let out = consumed
        .ok()
        .unwrap_or_else(|e| panic!("console consumer: {e}; log:\n{}", broker.logs()));
    let mut got: Vec<&str> = out.lines().filter(|l| l.starts_with("java-")).collect();
    got.sort_unstable();
    assert_eq!(
        got,
        lines.iter().map(String::as_str).collect::<Vec<_>>(),
        "the Java client must read back every line it wrote"
    );
}

/// confluent-kafka with `settings` (`-X key=value`) produces 300 records to `topic` through
/// `tls` and reads them back.
fn librdkafka_roundtrip(broker: &Broker, tls: SocketAddr, settings: &[String], topic: &str) {
    let at = tls.to_string();
    let run = |args: &[&str]| -> Value {
        let mut all: Vec<&str> = vec![at.as_str()];
        for s in settings {
            all.push("-X");
            all.push(s);
        }
        all.extend_from_slice(args);
        run_python_json_or("store_client.py", &all, CLIENT_TIMEOUT, || {
            format!("--- broker log ---\n{}", broker.logs())
        })
    };
    let produced = run(&["produce", topic, "--count", "300"]);
    let consumed = run(&["consume", topic]);
    check::assert_same_records(
        300,
        &check::records(&produced, "delivered"),
        &check::records(&consumed, "records"),
    );
}

/// librdkafka's settings: the client certificate from `client.p12`, the CA as PEM (librdkafka
/// reads no JKS).
fn librdkafka_settings(stores: &JavaStores) -> Vec<String> {
    vec![
        "security.protocol=SSL".to_string(),
        format!("ssl.ca.location={}", stores.path("ca.pem").display()),
        format!(
            "ssl.keystore.location={}",
            stores.path("client.p12").display()
        ),
        format!("ssl.keystore.password={}", JavaStores::CLIENT_STORE),
        "ssl.endpoint.identification.algorithm=https".to_string(),
    ]
}

#[test]
fn jks_stores_serve_the_java_client_librdkafka_and_gregor_s_cli() {
    let pki = Pki::generate();
    let stores = pki.java_stores();
    let (broker, tls) = start(&jks_broker_config(&stores));

    let java = client_properties(
        &stores,
        "client-jks.properties",
        &[
            format!(
                "ssl.truststore.location={}",
                stores.path("truststore.jks").display()
            ),
            format!("ssl.truststore.password={}", JavaStores::TRUST),
            format!(
                "ssl.keystore.location={}",
                stores.path("client.jks").display()
            ),
            format!("ssl.keystore.password={}", JavaStores::CLIENT_STORE),
            format!("ssl.key.password={}", JavaStores::CLIENT_KEY),
        ],
    );
    java_console_roundtrip(&broker, tls, &java, &unique_topic("jks-java"));
    eprintln!("Java client: JKS keystore and truststore");
    librdkafka_roundtrip(
        &broker,
        tls,
        &librdkafka_settings(&stores),
        &unique_topic("jks-librdkafka"),
    );
    eprintln!("librdkafka: PKCS12 keystore, PEM CA");

    // gregor's CLI with the very properties file the Java tools used.
    let at = tls.to_string();
    let cli = |config: &str, args: &[&str]| gregor_with_config(&at, Path::new(config), args, None);
    gregor_cli_roundtrip(&at, Path::new(&java), &unique_topic("jks-cli"), false)
        .unwrap_or_else(|e| panic!("{e}; log:\n{}", broker.logs()));
    eprintln!("gregor CLI: JKS keystore and truststore in --command-config");

    // The same CLI without a client certificate is turned away by the broker; with a wrong
    // truststore password it stops before dialling, saying which key is wrong.
    let no_cert = client_properties(
        &stores,
        "no-cert.properties",
        &[format!(
            "ssl.truststore.location={}",
            stores.path("truststore.jks").display()
        )],
    );
    let (ok, out, _) = cli(&no_cert, &["topics", "list"]);
    assert!(!ok, "a client without a certificate must be refused: {out}");
    let wrong = client_properties(
        &stores,
        "wrong.properties",
        &[
            format!(
                "ssl.truststore.location={}",
                stores.path("truststore.jks").display()
            ),
            "ssl.truststore.password=not-the-password".to_string(),
        ],
    );
    let (ok, _, err) = cli(&wrong, &["topics", "list"]);
    assert!(!ok);
    assert!(
        err.contains("ssl.truststore.password") && !err.contains("not-the-password"),
        "the error must name the key, not the secret: {err}"
    );
}

#[test]
fn pkcs12_stores_serve_the_java_client_and_librdkafka() {
    let pki = Pki::generate();
    let stores = pki.java_stores();
    // Per listener, as Kafka reads listener.name.<l>.ssl.*: the keystore only for "ssl".
    let (broker, tls) = start(&[
        "listener.name.ssl.ssl.keystore.type=PKCS12".to_string(),
        format!(
            "listener.name.ssl.ssl.keystore.location={}",
            stores.path("server.p12").display()
        ),
        format!(
            "listener.name.ssl.ssl.keystore.password={}",
            JavaStores::SERVER_STORE
        ),
        "ssl.truststore.type=PKCS12".to_string(),
        format!(
            "ssl.truststore.location={}",
            stores.path("truststore.p12").display()
        ),
        format!("ssl.truststore.password={}", JavaStores::TRUST),
        "ssl.client.auth=required".to_string(),
    ]);
    let java = client_properties(
        &stores,
        "client-p12.properties",
        &[
            "ssl.truststore.type=PKCS12".to_string(),
            format!(
                "ssl.truststore.location={}",
                stores.path("truststore.p12").display()
            ),
            format!("ssl.truststore.password={}", JavaStores::TRUST),
            "ssl.keystore.type=PKCS12".to_string(),
            format!(
                "ssl.keystore.location={}",
                stores.path("client.p12").display()
            ),
            format!("ssl.keystore.password={}", JavaStores::CLIENT_STORE),
        ],
    );
    java_console_roundtrip(&broker, tls, &java, &unique_topic("p12-java"));
    eprintln!("Java client: PKCS12 keystore and truststore");
    librdkafka_roundtrip(
        &broker,
        tls,
        &librdkafka_settings(&stores),
        &unique_topic("p12-librdkafka"),
    );
    eprintln!("librdkafka: PKCS12 keystore, PEM CA");
}

/// `gregor server` with `ssl` must exit without serving, its output naming `key` and, when
/// given, `file`, and never `secret`.
fn refuses_to_start(ssl: &[String], key: &str, file: Option<&Path>, secret: &str) {
    let data = tempfile::tempdir().expect("data dir");
    let tls = gregor_e2e::ports::reserve();
    let mut cmd = Command::new(gregor_bin());
    cmd.arg("server")
        .arg("--data-dir")
        .arg(data.path())
        .arg("--listen")
        .arg(gregor_e2e::ports::reserve().to_string())
        .arg("--set")
        .arg(format!("listeners=PLAINTEXT://127.0.0.1:0,SSL://{tls}"));
    for s in ssl {
        cmd.arg("--set").arg(s);
    }
    let started = Instant::now();
    let out = run_command(cmd, None, START_TIMEOUT);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !out.status.success() && started.elapsed() < START_TIMEOUT,
        "gregor must stop at start: {:?}\n{text}",
        out.status
    );
    assert!(text.contains(key), "the error must name {key}:\n{text}");
    if let Some(file) = file {
        let shown = file.display().to_string();
        assert!(
            text.contains(&shown),
            "the error must name {shown}:\n{text}"
        );
    }
    assert!(
        !text.contains(secret),
        "a password must never be logged:\n{text}"
    );
    eprintln!(
        "refused: {}",
        text.lines()
            .find(|l| l.contains(key))
            .unwrap_or_default()
            .trim()
    );
}

#[test]
fn a_wrong_password_or_a_bad_store_stops_the_start_naming_the_key_and_file() {
    let pki = Pki::generate();
    let stores = pki.java_stores();
    let server_jks = stores.path("server.jks");
    let with = |key: &str, value: String| {
        let mut c = jks_broker_config(&stores);
        c.retain(|s| !s.starts_with(&format!("{key}=")));
        c.push(format!("{key}={value}"));
        c
    };
    refuses_to_start(
        &with("ssl.keystore.password", "wrong-store-secret".into()),
        "ssl.keystore.password",
        Some(&server_jks),
        "wrong-store-secret",
    );
    refuses_to_start(
        &with("ssl.key.password", "wrong-key-secret".into()),
        "ssl.key.password",
        Some(&server_jks),
        "wrong-key-secret",
    );
    refuses_to_start(
        &with("ssl.truststore.password", "wrong-trust-secret".into()),
        "ssl.truststore.password",
        Some(&stores.path("truststore.jks")),
        "wrong-trust-secret",
    );
    // A damaged copy of the keystore.
    let damaged = stores.path("damaged.jks");
    let bytes = std::fs::read(&server_jks).expect("server.jks");
    std::fs::write(&damaged, &bytes[..bytes.len() / 2]).expect("write");
    refuses_to_start(
        &with("ssl.keystore.location", damaged.display().to_string()),
        "ssl.keystore.location",
        Some(&damaged),
        JavaStores::SERVER_STORE,
    );
    // The truststore given as the keystore: no key entry.
    let mut c = with(
        "ssl.keystore.location",
        stores.path("truststore.jks").display().to_string(),
    );
    c.retain(|s| !s.starts_with("ssl.keystore.password=") && !s.starts_with("ssl.key.password="));
    c.push(format!("ssl.keystore.password={}", JavaStores::TRUST));
    refuses_to_start(
        &c,
        "no private key entry",
        Some(&stores.path("truststore.jks")),
        JavaStores::TRUST,
    );
    // A JKS keystore without its password, as Kafka refuses it.
    let mut c = jks_broker_config(&stores);
    c.retain(|s| !s.starts_with("ssl.keystore.password="));
    refuses_to_start(&c, "ssl.keystore.password", None, JavaStores::SERVER_KEY);
}
