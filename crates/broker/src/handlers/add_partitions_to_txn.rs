//! AddPartitionsToTxn (key 24): a transactional producer adds partitions to its open
//! transaction before it produces to them (v0–v3, one transaction), or a partition leader asks
//! the coordinator about several transactions at once (v4+, KIP-890: `verify_only` entries
//! check that a partition is already in the transaction and write nothing).
//!
//! Topics the metadata image does not know get UNKNOWN_TOPIC_OR_PARTITION and the other
//! partitions of that transaction OPERATION_NOT_ATTEMPTED, as in Kafka; otherwise every
//! partition gets the coordinator's answer (`TxnRuntime::add_partitions`). PRODUCER_FENCED
//! becomes INVALID_PRODUCER_EPOCH below v2 (KIP-588).
//!
//! Authorization, as Kafka's: v4+ comes only from brokers and needs CLUSTER_ACTION on the
//! cluster (else the whole response is CLUSTER_AUTHORIZATION_FAILED). v0–v3 need WRITE on the
//! transactional id (else every partition TRANSACTIONAL_ID_AUTHORIZATION_FAILED) and WRITE on
//! each topic: an unauthorized topic's partitions get TOPIC_AUTHORIZATION_FAILED and fail the
//! transaction's other partitions like an unknown topic does. With an authorizer an internal
//! topic (`__consumer_offsets`, `__transaction_state`) is never authorized here: its partition
//! joins a transaction through AddOffsetsToTxn.

use std::ops::RangeInclusive;
use std::sync::Arc;

use std::collections::HashSet;

use gregor_metadata::{AclOperation, ResourceType};
use gregor_protocol::error::ErrorCode;
use gregor_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use gregor_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnResult, AddPartitionsToTxnTopicResult,
};
use gregor_protocol::messages::ApiKey;
use gregor_protocol::messages::{AddPartitionsToTxnRequest, AddPartitionsToTxnResponse};
use gregor_txn::{code, error_for_version, TopicPartition, TxnApi};

use super::topic_name;
use crate::authorizer;
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
        let results = if authorizer::authorize(
            broker,
            ctx,
            AclOperation::Write,
            ResourceType::TransactionalId,
            entry.transactional_id,
        ) {
            let authorized = authorized_topics(broker, ctx, entry.topics);
            one_transaction(broker, version, &entry, &authorized).await
        } else {
            every_partition(
                entry.topics,
                ErrorCode::TRANSACTIONAL_ID_AUTHORIZATION_FAILED.code(),
            )
        };
        return AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(results);
    }
    // Kafka: newer versions come only from other brokers (partition leaders verifying).
    if !authorizer::authorize_cluster(broker, ctx, AclOperation::ClusterAction) {
        return AddPartitionsToTxnResponse::default()
            .with_error_code(ErrorCode::CLUSTER_AUTHORIZATION_FAILED.code());
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
        // A broker's request: every topic counts as authorized.
        let authorized = t.topics.iter().map(|t| t.name.0.to_string()).collect();
        out.push(
            AddPartitionsToTxnResult::default()
                .with_transactional_id(t.transactional_id.clone())
                .with_topic_results(one_transaction(broker, version, &entry, &authorized).await),
        );
    }
    AddPartitionsToTxnResponse::default().with_results_by_transaction(out)
}

/// The topics a client may add to its transaction (WRITE on each; with an authorizer never an
/// internal topic, as Kafka filters those out before it asks).
fn authorized_topics(
    broker: &Broker,
    ctx: &RequestContext,
    topics: &[AddPartitionsToTxnTopic],
) -> HashSet<String> {
    let enabled = authorizer::enabled(broker);
    authorizer::filter_authorized(
        broker,
        ctx,
        AclOperation::Write,
        ResourceType::Topic,
        topics
            .iter()
            .map(|t| t.name.0.as_str())
            .filter(|name| !(enabled && is_internal(name))),
    )
}

/// Kafka's internal topics (`Topic.isInternal`).
fn is_internal(name: &str) -> bool {
    name == crate::group_coordinator::OFFSETS_TOPIC
        || name == crate::txn_coordinator::TRANSACTION_STATE_TOPIC
}

/// Every partition of `topics` with `error` (Kafka's `errorResponseForTransaction`).
fn every_partition(
    topics: &[AddPartitionsToTxnTopic],
    error: i16,
) -> Vec<AddPartitionsToTxnTopicResult> {
    topics
        .iter()
        .map(|t| {
            AddPartitionsToTxnTopicResult::default()
                .with_name(t.name.clone())
                .with_results_by_partition(
                    t.partitions
                        .iter()
                        .map(|&p| {
                            AddPartitionsToTxnPartitionResult::default()
                                .with_partition_index(p)
                                .with_partition_error_code(error)
                        })
                        .collect(),
                )
        })
        .collect()
}

async fn one_transaction(
    broker: &Arc<Broker>,
    version: i16,
    entry: &Entry<'_>,
    authorized: &HashSet<String>,
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
    // Kafka's order: an unauthorized topic first, then one the image does not know.
    let refused: Vec<(&TopicPartition, i16)> = partitions
        .iter()
        .filter_map(|tp| {
            if !authorized.contains(&tp.topic) {
                Some((tp, ErrorCode::TOPIC_AUTHORIZATION_FAILED.code()))
            } else if image
                .topics()
                .topic_by_name(&tp.topic)
                .and_then(|t| t.partition(tp.partition))
                .is_none()
            {
                Some((tp, code::UNKNOWN_TOPIC_OR_PARTITION))
            } else {
                None
            }
        })
        .collect();
    drop(image);
    let answers: Vec<(TopicPartition, i16)> = if !refused.is_empty() {
        partitions
            .iter()
            .map(|tp| {
                let error = refused
                    .iter()
                    .find(|(r, _)| *r == tp)
                    .map_or(code::OPERATION_NOT_ATTEMPTED, |&(_, e)| e);
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

#[cfg(test)]
mod tests {
    use gregor_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTransaction;
    use gregor_protocol::messages::{ProducerId, TransactionalId};

    use super::*;
    use crate::authorizer::test_support::{
        allow_cluster, allow_topic, allow_transactional_id, ctx_of, secured_broker,
    };
    use crate::handlers::str_bytes;

    fn broker(dir: &std::path::Path) -> Arc<Broker> {
        let b = secured_broker(dir);
        for name in ["t", "w"] {
            b.replicas
                .create_topic(name, 1, 1, Default::default())
                .expect("create");
        }
        b
    }

    fn topics(names: &[&str]) -> Vec<AddPartitionsToTxnTopic> {
        names
            .iter()
            .map(|n| {
                AddPartitionsToTxnTopic::default()
                    .with_name(topic_name(n))
                    .with_partitions(vec![0])
            })
            .collect()
    }

    fn v3(names: &[&str]) -> AddPartitionsToTxnRequest {
        AddPartitionsToTxnRequest::default()
            .with_v3_and_below_transactional_id(TransactionalId(str_bytes("tx")))
            .with_v3_and_below_producer_id(ProducerId(7))
            .with_v3_and_below_producer_epoch(0)
            .with_v3_and_below_topics(topics(names))
    }

    /// `(topic, error)` of each partition of a v0–v3 answer.
    fn codes(resp: &AddPartitionsToTxnResponse) -> Vec<(String, i16)> {
        resp.results_by_topic_v3_and_below
            .iter()
            .flat_map(|t| {
                t.results_by_partition
                    .iter()
                    .map(|p| (t.name.0.to_string(), p.partition_error_code))
            })
            .collect()
    }

    /// v0–v3 (clients): WRITE on the transactional id, then on each topic; an unauthorized
    /// topic fails the others as OPERATION_NOT_ATTEMPTED, and internal topics are never
    /// authorized, not even for a super user.
    #[tokio::test]
    async fn a_client_needs_write_on_the_transactional_id_and_each_topic() {
        let dir = tempfile::tempdir().expect("tempdir");
        let b = broker(dir.path());
        let alice = ctx_of("alice", KEY, 3);
        let resp = add_partitions_to_txn(&b, &alice, v3(&["t", "w"])).await;
        let txn_denied = ErrorCode::TRANSACTIONAL_ID_AUTHORIZATION_FAILED.code();
        assert_eq!(
            codes(&resp),
            vec![("t".into(), txn_denied), ("w".into(), txn_denied)]
        );
        allow_transactional_id(&b, "User:alice", AclOperation::Write, "tx");
        allow_topic(&b, "User:alice", AclOperation::Write, "w");
        let resp = add_partitions_to_txn(&b, &alice, v3(&["t", "w", "gone"])).await;
        assert_eq!(
            codes(&resp),
            vec![
                ("t".into(), ErrorCode::TOPIC_AUTHORIZATION_FAILED.code()),
                ("w".into(), code::OPERATION_NOT_ATTEMPTED),
                ("gone".into(), ErrorCode::TOPIC_AUTHORIZATION_FAILED.code()),
            ]
        );
        // Authorized: the coordinator answers (none is led here).
        let resp = add_partitions_to_txn(&b, &alice, v3(&["w"])).await;
        assert_eq!(
            codes(&resp),
            vec![("w".into(), ErrorCode::NOT_COORDINATOR.code())]
        );
        let admin = ctx_of("admin", KEY, 3);
        let resp = add_partitions_to_txn(&b, &admin, v3(&["w", "__consumer_offsets"])).await;
        assert_eq!(
            codes(&resp),
            vec![
                ("w".into(), code::OPERATION_NOT_ATTEMPTED),
                (
                    "__consumer_offsets".into(),
                    ErrorCode::TOPIC_AUTHORIZATION_FAILED.code()
                ),
            ]
        );
    }

    /// v4+ comes from brokers only: CLUSTER_ACTION on the cluster, else the whole response.
    #[tokio::test]
    async fn a_broker_s_batch_needs_cluster_action() {
        let dir = tempfile::tempdir().expect("tempdir");
        let b = broker(dir.path());
        let req = AddPartitionsToTxnRequest::default().with_transactions(vec![
            AddPartitionsToTxnTransaction::default()
                .with_transactional_id(TransactionalId(str_bytes("tx")))
                .with_producer_id(ProducerId(7))
                .with_producer_epoch(0)
                .with_verify_only(true)
                .with_topics(topics(&["t"])),
        ]);
        let broker1 = ctx_of("broker1", KEY, 5);
        let resp = add_partitions_to_txn(&b, &broker1, req.clone()).await;
        assert_eq!(
            resp.error_code,
            ErrorCode::CLUSTER_AUTHORIZATION_FAILED.code()
        );
        assert!(resp.results_by_transaction.is_empty());
        allow_cluster(&b, "User:broker1", AclOperation::ClusterAction);
        let resp = add_partitions_to_txn(&b, &broker1, req).await;
        assert_eq!(resp.error_code, 0);
        let result = &resp.results_by_transaction[0].topic_results[0].results_by_partition[0];
        assert_eq!(
            result.partition_error_code,
            ErrorCode::NOT_COORDINATOR.code()
        );
    }
}
