//! CreatePartitions (key 37): grows topics to a new partition count (`kafka-topics --alter
//! --partitions N`).
//!
//! Authorization is Kafka's (`ControllerApis.createPartitions`): ALTER on each topic named once;
//! a topic without it is TOPIC_AUTHORIZATION_FAILED (whether or not it exists) and adds
//! nothing to the request's partition count.
//!
//! The broker checks what it can alone: the topic exists, is named once, and the count grows;
//! the new partitions of the whole request stay within CreateTopics' limit
//! ([`MAX_PARTITIONS_PER_REQUEST`], POLICY_VIOLATION for every topic). The topics that pass go
//! to the active controller in one request; it places the new replicas (with the replication
//! factor of the existing partitions) and commits them. The reply waits (a few seconds at
//! most) until this broker has applied the new partitions. Explicit assignments of the new
//! partitions (`kafka-topics --alter --replica-assignment`) are checked by the controller as a
//! new topic's are (INVALID_REPLICA_ASSIGNMENT).

use std::collections::HashMap;
use std::ops::RangeInclusive;
use std::sync::Arc;

use gregor_controller::protocol as proto;
use gregor_controller::{ControllerRequest, ControllerResponse};
use gregor_metadata::{AclOperation, ResourceType};
use gregor_protocol::error::ErrorCode;
use gregor_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use gregor_protocol::messages::ApiKey;
use gregor_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};
use tracing::warn;

use super::admin_common::wait_for_image;
use super::create_topics::{controller_failure, MAX_PARTITIONS_PER_REQUEST};
use super::{str_bytes, topic_name};
use crate::admin_node::AdminNode;
use crate::authorizer;
use crate::request::{encode, Reply, RequestContext};

/// The API this module serves.
pub const KEY: ApiKey = ApiKey::CreatePartitions;
/// The versions served (and advertised in ApiVersions).
pub const VERSIONS: RangeInclusive<i16> = 0..=3;

fn result(name: &str, code: ErrorCode, message: Option<String>) -> CreatePartitionsTopicResult {
    CreatePartitionsTopicResult::default()
        .with_name(topic_name(name))
        .with_error_code(code.code())
        .with_error_message(message.map(str_bytes))
}

/// Handles a CreatePartitions request; the reply is ready once the controller has answered and
/// the new partitions are applied here.
pub fn handle<N: AdminNode + 'static>(
    node: &Arc<N>,
    ctx: RequestContext,
    req: CreatePartitionsRequest,
) -> Reply {
    let node = Arc::clone(node);
    Reply::Pending(Box::pin(async move {
        let response = create_partitions(&*node, &ctx, req).await;
        encode(&ctx, &response)
    }))
}

/// Validates, then grows the topics through the controller.
pub(crate) async fn create_partitions(
    node: &dyn AdminNode,
    ctx: &RequestContext,
    req: CreatePartitionsRequest,
) -> CreatePartitionsResponse {
    let image = node.image();
    let mut mentions: HashMap<&str, usize> = HashMap::new();
    for t in &req.topics {
        *mentions.entry(&t.name.0).or_default() += 1;
    }
    let duplicate = |name: &str| mentions.get(name).is_some_and(|&n| n > 1);
    let alterable = authorizer::filter_authorized(
        node,
        ctx,
        AclOperation::Alter,
        ResourceType::Topic,
        req.topics
            .iter()
            .map(|t| &*t.name.0)
            .filter(|name| !duplicate(name)),
    );
    // Every topic's outcome: decided here (Some) or asked of the controller (None).
    let mut outcomes: Vec<Option<CreatePartitionsTopicResult>> = Vec::new();
    let mut asked: Vec<proto::CreatePartitionsTopic> = Vec::new();
    let mut new_partitions: i64 = 0;
    for t in &req.topics {
        let name: &str = &t.name.0;
        let current = image
            .topics()
            .topic_by_name(name)
            .map(|topic| i32::try_from(topic.partition_count()).unwrap_or(i32::MAX));
        let refusal = if duplicate(name) {
            Some((
                ErrorCode::INVALID_REQUEST,
                Some("Duplicate topic name.".to_string()),
            ))
        } else if !alterable.contains(name) {
            // Kafka answers without a message.
            Some((ErrorCode::TOPIC_AUTHORIZATION_FAILED, None))
        } else {
            match current {
                None => Some((
                    ErrorCode::UNKNOWN_TOPIC_OR_PARTITION,
                    Some(format!("This server does not host this topic: {name}")),
                )),
                Some(current) if t.count < current => Some((
                    ErrorCode::INVALID_PARTITIONS,
                    Some(format!(
                        "Topic currently has {current} partitions, which is higher than the requested {}.",
                        t.count
                    )),
                )),
                Some(current) if t.count == current => Some((
                    ErrorCode::INVALID_PARTITIONS,
                    Some(format!("Topic already has {current} partitions.")),
                )),
                Some(current) => {
                    new_partitions = new_partitions.saturating_add(i64::from(t.count - current));
                    None
                }
            }
        };
        match refusal {
            Some((code, message)) => outcomes.push(Some(result(name, code, message))),
            None => {
                outcomes.push(None);
                asked.push(proto::CreatePartitionsTopic {
                    name: name.to_string(),
                    count: t.count,
                    // An empty list is a list that names no new partition, which the
                    // controller refuses (INVALID_REPLICA_ASSIGNMENT, as Kafka); only null
                    // is no assignment.
                    assignments: t.assignments.as_ref().map(|a| {
                        a.iter()
                            .map(|a| a.broker_ids.iter().map(|b| b.0).collect())
                            .collect()
                    }),
                });
            }
        }
    }
    if new_partitions > MAX_PARTITIONS_PER_REQUEST {
        warn!(
            partitions = new_partitions,
            "CreatePartitions refused: more than {MAX_PARTITIONS_PER_REQUEST} partitions in one request"
        );
        let results = req
            .topics
            .iter()
            .map(|t| {
                result(
                    &t.name.0,
                    ErrorCode::POLICY_VIOLATION,
                    Some("Excessively large number of partitions per request.".into()),
                )
            })
            .collect();
        return CreatePartitionsResponse::default().with_results(results);
    }
    let mut decided: HashMap<String, CreatePartitionsTopicResult> = HashMap::new();
    if !asked.is_empty() {
        let wanted: Vec<(String, i32)> = asked.iter().map(|t| (t.name.clone(), t.count)).collect();
        let request = proto::CreatePartitionsRequest {
            topics: asked,
            validate_only: req.validate_only,
        };
        match node
            .controller()
            .call(ControllerRequest::CreatePartitions(request))
            .await
        {
            Ok(ControllerResponse::CreatePartitions(resp)) => {
                if !req.validate_only {
                    let grown: Vec<(String, i32)> = wanted
                        .iter()
                        .filter(|(n, _)| {
                            resp.results
                                .iter()
                                .any(|r| &r.name == n && r.error_code == 0)
                        })
                        .cloned()
                        .collect();
                    wait_for_image(node, |image| {
                        grown.iter().all(|(name, count)| {
                            image.topics().topic_by_name(name).is_none_or(|t| {
                                i32::try_from(t.partition_count()).unwrap_or(i32::MAX) >= *count
                            })
                        })
                    })
                    .await;
                }
                for r in resp.results {
                    let message = (r.error_code != 0).then_some(r.error_message).flatten();
                    decided.insert(
                        r.name.clone(),
                        result(&r.name, ErrorCode(r.error_code), message),
                    );
                }
            }
            Ok(other) => {
                let (code, message) = controller_failure(&other);
                for (name, _) in &wanted {
                    decided.insert(name.clone(), result(name, code, Some(message.clone())));
                }
            }
            Err(e) => {
                warn!(error = %e, "CreatePartitions: the controller could not be reached");
                for (name, _) in &wanted {
                    decided.insert(
                        name.clone(),
                        result(name, ErrorCode::REQUEST_TIMED_OUT, Some(e.to_string())),
                    );
                }
            }
        }
    }
    let results = req
        .topics
        .iter()
        .zip(outcomes)
        .map(|(t, outcome)| {
            outcome.unwrap_or_else(|| {
                decided.remove(&*t.name.0).unwrap_or_else(|| {
                    result(
                        &t.name.0,
                        ErrorCode::UNKNOWN_SERVER_ERROR,
                        Some("the controller did not answer for this topic".into()),
                    )
                })
            })
        })
        .collect();
    CreatePartitionsResponse::default().with_results(results)
}

#[cfg(test)]
mod tests {
    use super::*;
    use gregor_protocol::messages::create_partitions_request::CreatePartitionsTopic;

    use crate::broker::Broker;
    use crate::handlers::admin_common::test_cluster;

    fn ctx() -> RequestContext {
        RequestContext::for_test(KEY, 3)
    }

    fn grow(name: &str, count: i32) -> CreatePartitionsTopic {
        CreatePartitionsTopic::default()
            .with_name(topic_name(name))
            .with_count(count)
            .with_assignments(None)
    }

    fn codes(resp: &CreatePartitionsResponse) -> Vec<(String, i16)> {
        resp.results
            .iter()
            .map(|r| (r.name.0.to_string(), r.error_code))
            .collect()
    }

    fn partitions(b: &Broker, name: &str) -> usize {
        b.replicas
            .image()
            .topics()
            .topic_by_name(name)
            .map_or(0, |t| t.partition_count())
    }

    #[tokio::test]
    async fn grows_topics_with_their_replication_factor_and_refuses_the_rest() {
        let dir = tempfile::tempdir().expect("tempdir");
        let b = test_cluster::broker(dir.path());
        test_cluster::topic(&b, "t", &[vec![1, 2]]);
        test_cluster::topic(&b, "u", &[vec![1], vec![2]]);
        let req = CreatePartitionsRequest::default().with_topics(vec![
            grow("t", 3),
            grow("u", 1),
            grow("u2", 4),
            grow("missing", 2),
        ]);
        let resp = create_partitions(&b, &ctx(), req).await;
        assert_eq!(
            codes(&resp),
            vec![
                ("t".into(), 0),
                ("u".into(), ErrorCode::INVALID_PARTITIONS.code()),
                ("u2".into(), ErrorCode::UNKNOWN_TOPIC_OR_PARTITION.code()),
                (
                    "missing".into(),
                    ErrorCode::UNKNOWN_TOPIC_OR_PARTITION.code()
                ),
            ]
        );
        assert!(resp.results[0].error_message.is_none());
        assert_eq!(partitions(&b, "t"), 3);
        let image = b.replicas.image();
        let t = image.topics().topic_by_name("t").expect("t");
        assert!(t.partitions().all(|(_, p)| p.replicas.len() == 2));
        // Same count: refused too.
        let resp = create_partitions(
            &b,
            &ctx(),
            CreatePartitionsRequest::default().with_topics(vec![grow("t", 3)]),
        )
        .await;
        assert_eq!(
            codes(&resp),
            vec![("t".into(), ErrorCode::INVALID_PARTITIONS.code())]
        );
    }

    #[tokio::test]
    async fn validate_only_duplicates_and_the_request_limit_change_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let b = test_cluster::broker(dir.path());
        test_cluster::topic(&b, "t", &[vec![1]]);
        let resp = create_partitions(
            &b,
            &ctx(),
            CreatePartitionsRequest::default()
                .with_topics(vec![grow("t", 5)])
                .with_validate_only(true),
        )
        .await;
        assert_eq!(codes(&resp), vec![("t".into(), 0)]);
        assert_eq!(partitions(&b, "t"), 1);
        let resp = create_partitions(
            &b,
            &ctx(),
            CreatePartitionsRequest::default().with_topics(vec![grow("t", 2), grow("t", 3)]),
        )
        .await;
        assert!(codes(&resp)
            .iter()
            .all(|(_, c)| *c == ErrorCode::INVALID_REQUEST.code()));
        let resp = create_partitions(
            &b,
            &ctx(),
            CreatePartitionsRequest::default().with_topics(vec![grow("t", 20_000)]),
        )
        .await;
        assert_eq!(
            codes(&resp),
            vec![("t".into(), ErrorCode::POLICY_VIOLATION.code())]
        );
        assert_eq!(partitions(&b, "t"), 1);
    }

    /// With an authorizer: ALTER on the topic; a topic without it is refused whether or not
    /// it exists, and its partitions do not count against the request's limit.
    #[tokio::test]
    async fn growing_a_topic_needs_alter_on_it() {
        use crate::authorizer::test_support::{allow_topic, ctx_of};
        let dir = tempfile::tempdir().expect("tempdir");
        let b = test_cluster::secured(dir.path());
        test_cluster::topic(&b, "t", &[vec![1]]);
        let alice = ctx_of("alice", KEY, 3);
        let req = CreatePartitionsRequest::default().with_topics(vec![
            grow("t", 2),
            grow("missing", 2),
            grow("u", 20_000),
        ]);
        let denied = ErrorCode::TOPIC_AUTHORIZATION_FAILED.code();
        let resp = create_partitions(&b, &alice, req.clone()).await;
        assert_eq!(
            codes(&resp),
            vec![
                ("t".into(), denied),
                ("missing".into(), denied),
                ("u".into(), denied),
            ]
        );
        assert!(resp.results[0].error_message.is_none());
        allow_topic(&b, "User:alice", AclOperation::Alter, "t");
        let resp = create_partitions(&b, &alice, req).await;
        assert_eq!(
            codes(&resp),
            vec![
                ("t".into(), 0),
                ("missing".into(), denied),
                ("u".into(), denied),
            ]
        );
        assert_eq!(partitions(&b, "t"), 2);
    }
}
