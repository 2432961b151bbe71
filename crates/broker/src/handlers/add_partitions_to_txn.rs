//! AddPartitionsToTxn (key 24): a transactional producer adds partitions to its open
//! transaction before it produces to them (v0–v3, one transaction), or a partition leader asks
//! the coordinator about several transactions at once (v4+, KIP-890: `verify_only` entries
//! check that a partition is already in the transaction and write nothing).
//!
//! Topics the metadata image does not know get UNKNOWN_TOPIC_OR_PARTITION and the other
//! partitions of that transaction OPERATION_NOT_ATTEMPTED, as in Kafka; otherwise every
//! partition gets the coordinator's answer (`TxnRuntime::add_partitions`). PRODUCER_FENCED
//! becomes INVALID_PRODUCER_EPOCH below v2 (KIP-588).

use std::ops::RangeInclusive;
use std::sync::Arc;

use gregor_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use gregor_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnResult, AddPartitionsToTxnTopicResult,
};
use gregor_protocol::messages::ApiKey;
use gregor_protocol::messages::{AddPartitionsToTxnRequest, AddPartitionsToTxnResponse};
use gregor_txn::{code, error_for_version, TopicPartition, TxnApi};

use super::topic_name;
use crate::broker::Broker;
use crate::request::{encode, Reply, RequestContext};

/// The API this module serves.
pub const KEY: ApiKey = ApiKey::AddPartitionsToTxn;
/// The versions served (and advertised in ApiVersions): all that Kafka 4.x serves.
pub const VERSIONS: RangeInclusive<i16> = 0..=5;

/// Handles an AddPartitionsToTxn request.
pub fn handle(broker: &Arc<Broker>, ctx: RequestContext, req: AddPartitionsToTxnRequest) -> Reply {
    let broker = Arc::clone(broker);
    Reply::Pending(Box::pin(async move {
        let response = add_partitions_to_txn(&broker, &ctx, req).await;
        encode(&ctx, &response)
    }))
}

/// One transaction's entry, whichever version carried it.
struct Entry<'a> {
    transactional_id: &'a str,
    producer_id: i64,
    producer_epoch: i16,
    verify_only: bool,
    topics: &'a [AddPartitionsToTxnTopic],
}

async fn add_partitions_to_txn(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    req: AddPartitionsToTxnRequest,
) -> AddPartitionsToTxnResponse {
    let version = ctx.api_version;
    if version < 4 {
        let entry = Entry {
            transactional_id: &req.v3_and_below_transactional_id.0,
            producer_id: req.v3_and_below_producer_id.0,
            producer_epoch: req.v3_and_below_producer_epoch,
            verify_only: false,
            topics: &req.v3_and_below_topics,
        };
        let results = one_transaction(broker, version, &entry).await;
        return AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(results);
    }
    let mut out = Vec::with_capacity(req.transactions.len());
    for t in &req.transactions {
        let entry = Entry {
            transactional_id: &t.transactional_id.0,
            producer_id: t.producer_id.0,
            producer_epoch: t.producer_epoch,
            verify_only: t.verify_only,
            topics: &t.topics,
        };
        out.push(
            AddPartitionsToTxnResult::default()
                .with_transactional_id(t.transactional_id.clone())
                .with_topic_results(one_transaction(broker, version, &entry).await),
        );
    }
    AddPartitionsToTxnResponse::default().with_results_by_transaction(out)
}

async fn one_transaction(
    broker: &Arc<Broker>,
    version: i16,
    entry: &Entry<'_>,
) -> Vec<AddPartitionsToTxnTopicResult> {
    let partitions: Vec<TopicPartition> = entry
        .topics
        .iter()
        .flat_map(|t| {
            t.partitions
                .iter()
                .map(|&p| TopicPartition::new(t.name.0.to_string(), p))
        })
        .collect();
    let image = broker.replicas.image();
    let unknown: Vec<&TopicPartition> = partitions
        .iter()
        .filter(|tp| {
            image
                .topics()
                .topic_by_name(&tp.topic)
                .and_then(|t| t.partition(tp.partition))
                .is_none()
        })
        .collect();
    drop(image);
    let answers: Vec<(TopicPartition, i16)> = if !unknown.is_empty() {
        partitions
            .iter()
            .map(|tp| {
                let error = if unknown.contains(&tp) {
                    code::UNKNOWN_TOPIC_OR_PARTITION
                } else {
                    code::OPERATION_NOT_ATTEMPTED
                };
                (tp.clone(), error)
            })
            .collect()
    } else if entry.verify_only {
        broker.txn.verify_partitions(
            entry.transactional_id,
            entry.producer_id,
            entry.producer_epoch,
            &partitions,
        )
    } else {
        let error = broker
            .txn
            .add_partitions(
                entry.transactional_id,
                entry.producer_id,
                entry.producer_epoch,
                &partitions,
            )
            .await;
        partitions.iter().map(|tp| (tp.clone(), error)).collect()
    };
    let mut by_topic: Vec<AddPartitionsToTxnTopicResult> = Vec::new();
    for (tp, error) in answers {
        let error = error_for_version(TxnApi::AddPartitionsToTxn, version, error);
        let result = AddPartitionsToTxnPartitionResult::default()
            .with_partition_index(tp.partition)
            .with_partition_error_code(error);
        match by_topic.iter_mut().find(|t| t.name.0.as_str() == tp.topic) {
            Some(t) => t.results_by_partition.push(result),
            None => by_topic.push(
                AddPartitionsToTxnTopicResult::default()
                    .with_name(topic_name(&tp.topic))
                    .with_results_by_partition(vec![result]),
            ),
        }
    }
    by_topic
}
