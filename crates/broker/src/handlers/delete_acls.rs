//! DeleteAcls (key 31): removes every ACL each filter matches (`kafka-acls.sh --remove`,
//! `Admin.deleteAcls`), as Kafka's brokers do: forwarded to the active controller, which
//! removes them all in one proposal, and answered once this broker's image shows it.
//!
//! Needs ALTER on the cluster (else CLUSTER_AUTHORIZATION_FAILED per filter) and an
//! authorizer (else SECURITY_DISABLED per filter). Each filter's result lists the ACLs it
//! matched; a filter with an UNKNOWN field gets INVALID_REQUEST.

use std::ops::RangeInclusive;
use std::sync::Arc;

use gregor_controller::protocol as proto;
use gregor_controller::{ControllerRequest, ControllerResponse};
use gregor_metadata::acl::{AclOperation, AclPermissionType, PatternType, ResourceType};
use gregor_metadata::AclBindingFilter;
use gregor_protocol::error::ErrorCode;
use gregor_protocol::messages::delete_acls_request::DeleteAclsFilter;
use gregor_protocol::messages::delete_acls_response::{
    DeleteAclsFilterResult, DeleteAclsMatchingAcl,
};
use gregor_protocol::messages::{ApiKey, DeleteAclsRequest, DeleteAclsResponse};

use super::admin_common::{acl_api_refusal, wait_for_image};
use super::str_bytes;
use crate::admin_node::AdminNode;
use crate::request::{encode, ready, Reply, RequestContext};

/// The API this module serves.
pub const KEY: ApiKey = ApiKey::DeleteAcls;
/// The versions served (and advertised in ApiVersions): Kafka 4's.
pub const VERSIONS: RangeInclusive<i16> = 1..=3;

fn filter_of(f: &DeleteAclsFilter) -> AclBindingFilter {
    AclBindingFilter {
        resource_type: ResourceType::from_code(f.resource_type_filter),
        resource_name: f.resource_name_filter.as_ref().map(|s| s.to_string()),
        pattern_type: PatternType::from_code(f.pattern_type_filter),
        principal: f.principal_filter.as_ref().map(|s| s.to_string()),
        host: f.host_filter.as_ref().map(|s| s.to_string()),
        operation: AclOperation::from_code(f.operation),
        permission_type: AclPermissionType::from_code(f.permission_type),
    }
}

fn failed(code: ErrorCode, message: Option<String>) -> DeleteAclsFilterResult {
    DeleteAclsFilterResult::default()
        .with_error_code(code.code())
        .with_error_message(message.map(str_bytes))
}

fn matching(acl: &proto::AclEntry) -> DeleteAclsMatchingAcl {
    DeleteAclsMatchingAcl::default()
        .with_resource_type(acl.resource_type)
        .with_resource_name(str_bytes(acl.resource_name.clone()))
        .with_pattern_type(acl.pattern_type)
        .with_principal(str_bytes(acl.principal.clone()))
        .with_host(str_bytes(acl.host.clone()))
        .with_operation(acl.operation)
        .with_permission_type(acl.permission_type)
}

/// Handles a DeleteAcls request.
pub fn handle<N: AdminNode + 'static>(
    node: &Arc<N>,
    ctx: RequestContext,
    req: DeleteAclsRequest,
) -> Reply {
    let refusal = acl_api_refusal(
        &**node,
        &ctx,
        AclOperation::Alter,
        "No Authorizer is configured.",
    );
    if let Some((code, message)) = refusal {
        let results = req
            .filters
            .iter()
            .map(|_| failed(code, Some(message.to_string())))
            .collect();
        let resp = DeleteAclsResponse::default().with_filter_results(results);
        return ready(&ctx, &resp);
    }
    let filters: Vec<proto::AclFilterEntry> = req
        .filters
        .iter()
        .map(|f| proto::AclFilterEntry::from_filter(&filter_of(f)))
        .collect();
    drop(req);
    let node = Arc::clone(node);
    Reply::Pending(Box::pin(async move {
        if filters.is_empty() {
            return encode(&ctx, &DeleteAclsResponse::default());
        }
        let count = filters.len();
        let reply = node
            .controller()
            .call(ControllerRequest::DeleteAcls(proto::DeleteAclsRequest {
                filters,
            }))
            .await;
        let results = match reply {
            Ok(ControllerResponse::DeleteAcls(resp)) if resp.results.len() == count => {
                let deleted: Vec<_> = resp
                    .results
                    .iter()
                    .flat_map(|r| r.deleted.iter().map(proto::AclEntry::to_acl))
                    .collect();
                if !deleted.is_empty() {
                    wait_for_image(&*node, |image| {
                        deleted.iter().all(|acl| !image.acls().contains(acl))
                    })
                    .await;
                }
                resp.results
                    .into_iter()
                    .map(|r| {
                        if r.error_code != ErrorCode::NONE.code() {
                            return failed(ErrorCode(r.error_code), r.error_message);
                        }
                        DeleteAclsFilterResult::default()
                            .with_matching_acls(r.deleted.iter().map(matching).collect())
                    })
                    .collect()
            }
            Ok(ControllerResponse::DeleteAcls(_)) => vec![
                failed(
                    ErrorCode::UNKNOWN_SERVER_ERROR,
                    Some("the controller answered for other filters".to_string())
                );
                count
            ],
            Ok(other) => {
                let (code, message) = super::create_topics::controller_failure(&other);
                vec![failed(code, Some(message)); count]
            }
            Err(e) => vec![failed(ErrorCode::REQUEST_TIMED_OUT, Some(e.to_string())); count],
        };
        encode(
            &ctx,
            &DeleteAclsResponse::default().with_filter_results(results),
        )
    }))
}
