//! ListConfigResources (key 74, KIP-1142; v0 was KIP-714's ListClientMetricsResources): the
//! names of the config resources an admin client can describe. `kafka-configs --describe
//! --entity-type groups|client-metrics` without a name and `kafka-client-metrics --list` ask
//! for it.
//!
//! Kafka 4.4's rules (`KafkaApis.handleListConfigResources`):
//!
//! ```text
//! DESCRIBE_CONFIGS on the cluster? ── no ──► CLUSTER_AUTHORIZATION_FAILED, nothing listed
//! types asked: v0 → {CLIENT_METRICS}; v1 → the request's list, every supported type if empty
//! a type outside {TOPIC, BROKER, BROKER_LOGGER, CLIENT_METRICS, GROUP} ──► UNSUPPORTED_VERSION
//! listed, in this order whatever the request's order (a repeated type once):
//!   GROUP          the groups with configs set (not every group: the tool adds ListGroups')
//!   CLIENT_METRICS the subscriptions (those with a config set)
//!   BROKER_LOGGER  one per unfenced broker with an endpoint on the request's listener
//!   BROKER         the same brokers
//!   TOPIC          every topic, internal ones too
//! ```
//!
//! Names within a type are in name order (broker ids by number). gregor serves no broker
//! loggers in DescribeConfigs, but lists them as Kafka does: the resource names one node.

use std::ops::RangeInclusive;

use gregor_metadata::{AclOperation, MetadataImage};
use gregor_protocol::error::ErrorCode;
use gregor_protocol::messages::list_config_resources_response::ConfigResource;
use gregor_protocol::messages::ApiKey;
use gregor_protocol::messages::{ListConfigResourcesRequest, ListConfigResourcesResponse};

use super::describe_configs::{
    RESOURCE_BROKER, RESOURCE_BROKER_LOGGER, RESOURCE_CLIENT_METRICS, RESOURCE_GROUP,
    RESOURCE_TOPIC,
};
use super::str_bytes;
use crate::authorizer;
use crate::broker::Broker;
use crate::request::RequestContext;

/// The API this module serves.
pub const KEY: ApiKey = ApiKey::ListConfigResources;
/// The versions served (and advertised in ApiVersions), Kafka 4.4's.
pub const VERSIONS: RangeInclusive<i16> = 0..=1;

/// The types a v1 request may ask for (Kafka's `ListConfigResourcesRequest.
/// supportedResourceTypes`), in the order the answer lists them.
const LISTED_IN_ORDER: [i8; 5] = [
    RESOURCE_GROUP,
    RESOURCE_CLIENT_METRICS,
    RESOURCE_BROKER_LOGGER,
    RESOURCE_BROKER,
    RESOURCE_TOPIC,
];

/// Handles a ListConfigResources request from this broker's image, for the request's principal.
pub fn handle(
    broker: &Broker,
    ctx: &RequestContext,
    req: &ListConfigResourcesRequest,
) -> ListConfigResourcesResponse {
    if !authorizer::authorize_cluster(broker, ctx, AclOperation::DescribeConfigs) {
        return ListConfigResourcesResponse::default()
            .with_error_code(ErrorCode::CLUSTER_AUTHORIZATION_FAILED.code());
    }
    list(
        &broker.replicas.image(),
        ctx.api_version,
        req,
        ctx.listener.as_str(),
    )
}

/// The answer for `image` (pure: the handler's testable core); `listener` is the one the
/// request came in on.
pub fn list(
    image: &MetadataImage,
    version: i16,
    req: &ListConfigResourcesRequest,
    listener: &str,
) -> ListConfigResourcesResponse {
    let asked: Vec<i8> = if version == 0 {
        vec![RESOURCE_CLIENT_METRICS]
    } else if req.resource_types.is_empty() {
        LISTED_IN_ORDER.to_vec()
    } else {
        req.resource_types.clone()
    };
    if asked.iter().any(|t| !LISTED_IN_ORDER.contains(t)) {
        return ListConfigResourcesResponse::default()
            .with_error_code(ErrorCode::UNSUPPORTED_VERSION.code());
    }
    let mut broker_ids: Vec<i32> = image
        .cluster()
        .live_endpoints(listener)
        .map(|(b, _)| b.id)
        .collect();
    broker_ids.sort_unstable();
    let mut topics: Vec<&str> = image.topics().topics().map(|t| t.name.as_str()).collect();
    topics.sort_unstable();
    let configs = image.configs();
    let mut resources = Vec::new();
    let mut add = |resource_type: i8, name: &str| {
        resources.push(
            ConfigResource::default()
                .with_resource_type(resource_type)
                .with_resource_name(str_bytes(name)),
        );
    };
    for t in LISTED_IN_ORDER.into_iter().filter(|t| asked.contains(t)) {
        match t {
            RESOURCE_GROUP => configs.group_resources().for_each(|g| add(t, g)),
            RESOURCE_CLIENT_METRICS => configs.client_metrics_resources().for_each(|s| add(t, s)),
            RESOURCE_BROKER_LOGGER | RESOURCE_BROKER => {
                broker_ids.iter().for_each(|id| add(t, &id.to_string()))
            }
            _ => topics.iter().for_each(|name| add(t, name)),
        }
    }
    ListConfigResourcesResponse::default().with_config_resources(resources)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listed(resp: &ListConfigResourcesResponse) -> Vec<(i8, String)> {
        resp.config_resources
            .iter()
            .map(|r| (r.resource_type, r.resource_name.to_string()))
            .collect()
    }

    fn req(types: &[i8]) -> ListConfigResourcesRequest {
        ListConfigResourcesRequest::default().with_resource_types(types.to_vec())
    }

    fn broker() -> (tempfile::TempDir, std::sync::Arc<Broker>) {
        let dir = tempfile::tempdir().expect("tempdir");
        let b = crate::handlers::admin_common::test_cluster::broker(dir.path());
        (dir, b)
    }

    #[tokio::test]
    async fn lists_kafkas_types_in_kafkas_order() {
        let (_dir, b) = broker();
        b.replicas.apply_records(&[
            gregor_metadata::controller::alter_group_config(
                "g1",
                "consumer.session.timeout.ms",
                Some("50000"),
            )
            .expect("group config"),
            gregor_metadata::controller::alter_client_metrics_config(
                "sub1",
                "interval.ms",
                Some("60000"),
            )
            .expect("subscription"),
        ]);
        for name in ["b", "a"] {
            crate::handlers::admin_common::test_cluster::topic(&b, name, &[vec![1]]);
        }
        let image = b.replicas.image();
        let listener = crate::handlers::metadata::CLIENT_LISTENER;
        let ids: Vec<String> = image
            .cluster()
            .live_endpoints(listener)
            .map(|(b, _)| b.id.to_string())
            .collect();
        assert!(!ids.is_empty(), "the test broker is registered");
        let all = list(&image, 1, &req(&[]), listener);
        assert_eq!(all.error_code, 0);
        let mut expected = vec![
            (RESOURCE_GROUP, "g1".to_string()),
            (RESOURCE_CLIENT_METRICS, "sub1".to_string()),
        ];
        expected.extend(ids.iter().map(|id| (RESOURCE_BROKER_LOGGER, id.clone())));
        expected.extend(ids.iter().map(|id| (RESOURCE_BROKER, id.clone())));
        let topics: Vec<(i8, String)> = listed(&all)
            .into_iter()
            .filter(|(t, _)| *t == RESOURCE_TOPIC)
            .collect();
        assert!(topics.contains(&(RESOURCE_TOPIC, "a".into())));
        let names: Vec<&str> = topics.iter().map(|(_, n)| n.as_str()).collect();
        let mut sorted = names.clone();
        sorted.sort_unstable();
        assert_eq!(names, sorted, "topics in name order");
        expected.extend(topics);
        assert_eq!(listed(&all), expected);

        // The request's order does not change the answer's; a repeated type lists once.
        let some = list(
            &image,
            1,
            &req(&[RESOURCE_TOPIC, RESOURCE_GROUP, RESOURCE_GROUP]),
            listener,
        );
        assert_eq!(listed(&some)[0], (RESOURCE_GROUP, "g1".to_string()));
        assert_eq!(
            listed(&some)
                .iter()
                .filter(|(t, _)| *t == RESOURCE_GROUP)
                .count(),
            1
        );
        assert!(listed(&some)
            .iter()
            .all(|(t, _)| *t == RESOURCE_GROUP || *t == RESOURCE_TOPIC));

        // v0 (ListClientMetricsResources) lists subscriptions only, whatever was asked.
        let v0 = list(&image, 0, &req(&[]), listener);
        assert_eq!(listed(&v0), vec![(RESOURCE_CLIENT_METRICS, "sub1".into())]);

        // Brokers are those with an endpoint on the request's listener.
        let other = list(&image, 1, &req(&[RESOURCE_BROKER]), "NOPE");
        assert_eq!(listed(&other), vec![]);
    }

    #[tokio::test]
    async fn an_unsupported_type_fails_the_whole_request() {
        let (_dir, b) = broker();
        let image = b.replicas.image();
        for types in [vec![64], vec![RESOURCE_TOPIC, 0], vec![1]] {
            let resp = list(&image, 1, &req(&types), "x");
            assert_eq!(
                resp.error_code,
                ErrorCode::UNSUPPORTED_VERSION.code(),
                "{types:?}"
            );
            assert!(resp.config_resources.is_empty());
        }
    }

    /// Kafka's check: DESCRIBE_CONFIGS on the cluster, else CLUSTER_AUTHORIZATION_FAILED.
    #[tokio::test]
    async fn needs_describe_configs_on_the_cluster() {
        use crate::authorizer::test_support::{allow, ctx_of};
        use gregor_metadata::{ResourceType, CLUSTER_NAME};
        let dir = tempfile::tempdir().expect("tempdir");
        let b = crate::handlers::admin_common::test_cluster::secured(dir.path());
        let ctx = ctx_of("alice", KEY, 1);
        let resp = handle(&b, &ctx, &req(&[]));
        assert_eq!(
            resp.error_code,
            ErrorCode::CLUSTER_AUTHORIZATION_FAILED.code()
        );
        assert!(resp.config_resources.is_empty());
        allow(
            &b,
            "User:alice",
            AclOperation::DescribeConfigs,
            ResourceType::Cluster,
            CLUSTER_NAME,
        );
        assert_eq!(handle(&b, &ctx, &req(&[])).error_code, 0);
    }
}
