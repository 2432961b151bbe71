//! The consumer group coordinator (Kafka's `GroupMetadataManager` for groups of type
//! "consumer"): ConsumerGroupHeartbeat, session and rebalance timeouts, loading, describing,
//! listing, deleting, and the offset checks.
//!
//! ```text
//!  heartbeat(request, topics, now)
//!    validate ─► leave (-1 / -2) ─► fence: tombstones, group epoch + 1
//!             └► join / heartbeat:
//!                1. member: create or update; record if it changed; group epoch + 1 when the
//!                   subscription or the subscribed topics' metadata changed
//!                2. group epoch > target assignment epoch: run the assignor, record the new
//!                   target (changed members + epoch)
//!                3. reconcile the member towards its target (revoke first, then assign what
//!                   nobody else owns), record its new current assignment
//!    ─► records (each replayed into the state at once) + response
//!  tick(now, topics) ─► fence members whose session or rebalance timeout passed
//! ```
//! Every change to a group goes through a record replayed by [`ConsumerGroup::replay`], so
//! what a loading coordinator rebuilds from the log is what the live one had. Timers are not
//! persisted: a load restarts every member's session.

use std::collections::BTreeMap;

use super::api::*;
use super::assignor::{build_target_assignment, regex_subscribes, AssignorName};
use super::group::{
    current_assignment_record, member_metadata_record, metadata_differs, ConsumerGroup,
    ConsumerGroupState,
};
use super::member::{
    ConsumerGroupMember, MemberState, JOIN_GROUP_MEMBER_EPOCH, LEAVE_GROUP_MEMBER_EPOCH,
    LEAVE_GROUP_STATIC_MEMBER_EPOCH,
};
use super::reconcile::reconcile;
use super::records::{is_consumer_group_key, ConsumerGroupRecord};
use super::topics::{TopicMetadata, TopicPartitions, TopicsView};
use crate::error::DecodeError;
use crate::records::{partition_for_group, Record, DEFAULT_OFFSETS_TOPIC_PARTITIONS};

/// The broker configs of consumer groups, with Kafka's defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerGroupConfig {
    /// `group.consumer.session.timeout.ms`
    pub session_timeout_ms: i32,
    /// `group.consumer.heartbeat.interval.ms`
    pub heartbeat_interval_ms: i32,
    /// `group.consumer.max.size`
    pub max_size: usize,
    /// `group.consumer.assignors`; the first is the default.
    pub assignors: Vec<AssignorName>,
    /// `offsets.topic.num.partitions`
    pub offsets_topic_num_partitions: i32,
    /// Seeds the member ids generated for v0 heartbeats that come without one.
    pub member_id_seed: u64,
    /// `group.consumer.migration.policy`: which online migrations between the classic and
    /// the consumer protocol are allowed.
    pub migration_policy: MigrationPolicy,
    /// `group.max.size` (of classic groups): a larger consumer group is not downgraded.
    pub classic_max_size: usize,
}

/// A consumer group's own settings (its GROUP configs `consumer.session.timeout.ms` and
/// `consumer.heartbeat.interval.ms`, KIP-848), over the broker's [`ConsumerGroupConfig`]. As in
/// Kafka's `GroupMetadataManager`, each heartbeat reads them: a change reaches a live group at
/// its members' next heartbeats (the interval in the answer, the session deadline set then).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ConsumerGroupOverrides {
    pub session_timeout_ms: Option<i32>,
    pub heartbeat_interval_ms: Option<i32>,
}

/// `group.consumer.migration.policy` (Kafka's `ConsumerGroupMigrationPolicy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MigrationPolicy {
    Disabled,
    Downgrade,
    Upgrade,
    #[default]
    Bidirectional,
}

impl MigrationPolicy {
    /// The config value, case-insensitive.
    pub fn parse(value: &str) -> Option<MigrationPolicy> {
        match value.trim().to_ascii_lowercase().as_str() {
            "disabled" => Some(MigrationPolicy::Disabled),
            "downgrade" => Some(MigrationPolicy::Downgrade),
            "upgrade" => Some(MigrationPolicy::Upgrade),
            "bidirectional" => Some(MigrationPolicy::Bidirectional),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            MigrationPolicy::Disabled => "disabled",
            MigrationPolicy::Downgrade => "downgrade",
            MigrationPolicy::Upgrade => "upgrade",
            MigrationPolicy::Bidirectional => "bidirectional",
        }
    }

    pub fn is_upgrade_enabled(self) -> bool {
        matches!(
            self,
            MigrationPolicy::Upgrade | MigrationPolicy::Bidirectional
        )
    }

    pub fn is_downgrade_enabled(self) -> bool {
        matches!(
            self,
            MigrationPolicy::Downgrade | MigrationPolicy::Bidirectional
        )
    }
}

impl Default for ConsumerGroupConfig {
    fn default() -> Self {
        ConsumerGroupConfig {
            session_timeout_ms: 45_000,
            heartbeat_interval_ms: 5_000,
            max_size: i32::MAX as usize,
            assignors: vec![AssignorName::Uniform, AssignorName::Range],
            offsets_topic_num_partitions: DEFAULT_OFFSETS_TOPIC_PARTITIONS,
            member_id_seed: 0,
            migration_policy: MigrationPolicy::Bidirectional,
            classic_max_size: usize::MAX,
        }
    }
}

/// An error answer of a heartbeat (Kafka throws these as `ApiException`s).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct HeartbeatError {
    pub(super) code: i16,
    pub(super) message: String,
}

pub(super) fn err<T>(code: i16, message: impl Into<String>) -> Result<T, HeartbeatError> {
    Err(HeartbeatError {
        code,
        message: message.into(),
    })
}

/// A member's pending rebalance timeout: fence it if it is still at `epoch` at `deadline_ms`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct RebalanceTimeout {
    epoch: i32,
    deadline_ms: i64,
}

/// Every consumer group this broker coordinates.
#[derive(Debug)]
pub struct ConsumerGroupCoordinator {
    pub(super) config: ConsumerGroupConfig,
    pub(super) groups: BTreeMap<String, ConsumerGroup>,
    /// (group, member) → when its session expires.
    pub(super) sessions: BTreeMap<(String, String), i64>,
    /// (group, member) → its revocation deadline.
    pub(super) rebalance_timeouts: BTreeMap<(String, String), RebalanceTimeout>,
    member_id_counter: u64,
    /// Subscription regexes, compiled anchored (`None`: not a valid regex).
    regexes: BTreeMap<String, Option<regex::Regex>>,
    /// (group, classic member) → when it is fenced unless it sends JoinGroup (after it was
    /// told to rejoin) or SyncGroup (after its JoinGroup): Kafka's join and sync timeouts.
    pub(super) classic_deadlines: BTreeMap<(String, String), i64>,
    /// Groups downgraded to classic groups, for the classic core
    /// ([`take_downgrades`](Self::take_downgrades)).
    pub(super) downgrades: Vec<crate::api::ClassicGroupSnapshot>,
    /// Groups with their own session timeout or heartbeat interval, by group id
    /// ([`set_group_overrides`](Self::set_group_overrides)).
    overrides: BTreeMap<String, ConsumerGroupOverrides>,
}

impl ConsumerGroupCoordinator {
    pub fn new(config: ConsumerGroupConfig) -> ConsumerGroupCoordinator {
        ConsumerGroupCoordinator {
            config,
            groups: BTreeMap::new(),
            sessions: BTreeMap::new(),
            rebalance_timeouts: BTreeMap::new(),
            member_id_counter: 0,
            regexes: BTreeMap::new(),
            classic_deadlines: BTreeMap::new(),
            downgrades: Vec::new(),
            overrides: BTreeMap::new(),
        }
    }

    pub fn config(&self) -> &ConsumerGroupConfig {
        &self.config
    }

    /// Sets group `group_id`'s own settings (the runtime passes its GROUP configs before each
    /// heartbeat); the default (no override) removes them. The group need not exist.
    pub fn set_group_overrides(&mut self, group_id: &str, overrides: ConsumerGroupOverrides) {
        if overrides == ConsumerGroupOverrides::default() {
            self.overrides.remove(group_id);
        } else {
            self.overrides.insert(group_id.to_string(), overrides);
        }
    }

    /// Group `group_id`'s session timeout: its own, else `group.consumer.session.timeout.ms`
    /// (Kafka's `consumerGroupSessionTimeoutMs`).
    pub fn session_timeout_ms(&self, group_id: &str) -> i32 {
        self.overrides
            .get(group_id)
            .and_then(|o| o.session_timeout_ms)
            .unwrap_or(self.config.session_timeout_ms)
    }

    /// Group `group_id`'s heartbeat interval: its own, else
    /// `group.consumer.heartbeat.interval.ms` (Kafka's `consumerGroupHeartbeatIntervalMs`).
    pub fn heartbeat_interval_ms(&self, group_id: &str) -> i32 {
        self.overrides
            .get(group_id)
            .and_then(|o| o.heartbeat_interval_ms)
            .unwrap_or(self.config.heartbeat_interval_ms)
    }

    /// The `__consumer_offsets` partition of `group_id`.
    pub fn partition_for(&self, group_id: &str) -> i32 {
        partition_for_group(group_id, self.config.offsets_topic_num_partitions)
    }

    pub fn group(&self, group_id: &str) -> Option<&ConsumerGroup> {
        self.groups.get(group_id)
    }

    /// True when `group_id` is a consumer group here (the broker then routes the classic
    /// APIs for it as Kafka does for a group of type "consumer").
    pub fn contains_group(&self, group_id: &str) -> bool {
        self.groups.contains_key(group_id)
    }

    pub fn groups(&self) -> impl Iterator<Item = &ConsumerGroup> {
        self.groups.values()
    }

    /// ConsumerGroupHeartbeat (API 68). The broker appends `append` (acks=all) and then
    /// sends `response`; if the append fails it answers with an error (e.g.
    /// COORDINATOR_NOT_AVAILABLE) and reloads the partition, since the state already moved.
    /// A group id that belongs to a classic group with members must not reach here: answer
    /// GROUP_ID_NOT_FOUND ("Group {id} is not a consumer group.").
    pub fn heartbeat(
        &mut self,
        req: &ConsumerGroupHeartbeatRequest,
        topics: &dyn TopicsView,
        now_ms: i64,
    ) -> HeartbeatResult {
        let mut records = Vec::new();
        let response = match self.heartbeat_inner(req, topics, now_ms, &mut records) {
            Ok(response) => response,
            Err(e) => ConsumerGroupHeartbeatResponse::error(e.code, e.message),
        };
        HeartbeatResult {
            response,
            append: self.append_for(&req.group_id, records),
        }
    }

    pub(super) fn append_for(
        &self,
        group_id: &str,
        records: Vec<ConsumerGroupRecord>,
    ) -> Option<ConsumerGroupAppend> {
        (!records.is_empty()).then(|| ConsumerGroupAppend {
            partition: self.partition_for(group_id),
            records: records.iter().map(ConsumerGroupRecord::encode).collect(),
        })
    }

    /// Replays `record` into the groups and keeps it for the append.
    pub(super) fn emit(
        &mut self,
        records: &mut Vec<ConsumerGroupRecord>,
        record: ConsumerGroupRecord,
    ) {
        replay_into(&mut self.groups, &record);
        records.push(record);
    }

    fn validate(&self, req: &ConsumerGroupHeartbeatRequest) -> Result<(), HeartbeatError> {
        // Kafka 4.4's `throwIfConsumerGroupHeartbeatRequestIsInvalid`, in its order.
        let invalid = |m: &str| err(codes::INVALID_REQUEST, m);
        let needs_member_id = req.api_version >= 1
            || req.member_epoch > 0
            || req.member_epoch == LEAVE_GROUP_MEMBER_EPOCH;
        if needs_member_id && req.member_id.trim().is_empty() {
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
                if req.topic_partitions.as_ref().is_none_or(|t| !t.is_empty()) {
                    return invalid("TopicPartitions must be empty when (re-)joining.");
                }
                if req.subscribed_topic_names.is_none() && req.subscribed_topic_regex.is_none() {
                    return invalid(
                        "Either SubscribedTopicNames or SubscribedTopicRegex must be non-null when (re-)joining.",
                    );
                }
            }
            LEAVE_GROUP_STATIC_MEMBER_EPOCH if req.instance_id.is_none() => {
                return invalid("InstanceId can't be null.");
            }
            e if e < LEAVE_GROUP_STATIC_MEMBER_EPOCH => {
                return invalid("MemberEpoch is invalid.");
            }
            _ => {}
        }
        if let Some(pattern) = req.subscribed_topic_regex.as_deref() {
            if let Err(e) = compile_subscription_regex(pattern) {
                return err(
                    codes::INVALID_REGULAR_EXPRESSION,
                    format!(
                        "SubscribedTopicRegex `{pattern}` is not a valid regular expression: {e}."
                    ),
                );
            }
        }
        if let Some(name) = &req.server_assignor {
            let known = self
                .config
                .assignors
                .iter()
                .any(|a| a.name() == name.as_str());
            if !known {
                let names: Vec<&str> = self.config.assignors.iter().map(|a| a.name()).collect();
                return err(
                    codes::UNSUPPORTED_ASSIGNOR,
                    format!(
                        "ServerAssignor {name} is not supported. Supported assignors: {}.",
                        names.join(", ")
                    ),
                );
            }
        }
        Ok(())
    }

    fn heartbeat_inner(
        &mut self,
        req: &ConsumerGroupHeartbeatRequest,
        topics: &dyn TopicsView,
        now_ms: i64,
        records: &mut Vec<ConsumerGroupRecord>,
    ) -> Result<ConsumerGroupHeartbeatResponse, HeartbeatError> {
        self.validate(req)?;
        if req.member_epoch == LEAVE_GROUP_MEMBER_EPOCH
            || req.member_epoch == LEAVE_GROUP_STATIC_MEMBER_EPOCH
        {
            return self.leave(req, topics, records);
        }
        let group_id = req.group_id.as_str();
        let create = req.member_epoch == JOIN_GROUP_MEMBER_EPOCH;
        let owned = req
            .topic_partitions
            .as_ref()
            .map(|t| to_topic_partitions(t));
        let member_id = if req.member_id.is_empty() {
            self.next_member_id()
        } else {
            req.member_id.clone()
        };

        // Checks first, against the group as it is; nothing changes before they all pass.
        let empty = ConsumerGroup::new(group_id);
        let group = match self.groups.get(group_id) {
            Some(g) => g,
            None if create => &empty,
            None => {
                return err(
                    codes::GROUP_ID_NOT_FOUND,
                    format!("Consumer group {group_id} not found."),
                )
            }
        };
        // A static member taking over its instance id does not grow the group.
        let replaces_static = req
            .instance_id
            .as_deref()
            .is_some_and(|i| group.static_member(i).is_some());
        if !replaces_static
            && group.members.len() >= self.config.max_size
            && !group.members.contains_key(&member_id)
        {
            return err(
                codes::GROUP_MAX_SIZE_REACHED,
                format!(
                    "The consumer group has reached its maximum capacity of {} members.",
                    self.config.max_size
                ),
            );
        }
        // `replaced`: a static member whose instance id this new member takes over.
        let (member, replaced) = match &req.instance_id {
            None => match group.member(&member_id) {
                Some(m) => {
                    check_member_epoch(m, req.member_epoch, owned.as_ref())?;
                    (m.clone(), None)
                }
                None if create => (ConsumerGroupMember::new(&member_id), None),
                None => {
                    return err(
                        codes::UNKNOWN_MEMBER_ID,
                        format!("Member {member_id} is not a member of group {group_id}."),
                    )
                }
            },
            Some(instance_id) => match (group.static_member(instance_id), create) {
                (None, true) => (
                    group
                        .member(&member_id)
                        .cloned()
                        .unwrap_or_else(|| ConsumerGroupMember::new(&member_id)),
                    None,
                ),
                (Some(existing), true) => {
                    if existing.member_epoch != LEAVE_GROUP_STATIC_MEMBER_EPOCH {
                        return err(
                            codes::UNRELEASED_INSTANCE_ID,
                            format!(
                                "Static member {member_id} with instance id {instance_id} cannot join the group because the instance id is owned by {} member.",
                                existing.member_id
                            ),
                        );
                    }
                    let mut m = existing.clone();
                    m.member_id = member_id.clone();
                    m.member_epoch = 0;
                    m.previous_member_epoch = 0;
                    (m, Some(existing.clone()))
                }
                (None, false) => {
                    return err(
                        codes::UNKNOWN_MEMBER_ID,
                        format!("Instance id {instance_id} is unknown."),
                    )
                }
                (Some(existing), false) => {
                    if existing.member_id != member_id {
                        return err(
                            codes::FENCED_INSTANCE_ID,
                            format!(
                                "Static member {member_id} with instance id {instance_id} was fenced by member {}.",
                                existing.member_id
                            ),
                        );
                    }
                    check_member_epoch(existing, req.member_epoch, owned.as_ref())?;
                    (existing.clone(), None)
                }
            },
        };

        if let Some(old) = &replaced {
            let target = group
                .target_assignment(&old.member_id)
                .cloned()
                .unwrap_or_default();
            self.replace_static_member(group_id, &old.member_id, &member, target, records);
        }
        let in_group = self
            .groups
            .get(group_id)
            .and_then(|g| g.member(&member_id))
            .cloned();

        // 1. The member's subscription.
        let mut updated = member.clone();
        if let Some(i) = &req.instance_id {
            updated.instance_id = Some(i.clone());
        }
        if let Some(r) = &req.rack_id {
            updated.rack_id = Some(r.clone());
        }
        if req.rebalance_timeout_ms != -1 {
            updated.rebalance_timeout_ms = req.rebalance_timeout_ms;
        }
        if let Some(a) = &req.server_assignor {
            updated.server_assignor = Some(a.clone());
        }
        if let Some(names) = &req.subscribed_topic_names {
            updated.subscribed_topic_names = names.iter().cloned().collect();
        }
        if let Some(pattern) = &req.subscribed_topic_regex {
            // An empty regex drops the regex subscription.
            updated.subscribed_topic_regex = (!pattern.is_empty()).then(|| pattern.clone());
        }
        updated.client_id = req.client_id.clone();
        updated.client_host = req.client_host.clone();
        let reconciled = self.update_member(
            group_id,
            &member,
            in_group.as_ref(),
            updated,
            owned.as_ref(),
            topics,
            now_ms,
            records,
        )?;

        self.sessions.insert(
            (group_id.to_string(), member_id.clone()),
            now_ms.saturating_add(i64::from(self.session_timeout_ms(group_id))),
        );
        let full_request = req.member_epoch == JOIN_GROUP_MEMBER_EPOCH
            || (req.rebalance_timeout_ms != -1
                && req.subscribed_topic_names.is_some()
                && req.topic_partitions.is_some());
        let assignment = (full_request
            || reconciled.assigned_partitions != member.assigned_partitions)
            .then(|| from_topic_partitions(&reconciled.assigned_partitions));
        Ok(ConsumerGroupHeartbeatResponse {
            error_code: codes::NONE,
            error_message: None,
            member_id: Some(member_id),
            member_epoch: reconciled.member_epoch,
            heartbeat_interval_ms: self.heartbeat_interval_ms(group_id),
            assignment,
        })
    }

    /// Steps 1–3 of a heartbeat, shared with a classic member's JoinGroup (Kafka's
    /// `consumerGroupHeartbeat` and `classicGroupJoinToConsumerGroup`): records the member's
    /// new metadata, bumps the group epoch when the subscription or the subscribed topics
    /// changed, computes a new target assignment when the epoch moved past it, and
    /// reconciles the member towards its target (`owned`: the partitions it reports).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn update_member(
        &mut self,
        group_id: &str,
        member: &ConsumerGroupMember,
        in_group: Option<&ConsumerGroupMember>,
        updated: ConsumerGroupMember,
        owned: Option<&TopicPartitions>,
        topics: &dyn TopicsView,
        now_ms: i64,
        records: &mut Vec<ConsumerGroupRecord>,
    ) -> Result<ConsumerGroupMember, HeartbeatError> {
        let member_id = updated.member_id.clone();
        let empty = ConsumerGroup::new(group_id);
        let mut bump = false;
        let changed = match in_group {
            None => true,
            Some(current) => metadata_differs(current, &updated),
        };
        if changed {
            if member.subscribed_topic_names != updated.subscribed_topic_names
                || member.subscribed_topic_regex != updated.subscribed_topic_regex
            {
                bump = true;
            }
            self.emit(records, member_metadata_record(group_id, &updated));
        }
        // The subscribed topics' metadata, from the broker's image at every heartbeat (Kafka
        // refreshes it when the image changes; this is the same, checked eagerly).
        let regexes = self.group_regexes(group_id);
        let group = self.groups.get(group_id).unwrap_or(&empty);
        let metadata = subscription_metadata(group, topics, &regexes);
        let group_epoch = group.group_epoch;
        if metadata != group.subscription_metadata {
            bump = true;
            self.emit(
                records,
                ConsumerGroupRecord::SubscriptionMetadata {
                    group_id: group_id.to_string(),
                    topics: Some(metadata.into_values().collect()),
                },
            );
        }
        if bump {
            self.emit(
                records,
                ConsumerGroupRecord::GroupEpoch {
                    group_id: group_id.to_string(),
                    epoch: Some(group_epoch + 1),
                },
            );
        }

        // 2. A new target assignment when the group epoch moved past it.
        let group = self.groups.get(group_id).unwrap_or(&empty);
        if group.group_epoch > group.assignment_epoch {
            let assignor = group
                .preferred_server_assignor()
                .and_then(|n| AssignorName::parse(&n))
                .or_else(|| self.config.assignors.first().copied())
                .unwrap_or(AssignorName::Uniform);
            let (_, target_records) =
                build_target_assignment(group, group.group_epoch, assignor, &regexes);
            for r in target_records {
                self.emit(records, r);
            }
        }

        // 3. Reconcile the member towards its target.
        let group = self.groups.get(group_id).unwrap_or(&empty);
        let target_epoch = group.assignment_epoch;
        let target = group
            .target_assignment(&member_id)
            .cloned()
            .unwrap_or_default();
        let current = group
            .member(&member_id)
            .cloned()
            .unwrap_or_else(|| updated.clone());
        let mut reconciled = current.clone();
        if !current.is_reconciled_to(target_epoch) {
            reconciled = reconcile(&current, group, target_epoch, &target, owned)
                .map_err(|_| HeartbeatError {
                    code: codes::FENCED_MEMBER_EPOCH,
                    message: "The consumer group member is in a unknown state. The member must abandon all its partitions and rejoin.".to_string(),
                })?;
            if reconciled != current {
                self.emit(records, current_assignment_record(group_id, &reconciled));
                let key = (group_id.to_string(), member_id.to_string());
                if reconciled.state == MemberState::UnrevokedPartitions {
                    self.rebalance_timeouts.insert(
                        key,
                        RebalanceTimeout {
                            epoch: reconciled.member_epoch,
                            deadline_ms: now_ms
                                .saturating_add(i64::from(reconciled.rebalance_timeout_ms.max(0))),
                        },
                    );
                } else {
                    self.rebalance_timeouts.remove(&key);
                }
            }
        }

        Ok(reconciled)
    }

    /// A heartbeat with epoch -1 (leave) or -2 (a static member leaves for now).
    fn leave(
        &mut self,
        req: &ConsumerGroupHeartbeatRequest,
        topics: &dyn TopicsView,
        records: &mut Vec<ConsumerGroupRecord>,
    ) -> Result<ConsumerGroupHeartbeatResponse, HeartbeatError> {
        let group_id = req.group_id.as_str();
        let Some(group) = self.groups.get(group_id) else {
            return err(
                codes::GROUP_ID_NOT_FOUND,
                format!("Consumer group {group_id} not found."),
            );
        };
        let response = ConsumerGroupHeartbeatResponse {
            member_id: Some(req.member_id.clone()),
            member_epoch: req.member_epoch,
            ..ConsumerGroupHeartbeatResponse::default()
        };
        let member = match &req.instance_id {
            None => match group.member(&req.member_id) {
                Some(m) => m.clone(),
                None => {
                    return err(
                        codes::UNKNOWN_MEMBER_ID,
                        format!(
                            "Member {} is not a member of group {group_id}.",
                            req.member_id
                        ),
                    )
                }
            },
            Some(instance_id) => {
                let Some(m) = group.static_member(instance_id) else {
                    return err(
                        codes::UNKNOWN_MEMBER_ID,
                        format!("Instance id {instance_id} is unknown."),
                    );
                };
                if m.member_id != req.member_id {
                    return err(
                        codes::FENCED_INSTANCE_ID,
                        format!(
                            "Static member {} with instance id {instance_id} was fenced by member {}.",
                            req.member_id, m.member_id
                        ),
                    );
                }
                if req.member_epoch == LEAVE_GROUP_STATIC_MEMBER_EPOCH {
                    // The member keeps its partitions (nobody else gets them) until it comes
                    // back with the same instance id or its session expires.
                    let mut leaving = m.clone();
                    leaving.member_epoch = LEAVE_GROUP_STATIC_MEMBER_EPOCH;
                    leaving.partitions_pending_revocation = TopicPartitions::new();
                    self.emit(records, current_assignment_record(group_id, &leaving));
                    return Ok(response);
                }
                m.clone()
            }
        };
        self.fence_member(group_id, &member.member_id, topics, records);
        Ok(response)
    }

    /// Removes a member and bumps the group epoch (Kafka's `consumerGroupFenceMember`); the
    /// group goes back to the classic protocol if only classic members are left.
    pub(super) fn fence_member(
        &mut self,
        group_id: &str,
        member_id: &str,
        topics: &dyn TopicsView,
        records: &mut Vec<ConsumerGroupRecord>,
    ) {
        self.remove_member_records(group_id, member_id, records);
        self.bump_after_removal(group_id, topics, records);
    }

    /// After members were removed: the subscription metadata, a new group epoch, and
    /// maybe the downgrade to a classic group.
    pub(super) fn bump_after_removal(
        &mut self,
        group_id: &str,
        topics: &dyn TopicsView,
        records: &mut Vec<ConsumerGroupRecord>,
    ) {
        let regexes = self.group_regexes(group_id);
        let Some(group) = self.groups.get(group_id) else {
            return;
        };
        let metadata = subscription_metadata(group, topics, &regexes);
        let group_epoch = group.group_epoch;
        if metadata != group.subscription_metadata {
            self.emit(
                records,
                ConsumerGroupRecord::SubscriptionMetadata {
                    group_id: group_id.to_string(),
                    topics: Some(metadata.into_values().collect()),
                },
            );
        }
        self.emit(
            records,
            ConsumerGroupRecord::GroupEpoch {
                group_id: group_id.to_string(),
                epoch: Some(group_epoch + 1),
            },
        );
        self.maybe_downgrade(group_id, topics, records);
    }

    /// A static member takes over: the old member's records go, and the new one's come with
    /// the old one's target assignment (Kafka's `replaceMember`).
    pub(super) fn replace_static_member(
        &mut self,
        group_id: &str,
        old_member_id: &str,
        member: &ConsumerGroupMember,
        target: TopicPartitions,
        records: &mut Vec<ConsumerGroupRecord>,
    ) {
        self.remove_member_records(group_id, old_member_id, records);
        self.emit(records, member_metadata_record(group_id, member));
        self.emit(
            records,
            ConsumerGroupRecord::TargetAssignmentMember {
                group_id: group_id.to_string(),
                member_id: member.member_id.clone(),
                partitions: Some(target),
            },
        );
        self.emit(records, current_assignment_record(group_id, member));
    }

    /// The three tombstones of a member, in Kafka's order, and its timers.
    pub(super) fn remove_member_records(
        &mut self,
        group_id: &str,
        member_id: &str,
        records: &mut Vec<ConsumerGroupRecord>,
    ) {
        let (g, m) = (group_id.to_string(), member_id.to_string());
        self.emit(
            records,
            ConsumerGroupRecord::CurrentAssignment {
                group_id: g.clone(),
                member_id: m.clone(),
                value: None,
            },
        );
        self.emit(
            records,
            ConsumerGroupRecord::TargetAssignmentMember {
                group_id: g.clone(),
                member_id: m.clone(),
                partitions: None,
            },
        );
        self.emit(
            records,
            ConsumerGroupRecord::MemberMetadata {
                group_id: g.clone(),
                member_id: m.clone(),
                value: None,
            },
        );
        self.sessions.remove(&(g.clone(), m.clone()));
        self.classic_deadlines.remove(&(g.clone(), m.clone()));
        self.rebalance_timeouts.remove(&(g, m));
    }

    /// When [`tick`](Self::tick) next has something to do.
    pub fn next_deadline(&self) -> Option<i64> {
        let sessions = self.sessions.values().copied();
        let rebalances = self.rebalance_timeouts.values().map(|t| t.deadline_ms);
        let classic = self.classic_deadlines.values().copied();
        sessions.chain(rebalances).chain(classic).min()
    }

    /// Fences every member whose session expired, and every member still at the epoch in
    /// which it had to revoke partitions once its rebalance timeout passed.
    pub fn tick(&mut self, now_ms: i64, topics: &dyn TopicsView) -> Vec<ConsumerGroupAppend> {
        let mut expired: Vec<(String, String)> = self
            .sessions
            .iter()
            .filter(|(_, deadline)| **deadline <= now_ms)
            .map(|(k, _)| k.clone())
            .collect();
        for (key, deadline) in &self.classic_deadlines {
            if *deadline <= now_ms && !expired.contains(key) {
                expired.push(key.clone());
            }
        }
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
        let mut by_group: BTreeMap<String, Vec<ConsumerGroupRecord>> = BTreeMap::new();
        for (group_id, member_id) in expired {
            self.sessions.remove(&(group_id.clone(), member_id.clone()));
            self.classic_deadlines
                .remove(&(group_id.clone(), member_id.clone()));
            let exists = self
                .groups
                .get(&group_id)
                .is_some_and(|g| g.member(&member_id).is_some());
            if !exists {
                continue;
            }
            let mut records = Vec::new();
            self.fence_member(&group_id, &member_id, topics, &mut records);
            by_group.entry(group_id).or_default().extend(records);
        }
        let mut by_partition: BTreeMap<i32, Vec<Record>> = BTreeMap::new();
        for (group_id, records) in by_group {
            by_partition
                .entry(self.partition_for(&group_id))
                .or_default()
                .extend(records.iter().map(ConsumerGroupRecord::encode));
        }
        by_partition
            .into_iter()
            .map(|(partition, records)| ConsumerGroupAppend { partition, records })
            .collect()
    }

    /// Replays the consumer group records of `__consumer_offsets` partition `partition` in
    /// log order (other records are skipped: the classic loader reads them) and installs the
    /// groups, replacing those in memory. Every member's session starts again at `now_ms`,
    /// and members that were revoking get a fresh rebalance timeout, as Kafka does on load.
    /// Fails on the first consumer group record that does not decode, changing nothing.
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
            if is_consumer_group_key(&r.key) {
                decoded.push(ConsumerGroupRecord::decode(&r.key, r.value.as_deref())?);
            }
        }
        let mut groups = BTreeMap::new();
        for r in &decoded {
            replay_into(&mut groups, r);
        }
        groups.retain(|id: &String, _| self.partition_for(id) == partition);
        let loaded = groups.len();
        for (id, group) in groups {
            // Timers of an earlier copy of the group (a reload) go with it.
            self.sessions.retain(|(g, _), _| *g != id);
            self.rebalance_timeouts.retain(|(g, _), _| *g != id);
            self.classic_deadlines.retain(|(g, _), _| *g != id);
            for m in group.members.values() {
                let key = (id.clone(), m.member_id.clone());
                self.sessions.insert(
                    key.clone(),
                    now_ms.saturating_add(self.session_timeout_of(&id, m)),
                );
                if m.state == MemberState::UnrevokedPartitions {
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
            self.sessions.retain(|(g, _), _| *g != id);
            self.rebalance_timeouts.retain(|(g, _), _| *g != id);
            self.classic_deadlines.retain(|(g, _), _| *g != id);
        }
    }

    /// DeleteGroups for a consumer group: only an Empty group may go (NON_EMPTY_GROUP
    /// otherwise). Returns the tombstones to append; the group is gone from memory already.
    /// The broker deletes the group's committed offsets as for a classic group.
    pub fn delete_group(&mut self, group_id: &str) -> Result<ConsumerGroupAppend, i16> {
        let Some(group) = self.groups.get(group_id) else {
            return Err(codes::GROUP_ID_NOT_FOUND);
        };
        if group.state() != ConsumerGroupState::Empty {
            return Err(codes::NON_EMPTY_GROUP);
        }
        let tombstones = group.tombstones();
        let mut records = Vec::new();
        for r in tombstones {
            self.emit(&mut records, r);
        }
        // The group epoch tombstone removed it.
        self.groups.remove(group_id);
        Ok(ConsumerGroupAppend {
            partition: self.partition_for(group_id),
            records: records.iter().map(ConsumerGroupRecord::encode).collect(),
        })
    }

    /// ConsumerGroupDescribe (API 69). Topic names come from `topics`; partitions of topics
    /// that no longer exist are left out, as Kafka does. Ids that are not consumer groups
    /// here get GROUP_ID_NOT_FOUND; the broker replaces that with "Group {id} is not a
    /// consumer group." for a classic group.
    pub fn describe(
        &self,
        group_ids: &[String],
        topics: &dyn TopicsView,
    ) -> Vec<DescribedConsumerGroup> {
        group_ids
            .iter()
            .map(|id| match self.groups.get(id) {
                None => DescribedConsumerGroup::not_found(id, format!("Group {id} not found.")),
                Some(g) => DescribedConsumerGroup {
                    error_code: codes::NONE,
                    error_message: None,
                    group_id: id.clone(),
                    group_state: g.state().name().to_string(),
                    group_epoch: g.group_epoch,
                    assignment_epoch: g.assignment_epoch,
                    assignor_name: g
                        .preferred_server_assignor()
                        .or_else(|| self.config.assignors.first().map(|a| a.name().to_string()))
                        .unwrap_or_default(),
                    members: g
                        .members
                        .values()
                        .map(|m| DescribedConsumerGroupMember {
                            member_id: m.member_id.clone(),
                            instance_id: m.instance_id.clone(),
                            rack_id: m.rack_id.clone(),
                            member_epoch: m.member_epoch,
                            client_id: m.client_id.clone(),
                            client_host: m.client_host.clone(),
                            subscribed_topic_names: m
                                .subscribed_topic_names
                                .iter()
                                .cloned()
                                .collect(),
                            subscribed_topic_regex: m.subscribed_topic_regex.clone(),
                            assignment: described(&m.assigned_partitions, topics),
                            target_assignment: g
                                .target_assignment(&m.member_id)
                                .map(|t| described(t, topics))
                                .unwrap_or_default(),
                            member_type: if m.uses_classic_protocol() { 0 } else { 1 },
                        })
                        .collect(),
                },
            })
            .collect()
    }

    /// The consumer groups as ListGroups lists them, filtered by state and type names
    /// (case-insensitive; an empty filter keeps all).
    pub fn list_groups(
        &self,
        states_filter: &[String],
        types_filter: &[String],
    ) -> Vec<ListedConsumerGroup> {
        let keeps_type = types_filter.is_empty()
            || types_filter
                .iter()
                .any(|t| t.eq_ignore_ascii_case("consumer"));
        if !keeps_type {
            return Vec::new();
        }
        self.groups
            .values()
            .filter(|g| {
                states_filter.is_empty()
                    || states_filter
                        .iter()
                        .any(|s| s.eq_ignore_ascii_case(g.state().name()))
            })
            .map(|g| ListedConsumerGroup {
                group_id: g.group_id.clone(),
                protocol_type: "consumer".to_string(),
                group_state: g.state().name().to_string(),
                group_type: "consumer".to_string(),
            })
            .collect()
    }

    /// How DescribeGroups (the classic API) answers for `group_id` if it is a consumer
    /// group here; `None` when it is not (the classic coordinator answers).
    pub fn classic_describe(
        &self,
        group_id: &str,
        api_version: i16,
    ) -> Option<ClassicDescribeAnswer> {
        self.groups.get(group_id)?;
        Some(if api_version >= 6 {
            ClassicDescribeAnswer {
                error_code: codes::GROUP_ID_NOT_FOUND,
                error_message: Some(format!("Group {group_id} is not a classic group.")),
                group_state: ConsumerGroupState::Dead.name().to_string(),
            }
        } else {
            ClassicDescribeAnswer {
                error_code: codes::NONE,
                error_message: None,
                group_state: ConsumerGroupState::Dead.name().to_string(),
            }
        })
    }

    /// OffsetCommit and TxnOffsetCommit against a consumer group (Kafka's
    /// `ConsumerGroup.validateOffsetCommit`): `member_epoch` is the request's generation id.
    /// A commit with a negative epoch (admin tools, standalone consumers) is accepted while
    /// the group has no members, a transactional one without member id and epoch -1 always.
    /// The epoch must be the member's (Kafka 4.4 also accepts an older epoch for partitions
    /// the member has held since then; this version does not track per-partition epochs).
    pub fn validate_offset_commit(
        &self,
        group_id: &str,
        member_id: &str,
        member_epoch: i32,
        is_transactional: bool,
        api_version: i16,
    ) -> OffsetCheck {
        let Some(group) = self.groups.get(group_id) else {
            return OffsetCheck::NotConsumerGroup;
        };
        if member_epoch < 0 && group.members.is_empty() {
            return OffsetCheck::Accepted;
        }
        // A transactional producer that is not a member (no id, epoch -1) may commit.
        if is_transactional && member_epoch == -1 && member_id.is_empty() {
            return OffsetCheck::Accepted;
        }
        let Some(member) = group.member(member_id) else {
            return OffsetCheck::Rejected {
                error_code: codes::UNKNOWN_MEMBER_ID,
                message: format!("Member {member_id} is not a member of group {group_id}."),
            };
        };
        if member.uses_classic_protocol() {
            // Kafka's `validateOffsetCommit` for a classic member: its generation is its
            // member epoch, and any OffsetCommit version goes.
            if member_epoch != member.member_epoch {
                return OffsetCheck::Rejected {
                    error_code: crate::error::code::ILLEGAL_GENERATION,
                    message: format!(
                        "The request generation id {member_epoch} is not equal to the member epoch {} of member {member_id}.",
                        member.member_epoch
                    ),
                };
            }
            return OffsetCheck::Accepted;
        }
        if !is_transactional && api_version < 9 {
            return OffsetCheck::Rejected {
                error_code: codes::UNSUPPORTED_VERSION,
                message: "OffsetCommit version 9 or above must be used by members using the modern group protocol".to_string(),
            };
        }
        check_stale_epoch(member_epoch, member.member_epoch)
    }

    /// OffsetFetch (v9+ carries the member id and epoch) against a consumer group (Kafka's
    /// `ConsumerGroup.validateOffsetFetch`): no member id and a negative epoch (admin
    /// tools) is accepted.
    pub fn validate_offset_fetch(
        &self,
        group_id: &str,
        member_id: Option<&str>,
        member_epoch: i32,
    ) -> OffsetCheck {
        let Some(group) = self.groups.get(group_id) else {
            return OffsetCheck::NotConsumerGroup;
        };
        let Some(member_id) = member_id else {
            if member_epoch < 0 {
                return OffsetCheck::Accepted;
            }
            return OffsetCheck::Rejected {
                error_code: codes::UNKNOWN_MEMBER_ID,
                message: format!("Member null is not a member of group {group_id}."),
            };
        };
        if member_epoch < 0 && member_id.is_empty() {
            return OffsetCheck::Accepted;
        }
        let Some(member) = group.member(member_id) else {
            return OffsetCheck::Rejected {
                error_code: codes::UNKNOWN_MEMBER_ID,
                message: format!("Member {member_id} is not a member of group {group_id}."),
            };
        };
        check_stale_epoch(member_epoch, member.member_epoch)
    }

    /// The compiled regexes of the members of `group_id`, from the cache.
    pub(super) fn group_regexes(&mut self, group_id: &str) -> BTreeMap<String, regex::Regex> {
        let Some(group) = self.groups.get(group_id) else {
            return BTreeMap::new();
        };
        let patterns: Vec<String> = group
            .members
            .values()
            .filter_map(|m| m.subscribed_topic_regex.clone())
            .collect();
        if self.regexes.len() > 1024 {
            self.regexes.clear();
        }
        let mut out = BTreeMap::new();
        for p in patterns {
            let compiled = self
                .regexes
                .entry(p.clone())
                .or_insert_with(|| compile_subscription_regex(&p).ok());
            if let Some(re) = compiled {
                out.insert(p, re.clone());
            }
        }
        out
    }

    /// OffsetDelete against a consumer group: `Some(true)` when a member subscribes to
    /// `topic` (by name or by regex), so its offsets may not be deleted
    /// (GROUP_SUBSCRIBED_TO_TOPIC); `None` when `group_id` is not a consumer group here.
    pub fn is_subscribed_to_topic(&self, group_id: &str, topic: &str) -> Option<bool> {
        let group = self.groups.get(group_id)?;
        Some(
            group.subscription_metadata.contains_key(topic)
                || group
                    .members
                    .values()
                    .any(|m| m.subscribed_topic_names.contains(topic)),
        )
    }

    /// `{base64url of 16 bytes}`, like Kafka's `Uuid.toString()`.
    pub(super) fn next_member_id(&mut self) -> String {
        self.member_id_counter += 1;
        let a = splitmix64(self.config.member_id_seed ^ splitmix64(self.member_id_counter));
        let b = splitmix64(a ^ self.member_id_counter);
        let mut bytes = [0u8; 16];
        bytes[..8].copy_from_slice(&a.to_be_bytes());
        bytes[8..].copy_from_slice(&b.to_be_bytes());
        base64url(&bytes)
    }
}

/// Applies one record to a map of groups: a record with a value creates its group, the
/// group epoch tombstone removes it, other tombstones of unknown groups are ignored.
fn replay_into(groups: &mut BTreeMap<String, ConsumerGroup>, record: &ConsumerGroupRecord) {
    let group_id = record.group_id();
    if let ConsumerGroupRecord::GroupEpoch { epoch: None, .. } = record {
        groups.remove(group_id);
        return;
    }
    let is_tombstone = match record {
        ConsumerGroupRecord::GroupEpoch { epoch, .. }
        | ConsumerGroupRecord::TargetAssignmentEpoch { epoch, .. } => epoch.is_none(),
        ConsumerGroupRecord::SubscriptionMetadata { topics, .. } => topics.is_none(),
        ConsumerGroupRecord::MemberMetadata { value, .. } => value.is_none(),
        ConsumerGroupRecord::TargetAssignmentMember { partitions, .. } => partitions.is_none(),
        ConsumerGroupRecord::CurrentAssignment { value, .. } => value.is_none(),
    };
    if is_tombstone {
        if let Some(g) = groups.get_mut(group_id) {
            g.replay(record);
        }
    } else {
        groups
            .entry(group_id.to_string())
            .or_insert_with(|| ConsumerGroup::new(group_id))
            .replay(record);
    }
}

/// Kafka's `throwIfConsumerGroupMemberEpochIsInvalid`: epoch 0 (a member that rejoins,
/// e.g. after it was fenced, under the id it generated) is always accepted; an epoch ahead
/// of the member's is fenced; one behind is fenced unless it is the previous epoch and the
/// member owns only partitions it still has (its last response was lost).
fn check_member_epoch(
    member: &ConsumerGroupMember,
    received: i32,
    owned: Option<&TopicPartitions>,
) -> Result<(), HeartbeatError> {
    if received == JOIN_GROUP_MEMBER_EPOCH {
        return Ok(());
    }
    if received > member.member_epoch {
        return err(
            codes::FENCED_MEMBER_EPOCH,
            format!(
                "The consumer group member has a greater member epoch ({received}) than the one known by the group coordinator ({}). The member must abandon all its partitions and rejoin.",
                member.member_epoch
            ),
        );
    }
    if received < member.member_epoch
        && (received != member.previous_member_epoch
            || !is_subset(owned, &member.assigned_partitions))
    {
        return err(
            codes::FENCED_MEMBER_EPOCH,
            format!(
                "The consumer group member has a smaller member epoch ({received}) than the one known by the group coordinator ({}). The member must abandon all its partitions and rejoin.",
                member.member_epoch
            ),
        );
    }
    Ok(())
}

fn is_subset(owned: Option<&TopicPartitions>, assigned: &TopicPartitions) -> bool {
    let Some(owned) = owned else { return false };
    owned.iter().all(|(topic, partitions)| {
        assigned
            .get(topic)
            .is_some_and(|a| partitions.iter().all(|p| a.contains(p)))
    })
}

fn check_stale_epoch(received: i32, expected: i32) -> OffsetCheck {
    if received == expected {
        OffsetCheck::Accepted
    } else {
        OffsetCheck::Rejected {
            error_code: codes::STALE_MEMBER_EPOCH,
            message: format!(
                "The received member epoch {received} does not match the expected member epoch {expected}."
            ),
        }
    }
}

/// The metadata of every topic the group's members subscribe to that exists in `topics`:
/// by name, and by regex (whole names, internal topics never).
pub(super) fn subscription_metadata(
    group: &ConsumerGroup,
    topics: &dyn TopicsView,
    regexes: &BTreeMap<String, regex::Regex>,
) -> BTreeMap<String, TopicMetadata> {
    let mut names: std::collections::BTreeSet<String> = group
        .subscribed_topic_names(None, None)
        .into_keys()
        .collect();
    if !regexes.is_empty() {
        for name in topics.topic_names() {
            if regexes.values().any(|re| regex_subscribes(re, &name)) {
                names.insert(name);
            }
        }
    }
    names
        .into_iter()
        .filter_map(|name| {
            let id = topics.topic_id(&name)?;
            let num_partitions = topics.partition_count(id).unwrap_or(0);
            Some((
                name.clone(),
                TopicMetadata {
                    id,
                    name,
                    num_partitions,
                },
            ))
        })
        .collect()
}

/// Compiles a subscription regex (RE2 syntax, as Kafka's RE2/J) to match whole topic names.
fn compile_subscription_regex(pattern: &str) -> Result<regex::Regex, regex::Error> {
    regex::Regex::new(&format!("^(?:{pattern})$"))
}

pub(super) fn to_topic_partitions(list: &[HeartbeatTopicPartitions]) -> TopicPartitions {
    let mut out = TopicPartitions::new();
    for t in list {
        out.entry(t.topic_id)
            .or_default()
            .extend(t.partitions.iter().copied());
    }
    out.retain(|_, p| !p.is_empty());
    out
}

fn from_topic_partitions(tp: &TopicPartitions) -> Vec<HeartbeatTopicPartitions> {
    tp.iter()
        .map(|(topic_id, partitions)| HeartbeatTopicPartitions {
            topic_id: *topic_id,
            partitions: partitions.iter().copied().collect(),
        })
        .collect()
}

fn described(tp: &TopicPartitions, topics: &dyn TopicsView) -> Vec<DescribedTopicPartitions> {
    tp.iter()
        .filter_map(|(id, partitions)| {
            Some(DescribedTopicPartitions {
                topic_id: *id,
                topic_name: topics.topic_name(*id)?.to_string(),
                partitions: partitions.iter().copied().collect(),
            })
        })
        .collect()
}

/// SplitMix64: a bijection on u64, so distinct counters give distinct member ids.
fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn base64url(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..=chunk.len() {
            out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
        }
    }
    out
}
