//! Offsets committed inside a transaction (TxnOffsetCommit, KIP-98) and their completion by
//! the transaction's marker.
//!
//! ```text
//!  TxnOffsetCommit ─► validate the group (like OffsetCommit, minus the state checks)
//!        ─► Output::Append { transaction: Some(producer) } ─► one transactional batch
//!        ─► group.pending_txn_offsets[producer id]  (OffsetFetch does not see them;
//!                                                    require_stable answers UNSTABLE_OFFSET_COMMIT)
//!  WriteTxnMarkers writes COMMIT/ABORT to the group's __consumer_offsets partition
//!        ─► complete_txn_offsets(partition, producer id, committed)
//!             COMMIT: each pending offset replaces the committed one if its record is later
//!                     in the log (Kafka's order rule); ABORT: dropped
//! ```
//!
//! The logic follows Kafka's group coordinator (`OffsetMetadataManager`:
//! `commitTransactionalOffset`, `replayEndTransactionMarker`; the classic group's
//! `validateOffsetCommit` with `isTransactional`).

use crate::api::*;
use crate::coordinator::GroupCoordinator;
use crate::error::code;
use crate::group::Group;
use crate::loader::materialize;
use crate::offsets::{errors_for_all, offset_records};
use crate::records::{partition_for_group, Record, RecordKey};
use crate::state::GroupState;

impl GroupCoordinator {
    /// TxnOffsetCommit (Kafka's `commitTransactionalOffset`). A group that does not exist is
    /// created as a standalone (Empty, offsets-only) group when the request names no
    /// generation; with a generation it is ILLEGAL_GENERATION. The offsets go to the log as
    /// one transactional batch of the request's producer and stay pending until
    /// [`complete_txn_offsets`](Self::complete_txn_offsets).
    pub fn commit_txn_offsets(
        &mut self,
        request: RequestId,
        req: TxnOffsetCommitRequest,
        now_ms: i64,
    ) -> Vec<Output> {
        let respond = |topics| {
            vec![Output::Respond {
                request,
                response: Response::TxnOffsetCommit(OffsetCommitResponse { topics }),
            }]
        };
        let all_with = |error: i16| errors_for_all(&req.topics, error);
        if req.group_id.is_empty() {
            return respond(all_with(code::INVALID_GROUP_ID));
        }
        if !self.groups.contains_key(&req.group_id) {
            if req.generation_id >= 0 {
                return respond(all_with(code::ILLEGAL_GENERATION));
            }
            self.groups.insert(
                req.group_id.clone(),
                Group::new(req.group_id.clone(), now_ms),
            );
        }
        let Some(group) = self.groups.get_mut(&req.group_id) else {
            return Vec::new();
        };
        if let Some(error) = validate_txn_offset_commit(group, &req) {
            return respond(all_with(error));
        }
        let producer_id = req.producer_id;
        let (records, topics) = offset_records(
            &req.group_id,
            &req.topics,
            now_ms,
            self.config.offset_metadata_max_bytes,
            &mut self.next_record_position,
            |tp, committed| {
                group
                    .pending_txn_offsets
                    .entry(producer_id)
                    .or_default()
                    .insert(tp, committed);
            },
        );
        let response = Response::TxnOffsetCommit(OffsetCommitResponse { topics });
        if records.is_empty() {
            return vec![Output::Respond { request, response }];
        }
        vec![Output::Append {
            partition: partition_for_group(&req.group_id, self.config.offsets_topic_num_partitions),
            records,
            then: vec![(request, response)],
            transaction: Some(TxnProducer {
                producer_id: req.producer_id,
                producer_epoch: req.producer_epoch,
            }),
        }]
    }

    /// The end of `producer_id`'s transaction, after its marker was written to
    /// `__consumer_offsets` partition `partition` (Kafka's `replayEndTransactionMarker`, and
    /// `handleTxnCompletion` before it): with `committed`, the producer's pending offsets in
    /// the partition's groups become committed where their record is later in the log than
    /// the committed offset (a plain OffsetCommit written after them wins); otherwise they are
    /// dropped. Returns how many pending offsets were decided (0 when the producer had none,
    /// which is normal: a marker goes to every partition of the transaction).
    pub fn complete_txn_offsets(
        &mut self,
        partition: i32,
        producer_id: i64,
        committed: bool,
    ) -> usize {
        let count = self.config.offsets_topic_num_partitions;
        let mut decided = 0;
        for group in self.groups.values_mut() {
            if partition_for_group(&group.group_id, count) != partition {
                continue;
            }
            let Some(pending) = group.pending_txn_offsets.remove(&producer_id) else {
                continue;
            };
            decided += pending.len();
            if committed {
                for (tp, offset) in pending {
                    materialize(&mut group.offsets, tp, offset);
                }
            }
        }
        decided
    }

    /// The transactional batch of `records` (from an [`Output::Append`] of
    /// [`commit_txn_offsets`](Self::commit_txn_offsets)) was not written: its offsets leave
    /// the producer's pending ones, so a later COMMIT marker cannot commit offsets the log
    /// does not have (Kafka reverts the pending commit). A pending offset a later request
    /// already replaced stays.
    pub fn txn_append_failed(&mut self, producer_id: i64, records: &[Record]) {
        for record in records {
            let Ok(RecordKey::Offset {
                group,
                topic,
                partition,
            }) = RecordKey::decode(&record.key)
            else {
                continue;
            };
            let Some(g) = self.groups.get_mut(&group) else {
                continue;
            };
            let Some(pending) = g.pending_txn_offsets.get_mut(&producer_id) else {
                continue;
            };
            let tp = (topic, partition);
            let same = pending
                .get(&tp)
                .is_some_and(|c| record.value.as_ref() == Some(&c.value.encode()));
            if same {
                pending.remove(&tp);
            }
            if pending.is_empty() {
                g.pending_txn_offsets.remove(&producer_id);
            }
        }
    }

    /// Whether any group of `partition` holds offsets of `producer_id`'s open transaction.
    pub fn has_pending_txn_offsets(&self, partition: i32, producer_id: i64) -> bool {
        let count = self.config.offsets_topic_num_partitions;
        self.groups.values().any(|g| {
            partition_for_group(&g.group_id, count) == partition
                && g.pending_txn_offsets.contains_key(&producer_id)
        })
    }
}

/// The classic group's `validateOffsetCommit` for a transactional commit: a request without
/// member id, generation and instance id is accepted in any state (older TxnOffsetCommit
/// versions carry none); otherwise the member and generation must match. Unlike OffsetCommit,
/// no REBALANCE_IN_PROGRESS while the group completes a rebalance.
fn validate_txn_offset_commit(group: &Group, req: &TxnOffsetCommitRequest) -> Option<i16> {
    if group.state == GroupState::Dead {
        return Some(code::COORDINATOR_NOT_AVAILABLE);
    }
    if req.generation_id < 0 && group.state == GroupState::Empty {
        return None;
    }
    if req.generation_id >= 0 || !req.member_id.is_empty() || req.group_instance_id.is_some() {
        if let Err(error) = group.validate_member(&req.member_id, req.group_instance_id.as_deref())
        {
            return Some(error);
        }
        if req.generation_id != group.generation_id {
            return Some(code::ILLEGAL_GENERATION);
        }
    }
    None
}
