//! Share groups (KIP-932) in the group runtime: drives the share group core
//! (`gregor_group::share_group`) like the consumer one, and calls the persister (the share
//! coordinators' client) for the share-partitions' state, as Kafka's
//! `GroupCoordinatorService` does.
//!
//! ```text
//!  ShareGroupHeartbeat ─► share.heartbeat(request, group settings, image topics, now)
//!     (classic or consumer group of that id: GROUP_ID_NOT_FOUND)
//!     ─► records appended under the share core's lock ─► ISR ─► answer
//!     ─► then, off the answer's path: persister.initialize(key, group epoch, -1) for each new
//!        share-partition ─► share.initialize_completed ─► append (ok: initialized, assigned at
//!        the next heartbeat; failed: tried again by a heartbeat or the ticker)
//!  ticker ─► share.tick: expired members' records; initializations to retry
//!  DeleteGroups ─► Empty? ─► state partitions → deleting (append) ─► persister.delete each
//!     ─► share.delete_group tombstones (append) ─► answer; a failed delete answers its error
//!  DescribeShareGroupOffsets ─► persister.read_summary per share-partition
//!  AlterShareGroupOffsets ─► Empty? ─► initializing (append) ─► read_summary, then
//!     persister.initialize(key, state epoch + 1, offset) ─► initialized (append)
//!  DeleteShareGroupOffsets ─► Empty? ─► deleting (append) ─► persister.delete ─► forgotten
//! ```
//! Appends wait for the ISR (acks=all); a failed one reloads the partition's share groups
//! from the log, since the core already moved on.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::sync::{Arc, MutexGuard};

use gregor_group::consumer_group::{TopicId, TopicsView};
use gregor_group::share_group::{
    DescribedShareGroup, InitializeRequest, ShareGroupAppend, ShareGroupCoordinator,
    ShareGroupHeartbeatRequest, ShareGroupHeartbeatResponse,
};
use gregor_protocol::error::ErrorCode;
use gregor_share::{PersistError, ShareGroupSettings, ShareKey};
use tracing::{error, info, warn};

use super::{reload_logged, wait_appended, GroupRuntime, ImageTopics};
use crate::replica_manager::ReplicaManager;
use crate::share_persister::Persister;

/// The persister the share groups use, once known.
#[derive(Default)]
pub(super) struct PersisterSlot(std::sync::OnceLock<Arc<dyn Persister>>);

impl std::fmt::Debug for PersisterSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.get().is_some() {
            "PersisterSlot(set)"
        } else {
            "PersisterSlot(unset)"
        })
    }
}

/// Kafka's FENCED_STATE_EPOCH.
const FENCED_STATE_EPOCH: i16 = 124;

/// One topic of a share admin request: its name and, per partition, a start offset (only
/// AlterShareGroupOffsets uses it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareOffsetsTopic {
    pub topic_name: String,
    pub partitions: Vec<(i32, i64)>,
}

/// One topic of a share admin answer: per partition (index, start offset, leader epoch,
/// error code, error message).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareTopicResult {
    pub topic_name: String,
    pub topic_id: uuid::Uuid,
    pub partitions: Vec<(i32, i64, i32, i16, Option<String>)>,
    /// DeleteShareGroupOffsets answers per topic.
    pub error_code: i16,
    pub error_message: Option<String>,
}

/// One share-partition of a DescribeShareGroupOffsets answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribedSharePartition {
    pub partition: i32,
    /// The share-partition start offset; -1 without state.
    pub start_offset: i64,
    pub leader_epoch: i32,
    /// The lag (v1, KIP-1226); -1 when it cannot be told.
    pub lag: i64,
    pub error_code: i16,
    pub error_message: Option<String>,
}

/// One topic of a DescribeShareGroupOffsets answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribedShareTopic {
    pub topic_name: String,
    pub topic_id: uuid::Uuid,
    pub partitions: Vec<DescribedSharePartition>,
}

impl DescribedShareTopic {
    /// A topic answered without reading state (refused, unknown): each partition with its
    /// error, start offset and leader epoch as in `t`.
    pub fn from_result(t: ShareTopicResult) -> DescribedShareTopic {
        DescribedShareTopic {
            topic_name: t.topic_name,
            topic_id: t.topic_id,
            partitions: t
                .partitions
                .into_iter()
                .map(
                    |(partition, start_offset, leader_epoch, error_code, error_message)| {
                        DescribedSharePartition {
                            partition,
                            start_offset,
                            leader_epoch,
                            lag: -1,
                            error_code,
                            error_message,
                        }
                    },
                )
                .collect(),
        }
    }
}

/// The settings of share group `group`: its group configs in the applied image over the
/// broker's `group.share.*` keys (what `group_configs::share_settings` gives a handler).
pub(super) fn settings(replicas: &ReplicaManager, group: &str) -> ShareGroupSettings {
    let configs: BTreeMap<String, String> = replicas
        .image()
        .configs()
        .group_configs(group)
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    crate::group_configs::share_settings_of(&configs, replicas.config())
}

/// Whether share groups are enabled: the cluster's `share.version` is at least 1 (Kafka's
/// `KafkaApis.isShareGroupProtocolEnabled`); the share group APIs answer UNSUPPORTED_VERSION
/// otherwise.
pub fn share_groups_enabled(replicas: &ReplicaManager) -> bool {
    replicas
        .image()
        .feature_level(gregor_metadata::SHARE_VERSION_FEATURE)
        .unwrap_or(0)
        >= 1
}

fn key(group_id: &str, topic: TopicId, partition: i32) -> ShareKey {
    ShareKey {
        group_id: group_id.to_string(),
        topic_id: uuid::Uuid::from_bytes(topic.0),
        partition,
    }
}

/// The Kafka error code of a persister failure.
fn persist_code(e: &PersistError) -> i16 {
    match e {
        PersistError::FencedLeaderEpoch => ErrorCode::FENCED_LEADER_EPOCH.code(),
        PersistError::FencedStateEpoch => FENCED_STATE_EPOCH,
        PersistError::NotInitialized => ErrorCode::UNKNOWN_TOPIC_OR_PARTITION.code(),
        PersistError::Unavailable(_) => ErrorCode::COORDINATOR_NOT_AVAILABLE.code(),
        PersistError::Other { code, .. } => *code,
    }
}

impl GroupRuntime {
    /// The share group (KIP-932) core, locked. Lock [`core`](Self::core) and
    /// [`consumer`](Self::consumer) first when more than one is needed.
    pub fn share(&self) -> MutexGuard<'_, ShareGroupCoordinator> {
        self.share.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Makes the share groups' state go through `persister` (only before the first share
    /// call; tests install an in-memory one). Returns false if one was already in use.
    pub fn use_share_persister(&self, persister: Arc<dyn Persister>) -> bool {
        self.share_persister.0.set(persister).is_ok()
    }

    /// The persister in use: the first one installed or passed.
    fn persister(&self, passed: &Arc<dyn Persister>) -> Arc<dyn Persister> {
        Arc::clone(self.share_persister.0.get_or_init(|| Arc::clone(passed)))
    }

    /// True when `group_id` is a share group here.
    pub fn is_share_group(&self, group_id: &str) -> bool {
        self.share().contains_group(group_id)
    }

    /// Whether `group_id` names a group of another type here (classic, with members or only
    /// offsets, consumer or streams): Kafka's "Group {id} is not a share group.".
    fn is_other_group(&self, group_id: &str) -> bool {
        self.core().group_state(group_id).is_some()
            || self.consumer().contains_group(group_id)
            || self.streams().contains_group(group_id)
    }

    /// ShareGroupHeartbeat (API 76): the share core decides under its lock, its records are
    /// appended in the same critical section, and the answer waits until the ISR has them.
    /// The share-partitions it asks to initialize are initialized afterwards, off the
    /// answer's path, as Kafka's `GroupCoordinatorService.shareGroupHeartbeat` does.
    pub fn share_group_heartbeat(
        self: &Arc<Self>,
        replicas: &Arc<ReplicaManager>,
        persister: &Arc<dyn Persister>,
        req: ShareGroupHeartbeatRequest,
    ) -> impl Future<Output = ShareGroupHeartbeatResponse> + Send + 'static {
        let persister = self.persister(persister);
        let decided = self.share_heartbeat_now(replicas, &req);
        let me = Arc::clone(self);
        let replicas = Arc::clone(replicas);
        async move {
            let (response, wait, initialize) = match decided {
                Ok(decided) => decided,
                Err(response) => return response,
            };
            if let Some((partition, appended)) = wait {
                if let Err(code) = wait_appended(&replicas, appended).await {
                    error!(partition, error = %code, group = %req.group_id, "cannot write share group state; reloading its partition");
                    me.reload_share_partition(&replicas, partition).await;
                    return ShareGroupHeartbeatResponse::error(
                        ErrorCode::COORDINATOR_NOT_AVAILABLE.code(),
                        "The coordinator is not available.",
                    );
                }
            }
            if let Some(init) = initialize {
                me.spawn_initialize(&replicas, persister, init);
            }
            response
        }
    }

    /// The synchronous part of a share heartbeat.
    #[allow(clippy::type_complexity)]
    fn share_heartbeat_now(
        self: &Arc<Self>,
        replicas: &Arc<ReplicaManager>,
        req: &ShareGroupHeartbeatRequest,
    ) -> Result<
        (
            ShareGroupHeartbeatResponse,
            Option<(i32, Result<crate::purgatory::ProduceWait, ErrorCode>)>,
            Option<InitializeRequest>,
        ),
        ShareGroupHeartbeatResponse,
    > {
        // An invalid request is answered before the coordinator is looked for, as Kafka's.
        if let Some(invalid) = ShareGroupCoordinator::invalid_heartbeat(req) {
            return Err(invalid);
        }
        if let Some(code) = self.not_coordinator(&req.group_id) {
            return Err(ShareGroupHeartbeatResponse {
                error_code: code.code(),
                ..ShareGroupHeartbeatResponse::default()
            });
        }
        let settings = settings(replicas, &req.group_id);
        // One id, one group: checked with the other cores locked first, as everywhere.
        let core = self.core();
        let consumer = self.consumer();
        let mut share = self.share();
        if !share.contains_group(&req.group_id)
            && (core.group_state(&req.group_id).is_some() || consumer.contains_group(&req.group_id))
        {
            return Err(ShareGroupHeartbeatResponse::error(
                ErrorCode::GROUP_ID_NOT_FOUND.code(),
                format!("Group {} is not a share group.", req.group_id),
            ));
        }
        drop(consumer);
        drop(core);
        let topics = ImageTopics(replicas.image());
        let now = self.clock.now_ms();
        let result = share.heartbeat(req, &settings, &topics, now);
        let wait = result.append.map(|a| {
            (
                a.partition,
                super::append_state(replicas, a.partition, &a.records),
            )
        });
        drop(share);
        self.wake.notify_one();
        Ok((result.response, wait, result.initialize))
    }

    /// Initializes `init`'s share-partitions with the persister in a task of its own, then
    /// records the outcome.
    fn spawn_initialize(
        self: &Arc<Self>,
        replicas: &Arc<ReplicaManager>,
        persister: Arc<dyn Persister>,
        init: InitializeRequest,
    ) {
        let me = Arc::clone(self);
        let replicas = Arc::clone(replicas);
        tokio::spawn(async move {
            me.initialize_share_partitions(&replicas, persister.as_ref(), init)
                .await;
        });
    }

    /// Kafka's `persisterInitialize`: InitializeShareGroupState (start offset -1: the
    /// partition leader decides it from `share.auto.offset.reset`) for every share-partition,
    /// at the request's state epoch. The ones that succeeded become initialized, the others
    /// leave initializing, to be tried again. A share-partition whose state already exists
    /// at a newer state epoch (FENCED_STATE_EPOCH) has state: it counts as initialized.
    async fn initialize_share_partitions(
        self: &Arc<Self>,
        replicas: &Arc<ReplicaManager>,
        persister: &dyn Persister,
        init: InitializeRequest,
    ) {
        let keys: Vec<(TopicId, i32)> = init
            .partitions
            .iter()
            .flat_map(|(topic, partitions)| partitions.iter().map(move |p| (*topic, *p)))
            .collect();
        let calls = keys.into_iter().map(|(topic, p)| {
            let key = key(&init.group_id, topic, p);
            async move {
                let r = persister.initialize(&key, init.state_epoch, -1).await;
                (topic, p, r)
            }
        });
        let results = futures::future::join_all(calls).await;
        let mut done: BTreeMap<TopicId, BTreeSet<i32>> = BTreeMap::new();
        let mut failed: BTreeMap<TopicId, BTreeSet<i32>> = BTreeMap::new();
        for (topic, partition, r) in results {
            match r {
                Ok(()) | Err(PersistError::FencedStateEpoch) => {
                    done.entry(topic).or_default().insert(partition);
                }
                Err(e) => {
                    warn!(group = %init.group_id, partition, error = %e, "cannot initialize share-partition state; will retry");
                    failed.entry(topic).or_default().insert(partition);
                }
            }
        }
        let topics = ImageTopics(replicas.image());
        let now = self.clock.now_ms();
        let mut appends = Vec::new();
        {
            let mut share = self.share();
            for (partitions, ok) in [(done, true), (failed, false)] {
                if partitions.is_empty() {
                    continue;
                }
                if let Some(a) =
                    share.initialize_completed(&init.group_id, &partitions, ok, &topics, now)
                {
                    appends.push((
                        a.partition,
                        super::append_state(replicas, a.partition, &a.records),
                    ));
                }
            }
        }
        self.wake.notify_one();
        for (partition, appended) in appends {
            if let Err(code) = wait_appended(replicas, appended).await {
                error!(partition, error = %code, "cannot write share group state; reloading its partition");
                self.reload_share_partition(replicas, partition).await;
            }
        }
    }

    /// The ticker's share part: expired members' records, and initializations to retry.
    /// Called with the classic core locked (inside [`run`](Self::run)).
    pub(crate) fn tick_share_groups(self: &Arc<Self>, replicas: &Arc<ReplicaManager>, now: i64) {
        let topics = ImageTopics(replicas.image());
        let mut share = self.share();
        let tick = share.tick(now, &topics);
        let appended: Vec<_> = tick
            .appends
            .iter()
            .map(|a| {
                (
                    a.partition,
                    super::append_state(replicas, a.partition, &a.records),
                )
            })
            .collect();
        drop(share);
        self.watch_share_appends(replicas, appended);
        if let Some(persister) = self.share_persister.0.get() {
            for init in tick.initialize {
                self.spawn_initialize(replicas, Arc::clone(persister), init);
            }
        }
    }

    /// Topics were deleted: every share group forgets their share-partitions (Kafka's
    /// `maybeCleanupShareGroupState`), one record per group that had any.
    pub(super) fn forget_deleted_topics_in_share_groups(
        self: &Arc<Self>,
        replicas: &Arc<ReplicaManager>,
        deleted: BTreeSet<uuid::Uuid>,
    ) {
        let ids: BTreeSet<TopicId> = deleted
            .into_iter()
            .map(|id| TopicId(*id.as_bytes()))
            .collect();
        let mut share = self.share();
        let appended: Vec<_> = share
            .forget_topics(&ids)
            .iter()
            .map(|a| {
                (
                    a.partition,
                    super::append_state(replicas, a.partition, &a.records),
                )
            })
            .collect();
        drop(share);
        self.watch_share_appends(replicas, appended);
    }

    /// Waits for appends nobody answers on, reloading a partition whose records could not
    /// be written.
    fn watch_share_appends(
        self: &Arc<Self>,
        replicas: &Arc<ReplicaManager>,
        appended: Vec<(i32, Result<crate::purgatory::ProduceWait, ErrorCode>)>,
    ) {
        for (partition, appended) in appended {
            let me = Arc::clone(self);
            let replicas = Arc::clone(replicas);
            tokio::spawn(async move {
                if let Err(code) = wait_appended(&replicas, appended).await {
                    error!(partition, error = %code, "cannot write share group state; reloading its partition");
                    me.reload_share_partition(&replicas, partition).await;
                }
            });
        }
    }

    /// Appends a share core's records and waits for the ISR; a failure reloads the
    /// partition and is the request's error.
    async fn append_share(
        self: &Arc<Self>,
        replicas: &Arc<ReplicaManager>,
        append: Option<ShareGroupAppend>,
    ) -> Result<(), ErrorCode> {
        let Some(a) = append else {
            return Ok(());
        };
        let appended = super::append_state(replicas, a.partition, &a.records);
        match wait_appended(replicas, appended).await {
            Ok(()) => Ok(()),
            Err(code) => {
                error!(partition = a.partition, error = %code, "cannot write share group state; reloading its partition");
                self.reload_share_partition(replicas, a.partition).await;
                Err(super::append_error(code))
            }
        }
    }

    /// Replaces the share groups of `partition` with what its log holds (after an append
    /// failed: memory may be ahead of the log). Nothing if this broker no longer owns it.
    pub async fn reload_share_partition(
        self: &Arc<Self>,
        replicas: &Arc<ReplicaManager>,
        partition: i32,
    ) {
        let me = Arc::clone(self);
        let replicas = Arc::clone(replicas);
        reload_logged(partition, "share", move || {
            let Some(split) = me.owned_entries(&replicas, partition)? else {
                me.share().unload_partition(partition);
                return Ok(0);
            };
            let now = me.clock.now_ms();
            let settings = |g: &str| settings(&replicas, g);
            Ok(me
                .share()
                .load_partition(partition, split.share, now, &settings)?)
        })
        .await;
    }

    /// ShareGroupDescribe (API 77): the groups this broker coordinates (NOT_COORDINATOR,
    /// COORDINATOR_LOAD_IN_PROGRESS for the others), GROUP_ID_NOT_FOUND "Group {id} is not a
    /// share group." for a group of another type.
    pub fn describe_share_groups(
        &self,
        replicas: &ReplicaManager,
        ids: &[String],
    ) -> Vec<DescribedShareGroup> {
        let topics = ImageTopics(replicas.image());
        let mut described = self.share().describe(ids, &topics);
        for d in &mut described {
            if let Some(code) = self.not_coordinator(&d.group_id) {
                *d = DescribedShareGroup::not_found(&d.group_id, "");
                d.error_code = code.code();
                d.error_message = None;
            } else if d.error_code == ErrorCode::GROUP_ID_NOT_FOUND.code()
                && self.is_other_group(&d.group_id)
            {
                d.error_message = Some(format!("Group {} is not a share group.", d.group_id));
            }
        }
        described
    }

    /// The share groups among `ids` (DeleteGroups' share part, Kafka's `deleteShareGroups`):
    /// an Empty one has the state of its share-partitions deleted with the persister, then
    /// its records tombstoned; NON_EMPTY_GROUP otherwise; a failed state deletion answers
    /// its error and keeps the group. Answers (group, code) for each.
    pub fn delete_share_groups(
        self: &Arc<Self>,
        replicas: &Arc<ReplicaManager>,
        persister: &Arc<dyn Persister>,
        ids: Vec<String>,
    ) -> impl Future<Output = Vec<(String, i16)>> + Send + 'static {
        let persister = self.persister(persister);
        let me = Arc::clone(self);
        let replicas = Arc::clone(replicas);
        async move {
            let mut out = Vec::new();
            for g in ids {
                let code = me
                    .delete_share_group(&replicas, persister.as_ref(), &g)
                    .await;
                out.push((g, code));
            }
            out
        }
    }

    async fn delete_share_group(
        self: &Arc<Self>,
        replicas: &Arc<ReplicaManager>,
        persister: &dyn Persister,
        group_id: &str,
    ) -> i16 {
        let topics = ImageTopics(replicas.image());
        let (state, begun) = {
            let mut share = self.share();
            if let Err(code) = share.check_empty(group_id) {
                return code;
            }
            let state = share
                .state_partitions(group_id, None, &topics)
                .unwrap_or_default();
            let ids: BTreeSet<TopicId> = state.iter().map(|t| t.topic_id).collect();
            let begun = share.begin_state_deletion(group_id, &ids);
            (state, begun)
        };
        if let Err(code) = self.append_share(replicas, begun).await {
            return code.code();
        }
        let calls = state.iter().flat_map(|t| {
            t.partitions.iter().map(move |p| {
                let key = key(group_id, t.topic_id, *p);
                async move { persister.delete(&key).await }
            })
        });
        let failure = futures::future::join_all(calls)
            .await
            .into_iter()
            .find_map(Result::err);
        if let Some(e) = failure {
            warn!(group = %group_id, error = %e, "cannot delete the share group's state");
            return persist_code(&e);
        }
        let deleted = self.share().delete_group(group_id);
        match deleted {
            Ok(a) => match self.append_share(replicas, Some(a)).await {
                Ok(()) => {
                    info!(group = %group_id, "deleted the share group");
                    ErrorCode::NONE.code()
                }
                Err(code) => code.code(),
            },
            Err(code) => code,
        }
    }

    /// DescribeShareGroupOffsets (API 90) for one group: the start offset of each
    /// share-partition asked (`None`: every initialized one of the group) from the
    /// persister's state summary, -1 where it has no state; unknown topics answer
    /// UNKNOWN_TOPIC_OR_PARTITION. With `lag` (v1, KIP-1226), the lag of each share-partition
    /// whose start offset and delivery-complete count are known: its partition's high
    /// watermark (`high_watermarks`) - start offset - count; a high watermark that cannot
    /// be had is that partition's error, as in Kafka's `computeShareGroupLagAndBuildResponse`.
    /// `Err` is the group's error.
    pub fn describe_share_group_offsets(
        self: &Arc<Self>,
        replicas: &Arc<ReplicaManager>,
        persister: &Arc<dyn Persister>,
        group_id: String,
        topics: Option<Vec<ShareOffsetsTopic>>,
        lag: bool,
    ) -> impl Future<Output = Result<Vec<DescribedShareTopic>, (i16, String)>> + Send + 'static
    {
        let persister = self.persister(persister);
        let me = Arc::clone(self);
        let replicas = Arc::clone(replicas);
        let image = ImageTopics(replicas.image());
        async move {
            if let Some(code) = me.not_coordinator(&group_id) {
                return Err((code.code(), code.name().to_string()));
            }
            // (name, id, partitions) to read, and the unknown topics' answers.
            let mut wanted: Vec<(String, TopicId, Vec<i32>)> = Vec::new();
            let mut out = Vec::new();
            match topics {
                None => {
                    // Kafka's `initializedShareGroupPartitions`: none for an unknown group.
                    let initialized = me.share().initialized_partitions(&group_id);
                    for t in initialized.unwrap_or_default() {
                        let name = image
                            .topic_name(t.topic_id)
                            .map(str::to_string)
                            .unwrap_or(t.topic_name);
                        wanted.push((name, t.topic_id, t.partitions.into_iter().collect()));
                    }
                }
                Some(asked) => {
                    for t in asked {
                        let partitions: Vec<i32> = t.partitions.iter().map(|(p, _)| *p).collect();
                        match image.topic_id(&t.topic_name) {
                            Some(id) => wanted.push((t.topic_name, id, partitions)),
                            None => out.push(DescribedShareTopic::from_result(unknown_topic(
                                &t.topic_name,
                                &partitions,
                            ))),
                        }
                    }
                }
            }
            let mut read = Vec::with_capacity(wanted.len());
            for (name, id, partitions) in wanted {
                let calls = partitions.iter().map(|p| {
                    let key = key(&group_id, id, *p);
                    let persister = Arc::clone(&persister);
                    async move { (*p, persister.read_summary(&key).await) }
                });
                read.push((name, id, futures::future::join_all(calls).await));
            }
            // The high watermarks of the share-partitions whose lag can be told.
            let ends: BTreeSet<(String, i32)> = if lag {
                read.iter()
                    .flat_map(|(name, _, results)| {
                        results.iter().filter_map(move |(p, r)| match r {
                            Ok(s) if s.has_lag() => Some((name.clone(), *p)),
                            _ => None,
                        })
                    })
                    .collect()
            } else {
                BTreeSet::new()
            };
            let ends = if ends.is_empty() {
                BTreeMap::new()
            } else {
                super::high_watermarks::high_watermarks(&replicas, ends).await
            };
            for (name, id, results) in read {
                let partitions = results
                    .into_iter()
                    .map(|(p, r)| {
                        let plain = |start_offset, leader_epoch, error_code, error_message| {
                            DescribedSharePartition {
                                partition: p,
                                start_offset,
                                leader_epoch,
                                lag: -1,
                                error_code,
                                error_message,
                            }
                        };
                        match r {
                            Ok(s) => match ends.get(&(name.clone(), p)) {
                                Some(Ok(hw)) => DescribedSharePartition {
                                    lag: s.lag(*hw).unwrap_or(-1),
                                    ..plain(s.start_offset, s.leader_epoch, 0, None)
                                },
                                // Kafka answers only the error (start offset and leader
                                // epoch at their defaults).
                                Some(Err(code)) => {
                                    plain(0, 0, code.code(), Some(code.name().to_string()))
                                }
                                None => plain(s.start_offset, s.leader_epoch, 0, None),
                            },
                            Err(PersistError::NotInitialized) => plain(-1, -1, 0, None),
                            Err(e) => plain(-1, -1, persist_code(&e), Some(e.to_string())),
                        }
                    })
                    .collect();
                out.push(DescribedShareTopic {
                    topic_name: name,
                    topic_id: uuid::Uuid::from_bytes(id.0),
                    partitions,
                });
            }
            Ok(out)
        }
    }

    /// AlterShareGroupOffsets (API 91): an Empty share group's share-partitions start again
    /// at the given offsets (Kafka's `alterShareGroupOffsets`): recorded initializing, then
    /// each initialized with the persister at its state epoch + 1 (read from its summary) and
    /// recorded initialized. `Err` is the request's error (GROUP_ID_NOT_FOUND,
    /// NON_EMPTY_GROUP, the coordinator's).
    pub fn alter_share_group_offsets(
        self: &Arc<Self>,
        replicas: &Arc<ReplicaManager>,
        persister: &Arc<dyn Persister>,
        group_id: String,
        topics: Vec<ShareOffsetsTopic>,
    ) -> impl Future<Output = Result<Vec<ShareTopicResult>, (i16, String)>> + Send + 'static {
        let persister = self.persister(persister);
        let me = Arc::clone(self);
        let replicas = Arc::clone(replicas);
        async move {
            let image = ImageTopics(replicas.image());
            // An unknown id becomes an Empty share group (Kafka's `getOrMaybeCreateShareGroup`).
            me.check_empty_share_group(&group_id, true)?;
            let mut out = Vec::new();
            // topic id → (name, partition → offset)
            let mut valid: BTreeMap<TopicId, (String, BTreeMap<i32, i64>)> = BTreeMap::new();
            for t in &topics {
                let Some(id) = image.topic_id(&t.topic_name) else {
                    let partitions: Vec<i32> = t.partitions.iter().map(|(p, _)| *p).collect();
                    out.push(unknown_topic(&t.topic_name, &partitions));
                    continue;
                };
                let count = image.partition_count(id).unwrap_or(0);
                let entry = valid
                    .entry(id)
                    .or_insert_with(|| (t.topic_name.clone(), BTreeMap::new()));
                for (p, offset) in &t.partitions {
                    if (0..count).contains(p) {
                        entry.1.insert(*p, *offset);
                    }
                }
            }
            let begun = {
                let wanted = valid
                    .iter()
                    .filter(|(_, (_, ps))| !ps.is_empty())
                    .map(|(id, (name, ps))| (*id, (name.clone(), ps.keys().copied().collect())))
                    .collect();
                let mut share = me.share();
                // A member may have joined since the check.
                if share.check_empty(&group_id) == Err(ErrorCode::NON_EMPTY_GROUP.code()) {
                    return Err(non_empty());
                }
                share.begin_alter(&group_id, &wanted, me.clock.now_ms())
            };
            me.append_share(&replicas, begun)
                .await
                .map_err(|c| (c.code(), c.name().to_string()))?;
            let mut done: BTreeMap<TopicId, BTreeSet<i32>> = BTreeMap::new();
            let mut failed: BTreeMap<TopicId, BTreeSet<i32>> = BTreeMap::new();
            let mut answers: BTreeMap<(TopicId, i32), (i16, Option<String>)> = BTreeMap::new();
            for (id, (_, offsets)) in &valid {
                for (p, offset) in offsets {
                    let key = key(&group_id, *id, *p);
                    let epoch = match persister.read_summary(&key).await {
                        Ok(s) => Ok(s.state_epoch.saturating_add(1)),
                        Err(PersistError::NotInitialized) => Ok(0),
                        Err(e) => Err(e),
                    };
                    let r = match epoch {
                        Ok(epoch) => persister.initialize(&key, epoch, *offset).await,
                        Err(e) => Err(e),
                    };
                    match r {
                        Ok(()) => {
                            done.entry(*id).or_default().insert(*p);
                            answers.insert((*id, *p), (0, None));
                        }
                        Err(e) => {
                            warn!(group = %group_id, partition = p, error = %e, "cannot alter the share-partition's start offset");
                            failed.entry(*id).or_default().insert(*p);
                            answers.insert((*id, *p), (persist_code(&e), Some(e.to_string())));
                        }
                    }
                }
            }
            let completed = {
                let mut share = me.share();
                let now = me.clock.now_ms();
                [(done, true), (failed, false)]
                    .into_iter()
                    .filter(|(ps, _)| !ps.is_empty())
                    .filter_map(|(ps, ok)| {
                        share.initialize_completed(&group_id, &ps, ok, &image, now)
                    })
                    .collect::<Vec<_>>()
            };
            for a in completed {
                me.append_share(&replicas, Some(a))
                    .await
                    .map_err(|c| (c.code(), c.name().to_string()))?;
            }
            for t in &topics {
                let Some(id) = image.topic_id(&t.topic_name) else {
                    continue;
                };
                out.push(ShareTopicResult {
                    topic_name: t.topic_name.clone(),
                    topic_id: uuid::Uuid::from_bytes(id.0),
                    partitions: t
                        .partitions
                        .iter()
                        .map(|(p, _)| {
                            let (code, message) = answers.get(&(id, *p)).cloned().unwrap_or((
                                ErrorCode::UNKNOWN_TOPIC_OR_PARTITION.code(),
                                Some("This server does not host this topic-partition.".to_string()),
                            ));
                            (*p, -1, -1, code, message)
                        })
                        .collect(),
                    error_code: 0,
                    error_message: None,
                });
            }
            Ok(out)
        }
    }

    /// DeleteShareGroupOffsets (API 92): an Empty share group forgets the state of the named
    /// topics (Kafka's `deleteShareGroupOffsets`): recorded deleting, deleted with the
    /// persister, then forgotten. A topic that does not exist, or of which the group has no
    /// state, answers UNKNOWN_TOPIC_OR_PARTITION.
    pub fn delete_share_group_offsets(
        self: &Arc<Self>,
        replicas: &Arc<ReplicaManager>,
        persister: &Arc<dyn Persister>,
        group_id: String,
        topic_names: Vec<String>,
    ) -> impl Future<Output = Result<Vec<ShareTopicResult>, (i16, String)>> + Send + 'static {
        let persister = self.persister(persister);
        let me = Arc::clone(self);
        let replicas = Arc::clone(replicas);
        async move {
            let image = ImageTopics(replicas.image());
            me.check_empty_share_group(&group_id, false)?;
            let mut out = Vec::new();
            let mut ids = BTreeSet::new();
            for name in &topic_names {
                match image.topic_id(name) {
                    Some(id) => {
                        ids.insert(id);
                    }
                    None => out.push(ShareTopicResult {
                        topic_name: name.clone(),
                        topic_id: uuid::Uuid::nil(),
                        partitions: Vec::new(),
                        error_code: ErrorCode::UNKNOWN_TOPIC_OR_PARTITION.code(),
                        error_message: Some(
                            "This server does not host this topic-partition.".to_string(),
                        ),
                    }),
                }
            }
            let (state, begun) = {
                let mut share = me.share();
                // A member may have joined since the check.
                if share.check_empty(&group_id) == Err(ErrorCode::NON_EMPTY_GROUP.code()) {
                    return Err(non_empty());
                }
                let state = share
                    .state_partitions(&group_id, Some(&ids), &image)
                    .unwrap_or_default();
                let with_state: BTreeSet<TopicId> = state.iter().map(|t| t.topic_id).collect();
                (state, share.begin_state_deletion(&group_id, &with_state))
            };
            me.append_share(&replicas, begun)
                .await
                .map_err(|c| (c.code(), c.name().to_string()))?;
            let mut deleted = BTreeSet::new();
            for t in &state {
                let calls = t.partitions.iter().map(|p| {
                    let key = key(&group_id, t.topic_id, *p);
                    let persister = Arc::clone(&persister);
                    async move { persister.delete(&key).await }
                });
                let failure = futures::future::join_all(calls)
                    .await
                    .into_iter()
                    .find_map(Result::err);
                let (error_code, error_message) = match failure {
                    None => {
                        deleted.insert(t.topic_id);
                        (0, None)
                    }
                    Some(e) => (persist_code(&e), Some(e.to_string())),
                };
                out.push(ShareTopicResult {
                    topic_name: t.topic_name.clone(),
                    topic_id: uuid::Uuid::from_bytes(t.topic_id.0),
                    partitions: Vec::new(),
                    error_code,
                    error_message,
                });
            }
            for id in ids
                .iter()
                .filter(|id| !state.iter().any(|t| t.topic_id == **id))
            {
                out.push(ShareTopicResult {
                    topic_name: image.topic_name(*id).unwrap_or_default().to_string(),
                    topic_id: uuid::Uuid::from_bytes(id.0),
                    partitions: Vec::new(),
                    error_code: ErrorCode::UNKNOWN_TOPIC_OR_PARTITION.code(),
                    error_message: Some("There is no offset information to delete.".to_string()),
                });
            }
            let completed = me.share().complete_state_deletion(&group_id, &deleted);
            me.append_share(&replicas, completed)
                .await
                .map_err(|c| (c.code(), c.name().to_string()))?;
            // In the request's order.
            out.sort_by_key(|t| {
                topic_names
                    .iter()
                    .position(|n| *n == t.topic_name)
                    .unwrap_or(usize::MAX)
            });
            Ok(out)
        }
    }

    /// The admin APIs' check: this broker coordinates `group_id`, a share group without
    /// members (or, when `may_create`, no group at all).
    fn check_empty_share_group(
        &self,
        group_id: &str,
        may_create: bool,
    ) -> Result<(), (i16, String)> {
        if let Some(code) = self.not_coordinator(group_id) {
            return Err((code.code(), code.name().to_string()));
        }
        let checked = self.share().check_empty(group_id);
        match checked {
            Ok(()) => Ok(()),
            Err(code)
                if code == ErrorCode::GROUP_ID_NOT_FOUND.code()
                    && may_create
                    && !self.is_other_group(group_id) =>
            {
                Ok(())
            }
            Err(code) if code == ErrorCode::GROUP_ID_NOT_FOUND.code() => {
                let message = if self.is_other_group(group_id) {
                    format!("Group {group_id} is not a share group.")
                } else {
                    format!("Group {group_id} not found.")
                };
                Err((code, message))
            }
            Err(_) => Err(non_empty()),
        }
    }
}

/// NON_EMPTY_GROUP with Kafka's message.
fn non_empty() -> (i16, String) {
    (
        ErrorCode::NON_EMPTY_GROUP.code(),
        "The group is not empty.".to_string(),
    )
}

/// A topic the image does not know: every partition UNKNOWN_TOPIC_OR_PARTITION.
fn unknown_topic(name: &str, partitions: &[i32]) -> ShareTopicResult {
    let code = ErrorCode::UNKNOWN_TOPIC_OR_PARTITION.code();
    let message = "This server does not host this topic-partition.";
    ShareTopicResult {
        topic_name: name.to_string(),
        topic_id: uuid::Uuid::nil(),
        partitions: partitions
            .iter()
            .map(|p| (*p, -1, -1, code, Some(message.to_string())))
            .collect(),
        error_code: code,
        error_message: Some(message.to_string()),
    }
}
