//! OffsetFetch (key 9): committed offsets of one group (v1–v7) or several (v8+), served from
//! the coordinator's memory. With `require_stable` (v7+, KIP-447) a partition with offsets of
//! an open transaction answers UNSTABLE_OFFSET_COMMIT, and the consumer retries. v9's
//! `member_id` and `member_epoch` are checked against a consumer group (KIP-848) by its core
//! (UNKNOWN_MEMBER_ID or STALE_MEMBER_EPOCH for the group); for a classic group v9 is v8.
//! v10 (KIP-848) names topics by id, in the request and the answer: an id is resolved through
//! the broker's metadata (as Fetch v13+ does), and one the cluster does not know answers
//! UNKNOWN_TOPIC_ID for each partition asked; fetching every topic answers those whose id the
//! metadata still has (offsets of a deleted topic have no id to be named by).
//!
//! Authorization, as Kafka's `handleOffsetFetchRequest`: DESCRIBE on each group, else the group
//! answers GROUP_AUTHORIZATION_FAILED (before v2, which has no group error, on each partition
//! asked); DESCRIBE on each topic: a topic asked for without it answers
//! TOPIC_AUTHORIZATION_FAILED on each partition (after the coordinator's answer), and one
//! without it is left out of an every-topic answer.

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
use gregor_metadata::{AclOperation, ResourceType};

use super::group_common::authorize_group;
use super::{str_bytes, topic_name};
use crate::authorizer;
use crate::broker::Broker;
use crate::request::RequestContext;

/// The API this module serves.
pub const KEY: ApiKey = ApiKey::OffsetFetch;
/// The versions served (and advertised in ApiVersions).
pub const VERSIONS: RangeInclusive<i16> = 1..=10;

/// The member of a consumer group (KIP-848) asking (OffsetFetch v9+): id and epoch.
type Member<'a> = Option<(Option<&'a str>, i32)>;

/// A partition whose offset is not answered: no offset, no epoch, no metadata, `code`.
fn unanswered(partition_index: i32, code: ErrorCode) -> gregor_group::OffsetFetchPartition {
    gregor_group::OffsetFetchPartition {
        partition_index,
        committed_offset: -1,
        committed_leader_epoch: -1,
        metadata: String::new(),
        error_code: code.code(),
    }
}

/// The committed offsets of `group` the principal may see (DESCRIBE on their topics): those
/// of `topics` (all when `None`), with TOPIC_AUTHORIZATION_FAILED for the topics asked for
/// that it may not describe, appended after the coordinator's answer as Kafka does. The group
/// itself was authorized by the caller.
fn fetch(
    broker: &Broker,
    ctx: &RequestContext,
    group: &str,
    topics: Option<Vec<(String, Vec<i32>)>>,
    require_stable: bool,
    member: Member<'_>,
) -> gregor_group::OffsetFetchResponse {
    let describable = |names: &mut dyn Iterator<Item = &str>| {
        authorizer::filter_authorized(
            broker,
            ctx,
            AclOperation::Describe,
            ResourceType::Topic,
            names,
        )
    };
    let Some(topics) = topics else {
        let mut r = fetch_authorized(broker, group, None, require_stable, member);
        if r.error_code == 0 {
            let allowed = describable(&mut r.topics.iter().map(|t| t.name.as_str()));
            r.topics.retain(|t| allowed.contains(&t.name));
        }
        return r;
    };
    let allowed = describable(&mut topics.iter().map(|(name, _)| name.as_str()));
    let (asked, denied): (Vec<_>, Vec<_>) = topics
        .into_iter()
        .partition(|(name, _)| allowed.contains(name));
    let mut r = fetch_authorized(broker, group, Some(asked), require_stable, member);
    if r.error_code == 0 {
        r.topics
            .extend(denied.into_iter().map(|(name, partitions)| {
                gregor_group::OffsetFetchTopic {
                    name,
                    partitions: partitions
                        .into_iter()
                        .map(|p| unanswered(p, ErrorCode::TOPIC_AUTHORIZATION_FAILED))
                        .collect(),
                }
            }));
    }
    r
}

/// The coordinator's answer for topics the principal may describe.
fn fetch_authorized(
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
    // A share group (KIP-932) has no committed offsets: "Group {id} is not a consumer group."
    if broker.groups.is_share_group(group) {
        return gregor_group::OffsetFetchResponse {
            error_code: gregor_group::code::GROUP_ID_NOT_FOUND,
            topics: Vec::new(),
        };
    }
    if let Some((member_id, member_epoch)) = member {
        let mut check =
            broker
                .groups
                .consumer()
                .validate_offset_fetch(group, member_id, member_epoch);
        if check == OffsetCheck::NotConsumerGroup {
            check = broker
                .groups
                .streams()
                .validate_offset_fetch(group, member_id, member_epoch);
        }
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
    ctx: &RequestContext,
    group: &str,
    topics: Option<&[OffsetFetchRequestTopics]>,
    require_stable: bool,
    member: Member<'_>,
) -> (i16, Vec<OffsetFetchResponseTopics>) {
    let Some(topics) = topics else {
        let r = fetch(broker, ctx, group, None, require_stable, member);
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
    let r = fetch(broker, ctx, group, Some(wanted), require_stable, member);
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
                if !authorize_group(broker, ctx, AclOperation::Describe, &g.group_id.0) {
                    return OffsetFetchResponseGroup::default()
                        .with_group_id(g.group_id.clone())
                        .with_error_code(ErrorCode::GROUP_AUTHORIZATION_FAILED.code());
                }
                let member = (ctx.api_version >= 9)
                    .then(|| (g.member_id.as_ref().map(|m| m.as_str()), g.member_epoch));
                let (error_code, topics) = if ctx.api_version >= 10 {
                    by_topic_id(
                        broker,
                        ctx,
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
                    let r = fetch(
                        broker,
                        ctx,
                        &g.group_id.0,
                        topics,
                        req.require_stable,
                        member,
                    );
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
    let version = ctx.api_version;
    let r = if authorize_group(broker, ctx, AclOperation::Describe, &req.group_id.0) {
        // v7+: KIP-447's require_stable (false in older versions).
        fetch(
            broker,
            ctx,
            &req.group_id.0,
            topics,
            req.require_stable,
            None,
        )
    } else {
        let code = ErrorCode::GROUP_AUTHORIZATION_FAILED;
        // v1 has no group error: each partition asked carries it.
        let topics = if version < 2 { topics } else { None };
        gregor_group::OffsetFetchResponse {
            error_code: code.code(),
            topics: topics
                .unwrap_or_default()
                .into_iter()
                .map(|(name, partitions)| gregor_group::OffsetFetchTopic {
                    name,
                    partitions: partitions
                        .into_iter()
                        .map(|p| unanswered(p, code))
                        .collect(),
                })
                .collect(),
        }
    };
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

#[cfg(test)]
mod tests {
    use gregor_protocol::messages::offset_fetch_request::{
        OffsetFetchRequestGroup, OffsetFetchRequestTopic,
    };
    use gregor_protocol::messages::{GroupId, TopicName};
    use gregor_protocol::protocol::StrBytes;

    use super::*;
    use crate::authorizer::test_support::{allow_group, allow_topic, ctx_of};
    use crate::handlers::group_common::test_support::{admin_commit, auth_group_broker};

    /// A broker where `admin` committed offset 5 on t-0 and u-0 for group "g".
    async fn committed(dir: &std::path::Path) -> Arc<Broker> {
        let b = auth_group_broker(dir, 1);
        b.replicas
            .create_topic("u", 1, 1, Default::default())
            .expect("create");
        admin_commit(&b, "g", &["t", "u"]).await;
        b
    }

    fn group(topics: Option<&[&'static str]>) -> OffsetFetchRequestGroup {
        OffsetFetchRequestGroup::default()
            .with_group_id(GroupId(StrBytes::from_static_str("g")))
            .with_topics(topics.map(|ts| {
                ts.iter()
                    .map(|t| {
                        OffsetFetchRequestTopics::default()
                            .with_name(TopicName(StrBytes::from_static_str(t)))
                            .with_partition_indexes(vec![0])
                    })
                    .collect()
            }))
    }

    /// (topic, offset, error code) of partition 0 of each topic of a v8+ group.
    fn offsets(g: &OffsetFetchResponseGroup) -> Vec<(String, i64, i16)> {
        g.topics
            .iter()
            .map(|t| {
                let p = &t.partitions[0];
                (t.name.0.to_string(), p.committed_offset, p.error_code)
            })
            .collect()
    }

    /// DESCRIBE on the group: GROUP_AUTHORIZATION_FAILED for the group (v8+), the response
    /// (v2–v7) or each partition asked (v1).
    #[tokio::test]
    async fn fetching_needs_describe_on_the_group() {
        let dir = tempfile::tempdir().expect("tempdir");
        let b = committed(dir.path()).await;
        let refused = ErrorCode::GROUP_AUTHORIZATION_FAILED.code();
        let req = OffsetFetchRequest::default().with_groups(vec![group(Some(&["t"]))]);
        let r = handle(&b, &ctx_of("alice", KEY, 8), req);
        assert_eq!(r.groups[0].error_code, refused);
        assert!(r.groups[0].topics.is_empty());
        let old = OffsetFetchRequest::default()
            .with_group_id(GroupId(StrBytes::from_static_str("g")))
            .with_topics(Some(vec![OffsetFetchRequestTopic::default()
                .with_name(TopicName(StrBytes::from_static_str("t")))
                .with_partition_indexes(vec![0])]));
        let r = handle(&b, &ctx_of("alice", KEY, 7), old.clone());
        assert_eq!(r.error_code, refused);
        assert!(r.topics.is_empty());
        let r = handle(&b, &ctx_of("alice", KEY, 1), old);
        assert_eq!(r.topics[0].partitions[0].error_code, refused);
        assert_eq!(r.topics[0].partitions[0].committed_offset, -1);
    }

    /// DESCRIBE on each topic: an every-topic answer leaves the others out; a topic asked for
    /// without it answers TOPIC_AUTHORIZATION_FAILED (after the coordinator's topics).
    #[tokio::test]
    async fn topics_without_describe_are_hidden_or_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let b = committed(dir.path()).await;
        allow_group(&b, "User:alice", AclOperation::Describe, "g");
        allow_topic(&b, "User:alice", AclOperation::Describe, "t");
        let fetch = |g: OffsetFetchRequestGroup| {
            let req = OffsetFetchRequest::default().with_groups(vec![g]);
            handle(&b, &ctx_of("alice", KEY, 8), req)
        };
        let r = fetch(group(None));
        assert_eq!(offsets(&r.groups[0]), vec![("t".into(), 5, 0)]);
        let r = fetch(group(Some(&["u", "t"])));
        let refused = ErrorCode::TOPIC_AUTHORIZATION_FAILED.code();
        assert_eq!(
            offsets(&r.groups[0]),
            vec![("t".into(), 5, 0), ("u".into(), -1, refused)]
        );
        let r = handle(
            &b,
            &ctx_of("admin", KEY, 8),
            OffsetFetchRequest::default().with_groups(vec![group(None)]),
        );
        assert_eq!(r.groups[0].topics.len(), 2, "a super user sees both");
    }
}
