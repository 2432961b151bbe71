//! ACLs as more [`Admin`] methods: CreateAcls, DescribeAcls and DeleteAcls (the AdminClient's
//! `createAcls` / `describeAcls` / `deleteAcls`; `kafka-acls.sh`), sent to any broker. A broker
//! forwards creations and deletions to the controller and answers once its metadata image holds
//! them, so a describe right after a create sees the new ACLs.
//!
//! The client keeps its own small copy of Kafka's ACL vocabulary ([`ResourceType`],
//! [`PatternType`], [`AclOperation`], [`AclPermissionType`]) with the wire codes, an ACL
//! ([`AclBinding`]) and a filter of ACLs ([`AclBindingFilter`]), as Kafka's Java client does.
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

/// The one name a CLUSTER resource has.
pub const CLUSTER_NAME: &str = "kafka-cluster";
/// The host that matches every host.
pub const WILDCARD_HOST: &str = "*";
/// The resource name that matches every resource of its type (a LITERAL pattern).
pub const WILDCARD_RESOURCE: &str = "*";

/// Lowest version of the ACL APIs the client sends: v0 has no pattern type, so a prefixed ACL
/// could not be told from a literal one.
const MIN_VERSION: i16 = 1;

macro_rules! acl_enum {
    ($(#[$doc:meta])* $name:ident {
        $($(#[$vdoc:meta])* $variant:ident = $code:literal, $text:literal;)*
    }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum $name {
            $($(#[$vdoc])* $variant,)*
        }

        impl $name {
            /// Every value, in code order.
            pub const ALL_VALUES: &'static [$name] = &[$($name::$variant),*];

            /// The wire code.
            pub fn code(self) -> i8 {
                match self {
                    $($name::$variant => $code,)*
                }
            }

            /// The value of a wire code; UNKNOWN for a code Kafka does not define.
            pub fn from_code(code: i8) -> $name {
                match code {
                    $($code => $name::$variant,)*
                    _ => $name::Unknown,
                }
            }

            /// Kafka's name of the value (`TOPIC`, `PREFIXED`, `IDEMPOTENT_WRITE`, ...).
            pub fn name(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)*
                }
            }

            /// The value of a name, as Kafka's tools accept it: any case, with or without `_`
            /// or `-` between words (`IDEMPOTENT_WRITE`, `IdempotentWrite`,
            /// `idempotent-write`).
            pub fn parse(name: &str) -> Option<$name> {
                let wanted = squash(name);
                Self::ALL_VALUES
                    .iter()
                    .copied()
                    .find(|v| squash(v.name()) == wanted)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.name())
            }
        }
    };
}

/// A name without case or word separators, for [`AclOperation::parse`] and its siblings.
fn squash(name: &str) -> String {
    name.trim()
        .chars()
        .filter(|c| *c != '_' && *c != '-')
        .map(|c| c.to_ascii_uppercase())
        .collect()
}

acl_enum!(
    /// Kafka's `ResourceType`.
    ResourceType {
        Unknown = 0, "UNKNOWN";
        /// In filters only: any type.
        Any = 1, "ANY";
        Topic = 2, "TOPIC";
        Group = 3, "GROUP";
        /// The cluster itself, named [`CLUSTER_NAME`].
        Cluster = 4, "CLUSTER";
        TransactionalId = 5, "TRANSACTIONAL_ID";
        DelegationToken = 6, "DELEGATION_TOKEN";
        User = 7, "USER";
    }
);

acl_enum!(
    /// Kafka's `PatternType`: how an ACL's resource name matches resources.
    PatternType {
        Unknown = 0, "UNKNOWN";
        /// In filters only: any pattern type, names compared exactly.
        Any = 1, "ANY";
        /// In filters only: every ACL that applies to the named resource (literal, `*` and
        /// prefixes of the name).
        Match = 2, "MATCH";
        /// The resource of exactly this name, or every resource for `*`.
        Literal = 3, "LITERAL";
        /// Every resource whose name starts with this one.
        Prefixed = 4, "PREFIXED";
    }
);

acl_enum!(
    /// Kafka's `AclOperation`.
    AclOperation {
        Unknown = 0, "UNKNOWN";
        /// In filters only: any operation.
        Any = 1, "ANY";
        /// Every operation.
        All = 2, "ALL";
        Read = 3, "READ";
        Write = 4, "WRITE";
        Create = 5, "CREATE";
        Delete = 6, "DELETE";
        Alter = 7, "ALTER";
        Describe = 8, "DESCRIBE";
        ClusterAction = 9, "CLUSTER_ACTION";
        DescribeConfigs = 10, "DESCRIBE_CONFIGS";
        AlterConfigs = 11, "ALTER_CONFIGS";
        IdempotentWrite = 12, "IDEMPOTENT_WRITE";
        CreateTokens = 13, "CREATE_TOKENS";
        DescribeTokens = 14, "DESCRIBE_TOKENS";
    }
);

acl_enum!(
    /// Kafka's `AclPermissionType`.
    AclPermissionType {
        Unknown = 0, "UNKNOWN";
        /// In filters only: either.
        Any = 1, "ANY";
        Deny = 2, "DENY";
        Allow = 3, "ALLOW";
    }
);

impl ResourceType {
    /// The operations an ACL on a resource of this type may name besides ALL (Kafka's
    /// `AclEntry.supportedOperations`, which `kafka-acls.sh` checks before adding). Empty for
    /// ANY and UNKNOWN.
    pub fn supported_operations(self) -> &'static [AclOperation] {
        use AclOperation::*;
        match self {
            ResourceType::Topic => &[
                Read,
                Write,
                Create,
                Describe,
                Delete,
                Alter,
                DescribeConfigs,
                AlterConfigs,
            ],
            ResourceType::Group => &[Read, Describe, Delete, DescribeConfigs, AlterConfigs],
            ResourceType::Cluster => &[
                Create,
                ClusterAction,
                DescribeConfigs,
                AlterConfigs,
                IdempotentWrite,
                Alter,
                Describe,
            ],
            ResourceType::TransactionalId => &[Describe, Write],
            ResourceType::DelegationToken => &[Describe],
            ResourceType::User => &[CreateTokens, DescribeTokens],
            ResourceType::Unknown | ResourceType::Any => &[],
        }
    }
}

/// One ACL (Kafka's `AclBinding`, its resource pattern and access control entry side by side):
/// `principal` (`User:alice`, `User:*`) is allowed or denied (`permission_type`) `operation`
/// from `host` (an IP address or `*`) on the resources the pattern covers.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AclBinding {
    pub resource_type: ResourceType,
    pub resource_name: String,
    pub pattern_type: PatternType,
    pub principal: String,
    pub host: String,
    pub operation: AclOperation,
    pub permission_type: AclPermissionType,
}

impl AclBinding {
    /// The filter that matches exactly this ACL.
    pub fn to_filter(&self) -> AclBindingFilter {
        AclBindingFilter {
            resource_type: self.resource_type,
            resource_name: Some(self.resource_name.clone()),
            pattern_type: self.pattern_type,
            principal: Some(self.principal.clone()),
            host: Some(self.host.clone()),
            operation: self.operation,
            permission_type: self.permission_type,
        }
    }
}

impl std::fmt::Display for AclBinding {
    /// Kafka's form: `(principal=User:a, host=*, operation=READ, permissionType=ALLOW) on
    /// TOPIC:LITERAL:orders`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "(principal={}, host={}, operation={}, permissionType={}) on {}:{}:{}",
            self.principal,
            self.host,
            self.operation,
            self.permission_type,
            self.resource_type,
            self.pattern_type,
            self.resource_name
        )
    }
}

/// Which ACLs to describe or delete (Kafka's `AclBindingFilter`): `None` strings match anything,
/// ANY values match any value, and the MATCH pattern type matches every ACL that applies to the
/// named resource.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AclBindingFilter {
    pub resource_type: ResourceType,
    pub resource_name: Option<String>,
    pub pattern_type: PatternType,
    pub principal: Option<String>,
    pub host: Option<String>,
    pub operation: AclOperation,
    pub permission_type: AclPermissionType,
}

impl AclBindingFilter {
    /// The filter that matches every ACL.
    pub fn any() -> AclBindingFilter {
        AclBindingFilter {
            resource_type: ResourceType::Any,
            resource_name: None,
            pattern_type: PatternType::Any,
            principal: None,
            host: None,
            operation: AclOperation::Any,
            permission_type: AclPermissionType::Any,
        }
    }
}

impl std::fmt::Display for AclBindingFilter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let any = |s: &Option<String>| s.clone().unwrap_or_else(|| "<any>".to_string());
        write!(
            f,
            "(principal={}, host={}, operation={}, permissionType={}) on {}:{}:{}",
            any(&self.principal),
            any(&self.host),
            self.operation,
            self.permission_type,
            self.resource_type,
            self.pattern_type,
            any(&self.resource_name)
        )
    }
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

/// One result per binding, in request order; the call's error when the broker refused the
/// whole request.
fn creation_results(resp: CreateAclsResponse, bindings: &[AclBinding]) -> Result<Vec<Result<()>>> {
    if resp.results.len() != bindings.len() {
        return Err(ClientError::Protocol {
            addr: String::new(),
            message: format!(
                "CreateAcls response has {} results for {} ACLs",
                resp.results.len(),
                bindings.len()
            ),
        });
    }
    if let Some(first) = resp.results.first() {
        if refuses_request(first.error_code)
            && resp
                .results
                .iter()
                .all(|r| r.error_code == first.error_code)
        {
            return Err(acl_error(
                first.error_code,
                first.error_message.as_deref(),
                "create ACLs".to_string(),
            ));
        }
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
    if resp.filter_results.len() != filters.len() {
        return Err(ClientError::Protocol {
            addr: String::new(),
            message: format!(
                "DeleteAcls response has {} results for {} filters",
                resp.filter_results.len(),
                filters.len()
            ),
        });
    }
    if let Some(first) = resp.filter_results.first() {
        if refuses_request(first.error_code)
            && resp
                .filter_results
                .iter()
                .all(|r| r.error_code == first.error_code)
        {
            return Err(acl_error(
                first.error_code,
                first.error_message.as_deref(),
                "delete ACLs".to_string(),
            ));
        }
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
                    format!("delete ACLs matching {f}"),
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
    fn names_parse_as_kafkas_tools_take_them() {
        for name in ["IdempotentWrite", "IDEMPOTENT_WRITE", "idempotent-write"] {
            assert_eq!(
                AclOperation::parse(name),
                Some(AclOperation::IdempotentWrite)
            );
        }
        assert_eq!(AclOperation::parse("Read"), Some(AclOperation::Read));
        assert_eq!(AclOperation::parse("reed"), None);
        assert_eq!(
            ResourceType::parse("transactional-id"),
            Some(ResourceType::TransactionalId)
        );
        assert_eq!(PatternType::parse("Prefixed"), Some(PatternType::Prefixed));
        for op in AclOperation::ALL_VALUES {
            assert_eq!(AclOperation::from_code(op.code()), *op);
        }
        assert_eq!(AclOperation::from_code(99), AclOperation::Unknown);
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
        let filters = [b.to_filter(), AclBindingFilter::any()];
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
