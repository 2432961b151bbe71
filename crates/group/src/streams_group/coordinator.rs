//! The streams group coordinator (Kafka's `GroupMetadataManager` for groups of type
//! "streams"): StreamsGroupHeartbeat, the session, rebalance and initial-delay timers,
//! loading, describing, listing, deleting, and the offset checks.
//!
//! ```text
//!  heartbeat(request, topics, now)
//!    validate ─► leave (-1 / -2) ─► fence: tombstones, group epoch + 1   (-2: keep, epoch -2)
//!             └► join / heartbeat:
//!                1. group and member: create or update; record the member if it changed
//!                2. topology: initialize it from the first member, keep it otherwise
//!                3. configure it against the topics (missing or mis-partitioned topics are
//!                   statuses; internal topics to create go back to the broker)
//!                4. group epoch + 1 when the member, the topics or the validated topology
//!                   changed
//!                5. target assignment (unless delayed: initial delay, assignment interval)
//!                6. reconcile the member towards its target (revoke first, then assign
//!                   what no other process holds)
//!    ─► records (each replayed into the state at once) + response
//!  tick(now) ─► fence members whose session or rebalance timeout passed; compute the
//!               assignment an initial delay held back
//! ```
//! A heartbeat that fails leaves the group as it was (Kafka writes nothing then): the group
//! is put back from a copy taken before the first record.

use std::collections::{BTreeMap, BTreeSet};

use super::api::*;
use super::assignor::{assign, AssignorMember, AssignorSubtopology, STICKY};
use super::group::{StreamsGroup, StreamsGroupState};
use super::member::{
    MemberState, StreamsGroupMember, JOIN_GROUP_MEMBER_EPOCH, LEAVE_GROUP_MEMBER_EPOCH,
    LEAVE_GROUP_STATIC_MEMBER_EPOCH,
};
use super::reconcile::reconcile;
use super::records::{
    is_streams_group_key, StreamsGroupRecord, TargetAssignmentMemberValue,
    TargetAssignmentMetadataValue,
};
use super::tasks::{has_task, TaskMap, Tasks};
use super::topology::{
    check_source_topic_regex, check_topic_names, configure_topics, metadata_hash, required_topics,
    TopologyCheck,
};
use crate::consumer_group::{OffsetCheck, TopicsView};
use crate::error::DecodeError;
use crate::records::{partition_for_group, Record, DEFAULT_OFFSETS_TOPIC_PARTITIONS};

/// The broker configs of streams groups, with Kafka 4.4's defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamsGroupConfig {
    /// `group.streams.session.timeout.ms`
    pub session_timeout_ms: i32,
    /// `group.streams.heartbeat.interval.ms`
    pub heartbeat_interval_ms: i32,
    /// `group.streams.max.size`
    pub max_size: usize,
    /// `group.streams.num.standby.replicas`
    pub num_standby_replicas: i32,
    /// `group.streams.initial.rebalance.delay.ms`
    pub initial_rebalance_delay_ms: i32,
    /// `group.streams.assignment.interval.ms`
    pub assignment_interval_ms: i32,
    /// `group.streams.task.offset.interval.ms`
    pub task_offset_interval_ms: i32,
    /// `group.streams.acceptable.recovery.lag`
    pub acceptable_recovery_lag: i64,
    /// `offsets.topic.num.partitions`
    pub offsets_topic_num_partitions: i32,
}

impl Default for StreamsGroupConfig {
    fn default() -> Self {
        StreamsGroupConfig {
            session_timeout_ms: 45_000,
            heartbeat_interval_ms: 5_000,
            max_size: i32::MAX as usize,
            num_standby_replicas: 0,
            initial_rebalance_delay_ms: 3_000,
            assignment_interval_ms: 1_000,
            task_offset_interval_ms: 60_000,
            acceptable_recovery_lag: 10_000,
            offsets_topic_num_partitions: DEFAULT_OFFSETS_TOPIC_PARTITIONS,
        }
    }
}

/// A streams group's own settings (its GROUP configs `streams.session.timeout.ms`,
/// `streams.heartbeat.interval.ms`, `streams.num.standby.replicas`,
/// `streams.initial.rebalance.delay.ms`), over the broker's [`StreamsGroupConfig`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StreamsGroupOverrides {
    pub session_timeout_ms: Option<i32>,
    pub heartbeat_interval_ms: Option<i32>,
    pub num_standby_replicas: Option<i32>,
    pub initial_rebalance_delay_ms: Option<i32>,
}

/// The key of the standby replica count in the group's last assignment configs.
const NUM_STANDBY_REPLICAS: &str = "num.standby.replicas";

/// An error answer of a heartbeat (Kafka throws these as `ApiException`s).
#[derive(Debug, Clone, PartialEq, Eq)]
struct HeartbeatError {
    code: i16,
    message: String,
}

fn err<T>(code: i16, message: impl Into<String>) -> Result<T, HeartbeatError> {
    Err(HeartbeatError {
        code,
        message: message.into(),
    })
}

/// A member's pending rebalance timeout: fence it if it is still at `epoch` at `deadline_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct RebalanceTimeout {
    epoch: i32,
    deadline_ms: i64,
}

/// Every streams group this broker coordinates.
#[derive(Debug)]
pub struct StreamsGroupCoordinator {
    config: StreamsGroupConfig,
    groups: BTreeMap<String, StreamsGroup>,
    /// (group, member) → when its session expires.
    sessions: BTreeMap<(String, String), i64>,
    /// (group, member) → its revocation deadline.
    rebalance_timeouts: BTreeMap<(String, String), RebalanceTimeout>,
    /// group → when its initial rebalance delay ends (Kafka's
    /// "initial-rebalance-timeout-<group>" timer).
    initial_delays: BTreeMap<String, i64>,
    overrides: BTreeMap<String, StreamsGroupOverrides>,
}

impl StreamsGroupCoordinator {
    pub fn new(config: StreamsGroupConfig) -> StreamsGroupCoordinator {
        StreamsGroupCoordinator {
            config,
            groups: BTreeMap::new(),
            sessions: BTreeMap::new(),
            rebalance_timeouts: BTreeMap::new(),
            initial_delays: BTreeMap::new(),
            overrides: BTreeMap::new(),
        }
    }

    pub fn config(&self) -> &StreamsGroupConfig {
        &self.config
    }

    /// Sets group `group_id`'s own settings (the runtime passes its GROUP configs before each
    /// heartbeat); the default removes them.
    pub fn set_group_overrides(&mut self, group_id: &str, overrides: StreamsGroupOverrides) {
        if overrides == StreamsGroupOverrides::default() {
            self.overrides.remove(group_id);
        } else {
            self.overrides.insert(group_id.to_string(), overrides);
        }
    }

    fn overrides(&self, group_id: &str) -> StreamsGroupOverrides {
        self.overrides.get(group_id).copied().unwrap_or_default()
    }

    pub fn session_timeout_ms(&self, group_id: &str) -> i32 {
        self.overrides(group_id)
            .session_timeout_ms
            .unwrap_or(self.config.session_timeout_ms)
    }

    pub fn heartbeat_interval_ms(&self, group_id: &str) -> i32 {
        self.overrides(group_id)
            .heartbeat_interval_ms
            .unwrap_or(self.config.heartbeat_interval_ms)
    }

    pub fn num_standby_replicas(&self, group_id: &str) -> i32 {
        self.overrides(group_id)
            .num_standby_replicas
            .unwrap_or(self.config.num_standby_replicas)
    }

    fn initial_rebalance_delay_ms(&self, group_id: &str) -> i32 {
        self.overrides(group_id)
            .initial_rebalance_delay_ms
            .unwrap_or(self.config.initial_rebalance_delay_ms)
    }

    /// The `__consumer_offsets` partition of `group_id`.
    pub fn partition_for(&self, group_id: &str) -> i32 {
        partition_for_group(group_id, self.config.offsets_topic_num_partitions)
    }

    pub fn group(&self, group_id: &str) -> Option<&StreamsGroup> {
        self.groups.get(group_id)
    }

    /// True when `group_id` is a streams group here.
    pub fn contains_group(&self, group_id: &str) -> bool {
        self.groups.contains_key(group_id)
    }

    pub fn groups(&self) -> impl Iterator<Item = &StreamsGroup> {
        self.groups.values()
    }

    /// StreamsGroupHeartbeat (API 88). The broker appends `append` (acks=all), asks for the
    /// creation of `create_topics`, and then sends `response`; if the append fails it answers
    /// with an error and reloads the partition. A group id that names another kind of group
    /// must not reach here (GROUP_ID_NOT_FOUND "Group {id} is not a streams group.").
    pub fn heartbeat(
        &mut self,
        req: &StreamsGroupHeartbeatRequest,
        topics: &dyn TopicsView,
        now_ms: i64,
    ) -> StreamsHeartbeatResult {
        let before = self.groups.get(&req.group_id).cloned();
        let mut records = Vec::new();
        let mut create_topics = Vec::new();
        match self.heartbeat_inner(req, topics, now_ms, &mut records, &mut create_topics) {
            Ok(response) => StreamsHeartbeatResult {
                response,
                append: self.append_for(&req.group_id, &records),
                create_topics,
            },
            Err(e) => {
                match before {
                    Some(g) => {
                        self.groups.insert(req.group_id.clone(), g);
                    }
                    None => {
                        self.groups.remove(&req.group_id);
                    }
                }
                StreamsHeartbeatResult {
                    response: StreamsGroupHeartbeatResponse::error(e.code, e.message),
                    append: None,
                    create_topics: Vec::new(),
                }
            }
        }
    }

    fn append_for(
        &self,
        group_id: &str,
        records: &[StreamsGroupRecord],
    ) -> Option<StreamsGroupAppend> {
        (!records.is_empty()).then(|| StreamsGroupAppend {
            partition: self.partition_for(group_id),
            records: records.iter().map(StreamsGroupRecord::encode).collect(),
        })
    }

    /// Replays `record` into the groups and keeps it for the append.
    fn emit(&mut self, records: &mut Vec<StreamsGroupRecord>, record: StreamsGroupRecord) {
        replay_into(&mut self.groups, &record);
        records.push(record);
    }

    /// Kafka 4.4's checks of `GroupCoordinatorService.streamsGroupHeartbeat` and
    /// `throwIfStreamsGroupHeartbeatRequestIsInvalid`, in their order.
    fn validate(req: &StreamsGroupHeartbeatRequest) -> Result<(), HeartbeatError> {
        let invalid = |m: &str| err(codes::INVALID_REQUEST, m);
        if let Some(topology) = &req.topology {
            // KafkaApis checks the names first, then the coordinator what it does not
            // support; the changelog partitions are checked with the join below.
            let checks =
                check_topic_names(topology).and_then(|()| check_source_topic_regex(topology));
            match checks {
                Ok(()) => {}
                Err(TopologyCheck::InvalidTopology(m)) => {
                    return err(codes::STREAMS_INVALID_TOPOLOGY, m)
                }
                Err(TopologyCheck::InvalidRequest(m)) => return invalid(&m),
            }
        }
        if req.member_id.trim().is_empty() {
            return invalid("MemberId can't be empty.");
        }
        if req.group_id.trim().is_empty() {
            return invalid("GroupId can't be empty.");
        }
        if req
            .instance_id
            .as_deref()
            .is_some_and(|s| s.trim().is_empty())
        {
            return invalid("InstanceId can't be empty.");
        }
        if req.rack_id.as_deref().is_some_and(|s| s.trim().is_empty()) {
            return invalid("RackId can't be empty.");
        }
        match req.member_epoch {
            JOIN_GROUP_MEMBER_EPOCH => {
                if req.rebalance_timeout_ms == -1 {
                    return invalid("RebalanceTimeoutMs must be provided in first request.");
                }
                let empty = |t: &Option<TaskMap>| t.as_ref().is_some_and(|m| m.is_empty());
                if !empty(&req.active_tasks) {
                    return invalid("ActiveTasks must be empty when (re-)joining.");
                }
                if !empty(&req.standby_tasks) {
                    return invalid("StandbyTasks must be empty when (re-)joining.");
                }
                if !empty(&req.warmup_tasks) {
                    return invalid("WarmupTasks must be empty when (re-)joining.");
                }
                let Some(topology) = &req.topology else {
                    return invalid("Topology must be non-null when (re-)joining.");
                };
                for s in &topology.subtopologies {
                    for c in &s.state_changelog_topics {
                        if c.partitions != 0 {
                            return err(
                                codes::STREAMS_INVALID_TOPOLOGY,
                                format!(
                                    "Changelog topic {} must have an undefined partition count, but it is set to {}.",
                                    c.name, c.partitions
                                ),
                            );
                        }
                    }
                }
            }
            LEAVE_GROUP_STATIC_MEMBER_EPOCH if req.instance_id.is_none() => {
                return invalid("InstanceId can't be null.");
            }
            e if e < LEAVE_GROUP_STATIC_MEMBER_EPOCH => {
                return invalid(&format!(
                    "MemberEpoch is {e}, but must be greater than or equal to -2."
                ));
            }
            _ => {}
        }
        let lists = [&req.active_tasks, &req.standby_tasks, &req.warmup_tasks];
        if lists.iter().any(|l| l.is_some()) && lists.iter().any(|l| l.is_none()) {
            return invalid("If one task-type is non-null, all must be non-null.");
        }
        if req.member_epoch != JOIN_GROUP_MEMBER_EPOCH && req.topology.is_some() {
            return invalid("Topology can only be provided when (re-)joining.");
        }
        Ok(())
    }

    fn heartbeat_inner(
        &mut self,
        req: &StreamsGroupHeartbeatRequest,
        topics: &dyn TopicsView,
        now_ms: i64,
        records: &mut Vec<StreamsGroupRecord>,
        create_topics: &mut Vec<TopicToCreate>,
    ) -> Result<StreamsGroupHeartbeatResponse, HeartbeatError> {
        Self::validate(req)?;
        if req.member_epoch == LEAVE_GROUP_MEMBER_EPOCH
            || req.member_epoch == LEAVE_GROUP_STATIC_MEMBER_EPOCH
        {
            return self.leave(req, records);
        }
        let group_id = req.group_id.as_str();
        let member_id = req.member_id.as_str();
        let joining = req.member_epoch == JOIN_GROUP_MEMBER_EPOCH;
        let owned = match (&req.active_tasks, &req.standby_tasks, &req.warmup_tasks) {
            (Some(a), Some(s), Some(w)) => Some(Tasks {
                active: a.clone(),
                standby: s.clone(),
                warmup: w.clone(),
            }),
            _ => None,
        };

        // 1. The group and the member; checks first, against the group as it is.
        let existed = self.groups.contains_key(group_id);
        let group = match self.groups.get(group_id) {
            Some(g) => g.clone(),
            None if joining => StreamsGroup::new(group_id),
            None => {
                return err(
                    codes::GROUP_ID_NOT_FOUND,
                    format!("Streams group {group_id} not found."),
                )
            }
        };
        let state_before = group.state();
        let static_owner = req
            .instance_id
            .as_deref()
            .and_then(|i| group.static_member(i))
            .cloned();
        if joining
            && static_owner.is_none()
            && group.members.len() >= self.config.max_size
            && !group.members.contains_key(member_id)
        {
            return err(
                codes::GROUP_MAX_SIZE_REACHED,
                format!(
                    "The streams group has reached its maximum capacity of {} members.",
                    self.config.max_size
                ),
            );
        }
        // `replaced`: a static member whose instance id this new member takes over.
        let mut replaced: Option<StreamsGroupMember> = None;
        let member = match (&req.instance_id, joining) {
            (None, true) => group
                .member(member_id)
                .cloned()
                .unwrap_or_else(|| StreamsGroupMember::new(member_id)),
            (None, false) => {
                let Some(m) = group.member(member_id) else {
                    return err(
                        codes::UNKNOWN_MEMBER_ID,
                        format!("Member {member_id} is not a member of group {group_id}."),
                    );
                };
                check_member_epoch(m, req.member_epoch, req)?;
                m.clone()
            }
            (Some(instance), true) => match static_owner {
                None => group
                    .member(member_id)
                    .cloned()
                    .unwrap_or_else(|| StreamsGroupMember::new(member_id)),
                Some(old) if old.member_id == member_id => old,
                Some(old) if old.member_epoch != LEAVE_GROUP_STATIC_MEMBER_EPOCH => {
                    return err(
                        codes::UNRELEASED_INSTANCE_ID,
                        format!(
                            "Static member {member_id} with instance id {instance} cannot join the group because the instance id is owned by {} member.",
                            old.member_id
                        ),
                    );
                }
                Some(old) => {
                    let mut m = old.clone();
                    m.member_id = member_id.to_string();
                    m.member_epoch = 0;
                    m.previous_member_epoch = 0;
                    replaced = Some(old);
                    m
                }
            },
            (Some(instance), false) => {
                let Some(old) = static_owner else {
                    return err(
                        codes::UNKNOWN_MEMBER_ID,
                        format!("Instance id {instance} is unknown."),
                    );
                };
                if old.member_id != member_id {
                    return err(
                        codes::FENCED_INSTANCE_ID,
                        format!(
                            "Static member {member_id} with instance id {instance} was fenced by member {}.",
                            old.member_id
                        ),
                    );
                }
                check_member_epoch(&old, req.member_epoch, req)?;
                old
            }
        };

        // 2. The member's metadata.
        let mut updated = member.clone();
        if req.instance_id.is_some() {
            updated.instance_id = req.instance_id.clone();
        }
        if let Some(rack) = &req.rack_id {
            updated.rack_id = Some(rack.clone());
        }
        if req.rebalance_timeout_ms != -1 {
            updated.rebalance_timeout_ms = req.rebalance_timeout_ms;
        }
        if let Some(t) = &req.topology {
            updated.topology_epoch = t.epoch;
        }
        updated.client_id = req.client_id.clone();
        updated.client_host = req.client_host.clone();
        if let Some(p) = &req.process_id {
            updated.process_id = p.clone();
        }
        if let Some(tags) = &req.client_tags {
            updated.client_tags = tags.iter().cloned().collect();
        }
        let endpoint_changed;
        if joining {
            endpoint_changed = updated.user_endpoint != req.user_endpoint;
            updated.user_endpoint = req.user_endpoint.clone();
        } else if let Some(e) = &req.user_endpoint {
            endpoint_changed = updated.user_endpoint.as_ref() != Some(e);
            updated.user_endpoint = Some(e.clone());
        } else {
            endpoint_changed = false;
        }
        let mut bump = match &replaced {
            // A static member coming back bumps only for what changes the assignment.
            Some(old) => {
                old.topology_epoch != updated.topology_epoch
                    || old.rack_id != updated.rack_id
                    || old.client_tags != updated.client_tags
                    || old.process_id != updated.process_id
            }
            None => updated != member,
        };

        // 3. The topology.
        let mut statuses = Vec::new();
        let topology = match (&req.topology, &group.topology) {
            (Some(t), None) => t.clone(),
            (Some(t), Some(current)) if current.epoch > t.epoch => current.clone(),
            (Some(t), Some(current)) if current != t => {
                return err(
                    codes::INVALID_REQUEST,
                    "Topology updates are not supported yet.",
                )
            }
            (_, Some(current)) => current.clone(),
            (None, None) => {
                return err(
                    codes::INVALID_REQUEST,
                    "Topology must be non-null when (re-)joining.",
                )
            }
        };
        if let Some(current) = &group.topology {
            if updated.topology_epoch < current.epoch {
                statuses.push(Status {
                    code: status::STALE_TOPOLOGY,
                    detail: format!(
                        "The member's topology epoch {} is behind the group's topology epoch {}.",
                        updated.topology_epoch, current.epoch
                    ),
                });
            }
        }

        // 4. The topology against the topics.
        let partitions = |name: &str| {
            topics
                .topic_id(name)
                .and_then(|id| topics.partition_count(id))
        };
        let existing: Vec<(String, i32)> = required_topics(&topology)
            .into_iter()
            .filter_map(|name| partitions(&name).map(|n| (name, n)))
            .collect();
        let hash = metadata_hash(&existing);
        let mut reconfigure = group.topology.is_none() || group.configured.is_none();
        if hash != group.metadata_hash {
            bump = true;
            reconfigure = true;
        }
        let configured = if reconfigure {
            configure_topics(&topology, &partitions).map_err(|e| HeartbeatError {
                code: codes::STREAMS_INVALID_TOPOLOGY,
                message: e.0,
            })?
        } else {
            group.configured.clone().ok_or_else(|| HeartbeatError {
                code: codes::INVALID_REQUEST,
                message: "The group's topology is not configured.".to_string(),
            })?
        };
        let mut validated_epoch = -1;
        if configured.is_ready() {
            validated_epoch = topology.epoch;
            if let (Some(o), Some(subtopologies)) = (&owned, &configured.subtopologies) {
                for map in [&o.active, &o.standby, &o.warmup] {
                    for (id, partitions) in map {
                        let Some(s) = subtopologies.get(id) else {
                            return err(
                                codes::INVALID_REQUEST,
                                format!("Subtopology {id} does not exist in the topology."),
                            );
                        };
                        for p in partitions {
                            if *p < 0 || *p >= s.num_tasks {
                                return err(
                                    codes::INVALID_REQUEST,
                                    format!(
                                        "Task {p} for subtopology {id} is invalid. Number of tasks for this subtopology: {}",
                                        s.num_tasks
                                    ),
                                );
                            }
                        }
                    }
                }
            }
        }
        if validated_epoch != group.validated_topology_epoch {
            bump = true;
        }
        let assignment_configs: BTreeMap<String, String> = [(
            NUM_STANDBY_REPLICAS.to_string(),
            self.num_standby_replicas(group_id).to_string(),
        )]
        .into_iter()
        .collect();
        if assignment_configs != group.last_assignment_configs {
            bump = true;
        }

        // From here on the group changes: records, replayed at once.
        if let Some(old) = &replaced {
            for r in fence_records(group_id, &old.member_id) {
                self.emit(records, r);
            }
        }
        if updated != member || replaced.is_some() {
            self.emit(
                records,
                StreamsGroupRecord::MemberMetadata {
                    group_id: group_id.to_string(),
                    member_id: member_id.to_string(),
                    value: Some(updated.metadata_value()),
                },
            );
        }
        if let Some(old) = &replaced {
            let target = group
                .target_assignment(&old.member_id)
                .cloned()
                .unwrap_or_default();
            self.emit(
                records,
                StreamsGroupRecord::TargetAssignmentMember {
                    group_id: group_id.to_string(),
                    member_id: member_id.to_string(),
                    value: Some(TargetAssignmentMemberValue::from(target.clone())),
                },
            );
            self.emit(
                records,
                StreamsGroupRecord::CurrentAssignment {
                    group_id: group_id.to_string(),
                    member_id: member_id.to_string(),
                    value: Some(updated.assignment_value()),
                },
            );
        }
        if group.topology.is_none() {
            self.emit(
                records,
                StreamsGroupRecord::Topology {
                    group_id: group_id.to_string(),
                    value: Some(topology.clone()),
                },
            );
        }
        let mut group_epoch = group.group_epoch;
        if bump {
            group_epoch += 1;
            let value =
                group.metadata_value(group_epoch, hash, validated_epoch, assignment_configs);
            self.emit(
                records,
                StreamsGroupRecord::GroupMetadata {
                    group_id: group_id.to_string(),
                    value: Some(value),
                },
            );
        }
        if let Some(g) = self.groups.get_mut(group_id) {
            g.configured = Some(configured.clone());
            if !existed {
                g.endpoint_information_epoch = 0;
            }
        }
        if state_before == StreamsGroupState::Empty {
            let delay = self.initial_rebalance_delay_ms(group_id);
            if delay > 0 {
                self.initial_delays
                    .entry(group_id.to_string())
                    .or_insert(now_ms.saturating_add(i64::from(delay)));
            }
        }

        // 5. The target assignment.
        let (target_epoch, target) = self.maybe_update_target(
            group_id,
            member_id,
            group_epoch,
            now_ms,
            &mut statuses,
            records,
        );

        // 6. Reconcile the member.
        let current = self
            .groups
            .get(group_id)
            .and_then(|g| g.member(member_id))
            .cloned()
            .unwrap_or(updated);
        let reconciled = {
            let Some(g) = self.groups.get(group_id) else {
                return err(
                    codes::GROUP_ID_NOT_FOUND,
                    format!("Streams group {group_id} not found."),
                );
            };
            reconcile(&current, g, target_epoch, &target, owned.as_ref()).map_err(|_| {
                HeartbeatError {
                    code: codes::FENCED_MEMBER_EPOCH,
                    message: "The streams group member is in a unknown state. The member must abandon all its tasks and rejoin.".to_string(),
                }
            })?
        };
        if reconciled != current {
            self.emit(
                records,
                StreamsGroupRecord::CurrentAssignment {
                    group_id: group_id.to_string(),
                    member_id: member_id.to_string(),
                    value: Some(reconciled.assignment_value()),
                },
            );
        }
        let key = (group_id.to_string(), member_id.to_string());
        if reconciled.state == MemberState::UnrevokedTasks {
            self.rebalance_timeouts.insert(
                key.clone(),
                RebalanceTimeout {
                    epoch: reconciled.member_epoch,
                    deadline_ms: now_ms
                        .saturating_add(i64::from(reconciled.rebalance_timeout_ms.max(0))),
                },
            );
        } else {
            self.rebalance_timeouts.remove(&key);
        }
        if let Some(old) = &replaced {
            let old_key = (group_id.to_string(), old.member_id.clone());
            self.sessions.remove(&old_key);
            self.rebalance_timeouts.remove(&old_key);
        }
        let session = i64::from(self.session_timeout_ms(group_id));
        self.sessions.insert(key, now_ms.saturating_add(session));

        // The answer.
        let heartbeat_interval_ms = self.heartbeat_interval_ms(group_id);
        let task_offset_interval_ms = self.config.task_offset_interval_ms;
        let acceptable_recovery_lag = self.config.acceptable_recovery_lag;
        let Some(g) = self.groups.get_mut(group_id) else {
            return err(
                codes::GROUP_ID_NOT_FOUND,
                format!("Streams group {group_id} not found."),
            );
        };
        if req.shutdown_application && g.shutdown_requested_by.is_none() {
            g.shutdown_requested_by = Some(member_id.to_string());
        }
        if let Some(s) = &configured.status {
            statuses.push(s.clone());
        }
        if let Some(by) = &g.shutdown_requested_by {
            statuses.push(Status {
                code: status::SHUTDOWN_APPLICATION,
                detail: format!(
                    "Streams group member {by} encountered a fatal error and requested a shutdown for the entire application."
                ),
            });
        }
        let send_tasks = joining || reconciled.assigned != current.assigned || replaced.is_some();
        if (send_tasks || endpoint_changed) && reconciled.user_endpoint.is_some() {
            g.endpoint_information_epoch += 1;
        }
        let endpoint_information_epoch = if existed {
            g.endpoint_information_epoch
        } else {
            0
        };
        let partitions_by_user_endpoint = (g.endpoint_information_epoch
            != req.endpoint_information_epoch)
            .then(|| endpoints_to_partitions(g, member_id));
        if !configured.internal_topics_to_create.is_empty() {
            create_topics.extend(configured.internal_topics_to_create.iter().cloned());
        }
        let tasks = reconciled.assigned.tasks();
        Ok(StreamsGroupHeartbeatResponse {
            error_code: codes::NONE,
            error_message: None,
            member_id: member_id.to_string(),
            member_epoch: reconciled.member_epoch,
            heartbeat_interval_ms,
            acceptable_recovery_lag,
            task_offset_interval_ms,
            status: Some(statuses),
            active_tasks: send_tasks.then(|| tasks.active.clone()),
            standby_tasks: send_tasks.then(|| tasks.standby.clone()),
            warmup_tasks: send_tasks.then(|| tasks.warmup.clone()),
            endpoint_information_epoch,
            partitions_by_user_endpoint,
        })
    }

    /// Kafka's `maybeUpdateStreamsTargetAssignment`: the target epoch and the member's
    /// target, computing a new target assignment when one is due and not held back.
    fn maybe_update_target(
        &mut self,
        group_id: &str,
        member_id: &str,
        group_epoch: i32,
        now_ms: i64,
        statuses: &mut Vec<Status>,
        records: &mut Vec<StreamsGroupRecord>,
    ) -> (i32, Tasks) {
        let Some(group) = self.groups.get(group_id) else {
            return (0, Tasks::default());
        };
        let mine = |g: &StreamsGroup| g.target_assignment(member_id).cloned().unwrap_or_default();
        if self.initial_delays.contains_key(group_id) {
            statuses.push(Status {
                code: status::ASSIGNMENT_DELAYED,
                detail: "Assignment delayed due to the configured initial rebalance delay."
                    .to_string(),
            });
            return (group.assignment_epoch, Tasks::default());
        }
        if group.assignment_epoch >= group_epoch {
            return (group.assignment_epoch, mine(group));
        }
        let interval = i64::from(self.config.assignment_interval_ms);
        let ts = group.assignment_timestamp;
        if !(ts == 0 || interval == 0 || now_ms >= ts.saturating_add(interval)) {
            statuses.push(Status {
                code: status::ASSIGNMENT_DELAYED,
                detail: "Assignment delayed due to the configured assignment interval.".to_string(),
            });
            return (group.assignment_epoch, mine(group));
        }
        self.compute_target(group_id, group_epoch, now_ms, records);
        let target = self.groups.get(group_id).map(mine).unwrap_or_default();
        (group_epoch, target)
    }

    /// Runs the assignor for every member of `group_id` and records the new target at
    /// `group_epoch` (Kafka's `TargetAssignmentBuilder`): a record for each member whose
    /// target changed, then the target's epoch. A topology that is not ready gives every
    /// member an empty target.
    fn compute_target(
        &mut self,
        group_id: &str,
        group_epoch: i32,
        now_ms: i64,
        records: &mut Vec<StreamsGroupRecord>,
    ) {
        let num_standby = self.num_standby_replicas(group_id);
        let Some(group) = self.groups.get(group_id) else {
            return;
        };
        let members: BTreeMap<String, AssignorMember> = group
            .members
            .values()
            .map(|m| {
                (
                    m.member_id.clone(),
                    AssignorMember {
                        process_id: m.process_id.clone(),
                        previous: group
                            .target_assignment(&m.member_id)
                            .cloned()
                            .unwrap_or_default(),
                    },
                )
            })
            .collect();
        let new_targets = match group.configured.as_ref().filter(|c| c.is_ready()) {
            Some(configured) => {
                let subtopologies: Vec<AssignorSubtopology> = configured
                    .subtopologies
                    .iter()
                    .flat_map(|s| s.values())
                    .map(|s| AssignorSubtopology {
                        subtopology_id: s.subtopology_id.clone(),
                        num_tasks: s.num_tasks,
                        stateful: s.is_stateful(),
                    })
                    .collect();
                assign(&members, &subtopologies, num_standby)
            }
            None => members
                .keys()
                .map(|id| (id.clone(), Tasks::default()))
                .collect(),
        };
        let mut out = Vec::new();
        for (member_id, target) in new_targets {
            if group.target_assignment(&member_id) != Some(&target) {
                out.push(StreamsGroupRecord::TargetAssignmentMember {
                    group_id: group_id.to_string(),
                    member_id,
                    value: Some(TargetAssignmentMemberValue::from(target)),
                });
            }
        }
        out.push(StreamsGroupRecord::TargetAssignmentMetadata {
            group_id: group_id.to_string(),
            value: Some(TargetAssignmentMetadataValue {
                assignment_epoch: group_epoch,
                assignment_timestamp: now_ms,
            }),
        });
        for r in out {
            self.emit(records, r);
        }
    }

    /// A member leaving (-1) or a static member leaving for now (-2).
    fn leave(
        &mut self,
        req: &StreamsGroupHeartbeatRequest,
        records: &mut Vec<StreamsGroupRecord>,
    ) -> Result<StreamsGroupHeartbeatResponse, HeartbeatError> {
        let group_id = req.group_id.as_str();
        let Some(group) = self.groups.get(group_id) else {
            return err(
                codes::GROUP_ID_NOT_FOUND,
                format!("Group {group_id} not found."),
            );
        };
        let member_id = match &req.instance_id {
            Some(instance) => {
                let Some(old) = group.static_member(instance) else {
                    return err(
                        codes::UNKNOWN_MEMBER_ID,
                        format!("Instance id {instance} is unknown."),
                    );
                };
                if old.member_id != req.member_id {
                    return err(
                        codes::FENCED_INSTANCE_ID,
                        format!(
                            "Static member {} with instance id {instance} was fenced by member {}.",
                            req.member_id, old.member_id
                        ),
                    );
                }
                old.member_id.clone()
            }
            None => {
                if group.member(&req.member_id).is_none() {
                    return err(
                        codes::UNKNOWN_MEMBER_ID,
                        format!(
                            "Member {} is not a member of group {group_id}.",
                            req.member_id
                        ),
                    );
                }
                req.member_id.clone()
            }
        };
        if req.shutdown_application {
            if let Some(g) = self.groups.get_mut(group_id) {
                g.shutdown_requested_by
                    .get_or_insert_with(|| member_id.clone());
            }
        }
        if req.member_epoch == LEAVE_GROUP_STATIC_MEMBER_EPOCH {
            // The static member keeps its place (and its session) until it comes back.
            if let Some(m) = self.groups.get(group_id).and_then(|g| g.member(&member_id)) {
                let mut left = m.clone();
                left.member_epoch = LEAVE_GROUP_STATIC_MEMBER_EPOCH;
                left.pending_revocation = Default::default();
                for partitions in left.assigned.active.values_mut() {
                    for epoch in partitions.values_mut() {
                        *epoch = 0;
                    }
                }
                self.emit(
                    records,
                    StreamsGroupRecord::CurrentAssignment {
                        group_id: group_id.to_string(),
                        member_id: member_id.clone(),
                        value: Some(left.assignment_value()),
                    },
                );
            }
            self.rebalance_timeouts
                .remove(&(group_id.to_string(), member_id.clone()));
        } else {
            self.fence_member(group_id, &member_id, records);
        }
        Ok(StreamsGroupHeartbeatResponse {
            member_id: req.member_id.clone(),
            member_epoch: req.member_epoch,
            status: Some(Vec::new()),
            ..StreamsGroupHeartbeatResponse::default()
        })
    }

    /// Removes a member (leave, session or rebalance timeout): its tombstones and a group
    /// epoch bump. The next heartbeat of another member computes the new target.
    fn fence_member(
        &mut self,
        group_id: &str,
        member_id: &str,
        records: &mut Vec<StreamsGroupRecord>,
    ) {
        for r in fence_records(group_id, member_id) {
            self.emit(records, r);
        }
        if let Some(g) = self.groups.get(group_id) {
            let value = g.metadata_value(
                g.group_epoch + 1,
                g.metadata_hash,
                g.validated_topology_epoch,
                g.last_assignment_configs.clone(),
            );
            self.emit(
                records,
                StreamsGroupRecord::GroupMetadata {
                    group_id: group_id.to_string(),
                    value: Some(value),
                },
            );
        }
        let key = (group_id.to_string(), member_id.to_string());
        self.sessions.remove(&key);
        self.rebalance_timeouts.remove(&key);
    }

    /// When [`tick`](Self::tick) next has something to do.
    pub fn next_deadline(&self) -> Option<i64> {
        let sessions = self.sessions.values().copied();
        let rebalances = self.rebalance_timeouts.values().map(|t| t.deadline_ms);
        let delays = self.initial_delays.values().copied();
        sessions.chain(rebalances).chain(delays).min()
    }

    /// Fences every member whose session expired, and every member still at the epoch in
    /// which it had to give up tasks once its rebalance timeout passed; computes the target
    /// assignment of groups whose initial rebalance delay ended.
    pub fn tick(&mut self, now_ms: i64) -> Vec<StreamsGroupAppend> {
        let mut expired: Vec<(String, String)> = self
            .sessions
            .iter()
            .filter(|(_, deadline)| **deadline <= now_ms)
            .map(|(k, _)| k.clone())
            .collect();
        let timed_out: Vec<((String, String), RebalanceTimeout)> = self
            .rebalance_timeouts
            .iter()
            .filter(|(_, t)| t.deadline_ms <= now_ms)
            .map(|(k, t)| (k.clone(), *t))
            .collect();
        for (key, t) in timed_out {
            self.rebalance_timeouts.remove(&key);
            let still_there = self
                .groups
                .get(&key.0)
                .and_then(|g| g.member(&key.1))
                .is_some_and(|m| m.member_epoch == t.epoch);
            if still_there && !expired.contains(&key) {
                expired.push(key);
            }
        }
        let mut by_group: BTreeMap<String, Vec<StreamsGroupRecord>> = BTreeMap::new();
        for (group_id, member_id) in expired {
            self.sessions.remove(&(group_id.clone(), member_id.clone()));
            let exists = self
                .groups
                .get(&group_id)
                .is_some_and(|g| g.member(&member_id).is_some());
            if !exists {
                continue;
            }
            let mut records = Vec::new();
            self.fence_member(&group_id, &member_id, &mut records);
            by_group.entry(group_id).or_default().extend(records);
        }
        let ended: Vec<String> = self
            .initial_delays
            .iter()
            .filter(|(_, deadline)| **deadline <= now_ms)
            .map(|(g, _)| g.clone())
            .collect();
        for group_id in ended {
            self.initial_delays.remove(&group_id);
            let due = self.groups.get(&group_id).and_then(|g| {
                (!g.members.is_empty()
                    && g.configured.is_some()
                    && g.group_epoch > g.assignment_epoch)
                    .then_some(g.group_epoch)
            });
            if let Some(epoch) = due {
                let mut records = Vec::new();
                self.compute_target(&group_id, epoch, now_ms, &mut records);
                by_group.entry(group_id).or_default().extend(records);
            }
        }
        let mut by_partition: BTreeMap<i32, Vec<Record>> = BTreeMap::new();
        for (group_id, records) in by_group {
            by_partition
                .entry(self.partition_for(&group_id))
                .or_default()
                .extend(records.iter().map(StreamsGroupRecord::encode));
        }
        by_partition
            .into_iter()
            .map(|(partition, records)| StreamsGroupAppend { partition, records })
            .collect()
    }

    /// Replays the streams group records of `__consumer_offsets` partition `partition` in
    /// log order (other records are skipped, as is the removed type 18) and installs the
    /// groups, replacing those in memory. Every member's session starts again at `now_ms`,
    /// and members that were giving up tasks get a fresh rebalance timeout, as Kafka does on
    /// load. Fails on the first streams group record that does not decode, changing nothing.
    pub fn load_partition<I>(
        &mut self,
        partition: i32,
        records: I,
        now_ms: i64,
    ) -> Result<usize, DecodeError>
    where
        I: IntoIterator<Item = Record>,
    {
        let mut decoded = Vec::new();
        for r in records {
            let removed_type = r.key.len() >= 2 && i16::from_be_bytes([r.key[0], r.key[1]]) == 18;
            if is_streams_group_key(&r.key) && !removed_type {
                decoded.push(StreamsGroupRecord::decode(&r.key, r.value.as_deref())?);
            }
        }
        let mut groups = BTreeMap::new();
        for r in &decoded {
            replay_into(&mut groups, r);
        }
        groups.retain(|id: &String, _| self.partition_for(id) == partition);
        let loaded = groups.len();
        for (id, group) in groups {
            self.drop_timers(&id);
            let session = i64::from(self.session_timeout_ms(&id));
            for m in group.members.values() {
                let key = (id.clone(), m.member_id.clone());
                self.sessions
                    .insert(key.clone(), now_ms.saturating_add(session));
                if m.state == MemberState::UnrevokedTasks {
                    self.rebalance_timeouts.insert(
                        key,
                        RebalanceTimeout {
                            epoch: m.member_epoch,
                            deadline_ms: now_ms
                                .saturating_add(i64::from(m.rebalance_timeout_ms.max(0))),
                        },
                    );
                }
            }
            self.groups.insert(id, group);
        }
        Ok(loaded)
    }

    fn drop_timers(&mut self, group_id: &str) {
        self.sessions.retain(|(g, _), _| g != group_id);
        self.rebalance_timeouts.retain(|(g, _), _| g != group_id);
        self.initial_delays.remove(group_id);
    }

    /// Drops every group of `partition` and its timers (leadership moved away).
    pub fn unload_partition(&mut self, partition: i32) {
        let ids: Vec<String> = self
            .groups
            .keys()
            .filter(|id| self.partition_for(id) == partition)
            .cloned()
            .collect();
        for id in ids {
            self.groups.remove(&id);
            self.drop_timers(&id);
        }
    }

    /// DeleteGroups for a streams group: only an Empty group may go (NON_EMPTY_GROUP
    /// otherwise). Returns the tombstones to append; the group is gone from memory already.
    /// The broker deletes the group's committed offsets as for a classic group; the
    /// group's internal topics stay, as in Kafka.
    pub fn delete_group(&mut self, group_id: &str) -> Result<StreamsGroupAppend, i16> {
        let Some(group) = self.groups.get(group_id) else {
            return Err(codes::GROUP_ID_NOT_FOUND);
        };
        if group.state() != StreamsGroupState::Empty {
            return Err(NON_EMPTY_GROUP);
        }
        let records = tombstones(group);
        self.groups.remove(group_id);
        self.drop_timers(group_id);
        Ok(StreamsGroupAppend {
            partition: self.partition_for(group_id),
            records: records.iter().map(StreamsGroupRecord::encode).collect(),
        })
    }

    /// StreamsGroupDescribe (API 89). Ids that are not streams groups here get
    /// GROUP_ID_NOT_FOUND "Group {id} not found."; the broker words it "Group {id} is not a
    /// streams group." for another kind of group.
    pub fn describe(&self, group_ids: &[String]) -> Vec<DescribedStreamsGroup> {
        group_ids
            .iter()
            .map(|id| match self.groups.get(id) {
                None => DescribedStreamsGroup::error(
                    id,
                    codes::GROUP_ID_NOT_FOUND,
                    format!("Group {id} not found."),
                ),
                Some(g) => DescribedStreamsGroup {
                    error_code: codes::NONE,
                    error_message: None,
                    group_id: id.clone(),
                    group_state: g.state().name().to_string(),
                    group_epoch: g.group_epoch,
                    assignment_epoch: g.assignment_epoch,
                    topology: Some(described_topology(g)),
                    members: g
                        .members
                        .values()
                        .map(|m| DescribedStreamsMember {
                            member_id: m.member_id.clone(),
                            member_epoch: m.member_epoch,
                            instance_id: m.instance_id.clone(),
                            rack_id: m.rack_id.clone(),
                            client_id: m.client_id.clone(),
                            client_host: m.client_host.clone(),
                            topology_epoch: m.topology_epoch,
                            process_id: m.process_id.clone(),
                            user_endpoint: m.user_endpoint.clone(),
                            client_tags: m
                                .client_tags
                                .iter()
                                .map(|(k, v)| (k.clone(), v.clone()))
                                .collect(),
                            assignment: m.assigned.tasks(),
                            target_assignment: g
                                .target_assignment(&m.member_id)
                                .cloned()
                                .unwrap_or_default(),
                        })
                        .collect(),
                    assignor_name: Some(STICKY.to_string()),
                },
            })
            .collect()
    }

    /// The streams groups as ListGroups lists them. The type filter is case-insensitive; a
    /// state filter is lower-cased and trimmed and compared with Kafka's lower-case names
    /// (`not_ready`, so "NotReady" matches nothing, as in Kafka).
    pub fn list_groups(
        &self,
        states_filter: &[String],
        types_filter: &[String],
    ) -> Vec<ListedStreamsGroup> {
        let keeps_type = types_filter.is_empty()
            || types_filter
                .iter()
                .any(|t| t.trim().eq_ignore_ascii_case("streams"));
        if !keeps_type {
            return Vec::new();
        }
        let wanted: BTreeSet<String> = states_filter
            .iter()
            .map(|s| s.trim().to_ascii_lowercase())
            .collect();
        self.groups
            .values()
            .filter(|g| wanted.is_empty() || wanted.contains(g.state().filter_name()))
            .map(|g| ListedStreamsGroup {
                group_id: g.group_id.clone(),
                protocol_type: "streams".to_string(),
                group_state: g.state().name().to_string(),
                group_type: "streams".to_string(),
            })
            .collect()
    }

    /// How DescribeGroups (the classic API) answers for `group_id` if it is a streams group
    /// here, as Kafka 4.4 does: Dead, and from v6 GROUP_ID_NOT_FOUND "Group {id} is not a
    /// classic group."; `None` when it is not a streams group.
    pub fn classic_describe(
        &self,
        group_id: &str,
        api_version: i16,
    ) -> Option<crate::consumer_group::ClassicDescribeAnswer> {
        self.groups.get(group_id)?;
        let (error_code, error_message) = if api_version >= 6 {
            (
                codes::GROUP_ID_NOT_FOUND,
                Some(format!("Group {group_id} is not a classic group.")),
            )
        } else {
            (codes::NONE, None)
        };
        Some(crate::consumer_group::ClassicDescribeAnswer {
            error_code,
            error_message,
            group_state: StreamsGroupState::Dead.name().to_string(),
        })
    }

    /// OffsetCommit and TxnOffsetCommit against a streams group (Kafka's
    /// `StreamsGroup.validateOffsetCommit`): `member_epoch` is the request's generation id,
    /// `offsets` the (topic, partition) pairs committed. `NotConsumerGroup` when `group_id`
    /// is not a streams group here.
    pub fn validate_offset_commit(
        &self,
        group_id: &str,
        member_id: &str,
        member_epoch: i32,
        is_transactional: bool,
        api_version: i16,
        offsets: &[(String, i32)],
    ) -> OffsetCheck {
        let Some(group) = self.groups.get(group_id) else {
            return OffsetCheck::NotConsumerGroup;
        };
        let stale = |message: String| OffsetCheck::Rejected {
            error_code: if is_transactional {
                crate::error::code::ILLEGAL_GENERATION
            } else {
                codes::STALE_MEMBER_EPOCH
            },
            message,
        };
        if member_epoch < 0 && group.members.is_empty() {
            return OffsetCheck::Accepted;
        }
        if is_transactional && member_epoch == -1 && member_id.is_empty() {
            return OffsetCheck::Accepted;
        }
        let Some(member) = group.member(member_id) else {
            return OffsetCheck::Rejected {
                error_code: codes::UNKNOWN_MEMBER_ID,
                message: format!("Member {member_id} is not a member of group {group_id}."),
            };
        };
        if !is_transactional && api_version < 9 {
            return OffsetCheck::Rejected {
                error_code: UNSUPPORTED_VERSION,
                message: "OffsetCommit version 9 or above must be used by members using the streams group protocol".to_string(),
            };
        }
        if member_epoch == member.member_epoch {
            return OffsetCheck::Accepted;
        }
        if member_epoch > member.member_epoch {
            return stale(format!(
                "Received member epoch {member_epoch} is newer than current member epoch {}.",
                member.member_epoch
            ));
        }
        if group.topology.is_none() {
            return stale("Topology is not available for offset commit validation.".to_string());
        }
        for (topic, partition) in offsets {
            let Some(subtopology) = group.subtopology_of_input(topic) else {
                return stale(format!("Topic {topic} is not in the topology."));
            };
            let epoch = member
                .assigned
                .active
                .get(subtopology)
                .and_then(|p| p.get(partition))
                .or_else(|| {
                    member
                        .pending_revocation
                        .active
                        .get(subtopology)
                        .and_then(|p| p.get(partition))
                });
            let Some(&assigned_at) = epoch else {
                return stale(format!(
                    "Task {subtopology}-{partition} is not assigned or pending revocation for member."
                ));
            };
            if member_epoch < assigned_at {
                return stale(format!(
                    "Received member epoch {member_epoch} is older than assignment epoch {assigned_at} for task {subtopology}-{partition}."
                ));
            }
        }
        OffsetCheck::Accepted
    }

    /// OffsetFetch (v9+ carries the member id and epoch) against a streams group.
    pub fn validate_offset_fetch(
        &self,
        group_id: &str,
        member_id: Option<&str>,
        member_epoch: i32,
    ) -> OffsetCheck {
        let Some(group) = self.groups.get(group_id) else {
            return OffsetCheck::NotConsumerGroup;
        };
        let member_id = match member_id {
            None if member_epoch < 0 => return OffsetCheck::Accepted,
            None => "null",
            Some(m) if m.is_empty() && member_epoch < 0 => return OffsetCheck::Accepted,
            Some(m) => m,
        };
        let Some(member) = group.member(member_id) else {
            return OffsetCheck::Rejected {
                error_code: codes::UNKNOWN_MEMBER_ID,
                message: format!("Member {member_id} is not a member of group {group_id}."),
            };
        };
        if member_epoch != member.member_epoch {
            return OffsetCheck::Rejected {
                error_code: codes::STALE_MEMBER_EPOCH,
                message: format!(
                    "The received member epoch {member_epoch} does not match the expected member epoch {}.",
                    member.member_epoch
                ),
            };
        }
        OffsetCheck::Accepted
    }

    /// OffsetDelete against a streams group: `Some(true)` when the group (not Empty) reads
    /// `topic`, so its offsets may not be deleted (GROUP_SUBSCRIBED_TO_TOPIC); `None` when
    /// `group_id` is not a streams group here.
    pub fn is_subscribed_to_topic(&self, group_id: &str, topic: &str) -> Option<bool> {
        let group = self.groups.get(group_id)?;
        Some(
            !matches!(
                group.state(),
                StreamsGroupState::Empty | StreamsGroupState::Dead
            ) && group.is_input_topic(topic),
        )
    }
}

/// Kafka's NON_EMPTY_GROUP and UNSUPPORTED_VERSION.
const NON_EMPTY_GROUP: i16 = 68;
const UNSUPPORTED_VERSION: i16 = 35;

/// The epoch check of a heartbeat from a known member (Kafka's
/// `throwIfStreamsGroupMemberEpochIsInvalid`): a newer epoch than the member's is fenced; an
/// older one is accepted only if it is the previous epoch and the member reports nothing it
/// has not got (its last answer was lost).
fn check_member_epoch(
    member: &StreamsGroupMember,
    epoch: i32,
    req: &StreamsGroupHeartbeatRequest,
) -> Result<(), HeartbeatError> {
    if epoch > member.member_epoch {
        return err(
            codes::FENCED_MEMBER_EPOCH,
            format!(
                "The streams group member has a greater member epoch ({epoch}) than the one known by the group coordinator ({}). The member must abandon all its partitions and rejoin.",
                member.member_epoch
            ),
        );
    }
    if epoch < member.member_epoch {
        let assigned = member.assigned.tasks();
        let contained = |owned: &Option<TaskMap>, have: &TaskMap| {
            owned.as_ref().is_some_and(|o| {
                o.iter()
                    .all(|(id, parts)| parts.iter().all(|p| has_task(have, id, *p)))
            })
        };
        let ok = epoch == member.previous_member_epoch
            && contained(&req.active_tasks, &assigned.active)
            && contained(&req.standby_tasks, &assigned.standby)
            && contained(&req.warmup_tasks, &assigned.warmup);
        if !ok {
            return err(
                codes::FENCED_MEMBER_EPOCH,
                format!(
                    "The streams group member has a smaller member epoch ({epoch}) than the one known by the group coordinator ({}). The member must abandon all its partitions and rejoin.",
                    member.member_epoch
                ),
            );
        }
    }
    Ok(())
}

/// The three tombstones that remove a member, in Kafka's order.
fn fence_records(group_id: &str, member_id: &str) -> [StreamsGroupRecord; 3] {
    [
        StreamsGroupRecord::CurrentAssignment {
            group_id: group_id.to_string(),
            member_id: member_id.to_string(),
            value: None,
        },
        StreamsGroupRecord::TargetAssignmentMember {
            group_id: group_id.to_string(),
            member_id: member_id.to_string(),
            value: None,
        },
        StreamsGroupRecord::MemberMetadata {
            group_id: group_id.to_string(),
            member_id: member_id.to_string(),
            value: None,
        },
    ]
}

/// Every tombstone that deletes `group`, in Kafka's order.
fn tombstones(group: &StreamsGroup) -> Vec<StreamsGroupRecord> {
    let g = group.group_id.clone();
    let mut out = Vec::new();
    for id in group.members.keys() {
        out.push(StreamsGroupRecord::CurrentAssignment {
            group_id: g.clone(),
            member_id: id.clone(),
            value: None,
        });
    }
    for id in group.target_assignment.keys() {
        out.push(StreamsGroupRecord::TargetAssignmentMember {
            group_id: g.clone(),
            member_id: id.clone(),
            value: None,
        });
    }
    out.push(StreamsGroupRecord::TargetAssignmentMetadata {
        group_id: g.clone(),
        value: None,
    });
    for id in group.members.keys() {
        out.push(StreamsGroupRecord::MemberMetadata {
            group_id: g.clone(),
            member_id: id.clone(),
            value: None,
        });
    }
    out.push(StreamsGroupRecord::GroupMetadata {
        group_id: g.clone(),
        value: None,
    });
    out.push(StreamsGroupRecord::Topology {
        group_id: g,
        value: None,
    });
    out
}

/// The topology as StreamsGroupDescribe shows it.
fn described_topology(group: &StreamsGroup) -> super::records::TopologyValue {
    use super::records::{Subtopology, TopologyValue};
    let sorted = |v: &[String]| {
        let mut v = v.to_vec();
        v.sort();
        v
    };
    let sorted_infos = |v: &[super::records::TopicInfo]| {
        let mut v = v.to_vec();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    };
    if let Some(configured) = group.configured.as_ref().filter(|c| c.is_ready()) {
        if let Some(subtopologies) = &configured.subtopologies {
            return TopologyValue {
                epoch: configured.topology_epoch,
                subtopologies: subtopologies
                    .values()
                    .map(|s| Subtopology {
                        subtopology_id: s.subtopology_id.clone(),
                        source_topics: s.source_topics.iter().cloned().collect(),
                        source_topic_regex: Vec::new(),
                        state_changelog_topics: sorted_infos(&s.state_changelog_topics),
                        repartition_sink_topics: s
                            .repartition_sink_topics
                            .iter()
                            .cloned()
                            .collect(),
                        repartition_source_topics: sorted_infos(&s.repartition_source_topics),
                        copartition_groups: Vec::new(),
                    })
                    .collect(),
            };
        }
    }
    let Some(topology) = &group.topology else {
        return TopologyValue::default();
    };
    let mut subtopologies: Vec<Subtopology> = topology
        .subtopologies
        .iter()
        .map(|s| Subtopology {
            subtopology_id: s.subtopology_id.clone(),
            source_topics: sorted(&s.source_topics),
            source_topic_regex: Vec::new(),
            state_changelog_topics: sorted_infos(&s.state_changelog_topics),
            repartition_sink_topics: sorted(&s.repartition_sink_topics),
            repartition_source_topics: sorted_infos(&s.repartition_source_topics),
            copartition_groups: Vec::new(),
        })
        .collect();
    subtopologies.sort_by(|a, b| a.subtopology_id.cmp(&b.subtopology_id));
    TopologyValue {
        epoch: topology.epoch,
        subtopologies,
    }
}

/// Where every member with an endpoint serves its tasks' partitions (for interactive
/// queries): the other members first, the requester last, one entry per member.
fn endpoints_to_partitions(group: &StreamsGroup, requester: &str) -> Vec<EndpointToPartitions> {
    let Some(subtopologies) = group
        .configured
        .as_ref()
        .and_then(|c| c.subtopologies.as_ref())
    else {
        return Vec::new();
    };
    let partitions_of = |tasks: &TaskMap| -> Vec<TopicPartitions> {
        let mut by_topic: BTreeMap<String, BTreeSet<i32>> = BTreeMap::new();
        for (id, partitions) in tasks {
            let Some(s) = subtopologies.get(id) else {
                continue;
            };
            let inputs = s
                .source_topics
                .iter()
                .cloned()
                .chain(s.repartition_source_topics.iter().map(|r| r.name.clone()));
            for topic in inputs {
                let count = s
                    .repartition_source_topics
                    .iter()
                    .find(|r| r.name == topic)
                    .map(|r| r.partitions)
                    .unwrap_or(s.num_tasks);
                let entry = by_topic.entry(topic).or_default();
                entry.extend(partitions.iter().copied().filter(|p| *p < count));
            }
        }
        by_topic
            .into_iter()
            .filter(|(_, p)| !p.is_empty())
            .map(|(topic, partitions)| TopicPartitions {
                topic,
                partitions: partitions.into_iter().collect(),
            })
            .collect()
    };
    let entry = |m: &StreamsGroupMember| {
        let endpoint = m.user_endpoint.clone()?;
        let tasks = m.assigned.tasks();
        let mut standby = tasks.standby.clone();
        for (id, partitions) in &tasks.warmup {
            standby.entry(id.clone()).or_default().extend(partitions);
        }
        Some(EndpointToPartitions {
            user_endpoint: endpoint,
            active_partitions: partitions_of(&tasks.active),
            standby_partitions: partitions_of(&standby),
        })
    };
    let mut out: Vec<EndpointToPartitions> = group
        .members
        .values()
        .filter(|m| m.member_id != requester)
        .filter_map(entry)
        .collect();
    if let Some(m) = group.member(requester) {
        out.extend(entry(m));
    }
    out
}

/// Applies one record to a map of groups: a record with a value creates its group, the
/// group metadata tombstone removes it, other tombstones of unknown groups are ignored.
fn replay_into(groups: &mut BTreeMap<String, StreamsGroup>, record: &StreamsGroupRecord) {
    let group_id = record.group_id();
    if let StreamsGroupRecord::GroupMetadata { value: None, .. } = record {
        groups.remove(group_id);
        return;
    }
    let is_tombstone = match record {
        StreamsGroupRecord::GroupMetadata { value, .. } => value.is_none(),
        StreamsGroupRecord::Topology { value, .. } => value.is_none(),
        StreamsGroupRecord::MemberMetadata { value, .. } => value.is_none(),
        StreamsGroupRecord::TargetAssignmentMetadata { value, .. } => value.is_none(),
        StreamsGroupRecord::TargetAssignmentMember { value, .. } => value.is_none(),
        StreamsGroupRecord::CurrentAssignment { value, .. } => value.is_none(),
    };
    match groups.get_mut(group_id) {
        Some(g) => g.replay(record),
        None if !is_tombstone => {
            let mut g = StreamsGroup::new(group_id);
            g.replay(record);
            groups.insert(group_id.to_string(), g);
        }
        None => {}
    }
}
