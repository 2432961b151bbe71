//! ListOffsets (key 2): earliest (-2), latest (-1), max timestamp (-3, v7+), earliest local
//! (-4, v8+), latest tiered (-5, v9+), or the first offset at or after a timestamp. Latest is
//! what a consumer can read: the high watermark, or with `isolation_level` 1 (read_committed,
//! v2+) the last stable offset; a timestamp lookup likewise finds only records below it. Max timestamp is the offset of the record
//! with the largest timestamp (KAFKA-16310). gregor has no tiered storage, so the earliest
//! local offset is the log start offset and the latest tiered one is "none" (offset -1), as
//! Kafka answers for a topic without remote storage. v10's `timeout_ms` bounds waiting for
//! remote storage, which there is none of.

use std::ops::RangeInclusive;
use std::sync::Arc;

use gregor_protocol::error::ErrorCode;
use gregor_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use gregor_protocol::messages::ApiKey;
use gregor_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};

use crate::broker::Broker;
use crate::request::RequestContext;

/// The API this module serves.
pub const KEY: ApiKey = ApiKey::ListOffsets;
/// The versions served (and advertised in ApiVersions).
pub const VERSIONS: RangeInclusive<i16> = 1..=10;

const LATEST: i64 = -1;
const EARLIEST: i64 = -2;
const MAX_TIMESTAMP: i64 = -3;
const EARLIEST_LOCAL: i64 = -4;
const LATEST_TIERED: i64 = -5;

/// Handles a ListOffsets request.
pub fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    req: ListOffsetsRequest,
) -> ListOffsetsResponse {
    let read_committed = ctx.api_version >= 2 && req.isolation_level == 1;
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let name = t.name.0.to_string();
            let partitions = t
                .partitions
                .into_iter()
                .map(|p| {
                    let resp = ListOffsetsPartitionResponse::default()
                        .with_partition_index(p.partition_index)
                        .with_timestamp(-1)
                        .with_offset(-1)
                        .with_leader_epoch(-1);
                    let Some((_, part)) = broker.replicas.partition(&name, p.partition_index)
                    else {
                        return resp.with_error_code(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION.code());
                    };
                    let found = match p.timestamp {
                        LATEST if read_committed => {
                            part.last_stable_offset().map(|lso| Some((lso, -1)))
                        }
                        LATEST => part.offsets().map(|(_, end)| Some((end, -1))),
                        EARLIEST => part.offsets().map(|(start, _)| Some((start, -1))),
                        MAX_TIMESTAMP => part.max_timestamp(),
                        EARLIEST_LOCAL => part.offsets().map(|(start, _)| Some((start, -1))),
                        LATEST_TIERED => Ok(Some((-1, -1))),
                        ts if ts < 0 => Err(ErrorCode::INVALID_REQUEST),
                        // Kafka's `fetchOffsetForTimestamp`: only a record a consumer at this
                        // isolation level may read (below the high watermark or the LSO).
                        ts => part.offset_for_timestamp(ts).and_then(|found| {
                            let fetchable = if read_committed {
                                part.last_stable_offset()?
                            } else {
                                part.high_watermark()
                            };
                            Ok(found.filter(|&(offset, _)| offset < fetchable))
                        }),
                    };
                    match found {
                        Ok(Some((offset, ts))) => resp
                            .with_error_code(0)
                            .with_offset(offset)
                            .with_timestamp(ts)
                            // leader_epoch exists from v4 on; encoding it earlier fails.
                            .with_leader_epoch(if ctx.api_version >= 4 {
                                part.leader_epoch()
                            } else {
                                -1
                            }),
                        Ok(None) => resp.with_error_code(0),
                        Err(code) => resp.with_error_code(code.code()),
                    }
                })
                .collect();
            ListOffsetsTopicResponse::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    ListOffsetsResponse::default().with_topics(topics)
}
