//! The coordinator's decisions as pure functions (Kafka's `TransactionCoordinator` handlers and
//! `TransactionMetadata.prepare*`): (current metadata, request, now) → [`Decision`].
//!
//! A decision says what to answer, which metadata to append to `__transaction_state` first, and
//! which transaction markers to write after that append:
//!
//! ```text
//! request ─► decide ─► Decision { write: Some(m) } ─► append record_for(m) ─► install m
//!                                                         │                 ─► answer `error`
//!                                                         └► markers? ─► write to each partition
//!                                                              ─► complete_transaction ─► append
//! request ─► decide ─► Decision { write: None }  ─► answer `error` now
//! ```
//! If the append fails, answer the append's error instead (Kafka maps a failed append to
//! `COORDINATOR_NOT_AVAILABLE` / `NOT_COORDINATOR`) and install nothing.
//!
//! [`end_txn`] has the semantics of transactions version 1 (the epoch is bumped by
//! InitProducerId and by fencing, not by every EndTxn); [`end_txn_v2`] those of transactions
//! version 2 (KIP-890 part 2, EndTxn v5+): every EndTxn bumps the epoch, the markers carry the
//! bumped epoch, and an exhausted epoch moves the producer to a new id once the markers are
//! written (`next_producer_id`). A timeout or a fencing InitProducerId aborts under one bump in
//! both versions, and in version 2 rotates an exhausted epoch the same way ([`abort_timed_out`]).

use crate::error::{code, IllegalTransition};
use crate::metadata::{
    is_epoch_exhausted, ProducerIdAndEpoch, TopicPartition, TransactionMetadata, NO_PRODUCER_EPOCH,
    NO_PRODUCER_ID, TRANSACTION_VERSION_2,
};
use crate::records::partition_for_group;
use crate::state::TransactionState;

/// The broker's transaction settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnConfig {
    /// `transaction.max.timeout.ms` (default 15 minutes).
    pub max_timeout_ms: i32,
    /// `transaction.state.log.num.partitions` (default 50).
    pub state_log_partitions: i32,
    /// `offsets.topic.num.partitions` (default 50), for AddOffsetsToTxn.
    pub offsets_topic_partitions: i32,
    /// `transactional.id.expiration.ms` (default 7 days).
    pub transactional_id_expiration_ms: i64,
    /// The cluster's finalized `transaction.version` (default 2, a new cluster's), which Kafka
    /// fences an open transaction under: see [`abort_timed_out`].
    pub transaction_version: i16,
}

impl Default for TxnConfig {
    fn default() -> TxnConfig {
        TxnConfig {
            max_timeout_ms: 900_000,
            state_log_partitions: crate::records::DEFAULT_TRANSACTION_STATE_PARTITIONS,
            offsets_topic_partitions: 50,
            transactional_id_expiration_ms: 7 * 24 * 60 * 60 * 1000,
            transaction_version: TRANSACTION_VERSION_2,
        }
    }
}

/// The group offsets topic AddOffsetsToTxn adds a partition of.
pub const CONSUMER_OFFSETS_TOPIC: &str = "__consumer_offsets";

/// Where new producer ids come from: the broker's `ProducerIdManager` (blocks from the
/// controller). An `Err` is the Kafka error code to answer, e.g. `COORDINATOR_LOAD_IN_PROGRESS`
/// while no block is available.
pub trait ProducerIdSource {
    fn next_producer_id(&mut self) -> Result<i64, i16>;
}

impl<F: FnMut() -> Result<i64, i16>> ProducerIdSource for F {
    fn next_producer_id(&mut self) -> Result<i64, i16> {
        self()
    }
}

/// Commit or abort.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransactionResult {
    Commit,
    Abort,
}

/// Control records to write, one per partition: `WriteTxnMarkers` (or a direct append on the
/// partition's leader) with this producer id, epoch and result. The broker adds the coordinator
/// epoch (the `__transaction_state` partition's leader epoch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxnMarkers {
    pub transactional_id: String,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub result: TransactionResult,
    pub partitions: Vec<TopicPartition>,
    /// The transaction version the markers are written under (WriteTxnMarkers v2): 2 for a
    /// transactions-version-2 EndTxn, whose bumped epoch a leader checks is newer (KIP-1228).
    pub transaction_version: i8,
}

/// What to do about one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// The error code to answer with (after `write` is appended, if any).
    pub error: i16,
    /// InitProducerId's answer; `NO_PRODUCER_ID` / `NO_PRODUCER_EPOCH` otherwise or on error.
    pub producer_id: i64,
    pub producer_epoch: i16,
    /// The metadata to append to `__transaction_state` (see [`crate::record_for`]) and to
    /// install once the append succeeds.
    pub write: Option<TransactionMetadata>,
    /// Markers to write once `write` is appended.
    pub markers: Option<TxnMarkers>,
}

impl Decision {
    /// Answer `error` now, write nothing.
    pub fn reply(error: i16) -> Decision {
        Decision {
            error,
            producer_id: NO_PRODUCER_ID,
            producer_epoch: NO_PRODUCER_EPOCH,
            write: None,
            markers: None,
        }
    }

    fn write(error: i16, next: TransactionMetadata) -> Decision {
        Decision {
            write: Some(next),
            ..Decision::reply(error)
        }
    }

    fn illegal(_e: IllegalTransition) -> Decision {
        Decision::reply(code::UNKNOWN_SERVER_ERROR)
    }
}

/// An InitProducerId request that names a transactional id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitProducerIdRequest {
    pub transactional_id: String,
    pub transaction_timeout_ms: i32,
    /// The producer id and epoch the client has (KIP-360, v3+); `None` for a fresh producer,
    /// which fences any earlier one.
    pub expected: Option<ProducerIdAndEpoch>,
}

/// InitProducerId with a transactional id (Kafka's `handleInitProducerId`).
///
/// * a new id: a producer id from `ids`, epoch 0;
/// * `Empty` / `Complete*`: the epoch is bumped (a new producer id when it is exhausted);
/// * `Ongoing`: the zombie is fenced: its transaction is aborted under a bumped epoch (see
///   [`abort_timed_out`]) and the client is answered `CONCURRENT_TRANSACTIONS`, so its retry
///   bumps once more;
/// * `Prepare*` or a write in flight: `CONCURRENT_TRANSACTIONS`;
/// * `expected` that matches neither the current producer nor a retry of the last bump:
///   `PRODUCER_FENCED`.
pub fn init_producer_id(
    current: Option<&TransactionMetadata>,
    request: &InitProducerIdRequest,
    config: &TxnConfig,
    ids: &mut dyn ProducerIdSource,
    now_ms: i64,
) -> Decision {
    if request.transactional_id.is_empty() {
        return Decision::reply(code::INVALID_REQUEST);
    }
    if request.transaction_timeout_ms <= 0 || request.transaction_timeout_ms > config.max_timeout_ms
    {
        return Decision::reply(code::INVALID_TRANSACTION_TIMEOUT);
    }
    let fresh;
    let current = match current {
        Some(m) => m,
        None => match ids.next_producer_id() {
            Ok(producer_id) => {
                fresh = TransactionMetadata::new(
                    request.transactional_id.clone(),
                    producer_id,
                    request.transaction_timeout_ms,
                    now_ms,
                );
                &fresh
            }
            Err(error) => return Decision::reply(error),
        },
    };
    if let Some(expected) = request.expected {
        // Kafka's isValidProducerId: a just-created id (no epoch yet), the current producer id,
        // or the previous one with an exhausted epoch (a retry that missed the rotation).
        let valid = current.producer_epoch == NO_PRODUCER_EPOCH
            || expected.producer_id == current.producer_id
            || (expected.producer_id == current.last_producer_id
                && is_epoch_exhausted(expected.epoch));
        if !valid {
            return Decision::reply(code::PRODUCER_FENCED);
        }
    }
    if current.pending_transition_in_progress() {
        return Decision::reply(code::CONCURRENT_TRANSACTIONS);
    }
    let timeout = request.transaction_timeout_ms;
    let next = match current.state {
        TransactionState::PrepareCommit
        | TransactionState::PrepareAbort
        | TransactionState::PrepareEpochFence
        | TransactionState::Dead => return Decision::reply(code::CONCURRENT_TRANSACTIONS),
        TransactionState::Ongoing => {
            let mut decision = fence_and_abort(current, config, ids, now_ms);
            if decision.write.is_some() {
                decision.error = code::CONCURRENT_TRANSACTIONS;
            }
            return decision;
        }
        TransactionState::Empty
        | TransactionState::CompleteCommit
        | TransactionState::CompleteAbort => {
            let exhausted_here = is_epoch_exhausted(current.producer_epoch)
                && request
                    .expected
                    .is_none_or(|e| e.epoch == current.producer_epoch);
            if exhausted_here {
                // Rotate: a new producer id at epoch 0, the old one remembered for retries.
                let new_id = match ids.next_producer_id() {
                    Ok(id) => id,
                    Err(error) => return Decision::reply(error),
                };
                let record_last_epoch = request.expected.is_some();
                current.transition(TransactionState::Empty, now_ms, |m| {
                    m.last_producer_id = m.producer_id;
                    m.producer_id = new_id;
                    m.last_producer_epoch = if record_last_epoch {
                        m.producer_epoch
                    } else {
                        NO_PRODUCER_EPOCH
                    };
                    m.producer_epoch = 0;
                    m.txn_timeout_ms = timeout;
                    m.partitions.clear();
                    m.txn_start_timestamp_ms = -1;
                })
            } else {
                // Kafka's prepareIncrementProducerEpoch.
                let (epoch, last_epoch) = match request.expected {
                    // A new producer: no earlier epoch may claim this bump as its own, so a
                    // zombie's KIP-360 retry from the last epoch is fenced.
                    None => (current.producer_epoch + 1, NO_PRODUCER_EPOCH),
                    Some(e)
                        if current.producer_epoch == NO_PRODUCER_EPOCH
                            || e.epoch == current.producer_epoch =>
                    {
                        (current.producer_epoch + 1, current.producer_epoch)
                    }
                    // A retry of the bump whose answer was lost: the same answer again.
                    Some(e) if e.epoch == current.last_producer_epoch => {
                        (current.producer_epoch, current.last_producer_epoch)
                    }
                    Some(_) => return Decision::reply(code::PRODUCER_FENCED),
                };
                current.transition(TransactionState::Empty, now_ms, |m| {
                    m.producer_epoch = epoch;
                    m.last_producer_epoch = last_epoch;
                    m.txn_timeout_ms = timeout;
                    m.partitions.clear();
                    m.txn_start_timestamp_ms = -1;
                })
            }
        }
    };
    match next {
        Ok(next) => Decision {
            producer_id: next.producer_id,
            producer_epoch: next.producer_epoch,
            ..Decision::write(code::NONE, next)
        },
        Err(e) => Decision::illegal(e),
    }
}

/// Ongoing → PrepareEpochFence → PrepareAbort, for the timer and for InitProducerId fencing
/// a zombie: see [`abort_timed_out`] for the epochs.
fn fence_and_abort(
    current: &TransactionMetadata,
    config: &TxnConfig,
    ids: &mut dyn ProducerIdSource,
    now_ms: i64,
) -> Decision {
    let bumped = if current.producer_epoch == i16::MAX {
        current.producer_epoch
    } else {
        current.producer_epoch + 1
    };
    // Kafka 4.4 on a transactions-version-2 cluster aborts under that version, whose bump
    // keeps the fenced epoch as the last one: the fenced producer's KIP-360 InitProducerId is
    // then a retry of the bump and is handed the bumped epoch (a new producer's InitProducerId
    // clears it). Version 1's fence forgets it.
    let last_epoch = if config.transaction_version >= TRANSACTION_VERSION_2
        && bumped != current.producer_epoch
    {
        current.producer_epoch
    } else {
        NO_PRODUCER_EPOCH
    };
    // The fence is a pending state in Kafka; the table is checked for both steps.
    // Kafka aborts a fenced transaction under the cluster's version, not the client's ("since
    // this is not from client, use server TV"): its markers, the rotation of an exhausted
    // epoch, and the version recorded with the id follow the cluster.
    let fenced = current.transition(TransactionState::PrepareEpochFence, now_ms, |m| {
        m.producer_epoch = bumped;
        m.last_producer_epoch = last_epoch;
        m.client_transaction_version = config.transaction_version;
    });
    let aborting =
        fenced.and_then(|f| f.transition(TransactionState::PrepareAbort, now_ms, |_| {}));
    let mut next = match aborting {
        Ok(next) => next,
        Err(e) => return Decision::illegal(e),
    };
    if fence_takes_producer_id(current, config) {
        next.next_producer_id = match ids.next_producer_id() {
            Ok(id) => id,
            Err(error) => return Decision::reply(error),
        };
    }
    prepare_decision(next, TransactionResult::Abort)
}

/// Whether fencing `m`'s open transaction (a timeout, or InitProducerId from another producer)
/// takes a new producer id: a cluster at transactions version 2 (whichever version the client
/// used), an exhausted epoch. The broker fetches the ids before the decision (see
/// [`TransactionCoordinator::producer_ids_to_abort_timed_out`](crate::TransactionCoordinator::producer_ids_to_abort_timed_out)).
pub(crate) fn fence_takes_producer_id(m: &TransactionMetadata, config: &TxnConfig) -> bool {
    config.transaction_version >= TRANSACTION_VERSION_2 && is_epoch_exhausted(m.producer_epoch)
}

/// The transaction version of `m`'s markers: 2 when its EndTxn was transactions version 2.
pub fn marker_transaction_version(m: &TransactionMetadata) -> i8 {
    if m.client_transaction_version >= TRANSACTION_VERSION_2 {
        2
    } else {
        0
    }
}

fn prepare_decision(next: TransactionMetadata, result: TransactionResult) -> Decision {
    let markers = TxnMarkers {
        transactional_id: next.transactional_id.clone(),
        producer_id: next.producer_id,
        producer_epoch: next.producer_epoch,
        result,
        partitions: next.partitions.iter().cloned().collect(),
        transaction_version: marker_transaction_version(&next),
    };
    Decision {
        markers: Some(markers),
        ..Decision::write(code::NONE, next)
    }
}

/// The checks every request of a producer shares (AddPartitionsToTxn, AddOffsetsToTxn,
/// EndTxn from a client): the id is known, its producer id matches, its epoch is current.
fn check_producer<'a>(
    current: Option<&'a TransactionMetadata>,
    transactional_id: &str,
    producer_id: i64,
    producer_epoch: i16,
) -> Result<&'a TransactionMetadata, i16> {
    if transactional_id.is_empty() {
        return Err(code::INVALID_REQUEST);
    }
    let m = current.ok_or(code::INVALID_PRODUCER_ID_MAPPING)?;
    if m.state == TransactionState::Dead || m.producer_id != producer_id {
        return Err(code::INVALID_PRODUCER_ID_MAPPING);
    }
    if m.producer_epoch != producer_epoch {
        return Err(code::PRODUCER_FENCED);
    }
    Ok(m)
}

/// AddPartitionsToTxn v0–v3 (a producer adds partitions before producing to them): opens the
/// transaction or extends it. Partitions already in an `Ongoing` transaction write nothing.
/// The broker answers every partition with `error` (after checking the topics exist:
/// `UNKNOWN_TOPIC_OR_PARTITION`, and `OPERATION_NOT_ATTEMPTED` for the rest). v4+ batches of
/// transactions from brokers run this once per transaction, and their verify-only entries go
/// to [`verify_partitions`] (KIP-890).
pub fn add_partitions(
    current: Option<&TransactionMetadata>,
    transactional_id: &str,
    producer_id: i64,
    producer_epoch: i16,
    partitions: &[TopicPartition],
    now_ms: i64,
) -> Decision {
    let m = match check_producer(current, transactional_id, producer_id, producer_epoch) {
        Ok(m) => m,
        Err(error) => return Decision::reply(error),
    };
    if m.pending_transition_in_progress() {
        return Decision::reply(code::CONCURRENT_TRANSACTIONS);
    }
    match m.state {
        TransactionState::PrepareCommit
        | TransactionState::PrepareAbort
        | TransactionState::PrepareEpochFence => Decision::reply(code::CONCURRENT_TRANSACTIONS),
        TransactionState::Dead => Decision::reply(code::INVALID_PRODUCER_ID_MAPPING),
        TransactionState::Ongoing if partitions.iter().all(|p| m.partitions.contains(p)) => {
            Decision::reply(code::NONE)
        }
        TransactionState::Ongoing
        | TransactionState::Empty
        | TransactionState::CompleteCommit
        | TransactionState::CompleteAbort => {
            let starts = m.state != TransactionState::Ongoing;
            match m.transition(TransactionState::Ongoing, now_ms, |n| {
                if starts {
                    n.partitions.clear();
                    n.txn_start_timestamp_ms = now_ms;
                }
                n.partitions.extend(partitions.iter().cloned());
            }) {
                Ok(next) => Decision::write(code::NONE, next),
                Err(e) => Decision::illegal(e),
            }
        }
    }
}

/// AddOffsetsToTxn: adds the group's `__consumer_offsets` partition, so the commit/abort marker
/// also decides the offsets TxnOffsetCommit wrote there.
pub fn add_offsets(
    current: Option<&TransactionMetadata>,
    transactional_id: &str,
    producer_id: i64,
    producer_epoch: i16,
    group_id: &str,
    config: &TxnConfig,
    now_ms: i64,
) -> Decision {
    if group_id.is_empty() {
        return Decision::reply(code::INVALID_REQUEST);
    }
    let partition = TopicPartition::new(
        CONSUMER_OFFSETS_TOPIC,
        partition_for_group(group_id, config.offsets_topic_partitions),
    );
    add_partitions(
        current,
        transactional_id,
        producer_id,
        producer_epoch,
        &[partition],
        now_ms,
    )
}

/// AddPartitionsToTxn v4+ `verify_only` (KIP-890 part 1): a partition leader asks, before
/// appending a transactional batch, whether its partition is in the producer's open
/// transaction. Nothing is written. As Kafka's `handleVerifyPartitionsInTransaction`: the
/// producer is checked as in [`add_partitions`]; a transaction whose markers are being written
/// is `CONCURRENT_TRANSACTIONS` (the leader's producer retries); else per partition `NONE` if it
/// is in the transaction, `TRANSACTION_ABORTABLE` if not (the leader answers clients too old for
/// that error `INVALID_TXN_STATE`).
pub fn verify_partitions(
    current: Option<&TransactionMetadata>,
    transactional_id: &str,
    producer_id: i64,
    producer_epoch: i16,
    partitions: &[TopicPartition],
) -> Vec<(TopicPartition, i16)> {
    let answer = |p: &TopicPartition, m: &TransactionMetadata| {
        if matches!(
            m.state,
            TransactionState::PrepareCommit | TransactionState::PrepareAbort
        ) {
            code::CONCURRENT_TRANSACTIONS
        } else if m.partitions.contains(p) {
            code::NONE
        } else {
            code::TRANSACTION_ABORTABLE
        }
    };
    match check_producer(current, transactional_id, producer_id, producer_epoch) {
        Ok(m) => partitions
            .iter()
            .map(|p| (p.clone(), answer(p, m)))
            .collect(),
        Err(error) => partitions.iter().map(|p| (p.clone(), error)).collect(),
    }
}

/// EndTxn from a client (Kafka's `handleEndTransaction`, `isFromClient = true`).
///
/// `Ongoing` → `Prepare*` (write, then markers). A retry of an EndTxn that already completed
/// the same way is answered `NONE`; one whose markers are still being written,
/// `CONCURRENT_TRANSACTIONS`; the opposite result or no transaction, `INVALID_TXN_STATE`.
/// Map `PRODUCER_FENCED` for old versions with [`crate::error_for_version`].
pub fn end_txn(
    current: Option<&TransactionMetadata>,
    transactional_id: &str,
    producer_id: i64,
    producer_epoch: i16,
    result: TransactionResult,
    now_ms: i64,
) -> Decision {
    let m = match check_producer(current, transactional_id, producer_id, producer_epoch) {
        Ok(m) => m,
        Err(error) => return Decision::reply(error),
    };
    if m.pending_transition_in_progress() {
        return Decision::reply(code::CONCURRENT_TRANSACTIONS);
    }
    use TransactionResult::{Abort, Commit};
    use TransactionState::*;
    match (m.state, result) {
        (Ongoing, _) => {
            let to = if result == Commit {
                PrepareCommit
            } else {
                PrepareAbort
            };
            match m.transition(to, now_ms, |n| n.client_transaction_version = 0) {
                Ok(next) => prepare_decision(next, result),
                Err(e) => Decision::illegal(e),
            }
        }
        (CompleteCommit, Commit) | (CompleteAbort, Abort) => Decision::reply(code::NONE),
        (PrepareCommit, Commit) | (PrepareAbort, Abort) => {
            Decision::reply(code::CONCURRENT_TRANSACTIONS)
        }
        (PrepareEpochFence, _) => Decision::reply(code::CONCURRENT_TRANSACTIONS),
        (Dead, _) => Decision::reply(code::INVALID_PRODUCER_ID_MAPPING),
        (Empty, _)
        | (CompleteCommit, Abort)
        | (CompleteAbort, Commit)
        | (PrepareCommit, Abort)
        | (PrepareAbort, Commit) => Decision::reply(code::INVALID_TXN_STATE),
    }
}

/// EndTxn v5+ from a client: transactions version 2 (Kafka's `endTransaction` for
/// `TransactionVersion.TV_2`). Every EndTxn bumps the epoch:
///
/// * `Ongoing` → `Prepare*` with the epoch + 1; the markers carry it. An exhausted epoch
///   takes a producer id from `ids` as `next_producer_id` (the markers still use the old id at
///   the last epoch; [`complete_transaction`] moves to the new id at epoch 0).
/// * An abort with no transaction open (`Empty`, or `Complete*` not being retried) also bumps
///   the epoch: `PrepareAbort` with no partitions (the client cannot know whether its
///   partitions were added; Kafka 4.x does the same).
/// * A retry (the client's epoch is the one before the current, or the last epoch of the
///   previous producer id after a rotation) of an EndTxn that completed the same way is
///   answered `NONE` with the current producer id and epoch; one still writing markers,
///   `CONCURRENT_TRANSACTIONS`.
///
/// The decision's `producer_id` / `producer_epoch` are what EndTxn v5 answers: the id and
/// epoch the producer uses next.
pub fn end_txn_v2(
    current: Option<&TransactionMetadata>,
    transactional_id: &str,
    producer_id: i64,
    producer_epoch: i16,
    result: TransactionResult,
    ids: &mut dyn ProducerIdSource,
    now_ms: i64,
) -> Decision {
    use TransactionResult::{Abort, Commit};
    use TransactionState::*;
    if transactional_id.is_empty() {
        return Decision::reply(code::INVALID_REQUEST);
    }
    let Some(m) = current else {
        return Decision::reply(code::INVALID_PRODUCER_ID_MAPPING);
    };
    let client_epoch = i32::from(producer_epoch);
    let current_epoch = i32::from(m.producer_epoch);
    // The EndTxn that rotated the producer id, retried with the old id's last epoch.
    let retry_on_overflow = m.last_producer_id == producer_id
        && m.last_producer_id != NO_PRODUCER_ID
        && producer_epoch == i16::MAX - 1
        && m.producer_epoch == 0;
    // An EndTxn retried after its bump was written.
    let retry_on_epoch_bump = m.producer_id == producer_id && current_epoch == client_epoch + 1;
    if m.producer_id != producer_id && !retry_on_overflow {
        return Decision::reply(code::INVALID_PRODUCER_ID_MAPPING);
    }
    let valid_epoch = match m.state {
        Ongoing | Empty | Dead | PrepareEpochFence => client_epoch == current_epoch,
        PrepareCommit | PrepareAbort => retry_on_epoch_bump,
        CompleteCommit | CompleteAbort => {
            retry_on_epoch_bump || retry_on_overflow || client_epoch == current_epoch
        }
    };
    if !valid_epoch {
        return Decision::reply(code::PRODUCER_FENCED);
    }
    if m.pending_transition_in_progress() {
        return Decision::reply(code::CONCURRENT_TRANSACTIONS);
    }
    let is_retry = retry_on_epoch_bump || retry_on_overflow;
    let same_again = || Decision {
        producer_id: m.producer_id,
        producer_epoch: m.producer_epoch,
        ..Decision::reply(code::NONE)
    };
    match (m.state, result) {
        (Ongoing, _) => prepare_v2(m, result, false, ids, now_ms),
        (CompleteCommit, Commit) | (CompleteAbort, Abort) if is_retry => same_again(),
        (CompleteCommit, Abort) if is_retry => Decision::reply(code::INVALID_TXN_STATE),
        (Empty, Abort) | (CompleteCommit, Abort) | (CompleteAbort, Abort) => {
            prepare_v2(m, Abort, true, ids, now_ms)
        }
        (PrepareCommit, Commit) | (PrepareAbort, Abort) => {
            Decision::reply(code::CONCURRENT_TRANSACTIONS)
        }
        (PrepareEpochFence, _) => Decision::reply(code::CONCURRENT_TRANSACTIONS),
        (Dead, _) => Decision::reply(code::INVALID_PRODUCER_ID_MAPPING),
        (Empty, Commit)
        | (CompleteCommit, Commit)
        | (CompleteAbort, Commit)
        | (PrepareCommit, Abort)
        | (PrepareAbort, Commit) => Decision::reply(code::INVALID_TXN_STATE),
    }
}

/// The `Prepare*` of a transactions-version-2 EndTxn (Kafka's `prepareAbortOrCommit` with
/// `TV_2`): the epoch + 1, a new producer id waiting in `next_producer_id` when the epoch is
/// exhausted. `no_transaction`: an abort with nothing open, so no partitions get markers.
fn prepare_v2(
    m: &TransactionMetadata,
    result: TransactionResult,
    no_transaction: bool,
    ids: &mut dyn ProducerIdSource,
    now_ms: i64,
) -> Decision {
    let Some(bumped) = m.producer_epoch.checked_add(1) else {
        // Only a fence reaches `i16::MAX`; the client cannot be at it.
        return Decision::reply(code::PRODUCER_FENCED);
    };
    let next_producer_id = if is_epoch_exhausted(m.producer_epoch) {
        match ids.next_producer_id() {
            Ok(id) => id,
            Err(error) => return Decision::reply(error),
        }
    } else {
        NO_PRODUCER_ID
    };
    let to = match result {
        TransactionResult::Commit => TransactionState::PrepareCommit,
        TransactionResult::Abort => TransactionState::PrepareAbort,
    };
    let next = match m.transition(to, now_ms, |n| {
        n.last_producer_epoch = n.producer_epoch;
        n.producer_epoch = bumped;
        n.next_producer_id = next_producer_id;
        n.client_transaction_version = TRANSACTION_VERSION_2;
        if no_transaction {
            n.partitions.clear();
            n.txn_start_timestamp_ms = now_ms;
        }
    }) {
        Ok(next) => next,
        Err(e) => return Decision::illegal(e),
    };
    let (answer_id, answer_epoch) = if next_producer_id != NO_PRODUCER_ID {
        (next_producer_id, 0)
    } else {
        (next.producer_id, next.producer_epoch)
    };
    Decision {
        producer_id: answer_id,
        producer_epoch: answer_epoch,
        ..prepare_decision(next, result)
    }
}

/// The timer (Kafka's `abortTimedOutTransactions`): an `Ongoing` transaction older than its
/// timeout, with no write in flight, is aborted under a bumped epoch, which fences the
/// producer that let it time out. `None` if there is nothing to do. InitProducerId fencing an
/// open transaction aborts it the same way.
///
/// The epoch is bumped once (unless it is already `i16::MAX`), under both transaction versions,
/// as Kafka 4.4 does: its transactions-version-2 abort used to bump a second time after the
/// fence (Kafka 4.0.0) and no longer does (KAFKA-19367). So the producer left at the old epoch
/// finds `Complete*` at its epoch + 1, and [`end_txn_v2`] takes its EndTxn for a retry: an
/// abort is answered `NONE` with the id and epoch to go on with, a commit `INVALID_TXN_STATE`.
///
/// The abort runs under the cluster's transaction version (`config.transaction_version`), not
/// the client's, as Kafka's: on a cluster at version 2 its markers are version 2 markers, the
/// id records version 2, and an exhausted epoch also takes a producer id from `ids` as
/// `next_producer_id`, as [`end_txn_v2`] does (KAFKA-20090): the markers go out under the old
/// id at the bumped epoch, and [`complete_transaction`] moves the producer to the new id at
/// epoch 0, so a late EndTxn from the old id at 32766 is a retry of that rotation. If no id
/// can be had, the decision carries the error, writes nothing, and the next sweep tries again.
/// On a cluster at version 1 the next InitProducerId rotates the id.
pub fn abort_timed_out(
    current: &TransactionMetadata,
    config: &TxnConfig,
    ids: &mut dyn ProducerIdSource,
    now_ms: i64,
) -> Option<Decision> {
    is_timed_out(current, now_ms).then(|| fence_and_abort(current, config, ids, now_ms))
}

/// Whether the timer aborts `m` at `now_ms`: an `Ongoing` transaction past its timeout, with
/// no write in flight.
pub(crate) fn is_timed_out(m: &TransactionMetadata, now_ms: i64) -> bool {
    m.timeout_deadline_ms().is_some_and(|d| d < now_ms) && !m.pending_transition_in_progress()
}

/// Every marker of a `Prepare*` transaction is written: `PrepareCommit → CompleteCommit`,
/// `PrepareAbort → CompleteAbort`, the partitions cleared. `None` if `current` is not that
/// transaction any more (another epoch, another state, a write in flight).
pub fn complete_transaction(
    current: &TransactionMetadata,
    producer_id: i64,
    producer_epoch: i16,
    now_ms: i64,
) -> Option<Decision> {
    if current.producer_id != producer_id
        || current.producer_epoch != producer_epoch
        || current.pending_transition_in_progress()
    {
        return None;
    }
    let to = match current.state {
        TransactionState::PrepareCommit => TransactionState::CompleteCommit,
        TransactionState::PrepareAbort => TransactionState::CompleteAbort,
        _ => return None,
    };
    Some(
        match current.transition(to, now_ms, |m| {
            m.partitions.clear();
            if m.client_transaction_version >= TRANSACTION_VERSION_2
                && m.next_producer_id != NO_PRODUCER_ID
            {
                // The epoch was exhausted: the markers went out at the last epoch of the old
                // id; the producer goes on with the new id (Kafka's `prepareComplete`). The
                // old id is kept so a retried EndTxn is recognised, and the last epoch stays the
                // client's (32766, from Prepare), so its InitProducerId from there is a retry.
                m.last_producer_id = m.producer_id;
                m.producer_id = m.next_producer_id;
                m.producer_epoch = 0;
            }
            m.next_producer_id = NO_PRODUCER_ID;
        }) {
            Ok(next) => Decision::write(code::NONE, next),
            Err(e) => Decision::illegal(e),
        },
    )
}

/// `transactional.id.expiration.ms`: an idle id not updated for that long becomes `Dead`; its
/// write is a tombstone. `None` if it must stay.
pub fn expire(current: &TransactionMetadata, config: &TxnConfig, now_ms: i64) -> Option<Decision> {
    if !current.state.is_idle()
        || current.pending_transition_in_progress()
        || current.txn_last_update_timestamp_ms + config.transactional_id_expiration_ms > now_ms
    {
        return None;
    }
    Some(
        match current.transition(TransactionState::Dead, now_ms, |_| {}) {
            Ok(next) => Decision::write(code::NONE, next),
            Err(e) => Decision::illegal(e),
        },
    )
}
