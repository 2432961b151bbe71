//! AlterPartitionReassignments (key 45): moves partitions to new replicas, or cancels a move
//! (`kafka-reassign-partitions.sh --execute` / `--cancel`).
//!
//! The active controller starts each reassignment (the added replicas join as followers and
//! catch up; once all are in the ISR the removed ones leave and the target becomes the
//! assignment) or cancels it, and commits the change; the reply waits (a few seconds at most)
//! until this broker has applied it. With `allow_replication_factor_change` false (v1), a
//! target of another size than the current assignment is refused here with
//! INVALID_REPLICATION_FACTOR.
//!
//! The principal needs ALTER on the cluster; without it every partition and the request get
//! CLUSTER_AUTHORIZATION_FAILED.

use std::collections::BTreeMap;
use std::ops::RangeInclusive;
use std::sync::Arc;

use gregor_controller::protocol as proto;
use gregor_controller::{ControllerRequest, ControllerResponse};
use gregor_metadata::AclOperation;
use gregor_protocol::error::ErrorCode;
use gregor_protocol::messages::alter_partition_reassignments_response::{
    ReassignablePartitionResponse, ReassignableTopicResponse,
};
use gregor_protocol::messages::ApiKey;
use gregor_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse,
};
use tracing::warn;

use super::admin_common::{wait_for_image, CLUSTER_AUTHORIZATION_FAILED_MESSAGE};
use super::create_topics::controller_failure;
use super::{str_bytes, topic_name};
use crate::admin_node::AdminNode;
use crate::authorizer;
use crate::request::{encode, Reply, RequestContext};

/// The API this module serves.
pub const KEY: ApiKey = ApiKey::AlterPartitionReassignments;
/// The versions served (and advertised in ApiVersions).
pub const VERSIONS: RangeInclusive<i16> = 0..=1;

/// Handles an AlterPartitionReassignments request; the reply is ready once the controller has
/// answered and the changes are applied here.
pub fn handle<N: AdminNode + 'static>(
    node: &Arc<N>,
    ctx: RequestContext,
    req: AlterPartitionReassignmentsRequest,
) -> Reply {
    let node = Arc::clone(node);
    Reply::Pending(Box::pin(async move {
        let response = alter_reassignments(&*node, &ctx, req).await;
        encode(&ctx, &response)
    }))
}

type Outcome = (i16, Option<String>);

/// A partition, `(topic, partition)`, with its target replicas (`None`: cancel).
type Target = ((String, i32), Option<Vec<i32>>);

/// The whole request refused with CLUSTER_AUTHORIZATION_FAILED (Kafka's
/// `AlterPartitionReassignmentsRequest.getErrorResponse`): every partition and the request.
fn denied(req: &AlterPartitionReassignmentsRequest) -> AlterPartitionReassignmentsResponse {
    let code = ErrorCode::CLUSTER_AUTHORIZATION_FAILED.code();
    let message = || Some(str_bytes(CLUSTER_AUTHORIZATION_FAILED_MESSAGE));
    let responses = req
        .topics
        .iter()
        .map(|t| {
            ReassignableTopicResponse::default()
                .with_name(t.name.clone())
                .with_partitions(
                    t.partitions
                        .iter()
                        .map(|p| {
                            ReassignablePartitionResponse::default()
                                .with_partition_index(p.partition_index)
                                .with_error_code(code)
                                .with_error_message(message())
                        })
                        .collect(),
                )
        })
        .collect();
    AlterPartitionReassignmentsResponse::default()
        .with_allow_replication_factor_change(req.allow_replication_factor_change)
        .with_error_code(code)
        .with_error_message(message())
        .with_responses(responses)
}

/// Checks, asks the controller, and waits for the changes here. The principal needs ALTER on
/// the cluster (Kafka's `ControllerApis.handleAlterPartitionReassignments`).
pub(crate) async fn alter_reassignments(
    node: &dyn AdminNode,
    ctx: &RequestContext,
    req: AlterPartitionReassignmentsRequest,
) -> AlterPartitionReassignmentsResponse {
    if !authorizer::authorize_cluster(node, ctx, AclOperation::Alter) {
        return denied(&req);
    }
    let image = node.image();
    // (topic, partition) -> outcome, None while asked of the controller.
    let mut outcomes: Vec<((String, i32), Option<Outcome>)> = Vec::new();
    let mut asked: Vec<proto::ReassignablePartition> = Vec::new();
    for t in &req.topics {
        let topic = t.name.0.to_string();
        for p in &t.partitions {
            let target: Option<Vec<i32>> =
                p.replicas.as_ref().map(|r| r.iter().map(|b| b.0).collect());
            let current = image.topics().topic_by_name(&topic).and_then(|t| {
                t.partition(p.partition_index)
                    .map(|p| p.original_replicas().len())
            });
            let refusal = match (&target, current) {
                (Some(target), Some(current))
                    if !req.allow_replication_factor_change && target.len() != current =>
                {
                    Some((
                        ErrorCode::INVALID_REPLICATION_FACTOR.code(),
                        Some(format!(
                            "The replication factor is changed from {current} to {} but allowReplicationFactorChange is false",
                            target.len()
                        )),
                    ))
                }
                (Some(target), _) if target.is_empty() => Some((
                    ErrorCode::INVALID_REPLICA_ASSIGNMENT.code(),
                    Some("The manual partition assignment includes an empty replica list.".into()),
                )),
                _ => None,
            };
            if refusal.is_none() {
                asked.push(proto::ReassignablePartition {
                    topic: topic.clone(),
                    partition: p.partition_index,
                    replicas: target,
                });
            }
            outcomes.push(((topic.clone(), p.partition_index), refusal));
        }
    }
    let mut decided: BTreeMap<(String, i32), Outcome> = BTreeMap::new();
    if !asked.is_empty() {
        let targets: Vec<Target> = asked
            .iter()
            .map(|p| ((p.topic.clone(), p.partition), p.replicas.clone()))
            .collect();
        let request = proto::AlterPartitionReassignmentsRequest { partitions: asked };
        match node
            .controller()
            .call(ControllerRequest::AlterPartitionReassignments(request))
            .await
        {
            Ok(ControllerResponse::AlterPartitionReassignments(resp)) => {
                let done: Vec<&Target> = targets
                    .iter()
                    .filter(|((t, p), _)| {
                        resp.results
                            .iter()
                            .any(|r| &r.topic == t && r.partition == *p && r.error_code == 0)
                    })
                    .collect();
                wait_for_image(node, |image| {
                    done.iter().all(|((topic, partition), target)| {
                        let Some(t) = image.topics().topic_by_name(topic) else {
                            return true;
                        };
                        t.partition(*partition).is_none_or(|p| match target {
                            Some(target) => {
                                let mut want = target.clone();
                                want.sort_unstable();
                                let mut have = p.target_replicas();
                                have.sort_unstable();
                                want == have
                            }
                            None => !p.is_reassigning(),
                        })
                    })
                })
                .await;
                for r in resp.results {
                    decided.insert((r.topic, r.partition), (r.error_code, r.error_message));
                }
            }
            Ok(other) => {
                let (code, message) = controller_failure(&other);
                for (key, _) in targets {
                    decided.insert(key, (code.code(), Some(message.clone())));
                }
            }
            Err(e) => {
                warn!(error = %e, "AlterPartitionReassignments: the controller could not be reached");
                for (key, _) in targets {
                    decided.insert(
                        key,
                        (ErrorCode::REQUEST_TIMED_OUT.code(), Some(e.to_string())),
                    );
                }
            }
        }
    }
    let mut by_topic: Vec<ReassignableTopicResponse> = Vec::new();
    for ((topic, partition), outcome) in outcomes {
        let (code, message) = outcome
            .or_else(|| decided.remove(&(topic.clone(), partition)))
            .unwrap_or((
                ErrorCode::UNKNOWN_SERVER_ERROR.code(),
                Some("the controller did not answer for this partition".into()),
            ));
        let result = ReassignablePartitionResponse::default()
            .with_partition_index(partition)
            .with_error_code(code)
            .with_error_message(if code == 0 {
                None
            } else {
                message.map(str_bytes)
            });
        match by_topic.iter_mut().find(|t| *t.name.0 == *topic) {
            Some(t) => t.partitions.push(result),
            None => by_topic.push(
                ReassignableTopicResponse::default()
                    .with_name(topic_name(&topic))
                    .with_partitions(vec![result]),
            ),
        }
    }
    AlterPartitionReassignmentsResponse::default()
        .with_allow_replication_factor_change(req.allow_replication_factor_change)
        .with_responses(by_topic)
}

#[cfg(test)]
mod tests {
    use super::*;
    use gregor_protocol::messages::alter_partition_reassignments_request::{
        ReassignablePartition, ReassignableTopic,
    };
    use gregor_protocol::messages::list_partition_reassignments_request::ListPartitionReassignmentsTopics;
    use gregor_protocol::messages::{BrokerId, ListPartitionReassignmentsRequest};

    use crate::broker::Broker;
    use crate::handlers::admin_common::test_cluster;
    use crate::handlers::list_partition_reassignments;

    fn ctx() -> RequestContext {
        RequestContext::for_test(KEY, 1)
    }

    fn move_to(topic: &str, partition: i32, replicas: Option<&[i32]>) -> ReassignableTopic {
        ReassignableTopic::default()
            .with_name(topic_name(topic))
            .with_partitions(vec![ReassignablePartition::default()
                .with_partition_index(partition)
                .with_replicas(
                    replicas.map(|r| r.iter().map(|&b| BrokerId(b)).collect()),
                )])
    }

    fn codes(resp: &AlterPartitionReassignmentsResponse) -> Vec<(String, i32, i16)> {
        resp.responses
            .iter()
            .flat_map(|t| {
                t.partitions
                    .iter()
                    .map(|p| (t.name.0.to_string(), p.partition_index, p.error_code))
            })
            .collect()
    }

    type Ongoing = (String, i32, Vec<i32>, Vec<i32>, Vec<i32>);

    fn ongoing(b: &Broker) -> Vec<Ongoing> {
        let resp = list_partition_reassignments::list(
            &b.replicas.image(),
            &ListPartitionReassignmentsRequest::default(),
        );
        resp.topics
            .iter()
            .flat_map(|t| {
                t.partitions.iter().map(|p| {
                    let ids = |v: &[BrokerId]| v.iter().map(|b| b.0).collect::<Vec<_>>();
                    (
                        t.name.0.to_string(),
                        p.partition_index,
                        ids(&p.replicas),
                        ids(&p.adding_replicas),
                        ids(&p.removing_replicas),
                    )
                })
            })
            .collect()
    }

    #[tokio::test]
    async fn a_reassignment_starts_is_listed_and_can_be_cancelled() {
        let dir = tempfile::tempdir().expect("tempdir");
        let b = test_cluster::broker(dir.path());
        test_cluster::topic(&b, "t", &[vec![1], vec![1]]);
        let req = AlterPartitionReassignmentsRequest::default()
            .with_allow_replication_factor_change(true)
            .with_topics(vec![
                move_to("t", 0, Some(&[2])),
                move_to("missing", 0, Some(&[2])),
            ]);
        let resp = alter_reassignments(&b, &ctx(), req).await;
        assert_eq!(
            codes(&resp),
            vec![
                ("t".into(), 0, 0),
                (
                    "missing".into(),
                    0,
                    ErrorCode::UNKNOWN_TOPIC_OR_PARTITION.code()
                ),
            ]
        );
        // Broker 2 has not caught up (no fetcher in unit tests): the move is in progress.
        assert_eq!(
            ongoing(&b),
            vec![("t".into(), 0, vec![2, 1], vec![2], vec![1])]
        );
        // Filtered to another partition: nothing.
        let filtered = list_partition_reassignments::list(
            &b.replicas.image(),
            &ListPartitionReassignmentsRequest::default().with_topics(Some(vec![
                ListPartitionReassignmentsTopics::default()
                    .with_name(topic_name("t"))
                    .with_partition_indexes(vec![1]),
            ])),
        );
        assert!(filtered.topics.is_empty());
        let cancel = AlterPartitionReassignmentsRequest::default()
            .with_allow_replication_factor_change(true)
            .with_topics(vec![move_to("t", 0, None)]);
        assert_eq!(
            codes(&alter_reassignments(&b, &ctx(), cancel).await),
            vec![("t".into(), 0, 0)]
        );
        assert!(ongoing(&b).is_empty());
        let image = b.replicas.image();
        let p = image
            .topics()
            .topic_by_name("t")
            .and_then(|t| t.partition(0).cloned());
        assert_eq!(p.map(|p| p.replicas), Some(vec![1]));
    }

    #[tokio::test]
    async fn replication_factor_changes_need_permission() {
        let dir = tempfile::tempdir().expect("tempdir");
        let b = test_cluster::broker(dir.path());
        test_cluster::topic(&b, "t", &[vec![1]]);
        let req = AlterPartitionReassignmentsRequest::default()
            .with_allow_replication_factor_change(false)
            .with_topics(vec![
                move_to("t", 0, Some(&[1, 2])),
                move_to("t", 0, Some(&[])),
            ]);
        let resp = alter_reassignments(&b, &ctx(), req).await;
        assert_eq!(
            codes(&resp),
            vec![
                ("t".into(), 0, ErrorCode::INVALID_REPLICATION_FACTOR.code()),
                ("t".into(), 0, ErrorCode::INVALID_REPLICATION_FACTOR.code()),
            ]
        );
        assert!(ongoing(&b).is_empty());
    }

    /// With an authorizer: ALTER on the cluster, else every partition and the request are
    /// CLUSTER_AUTHORIZATION_FAILED and nothing moves.
    #[tokio::test]
    async fn reassignments_need_alter_on_the_cluster() {
        use crate::authorizer::test_support::{allow_cluster, ctx_of};
        let dir = tempfile::tempdir().expect("tempdir");
        let b = test_cluster::secured(dir.path());
        test_cluster::topic(&b, "t", &[vec![1]]);
        let req = AlterPartitionReassignmentsRequest::default()
            .with_allow_replication_factor_change(true)
            .with_topics(vec![move_to("t", 0, Some(&[2]))]);
        let alice = ctx_of("alice", KEY, 1);
        let denied = ErrorCode::CLUSTER_AUTHORIZATION_FAILED.code();
        let resp = alter_reassignments(&b, &alice, req.clone()).await;
        assert_eq!(resp.error_code, denied);
        assert_eq!(codes(&resp), vec![("t".into(), 0, denied)]);
        assert!(ongoing(&b).is_empty());
        allow_cluster(&b, "User:alice", AclOperation::Alter);
        let resp = alter_reassignments(&b, &alice, req).await;
        assert_eq!(resp.error_code, 0);
        assert_eq!(codes(&resp), vec![("t".into(), 0, 0)]);
        assert_eq!(ongoing(&b).len(), 1);
    }
}
