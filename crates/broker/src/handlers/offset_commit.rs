//! OffsetCommit (key 8): partitions of unknown topics are refused here; the rest go to the
//! coordinator, and the reply waits until the commit is in `__consumer_offsets`. v9 is v8 for
//! a classic group (its generation in `generation_id_or_member_epoch`); for a consumer group
//! (KIP-848) that field is the member epoch, checked by the consumer group core
//! (UNKNOWN_MEMBER_ID, STALE_MEMBER_EPOCH, UNSUPPORTED_VERSION below v9 on every partition);
//! accepted offsets are stored as a simple (generation -1) commit's.

use std::ops::RangeInclusive;
use std::sync::Arc;

use gregor_group::{Output, Response};
use gregor_protocol::error::ErrorCode;
use gregor_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use gregor_protocol::messages::ApiKey;
use gregor_protocol::messages::{OffsetCommitRequest, OffsetCommitResponse};

use super::group_common::{
    call_core, check_consumer_member, commit_topics, pending, CommitMember, NOT_AVAILABLE,
};
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
    let v6 = ctx.api_version >= 6;
    let (topics, rejected) = commit_topics(
        broker,
        &req.topics,
        |t| (t.name.0.to_string(), &t.partitions[..]),
        |p| gregor_group::OffsetCommitPartition {
            partition_index: p.partition_index,
            committed_offset: p.committed_offset,
            committed_leader_epoch: if v6 { p.committed_leader_epoch } else { -1 },
            committed_metadata: p.committed_metadata.as_ref().map(|s| s.to_string()),
        },
    );
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
        let member = CommitMember {
            group_id: &group_id,
            member_id: &mut core_req.member_id,
            generation_id: &mut core_req.generation_id,
            group_instance_id: &mut core_req.group_instance_id,
        };
        if let Err(topics) = check_consumer_member(broker, member, &core_req.topics, false, version)
        {
            return vec![Output::Respond {
                request: id,
                response: Response::OffsetCommit(gregor_group::OffsetCommitResponse { topics }),
            }];
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
