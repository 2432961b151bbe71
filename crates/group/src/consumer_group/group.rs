//! One consumer group (Kafka's `ConsumerGroup`): epochs, members, target assignment,
//! subscription metadata, and the replay of its records.
//!
//! Everything here that survives a restart changes only through [`ConsumerGroup::replay`]:
//! the coordinator decides by building records and replays them at once, and a loading
//! coordinator replays the same records from the log, so both end in the same state.
//!
//! The group's state is derived, as Kafka derives it:
//! ```text
//!   no members                                   → Empty
//!   group epoch > target assignment epoch        → Assigning  (a new target is due)
//!   some member not reconciled to the target     → Reconciling
//!   otherwise                                    → Stable
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use super::member::{ConsumerGroupMember, MemberState, LEAVE_GROUP_MEMBER_EPOCH};
use super::records::{ConsumerGroupRecord, CurrentAssignmentValue, MemberMetadataValue};
use super::topics::{TopicId, TopicMetadata, TopicPartitions};

/// Kafka's `ConsumerGroup.ConsumerGroupState`; `Display` gives Kafka's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ConsumerGroupState {
    Empty,
    Assigning,
    Reconciling,
    Stable,
    Dead,
}

impl ConsumerGroupState {
    pub fn name(self) -> &'static str {
        match self {
            ConsumerGroupState::Empty => "Empty",
            ConsumerGroupState::Assigning => "Assigning",
            ConsumerGroupState::Reconciling => "Reconciling",
            ConsumerGroupState::Stable => "Stable",
            ConsumerGroupState::Dead => "Dead",
        }
    }
}

impl fmt::Display for ConsumerGroupState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A consumer group as the records describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerGroup {
    pub(crate) group_id: String,
    /// Bumped on every membership, subscription or metadata change.
    pub(crate) group_epoch: i32,
    /// The group epoch the current target assignment was computed for.
    pub(crate) assignment_epoch: i32,
    pub(crate) members: BTreeMap<String, ConsumerGroupMember>,
    /// Instance id → member id of the static members.
    pub(crate) static_members: BTreeMap<String, String>,
    /// Member id → the partitions the assignor gave it.
    pub(crate) target_assignment: BTreeMap<String, TopicPartitions>,
    /// Topic name → metadata of every topic some member subscribes to (and that exists).
    pub(crate) subscription_metadata: BTreeMap<String, TopicMetadata>,
    /// Derived from the members: who owns (or is revoking) each partition, at which epoch.
    pub(crate) partition_owners: BTreeMap<(TopicId, i32), (String, i32)>,
}

impl ConsumerGroup {
    pub fn new(group_id: &str) -> ConsumerGroup {
        ConsumerGroup {
            group_id: group_id.to_string(),
            group_epoch: 0,
            assignment_epoch: 0,
            members: BTreeMap::new(),
            static_members: BTreeMap::new(),
            target_assignment: BTreeMap::new(),
            subscription_metadata: BTreeMap::new(),
            partition_owners: BTreeMap::new(),
        }
    }

    pub fn group_id(&self) -> &str {
        &self.group_id
    }

    pub fn group_epoch(&self) -> i32 {
        self.group_epoch
    }

    pub fn assignment_epoch(&self) -> i32 {
        self.assignment_epoch
    }

    pub fn members(&self) -> &BTreeMap<String, ConsumerGroupMember> {
        &self.members
    }

    pub fn member(&self, member_id: &str) -> Option<&ConsumerGroupMember> {
        self.members.get(member_id)
    }

    /// The member holding `instance_id`, if any.
    pub fn static_member(&self, instance_id: &str) -> Option<&ConsumerGroupMember> {
        self.static_members
            .get(instance_id)
            .and_then(|id| self.members.get(id))
    }

    pub fn target_assignment(&self, member_id: &str) -> Option<&TopicPartitions> {
        self.target_assignment.get(member_id)
    }

    pub fn subscription_metadata(&self) -> &BTreeMap<String, TopicMetadata> {
        &self.subscription_metadata
    }

    /// The epoch at which `(topic, partition)` is owned by some member, or -1 (Kafka's
    /// `currentPartitionEpoch`).
    pub fn current_partition_epoch(&self, topic: TopicId, partition: i32) -> i32 {
        self.partition_owners
            .get(&(topic, partition))
            .map_or(-1, |(_, epoch)| *epoch)
    }

    /// The member that owns `(topic, partition)` or still has to revoke it.
    pub fn partition_owner(&self, topic: TopicId, partition: i32) -> Option<&str> {
        self.partition_owners
            .get(&(topic, partition))
            .map(|(m, _)| m.as_str())
    }

    pub fn state(&self) -> ConsumerGroupState {
        if self.members.is_empty() {
            ConsumerGroupState::Empty
        } else if self.group_epoch > self.assignment_epoch {
            ConsumerGroupState::Assigning
        } else if self
            .members
            .values()
            .any(|m| !m.is_reconciled_to(self.assignment_epoch))
        {
            ConsumerGroupState::Reconciling
        } else {
            ConsumerGroupState::Stable
        }
    }

    /// Topic name → number of members subscribed to it, with `old` replaced by `new`
    /// (Kafka's `computeSubscribedTopicNames`).
    pub(crate) fn subscribed_topic_names(
        &self,
        old: Option<&ConsumerGroupMember>,
        new: Option<&ConsumerGroupMember>,
    ) -> BTreeMap<String, usize> {
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        for m in self.members.values() {
            if old.is_some_and(|o| o.member_id == m.member_id) {
                continue;
            }
            for t in &m.subscribed_topic_names {
                *counts.entry(t.clone()).or_default() += 1;
            }
        }
        if let Some(n) = new {
            for t in &n.subscribed_topic_names {
                *counts.entry(t.clone()).or_default() += 1;
            }
        }
        counts
    }

    /// The assignor the members prefer, the most asked-for one, ties to the smallest name
    /// (Kafka's `computePreferredServerAssignor`, made deterministic).
    pub(crate) fn preferred_server_assignor(&self) -> Option<String> {
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for m in self.members.values() {
            if let Some(a) = &m.server_assignor {
                *counts.entry(a.as_str()).or_default() += 1;
            }
        }
        let max = counts.values().copied().max()?;
        counts
            .into_iter()
            .find(|(_, c)| *c == max)
            .map(|(name, _)| name.to_string())
    }

    /// Applies one record of this group (Kafka's `GroupMetadataManager.replay` overloads).
    /// Records that contradict the state (a tombstone for an unknown member, a partition
    /// owned twice) are applied as well as they can be, never panicking: they come from disk.
    pub fn replay(&mut self, record: &ConsumerGroupRecord) {
        match record {
            ConsumerGroupRecord::GroupEpoch { epoch, .. } => {
                // A tombstone removes the whole group; the caller drops it.
                self.group_epoch = epoch.unwrap_or(-1);
            }
            ConsumerGroupRecord::SubscriptionMetadata { topics, .. } => {
                self.subscription_metadata = topics
                    .iter()
                    .flatten()
                    .map(|t| (t.name.clone(), t.clone()))
                    .collect();
            }
            ConsumerGroupRecord::MemberMetadata {
                member_id, value, ..
            } => match value {
                Some(v) => {
                    let mut member = self
                        .members
                        .get(member_id)
                        .cloned()
                        .unwrap_or_else(|| ConsumerGroupMember::new(member_id));
                    apply_member_metadata(&mut member, v);
                    self.update_member(member);
                }
                None => self.remove_member(member_id),
            },
            ConsumerGroupRecord::TargetAssignmentEpoch { epoch, .. } => {
                self.assignment_epoch = epoch.unwrap_or(-1);
            }
            ConsumerGroupRecord::TargetAssignmentMember {
                member_id,
                partitions,
                ..
            } => match partitions {
                Some(p) => {
                    self.target_assignment.insert(member_id.clone(), p.clone());
                }
                None => {
                    self.target_assignment.remove(member_id);
                }
            },
            ConsumerGroupRecord::CurrentAssignment {
                member_id, value, ..
            } => {
                let mut member = self
                    .members
                    .get(member_id)
                    .cloned()
                    .unwrap_or_else(|| ConsumerGroupMember::new(member_id));
                match value {
                    Some(v) => {
                        member.member_epoch = v.member_epoch;
                        member.previous_member_epoch = v.previous_member_epoch;
                        member.state = MemberState::from_value(v.state);
                        member.assigned_partitions = v.assigned_partitions.clone();
                        member.partitions_pending_revocation =
                            v.partitions_pending_revocation.clone();
                    }
                    None => {
                        member.member_epoch = LEAVE_GROUP_MEMBER_EPOCH;
                        member.previous_member_epoch = LEAVE_GROUP_MEMBER_EPOCH;
                        member.assigned_partitions.clear();
                        member.partitions_pending_revocation.clear();
                    }
                }
                self.update_member(member);
            }
        }
    }

    fn update_member(&mut self, member: ConsumerGroupMember) {
        self.remove_partition_owners(&member.member_id);
        for (topic, partitions) in member
            .assigned_partitions
            .iter()
            .chain(member.partitions_pending_revocation.iter())
        {
            for p in partitions {
                self.partition_owners.insert(
                    (*topic, *p),
                    (member.member_id.clone(), member.member_epoch),
                );
            }
        }
        if let Some(old) = self.members.get(&member.member_id) {
            if let Some(old_instance) = &old.instance_id {
                if member.instance_id.as_ref() != Some(old_instance)
                    && self.static_members.get(old_instance) == Some(&member.member_id)
                {
                    self.static_members.remove(old_instance);
                }
            }
        }
        if let Some(instance) = &member.instance_id {
            self.static_members
                .insert(instance.clone(), member.member_id.clone());
        }
        self.members.insert(member.member_id.clone(), member);
    }

    fn remove_member(&mut self, member_id: &str) {
        self.remove_partition_owners(member_id);
        if let Some(old) = self.members.remove(member_id) {
            if let Some(instance) = old.instance_id {
                if self.static_members.get(&instance).map(String::as_str) == Some(member_id) {
                    self.static_members.remove(&instance);
                }
            }
        }
    }

    fn remove_partition_owners(&mut self, member_id: &str) {
        let Some(old) = self.members.get(member_id) else {
            return;
        };
        for (topic, partitions) in old
            .assigned_partitions
            .iter()
            .chain(old.partitions_pending_revocation.iter())
        {
            for p in partitions {
                if self
                    .partition_owners
                    .get(&(*topic, *p))
                    .is_some_and(|(owner, _)| owner == member_id)
                {
                    self.partition_owners.remove(&(*topic, *p));
                }
            }
        }
    }

    /// The records that delete this group (Kafka's `createGroupTombstoneRecords`).
    pub fn tombstones(&self) -> Vec<ConsumerGroupRecord> {
        let g = &self.group_id;
        let mut out = Vec::new();
        for id in self.members.keys() {
            out.push(ConsumerGroupRecord::CurrentAssignment {
                group_id: g.clone(),
                member_id: id.clone(),
                value: None,
            });
        }
        let targets: BTreeSet<&String> = self
            .members
            .keys()
            .chain(self.target_assignment.keys())
            .collect();
        for id in targets {
            out.push(ConsumerGroupRecord::TargetAssignmentMember {
                group_id: g.clone(),
                member_id: id.clone(),
                partitions: None,
            });
        }
        out.push(ConsumerGroupRecord::TargetAssignmentEpoch {
            group_id: g.clone(),
            epoch: None,
        });
        for id in self.members.keys() {
            out.push(ConsumerGroupRecord::MemberMetadata {
                group_id: g.clone(),
                member_id: id.clone(),
                value: None,
            });
        }
        out.push(ConsumerGroupRecord::SubscriptionMetadata {
            group_id: g.clone(),
            topics: None,
        });
        out.push(ConsumerGroupRecord::GroupEpoch {
            group_id: g.clone(),
            epoch: None,
        });
        out
    }
}

fn apply_member_metadata(member: &mut ConsumerGroupMember, v: &MemberMetadataValue) {
    member.instance_id = v.instance_id.clone();
    member.rack_id = v.rack_id.clone();
    member.client_id = v.client_id.clone();
    member.client_host = v.client_host.clone();
    member.subscribed_topic_names = v.subscribed_topic_names.iter().cloned().collect();
    member.subscribed_topic_regex = v.subscribed_topic_regex.clone();
    member.rebalance_timeout_ms = v.rebalance_timeout_ms;
    member.server_assignor = v.server_assignor.clone();
    member.classic = v.classic_member_metadata.clone();
}

/// The member-metadata record of `member`.
pub(crate) fn member_metadata_record(
    group_id: &str,
    m: &ConsumerGroupMember,
) -> ConsumerGroupRecord {
    ConsumerGroupRecord::MemberMetadata {
        group_id: group_id.to_string(),
        member_id: m.member_id.clone(),
        value: Some(MemberMetadataValue {
            instance_id: m.instance_id.clone(),
            rack_id: m.rack_id.clone(),
            client_id: m.client_id.clone(),
            client_host: m.client_host.clone(),
            subscribed_topic_names: m.subscribed_topic_names.iter().cloned().collect(),
            subscribed_topic_regex: m.subscribed_topic_regex.clone(),
            rebalance_timeout_ms: m.rebalance_timeout_ms,
            server_assignor: m.server_assignor.clone(),
            classic_member_metadata: m.classic.clone(),
        }),
    }
}

/// The current-assignment record of `member`.
pub(crate) fn current_assignment_record(
    group_id: &str,
    m: &ConsumerGroupMember,
) -> ConsumerGroupRecord {
    ConsumerGroupRecord::CurrentAssignment {
        group_id: group_id.to_string(),
        member_id: m.member_id.clone(),
        value: Some(CurrentAssignmentValue {
            member_epoch: m.member_epoch,
            previous_member_epoch: m.previous_member_epoch,
            state: m.state.value(),
            assigned_partitions: m.assigned_partitions.clone(),
            partitions_pending_revocation: m.partitions_pending_revocation.clone(),
        }),
    }
}

/// True when the two members' persisted subscription fields differ.
pub(crate) fn metadata_differs(a: &ConsumerGroupMember, b: &ConsumerGroupMember) -> bool {
    a.instance_id != b.instance_id
        || a.rack_id != b.rack_id
        || a.client_id != b.client_id
        || a.client_host != b.client_host
        || a.subscribed_topic_names != b.subscribed_topic_names
        || a.subscribed_topic_regex != b.subscribed_topic_regex
        || a.rebalance_timeout_ms != b.rebalance_timeout_ms
        || a.server_assignor != b.server_assignor
        || a.classic != b.classic
}
