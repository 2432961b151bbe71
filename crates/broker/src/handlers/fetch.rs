//! Fetch (key 1): reads whole batches from each requested partition, and long-polls: when less
//! than `min_bytes` is available the reply waits in the purgatory (Kafka's DelayedFetch) until
//! one of the partitions changes or `max_wait_ms` passes.
//!
//! Consumers (`replica_id` -1) read below the high watermark and are woken when it moves;
//! read_committed ones (`isolation_level` 1) read below the last stable offset and get the
//! aborted transactions among the records (from the segments' `.txnindex`), so they can drop
//! those records. Every partition answers its last stable offset (-1 with an error).
//! Followers (`replica_id` >= 0, another broker's replica) read to the log end and are woken
//! by appends; their fetch offset is reported to the partition's replication core first, which
//! may advance the high watermark or propose the follower for the ISR. A follower fetch that
//! carries `last_fetched_epoch` is first checked against this log's leader-epoch cache
//! (Kafka's `Partition.fetchRecords`): when the follower's last epoch ends here before its
//! fetch offset, the answer is that partition's `diverging_epoch` (a v12 tagged field) and no
//! records, and the follower truncates before it fetches again.
//!
//! Limits, as Kafka's: the records of one response are at most `min(max_bytes, fetch.max.bytes)`
//! (but the first batch of the first partition with data is sent whole, KIP-74), and never so
//! many that the response outgrows its int32 size prefix; a partition named more than once in
//! the request is read and answered once.
//!
//! Versions 4–18 are served, Kafka 4.x's whole range. From v13 a topic is named by its id
//! (KIP-516): the id is looked up in the metadata image, and an id this cluster does not know
//! (a deleted topic, or one recreated under a new id) is answered UNKNOWN_TOPIC_ID for each of
//! its partitions. From v15 the fetcher's replica id is in `replica_state` (KIP-903). From v16,
//! a partition answered NOT_LEADER_OR_FOLLOWER or FENCED_LEADER_EPOCH carries the leader and
//! epoch this broker knows (`current_leader`), and the response the endpoints of those leaders
//! (`node_endpoints`), so the client goes to the new leader without a metadata round trip
//! (KIP-951). v17's `replica_directory_id` and v18's `high_watermark` in the request concern
//! KRaft's own fetches and are ignored.
//!
//! Fetch sessions (KIP-227, v7+; [`crate::fetch_session`]): a full request with epoch 0 opens a
//! session of its partitions (its id in the answer); the fetcher's next requests are
//! incremental, name only the partitions whose position changed (and the ones to forget), read
//! every partition of the session, and are answered with only the partitions that have
//! something new. Epoch -1, or no session (librdkafka, gregor's own followers), is a plain full
//! fetch.
//!
//! Authorization, as Kafka's: a follower's fetch needs CLUSTER_ACTION on the cluster, else
//! every partition is TOPIC_AUTHORIZATION_FAILED; a consumer needs READ on each topic, else
//! that topic's partitions are TOPIC_AUTHORIZATION_FAILED (a topic id this cluster does not
//! know stays UNKNOWN_TOPIC_ID). A refused partition is neither read nor waited on, and a
//! refused follower's position is not recorded.
//!
//! The response is encoded by hand (the fields of v4–v18) so that record data stays in the
//! segment files: each partition's records are a file range sent with sendfile, never copied
//! through user space. `tests::hand_encoding_matches_kafka_protocol` pins the encoding to the
//! `kafka-protocol` crate's for every version served.

use crate::quota::QuotaType;
use std::collections::HashMap;
use std::ops::RangeInclusive;
use std::sync::Arc;
use std::time::Duration;

use bytes::BufMut;
use gregor_metadata::{AclOperation, ResourceType};
use gregor_protocol::error::ErrorCode;
use gregor_protocol::messages::ApiKey;
use gregor_protocol::messages::FetchRequest;
use gregor_replication::epoch::EpochEndOffset;
use gregor_replication::FollowerFetch;
use gregor_storage::FileSlice;

use crate::authorizer;
use crate::broker::Broker;
use crate::fetch_session::{Answered, Asked, Context, SessionKey, Told};
use crate::partition::{FetchIsolation, Partition};
use crate::replica_selector::{ReplicaSelector, ReplicaView};
use crate::request::{ProtocolError, Reply, RequestContext};
use crate::response::{Chunk, ChunkedResponse};

/// The API this module serves.
pub const KEY: ApiKey = ApiKey::Fetch;
/// The versions served (and advertised in ApiVersions).
pub const VERSIONS: RangeInclusive<i16> = 4..=18;

/// Handles a Fetch request; the reply completes when data is there or the wait is over.
pub fn handle(broker: &Arc<Broker>, ctx: RequestContext, req: FetchRequest) -> Reply {
    let broker = Arc::clone(broker);
    Reply::PendingChunks(Box::pin(async move {
        fetch(broker, ctx, req).await.ok_or_else(|| {
            ProtocolError::Encode("fetch response larger than an int32 size".to_string())
        })
    }))
}

struct Wanted {
    topic_index: usize,
    partition: i32,
    fetch_offset: i64,
    max_bytes: usize,
    /// What the fetcher says about itself and the leader epoch.
    position: Position,
    part: Option<Arc<Partition>>,
    /// Refused before any read (leader epoch check, a follower fetch the core refused).
    error: Option<ErrorCode>,
    /// A follower whose log diverges from this one: answered with this and no records.
    diverging: Option<EpochEndOffset>,
    /// A partition hosted elsewhere: its leader and epoch in the image (KIP-951).
    leader_elsewhere: Option<(i32, i32)>,
    /// KIP-392: the replica the leader's selector sends this consumer to (not the leader).
    preferred_read_replica: Option<i32>,
    /// KIP-73: the topic's `leader.replication.throttled.replicas` names this broker's replica:
    /// what a follower reads of it counts against `leader.replication.throttled.rate`.
    leader_throttled: bool,
    /// Read nothing for this follower now: throttled, the follower not in sync, and the
    /// leader's replication quota exceeded (Kafka's `shouldLeaderThrottle`).
    held_back: bool,
}

/// The per-partition fields besides the fetch offset that the leader checks and records.
#[derive(Debug, Clone, Copy)]
struct Position {
    /// The leader epoch the fetcher believes current (-1: not known).
    current_leader_epoch: i32,
    /// The fetcher's log start offset (followers).
    log_start_offset: i64,
    /// The epoch of the fetcher's last record (followers, v12+; -1: not sent).
    last_fetched_epoch: i32,
}

/// One partition's answer.
#[derive(Debug, Clone)]
pub(crate) struct PartitionResult {
    pub topic_index: usize,
    pub partition: i32,
    pub error_code: i16,
    pub high_watermark: i64,
    /// -1 with an error, as Kafka's `INVALID_LAST_STABLE_OFFSET`.
    pub last_stable_offset: i64,
    pub log_start_offset: i64,
    pub records: Option<FileSlice>,
    /// read_committed: `(producer id, first offset)` of the aborted transactions overlapping
    /// `records`; `None` (null) for read_uncommitted, followers and errors.
    pub aborted_transactions: Option<Vec<(i64, i64)>>,
    /// `diverging_epoch` (v12+): `(epoch, end_offset)` for a diverging follower.
    pub diverging_epoch: Option<(i32, i64)>,
    /// `current_leader` (v16+): `(leader id, leader epoch)` with a NOT_LEADER_OR_FOLLOWER or
    /// FENCED_LEADER_EPOCH answer.
    pub current_leader: Option<(i32, i32)>,
    /// `preferred_read_replica` (v11+, KIP-392): where the consumer should fetch from; -1: here.
    pub preferred_read_replica: i32,
}

impl PartitionResult {
    /// The partition's log start, high watermark and last stable offset, for an answer
    /// without records.
    fn set_offsets(&mut self, part: &Partition) {
        if let Ok((start, hw)) = part.offsets() {
            self.log_start_offset = start;
            self.high_watermark = hw;
            self.last_stable_offset = part.last_stable_offset().unwrap_or(hw);
        }
    }
}

/// A topic of the request: by name (v4–v12) or by id (v13+; the name is the image's, empty
/// when the id is unknown).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct TopicRef {
    pub name: String,
    pub id: uuid::Uuid,
}

/// A node's client endpoint, for `node_endpoints` (v16+).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NodeEndpoint {
    pub node_id: i32,
    pub host: String,
    pub port: i32,
    pub rack: Option<String>,
}

/// Encoded bytes of one partition's entry besides its records (the widest version, with its
/// compact lengths written at their widest and both tagged fields), of one topic's entry
/// besides its name and partitions (a name of up to 16 bytes is no wider than an id), and of
/// everything else but the node endpoints. Used to keep the response inside the size prefix.
const PARTITION_OVERHEAD: usize = 4 + 2 + 8 + 8 + 8 + 5 + 4 + 5 + 1 + 16 + 12;
const TOPIC_OVERHEAD: usize = 3 + 16 + 5 + 1;
const RESPONSE_OVERHEAD: usize = 4 + 4 + 1 + 4 + 2 + 4 + 5 + 1;
/// Encoded bytes of one node endpoint besides its host and rack.
const NODE_OVERHEAD: usize = 4 + 3 + 4 + 3 + 1;

/// The request's partitions in Kafka's order: a partition named more than once is one entry,
/// at its first position, with the fetch position of its last mention (Kafka's `FetchRequest
/// .fetchData` builds a `LinkedHashMap` keyed by partition). From v13 a topic is keyed by its
/// id (the name empty), below by its name (the id nil).
pub(crate) fn requested(ctx: &RequestContext, req: &FetchRequest) -> Vec<(SessionKey, Asked)> {
    let by_id = ctx.api_version >= 13;
    let mut order: Vec<SessionKey> = Vec::new();
    let mut latest: HashMap<SessionKey, Asked> = HashMap::new();
    for t in &req.topics {
        for p in &t.partitions {
            let key = session_key(by_id, &t.topic.0, t.topic_id, p.partition);
            let asked = Asked {
                fetch_offset: p.fetch_offset,
                max_bytes: p.partition_max_bytes,
                current_leader_epoch: p.current_leader_epoch,
                log_start_offset: p.log_start_offset,
                last_fetched_epoch: p.last_fetched_epoch,
            };
            if latest.insert(key.clone(), asked).is_none() {
                order.push(key);
            }
        }
    }
    order
        .into_iter()
        .filter_map(|key| latest.remove(&key).map(|asked| (key, asked)))
        .collect()
}

fn session_key(by_id: bool, name: &str, id: uuid::Uuid, partition: i32) -> SessionKey {
    if by_id {
        SessionKey {
            topic: String::new(),
            topic_id: id,
            partition,
        }
    } else {
        SessionKey {
            topic: name.to_string(),
            topic_id: uuid::Uuid::nil(),
            partition,
        }
    }
}

/// The partitions an incremental request removes from its session (v7+).
fn forgotten(ctx: &RequestContext, req: &FetchRequest) -> Vec<SessionKey> {
    let by_id = ctx.api_version >= 13;
    req.forgotten_topics_data
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(move |&p| session_key(by_id, &t.topic.0, t.topic_id, p))
        })
        .collect()
}

/// The partitions to read, from `entries` in their order: each resolved to this broker's
/// partition (or an error). Topics in the response are the runs of consecutive entries of one
/// topic, as Kafka's `FetchResponse.toMessage` groups them.
fn wanted_partitions(
    broker: &Broker,
    by_id: bool,
    entries: &[(SessionKey, Asked)],
) -> (Vec<TopicRef>, Vec<Wanted>) {
    let mut topics: Vec<TopicRef> = Vec::new();
    let mut wanted = Vec::with_capacity(entries.len());
    let mut current: Option<Arc<crate::replica_manager::Topic>> = None;
    let mut run: Option<&SessionKey> = None;
    for (key, asked) in entries {
        let partition = key.partition;
        // A topic is looked up once per run of its partitions (a session of a follower names
        // thousands of partitions of a few topics).
        if run.is_none_or(|r| !r.same_topic(key)) {
            run = Some(key);
            // By id, the topic that has this id (never a namesake recreated under another).
            current = if by_id {
                broker.replicas.topic_by_id(key.topic_id)
            } else {
                broker.replicas.topic(&key.topic)
            };
            topics.push(if by_id {
                TopicRef {
                    name: current
                        .as_ref()
                        .map(|topic| topic.name.clone())
                        .unwrap_or_default(),
                    id: key.topic_id,
                }
            } else {
                TopicRef {
                    name: key.topic.clone(),
                    id: uuid::Uuid::nil(),
                }
            });
        }
        let part = current
            .as_ref()
            .and_then(|topic| topic.partition(partition).cloned());
        let elsewhere = part.is_none()
            && current
                .as_ref()
                .is_some_and(|topic| topic.has_partition(partition));
        let leader_elsewhere = if elsewhere {
            current.as_ref().and_then(|topic| {
                let image = broker.replicas.image();
                let registration = image
                    .topics()
                    .topic(topic.id)?
                    .partition(partition)
                    .filter(|r| r.leader >= 0)?;
                Some((registration.leader, registration.leader_epoch))
            })
        } else {
            None
        };
        let error = if elsewhere {
            Some(ErrorCode::NOT_LEADER_OR_FOLLOWER)
        } else if by_id && current.is_none() {
            // KIP-516: an id this cluster does not know (deleted, or the topic was recreated
            // under a new id) is UNKNOWN_TOPIC_ID, never another topic's data.
            Some(ErrorCode::UNKNOWN_TOPIC_ID)
        } else {
            None
        };
        let leader_throttled = current.as_ref().is_some_and(|topic| {
            topic
                .settings
                .leader_throttled
                .includes(partition, broker.config.node_id)
        });
        wanted.push(Wanted {
            topic_index: topics.len() - 1,
            partition,
            fetch_offset: asked.fetch_offset,
            max_bytes: usize::try_from(asked.max_bytes).unwrap_or(0),
            position: Position {
                current_leader_epoch: asked.current_leader_epoch,
                log_start_offset: asked.log_start_offset,
                last_fetched_epoch: asked.last_fetched_epoch,
            },
            part,
            error,
            diverging: None,
            leader_elsewhere,
            preferred_read_replica: None,
            leader_throttled,
            held_back: false,
        });
    }
    (topics, wanted)
}

/// Most record bytes a response may carry: the request's `max_bytes`, capped by the broker's
/// `fetch.max.bytes` (Kafka: `min(request.maxBytes, fetch.max.bytes)`), and always small
/// enough that the encoded response, headers included, fits its int32 size prefix.
fn response_limits(
    request_max_bytes: i32,
    fetch_max_bytes: usize,
    topics: &[TopicRef],
    partitions: usize,
    endpoints: usize,
) -> (usize, usize) {
    let headers = topics
        .iter()
        .fold(RESPONSE_OVERHEAD, |acc, t| {
            acc.saturating_add(TOPIC_OVERHEAD + t.name.len())
        })
        .saturating_add(partitions.saturating_mul(PARTITION_OVERHEAD))
        .saturating_add(endpoints);
    let ceiling = (i32::MAX as usize).saturating_sub(headers);
    let limit = usize::try_from(request_max_bytes)
        .unwrap_or(0)
        .min(fetch_max_bytes)
        .min(ceiling);
    (limit, ceiling)
}

/// Who fetches: a follower's broker id (v15+ in `replica_state`), or -1 for a consumer.
pub(crate) fn replica_id(ctx: &RequestContext, req: &FetchRequest) -> i32 {
    if ctx.api_version >= 15 {
        req.replica_state.replica_id.0
    } else {
        req.replica_id.0
    }
}

async fn fetch(broker: Arc<Broker>, ctx: RequestContext, req: FetchRequest) -> Option<Vec<Chunk>> {
    let by_id = ctx.api_version >= 13;
    let asked = requested(&ctx, &req);
    let replica_id = replica_id(&ctx, &req);
    let session = if ctx.api_version >= 7 {
        broker.fetch_sessions.open(
            req.session_id,
            req.session_epoch,
            by_id,
            &asked,
            &forgotten(&ctx, &req),
            broker.clock.now_ms(),
        )
    } else {
        Context::Sessionless
    };
    // What the session does after the read: nothing, open one, or answer what changed in
    // session (id, epoch).
    let (entries, full, incremental) = match session {
        Context::Error(code) => {
            return encode_response(
                &ctx,
                &Encoded {
                    error_code: code.code(),
                    ..Encoded::default()
                },
            );
        }
        Context::Incremental {
            id,
            epoch,
            partitions,
        } => (partitions, false, Some((id, epoch))),
        Context::Full => (asked, true, None),
        Context::Sessionless => (asked, false, None),
    };
    let (topics, mut wanted) = wanted_partitions(&broker, by_id, &entries);
    // Every live broker's endpoint may be named in `node_endpoints` (v16+).
    let nodes = if ctx.api_version >= 16 {
        let image = broker.replicas.image();
        super::metadata::brokers(&broker, &image, ctx.listener.as_str())
            .into_iter()
            .map(|b| NodeEndpoint {
                node_id: b.node_id.0,
                host: b.host.to_string(),
                port: b.port,
                rack: b.rack.map(|r| r.to_string()),
            })
            .collect()
    } else {
        Vec::new()
    };
    let endpoint_bytes = nodes.iter().fold(0usize, |acc, n| {
        acc.saturating_add(NODE_OVERHEAD + n.host.len() + n.rack.as_ref().map_or(0, String::len))
    });
    authorize_partitions(&broker, &ctx, replica_id >= 0, &topics, &mut wanted);
    // A consumer with a fetch quota gets at most what the quota allows in its window (Kafka's
    // `getMaxValueInQuotaWindow`); replication is not a client and has no quota.
    let quota_max = (replica_id < 0)
        .then(|| {
            broker
                .quotas
                .max_fetch_bytes(ctx.principal.name(), ctx.client_id.as_deref())
        })
        .flatten()
        .unwrap_or(usize::MAX);
    let (max_bytes, ceiling) = response_limits(
        req.max_bytes,
        broker.config.fetch_max_bytes.min(quota_max.max(1)),
        &topics,
        wanted.len(),
        endpoint_bytes,
    );
    let min_bytes = usize::try_from(req.min_bytes).unwrap_or(0).max(1);
    let max_wait = Duration::from_millis(u64::try_from(req.max_wait_ms).unwrap_or(0));
    let read_committed = req.isolation_level == 1;
    // The follower's broker epoch (v15+, KIP-903): the leader names it with the follower in an
    // ISR expansion, so the controller can refuse one decided on an earlier incarnation.
    let broker_epoch = (ctx.api_version >= 15 && req.replica_state.replica_epoch >= 0)
        .then_some(req.replica_state.replica_epoch);
    let isolation = if replica_id >= 0 {
        follower_positions(&mut wanted, replica_id, broker_epoch);
        hold_back_throttled(&broker, replica_id, &mut wanted);
        FetchIsolation::LogEnd
    } else {
        // KIP-392: from v11 a consumer may fetch from a follower (Kafka's `fetchOnlyLeader` is
        // false once the request carries client metadata), which serves it up to its own high
        // watermark; below v11 only the leader answers.
        let from_any_replica = ctx.api_version >= 11;
        for w in &mut wanted {
            if let Some(part) = &w.part {
                w.error = part
                    .check_leader_epoch(w.position.current_leader_epoch)
                    .err();
                if w.error.is_none() && !from_any_replica && !part.is_leader() {
                    w.error = Some(ErrorCode::NOT_LEADER_OR_FOLLOWER);
                }
            }
        }
        if let (true, Some(selector)) = (from_any_replica, broker.config.cluster.replica_selector) {
            preferred_read_replicas(&broker, selector, &req.rack_id, &mut wanted);
        }
        if read_committed {
            FetchIsolation::TxnCommitted
        } else {
            FetchIsolation::HighWatermark
        }
    };
    let partitions: Vec<Arc<Partition>> = wanted.iter().filter_map(|w| w.part.clone()).collect();
    let results = broker
        .replicas
        .purgatory()
        .delay_fetch(&partitions, isolation, max_wait, |expired| {
            let (results, bytes, at_once) = read_once(&wanted, max_bytes, ceiling, isolation);
            // A request naming no partition (a consumer closing its fetch session) has nothing
            // to wait for: Kafka answers it at once (`fetchInfos.isEmpty`).
            (bytes >= min_bytes || at_once || expired || wanted.is_empty()).then_some(results)
        })
        .await;
    // KIP-73: what a follower got of throttled replicas counts against the leader's quota.
    if replica_id >= 0 {
        let throttled_bytes: u64 = wanted
            .iter()
            .zip(&results)
            .filter(|(w, _)| w.leader_throttled)
            .filter_map(|(_, r)| r.records.as_ref().map(|s| s.len as u64))
            .sum();
        broker
            .replicas
            .replication_quotas()
            .leader
            .record(throttled_bytes, broker.clock.now_ms());
    }
    // Kafka's BrokerTopicMetrics: each partition read counts as a fetch of its topic, and
    // its records as bytes out (to a consumer) or replication bytes out (to a follower).
    for (w, r) in wanted.iter().zip(&results) {
        if let Some(part) = &w.part {
            if r.error_code == 0 {
                let bytes = r.records.as_ref().map_or(0, |s| s.len as u64);
                part.stats.fetched(bytes, replica_id >= 0);
            } else {
                part.stats.fetch_failed(ErrorCode(r.error_code));
            }
        }
    }
    // The session: a full request opens one; an incremental one answers what changed.
    let mut session_id = crate::fetch_session::INVALID_SESSION_ID;
    let (topics, results) = match incremental {
        None if full => {
            let cached = entries
                .into_iter()
                .zip(&results)
                .map(|((key, asked), r)| {
                    let a = answered(r);
                    (key, asked, (!a.must_send).then_some(a.told))
                })
                .collect();
            session_id =
                broker
                    .fetch_sessions
                    .create(replica_id >= 0, by_id, cached, broker.clock.now_ms());
            (topics, results)
        }
        Some((id, epoch)) => {
            let answers: Vec<(SessionKey, Answered)> = entries
                .into_iter()
                .zip(&results)
                .map(|((key, _), r)| (key, answered(r)))
                .collect();
            match broker.fetch_sessions.answered(id, epoch, &answers) {
                Ok(send) => {
                    session_id = id;
                    only_sent(topics, results, &send)
                }
                Err(code) => {
                    return encode_response(
                        &ctx,
                        &Encoded {
                            error_code: code.code(),
                            session_id: id,
                            ..Encoded::default()
                        },
                    );
                }
            }
        }
        None => (topics, results),
    };
    // KIP-951: the endpoints of the leaders named in `current_leader`, and only those.
    let node_endpoints = nodes
        .into_iter()
        .filter(|n| {
            results
                .iter()
                .any(|r| r.current_leader.is_some_and(|(id, _)| id == n.node_id))
        })
        .collect();
    // Client quotas: the records sent count against the consumer's `consumer_byte_rate`;
    // over it, the response carries the throttle time and the connection is muted for it.
    let mut throttle_time_ms = 0;
    if replica_id < 0 && broker.quotas.is_active() {
        let bytes = results
            .iter()
            .filter_map(|r| r.records.as_ref().map(|s| s.len))
            .sum();
        let ms = broker.quotas.record(
            QuotaType::Fetch,
            ctx.principal.name(),
            ctx.client_id.as_deref(),
            bytes,
            broker.clock.now_ms(),
        );
        ctx.mute.mute_for(ms);
        throttle_time_ms = i32::try_from(ms).unwrap_or(i32::MAX);
    }
    encode_response(
        &ctx,
        &Encoded {
            error_code: 0,
            session_id,
            topics,
            results,
            node_endpoints,
            throttle_time_ms,
        },
    )
}

/// One partition's answer as its fetch session sees it.
fn answered(r: &PartitionResult) -> Answered {
    Answered {
        told: Told {
            high_watermark: r.high_watermark,
            log_start_offset: r.log_start_offset,
            last_stable_offset: r.last_stable_offset,
        },
        records: r.records.as_ref().is_some_and(|s| s.len > 0),
        must_send: r.error_code != 0
            || r.preferred_read_replica >= 0
            || r.diverging_epoch.is_some(),
    }
}

/// The answers flagged in `send` (one flag per answer), and the topics that still have one,
/// renumbered: an incremental answer leaves out what did not change.
fn only_sent(
    topics: Vec<TopicRef>,
    results: Vec<PartitionResult>,
    send: &[bool],
) -> (Vec<TopicRef>, Vec<PartitionResult>) {
    let mut kept_topics: Vec<TopicRef> = Vec::new();
    let mut renumbered: HashMap<usize, usize> = HashMap::new();
    let mut kept = Vec::new();
    for (mut r, _) in results
        .into_iter()
        .zip(send.iter().chain(std::iter::repeat(&true)))
        .filter(|(_, &send)| send)
    {
        let index = *renumbered.entry(r.topic_index).or_insert_with(|| {
            kept_topics.push(topics.get(r.topic_index).cloned().unwrap_or(TopicRef {
                name: String::new(),
                id: uuid::Uuid::nil(),
            }));
            kept_topics.len() - 1
        });
        r.topic_index = index;
        kept.push(r);
    }
    (kept_topics, kept)
}

/// Kafka's checks before any read: a follower (`from_follower`) needs CLUSTER_ACTION on the
/// cluster, else every partition is refused; a consumer needs READ on each topic, asked once
/// per topic, except for a topic id this cluster does not know (UNKNOWN_TOPIC_ID, as Kafka
/// answers before it authorizes). A refused partition gets TOPIC_AUTHORIZATION_FAILED and is
/// not read, waited on or reported to the replication core.
fn authorize_partitions(
    broker: &Broker,
    ctx: &RequestContext,
    from_follower: bool,
    topics: &[TopicRef],
    wanted: &mut [Wanted],
) {
    if !authorizer::enabled(broker) {
        return;
    }
    let refuse = |w: &mut Wanted| {
        w.part = None;
        w.leader_elsewhere = None;
        w.error = Some(ErrorCode::TOPIC_AUTHORIZATION_FAILED);
    };
    if from_follower {
        if !authorizer::authorize_cluster(broker, ctx, AclOperation::ClusterAction) {
            wanted.iter_mut().for_each(refuse);
        }
        return;
    }
    let name_of = |w: &Wanted| topics.get(w.topic_index).map_or("", |t| t.name.as_str());
    let unresolved = |w: &Wanted| w.error == Some(ErrorCode::UNKNOWN_TOPIC_ID);
    let authorized = authorizer::filter_authorized(
        broker,
        ctx,
        AclOperation::Read,
        ResourceType::Topic,
        wanted.iter().filter(|w| !unresolved(w)).map(name_of),
    );
    for w in wanted.iter_mut() {
        if !unresolved(w) && !authorized.contains(name_of(w)) {
            refuse(w);
        }
    }
}

/// KIP-392, on the leader: the replica the selector picks for a consumer in `client_rack`,
/// among the leader and the in-sync followers that hold the fetch offset on a live broker
/// (Kafka's `findPreferredReadReplica`). A pick other than this broker goes in the answer as
/// `preferred_read_replica`, with no records.
fn preferred_read_replicas(
    broker: &Broker,
    selector: ReplicaSelector,
    client_rack: &str,
    wanted: &mut [Wanted],
) {
    let image = broker.replicas.image();
    let racks: HashMap<i32, Option<String>> = image
        .cluster()
        .live_endpoints(&broker.config.inter_broker_listener_name())
        .map(|(b, _)| (b.id, b.rack.clone()))
        .collect();
    let now_ms = broker.clock.now_ms();
    for w in wanted.iter_mut().filter(|w| w.error.is_none()) {
        let Some(part) = &w.part else { continue };
        let Some(candidates) = part.read_replica_candidates(w.fetch_offset, now_ms) else {
            continue;
        };
        let mut views = candidates
            .into_iter()
            .filter_map(|(id, log_end_offset, since)| {
                let rack = if id == broker.config.node_id {
                    broker.config.cluster.rack.clone()
                } else {
                    racks.get(&id)?.clone()
                };
                Some(ReplicaView {
                    broker_id: id,
                    rack,
                    log_end_offset,
                    time_since_caught_up_ms: since,
                })
            });
        let Some(leader) = views.next() else { continue };
        let followers: Vec<ReplicaView> = views.collect();
        let chosen = selector.select(client_rack, &leader, &followers);
        if chosen != leader.broker_id {
            tracing::debug!(topic = %part.tp.topic, partition = part.tp.partition, client_rack,
                preferred_read_replica = chosen, "consumer sent to a follower");
            w.preferred_read_replica = Some(chosen);
        }
    }
}

/// KIP-73, Kafka's `shouldLeaderThrottle`: while the leader's replication quota
/// (`leader.replication.throttled.rate`) is exceeded, a follower that is not in sync reads
/// nothing of the throttled replicas; an in-sync follower is never held back.
fn hold_back_throttled(broker: &Broker, replica_id: i32, wanted: &mut [Wanted]) {
    if !wanted.iter().any(|w| w.leader_throttled) {
        return;
    }
    let limit = broker
        .replicas
        .effective_config()
        .leader_replication_throttled_rate;
    let quotas = broker.replicas.replication_quotas();
    if !quotas.leader.is_exceeded(limit, broker.clock.now_ms()) {
        return;
    }
    for w in wanted.iter_mut().filter(|w| w.leader_throttled) {
        if let Some(part) = &w.part {
            w.held_back = !part.isr().contains(&replica_id);
        }
    }
}

/// A follower's fetch: its position in each partition goes to the replication core (Kafka's
/// `updateFollowerFetchState`) once, before the read; a partition the core refuses (not the
/// leader, unknown replica, fenced epoch, offset out of range) is answered with that error.
fn follower_positions(wanted: &mut [Wanted], replica_id: i32, broker_epoch: Option<i64>) {
    for w in wanted {
        let Some(part) = &w.part else { continue };
        if w.position.last_fetched_epoch >= 0 {
            // Kafka's order: the leader epoch and the leadership first, then the divergence
            // check against this (the leader's) log.
            if let Err(code) = part.check_leader_epoch(w.position.current_leader_epoch) {
                w.error = Some(code);
                continue;
            }
            if !part.is_leader() {
                w.error = Some(ErrorCode::NOT_LEADER_OR_FOLLOWER);
                continue;
            }
            match part.diverging_epoch(w.position.last_fetched_epoch, w.fetch_offset) {
                Ok(None) => {}
                Ok(Some(end)) => {
                    tracing::debug!(replica_id, topic = %part.tp.topic, partition = part.tp.partition,
                        last_fetched_epoch = w.position.last_fetched_epoch, fetch_offset = w.fetch_offset,
                        epoch = end.leader_epoch, end_offset = end.end_offset, "follower log diverges");
                    w.diverging = Some(end);
                    continue;
                }
                Err(code) => {
                    w.error = Some(code);
                    continue;
                }
            }
        }
        let fetch = FollowerFetch {
            replica_id,
            fetch_offset: w.fetch_offset,
            log_start_offset: w.position.log_start_offset,
            current_leader_epoch: (w.position.current_leader_epoch >= 0)
                .then_some(w.position.current_leader_epoch),
            broker_epoch,
        };
        if let Err(code) = part.follower_fetch(&fetch) {
            tracing::debug!(replica_id, topic = %part.tp.topic, partition = part.tp.partition,
                error = %code, "follower fetch refused");
            w.error = Some(code);
        }
    }
}

/// One pass over the partitions: what is there now, within the byte limits. `max_bytes` bounds
/// the records of the whole response except the first batch of the first partition with data
/// (KIP-74); `ceiling` bounds them without exception (the int32 size prefix). Returns the
/// answers, the record bytes, and whether to answer at once whatever the bytes (an error, a
/// diverging follower, a consumer sent to another replica).
fn read_once(
    wanted: &[Wanted],
    max_bytes: usize,
    ceiling: usize,
    isolation: FetchIsolation,
) -> (Vec<PartitionResult>, usize, bool) {
    let mut out = Vec::with_capacity(wanted.len());
    let mut total = 0usize;
    let mut at_once = false;
    for w in wanted {
        let mut r = PartitionResult {
            topic_index: w.topic_index,
            partition: w.partition,
            error_code: 0,
            high_watermark: -1,
            last_stable_offset: -1,
            log_start_offset: -1,
            records: None,
            aborted_transactions: None,
            diverging_epoch: None,
            current_leader: None,
            preferred_read_replica: -1,
        };
        let Some(part) = &w.part else {
            at_once = true;
            r.error_code = w
                .error
                .unwrap_or(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION)
                .code();
            r.current_leader = w.leader_elsewhere;
            out.push(r);
            continue;
        };
        if let Some(code) = w.error {
            at_once = true;
            r.error_code = code.code();
            r.current_leader = current_leader(part, code);
            out.push(r);
            continue;
        }
        if let Some(end) = w.diverging {
            // Answered at once: the follower has to truncate before anything else.
            at_once = true;
            r.set_offsets(part);
            r.diverging_epoch = Some((end.leader_epoch, end.end_offset));
            out.push(r);
            continue;
        }
        if let Some(replica) = w.preferred_read_replica {
            // Answered at once, without records: the consumer goes to that replica.
            at_once = true;
            r.set_offsets(part);
            r.preferred_read_replica = replica;
            out.push(r);
            continue;
        }
        if w.held_back {
            // KIP-73: no records for now; the follower asks again.
            r.set_offsets(part);
            out.push(r);
            continue;
        }
        let budget = w.max_bytes.min(max_bytes.saturating_sub(total));
        // KIP-74: the first partition with data returns at least one batch, whatever its size.
        match part.fetch_read(w.fetch_offset, budget, total == 0, isolation) {
            Ok(read) => {
                r.log_start_offset = read.log_start_offset;
                r.high_watermark = read.high_watermark;
                r.last_stable_offset = read.last_stable_offset;
                // Only a first batch larger than the ceiling can fail this; it is left out
                // rather than wrap the size prefix.
                if let Some(slice) = read.info.slice {
                    if let Some(t) = total.checked_add(slice.len).filter(|&t| t <= ceiling) {
                        total = t;
                        r.records = Some(slice);
                    }
                }
                // Kafka answers read_committed with the list (empty when nothing was
                // aborted, or no records were returned), read_uncommitted with null.
                r.aborted_transactions = read.aborted_transactions.map(|list| {
                    list.into_iter()
                        .filter(|_| r.records.is_some())
                        .map(|a| (a.producer_id, a.first_offset))
                        .collect()
                });
            }
            Err(code) => {
                at_once = true;
                r.error_code = code.code();
                r.current_leader = current_leader(part, code);
                // A consumer gets -1 for both offsets with an error, as from Kafka (its
                // `createLogReadResult(e)`); it resets its position with ListOffsets. gregor's
                // own follower gets the leader's log start and high watermark with an
                // OFFSET_OUT_OF_RANGE, to truncate or restart without another round trip.
                if isolation == FetchIsolation::LogEnd {
                    if let Ok((start, hw)) = part.offsets() {
                        r.log_start_offset = start;
                        r.high_watermark = hw;
                    }
                }
            }
        }
        out.push(r);
    }
    (out, total, at_once)
}

/// KIP-951: with NOT_LEADER_OR_FOLLOWER or FENCED_LEADER_EPOCH, the leader and epoch this
/// broker knows, when it knows a leader.
fn current_leader(part: &Partition, code: ErrorCode) -> Option<(i32, i32)> {
    if !matches!(
        code,
        ErrorCode::NOT_LEADER_OR_FOLLOWER | ErrorCode::FENCED_LEADER_EPOCH
    ) {
        return None;
    }
    part.leader()
        .map(|leader| (leader, part.leader_epoch()))
        .filter(|&(id, _)| id >= 0)
}

fn put_uvarint(b: &mut bytes::BytesMut, mut v: u64) {
    while v >= 0x80 {
        b.put_u8((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    b.put_u8(v as u8);
}

/// An array or bytes length. `read_once` keeps every length (and the whole response) below
/// `i32::MAX`, so the saturation never happens; it is there so no cast can wrap.
fn put_len(b: &mut bytes::BytesMut, flexible: bool, n: usize) {
    if flexible {
        put_uvarint(b, (n as u64).saturating_add(1));
    } else {
        b.put_i32(i32::try_from(n).unwrap_or(i32::MAX));
    }
}

/// What one response says, besides the header.
#[derive(Debug, Default)]
pub(crate) struct Encoded {
    /// The top-level error (v7+).
    pub error_code: i16,
    /// The fetch session's id (v7+); 0: none.
    pub session_id: i32,
    pub topics: Vec<TopicRef>,
    pub results: Vec<PartitionResult>,
    /// `node_endpoints` (v16+).
    pub node_endpoints: Vec<NodeEndpoint>,
    /// How long the client must back off (its fetch quota), 0 if not throttled.
    pub throttle_time_ms: i32,
}

/// A compact (v12+) or classic string.
fn put_str(b: &mut bytes::BytesMut, flexible: bool, s: &str) {
    if flexible {
        put_uvarint(b, s.len() as u64 + 1);
    } else {
        b.put_i16(i16::try_from(s.len()).unwrap_or(i16::MAX));
    }
    b.put_slice(s.as_bytes());
}

/// Encodes a FetchResponse (v4–v18) with its header and size prefix; records as file ranges.
pub(crate) fn encode_response(ctx: &RequestContext, resp: &Encoded) -> Option<Vec<Chunk>> {
    // ErrorsPerSec, as Kafka's FetchResponse.errorCounts: the top-level code, each partition's.
    let key = ApiKey::Fetch as i16;
    crate::stats::count_error(key, resp.error_code);
    for p in &resp.results {
        crate::stats::count_error(key, p.error_code);
    }
    let v = ctx.api_version;
    let flex = v >= 12;
    let mut r = ChunkedResponse::new();
    {
        let b = r.buf();
        b.put_i32(ctx.correlation_id);
        if flex {
            put_uvarint(b, 0); // response header tagged fields
        }
        b.put_i32(resp.throttle_time_ms);
        if v >= 7 {
            b.put_i16(resp.error_code);
            b.put_i32(resp.session_id);
        }
        put_len(b, flex, resp.topics.len());
    }
    for (ti, topic) in resp.topics.iter().enumerate() {
        let parts: Vec<&PartitionResult> = resp
            .results
            .iter()
            .filter(|p| p.topic_index == ti)
            .collect();
        {
            let b = r.buf();
            if v >= 13 {
                b.put_slice(topic.id.as_bytes());
            } else {
                put_str(b, flex, &topic.name);
            }
            put_len(b, flex, parts.len());
        }
        for p in parts {
            let len = p.records.as_ref().map_or(0, |s| s.len);
            {
                let b = r.buf();
                b.put_i32(p.partition);
                b.put_i16(p.error_code);
                b.put_i64(p.high_watermark);
                b.put_i64(p.last_stable_offset);
                if v >= 5 {
                    b.put_i64(p.log_start_offset);
                }
                // aborted_transactions: (producer id, first offset) each; null when None.
                match (&p.aborted_transactions, flex) {
                    (Some(list), true) => {
                        put_uvarint(b, list.len() as u64 + 1);
                        for &(producer_id, first_offset) in list {
                            b.put_i64(producer_id);
                            b.put_i64(first_offset);
                            put_uvarint(b, 0); // tagged fields
                        }
                    }
                    (Some(list), false) => {
                        b.put_i32(list.len() as i32);
                        for &(producer_id, first_offset) in list {
                            b.put_i64(producer_id);
                            b.put_i64(first_offset);
                        }
                    }
                    (None, true) => put_uvarint(b, 0),
                    (None, false) => b.put_i32(-1),
                }
                if v >= 11 {
                    b.put_i32(p.preferred_read_replica);
                }
                put_len(b, flex, len);
            }
            if let Some(slice) = &p.records {
                r.push_file(slice.clone());
            }
            if flex {
                let b = r.buf();
                let current_leader = p.current_leader.filter(|_| v >= 16);
                let tags =
                    u64::from(p.diverging_epoch.is_some()) + u64::from(current_leader.is_some());
                put_uvarint(b, tags); // partition tagged fields
                                      // Tag 0, DivergingEpoch: epoch, end_offset, its own (empty) tagged fields.
                if let Some((epoch, end_offset)) = p.diverging_epoch {
                    put_uvarint(b, 0);
                    put_uvarint(b, 4 + 8 + 1);
                    b.put_i32(epoch);
                    b.put_i64(end_offset);
                    put_uvarint(b, 0);
                }
                // Tag 1, CurrentLeader: leader id, leader epoch, (empty) tagged fields.
                if let Some((leader, epoch)) = current_leader {
                    put_uvarint(b, 1);
                    put_uvarint(b, 4 + 4 + 1);
                    b.put_i32(leader);
                    b.put_i32(epoch);
                    put_uvarint(b, 0);
                }
            }
        }
        if flex {
            put_uvarint(r.buf(), 0); // topic tagged fields
        }
    }
    if flex {
        let b = r.buf();
        if v >= 16 && !resp.node_endpoints.is_empty() {
            // Tag 0, NodeEndpoints: a compact array of (node id, host, port, rack).
            let mut field = bytes::BytesMut::new();
            put_len(&mut field, true, resp.node_endpoints.len());
            for n in &resp.node_endpoints {
                field.put_i32(n.node_id);
                put_str(&mut field, true, &n.host);
                field.put_i32(n.port);
                match &n.rack {
                    Some(rack) => put_str(&mut field, true, rack),
                    None => put_uvarint(&mut field, 0),
                }
                put_uvarint(&mut field, 0);
            }
            put_uvarint(b, 1);
            put_uvarint(b, 0);
            put_uvarint(b, field.len() as u64);
            b.put_slice(&field);
        } else {
            put_uvarint(b, 0); // top-level tagged fields
        }
    }
    r.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::{Buf, Bytes};
    use gregor_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
    use gregor_protocol::messages::{ApiKey, BrokerId, FetchResponse, ProducerId, TopicName};
    use gregor_protocol::protocol::Decodable;
    use gregor_protocol::protocol::StrBytes;
    use std::io::Write;

    use gregor_protocol::messages::fetch_request::{FetchPartition, FetchTopic};

    /// A broker on `dir` leading topic `t` (one partition, epoch 1) with node 2 in the ISR as
    /// a follower, and three records appended.
    fn leading_with_follower(
        dir: &std::path::Path,
    ) -> (Arc<Broker>, Arc<crate::replica_manager::Topic>) {
        let b = broker(dir, 55 << 20);
        let topic = topic_t(&b, 2);
        let part = &topic.partitions[&0];
        crate::partition::tests::with_follower(part, vec![1, 2]);
        part.append(&crate::partition::tests::batch(3), &topic.settings)
            .expect("append");
        (b, topic)
    }

    fn broker(dir: &std::path::Path, fetch_max_bytes: usize) -> Arc<Broker> {
        let mut config = crate::config::BrokerConfig {
            data_dir: dir.to_path_buf(),
            fetch_max_bytes,
            ..Default::default()
        };
        config.group.offsets_topic_num_partitions = 1;
        crate::broker::test_broker(config)
    }

    /// A read_committed answer's aborted transactions, `(producer id, first offset)`.
    fn aborted_list(
        p: &gregor_protocol::messages::fetch_response::PartitionData,
    ) -> Vec<(i64, i64)> {
        p.aborted_transactions
            .as_ref()
            .expect("a list for read_committed")
            .iter()
            .map(|a| (a.producer_id.0, a.first_offset))
            .collect()
    }

    /// Topic `t`, one partition, `replication_factor` replicas, on `b`.
    fn topic_t(b: &Arc<Broker>, replication_factor: i16) -> Arc<crate::replica_manager::Topic> {
        b.replicas
            .create_topic("t", 1, replication_factor, Default::default())
            .expect("create")
    }

    fn ctx(version: i16) -> RequestContext {
        RequestContext::for_test(ApiKey::Fetch, version)
    }

    fn fetch_topic(name: &'static str, partitions: &[(i32, i64)]) -> FetchTopic {
        FetchTopic::default()
            .with_topic(TopicName(StrBytes::from_static_str(name)))
            .with_partitions(fetch_partitions(partitions))
    }

    /// `(partition, fetch offset)` each, 1 MiB per partition.
    fn fetch_partitions(partitions: &[(i32, i64)]) -> Vec<FetchPartition> {
        partitions
            .iter()
            .map(|&(p, offset)| {
                FetchPartition::default()
                    .with_partition(p)
                    .with_fetch_offset(offset)
                    .with_partition_max_bytes(1 << 20)
            })
            .collect()
    }

    /// A partition named 200 times is fetched once, at its last fetch offset; topics are the
    /// runs of consecutive partitions of one topic (Kafka's LinkedHashMap and toMessage).
    #[test]
    fn repeated_partitions_are_fetched_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let b = broker(dir.path(), 55 << 20);
        b.replicas
            .create_topic("t", 2, 1, Default::default())
            .expect("create");
        let mut many: Vec<(i32, i64)> = (0..200).map(|i| (0, i)).collect();
        many.push((1, 0));
        let req = FetchRequest::default().with_topics(vec![
            fetch_topic("t", &many),
            fetch_topic("u", &[(0, 0)]),
            fetch_topic("t", &[(0, 7), (1, 3)]),
        ]);
        let (topics, wanted) = wanted_partitions(&b, false, &requested(&ctx(12), &req));
        let names: Vec<&str> = topics.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["t", "u"]);
        let got: Vec<(usize, i32, i64, bool)> = wanted
            .iter()
            .map(|w| (w.topic_index, w.partition, w.fetch_offset, w.part.is_some()))
            .collect();
        assert_eq!(got, [(0, 0, 7, true), (0, 1, 3, true), (1, 0, 0, false)]);
    }

    #[test]
    fn response_limits_take_the_smaller_and_never_overflow() {
        let t = [TopicRef {
            name: "t".to_string(),
            id: uuid::Uuid::nil(),
        }];
        assert_eq!(response_limits(i32::MAX, 55 << 20, &t, 1, 0).0, 55 << 20);
        assert_eq!(response_limits(1000, 55 << 20, &t, 1, 0).0, 1000);
        assert_eq!(response_limits(-1, 55 << 20, &t, 1, 0).0, 0);
        let (limit, ceiling) = response_limits(i32::MAX, i32::MAX as usize, &t, 1 << 20, 0);
        assert_eq!(limit, ceiling);
        assert!(ceiling + (1 << 20) * PARTITION_OVERHEAD < i32::MAX as usize);
    }

    /// Three partitions of 8 batches of ~10 KiB with fetch.max.bytes = 30 000: the response
    /// carries at most 30 000 record bytes, or one batch when the first is larger than that.
    #[test]
    fn fetch_max_bytes_caps_every_response() {
        let dir = tempfile::tempdir().expect("tempdir");
        let b = broker(dir.path(), 30_000);
        let topic = b
            .replicas
            .create_topic("t", 3, 1, Default::default())
            .expect("create");
        let value = vec![b'x'; 10_000];
        for p in topic.partitions.values() {
            for _ in 0..8 {
                let batch =
                    gregor_protocol::batch::encode_simple_batch(1, &[(None, Some(&value[..]))]);
                p.append(&batch, &topic.settings).expect("append");
            }
        }
        let batch_len = topic.partitions[&0]
            .read(0, 1, true)
            .expect("read")
            .slice
            .expect("one batch")
            .len;
        let request = |max_bytes: i32| {
            FetchRequest::default()
                .with_max_bytes(max_bytes)
                .with_topics(vec![fetch_topic("t", &[(0, 0), (1, 0), (2, 0)])])
        };
        for (max_bytes, want_total) in [
            (i32::MAX, 2 * batch_len),
            (25_000, 2 * batch_len),
            (1, batch_len),
        ] {
            let req = request(max_bytes);
            let (topics, wanted) = wanted_partitions(&b, false, &requested(&ctx(12), &req));
            let (limit, ceiling) = response_limits(
                req.max_bytes,
                b.config.fetch_max_bytes,
                &topics,
                wanted.len(),
                0,
            );
            let (results, total, errors) =
                read_once(&wanted, limit, ceiling, FetchIsolation::HighWatermark);
            assert!(!errors);
            assert_eq!(total, want_total, "max_bytes {max_bytes}");
            let sum: usize = results
                .iter()
                .filter_map(|r| r.records.as_ref().map(|s| s.len))
                .sum();
            assert_eq!(sum, total);
        }
    }

    /// Fetch v11 of `t`-0 at `offset` by `replica_id` (-1: a consumer), answered at once:
    /// (error code, high watermark, record bytes).
    async fn fetch_once(b: &Arc<Broker>, replica_id: i32, offset: i64) -> (i16, i64, usize) {
        let req = FetchRequest::default()
            .with_replica_id(BrokerId(replica_id))
            .with_max_wait_ms(0)
            .with_max_bytes(1 << 20)
            .with_topics(vec![FetchTopic::default()
                .with_topic(TopicName(StrBytes::from_static_str("t")))
                .with_partitions(vec![FetchPartition::default()
                    .with_partition(0)
                    .with_current_leader_epoch(1)
                    .with_fetch_offset(offset)
                    .with_partition_max_bytes(1 << 20)])]);
        let chunks = fetch(Arc::clone(b), ctx(11), req).await.expect("fits");
        let mut bytes = crate::response::flatten(&chunks).expect("flatten");
        bytes.advance(8); // size, correlation id (response header v0)
        let resp = FetchResponse::decode(&mut bytes, 11).expect("decode");
        let p = &resp.responses[0].partitions[0];
        (
            p.error_code,
            p.high_watermark,
            p.records.as_ref().map_or(0, |r| r.len()),
        )
    }

    /// With a second replica (node 2) in the ISR: a consumer reads nothing above the high
    /// watermark; the follower reads to the log end, and its fetch at the log end moves the
    /// high watermark so the consumer then reads the records. A fetch by a replica id the
    /// partition does not have is refused.
    #[tokio::test]
    async fn a_follower_fetch_reads_to_the_log_end_and_moves_the_high_watermark() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (b, topic) = leading_with_follower(dir.path());
        let part = &topic.partitions[&0];
        assert_eq!(fetch_once(&b, -1, 0).await, (0, 0, 0));
        let (code, hw, bytes) = fetch_once(&b, 2, 0).await;
        assert_eq!((code, hw), (0, 0));
        assert!(bytes > 0, "the follower reads above the high watermark");
        assert_eq!(part.high_watermark(), 0);
        let (code, hw, _) = fetch_once(&b, 2, 3).await;
        assert_eq!((code, hw), (0, 3));
        let (code, hw, bytes) = fetch_once(&b, -1, 0).await;
        assert_eq!((code, hw), (0, 3));
        assert!(bytes > 0);
        let (code, _, _) = fetch_once(&b, 7, 0).await;
        assert_eq!(code, ErrorCode::UNKNOWN_LEADER_EPOCH.code());
    }

    /// A follower fetch (v12) whose `last_fetched_epoch` ends earlier in the leader's log than
    /// its fetch offset is answered with `diverging_epoch` and no records, and its position is
    /// not recorded; one that agrees reads on and moves the high watermark.
    #[tokio::test]
    async fn a_diverging_follower_is_told_where_its_epoch_ends() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (b, topic) = leading_with_follower(dir.path());
        let part = &topic.partitions[&0];
        let follower_fetch = |offset: i64, last_fetched_epoch: i32| {
            FetchRequest::default()
                .with_replica_id(BrokerId(2))
                .with_max_wait_ms(0)
                .with_max_bytes(1 << 20)
                .with_topics(vec![FetchTopic::default()
                    .with_topic(TopicName(StrBytes::from_static_str("t")))
                    .with_partitions(vec![FetchPartition::default()
                        .with_partition(0)
                        .with_current_leader_epoch(1)
                        .with_fetch_offset(offset)
                        .with_last_fetched_epoch(last_fetched_epoch)
                        .with_partition_max_bytes(1 << 20)])])
        };
        let send = |req: FetchRequest| {
            let b = Arc::clone(&b);
            async move {
                let chunks = fetch(b, ctx(12), req).await.expect("fits");
                let mut bytes = crate::response::flatten(&chunks).expect("flatten");
                bytes.advance(9); // size, correlation id, header tagged fields (v1 header)
                FetchResponse::decode(&mut bytes, 12).expect("decode")
            }
        };
        // Epoch 1 ends at 3 here; a follower that claims epoch-1 records up to 5 diverges.
        let resp = send(follower_fetch(5, 1)).await;
        let p = &resp.responses[0].partitions[0];
        assert_eq!(p.error_code, 0);
        assert_eq!(
            (p.diverging_epoch.epoch, p.diverging_epoch.end_offset),
            (1, 3)
        );
        assert!(p.records.as_ref().is_none_or(|r| r.is_empty()));
        assert_eq!(
            part.high_watermark(),
            0,
            "a diverging fetch is not a position"
        );
        // A follower at 3 with epoch 1 agrees: its position counts.
        let resp = send(follower_fetch(3, 1)).await;
        let p = &resp.responses[0].partitions[0];
        assert_eq!((p.error_code, p.diverging_epoch.epoch), (0, -1));
        assert_eq!(part.high_watermark(), 3);
    }

    /// A consumer's Fetch of `t`-0 at `offset` with `isolation_level`, in version `v`.
    async fn consumer_fetch(
        b: &Arc<Broker>,
        v: i16,
        isolation_level: i8,
        offset: i64,
        max_wait_ms: i32,
    ) -> FetchResponse {
        let req = FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_isolation_level(isolation_level)
            .with_max_wait_ms(max_wait_ms)
            .with_min_bytes(1)
            .with_max_bytes(1 << 20)
            .with_topics(vec![fetch_topic("t", &[(0, offset)])]);
        let chunks = fetch(Arc::clone(b), ctx(v), req).await.expect("fits");
        let mut bytes = crate::response::flatten(&chunks).expect("flatten");
        bytes.advance(if v >= 12 { 9 } else { 8 });
        FetchResponse::decode(&mut bytes, v).expect("decode")
    }

    /// read_committed (isolation level 1) reads below the last stable offset and names the
    /// aborted transactions among the records, in every version; read_uncommitted reads to
    /// the high watermark with a null list; both report the LSO. A read_committed fetch
    /// waiting at the LSO wakes when a marker moves it.
    #[tokio::test]
    async fn read_committed_stops_at_the_lso_and_names_aborted_transactions() {
        use crate::partition::tests::{batch, txn_batch};
        use gregor_protocol::control::{ControlRecordType, EndTransactionMarker};
        let dir = tempfile::tempdir().expect("tempdir");
        let b = broker(dir.path(), 55 << 20);
        let topic = topic_t(&b, 1);
        let part = Arc::clone(&topic.partitions[&0]);
        let abort = EndTransactionMarker {
            control_type: ControlRecordType::Abort,
            coordinator_epoch: 0,
        };
        let commit = EndTransactionMarker {
            control_type: ControlRecordType::Commit,
            coordinator_epoch: 0,
        };
        part.append(&txn_batch(7, 0, 2), &topic.settings)
            .expect("txn 7"); // 0..1
        part.append(&batch(3), &topic.settings).expect("plain"); // 2..4
        part.append_end_txn_marker(7, 0, abort).expect("abort 7"); // 5
        let stable_bytes = part
            .read(0, 1 << 20, true)
            .expect("read")
            .slice
            .expect("data")
            .len;
        part.append(&txn_batch(8, 0, 2), &topic.settings)
            .expect("txn 8"); // 6..7, open
        assert_eq!(
            (part.high_watermark(), part.last_stable_offset()),
            (8, Ok(6))
        );
        for v in [4, 5, 11, 12] {
            let resp = consumer_fetch(&b, v, 1, 0, 0).await;
            let p = &resp.responses[0].partitions[0];
            assert_eq!(
                (p.error_code, p.high_watermark, p.last_stable_offset),
                (0, 8, 6),
                "v{v}"
            );
            assert_eq!(
                p.records.as_ref().map_or(0, |r| r.len()),
                stable_bytes,
                "v{v}"
            );
            let aborted = aborted_list(p);
            assert_eq!(aborted, vec![(7, 0)], "v{v}");

            let resp = consumer_fetch(&b, v, 0, 0, 0).await;
            let p = &resp.responses[0].partitions[0];
            assert_eq!((p.high_watermark, p.last_stable_offset), (8, 6), "v{v}");
            assert!(p.records.as_ref().is_some_and(|r| r.len() > stable_bytes));
            assert!(
                p.aborted_transactions.is_none(),
                "null for read_uncommitted"
            );

            // At the LSO: nothing yet, and an empty list.
            let resp = consumer_fetch(&b, v, 1, 6, 0).await;
            let p = &resp.responses[0].partitions[0];
            assert!(p.records.as_ref().is_none_or(|r| r.is_empty()));
            assert_eq!(p.aborted_transactions.as_ref().map(Vec::len), Some(0));
        }
        // ListOffsets LATEST: the high watermark, or the LSO for read_committed.
        for (isolation, want) in [(0i8, 8i64), (1, 6)] {
            assert_eq!(list_offset(&b, isolation, -1), want);
        }
        // A read_committed fetch waiting at the LSO completes when the commit lands.
        let waiting = tokio::spawn({
            let b = Arc::clone(&b);
            async move { consumer_fetch(&b, 12, 1, 6, 10_000).await }
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiting.is_finished(), "nothing below the LSO yet");
        part.append_end_txn_marker(8, 0, commit).expect("commit 8"); // 8
        let resp = tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("woken by the marker")
            .expect("task");
        let p = &resp.responses[0].partitions[0];
        assert_eq!(p.last_stable_offset, 9);
        assert!(p.records.as_ref().is_some_and(|r| !r.is_empty()));
        assert_eq!(p.aborted_transactions.as_ref().map(Vec::len), Some(0));

        // A timestamp lookup finds only what the isolation level may read (the records above
        // are at 1 ms, the markers at the broker's time, this one later than both).
        part.append(&txn_batch(9, 0, 1), &topic.settings)
            .expect("txn 9"); // 9, open
                              // Half an hour ahead: within `message.timestamp.after.max.ms`.
        let late_ms = part.now_ms() + 1_800_000;
        let late = gregor_protocol::batch::encode_simple_batch(late_ms, &[(None, Some(b"v"))]);
        part.append(&late, &topic.settings).expect("late"); // 10
        for (isolation, want) in [(0i8, 10i64), (1, -1)] {
            assert_eq!(
                list_offset(&b, isolation, late_ms),
                want,
                "isolation {isolation}"
            );
        }
    }

    /// ListOffsets v5 of partition 0 of `t` for `timestamp`, as a consumer at `isolation` asks
    /// (replica id -1: the schema's default, 0, is a broker, which reads the log end).
    fn list_offset(b: &Arc<Broker>, isolation: i8, timestamp: i64) -> i64 {
        use gregor_protocol::messages::list_offsets_request::{
            ListOffsetsPartition, ListOffsetsTopic,
        };
        let req = gregor_protocol::messages::ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_isolation_level(isolation)
            .with_topics(vec![ListOffsetsTopic::default()
                .with_name(TopicName(StrBytes::from_static_str("t")))
                .with_partitions(vec![ListOffsetsPartition::default()
                    .with_partition_index(0)
                    .with_timestamp(timestamp)])]);
        let mut list_ctx = ctx(5);
        list_ctx.api = ApiKey::ListOffsets;
        let resp = super::super::list_offsets::handle(b, &list_ctx, req);
        resp.topics[0].partitions[0].offset
    }

    /// Decodes a flexible-version response (size, correlation id, header tagged fields).
    fn decode_flexible(chunks: &[Chunk], v: i16) -> FetchResponse {
        let mut bytes = crate::response::flatten(chunks).expect("flatten");
        bytes.advance(9);
        FetchResponse::decode(&mut bytes, v).expect("decode")
    }

    /// v13+ names topics by id: a known id reads the topic and is echoed; an unknown one (a
    /// deleted topic, or a name recreated under a new id) is UNKNOWN_TOPIC_ID, echoed too.
    /// v15+ takes a follower's id from `replica_state`.
    #[tokio::test]
    async fn fetch_by_topic_id_from_v13() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (b, topic) = leading_with_follower(dir.path());
        let part = &topic.partitions[&0];
        let unknown = uuid::Uuid::from_u128(42);
        let by_id = |id: uuid::Uuid, offset: i64| {
            FetchTopic::default()
                .with_topic_id(id)
                .with_partitions(vec![FetchPartition::default()
                    .with_partition(0)
                    .with_current_leader_epoch(1)
                    .with_fetch_offset(offset)
                    .with_partition_max_bytes(1 << 20)])
        };
        for v in 13..=18 {
            // A follower (node 2) at the log end: the high watermark moves to 3.
            let req = FetchRequest::default()
                .with_replica_id(BrokerId(if v < 15 { 2 } else { -1 }))
                .with_replica_state(
                    gregor_protocol::messages::fetch_request::ReplicaState::default()
                        .with_replica_id(BrokerId(if v >= 15 { 2 } else { -1 })),
                )
                .with_max_wait_ms(0)
                .with_max_bytes(1 << 20)
                .with_topics(vec![by_id(topic.id, 3)]);
            let resp = decode_flexible(&fetch(Arc::clone(&b), ctx(v), req).await.expect("fits"), v);
            assert_eq!(resp.responses[0].topic_id, topic.id, "v{v}");
            assert_eq!(resp.responses[0].partitions[0].error_code, 0, "v{v}");
            assert_eq!(
                part.high_watermark(),
                3,
                "v{v}: the follower's position counts"
            );

            let req = FetchRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_max_wait_ms(0)
                .with_max_bytes(1 << 20)
                .with_topics(vec![by_id(topic.id, 0), by_id(unknown, 0)]);
            let resp = decode_flexible(&fetch(Arc::clone(&b), ctx(v), req).await.expect("fits"), v);
            assert_eq!(resp.session_id, 0);
            let got: Vec<(uuid::Uuid, i16, bool)> = resp
                .responses
                .iter()
                .map(|t| {
                    let p = &t.partitions[0];
                    (
                        t.topic_id,
                        p.error_code,
                        p.records.as_ref().is_some_and(|r| !r.is_empty()),
                    )
                })
                .collect();
            assert_eq!(
                got,
                [
                    (topic.id, 0, true),
                    (unknown, ErrorCode::UNKNOWN_TOPIC_ID.code(), false)
                ],
                "v{v}"
            );
        }
    }

    /// A consumer's Fetch (version `v`) of `t`-0 at `offset` from `client_rack`, answered at
    /// once: (error code, high watermark, preferred read replica, record bytes).
    async fn fetch_from_rack(
        b: &Arc<Broker>,
        v: i16,
        client_rack: &'static str,
        offset: i64,
    ) -> (i16, i64, i32, usize) {
        let req = FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(0)
            .with_max_bytes(1 << 20)
            .with_rack_id(StrBytes::from_static_str(client_rack))
            .with_topics(vec![fetch_topic("t", &[(0, offset)])]);
        let chunks = fetch(Arc::clone(b), ctx(v), req).await.expect("fits");
        let mut bytes = crate::response::flatten(&chunks).expect("flatten");
        bytes.advance(if v >= 12 { 9 } else { 8 });
        let resp = FetchResponse::decode(&mut bytes, v).expect("decode");
        let p = &resp.responses[0].partitions[0];
        (
            p.error_code,
            p.high_watermark,
            p.preferred_read_replica.0,
            p.records.as_ref().map_or(0, |r| r.len()),
        )
    }

    /// KIP-392 with the rack-aware selector: the leader (rack r1) sends a consumer in the
    /// follower's rack (r2) to the follower once the follower is in the ISR and holds the
    /// fetch offset, with the offsets and no records; a consumer in the leader's rack, in no
    /// rack, or before v11 reads from the leader. Without a selector nobody is sent away.
    #[tokio::test]
    async fn a_consumer_in_a_follower_s_rack_is_sent_to_that_follower() {
        use gregor_metadata::{Endpoint, MetadataRecord, RegisterBrokerRecord};
        for selector in [Some(ReplicaSelector::RackAware), None] {
            let dir = tempfile::tempdir().expect("tempdir");
            let mut config = crate::config::BrokerConfig {
                data_dir: dir.path().to_path_buf(),
                ..Default::default()
            };
            config.group.offsets_topic_num_partitions = 1;
            config.cluster.rack = Some("r1".into());
            config.cluster.replica_selector = selector;
            let b = crate::broker::test_broker(config);
            let topic = topic_t(&b, 2);
            let part = &topic.partitions[&0];
            crate::partition::tests::with_follower(part, vec![1, 2]);
            part.append(&crate::partition::tests::batch(3), &topic.settings)
                .expect("append");
            b.replicas
                .apply_records(&[MetadataRecord::RegisterBroker(RegisterBrokerRecord {
                    log_dirs: Vec::new(),
                    broker_id: 2,
                    incarnation_id: uuid::Uuid::new_v4(),
                    broker_epoch: 2,
                    endpoints: vec![Endpoint {
                        name: crate::handlers::metadata::CLIENT_LISTENER.into(),
                        host: "127.0.0.1".into(),
                        port: 9094,
                        security_protocol: 0,
                    }],
                    rack: Some("r2".into()),
                    fenced: false,
                })]);
            // The follower has not fetched yet: its log end is not known, the leader serves.
            assert_eq!(fetch_from_rack(&b, 11, "r2", 0).await, (0, 0, -1, 0));
            // Once it has everything, the high watermark is 3 and it is the pick for r2.
            assert_eq!(fetch_once(&b, 2, 3).await.0, 0);
            let sent_away = if selector.is_some() { 2 } else { -1 };
            for v in [11, 12] {
                let (code, hw, preferred, bytes) = fetch_from_rack(&b, v, "r2", 0).await;
                assert_eq!((code, hw, preferred), (0, 3, sent_away), "v{v}");
                assert_eq!(
                    bytes > 0,
                    selector.is_none(),
                    "v{v}: records only from here"
                );
            }
            for (v, rack) in [(11, "r1"), (11, ""), (11, "r9"), (10, "r2")] {
                let (code, hw, preferred, bytes) = fetch_from_rack(&b, v, rack, 0).await;
                assert_eq!((code, hw, preferred), (0, 3, -1), "v{v} rack {rack:?}");
                assert!(bytes > 0, "v{v} rack {rack:?}");
            }
            // An offset the follower does not hold: the leader answers it itself.
            let (code, _, preferred, _) = fetch_from_rack(&b, 11, "r2", 4).await;
            assert_eq!(
                (code, preferred),
                (ErrorCode::OFFSET_OUT_OF_RANGE.code(), -1)
            );
        }
    }

    /// KIP-392 on the follower's side: from v11 a consumer reads a follower's replica up to
    /// the follower's high watermark (then nothing, no error); before v11 a follower answers
    /// NOT_LEADER_OR_FOLLOWER, as Kafka's fetch without client metadata.
    #[tokio::test]
    async fn a_follower_serves_consumers_from_v11_up_to_its_high_watermark() {
        let dir = tempfile::tempdir().expect("tempdir");
        let b = broker(dir.path(), 55 << 20);
        let topic = topic_t(&b, 1);
        let part = &topic.partitions[&0];
        part.append(&crate::partition::tests::batch(3), &topic.settings)
            .expect("append");
        assert_eq!(part.high_watermark(), 3);
        crate::partition::tests::with_leader_2(part, 1, 1);
        assert!(!part.is_leader());
        let (code, hw, preferred, bytes) = fetch_from_rack(&b, 11, "r2", 0).await;
        assert_eq!((code, hw, preferred), (0, 3, -1));
        assert!(
            bytes > 0,
            "the follower serves what it has below its high watermark"
        );
        assert_eq!(fetch_from_rack(&b, 12, "", 3).await, (0, 3, -1, 0));
        for v in [4, 10] {
            assert_eq!(
                fetch_from_rack(&b, v, "", 0).await.0,
                ErrorCode::NOT_LEADER_OR_FOLLOWER.code(),
                "v{v}"
            );
        }
    }

    /// KIP-392 with transactions: a follower that replicated a leader's log byte for byte
    /// (an aborted transaction, an open one) serves a read_committed consumer as the leader
    /// does: the same last stable offset, records and aborted-transaction list, from its own
    /// producer state and transaction index; the commit it replicates next moves its LSO.
    #[tokio::test]
    async fn a_follower_serves_read_committed_from_what_it_replicated() {
        use crate::partition::tests::{batch, txn_batch};
        use gregor_protocol::control::{ControlRecordType, EndTransactionMarker};
        let marker = |control_type| EndTransactionMarker {
            control_type,
            coordinator_epoch: 0,
        };
        let leader_dir = tempfile::tempdir().expect("tempdir");
        let leader = broker(leader_dir.path(), 55 << 20);
        let topic = topic_t(&leader, 1);
        let lp = Arc::clone(&topic.partitions[&0]);
        lp.append(&txn_batch(7, 0, 2), &topic.settings)
            .expect("txn 7"); // 0..1
        lp.append(&batch(3), &topic.settings).expect("plain"); // 2..4
        lp.append_end_txn_marker(7, 0, marker(ControlRecordType::Abort))
            .expect("abort 7"); // 5
        lp.append(&txn_batch(8, 0, 2), &topic.settings)
            .expect("txn 8"); // 6..7, open
        let log_bytes = |from: i64| {
            lp.fetch_read(from, 1 << 20, true, FetchIsolation::LogEnd)
                .expect("read")
                .info
                .slice
                .expect("data")
                .read_to_vec()
                .expect("pread")
        };

        let follower_dir = tempfile::tempdir().expect("tempdir");
        let follower = broker(follower_dir.path(), 55 << 20);
        let topic = topic_t(&follower, 1);
        let fp = Arc::clone(&topic.partitions[&0]);
        crate::partition::tests::with_leader_2(&fp, 1, 1);
        fp.append_as_follower(2, 1, &log_bytes(0), 8, 0)
            .expect("replicate");
        for b in [&leader, &follower] {
            let resp = consumer_fetch(b, 11, 1, 0, 0).await;
            let p = &resp.responses[0].partitions[0];
            assert_eq!(
                (p.error_code, p.high_watermark, p.last_stable_offset),
                (0, 8, 6)
            );
            let aborted = aborted_list(p);
            assert_eq!(aborted, vec![(7, 0)]);
        }
        let read = |b: &Arc<Broker>| {
            let b = Arc::clone(b);
            async move {
                let resp = consumer_fetch(&b, 11, 1, 0, 0).await;
                resp.responses[0].partitions[0].records.clone()
            }
        };
        assert_eq!(read(&leader).await, read(&follower).await);
        lp.append_end_txn_marker(8, 0, marker(ControlRecordType::Commit))
            .expect("commit 8"); // 8
        fp.append_as_follower(2, 1, &log_bytes(8), 9, 0)
            .expect("replicate the commit");
        let resp = consumer_fetch(&follower, 12, 1, 6, 0).await;
        let p = &resp.responses[0].partitions[0];
        assert_eq!((p.high_watermark, p.last_stable_offset), (9, 9));
        assert!(p.records.as_ref().is_some_and(|r| !r.is_empty()));
    }

    /// KIP-951: a fetch (v16+) with a leader epoch older than the one this follower knows is
    /// answered FENCED_LEADER_EPOCH with the leader and epoch it knows; before v16 the field
    /// stays at its default.
    #[tokio::test]
    async fn a_fenced_fetch_names_the_current_leader() {
        let dir = tempfile::tempdir().expect("tempdir");
        let b = broker(dir.path(), 55 << 20);
        let topic = topic_t(&b, 2);
        let part = &topic.partitions[&0];
        crate::partition::tests::with_leader_2(part, 3, 2);
        for (v, want) in [(15, (-1, -1)), (16, (2, 3)), (18, (2, 3))] {
            let req = FetchRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_max_wait_ms(0)
                .with_topics(vec![FetchTopic::default()
                    .with_topic_id(topic.id)
                    .with_partitions(vec![FetchPartition::default()
                        .with_partition(0)
                        .with_current_leader_epoch(1)
                        .with_partition_max_bytes(1 << 20)])]);
            let resp = decode_flexible(&fetch(Arc::clone(&b), ctx(v), req).await.expect("fits"), v);
            let p = &resp.responses[0].partitions[0];
            assert_eq!(p.error_code, ErrorCode::FENCED_LEADER_EPOCH.code(), "v{v}");
            assert_eq!(
                (p.current_leader.leader_id.0, p.current_leader.leader_epoch),
                want,
                "v{v}"
            );
        }
    }

    /// A fetch in a session: (session id, epoch, partitions named, partitions forgotten,
    /// max wait), every partition of topic `t` named by name (v12).
    fn session_request(
        id: i32,
        epoch: i32,
        partitions: &[(i32, i64)],
        forget: &[i32],
        max_wait_ms: i32,
    ) -> FetchRequest {
        use gregor_protocol::messages::fetch_request::ForgottenTopic;
        let mut req = FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_session_id(id)
            .with_session_epoch(epoch)
            .with_min_bytes(1)
            .with_max_bytes(1 << 20)
            .with_max_wait_ms(max_wait_ms);
        if !partitions.is_empty() {
            req.topics = vec![fetch_topic("t", partitions)];
        }
        if !forget.is_empty() {
            req.forgotten_topics_data = vec![ForgottenTopic::default()
                .with_topic(TopicName(StrBytes::from_static_str("t")))
                .with_partitions(forget.to_vec())];
        }
        req
    }

    /// (top-level error, session id, [(partition, high watermark, record bytes)]).
    type SessionAnswer = (i16, i32, Vec<(i32, i64, usize)>);

    async fn in_session(b: &Arc<Broker>, v: i16, req: FetchRequest) -> SessionAnswer {
        let resp = decode_flexible(&fetch(Arc::clone(b), ctx(v), req).await.expect("fits"), v);
        let parts = resp
            .responses
            .iter()
            .flat_map(|t| {
                assert!(
                    !t.partitions.is_empty(),
                    "a topic without partitions is left out"
                );
                t.partitions.iter().map(|p| {
                    (
                        p.partition_index,
                        p.high_watermark,
                        p.records.as_ref().map_or(0, |r| r.len()),
                    )
                })
            })
            .collect();
        (resp.error_code, resp.session_id, parts)
    }

    /// KIP-227 through the handler: a full fetch with epoch 0 opens a session; incremental
    /// fetches name only what moved, read every partition of the session and are answered
    /// with only what changed; a wrong epoch, an unknown id and topics named the other way
    /// are refused; forgetting every partition closes the session; epoch -1 opens none.
    #[tokio::test]
    async fn fetch_sessions_answer_only_what_changed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let b = broker(dir.path(), 55 << 20);
        let topic = b
            .replicas
            .create_topic("t", 3, 1, Default::default())
            .expect("create");
        let append = |p: i32| {
            topic.partitions[&p]
                .append(&crate::partition::tests::batch(1), &topic.settings)
                .expect("append");
        };
        append(0);
        let all = [(0, 0), (1, 0), (2, 0)];
        // Epoch -1: a plain full fetch, no session.
        let (code, id, parts) = in_session(&b, 12, session_request(0, -1, &all, &[], 0)).await;
        assert_eq!((code, id, parts.len()), (0, 0, 3));
        assert!(b.fetch_sessions.is_empty());
        // Epoch 0: the full answer, and a session.
        let (code, id, parts) = in_session(&b, 12, session_request(0, 0, &all, &[], 0)).await;
        assert_eq!(code, 0);
        assert_ne!(id, 0);
        assert_eq!(parts.len(), 3);
        assert!(parts[0].2 > 0);
        assert_eq!(
            (b.fetch_sessions.len(), b.fetch_sessions.partitions_cached()),
            (1, 3)
        );
        // Partition 0 moved on to its end; nothing else changed: an empty answer.
        let (code, got, parts) =
            in_session(&b, 12, session_request(id, 1, &[(0, 1)], &[], 0)).await;
        assert_eq!((code, got, parts), (0, id, vec![]));
        // New records in partition 2, which the request does not name: only it is answered.
        append(2);
        let (code, _, parts) = in_session(&b, 12, session_request(id, 2, &[], &[], 0)).await;
        assert_eq!(code, 0);
        assert_eq!(parts.len(), 1);
        assert_eq!((parts[0].0, parts[0].1), (2, 1));
        assert!(parts[0].2 > 0);
        // The same epoch again (a retried request) is refused, and so are topics by id (v13)
        // in a session that names them by name, and an id the broker does not know.
        for (v, req, want) in [
            (
                12,
                session_request(id, 2, &[], &[], 0),
                ErrorCode::INVALID_FETCH_SESSION_EPOCH,
            ),
            (
                13,
                session_request(id, 3, &[], &[], 0),
                ErrorCode::FETCH_SESSION_TOPIC_ID_ERROR,
            ),
            (
                12,
                session_request(id ^ 1, 3, &[], &[], 0),
                ErrorCode::FETCH_SESSION_ID_NOT_FOUND,
            ),
        ] {
            assert_eq!(in_session(&b, v, req).await, (want.code(), 0, vec![]));
        }
        // A long poll in the session waits for any of its partitions.
        let waiting = {
            let b = Arc::clone(&b);
            tokio::spawn(async move {
                in_session(&b, 12, session_request(id, 3, &[(2, 1)], &[], 30_000)).await
            })
        };
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!waiting.is_finished());
        append(1);
        let (code, _, parts) = tokio::time::timeout(Duration::from_secs(10), waiting)
            .await
            .expect("answered when partition 1 grew")
            .expect("joined");
        assert_eq!(code, 0);
        assert_eq!(parts.iter().map(|p| p.0).collect::<Vec<_>>(), vec![1]);
        // Forgetting every partition closes the session: a sessionless answer.
        let (code, got, parts) =
            in_session(&b, 12, session_request(id, 4, &[], &[0, 1, 2], 0)).await;
        assert_eq!((code, got, parts), (0, 0, vec![]));
        assert!(b.fetch_sessions.is_empty());
    }

    /// Below v7 there are no sessions; a session opened by id (v13+) answers topics by id.
    #[tokio::test]
    async fn sessions_by_topic_id_and_none_below_v7() {
        let dir = tempfile::tempdir().expect("tempdir");
        let b = broker(dir.path(), 55 << 20);
        let topic = b
            .replicas
            .create_topic("t", 2, 1, Default::default())
            .expect("create");
        topic.partitions[&1]
            .append(&crate::partition::tests::batch(2), &topic.settings)
            .expect("append");
        let by_id = |epoch: i32, id: i32, partitions: &[(i32, i64)]| {
            let mut req = session_request(id, epoch, &[], &[], 0);
            if !partitions.is_empty() {
                req.topics = vec![FetchTopic::default()
                    .with_topic_id(topic.id)
                    .with_partitions(fetch_partitions(partitions))];
            }
            req
        };
        let resp = decode_flexible(
            &fetch(Arc::clone(&b), ctx(13), by_id(0, 0, &[(0, 0), (1, 0)]))
                .await
                .expect("fits"),
            13,
        );
        let id = resp.session_id;
        assert_ne!(id, 0);
        assert_eq!(resp.responses[0].topic_id, topic.id);
        topic.partitions[&0]
            .append(&crate::partition::tests::batch(1), &topic.settings)
            .expect("append");
        let resp = decode_flexible(
            &fetch(Arc::clone(&b), ctx(13), by_id(1, id, &[(1, 2)]))
                .await
                .expect("fits"),
            13,
        );
        assert_eq!((resp.error_code, resp.session_id), (0, id));
        assert_eq!(resp.responses.len(), 1);
        assert_eq!(resp.responses[0].topic_id, topic.id);
        let parts: Vec<i32> = resp.responses[0]
            .partitions
            .iter()
            .map(|p| p.partition_index)
            .collect();
        assert_eq!(parts, vec![0]);
        // v4–v6 carry no session fields: every answer is full, nothing is cached.
        let cached = b.fetch_sessions.len();
        let chunks = fetch(
            Arc::clone(&b),
            ctx(6),
            session_request(0, 0, &[(0, 0), (1, 0)], &[], 0),
        )
        .await
        .expect("fits");
        let mut bytes = crate::response::flatten(&chunks).expect("flatten");
        bytes.advance(8);
        let resp = FetchResponse::decode(&mut bytes, 6).expect("decode");
        assert_eq!(resp.responses[0].partitions.len(), 2);
        assert_eq!(b.fetch_sessions.len(), cached);
    }

    /// A fetch naming no partition, as a consumer sends when it closes (session epoch -1), is
    /// answered at once, not after `max_wait_ms`: Kafka Connect closes several consumers on
    /// shutdown and each close waited the whole 500 ms.
    #[tokio::test]
    async fn a_fetch_naming_no_partition_is_answered_at_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let b = broker(dir.path(), 55 << 20);
        for v in [12, 17] {
            let req = FetchRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_session_epoch(-1)
                .with_min_bytes(1)
                .with_max_wait_ms(30_000);
            let answered =
                tokio::time::timeout(Duration::from_secs(5), fetch(Arc::clone(&b), ctx(v), req))
                    .await
                    .expect("answered before max_wait_ms");
            let resp = decode_flexible(&answered.expect("fits"), v);
            assert_eq!((resp.error_code, resp.session_id), (0, 0), "v{v}");
            assert!(resp.responses.is_empty(), "v{v}");
        }
    }

    #[test]
    fn hand_encoding_matches_kafka_protocol() {
        let mut file = tempfile::tempfile().expect("tempfile");
        let data = gregor_protocol::batch::encode_simple_batch(1, &[(None, Some(&b"hello"[..]))]);
        file.write_all(b"xxxx").expect("write");
        file.write_all(&data).expect("write");
        let file = Arc::new(file);
        let slice = FileSlice {
            file,
            position: 4,
            len: data.len(),
        };
        let topic_id = uuid::Uuid::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef);
        for v in 4..=18 {
            for read_committed in [false, true] {
                let ctx = RequestContext {
                    mute: Default::default(),
                    listener: Default::default(),
                    principal: Default::default(),
                    connection: Default::default(),
                    api: ApiKey::Fetch,
                    api_version: v,
                    correlation_id: 42,
                    client_id: None,
                    client_host: String::new(),
                };
                let results = vec![
                    PartitionResult {
                        topic_index: 0,
                        partition: 0,
                        error_code: 0,
                        high_watermark: 10,
                        last_stable_offset: 8,
                        log_start_offset: 0,
                        records: Some(slice.clone()),
                        aborted_transactions: read_committed.then(|| vec![(7, 1), (9, 4)]),
                        diverging_epoch: None,
                        current_leader: None,
                        preferred_read_replica: -1,
                    },
                    PartitionResult {
                        topic_index: 0,
                        partition: 1,
                        error_code: 1,
                        high_watermark: 5,
                        last_stable_offset: -1,
                        log_start_offset: 2,
                        records: None,
                        aborted_transactions: None,
                        diverging_epoch: (v >= 12).then_some((3, 7)),
                        current_leader: Some((2, 5)),
                        preferred_read_replica: 3,
                    },
                ];
                let node_endpoints = vec![NodeEndpoint {
                    node_id: 2,
                    host: "broker-2".to_string(),
                    port: 9092,
                    rack: (v % 2 == 0).then(|| "r1".to_string()),
                }];
                let ours = crate::response::flatten(
                    &encode_response(
                        &ctx,
                        &Encoded {
                            error_code: 0,
                            session_id: if v >= 7 { 0x5e55 } else { 0 },
                            topics: vec![TopicRef {
                                name: "t".to_string(),
                                id: topic_id,
                            }],
                            results: results.clone(),
                            node_endpoints: node_endpoints.clone(),
                            throttle_time_ms: 0,
                        },
                    )
                    .expect("a small response fits an int32 size"),
                )
                .expect("flatten");
                let partition = |p: &PartitionResult, records: Bytes| {
                    let (epoch, end_offset) = p.diverging_epoch.unwrap_or((-1, -1));
                    let (leader, leader_epoch) =
                        p.current_leader.filter(|_| v >= 16).unwrap_or((-1, -1));
                    PartitionData::default()
                        .with_diverging_epoch(
                            gregor_protocol::messages::fetch_response::EpochEndOffset::default()
                                .with_epoch(epoch)
                                .with_end_offset(end_offset),
                        )
                        .with_current_leader(
                            gregor_protocol::messages::fetch_response::LeaderIdAndEpoch::default()
                                .with_leader_id(BrokerId(leader))
                                .with_leader_epoch(leader_epoch),
                        )
                        .with_partition_index(p.partition)
                        .with_error_code(p.error_code)
                        .with_high_watermark(p.high_watermark)
                        .with_last_stable_offset(p.last_stable_offset)
                        .with_log_start_offset(p.log_start_offset)
                        .with_aborted_transactions(p.aborted_transactions.as_ref().map(|list| {
                            list.iter()
                                .map(|&(producer_id, first_offset)| {
                                    gregor_protocol::messages::fetch_response::AbortedTransaction::default()
                                        .with_producer_id(ProducerId(producer_id))
                                        .with_first_offset(first_offset)
                                })
                                .collect()
                        }))
                        .with_preferred_read_replica(BrokerId(if v >= 11 {
                            p.preferred_read_replica
                        } else {
                            -1
                        }))
                        .with_records(Some(records))
                };
                let theirs = FetchResponse::default()
                    .with_session_id(if v >= 7 { 0x5e55 } else { 0 })
                    .with_responses(vec![FetchableTopicResponse::default()
                        .with_topic(TopicName(StrBytes::from_static_str(if v >= 13 {
                            ""
                        } else {
                            "t"
                        })))
                        .with_topic_id(if v >= 13 { topic_id } else { uuid::Uuid::nil() })
                        .with_partitions(vec![
                            partition(&results[0], Bytes::from(data.clone())),
                            partition(&results[1], Bytes::new()),
                        ])])
                    .with_node_endpoints(if v >= 16 {
                        node_endpoints
                            .iter()
                            .map(|n| {
                                gregor_protocol::messages::fetch_response::NodeEndpoint::default()
                                    .with_node_id(BrokerId(n.node_id))
                                    .with_host(StrBytes::from_string(n.host.clone()))
                                    .with_port(n.port)
                                    .with_rack(n.rack.clone().map(StrBytes::from_string))
                            })
                            .collect()
                    } else {
                        Vec::new()
                    });
                let theirs = crate::request::encode(&ctx, &theirs).expect("encode");
                assert_eq!(ours, theirs, "fetch v{v} read_committed={read_committed}");
            }
        }
    }

    /// A follower's fetch needs CLUSTER_ACTION on the cluster (READ on the topic is not
    /// enough), a consumer's READ on each topic; refused partitions are
    /// TOPIC_AUTHORIZATION_FAILED, are not read and move no high watermark. An unknown topic id
    /// stays UNKNOWN_TOPIC_ID for a consumer.
    #[tokio::test]
    async fn an_authorizer_asks_followers_for_cluster_action_and_consumers_for_read() {
        use crate::authorizer::test_support::{
            allow_cluster, allow_topic, ctx_of, secured_broker_with,
        };
        let dir = tempfile::tempdir().expect("tempdir");
        let b = secured_broker_with(dir.path(), |c| c.group.offsets_topic_num_partitions = 1);
        let topic = topic_t(&b, 2);
        let part = &topic.partitions[&0];
        crate::partition::tests::with_follower(part, vec![1, 2]);
        part.append(&crate::partition::tests::batch(3), &topic.settings)
            .expect("append");
        let unknown = uuid::Uuid::from_u128(42);
        let by_id = |id: uuid::Uuid, offset: i64| {
            FetchTopic::default()
                .with_topic_id(id)
                .with_partitions(vec![FetchPartition::default()
                    .with_partition(0)
                    .with_current_leader_epoch(1)
                    .with_fetch_offset(offset)
                    .with_partition_max_bytes(1 << 20)])
        };
        // (error, has records) of each partition answered to `user` as `replica_id`.
        let fetch_as = |user: &str, replica_id: i32, topics: Vec<FetchTopic>| {
            let req = FetchRequest::default()
                .with_replica_id(BrokerId(replica_id))
                .with_max_wait_ms(0)
                .with_max_bytes(1 << 20)
                .with_topics(topics);
            let f = fetch(Arc::clone(&b), ctx_of(user, KEY, 13), req);
            async move {
                let resp = decode_flexible(&f.await.expect("fits"), 13);
                resp.responses
                    .iter()
                    .map(|t| {
                        let p = &t.partitions[0];
                        let data = p.records.as_ref().is_some_and(|r| !r.is_empty());
                        (p.error_code, data)
                    })
                    .collect::<Vec<(i16, bool)>>()
            }
        };
        let denied = (ErrorCode::TOPIC_AUTHORIZATION_FAILED.code(), false);
        let unknown_id = (ErrorCode::UNKNOWN_TOPIC_ID.code(), false);
        let consumer = || vec![by_id(topic.id, 0), by_id(unknown, 0)];
        assert_eq!(
            fetch_as("alice", -1, consumer()).await,
            vec![denied, unknown_id]
        );
        allow_topic(&b, "User:alice", AclOperation::Read, "t");
        // READ is not enough for a follower's fetch; its position is not recorded.
        assert_eq!(
            fetch_as("alice", 2, vec![by_id(topic.id, 3), by_id(unknown, 0)]).await,
            vec![denied, denied]
        );
        assert_eq!(part.high_watermark(), 0);
        allow_cluster(&b, "User:broker2", AclOperation::ClusterAction);
        assert_eq!(
            fetch_as("broker2", 2, vec![by_id(topic.id, 3)]).await,
            vec![(0, false)]
        );
        assert_eq!(part.high_watermark(), 3, "the follower's position counts");
        assert_eq!(
            fetch_as("alice", -1, consumer()).await,
            vec![(0, true), unknown_id]
        );
    }
}
