//! A share group and its members (Kafka's `ShareGroup` and `ShareGroupMember`), rebuilt from
//! the share group records: every change goes through [`ShareGroup::replay`].

use std::collections::{BTreeMap, BTreeSet};

use super::records::{
    ShareCurrentAssignmentValue, ShareGroupRecord, ShareMemberMetadataValue, StatePartitionMetadata,
};
use crate::consumer_group::TopicPartitions;

/// A share group's state (Kafka's `ShareGroup.ShareGroupState`): no members is Empty, any
/// member makes it Stable (a share group has no revocation phase, so no Assigning or
/// Reconciling); Dead is how a group that does not exist is described.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ShareGroupState {
    Empty,
    Stable,
    Dead,
}

impl ShareGroupState {
    /// Kafka's names, as ListGroups and ShareGroupDescribe show them.
    pub fn name(self) -> &'static str {
        match self {
            ShareGroupState::Empty => "Empty",
            ShareGroupState::Stable => "Stable",
            ShareGroupState::Dead => "Dead",
        }
    }
}

/// One member of a share group: everything its records persist.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ShareGroupMember {
    pub member_id: String,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub subscribed_topic_names: BTreeSet<String>,
    /// The assignment epoch the member has reached (0: just joined).
    pub member_epoch: i32,
    pub previous_member_epoch: i32,
    /// The share-partitions the member may fetch from.
    pub assigned_partitions: TopicPartitions,
}

impl ShareGroupMember {
    pub fn new(member_id: &str) -> ShareGroupMember {
        ShareGroupMember {
            member_id: member_id.to_string(),
            ..ShareGroupMember::default()
        }
    }

    /// The member metadata record's value.
    pub(super) fn metadata_value(&self) -> ShareMemberMetadataValue {
        ShareMemberMetadataValue {
            rack_id: self.rack_id.clone(),
            client_id: self.client_id.clone(),
            client_host: self.client_host.clone(),
            subscribed_topic_names: self.subscribed_topic_names.iter().cloned().collect(),
        }
    }

    /// True when the metadata record of `other` would differ from this member's.
    pub(super) fn metadata_differs(&self, other: &ShareGroupMember) -> bool {
        self.metadata_value() != other.metadata_value()
    }
}

/// One share group.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ShareGroup {
    pub group_id: String,
    /// Bumped when the membership, the subscriptions, the subscribed topics' metadata or
    /// the initialized share-partitions change.
    pub group_epoch: i32,
    /// A hash of the subscribed topics' metadata (ids, names, partition counts) when the
    /// epoch was last bumped.
    pub metadata_hash: i64,
    /// The group epoch the target assignment was computed for.
    pub assignment_epoch: i32,
    pub members: BTreeMap<String, ShareGroupMember>,
    /// Member id → its target assignment.
    pub target_assignment: BTreeMap<String, TopicPartitions>,
    /// Which share-partitions have durable state with the share coordinators.
    pub state_metadata: StatePartitionMetadata,
}

impl ShareGroup {
    pub fn new(group_id: &str) -> ShareGroup {
        ShareGroup {
            group_id: group_id.to_string(),
            ..ShareGroup::default()
        }
    }

    pub fn group_id(&self) -> &str {
        &self.group_id
    }

    pub fn state(&self) -> ShareGroupState {
        if self.members.is_empty() {
            ShareGroupState::Empty
        } else {
            ShareGroupState::Stable
        }
    }

    pub fn member(&self, member_id: &str) -> Option<&ShareGroupMember> {
        self.members.get(member_id)
    }

    pub fn target_assignment(&self, member_id: &str) -> Option<&TopicPartitions> {
        self.target_assignment.get(member_id)
    }

    /// Every topic name a member subscribes to.
    pub fn subscribed_topic_names(&self) -> BTreeSet<String> {
        self.members
            .values()
            .flat_map(|m| m.subscribed_topic_names.iter().cloned())
            .collect()
    }

    /// Applies one record (Kafka's `GroupCoordinatorShard.replay` for share records).
    pub fn replay(&mut self, record: &ShareGroupRecord) {
        match record {
            ShareGroupRecord::MemberMetadata {
                member_id, value, ..
            } => match value {
                Some(v) => {
                    let m = self
                        .members
                        .entry(member_id.clone())
                        .or_insert_with(|| ShareGroupMember::new(member_id));
                    m.rack_id = v.rack_id.clone();
                    m.client_id = v.client_id.clone();
                    m.client_host = v.client_host.clone();
                    m.subscribed_topic_names = v.subscribed_topic_names.iter().cloned().collect();
                }
                None => {
                    self.members.remove(member_id);
                }
            },
            ShareGroupRecord::GroupMetadata { value, .. } => {
                if let Some((epoch, hash)) = value {
                    self.group_epoch = *epoch;
                    self.metadata_hash = *hash;
                }
            }
            ShareGroupRecord::TargetAssignmentEpoch { epoch, .. } => {
                if let Some(e) = epoch {
                    self.assignment_epoch = *e;
                }
            }
            ShareGroupRecord::TargetAssignmentMember {
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
            ShareGroupRecord::CurrentAssignment {
                member_id, value, ..
            } => match value {
                Some(v) => {
                    let m = self
                        .members
                        .entry(member_id.clone())
                        .or_insert_with(|| ShareGroupMember::new(member_id));
                    m.member_epoch = v.member_epoch;
                    m.previous_member_epoch = v.previous_member_epoch;
                    m.assigned_partitions = v.assigned_partitions.clone();
                }
                None => {
                    if let Some(m) = self.members.get_mut(member_id) {
                        m.member_epoch = 0;
                        m.previous_member_epoch = 0;
                        m.assigned_partitions = TopicPartitions::new();
                    }
                }
            },
            ShareGroupRecord::StatePartitionMetadata { value, .. } => {
                self.state_metadata = value.clone().unwrap_or_default();
            }
        }
    }

    /// The tombstones that delete the whole group, in Kafka's order
    /// (`ShareGroup.createGroupTombstoneRecords`): the members' current assignments, their
    /// target assignments, the target assignment epoch, the members' metadata, the state
    /// partition metadata and last the group metadata, whose tombstone removes the group.
    pub fn tombstones(&self) -> Vec<ShareGroupRecord> {
        let g = || self.group_id.clone();
        let mut out = Vec::new();
        for id in self.members.keys() {
            out.push(ShareGroupRecord::CurrentAssignment {
                group_id: g(),
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
            out.push(ShareGroupRecord::TargetAssignmentMember {
                group_id: g(),
                member_id: id.clone(),
                partitions: None,
            });
        }
        out.push(ShareGroupRecord::TargetAssignmentEpoch {
            group_id: g(),
            epoch: None,
        });
        for id in self.members.keys() {
            out.push(ShareGroupRecord::MemberMetadata {
                group_id: g(),
                member_id: id.clone(),
                value: None,
            });
        }
        out.push(ShareGroupRecord::StatePartitionMetadata {
            group_id: g(),
            value: None,
        });
        out.push(ShareGroupRecord::GroupMetadata {
            group_id: g(),
            value: None,
        });
        out
    }
}

/// The member metadata record of `member`.
pub(super) fn member_metadata_record(
    group_id: &str,
    member: &ShareGroupMember,
) -> ShareGroupRecord {
    ShareGroupRecord::MemberMetadata {
        group_id: group_id.to_string(),
        member_id: member.member_id.clone(),
        value: Some(member.metadata_value()),
    }
}

/// The current assignment record of `member`.
pub(super) fn current_assignment_record(
    group_id: &str,
    member: &ShareGroupMember,
) -> ShareGroupRecord {
    ShareGroupRecord::CurrentAssignment {
        group_id: group_id.to_string(),
        member_id: member.member_id.clone(),
        value: Some(ShareCurrentAssignmentValue {
            member_epoch: member.member_epoch,
            previous_member_epoch: member.previous_member_epoch,
            state: 0,
            assigned_partitions: member.assigned_partitions.clone(),
        }),
    }
}
