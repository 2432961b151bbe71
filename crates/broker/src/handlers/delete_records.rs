//! DeleteRecords (key 21): moves partitions' log start offsets forward
//! (`kafka-delete-records`, AdminClient `deleteRecords`); on each partition's leader. As Kafka,
//! a topic needs DELETE (else TOPIC_AUTHORIZATION_FAILED for its partitions).

use std::ops::RangeInclusive;
use std::sync::Arc;
use std::time::Duration;

use gregor_metadata::{AclOperation, ResourceType};
use gregor_protocol::error::ErrorCode;
use gregor_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use gregor_protocol::messages::ApiKey;
use gregor_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};

use crate::authorizer;
use crate::broker::Broker;
use crate::request::{encode, Reply, RequestContext};

/// The API this module serves.
pub const KEY: ApiKey = ApiKey::DeleteRecords;
/// The versions served (and advertised in ApiVersions).
pub const VERSIONS: RangeInclusive<i16> = 0..=2;

/// Handles a DeleteRecords request: moves each partition's log start on its leader, then
/// answers once every live replica's log start has followed (Kafka's DelayedDeleteRecords),
/// or after `timeout_ms` with REQUEST_TIMED_OUT for the partitions still waiting.
pub fn handle(broker: &Arc<Broker>, ctx: RequestContext, req: DeleteRecordsRequest) -> Reply {
    let broker = Arc::clone(broker);
    Reply::Pending(Box::pin(async move {
        let response = delete_records(&broker, &ctx, req).await;
        encode(&ctx, &response)
    }))
}

async fn delete_records(
    broker: &Broker,
    ctx: &RequestContext,
    req: DeleteRecordsRequest,
) -> DeleteRecordsResponse {
    let deadline =
        tokio::time::Instant::now() + Duration::from_millis(req.timeout_ms.max(0) as u64);
    let authorized = authorizer::filter_authorized(
        broker,
        ctx,
        AclOperation::Delete,
        ResourceType::Topic,
        req.topics.iter().map(|t| t.name.0.as_str()),
    );
    let mut topics = Vec::with_capacity(req.topics.len());
    for t in &req.topics {
        let allowed = authorized.contains(t.name.0.as_str());
        let topic = broker.replicas.topic(&t.name.0);
        let mut partitions = Vec::with_capacity(t.partitions.len());
        for p in &t.partitions {
            let moved = match topic.as_ref() {
                _ if !allowed => Err(ErrorCode::TOPIC_AUTHORIZATION_FAILED),
                None => Err(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION),
                Some(topic) => match topic.partition(p.partition_index) {
                    Some(part) => part
                        .delete_records(p.offset)
                        .map(|target| (Arc::clone(part), target)),
                    None if topic.has_partition(p.partition_index) => {
                        Err(ErrorCode::NOT_LEADER_OR_FOLLOWER)
                    }
                    None => Err(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION),
                },
            };
            partitions.push((p.partition_index, moved));
        }
        topics.push((t.name.clone(), partitions));
    }
    // Every partition's log start has moved on its leader; now wait for the followers, all
    // partitions under the one deadline.
    let mut results = Vec::with_capacity(topics.len());
    for (name, partitions) in topics {
        let mut out = Vec::with_capacity(partitions.len());
        for (index, moved) in partitions {
            let result = match moved {
                Ok((part, target)) => {
                    match tokio::time::timeout_at(deadline, part.wait_low_watermark(target)).await {
                        Ok(r) => r,
                        Err(_) => Err(ErrorCode::REQUEST_TIMED_OUT),
                    }
                }
                Err(code) => Err(code),
            };
            let r = DeleteRecordsPartitionResult::default().with_partition_index(index);
            out.push(match result {
                Ok(low) => r.with_low_watermark(low).with_error_code(0),
                Err(code) => r.with_low_watermark(-1).with_error_code(code.code()),
            });
        }
        results.push(
            DeleteRecordsTopicResult::default()
                .with_name(name)
                .with_partitions(out),
        );
    }
    DeleteRecordsResponse::default().with_topics(results)
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

    fn ctx() -> RequestContext {
        RequestContext::for_test(KEY, 2)
    }

    #[tokio::test]
    async fn records_before_an_offset_go_and_the_low_watermark_moves() {
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
        let r = delete_records(&b, &ctx(), req(3, 0)).await;
        let p = &r.topics[0].partitions[0];
        assert_eq!((p.error_code, p.low_watermark), (0, 3));
        assert_eq!(part.offsets().expect("offsets"), (3, 5));
        let r = delete_records(&b, &ctx(), req(9, 0)).await;
        assert_eq!(
            r.topics[0].partitions[0].error_code,
            ErrorCode::OFFSET_OUT_OF_RANGE.code()
        );
        let r = delete_records(&b, &ctx(), req(-1, 0)).await;
        assert_eq!(
            r.topics[0].partitions[0].low_watermark, 5,
            "-1: the high watermark"
        );
        let r = delete_records(&b, &ctx(), req(1, 7)).await;
        assert_eq!(
            r.topics[0].partitions[0].error_code,
            ErrorCode::UNKNOWN_TOPIC_OR_PARTITION.code()
        );
    }

    /// DELETE on the topic, else TOPIC_AUTHORIZATION_FAILED (low watermark -1) and nothing
    /// deleted.
    #[tokio::test]
    async fn an_authorizer_asks_for_delete_on_each_topic() {
        use crate::authorizer::test_support::{allow_topic, ctx_of, secured_broker};
        let dir = tempfile::tempdir().expect("tempdir");
        let b = secured_broker(dir.path());
        let topic = b
            .replicas
            .create_topic("t", 1, 1, Default::default())
            .expect("create");
        let part = &topic.partitions[&0];
        part.append(
            &encode_simple_batch(1, &[(None, Some(&b"v"[..])), (None, Some(&b"v"[..]))]),
            &topic.settings,
        )
        .expect("append");
        let req = DeleteRecordsRequest::default().with_topics(vec![DeleteRecordsTopic::default()
            .with_name(TopicName(StrBytes::from_static_str("t")))
            .with_partitions(vec![DeleteRecordsPartition::default()
                .with_partition_index(0)
                .with_offset(1)])]);
        let alice = ctx_of("alice", KEY, 2);
        let r = delete_records(&b, &alice, req.clone()).await;
        let p = &r.topics[0].partitions[0];
        assert_eq!(
            (p.error_code, p.low_watermark),
            (ErrorCode::TOPIC_AUTHORIZATION_FAILED.code(), -1)
        );
        assert_eq!(part.offsets().expect("offsets"), (0, 2), "nothing deleted");
        allow_topic(&b, "User:alice", AclOperation::Delete, "t");
        let r = delete_records(&b, &alice, req).await;
        let p = &r.topics[0].partitions[0];
        assert_eq!((p.error_code, p.low_watermark), (0, 1));
    }
}
