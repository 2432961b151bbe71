//! Authorization of requests (Kafka's `AuthHelper` over its `StandardAuthorizer`): the checks
//! handlers make before they act, against the ACLs of the metadata log.
//!
//! ```text
//!  handler ─► authorize(node, ctx, op, resource) ─► no authorizer configured? allowed
//!                                                 └► StandardAuthorizer::authorize(
//!                                                      image.acls(), User:<principal>,
//!                                                      client IP, op, resource)
//!                                                      denied ─► INFO audit line
//! ```
//!
//! With `authorizer.class.name` empty (the default) every check passes, as in Kafka. The
//! decision itself is gregor-metadata's [`StandardAuthorizer`](gregor_metadata::StandardAuthorizer); this module only puts the
//! request's principal and address to it and writes Kafka's audit line for a denial (target
//! `gregor::authorizer`, Kafka's `kafka.authorizer.logger`).

use std::collections::HashSet;

use gregor_metadata::{AclOperation, MatchingRule, ResourceType, CLUSTER_NAME};

use crate::admin_node::AdminNode;
use crate::request::RequestContext;

pub use gregor_metadata::acl::all_operations;

/// The principal ACLs name for a request: Kafka's `KafkaPrincipal.toString()`.
pub fn principal_of(ctx: &RequestContext) -> String {
    format!("User:{}", ctx.principal.name())
}

/// The client's IP address as ACLs name hosts (`127.0.0.1`, without the `/` of group
/// descriptions).
pub fn host_of(ctx: &RequestContext) -> &str {
    ctx.client_host.trim_start_matches('/')
}

/// [`authorize`] and [`authorize_quietly`]: allowed without an authorizer; a denial is
/// audited if `log_if_denied`.
/// One request's standing before the authorizer: its principal and address and the ACLs of the
/// image applied now, taken once for however many resources the request names.
struct Check<'a> {
    authorizer: &'a gregor_metadata::StandardAuthorizer,
    principal: String,
    host: &'a str,
    image: std::sync::Arc<gregor_metadata::MetadataImage>,
}

impl<'a> Check<'a> {
    /// `None` without an authorizer: everything is allowed.
    fn of(node: &'a dyn AdminNode, ctx: &'a RequestContext) -> Option<Check<'a>> {
        let authorizer = node.config().authorizer.as_ref()?;
        Some(Check {
            authorizer,
            principal: principal_of(ctx),
            host: host_of(ctx),
            image: node.image(),
        })
    }

    fn allows(
        &self,
        ctx: &RequestContext,
        op: AclOperation,
        resource_type: ResourceType,
        name: &str,
        log_if_denied: bool,
    ) -> bool {
        let rule = self.authorizer.authorize(
            self.image.acls(),
            &self.principal,
            self.host,
            op,
            resource_type,
            name,
        );
        let allowed = rule.allowed();
        if !allowed && log_if_denied {
            audit_denied(
                &self.principal,
                self.host,
                op,
                resource_type,
                name,
                ctx,
                &rule,
            );
        }
        allowed
    }
}

fn decide(
    node: &dyn AdminNode,
    ctx: &RequestContext,
    op: AclOperation,
    resource_type: ResourceType,
    name: &str,
    log_if_denied: bool,
) -> bool {
    Check::of(node, ctx).is_none_or(|c| c.allows(ctx, op, resource_type, name, log_if_denied))
}

fn audit_denied(
    principal: &str,
    host: &str,
    op: AclOperation,
    resource_type: ResourceType,
    name: &str,
    ctx: &RequestContext,
    rule: &MatchingRule,
) {
    tracing::info!(
        target: "gregor::authorizer",
        "Principal = {principal} is Denied operation = {op} from host = {host} on resource = \
         {resource_type}:LITERAL:{name} for request = {:?} based on rule {rule}",
        ctx.api
    );
}

/// May the request's principal do `op` on the resource? Always, without an authorizer. A
/// denial is written to the audit log.
pub fn authorize(
    node: &dyn AdminNode,
    ctx: &RequestContext,
    op: AclOperation,
    resource_type: ResourceType,
    name: &str,
) -> bool {
    decide(node, ctx, op, resource_type, name, true)
}

/// [`authorize`] without the audit line, for checks whose denial is not an error (Kafka's
/// `logIfDenied = false`: e.g. CREATE on the cluster before falling back to the topic).
pub fn authorize_quietly(
    node: &dyn AdminNode,
    ctx: &RequestContext,
    op: AclOperation,
    resource_type: ResourceType,
    name: &str,
) -> bool {
    decide(node, ctx, op, resource_type, name, false)
}

/// May the request's principal do `op` on the cluster?
pub fn authorize_cluster(node: &dyn AdminNode, ctx: &RequestContext, op: AclOperation) -> bool {
    authorize(node, ctx, op, ResourceType::Cluster, CLUSTER_NAME)
}

/// The names among `names` the principal may do `op` on (each name checked once; Kafka's
/// `filterByAuthorized`).
pub fn filter_authorized<'a>(
    node: &dyn AdminNode,
    ctx: &RequestContext,
    op: AclOperation,
    resource_type: ResourceType,
    names: impl IntoIterator<Item = &'a str>,
) -> HashSet<String> {
    let check = Check::of(node, ctx);
    let mut seen = HashSet::new();
    let mut allowed = HashSet::new();
    for name in names {
        if !seen.insert(name) {
            continue;
        }
        if check
            .as_ref()
            .is_none_or(|c| c.allows(ctx, op, resource_type, name, true))
        {
            allowed.insert(name.to_string());
        }
    }
    allowed
}

/// May the principal do `op` on some resource of `resource_type` (Kafka's
/// `authorizeByResourceType`)? Always, without an authorizer.
pub fn authorize_by_resource_type(
    node: &dyn AdminNode,
    ctx: &RequestContext,
    op: AclOperation,
    resource_type: ResourceType,
) -> bool {
    Check::of(node, ctx).is_none_or(|c| {
        c.authorizer.authorize_by_resource_type(
            c.image.acls(),
            &c.principal,
            c.host,
            op,
            resource_type,
        )
    })
}

/// The `authorized_operations` bit field of a resource for the request's principal (every
/// supported operation without an authorizer; Kafka's `AuthHelper.authorizedOperations`).
pub fn authorized_operations(
    node: &dyn AdminNode,
    ctx: &RequestContext,
    resource_type: ResourceType,
    name: &str,
) -> i32 {
    match Check::of(node, ctx) {
        None => all_operations(resource_type),
        Some(c) => c.authorizer.authorized_operations(
            c.image.acls(),
            &c.principal,
            c.host,
            resource_type,
            name,
        ),
    }
}

/// Whether an authorizer is configured (the ACL APIs answer SECURITY_DISABLED without one).
pub fn enabled(node: &dyn AdminNode) -> bool {
    node.config().authorizer.is_some()
}

/// Test support for handlers' authorization tests: a broker with an authorizer, ACLs put
/// straight into its image, and request contexts of a given user.
#[cfg(test)]
pub(crate) mod test_support {
    use std::sync::Arc;

    use gregor_metadata::acl::{AclPermissionType, PatternType, StandardAcl};
    use gregor_metadata::{AccessControlEntryRecord, AclOperation, MetadataRecord, ResourceType};
    use gregor_protocol::messages::ApiKey;

    use crate::broker::Broker;
    use crate::request::{Principal, RequestContext};

    /// `config` with the standard authorizer on: `User:admin` is a super user and a resource
    /// without ACLs is denied.
    pub(crate) fn with_authorizer(
        mut config: crate::config::BrokerConfig,
    ) -> crate::config::BrokerConfig {
        config.authorizer = Some(gregor_metadata::StandardAuthorizer {
            super_users: vec!["User:admin".into()],
            allow_everyone_if_no_acl_found: false,
        });
        config
    }

    /// Puts an ACL into the broker's image: `principal` (`User:<name>`) from any host gets
    /// `permission` for `operation` on the literal resource.
    pub(crate) fn acl(
        broker: &Arc<Broker>,
        principal: &str,
        operation: AclOperation,
        resource_type: ResourceType,
        name: &str,
        permission: AclPermissionType,
    ) {
        broker
            .replicas
            .apply_records(&[MetadataRecord::AccessControlEntry(
                AccessControlEntryRecord {
                    id: uuid::Uuid::new_v4(),
                    acl: StandardAcl {
                        resource_type,
                        resource_name: name.to_string(),
                        pattern_type: PatternType::Literal,
                        principal: principal.to_string(),
                        host: "*".to_string(),
                        operation,
                        permission_type: permission,
                    },
                },
            )]);
    }

    /// A test broker in `dir` with the standard authorizer on ([`with_authorizer`]).
    pub(crate) fn secured_broker(dir: &std::path::Path) -> Arc<Broker> {
        secured_broker_with(dir, |_| {})
    }

    /// [`secured_broker`] with the rest of its config set by `shape`.
    pub(crate) fn secured_broker_with(
        dir: &std::path::Path,
        shape: impl FnOnce(&mut crate::config::BrokerConfig),
    ) -> Arc<Broker> {
        let mut config = crate::config::BrokerConfig {
            data_dir: dir.to_path_buf(),
            ..Default::default()
        };
        shape(&mut config);
        crate::broker::test_broker(with_authorizer(config))
    }

    /// [`acl`] with ALLOW.
    pub(crate) fn allow(
        broker: &Arc<Broker>,
        principal: &str,
        operation: AclOperation,
        resource_type: ResourceType,
        name: &str,
    ) {
        acl(
            broker,
            principal,
            operation,
            resource_type,
            name,
            AclPermissionType::Allow,
        );
    }

    /// [`allow`] on a topic.
    pub(crate) fn allow_topic(b: &Arc<Broker>, principal: &str, op: AclOperation, name: &str) {
        allow(b, principal, op, ResourceType::Topic, name);
    }

    /// [`allow`] on a group.
    pub(crate) fn allow_group(b: &Arc<Broker>, principal: &str, op: AclOperation, name: &str) {
        allow(b, principal, op, ResourceType::Group, name);
    }

    /// [`allow`] on a transactional id.
    pub(crate) fn allow_transactional_id(
        b: &Arc<Broker>,
        principal: &str,
        op: AclOperation,
        name: &str,
    ) {
        allow(b, principal, op, ResourceType::TransactionalId, name);
    }

    /// [`allow`] on the cluster.
    pub(crate) fn allow_cluster(b: &Arc<Broker>, principal: &str, op: AclOperation) {
        allow(
            b,
            principal,
            op,
            ResourceType::Cluster,
            gregor_metadata::CLUSTER_NAME,
        );
    }

    /// A request context of `api` at `version` from `user` at 127.0.0.1.
    pub(crate) fn ctx_of(user: &str, api: ApiKey, version: i16) -> RequestContext {
        let mut ctx = RequestContext::for_test(api, version);
        ctx.principal = Principal::user(user);
        ctx
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gregor_metadata::acl::{AclPermissionType, PatternType, StandardAcl};
    use gregor_metadata::{AccessControlEntryRecord, MetadataRecord};
    use gregor_protocol::messages::ApiKey;

    fn ctx(user: &str) -> RequestContext {
        test_support::ctx_of(user, ApiKey::Produce, 9)
    }

    #[tokio::test]
    async fn without_an_authorizer_everything_passes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let b = crate::broker::test_broker(crate::config::BrokerConfig {
            data_dir: dir.path().to_path_buf(),
            ..Default::default()
        });
        assert!(authorize(
            &b,
            &ctx("x"),
            AclOperation::Write,
            ResourceType::Topic,
            "t"
        ));
        assert!(authorize_by_resource_type(
            &b,
            &ctx("x"),
            AclOperation::Write,
            ResourceType::Topic
        ));
        assert_eq!(
            authorized_operations(&b, &ctx("x"), ResourceType::Group, "g"),
            all_operations(ResourceType::Group)
        );
        assert!(!enabled(&b));
    }

    #[tokio::test]
    async fn the_image_acls_decide_for_the_request_principal_and_host() {
        let dir = tempfile::tempdir().expect("tempdir");
        let b = test_support::secured_broker(dir.path());
        assert!(!authorize(
            &b,
            &ctx("alice"),
            AclOperation::Write,
            ResourceType::Topic,
            "t"
        ));
        b.replicas
            .apply_records(&[MetadataRecord::AccessControlEntry(
                AccessControlEntryRecord {
                    id: uuid::Uuid::from_u128(1),
                    acl: StandardAcl {
                        resource_type: ResourceType::Topic,
                        resource_name: "t".into(),
                        pattern_type: PatternType::Literal,
                        principal: "User:alice".into(),
                        host: "127.0.0.1".into(),
                        operation: AclOperation::Write,
                        permission_type: AclPermissionType::Allow,
                    },
                },
            )]);
        assert!(authorize(
            &b,
            &ctx("alice"),
            AclOperation::Write,
            ResourceType::Topic,
            "t"
        ));
        assert!(authorize(
            &b,
            &ctx("alice"),
            AclOperation::Describe,
            ResourceType::Topic,
            "t"
        ));
        assert!(!authorize(
            &b,
            &ctx("bob"),
            AclOperation::Write,
            ResourceType::Topic,
            "t"
        ));
        assert!(authorize(
            &b,
            &ctx("admin"),
            AclOperation::Alter,
            ResourceType::Cluster,
            CLUSTER_NAME
        ));
        let mut elsewhere = ctx("alice");
        elsewhere.client_host = "/10.1.1.1".into();
        assert!(!authorize(
            &b,
            &elsewhere,
            AclOperation::Write,
            ResourceType::Topic,
            "t"
        ));
        assert_eq!(
            filter_authorized(
                &b,
                &ctx("alice"),
                AclOperation::Write,
                ResourceType::Topic,
                ["t", "u", "t"]
            ),
            HashSet::from(["t".to_string()])
        );
        assert!(authorize_by_resource_type(
            &b,
            &ctx("alice"),
            AclOperation::Write,
            ResourceType::Topic
        ));
        assert!(!authorize_by_resource_type(
            &b,
            &ctx("bob"),
            AclOperation::Write,
            ResourceType::Topic
        ));
        assert!(enabled(&b));
    }
}
