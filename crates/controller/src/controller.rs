//! `QuorumController`: the active controller's runtime.
//!
//! One task owns every decision, so no two of them race on a stale image:
//!
//! ```text
//!  handle(request) ─► mpsc ─┐
//!  session deadline ────────┤      ┌─► decide against log.image()   (gregor_metadata::controller)
//!  rebalance interval ──────┼─► task ─► propose(records).await       (MetadataLog)
//!  image changed ───────────┘      └─► answer; then complete finished reassignments
//! ```
//!
//! Each event is decided against the latest committed image, its records proposed, and the
//! proposal awaited before the next event is looked at. Decisions themselves live in
//! `gregor_metadata::controller`; this module adds what needs time or memory across requests:
//! broker sessions ([`BrokerHeartbeatManager`]), broker epochs (the offset of the
//! registration), controlled shutdown, and the periodic preferred-leader election.
//!
//! Lifecycle: [`QuorumController::activate`] when this node becomes the quorum leader;
//! [`QuorumController::shutdown`] (or drop) when it stops leading, and
//! [`QuorumController::deactivate`] first if requests in flight may still hold it, then
//! [`QuorumController::stopped`] before a new controller is activated on this node. A proposal
//! refused with `NotLeader` stops the task by itself; from then on, and after shutdown or
//! deactivation, every request is answered NOT_CONTROLLER so the caller retries on the new
//! active controller. A deactivated controller abandons the proposal it awaits (Kafka's
//! `renounce` fails the pending operations with NOT_CONTROLLER; the batch may still commit, as
//! any appended one can) and proposes nothing more: a deposed controller that went on deciding
//! beside its successor once wrote the bootstrap records a second time. Broker sessions
//! are memory only: a newly active controller starts every session afresh (as Kafka does), but
//! gives a broker it has not heard from only the activation grace (1 s by default) rather than
//! a whole session, so a broker that died with the old controller is fenced sooner, while a live
//! one reaches the new controller within a few heartbeats.

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use gregor_metadata::code;
use gregor_metadata::controller::{
    allocate_producer_ids, alter_broker_config, alter_client_metrics_config, alter_client_quota,
    alter_group_config, alter_partition_avoiding, alter_partition_reassignment_avoiding,
    alter_topic_config, alter_user_scram_credentials, assign_replicas_to_dirs,
    create_partitions_on, create_topic, create_topic_with_assignments, delete_topic,
    elect_leader_avoiding, fence_broker_avoiding, register_broker_avoiding, set_broker_cordoned,
    take_dirs_offline, take_replicas_offline, unclean_election_enabled, unfence_broker_avoiding,
    AlterPartition, ControllerDefaults, CreateTopic, OfflineReplicas, RegisterBroker,
    ReplicaAssignment,
};
use gregor_metadata::placement::MAX_PARTITIONS_PER_BATCH;
use gregor_metadata::DelegationTokenConfig;
use gregor_metadata::{
    BrokerHeartbeat, BrokerHeartbeatManager, BrokerId, ClientQuotaEntity, ControllerError,
    Election, FeatureLevelRecord, HeartbeatAction, MetadataImage, MetadataRecord,
    PartitionChangeBuilder, QuotaEntityName, ScramMechanism, TopicIdPartition,
    ELIGIBLE_LEADER_REPLICAS_VERSION_FEATURE, GROUP_VERSION_FEATURE, METADATA_VERSION_FEATURE,
    QUOTA_ENTITY_CLIENT_ID, QUOTA_ENTITY_USER, SHARE_VERSION_FEATURE, STREAMS_VERSION_FEATURE,
    TRANSACTION_VERSION_FEATURE,
};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::task::JoinHandle;
use tracing::{debug, error, info, warn};
use uuid::Uuid;

use crate::clock::Clock;
use crate::log::{MetadataLog, ProposeError};
use crate::protocol::*;

/// `broker.session.timeout.ms`: see [`crate::lifecycle`] for why 3 s.
pub const DEFAULT_BROKER_SESSION_TIMEOUT_MS: u64 = 3_000;

/// The most records one request may create (Kafka's `MAX_RECORDS_PER_USER_OP`): a topic
/// record, a record per partition and per config override.
pub const MAX_RECORDS_PER_USER_OP: usize = 10_000;

/// `leader.imbalance.check.interval.seconds` (Kafka: 300).
pub const DEFAULT_LEADER_IMBALANCE_CHECK_INTERVAL: Duration = Duration::from_secs(300);

/// How the active controller decides. Field names follow Kafka's configs.
#[derive(Debug, Clone)]
pub struct ControllerConfig {
    /// This controller's node id (`node.id`), which a refused feature update names (Kafka's
    /// "Local controller 1 only supports ...").
    pub node_id: i32,
    /// `broker.session.timeout.ms`: a broker silent this long is fenced.
    pub broker_session_timeout_ms: u64,
    /// `num.partitions`: partitions of a topic created with -1.
    pub num_partitions: i32,
    /// `default.replication.factor`: replication factor of a topic created with -1.
    pub default_replication_factor: i16,
    /// `unclean.leader.election.enable` for topics without an override.
    pub unclean_leader_election_enable: bool,
    /// The static `min.insync.replicas` (topics without an override and no cluster-wide
    /// dynamic value): the ELR (KIP-966) forms below it.
    pub min_insync_replicas: i32,
    /// `auto.leader.rebalance.enable`: move leaderships back to preferred replicas.
    pub auto_leader_rebalance_enable: bool,
    /// `leader.imbalance.check.interval.seconds`.
    pub leader_imbalance_check_interval: Duration,
    /// The broker in this controller's own process (combined mode), if any. Its registration
    /// with a new incarnation replaces the old one at once, even within the old session: the
    /// old incarnation was an earlier process of this very node (the quorum refuses any peer
    /// that claims this node's id), so it is certainly gone. Without this a restarted single
    /// node would wait out its previous session before serving.
    pub local_broker_id: Option<BrokerId>,
    /// How long a newly active controller waits for a broker it has not heard from before
    /// fencing it (at most the session timeout). Kafka waits a whole session, which adds the
    /// session timeout to every failover that loses the controller and a broker together; live
    /// brokers find a new controller within a few heartbeats.
    pub activation_grace_ms: u64,
    /// The `transaction.version` level a new cluster finalizes (Kafka's `kafka-storage format
    /// --feature transaction.version=N`): written with the first broker registration when the
    /// image has no level yet, so every broker advertises the same one. `None` writes none
    /// (the controller's unit tests, which count records).
    pub transaction_version: Option<i16>,
    /// The `share.version` level (KIP-932) a cluster finalizes, the same way, when its image
    /// has none (Kafka 4.4 formats a new cluster at 2). `None` writes none.
    pub share_version: Option<i16>,
    /// The `group.version` level (KIP-848: 1 enables the consumer group protocol) a cluster
    /// finalizes, the same way (Kafka 4.4 formats a new cluster at 1). `None` writes none.
    pub group_version: Option<i16>,
    /// The `streams.version` level (KIP-1071: 1 enables streams groups) a cluster finalizes,
    /// the same way (Kafka 4.4 formats a new cluster at 1). `None` writes none.
    pub streams_version: Option<i16>,
    /// The `metadata.version` level (Kafka's `MetadataVersion`) a cluster finalizes, the same
    /// way (4.4-IV2, as Kafka 4.4 formats a new cluster). `None` writes none.
    pub metadata_version: Option<i16>,
    /// The `eligible.leader.replicas.version` level (KIP-966) a cluster finalizes, the same
    /// way (Kafka 4.4 formats a new cluster at 1). `None` writes none.
    pub eligible_leader_replicas_version: Option<i16>,
    /// Records a new cluster's metadata log starts with (Kafka's `BootstrapMetadata`, which
    /// `kafka-storage format` writes, e.g. the credentials of `--add-scram`): the first active
    /// controller proposes them once, as the log's first batch, when it finds the committed
    /// log empty; a controller of an existing cluster writes nothing. Every voter may be given
    /// the same ones; whichever is elected first writes them, and only it.
    pub bootstrap_records: Vec<MetadataRecord>,
    /// The `delegation.token.*` keys (KIP-48): the secret key (none: tokens disabled), the
    /// lifetimes, and how often expired tokens are removed.
    pub delegation_tokens: DelegationTokenConfig,
}

/// Default [`ControllerConfig::activation_grace_ms`]: two of the default heartbeat intervals.
pub const DEFAULT_ACTIVATION_GRACE_MS: u64 = 1_000;

impl Default for ControllerConfig {
    fn default() -> ControllerConfig {
        ControllerConfig {
            node_id: -1,
            broker_session_timeout_ms: DEFAULT_BROKER_SESSION_TIMEOUT_MS,
            num_partitions: 1,
            default_replication_factor: 1,
            unclean_leader_election_enable: false,
            min_insync_replicas: 1,
            auto_leader_rebalance_enable: true,
            leader_imbalance_check_interval: DEFAULT_LEADER_IMBALANCE_CHECK_INTERVAL,
            local_broker_id: None,
            activation_grace_ms: DEFAULT_ACTIVATION_GRACE_MS,
            transaction_version: None,
            share_version: None,
            group_version: None,
            streams_version: None,
            metadata_version: None,
            eligible_leader_replicas_version: None,
            bootstrap_records: Vec::new(),
            delegation_tokens: DelegationTokenConfig::default(),
        }
    }
}

type Command = (ControllerRequest, oneshot::Sender<ControllerResponse>);

/// Where the ids of new topics come from.
pub(crate) type TopicIdSource = Box<dyn FnMut() -> Uuid + Send>;

/// The active controller of this node. Requests are queued to its task and answered in order.
pub struct QuorumController {
    requests: mpsc::Sender<Command>,
    /// Tells the task to stop.
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
    /// Closed when the task ends (its sender lives in the task), for [`Self::stopped`].
    done: watch::Receiver<()>,
}

/// Requests waiting for the controller task; more wait in callers (they get NOT_CONTROLLER
/// only when the controller is gone).
const QUEUE_DEPTH: usize = 1024;

impl QuorumController {
    /// Starts the controller over `log`, whose node has just become the quorum leader.
    /// Must be called inside a tokio runtime.
    pub fn activate(
        log: Arc<dyn MetadataLog>,
        config: ControllerConfig,
        clock: Arc<dyn Clock>,
    ) -> QuorumController {
        QuorumController::activate_with_topic_ids(
            log,
            config,
            clock,
            Box::new(gregor_metadata::random_uuid),
        )
    }

    /// [`activate`](Self::activate) with the source of new topic ids (which also seed the
    /// replica placement): random in production, seeded in the simulation so that a run is a
    /// function of its seed.
    pub(crate) fn activate_with_topic_ids(
        log: Arc<dyn MetadataLog>,
        config: ControllerConfig,
        clock: Arc<dyn Clock>,
        new_topic_id: TopicIdSource,
    ) -> QuorumController {
        let (requests, rx) = mpsc::channel(QUEUE_DEPTH);
        let (stop, stop_rx) = watch::channel(false);
        let now = clock.now_ms();
        let mut new_topic_id = new_topic_id;
        // From the same source as topic ids: random, or seeded in the simulation.
        let sessions_id = new_topic_id().as_u64_pair().0;
        let runtime = Runtime {
            image: log.image(),
            log,
            defaults: ControllerDefaults {
                unclean_leader_election_enable: config.unclean_leader_election_enable,
                min_insync_replicas: config.min_insync_replicas,
            },
            // Sessions start afresh, but brokers get only the activation grace (not a whole
            // session) to reach the new controller: a live broker heartbeats it within a few
            // hundred milliseconds of the election, while one that died with the old
            // controller is fenced that much sooner.
            heartbeats: BrokerHeartbeatManager::new(config.broker_session_timeout_ms, now)
                .with_activation_grace(now, config.activation_grace_ms),
            config,
            clock,
            registrations: HashMap::new(),
            controlled_shutdowns: HashMap::new(),
            offline: OfflineReplicas::default(),
            fence_retry_at_ms: 0,
            active: true,
            stop: stop_rx.clone(),
            new_topic_id,
            sessions_id,
        };
        let (done_tx, done) = watch::channel(());
        let task = tokio::spawn(async move {
            // Dropped when the task ends or is aborted.
            let _done = done_tx;
            runtime.run(rx, stop_rx).await
        });
        QuorumController {
            requests,
            stop,
            task: Some(task),
            done,
        }
    }

    /// Whether this controller still takes requests (it stops when it loses the leadership).
    pub fn is_active(&self) -> bool {
        !self.requests.is_closed()
    }

    /// Decides `request`, proposes its records and answers once they are committed.
    pub async fn handle(&self, request: ControllerRequest) -> ControllerResponse {
        let name = request.name();
        let (reply, answer) = oneshot::channel();
        if self.requests.send((request, reply)).await.is_err() {
            return not_controller();
        }
        match answer.await {
            Ok(response) => response,
            Err(_) => {
                debug!(request = name, "controller stopped before answering");
                not_controller()
            }
        }
    }

    /// [`handle`](Self::handle) on bytes from the controller listener: an undecodable request
    /// gets an INVALID_REQUEST error response.
    pub async fn handle_bytes(&self, payload: Bytes) -> Bytes {
        match ControllerRequest::decode(&payload) {
            Ok(request) => self.handle(request).await.encode(),
            Err(e) => {
                warn!(error = %e, "undecodable controller request");
                ControllerResponse::error(code::INVALID_REQUEST, e.to_string()).encode()
            }
        }
    }

    /// Stops taking requests at once, even while callers still hold this controller (the
    /// node lost the quorum leadership): the decision in progress finishes, every request
    /// queued or sent afterwards is answered NOT_CONTROLLER. Without it a deposed controller
    /// kept by a request in flight would go on answering what needs no proposal (heartbeats,
    /// retried registrations) from its image until the last caller let go.
    pub fn deactivate(&self) {
        let _ = self.stop.send(true);
    }

    /// Resolves once the task has ended (after [`deactivate`](Self::deactivate): at once, or
    /// when the decision in progress, which proposes nothing more, is done). Does not hold the
    /// controller, so a caller can wait for it while requests in flight still do.
    pub fn stopped(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut done = self.done.clone();
        async move { while done.changed().await.is_ok() {} }
    }

    /// Stops the task once the decision in progress is done (its proposal may still commit).
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            if let Err(e) = task.await {
                if e.is_panic() {
                    error!("controller task panicked: {e}");
                }
            }
        }
    }
}

impl Drop for QuorumController {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// Milliseconds since the epoch: delegation tokens' timestamps are wall-clock times, which
/// clients compare with their own clocks (Kafka's `time.milliseconds()`).
fn wall_clock_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The answer of a controller that is not (or no longer) active.
pub fn not_controller() -> ControllerResponse {
    ControllerResponse::error(
        code::NOT_CONTROLLER,
        "this node is not the active controller",
    )
}

/// The state the controller task keeps across events.
struct Runtime {
    log: Arc<dyn MetadataLog>,
    image: watch::Receiver<Arc<MetadataImage>>,
    config: ControllerConfig,
    defaults: ControllerDefaults,
    clock: Arc<dyn Clock>,
    heartbeats: BrokerHeartbeatManager,
    /// The offset at which each broker's registration (by epoch) was committed, for the
    /// registrations this controller made: a broker is caught up once it applied that. Other
    /// registrations use their epoch, which is not above it.
    registrations: HashMap<BrokerId, (i64, u64)>,
    /// Brokers in controlled shutdown (by epoch) and the offset of the records that moved
    /// their leaderships: they may stop once they applied it.
    controlled_shutdowns: HashMap<BrokerId, (i64, u64)>,
    /// The replicas each broker's heartbeats report in a failed log directory: this term's
    /// elections skip them.
    offline: OfflineReplicas,
    /// After a failed fence of an expired session, when to try again (no busy loop).
    fence_retry_at_ms: u64,
    /// False once a proposal was refused with NotLeader (or abandoned on deactivation).
    active: bool,
    /// True once deactivated: the proposal awaited is abandoned and none is made after.
    stop: watch::Receiver<bool>,
    /// Ids for new topics.
    new_topic_id: TopicIdSource,
    /// Drawn at activation: names the sessions this controller keeps (see
    /// `RegisterBrokerResponse::sessions_id`).
    sessions_id: u64,
}

/// An error for one item of a response: code and message.
type ItemError = (i16, Option<String>);

fn item_error(e: &ControllerError) -> ItemError {
    (e.code(), Some(e.to_string()))
}

/// A quota entity from Kafka's (entity type, name) pairs: `user`, `client-id` and `ip`, each
/// at most once, at least one.
fn quota_entity(parts: &[(String, Option<String>)]) -> Result<ClientQuotaEntity, ControllerError> {
    let mut entity = ClientQuotaEntity {
        user: None,
        client_id: None,
        ip: None,
    };
    for (entity_type, name) in parts {
        if name.as_deref() == Some("") {
            return Err(ControllerError::InvalidClientQuota(format!(
                "Empty {} not supported",
                entity_type.chars().take(64).collect::<String>()
            )));
        }
        let slot = match entity_type.as_str() {
            QUOTA_ENTITY_USER => &mut entity.user,
            QUOTA_ENTITY_CLIENT_ID => &mut entity.client_id,
            gregor_metadata::QUOTA_ENTITY_IP => &mut entity.ip,
            other => {
                return Err(ControllerError::InvalidClientQuota(format!(
                    "Unhandled client quota entity type: {}",
                    other.chars().take(64).collect::<String>()
                )))
            }
        };
        if slot
            .replace(QuotaEntityName::from_option(name.as_deref()))
            .is_some()
        {
            return Err(ControllerError::InvalidClientQuota(format!(
                "Duplicate {entity_type} entity type in the quota entity"
            )));
        }
    }
    if entity.user.is_none() && entity.client_id.is_none() && entity.ip.is_none() {
        return Err(ControllerError::InvalidRequest("empty client quota entity"));
    }
    Ok(entity)
}

/// The SCRAM credentials among `records`, as `user (MECHANISM)`, for a log line: names only.
fn scram_users(records: &[MetadataRecord]) -> String {
    records
        .iter()
        .filter_map(|r| match r {
            MetadataRecord::UserScramCredential(c) => Some(format!(
                "{} ({})",
                c.name,
                ScramMechanism::from_type(c.mechanism).map_or("unknown", |m| m.mechanism_name())
            )),
            _ => None,
        })
        .collect::<Vec<_>>()
        .join(", ")
}

fn propose_error(e: &ProposeError) -> ItemError {
    let code = match e {
        ProposeError::NotLeader => code::NOT_CONTROLLER,
        ProposeError::Invalid(_) => code::UNKNOWN_SERVER_ERROR,
        ProposeError::Unavailable(_) => code::REQUEST_TIMED_OUT,
    };
    (code, Some(e.to_string()))
}

/// Kafka's `ControllerStats` UncleanLeaderElectionsPerSec, as Strimzi's exporter rules name it:
/// counted by the active controller when a proposal that elects a leader from outside the ISR
/// is committed.
const UNCLEAN_ELECTIONS: &str = "kafka_controller_controllerstats_uncleanleaderelections_total";

impl Runtime {
    async fn run(mut self, mut requests: mpsc::Receiver<Command>, mut stop: watch::Receiver<bool>) {
        info!(
            offset = self.current().provenance().offset,
            "controller active"
        );
        // Shown from the start, at 0, as Kafka registers the meter.
        metrics::counter!(UNCLEAN_ELECTIONS).increment(0);
        // Kafka's controller acts only once it has replayed the log up to the start of its
        // term. Entries a predecessor appended may still commit after this node took over; an
        // empty proposal of this term commits, and applies here, all of them first, so no
        // decision below is made on an image that lags the log.
        self.catch_up().await;
        if self.active && !self.config.bootstrap_records.is_empty() {
            // Before any request: a new cluster's first records are its bootstrap records.
            self.bootstrap().await;
        }
        let period = self
            .config
            .leader_imbalance_check_interval
            .max(Duration::from_millis(1));
        let mut rebalance = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        rebalance.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // `delegation.token.expiry.check.interval.ms`: expired delegation tokens are removed.
        let token_period = Duration::from_millis(
            u64::try_from(self.config.delegation_tokens.expiry_check_interval_ms)
                .unwrap_or(1)
                .max(1),
        );
        let mut token_expiry =
            tokio::time::interval_at(tokio::time::Instant::now() + token_period, token_period);
        token_expiry.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let tokens_enabled = self.config.delegation_tokens.secret_key.is_some();
        while self.active {
            let session_wait = self.next_session_check();
            if session_wait == Some(Duration::ZERO) {
                // Checked here, not only when a timer fires, so a stream of requests cannot
                // delay fencing. The requests already queued go first: a heartbeat that waited
                // behind a long decision arrived in time and must count.
                for _ in 0..requests.len() {
                    let Ok((request, reply)) = requests.try_recv() else {
                        break;
                    };
                    let response = self.handle(request).await;
                    let _ = reply.send(response);
                }
                if self.active {
                    self.fence_expired_brokers().await;
                }
            } else {
                tokio::select! {
                    biased;
                    _ = stop.changed() => break,
                    _ = tokio::time::sleep(session_wait.unwrap_or(Duration::ZERO)), if session_wait.is_some() => {
                        // Expired sessions are fenced at the top of the loop.
                        continue;
                    }
                    command = requests.recv() => match command {
                        None => break,
                        Some((request, reply)) => {
                            let response = self.handle(request).await;
                            let _ = reply.send(response);
                        }
                    },
                    _ = rebalance.tick(), if self.config.auto_leader_rebalance_enable => {
                        self.rebalance_leaders().await;
                    }
                    _ = token_expiry.tick(), if tokens_enabled => {
                        self.remove_expired_delegation_tokens().await;
                    }
                    changed = self.image.changed() => {
                        if changed.is_err() {
                            warn!("metadata log closed");
                            break;
                        }
                    }
                }
            }
            if self.active {
                self.complete_reassignments().await;
            }
        }
        info!("controller inactive");
    }

    fn current(&self) -> Arc<MetadataImage> {
        self.image.borrow().clone()
    }

    async fn propose(&mut self, records: Vec<MetadataRecord>) -> Result<u64, ProposeError> {
        if *self.stop.borrow() {
            // Deactivated before this proposal: not even appended.
            self.active = false;
            return Err(ProposeError::NotLeader);
        }
        let unclean = gregor_metadata::unclean_elections(&self.current(), &records);
        let proposal = self.log.propose(records);
        let mut stop = self.stop.clone();
        // A deactivated controller no longer leads: its decisions were made on what it knew
        // then. Its proposal is not even started, or no longer awaited (an appended batch may
        // still commit, and the next controller's first proposal commits after it).
        let result = tokio::select! {
            biased;
            _ = stop.wait_for(|stopped| *stopped) => {
                debug!("deactivated: the proposal in progress is abandoned");
                Err(ProposeError::NotLeader)
            }
            result = proposal => result,
        };
        if result.is_ok() && unclean > 0 {
            metrics::counter!(UNCLEAN_ELECTIONS).increment(unclean);
        }
        match &result {
            Err(ProposeError::NotLeader) => {
                info!("lost the metadata quorum leadership");
                self.active = false;
            }
            Err(e) => error!(error = %e, "metadata proposal failed"),
            Ok(_) => {}
        }
        result
    }

    /// Kafka's `ActivationRecordsGenerator` for an empty log: the bootstrap records become the
    /// first batch of a new cluster's metadata log, once.
    ///
    /// The image this node has applied may lag the log it now leads (a restarted node applies
    /// its log only once the new leader's commit is known). An empty proposal of this term
    /// commits, and applies here, everything before it, so the log is judged whole: only the
    /// controller that finds it empty writes the bootstrap records, and a later one (this node
    /// again, or another voter, with the same records or others) finds them there. A leader
    /// that loses the quorum between the two proposals cannot commit the second.
    ///
    /// Only one controller of a node decides at a time: a deactivated one abandons its pending
    /// proposal and proposes nothing more, and the quorum refuses a proposal of an earlier
    /// term. Without that, a node that lost and won the quorum while its first empty proposal
    /// was pending once ran two bootstraps, both found the log empty, and both wrote.
    /// Commits an empty proposal of this controller's term (see [`Runtime::run`]): tried a
    /// few times while the quorum is unavailable, given up when leadership is lost or the
    /// controller is stopped (its requests then fail as they would have anyway).
    async fn catch_up(&mut self) {
        const ATTEMPTS: u32 = 5;
        for attempt in 1..=ATTEMPTS {
            if attempt > 1 {
                let mut stop = self.stop.clone();
                tokio::select! {
                    biased;
                    _ = stop.wait_for(|stopped| *stopped) => return,
                    _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                }
            }
            match self.propose(Vec::new()).await {
                Ok(offset) => {
                    debug!(offset, "caught up with the log before acting");
                    return;
                }
                Err(ProposeError::NotLeader) => return,
                Err(_) => {}
            }
        }
        warn!(
            attempts = ATTEMPTS,
            "could not commit an entry of this term: acting on the image as applied"
        );
    }

    async fn bootstrap(&mut self) {
        const ATTEMPTS: u32 = 5;
        let count = self.config.bootstrap_records.len();
        if !self.current().is_empty() {
            // Records are never taken back out of a log: an image with any is not a new one's.
            debug!("the metadata log is not new: its bootstrap records are not written again");
            return;
        }
        for attempt in 1..=ATTEMPTS {
            if attempt > 1 {
                let mut stop = self.stop.clone();
                tokio::select! {
                    biased;
                    _ = stop.wait_for(|stopped| *stopped) => return,
                    _ = tokio::time::sleep(Duration::from_millis(200)) => {}
                }
            }
            match self.propose(Vec::new()).await {
                Ok(_) => {}
                Err(ProposeError::NotLeader) => return,
                Err(_) => continue,
            }
            let image = self.current();
            if !image.is_empty() {
                debug!(
                    offset = image.provenance().offset,
                    "the metadata log is not new: its bootstrap records are not written again"
                );
                return;
            }
            let records = self.config.bootstrap_records.clone();
            let users = scram_users(&records);
            match self.propose(records).await {
                Ok(offset) => {
                    info!(
                        records = count,
                        offset,
                        scram_credentials = %users,
                        "a new metadata log: wrote its bootstrap records"
                    );
                    return;
                }
                Err(ProposeError::NotLeader) => return,
                // Records that do not replay on the empty image will not on a retry either.
                Err(ProposeError::Invalid(e)) => {
                    error!(error = %e, "the bootstrap records do not apply; none written");
                    return;
                }
                // Perhaps committed: the next attempt's empty proposal tells.
                Err(ProposeError::Unavailable(_)) => {}
            }
        }
        error!(
            attempts = ATTEMPTS,
            "the bootstrap records were not written: the metadata log refused them"
        );
    }

    async fn handle(&mut self, request: ControllerRequest) -> ControllerResponse {
        if !self.active {
            return not_controller();
        }
        match request {
            ControllerRequest::RegisterBroker(r) => {
                ControllerResponse::RegisterBroker(self.register_broker(r).await)
            }
            ControllerRequest::BrokerHeartbeat(r) => {
                ControllerResponse::BrokerHeartbeat(self.broker_heartbeat(r).await)
            }
            ControllerRequest::CreateTopics(r) => {
                ControllerResponse::CreateTopics(self.create_topics(r).await)
            }
            ControllerRequest::DeleteTopics(r) => {
                ControllerResponse::DeleteTopics(self.delete_topics(r).await)
            }
            ControllerRequest::CreatePartitions(r) => {
                ControllerResponse::CreatePartitions(self.create_partitions(r).await)
            }
            ControllerRequest::AlterPartition(r) => {
                ControllerResponse::AlterPartition(self.alter_partition(r).await)
            }
            ControllerRequest::ElectLeaders(r) => {
                ControllerResponse::ElectLeaders(self.elect_leaders(r).await)
            }
            ControllerRequest::AlterPartitionReassignments(r) => {
                ControllerResponse::AlterPartitionReassignments(self.alter_reassignments(r).await)
            }
            ControllerRequest::ListPartitionReassignments(r) => {
                ControllerResponse::ListPartitionReassignments(self.list_reassignments(&r))
            }
            ControllerRequest::AlterConfigs(r) => {
                ControllerResponse::AlterConfigs(self.alter_configs(r).await)
            }
            ControllerRequest::AllocateProducerIds(r) => {
                ControllerResponse::AllocateProducerIds(self.allocate_producer_ids(r).await)
            }
            ControllerRequest::AlterClientQuotas(r) => {
                ControllerResponse::AlterClientQuotas(self.alter_client_quotas(r).await)
            }
            ControllerRequest::UpdateFeatures(r) => {
                ControllerResponse::UpdateFeatures(self.update_features(r).await)
            }
            ControllerRequest::UnregisterBroker(r) => {
                ControllerResponse::UnregisterBroker(self.unregister_broker(r.broker_id).await)
            }
            ControllerRequest::AssignReplicasToDirs(r) => {
                ControllerResponse::AssignReplicasToDirs(self.assign_replicas_to_dirs(r).await)
            }
            ControllerRequest::AlterUserScramCredentials(r) => {
                ControllerResponse::AlterUserScramCredentials(
                    self.alter_user_scram_credentials(r).await,
                )
            }
            ControllerRequest::CreateAcls(r) => {
                ControllerResponse::CreateAcls(self.create_acls(r).await)
            }
            ControllerRequest::DeleteAcls(r) => {
                ControllerResponse::DeleteAcls(self.delete_acls(r).await)
            }
            ControllerRequest::CreateDelegationToken(r) => {
                ControllerResponse::CreateDelegationToken(self.create_delegation_token(r).await)
            }
            ControllerRequest::RenewDelegationToken(r) => {
                let image = self.current();
                let decided = gregor_metadata::delegation_token::renew_delegation_token(
                    image.delegation_tokens(),
                    &self.config.delegation_tokens,
                    wall_clock_ms(),
                    &r.hmac,
                    &r.principal,
                    r.renew_period_ms,
                );
                ControllerResponse::DelegationTokenExpiry(self.token_expiry(decided).await)
            }
            ControllerRequest::ExpireDelegationToken(r) => {
                let image = self.current();
                let decided = gregor_metadata::delegation_token::expire_delegation_token(
                    image.delegation_tokens(),
                    &self.config.delegation_tokens,
                    wall_clock_ms(),
                    &r.hmac,
                    &r.principal,
                    r.expiry_time_period_ms,
                );
                ControllerResponse::DelegationTokenExpiry(self.token_expiry(decided).await)
            }
        }
    }

    // ---- producer ids -----------------------------------------------------------------

    /// Kafka's `ProducerIdControlManager`: the block is the committed record, so it is handed
    /// out once the record is committed and never again, whichever controller comes next.
    async fn allocate_producer_ids(
        &mut self,
        r: AllocateProducerIdsRequest,
    ) -> AllocateProducerIdsResponse {
        let refused = |error_code| AllocateProducerIdsResponse {
            error_code,
            producer_id_start: -1,
            producer_id_len: 0,
        };
        let image = self.current();
        let (block, record) = match allocate_producer_ids(&image, r.broker_id, r.broker_epoch) {
            Ok(decided) => decided,
            Err(e) => {
                debug!(broker = r.broker_id, error = %e, "AllocateProducerIds refused");
                return refused(e.code());
            }
        };
        match self.propose(vec![record]).await {
            Ok(_) => {
                debug!(
                    broker = r.broker_id,
                    first = block.first_producer_id,
                    "producer id block allocated"
                );
                AllocateProducerIdsResponse {
                    error_code: code::NONE,
                    producer_id_start: block.first_producer_id,
                    producer_id_len: i32::try_from(block.size).unwrap_or(i32::MAX),
                }
            }
            Err(e) => refused(propose_error(&e).0),
        }
    }

    // ---- brokers ----------------------------------------------------------------------

    /// KIP-858: a broker says which of its log directories holds each replica.
    async fn assign_replicas_to_dirs(
        &mut self,
        r: AssignReplicasToDirsRequest,
    ) -> AssignReplicasToDirsResponse {
        let refused = |error_code| AssignReplicasToDirsResponse {
            error_code,
            results: Vec::new(),
        };
        let image = self.current();
        let assignments: Vec<ReplicaAssignment> = r
            .assignments
            .iter()
            .map(|a| ReplicaAssignment {
                tp: TopicIdPartition {
                    topic_id: a.topic_id,
                    partition: a.partition,
                },
                directory: a.directory,
            })
            .collect();
        let (records, results) = match assign_replicas_to_dirs(
            &image,
            r.broker_id,
            r.broker_epoch,
            &assignments,
            &self.defaults,
            &self.offline,
        ) {
            Ok(decided) => decided,
            Err(e) => {
                debug!(broker = r.broker_id, error = %e, "AssignReplicasToDirs refused");
                return refused(e.code());
            }
        };
        if !records.is_empty() {
            let written = records.len();
            if let Err(e) = self.propose(records).await {
                return refused(propose_error(&e).0);
            }
            debug!(
                broker = r.broker_id,
                records = written,
                "replicas assigned to log directories"
            );
        }
        AssignReplicasToDirsResponse {
            error_code: code::NONE,
            results: results
                .iter()
                .map(|e| e.as_ref().map_or(code::NONE, ControllerError::code))
                .collect(),
        }
    }

    async fn register_broker(&mut self, r: RegisterBrokerRequest) -> RegisterBrokerResponse {
        let refused = |(error_code, error_message): ItemError| RegisterBrokerResponse {
            error_code,
            error_message,
            broker_epoch: -1,
            sessions_id: None,
        };
        let image = self.current();
        let now = self.clock.now_ms();
        if let Some(current) = image.cluster().broker(r.broker_id) {
            if current.incarnation_id == r.incarnation_id {
                // A retried registration of the same process.
                let epoch = current.epoch;
                self.heartbeats.registered(r.broker_id, epoch, now);
                return RegisterBrokerResponse {
                    error_code: code::NONE,
                    error_message: None,
                    broker_epoch: epoch,
                    sessions_id: None,
                };
            }
            let restarted_here = self.config.local_broker_id == Some(r.broker_id);
            if !restarted_here && self.heartbeats.has_valid_session(&image, r.broker_id, now) {
                warn!(
                    broker = r.broker_id,
                    incarnation = %r.incarnation_id,
                    live_incarnation = %current.incarnation_id,
                    "refused a second process registering a broker id whose session is alive"
                );
                return RegisterBrokerResponse {
                    sessions_id: Some(self.sessions_id),
                    ..refused((
                        code::DUPLICATE_BROKER_REGISTRATION,
                        Some(format!(
                            "broker {} is registered by another process (incarnation {}) whose session has not expired",
                            r.broker_id, current.incarnation_id
                        )),
                    ))
                };
            }
        }
        // Kafka's broker epoch is the registration's offset; the next offset is a lower bound
        // of it that is known before proposing (see `registrations`).
        let broker_epoch = image.provenance().offset + 1;
        // KIP-966: clean only if the epoch the broker's clean-shutdown marker holds is the one
        // it is registered with (Kafka's `isCleanShutdown`).
        let clean_shutdown = r.previous_broker_epoch.is_some_and(|previous| {
            image
                .cluster()
                .broker(r.broker_id)
                .is_some_and(|b| b.epoch == previous)
        });
        let request = RegisterBroker {
            broker_id: r.broker_id,
            incarnation_id: r.incarnation_id,
            broker_epoch,
            endpoints: r.endpoints.iter().map(Into::into).collect(),
            rack: r.rack,
            clean_shutdown,
            log_dirs: r.log_dirs,
        };
        let mut records =
            match register_broker_avoiding(&image, &request, &self.defaults, &self.offline) {
                Ok(records) => records,
                Err(e) => return refused(item_error(&e)),
            };
        // A new cluster: its features are finalized once, by the active controller, so every
        // broker answers ApiVersions alike (Kafka writes them at format); a cluster formed
        // before gregor knew a feature gets it at its next registration. A feature the log
        // has set, to level 0 too (an operator's `kafka-features disable`), keeps its level;
        // a default of 0 writes nothing. Eligible leader replicas (KIP-966) only on a new
        // cluster (no broker registered yet): they change how partition records are written,
        // which a broker of an earlier gregor still running in an existing cluster cannot
        // read; there, as in Kafka, an operator turns them on (`kafka-features.sh upgrade
        // --feature eligible.leader.replicas.version=1`) once every node runs this version.
        let new_cluster = image.cluster().brokers().next().is_none();
        let defaults = [
            (TRANSACTION_VERSION_FEATURE, self.config.transaction_version),
            (SHARE_VERSION_FEATURE, self.config.share_version),
            (GROUP_VERSION_FEATURE, self.config.group_version),
            (STREAMS_VERSION_FEATURE, self.config.streams_version),
            (METADATA_VERSION_FEATURE, self.config.metadata_version),
            (
                ELIGIBLE_LEADER_REPLICAS_VERSION_FEATURE,
                self.config
                    .eligible_leader_replicas_version
                    .filter(|_| new_cluster),
            ),
        ];
        for (name, level) in defaults {
            if let Some(level) = level.filter(|&l| l > 0) {
                if !image.feature_recorded(name) {
                    records.push(MetadataRecord::FeatureLevel(FeatureLevelRecord {
                        name: name.to_string(),
                        feature_level: level,
                    }));
                }
            }
        }
        match self.propose(records).await {
            Ok(offset) => {
                info!(broker = r.broker_id, broker_epoch, "broker registered");
                self.heartbeats.registered(r.broker_id, broker_epoch, now);
                self.registrations
                    .insert(r.broker_id, (broker_epoch, offset));
                self.controlled_shutdowns.remove(&r.broker_id);
                // A new process: its directories were opened again.
                self.offline.forget(r.broker_id);
                RegisterBrokerResponse {
                    error_code: code::NONE,
                    error_message: None,
                    broker_epoch,
                    sessions_id: None,
                }
            }
            Err(e) => refused(propose_error(&e)),
        }
    }

    async fn broker_heartbeat(&mut self, r: BrokerHeartbeatRequest) -> BrokerHeartbeatResponse {
        let refused = |error_code| BrokerHeartbeatResponse {
            error_code,
            is_caught_up: false,
            is_fenced: true,
            should_shut_down: false,
        };
        let image = self.current();
        let now = self.clock.now_ms();
        let beat = BrokerHeartbeat {
            broker: r.broker_id,
            broker_epoch: r.broker_epoch,
            current_metadata_offset: r.current_metadata_offset,
            want_fence: r.want_fence,
            want_shut_down: r.want_shut_down,
        };
        let action = match self.heartbeats.heartbeat(&image, &beat, now) {
            Ok(action) => action,
            Err(e) => return refused(e.code()),
        };
        // Replicas in a failed log directory: out of their ISRs, led elsewhere, before anything
        // else this heartbeat decides (an unfence must not elect them).
        let offline: BTreeSet<TopicIdPartition> = r
            .offline_replicas
            .iter()
            .map(|o| TopicIdPartition {
                topic_id: o.topic_id,
                partition: o.partition,
            })
            .collect();
        let reported = !offline.is_empty();
        self.offline.set(r.broker_id, offline);
        // KIP-858: failed directories leave the registration, their replicas their ISRs.
        if !r.offline_log_dirs.is_empty() {
            let records = match take_dirs_offline(
                &image,
                r.broker_id,
                &r.offline_log_dirs,
                &self.defaults,
                &self.offline,
            ) {
                Ok(records) => records,
                Err(e) => return refused(e.code()),
            };
            if !records.is_empty() {
                if let Err(e) = self.propose(records).await {
                    return refused(propose_error(&e).0);
                }
                warn!(
                    broker = r.broker_id,
                    dirs = ?r.offline_log_dirs,
                    "log directories offline: their replicas left their ISRs"
                );
            }
        }
        let image = self.current();
        if reported {
            let records =
                match take_replicas_offline(&image, r.broker_id, &self.offline, &self.defaults) {
                    Ok(records) => records,
                    Err(e) => return refused(e.code()),
                };
            if !records.is_empty() {
                let moved = records.len();
                if let Err(e) = self.propose(records).await {
                    return refused(propose_error(&e).0);
                }
                warn!(
                    broker = r.broker_id,
                    partitions = moved,
                    "replicas in a failed log directory left their ISRs (new leaders where they led)"
                );
            }
        }
        // KIP-1066: a broker whose log directories are all cordoned gets no new replica.
        if let Some(cordoned) = r.cordoned {
            match set_broker_cordoned(&self.current(), r.broker_id, cordoned) {
                Ok(Some(record)) => {
                    if let Err(e) = self.propose(vec![record]).await {
                        return refused(propose_error(&e).0);
                    }
                    info!(
                        broker = r.broker_id,
                        cordoned, "broker's log directories cordoned or uncordoned"
                    );
                }
                Ok(None) => {}
                Err(e) => return refused(e.code()),
            }
        }
        let image = self.current();
        let registered_at = match self.registrations.get(&r.broker_id) {
            Some(&(epoch, offset)) if epoch == r.broker_epoch => {
                i64::try_from(offset).unwrap_or(i64::MAX)
            }
            _ => r.broker_epoch,
        };
        let caught_up = r.current_metadata_offset >= registered_at;
        // A broker that asked this controller to shut down never comes back in that epoch: a
        // heartbeat of its without the request is an older one that arrived late (a retry
        // after a timeout, on another connection), and must not unfence a broker that may
        // have been told to stop already.
        let shutting_down = matches!(
            self.controlled_shutdowns.get(&r.broker_id),
            Some(&(epoch, _)) if epoch == r.broker_epoch
        );
        match action {
            HeartbeatAction::None | HeartbeatAction::ShutDownNow => {}
            HeartbeatAction::Unfence if !caught_up || shutting_down => {}
            HeartbeatAction::Unfence => {
                let records = match unfence_broker_avoiding(
                    &image,
                    r.broker_id,
                    &self.defaults,
                    &self.offline,
                ) {
                    Ok(records) => records,
                    Err(e) => return refused(e.code()),
                };
                if let Err(e) = self.propose(records).await {
                    return refused(propose_error(&e).0);
                }
                info!(broker = r.broker_id, "broker unfenced");
            }
            HeartbeatAction::Fence => {
                let records =
                    match fence_broker_avoiding(&image, r.broker_id, &self.defaults, &self.offline)
                    {
                        Ok(records) => records,
                        Err(e) => return refused(e.code()),
                    };
                match self.propose(records).await {
                    Ok(offset) if r.want_shut_down => {
                        info!(
                            broker = r.broker_id,
                            "controlled shutdown: leaderships moved"
                        );
                        self.controlled_shutdowns
                            .insert(r.broker_id, (r.broker_epoch, offset));
                    }
                    Ok(_) => info!(broker = r.broker_id, "broker fenced at its request"),
                    Err(e) => return refused(propose_error(&e).0),
                }
            }
        }
        let image = self.current();
        let is_fenced = image.cluster().broker(r.broker_id).is_none_or(|b| b.fenced);
        // A broker in controlled shutdown may stop once it has applied the records that moved
        // its leaderships (so it knows it leads nothing). One fenced before it asked (its
        // session expired, or another controller fenced it) may stop once it has applied
        // everything committed when this controller first saw it asking, which holds its fence:
        // until then its own image may still name it leader.
        let should_shut_down = r.want_shut_down && is_fenced && {
            let applied_by = match self.controlled_shutdowns.get(&r.broker_id) {
                Some(&(epoch, offset)) if epoch == r.broker_epoch => offset,
                _ => {
                    let offset = u64::try_from(image.provenance().offset).unwrap_or(0);
                    self.controlled_shutdowns
                        .insert(r.broker_id, (r.broker_epoch, offset));
                    offset
                }
            };
            r.current_metadata_offset >= i64::try_from(applied_by).unwrap_or(i64::MAX)
        };
        BrokerHeartbeatResponse {
            error_code: code::NONE,
            is_caught_up: caught_up,
            is_fenced,
            should_shut_down,
        }
    }

    /// How long until the next broker session may expire, if any broker is unfenced.
    fn next_session_check(&self) -> Option<Duration> {
        let deadline = self
            .heartbeats
            .next_deadline(&self.current())?
            .max(self.fence_retry_at_ms);
        Some(Duration::from_millis(
            deadline.saturating_sub(self.clock.now_ms()),
        ))
    }

    /// Fences every broker whose session expired: its leaderships move to other ISR members
    /// (or, where the topic allows it, to any live replica), and it leaves the ISRs.
    async fn fence_expired_brokers(&mut self) {
        let now = self.clock.now_ms();
        let expired = self.heartbeats.expired(&self.current(), now);
        for broker in expired {
            let image = self.current();
            let records = match fence_broker_avoiding(&image, broker, &self.defaults, &self.offline)
            {
                Ok(records) if records.is_empty() => continue,
                Ok(records) => records,
                Err(e) => {
                    error!(broker, error = %e, "cannot fence a broker whose session expired");
                    self.fence_retry_at_ms = now.saturating_add(1_000);
                    continue;
                }
            };
            let moved = records.len() - 1;
            match self.propose(records).await {
                Ok(_) => warn!(
                    broker,
                    partitions_changed = moved,
                    "broker session expired: fenced"
                ),
                Err(_) if !self.active => return,
                Err(_) => self.fence_retry_at_ms = now.saturating_add(1_000),
            }
        }
        if self.next_session_check() == Some(Duration::ZERO) {
            // Still expired after fencing: a log that resolved a proposal before publishing
            // its image. Do not spin on it.
            self.fence_retry_at_ms = self.clock.now_ms().saturating_add(100);
        }
    }

    // ---- topics ------------------------------------------------------------------------

    async fn create_topics(&mut self, r: CreateTopicsRequest) -> CreateTopicsResponse {
        let failed = |name: &str, (error_code, error_message): ItemError| CreatableTopicResult {
            name: name.to_string(),
            topic_id: Uuid::nil(),
            error_code,
            error_message,
            num_partitions: -1,
            replication_factor: -1,
        };
        let total: i64 = r
            .topics
            .iter()
            .map(|t| {
                if !t.assignments.is_empty() {
                    t.assignments.len() as i64
                } else if t.num_partitions == -1 {
                    i64::from(self.config.num_partitions)
                } else {
                    i64::from(t.num_partitions.max(0))
                }
            })
            .sum();
        if total > i64::from(MAX_PARTITIONS_PER_BATCH) {
            let message = Some("Excessively large number of partitions per request.".to_string());
            let topics = r
                .topics
                .iter()
                .map(|t| failed(&t.name, (code::POLICY_VIOLATION, message.clone())))
                .collect();
            return CreateTopicsResponse { topics };
        }
        let mut mentions: HashMap<&str, usize> = HashMap::new();
        for t in &r.topics {
            *mentions.entry(&t.name).or_default() += 1;
        }
        let duplicates: BTreeSet<String> = mentions
            .into_iter()
            .filter(|&(_, n)| n > 1)
            .map(|(name, _)| name.to_string())
            .collect();
        // Decide every topic on the same image (they are independent: distinct names, fresh
        // ids), so the request-wide record limit can be checked before anything is created.
        let image = self.current();
        let ids: Vec<Uuid> = r.topics.iter().map(|_| (self.new_topic_id)()).collect();
        let decided: Vec<Result<(Vec<MetadataRecord>, CreatableTopicResult), ItemError>> = r
            .topics
            .iter()
            .zip(ids)
            .map(|(t, topic_id)| {
                if duplicates.contains(&t.name) {
                    Err((code::INVALID_REQUEST, Some("Duplicate topic name.".into())))
                } else {
                    self.decide_topic(&image, t, topic_id, r.validate_only)
                }
            })
            .collect();
        let records: usize = decided
            .iter()
            .filter_map(|d| d.as_ref().ok())
            .map(|(records, _)| records.len())
            .sum();
        if records > MAX_RECORDS_PER_USER_OP {
            warn!(
                records,
                "CreateTopics refused: too many metadata records in one request"
            );
            let message = Some("Unable to perform excessively large batch operation.".to_string());
            let topics = r
                .topics
                .iter()
                .map(|t| failed(&t.name, (code::POLICY_VIOLATION, message.clone())))
                .collect();
            return CreateTopicsResponse { topics };
        }
        let mut topics = Vec::with_capacity(r.topics.len());
        for (t, decision) in r.topics.iter().zip(decided) {
            let result = match decision {
                Err(e) => failed(&t.name, e),
                Ok((_, result)) if r.validate_only => result,
                Ok((records, result)) => match self.propose(records).await {
                    Ok(_) => {
                        info!(
                            topic = %t.name,
                            topic_id = %result.topic_id,
                            partitions = result.num_partitions,
                            "topic created"
                        );
                        result
                    }
                    Err(e) => failed(&t.name, propose_error(&e)),
                },
            };
            topics.push(result);
        }
        CreateTopicsResponse { topics }
    }

    /// The records that create `t` and the result to answer once they are committed.
    fn decide_topic(
        &self,
        image: &MetadataImage,
        t: &CreatableTopic,
        topic_id: Uuid,
        validate_only: bool,
    ) -> Result<(Vec<MetadataRecord>, CreatableTopicResult), ItemError> {
        let mut configs = Vec::with_capacity(t.configs.len());
        for (name, value) in &t.configs {
            let value = value.clone().ok_or_else(|| {
                (
                    code::INVALID_CONFIG,
                    Some(format!("null value for topic config {name}")),
                )
            })?;
            configs.push((name.clone(), value));
        }
        let (pairs_hi, _) = topic_id.as_u64_pair();
        let mut req = CreateTopic {
            name: t.name.clone(),
            topic_id,
            partitions: if t.num_partitions == -1 {
                self.config.num_partitions
            } else {
                t.num_partitions
            },
            replication_factor: if t.replication_factor == -1 {
                self.config.default_replication_factor
            } else {
                t.replication_factor
            },
            configs,
            placement_seed: pairs_hi,
        };
        let records = if t.assignments.is_empty() {
            create_topic(image, &req).map_err(|e| item_error(&e))?
        } else {
            if t.num_partitions != -1 || t.replication_factor != -1 {
                return Err((
                    code::INVALID_REQUEST,
                    Some(
                        "both a partition count or replication factor and assignments were given"
                            .into(),
                    ),
                ));
            }
            let mut assignments: Vec<&CreatableReplicaAssignment> = t.assignments.iter().collect();
            assignments.sort_by_key(|a| a.partition_index);
            if assignments
                .iter()
                .zip(0..)
                .any(|(a, i)| a.partition_index != i)
            {
                return Err((
                    code::INVALID_REPLICA_ASSIGNMENT,
                    Some("partitions must be numbered 0, 1, 2, ... without gaps".into()),
                ));
            }
            let replicas: Vec<Vec<BrokerId>> =
                assignments.iter().map(|a| a.broker_ids.clone()).collect();
            req.partitions = i32::try_from(replicas.len()).unwrap_or(i32::MAX);
            req.replication_factor =
                i16::try_from(replicas.first().map_or(0, Vec::len)).unwrap_or(i16::MAX);
            create_topic_with_assignments(image, &req, &replicas).map_err(|e| item_error(&e))?
        };
        let result = CreatableTopicResult {
            name: t.name.clone(),
            topic_id: if validate_only { Uuid::nil() } else { topic_id },
            error_code: code::NONE,
            error_message: None,
            num_partitions: req.partitions,
            replication_factor: req.replication_factor,
        };
        Ok((records, result))
    }

    async fn delete_topics(&mut self, r: DeleteTopicsRequest) -> DeleteTopicsResponse {
        let mut topics = Vec::with_capacity(r.topics.len());
        for topic in r.topics {
            let image = self.current();
            let (name, topic_id) = match &topic {
                TopicRef::Name(name) => (
                    Some(name.clone()),
                    image.topics().topic_id(name).unwrap_or(Uuid::nil()),
                ),
                TopicRef::Id(id) => (image.topics().topic(*id).map(|t| t.name.clone()), *id),
            };
            let outcome = match (&name, &topic) {
                (None, _) => Err((
                    code::UNKNOWN_TOPIC_ID,
                    Some(format!("unknown topic id {topic_id}")),
                )),
                (Some(name), _) => match delete_topic(&image, name) {
                    Ok(records) => self
                        .propose(records)
                        .await
                        .map(|_| info!(topic = %name, "topic deleted"))
                        .map_err(|e| propose_error(&e)),
                    Err(e) => Err(item_error(&e)),
                },
            };
            let (error_code, error_message) = outcome.err().unwrap_or((code::NONE, None));
            topics.push(DeletableTopicResult {
                name,
                topic_id,
                error_code,
                error_message,
            });
        }
        DeleteTopicsResponse { topics }
    }

    async fn create_partitions(&mut self, r: CreatePartitionsRequest) -> CreatePartitionsResponse {
        let mut results = Vec::with_capacity(r.topics.len());
        for t in r.topics {
            let image = self.current();
            let seed = u64::from(t.count.unsigned_abs())
                ^ image.provenance().offset.unsigned_abs().rotate_left(17);
            let decided =
                create_partitions_on(&image, &t.name, t.count, t.assignments.as_deref(), seed)
                    .map_err(|e| item_error(&e));
            let outcome = self.commit(decided, r.validate_only).await;
            let (error_code, error_message) = outcome.err().unwrap_or((code::NONE, None));
            results.push(TopicResult {
                name: t.name,
                error_code,
                error_message,
            });
        }
        CreatePartitionsResponse { results }
    }

    async fn alter_configs(&mut self, r: AlterConfigsRequest) -> AlterConfigsResponse {
        let mut results = Vec::with_capacity(r.topics.len());
        for t in r.topics {
            let image = self.current();
            let records = t
                .configs
                .iter()
                .map(|(name, value)| alter_topic_config(&image, &t.topic, name, value.as_deref()))
                .collect();
            results.push(self.commit_configs(t.topic, records, r.validate_only).await);
        }
        let mut broker_results = Vec::with_capacity(r.brokers.len());
        for b in r.brokers {
            let records = b
                .configs
                .iter()
                .map(|(name, value)| alter_broker_config(&b.resource, name, value.as_deref()))
                .collect();
            broker_results.push(
                self.commit_configs(b.resource, records, r.validate_only)
                    .await,
            );
        }
        let mut group_results = Vec::with_capacity(r.groups.len());
        for g in r.groups {
            let records = g
                .configs
                .iter()
                .map(|(name, value)| alter_group_config(&g.group, name, value.as_deref()))
                .collect();
            group_results.push(self.commit_configs(g.group, records, r.validate_only).await);
        }
        let mut client_metrics_results = Vec::with_capacity(r.client_metrics.len());
        for s in r.client_metrics {
            let records = s
                .configs
                .iter()
                .map(|(name, value)| {
                    alter_client_metrics_config(&s.subscription, name, value.as_deref())
                })
                .collect();
            client_metrics_results.push(
                self.commit_configs(s.subscription, records, r.validate_only)
                    .await,
            );
        }
        AlterConfigsResponse {
            results,
            broker_results,
            group_results,
            client_metrics_results,
        }
    }

    /// Kafka's `ClientQuotaControlManager`: each entity's changes are checked whole and
    /// committed together; a refused entity does not stop the others.
    async fn alter_client_quotas(
        &mut self,
        r: AlterClientQuotasRequest,
    ) -> AlterClientQuotasResponse {
        let mut results = Vec::with_capacity(r.entries.len());
        for entry in r.entries {
            let records = quota_entity(&entry.entity).and_then(|entity| {
                entry
                    .ops
                    .iter()
                    .map(|(key, value)| alter_client_quota(&entity, key, *value))
                    .collect()
            });
            results.push(
                self.commit_configs(String::new(), records, r.validate_only)
                    .await,
            );
        }
        AlterClientQuotasResponse { results }
    }

    /// Kafka's `ReplicationControlManager.unregisterBroker`: the broker leaves every ISR and
    /// its registration is removed; its session and any controlled shutdown are forgotten.
    async fn unregister_broker(&mut self, broker: BrokerId) -> UnregisterBrokerResponse {
        let image = self.current();
        let decided = gregor_metadata::controller::unregister_broker_avoiding(
            &image,
            broker,
            &self.defaults,
            &self.offline,
        )
        .map_err(|e| match e {
            // Kafka 4.4's message.
            ControllerError::BrokerNotRegistered(_) => (
                code::BROKER_ID_NOT_REGISTERED,
                Some(format!("Broker ID {broker} is not currently registered")),
            ),
            e => item_error(&e),
        });
        let outcome = self.commit(decided, false).await;
        if outcome.is_ok() {
            info!(broker, "broker unregistered");
            self.heartbeats.remove(broker);
            self.registrations.remove(&broker);
            self.controlled_shutdowns.remove(&broker);
            self.offline.forget(broker);
            // Best effort, off the controller's path: a membership change waits for the quorum.
            tokio::spawn(self.log.forget_learner(broker));
        }
        let (error_code, error_message) = outcome.err().unwrap_or((code::NONE, None));
        UnregisterBrokerResponse {
            error_code,
            error_message,
        }
    }

    /// Kafka's `FeatureControlManager.updateFeatures`: every update is checked, and the
    /// levels are written together or none is.
    async fn update_features(&mut self, r: UpdateFeaturesRequest) -> UpdateFeaturesResponse {
        let updates = r.feature_updates();
        let image = self.current();
        let decided = gregor_metadata::update_features(&image, self.config.node_id, &updates)
            .map_err(|message| {
                warn!("{message}");
                (code::INVALID_UPDATE_VERSION, Some(message))
            });
        let outcome = self.commit(decided, r.validate_only).await;
        if outcome.is_ok() && !r.validate_only {
            for (name, u) in &updates {
                info!(feature = %name, level = u.level, "feature level updated");
            }
        }
        let (error_code, error_message) = outcome.err().unwrap_or((code::NONE, None));
        UpdateFeaturesResponse {
            error_code,
            error_message,
        }
    }

    /// Kafka's `ScramControlManager`: each user is checked on its own, and the records of every
    /// accepted user are proposed together (Kafka's `ControllerResult.atomicOf`), so a failed
    /// proposal fails them all.
    async fn alter_user_scram_credentials(
        &mut self,
        r: AlterUserScramCredentialsRequest,
    ) -> AlterUserScramCredentialsResponse {
        let (deletions, upsertions) = r.into_alterations();
        let image = self.current();
        let decided = alter_user_scram_credentials(&image, &deletions, &upsertions);
        let committed = if decided.records.is_empty() {
            Ok(())
        } else {
            self.propose(decided.records).await.map(|_| ())
        };
        let results = decided
            .results
            .into_iter()
            .map(|(name, outcome)| {
                let (error_code, error_message) = match (outcome, &committed) {
                    (Err(e), _) => item_error(&e),
                    (Ok(()), Err(e)) => propose_error(e),
                    (Ok(()), Ok(())) => (code::NONE, None),
                };
                TopicResult {
                    name,
                    error_code,
                    error_message,
                }
            })
            .collect();
        AlterUserScramCredentialsResponse { results }
    }

    /// Kafka's `DelegationTokenControlManager.createDelegationToken`: a fresh token id, its
    /// record committed before the token (and its HMAC) is handed out.
    async fn create_delegation_token(
        &mut self,
        r: CreateDelegationTokenRequest,
    ) -> CreateDelegationTokenResponse {
        use gregor_metadata::delegation_token::{create_delegation_token, CreateToken};
        let refused = |error_code| CreateDelegationTokenResponse {
            error_code,
            issue_timestamp_ms: -1,
            expiry_timestamp_ms: -1,
            max_timestamp_ms: -1,
            token_id: String::new(),
            hmac: Vec::new(),
        };
        let request = CreateToken {
            owner: r.owner,
            requester: r.requester,
            renewers: r.renewers,
            max_lifetime_ms: r.max_lifetime_ms,
        };
        // Kafka's `Uuid.randomUuid()`: drawn again while it starts with '-'.
        let token_id = loop {
            if let Some(id) = gregor_metadata::delegation_token::token_id_of(Uuid::new_v4()) {
                break id;
            }
        };
        let created = match create_delegation_token(
            &self.config.delegation_tokens,
            wall_clock_ms(),
            token_id,
            &request,
        ) {
            Ok(created) => created,
            Err(e) => return refused(e.code()),
        };
        match self.propose(vec![created.record()]).await {
            Ok(_) => {
                info!(
                    token_id = %created.token.token_id,
                    owner = %created.token.owner,
                    "delegation token created"
                );
                CreateDelegationTokenResponse {
                    error_code: code::NONE,
                    issue_timestamp_ms: created.token.issue_timestamp_ms,
                    expiry_timestamp_ms: created.token.expiration_timestamp_ms,
                    max_timestamp_ms: created.token.max_timestamp_ms,
                    token_id: created.token.token_id,
                    hmac: created.hmac,
                }
            }
            Err(e) => refused(propose_error(&e).0),
        }
    }

    /// Renew or expire: the decided record committed, then the new expiry answered.
    async fn token_expiry(
        &mut self,
        decided: Result<(MetadataRecord, i64), gregor_metadata::TokenError>,
    ) -> DelegationTokenExpiryResponse {
        match decided {
            Ok((record, expiry_timestamp_ms)) => match self.propose(vec![record]).await {
                Ok(_) => DelegationTokenExpiryResponse {
                    error_code: code::NONE,
                    expiry_timestamp_ms,
                },
                Err(e) => DelegationTokenExpiryResponse {
                    error_code: propose_error(&e).0,
                    expiry_timestamp_ms: -1,
                },
            },
            Err(e) => DelegationTokenExpiryResponse {
                error_code: e.code(),
                expiry_timestamp_ms: -1,
            },
        }
    }

    /// Kafka's `sweepExpiredDelegationTokens`, every `delegation.token.expiry.check.interval.ms`.
    async fn remove_expired_delegation_tokens(&mut self) {
        let image = self.current();
        let removals = gregor_metadata::delegation_token::expired_delegation_tokens(
            image.delegation_tokens(),
            wall_clock_ms(),
        );
        if removals.is_empty() {
            return;
        }
        let count = removals.len();
        if self.propose(removals).await.is_ok() {
            info!(count, "expired delegation tokens removed");
        }
    }

    /// Kafka's `AclControlManager.createAcls`: each ACL checked on its own, the records of the
    /// valid new ones proposed together.
    async fn create_acls(&mut self, r: CreateAclsRequest) -> CreateAclsResponse {
        let acls: Vec<_> = r.creations.iter().map(AclEntry::to_acl).collect();
        let image = self.current();
        let decided =
            gregor_metadata::controller::create_acls(&image, &acls, &mut uuid::Uuid::new_v4);
        let committed = self.propose_unless_empty(decided.records).await;
        let mut resp = CreateAclsResponse::from_results(decided.results);
        if let Err(e) = &committed {
            let (error_code, error_message) = propose_error(e);
            for r in resp
                .results
                .iter_mut()
                .filter(|r| r.error_code == code::NONE)
            {
                r.error_code = error_code;
                r.error_message = error_message.clone();
            }
        }
        resp
    }

    /// Kafka's `AclControlManager.deleteAcls`: the removals of every filter proposed together
    /// (atomically, as Kafka does).
    async fn delete_acls(&mut self, r: DeleteAclsRequest) -> DeleteAclsResponse {
        let filters: Vec<_> = r.filters.iter().map(AclFilterEntry::to_filter).collect();
        let image = self.current();
        let decided = gregor_metadata::controller::delete_acls(&image, &filters);
        let committed = self.propose_unless_empty(decided.records).await;
        let mut resp = DeleteAclsResponse::from_results(decided.results);
        if let Err(e) = &committed {
            let (error_code, error_message) = propose_error(e);
            for r in resp
                .results
                .iter_mut()
                .filter(|r| r.error_code == code::NONE)
            {
                r.error_code = error_code;
                r.error_message = error_message.clone();
                r.deleted.clear();
            }
        }
        resp
    }

    /// Proposes `records` together, unless there are none.
    async fn propose_unless_empty(
        &mut self,
        records: Vec<MetadataRecord>,
    ) -> Result<(), ProposeError> {
        if records.is_empty() {
            Ok(())
        } else {
            self.propose(records).await.map(|_| ())
        }
    }

    /// Proposes one resource's config records (unless only validating) and answers for it.
    /// Proposes the records a decision gave (none with `validate_only`, or when there are
    /// none), or passes its refusal on.
    async fn commit(
        &mut self,
        decided: Result<Vec<MetadataRecord>, ItemError>,
        validate_only: bool,
    ) -> Result<(), ItemError> {
        match decided {
            Err(e) => Err(e),
            Ok(records) if validate_only || records.is_empty() => Ok(()),
            Ok(mut records) => {
                // KIP-966: a min.insync.replicas change or ELR turned off clears ELRs.
                let follow_ups =
                    gregor_metadata::controller::elr_follow_ups(&self.current(), &records);
                records.extend(follow_ups);
                self.propose(records)
                    .await
                    .map(|_| ())
                    .map_err(|e| propose_error(&e))
            }
        }
    }

    async fn commit_configs(
        &mut self,
        name: String,
        records: Result<Vec<MetadataRecord>, ControllerError>,
        validate_only: bool,
    ) -> TopicResult {
        let outcome = self
            .commit(records.map_err(|e| item_error(&e)), validate_only)
            .await;
        let (error_code, error_message) = outcome.err().unwrap_or((code::NONE, None));
        TopicResult {
            name,
            error_code,
            error_message,
        }
    }

    // ---- partitions --------------------------------------------------------------------

    async fn alter_partition(&mut self, r: AlterPartitionRequest) -> AlterPartitionResponse {
        let image = self.current();
        let whole = match image.cluster().broker(r.broker_id) {
            None => Some(code::BROKER_ID_NOT_REGISTERED),
            Some(b) if b.epoch != r.broker_epoch => Some(code::STALE_BROKER_EPOCH),
            Some(_) => None,
        };
        if let Some(error_code) = whole {
            return AlterPartitionResponse {
                error_code,
                partitions: Vec::new(),
            };
        }
        let mut partitions = Vec::with_capacity(r.partitions.len());
        for change in r.partitions {
            let tp = TopicIdPartition {
                topic_id: change.topic_id,
                partition: change.partition,
            };
            let image = self.current();
            let request = AlterPartition {
                tp,
                leader_id: r.broker_id,
                leader_epoch: change.leader_epoch,
                partition_epoch: change.partition_epoch,
                new_isr: change.new_isr,
                new_isr_broker_epochs: change.new_isr_broker_epochs,
            };
            let error_code =
                match alter_partition_avoiding(&image, &request, &self.defaults, &self.offline) {
                    Ok(None) => code::NONE,
                    Ok(Some(record)) => match self.propose(vec![record]).await {
                        Ok(_) => code::NONE,
                        Err(e) => propose_error(&e).0,
                    },
                    Err(e) => {
                        debug!(?tp, error = %e, "AlterPartition refused");
                        e.code()
                    }
                };
            let image = self.current();
            let state = image.topics().partition(tp);
            partitions.push(PartitionIsrResult {
                topic_id: tp.topic_id,
                partition: tp.partition,
                error_code,
                leader_id: state.map_or(-1, |p| p.leader),
                leader_epoch: state.map_or(-1, |p| p.leader_epoch),
                isr: state.map(|p| p.isr.clone()).unwrap_or_default(),
                partition_epoch: state.map_or(-1, |p| p.partition_epoch),
            });
        }
        AlterPartitionResponse {
            error_code: code::NONE,
            partitions,
        }
    }

    async fn elect_leaders(&mut self, r: ElectLeadersRequest) -> ElectLeadersResponse {
        let election = match r.election_type {
            ElectionType::Preferred => Election::Preferred,
            ElectionType::Unclean => Election::Unclean,
        };
        let image = self.current();
        let asked = r.partitions.is_some();
        let partitions: BTreeSet<TopicPartition> = match r.partitions {
            Some(list) => list.into_iter().collect(),
            None => image
                .topics()
                .topics()
                .flat_map(|t| {
                    t.partitions().map(|(p, _)| TopicPartition {
                        topic: t.name.clone(),
                        partition: p,
                    })
                })
                .collect(),
        };
        let mut results = Vec::new();
        let mut records = Vec::new();
        let mut elected = Vec::new();
        for tp in partitions {
            let id = image
                .topics()
                .topic_id(&tp.topic)
                .map(|topic_id| TopicIdPartition {
                    topic_id,
                    partition: tp.partition,
                });
            let outcome = match id {
                None => Err(ControllerError::UnknownTopicOrPartition),
                Some(id) => {
                    elect_leader_avoiding(&image, id, election, &self.defaults, &self.offline)
                }
            };
            match outcome {
                Ok(record) => {
                    records.push(record);
                    elected.push(tp);
                }
                // Asked for everything: the partitions that did not need an election are left
                // out (Kafka's ReplicationControlManager.electLeaders); other errors answer.
                Err(ControllerError::ElectionNotNeeded) if !asked => {}
                Err(e) => {
                    let (error_code, error_message) = item_error(&e);
                    results.push(PartitionResult {
                        topic: tp.topic,
                        partition: tp.partition,
                        error_code,
                        error_message,
                    });
                }
            }
        }
        let (error_code, error_message) = if records.is_empty() {
            (code::NONE, None)
        } else {
            match self.propose(records).await {
                Ok(_) => (code::NONE, None),
                Err(e) => propose_error(&e),
            }
        };
        results.extend(elected.into_iter().map(|tp| PartitionResult {
            topic: tp.topic,
            partition: tp.partition,
            error_code,
            error_message: error_message.clone(),
        }));
        ElectLeadersResponse { results }
    }

    /// `auto.leader.rebalance.enable`: every partition whose preferred replica is live, in the
    /// ISR and not leading gets it back as leader.
    async fn rebalance_leaders(&mut self) {
        let image = self.current();
        let records: Vec<MetadataRecord> = image
            .topics()
            .all_partitions()
            .filter(|(_, p)| {
                p.preferred_leader().is_some_and(|preferred| {
                    preferred != p.leader
                        && p.is_in_isr(preferred)
                        && image.cluster().is_unfenced(preferred)
                })
            })
            .filter_map(|(tp, _)| {
                elect_leader_avoiding(
                    &image,
                    tp,
                    Election::Preferred,
                    &self.defaults,
                    &self.offline,
                )
                .ok()
            })
            .collect();
        if records.is_empty() {
            return;
        }
        let count = records.len();
        if self.propose(records).await.is_ok() {
            info!(
                partitions = count,
                "preferred leaders elected (leader rebalance)"
            );
        }
    }

    async fn alter_reassignments(
        &mut self,
        r: AlterPartitionReassignmentsRequest,
    ) -> AlterPartitionReassignmentsResponse {
        let mut results = Vec::with_capacity(r.partitions.len());
        for p in r.partitions {
            let image = self.current();
            let outcome = match image.topics().topic_id(&p.topic) {
                None => Err(item_error(&ControllerError::UnknownTopicOrPartition)),
                Some(topic_id) => {
                    let tp = TopicIdPartition {
                        topic_id,
                        partition: p.partition,
                    };
                    match alter_partition_reassignment_avoiding(
                        &image,
                        tp,
                        p.replicas.as_deref(),
                        &self.defaults,
                        &self.offline,
                    ) {
                        Err(e) => Err(item_error(&e)),
                        Ok(None) => Ok(()),
                        Ok(Some(record)) => self
                            .propose(vec![record])
                            .await
                            .map(|_| ())
                            .map_err(|e| propose_error(&e)),
                    }
                }
            };
            let (error_code, error_message) = outcome.err().unwrap_or((code::NONE, None));
            results.push(PartitionResult {
                topic: p.topic,
                partition: p.partition,
                error_code,
                error_message,
            });
        }
        AlterPartitionReassignmentsResponse { results }
    }

    fn list_reassignments(
        &self,
        r: &ListPartitionReassignmentsRequest,
    ) -> ListPartitionReassignmentsResponse {
        let image = self.current();
        let wanted: Option<BTreeSet<&TopicPartition>> =
            r.partitions.as_ref().map(|l| l.iter().collect());
        let reassignments = image
            .topics()
            .reassigning_partitions()
            .filter_map(|(tp, p)| {
                let topic = image.topics().topic(tp.topic_id)?.name.clone();
                let key = TopicPartition {
                    topic,
                    partition: tp.partition,
                };
                if wanted.as_ref().is_some_and(|w| !w.contains(&key)) {
                    return None;
                }
                Some(OngoingReassignment {
                    topic: key.topic,
                    partition: key.partition,
                    replicas: p.replicas.clone(),
                    adding_replicas: p.adding_replicas.clone(),
                    removing_replicas: p.removing_replicas.clone(),
                })
            })
            .collect();
        ListPartitionReassignmentsResponse { reassignments }
    }

    /// Ends every reassignment whose added replicas are all in the ISR (Kafka does this in the
    /// AlterPartition that brings the last one in; this catches the rest, e.g. after a
    /// controller failover).
    async fn complete_reassignments(&mut self) {
        let image = self.current();
        let acceptable = |b: BrokerId| image.cluster().is_unfenced(b);
        let mut records = Vec::new();
        for (tp, p) in image.topics().reassigning_partitions() {
            if !p.adding_replicas.iter().all(|b| p.is_in_isr(*b)) {
                continue;
            }
            let Some(topic) = image.topics().topic(tp.topic_id) else {
                continue;
            };
            let election = if unclean_election_enabled(&image, &topic.name, &self.defaults) {
                Election::Unclean
            } else {
                Election::Online
            };
            let (_, change) =
                PartitionChangeBuilder::new(p, tp.topic_id, tp.partition, &acceptable)
                    .set_election(election)
                    .set_eligible_leader_replicas(gregor_metadata::controller::elr_min_isr(
                        &image,
                        &topic.name,
                        p,
                        &self.defaults,
                    ))
                    .build();
            // Only a change that ends the reassignment (so this cannot repeat forever).
            if let Some(change) = change.filter(|c| {
                c.adding_replicas.as_ref().is_some_and(Vec::is_empty)
                    || c.removing_replicas.as_ref().is_some_and(Vec::is_empty)
            }) {
                records.push(MetadataRecord::PartitionChange(change));
            }
        }
        if records.is_empty() {
            return;
        }
        let count = records.len();
        if self.propose(records).await.is_ok() {
            info!(partitions = count, "reassignments completed");
        }
    }
}
