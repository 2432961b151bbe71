//! The streams groups (KIP-1071) part of the group runtime: StreamsGroupHeartbeat under the
//! streams core's lock, its records appended to `__consumer_offsets` before the answer, the
//! internal topics the core finds missing created through the controller (as Kafka's
//! `KafkaApis` does on MISSING_INTERNAL_TOPICS), the core's timers, and reloads after a
//! failed append.
//!
//! ```text
//!  StreamsGroupHeartbeat ─► another kind of group with the id? GROUP_ID_NOT_FOUND
//!                        ─► an empty classic group with the id: deleted first
//!                        ─► streams.heartbeat(request, image topics, now)
//!                              ─► append its records ─► wait for the ISR ─► answer
//!                              └► create_topics ─► CreateTopics to the controller, in the
//!                                 background (the members see MISSING_INTERNAL_TOPICS until
//!                                 the topics exist)
//! ```

use std::collections::HashMap;
use std::sync::{Arc, MutexGuard};
use std::time::{Duration, Instant};

use gregor_group::streams_group::{
    StreamsGroupAppend, StreamsGroupCoordinator, StreamsGroupHeartbeatRequest,
    StreamsGroupHeartbeatResponse, TopicToCreate,
};
use gregor_protocol::error::ErrorCode;
use tracing::{error, info};

use super::{append_state, reload_logged, wait_appended, GroupRuntime, ImageTopics};
use crate::replica_manager::ReplicaManager;

/// Whether streams groups (KIP-1071) are enabled: this broker's
/// `group.coordinator.rebalance.protocols` lists `streams` and the cluster's `streams.version`
/// is at least 1 (Kafka's `KafkaApis.isStreamsGroupProtocolEnabled`); the streams group APIs
/// answer UNSUPPORTED_VERSION otherwise.
pub fn streams_groups_enabled(replicas: &ReplicaManager) -> bool {
    replicas.config().streams_protocol_enabled
        && replicas
            .image()
            .feature_level(gregor_metadata::STREAMS_VERSION_FEATURE)
            .unwrap_or(0)
            >= 1
}

/// Internal topic creations in flight or recently asked for, and recent failures, by name: a
/// heartbeat does not ask again within two heartbeat intervals, and a failure is reported in
/// the heartbeats' MISSING_INTERNAL_TOPICS status for as long (Kafka's
/// `AutoTopicCreationManager` caches).
#[derive(Debug, Default)]
pub(crate) struct TopicCreations(std::sync::Mutex<Creations>);

#[derive(Debug, Default)]
pub(crate) struct Creations {
    /// Name → when its creation was asked for.
    asked: HashMap<String, Instant>,
    /// Name → why its creation failed, and when.
    failed: HashMap<String, (String, Instant)>,
}

impl TopicCreations {
    /// The topics of `wanted` neither asked for nor failed within `ttl`, marked as asked now;
    /// and the failures within `ttl` of the others, sorted by name.
    fn claim(
        &self,
        wanted: Vec<TopicToCreate>,
        ttl: Duration,
    ) -> (Vec<TopicToCreate>, Vec<(String, String)>) {
        let mut c = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        c.asked.retain(|_, at| now.duration_since(*at) < ttl);
        c.failed.retain(|_, (_, at)| now.duration_since(*at) < ttl);
        let mut failures: Vec<(String, String)> = wanted
            .iter()
            .filter_map(|t| {
                c.failed
                    .get(&t.name)
                    .map(|(m, _)| (t.name.clone(), m.clone()))
            })
            .collect();
        failures.sort();
        let claimed = wanted
            .into_iter()
            .filter(|t| {
                if c.asked.contains_key(&t.name) || c.failed.contains_key(&t.name) {
                    return false;
                }
                c.asked.insert(t.name.clone(), now);
                true
            })
            .collect();
        (claimed, failures)
    }

    /// Records that the creation of `name` failed with `message`.
    pub(crate) fn failed(&self, name: &str, message: String) {
        let mut c = self.0.lock().unwrap_or_else(|p| p.into_inner());
        c.failed.insert(name.to_string(), (message, Instant::now()));
    }
}

/// What a StreamsGroupHeartbeat comes to: the core's answer, the internal topics to create
/// now, and the recent creation failures of the ones it still misses (name, why).
#[derive(Debug)]
pub struct StreamsHeartbeatAnswer {
    pub response: StreamsGroupHeartbeatResponse,
    pub create: Vec<TopicToCreate>,
    pub failures: Vec<(String, String)>,
}

impl StreamsHeartbeatAnswer {
    fn error(response: StreamsGroupHeartbeatResponse) -> StreamsHeartbeatAnswer {
        StreamsHeartbeatAnswer {
            response,
            create: Vec::new(),
            failures: Vec::new(),
        }
    }
}

impl GroupRuntime {
    /// The streams group (KIP-1071) core, locked. Lock order: `core`, `consumer`, `share`,
    /// then this one.
    pub fn streams(&self) -> MutexGuard<'_, StreamsGroupCoordinator> {
        self.streams.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// True when `group_id` is a streams group here.
    pub fn is_streams_group(&self, group_id: &str) -> bool {
        self.streams().contains_group(group_id)
    }

    /// `Some(true)` when `group_id` is a streams group without members, `Some(false)` when
    /// it has members, `None` when it is not a streams group here.
    pub fn streams_group_is_empty(&self, group_id: &str) -> Option<bool> {
        self.streams()
            .group(group_id)
            .map(|g| g.members().is_empty())
    }

    /// Deletes the empty streams group `group_id` (a classic member joins with its id, and
    /// Kafka converts the group); its tombstones are appended in the background. Its
    /// committed offsets stay, in the classic core.
    pub fn delete_empty_streams_group(
        self: &Arc<Self>,
        replicas: &Arc<ReplicaManager>,
        group_id: &str,
    ) {
        let mut streams = self.streams();
        if let Ok(a) = streams.delete_group(group_id) {
            info!(group = %group_id, "deleted the empty streams group: a classic member joins");
            self.write_streams_appends(replicas, vec![a]);
        }
        drop(streams);
    }

    /// StreamsGroupHeartbeat (API 88): the streams core decides under its lock, its records
    /// are appended in the same critical section, and the answer waits until the ISR has
    /// them; the internal topics it found missing are returned for the caller to create. If
    /// the records cannot be written the member gets COORDINATOR_NOT_AVAILABLE and the
    /// partition's streams groups are reloaded from the log.
    pub fn streams_group_heartbeat(
        self: &Arc<Self>,
        replicas: &Arc<ReplicaManager>,
        req: StreamsGroupHeartbeatRequest,
    ) -> impl std::future::Future<Output = StreamsHeartbeatAnswer> + Send + 'static {
        let decided = self.streams_heartbeat_now(replicas, &req);
        let me = Arc::clone(self);
        let replicas = Arc::clone(replicas);
        async move {
            let (response, wait, (create, failures)) = match decided {
                Ok(decided) => decided,
                Err(response) => return StreamsHeartbeatAnswer::error(*response),
            };
            let answer = StreamsHeartbeatAnswer {
                response,
                create,
                failures,
            };
            let Some((partition, appended)) = wait else {
                return answer;
            };
            match wait_appended(&replicas, appended).await {
                Ok(()) => answer,
                Err(code) => {
                    error!(partition, error = %code, group = %req.group_id, "cannot write streams group state; reloading its partition");
                    me.reload_streams_partition(&replicas, partition).await;
                    StreamsHeartbeatAnswer::error(StreamsGroupHeartbeatResponse::error(
                        ErrorCode::COORDINATOR_NOT_AVAILABLE.code(),
                        "The coordinator is not available.",
                    ))
                }
            }
        }
    }

    /// The synchronous part of a heartbeat: the response, the append to wait for, and the
    /// internal topics to create.
    #[allow(clippy::type_complexity)]
    fn streams_heartbeat_now(
        self: &Arc<Self>,
        replicas: &Arc<ReplicaManager>,
        req: &StreamsGroupHeartbeatRequest,
    ) -> Result<
        (
            StreamsGroupHeartbeatResponse,
            Option<(i32, Result<crate::purgatory::ProduceWait, ErrorCode>)>,
            (Vec<TopicToCreate>, Vec<(String, String)>),
        ),
        Box<StreamsGroupHeartbeatResponse>,
    > {
        if let Some(code) = self.not_coordinator(&req.group_id) {
            return Err(Box::new(StreamsGroupHeartbeatResponse {
                error_code: code.code(),
                status: Some(Vec::new()),
                ..StreamsGroupHeartbeatResponse::default()
            }));
        }
        let not_streams = || {
            Box::new(StreamsGroupHeartbeatResponse::error(
                gregor_group::code::GROUP_ID_NOT_FOUND,
                format!("Group {} is not a streams group.", req.group_id),
            ))
        };
        let core = self.core();
        let consumer = self.consumer();
        if consumer.contains_group(&req.group_id) {
            return Err(not_streams());
        }
        drop(consumer);
        if self.share().contains_group(&req.group_id) {
            return Err(not_streams());
        }
        let mut streams = self.streams();
        let topics = ImageTopics(replicas.image());
        let now = self.clock.now_ms();
        if !streams.contains_group(&req.group_id) {
            // A classic group with members keeps its id; an empty one (no members, maybe
            // offsets) is replaced on a join, as Kafka converts it.
            if let Some(state) = core.group_state(&req.group_id) {
                let empty = matches!(state, gregor_group::GroupState::Empty);
                if !empty || req.member_epoch != 0 {
                    return Err(not_streams());
                }
            }
        }
        streams.set_group_overrides(
            &req.group_id,
            crate::group_configs::streams_overrides_of(
                &topics
                    .0
                    .configs()
                    .group_configs(&req.group_id)
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
        );
        let result = streams.heartbeat(req, &topics, now);
        let wait = result
            .append
            .map(|a| (a.partition, append_state(replicas, a.partition, &a.records)));
        let ttl = Duration::from_millis(
            2 * u64::try_from(streams.heartbeat_interval_ms(&req.group_id)).unwrap_or(5_000),
        );
        drop(streams);
        drop(core);
        let create = self.streams_creations.claim(result.create_topics, ttl);
        self.wake.notify_one();
        Ok((result.response, wait, create))
    }

    /// Records that a streams group's internal topic could not be created: the heartbeats
    /// that ask for it say so for two heartbeat intervals.
    pub fn streams_topic_creation_failed(&self, name: &str, message: String) {
        self.streams_creations.failed(name, message);
    }

    /// Appends what the streams core's `tick` returned (fenced members, delayed
    /// assignments), reloading a partition whose records could not be written.
    pub(super) fn write_streams_appends(
        self: &Arc<Self>,
        replicas: &Arc<ReplicaManager>,
        appends: Vec<StreamsGroupAppend>,
    ) {
        for a in appends {
            let appended = append_state(replicas, a.partition, &a.records);
            let me = Arc::clone(self);
            let replicas = Arc::clone(replicas);
            tokio::spawn(async move {
                if let Err(code) = wait_appended(&replicas, appended).await {
                    error!(partition = a.partition, error = %code, "cannot write streams group state; reloading its partition");
                    me.reload_streams_partition(&replicas, a.partition).await;
                }
            });
        }
    }

    /// The streams core's timers, from the ticker.
    pub(super) fn tick_streams_groups(self: &Arc<Self>, replicas: &Arc<ReplicaManager>, now: i64) {
        let mut streams = self.streams();
        let appends = streams.tick(now);
        // Appended under the streams core's lock, like a heartbeat's records.
        self.write_streams_appends(replicas, appends);
        drop(streams);
    }

    /// Replaces the streams groups of `partition` with what its log holds (after an append
    /// failed: memory may be ahead of the log). Nothing if this broker no longer owns it.
    pub async fn reload_streams_partition(
        self: &Arc<Self>,
        replicas: &Arc<ReplicaManager>,
        partition: i32,
    ) {
        let me = Arc::clone(self);
        let replicas = Arc::clone(replicas);
        reload_logged(partition, "streams", move || {
            let mut streams = me.streams();
            streams.unload_partition(partition);
            let Some(split) = me.owned_entries(&replicas, partition)? else {
                return Ok(0);
            };
            Ok(streams.load_partition(partition, split.streams, me.clock.now_ms())?)
        })
        .await;
    }
}
