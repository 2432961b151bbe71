//! A broker's `ssl.*` and `sasl.*` settings in DescribeConfigs, on gregor and on a real Apache
//! Kafka 4.4 broker given the same settings (the toolbox's jars), compared key by key:
//!
//! ```text
//!   both brokers: ssl.keystore.password, ssl.key.password, ssl.truststore.password,
//!     ssl.keystore.type, ssl.client.auth, ssl.enabled.protocols, sasl.enabled.mechanisms,
//!     sasl.jaas.config, and listener.name.sasl_ssl.{ssl.keystore.password,
//!     plain.sasl.jaas.config, sasl.enabled.mechanisms}
//!   kafka-configs.sh --describe --entity-type brokers --entity-name 1 --all
//!     ─► every ssl/sasl line gregor prints is Kafka's line for that key (passwords
//!        sensitive=true, value null, synonyms null)
//!   DescribeConfigs v4 (synonyms, documentation) of those keys ─► source, sensitivity,
//!     type and read-only as Kafka answers
//!   no secret in any answer, nor in gregor's log
//! ```
//!
//! The one difference kept: `sasl.enabled.mechanisms`' default is GSSAPI on Kafka, PLAIN on
//! gregor (which serves no GSSAPI). Kafka lists more `ssl.*` keys (cipher suites, the JSSE
//! algorithms, ...) that gregor does not read. Needs the toolbox (`scripts/toolbox`).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::Duration;

use gregor_e2e::kafka_peer::KafkaPeer;
use gregor_e2e::kafka_tools::Toolbox;
use gregor_e2e::raw::RawConn;
use gregor_e2e::Broker;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::DescribeConfigsRequest;
use kafka_protocol::protocol::StrBytes;

const SECRETS: &[&str] = &[
    "ks-secret",
    "key-secret",
    "ts-secret",
    "admin-secret",
    "listener-ks-secret",
    "alice-secret",
];

fn settings() -> Vec<String> {
    [
        "ssl.keystore.password=ks-secret",
        "ssl.key.password=key-secret",
        "ssl.truststore.password=ts-secret",
        "ssl.keystore.type=PKCS12",
        "ssl.client.auth=requested",
        "ssl.enabled.protocols=TLSv1.3",
        "sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256",
        "sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required \
         user_admin=\"admin-secret\";",
        "listener.name.sasl_ssl.ssl.keystore.password=listener-ks-secret",
        "listener.name.sasl_ssl.plain.sasl.jaas.config=org.apache.kafka.common.security.plain.\
         PlainLoginModule required user_alice=\"alice-secret\";",
        "listener.name.sasl_ssl.sasl.enabled.mechanisms=PLAIN",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// Whether a key is one this test compares: the security keys gregor lists.
fn security_key(name: &str) -> bool {
    name.starts_with("ssl.")
        || name.starts_with("listener.name.")
        || name == "sasl.enabled.mechanisms"
        || name == "sasl.jaas.config"
}

/// `kafka-configs.sh --describe --all` of broker 1: the security lines, by key.
fn describe_all(toolbox: &Toolbox, bootstrap: &str) -> (BTreeMap<String, String>, String) {
    let run = toolbox.run(
        "kafka-configs.sh",
        &[
            "--bootstrap-server",
            bootstrap,
            "--describe",
            "--entity-type",
            "brokers",
            "--entity-name",
            "1",
            "--all",
        ],
        None,
        Duration::from_secs(90),
    );
    let out = run
        .ok()
        .unwrap_or_else(|e| panic!("kafka-configs on {bootstrap}: {e}\n{}", run.transcript()))
        .to_string();
    let lines = out
        .lines()
        .map(str::trim)
        .filter_map(|l| {
            let key = l.split('=').next()?;
            security_key(key).then(|| (key.to_string(), l.to_string()))
        })
        .collect();
    (lines, out)
}

/// One entry of a raw DescribeConfigs answer, as compared.
#[derive(Debug, PartialEq, Eq)]
struct Entry {
    value: Option<String>,
    source: i8,
    sensitive: bool,
    read_only: bool,
    config_type: i8,
    synonyms: Vec<(String, Option<String>, i8)>,
}

/// DescribeConfigs v4 of broker 1's `keys` with synonyms and documentation; also the raw text
/// of the answer (for the secret check).
fn describe_raw(addr: SocketAddr, keys: &[String]) -> (BTreeMap<String, Entry>, String) {
    let req = DescribeConfigsRequest::default()
        .with_include_synonyms(true)
        .with_include_documentation(true)
        .with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(4)
            .with_resource_name(StrBytes::from_static_str("1"))
            .with_configuration_keys(Some(
                keys.iter()
                    .map(|k| StrBytes::from_string(k.clone()))
                    .collect(),
            ))]);
    let resp = RawConn::connect(addr)
        .request(4, &req)
        .expect("DescribeConfigs v4");
    let text = format!("{resp:?}");
    let result = &resp.results[0];
    assert_eq!(result.error_code, 0, "{addr}: {:?}", result.error_message);
    let entries = result
        .configs
        .iter()
        .map(|c| {
            (
                c.name.to_string(),
                Entry {
                    value: c.value.as_ref().map(|v| v.to_string()),
                    source: c.config_source,
                    sensitive: c.is_sensitive,
                    read_only: c.read_only,
                    config_type: c.config_type,
                    synonyms: c
                        .synonyms
                        .iter()
                        .map(|s| {
                            (
                                s.name.to_string(),
                                s.value.as_ref().map(|v| v.to_string()),
                                s.source,
                            )
                        })
                        .collect(),
                },
            )
        })
        .collect();
    (entries, text)
}

/// Kafka's answer with the one known difference taken out: gregor's default mechanism.
fn as_on_gregor(kafka: &str) -> String {
    kafka.replace(
        "DEFAULT_CONFIG:sasl.enabled.mechanisms=GSSAPI",
        "DEFAULT_CONFIG:sasl.enabled.mechanisms=PLAIN",
    )
}

#[test]
fn ssl_and_sasl_keys_are_described_as_kafka_describes_them() {
    let toolbox = Toolbox::installed();
    let settings = settings();
    let lines: Vec<&str> = settings.iter().map(String::as_str).collect();
    let kafka = KafkaPeer::start_with(&lines);
    let gregor = Broker::start_with(&lines);

    let (on_gregor, gregor_out) = describe_all(&toolbox, &gregor.bootstrap());
    let (on_kafka, _) = describe_all(&toolbox, &kafka.bootstrap());
    for must in [
        "ssl.keystore.password",
        "ssl.key.password",
        "ssl.truststore.password",
        "ssl.keystore.key",
        "ssl.keystore.certificate.chain",
        "ssl.truststore.certificates",
        "sasl.jaas.config",
        "listener.name.sasl_ssl.ssl.keystore.password",
        "listener.name.sasl_ssl.plain.sasl.jaas.config",
        "listener.name.sasl_ssl.sasl.enabled.mechanisms",
        "ssl.keystore.type",
        "ssl.client.auth",
    ] {
        assert!(
            on_gregor.contains_key(must),
            "gregor lists {must}:\n{gregor_out}"
        );
    }
    for (key, line) in &on_gregor {
        let theirs = on_kafka
            .get(key)
            .unwrap_or_else(|| panic!("Kafka does not list {key}"));
        assert_eq!(line, &as_on_gregor(theirs), "kafka-configs --all, {key}");
    }
    assert_eq!(
        on_gregor["ssl.keystore.password"],
        "ssl.keystore.password=null sensitive=true \
         synonyms={STATIC_BROKER_CONFIG:ssl.keystore.password=null}"
    );

    let keys: Vec<String> = on_gregor.keys().cloned().collect();
    let (raw_gregor, gregor_text) = describe_raw(gregor.addr(), &keys);
    let (raw_kafka, _) = describe_raw(kafka.addr(), &keys);
    assert_eq!(raw_gregor.len(), keys.len());
    let mut dynamic_on_kafka = Vec::new();
    for (key, entry) in &raw_gregor {
        let mut theirs = raw_kafka
            .get(key)
            .unwrap_or_else(|| panic!("Kafka does not answer {key}"));
        let fixed;
        if key.ends_with("sasl.enabled.mechanisms") {
            let mut synonyms = theirs.synonyms.clone();
            for s in &mut synonyms {
                if s.2 == 5 {
                    s.1 = Some("PLAIN".to_string());
                }
            }
            fixed = Entry {
                value: theirs.value.clone(),
                synonyms,
                ..*theirs
            };
            theirs = &fixed;
        }
        // gregor reloads a listener's stores (`listener.name.<l>.ssl.keystore.*`, ...) without
        // a restart, as Kafka does, and flags the keys as Kafka does (the bare names not
        // read-only, the listener's read-only); the other keys Kafka reconfigures (mechanisms,
        // ...) gregor changes only at a restart and calls read-only.
        if !entry.read_only {
            assert!(
                !theirs.read_only,
                "{key}: dynamic on gregor, read-only on Kafka"
            );
        } else if !theirs.read_only {
            dynamic_on_kafka.push(key.clone());
        }
        let theirs = Entry {
            read_only: entry.read_only,
            synonyms: theirs.synonyms.clone(),
            value: theirs.value.clone(),
            ..*theirs
        };
        assert_eq!(entry, &theirs, "DescribeConfigs v4, {key}");
    }
    eprintln!("dynamic on Kafka, read-only on gregor: {dynamic_on_kafka:?}");

    for secret in SECRETS {
        assert!(
            !gregor_out.contains(secret),
            "{secret} in kafka-configs' output"
        );
        assert!(!gregor_text.contains(secret), "{secret} in DescribeConfigs");
        assert!(!gregor.logs().contains(secret), "{secret} in gregor's log");
    }
}
