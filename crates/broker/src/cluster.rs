//! The node's place in the cluster: the metadata quorum (gregor-raft), the active controller
//! while this node leads it (gregor-controller), the broker's registration and heartbeats,
//! and the publisher that applies every committed metadata image to the replica manager.
//!
//! ```text
//!            controller listener (Raft RPCs, CONTROLLER requests, JOIN)
//!                         │
//!   MetadataQuorum ◄──────┴── ControllerSlot: QuorumController while this node leads,
//!     │ image() watch                         NOT_CONTROLLER otherwise
//!     │ leader_and_epoch() ─► activation task: start / stop the QuorumController (one per
//!     │                       term this node leads, the previous one ended first)
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

/// The quorum as the metadata log of a controller activated in one term (`epoch`): its
/// proposals are refused with NOT_CONTROLLER once the quorum's term moved on, even when this
/// node leads again in a later term (Kafka fences a controller by its epoch).
pub struct QuorumLog {
    pub quorum: Arc<MetadataQuorum>,
    pub epoch: u64,
}

impl MetadataLog for QuorumLog {
    fn image(&self) -> watch::Receiver<Arc<MetadataImage>> {
        self.quorum.image()
    }

    fn propose(
        &self,
        records: Vec<MetadataRecord>,
    ) -> BoxFuture<'static, Result<u64, ProposeError>> {
        let quorum = Arc::clone(&self.quorum);
        let epoch = self.epoch;
        async move {
            quorum
                .propose_in_epoch(epoch, records)
                .await
                .map_err(|e| match e {
                    gregor_raft::ProposeError::NotLeader { .. } => ProposeError::NotLeader,
                    other => ProposeError::Unavailable(other.to_string()),
                })
        }
        .boxed()
    }

    fn forget_learner(&self, node: i32) -> BoxFuture<'static, ()> {
        let quorum = Arc::clone(&self.quorum);
        async move {
            let Ok(id) = u64::try_from(node) else {
                return;
            };
            if let Err(e) = quorum.remove_learner(id).await {
                tracing::warn!(node, error = %e, "could not remove the learner from the metadata quorum");
            }
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
///
/// One controller per term this node leads, and never two at once: a new term (even one this
/// node wins again, which the leader alone would not show) ends the previous controller, and
/// the next one starts only once that one's task has ended. The previous controller's
/// proposals are fenced by its term ([`QuorumLog`]) and abandoned on deactivation, so it
/// cannot decide beside its successor: two controllers of one node once both found the log
/// empty and both wrote the `--add-scram` bootstrap records.
pub async fn run_controller_activation(
    quorum: Arc<MetadataQuorum>,
    slot: Arc<ControllerSlot>,
    config: gregor_controller::ControllerConfig,
) {
    let me = quorum.node_id();
    let mut leadership = quorum.leader_and_epoch();
    // The term the controller in the slot was activated in.
    let mut active_epoch: Option<u64> = None;
    loop {
        let now = *leadership.borrow_and_update();
        let leads = now.leader == Some(me);
        if active_epoch.is_some() && (!leads || active_epoch != Some(now.epoch)) {
            info!(leader = ?now.leader, epoch = now.epoch, "this node no longer leads the metadata quorum in the term its controller was activated in: stopping the controller");
            stop_controller(&slot).await;
            active_epoch = None;
        }
        if leads && active_epoch.is_none() {
            info!(
                epoch = now.epoch,
                "this node leads the metadata quorum: starting the active controller"
            );
            let controller = QuorumController::activate(
                Arc::new(QuorumLog {
                    quorum: Arc::clone(&quorum),
                    epoch: now.epoch,
                }),
                config.clone(),
                Arc::new(gregor_controller::SystemClock::new()),
            );
            slot.set(Some(Arc::new(controller)));
            active_epoch = Some(now.epoch);
        }
        if leadership.changed().await.is_err() {
            break;
        }
    }
    stop_controller(&slot).await;
}

/// How long the activation loop waits for a deactivated controller's task before it warns (and
/// goes on waiting): the decision in progress proposes nothing more, so it ends at once.
const CONTROLLER_STOP_WARNING: Duration = Duration::from_secs(5);

/// Takes the controller out of the slot (requests get NOT_CONTROLLER from now on) and waits
/// until its task has ended.
async fn stop_controller(slot: &ControllerSlot) {
    let Some(c) = slot.set(None) else {
        return;
    };
    match Arc::try_unwrap(c) {
        Ok(c) => c.shutdown().await,
        // A request still holds it: it answers NOT_CONTROLLER from now on, abandons the
        // proposal it awaits, and dropping the last reference aborts its task.
        Err(c) => {
            c.deactivate();
            let stopped = c.stopped();
            drop(c);
            tokio::pin!(stopped);
            if tokio::time::timeout(CONTROLLER_STOP_WARNING, &mut stopped)
                .await
                .is_err()
            {
                warn!(
                    waited = ?CONTROLLER_STOP_WARNING,
                    "the previous controller has not stopped yet; waiting for it before activating another"
                );
                stopped.await;
            }
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
