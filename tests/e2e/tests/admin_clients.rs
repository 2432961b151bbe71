//! The admin scenarios of issue 13 with two third-party admin clients, librdkafka's
//! (confluent-kafka) and kafka-python's, against a real broker (`python/admin_scenarios.py`):
//! a retention change makes old segments go, a topic grows and its new partitions take records,
//! DeleteRecords moves the log start, a topic config change survives a restart, and
//! validate_only changes nothing.

use std::time::Duration;

use gregor_e2e::{run_python_json, unique_topic, Broker};

const CLIENTS: [&str; 2] = ["confluent", "kafka-python"];
const TIMEOUT: Duration = Duration::from_secs(120);

fn scenario(broker: &Broker, client: &str, args: &[&str]) -> serde_json::Value {
    let bootstrap = broker.bootstrap();
    let mut all = vec![bootstrap.as_str(), client];
    all.extend_from_slice(args);
    run_python_json("admin_scenarios.py", &all, TIMEOUT)
}

/// The `.log` files of partition 0 of `topic`.
fn segments(broker: &Broker, topic: &str) -> usize {
    std::fs::read_dir(broker.data_dir().join(format!("{topic}-0")))
        .map(|d| {
            d.filter_map(Result::ok)
                .filter(|e| e.file_name().to_string_lossy().ends_with(".log"))
                .count()
        })
        .unwrap_or(0)
}

/// retention.ms=1 set through each client's admin API on a topic of ~13 segments: the
/// retention check deletes the closed segments, and the log start moves forward (to the log
/// end when a second check, 500 ms later, has already deleted the segment the first one
/// rolled).
#[test]
fn a_retention_change_makes_old_segments_go() {
    let broker = Broker::start_with(&["log.retention.check.interval.ms=500"]);
    for client in CLIENTS {
        let topic = unique_topic(&format!("retention-{client}"));
        let doc = scenario(&broker, client, &["retention", &topic]);
        let (before, after, high) = (
            doc["before"].as_i64().expect("before"),
            doc["after"].as_i64().expect("after"),
            doc["high"].as_i64().expect("high"),
        );
        assert_eq!((before, high), (0, 200), "{client}: {doc}");
        assert!(
            after > 0 && after <= high,
            "{client}: the log start moved forward: {doc}"
        );
        // 200 KB in 16 KiB segments was about 13 segments; the active one is left, and the
        // one it replaced when the retention check rolled it may still be waiting for the next.
        let left = segments(&broker, &topic);
        assert!(left <= 2, "{client}: {left} segments left");
    }
}

/// CreatePartitions through each client grows a topic to three partitions; a record produced to
/// each new partition reads back at offset 0.
#[test]
fn a_topic_grows_and_its_new_partitions_take_records() {
    let broker = Broker::start();
    for client in CLIENTS {
        let topic = unique_topic(&format!("grow-{client}"));
        let doc = scenario(&broker, client, &["grow", &topic]);
        assert_eq!(doc["partitions"], 3, "{client}: {doc}");
        for p in ["1", "2"] {
            let read = &doc["read"][p];
            assert_eq!(
                read.as_array().map(Vec::len),
                Some(1),
                "{client} p{p}: {doc}"
            );
            assert_eq!(read[0][0], 0, "{client} p{p}: {doc}");
        }
    }
}

/// DeleteRecords through each client before offset 4 of 10: the answer's low watermark, the
/// earliest offset and what a consumer reads from the beginning all start at 4.
#[test]
fn delete_records_moves_the_log_start() {
    let broker = Broker::start();
    for client in CLIENTS {
        let topic = unique_topic(&format!("delrec-{client}"));
        let doc = scenario(&broker, client, &["delete-records", &topic]);
        assert_eq!(doc["low_watermark"], 4, "{client}: {doc}");
        assert_eq!(doc["earliest"], 4, "{client}: {doc}");
        assert_eq!(
            doc["offsets"],
            serde_json::json!([4, 5, 6, 7, 8, 9]),
            "{client}: {doc}"
        );
    }
}

/// A topic config set through each client (IncrementalAlterConfigs for librdkafka,
/// AlterConfigs for kafka-python) is described with its value, and still after a kill -9 and
/// restart of the broker.
#[test]
fn a_topic_config_change_survives_a_restart() {
    let mut broker = Broker::start();
    let topics: Vec<(&str, String)> = CLIENTS
        .iter()
        .map(|&c| (c, unique_topic(&format!("cfg-{c}"))))
        .collect();
    for (client, topic) in &topics {
        let doc = scenario(
            &broker,
            client,
            &["set-config", topic, "retention.ms=123456789"],
        );
        assert_eq!(doc["value"], "123456789", "{client}: {doc}");
    }
    broker.restart();
    for (client, topic) in &topics {
        let doc = scenario(&broker, client, &["get-config", topic, "retention.ms"]);
        assert_eq!(doc["value"], "123456789", "{client} after a restart: {doc}");
    }
}

/// validate_only through librdkafka's admin client on CreateTopics, IncrementalAlterConfigs and
/// CreatePartitions: each answers without error and changes nothing.
#[test]
fn validate_only_changes_nothing() {
    let broker = Broker::start();
    let topic = unique_topic("validate");
    let doc = scenario(&broker, "confluent", &["validate-only", &topic]);
    assert_eq!(doc["created"], false, "{doc}");
    assert_eq!(doc["retention"], "600000", "{doc}");
    assert_eq!(doc["partitions"], 1, "{doc}");
}
