//! AlterPartitionReassignments (key 45): moves partitions to new replicas, or cancels a move
//! (`kafka-reassign-partitions.sh --execute` / `--cancel`).
//!
//! The active controller starts each reassignment (the added replicas join as followers and
//! catch up; once all are in the ISR the removed ones leave and the target becomes the
//! assignment) or cancels it, and commits the change; the reply waits (a few seconds at most)
//! until this broker has applied it. With `allow_replication_factor_change` false (v1), a
//! target of another size than the current assignment is refused here with
//! INVALID_REPLICATION_FACTOR.

use std::collections::BTreeMap;
use std::ops::RangeInclusive;
use std::sync::Arc;

use gregor_controller::protocol as proto;
use gregor_controller::{ControllerRequest, ControllerResponse};
use gregor_protocol::error::ErrorCode;
use gregor_protocol::messages::alter_partition_reassignments_response::{
    ReassignablePartitionResponse, ReassignableTopicResponse,
};
use gregor_protocol::messages::ApiKey;
use gregor_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse,
};
use tracing::warn;

use super::admin_common::wait_for_image;
use super::create_topics::controller_failure;
use super::{str_bytes, topic_name};
use crate::broker::Broker;
use crate::request::{encode, Reply, RequestContext};

/// The API this module serves.
pub const KEY: ApiKey = ApiKey::AlterPartitionReassignments;
/// The versions served (and advertised in ApiVersions).
pub const VERSIONS: RangeInclusive<i16> = 0..=1;

/// Handles an AlterPartitionReassignments request; the reply is ready once the controller has
/// answered and the changes are applied here.
pub fn handle(
    broker: &Arc<Broker>,
    ctx: RequestContext,
    req: AlterPartitionReassignmentsRequest,
) -> Reply {
    let broker = Arc::clone(broker);
    Reply::Pending(Box::pin(async move {
        let response = alter_reassignments(&broker, req).await;
        encode(&ctx, &response)
    }))
}

type Outcome = (i16, Option<String>);

/// Checks, asks the controller, and waits for the changes here.
pub(crate) async fn alter_reassignments(
    broker: &Broker,
    req: AlterPartitionReassignmentsRequest,
) -> AlterPartitionReassignmentsResponse {
    let image = broker.replicas.image();
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
        let targets: Vec<((String, i32), Option<Vec<i32>>)> = asked
            .iter()
            .map(|p| ((p.topic.clone(), p.partition), p.replicas.clone()))
            .collect();
        let request = proto::AlterPartitionReassignmentsRequest { partitions: asked };
        match broker
            .controller
            .call(ControllerRequest::AlterPartitionReassignments(request))
            .await
        {
            Ok(ControllerResponse::AlterPartitionReassignments(resp)) => {
                let done: Vec<&((String, i32), Option<Vec<i32>>)> = targets
                    .iter()
                    .filter(|((t, p), _)| {
                        resp.results
                            .iter()
                            .any(|r| &r.topic == t && r.partition == *p && r.error_code == 0)
                    })
                    .collect();
                wait_for_image(broker, |image| {
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
