//! DeleteShareGroupState (key 86): the group coordinator deletes share-partitions' state
//! (DeleteShareGroupOffsets, DeleteGroups of a share group): a tombstone in
//! `__share_group_state`; a share-partition without state is no error. Needs CLUSTER_ACTION,
//! as the other share-group state APIs (`read_share_group_state`).

use std::ops::RangeInclusive;
use std::sync::Arc;

use gregor_protocol::messages::delete_share_group_state_response::{
    DeleteStateResult, PartitionResult,
};
use gregor_protocol::messages::{
    ApiKey, DeleteShareGroupStateRequest, DeleteShareGroupStateResponse,
};

use super::read_share_group_state::{error_fields, refused, share_key};
use crate::broker::Broker;
use crate::request::{encode, Reply, RequestContext};

/// The API this module serves.
pub const KEY: ApiKey = ApiKey::DeleteShareGroupState;
/// The versions served (and advertised in ApiVersions).
pub const VERSIONS: RangeInclusive<i16> = 0..=0;

/// Handles a DeleteShareGroupState request.
pub fn handle(
    broker: &Arc<Broker>,
    ctx: RequestContext,
    req: DeleteShareGroupStateRequest,
) -> Reply {
    let broker = Arc::clone(broker);
    Reply::Pending(Box::pin(async move {
        let response = delete(&broker, &ctx, req).await;
        encode(&ctx, &response)
    }))
}

async fn delete(
    broker: &Broker,
    ctx: &RequestContext,
    req: DeleteShareGroupStateRequest,
) -> DeleteShareGroupStateResponse {
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
                    broker.share_coordinator.delete(&key).await
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
            DeleteStateResult::default()
                .with_topic_id(t.topic_id)
                .with_partitions(partitions),
        );
    }
    DeleteShareGroupStateResponse::default().with_results(results)
}
