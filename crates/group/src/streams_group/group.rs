//! One streams group (Kafka's `StreamsGroup`): epochs, topology, members, target assignment,
//! and the replay of its records.
//!
//! Everything that survives a restart changes only through [`StreamsGroup::replay`]: the
//! coordinator decides by building records and replays them at once, and a loading
//! coordinator replays the same records from the log. Soft state (the topology as configured
//! against the topics, the endpoint information epoch, a requested shutdown) is rebuilt by the
//! next heartbeat.
//!
//! The group's state is derived, as Kafka derives it:
//! ```text
//!   no members                                           → Empty
//!   no topology, or its epoch is not the validated one   → NotReady
//!   group epoch > target assignment epoch                → Assigning
//!   some member not reconciled to the target             → Reconciling
//!   otherwise                                            → Stable
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use super::member::StreamsGroupMember;
use super::records::{GroupMetadataValue, StreamsGroupRecord, TopologyValue};
use super::tasks::Tasks;
use super::topology::ConfiguredTopology;

/// Kafka's `StreamsGroup.StreamsGroupState`; `Display` gives Kafka's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StreamsGroupState {
    Empty,
    NotReady,
    Assigning,
    Reconciling,
    Stable,
    Dead,
}

impl StreamsGroupState {
    pub fn name(self) -> &'static str {
        match self {
            StreamsGroupState::Empty => "Empty",
            StreamsGroupState::NotReady => "NotReady",
            StreamsGroupState::Assigning => "Assigning",
            StreamsGroupState::Reconciling => "Reconciling",
            StreamsGroupState::Stable => "Stable",
            StreamsGroupState::Dead => "Dead",
        }
    }

    /// The lower-case name ListGroups' state filter is compared with (Kafka's `toLowerCaseString`).
    pub fn filter_name(self) -> &'static str {
        match self {
            StreamsGroupState::Empty => "empty",
            StreamsGroupState::NotReady => "not_ready",
            StreamsGroupState::Assigning => "assigning",
            StreamsGroupState::Reconciling => "reconciling",
            StreamsGroupState::Stable => "stable",
            StreamsGroupState::Dead => "dead",
        }
    }
}

impl fmt::Display for StreamsGroupState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A task: subtopology id and partition.
pub type TaskId = (String, i32);

/// A streams group as its records describe it, plus its soft state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamsGroup {
    pub(crate) group_id: String,
    /// Bumped on every membership, topology, metadata or config change.
    pub(crate) group_epoch: i32,
    pub(crate) metadata_hash: i64,
    /// The topology epoch whose topics were found in a valid configuration (-1: none).
    pub(crate) validated_topology_epoch: i32,
    pub(crate) last_assignment_configs: BTreeMap<String, String>,
    /// The metadata record's fields this version only carries over.
    pub(crate) stored_description_topology_epoch: i32,
    pub(crate) failed_description_topology_epoch: i32,
    /// The group epoch the current target assignment was computed for.
    pub(crate) assignment_epoch: i32,
    /// When the target assignment was computed (ms).
    pub(crate) assignment_timestamp: i64,
    pub(crate) topology: Option<TopologyValue>,
    pub(crate) members: BTreeMap<String, StreamsGroupMember>,
    /// Instance id → member id of the static members.
    pub(crate) static_members: BTreeMap<String, String>,
    /// Member id → the tasks the assignor gave it.
    pub(crate) target_assignment: BTreeMap<String, Tasks>,
    /// Derived from the members (assigned ∪ pending revocation): the process holding each
    /// active task, and the processes holding each standby and warm-up task.
    pub(crate) active_owner: BTreeMap<TaskId, String>,
    pub(crate) standby_owners: BTreeMap<TaskId, BTreeSet<String>>,
    pub(crate) warmup_owners: BTreeMap<TaskId, BTreeSet<String>>,
    /// Soft state: the topology configured against the topics, at `metadata_hash`.
    pub(crate) configured: Option<ConfiguredTopology>,
    /// Soft state: bumped whenever some member's tasks change and it has an endpoint.
    pub(crate) endpoint_information_epoch: i32,
    /// Soft state: the member that asked the whole application to shut down.
    pub(crate) shutdown_requested_by: Option<String>,
}

impl StreamsGroup {
    /// A group that does not exist yet (Kafka's new `StreamsGroup`: epochs 1).
    pub fn new(group_id: &str) -> StreamsGroup {
        StreamsGroup {
            group_id: group_id.to_string(),
            group_epoch: 1,
            metadata_hash: 0,
            validated_topology_epoch: -1,
            last_assignment_configs: BTreeMap::new(),
            stored_description_topology_epoch: -1,
            failed_description_topology_epoch: -1,
            assignment_epoch: 1,
            assignment_timestamp: 0,
            topology: None,
            members: BTreeMap::new(),
            static_members: BTreeMap::new(),
            target_assignment: BTreeMap::new(),
            active_owner: BTreeMap::new(),
            standby_owners: BTreeMap::new(),
            warmup_owners: BTreeMap::new(),
            configured: None,
            endpoint_information_epoch: 0,
            shutdown_requested_by: None,
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

    pub fn topology(&self) -> Option<&TopologyValue> {
        self.topology.as_ref()
    }

    pub fn configured_topology(&self) -> Option<&ConfiguredTopology> {
        self.configured.as_ref()
    }

    pub fn members(&self) -> &BTreeMap<String, StreamsGroupMember> {
        &self.members
    }

    pub fn member(&self, member_id: &str) -> Option<&StreamsGroupMember> {
        self.members.get(member_id)
    }

    /// The member holding `instance_id`, if any.
    pub fn static_member(&self, instance_id: &str) -> Option<&StreamsGroupMember> {
        self.static_members
            .get(instance_id)
            .and_then(|id| self.members.get(id))
    }

    pub fn target_assignment(&self, member_id: &str) -> Option<&Tasks> {
        self.target_assignment.get(member_id)
    }

    pub fn state(&self) -> StreamsGroupState {
        if self.members.is_empty() {
            StreamsGroupState::Empty
        } else if self
            .topology
            .as_ref()
            .is_none_or(|t| t.epoch != self.validated_topology_epoch)
        {
            StreamsGroupState::NotReady
        } else if self.group_epoch > self.assignment_epoch {
            StreamsGroupState::Assigning
        } else if self
            .members
            .values()
            .any(|m| !m.is_reconciled_to(self.assignment_epoch))
        {
            StreamsGroupState::Reconciling
        } else {
            StreamsGroupState::Stable
        }
    }

    /// The metadata record's value for epoch `epoch` with the group's other fields.
    pub(crate) fn metadata_value(
        &self,
        epoch: i32,
        metadata_hash: i64,
        validated_topology_epoch: i32,
        last_assignment_configs: BTreeMap<String, String>,
    ) -> GroupMetadataValue {
        GroupMetadataValue {
            epoch,
            metadata_hash,
            validated_topology_epoch,
            last_assignment_configs,
            stored_description_topology_epoch: self.stored_description_topology_epoch,
            failed_description_topology_epoch: self.failed_description_topology_epoch,
        }
    }

    /// Every topic of the topology a member could commit offsets for: source and repartition
    /// source topics.
    pub fn is_input_topic(&self, topic: &str) -> bool {
        self.topology.as_ref().is_some_and(|t| {
            t.subtopologies.iter().any(|s| {
                s.source_topics.iter().any(|n| n == topic)
                    || s.repartition_source_topics.iter().any(|r| r.name == topic)
            })
        })
    }

    /// The subtopology reading `topic` (a source or repartition source topic), if any.
    pub fn subtopology_of_input(&self, topic: &str) -> Option<&str> {
        self.topology.as_ref().and_then(|t| {
            t.subtopologies
                .iter()
                .find(|s| {
                    s.source_topics.iter().any(|n| n == topic)
                        || s.repartition_source_topics.iter().any(|r| r.name == topic)
                })
                .map(|s| s.subtopology_id.as_str())
        })
    }

    fn remove_owners(&mut self, member: &StreamsGroupMember) {
        let process = &member.process_id;
        for tasks in [&member.assigned, &member.pending_revocation] {
            for (id, partitions) in &tasks.active {
                for p in partitions.keys() {
                    let key = (id.clone(), *p);
                    if self.active_owner.get(&key) == Some(process) {
                        self.active_owner.remove(&key);
                    }
                }
            }
            for (owners, map) in [
                (&mut self.standby_owners, &tasks.standby),
                (&mut self.warmup_owners, &tasks.warmup),
            ] {
                for (id, partitions) in map {
                    for p in partitions {
                        let key = (id.clone(), *p);
                        if let Some(set) = owners.get_mut(&key) {
                            set.remove(process);
                            if set.is_empty() {
                                owners.remove(&key);
                            }
                        }
                    }
                }
            }
        }
    }

    fn add_owners(&mut self, member: &StreamsGroupMember) {
        let process = &member.process_id;
        for tasks in [&member.assigned, &member.pending_revocation] {
            for (id, partitions) in &tasks.active {
                for p in partitions.keys() {
                    self.active_owner.insert((id.clone(), *p), process.clone());
                }
            }
            for (owners, map) in [
                (&mut self.standby_owners, &tasks.standby),
                (&mut self.warmup_owners, &tasks.warmup),
            ] {
                for (id, partitions) in map {
                    for p in partitions {
                        owners
                            .entry((id.clone(), *p))
                            .or_default()
                            .insert(process.clone());
                    }
                }
            }
        }
    }

    /// Replaces (or adds, or with `None` removes) member `member_id`, keeping the indexes.
    pub(crate) fn put_member(&mut self, member_id: &str, member: Option<StreamsGroupMember>) {
        if let Some(old) = self.members.remove(member_id) {
            self.remove_owners(&old);
            if let Some(instance) = &old.instance_id {
                if self.static_members.get(instance).map(String::as_str) == Some(member_id) {
                    self.static_members.remove(instance);
                }
            }
        }
        if let Some(member) = member {
            self.add_owners(&member);
            if let Some(instance) = &member.instance_id {
                self.static_members
                    .insert(instance.clone(), member_id.to_string());
            }
            self.members.insert(member_id.to_string(), member);
        }
    }

    /// Applies one of the group's records (Kafka's `replay`).
    pub(crate) fn replay(&mut self, record: &StreamsGroupRecord) {
        match record {
            StreamsGroupRecord::GroupMetadata { value, .. } => {
                if let Some(v) = value {
                    self.group_epoch = v.epoch;
                    self.metadata_hash = v.metadata_hash;
                    self.validated_topology_epoch = v.validated_topology_epoch;
                    self.last_assignment_configs = v.last_assignment_configs.clone();
                    self.stored_description_topology_epoch = v.stored_description_topology_epoch;
                    self.failed_description_topology_epoch = v.failed_description_topology_epoch;
                }
            }
            StreamsGroupRecord::Topology { value, .. } => {
                self.topology = value.clone();
                self.configured = None;
            }
            StreamsGroupRecord::MemberMetadata {
                member_id, value, ..
            } => match value {
                Some(v) => {
                    let mut member = self
                        .members
                        .get(member_id)
                        .cloned()
                        .unwrap_or_else(|| StreamsGroupMember::new(member_id));
                    member.apply_metadata(v);
                    self.put_member(member_id, Some(member));
                }
                None => self.put_member(member_id, None),
            },
            StreamsGroupRecord::TargetAssignmentMetadata { value, .. } => match value {
                Some(v) => {
                    self.assignment_epoch = v.assignment_epoch;
                    self.assignment_timestamp = v.assignment_timestamp;
                }
                None => {
                    self.assignment_epoch = -1;
                    self.assignment_timestamp = 0;
                }
            },
            StreamsGroupRecord::TargetAssignmentMember {
                member_id, value, ..
            } => match value {
                Some(v) => {
                    self.target_assignment.insert(
                        member_id.clone(),
                        Tasks {
                            active: v.active_tasks.clone(),
                            standby: v.standby_tasks.clone(),
                            warmup: v.warmup_tasks.clone(),
                        },
                    );
                }
                None => {
                    self.target_assignment.remove(member_id);
                }
            },
            StreamsGroupRecord::CurrentAssignment {
                member_id, value, ..
            } => {
                let mut member = self
                    .members
                    .get(member_id)
                    .cloned()
                    .unwrap_or_else(|| StreamsGroupMember::new(member_id));
                match value {
                    Some(v) => member.apply_assignment(v),
                    None => {
                        member.member_epoch = -1;
                        member.previous_member_epoch = -1;
                        member.assigned = Default::default();
                        member.pending_revocation = Default::default();
                    }
                }
                self.put_member(member_id, Some(member));
            }
        }
        if self.members.is_empty() {
            self.shutdown_requested_by = None;
        }
    }
}
