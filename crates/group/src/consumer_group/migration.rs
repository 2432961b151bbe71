//! KIP-848 online migration, the consumer core's half (Kafka's `GroupMetadataManager`:
//! `convertToConsumerGroup`, `classicGroupJoinToConsumerGroup`,
//! `classicGroupSyncToConsumerGroup`, `classicGroupHeartbeatToConsumerGroup`,
//! `classicGroupLeaveToConsumerGroup`, `convertToClassicGroup`).
//!
//! A consumer group may hold classic members: they keep speaking JoinGroup, SyncGroup and
//! Heartbeat, and the coordinator treats them as consumer-protocol members whose
//! subscription and owned partitions come from their JoinGroup metadata.
//!
//! ```text
//!  JoinGroup  ─► member updated from its subscription, group epoch / target assignment /
//!                reconciliation as for a heartbeat ─► generation = member epoch, no leader
//!  SyncGroup  ─► its current assignment (never a partition another member still owns)
//!  Heartbeat  ─► REBALANCE_IN_PROGRESS while group epoch > member epoch, while it must
//!                revoke, or when partitions it waits for were released: it rejoins
//!  LeaveGroup / session, join or sync timeout ─► fenced; when only classic members are
//!                left the group goes back to the classic core (take_downgrades)
//! ```

use std::collections::{BTreeMap, BTreeSet};

use super::api::{codes, ConsumerGroupAppend};
use super::coordinator::{err, subscription_metadata, ConsumerGroupCoordinator, HeartbeatError};
use super::group::{current_assignment_record, member_metadata_record, ConsumerGroup};
use super::member::{ConsumerGroupMember, MemberState};
use super::records::{ClassicMemberMetadata, ConsumerGroupRecord};
use super::topics::{TopicPartitions, TopicsView};
use crate::api::{
    ClassicGroupSnapshot, ClassicMemberSnapshot, HeartbeatRequest, HeartbeatResponse,
    JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest, LeaveGroupResponse,
    LeaveMemberResponse, Output, Protocol, RequestId, Response, SyncGroupRequest,
    SyncGroupResponse,
};
use crate::consumer_protocol::{
    decode_assignment, decode_subscription, encode_assignment, CONSUMER_PROTOCOL_TYPE,
};
use crate::error::code;

impl ConsumerGroupCoordinator {
    /// A member's session timeout: its classic one, or its group's (`consumer.session.
    /// timeout.ms`, else `group.consumer.session.timeout.ms`).
    pub(super) fn session_timeout_of(&self, group_id: &str, m: &ConsumerGroupMember) -> i64 {
        i64::from(
            m.classic
                .as_ref()
                .map_or(self.session_timeout_ms(group_id), |c| c.session_timeout_ms),
        )
    }

    /// Kafka's `validateOnlineUpgrade`: may this classic group become a consumer group when
    /// a consumer-protocol member joins it? `Err` says why not (for the log); the member
    /// then gets GROUP_ID_NOT_FOUND.
    pub fn can_upgrade(&self, snapshot: &ClassicGroupSnapshot) -> Result<(), String> {
        if !self.config.migration_policy.is_upgrade_enabled() {
            return Err("the online upgrade is disabled".into());
        }
        if snapshot.protocol_type.as_deref() != Some(CONSUMER_PROTOCOL_TYPE) {
            return Err("the group does not use the consumer embedded protocol".into());
        }
        if snapshot.members.len() > self.config.max_size {
            return Err("the group size exceeds the consumer group maximum size".into());
        }
        Ok(())
    }

    /// Kafka's `convertToConsumerGroup` / `ConsumerGroup.fromClassicGroup`: the classic
    /// members become members of a consumer group at epoch = the classic generation, each
    /// Stable with the assignment it had, which is also the target. The records to append
    /// come back (after the classic core's tombstone of the group). Nothing changes if a
    /// member's embedded protocol does not decode.
    pub fn convert_from_classic(
        &mut self,
        snapshot: &ClassicGroupSnapshot,
        topics: &dyn TopicsView,
        now_ms: i64,
    ) -> Result<ConsumerGroupAppend, String> {
        let group_id = snapshot.group_id.as_str();
        let epoch = snapshot.generation_id;
        let mut members = Vec::new();
        for m in &snapshot.members {
            let metadata = snapshot
                .protocol_name
                .as_deref()
                .and_then(|p| m.protocols.iter().find(|x| x.name == p))
                .or(m.protocols.first())
                .map(|p| p.metadata.clone())
                .unwrap_or_default();
            let sub = decode_subscription(&metadata)
                .map_err(|e| format!("member {}: subscription: {e}", m.member_id))?;
            let assigned = decode_assignment(&m.assignment)
                .map_err(|e| format!("member {}: assignment: {e}", m.member_id))?;
            members.push(ConsumerGroupMember {
                member_id: m.member_id.clone(),
                instance_id: m.group_instance_id.clone(),
                rack_id: sub.rack_id,
                client_id: m.client_id.clone(),
                client_host: m.client_host.clone(),
                subscribed_topic_names: sub.topics.into_iter().collect(),
                subscribed_topic_regex: None,
                rebalance_timeout_ms: m.rebalance_timeout_ms,
                server_assignor: None,
                member_epoch: epoch,
                previous_member_epoch: epoch,
                state: MemberState::Stable,
                assigned_partitions: ids_of(&assigned, topics),
                partitions_pending_revocation: TopicPartitions::new(),
                classic: Some(ClassicMemberMetadata {
                    session_timeout_ms: m.session_timeout_ms,
                    supported_protocols: m
                        .protocols
                        .iter()
                        .map(|p| (p.name.clone(), p.metadata.clone()))
                        .collect(),
                }),
            });
        }
        let mut records = Vec::new();
        let g = group_id.to_string();
        for m in &members {
            self.emit(&mut records, member_metadata_record(group_id, m));
        }
        self.emit(
            &mut records,
            ConsumerGroupRecord::GroupEpoch {
                group_id: g.clone(),
                epoch: Some(epoch),
            },
        );
        let empty = ConsumerGroup::new(group_id);
        let group = self.groups.get(group_id).unwrap_or(&empty);
        let metadata = subscription_metadata(group, topics, &BTreeMap::new());
        self.emit(
            &mut records,
            ConsumerGroupRecord::SubscriptionMetadata {
                group_id: g.clone(),
                topics: Some(metadata.into_values().collect()),
            },
        );
        for m in &members {
            self.emit(
                &mut records,
                ConsumerGroupRecord::TargetAssignmentMember {
                    group_id: g.clone(),
                    member_id: m.member_id.clone(),
                    partitions: Some(m.assigned_partitions.clone()),
                },
            );
        }
        self.emit(
            &mut records,
            ConsumerGroupRecord::TargetAssignmentEpoch {
                group_id: g.clone(),
                epoch: Some(epoch),
            },
        );
        for m in &members {
            self.emit(&mut records, current_assignment_record(group_id, m));
            self.sessions.insert(
                (g.clone(), m.member_id.clone()),
                now_ms.saturating_add(self.session_timeout_of(group_id, m)),
            );
        }
        Ok(self
            .append_for(group_id, records)
            .unwrap_or(ConsumerGroupAppend {
                partition: self.partition_for(group_id),
                records: Vec::new(),
            }))
    }

    /// JoinGroup from a classic member of consumer group `req.group_id` (Kafka's
    /// `classicGroupJoinToConsumerGroup`). The answer comes after the records are appended.
    pub fn classic_join(
        &mut self,
        request: RequestId,
        req: &JoinGroupRequest,
        topics: &dyn TopicsView,
        now_ms: i64,
    ) -> Vec<Output> {
        let mut records = Vec::new();
        let response = match self.classic_join_inner(req, topics, now_ms, &mut records) {
            Ok(r) => r,
            Err(e) => JoinGroupResponse::error(&req.member_id, e.code),
        };
        self.outputs(
            &req.group_id,
            records,
            request,
            Response::JoinGroup(response),
        )
    }

    fn classic_join_inner(
        &mut self,
        req: &JoinGroupRequest,
        topics: &dyn TopicsView,
        now_ms: i64,
        records: &mut Vec<ConsumerGroupRecord>,
    ) -> Result<JoinGroupResponse, HeartbeatError> {
        let group_id = req.group_id.as_str();
        let is_unknown = req.member_id.is_empty();
        let member_id = if is_unknown {
            self.next_member_id()
        } else {
            req.member_id.clone()
        };
        let Some(group) = self.groups.get(group_id) else {
            return err(
                code::UNKNOWN_MEMBER_ID,
                "The group is not a consumer group.",
            );
        };
        let replaces_static = req
            .group_instance_id
            .as_deref()
            .is_some_and(|i| group.static_member(i).is_some());
        if !replaces_static
            && !group.members.contains_key(&member_id)
            && group.members.len() >= self.config.max_size
        {
            return err(
                codes::GROUP_MAX_SIZE_REACHED,
                "The consumer group has reached its maximum capacity.",
            );
        }
        if req.protocol_type != CONSUMER_PROTOCOL_TYPE || req.protocols.is_empty() {
            return err(
                code::INCONSISTENT_GROUP_PROTOCOL,
                format!(
                    "Member {member_id} can't join group {group_id}: protocol type {} is not the consumer protocol.",
                    req.protocol_type
                ),
            );
        }
        if req.require_known_member_id && is_unknown && req.group_instance_id.is_none() {
            let mut r = JoinGroupResponse::error(&member_id, code::MEMBER_ID_REQUIRED);
            r.member_id = member_id;
            return Ok(r);
        }
        let sub = decode_subscription(&req.protocols[0].metadata).map_err(|e| HeartbeatError {
            code: code::INCONSISTENT_GROUP_PROTOCOL,
            message: format!("Malformed embedded consumer protocol: {e}."),
        })?;
        // The member as it is (or a new one), and a static member it replaces.
        let (member, replaced) = match &req.group_instance_id {
            None => (
                group
                    .member(&member_id)
                    .cloned()
                    .unwrap_or_else(|| ConsumerGroupMember::new(&member_id)),
                None,
            ),
            Some(instance_id) => match group.static_member(instance_id) {
                None => (ConsumerGroupMember::new(&member_id), None),
                Some(existing) if is_unknown => {
                    let mut m = existing.clone();
                    m.member_id = member_id.clone();
                    (m, Some(existing.clone()))
                }
                Some(existing) if existing.member_id != member_id => {
                    return err(
                        codes::FENCED_INSTANCE_ID,
                        format!(
                            "Static member {member_id} with instance id {instance_id} was fenced by member {}.",
                            existing.member_id
                        ),
                    );
                }
                Some(existing) => (existing.clone(), None),
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
        let mut updated = member.clone();
        if let Some(i) = &req.group_instance_id {
            updated.instance_id = Some(i.clone());
        }
        if let Some(r) = &sub.rack_id {
            updated.rack_id = Some(r.clone());
        }
        if req.rebalance_timeout_ms != -1 {
            updated.rebalance_timeout_ms = req.rebalance_timeout_ms;
        }
        updated.subscribed_topic_names = sub.topics.iter().cloned().collect();
        updated.client_id = req.client_id.clone();
        updated.client_host = req.client_host.clone();
        updated.classic = Some(ClassicMemberMetadata {
            session_timeout_ms: req.session_timeout_ms,
            supported_protocols: req
                .protocols
                .iter()
                .map(|p| (p.name.clone(), p.metadata.clone()))
                .collect(),
        });
        let owned = ids_of(&sub.owned_partitions, topics);
        let reconciled = self.update_member(
            group_id,
            &member,
            in_group.as_ref(),
            updated,
            Some(&owned),
            topics,
            now_ms,
            records,
        )?;
        let key = (group_id.to_string(), member_id.clone());
        self.sessions.insert(
            key.clone(),
            now_ms.saturating_add(i64::from(req.session_timeout_ms)),
        );
        // The sync timeout: SyncGroup must follow within the rebalance timeout.
        self.classic_deadlines.insert(
            key,
            now_ms.saturating_add(i64::from(req.rebalance_timeout_ms.max(0))),
        );
        Ok(JoinGroupResponse {
            error_code: code::NONE,
            generation_id: reconciled.member_epoch,
            protocol_type: Some(CONSUMER_PROTOCOL_TYPE.to_string()),
            protocol_name: Some(req.protocols[0].name.clone()),
            leader: String::new(),
            member_id,
            members: Vec::new(),
        })
    }

    /// Kafka's `validateConsumerGroupMember` plus `throwIfMemberDoesNotUseClassicProtocol`.
    fn classic_member(
        &self,
        group_id: &str,
        member_id: &str,
        instance_id: Option<&str>,
    ) -> Result<(&ConsumerGroup, ConsumerGroupMember), HeartbeatError> {
        let Some(group) = self.groups.get(group_id) else {
            return err(
                code::UNKNOWN_MEMBER_ID,
                format!("Group {group_id} not found."),
            );
        };
        let member = match instance_id {
            None => group.member(member_id),
            Some(i) => {
                let m = group.static_member(i);
                if let Some(m) = m.filter(|m| m.member_id != member_id) {
                    return err(
                        codes::FENCED_INSTANCE_ID,
                        format!(
                            "Static member {member_id} with instance id {i} was fenced by member {}.",
                            m.member_id
                        ),
                    );
                }
                m
            }
        };
        let Some(member) = member else {
            return err(
                code::UNKNOWN_MEMBER_ID,
                format!("Member {member_id} is not a member of group {group_id}."),
            );
        };
        if !member.uses_classic_protocol() {
            return err(
                code::UNKNOWN_MEMBER_ID,
                format!("Member {member_id} does not use the classic protocol."),
            );
        }
        Ok((group, member.clone()))
    }

    /// Kafka's join timeout: the member was told to rejoin and must within its rebalance
    /// timeout (a pending sync timeout stays as it is).
    fn schedule_join_timeout(&mut self, group_id: &str, m: &ConsumerGroupMember, now_ms: i64) {
        self.classic_deadlines
            .entry((group_id.to_string(), m.member_id.clone()))
            .or_insert_with(|| now_ms.saturating_add(i64::from(m.rebalance_timeout_ms.max(0))));
    }

    /// SyncGroup from a classic member of a consumer group: its current assignment, encoded
    /// with the version of its subscription (Kafka's `classicGroupSyncToConsumerGroup`).
    pub fn classic_sync(
        &mut self,
        req: &SyncGroupRequest,
        topics: &dyn TopicsView,
        now_ms: i64,
    ) -> SyncGroupResponse {
        match self.classic_sync_inner(req, topics, now_ms) {
            Ok(r) => r,
            Err(e) => SyncGroupResponse {
                error_code: e.code,
                protocol_type: None,
                protocol_name: None,
                assignment: bytes::Bytes::new(),
            },
        }
    }

    fn classic_sync_inner(
        &mut self,
        req: &SyncGroupRequest,
        topics: &dyn TopicsView,
        now_ms: i64,
    ) -> Result<SyncGroupResponse, HeartbeatError> {
        let (group, member) = self.classic_member(
            &req.group_id,
            &req.member_id,
            req.group_instance_id.as_deref(),
        )?;
        if member.member_epoch != req.generation_id {
            return err(
                code::ILLEGAL_GENERATION,
                format!(
                    "The request generation id {} is not equal to the member epoch {} of member {}.",
                    req.generation_id, member.member_epoch, member.member_id
                ),
            );
        }
        let protocols = member
            .classic
            .as_ref()
            .map(|c| c.supported_protocols.clone())
            .unwrap_or_default();
        let first = protocols.first().cloned().unwrap_or_default();
        if req
            .protocol_type
            .as_deref()
            .is_some_and(|t| t != CONSUMER_PROTOCOL_TYPE)
            || req.protocol_name.as_deref().is_some_and(|n| n != first.0)
        {
            return err(
                code::INCONSISTENT_GROUP_PROTOCOL,
                "The protocol type or name of the request is not the group's.",
            );
        }
        let group_epoch = group.group_epoch;
        let key = (req.group_id.clone(), member.member_id.clone());
        if group_epoch > member.member_epoch && member.state != MemberState::UnrevokedPartitions {
            self.schedule_join_timeout(&req.group_id, &member, now_ms);
            return err(
                code::REBALANCE_IN_PROGRESS,
                "A new rebalance is triggered: the member should rejoin to catch up.",
            );
        }
        self.classic_deadlines.remove(&key);
        self.sessions.insert(
            key,
            now_ms.saturating_add(self.session_timeout_of(&req.group_id, &member)),
        );
        let version = first
            .1
            .get(..2)
            .map_or(0, |v| i16::from_be_bytes([v[0], v[1]]));
        Ok(SyncGroupResponse {
            error_code: code::NONE,
            protocol_type: req.protocol_type.clone(),
            protocol_name: req.protocol_name.clone(),
            assignment: encode_assignment(version, &names_of(&member.assigned_partitions, topics)),
        })
    }

    /// Heartbeat from a classic member of a consumer group (Kafka's
    /// `classicGroupHeartbeatToConsumerGroup`): REBALANCE_IN_PROGRESS when it must rejoin.
    pub fn classic_heartbeat(&mut self, req: &HeartbeatRequest, now_ms: i64) -> HeartbeatResponse {
        let error_code = match self.classic_heartbeat_inner(req, now_ms) {
            Ok(()) => code::NONE,
            Err(e) => e.code,
        };
        HeartbeatResponse { error_code }
    }

    fn classic_heartbeat_inner(
        &mut self,
        req: &HeartbeatRequest,
        now_ms: i64,
    ) -> Result<(), HeartbeatError> {
        let (group, member) = self.classic_member(
            &req.group_id,
            &req.member_id,
            req.group_instance_id.as_deref(),
        )?;
        if member.member_epoch != req.generation_id {
            return err(code::ILLEGAL_GENERATION, "Illegal generation.");
        }
        let must_rejoin = member.member_epoch < group.group_epoch
            || member.state == MemberState::UnrevokedPartitions
            || (member.state == MemberState::UnreleasedPartitions
                && !waiting_on_unreleased(group, &member));
        let key = (req.group_id.clone(), member.member_id.clone());
        self.sessions.insert(
            key,
            now_ms.saturating_add(self.session_timeout_of(&req.group_id, &member)),
        );
        if must_rejoin {
            self.schedule_join_timeout(&req.group_id, &member, now_ms);
            return err(code::REBALANCE_IN_PROGRESS, "The member should rejoin.");
        }
        Ok(())
    }

    /// LeaveGroup for classic members of a consumer group (Kafka's
    /// `classicGroupLeaveToConsumerGroup`).
    pub fn classic_leave(
        &mut self,
        request: RequestId,
        req: &LeaveGroupRequest,
        topics: &dyn TopicsView,
    ) -> Vec<Output> {
        let group_id = req.group_id.as_str();
        let mut records = Vec::new();
        let mut answers = Vec::new();
        let mut leaving = BTreeSet::new();
        for identity in &req.members {
            let resolved = match &identity.group_instance_id {
                None => self
                    .classic_member(group_id, &identity.member_id, None)
                    .map(|(_, m)| m),
                Some(i) => {
                    let existing = self
                        .groups
                        .get(group_id)
                        .and_then(|g| g.static_member(i))
                        .map(|m| m.member_id.clone());
                    match existing {
                        None => err(
                            code::UNKNOWN_MEMBER_ID,
                            format!("Instance id {i} is unknown."),
                        ),
                        // Administrative removal names the instance id only.
                        Some(id) if identity.member_id.is_empty() => {
                            self.classic_member(group_id, &id, Some(i)).map(|(_, m)| m)
                        }
                        Some(_) => self
                            .classic_member(group_id, &identity.member_id, Some(i))
                            .map(|(_, m)| m),
                    }
                }
            };
            match resolved {
                Ok(m) => {
                    answers.push(LeaveMemberResponse {
                        member_id: m.member_id.clone(),
                        group_instance_id: identity.group_instance_id.clone(),
                        error_code: code::NONE,
                    });
                    leaving.insert(m.member_id);
                }
                Err(e) => answers.push(LeaveMemberResponse {
                    member_id: identity.member_id.clone(),
                    group_instance_id: identity.group_instance_id.clone(),
                    error_code: e.code,
                }),
            }
        }
        for member_id in &leaving {
            self.remove_member_records(group_id, member_id, &mut records);
        }
        if !leaving.is_empty() {
            self.bump_after_removal(group_id, topics, &mut records);
        }
        let response = LeaveGroupResponse {
            error_code: code::NONE,
            members: answers,
        };
        self.outputs(group_id, records, request, Response::LeaveGroup(response))
    }

    /// `response` to `request`, after `records` are appended if there are any.
    fn outputs(
        &self,
        group_id: &str,
        records: Vec<ConsumerGroupRecord>,
        request: RequestId,
        response: Response,
    ) -> Vec<Output> {
        match self.append_for(group_id, records) {
            Some(a) => vec![Output::Append {
                partition: a.partition,
                records: a.records,
                then: vec![(request, response)],
                transaction: None,
            }],
            None => vec![Output::Respond { request, response }],
        }
    }

    /// Kafka's `validateOnlineDowngradeWithFencedMember` and `convertToClassicGroup`: when
    /// only classic members are left (at least one), the policy allows it and they fit in a
    /// classic group, the consumer group's records get their tombstones and its members go
    /// to [`take_downgrades`](Self::take_downgrades) for the classic core.
    pub(super) fn maybe_downgrade(
        &mut self,
        group_id: &str,
        topics: &dyn TopicsView,
        records: &mut Vec<ConsumerGroupRecord>,
    ) {
        let Some(group) = self.groups.get(group_id) else {
            return;
        };
        let allowed = self.config.migration_policy.is_downgrade_enabled()
            && !group.members.is_empty()
            && group.members.values().all(|m| m.uses_classic_protocol())
            && group.members.len() <= self.config.classic_max_size;
        if !allowed {
            return;
        }
        let protocols: Vec<Vec<Protocol>> = group
            .members
            .values()
            .map(|m| {
                m.classic
                    .iter()
                    .flat_map(|c| c.supported_protocols.iter())
                    .map(|(name, metadata)| Protocol {
                        name: name.clone(),
                        metadata: metadata.clone(),
                    })
                    .collect()
            })
            .collect();
        let protocol_name = crate::migration::common_protocols(&protocols)
            .into_iter()
            .next()
            .or_else(|| protocols.first()?.first().map(|p| p.name.clone()));
        let members = group
            .members
            .values()
            .zip(protocols)
            .map(|(m, protocols)| {
                let version = protocols
                    .iter()
                    .find(|p| Some(&p.name) == protocol_name.as_ref())
                    .and_then(|p| p.metadata.get(..2))
                    .map_or(0, |v| i16::from_be_bytes([v[0], v[1]]));
                ClassicMemberSnapshot {
                    member_id: m.member_id.clone(),
                    group_instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    session_timeout_ms: m
                        .classic
                        .as_ref()
                        .map_or(self.session_timeout_ms(group_id), |c| c.session_timeout_ms),
                    rebalance_timeout_ms: m.rebalance_timeout_ms,
                    protocols,
                    assignment: encode_assignment(
                        version,
                        &names_of(&m.assigned_partitions, topics),
                    ),
                }
            })
            .collect();
        let snapshot = ClassicGroupSnapshot {
            group_id: group_id.to_string(),
            generation_id: group.group_epoch,
            protocol_type: Some(CONSUMER_PROTOCOL_TYPE.to_string()),
            protocol_name,
            members,
        };
        for r in group.tombstones() {
            self.emit(records, r);
        }
        self.groups.remove(group_id);
        self.sessions.retain(|(g, _), _| g != group_id);
        self.rebalance_timeouts.retain(|(g, _), _| g != group_id);
        self.classic_deadlines.retain(|(g, _), _| g != group_id);
        self.downgrades.push(snapshot);
    }

    /// The groups downgraded since the last call: give each to the classic core's
    /// `import_from_consumer` after appending the records of the call that downgraded it.
    pub fn take_downgrades(&mut self) -> Vec<ClassicGroupSnapshot> {
        std::mem::take(&mut self.downgrades)
    }
}

/// Kafka's `waitingOnUnreleasedPartition`: some partition of the member's target is still
/// owned by another member.
fn waiting_on_unreleased(group: &ConsumerGroup, member: &ConsumerGroupMember) -> bool {
    let Some(target) = group.target_assignment(&member.member_id) else {
        return false;
    };
    target.iter().any(|(topic, partitions)| {
        partitions.iter().any(|p| {
            !member
                .assigned_partitions
                .get(topic)
                .is_some_and(|a| a.contains(p))
                && group.current_partition_epoch(*topic, *p) != -1
        })
    })
}

/// Partitions by topic name → by topic id (topics the cluster no longer has are dropped).
fn ids_of(named: &[(String, Vec<i32>)], topics: &dyn TopicsView) -> TopicPartitions {
    let mut out = TopicPartitions::new();
    for (name, partitions) in named {
        if let Some(id) = topics.topic_id(name) {
            out.entry(id)
                .or_default()
                .extend(partitions.iter().copied());
        }
    }
    out.retain(|_, p| !p.is_empty());
    out
}

/// Partitions by topic id → by topic name.
fn names_of(tp: &TopicPartitions, topics: &dyn TopicsView) -> Vec<(String, Vec<i32>)> {
    tp.iter()
        .filter_map(|(id, partitions)| {
            Some((
                topics.topic_name(*id)?.to_string(),
                partitions.iter().copied().collect(),
            ))
        })
        .collect()
}
