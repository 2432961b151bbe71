//! `BrokerLifecycleManager`: the broker's side of registration, heartbeats and controlled
//! shutdown (Kafka's class of the same name).
//!
//! ```text
//!            register (retry until accepted)        heartbeat every interval
//! Starting ───────────────────────────────► Recovering ─────────────────────► Running
//!                                           (fenced: catching up            (unfenced)
//!                                            with the metadata log)              │
//!        controlled_shutdown(): want_shut_down = true                            │
//!                     ─► PendingControlledShutdown ─► (controller: should_shut_down) ─► ShuttingDown
//!
//!   Starting ── DUPLICATE_BROKER_REGISTRATION for longer than a session ──► Refused (stop)
//! ```
//!
//! # A second process with the same node id
//!
//! The controller refuses a registration whose broker id is held by another incarnation whose
//! session is still alive (DUPLICATE_BROKER_REGISTRATION). Right after a crash that is the
//! dead process's session running out, so the broker retries; but a refusal that outlasts
//! [`LifecycleConfig::duplicate_registration_timeout`] (longer than any session) means another
//! live process heartbeats under this id, and the broker gives up: [`BrokerState::Refused`],
//! with the controller's message in [`BrokerLifecycleManager::refusal`]. The wait starts again
//! when the refusals come from a newly active controller (the answer's `sessions_id`):
//! it gives every session a fresh start, the dead process's too.
//!
//! # Timing defaults
//!
//! Heartbeats every [`DEFAULT_BROKER_HEARTBEAT_INTERVAL_MS`] (500 ms) against a session of
//! [`DEFAULT_BROKER_SESSION_TIMEOUT_MS`] (3 s). Failover after a broker dies takes the session
//! timeout (the controller fences exactly at the deadline, from a timer) plus one metadata
//! commit and the surviving brokers applying it, a few hundred milliseconds: about 3.5 s, within
//! the 5 s median the cluster promises. A healthy broker is fenced only if six heartbeats in a
//! row are lost or late; on a loaded 2-core machine a task can stall for a few hundred
//! milliseconds (a large fsync, a compaction pass), which costs one or two heartbeats, not six.
//! Kafka's defaults (2 s / 9 s) are sized for larger clusters and would miss the 5 s target.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use gregor_metadata::{code, BrokerId};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::{debug, error, info, warn};
use uuid::Uuid;

pub use crate::controller::DEFAULT_BROKER_SESSION_TIMEOUT_MS;
use crate::protocol::{
    BrokerEndpoint, BrokerHeartbeatRequest, ControllerRequest, ControllerResponse, OfflineReplica,
    RegisterBrokerRequest,
};

/// `broker.heartbeat.interval.ms`.
pub const DEFAULT_BROKER_HEARTBEAT_INTERVAL_MS: u64 = 500;

/// A request that did not reach the active controller, or got no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChannelError {
    #[error("no active controller is known")]
    NoController,
    #[error("controller unreachable: {0}")]
    Unreachable(String),
    #[error("controller request timed out")]
    Timeout,
}

/// How the broker reaches the active controller (over the quorum's controller listener; in
/// tests, in process). It finds the active controller itself and retries NOT_CONTROLLER
/// answers elsewhere if it can; the lifecycle manager retries what is left.
pub trait ControllerChannel: Send + Sync + 'static {
    fn call(
        &self,
        request: ControllerRequest,
    ) -> BoxFuture<'static, Result<ControllerResponse, ChannelError>>;
}

/// Where the broker is in its life, as the controller sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BrokerState {
    /// Not registered yet.
    Starting,
    /// Registered and fenced: catching up with the metadata log; serves no partitions.
    Recovering,
    /// Unfenced: may lead and follow partitions.
    Running,
    /// Asked to shut down; waiting for the controller to move its leaderships.
    PendingControlledShutdown,
    /// The controller let it go (or the wait timed out): stop.
    ShuttingDown,
    /// Another live process holds this broker id (DUPLICATE_BROKER_REGISTRATION for longer
    /// than a session): stop with [`BrokerLifecycleManager::refusal`] as the error.
    Refused,
}

/// Timing of the lifecycle manager.
#[derive(Debug, Clone)]
pub struct LifecycleConfig {
    /// `broker.heartbeat.interval.ms`.
    pub heartbeat_interval: Duration,
    /// Wait between failed registration attempts.
    pub registration_retry_backoff: Duration,
    /// The longest one request to the controller may take.
    pub request_timeout: Duration,
    /// How long [`BrokerLifecycleManager::controlled_shutdown`] waits for the controller.
    pub controlled_shutdown_timeout: Duration,
    /// How long registrations refused with DUPLICATE_BROKER_REGISTRATION are retried before
    /// the broker gives up ([`BrokerState::Refused`]). Longer than `broker.session.timeout.ms`:
    /// the session of a crashed earlier process of this node runs out within that, so only a
    /// second live process with the same id is refused for longer.
    pub duplicate_registration_timeout: Duration,
}

impl Default for LifecycleConfig {
    fn default() -> LifecycleConfig {
        LifecycleConfig {
            heartbeat_interval: Duration::from_millis(DEFAULT_BROKER_HEARTBEAT_INTERVAL_MS),
            registration_retry_backoff: Duration::from_millis(DEFAULT_BROKER_HEARTBEAT_INTERVAL_MS),
            request_timeout: Duration::from_millis(DEFAULT_BROKER_SESSION_TIMEOUT_MS / 2),
            controlled_shutdown_timeout: Duration::from_secs(30),
            duplicate_registration_timeout: Duration::from_millis(
                2 * DEFAULT_BROKER_SESSION_TIMEOUT_MS,
            ),
        }
    }
}

/// Who the broker is, for its registration.
#[derive(Debug, Clone)]
pub struct BrokerIdentity {
    pub broker_id: BrokerId,
    /// Fresh for every process start (`Uuid::new_v4()`).
    pub incarnation_id: Uuid,
    pub endpoints: Vec<BrokerEndpoint>,
    pub rack: Option<String>,
    /// The broker epoch the last clean shutdown left (KIP-966), `None` after an unclean one.
    pub previous_broker_epoch: Option<i64>,
    /// KIP-858: the ids of its online log directories (empty when unknown).
    pub log_dirs: Vec<Uuid>,
}

/// Registers the broker, keeps its session alive, and runs its controlled shutdown.
pub struct BrokerLifecycleManager {
    state: watch::Receiver<BrokerState>,
    /// Shared with the task, so a timed-out shutdown can still say `ShuttingDown`.
    state_tx: Arc<watch::Sender<BrokerState>>,
    epoch: watch::Receiver<Option<i64>>,
    want_shut_down: watch::Sender<bool>,
    want_fence: watch::Sender<bool>,
    offline_replicas: watch::Sender<Vec<OfflineReplica>>,
    offline_log_dirs: watch::Sender<Vec<Uuid>>,
    /// The offline log directories a heartbeat the controller answered has carried.
    acknowledged_offline_dirs: watch::Receiver<Vec<Uuid>>,
    cordoned: watch::Sender<Option<bool>>,
    /// Why the controller refused this broker for good (set with [`BrokerState::Refused`]).
    refusal: watch::Receiver<Option<String>>,
    config: LifecycleConfig,
    task: Option<JoinHandle<()>>,
}

impl BrokerLifecycleManager {
    /// Starts registering and heartbeating. `metadata_offset` is the offset of the last
    /// metadata record this broker applied (-1 before any). Must be called inside a tokio
    /// runtime.
    pub fn start(
        channel: Arc<dyn ControllerChannel>,
        identity: BrokerIdentity,
        metadata_offset: watch::Receiver<i64>,
        config: LifecycleConfig,
    ) -> BrokerLifecycleManager {
        let (state_tx, state) = watch::channel(BrokerState::Starting);
        let state_tx = Arc::new(state_tx);
        let (epoch_tx, epoch) = watch::channel(None);
        let (want_shut_down, want_rx) = watch::channel(false);
        let (want_fence, want_fence_rx) = watch::channel(false);
        let (offline_replicas, offline_rx) = watch::channel(Vec::new());
        let (offline_log_dirs, offline_dirs_rx) = watch::channel(Vec::new());
        let (acknowledged_tx, acknowledged_offline_dirs) = watch::channel(Vec::new());
        let (cordoned, cordoned_rx) = watch::channel(None);
        let (refusal_tx, refusal) = watch::channel(None);
        let task = Lifecycle {
            channel,
            identity,
            metadata_offset,
            config: config.clone(),
            state: state_tx.clone(),
            epoch: epoch_tx,
            want_shut_down: want_rx,
            want_fence: want_fence_rx,
            offline_replicas: offline_rx,
            offline_log_dirs: offline_dirs_rx,
            acknowledged_offline_dirs: acknowledged_tx,
            cordoned: cordoned_rx,
            refusal: refusal_tx,
        };
        BrokerLifecycleManager {
            state,
            state_tx,
            epoch,
            want_shut_down,
            want_fence,
            offline_replicas,
            offline_log_dirs,
            acknowledged_offline_dirs,
            cordoned,
            refusal,
            config,
            task: Some(tokio::spawn(task.run())),
        }
    }

    /// The broker's state, as it changes.
    pub fn state(&self) -> watch::Receiver<BrokerState> {
        self.state.clone()
    }

    /// Why the broker is [`BrokerState::Refused`]: the controller's message about the other
    /// process that holds this broker id.
    pub fn refusal(&self) -> Option<String> {
        self.refusal.borrow().clone()
    }

    /// The epoch of the accepted registration, once there is one.
    pub fn broker_epoch(&self) -> Option<i64> {
        *self.epoch.borrow()
    }

    /// The epoch of the accepted registration, as it changes.
    pub fn watch_broker_epoch(&self) -> watch::Receiver<Option<i64>> {
        self.epoch.clone()
    }

    /// Whether the broker asks to stay (or become) fenced: Kafka's `wantFence`, for a broker
    /// that is not ready to serve (its logs are still loading). Off by default: then the
    /// broker is unfenced as soon as its metadata offset reaches its registration.
    pub fn set_want_fence(&self, want_fence: bool) {
        self.want_fence.send_replace(want_fence);
    }

    /// The replicas this broker holds in failed log directories, reported in every heartbeat
    /// from now on (the controller moves their leaderships and takes them out of the ISRs);
    /// sent at once rather than at the next tick.
    pub fn set_offline_replicas(&self, replicas: Vec<OfflineReplica>) {
        self.offline_replicas.send_if_modified(|current| {
            let changed = *current != replicas;
            *current = replicas;
            changed
        });
    }

    /// KIP-858: the ids of the log directories that failed since the broker started,
    /// reported in every heartbeat from now on (the controller keeps the others as the
    /// broker's online directories); sent at once rather than at the next tick.
    pub fn set_offline_log_dirs(&self, dirs: Vec<Uuid>) {
        self.offline_log_dirs.send_if_modified(|current| {
            let changed = *current != dirs;
            *current = dirs;
            changed
        });
    }

    /// The offline log directories ([`BrokerLifecycleManager::set_offline_log_dirs`]) the
    /// controller has been told of: those of the last heartbeat it answered.
    pub fn acknowledged_offline_dirs(&self) -> watch::Receiver<Vec<Uuid>> {
        self.acknowledged_offline_dirs.clone()
    }

    /// Whether every log directory of the broker is cordoned (KIP-1066), as of the metadata it
    /// applied: reported in every heartbeat from now on, so the controller places no new
    /// replica here while it is so.
    pub fn set_cordoned(&self, cordoned: bool) {
        self.cordoned.send_if_modified(|c| {
            let changed = *c != Some(cordoned);
            *c = Some(cordoned);
            changed
        });
    }

    /// Asks the controller to move this broker's leaderships away and resolves when it says
    /// the broker may stop (`true`) or after `controlled_shutdown_timeout` (`false`). The state
    /// is [`BrokerState::ShuttingDown`] afterwards either way, and heartbeats stop.
    pub async fn controlled_shutdown(&self) -> bool {
        let _ = self.want_shut_down.send(true);
        let mut state = self.state.clone();
        let allowed = tokio::time::timeout(
            self.config.controlled_shutdown_timeout,
            state.wait_for(|s| *s == BrokerState::ShuttingDown),
        )
        .await
        .is_ok_and(|r| r.is_ok());
        if !allowed {
            warn!("controlled shutdown timed out; stopping without the controller's consent");
        }
        if let Some(task) = &self.task {
            task.abort();
        }
        self.state_tx.send_replace(BrokerState::ShuttingDown);
        allowed
    }
}

impl Drop for BrokerLifecycleManager {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// The lifecycle manager's task.
struct Lifecycle {
    channel: Arc<dyn ControllerChannel>,
    identity: BrokerIdentity,
    metadata_offset: watch::Receiver<i64>,
    config: LifecycleConfig,
    state: Arc<watch::Sender<BrokerState>>,
    epoch: watch::Sender<Option<i64>>,
    want_shut_down: watch::Receiver<bool>,
    want_fence: watch::Receiver<bool>,
    offline_replicas: watch::Receiver<Vec<OfflineReplica>>,
    offline_log_dirs: watch::Receiver<Vec<Uuid>>,
    acknowledged_offline_dirs: watch::Sender<Vec<Uuid>>,
    cordoned: watch::Receiver<Option<bool>>,
    refusal: watch::Sender<Option<String>>,
}

enum Registration {
    Accepted(i64),
    Stop,
    /// Refused as a duplicate for longer than `duplicate_registration_timeout`.
    Duplicate(String),
}

impl Lifecycle {
    async fn run(mut self) {
        loop {
            let epoch = match self.register().await {
                Registration::Accepted(epoch) => epoch,
                Registration::Stop => {
                    self.state.send_replace(BrokerState::ShuttingDown);
                    return;
                }
                Registration::Duplicate(reason) => {
                    error!(
                        broker = self.identity.broker_id,
                        incarnation = %self.identity.incarnation_id,
                        %reason,
                        "another live process is registered with this node id; is node.id {} \
                         used twice? giving up",
                        self.identity.broker_id
                    );
                    self.refusal.send_replace(Some(reason));
                    self.state.send_replace(BrokerState::Refused);
                    return;
                }
            };
            self.epoch.send_replace(Some(epoch));
            self.set_state(BrokerState::Recovering);
            if self.heartbeat_until_stopped(epoch).await {
                self.state.send_replace(BrokerState::ShuttingDown);
                return;
            }
            // The registration is gone (stale epoch): register again.
            self.set_state(BrokerState::Starting);
        }
    }

    fn set_state(&self, state: BrokerState) {
        let old = self.state.send_replace(state);
        if old != state {
            info!(broker = self.identity.broker_id, ?old, new = ?state, "broker state");
        }
    }

    async fn call(&self, request: ControllerRequest) -> Result<ControllerResponse, ChannelError> {
        match tokio::time::timeout(self.config.request_timeout, self.channel.call(request)).await {
            Ok(result) => result,
            Err(_) => Err(ChannelError::Timeout),
        }
    }

    /// Registers, retrying until the controller accepts (or a shutdown is asked for first,
    /// when there is nothing to hand over).
    async fn register(&mut self) -> Registration {
        // When the first DUPLICATE_BROKER_REGISTRATION came, and from which controller's
        // sessions (a new active controller starts them afresh, so the wait starts again).
        let mut duplicate_since: Option<(tokio::time::Instant, Option<u64>)> = None;
        loop {
            if *self.want_shut_down.borrow() {
                return Registration::Stop;
            }
            let request = ControllerRequest::RegisterBroker(RegisterBrokerRequest {
                log_dirs: self.identity.log_dirs.clone(),
                broker_id: self.identity.broker_id,
                incarnation_id: self.identity.incarnation_id,
                endpoints: self.identity.endpoints.clone(),
                rack: self.identity.rack.clone(),
                previous_broker_epoch: self.identity.previous_broker_epoch,
            });
            match self.call(request).await {
                Ok(ControllerResponse::RegisterBroker(r)) if r.error_code == code::NONE => {
                    info!(
                        broker = self.identity.broker_id,
                        broker_epoch = r.broker_epoch,
                        "registered with the controller"
                    );
                    return Registration::Accepted(r.broker_epoch);
                }
                Ok(ControllerResponse::RegisterBroker(r))
                    if r.error_code == code::DUPLICATE_BROKER_REGISTRATION =>
                {
                    let since = match duplicate_since {
                        Some((at, sessions)) if sessions == r.sessions_id => at,
                        _ => {
                            let now = tokio::time::Instant::now();
                            duplicate_since = Some((now, r.sessions_id));
                            now
                        }
                    };
                    let reason = r.error_message.unwrap_or_else(|| {
                        format!(
                            "broker {} is registered by another process",
                            self.identity.broker_id
                        )
                    });
                    if since.elapsed() >= self.config.duplicate_registration_timeout {
                        return Registration::Duplicate(reason);
                    }
                    warn!(
                        broker = self.identity.broker_id,
                        %reason,
                        "registration refused as a duplicate; retrying until the other \
                         registration's session is over"
                    );
                }
                Ok(ControllerResponse::RegisterBroker(r)) => warn!(
                    broker = self.identity.broker_id,
                    error_code = r.error_code,
                    message = r.error_message.as_deref().unwrap_or(""),
                    "registration refused; retrying"
                ),
                Ok(other) => {
                    debug!(response = ?other.error_code(), "registration not handled; retrying")
                }
                Err(e) => debug!(error = %e, "registration failed; retrying"),
            }
            let backoff = self.config.registration_retry_backoff;
            // Biased (the shutdown first), so a run under paused time is a function of its
            // inputs (the simulation replays seeds).
            tokio::select! {
                biased;
                // Err: the manager is gone.
                changed = self.want_shut_down.changed() => if changed.is_err() {
                    return Registration::Stop;
                },
                _ = tokio::time::sleep(backoff) => {}
            }
        }
    }

    /// Heartbeats under `epoch` until the controller lets the broker stop (`true`) or the
    /// registration is no longer valid (`false`).
    async fn heartbeat_until_stopped(&mut self, epoch: i64) -> bool {
        let mut ticker = tokio::time::interval(self.config.heartbeat_interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                // Send the shutdown request at once rather than at the next tick; Err: the
                // manager is gone.
                changed = self.want_shut_down.changed() => if changed.is_err() {
                    return true;
                },
                // Report a failed directory's replicas at once; Err: the manager is gone.
                changed = self.offline_replicas.changed() => if changed.is_err() {
                    return true;
                },
                changed = self.offline_log_dirs.changed() => if changed.is_err() {
                    return true;
                },
                _ = ticker.tick() => {}
            }
            let want_shut_down = *self.want_shut_down.borrow();
            if want_shut_down {
                self.set_state(BrokerState::PendingControlledShutdown);
            }
            let offline_log_dirs = self.offline_log_dirs.borrow().clone();
            let request = ControllerRequest::BrokerHeartbeat(BrokerHeartbeatRequest {
                offline_log_dirs: offline_log_dirs.clone(),
                broker_id: self.identity.broker_id,
                broker_epoch: epoch,
                current_metadata_offset: *self.metadata_offset.borrow(),
                want_fence: *self.want_fence.borrow(),
                want_shut_down,
                offline_replicas: self.offline_replicas.borrow().clone(),
                cordoned: *self.cordoned.borrow(),
            });
            match self.call(request).await {
                Ok(ControllerResponse::BrokerHeartbeat(r)) if r.error_code == code::NONE => {
                    // The controller knows of these now (Kafka's acknowledged offline dirs).
                    self.acknowledged_offline_dirs.send_if_modified(|acked| {
                        let changed = *acked != offline_log_dirs;
                        acked.clone_from(&offline_log_dirs);
                        changed
                    });
                    if r.should_shut_down {
                        info!(
                            broker = self.identity.broker_id,
                            "controller allows shutdown"
                        );
                        return true;
                    }
                    if !want_shut_down {
                        self.set_state(if r.is_fenced {
                            BrokerState::Recovering
                        } else {
                            BrokerState::Running
                        });
                    }
                }
                Ok(ControllerResponse::BrokerHeartbeat(r))
                    if r.error_code == code::STALE_BROKER_EPOCH
                        || r.error_code == code::BROKER_ID_NOT_REGISTERED =>
                {
                    warn!(
                        broker = self.identity.broker_id,
                        error_code = r.error_code,
                        "heartbeat refused: registering again"
                    );
                    return false;
                }
                Ok(other) => debug!(response = ?other, "heartbeat not handled"),
                Err(e) => debug!(error = %e, "heartbeat failed"),
            }
        }
    }
}
