//! Interop with confluent-kafka (Python, on the librdkafka it bundles): admin, keyed acks=all
//! produce and explicit-assignment consume, every compression codec, and a topic's own
//! `compression.type`.

use gregor_e2e::broker::gregor_cli_ok;
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
    gregor_cli_ok(
        &bootstrap,
        &[
            "configs",
            "alter",
            "--topic",
            &topic,
            "--set",
            "compression.type=uncompressed",
        ],
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

/// The value `key` of topic `topic` as the broker describes it.
fn topic_config(conn: &mut RawConn, topic: &str, key: &str) -> Option<String> {
    use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
    use kafka_protocol::messages::DescribeConfigsRequest;
    use kafka_protocol::protocol::StrBytes;
    let req =
        DescribeConfigsRequest::default().with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(StrBytes::from_string(topic.to_string()))
            .with_configuration_keys(Some(vec![StrBytes::from_string(key.to_string())]))]);
    let resp = conn.request(4, &req).expect("DescribeConfigs");
    resp.results[0]
        .configs
        .first()
        .and_then(|c| c.value.as_deref().map(str::to_string))
}

/// KIP-390: a topic's `compression.<codec>.level` is the level the broker compresses with.
/// librdkafka's lz4 batches land as zstd at level 19 on one topic and every record reads back
/// through librdkafka; on another the same uncompressed batch is stored gzip'd at level 1, then,
/// after `gregor configs alter` sets `compression.gzip.level=9` (no restart), smaller.
#[test]
fn a_topic_compression_level_is_the_level_batches_are_stored_at() {
    let broker = Broker::start();
    let bootstrap = broker.addr().to_string();
    let zstd_topic = unique_topic("zstd19");
    gregor_e2e::cluster_client::create_topic(
        &bootstrap,
        &zstd_topic,
        1,
        1,
        &["compression.type=zstd", "compression.zstd.level=19"],
    );
    let delivered = CONFLUENT.produce(&broker, &zstd_topic, 300, 1000, "lz4");
    check::assert_same_records(300, &delivered, &CONFLUENT.consume(&broker, &zstd_topic));
    let mut conn = RawConn::connect(broker.addr());
    let codecs = conn.fetch_batch_codecs(&zstd_topic, 0, 0);
    assert!(
        !codecs.is_empty() && codecs.iter().all(|&c| c == 4),
        "stored as zstd: {codecs:?}"
    );

    let gzip_topic = unique_topic("gzip-level");
    gregor_e2e::cluster_client::create_topic(
        &bootstrap,
        &gzip_topic,
        1,
        1,
        &["compression.type=gzip", "compression.gzip.level=1"],
    );
    // Text that compresses, but not to nothing.
    let words = ["broker", "offset", "leader", "replica", "segment", "fetch"];
    let values: Vec<String> = (0..200u64)
        .map(|i| {
            (0..60u64)
                .map(|j| {
                    let x = (i * 7919 + j * 104_729) % 9973;
                    format!("{}{} ", words[(x % 6) as usize], x % 97)
                })
                .collect()
        })
        .collect();
    let records: Vec<(String, &str)> = values
        .iter()
        .enumerate()
        .map(|(i, v)| (format!("k{i}"), v.as_str()))
        .collect();
    let pairs: Vec<(&str, &str)> = records.iter().map(|(k, v)| (k.as_str(), *v)).collect();
    let batch = gregor_e2e::raw::simple_batch(&pairs);
    let (code, first) = conn.produce(&gzip_topic, 0, batch.clone());
    assert_eq!(code, 0, "produce at level 1");
    gregor_cli_ok(
        &bootstrap,
        &[
            "configs",
            "alter",
            "--topic",
            &gzip_topic,
            "--set",
            "compression.gzip.level=9",
        ],
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while topic_config(&mut conn, &gzip_topic, "compression.gzip.level").as_deref() != Some("9") {
        assert!(
            std::time::Instant::now() < deadline,
            "the level was never applied"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let (code, second) = conn.produce(&gzip_topic, 0, batch);
    assert_eq!(code, 0, "produce at level 9");
    let mut stored_size = |offset: i64| {
        let raw = conn.fetch_raw(&gzip_topic, 0, offset);
        let b = gregor_protocol::batch::batches(&raw)
            .next()
            .expect("a batch")
            .expect("whole");
        assert_eq!(b.attributes() & 7, 1, "stored as gzip");
        b.as_bytes().len()
    };
    let (at_1, at_9) = (stored_size(first), stored_size(second));
    assert!(
        at_9 < at_1,
        "level 9 stores {at_9} bytes, level 1 {at_1}: the level changed nothing"
    );
    // Both read back through librdkafka, record for record.
    let consumed = CONFLUENT.consume(&broker, &gzip_topic);
    assert_eq!(consumed.len(), 400);
    for r in &consumed {
        let i = (r.offset - if r.offset >= second { second } else { first }) as usize;
        assert_eq!(
            r.key.as_deref(),
            Some(records[i].0.as_str()),
            "offset {}",
            r.offset
        );
        assert_eq!(
            r.value.as_deref(),
            Some(records[i].1),
            "offset {}",
            r.offset
        );
    }
}
