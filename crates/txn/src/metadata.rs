//! What the coordinator knows about one transactional id (Kafka's `TransactionMetadata`), and
//! the one way to change it: [`TransactionMetadata::transition`], checked against the state
//! table.

use std::collections::BTreeSet;

use crate::error::IllegalTransition;
use crate::state::TransactionState;

/// No producer id (Kafka's `RecordBatch.NO_PRODUCER_ID`).
pub const NO_PRODUCER_ID: i64 = -1;
/// No producer epoch (Kafka's `RecordBatch.NO_PRODUCER_EPOCH`).
pub const NO_PRODUCER_EPOCH: i16 = -1;

/// A partition of a topic, as markers and `__transaction_state` name it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    pub topic: String,
    pub partition: i32,
}

impl TopicPartition {
    pub fn new(topic: impl Into<String>, partition: i32) -> TopicPartition {
        TopicPartition {
            topic: topic.into(),
            partition,
        }
    }
}

/// A producer id and epoch, as a client names itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ProducerIdAndEpoch {
    pub producer_id: i64,
    pub epoch: i16,
}

/// An epoch that must not be bumped again: the next bump is a new producer id (Kafka keeps
/// `Short.MaxValue` for fencing, so `MaxValue - 1` is already exhausted).
pub fn is_epoch_exhausted(epoch: i16) -> bool {
    epoch >= i16::MAX - 1
}

/// The first transaction version whose EndTxn bumps the producer epoch (Kafka's
/// `TransactionVersion.TV_2`; EndTxn v5+ and the `transaction.version` feature at level 2).
pub const TRANSACTION_VERSION_2: i16 = 2;

/// The coordinator's record of one transactional id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionMetadata {
    pub transactional_id: String,
    /// The producer id the client uses now.
    pub producer_id: i64,
    /// The producer id before the last rotation (epoch exhaustion), so a retried InitProducerId
    /// that never saw the answer is recognised (KIP-360). `NO_PRODUCER_ID` if none.
    pub last_producer_id: i64,
    pub producer_epoch: i16,
    /// The epoch before the last bump requested with the current epoch (KIP-360), so a retry of
    /// that bump gets the same answer. Not persisted (Kafka's record has no field for it).
    pub last_producer_epoch: i16,
    /// The producer id a transactions-version-2 EndTxn (or the abort of a version-2
    /// transaction that timed out or was fenced) allocated because the epoch was exhausted: the
    /// client gets it (at epoch 0) once the markers, written with the old id at the last epoch,
    /// are done. `NO_PRODUCER_ID` otherwise (Kafka's `nextProducerId`).
    pub next_producer_id: i64,
    /// The transaction version the client ended its last transaction with (0 or 1: the
    /// classic protocol; 2: every EndTxn bumps the epoch, KIP-890 part 2). Kafka's
    /// `clientTransactionVersion`.
    pub client_transaction_version: i16,
    /// The client's `transaction.timeout.ms`.
    pub txn_timeout_ms: i32,
    pub state: TransactionState,
    /// The partitions in the open (or completing) transaction.
    pub partitions: BTreeSet<TopicPartition>,
    /// When the open transaction started (its first AddPartitionsToTxn); -1 if none.
    pub txn_start_timestamp_ms: i64,
    pub txn_last_update_timestamp_ms: i64,
    /// A transition whose `__transaction_state` append is in flight (Kafka's `pendingState`):
    /// requests meanwhile get `CONCURRENT_TRANSACTIONS`. Never persisted.
    pub pending_state: Option<TransactionState>,
}

impl TransactionMetadata {
    /// A transactional id seen for the first time: its producer id, no epoch yet, `Empty`.
    pub fn new(
        transactional_id: impl Into<String>,
        producer_id: i64,
        txn_timeout_ms: i32,
        now_ms: i64,
    ) -> TransactionMetadata {
        TransactionMetadata {
            transactional_id: transactional_id.into(),
            producer_id,
            last_producer_id: NO_PRODUCER_ID,
            producer_epoch: NO_PRODUCER_EPOCH,
            last_producer_epoch: NO_PRODUCER_EPOCH,
            next_producer_id: NO_PRODUCER_ID,
            client_transaction_version: 0,
            txn_timeout_ms,
            state: TransactionState::Empty,
            partitions: BTreeSet::new(),
            txn_start_timestamp_ms: -1,
            txn_last_update_timestamp_ms: now_ms,
            pending_state: None,
        }
    }

    /// The metadata after moving to `to` (with `change` applied to the copy), if the table
    /// allows it. The result has no pending state: it is what gets persisted.
    pub fn transition(
        &self,
        to: TransactionState,
        now_ms: i64,
        change: impl FnOnce(&mut TransactionMetadata),
    ) -> Result<TransactionMetadata, IllegalTransition> {
        if !self.state.can_transition_to(to) {
            return Err(IllegalTransition {
                from: self.state,
                to,
            });
        }
        let mut next = self.clone();
        next.state = to;
        next.pending_state = None;
        next.txn_last_update_timestamp_ms = now_ms;
        change(&mut next);
        Ok(next)
    }

    /// A write for this id is in flight.
    pub fn pending_transition_in_progress(&self) -> bool {
        self.pending_state.is_some()
    }

    /// When the timer must abort the open transaction (`Ongoing` only).
    pub fn timeout_deadline_ms(&self) -> Option<i64> {
        (self.state == TransactionState::Ongoing)
            .then(|| self.txn_start_timestamp_ms + i64::from(self.txn_timeout_ms))
    }
}
