//! Rebuilding groups from `__consumer_offsets` when this broker becomes the coordinator of a
//! partition (Kafka's `GroupMetadataManager.loadGroupsAndOffsets`), and dropping them when it
//! stops being one.
//!
//! Replay is last-write-wins per key; a tombstone deletes. Offsets written inside a
//! transaction (a transactional batch) are pending until their producer's control batch:
//! COMMIT makes them committed where they are later in the log than the committed offset
//! (Kafka's `replayEndTransactionMarker`), ABORT drops them, and without a marker yet they
//! stay pending after the load. Choice, as in Kafka: a group whose
//! last GroupMetadataValue has members comes back **Stable with those members** (same
//! generation, protocol, leader and assignments) and each member's session restarts at load
//! time, so consumers that keep heartbeating after a coordinator move carry on without a
//! rebalance, and members that are gone expire after their session timeout. A group with no
//! members (or only offsets) comes back Empty, and stays until the first expiration check,
//! one `offsets.retention.check.interval.ms` after the load.

use std::collections::BTreeMap;

use crate::api::{JoinGroupResponse, Output, Protocol, Response, SyncGroupResponse};
use crate::coordinator::GroupCoordinator;
use crate::error::DecodeError;
use crate::group::{CommittedOffset, Group, Member};
use crate::records::{GroupMetadataValue, OffsetCommitValue, Record, RecordKey};
use crate::state::GroupState;

/// Kafka's NOT_COORDINATOR (16): answers requests parked in a group that was unloaded.
pub const NOT_COORDINATOR: i16 = 16;

/// What a load found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LoadSummary {
    pub groups: usize,
    /// Committed offsets.
    pub offsets: usize,
    /// Offsets of transactions with no marker in the partition yet (still pending).
    pub pending_txn_offsets: usize,
}

/// One entry of a `__consumer_offsets` partition, as the loader replays it (Kafka's
/// `CoordinatorLoader` hands the shard records with their batch's producer, and the markers of
/// control batches).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LogEntry {
    /// A record of a data batch at `offset`; `transactional_producer` is the batch's producer
    /// id when the batch is transactional (attributes bit 4), else `None`.
    Record {
        offset: i64,
        transactional_producer: Option<i64>,
        record: Record,
    },
    /// The marker of a control batch at `offset`: the end of `producer_id`'s transaction,
    /// committed (COMMIT) or not (ABORT).
    Marker {
        offset: i64,
        producer_id: i64,
        committed: bool,
    },
}

/// A replayed offset key: (group, topic, partition).
type OffsetKey = (String, String, i32);

/// The offsets of a partition as replay leaves them.
#[derive(Default)]
struct ReplayedOffsets {
    committed: BTreeMap<OffsetKey, CommittedOffset>,
    /// Per producer id: offsets of its open transaction.
    pending: BTreeMap<i64, BTreeMap<OffsetKey, CommittedOffset>>,
}

impl ReplayedOffsets {
    /// Kafka's `OffsetMetadataManager.replay` for an offset record.
    fn record(
        &mut self,
        key: OffsetKey,
        value: Option<OffsetCommitValue>,
        position: i64,
        producer: Option<i64>,
    ) {
        match (value, producer) {
            (Some(value), None) => {
                let c = CommittedOffset {
                    value,
                    record_position: position,
                };
                self.committed.insert(key, c);
            }
            (Some(value), Some(pid)) => {
                let c = CommittedOffset {
                    value,
                    record_position: position,
                };
                self.pending.entry(pid).or_default().insert(key, c);
            }
            (None, _) => {
                // A tombstone deletes the offset and every pending one of the partition.
                self.committed.remove(&key);
                for offsets in self.pending.values_mut() {
                    offsets.remove(&key);
                }
            }
        }
    }

    /// Kafka's `replayEndTransactionMarker`: COMMIT makes the producer's pending offsets
    /// committed where they are later in the log than the committed one; ABORT drops them.
    fn marker(&mut self, producer_id: i64, committed: bool) {
        let Some(pending) = self.pending.remove(&producer_id) else {
            return;
        };
        if committed {
            for (key, c) in pending {
                materialize(&mut self.committed, key, c);
            }
        }
    }
}

/// Puts a transaction's offset in place of the committed one if its record is the later one.
pub(crate) fn materialize<K: Ord>(
    committed: &mut BTreeMap<K, CommittedOffset>,
    key: K,
    offset: CommittedOffset,
) {
    let later = committed
        .get(&key)
        .is_none_or(|existing| offset.record_position > existing.record_position);
    if later {
        committed.insert(key, offset);
    }
}

impl From<(i64, Record)> for LogEntry {
    /// A non-transactional record at an offset.
    fn from((offset, record): (i64, Record)) -> LogEntry {
        LogEntry::Record {
            offset,
            transactional_producer: None,
            record,
        }
    }
}

impl GroupCoordinator {
    /// Replays the records of `__consumer_offsets` partition `partition` in log order (all
    /// non-transactional, at offsets 0, 1, ...) and installs the resulting groups; see
    /// [`load_partition_entries`](Self::load_partition_entries).
    pub fn load_partition<I>(
        &mut self,
        partition: i32,
        records: I,
        now_ms: i64,
    ) -> Result<LoadSummary, DecodeError>
    where
        I: IntoIterator<Item = Record>,
    {
        let entries = records
            .into_iter()
            .enumerate()
            .map(|(i, r)| LogEntry::from((i as i64, r)));
        self.load_partition_entries(partition, entries, now_ms)
    }

    /// Replays the entries of `__consumer_offsets` partition `partition` in log order and
    /// installs the resulting groups (replacing any in memory with the same id). Offsets of a
    /// transactional batch stay pending until a marker of their producer follows (COMMIT
    /// applies them, ABORT drops them); with no marker yet they are pending after the load,
    /// and [`complete_txn_offsets`](Self::complete_txn_offsets) decides them later. Fails on
    /// the first record that does not decode, without changing any group.
    pub fn load_partition_entries<I>(
        &mut self,
        partition: i32,
        entries: I,
        now_ms: i64,
    ) -> Result<LoadSummary, DecodeError>
    where
        I: IntoIterator<Item = LogEntry>,
    {
        let mut offsets = ReplayedOffsets::default();
        let mut metadata: BTreeMap<String, Option<GroupMetadataValue>> = BTreeMap::new();
        let mut end = 0i64;
        for entry in entries {
            match entry {
                LogEntry::Marker {
                    offset,
                    producer_id,
                    committed,
                } => {
                    end = end.max(offset + 1);
                    offsets.marker(producer_id, committed);
                }
                LogEntry::Record {
                    offset,
                    transactional_producer,
                    record,
                } => {
                    end = end.max(offset + 1);
                    match RecordKey::decode(&record.key)? {
                        RecordKey::Offset {
                            group,
                            topic,
                            partition,
                        } => {
                            let value = record
                                .value
                                .as_deref()
                                .map(OffsetCommitValue::decode)
                                .transpose()?;
                            offsets.record(
                                (group, topic, partition),
                                value,
                                offset,
                                transactional_producer,
                            );
                        }
                        RecordKey::Group { group } => {
                            let value = record
                                .value
                                .as_deref()
                                .map(GroupMetadataValue::decode)
                                .transpose()?;
                            metadata.insert(group, value);
                        }
                    }
                }
            }
        }
        let mut groups: BTreeMap<String, Group> = BTreeMap::new();
        for (group_id, value) in metadata {
            if let Some(value) = value {
                groups.insert(group_id.clone(), group_from_value(group_id, value, now_ms));
            }
        }
        let mut summary = LoadSummary::default();
        for ((group_id, topic, p), c) in offsets.committed {
            summary.offsets += 1;
            group_entry(&mut groups, group_id, now_ms)
                .offsets
                .insert((topic, p), c);
        }
        for (producer_id, pending) in offsets.pending {
            for ((group_id, topic, p), c) in pending {
                summary.pending_txn_offsets += 1;
                group_entry(&mut groups, group_id, now_ms)
                    .pending_txn_offsets
                    .entry(producer_id)
                    .or_default()
                    .insert((topic, p), c);
            }
        }
        summary.groups = groups.len();
        let _ = partition;
        self.groups.extend(groups);
        // Records this coordinator writes from now on come after everything loaded.
        self.next_record_position = self.next_record_position.max(end);
        // Kafka (`GroupCoordinatorShard.onLoaded`) runs the first expiration check one
        // `offsets.retention.check.interval.ms` after a load, not at once: an Empty group
        // without offsets is kept until then, so a restart does not delete it.
        let first_check = now_ms.saturating_add(self.config.offsets_retention_check_interval_ms);
        self.next_offsets_check_ms = self.next_offsets_check_ms.max(first_check);
        Ok(summary)
    }

    /// Drops every group owned by `partition` (leadership moved away). Parked requests are
    /// answered with NOT_COORDINATOR so their clients look up the new coordinator.
    pub fn unload_partition(&mut self, partition: i32) -> Vec<Output> {
        let ids: Vec<String> = self
            .groups
            .keys()
            .filter(|id| self.partition_for(id) == partition)
            .cloned()
            .collect();
        let mut out = Vec::new();
        for id in ids {
            let Some(mut group) = self.groups.remove(&id) else {
                continue;
            };
            for (request, is_join) in group.parked_requests() {
                let response = if is_join {
                    Response::JoinGroup(JoinGroupResponse::error("", NOT_COORDINATOR))
                } else {
                    Response::SyncGroup(SyncGroupResponse::error(NOT_COORDINATOR))
                };
                out.push(Output::Respond { request, response });
            }
        }
        out
    }
}

/// The group of a replayed offset; offsets without group metadata belong to a standalone
/// group (Kafka creates one on replay).
fn group_entry(groups: &mut BTreeMap<String, Group>, group_id: String, now_ms: i64) -> &mut Group {
    groups.entry(group_id.clone()).or_insert_with(|| {
        let mut g = Group::new(group_id, now_ms);
        g.state_timestamp_ms = None;
        g
    })
}

fn group_from_value(group_id: String, value: GroupMetadataValue, now_ms: i64) -> Group {
    let mut g = Group::new(group_id, now_ms);
    g.generation_id = value.generation;
    g.protocol_type = (!value.protocol_type.is_empty()).then_some(value.protocol_type);
    g.protocol_name = value.protocol;
    g.state_timestamp_ms =
        (value.current_state_timestamp_ms >= 0).then_some(value.current_state_timestamp_ms);
    let protocol = g.protocol_name.clone().unwrap_or_default();
    for m in value.members {
        let member = Member {
            member_id: m.member_id,
            group_instance_id: m.group_instance_id,
            client_id: m.client_id,
            client_host: m.client_host,
            session_timeout_ms: m.session_timeout_ms,
            rebalance_timeout_ms: m.rebalance_timeout_ms,
            protocol_type: g.protocol_type.clone().unwrap_or_default(),
            protocols: vec![Protocol {
                name: protocol.clone(),
                metadata: m.subscription,
            }],
            assignment: m.assignment,
            assignment_generation: value.generation,
            awaiting_join: None,
            awaiting_sync: None,
            heartbeat_deadline_ms: now_ms + i64::from(m.session_timeout_ms),
            is_new: false,
        };
        g.add_member(member);
    }
    if !g.members.is_empty() {
        g.state = GroupState::Stable;
        // The stored leader wins over add_member's "first member" default.
        if let Some(leader) = value.leader.filter(|l| g.has(l)) {
            g.leader_id = Some(leader);
        }
    } else {
        g.leader_id = None;
    }
    g.subscribed_topics = g.compute_subscribed_topics();
    g
}
