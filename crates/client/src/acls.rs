//! ACLs as more [`Admin`] methods: CreateAcls, DescribeAcls and DeleteAcls (the AdminClient's
//! `createAcls` / `describeAcls` / `deleteAcls`; `kafka-acls.sh`), sent to any broker. A broker
//! forwards creations and deletions to the controller and answers once its metadata image holds
//! them, so a describe right after a create sees the new ACLs.
//!
//! The ACL vocabulary ([`ResourceType`], [`PatternType`], [`AclOperation`],
//! [`AclPermissionType`] with their wire codes and names), an ACL ([`AclBinding`], Kafka's
//! `StandardAcl` in gregor-metadata) and a filter of ACLs ([`AclBindingFilter`]) are
//! gregor-metadata's, re-exported here; this module adds what only a client needs: the requests
//! and responses, and readable errors.
//!
//! ```text
//!  create_acls(&[AclBinding])        ─► CreateAcls   ─► one Result per binding
//!  describe_acls(&AclBindingFilter)  ─► DescribeAcls ─► the matching ACLs, sorted
//!  delete_acls(&[AclBindingFilter])  ─► DeleteAcls   ─► per filter, the ACLs it removed
//! ```
//!
//! A broker refuses a whole request with SECURITY_DISABLED (no authorizer) or
//! CLUSTER_AUTHORIZATION_FAILED (the principal may not manage ACLs), once per binding or filter;
//! those come back as the error of the call, with a message saying what to do, rather than as
//! the same error on every binding.

use kafka_protocol::messages::create_acls_request::AclCreation;
use kafka_protocol::messages::delete_acls_request::DeleteAclsFilter;
use kafka_protocol::messages::{
    ApiKey, CreateAclsRequest, CreateAclsResponse, DeleteAclsRequest, DeleteAclsResponse,
    DescribeAclsRequest, DescribeAclsResponse,
};
use kafka_protocol::protocol::StrBytes;

use gregor_protocol::error::ErrorCode;

use crate::admin::Admin;
use crate::connection::Connection;
use crate::error::{ClientError, Result};

pub use gregor_metadata::acl::{
    AclBindingFilter, AclOperation, AclPermissionType, PatternType, ResourceType,
    StandardAcl as AclBinding, CLUSTER_NAME, WILDCARD_HOST, WILDCARD_RESOURCE,
};

/// Lowest version of the ACL APIs the client sends: v0 has no pattern type, so a prefixed ACL
/// could not be told from a literal one.
const MIN_VERSION: i16 = 1;

/// The filter that matches exactly `acl` (to delete one ACL).
pub fn exact_filter(acl: &AclBinding) -> AclBindingFilter {
    AclBindingFilter {
        resource_type: acl.resource_type,
        resource_name: Some(acl.resource_name.clone()),
        pattern_type: acl.pattern_type,
        principal: Some(acl.principal.clone()),
        host: Some(acl.host.clone()),
        operation: acl.operation,
        permission_type: acl.permission_type,
    }
}

/// A filter as an error says it, in the form of an ACL with `<any>` for what it leaves open:
/// `(principal=<any>, host=<any>, operation=ANY, permissionType=ANY) on TOPIC:LITERAL:orders`.
fn filter_text(f: &AclBindingFilter) -> String {
    let any = |s: &Option<String>| s.as_deref().unwrap_or("<any>").to_string();
    format!(
        "(principal={}, host={}, operation={}, permissionType={}) on {}:{}:{}",
        any(&f.principal),
        any(&f.host),
        f.operation,
        f.permission_type,
        f.resource_type,
        f.pattern_type,
        any(&f.resource_name)
    )
}

fn str_bytes(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_owned())
}

/// The error of a non-zero ACL error code, its message made readable where Kafka's is terse.
/// `context` says what was being done.
fn acl_error(code: i16, message: Option<&str>, context: String) -> ClientError {
    let code = ErrorCode(code);
    let message = match code {
        ErrorCode::SECURITY_DISABLED => Some(
            "no authorizer is configured on the broker (start it with \
             authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer)"
                .to_string(),
        ),
        ErrorCode::CLUSTER_AUTHORIZATION_FAILED => Some(
            "this principal may not manage ACLs: it needs ALTER on the cluster \
             (DESCRIBE to list them), or to be a super user"
                .to_string(),
        ),
        _ => message.map(str::to_owned),
    };
    ClientError::Kafka {
        code,
        message,
        context,
    }
}

/// Whether a code refuses the whole request rather than one binding or filter of it.
fn refuses_request(code: i16) -> bool {
    code == ErrorCode::SECURITY_DISABLED.0 || code == ErrorCode::CLUSTER_AUTHORIZATION_FAILED.0
}

/// The negotiated version of an ACL API, refused below [`MIN_VERSION`].
fn acl_version(conn: &Connection, key: ApiKey) -> Result<i16> {
    let version = conn.version(key)?;
    if version < MIN_VERSION {
        return Err(ClientError::UnsupportedApi {
            addr: String::new(),
            api: format!("{key:?} v{MIN_VERSION}+ (with pattern types)"),
        });
    }
    Ok(version)
}

fn creation(b: &AclBinding) -> AclCreation {
    AclCreation::default()
        .with_resource_type(b.resource_type.code())
        .with_resource_name(str_bytes(&b.resource_name))
        .with_resource_pattern_type(b.pattern_type.code())
        .with_principal(str_bytes(&b.principal))
        .with_host(str_bytes(&b.host))
        .with_operation(b.operation.code())
        .with_permission_type(b.permission_type.code())
}

fn delete_filter(f: &AclBindingFilter) -> DeleteAclsFilter {
    DeleteAclsFilter::default()
        .with_resource_type_filter(f.resource_type.code())
        .with_resource_name_filter(f.resource_name.as_deref().map(str_bytes))
        .with_pattern_type_filter(f.pattern_type.code())
        .with_principal_filter(f.principal.as_deref().map(str_bytes))
        .with_host_filter(f.host.as_deref().map(str_bytes))
        .with_operation(f.operation.code())
        .with_permission_type(f.permission_type.code())
}

fn describe_request(f: &AclBindingFilter) -> DescribeAclsRequest {
    DescribeAclsRequest::default()
        .with_resource_type_filter(f.resource_type.code())
        .with_resource_name_filter(f.resource_name.as_deref().map(str_bytes))
        .with_pattern_type_filter(f.pattern_type.code())
        .with_principal_filter(f.principal.as_deref().map(str_bytes))
        .with_host_filter(f.host.as_deref().map(str_bytes))
        .with_operation(f.operation.code())
        .with_permission_type(f.permission_type.code())
}

/// A response must have one result per binding or filter sent.
fn check_count(api: &str, got: usize, sent: usize, what: &str) -> Result<()> {
    if got == sent {
        return Ok(());
    }
    Err(ClientError::Protocol {
        addr: String::new(),
        message: format!("{api} response has {got} results for {sent} {what}"),
    })
}

/// The call's error when every result of a response carries the same code that refuses the
/// whole request (see [`refuses_request`]); `None` when the results are each their own.
fn whole_request_refusal<'a>(
    mut results: impl Iterator<Item = (i16, Option<&'a str>)>,
    context: &str,
) -> Option<ClientError> {
    let (code, message) = results.next()?;
    if refuses_request(code) && results.all(|(c, _)| c == code) {
        return Some(acl_error(code, message, context.to_string()));
    }
    None
}

/// One result per binding, in request order; the call's error when the broker refused the
/// whole request.
fn creation_results(resp: CreateAclsResponse, bindings: &[AclBinding]) -> Result<Vec<Result<()>>> {
    check_count("CreateAcls", resp.results.len(), bindings.len(), "ACLs")?;
    let codes = resp
        .results
        .iter()
        .map(|r| (r.error_code, r.error_message.as_deref()));
    if let Some(e) = whole_request_refusal(codes, "create ACLs") {
        return Err(e);
    }
    Ok(resp
        .results
        .into_iter()
        .zip(bindings)
        .map(|(r, b)| {
            if r.error_code == 0 {
                Ok(())
            } else {
                Err(acl_error(
                    r.error_code,
                    r.error_message.as_deref(),
                    format!("create ACL {b}"),
                ))
            }
        })
        .collect())
}

/// The ACLs of a DescribeAcls response, sorted.
fn described(resp: DescribeAclsResponse) -> Result<Vec<AclBinding>> {
    if resp.error_code != 0 {
        return Err(acl_error(
            resp.error_code,
            resp.error_message.as_deref(),
            "describe ACLs".to_string(),
        ));
    }
    let mut out: Vec<AclBinding> = resp
        .resources
        .into_iter()
        .flat_map(|r| {
            let resource_type = ResourceType::from_code(r.resource_type);
            let pattern_type = PatternType::from_code(r.pattern_type);
            let name = r.resource_name.to_string();
            r.acls.into_iter().map(move |a| AclBinding {
                resource_type,
                resource_name: name.clone(),
                pattern_type,
                principal: a.principal.to_string(),
                host: a.host.to_string(),
                operation: AclOperation::from_code(a.operation),
                permission_type: AclPermissionType::from_code(a.permission_type),
            })
        })
        .collect();
    out.sort();
    out.dedup();
    Ok(out)
}

/// Per filter, in request order, the ACLs it removed (sorted); the call's error when the broker
/// refused the whole request.
fn deletion_results(
    resp: DeleteAclsResponse,
    filters: &[AclBindingFilter],
) -> Result<Vec<Result<Vec<AclBinding>>>> {
    check_count(
        "DeleteAcls",
        resp.filter_results.len(),
        filters.len(),
        "filters",
    )?;
    let codes = resp
        .filter_results
        .iter()
        .map(|r| (r.error_code, r.error_message.as_deref()));
    if let Some(e) = whole_request_refusal(codes, "delete ACLs") {
        return Err(e);
    }
    Ok(resp
        .filter_results
        .into_iter()
        .zip(filters)
        .map(|(r, f)| {
            if r.error_code != 0 {
                return Err(acl_error(
                    r.error_code,
                    r.error_message.as_deref(),
                    format!("delete ACLs matching {}", filter_text(f)),
                ));
            }
            let mut removed = Vec::with_capacity(r.matching_acls.len());
            for m in r.matching_acls {
                let acl = AclBinding {
                    resource_type: ResourceType::from_code(m.resource_type),
                    resource_name: m.resource_name.to_string(),
                    pattern_type: PatternType::from_code(m.pattern_type),
                    principal: m.principal.to_string(),
                    host: m.host.to_string(),
                    operation: AclOperation::from_code(m.operation),
                    permission_type: AclPermissionType::from_code(m.permission_type),
                };
                if m.error_code != 0 {
                    return Err(acl_error(
                        m.error_code,
                        m.error_message.as_deref(),
                        format!("delete ACL {acl}"),
                    ));
                }
                removed.push(acl);
            }
            removed.sort();
            Ok(removed)
        })
        .collect())
}

impl Admin {
    /// Creates ACLs (CreateAcls); one result per binding, in order: the broker checks and
    /// creates each on its own.
    pub async fn create_acls(&mut self, bindings: &[AclBinding]) -> Result<Vec<Result<()>>> {
        if bindings.is_empty() {
            return Ok(Vec::new());
        }
        let conn = self.cluster().control().await?;
        let version = acl_version(conn, ApiKey::CreateAcls)?;
        let req =
            CreateAclsRequest::default().with_creations(bindings.iter().map(creation).collect());
        let resp = conn.send_at(&req, version).await?;
        creation_results(resp, bindings)
    }

    /// The ACLs `filter` matches (DescribeAcls), sorted.
    pub async fn describe_acls(&mut self, filter: &AclBindingFilter) -> Result<Vec<AclBinding>> {
        let conn = self.cluster().control().await?;
        let version = acl_version(conn, ApiKey::DescribeAcls)?;
        let resp = conn.send_at(&describe_request(filter), version).await?;
        described(resp)
    }

    /// Deletes the ACLs the filters match (DeleteAcls); per filter, in order, the ACLs it
    /// removed. An ACL two filters match is reported by each.
    pub async fn delete_acls(
        &mut self,
        filters: &[AclBindingFilter],
    ) -> Result<Vec<Result<Vec<AclBinding>>>> {
        if filters.is_empty() {
            return Ok(Vec::new());
        }
        let conn = self.cluster().control().await?;
        let version = acl_version(conn, ApiKey::DeleteAcls)?;
        let req =
            DeleteAclsRequest::default().with_filters(filters.iter().map(delete_filter).collect());
        let resp = conn.send_at(&req, version).await?;
        deletion_results(resp, filters)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::create_acls_response::AclCreationResult;
    use kafka_protocol::messages::delete_acls_response::{
        DeleteAclsFilterResult, DeleteAclsMatchingAcl,
    };
    use kafka_protocol::messages::describe_acls_response::{AclDescription, DescribeAclsResource};

    fn read(topic: &str) -> AclBinding {
        AclBinding {
            resource_type: ResourceType::Topic,
            resource_name: topic.to_string(),
            pattern_type: PatternType::Literal,
            principal: "User:alice".to_string(),
            host: WILDCARD_HOST.to_string(),
            operation: AclOperation::Read,
            permission_type: AclPermissionType::Allow,
        }
    }

    fn created(codes: &[(i16, Option<&str>)]) -> CreateAclsResponse {
        CreateAclsResponse::default().with_results(
            codes
                .iter()
                .map(|(c, m)| {
                    AclCreationResult::default()
                        .with_error_code(*c)
                        .with_error_message(m.map(str_bytes))
                })
                .collect(),
        )
    }

    #[test]
    fn creations_report_each_binding() {
        let bindings = [read("a"), read("")];
        let results = creation_results(
            created(&[(0, None), (42, Some("Invalid empty resource name"))]),
            &bindings,
        )
        .expect("per-binding results");
        assert!(results[0].is_ok());
        let err = results[1].as_ref().expect_err("refused");
        assert_eq!(err.code(), Some(ErrorCode::INVALID_REQUEST));
        assert!(
            err.to_string().ends_with(": Invalid empty resource name"),
            "{err}"
        );
    }

    #[test]
    fn a_broker_without_an_authorizer_fails_the_call_readably() {
        let bindings = [read("a"), read("b")];
        let message = Some("No Authorizer is configured.");
        let err = creation_results(created(&[(54, message), (54, message)]), &bindings)
            .expect_err("the whole request is refused");
        assert_eq!(err.code(), Some(ErrorCode::SECURITY_DISABLED));
        assert!(
            err.to_string()
                .contains("no authorizer is configured on the broker"),
            "{err}"
        );

        let err = described(
            DescribeAclsResponse::default()
                .with_error_code(31)
                .with_error_message(Some(str_bytes("Cluster authorization failed."))),
        )
        .expect_err("refused");
        assert_eq!(err.code(), Some(ErrorCode::CLUSTER_AUTHORIZATION_FAILED));
        assert!(err.to_string().contains("ALTER on the cluster"), "{err}");

        let resp = DeleteAclsResponse::default().with_filter_results(vec![
            DeleteAclsFilterResult::default()
                .with_error_code(54)
                .with_error_message(message.map(str_bytes)),
        ]);
        let err = deletion_results(resp, &[AclBindingFilter::any()]).expect_err("refused");
        assert_eq!(err.code(), Some(ErrorCode::SECURITY_DISABLED));
    }

    #[test]
    fn described_resources_flatten_into_sorted_bindings() {
        let acl = |principal: &str, op: AclOperation| {
            AclDescription::default()
                .with_principal(str_bytes(principal))
                .with_host(str_bytes("*"))
                .with_operation(op.code())
                .with_permission_type(AclPermissionType::Allow.code())
        };
        let resp = DescribeAclsResponse::default().with_resources(vec![
            DescribeAclsResource::default()
                .with_resource_type(ResourceType::Topic.code())
                .with_resource_name(str_bytes("b"))
                .with_pattern_type(PatternType::Literal.code())
                .with_acls(vec![acl("User:alice", AclOperation::Read)]),
            DescribeAclsResource::default()
                .with_resource_type(ResourceType::Topic.code())
                .with_resource_name(str_bytes("a"))
                .with_pattern_type(PatternType::Literal.code())
                .with_acls(vec![acl("User:alice", AclOperation::Read)]),
        ]);
        assert_eq!(described(resp).expect("ok"), vec![read("a"), read("b")]);
    }

    #[test]
    fn deletions_return_what_each_filter_removed() {
        let b = read("a");
        let matching = DeleteAclsMatchingAcl::default()
            .with_resource_type(b.resource_type.code())
            .with_resource_name(str_bytes(&b.resource_name))
            .with_pattern_type(b.pattern_type.code())
            .with_principal(str_bytes(&b.principal))
            .with_host(str_bytes(&b.host))
            .with_operation(b.operation.code())
            .with_permission_type(b.permission_type.code());
        let resp = DeleteAclsResponse::default().with_filter_results(vec![
            DeleteAclsFilterResult::default().with_matching_acls(vec![matching]),
            DeleteAclsFilterResult::default(),
        ]);
        let filters = [exact_filter(&b), AclBindingFilter::any()];
        let results = deletion_results(resp, &filters).expect("ok");
        assert_eq!(results[0].as_ref().expect("ok"), &vec![b]);
        assert!(results[1].as_ref().expect("ok").is_empty());
    }

    #[test]
    fn bindings_read_as_kafka_prints_them() {
        assert_eq!(
            read("orders").to_string(),
            "(principal=User:alice, host=*, operation=READ, permissionType=ALLOW) on \
             TOPIC:LITERAL:orders"
        );
    }
}
