//! ShareFetch (key 78, KIP-932): a share group member's fetch from the partition leader, in
//! its share session, carrying acknowledgements of what it fetched before.
//!
//! ```text
//!  READ on the group (else GROUP_AUTHORIZATION_FAILED) ─► topics by id (UNKNOWN_TOPIC_ID),
//!  READ on each topic (TOPIC_AUTHORIZATION_FAILED) ─► session step (epoch 0 opens, -1 closes,
//!  else the next epoch: SHARE_SESSION_NOT_FOUND / INVALID_SHARE_SESSION_EPOCH)
//!  ─► acknowledgements first (each partition's acknowledge_error_code; durable before the
//!     answer) ─► close: the member's acquired records released, answered
//!  ─► acquire from the session's partitions (leader only: NOT_LEADER_OR_FOLLOWER with the
//!     leader and its endpoint) up to MaxRecords; nothing yet: wait for a high watermark to
//!     move or records to be released, at most MaxWaitMs
//! ```
//!
//! `MaxBytes` (capped by `fetch.max.bytes`) is shared evenly among the partitions fetched,
//! each returning at least one batch. As Kafka's DelayedShareFetch, a fetch acquires only once
//! `MinBytes` can be acquired from (the log from each share-partition's next fetch offset to
//! its high watermark) or `MaxWaitMs` has passed, and answers once it acquired anything or the
//! wait is over. `BatchSize` is not used (acquired ranges follow log batches).
//!
//! The response is encoded by hand (`encode_response`) so that each partition's records stay
//! a range of the segment file, sent with sendfile on plaintext as a plain fetch's are;
//! `tests::hand_encoding_matches_kafka_protocol` pins it to the kafka-protocol crate's encoding.

use std::collections::HashSet;
use std::ops::RangeInclusive;
use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, BytesMut};
use futures::future::select_all;
use gregor_metadata::{AclOperation, ResourceType};
use gregor_protocol::error::ErrorCode;
use gregor_protocol::messages::share_fetch_response::{
    AcquiredRecords, LeaderIdAndEpoch, NodeEndpoint, PartitionData, ShareFetchableTopicResponse,
};
use gregor_protocol::messages::{ApiKey, BrokerId, GroupId, ShareFetchRequest, ShareFetchResponse};
use gregor_protocol::protocol::{Encodable, StrBytes};
use gregor_share::partition::{AckBatch, AcquireMode};
use gregor_share::AcknowledgeType;
use gregor_storage::FileSlice;
use tokio::time::Instant;

use super::group_common::authorize_group;
use super::str_bytes;
use crate::authorizer;
use crate::broker::Broker;
use crate::partition::Partition;
use crate::request::{ProtocolError, Reply, RequestContext};
use crate::response::{Chunk, ChunkedResponse};
use crate::share_partitions::{PartitionRecords, SessionPartition};

/// The API this module serves.
pub const KEY: ApiKey = ApiKey::ShareFetch;
/// The versions served: v2 adds ShareAcquireMode (KIP-1206) and IsRenewAck (KIP-1222).
pub const VERSIONS: RangeInclusive<i16> = 1..=2;

/// The default `max.poll.records`, for a request that names no positive MaxRecords.
const DEFAULT_MAX_RECORDS: u64 = 500;

/// Handles a ShareFetch request; the reply completes once records are acquired, or the wait
/// is over.
pub fn handle(broker: &Arc<Broker>, ctx: RequestContext, req: ShareFetchRequest) -> Reply {
    let broker = Arc::clone(broker);
    Reply::PendingChunks(Box::pin(async move {
        let answered = share_fetch(&broker, &ctx, req).await;
        encode_response(&ctx, &answered).ok_or_else(|| {
            ProtocolError::Encode("share fetch response larger than an int32 size".to_string())
        })
    }))
}

/// A ShareFetch's answer: the response without its records, and each partition's records
/// (in the order of the response's partitions) as a range of a segment file.
pub(crate) struct Answered {
    resp: ShareFetchResponse,
    records: Vec<Option<FileSlice>>,
}

/// A partition named by a share request: resolved to this broker's replica, or refused.
pub(crate) struct Target {
    pub topic_id: uuid::Uuid,
    pub partition: i32,
    pub replica: Option<Arc<Partition>>,
    pub error: Option<ErrorCode>,
    /// With NOT_LEADER_OR_FOLLOWER: the leader and epoch the image knows.
    pub leader: Option<(i32, i32)>,
}

/// Resolves `(topic id, partition)` for a share request: an id this cluster does not know is
/// UNKNOWN_TOPIC_ID, a topic the principal may not READ is TOPIC_AUTHORIZATION_FAILED (asked
/// in `authorized`), a partition this broker does not lead NOT_LEADER_OR_FOLLOWER with its
/// leader.
pub(crate) fn resolve(
    broker: &Broker,
    authorized: &HashSet<String>,
    topic_id: uuid::Uuid,
    partition: i32,
) -> Target {
    let mut t = Target {
        topic_id,
        partition,
        replica: None,
        error: None,
        leader: None,
    };
    let Some(topic) = broker.replicas.topic_by_id(topic_id) else {
        t.error = Some(ErrorCode::UNKNOWN_TOPIC_ID);
        return t;
    };
    if authorizer::enabled(broker) && !authorized.contains(topic.name.as_str()) {
        t.error = Some(ErrorCode::TOPIC_AUTHORIZATION_FAILED);
        return t;
    }
    match topic.partition(partition) {
        Some(p) if p.is_leader() => t.replica = Some(Arc::clone(p)),
        Some(_) => t.error = Some(ErrorCode::NOT_LEADER_OR_FOLLOWER),
        None if topic.has_partition(partition) => t.error = Some(ErrorCode::NOT_LEADER_OR_FOLLOWER),
        None => t.error = Some(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION),
    }
    if t.error == Some(ErrorCode::NOT_LEADER_OR_FOLLOWER) {
        let image = broker.replicas.image();
        t.leader = image
            .topics()
            .topic(topic_id)
            .and_then(|topic| topic.partition(partition))
            .filter(|r| r.leader >= 0)
            .map(|r| (r.leader, r.leader_epoch));
    }
    t
}

/// The topic names among `ids` the principal may READ (all of them without an authorizer).
pub(crate) fn readable_topics(
    broker: &Broker,
    ctx: &RequestContext,
    ids: impl IntoIterator<Item = uuid::Uuid>,
) -> HashSet<String> {
    let names: Vec<String> = ids
        .into_iter()
        .filter_map(|id| broker.replicas.topic_by_id(id).map(|t| t.name.clone()))
        .collect();
    if !authorizer::enabled(broker) {
        return names.into_iter().collect();
    }
    authorizer::filter_authorized(
        broker,
        ctx,
        AclOperation::Read,
        ResourceType::Topic,
        names.iter().map(String::as_str),
    )
}

/// The core's acknowledgement batches; INVALID_REQUEST for an unknown type, as Kafka's
/// `validateAcknowledgementBatches`: RENEW (4) is a type from v2 on, and only in a request
/// whose IsRenewAck is set.
pub(crate) fn ack_batches(
    wire: impl IntoIterator<Item = (i64, i64, Vec<i8>)>,
    version: i16,
    is_renew_ack: bool,
) -> Result<Vec<AckBatch>, ErrorCode> {
    wire.into_iter()
        .map(|(first_offset, last_offset, types)| {
            let types = types
                .into_iter()
                .map(AcknowledgeType::from_code)
                .map(|t| match t {
                    Some(AcknowledgeType::Renew) if version < 2 || !is_renew_ack => None,
                    t => t,
                })
                .collect::<Option<Vec<_>>>()
                .ok_or(ErrorCode::INVALID_REQUEST)?;
            Ok(AckBatch {
                first_offset,
                last_offset,
                types,
            })
        })
        .collect()
}

/// Applies one partition's acknowledgements; its acknowledge error code.
pub(crate) async fn acknowledge_one(
    broker: &Broker,
    group: &str,
    member: &str,
    target: &Target,
    batches: Result<Vec<AckBatch>, ErrorCode>,
) -> ErrorCode {
    if let Some(code) = target.error {
        return code;
    }
    let Some(replica) = &target.replica else {
        return ErrorCode::UNKNOWN_TOPIC_OR_PARTITION;
    };
    let batches = match batches {
        Ok(b) => b,
        Err(code) => return code,
    };
    match broker
        .share_partitions
        .acknowledge(broker, group, member, target.topic_id, replica, &batches)
        .await
    {
        Ok(()) => ErrorCode::NONE,
        Err(code) => code,
    }
}

/// The endpoints, on the request's listener, of the leaders named in `leaders`.
pub(crate) fn leader_endpoints(
    broker: &Broker,
    ctx: &RequestContext,
    leaders: &HashSet<i32>,
) -> Vec<(i32, String, i32, Option<String>)> {
    if leaders.is_empty() {
        return Vec::new();
    }
    let image = broker.replicas.image();
    super::metadata::brokers(broker, &image, ctx.listener.as_str())
        .into_iter()
        .filter(|b| leaders.contains(&b.node_id.0))
        .map(|b| {
            (
                b.node_id.0,
                b.host.to_string(),
                b.port,
                b.rack.map(|r| r.to_string()),
            )
        })
        .collect()
}

/// What one partition answers.
#[derive(Default)]
struct Answer {
    error: Option<ErrorCode>,
    leader: Option<(i32, i32)>,
    ack: Option<ErrorCode>,
    records: PartitionRecords,
}

fn top_level(code: ErrorCode) -> Answered {
    Answered {
        resp: ShareFetchResponse::default().with_error_code(code.code()),
        records: Vec::new(),
    }
}

fn top_level_message(code: ErrorCode, message: String) -> Answered {
    let mut answered = top_level(code);
    answered.resp.error_message = Some(str_bytes(message));
    answered
}

/// A v2 request's IsRenewAck (only acknowledgements, no fetch): the fetch parameters must all
/// be 0, as Kafka's `handleShareFetchRequest` checks; the message names those that are not.
fn renew_only_refusal(req: &ShareFetchRequest) -> Option<String> {
    let set: Vec<&str> = [
        ("maxBytes", req.max_bytes),
        ("minBytes", req.min_bytes),
        ("maxRecords", req.max_records),
        ("maxWaitMs", req.max_wait_ms),
    ]
    .into_iter()
    .filter(|&(_, v)| v != 0)
    .map(|(name, _)| name)
    .collect();
    (!set.is_empty()).then(|| format!("{} must be set to 0 if isRenewAck is true.", set.join(", ")))
}

/// The group and member a ShareFetch or ShareAcknowledge names, once the request may read the
/// group: INVALID_REQUEST when either is missing or empty, GROUP_AUTHORIZATION_FAILED without
/// READ on the group.
pub(crate) fn session_member(
    broker: &Broker,
    ctx: &RequestContext,
    group_id: Option<&GroupId>,
    member_id: Option<&StrBytes>,
) -> Result<(String, String), ErrorCode> {
    let group = group_id.map(|g| g.0.to_string()).unwrap_or_default();
    let member = member_id.map(|m| m.to_string()).unwrap_or_default();
    if group.is_empty() || member.is_empty() {
        return Err(ErrorCode::INVALID_REQUEST);
    }
    if !authorize_group(broker, ctx, AclOperation::Read, &group) {
        return Err(ErrorCode::GROUP_AUTHORIZATION_FAILED);
    }
    Ok((group, member))
}

async fn share_fetch(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    req: ShareFetchRequest,
) -> Answered {
    let (group, member) =
        match session_member(broker, ctx, req.group_id.as_ref(), req.member_id.as_ref()) {
            Ok(named) => named,
            Err(code) => return top_level(code),
        };
    let version = ctx.api_version;
    let renew_only = version >= 2 && req.is_renew_ack;
    if renew_only {
        if let Some(message) = renew_only_refusal(&req) {
            return top_level_message(ErrorCode::INVALID_REQUEST, message);
        }
    }
    let mode = if version >= 2 {
        match AcquireMode::from_code(req.share_acquire_mode) {
            Some(mode) => mode,
            None => {
                return top_level_message(
                    ErrorCode::INVALID_REQUEST,
                    format!("Unknown share acquire mode {}.", req.share_acquire_mode),
                )
            }
        }
    } else {
        AcquireMode::BatchOptimized
    };
    let epoch = req.share_session_epoch;
    let has_acks = req.topics.iter().any(|t| {
        t.partitions
            .iter()
            .any(|p| !p.acknowledgement_batches.is_empty())
    });
    if epoch == 0 && has_acks {
        // Nothing can have been acquired in a session that does not exist yet.
        return top_level(ErrorCode::INVALID_REQUEST);
    }
    let manager = &broker.share_partitions;
    let now = broker.clock.now_ms();
    let requested: Vec<SessionPartition> = req
        .topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| (t.topic_id, p.partition_index)))
        .collect();
    let forgotten: Vec<SessionPartition> = req
        .forgotten_topics_data
        .iter()
        .flat_map(|t| t.partitions.iter().map(|&p| (t.topic_id, p)))
        .collect();
    // The session step, before anything is applied.
    let session = if epoch == -1 {
        if let Err(code) = manager.close_session(&group, &member) {
            return top_level(code);
        }
        None
    } else {
        match manager.fetch_session(
            &group,
            &member,
            epoch,
            &requested,
            &forgotten,
            ctx.connection,
            now,
        ) {
            Ok(s) => Some(s),
            Err(code) => return top_level(code),
        }
    };
    let all_ids = requested
        .iter()
        .chain(session.iter().flat_map(|s| s.partitions.iter()))
        .map(|(id, _)| *id)
        .collect::<HashSet<_>>();
    let readable = readable_topics(broker, ctx, all_ids);
    // Acknowledgements first.
    let mut answers: Vec<(SessionPartition, Answer)> = Vec::new();
    for t in &req.topics {
        for p in &t.partitions {
            if p.acknowledgement_batches.is_empty() {
                continue;
            }
            let target = resolve(broker, &readable, t.topic_id, p.partition_index);
            let batches = ack_batches(
                p.acknowledgement_batches
                    .iter()
                    .map(|b| (b.first_offset, b.last_offset, b.acknowledge_types.clone())),
                version,
                req.is_renew_ack,
            );
            let code = acknowledge_one(broker, &group, &member, &target, batches).await;
            answers.push((
                (t.topic_id, p.partition_index),
                Answer {
                    ack: Some(code),
                    leader: target.leader,
                    ..Answer::default()
                },
            ));
        }
    }
    let lock_ms =
        crate::share_partitions::SharePartitionManager::record_lock_duration_ms(broker, &group);
    let Some(session) = session else {
        // The session is closed: what the member still holds goes back.
        manager.release_member(broker, &group, &member).await;
        return response(broker, ctx, answers, lock_ms);
    };
    if renew_only {
        // Acknowledgements (renewals) only: nothing is fetched.
        return response(broker, ctx, answers, lock_ms);
    }
    // Fetch from every partition of the session, starting at a different one each time so
    // that MaxRecords does not always go to the first.
    let mut targets: Vec<Target> = session
        .partitions
        .iter()
        .map(|&(id, p)| resolve(broker, &readable, id, p))
        .collect();
    if !targets.is_empty() {
        let start = usize::try_from(session.epoch).unwrap_or(0) % targets.len();
        targets.rotate_left(start);
    }
    let max_records = u64::try_from(req.max_records)
        .ok()
        .filter(|&n| n > 0)
        .unwrap_or(DEFAULT_MAX_RECORDS);
    let max_bytes = usize::try_from(req.max_bytes)
        .unwrap_or(0)
        .min(broker.config.fetch_max_bytes)
        .max(1);
    let per_partition = (max_bytes / targets.len().max(1)).max(1);
    let min_bytes = usize::try_from(req.min_bytes).unwrap_or(0).max(1);
    let max_wait = Duration::from_millis(u64::try_from(req.max_wait_ms).unwrap_or(0));
    let deadline = Instant::now() + max_wait;
    let mut fetched: Vec<Answer> = Vec::new();
    loop {
        // Subscribe before acquiring, so a change after the pass still wakes the wait.
        let mut released = manager.watch_released();
        released.borrow_and_update();
        let mut watches: Vec<tokio::sync::watch::Receiver<i64>> = targets
            .iter()
            .filter_map(|t| t.replica.as_ref().map(|p| p.watch_high_watermark()))
            .collect();
        for w in &mut watches {
            w.borrow_and_update();
        }
        let expired = Instant::now() >= deadline;
        // MinBytes (Kafka's DelayedShareFetch): fewer bytes than that to acquire from, and
        // time left: wait, acquiring nothing yet. Any acquired record is at least one byte.
        if min_bytes > 1 && !expired && !targets.is_empty() {
            let mut bytes = 0usize;
            let mut failed = false;
            for t in &targets {
                if let (None, Some(replica)) = (t.error, &t.replica) {
                    match manager
                        .acquirable_bytes(broker, &group, t.topic_id, replica, per_partition)
                        .await
                    {
                        Ok(n) => bytes = bytes.saturating_add(n),
                        Err(_) => failed = true,
                    }
                } else {
                    failed = true;
                }
            }
            if !failed && bytes < min_bytes {
                wait_for_records(deadline, &mut watches, &mut released).await;
                continue;
            }
        }
        fetched.clear();
        let mut remaining = max_records;
        let mut acquired_any = false;
        let mut errors = false;
        for t in &targets {
            let mut a = Answer {
                error: t.error,
                leader: t.leader,
                ..Answer::default()
            };
            if let (None, Some(replica)) = (t.error, &t.replica) {
                if remaining > 0 {
                    match manager
                        .acquire(
                            broker,
                            &group,
                            &member,
                            t.topic_id,
                            replica,
                            remaining,
                            per_partition,
                            mode,
                        )
                        .await
                    {
                        Ok(records) => {
                            let n: u64 = records
                                .acquired
                                .iter()
                                .map(|r| {
                                    u64::try_from(r.last_offset - r.first_offset + 1).unwrap_or(0)
                                })
                                .sum();
                            remaining = remaining.saturating_sub(n);
                            acquired_any |= n > 0;
                            a.records = records;
                        }
                        Err(code) => a.error = Some(code),
                    }
                }
            }
            if a.error.is_some() {
                errors = true;
                if a.error == Some(ErrorCode::NOT_LEADER_OR_FOLLOWER) && a.leader.is_none() {
                    a.leader = t.replica.as_ref().and_then(|p| {
                        p.leader()
                            .filter(|&l| l >= 0)
                            .map(|l| (l, p.leader_epoch()))
                    });
                }
            }
            fetched.push(a);
        }
        if acquired_any || errors || targets.is_empty() || expired || Instant::now() >= deadline {
            break;
        }
        wait_for_records(deadline, &mut watches, &mut released).await;
    }
    // Merge the fetch answers with the acknowledgement answers.
    for (t, a) in targets.iter().zip(fetched) {
        let key = (t.topic_id, t.partition);
        let has_data = !a.records.acquired.is_empty() || a.error.is_some();
        if let Some((_, existing)) = answers.iter_mut().find(|(k, _)| *k == key) {
            existing.error = a.error;
            existing.leader = existing.leader.or(a.leader);
            existing.records = a.records;
        } else if session.full || has_data {
            answers.push((key, a));
        }
    }
    response(broker, ctx, answers, lock_ms)
}

/// Waits until `deadline`, a high watermark moves, or records are released.
async fn wait_for_records(
    deadline: Instant,
    watches: &mut [tokio::sync::watch::Receiver<i64>],
    released: &mut tokio::sync::watch::Receiver<u64>,
) {
    let sleep = tokio::time::sleep_until(deadline);
    let hw_changes = async {
        if watches.is_empty() {
            std::future::pending::<()>().await;
        } else {
            let _ = select_all(watches.iter_mut().map(|w| Box::pin(w.changed()))).await;
        }
    };
    tokio::select! {
        _ = sleep => {}
        _ = hw_changes => {}
        _ = released.changed() => {}
    }
}

fn response(
    broker: &Broker,
    ctx: &RequestContext,
    answers: Vec<(SessionPartition, Answer)>,
    lock_ms: i32,
) -> Answered {
    let mut records = Vec::new();
    let mut topics: Vec<ShareFetchableTopicResponse> = Vec::new();
    let mut leaders = HashSet::new();
    for ((topic_id, partition), a) in answers {
        let error = a.error.unwrap_or(ErrorCode::NONE);
        let mut current_leader = LeaderIdAndEpoch::default()
            .with_leader_id(-1)
            .with_leader_epoch(-1);
        if let (ErrorCode::NOT_LEADER_OR_FOLLOWER, Some((id, ep))) = (error, a.leader) {
            leaders.insert(id);
            current_leader = current_leader.with_leader_id(id).with_leader_epoch(ep);
        }
        let data = PartitionData::default()
            .with_partition_index(partition)
            .with_error_code(error.code())
            .with_acknowledge_error_code(a.ack.unwrap_or(ErrorCode::NONE).code())
            .with_current_leader(current_leader)
            // Written by `encode_response`, from the segment file.
            .with_records(None)
            .with_acquired_records(
                a.records
                    .acquired
                    .iter()
                    .map(|r| {
                        AcquiredRecords::default()
                            .with_first_offset(r.first_offset)
                            .with_last_offset(r.last_offset)
                            .with_delivery_count(r.delivery_count)
                    })
                    .collect(),
            );
        // In the order the encoder meets the partitions: by topic, then as added.
        let topic_index = match topics.iter().position(|t| t.topic_id == topic_id) {
            Some(i) => i,
            None => topics.len(),
        };
        let at = topics[..topic_index]
            .iter()
            .map(|t| t.partitions.len())
            .sum::<usize>()
            + topics.get(topic_index).map_or(0, |t| t.partitions.len());
        records.insert(at, a.records.records);
        match topics.get_mut(topic_index) {
            Some(t) => t.partitions.push(data),
            None => topics.push(
                ShareFetchableTopicResponse::default()
                    .with_topic_id(topic_id)
                    .with_partitions(vec![data]),
            ),
        }
    }
    let node_endpoints = leader_endpoints(broker, ctx, &leaders)
        .into_iter()
        .map(|(id, host, port, rack)| {
            NodeEndpoint::default()
                .with_node_id(BrokerId(id))
                .with_host(str_bytes(host))
                .with_port(port)
                .with_rack(rack.map(str_bytes))
        })
        .collect();
    Answered {
        resp: ShareFetchResponse::default()
            .with_acquisition_lock_timeout_ms(lock_ms)
            .with_responses(topics)
            .with_node_endpoints(node_endpoints),
        records,
    }
}

fn put_uvarint(b: &mut BytesMut, mut v: u64) {
    while v >= 0x80 {
        b.put_u8((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    b.put_u8(v as u8);
}

/// A compact nullable string.
fn put_compact_str(b: &mut BytesMut, s: Option<&str>) {
    match s {
        Some(s) => {
            put_uvarint(b, s.len() as u64 + 1);
            b.put_slice(s.as_bytes());
        }
        None => put_uvarint(b, 0),
    }
}

/// Encodes a ShareFetchResponse (v1) with its header and size prefix, each partition's
/// records as a range of a segment file (sent with sendfile on plaintext, as a plain fetch's
/// records are). The fields around them are kafka-protocol's encoding; the partition's are
/// written here (`tests::hand_encoding_matches_kafka_protocol` pins them to it). `None` when
/// it would not fit an int32 size.
fn encode_response(ctx: &RequestContext, answered: &Answered) -> Option<Vec<Chunk>> {
    let v = ctx.api_version;
    let resp = &answered.resp;
    let mut records = answered.records.iter();
    let mut r = ChunkedResponse::new();
    {
        let b = r.buf();
        b.put_i32(ctx.correlation_id);
        put_uvarint(b, 0); // response header tagged fields
        b.put_i32(resp.throttle_time_ms);
        b.put_i16(resp.error_code);
        put_compact_str(b, resp.error_message.as_deref());
        b.put_i32(resp.acquisition_lock_timeout_ms);
        put_uvarint(b, resp.responses.len() as u64 + 1);
    }
    for topic in &resp.responses {
        {
            let b = r.buf();
            b.put_slice(topic.topic_id.as_bytes());
            put_uvarint(b, topic.partitions.len() as u64 + 1);
        }
        for p in &topic.partitions {
            let slice = records.next().cloned().flatten();
            {
                let b = r.buf();
                b.put_i32(p.partition_index);
                b.put_i16(p.error_code);
                put_compact_str(b, p.error_message.as_deref());
                b.put_i16(p.acknowledge_error_code);
                put_compact_str(b, p.acknowledge_error_message.as_deref());
                p.current_leader.encode(b, v).ok()?;
                // Non-nullable for Kafka's clients (they refuse a null): empty when nothing.
                put_uvarint(b, slice.as_ref().map_or(0, |s| s.len) as u64 + 1);
            }
            if let Some(slice) = slice {
                r.push_file(slice);
            }
            let b = r.buf();
            put_uvarint(b, p.acquired_records.len() as u64 + 1);
            for a in &p.acquired_records {
                a.encode(b, v).ok()?;
            }
            put_uvarint(b, 0); // partition tagged fields
        }
        put_uvarint(r.buf(), 0); // topic tagged fields
    }
    let b = r.buf();
    put_uvarint(b, resp.node_endpoints.len() as u64 + 1);
    for n in &resp.node_endpoints {
        n.encode(b, v).ok()?;
    }
    put_uvarint(b, 0); // top-level tagged fields
    r.finish()
}

#[cfg(test)]
pub(crate) mod tests {
    use std::collections::HashMap;
    use std::sync::Mutex;

    use gregor_protocol::messages::share_acknowledge_request::{
        AcknowledgePartition, AcknowledgeTopic, AcknowledgementBatch as AckWireBatch,
    };
    use gregor_protocol::messages::share_fetch_request::{
        AcknowledgementBatch, FetchPartition, FetchTopic, ForgottenTopic,
    };
    use gregor_protocol::messages::{
        GroupId, ResponseHeader, ShareAcknowledgeRequest, ShareAcknowledgeResponse,
    };
    use gregor_protocol::protocol::{Decodable, HeaderVersion, StrBytes};
    use gregor_share::{DeliveryState, PersistError, PersistedState, ShareKey, StateSummary};

    use super::*;
    use crate::clock::ManualClock;
    use crate::request::{reply_body as body, ConnectionId};
    use crate::share_partitions::{
        INVALID_RECORD_STATE, INVALID_SHARE_SESSION_EPOCH, SHARE_SESSION_NOT_FOUND,
    };
    use crate::share_persister::{PersistFuture, Persister};

    /// The share coordinator in memory: states by key, with switches for failures.
    #[derive(Default)]
    pub(crate) struct MemPersister {
        pub states: Mutex<HashMap<ShareKey, PersistedState>>,
        pub writes: Mutex<u32>,
        pub unavailable: Mutex<bool>,
        /// Fence the next write with this error.
        pub fence_next: Mutex<Option<PersistError>>,
    }

    impl MemPersister {
        fn fail(&self) -> Option<PersistError> {
            (*self.unavailable.lock().expect("lock"))
                .then(|| PersistError::Unavailable("down".into()))
        }

        pub(crate) fn state(&self, key: &ShareKey) -> Option<PersistedState> {
            self.states.lock().expect("lock").get(key).cloned()
        }
    }

    impl Persister for MemPersister {
        fn read(&self, key: &ShareKey, _: i32) -> PersistFuture<'_, PersistedState> {
            let r = match self.fail() {
                Some(e) => Err(e),
                None => self
                    .states
                    .lock()
                    .expect("lock")
                    .get(key)
                    .cloned()
                    .ok_or(PersistError::NotInitialized),
            };
            Box::pin(async move { r })
        }
        fn write(&self, key: &ShareKey, _: i32, state: &PersistedState) -> PersistFuture<'_, ()> {
            let r = if let Some(e) = self.fail() {
                Err(e)
            } else if let Some(e) = self.fence_next.lock().expect("lock").take() {
                Err(e)
            } else {
                *self.writes.lock().expect("lock") += 1;
                self.states
                    .lock()
                    .expect("lock")
                    .insert(key.clone(), state.clone());
                Ok(())
            };
            Box::pin(async move { r })
        }
        fn initialize(
            &self,
            key: &ShareKey,
            state_epoch: i32,
            start: i64,
        ) -> PersistFuture<'_, ()> {
            let r = match self.fail() {
                Some(e) => Err(e),
                None => {
                    self.states.lock().expect("lock").insert(
                        key.clone(),
                        PersistedState {
                            state_epoch,
                            start_offset: start,
                            state_batches: Vec::new(),
                        },
                    );
                    Ok(())
                }
            };
            Box::pin(async move { r })
        }
        fn read_summary(&self, _: &ShareKey) -> PersistFuture<'_, StateSummary> {
            Box::pin(async { Err(PersistError::NotInitialized) })
        }
        fn delete(&self, key: &ShareKey) -> PersistFuture<'_, ()> {
            self.states.lock().expect("lock").remove(key);
            Box::pin(async { Ok(()) })
        }
    }

    pub(crate) struct Setup {
        pub _dir: tempfile::TempDir,
        pub broker: Arc<Broker>,
        pub clock: Arc<ManualClock>,
        pub persister: Arc<MemPersister>,
        pub topic: Arc<crate::replica_manager::Topic>,
    }

    pub(crate) fn setup() -> Setup {
        setup_with(|c| c)
    }

    pub(crate) fn setup_with(
        configure: impl FnOnce(crate::config::BrokerConfig) -> crate::config::BrokerConfig,
    ) -> Setup {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = configure(crate::config::BrokerConfig {
            data_dir: dir.path().to_path_buf(),
            ..Default::default()
        });
        let clock = Arc::new(ManualClock::new(1_000_000));
        let mut broker = crate::broker::test_broker_with_clock(config, clock.clone());
        let persister = Arc::new(MemPersister::default());
        Arc::get_mut(&mut broker)
            .expect("only reference")
            .share_persister = Arc::clone(&persister) as Arc<dyn Persister>;
        let topic = broker
            .replicas
            .create_topic("t", 1, 1, Default::default())
            .expect("create");
        Setup {
            _dir: dir,
            broker,
            clock,
            persister,
            topic,
        }
    }

    impl Setup {
        pub(crate) fn append(&self, n: usize) {
            self.topic.partitions[&0]
                .append(&crate::partition::tests::batch(n), &self.topic.settings)
                .expect("append");
        }

        pub(crate) fn key(&self) -> ShareKey {
            ShareKey {
                group_id: "g".into(),
                topic_id: self.topic.id,
                partition: 0,
            }
        }
    }

    fn ctx(api: ApiKey) -> RequestContext {
        RequestContext::for_test(api, 1)
    }

    type Acks = Vec<(i64, i64, Vec<i8>)>;

    fn request(s: &Setup, member: &str, epoch: i32, acks: Acks) -> ShareFetchRequest {
        ShareFetchRequest::default()
            .with_group_id(Some(GroupId(StrBytes::from_static_str("g"))))
            .with_member_id(Some(StrBytes::from_string(member.into())))
            .with_share_session_epoch(epoch)
            .with_max_wait_ms(0)
            .with_min_bytes(1)
            .with_max_bytes(1 << 20)
            .with_max_records(500)
            .with_batch_size(500)
            .with_topics(vec![FetchTopic::default()
                .with_topic_id(s.topic.id)
                .with_partitions(vec![FetchPartition::default()
                    .with_partition_index(0)
                    .with_acknowledgement_batches(
                        acks.into_iter()
                            .map(|(f, l, t)| {
                                AcknowledgementBatch::default()
                                    .with_first_offset(f)
                                    .with_last_offset(l)
                                    .with_acknowledge_types(t)
                            })
                            .collect(),
                    )])])
    }

    pub(crate) async fn share_fetch_req(
        b: &Arc<Broker>,
        req: ShareFetchRequest,
    ) -> ShareFetchResponse {
        share_fetch_in(b, ctx(KEY), req).await
    }

    /// ShareFetch `req` in request context `ctx`, its response decoded.
    async fn share_fetch_in(
        b: &Arc<Broker>,
        ctx: RequestContext,
        req: ShareFetchRequest,
    ) -> ShareFetchResponse {
        let version = ctx.api_version;
        let mut bytes = chunks_body(handle(b, ctx, req)).await;
        ResponseHeader::decode(&mut bytes, ShareFetchResponse::header_version(version))
            .expect("header");
        ShareFetchResponse::decode(&mut bytes, version).expect("decode")
    }

    /// A chunked reply's bytes after the size prefix (checked), the file ranges read.
    async fn chunks_body(reply: Reply) -> bytes::Bytes {
        use bytes::Buf;
        let Reply::PendingChunks(f) = reply else {
            panic!("a share fetch answers with chunks")
        };
        let chunks = f.await.expect("encoded");
        let mut bytes = crate::response::flatten(&chunks).expect("flatten");
        let size = bytes.get_i32();
        assert_eq!(
            usize::try_from(size).expect("size"),
            bytes.len(),
            "size prefix"
        );
        bytes
    }

    async fn fetch(s: &Setup, member: &str, epoch: i32, acks: Acks) -> ShareFetchResponse {
        share_fetch_req(&s.broker, request(s, member, epoch, acks)).await
    }

    /// [`fetch`] on client connection `connection`.
    async fn fetch_on(
        s: &Setup,
        member: &str,
        epoch: i32,
        connection: ConnectionId,
    ) -> ShareFetchResponse {
        let mut ctx = ctx(KEY);
        ctx.connection = connection;
        share_fetch_in(&s.broker, ctx, request(s, member, epoch, vec![])).await
    }

    async fn acknowledge(
        s: &Setup,
        member: &str,
        epoch: i32,
        acks: Acks,
    ) -> ShareAcknowledgeResponse {
        acknowledge_v(s, member, epoch, acks, 1, false).await
    }

    /// ShareAcknowledge at `version`, with IsRenewAck `renew` (v2).
    async fn acknowledge_v(
        s: &Setup,
        member: &str,
        epoch: i32,
        acks: Acks,
        version: i16,
        renew: bool,
    ) -> ShareAcknowledgeResponse {
        let req = ShareAcknowledgeRequest::default()
            .with_is_renew_ack(renew)
            .with_group_id(Some(GroupId(StrBytes::from_static_str("g"))))
            .with_member_id(Some(StrBytes::from_string(member.into())))
            .with_share_session_epoch(epoch)
            .with_topics(vec![AcknowledgeTopic::default()
                .with_topic_id(s.topic.id)
                .with_partitions(vec![AcknowledgePartition::default()
                    .with_partition_index(0)
                    .with_acknowledgement_batches(
                        acks.into_iter()
                            .map(|(f, l, t)| {
                                AckWireBatch::default()
                                    .with_first_offset(f)
                                    .with_last_offset(l)
                                    .with_acknowledge_types(t)
                            })
                            .collect(),
                    )])]);
        let api = super::super::share_acknowledge::KEY;
        let mut bytes = body(super::super::share_acknowledge::handle(
            &s.broker,
            RequestContext::for_test(api, version),
            req,
        ))
        .await;
        ResponseHeader::decode(
            &mut bytes,
            ShareAcknowledgeResponse::header_version(version),
        )
        .expect("header");
        ShareAcknowledgeResponse::decode(&mut bytes, version).expect("decode")
    }

    /// `(first, last, delivery count)` of the only partition's acquired records.
    fn acquired(r: &ShareFetchResponse) -> Vec<(i64, i64, i16)> {
        r.responses
            .iter()
            .flat_map(|t| t.partitions.iter())
            .flat_map(|p| p.acquired_records.iter())
            .map(|a| (a.first_offset, a.last_offset, a.delivery_count))
            .collect()
    }

    fn partition(r: &ShareFetchResponse) -> &PartitionData {
        &r.responses[0].partitions[0]
    }

    #[tokio::test]
    async fn fetch_acquire_acknowledge_and_persist() {
        let s = setup();
        s.append(2); // 0-1, before the share-partition exists: latest starts after them
        let r = fetch(&s, "m1", 0, vec![]).await;
        assert_eq!(r.error_code, 0);
        assert_eq!(r.acquisition_lock_timeout_ms, 30_000);
        assert_eq!(
            partition(&r).error_code,
            0,
            "a full session names its partitions"
        );
        assert!(acquired(&r).is_empty());
        assert_eq!(
            s.persister.state(&s.key()).map(|st| st.start_offset),
            Some(2),
            "initialized at the high watermark"
        );
        s.append(3); // 2-4
        s.append(2); // 5-6
        let r = fetch(&s, "m1", 1, vec![]).await;
        assert_eq!(acquired(&r), vec![(2, 6, 1)]);
        let records = partition(&r).records.clone().expect("records");
        let offsets: Vec<(i64, i64)> = gregor_protocol::batch::batches(&records)
            .map(|b| {
                b.map(|b| (b.base_offset(), b.last_offset()))
                    .expect("batch")
            })
            .collect();
        assert_eq!(offsets, vec![(2, 4), (5, 6)]);
        // Acknowledge with the next fetch: accepted, and durable before the answer.
        let r = fetch(&s, "m1", 2, vec![(2, 4, vec![1]), (5, 6, vec![2])]).await;
        assert_eq!(partition(&r).acknowledge_error_code, 0);
        // 5-6 released: fetched again in the same request, delivery count 2.
        assert_eq!(acquired(&r), vec![(5, 6, 2)]);
        let st = s.persister.state(&s.key()).expect("state");
        assert_eq!(st.start_offset, 5);
        // Acknowledged twice: not acquired any more.
        let r = acknowledge(&s, "m1", 3, vec![(5, 6, vec![1])]).await;
        assert_eq!(r.responses[0].partitions[0].error_code, 0);
        assert_eq!(s.persister.state(&s.key()).expect("state").start_offset, 7);
        let r = acknowledge(&s, "m1", 4, vec![(5, 6, vec![3])]).await;
        assert_eq!(
            r.responses[0].partitions[0].error_code, 0,
            "below the SPSO: done"
        );
    }

    /// ShareFetch v2 of `req`.
    async fn fetch_v2(s: &Setup, req: ShareFetchRequest) -> ShareFetchResponse {
        share_fetch_in(&s.broker, RequestContext::for_test(KEY, 2), req).await
    }

    /// A v2 renew-only ShareFetch: acknowledgements, every fetch parameter 0.
    fn renew_request(s: &Setup, member: &str, epoch: i32, acks: Acks) -> ShareFetchRequest {
        request(s, member, epoch, acks)
            .with_is_renew_ack(true)
            .with_max_bytes(0)
            .with_min_bytes(0)
            .with_max_records(0)
            .with_batch_size(0)
    }

    #[tokio::test]
    async fn renew_in_share_acknowledge_v2_keeps_the_records_past_their_lock() {
        let s = setup();
        fetch(&s, "m1", 0, vec![]).await;
        s.append(3); // 0-2
        let r = fetch(&s, "m1", 1, vec![]).await;
        assert_eq!(acquired(&r), vec![(0, 2, 1)]);
        s.clock.advance(20_000);
        let a = acknowledge_v(&s, "m1", 2, vec![(0, 2, vec![4])], 2, true).await;
        assert_eq!(a.error_code, 0);
        assert_eq!(a.responses[0].partitions[0].error_code, 0);
        assert_eq!(a.acquisition_lock_timeout_ms, 30_000);
        // Past the first lock (30 s after the fetch), still held: another member gets nothing.
        s.clock.advance(20_000);
        s.broker.share_partitions.tick(&s.broker).await;
        fetch(&s, "m2", 0, vec![]).await;
        let r = fetch(&s, "m2", 1, vec![]).await;
        assert!(acquired(&r).is_empty(), "still acquired by m1");
        // m2 may not renew what m1 holds; nor may m1 once the renewed lock ran out.
        let a = acknowledge_v(&s, "m2", 2, vec![(0, 2, vec![4])], 2, true).await;
        assert_eq!(
            a.responses[0].partitions[0].error_code,
            INVALID_RECORD_STATE.code()
        );
        let a = acknowledge_v(&s, "m1", 3, vec![(0, 2, vec![1])], 2, false).await;
        assert_eq!(a.responses[0].partitions[0].error_code, 0, "accepted");
        assert_eq!(s.persister.state(&s.key()).expect("state").start_offset, 3);
    }

    #[tokio::test]
    async fn renew_is_refused_in_v1_and_without_is_renew_ack() {
        let s = setup();
        fetch(&s, "m1", 0, vec![]).await;
        s.append(3);
        fetch(&s, "m1", 1, vec![]).await;
        let a = acknowledge_v(&s, "m1", 2, vec![(0, 2, vec![4])], 1, false).await;
        assert_eq!(
            a.responses[0].partitions[0].error_code,
            ErrorCode::INVALID_REQUEST.code()
        );
        let a = acknowledge_v(&s, "m1", 3, vec![(0, 2, vec![4])], 2, false).await;
        assert_eq!(
            a.responses[0].partitions[0].error_code,
            ErrorCode::INVALID_REQUEST.code()
        );
        let a = acknowledge_v(&s, "m1", 4, vec![(0, 2, vec![5])], 2, true).await;
        assert_eq!(
            a.responses[0].partitions[0].error_code,
            ErrorCode::INVALID_REQUEST.code()
        );
        // In a ShareFetch v1: the partition's acknowledge error.
        let r = fetch(&s, "m1", 5, vec![(0, 2, vec![4])]).await;
        assert_eq!(
            partition(&r).acknowledge_error_code,
            ErrorCode::INVALID_REQUEST.code()
        );
        // The group may turn renewals off: INVALID_RECORD_STATE, as Kafka's SharePartition.
        s.broker
            .replicas
            .apply_records(&[gregor_metadata::MetadataRecord::Config(
                gregor_metadata::ConfigRecord {
                    resource: gregor_metadata::ConfigResource::Group("g".into()),
                    name: "share.renew.acknowledge.enable".into(),
                    value: Some("false".into()),
                },
            )]);
        let a = acknowledge_v(&s, "m1", 6, vec![(0, 2, vec![4])], 2, true).await;
        assert_eq!(
            a.responses[0].partitions[0].error_code,
            INVALID_RECORD_STATE.code()
        );
    }

    #[tokio::test]
    async fn share_fetch_v2_renews_without_fetching() {
        let s = setup();
        fetch(&s, "m1", 0, vec![]).await;
        s.append(3); // 0-2
        fetch(&s, "m1", 1, vec![]).await;
        s.append(2); // 3-4: not fetched by a renewal
        s.clock.advance(25_000);
        let r = fetch_v2(&s, renew_request(&s, "m1", 2, vec![(0, 2, vec![4])])).await;
        assert_eq!(r.error_code, 0);
        assert_eq!(partition(&r).acknowledge_error_code, 0);
        assert!(acquired(&r).is_empty(), "a renewal fetches nothing");
        s.clock.advance(25_000);
        s.broker.share_partitions.tick(&s.broker).await;
        // 0-2 still held by m1 (renewed at 25 s); m1's next fetch gets 3-4 only.
        let r = fetch_v2(&s, request(&s, "m1", 3, vec![])).await;
        assert_eq!(acquired(&r), vec![(3, 4, 1)]);
        // Fetch parameters with IsRenewAck: the request is refused whole.
        let r = fetch_v2(
            &s,
            renew_request(&s, "m1", 4, vec![(0, 2, vec![4])]).with_max_records(10),
        )
        .await;
        assert_eq!(r.error_code, ErrorCode::INVALID_REQUEST.code());
        assert_eq!(
            r.error_message.as_deref(),
            Some("maxRecords must be set to 0 if isRenewAck is true.")
        );
    }

    #[tokio::test]
    async fn record_limit_mode_acquires_at_most_max_records() {
        let s = setup();
        fetch(&s, "m1", 0, vec![]).await;
        s.append(10); // one batch, 0-9
        let r = fetch_v2(
            &s,
            request(&s, "m1", 1, vec![])
                .with_share_acquire_mode(1)
                .with_max_records(4),
        )
        .await;
        assert_eq!(acquired(&r), vec![(0, 3, 1)]);
        // batch_optimized (0) takes the rest of the batch whole.
        let r = fetch_v2(
            &s,
            request(&s, "m1", 2, vec![])
                .with_share_acquire_mode(0)
                .with_max_records(1),
        )
        .await;
        assert_eq!(acquired(&r), vec![(4, 9, 1)]);
        let r = fetch_v2(&s, request(&s, "m1", 3, vec![]).with_share_acquire_mode(7)).await;
        assert_eq!(r.error_code, ErrorCode::INVALID_REQUEST.code());
    }

    #[tokio::test]
    async fn session_epochs_are_checked() {
        let s = setup();
        let r = fetch(&s, "m1", 1, vec![]).await;
        assert_eq!(r.error_code, SHARE_SESSION_NOT_FOUND.code());
        let r = fetch(&s, "m1", 0, vec![(0, 0, vec![1])]).await;
        assert_eq!(
            r.error_code,
            ErrorCode::INVALID_REQUEST.code(),
            "acks when opening"
        );
        fetch(&s, "m1", 0, vec![]).await;
        let r = fetch(&s, "m1", 2, vec![]).await;
        assert_eq!(r.error_code, INVALID_SHARE_SESSION_EPOCH.code());
        let r = fetch(&s, "m1", 1, vec![]).await;
        assert_eq!(r.error_code, 0);
        let a = acknowledge(&s, "m1", 0, vec![]).await;
        assert_eq!(a.error_code, INVALID_SHARE_SESSION_EPOCH.code());
        let a = acknowledge(&s, "m1", 2, vec![]).await;
        assert_eq!(a.error_code, 0);
        let r = fetch(&s, "m1", 3, vec![]).await;
        assert_eq!(r.error_code, 0, "acknowledgements move the epoch too");
        // Reopening replaces the session.
        let r = fetch(&s, "m1", 0, vec![]).await;
        assert_eq!(r.error_code, 0);
        let r = fetch(&s, "m1", 4, vec![]).await;
        assert_eq!(r.error_code, INVALID_SHARE_SESSION_EPOCH.code());
        // Closed: gone.
        let r = fetch(&s, "m1", -1, vec![]).await;
        assert_eq!(r.error_code, 0);
        let r = fetch(&s, "m1", 1, vec![]).await;
        assert_eq!(r.error_code, SHARE_SESSION_NOT_FOUND.code());
        assert_eq!(s.broker.share_partitions.session_count(), 0);
    }

    #[tokio::test]
    async fn two_members_share_records_and_ack_only_their_own() {
        let s = setup();
        fetch(&s, "m1", 0, vec![]).await;
        fetch(&s, "m2", 0, vec![]).await;
        s.append(3); // 0-2
        let r1 = fetch(&s, "m1", 1, vec![]).await;
        assert_eq!(acquired(&r1), vec![(0, 2, 1)]);
        let r2 = fetch(&s, "m2", 1, vec![]).await;
        assert!(acquired(&r2).is_empty(), "all held by m1");
        s.append(2); // 3-4
        let r2 = fetch(&s, "m2", 2, vec![(0, 2, vec![1])]).await;
        assert_eq!(
            partition(&r2).acknowledge_error_code,
            INVALID_RECORD_STATE.code(),
            "m1's records"
        );
        assert_eq!(acquired(&r2), vec![(3, 4, 1)]);
        // m1 closes its session: its records are released, their delivery counted (Kafka 4.4).
        let r = fetch(&s, "m1", -1, vec![]).await;
        assert_eq!(r.error_code, 0);
        let r2 = fetch(&s, "m2", 3, vec![]).await;
        assert_eq!(acquired(&r2), vec![(0, 2, 2)]);
    }

    #[tokio::test]
    async fn a_closed_connection_ends_its_sessions_and_releases_their_records_at_once() {
        let s = setup();
        let manager = &s.broker.share_partitions;
        let (x, y) = (ConnectionId(1_000_001), ConnectionId(1_000_002));
        fetch_on(&s, "m1", 0, x).await;
        fetch_on(&s, "m2", 0, y).await;
        s.append(3); // 0-2
        let r1 = fetch_on(&s, "m1", 1, x).await;
        assert_eq!(acquired(&r1), vec![(0, 2, 1)]);
        assert!(acquired(&fetch_on(&s, "m2", 1, y).await).is_empty());
        // Connections without a session, and requests on no connection, end nothing.
        assert_eq!(
            manager.connection_closed(&s.broker, ConnectionId(7)).await,
            0
        );
        assert_eq!(
            manager
                .connection_closed(&s.broker, ConnectionId::NONE)
                .await,
            0
        );
        assert_eq!(manager.session_count(), 2);
        // m1's connection closes (the consumer was killed): its session ends and its records
        // are available again now, long before their 30 s acquisition lock ends.
        assert_eq!(manager.connection_closed(&s.broker, x).await, 1);
        assert_eq!(manager.session_count(), 1);
        let r2 = fetch_on(&s, "m2", 2, y).await;
        assert_eq!(
            acquired(&r2),
            vec![(0, 2, 2)],
            "released, the delivery counted"
        );
        let r1 = fetch_on(&s, "m1", 2, x).await;
        assert_eq!(r1.error_code, SHARE_SESSION_NOT_FOUND.code());
        assert!(
            manager.offsets(&s.key()).is_some(),
            "m2 still has a session here"
        );
        // The group's last session here ends with its connection: m2's records go back, are
        // written, and the share-partition leaves the cache (Kafka's onGroupEmpty).
        assert_eq!(manager.connection_closed(&s.broker, y).await, 1);
        assert_eq!(manager.session_count(), 0);
        assert_eq!(manager.offsets(&s.key()), None);
        let st = s.persister.state(&s.key()).expect("state");
        assert_eq!(st.start_offset, 0);
        assert!(
            st.state_batches
                .iter()
                .all(|b| b.delivery_state == DeliveryState::Available),
            "nothing stays acquired: {st:?}"
        );
    }

    #[tokio::test]
    async fn a_deleted_topic_s_share_partitions_leave_the_leader() {
        let s = setup();
        let manager = &s.broker.share_partitions;
        fetch(&s, "m", 0, vec![]).await;
        s.append(2);
        assert_eq!(acquired(&fetch(&s, "m", 1, vec![]).await), vec![(0, 1, 1)]);
        assert!(manager.offsets(&s.key()).is_some());
        s.broker
            .replicas
            .apply_records(&[gregor_metadata::MetadataRecord::RemoveTopic(
                gregor_metadata::RemoveTopicRecord {
                    topic_id: s.topic.id,
                },
            )]);
        let writes = *s.persister.writes.lock().expect("lock");
        manager.tick(&s.broker).await;
        assert_eq!(
            manager.offsets(&s.key()),
            None,
            "dropped with its partition"
        );
        assert_eq!(
            *s.persister.writes.lock().expect("lock"),
            writes,
            "nothing written for it"
        );
        let r = fetch(&s, "m", 2, vec![]).await;
        assert_eq!(r.error_code, 0);
        assert_eq!(partition(&r).error_code, ErrorCode::UNKNOWN_TOPIC_ID.code());
        assert_eq!(manager.offsets(&s.key()), None);
    }

    #[tokio::test]
    async fn a_session_follows_the_connection_of_its_last_request() {
        let s = setup();
        let manager = &s.broker.share_partitions;
        let (x, z) = (ConnectionId(1_000_011), ConnectionId(1_000_012));
        fetch_on(&s, "m", 0, x).await;
        s.append(1);
        // The client reconnected: the session goes on over the new connection.
        assert_eq!(acquired(&fetch_on(&s, "m", 1, z).await), vec![(0, 0, 1)]);
        assert_eq!(manager.connection_closed(&s.broker, x).await, 0);
        assert_eq!(manager.session_count(), 1);
        // A ShareAcknowledge binds it as well.
        let mut actx = ctx(super::super::share_acknowledge::KEY);
        actx.connection = x;
        let req = ShareAcknowledgeRequest::default()
            .with_group_id(Some(GroupId(StrBytes::from_static_str("g"))))
            .with_member_id(Some(StrBytes::from_static_str("m")))
            .with_share_session_epoch(2);
        let mut bytes = body(super::super::share_acknowledge::handle(
            &s.broker, actx, req,
        ))
        .await;
        ResponseHeader::decode(&mut bytes, ShareAcknowledgeResponse::header_version(1))
            .expect("header");
        let a = ShareAcknowledgeResponse::decode(&mut bytes, 1).expect("decode");
        assert_eq!(a.error_code, 0);
        assert_eq!(manager.connection_closed(&s.broker, z).await, 0);
        assert_eq!(manager.connection_closed(&s.broker, x).await, 1);
        assert_eq!(manager.session_count(), 0);
    }

    #[tokio::test]
    async fn lock_timeout_redelivers_then_archives_at_the_limit() {
        let s = setup();
        fetch(&s, "m", 0, vec![]).await;
        s.append(1); // 0
        let mut epoch = 1;
        for count in 1..=5i16 {
            let r = fetch(&s, "m", epoch, vec![]).await;
            epoch += 1;
            assert_eq!(acquired(&r), vec![(0, 0, count)]);
            s.clock.advance(30_000);
            s.broker.share_partitions.tick(&s.broker).await;
        }
        let r = fetch(&s, "m", epoch, vec![]).await;
        assert!(acquired(&r).is_empty(), "archived after 5 deliveries");
        let st = s.persister.state(&s.key()).expect("state");
        assert_eq!(st.start_offset, 1);
    }

    #[tokio::test]
    async fn a_long_poll_wakes_on_new_records_and_on_releases() {
        let s = setup();
        fetch(&s, "m1", 0, vec![]).await;
        fetch(&s, "m2", 0, vec![]).await;
        let spawn_fetch = |req: ShareFetchRequest| {
            let b = Arc::clone(&s.broker);
            tokio::spawn(async move { share_fetch_req(&b, req).await })
        };
        let waiting = spawn_fetch(request(&s, "m1", 1, vec![]).with_max_wait_ms(10_000));
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiting.is_finished());
        s.append(2);
        let r = tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("woken")
            .expect("join");
        assert_eq!(acquired(&r), vec![(0, 1, 1)]);
        // m2 waits; m1 releases what it holds: m2 gets it.
        let waiting = spawn_fetch(request(&s, "m2", 1, vec![]).with_max_wait_ms(10_000));
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiting.is_finished());
        let a = acknowledge(&s, "m1", 2, vec![(0, 1, vec![2])]).await;
        assert_eq!(a.responses[0].partitions[0].error_code, 0);
        let r = tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("woken")
            .expect("join");
        assert_eq!(acquired(&r), vec![(0, 1, 2)]);
    }

    #[tokio::test]
    async fn an_unreachable_share_coordinator_is_a_retriable_partition_error() {
        let s = setup();
        *s.persister.unavailable.lock().expect("lock") = true;
        let r = fetch(&s, "m", 0, vec![]).await;
        assert_eq!(r.error_code, 0);
        assert_eq!(
            partition(&r).error_code,
            ErrorCode::COORDINATOR_NOT_AVAILABLE.code()
        );
        assert_eq!(
            partition(&r).records.as_ref().map(|b| b.len()),
            Some(0),
            "records are empty, never null: Kafka's clients refuse a null"
        );
        *s.persister.unavailable.lock().expect("lock") = false;
        s.append(1);
        let r = fetch(&s, "m", 1, vec![]).await;
        assert!(r.responses.is_empty(), "incremental, nothing to say");
        assert_eq!(
            s.persister.state(&s.key()).map(|st| st.start_offset),
            Some(1),
            "started at the high watermark when loaded"
        );
        s.append(1);
        let r = fetch(&s, "m", 2, vec![]).await;
        assert_eq!(acquired(&r), vec![(1, 1, 1)]);
    }

    #[tokio::test]
    async fn a_fenced_write_drops_the_share_partition_and_the_next_fetch_reloads_it() {
        let s = setup();
        fetch(&s, "m", 0, vec![]).await;
        s.append(3);
        let r = fetch(&s, "m", 1, vec![]).await;
        assert_eq!(acquired(&r), vec![(0, 2, 1)]);
        // An administrator reset the share-partition meanwhile.
        s.persister.states.lock().expect("lock").insert(
            s.key(),
            PersistedState {
                state_epoch: 1,
                start_offset: 1,
                state_batches: vec![],
            },
        );
        *s.persister.fence_next.lock().expect("lock") = Some(PersistError::FencedStateEpoch);
        let r = fetch(&s, "m", 2, vec![(0, 0, vec![1])]).await;
        assert_eq!(
            partition(&r).acknowledge_error_code,
            ErrorCode::NOT_LEADER_OR_FOLLOWER.code()
        );
        // Reloaded from the new state: 1-2 delivered again as new records.
        assert_eq!(acquired(&r), vec![(1, 2, 1)]);
        assert_eq!(s.broker.share_partitions.offsets(&s.key()), Some((1, 3)));
    }

    #[tokio::test]
    async fn min_bytes_waits_for_enough_to_acquire_or_for_max_wait() {
        let s = setup();
        fetch(&s, "m", 0, vec![]).await;
        fetch(&s, "n", 0, vec![]).await;
        let one = crate::partition::tests::batch(1).len();
        s.append(1); // 0
                     // Less than MinBytes to acquire: nothing acquired until MaxWaitMs has passed.
        let started = std::time::Instant::now();
        let req = request(&s, "m", 1, vec![])
            .with_min_bytes(i32::try_from(2 * one).expect("small"))
            .with_max_wait_ms(300);
        let b = Arc::clone(&s.broker);
        let waiting = tokio::spawn(async move { share_fetch_req(&b, req).await });
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!waiting.is_finished());
        // Meanwhile another member, whose MinBytes is met, takes it.
        let r = fetch(&s, "n", 1, vec![]).await;
        assert_eq!(acquired(&r), vec![(0, 0, 1)]);
        let r = waiting.await.expect("join");
        assert!(started.elapsed() >= Duration::from_millis(300));
        assert!(
            acquired(&r).is_empty(),
            "nothing left at the end of the wait"
        );
        // MinBytes met while waiting (a second batch): answered at once, with both.
        s.append(1); // 1
        let req = request(&s, "m", 2, vec![])
            .with_min_bytes(i32::try_from(2 * one).expect("small"))
            .with_max_wait_ms(10_000);
        let b = Arc::clone(&s.broker);
        let waiting = tokio::spawn(async move { share_fetch_req(&b, req).await });
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!waiting.is_finished(), "one batch is less than MinBytes");
        s.append(1); // 2
        let r = tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("answered before MaxWaitMs")
            .expect("join");
        assert_eq!(acquired(&r), vec![(1, 2, 1)]);
        // Not met by the end of the wait: what there is.
        s.append(1); // 3
        let started = std::time::Instant::now();
        let req = request(&s, "m", 3, vec![])
            .with_min_bytes(1 << 20)
            .with_max_wait_ms(200);
        let r = share_fetch_req(&s.broker, req).await;
        assert!(started.elapsed() >= Duration::from_millis(200));
        assert_eq!(acquired(&r), vec![(3, 3, 1)]);
    }

    #[tokio::test]
    async fn an_acknowledgement_whose_write_fails_is_rolled_back_to_acquired() {
        let s = setup();
        fetch(&s, "m1", 0, vec![]).await;
        fetch(&s, "m2", 0, vec![]).await;
        s.append(3); // 0-2
        let r = fetch(&s, "m1", 1, vec![]).await;
        assert_eq!(acquired(&r), vec![(0, 2, 1)]);
        // The share coordinator is away: the acknowledgement fails with its error...
        *s.persister.unavailable.lock().expect("lock") = true;
        let a = acknowledge(&s, "m1", 2, vec![(0, 0, vec![1]), (1, 2, vec![2])]).await;
        assert_eq!(
            a.responses[0].partitions[0].error_code,
            ErrorCode::COORDINATOR_NOT_AVAILABLE.code()
        );
        // ...and is undone: nothing is written later, nothing released to m2.
        *s.persister.unavailable.lock().expect("lock") = false;
        s.broker.share_partitions.tick(&s.broker).await;
        let st = s.persister.state(&s.key()).expect("state");
        let batches: Vec<(i64, i64, DeliveryState)> = st
            .state_batches
            .iter()
            .map(|b| (b.first_offset, b.last_offset, b.delivery_state))
            .collect();
        assert_eq!(
            (st.start_offset, batches),
            (0, vec![(0, 2, DeliveryState::Available)]),
            "acquired, as Kafka writes them"
        );
        assert_eq!(s.broker.share_partitions.offsets(&s.key()), Some((0, 3)));
        let r = fetch(&s, "m2", 1, vec![]).await;
        assert!(acquired(&r).is_empty(), "still m1's");
        // m1 still holds them: acknowledged again, for good this time.
        let a = acknowledge(&s, "m1", 3, vec![(0, 2, vec![1])]).await;
        assert_eq!(a.responses[0].partitions[0].error_code, 0);
        assert_eq!(s.persister.state(&s.key()).expect("state").start_offset, 3);
        // A fetch's acknowledgements are rolled back the same way.
        s.append(2); // 3-4
        let r = fetch(&s, "m1", 4, vec![]).await;
        assert_eq!(acquired(&r), vec![(3, 4, 1)]);
        *s.persister.unavailable.lock().expect("lock") = true;
        let r = fetch(&s, "m1", 5, vec![(3, 4, vec![2])]).await;
        assert_eq!(
            partition(&r).acknowledge_error_code,
            ErrorCode::COORDINATOR_NOT_AVAILABLE.code()
        );
        assert!(acquired(&r).is_empty(), "not released: not fetched again");
        *s.persister.unavailable.lock().expect("lock") = false;
        // Their lock ends: delivered again, with count 2.
        s.clock.advance(30_000);
        s.broker.share_partitions.tick(&s.broker).await;
        let r = fetch(&s, "m2", 2, vec![]).await;
        assert_eq!(acquired(&r), vec![(3, 4, 2)]);
    }

    #[tokio::test]
    async fn a_reset_of_the_empty_group_reaches_the_leader_when_a_member_comes_back() {
        let s = setup();
        fetch(&s, "m1", 0, vec![]).await;
        s.append(3); // 0-2
        let r = fetch(&s, "m1", 1, vec![]).await;
        assert_eq!(acquired(&r), vec![(0, 2, 1)]);
        let r = fetch(&s, "m1", 2, vec![(0, 2, vec![1])]).await;
        assert_eq!(partition(&r).acknowledge_error_code, 0);
        assert_eq!(s.persister.state(&s.key()).expect("state").start_offset, 3);
        // The only member leaves: its session closes, and the group's share-partitions leave
        // the leader's cache (Kafka's onGroupEmpty).
        let r = fetch(&s, "m1", -1, vec![]).await;
        assert_eq!(r.error_code, 0);
        assert_eq!(s.broker.share_partitions.offsets(&s.key()), None);
        // kafka-share-groups.sh --reset-offsets --to-earliest on the Empty group: the group
        // coordinator initializes the state again in the next state epoch.
        s.persister
            .initialize(&s.key(), 1, 0)
            .await
            .expect("initialize");
        // A member comes back: every record again, as new.
        let r = fetch(&s, "m2", 0, vec![]).await;
        assert_eq!(acquired(&r), vec![(0, 2, 1)]);
        let r = fetch(&s, "m2", 1, vec![(0, 2, vec![1])]).await;
        assert_eq!(partition(&r).acknowledge_error_code, 0);
        let st = s.persister.state(&s.key()).expect("state");
        assert_eq!((st.state_epoch, st.start_offset), (1, 3));
    }

    #[tokio::test]
    async fn deleted_offsets_start_again_at_the_reset_offset_when_a_member_comes_back() {
        let s = setup();
        fetch(&s, "m1", 0, vec![]).await;
        s.append(3); // 0-2
        let r = fetch(&s, "m1", 1, vec![]).await;
        assert_eq!(acquired(&r), vec![(0, 2, 1)]);
        // Closed by ShareAcknowledge (epoch -1), the records it still holds released.
        let a = acknowledge(&s, "m1", -1, vec![(0, 0, vec![1])]).await;
        assert_eq!(a.responses[0].partitions[0].error_code, 0);
        assert_eq!(s.broker.share_partitions.offsets(&s.key()), None);
        // DeleteShareGroupOffsets (or DeleteGroups): the state is gone.
        s.persister.delete(&s.key()).await.expect("delete");
        // A member comes back: a new state at share.auto.offset.reset (latest).
        let r = fetch(&s, "m2", 0, vec![]).await;
        assert!(acquired(&r).is_empty());
        let st = s.persister.state(&s.key()).expect("initialized again");
        assert_eq!((st.state_epoch, st.start_offset), (0, 3));
    }

    #[tokio::test]
    async fn an_expired_last_session_and_a_late_write_drop_the_share_partition() {
        let s = setup();
        fetch(&s, "m1", 0, vec![]).await;
        fetch(&s, "m2", 0, vec![]).await;
        s.append(3); // 0-2
        let r = fetch(&s, "m1", 1, vec![]).await;
        assert_eq!(acquired(&r), vec![(0, 2, 1)]);
        // m2 closes while the share coordinator is away: m1 still fetches here.
        fetch(&s, "m2", -1, vec![]).await;
        assert_eq!(s.broker.share_partitions.offsets(&s.key()), Some((0, 3)));
        // m1 closes while the share coordinator is away: its release is not written yet, so
        // the share-partition stays until the timer has written it.
        *s.persister.unavailable.lock().expect("lock") = true;
        fetch(&s, "m1", -1, vec![]).await;
        assert_eq!(s.broker.share_partitions.offsets(&s.key()), Some((0, 3)));
        *s.persister.unavailable.lock().expect("lock") = false;
        s.broker.share_partitions.tick(&s.broker).await;
        assert_eq!(s.broker.share_partitions.offsets(&s.key()), None);
        let st = s.persister.state(&s.key()).expect("state");
        assert_eq!(
            st.state_batches,
            vec![gregor_share::StateBatch {
                first_offset: 0,
                last_offset: 2,
                delivery_state: DeliveryState::Available,
                delivery_count: 1,
            }],
            "released, the delivery counted"
        );
        // A session that expires (twice share.session.timeout.ms idle) ends the same way.
        fetch(&s, "m3", 0, vec![]).await;
        assert!(s.broker.share_partitions.offsets(&s.key()).is_some());
        s.clock.advance(2 * 45_000 + 1);
        s.broker.share_partitions.tick(&s.broker).await;
        assert_eq!(s.broker.share_partitions.session_count(), 0);
        assert_eq!(s.broker.share_partitions.offsets(&s.key()), None);
    }

    #[tokio::test]
    async fn unknown_topics_forgotten_partitions_and_authorization() {
        let s = setup();
        let mut req = request(&s, "m", 0, vec![]);
        req.topics[0].topic_id = uuid::Uuid::new_v4();
        let r = share_fetch_req(&s.broker, req).await;
        assert_eq!(partition(&r).error_code, ErrorCode::UNKNOWN_TOPIC_ID.code());
        // Forgetting the unknown topic: nothing left to answer in an incremental fetch.
        let unknown = r.responses[0].topic_id;
        let req = request(&s, "m", 1, vec![])
            .with_topics(vec![])
            .with_forgotten_topics_data(vec![ForgottenTopic::default()
                .with_topic_id(unknown)
                .with_partitions(vec![0])]);
        let r = share_fetch_req(&s.broker, req).await;
        assert_eq!(r.error_code, 0);
        assert!(r.responses.is_empty());
        // Without READ on the group.
        let s = setup_with(crate::authorizer::test_support::with_authorizer);
        let r = fetch(&s, "m", 0, vec![]).await;
        assert_eq!(r.error_code, ErrorCode::GROUP_AUTHORIZATION_FAILED.code());
    }

    #[tokio::test]
    async fn control_batches_are_never_delivered() {
        use gregor_protocol::control::{ControlRecordType, EndTransactionMarker};
        let s = setup();
        fetch(&s, "m", 0, vec![]).await;
        let part = Arc::clone(&s.topic.partitions[&0]);
        part.append(
            &crate::partition::tests::txn_batch(7, 0, 2),
            &s.topic.settings,
        )
        .expect("txn"); // 0-1
        part.append_end_txn_marker(
            7,
            0,
            EndTransactionMarker {
                control_type: ControlRecordType::Commit,
                coordinator_epoch: 0,
            },
        )
        .expect("commit"); // 2
        s.append(1); // 3
        let r = fetch(&s, "m", 1, vec![]).await;
        assert_eq!(acquired(&r), vec![(0, 1, 1), (3, 3, 1)]);
        let r = fetch(&s, "m", 2, vec![(0, 1, vec![1]), (3, 3, vec![1])]).await;
        assert_eq!(partition(&r).acknowledge_error_code, 0);
        assert_eq!(s.persister.state(&s.key()).expect("state").start_offset, 4);
    }

    #[test]
    fn hand_encoding_matches_kafka_protocol() {
        use std::io::Write;
        let records = crate::partition::tests::batch(3);
        let mut file = tempfile::tempfile().expect("tempfile");
        file.write_all(b"prefix").expect("write");
        file.write_all(&records).expect("write");
        let slice = FileSlice {
            file: Arc::new(file),
            position: 6,
            len: records.len(),
        };
        let leader = LeaderIdAndEpoch::default()
            .with_leader_id(-1)
            .with_leader_epoch(-1);
        let with_records = PartitionData::default()
            .with_partition_index(0)
            .with_current_leader(leader.clone())
            .with_acquired_records(vec![AcquiredRecords::default()
                .with_first_offset(0)
                .with_last_offset(2)
                .with_delivery_count(1)]);
        let refused = PartitionData::default()
            .with_partition_index(1)
            .with_error_code(ErrorCode::NOT_LEADER_OR_FOLLOWER.code())
            .with_error_message(Some(StrBytes::from_static_str("elsewhere")))
            .with_acknowledge_error_code(INVALID_RECORD_STATE.code())
            .with_acknowledge_error_message(Some(StrBytes::from_static_str("ack")))
            .with_current_leader(
                LeaderIdAndEpoch::default()
                    .with_leader_id(2)
                    .with_leader_epoch(7),
            );
        let topic = |id: u128, partitions: Vec<PartitionData>| {
            ShareFetchableTopicResponse::default()
                .with_topic_id(uuid::Uuid::from_u128(id))
                .with_partitions(partitions)
        };
        let resp = ShareFetchResponse::default()
            .with_throttle_time_ms(5)
            .with_acquisition_lock_timeout_ms(30_000)
            .with_responses(vec![
                topic(1, vec![with_records.clone(), refused.clone()]),
                topic(2, vec![with_records.clone()]),
            ])
            .with_node_endpoints(vec![NodeEndpoint::default()
                .with_node_id(BrokerId(2))
                .with_host(StrBytes::from_static_str("h"))
                .with_port(9092)
                .with_rack(Some(StrBytes::from_static_str("r")))]);
        let answered = Answered {
            resp: resp.clone(),
            records: vec![Some(slice.clone()), None, Some(slice)],
        };
        let mut ctx = ctx(KEY);
        ctx.correlation_id = 42;
        let chunks = encode_response(&ctx, &answered).expect("fits");
        assert!(
            chunks.iter().any(|c| matches!(c, Chunk::File(_))),
            "records go as file ranges"
        );
        let ours = crate::response::flatten(&chunks).expect("flatten");
        let bytes = bytes::Bytes::from(records);
        let mut expected = resp.clone();
        expected.responses[0].partitions[0].records = Some(bytes.clone());
        expected.responses[0].partitions[1].records = Some(bytes::Bytes::new());
        expected.responses[1].partitions[0].records = Some(bytes);
        let reference = crate::request::encode(&ctx, &expected).expect("encode");
        assert_eq!(ours, reference);
        // And a top-level error alone.
        let ours = crate::response::flatten(
            &encode_response(&ctx, &top_level(ErrorCode::INVALID_REQUEST)).expect("fits"),
        )
        .expect("flatten");
        let reference = crate::request::encode(
            &ctx,
            &ShareFetchResponse::default().with_error_code(ErrorCode::INVALID_REQUEST.code()),
        )
        .expect("encode");
        assert_eq!(ours, reference);
    }
}
