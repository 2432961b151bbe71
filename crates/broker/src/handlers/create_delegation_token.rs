//! CreateDelegationToken (key 38, KIP-48): a token for the requester, or (v3, KIP-373) for
//! another user (`kafka-delegation-tokens --create --owner-principal User:bob`).
//!
//! ```text
//!  this handler: allow_token_requests? ─ no ─► DELEGATION_TOKEN_REQUEST_NOT_ALLOWED
//!    owner ≠ requester and no CREATE_TOKENS on User:<owner> ─► DELEGATION_TOKEN_AUTHORIZATION_FAILED
//!    a renewer that is not a User ─► INVALID_PRINCIPAL_TYPE
//!  ─► ControllerRequest::CreateDelegationToken ─► active controller: DELEGATION_TOKEN_AUTH_DISABLED
//!     without a secret key, else a DelegationTokenRecord committed
//!  ◄─ token id, HMAC, timestamps ◄─ once this node's image holds the token
//! ```

use std::ops::RangeInclusive;
use std::sync::Arc;

use bytes::Bytes;
use gregor_controller::protocol as proto;
use gregor_controller::{ControllerRequest, ControllerResponse};
use gregor_metadata::{AclOperation, ResourceType};
use gregor_protocol::error::ErrorCode;
use gregor_protocol::messages::{
    ApiKey, CreateDelegationTokenRequest, CreateDelegationTokenResponse,
};

use super::admin_common::wait_for_image;
use super::str_bytes;
use crate::admin_node::AdminNode;
use crate::authorizer;
use crate::delegation_tokens::allow_token_requests;
use crate::request::{encode, Reply, RequestContext};

/// The API this module serves.
pub const KEY: ApiKey = ApiKey::CreateDelegationToken;
/// The versions served (Kafka 4.4: 1-3; v0 was removed by KIP-896).
pub const VERSIONS: RangeInclusive<i16> = 1..=3;

/// `(type, name)` of a `Type:name` principal.
fn split(principal: &str) -> (&str, &str) {
    principal.split_once(':').unwrap_or(("User", principal))
}

/// Kafka's `CreateDelegationTokenResponse.prepareResponse` for a refusal: the principals,
/// timestamps -1, no token.
fn refused(code: ErrorCode, owner: &str, requester: &str) -> CreateDelegationTokenResponse {
    let (owner_type, owner_name) = split(owner);
    let (requester_type, requester_name) = split(requester);
    CreateDelegationTokenResponse::default()
        .with_error_code(code.code())
        .with_principal_type(str_bytes(owner_type))
        .with_principal_name(str_bytes(owner_name))
        .with_token_requester_principal_type(str_bytes(requester_type))
        .with_token_requester_principal_name(str_bytes(requester_name))
        .with_issue_timestamp_ms(-1)
        .with_expiry_timestamp_ms(-1)
        .with_max_timestamp_ms(-1)
        .with_token_id(str_bytes(""))
        .with_hmac(Bytes::new())
}

/// Handles a CreateDelegationToken request.
pub fn handle<N: AdminNode + 'static>(
    node: &Arc<N>,
    ctx: RequestContext,
    req: CreateDelegationTokenRequest,
) -> Reply {
    let node = Arc::clone(node);
    Reply::Pending(Box::pin(async move {
        let requester = authorizer::principal_of(&ctx);
        let owner = match req.owner_principal_name.as_deref() {
            Some(name) if !name.is_empty() => format!(
                "{}:{name}",
                req.owner_principal_type.as_deref().unwrap_or("User")
            ),
            _ => requester.clone(),
        };
        let renewers: Vec<String> = req
            .renewers
            .iter()
            .map(|r| format!("{}:{}", &*r.principal_type, &*r.principal_name))
            .collect();
        let refuse = |code| encode(&ctx, &refused(code, &owner, &requester));
        if !allow_token_requests(&*node, &ctx) {
            return refuse(ErrorCode::DELEGATION_TOKEN_REQUEST_NOT_ALLOWED);
        }
        if owner != requester
            && !authorizer::authorize(
                &*node,
                &ctx,
                AclOperation::CreateTokens,
                ResourceType::User,
                &owner,
            )
        {
            return refuse(ErrorCode::DELEGATION_TOKEN_AUTHORIZATION_FAILED);
        }
        if renewers.iter().any(|r| !r.starts_with("User:")) {
            return refuse(ErrorCode::INVALID_PRINCIPAL_TYPE);
        }
        let answer = node
            .controller()
            .call(ControllerRequest::CreateDelegationToken(
                proto::CreateDelegationTokenRequest {
                    owner: owner.clone(),
                    requester: requester.clone(),
                    renewers,
                    max_lifetime_ms: req.max_lifetime_ms,
                },
            ))
            .await;
        let created = match answer {
            Ok(ControllerResponse::CreateDelegationToken(r)) if r.error_code == 0 => r,
            Ok(ControllerResponse::CreateDelegationToken(r)) => {
                return refuse(ErrorCode(r.error_code));
            }
            Ok(other) => {
                let (code, _) = super::create_topics::controller_failure(&other);
                return refuse(code);
            }
            Err(_) => return refuse(ErrorCode::REQUEST_TIMED_OUT),
        };
        // The token is usable on this node (and describable) once its image has it.
        let token_id = created.token_id.clone();
        wait_for_image(&*node, |image| {
            image.delegation_tokens().get(&token_id).is_some()
        })
        .await;
        let (owner_type, owner_name) = split(&owner);
        let (requester_type, requester_name) = split(&requester);
        encode(
            &ctx,
            &CreateDelegationTokenResponse::default()
                .with_principal_type(str_bytes(owner_type))
                .with_principal_name(str_bytes(owner_name))
                .with_token_requester_principal_type(str_bytes(requester_type))
                .with_token_requester_principal_name(str_bytes(requester_name))
                .with_issue_timestamp_ms(created.issue_timestamp_ms)
                .with_expiry_timestamp_ms(created.expiry_timestamp_ms)
                .with_max_timestamp_ms(created.max_timestamp_ms)
                .with_token_id(str_bytes(created.token_id))
                .with_hmac(Bytes::from(created.hmac)),
        )
    }))
}
