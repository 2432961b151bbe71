//! WriteTxnMarkers (key 27): a transaction coordinator asks the leaders of a transaction's
//! partitions to end it there, with a COMMIT or ABORT marker (Kafka's
//! `KafkaApis.handleWriteTxnMarkersRequest`).
//!
//! ```text
//! for each marker, each partition:
//!   not hosted here ─► UNKNOWN_TOPIC_OR_PARTITION   not led here ─► NOT_LEADER_OR_FOLLOWER
//!   Partition::append_end_txn_marker (control batch, current leader epoch; producer state
//!     refuses INVALID_PRODUCER_EPOCH / TRANSACTION_COORDINATOR_FENCED)
//!   ─► wait as an acks=all produce: the high watermark passes the marker (and the fsync,
//!      under the default flush policy) ─► NONE, or REQUEST_TIMED_OUT after MARKER_TIMEOUT
//!   ─► on __consumer_offsets: complete_group_transaction (the group coordinator applies or
//!      drops the producer's pending transactional offset commits)
//! ```
//!
//! Versions 1 and 2, as Kafka 4.x serves (v0 went with KIP-896). v2 (KIP-1228) names each
//! marker's transaction version: a TV2 coordinator bumps the producer epoch before writing
//! the marker, so the leader then refuses a marker whose epoch is not newer than the
//! partition's while a transaction is open there (INVALID_PRODUCER_EPOCH); the same epoch with
//! no transaction open is a retried marker and is written, as Kafka 4.4 does. TV0/TV1 markers
//! (and every v1 request) may carry the same epoch. Only another broker's transaction
//! coordinator sends it; no client does. gregor's own coordinator writes TV0 markers.
//!
//! Authorization, as Kafka's: ALTER on the cluster (asked quietly) or CLUSTER_ACTION on it,
//! else every partition of the request is CLUSTER_AUTHORIZATION_FAILED and nothing is written.

use std::ops::RangeInclusive;
use std::sync::Arc;
use std::time::Duration;

use gregor_metadata::{AclOperation, ResourceType, CLUSTER_NAME};
use gregor_protocol::control::{ControlRecordType, EndTransactionMarker};
use gregor_protocol::error::ErrorCode;
use gregor_protocol::messages::write_txn_markers_response::{
    WritableTxnMarkerPartitionResult, WritableTxnMarkerResult, WritableTxnMarkerTopicResult,
};
use gregor_protocol::messages::{ApiKey, WriteTxnMarkersRequest, WriteTxnMarkersResponse};
use gregor_storage::TopicPartition;
use tracing::debug;

use crate::authorizer;
use crate::broker::Broker;
use crate::group_coordinator::OFFSETS_TOPIC;
use crate::purgatory::ProduceWait;
use crate::request::{encode, ProtocolError, Reply, RequestContext};

/// The API this module serves.
pub const KEY: ApiKey = ApiKey::WriteTxnMarkers;
/// The versions served (and advertised in ApiVersions): Kafka 4.x's.
pub const VERSIONS: RangeInclusive<i16> = 1..=2;

/// How long the markers may wait for the in-sync replicas: Kafka's default
/// `request.timeout.ms`, which bounds its marker appends.
pub const MARKER_TIMEOUT: Duration = Duration::from_secs(30);

/// Handles a WriteTxnMarkers request; the reply completes once every marker is replicated
/// (or failed, or timed out).
pub fn handle(
    broker: &Arc<Broker>,
    ctx: RequestContext,
    req: WriteTxnMarkersRequest,
) -> Result<Reply, ProtocolError> {
    if let Some(response) = unauthorized(broker, &ctx, &req) {
        return Ok(Reply::Ready(encode(&ctx, &response)?));
    }
    let broker = Arc::clone(broker);
    Ok(Reply::Pending(Box::pin(async move {
        let response = write_markers(&broker, req, MARKER_TIMEOUT).await;
        encode(&ctx, &response)
    })))
}

/// Kafka's check: ALTER on the cluster (quietly, its denial is no error) or CLUSTER_ACTION.
/// Denied: the answer, every partition CLUSTER_AUTHORIZATION_FAILED (Kafka's
/// `WriteTxnMarkersRequest.getErrorResponse`).
fn unauthorized(
    broker: &Broker,
    ctx: &RequestContext,
    req: &WriteTxnMarkersRequest,
) -> Option<WriteTxnMarkersResponse> {
    if authorizer::authorize_quietly(
        broker,
        ctx,
        AclOperation::Alter,
        ResourceType::Cluster,
        CLUSTER_NAME,
    ) || authorizer::authorize_cluster(broker, ctx, AclOperation::ClusterAction)
    {
        return None;
    }
    let code = ErrorCode::CLUSTER_AUTHORIZATION_FAILED.code();
    let markers = req
        .markers
        .iter()
        .map(|m| {
            let topics = m
                .topics
                .iter()
                .map(|t| {
                    WritableTxnMarkerTopicResult::default()
                        .with_name(t.name.clone())
                        .with_partitions(
                            t.partition_indexes
                                .iter()
                                .map(|&index| {
                                    WritableTxnMarkerPartitionResult::default()
                                        .with_partition_index(index)
                                        .with_error_code(code)
                                })
                                .collect(),
                        )
                })
                .collect();
            WritableTxnMarkerResult::default()
                .with_producer_id(m.producer_id)
                .with_topics(topics)
        })
        .collect();
    Some(WriteTxnMarkersResponse::default().with_markers(markers))
}

/// A marker written to one partition, waiting for the high watermark.
struct Written {
    /// Response position: marker, topic, partition.
    at: (usize, usize, usize),
    wait: ProduceWait,
    tp: TopicPartition,
    producer_id: i64,
    committed: bool,
}

/// Appends every marker to every partition named, then waits for them all at once (as one
/// acks=all produce) for at most `timeout`.
pub async fn write_markers(
    broker: &Arc<Broker>,
    req: WriteTxnMarkersRequest,
    timeout: Duration,
) -> WriteTxnMarkersResponse {
    let mut written: Vec<Written> = Vec::new();
    let mut markers = Vec::with_capacity(req.markers.len());
    for (mi, m) in req.markers.into_iter().enumerate() {
        let producer_id = m.producer_id.0;
        let marker = EndTransactionMarker {
            control_type: ControlRecordType::from_committed(m.transaction_result),
            coordinator_epoch: m.coordinator_epoch,
        };
        let mut topics = Vec::with_capacity(m.topics.len());
        for (ti, t) in m.topics.into_iter().enumerate() {
            let name = t.name.0.to_string();
            let topic = broker.replicas.topic(&name);
            let mut partitions = Vec::with_capacity(t.partition_indexes.len());
            for (pi, index) in t.partition_indexes.into_iter().enumerate() {
                let code = match topic.as_ref().and_then(|t| t.partition(index)) {
                    None if topic.as_ref().is_some_and(|t| t.has_partition(index)) => {
                        ErrorCode::NOT_LEADER_OR_FOLLOWER
                    }
                    None => ErrorCode::UNKNOWN_TOPIC_OR_PARTITION,
                    Some(part) => {
                        match part.append_end_txn_marker_of_version(
                            producer_id,
                            m.producer_epoch,
                            marker,
                            m.transaction_version,
                        ) {
                            Ok(append) => {
                                written.push(Written {
                                    at: (mi, ti, pi),
                                    wait: ProduceWait {
                                        partition: Arc::clone(part),
                                        required_offset: append.info.last_offset + 1,
                                        leader_epoch: append.leader_epoch,
                                        replication: true,
                                        // The topic's policy: gregor's fsync before the
                                        // answer, or Kafka's at `flush.messages`.
                                        durable: part.flushes_before_acks()
                                            || part.flush_due_by_count(),
                                    },
                                    tp: part.tp.clone(),
                                    producer_id,
                                    committed: m.transaction_result,
                                });
                                ErrorCode::NONE
                            }
                            Err(code) => {
                                debug!(topic = %name, partition = index, producer_id,
                                    error = %code, "transaction marker refused");
                                code
                            }
                        }
                    }
                };
                partitions.push(
                    WritableTxnMarkerPartitionResult::default()
                        .with_partition_index(index)
                        .with_error_code(code.code()),
                );
            }
            topics.push(
                WritableTxnMarkerTopicResult::default()
                    .with_name(super::topic_name(&name))
                    .with_partitions(partitions),
            );
        }
        markers.push(
            WritableTxnMarkerResult::default()
                .with_producer_id(m.producer_id)
                .with_topics(topics),
        );
    }
    let mut response = WriteTxnMarkersResponse::default().with_markers(markers);
    if written.is_empty() {
        return response;
    }
    let waits = written.iter().map(|w| w.wait.clone()).collect();
    let results = broker
        .replicas
        .purgatory()
        .delay_produce(waits, timeout)
        .await;
    for (w, result) in written.iter().zip(results) {
        match result {
            Ok(()) => {
                if w.tp.topic == OFFSETS_TOPIC {
                    complete_group_transaction(broker, &w.tp, w.producer_id, w.committed);
                }
            }
            Err(failure) => {
                let (mi, ti, pi) = w.at;
                if let Some(p) = response.markers[mi].topics[ti].partitions.get_mut(pi) {
                    p.error_code = failure.code.code();
                }
            }
        }
    }
    response
}

/// A marker is replicated on a `__consumer_offsets` partition: the group coordinator must now
/// apply (`committed`) or drop the offsets `producer_id` committed in its transaction
/// (TxnOffsetCommit) on that partition (Kafka's `GroupCoordinator.onTransactionCompleted`).
pub fn complete_group_transaction(
    broker: &Broker,
    tp: &TopicPartition,
    producer_id: i64,
    committed: bool,
) {
    debug!(topic = %tp.topic, partition = tp.partition, producer_id, committed,
        "transaction ended on an offsets partition");
    broker
        .groups
        .complete_txn_offsets(tp.partition, producer_id, committed);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::partition::tests::txn_batch;
    use gregor_protocol::messages::write_txn_markers_request::{
        WritableTxnMarker, WritableTxnMarkerTopic,
    };
    use gregor_protocol::messages::ProducerId;

    fn broker(dir: &std::path::Path) -> Arc<Broker> {
        let mut config = crate::config::BrokerConfig {
            data_dir: dir.to_path_buf(),
            ..Default::default()
        };
        config.group.offsets_topic_num_partitions = 1;
        crate::broker::test_broker(config)
    }

    fn request(
        pid: i64,
        epoch: i16,
        commit: bool,
        coordinator_epoch: i32,
        partitions: &[(&'static str, i32)],
    ) -> WriteTxnMarkersRequest {
        let topics = partitions
            .iter()
            .map(|&(t, p)| {
                WritableTxnMarkerTopic::default()
                    .with_name(super::super::topic_name(t))
                    .with_partition_indexes(vec![p])
            })
            .collect();
        WriteTxnMarkersRequest::default().with_markers(vec![WritableTxnMarker::default()
            .with_producer_id(ProducerId(pid))
            .with_producer_epoch(epoch)
            .with_transaction_result(commit)
            .with_coordinator_epoch(coordinator_epoch)
            .with_topics(topics)])
    }

    /// Topic `t` with two partitions, each holding an open transaction of producer 7 (epoch 0)
    /// of `records[p]` records.
    fn open_transactions(b: &Broker, records: [usize; 2]) -> Arc<crate::replica_manager::Topic> {
        let topic = b
            .replicas
            .create_topic("t", 2, 1, Default::default())
            .expect("create");
        for (p, n) in (0..).zip(records) {
            topic.partitions[&p]
                .append(&txn_batch(7, 0, n), &topic.settings)
                .expect("txn data");
        }
        topic
    }

    fn codes(resp: &WriteTxnMarkersResponse) -> Vec<i16> {
        resp.markers
            .iter()
            .flat_map(|m| m.topics.iter())
            .flat_map(|t| t.partitions.iter())
            .map(|p| p.error_code)
            .collect()
    }

    #[tokio::test]
    async fn markers_end_transactions_and_move_the_last_stable_offset() {
        let dir = tempfile::tempdir().expect("tempdir");
        let b = broker(dir.path());
        let topic = open_transactions(&b, [3, 2]);
        let (p0, p1) = (&topic.partitions[&0], &topic.partitions[&1]);
        assert_eq!(p0.last_stable_offset(), Ok(0));
        let resp = write_markers(
            &b,
            request(7, 0, true, 0, &[("t", 0), ("t", 1)]),
            MARKER_TIMEOUT,
        )
        .await;
        assert_eq!(codes(&resp), vec![0, 0]);
        assert_eq!(resp.markers[0].producer_id, ProducerId(7));
        assert_eq!((p0.log_end_offset(), p0.last_stable_offset()), (4, Ok(4)));
        assert_eq!((p1.log_end_offset(), p1.last_stable_offset()), (3, Ok(3)));
        let read = p0
            .fetch_read(
                3,
                1 << 20,
                true,
                crate::partition::FetchIsolation::HighWatermark,
            )
            .expect("read");
        let bytes = read
            .info
            .slice
            .expect("marker")
            .read_to_vec()
            .expect("bytes");
        let batch = gregor_protocol::batch::BatchView::parse(&bytes).expect("batch");
        assert!(batch.is_control() && batch.is_transactional());
        assert_eq!(batch.producer_id(), 7);
        assert_eq!(
            gregor_protocol::control::parse_end_txn_marker(&batch),
            Some(EndTransactionMarker {
                control_type: ControlRecordType::Commit,
                coordinator_epoch: 0
            })
        );
        // A marker on the offsets topic reaches the group coordinator's call site.
        let resp = write_markers(
            &b,
            request(8, 0, false, 0, &[(OFFSETS_TOPIC, 0)]),
            MARKER_TIMEOUT,
        )
        .await;
        assert_eq!(codes(&resp), vec![0]);
    }

    #[tokio::test]
    async fn fenced_coordinators_and_producers_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let b = broker(dir.path());
        let topic = b
            .replicas
            .create_topic("t", 1, 1, Default::default())
            .expect("create");
        let p0 = &topic.partitions[&0];
        p0.append(&txn_batch(7, 0, 1), &topic.settings)
            .expect("txn data");
        let ok = write_markers(&b, request(7, 2, false, 5, &[("t", 0)]), MARKER_TIMEOUT).await;
        assert_eq!(codes(&ok), vec![0]);
        let old_coordinator =
            write_markers(&b, request(7, 2, false, 4, &[("t", 0)]), MARKER_TIMEOUT).await;
        assert_eq!(
            codes(&old_coordinator),
            vec![ErrorCode::TRANSACTION_COORDINATOR_FENCED.code()]
        );
        let old_producer =
            write_markers(&b, request(7, 1, false, 5, &[("t", 0)]), MARKER_TIMEOUT).await;
        assert_eq!(
            codes(&old_producer),
            vec![ErrorCode::INVALID_PRODUCER_EPOCH.code()]
        );
        assert_eq!(p0.log_end_offset(), 2, "refused markers are not written");
    }

    /// KIP-1228: a TV2 marker (WriteTxnMarkers v2) must carry a newer producer epoch than the
    /// partition's (the coordinator bumped it); the same epoch while the transaction is open is
    /// a stale marker, refused as Kafka 4.4's ProducerAppendInfo does, and once it is ended a
    /// retry of its marker. A TV0/TV1 marker with the same epoch is written.
    #[tokio::test]
    async fn a_transaction_version_2_marker_needs_a_newer_epoch() {
        use gregor_protocol::protocol::{Decodable, Encodable};
        let dir = tempfile::tempdir().expect("tempdir");
        let b = broker(dir.path());
        // Producer 7's data at epoch 0.
        let topic = open_transactions(&b, [1, 1]);
        let (p0, p1) = (&topic.partitions[&0], &topic.partitions[&1]);
        let tv2 = |epoch: i16, partition: i32| {
            let mut req = request(7, epoch, true, 0, &[("t", partition)]);
            req.markers[0].transaction_version = 2;
            // As a coordinator sends it: through the v2 encoding.
            let mut buf = bytes::BytesMut::new();
            req.encode(&mut buf, 2).expect("encode v2");
            WriteTxnMarkersRequest::decode(&mut buf.freeze(), 2).expect("decode v2")
        };
        assert_eq!(tv2(0, 0).markers[0].transaction_version, 2);
        let same = write_markers(&b, tv2(0, 0), MARKER_TIMEOUT).await;
        assert_eq!(codes(&same), vec![ErrorCode::INVALID_PRODUCER_EPOCH.code()]);
        assert_eq!(p0.log_end_offset(), 1, "the stale marker is not written");
        let bumped = write_markers(&b, tv2(1, 0), MARKER_TIMEOUT).await;
        assert_eq!(codes(&bumped), vec![0]);
        assert_eq!(p0.last_stable_offset(), Ok(2));
        // The coordinator retrying that marker: written again, nothing open to end.
        let retry = write_markers(&b, tv2(1, 0), MARKER_TIMEOUT).await;
        assert_eq!(codes(&retry), vec![0]);
        assert_eq!(p0.log_end_offset(), 3);
        // An older epoch is refused whatever the version.
        let older = write_markers(&b, tv2(0, 0), MARKER_TIMEOUT).await;
        assert_eq!(
            codes(&older),
            vec![ErrorCode::INVALID_PRODUCER_EPOCH.code()]
        );
        // A legacy marker (v1, or v2 with TV0/TV1) may carry the producer's own epoch.
        let legacy = write_markers(&b, request(7, 0, true, 0, &[("t", 1)]), MARKER_TIMEOUT).await;
        assert_eq!(codes(&legacy), vec![0]);
        assert_eq!(p1.last_stable_offset(), Ok(2));
    }

    #[tokio::test]
    async fn only_the_leader_writes_markers() {
        let dir = tempfile::tempdir().expect("tempdir");
        let b = broker(dir.path());
        let topic = b
            .replicas
            .create_topic("t", 1, 1, Default::default())
            .expect("create");
        let part = &topic.partitions[&0];
        crate::partition::tests::with_leader_2(part, 3, 3);
        let resp = write_markers(
            &b,
            request(7, 0, true, 0, &[("t", 0), ("nope", 0)]),
            MARKER_TIMEOUT,
        )
        .await;
        assert_eq!(
            codes(&resp),
            vec![
                ErrorCode::NOT_LEADER_OR_FOLLOWER.code(),
                ErrorCode::UNKNOWN_TOPIC_OR_PARTITION.code()
            ]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_marker_the_isr_does_not_replicate_times_out() {
        let dir = tempfile::tempdir().expect("tempdir");
        let b = broker(dir.path());
        let topic = b
            .replicas
            .create_topic("t", 1, 1, Default::default())
            .expect("create");
        let part = &topic.partitions[&0];
        crate::partition::tests::with_follower(part, vec![1, 2]);
        let resp = write_markers(
            &b,
            request(7, 0, true, 0, &[("t", 0)]),
            Duration::from_secs(1),
        )
        .await;
        assert_eq!(codes(&resp), vec![ErrorCode::REQUEST_TIMED_OUT.code()]);
        assert_eq!(part.log_end_offset(), 1, "written, not yet replicated");
        assert_eq!(part.high_watermark(), 0);
    }

    /// ALTER or CLUSTER_ACTION on the cluster, else CLUSTER_AUTHORIZATION_FAILED for every
    /// partition and no marker written.
    #[tokio::test]
    async fn markers_need_alter_or_cluster_action_on_the_cluster() {
        use crate::authorizer::test_support::{allow_cluster, ctx_of, secured_broker_with};
        let dir = tempfile::tempdir().expect("tempdir");
        let b = secured_broker_with(dir.path(), |c| c.group.offsets_topic_num_partitions = 1);
        let topic = open_transactions(&b, [1, 1]);
        let write = |user: &str, partition: i32| {
            let reply = handle(
                &b,
                ctx_of(user, KEY, 1),
                request(7, 0, true, 0, &[("t", partition)]),
            )
            .expect("handled");
            async move { codes(&crate::request::decode_reply(reply, 1).await) }
        };
        assert_eq!(
            write("alice", 0).await,
            vec![ErrorCode::CLUSTER_AUTHORIZATION_FAILED.code()]
        );
        assert_eq!(topic.partitions[&0].log_end_offset(), 1, "nothing written");
        allow_cluster(&b, "User:alice", AclOperation::ClusterAction);
        allow_cluster(&b, "User:bob", AclOperation::Alter);
        assert_eq!(write("alice", 0).await, vec![0]);
        assert_eq!(write("bob", 1).await, vec![0]);
        assert_eq!(topic.partitions[&1].log_end_offset(), 2);
    }
}
