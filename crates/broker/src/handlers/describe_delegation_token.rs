//! DescribeDelegationToken (key 41, KIP-48): the tokens the requester may see, from this
//! node's image (`kafka-delegation-tokens --describe [--owner-principal User:alice]`).
//!
//! Kafka's `KafkaApis.handleDescribeTokensRequest` and `DelegationTokenManager.filterToken`:
//! a connection that may not manage tokens gets DELEGATION_TOKEN_REQUEST_NOT_ALLOWED, a broker
//! without the secret key DELEGATION_TOKEN_AUTH_DISABLED, an empty owner list no tokens, a
//! null one every token; with owners, only tokens one of them owns, requested or may renew.
//! Of those, a token is shown to its owner, requester and renewers, and to others with
//! DESCRIBE on the DELEGATION_TOKEN (its id) or DESCRIBE_TOKENS on User:<owner>. Each comes
//! with its HMAC.

use std::ops::RangeInclusive;

use bytes::Bytes;
use gregor_metadata::{AclOperation, ResourceType};
use gregor_protocol::error::ErrorCode;
use gregor_protocol::messages::describe_delegation_token_response::{
    DescribedDelegationToken, DescribedDelegationTokenRenewer,
};
use gregor_protocol::messages::{
    ApiKey, DescribeDelegationTokenRequest, DescribeDelegationTokenResponse,
};

use super::str_bytes;
use crate::admin_node::AdminNode;
use crate::authorizer;
use crate::delegation_tokens::{allow_token_requests, hmac_of};
use crate::request::RequestContext;

/// The API this module serves.
pub const KEY: ApiKey = ApiKey::DescribeDelegationToken;
/// The versions served (Kafka 4.4: 1-3).
pub const VERSIONS: RangeInclusive<i16> = 1..=3;

fn split(principal: &str) -> (&str, &str) {
    principal.split_once(':').unwrap_or(("User", principal))
}

/// Handles a DescribeDelegationToken request.
pub fn handle(
    node: &dyn AdminNode,
    ctx: &RequestContext,
    req: &DescribeDelegationTokenRequest,
) -> DescribeDelegationTokenResponse {
    let resp = DescribeDelegationTokenResponse::default();
    if !allow_token_requests(node, ctx) {
        return resp.with_error_code(ErrorCode::DELEGATION_TOKEN_REQUEST_NOT_ALLOWED.code());
    }
    let config = &node.config().delegation_tokens;
    if config.secret_key.is_none() {
        return resp.with_error_code(ErrorCode::DELEGATION_TOKEN_AUTH_DISABLED.code());
    }
    let owners: Option<Vec<String>> = req.owners.as_ref().map(|owners| {
        owners
            .iter()
            .map(|o| format!("{}:{}", &*o.principal_type, &*o.principal_name))
            .collect()
    });
    if owners.as_ref().is_some_and(Vec::is_empty) {
        return resp;
    }
    let requester = authorizer::principal_of(ctx);
    let image = node.image();
    let tokens = image
        .delegation_tokens()
        .tokens()
        .filter(|t| {
            owners
                .as_ref()
                .is_none_or(|owners| owners.iter().any(|o| t.owner_or_renewer(o)))
        })
        .filter(|t| {
            t.owner_or_renewer(&requester)
                || authorizer::authorize(
                    node,
                    ctx,
                    AclOperation::Describe,
                    ResourceType::DelegationToken,
                    &t.token_id,
                )
                || authorizer::authorize(
                    node,
                    ctx,
                    AclOperation::DescribeTokens,
                    ResourceType::User,
                    &t.owner,
                )
        })
        .map(|t| {
            let (owner_type, owner_name) = split(&t.owner);
            let (requester_type, requester_name) = split(&t.requester);
            DescribedDelegationToken::default()
                .with_principal_type(str_bytes(owner_type))
                .with_principal_name(str_bytes(owner_name))
                .with_token_requester_principal_type(str_bytes(requester_type))
                .with_token_requester_principal_name(str_bytes(requester_name))
                .with_issue_timestamp(t.issue_timestamp_ms)
                .with_expiry_timestamp(t.expiration_timestamp_ms)
                .with_max_timestamp(t.max_timestamp_ms)
                .with_token_id(str_bytes(t.token_id.clone()))
                .with_hmac(Bytes::from(hmac_of(config, t)))
                .with_renewers(
                    t.renewers
                        .iter()
                        .map(|r| {
                            let (kind, name) = split(r);
                            DescribedDelegationTokenRenewer::default()
                                .with_principal_type(str_bytes(kind))
                                .with_principal_name(str_bytes(name))
                        })
                        .collect(),
                )
        })
        .collect();
    resp.with_tokens(tokens)
}
