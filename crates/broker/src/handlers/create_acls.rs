//! CreateAcls (key 30): adds ACLs to the metadata log (`kafka-acls.sh --add`,
//! `Admin.createAcls`), as Kafka's brokers do: forwarded to the active controller, answered
//! once this broker's image shows them.
//!
//! ```text
//!  ALTER on the cluster? ──no──► CLUSTER_AUTHORIZATION_FAILED for every ACL
//!  authorizer configured? ──no──► SECURITY_DISABLED for every ACL
//!  broker checks (CLUSTER named kafka-cluster, a resource name) ─► INVALID_REQUEST per ACL
//!  the rest ─► ControllerRequest::CreateAcls ─► AccessControlEntryRecord… ─► one result each
//! ```

use std::ops::RangeInclusive;
use std::sync::Arc;

use gregor_controller::protocol as proto;
use gregor_controller::{ControllerRequest, ControllerResponse};
use gregor_metadata::acl::{AclOperation, AclPermissionType, PatternType, ResourceType};
use gregor_metadata::{StandardAcl, CLUSTER_NAME};
use gregor_protocol::error::ErrorCode;
use gregor_protocol::messages::create_acls_request::AclCreation;
use gregor_protocol::messages::create_acls_response::AclCreationResult;
use gregor_protocol::messages::{ApiKey, CreateAclsRequest, CreateAclsResponse};

use super::admin_common::{acl_api_refusal, wait_for_image};
use super::str_bytes;
use crate::admin_node::AdminNode;
use crate::request::{encode, ready, Reply, RequestContext};

/// The API this module serves.
pub const KEY: ApiKey = ApiKey::CreateAcls;
/// The versions served (and advertised in ApiVersions): Kafka 4's.
pub const VERSIONS: RangeInclusive<i16> = 1..=3;

/// The ACL a creation asks for.
pub(crate) fn acl_of(c: &AclCreation) -> StandardAcl {
    StandardAcl {
        resource_type: ResourceType::from_code(c.resource_type),
        resource_name: c.resource_name.to_string(),
        pattern_type: PatternType::from_code(c.resource_pattern_type),
        principal: c.principal.to_string(),
        host: c.host.to_string(),
        operation: AclOperation::from_code(c.operation),
        permission_type: AclPermissionType::from_code(c.permission_type),
    }
}

/// The broker's own checks before the controller's (Kafka's `AclApis.handleCreateAcls`).
fn broker_check(acl: &StandardAcl) -> Result<(), String> {
    if acl.resource_type == ResourceType::Cluster && acl.resource_name != CLUSTER_NAME {
        return Err(format!(
            "The only valid name for the CLUSTER resource is {CLUSTER_NAME}"
        ));
    }
    if acl.resource_name.is_empty() {
        return Err("Invalid empty resource name".to_string());
    }
    Ok(())
}

fn result(code: ErrorCode, message: Option<String>) -> AclCreationResult {
    AclCreationResult::default()
        .with_error_code(code.code())
        .with_error_message(message.filter(|_| code != ErrorCode::NONE).map(str_bytes))
}

/// Handles a CreateAcls request.
pub fn handle<N: AdminNode + 'static>(
    node: &Arc<N>,
    ctx: RequestContext,
    req: CreateAclsRequest,
) -> Reply {
    let refusal = acl_api_refusal(
        &**node,
        &ctx,
        AclOperation::Alter,
        "No Authorizer is configured.",
    );
    if let Some((code, message)) = refusal {
        let results = req
            .creations
            .iter()
            .map(|_| result(code, Some(message.to_string())))
            .collect();
        return ready(&ctx, &CreateAclsResponse::default().with_results(results));
    }
    let acls: Vec<StandardAcl> = req.creations.iter().map(acl_of).collect();
    drop(req);
    let node = Arc::clone(node);
    Reply::Pending(Box::pin(async move {
        // Per ACL: a broker-side refusal, or its place among those sent to the controller.
        let mut slots: Vec<Result<usize, String>> = Vec::with_capacity(acls.len());
        let mut sent = Vec::new();
        for acl in &acls {
            slots.push(broker_check(acl).map(|()| {
                sent.push(proto::AclEntry::from_acl(acl));
                sent.len() - 1
            }));
        }
        let mut answers: Vec<(ErrorCode, Option<String>)> = Vec::new();
        if !sent.is_empty() {
            let count = sent.len();
            let reply = node
                .controller()
                .call(ControllerRequest::CreateAcls(proto::CreateAclsRequest {
                    creations: sent.clone(),
                }))
                .await;
            answers = match reply {
                Ok(ControllerResponse::CreateAcls(resp)) if resp.results.len() == count => resp
                    .results
                    .into_iter()
                    .map(|r| (ErrorCode(r.error_code), r.error_message))
                    .collect(),
                Ok(ControllerResponse::CreateAcls(_)) => vec![
                    (
                        ErrorCode::UNKNOWN_SERVER_ERROR,
                        Some("the controller answered for other ACLs".to_string())
                    );
                    count
                ],
                Ok(other) => {
                    let (code, message) = super::create_topics::controller_failure(&other);
                    vec![(code, Some(message)); count]
                }
                Err(e) => vec![(ErrorCode::REQUEST_TIMED_OUT, Some(e.to_string())); count],
            };
            let created: Vec<StandardAcl> = sent
                .iter()
                .zip(&answers)
                .filter(|(_, (code, _))| *code == ErrorCode::NONE)
                .map(|(entry, _)| entry.to_acl())
                .collect();
            if !created.is_empty() {
                wait_for_image(&*node, |image| {
                    created.iter().all(|acl| image.acls().contains(acl))
                })
                .await;
            }
        }
        let results = slots
            .into_iter()
            .map(|slot| match slot {
                Err(message) => result(ErrorCode::INVALID_REQUEST, Some(message)),
                Ok(i) => match answers.get(i) {
                    Some((code, message)) => result(*code, message.clone()),
                    None => result(ErrorCode::UNKNOWN_SERVER_ERROR, None),
                },
            })
            .collect();
        encode(&ctx, &CreateAclsResponse::default().with_results(results))
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authorizer::test_support::{allow_cluster, ctx_of, secured_broker};
    use crate::broker::Broker;
    use crate::handlers::{delete_acls, describe_acls};
    use crate::request::decode_reply;
    use gregor_protocol::messages::delete_acls_request::DeleteAclsFilter;
    use gregor_protocol::messages::{DeleteAclsRequest, DeleteAclsResponse, DescribeAclsRequest};

    fn broker(dir: &std::path::Path, authorizer: bool) -> Arc<Broker> {
        if authorizer {
            secured_broker(dir)
        } else {
            crate::broker::test_broker(crate::config::BrokerConfig {
                data_dir: dir.to_path_buf(),
                ..Default::default()
            })
        }
    }

    fn creation(name: &str, pattern: PatternType, op: AclOperation) -> AclCreation {
        AclCreation::default()
            .with_resource_type(ResourceType::Topic.code())
            .with_resource_name(str_bytes(name))
            .with_resource_pattern_type(pattern.code())
            .with_principal(str_bytes("User:alice"))
            .with_host(str_bytes("*"))
            .with_operation(op.code())
            .with_permission_type(AclPermissionType::Allow.code())
    }

    async fn create(
        b: &Arc<Broker>,
        user: &str,
        creations: Vec<AclCreation>,
    ) -> Vec<(i16, String)> {
        let ctx = ctx_of(user, KEY, 3);
        let req = CreateAclsRequest::default().with_creations(creations);
        let resp: CreateAclsResponse = decode_reply(handle(b, ctx, req), 3).await;
        resp.results
            .into_iter()
            .map(|r| {
                (
                    r.error_code,
                    r.error_message.map(|m| m.to_string()).unwrap_or_default(),
                )
            })
            .collect()
    }

    fn describe(
        b: &Arc<Broker>,
        user: &str,
        name: Option<&str>,
        pattern: PatternType,
    ) -> (i16, Vec<(String, i8, usize)>) {
        let req = DescribeAclsRequest::default()
            .with_resource_type_filter(ResourceType::Any.code())
            .with_resource_name_filter(name.map(str_bytes))
            .with_pattern_type_filter(pattern.code())
            .with_principal_filter(None)
            .with_host_filter(None)
            .with_operation(AclOperation::Any.code())
            .with_permission_type(AclPermissionType::Any.code());
        let resp = describe_acls::handle(b, &ctx_of(user, describe_acls::KEY, 3), req);
        let resources = resp
            .resources
            .iter()
            .map(|r| (r.resource_name.to_string(), r.pattern_type, r.acls.len()))
            .collect();
        (resp.error_code, resources)
    }

    async fn delete(b: &Arc<Broker>, user: &str, name: &str) -> Vec<(i16, usize)> {
        let filter = DeleteAclsFilter::default()
            .with_resource_type_filter(ResourceType::Topic.code())
            .with_resource_name_filter(Some(str_bytes(name)))
            .with_pattern_type_filter(PatternType::Match.code())
            .with_principal_filter(None)
            .with_host_filter(None)
            .with_operation(AclOperation::Any.code())
            .with_permission_type(AclPermissionType::Any.code());
        let ctx = ctx_of(user, delete_acls::KEY, 3);
        let req = DeleteAclsRequest::default().with_filters(vec![filter]);
        let resp: DeleteAclsResponse = decode_reply(delete_acls::handle(b, ctx, req), 3).await;
        resp.filter_results
            .into_iter()
            .map(|r| (r.error_code, r.matching_acls.len()))
            .collect()
    }

    /// `kafka-acls --add`, `--list`, `--remove` through the three handlers, by a super user.
    #[tokio::test]
    async fn acls_are_created_described_and_deleted() {
        let dir = tempfile::tempdir().expect("tempdir");
        let b = broker(dir.path(), true);
        let results = create(
            &b,
            "admin",
            vec![
                creation("orders", PatternType::Literal, AclOperation::Read),
                creation("orders", PatternType::Literal, AclOperation::Write),
                creation("ord", PatternType::Prefixed, AclOperation::Describe),
                creation("", PatternType::Literal, AclOperation::Read),
                creation("x", PatternType::Match, AclOperation::Read),
            ],
        )
        .await;
        let codes: Vec<i16> = results.iter().map(|r| r.0).collect();
        assert_eq!(codes, vec![0, 0, 0, 42, 42]);
        assert_eq!(results[3].1, "Invalid empty resource name");
        assert_eq!(results[4].1, "Invalid patternType MATCH");
        assert_eq!(
            describe(&b, "admin", None, PatternType::Any),
            (0, vec![("ord".into(), 4, 1), ("orders".into(), 3, 2)])
        );
        assert_eq!(
            describe(&b, "admin", Some("orders"), PatternType::Match),
            (0, vec![("ord".into(), 4, 1), ("orders".into(), 3, 2)])
        );
        assert_eq!(
            describe(&b, "admin", Some("ord"), PatternType::Literal),
            (0, vec![])
        );
        // The ACLs now decide for alice.
        let alice = ctx_of("alice", ApiKey::Produce, 9);
        assert!(crate::authorizer::authorize(
            &b,
            &alice,
            AclOperation::Write,
            ResourceType::Topic,
            "orders"
        ));
        assert!(!crate::authorizer::authorize(
            &b,
            &alice,
            AclOperation::Write,
            ResourceType::Topic,
            "order"
        ));
        assert_eq!(delete(&b, "admin", "orders").await, vec![(0, 3)]);
        assert_eq!(describe(&b, "admin", None, PatternType::Any), (0, vec![]));
        assert_eq!(delete(&b, "admin", "orders").await, vec![(0, 0)]);
    }

    /// Without ALTER (create, delete) or DESCRIBE (list) on the cluster the ACL APIs refuse;
    /// ALTER on the cluster is enough to manage ACLs.
    #[tokio::test]
    async fn managing_acls_needs_alter_and_describe_on_the_cluster() {
        let dir = tempfile::tempdir().expect("tempdir");
        let b = broker(dir.path(), true);
        let read = || vec![creation("t", PatternType::Literal, AclOperation::Read)];
        assert_eq!(create(&b, "bob", read()).await[0].0, 31);
        assert_eq!(describe(&b, "bob", None, PatternType::Any).0, 31);
        assert_eq!(delete(&b, "bob", "t").await, vec![(31, 0)]);
        allow_cluster(&b, "User:bob", AclOperation::Alter);
        assert_eq!(create(&b, "bob", read()).await[0].0, 0);
        assert_eq!(
            describe(&b, "bob", None, PatternType::Any).0,
            0,
            "ALTER implies DESCRIBE"
        );
        assert_eq!(delete(&b, "bob", "t").await, vec![(0, 1)]);
    }

    /// Without `authorizer.class.name`, as Kafka: SECURITY_DISABLED.
    #[tokio::test]
    async fn without_an_authorizer_the_acl_apis_answer_security_disabled() {
        let dir = tempfile::tempdir().expect("tempdir");
        let b = broker(dir.path(), false);
        let results = create(
            &b,
            "x",
            vec![creation("t", PatternType::Literal, AclOperation::Read)],
        )
        .await;
        assert_eq!(
            results,
            vec![(54, "No Authorizer is configured.".to_string())]
        );
        assert_eq!(describe(&b, "x", None, PatternType::Any), (54, vec![]));
        assert_eq!(delete(&b, "x", "t").await, vec![(54, 0)]);
    }
}
