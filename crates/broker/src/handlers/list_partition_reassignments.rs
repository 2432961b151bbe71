//! ListPartitionReassignments (key 46): the reassignments in progress, with their replicas,
//! adding and removing replicas (`kafka-reassign-partitions.sh --verify`, `--list`).
//!
//! Read from this broker's applied image: it holds the same adding/removing replica sets the
//! controller committed, so no controller round trip is needed.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::RangeInclusive;

use gregor_metadata::MetadataImage;
use gregor_protocol::messages::list_partition_reassignments_response::{
    OngoingPartitionReassignment, OngoingTopicReassignment,
};
use gregor_protocol::messages::ApiKey;
use gregor_protocol::messages::{
    BrokerId, ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse,
};

use super::topic_name;
use crate::broker::Broker;

/// The API this module serves.
pub const KEY: ApiKey = ApiKey::ListPartitionReassignments;
/// The versions served (and advertised in ApiVersions).
pub const VERSIONS: RangeInclusive<i16> = 0..=0;

/// Handles a ListPartitionReassignments request from the broker's image.
pub fn handle(
    broker: &Broker,
    req: &ListPartitionReassignmentsRequest,
) -> ListPartitionReassignmentsResponse {
    list(&broker.replicas.image(), req)
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
