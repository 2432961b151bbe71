//! DeleteRecords (key 21): moves partitions' log start offsets forward
//! (`kafka-delete-records`, AdminClient `deleteRecords`); on each partition's leader.

use std::ops::RangeInclusive;
use std::sync::Arc;

use gregor_protocol::error::ErrorCode;
use gregor_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use gregor_protocol::messages::ApiKey;
use gregor_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};

use crate::broker::Broker;
use crate::request::RequestContext;

/// The API this module serves.
pub const KEY: ApiKey = ApiKey::DeleteRecords;
/// The versions served (and advertised in ApiVersions).
pub const VERSIONS: RangeInclusive<i16> = 0..=2;

/// Handles a DeleteRecords request.
pub fn handle(
    broker: &Arc<Broker>,
    _ctx: &RequestContext,
    req: DeleteRecordsRequest,
) -> DeleteRecordsResponse {
    let topics = req
        .topics
        .iter()
        .map(|t| {
            let topic = broker.replicas.topic(&t.name.0);
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let result = match topic.as_ref() {
                        None => Err(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION),
                        Some(topic) => match topic.partition(p.partition_index) {
                            Some(part) => part.delete_records(p.offset),
                            None if topic.has_partition(p.partition_index) => {
                                Err(ErrorCode::NOT_LEADER_OR_FOLLOWER)
                            }
                            None => Err(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION),
                        },
                    };
                    let r = DeleteRecordsPartitionResult::default()
                        .with_partition_index(p.partition_index);
                    match result {
                        Ok(low) => r.with_low_watermark(low).with_error_code(0),
                        Err(code) => r.with_low_watermark(-1).with_error_code(code.code()),
                    }
                })
                .collect();
            DeleteRecordsTopicResult::default()
                .with_name(t.name.clone())
                .with_partitions(partitions)
        })
        .collect();
    DeleteRecordsResponse::default().with_topics(topics)
}

#[cfg(test)]
mod tests {
    use super::*;
    use gregor_protocol::batch::encode_simple_batch;
    use gregor_protocol::messages::delete_records_request::{
        DeleteRecordsPartition, DeleteRecordsTopic,
    };
    use gregor_protocol::messages::TopicName;
    use gregor_protocol::protocol::StrBytes;

    #[test]
    fn records_before_an_offset_go_and_the_low_watermark_moves() {
        let dir = tempfile::tempdir().expect("tempdir");
        let b = crate::broker::test_broker(crate::config::BrokerConfig {
            data_dir: dir.path().to_path_buf(),
            ..Default::default()
        });
        let topic = b
            .replicas
            .create_topic("t", 1, 1, Default::default())
            .expect("create");
        let part = &topic.partitions[&0];
        for _ in 0..5 {
            part.append(
                &encode_simple_batch(1, &[(None, Some(&b"v"[..]))]),
                &topic.settings,
            )
            .expect("append");
        }
        let req = |offset: i64, partition: i32| {
            DeleteRecordsRequest::default().with_topics(vec![DeleteRecordsTopic::default()
                .with_name(TopicName(StrBytes::from_static_str("t")))
                .with_partitions(vec![DeleteRecordsPartition::default()
                    .with_partition_index(partition)
                    .with_offset(offset)])])
        };
        let ctx = RequestContext {
            api: KEY,
            api_version: 2,
            correlation_id: 1,
            client_id: None,
            client_host: String::new(),
        };
        let r = handle(&b, &ctx, req(3, 0));
        let p = &r.topics[0].partitions[0];
        assert_eq!((p.error_code, p.low_watermark), (0, 3));
        assert_eq!(part.offsets().expect("offsets"), (3, 5));
        let r = handle(&b, &ctx, req(9, 0));
        assert_eq!(
            r.topics[0].partitions[0].error_code,
            ErrorCode::OFFSET_OUT_OF_RANGE.code()
        );
        let r = handle(&b, &ctx, req(-1, 0));
        assert_eq!(
            r.topics[0].partitions[0].low_watermark, 5,
            "-1: the high watermark"
        );
        let r = handle(&b, &ctx, req(1, 7));
        assert_eq!(
            r.topics[0].partitions[0].error_code,
            ErrorCode::UNKNOWN_TOPIC_OR_PARTITION.code()
        );
    }
}
