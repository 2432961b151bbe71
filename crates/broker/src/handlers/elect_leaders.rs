//! ElectLeaders (key 43): preferred or unclean leader election for some partitions or all
//! (`kafka-leader-election.sh`).
//!
//! The active controller decides every partition (ELECTION_NOT_NEEDED when the preferred
//! replica already leads, PREFERRED_LEADER_NOT_AVAILABLE / ELIGIBLE_LEADERS_NOT_AVAILABLE when
//! no such leader can be chosen now) and commits the new leaders; the reply waits (a few
//! seconds at most) until this broker has applied them. Asked for every partition (a null
//! list), the partitions that did not need an election are left out, as in Kafka.
//!
//! The principal needs ALTER on the cluster; without it every partition asked for, and the
//! request (v1+), get CLUSTER_AUTHORIZATION_FAILED.

use std::collections::BTreeMap;
use std::ops::RangeInclusive;
use std::sync::Arc;

use gregor_controller::protocol as proto;
use gregor_controller::{ControllerRequest, ControllerResponse};
use gregor_metadata::AclOperation;
use gregor_protocol::error::ErrorCode;
use gregor_protocol::messages::elect_leaders_response::{PartitionResult, ReplicaElectionResult};
use gregor_protocol::messages::ApiKey;
use gregor_protocol::messages::{ElectLeadersRequest, ElectLeadersResponse};
use tracing::warn;

use super::admin_common::{wait_for_image, CLUSTER_AUTHORIZATION_FAILED_MESSAGE};
use super::create_topics::controller_failure;
use super::{str_bytes, topic_name};
use crate::admin_node::AdminNode;
use crate::authorizer;
use crate::request::{encode, Reply, RequestContext};

/// The API this module serves.
pub const KEY: ApiKey = ApiKey::ElectLeaders;
/// The versions served (and advertised in ApiVersions).
pub const VERSIONS: RangeInclusive<i16> = 0..=2;

/// Kafka's `ElectionType`: 0 preferred, 1 unclean.
const PREFERRED: i8 = 0;
const UNCLEAN: i8 = 1;

/// Handles an ElectLeaders request; the reply is ready once the controller has answered and
/// the new leaders are applied here.
pub fn handle<N: AdminNode + 'static>(
    node: &Arc<N>,
    ctx: RequestContext,
    req: ElectLeadersRequest,
) -> Reply {
    let node = Arc::clone(node);
    Reply::Pending(Box::pin(async move {
        let response = elect_leaders(&*node, &ctx, req).await;
        encode(&ctx, &response)
    }))
}

/// Per-partition results grouped by topic, in topic and partition order.
fn grouped(
    results: Vec<(proto::TopicPartition, i16, Option<String>)>,
) -> Vec<ReplicaElectionResult> {
    let mut by_topic: BTreeMap<String, Vec<PartitionResult>> = BTreeMap::new();
    for (tp, code, message) in results {
        by_topic.entry(tp.topic).or_default().push(
            PartitionResult::default()
                .with_partition_id(tp.partition)
                .with_error_code(code)
                .with_error_message(if code == 0 {
                    None
                } else {
                    message.map(str_bytes)
                }),
        );
    }
    by_topic
        .into_iter()
        .map(|(topic, mut partitions)| {
            partitions.sort_by_key(|p| p.partition_id);
            ReplicaElectionResult::default()
                .with_topic(topic_name(&topic))
                .with_partition_result(partitions)
        })
        .collect()
}

/// The whole request refused with CLUSTER_AUTHORIZATION_FAILED (Kafka's
/// `ElectLeadersRequest.getErrorResponse`): every partition asked for, and the top-level code
/// (v1+).
fn denied(version: i16, req: &ElectLeadersRequest) -> ElectLeadersResponse {
    let code = ErrorCode::CLUSTER_AUTHORIZATION_FAILED.code();
    let results = req
        .topic_partitions
        .iter()
        .flatten()
        .map(|t| {
            ReplicaElectionResult::default()
                .with_topic(t.topic.clone())
                .with_partition_result(
                    t.partitions
                        .iter()
                        .map(|&p| {
                            PartitionResult::default()
                                .with_partition_id(p)
                                .with_error_code(code)
                                .with_error_message(Some(str_bytes(
                                    CLUSTER_AUTHORIZATION_FAILED_MESSAGE,
                                )))
                        })
                        .collect(),
                )
        })
        .collect();
    ElectLeadersResponse::default()
        .with_error_code(if version >= 1 { code } else { 0 })
        .with_replica_election_results(results)
}

/// Asks the controller for the elections and waits for them to be applied here. The principal
/// needs ALTER on the cluster (Kafka's `ControllerApis.handleElectLeaders`).
pub(crate) async fn elect_leaders(
    node: &dyn AdminNode,
    ctx: &RequestContext,
    req: ElectLeadersRequest,
) -> ElectLeadersResponse {
    let version = ctx.api_version;
    if !authorizer::authorize_cluster(node, ctx, AclOperation::Alter) {
        return denied(version, &req);
    }
    // v0 has no election type: preferred.
    let election_type = match (version, req.election_type) {
        (0, _) | (_, PREFERRED) => proto::ElectionType::Preferred,
        (_, UNCLEAN) => proto::ElectionType::Unclean,
        (_, other) => {
            return ElectLeadersResponse::default()
                .with_error_code(if version >= 1 {
                    ErrorCode::INVALID_REQUEST.code()
                } else {
                    0
                })
                .with_replica_election_results(grouped(
                    asked(&req)
                        .unwrap_or_default()
                        .into_iter()
                        .map(|tp| {
                            (
                                tp,
                                ErrorCode::INVALID_REQUEST.code(),
                                Some(format!("Unknown election type {other}")),
                            )
                        })
                        .collect(),
                ));
        }
    };
    let partitions = asked(&req);
    let request = proto::ElectLeadersRequest {
        election_type,
        partitions: partitions.clone(),
    };
    let results: Vec<(proto::TopicPartition, i16, Option<String>)> = match node
        .controller()
        .call(ControllerRequest::ElectLeaders(request))
        .await
    {
        Ok(ControllerResponse::ElectLeaders(resp)) => {
            let elected: Vec<proto::TopicPartition> = resp
                .results
                .iter()
                .filter(|r| r.error_code == 0)
                .map(|r| proto::TopicPartition {
                    topic: r.topic.clone(),
                    partition: r.partition,
                })
                .collect();
            if !elected.is_empty() {
                wait_for_image(node, |image| {
                    elected.iter().all(|tp| {
                        let Some(topic) = image.topics().topic_by_name(&tp.topic) else {
                            return true;
                        };
                        topic
                            .partition(tp.partition)
                            .is_none_or(|p| match election_type {
                                proto::ElectionType::Preferred => {
                                    Some(p.leader) == p.preferred_leader()
                                }
                                proto::ElectionType::Unclean => p.has_leader(),
                            })
                    })
                })
                .await;
            }
            resp.results
                .into_iter()
                .map(|r| {
                    (
                        proto::TopicPartition {
                            topic: r.topic,
                            partition: r.partition,
                        },
                        r.error_code,
                        r.error_message,
                    )
                })
                .collect()
        }
        Ok(other) => {
            let (code, message) = controller_failure(&other);
            if partitions.is_none() && version >= 1 {
                return ElectLeadersResponse::default().with_error_code(code.code());
            }
            partitions
                .unwrap_or_default()
                .into_iter()
                .map(|tp| (tp, code.code(), Some(message.clone())))
                .collect()
        }
        Err(e) => {
            warn!(error = %e, "ElectLeaders: the controller could not be reached");
            if partitions.is_none() && version >= 1 {
                return ElectLeadersResponse::default()
                    .with_error_code(ErrorCode::REQUEST_TIMED_OUT.code());
            }
            partitions
                .unwrap_or_default()
                .into_iter()
                .map(|tp| (tp, ErrorCode::REQUEST_TIMED_OUT.code(), Some(e.to_string())))
                .collect()
        }
    };
    ElectLeadersResponse::default().with_replica_election_results(grouped(results))
}

/// The partitions asked for; `None`: every partition.
fn asked(req: &ElectLeadersRequest) -> Option<Vec<proto::TopicPartition>> {
    req.topic_partitions.as_ref().map(|topics| {
        topics
            .iter()
            .flat_map(|t| {
                t.partitions.iter().map(|&partition| proto::TopicPartition {
                    topic: t.topic.0.to_string(),
                    partition,
                })
            })
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use gregor_protocol::messages::elect_leaders_request::TopicPartitions;

    use crate::broker::Broker;
    use crate::handlers::admin_common::test_cluster;

    fn ctx(version: i16) -> RequestContext {
        RequestContext::for_test(KEY, version)
    }

    fn results(resp: &ElectLeadersResponse) -> Vec<(String, i32, i16)> {
        resp.replica_election_results
            .iter()
            .flat_map(|t| {
                t.partition_result
                    .iter()
                    .map(|p| (t.topic.0.to_string(), p.partition_id, p.error_code))
            })
            .collect()
    }

    fn leader(b: &Broker, topic: &str, partition: i32) -> i32 {
        b.replicas
            .image()
            .topics()
            .topic_by_name(topic)
            .and_then(|t| t.partition(partition).map(|p| p.leader))
            .expect("partition")
    }

    #[tokio::test]
    async fn preferred_election_moves_leaders_back_and_answers_per_partition() {
        let dir = tempfile::tempdir().expect("tempdir");
        let b = test_cluster::broker(dir.path());
        let id = test_cluster::topic(&b, "t", &[vec![1, 2], vec![2, 1]]);
        test_cluster::set_leader(&b, id, 0, 2);
        assert_eq!(leader(&b, "t", 0), 2);
        let req = ElectLeadersRequest::default()
            .with_election_type(PREFERRED)
            .with_topic_partitions(Some(vec![
                TopicPartitions::default()
                    .with_topic(topic_name("t"))
                    .with_partitions(vec![0, 1, 7]),
                TopicPartitions::default()
                    .with_topic(topic_name("missing"))
                    .with_partitions(vec![0]),
            ]));
        let resp = elect_leaders(&b, &ctx(2), req).await;
        assert_eq!(
            results(&resp),
            vec![
                (
                    "missing".into(),
                    0,
                    ErrorCode::UNKNOWN_TOPIC_OR_PARTITION.code()
                ),
                ("t".into(), 0, 0),
                ("t".into(), 1, ErrorCode::ELECTION_NOT_NEEDED.code()),
                ("t".into(), 7, ErrorCode::UNKNOWN_TOPIC_OR_PARTITION.code()),
            ]
        );
        assert_eq!(leader(&b, "t", 0), 1);
    }

    #[tokio::test]
    async fn all_partitions_answers_only_the_elected_ones() {
        let dir = tempfile::tempdir().expect("tempdir");
        let b = test_cluster::broker(dir.path());
        let id = test_cluster::topic(&b, "t", &[vec![1, 2], vec![2, 1]]);
        test_cluster::set_leader(&b, id, 1, 1);
        let resp = elect_leaders(
            &b,
            &ctx(1),
            ElectLeadersRequest::default().with_topic_partitions(None),
        )
        .await;
        assert_eq!(resp.error_code, 0);
        assert_eq!(results(&resp), vec![("t".into(), 1, 0)]);
        assert_eq!(leader(&b, "t", 1), 2);
        // Unclean on a partition that has a leader: not needed.
        let req = ElectLeadersRequest::default()
            .with_election_type(UNCLEAN)
            .with_topic_partitions(Some(vec![TopicPartitions::default()
                .with_topic(topic_name("t"))
                .with_partitions(vec![0])]));
        assert_eq!(
            results(&elect_leaders(&b, &ctx(1), req).await),
            vec![("t".into(), 0, ErrorCode::ELECTION_NOT_NEEDED.code())]
        );
    }

    /// With an authorizer: ALTER on the cluster, else every partition asked for and the
    /// request are CLUSTER_AUTHORIZATION_FAILED and nothing is elected.
    #[tokio::test]
    async fn elections_need_alter_on_the_cluster() {
        use crate::authorizer::test_support::{allow_cluster, ctx_of};
        let dir = tempfile::tempdir().expect("tempdir");
        let b = test_cluster::secured(dir.path());
        let id = test_cluster::topic(&b, "t", &[vec![1, 2]]);
        test_cluster::set_leader(&b, id, 0, 2);
        let req = ElectLeadersRequest::default()
            .with_election_type(PREFERRED)
            .with_topic_partitions(Some(vec![TopicPartitions::default()
                .with_topic(topic_name("t"))
                .with_partitions(vec![0])]));
        let alice = ctx_of("alice", KEY, 2);
        let denied = ErrorCode::CLUSTER_AUTHORIZATION_FAILED.code();
        let resp = elect_leaders(&b, &alice, req.clone()).await;
        assert_eq!(resp.error_code, denied);
        assert_eq!(results(&resp), vec![("t".into(), 0, denied)]);
        let all = elect_leaders(
            &b,
            &alice,
            ElectLeadersRequest::default().with_topic_partitions(None),
        )
        .await;
        assert_eq!(all.error_code, denied);
        assert!(all.replica_election_results.is_empty());
        assert_eq!(leader(&b, "t", 0), 2);
        allow_cluster(&b, "User:alice", AclOperation::Alter);
        let resp = elect_leaders(&b, &alice, req).await;
        assert_eq!(resp.error_code, 0);
        assert_eq!(results(&resp), vec![("t".into(), 0, 0)]);
        assert_eq!(leader(&b, "t", 0), 1);
    }
}
