//! DescribeAcls (key 29): the ACLs a filter matches (`kafka-acls.sh --list`,
//! `Admin.describeAcls`), from this broker's metadata image, grouped by resource pattern as
//! Kafka's brokers answer.
//!
//! Needs DESCRIBE on the cluster (else CLUSTER_AUTHORIZATION_FAILED) and an authorizer (else
//! SECURITY_DISABLED, as Kafka without `authorizer.class.name`). A filter with an UNKNOWN
//! field gets INVALID_REQUEST.

use std::collections::BTreeMap;
use std::ops::RangeInclusive;

use gregor_metadata::acl::{AclOperation, AclPermissionType, PatternType, ResourceType};
use gregor_metadata::{AclBindingFilter, AclsImage};
use gregor_protocol::error::ErrorCode;
use gregor_protocol::messages::describe_acls_response::{AclDescription, DescribeAclsResource};
use gregor_protocol::messages::{ApiKey, DescribeAclsRequest, DescribeAclsResponse};

use super::admin_common::acl_api_refusal;
use super::str_bytes;
use crate::admin_node::AdminNode;
use crate::request::RequestContext;

/// The API this module serves.
pub const KEY: ApiKey = ApiKey::DescribeAcls;
/// The versions served (and advertised in ApiVersions): Kafka 4's.
pub const VERSIONS: RangeInclusive<i16> = 1..=3;

/// The filter a request carries.
fn filter_of(req: &DescribeAclsRequest) -> AclBindingFilter {
    AclBindingFilter {
        resource_type: ResourceType::from_code(req.resource_type_filter),
        resource_name: req.resource_name_filter.as_ref().map(|s| s.to_string()),
        pattern_type: PatternType::from_code(req.pattern_type_filter),
        principal: req.principal_filter.as_ref().map(|s| s.to_string()),
        host: req.host_filter.as_ref().map(|s| s.to_string()),
        operation: AclOperation::from_code(req.operation),
        permission_type: AclPermissionType::from_code(req.permission_type),
    }
}

/// The ACLs `filter` matches, one entry per resource pattern (Kafka's
/// `DescribeAclsResponse.aclsResources`), in a stable order.
pub(crate) fn resources(acls: &AclsImage, filter: &AclBindingFilter) -> Vec<DescribeAclsResource> {
    let mut by_pattern: BTreeMap<(i8, String, i8), Vec<AclDescription>> = BTreeMap::new();
    for (_, acl) in acls.matching(filter) {
        by_pattern
            .entry((
                acl.resource_type.code(),
                acl.resource_name.clone(),
                acl.pattern_type.code(),
            ))
            .or_default()
            .push(
                AclDescription::default()
                    .with_principal(str_bytes(acl.principal.clone()))
                    .with_host(str_bytes(acl.host.clone()))
                    .with_operation(acl.operation.code())
                    .with_permission_type(acl.permission_type.code()),
            );
    }
    by_pattern
        .into_iter()
        .map(|((resource_type, name, pattern_type), acls)| {
            DescribeAclsResource::default()
                .with_resource_type(resource_type)
                .with_resource_name(str_bytes(name))
                .with_pattern_type(pattern_type)
                .with_acls(acls)
        })
        .collect()
}

/// Handles a DescribeAcls request.
pub fn handle(
    node: &dyn AdminNode,
    ctx: &RequestContext,
    req: DescribeAclsRequest,
) -> DescribeAclsResponse {
    let error = |code: ErrorCode, message: &str| {
        DescribeAclsResponse::default()
            .with_error_code(code.code())
            .with_error_message(Some(str_bytes(message)))
    };
    let refusal = acl_api_refusal(
        node,
        ctx,
        AclOperation::Describe,
        "No Authorizer is configured on the broker",
    );
    if let Some((code, message)) = refusal {
        return error(code, message);
    }
    let filter = filter_of(&req);
    if filter.is_unknown() {
        return error(
            ErrorCode::INVALID_REQUEST,
            "The filter has an UNKNOWN resource type, pattern type, operation or permission type",
        );
    }
    let image = node.image();
    DescribeAclsResponse::default().with_resources(resources(image.acls(), &filter))
}
