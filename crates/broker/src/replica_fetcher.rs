//! The replica fetcher (Kafka's `ReplicaFetcherManager` and `ReplicaFetcherThread`): this
//! broker's follower replicas pull their leaders' logs with Fetch, `num.replica.fetchers` tasks
//! per source (leader) broker (one by default), each with its own connection and fetch session,
//! multiplexing the partitions this broker follows from it that hash to it (Kafka's
//! `getFetcherId`: `abs(31 * topic.hashCode() + partition) % num.replica.fetchers`).
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
//! Each fetcher keeps a fetch session (KIP-227) with its leader, as Kafka's followers do
//! ([`SessionClient`], the follower's side of Kafka's `FetchSessionHandler`): the first request
//! is full (epoch 0) and opens it; the next ones name only the partitions whose fetch position
//! changed (and forget the ones no longer fetched), and the leader answers only the partitions
//! with records or new offsets; a partition left out of an answer has nothing new. A session
//! error, a failed request or a leader that made no session starts over with a full request.
//!
//! Durability: under the default flush policy (`FlushPolicy::OnAcksAll`) a follower fsyncs what
//! it appended (the partition's group commit, [`Partition::wait_durable`]) before its next
//! fetch reports the new log end to the leader. The leader's high watermark moves with those
//! reported offsets, so what acks=all acknowledged is fsynced on every ISR member. A topic
//! under Kafka's interval flush policy (its `flush.messages` / `flush.ms`, or the broker's
//! `log.flush.interval.*`) is reported at once, as Kafka does, and flushed at the count or
//! by the log flusher.
//!
//! The leader is dialled at its registered `PLAINTEXT` endpoint from the metadata image, or at
//! `peer.address.overrides` for its id when set (test harnesses route each link through a
//! proxy that way). Requests go through gregor-client's `Connection` (framing, correlation).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use gregor_client::{ClientConfig, Connection};
use gregor_protocol::error::ErrorCode;
use gregor_protocol::messages::fetch_request::{
    FetchPartition, FetchTopic, ForgottenTopic, ReplicaState,
};
use gregor_protocol::messages::fetch_response::PartitionData;
use gregor_protocol::messages::{BrokerId as KafkaBrokerId, FetchRequest, FetchResponse};
use gregor_replication::BrokerId;
use tokio::sync::watch;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use crate::config::BrokerConfig;
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

/// Java's `String.hashCode` of `s` (UTF-16 code units).
fn java_string_hash(s: &str) -> i32 {
    s.encode_utf16()
        .fold(0i32, |h, c| h.wrapping_mul(31).wrapping_add(i32::from(c)))
}

/// Which of `fetchers` fetchers of its leader fetches `topic`-`partition` (Kafka's
/// `AbstractFetcherManager.getFetcherId`, so a partition goes to the same fetcher index as on
/// Kafka).
pub fn fetcher_id(topic: &str, partition: i32, fetchers: usize) -> usize {
    let hash = java_string_hash(topic)
        .wrapping_mul(31)
        .wrapping_add(partition);
    // Kafka's `Utils.abs`: i32::MIN maps to 0, not to itself.
    let abs = if hash == i32::MIN { 0 } else { hash.abs() };
    abs as usize % fetchers.max(1)
}

/// The partitions this broker follows, by leader and fetcher (what the manager hands the
/// fetchers): `fetchers` fetchers per leader.
pub fn follower_assignment(
    replicas: &ReplicaManager,
    local: BrokerId,
    fetchers: usize,
) -> HashMap<(BrokerId, usize), Vec<FollowedPartition>> {
    let mut out: HashMap<(BrokerId, usize), Vec<FollowedPartition>> = HashMap::new();
    for p in replicas.partitions() {
        // A replica in an offline log directory fetches nothing: it cannot be written.
        if p.is_leader() || p.is_offline() {
            continue;
        }
        let Some(leader) = p.leader() else { continue };
        if leader < 0 || leader == local {
            continue;
        }
        let leader_epoch = p.leader_epoch();
        let id = fetcher_id(&p.tp.topic, p.tp.partition, fetchers);
        out.entry((leader, id))
            .or_default()
            .push(FollowedPartition {
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
///
/// `num.replica.fetchers` is read from the configuration in effect at each image (a dynamic
/// broker config, as Kafka's): a new count moves partitions between fetchers. A partition may
/// then be fetched by its old and its new fetcher for a moment; the log refuses an append that
/// does not continue it (the second one backs off), so nothing is written twice.
pub async fn run_replica_fetcher_manager(replicas: Arc<ReplicaManager>, config: Arc<BrokerConfig>) {
    let mut images = replicas.watch_image();
    let mut fetchers: HashMap<(BrokerId, usize), Fetcher> = HashMap::new();
    let mut last_count = config.num_replica_fetchers.max(1);
    loop {
        let count = replicas.effective_config().num_replica_fetchers.max(1);
        if count != last_count {
            info!(
                from = last_count,
                to = count,
                "num.replica.fetchers changed: moving partitions between fetchers"
            );
            last_count = count;
        }
        let mut assignment = follower_assignment(&replicas, config.node_id, count);
        fetchers.retain(|key, _| assignment.contains_key(key));
        for ((leader, id), parts) in assignment.drain() {
            match fetchers.get(&(leader, id)) {
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
                        fetcher = id,
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
                        (leader, id),
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
    /// The fetch session with the leader.
    session: SessionClient,
}

/// A partition as the fetcher last asked for it: its topic id and the request's entry.
type Sent = (uuid::Uuid, FetchPartition);

/// The follower's side of a fetch session (KIP-227; Kafka's `FetchSessionHandler`): what the
/// leader's session holds, and the id and epoch of the next request.
#[derive(Debug, Default)]
struct SessionClient {
    /// The session's id (0: none).
    id: i32,
    /// The next request's epoch: 0 for a full request (which closes `id`, if set, and asks
    /// for a new session).
    epoch: i32,
    /// The leader's session: every partition with what it was last asked.
    sent: HashMap<Key, Sent>,
}

/// One request's session part, built by [`SessionClient::build`].
#[derive(Debug)]
struct SessionRequest {
    id: i32,
    epoch: i32,
    topics: Vec<FetchTopic>,
    forgotten: Vec<ForgottenTopic>,
    /// Every partition the fetcher wants, as the leader's session holds them once this request
    /// is in.
    wanted: HashMap<Key, Sent>,
}

impl SessionClient {
    /// The request for `wanted` (in order): all of it when full, else the partitions new or
    /// changed since the last request and the ones to forget.
    fn build(&self, wanted: Vec<(Key, Sent)>) -> SessionRequest {
        let full = self.epoch == 0;
        let mut topics: Vec<FetchTopic> = Vec::new();
        for (k, (topic_id, fetch)) in &wanted {
            if !full
                && self
                    .sent
                    .get(k)
                    .is_some_and(|(id, sent)| id == topic_id && sent == fetch)
            {
                continue;
            }
            match topics.last_mut() {
                Some(t) if t.topic_id == *topic_id => t.partitions.push(fetch.clone()),
                // From v13 a topic is named by its id only.
                _ => topics.push(
                    FetchTopic::default()
                        .with_topic_id(*topic_id)
                        .with_partitions(vec![fetch.clone()]),
                ),
            }
        }
        let wanted: HashMap<Key, Sent> = wanted.into_iter().collect();
        let mut forgotten: Vec<ForgottenTopic> = Vec::new();
        if !full {
            let mut gone: Vec<(&Key, &Sent)> = self
                .sent
                .iter()
                .filter(|(k, _)| !wanted.contains_key(*k))
                .collect();
            gone.sort_by(|a, b| a.0.cmp(b.0));
            for (k, (topic_id, _)) in gone {
                match forgotten.iter_mut().find(|t| t.topic_id == *topic_id) {
                    Some(t) => t.partitions.push(k.1),
                    None => forgotten.push(
                        ForgottenTopic::default()
                            .with_topic_id(*topic_id)
                            .with_partitions(vec![k.1]),
                    ),
                }
            }
        }
        SessionRequest {
            id: self.id,
            epoch: self.epoch,
            topics,
            forgotten,
            wanted,
        }
    }

    /// After the answer to `request`: whether its partitions are to be applied (false after a
    /// session error, when the next request starts over with a full one).
    fn answered(&mut self, request: SessionRequest, error_code: i16, session_id: i32) -> bool {
        if error_code == ErrorCode::FETCH_SESSION_ID_NOT_FOUND.code() {
            *self = SessionClient::default();
            return false;
        }
        if error_code != 0 {
            // INVALID_FETCH_SESSION_EPOCH, FETCH_SESSION_TOPIC_ID_ERROR, or another error:
            // close the session and ask for a new one.
            self.failed();
            return false;
        }
        if session_id == crate::fetch_session::INVALID_SESSION_ID {
            // No session was made (a full request), or the leader closed it: full requests
            // from now on, each asking for a session.
            *self = SessionClient::default();
        } else {
            self.id = session_id;
            self.epoch = if request.epoch == 0 {
                1
            } else {
                crate::fetch_session::next_epoch(request.epoch)
            };
            self.sent = request.wanted;
        }
        true
    }

    /// The request failed (no answer, or a broken connection): the leader may or may not have
    /// taken it, so the next request is a full one that closes the session and opens another.
    fn failed(&mut self) {
        self.epoch = 0;
        self.sent.clear();
    }
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
        session: SessionClient::default(),
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
                state.session.failed();
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
            send_buffer_bytes: gregor_client::socket::OS_DEFAULT,
            receive_buffer_bytes: c.replica_socket_receive_buffer_bytes,
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
        // Each partition by its topic's flush policy: gregor's fsync before fetching on, or
        // Kafka's flush once `flush.messages` records are unflushed (not waited for).
        for f in ready {
            if !f.partition.flushes_before_acks() {
                if f.partition.flush_due_by_count() {
                    f.partition.start_flush();
                }
                continue;
            }
            let end = f.partition.log_end_offset();
            if f.partition.durable_offset() < end {
                if let Err(code) = f.partition.wait_durable(end).await {
                    warn!(partition = %tp_name(&f.partition.tp), error = %code,
                        "cannot fsync the follower's log");
                    self.delay(f, self.backoff());
                }
            }
        }
        let ready: Vec<&FollowedPartition> = ready
            .iter()
            .filter(|f| !self.delayed.contains_key(&key(&f.partition)))
            .collect();
        let wanted = self.wanted(&ready)?;
        if wanted.is_empty() && !ready.is_empty() {
            // Nothing to ask for now (every partition held back by the replication quota, or
            // offline): Kafka's fetcher backs off rather than send an empty fetch, which the
            // leader would answer at once.
            tokio::time::sleep(self.backoff()).await;
            return Ok(());
        }
        let mut session = self.session.build(wanted);
        let request = self.request(&mut session);
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
        let error = response.error_code;
        if !self
            .session
            .answered(session, response.error_code, response.session_id)
        {
            if matches!(
                ErrorCode(error),
                ErrorCode::FETCH_SESSION_ID_NOT_FOUND
                    | ErrorCode::INVALID_FETCH_SESSION_EPOCH
                    | ErrorCode::FETCH_SESSION_TOPIC_ID_ERROR
            ) {
                // The next request is a full one, at once.
                debug!(leader = self.source, error = %ErrorCode(error),
                    "replica fetch session refused; starting a new one");
                return Ok(());
            }
            return Err(format!("fetch answered with error {}", ErrorCode(error)));
        }
        let by_key: HashMap<Key, &FollowedPartition> =
            ready.iter().map(|f| (key(&f.partition), *f)).collect();
        // v13+ names topics by id only; an incremental answer may name a topic the request
        // did not.
        let image = self.replicas.image();
        for topic in response.responses {
            let Some(name) = image.topics().topic(topic.topic_id).map(|t| t.name.clone()) else {
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

    /// What to fetch of `ready`: each partition at its log end (Kafka's `buildFetch`).
    fn wanted(&self, ready: &[&FollowedPartition]) -> Result<Vec<(Key, Sent)>, String> {
        let c = &self.config.cluster;
        let image = self.replicas.image();
        let mut wanted = Vec::with_capacity(ready.len());
        for f in ready {
            let p = &f.partition;
            // Its log directory went offline since the assignment: the others go on.
            if p.is_offline() {
                continue;
            }
            // A topic just deleted: the next image stops this partition's fetching.
            let Some(topic_id) = image.topics().topic_id(&p.tp.topic) else {
                continue;
            };
            // KIP-73: a throttled replica not in sync waits while the follower quota is used up.
            if self
                .replicas
                .follower_held_back(&p.tp.topic, p.tp.partition)
            {
                continue;
            }
            let fetch = FetchPartition::default()
                .with_partition(p.tp.partition)
                .with_current_leader_epoch(f.leader_epoch)
                .with_fetch_offset(p.log_end_offset())
                .with_last_fetched_epoch(p.latest_log_epoch().map_err(|e| e.to_string())?)
                .with_log_start_offset(p.log_start_offset().map_err(|e| e.to_string())?)
                .with_partition_max_bytes(c.replica_fetch_max_bytes);
            wanted.push((key(p), (topic_id, fetch)));
        }
        Ok(wanted)
    }

    /// The Fetch of one session request (its topics and forgotten topics move into it).
    fn request(&self, session: &mut SessionRequest) -> FetchRequest {
        let c = &self.config.cluster;
        let image = self.replicas.image();
        let broker_epoch = image
            .cluster()
            .broker(self.config.node_id)
            .map_or(-1, |b| b.epoch);
        // From v15 the replica id is only in `replica_state` (the old field stays default).
        FetchRequest::default()
            .with_replica_state(
                ReplicaState::default()
                    .with_replica_id(KafkaBrokerId(self.config.node_id))
                    .with_replica_epoch(broker_epoch),
            )
            .with_max_wait_ms(c.replica_fetch_wait_max_ms)
            .with_min_bytes(1)
            .with_max_bytes(c.replica_fetch_response_max_bytes)
            .with_isolation_level(0)
            .with_session_id(session.id)
            .with_session_epoch(session.epoch)
            .with_topics(std::mem::take(&mut session.topics))
            .with_forgotten_topics_data(std::mem::take(&mut session.forgotten))
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
                self.replicas.record_follower_bytes(
                    &part.tp.topic,
                    part.tp.partition,
                    records.len() as u64,
                );
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Kafka's `getFetcherId`, checked against Java's own `String.hashCode` and `Math.abs`
    /// (values printed by a Java program).
    #[test]
    fn partitions_go_to_the_fetcher_kafka_gives_them() {
        assert_eq!(java_string_hash("orders"), -1_008_770_331);
        assert_eq!(java_string_hash("__consumer_offsets"), -970_371_369);
        for (topic, partition, fetchers, want) in [
            ("orders", 0, 3, 2),
            ("orders", 1, 3, 1),
            ("orders", 7, 4, 2),
            ("__consumer_offsets", 13, 5, 4),
            ("a-very-long-topic-name-with.dots_and_underscores", 2, 7, 4),
        ] {
            assert_eq!(
                fetcher_id(topic, partition, fetchers),
                want,
                "{topic}-{partition} of {fetchers}"
            );
        }
        assert_eq!(
            fetcher_id("orders", 5, 1),
            0,
            "one fetcher takes everything"
        );
        assert_eq!(fetcher_id("orders", 5, 0), 0, "no fetcher count is one");
    }

    fn topic_id(name: &str) -> uuid::Uuid {
        uuid::Uuid::from_u128(u128::from(name.as_bytes()[0]))
    }

    fn want(parts: &[(&str, i32, i64)]) -> Vec<(Key, Sent)> {
        parts
            .iter()
            .map(|&(t, p, offset)| {
                (
                    (t.to_string(), p),
                    (
                        topic_id(t),
                        FetchPartition::default()
                            .with_partition(p)
                            .with_fetch_offset(offset),
                    ),
                )
            })
            .collect()
    }

    /// (topic id, partition, fetch offset) of each partition a request names.
    fn named(r: &SessionRequest) -> Vec<(uuid::Uuid, i32, i64)> {
        r.topics
            .iter()
            .flat_map(|t| {
                t.partitions
                    .iter()
                    .map(move |p| (t.topic_id, p.partition, p.fetch_offset))
            })
            .collect()
    }

    fn forgotten(r: &SessionRequest) -> Vec<(uuid::Uuid, i32)> {
        r.forgotten
            .iter()
            .flat_map(|t| t.partitions.iter().map(move |&p| (t.topic_id, p)))
            .collect()
    }

    #[test]
    fn a_session_sends_only_what_changed_and_forgets_what_is_gone() {
        let mut s = SessionClient::default();
        let (a, b) = (topic_id("a"), topic_id("b"));
        // Full: everything, epoch 0, no session yet.
        let r = s.build(want(&[("a", 0, 5), ("a", 1, 7), ("b", 0, 0)]));
        assert_eq!((r.id, r.epoch), (0, 0));
        assert_eq!(named(&r), vec![(a, 0, 5), (a, 1, 7), (b, 0, 0)]);
        assert_eq!(r.topics.len(), 2, "partitions grouped by topic");
        assert!(s.answered(r, 0, 42));
        assert_eq!((s.id, s.epoch), (42, 1));
        // Nothing moved: an empty incremental request.
        let r = s.build(want(&[("a", 0, 5), ("a", 1, 7), ("b", 0, 0)]));
        assert_eq!((r.id, r.epoch), (42, 1));
        assert!(named(&r).is_empty() && forgotten(&r).is_empty());
        assert!(s.answered(r, 0, 42));
        // a-1 moved on, b-0 is no longer fetched, c-0 is new.
        let r = s.build(want(&[("a", 0, 5), ("a", 1, 9), ("c", 0, 3)]));
        assert_eq!(r.epoch, 2);
        assert_eq!(named(&r), vec![(a, 1, 9), (topic_id("c"), 0, 3)]);
        assert_eq!(forgotten(&r), vec![(b, 0)]);
        assert!(s.answered(r, 0, 42));
        assert_eq!(s.epoch, 3);
        assert_eq!(s.sent.len(), 3);
    }

    #[test]
    fn errors_and_failures_start_over_with_a_full_request() {
        let mut s = SessionClient::default();
        let parts = [("a", 0, 5)];
        // The leader made no session: full requests, each asking for one.
        let r = s.build(want(&parts));
        assert!(s.answered(r, 0, 0));
        let r = s.build(want(&parts));
        assert_eq!((r.id, r.epoch, named(&r).len()), (0, 0, 1));
        assert!(s.answered(r, 0, 7));
        // An epoch refusal: the next request is full and closes session 7.
        let r = s.build(want(&parts));
        assert!(!s.answered(r, ErrorCode::INVALID_FETCH_SESSION_EPOCH.code(), 0));
        let r = s.build(want(&parts));
        assert_eq!((r.id, r.epoch, named(&r).len()), (7, 0, 1));
        assert!(s.answered(r, 0, 8));
        // An unknown session: full, with no id to close.
        let r = s.build(want(&parts));
        assert!(!s.answered(r, ErrorCode::FETCH_SESSION_ID_NOT_FOUND.code(), 0));
        let r = s.build(want(&parts));
        assert_eq!((r.id, r.epoch), (0, 0));
        assert!(s.answered(r, 0, 9));
        // A lost answer: full again, closing session 9.
        s.failed();
        let r = s.build(want(&parts));
        assert_eq!((r.id, r.epoch, named(&r).len()), (9, 0, 1));
        // The leader closes the session (an incremental answer with id 0): full from then on.
        assert!(s.answered(r, 0, 10));
        let r = s.build(want(&[("a", 0, 6)]));
        assert_eq!(r.epoch, 1);
        assert!(s.answered(r, 0, 0));
        let r = s.build(want(&[("a", 0, 6)]));
        assert_eq!((r.id, r.epoch, named(&r).len()), (0, 0, 1));
    }
}
