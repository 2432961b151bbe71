//! WriteShareGroupState (key 85): a share-partition leader writes its share-partition's state
//! to the share coordinator of the key (`share_coordinator.rs`), answered once the record is
//! durable (acks=all). Kafka's answers: no state → INVALID_REQUEST ("Write operation on
//! uninitialized share partition not allowed."), an older leader epoch →
//! FENCED_LEADER_EPOCH, an older state epoch → FENCED_STATE_EPOCH. The written batches
//! replace the stored ones (gregor's leaders send their whole state; Kafka merges). v1 carries
//! the leader's delivery-complete count (KIP-1226), stored with the state for
//! ReadShareGroupStateSummary v1; a v0 write stores -1 (not known). Needs CLUSTER_ACTION, as
//! the other share-group state APIs (`read_share_group_state`).

use std::ops::RangeInclusive;
use std::sync::Arc;

use gregor_protocol::error::ErrorCode;
use gregor_protocol::messages::write_share_group_state_response::{
    PartitionResult, WriteStateResult,
};
use gregor_protocol::messages::{
    ApiKey, WriteShareGroupStateRequest, WriteShareGroupStateResponse,
};
use gregor_protocol::protocol::StrBytes;
use gregor_share::{DeliveryState, PersistedState, StateBatch};

use super::read_share_group_state::{error_fields, refused, share_key};
use crate::broker::Broker;
use crate::request::{encode, Reply, RequestContext};

/// The API this module serves.
pub const KEY: ApiKey = ApiKey::WriteShareGroupState;
/// The versions served (and advertised in ApiVersions).
pub const VERSIONS: RangeInclusive<i16> = 0..=1;

/// Handles a WriteShareGroupState request.
pub fn handle(
    broker: &Arc<Broker>,
    ctx: RequestContext,
    req: WriteShareGroupStateRequest,
) -> Reply {
    let broker = Arc::clone(broker);
    Reply::Pending(Box::pin(async move {
        let response = write(&broker, &ctx, req).await;
        encode(&ctx, &response)
    }))
}

async fn write(
    broker: &Broker,
    ctx: &RequestContext,
    req: WriteShareGroupStateRequest,
) -> WriteShareGroupStateResponse {
    let group = req.group_id.to_string();
    let refusal = refused(broker, ctx, &group);
    let mut results = Vec::with_capacity(req.topics.len());
    for t in req.topics {
        let mut partitions = Vec::with_capacity(t.partitions.len());
        for p in t.partitions {
            let batches: Option<Vec<StateBatch>> = p
                .state_batches
                .iter()
                .map(|b| {
                    Some(StateBatch {
                        first_offset: b.first_offset,
                        last_offset: b.last_offset,
                        delivery_state: DeliveryState::from_code(b.delivery_state)?,
                        delivery_count: b.delivery_count,
                    })
                })
                .collect();
            let result = PartitionResult::default().with_partition(p.partition);
            let error = if let Some(e) = &refusal {
                Some(error_fields(e))
            } else if let Some(state_batches) = batches {
                let key = share_key(&group, t.topic_id, p.partition);
                let state = PersistedState {
                    state_epoch: p.state_epoch,
                    start_offset: p.start_offset,
                    state_batches,
                };
                broker
                    .share_coordinator
                    .write(&key, p.leader_epoch, &state, p.delivery_complete_count)
                    .await
                    .err()
                    .map(|e| error_fields(&e))
            } else {
                Some((
                    ErrorCode::INVALID_REQUEST.code(),
                    Some(StrBytes::from_static_str("Unknown delivery state.")),
                ))
            };
            partitions.push(match error {
                None => result,
                Some((code, message)) => result.with_error_code(code).with_error_message(message),
            });
        }
        results.push(
            WriteStateResult::default()
                .with_topic_id(t.topic_id)
                .with_partitions(partitions),
        );
    }
    WriteShareGroupStateResponse::default().with_results(results)
}
