//! ListPartitionReassignments (key 46): the reassignments in progress, with their replicas,
//! adding and removing replicas (`kafka-reassign-partitions.sh --verify`, `--list`).
//!
//! Read from this node's applied image (a broker's, or the quorum's on a controller listener,
//! KIP-919): it holds the same adding/removing replica sets the controller committed, so no
//! controller round trip is needed.
//!
//! The principal needs DESCRIBE on the cluster; without it the request is
//! CLUSTER_AUTHORIZATION_FAILED.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::RangeInclusive;

use gregor_metadata::{AclOperation, MetadataImage};
use gregor_protocol::error::ErrorCode;
use gregor_protocol::messages::list_partition_reassignments_response::{
    OngoingPartitionReassignment, OngoingTopicReassignment,
};
use gregor_protocol::messages::ApiKey;
use gregor_protocol::messages::{
    BrokerId, ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse,
};

use super::admin_common::CLUSTER_AUTHORIZATION_FAILED_MESSAGE;
use super::{str_bytes, topic_name};
use crate::admin_node::AdminNode;
use crate::authorizer;
use crate::request::RequestContext;

/// The API this module serves.
pub const KEY: ApiKey = ApiKey::ListPartitionReassignments;
/// The versions served (and advertised in ApiVersions).
pub const VERSIONS: RangeInclusive<i16> = 0..=0;

/// Handles a ListPartitionReassignments request from the node's image. The principal needs
/// DESCRIBE on the cluster (Kafka's `ControllerApis.handleListPartitionReassignments`).
pub fn handle(
    node: &dyn AdminNode,
    ctx: &RequestContext,
    req: &ListPartitionReassignmentsRequest,
) -> ListPartitionReassignmentsResponse {
    if !authorizer::authorize_cluster(node, ctx, AclOperation::Describe) {
        return denied(req);
    }
    list(&node.image(), req)
}

/// The request refused with CLUSTER_AUTHORIZATION_FAILED (Kafka's
/// `ListPartitionReassignmentsRequest.getErrorResponse`: the partitions asked for, without
/// replicas).
fn denied(req: &ListPartitionReassignmentsRequest) -> ListPartitionReassignmentsResponse {
    let topics = req
        .topics
        .iter()
        .flatten()
        .map(|t| {
            OngoingTopicReassignment::default()
                .with_name(t.name.clone())
                .with_partitions(
                    t.partition_indexes
                        .iter()
                        .map(|&p| OngoingPartitionReassignment::default().with_partition_index(p))
                        .collect(),
                )
        })
        .collect();
    ListPartitionReassignmentsResponse::default()
        .with_error_code(ErrorCode::CLUSTER_AUTHORIZATION_FAILED.code())
        .with_error_message(Some(str_bytes(CLUSTER_AUTHORIZATION_FAILED_MESSAGE)))
        .with_topics(topics)
}

fn ids(v: &[i32]) -> Vec<BrokerId> {
    v.iter().map(|&b| BrokerId(b)).collect()
}

/// The ongoing reassignments of `image`, all of them or those of the partitions asked for
/// (partitions that are not being reassigned, or do not exist, are left out, as in Kafka).
pub fn list(
    image: &MetadataImage,
    req: &ListPartitionReassignmentsRequest,
) -> ListPartitionReassignmentsResponse {
    let wanted: Option<BTreeSet<(String, i32)>> = req.topics.as_ref().map(|topics| {
        topics
            .iter()
            .flat_map(|t| {
                t.partition_indexes
                    .iter()
                    .map(|&p| (t.name.0.to_string(), p))
            })
            .collect()
    });
    let mut by_topic: BTreeMap<String, Vec<OngoingPartitionReassignment>> = BTreeMap::new();
    for (tp, p) in image.topics().reassigning_partitions() {
        let Some(topic) = image.topics().topic(tp.topic_id) else {
            continue;
        };
        if wanted
            .as_ref()
            .is_some_and(|w| !w.contains(&(topic.name.clone(), tp.partition)))
        {
            continue;
        }
        by_topic.entry(topic.name.clone()).or_default().push(
            OngoingPartitionReassignment::default()
                .with_partition_index(tp.partition)
                .with_replicas(ids(&p.replicas))
                .with_adding_replicas(ids(&p.adding_replicas))
                .with_removing_replicas(ids(&p.removing_replicas)),
        );
    }
    let topics = by_topic
        .into_iter()
        .map(|(name, mut partitions)| {
            partitions.sort_by_key(|p| p.partition_index);
            OngoingTopicReassignment::default()
                .with_name(topic_name(&name))
                .with_partitions(partitions)
        })
        .collect();
    ListPartitionReassignmentsResponse::default().with_topics(topics)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authorizer::test_support::{allow_cluster, ctx_of};
    use crate::handlers::admin_common::test_cluster;
    use gregor_protocol::messages::list_partition_reassignments_request::ListPartitionReassignmentsTopics;

    /// With an authorizer: DESCRIBE on the cluster, else CLUSTER_AUTHORIZATION_FAILED with the
    /// partitions asked for and nothing of their replicas.
    #[test]
    fn listing_needs_describe_on_the_cluster() {
        let dir = tempfile::tempdir().expect("tempdir");
        let b = test_cluster::secured(dir.path());
        test_cluster::topic(&b, "t", &[vec![1]]);
        let req = ListPartitionReassignmentsRequest::default().with_topics(Some(vec![
            ListPartitionReassignmentsTopics::default()
                .with_name(topic_name("t"))
                .with_partition_indexes(vec![0]),
        ]));
        let alice = ctx_of("alice", KEY, 0);
        let resp = handle(&b, &alice, &req);
        assert_eq!(
            resp.error_code,
            ErrorCode::CLUSTER_AUTHORIZATION_FAILED.code()
        );
        assert_eq!(resp.topics.len(), 1);
        assert_eq!(resp.topics[0].partitions[0].partition_index, 0);
        assert!(resp.topics[0].partitions[0].replicas.is_empty());
        allow_cluster(&b, "User:alice", AclOperation::Describe);
        let resp = handle(&b, &alice, &req);
        assert_eq!(resp.error_code, 0);
        assert!(resp.topics.is_empty(), "nothing is being reassigned");
    }
}
