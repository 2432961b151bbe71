//! AddOffsetsToTxn (key 25): a transactional producer that will send a group's offsets in its
//! transaction (TxnOffsetCommit) first adds the group's `__consumer_offsets` partition to the
//! transaction, so the commit or abort marker reaches the group coordinator too.
//! PRODUCER_FENCED becomes INVALID_PRODUCER_EPOCH below v2 (KIP-588).
//!
//! Authorization, as Kafka's: WRITE on the transactional id
//! (TRANSACTIONAL_ID_AUTHORIZATION_FAILED), then READ on the group (GROUP_AUTHORIZATION_FAILED).

use std::ops::RangeInclusive;
use std::sync::Arc;

use gregor_metadata::{AclOperation, ResourceType};
use gregor_protocol::error::ErrorCode;
use gregor_protocol::messages::ApiKey;
use gregor_protocol::messages::{AddOffsetsToTxnRequest, AddOffsetsToTxnResponse};
use gregor_txn::{error_for_version, TxnApi};

use crate::authorizer;
use crate::broker::Broker;
use crate::request::{encode, Reply, RequestContext};

/// The API this module serves.
pub const KEY: ApiKey = ApiKey::AddOffsetsToTxn;
/// The versions served (and advertised in ApiVersions): all that Kafka 4.x serves.
pub const VERSIONS: RangeInclusive<i16> = 0..=4;

/// Handles an AddOffsetsToTxn request.
pub fn handle(broker: &Arc<Broker>, ctx: RequestContext, req: AddOffsetsToTxnRequest) -> Reply {
    let broker = Arc::clone(broker);
    Reply::Pending(Box::pin(async move {
        let response = add_offsets_to_txn(&broker, &ctx, req).await;
        encode(&ctx, &response)
    }))
}

async fn add_offsets_to_txn(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    req: AddOffsetsToTxnRequest,
) -> AddOffsetsToTxnResponse {
    let refused = if !authorizer::authorize(
        broker,
        ctx,
        AclOperation::Write,
        ResourceType::TransactionalId,
        &req.transactional_id.0,
    ) {
        Some(ErrorCode::TRANSACTIONAL_ID_AUTHORIZATION_FAILED)
    } else if !authorizer::authorize(
        broker,
        ctx,
        AclOperation::Read,
        ResourceType::Group,
        &req.group_id.0,
    ) {
        Some(ErrorCode::GROUP_AUTHORIZATION_FAILED)
    } else {
        None
    };
    if let Some(code) = refused {
        return AddOffsetsToTxnResponse::default().with_error_code(code.code());
    }
    let error = broker
        .txn
        .add_offsets(
            &req.transactional_id.0,
            req.producer_id.0,
            req.producer_epoch,
            &req.group_id.0,
        )
        .await;
    let error = error_for_version(TxnApi::AddOffsetsToTxn, ctx.api_version, error);
    AddOffsetsToTxnResponse::default().with_error_code(error)
}

#[cfg(test)]
mod tests {
    use gregor_protocol::messages::{GroupId, ProducerId, TransactionalId};

    use super::*;
    use crate::authorizer::test_support::{
        allow_group, allow_transactional_id, ctx_of, secured_broker,
    };
    use crate::handlers::str_bytes;

    /// WRITE on the transactional id first, then READ on the group.
    #[tokio::test]
    async fn an_authorizer_asks_for_the_transactional_id_then_the_group() {
        let dir = tempfile::tempdir().expect("tempdir");
        let b = secured_broker(dir.path());
        let req = AddOffsetsToTxnRequest::default()
            .with_transactional_id(TransactionalId(str_bytes("tx")))
            .with_producer_id(ProducerId(7))
            .with_producer_epoch(0)
            .with_group_id(GroupId(str_bytes("g")));
        let alice = ctx_of("alice", KEY, 3);
        let code = |b: &Arc<Broker>| {
            let req = req.clone();
            let b = Arc::clone(b);
            let alice = alice.clone();
            async move { add_offsets_to_txn(&b, &alice, req).await.error_code }
        };
        assert_eq!(
            code(&b).await,
            ErrorCode::TRANSACTIONAL_ID_AUTHORIZATION_FAILED.code()
        );
        allow_transactional_id(&b, "User:alice", AclOperation::Write, "tx");
        assert_eq!(code(&b).await, ErrorCode::GROUP_AUTHORIZATION_FAILED.code());
        allow_group(&b, "User:alice", AclOperation::Read, "g");
        // Authorized: the coordinator answers (none is led here).
        assert_eq!(code(&b).await, ErrorCode::NOT_COORDINATOR.code());
    }
}
