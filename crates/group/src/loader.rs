//! Rebuilding groups from `__consumer_offsets` when this broker becomes the coordinator of a
//! partition (Kafka's `GroupMetadataManager.loadGroupsAndOffsets`), and dropping them when it
//! stops being one.
//!
//! Replay is last-write-wins per key; a tombstone deletes. Choice, as in Kafka: a group whose
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
use crate::group::{Group, Member};
use crate::records::{GroupMetadataValue, OffsetCommitValue, Record, RecordKey};
use crate::state::GroupState;

/// Kafka's NOT_COORDINATOR (16): answers requests parked in a group that was unloaded.
pub const NOT_COORDINATOR: i16 = 16;

/// What a load found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LoadSummary {
    pub groups: usize,
    pub offsets: usize,
}

impl GroupCoordinator {
    /// Replays the records of `__consumer_offsets` partition `partition` in log order and
    /// installs the resulting groups (replacing any in memory with the same id). Fails on the
    /// first record that does not decode, without changing any group.
    pub fn load_partition<I>(
        &mut self,
        partition: i32,
        records: I,
        now_ms: i64,
    ) -> Result<LoadSummary, DecodeError>
    where
        I: IntoIterator<Item = Record>,
    {
        let mut offsets: BTreeMap<(String, String, i32), Option<OffsetCommitValue>> =
            BTreeMap::new();
        let mut metadata: BTreeMap<String, Option<GroupMetadataValue>> = BTreeMap::new();
        for record in records {
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
                    offsets.insert((group, topic, partition), value);
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
        let mut groups: BTreeMap<String, Group> = BTreeMap::new();
        for (group_id, value) in metadata {
            if let Some(value) = value {
                groups.insert(group_id.clone(), group_from_value(group_id, value, now_ms));
            }
        }
        let mut summary = LoadSummary::default();
        for ((group_id, topic, p), value) in offsets {
            let Some(value) = value else { continue };
            summary.offsets += 1;
            groups
                .entry(group_id.clone())
                .or_insert_with(|| {
                    // Offsets without group metadata: a standalone group.
                    let mut g = Group::new(group_id, now_ms);
                    g.state_timestamp_ms = None;
                    g
                })
                .offsets
                .insert((topic, p), value);
        }
        summary.groups = groups.len();
        let _ = partition;
        self.groups.extend(groups);
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
