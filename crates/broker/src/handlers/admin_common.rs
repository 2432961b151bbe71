//! What the admin handlers share: waiting until the image this node applied (a broker's, or a
//! controller listener's, [`crate::admin_node`]) shows the change the controller made
//! (CreatePartitions, ElectLeaders, the reassignment APIs, configs, ACLs), so that a request
//! right after the answer sees it; and the authorization of config resources (DescribeConfigs,
//! AlterConfigs, IncrementalAlterConfigs) and the ACL APIs' refusals, with Kafka's denial
//! messages.

use std::time::Duration;

use gregor_metadata::{AclOperation, MetadataImage, ResourceType, CLUSTER_NAME};
use gregor_protocol::error::ErrorCode;

use super::describe_configs::{
    RESOURCE_BROKER, RESOURCE_BROKER_LOGGER, RESOURCE_CLIENT_METRICS, RESOURCE_GROUP,
    RESOURCE_TOPIC,
};
use crate::admin_node::AdminNode;
use crate::authorizer;
use crate::request::RequestContext;

/// Kafka's message for CLUSTER_AUTHORIZATION_FAILED (`Errors.CLUSTER_AUTHORIZATION_FAILED`).
pub(crate) const CLUSTER_AUTHORIZATION_FAILED_MESSAGE: &str = "Cluster authorization failed.";
/// Kafka's message for TOPIC_AUTHORIZATION_FAILED.
pub(crate) const TOPIC_AUTHORIZATION_FAILED_MESSAGE: &str = "Topic authorization failed.";
/// Kafka's message for GROUP_AUTHORIZATION_FAILED.
pub(crate) const GROUP_AUTHORIZATION_FAILED_MESSAGE: &str = "Group authorization failed.";

/// The ACL resource a config resource is checked against, and the error of a denial, as
/// Kafka's `ConfigHelper` and `ControllerApis.authorizeAlterResource` map them: broker, broker
/// logger and client-metrics resources are the cluster's; a topic's and a group's are their
/// own. `None` for a type Kafka does not know (the handler refuses it on its own).
fn config_acl_resource(
    resource_type: i8,
    name: &str,
) -> Option<(ResourceType, &str, ErrorCode, &'static str)> {
    match resource_type {
        RESOURCE_BROKER | RESOURCE_BROKER_LOGGER | RESOURCE_CLIENT_METRICS => Some((
            ResourceType::Cluster,
            CLUSTER_NAME,
            ErrorCode::CLUSTER_AUTHORIZATION_FAILED,
            CLUSTER_AUTHORIZATION_FAILED_MESSAGE,
        )),
        RESOURCE_TOPIC => Some((
            ResourceType::Topic,
            name,
            ErrorCode::TOPIC_AUTHORIZATION_FAILED,
            TOPIC_AUTHORIZATION_FAILED_MESSAGE,
        )),
        RESOURCE_GROUP => Some((
            ResourceType::Group,
            name,
            ErrorCode::GROUP_AUTHORIZATION_FAILED,
            GROUP_AUTHORIZATION_FAILED_MESSAGE,
        )),
        _ => None,
    }
}

/// Whether the principal may do `op` (DESCRIBE_CONFIGS or ALTER_CONFIGS) on a config resource;
/// the denial's error code and Kafka's message otherwise. A type Kafka does not know passes
/// (the handler refuses it on its own).
pub(crate) fn authorize_config_resource(
    node: &dyn AdminNode,
    ctx: &RequestContext,
    op: AclOperation,
    resource_type: i8,
    name: &str,
) -> Result<(), (ErrorCode, &'static str)> {
    match config_acl_resource(resource_type, name) {
        Some((rt, acl_name, code, message)) => {
            if authorizer::authorize(node, ctx, op, rt, acl_name) {
                Ok(())
            } else {
                Err((code, message))
            }
        }
        None => Ok(()),
    }
}

/// Why an ACL API (CreateAcls, DeleteAcls: ALTER; DescribeAcls: DESCRIBE) refuses the whole
/// request, as Kafka's `AclApis` does: CLUSTER_AUTHORIZATION_FAILED without `op` on the
/// cluster, then SECURITY_DISABLED (with the API's own `disabled` message) without an
/// authorizer.
pub(crate) fn acl_api_refusal(
    node: &dyn AdminNode,
    ctx: &RequestContext,
    op: AclOperation,
    disabled: &'static str,
) -> Option<(ErrorCode, &'static str)> {
    if !authorizer::authorize_cluster(node, ctx, op) {
        Some((
            ErrorCode::CLUSTER_AUTHORIZATION_FAILED,
            CLUSTER_AUTHORIZATION_FAILED_MESSAGE,
        ))
    } else if !authorizer::enabled(node) {
        Some((ErrorCode::SECURITY_DISABLED, disabled))
    } else {
        None
    }
}

/// How long a handler waits for the controller's change to reach this node's image.
const APPLY_WAIT: Duration = Duration::from_secs(5);

/// Waits (at most a few seconds) until `done` holds on the image this node applied.
pub(crate) async fn wait_for_image(node: &dyn AdminNode, done: impl Fn(&MetadataImage) -> bool) {
    let mut images = node.watch_image();
    let wait = crate::admin_node::until_image(&mut images, done);
    if tokio::time::timeout(APPLY_WAIT, wait).await.is_err() {
        tracing::warn!("the metadata change did not reach this node in time");
    }
}

/// A test broker (node 1) whose image also has brokers 2 and 3 registered and unfenced, and
/// helpers to shape partitions in it.
#[cfg(test)]
pub(crate) mod test_cluster {
    use std::sync::Arc;

    use gregor_metadata::controller::{create_topic_with_assignments, CreateTopic};
    use gregor_metadata::{Endpoint, MetadataRecord, PartitionChangeRecord, RegisterBrokerRecord};

    use crate::broker::Broker;

    pub(crate) fn broker(dir: &std::path::Path) -> Arc<Broker> {
        with_config(dir, |c| c)
    }

    /// [`broker`] in a temporary directory, which the test keeps while it runs.
    pub(crate) fn temp_broker() -> (tempfile::TempDir, Arc<Broker>) {
        let dir = tempfile::tempdir().expect("tempdir");
        let b = broker(dir.path());
        (dir, b)
    }

    /// [`broker`] with the standard authorizer on (`authorizer::test_support::with_authorizer`:
    /// `User:admin` is a super user, a resource without ACLs is denied).
    pub(crate) fn secured(dir: &std::path::Path) -> Arc<Broker> {
        with_config(dir, crate::authorizer::test_support::with_authorizer)
    }

    /// [`broker`] with its config shaped further by `shape`.
    pub(crate) fn with_config(
        dir: &std::path::Path,
        shape: impl FnOnce(crate::config::BrokerConfig) -> crate::config::BrokerConfig,
    ) -> Arc<Broker> {
        let mut config = crate::config::BrokerConfig {
            data_dir: dir.to_path_buf(),
            ..Default::default()
        };
        config.group.offsets_topic_num_partitions = 1;
        let b = crate::broker::test_broker(shape(config));
        for id in [2, 3] {
            b.replicas
                .apply_records(&[MetadataRecord::RegisterBroker(RegisterBrokerRecord {
                    log_dirs: Vec::new(),
                    broker_id: id,
                    incarnation_id: uuid::Uuid::new_v4(),
                    broker_epoch: 1,
                    endpoints: vec![Endpoint {
                        name: super::super::metadata::CLIENT_LISTENER.into(),
                        host: "127.0.0.1".into(),
                        port: 9092 + u16::try_from(id).expect("small id"),
                        security_protocol: 0,
                    }],
                    rack: Some(format!("rack-{id}")),
                    fenced: false,
                })]);
        }
        b
    }

    /// Creates `name` with exactly these replicas per partition; returns its id.
    pub(crate) fn topic(b: &Broker, name: &str, assignments: &[Vec<i32>]) -> uuid::Uuid {
        let id = uuid::Uuid::new_v4();
        let records = create_topic_with_assignments(
            &b.replicas.image(),
            &CreateTopic {
                name: name.into(),
                topic_id: id,
                partitions: i32::try_from(assignments.len()).expect("few"),
                replication_factor: i16::try_from(assignments[0].len()).expect("few"),
                configs: vec![],
                placement_seed: 0,
            },
            assignments,
        )
        .expect("create the topic");
        b.replicas.apply_records(&records);
        id
    }

    /// Moves leadership of a partition to `leader`.
    pub(crate) fn set_leader(b: &Broker, topic_id: uuid::Uuid, partition: i32, leader: i32) {
        b.replicas
            .apply_records(&[MetadataRecord::PartitionChange(PartitionChangeRecord {
                directories: None,
                topic_id,
                partition_id: partition,
                leader: Some(leader),
                isr: None,
                replicas: None,
                adding_replicas: None,
                removing_replicas: None,
                eligible_leader_replicas: None,
                last_known_elr: None,
            })]);
    }
}

/// One config resource's IncrementalAlterConfigs and DescribeConfigs through the router, as
/// `kafka-configs` sends them.
#[cfg(test)]
pub(crate) mod test_configs {
    use std::sync::Arc;

    use gregor_protocol::messages::describe_configs_request::DescribeConfigsResource;
    use gregor_protocol::messages::incremental_alter_configs_request::{
        AlterConfigsResource, AlterableConfig,
    };
    use gregor_protocol::messages::{
        DescribeConfigsRequest, DescribeConfigsResponse, IncrementalAlterConfigsRequest,
    };
    use gregor_protocol::protocol::StrBytes;

    use crate::broker::Broker;
    use crate::txn_coordinator::tests::call;

    fn s(v: &str) -> StrBytes {
        StrBytes::from_string(v.to_string())
    }

    /// An IncrementalAlterConfigs of one resource: (key, operation, value) each.
    pub(crate) fn incremental_request(
        resource_type: i8,
        name: &str,
        ops: &[(&str, i8, Option<&str>)],
        validate_only: bool,
    ) -> IncrementalAlterConfigsRequest {
        IncrementalAlterConfigsRequest::default()
            .with_validate_only(validate_only)
            .with_resources(vec![AlterConfigsResource::default()
                .with_resource_type(resource_type)
                .with_resource_name(s(name))
                .with_configs(
                    ops.iter()
                        .map(|(k, op, v)| {
                            AlterableConfig::default()
                                .with_name(s(k))
                                .with_config_operation(*op)
                                .with_value(v.map(s))
                        })
                        .collect(),
                )])
    }

    /// The error code and message of a one-resource IncrementalAlterConfigs (v1).
    pub(crate) async fn incremental_alter(
        b: &Arc<Broker>,
        resource_type: i8,
        name: &str,
        ops: &[(&str, i8, Option<&str>)],
    ) -> (i16, Option<String>) {
        let resp = call(b, 1, &incremental_request(resource_type, name, ops, false)).await;
        let r = &resp.responses[0];
        (
            r.error_code,
            r.error_message.as_ref().map(|m| m.to_string()),
        )
    }

    /// DescribeConfigs (v4) of one resource, with synonyms.
    pub(crate) async fn describe(
        b: &Arc<Broker>,
        resource_type: i8,
        name: &str,
    ) -> DescribeConfigsResponse {
        let req = DescribeConfigsRequest::default()
            .with_include_synonyms(true)
            .with_resources(vec![DescribeConfigsResource::default()
                .with_resource_type(resource_type)
                .with_resource_name(s(name))]);
        call(b, 4, &req).await
    }
}
