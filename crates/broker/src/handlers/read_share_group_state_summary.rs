//! ReadShareGroupStateSummary (key 87): what DescribeShareGroupOffsets shows of a
//! share-partition: its state epoch, leader epoch and start offset, and from v1 its
//! delivery-complete count as the leader last wrote it (KIP-1226; -1: not known). A
//! share-partition without state is answered as Kafka answers it: no error, start offset -1,
//! leader and state epoch 0 (count -1).
//! Needs CLUSTER_ACTION, as the other share-group state APIs (`read_share_group_state`).

use std::ops::RangeInclusive;
use std::sync::Arc;

use gregor_protocol::messages::read_share_group_state_summary_response::{
    PartitionResult, ReadStateSummaryResult,
};
use gregor_protocol::messages::{
    ApiKey, ReadShareGroupStateSummaryRequest, ReadShareGroupStateSummaryResponse,
};

use super::read_share_group_state::{error_fields, refused, share_key};
use crate::broker::Broker;
use crate::request::{encode, Reply, RequestContext};

/// The API this module serves.
pub const KEY: ApiKey = ApiKey::ReadShareGroupStateSummary;
/// The versions served (and advertised in ApiVersions).
pub const VERSIONS: RangeInclusive<i16> = 0..=1;

/// Handles a ReadShareGroupStateSummary request.
pub fn handle(
    broker: &Arc<Broker>,
    ctx: RequestContext,
    req: ReadShareGroupStateSummaryRequest,
) -> Reply {
    let broker = Arc::clone(broker);
    Reply::Pending(Box::pin(async move {
        let response = summary(&broker, &ctx, req).await;
        encode(&ctx, &response)
    }))
}

async fn summary(
    broker: &Broker,
    ctx: &RequestContext,
    req: ReadShareGroupStateSummaryRequest,
) -> ReadShareGroupStateSummaryResponse {
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
                    broker.share_coordinator.read_summary(&key).await
                }
            };
            let result = PartitionResult::default().with_partition(p.partition);
            partitions.push(match answer {
                Ok(Some(s)) => result
                    .with_state_epoch(s.state_epoch)
                    .with_leader_epoch(s.leader_epoch)
                    .with_start_offset(s.start_offset)
                    .with_delivery_complete_count(s.delivery_complete_count),
                Ok(None) => result
                    .with_state_epoch(0)
                    .with_leader_epoch(0)
                    .with_start_offset(-1),
                Err(e) => {
                    let (code, message) = error_fields(&e);
                    result.with_error_code(code).with_error_message(message)
                }
            });
        }
        results.push(
            ReadStateSummaryResult::default()
                .with_topic_id(t.topic_id)
                .with_partitions(partitions),
        );
    }
    ReadShareGroupStateSummaryResponse::default().with_results(results)
}
