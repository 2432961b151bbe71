//! [`PyClient`]: one of the Python client scripts (`confluent_client.py`, `kafka_python_client.py`),
//! which share one command line, and the scenarios every client must pass.

use std::time::Duration;

use serde_json::Value;

use crate::check::{self, Rec};
use crate::raw::RawConn;
use crate::{run_python_json, unique_topic, Broker};

/// How long one client command may run.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(150);

/// A Python Kafka client, driven through its script in `tests/e2e/python/`.
#[derive(Debug, Clone, Copy)]
pub struct PyClient {
    /// The script's file name.
    script: &'static str,
}

/// confluent-kafka, on the librdkafka it bundles.
pub const CONFLUENT: PyClient = PyClient {
    script: "confluent_client.py",
};
/// kafka-python, a pure-Python implementation of the protocol.
pub const KAFKA_PYTHON: PyClient = PyClient {
    script: "kafka_python_client.py",
};

impl PyClient {
    fn run(&self, broker: &Broker, args: &[&str]) -> Value {
        let bootstrap = broker.bootstrap();
        let mut all = vec![bootstrap.as_str()];
        all.extend_from_slice(args);
        run_python_json(self.script, &all, CLIENT_TIMEOUT)
    }

    /// Creates a topic with the client's admin API (fails the test on error).
    pub fn create_topic(&self, broker: &Broker, topic: &str, partitions: i32) {
        let p = partitions.to_string();
        self.run(broker, &["create-topic", topic, &p]);
    }

    /// Lists topics with the client's admin API: `{"topics": {name: {"partitions": [..]}}}`.
    pub fn list_topics(&self, broker: &Broker) -> Value {
        self.run(broker, &["list-topics"])
    }

    /// Produces `count` keyed records with acks=all; returns the acknowledged records.
    pub fn produce(
        &self,
        broker: &Broker,
        topic: &str,
        count: usize,
        size: usize,
        compression: &str,
    ) -> Vec<Rec> {
        let (count, size) = (count.to_string(), size.to_string());
        let doc = self.run(
            broker,
            &[
                "produce",
                topic,
                "--count",
                &count,
                "--size",
                &size,
                "--compression",
                compression,
            ],
        );
        check::records(&doc, "delivered")
    }

    /// Reads every partition of `topic` from the beginning up to its high watermark.
    pub fn consume(&self, broker: &Broker, topic: &str) -> Vec<Rec> {
        let doc = self.run(broker, &["consume", topic]);
        check::records(&doc, "records")
    }
}

/// Admin: create a 3-partition topic, then list topics and find it with its 3 partitions.
pub fn scenario_admin(client: PyClient) {
    let broker = Broker::start();
    let topic = unique_topic("admin");
    client.create_topic(&broker, &topic, 3);
    let listed = client.list_topics(&broker);
    let partitions = listed
        .pointer(&format!("/topics/{topic}/partitions"))
        .unwrap_or_else(|| panic!("{topic} not listed: {listed}"));
    assert_eq!(
        partitions,
        &serde_json::json!([0, 1, 2]),
        "partitions listed"
    );
}

/// Keyed produce of `count` records with acks=all into 3 partitions, then read all back:
/// same offsets, keys and values, per-partition order, keys on consistent partitions.
pub fn scenario_keyed_roundtrip(client: PyClient, count: usize) {
    let broker = Broker::start();
    let topic = unique_topic("keyed");
    client.create_topic(&broker, &topic, 3);
    let delivered = client.produce(&broker, &topic, count, 100, "none");
    check::assert_keys_stick_to_partitions(&delivered);
    assert_eq!(
        check::partitions_used(&delivered),
        3,
        "50 keys should spread over all 3 partitions"
    );
    let consumed = client.consume(&broker, &topic);
    check::assert_same_records(count, &delivered, &consumed);
}

/// Produce with `compression.type=codec`, read back intact.
pub fn scenario_compression(client: PyClient, codec: &str) {
    let broker = Broker::start();
    let topic = unique_topic(&format!("codec-{codec}"));
    client.create_topic(&broker, &topic, 2);
    // 1 KB values of repetitive text: batches that really shrink when compressed.
    let delivered = client.produce(&broker, &topic, 600, 1000, codec);
    let consumed = client.consume(&broker, &topic);
    check::assert_same_records(600, &delivered, &consumed);
    // The broker keeps the producer's compressed batches as they are (compression.type=producer).
    let want = match codec {
        "gzip" => 1,
        "snappy" => 2,
        "lz4" => 3,
        "zstd" => 4,
        other => panic!("unknown codec {other}"),
    };
    let mut conn = RawConn::connect(broker.addr());
    for partition in 0..2 {
        let codecs = conn.fetch_batch_codecs(&topic, partition, 0);
        assert!(
            !codecs.is_empty(),
            "partition {partition}: no batch fetched"
        );
        assert!(
            codecs.iter().all(|&c| c == want),
            "partition {partition}: batch codecs {codecs:?}, expected all {want} ({codec})"
        );
    }
}
