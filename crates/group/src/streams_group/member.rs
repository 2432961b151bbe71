//! A member of a streams group (Kafka's `StreamsGroupMember`) and its reconciliation state.
//!
//! ```text
//!            new target, revocations needed          member stops reporting them
//!  STABLE ─────────────────────────────────► UNREVOKED_TASKS ──────────────────► (next epoch)
//!    ▲  │ new target, tasks still owned                                              │
//!    │  ▼ by other processes                                                         │
//!  UNRELEASED_TASKS ─── they are released ───────────────────────────────────────────┘
//! ```
//! The member epoch is the target assignment epoch the member has reached; the previous epoch
//! is kept so that a member whose last answer was lost may come back with it. Active tasks
//! carry the epoch at which the member got them, which fences a late offset commit.

use std::collections::BTreeMap;

use super::records::{task_map, CurrentAssignmentValue, Endpoint, MemberMetadataValue, TaskEpochs};
use super::tasks::{TaskMap, Tasks};

/// Member epoch of a heartbeat that joins (or rejoins) the group.
pub const JOIN_GROUP_MEMBER_EPOCH: i32 = 0;
/// Member epoch of a heartbeat that leaves the group.
pub const LEAVE_GROUP_MEMBER_EPOCH: i32 = -1;
/// Member epoch of a static member that leaves for now and will rejoin with its instance id.
pub const LEAVE_GROUP_STATIC_MEMBER_EPOCH: i32 = -2;

/// Kafka's streams `MemberState`, with its record values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum MemberState {
    /// The member has its whole target assignment.
    #[default]
    Stable,
    /// The member must first give up some tasks.
    UnrevokedTasks,
    /// Some of the member's target tasks are still held by other processes.
    UnreleasedTasks,
    /// A state this version does not know (read from a newer record).
    Unknown,
}

impl MemberState {
    pub fn value(self) -> i8 {
        match self {
            MemberState::Stable => 1,
            MemberState::UnrevokedTasks => 2,
            MemberState::UnreleasedTasks => 3,
            MemberState::Unknown => 127,
        }
    }

    pub fn from_value(v: i8) -> MemberState {
        match v {
            1 => MemberState::Stable,
            2 => MemberState::UnrevokedTasks,
            3 => MemberState::UnreleasedTasks,
            _ => MemberState::Unknown,
        }
    }

    /// Kafka's names, as logs show them.
    pub fn name(self) -> &'static str {
        match self {
            MemberState::Stable => "STABLE",
            MemberState::UnrevokedTasks => "UNREVOKED_TASKS",
            MemberState::UnreleasedTasks => "UNRELEASED_TASKS",
            MemberState::Unknown => "UNKNOWN",
        }
    }
}

/// Tasks in their three roles, active ones with the epoch each was assigned at (Kafka's
/// `TasksTupleWithEpochs`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TasksWithEpochs {
    pub active: TaskEpochs,
    pub standby: TaskMap,
    pub warmup: TaskMap,
}

impl TasksWithEpochs {
    /// The tasks without their epochs.
    pub fn tasks(&self) -> Tasks {
        Tasks {
            active: task_map(&self.active),
            standby: self.standby.clone(),
            warmup: self.warmup.clone(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.tasks().is_empty()
    }
}

/// One member of a streams group: everything the records persist about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamsGroupMember {
    pub member_id: String,
    pub member_epoch: i32,
    pub previous_member_epoch: i32,
    pub state: MemberState,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    /// How long the member may take to give up tasks before it is fenced.
    pub rebalance_timeout_ms: i32,
    /// The epoch of the topology the member runs.
    pub topology_epoch: i32,
    /// The Kafka Streams instance (several members, one per stream thread, share it).
    pub process_id: String,
    /// Where the instance answers interactive queries.
    pub user_endpoint: Option<Endpoint>,
    pub client_tags: BTreeMap<String, String>,
    /// The tasks the member holds (or may start) now.
    pub assigned: TasksWithEpochs,
    /// The tasks the member must give up before it gets anything new.
    pub pending_revocation: TasksWithEpochs,
}

impl StreamsGroupMember {
    /// A member that has just been created for `member_id` (Kafka's defaults).
    pub fn new(member_id: &str) -> StreamsGroupMember {
        StreamsGroupMember {
            member_id: member_id.to_string(),
            member_epoch: 0,
            previous_member_epoch: 0,
            state: MemberState::Stable,
            instance_id: None,
            rack_id: None,
            client_id: String::new(),
            client_host: String::new(),
            rebalance_timeout_ms: -1,
            topology_epoch: -1,
            process_id: String::new(),
            user_endpoint: None,
            client_tags: BTreeMap::new(),
            assigned: TasksWithEpochs::default(),
            pending_revocation: TasksWithEpochs::default(),
        }
    }

    /// Kafka's `isReconciledTo`: stable at the target assignment epoch.
    pub fn is_reconciled_to(&self, target_assignment_epoch: i32) -> bool {
        self.state == MemberState::Stable && self.member_epoch == target_assignment_epoch
    }

    /// The current epoch becomes the previous one.
    pub(crate) fn update_member_epoch(&mut self, epoch: i32) {
        self.previous_member_epoch = self.member_epoch;
        self.member_epoch = epoch;
    }

    /// The metadata part as stored.
    pub fn metadata_value(&self) -> MemberMetadataValue {
        MemberMetadataValue {
            instance_id: self.instance_id.clone(),
            rack_id: self.rack_id.clone(),
            client_id: self.client_id.clone(),
            client_host: self.client_host.clone(),
            rebalance_timeout_ms: self.rebalance_timeout_ms,
            topology_epoch: self.topology_epoch,
            process_id: self.process_id.clone(),
            user_endpoint: self.user_endpoint.clone(),
            client_tags: self.client_tags.clone(),
        }
    }

    /// The assignment part as stored.
    pub fn assignment_value(&self) -> CurrentAssignmentValue {
        CurrentAssignmentValue {
            member_epoch: self.member_epoch,
            previous_member_epoch: self.previous_member_epoch,
            state: self.state.value(),
            active_tasks: self.assigned.active.clone(),
            standby_tasks: self.assigned.standby.clone(),
            warmup_tasks: self.assigned.warmup.clone(),
            active_tasks_pending_revocation: self.pending_revocation.active.clone(),
            standby_tasks_pending_revocation: self.pending_revocation.standby.clone(),
            warmup_tasks_pending_revocation: self.pending_revocation.warmup.clone(),
        }
    }

    /// Sets the metadata part from a record.
    pub(crate) fn apply_metadata(&mut self, v: &MemberMetadataValue) {
        self.instance_id = v.instance_id.clone();
        self.rack_id = v.rack_id.clone();
        self.client_id = v.client_id.clone();
        self.client_host = v.client_host.clone();
        self.rebalance_timeout_ms = v.rebalance_timeout_ms;
        self.topology_epoch = v.topology_epoch;
        self.process_id = v.process_id.clone();
        self.user_endpoint = v.user_endpoint.clone();
        self.client_tags = v.client_tags.clone();
    }

    /// Sets the assignment part from a record.
    pub(crate) fn apply_assignment(&mut self, v: &CurrentAssignmentValue) {
        self.member_epoch = v.member_epoch;
        self.previous_member_epoch = v.previous_member_epoch;
        self.state = MemberState::from_value(v.state);
        self.assigned = TasksWithEpochs {
            active: v.active_tasks.clone(),
            standby: v.standby_tasks.clone(),
            warmup: v.warmup_tasks.clone(),
        };
        self.pending_revocation = TasksWithEpochs {
            active: v.active_tasks_pending_revocation.clone(),
            standby: v.standby_tasks_pending_revocation.clone(),
            warmup: v.warmup_tasks_pending_revocation.clone(),
        };
    }
}
