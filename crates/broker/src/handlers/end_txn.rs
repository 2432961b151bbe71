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

use std::ops::RangeInclusive;
use std::sync::Arc;

use gregor_protocol::messages::ApiKey;
use gregor_protocol::messages::{EndTxnRequest, EndTxnResponse, ProducerId};
use gregor_txn::{error_for_version, TxnApi};

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
        encode(
            &ctx,
            &EndTxnResponse::default()
                .with_error_code(error)
                .with_producer_id(ProducerId(producer_id))
                .with_producer_epoch(producer_epoch),
        )
    }))
}
