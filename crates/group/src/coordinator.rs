//! The group coordinator: every group of this broker, and the membership APIs
//! (JoinGroup, SyncGroup, Heartbeat, LeaveGroup) plus timeouts.
//!
//! Sans-I/O in the openraft style: each call takes a typed request and `now_ms`, mutates the
//! in-memory state, and returns [`Output`]s for the broker to carry out. A JoinGroup or SyncGroup
//! that must wait is *parked* under the broker's [`RequestId`]; it is answered by an `Output`
//! of a later call (another member's join, the leader's sync, a leave) or of [`tick`].
//!
//! ```text
//!  broker handler ──(RequestId, request, now)──► GroupCoordinator ──► Vec<Output>
//!  broker timer   ──(now = next_deadline())────► tick             ──► Vec<Output>
//!  Output::Respond → send;  Output::Append → write __consumer_offsets, then send `then`
//! ```
//!
//! The logic follows Kafka's classic `GroupCoordinator` (doJoinGroup, doSyncGroup,
//! onCompleteJoin, InitialDelayedJoin, removeMemberAndUpdateGroup, ...); comments name the Kafka
//! method where the behaviour is subtle.
//!
//! [`tick`]: GroupCoordinator::tick

use std::collections::BTreeMap;

use bytes::Bytes;

use crate::api::*;
use crate::error::code;
use crate::group::{DelayedJoin, Group, Member, NEW_MEMBER_JOIN_TIMEOUT_MS};
use crate::records::{group_record, partition_for_group, DEFAULT_OFFSETS_TOPIC_PARTITIONS};
use crate::state::GroupState;

/// Kafka's broker configs for groups, with Kafka's defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupConfig {
    /// `group.min.session.timeout.ms`
    pub min_session_timeout_ms: i32,
    /// `group.max.session.timeout.ms`
    pub max_session_timeout_ms: i32,
    /// `group.initial.rebalance.delay.ms`
    pub initial_rebalance_delay_ms: i32,
    /// `group.max.size` (Kafka's default is Int.MaxValue: unlimited)
    pub max_size: usize,
    /// `offset.metadata.max.bytes`
    pub offset_metadata_max_bytes: usize,
    /// `offsets.retention.minutes`, in milliseconds
    pub offsets_retention_ms: i64,
    /// `offsets.retention.check.interval.ms`
    pub offsets_retention_check_interval_ms: i64,
    /// `offsets.topic.num.partitions`
    pub offsets_topic_num_partitions: i32,
    /// Seeds generated member ids; the broker passes something random (e.g. from the clock),
    /// tests pass a constant so member ids are predictable.
    pub member_id_seed: u64,
}

impl Default for GroupConfig {
    fn default() -> Self {
        GroupConfig {
            min_session_timeout_ms: 6_000,
            max_session_timeout_ms: 1_800_000,
            initial_rebalance_delay_ms: 3_000,
            max_size: usize::MAX,
            offset_metadata_max_bytes: 4096,
            offsets_retention_ms: 10_080 * 60 * 1000,
            offsets_retention_check_interval_ms: 600_000,
            offsets_topic_num_partitions: DEFAULT_OFFSETS_TOPIC_PARTITIONS,
            member_id_seed: 0,
        }
    }
}

/// All groups this broker coordinates, keyed by group id.
#[derive(Debug)]
pub struct GroupCoordinator {
    pub(crate) config: GroupConfig,
    pub(crate) groups: BTreeMap<String, Group>,
    /// Counter behind generated member ids.
    member_id_counter: u64,
    /// When `tick` next runs the offsets retention check.
    pub(crate) next_offsets_check_ms: i64,
    /// Stands in for the log offset of the next offset-commit record this coordinator writes:
    /// above every offset loaded so far and increasing in write order, which is the order of
    /// the broker's appends. Only compared between records of one group (one partition), to
    /// apply Kafka's rule that the later record wins when a transaction commits.
    pub(crate) next_record_position: i64,
}

/// What a group-level step needs besides the group: config, clock, and where outputs go.
pub(crate) struct Cx<'a> {
    pub cfg: &'a GroupConfig,
    pub now: i64,
    pub out: &'a mut Vec<Output>,
}

impl Cx<'_> {
    pub fn respond(&mut self, request: RequestId, response: Response) {
        self.out.push(Output::Respond { request, response });
    }

    fn respond_join(&mut self, request: RequestId, response: JoinGroupResponse) {
        self.respond(request, Response::JoinGroup(response));
    }

    fn respond_sync(&mut self, request: RequestId, response: SyncGroupResponse) {
        self.respond(request, Response::SyncGroup(response));
    }

    pub fn partition(&self, group_id: &str) -> i32 {
        partition_for_group(group_id, self.cfg.offsets_topic_num_partitions)
    }
}

/// SplitMix64: a bijection on u64, so distinct counters give distinct member ids.
fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

impl GroupCoordinator {
    pub fn new(config: GroupConfig) -> GroupCoordinator {
        GroupCoordinator {
            config,
            groups: BTreeMap::new(),
            member_id_counter: 0,
            next_offsets_check_ms: i64::MIN,
            next_record_position: 0,
        }
    }

    pub fn config(&self) -> &GroupConfig {
        &self.config
    }

    /// The `__consumer_offsets` partition whose leader coordinates `group_id`.
    pub fn partition_for(&self, group_id: &str) -> i32 {
        partition_for_group(group_id, self.config.offsets_topic_num_partitions)
    }

    /// The group's state, if the group exists.
    pub fn group_state(&self, group_id: &str) -> Option<GroupState> {
        self.groups.get(group_id).map(|g| g.state)
    }

    /// `{client_id}-{uuid-like suffix}`, as Kafka builds member ids.
    fn next_member_id(&mut self, client_id: &str) -> String {
        self.member_id_counter += 1;
        let a = splitmix64(self.config.member_id_seed ^ splitmix64(self.member_id_counter));
        let b = splitmix64(a ^ self.member_id_counter);
        format!(
            "{client_id}-{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
            a >> 32,
            (a >> 16) & 0xffff,
            a & 0xffff,
            b >> 48,
            b & 0xffff_ffff_ffff
        )
    }

    /// JoinGroup (Kafka's `handleJoinGroup`). The response usually arrives later: the member
    /// is parked until the join phase completes.
    pub fn join_group(
        &mut self,
        request: RequestId,
        req: JoinGroupRequest,
        now_ms: i64,
    ) -> Vec<Output> {
        let mut out = Vec::new();
        let fail = |out: &mut Vec<Output>, member_id: &str, error: i16| {
            out.push(Output::Respond {
                request,
                response: Response::JoinGroup(JoinGroupResponse::error(member_id, error)),
            });
        };
        if req.group_id.is_empty() {
            fail(&mut out, &req.member_id, code::INVALID_GROUP_ID);
            return out;
        }
        if req.session_timeout_ms < self.config.min_session_timeout_ms
            || req.session_timeout_ms > self.config.max_session_timeout_ms
        {
            fail(&mut out, &req.member_id, code::INVALID_SESSION_TIMEOUT);
            return out;
        }
        let is_unknown_member = req.member_id.is_empty();
        if !self.groups.contains_key(&req.group_id) {
            // A known member id for a group we do not have: the group was lost or deleted.
            if !is_unknown_member {
                fail(&mut out, &req.member_id, code::UNKNOWN_MEMBER_ID);
                return out;
            }
            self.groups.insert(
                req.group_id.clone(),
                Group::new(req.group_id.clone(), now_ms),
            );
        }
        let new_member_id = is_unknown_member.then(|| self.next_member_id(&req.client_id));
        let Some(group) = self.groups.get_mut(&req.group_id) else {
            return out;
        };
        let mut cx = Cx {
            cfg: &self.config,
            now: now_ms,
            out: &mut out,
        };
        // Kafka's acceptJoiningMember: known and pending members always get in.
        let known = group.has(&req.member_id) || group.pending_members.contains_key(&req.member_id);
        let static_known = req
            .group_instance_id
            .as_ref()
            .is_some_and(|i| group.static_members.contains_key(i));
        if !known
            && !static_known
            && group.members.len() + group.pending_members.len() >= cx.cfg.max_size
        {
            fail(cx.out, &req.member_id, code::GROUP_MAX_SIZE_REACHED);
            return out;
        }
        match new_member_id {
            Some(id) => group.new_member_join(request, id, &req, &mut cx),
            None => group.current_member_join(request, &req, &mut cx),
        }
        if group.state == GroupState::PreparingRebalance {
            group.try_complete_join(&mut cx);
        }
        out
    }

    /// SyncGroup (Kafka's `doSyncGroup`). Followers are parked until the leader's assignment
    /// is stored; the leader's call returns an `Append` whose `then` answers everyone parked.
    pub fn sync_group(
        &mut self,
        request: RequestId,
        req: SyncGroupRequest,
        now_ms: i64,
    ) -> Vec<Output> {
        let mut out = Vec::new();
        let mut cx = Cx {
            cfg: &self.config,
            now: now_ms,
            out: &mut out,
        };
        if req.group_id.is_empty() {
            cx.respond_sync(request, SyncGroupResponse::error(code::INVALID_GROUP_ID));
            return out;
        }
        let Some(group) = self.groups.get_mut(&req.group_id) else {
            cx.respond_sync(request, SyncGroupResponse::error(code::UNKNOWN_MEMBER_ID));
            return out;
        };
        if let Err(error) = group.check_sync(&req) {
            cx.respond_sync(request, SyncGroupResponse::error(error));
            return out;
        }
        match group.state {
            GroupState::Empty | GroupState::Dead => {
                cx.respond_sync(request, SyncGroupResponse::error(code::UNKNOWN_MEMBER_ID));
            }
            GroupState::PreparingRebalance => {
                cx.respond_sync(
                    request,
                    SyncGroupResponse::error(code::REBALANCE_IN_PROGRESS),
                );
            }
            GroupState::CompletingRebalance => {
                let Some(member) = group.member_mut(&req.member_id) else {
                    return out;
                };
                if let Some(old) = member.awaiting_sync.replace(request) {
                    // A retried SyncGroup replaces the earlier one, which the client gave up on.
                    cx.respond_sync(old, SyncGroupResponse::error(code::REBALANCE_IN_PROGRESS));
                }
                group.remove_pending_sync(&req.member_id);
                if group.is_leader(&req.member_id) {
                    let assignments: BTreeMap<String, Bytes> =
                        req.assignments.into_iter().collect();
                    let then = group.set_and_propagate_assignment(&assignments, &mut cx);
                    group.transition_to(GroupState::Stable, now_ms);
                    let partition = cx.partition(&group.group_id);
                    let record = group_record(&group.group_id, Some(&group.metadata_value()));
                    cx.out.push(Output::Append {
                        partition,
                        records: vec![record],
                        then,
                        transaction: None,
                    });
                }
            }
            GroupState::Stable => {
                group.remove_pending_sync(&req.member_id);
                let protocol_type = group.protocol_type.clone();
                let protocol_name = group.protocol_name.clone();
                if let Some(member) = group.member_mut(&req.member_id) {
                    member.heartbeat_deadline_ms = now_ms + i64::from(member.session_timeout_ms);
                    let response = SyncGroupResponse {
                        error_code: code::NONE,
                        protocol_type,
                        protocol_name,
                        assignment: member.assignment.clone(),
                    };
                    cx.respond_sync(request, response);
                }
            }
        }
        out
    }

    /// Heartbeat (Kafka's `handleHeartbeat`): never parked, so it answers directly.
    pub fn heartbeat(&mut self, req: &HeartbeatRequest, now_ms: i64) -> HeartbeatResponse {
        let error_code = self.heartbeat_error(req, now_ms);
        HeartbeatResponse { error_code }
    }

    fn heartbeat_error(&mut self, req: &HeartbeatRequest, now_ms: i64) -> i16 {
        if req.group_id.is_empty() {
            return code::INVALID_GROUP_ID;
        }
        let Some(group) = self.groups.get_mut(&req.group_id) else {
            return code::UNKNOWN_MEMBER_ID;
        };
        if group.state == GroupState::Dead {
            return code::COORDINATOR_NOT_AVAILABLE;
        }
        if let Err(error) = group.validate_member(&req.member_id, req.group_instance_id.as_deref())
        {
            return error;
        }
        if req.generation_id != group.generation_id {
            return code::ILLEGAL_GENERATION;
        }
        let state = group.state;
        if state == GroupState::Empty {
            return code::UNKNOWN_MEMBER_ID;
        }
        if let Some(member) = group.member_mut(&req.member_id) {
            member.heartbeat_deadline_ms = now_ms + i64::from(member.session_timeout_ms);
        }
        if state == GroupState::PreparingRebalance {
            // The signal that makes members rejoin.
            code::REBALANCE_IN_PROGRESS
        } else {
            code::NONE
        }
    }

    /// LeaveGroup, batch form (v3+; older versions pass one identity). Answers immediately;
    /// the leave may also complete a pending join phase (more outputs).
    pub fn leave_group(
        &mut self,
        request: RequestId,
        req: LeaveGroupRequest,
        now_ms: i64,
    ) -> Vec<Output> {
        let mut out = Vec::new();
        let mut cx = Cx {
            cfg: &self.config,
            now: now_ms,
            out: &mut out,
        };
        let member_error = |m: &MemberIdentity, error_code: i16| LeaveMemberResponse {
            member_id: m.member_id.clone(),
            group_instance_id: m.group_instance_id.clone(),
            error_code,
        };
        let top_level = |error_code: i16, members: Vec<LeaveMemberResponse>| {
            Response::LeaveGroup(LeaveGroupResponse {
                error_code,
                members,
            })
        };
        if req.group_id.is_empty() {
            cx.respond(request, top_level(code::INVALID_GROUP_ID, Vec::new()));
            return out;
        }
        let Some(group) = self.groups.get_mut(&req.group_id) else {
            let members = req
                .members
                .iter()
                .map(|m| member_error(m, code::UNKNOWN_MEMBER_ID))
                .collect();
            cx.respond(request, top_level(code::NONE, members));
            return out;
        };
        if group.state == GroupState::Dead {
            cx.respond(
                request,
                top_level(code::COORDINATOR_NOT_AVAILABLE, Vec::new()),
            );
            return out;
        }
        let mut results = Vec::with_capacity(req.members.len());
        for m in &req.members {
            let error = if m.member_id.is_empty() {
                // Administrative removal by group.instance.id alone.
                let current = m
                    .group_instance_id
                    .as_ref()
                    .and_then(|i| group.static_members.get(i))
                    .cloned();
                match current {
                    Some(member_id) => {
                        group.remove_member_and_update(&member_id, &mut cx);
                        code::NONE
                    }
                    None => code::UNKNOWN_MEMBER_ID,
                }
            } else if group.pending_members.contains_key(&m.member_id) {
                group.remove_pending_member_and_update(&m.member_id, &mut cx);
                code::NONE
            } else {
                match group.validate_member(&m.member_id, m.group_instance_id.as_deref()) {
                    Ok(()) => {
                        group.remove_member_and_update(&m.member_id, &mut cx);
                        code::NONE
                    }
                    Err(error) => error,
                }
            };
            results.push(member_error(m, error));
        }
        cx.respond(request, top_level(code::NONE, results));
        out
    }

    /// The earliest `now_ms` at which [`tick`](Self::tick) has something to do.
    pub fn next_deadline(&self) -> Option<i64> {
        let groups = self.groups.values().filter_map(Group::next_deadline).min();
        let offsets = self
            .groups
            .values()
            .any(|g| g.has_offsets() || g.state == GroupState::Empty)
            .then_some(self.next_offsets_check_ms.max(0));
        groups.into_iter().chain(offsets).min()
    }

    /// Expires what is due at `now_ms`: pending members, member sessions, join phases
    /// (rebalance timeout and the initial delay), the sync phase, and old offsets.
    pub fn tick(&mut self, now_ms: i64) -> Vec<Output> {
        self.tick_keeping(now_ms, &|_, _| false)
    }

    /// When `tick` next checks offsets for expiry (it moves each time a check runs).
    pub fn next_offsets_check_ms(&self) -> i64 {
        self.next_offsets_check_ms
    }

    /// [`tick`](Self::tick), keeping every offset of `(group, topic)` for which `keep` is
    /// true however old it is: the broker passes the subscriptions of KIP-848 consumer groups
    /// (whose state lives in the consumer group core; their offsets live here), whose offsets
    /// expire only for topics they no longer subscribe to (Kafka's `cleanupExpiredOffsets`).
    pub fn tick_keeping(&mut self, now_ms: i64, keep: &dyn Fn(&str, &str) -> bool) -> Vec<Output> {
        let mut out = Vec::new();
        {
            let mut cx = Cx {
                cfg: &self.config,
                now: now_ms,
                out: &mut out,
            };
            for group in self.groups.values_mut() {
                group.expire(&mut cx);
            }
        }
        if now_ms >= self.next_offsets_check_ms {
            self.next_offsets_check_ms =
                now_ms.saturating_add(self.config.offsets_retention_check_interval_ms);
            self.expire_offsets(now_ms, keep, &mut out);
        }
        out
    }
}

impl Group {
    /// Kafka's `doNewMemberJoinGroup`.
    fn new_member_join(
        &mut self,
        request: RequestId,
        new_member_id: String,
        req: &JoinGroupRequest,
        cx: &mut Cx<'_>,
    ) {
        if self.state == GroupState::Dead {
            let resp = JoinGroupResponse::error("", code::COORDINATOR_NOT_AVAILABLE);
            return cx.respond_join(request, resp);
        }
        if !self.supports_protocols(&req.protocol_type, &req.protocols) {
            let resp = JoinGroupResponse::error("", code::INCONSISTENT_GROUP_PROTOCOL);
            return cx.respond_join(request, resp);
        }
        if let Some(instance) = &req.group_instance_id {
            match self.static_members.get(instance).cloned() {
                Some(old_id) => {
                    self.update_static_member_and_rebalance(request, old_id, new_member_id, req, cx)
                }
                None => self.add_member_and_rebalance(request, new_member_id, req, cx),
            }
        } else if req.require_known_member_id {
            // KIP-394: hand out the id first, so a client that never comes back costs only a
            // pending entry (expiring after the session timeout), not a rebalance.
            let deadline = cx.now + i64::from(req.session_timeout_ms);
            self.pending_members.insert(new_member_id.clone(), deadline);
            let resp = JoinGroupResponse::error(&new_member_id, code::MEMBER_ID_REQUIRED);
            cx.respond_join(request, resp);
        } else {
            self.add_member_and_rebalance(request, new_member_id, req, cx);
        }
    }

    /// Kafka's `doCurrentMemberJoinGroup`.
    fn current_member_join(&mut self, request: RequestId, req: &JoinGroupRequest, cx: &mut Cx<'_>) {
        let member_id = req.member_id.as_str();
        if self.state == GroupState::Dead {
            let resp = JoinGroupResponse::error(member_id, code::COORDINATOR_NOT_AVAILABLE);
            return cx.respond_join(request, resp);
        }
        if !self.supports_protocols(&req.protocol_type, &req.protocols) {
            let resp = JoinGroupResponse::error(member_id, code::INCONSISTENT_GROUP_PROTOCOL);
            return cx.respond_join(request, resp);
        }
        if self.pending_members.contains_key(member_id) {
            if req.group_instance_id.is_some() {
                // Static members never get MEMBER_ID_REQUIRED; Kafka treats this as a bug.
                let resp = JoinGroupResponse::error(member_id, code::UNKNOWN_MEMBER_ID);
                return cx.respond_join(request, resp);
            }
            return self.add_member_and_rebalance(request, member_id.to_string(), req, cx);
        }
        if let Err(error) = self.validate_member(member_id, req.group_instance_id.as_deref()) {
            return cx.respond_join(request, JoinGroupResponse::error(member_id, error));
        }
        let matches = self
            .member(member_id)
            .is_some_and(|m| m.matches(&req.protocols));
        match self.state {
            GroupState::PreparingRebalance => self.update_member_and_rebalance(request, req, cx),
            GroupState::CompletingRebalance if matches => {
                // Probably a retry after a lost JoinGroup response: same generation again.
                let resp = self.current_join_response(member_id, self.leader_id.clone());
                cx.respond_join(request, resp);
            }
            GroupState::Stable if matches && !self.is_leader(member_id) => {
                let resp = self.current_join_response(member_id, self.leader_id.clone());
                cx.respond_join(request, resp);
            }
            // The leader rejoining in Stable forces a rebalance: it may want to reassign.
            GroupState::CompletingRebalance | GroupState::Stable => {
                self.update_member_and_rebalance(request, req, cx)
            }
            GroupState::Empty | GroupState::Dead => cx.respond_join(
                request,
                JoinGroupResponse::error(member_id, code::UNKNOWN_MEMBER_ID),
            ),
        }
    }

    /// The current generation as a JoinGroup response; only the leader gets the members.
    fn current_join_response(&self, member_id: &str, leader: Option<String>) -> JoinGroupResponse {
        JoinGroupResponse {
            error_code: code::NONE,
            generation_id: self.generation_id,
            protocol_type: self.protocol_type.clone(),
            protocol_name: self.protocol_name.clone(),
            leader: leader.unwrap_or_default(),
            member_id: member_id.to_string(),
            members: if self.is_leader(member_id) {
                self.current_member_metadata()
            } else {
                Vec::new()
            },
        }
    }

    fn add_member_and_rebalance(
        &mut self,
        request: RequestId,
        member_id: String,
        req: &JoinGroupRequest,
        cx: &mut Cx<'_>,
    ) {
        let member = Member {
            member_id,
            group_instance_id: req.group_instance_id.clone(),
            client_id: req.client_id.clone(),
            client_host: req.client_host.clone(),
            session_timeout_ms: req.session_timeout_ms,
            rebalance_timeout_ms: effective_rebalance_timeout(req),
            protocol_type: req.protocol_type.clone(),
            protocols: req.protocols.clone(),
            assignment: Bytes::new(),
            assignment_generation: -1,
            awaiting_join: Some(request),
            awaiting_sync: None,
            heartbeat_deadline_ms: cx.now + NEW_MEMBER_JOIN_TIMEOUT_MS,
            is_new: true,
        };
        // A member arriving during the initial delay of a new group extends the delay.
        if self.state == GroupState::PreparingRebalance && self.generation_id == 0 {
            self.new_member_added = true;
        }
        self.add_member(member);
        self.maybe_prepare_rebalance(cx);
    }

    fn update_member_and_rebalance(
        &mut self,
        request: RequestId,
        req: &JoinGroupRequest,
        cx: &mut Cx<'_>,
    ) {
        if let Some(member) = self.member_mut(&req.member_id) {
            update_member(member, req);
            if let Some(old) = member.awaiting_join.replace(request) {
                // The client gave up on its earlier JoinGroup and sent this one.
                let resp = JoinGroupResponse::error(&req.member_id, code::REBALANCE_IN_PROGRESS);
                cx.respond_join(old, resp);
            }
        }
        self.maybe_prepare_rebalance(cx);
    }

    /// KIP-345: a static member came back with a new member id. The old id is fenced; in a
    /// Stable group with unchanged protocol selection no rebalance happens.
    fn update_static_member_and_rebalance(
        &mut self,
        request: RequestId,
        old_id: String,
        new_id: String,
        req: &JoinGroupRequest,
        cx: &mut Cx<'_>,
    ) {
        // Kafka answers with the leader as it was before the replacement, so a rejoining
        // static leader does not believe it must compute (and lose) a new assignment.
        let current_leader = self.leader_id.clone();
        let Some(member) = self.member_mut(&old_id) else {
            return;
        };
        if let Some(r) = member.awaiting_join.take() {
            cx.respond_join(
                r,
                JoinGroupResponse::error(&old_id, code::FENCED_INSTANCE_ID),
            );
        }
        if let Some(r) = member.awaiting_sync.take() {
            cx.respond_sync(r, SyncGroupResponse::error(code::FENCED_INSTANCE_ID));
        }
        member.member_id = new_id.clone();
        update_member(member, req);
        member.awaiting_join = Some(request);
        if let Some(instance) = &req.group_instance_id {
            self.static_members.insert(instance.clone(), new_id.clone());
        }
        if self.is_leader(&old_id) {
            self.leader_id = Some(new_id.clone());
        }
        if self.pending_sync.remove(&old_id) {
            self.pending_sync.insert(new_id.clone());
        }
        match self.state {
            GroupState::Stable => {
                if self.select_protocol() == self.protocol_name {
                    let now = cx.now;
                    if let Some(member) = self.member_mut(&new_id) {
                        member.awaiting_join = None;
                        member.heartbeat_deadline_ms = now + i64::from(member.session_timeout_ms);
                    }
                    let resp = self.current_join_response(&new_id, current_leader);
                    let record = group_record(&self.group_id, Some(&self.metadata_value()));
                    cx.out.push(Output::Append {
                        partition: cx.partition(&self.group_id),
                        records: vec![record],
                        then: vec![(request, Response::JoinGroup(resp))],
                        transaction: None,
                    });
                } else {
                    self.maybe_prepare_rebalance(cx);
                }
            }
            // The leader may already have been told about the old member id: its assignment
            // would not match the new one, so start over.
            GroupState::CompletingRebalance => self.prepare_rebalance(cx),
            GroupState::PreparingRebalance | GroupState::Empty | GroupState::Dead => {}
        }
    }

    /// Checks shared by SyncGroup in every state (Kafka's `doSyncGroup` preamble).
    fn check_sync(&self, req: &SyncGroupRequest) -> Result<(), i16> {
        if self.state == GroupState::Dead {
            return Err(code::COORDINATOR_NOT_AVAILABLE);
        }
        self.validate_member(&req.member_id, req.group_instance_id.as_deref())?;
        if req.generation_id != self.generation_id {
            return Err(code::ILLEGAL_GENERATION);
        }
        if req.protocol_type.is_some() && req.protocol_type != self.protocol_type {
            return Err(code::INCONSISTENT_GROUP_PROTOCOL);
        }
        if req.protocol_name.is_some() && req.protocol_name != self.protocol_name {
            return Err(code::INCONSISTENT_GROUP_PROTOCOL);
        }
        Ok(())
    }

    fn remove_pending_sync(&mut self, member_id: &str) {
        self.pending_sync.remove(member_id);
        if self.pending_sync.is_empty() {
            self.sync_deadline_ms = None;
        }
    }

    pub(crate) fn maybe_prepare_rebalance(&mut self, cx: &mut Cx<'_>) {
        if matches!(
            self.state,
            GroupState::Stable | GroupState::CompletingRebalance | GroupState::Empty
        ) {
            self.prepare_rebalance(cx);
        }
    }

    /// Kafka's `prepareRebalance`: answer parked syncs, start the join phase's timer.
    fn prepare_rebalance(&mut self, cx: &mut Cx<'_>) {
        if self.state == GroupState::CompletingRebalance {
            self.reset_and_propagate_assignment_error(code::REBALANCE_IN_PROGRESS, cx);
        }
        self.pending_sync.clear();
        self.sync_deadline_ms = None;
        let rebalance_timeout = self.rebalance_timeout_ms();
        self.delayed_join = Some(if self.state == GroupState::Empty {
            let delay = i64::from(cx.cfg.initial_rebalance_delay_ms);
            DelayedJoin {
                deadline_ms: cx.now + delay,
                initial_remaining_ms: Some((rebalance_timeout - delay).max(0)),
            }
        } else {
            DelayedJoin {
                deadline_ms: cx.now + rebalance_timeout,
                initial_remaining_ms: None,
            }
        });
        self.transition_to(GroupState::PreparingRebalance, cx.now);
        self.try_complete_join(cx);
    }

    /// DelayedJoin's `tryComplete`: the initial delay only completes by expiring.
    pub(crate) fn try_complete_join(&mut self, cx: &mut Cx<'_>) {
        if self.state != GroupState::PreparingRebalance {
            return;
        }
        let initial = self
            .delayed_join
            .is_some_and(|d| d.initial_remaining_ms.is_some());
        if !initial && self.has_all_members_joined() {
            self.on_complete_join(cx);
        }
    }

    /// Kafka's `onCompleteJoin`: drop dynamic members that did not rejoin, start the next
    /// generation, and answer every parked JoinGroup.
    fn on_complete_join(&mut self, cx: &mut Cx<'_>) {
        self.delayed_join = None;
        let not_rejoined: Vec<String> = self
            .members
            .iter()
            .filter(|m| m.awaiting_join.is_none() && m.group_instance_id.is_none())
            .map(|m| m.member_id.clone())
            .collect();
        for id in not_rejoined {
            self.remove_member(&id);
        }
        if !self.maybe_elect_new_joined_leader() && !self.members.is_empty() {
            // Only static members that did not rejoin are left: wait for them (or for their
            // sessions to expire) another rebalance timeout.
            self.delayed_join = Some(DelayedJoin {
                deadline_ms: cx.now + self.rebalance_timeout_ms(),
                initial_remaining_ms: None,
            });
            return;
        }
        self.init_next_generation(cx.now);
        if self.state == GroupState::Empty {
            let record = group_record(&self.group_id, Some(&self.metadata_value()));
            cx.out.push(Output::Append {
                partition: cx.partition(&self.group_id),
                records: vec![record],
                then: Vec::new(),
                transaction: None,
            });
            return;
        }
        let responses: Vec<(RequestId, JoinGroupResponse)> = self
            .members
            .iter()
            .filter_map(|m| {
                let r = m.awaiting_join?;
                Some((
                    r,
                    self.current_join_response(&m.member_id, self.leader_id.clone()),
                ))
            })
            .collect();
        for m in &mut self.members {
            m.awaiting_join = None;
            m.is_new = false;
            m.heartbeat_deadline_ms = cx.now + i64::from(m.session_timeout_ms);
        }
        for (r, resp) in responses {
            cx.respond_join(r, resp);
        }
        // Members that never send SyncGroup are removed after the rebalance timeout.
        self.pending_sync = self.members.iter().map(|m| m.member_id.clone()).collect();
        self.sync_deadline_ms = Some(cx.now + self.rebalance_timeout_ms());
    }

    /// Keep the leader if it rejoined, else pick the oldest member that did.
    fn maybe_elect_new_joined_leader(&mut self) -> bool {
        let Some(leader) = self.leader_id.clone() else {
            return false;
        };
        if self
            .member(&leader)
            .is_some_and(|m| m.awaiting_join.is_some())
        {
            return true;
        }
        match self.members.iter().find(|m| m.awaiting_join.is_some()) {
            Some(m) => {
                self.leader_id = Some(m.member_id.clone());
                true
            }
            None => false,
        }
    }

    fn init_next_generation(&mut self, now: i64) {
        self.generation_id += 1;
        if self.members.is_empty() {
            self.protocol_name = None;
            self.transition_to(GroupState::Empty, now);
        } else {
            self.protocol_name = self.select_protocol();
            self.transition_to(GroupState::CompletingRebalance, now);
        }
        self.subscribed_topics = self.compute_subscribed_topics();
        self.pending_sync.clear();
        self.sync_deadline_ms = None;
    }

    fn reset_and_propagate_assignment_error(&mut self, error: i16, cx: &mut Cx<'_>) {
        for m in &mut self.members {
            m.assignment = Bytes::new();
            m.assignment_generation = -1;
            if let Some(r) = m.awaiting_sync.take() {
                // Its session was on hold while parked; restart it (Kafka's propagateAssignment).
                m.heartbeat_deadline_ms = cx.now + i64::from(m.session_timeout_ms);
                cx.respond_sync(r, SyncGroupResponse::error(error));
            }
        }
    }

    /// Stores the leader's assignment (missing members get an empty one) and returns the
    /// responses for the parked SyncGroups, to be sent once the group record is appended.
    fn set_and_propagate_assignment(
        &mut self,
        assignments: &BTreeMap<String, Bytes>,
        cx: &mut Cx<'_>,
    ) -> Vec<(RequestId, Response)> {
        let mut then = Vec::new();
        for m in &mut self.members {
            m.assignment = assignments.get(&m.member_id).cloned().unwrap_or_default();
            m.assignment_generation = self.generation_id;
            if let Some(r) = m.awaiting_sync.take() {
                m.heartbeat_deadline_ms = cx.now + i64::from(m.session_timeout_ms);
                let resp = SyncGroupResponse {
                    error_code: code::NONE,
                    protocol_type: self.protocol_type.clone(),
                    protocol_name: self.protocol_name.clone(),
                    assignment: m.assignment.clone(),
                };
                then.push((r, Response::SyncGroup(resp)));
            }
        }
        then
    }

    /// Kafka's `removeMemberAndUpdateGroup`.
    pub(crate) fn remove_member_and_update(&mut self, member_id: &str, cx: &mut Cx<'_>) {
        let Some(member) = self.remove_member(member_id) else {
            return;
        };
        if let Some(r) = member.awaiting_join {
            cx.respond_join(
                r,
                JoinGroupResponse::error(member_id, code::UNKNOWN_MEMBER_ID),
            );
        }
        if let Some(r) = member.awaiting_sync {
            cx.respond_sync(r, SyncGroupResponse::error(code::UNKNOWN_MEMBER_ID));
        }
        match self.state {
            GroupState::Dead | GroupState::Empty => {}
            GroupState::Stable | GroupState::CompletingRebalance => {
                self.maybe_prepare_rebalance(cx)
            }
            GroupState::PreparingRebalance => self.try_complete_join(cx),
        }
    }

    fn remove_pending_member_and_update(&mut self, member_id: &str, cx: &mut Cx<'_>) {
        self.pending_members.remove(member_id);
        if self.state == GroupState::PreparingRebalance {
            self.try_complete_join(cx);
        }
    }

    /// Everything `tick` does for one group at `cx.now`.
    fn expire(&mut self, cx: &mut Cx<'_>) {
        let now = cx.now;
        let pending: Vec<String> = self
            .pending_members
            .iter()
            .filter(|(_, deadline)| **deadline <= now)
            .map(|(id, _)| id.clone())
            .collect();
        for id in pending {
            self.remove_pending_member_and_update(&id, cx);
        }
        let expired: Vec<String> = self
            .members
            .iter()
            .filter(|m| m.session_expired(now))
            .map(|m| m.member_id.clone())
            .collect();
        for id in expired {
            self.remove_member_and_update(&id, cx);
        }
        // Bounded: each pass either completes the join or moves the deadline forward.
        for _ in 0..64 {
            match self.delayed_join {
                Some(dj)
                    if dj.deadline_ms <= now && self.state == GroupState::PreparingRebalance =>
                {
                    self.on_delayed_join_expired(dj, cx)
                }
                _ => break,
            }
        }
        if let Some(deadline) = self.sync_deadline_ms {
            if deadline <= now {
                self.on_sync_expired(cx);
            }
        }
    }

    /// InitialDelayedJoin / DelayedJoin `onComplete` on expiry.
    fn on_delayed_join_expired(&mut self, dj: DelayedJoin, cx: &mut Cx<'_>) {
        match dj.initial_remaining_ms {
            Some(remaining) if self.new_member_added && remaining != 0 => {
                self.new_member_added = false;
                let delay = i64::from(cx.cfg.initial_rebalance_delay_ms).min(remaining);
                // From the old deadline, not `now`: a late tick must not stretch the delay.
                self.delayed_join = Some(DelayedJoin {
                    deadline_ms: dj.deadline_ms + delay,
                    initial_remaining_ms: Some((remaining - delay).max(0)),
                });
            }
            _ => self.on_complete_join(cx),
        }
    }

    /// Members that got their JoinGroup response but never sent SyncGroup in time are removed
    /// (Kafka's `onExpirePendingSync`).
    fn on_sync_expired(&mut self, cx: &mut Cx<'_>) {
        self.sync_deadline_ms = None;
        if !matches!(
            self.state,
            GroupState::CompletingRebalance | GroupState::Stable
        ) {
            return;
        }
        let laggards: Vec<String> = std::mem::take(&mut self.pending_sync).into_iter().collect();
        if laggards.is_empty() {
            return;
        }
        for id in &laggards {
            if let Some(m) = self.remove_member(id) {
                if let Some(r) = m.awaiting_join {
                    cx.respond_join(r, JoinGroupResponse::error(id, code::UNKNOWN_MEMBER_ID));
                }
            }
        }
        self.maybe_prepare_rebalance(cx);
    }
}

fn effective_rebalance_timeout(req: &JoinGroupRequest) -> i32 {
    // JoinGroup v0 has no rebalance timeout; Kafka uses the session timeout.
    if req.rebalance_timeout_ms > 0 {
        req.rebalance_timeout_ms
    } else {
        req.session_timeout_ms
    }
}

fn update_member(member: &mut Member, req: &JoinGroupRequest) {
    member.protocols = req.protocols.clone();
    member.session_timeout_ms = req.session_timeout_ms;
    member.rebalance_timeout_ms = effective_rebalance_timeout(req);
}
