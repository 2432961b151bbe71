//! DescribeProducers (key 61): the idempotent producers a partition's leader knows, from its
//! producer state (`gregor_storage::producer_state`): id, epoch, last sequence and last
//! timestamp, the epoch of the coordinator of its last transaction marker and the first offset
//! of its open transaction (-1 when none). What `kafka-transactions.sh describe-producers`
//! shows. As Kafka, a topic needs READ (else TOPIC_AUTHORIZATION_FAILED for its partitions).

use std::ops::RangeInclusive;
use std::sync::Arc;

use gregor_metadata::{AclOperation, ResourceType};
use gregor_protocol::error::ErrorCode;
use gregor_protocol::messages::describe_producers_response::{
    PartitionResponse, ProducerState, TopicResponse,
};
use gregor_protocol::messages::{
    ApiKey, DescribeProducersRequest, DescribeProducersResponse, ProducerId,
};

use crate::authorizer;
use crate::broker::Broker;
use crate::request::RequestContext;

/// The API this module serves.
pub const KEY: ApiKey = ApiKey::DescribeProducers;
/// The versions served (and advertised in ApiVersions).
pub const VERSIONS: RangeInclusive<i16> = 0..=0;

/// Handles a DescribeProducers request: per partition, TOPIC_AUTHORIZATION_FAILED without READ
/// on its topic, UNKNOWN_TOPIC_OR_PARTITION when it is not hosted here, NOT_LEADER_OR_FOLLOWER
/// when this broker does not lead it (as Kafka).
pub fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    req: DescribeProducersRequest,
) -> DescribeProducersResponse {
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let name = t.name.0.to_string();
            let authorized =
                authorizer::authorize(broker, ctx, AclOperation::Read, ResourceType::Topic, &name);
            let partitions = t
                .partition_indexes
                .iter()
                .map(|&index| {
                    if authorized {
                        describe(broker, &name, index)
                    } else {
                        PartitionResponse::default()
                            .with_partition_index(index)
                            .with_error_code(ErrorCode::TOPIC_AUTHORIZATION_FAILED.code())
                    }
                })
                .collect();
            TopicResponse::default()
                .with_name(t.name)
                .with_partitions(partitions)
        })
        .collect();
    DescribeProducersResponse::default().with_topics(topics)
}

fn describe(broker: &Broker, topic: &str, index: i32) -> PartitionResponse {
    let resp = PartitionResponse::default().with_partition_index(index);
    let Some((_, part)) = broker.replicas.partition(topic, index) else {
        return resp.with_error_code(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION.code());
    };
    if !part.is_leader() {
        return resp.with_error_code(ErrorCode::NOT_LEADER_OR_FOLLOWER.code());
    }
    match part.active_producers() {
        Ok(producers) => resp.with_active_producers(
            producers
                .into_iter()
                .map(|p| {
                    ProducerState::default()
                        .with_producer_id(ProducerId(p.producer_id))
                        .with_producer_epoch(i32::from(p.epoch))
                        .with_last_sequence(p.last_sequence)
                        .with_last_timestamp(p.last_timestamp)
                        .with_coordinator_epoch(p.coordinator_epoch)
                        .with_current_txn_start_offset(p.current_txn_start_offset)
                })
                .collect(),
        ),
        Err(code) => resp.with_error_code(code.code()),
    }
}

#[cfg(test)]
mod tests {
    use gregor_protocol::messages::describe_producers_request::TopicRequest;

    use super::*;
    use crate::broker::test_broker;
    use crate::config::BrokerConfig;
    use crate::handlers::topic_name;

    fn ctx() -> RequestContext {
        RequestContext::for_test(KEY, 0)
    }

    #[test]
    fn lists_the_partitions_producers_and_errors_per_partition() {
        let dir = tempfile::tempdir().expect("tempdir");
        let broker = test_broker(BrokerConfig {
            data_dir: dir.path().to_path_buf(),
            ..BrokerConfig::default()
        });
        let topic = broker
            .replicas
            .create_topic("t", 1, 1, Default::default())
            .expect("create");
        let part = &topic.partitions[&0];
        let mut b = crate::partition::tests::batch(3);
        b[43..51].copy_from_slice(&42i64.to_be_bytes());
        b[51..53].copy_from_slice(&2i16.to_be_bytes());
        b[53..57].copy_from_slice(&10i32.to_be_bytes());
        let crc = crc32c::crc32c(&b[21..]);
        b[17..21].copy_from_slice(&crc.to_be_bytes());
        part.append(&b, &topic.settings).expect("append");
        let req = DescribeProducersRequest::default().with_topics(vec![TopicRequest::default()
            .with_name(topic_name("t"))
            .with_partition_indexes(vec![0, 5])]);
        let resp = handle(&broker, &ctx(), req);
        let parts = &resp.topics[0].partitions;
        assert_eq!(parts[0].error_code, 0);
        let p = &parts[0].active_producers;
        assert_eq!(p.len(), 1);
        assert_eq!(
            (p[0].producer_id.0, p[0].producer_epoch, p[0].last_sequence),
            (42, 2, 12)
        );
        assert_eq!(
            (p[0].coordinator_epoch, p[0].current_txn_start_offset),
            (-1, -1)
        );
        // A transactional producer: its open transaction's first offset, then its
        // coordinator's epoch once a marker ended it.
        part.append(
            &crate::partition::tests::txn_batch(43, 0, 2),
            &topic.settings,
        )
        .expect("txn");
        let txn = |broker: &Arc<Broker>| {
            let req = DescribeProducersRequest::default()
                .with_topics(vec![TopicRequest::default()
                    .with_name(topic_name("t"))
                    .with_partition_indexes(vec![0])]);
            let resp = handle(broker, &ctx(), req);
            let p = resp.topics[0].partitions[0].active_producers[1].clone();
            (
                p.producer_id.0,
                p.coordinator_epoch,
                p.current_txn_start_offset,
            )
        };
        assert_eq!(txn(&broker), (43, -1, 3));
        let commit = gregor_protocol::control::EndTransactionMarker {
            control_type: gregor_protocol::control::ControlRecordType::Commit,
            coordinator_epoch: 4,
        };
        part.append_end_txn_marker(43, 0, commit).expect("commit");
        assert_eq!(txn(&broker), (43, 4, -1));
        assert_eq!(
            parts[1].error_code,
            ErrorCode::UNKNOWN_TOPIC_OR_PARTITION.code()
        );
    }

    /// READ on the topic, else TOPIC_AUTHORIZATION_FAILED for each of its partitions.
    #[test]
    fn an_authorizer_asks_for_read_on_each_topic() {
        use crate::authorizer::test_support::{allow_topic, ctx_of, with_authorizer};
        let dir = tempfile::tempdir().expect("tempdir");
        let broker = test_broker(with_authorizer(BrokerConfig {
            data_dir: dir.path().to_path_buf(),
            ..BrokerConfig::default()
        }));
        broker
            .replicas
            .create_topic("t", 1, 1, Default::default())
            .expect("create");
        let req = DescribeProducersRequest::default().with_topics(
            ["t", "nope"]
                .into_iter()
                .map(|t| {
                    TopicRequest::default()
                        .with_name(topic_name(t))
                        .with_partition_indexes(vec![0, 1])
                })
                .collect(),
        );
        let codes = |resp: DescribeProducersResponse| -> Vec<i16> {
            resp.topics
                .iter()
                .flat_map(|t| t.partitions.iter().map(|p| p.error_code))
                .collect()
        };
        let alice = ctx_of("alice", KEY, 0);
        let denied = ErrorCode::TOPIC_AUTHORIZATION_FAILED.code();
        assert_eq!(codes(handle(&broker, &alice, req.clone())), vec![denied; 4]);
        allow_topic(&broker, "User:alice", AclOperation::Read, "t");
        let unknown = ErrorCode::UNKNOWN_TOPIC_OR_PARTITION.code();
        assert_eq!(
            codes(handle(&broker, &alice, req)),
            vec![0, unknown, denied, denied]
        );
    }
}
