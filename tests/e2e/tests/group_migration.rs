//! KIP-848 online migration between the classic and the consumer group protocol, as Kafka
//! 4.x's rolling upgrade of an application does it, with Kafka's Java client
//! (`tests/interop/java/GroupMigration.java`, kafka-clients 4.4 from the toolbox):
//!
//! ```text
//!   producer (steady stream) ──▶ topic (6 partitions) ──▶ c0 c1 c2  group.protocol=classic
//!   restart c0, c1, c2 one by one with group.protocol=consumer   (upgrade: classic → consumer)
//!   restart c0, c1, c2 one by one with group.protocol=classic    (downgrade: consumer → classic)
//! ```
//!
//! At every settled step every partition is owned by exactly one consumer (their own view and
//! the group's description agree), restarted consumers start from the committed offsets
//! (`auto.offset.reset=none`), and at the end every produced record was consumed at least once
//! and the committed offsets reach every partition's end. The same program runs against Apache
//! Kafka 4.4 (the toolbox's `KafkaPeer`) to confirm the expectations there, and the described
//! mixed groups (group type, the members' `upgraded` flag) are compared.

use std::time::{Duration, Instant};

use gregor_e2e::kafka_peer::KafkaPeer;
use gregor_e2e::kafka_tools::Toolbox;
use gregor_e2e::{unique_topic, Broker};
use serde_json::Value;

/// The Java program (compiled from source at each run) runs about 20-30 s.
const JAVA_TIMEOUT: Duration = Duration::from_secs(150);

/// Runs the rolling upgrade and downgrade against `bootstrap`; the program's JSON answer.
fn rolling_migration(bootstrap: &str, logs: &dyn Fn() -> String) -> Value {
    let started = Instant::now();
    let topic = unique_topic("migration");
    let line = Toolbox::installed().run_java_source(
        "GroupMigration.java",
        &[bootstrap, &topic, &format!("{topic}-app")],
        JAVA_TIMEOUT,
    );
    let doc: Value =
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line}: {e}; log:\n{}", logs()));
    eprintln!(
        "rolling migration against {bootstrap}: {} ms: {doc}",
        started.elapsed().as_millis()
    );
    assert_eq!(doc["ok"], Value::Bool(true), "{doc}; log:\n{}", logs());
    doc
}

/// One settled step: its name, the group type, and (client, upgraded) sorted by client.
type Step = (String, String, Vec<(String, String)>);

/// The settled steps of the program's answer.
fn shape(doc: &Value) -> Vec<Step> {
    let steps = doc["steps"].as_array().expect("steps");
    steps
        .iter()
        .map(|s| {
            let mut members: Vec<(String, String)> = s["members"]
                .as_array()
                .expect("members")
                .iter()
                .map(|m| {
                    (
                        m["client"].as_str().unwrap_or_default().to_string(),
                        m["upgraded"].as_str().unwrap_or_default().to_string(),
                    )
                })
                .collect();
            members.sort();
            (
                s["step"].as_str().unwrap_or_default().to_string(),
                s["type"].as_str().unwrap_or_default().to_string(),
                members,
            )
        })
        .collect()
}

/// What both brokers must show: classic until the first consumer-protocol member, a consumer
/// group (classic members flagged not upgraded) until the last one leaves, classic again.
fn assert_expected_shape(doc: &Value) {
    let shape = shape(doc);
    let names: Vec<&str> = shape.iter().map(|(s, _, _)| s.as_str()).collect();
    assert_eq!(
        names,
        [
            "all-classic",
            "c0-to-consumer",
            "c1-to-consumer",
            "c2-to-consumer",
            "c0-to-classic",
            "c1-to-classic",
            "c2-to-classic"
        ],
        "{doc}"
    );
    let types: Vec<&str> = shape.iter().map(|(_, t, _)| t.as_str()).collect();
    assert_eq!(
        types,
        ["classic", "consumer", "consumer", "consumer", "consumer", "consumer", "classic"],
        "{doc}"
    );
    // In a consumer group each member says whether it speaks the consumer protocol.
    for (step, kind, members) in &shape {
        for (client, upgraded) in members {
            let want = match kind.as_str() {
                "consumer" if client.ends_with("-consumer") => "true",
                "consumer" => "false",
                _ => "-",
            };
            assert_eq!(upgraded, want, "{step}: {client}; {doc}");
        }
    }
    let produced = doc["produced"].as_u64().unwrap_or_default();
    let consumed = doc["consumed"].as_u64().unwrap_or_default();
    assert!(consumed >= produced, "{doc}");
}

#[test]
fn java_consumers_roll_from_classic_to_consumer_and_back_on_gregor() {
    let broker = Broker::start();
    let doc = rolling_migration(&broker.bootstrap(), &|| broker.logs());
    assert_expected_shape(&doc);
    let logs = broker.logs();
    assert!(
        logs.contains("upgraded the classic group to a consumer group"),
        "no upgrade in the log"
    );
    assert!(
        logs.contains("downgraded the consumer group to a classic group"),
        "no downgrade in the log"
    );
}

#[test]
fn the_same_rolling_migration_on_apache_kafka() {
    let peer = KafkaPeer::start();
    let doc = rolling_migration(&peer.bootstrap(), &|| peer.log_tail(200));
    assert_expected_shape(&doc);
}
