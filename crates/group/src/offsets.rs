//! Committed offsets and the group-admin APIs: OffsetCommit, OffsetFetch, OffsetDelete,
//! DeleteGroups, ListGroups, DescribeGroups, and offsets retention.
//!
//! Offsets live in the group (Kafka's `GroupMetadata.offsets`); a group that only stores
//! offsets ("simple"/standalone consumer, generation -1) is an Empty group without a protocol
//! type. Every change returns an `Output::Append` of `__consumer_offsets` records whose `then`
//! carries the response, so the broker acknowledges a commit only once it is in the log.
//! Topic existence is the broker's business: it answers UNKNOWN_TOPIC_OR_PARTITION for
//! partitions it does not host before calling here.

use std::collections::{BTreeMap, BTreeSet};

use crate::api::*;
use crate::coordinator::GroupCoordinator;
use crate::error::code;
use crate::group::{CommittedOffset, Group};
use crate::records::{group_record, offset_record, partition_for_group, OffsetCommitValue, Record};
use crate::state::GroupState;

impl GroupCoordinator {
    /// OffsetCommit (Kafka's `handleCommitOffsets` / `doCommitOffsets`).
    pub fn commit_offsets(
        &mut self,
        request: RequestId,
        req: OffsetCommitRequest,
        now_ms: i64,
    ) -> Vec<Output> {
        let all_with = |error: i16| errors_for_all(&req.topics, error);
        let respond = |topics| {
            vec![Output::Respond {
                request,
                response: Response::OffsetCommit(OffsetCommitResponse { topics }),
            }]
        };
        if !self.groups.contains_key(&req.group_id) {
            if req.generation_id >= 0 {
                // A member of a generation we never saw (or a lost group): reject.
                return respond(all_with(code::ILLEGAL_GENERATION));
            }
            // Kafka is only used to store offsets for this group.
            self.groups.insert(
                req.group_id.clone(),
                Group::new(req.group_id.clone(), now_ms),
            );
        }
        let Some(group) = self.groups.get_mut(&req.group_id) else {
            return Vec::new();
        };
        if let Some(error) = validate_offset_commit(group, &req) {
            return respond(all_with(error));
        }
        if let Some(member) = group.member_mut(&req.member_id) {
            // A commit proves the member is alive, like a heartbeat.
            member.heartbeat_deadline_ms = now_ms + i64::from(member.session_timeout_ms);
        }
        let (records, topics) = offset_records(
            &req.group_id,
            &req.topics,
            now_ms,
            self.config.offset_metadata_max_bytes,
            &mut self.next_record_position,
            |tp, committed| {
                group.offsets.insert(tp, committed);
            },
        );
        let response = Response::OffsetCommit(OffsetCommitResponse { topics });
        if records.is_empty() {
            return vec![Output::Respond { request, response }];
        }
        vec![Output::Append {
            partition: partition_for_group(&req.group_id, self.config.offsets_topic_num_partitions),
            records,
            then: vec![(request, response)],
            transaction: None,
        }]
    }

    /// OffsetFetch for one group. Partitions without a committed offset read -1; `topics:
    /// None` returns everything the group committed. An unknown group is not an error. With
    /// `require_stable`, a partition with offsets of an open transaction answers
    /// UNSTABLE_OFFSET_COMMIT (Kafka's `fetchOffsets`); without it, the committed offset.
    pub fn fetch_offsets(&self, req: &OffsetFetchRequest) -> OffsetFetchResponse {
        let group = self.groups.get(&req.group_id);
        let lookup = |topic: &str, partition: i32| -> OffsetFetchPartition {
            let tp = (topic.to_string(), partition);
            if req.require_stable && group.is_some_and(|g| g.has_pending_txn_offset(&tp)) {
                return OffsetFetchPartition {
                    partition_index: partition,
                    committed_offset: -1,
                    committed_leader_epoch: -1,
                    metadata: String::new(),
                    error_code: code::UNSTABLE_OFFSET_COMMIT,
                };
            }
            let committed = group.and_then(|g| g.offsets.get(&tp)).map(|c| &c.value);
            match committed {
                Some(v) => OffsetFetchPartition {
                    partition_index: partition,
                    committed_offset: v.offset,
                    committed_leader_epoch: v.leader_epoch,
                    metadata: v.metadata.clone(),
                    error_code: code::NONE,
                },
                None => OffsetFetchPartition {
                    partition_index: partition,
                    committed_offset: -1,
                    committed_leader_epoch: -1,
                    metadata: String::new(),
                    error_code: code::NONE,
                },
            }
        };
        let topics = match &req.topics {
            Some(topics) => topics
                .iter()
                .map(|t| OffsetFetchTopic {
                    name: t.name.clone(),
                    partitions: t.partitions.iter().map(|p| lookup(&t.name, *p)).collect(),
                })
                .collect(),
            None => {
                let mut by_topic: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
                for (topic, partition) in group.iter().flat_map(|g| g.offsets.keys()) {
                    by_topic.entry(topic).or_default().push(*partition);
                }
                by_topic
                    .into_iter()
                    .map(|(name, parts)| OffsetFetchTopic {
                        name: name.to_string(),
                        partitions: parts.into_iter().map(|p| lookup(name, p)).collect(),
                    })
                    .collect()
            }
        };
        OffsetFetchResponse {
            error_code: code::NONE,
            topics,
        }
    }

    /// Every committed offset this coordinator holds, by group, topic and partition, with the
    /// group's member count (classic members; 0 for an offsets-only group): what the broker
    /// reports as consumer lag, once per group in the cluster, from its coordinator.
    pub fn committed_offsets(&self) -> Vec<GroupOffsets> {
        self.groups
            .iter()
            .filter(|(_, g)| !g.offsets.is_empty())
            .map(|(id, g)| GroupOffsets {
                group_id: id.clone(),
                members: g.members.len(),
                offsets: g
                    .offsets
                    .iter()
                    .map(|((t, p), c)| (t.clone(), *p, c.value.offset))
                    .collect(),
            })
            .collect()
    }

    /// OffsetDelete (Kafka's `handleDeleteOffsets`): a non-empty consumer group may only drop
    /// offsets of topics it does not subscribe to.
    pub fn delete_offsets(
        &mut self,
        request: RequestId,
        req: OffsetDeleteRequest,
        _now_ms: i64,
    ) -> Vec<Output> {
        let top_level = |error_code: i16| {
            vec![Output::Respond {
                request,
                response: Response::OffsetDelete(OffsetDeleteResponse {
                    error_code,
                    topics: Vec::new(),
                }),
            }]
        };
        let Some(group) = self.groups.get_mut(&req.group_id) else {
            return top_level(code::GROUP_ID_NOT_FOUND);
        };
        // Empty: anything goes; a live consumer group: only topics it does not subscribe to.
        let only_unsubscribed = match group.state {
            GroupState::Dead => return top_level(code::GROUP_ID_NOT_FOUND),
            GroupState::Empty => false,
            _ if group.is_consumer_group() => true,
            _ => return top_level(code::NON_EMPTY_GROUP),
        };
        let mut records = Vec::new();
        let mut topics = Vec::with_capacity(req.topics.len());
        for t in &req.topics {
            let allowed = !only_unsubscribed || !group.is_subscribed_to(&t.name);
            let mut partitions = Vec::with_capacity(t.partitions.len());
            for &p in &t.partitions {
                let error_code = if allowed {
                    // A tombstone deletes the committed offset and any pending one.
                    let tp = (t.name.clone(), p);
                    let pending = group.has_pending_txn_offset(&tp);
                    if group.offsets.remove(&tp).is_some() || pending {
                        group.remove_pending_txn_offset(&tp);
                        records.push(offset_record(&group.group_id, &t.name, p, None));
                    }
                    code::NONE
                } else {
                    code::GROUP_SUBSCRIBED_TO_TOPIC
                };
                partitions.push(PartitionError {
                    partition_index: p,
                    error_code,
                });
            }
            topics.push(TopicPartitionErrors {
                name: t.name.clone(),
                partitions,
            });
        }
        let response = Response::OffsetDelete(OffsetDeleteResponse {
            error_code: code::NONE,
            topics,
        });
        if records.is_empty() {
            return vec![Output::Respond { request, response }];
        }
        vec![Output::Append {
            partition: partition_for_group(&req.group_id, self.config.offsets_topic_num_partitions),
            records,
            then: vec![(request, response)],
            transaction: None,
        }]
    }

    /// Deletes every offset of the deleted `topics` (Kafka 4.4's `onTopicsDeleted`, from the
    /// metadata image delta): in every group this coordinator holds, classic or KIP-848, each
    /// committed offset of any partition of those topics, and each pending transactional one,
    /// gets one tombstone, which replays as the same deletion after a restart or on another
    /// coordinator. One append per `__consumer_offsets` partition. The groups themselves stay:
    /// an Empty group left without offsets goes at the next offsets expiration check, as in
    /// Kafka (`cleanupGroupMetadata`), and one that still has an open transaction is kept
    /// until its marker. gregor stores no topic ids with offsets, so every offset of the name
    /// goes (Kafka's rule for offsets committed without a topic id).
    pub fn on_topics_deleted(&mut self, topics: &BTreeSet<String>) -> Vec<Output> {
        let mut by_partition: BTreeMap<i32, Vec<Record>> = BTreeMap::new();
        for group in self.groups.values_mut() {
            let doomed: BTreeSet<(String, i32)> = group
                .offsets
                .keys()
                .chain(group.pending_txn_offsets.values().flat_map(|o| o.keys()))
                .filter(|(topic, _)| topics.contains(topic))
                .cloned()
                .collect();
            if doomed.is_empty() {
                continue;
            }
            let partition =
                partition_for_group(&group.group_id, self.config.offsets_topic_num_partitions);
            let records = by_partition.entry(partition).or_default();
            for tp in &doomed {
                group.offsets.remove(tp);
                group.remove_pending_txn_offset(tp);
                records.push(offset_record(&group.group_id, &tp.0, tp.1, None));
            }
        }
        by_partition
            .into_iter()
            .map(|(partition, records)| Output::Append {
                partition,
                records,
                then: Vec::new(),
                transaction: None,
            })
            .collect()
    }

    /// DeleteGroups: only Empty groups can go; their offsets and metadata are tombstoned.
    /// The response rides on the last append (groups may live in different partitions).
    pub fn delete_groups(
        &mut self,
        request: RequestId,
        group_ids: &[String],
        now_ms: i64,
    ) -> Vec<Output> {
        let mut out = Vec::new();
        let mut results = Vec::with_capacity(group_ids.len());
        for group_id in group_ids {
            let error_code = match self.groups.get_mut(group_id) {
                None => code::GROUP_ID_NOT_FOUND,
                Some(g) if g.state == GroupState::Dead => code::GROUP_ID_NOT_FOUND,
                Some(g) if g.state == GroupState::Empty && g.pending_members.is_empty() => {
                    g.transition_to(GroupState::Dead, now_ms);
                    let records = tombstones(g);
                    out.push(Output::Append {
                        partition: partition_for_group(
                            group_id,
                            self.config.offsets_topic_num_partitions,
                        ),
                        records,
                        then: Vec::new(),
                        transaction: None,
                    });
                    self.groups.remove(group_id);
                    code::NONE
                }
                Some(_) => code::NON_EMPTY_GROUP,
            };
            results.push(DeletedGroup {
                group_id: group_id.clone(),
                error_code,
            });
        }
        let response = Response::DeleteGroups(DeleteGroupsResponse { results });
        match out.last_mut() {
            Some(Output::Append { then, .. }) => then.push((request, response)),
            _ => out.push(Output::Respond { request, response }),
        }
        out
    }

    /// ListGroups; `states_filter` holds Kafka state names (v4+), empty means all.
    pub fn list_groups(&self, states_filter: &[String]) -> Vec<ListedGroup> {
        let wanted: Vec<Option<GroupState>> =
            states_filter.iter().map(|s| GroupState::parse(s)).collect();
        self.groups
            .values()
            .filter(|g| g.state != GroupState::Dead)
            .filter(|g| wanted.is_empty() || wanted.contains(&Some(g.state)))
            .map(|g| ListedGroup {
                group_id: g.group_id.clone(),
                protocol_type: g.protocol_type.clone().unwrap_or_default(),
                group_state: g.state.name().to_string(),
            })
            .collect()
    }

    /// DescribeGroups. Unknown groups come back as "Dead" with no error, as in Kafka.
    pub fn describe_groups(&self, group_ids: &[String]) -> Vec<DescribedGroup> {
        group_ids
            .iter()
            .map(|id| match self.groups.get(id) {
                None => DescribedGroup {
                    error_code: code::NONE,
                    group_id: id.clone(),
                    group_state: GroupState::Dead.name().to_string(),
                    protocol_type: String::new(),
                    protocol_data: String::new(),
                    members: Vec::new(),
                },
                Some(g) => {
                    let stable = g.state == GroupState::Stable;
                    let protocol = g.protocol_name.clone().unwrap_or_default();
                    DescribedGroup {
                        error_code: code::NONE,
                        group_id: id.clone(),
                        group_state: g.state.name().to_string(),
                        protocol_type: g.protocol_type.clone().unwrap_or_default(),
                        protocol_data: if stable {
                            protocol.clone()
                        } else {
                            String::new()
                        },
                        members: g
                            .members
                            .iter()
                            .map(|m| DescribedMember {
                                member_id: m.member_id.clone(),
                                group_instance_id: m.group_instance_id.clone(),
                                client_id: m.client_id.clone(),
                                client_host: m.client_host.clone(),
                                member_metadata: if stable {
                                    m.metadata(&protocol)
                                } else {
                                    Default::default()
                                },
                                member_assignment: if stable {
                                    m.assignment.clone()
                                } else {
                                    Default::default()
                                },
                            })
                            .collect(),
                    }
                }
            })
            .collect()
    }

    /// Offsets retention (Kafka's `cleanupGroupMetadata`), run by `tick` every
    /// `offsets.retention.check.interval.ms`. Empty groups with nothing left become Dead.
    pub(crate) fn expire_offsets(
        &mut self,
        now_ms: i64,
        keep: &dyn Fn(&str, &str) -> bool,
        out: &mut Vec<Output>,
    ) {
        let retention = self.config.offsets_retention_ms;
        let mut dead = Vec::new();
        for group in self.groups.values_mut() {
            // An offset with a pending transactional one is kept until the marker (Kafka's
            // `cleanupExpiredOffsets`).
            let expired: Vec<(String, i32)> = group
                .offsets
                .iter()
                .filter(|(tp, c)| {
                    offset_expired(group, tp, &c.value, now_ms, retention)
                        && !group.has_pending_txn_offset(tp)
                        && !keep(&group.group_id, &tp.0)
                })
                .map(|(tp, _)| tp.clone())
                .collect();
            let mut records: Vec<Record> = expired
                .iter()
                .map(|(topic, partition)| offset_record(&group.group_id, topic, *partition, None))
                .collect();
            for tp in &expired {
                group.offsets.remove(tp);
            }
            if group.state == GroupState::Empty
                && !group.has_offsets()
                && group.pending_members.is_empty()
            {
                group.transition_to(GroupState::Dead, now_ms);
                records.push(group_record(&group.group_id, None));
                dead.push(group.group_id.clone());
            }
            if !records.is_empty() {
                let partition =
                    partition_for_group(&group.group_id, self.config.offsets_topic_num_partitions);
                out.push(Output::Append {
                    partition,
                    records,
                    then: Vec::new(),
                    transaction: None,
                });
            }
        }
        for id in dead {
            self.groups.remove(&id);
        }
    }
}

/// Kafka's `validateOffsetCommit` plus the state checks of `doCommitOffsets`.
fn validate_offset_commit(group: &Group, req: &OffsetCommitRequest) -> Option<i16> {
    if group.state == GroupState::Dead {
        return Some(code::COORDINATOR_NOT_AVAILABLE);
    }
    if req.generation_id < 0 && group.state == GroupState::Empty {
        // Standalone commit to a group without members.
        return None;
    }
    if req.generation_id >= 0 || !req.member_id.is_empty() || req.group_instance_id.is_some() {
        if let Err(error) = group.validate_member(&req.member_id, req.group_instance_id.as_deref())
        {
            return Some(error);
        }
        if req.generation_id != group.generation_id {
            return Some(code::ILLEGAL_GENERATION);
        }
    } else {
        // Generation -1 and no member id while the group has members.
        return Some(code::UNKNOWN_MEMBER_ID);
    }
    match group.state {
        // During PreparingRebalance commits still go through; the heartbeat tells the member
        // to rejoin.
        GroupState::Stable | GroupState::PreparingRebalance => None,
        GroupState::CompletingRebalance => Some(code::REBALANCE_IN_PROGRESS),
        GroupState::Empty | GroupState::Dead => Some(code::UNKNOWN_MEMBER_ID),
    }
}

fn offset_expired(
    group: &Group,
    (topic, _): &(String, i32),
    value: &OffsetCommitValue,
    now_ms: i64,
    retention_ms: i64,
) -> bool {
    let base = match (&group.protocol_type, group.state) {
        // No members: count from when the group became empty (or the commit, if later
        // unknown), so offsets survive while a group is briefly down.
        (Some(_), GroupState::Empty) => group
            .state_timestamp_ms
            .unwrap_or(value.commit_timestamp_ms),
        // A running consumer group: only offsets of topics it no longer subscribes to expire.
        (Some(_), GroupState::Stable)
            if group.is_consumer_group()
                && group.subscribed_topics.is_some()
                && !group.is_subscribed_to(topic) =>
        {
            value.commit_timestamp_ms
        }
        // Standalone (offsets-only) group.
        (None, _) => value.commit_timestamp_ms,
        _ => return false,
    };
    match value.expire_timestamp_ms {
        Some(expire) => now_ms >= expire,
        None => now_ms.saturating_sub(base) >= retention_ms,
    }
}

/// Tombstones for everything a group has in `__consumer_offsets`: committed offsets, the
/// partitions only an open transaction wrote (Kafka's `deleteAllOffsets`), and the group.
fn tombstones(group: &Group) -> Vec<Record> {
    let mut partitions: std::collections::BTreeSet<&(String, i32)> = group.offsets.keys().collect();
    partitions.extend(group.pending_txn_offsets.values().flat_map(|o| o.keys()));
    partitions
        .into_iter()
        .map(|(topic, partition)| offset_record(&group.group_id, topic, *partition, None))
        .chain(std::iter::once(group_record(&group.group_id, None)))
        .collect()
}

/// Every partition of `topics` with `error_code`: the answer to a commit refused as a whole.
pub fn errors_for_all(topics: &[OffsetCommitTopic], error_code: i16) -> Vec<TopicPartitionErrors> {
    topics
        .iter()
        .map(|t| TopicPartitionErrors {
            name: t.name.clone(),
            partitions: t
                .partitions
                .iter()
                .map(|p| PartitionError {
                    partition_index: p.partition_index,
                    error_code,
                })
                .collect(),
        })
        .collect()
}

/// The `__consumer_offsets` records of a commit of `topics` by `group_id` and each
/// partition's answer: metadata longer than `max_metadata` is OFFSET_METADATA_TOO_LARGE,
/// every other offset gets the next record position and is handed to `store` (committed
/// at once, or pending until its transaction ends).
pub(crate) fn offset_records(
    group_id: &str,
    topics: &[OffsetCommitTopic],
    now_ms: i64,
    max_metadata: usize,
    next_record_position: &mut i64,
    mut store: impl FnMut((String, i32), CommittedOffset),
) -> (Vec<Record>, Vec<TopicPartitionErrors>) {
    let mut records = Vec::new();
    let mut answers = Vec::with_capacity(topics.len());
    for t in topics {
        let mut partitions = Vec::with_capacity(t.partitions.len());
        for p in &t.partitions {
            let metadata = p.committed_metadata.clone().unwrap_or_default();
            let error_code = if metadata.len() > max_metadata {
                code::OFFSET_METADATA_TOO_LARGE
            } else {
                let value = OffsetCommitValue {
                    offset: p.committed_offset,
                    leader_epoch: p.committed_leader_epoch,
                    metadata,
                    commit_timestamp_ms: now_ms,
                    expire_timestamp_ms: None,
                };
                records.push(offset_record(
                    group_id,
                    &t.name,
                    p.partition_index,
                    Some(&value),
                ));
                let record_position = *next_record_position;
                *next_record_position += 1;
                store(
                    (t.name.clone(), p.partition_index),
                    CommittedOffset {
                        value,
                        record_position,
                    },
                );
                code::NONE
            };
            partitions.push(PartitionError {
                partition_index: p.partition_index,
                error_code,
            });
        }
        answers.push(TopicPartitionErrors {
            name: t.name.clone(),
            partitions,
        });
    }
    (records, answers)
}
