//! ExpireDelegationToken (key 40, KIP-48): the owner or a renewer sets a token's expiry, or
//! removes it at once with a negative period (`kafka-delegation-tokens --expire --hmac <base64>
//! --expiry-time-period -1`).
//!
//! ```text
//!  this handler: allow_token_requests? ─ no ─► DELEGATION_TOKEN_REQUEST_NOT_ALLOWED
//!  ─► ControllerRequest::ExpireDelegationToken ─► active controller: the token by its HMAC
//!     (DELEGATION_TOKEN_NOT_FOUND / _EXPIRED / _OWNER_MISMATCH / _AUTH_DISABLED);
//!     period < 0: RemoveDelegationTokenRecord, else the expiry now + period (≤ max timestamp)
//!  ◄─ the new expiry (the period itself when removed, as Kafka answers)
//! ```

use std::ops::RangeInclusive;
use std::sync::Arc;

use gregor_controller::protocol as proto;
use gregor_controller::ControllerRequest;
use gregor_protocol::error::ErrorCode;
use gregor_protocol::messages::{
    ApiKey, ExpireDelegationTokenRequest, ExpireDelegationTokenResponse,
};

use crate::admin_node::AdminNode;
use crate::authorizer;
use crate::delegation_tokens::{allow_token_requests, forward_expiry};
use crate::request::{encode, Reply, RequestContext};

/// The API this module serves.
pub const KEY: ApiKey = ApiKey::ExpireDelegationToken;
/// The versions served (Kafka 4.4: 1-2).
pub const VERSIONS: RangeInclusive<i16> = 1..=2;

/// Handles an ExpireDelegationToken request.
pub fn handle<N: AdminNode + 'static>(
    node: &Arc<N>,
    ctx: RequestContext,
    req: ExpireDelegationTokenRequest,
) -> Reply {
    let node = Arc::clone(node);
    Reply::Pending(Box::pin(async move {
        let (code, expiry) = if !allow_token_requests(&*node, &ctx) {
            (ErrorCode::DELEGATION_TOKEN_REQUEST_NOT_ALLOWED, -1)
        } else {
            forward_expiry(
                &*node,
                &req.hmac,
                ControllerRequest::ExpireDelegationToken(proto::ExpireDelegationTokenRequest {
                    hmac: req.hmac.to_vec(),
                    principal: authorizer::principal_of(&ctx),
                    expiry_time_period_ms: req.expiry_time_period_ms,
                }),
            )
            .await
        };
        encode(
            &ctx,
            &ExpireDelegationTokenResponse::default()
                .with_error_code(code.code())
                .with_expiry_timestamp_ms(expiry),
        )
    }))
}
