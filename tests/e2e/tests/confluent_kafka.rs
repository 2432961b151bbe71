//! Interop with confluent-kafka (Python, on the librdkafka it bundles): admin, keyed acks=all
//! produce and explicit-assignment consume, every compression codec, and a topic's own
//! `compression.type`.

use gregor_e2e::broker::gregor_bin;
use gregor_e2e::client::{self, CONFLUENT};
use gregor_e2e::raw::RawConn;
use gregor_e2e::{check, unique_topic, Broker};

#[test]
fn admin_create_and_list_topics() {
    client::scenario_admin(CONFLUENT);
}

#[test]
fn keyed_produce_acks_all_then_consume_in_order() {
    client::scenario_keyed_roundtrip(CONFLUENT, 2000);
}

#[test]
fn compression_gzip() {
    client::scenario_compression(CONFLUENT, "gzip");
}

#[test]
fn compression_snappy() {
    client::scenario_compression(CONFLUENT, "snappy");
}

#[test]
fn compression_lz4() {
    client::scenario_compression(CONFLUENT, "lz4");
}

#[test]
fn compression_zstd() {
    client::scenario_compression(CONFLUENT, "zstd");
}

/// A topic with its own `compression.type` stores what a producer sends in that codec: gzip
/// batches from librdkafka land as zstd, then, after `gregor configs alter` sets
/// `uncompressed` (no restart), as uncompressed batches. Every record reads back as delivered.
#[test]
fn topic_compression_type_recompresses_and_changes_at_run_time() {
    let broker = Broker::start();
    let bootstrap = broker.addr().to_string();
    let topic = unique_topic("recompress");
    gregor_e2e::cluster_client::create_topic(&bootstrap, &topic, 1, 1, &["compression.type=zstd"]);
    let first_delivered = CONFLUENT.produce(&broker, &topic, 300, 1000, "gzip");
    let second_start = first_delivered
        .iter()
        .map(|r| r.offset)
        .max()
        .expect("delivered")
        + 1;
    let out = std::process::Command::new(gregor_bin())
        .args(["configs", "alter", "--topic", &topic, "--set"])
        .arg("compression.type=uncompressed")
        .args(["--bootstrap-server", &bootstrap])
        .output()
        .expect("run gregor configs alter");
    assert!(
        out.status.success(),
        "gregor configs alter: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let second_delivered = CONFLUENT.produce(&broker, &topic, 300, 1000, "gzip");
    let (first_consumed, second_consumed): (Vec<_>, Vec<_>) = CONFLUENT
        .consume(&broker, &topic)
        .into_iter()
        .partition(|r| r.offset < second_start);
    check::assert_same_records(300, &first_delivered, &first_consumed);
    // The second run's records, by offset: exactly what was delivered.
    let by_offset = |recs: &[check::Rec]| -> Vec<(i64, Option<String>, Option<String>)> {
        let mut v: Vec<_> = recs
            .iter()
            .map(|r| (r.offset, r.key.clone(), r.value.clone()))
            .collect();
        v.sort();
        v
    };
    assert_eq!(second_delivered.len(), 300);
    assert_eq!(by_offset(&second_consumed), by_offset(&second_delivered));
    let mut conn = RawConn::connect(broker.addr());
    let first = conn.fetch_batch_codecs(&topic, 0, 0);
    let second = conn.fetch_batch_codecs(&topic, 0, second_start);
    assert_eq!(
        first.first(),
        Some(&4),
        "first batches stored as zstd: {first:?}"
    );
    assert!(
        !second.is_empty() && second.iter().all(|&c| c == 0),
        "after the change, batches stored uncompressed: {second:?}"
    );
}
