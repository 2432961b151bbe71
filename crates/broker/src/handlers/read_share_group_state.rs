//! ReadShareGroupState (key 84): a share-partition leader loads its share-partition's state
//! from the share coordinator of the key (`share_coordinator.rs`); a newer leader epoch is
//! recorded (fencing older leaders) before the answer. Kafka's answers: no state →
//! INVALID_REQUEST ("Read operation on uninitialized share partition not allowed."), an older
//! leader epoch → FENCED_LEADER_EPOCH, NOT_COORDINATOR / COORDINATOR_LOAD_IN_PROGRESS by the
//! state partition's status.
//!
//! The share-group state APIs are inter-broker: as Kafka, they need CLUSTER_ACTION on the
//! cluster (else CLUSTER_AUTHORIZATION_FAILED for every partition), and an empty group id is
//! INVALID_REQUEST for every partition.

use std::ops::RangeInclusive;
use std::sync::Arc;

use gregor_metadata::AclOperation;
use gregor_protocol::error::ErrorCode;
use gregor_protocol::messages::read_share_group_state_response::{
    PartitionResult, ReadStateResult, StateBatch,
};
use gregor_protocol::messages::{ApiKey, ReadShareGroupStateRequest, ReadShareGroupStateResponse};
use gregor_protocol::protocol::StrBytes;
use gregor_share::coordinator::ShareError;
use gregor_share::ShareKey;

use crate::authorizer;
use crate::broker::Broker;
use crate::request::{encode, Reply, RequestContext};

/// The API this module serves.
pub const KEY: ApiKey = ApiKey::ReadShareGroupState;
/// The versions served (and advertised in ApiVersions).
pub const VERSIONS: RangeInclusive<i16> = 0..=0;

/// Why a whole share-group state request is refused before any partition is looked at:
/// CLUSTER_ACTION missing, or an empty group id. `None`: go on.
pub(crate) fn refused(broker: &Broker, ctx: &RequestContext, group_id: &str) -> Option<ShareError> {
    if !authorizer::authorize_cluster(broker, ctx, AclOperation::ClusterAction) {
        return Some(ShareError {
            code: ErrorCode::CLUSTER_AUTHORIZATION_FAILED.code(),
            message: None,
        });
    }
    group_id.is_empty().then_some(ShareError {
        code: ErrorCode::INVALID_REQUEST.code(),
        message: Some("Group id must be specified and non-empty."),
    })
}

/// The share-partition a request entry names.
pub(crate) fn share_key(group_id: &str, topic_id: uuid::Uuid, partition: i32) -> ShareKey {
    ShareKey {
        group_id: group_id.to_string(),
        topic_id,
        partition,
    }
}

/// An error's code and message, as answered.
pub(crate) fn error_fields(e: &ShareError) -> (i16, Option<StrBytes>) {
    (e.code, e.message.map(StrBytes::from_static_str))
}

/// Handles a ReadShareGroupState request.
pub fn handle(broker: &Arc<Broker>, ctx: RequestContext, req: ReadShareGroupStateRequest) -> Reply {
    let broker = Arc::clone(broker);
    Reply::Pending(Box::pin(async move {
        let response = read(&broker, &ctx, req).await;
        encode(&ctx, &response)
    }))
}

async fn read(
    broker: &Broker,
    ctx: &RequestContext,
    req: ReadShareGroupStateRequest,
) -> ReadShareGroupStateResponse {
    let group = req.group_id.to_string();
    let refusal = refused(broker, ctx, &group);
    let mut results = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let mut partitions = Vec::with_capacity(t.partitions.len());
        for p in t.partitions {
            let answer = match &refusal {
                Some(e) => Err(e.clone()),
                None => {
                    let key = share_key(&group, t.topic_id, p.partition);
                    broker.share_coordinator.read(&key, p.leader_epoch).await
                }
            };
            let result = PartitionResult::default().with_partition(p.partition);
            partitions.push(match answer {
                Ok(state) => result
                    .with_state_epoch(state.state_epoch)
                    .with_start_offset(state.start_offset)
                    .with_state_batches(
                        state
                            .state_batches
                            .iter()
                            .map(|b| {
                                StateBatch::default()
                                    .with_first_offset(b.first_offset)
                                    .with_last_offset(b.last_offset)
                                    .with_delivery_state(b.delivery_state.code())
                                    .with_delivery_count(b.delivery_count)
                            })
                            .collect(),
                    ),
                Err(e) => {
                    let (code, message) = error_fields(&e);
                    result.with_error_code(code).with_error_message(message)
                }
            });
        }
        results.push(
            ReadStateResult::default()
                .with_topic_id(t.topic_id)
                .with_partitions(partitions),
        );
    }
    ReadShareGroupStateResponse::default().with_results(results)
}
