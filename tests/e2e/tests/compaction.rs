//! Log compaction end to end with librdkafka (confluent-kafka):
//!
//! - `a_compacted_topic_keeps_the_latest_value_of_each_key`: a topic with
//!   `cleanup.policy=compact`, 2 KiB segments, `min.cleanable.dirty.ratio=0.01` and (at first)
//!   `min.compaction.lag.ms` of ten minutes, so nothing is cleaned while it is written; 60 keys
//!   updated 25 times each (lz4-compressed batches of 10), then tombstones for 10 of them and
//!   filler records that close the last segment. The partition's size on disk is measured,
//!   then `min.compaction.lag.ms=0` is set with IncrementalAlterConfigs (no restart) and the
//!   broker's cleaner (`log.cleaner.backoff.ms=200`) compacts the log: a consumer reading from
//!   the beginning gets each key once, with the latest value at the offset the producer was
//!   told; a deleted key has no value left (its tombstone, or nothing); the directory shrank;
//!   `cleaner-offset-checkpoint` names the partition. After a kill -9 and restart the log
//!   reads back the same. DescribeConfigs shows the compaction configs.
//! - `the_cleaner_takes_new_settings_without_a_broker_restart`: the cleaner's dynamic configs.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use gregor_e2e::{run_python_json, unique_topic, Broker};
use serde_json::Value;

const TIMEOUT: Duration = Duration::from_secs(120);
const KEYS: usize = 60;
const ROUNDS: usize = 25;
const DELETED: usize = 10;

fn client(broker: &Broker, args: &[&str]) -> Value {
    let bootstrap = broker.bootstrap();
    let mut all = vec![bootstrap.as_str()];
    all.extend_from_slice(args);
    run_python_json("compaction_client.py", &all, TIMEOUT)
}

/// `(offset, key, value)` of every record, read from the beginning.
fn read(broker: &Broker, topic: &str) -> Vec<(i64, String, Option<String>)> {
    client(broker, &["read", topic])["records"]
        .as_array()
        .expect("records")
        .iter()
        .map(|r| {
            (
                r[0].as_i64().expect("offset"),
                r[1].as_str().unwrap_or_default().to_string(),
                r[2].as_str().map(str::to_string),
            )
        })
        .collect()
}

/// A compacted topic of 2 KiB segments, cleanable at 1 % dirty, with `min.compaction.lag.ms`
/// `lag`.
fn create_compacted(broker: &Broker, topic: &str, lag: &str) {
    let lag = format!("min.compaction.lag.ms={lag}");
    client(
        broker,
        &[
            "create",
            topic,
            "--config",
            "cleanup.policy=compact",
            "--config",
            "segment.bytes=2048",
            "--config",
            "min.cleanable.dirty.ratio=0.01",
            "--config",
            &lag,
        ],
    );
}

fn dir_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

#[test]
fn a_compacted_topic_keeps_the_latest_value_of_each_key() {
    let mut broker = Broker::start_with(&["log.cleaner.backoff.ms=200"]);
    let topic = unique_topic("compacted");
    create_compacted(&broker, &topic, "600000");
    let keys = KEYS.to_string();
    let rounds = ROUNDS.to_string();
    let deleted = DELETED.to_string();
    let produced = client(
        &broker,
        &[
            "produce",
            &topic,
            "--keys",
            &keys,
            "--rounds",
            &rounds,
            "--tombstones",
            &deleted,
            "--compression",
            "lz4",
        ],
    );
    let latest: BTreeMap<String, (i64, Option<String>)> = produced["latest"]
        .as_object()
        .expect("latest")
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                (
                    v["offset"].as_i64().expect("offset"),
                    v["value"].as_str().map(str::to_string),
                ),
            )
        })
        .collect();
    assert_eq!(latest.len(), KEYS);
    // Filler under other keys: the segment holding the last updates closes.
    client(
        &broker,
        &[
            "produce", &topic, "--keys", "20", "--rounds", "2", "--prefix", "filler",
        ],
    );

    let part_dir = broker.data_dir().join(format!("{topic}-0"));
    let before = dir_size(&part_dir);
    assert!(before > 20_000, "{before} bytes written");
    let uncleaned = read(&broker, &topic);
    assert!(
        uncleaned.len() >= KEYS * ROUNDS,
        "nothing cleaned during the lag"
    );

    // The lag goes (a live topic config change); the cleaner compacts the log.
    client(
        &broker,
        &["alter", &topic, "--config", "min.compaction.lag.ms=0"],
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    let checkpoint = broker.data_dir().join("cleaner-offset-checkpoint");
    loop {
        let cleaned = std::fs::read_to_string(&checkpoint)
            .map(|t| t.contains(&topic))
            .unwrap_or(false);
        if cleaned && dir_size(&part_dir) < before / 3 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not compacted: {} of {before} bytes\n{}",
            dir_size(&part_dir),
            broker.logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let after = dir_size(&part_dir);

    let check = |records: &[(i64, String, Option<String>)]| {
        let mut seen = BTreeMap::new();
        for (offset, key, value) in records.iter().filter(|r| r.1.starts_with("key-")) {
            assert!(
                seen.insert(key.clone(), (*offset, value.clone())).is_none(),
                "{key} read twice"
            );
        }
        for (key, (offset, value)) in &latest {
            match value {
                Some(v) => assert_eq!(
                    seen.get(key),
                    Some(&(*offset, Some(v.clone()))),
                    "{key}: the latest value at its offset"
                ),
                None => assert!(
                    seen.get(key)
                        .is_none_or(|(o, v)| o == offset && v.is_none()),
                    "{key} was deleted: {:?}",
                    seen.get(key)
                ),
            }
        }
        // The survivors' offsets are the ones they were written at.
        for r in records {
            assert!(
                uncleaned.contains(r),
                "{r:?} is not a record that was written there"
            );
        }
    };
    let records = read(&broker, &topic);
    check(&records);
    assert!(
        records.len() < uncleaned.len() / 5,
        "{} records left",
        records.len()
    );
    eprintln!(
        "compaction: {} -> {} records, {before} -> {after} bytes",
        uncleaned.len(),
        records.len()
    );

    let configs = client(&broker, &["describe", &topic]);
    assert_eq!(configs["configs"]["min.cleanable.dirty.ratio"], "0.01");
    assert_eq!(configs["configs"]["min.compaction.lag.ms"], "0");
    assert_eq!(configs["configs"]["delete.retention.ms"], "86400000");
    assert_eq!(
        configs["configs"]["max.compaction.lag.ms"],
        "9223372036854775807"
    );

    // The cleaned segments (and their indexes) reload after a crash.
    broker.restart();
    let reloaded = read(&broker, &topic);
    assert_eq!(reloaded, records, "the same records after a restart");
}

/// The log cleaner's configs are dynamic, as in Kafka: a broker whose cleaner sleeps ten
/// minutes between looks (`log.cleaner.backoff.ms`) leaves a dirty compacted log alone; set to
/// 200 ms (and two threads) for every broker with `gregor configs alter --broker-defaults`, the
/// cleaner is started again with them and compacts the log, with no restart of the broker.
#[test]
fn the_cleaner_takes_new_settings_without_a_broker_restart() {
    let broker = Broker::start_with(&["log.cleaner.backoff.ms=600000"]);
    let topic = unique_topic("recleaned");
    create_compacted(&broker, &topic, "0");
    client(
        &broker,
        &["produce", &topic, "--keys", "30", "--rounds", "20"],
    );
    client(
        &broker,
        &[
            "produce", &topic, "--keys", "20", "--rounds", "2", "--prefix", "filler",
        ],
    );
    let part_dir = broker.data_dir().join(format!("{topic}-0"));
    let before = dir_size(&part_dir);
    let checkpoint = broker.data_dir().join("cleaner-offset-checkpoint");
    let cleaned = || {
        std::fs::read_to_string(&checkpoint)
            .map(|t| t.contains(&topic))
            .unwrap_or(false)
    };
    std::thread::sleep(Duration::from_secs(3));
    assert!(!cleaned(), "the cleaner sleeps its ten minutes");

    let out = std::process::Command::new(gregor_e2e::broker::gregor_bin())
        .args([
            "configs",
            "alter",
            "--bootstrap-server",
            &broker.bootstrap(),
        ])
        .args(["--broker-defaults", "--set", "log.cleaner.backoff.ms=200"])
        .args(["--set", "log.cleaner.threads=2"])
        .output()
        .expect("gregor configs alter");
    assert!(out.status.success(), "{out:?}");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !(cleaned() && dir_size(&part_dir) < before / 3) {
        assert!(
            Instant::now() < deadline,
            "not compacted after the change: {} of {before} bytes\n{}",
            dir_size(&part_dir),
            broker.logs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let logs = broker.logs();
    assert!(
        logs.contains("log cleaner settings changed"),
        "the cleaner was restarted:\n{logs}"
    );
    let records = read(&broker, &topic);
    let keys: std::collections::BTreeSet<&String> = records
        .iter()
        .filter(|r| r.1.starts_with("key-"))
        .map(|r| &r.1)
        .collect();
    assert_eq!(keys.len(), 30, "every key kept");
    assert!(
        records.len() < 30 * 20 / 4,
        "{} records left of {}",
        records.len(),
        30 * 20 + 40
    );
}
