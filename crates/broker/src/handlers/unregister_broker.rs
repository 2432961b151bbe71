//! UnregisterBroker (key 64): removes a broker's registration for good (`kafka-cluster.sh
//! unregister --id N`, `gregor cluster unregister --id N`), for a broker that is gone and will
//! not come back. The active controller takes it out of every ISR (electing new leaders where
//! it led) and removes its registration (`UnregisterBrokerRecord`); it stays a replica of its
//! partitions, offline, until they are reassigned. A broker still running registers again at
//! its next heartbeat.
//!
//! As Kafka's `ControllerApis.handleUnregisterBroker`: ALTER on the cluster, else
//! CLUSTER_AUTHORIZATION_FAILED; an id with no registration BROKER_ID_NOT_REGISTERED ("Broker
//! ID 9 is not currently registered", Kafka 4.4's message). It waits (a few seconds at most) until this node's image no
//! longer has the registration.

use std::ops::RangeInclusive;
use std::sync::Arc;

use gregor_controller::protocol as proto;
use gregor_controller::{ControllerRequest, ControllerResponse};
use gregor_metadata::AclOperation;
use gregor_protocol::error::ErrorCode;
use gregor_protocol::messages::ApiKey;
use gregor_protocol::messages::{UnregisterBrokerRequest, UnregisterBrokerResponse};
use tracing::warn;

use super::admin_common::wait_for_image;
use super::create_topics::controller_failure;
use super::str_bytes;
use crate::admin_node::AdminNode;
use crate::authorizer;
use crate::request::{encode, Reply, RequestContext};

/// The API this module serves.
pub const KEY: ApiKey = ApiKey::UnregisterBroker;
/// The versions served (and advertised in ApiVersions).
pub const VERSIONS: RangeInclusive<i16> = 0..=0;

/// Handles an UnregisterBroker request; the reply is ready once the controller has answered
/// and the registration is gone here.
pub fn handle<N: AdminNode + 'static>(
    node: &Arc<N>,
    ctx: RequestContext,
    req: UnregisterBrokerRequest,
) -> Reply {
    let node = Arc::clone(node);
    Reply::Pending(Box::pin(async move {
        let response = unregister_broker(&*node, &ctx, req).await;
        encode(&ctx, &response)
    }))
}

async fn unregister_broker(
    node: &dyn AdminNode,
    ctx: &RequestContext,
    req: UnregisterBrokerRequest,
) -> UnregisterBrokerResponse {
    let answer = |code: ErrorCode| {
        UnregisterBrokerResponse::default()
            .with_error_code(code.code())
            .with_error_message(None)
    };
    if !authorizer::authorize_cluster(node, ctx, AclOperation::Alter) {
        return answer(ErrorCode::CLUSTER_AUTHORIZATION_FAILED);
    }
    let broker = req.broker_id.0;
    let epoch = node.image().cluster().broker(broker).map(|b| b.epoch);
    let request =
        ControllerRequest::UnregisterBroker(proto::UnregisterBrokerRequest { broker_id: broker });
    match node.controller().call(request).await {
        Ok(ControllerResponse::UnregisterBroker(r)) if r.error_code == 0 => {
            // Gone here, or registered again (a new epoch) by a broker still running.
            wait_for_image(node, |image| {
                image.cluster().broker(broker).map(|b| b.epoch) != epoch || epoch.is_none()
            })
            .await;
            answer(ErrorCode::NONE)
        }
        Ok(ControllerResponse::UnregisterBroker(r)) => {
            answer(ErrorCode(r.error_code)).with_error_message(r.error_message.map(str_bytes))
        }
        Ok(other) => {
            let (code, message) = controller_failure(&other);
            warn!(broker, %message, "UnregisterBroker not handled");
            answer(code)
        }
        Err(e) => {
            warn!(broker, error = %e, "UnregisterBroker: no answer from the controller");
            answer(ErrorCode::REQUEST_TIMED_OUT)
        }
    }
}

#[cfg(test)]
mod tests {
    use gregor_protocol::messages::BrokerId;

    use super::*;
    use crate::authorizer::test_support::{allow_cluster, ctx_of};
    use crate::handlers::admin_common::test_cluster;

    /// With an authorizer: ALTER on the cluster, else CLUSTER_AUTHORIZATION_FAILED and the
    /// broker stays; allowed, its registration is gone; an unknown id is
    /// BROKER_ID_NOT_REGISTERED.
    #[tokio::test]
    async fn unregistering_needs_alter_on_the_cluster() {
        let dir = tempfile::tempdir().expect("tempdir");
        let b = test_cluster::secured(dir.path());
        let req = |id| UnregisterBrokerRequest::default().with_broker_id(BrokerId(id));
        let alice = ctx_of("alice", KEY, 0);
        let resp = unregister_broker(&*b, &alice, req(3)).await;
        assert_eq!(
            resp.error_code,
            ErrorCode::CLUSTER_AUTHORIZATION_FAILED.code()
        );
        assert!(b.replicas.image().cluster().broker(3).is_some());
        allow_cluster(&b, "User:alice", AclOperation::Alter);
        let resp = unregister_broker(&*b, &alice, req(3)).await;
        assert_eq!(resp.error_code, 0);
        assert_eq!(resp.error_message, None);
        assert!(b.replicas.image().cluster().broker(3).is_none());
        let resp = unregister_broker(&*b, &alice, req(9)).await;
        assert_eq!(resp.error_code, ErrorCode::BROKER_ID_NOT_REGISTERED.code());
    }
}
