//! TxnOffsetCommit (key 28): offsets a transactional producer sends inside its transaction
//! (KIP-98; consume-transform-produce). Partitions of unknown topics are refused here; the
//! group coordinator checks the group (v3+: generation, member id, group instance id, like
//! OffsetCommit; for a consumer group of KIP-848 the member epoch, by its core), writes the offsets to `__consumer_offsets` as one transactional batch of the
//! request's producer, and answers once the ISR has it. The offsets stay pending, invisible to
//! OffsetFetch, until the transaction's marker reaches that partition
//! (`GroupRuntime::complete_txn_offsets`).
//!
//! v5 (KIP-890 part 2, transactions version 2): the client skips AddOffsetsToTxn, so the group
//! coordinator first adds the group's `__consumer_offsets` partition to the transaction
//! itself (AddPartitionsToTxn without `verify_only` to the transaction coordinator, or the
//! local call; CONCURRENT_TRANSACTIONS retried as a produce's add is), then writes the
//! offsets. An add that fails answers every partition with its error, as Kafka maps it.
//!
//! v0–v4 with `transaction.partition.verification.enable` (KIP-890 part 1, Kafka 3.6+): the
//! producer added the group with AddOffsetsToTxn, and the group coordinator first asks the
//! transaction coordinator whether `__consumer_offsets-<group's partition>` is in the
//! producer's open transaction (AddPartitionsToTxn `verify_only`). Offsets sent without
//! AddOffsetsToTxn would otherwise stay pending for ever (no marker ever comes); they get
//! INVALID_TXN_STATE and nothing is written.
//!
//! Either way the verification takes a guard in the offsets partition's producer state first,
//! as a produce does (Kafka's `maybeStartTransactionVerification`), and the write brings it
//! back: a marker that lands between the two (the transaction aborted by its timeout) clears
//! it and the write gets INVALID_TXN_STATE. When the producer's transaction is open on that
//! partition already, in this epoch, there is no guard and the coordinator is not asked.
//!
//! ```text
//!  v5+ ─► guard ─► add __consumer_offsets-<group's partition> to the transaction ─► error? answer it
//!                                                                                └► commit (guard)
//!  v0–v4 ─► verification enabled? guard ─► verify that partition is in the transaction ─► error? answer
//!                                                                                     └► commit (guard)
//! ```
//!
//! v6 (KIP-1319) names topics by id, in the request and in the answer; an id this cluster
//! does not know gets UNKNOWN_TOPIC_ID for its partitions, as in Kafka, and the rest commit.
//!
//! Authorization, as Kafka's, before anything else: WRITE on the transactional id (else every
//! partition TRANSACTIONAL_ID_AUTHORIZATION_FAILED), READ on the group (else every partition
//! GROUP_AUTHORIZATION_FAILED), then READ on each topic: an unauthorized topic's partitions get
//! TOPIC_AUTHORIZATION_FAILED and the others go on.

use std::ops::RangeInclusive;
use std::sync::Arc;

use gregor_group::Response;
use gregor_metadata::{AclOperation, ResourceType};
use gregor_protocol::error::ErrorCode;
use gregor_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use gregor_protocol::messages::ApiKey;
use gregor_protocol::messages::{TxnOffsetCommitRequest, TxnOffsetCommitResponse};

use super::group_common::{
    check_consumer_member, commit_topics, pending, CommitMember, NOT_AVAILABLE,
};
use super::topic_name;
use crate::authorizer;
use crate::broker::Broker;
use crate::request::{encode, ProtocolError, Reply, RequestContext};
use gregor_storage::producer_state::TxnVerification;
use uuid::Uuid;

/// The API this module serves.
pub const KEY: ApiKey = ApiKey::TxnOffsetCommit;
/// The versions served (and advertised in ApiVersions).
pub const VERSIONS: RangeInclusive<i16> = 0..=6;

/// From this version topics are named by id (KIP-1319).
pub const FIRST_TOPIC_ID_VERSION: i16 = 6;

/// From this version the group coordinator adds its partition to the transaction (KIP-890).
pub const FIRST_ADD_PARTITION_VERSION: i16 = 5;

/// From this version a partition the verification finds outside the transaction is answered
/// TRANSACTION_ABORTABLE (KAFKA-16314), below it INVALID_TXN_STATE.
const FIRST_TRANSACTION_ABORTABLE_VERSION: i16 = 4;

/// How long a v5 commit retries adding its partition while the previous transaction's
/// markers are written (TxnOffsetCommit has no timeout of its own; Kafka's
/// `request.timeout.ms` default is 30 s, the retry stops much sooner anyway).
const ADD_PARTITION_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Kafka's translation of the add's error for a TxnOffsetCommit answer
/// (`GroupCoordinatorService.commitTransactionalOffsets`): PRODUCER_FENCED is
/// INVALID_PRODUCER_EPOCH; the transaction coordinator's retriable errors become
/// COORDINATOR_NOT_AVAILABLE, which the producer retries after looking the group coordinator
/// up again; a partition not in the transaction (TRANSACTION_ABORTABLE) is INVALID_TXN_STATE
/// below v4, as Kafka's `defaultError` for clients older than that error; the rest pass.
fn add_error(code: i16, version: i16) -> i16 {
    match ErrorCode(code) {
        ErrorCode::PRODUCER_FENCED => ErrorCode::INVALID_PRODUCER_EPOCH.code(),
        ErrorCode::TRANSACTION_ABORTABLE if version < FIRST_TRANSACTION_ABORTABLE_VERSION => {
            ErrorCode::INVALID_TXN_STATE.code()
        }
        ErrorCode::NETWORK_EXCEPTION
        | ErrorCode::NOT_ENOUGH_REPLICAS
        | ErrorCode::REQUEST_TIMED_OUT
        | ErrorCode::COORDINATOR_LOAD_IN_PROGRESS
        | ErrorCode::NOT_COORDINATOR
        | ErrorCode::CONCURRENT_TRANSACTIONS => ErrorCode::COORDINATOR_NOT_AVAILABLE.code(),
        _ => code,
    }
}

/// A partition's result from the coordinator: ((topic, partition), error code).
type PartitionCode = ((String, i32), i16);

/// One topic of the request, in request order.
#[derive(Debug, Clone)]
struct OrderTopic {
    name: String,
    /// v6: the id the request named it by (echoed in the answer).
    topic_id: Uuid,
    /// v6: an id this cluster does not know (UNKNOWN_TOPIC_ID, never committed).
    unknown_id: bool,
    /// No READ on the topic (TOPIC_AUTHORIZATION_FAILED, never committed).
    unauthorized: bool,
    partitions: Vec<i32>,
}

/// Every topic of the request, in request order.
type Order = Vec<OrderTopic>;

/// The response with `code_of(topic, partition)` for every partition of the request
/// (UNKNOWN_TOPIC_ID for the partitions of an unknown topic id, TOPIC_AUTHORIZATION_FAILED for
/// those of an unauthorized topic).
fn response(order: Order, code_of: impl Fn(&str, i32) -> i16) -> TxnOffsetCommitResponse {
    let topics = order
        .into_iter()
        .map(|t| {
            let partitions = t
                .partitions
                .into_iter()
                .map(|p| {
                    let code = if t.unknown_id {
                        ErrorCode::UNKNOWN_TOPIC_ID.code()
                    } else if t.unauthorized {
                        ErrorCode::TOPIC_AUTHORIZATION_FAILED.code()
                    } else {
                        code_of(&t.name, p)
                    };
                    TxnOffsetCommitResponsePartition::default()
                        .with_partition_index(p)
                        .with_error_code(code)
                })
                .collect();
            TxnOffsetCommitResponseTopic::default()
                .with_name(topic_name(&t.name))
                .with_topic_id(t.topic_id)
                .with_partitions(partitions)
        })
        .collect();
    TxnOffsetCommitResponse::default().with_topics(topics)
}

/// Every topic of the request, in request order; from v6 each named by its id, and the
/// request keeps only the topics this cluster knows (their names filled in for the commit).
fn resolve_topics(broker: &Broker, version: i16, req: &mut TxnOffsetCommitRequest) -> Order {
    let by_id = version >= FIRST_TOPIC_ID_VERSION;
    let mut order = Vec::with_capacity(req.topics.len());
    for t in &mut req.topics {
        let mut unknown_id = false;
        if by_id {
            match broker.replicas.topic_by_id(t.topic_id) {
                Some(topic) => t.name = topic_name(&topic.name),
                None => unknown_id = true,
            }
        }
        order.push(OrderTopic {
            name: t.name.0.to_string(),
            topic_id: t.topic_id,
            unknown_id,
            unauthorized: false,
            partitions: t.partitions.iter().map(|p| p.partition_index).collect(),
        });
    }
    if by_id {
        req.topics.retain(|t| {
            order
                .iter()
                .any(|o| o.topic_id == t.topic_id && !o.unknown_id)
        });
    }
    order
}

/// Kafka's checks, in its order: WRITE on the transactional id and READ on the group, whose
/// denial is every partition's answer (`Err`); then READ on each topic, whose denial marks the
/// topic in `order` and takes it out of the request. `Ok(true)`: some topic was taken out.
fn authorize(
    broker: &Broker,
    ctx: &RequestContext,
    req: &mut TxnOffsetCommitRequest,
    order: &mut Order,
) -> Result<bool, ErrorCode> {
    if !authorizer::authorize(
        broker,
        ctx,
        AclOperation::Write,
        ResourceType::TransactionalId,
        &req.transactional_id.0,
    ) {
        return Err(ErrorCode::TRANSACTIONAL_ID_AUTHORIZATION_FAILED);
    }
    if !authorizer::authorize(
        broker,
        ctx,
        AclOperation::Read,
        ResourceType::Group,
        &req.group_id.0,
    ) {
        return Err(ErrorCode::GROUP_AUTHORIZATION_FAILED);
    }
    let authorized = authorizer::filter_authorized(
        broker,
        ctx,
        AclOperation::Read,
        ResourceType::Topic,
        order
            .iter()
            .filter(|t| !t.unknown_id)
            .map(|t| t.name.as_str()),
    );
    let mut any = false;
    for t in order.iter_mut().filter(|t| !t.unknown_id) {
        if !authorized.contains(&t.name) {
            t.unauthorized = true;
            any = true;
        }
    }
    if any {
        req.topics
            .retain(|t| authorized.contains(t.name.0.as_str()));
    }
    Ok(any)
}

/// Handles a TxnOffsetCommit request.
pub fn handle(
    broker: &Arc<Broker>,
    ctx: RequestContext,
    mut req: TxnOffsetCommitRequest,
) -> Result<Reply, ProtocolError> {
    let mut order = resolve_topics(broker, ctx.api_version, &mut req);
    match authorize(broker, &ctx, &mut req, &mut order) {
        Err(code) => {
            // Kafka's `getErrorResponse`: every partition of the request, whatever its topic.
            for t in &mut order {
                t.unknown_id = false;
            }
            let resp = response(order, |_, _| code.code());
            return Ok(Reply::Ready(encode(&ctx, &resp)?));
        }
        // Nothing authorized is left: answered at once, as Kafka does.
        Ok(true) if req.topics.is_empty() => {
            return Ok(Reply::Ready(encode(&ctx, &response(order, |_, _| 0))?));
        }
        Ok(_) => {}
    }
    let adding = ctx.api_version >= FIRST_ADD_PARTITION_VERSION;
    if !adding
        && !broker
            .replicas
            .effective_config()
            .txn
            .partition_verification_enable
    {
        return commit(broker, ctx, req, order, TxnVerification::NotRequired);
    }
    let group_id = req.group_id.0.to_string();
    if let Some(code) = broker.groups.not_coordinator(&group_id) {
        let resp = response(order, |_, _| code.code());
        return Ok(Reply::Ready(encode(&ctx, &resp)?));
    }
    if req.topics.is_empty() {
        // Only unknown topic ids (or nothing): nothing to add or write.
        return Ok(Reply::Ready(encode(&ctx, &response(order, |_, _| 0))?));
    }
    let broker = Arc::clone(broker);
    Ok(Reply::Pending(Box::pin(async move {
        let partition = gregor_txn::TopicPartition::new(
            gregor_txn::CONSUMER_OFFSETS_TOPIC,
            gregor_txn::records::partition_for_group(
                &group_id,
                broker.config.group.offsets_topic_num_partitions,
            ),
        );
        let manager = &broker.txn_verification;
        let (id, pid, epoch) = (
            &req.transactional_id.0,
            req.producer_id.0,
            req.producer_epoch,
        );
        // Kafka's `maybeStartTransactionVerification` on the offsets partition: the guard the
        // write brings back, so that a marker between the verification and the write (the
        // transaction aborted by its timeout meanwhile) makes the write fail rather than leave
        // offsets pending for ever. None: the transaction is open there already, in this
        // epoch, and the coordinator is not asked again.
        let started = broker
            .replicas
            .partition(gregor_txn::CONSUMER_OFFSETS_TOPIC, partition.partition)
            .ok_or(ErrorCode::NOT_COORDINATOR)
            .and_then(|(_, part)| part.maybe_start_transaction_verification(pid, epoch, adding));
        let guard = match started {
            Ok(guard) => guard,
            Err(code) => {
                let code = crate::group_coordinator::append_error(code).code();
                return encode(&ctx, &response(order, |_, _| code));
            }
        };
        if guard.is_some() {
            let added = if adding {
                manager
                    .add_retrying(id, pid, epoch, vec![partition], ADD_PARTITION_TIMEOUT)
                    .await
            } else {
                manager.verify(id, pid, epoch, vec![partition]).await
            };
            let code = added
                .first()
                .map_or(ErrorCode::UNKNOWN_SERVER_ERROR.code(), |(_, c)| *c);
            if code != 0 {
                let resp = response(order, |_, _| add_error(code, ctx.api_version));
                return encode(&ctx, &resp);
            }
        }
        let verification = TxnVerification::Required(guard);
        match commit(&broker, ctx, req, order, verification)? {
            Reply::Ready(bytes) => Ok(bytes),
            Reply::Pending(answer) => answer.await,
            Reply::None | Reply::PendingChunks(_) => Err(ProtocolError::Encode(
                "an offset commit answers with bytes".into(),
            )),
        }
    })))
}

/// Writes the offsets of `req`'s (known) topics and answers every topic of `order` (every
/// version; v5+ once the partition is in the transaction).
fn commit(
    broker: &Arc<Broker>,
    ctx: RequestContext,
    req: TxnOffsetCommitRequest,
    order: Order,
    verification: TxnVerification,
) -> Result<Reply, ProtocolError> {
    let group_id = req.group_id.0.to_string();
    // Not the coordinator, or still loading: every partition gets the error (Kafka's
    // `TxnOffsetCommitRequest.getErrorResponse`), and the producer retries or looks the
    // coordinator up again.
    if let Some(code) = broker.groups.not_coordinator(&group_id) {
        let resp = response(order, |_, _| code.code());
        return Ok(Reply::Ready(encode(&ctx, &resp)?));
    }
    let v2 = ctx.api_version >= 2;
    let (topics, rejected) = commit_topics(
        broker,
        &req.topics,
        |t| (t.name.0.to_string(), &t.partitions[..]),
        |p| gregor_group::OffsetCommitPartition {
            partition_index: p.partition_index,
            committed_offset: p.committed_offset,
            committed_leader_epoch: if v2 { p.committed_leader_epoch } else { -1 },
            committed_metadata: p.committed_metadata.as_ref().map(|s| s.to_string()),
        },
    );
    // v0-v2 carry no membership: generation -1 and no member, as Kafka's defaults.
    let v3 = ctx.api_version >= 3;
    let mut core_req = gregor_group::TxnOffsetCommitRequest {
        transactional_id: req.transactional_id.0.to_string(),
        group_id: group_id.clone(),
        producer_id: req.producer_id.0,
        producer_epoch: req.producer_epoch,
        generation_id: if v3 { req.generation_id } else { -1 },
        member_id: if v3 {
            req.member_id.to_string()
        } else {
            String::new()
        },
        group_instance_id: req
            .group_instance_id
            .as_ref()
            .filter(|_| v3)
            .map(|s| s.to_string()),
        topics,
    };
    let (id, rx) = broker.groups.park();
    let now = broker.clock.now_ms();
    let version = ctx.api_version;
    broker
        .groups
        .run_verified(&broker.replicas, verification, |core| {
            let member = CommitMember {
                group_id: &group_id,
                member_id: &mut core_req.member_id,
                generation_id: &mut core_req.generation_id,
                group_instance_id: &mut core_req.group_instance_id,
            };
            if let Err(topics) =
                check_consumer_member(broker, member, &core_req.topics, true, version)
            {
                return vec![gregor_group::Output::Respond {
                    request: id,
                    response: Response::TxnOffsetCommit(gregor_group::OffsetCommitResponse {
                        topics,
                    }),
                }];
            }
            core.commit_txn_offsets(id, core_req, now)
        });
    Ok(pending(ctx, rx, move |resp| {
        let (codes, fallback): (Vec<PartitionCode>, i16) = match resp {
            Some(Response::TxnOffsetCommit(r)) => (
                r.topics
                    .into_iter()
                    .flat_map(|t| {
                        let name = t.name;
                        t.partitions
                            .into_iter()
                            .map(move |p| ((name.clone(), p.partition_index), p.error_code))
                    })
                    .collect(),
                NOT_AVAILABLE,
            ),
            Some(other) => (Vec::new(), other.error_code()),
            None => (Vec::new(), NOT_AVAILABLE),
        };
        response(order, |name, p| {
            let key = (name.to_string(), p);
            if rejected.contains(&key) {
                ErrorCode::UNKNOWN_TOPIC_OR_PARTITION.code()
            } else {
                codes
                    .iter()
                    .find(|(k, _)| *k == key)
                    .map_or(fallback, |(_, c)| *c)
            }
        })
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::group_coordinator::{GroupRuntime, OFFSETS_TOPIC};
    use bytes::Bytes;
    use gregor_protocol::batch::batches;
    use gregor_protocol::messages::offset_fetch_request::OffsetFetchRequestTopic;
    use gregor_protocol::messages::txn_offset_commit_request::{
        TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
    };
    use gregor_protocol::messages::{
        GroupId, OffsetFetchRequest, ProducerId, ResponseHeader, TopicName, TransactionalId,
    };
    use gregor_protocol::protocol::{Decodable, HeaderVersion, StrBytes};

    const PID: i64 = 4000;

    /// The group side alone: a broker with topic `t` (2 partitions) whose v0–v4 commits are
    /// not verified (it has no transaction coordinator; see
    /// `v0_to_v4_are_verified_with_the_transaction_coordinator`).
    fn broker(dir: &std::path::Path) -> Arc<Broker> {
        let mut config = crate::config::BrokerConfig {
            data_dir: dir.to_path_buf(),
            ..Default::default()
        };
        config.group.offsets_topic_num_partitions = 1;
        config.txn.partition_verification_enable = false;
        let b = crate::broker::test_broker(config);
        b.replicas
            .create_topic("t", 2, 1, Default::default())
            .expect("create");
        b
    }

    fn ctx(api: ApiKey, version: i16) -> RequestContext {
        RequestContext::for_test(api, version)
    }

    use crate::request::reply_body as body;

    fn request(
        group: &str,
        epoch: i16,
        generation: i32,
        member: &str,
        offsets: &[(&'static str, i32, i64)],
    ) -> TxnOffsetCommitRequest {
        TxnOffsetCommitRequest::default()
            .with_transactional_id(TransactionalId(StrBytes::from_static_str("tx")))
            .with_group_id(GroupId(StrBytes::from_string(group.into())))
            .with_producer_id(ProducerId(PID))
            .with_producer_epoch(epoch)
            .with_generation_id(generation)
            .with_member_id(StrBytes::from_string(member.into()))
            .with_topics(
                offsets
                    .iter()
                    .map(|(t, p, o)| {
                        TxnOffsetCommitRequestTopic::default()
                            .with_name(TopicName(StrBytes::from_static_str(t)))
                            .with_partitions(vec![TxnOffsetCommitRequestPartition::default()
                                .with_partition_index(*p)
                                .with_committed_offset(*o)
                                .with_committed_leader_epoch(-1)])
                    })
                    .collect(),
            )
    }

    /// Error codes of every partition of the answer, in request order.
    async fn txn_commit(b: &Arc<Broker>, version: i16, req: TxnOffsetCommitRequest) -> Vec<i16> {
        txn_commit_as(b, ctx(KEY, version), req).await
    }

    /// [`txn_commit`] with the request context `ctx`.
    async fn txn_commit_as(
        b: &Arc<Broker>,
        ctx: RequestContext,
        req: TxnOffsetCommitRequest,
    ) -> Vec<i16> {
        let version = ctx.api_version;
        let reply = handle(b, ctx, req).expect("handled");
        let mut bytes = body(reply).await;
        ResponseHeader::decode(&mut bytes, TxnOffsetCommitResponse::header_version(version))
            .expect("header");
        let resp = TxnOffsetCommitResponse::decode(&mut bytes, version).expect("decode");
        resp.topics
            .iter()
            .flat_map(|t| t.partitions.iter().map(|p| p.error_code))
            .collect()
    }

    /// (committed offset, error code) of `t-partition` for group "g", through the OffsetFetch
    /// handler (v7: require_stable).
    fn fetch(b: &Arc<Broker>, partition: i32, require_stable: bool) -> (i64, i16) {
        let req = OffsetFetchRequest::default()
            .with_group_id(GroupId(StrBytes::from_static_str("g")))
            .with_topics(Some(vec![OffsetFetchRequestTopic::default()
                .with_name(TopicName(StrBytes::from_static_str("t")))
                .with_partition_indexes(vec![partition])]))
            .with_require_stable(require_stable);
        let resp = super::super::offset_fetch::handle(b, &ctx(ApiKey::OffsetFetch, 7), req);
        if resp.error_code != 0 {
            return (-1, resp.error_code);
        }
        let p = &resp.topics[0].partitions[0];
        (p.committed_offset, p.error_code)
    }

    /// Writes the COMMIT or ABORT marker of the producer's transaction to
    /// `__consumer_offsets-0` through WriteTxnMarkers, which tells the group runtime once
    /// the marker is replicated.
    async fn end_txn(b: &Arc<Broker>, committed: bool) {
        use gregor_protocol::messages::write_txn_markers_request::{
            WritableTxnMarker, WritableTxnMarkerTopic,
        };
        use gregor_protocol::messages::WriteTxnMarkersRequest;
        let req =
            WriteTxnMarkersRequest::default().with_markers(vec![WritableTxnMarker::default()
                .with_producer_id(ProducerId(PID))
                .with_producer_epoch(0)
                .with_transaction_result(committed)
                .with_coordinator_epoch(0)
                .with_topics(vec![WritableTxnMarkerTopic::default()
                    .with_name(topic_name(OFFSETS_TOPIC))
                    .with_partition_indexes(vec![0])])]);
        let resp = super::super::write_txn_markers::write_markers(
            b,
            req,
            std::time::Duration::from_secs(5),
        )
        .await;
        assert_eq!(resp.markers[0].topics[0].partitions[0].error_code, 0);
    }

    /// The marker of [`end_txn`] appended by the leader without waiting for the high
    /// watermark, and not reported to the group runtime.
    fn end_txn_unreplicated(b: &Arc<Broker>, committed: bool) {
        use gregor_protocol::control::{ControlRecordType, EndTransactionMarker};
        let (_, part) = b.replicas.partition(OFFSETS_TOPIC, 0).expect("hosted");
        let marker = EndTransactionMarker {
            control_type: ControlRecordType::from_committed(committed),
            coordinator_epoch: 0,
        };
        part.append_end_txn_marker(PID, 0, marker).expect("marker");
    }

    /// The batches of `__consumer_offsets-0`: (transactional, producer id, epoch, records).
    fn offsets_batches(b: &Arc<Broker>) -> Vec<(bool, i64, i16, i64)> {
        let (_, part) = b.replicas.partition(OFFSETS_TOPIC, 0).expect("hosted");
        let info = part.read(0, 1 << 20, true).expect("read");
        let bytes = info
            .slice
            .map(|s| s.read_to_vec().expect("read"))
            .unwrap_or_default();
        batches(&bytes)
            .map(|b| b.expect("batch"))
            .map(|b| {
                (
                    b.is_transactional(),
                    b.producer_id(),
                    b.producer_epoch(),
                    b.next_offset() - b.base_offset(),
                )
            })
            .collect()
    }

    /// The offsets are written as one transactional batch per request (even when two requests
    /// have the same sequence range), stay pending (UNSTABLE_OFFSET_COMMIT with
    /// require_stable) across a reload, become committed with the COMMIT marker, and stay
    /// committed after another reload.
    #[tokio::test]
    async fn pending_then_committed_offsets_survive_a_reload() {
        let dir = tempfile::tempdir().expect("tempdir");
        let b = broker(dir.path());
        assert_eq!(
            txn_commit(&b, 3, request("g", 0, -1, "", &[("t", 0, 5)])).await,
            vec![0]
        );
        assert_eq!(
            txn_commit(&b, 3, request("g", 0, -1, "", &[("t", 1, 6)])).await,
            vec![0]
        );
        assert_eq!(
            offsets_batches(&b),
            vec![(true, PID, 0, 1), (true, PID, 0, 1)],
            "one transactional batch each, the second not taken for a duplicate"
        );
        assert_eq!(fetch(&b, 0, false), (-1, 0));
        assert_eq!(
            fetch(&b, 0, true),
            (-1, ErrorCode::UNSTABLE_OFFSET_COMMIT.code())
        );

        // A restart: a fresh runtime loads the partition; no marker yet, still pending.
        let reloaded = GroupRuntime::open(&b.replicas).expect("load");
        let stable = |g: &GroupRuntime, p: i32| {
            let r = g.core().fetch_offsets(&gregor_group::OffsetFetchRequest {
                group_id: "g".into(),
                topics: Some(vec![gregor_group::TopicPartitions {
                    name: "t".into(),
                    partitions: vec![p],
                }]),
                require_stable: true,
            });
            let p = &r.topics[0].partitions[0];
            (p.committed_offset, p.error_code)
        };
        assert_eq!(
            stable(&reloaded, 1),
            (-1, ErrorCode::UNSTABLE_OFFSET_COMMIT.code())
        );

        end_txn(&b, true).await;
        assert_eq!(fetch(&b, 0, true), (5, 0));
        assert_eq!(fetch(&b, 1, true), (6, 0));

        let reloaded = GroupRuntime::open(&b.replicas).expect("load");
        assert_eq!(stable(&reloaded, 0), (5, 0));
        assert_eq!(stable(&reloaded, 1), (6, 0));

        // An aborted transaction leaves the committed offsets, before and after a reload.
        assert_eq!(
            txn_commit(&b, 3, request("g", 0, -1, "", &[("t", 0, 50)])).await,
            vec![0]
        );
        end_txn(&b, false).await;
        assert_eq!(fetch(&b, 0, true), (5, 0));
        let reloaded = GroupRuntime::open(&b.replicas).expect("load");
        assert_eq!(stable(&reloaded, 0), (5, 0));
    }

    /// A new leader loads its whole log, not only what is below its high watermark: the
    /// marker the previous leader's ISR acknowledged may sit above the high watermark this
    /// broker knows yet (here a follower that never fetches holds it back).
    #[tokio::test]
    async fn a_load_reads_past_the_high_watermark() {
        let dir = tempfile::tempdir().expect("tempdir");
        let b = broker(dir.path());
        assert_eq!(
            txn_commit(&b, 4, request("g", 0, -1, "", &[("t", 0, 3)])).await,
            vec![0]
        );
        let (_, part) = b.replicas.partition(OFFSETS_TOPIC, 0).expect("hosted");
        crate::partition::tests::with_follower(&part, vec![1, 2]);
        end_txn_unreplicated(&b, true);
        assert!(part.high_watermark() < part.log_end_offset());
        let reloaded = GroupRuntime::open(&b.replicas).expect("load");
        let r = reloaded
            .core()
            .fetch_offsets(&gregor_group::OffsetFetchRequest {
                group_id: "g".into(),
                topics: Some(vec![gregor_group::TopicPartitions {
                    name: "t".into(),
                    partitions: vec![0],
                }]),
                require_stable: true,
            });
        let p = &r.topics[0].partitions[0];
        assert_eq!((p.committed_offset, p.error_code), (3, 0));
    }

    /// A completion reported while the partition loads (its marker written after the loader
    /// read the log) is applied once the load is installed.
    #[tokio::test]
    async fn a_completion_during_a_load_is_applied_after_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        let b = broker(dir.path());
        assert_eq!(
            txn_commit(&b, 4, request("g", 0, -1, "", &[("t", 0, 9)])).await,
            vec![0]
        );
        // Leadership returns: the partition is loaded again.
        b.groups.disown(0);
        b.groups.set_loading(0, true);
        b.groups.complete_txn_offsets(0, PID, true);
        assert_eq!(
            fetch(&b, 0, true),
            (-1, ErrorCode::COORDINATOR_LOAD_IN_PROGRESS.code())
        );
        b.groups.sync_leadership(&b.replicas).expect("load");
        assert_eq!(fetch(&b, 0, true), (9, 0));
    }

    /// A real restart: the broker's storage is reopened from its directory (without a clean
    /// shutdown) and `__consumer_offsets` loaded again, with the transaction open and again
    /// after its COMMIT marker.
    #[tokio::test]
    async fn pending_and_committed_offsets_survive_a_broker_restart() {
        let dir = tempfile::tempdir().expect("tempdir");
        let b = broker(dir.path());
        assert_eq!(
            txn_commit(&b, 4, request("g", 0, -1, "", &[("t", 0, 7)])).await,
            vec![0]
        );
        drop(b);
        let b = restarted(dir.path()).await;
        assert_eq!(
            fetch(&b, 0, true),
            (-1, ErrorCode::UNSTABLE_OFFSET_COMMIT.code())
        );
        assert_eq!(fetch(&b, 0, false), (-1, 0));
        end_txn(&b, true).await;
        assert_eq!(fetch(&b, 0, true), (7, 0));
        drop(b);
        let b = restarted(dir.path()).await;
        assert_eq!(fetch(&b, 0, true), (7, 0));
    }

    /// A broker over `dir` again, once the previous one let go of it.
    async fn restarted(dir: &std::path::Path) -> Arc<Broker> {
        for _ in 0..100 {
            let d = dir.to_path_buf();
            let opened = std::panic::catch_unwind(move || broker_again(&d));
            if let Ok(b) = opened {
                return b;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        panic!("the data directory stayed locked");
    }

    fn broker_again(dir: &std::path::Path) -> Arc<Broker> {
        let mut config = crate::config::BrokerConfig {
            data_dir: dir.to_path_buf(),
            ..Default::default()
        };
        config.group.offsets_topic_num_partitions = 1;
        let b = crate::broker::test_broker(config);
        if b.replicas.topic("t").is_none() {
            b.replicas
                .create_topic("t", 2, 1, Default::default())
                .expect("create");
        }
        b
    }

    /// Kafka's error codes: unknown topics, unknown members and generations of a live group,
    /// a fenced producer epoch, NOT_COORDINATOR and COORDINATOR_LOAD_IN_PROGRESS.
    #[tokio::test]
    async fn errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        let b = broker(dir.path());
        // A Stable group with member m1 in generation 3.
        let value = gregor_group::GroupMetadataValue {
            protocol_type: "consumer".into(),
            generation: 3,
            protocol: Some("range".into()),
            leader: Some("m1".into()),
            current_state_timestamp_ms: 0,
            members: vec![gregor_group::MemberMetadataValue {
                member_id: "m1".into(),
                group_instance_id: None,
                client_id: "c".into(),
                client_host: "/h".into(),
                rebalance_timeout_ms: 60_000,
                session_timeout_ms: 30_000,
                subscription: Bytes::new(),
                assignment: Bytes::new(),
            }],
        };
        let record = gregor_group::Record {
            key: gregor_group::RecordKey::Group { group: "g".into() }.encode(),
            value: Some(value.encode()),
        };
        b.groups
            .core()
            .load_partition(0, vec![record], b.clock.now_ms())
            .expect("load");

        let unknown_member = request("g", 0, 3, "ghost", &[("t", 0, 1)]);
        assert_eq!(
            txn_commit(&b, 3, unknown_member).await,
            vec![ErrorCode::UNKNOWN_MEMBER_ID.code()]
        );
        let old_generation = request("g", 0, 2, "m1", &[("t", 0, 1)]);
        assert_eq!(
            txn_commit(&b, 3, old_generation).await,
            vec![ErrorCode::ILLEGAL_GENERATION.code()]
        );
        // A group this broker never saw, with a generation.
        let lost = request("other", 0, 2, "m1", &[("t", 0, 1)]);
        assert_eq!(
            txn_commit(&b, 3, lost).await,
            vec![ErrorCode::ILLEGAL_GENERATION.code()]
        );
        // v2 carries no membership: accepted; unknown topics are refused per partition.
        let mixed = request(
            "g",
            2,
            3,
            "ghost",
            &[("t", 0, 1), ("nope", 0, 1), ("t", 9, 1)],
        );
        assert_eq!(
            txn_commit(&b, 2, mixed).await,
            vec![
                0,
                ErrorCode::UNKNOWN_TOPIC_OR_PARTITION.code(),
                ErrorCode::UNKNOWN_TOPIC_OR_PARTITION.code()
            ]
        );
        // The member of the generation: accepted.
        let member = request("g", 2, 3, "m1", &[("t", 1, 1)]);
        assert_eq!(txn_commit(&b, 3, member).await, vec![0]);
        // The log fences an older epoch of the producer.
        let zombie = request("g", 1, -1, "", &[("t", 0, 1)]);
        assert_eq!(
            txn_commit(&b, 3, zombie).await,
            vec![ErrorCode::INVALID_PRODUCER_EPOCH.code()]
        );

        b.groups.set_loading(0, true);
        let req = request("g", 2, -1, "", &[("t", 0, 1)]);
        assert_eq!(
            txn_commit(&b, 3, req.clone()).await,
            vec![ErrorCode::COORDINATOR_LOAD_IN_PROGRESS.code()]
        );
        assert_eq!(
            fetch(&b, 0, true),
            (-1, ErrorCode::COORDINATOR_LOAD_IN_PROGRESS.code())
        );
        b.groups.set_loading(0, false);
        b.groups.disown(0);
        assert_eq!(
            txn_commit(&b, 3, req).await,
            vec![ErrorCode::NOT_COORDINATOR.code()]
        );
    }

    /// v5 (KIP-890 part 2): the group coordinator adds `__consumer_offsets-<partition>` to the
    /// transaction itself before writing (no AddOffsetsToTxn). Without a transaction
    /// coordinator, or for a producer the coordinator does not know, nothing is written and
    /// every partition gets the add's error.
    #[tokio::test]
    async fn v5_adds_the_offsets_partition_to_the_transaction() {
        let dir = tempfile::tempdir().expect("tempdir");
        let b = broker(dir.path());
        assert_eq!(
            txn_commit(&b, 5, request("g", 0, -1, "", &[("t", 0, 5)])).await,
            vec![ErrorCode::COORDINATOR_NOT_AVAILABLE.code()]
        );
        assert!(offsets_batches(&b).is_empty(), "nothing written");
        load_transaction_state(&b);
        let (error, pid, epoch) = b.txn.init_producer_id("tx", 60_000, None).await;
        assert_eq!(error, 0);
        let unknown =
            request("g", epoch, -1, "", &[("t", 0, 5)]).with_producer_id(ProducerId(pid + 1));
        assert_eq!(
            txn_commit(&b, 5, unknown).await,
            vec![ErrorCode::INVALID_PRODUCER_ID_MAPPING.code()]
        );
        assert!(offsets_batches(&b).is_empty(), "nothing written");
        let req = request("g", epoch, -1, "", &[("t", 0, 5), ("t", 1, 7)])
            .with_producer_id(ProducerId(pid));
        assert_eq!(txn_commit(&b, 5, req).await, vec![0, 0]);
        let m = b.txn.describe("tx").expect("described");
        assert_eq!(m.state, gregor_txn::TransactionState::Ongoing);
        assert!(m
            .partitions
            .contains(&gregor_txn::TopicPartition::new(OFFSETS_TOPIC, 0)));
        assert_eq!(offsets_batches(&b), vec![(true, pid, epoch, 2)]);
        assert_eq!(
            fetch(&b, 0, true).1,
            ErrorCode::UNSTABLE_OFFSET_COMMIT.code(),
            "pending until the marker"
        );
    }

    /// v0–v4 with partition verification (the default, as Kafka 3.6+): offsets of a producer
    /// that never sent AddOffsetsToTxn for the group get INVALID_TXN_STATE (v4:
    /// TRANSACTION_ABORTABLE) and are not written
    /// (they would stay pending for ever: no marker comes); after AddOffsetsToTxn they are.
    #[tokio::test]
    async fn v0_to_v4_are_verified_with_the_transaction_coordinator() {
        let dir = tempfile::tempdir().expect("tempdir");
        let b = crate::broker::test_group_broker(dir.path(), 2);
        load_transaction_state(&b);
        let (error, pid, epoch) = b.txn.init_producer_id("tx", 60_000, None).await;
        assert_eq!(error, 0);
        let req = request("g", epoch, -1, "", &[("t", 0, 5)]).with_producer_id(ProducerId(pid));
        // v4 clients know TRANSACTION_ABORTABLE (KAFKA-16314); older ones get INVALID_TXN_STATE.
        for (version, want) in [
            (0, ErrorCode::INVALID_TXN_STATE),
            (3, ErrorCode::INVALID_TXN_STATE),
            (4, ErrorCode::TRANSACTION_ABORTABLE),
        ] {
            assert_eq!(
                txn_commit(&b, version, req.clone()).await,
                vec![want.code()],
                "v{version} without AddOffsetsToTxn"
            );
        }
        let unknown = req.clone().with_producer_id(ProducerId(pid + 1));
        assert_eq!(
            txn_commit(&b, 3, unknown).await,
            vec![ErrorCode::INVALID_PRODUCER_ID_MAPPING.code()]
        );
        assert!(offsets_batches(&b).is_empty(), "nothing written");
        assert_eq!(b.txn.add_offsets("tx", pid, epoch, "g").await, 0);
        assert_eq!(txn_commit(&b, 3, req).await, vec![0]);
        assert_eq!(offsets_batches(&b), vec![(true, pid, epoch, 1)]);
    }

    /// The verification takes a guard on the offsets partition, as a produce does: when the
    /// transaction's marker reaches that partition between the verification and the write
    /// (the transaction aborted by its timeout meanwhile), the write is refused with
    /// INVALID_TXN_STATE instead of leaving offsets that no marker will ever end. A commit
    /// verified after the marker is written.
    #[tokio::test]
    async fn offsets_verified_before_a_marker_are_not_written_after_it() {
        use gregor_protocol::control::{ControlRecordType, EndTransactionMarker};
        let dir = tempfile::tempdir().expect("tempdir");
        let b = crate::broker::test_group_broker(dir.path(), 2);
        load_transaction_state(&b);
        let (error, pid, epoch) = b.txn.init_producer_id("tx", 60_000, None).await;
        assert_eq!(error, 0);
        assert_eq!(b.txn.add_offsets("tx", pid, epoch, "g").await, 0);
        let mut req = request("g", epoch, -1, "", &[("t", 0, 5)]).with_producer_id(ProducerId(pid));
        // What the handler does before asking the coordinator.
        let (_, part) = b.replicas.partition(OFFSETS_TOPIC, 0).expect("hosted");
        let guard = part
            .maybe_start_transaction_verification(pid, epoch, false)
            .expect("led here");
        assert!(guard.is_some(), "no transaction open there yet");
        let abort = EndTransactionMarker {
            control_type: ControlRecordType::Abort,
            coordinator_epoch: 0,
        };
        part.append_end_txn_marker(pid, epoch, abort)
            .expect("marker");
        let order = resolve_topics(&b, 3, &mut req);
        let reply = commit(
            &b,
            ctx(KEY, 3),
            req.clone(),
            order,
            TxnVerification::Required(guard),
        )
        .expect("handled");
        let mut bytes = body(reply).await;
        ResponseHeader::decode(&mut bytes, TxnOffsetCommitResponse::header_version(3))
            .expect("header");
        let resp = TxnOffsetCommitResponse::decode(&mut bytes, 3).expect("decode");
        assert_eq!(
            resp.topics[0].partitions[0].error_code,
            ErrorCode::INVALID_TXN_STATE.code()
        );
        assert_eq!(offsets_batches(&b).len(), 1, "only the marker");
        assert_eq!(fetch(&b, 0, true), (-1, 0), "nothing pending");
        // Verified again (the coordinator still has the partition in the transaction): written.
        assert_eq!(txn_commit(&b, 3, req).await, vec![0]);
        assert_eq!(
            fetch(&b, 0, true).1,
            ErrorCode::UNSTABLE_OFFSET_COMMIT.code(),
            "pending until the next marker"
        );
    }

    /// `__transaction_state` created on this broker, and its transactions loaded.
    fn load_transaction_state(b: &Arc<Broker>) {
        b.replicas
            .create_topic(
                crate::txn_coordinator::TRANSACTION_STATE_TOPIC,
                b.config.txn.state_log_num_partitions,
                1,
                Default::default(),
            )
            .expect("create");
        b.txn.sync_leadership().expect("load");
    }

    /// v6 (KIP-1319) names topics by id: a known id commits (the answer echoes the id), an
    /// unknown one gets UNKNOWN_TOPIC_ID and is not written; through the wire at v6.
    #[tokio::test]
    async fn v6_names_topics_by_id() {
        use gregor_protocol::protocol::Encodable;
        let dir = tempfile::tempdir().expect("tempdir");
        let b = broker(dir.path());
        load_transaction_state(&b);
        let (_, pid, epoch) = b.txn.init_producer_id("tx", 60_000, None).await;
        let known = b.replicas.topic("t").expect("topic").id;
        let unknown = Uuid::from_u128(42);
        let mut req = request("g", epoch, -1, "", &[("t", 0, 5), ("t", 1, 6)])
            .with_producer_id(ProducerId(pid));
        req.topics[0].topic_id = known;
        req.topics[1].topic_id = unknown;
        // Through the wire: v6 carries ids only.
        let mut buf = bytes::BytesMut::new();
        req.encode(&mut buf, 6).expect("encode v6");
        let decoded = TxnOffsetCommitRequest::decode(&mut buf.freeze(), 6).expect("decode v6");
        assert!(decoded.topics.iter().all(|t| t.name.0.is_empty()));
        let reply = handle(&b, ctx(KEY, 6), decoded).expect("handled");
        let mut bytes = body(reply).await;
        ResponseHeader::decode(&mut bytes, TxnOffsetCommitResponse::header_version(6))
            .expect("header");
        let resp = TxnOffsetCommitResponse::decode(&mut bytes, 6).expect("decode");
        let answered: Vec<(Uuid, i16)> = resp
            .topics
            .iter()
            .map(|t| (t.topic_id, t.partitions[0].error_code))
            .collect();
        assert_eq!(
            answered,
            vec![(known, 0), (unknown, ErrorCode::UNKNOWN_TOPIC_ID.code())]
        );
        assert_eq!(offsets_batches(&b), vec![(true, pid, epoch, 1)], "t-0 only");
    }

    /// Kafka's checks: WRITE on the transactional id, READ on the group, then READ on each
    /// topic (an unauthorized topic is refused and the others commit).
    #[tokio::test]
    async fn an_authorizer_asks_for_the_transactional_id_the_group_and_each_topic() {
        use crate::authorizer::test_support::{
            allow_group, allow_topic, allow_transactional_id, ctx_of, secured_broker_with,
        };
        let dir = tempfile::tempdir().expect("tempdir");
        let b = secured_broker_with(dir.path(), |c| {
            c.group.offsets_topic_num_partitions = 1;
            c.txn.partition_verification_enable = false;
        });
        b.replicas
            .create_topic("t", 2, 1, Default::default())
            .expect("create");
        let alice = || ctx_of("alice", KEY, 2);
        let req = request("g", 0, -1, "", &[("t", 0, 1), ("u", 0, 1)]);
        let code = |e: ErrorCode| vec![e.code(), e.code()];
        assert_eq!(
            txn_commit_as(&b, alice(), req.clone()).await,
            code(ErrorCode::TRANSACTIONAL_ID_AUTHORIZATION_FAILED)
        );
        allow_transactional_id(&b, "User:alice", AclOperation::Write, "tx");
        assert_eq!(
            txn_commit_as(&b, alice(), req.clone()).await,
            code(ErrorCode::GROUP_AUTHORIZATION_FAILED)
        );
        allow_group(&b, "User:alice", AclOperation::Read, "g");
        assert_eq!(
            txn_commit_as(&b, alice(), req.clone()).await,
            code(ErrorCode::TOPIC_AUTHORIZATION_FAILED)
        );
        allow_topic(&b, "User:alice", AclOperation::Read, "t");
        assert_eq!(
            txn_commit_as(&b, alice(), req).await,
            vec![0, ErrorCode::TOPIC_AUTHORIZATION_FAILED.code()]
        );
    }
}
