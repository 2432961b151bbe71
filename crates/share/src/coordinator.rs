//! The share coordinator's core (Kafka's `ShareCoordinatorShard`), free of I/O: the durable
//! state of every share-partition whose `__share_group_state` partition this broker loaded, and
//! the decisions of ReadShareGroupState, WriteShareGroupState, InitializeShareGroupState,
//! DeleteShareGroupState and ReadShareGroupStateSummary.
//!
//! ```text
//!  runtime (broker share_coordinator.rs), under its lock:
//!    decision = core.read / write / initialize / delete (key, ..., now)
//!      ─► Decision { answer, record }
//!    record ─► appended to __share_group_state-<partition_for(key)> ─► core.replay(p, record)
//!    answer ─► once the partition's log is durable up to the decision (acks=all)
//!  loading a partition: core.load_partition(p, every record) (snapshots, updates, tombstones)
//! ```
//!
//! Rules, as Kafka 4.4's shard:
//! - Read (leader epoch ≥ 0): no state → INVALID_REQUEST ("Read operation on uninitialized
//!   share partition not allowed."); a leader epoch older than the newest seen →
//!   FENCED_LEADER_EPOCH; a newer one is recorded (a record is written) before the answer.
//! - Write: no state → INVALID_REQUEST; an older leader epoch → FENCED_LEADER_EPOCH; an older
//!   state epoch → FENCED_STATE_EPOCH. Kafka merges the written batches into the stored ones
//!   (its leaders send only what changed); gregor's leaders send their whole state, so the
//!   written batches replace the stored ones (batches below the start offset dropped, a batch
//!   across it trimmed). A start offset of -1 keeps the stored one, as in Kafka.
//! - Initialize: a state epoch older than the stored one → FENCED_STATE_EPOCH (the same epoch
//!   is accepted, as Kafka does); the state becomes the start offset given (-1 allowed), no
//!   batches, leader epoch 0 (the newest leader epoch seen still fences older leaders).
//! - Delete: a tombstone; nothing to delete is no error (and nothing is written).
//! - Topics deleted (Kafka's `onTopicsDeleted` → `maybeCleanupShareState`): a tombstone for
//!   every share-partition of theirs in each loaded partition.
//! - ReadSummary: state epoch, leader epoch, start offset; no state → `None` (Kafka answers it
//!   as start offset -1, leader and state epoch 0).
//!
//! gregor writes a full snapshot for every change (Kafka writes updates between snapshots).

use std::collections::{BTreeSet, HashMap};

use crate::records::{
    ShareRecord, ShareSnapshotValue, ShareUpdateValue, UNKNOWN_DELIVERY_COMPLETE_COUNT,
};
use crate::state::{PersistedState, ShareKey, StateBatch, StateSummary};

/// Kafka's error codes the share coordinator answers.
pub mod code {
    /// No error.
    pub const NONE: i16 = 0;
    /// Unexpected failure.
    pub const UNKNOWN_SERVER_ERROR: i16 = -1;
    /// The topic or partition is not in the metadata image.
    pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
    /// The state partition is being loaded.
    pub const COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;
    /// The coordinator cannot answer now (its topic missing, a write not replicated).
    pub const COORDINATOR_NOT_AVAILABLE: i16 = 15;
    /// Another broker coordinates the key.
    pub const NOT_COORDINATOR: i16 = 16;
    /// Refused (bad fields; a share-partition without state for Read and Write).
    pub const INVALID_REQUEST: i16 = 42;
    /// A newer leader epoch read or wrote the share-partition.
    pub const FENCED_LEADER_EPOCH: i16 = 74;
    /// The share-partition's state epoch is newer than the request's.
    pub const FENCED_STATE_EPOCH: i16 = 124;
}

/// Kafka's message for a Read of a share-partition without state.
pub const READ_UNINITIALIZED: &str = "Read operation on uninitialized share partition not allowed.";
/// Kafka's message for a Write of a share-partition without state.
pub const WRITE_UNINITIALIZED: &str =
    "Write operation on uninitialized share partition not allowed.";

/// A refusal: Kafka's error code and the message answered with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareError {
    /// Kafka's error code.
    pub code: i16,
    /// The `error_message` answered (`None`: the code's default).
    pub message: Option<&'static str>,
}

impl ShareError {
    fn new(code: i16, message: &'static str) -> ShareError {
        ShareError {
            code,
            message: Some(message),
        }
    }

    fn code(code: i16) -> ShareError {
        ShareError {
            code,
            message: None,
        }
    }
}

/// Kafka's INVALID_REQUEST for a negative partition, leader epoch or state epoch in a
/// request (checked in that order; `None` for a field the request does not carry).
fn negative_field(
    partition: i32,
    leader_epoch: Option<i32>,
    state_epoch: Option<i32>,
) -> Option<ShareError> {
    let message = if partition < 0 {
        "The partition id cannot be a negative number."
    } else if leader_epoch.is_some_and(|e| e < 0) {
        "The leader epoch cannot be a negative number."
    } else if state_epoch.is_some_and(|e| e < 0) {
        "The state epoch cannot be a negative number."
    } else {
        return None;
    };
    Some(ShareError::new(code::INVALID_REQUEST, message))
}

/// A decision: what to answer, and the record to write first (the answer holds only once the
/// record is durable).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision<T> {
    /// The answer.
    pub answer: Result<T, ShareError>,
    /// The record to append to the key's `__share_group_state` partition, then
    /// [`ShareCoordinator::replay`].
    pub record: Option<ShareRecord>,
}

impl<T> Decision<T> {
    fn refuse(error: ShareError) -> Decision<T> {
        Decision {
            answer: Err(error),
            record: None,
        }
    }
}

/// Java's `String.hashCode` (UTF-16 code units, wrapping `31 * h + c`).
fn java_string_hash_code(s: &str) -> i32 {
    s.encode_utf16().fold(0i32, |h, unit| {
        h.wrapping_mul(31).wrapping_add(i32::from(unit))
    })
}

/// The `__share_group_state` partition of a share-partition (Kafka's
/// `ShareCoordinatorService.partitionFor`): `abs(hashCode("group:topicId:partition")) %
/// partitions`, where Kafka's `Utils.abs(Integer.MIN_VALUE)` is 0.
pub fn partition_for(key: &ShareKey, partition_count: i32) -> i32 {
    partition_for_coordinator_key(&key.coordinator_key(), partition_count)
}

/// [`partition_for`] of a FindCoordinator key type 2 (`group:topicId:partition`).
pub fn partition_for_coordinator_key(coordinator_key: &str, partition_count: i32) -> i32 {
    java_string_hash_code(coordinator_key)
        .checked_abs()
        .unwrap_or(0)
        % partition_count.max(1)
}

/// One share-partition's stored state (Kafka's `ShareGroupOffset`), with the newest leader and
/// state epochs any of its records carried (Kafka's `leaderEpochMap` / `stateEpochMap`).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    state: ShareSnapshotValue,
    max_leader_epoch: i32,
    max_state_epoch: i32,
}

/// The share coordinator's state of every loaded `__share_group_state` partition.
#[derive(Debug, Clone)]
pub struct ShareCoordinator {
    /// `share.coordinator.state.topic.num.partitions`.
    partition_count: i32,
    /// Each loaded state partition's share-partitions.
    partitions: HashMap<i32, HashMap<ShareKey, Entry>>,
}

impl ShareCoordinator {
    /// A coordinator of `partition_count` state partitions, none loaded.
    pub fn new(partition_count: i32) -> ShareCoordinator {
        ShareCoordinator {
            partition_count: partition_count.max(1),
            partitions: HashMap::new(),
        }
    }

    /// The state partition of `key`.
    pub fn partition_for(&self, key: &ShareKey) -> i32 {
        partition_for(key, self.partition_count)
    }

    fn entry(&self, key: &ShareKey) -> Option<&Entry> {
        self.partitions
            .get(&self.partition_for(key))
            .and_then(|p| p.get(key))
    }

    /// Replaces `partition`'s state with the replay of `records` (key, value) in log order.
    /// Returns how many share-partitions it holds.
    pub fn load_partition<'a>(
        &mut self,
        partition: i32,
        records: impl IntoIterator<Item = (&'a [u8], Option<&'a [u8]>)>,
    ) -> Result<usize, crate::records::DecodeError> {
        self.partitions.insert(partition, HashMap::new());
        for (key, value) in records {
            if let Some(record) = ShareRecord::decode(key, value)? {
                self.replay(partition, &record);
            }
        }
        Ok(self.partitions.get(&partition).map_or(0, HashMap::len))
    }

    /// Forgets `partition` (this broker no longer leads it).
    pub fn unload_partition(&mut self, partition: i32) {
        self.partitions.remove(&partition);
    }

    /// How many share-partitions `partition` holds (`None`: not loaded).
    pub fn share_partitions(&self, partition: i32) -> Option<usize> {
        self.partitions.get(&partition).map(HashMap::len)
    }

    /// Applies one record of `partition` (Kafka's `replay`): a snapshot replaces the
    /// share-partition's state, an update is merged into it, a tombstone removes it.
    pub fn replay(&mut self, partition: i32, record: &ShareRecord) {
        let states = self.partitions.entry(partition).or_default();
        match record {
            ShareRecord::Snapshot(key, value) => {
                let entry = states.entry(key.clone()).or_insert_with(|| Entry {
                    state: value.clone(),
                    max_leader_epoch: value.leader_epoch,
                    max_state_epoch: value.state_epoch,
                });
                entry.state = value.clone();
                entry.max_leader_epoch = entry.max_leader_epoch.max(value.leader_epoch);
                entry.max_state_epoch = entry.max_state_epoch.max(value.state_epoch);
            }
            ShareRecord::Update(key, update) => match states.get_mut(key) {
                Some(entry) => {
                    merge_update(&mut entry.state, update);
                    entry.max_leader_epoch = entry.max_leader_epoch.max(update.leader_epoch);
                }
                None => {
                    // An update without its snapshot (compacted or pruned away): its own
                    // fields are the state, as Kafka's `ShareGroupOffset.fromRecord`.
                    let state = ShareSnapshotValue {
                        snapshot_epoch: update.snapshot_epoch,
                        state_epoch: 0,
                        leader_epoch: update.leader_epoch,
                        start_offset: update.start_offset,
                        delivery_complete_count: update.delivery_complete_count,
                        create_timestamp: -1,
                        write_timestamp: -1,
                        state_batches: update.state_batches.clone(),
                    };
                    states.insert(
                        key.clone(),
                        Entry {
                            state,
                            max_leader_epoch: update.leader_epoch,
                            max_state_epoch: 0,
                        },
                    );
                }
            },
            ShareRecord::Tombstone(key) => {
                states.remove(key);
            }
        }
    }

    /// ReadShareGroupState of `key` by its leader in `leader_epoch`.
    pub fn read(&self, key: &ShareKey, leader_epoch: i32, now_ms: i64) -> Decision<PersistedState> {
        if let Some(e) = negative_field(key.partition, Some(leader_epoch), None) {
            return Decision::refuse(e);
        }
        let Some(entry) = self.entry(key) else {
            return Decision::refuse(ShareError::new(code::INVALID_REQUEST, READ_UNINITIALIZED));
        };
        if entry.max_leader_epoch > leader_epoch {
            return Decision::refuse(ShareError::code(code::FENCED_LEADER_EPOCH));
        }
        let answer = PersistedState {
            state_epoch: entry.state.state_epoch,
            start_offset: entry.state.start_offset,
            state_batches: entry.state.state_batches.clone(),
        };
        // A newer leader: its epoch is recorded, so older leaders are fenced from now on.
        let record = (leader_epoch != entry.max_leader_epoch).then(|| {
            let mut next = entry.state.clone();
            next.snapshot_epoch = next.snapshot_epoch.wrapping_add(1);
            next.leader_epoch = leader_epoch;
            next.write_timestamp = now_ms;
            ShareRecord::Snapshot(key.clone(), next)
        });
        Decision {
            answer: Ok(answer),
            record,
        }
    }

    /// WriteShareGroupState of `key`: `state` written by its leader in `leader_epoch`.
    /// `delivery_complete_count` as the request carries it (-1: unknown).
    pub fn write(
        &self,
        key: &ShareKey,
        leader_epoch: i32,
        state: &PersistedState,
        delivery_complete_count: i32,
        now_ms: i64,
    ) -> Decision<()> {
        if let Some(e) = negative_field(key.partition, Some(leader_epoch), Some(state.state_epoch))
        {
            return Decision::refuse(e);
        }
        let Some(entry) = self.entry(key) else {
            return Decision::refuse(ShareError::new(code::INVALID_REQUEST, WRITE_UNINITIALIZED));
        };
        if entry.max_leader_epoch > leader_epoch {
            return Decision::refuse(ShareError::code(code::FENCED_LEADER_EPOCH));
        }
        if entry.max_state_epoch > state.state_epoch {
            return Decision::refuse(ShareError::code(code::FENCED_STATE_EPOCH));
        }
        let start_offset = if state.start_offset == -1 {
            entry.state.start_offset
        } else {
            state.start_offset
        };
        let next = ShareSnapshotValue {
            snapshot_epoch: entry.state.snapshot_epoch.wrapping_add(1),
            state_epoch: state.state_epoch,
            leader_epoch,
            start_offset,
            delivery_complete_count,
            create_timestamp: entry.state.create_timestamp,
            write_timestamp: now_ms,
            state_batches: batches_from(start_offset, &state.state_batches),
        };
        Decision {
            answer: Ok(()),
            record: Some(ShareRecord::Snapshot(key.clone(), next)),
        }
    }

    /// InitializeShareGroupState of `key`: its state created or reset at `start_offset`
    /// (-1: decided later by the leader) in `state_epoch`.
    pub fn initialize(
        &self,
        key: &ShareKey,
        state_epoch: i32,
        start_offset: i64,
        now_ms: i64,
    ) -> Decision<()> {
        if let Some(e) = negative_field(key.partition, None, Some(state_epoch)) {
            return Decision::refuse(e);
        }
        let existing = self.entry(key);
        if existing.is_some_and(|e| e.max_state_epoch > state_epoch) {
            return Decision::refuse(ShareError::code(code::FENCED_STATE_EPOCH));
        }
        let next = ShareSnapshotValue {
            snapshot_epoch: existing.map_or(0, |e| e.state.snapshot_epoch.wrapping_add(1)),
            state_epoch,
            leader_epoch: 0,
            start_offset,
            delivery_complete_count: if start_offset == -1 {
                UNKNOWN_DELIVERY_COMPLETE_COUNT
            } else {
                0
            },
            create_timestamp: now_ms,
            write_timestamp: now_ms,
            state_batches: Vec::new(),
        };
        Decision {
            answer: Ok(()),
            record: Some(ShareRecord::Snapshot(key.clone(), next)),
        }
    }

    /// DeleteShareGroupState of `key`: a tombstone when it has state.
    pub fn delete(&self, key: &ShareKey) -> Decision<()> {
        if let Some(e) = negative_field(key.partition, None, None) {
            return Decision::refuse(e);
        }
        Decision {
            answer: Ok(()),
            record: self.entry(key).map(|_| ShareRecord::Tombstone(key.clone())),
        }
    }

    /// Kafka's `maybeCleanupShareState`: the tombstones of `partition`'s share-partitions
    /// whose topic is one of `deleted_topics`, in key order. The runtime appends them to the
    /// partition, then [`Self::replay`]s them.
    pub fn tombstones_of_topics(
        &self,
        partition: i32,
        deleted_topics: &BTreeSet<uuid::Uuid>,
    ) -> Vec<ShareRecord> {
        let Some(states) = self.partitions.get(&partition) else {
            return Vec::new();
        };
        let mut keys: Vec<&ShareKey> = states
            .keys()
            .filter(|k| deleted_topics.contains(&k.topic_id))
            .collect();
        keys.sort();
        keys.into_iter()
            .map(|k| ShareRecord::Tombstone(k.clone()))
            .collect()
    }

    /// ReadShareGroupStateSummary of `key`: `None` when it has no state.
    pub fn read_summary(&self, key: &ShareKey) -> Result<Option<StateSummary>, ShareError> {
        if let Some(e) = negative_field(key.partition, None, None) {
            return Err(e);
        }
        Ok(self.entry(key).map(|e| StateSummary {
            state_epoch: e.state.state_epoch,
            leader_epoch: e.state.leader_epoch,
            start_offset: e.state.start_offset,
            delivery_complete_count: e.state.delivery_complete_count,
        }))
    }
}

/// The batches at or past `start_offset` (a batch across it is trimmed), in offset order.
fn batches_from(start_offset: i64, batches: &[StateBatch]) -> Vec<StateBatch> {
    let mut out: Vec<StateBatch> = batches
        .iter()
        .filter(|b| b.last_offset >= start_offset && b.last_offset >= b.first_offset)
        .map(|b| StateBatch {
            first_offset: b.first_offset.max(start_offset),
            ..*b
        })
        .collect();
    out.sort_by_key(|b| b.first_offset);
    out
}

/// Merges an update into a snapshot's state (Kafka's `PersisterStateBatchCombiner`, simply):
/// the update's batches win where they overlap the stored ones, the start offset moves when the
/// update gives one, and what falls below it goes; adjacent runs of the same state and count
/// are joined.
fn merge_update(state: &mut ShareSnapshotValue, update: &ShareUpdateValue) {
    if update.start_offset != -1 {
        state.start_offset = update.start_offset;
    }
    state.leader_epoch = update.leader_epoch;
    state.snapshot_epoch = update.snapshot_epoch;
    if update.delivery_complete_count != UNKNOWN_DELIVERY_COMPLETE_COUNT {
        state.delivery_complete_count = update.delivery_complete_count;
    }
    let mut pieces: Vec<StateBatch> = Vec::new();
    for old in &state.state_batches {
        // What is left of `old` outside every new batch.
        let mut rest = vec![*old];
        for new in &update.state_batches {
            rest = rest
                .into_iter()
                .flat_map(|r| {
                    let mut left = Vec::new();
                    if new.last_offset < r.first_offset || new.first_offset > r.last_offset {
                        left.push(r);
                        return left;
                    }
                    if r.first_offset < new.first_offset {
                        left.push(StateBatch {
                            last_offset: new.first_offset - 1,
                            ..r
                        });
                    }
                    if r.last_offset > new.last_offset {
                        left.push(StateBatch {
                            first_offset: new.last_offset + 1,
                            ..r
                        });
                    }
                    left
                })
                .collect();
        }
        pieces.extend(rest);
    }
    pieces.extend(update.state_batches.iter().copied());
    let mut batches = batches_from(state.start_offset, &pieces);
    batches.dedup_by(|next, prev| {
        let joined = prev.last_offset.checked_add(1) == Some(next.first_offset)
            && prev.delivery_state == next.delivery_state
            && prev.delivery_count == next.delivery_count;
        if joined {
            prev.last_offset = next.last_offset;
        }
        joined
    });
    state.state_batches = batches;
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;
    use crate::state::DeliveryState;

    const P: i32 = 1;

    fn key(group: &str) -> ShareKey {
        ShareKey {
            group_id: group.into(),
            topic_id: Uuid::from_u128(7),
            partition: 0,
        }
    }

    fn state(state_epoch: i32, start: i64, batches: Vec<StateBatch>) -> PersistedState {
        PersistedState {
            state_epoch,
            start_offset: start,
            state_batches: batches,
        }
    }

    /// A coordinator with one state partition, so every key lives in it.
    fn core() -> ShareCoordinator {
        let mut c = ShareCoordinator::new(P);
        c.load_partition(0, std::iter::empty()).expect("load");
        c
    }

    #[test]
    fn negative_fields_are_refused_in_kafkas_order() {
        let c = core();
        let mut bad = key("g");
        bad.partition = -1;
        let message = |e: ShareError| (e.code, e.message);
        let partition = (
            code::INVALID_REQUEST,
            Some("The partition id cannot be a negative number."),
        );
        let leader = (
            code::INVALID_REQUEST,
            Some("The leader epoch cannot be a negative number."),
        );
        let epoch = (
            code::INVALID_REQUEST,
            Some("The state epoch cannot be a negative number."),
        );
        let refusal = |r: Result<(), ShareError>| r.map_err(message).err();
        assert_eq!(
            c.read(&bad, -1, 0).answer.map_err(message).err(),
            Some(partition)
        );
        assert_eq!(
            c.read(&key("g"), -1, 0).answer.map_err(message).err(),
            Some(leader)
        );
        assert_eq!(
            refusal(c.write(&key("g"), 0, &state(-1, 0, vec![]), -1, 0).answer),
            Some(epoch)
        );
        assert_eq!(
            refusal(c.write(&key("g"), -1, &state(-1, 0, vec![]), -1, 0).answer),
            Some(leader)
        );
        assert_eq!(
            refusal(c.initialize(&key("g"), -1, 0, 0).answer),
            Some(epoch)
        );
        assert_eq!(
            refusal(c.initialize(&bad, -1, 0, 0).answer),
            Some(partition)
        );
        assert_eq!(refusal(c.delete(&bad).answer), Some(partition));
        assert_eq!(c.read_summary(&bad).map_err(message).err(), Some(partition));
        assert_eq!(negative_field(0, Some(0), Some(0)), None);
    }

    /// Applies a decision's record as the runtime does once it is appended; returns the answer.
    fn run<T>(
        c: &mut ShareCoordinator,
        decide: impl FnOnce(&ShareCoordinator) -> Decision<T>,
    ) -> Result<T, ShareError> {
        let d = decide(c);
        if let Some(r) = &d.record {
            c.replay(0, r);
        }
        d.answer
    }

    fn code_of<T: std::fmt::Debug>(r: Result<T, ShareError>) -> i16 {
        r.expect_err("refused").code
    }

    #[test]
    fn the_state_partition_is_kafkas() {
        // Java: Math.abs("g:AAAAAAAAAAAAAAAAAAAABw:0".hashCode()) % 50.
        let k = key("g");
        assert_eq!(k.coordinator_key(), "g:AAAAAAAAAAAAAAAAAAAABw:0");
        let h = java_string_hash_code(&k.coordinator_key());
        assert_eq!(partition_for(&k, 50), h.checked_abs().unwrap_or(0) % 50);
        assert_eq!(java_string_hash_code("ab"), 97 * 31 + 98);
        // Integer.MIN_VALUE's abs is 0 in Kafka's Utils.abs.
        assert_eq!(java_string_hash_code("polygenelubricants"), i32::MIN);
        assert_eq!(partition_for_coordinator_key("polygenelubricants", 50), 0);
    }

    #[test]
    fn read_of_an_unknown_share_partition_is_not_initialized() {
        let c = core();
        let d = c.read(&key("g"), 0, 1);
        assert_eq!(
            d.answer,
            Err(ShareError::new(code::INVALID_REQUEST, READ_UNINITIALIZED))
        );
        assert_eq!(d.record, None);
        assert_eq!(
            code_of(c.read(&key("g"), -1, 1).answer),
            code::INVALID_REQUEST
        );
    }

    #[test]
    fn initialize_then_read_and_write() {
        let mut c = core();
        let k = key("g");
        run(&mut c, |c| c.initialize(&k, 0, -1, 10)).expect("initialize");
        // The first read by a leader records its epoch (a record), the same epoch again none.
        let d = c.read(&k, 3, 11);
        assert!(d.record.is_some());
        assert_eq!(run(&mut c, |_| d), Ok(state(0, -1, vec![])));
        assert_eq!(c.read(&k, 3, 12).record, None);
        // A write replaces the state; batches below the start offset go, one across it is cut.
        let written = state(
            0,
            100,
            vec![
                StateBatch::new(110, 119, DeliveryState::Archived, 5),
                StateBatch::new(90, 95, DeliveryState::Acknowledged, 1),
                StateBatch::new(98, 104, DeliveryState::Available, 2),
            ],
        );
        run(&mut c, |c| c.write(&k, 3, &written, -1, 13)).expect("write");
        let read = run(&mut c, |c| c.read(&k, 3, 14)).expect("read");
        assert_eq!(
            read,
            state(
                0,
                100,
                vec![
                    StateBatch::new(100, 104, DeliveryState::Available, 2),
                    StateBatch::new(110, 119, DeliveryState::Archived, 5)
                ]
            )
        );
        // The next write replaces the batches (the leader sends its whole state); a start
        // offset of -1 keeps the stored one.
        run(&mut c, |c| {
            c.write(
                &k,
                3,
                &state(
                    0,
                    -1,
                    vec![StateBatch::new(120, 121, DeliveryState::Acknowledged, 1)],
                ),
                2,
                15,
            )
        })
        .expect("write");
        assert_eq!(
            run(&mut c, |c| c.read(&k, 3, 16)),
            Ok(state(
                0,
                100,
                vec![StateBatch::new(120, 121, DeliveryState::Acknowledged, 1)]
            ))
        );
        assert_eq!(
            c.read_summary(&k),
            Ok(Some(StateSummary {
                state_epoch: 0,
                leader_epoch: 3,
                start_offset: 100,
                delivery_complete_count: 2,
            }))
        );
        // The count is the last write's (a v0 write says -1: not known).
        run(&mut c, |c| c.write(&k, 3, &state(0, -1, vec![]), -1, 16)).expect("write");
        assert_eq!(
            c.read_summary(&k)
                .map(|s| s.map(|s| s.delivery_complete_count)),
            Ok(Some(-1))
        );
    }

    #[test]
    fn older_leader_epochs_are_fenced_newer_ones_recorded() {
        let mut c = core();
        let k = key("g");
        run(&mut c, |c| c.initialize(&k, 0, 0, 1)).expect("initialize");
        run(&mut c, |c| c.read(&k, 5, 2)).expect("read");
        assert_eq!(code_of(c.read(&k, 4, 3).answer), code::FENCED_LEADER_EPOCH);
        assert_eq!(
            code_of(c.write(&k, 4, &state(0, 0, vec![]), -1, 3).answer),
            code::FENCED_LEADER_EPOCH
        );
        // A newer leader's read records its epoch: the previous leader's write is fenced.
        let d = c.read(&k, 6, 4);
        match &d.record {
            Some(ShareRecord::Snapshot(_, v)) => assert_eq!(v.leader_epoch, 6),
            other => panic!("expected a snapshot, got {other:?}"),
        }
        run(&mut c, |_| d).expect("read");
        assert_eq!(
            code_of(c.write(&k, 5, &state(0, 0, vec![]), -1, 5).answer),
            code::FENCED_LEADER_EPOCH
        );
        run(&mut c, |c| c.write(&k, 6, &state(0, 0, vec![]), -1, 5)).expect("same epoch");
        // A failed read records nothing.
        assert_eq!(c.read(&k, 5, 6).record, None);
    }

    #[test]
    fn writes_need_state_and_the_current_state_epoch() {
        let mut c = core();
        let k = key("g");
        let d = c.write(&k, 0, &state(0, 0, vec![]), -1, 1);
        assert_eq!(
            d.answer,
            Err(ShareError::new(code::INVALID_REQUEST, WRITE_UNINITIALIZED))
        );
        assert_eq!(d.record, None);
        run(&mut c, |c| c.initialize(&k, 2, 0, 1)).expect("initialize");
        assert_eq!(
            code_of(c.write(&k, 0, &state(1, 0, vec![]), -1, 2).answer),
            code::FENCED_STATE_EPOCH
        );
        assert_eq!(
            code_of(c.write(&k, 0, &state(-1, 0, vec![]), -1, 2).answer),
            code::INVALID_REQUEST
        );
        assert_eq!(
            code_of(c.write(&k, -1, &state(2, 0, vec![]), -1, 2).answer),
            code::INVALID_REQUEST
        );
        run(&mut c, |c| c.write(&k, 0, &state(2, 0, vec![]), -1, 2)).expect("current epoch");
        // A write in a newer state epoch is taken (and raises it).
        run(&mut c, |c| c.write(&k, 0, &state(3, 0, vec![]), -1, 3)).expect("newer epoch");
        assert_eq!(
            code_of(c.write(&k, 0, &state(2, 0, vec![]), -1, 4).answer),
            code::FENCED_STATE_EPOCH
        );
    }

    #[test]
    fn initialize_resets_in_a_state_epoch_not_older() {
        let mut c = core();
        let k = key("g");
        run(&mut c, |c| c.initialize(&k, 1, 5, 1)).expect("initialize");
        run(&mut c, |c| c.read(&k, 4, 2)).expect("read");
        run(&mut c, |c| {
            c.write(
                &k,
                4,
                &state(
                    1,
                    8,
                    vec![StateBatch::new(8, 9, DeliveryState::Archived, 1)],
                ),
                2,
                3,
            )
        })
        .expect("write");
        assert_eq!(
            code_of(c.initialize(&k, 0, 0, 4).answer),
            code::FENCED_STATE_EPOCH
        );
        assert_eq!(
            code_of(c.initialize(&k, -1, 0, 4).answer),
            code::INVALID_REQUEST
        );
        // The same state epoch is accepted, as Kafka does.
        run(&mut c, |c| c.initialize(&k, 1, 20, 4)).expect("same epoch");
        assert_eq!(
            run(&mut c, |c| c.read(&k, 4, 5)),
            Ok(state(1, 20, vec![])),
            "reset: the start offset given, no batches"
        );
        // Nothing past a start offset given is delivered yet; at -1 the count is not known.
        assert_eq!(
            c.read_summary(&k)
                .map(|s| s.map(|s| s.delivery_complete_count)),
            Ok(Some(0))
        );
        // The reset state carries leader epoch 0, but older leaders stay fenced.
        assert_eq!(
            c.read_summary(&k).expect("summary").map(|s| s.leader_epoch),
            Some(0)
        );
        assert_eq!(code_of(c.read(&k, 3, 6).answer), code::FENCED_LEADER_EPOCH);
        run(&mut c, |c| c.initialize(&k, 2, -1, 7)).expect("newer epoch");
        assert_eq!(
            c.read_summary(&k)
                .map(|s| s.map(|s| s.delivery_complete_count)),
            Ok(Some(-1))
        );
        assert_eq!(run(&mut c, |c| c.read(&k, 4, 8)), Ok(state(2, -1, vec![])));
    }

    #[test]
    fn delete_writes_a_tombstone_only_for_known_state() {
        let mut c = core();
        let k = key("g");
        let d = c.delete(&k);
        assert_eq!(
            d,
            Decision {
                answer: Ok(()),
                record: None
            }
        );
        run(&mut c, |c| c.initialize(&k, 0, 0, 1)).expect("initialize");
        let d = c.delete(&k);
        assert_eq!(d.record, Some(ShareRecord::Tombstone(k.clone())));
        run(&mut c, |_| d).expect("delete");
        assert_eq!(c.read_summary(&k), Ok(None));
        assert_eq!(code_of(c.read(&k, 0, 2).answer), code::INVALID_REQUEST);
        // After a delete the epochs are forgotten too: an initialize in epoch 0 is taken.
        run(&mut c, |c| c.initialize(&k, 0, 0, 3)).expect("initialize again");
        assert_eq!(
            code_of(c.delete(&ShareKey { partition: -1, ..k }).answer),
            code::INVALID_REQUEST
        );
    }

    #[test]
    fn deleted_topics_get_tombstones_for_each_of_their_share_partitions() {
        let mut c = core();
        let (gone, kept) = (Uuid::from_u128(7), Uuid::from_u128(8));
        let k = |group: &str, topic: Uuid, partition: i32| ShareKey {
            group_id: group.into(),
            topic_id: topic,
            partition,
        };
        for key in [k("g2", gone, 1), k("g1", gone, 0), k("g1", kept, 0)] {
            run(&mut c, |c| c.initialize(&key, 0, 0, 1)).expect("initialize");
        }
        let deleted = BTreeSet::from([gone]);
        assert!(c.tombstones_of_topics(1, &deleted).is_empty(), "not loaded");
        assert!(c.tombstones_of_topics(0, &BTreeSet::new()).is_empty());
        let tombstones = c.tombstones_of_topics(0, &deleted);
        assert_eq!(
            tombstones,
            vec![
                ShareRecord::Tombstone(k("g1", gone, 0)),
                ShareRecord::Tombstone(k("g2", gone, 1)),
            ]
        );
        for t in &tombstones {
            c.replay(0, t);
        }
        assert_eq!(c.share_partitions(0), Some(1));
        assert_eq!(c.read_summary(&k("g1", gone, 0)), Ok(None));
        assert!(c.read_summary(&k("g1", kept, 0)).expect("kept").is_some());
        assert!(c.tombstones_of_topics(0, &deleted).is_empty(), "done");
    }

    #[test]
    fn keys_of_unloaded_partitions_have_no_state() {
        let mut c = ShareCoordinator::new(50);
        let k = key("g");
        let p = c.partition_for(&k);
        let d = c.initialize(&k, 0, 0, 1);
        c.replay(p, d.record.as_ref().expect("record"));
        assert_eq!(c.share_partitions(p), Some(1));
        assert!(c.read_summary(&k).expect("ok").is_some());
        c.unload_partition(p);
        assert_eq!(c.share_partitions(p), None);
        assert_eq!(c.read_summary(&k), Ok(None));
    }

    fn snapshot(
        leader: i32,
        state_epoch: i32,
        start: i64,
        batches: Vec<StateBatch>,
    ) -> ShareSnapshotValue {
        ShareSnapshotValue {
            snapshot_epoch: 0,
            state_epoch,
            leader_epoch: leader,
            start_offset: start,
            delivery_complete_count: -1,
            create_timestamp: 1,
            write_timestamp: 1,
            state_batches: batches,
        }
    }

    fn encoded(records: &[ShareRecord]) -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
        records.iter().map(ShareRecord::encode).collect()
    }

    fn load(c: &mut ShareCoordinator, records: &[(Vec<u8>, Option<Vec<u8>>)]) -> usize {
        c.load_partition(0, records.iter().map(|(k, v)| (&k[..], v.as_deref())))
            .expect("load")
    }

    #[test]
    fn loading_replays_snapshots_updates_and_tombstones() {
        let (a, b, gone) = (key("a"), key("b"), key("gone"));
        let records = encoded(&[
            ShareRecord::Snapshot(
                a.clone(),
                snapshot(
                    2,
                    1,
                    100,
                    vec![
                        StateBatch::new(100, 109, DeliveryState::Acquired, 1),
                        StateBatch::new(110, 119, DeliveryState::Acquired, 2),
                        StateBatch::new(120, 129, DeliveryState::Acquired, 1),
                    ],
                ),
            ),
            // Kafka's update: batch 100-109 acknowledged.
            ShareRecord::Update(
                a.clone(),
                ShareUpdateValue {
                    snapshot_epoch: 0,
                    leader_epoch: 2,
                    start_offset: -1,
                    delivery_complete_count: 10,
                    state_batches: vec![StateBatch::new(100, 109, DeliveryState::Acknowledged, 1)],
                },
            ),
            // Then the start offset moves to 110 and 120-129 is acknowledged: 110-119 stays.
            ShareRecord::Update(
                a.clone(),
                ShareUpdateValue {
                    snapshot_epoch: 0,
                    leader_epoch: 3,
                    start_offset: 110,
                    delivery_complete_count: 10,
                    state_batches: vec![StateBatch::new(120, 129, DeliveryState::Acknowledged, 1)],
                },
            ),
            ShareRecord::Snapshot(gone.clone(), snapshot(0, 0, 0, vec![])),
            ShareRecord::Snapshot(b.clone(), snapshot(7, 4, 5, vec![])),
            ShareRecord::Tombstone(gone.clone()),
            // A later, lower leader epoch in a snapshot does not lower the fence.
            ShareRecord::Snapshot(b.clone(), snapshot(1, 2, 6, vec![])),
        ]);
        let mut c = core();
        assert_eq!(load(&mut c, &records), 2);
        assert_eq!(
            run(&mut c, |c| c.read(&a, 3, 1)),
            Ok(state(
                1,
                110,
                vec![
                    StateBatch::new(110, 119, DeliveryState::Acquired, 2),
                    StateBatch::new(120, 129, DeliveryState::Acknowledged, 1),
                ]
            ))
        );
        assert_eq!(code_of(c.read(&a, 2, 1).answer), code::FENCED_LEADER_EPOCH);
        assert_eq!(c.read_summary(&gone), Ok(None));
        assert_eq!(code_of(c.read(&b, 6, 1).answer), code::FENCED_LEADER_EPOCH);
        assert_eq!(
            code_of(c.write(&b, 7, &state(3, 6, vec![]), -1, 1).answer),
            code::FENCED_STATE_EPOCH
        );
        assert_eq!(
            c.read_summary(&b),
            Ok(Some(StateSummary {
                state_epoch: 2,
                leader_epoch: 1,
                start_offset: 6,
                delivery_complete_count: -1,
            }))
        );
        // An update's count replaces the snapshot's.
        assert_eq!(
            c.read_summary(&a)
                .map(|s| s.map(|s| s.delivery_complete_count)),
            Ok(Some(10))
        );
        // Loading again starts from nothing; a corrupt record fails the load.
        assert_eq!(load(&mut c, &[]), 0);
        let mut bad = records[0].clone();
        bad.1 = Some(vec![0, 0, 1]);
        assert!(c
            .load_partition(0, [(&bad.0[..], bad.1.as_deref())])
            .is_err());
    }

    #[test]
    fn updates_join_adjacent_runs_and_an_update_alone_is_a_state() {
        let k = key("a");
        let records = encoded(&[
            ShareRecord::Update(
                k.clone(),
                ShareUpdateValue {
                    snapshot_epoch: 0,
                    leader_epoch: 1,
                    start_offset: 0,
                    delivery_complete_count: -1,
                    state_batches: vec![StateBatch::new(0, 10, DeliveryState::Available, 1)],
                },
            ),
            ShareRecord::Update(
                k.clone(),
                ShareUpdateValue {
                    snapshot_epoch: 0,
                    leader_epoch: 1,
                    start_offset: -1,
                    delivery_complete_count: -1,
                    state_batches: vec![StateBatch::new(11, 20, DeliveryState::Available, 1)],
                },
            ),
        ]);
        let mut c = core();
        load(&mut c, &records);
        assert_eq!(
            run(&mut c, |c| c.read(&k, 1, 1)),
            Ok(state(
                0,
                0,
                vec![StateBatch::new(0, 20, DeliveryState::Available, 1)]
            ))
        );
    }

    #[test]
    fn what_gregor_writes_replays_to_the_same_state() {
        let mut c = core();
        let k = key("g");
        let mut log = Vec::new();
        let mut step = |c: &mut ShareCoordinator, d: Decision<()>| {
            if let Some(r) = &d.record {
                log.push(r.encode());
                c.replay(0, r);
            }
        };
        let d = c.initialize(&k, 0, 5, 1);
        step(&mut c, d);
        let d = c.write(
            &k,
            2,
            &state(
                0,
                7,
                vec![StateBatch::new(9, 9, DeliveryState::Archived, 5)],
            ),
            1,
            2,
        );
        step(&mut c, d);
        let mut reloaded = core();
        load(&mut reloaded, &log);
        assert_eq!(reloaded.read(&k, 2, 3), c.read(&k, 2, 3));
        assert_eq!(reloaded.read_summary(&k), c.read_summary(&k));
        assert_eq!(
            code_of(reloaded.read(&k, 1, 3).answer),
            code::FENCED_LEADER_EPOCH
        );
    }
}
