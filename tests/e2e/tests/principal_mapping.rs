//! `ssl.principal.mapping.rules` (KIP-371) against the real binary, with Kafka's Java client
//! and confluent-kafka. The test makes its own PKI (subjects with OU and O, which
//! `gregor_e2e::pki` does not give), and a broker with an authorizer:
//!
//! ```text
//!   admin (PLAINTEXT, ANONYMOUS is a super user) ─ kafka-topics, kafka-acls --producer User:alice
//!   CN=Alice,OU=eng,O=Example ──SSL──► listener rule RULE:^CN=([^,]+),OU=eng,O=Example$/$1/L
//!        ─► User:alice: produces (console producer, confluent-kafka)
//!   CN=bob,OU=eng,O=Example   ──SSL──► User:bob: TopicAuthorizationException
//!   CN=mallory,OU=sales,O=Example ─SSL─► no rule matches: authentication fails, closed
//! ```
//!
//! The global `ssl.principal.mapping.rules` maps every CN to `wrong-<cn>`: the listener's own
//! `listener.name.ssl.ssl.principal.mapping.rules` must win, as in Kafka. DescribeConfigs
//! (kafka-configs.sh) lists both keys. A rule that does not parse stops the start naming the
//! key and the part at fault.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use gregor_e2e::broker::refused_start;
use gregor_e2e::kafka_peer::KafkaPeer;
use gregor_e2e::kafka_tools::{ToolRun, Toolbox};
use gregor_e2e::pki::Ca;
use gregor_e2e::{run_python_json_or, unique_topic, Broker};
use rcgen::{
    CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, KeyUsagePurpose,
};
use serde_json::Value;

const CLIENT_TIMEOUT: Duration = Duration::from_secs(120);

const LISTENER_RULES: &str = "RULE:^CN=([^,]+),OU=eng,O=Example$/$1/L";
const GLOBAL_RULES: &str = "RULE:^CN=([^,]+),.*$/wrong-$1/";

/// The test's CA and the files it wrote.
struct Pki {
    dir: tempfile::TempDir,
    ca: Ca,
}

impl Pki {
    fn new() -> Pki {
        let dir = tempfile::Builder::new()
            .prefix("gregor-e2e-mapping-")
            .tempdir()
            .expect("temp dir");
        let ca = Ca::new("mapping test CA");
        std::fs::write(dir.path().join("ca.pem"), ca.pem()).expect("write ca.pem");
        Pki { dir, ca }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Issues `<name>.pem` (certificate), `<name>.key` (PKCS#8 key) and `<name>-keystore.pem`
    /// (key then certificate, Kafka's PEM keystore) for the subject O, OU, CN given, which
    /// RFC 2253 writes most specific first: `CN=<cn>,OU=<ou>,O=<o>`.
    fn issue(&self, name: &str, o: &str, ou: Option<&str>, cn: &str, sans: &[&str]) {
        let sans: Vec<String> = sans.iter().map(|s| s.to_string()).collect();
        let mut params = CertificateParams::new(sans).expect("params");
        // Without rcgen's own default CN first.
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(DnType::OrganizationName, o);
        if let Some(ou) = ou {
            params
                .distinguished_name
                .push(DnType::OrganizationalUnitName, ou);
        }
        params.distinguished_name.push(DnType::CommonName, cn);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let (cert, key) = self.ca.sign(params);
        let write = |file: String, text: String| {
            std::fs::write(self.path(&file), text).unwrap_or_else(|e| panic!("{file}: {e}"))
        };
        write(format!("{name}.pem"), cert.pem());
        write(format!("{name}.key"), key.serialize_pem());
        write(
            format!("{name}-keystore.pem"),
            format!("{}{}{}", key.serialize_pem(), cert.pem(), self.ca.pem()),
        );
    }

    /// A client.properties for Kafka's tools presenting `name`'s certificate.
    fn java_properties(&self, name: &str) -> String {
        let path = self.path(&format!("{name}.properties"));
        let text = format!(
            "security.protocol=SSL\nssl.truststore.type=PEM\nssl.truststore.location={}\n\
             ssl.keystore.type=PEM\nssl.keystore.location={}\n",
            self.path("ca.pem").display(),
            self.path(&format!("{name}-keystore.pem")).display()
        );
        std::fs::write(&path, text).expect("write properties");
        path.display().to_string()
    }

    /// `tls_client.py` options presenting `name`'s certificate.
    fn python_options(&self, name: &str) -> Vec<String> {
        let p = |f: String| self.path(&f).display().to_string();
        vec![
            "--ca".into(),
            p("ca.pem".into()),
            "--cert".into(),
            p(format!("{name}.pem")),
            "--key".into(),
            p(format!("{name}.key")),
        ]
    }
}

fn tls_client(broker: &Broker, bootstrap: &str, options: &[String], args: &[&str]) -> Value {
    let mut all: Vec<&str> = vec![bootstrap];
    all.extend(options.iter().map(String::as_str));
    all.extend_from_slice(args);
    run_python_json_or("tls_client.py", &all, CLIENT_TIMEOUT, || {
        format!("--- broker log ---\n{}", broker.logs())
    })
}

fn console_producer(
    toolbox: &Toolbox,
    at: &str,
    topic: &str,
    config: &str,
    lines: &[String],
) -> ToolRun {
    let input = lines.join("\n") + "\n";
    toolbox.run(
        "kafka-console-producer.sh",
        &[
            "--bootstrap-server",
            at,
            "--topic",
            topic,
            "--command-config",
            config,
            "--producer-property",
            "max.block.ms=8000",
            "--producer-property",
            "delivery.timeout.ms=10000",
            "--producer-property",
            "request.timeout.ms=5000",
        ],
        Some(input.as_bytes()),
        CLIENT_TIMEOUT,
    )
}

fn admin_tool(toolbox: &Toolbox, script: &str, args: &[&str]) -> String {
    let run = toolbox.run(script, args, None, CLIENT_TIMEOUT);
    run.ok()
        .unwrap_or_else(|e| panic!("{script}: {e}\n{}", run.transcript()))
        .to_string()
}

fn start(pki: &Pki) -> (Broker, SocketAddr) {
    pki.issue(
        "server",
        "Example",
        None,
        "gregor broker",
        &["127.0.0.1", "localhost"],
    );
    let tls = gregor_e2e::ports::reserve();
    let sets = [
        format!("listeners=PLAINTEXT://127.0.0.1:0,SSL://{tls}"),
        "ssl.keystore.type=PEM".to_string(),
        format!(
            "ssl.keystore.location={}",
            pki.path("server-keystore.pem").display()
        ),
        "ssl.truststore.type=PEM".to_string(),
        format!("ssl.truststore.location={}", pki.path("ca.pem").display()),
        "ssl.client.auth=required".to_string(),
        format!("ssl.principal.mapping.rules={GLOBAL_RULES}"),
        format!("listener.name.ssl.ssl.principal.mapping.rules={LISTENER_RULES}"),
        "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer".to_string(),
        "super.users=User:ANONYMOUS".to_string(),
    ];
    let sets: Vec<&str> = sets.iter().map(String::as_str).collect();
    let broker = Broker::start_with(&sets);
    (broker, tls)
}

/// Creates `topic` (one partition) at `admin` and lets `User:alice` produce to it.
fn topic_alice_may_write(toolbox: &Toolbox, admin: &str, topic: &str) {
    admin_tool(
        toolbox,
        "kafka-topics.sh",
        &[
            "--bootstrap-server",
            admin,
            "--create",
            "--topic",
            topic,
            "--partitions",
            "1",
        ],
    );
    admin_tool(
        toolbox,
        "kafka-acls.sh",
        &[
            "--bootstrap-server",
            admin,
            "--add",
            "--allow-principal",
            "User:alice",
            "--producer",
            "--topic",
            topic,
        ],
    );
    // The ACL reaches the broker's authorizer with the next image.
    std::thread::sleep(Duration::from_millis(500));
}

#[test]
fn a_mapped_subject_is_authorized_by_its_short_name() {
    let pki = Pki::new();
    pki.issue("alice", "Example", Some("eng"), "Alice", &[]);
    pki.issue("bob", "Example", Some("eng"), "bob", &[]);
    pki.issue("mallory", "Example", Some("sales"), "mallory", &[]);
    let (broker, tls) = start(&pki);
    let toolbox = Toolbox::installed();
    let admin = broker.bootstrap();
    let at = tls.to_string();
    let topic = unique_topic("mapped");

    topic_alice_may_write(&toolbox, &admin, &topic);

    // Alice, mapped to `alice` by the listener's rule (lower case), may write.
    let lines: Vec<String> = (0..50).map(|i| format!("alice-java-{i:03}")).collect();
    let alice = console_producer(&toolbox, &at, &topic, &pki.java_properties("alice"), &lines);
    assert!(
        alice.succeeded() && alice.error_in_output().is_none(),
        "alice's console producer: {}\n--- broker ---\n{}",
        alice.transcript(),
        broker.logs()
    );
    let produced = tls_client(
        &broker,
        &at,
        &pki.python_options("alice"),
        &["produce", &topic, "--count", "100"],
    );
    let delivered = produced["delivered"].as_array().map_or(0, Vec::len);
    assert_eq!(delivered, 100, "confluent-kafka as alice: {produced}");

    // Bob is authenticated as `bob`, who has no ACL.
    let lines = vec!["bob-java".to_string()];
    let bob = console_producer(&toolbox, &at, &topic, &pki.java_properties("bob"), &lines);
    let said = format!("{}{}", bob.stdout, bob.stderr);
    assert!(
        said.contains("TopicAuthorizationException"),
        "bob's console producer must be refused on the topic: {}",
        bob.transcript()
    );
    let refused = tls_client(
        &broker,
        &at,
        &pki.python_options("bob"),
        &["refused", &topic],
    );
    assert!(
        refused["delivery"]
            .as_str()
            .is_some_and(|d| d.contains("TOPIC_AUTHORIZATION_FAILED")
                || d.contains("Topic authorization failed")),
        "confluent-kafka as bob: {refused}"
    );

    // Mallory's subject matches no rule: her connections fail authentication.
    let lines = vec!["mallory-java".to_string()];
    let mallory = console_producer(
        &toolbox,
        &at,
        &topic,
        &pki.java_properties("mallory"),
        &lines,
    );
    let said = format!("{}{}", mallory.stdout, mallory.stderr);
    assert!(
        said.contains("TimeoutException") || said.contains("not present in metadata"),
        "mallory's console producer must never get metadata: {}",
        mallory.transcript()
    );
    let refused = tls_client(
        &broker,
        &at,
        &pki.python_options("mallory"),
        &["refused", &topic],
    );
    assert!(
        refused["metadata"].is_string() && refused["delivery"].is_string(),
        "confluent-kafka as mallory was served: {refused}"
    );
    let logs = broker.logs();
    assert!(
        logs.contains("No rules apply to CN=mallory,OU=sales,O=Example")
            && logs.contains("SSL authentication failed"),
        "the broker must log why mallory was refused:\n{logs}"
    );
    // Neither bob nor anyone was ever named by the global rule (the listener's rule wins).
    assert!(
        !logs.contains("wrong-"),
        "the global rule must not apply on a listener with its own:\n{logs}"
    );
    assert!(
        logs.contains("User:bob"),
        "the authorizer's denial names bob by his mapped name:\n{logs}"
    );

    // Exactly alice's records are in the topic.
    let consumed = tls_client(&broker, &admin, &[], &["consume", &topic]);
    let records = consumed["records"].as_array().cloned().unwrap_or_default();
    assert_eq!(records.len(), 150, "alice's 50 + 100 records: {consumed}");
    assert!(
        !records
            .iter()
            .any(|r| r.to_string().contains("bob") || r.to_string().contains("mallory")),
        "nothing of bob's or mallory's was written: {consumed}"
    );

    // DescribeConfigs lists both keys with their values.
    let described = admin_tool(
        &toolbox,
        "kafka-configs.sh",
        &[
            "--bootstrap-server",
            &admin,
            "--describe",
            "--entity-type",
            "brokers",
            "--entity-name",
            "1",
            "--all",
        ],
    );
    for line in [
        format!("ssl.principal.mapping.rules={GLOBAL_RULES} sensitive=false"),
        format!("listener.name.ssl.ssl.principal.mapping.rules={LISTENER_RULES} sensitive=false"),
    ] {
        assert!(
            described.lines().any(|l| l.trim().starts_with(&line)),
            "kafka-configs --describe must list `{line}`:\n{described}"
        );
    }
}

#[test]
fn a_rule_that_does_not_parse_stops_the_start() {
    let pki = Pki::new();
    pki.issue("server", "Example", None, "gregor broker", &["127.0.0.1"]);
    let keystore = format!(
        "ssl.keystore.location={}",
        pki.path("server-keystore.pem").display()
    );
    let tls = gregor_e2e::ports::reserve();
    let listeners = format!("listeners=PLAINTEXT://127.0.0.1:0,SSL://{tls}");
    for (key, rules, says) in [
        (
            "ssl.principal.mapping.rules",
            "RULE:^CN=(.*?),OU=ServiceUsers.*$/$1/L/U",
            "unmatched substring: `/U`",
        ),
        (
            "listener.name.ssl.ssl.principal.mapping.rules",
            "DEFAULT/L",
            "unmatched substring: `/L`",
        ),
        (
            "ssl.principal.mapping.rules",
            r"RULE:^CN=(\w+)\1$/$1/",
            "backreferences",
        ),
        ("ssl.principal.mapping.rules", ",", "no rule given"),
    ] {
        let set = format!("{key}={rules}");
        let args = [
            "--set",
            &listeners,
            "--set",
            "ssl.keystore.type=PEM",
            "--set",
            &keystore,
            "--set",
            &set,
        ];
        let refusal = refused_start(&args);
        assert!(
            refusal.output.contains("ssl.principal.mapping.rules") && refusal.output.contains(says),
            "{set}: the refusal must name the key and say `{says}`:\n{}",
            refusal.output
        );
    }
}

/// What Kafka's console producer came to: `ok`, or the first Kafka exception it printed.
fn java_outcome(run: &ToolRun) -> String {
    let said = format!("{}{}", run.stdout, run.stderr);
    let exception = said
        .split("org.apache.kafka.common.errors.")
        .skip(1)
        .find_map(|rest| {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric())
                .collect();
            name.ends_with("Exception").then_some(name)
        });
    match exception {
        Some(e) => e,
        None if run.succeeded() => "ok".to_string(),
        None => format!("failed: {}", run.reason()),
    }
}

/// The same users against Apache Kafka 4.4 and gregor, configured alike: Kafka's console
/// producer must come to the same outcome on both (alice writes, bob is not authorized,
/// mallory's unmapped subject never gets served).
#[test]
fn kafka_s_console_producer_sees_the_same_on_kafka_4_4() {
    let pki = Pki::new();
    pki.issue("alice", "Example", Some("eng"), "Alice", &[]);
    pki.issue("bob", "Example", Some("eng"), "bob", &[]);
    pki.issue("mallory", "Example", Some("sales"), "mallory", &[]);
    let (gregor, gregor_tls) = start(&pki);
    let kafka_tls = gregor_e2e::ports::reserve();
    let kafka_lines = [
        format!(
            "listeners=PLAINTEXT://127.0.0.1:{{port}},CONTROLLER://127.0.0.1:{{controller_port}},\
             SSL://{kafka_tls}"
        ),
        format!("advertised.listeners=PLAINTEXT://127.0.0.1:{{port}},SSL://{kafka_tls}"),
        "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,SSL:SSL"
            .to_string(),
        "ssl.keystore.type=PEM".to_string(),
        format!(
            "ssl.keystore.location={}",
            pki.path("server-keystore.pem").display()
        ),
        "ssl.truststore.type=PEM".to_string(),
        format!("ssl.truststore.location={}", pki.path("ca.pem").display()),
        "ssl.client.auth=required".to_string(),
        format!("ssl.principal.mapping.rules={GLOBAL_RULES}"),
        format!("listener.name.ssl.ssl.principal.mapping.rules={LISTENER_RULES}"),
        "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer".to_string(),
        "super.users=User:ANONYMOUS".to_string(),
    ];
    let kafka_lines: Vec<&str> = kafka_lines.iter().map(String::as_str).collect();
    let kafka = KafkaPeer::start_with(&kafka_lines);
    let toolbox = Toolbox::installed();
    let mut differences = Vec::new();
    for (name, admin, at) in [
        ("Kafka", kafka.bootstrap(), kafka_tls.to_string()),
        ("gregor", gregor.bootstrap(), gregor_tls.to_string()),
    ] {
        let topic = unique_topic("mapped-vs");
        topic_alice_may_write(&toolbox, &admin, &topic);
        let mut outcomes = Vec::new();
        for user in ["alice", "bob", "mallory"] {
            let lines = vec![format!("{user}-line")];
            let run = console_producer(&toolbox, &at, &topic, &pki.java_properties(user), &lines);
            outcomes.push((user, java_outcome(&run)));
        }
        eprintln!("{name}: {outcomes:?}");
        differences.push((name, outcomes));
    }
    let (kafka_outcomes, gregor_outcomes) = (&differences[0].1, &differences[1].1);
    assert_eq!(
        kafka_outcomes[0].1,
        "ok",
        "alice writes on Kafka: {kafka_outcomes:?}\n{}",
        kafka.log_tail(80)
    );
    assert_eq!(
        gregor_outcomes,
        kafka_outcomes,
        "the console producer's outcomes differ (left gregor, right Kafka)\n--- gregor ---\n{}",
        gregor.logs()
    );
}
