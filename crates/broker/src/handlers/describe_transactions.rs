//! DescribeTransactions (key 65): the state, producer, timeout, start time and partitions of
//! transactional ids this broker coordinates. Per id: NOT_COORDINATOR (another broker leads its
//! `__transaction_state` partition), COORDINATOR_LOAD_IN_PROGRESS, or TRANSACTIONAL_ID_NOT_FOUND.

use std::collections::BTreeMap;
use std::ops::RangeInclusive;
use std::sync::Arc;

use gregor_protocol::messages::describe_transactions_response::{
    TopicData, TransactionState as TxnStateEntry,
};
use gregor_protocol::messages::ApiKey;
use gregor_protocol::messages::{
    DescribeTransactionsRequest, DescribeTransactionsResponse, ProducerId,
};

use super::{str_bytes, topic_name};
use crate::broker::Broker;

/// The API this module serves.
pub const KEY: ApiKey = ApiKey::DescribeTransactions;
/// The versions served (and advertised in ApiVersions): all that Kafka 4.x serves.
pub const VERSIONS: RangeInclusive<i16> = 0..=0;

/// Handles a DescribeTransactions request.
pub fn handle(
    broker: &Arc<Broker>,
    req: DescribeTransactionsRequest,
) -> DescribeTransactionsResponse {
    let states = req
        .transactional_ids
        .iter()
        .map(|id| {
            // An id in error has every other field at its default (0, ""), as Kafka answers.
            let entry = TxnStateEntry::default().with_transactional_id(id.clone());
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
