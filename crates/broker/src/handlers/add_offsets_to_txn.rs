//! AddOffsetsToTxn (key 25): a transactional producer that will send a group's offsets in its
//! transaction (TxnOffsetCommit) first adds the group's `__consumer_offsets` partition to the
//! transaction, so the commit or abort marker reaches the group coordinator too.
//! PRODUCER_FENCED becomes INVALID_PRODUCER_EPOCH below v2 (KIP-588).

use std::ops::RangeInclusive;
use std::sync::Arc;

use gregor_protocol::messages::ApiKey;
use gregor_protocol::messages::{AddOffsetsToTxnRequest, AddOffsetsToTxnResponse};
use gregor_txn::{error_for_version, TxnApi};

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
        encode(
            &ctx,
            &AddOffsetsToTxnResponse::default().with_error_code(error),
        )
    }))
}
