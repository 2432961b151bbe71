//! KIP-848 online migration, the classic core's half: hands a classic group's members over
//! to the consumer core (upgrade, when a consumer-protocol member joins a non-empty classic
//! group) and takes them back (downgrade, when the last consumer-protocol member leaves).
//!
//! ```text
//!  upgrade:   snapshot_for_upgrade ─► ConsumerGroupCoordinator::convert_from_classic
//!             remove_for_upgrade: parked joins/syncs answered REBALANCE_IN_PROGRESS, the
//!             GroupMetadata tombstone appended; committed offsets stay here
//!  downgrade: ConsumerGroupCoordinator::take_downgrades ─► import_from_consumer: a Stable
//!             group of the classic members at generation = group epoch, persisted, then a
//!             rebalance so that they rejoin under the classic protocol
//! ```

use crate::api::{ClassicGroupSnapshot, ClassicMemberSnapshot, Output, Protocol};
use crate::coordinator::{Cx, GroupCoordinator};
use crate::error::code;
use crate::group::{Group, Member};
use crate::records::group_record;
use crate::state::GroupState;
use crate::{JoinGroupResponse, Response, SyncGroupResponse};

impl GroupCoordinator {
    /// The members of classic group `group_id`, if it has any (Kafka converts only a
    /// non-empty classic group; an empty one is simply replaced).
    pub fn snapshot_for_upgrade(&self, group_id: &str) -> Option<ClassicGroupSnapshot> {
        let g = self.groups.get(group_id)?;
        if g.members.is_empty() {
            return None;
        }
        Some(ClassicGroupSnapshot {
            group_id: g.group_id.clone(),
            generation_id: g.generation_id,
            protocol_type: g.protocol_type.clone(),
            protocol_name: g.protocol_name.clone(),
            members: g
                .members
                .iter()
                .map(|m| ClassicMemberSnapshot {
                    member_id: m.member_id.clone(),
                    group_instance_id: m.group_instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    session_timeout_ms: m.session_timeout_ms,
                    rebalance_timeout_ms: m.rebalance_timeout_ms,
                    protocols: m.protocols.clone(),
                    assignment: m.assignment.clone(),
                })
                .collect(),
        })
    }

    /// The classic side of an upgrade (Kafka's `convertToConsumerGroup`): every parked
    /// JoinGroup and SyncGroup is answered REBALANCE_IN_PROGRESS (they rejoin the consumer
    /// group), the members go, and the group's metadata record gets its tombstone. The
    /// committed offsets stay (they live in this core for both kinds of groups).
    pub fn remove_for_upgrade(&mut self, group_id: &str, now_ms: i64) -> Vec<Output> {
        let mut out = Vec::new();
        let partition = self.partition_for(group_id);
        let Some(g) = self.groups.get_mut(group_id) else {
            return out;
        };
        for (request, is_join) in g.parked_requests() {
            let response = if is_join {
                Response::JoinGroup(JoinGroupResponse::error("", code::REBALANCE_IN_PROGRESS))
            } else {
                Response::SyncGroup(SyncGroupResponse::error(code::REBALANCE_IN_PROGRESS))
            };
            out.push(Output::Respond { request, response });
        }
        let has_offsets = g.has_offsets();
        g.members.clear();
        g.pending_members.clear();
        g.static_members.clear();
        g.pending_sync.clear();
        g.sync_deadline_ms = None;
        g.delayed_join = None;
        g.new_member_added = false;
        g.leader_id = None;
        g.protocol_type = None;
        g.protocol_name = None;
        g.subscribed_topics = None;
        g.state = GroupState::Empty;
        g.state_timestamp_ms = Some(now_ms);
        if !has_offsets {
            self.groups.remove(group_id);
        }
        out.push(Output::Append {
            partition,
            records: vec![group_record(group_id, None)],
            then: Vec::new(),
            transaction: None,
        });
        out
    }

    /// The classic side of a downgrade (Kafka's `convertToClassicGroup` and
    /// `ClassicGroup.fromConsumerGroup`): the members become a Stable classic group at
    /// generation `snapshot.generation_id`, keeping their assignments, the group is
    /// persisted, and a rebalance starts so that every member rejoins with JoinGroup.
    pub fn import_from_consumer(
        &mut self,
        snapshot: ClassicGroupSnapshot,
        now_ms: i64,
    ) -> Vec<Output> {
        let mut out = Vec::new();
        let mut cx = Cx {
            cfg: &self.config,
            now: now_ms,
            out: &mut out,
        };
        let group_id = snapshot.group_id.clone();
        let g = self
            .groups
            .entry(group_id.clone())
            .or_insert_with(|| Group::new(group_id.clone(), now_ms));
        g.members.clear();
        g.pending_members.clear();
        g.static_members.clear();
        g.pending_sync.clear();
        g.generation_id = snapshot.generation_id;
        g.protocol_type = snapshot.protocol_type.clone();
        g.protocol_name = snapshot.protocol_name.clone();
        for m in snapshot.members {
            let member = Member {
                member_id: m.member_id.clone(),
                group_instance_id: m.group_instance_id.clone(),
                client_id: m.client_id,
                client_host: m.client_host,
                session_timeout_ms: m.session_timeout_ms,
                rebalance_timeout_ms: m.rebalance_timeout_ms,
                protocol_type: snapshot.protocol_type.clone().unwrap_or_default(),
                protocols: m.protocols,
                assignment: m.assignment,
                assignment_generation: snapshot.generation_id,
                awaiting_join: None,
                awaiting_sync: None,
                heartbeat_deadline_ms: now_ms.saturating_add(i64::from(m.session_timeout_ms)),
                is_new: false,
            };
            if let Some(i) = &member.group_instance_id {
                g.static_members.insert(i.clone(), member.member_id.clone());
            }
            g.members.push(member);
        }
        g.leader_id = g.members.first().map(|m| m.member_id.clone());
        if g.protocol_name.is_none() {
            g.protocol_name = g.select_protocol();
        }
        g.subscribed_topics = g.compute_subscribed_topics();
        g.state = GroupState::Stable;
        g.state_timestamp_ms = Some(now_ms);
        let record = group_record(&g.group_id, Some(&g.metadata_value()));
        cx.out.push(Output::Append {
            partition: cx.partition(&group_id),
            records: vec![record],
            then: Vec::new(),
            transaction: None,
        });
        g.maybe_prepare_rebalance(&mut cx);
        out
    }
}

/// The protocol names every member of `members` supports, in the first member's order.
pub(crate) fn common_protocols(members: &[Vec<Protocol>]) -> Vec<String> {
    let Some(first) = members.first() else {
        return Vec::new();
    };
    first
        .iter()
        .map(|p| p.name.clone())
        .filter(|n| members.iter().all(|ps| ps.iter().any(|p| &p.name == n)))
        .collect()
}
