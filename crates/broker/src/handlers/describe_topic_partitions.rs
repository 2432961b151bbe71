//! DescribeTopicPartitions (key 75, KIP-966): the partitions of topics, page by page. The Java
//! AdminClient (3.8+) describes topics with it and falls back to Metadata only when a broker
//! lacks it; `kafka-topics --describe` shows its answer.
//!
//! Kafka's rules (`DescribeTopicPartitionsRequestHandler`, `describeTopicResponse`): an empty
//! topic list means every topic; topics are answered in name order, from the cursor's topic
//! and partition on; at most `min(response_partition_limit, max.request.partition.size.limit)`
//! partitions (at least 1) are answered, and where the limit cuts, `next_cursor` names the
//! first partition left out. A cursor whose topic is not among those asked for, or whose
//! partition is negative, makes the request invalid. A named topic that does not exist is
//! answered UNKNOWN_TOPIC_OR_PARTITION (INVALID_TOPIC_EXCEPTION for an illegal name). There are
//! no eligible leader replicas: both ELR lists are empty.
//!
//! Authorization, as Kafka's: DESCRIBE on each topic (every denial logged). Topics without it
//! are left out before paging; those named in the request are answered, after the page,
//! TOPIC_AUTHORIZATION_FAILED with a zero id (their existence is not disclosed). Every other
//! topic answered carries the principal's `topic_authorized_operations` (every operation
//! without an authorizer).

use std::collections::BTreeSet;
use std::ops::RangeInclusive;

use gregor_metadata::MetadataImage;
use gregor_protocol::error::ErrorCode;
use gregor_protocol::messages::describe_topic_partitions_response::{
    Cursor, DescribeTopicPartitionsResponsePartition, DescribeTopicPartitionsResponseTopic,
};
use gregor_protocol::messages::ApiKey;
use gregor_protocol::messages::{DescribeTopicPartitionsRequest, DescribeTopicPartitionsResponse};

use gregor_metadata::{AclOperation, ResourceType};

use super::metadata::describe_topic;
use super::topic_name;
use crate::authorizer;
use crate::broker::Broker;
use crate::request::RequestContext;
use crate::topic_config::validate_topic_name;

/// The API this module serves.
pub const KEY: ApiKey = ApiKey::DescribeTopicPartitions;
/// The versions served (and advertised in ApiVersions).
pub const VERSIONS: RangeInclusive<i16> = 0..=0;

/// Kafka's `max.request.partition.size.limit` default: the most partitions one answer holds.
pub const MAX_PARTITIONS_PER_RESPONSE: i32 = 2000;

/// Handles a DescribeTopicPartitions request from this broker's image, for the request's
/// principal.
pub fn handle(
    broker: &Broker,
    ctx: &RequestContext,
    req: &DescribeTopicPartitionsRequest,
) -> DescribeTopicPartitionsResponse {
    describe(
        &broker.replicas.image(),
        req,
        MAX_PARTITIONS_PER_RESPONSE,
        |name| {
            authorizer::authorize(
                broker,
                ctx,
                AclOperation::Describe,
                ResourceType::Topic,
                name,
            )
        },
        |name| authorizer::authorized_operations(broker, ctx, ResourceType::Topic, name),
    )
}

/// The answer for `image` (pure: the handler's testable core); `max_partitions` is the
/// broker's limit, `may_describe` the principal's DESCRIBE on a topic and `operations` its
/// authorized operations on one.
pub fn describe(
    image: &MetadataImage,
    req: &DescribeTopicPartitionsRequest,
    max_partitions: i32,
    mut may_describe: impl FnMut(&str) -> bool,
    operations: impl Fn(&str) -> i32,
) -> DescribeTopicPartitionsResponse {
    let cursor = req
        .cursor
        .as_ref()
        .map(|c| (c.topic_name.0.as_str(), c.partition_index));
    let from_topic = cursor.map_or("", |(t, _)| t);
    let all = req.topics.is_empty();
    let names: BTreeSet<String> = if all {
        image
            .topics()
            .topics()
            .map(|t| t.name.clone())
            .filter(|n| n.as_str() >= from_topic)
            .collect()
    } else {
        req.topics
            .iter()
            .map(|t| t.name.0.to_string())
            .filter(|n| n.as_str() >= from_topic)
            .collect()
    };
    if let Some((topic, partition)) = cursor {
        if partition < 0 || !names.contains(topic) {
            return invalid(req);
        }
    }
    let (names, denied): (BTreeSet<String>, BTreeSet<String>) =
        names.into_iter().partition(|n| may_describe(n));
    let mut remaining = req.response_partition_limit.min(max_partitions).max(1);
    let mut resp = DescribeTopicPartitionsResponse::default();
    for name in &names {
        if remaining == 0 {
            // Every partition of the topics before was answered: the next page starts here.
            resp.next_cursor = Some(
                Cursor::default()
                    .with_topic_name(topic_name(name))
                    .with_partition_index(0),
            );
            break;
        }
        let Some(t) = image.topics().topic_by_name(name) else {
            if !all {
                let code = if validate_topic_name(name).is_ok() {
                    ErrorCode::UNKNOWN_TOPIC_OR_PARTITION
                } else {
                    ErrorCode::INVALID_TOPIC_EXCEPTION
                };
                resp.topics.push(
                    DescribeTopicPartitionsResponseTopic::default()
                        .with_error_code(code.code())
                        .with_name(Some(topic_name(name)))
                        .with_is_internal(is_internal(name)),
                );
            }
            continue;
        };
        let start = match cursor {
            Some((topic, partition)) if topic == name => partition,
            _ => 0,
        };
        let count = t.partition_count() as i64;
        let upper = count.min(i64::from(start) + i64::from(remaining));
        let described = describe_topic(image, t);
        let partitions: Vec<DescribeTopicPartitionsResponsePartition> = described
            .partitions
            .into_iter()
            .filter(|p| {
                i64::from(p.partition_index) >= i64::from(start)
                    && i64::from(p.partition_index) < upper
            })
            .map(|p| {
                // KIP-966's eligible leader replicas and last known leader, from the image.
                let reg = t.partition(p.partition_index);
                let ids = |v: Option<&Vec<i32>>| -> Vec<_> {
                    v.map(|v| {
                        v.iter()
                            .map(|&b| gregor_protocol::messages::BrokerId(b))
                            .collect()
                    })
                    .unwrap_or_default()
                };
                DescribeTopicPartitionsResponsePartition::default()
                    .with_error_code(p.error_code)
                    .with_partition_index(p.partition_index)
                    .with_leader_id(p.leader_id)
                    .with_leader_epoch(p.leader_epoch)
                    .with_replica_nodes(p.replica_nodes)
                    .with_isr_nodes(p.isr_nodes)
                    .with_eligible_leader_replicas(Some(ids(reg.map(|r| &r.elr))))
                    .with_last_known_elr(Some(ids(reg.map(|r| &r.last_known_elr))))
                    .with_offline_replicas(p.offline_replicas)
            })
            .collect();
        let answered = partitions.len() as i32;
        resp.topics.push(
            DescribeTopicPartitionsResponseTopic::default()
                .with_name(Some(topic_name(name)))
                .with_topic_id(t.id)
                .with_is_internal(is_internal(name))
                .with_partitions(partitions),
        );
        if upper < count {
            resp.next_cursor = Some(
                Cursor::default()
                    .with_topic_name(topic_name(name))
                    .with_partition_index(upper as i32),
            );
            break;
        }
        remaining -= answered;
    }
    for t in &mut resp.topics {
        if let Some(name) = &t.name {
            t.topic_authorized_operations = operations(name);
        }
    }
    if !all {
        resp.topics.extend(denied.iter().map(|name| {
            DescribeTopicPartitionsResponseTopic::default()
                .with_error_code(ErrorCode::TOPIC_AUTHORIZATION_FAILED.code())
                .with_name(Some(topic_name(name)))
        }));
    }
    resp
}

/// Kafka's internal topics (`Topic.isInternal`).
fn is_internal(name: &str) -> bool {
    matches!(name, "__consumer_offsets" | "__transaction_state")
}

/// Kafka's answer to an invalid request: every topic asked for with INVALID_REQUEST.
fn invalid(req: &DescribeTopicPartitionsRequest) -> DescribeTopicPartitionsResponse {
    DescribeTopicPartitionsResponse::default().with_topics(
        req.topics
            .iter()
            .map(|t| {
                DescribeTopicPartitionsResponseTopic::default()
                    .with_error_code(ErrorCode::INVALID_REQUEST.code())
                    .with_name(Some(t.name.clone()))
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use gregor_protocol::messages::describe_topic_partitions_request::{
        Cursor as RequestCursor, TopicRequest,
    };

    use super::*;
    use crate::handlers::admin_common::test_cluster;

    /// An image with topics `a` (3 partitions), `b` (2) and `c` (1), and whatever internal
    /// topics the test broker made (named `__...`, so they sort first).
    fn image() -> MetadataImage {
        let dir = tempfile::tempdir().expect("tempdir");
        let b = test_cluster::broker(dir.path());
        test_cluster::topic(&b, "a", &[vec![1, 2], vec![2, 3], vec![3, 1]]);
        test_cluster::topic(&b, "b", &[vec![1], vec![2]]);
        test_cluster::topic(&b, "c", &[vec![1]]);
        let image = b.replicas.image();
        (*image).clone()
    }

    /// [`describe`] for a principal that may describe every topic.
    fn describe_open(
        image: &MetadataImage,
        req: &DescribeTopicPartitionsRequest,
        max_partitions: i32,
    ) -> DescribeTopicPartitionsResponse {
        describe(image, req, max_partitions, |_| true, |_| 0)
    }

    /// The request for every topic from `a` on (the internal ones sort before it).
    fn from_a(limit: i32) -> DescribeTopicPartitionsRequest {
        request(&[], limit, Some(("a", 0)))
    }

    fn request(
        topics: &[&str],
        limit: i32,
        cursor: Option<(&str, i32)>,
    ) -> DescribeTopicPartitionsRequest {
        DescribeTopicPartitionsRequest::default()
            .with_topics(
                topics
                    .iter()
                    .map(|t| TopicRequest::default().with_name(topic_name(t)))
                    .collect(),
            )
            .with_response_partition_limit(limit)
            .with_cursor(cursor.map(|(t, p)| {
                RequestCursor::default()
                    .with_topic_name(topic_name(t))
                    .with_partition_index(p)
            }))
    }

    /// A topic and the partitions answered for it.
    type TopicPartitions = (String, Vec<i32>);

    /// (topic, [partition]) pairs of an answer, and its cursor.
    fn pages(
        resp: &DescribeTopicPartitionsResponse,
    ) -> (Vec<TopicPartitions>, Option<(String, i32)>) {
        let topics = resp
            .topics
            .iter()
            .map(|t| {
                (
                    t.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default(),
                    t.partitions.iter().map(|p| p.partition_index).collect(),
                )
            })
            .collect();
        let cursor = resp
            .next_cursor
            .as_ref()
            .map(|c| (c.topic_name.0.to_string(), c.partition_index));
        (topics, cursor)
    }

    fn owned(v: &[(&str, &[i32])]) -> Vec<TopicPartitions> {
        v.iter().map(|(t, p)| (t.to_string(), p.to_vec())).collect()
    }

    #[test]
    fn every_topic_in_name_order_when_none_is_named() {
        let resp = describe_open(&image(), &from_a(2000), MAX_PARTITIONS_PER_RESPONSE);
        let (topics, cursor) = pages(&resp);
        assert_eq!(
            topics,
            owned(&[("a", &[0, 1, 2]), ("b", &[0, 1]), ("c", &[0])])
        );
        assert_eq!(cursor, None);
        let a = &resp.topics[0];
        assert_eq!(a.error_code, 0);
        assert!(!a.topic_id.is_nil());
        assert_eq!(a.partitions[1].leader_id.0, 2);
        let replicas: Vec<i32> = a.partitions[1].replica_nodes.iter().map(|b| b.0).collect();
        assert_eq!(replicas, vec![2, 3]);
        assert_eq!(a.partitions[0].eligible_leader_replicas, Some(Vec::new()));
    }

    #[test]
    fn the_limit_cuts_inside_a_topic_and_the_cursor_resumes_there() {
        let img = image();
        let first = describe_open(&img, &from_a(2), MAX_PARTITIONS_PER_RESPONSE);
        assert_eq!(
            pages(&first),
            (owned(&[("a", &[0, 1])]), Some(("a".to_string(), 2)))
        );
        let second = describe_open(
            &img,
            &request(&[], 2, Some(("a", 2))),
            MAX_PARTITIONS_PER_RESPONSE,
        );
        assert_eq!(
            pages(&second),
            (
                owned(&[("a", &[2]), ("b", &[0])]),
                Some(("b".to_string(), 1))
            )
        );
        let third = describe_open(
            &img,
            &request(&[], 2, Some(("b", 1))),
            MAX_PARTITIONS_PER_RESPONSE,
        );
        assert_eq!(pages(&third), (owned(&[("b", &[1]), ("c", &[0])]), None));
    }

    #[test]
    fn a_limit_met_at_a_topic_end_points_the_cursor_at_the_next_topic() {
        let img = image();
        let resp = describe_open(&img, &from_a(3), MAX_PARTITIONS_PER_RESPONSE);
        assert_eq!(
            pages(&resp),
            (owned(&[("a", &[0, 1, 2])]), Some(("b".to_string(), 0)))
        );
        // The broker's own limit wins over a larger request limit; 0 still answers one.
        let resp = describe_open(&img, &from_a(2000), 1);
        assert_eq!(
            pages(&resp),
            (owned(&[("a", &[0])]), Some(("a".to_string(), 1)))
        );
        let resp = describe_open(&img, &from_a(0), MAX_PARTITIONS_PER_RESPONSE);
        assert_eq!(
            pages(&resp),
            (owned(&[("a", &[0])]), Some(("a".to_string(), 1)))
        );
    }

    #[test]
    fn named_topics_unknown_ones_and_bad_cursors() {
        let img = image();
        let resp = describe_open(
            &img,
            &request(&["c", "nope", "a"], 2000, None),
            MAX_PARTITIONS_PER_RESPONSE,
        );
        let codes: Vec<(String, i16)> = resp
            .topics
            .iter()
            .map(|t| {
                (
                    t.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default(),
                    t.error_code,
                )
            })
            .collect();
        assert_eq!(
            codes,
            vec![
                ("a".to_string(), 0),
                ("c".to_string(), 0),
                (
                    "nope".to_string(),
                    ErrorCode::UNKNOWN_TOPIC_OR_PARTITION.code()
                ),
            ]
        );
        assert!(resp.topics[2].topic_id.is_nil());
        let resp = describe_open(
            &img,
            &request(&["a", "b"], 2000, Some(("c", 0))),
            MAX_PARTITIONS_PER_RESPONSE,
        );
        assert!(resp
            .topics
            .iter()
            .all(|t| t.error_code == ErrorCode::INVALID_REQUEST.code()));
        let resp = describe_open(
            &img,
            &request(&[], 2000, Some(("a", -1))),
            MAX_PARTITIONS_PER_RESPONSE,
        );
        assert!(resp.topics.is_empty() && resp.next_cursor.is_none());
        let resp = describe_open(
            &img,
            &request(&["bad/name"], 2000, None),
            MAX_PARTITIONS_PER_RESPONSE,
        );
        assert_eq!(
            resp.topics[0].error_code,
            ErrorCode::INVALID_TOPIC_EXCEPTION.code()
        );
    }

    /// DESCRIBE per topic: others are left out of an every-topic answer, and a named one is
    /// TOPIC_AUTHORIZATION_FAILED with a zero id after the page, whether it exists or not;
    /// topics answered carry the principal's authorized operations.
    #[tokio::test]
    async fn topics_without_describe_are_refused_or_left_out() {
        use crate::authorizer::test_support::{allow_topic, ctx_of};
        use crate::handlers::group_common::test_support::auth_group_broker;
        use gregor_metadata::acl::all_operations;

        let dir = tempfile::tempdir().expect("tempdir");
        let b = auth_group_broker(dir.path(), 1);
        test_cluster::topic(&b, "u", &[vec![1]]);
        allow_topic(&b, "User:alice", AclOperation::Describe, "t");
        let ctx = ctx_of("alice", KEY, 0);
        let answered = |r: &DescribeTopicPartitionsResponse| -> Vec<(String, i16, bool, i32)> {
            r.topics
                .iter()
                .map(|t| {
                    (
                        t.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default(),
                        t.error_code,
                        t.topic_id.is_nil(),
                        t.topic_authorized_operations,
                    )
                })
                .collect()
        };
        let describe = 1 << AclOperation::Describe.code();
        let refused = ErrorCode::TOPIC_AUTHORIZATION_FAILED.code();
        let r = handle(&b, &ctx, &request(&["u", "missing", "t"], 1, None));
        assert_eq!(
            answered(&r),
            vec![
                ("t".into(), 0, false, describe),
                ("missing".into(), refused, true, i32::MIN),
                ("u".into(), refused, true, i32::MIN),
            ]
        );
        let r = handle(&b, &ctx, &request(&[], 2000, None));
        assert_eq!(answered(&r), vec![("t".into(), 0, false, describe)]);
        let r = handle(&b, &ctx_of("admin", KEY, 0), &request(&["t"], 2000, None));
        assert_eq!(
            r.topics[0].topic_authorized_operations,
            all_operations(ResourceType::Topic)
        );
    }
}
