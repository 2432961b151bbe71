//! Produce (key 0): validate each partition's record set, append it, and answer per `acks`:
//! 0 — no response; 1 — once written to the log (page cache); -1 (all) — once the in-sync
//! replicas have it (the high watermark passed it) and, with the default flush policy, once it
//! is durable here: after an fsync shared with every append that arrived meanwhile. The wait
//! is the purgatory's (`DelayedProduce`); the request's `timeout_ms` bounds the wait for the
//! replicas (then REQUEST_TIMED_OUT), not the fsync. Before appending, acks=all is refused
//! with NOT_ENOUGH_REPLICAS when the ISR is below `min.insync.replicas`.
//!
//! A client over its `producer_byte_rate` quota gets its response at once with
//! `throttle_time_ms`, and its connection is muted for that long (see [`crate::quota`]).
//!
//! Transactional batches (a request with a `transactional_id`; without one, Kafka's
//! TRANSACTIONAL_ID_AUTHORIZATION_FAILED for every partition): the partition's producer state
//! opens the producer's transaction at the first one and refuses a non-transactional batch
//! while it is open (INVALID_TXN_STATE). The coordinator ends it with a marker
//! (WriteTxnMarkers). With `transaction.partition.verification.enable` (KIP-890 part 1, the
//! default), a batch that would open a transaction waits until the producer's coordinator
//! confirms that the partition is in its transaction (`AddPartitionsToTxnManager`, a
//! `verify_only` AddPartitionsToTxn); the append then brings back the verification guard the
//! partition handed out, and a marker that slipped in between makes it fail:
//!
//! ```text
//!  transactional partition ─► Partition::start_transactional_append
//!     Now (open here, nothing of the producer waiting) ─► append (Required(None))
//!     Verify(G) ─► Pending: verify with the coordinator ─► NONE ─► append (Required(Some(G)))
//!                                                      └─ error ─► Kafka's produce error code
//!     Behind (open, but earlier requests of the producer still wait) ─► Pending: append in
//!            the reply's turn, after them (the connection's replies are made in order)
//! ```
//!
//! Produce v12 is KIP-890's version bump (no wire change); v13 names topics by id (KIP-516:
//! an unknown id is UNKNOWN_TOPIC_ID, and the response echoes the id).
//!
//! Authorization, as Kafka's: a request with transactional records needs WRITE on its
//! transactional id, else every partition is TRANSACTIONAL_ID_AUTHORIZATION_FAILED; each topic
//! needs WRITE, else its partitions are TOPIC_AUTHORIZATION_FAILED and the others go on.

use std::collections::{HashMap, HashSet};
use std::ops::RangeInclusive;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use gregor_metadata::{AclOperation, ResourceType};
use gregor_protocol::batch::validate_record_set_bounded;
use gregor_protocol::error::ErrorCode;
use gregor_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, PartitionProduceResponse, TopicProduceResponse,
};
use gregor_protocol::messages::ApiKey;
use gregor_protocol::messages::{ProduceRequest, ProduceResponse};

use gregor_storage::producer_state::{
    AppendOrigin, TxnAppendStart, TxnVerification, VerificationGuard,
};

use crate::authorizer;
use crate::broker::Broker;
use crate::partition::Partition;
use crate::purgatory::ProduceWait;
use crate::quota::QuotaType;
use crate::replica_manager::Topic;
use crate::request::{encode, read_legacy_string, ProtocolError, Reply, RequestContext};

/// The API this module serves.
pub const KEY: ApiKey = ApiKey::Produce;
/// The versions served (and advertised in ApiVersions).
pub const VERSIONS: RangeInclusive<i16> = 0..=13;

fn partition_error(
    index: i32,
    code: ErrorCode,
    message: Option<String>,
) -> PartitionProduceResponse {
    PartitionProduceResponse::default()
        .with_index(index)
        .with_error_code(code.code())
        .with_base_offset(-1)
        .with_log_append_time_ms(-1)
        .with_log_start_offset(-1)
        .with_error_message(message.map(super::str_bytes))
}

/// Why a record set was refused, for the response's `error_message` (as Kafka says which check
/// failed). Validation returns only the code, so the set is validated again to find the reason:
/// that costs nothing on the path of accepted batches.
fn rejection(code: ErrorCode, records: &[u8], topic: &Topic) -> Option<String> {
    if !matches!(
        code,
        ErrorCode::CORRUPT_MESSAGE | ErrorCode::INVALID_RECORD | ErrorCode::MESSAGE_TOO_LARGE
    ) {
        return None;
    }
    validate_record_set_bounded(
        records,
        topic.settings.max_message_bytes,
        topic.settings.max_decompressed_record_bytes,
    )
    .err()
    .map(|e| e.to_string())
}

/// Kafka's answer to a set refused for its timestamps (KIP-937): INVALID_TIMESTAMP, "One or
/// more records have been rejected due to invalid timestamp", and each record out of range in
/// `record_errors` (its index in the set, and the range it should be in). The set is decoded a
/// second time, only when refused.
fn timestamp_rejection(
    index: i32,
    records: &[u8],
    topic: &Topic,
    now: i64,
) -> PartitionProduceResponse {
    let (low, high) = topic.settings.timestamp_bounds(now);
    let mut bytes = bytes::Bytes::copy_from_slice(records);
    let decoded =
        gregor_protocol::records::RecordBatchDecoder::decode_all(&mut bytes).unwrap_or_default();
    let errors = decoded
        .iter()
        .flat_map(|set| set.records.iter())
        .enumerate()
        .filter(|(_, r)| topic.settings.timestamp_out_of_range(r.timestamp, now))
        .filter_map(|(i, r)| {
            let message = format!(
                "Timestamp {} of message with offset {i} is out of range. The timestamp should \
                 be within [{low}, {high}]",
                r.timestamp
            );
            Some(
                BatchIndexAndErrorMessage::default()
                    .with_batch_index(i32::try_from(i).ok()?)
                    .with_batch_index_error_message(Some(super::str_bytes(message))),
            )
        })
        .collect();
    partition_error(
        index,
        ErrorCode::INVALID_TIMESTAMP,
        Some("One or more records have been rejected due to invalid timestamp".into()),
    )
    .with_record_errors(errors)
}

/// Whether a topic's `cleanup.policy` includes `compact`.
fn is_compacted(topic: &Topic) -> bool {
    topic
        .settings
        .cleanup_policy
        .split(',')
        .any(|p| p.trim() == "compact")
}

/// The indexes (in the record set) of the records without a key, which Kafka's log validator
/// refuses on a compacted topic ("Compacted topic cannot accept message without key"):
/// compaction keeps the latest record per key, so a keyless one could never be kept or
/// replaced. Kafka lists every one in the response's `record_errors` (KIP-467), and clients
/// fail those records with INVALID_RECORD and the rest of the batch as collateral. The set is
/// decoded a second time, only for compacted topics; empty also when it does not decode
/// (validation, which runs next, refuses it with its own reason).
fn keyless_records(records: &[u8]) -> Vec<i32> {
    let mut bytes = bytes::Bytes::copy_from_slice(records);
    let Ok(sets) = gregor_protocol::records::RecordBatchDecoder::decode_all(&mut bytes) else {
        return Vec::new();
    };
    sets.iter()
        .flat_map(|set| set.records.iter())
        .enumerate()
        .filter(|(_, r)| r.key.is_none())
        .filter_map(|(i, _)| i32::try_from(i).ok())
        .collect()
}

/// Request positions `(topic entry, partition entry)` of partitions named again later in the
/// same request. Kafka keeps only the last record set given for a partition and answers it once
/// (its request map is keyed by partition), so the earlier ones are neither appended nor
/// answered; a request naming one partition many times cannot append its records many times.
/// A topic is its name below v13 and its id from v13 (the other field is then empty).
fn superseded_entries(req: &ProduceRequest) -> HashSet<(usize, usize)> {
    let mut last: HashMap<(&str, uuid::Uuid, i32), (usize, usize)> = HashMap::new();
    let mut superseded = HashSet::new();
    for (ti, t) in req.topic_data.iter().enumerate() {
        for (pi, p) in t.partition_data.iter().enumerate() {
            if let Some(earlier) = last.insert((t.name.0.as_str(), t.topic_id, p.index), (ti, pi)) {
                superseded.insert(earlier);
            }
        }
    }
    superseded
}

/// Kafka's `RequestUtils.hasTransactionalRecords`: the first batch of some partition's records
/// is transactional. Kafka refuses such a request without a transactional id
/// (TRANSACTIONAL_ID_AUTHORIZATION_FAILED for every partition).
fn has_transactional_records(req: &ProduceRequest) -> bool {
    req.topic_data.iter().any(|t| {
        t.partition_data.iter().any(|p| {
            p.records.as_ref().is_some_and(|r| {
                r.len() >= 23
                    && i16::from_be_bytes([r[21], r[22]])
                        & gregor_protocol::batch::ATTR_TRANSACTIONAL
                        != 0
            })
        })
    })
}

/// The producer of a record set's first batch when that batch is transactional: `(producer id,
/// epoch, base sequence)` read from its header (Kafka verifies with the first batch's, as a
/// produced set comes from one producer). `None` for a non-transactional or truncated set
/// (validation refuses the latter with its own reason).
fn first_batch_producer(records: &[u8]) -> Option<(i64, i16, i32)> {
    let batch = gregor_protocol::batch::BatchView::parse(records).ok()?;
    batch.is_transactional().then(|| {
        (
            batch.producer_id(),
            batch.producer_epoch(),
            batch.base_sequence(),
        )
    })
}

/// From this Produce version on (KIP-890 part 2, transactions version 2) the client sends no
/// AddPartitionsToTxn: the partition leader adds the partition to the producer's transaction
/// itself (Kafka's `addPartition` supported operation).
pub const FIRST_ADD_PARTITION_PRODUCE_VERSION: i16 = 12;

/// Produce versions up to this one get Kafka's DEFAULT_ERROR mapping of a verification's
/// TRANSACTION_ABORTABLE (INVALID_TXN_STATE); v11+ clients understand the error itself.
const LAST_DEFAULT_ERROR_PRODUCE_VERSION: i16 = 10;

/// Kafka's translation of a verification's answer into the produce response
/// (`AddPartitionsToTxnManager` and `ReplicaManager.appendRecords`): PRODUCER_FENCED becomes
/// INVALID_PRODUCER_EPOCH; the coordinator's retriable errors become NOT_ENOUGH_REPLICAS, which
/// every producer retries without a metadata refresh; a partition not in the transaction is
/// INVALID_TXN_STATE. CONCURRENT_TRANSACTIONS (an add while the previous transaction's markers
/// are written) is retried first (`AddPartitionsToTxnManager::add_retrying`) and translated only if it lasts.
fn verification_error(code: i16, version: i16) -> (ErrorCode, Option<String>) {
    let code = match ErrorCode(code) {
        ErrorCode::PRODUCER_FENCED => ErrorCode::INVALID_PRODUCER_EPOCH,
        ErrorCode::TRANSACTION_ABORTABLE if version <= LAST_DEFAULT_ERROR_PRODUCE_VERSION => {
            ErrorCode::INVALID_TXN_STATE
        }
        other => other,
    };
    match code {
        ErrorCode::NETWORK_EXCEPTION
        | ErrorCode::COORDINATOR_LOAD_IN_PROGRESS
        | ErrorCode::COORDINATOR_NOT_AVAILABLE
        | ErrorCode::NOT_COORDINATOR
        | ErrorCode::CONCURRENT_TRANSACTIONS => (
            ErrorCode::NOT_ENOUGH_REPLICAS,
            Some(format!(
                "Unable to verify the partition has been added to the transaction. \
                 Underlying error: {}",
                code.name()
            )),
        ),
        ErrorCode::INVALID_TXN_STATE => (
            code,
            Some("Partition was not added to the transaction".into()),
        ),
        other => (other, None),
    }
}

/// A transactional produce to a partition that waits for its coordinator's verification
/// (KIP-890), or behind the producer's earlier waiting appends, before it is appended. Dropped
/// once appended or given up, which ends its deferral on the partition (also when the reply
/// is abandoned).
struct Unverified {
    /// Position of its answer in the response.
    ti: usize,
    pi: usize,
    name: String,
    index: i32,
    topic: Arc<Topic>,
    part: Arc<Partition>,
    records: Bytes,
    producer_id: i64,
    producer_epoch: i16,
    /// What the partition's producer state handed out; the append brings it back. `None`:
    /// no verification, only the producer's turn (`TxnAppendStart::Behind`).
    guard: Option<VerificationGuard>,
}

impl Drop for Unverified {
    fn drop(&mut self) {
        self.part.deferred_append_done(self.producer_id);
    }
}

/// Appends one partition's record set as leader: its answer, and what an acks=all answer
/// waits for.
fn append_partition(
    index: i32,
    topic: &Topic,
    part: &Arc<Partition>,
    records: &[u8],
    acks: i16,
    verification: TxnVerification,
) -> (PartitionProduceResponse, Option<ProduceWait>) {
    match part.append_to_leader_verified(
        AppendOrigin::Client,
        records,
        &topic.settings,
        acks,
        verification,
    ) {
        Ok(append) => {
            let info = append.info;
            let appended = if info.duplicate {
                0
            } else {
                u64::try_from(info.last_offset - info.first_offset + 1).unwrap_or(0)
            };
            part.stats.produced(records.len() as u64, appended);
            // The topic's flush policy: gregor's fsync before an acks=all answer, or Kafka's
            // flush in the append once `flush.messages` records are unflushed (whatever the
            // acks; an acks=0 produce only starts it).
            let on_ack = part.flushes_before_acks();
            let by_count = !on_ack && part.flush_due_by_count();
            let wait = |replication: bool| ProduceWait {
                partition: Arc::clone(part),
                required_offset: info.last_offset + 1,
                leader_epoch: append.leader_epoch,
                replication,
                durable: on_ack || by_count,
            };
            let wait = match acks {
                -1 => Some(wait(true)),
                1 if by_count => Some(wait(false)),
                _ => {
                    if by_count {
                        part.start_flush();
                    }
                    None
                }
            };
            let resp = PartitionProduceResponse::default()
                .with_index(index)
                .with_error_code(0)
                .with_base_offset(info.first_offset)
                .with_log_append_time_ms(info.log_append_time)
                .with_log_start_offset(info.log_start_offset);
            (resp, wait)
        }
        Err(code) => {
            part.stats.produce_failed(code);
            if code == ErrorCode::INVALID_TIMESTAMP {
                let now = part.now_ms();
                return (timestamp_rejection(index, records, topic, now), None);
            }
            let message = if code == ErrorCode::INVALID_TXN_STATE
                && matches!(verification, TxnVerification::Required(_))
                && first_batch_producer(records).is_some()
            {
                Some("Record was not part of an ongoing transaction".into())
            } else {
                rejection(code, records, topic)
            };
            (partition_error(index, code, message), None)
        }
    }
}

/// Verifies the waiting partitions with the transaction coordinator (one request per
/// producer id and epoch found in their first batches), or from Produce v12 adds them to the
/// transaction, then appends those it confirms, carrying their guards: `(topic position,
/// partition position, answer, acks=all wait)`.
async fn verify_and_append(
    broker: &Arc<Broker>,
    transactional_id: &str,
    version: i16,
    acks: i16,
    timeout: Duration,
    unverified: Vec<Unverified>,
) -> Vec<(usize, usize, PartitionProduceResponse, Option<ProduceWait>)> {
    let mut by_producer: Vec<((i64, i16), Vec<Unverified>)> = Vec::new();
    let mut out = Vec::new();
    for u in unverified {
        if u.guard.is_none() {
            // Only waiting for its turn: earlier requests' appends are made by now.
            let (resp, wait) = append_partition(
                u.index,
                &u.topic,
                &u.part,
                &u.records,
                acks,
                TxnVerification::Required(None),
            );
            out.push((u.ti, u.pi, resp, wait));
            continue;
        }
        let key = (u.producer_id, u.producer_epoch);
        match by_producer.iter_mut().find(|(k, _)| *k == key) {
            Some((_, list)) => list.push(u),
            None => by_producer.push((key, vec![u])),
        }
    }
    for ((producer_id, producer_epoch), list) in by_producer {
        let partitions: Vec<gregor_txn::TopicPartition> = list
            .iter()
            .map(|u| gregor_txn::TopicPartition::new(u.name.clone(), u.index))
            .collect();
        let answers = if version >= FIRST_ADD_PARTITION_PRODUCE_VERSION {
            broker
                .txn_verification
                .add_retrying(
                    transactional_id,
                    producer_id,
                    producer_epoch,
                    partitions,
                    timeout,
                )
                .await
        } else {
            broker
                .txn_verification
                .verify(transactional_id, producer_id, producer_epoch, partitions)
                .await
        };
        for u in list {
            let index = u.index;
            let code = answers
                .iter()
                .find(|(tp, _)| tp.topic == u.name && tp.partition == index)
                .map_or(ErrorCode::UNKNOWN_SERVER_ERROR.code(), |(_, c)| *c);
            if code != 0 {
                let (code, message) = verification_error(code, version);
                out.push((u.ti, u.pi, partition_error(index, code, message), None));
                continue;
            }
            let (resp, wait) = append_partition(
                index,
                &u.topic,
                &u.part,
                &u.records,
                acks,
                TxnVerification::Required(u.guard),
            );
            out.push((u.ti, u.pi, resp, wait));
        }
    }
    out
}

/// Handles a Produce request (v3+; v13 names topics by id).
pub fn handle(
    broker: &Arc<Broker>,
    ctx: RequestContext,
    req: ProduceRequest,
) -> Result<Reply, ProtocolError> {
    let acks = req.acks;
    let acks_valid = matches!(acks, -1..=1);
    let by_id = ctx.api_version >= 13;
    // Client quotas (Kafka's produce quota): the request's record bytes count against the
    // client's `producer_byte_rate`; over it, the response says how long to back off and the
    // connection takes no further request for that long.
    let throttle_ms = if broker.quotas.is_active() {
        let bytes = req
            .topic_data
            .iter()
            .flat_map(|t| &t.partition_data)
            .filter_map(|p| p.records.as_ref().map(|r| r.len()))
            .sum();
        let ms = broker.quotas.record(
            QuotaType::Produce,
            ctx.principal.name(),
            ctx.client_id.as_deref(),
            bytes,
            broker.clock.now_ms(),
        );
        i32::try_from(ms).unwrap_or(i32::MAX)
    } else {
        0
    };
    // Response positions `(topic, partition)` and what each acks=all partition waits for.
    let mut delayed: Vec<(usize, usize, ProduceWait)> = Vec::new();
    let mut first_error: Option<String> = None;
    let superseded = superseded_entries(&req);
    let transactional_without_id =
        req.transactional_id.is_none() && has_transactional_records(&req);
    // Only with an authorizer: no lookups on the produce path otherwise.
    let authorizing = authorizer::enabled(broker);
    // Kafka: transactional records need WRITE on the transactional id, or nothing is appended.
    let transactional_id_denied = req.transactional_id.as_ref().is_some_and(|id| {
        authorizing
            && has_transactional_records(&req)
            && !authorizer::authorize(
                broker,
                &ctx,
                AclOperation::Write,
                ResourceType::TransactionalId,
                &id.0,
            )
    });
    // WRITE on each topic, asked once per topic.
    let mut topic_allowed: HashMap<String, bool> = HashMap::new();
    // KIP-890: a transactional request's partitions are verified with the coordinator before
    // a batch may open a transaction on them. Only transactional requests read the (dynamic)
    // setting, so plain produces take no extra lock.
    // From Produce v12 (transactions version 2) the leader adds the partition to the
    // transaction itself, whatever the setting: the client sent no AddPartitionsToTxn.
    let verifying = req.transactional_id.is_some()
        && (ctx.api_version >= FIRST_ADD_PARTITION_PRODUCE_VERSION
            || broker
                .replicas
                .effective_config()
                .txn
                .partition_verification_enable);
    let mut unverified: Vec<Unverified> = Vec::new();
    let mut topics = Vec::with_capacity(req.topic_data.len());
    for (req_ti, t) in req.topic_data.into_iter().enumerate() {
        let topic = if by_id {
            broker.replicas.topic_by_id(t.topic_id)
        } else {
            broker.replicas.topic(&t.name.0)
        };
        let name = match (&topic, by_id) {
            (Some(topic), true) => topic.name.clone(),
            _ => t.name.0.to_string(),
        };
        // An unknown topic id is answered UNKNOWN_TOPIC_ID before any authorization.
        let topic_denied = authorizing
            && !(by_id && topic.is_none())
            && !*topic_allowed.entry(name.clone()).or_insert_with(|| {
                authorizer::authorize(
                    broker,
                    &ctx,
                    AclOperation::Write,
                    ResourceType::Topic,
                    &name,
                )
            });
        // Positions in the response, which leaves out superseded entries.
        let ti = topics.len();
        let mut partitions = Vec::with_capacity(t.partition_data.len());
        for (req_pi, p) in t.partition_data.into_iter().enumerate() {
            if superseded.contains(&(req_ti, req_pi)) {
                continue;
            }
            let pi = partitions.len();
            let resp = if transactional_id_denied {
                partition_error(
                    p.index,
                    ErrorCode::TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
                    None,
                )
            } else if topic_denied {
                partition_error(p.index, ErrorCode::TOPIC_AUTHORIZATION_FAILED, None)
            } else if !acks_valid {
                partition_error(p.index, ErrorCode::INVALID_REQUIRED_ACKS, None)
            } else if transactional_without_id {
                partition_error(
                    p.index,
                    ErrorCode::TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
                    Some("transactional records without a transactional id".into()),
                )
            } else if by_id && topic.is_none() {
                // KIP-516: an id this cluster does not know (deleted, or recreated under a new
                // id) is never another topic's partition.
                partition_error(p.index, ErrorCode::UNKNOWN_TOPIC_ID, None)
            } else {
                let part = topic
                    .as_ref()
                    .and_then(|t| t.partition(p.index).map(|part| (t, part)));
                match (part, p.records) {
                    (None, _) => {
                        // A partition of the cluster led elsewhere, or one that does not exist.
                        let code = if topic.as_ref().is_some_and(|t| t.has_partition(p.index)) {
                            ErrorCode::NOT_LEADER_OR_FOLLOWER
                        } else {
                            ErrorCode::UNKNOWN_TOPIC_OR_PARTITION
                        };
                        partition_error(p.index, code, None)
                    }
                    (Some(_), None) => partition_error(
                        p.index,
                        ErrorCode::INVALID_RECORD,
                        Some("null record set".into()),
                    ),
                    (Some((topic, _)), Some(records))
                        if is_compacted(topic) && !keyless_records(&records).is_empty() =>
                    {
                        let keyless = keyless_records(&records);
                        let message = format!(
                            "Compacted topic cannot accept message without key in topic \
                             partition {name}-{}.",
                            p.index
                        );
                        partition_error(
                            p.index,
                            ErrorCode::INVALID_RECORD,
                            Some(format!(
                                "One or more records have been rejected due to {} record \
                                 errors in total: {message}",
                                keyless.len()
                            )),
                        )
                        .with_record_errors(
                            keyless
                                .into_iter()
                                .map(|index| {
                                    BatchIndexAndErrorMessage::default()
                                        .with_batch_index(index)
                                        .with_batch_index_error_message(Some(super::str_bytes(
                                            message.clone(),
                                        )))
                                })
                                .collect(),
                        )
                    }
                    (Some((topic, part)), Some(records)) => {
                        // Kafka's `maybeStartTransactionVerification`: a producer with no
                        // open transaction here waits for its coordinator; one with an open
                        // transaction may only continue it, after its earlier requests still
                        // waiting (requests are pipelined, and their replies made in order).
                        let start = match (verifying, first_batch_producer(&records)) {
                            (false, _) => Ok(Some(TxnVerification::NotRequired)),
                            (true, None) => Ok(Some(TxnVerification::Required(None))),
                            (true, Some((producer_id, producer_epoch, sequence))) => part
                                .start_transactional_append(
                                    producer_id,
                                    sequence,
                                    producer_epoch,
                                    ctx.api_version >= FIRST_ADD_PARTITION_PRODUCE_VERSION,
                                )
                                .map(|start| {
                                    let guard = match start {
                                        TxnAppendStart::Now => {
                                            return Some(TxnVerification::Required(None))
                                        }
                                        TxnAppendStart::Verify(guard) => Some(guard),
                                        TxnAppendStart::Behind => None,
                                    };
                                    unverified.push(Unverified {
                                        ti,
                                        pi,
                                        name: name.clone(),
                                        index: p.index,
                                        topic: Arc::clone(topic),
                                        part: Arc::clone(part),
                                        records: records.clone(),
                                        producer_id,
                                        producer_epoch,
                                        guard,
                                    });
                                    None
                                }),
                        };
                        match start {
                            Err(code) => partition_error(p.index, code, None),
                            // Answered once appended (a placeholder until then).
                            Ok(None) => partition_error(p.index, ErrorCode::NONE, None),
                            Ok(Some(verification)) => {
                                let (resp, wait) = append_partition(
                                    p.index,
                                    topic,
                                    part,
                                    &records,
                                    acks,
                                    verification,
                                );
                                if let Some(wait) = wait {
                                    delayed.push((ti, pi, wait));
                                }
                                resp
                            }
                        }
                    }
                }
            };
            if resp.error_code != 0 && first_error.is_none() {
                first_error = Some(format!(
                    "{name}-{}: {}",
                    resp.index,
                    ErrorCode(resp.error_code)
                ));
            }
            partitions.push(resp);
        }
        if partitions.is_empty() && !superseded.is_empty() {
            continue;
        }
        // A fresh name, not `t.name`: that is a slice of the request frame, and a response
        // waiting for an fsync would keep the whole (often megabyte) frame alive, so the
        // connection could not reuse its read buffer. From v13 the id is echoed instead.
        let entry = if by_id {
            TopicProduceResponse::default().with_topic_id(t.topic_id)
        } else {
            TopicProduceResponse::default().with_name(super::topic_name(&name))
        };
        topics.push(entry.with_partition_responses(partitions));
    }
    // The mute starts when the response is ready (KIP-219: after it is sent): now, or once an
    // acks=all wait is over.
    let mute_ms = u64::try_from(throttle_ms).unwrap_or(0);
    let transactional_id = req
        .transactional_id
        .as_ref()
        .map(|id| id.0.to_string())
        .unwrap_or_default();
    let version = ctx.api_version;
    let timeout = Duration::from_millis(u64::try_from(req.timeout_ms).unwrap_or(0));
    if acks == 0 {
        ctx.mute.mute_for(mute_ms);
        if !unverified.is_empty() {
            // No answer is sent; the verified partitions are still appended.
            let broker = Arc::clone(broker);
            tokio::spawn(async move {
                verify_and_append(
                    &broker,
                    &transactional_id,
                    version,
                    acks,
                    timeout,
                    unverified,
                )
                .await;
            });
        }
        return match first_error {
            Some(e) => Err(ProtocolError::AcksZeroFailed(e)),
            None => Ok(Reply::None),
        };
    }
    let mut response = ProduceResponse::default()
        .with_responses(topics)
        .with_throttle_time_ms(throttle_ms);
    if delayed.is_empty() && unverified.is_empty() {
        ctx.mute.mute_for(mute_ms);
        return Ok(Reply::Ready(encode(&ctx, &response)?));
    }
    let broker = Arc::clone(broker);
    Ok(Reply::Pending(Box::pin(async move {
        if !unverified.is_empty() {
            let appended = verify_and_append(
                &broker,
                &transactional_id,
                version,
                acks,
                timeout,
                unverified,
            )
            .await;
            for (ti, pi, resp, wait) in appended {
                if let Some(slot) = response.responses[ti].partition_responses.get_mut(pi) {
                    *slot = resp;
                }
                if let Some(wait) = wait {
                    delayed.push((ti, pi, wait));
                }
            }
        }
        if delayed.is_empty() {
            ctx.mute.mute_for(mute_ms);
            return encode(&ctx, &response);
        }
        let (positions, waits): (Vec<(usize, usize)>, Vec<ProduceWait>) =
            delayed.into_iter().map(|(ti, pi, w)| ((ti, pi), w)).unzip();
        let results = broker
            .replicas
            .purgatory()
            .delay_produce(waits, timeout)
            .await;
        for ((ti, pi), result) in positions.into_iter().zip(results) {
            if let Err(failure) = result {
                if let Some(p) = response.responses[ti].partition_responses.get_mut(pi) {
                    *p = partition_error(p.index, failure.code, failure.message);
                }
            }
        }
        ctx.mute.mute_for(mute_ms);
        encode(&ctx, &response)
    })))
}

/// Produce v0–v2 are advertised (librdkafka disables compression unless Produce min is 0) but
/// not served: each partition gets UNSUPPORTED_VERSION, in the old response format.
pub fn legacy_unsupported(frame: Bytes, version: i16) -> Result<Reply, ProtocolError> {
    let bad = || ProtocolError::Decode {
        api: gregor_protocol::messages::ApiKey::Produce,
        version,
        reason: "truncated request".into(),
    };
    let mut b = frame;
    if b.remaining() < 8 {
        return Err(bad());
    }
    b.advance(4);
    let correlation_id = b.get_i32();
    read_legacy_string(&mut b).ok_or_else(bad)?; // client id
    if b.remaining() < 10 {
        return Err(bad());
    }
    let acks = b.get_i16();
    let _timeout = b.get_i32();
    let topic_count = b.get_i32();
    let mut topics = Vec::new();
    for _ in 0..topic_count.max(0) {
        let name = read_legacy_string(&mut b)
            .ok_or_else(bad)?
            .unwrap_or_default();
        if b.remaining() < 4 {
            return Err(bad());
        }
        let n = b.get_i32();
        let mut parts = Vec::new();
        for _ in 0..n.max(0) {
            if b.remaining() < 8 {
                return Err(bad());
            }
            parts.push(b.get_i32());
            let len = b.get_i32();
            if len > 0 {
                if b.remaining() < len as usize {
                    return Err(bad());
                }
                b.advance(len as usize);
            }
        }
        topics.push((name, parts));
    }
    if acks == 0 {
        return Err(ProtocolError::AcksZeroFailed(
            "produce v0-v2 is not supported".into(),
        ));
    }
    let mut out = BytesMut::new();
    out.put_i32(0); // size, patched below
    out.put_i32(correlation_id);
    out.put_i32(topics.len() as i32);
    for (name, parts) in &topics {
        out.put_i16(name.len() as i16);
        out.put_slice(name.as_bytes());
        out.put_i32(parts.len() as i32);
        for p in parts {
            out.put_i32(*p);
            out.put_i16(ErrorCode::UNSUPPORTED_VERSION.code());
            out.put_i64(-1);
            if version >= 2 {
                out.put_i64(-1);
            }
        }
    }
    if version >= 1 {
        out.put_i32(0); // throttle time
    }
    let size = (out.len() - 4) as i32;
    out[0..4].copy_from_slice(&size.to_be_bytes());
    Ok(Reply::Ready(out.freeze()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use gregor_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};

    fn request(attributes: i16) -> ProduceRequest {
        let mut batch = crate::partition::tests::batch(1);
        batch[21..23].copy_from_slice(&attributes.to_be_bytes());
        ProduceRequest::default().with_topic_data(vec![TopicProduceData::default()
            .with_name(super::super::topic_name("t"))
            .with_partition_data(vec![
                PartitionProduceData::default().with_index(0),
                PartitionProduceData::default()
                    .with_index(1)
                    .with_records(Some(Bytes::from(batch))),
            ])])
    }

    /// Kafka's translation of a verification's answer (ReplicaManager.appendRecords,
    /// AddPartitionsToTxnManager).
    #[test]
    fn verification_errors_are_translated_as_kafka_does() {
        let code = |c: ErrorCode, v: i16| verification_error(c.code(), v).0;
        for retriable in [
            ErrorCode::NETWORK_EXCEPTION,
            ErrorCode::COORDINATOR_LOAD_IN_PROGRESS,
            ErrorCode::COORDINATOR_NOT_AVAILABLE,
            ErrorCode::NOT_COORDINATOR,
            ErrorCode::CONCURRENT_TRANSACTIONS,
        ] {
            assert_eq!(code(retriable, 9), ErrorCode::NOT_ENOUGH_REPLICAS);
            assert_eq!(code(retriable, 12), ErrorCode::NOT_ENOUGH_REPLICAS);
        }
        assert_eq!(
            code(ErrorCode::PRODUCER_FENCED, 11),
            ErrorCode::INVALID_PRODUCER_EPOCH
        );
        assert_eq!(
            code(ErrorCode::TRANSACTION_ABORTABLE, 10),
            ErrorCode::INVALID_TXN_STATE
        );
        assert_eq!(
            code(ErrorCode::TRANSACTION_ABORTABLE, 11),
            ErrorCode::TRANSACTION_ABORTABLE
        );
        let (c, message) = verification_error(ErrorCode::INVALID_TXN_STATE.code(), 11);
        assert_eq!(c, ErrorCode::INVALID_TXN_STATE);
        assert_eq!(
            message.as_deref(),
            Some("Partition was not added to the transaction")
        );
        assert_eq!(
            code(ErrorCode::INVALID_PRODUCER_ID_MAPPING, 11),
            ErrorCode::INVALID_PRODUCER_ID_MAPPING
        );
    }

    #[test]
    fn the_first_batch_names_its_transactional_producer() {
        let plain = crate::partition::tests::batch(1);
        assert_eq!(first_batch_producer(&plain), None);
        let txn = crate::partition::tests::txn_batch(42, 7, 2);
        assert_eq!(first_batch_producer(&txn), Some((42, 0, 7)));
        assert_eq!(first_batch_producer(&txn[..60]), None, "a truncated header");
    }

    #[test]
    fn transactional_records_are_recognised_by_their_first_batch() {
        assert!(!has_transactional_records(&request(0)));
        assert!(has_transactional_records(&request(
            gregor_protocol::batch::ATTR_TRANSACTIONAL
        )));
        assert!(!has_transactional_records(&ProduceRequest::default()));
    }

    /// An acks=1 Produce of `records` to partition 0 of `topic`.
    fn produce(topic: &str, records: Vec<u8>) -> ProduceRequest {
        ProduceRequest::default()
            .with_acks(1)
            .with_timeout_ms(1000)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(super::super::topic_name(topic))
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(0)
                    .with_records(Some(Bytes::from(records)))])])
    }

    /// KIP-937 as Kafka 4: a create time more than `message.timestamp.after.max.ms` (an hour
    /// by default) ahead of the broker's clock, or more than `message.timestamp.before.max.ms`
    /// behind it, refuses the set with INVALID_TIMESTAMP, each such record named in
    /// `record_errors`; nothing of it is appended. A topic on LogAppendTime, and a record
    /// without a timestamp (-1), are never refused for it.
    #[tokio::test]
    async fn create_times_too_far_from_the_clock_are_refused() {
        use crate::clock::Clock as _;
        use gregor_protocol::batch::encode_simple_batch;
        let dir = tempfile::tempdir().expect("tempdir");
        let b = crate::broker::test_broker(crate::config::BrokerConfig {
            data_dir: dir.path().to_path_buf(),
            ..Default::default()
        });
        let topic = |name: &str, configs: &[(&str, &str)]| {
            let configs = configs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            b.replicas
                .create_topic(name, 1, 1, configs)
                .expect("create");
        };
        topic("plain", &[]);
        topic("stamped", &[("message.timestamp.type", "LogAppendTime")]);
        topic("recent", &[("message.timestamp.before.max.ms", "60000")]);
        let answer = |r: ProduceResponse| r.responses[0].partition_responses[0].clone();
        let call = |topic: &'static str, records: Vec<u8>| {
            let b = Arc::clone(&b);
            async move {
                answer(crate::txn_coordinator::tests::call(&b, 11, &produce(topic, records)).await)
            }
        };
        let now = crate::clock::SystemClock.now_ms();
        let v = Some(&b"v"[..]);
        let hour = 3_600_000;
        let future = encode_simple_batch(now + 2 * hour, &[(None, v), (None, v)]);
        let refused = call("plain", future.clone()).await;
        assert_eq!(refused.error_code, ErrorCode::INVALID_TIMESTAMP.code());
        assert_eq!(
            refused.error_message.as_deref(),
            Some("One or more records have been rejected due to invalid timestamp")
        );
        let indexes: Vec<i32> = refused
            .record_errors
            .iter()
            .map(|e| e.batch_index)
            .collect();
        assert_eq!(indexes, vec![0, 1]);
        assert!(refused.record_errors[0]
            .batch_index_error_message
            .as_deref()
            .is_some_and(|m| m.contains("is out of range. The timestamp should be within")));
        let (_, part) = b.replicas.partition("plain", 0).expect("partition");
        assert_eq!(part.offsets().expect("offsets").1, 0, "nothing appended");
        // Within the hour, long ago, or without a timestamp: taken.
        for ts in [now + hour / 2, 1, -1] {
            let ok = call("plain", encode_simple_batch(ts, &[(None, v)])).await;
            assert_eq!(ok.error_code, 0, "timestamp {ts}");
        }
        // A topic that stamps records itself takes any create time.
        assert_eq!(call("stamped", future).await.error_code, 0);
        // A topic that keeps only recent create times.
        let old = call(
            "recent",
            encode_simple_batch(now - 2 * 60_000, &[(None, v)]),
        )
        .await;
        assert_eq!(old.error_code, ErrorCode::INVALID_TIMESTAMP.code());
        let fresh = call("recent", encode_simple_batch(now - 1_000, &[(None, v)])).await;
        assert_eq!(fresh.error_code, 0);
    }

    #[tokio::test]
    async fn a_compacted_topic_refuses_records_without_a_key() {
        use gregor_protocol::batch::encode_simple_batch;
        let dir = tempfile::tempdir().expect("tempdir");
        let b = crate::broker::test_broker(crate::config::BrokerConfig {
            data_dir: dir.path().to_path_buf(),
            ..Default::default()
        });
        let mut configs = std::collections::BTreeMap::new();
        configs.insert("cleanup.policy".to_string(), "compact,delete".to_string());
        b.replicas.create_topic("c", 1, 1, configs).expect("create");
        b.replicas
            .create_topic("d", 1, 1, Default::default())
            .expect("create");
        let keyed = encode_simple_batch(1, &[(Some(&b"k"[..]), Some(&b"v"[..]))]);
        let mixed = encode_simple_batch(
            1,
            &[(Some(&b"k"[..]), Some(&b"v"[..])), (None, Some(&b"v"[..]))],
        );
        let answer = |r: ProduceResponse| r.responses[0].partition_responses[0].clone();
        let ok = answer(crate::txn_coordinator::tests::call(&b, 11, &produce("c", keyed)).await);
        assert_eq!(ok.error_code, 0);
        let refused =
            answer(crate::txn_coordinator::tests::call(&b, 11, &produce("c", mixed.clone())).await);
        assert_eq!(refused.error_code, ErrorCode::INVALID_RECORD.code());
        assert_eq!(refused.record_errors.len(), 1);
        assert_eq!(refused.record_errors[0].batch_index, 1);
        assert!(refused.record_errors[0]
            .batch_index_error_message
            .as_deref()
            .is_some_and(|m| m.contains("without key")));
        // Nothing of the refused set was appended; a topic that is not compacted takes it.
        let (_, part) = b.replicas.partition("c", 0).expect("partition");
        assert_eq!(part.offsets().expect("offsets").1, 1);
        let ok = answer(crate::txn_coordinator::tests::call(&b, 11, &produce("d", mixed)).await);
        assert_eq!(ok.error_code, 0);
    }

    /// Produce v13 (KIP-516) names topics by id: a known id is appended to and echoed, an id
    /// the cluster does not know gets UNKNOWN_TOPIC_ID and nothing is written; v12 still goes
    /// by name.
    #[tokio::test]
    async fn produce_v13_addresses_topics_by_id() {
        use gregor_protocol::batch::encode_simple_batch;
        let dir = tempfile::tempdir().expect("tempdir");
        let b = crate::broker::test_broker(crate::config::BrokerConfig {
            data_dir: dir.path().to_path_buf(),
            ..Default::default()
        });
        b.replicas
            .create_topic("by-id", 2, 1, Default::default())
            .expect("create");
        let id = b.replicas.topic("by-id").expect("topic").id;
        assert!(!id.is_nil());
        let records = || {
            Some(Bytes::from(encode_simple_batch(
                1,
                &[(None, Some(&b"v"[..]))],
            )))
        };
        let by_id = |topic_id: uuid::Uuid| {
            ProduceRequest::default()
                .with_acks(1)
                .with_timeout_ms(1000)
                .with_topic_data(vec![TopicProduceData::default()
                    .with_topic_id(topic_id)
                    .with_partition_data(vec![PartitionProduceData::default()
                        .with_index(1)
                        .with_records(records())])])
        };
        let call = crate::txn_coordinator::tests::call;
        let ok: ProduceResponse = call(&b, 13, &by_id(id)).await;
        assert_eq!(ok.responses[0].topic_id, id, "the id is echoed");
        let p = &ok.responses[0].partition_responses[0];
        assert_eq!((p.index, p.error_code, p.base_offset), (1, 0, 0));
        let unknown = uuid::Uuid::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef);
        let refused: ProduceResponse = call(&b, 13, &by_id(unknown)).await;
        assert_eq!(refused.responses[0].topic_id, unknown);
        assert_eq!(
            refused.responses[0].partition_responses[0].error_code,
            ErrorCode::UNKNOWN_TOPIC_ID.code()
        );
        // A v13 request with a name but no id names no topic.
        let named_v13 = ProduceRequest::default().with_acks(1).with_topic_data(vec![
            TopicProduceData::default()
                .with_name(super::super::topic_name("by-id"))
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(1)
                    .with_records(records())]),
        ]);
        let refused: ProduceResponse = call(&b, 13, &named_v13).await;
        assert_eq!(
            refused.responses[0].partition_responses[0].error_code,
            ErrorCode::UNKNOWN_TOPIC_ID.code()
        );
        let named: ProduceResponse = call(&b, 12, &named_v13).await;
        assert_eq!(named.responses[0].name.0.as_str(), "by-id");
        assert_eq!(named.responses[0].partition_responses[0].base_offset, 1);
        let (_, part) = b.replicas.partition("by-id", 1).expect("partition");
        assert_eq!(
            part.offsets().expect("offsets").1,
            2,
            "only the two accepted sets"
        );
    }

    /// Kafka's checks: WRITE on the transactional id for transactional records (else every
    /// partition), then WRITE on each topic (an unauthorized topic is refused, the others are
    /// appended).
    #[tokio::test]
    async fn an_authorizer_asks_for_the_transactional_id_and_write_on_each_topic() {
        use crate::authorizer::test_support::{allow_topic, ctx_of, secured_broker};
        use gregor_protocol::batch::encode_simple_batch;
        use gregor_protocol::messages::TransactionalId;
        let dir = tempfile::tempdir().expect("tempdir");
        let b = secured_broker(dir.path());
        for name in ["t", "u"] {
            b.replicas
                .create_topic(name, 1, 1, Default::default())
                .expect("create");
        }
        let produce = |records: Vec<u8>| {
            ProduceRequest::default()
                .with_acks(1)
                .with_timeout_ms(1000)
                .with_topic_data(
                    ["t", "u"]
                        .into_iter()
                        .map(|topic| {
                            TopicProduceData::default()
                                .with_name(super::super::topic_name(topic))
                                .with_partition_data(vec![PartitionProduceData::default()
                                    .with_index(0)
                                    .with_records(Some(Bytes::from(records.clone())))])
                        })
                        .collect(),
                )
        };
        let codes = |req: ProduceRequest| {
            let reply = handle(&b, ctx_of("alice", KEY, 11), req).expect("handled");
            async move {
                let resp: ProduceResponse = crate::request::decode_reply(reply, 11).await;
                resp.responses
                    .iter()
                    .map(|t| t.partition_responses[0].error_code)
                    .collect::<Vec<i16>>()
            }
        };
        let plain = encode_simple_batch(1, &[(None, Some(&b"v"[..]))]);
        let denied = ErrorCode::TOPIC_AUTHORIZATION_FAILED.code();
        assert_eq!(codes(produce(plain.clone())).await, vec![denied, denied]);
        allow_topic(&b, "User:alice", AclOperation::Write, "t");
        assert_eq!(codes(produce(plain)).await, vec![0, denied]);
        let log_end = |topic: &str| {
            let (_, part) = b.replicas.partition(topic, 0).expect("partition");
            part.log_end_offset()
        };
        assert_eq!((log_end("t"), log_end("u")), (1, 0));
        // Transactional records without WRITE on the transactional id: nothing goes on.
        let txn = produce(crate::partition::tests::txn_batch(42, 0, 1))
            .with_transactional_id(Some(TransactionalId(super::super::str_bytes("tx"))));
        let txn_denied = ErrorCode::TRANSACTIONAL_ID_AUTHORIZATION_FAILED.code();
        assert_eq!(codes(txn).await, vec![txn_denied, txn_denied]);
        assert_eq!(log_end("t"), 1);
    }
}
