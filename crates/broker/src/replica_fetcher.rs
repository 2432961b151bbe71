//! The replica fetcher (Kafka's `ReplicaFetcherManager` and `ReplicaFetcherThread`): this
//! broker's follower replicas pull their leaders' logs with Fetch, one task per source
//! (leader) broker, each multiplexing every partition this broker follows from it.
//!
//! ```text
//!  applied image ─► manager task: partitions grouped by leader ─► one fetcher task per leader
//!                   (added / removed / new leader epoch)              │
//!   ┌──────────────────────────────────────────────────────────────────┘
//!   ▼  loop:
//!   wait_durable(log end) of every partition (default flush policy: fsync before reporting)
//!   Fetch v15 ─► leader { replica_state = (node.id, broker epoch), topics by id, per
//!                         partition: current_leader_epoch, fetch_offset = log end,
//!                         last_fetched_epoch, log_start_offset }
//!   ◄─ per partition:
//!        records ─────────► Partition::append_as_follower (log, core, follower HW =
//!                           min(leader HW, log end), log start up to the leader's)
//!        diverging_epoch ─► Partition::truncate_as_follower (to the divergence point), fetch on
//!        OFFSET_OUT_OF_RANGE ─► truncate to the leader's log start (our log ends below it) or
//!                           to the leader's high watermark
//!        NOT_LEADER_OR_FOLLOWER / FENCED_LEADER_EPOCH / UNKNOWN_LEADER_EPOCH / others ─►
//!                           the partition waits `replica.fetch.backoff.ms` or until the image
//!                           gives it another leader epoch
//!   connection lost ─► reconnect after `replica.fetch.backoff.ms`
//! ```
//!
//! Durability: under the default flush policy (`FlushPolicy::OnAcksAll`) a follower fsyncs what
//! it appended (the partition's group commit, [`Partition::wait_durable`]) before its next
//! fetch reports the new log end to the leader. The leader's high watermark moves with those
//! reported offsets, so what acks=all acknowledged is fsynced on every ISR member. Under
//! Kafka's interval flush policy the follower reports at once, as Kafka does.
//!
//! The leader is dialled at its registered `PLAINTEXT` endpoint from the metadata image, or at
//! `peer.address.overrides` for its id when set (test harnesses route each link through a
//! proxy that way). Requests go through gregor-client's `Connection` (framing, correlation).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use gregor_client::{ClientConfig, Connection};
use gregor_protocol::error::ErrorCode;
use gregor_protocol::messages::fetch_request::{FetchPartition, FetchTopic, ReplicaState};
use gregor_protocol::messages::fetch_response::PartitionData;
use gregor_protocol::messages::{BrokerId as KafkaBrokerId, FetchRequest, FetchResponse};
use gregor_replication::BrokerId;
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::config::{BrokerConfig, FlushPolicy};
use crate::partition::{tp_name, Partition};
use crate::replica_manager::ReplicaManager;

/// Fetch version the fetcher speaks: v15, topics by id (v13) and the follower's broker epoch in
/// `replica_state` (KIP-903: the leader names it in ISR expansions, so the controller refuses an
/// expansion decided on an earlier incarnation of this broker).
const FETCH_VERSION: i16 = 15;
/// How long one fetch may take beyond its long poll (Kafka's `replica.socket.timeout.ms`).
const SOCKET_TIMEOUT: Duration = Duration::from_secs(30);
/// Retry delay after UNKNOWN_LEADER_EPOCH: the leader has not applied the image that made it
/// leader yet, which takes milliseconds, so the full backoff would only slow a failover.
const LEADER_CATCH_UP_BACKOFF: Duration = Duration::from_millis(50);

/// A partition this broker follows, and the leader epoch it follows in.
#[derive(Debug, Clone)]
pub struct FollowedPartition {
    /// The partition.
    pub partition: Arc<Partition>,
    /// The leader epoch of the registration that made it follow the fetcher's source.
    pub leader_epoch: i32,
}

/// One fetcher task and the partitions it fetches; the task stops when this is dropped.
struct Fetcher {
    partitions: watch::Sender<Vec<FollowedPartition>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Fetcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The partitions this broker follows, by leader (what the manager hands the fetchers).
pub fn follower_assignment(
    replicas: &ReplicaManager,
    local: BrokerId,
) -> HashMap<BrokerId, Vec<FollowedPartition>> {
    let mut out: HashMap<BrokerId, Vec<FollowedPartition>> = HashMap::new();
    for p in replicas.partitions() {
        if p.is_leader() {
            continue;
        }
        let Some(leader) = p.leader() else { continue };
        if leader < 0 || leader == local {
            continue;
        }
        let leader_epoch = p.leader_epoch();
        out.entry(leader).or_default().push(FollowedPartition {
            partition: p,
            leader_epoch,
        });
    }
    for v in out.values_mut() {
        v.sort_by(|a, b| {
            (&a.partition.tp.topic, a.partition.tp.partition)
                .cmp(&(&b.partition.tp.topic, b.partition.tp.partition))
        });
    }
    out
}

/// Whether two assignments name the same partitions (the same `Partition`s) in the same epochs.
fn same_assignment(a: &[FollowedPartition], b: &[FollowedPartition]) -> bool {
    a.len() == b.len()
        && a.iter().zip(b).all(|(x, y)| {
            Arc::ptr_eq(&x.partition, &y.partition) && x.leader_epoch == y.leader_epoch
        })
}

/// The manager (Kafka's `ReplicaFetcherManager`): after every applied metadata image, starts,
/// updates and stops the fetcher tasks so that each partition this broker follows is fetched
/// from its leader. Runs until the image channel closes (or the task is aborted).
pub async fn run_replica_fetcher_manager(replicas: Arc<ReplicaManager>, config: Arc<BrokerConfig>) {
    let mut images = replicas.watch_image();
    let mut fetchers: HashMap<BrokerId, Fetcher> = HashMap::new();
    loop {
        let mut assignment = follower_assignment(&replicas, config.node_id);
        fetchers.retain(|leader, _| assignment.contains_key(leader));
        for (leader, parts) in assignment.drain() {
            match fetchers.get(&leader) {
                Some(f) => {
                    f.partitions.send_if_modified(|current| {
                        if same_assignment(current, &parts) {
                            false
                        } else {
                            *current = parts;
                            true
                        }
                    });
                }
                None => {
                    info!(
                        leader,
                        partitions = parts.len(),
                        "starting the replica fetcher"
                    );
                    let (tx, rx) = watch::channel(parts);
                    let task = tokio::spawn(run_fetcher(
                        leader,
                        Arc::clone(&replicas),
                        Arc::clone(&config),
                        rx,
                    ));
                    fetchers.insert(
                        leader,
                        Fetcher {
                            partitions: tx,
                            task,
                        },
                    );
                }
            }
        }
        if images.changed().await.is_err() {
            break;
        }
    }
}

/// Where to dial broker `id` for replication.
pub(crate) fn leader_address(
    replicas: &ReplicaManager,
    config: &BrokerConfig,
    id: BrokerId,
) -> Option<String> {
    if let Some(o) = config
        .cluster
        .peer_address_overrides
        .iter()
        .find(|v| v.id == id)
    {
        return Some(format!("{}:{}", o.host, o.port));
    }
    let image = replicas.image();
    let broker = image.cluster().broker(id)?;
    let e = broker.endpoint(&config.inter_broker_listener_name())?;
    Some(format!("{}:{}", e.host, e.port))
}

/// A partition's key in one fetcher.
type Key = (String, i32);

fn key(p: &Partition) -> Key {
    (p.tp.topic.clone(), p.tp.partition)
}

/// What a fetcher remembers between fetches.
struct FetcherState {
    source: BrokerId,
    replicas: Arc<ReplicaManager>,
    config: Arc<BrokerConfig>,
    conn: Option<Connection>,
    /// Partitions held back after an error: until when, and in which leader epoch (a new
    /// epoch from the image lifts the delay at once).
    delayed: HashMap<Key, (i32, Instant)>,
    /// Consecutive connection failures (logged on the first, then every 30th).
    failures: u64,
}

/// One fetcher task (Kafka's `ReplicaFetcherThread`): fetches `partitions` from `source` until
/// aborted.
async fn run_fetcher(
    source: BrokerId,
    replicas: Arc<ReplicaManager>,
    config: Arc<BrokerConfig>,
    mut partitions: watch::Receiver<Vec<FollowedPartition>>,
) {
    let mut state = FetcherState {
        source,
        replicas,
        config,
        conn: None,
        delayed: HashMap::new(),
        failures: 0,
    };
    let backoff = Duration::from_millis(state.config.cluster.replica_fetch_backoff_ms.max(1));
    loop {
        let followed = partitions.borrow_and_update().clone();
        let now = Instant::now();
        state.delayed.retain(|k, (epoch, until)| {
            *until > now
                && followed
                    .iter()
                    .any(|f| key(&f.partition) == *k && f.leader_epoch == *epoch)
        });
        let ready: Vec<FollowedPartition> = followed
            .iter()
            .filter(|f| !state.delayed.contains_key(&key(&f.partition)))
            .cloned()
            .collect();
        if ready.is_empty() {
            let wake = state
                .delayed
                .values()
                .map(|(_, until)| *until)
                .min()
                .unwrap_or_else(|| now + Duration::from_secs(3600));
            tokio::select! {
                changed = partitions.changed() => if changed.is_err() { return },
                _ = tokio::time::sleep_until(wake) => {}
            }
            continue;
        }
        match state.fetch(&ready).await {
            Ok(()) => state.failures = 0,
            Err(e) => {
                state.conn = None;
                if state.failures.is_multiple_of(30) {
                    warn!(leader = source, error = %e, "replica fetch failed; retrying");
                } else {
                    debug!(leader = source, error = %e, "replica fetch failed");
                }
                state.failures += 1;
                tokio::select! {
                    changed = partitions.changed() => if changed.is_err() { return },
                    _ = tokio::time::sleep(backoff) => {}
                }
            }
        }
    }
}

impl FetcherState {
    fn client_config(&self) -> ClientConfig {
        let c = &self.config.cluster;
        ClientConfig {
            client_id: format!("gregor-replica-fetcher-{}", self.config.node_id),
            connect_timeout: Duration::from_secs(5),
            request_timeout: SOCKET_TIMEOUT,
            // A response may exceed its max bytes by one batch (KIP-74).
            max_response_bytes: usize::try_from(c.replica_fetch_response_max_bytes)
                .unwrap_or(0)
                .saturating_add(self.config.message_max_bytes.max(64 << 20))
                .saturating_add(1 << 20),
            security: self.config.inter_broker_security.clone(),
        }
    }

    /// One round: connect if needed, make what was appended durable, fetch, apply the answer.
    async fn fetch(&mut self, ready: &[FollowedPartition]) -> Result<(), String> {
        if self.conn.as_ref().is_none_or(|c| c.is_broken()) {
            let addr = leader_address(&self.replicas, &self.config, self.source)
                .ok_or_else(|| format!("broker {} has no known endpoint", self.source))?;
            let conn = Connection::connect(&addr, &self.client_config())
                .await
                .map_err(|e| e.to_string())?;
            debug!(leader = self.source, %addr, "replica fetcher connected");
            self.conn = Some(conn);
        }
        if matches!(self.config.flush, FlushPolicy::OnAcksAll) {
            for f in ready {
                let end = f.partition.log_end_offset();
                if f.partition.durable_offset() < end {
                    if let Err(code) = f.partition.wait_durable(end).await {
                        warn!(partition = %tp_name(&f.partition.tp), error = %code,
                            "cannot fsync the follower's log");
                        self.delay(f, self.backoff());
                    }
                }
            }
        }
        let ready: Vec<&FollowedPartition> = ready
            .iter()
            .filter(|f| !self.delayed.contains_key(&key(&f.partition)))
            .collect();
        let request = self.request(&ready)?;
        let c = &self.config.cluster;
        let limit = SOCKET_TIMEOUT
            + Duration::from_millis(u64::try_from(c.replica_fetch_wait_max_ms).unwrap_or(0));
        let Some(conn) = self.conn.as_mut() else {
            return Err("not connected".to_string());
        };
        let response: FetchResponse = conn
            .send_at_with_timeout(&request, FETCH_VERSION, limit)
            .await
            .map_err(|e| e.to_string())?;
        if response.error_code != 0 {
            return Err(format!(
                "fetch answered with error {}",
                ErrorCode(response.error_code)
            ));
        }
        let by_key: HashMap<Key, &FollowedPartition> =
            ready.iter().map(|f| (key(&f.partition), *f)).collect();
        // v13+ names topics by id only.
        let image = self.replicas.image();
        let names: HashMap<uuid::Uuid, String> = request
            .topics
            .iter()
            .filter_map(|t| {
                let topic = image.topics().topic(t.topic_id)?;
                Some((t.topic_id, topic.name.clone()))
            })
            .collect();
        for topic in response.responses {
            let Some(name) = names.get(&topic.topic_id).cloned() else {
                continue;
            };
            for p in topic.partitions {
                let Some(f) = by_key.get(&(name.clone(), p.partition_index)) else {
                    continue;
                };
                self.apply(f, p);
            }
        }
        Ok(())
    }

    fn backoff(&self) -> Duration {
        Duration::from_millis(self.config.cluster.replica_fetch_backoff_ms.max(1))
    }

    fn delay(&mut self, f: &FollowedPartition, d: Duration) {
        self.delayed
            .insert(key(&f.partition), (f.leader_epoch, Instant::now() + d));
    }

    /// The Fetch for `ready`, each partition at its log end (Kafka's `buildFetch`).
    fn request(&self, ready: &[&FollowedPartition]) -> Result<FetchRequest, String> {
        let c = &self.config.cluster;
        let image = self.replicas.image();
        let mut topics: Vec<FetchTopic> = Vec::new();
        for f in ready {
            let p = &f.partition;
            // A topic just deleted: the next image stops this partition's fetching.
            let Some(topic_id) = image.topics().topic_id(&p.tp.topic) else {
                continue;
            };
            let fetch = FetchPartition::default()
                .with_partition(p.tp.partition)
                .with_current_leader_epoch(f.leader_epoch)
                .with_fetch_offset(p.log_end_offset())
                .with_last_fetched_epoch(p.latest_log_epoch().map_err(|e| e.to_string())?)
                .with_log_start_offset(p.log_start_offset().map_err(|e| e.to_string())?)
                .with_partition_max_bytes(c.replica_fetch_max_bytes);
            match topics.last_mut() {
                Some(t) if t.topic_id == topic_id => t.partitions.push(fetch),
                // From v13 a topic is named by its id only.
                _ => topics.push(
                    FetchTopic::default()
                        .with_topic_id(topic_id)
                        .with_partitions(vec![fetch]),
                ),
            }
        }
        let broker_epoch = image
            .cluster()
            .broker(self.config.node_id)
            .map_or(-1, |b| b.epoch);
        // From v15 the replica id is only in `replica_state` (the old field stays default).
        Ok(FetchRequest::default()
            .with_replica_state(
                ReplicaState::default()
                    .with_replica_id(KafkaBrokerId(self.config.node_id))
                    .with_replica_epoch(broker_epoch),
            )
            .with_max_wait_ms(c.replica_fetch_wait_max_ms)
            .with_min_bytes(1)
            .with_max_bytes(c.replica_fetch_response_max_bytes)
            .with_isolation_level(0)
            .with_session_id(0)
            .with_session_epoch(-1)
            .with_topics(topics))
    }

    /// Applies one partition's answer (Kafka's `processFetchRequest` per partition).
    fn apply(&mut self, f: &FollowedPartition, p: PartitionData) {
        let part = &f.partition;
        let name = tp_name(&part.tp);
        let code = ErrorCode(p.error_code);
        if code == ErrorCode::NONE {
            let d = &p.diverging_epoch;
            if d.epoch >= 0 || d.end_offset >= 0 {
                let truncated = part
                    .follower_truncation_offset(d.epoch, d.end_offset)
                    .and_then(|offset| {
                        part.truncate_as_follower(self.source, f.leader_epoch, offset, false)
                    });
                match truncated {
                    Ok(end) => info!(partition = %name, leader = self.source,
                        diverging_epoch = d.epoch, epoch_end_offset = d.end_offset, log_end = end,
                        "the log diverged from the leader's: truncated"),
                    Err(e) => {
                        warn!(partition = %name, error = %e, "cannot truncate to the divergence point");
                        self.delay(f, self.backoff());
                    }
                }
                return;
            }
            let records = p.records.unwrap_or_default();
            if let Err(e) = part.append_as_follower(
                self.source,
                f.leader_epoch,
                &records,
                p.high_watermark,
                p.log_start_offset,
            ) {
                if e != ErrorCode::FENCED_LEADER_EPOCH {
                    warn!(partition = %name, error = %e, "cannot append the leader's records");
                }
                self.delay(f, self.backoff());
            } else {
                part.stats.replicated(records.len() as u64);
            }
            return;
        }
        if code == ErrorCode::OFFSET_OUT_OF_RANGE {
            // Kafka's rule: a log that ends below the leader's log start restarts at it;
            // otherwise this log is ahead of what the leader can place: cut it back to the
            // leader's high watermark (everything below it is on every ISR member), or restart
            // at the leader's log start when that would change nothing.
            let end = part.log_end_offset();
            let (offset, start_at) = if p.log_start_offset > end {
                (p.log_start_offset, true)
            } else if p.high_watermark >= 0 && p.high_watermark < end {
                (p.high_watermark, false)
            } else {
                (p.log_start_offset.max(0), true)
            };
            match part.truncate_as_follower(self.source, f.leader_epoch, offset, start_at) {
                Ok(new_end) => info!(partition = %name, leader = self.source,
                    leader_log_start = p.log_start_offset, leader_high_watermark = p.high_watermark,
                    log_end = new_end, "fetch offset out of range on the leader: truncated"),
                Err(e) => {
                    warn!(partition = %name, error = %e, "cannot truncate after OFFSET_OUT_OF_RANGE");
                    self.delay(f, self.backoff());
                }
            }
            return;
        }
        debug!(partition = %name, leader = self.source, error = %code, "replica fetch refused");
        let wait = if code == ErrorCode::UNKNOWN_LEADER_EPOCH {
            LEADER_CATCH_UP_BACKOFF
        } else {
            self.backoff()
        };
        self.delay(f, wait);
    }
}
