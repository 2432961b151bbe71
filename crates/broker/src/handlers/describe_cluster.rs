//! DescribeCluster (key 60): the cluster id, the controller and the brokers with their client
//! endpoints and racks (the AdminClient's `describeCluster`, `gregor cluster describe`).
//!
//! Read from this broker's applied image. Brokers are listed by their endpoint on the listener
//! the request came in on; fenced brokers only when the client asks for them (v2
//! `include_fenced_brokers`), marked fenced. The controller is the metadata quorum's leader
//! when it is also a broker, else this broker (`Broker::controller_id`: a controller-only
//! node has no broker listener). Only broker endpoints are served (`endpoint_type` 1);
//! controller endpoints (2) get UNSUPPORTED_ENDPOINT_TYPE, as a Kafka broker answers (the
//! controller listener serves them, controller_listener.rs).
//!
//! Anyone may describe the cluster, as on Kafka's brokers. The authorized operations (asked
//! with `include_cluster_authorized_operations`) are the principal's on the cluster, 0 without
//! DESCRIBE on it, and are left out (`i32::MIN`) when the endpoint type is refused.

use std::ops::RangeInclusive;

use gregor_metadata::{AclOperation, MetadataImage, ResourceType, CLUSTER_NAME};
use gregor_protocol::error::ErrorCode;
use gregor_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use gregor_protocol::messages::ApiKey;
use gregor_protocol::messages::{BrokerId, DescribeClusterRequest, DescribeClusterResponse};

use super::str_bytes;
use crate::authorizer;
use crate::broker::Broker;
use crate::request::RequestContext;

/// The API this module serves.
pub const KEY: ApiKey = ApiKey::DescribeCluster;
/// The versions served (and advertised in ApiVersions).
pub const VERSIONS: RangeInclusive<i16> = 0..=2;

/// Kafka's `EndpointType.BROKER`.
const BROKER_ENDPOINTS: i8 = 1;

/// Handles a DescribeCluster request from this broker's image, on the listener it came in on.
/// Anyone may describe the cluster; the authorized operations asked for are the principal's,
/// 0 without DESCRIBE on the cluster (Kafka's `AuthHelper.computeDescribeClusterResponse`).
pub fn handle(
    broker: &Broker,
    ctx: &RequestContext,
    req: &DescribeClusterRequest,
) -> DescribeClusterResponse {
    describe(
        &broker.replicas.image(),
        &broker.cluster_id,
        broker.controller_id(),
        ctx.api_version,
        req,
        ctx.listener.as_str(),
        || {
            if authorizer::authorize_cluster(broker, ctx, AclOperation::Describe) {
                authorizer::authorized_operations(broker, ctx, ResourceType::Cluster, CLUSTER_NAME)
            } else {
                0
            }
        },
    )
}

/// The DescribeCluster answer for `image` (pure: the handler's testable core);
/// `cluster_operations` is asked when the request wants the authorized operations.
pub fn describe(
    image: &MetadataImage,
    cluster_id: &str,
    controller_id: Option<i32>,
    version: i16,
    req: &DescribeClusterRequest,
    listener: &str,
    cluster_operations: impl FnOnce() -> i32,
) -> DescribeClusterResponse {
    let response = DescribeClusterResponse::default()
        .with_cluster_id(str_bytes(cluster_id))
        .with_endpoint_type(BROKER_ENDPOINTS)
        .with_cluster_authorized_operations(super::OPS_NOT_REQUESTED);
    if version >= 1 && req.endpoint_type != BROKER_ENDPOINTS {
        return response
            .with_error_code(ErrorCode::UNSUPPORTED_ENDPOINT_TYPE.code())
            .with_error_message(Some(str_bytes(
                "The request was sent to an endpoint of type BROKER, but we wanted an endpoint of type CONTROLLER",
            )))
            .with_controller_id(BrokerId(-1));
    }
    let include_fenced = version >= 2 && req.include_fenced_brokers;
    let brokers = image
        .cluster()
        .brokers()
        .filter(|b| include_fenced || !b.fenced)
        .filter_map(|b| {
            let e = b.endpoint(listener)?;
            Some(
                DescribeClusterBroker::default()
                    .with_broker_id(BrokerId(b.id))
                    .with_host(str_bytes(e.host.clone()))
                    .with_port(i32::from(e.port))
                    .with_rack(b.rack.clone().map(str_bytes))
                    .with_is_fenced(b.fenced),
            )
        })
        .collect();
    let operations = if req.include_cluster_authorized_operations {
        cluster_operations()
    } else {
        super::OPS_NOT_REQUESTED
    };
    response
        .with_cluster_authorized_operations(operations)
        .with_controller_id(BrokerId(controller_id.unwrap_or(-1)))
        .with_brokers(brokers)
}

#[cfg(test)]
mod tests {
    use super::*;
    use gregor_metadata::{FenceBrokerRecord, MetadataRecord};

    use crate::handlers::admin_common::test_cluster;
    use crate::handlers::metadata::CLIENT_LISTENER;

    /// A context on the client listener.
    fn ctx(version: i16) -> RequestContext {
        let mut ctx = RequestContext::for_test(KEY, version);
        ctx.listener = crate::request::ListenerName::new(CLIENT_LISTENER);
        ctx
    }

    #[test]
    fn lists_live_brokers_the_controller_and_fenced_ones_on_request() {
        let dir = tempfile::tempdir().expect("tempdir");
        let b = test_cluster::broker(dir.path());
        b.replicas
            .apply_records(&[MetadataRecord::FenceBroker(FenceBrokerRecord {
                broker_id: 3,
                broker_epoch: 1,
            })]);
        let req = DescribeClusterRequest::default().with_endpoint_type(BROKER_ENDPOINTS);
        let resp = handle(&b, &ctx(1), &req);
        assert_eq!(resp.error_code, 0);
        assert_eq!(&*resp.cluster_id, "test-cluster");
        assert_eq!(resp.controller_id, BrokerId(1));
        let ids: Vec<(i32, i32, Option<String>)> = resp
            .brokers
            .iter()
            .map(|b| {
                (
                    b.broker_id.0,
                    b.port,
                    b.rack.as_ref().map(|r| r.to_string()),
                )
            })
            .collect();
        assert_eq!(ids, vec![(1, 9092, None), (2, 9094, Some("rack-2".into()))]);
        let resp = handle(&b, &ctx(2), &req.clone().with_include_fenced_brokers(true));
        let fenced: Vec<(i32, bool)> = resp
            .brokers
            .iter()
            .map(|b| (b.broker_id.0, b.is_fenced))
            .collect();
        assert_eq!(fenced, vec![(1, false), (2, false), (3, true)]);
        let resp = handle(
            &b,
            &ctx(1),
            &DescribeClusterRequest::default()
                .with_endpoint_type(2)
                .with_include_cluster_authorized_operations(true),
        );
        assert_eq!(
            resp.cluster_authorized_operations,
            super::super::OPS_NOT_REQUESTED
        );
        assert_eq!(resp.error_code, ErrorCode::UNSUPPORTED_ENDPOINT_TYPE.code());
        assert!(resp.brokers.is_empty());
    }

    /// Without an authorizer the authorized operations asked for are every cluster
    /// operation; with one, the principal's, and 0 without DESCRIBE on the cluster. The
    /// brokers are listed either way.
    #[test]
    fn authorized_operations_are_the_principals() {
        use crate::authorizer::test_support::{allow_cluster, ctx_of};
        let req = DescribeClusterRequest::default()
            .with_endpoint_type(BROKER_ENDPOINTS)
            .with_include_cluster_authorized_operations(true);
        let dir = tempfile::tempdir().expect("tempdir");
        let open = test_cluster::broker(dir.path());
        assert_eq!(
            handle(&open, &ctx(1), &req).cluster_authorized_operations,
            crate::authorizer::all_operations(gregor_metadata::ResourceType::Cluster)
        );
        let dir = tempfile::tempdir().expect("tempdir");
        let b = test_cluster::secured(dir.path());
        let mut alice = ctx_of("alice", KEY, 1);
        alice.listener = crate::request::ListenerName::new(CLIENT_LISTENER);
        let resp = handle(&b, &alice, &req);
        assert_eq!(resp.error_code, 0);
        assert_eq!(resp.cluster_authorized_operations, 0);
        assert_eq!(resp.brokers.len(), 3);
        allow_cluster(&b, "User:alice", AclOperation::Alter);
        let resp = handle(&b, &alice, &req);
        let bit = |op: AclOperation| 1 << op.code();
        assert_eq!(
            resp.cluster_authorized_operations,
            bit(AclOperation::Alter) | bit(AclOperation::Describe)
        );
        assert_eq!(
            handle(
                &b,
                &alice,
                &req.with_include_cluster_authorized_operations(false)
            )
            .cluster_authorized_operations,
            super::super::OPS_NOT_REQUESTED
        );
    }
}
