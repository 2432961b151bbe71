//! OffsetCommit (key 8): partitions of unknown topics are refused here; the rest go to the
//! coordinator, and the reply waits until the commit is in `__consumer_offsets`. v9 is v8 for
//! a classic group (its generation in `generation_id_or_member_epoch`); for a consumer group
//! (KIP-848) that field is the member epoch, checked by the consumer group core
//! (UNKNOWN_MEMBER_ID, STALE_MEMBER_EPOCH, UNSUPPORTED_VERSION below v9 on every partition);
//! accepted offsets are stored as a simple (generation -1) commit's.

use std::ops::RangeInclusive;
use std::sync::Arc;

use gregor_group::consumer_group::OffsetCheck;
use gregor_group::{Output, Response};
use gregor_protocol::error::ErrorCode;
use gregor_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use gregor_protocol::messages::ApiKey;
use gregor_protocol::messages::{OffsetCommitRequest, OffsetCommitResponse};

use super::group_common::{call_core, pending, NOT_AVAILABLE};
use super::topic_name;
use crate::broker::Broker;
use crate::request::{Reply, RequestContext};

/// The API this module serves.
pub const KEY: ApiKey = ApiKey::OffsetCommit;
/// The versions served (and advertised in ApiVersions).
pub const VERSIONS: RangeInclusive<i16> = 2..=9;

/// A partition's result from the coordinator: ((topic, partition), error code).
type PartitionCode = ((String, i32), i16);

/// Handles an OffsetCommit request.
pub fn handle(broker: &Arc<Broker>, ctx: RequestContext, req: OffsetCommitRequest) -> Reply {
    let mut rejected: Vec<(String, i32)> = Vec::new();
    let mut topics = Vec::new();
    for t in &req.topics {
        let name = t.name.0.to_string();
        let mut partitions = Vec::new();
        for p in &t.partitions {
            // A partition of the cluster (hosted here or not): offsets are committed for
            // any partition the group consumes.
            if !broker
                .replicas
                .topic(&name)
                .is_some_and(|t| t.has_partition(p.partition_index))
            {
                rejected.push((name.clone(), p.partition_index));
                continue;
            }
            partitions.push(gregor_group::OffsetCommitPartition {
                partition_index: p.partition_index,
                committed_offset: p.committed_offset,
                committed_leader_epoch: if ctx.api_version >= 6 {
                    p.committed_leader_epoch
                } else {
                    -1
                },
                committed_metadata: p.committed_metadata.as_ref().map(|s| s.to_string()),
            });
        }
        topics.push(gregor_group::OffsetCommitTopic { name, partitions });
    }
    let mut core_req = gregor_group::OffsetCommitRequest {
        group_id: req.group_id.0.to_string(),
        generation_id: req.generation_id_or_member_epoch,
        member_id: req.member_id.to_string(),
        group_instance_id: req.group_instance_id.as_ref().map(|s| s.to_string()),
        topics,
    };
    let group_id = core_req.group_id.clone();
    let version = ctx.api_version;
    let rx = call_core(broker, &group_id, |core, id, now| {
        // A consumer group (KIP-848) checks the member and its epoch; its offsets are then
        // stored as a simple commit's.
        let check = broker.groups.consumer().validate_offset_commit(
            &core_req.group_id,
            &core_req.member_id,
            core_req.generation_id,
            false,
            version,
        );
        match check {
            OffsetCheck::NotConsumerGroup => {}
            OffsetCheck::Accepted => {
                core_req.generation_id = -1;
                core_req.member_id.clear();
                core_req.group_instance_id = None;
            }
            OffsetCheck::Rejected { error_code, .. } => {
                let topics = core_req
                    .topics
                    .iter()
                    .map(|t| gregor_group::TopicPartitionErrors {
                        name: t.name.clone(),
                        partitions: t
                            .partitions
                            .iter()
                            .map(|p| gregor_group::PartitionError {
                                partition_index: p.partition_index,
                                error_code,
                            })
                            .collect(),
                    })
                    .collect();
                return vec![Output::Respond {
                    request: id,
                    response: Response::OffsetCommit(gregor_group::OffsetCommitResponse { topics }),
                }];
            }
        }
        core.commit_offsets(id, core_req, now)
    });
    let order: Vec<(String, Vec<i32>)> = req
        .topics
        .iter()
        .map(|t| {
            (
                t.name.0.to_string(),
                t.partitions.iter().map(|p| p.partition_index).collect(),
            )
        })
        .collect();
    pending(ctx, rx, move |resp| {
        let (codes, fallback): (Vec<PartitionCode>, i16) = match resp {
            Some(Response::OffsetCommit(r)) => (
                r.topics
                    .into_iter()
                    .flat_map(|t| {
                        let name = t.name;
                        t.partitions
                            .into_iter()
                            .map(move |p| ((name.clone(), p.partition_index), p.error_code))
                    })
                    .collect(),
                NOT_AVAILABLE,
            ),
            Some(other) => (Vec::new(), other.error_code()),
            None => (Vec::new(), NOT_AVAILABLE),
        };
        let topics = order
            .into_iter()
            .map(|(name, parts)| {
                let partitions = parts
                    .into_iter()
                    .map(|p| {
                        let key = (name.clone(), p);
                        let code = if rejected.contains(&key) {
                            ErrorCode::UNKNOWN_TOPIC_OR_PARTITION.code()
                        } else {
                            codes
                                .iter()
                                .find(|(k, _)| *k == key)
                                .map_or(fallback, |(_, c)| *c)
                        };
                        OffsetCommitResponsePartition::default()
                            .with_partition_index(p)
                            .with_error_code(code)
                    })
                    .collect();
                OffsetCommitResponseTopic::default()
                    .with_name(topic_name(&name))
                    .with_partitions(partitions)
            })
            .collect();
        OffsetCommitResponse::default().with_topics(topics)
    })
}
