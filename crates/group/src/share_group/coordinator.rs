//! The share group coordinator (Kafka's `GroupMetadataManager` for groups of type "share"):
//! ShareGroupHeartbeat, session expiry, the share-partitions' state initialization,
//! loading, describing, listing, deleting.
//!
//! ```text
//!  heartbeat(request, settings, topics, now)
//!    validate ─► leave (-1) ─► fence: tombstones, group epoch + 1
//!             └► join / heartbeat:
//!                1. member: create or update; record if it changed; group epoch + 1 when the
//!                   subscription, the subscribed topics' metadata or the initialized
//!                   share-partitions (not assigned yet) changed
//!                2. group epoch > assignment epoch: SimpleAssignor over the initialized
//!                   share-partitions, record the new target (changed members + epoch)
//!                3. the member takes its target at once (epoch = assignment epoch)
//!                4. subscribed partitions without state: record them "initializing" and
//!                   hand them to the broker (InitializeRequest) ─► persister ─►
//!                   initialize_completed: "initialized" (or dropped, to be tried again)
//!    ─► records (each replayed into the state at once) + response
//!  tick(now, topics) ─► fence members whose session expired; retry failed initializations
//! ```
//! Every change goes through a record replayed by [`ShareGroup::replay`], so what a loading
//! coordinator rebuilds from the log is what the live one had. Sessions are not persisted: a
//! load restarts every member's session.

use std::collections::{BTreeMap, BTreeSet};

use gregor_share::ShareGroupSettings;

use super::api::*;
use super::assignor::{self, AssignorMember, SIMPLE_ASSIGNOR};
use super::group::{
    current_assignment_record, member_metadata_record, ShareGroup, ShareGroupMember,
    ShareGroupState,
};
use super::records::{is_share_group_key, InitTopic, ShareGroupRecord, StatePartitionMetadata};
use crate::consumer_group::{
    ClassicDescribeAnswer, DescribedTopicPartitions, HeartbeatTopicPartitions, TopicId,
    TopicPartitions, TopicsView,
};
use crate::error::{code, DecodeError};
use crate::records::{partition_for_group, Record, DEFAULT_OFFSETS_TOPIC_PARTITIONS};

/// Kafka error codes the share group APIs use besides the classic ones.
pub mod codes {
    pub const INVALID_REQUEST: i16 = 42;
    pub const FENCED_MEMBER_EPOCH: i16 = 110;
}

/// The broker configs of share groups the core needs (the per-group settings come with
/// each call as a [`ShareGroupSettings`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareGroupConfig {
    /// `offsets.topic.num.partitions`
    pub offsets_topic_num_partitions: i32,
    /// `group.share.initialize.retry.interval.ms`: an initialization still in flight after
    /// this long (its coordinator failed over, say) is started again.
    pub initialize_retry_interval_ms: i64,
    /// How long after a failed initialization [`tick`](ShareGroupCoordinator::tick) tries
    /// again if no heartbeat did.
    pub initialize_retry_backoff_ms: i64,
}

impl Default for ShareGroupConfig {
    fn default() -> Self {
        ShareGroupConfig {
            offsets_topic_num_partitions: DEFAULT_OFFSETS_TOPIC_PARTITIONS,
            initialize_retry_interval_ms: 30_000,
            initialize_retry_backoff_ms: 1_000,
        }
    }
}

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

/// Every share group this broker coordinates.
#[derive(Debug)]
pub struct ShareGroupCoordinator {
    config: ShareGroupConfig,
    groups: BTreeMap<String, ShareGroup>,
    /// (group, member) → when its session expires.
    sessions: BTreeMap<(String, String), i64>,
    /// Groups whose last initialization failed → when `tick` tries again.
    initialize_retries: BTreeMap<String, i64>,
}

impl ShareGroupCoordinator {
    pub fn new(config: ShareGroupConfig) -> ShareGroupCoordinator {
        ShareGroupCoordinator {
            config,
            groups: BTreeMap::new(),
            sessions: BTreeMap::new(),
            initialize_retries: BTreeMap::new(),
        }
    }

    pub fn config(&self) -> &ShareGroupConfig {
        &self.config
    }

    /// The `__consumer_offsets` partition of `group_id`.
    pub fn partition_for(&self, group_id: &str) -> i32 {
        partition_for_group(group_id, self.config.offsets_topic_num_partitions)
    }

    pub fn group(&self, group_id: &str) -> Option<&ShareGroup> {
        self.groups.get(group_id)
    }

    /// True when `group_id` is a share group here.
    pub fn contains_group(&self, group_id: &str) -> bool {
        self.groups.contains_key(group_id)
    }

    pub fn groups(&self) -> impl Iterator<Item = &ShareGroup> {
        self.groups.values()
    }

    fn append_for(&self, group_id: &str, records: &[ShareGroupRecord]) -> Option<ShareGroupAppend> {
        (!records.is_empty()).then(|| ShareGroupAppend {
            partition: self.partition_for(group_id),
            records: records.iter().map(ShareGroupRecord::encode).collect(),
        })
    }

    /// Replays `record` into the groups and keeps it for the append.
    fn emit(&mut self, records: &mut Vec<ShareGroupRecord>, record: ShareGroupRecord) {
        replay_into(&mut self.groups, &record);
        records.push(record);
    }

    /// ShareGroupHeartbeat (API 76). The broker appends `append` (acks=all), sends
    /// `response`, and then initializes `initialize` with the persister, reporting the
    /// outcome with [`initialize_completed`](Self::initialize_completed). If the append
    /// fails it answers with an error and reloads the partition, since the state already
    /// moved. A group id that belongs to a classic or consumer group must not reach here
    /// (GROUP_ID_NOT_FOUND "Group {id} is not a share group.").
    pub fn heartbeat(
        &mut self,
        req: &ShareGroupHeartbeatRequest,
        settings: &ShareGroupSettings,
        topics: &dyn TopicsView,
        now_ms: i64,
    ) -> ShareHeartbeatResult {
        let mut records = Vec::new();
        let mut initialize = None;
        let response = match self.heartbeat_inner(
            req,
            settings,
            topics,
            now_ms,
            &mut records,
            &mut initialize,
        ) {
            Ok(response) => response,
            Err(e) => ShareGroupHeartbeatResponse::error(e.code, e.message),
        };
        ShareHeartbeatResult {
            response,
            append: self.append_for(&req.group_id, &records),
            initialize,
        }
    }

    /// The heartbeat's own checks (Kafka 4.4's `throwIfShareGroupHeartbeatRequestIsInvalid`,
    /// which its group coordinator service runs before it looks for the coordinator): the
    /// INVALID_REQUEST answer, if any.
    pub fn invalid_heartbeat(
        req: &ShareGroupHeartbeatRequest,
    ) -> Option<ShareGroupHeartbeatResponse> {
        Self::validate(req)
            .err()
            .map(|e| ShareGroupHeartbeatResponse::error(e.code, e.message))
    }

    /// Kafka 4.4's `throwIfShareGroupHeartbeatRequestIsInvalid`, in its order.
    fn validate(req: &ShareGroupHeartbeatRequest) -> Result<(), HeartbeatError> {
        let invalid = |m: &str| err(codes::INVALID_REQUEST, m);
        if req.member_id.trim().is_empty() {
            return invalid("MemberId can't be empty.");
        }
        if req.group_id.trim().is_empty() {
            return invalid("GroupId can't be empty.");
        }
        if req.rack_id.as_deref().is_some_and(|s| s.trim().is_empty()) {
            return invalid("RackId can't be empty.");
        }
        if req.member_epoch == JOIN_GROUP_MEMBER_EPOCH {
            if req
                .subscribed_topic_names
                .as_ref()
                .is_none_or(Vec::is_empty)
            {
                return invalid("SubscribedTopicNames must be set in first request.");
            }
        } else if req.member_epoch < LEAVE_GROUP_MEMBER_EPOCH {
            return invalid("MemberEpoch is invalid.");
        }
        Ok(())
    }

    fn heartbeat_inner(
        &mut self,
        req: &ShareGroupHeartbeatRequest,
        settings: &ShareGroupSettings,
        topics: &dyn TopicsView,
        now_ms: i64,
        records: &mut Vec<ShareGroupRecord>,
        initialize: &mut Option<InitializeRequest>,
    ) -> Result<ShareGroupHeartbeatResponse, HeartbeatError> {
        Self::validate(req)?;
        let group_id = req.group_id.as_str();
        let member_id = req.member_id.as_str();
        if req.member_epoch == LEAVE_GROUP_MEMBER_EPOCH {
            let Some(group) = self.groups.get(group_id) else {
                return err(
                    code::GROUP_ID_NOT_FOUND,
                    format!("Group {group_id} not found."),
                );
            };
            if group.member(member_id).is_none() {
                return err(
                    code::UNKNOWN_MEMBER_ID,
                    format!("Member {member_id} is not a member of group {group_id}."),
                );
            }
            self.fence_member(group_id, member_id, topics, records);
            return Ok(ShareGroupHeartbeatResponse {
                member_id: Some(member_id.to_string()),
                member_epoch: req.member_epoch,
                ..ShareGroupHeartbeatResponse::default()
            });
        }

        let create = req.member_epoch == JOIN_GROUP_MEMBER_EPOCH;
        // Checks first, against the group as it is; nothing changes before they all pass.
        let empty = ShareGroup::new(group_id);
        let group = match self.groups.get(group_id) {
            Some(g) => g,
            None if create => &empty,
            None => {
                return err(
                    code::GROUP_ID_NOT_FOUND,
                    format!("Share group {group_id} not found."),
                )
            }
        };
        let max_size = settings.max_size;
        if group.members.len() >= max_size && !group.members.contains_key(member_id) {
            return err(
                code::GROUP_MAX_SIZE_REACHED,
                format!("The share group has reached its maximum capacity of {max_size} members."),
            );
        }
        let member = match group.member(member_id) {
            Some(m) => {
                check_member_epoch(m, req.member_epoch)?;
                m.clone()
            }
            None if create => ShareGroupMember::new(member_id),
            None => {
                return err(
                    code::UNKNOWN_MEMBER_ID,
                    format!("Member {member_id} is not a member of group {group_id}."),
                )
            }
        };
        let is_new = group.member(member_id).is_none();

        // 1. The member's subscription.
        let mut updated = member.clone();
        if let Some(r) = &req.rack_id {
            updated.rack_id = Some(r.clone());
        }
        if let Some(names) = &req.subscribed_topic_names {
            updated.subscribed_topic_names = names.iter().cloned().collect();
        }
        updated.client_id = req.client_id.clone();
        updated.client_host = req.client_host.clone();
        let mut bump = false;
        let subscription_changed = updated.subscribed_topic_names != member.subscribed_topic_names;
        if is_new || updated.metadata_differs(&member) {
            bump |= subscription_changed;
            self.emit(records, member_metadata_record(group_id, &updated));
        }
        let group = self.groups.get(group_id).unwrap_or(&empty);
        bump |= initialized_assignment_pending(group, topics);
        let subscribed = group.subscribed_topic_names();
        let hash = metadata_hash(&subscribed, topics);
        if hash != group.metadata_hash {
            bump = true;
        }
        let mut group_epoch = group.group_epoch;
        if bump {
            group_epoch += 1;
            self.emit(
                records,
                ShareGroupRecord::GroupMetadata {
                    group_id: group_id.to_string(),
                    value: Some((group_epoch, hash)),
                },
            );
        }

        // 2. A new target assignment when the group epoch moved past it.
        self.maybe_update_target_assignment(group_id, topics, records);

        // 3. The member takes its target at once.
        let group = self.groups.get(group_id).unwrap_or(&empty);
        let target_epoch = group.assignment_epoch;
        let target = group
            .target_assignment(member_id)
            .cloned()
            .unwrap_or_default();
        let current = group.member(member_id).cloned().unwrap_or(updated);
        let mut reconciled = current.clone();
        if subscription_changed || current.member_epoch != target_epoch {
            reconciled.previous_member_epoch = current.member_epoch;
            reconciled.member_epoch = target_epoch;
            reconciled.assigned_partitions = target;
            if reconciled != current {
                self.emit(records, current_assignment_record(group_id, &reconciled));
            }
        }

        self.sessions.insert(
            (group_id.to_string(), member_id.to_string()),
            now_ms.saturating_add(settings.session_timeout_ms.min(i64::MAX as u64) as i64),
        );

        // 4. Share-partitions of the subscribed topics without state.
        *initialize = self.maybe_initialize(group_id, topics, now_ms, records);

        let full_request =
            req.member_epoch == JOIN_GROUP_MEMBER_EPOCH || req.subscribed_topic_names.is_some();
        let assignment = (full_request
            || reconciled.assigned_partitions != member.assigned_partitions)
            .then(|| from_topic_partitions(&reconciled.assigned_partitions));
        Ok(ShareGroupHeartbeatResponse {
            error_code: code::NONE,
            error_message: None,
            member_id: Some(member_id.to_string()),
            member_epoch: reconciled.member_epoch,
            heartbeat_interval_ms: i32::try_from(settings.heartbeat_interval_ms)
                .unwrap_or(i32::MAX),
            assignment,
        })
    }

    /// Runs the assignor when the group epoch is past the assignment epoch, recording the
    /// members whose target changed and then the new assignment epoch (Kafka's
    /// `TargetAssignmentBuilder` for share groups).
    fn maybe_update_target_assignment(
        &mut self,
        group_id: &str,
        topics: &dyn TopicsView,
        records: &mut Vec<ShareGroupRecord>,
    ) {
        let Some(group) = self.groups.get(group_id) else {
            return;
        };
        if group.group_epoch <= group.assignment_epoch {
            return;
        }
        let members: Vec<AssignorMember> = group
            .members
            .values()
            .map(|m| AssignorMember {
                member_id: m.member_id.clone(),
                subscribed: m
                    .subscribed_topic_names
                    .iter()
                    .filter_map(|n| topics.topic_id(n))
                    .collect(),
                current: group
                    .target_assignment(&m.member_id)
                    .cloned()
                    .unwrap_or_default(),
            })
            .collect();
        let target = assignor::assign(&members, &assignable_partitions(group, topics));
        let epoch = group.group_epoch;
        let mut changed = Vec::new();
        for (member_id, partitions) in target {
            let old = group.target_assignment(&member_id);
            if old != Some(&partitions) {
                changed.push(ShareGroupRecord::TargetAssignmentMember {
                    group_id: group_id.to_string(),
                    member_id,
                    partitions: Some(partitions),
                });
            }
        }
        for r in changed {
            self.emit(records, r);
        }
        self.emit(
            records,
            ShareGroupRecord::TargetAssignmentEpoch {
                group_id: group_id.to_string(),
                epoch: Some(epoch),
            },
        );
    }

    /// Kafka's `maybeCreateInitializeShareGroupStateRequest`: every partition of a
    /// subscribed topic that is neither initialized nor initializing (since less than
    /// `initialize_retry_interval_ms`) is recorded as initializing and handed to the broker.
    fn maybe_initialize(
        &mut self,
        group_id: &str,
        topics: &dyn TopicsView,
        now_ms: i64,
        records: &mut Vec<ShareGroupRecord>,
    ) -> Option<InitializeRequest> {
        let group = self.groups.get(group_id)?;
        let subscribed = group.subscribed_topic_names();
        let meta = &group.state_metadata;
        let mut fresh: BTreeMap<TopicId, InitTopic> = BTreeMap::new();
        for name in &subscribed {
            let Some(id) = topics.topic_id(name) else {
                continue;
            };
            let count = topics.partition_count(id).unwrap_or(0);
            let mut known: BTreeSet<i32> = meta
                .initialized
                .get(&id)
                .map(|t| t.partitions.clone())
                .unwrap_or_default();
            if let Some(t) = meta.initializing.get(&id) {
                if now_ms.saturating_sub(t.timestamp_ms) < self.config.initialize_retry_interval_ms
                {
                    known.extend(t.partitions.iter().copied());
                }
            }
            let missing: BTreeSet<i32> = (0..count).filter(|p| !known.contains(p)).collect();
            if !missing.is_empty() {
                fresh.insert(
                    id,
                    InitTopic {
                        name: name.clone(),
                        partitions: missing,
                        timestamp_ms: now_ms,
                    },
                );
            }
        }
        if fresh.is_empty() {
            return None;
        }
        let mut value = meta.clone();
        for (id, t) in &fresh {
            let entry = value.initializing.entry(*id).or_insert_with(|| InitTopic {
                name: t.name.clone(),
                partitions: BTreeSet::new(),
                timestamp_ms: now_ms,
            });
            entry.name = t.name.clone();
            entry.timestamp_ms = now_ms;
            entry.partitions.extend(t.partitions.iter().copied());
            // A topic initialized again is no longer being deleted.
            value.deleting.remove(id);
        }
        let state_epoch = group.group_epoch;
        self.emit(
            records,
            ShareGroupRecord::StatePartitionMetadata {
                group_id: group_id.to_string(),
                value: Some(value),
            },
        );
        self.initialize_retries.remove(group_id);
        Some(InitializeRequest {
            group_id: group_id.to_string(),
            state_epoch,
            partitions: fresh
                .into_iter()
                .map(|(id, t)| (id, t.partitions))
                .collect(),
        })
    }

    /// The persister's answer to an [`InitializeRequest`] (Kafka's
    /// `initializeShareGroupState` / `uninitializeShareGroupState`): on success the
    /// partitions move from initializing to initialized (the next heartbeat assigns them);
    /// on failure they leave initializing, so the next heartbeat, or the tick after
    /// `initialize_retry_backoff_ms`, tries again. Returns the record to append.
    pub fn initialize_completed(
        &mut self,
        group_id: &str,
        partitions: &TopicPartitions,
        succeeded: bool,
        topics: &dyn TopicsView,
        now_ms: i64,
    ) -> Option<ShareGroupAppend> {
        let group = self.groups.get(group_id)?;
        let mut value = group.state_metadata.clone();
        for (id, ps) in partitions {
            if let Some(t) = value.initializing.get_mut(id) {
                t.partitions.retain(|p| !ps.contains(p));
                if t.partitions.is_empty() {
                    value.initializing.remove(id);
                }
            }
            if succeeded {
                let name = topics
                    .topic_name(*id)
                    .map(str::to_string)
                    .or_else(|| {
                        group
                            .state_metadata
                            .initializing
                            .get(id)
                            .map(|t| t.name.clone())
                    })
                    .unwrap_or_default();
                let entry = value.initialized.entry(*id).or_insert_with(|| InitTopic {
                    name: name.clone(),
                    partitions: BTreeSet::new(),
                    timestamp_ms: now_ms,
                });
                entry.partitions.extend(ps.iter().copied());
                entry.timestamp_ms = now_ms;
            }
        }
        if !succeeded {
            self.initialize_retries.insert(
                group_id.to_string(),
                now_ms.saturating_add(self.config.initialize_retry_backoff_ms),
            );
        }
        self.write_state_metadata(group_id, value)
    }

    /// Removes a member and bumps the group epoch (Kafka's `shareGroupFenceMember`).
    fn fence_member(
        &mut self,
        group_id: &str,
        member_id: &str,
        topics: &dyn TopicsView,
        records: &mut Vec<ShareGroupRecord>,
    ) {
        let (g, m) = (group_id.to_string(), member_id.to_string());
        self.emit(
            records,
            ShareGroupRecord::CurrentAssignment {
                group_id: g.clone(),
                member_id: m.clone(),
                value: None,
            },
        );
        self.emit(
            records,
            ShareGroupRecord::TargetAssignmentMember {
                group_id: g.clone(),
                member_id: m.clone(),
                partitions: None,
            },
        );
        self.emit(
            records,
            ShareGroupRecord::MemberMetadata {
                group_id: g.clone(),
                member_id: m.clone(),
                value: None,
            },
        );
        self.sessions.remove(&(g.clone(), m));
        let Some(group) = self.groups.get(group_id) else {
            return;
        };
        let hash = metadata_hash(&group.subscribed_topic_names(), topics);
        let epoch = group.group_epoch + 1;
        self.emit(
            records,
            ShareGroupRecord::GroupMetadata {
                group_id: g,
                value: Some((epoch, hash)),
            },
        );
    }

    /// When [`tick`](Self::tick) next has something to do.
    pub fn next_deadline(&self) -> Option<i64> {
        self.sessions
            .values()
            .chain(self.initialize_retries.values())
            .copied()
            .min()
    }

    /// Fences every member whose session expired (its records per `__consumer_offsets`
    /// partition), and starts again the initializations that failed and that no heartbeat
    /// retried since.
    pub fn tick(&mut self, now_ms: i64, topics: &dyn TopicsView) -> ShareTickResult {
        let expired: Vec<(String, String)> = self
            .sessions
            .iter()
            .filter(|(_, deadline)| **deadline <= now_ms)
            .map(|(k, _)| k.clone())
            .collect();
        let mut by_partition: BTreeMap<i32, Vec<Record>> = BTreeMap::new();
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
            self.fence_member(&group_id, &member_id, topics, &mut records);
            by_partition
                .entry(self.partition_for(&group_id))
                .or_default()
                .extend(records.iter().map(ShareGroupRecord::encode));
        }
        let due: Vec<String> = self
            .initialize_retries
            .iter()
            .filter(|(_, at)| **at <= now_ms)
            .map(|(g, _)| g.clone())
            .collect();
        let mut initialize = Vec::new();
        for group_id in due {
            self.initialize_retries.remove(&group_id);
            let mut records = Vec::new();
            if let Some(init) = self.maybe_initialize(&group_id, topics, now_ms, &mut records) {
                initialize.push(init);
            }
            by_partition
                .entry(self.partition_for(&group_id))
                .or_default()
                .extend(records.iter().map(ShareGroupRecord::encode));
        }
        ShareTickResult {
            appends: by_partition
                .into_iter()
                .filter(|(_, records)| !records.is_empty())
                .map(|(partition, records)| ShareGroupAppend { partition, records })
                .collect(),
            initialize,
        }
    }

    /// Replays the share group records of `__consumer_offsets` partition `partition` in log
    /// order (other records are skipped) and installs the groups, replacing those in
    /// memory. Every member's session starts again at `now_ms`, with its group's settings.
    /// Fails on the first share group record that does not decode, changing nothing.
    pub fn load_partition<I>(
        &mut self,
        partition: i32,
        records: I,
        now_ms: i64,
        settings: &dyn Fn(&str) -> ShareGroupSettings,
    ) -> Result<usize, DecodeError>
    where
        I: IntoIterator<Item = Record>,
    {
        let mut decoded = Vec::new();
        for r in records {
            if is_share_group_key(&r.key) {
                decoded.push(ShareGroupRecord::decode(&r.key, r.value.as_deref())?);
            }
        }
        let mut groups = BTreeMap::new();
        for r in &decoded {
            replay_into(&mut groups, r);
        }
        groups.retain(|id: &String, _| self.partition_for(id) == partition);
        self.unload_partition(partition);
        let loaded = groups.len();
        for (id, group) in groups {
            let timeout = settings(&id).session_timeout_ms.min(i64::MAX as u64) as i64;
            for m in group.members.keys() {
                self.sessions
                    .insert((id.clone(), m.clone()), now_ms.saturating_add(timeout));
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
            self.initialize_retries.remove(&id);
        }
    }

    /// ShareGroupDescribe (API 77). Topic names come from `topics`; partitions of topics
    /// that no longer exist are left out. Ids that are not share groups here get
    /// GROUP_ID_NOT_FOUND; the broker replaces the message for groups of another type.
    pub fn describe(
        &self,
        group_ids: &[String],
        topics: &dyn TopicsView,
    ) -> Vec<DescribedShareGroup> {
        group_ids
            .iter()
            .map(|id| match self.groups.get(id) {
                None => DescribedShareGroup::not_found(id, format!("Group {id} not found.")),
                Some(g) => DescribedShareGroup {
                    error_code: code::NONE,
                    error_message: None,
                    group_id: id.clone(),
                    group_state: g.state().name().to_string(),
                    group_epoch: g.group_epoch,
                    assignment_epoch: g.assignment_epoch,
                    assignor_name: SIMPLE_ASSIGNOR.to_string(),
                    members: g
                        .members
                        .values()
                        .map(|m| DescribedShareGroupMember {
                            member_id: m.member_id.clone(),
                            rack_id: m.rack_id.clone(),
                            member_epoch: m.member_epoch,
                            client_id: m.client_id.clone(),
                            client_host: m.client_host.clone(),
                            subscribed_topic_names: m
                                .subscribed_topic_names
                                .iter()
                                .cloned()
                                .collect(),
                            assignment: described(&m.assigned_partitions, topics),
                        })
                        .collect(),
                },
            })
            .collect()
    }

    /// The share groups as ListGroups lists them, filtered by state and type names
    /// (case-insensitive; an empty filter keeps all).
    pub fn list_groups(
        &self,
        states_filter: &[String],
        types_filter: &[String],
    ) -> Vec<ListedShareGroup> {
        let keeps_type =
            types_filter.is_empty() || types_filter.iter().any(|t| t.eq_ignore_ascii_case("share"));
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
            .map(|g| ListedShareGroup {
                group_id: g.group_id.clone(),
                protocol_type: "share".to_string(),
                group_state: g.state().name().to_string(),
                group_type: "share".to_string(),
            })
            .collect()
    }

    /// How DescribeGroups (the classic API) answers for `group_id` if it is a share group
    /// here (Kafka 4.x: state Dead; v6+ GROUP_ID_NOT_FOUND "Group {id} is not a classic
    /// group."); `None` when it is not.
    pub fn classic_describe(
        &self,
        group_id: &str,
        api_version: i16,
    ) -> Option<ClassicDescribeAnswer> {
        self.groups.get(group_id)?;
        let (error_code, error_message) = if api_version >= 6 {
            (
                code::GROUP_ID_NOT_FOUND,
                Some(format!("Group {group_id} is not a classic group.")),
            )
        } else {
            (code::NONE, None)
        };
        Some(ClassicDescribeAnswer {
            error_code,
            error_message,
            group_state: ShareGroupState::Dead.name().to_string(),
        })
    }

    /// Checks that `group_id` is a share group without members (Kafka's
    /// `validateEmptyGroup`): GROUP_ID_NOT_FOUND or NON_EMPTY_GROUP otherwise.
    pub fn check_empty(&self, group_id: &str) -> Result<(), i16> {
        let Some(group) = self.groups.get(group_id) else {
            return Err(code::GROUP_ID_NOT_FOUND);
        };
        if group.state() != ShareGroupState::Empty {
            return Err(code::NON_EMPTY_GROUP);
        }
        Ok(())
    }

    /// The share-partitions of `group_id` that have (or may have) state: initialized,
    /// initializing, and the topics being deleted (all their partitions in `topics`),
    /// restricted to `only` topic ids when given. `None` when it is not a share group.
    pub fn state_partitions(
        &self,
        group_id: &str,
        only: Option<&BTreeSet<TopicId>>,
        topics: &dyn TopicsView,
    ) -> Option<Vec<ShareTopicPartitions>> {
        let group = self.groups.get(group_id)?;
        let meta = &group.state_metadata;
        let mut out: BTreeMap<TopicId, ShareTopicPartitions> = BTreeMap::new();
        let wanted = |id: &TopicId| only.is_none_or(|o| o.contains(id));
        for (id, t) in meta.initialized.iter().chain(meta.initializing.iter()) {
            if !wanted(id) {
                continue;
            }
            out.entry(*id)
                .or_insert_with(|| ShareTopicPartitions {
                    topic_id: *id,
                    topic_name: t.name.clone(),
                    partitions: BTreeSet::new(),
                })
                .partitions
                .extend(t.partitions.iter().copied());
        }
        for (id, name) in &meta.deleting {
            if !wanted(id) {
                continue;
            }
            let count = topics.partition_count(*id).unwrap_or(0);
            out.entry(*id)
                .or_insert_with(|| ShareTopicPartitions {
                    topic_id: *id,
                    topic_name: name.clone(),
                    partitions: BTreeSet::new(),
                })
                .partitions
                .extend(0..count);
        }
        Some(out.into_values().collect())
    }

    /// The initialized share-partitions of `group_id` (DescribeShareGroupOffsets with all
    /// topics); `None` when it is not a share group.
    pub fn initialized_partitions(&self, group_id: &str) -> Option<Vec<ShareTopicPartitions>> {
        let group = self.groups.get(group_id)?;
        Some(
            group
                .state_metadata
                .initialized
                .iter()
                .map(|(id, t)| ShareTopicPartitions {
                    topic_id: *id,
                    topic_name: t.name.clone(),
                    partitions: t.partitions.clone(),
                })
                .collect(),
        )
    }

    /// Before the state of `topic_ids` is deleted (DeleteShareGroupOffsets, or DeleteGroups
    /// with every topic): they move from initialized and initializing to deleting (Kafka's
    /// `sharePartitionDeleteRequests`). Returns the record to append.
    pub fn begin_state_deletion(
        &mut self,
        group_id: &str,
        topic_ids: &BTreeSet<TopicId>,
    ) -> Option<ShareGroupAppend> {
        let group = self.groups.get(group_id)?;
        let mut value = group.state_metadata.clone();
        for id in topic_ids {
            let name = value
                .initialized
                .remove(id)
                .map(|t| t.name)
                .into_iter()
                .chain(value.initializing.remove(id).map(|t| t.name))
                .next();
            if let Some(name) = name {
                value.deleting.insert(*id, name);
            }
        }
        self.write_state_metadata(group_id, value)
    }

    /// After the persister deleted the state of `topic_ids`: they leave deleting.
    pub fn complete_state_deletion(
        &mut self,
        group_id: &str,
        topic_ids: &BTreeSet<TopicId>,
    ) -> Option<ShareGroupAppend> {
        let group = self.groups.get(group_id)?;
        let mut value = group.state_metadata.clone();
        value.deleting.retain(|id, _| !topic_ids.contains(id));
        self.write_state_metadata(group_id, value)
    }

    /// AlterShareGroupOffsets: `partitions` are being initialized again at the offsets the
    /// administrator gave (Kafka's `alterShareGroupOffsets` records them initializing;
    /// [`initialize_completed`](Self::initialize_completed) then marks them initialized).
    /// An unknown id becomes an Empty share group, as in Kafka (the broker checks first that
    /// it names no group of another type). Returns the record to append.
    pub fn begin_alter(
        &mut self,
        group_id: &str,
        partitions: &BTreeMap<TopicId, (String, BTreeSet<i32>)>,
        now_ms: i64,
    ) -> Option<ShareGroupAppend> {
        if partitions.is_empty() {
            return None;
        }
        let mut value = self
            .groups
            .get(group_id)
            .map(|g| g.state_metadata.clone())
            .unwrap_or_default();
        for (id, (name, ps)) in partitions {
            let entry = value.initializing.entry(*id).or_insert_with(|| InitTopic {
                name: name.clone(),
                partitions: BTreeSet::new(),
                timestamp_ms: now_ms,
            });
            entry.timestamp_ms = now_ms;
            entry.partitions.extend(ps.iter().copied());
            value.deleting.remove(id);
        }
        self.write_state_metadata(group_id, value)
    }

    /// Deleted topics (Kafka's `maybeCleanupShareGroupState`): every group forgets their
    /// share-partitions, initialized, initializing or being deleted. Returns the records to
    /// append, per `__consumer_offsets` partition.
    pub fn forget_topics(&mut self, topic_ids: &BTreeSet<TopicId>) -> Vec<ShareGroupAppend> {
        let changed: Vec<(String, StatePartitionMetadata)> = self
            .groups
            .values()
            .filter_map(|g| {
                let mut value = g.state_metadata.clone();
                value.initializing.retain(|id, _| !topic_ids.contains(id));
                value.initialized.retain(|id, _| !topic_ids.contains(id));
                value.deleting.retain(|id, _| !topic_ids.contains(id));
                (value != g.state_metadata).then(|| (g.group_id.clone(), value))
            })
            .collect();
        let mut by_partition: BTreeMap<i32, Vec<Record>> = BTreeMap::new();
        for (group_id, value) in changed {
            if let Some(a) = self.write_state_metadata(&group_id, value) {
                by_partition
                    .entry(a.partition)
                    .or_default()
                    .extend(a.records);
            }
        }
        by_partition
            .into_iter()
            .map(|(partition, records)| ShareGroupAppend { partition, records })
            .collect()
    }

    /// Records `value` as the group's state partition metadata when it changed (or, for a
    /// group not known yet, when it is not empty). Returns the record to append.
    fn write_state_metadata(
        &mut self,
        group_id: &str,
        value: StatePartitionMetadata,
    ) -> Option<ShareGroupAppend> {
        let write = match self.groups.get(group_id) {
            Some(g) => g.state_metadata != value,
            // A new group (AlterShareGroupOffsets) comes with its first record.
            None => !value.is_empty(),
        };
        if !write {
            return None;
        }
        let mut records = Vec::new();
        self.emit(
            &mut records,
            ShareGroupRecord::StatePartitionMetadata {
                group_id: group_id.to_string(),
                value: Some(value),
            },
        );
        self.append_for(group_id, &records)
    }

    /// DeleteGroups for a share group, once its share-partitions' state is deleted: only an
    /// Empty group may go (NON_EMPTY_GROUP otherwise). Returns the tombstones to append;
    /// the group is gone from memory already.
    pub fn delete_group(&mut self, group_id: &str) -> Result<ShareGroupAppend, i16> {
        self.check_empty(group_id)?;
        let tombstones = self
            .groups
            .get(group_id)
            .map(ShareGroup::tombstones)
            .unwrap_or_default();
        let mut records = Vec::new();
        for r in tombstones {
            self.emit(&mut records, r);
        }
        self.groups.remove(group_id);
        self.sessions.retain(|(g, _), _| g != group_id);
        self.initialize_retries.remove(group_id);
        Ok(ShareGroupAppend {
            partition: self.partition_for(group_id),
            records: records.iter().map(ShareGroupRecord::encode).collect(),
        })
    }
}

/// Applies one record to a map of groups: a record with a value creates its group, the
/// group metadata tombstone removes it, other tombstones of unknown groups are ignored.
fn replay_into(groups: &mut BTreeMap<String, ShareGroup>, record: &ShareGroupRecord) {
    let group_id = record.group_id();
    if let ShareGroupRecord::GroupMetadata { value: None, .. } = record {
        groups.remove(group_id);
        return;
    }
    if record.is_tombstone() {
        if let Some(g) = groups.get_mut(group_id) {
            g.replay(record);
        }
    } else {
        groups
            .entry(group_id.to_string())
            .or_insert_with(|| ShareGroup::new(group_id))
            .replay(record);
    }
}

/// Kafka's `throwIfShareGroupMemberEpochIsInvalid`: epoch 0 (re)joins; an epoch ahead of the
/// member's is fenced; one behind is fenced unless it is the previous epoch (the response
/// that carried the new one was lost).
fn check_member_epoch(member: &ShareGroupMember, received: i32) -> Result<(), HeartbeatError> {
    if received == JOIN_GROUP_MEMBER_EPOCH {
        return Ok(());
    }
    if received > member.member_epoch {
        return err(
            codes::FENCED_MEMBER_EPOCH,
            format!(
                "The share group member has a greater member epoch ({received}) than the one known by the group coordinator ({}). The member must abandon all its partitions and rejoin.",
                member.member_epoch
            ),
        );
    }
    if received < member.member_epoch && received != member.previous_member_epoch {
        return err(
            codes::FENCED_MEMBER_EPOCH,
            format!(
                "The share group member has a smaller member epoch ({received}) than the one known by the group coordinator ({}), and it does not match the previous member epoch ({}). The member must abandon all its partitions and rejoin.",
                member.member_epoch, member.previous_member_epoch
            ),
        );
    }
    Ok(())
}

/// The share-partitions the assignor may hand out: the initialized ones of topics that
/// still exist, below their partition count.
fn assignable_partitions(
    group: &ShareGroup,
    topics: &dyn TopicsView,
) -> BTreeMap<TopicId, BTreeSet<i32>> {
    group
        .state_metadata
        .initialized
        .iter()
        .filter_map(|(id, t)| {
            let count = topics.partition_count(*id)?;
            let ps: BTreeSet<i32> = t
                .partitions
                .iter()
                .copied()
                .filter(|p| *p < count)
                .collect();
            (!ps.is_empty()).then_some((*id, ps))
        })
        .collect()
}

/// Kafka's `initializedAssignmentPending`: the group has members, and some initialized
/// share-partitions of a subscribed topic are not in the target assignment (they were
/// initialized after it was computed): a new epoch assigns them.
fn initialized_assignment_pending(group: &ShareGroup, topics: &dyn TopicsView) -> bool {
    if group.members.is_empty() || group.state_metadata.initialized.is_empty() {
        return false;
    }
    let subscribed: BTreeSet<TopicId> = group
        .subscribed_topic_names()
        .iter()
        .filter_map(|n| topics.topic_id(n))
        .collect();
    let mut assigned: TopicPartitions = TopicPartitions::new();
    for tp in group.target_assignment.values() {
        for (id, ps) in tp {
            assigned.entry(*id).or_default().extend(ps.iter().copied());
        }
    }
    assignable_partitions(group, topics)
        .iter()
        .filter(|(id, _)| subscribed.contains(id))
        .any(|(id, ps)| assigned.get(id) != Some(ps))
}

/// A hash of the subscribed topics' metadata (name, id, partition count of each that
/// exists): a change of any of them bumps the group epoch. Kafka hashes the same facts
/// (and the racks) with Murmur3; this value is only compared with itself. 0 for none.
fn metadata_hash(subscribed: &BTreeSet<String>, topics: &dyn TopicsView) -> i64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut hash = OFFSET;
    let mut any = false;
    let mut feed = |bytes: &[u8]| {
        for b in bytes {
            hash ^= u64::from(*b);
            hash = hash.wrapping_mul(PRIME);
        }
    };
    for name in subscribed {
        let Some(id) = topics.topic_id(name) else {
            continue;
        };
        any = true;
        feed(name.as_bytes());
        feed(&[0]);
        feed(&id.0);
        feed(&topics.partition_count(id).unwrap_or(0).to_be_bytes());
    }
    if any {
        hash as i64
    } else {
        0
    }
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
