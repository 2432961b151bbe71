//! The transaction coordinator's in-memory state (Kafka's `TransactionStateManager` cache):
//! the metadata of every transactional id in the `__transaction_state` partitions this broker
//! leads, the pending writes, and loading a partition by replaying its records.
//!
//! Each request method runs the matching pure decision of [`crate::decisions`] and, when the
//! decision writes, marks the id's transition pending. The broker then appends
//! [`crate::record_for`]`(write)` to the id's partition and calls
//! [`TransactionCoordinator::write_completed`] (or [`write_failed`]) before answering.
//!
//! [`write_failed`]: TransactionCoordinator::write_failed

use std::collections::HashMap;

use crate::decisions::{self, Decision, InitProducerIdRequest, ProducerIdSource, TxnConfig};
use crate::error::{code, DecodeError, IllegalTransition};
use crate::metadata::{TopicPartition, TransactionMetadata};
use crate::records::{decode_key, decode_value, partition_for_transactional_id};
use crate::state::TransactionState;
use crate::{TransactionResult, TxnMarkers};

/// What replaying a partition found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LoadSummary {
    pub records: usize,
    pub tombstones: usize,
    /// Keys of a version this crate does not know, skipped.
    pub skipped: usize,
    /// Transactional ids loaded (alive after the replay).
    pub transactions: usize,
}

/// Folds `__transaction_state` records (key, value; `None` = tombstone), in offset order, into
/// the latest metadata of each transactional id.
pub fn load<'a>(
    records: impl IntoIterator<Item = (&'a [u8], Option<&'a [u8]>)>,
) -> Result<(HashMap<String, TransactionMetadata>, LoadSummary), DecodeError> {
    let mut txns = HashMap::new();
    let mut summary = LoadSummary::default();
    for (key, value) in records {
        summary.records += 1;
        let Some(id) = decode_key(key)? else {
            summary.skipped += 1;
            continue;
        };
        match value {
            None => {
                summary.tombstones += 1;
                txns.remove(&id);
            }
            Some(value) => {
                let m = decode_value(value)?.into_metadata(id.clone());
                if m.state == TransactionState::Dead {
                    txns.remove(&id);
                } else {
                    txns.insert(id, m);
                }
            }
        }
    }
    summary.transactions = txns.len();
    Ok((txns, summary))
}

/// The coordinator's cache of transactional ids and its request entry points.
#[derive(Debug, Clone)]
pub struct TransactionCoordinator {
    config: TxnConfig,
    txns: HashMap<String, TransactionMetadata>,
}

impl TransactionCoordinator {
    pub fn new(config: TxnConfig) -> TransactionCoordinator {
        TransactionCoordinator {
            config,
            txns: HashMap::new(),
        }
    }

    pub fn config(&self) -> &TxnConfig {
        &self.config
    }

    /// The cluster's finalized `transaction.version`, from the broker's metadata image.
    pub fn set_transaction_version(&mut self, level: i16) {
        self.config.transaction_version = level;
    }

    pub fn get(&self, transactional_id: &str) -> Option<&TransactionMetadata> {
        self.txns.get(transactional_id)
    }

    pub fn transactions(&self) -> impl Iterator<Item = &TransactionMetadata> {
        self.txns.values()
    }

    /// The `__transaction_state` partition of `transactional_id` under this configuration.
    pub fn partition_for(&self, transactional_id: &str) -> i32 {
        partition_for_transactional_id(transactional_id, self.config.state_log_partitions)
    }

    fn mark_pending(&mut self, decision: &Decision) {
        if let Some(next) = &decision.write {
            if let Some(m) = self.txns.get_mut(&next.transactional_id) {
                m.pending_state = Some(next.state);
            }
        }
    }

    pub fn init_producer_id(
        &mut self,
        request: &InitProducerIdRequest,
        ids: &mut dyn ProducerIdSource,
        now_ms: i64,
    ) -> Decision {
        let current = self.txns.get(&request.transactional_id);
        let decision = decisions::init_producer_id(current, request, &self.config, ids, now_ms);
        if current.is_none() {
            if let Some(next) = &decision.write {
                // Kafka caches the new id (its producer id, no epoch) before the write, so a
                // concurrent InitProducerId waits instead of taking a second producer id.
                let fresh = TransactionMetadata::new(
                    next.transactional_id.clone(),
                    next.producer_id,
                    next.txn_timeout_ms,
                    now_ms,
                );
                self.txns.insert(next.transactional_id.clone(), fresh);
            }
        }
        self.mark_pending(&decision);
        decision
    }

    pub fn add_partitions(
        &mut self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        partitions: &[TopicPartition],
        now_ms: i64,
    ) -> Decision {
        let decision = decisions::add_partitions(
            self.txns.get(transactional_id),
            transactional_id,
            producer_id,
            producer_epoch,
            partitions,
            now_ms,
        );
        self.mark_pending(&decision);
        decision
    }

    pub fn add_offsets(
        &mut self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        group_id: &str,
        now_ms: i64,
    ) -> Decision {
        let decision = decisions::add_offsets(
            self.txns.get(transactional_id),
            transactional_id,
            producer_id,
            producer_epoch,
            group_id,
            &self.config,
            now_ms,
        );
        self.mark_pending(&decision);
        decision
    }

    pub fn end_txn(
        &mut self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        result: TransactionResult,
        now_ms: i64,
    ) -> Decision {
        let decision = decisions::end_txn(
            self.txns.get(transactional_id),
            transactional_id,
            producer_id,
            producer_epoch,
            result,
            now_ms,
        );
        self.mark_pending(&decision);
        decision
    }

    /// EndTxn v5+ (transactions version 2, see [`decisions::end_txn_v2`]); `ids` is asked
    /// for a producer id only when the epoch is exhausted.
    pub fn end_txn_v2(
        &mut self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        result: TransactionResult,
        ids: &mut dyn ProducerIdSource,
        now_ms: i64,
    ) -> Decision {
        let decision = decisions::end_txn_v2(
            self.txns.get(transactional_id),
            transactional_id,
            producer_id,
            producer_epoch,
            result,
            ids,
            now_ms,
        );
        self.mark_pending(&decision);
        decision
    }

    /// Every marker of `markers` is written: the completion decision (append it, then
    /// [`write_completed`](Self::write_completed)), or `None` if the transaction moved on.
    pub fn markers_written(&mut self, markers: &TxnMarkers, now_ms: i64) -> Option<Decision> {
        let m = self.txns.get(&markers.transactional_id)?;
        let decision = decisions::complete_transaction(
            m,
            markers.producer_id,
            markers.producer_epoch,
            now_ms,
        )?;
        self.mark_pending(&decision);
        Some(decision)
    }

    /// The append of `written` (a decision's `write`) succeeded: install it (`Dead` removes the
    /// id). Refuses a transition the table forbids or one that was not pending, leaving the
    /// cache as it was.
    pub fn write_completed(
        &mut self,
        written: TransactionMetadata,
    ) -> Result<(), IllegalTransition> {
        let Some(current) = self.txns.get(&written.transactional_id) else {
            return Err(IllegalTransition {
                from: TransactionState::Dead,
                to: written.state,
            });
        };
        if current.pending_state != Some(written.state)
            || !current.state.can_transition_to(written.state)
        {
            return Err(IllegalTransition {
                from: current.state,
                to: written.state,
            });
        }
        if written.state == TransactionState::Dead {
            self.txns.remove(&written.transactional_id);
        } else {
            let mut written = written;
            written.pending_state = None;
            self.txns.insert(written.transactional_id.clone(), written);
        }
        Ok(())
    }

    /// The append for `transactional_id` failed: drop the pending transition; the request is
    /// answered with the append's error and may be retried.
    pub fn write_failed(&mut self, transactional_id: &str) {
        if let Some(m) = self.txns.get_mut(transactional_id) {
            m.pending_state = None;
        }
    }

    /// The earliest timeout of an open transaction with no write in flight, for the broker's
    /// timer. It is in the past after a timed-out abort's append failed: run the timer again
    /// after a pause (Kafka's `transaction.abort.timed.out.transaction.cleanup.interval.ms`),
    /// not in a loop.
    pub fn next_deadline(&self) -> Option<i64> {
        self.txns
            .values()
            .filter(|m| !m.pending_transition_in_progress())
            .filter_map(TransactionMetadata::timeout_deadline_ms)
            .min()
    }

    /// Aborts every transaction past its timeout (run at [`next_deadline`](Self::next_deadline)
    /// and periodically, as Kafka's `transaction.abort.timed.out.transaction.cleanup.interval.ms`).
    /// `ids` is asked for a producer id per transactions-version-2 abort at an exhausted epoch
    /// ([`decisions::abort_timed_out`]); one that gets none is left for the next sweep.
    pub fn abort_timed_out(
        &mut self,
        ids: &mut dyn ProducerIdSource,
        now_ms: i64,
    ) -> Vec<Decision> {
        self.sweep(|m, config| decisions::abort_timed_out(m, config, ids, now_ms))
    }

    /// How many producer ids [`abort_timed_out`](Self::abort_timed_out) at `now_ms` would ask
    /// for, so the broker can fetch them (asynchronously, from the controller's blocks) first.
    pub fn producer_ids_to_abort_timed_out(&self, now_ms: i64) -> usize {
        self.txns
            .values()
            .filter(|m| {
                decisions::is_timed_out(m, now_ms)
                    && decisions::fence_takes_producer_id(m, &self.config)
            })
            .count()
    }

    /// Expires idle transactional ids (`transactional.id.expiration.ms`): tombstones to write.
    pub fn expire(&mut self, now_ms: i64) -> Vec<Decision> {
        self.sweep(|m, config| decisions::expire(m, config, now_ms))
    }

    /// The successful decisions `decide` takes on every cached id, in transactional-id order,
    /// each marked pending until its write completes.
    fn sweep(
        &mut self,
        mut decide: impl FnMut(&TransactionMetadata, &TxnConfig) -> Option<Decision>,
    ) -> Vec<Decision> {
        let mut out: Vec<Decision> = self
            .txns
            .values()
            .filter_map(|m| decide(m, &self.config))
            .filter(|d| d.error == code::NONE)
            .collect();
        out.sort_by(|a, b| {
            a.write
                .as_ref()
                .map(|m| &m.transactional_id)
                .cmp(&b.write.as_ref().map(|m| &m.transactional_id))
        });
        for d in &out {
            self.mark_pending(d);
        }
        out
    }

    /// Becoming the coordinator of `partition`: replay its records and take over its ids.
    /// Transactions found in `Prepare*` need their markers written again:
    /// [`pending_markers`](Self::pending_markers).
    pub fn load_partition<'a>(
        &mut self,
        partition: i32,
        records: impl IntoIterator<Item = (&'a [u8], Option<&'a [u8]>)>,
    ) -> Result<LoadSummary, DecodeError> {
        let (loaded, summary) = load(records)?;
        self.unload_partition(partition);
        self.txns.extend(loaded);
        Ok(summary)
    }

    /// No longer the coordinator of `partition`: forget its ids.
    pub fn unload_partition(&mut self, partition: i32) {
        let count = self.config.state_log_partitions;
        self.txns
            .retain(|id, _| partition_for_transactional_id(id, count) != partition);
    }

    /// The markers of every decided but uncompleted transaction (after a load or a coordinator
    /// failover, Kafka resends them).
    pub fn pending_markers(&self) -> Vec<TxnMarkers> {
        let mut out: Vec<TxnMarkers> = self
            .txns
            .values()
            .filter(|m| m.state.is_prepare())
            .map(|m| TxnMarkers {
                transactional_id: m.transactional_id.clone(),
                producer_id: m.producer_id,
                producer_epoch: m.producer_epoch,
                result: if m.state == TransactionState::PrepareCommit {
                    TransactionResult::Commit
                } else {
                    TransactionResult::Abort
                },
                partitions: m.partitions.iter().cloned().collect(),
                transaction_version: decisions::marker_transaction_version(m),
            })
            .collect();
        out.sort_by(|a, b| a.transactional_id.cmp(&b.transactional_id));
        out
    }
}
