//! RenewDelegationToken (key 39, KIP-48): the owner or a renewer moves a token's expiry on
//! (`kafka-delegation-tokens --renew --hmac <base64> --renew-time-period <ms>`).
//!
//! ```text
//!  this handler: allow_token_requests? ─ no ─► DELEGATION_TOKEN_REQUEST_NOT_ALLOWED
//!  ─► ControllerRequest::RenewDelegationToken ─► active controller: the token by its HMAC
//!     (DELEGATION_TOKEN_NOT_FOUND / _EXPIRED / _OWNER_MISMATCH / _AUTH_DISABLED), the new
//!     expiry now + min(period, delegation.token.expiry.time.ms), at most the max timestamp
//!  ◄─ the new expiry
//! ```

use std::ops::RangeInclusive;
use std::sync::Arc;

use gregor_controller::protocol as proto;
use gregor_controller::ControllerRequest;
use gregor_protocol::error::ErrorCode;
use gregor_protocol::messages::{
    ApiKey, RenewDelegationTokenRequest, RenewDelegationTokenResponse,
};

use crate::admin_node::AdminNode;
use crate::authorizer;
use crate::delegation_tokens::{allow_token_requests, forward_expiry};
use crate::request::{encode, Reply, RequestContext};

/// The API this module serves.
pub const KEY: ApiKey = ApiKey::RenewDelegationToken;
/// The versions served (Kafka 4.4: 1-2).
pub const VERSIONS: RangeInclusive<i16> = 1..=2;

/// Handles a RenewDelegationToken request.
pub fn handle<N: AdminNode + 'static>(
    node: &Arc<N>,
    ctx: RequestContext,
    req: RenewDelegationTokenRequest,
) -> Reply {
    let node = Arc::clone(node);
    Reply::Pending(Box::pin(async move {
        let (code, expiry) = if !allow_token_requests(&*node, &ctx) {
            (ErrorCode::DELEGATION_TOKEN_REQUEST_NOT_ALLOWED, -1)
        } else {
            forward_expiry(
                &*node,
                &req.hmac,
                ControllerRequest::RenewDelegationToken(proto::RenewDelegationTokenRequest {
                    hmac: req.hmac.to_vec(),
                    principal: authorizer::principal_of(&ctx),
                    renew_period_ms: req.renew_period_ms,
                }),
            )
            .await
        };
        encode(
            &ctx,
            &RenewDelegationTokenResponse::default()
                .with_error_code(code.code())
                .with_expiry_timestamp_ms(expiry),
        )
    }))
}
