//! The group coordinator's runtime: drives the I/O-free cores (`gregor-group`: the classic
//! protocol's `GroupCoordinator`, KIP-848's `ConsumerGroupCoordinator` and KIP-932's
//! `ShareGroupCoordinator`, the latter from `group_coordinator/share_groups.rs`) with the
//! clock, parks JoinGroup/SyncGroup replies until the core answers them, and writes what must
//! survive a restart to the internal compacted topic `__consumer_offsets`.
//!
//! ```text
//!  handler ─► core call (under a short lock) ─► Vec<Output>
//!                                                 ├─ Respond{id, resp} ─► oneshot to the parked reply
//!                                                 └─ Append{partition, records, then}
//!                                                        append to __consumer_offsets-<p> (in call order),
//!                                                        wait until fsynced, then answer `then`
//!  ConsumerGroupHeartbeat ─► consumer.heartbeat(request, image topics, now) (under its lock)
//!                                ─► append its records ─► wait until fsynced ─► answer
//!                                   (append failed: COORDINATOR_NOT_AVAILABLE, reload the partition)
//!  ShareGroupHeartbeat ─► share.heartbeat(...) ─► the same; then the persister initializes
//!                          the share-partitions it asks for (`share_groups`)
//!  ticker task: sleeps until the earliest of the cores' next deadlines (or a wake-up)
//!                                ─► core.tick(now) ─► outputs; consumer.tick(now),
//!                                   share.tick(now) ─► appends
//! ```
//! One group id names one group: a classic group with members refuses ConsumerGroupHeartbeat
//! (GROUP_ID_NOT_FOUND), a consumer group refuses classic JoinGroup. Where both cores are
//! locked, the classic one is locked first (then the consumer one, then the share one).
//! Committed offsets of both kinds of groups live in the classic core; the consumer core only
//! checks member epochs before a commit or fetch. Share groups have no committed offsets.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use gregor_group::consumer_group::{
    is_consumer_group_key, ConsumerGroupAppend, ConsumerGroupCoordinator,
    ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse, ConsumerGroupState, TopicId,
    TopicsView,
};
use gregor_group::{GroupCoordinator, LogEntry, Output, Record, RequestId, Response, TxnProducer};
use gregor_metadata::MetadataImage;
use gregor_protocol::error::ErrorCode;
use gregor_protocol::records::RecordBatchDecoder;
use gregor_storage::producer_state::{AppendOrigin, TxnVerification};
use tokio::sync::{oneshot, Notify};
use tracing::{debug, error, info};

use crate::clock::Clock;
use crate::partition::{FetchIsolation, Partition};
use crate::replica_manager::ReplicaManager;

mod high_watermarks;
mod share_groups;
mod streams_groups;
pub use share_groups::{
    share_groups_enabled, DescribedSharePartition, DescribedShareTopic, ShareOffsetsTopic,
    ShareTopicResult,
};
pub use streams_groups::streams_groups_enabled;

/// Name of the internal offsets topic.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// Whether the consumer group protocol (KIP-848) is enabled: this broker's
/// `group.coordinator.rebalance.protocols` lists `consumer` and the cluster's `group.version`
/// is at least 1 (Kafka's `KafkaApis.isConsumerGroupProtocolEnabled`); ConsumerGroupHeartbeat
/// and ConsumerGroupDescribe answer UNSUPPORTED_VERSION otherwise, and classic groups work
/// either way.
pub fn consumer_groups_enabled(replicas: &ReplicaManager) -> bool {
    replicas.config().consumer_protocol_enabled
        && replicas
            .image()
            .feature_level(gregor_metadata::GROUP_VERSION_FEATURE)
            .unwrap_or(0)
            >= 1
}

/// The CreateTopics entry for `__consumer_offsets`: `offsets.topic.num.partitions`, the
/// replication factor `offsets.topic.replication.factor` capped by the live brokers (`live`),
/// compacted, 100 MiB segments (Kafka's `offsets.topic.segment.bytes`).
pub fn offsets_topic(
    config: &crate::config::BrokerConfig,
    live: usize,
) -> gregor_controller::protocol::CreatableTopic {
    let live = i16::try_from(live.max(1)).unwrap_or(i16::MAX);
    gregor_controller::protocol::CreatableTopic {
        name: OFFSETS_TOPIC.to_string(),
        num_partitions: config.group.offsets_topic_num_partitions,
        replication_factor: config.cluster.offsets_topic_replication_factor.min(live),
        assignments: Vec::new(),
        configs: vec![
            ("cleanup.policy".to_string(), Some("compact".to_string())),
            ("segment.bytes".to_string(), Some("104857600".to_string())),
        ],
    }
}

/// Runtime state around the core.
#[derive(Debug)]
pub struct GroupRuntime {
    core: Mutex<GroupCoordinator>,
    /// The KIP-848 consumer groups (`group.protocol=consumer`); locked after `core` when a
    /// call needs both.
    consumer: Mutex<ConsumerGroupCoordinator>,
    /// The KIP-932 share groups; locked after `core` and `consumer` when a call needs more
    /// than one core.
    share: Mutex<gregor_group::share_group::ShareGroupCoordinator>,
    /// The KIP-1071 streams groups; locked after `core`, `consumer` and `share` when a call
    /// needs more than one core.
    streams: Mutex<gregor_group::streams_group::StreamsGroupCoordinator>,
    /// The internal topics of streams groups being created (`streams_groups`).
    streams_creations: streams_groups::TopicCreations,
    /// The share coordinators' client the share groups' state goes through: the broker's
    /// (set by the first share call), or one a test installed first.
    share_persister: share_groups::PersisterSlot,
    waiters: Mutex<HashMap<RequestId, oneshot::Sender<Response>>>,
    /// Time for member sessions, rebalance delays and offset expiry.
    clock: Arc<dyn Clock>,
    next_id: AtomicU64,
    /// Wakes the ticker when a call may have moved the next deadline earlier.
    wake: Notify,
    /// The `__consumer_offsets` partitions this broker leads and has loaded: it coordinates
    /// exactly their groups (Kafka's coordinator moves with the partition's leadership).
    owned: Mutex<BTreeSet<i32>>,
    /// Partitions being loaded (their groups' requests get COORDINATOR_LOAD_IN_PROGRESS), with
    /// the transaction completions reported meanwhile: applied once the load is installed
    /// (one whose marker the load already read finds nothing left to decide).
    loading: Mutex<BTreeMap<i32, Vec<(i64, bool)>>>,
    /// The topics (id → name) of the image the last [`sync_leadership`](Self::sync_leadership)
    /// saw: a topic id missing from the next image was deleted, and its committed offsets go.
    known_topics: Mutex<BTreeMap<uuid::Uuid, String>>,
}

/// How long a group's records wait for the ISR of their `__consumer_offsets` partition.
const APPEND_TIMEOUT: Duration = Duration::from_secs(5);

impl GroupRuntime {
    /// A coordinator that owns nothing yet; [`GroupRuntime::sync_leadership`] loads the
    /// partitions this broker leads.
    pub fn open(replicas: &ReplicaManager) -> anyhow::Result<GroupRuntime> {
        let clock = Arc::clone(replicas.clock());
        let mut config = replicas.config().group.clone();
        config.member_id_seed = clock.now_ms() as u64 ^ u64::from(std::process::id()) << 40;
        let mut consumer = replicas.config().consumer_group.clone();
        consumer.offsets_topic_num_partitions = config.offsets_topic_num_partitions;
        consumer.member_id_seed = !config.member_id_seed;
        consumer.classic_max_size = config.max_size;
        let share = gregor_group::share_group::ShareGroupConfig {
            offsets_topic_num_partitions: config.offsets_topic_num_partitions,
            ..Default::default()
        };
        let streams = gregor_group::streams_group::StreamsGroupConfig {
            offsets_topic_num_partitions: config.offsets_topic_num_partitions,
            ..replicas.config().streams_group.clone()
        };
        let runtime = GroupRuntime {
            core: Mutex::new(GroupCoordinator::new(config)),
            consumer: Mutex::new(ConsumerGroupCoordinator::new(consumer)),
            share: Mutex::new(gregor_group::share_group::ShareGroupCoordinator::new(share)),
            share_persister: Default::default(),
            streams: Mutex::new(gregor_group::streams_group::StreamsGroupCoordinator::new(
                streams,
            )),
            streams_creations: Default::default(),
            waiters: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            wake: Notify::new(),
            clock,
            owned: Mutex::new(BTreeSet::new()),
            loading: Mutex::new(BTreeMap::new()),
            known_topics: Mutex::new(topic_names(&replicas.image())),
        };
        runtime.follow_leadership(replicas)?;
        Ok(runtime)
    }

    /// Follows an applied metadata image (call after each one; blocking, it reads the
    /// partitions it loads): loads and unloads groups as the leadership of `__consumer_offsets`
    /// partitions moves ([`follow_leadership`](Self::follow_leadership)), then deletes the
    /// committed offsets of the topics deleted since the last call in every group this broker
    /// coordinates ([`delete_offsets_of_deleted_topics`](Self::delete_offsets_of_deleted_topics)).
    pub fn sync_leadership(self: &Arc<Self>, replicas: &Arc<ReplicaManager>) -> anyhow::Result<()> {
        let followed = self.follow_leadership(replicas);
        self.delete_offsets_of_deleted_topics(replicas);
        followed
    }

    /// Kafka's `GroupCoordinatorService.onMetadataUpdate` for deleted topics: every topic id
    /// of the last image seen that the current image lacks was deleted, and each loaded
    /// coordinator partition writes tombstones for the committed and pending offsets of those
    /// topics (`onTopicsDeleted`), so they stay deleted after a restart and on the next
    /// coordinator. A recreated topic (same name, new id) starts without offsets, so its
    /// consumers start from their reset policy. Partitions loaded by the same call are
    /// covered too (their previous coordinator may have stopped before writing them).
    fn delete_offsets_of_deleted_topics(self: &Arc<Self>, replicas: &Arc<ReplicaManager>) {
        let current = topic_names(&replicas.image());
        let before = std::mem::replace(
            &mut *self.known_topics.lock().unwrap_or_else(|p| p.into_inner()),
            current.clone(),
        );
        let gone: BTreeMap<uuid::Uuid, String> = before
            .into_iter()
            .filter(|(id, _)| !current.contains_key(id))
            .collect();
        if gone.is_empty() {
            return;
        }
        // Share groups forget the deleted topics' share-partitions (Kafka's
        // `maybeCleanupShareGroupState`).
        self.forget_deleted_topics_in_share_groups(replicas, gone.keys().copied().collect());
        let deleted: BTreeSet<String> = gone.into_values().collect();
        let started = std::time::Instant::now();
        self.run(replicas, |core| {
            let outputs = core.on_topics_deleted(&deleted);
            let tombstones: usize = outputs
                .iter()
                .map(|o| match o {
                    Output::Append { records, .. } => records.len(),
                    Output::Respond { .. } => 0,
                })
                .sum();
            info!(
                tombstones,
                topics = ?deleted,
                elapsed_us = started.elapsed().as_micros() as u64,
                "deleted the committed offsets of deleted topics"
            );
            outputs
        });
    }

    /// Loads the groups of every `__consumer_offsets` partition this broker now leads and
    /// drops those of the partitions it no longer leads (parked requests of dropped groups are
    /// answered NOT_COORDINATOR). Blocking (reads the partitions). A partition that cannot be
    /// read stays unowned (its groups' requests get NOT_COORDINATOR) and is tried again at the
    /// next call.
    fn follow_leadership(&self, replicas: &ReplicaManager) -> anyhow::Result<()> {
        let led: BTreeSet<i32> = replicas
            .topic(OFFSETS_TOPIC)
            .map(|t| {
                t.partitions
                    .iter()
                    .filter(|(_, p)| p.is_leader())
                    .map(|(n, _)| *n)
                    .collect()
            })
            .unwrap_or_default();
        let owned = self.owned.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let mut failed = None;
        for &p in led.difference(&owned) {
            let Some((_, part)) = replicas.partition(OFFSETS_TOPIC, p) else {
                continue;
            };
            self.lock_loading().entry(p).or_default();
            let read = read_all(&part);
            // Install, apply the completions reported during the read and take ownership
            // under the core lock, so no completion falls between them.
            let mut core = self.core();
            let deferred = self.lock_loading().remove(&p).unwrap_or_default();
            match read {
                Ok(entries) => {
                    let n = entries.len();
                    let split = split_entries(entries);
                    let now = self.clock.now_ms();
                    let mut consumer = self.consumer();
                    let mut share = self.share();
                    let mut streams = self.streams();
                    let settings = |g: &str| share_groups::settings(replicas, g);
                    let loaded = consumer.load_partition(p, split.consumer, now).and_then(
                        |consumer_groups| {
                            let shares = share.load_partition(p, split.share, now, &settings);
                            let summary = shares.and_then(|share_groups| {
                                let streams_groups =
                                    streams.load_partition(p, split.streams, now)?;
                                core.load_partition_entries(p, split.classic, now)
                                    .map(|s| (s, share_groups, streams_groups))
                            });
                            if summary.is_err() {
                                consumer.unload_partition(p);
                                share.unload_partition(p);
                                streams.unload_partition(p);
                            }
                            summary.map(|(s, share_groups, streams_groups)| {
                                (s, consumer_groups, share_groups, streams_groups)
                            })
                        },
                    );
                    drop(streams);
                    drop(share);
                    drop(consumer);
                    match loaded {
                        Ok((summary, consumer_groups, share_groups, streams_groups)) => {
                            for (producer_id, committed) in deferred {
                                core.complete_txn_offsets(p, producer_id, committed);
                            }
                            self.owned
                                .lock()
                                .unwrap_or_else(|p| p.into_inner())
                                .insert(p);
                            info!(
                                partition = p,
                                records = n,
                                groups = summary.groups,
                                consumer_groups,
                                share_groups,
                                streams_groups,
                                pending_txn_offsets = summary.pending_txn_offsets,
                                "became the coordinator of the groups of {OFFSETS_TOPIC}-{p}"
                            );
                        }
                        Err(e) => {
                            error!(partition = p, error = %e, "corrupt {OFFSETS_TOPIC} partition; its groups are not served");
                            failed = Some(anyhow::anyhow!("corrupt {OFFSETS_TOPIC}-{p}: {e}"));
                        }
                    }
                }
                Err(e) => {
                    error!(partition = p, error = %e, "cannot load {OFFSETS_TOPIC} partition");
                    failed = Some(e);
                }
            }
        }
        for &p in owned.difference(&led) {
            self.owned
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&p);
            let outputs = self.core().unload_partition(p);
            self.consumer().unload_partition(p);
            self.share().unload_partition(p);
            self.streams().unload_partition(p);
            for out in outputs {
                if let Output::Respond { request, response } = out {
                    self.answer(request, response);
                }
            }
            info!(
                partition = p,
                "no longer the coordinator of the groups of {OFFSETS_TOPIC}-{p}"
            );
        }
        self.wake.notify_one();
        match failed {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// `None` if this broker coordinates `group_id`, else the error for its requests:
    /// COORDINATOR_LOAD_IN_PROGRESS while its partition is being loaded (the client retries),
    /// NOT_COORDINATOR otherwise (the client looks the coordinator up again).
    pub fn not_coordinator(&self, group_id: &str) -> Option<ErrorCode> {
        let p = self.core().partition_for(group_id);
        if self.lock_loading().contains_key(&p) {
            return Some(ErrorCode::COORDINATOR_LOAD_IN_PROGRESS);
        }
        let owned = self.owned.lock().unwrap_or_else(|p| p.into_inner());
        (!owned.contains(&p)).then_some(ErrorCode::NOT_COORDINATOR)
    }

    fn lock_loading(&self) -> MutexGuard<'_, BTreeMap<i32, Vec<(i64, bool)>>> {
        self.loading.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Marks `partition` as being loaded, as [`sync_leadership`](Self::sync_leadership) does
    /// while it reads the partition (tests hold a partition in that state).
    #[cfg(test)]
    pub(crate) fn set_loading(&self, partition: i32, loading: bool) {
        if loading {
            self.lock_loading().insert(partition, Vec::new());
        } else {
            self.lock_loading().remove(&partition);
        }
    }

    /// Stops coordinating `partition`'s groups, as when its leadership moves (tests).
    #[cfg(test)]
    pub(crate) fn disown(&self, partition: i32) {
        self.owned
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&partition);
    }

    /// The end of `producer_id`'s transaction, to be called after its COMMIT (`committed`) or
    /// ABORT marker was written to `__consumer_offsets` partition `partition` (the
    /// WriteTxnMarkers path): the producer's pending transactional offsets in that
    /// partition's groups become committed, or are dropped (Kafka's
    /// `GroupCoordinator.onTransactionCompleted`). Nothing to do for a partition this broker
    /// does not coordinate: its coordinator reads the marker when it loads the partition.
    /// While the partition loads, the completion is applied once the load is installed.
    pub fn complete_txn_offsets(&self, partition: i32, producer_id: i64, committed: bool) {
        let mut core = self.core();
        if let Some(deferred) = self.lock_loading().get_mut(&partition) {
            deferred.push((producer_id, committed));
            return;
        }
        let owned = self
            .owned
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&partition);
        if owned {
            let decided = core.complete_txn_offsets(partition, producer_id, committed);
            if decided > 0 {
                debug!(
                    partition,
                    producer_id, committed, decided, "transactional offsets completed"
                );
            }
        }
    }

    /// The core, locked.
    pub fn core(&self) -> MutexGuard<'_, GroupCoordinator> {
        self.core.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The consumer group (KIP-848) core, locked. Lock [`core`](Self::core) first when both
    /// are needed.
    pub fn consumer(&self) -> MutexGuard<'_, ConsumerGroupCoordinator> {
        self.consumer.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// ConsumerGroupHeartbeat (API 68): the consumer core decides under its lock, its records
    /// are appended to the group's `__consumer_offsets` partition in the same critical
    /// section, and the answer waits until the ISR has them. If they cannot be written the
    /// member gets COORDINATOR_NOT_AVAILABLE and retries, and the partition's consumer groups
    /// are reloaded from the log (the core already moved on).
    pub fn consumer_group_heartbeat(
        self: &Arc<Self>,
        replicas: &Arc<ReplicaManager>,
        req: ConsumerGroupHeartbeatRequest,
    ) -> impl std::future::Future<Output = ConsumerGroupHeartbeatResponse> + Send + 'static {
        let decided = self.heartbeat_now(replicas, &req);
        let me = Arc::clone(self);
        let replicas = Arc::clone(replicas);
        async move {
            let (response, wait) = match decided {
                Ok(decided) => decided,
                Err(response) => return response,
            };
            let Some((partition, appended)) = wait else {
                return response;
            };
            match wait_appended(&replicas, appended).await {
                Ok(()) => response,
                Err(code) => {
                    error!(partition, error = %code, group = %req.group_id, "cannot write consumer group state; reloading its partition");
                    me.reload_consumer_partition(&replicas, partition).await;
                    ConsumerGroupHeartbeatResponse::error(
                        ErrorCode::COORDINATOR_NOT_AVAILABLE.code(),
                        "The coordinator is not available.",
                    )
                }
            }
        }
    }

    /// The synchronous part of a heartbeat: the response, and the append to wait for.
    #[allow(clippy::type_complexity)]
    fn heartbeat_now(
        self: &Arc<Self>,
        replicas: &Arc<ReplicaManager>,
        req: &ConsumerGroupHeartbeatRequest,
    ) -> Result<
        (
            ConsumerGroupHeartbeatResponse,
            Option<(i32, Result<crate::purgatory::ProduceWait, ErrorCode>)>,
        ),
        ConsumerGroupHeartbeatResponse,
    > {
        if let Some(code) = self.not_coordinator(&req.group_id) {
            return Err(ConsumerGroupHeartbeatResponse {
                error_code: code.code(),
                ..ConsumerGroupHeartbeatResponse::default()
            });
        }
        // Both cores stay locked for the whole call: an upgrade (classic → consumer group) and
        // a downgrade (the last consumer-protocol member leaves) move a group between them.
        let mut core = self.core();
        let mut consumer = self.consumer();
        let topics = ImageTopics(replicas.image());
        let now = self.clock.now_ms();
        // A share or streams group's id is not a consumer group's (Kafka's `consumerGroup`
        // lookup).
        if self.share().contains_group(&req.group_id)
            || self.streams().contains_group(&req.group_id)
        {
            return Err(ConsumerGroupHeartbeatResponse::error(
                ErrorCode::GROUP_ID_NOT_FOUND.code(),
                format!("Group {} is not a consumer group.", req.group_id),
            ));
        }
        if !consumer.contains_group(&req.group_id) {
            if let Some(snapshot) = core.snapshot_for_upgrade(&req.group_id) {
                let converted = consumer
                    .can_upgrade(&snapshot)
                    .and_then(|()| consumer.convert_from_classic(&snapshot, &topics, now));
                match converted {
                    Ok(append) => {
                        info!(group = %req.group_id, members = snapshot.members.len(), "upgraded the classic group to a consumer group (KIP-848 online migration)");
                        let outputs = core.remove_for_upgrade(&req.group_id, now);
                        self.execute(replicas, outputs);
                        self.write_consumer_appends(replicas, vec![append]);
                    }
                    Err(reason) => {
                        info!(group = %req.group_id, %reason, "cannot upgrade the classic group to a consumer group");
                        return Err(ConsumerGroupHeartbeatResponse::error(
                            ErrorCode::GROUP_ID_NOT_FOUND.code(),
                            format!("Group {} is not a consumer group.", req.group_id),
                        ));
                    }
                }
            }
        }
        // The group's own settings as this heartbeat finds them (Kafka reads its group config
        // at each heartbeat, so a change reaches a live group at its next one).
        consumer.set_group_overrides(
            &req.group_id,
            crate::group_configs::consumer_overrides_of(
                &topics
                    .0
                    .configs()
                    .group_configs(&req.group_id)
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
        );
        let result = consumer.heartbeat(req, &topics, now);
        let wait = result
            .append
            .map(|a| (a.partition, append_state(replicas, a.partition, &a.records)));
        let downgrades = consumer.take_downgrades();
        drop(consumer);
        self.import_downgrades(replicas, &mut core, downgrades, now);
        drop(core);
        self.wake.notify_one();
        Ok((result.response, wait))
    }

    /// Gives the groups the consumer core downgraded to the classic core and carries out
    /// what that returns (the group's record, a rebalance). Call with both cores locked,
    /// after the records of the call that downgraded them were appended.
    fn import_downgrades(
        self: &Arc<Self>,
        replicas: &Arc<ReplicaManager>,
        core: &mut GroupCoordinator,
        downgrades: Vec<gregor_group::ClassicGroupSnapshot>,
        now: i64,
    ) {
        for snapshot in downgrades {
            info!(group = %snapshot.group_id, members = snapshot.members.len(), "downgraded the consumer group to a classic group (KIP-848 online migration)");
            let outputs = core.import_from_consumer(snapshot, now);
            self.execute(replicas, outputs);
        }
    }

    /// A classic API (JoinGroup, SyncGroup, Heartbeat, LeaveGroup) for `group_id`, with the
    /// classic core locked (inside [`run`](Self::run)): `Some` with the outputs of `call` on
    /// the consumer core when `group_id` is a consumer group with members (its classic
    /// members, KIP-848 online migration), followed by those of a downgrade the call caused;
    /// `None` when the classic core answers. An empty consumer group is deleted first when
    /// `replace_empty` (a classic JoinGroup takes its id over, as in Kafka).
    pub fn classic_call(
        self: &Arc<Self>,
        replicas: &Arc<ReplicaManager>,
        core: &mut GroupCoordinator,
        group_id: &str,
        replace_empty: bool,
        now: i64,
        call: impl FnOnce(&mut ConsumerGroupCoordinator, &dyn TopicsView) -> Vec<Output>,
    ) -> Option<Vec<Output>> {
        let mut consumer = self.consumer();
        let group = consumer.group(group_id)?;
        if group.members().is_empty() {
            if replace_empty {
                if let Ok(a) = consumer.delete_group(group_id) {
                    info!(group = %group_id, "deleted the empty consumer group: a classic member joins");
                    self.write_consumer_appends(replicas, vec![a]);
                }
            }
            return None;
        }
        let topics = ImageTopics(replicas.image());
        let decided = call(&mut consumer, &topics);
        // The consumer core's records are appended under its lock (like a heartbeat's), and
        // a failed append reloads the partition: the core already moved on.
        let mut outputs = Vec::new();
        for out in decided {
            match out {
                Output::Append {
                    partition,
                    records,
                    then,
                    ..
                } => self.append_consumer_records(replicas, partition, &records, then),
                respond => outputs.push(respond),
            }
        }
        let downgrades = consumer.take_downgrades();
        drop(consumer);
        for snapshot in downgrades {
            info!(group = %snapshot.group_id, members = snapshot.members.len(), "downgraded the consumer group to a classic group (KIP-848 online migration)");
            outputs.extend(core.import_from_consumer(snapshot, now));
        }
        Some(outputs)
    }

    /// Appends records the consumer core decided for a classic member's call (KIP-848 online
    /// migration) and then answers `then`; if they cannot be written the partition's consumer
    /// groups are reloaded from the log and the answers carry the append's error, as for a
    /// consumer-protocol heartbeat. Call with the consumer core locked.
    fn append_consumer_records(
        self: &Arc<Self>,
        replicas: &Arc<ReplicaManager>,
        partition: i32,
        records: &[Record],
        then: Vec<(RequestId, Response)>,
    ) {
        let appended = append_state(replicas, partition, records);
        let me = Arc::clone(self);
        let replicas = Arc::clone(replicas);
        tokio::spawn(async move {
            match wait_appended(&replicas, appended).await {
                Ok(()) => {
                    for (id, resp) in then {
                        me.answer(id, resp);
                    }
                }
                Err(code) => {
                    error!(partition, error = %code, "cannot write consumer group state of a classic member's call; reloading its partition");
                    me.reload_consumer_partition(&replicas, partition).await;
                    let answer = append_error(code).code();
                    for (id, resp) in then {
                        me.answer(id, resp.with_error(answer));
                    }
                }
            }
        });
    }

    /// Appends what the consumer core's `tick` returned (fenced members), logging and
    /// reloading a partition whose records could not be written.
    fn write_consumer_appends(
        self: &Arc<Self>,
        replicas: &Arc<ReplicaManager>,
        appends: Vec<ConsumerGroupAppend>,
    ) {
        for a in appends {
            let appended = append_state(replicas, a.partition, &a.records);
            let me = Arc::clone(self);
            let replicas = Arc::clone(replicas);
            tokio::spawn(async move {
                if let Err(code) = wait_appended(&replicas, appended).await {
                    error!(partition = a.partition, error = %code, "cannot write consumer group state; reloading its partition");
                    me.reload_consumer_partition(&replicas, a.partition).await;
                }
            });
        }
    }

    /// Replaces the consumer groups of `partition` with what its log holds (after an append
    /// failed: memory may be ahead of the log). Nothing if this broker no longer owns it.
    pub async fn reload_consumer_partition(
        self: &Arc<Self>,
        replicas: &Arc<ReplicaManager>,
        partition: i32,
    ) {
        let me = Arc::clone(self);
        let replicas = Arc::clone(replicas);
        reload_logged(partition, "consumer", move || {
            let mut consumer = me.consumer();
            consumer.unload_partition(partition);
            let Some(split) = me.owned_entries(&replicas, partition)? else {
                return Ok(0);
            };
            Ok(consumer.load_partition(partition, split.consumer, me.clock.now_ms())?)
        })
        .await;
    }

    /// The entries of `__consumer_offsets` partition `partition`, split between the cores, if
    /// this broker still coordinates its groups; `None` when it does not.
    fn owned_entries(
        &self,
        replicas: &ReplicaManager,
        partition: i32,
    ) -> anyhow::Result<Option<SplitEntries>> {
        let owned = self
            .owned
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .contains(&partition);
        let Some((_, part)) = replicas.partition(OFFSETS_TOPIC, partition) else {
            return Ok(None);
        };
        if !owned {
            return Ok(None);
        }
        Ok(Some(split_entries(read_all(&part)?)))
    }

    /// The consumer group (KIP-848) part of DeleteGroups, with the classic core locked
    /// (inside [`run`](Self::run)): deletes the Empty consumer groups among `ids` and appends
    /// their tombstones. The classic core then deletes [`ConsumerGroupDeletion::classic`]:
    /// the classic groups, and the committed offsets of the deleted consumer groups.
    pub fn delete_consumer_groups(
        &self,
        replicas: &ReplicaManager,
        core: &GroupCoordinator,
        ids: Vec<String>,
    ) -> ConsumerGroupDeletion {
        let mut consumer = self.consumer();
        let mut deletion = ConsumerGroupDeletion::default();
        for g in ids {
            if !consumer.contains_group(&g) {
                // A streams group (KIP-1071) goes the same way: its records, then its
                // offsets in the classic core. Its internal topics stay, as in Kafka.
                let mut streams = self.streams();
                if streams.contains_group(&g) {
                    match streams.delete_group(&g) {
                        Ok(a) => {
                            let appended = append_state(replicas, a.partition, &a.records);
                            if core.group_state(&g).is_some() {
                                deletion.classic.push(g.clone());
                            }
                            deletion.deleted.push((g, appended));
                        }
                        Err(code) => deletion.decided.push((g, code)),
                    }
                    continue;
                }
                drop(streams);
                deletion.classic.push(g);
                continue;
            }
            match consumer.delete_group(&g) {
                Ok(a) => {
                    let appended = append_state(replicas, a.partition, &a.records);
                    if core.group_state(&g).is_some() {
                        deletion.classic.push(g.clone());
                    }
                    deletion.deleted.push((g, appended));
                }
                Err(code) => deletion.decided.push((g, code)),
            }
        }
        deletion
    }

    /// Deletes every Empty consumer group without committed offsets (Kafka's
    /// `cleanupGroupMetadata`, after each offsets expiration check): its offsets live in the
    /// classic core, whose entry for the id goes with the last of them. Call with the
    /// classic core locked (the ticker, inside [`run`](Self::run)).
    pub(crate) fn cleanup_consumer_groups(
        self: &Arc<Self>,
        replicas: &Arc<ReplicaManager>,
        core: &GroupCoordinator,
    ) {
        let mut consumer = self.consumer();
        let idle: Vec<String> = consumer
            .groups()
            .filter(|g| g.state() == ConsumerGroupState::Empty)
            .filter(|g| core.group_state(g.group_id()).is_none())
            .map(|g| g.group_id().to_string())
            .collect();
        let mut appends = Vec::new();
        for id in idle {
            if let Ok(a) = consumer.delete_group(&id) {
                info!(group = %id, "deleted the empty consumer group: no committed offsets left");
                appends.push(a);
            }
        }
        self.write_consumer_appends(replicas, appends);
        drop(consumer);
    }

    /// Registers a reply to be answered by a later [`Output`].
    pub fn park(&self) -> (RequestId, oneshot::Receiver<Response>) {
        let id = RequestId(self.next_id.fetch_add(1, Ordering::Relaxed));
        let (tx, rx) = oneshot::channel();
        self.waiters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id, tx);
        (id, rx)
    }

    /// Drops a parked reply unanswered: its handler answers COORDINATOR_NOT_AVAILABLE, and the
    /// client looks the coordinator up again (used when this broker does not coordinate the
    /// group).
    pub fn cancel(&self, id: RequestId) {
        self.waiters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
    }

    fn answer(&self, id: RequestId, response: Response) {
        let tx = self
            .waiters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
        if let Some(tx) = tx {
            let _ = tx.send(response);
        }
    }

    /// Runs `call` on the core and carries out its outputs before releasing the core, so the
    /// records of successive calls reach `__consumer_offsets` in the order the core decided
    /// them (the order Kafka's rule between plain and transactional commits relies on).
    pub fn run(
        self: &Arc<Self>,
        replicas: &Arc<ReplicaManager>,
        call: impl FnOnce(&mut GroupCoordinator) -> Vec<Output>,
    ) {
        self.run_verified(replicas, TxnVerification::NotRequired, call);
    }

    /// [`run`](Self::run) for a TxnOffsetCommit: the transactional offsets the call writes
    /// bring `verification` (the guard of the offsets partition's transaction verification)
    /// to their append.
    pub fn run_verified(
        self: &Arc<Self>,
        replicas: &Arc<ReplicaManager>,
        verification: TxnVerification,
        call: impl FnOnce(&mut GroupCoordinator) -> Vec<Output>,
    ) {
        let mut core = self.core();
        let outputs = call(&mut core);
        self.execute_verified(replicas, outputs, verification);
        drop(core);
    }

    /// Carries out a core call's outputs, in order. Records go to `__consumer_offsets` as an
    /// acks=all produce: the answer waits until the partition's ISR has them (and, under the
    /// default flush policy, they are fsynced), so committed offsets survive losing this node.
    /// Call it with the core locked ([`run`](Self::run)); it never locks the core itself
    /// except in the tasks that wait for the appends.
    pub fn execute(self: &Arc<Self>, replicas: &Arc<ReplicaManager>, outputs: Vec<Output>) {
        self.execute_verified(replicas, outputs, TxnVerification::NotRequired);
    }

    /// [`execute`](Self::execute), the transactional appends with `verification`.
    fn execute_verified(
        self: &Arc<Self>,
        replicas: &Arc<ReplicaManager>,
        outputs: Vec<Output>,
        verification: TxnVerification,
    ) {
        for out in outputs {
            match out {
                Output::Respond { request, response } => self.answer(request, response),
                Output::Append {
                    partition,
                    records,
                    then,
                    transaction,
                } => {
                    let appended = append(replicas, partition, &records, transaction, verification);
                    let records = if transaction.is_some() {
                        records
                    } else {
                        Vec::new()
                    };
                    let me = Arc::clone(self);
                    let replicas = Arc::clone(replicas);
                    tokio::spawn(async move {
                        let result = match appended {
                            Ok(wait) => replicas
                                .purgatory()
                                .delay_produce(vec![wait], APPEND_TIMEOUT)
                                .await
                                .pop()
                                .unwrap_or(Ok(()))
                                .map_err(|f| f.code),
                            Err(code) => Err(code),
                        };
                        if let (Err(_), Some(t)) = (result, transaction) {
                            // Offsets the log does not have must not be committed by the
                            // transaction's marker (Kafka reverts the pending commit).
                            me.core().txn_append_failed(t.producer_id, &records);
                        }
                        if let (Err(code), true) = (result, then.is_empty()) {
                            // Nobody waits for these records (expirations, deleted topics'
                            // offsets): say so here, or the failure would go unnoticed.
                            error!(partition, error = %code, "cannot write group state");
                        }
                        for (id, resp) in then {
                            match result {
                                Ok(()) => me.answer(id, resp),
                                Err(code) => {
                                    error!(partition, error = %code, "cannot write group state");
                                    let answer = append_error(code);
                                    me.answer(id, resp.with_error(answer.code()))
                                }
                            }
                        }
                    });
                }
            }
        }
        self.wake.notify_one();
    }

    /// Runs `tick` whenever the core's next deadline passes.
    /// `owner` is whatever holds the replica manager (the broker state), so that this module
    /// does not depend on it.
    pub async fn run_ticker(self: Arc<Self>, replicas: Arc<ReplicaManager>) {
        loop {
            let now = self.clock.now_ms();
            let classic = self.core().next_deadline();
            let consumer = self.consumer().next_deadline();
            let share = self.share().next_deadline();
            let streams = self.streams().next_deadline();
            let next = [classic, consumer, share, streams]
                .into_iter()
                .flatten()
                .min()
                .unwrap_or(now + 1000);
            let wait = Duration::from_millis((next - now).clamp(0, 1000) as u64);
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = self.wake.notified() => continue,
            }
            let now = self.clock.now_ms();
            self.run(&replicas, |core| {
                let checked_before = core.next_offsets_check_ms();
                // A consumer group's offsets of topics it subscribes to do not expire.
                let outputs = {
                    let consumer = self.consumer();
                    let streams = self.streams();
                    core.tick_keeping(now, &|group, topic| {
                        consumer.is_subscribed_to_topic(group, topic) == Some(true)
                            || streams.is_subscribed_to_topic(group, topic) == Some(true)
                    })
                };
                if core.next_offsets_check_ms() != checked_before {
                    self.cleanup_consumer_groups(&replicas, core);
                }
                let mut outputs = outputs;
                let topics = ImageTopics(replicas.image());
                let mut consumer = self.consumer();
                let appends = consumer.tick(now, &topics);
                // Appended under the consumer core's lock, like a heartbeat's records.
                self.write_consumer_appends(&replicas, appends);
                let downgrades = consumer.take_downgrades();
                drop(consumer);
                for snapshot in downgrades {
                    info!(group = %snapshot.group_id, members = snapshot.members.len(), "downgraded the consumer group to a classic group (KIP-848 online migration)");
                    outputs.extend(core.import_from_consumer(snapshot, now));
                }
                self.tick_share_groups(&replicas, now);
                self.tick_streams_groups(&replicas, now);
                outputs
            });
        }
    }
}

/// What [`GroupRuntime::delete_consumer_groups`] did.
#[derive(Debug, Default)]
pub struct ConsumerGroupDeletion {
    /// Ids for the classic core's DeleteGroups.
    pub classic: Vec<String>,
    /// Consumer groups not deleted, with their error code (NON_EMPTY_GROUP).
    pub decided: Vec<(String, i16)>,
    /// Consumer groups deleted, with the append of their tombstones to wait for.
    pub deleted: Vec<(String, Result<crate::purgatory::ProduceWait, ErrorCode>)>,
}

impl ConsumerGroupDeletion {
    /// The final code of every consumer group handled here, once its tombstones are on the
    /// ISR; `classic` gives the classic core's code of an id (its offsets' deletion).
    pub async fn finish(
        self,
        replicas: &ReplicaManager,
        classic: impl Fn(&str) -> Option<i16>,
    ) -> Vec<(String, i16)> {
        let mut out = self.decided;
        for (g, appended) in self.deleted {
            let code = match wait_appended(replicas, appended).await {
                Ok(()) => classic(&g)
                    .filter(|&c| c != ErrorCode::GROUP_ID_NOT_FOUND.code())
                    .unwrap_or(0),
                Err(code) => {
                    error!(group = %g, error = %code, "cannot write consumer group tombstones");
                    append_error(code).code()
                }
            };
            out.push((g, code));
        }
        out
    }
}

/// Every topic of `image`, id → name.
fn topic_names(image: &MetadataImage) -> BTreeMap<uuid::Uuid, String> {
    image
        .topics()
        .topics()
        .map(|t| (t.id, t.name.clone()))
        .collect()
}

/// The consumer group core's view of the cluster's topics: the applied metadata image.
pub struct ImageTopics(pub Arc<MetadataImage>);

impl TopicsView for ImageTopics {
    fn topic_id(&self, name: &str) -> Option<TopicId> {
        self.0
            .topics()
            .topic_id(name)
            .map(|id| TopicId(*id.as_bytes()))
    }

    fn topic_name(&self, id: TopicId) -> Option<&str> {
        self.0
            .topics()
            .topic(uuid::Uuid::from_bytes(id.0))
            .map(|t| t.name.as_str())
    }

    fn partition_count(&self, id: TopicId) -> Option<i32> {
        let topic = self.0.topics().topic(uuid::Uuid::from_bytes(id.0))?;
        i32::try_from(topic.partition_count()).ok()
    }

    fn topic_names(&self) -> Vec<String> {
        self.0.topics().topics().map(|t| t.name.clone()).collect()
    }
}

/// Runs `reload` (one core's groups of `partition` replaced with what its log holds, after an
/// append failed: memory may be ahead of the log) off the async runtime, and logs how it went.
async fn reload_logged(
    partition: i32,
    kind: &'static str,
    reload: impl FnOnce() -> anyhow::Result<usize> + Send + 'static,
) {
    match tokio::task::spawn_blocking(reload).await {
        Ok(Ok(groups)) => info!(partition, groups, "{kind} groups reloaded"),
        Ok(Err(e)) => error!(partition, error = %e, "cannot reload {kind} groups"),
        Err(e) => error!(partition, error = %e, "{kind} group reload failed"),
    }
}

/// A partition's entries, split between the cores.
struct SplitEntries {
    /// The consumer group records (keys 3-8).
    consumer: Vec<Record>,
    /// The share group records (keys 10-15).
    share: Vec<Record>,
    /// The streams group records (keys 17-23).
    streams: Vec<Record>,
    /// Everything else (offsets, classic groups, markers).
    classic: Vec<LogEntry>,
}

/// Splits a partition's entries between the cores.
fn split_entries(entries: Vec<LogEntry>) -> SplitEntries {
    let mut consumer = Vec::new();
    let mut share = Vec::new();
    let mut streams = Vec::new();
    let mut classic = Vec::with_capacity(entries.len());
    for e in entries {
        match e {
            LogEntry::Record { record, .. } if is_consumer_group_key(&record.key) => {
                consumer.push(record)
            }
            LogEntry::Record { record, .. }
                if gregor_group::share_group::is_share_group_key(&record.key) =>
            {
                share.push(record)
            }
            LogEntry::Record { record, .. }
                if gregor_group::streams_group::is_streams_group_key(&record.key) =>
            {
                streams.push(record)
            }
            other => classic.push(other),
        }
    }
    SplitEntries {
        consumer,
        share,
        streams,
        classic,
    }
}

/// Waits until an append's records are on the ISR (acks=all), as a produce would.
async fn wait_appended(
    replicas: &ReplicaManager,
    appended: Result<crate::purgatory::ProduceWait, ErrorCode>,
) -> Result<(), ErrorCode> {
    let wait = appended?;
    replicas
        .purgatory()
        .delay_produce(vec![wait], APPEND_TIMEOUT)
        .await
        .pop()
        .unwrap_or(Ok(()))
        .map_err(|f| f.code)
}

/// The error a group request gets when its records could not be written (Kafka's
/// `GroupCoordinatorService.handleOperationException`): leadership or storage lost →
/// NOT_COORDINATOR (the client looks the coordinator up again); not enough replicas or a
/// timeout → COORDINATOR_NOT_AVAILABLE (it retries); too large → UNKNOWN_SERVER_ERROR; others
/// (e.g. INVALID_PRODUCER_EPOCH for a fenced transactional producer) as they are.
pub(crate) fn append_error(code: ErrorCode) -> ErrorCode {
    match code {
        ErrorCode::NOT_LEADER_OR_FOLLOWER | ErrorCode::KAFKA_STORAGE_ERROR => {
            ErrorCode::NOT_COORDINATOR
        }
        ErrorCode::UNKNOWN_TOPIC_OR_PARTITION
        | ErrorCode::NOT_ENOUGH_REPLICAS
        | ErrorCode::NOT_ENOUGH_REPLICAS_AFTER_APPEND
        | ErrorCode::REQUEST_TIMED_OUT => ErrorCode::COORDINATOR_NOT_AVAILABLE,
        ErrorCode::MESSAGE_TOO_LARGE | ErrorCode::RECORD_LIST_TOO_LARGE => {
            ErrorCode::UNKNOWN_SERVER_ERROR
        }
        other => other,
    }
}

/// [`append`] of group state (no transaction).
fn append_state(
    replicas: &ReplicaManager,
    partition: i32,
    records: &[Record],
) -> Result<crate::purgatory::ProduceWait, ErrorCode> {
    append(
        replicas,
        partition,
        records,
        None,
        TxnVerification::NotRequired,
    )
}

/// Writes `records` to the `__consumer_offsets` partition as one batch; a transaction's
/// offsets as a transactional batch of its producer, which must bring `verification` (the
/// guard of the TxnOffsetCommit's verification) when it opens the transaction there.
fn append(
    replicas: &ReplicaManager,
    partition: i32,
    records: &[Record],
    transaction: Option<TxnProducer>,
    verification: TxnVerification,
) -> Result<crate::purgatory::ProduceWait, ErrorCode> {
    let (topic, part) = replicas
        .partition(OFFSETS_TOPIC, partition)
        .ok_or(ErrorCode::NOT_COORDINATOR)?;
    let simple: Vec<gregor_protocol::batch::SimpleRecord<'_>> = records
        .iter()
        .map(|r| (Some(&r.key[..]), r.value.as_deref()))
        .collect();
    let mut batch = gregor_protocol::batch::encode_simple_batch(replicas.clock().now_ms(), &simple);
    let appended = match transaction {
        // Offsets sent in a transaction: one transactional batch of the producer, base
        // sequence 0 as Kafka's coordinator writes it; the log checks only its epoch.
        Some(t) => {
            gregor_protocol::batch::set_producer(
                &mut batch,
                t.producer_id,
                t.producer_epoch,
                0,
                true,
            );
            part.append_to_leader_verified(
                AppendOrigin::Coordinator,
                &batch,
                &topic.settings,
                -1,
                verification,
            )?
        }
        None => part.append_to_leader(&batch, &topic.settings, -1)?,
    };
    Ok(crate::purgatory::ProduceWait {
        partition: Arc::clone(&part),
        required_offset: appended.info.last_offset + 1,
        leader_epoch: appended.leader_epoch,
        replication: true,
        durable: part.flushes_before_acks(),
    })
}

/// Every entry of a `__consumer_offsets` partition, in log order, for the loader: data
/// records with their batch's producer when the batch is transactional, and the COMMIT/ABORT
/// markers of control batches (key: version, type 0 = ABORT, 1 = COMMIT).
///
/// It reads to the log end, not the high watermark, as Kafka's loaders do: this broker has
/// just become the leader, so everything in its log stays (it is never truncated as leader),
/// while its high watermark may still lag what the previous leader acknowledged (a commit, or
/// the marker that ends a transaction, that the ISR had before this broker learned the high
/// watermark).
fn read_all(part: &Partition) -> anyhow::Result<Vec<LogEntry>> {
    let (mut offset, _) = part
        .offsets()
        .map_err(|c| anyhow::anyhow!("cannot read offsets: {c}"))?;
    let end = part.log_end_offset();
    let mut out = Vec::new();
    while offset < end {
        let info = part
            .fetch_read(offset, 1 << 20, true, FetchIsolation::LogEnd)
            .map_err(|c| anyhow::anyhow!("cannot read at {offset}: {c}"))?
            .info;
        let Some(slice) = info.slice else { break };
        let mut bytes = Bytes::from(slice.read_to_vec()?);
        let raw = bytes.clone();
        let sets = RecordBatchDecoder::decode_all(&mut bytes)?;
        // Where the batches end: a compacted log's last batches may hold no record at all (a
        // producer's emptied last batch keeps its header), and offsets have gaps.
        let batches_end = gregor_protocol::batch::batches(&raw)
            .filter_map(Result::ok)
            .map(|b| b.next_offset())
            .max();
        let mut progressed = false;
        for set in sets {
            for r in set.records {
                if r.offset < offset {
                    continue;
                }
                offset = r.offset + 1;
                progressed = true;
                let Some(key) = r.key else { continue };
                if r.control {
                    match control_marker(&key) {
                        Some(committed) => out.push(LogEntry::Marker {
                            offset: r.offset,
                            producer_id: r.producer_id,
                            committed,
                        }),
                        None => {
                            debug!(offset = r.offset, "control record that is not a marker")
                        }
                    }
                    continue;
                }
                out.push(LogEntry::Record {
                    offset: r.offset,
                    transactional_producer: r.transactional.then_some(r.producer_id),
                    record: Record {
                        key,
                        value: r.value,
                    },
                });
            }
        }
        if let Some(end) = batches_end.filter(|&e| e > offset) {
            offset = end;
            progressed = true;
        }
        if !progressed {
            break;
        }
    }
    Ok(out)
}

/// The type of an end-transaction marker's key (Kafka's `ControlRecordType`): `Some(true)` for
/// COMMIT, `Some(false)` for ABORT, `None` for other control records.
fn control_marker(key: &[u8]) -> Option<bool> {
    let kind = i16::from_be_bytes([*key.get(2)?, *key.get(3)?]);
    match kind {
        0 => Some(false),
        1 => Some(true),
        _ => None,
    }
}
