//! OffsetFetch (key 9): committed offsets of one group (v1–v7) or several (v8+), served from
//! the coordinator's memory. With `require_stable` (v7+, KIP-447) a partition with offsets of
//! an open transaction answers UNSTABLE_OFFSET_COMMIT, and the consumer retries. v9's
//! `member_id` and `member_epoch` are checked against a consumer group (KIP-848) by its core
//! (UNKNOWN_MEMBER_ID or STALE_MEMBER_EPOCH for the group); for a classic group v9 is v8.
//! v10 (KIP-848) names topics by id, in the request and the answer: an id is resolved through
//! the broker's metadata (as Fetch v13+ does), and one the cluster does not know answers
//! UNKNOWN_TOPIC_ID for each partition asked; fetching every topic answers those whose id the
//! metadata still has (offsets of a deleted topic have no id to be named by).

use std::ops::RangeInclusive;
use std::sync::Arc;

use gregor_protocol::error::ErrorCode;
use gregor_protocol::messages::offset_fetch_request::OffsetFetchRequestTopics;
use gregor_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use gregor_protocol::messages::ApiKey;
use gregor_protocol::messages::{OffsetFetchRequest, OffsetFetchResponse};

use gregor_group::consumer_group::OffsetCheck;

use super::{str_bytes, topic_name};
use crate::broker::Broker;
use crate::request::RequestContext;

/// The API this module serves.
pub const KEY: ApiKey = ApiKey::OffsetFetch;
/// The versions served (and advertised in ApiVersions).
pub const VERSIONS: RangeInclusive<i16> = 1..=10;

/// The member of a consumer group (KIP-848) asking (OffsetFetch v9+): id and epoch.
type Member<'a> = Option<(Option<&'a str>, i32)>;

fn fetch(
    broker: &Broker,
    group: &str,
    topics: Option<Vec<(String, Vec<i32>)>>,
    require_stable: bool,
    member: Member<'_>,
) -> gregor_group::OffsetFetchResponse {
    let req = gregor_group::OffsetFetchRequest {
        group_id: group.to_string(),
        topics: topics.map(|ts| {
            ts.into_iter()
                .map(|(name, partitions)| gregor_group::TopicPartitions { name, partitions })
                .collect()
        }),
        require_stable,
    };
    if let Some(code) = broker.groups.not_coordinator(group) {
        return gregor_group::OffsetFetchResponse {
            error_code: code.code(),
            topics: Vec::new(),
        };
    }
    let core = broker.groups.core();
    if let Some((member_id, member_epoch)) = member {
        let check = broker
            .groups
            .consumer()
            .validate_offset_fetch(group, member_id, member_epoch);
        if let OffsetCheck::Rejected { error_code, .. } = check {
            return gregor_group::OffsetFetchResponse {
                error_code,
                topics: Vec::new(),
            };
        }
    }
    core.fetch_offsets(&req)
}

/// One committed-offsets topic of the core's answer on the wire (v8+): by name, or with
/// `topic_id` (v10).
fn wire_topic(
    t: gregor_group::OffsetFetchTopic,
    topic_id: uuid::Uuid,
) -> OffsetFetchResponseTopics {
    OffsetFetchResponseTopics::default()
        .with_name(topic_name(&t.name))
        .with_topic_id(topic_id)
        .with_partitions(
            t.partitions
                .into_iter()
                .map(|p| {
                    OffsetFetchResponsePartitions::default()
                        .with_partition_index(p.partition_index)
                        .with_committed_offset(p.committed_offset)
                        .with_committed_leader_epoch(p.committed_leader_epoch)
                        .with_metadata(Some(str_bytes(p.metadata)))
                        .with_error_code(p.error_code)
                })
                .collect(),
        )
}

/// The topics of one group of a v10 request, by id: the core's answer for the ids this
/// cluster knows, UNKNOWN_TOPIC_ID for each partition of the others, in the request's order;
/// every committed topic that still has an id when `topics` is null.
fn by_topic_id(
    broker: &Broker,
    group: &str,
    topics: Option<&[OffsetFetchRequestTopics]>,
    require_stable: bool,
    member: Member<'_>,
) -> (i16, Vec<OffsetFetchResponseTopics>) {
    let Some(topics) = topics else {
        let r = fetch(broker, group, None, require_stable, member);
        let known = r
            .topics
            .into_iter()
            .filter_map(|t| {
                let id = broker.replicas.topic(&t.name)?.id;
                Some(wire_topic(t, id))
            })
            .collect();
        return (r.error_code, known);
    };
    let names: Vec<Option<String>> = topics
        .iter()
        .map(|t| {
            broker
                .replicas
                .topic_by_id(t.topic_id)
                .map(|k| k.name.clone())
        })
        .collect();
    let wanted = topics
        .iter()
        .zip(&names)
        .filter_map(|(t, name)| Some((name.clone()?, t.partition_indexes.clone())))
        .collect();
    let r = fetch(broker, group, Some(wanted), require_stable, member);
    if r.error_code != 0 {
        return (r.error_code, Vec::new());
    }
    let mut answered = r.topics;
    let wire = topics
        .iter()
        .zip(names)
        .map(|(t, name)| match name {
            Some(name) => {
                let at = answered.iter().position(|a| a.name == name);
                match at.map(|i| answered.remove(i)) {
                    Some(a) => wire_topic(a, t.topic_id),
                    None => OffsetFetchResponseTopics::default().with_topic_id(t.topic_id),
                }
            }
            None => OffsetFetchResponseTopics::default()
                .with_topic_id(t.topic_id)
                .with_partitions(
                    t.partition_indexes
                        .iter()
                        .map(|&p| {
                            OffsetFetchResponsePartitions::default()
                                .with_partition_index(p)
                                .with_committed_offset(-1)
                                .with_committed_leader_epoch(-1)
                                .with_metadata(Some(str_bytes(String::new())))
                                .with_error_code(ErrorCode::UNKNOWN_TOPIC_ID.code())
                        })
                        .collect(),
                ),
        })
        .collect();
    (0, wire)
}

/// Handles an OffsetFetch request.
pub fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    req: OffsetFetchRequest,
) -> OffsetFetchResponse {
    if ctx.api_version >= 8 {
        let groups = req
            .groups
            .iter()
            .map(|g| {
                let member = (ctx.api_version >= 9)
                    .then(|| (g.member_id.as_ref().map(|m| m.as_str()), g.member_epoch));
                let (error_code, topics) = if ctx.api_version >= 10 {
                    by_topic_id(
                        broker,
                        &g.group_id.0,
                        g.topics.as_deref(),
                        req.require_stable,
                        member,
                    )
                } else {
                    let topics = g.topics.as_ref().map(|ts| {
                        ts.iter()
                            .map(|t| (t.name.0.to_string(), t.partition_indexes.clone()))
                            .collect()
                    });
                    let r = fetch(broker, &g.group_id.0, topics, req.require_stable, member);
                    let topics = r
                        .topics
                        .into_iter()
                        .map(|t| wire_topic(t, uuid::Uuid::nil()))
                        .collect();
                    (r.error_code, topics)
                };
                OffsetFetchResponseGroup::default()
                    .with_group_id(g.group_id.clone())
                    .with_error_code(error_code)
                    .with_topics(topics)
            })
            .collect();
        return OffsetFetchResponse::default().with_groups(groups);
    }
    let topics = req.topics.as_ref().map(|ts| {
        ts.iter()
            .map(|t| (t.name.0.to_string(), t.partition_indexes.clone()))
            .collect()
    });
    // v7+: KIP-447's require_stable (false in older versions).
    let r = fetch(broker, &req.group_id.0, topics, req.require_stable, None);
    let version = ctx.api_version;
    let topics = r
        .topics
        .into_iter()
        .map(|t| {
            OffsetFetchResponseTopic::default()
                .with_name(topic_name(&t.name))
                .with_partitions(
                    t.partitions
                        .into_iter()
                        .map(|p| {
                            OffsetFetchResponsePartition::default()
                                .with_partition_index(p.partition_index)
                                .with_committed_offset(p.committed_offset)
                                .with_committed_leader_epoch(if version >= 5 {
                                    p.committed_leader_epoch
                                } else {
                                    -1
                                })
                                .with_metadata(Some(str_bytes(p.metadata)))
                                .with_error_code(p.error_code)
                        })
                        .collect(),
                )
        })
        .collect();
    let mut resp = OffsetFetchResponse::default().with_topics(topics);
    if version >= 2 {
        resp = resp.with_error_code(r.error_code);
    }
    resp
}
