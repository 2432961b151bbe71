//! The replica manager: every topic and partition this broker hosts, and the operations the
//! request handlers perform on them — create/delete topics, find partitions, and the purgatory
//! where produces and fetches wait (Kafka's `ReplicaManager`).
//!
//! ```text
//!  produce ─► Partition::append_to_leader ─► Log (page cache) ─► log_end / high_watermark watches
//!                                        │ acks=all                    │
//!                                        ▼                             ▼
//!                  purgatory: delay_produce (HW, then fsync)    purgatory: delay_fetch wakes
//!                                        │
//!                           Partition::wait_durable(offset)
//!                 one flusher at a time per partition: FlushTarget::sync (fdatasync, off the lock)
//!                 everything appended meanwhile rides along on the next fsync (group commit)
//!  periodic: tick_replication (ISR shrink → pending AlterPartition), retention, checkpoints
//! ```
//!
//! Each [`Partition`] (partition.rs) holds its log and its replication core.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, RwLock};

use gregor_metadata::{MetadataImage, PartitionRegistration};
use gregor_protocol::error::ErrorCode;
use gregor_replication::{AlterPartitionRequest, LeaderAndIsr, ReplicationConfig};
use gregor_storage::{LogManager, StorageError, TopicPartition};
use tokio::sync::watch;
use tracing::{error, info, warn};

use crate::clock::Clock;
use crate::config::{BrokerConfig, FlushPolicy};
use crate::partition::tp_name;
pub use crate::partition::Partition;
use crate::purgatory::Purgatory;
use crate::topic_config::TopicSettings;

/// A topic of the cluster, with the partitions this broker hosts.
#[derive(Debug)]
pub struct Topic {
    /// Name.
    pub name: String,
    /// Topic id.
    pub id: uuid::Uuid,
    /// Partitions in the cluster (numbered `0..partition_count`).
    pub partition_count: i32,
    /// Replicas of partition 0.
    pub replication_factor: i16,
    /// Config overrides (from the metadata image).
    pub configs: BTreeMap<String, String>,
    /// Effective settings.
    pub settings: TopicSettings,
    /// The partitions with a replica on this broker.
    pub partitions: BTreeMap<i32, Arc<Partition>>,
}

impl Topic {
    /// A partition hosted here.
    pub fn partition(&self, partition: i32) -> Option<&Arc<Partition>> {
        self.partitions.get(&partition)
    }

    /// Whether the partition number exists in the cluster.
    pub fn has_partition(&self, partition: i32) -> bool {
        (0..self.partition_count).contains(&partition)
    }
}

/// All topics and partitions of this broker.
#[derive(Debug)]
pub struct ReplicaManager {
    config: Arc<BrokerConfig>,
    logs: LogManager,
    /// Time for retention, the replication cores and append timestamps.
    clock: Arc<dyn Clock>,
    /// Produces and fetches waiting to be answered.
    purgatory: Purgatory,
    /// The applied metadata image and the topics built from it, swapped together.
    state: RwLock<State>,
    /// One image application at a time (the publisher; tests).
    applying: Mutex<()>,
    /// The last image applied (its partitions exist here), for handlers waiting for a change
    /// they asked the controller for.
    applied: watch::Sender<Arc<MetadataImage>>,
    /// Woken when a partition queues an AlterPartition (the AlterPartition sender waits on it).
    alter_partition_wanted: Arc<tokio::sync::Notify>,
    /// The moves between log directories share one throttle (Kafka's alter-log-dirs quota):
    /// when the current window started, and the bytes copied in it.
    move_throttle: Mutex<(std::time::Instant, f64)>,
    /// KIP-73: the leader and follower replication quotas (`*.replication.throttled.rate`).
    replication_quotas: crate::quota::ReplicationQuotas,
    /// Turns true when a log directory goes offline (the server stops a broker of a cluster).
    dir_failed: watch::Sender<bool>,
    /// KIP-858: each log directory's id (`directory.id` in its `meta.properties`), in
    /// `log.dirs` order, `None` where it could not be read; set once at start, before the first
    /// image is applied (unset, as in unit tests, directories are not assigned).
    dir_ids: std::sync::OnceLock<Vec<Option<uuid::Uuid>>>,
    /// Replicas of this broker that the metadata assigns to a log directory it does not have
    /// online (one that could not be opened at start): not opened (their log is out of reach;
    /// an empty one must not take its place), reported offline to the controller.
    unopened: Mutex<BTreeSet<(uuid::Uuid, i32)>>,
}

/// A creation that takes longer than this is logged at WARN.
const SLOW_APPLY: std::time::Duration = std::time::Duration::from_secs(1);

#[derive(Debug)]
struct State {
    image: Arc<MetadataImage>,
    topics: HashMap<String, Arc<Topic>>,
    /// The configuration with the image's dynamic broker configs applied.
    effective: Arc<BrokerConfig>,
}

fn lock_unopened(
    m: &Mutex<BTreeSet<(uuid::Uuid, i32)>>,
) -> std::sync::MutexGuard<'_, BTreeSet<(uuid::Uuid, i32)>> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A partition's registration as the replication core takes it.
pub(crate) fn leader_and_isr(reg: &PartitionRegistration) -> LeaderAndIsr {
    LeaderAndIsr {
        leader: reg.leader,
        leader_epoch: reg.leader_epoch,
        partition_epoch: reg.partition_epoch,
        replicas: reg.replicas.clone(),
        isr: reg.isr.clone(),
    }
}

impl ReplicaManager {
    /// Opens the data directory's logs (recovering after a crash). No topic is served until
    /// the first metadata image is applied ([`ReplicaManager::apply_image`]).
    pub fn open(
        config: Arc<BrokerConfig>,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<ReplicaManager> {
        let logs = LogManager::open_dirs(&config.log_dirs())?;
        logs.set_cordoned(&config.cordoned_dirs()?);
        let empty = Arc::new(MetadataImage::empty());
        let effective = Arc::clone(&config);
        let replication_quotas =
            crate::quota::ReplicationQuotas::new(config.replication_quota_window());
        Ok(ReplicaManager {
            config,
            logs,
            state: RwLock::new(State {
                image: Arc::clone(&empty),
                topics: HashMap::new(),
                effective: Arc::clone(&effective),
            }),
            applying: Mutex::new(()),
            applied: watch::channel(empty).0,
            clock,
            purgatory: Purgatory::default(),
            alter_partition_wanted: Arc::new(tokio::sync::Notify::new()),
            move_throttle: Mutex::new((std::time::Instant::now(), 0.0)),
            replication_quotas,
            dir_failed: watch::channel(false).0,
            dir_ids: std::sync::OnceLock::new(),
            unopened: Mutex::new(BTreeSet::new()),
        })
    }

    /// KIP-858: the log directories' ids, in `log.dirs` order (`None`: its `meta.properties`
    /// could not be read, so the directory is taken offline). Call once, before the first
    /// image is applied.
    pub fn set_dir_ids(&self, ids: Vec<Option<uuid::Uuid>>) {
        for (i, id) in ids.iter().enumerate() {
            if id.is_none() && i > 0 && !self.logs.is_dir_offline(i) {
                self.logs.fail_dir_at(i);
            }
        }
        let _ = self.dir_ids.set(ids);
    }

    /// The ids of the online log directories (KIP-858: what the broker registers with).
    pub fn online_dir_ids(&self) -> Vec<uuid::Uuid> {
        self.dir_ids_where(false)
    }

    /// The ids of the log directories that went offline (what the heartbeats report).
    pub fn offline_dir_ids(&self) -> Vec<uuid::Uuid> {
        self.dir_ids_where(true)
    }

    fn dir_ids_where(&self, offline: bool) -> Vec<uuid::Uuid> {
        self.dir_ids
            .get()
            .into_iter()
            .flatten()
            .enumerate()
            .filter(|(i, _)| self.logs.is_dir_offline(*i) == offline)
            .filter_map(|(_, id)| *id)
            .collect()
    }

    /// KIP-858: the replicas whose log directory the applied metadata does not have right
    /// (new ones, moved ones, or ones from before directory assignment): topic id, partition
    /// and the id of the online directory holding each, for AssignReplicasToDirs.
    pub fn pending_dir_assignments(&self) -> Vec<(uuid::Uuid, i32, uuid::Uuid)> {
        let Some(ids) = self.dir_ids.get() else {
            return Vec::new();
        };
        let state = self.read_state();
        if !gregor_metadata::controller::directory_assignment(&state.image) {
            return Vec::new();
        }
        let node = self.config.node_id;
        let mut out = Vec::new();
        for t in state.topics.values() {
            for (&number, p) in &t.partitions {
                let Some(i) = self.logs.dir_index_of(&p.tp) else {
                    continue;
                };
                let Some(id) = ids.get(i).copied().flatten() else {
                    continue;
                };
                if self.logs.is_dir_offline(i) {
                    continue;
                }
                let tp = gregor_metadata::TopicIdPartition {
                    topic_id: t.id,
                    partition: number,
                };
                let assigned = state
                    .image
                    .topics()
                    .partition(tp)
                    .and_then(|reg| reg.directory(node));
                if assigned != Some(id) {
                    out.push((t.id, number, id));
                }
            }
        }
        out.sort();
        out
    }

    /// Whether a replica with no log on disk may be created, and where: `Ok(())` to create it
    /// (in the directory the metadata assigns it to, if that is one of these), `Err(())` when
    /// the metadata assigns it to a directory this broker does not have online while one of its
    /// directories is offline: the replica's data may be there (Kafka's `getOrCreateLog`
    /// refuses a log that is not new while a directory is offline). With every directory
    /// online, a directory the broker does not know was replaced (a new disk): the replica
    /// starts afresh and catches up, as on an empty broker.
    fn place_new_replica(
        &self,
        tp: &TopicPartition,
        assigned: Option<uuid::Uuid>,
    ) -> Result<(), ()> {
        let (Some(ids), Some(dir)) = (self.dir_ids.get(), assigned) else {
            return Ok(());
        };
        if self.logs.dir_index_of(tp).is_some() {
            return Ok(());
        }
        match ids.iter().position(|id| *id == Some(dir)) {
            Some(i) if !self.logs.is_dir_offline(i) => {
                self.logs.prefer_dir(tp, i);
                Ok(())
            }
            _ if self.logs.offline_dirs().is_empty() => Ok(()),
            _ => Err(()),
        }
    }

    /// The log directories, the main one first.
    pub fn log_dirs(&self) -> Vec<std::path::PathBuf> {
        self.logs.dirs()
    }

    /// The log directory holding a partition's log (`None` if it has none on disk).
    pub fn log_dir_of(&self, topic: &str, partition: i32) -> Option<std::path::PathBuf> {
        self.logs.dir_of(&TopicPartition {
            topic: topic.to_string(),
            partition,
        })
    }

    /// Test support: the log manager itself.
    #[cfg(test)]
    pub(crate) fn log_manager(&self) -> &LogManager {
        &self.logs
    }

    /// Counts `bytes` copied by a move; sleeps while the moves together copy faster than
    /// `replica.alter.log.dirs.io.max.bytes.per.second`. The rate is read again every 100 ms
    /// of a sleep, so a change (raised, or removed by `kafka-reassign-partitions --verify`)
    /// applies at once, not after a long sleep computed at the old rate.
    fn throttle_move(&self, bytes: u64) {
        const STEP: std::time::Duration = std::time::Duration::from_millis(100);
        let mut window = self.move_throttle.lock().unwrap_or_else(|p| p.into_inner());
        window.1 += bytes as f64;
        loop {
            let rate = self.effective_config().alter_log_dirs_bytes_per_second;
            let elapsed = window.0.elapsed();
            if rate == i64::MAX {
                break;
            }
            let wanted = std::time::Duration::from_secs_f64(window.1 / rate as f64);
            if wanted <= elapsed {
                break;
            }
            std::thread::sleep((wanted - elapsed).min(STEP));
        }
        // A new window every second: an idle spell earns no burst later.
        if window.0.elapsed() >= std::time::Duration::from_secs(1) {
            *window = (std::time::Instant::now(), 0.0);
        }
    }

    /// The replication quotas (KIP-73), shared by the fetch handler (leader side) and the
    /// replica fetchers (follower side).
    pub fn replication_quotas(&self) -> &crate::quota::ReplicationQuotas {
        &self.replication_quotas
    }

    /// Whether this broker's fetching of its replica of `topic`'s `partition` is held back now
    /// (KIP-73, Kafka's `shouldFollowerThrottle`): the topic's
    /// `follower.replication.throttled.replicas` names it, the replica is not in sync, and the
    /// follower quota (`follower.replication.throttled.rate`) is exceeded.
    pub fn follower_held_back(&self, topic: &str, partition: i32) -> bool {
        // The fetch round's hot path: no lookup at all while the rate is unlimited.
        let limit = self.effective_config().follower_replication_throttled_rate;
        if limit == i64::MAX {
            return false;
        }
        let node = self.config.node_id;
        let throttled = self
            .topic(topic)
            .is_some_and(|t| t.settings.follower_throttled.includes(partition, node));
        if !throttled {
            return false;
        }
        let in_sync = self.image().topics().topic_by_name(topic).is_some_and(|t| {
            t.partition(partition)
                .is_some_and(|r| r.isr.contains(&node))
        });
        !in_sync
            && self
                .replication_quotas
                .follower
                .is_exceeded(limit, self.clock.now_ms())
    }

    /// Counts `bytes` fetched for this broker's replica of `topic`'s `partition` against the
    /// follower quota when the topic throttles it (KIP-73).
    pub fn record_follower_bytes(&self, topic: &str, partition: i32, bytes: u64) {
        let node = self.config.node_id;
        if self
            .topic(topic)
            .is_some_and(|t| t.settings.follower_throttled.includes(partition, node))
        {
            self.replication_quotas
                .follower
                .record(bytes, self.clock.now_ms());
        }
    }

    /// The moves between log directories under way.
    pub fn log_dir_moves(&self) -> Vec<gregor_storage::MoveProgress> {
        self.logs.moves()
    }

    /// AlterReplicaLogDirs for one partition (Kafka's `ReplicaManager.alterReplicaLogDirs`):
    /// moves its log to the log directory at `path`, copying on a blocking thread while the
    /// partition keeps serving. LOG_DIR_NOT_FOUND for a path that is not one of `log.dirs`;
    /// REPLICA_NOT_AVAILABLE for a partition not hosted here, whose log is then created in that
    /// directory if it comes; INVALID_TOPIC_EXCEPTION for a topic name too long for the copy's
    /// directory name (KAFKA-4893).
    pub fn alter_log_dir(self: &Arc<Self>, topic: &str, partition: i32, path: &str) -> ErrorCode {
        // `<topic>-<partition>.<16 hex>-future`, at most 255 bytes.
        if topic.len() + partition.to_string().len() + 25 > 255 {
            return ErrorCode::INVALID_TOPIC_EXCEPTION;
        }
        let path = std::path::Path::new(path);
        let Some(dest) = path
            .is_absolute()
            .then(|| self.logs.dir_index_of_path(path))
            .flatten()
        else {
            return ErrorCode::LOG_DIR_NOT_FOUND;
        };
        if self.logs.is_dir_offline(dest) {
            return ErrorCode::KAFKA_STORAGE_ERROR;
        }
        if self.logs.is_dir_cordoned(dest) {
            // KIP-1066, as Kafka 4.4: "Log directory ... is cordoned".
            return ErrorCode::INVALID_REPLICA_ASSIGNMENT;
        }
        let tp = TopicPartition {
            topic: topic.to_string(),
            partition,
        };
        let hosted = self.partition(topic, partition).is_some();
        if !hosted && self.logs.dir_of(&tp).is_some() {
            // On disk but not hosted: going away.
            return ErrorCode::REPLICA_NOT_AVAILABLE;
        }
        match self.logs.alter_dir(&tp, dest) {
            Ok(gregor_storage::MoveStart::NotOnDisk) => ErrorCode::REPLICA_NOT_AVAILABLE,
            Ok(gregor_storage::MoveStart::Started) => {
                let me = Arc::clone(self);
                info!(partition = %tp_name(&tp), to = %path.display(), "moving the log to another directory");
                tokio::task::spawn_blocking(move || {
                    // Failures are logged by the move; the log stays where it was.
                    let _ = me.logs.run_move(&tp, &|bytes| me.throttle_move(bytes));
                });
                ErrorCode::NONE
            }
            Ok(_) => ErrorCode::NONE,
            Err(e) => {
                warn!(partition = %tp_name(&tp), error = %e, "cannot move the log");
                ErrorCode::KAFKA_STORAGE_ERROR
            }
        }
    }

    /// The broker's clock.
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// Where produces and fetches wait.
    pub fn purgatory(&self) -> &Purgatory {
        &self.purgatory
    }

    /// Broker configuration.
    pub fn config(&self) -> &BrokerConfig {
        &self.config
    }

    /// The configuration in effect: the static one with the applied image's dynamic broker
    /// configs over it ([`BrokerConfig::with_dynamic`]).
    pub fn effective_config(&self) -> Arc<BrokerConfig> {
        Arc::clone(&self.read_state().effective)
    }

    fn read_state(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    /// The metadata image applied last.
    pub fn image(&self) -> Arc<MetadataImage> {
        Arc::clone(&self.read_state().image)
    }

    /// Subscribes to applied images.
    pub fn watch_image(&self) -> watch::Receiver<Arc<MetadataImage>> {
        self.applied.subscribe()
    }

    /// A topic by name.
    pub fn topic(&self, name: &str) -> Option<Arc<Topic>> {
        self.read_state().topics.get(name).cloned()
    }

    /// A topic by id (the image's index by id names it; Produce v13 and Fetch v13+ look
    /// topics up by id on every request).
    pub fn topic_by_id(&self, id: uuid::Uuid) -> Option<Arc<Topic>> {
        let state = self.read_state();
        let by_image = state
            .image
            .topics()
            .topic(id)
            .and_then(|t| state.topics.get(&t.name))
            .filter(|t| t.id == id)
            .cloned();
        by_image.or_else(|| state.topics.values().find(|t| t.id == id).cloned())
    }

    /// All topics, sorted by name.
    pub fn topics(&self) -> Vec<Arc<Topic>> {
        let mut v: Vec<_> = self.read_state().topics.values().cloned().collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// Every partition hosted here.
    pub fn partitions(&self) -> Vec<Arc<Partition>> {
        self.read_state()
            .topics
            .values()
            .flat_map(|t| t.partitions.values().cloned())
            .collect()
    }

    /// A partition, if hosted here.
    pub fn partition(&self, topic: &str, partition: i32) -> Option<(Arc<Topic>, Arc<Partition>)> {
        let t = self.topic(topic)?;
        let p = t.partition(partition)?.clone();
        Some((t, p))
    }

    /// Applies a metadata image (Kafka's `ReplicaManager.applyDelta`): for every partition with
    /// a replica here, opens or creates its log and makes it leader or follower as the image
    /// says; the logs of deleted topics and of replicas moved away are deleted. Blocking (log
    /// creation and deletion); one call at a time.
    pub fn apply_image(&self, image: Arc<MetadataImage>) -> Result<(), StorageError> {
        let _one = self.applying.lock().unwrap_or_else(|p| p.into_inner());
        let started = std::time::Instant::now();
        let node = self.config.node_id;
        let (old, old_image, old_effective) = {
            let state = self.read_state();
            (
                state.topics.clone(),
                Arc::clone(&state.image),
                Arc::clone(&state.effective),
            )
        };
        let effective = if old_image
            .configs()
            .broker_resources()
            .eq(image.configs().broker_resources())
            && image.configs().broker_resources().all(|r| {
                old_image
                    .configs()
                    .broker_configs(r)
                    .eq(image.configs().broker_configs(r))
            }) {
            old_effective
        } else {
            Arc::new(self.config.with_dynamic(image.configs()))
        };
        // `cordoned.log.dirs` is dynamic: the partitions this image creates already follow it.
        match effective.cordoned_dirs() {
            Ok(cordoned) => self.logs.set_cordoned(&cordoned),
            Err(e) => warn!(error = %e, "cordoned.log.dirs not applied"),
        }
        // The brokers' registrations, for the cores' ISR eligibility (a fenced follower does
        // not hold the high watermark back): told to every partition when they changed, and
        // to partitions opened now.
        let cluster_changed = old_image.cluster() != image.cluster();
        let statuses = broker_statuses(&old_image, &image);
        // Partitions no longer hosted: their topic is gone (or recreated under a new id), or
        // the replica moved away. Their logs go before any is opened: a topic deleted and
        // created again under its name in this image starts on a log of its own.
        let mut gone = Vec::new();
        for (name, o) in &old {
            let now = image.topics().topic(o.id).filter(|t| t.name == *name);
            for (number, p) in &o.partitions {
                if now.is_none_or(|t| !t.partition(*number).is_some_and(|r| r.is_replica(node))) {
                    gone.push(Arc::clone(p));
                }
            }
        }
        for p in &gone {
            p.mark_deleted();
            if let Err(e) = self.logs.delete(&p.tp) {
                // Not in the image: the stray-log pass at the next start sets aside what is left.
                warn!(partition = %tp_name(&p.tp), error = %e, "cannot remove log directory");
            } else {
                info!(partition = %tp_name(&p.tp), "deleted partition");
            }
        }
        let mut topics: HashMap<String, Arc<Topic>> = HashMap::new();
        let mut created = 0usize;
        let mut failure = None;
        let mut unopened = BTreeSet::new();
        // `num.recovery.threads.per.data.dir` threads for each log directory open the new
        // replicas' logs (recovering them after an unclean stop) and then apply every
        // replica's registration (a new leader epoch is an fsync'd checkpoint per partition),
        // as Kafka's log manager loads logs with that many threads per directory.
        let threads = effective
            .num_recovery_threads_per_data_dir
            .max(1)
            .saturating_mul(self.logs.dirs().len().max(1));
        // The threads run within the runtime's context, as this blocking thread does, should
        // anything they call reach for it.
        let runtime = tokio::runtime::Handle::try_current().ok();
        let in_runtime = || runtime.as_ref().map(|r| r.enter());
        let settings_of: HashMap<uuid::Uuid, (BTreeMap<String, String>, TopicSettings)> = image
            .topics()
            .topics()
            .map(|t| {
                let configs: BTreeMap<String, String> = image
                    .configs()
                    .topic_configs(&t.name)
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect();
                let settings = TopicSettings::resolve(&effective, &configs);
                (t.id, (configs, settings))
            })
            .collect();
        // The replicas new here, placed, then opened together.
        let mut to_open = Vec::new();
        for t in image.topics().topics() {
            let previous = old.get(&t.name).filter(|o| o.id == t.id);
            for (number, reg) in t.partitions() {
                if !reg.is_replica(node)
                    || previous.is_some_and(|o| o.partitions.contains_key(&number))
                {
                    continue;
                }
                let tp = TopicPartition {
                    topic: t.name.clone(),
                    partition: number,
                };
                if self.place_new_replica(&tp, reg.directory(node)).is_err() {
                    unopened.insert((t.id, number));
                    continue;
                }
                to_open.push((tp, t.id));
            }
        }
        let mut opened_now: HashMap<TopicPartition, Result<Partition, StorageError>> =
            gregor_storage::parallel::run(to_open, threads, |(tp, id)| {
                let _runtime = in_runtime();
                let (_, settings) = &settings_of[&id];
                (tp.clone(), self.open_partition(tp, id, settings))
            })
            .into_iter()
            .collect();
        // Each replica's registration and settings, applied together once every map is built.
        let mut updates = Vec::new();
        for t in image.topics().topics() {
            let (configs, settings) = &settings_of[&t.id];
            let previous = old.get(&t.name).filter(|o| o.id == t.id);
            let mut partitions = BTreeMap::new();
            for (number, reg) in t.partitions() {
                if !reg.is_replica(node) {
                    continue;
                }
                let existing = previous.and_then(|o| o.partitions.get(&number)).cloned();
                let opened = existing.is_none();
                let part = match existing {
                    Some(p) => p,
                    None => {
                        let tp = TopicPartition {
                            topic: t.name.clone(),
                            partition: number,
                        };
                        match opened_now.remove(&tp) {
                            // Its directory is offline.
                            None => continue,
                            Some(Ok(p)) => {
                                created += 1;
                                Arc::new(p)
                            }
                            Some(Err(e)) => {
                                error!(topic = %t.name, partition = number, error = %e, "cannot open the partition's log");
                                failure = Some(e);
                                continue;
                            }
                        }
                    }
                };
                updates.push(ReplicaUpdate {
                    part: Arc::clone(&part),
                    registration: leader_and_isr(reg),
                    statuses: opened || cluster_changed,
                    log: previous
                        .is_some_and(|o| o.settings.log != settings.log)
                        .then(|| settings.log.clone()),
                    min_insync_replicas: previous
                        .is_some_and(|o| {
                            o.settings.min_insync_replicas != settings.min_insync_replicas
                        })
                        .then_some(settings.min_insync_replicas),
                    flush: previous
                        .is_some_and(|o| o.settings.flush != settings.flush)
                        .then_some(settings.flush),
                });
                partitions.insert(number, part);
            }
            let replication_factor = t
                .partition(0)
                .map_or(0, |p| i16::try_from(p.replicas.len()).unwrap_or(i16::MAX));
            topics.insert(
                t.name.clone(),
                Arc::new(Topic {
                    name: t.name.clone(),
                    id: t.id,
                    partition_count: i32::try_from(t.partition_count()).unwrap_or(i32::MAX),
                    replication_factor,
                    configs: configs.clone(),
                    settings: settings.clone(),
                    partitions,
                }),
            );
        }
        gregor_storage::parallel::run(updates, threads, |u| {
            let _runtime = in_runtime();
            if let Err(e) = u.part.apply_registration(&u.registration) {
                error!(partition = %tp_name(&u.part.tp), error = %e, "cannot apply the partition's registration");
            }
            if u.statuses {
                u.part.set_broker_statuses(&statuses);
            }
            if let Some(log) = u.log {
                u.part.set_log_config(log);
            }
            if let Some(min) = u.min_insync_replicas {
                u.part.set_min_insync_replicas(min);
            }
            if let Some(flush) = u.flush {
                u.part.set_flush_policy(flush);
            }
        });
        if created > 0 {
            self.logs.sync_data_dir()?;
        }
        {
            let mut was = lock_unopened(&self.unopened);
            if *was != unopened {
                for &(topic_id, partition) in unopened.difference(&was) {
                    let topic = image.topics().topic(topic_id).map(|t| t.name.as_str());
                    warn!(
                        topic = topic.unwrap_or("?"),
                        partition,
                        "the replica's log directory is offline here: not opened (its partition is \
                         led by another replica, or waits for the directory)"
                    );
                }
                *was = unopened;
            }
        }
        {
            let mut state = self.state.write().unwrap_or_else(|p| p.into_inner());
            state.image = Arc::clone(&image);
            state.topics = topics;
            state.effective = effective;
        }
        self.applied.send_replace(image);
        let elapsed = started.elapsed();
        if elapsed >= SLOW_APPLY {
            warn!(
                created,
                elapsed_ms = elapsed.as_millis() as u64,
                "slow metadata image application"
            );
        } else if created > 0 {
            info!(created, "created partitions");
        }
        match failure {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Opens (or creates) the log of a replica of topic `topic_id`. A log on disk that records
    /// another topic id belongs to an earlier topic of that name (deleted and created again
    /// while this broker was away): it is set aside as a stray log, kept, and the replica
    /// starts on a new one, as Kafka (KIP-516) does. A log that records none (from before
    /// gregor recorded them) is taken, and records this id from now on.
    fn open_partition(
        &self,
        tp: TopicPartition,
        topic_id: uuid::Uuid,
        settings: &TopicSettings,
    ) -> Result<Partition, StorageError> {
        let id = gregor_protocol::kafka_uuid::to_text(topic_id);
        let recorded = self.logs.recorded_topic_id(&tp)?;
        if let Some(other) = recorded.as_ref().filter(|r| **r != id) {
            let aside = self.logs.set_aside(&tp)?;
            warn!(
                partition = %tp_name(&tp),
                topic_id = %id,
                found = %other,
                moved_to = ?aside,
                "the log on disk belongs to an earlier topic of this name: moved aside as a stray log, kept; the replica starts on a new log"
            );
        }
        let log = self
            .logs
            .get_or_create_unsynced(&tp, settings.log.clone())?;
        if recorded.as_ref() != Some(&id) {
            self.logs.record_topic_id(&tp, &id)?;
        }
        let replication = replication_config(&self.config, settings);
        let checkpointed = self.logs.high_watermark(&tp);
        let part = Partition::open_replica(
            tp.clone(),
            log,
            self.config.node_id,
            replication,
            Arc::clone(&self.clock),
            Arc::clone(&self.alter_partition_wanted),
            checkpointed,
        )
        .map_err(|c| StorageError::Io {
            path: tp_name(&tp),
            source: std::io::Error::other(format!("cannot open the partition: {c}")),
        })?;
        part.set_flush_policy(settings.flush);
        Ok(part)
    }

    /// Moves aside the logs on disk that the applied image does not give this broker (a
    /// topic deleted, or a replica moved away, while it was down; or a metadata log that is
    /// not this node's any more): each is renamed `<topic>-<partition>.<hex>-stray` and kept,
    /// as Kafka keeps its stray logs, for the operator to remove or recover. Kafka's own format
    /// output (`__cluster_metadata-0`, read at start) is removed. Call once the image has
    /// caught up with the metadata log, never before: an image behind the log would take live
    /// logs out of service.
    pub fn set_aside_stray_logs(&self) -> Result<usize, StorageError> {
        let hosted: std::collections::HashSet<(String, i32)> = self
            .partitions()
            .iter()
            .map(|p| (p.tp.topic.clone(), p.tp.partition))
            .collect();
        let mut strays = 0;
        for tp in self.logs.existing_partitions()? {
            if hosted.contains(&(tp.topic.clone(), tp.partition)) {
                continue;
            }
            if tp.topic == "__cluster_metadata" {
                // Kafka's `kafka-storage format` output (crate::kafka_format), read at start.
                info!(partition = %tp_name(&tp), "removing Kafka's bootstrap checkpoint directory, read at start");
                self.logs.delete(&tp)?;
                continue;
            }
            if let Some(aside) = self.logs.set_aside(&tp)? {
                warn!(
                    partition = %tp_name(&tp),
                    moved_to = %aside.display(),
                    "the metadata does not give this broker a log it holds: moved aside as a stray log, kept"
                );
                strays += 1;
            }
        }
        Ok(strays)
    }

    /// Test and bench support: replays `records` onto the applied image and applies the
    /// result, bypassing the metadata quorum (panics on records that do not replay).
    #[doc(hidden)]
    pub fn apply_records(&self, records: &[gregor_metadata::MetadataRecord]) {
        let base = self.image();
        let offset = base.provenance().offset + 1;
        let mut delta = gregor_metadata::MetadataDelta::new(base);
        for r in records {
            delta.replay(r).expect("test records replay");
        }
        let image = delta.apply(gregor_metadata::MetadataProvenance { offset, epoch: 1 });
        self.apply_image(Arc::new(image)).expect("apply");
    }

    /// Test and bench support (no metadata log): the id for a new topic `name`, the one its
    /// first partition's log on disk records if there is one (a broker reopened on its
    /// directory, whose metadata log would give the topic its id back), else a new one.
    #[doc(hidden)]
    pub fn test_topic_id(&self, name: &str) -> uuid::Uuid {
        let tp = TopicPartition {
            topic: name.to_string(),
            partition: 0,
        };
        self.logs
            .recorded_topic_id(&tp)
            .ok()
            .flatten()
            .and_then(|text| gregor_protocol::kafka_uuid::parse(&text))
            .unwrap_or_else(uuid::Uuid::new_v4)
    }

    /// Test and bench support (bypasses the controller): a topic whose partitions this broker leads, with replicas
    /// `[node, node + 1, ...]` (`replication_factor` of them, all in the ISR; the others are
    /// fake followers a test drives by hand), in leader epoch 0.
    #[doc(hidden)]
    pub fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        replication_factor: i16,
        configs: BTreeMap<String, String>,
    ) -> Result<Arc<Topic>, ErrorCode> {
        use gregor_metadata::{
            ConfigRecord, ConfigResource, MetadataRecord, PartitionRecord, TopicRecord,
        };
        if self.topic(name).is_some() {
            return Err(ErrorCode::TOPIC_ALREADY_EXISTS);
        }
        let node = self.config.node_id;
        let id = self.test_topic_id(name);
        let replicas: Vec<i32> = (0..i32::from(replication_factor))
            .map(|i| node + i)
            .collect();
        let mut records = vec![MetadataRecord::Topic(TopicRecord {
            name: name.to_string(),
            topic_id: id,
        })];
        for p in 0..partitions {
            records.push(MetadataRecord::Partition(PartitionRecord {
                directories: Vec::new(),
                topic_id: id,
                partition_id: p,
                replicas: replicas.clone(),
                isr: replicas.clone(),
                leader: node,
                leader_epoch: 0,
                partition_epoch: 0,
                adding_replicas: Vec::new(),
                removing_replicas: Vec::new(),
                eligible_leader_replicas: vec![],
                last_known_elr: vec![],
            }));
        }
        for (k, v) in configs {
            records.push(MetadataRecord::Config(ConfigRecord {
                resource: ConfigResource::Topic(name.to_string()),
                name: k,
                value: Some(v),
            }));
        }
        self.apply_records(&records);
        self.topic(name).ok_or(ErrorCode::UNKNOWN_SERVER_ERROR)
    }

    /// The log cleaner's candidates: every hosted partition of a compacted topic with closed
    /// segments it may clean now, with what it knows of them.
    pub fn cleaner_candidates(&self) -> Vec<crate::log_cleaner::CleanCandidate> {
        let now = self.clock.now_ms();
        self.partitions()
            .into_iter()
            .filter_map(|p| {
                let checkpoint = self.logs.cleaner_checkpoint(&p.tp);
                let (to_clean, min_ratio, max_lag_ms) = p.cleanable(checkpoint, now)?;
                Some(crate::log_cleaner::CleanCandidate {
                    partition: p,
                    to_clean,
                    min_cleanable_ratio: min_ratio,
                    max_compaction_lag_ms: max_lag_ms,
                })
            })
            .collect()
    }

    /// After a clean: the partition is clean below `offset` (`cleaner-offset-checkpoint`).
    pub fn update_cleaner_checkpoint(&self, tp: &TopicPartition, offset: i64) {
        if let Err(e) = self.logs.update_cleaner_checkpoint(tp, offset) {
            error!(partition = %tp_name(tp), error = %e, "cannot write the cleaner checkpoint");
        }
    }

    /// Periodic work: retention.
    pub fn apply_retention(&self) {
        match self.logs.apply_retention(self.clock.now_ms()) {
            Ok(0) => return,
            Ok(n) => info!(segments = n, "retention deleted segments"),
            Err(e) => error!(error = %e, "retention failed"),
        }
        // Log start offsets may have moved: the replication cores check follower fetches
        // against them.
        for p in self.partitions() {
            let _ = p.sync_log_start_offset();
        }
    }

    /// Periodic work (`producer.id.expiration.check.interval.ms`): every partition forgets the
    /// idempotent producers idle for `producer.id.expiration.ms`.
    pub fn remove_expired_producers(&self) {
        let now = self.clock.now_ms();
        // A dynamic config, as in Kafka.
        let expiration_ms = self.effective_config().producer_id_expiration_ms;
        let removed: usize = self
            .partitions()
            .iter()
            .map(|p| p.remove_expired_producers(now, expiration_ms))
            .sum();
        if removed > 0 {
            info!(producers = removed, "expired idle producer ids");
        }
    }

    /// Periodic work: every partition's replication tick (ISR shrink of lagging followers,
    /// AlterPartition retries; on a single node there is nothing to do). Proposals wait in each
    /// partition's pending AlterPartition queue.
    pub fn tick_replication(&self) {
        for p in self.partitions() {
            p.tick();
        }
    }

    /// Waits until a partition queues an AlterPartition (a permit is stored when nobody
    /// waits, so a proposal queued between two drains is not missed).
    pub async fn alter_partition_wanted(&self) {
        self.alter_partition_wanted.notified().await;
    }

    /// Takes every AlterPartition the partitions proposed, oldest first per partition (the
    /// AlterPartition sender, alter_partition.rs).
    pub fn take_pending_alter_partition(&self) -> Vec<(TopicPartition, AlterPartitionRequest)> {
        let mut out = Vec::new();
        for p in self.partitions() {
            out.extend(
                p.take_pending_alter_partition()
                    .into_iter()
                    .map(|r| (p.tp.clone(), r)),
            );
        }
        out
    }

    /// Periodic work: recovery-point checkpoints, then the log directories whose storage
    /// failed (an fsync since the last tick, or one of these checkpoint writes) go offline.
    pub fn checkpoint(&self) {
        if let Err(e) = self.logs.checkpoint() {
            error!(error = %e, "checkpoint failed");
        }
        self.checkpoint_high_watermarks();
        self.take_failed_dirs_offline();
    }

    /// A partition whose fsync failed takes its whole log directory offline (Kafka's
    /// `LogDirFailureChannel`): every partition in it answers KAFKA_STORAGE_ERROR from now on,
    /// instead of each failing on its own next fsync, and the directory is left alone (no
    /// checkpoints, no new partitions, no moves) until the broker restarts. The other
    /// directories go on.
    pub fn take_failed_dirs_offline(&self) {
        let partitions = self.partitions();
        let mut offline: Vec<(std::path::PathBuf, Vec<TopicPartition>, String)> = Vec::new();
        for p in partitions.iter().filter(|p| p.is_offline()) {
            if let Some((dir, held)) = self.logs.mark_dir_offline(&p.tp) {
                offline.push((dir, held, format!("an fsync of {} failed", tp_name(&p.tp))));
            }
        }
        // A checkpoint write that failed there.
        for (dir, held) in self.logs.take_newly_offline() {
            offline.push((dir, held, "a checkpoint write failed".to_string()));
        }
        for (dir, held, cause) in offline {
            error!(
                dir = %dir.display(),
                cause,
                partitions = held.len(),
                "log directory offline after a storage failure: its partitions answer \
                 KAFKA_STORAGE_ERROR until the broker restarts"
            );
            for q in partitions.iter().filter(|q| held.contains(&q.tp)) {
                q.fail_storage();
            }
            self.dir_failed.send_replace(true);
        }
    }

    /// Turns true once a log directory went offline.
    pub fn watch_dir_failure(&self) -> watch::Receiver<bool> {
        self.dir_failed.subscribe()
    }

    /// Whether another broker is registered: one that could lead what this one cannot.
    pub fn other_brokers_registered(&self) -> bool {
        let me = self.config.node_id;
        self.image().cluster().brokers().any(|b| b.id != me)
    }

    /// The replicas hosted in offline log directories, by topic id and partition: what the
    /// broker's heartbeats report, so that the controller leads them elsewhere.
    pub fn offline_replicas(&self) -> Vec<(uuid::Uuid, i32)> {
        let state = self.read_state();
        let mut out: Vec<(uuid::Uuid, i32)> = state
            .topics
            .values()
            .flat_map(|t| {
                t.partitions
                    .iter()
                    .filter(|(_, p)| p.is_offline())
                    .map(|(&number, _)| (t.id, number))
            })
            .collect();
        out.extend(lock_unopened(&self.unopened).iter().copied());
        out.sort();
        out.dedup();
        out
    }

    /// KIP-1066: whether every online log directory is cordoned (`cordoned.log.dirs` as the
    /// last applied image has it), so that the controller places no new replica here.
    pub fn all_dirs_cordoned(&self) -> bool {
        let offline = self.logs.offline_dirs();
        let cordoned = self.logs.cordoned_dirs();
        let online: Vec<_> = self
            .logs
            .dirs()
            .into_iter()
            .filter(|d| !offline.contains(d))
            .collect();
        !online.is_empty() && online.iter().all(|d| cordoned.contains(d))
    }

    /// Whether the failed log directories leave this broker unable to go on: the first one
    /// holds the metadata log and is offline, or all of them are (Kafka's broker halts then
    /// too). A `metadata.log.dir` of its own is not among them: the metadata log's own
    /// failure stops the node.
    pub fn failed_dirs_are_fatal(&self) -> bool {
        let dirs = self.logs.dirs();
        let offline = self.logs.offline_dirs();
        let metadata_dir_offline =
            !self.config.metadata_dir_only && dirs.first().is_some_and(|d| offline.contains(d));
        metadata_dir_offline || offline.len() >= dirs.len()
    }

    /// The log directories a storage failure took offline.
    pub fn offline_log_dirs(&self) -> Vec<std::path::PathBuf> {
        self.logs.offline_dirs()
    }

    /// The cordoned log directories (`cordoned.log.dirs`).
    pub fn cordoned_log_dirs(&self) -> Vec<std::path::PathBuf> {
        self.logs.cordoned_dirs()
    }

    /// Writes every hosted partition's high watermark to `replication-offset-checkpoint`, so a
    /// restarted replica does not start above what the ISR had (as a new leader it would
    /// otherwise serve records the other replicas may not have).
    fn checkpoint_high_watermarks(&self) {
        let hws: HashMap<TopicPartition, i64> = self
            .partitions()
            .iter()
            .map(|p| (p.tp.clone(), p.high_watermark()))
            .collect();
        if let Err(e) = self.logs.checkpoint_high_watermarks(&hws) {
            error!(error = %e, "high-watermark checkpoint failed");
        }
    }

    /// Kafka's log flusher, for the partitions under an interval flush policy (their topic's
    /// `flush.messages` / `flush.ms`, or the broker's): flushes each whose unflushed records
    /// reached `flush.messages`, or whose last flush is `flush.ms` old. Produces flush at the
    /// count themselves; this catches followers' appends and the time.
    pub fn flush_by_policy(&self) {
        let now = self.clock.now_ms();
        let state = self.read_state();
        let interval = state
            .topics
            .values()
            .filter(|t| t.settings.flush != FlushPolicy::OnAcksAll);
        for p in interval.flat_map(|t| t.partitions.values()) {
            if p.flush_due(now) {
                p.start_flush();
            }
        }
    }

    /// The broker epoch the previous clean shutdown left (KIP-966's `previousBrokerEpoch`).
    pub fn previous_broker_epoch(&self) -> Option<i64> {
        self.logs.previous_broker_epoch()
    }

    /// The broker epoch the clean-shutdown marker is to carry.
    pub fn set_broker_epoch(&self, epoch: Option<i64>) {
        self.logs.set_broker_epoch(epoch);
    }

    /// Clean shutdown: flush everything and leave the clean-shutdown marker.
    pub fn shutdown(&self) -> Result<(), StorageError> {
        self.checkpoint_high_watermarks();
        let threads = self.effective_config().num_recovery_threads_per_data_dir;
        self.logs.shutdown_with(threads)
    }
}

/// One hosted replica's part of an image: its registration, and the settings that changed.
struct ReplicaUpdate {
    part: Arc<Partition>,
    registration: LeaderAndIsr,
    /// The brokers' statuses are told (a new replica, or the cluster changed).
    statuses: bool,
    log: Option<gregor_storage::LogConfig>,
    min_insync_replicas: Option<i32>,
    flush: Option<FlushPolicy>,
}

/// What `image` says about every broker (and `None` for brokers `old` had and `image` has
/// not), as the replication cores take it.
fn broker_statuses(
    old: &MetadataImage,
    image: &MetadataImage,
) -> Vec<(i32, Option<gregor_replication::BrokerStatus>)> {
    let mut out: Vec<_> = image
        .cluster()
        .brokers()
        .map(|b| {
            (
                b.id,
                Some(gregor_replication::BrokerStatus {
                    broker_epoch: b.epoch,
                    fenced: b.fenced,
                    in_controlled_shutdown: false,
                }),
            )
        })
        .collect();
    out.extend(
        old.cluster()
            .brokers()
            .filter(|b| image.cluster().broker(b.id).is_none())
            .map(|b| (b.id, None)),
    );
    out
}

/// The replication core's settings for a topic's partitions.
fn replication_config(config: &BrokerConfig, settings: &TopicSettings) -> ReplicationConfig {
    ReplicationConfig {
        replica_lag_time_max_ms: config.cluster.replica_lag_time_max_ms,
        min_insync_replicas: usize::try_from(settings.min_insync_replicas)
            .unwrap_or(1)
            .max(1),
        ..ReplicationConfig::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gregor_protocol::batch::encode_simple_batch;

    /// A replica manager on a temp dir with one single-partition topic `t`.
    fn one_partition() -> (tempfile::TempDir, ReplicaManager, Arc<Topic>) {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = Arc::new(BrokerConfig {
            data_dir: dir.path().to_path_buf(),
            ..Default::default()
        });
        let rm = ReplicaManager::open(config, Arc::new(crate::clock::SystemClock)).expect("open");
        let topic = rm.create_topic("t", 1, 1, BTreeMap::new()).expect("create");
        (dir, rm, topic)
    }

    #[test]
    fn min_insync_replicas_changes_without_a_restart() {
        use gregor_metadata::controller::alter_broker_config;
        use gregor_metadata::{MetadataRecord, PartitionChangeRecord};
        let dir = tempfile::tempdir().expect("tempdir");
        let config = Arc::new(BrokerConfig {
            data_dir: dir.path().to_path_buf(),
            ..Default::default()
        });
        let rm = ReplicaManager::open(config, Arc::new(crate::clock::SystemClock)).expect("open");
        let topic = rm.create_topic("t", 1, 2, BTreeMap::new()).expect("create");
        // The follower (broker 2) leaves the ISR.
        rm.apply_records(&[MetadataRecord::PartitionChange(PartitionChangeRecord {
            directories: None,
            topic_id: topic.id,
            partition_id: 0,
            leader: None,
            isr: Some(vec![1]),
            replicas: None,
            adding_replicas: None,
            removing_replicas: None,
            eligible_leader_replicas: None,
            last_known_elr: None,
        })]);
        let batch = encode_simple_batch(1, &[(None, Some(&b"v"[..]))]);
        let append = |rm: &ReplicaManager| {
            let topic = rm.topic("t").expect("topic");
            topic.partitions[&0]
                .append_to_leader(&batch, &topic.settings, -1)
                .map(|_| ())
        };
        append(&rm).expect("min.insync.replicas 1");
        // A cluster-wide dynamic min.insync.replicas of 2 applies to the open partition.
        rm.apply_records(&[
            alter_broker_config("", "min.insync.replicas", Some("2")).expect("valid")
        ]);
        assert_eq!(rm.effective_config().min_insync_replicas, 2);
        assert_eq!(append(&rm), Err(ErrorCode::NOT_ENOUGH_REPLICAS));
        // The topic's own override wins over it.
        rm.apply_records(&[MetadataRecord::Config(gregor_metadata::ConfigRecord {
            resource: gregor_metadata::ConfigResource::Topic("t".into()),
            name: "min.insync.replicas".into(),
            value: Some("1".into()),
        })]);
        append(&rm).expect("the topic's override");
        rm.apply_records(&[MetadataRecord::Config(gregor_metadata::ConfigRecord {
            resource: gregor_metadata::ConfigResource::Topic("t".into()),
            name: "min.insync.replicas".into(),
            value: None,
        })]);
        assert_eq!(append(&rm), Err(ErrorCode::NOT_ENOUGH_REPLICAS));
        rm.apply_records(&[alter_broker_config("", "min.insync.replicas", None).expect("valid")]);
        append(&rm).expect("back to the static default");
    }

    /// A topic's `flush.messages` / `flush.ms` over the broker's dynamic
    /// `log.flush.interval.*`, applied to the open partition without a restart; set at neither
    /// level, gregor's default. Under `flush.ms` the log flusher flushes what waited that long.
    #[tokio::test]
    async fn the_flush_policy_follows_the_topic_and_the_dynamic_broker_default() {
        use gregor_metadata::controller::alter_broker_config;
        use gregor_metadata::MetadataRecord;
        let (_dir, rm, _topic) = one_partition();
        let topic_config = |name: &str, value: Option<&str>| {
            MetadataRecord::Config(gregor_metadata::ConfigRecord {
                resource: gregor_metadata::ConfigResource::Topic("t".into()),
                name: name.into(),
                value: value.map(str::to_string),
            })
        };
        let policy = |rm: &ReplicaManager| {
            let topic = rm.topic("t").expect("topic");
            assert_eq!(topic.partitions[&0].flush_policy(), topic.settings.flush);
            topic.settings.flush
        };
        let interval = |messages, interval_ms| FlushPolicy::Interval {
            messages,
            interval_ms,
        };
        assert_eq!(policy(&rm), FlushPolicy::OnAcksAll);
        rm.apply_records(&[topic_config("flush.messages", Some("2"))]);
        assert_eq!(policy(&rm), interval(2, i64::MAX));
        rm.apply_records(&[
            alter_broker_config("", "log.flush.interval.ms", Some("60000")).expect("valid"),
        ]);
        assert_eq!(policy(&rm), interval(2, 60_000));
        rm.apply_records(&[topic_config("flush.messages", None)]);
        assert_eq!(policy(&rm), interval(i64::MAX, 60_000));
        rm.apply_records(&[topic_config("flush.ms", Some("0"))]);
        assert_eq!(policy(&rm), interval(i64::MAX, 0));
        // flush.ms=0: the log flusher takes whatever is unflushed.
        let topic = rm.topic("t").expect("topic");
        let part = Arc::clone(&topic.partitions[&0]);
        let batch = encode_simple_batch(1, &[(None, Some(&b"v"[..]))]);
        part.append(&batch, &topic.settings).expect("append");
        assert_eq!(part.durable_offset(), 0);
        rm.flush_by_policy();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while part.durable_offset() < 1 {
            assert!(std::time::Instant::now() < deadline, "not flushed");
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
        rm.apply_records(&[topic_config("flush.ms", None)]);
        rm.apply_records(&[alter_broker_config("", "log.flush.interval.ms", None).expect("valid")]);
        assert_eq!(policy(&rm), FlushPolicy::OnAcksAll);
        // Under gregor's default the flusher leaves logs alone.
        part.append(&batch, &topic.settings).expect("append");
        rm.flush_by_policy();
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert_eq!(part.durable_offset(), 1);
    }

    #[test]
    fn appends_are_listed_by_timestamp_and_max_timestamp() {
        let (_dir, _rm, topic) = one_partition();
        let part = &topic.partitions[&0];
        for ts in [10, 30, 20] {
            let batch = encode_simple_batch(ts, &[(None, Some(&b"v"[..]))]);
            part.append(&batch, &topic.settings).expect("append");
        }
        assert_eq!(part.offsets().expect("offsets"), (0, 3));
        assert_eq!(part.max_timestamp().expect("max"), Some((1, 30)));
        assert_eq!(part.offset_for_timestamp(15).expect("ts"), Some((1, 30)));
        assert_eq!(part.offset_for_timestamp(31).expect("ts"), None);
        // A corrupt batch is refused with CORRUPT_MESSAGE and leaves the log as it was.
        let mut bad = encode_simple_batch(40, &[(None, Some(&b"v"[..]))]);
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert_eq!(
            part.append(&bad, &topic.settings),
            Err(ErrorCode::CORRUPT_MESSAGE)
        );
        assert_eq!(part.offsets().expect("offsets"), (0, 3));
    }

    /// Concurrent acks=all producers on one partition (group commit): every wait ends with its
    /// records durable, and at the end the durable offset, the recovery point and the log end
    /// agree and no flush is left running.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_waits_share_flushes() {
        let (_dir, _rm, topic) = one_partition();
        let part = Arc::clone(&topic.partitions[&0]);
        let settings = Arc::new(topic.settings.clone());
        let (producers, batches) = (8, 40);
        let mut tasks = Vec::new();
        for _ in 0..producers {
            let part = Arc::clone(&part);
            let settings = Arc::clone(&settings);
            tasks.push(tokio::spawn(async move {
                let value = vec![7u8; 4096];
                for _ in 0..batches {
                    let batch = encode_simple_batch(1, &[(None, Some(&value[..]))]);
                    let info = part.append(&batch, &settings).expect("append");
                    part.wait_durable(info.last_offset + 1)
                        .await
                        .expect("durable");
                    assert!(part.durable_offset() > info.last_offset);
                }
            }));
        }
        let all = async {
            for t in tasks {
                t.await.expect("producer");
            }
        };
        tokio::time::timeout(std::time::Duration::from_secs(60), all)
            .await
            .expect("every wait ends");
        let leo = i64::from(producers * batches);
        assert_eq!(part.offsets().expect("offsets"), (0, leo));
        assert_eq!(part.durable_offset(), leo);
        assert_eq!(part.recovery_point(), leo);
        assert!(!part.is_flushing());
    }
}

#[cfg(test)]
mod high_watermark_tests {
    use super::*;
    use gregor_metadata::{MetadataRecord, PartitionRecord, TopicRecord};
    use gregor_protocol::batch::encode_simple_batch;

    /// A replica reopened after a crash starts at the checkpointed high watermark, not at its
    /// log end: as a follower it does not claim records the ISR may not have.
    #[test]
    fn a_reopened_follower_starts_at_the_checkpointed_high_watermark() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = Arc::new(BrokerConfig {
            data_dir: dir.path().to_path_buf(),
            ..Default::default()
        });
        let batch = encode_simple_batch(1, &[(None, Some(&b"v"[..]))]);
        {
            let rm = ReplicaManager::open(Arc::clone(&config), Arc::new(crate::clock::SystemClock))
                .expect("open");
            let topic = rm.create_topic("t", 1, 1, BTreeMap::new()).expect("create");
            let part = &topic.partitions[&0];
            for _ in 0..3 {
                part.append(&batch, &topic.settings).expect("append");
            }
            rm.checkpoint();
            for _ in 0..2 {
                part.append(&batch, &topic.settings).expect("append");
            }
            assert_eq!(part.high_watermark(), 5);
            // Dropped without a shutdown: the checkpoint says 3.
        }
        let rm = ReplicaManager::open(config, Arc::new(crate::clock::SystemClock)).expect("open");
        let id = rm.test_topic_id("t");
        rm.apply_records(&[
            MetadataRecord::Topic(TopicRecord {
                name: "t".into(),
                topic_id: id,
            }),
            MetadataRecord::Partition(PartitionRecord {
                directories: Vec::new(),
                topic_id: id,
                partition_id: 0,
                replicas: vec![2, 1],
                isr: vec![2, 1],
                leader: 2,
                leader_epoch: 1,
                partition_epoch: 1,
                adding_replicas: Vec::new(),
                removing_replicas: Vec::new(),
                eligible_leader_replicas: vec![],
                last_known_elr: vec![],
            }),
        ]);
        let (_, part) = rm.partition("t", 0).expect("hosted");
        assert_eq!((part.high_watermark(), part.log_end_offset()), (3, 5));
    }
}

#[cfg(test)]
mod directory_tests {
    use super::*;
    use gregor_metadata::{MetadataRecord, PartitionRecord, ReplicaDirectory, TopicRecord};

    /// A broker with two log directories, `a` and `b` (a file in `b`'s place when `b_missing`),
    /// their ids set as the server sets them.
    fn two_dirs(b_missing: bool) -> (tempfile::TempDir, ReplicaManager, [uuid::Uuid; 2]) {
        let root = tempfile::tempdir().expect("tempdir");
        let (a, b) = (root.path().join("a"), root.path().join("b"));
        if b_missing {
            std::fs::write(&b, b"no directory").expect("file");
        }
        let config = Arc::new(BrokerConfig {
            data_dir: a,
            extra_log_dirs: vec![b],
            ..Default::default()
        });
        let rm = ReplicaManager::open(config, Arc::new(crate::clock::SystemClock)).expect("open");
        let ids = [uuid::Uuid::from_u128(0xa0), uuid::Uuid::from_u128(0xb0)];
        rm.set_dir_ids(vec![Some(ids[0]), (!b_missing).then_some(ids[1])]);
        (root, rm, ids)
    }

    /// Topic `name` with one partition on this broker (node 1), its replica assigned to `dir`.
    fn topic(rm: &ReplicaManager, name: &str, id: u128, dir: Option<uuid::Uuid>) {
        rm.apply_records(&topic_records(name, id, dir));
    }

    /// The records of [`topic`].
    fn topic_records(name: &str, id: u128, dir: Option<uuid::Uuid>) -> Vec<MetadataRecord> {
        let topic_id = uuid::Uuid::from_u128(id);
        vec![
            MetadataRecord::Topic(TopicRecord {
                name: name.into(),
                topic_id,
            }),
            MetadataRecord::Partition(PartitionRecord {
                directories: dir
                    .map(|directory| ReplicaDirectory {
                        broker: 1,
                        directory,
                    })
                    .into_iter()
                    .collect(),
                topic_id,
                partition_id: 0,
                replicas: vec![1],
                isr: vec![1],
                leader: 1,
                leader_epoch: 0,
                partition_epoch: 0,
                adding_replicas: Vec::new(),
                removing_replicas: Vec::new(),
                eligible_leader_replicas: vec![],
                last_known_elr: vec![],
            }),
        ]
    }

    /// A topic deleted and created again under the same name in one image: the new topic's
    /// partition starts on an empty log of its own, never on the old one's data.
    #[test]
    fn a_topic_recreated_within_one_image_starts_empty() {
        let (_root, rm, [a, _]) = two_dirs(false);
        topic(&rm, "t", 1, Some(a));
        let (t, part) = rm.partition("t", 0).expect("hosted");
        part.append(&crate::partition::tests::batch(3), &t.settings)
            .expect("append");
        let mut records = vec![MetadataRecord::RemoveTopic(
            gregor_metadata::RemoveTopicRecord {
                topic_id: uuid::Uuid::from_u128(1),
            },
        )];
        records.extend(topic_records("t", 2, Some(a)));
        rm.apply_records(&records);
        let (t, part) = rm.partition("t", 0).expect("recreated");
        assert_eq!(t.id, uuid::Uuid::from_u128(2));
        assert_eq!(part.log_end_offset(), 0, "the old topic's records are gone");
        let info = part
            .append(&crate::partition::tests::batch(2), &t.settings)
            .expect("the new topic takes records");
        assert_eq!(info.first_offset, 0);
        assert!(rm.log_dir_of("t", 0).is_some(), "on disk");
    }

    /// Across a restart: a log on disk that records another topic id (its topic deleted and
    /// created again while the broker was away) is set aside as a stray, kept, and the replica
    /// starts on a new log; a log that records none (from before topic ids were recorded) is
    /// taken, and records the id from then on.
    #[test]
    fn a_log_of_an_earlier_topic_of_the_name_is_set_aside_at_open() {
        let root = tempfile::tempdir().expect("tempdir");
        let a = root.path().join("a");
        let config = Arc::new(BrokerConfig {
            data_dir: a.clone(),
            ..Default::default()
        });
        let open = || {
            ReplicaManager::open(Arc::clone(&config), Arc::new(crate::clock::SystemClock))
                .expect("open")
        };
        let append = |rm: &ReplicaManager, name: &str, n: usize| {
            let (t, part) = rm.partition(name, 0).expect("hosted");
            part.append(&crate::partition::tests::batch(n), &t.settings)
                .expect("append");
        };
        let rm = open();
        topic(&rm, "t", 1, None);
        append(&rm, "t", 3);
        topic(&rm, "legacy", 3, None);
        append(&rm, "legacy", 2);
        let recorded =
            std::fs::read_to_string(a.join("t-0").join("partition.metadata")).expect("recorded");
        assert_eq!(recorded, "version: 0\ntopic_id: AAAAAAAAAAAAAAAAAAAAAQ\n");
        std::fs::remove_file(a.join("legacy-0").join("partition.metadata")).expect("remove");
        rm.shutdown().expect("shutdown");
        drop(rm);

        let rm = open();
        topic(&rm, "t", 2, None);
        topic(&rm, "legacy", 3, None);
        let (_, t) = rm.partition("t", 0).expect("hosted");
        assert_eq!(t.log_end_offset(), 0, "a new log for the new topic");
        let strays: Vec<String> = std::fs::read_dir(&a)
            .expect("read")
            .filter_map(|e| Some(e.ok()?.file_name().to_string_lossy().into_owned()))
            .filter(|n| n.starts_with("t-0.") && n.ends_with("-stray"))
            .collect();
        assert_eq!(strays.len(), 1, "the earlier topic's log kept: {strays:?}");
        assert!(
            std::fs::read_to_string(a.join(&strays[0]).join("partition.metadata"))
                .expect("kept")
                .contains("AAAAAAAAAAAAAAAAAAAAAQ")
        );
        assert!(
            std::fs::read_to_string(a.join("t-0").join("partition.metadata"))
                .expect("recorded")
                .contains("AAAAAAAAAAAAAAAAAAAAAg")
        );
        let (_, legacy) = rm.partition("legacy", 0).expect("hosted");
        assert_eq!(legacy.log_end_offset(), 2, "taken as it was");
        assert!(
            std::fs::read_to_string(a.join("legacy-0").join("partition.metadata"))
                .expect("recorded now")
                .contains("AAAAAAAAAAAAAAAAAAAAAw")
        );
        rm.shutdown().expect("shutdown");
    }

    #[test]
    fn replicas_go_where_the_metadata_assigns_them_and_the_rest_is_reported() {
        let (_root, rm, [a, b]) = two_dirs(false);
        assert_eq!(rm.online_dir_ids(), vec![a, b]);
        topic(&rm, "in-b", 1, Some(b));
        topic(&rm, "in-a", 2, Some(a));
        topic(&rm, "unassigned", 3, None);
        let dir = |t: &str| rm.log_dir_of(t, 0).expect("created");
        assert!(dir("in-b").ends_with("b") && dir("in-a").ends_with("a"));
        // The unassigned one is created, then waits for its assignment; the others need none.
        let pending = rm.pending_dir_assignments();
        assert_eq!(pending.len(), 1, "{pending:?}");
        assert_eq!(pending[0].0, uuid::Uuid::from_u128(3));
        // A replaced disk: a directory nobody here knows, while every directory is online.
        topic(&rm, "replaced", 4, Some(uuid::Uuid::from_u128(0xc0)));
        assert!(rm.log_dir_of("replaced", 0).is_some(), "created afresh");
        assert!(rm.offline_replicas().is_empty());
    }

    #[test]
    fn a_replica_in_a_missing_directory_is_not_created_elsewhere() {
        let (_root, rm, [a, b]) = two_dirs(true);
        assert_eq!(rm.online_dir_ids(), vec![a]);
        assert_eq!(rm.offline_log_dirs().len(), 1);
        topic(&rm, "in-b", 1, Some(b));
        topic(&rm, "unknown", 2, Some(uuid::Uuid::from_u128(0xc0)));
        topic(&rm, "in-a", 3, Some(a));
        topic(&rm, "unassigned", 4, None);
        assert_eq!(rm.log_dir_of("in-b", 0), None, "not created in a");
        assert_eq!(
            rm.log_dir_of("unknown", 0),
            None,
            "maybe in the missing one"
        );
        assert!(rm.log_dir_of("in-a", 0).is_some_and(|d| d.ends_with("a")));
        assert!(
            rm.log_dir_of("unassigned", 0).is_some(),
            "as Kafka: created"
        );
        let mut offline = rm.offline_replicas();
        offline.sort();
        assert_eq!(
            offline,
            vec![(uuid::Uuid::from_u128(1), 0), (uuid::Uuid::from_u128(2), 0)]
        );
        assert!(rm.partition("in-b", 0).is_none());
    }

    /// The first log directory holds the metadata log, and its failure stops the broker,
    /// unless `metadata.log.dir` is a directory of its own; every directory failed always does.
    #[test]
    fn a_failed_log_dir_is_fatal_where_it_holds_the_metadata_log() {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = |name: &str| root.path().join(name);
        for metadata_dir_only in [false, true] {
            let config = Arc::new(BrokerConfig {
                data_dir: dir(if metadata_dir_only { "meta" } else { "a" }),
                extra_log_dirs: if metadata_dir_only {
                    vec![dir("a"), dir("b")]
                } else {
                    vec![dir("b")]
                },
                metadata_dir_only,
                ..Default::default()
            });
            let rm =
                ReplicaManager::open(config, Arc::new(crate::clock::SystemClock)).expect("open");
            assert_eq!(rm.log_dirs().len(), 2);
            rm.logs.fail_dir_at(0);
            assert_eq!(
                rm.failed_dirs_are_fatal(),
                !metadata_dir_only,
                "a failed with metadata_dir_only={metadata_dir_only}"
            );
            rm.logs.fail_dir_at(1);
            assert!(rm.failed_dirs_are_fatal(), "both failed");
            drop(rm);
            std::fs::remove_dir_all(dir("a")).expect("rm a");
            std::fs::remove_dir_all(dir("b")).expect("rm b");
        }
    }
}
