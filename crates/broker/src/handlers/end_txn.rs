//! EndTxn (key 26): a transactional producer commits or aborts its transaction. The answer
//! comes once the coordinator's PrepareCommit / PrepareAbort record is durable in
//! `__transaction_state`; the markers are written to the transaction's partitions afterwards
//! (as in Kafka), and the producer's next transactional request meanwhile gets
//! CONCURRENT_TRANSACTIONS. PRODUCER_FENCED becomes INVALID_PRODUCER_EPOCH below v2 (KIP-588).
//!
//! v5 is transactions version 2 (KIP-890 part 2): the coordinator bumps the producer epoch at
//! every EndTxn, writes the markers with the bumped epoch, and answers the producer id and
//! epoch the producer goes on with (a new producer id once the epoch is exhausted). Clients use
//! it when the cluster finalizes `transaction.version` 2 (ApiVersions). v0–v4 keep the
//! classic protocol: no bump, the answer's id and epoch are -1.
//!
//! Authorization, as Kafka's: WRITE on the transactional id
//! (TRANSACTIONAL_ID_AUTHORIZATION_FAILED).

use std::ops::RangeInclusive;
use std::sync::Arc;

use gregor_metadata::{AclOperation, ResourceType};
use gregor_protocol::error::ErrorCode;
use gregor_protocol::messages::ApiKey;
use gregor_protocol::messages::{EndTxnRequest, EndTxnResponse, ProducerId};
use gregor_txn::{error_for_version, TxnApi};

use crate::authorizer;
use crate::broker::Broker;
use crate::request::{encode, Reply, RequestContext};

/// The API this module serves.
pub const KEY: ApiKey = ApiKey::EndTxn;
/// The versions served (and advertised in ApiVersions).
pub const VERSIONS: RangeInclusive<i16> = 0..=5;

/// The first version of transactions version 2.
pub const FIRST_TV2_VERSION: i16 = 5;

/// Handles an EndTxn request.
pub fn handle(broker: &Arc<Broker>, ctx: RequestContext, req: EndTxnRequest) -> Reply {
    let broker = Arc::clone(broker);
    Reply::Pending(Box::pin(async move {
        let response = end_txn(&broker, &ctx, req).await;
        encode(&ctx, &response)
    }))
}

async fn end_txn(broker: &Arc<Broker>, ctx: &RequestContext, req: EndTxnRequest) -> EndTxnResponse {
    if !authorizer::authorize(
        broker,
        ctx,
        AclOperation::Write,
        ResourceType::TransactionalId,
        &req.transactional_id.0,
    ) {
        // Producer id and epoch -1, as Kafka answers.
        return EndTxnResponse::default()
            .with_error_code(ErrorCode::TRANSACTIONAL_ID_AUTHORIZATION_FAILED.code());
    }
    let (error, producer_id, producer_epoch) = broker
        .txn
        .end_txn(
            &req.transactional_id.0,
            req.producer_id.0,
            req.producer_epoch,
            req.committed,
            ctx.api_version >= FIRST_TV2_VERSION,
        )
        .await;
    let error = error_for_version(TxnApi::EndTxn, ctx.api_version, error);
    EndTxnResponse::default()
        .with_error_code(error)
        .with_producer_id(ProducerId(producer_id))
        .with_producer_epoch(producer_epoch)
}

#[cfg(test)]
mod tests {
    use gregor_protocol::messages::TransactionalId;

    use super::*;
    use crate::authorizer::test_support::{allow_transactional_id, ctx_of, secured_broker};
    use crate::handlers::str_bytes;

    /// WRITE on the transactional id, else TRANSACTIONAL_ID_AUTHORIZATION_FAILED.
    #[tokio::test]
    async fn an_authorizer_asks_for_write_on_the_transactional_id() {
        let dir = tempfile::tempdir().expect("tempdir");
        let b = secured_broker(dir.path());
        let req = EndTxnRequest::default()
            .with_transactional_id(TransactionalId(str_bytes("tx")))
            .with_producer_id(ProducerId(7))
            .with_producer_epoch(0)
            .with_committed(true);
        let alice = ctx_of("alice", KEY, 4);
        let resp = end_txn(&b, &alice, req.clone()).await;
        assert_eq!(
            (resp.error_code, resp.producer_id.0, resp.producer_epoch),
            (
                ErrorCode::TRANSACTIONAL_ID_AUTHORIZATION_FAILED.code(),
                -1,
                -1
            )
        );
        allow_transactional_id(&b, "User:alice", AclOperation::Write, "tx");
        // Authorized: the coordinator answers (none is led here).
        let resp = end_txn(&b, &alice, req).await;
        assert_eq!(resp.error_code, ErrorCode::NOT_COORDINATOR.code());
    }
}
