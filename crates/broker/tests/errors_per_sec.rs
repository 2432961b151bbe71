//! Kafka's `kafka.network:type=RequestMetrics,name=ErrorsPerSec,request=X,error=Y`, as
//! `kafka_network_requestmetrics_errors_total{request="X",error="Y"}` on `/metrics`: every
//! error code of every response counted the way Kafka's `errorCounts` counts it, NONE included.
//!
//! Request frames go through the real router of a test broker and the page is rendered as a
//! scrape renders it. This file is its own test process, so the process-wide recorder counts
//! these requests alone and the values are exact.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::{BufMut, Bytes, BytesMut};
use gregor_broker::stats::{install, render, Source};
use gregor_broker::{BrokerConfig, Reply, SystemClock};
use gregor_protocol::messages::create_topics_request::CreatableTopic;
use gregor_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use gregor_protocol::messages::metadata_request::MetadataRequestTopic;
use gregor_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use gregor_protocol::messages::{
    ApiKey, BrokerId, CreateTopicsRequest, FetchRequest, MetadataRequest, ProduceRequest,
    RequestHeader, TopicName,
};
use gregor_protocol::protocol::{Encodable, HeaderVersion, StrBytes};

const TOPIC: &str = "errors-per-sec";

/// A request frame (no size prefix), as a connection hands it to the router.
fn frame<R: Encodable + HeaderVersion>(api: ApiKey, version: i16, req: &R) -> Bytes {
    let mut b = BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(api as i16)
        .with_request_api_version(version)
        .with_correlation_id(7)
        .with_client_id(Some(StrBytes::from_static_str("errors-per-sec-test")))
        .encode(&mut b, R::header_version(version))
        .expect("header encodes");
    req.encode(&mut b, version).expect("request encodes");
    b.freeze()
}

/// Routes `frame` and waits for its answer, as the connection writer does.
async fn send(broker: &Arc<gregor_broker::Broker>, frame: Bytes) {
    let peer: SocketAddr = "127.0.0.1:40000".parse().expect("address");
    match gregor_broker::dispatch(broker, peer, frame).expect("routed") {
        Reply::None | Reply::Ready(_) => {}
        Reply::Pending(f) => {
            f.await.expect("answered");
        }
        Reply::PendingChunks(f) => {
            f.await.expect("answered");
        }
    }
}

fn records(n: usize) -> Bytes {
    let values: Vec<Vec<u8>> = (0..n).map(|i| vec![b'v'; 10 + i]).collect();
    let simple: Vec<_> = values.iter().map(|v| (None, Some(&v[..]))).collect();
    let mut out = BytesMut::new();
    out.put_slice(&gregor_protocol::batch::encode_simple_batch(1, &simple));
    out.freeze()
}

fn name(topic: &str) -> TopicName {
    TopicName(StrBytes::from_string(topic.to_string()))
}

#[tokio::test]
async fn every_response_s_error_codes_are_counted_as_kafka_counts_them() {
    let handle = install();
    let dir = tempfile::tempdir().expect("tempdir");
    let b = gregor_broker::broker::test_broker_with_clock(
        BrokerConfig {
            data_dir: dir.path().to_path_buf(),
            ..Default::default()
        },
        Arc::new(SystemClock),
    );

    // CreateTopics: one result, NONE; then the same topic again: TOPIC_ALREADY_EXISTS.
    let create = CreateTopicsRequest::default()
        .with_timeout_ms(5_000)
        .with_topics(vec![CreatableTopic::default()
            .with_name(name(TOPIC))
            .with_num_partitions(2)
            .with_replication_factor(1)]);
    send(&b, frame(ApiKey::CreateTopics, 7, &create)).await;
    send(&b, frame(ApiKey::CreateTopics, 7, &create)).await;

    // Produce: partition 0 takes the records, partition 5 does not exist, nor does the
    // other topic: NONE once, UNKNOWN_TOPIC_OR_PARTITION twice.
    let produce = ProduceRequest::default()
        .with_acks(1)
        .with_timeout_ms(5_000)
        .with_topic_data(vec![
            TopicProduceData::default()
                .with_name(name(TOPIC))
                .with_partition_data(vec![
                    PartitionProduceData::default()
                        .with_index(0)
                        .with_records(Some(records(3))),
                    PartitionProduceData::default()
                        .with_index(5)
                        .with_records(Some(records(1))),
                ]),
            TopicProduceData::default()
                .with_name(name("errors-per-sec-missing"))
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(0)
                    .with_records(Some(records(1)))]),
        ]);
    send(&b, frame(ApiKey::Produce, 9, &produce)).await;

    // Fetch (a consumer's): the top-level code and partition 0's are NONE, partition 9's
    // UNKNOWN_TOPIC_OR_PARTITION. Counted under `Fetch`, not `FetchConsumer`.
    let fetch = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_bytes(1 << 20)
        .with_topics(vec![FetchTopic::default()
            .with_topic(name(TOPIC))
            .with_partitions(vec![
                FetchPartition::default()
                    .with_partition(0)
                    .with_fetch_offset(0)
                    .with_partition_max_bytes(1 << 20),
                FetchPartition::default()
                    .with_partition(9)
                    .with_fetch_offset(0)
                    .with_partition_max_bytes(1 << 20),
            ])]);
    send(&b, frame(ApiKey::Fetch, 11, &fetch)).await;

    // Metadata of the topic: the topic's code and each of its two partitions' codes.
    let metadata = MetadataRequest::default().with_topics(Some(vec![
        MetadataRequestTopic::default().with_name(Some(name(TOPIC))),
    ]));
    send(&b, frame(ApiKey::Metadata, 12, &metadata)).await;

    let source = Source {
        node_id: 1,
        broker_role: true,
        ..Source::default()
    };
    let _ = source.broker.set(Arc::clone(&b));
    let page = render(&handle, &source).await;
    let mut counted: Vec<&str> = page
        .lines()
        .filter(|l| l.starts_with("kafka_network_requestmetrics_errors_total{"))
        .collect();
    counted.sort_unstable();
    assert_eq!(
        counted,
        vec![
            "kafka_network_requestmetrics_errors_total{request=\"CreateTopics\",error=\"NONE\"} 1",
            "kafka_network_requestmetrics_errors_total{request=\"CreateTopics\",error=\"TOPIC_ALREADY_EXISTS\"} 1",
            "kafka_network_requestmetrics_errors_total{request=\"Fetch\",error=\"NONE\"} 2",
            "kafka_network_requestmetrics_errors_total{request=\"Fetch\",error=\"UNKNOWN_TOPIC_OR_PARTITION\"} 1",
            "kafka_network_requestmetrics_errors_total{request=\"Metadata\",error=\"NONE\"} 3",
            "kafka_network_requestmetrics_errors_total{request=\"Produce\",error=\"NONE\"} 1",
            "kafka_network_requestmetrics_errors_total{request=\"Produce\",error=\"UNKNOWN_TOPIC_OR_PARTITION\"} 2",
        ],
        "{page}"
    );
    assert!(page.contains("# TYPE kafka_network_requestmetrics_errors_total counter"));
}
