//! The node's place in the cluster: the metadata quorum (gregor-raft), the active controller
//! while this node leads it (gregor-controller), the broker's registration and heartbeats,
//! and the publisher that applies every committed metadata image to the replica manager.
//!
//! ```text
//!            controller listener (Raft RPCs, CONTROLLER requests, JOIN)
//!                         │
//!   MetadataQuorum ◄──────┴── ControllerSlot: QuorumController while this node leads,
//!     │ image() watch                         NOT_CONTROLLER otherwise
//!     │ leadership() watch ─► activation task: start / stop the QuorumController
//!     ▼
//!   publisher task ─► ReplicaManager::apply_image (become leader / follower, create and
//!     │               delete logs) ─► applied offset ─► BrokerLifecycleManager heartbeats
//!   handlers ─► QuorumChannel::call ─► the active controller (here or on another node)
//! ```
//!
//! Kafka's equivalents: `ControllerServer`, `BrokerLifecycleManager`,
//! `BrokerMetadataPublisher`, `NodeToControllerChannelManager`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::FutureExt;
use gregor_controller::{
    not_controller, ChannelError, ControllerChannel, ControllerRequest, ControllerResponse,
    MetadataLog, ProposeError, QuorumController,
};
use gregor_metadata::{MetadataImage, MetadataRecord};
use gregor_raft::{ControllerRpcHandler, MetadataQuorum, NodeId};
use tokio::sync::watch;
use tracing::{error, info, warn};

/// Where controller requests are answered: the active controller while this node leads the
/// quorum, NOT_CONTROLLER otherwise.
#[derive(Default)]
pub struct ControllerSlot {
    active: Mutex<Option<Arc<QuorumController>>>,
}

impl std::fmt::Debug for ControllerSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControllerSlot")
            .field("active", &self.current().is_some())
            .finish()
    }
}

impl ControllerSlot {
    fn current(&self) -> Option<Arc<QuorumController>> {
        self.active
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn set(&self, controller: Option<Arc<QuorumController>>) -> Option<Arc<QuorumController>> {
        std::mem::replace(
            &mut *self.active.lock().unwrap_or_else(|p| p.into_inner()),
            controller,
        )
    }
}

impl ControllerRpcHandler for ControllerSlot {
    fn handle(&self, _from: NodeId, payload: Bytes) -> BoxFuture<'static, Bytes> {
        let active = self.current();
        async move {
            match active {
                Some(c) => c.handle_bytes(payload).await,
                None => not_controller().encode(),
            }
        }
        .boxed()
    }
}

/// The quorum as the controller's metadata log.
pub struct QuorumLog(pub Arc<MetadataQuorum>);

impl MetadataLog for QuorumLog {
    fn image(&self) -> watch::Receiver<Arc<MetadataImage>> {
        self.0.image()
    }

    fn propose(
        &self,
        records: Vec<MetadataRecord>,
    ) -> BoxFuture<'static, Result<u64, ProposeError>> {
        let quorum = Arc::clone(&self.0);
        async move {
            quorum.propose(records).await.map_err(|e| match e {
                gregor_raft::ProposeError::NotLeader { .. } => ProposeError::NotLeader,
                other => ProposeError::Unavailable(other.to_string()),
            })
        }
        .boxed()
    }
}

/// How long one controller request may take, retries included (a new controller may have to
/// be elected first).
pub const CONTROLLER_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Controller requests through the quorum: to this node's own controller when it is active,
/// to the leader's controller listener otherwise, retried until [`CONTROLLER_REQUEST_TIMEOUT`].
pub struct QuorumChannel(pub Arc<MetadataQuorum>);

impl ControllerChannel for QuorumChannel {
    fn call(
        &self,
        req: ControllerRequest,
    ) -> BoxFuture<'static, Result<ControllerResponse, ChannelError>> {
        let quorum = Arc::clone(&self.0);
        async move {
            let deadline = tokio::time::Instant::now() + CONTROLLER_REQUEST_TIMEOUT;
            loop {
                let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                let reply = match quorum.call_controller(req.encode(), left).await {
                    Ok(r) => r,
                    Err(gregor_raft::CallError::Timeout { .. }) => {
                        return Err(ChannelError::Timeout)
                    }
                    Err(e) => return Err(ChannelError::Unreachable(e.to_string())),
                };
                let resp = ControllerResponse::decode(&reply)
                    .map_err(|e| ChannelError::Unreachable(e.to_string()))?;
                // The quorum's leader may not have started its controller yet.
                let not_controller =
                    resp.error_code() == Some(gregor_metadata::code::NOT_CONTROLLER);
                if not_controller
                    && tokio::time::Instant::now() + Duration::from_millis(50) < deadline
                {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
                return Ok(resp);
            }
        }
        .boxed()
    }
}

/// Starts and stops this node's `QuorumController` as it gains and loses the quorum's
/// leadership. Runs until the quorum's leadership channel closes.
pub async fn run_controller_activation(
    quorum: Arc<MetadataQuorum>,
    slot: Arc<ControllerSlot>,
    config: gregor_controller::ControllerConfig,
) {
    let me = quorum.node_id();
    let mut leadership = quorum.leadership();
    loop {
        let leader = *leadership.borrow_and_update();
        let active = slot.current().is_some();
        if leader == Some(me) && !active {
            info!("this node leads the metadata quorum: starting the active controller");
            let controller = QuorumController::activate(
                Arc::new(QuorumLog(Arc::clone(&quorum))),
                config.clone(),
                Arc::new(gregor_controller::SystemClock::new()),
            );
            slot.set(Some(Arc::new(controller)));
        } else if leader != Some(me) && active {
            info!(leader = ?leader, "this node no longer leads the metadata quorum: stopping its controller");
            if let Some(c) = slot.set(None) {
                match Arc::try_unwrap(c) {
                    Ok(c) => c.shutdown().await,
                    // A request still holds it: it answers NOT_CONTROLLER from now on, and
                    // dropping the last reference stops its task.
                    Err(c) => {
                        c.deactivate();
                        drop(c);
                    }
                }
            }
        }
        if leadership.changed().await.is_err() {
            break;
        }
    }
    if let Some(c) = slot.set(None) {
        match Arc::try_unwrap(c) {
            Ok(c) => c.shutdown().await,
            Err(c) => c.deactivate(),
        }
    }
}

/// Applies every committed image to the replica manager, in order (blocking work on the
/// blocking pool), and publishes the offset of the image applied, which the broker's
/// heartbeats report. Runs until the image channel closes.
pub async fn run_publisher(
    replicas: Arc<crate::replica_manager::ReplicaManager>,
    mut images: watch::Receiver<Arc<MetadataImage>>,
    applied_offset: watch::Sender<i64>,
) {
    loop {
        let image = Arc::clone(&images.borrow_and_update());
        let offset = image.provenance().offset;
        let r = Arc::clone(&replicas);
        let applied = tokio::task::spawn_blocking(move || r.apply_image(image)).await;
        match applied {
            Ok(Ok(())) => {}
            Ok(Err(e)) => error!(error = %e, "a metadata image was applied only in part"),
            Err(e) => error!(error = %e, "the metadata publisher task failed"),
        }
        applied_offset.send_replace(offset);
        if images.changed().await.is_err() {
            break;
        }
    }
    warn!("metadata publisher stopped");
}
