//! DescribeTransactions (key 65): the state, producer, timeout, start time and partitions of
//! transactional ids this broker coordinates. Per id: NOT_COORDINATOR (another broker leads its
//! `__transaction_state` partition), COORDINATOR_LOAD_IN_PROGRESS, or TRANSACTIONAL_ID_NOT_FOUND.
//!
//! Authorization, as Kafka's: an id needs DESCRIBE on it (else
//! TRANSACTIONAL_ID_AUTHORIZATION_FAILED), and a transaction's partitions are shown only for
//! the topics the principal may DESCRIBE.

use std::collections::BTreeMap;
use std::ops::RangeInclusive;
use std::sync::Arc;

use gregor_metadata::{AclOperation, ResourceType};
use gregor_protocol::error::ErrorCode;
use gregor_protocol::messages::describe_transactions_response::{
    TopicData, TransactionState as TxnStateEntry,
};
use gregor_protocol::messages::ApiKey;
use gregor_protocol::messages::{
    DescribeTransactionsRequest, DescribeTransactionsResponse, ProducerId,
};

use super::{str_bytes, topic_name};
use crate::authorizer;
use crate::broker::Broker;
use crate::request::RequestContext;

/// The API this module serves.
pub const KEY: ApiKey = ApiKey::DescribeTransactions;
/// The versions served (and advertised in ApiVersions): all that Kafka 4.x serves.
pub const VERSIONS: RangeInclusive<i16> = 0..=0;

/// Handles a DescribeTransactions request.
pub fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    req: DescribeTransactionsRequest,
) -> DescribeTransactionsResponse {
    let states = req
        .transactional_ids
        .iter()
        .map(|id| {
            // An id in error has every other field at its default (0, ""), as Kafka answers.
            let entry = TxnStateEntry::default().with_transactional_id(id.clone());
            if !authorizer::authorize(
                broker,
                ctx,
                AclOperation::Describe,
                ResourceType::TransactionalId,
                &id.0,
            ) {
                return entry
                    .with_error_code(ErrorCode::TRANSACTIONAL_ID_AUTHORIZATION_FAILED.code());
            }
            match broker.txn.describe(&id.0) {
                Err(error) => entry.with_error_code(error),
                Ok(m) => {
                    let mut topics: BTreeMap<String, Vec<i32>> = BTreeMap::new();
                    for tp in &m.partitions {
                        topics
                            .entry(tp.topic.clone())
                            .or_default()
                            .push(tp.partition);
                    }
                    entry
                        .with_transaction_state(str_bytes(m.state.name()))
                        .with_transaction_timeout_ms(m.txn_timeout_ms)
                        .with_transaction_start_time_ms(m.txn_start_timestamp_ms)
                        .with_producer_id(ProducerId(m.producer_id))
                        .with_producer_epoch(m.producer_epoch)
                        .with_topics(
                            topics
                                .into_iter()
                                // Only the topics the principal may see, as Kafka.
                                .filter(|(t, _)| {
                                    authorizer::authorize(
                                        broker,
                                        ctx,
                                        AclOperation::Describe,
                                        ResourceType::Topic,
                                        t,
                                    )
                                })
                                .map(|(t, ps)| {
                                    TopicData::default()
                                        .with_topic(topic_name(&t))
                                        .with_partitions(ps)
                                })
                                .collect(),
                        )
                }
            }
        })
        .collect();
    DescribeTransactionsResponse::default().with_transaction_states(states)
}

#[cfg(test)]
mod tests {
    use gregor_protocol::messages::TransactionalId;

    use super::*;
    use crate::authorizer::test_support::{
        allow_topic, allow_transactional_id, ctx_of, with_authorizer,
    };

    /// A broker with an authorizer, leading `__transaction_state`, with topics `t` and `u`.
    fn broker_with_coordinator(dir: &std::path::Path) -> Arc<Broker> {
        let mut config = crate::config::BrokerConfig {
            data_dir: dir.to_path_buf(),
            ..Default::default()
        };
        config.group.offsets_topic_num_partitions = 1;
        config.txn.state_log_num_partitions = 1;
        let b = crate::broker::test_broker(with_authorizer(config));
        for name in [crate::txn_coordinator::TRANSACTION_STATE_TOPIC, "t", "u"] {
            b.replicas
                .create_topic(name, 1, 1, Default::default())
                .expect("create");
        }
        b.txn.sync_leadership().expect("load");
        b
    }

    /// DESCRIBE on the transactional id, else TRANSACTIONAL_ID_AUTHORIZATION_FAILED; the
    /// transaction's partitions only of the topics the principal may DESCRIBE.
    #[tokio::test]
    async fn an_authorizer_asks_for_describe_on_each_id_and_topic() {
        let dir = tempfile::tempdir().expect("tempdir");
        let b = broker_with_coordinator(dir.path());
        let (error, pid, epoch) = b.txn.init_producer_id("tx", 60_000, None).await;
        assert_eq!(error, 0);
        let partitions = [
            gregor_txn::TopicPartition::new("t".to_string(), 0),
            gregor_txn::TopicPartition::new("u".to_string(), 0),
        ];
        assert_eq!(b.txn.add_partitions("tx", pid, epoch, &partitions).await, 0);
        let req = DescribeTransactionsRequest::default().with_transactional_ids(vec![
            TransactionalId(str_bytes("tx")),
            TransactionalId(str_bytes("other")),
        ]);
        let alice = ctx_of("alice", KEY, 0);
        let denied = ErrorCode::TRANSACTIONAL_ID_AUTHORIZATION_FAILED.code();
        let resp = handle(&b, &alice, req.clone());
        let codes: Vec<i16> = resp
            .transaction_states
            .iter()
            .map(|s| s.error_code)
            .collect();
        assert_eq!(codes, vec![denied, denied]);
        allow_transactional_id(&b, "User:alice", AclOperation::Describe, "tx");
        allow_topic(&b, "User:alice", AclOperation::Describe, "u");
        let resp = handle(&b, &alice, req.clone());
        let tx = &resp.transaction_states[0];
        assert_eq!((tx.error_code, tx.producer_id.0), (0, pid));
        let topics: Vec<&str> = tx.topics.iter().map(|t| t.topic.0.as_str()).collect();
        assert_eq!(topics, vec!["u"], "t is not described to alice");
        assert_eq!(resp.transaction_states[1].error_code, denied);
        let resp = handle(&b, &ctx_of("admin", KEY, 0), req);
        assert_eq!(resp.transaction_states[0].topics.len(), 2);
    }
}
