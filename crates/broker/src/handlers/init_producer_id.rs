//! InitProducerId (key 22): a producer id and epoch for an idempotent producer.
//!
//! Without a transactional id, as Kafka's `TransactionCoordinator.handleInitProducerId` does for
//! `transactionalId == null`: every request gets a new producer id from this broker's block
//! ([`ProducerIdManager`](crate::producer_id_manager::ProducerIdManager)) and epoch 0. That
//! holds for KIP-360 requests too (v3+, carrying the producer's current id and epoch after an
//! UNKNOWN_PRODUCER_ID or OUT_OF_ORDER_SEQUENCE_NUMBER): the broker keeps no state for
//! idempotent producers outside the partitions, so it cannot check that the id belongs to the
//! caller, and a fresh id is as good as a bumped epoch for the client — every partition sees a
//! new producer that starts at sequence 0. Epoch bumps (and a new id on epoch exhaustion)
//! belong to the transaction coordinator, which knows the id's owner.
//!
//! With a transactional id: the transaction coordinator of the id's `__transaction_state`
//! partition ([`TxnRuntime::init_producer_id`](crate::txn_coordinator::TxnRuntime)) bumps the
//! epoch (fencing an earlier producer and aborting its open transaction), or hands out a new
//! producer id for a new transactional id or an exhausted epoch. PRODUCER_FENCED becomes
//! INVALID_PRODUCER_EPOCH below v4 (KIP-588).
//!
//! Authorization, as Kafka's: a transactional id needs WRITE on it
//! (TRANSACTIONAL_ID_AUTHORIZATION_FAILED); an idempotent producer needs IDEMPOTENT_WRITE on the
//! cluster or WRITE on some topic (CLUSTER_AUTHORIZATION_FAILED).

use std::ops::RangeInclusive;
use std::sync::Arc;

use gregor_metadata::{AclOperation, ResourceType, CLUSTER_NAME};
use gregor_protocol::error::ErrorCode;
use gregor_protocol::messages::ApiKey;
use gregor_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};
use gregor_txn::{error_for_version, ProducerIdAndEpoch, TxnApi};

use crate::authorizer;
use crate::broker::Broker;
use crate::request::{encode, Reply, RequestContext};

/// The API this module serves.
pub const KEY: ApiKey = ApiKey::InitProducerId;
/// The versions served (and advertised in ApiVersions): all that Kafka 4.x serves.
pub const VERSIONS: RangeInclusive<i16> = 0..=5;

fn error(code: ErrorCode) -> InitProducerIdResponse {
    InitProducerIdResponse::default()
        .with_error_code(code.code())
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1)
}

/// Handles an InitProducerId request.
pub fn handle(broker: &Arc<Broker>, ctx: RequestContext, req: InitProducerIdRequest) -> Reply {
    let broker = Arc::clone(broker);
    Reply::Pending(Box::pin(async move {
        let response = init_producer_id(&broker, &ctx, req).await;
        encode(&ctx, &response)
    }))
}

async fn init_producer_id(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    req: InitProducerIdRequest,
) -> InitProducerIdResponse {
    if let Some(code) = denied(broker, ctx, &req) {
        return error(code);
    }
    if let Some(transactional_id) = &req.transactional_id {
        if transactional_id.0.is_empty() {
            return error(ErrorCode::INVALID_REQUEST);
        }
        if (req.producer_id.0 == -1) != (req.producer_epoch == -1) {
            return error(ErrorCode::INVALID_REQUEST);
        }
        let expected = (req.producer_id.0 != -1).then_some(ProducerIdAndEpoch {
            producer_id: req.producer_id.0,
            epoch: req.producer_epoch,
        });
        let (code, producer_id, epoch) = broker
            .txn
            .init_producer_id(&transactional_id.0, req.transaction_timeout_ms, expected)
            .await;
        let code = error_for_version(TxnApi::InitProducerId, ctx.api_version, code);
        return InitProducerIdResponse::default()
            .with_error_code(code)
            .with_producer_id(ProducerId(producer_id))
            .with_producer_epoch(epoch);
    }
    // Kafka: an id without an epoch (or the reverse) is a malformed request.
    if (req.producer_id.0 == -1) != (req.producer_epoch == -1) {
        return error(ErrorCode::INVALID_REQUEST);
    }
    match broker.producer_ids.generate().await {
        Ok(id) => InitProducerIdResponse::default()
            .with_producer_id(ProducerId(id))
            .with_producer_epoch(0),
        Err(code) => error(code),
    }
}

/// Kafka's checks before anything else: WRITE on the transactional id, or for an idempotent
/// producer IDEMPOTENT_WRITE on the cluster (asked quietly: WRITE on any topic will also do).
fn denied(broker: &Broker, ctx: &RequestContext, req: &InitProducerIdRequest) -> Option<ErrorCode> {
    match &req.transactional_id {
        Some(id) => (!authorizer::authorize(
            broker,
            ctx,
            AclOperation::Write,
            ResourceType::TransactionalId,
            &id.0,
        ))
        .then_some(ErrorCode::TRANSACTIONAL_ID_AUTHORIZATION_FAILED),
        None => (!authorizer::authorize_quietly(
            broker,
            ctx,
            AclOperation::IdempotentWrite,
            ResourceType::Cluster,
            CLUSTER_NAME,
        ) && !authorizer::authorize_by_resource_type(
            broker,
            ctx,
            AclOperation::Write,
            ResourceType::Topic,
        ))
        .then_some(ErrorCode::CLUSTER_AUTHORIZATION_FAILED),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use gregor_protocol::messages::TransactionalId;

    use super::*;
    use crate::broker::test_broker;
    use crate::config::BrokerConfig;
    use crate::handlers::str_bytes;

    fn ctx() -> RequestContext {
        RequestContext::for_test(KEY, 4)
    }

    #[tokio::test]
    async fn ids_are_unique_across_blocks_and_transactional_ids_need_their_coordinator() {
        let dir = tempfile::tempdir().expect("tempdir");
        let broker = test_broker(BrokerConfig {
            data_dir: dir.path().to_path_buf(),
            ..BrokerConfig::default()
        });
        let mut ids = BTreeSet::new();
        for i in 0..2500 {
            // KIP-360 requests (an existing id and epoch) get a new id too, as in Kafka.
            let req = if i % 2 == 0 {
                InitProducerIdRequest::default()
                    .with_transactional_id(None)
                    .with_producer_id(ProducerId(-1))
                    .with_producer_epoch(-1)
            } else {
                InitProducerIdRequest::default()
                    .with_transactional_id(None)
                    .with_producer_id(ProducerId(i))
                    .with_producer_epoch(3)
            };
            let resp = init_producer_id(&broker, &ctx(), req).await;
            assert_eq!(resp.error_code, 0);
            assert_eq!(resp.producer_epoch, 0);
            assert!(ids.insert(resp.producer_id.0), "id handed out twice");
        }
        // Three blocks of 1000 were committed to the metadata image.
        assert!(broker.replicas.image().next_producer_id() >= 3000);

        let txn = InitProducerIdRequest::default()
            .with_transactional_id(Some(TransactionalId(str_bytes("t1"))))
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1);
        let resp = init_producer_id(&broker, &ctx(), txn).await;
        // No `__transaction_state` partition is led here.
        assert_eq!(resp.error_code, ErrorCode::NOT_COORDINATOR.code());
        let half = InitProducerIdRequest::default()
            .with_transactional_id(None)
            .with_producer_id(ProducerId(5))
            .with_producer_epoch(-1);
        let resp = init_producer_id(&broker, &ctx(), half).await;
        assert_eq!(resp.error_code, ErrorCode::INVALID_REQUEST.code());
    }

    /// Kafka's checks: WRITE on the transactional id, else IDEMPOTENT_WRITE on the cluster or
    /// WRITE on some topic for an idempotent producer.
    #[tokio::test]
    async fn an_authorizer_asks_for_the_transactional_id_or_idempotent_write() {
        use crate::authorizer::test_support::{
            allow_cluster, allow_topic, allow_transactional_id, ctx_of, with_authorizer,
        };
        let dir = tempfile::tempdir().expect("tempdir");
        let broker = test_broker(with_authorizer(BrokerConfig {
            data_dir: dir.path().to_path_buf(),
            ..BrokerConfig::default()
        }));
        let idempotent = || {
            InitProducerIdRequest::default()
                .with_transactional_id(None)
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1)
        };
        let transactional =
            || idempotent().with_transactional_id(Some(TransactionalId(str_bytes("t1"))));
        let alice = ctx_of("alice", KEY, 4);
        let bob = ctx_of("bob", KEY, 4);
        let resp = init_producer_id(&broker, &alice, idempotent()).await;
        assert_eq!(
            (resp.error_code, resp.producer_id.0, resp.producer_epoch),
            (ErrorCode::CLUSTER_AUTHORIZATION_FAILED.code(), -1, -1)
        );
        let resp = init_producer_id(&broker, &alice, transactional()).await;
        assert_eq!(
            resp.error_code,
            ErrorCode::TRANSACTIONAL_ID_AUTHORIZATION_FAILED.code()
        );
        allow_cluster(&broker, "User:alice", AclOperation::IdempotentWrite);
        allow_transactional_id(&broker, "User:alice", AclOperation::Write, "t1");
        // WRITE on any topic is enough for an idempotent producer.
        allow_topic(&broker, "User:bob", AclOperation::Write, "t");
        for ctx in [&alice, &bob] {
            let resp = init_producer_id(&broker, ctx, idempotent()).await;
            assert_eq!((resp.error_code, resp.producer_epoch), (0, 0));
        }
        // Past the check: no `__transaction_state` partition is led here.
        let resp = init_producer_id(&broker, &alice, transactional()).await;
        assert_eq!(resp.error_code, ErrorCode::NOT_COORDINATOR.code());
        let resp = init_producer_id(&broker, &bob, transactional()).await;
        assert_eq!(
            resp.error_code,
            ErrorCode::TRANSACTIONAL_ID_AUTHORIZATION_FAILED.code()
        );
    }
}
