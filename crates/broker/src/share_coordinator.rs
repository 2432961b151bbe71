//! The share coordinator's runtime (Kafka's `ShareCoordinatorService` with its coordinator
//! runtime, KIP-932): drives the I/O-free core (`gregor_share::coordinator`) with the clock,
//! persists its decisions in the internal topic `__share_group_state`, and follows the
//! leadership of that topic's partitions.
//!
//! ```text
//!  handler / persister ─► partition_for(key) ─► status of that partition
//!        (NOT_COORDINATOR / COORDINATOR_LOAD_IN_PROGRESS), the key's topic partition in the
//!        image (UNKNOWN_TOPIC_OR_PARTITION)
//!    ─► under the core lock: core decision ─► its record appended to
//!       __share_group_state-<p> in the partition's leader epoch ─► core.replay
//!    ─► the answer once the ISR has the partition's log up to the decision and it is fsynced
//!       (acks=all; share.coordinator.write.timeout.ms), also for a decision that wrote
//!       nothing, so no answer rests on a write that is not durable yet
//!  leadership (after every applied image): newly led partitions are loaded by replaying them
//!     to their log end; partitions no longer led are unloaded
//!  topics deleted (after every applied image): each loaded partition appends tombstones for
//!     the share-partitions of the deleted topics (Kafka's `onTopicsDeleted`)
//! ```
//!
//! `__share_group_state` has `share.coordinator.state.topic.num.partitions` (50) partitions,
//! min(`share.coordinator.state.topic.replication.factor` (3), voters) replicas, is compacted
//! (Kafka's is `cleanup.policy=delete` and prunes what later snapshots made redundant; gregor
//! writes only snapshots and tombstones, so compaction keeps exactly the live state), and has
//! `min.insync.replicas` = min(`share.coordinator.state.topic.min.isr` (2), its replication
//! factor). It is created through the controller on first need, as `__transaction_state` is.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use gregor_controller::protocol::CreatableTopic;
use gregor_controller::ControllerChannel;
use gregor_protocol::error::ErrorCode;
use gregor_share::coordinator::{code, Decision, ShareCoordinator, ShareError};
use gregor_share::{PersistedState, ShareKey, StateSummary};
use tracing::{debug, error, info, warn};

use crate::clock::Clock;
use crate::config::BrokerConfig;
use crate::replica_manager::ReplicaManager;

/// Name of the internal share-group state topic.
pub const SHARE_GROUP_STATE_TOPIC: &str = "__share_group_state";

/// The share coordinator's settings, Kafka's keys and defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareCoordinatorSettings {
    /// `share.coordinator.state.topic.num.partitions`.
    pub state_topic_num_partitions: i32,
    /// `share.coordinator.state.topic.replication.factor` (used as min(this, voters) at
    /// creation, as `transaction.state.log.replication.factor` is).
    pub state_topic_replication_factor: i16,
    /// `share.coordinator.state.topic.min.isr` (the topic's `min.insync.replicas`, at most its
    /// replication factor).
    pub state_topic_min_isr: i16,
    /// `share.coordinator.state.topic.segment.bytes`.
    pub state_topic_segment_bytes: i32,
    /// `share.coordinator.write.timeout.ms`: how long a write waits for the ISR.
    pub write_timeout_ms: i32,
}

impl Default for ShareCoordinatorSettings {
    fn default() -> Self {
        ShareCoordinatorSettings {
            state_topic_num_partitions: 50,
            state_topic_replication_factor: 3,
            state_topic_min_isr: 2,
            state_topic_segment_bytes: 104_857_600,
            write_timeout_ms: 5_000,
        }
    }
}

/// The replication factor `__share_group_state` is created with: the configured one capped by
/// the cluster's size as configured (its voters; one for a lone node).
pub fn share_group_state_replication_factor(config: &BrokerConfig) -> usize {
    config
        .cluster
        .internal_replication_factor(config.share_coordinator.state_topic_replication_factor)
}

/// The CreateTopics entry for `__share_group_state`.
pub fn share_group_state_topic(config: &BrokerConfig, replication_factor: usize) -> CreatableTopic {
    let s = &config.share_coordinator;
    let rf = i16::try_from(replication_factor.max(1)).unwrap_or(i16::MAX);
    let min_isr = s.state_topic_min_isr.clamp(1, rf);
    CreatableTopic {
        name: SHARE_GROUP_STATE_TOPIC.to_string(),
        num_partitions: s.state_topic_num_partitions,
        replication_factor: rf,
        assignments: Vec::new(),
        configs: vec![
            ("cleanup.policy".to_string(), Some("compact".to_string())),
            (
                "segment.bytes".to_string(),
                Some(s.state_topic_segment_bytes.to_string()),
            ),
            ("min.insync.replicas".to_string(), Some(min_isr.to_string())),
            (
                "unclean.leader.election.enable".to_string(),
                Some("false".to_string()),
            ),
        ],
    }
}

/// Where this broker stands with one `__share_group_state` partition it leads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PartitionStatus {
    /// Being replayed: its keys' requests get COORDINATOR_LOAD_IN_PROGRESS.
    Loading,
    /// Loaded in this leader epoch: its records are appended in it.
    Loaded { leader_epoch: i32 },
}

/// The answer for a `__share_group_state` append that failed (as the group coordinator's
/// runtime maps them).
fn append_error(error: ErrorCode) -> ShareError {
    let code = match error {
        ErrorCode::UNKNOWN_TOPIC_OR_PARTITION
        | ErrorCode::NOT_ENOUGH_REPLICAS
        | ErrorCode::NOT_ENOUGH_REPLICAS_AFTER_APPEND
        | ErrorCode::REQUEST_TIMED_OUT => code::COORDINATOR_NOT_AVAILABLE,
        ErrorCode::NOT_LEADER_OR_FOLLOWER | ErrorCode::KAFKA_STORAGE_ERROR => code::NOT_COORDINATOR,
        _ => code::UNKNOWN_SERVER_ERROR,
    };
    error_code(code)
}

/// A refusal with the code's default message.
pub fn error_code(code: i16) -> ShareError {
    ShareError {
        code,
        message: None,
    }
}

/// The share coordinator of the `__share_group_state` partitions this broker leads.
pub struct ShareCoordinatorRuntime {
    /// The state of every loaded share-partition. Lock order: `core`, then `status`.
    core: Mutex<ShareCoordinator>,
    /// The partitions this broker coordinates (loaded) or is loading.
    status: Mutex<HashMap<i32, PartitionStatus>>,
    /// One leadership sync at a time.
    sync: Mutex<()>,
    clock: Arc<dyn Clock>,
    config: Arc<BrokerConfig>,
    replicas: Arc<ReplicaManager>,
    /// Creates `__share_group_state` on first need.
    controller: Arc<dyn ControllerChannel>,
    /// A creation of `__share_group_state` is under way.
    creating: crate::internal_topic::OnDemandTopic,
    /// The topic ids of the last image seen: those the next one lacks were deleted.
    known_topics: Mutex<BTreeSet<uuid::Uuid>>,
}

impl std::fmt::Debug for ShareCoordinatorRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShareCoordinatorRuntime")
            .field("partitions", &self.status().len())
            .finish_non_exhaustive()
    }
}

impl ShareCoordinatorRuntime {
    /// A coordinator that owns nothing yet; [`ShareCoordinatorRuntime::sync_leadership`] loads
    /// the partitions this broker leads.
    pub fn new(
        replicas: Arc<ReplicaManager>,
        controller: Arc<dyn ControllerChannel>,
    ) -> ShareCoordinatorRuntime {
        let config = Arc::new(replicas.config().clone());
        let known_topics = Mutex::new(topic_ids(&replicas));
        ShareCoordinatorRuntime {
            core: Mutex::new(ShareCoordinator::new(
                config.share_coordinator.state_topic_num_partitions,
            )),
            status: Mutex::new(HashMap::new()),
            sync: Mutex::new(()),
            clock: Arc::clone(replicas.clock()),
            config,
            replicas,
            controller,
            creating: crate::internal_topic::OnDemandTopic::new(SHARE_GROUP_STATE_TOPIC),
            known_topics,
        }
    }

    fn core(&self) -> MutexGuard<'_, ShareCoordinator> {
        self.core.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn status(&self) -> MutexGuard<'_, HashMap<i32, PartitionStatus>> {
        self.status.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The `__share_group_state` partition of `key`.
    pub fn partition_for(&self, key: &ShareKey) -> i32 {
        gregor_share::coordinator::partition_for(
            key,
            self.config.share_coordinator.state_topic_num_partitions,
        )
    }

    /// The `__share_group_state` partition of a FindCoordinator key type 2
    /// (`group:topicId:partition`).
    pub fn partition_for_coordinator_key(&self, coordinator_key: &str) -> i32 {
        gregor_share::coordinator::partition_for_coordinator_key(
            coordinator_key,
            self.config.share_coordinator.state_topic_num_partitions,
        )
    }

    /// The leader epoch `partition` is loaded in, else the error its keys' requests get.
    fn loaded_epoch(&self, partition: i32) -> Result<i32, ShareError> {
        match self.status().get(&partition) {
            Some(PartitionStatus::Loaded { leader_epoch }) => Ok(*leader_epoch),
            Some(PartitionStatus::Loading) => Err(error_code(code::COORDINATOR_LOAD_IN_PROGRESS)),
            None => Err(error_code(code::NOT_COORDINATOR)),
        }
    }

    /// `None` if this broker coordinates `key`, else the error for its requests.
    pub fn not_coordinator(&self, key: &ShareKey) -> Option<i16> {
        self.loaded_epoch(self.partition_for(key))
            .err()
            .map(|e| e.code)
    }

    /// UNKNOWN_TOPIC_OR_PARTITION unless the key's topic partition is in the applied image.
    fn check_topic(&self, key: &ShareKey) -> Result<(), ShareError> {
        let image = self.replicas.image();
        image
            .topics()
            .topic(key.topic_id)
            .and_then(|t| t.partition(key.partition))
            .map(|_| ())
            .ok_or_else(|| error_code(code::UNKNOWN_TOPIC_OR_PARTITION))
    }

    // ---- requests ----

    /// ReadShareGroupState: `key`'s state as its leader in `leader_epoch` loads it (a newer
    /// leader epoch is recorded first).
    pub async fn read(
        &self,
        key: &ShareKey,
        leader_epoch: i32,
    ) -> Result<PersistedState, ShareError> {
        self.check_topic(key)?;
        self.run(key, |core, now| core.read(key, leader_epoch, now))
            .await
    }

    /// WriteShareGroupState: `key`'s state replaced by `state`, written by its leader in
    /// `leader_epoch`; `delivery_complete_count` as the request carries it (-1: unknown).
    pub async fn write(
        &self,
        key: &ShareKey,
        leader_epoch: i32,
        state: &PersistedState,
        delivery_complete_count: i32,
    ) -> Result<(), ShareError> {
        self.check_topic(key)?;
        self.run(key, |core, now| {
            core.write(key, leader_epoch, state, delivery_complete_count, now)
        })
        .await
    }

    /// InitializeShareGroupState: `key`'s state created or reset at `start_offset` in
    /// `state_epoch`.
    pub async fn initialize(
        &self,
        key: &ShareKey,
        state_epoch: i32,
        start_offset: i64,
    ) -> Result<(), ShareError> {
        self.check_topic(key)?;
        self.run(key, |core, now| {
            core.initialize(key, state_epoch, start_offset, now)
        })
        .await
    }

    /// DeleteShareGroupState: `key`'s state deleted (no error when it has none).
    pub async fn delete(&self, key: &ShareKey) -> Result<(), ShareError> {
        self.check_topic(key)?;
        self.run(key, |core, _| core.delete(key)).await
    }

    /// ReadShareGroupStateSummary: `None` when `key` has no state.
    pub async fn read_summary(&self, key: &ShareKey) -> Result<Option<StateSummary>, ShareError> {
        self.check_topic(key)?;
        self.run(key, |core, _| Decision {
            answer: core.read_summary(key),
            record: None,
        })
        .await
    }

    /// Runs a core decision for `key` while this broker coordinates its partition: appends
    /// its record (under the core lock, so records reach the log in the order decided) and
    /// installs it, then waits until the partition's log is durable up to the decision.
    async fn run<T>(
        &self,
        key: &ShareKey,
        decide: impl FnOnce(&ShareCoordinator, i64) -> Decision<T>,
    ) -> Result<T, ShareError> {
        let partition = self.partition_for(key);
        let (answer, wait) = {
            let mut core = self.core();
            let leader_epoch = self.loaded_epoch(partition)?;
            let (topic, part) = self
                .replicas
                .partition(SHARE_GROUP_STATE_TOPIC, partition)
                .ok_or_else(|| error_code(code::NOT_COORDINATOR))?;
            if !part.is_leader() || part.leader_epoch() != leader_epoch {
                return Err(error_code(code::NOT_COORDINATOR));
            }
            let decision = decide(&core, self.clock.now_ms());
            let answer = decision.answer?;
            let required_offset = match &decision.record {
                Some(record) => {
                    let (k, v) = record.encode();
                    let batch = gregor_protocol::batch::encode_simple_batch(
                        self.clock.now_ms(),
                        &[(Some(&k[..]), v.as_deref())],
                    );
                    let appended = part
                        .append_to_leader(&batch, &topic.settings, -1)
                        .map_err(append_error)?;
                    if appended.leader_epoch != leader_epoch {
                        return Err(error_code(code::NOT_COORDINATOR));
                    }
                    // The core follows the leader's log: what a later decision sees is what a
                    // reload would replay.
                    core.replay(partition, record);
                    appended.info.last_offset + 1
                }
                // Nothing written: the answer still waits for what was decided before it.
                None => part.log_end_offset(),
            };
            let wait = crate::purgatory::ProduceWait {
                partition: Arc::clone(&part),
                required_offset,
                leader_epoch,
                replication: true,
                durable: part.flushes_before_acks(),
            };
            (answer, wait)
        };
        let timeout = Duration::from_millis(
            u64::try_from(self.config.share_coordinator.write_timeout_ms).unwrap_or(5_000),
        );
        self.replicas
            .purgatory()
            .delay_produce(vec![wait], timeout)
            .await
            .pop()
            .unwrap_or(Ok(()))
            .map_err(|f| {
                warn!(partition, error = ?f.code, "a share coordinator write was not replicated");
                append_error(f.code)
            })?;
        Ok(answer)
    }

    // ---- leadership ----

    /// Loads every `__share_group_state` partition this broker now leads (in a new leader
    /// epoch: loaded again) and unloads those it no longer leads. Blocking (reads the
    /// partitions); call after each applied metadata image. A partition that cannot be read
    /// stays unowned and is tried again at the next call.
    pub fn sync_leadership(&self) -> anyhow::Result<()> {
        let _one = self.sync.lock().unwrap_or_else(|p| p.into_inner());
        let led: BTreeMap<i32, i32> = self
            .replicas
            .topic(SHARE_GROUP_STATE_TOPIC)
            .map(|t| {
                t.partitions
                    .iter()
                    .filter(|(_, p)| p.is_leader())
                    .map(|(n, p)| (*n, p.leader_epoch()))
                    .collect()
            })
            .unwrap_or_default();
        let current = self.status().clone();
        for (p, status) in current {
            let keep = matches!(status, PartitionStatus::Loaded { leader_epoch }
                if led.get(&p) == Some(&leader_epoch));
            if !keep {
                let mut core = self.core();
                core.unload_partition(p);
                self.status().remove(&p);
                info!(
                    partition = p,
                    "no longer the share coordinator of {SHARE_GROUP_STATE_TOPIC}-{p}"
                );
            }
        }
        let mut failed = None;
        let mut newly_led = 0;
        for (p, epoch) in led {
            if self.status().contains_key(&p) {
                continue;
            }
            let Some((_, part)) = self.replicas.partition(SHARE_GROUP_STATE_TOPIC, p) else {
                continue;
            };
            self.status().insert(p, PartitionStatus::Loading);
            let loaded = crate::txn_coordinator::read_all(&part).and_then(|records| {
                let mut core = self.core();
                let count = core
                    .load_partition(
                        p,
                        records
                            .iter()
                            .map(|(k, v)| (&k[..], v.as_ref().map(|v| &v[..]))),
                    )
                    .map_err(|e| anyhow::anyhow!("corrupt {SHARE_GROUP_STATE_TOPIC}-{p}: {e}"))?;
                self.status().insert(
                    p,
                    PartitionStatus::Loaded {
                        leader_epoch: epoch,
                    },
                );
                Ok(count)
            });
            match loaded {
                Ok(count) => {
                    newly_led += 1;
                    debug!(
                        partition = p,
                        leader_epoch = epoch,
                        share_partitions = count,
                        "became the share coordinator of {SHARE_GROUP_STATE_TOPIC}-{p}"
                    );
                }
                Err(e) => {
                    self.core().unload_partition(p);
                    self.status().remove(&p);
                    error!(partition = p, error = %e, "cannot load {SHARE_GROUP_STATE_TOPIC} partition");
                    failed = Some(e);
                }
            }
        }
        if newly_led > 0 {
            info!(
                partitions = newly_led,
                "became the share coordinator of {newly_led} {SHARE_GROUP_STATE_TOPIC} partitions"
            );
        }
        self.delete_state_of_deleted_topics();
        match failed {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Kafka's `ShareCoordinatorService.onTopicsDeleted`: every topic id of the last image seen
    /// that the current one lacks was deleted, and each loaded partition appends tombstones
    /// for the share-partitions of those topics (`maybeCleanupShareState`), so that their
    /// state stays deleted after a restart and on the next coordinator. Partitions loaded by
    /// the same leadership sync are covered too. Nobody waits for these records; one that
    /// cannot be written is logged and the state stays (its reads and writes are refused
    /// UNKNOWN_TOPIC_OR_PARTITION all the same).
    fn delete_state_of_deleted_topics(&self) {
        let current = topic_ids(&self.replicas);
        let before = std::mem::replace(
            &mut *self.known_topics.lock().unwrap_or_else(|p| p.into_inner()),
            current.clone(),
        );
        let deleted: BTreeSet<uuid::Uuid> = before.difference(&current).copied().collect();
        if deleted.is_empty() {
            return;
        }
        let loaded: Vec<i32> = self.status().keys().copied().collect();
        let mut tombstones = 0;
        for partition in loaded {
            match self.append_tombstones(partition, &deleted) {
                Ok(n) => tombstones += n,
                Err(e) => warn!(
                    partition,
                    error = e.code,
                    "cannot write the tombstones of deleted topics' share-partitions"
                ),
            }
        }
        info!(tombstones, topics = ?deleted, "deleted the share-partition state of deleted topics");
    }

    /// Appends to `partition` (while loaded and led here) the tombstones of the
    /// share-partitions of `deleted` topics, and replays them; how many.
    fn append_tombstones(
        &self,
        partition: i32,
        deleted: &BTreeSet<uuid::Uuid>,
    ) -> Result<usize, ShareError> {
        let mut core = self.core();
        let leader_epoch = self.loaded_epoch(partition)?;
        let records = core.tombstones_of_topics(partition, deleted);
        if records.is_empty() {
            return Ok(0);
        }
        let (topic, part) = self
            .replicas
            .partition(SHARE_GROUP_STATE_TOPIC, partition)
            .ok_or_else(|| error_code(code::NOT_COORDINATOR))?;
        if !part.is_leader() || part.leader_epoch() != leader_epoch {
            return Err(error_code(code::NOT_COORDINATOR));
        }
        let encoded: Vec<_> = records.iter().map(|r| r.encode()).collect();
        let entries: Vec<_> = encoded
            .iter()
            .map(|(k, v)| (Some(&k[..]), v.as_deref()))
            .collect();
        let batch = gregor_protocol::batch::encode_simple_batch(self.clock.now_ms(), &entries);
        let appended = part
            .append_to_leader(&batch, &topic.settings, -1)
            .map_err(append_error)?;
        if appended.leader_epoch != leader_epoch {
            return Err(error_code(code::NOT_COORDINATOR));
        }
        for record in &records {
            core.replay(partition, record);
        }
        Ok(records.len())
    }

    /// Creates `__share_group_state` through the controller if it does not exist yet (Kafka
    /// creates it on the first FindCoordinator for a share key), in the background: the caller
    /// answers COORDINATOR_NOT_AVAILABLE meanwhile.
    pub fn ensure_topic(self: &Arc<Self>) {
        let want = share_group_state_replication_factor(&self.config);
        let config = &self.config;
        self.creating
            .ensure(&self.replicas, &self.controller, want, |rf| {
                share_group_state_topic(config, rf)
            });
    }
}

/// The topic ids of the applied image.
fn topic_ids(replicas: &ReplicaManager) -> BTreeSet<uuid::Uuid> {
    replicas.image().topics().topics().map(|t| t.id).collect()
}

/// After every applied image, loads and unloads share-partition state as this broker gains
/// and loses the leadership of `__share_group_state` partitions.
pub async fn follow_share_group_state_leadership(
    runtime: Arc<ShareCoordinatorRuntime>,
    replicas: Arc<ReplicaManager>,
) {
    let mut images = replicas.watch_image();
    while images.changed().await.is_ok() {
        let r = Arc::clone(&runtime);
        match tokio::task::spawn_blocking(move || r.sync_leadership()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                warn!(error = %e, "the share coordinator could not follow a leadership change")
            }
            Err(e) => error!(error = %e, "share coordinator leadership task failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use gregor_metadata::AclOperation;
    use gregor_protocol::messages::ApiKey;
    use gregor_protocol::messages::{
        delete_share_group_state_request as del, initialize_share_group_state_request as init,
        read_share_group_state_request as read, read_share_group_state_summary_request as sum,
        write_share_group_state_request as write, BrokerId, DeleteShareGroupStateRequest,
        FindCoordinatorRequest, InitializeShareGroupStateRequest, ReadShareGroupStateRequest,
        ReadShareGroupStateSummaryRequest, WriteShareGroupStateRequest,
    };
    use gregor_protocol::protocol::{Decodable, StrBytes};
    use uuid::Uuid;

    use super::*;
    use crate::broker::{test_broker, Broker};
    use crate::txn_coordinator::tests::call;

    /// A test broker with topic `t` (2 partitions) and `__share_group_state` (`state_partitions`
    /// partitions, led here), loaded unless `load` is false.
    fn broker_with(
        dir: &std::path::Path,
        state_partitions: i32,
        load: bool,
        config: impl FnOnce(BrokerConfig) -> BrokerConfig,
    ) -> Arc<Broker> {
        let mut c = BrokerConfig {
            data_dir: dir.to_path_buf(),
            ..Default::default()
        };
        c.group.offsets_topic_num_partitions = 1;
        c.share_coordinator.state_topic_num_partitions = state_partitions;
        let b = test_broker(config(c));
        b.replicas
            .create_topic("t", 2, 1, Default::default())
            .expect("create");
        b.replicas
            .create_topic(
                SHARE_GROUP_STATE_TOPIC,
                state_partitions,
                1,
                Default::default(),
            )
            .expect("create");
        if load {
            b.share_coordinator.sync_leadership().expect("load");
        }
        b
    }

    fn topic_id(b: &Broker) -> Uuid {
        b.replicas.image().topics().topic_id("t").expect("topic id")
    }

    fn s(v: &str) -> StrBytes {
        StrBytes::from_string(v.to_string())
    }

    fn init_req(
        group: &str,
        topic: Uuid,
        partition: i32,
        state_epoch: i32,
        start: i64,
    ) -> InitializeShareGroupStateRequest {
        InitializeShareGroupStateRequest::default()
            .with_group_id(s(group))
            .with_topics(vec![init::InitializeStateData::default()
                .with_topic_id(topic)
                .with_partitions(vec![init::PartitionData::default()
                    .with_partition(partition)
                    .with_state_epoch(state_epoch)
                    .with_start_offset(start)])])
    }

    fn read_req(
        group: &str,
        topic: Uuid,
        partition: i32,
        leader_epoch: i32,
    ) -> ReadShareGroupStateRequest {
        ReadShareGroupStateRequest::default()
            .with_group_id(s(group))
            .with_topics(vec![read::ReadStateData::default()
                .with_topic_id(topic)
                .with_partitions(vec![read::PartitionData::default()
                    .with_partition(partition)
                    .with_leader_epoch(leader_epoch)])])
    }

    fn write_req(
        group: &str,
        topic: Uuid,
        partition: i32,
        leader_epoch: i32,
        state_epoch: i32,
        start: i64,
        batches: &[(i64, i64, i8, i16)],
    ) -> WriteShareGroupStateRequest {
        WriteShareGroupStateRequest::default()
            .with_group_id(s(group))
            .with_topics(vec![write::WriteStateData::default()
                .with_topic_id(topic)
                .with_partitions(vec![write::PartitionData::default()
                    .with_partition(partition)
                    .with_leader_epoch(leader_epoch)
                    .with_state_epoch(state_epoch)
                    .with_start_offset(start)
                    .with_state_batches(
                        batches
                            .iter()
                            .map(|&(f, l, st, c)| {
                                write::StateBatch::default()
                                    .with_first_offset(f)
                                    .with_last_offset(l)
                                    .with_delivery_state(st)
                                    .with_delivery_count(c)
                            })
                            .collect(),
                    )])])
    }

    fn delete_req(group: &str, topic: Uuid, partition: i32) -> DeleteShareGroupStateRequest {
        DeleteShareGroupStateRequest::default()
            .with_group_id(s(group))
            .with_topics(vec![del::DeleteStateData::default()
                .with_topic_id(topic)
                .with_partitions(vec![
                    del::PartitionData::default().with_partition(partition)
                ])])
    }

    fn summary_req(group: &str, topic: Uuid, partition: i32) -> ReadShareGroupStateSummaryRequest {
        ReadShareGroupStateSummaryRequest::default()
            .with_group_id(s(group))
            .with_topics(vec![sum::ReadStateSummaryData::default()
                .with_topic_id(topic)
                .with_partitions(vec![sum::PartitionData::default()
                    .with_partition(partition)
                    .with_leader_epoch(-1)])])
    }

    async fn init_code(b: &Arc<Broker>, r: InitializeShareGroupStateRequest) -> i16 {
        call(b, 0, &r).await.results[0].partitions[0].error_code
    }

    async fn write_code(b: &Arc<Broker>, r: WriteShareGroupStateRequest) -> i16 {
        call(b, 0, &r).await.results[0].partitions[0].error_code
    }

    /// Every state API through the router, with Kafka's answers.
    #[tokio::test]
    async fn the_state_apis_through_the_router() {
        let dir = tempfile::tempdir().expect("tempdir");
        let b = broker_with(dir.path(), 3, true, |c| c);
        let t = topic_id(&b);

        // No state yet: Read is INVALID_REQUEST with Kafka's message, the summary -1.
        let r = call(&b, 0, &read_req("g", t, 0, 0)).await;
        let p = &r.results[0].partitions[0];
        assert_eq!(p.error_code, code::INVALID_REQUEST);
        assert_eq!(
            p.error_message.as_deref(),
            Some(gregor_share::coordinator::READ_UNINITIALIZED)
        );
        let r = call(&b, 0, &summary_req("g", t, 0)).await;
        let p = &r.results[0].partitions[0];
        assert_eq!(
            (p.error_code, p.start_offset, p.state_epoch, p.leader_epoch),
            (0, -1, 0, 0)
        );
        let w = write_req("g", t, 0, 0, 0, 0, &[]);
        assert_eq!(write_code(&b, w).await, code::INVALID_REQUEST);

        assert_eq!(init_code(&b, init_req("g", t, 0, 0, 5)).await, 0);
        let w = write_req("g", t, 0, 2, 0, 6, &[(6, 7, 2, 1), (9, 12, 0, 3)]);
        assert_eq!(write_code(&b, w).await, 0);
        let r = call(&b, 0, &read_req("g", t, 0, 2)).await;
        let p = &r.results[0].partitions[0];
        assert_eq!((p.error_code, p.state_epoch, p.start_offset), (0, 0, 6));
        let batches: Vec<_> = p
            .state_batches
            .iter()
            .map(|b| {
                (
                    b.first_offset,
                    b.last_offset,
                    b.delivery_state,
                    b.delivery_count,
                )
            })
            .collect();
        assert_eq!(batches, vec![(6, 7, 2, 1), (9, 12, 0, 3)]);
        let r = call(&b, 0, &summary_req("g", t, 0)).await;
        let p = &r.results[0].partitions[0];
        assert_eq!(
            (p.error_code, p.start_offset, p.state_epoch, p.leader_epoch),
            (0, 6, 0, 2)
        );

        // Fences.
        let w = write_req("g", t, 0, 1, 0, 6, &[]);
        assert_eq!(write_code(&b, w).await, code::FENCED_LEADER_EPOCH);
        let r = call(&b, 0, &read_req("g", t, 0, 1)).await;
        assert_eq!(
            r.results[0].partitions[0].error_code,
            code::FENCED_LEADER_EPOCH
        );
        assert_eq!(init_code(&b, init_req("g", t, 0, 1, 0)).await, 0);
        let w = write_req("g", t, 0, 2, 0, 6, &[]);
        assert_eq!(write_code(&b, w).await, code::FENCED_STATE_EPOCH);
        assert_eq!(
            init_code(&b, init_req("g", t, 0, 0, 0)).await,
            code::FENCED_STATE_EPOCH
        );

        // Bad requests: an unknown delivery state, an unknown topic partition, no group.
        let w = write_req("g", t, 0, 2, 1, 0, &[(0, 1, 3, 1)]);
        assert_eq!(write_code(&b, w).await, code::INVALID_REQUEST);
        assert_eq!(
            init_code(&b, init_req("g", t, 5, 0, 0)).await,
            code::UNKNOWN_TOPIC_OR_PARTITION
        );
        assert_eq!(
            init_code(&b, init_req("g", Uuid::from_u128(1), 0, 0, 0)).await,
            code::UNKNOWN_TOPIC_OR_PARTITION
        );
        assert_eq!(
            init_code(&b, init_req("", t, 0, 0, 0)).await,
            code::INVALID_REQUEST
        );

        // Delete: a tombstone, then nothing to delete is no error.
        for _ in 0..2 {
            let r = call(&b, 0, &delete_req("g", t, 0)).await;
            assert_eq!(r.results[0].partitions[0].error_code, 0);
        }
        let r = call(&b, 0, &read_req("g", t, 0, 2)).await;
        assert_eq!(r.results[0].partitions[0].error_code, code::INVALID_REQUEST);
    }

    /// The state of a deleted topic's share-partitions gets tombstones (Kafka's
    /// `onTopicsDeleted`): gone from the coordinator, and from one that loads the partition
    /// again; other topics' state stays.
    #[tokio::test]
    async fn a_deleted_topic_s_share_partition_state_is_deleted() {
        let dir = tempfile::tempdir().expect("tempdir");
        let b = broker_with(dir.path(), 1, true, |c| c);
        let t = topic_id(&b);
        let other = b
            .replicas
            .create_topic("u", 1, 1, Default::default())
            .expect("create")
            .id;
        for (group, topic, p) in [("g", t, 0), ("g", t, 1), ("h", t, 0), ("g", other, 0)] {
            assert_eq!(init_code(&b, init_req(group, topic, p, 0, 0)).await, 0);
        }
        let runtime = &b.share_coordinator;
        runtime.sync_leadership().expect("sync");
        assert_eq!(
            runtime.core().share_partitions(0),
            Some(4),
            "nothing deleted"
        );
        b.replicas
            .apply_records(&[gregor_metadata::MetadataRecord::RemoveTopic(
                gregor_metadata::RemoveTopicRecord { topic_id: t },
            )]);
        runtime.sync_leadership().expect("sync");
        assert_eq!(runtime.core().share_partitions(0), Some(1));
        let (_, part) = b
            .replicas
            .partition(SHARE_GROUP_STATE_TOPIC, 0)
            .expect("state partition");
        let records = crate::txn_coordinator::read_all(&part).expect("read");
        let tombstones = records.iter().filter(|(_, v)| v.is_none()).count();
        assert_eq!(tombstones, 3);
        runtime.sync_leadership().expect("sync");
        let records = crate::txn_coordinator::read_all(&part).expect("read");
        assert_eq!(
            records.iter().filter(|(_, v)| v.is_none()).count(),
            3,
            "once"
        );
        let again =
            ShareCoordinatorRuntime::new(Arc::clone(&b.replicas), Arc::clone(&b.controller));
        again.sync_leadership().expect("load");
        assert_eq!(again.core().share_partitions(0), Some(1));
        let kept = ShareKey {
            group_id: "g".into(),
            topic_id: other,
            partition: 0,
        };
        assert!(matches!(again.read_summary(&kept).await, Ok(Some(_))));
    }

    /// Requests for a state partition this broker has not loaded are NOT_COORDINATOR; a
    /// partition loaded again after a restart (a new runtime) has the same state.
    #[tokio::test]
    async fn status_and_reload() {
        let dir = tempfile::tempdir().expect("tempdir");
        let b = broker_with(dir.path(), 1, false, |c| c);
        let t = topic_id(&b);
        assert_eq!(
            init_code(&b, init_req("g", t, 1, 0, 0)).await,
            code::NOT_COORDINATOR
        );
        b.share_coordinator.sync_leadership().expect("load");
        assert_eq!(init_code(&b, init_req("g", t, 1, 3, 42)).await, 0);
        let key = ShareKey {
            group_id: "g".into(),
            topic_id: t,
            partition: 1,
        };
        assert_eq!(b.share_coordinator.not_coordinator(&key), None);
        let again =
            ShareCoordinatorRuntime::new(Arc::clone(&b.replicas), Arc::clone(&b.controller));
        assert_eq!(
            again.read_summary(&key).await,
            Err(error_code(code::NOT_COORDINATOR))
        );
        again.sync_leadership().expect("load");
        assert_eq!(
            again.read_summary(&key).await,
            Ok(Some(StateSummary {
                state_epoch: 3,
                leader_epoch: 0,
                start_offset: 42,
                delivery_complete_count: 0,
            }))
        );
    }

    /// WriteShareGroupState v1 carries the leader's delivery-complete count (KIP-1226):
    /// stored with the state and answered by ReadShareGroupStateSummary v1; a v0 write
    /// stores -1 (not known), and a v0 summary has no such field.
    #[tokio::test]
    async fn the_delivery_complete_count_through_the_router() {
        let dir = tempfile::tempdir().expect("tempdir");
        let b = broker_with(dir.path(), 1, true, |c| c);
        let t = topic_id(&b);
        let summary = |version: i16| {
            let b = Arc::clone(&b);
            async move {
                let r = call(&b, version, &summary_req("g", t, 0)).await;
                let p = &r.results[0].partitions[0];
                (p.error_code, p.start_offset, p.delivery_complete_count)
            }
        };
        // No state: start offset -1, count -1.
        assert_eq!(summary(1).await, (0, -1, -1));
        // Initialized at a start offset: nothing delivered yet.
        assert_eq!(init_code(&b, init_req("g", t, 0, 0, 10)).await, 0);
        assert_eq!(summary(1).await, (0, 10, 0));
        let mut w = write_req("g", t, 0, 1, 0, 10, &[(10, 12, 2, 1), (14, 14, 4, 5)]);
        w.topics[0].partitions[0].delivery_complete_count = 4;
        assert_eq!(call(&b, 1, &w).await.results[0].partitions[0].error_code, 0);
        assert_eq!(summary(1).await, (0, 10, 4));
        // A v0 summary leaves the field out: decoded as its default.
        assert_eq!(summary(0).await, (0, 10, -1));
        // A v0 write cannot carry the count: not known from then on.
        let mut w = write_req("g", t, 0, 1, 0, 13, &[(14, 14, 4, 5)]);
        w.topics[0].partitions[0].delivery_complete_count = 1;
        assert_eq!(call(&b, 0, &w).await.results[0].partitions[0].error_code, 0);
        assert_eq!(summary(1).await, (0, 13, -1));
    }

    /// The state APIs need CLUSTER_ACTION on the cluster, as in Kafka.
    #[tokio::test]
    async fn the_state_apis_need_cluster_action() {
        use crate::authorizer::test_support::{allow_cluster, ctx_of, with_authorizer};
        use crate::request::Reply;
        let dir = tempfile::tempdir().expect("tempdir");
        let b = broker_with(dir.path(), 1, true, with_authorizer);
        let t = topic_id(&b);
        let ctx = ctx_of("alice", ApiKey::InitializeShareGroupState, 0);
        let answer = |reply: Reply| async move {
            let Reply::Pending(f) = reply else {
                panic!("pending")
            };
            let bytes = f.await.expect("encode");
            let mut body = bytes.slice(4..);
            gregor_protocol::messages::ResponseHeader::decode(&mut body, 1).expect("header");
            gregor_protocol::messages::InitializeShareGroupStateResponse::decode(&mut body, 0)
                .expect("body")
        };
        let r = answer(crate::handlers::initialize_share_group_state::handle(
            &b,
            ctx.clone(),
            init_req("g", t, 0, 0, 0),
        ))
        .await;
        assert_eq!(
            r.results[0].partitions[0].error_code,
            ErrorCode::CLUSTER_AUTHORIZATION_FAILED.code()
        );
        allow_cluster(&b, "User:alice", AclOperation::ClusterAction);
        let r = answer(crate::handlers::initialize_share_group_state::handle(
            &b,
            ctx,
            init_req("g", t, 0, 0, 0),
        ))
        .await;
        assert_eq!(r.results[0].partitions[0].error_code, 0);
    }

    /// FindCoordinator key type 2: the leader of the key's `__share_group_state` partition;
    /// the first lookup creates the topic; malformed keys and old versions are refused.
    #[tokio::test]
    async fn find_coordinator_for_share_keys() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut c = BrokerConfig {
            data_dir: dir.path().to_path_buf(),
            ..Default::default()
        };
        c.group.offsets_topic_num_partitions = 1;
        let b = test_broker(c);
        let key = "g:AAAAAAAAAAAAAAAAAAAAAQ:0";
        let find = |keys: &[&str]| {
            FindCoordinatorRequest::default()
                .with_key_type(2)
                .with_coordinator_keys(keys.iter().map(|k| s(k)).collect())
        };
        let r = call(&b, 6, &find(&[key])).await;
        assert_eq!(
            r.coordinators[0].error_code,
            ErrorCode::COORDINATOR_NOT_AVAILABLE.code()
        );
        // The creation runs in the background.
        for _ in 0..100 {
            if b.replicas.topic(SHARE_GROUP_STATE_TOPIC).is_some() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let topic = b.replicas.topic(SHARE_GROUP_STATE_TOPIC).expect("created");
        assert_eq!(topic.partitions.len(), 50);
        assert_eq!(b.share_coordinator.partition_for_coordinator_key(key), {
            let h = key
                .encode_utf16()
                .fold(0i32, |h, u| h.wrapping_mul(31).wrapping_add(i32::from(u)));
            h.checked_abs().unwrap_or(0) % 50
        });
        let r = call(
            &b,
            6,
            &find(&[key, "nocolons", "g:short:0", "g:AAAAAAAAAAAAAAAAAAAAAQ:-1"]),
        )
        .await;
        let answers: Vec<(i16, i32)> = r
            .coordinators
            .iter()
            .map(|c| (c.error_code, c.node_id.0))
            .collect();
        let invalid = (ErrorCode::INVALID_REQUEST.code(), -1);
        assert_eq!(
            answers,
            vec![(0, b.config.node_id), invalid, invalid, invalid]
        );
        assert_eq!(r.coordinators[0].node_id, BrokerId(b.config.node_id));
        let r = call(&b, 5, &find(&[key])).await;
        assert_eq!(
            r.coordinators[0].error_code,
            ErrorCode::INVALID_REQUEST.code()
        );
    }
}
