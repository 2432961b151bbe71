//! The transaction coordinator's runtime and its handlers, on a test broker with a manual clock:
//! requests go through the router (so versions, decoding and error mapping are covered); the
//! markers go to a fake partition leader that answers WriteTxnMarkers.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use gregor_controller::protocol::CreateTopicsRequest;
use gregor_controller::ControllerRequest;
use gregor_protocol::messages::add_partitions_to_txn_request::{
    AddPartitionsToTxnTopic, AddPartitionsToTxnTransaction,
};
use gregor_protocol::messages::write_txn_markers_response::{
    WritableTxnMarkerPartitionResult, WritableTxnMarkerResult, WritableTxnMarkerTopicResult,
};
use gregor_protocol::messages::{
    AddOffsetsToTxnRequest, AddPartitionsToTxnRequest, AddPartitionsToTxnResponse, ApiKey,
    DescribeTransactionsRequest, EndTxnRequest, FindCoordinatorRequest, GroupId,
    InitProducerIdRequest, ListTransactionsRequest, ProducerId, RequestHeader, ResponseHeader,
    TransactionalId, WriteTxnMarkersRequest, WriteTxnMarkersResponse,
};
use gregor_protocol::protocol::{Decodable, Encodable, Request, StrBytes};
use gregor_txn::code;

use super::*;
use crate::broker::{test_broker_with_clock, Broker};
use crate::clock::ManualClock;
use crate::config::Voter;
use crate::handlers::{str_bytes, topic_name};
use crate::request::Reply;

const TOPIC: &str = "t";

/// Sends `req` at `version` through the router and decodes the answer.
pub(crate) async fn call<R: Request>(broker: &Arc<Broker>, version: i16, req: &R) -> R::Response {
    let api = ApiKey::try_from(R::KEY).expect("known api");
    let header = RequestHeader::default()
        .with_request_api_key(R::KEY)
        .with_request_api_version(version)
        .with_correlation_id(9)
        .with_client_id(Some(StrBytes::from_static_str("test")));
    let mut buf = BytesMut::new();
    header
        .encode(&mut buf, api.request_header_version(version))
        .expect("header");
    req.encode(&mut buf, version).expect("body");
    let peer = std::net::SocketAddr::from(([127, 0, 0, 1], 1));
    let reply = crate::router::dispatch(broker, peer, buf.freeze()).expect("dispatch");
    let bytes = match reply {
        Reply::Ready(b) => b,
        Reply::Pending(f) => f.await.expect("encode"),
        _ => panic!("unexpected reply kind"),
    };
    let mut body = bytes.slice(4..);
    ResponseHeader::decode(&mut body, api.response_header_version(version)).expect("header");
    R::Response::decode(&mut body, version).expect("response")
}

fn tid(s: &str) -> TransactionalId {
    TransactionalId(str_bytes(s))
}

/// A fake partition leader's record of the WriteTxnMarkers it received, and how it answers.
#[derive(Default)]
struct FakeLeader {
    seen: Mutex<Vec<WriteTxnMarkersRequest>>,
    /// Answer this many requests NOT_LEADER_OR_FOLLOWER for every partition.
    fail_next: std::sync::atomic::AtomicU32,
    /// Answer this topic's partitions NOT_LEADER_OR_FOLLOWER, always.
    refuse_topic: Mutex<Option<String>>,
    /// Wait this long before answering WriteTxnMarkers.
    delay_ms: std::sync::atomic::AtomicU64,
}

type Seen = Arc<FakeLeader>;

impl FakeLeader {
    fn requests(&self) -> std::sync::MutexGuard<'_, Vec<WriteTxnMarkersRequest>> {
        self.seen.lock().expect("lock")
    }

    fn error_for(&self, topic: &str, failing: bool) -> i16 {
        let refused = self.refuse_topic.lock().expect("lock").as_deref() == Some(topic);
        if failing || refused {
            ErrorCode::NOT_LEADER_OR_FOLLOWER.code()
        } else {
            0
        }
    }
}

/// A fake partition leader: answers ApiVersions (WriteTxnMarkers v1) and WriteTxnMarkers (as
/// [`FakeLeader`] says), and records the markers.
async fn fake_marker_leader() -> (u16, Seen) {
    let seen: Seen = Arc::default();
    let s = Arc::clone(&seen);
    let port = crate::fake_node::start(
        vec![(ApiKey::WriteTxnMarkers, 1, 1)],
        move |api, version, mut b| {
            let seen = Arc::clone(&s);
            async move {
                if api != ApiKey::WriteTxnMarkers {
                    return None;
                }
                let mut out = BytesMut::new();
                let req = WriteTxnMarkersRequest::decode(&mut b, version).expect("decode");
                let delay = seen.delay_ms.load(std::sync::atomic::Ordering::Acquire);
                tokio::time::sleep(Duration::from_millis(delay)).await;
                let failing = seen
                    .fail_next
                    .fetch_update(
                        std::sync::atomic::Ordering::AcqRel,
                        std::sync::atomic::Ordering::Acquire,
                        |n| n.checked_sub(1),
                    )
                    .is_ok();
                let resp = WriteTxnMarkersResponse::default().with_markers(
                    req.markers
                        .iter()
                        .map(|m| {
                            WritableTxnMarkerResult::default()
                                .with_producer_id(m.producer_id)
                                .with_topics(
                                    m.topics
                                        .iter()
                                        .map(|t| {
                                            WritableTxnMarkerTopicResult::default()
                                                .with_name(t.name.clone())
                                                .with_partitions(
                                                    t.partition_indexes
                                                        .iter()
                                                        .map(|&p| {
                                                            WritableTxnMarkerPartitionResult::default()
                                                                .with_partition_index(p)
                                                                .with_error_code(seen.error_for(
                                                                    &t.name.0,
                                                                    failing,
                                                                ))
                                                        })
                                                        .collect(),
                                                )
                                        })
                                        .collect(),
                                )
                        })
                        .collect(),
                );
                seen.requests().push(req);
                resp.encode(&mut out, version).expect("encode");
                Some(out)
            }
        },
    )
    .await;
    (port, seen)
}

struct Setup {
    _dir: tempfile::TempDir,
    broker: Arc<Broker>,
    clock: Arc<ManualClock>,
    seen: Seen,
}

/// A broker leading `__transaction_state` (2 partitions) and topic `t` (2 partitions), whose
/// markers go to a fake leader. `create` false: no `__transaction_state` yet.
async fn setup(create: bool) -> Setup {
    let dir = tempfile::tempdir().expect("tempdir");
    let (port, seen) = fake_marker_leader().await;
    let mut config = BrokerConfig {
        data_dir: dir.path().to_path_buf(),
        ..BrokerConfig::default()
    };
    config.group.offsets_topic_num_partitions = 2;
    config.txn.state_log_num_partitions = 2;
    config.txn.max_timeout_ms = 60_000;
    config.cluster.peer_address_overrides = vec![Voter {
        id: config.node_id,
        host: "127.0.0.1".into(),
        port,
    }];
    let clock = Arc::new(ManualClock::new(1_000_000));
    let broker = test_broker_with_clock(config, Arc::clone(&clock) as Arc<dyn Clock>);
    let mut topics = vec![CreatableTopic {
        name: TOPIC.into(),
        num_partitions: 2,
        replication_factor: 1,
        assignments: Vec::new(),
        configs: Vec::new(),
    }];
    if create {
        topics.push(transaction_state_topic(&broker.config, 1));
    }
    broker
        .controller
        .call(ControllerRequest::CreateTopics(CreateTopicsRequest {
            topics,
            validate_only: false,
        }))
        .await
        .expect("create topics");
    broker.txn.sync_leadership().expect("load");
    Setup {
        _dir: dir,
        broker,
        clock,
        seen,
    }
}

async fn init(broker: &Arc<Broker>, id: &str, timeout_ms: i32) -> (i16, i64, i16) {
    let resp = call(
        broker,
        4,
        &InitProducerIdRequest::default()
            .with_transactional_id(Some(tid(id)))
            .with_transaction_timeout_ms(timeout_ms)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1),
    )
    .await;
    (resp.error_code, resp.producer_id.0, resp.producer_epoch)
}

/// AddPartitionsToTxn v0–v3: the error of every partition, in order.
async fn add(
    broker: &Arc<Broker>,
    version: i16,
    id: &str,
    pid: i64,
    epoch: i16,
    topic: &str,
    partitions: &[i32],
) -> Vec<i16> {
    let resp: AddPartitionsToTxnResponse = call(
        broker,
        version,
        &AddPartitionsToTxnRequest::default()
            .with_v3_and_below_transactional_id(tid(id))
            .with_v3_and_below_producer_id(ProducerId(pid))
            .with_v3_and_below_producer_epoch(epoch)
            .with_v3_and_below_topics(vec![AddPartitionsToTxnTopic::default()
                .with_name(topic_name(topic))
                .with_partitions(partitions.to_vec())]),
    )
    .await;
    resp.results_by_topic_v3_and_below
        .iter()
        .flat_map(|t| {
            t.results_by_partition
                .iter()
                .map(|p| p.partition_error_code)
        })
        .collect()
}

async fn end(
    broker: &Arc<Broker>,
    version: i16,
    id: &str,
    pid: i64,
    epoch: i16,
    commit: bool,
) -> i16 {
    end_answer(broker, version, id, pid, epoch, commit).await.0
}

async fn wait_for_state(broker: &Arc<Broker>, id: &str, state: gregor_txn::TransactionState) {
    for _ in 0..200 {
        if broker.txn.describe(id).map(|m| m.state) == Ok(state) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!(
        "{id} never reached {state:?}: {:?}",
        broker.txn.describe(id)
    );
}

#[tokio::test]
async fn commit_and_abort_write_markers_and_complete() {
    use gregor_txn::TransactionState::*;
    let s = setup(true).await;
    let b = &s.broker;
    let (error, pid, epoch) = init(b, "app", 10_000).await;
    assert_eq!((error, epoch), (0, 0));
    assert!(pid >= 0);

    assert_eq!(
        add(b, 3, "app", pid, epoch, TOPIC, &[0, 1]).await,
        vec![0, 0]
    );
    // Adding them again writes nothing and answers NONE.
    assert_eq!(add(b, 3, "app", pid, epoch, TOPIC, &[1]).await, vec![0]);
    let offsets = call(
        b,
        3,
        &AddOffsetsToTxnRequest::default()
            .with_transactional_id(tid("app"))
            .with_producer_id(ProducerId(pid))
            .with_producer_epoch(epoch)
            .with_group_id(GroupId(str_bytes("g"))),
    )
    .await;
    assert_eq!(offsets.error_code, 0);
    let m = b.txn.describe("app").expect("described");
    assert_eq!(m.state, Ongoing);
    assert_eq!(
        m.partitions.len(),
        3,
        "t-0, t-1 and the group's offsets partition"
    );

    assert_eq!(end(b, 3, "app", pid, epoch, true).await, 0);
    wait_for_state(b, "app", CompleteCommit).await;
    {
        let seen = s.seen.requests();
        let m = &seen.last().expect("markers sent").markers[0];
        assert!(m.transaction_result);
        assert_eq!(m.producer_id.0, pid);
        assert_eq!(m.producer_epoch, epoch);
        let mut sent: Vec<(String, i32)> = seen
            .iter()
            .flat_map(|r| r.markers.iter())
            .flat_map(|m| m.topics.iter())
            .flat_map(|t| {
                t.partition_indexes
                    .iter()
                    .map(|&p| (t.name.0.to_string(), p))
            })
            .collect();
        sent.sort();
        assert_eq!(sent.len(), 3, "{sent:?}");
        assert!(sent.contains(&(TOPIC.to_string(), 0)));
        assert!(sent.contains(&(TOPIC.to_string(), 1)));
    }
    // A retried commit is answered NONE; an abort of the committed transaction is not.
    assert_eq!(end(b, 3, "app", pid, epoch, true).await, 0);
    assert_eq!(
        end(b, 3, "app", pid, epoch, false).await,
        code::INVALID_TXN_STATE
    );

    // The next transaction, aborted.
    assert_eq!(add(b, 3, "app", pid, epoch, TOPIC, &[0]).await, vec![0]);
    assert_eq!(end(b, 3, "app", pid, epoch, false).await, 0);
    wait_for_state(b, "app", CompleteAbort).await;
    assert!(!s.seen.requests().last().expect("sent").markers[0].transaction_result);

    // EndTxn with no transaction open.
    assert_eq!(init(b, "idle", 10_000).await.0, 0);
    let idle = b.txn.describe("idle").expect("idle");
    assert_eq!(
        end(b, 3, "idle", idle.producer_id, idle.producer_epoch, true).await,
        code::INVALID_TXN_STATE
    );
}

#[tokio::test]
async fn errors_of_the_transactional_apis() {
    let s = setup(true).await;
    let b = &s.broker;
    assert_eq!(init(b, "app", 0).await.0, code::INVALID_TRANSACTION_TIMEOUT);
    assert_eq!(
        init(b, "app", 60_001).await.0,
        code::INVALID_TRANSACTION_TIMEOUT
    );
    let (error, pid, epoch) = init(b, "app", 10_000).await;
    assert_eq!(error, 0);

    // Unknown transactional id, wrong producer id, old epoch (PRODUCER_FENCED from v2 on).
    assert_eq!(
        add(b, 3, "nobody", pid, epoch, TOPIC, &[0]).await,
        vec![code::INVALID_PRODUCER_ID_MAPPING]
    );
    assert_eq!(
        end(b, 3, "nobody", pid, epoch, true).await,
        code::INVALID_PRODUCER_ID_MAPPING
    );
    assert_eq!(
        add(b, 3, "app", pid + 1, epoch, TOPIC, &[0]).await,
        vec![code::INVALID_PRODUCER_ID_MAPPING]
    );
    assert_eq!(
        add(b, 3, "app", pid, epoch + 1, TOPIC, &[0]).await,
        vec![code::PRODUCER_FENCED]
    );
    assert_eq!(
        add(b, 1, "app", pid, epoch + 1, TOPIC, &[0]).await,
        vec![code::INVALID_PRODUCER_EPOCH]
    );
    assert_eq!(
        end(b, 1, "app", pid, epoch + 1, true).await,
        code::INVALID_PRODUCER_EPOCH
    );
    // An unknown topic: UNKNOWN_TOPIC_OR_PARTITION, the rest not attempted.
    let resp: AddPartitionsToTxnResponse = call(
        b,
        3,
        &AddPartitionsToTxnRequest::default()
            .with_v3_and_below_transactional_id(tid("app"))
            .with_v3_and_below_producer_id(ProducerId(pid))
            .with_v3_and_below_producer_epoch(epoch)
            .with_v3_and_below_topics(vec![
                AddPartitionsToTxnTopic::default()
                    .with_name(topic_name(TOPIC))
                    .with_partitions(vec![0]),
                AddPartitionsToTxnTopic::default()
                    .with_name(topic_name("missing"))
                    .with_partitions(vec![0]),
            ]),
    )
    .await;
    let codes: Vec<(String, i16)> = resp
        .results_by_topic_v3_and_below
        .iter()
        .flat_map(|t| {
            t.results_by_partition
                .iter()
                .map(|p| (t.name.0.to_string(), p.partition_error_code))
        })
        .collect();
    assert_eq!(
        codes,
        vec![
            (TOPIC.to_string(), code::OPERATION_NOT_ATTEMPTED),
            ("missing".to_string(), code::UNKNOWN_TOPIC_OR_PARTITION)
        ]
    );
    assert_eq!(
        b.txn.describe("app").map(|m| m.state),
        Ok(gregor_txn::TransactionState::Empty)
    );
    // DescribeTransactions of an unknown id.
    let d = call(
        b,
        0,
        &DescribeTransactionsRequest::default().with_transactional_ids(vec![tid("nobody")]),
    )
    .await;
    assert_eq!(
        d.transaction_states[0].error_code,
        TRANSACTIONAL_ID_NOT_FOUND
    );
}

#[tokio::test]
async fn v4_batches_add_and_verify() {
    let s = setup(true).await;
    let b = &s.broker;
    let (_, pid, epoch) = init(b, "app", 10_000).await;
    let entry = |verify_only: bool, partitions: Vec<i32>| {
        AddPartitionsToTxnTransaction::default()
            .with_transactional_id(tid("app"))
            .with_producer_id(ProducerId(pid))
            .with_producer_epoch(epoch)
            .with_verify_only(verify_only)
            .with_topics(vec![AddPartitionsToTxnTopic::default()
                .with_name(topic_name(TOPIC))
                .with_partitions(partitions)])
    };
    let codes = |r: &AddPartitionsToTxnResponse| -> Vec<i16> {
        r.results_by_transaction
            .iter()
            .flat_map(|t| t.topic_results.iter())
            .flat_map(|t| {
                t.results_by_partition
                    .iter()
                    .map(|p| p.partition_error_code)
            })
            .collect()
    };
    let verify = call(
        b,
        4,
        &AddPartitionsToTxnRequest::default().with_transactions(vec![entry(true, vec![0])]),
    )
    .await;
    assert_eq!(codes(&verify), vec![code::TRANSACTION_ABORTABLE]);
    let added = call(
        b,
        5,
        &AddPartitionsToTxnRequest::default().with_transactions(vec![entry(false, vec![0])]),
    )
    .await;
    assert_eq!(codes(&added), vec![0]);
    let verify = call(
        b,
        4,
        &AddPartitionsToTxnRequest::default().with_transactions(vec![entry(true, vec![0, 1])]),
    )
    .await;
    assert_eq!(codes(&verify), vec![0, code::TRANSACTION_ABORTABLE]);
}

#[tokio::test]
async fn a_second_producer_fences_the_first_and_timeouts_abort() {
    use gregor_txn::TransactionState::*;
    let s = setup(true).await;
    let b = &s.broker;
    let (_, pid, epoch) = init(b, "app", 10_000).await;
    assert_eq!(add(b, 3, "app", pid, epoch, TOPIC, &[0]).await, vec![0]);
    // The second producer's InitProducerId aborts the open transaction under a bumped epoch
    // and asks to retry; the retry bumps once more.
    assert_eq!(
        init(b, "app", 10_000).await.0,
        code::CONCURRENT_TRANSACTIONS
    );
    wait_for_state(b, "app", CompleteAbort).await;
    let (error, pid2, epoch2) = init(b, "app", 10_000).await;
    assert_eq!((error, pid2, epoch2), (0, pid, epoch + 2));
    assert_eq!(
        end(b, 3, "app", pid, epoch, true).await,
        code::PRODUCER_FENCED
    );
    assert_eq!(add(b, 3, "app", pid2, epoch2, TOPIC, &[1]).await, vec![0]);

    // The timer aborts the transaction past its timeout, under a bumped epoch.
    s.clock.advance(5_000);
    assert_eq!(b.txn.abort_timed_out().await, 0);
    s.clock.advance(6_000);
    assert_eq!(b.txn.abort_timed_out().await, 1);
    wait_for_state(b, "app", CompleteAbort).await;
    let m = b.txn.describe("app").expect("described");
    assert_eq!(m.producer_epoch, epoch2 + 1);
    assert_eq!(
        end(b, 3, "app", pid2, epoch2, false).await,
        code::PRODUCER_FENCED
    );

    // Idle ids expire after transactional.id.expiration.ms (tombstone).
    s.clock
        .advance(b.config.txn.transactional_id_expiration_ms + 1);
    assert_eq!(b.txn.expire_transactional_ids().await, 1);
    assert_eq!(b.txn.describe("app"), Err(TRANSACTIONAL_ID_NOT_FOUND));
}

#[tokio::test]
async fn a_new_coordinator_loads_the_partition_and_resends_markers() {
    use gregor_txn::TransactionState::*;
    let s = setup(true).await;
    let b = &s.broker;
    let (_, pid, epoch) = init(b, "done", 10_000).await;
    assert_eq!(add(b, 3, "done", pid, epoch, TOPIC, &[0]).await, vec![0]);
    assert_eq!(end(b, 3, "done", pid, epoch, true).await, 0);
    wait_for_state(b, "done", CompleteCommit).await;
    let (_, pid, epoch) = init(b, "open", 10_000).await;
    assert_eq!(add(b, 3, "open", pid, epoch, TOPIC, &[1]).await, vec![0]);

    // A second runtime over the same logs, as after a restart or a leadership move.
    let fresh = Arc::new(TxnRuntime::new(
        Arc::clone(&b.replicas),
        Arc::clone(&b.producer_ids),
        Arc::clone(&b.controller),
    ));
    assert_eq!(
        fresh.not_coordinator("open"),
        Some(code::NOT_COORDINATOR),
        "nothing loaded yet"
    );
    fresh.sync_leadership().expect("load");
    assert_eq!(fresh.describe("done").map(|m| m.state), Ok(CompleteCommit));
    let open = fresh.describe("open").expect("loaded");
    assert_eq!((open.state, open.producer_epoch), (Ongoing, epoch));
    assert_eq!(fresh.list().expect("listed").len(), 2);
}

#[tokio::test]
async fn coordinator_lookup_creates_the_topic_and_lists_transactions() {
    let s = setup(false).await;
    let b = &s.broker;
    assert_eq!(init(b, "app", 10_000).await.0, code::NOT_COORDINATOR);
    let find = |v: i16| {
        let req = FindCoordinatorRequest::default().with_key_type(1);
        if v >= 4 {
            req.with_coordinator_keys(vec![str_bytes("app")])
        } else {
            req.with_key(str_bytes("app"))
        }
    };
    let first = call(b, 3, &find(3)).await;
    assert_eq!(first.error_code, code::COORDINATOR_NOT_AVAILABLE);
    // The in-process controller creates the topic at once; the coordinator loads it.
    for _ in 0..100 {
        if b.replicas.topic(TRANSACTION_STATE_TOPIC).is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let topic = b.replicas.topic(TRANSACTION_STATE_TOPIC).expect("created");
    assert_eq!(topic.partition_count, 2);
    assert_eq!(
        topic.configs.get("cleanup.policy").map(String::as_str),
        Some("compact")
    );
    b.txn.sync_leadership().expect("load");
    let found = call(b, 4, &find(4)).await;
    assert_eq!(found.coordinators[0].error_code, 0);
    assert_eq!(found.coordinators[0].node_id.0, b.config.node_id);

    let (error, pid, epoch) = init(b, "app", 10_000).await;
    assert_eq!(error, 0);
    assert_eq!(init(b, "other", 10_000).await.0, 0);
    assert_eq!(add(b, 3, "app", pid, epoch, TOPIC, &[0]).await, vec![0]);
    let list = call(b, 1, &ListTransactionsRequest::default()).await;
    assert_eq!(list.error_code, 0);
    assert_eq!(list.transaction_states.len(), 2);
    let ongoing = call(
        b,
        1,
        &ListTransactionsRequest::default()
            .with_state_filters(vec![str_bytes("Ongoing"), str_bytes("Bogus")])
            .with_duration_filter(-1),
    )
    .await;
    assert_eq!(ongoing.unknown_state_filters, vec![str_bytes("Bogus")]);
    assert_eq!(ongoing.transaction_states.len(), 1);
    assert_eq!(ongoing.transaction_states[0].transactional_id, tid("app"));
    let described = call(
        b,
        0,
        &DescribeTransactionsRequest::default().with_transactional_ids(vec![tid("app")]),
    )
    .await;
    let d = &described.transaction_states[0];
    assert_eq!(d.error_code, 0);
    assert_eq!(d.transaction_state.as_str(), "Ongoing");
    assert_eq!(d.producer_id.0, pid);
    assert_eq!(d.topics[0].topic, topic_name(TOPIC));
    assert_eq!(d.topics[0].partitions, vec![0]);
}

#[tokio::test]
async fn markers_are_retried_and_dropped_for_deleted_partitions() {
    use gregor_txn::TransactionState::*;
    let s = setup(true).await;
    let b = &s.broker;
    let (_, pid, epoch) = init(b, "app", 10_000).await;
    // The first two rounds are refused (a leader change): the markers are sent again.
    s.seen
        .fail_next
        .store(2, std::sync::atomic::Ordering::Release);
    assert_eq!(add(b, 3, "app", pid, epoch, TOPIC, &[0]).await, vec![0]);
    assert_eq!(end(b, 3, "app", pid, epoch, true).await, 0);
    wait_for_state(b, "app", CompleteCommit).await;
    assert_eq!(s.seen.requests().len(), 3);

    // A partition whose leader never takes the marker holds the transaction in PrepareCommit
    // (requests meanwhile: CONCURRENT_TRANSACTIONS) until its topic is deleted.
    broker_create(b, "gone").await;
    *s.seen.refuse_topic.lock().expect("lock") = Some("gone".into());
    assert_eq!(add(b, 3, "app", pid, epoch, "gone", &[0]).await, vec![0]);
    assert_eq!(add(b, 3, "app", pid, epoch, TOPIC, &[1]).await, vec![0]);
    assert_eq!(end(b, 3, "app", pid, epoch, true).await, 0);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(b.txn.describe("app").map(|m| m.state), Ok(PrepareCommit));
    assert_eq!(
        add(b, 3, "app", pid, epoch, TOPIC, &[0]).await,
        vec![code::CONCURRENT_TRANSACTIONS]
    );
    b.controller
        .call(ControllerRequest::DeleteTopics(
            gregor_controller::protocol::DeleteTopicsRequest {
                topics: vec![gregor_controller::protocol::TopicRef::Name("gone".into())],
            },
        ))
        .await
        .expect("delete");
    wait_for_state(b, "app", CompleteCommit).await;
}

async fn broker_create(b: &Arc<Broker>, name: &str) {
    b.controller
        .call(ControllerRequest::CreateTopics(CreateTopicsRequest {
            topics: vec![CreatableTopic {
                name: name.into(),
                num_partitions: 1,
                replication_factor: 1,
                assignments: Vec::new(),
                configs: Vec::new(),
            }],
            validate_only: false,
        }))
        .await
        .expect("create");
}

#[tokio::test]
async fn markers_of_concurrent_transactions_share_requests() {
    use gregor_txn::TransactionState::*;
    let s = setup(true).await;
    let b = &s.broker;
    s.seen
        .delay_ms
        .store(200, std::sync::atomic::Ordering::Release);
    let mut producers = Vec::new();
    for i in 0..5 {
        let id = format!("p{i}");
        let (_, pid, epoch) = init(b, &id, 10_000).await;
        assert_eq!(add(b, 3, &id, pid, epoch, TOPIC, &[i % 2]).await, vec![0]);
        producers.push((id, pid, epoch));
    }
    let ends = producers
        .iter()
        .map(|(id, pid, epoch)| end(b, 3, id, *pid, *epoch, true));
    assert!(futures::future::join_all(ends)
        .await
        .iter()
        .all(|&e| e == 0));
    for (id, _, _) in &producers {
        wait_for_state(b, id, CompleteCommit).await;
    }
    let requests = s.seen.requests();
    let markers: usize = requests.iter().map(|r| r.markers.len()).sum();
    assert_eq!(markers, 5);
    assert!(
        requests.len() < 5,
        "markers queued behind a request in flight go out together: {} requests",
        requests.len()
    );
}

/// EndTxn is answered once its PrepareCommit record is durable, before the markers; the
/// producer's next AddPartitionsToTxn, sent at once, waits at the coordinator for the markers
/// and the completion instead of being answered CONCURRENT_TRANSACTIONS.
#[tokio::test]
async fn end_txn_answers_at_prepare_and_the_next_add_waits_for_the_markers() {
    use gregor_txn::TransactionState::*;
    let s = setup(true).await;
    let b = &s.broker;
    let (_, pid, epoch) = init(b, "app", 60_000).await;
    assert_eq!(add(b, 3, "app", pid, epoch, TOPIC, &[0]).await, vec![0]);
    s.seen
        .delay_ms
        .store(400, std::sync::atomic::Ordering::Release);
    let started = std::time::Instant::now();
    assert_eq!(end(b, 3, "app", pid, epoch, true).await, 0);
    assert!(
        started.elapsed() < Duration::from_millis(300),
        "EndTxn waited for the markers: {:?}",
        started.elapsed()
    );
    assert_eq!(b.txn.describe("app").map(|m| m.state), Ok(PrepareCommit));
    assert_eq!(add(b, 3, "app", pid, epoch, TOPIC, &[1]).await, vec![0]);
    assert!(
        started.elapsed() >= Duration::from_millis(350),
        "the add did not wait for the markers: {:?}",
        started.elapsed()
    );
    let m = b.txn.describe("app").expect("described");
    assert_eq!(m.state, Ongoing);
    assert_eq!(
        m.partitions.iter().map(|p| p.partition).collect::<Vec<_>>(),
        vec![1],
        "the new transaction holds only its own partition"
    );
}

// ---------------------------------------------------------------- KIP-890 part 1: verification

/// Produces `batch` to `TOPIC`-`partition` as transactional id `id` at Produce `version`:
/// the partition's error code.
async fn produce_txn(
    b: &Arc<Broker>,
    version: i16,
    id: &str,
    partition: i32,
    batch: Vec<u8>,
) -> i16 {
    use gregor_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    use gregor_protocol::messages::ProduceRequest;
    let topic = if version >= 13 {
        let t = b.replicas.topic(TOPIC).expect("topic");
        TopicProduceData::default().with_topic_id(t.id)
    } else {
        TopicProduceData::default().with_name(topic_name(TOPIC))
    };
    let req = ProduceRequest::default()
        .with_transactional_id(Some(tid(id)))
        .with_acks(-1)
        .with_timeout_ms(5_000)
        .with_topic_data(vec![topic.with_partition_data(vec![
            PartitionProduceData::default()
                .with_index(partition)
                .with_records(Some(Bytes::from(batch))),
        ])]);
    let resp = call(b, version, &req).await;
    resp.responses[0].partition_responses[0].error_code
}

fn log_end(b: &Arc<Broker>, partition: i32) -> i64 {
    let (_, part) = b.replicas.partition(TOPIC, partition).expect("partition");
    part.offsets().expect("offsets").1
}

/// A transactional produce to a partition the producer never added to its transaction is
/// refused with INVALID_TXN_STATE before anything is written (the leader asked the
/// coordinator, here on the same broker); once added, the same produce is appended.
#[tokio::test]
async fn a_transactional_produce_to_an_unadded_partition_is_refused() {
    use crate::partition::tests::txn_batch;
    let s = setup(true).await;
    let b = &s.broker;
    let (error, pid, epoch) = init(b, "app", 60_000).await;
    assert_eq!((error, epoch), (0, 0));
    assert_eq!(add(b, 3, "app", pid, epoch, TOPIC, &[0]).await, vec![0]);
    // From Produce v12 (transactions version 2) the leader adds the partition instead: see
    // `tv2_end_txn_v5_bumps_the_epoch_and_produce_v12_adds_the_partition`.
    // Produce v11 clients know TRANSACTION_ABORTABLE (KAFKA-16314); older ones get
    // INVALID_TXN_STATE.
    for (version, want) in [
        (9, code::INVALID_TXN_STATE),
        (11, code::TRANSACTION_ABORTABLE),
    ] {
        assert_eq!(
            produce_txn(b, version, "app", 1, txn_batch(pid, 0, 2)).await,
            want,
            "Produce v{version} to a partition outside the transaction"
        );
    }
    assert_eq!(log_end(b, 1), 0, "nothing appended");
    {
        let (_, part) = b.replicas.partition(TOPIC, 1).expect("partition");
        assert_eq!(
            part.last_stable_offset().expect("lso"),
            0,
            "no transaction opened"
        );
    }
    // The added partition takes it; the next batch continues the open transaction.
    assert_eq!(produce_txn(b, 11, "app", 0, txn_batch(pid, 0, 2)).await, 0);
    assert_eq!(produce_txn(b, 12, "app", 0, txn_batch(pid, 2, 1)).await, 0);
    assert_eq!(log_end(b, 0), 3);
    // Once added, partition 1 takes it too.
    assert_eq!(add(b, 3, "app", pid, epoch, TOPIC, &[1]).await, vec![0]);
    assert_eq!(produce_txn(b, 13, "app", 1, txn_batch(pid, 0, 2)).await, 0);
    assert_eq!(log_end(b, 1), 2);
    // A transactional id the coordinator does not know, or a producer id it never issued for
    // a known one: its answer is passed on (Kafka's INVALID_PRODUCER_ID_MAPPING).
    assert_eq!(
        produce_txn(b, 11, "nobody", 1, txn_batch(pid + 7, 0, 1)).await,
        code::INVALID_PRODUCER_ID_MAPPING
    );
    assert_eq!(
        produce_txn(b, 11, "app", 0, txn_batch(pid + 1000, 0, 1)).await,
        code::INVALID_PRODUCER_ID_MAPPING
    );
    // An older epoch than the coordinator's (PRODUCER_FENCED there): INVALID_PRODUCER_EPOCH.
    let (_, pid2, epoch2) = init(b, "app2", 60_000).await;
    let (_, _, bumped) = init(b, "app2", 60_000).await;
    assert_eq!(bumped, epoch2 + 1);
    assert_eq!(
        produce_txn(b, 11, "app2", 0, txn_batch(pid2, 0, 1)).await,
        code::INVALID_PRODUCER_EPOCH
    );
    assert_eq!(log_end(b, 0), 3);
    // A producer the partition knows in a newer epoch is refused before the coordinator is
    // asked (KAFKA-18042): INVALID_PRODUCER_EPOCH even under a transactional id the coordinator
    // does not know (which it would answer INVALID_PRODUCER_ID_MAPPING).
    assert_eq!(add(b, 3, "app2", pid2, bumped, TOPIC, &[0]).await, vec![0]);
    let at = |epoch: i16, seq: i32| {
        let mut batch = txn_batch(pid2, seq, 1);
        batch[51..53].copy_from_slice(&epoch.to_be_bytes());
        let crc = crc32c::crc32c(&batch[21..]);
        batch[17..21].copy_from_slice(&crc.to_be_bytes());
        batch
    };
    assert_eq!(produce_txn(b, 11, "app2", 0, at(bumped, 0)).await, 0);
    assert_eq!(
        produce_txn(b, 11, "nobody", 0, at(epoch2, 1)).await,
        code::INVALID_PRODUCER_EPOCH
    );
    assert_eq!(
        produce_txn(b, 11, "nobody", 0, at(bumped + 1, 0)).await,
        code::INVALID_PRODUCER_ID_MAPPING
    );
    assert_eq!(log_end(b, 0), 4);
}

/// `transaction.partition.verification.enable=false` (a dynamic broker config) turns the
/// check off: the unadded partition takes the produce, as before KIP-890.
#[tokio::test]
async fn verification_can_be_turned_off_dynamically() {
    use crate::partition::tests::txn_batch;
    let s = setup(true).await;
    let b = &s.broker;
    let (_, pid, _) = init(b, "app", 60_000).await;
    assert_eq!(
        produce_txn(b, 11, "app", 1, txn_batch(pid, 0, 1)).await,
        code::TRANSACTION_ABORTABLE
    );
    let record = gregor_metadata::controller::alter_broker_config(
        "",
        "transaction.partition.verification.enable",
        Some("false"),
    )
    .expect("a dynamic broker config");
    b.replicas.apply_records(&[record]);
    assert!(
        !b.replicas
            .effective_config()
            .txn
            .partition_verification_enable
    );
    assert_eq!(produce_txn(b, 11, "app", 1, txn_batch(pid, 0, 1)).await, 0);
    assert_eq!(log_end(b, 1), 1);
}

/// The coordinator is not loaded (its `__transaction_state` partition has no leader here nor
/// anywhere): the produce gets NOT_ENOUGH_REPLICAS, which producers retry, and nothing is
/// written.
#[tokio::test]
async fn an_unavailable_coordinator_is_not_enough_replicas() {
    use crate::partition::tests::txn_batch;
    let s = setup(false).await;
    let b = &s.broker;
    assert_eq!(
        produce_txn(b, 11, "app", 0, txn_batch(42, 0, 1)).await,
        ErrorCode::NOT_ENOUGH_REPLICAS.code()
    );
    assert_eq!(log_end(b, 0), 0);
}

/// Pipelined requests of one producer (as the Java producer sends them, up to five in flight):
/// the first of a transaction on a partition waits for its verification, a second joins it;
/// once the first is appended the transaction is open, yet a third must not be appended before
/// the second. The replies are made in request order (the connection's writer), and every
/// batch is appended in sequence order.
#[tokio::test]
async fn pipelined_transactional_produces_keep_their_order_across_a_verification() {
    use crate::partition::tests::txn_batch;
    use gregor_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    use gregor_protocol::messages::{ProduceRequest, ProduceResponse};
    let s = setup(true).await;
    let b = &s.broker;
    let (_, pid, epoch) = init(b, "app", 60_000).await;
    assert_eq!(add(b, 3, "app", pid, epoch, TOPIC, &[0]).await, vec![0]);
    let frame = |seq: i32| {
        let req = ProduceRequest::default()
            .with_transactional_id(Some(tid("app")))
            .with_acks(-1)
            .with_timeout_ms(5_000)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(topic_name(TOPIC))
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(0)
                    .with_records(Some(Bytes::from(txn_batch(pid, seq, 2))))])]);
        let version = 11;
        let header = RequestHeader::default()
            .with_request_api_key(ApiKey::Produce as i16)
            .with_request_api_version(version)
            .with_correlation_id(seq)
            .with_client_id(Some(StrBytes::from_static_str("test")));
        let mut buf = BytesMut::new();
        header
            .encode(&mut buf, ApiKey::Produce.request_header_version(version))
            .expect("header");
        req.encode(&mut buf, version).expect("body");
        buf.freeze()
    };
    let peer = std::net::SocketAddr::from(([127, 0, 0, 1], 1));
    let answer = |reply: Reply| async move {
        let bytes = match reply {
            Reply::Pending(f) => f.await.expect("encode"),
            Reply::Ready(b) => b,
            _ => panic!("unexpected reply kind"),
        };
        let mut body = bytes.slice(4..);
        ResponseHeader::decode(&mut body, ApiKey::Produce.response_header_version(11))
            .expect("header");
        let resp = ProduceResponse::decode(&mut body, 11).expect("response");
        let p = resp.responses[0].partition_responses[0].clone();
        (p.error_code, p.base_offset)
    };
    let first = crate::router::dispatch(b, peer, frame(0)).expect("dispatch");
    let second = crate::router::dispatch(b, peer, frame(2)).expect("dispatch");
    assert_eq!(answer(first).await, (0, 0));
    let third = crate::router::dispatch(b, peer, frame(4)).expect("dispatch");
    assert_eq!(answer(second).await, (0, 2));
    assert_eq!(answer(third).await, (0, 4));
    assert_eq!(log_end(b, 0), 6);
    // Nothing waits any more: the next request is appended at once.
    let fourth = crate::router::dispatch(b, peer, frame(6)).expect("dispatch");
    assert_eq!(answer(fourth).await, (0, 6));
}

// ---------------------------------------------------------------- KIP-890 part 2: transactions v2

/// `txn_batch` at producer epoch `epoch`.
fn txn_batch_at(pid: i64, epoch: i16, seq: i32, n: usize) -> Vec<u8> {
    let mut b = crate::partition::tests::txn_batch(pid, seq, n);
    b[51..53].copy_from_slice(&epoch.to_be_bytes());
    let crc = crc32c::crc32c(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    b
}

/// EndTxn at `version`: (error, producer id, epoch) as answered.
async fn end_answer(
    broker: &Arc<Broker>,
    version: i16,
    id: &str,
    pid: i64,
    epoch: i16,
    commit: bool,
) -> (i16, i64, i16) {
    let resp = call(
        broker,
        version,
        &EndTxnRequest::default()
            .with_transactional_id(tid(id))
            .with_producer_id(ProducerId(pid))
            .with_producer_epoch(epoch)
            .with_committed(commit),
    )
    .await;
    (resp.error_code, resp.producer_id.0, resp.producer_epoch)
}

/// The markers the fake leader received last, written again on this broker's own partitions
/// as WriteTxnMarkers v2 with transaction version 2 (the fake leader stands in for the
/// partitions' leader, which is this broker in the test).
async fn replay_last_markers(b: &Arc<Broker>, seen: &Seen) {
    let mut req = seen.requests().last().cloned().expect("markers sent");
    for m in &mut req.markers {
        m.transaction_version = 2;
    }
    let resp = call(b, 2, &req).await;
    for m in &resp.markers {
        for t in &m.topics {
            for p in &t.partitions {
                assert_eq!(
                    p.error_code, 0,
                    "marker on {}-{}",
                    t.name.0, p.partition_index
                );
            }
        }
    }
}

/// Transactions version 2 through the router: a Produce v12 without AddPartitionsToTxn adds
/// its partition; EndTxn v5 bumps the epoch at commit and at abort and answers the new epoch;
/// the markers carry it; the partition takes the marker and the next transaction at the new
/// epoch from sequence 0; a retried EndTxn gets the same answer.
#[tokio::test]
async fn tv2_end_txn_v5_bumps_the_epoch_and_produce_v12_adds_the_partition() {
    use gregor_txn::TransactionState::*;
    let s = setup(true).await;
    let b = &s.broker;
    let (_, pid, e0) = init(b, "app", 60_000).await;
    assert_eq!(
        produce_txn(b, 12, "app", 0, txn_batch_at(pid, e0, 0, 2)).await,
        0
    );
    let m = b.txn.describe("app").expect("described");
    assert_eq!(m.state, Ongoing);
    assert!(m
        .partitions
        .contains(&gregor_txn::TopicPartition::new(TOPIC, 0)));
    assert_eq!(
        end_answer(b, 5, "app", pid, e0, true).await,
        (0, pid, e0 + 1)
    );
    wait_for_state(b, "app", CompleteCommit).await;
    let marker = s.seen.requests().last().expect("markers").markers[0].clone();
    assert_eq!(marker.producer_epoch, e0 + 1);
    replay_last_markers(b, &s.seen).await;
    {
        let (_, part) = b.replicas.partition(TOPIC, 0).expect("partition");
        assert_eq!(part.last_stable_offset().expect("lso"), 3, "committed");
    }
    // The next transaction, at the bumped epoch from sequence 0.
    assert_eq!(
        produce_txn(b, 12, "app", 0, txn_batch_at(pid, e0 + 1, 0, 1)).await,
        0
    );
    assert_eq!(log_end(b, 0), 4);
    // The old epoch is fenced now.
    assert_eq!(
        produce_txn(b, 12, "app", 1, txn_batch_at(pid, e0, 2, 1)).await,
        code::INVALID_PRODUCER_EPOCH
    );
    assert_eq!(
        end_answer(b, 5, "app", pid, e0 + 1, false).await,
        (0, pid, e0 + 2)
    );
    wait_for_state(b, "app", CompleteAbort).await;
    replay_last_markers(b, &s.seen).await;
    {
        let (_, part) = b.replicas.partition(TOPIC, 0).expect("partition");
        assert_eq!(part.last_stable_offset().expect("lso"), 5, "aborted");
    }
    // The abort's answer was lost: the retry gets the same one, nothing is written again.
    let sent = s.seen.requests().len();
    assert_eq!(
        end_answer(b, 5, "app", pid, e0 + 1, false).await,
        (0, pid, e0 + 2)
    );
    assert_eq!(s.seen.requests().len(), sent);
    // EndTxn v4 keeps the classic protocol: no bump, no id in the answer.
    assert_eq!(
        produce_txn(b, 12, "app", 1, txn_batch_at(pid, e0 + 2, 0, 1)).await,
        0
    );
    assert_eq!(
        end_answer(b, 4, "app", pid, e0 + 2, true).await,
        (0, -1, -1)
    );
    wait_for_state(b, "app", CompleteCommit).await;
    assert_eq!(
        b.txn.describe("app").expect("described").producer_epoch,
        e0 + 2
    );
}

/// A Produce v12 whose add meets the previous transaction's markers still being written waits
/// for them at the coordinator (at most `SETTLE_WAIT`); past that the add is answered
/// CONCURRENT_TRANSACTIONS, which the leader retries until
/// `add.partitions.to.txn.retry.backoff.max.ms`, then the produce gets the retriable
/// NOT_ENOUGH_REPLICAS.
#[tokio::test]
async fn produce_v12_retries_an_add_while_the_markers_are_written() {
    use gregor_txn::TransactionState::*;
    let s = setup(true).await;
    let b = &s.broker;
    let (_, pid, mut epoch) = init(b, "app", 60_000).await;
    let too_long = SETTLE_WAIT.as_millis() as u64 + 600;
    for (delay_ms, expected) in [
        (300u64, 0),
        (too_long, ErrorCode::NOT_ENOUGH_REPLICAS.code()),
    ] {
        assert_eq!(
            produce_txn(b, 12, "app", 0, txn_batch_at(pid, epoch, 0, 1)).await,
            0
        );
        s.seen
            .delay_ms
            .store(delay_ms, std::sync::atomic::Ordering::Release);
        let ending = {
            let b = Arc::clone(b);
            tokio::spawn(async move { end_answer(&b, 5, "app", pid, epoch, true).await })
        };
        wait_for_state(b, "app", PrepareCommit).await;
        // The client's next transaction starts on another partition (t-0 needs the marker
        // first, which goes to the fake leader and is replayed below).
        assert_eq!(
            produce_txn(b, 12, "app", 1, txn_batch_at(pid, epoch + 1, 0, 1)).await,
            expected,
            "markers taking {delay_ms} ms"
        );
        assert_eq!(ending.await.expect("joined"), (0, pid, epoch + 1));
        epoch += 1;
        // Ongoing again once the retried add went through (the commit completed first).
        let after = if expected == 0 {
            Ongoing
        } else {
            CompleteCommit
        };
        wait_for_state(b, "app", after).await;
        s.seen
            .delay_ms
            .store(0, std::sync::atomic::Ordering::Release);
        replay_last_markers(b, &s.seen).await;
        if expected == 0 {
            assert_eq!(log_end(b, 1), 1);
            // Its transaction is open on t-1: abort it before the next round.
            assert_eq!(end_answer(b, 5, "app", pid, epoch, false).await.0, 0);
            epoch += 1;
            wait_for_state(b, "app", CompleteAbort).await;
            replay_last_markers(b, &s.seen).await;
        }
    }
}

/// EndTxn v5 at an exhausted epoch (32766): the runtime takes a new producer id from the
/// controller's blocks before the decision; the markers go out under the old id at 32767, the
/// answer is the new id at epoch 0, and a retry with the old id and epoch gets it again.
#[tokio::test]
async fn tv2_end_txn_at_an_exhausted_epoch_moves_to_a_new_producer_id() {
    use gregor_txn::TransactionState::*;
    let s = setup(true).await;
    let b = &s.broker;
    let (_, pid, _) = init(b, "app", 60_000).await;
    // The id's metadata as if 32766 epochs had gone by, with a transaction open on t-0.
    {
        let mut m = b.txn.describe("app").expect("described");
        m.producer_epoch = i16::MAX - 1;
        m.state = Ongoing;
        m.partitions
            .insert(gregor_txn::TopicPartition::new(TOPIC, 0));
        m.txn_start_timestamp_ms = s.clock.now_ms();
        let (key, value) = record_for(&m);
        let partition = b.txn.partition_for("app");
        b.txn
            .core()
            .load_partition(partition, [(key.as_slice(), value.as_deref())])
            .expect("loaded");
    }
    let (error, new_pid, new_epoch) = end_answer(b, 5, "app", pid, i16::MAX - 1, true).await;
    assert_eq!((error, new_epoch), (0, 0));
    assert_ne!(new_pid, pid);
    wait_for_state(b, "app", CompleteCommit).await;
    let marker = s.seen.requests().last().expect("markers").markers[0].clone();
    assert_eq!(
        (marker.producer_id.0, marker.producer_epoch),
        (pid, i16::MAX)
    );
    let m = b.txn.describe("app").expect("described");
    assert_eq!(
        (m.producer_id, m.producer_epoch, m.last_producer_id),
        (new_pid, 0, pid)
    );
    // The answer was lost: the old id at its last epoch gets the same answer.
    assert_eq!(
        end_answer(b, 5, "app", pid, i16::MAX - 1, true).await,
        (0, new_pid, 0)
    );
    // The new id goes on.
    assert_eq!(
        produce_txn(b, 12, "app", 1, txn_batch_at(new_pid, 0, 0, 1)).await,
        0
    );
}

/// A transactions-version-2 transaction timing out at an exhausted epoch (32766): the timer
/// fetches a new producer id from the controller's blocks before it decides; the abort markers
/// go out under the old id at 32767 (one bump, as Kafka 4.4), the producer then has the new id
/// at epoch 0, and its late EndTxn v5 abort from the old id is answered with it.
#[tokio::test]
async fn tv2_a_timeout_at_an_exhausted_epoch_moves_to_a_new_producer_id() {
    use gregor_txn::TransactionState::*;
    let s = setup(true).await;
    let b = &s.broker;
    let (_, pid, _) = init(b, "app", 10_000).await;
    // Its metadata as if 32766 epochs had gone by under EndTxn v5, a transaction open on t-0.
    {
        let mut m = b.txn.describe("app").expect("described");
        m.producer_epoch = i16::MAX - 1;
        m.client_transaction_version = gregor_txn::TRANSACTION_VERSION_2;
        m.state = Ongoing;
        m.partitions
            .insert(gregor_txn::TopicPartition::new(TOPIC, 0));
        m.txn_start_timestamp_ms = s.clock.now_ms();
        let (key, value) = record_for(&m);
        let partition = b.txn.partition_for("app");
        b.txn
            .core()
            .load_partition(partition, [(key.as_slice(), value.as_deref())])
            .expect("loaded");
    }
    s.clock.advance(10_001);
    assert_eq!(b.txn.abort_timed_out().await, 1);
    wait_for_state(b, "app", CompleteAbort).await;
    let marker = s.seen.requests().last().expect("markers").markers[0].clone();
    assert_eq!(
        (
            marker.producer_id.0,
            marker.producer_epoch,
            marker.transaction_result
        ),
        (pid, i16::MAX, false)
    );
    let m = b.txn.describe("app").expect("described");
    assert_ne!(m.producer_id, pid);
    assert_eq!((m.producer_epoch, m.last_producer_id), (0, pid));
    assert_eq!(
        end_answer(b, 5, "app", pid, i16::MAX - 1, false).await,
        (0, m.producer_id, 0)
    );
    assert_eq!(
        end(b, 5, "app", pid, i16::MAX - 1, true).await,
        code::INVALID_TXN_STATE
    );
}
