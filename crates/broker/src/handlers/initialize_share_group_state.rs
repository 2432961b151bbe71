//! InitializeShareGroupState (key 83): the group coordinator creates or resets a
//! share-partition's state (a new assignment, AlterShareGroupOffsets) at a start offset (-1:
//! the leader decides it from `share.auto.offset.reset`) in a state epoch, with no batches. A
//! state epoch older than the stored one → FENCED_STATE_EPOCH (the same one is taken, as in
//! Kafka). Needs CLUSTER_ACTION, as the other share-group state APIs
//! (`read_share_group_state`).

use std::ops::RangeInclusive;
use std::sync::Arc;

use gregor_protocol::messages::initialize_share_group_state_response::{
    InitializeStateResult, PartitionResult,
};
use gregor_protocol::messages::{
    ApiKey, InitializeShareGroupStateRequest, InitializeShareGroupStateResponse,
};

use super::read_share_group_state::{error_fields, refused, share_key};
use crate::broker::Broker;
use crate::request::{encode, Reply, RequestContext};

/// The API this module serves.
pub const KEY: ApiKey = ApiKey::InitializeShareGroupState;
/// The versions served (and advertised in ApiVersions).
pub const VERSIONS: RangeInclusive<i16> = 0..=0;

/// Handles an InitializeShareGroupState request.
pub fn handle(
    broker: &Arc<Broker>,
    ctx: RequestContext,
    req: InitializeShareGroupStateRequest,
) -> Reply {
    let broker = Arc::clone(broker);
    Reply::Pending(Box::pin(async move {
        let response = initialize(&broker, &ctx, req).await;
        encode(&ctx, &response)
    }))
}

async fn initialize(
    broker: &Broker,
    ctx: &RequestContext,
    req: InitializeShareGroupStateRequest,
) -> InitializeShareGroupStateResponse {
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
                    broker
                        .share_coordinator
                        .initialize(&key, p.state_epoch, p.start_offset)
                        .await
                }
            };
            let result = PartitionResult::default().with_partition(p.partition);
            partitions.push(match answer {
                Ok(()) => result,
                Err(e) => {
                    let (code, message) = error_fields(&e);
                    result.with_error_code(code).with_error_message(message)
                }
            });
        }
        results.push(
            InitializeStateResult::default()
                .with_topic_id(t.topic_id)
                .with_partitions(partitions),
        );
    }
    InitializeShareGroupStateResponse::default().with_results(results)
}
