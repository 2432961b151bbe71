//! AlterConfigs (key 33, the older, non-incremental form): the given configs become the topic's
//! whole set of overrides (those not named are removed), checked like CreateTopics' configs and
//! committed through the active controller (see IncrementalAlterConfigs). A BROKER resource
//! takes the whole set of its dynamic broker configs the same way.
//!
//! Authorization is Kafka's (`ControllerApis.authorizeAlterResource`): ALTER_CONFIGS on the
//! topic (TOPIC_AUTHORIZATION_FAILED, before whether it exists), on the cluster for a broker
//! resource (CLUSTER_AUTHORIZATION_FAILED, after the broker's own checks of the changes, which
//! Kafka's brokers make before forwarding), on the group for a group resource. BROKER_LOGGER is
//! refused (INVALID_REQUEST) before any check, as Kafka's legacy AlterConfigs refuses it.

use std::collections::BTreeMap;
use std::ops::RangeInclusive;
use std::sync::Arc;

use gregor_protocol::error::ErrorCode;
use gregor_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
use gregor_protocol::messages::ApiKey;
use gregor_protocol::messages::{AlterConfigsRequest, AlterConfigsResponse};

use super::describe_configs::RESOURCE_BROKER_LOGGER;
use super::incremental_alter_configs::{alter_resource, Checker, ConfigChange};
use super::str_bytes;
use crate::admin_node::{AdminListener, AdminNode};
use crate::request::{encode, Reply, RequestContext};

/// The API this module serves.
pub const KEY: ApiKey = ApiKey::AlterConfigs;
/// The versions served (and advertised in ApiVersions).
pub const VERSIONS: RangeInclusive<i16> = 0..=2;

/// The changes that make `wanted` the whole set of overrides, or the first bad entry.
fn replace_all(
    current: &BTreeMap<String, String>,
    wanted: &[(String, Option<String>)],
    checker: &Checker<'_>,
) -> Result<Vec<ConfigChange>, (ErrorCode, String)> {
    let mut out = Vec::new();
    for (key, value) in wanted {
        checker.known(key)?;
        let Some(value) = value else {
            return Err((
                ErrorCode::INVALID_REQUEST,
                format!("Null value not supported for config {key}"),
            ));
        };
        checker.value(key, value)?;
        out.push((key.clone(), Some(value.clone())));
    }
    for key in current.keys() {
        if !wanted.iter().any(|(k, _)| k == key) {
            out.push((key.clone(), None));
        }
    }
    Ok(out)
}

/// Handles an AlterConfigs request.
pub fn handle<N: AdminNode + 'static>(
    node: &Arc<N>,
    ctx: RequestContext,
    req: AlterConfigsRequest,
) -> Reply {
    let node = Arc::clone(node);
    Reply::Pending(Box::pin(async move {
        let mut responses = Vec::new();
        for r in &req.resources {
            let name = r.resource_name.to_string();
            let wanted: Vec<(String, Option<String>)> = r
                .configs
                .iter()
                .map(|c| (c.name.to_string(), c.value.as_ref().map(|v| v.to_string())))
                .collect();
            let (code, message) = if r.resource_type == RESOURCE_BROKER_LOGGER {
                // Refused before any check, as Kafka's legacy AlterConfigs refuses it, in its
                // broker's or its controller's words.
                let message = match node.listener() {
                    AdminListener::Broker => format!("Unknown resource type {}", r.resource_type),
                    AdminListener::Controller => "Unexpected resource type BROKER_LOGGER.".into(),
                };
                (ErrorCode::INVALID_REQUEST, Some(message))
            } else {
                alter_resource(
                    &*node,
                    &ctx,
                    r.resource_type,
                    &name,
                    req.validate_only,
                    |current, checker| replace_all(current, &wanted, checker),
                )
                .await
            };
            responses.push(
                AlterConfigsResourceResponse::default()
                    .with_resource_type(r.resource_type)
                    .with_resource_name(r.resource_name.clone())
                    .with_error_code(code.code())
                    .with_error_message(message.filter(|_| code.code() != 0).map(str_bytes)),
            );
        }
        encode(
            &ctx,
            &AlterConfigsResponse::default().with_responses(responses),
        )
    }))
}

#[cfg(test)]
mod tests {
    use gregor_metadata::AclOperation;

    use super::*;
    use crate::handlers::describe_configs::{RESOURCE_BROKER, RESOURCE_TOPIC};

    #[test]
    fn the_given_configs_replace_every_override() {
        let mut current = BTreeMap::new();
        current.insert("retention.ms".to_string(), "1000".to_string());
        current.insert("segment.ms".to_string(), "2000".to_string());
        let changes = replace_all(
            &current,
            &[("retention.ms".to_string(), Some("3000".to_string()))],
            &Checker::Topic,
        )
        .expect("valid");
        assert_eq!(
            changes,
            vec![
                ("retention.ms".to_string(), Some("3000".to_string())),
                ("segment.ms".to_string(), None),
            ]
        );
        assert!(replace_all(
            &current,
            &[("retention.ms".to_string(), None)],
            &Checker::Topic
        )
        .is_err());
        assert!(replace_all(
            &current,
            &[("x".to_string(), Some("1".to_string()))],
            &Checker::Topic
        )
        .is_err());
    }

    /// With an authorizer: ALTER_CONFIGS on the topic (checked before whether it exists), on
    /// the cluster for a broker resource (after the broker's own checks of the changes).
    #[tokio::test]
    async fn resources_need_alter_configs() {
        use crate::authorizer::test_support::{allow_cluster, allow_topic, ctx_of};
        use crate::request::decode_reply;
        use gregor_protocol::messages::alter_configs_request::{
            AlterConfigsResource, AlterableConfig,
        };
        use gregor_protocol::protocol::StrBytes;

        let dir = tempfile::tempdir().expect("tempdir");
        let b = crate::handlers::admin_common::test_cluster::secured(dir.path());
        b.replicas
            .create_topic("t", 1, 1, BTreeMap::new())
            .expect("create");
        let resource = |resource_type: i8, name: &'static str, key: &'static str| {
            AlterConfigsResource::default()
                .with_resource_type(resource_type)
                .with_resource_name(StrBytes::from_static_str(name))
                .with_configs(vec![AlterableConfig::default()
                    .with_name(StrBytes::from_static_str(key))
                    .with_value(Some(StrBytes::from_static_str("60000")))])
        };
        let req = AlterConfigsRequest::default().with_resources(vec![
            resource(RESOURCE_TOPIC, "t", "retention.ms"),
            resource(RESOURCE_TOPIC, "missing", "retention.ms"),
            resource(RESOURCE_BROKER, "", "log.retention.ms"),
            resource(RESOURCE_BROKER, "", "num.partitions"),
        ]);
        let alter = |req: AlterConfigsRequest| {
            let b = Arc::clone(&b);
            async move {
                let reply = handle(&b, ctx_of("alice", KEY, 2), req);
                let resp: AlterConfigsResponse = decode_reply(reply, 2).await;
                resp.responses
                    .iter()
                    .map(|r| r.error_code)
                    .collect::<Vec<_>>()
            }
        };
        let topic_denied = ErrorCode::TOPIC_AUTHORIZATION_FAILED.code();
        let cluster_denied = ErrorCode::CLUSTER_AUTHORIZATION_FAILED.code();
        let invalid = ErrorCode::INVALID_REQUEST.code();
        assert_eq!(
            alter(req.clone()).await,
            vec![topic_denied, topic_denied, cluster_denied, invalid]
        );
        allow_topic(&b, "User:alice", AclOperation::AlterConfigs, "t");
        allow_cluster(&b, "User:alice", AclOperation::AlterConfigs);
        // Allowed, the changes go to the controller, which unit tests do not have for configs.
        let asked = ErrorCode(gregor_metadata::code::NOT_CONTROLLER).code();
        assert_eq!(alter(req).await, vec![asked, topic_denied, asked, invalid]);
    }
}
