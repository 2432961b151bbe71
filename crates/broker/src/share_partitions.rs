//! The share-partition leader's runtime (Kafka's `SharePartitionManager`): the share-partitions
//! of the partitions this broker leads, the share sessions of the members fetching from it, and
//! the I/O around the `gregor_share::partition` core — loading and writing each
//! share-partition's state through the persister, reading the log for it, ending acquisition
//! locks on time, and waking long polls when records become available again.
//!
//! ```text
//!  ShareFetch / ShareAcknowledge handlers
//!     │ session (group, member): open (epoch 0) / next epoch / close (-1)
//!     │ acknowledge ─► slot ─► core.acknowledge_pending ─► persist (one write in flight
//!     │                per slot; later changes ride the next one) ─► core.commit, or
//!     │                core.roll_back when the write failed (Acquired by the member again)
//!     │ acquire ─► slot (loaded on first use: persister.read, or initialize at the
//!     │            share.auto.offset.reset offset) ─► log read at next_fetch_offset
//!     │            ─► core.acquire(batches: control / aborted ones skipped)
//!     ▼
//!  timer (every 100 ms): core.tick(now) on every slot ─► persist; idle sessions expire
//!  (their records released); slots of partitions no longer led here (a deleted topic's
//!  too) are dropped
//!  connection closed ─► the sessions whose last request came on it end at once, their
//!  records released (Kafka's connection-disconnect listener of the share session cache)
//! ```
//!
//! A slot belongs to one leader epoch of its partition: a new epoch (or a fenced write) drops
//! it, and the next fetch loads the state again from the share coordinator. So does the end
//! of the group's last share session here (Kafka's `onGroupEmpty`): the share-partition is
//! read again when a member comes back, which is how a reset or deletion of the group's
//! offsets by an administrator (only while the group is Empty) reaches the leader.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use gregor_protocol::batch;
use gregor_protocol::error::ErrorCode;
use gregor_share::partition::{
    AckBatch, AckError, AcquireMode, AcquiredRange, FetchedBatch, PendingAck, SharePartition,
};
use gregor_share::{
    AcknowledgeType, AutoOffsetReset, PersistError, PersistedState, ShareGroupSettings, ShareKey,
};
use gregor_storage::FileSlice;
use tokio::sync::watch;

use crate::broker::Broker;
use crate::partition::{FetchIsolation, Partition};
use crate::request::ConnectionId;

/// INVALID_RECORD_STATE: an acknowledged record is not acquired by the member.
pub const INVALID_RECORD_STATE: ErrorCode = ErrorCode(121);
/// SHARE_SESSION_NOT_FOUND.
pub const SHARE_SESSION_NOT_FOUND: ErrorCode = ErrorCode(122);
/// INVALID_SHARE_SESSION_EPOCH.
pub const INVALID_SHARE_SESSION_EPOCH: ErrorCode = ErrorCode(123);
/// SHARE_SESSION_LIMIT_REACHED.
pub const SHARE_SESSION_LIMIT_REACHED: ErrorCode = ErrorCode(133);

/// Kafka's `group.share.max.share.sessions` default.
pub const DEFAULT_MAX_SHARE_SESSIONS: usize = 2000;

/// How often the timer ends due acquisition locks, retries failed writes and expires idle
/// sessions.
const TIMER_INTERVAL: Duration = Duration::from_millis(100);

/// A topic partition of a share session: `(topic id, partition)`.
pub type SessionPartition = (uuid::Uuid, i32);

/// A member's share session (Kafka's `ShareSession`).
#[derive(Debug, Clone)]
struct ShareSession {
    /// The epoch the next request must carry.
    next_epoch: i32,
    /// The partitions it fetches, in the order they were added.
    partitions: Vec<SessionPartition>,
    /// Last request, millis (idle sessions expire).
    last_used_ms: i64,
    /// The connection of its last request: the session ends when that connection closes
    /// ([`SharePartitionManager::connection_closed`]).
    connection: ConnectionId,
}

/// What a ShareFetch may do in its session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionFetch {
    /// The partitions to fetch (the whole session, after this request's changes).
    pub partitions: Vec<SessionPartition>,
    /// A new session (epoch 0): the response names every partition.
    pub full: bool,
    /// The session's epoch after this request (rotates where fetching starts).
    pub epoch: i32,
}

/// One share-partition of a leader epoch, with its core.
struct Slot {
    key: ShareKey,
    partition: Arc<Partition>,
    leader_epoch: i32,
    /// `None` until loaded.
    core: Mutex<Option<SharePartition>>,
    /// Held while loading, so one load runs.
    load: tokio::sync::Mutex<()>,
    /// Held while a write is in flight: one at a time.
    write: tokio::sync::Mutex<()>,
    /// Changes made to the durable state (bumped under `core`'s lock).
    version: AtomicU64,
    /// The version last written.
    durable: AtomicU64,
    /// Fenced, or its leadership ended: not used any more.
    dropped: AtomicBool,
}

impl Slot {
    fn core(&self) -> MutexGuard<'_, Option<SharePartition>> {
        self.core.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn changed(&self) {
        self.version.fetch_add(1, Ordering::AcqRel);
    }

    fn is_dirty(&self) -> bool {
        self.version.load(Ordering::Acquire) > self.durable.load(Ordering::Acquire)
    }
}

/// One partition's records for a ShareFetch response.
#[derive(Debug, Clone, Default)]
pub struct PartitionRecords {
    /// Whole batches holding the acquired records: a range of a segment file, sent as a
    /// plain fetch sends records (sendfile on plaintext).
    pub records: Option<FileSlice>,
    /// What the member acquired.
    pub acquired: Vec<AcquiredRange>,
}

/// The share-partitions this broker leads and the share sessions of their consumers.
pub struct SharePartitionManager {
    slots: Mutex<HashMap<ShareKey, Arc<Slot>>>,
    sessions: Mutex<HashMap<(String, String), ShareSession>>,
    /// Bumped whenever records become available again (released, lock timeout, session
    /// closed, state reloaded): waiting fetches try to acquire again.
    released: watch::Sender<u64>,
    /// `group.share.max.share.sessions`.
    max_sessions: usize,
    /// Records archived as undeliverable, for their groups' dead-letter queues (written by
    /// [`Self::run_dead_letter_queues`], [`crate::share_dlq`]).
    undeliverable: Mutex<Vec<crate::share_dlq::Undeliverable>>,
    /// Wakes the dead-letter queue writer.
    undeliverable_added: tokio::sync::Notify,
}

impl Default for SharePartitionManager {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_SHARE_SESSIONS)
    }
}

impl std::fmt::Debug for SharePartitionManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharePartitionManager")
            .field("max_sessions", &self.max_sessions)
            .finish_non_exhaustive()
    }
}

impl SharePartitionManager {
    /// A manager with nothing loaded, allowing `max_sessions` share sessions.
    pub fn new(max_sessions: usize) -> Self {
        Self {
            slots: Mutex::new(HashMap::new()),
            sessions: Mutex::new(HashMap::new()),
            released: watch::Sender::new(0),
            max_sessions: max_sessions.max(1),
            undeliverable: Mutex::new(Vec::new()),
            undeliverable_added: tokio::sync::Notify::new(),
        }
    }

    /// Queues what `slot`'s share-partition archived as undeliverable for the dead-letter
    /// queue of its group.
    fn note_archived(&self, slot: &Slot, archived: Vec<gregor_share::Archived>) {
        if archived.is_empty() {
            return;
        }
        let mut queue = self.undeliverable.lock().unwrap_or_else(|p| p.into_inner());
        queue.extend(
            archived
                .into_iter()
                .map(|archived| crate::share_dlq::Undeliverable {
                    group: slot.key.group_id.clone(),
                    partition: Arc::clone(&slot.partition),
                    archived,
                }),
        );
        self.undeliverable_added.notify_one();
    }

    /// The records queued for dead-letter queues so far.
    fn take_undeliverable(&self) -> Vec<crate::share_dlq::Undeliverable> {
        std::mem::take(&mut *self.undeliverable.lock().unwrap_or_else(|p| p.into_inner()))
    }

    fn slots(&self) -> MutexGuard<'_, HashMap<ShareKey, Arc<Slot>>> {
        self.slots.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn sessions(&self) -> MutexGuard<'_, HashMap<(String, String), ShareSession>> {
        self.sessions.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Changes when records become available again (long polls wait on it).
    pub fn watch_released(&self) -> watch::Receiver<u64> {
        self.released.subscribe()
    }

    fn wake(&self) {
        self.released.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// Share sessions open now.
    pub fn session_count(&self) -> usize {
        self.sessions().len()
    }

    // ---- share sessions ----

    /// A ShareFetch's session step (Kafka's `SharePartitionManager.newContext`): epoch 0 opens
    /// a session with `added` (replacing the member's old one), another epoch must be the
    /// session's next one and adds `added`, removes `forgotten`. Epoch -1 (close) is
    /// [`Self::close_session`]'s, not this. The session is bound to `connection` from now on.
    #[allow(clippy::too_many_arguments)] // whose session, which step, on which connection
    pub fn fetch_session(
        &self,
        group: &str,
        member: &str,
        epoch: i32,
        added: &[SessionPartition],
        forgotten: &[SessionPartition],
        connection: ConnectionId,
        now_ms: i64,
    ) -> Result<SessionFetch, ErrorCode> {
        let mut sessions = self.sessions();
        let key = (group.to_string(), member.to_string());
        if epoch == 0 {
            if !sessions.contains_key(&key) && sessions.len() >= self.max_sessions {
                return Err(SHARE_SESSION_LIMIT_REACHED);
            }
            let mut partitions: Vec<SessionPartition> = Vec::new();
            for p in added {
                if !partitions.contains(p) {
                    partitions.push(*p);
                }
            }
            sessions.insert(
                key,
                ShareSession {
                    next_epoch: 1,
                    partitions: partitions.clone(),
                    last_used_ms: now_ms,
                    connection,
                },
            );
            return Ok(SessionFetch {
                partitions,
                full: true,
                epoch: 0,
            });
        }
        let session = sessions.get_mut(&key).ok_or(SHARE_SESSION_NOT_FOUND)?;
        if session.next_epoch != epoch {
            return Err(INVALID_SHARE_SESSION_EPOCH);
        }
        session.partitions.retain(|p| !forgotten.contains(p));
        for p in added {
            if !session.partitions.contains(p) {
                session.partitions.push(*p);
            }
        }
        session.next_epoch = next_epoch(epoch);
        session.last_used_ms = now_ms;
        session.connection = connection;
        Ok(SessionFetch {
            partitions: session.partitions.clone(),
            full: false,
            epoch,
        })
    }

    /// A ShareAcknowledge's session step: the epoch must be the session's next one (then it
    /// moves on); -1 is a close ([`Self::close_session`]); 0 is never valid. The session is
    /// bound to `connection` from now on.
    pub fn acknowledge_session(
        &self,
        group: &str,
        member: &str,
        epoch: i32,
        connection: ConnectionId,
        now_ms: i64,
    ) -> Result<(), ErrorCode> {
        if epoch == 0 {
            return Err(INVALID_SHARE_SESSION_EPOCH);
        }
        let mut sessions = self.sessions();
        let session = sessions
            .get_mut(&(group.to_string(), member.to_string()))
            .ok_or(SHARE_SESSION_NOT_FOUND)?;
        if session.next_epoch != epoch {
            return Err(INVALID_SHARE_SESSION_EPOCH);
        }
        session.next_epoch = next_epoch(epoch);
        session.last_used_ms = now_ms;
        session.connection = connection;
        Ok(())
    }

    /// Closes the member's session (epoch -1): SHARE_SESSION_NOT_FOUND when it has none.
    /// The caller then releases its records ([`Self::release_member`]).
    pub fn close_session(&self, group: &str, member: &str) -> Result<(), ErrorCode> {
        self.sessions()
            .remove(&(group.to_string(), member.to_string()))
            .map(|_| ())
            .ok_or(SHARE_SESSION_NOT_FOUND)
    }

    /// The client connection `connection` closed (a consumer that crashed or was killed, a
    /// network drop): as Kafka's `ShareSessionCache` connection-disconnect listener, the
    /// share sessions whose last request came on it end, their members' records become
    /// available again at once (not when their acquisition locks end), and a group left
    /// without a session here has its share-partitions leave the cache (`onGroupEmpty`).
    /// Returns how many sessions ended.
    pub async fn connection_closed(&self, broker: &Broker, connection: ConnectionId) -> usize {
        if connection == ConnectionId::NONE {
            return 0;
        }
        // A scan rather than an index by connection: at most `max_sessions` entries, once
        // per closed connection.
        let ended: Vec<(String, String)> = {
            let mut sessions = self.sessions();
            let ended: Vec<(String, String)> = sessions
                .iter()
                .filter(|(_, s)| s.connection == connection)
                .map(|(k, _)| k.clone())
                .collect();
            for k in &ended {
                sessions.remove(k);
            }
            ended
        };
        for (group, member) in &ended {
            tracing::debug!(
                group,
                member,
                connection = connection.0,
                "connection closed: its share session ends"
            );
            self.release_member(broker, group, member).await;
        }
        ended.len()
    }

    // ---- share-partitions ----

    /// The loaded share-partition of `group` on `partition` (topic `topic_id`), loading it
    /// on first use. NOT_LEADER_OR_FOLLOWER when this broker does not lead the partition;
    /// COORDINATOR_NOT_AVAILABLE while the share coordinator cannot be reached.
    async fn slot(
        &self,
        broker: &Broker,
        group: &str,
        topic_id: uuid::Uuid,
        partition: &Arc<Partition>,
    ) -> Result<Arc<Slot>, ErrorCode> {
        if !partition.is_leader() {
            return Err(ErrorCode::NOT_LEADER_OR_FOLLOWER);
        }
        let key = ShareKey {
            group_id: group.to_string(),
            topic_id,
            partition: partition.tp.partition,
        };
        let epoch = partition.leader_epoch();
        let slot = {
            let mut slots = self.slots();
            match slots.get(&key) {
                Some(s)
                    if s.leader_epoch == epoch
                        && Arc::ptr_eq(&s.partition, partition)
                        && !s.dropped.load(Ordering::Acquire) =>
                {
                    Arc::clone(s)
                }
                _ => {
                    let s = Arc::new(Slot {
                        key: key.clone(),
                        partition: Arc::clone(partition),
                        leader_epoch: epoch,
                        core: Mutex::new(None),
                        load: tokio::sync::Mutex::new(()),
                        write: tokio::sync::Mutex::new(()),
                        version: AtomicU64::new(0),
                        durable: AtomicU64::new(0),
                        dropped: AtomicBool::new(false),
                    });
                    slots.insert(key, Arc::clone(&s));
                    s
                }
            }
        };
        if slot.core().is_some() {
            return Ok(slot);
        }
        let loaded = {
            let _loading = slot.load.lock().await;
            if slot.core().is_some() {
                Ok(())
            } else {
                self.load(broker, &slot)
                    .await
                    .map(|core| *slot.core() = Some(core))
            }
        };
        match loaded {
            Ok(()) => Ok(slot),
            Err(code) => {
                if code == ErrorCode::NOT_LEADER_OR_FOLLOWER {
                    self.drop_slot(&slot);
                }
                Err(code)
            }
        }
    }

    /// Reads the share-partition's state (or creates it at the `share.auto.offset.reset`
    /// offset), moved up to the log start.
    async fn load(&self, broker: &Broker, slot: &Slot) -> Result<SharePartition, ErrorCode> {
        let settings = crate::group_configs::share_settings(broker, &slot.key.group_id);
        let part = &slot.partition;
        let persister = &broker.share_persister;
        let mut core = match persister.read(&slot.key, slot.leader_epoch).await {
            Ok(state) if state.start_offset >= 0 => SharePartition::load(&state, &settings),
            Ok(state) => {
                // Initialized by the group coordinator without a start: decided here.
                let start = resolve_start_offset(broker, part, &settings)?;
                let core = SharePartition::load(
                    &PersistedState {
                        start_offset: start,
                        ..state
                    },
                    &settings,
                );
                persister
                    .write(&slot.key, slot.leader_epoch, &core.persisted())
                    .await
                    .map_err(|e| persist_error_code(&e))?;
                core
            }
            Err(PersistError::NotInitialized) => {
                let start = resolve_start_offset(broker, part, &settings)?;
                persister
                    .initialize(&slot.key, 0, start)
                    .await
                    .map_err(|e| persist_error_code(&e))?;
                SharePartition::new(0, start, &settings)
            }
            Err(e) => {
                tracing::debug!(group = %slot.key.group_id, topic = %part.tp.topic,
                    partition = part.tp.partition, error = %e, "share-partition state not loaded");
                return Err(persist_error_code(&e));
            }
        };
        if let Ok(log_start) = part.log_start_offset() {
            if core.advance_log_start(log_start).state_changed {
                slot.changed();
            }
        }
        tracing::debug!(group = %slot.key.group_id, topic = %part.tp.topic,
            partition = part.tp.partition, start_offset = core.start_offset(),
            end_offset = core.end_offset(), "share-partition loaded");
        Ok(core)
    }

    fn drop_slot(&self, slot: &Arc<Slot>) {
        slot.dropped.store(true, Ordering::Release);
        let mut slots = self.slots();
        if slots.get(&slot.key).is_some_and(|s| Arc::ptr_eq(s, slot)) {
            slots.remove(&slot.key);
        }
    }

    /// Writes the slot's state if it changed since the last write, one write at a time (a
    /// change made while a write is in flight goes with the next one). Fenced: the slot is
    /// dropped (reloaded by the next fetch) and the answer is NOT_LEADER_OR_FOLLOWER.
    async fn persist(&self, broker: &Broker, slot: &Arc<Slot>) -> Result<(), ErrorCode> {
        self.persist_or_roll_back(broker, slot, None).await
    }

    /// [`Self::persist`], rolling `ack` back when the write fails, before the next write
    /// starts (so that no later write carries it).
    async fn persist_or_roll_back(
        &self,
        broker: &Broker,
        slot: &Arc<Slot>,
        ack: Option<&PendingAck>,
    ) -> Result<(), ErrorCode> {
        let want = slot.version.load(Ordering::Acquire);
        let _one = slot.write.lock().await;
        let roll_back = || {
            if let (Some(ack), Some(core)) = (ack, slot.core().as_mut()) {
                if core.roll_back(ack) {
                    slot.changed();
                }
            }
        };
        if slot.durable.load(Ordering::Acquire) >= want {
            return Ok(());
        }
        let (state, version) = {
            let core = slot.core();
            let Some(core) = core.as_ref() else {
                return Err(ErrorCode::NOT_LEADER_OR_FOLLOWER);
            };
            (core.persisted(), slot.version.load(Ordering::Acquire))
        };
        match broker
            .share_persister
            .write(&slot.key, slot.leader_epoch, &state)
            .await
        {
            Ok(()) => {
                slot.durable.fetch_max(version, Ordering::AcqRel);
                Ok(())
            }
            Err(e @ (PersistError::FencedLeaderEpoch | PersistError::FencedStateEpoch)) => {
                tracing::info!(group = %slot.key.group_id, topic = %slot.partition.tp.topic,
                    partition = slot.partition.tp.partition, error = %e,
                    "share-partition fenced: dropped, the next fetch loads it again");
                roll_back();
                self.drop_slot(slot);
                self.wake();
                Err(ErrorCode::NOT_LEADER_OR_FOLLOWER)
            }
            Err(e) => {
                tracing::debug!(group = %slot.key.group_id, topic = %slot.partition.tp.topic,
                    partition = slot.partition.tp.partition, error = %e,
                    "share-partition state not written; retried");
                roll_back();
                Err(persist_error_code(&e))
            }
        }
    }

    /// Applies `member`'s acknowledgements to its share-partition of `partition` and waits
    /// until they are durable. The error code is the partition's acknowledgement error; when
    /// the write fails the records are Acquired by the member again (Kafka's
    /// `rollbackOrProcessStateUpdates`) and the answer is the write's error.
    pub async fn acknowledge(
        &self,
        broker: &Broker,
        group: &str,
        member: &str,
        topic_id: uuid::Uuid,
        partition: &Arc<Partition>,
        batches: &[AckBatch],
    ) -> Result<(), ErrorCode> {
        let renews = batches
            .iter()
            .any(|b| b.types.contains(&AcknowledgeType::Renew));
        if renews && !renew_acknowledge_enabled(broker, group) {
            // Kafka's SharePartition: "Renewing acquisition locks is not enabled for the
            // group."
            return Err(INVALID_RECORD_STATE);
        }
        let slot = self.slot(broker, group, topic_id, partition).await?;
        let pending = {
            let mut core = slot.core();
            let Some(core) = core.as_mut() else {
                return Err(ErrorCode::NOT_LEADER_OR_FOLLOWER);
            };
            let pending = core
                .acknowledge_pending(member, batches, broker.clock.now_ms())
                .map_err(|e| match e {
                    AckError::InvalidRecordState(_) => INVALID_RECORD_STATE,
                    AckError::InvalidRequest(_) => ErrorCode::INVALID_REQUEST,
                })?;
            if pending.state_changed {
                slot.changed();
            }
            pending
        };
        self.persist_or_roll_back(broker, &slot, Some(&pending))
            .await?;
        let (released, archived) = match slot.core().as_mut() {
            Some(core) => (core.commit(&pending), core.take_archived()),
            None => (false, Vec::new()),
        };
        self.note_archived(&slot, archived);
        if released {
            self.wake();
        }
        Ok(())
    }

    /// Acquires records of `partition` for `member` now: whole batches from the
    /// share-partition's next fetch offset (at most `max_bytes`, at least one batch) below
    /// the high watermark (read_committed: the last stable offset), up to `max_records` of
    /// them. An empty answer when nothing can be acquired.
    ///
    /// The share-partition's lock is held only to decide, never while the log is read:
    /// 1. under the lock, where to read ([`plan_read`]);
    /// 2. off the async workers and without the lock, the batches' headers
    ///    ([`read_batches`]: 61 bytes a batch, the records themselves are never read);
    /// 3. under the lock again, the acquisition from those headers ([`acquire_read`]). The
    ///    core acquires only what is Available *now* within the batches read, so a fetch or
    ///    an acknowledgement that ran meanwhile cannot make a record acquired twice or
    ///    skipped; when it left nothing to acquire in what was read, the fetch reads again
    ///    from the new next fetch offset (at most [`ACQUIRE_ATTEMPTS`] times).
    ///
    /// The records go back as a range of the segment file (sendfile on plaintext).
    #[allow(clippy::too_many_arguments)] // the fetch's who, where and how much
    pub async fn acquire(
        &self,
        broker: &Broker,
        group: &str,
        member: &str,
        topic_id: uuid::Uuid,
        partition: &Arc<Partition>,
        max_records: u64,
        max_bytes: usize,
        mode: AcquireMode,
    ) -> Result<PartitionRecords, ErrorCode> {
        let settings = crate::group_configs::share_settings(broker, group);
        let mut out = PartitionRecords::default();
        let mut dirty: Option<Arc<Slot>> = None;
        for _ in 0..ACQUIRE_ATTEMPTS {
            let slot = self.slot(broker, group, topic_id, partition).await?;
            let (plan, changed) = {
                let mut guard = slot.core();
                let Some(core) = guard.as_mut() else {
                    return Err(ErrorCode::NOT_LEADER_OR_FOLLOWER);
                };
                core.update_settings(&settings);
                plan_read(core, partition, max_records)
            };
            if changed {
                slot.changed();
                dirty = Some(Arc::clone(&slot));
            }
            let Some(plan) = plan else { break };
            let read = {
                let part = Arc::clone(partition);
                let read_committed = settings.read_committed;
                tokio::task::spawn_blocking(move || {
                    read_batches(&part, &plan, max_bytes, read_committed).map(|r| (plan, r))
                })
                .await
                .map_err(|_| ErrorCode::KAFKA_STORAGE_ERROR)?
            };
            let (plan, read) = match read {
                Ok((plan, Some(read))) => (plan, read),
                Ok((_, None)) => break,
                Err(code) if code == ErrorCode::OFFSET_OUT_OF_RANGE => {
                    // Retention removed the next records: start again at the log start (Kafka
                    // answers this partition without an error and the client fetches again).
                    let mut guard = slot.core();
                    if let (Some(core), Ok(log_start)) =
                        (guard.as_mut(), partition.log_start_offset())
                    {
                        if core.advance_log_start(log_start).state_changed {
                            slot.changed();
                            dirty = Some(Arc::clone(&slot));
                        }
                    }
                    break;
                }
                Err(code) => return Err(code),
            };
            let now = broker.clock.now_ms();
            let (step, changed) = {
                let mut guard = slot.core();
                match guard.as_mut() {
                    // Fenced or no longer led meanwhile: look the slot up again.
                    Some(_) if slot.dropped.load(Ordering::Acquire) => (Step::Again, false),
                    Some(core) => acquire_read(core, member, &plan, read, max_records, now, mode),
                    None => (Step::Again, false),
                }
            };
            if changed {
                slot.changed();
                dirty = Some(Arc::clone(&slot));
            }
            match step {
                Step::Acquired(records) => {
                    out = records;
                    break;
                }
                Step::Again => continue,
                Step::Nothing => break,
            }
        }
        if let Some(slot) = dirty {
            // Archived records or a moved start: written before the answer.
            let _ = self.persist(broker, &slot).await;
        }
        Ok(out)
    }

    /// What a fetch could acquire of `partition` now, in bytes (Kafka's DelayedShareFetch
    /// `isMinBytesSatisfied`): the log from the share-partition's next fetch offset up to
    /// the high watermark (read_committed: the last stable offset), at most `max_bytes`
    /// (whole batches: at least one); 0 when it can acquire nothing.
    pub async fn acquirable_bytes(
        &self,
        broker: &Broker,
        group: &str,
        topic_id: uuid::Uuid,
        partition: &Arc<Partition>,
        max_bytes: usize,
    ) -> Result<usize, ErrorCode> {
        let slot = self.slot(broker, group, topic_id, partition).await?;
        let at = {
            let core = slot.core();
            let Some(core) = core.as_ref() else {
                return Err(ErrorCode::NOT_LEADER_OR_FOLLOWER);
            };
            if !core.can_acquire() {
                return Ok(0);
            }
            core.next_fetch_offset()
        };
        let isolation = if crate::group_configs::share_settings(broker, group).read_committed {
            FetchIsolation::TxnCommitted
        } else {
            FetchIsolation::HighWatermark
        };
        match partition.fetch_read(at, max_bytes.max(1), true, isolation) {
            Ok(read) => Ok(read.info.slice.map_or(0, |s| s.len)),
            // Retention moved the log start: the next acquisition starts again there.
            Err(code) if code == ErrorCode::OFFSET_OUT_OF_RANGE => Ok(0),
            Err(code) => Err(code),
        }
    }

    /// The acquisition lock duration of `group`'s share-partitions (the response's
    /// `acquisition_lock_timeout_ms`).
    pub fn record_lock_duration_ms(broker: &Broker, group: &str) -> i32 {
        let ms = crate::group_configs::share_settings(broker, group).record_lock_duration_ms;
        i32::try_from(ms).unwrap_or(i32::MAX)
    }

    /// The member's session closed or expired: every record it holds in `group`'s
    /// share-partitions here becomes available again (written before returning).
    pub async fn release_member(&self, broker: &Broker, group: &str, member: &str) {
        let slots: Vec<Arc<Slot>> = self
            .slots()
            .values()
            .filter(|s| s.key.group_id == group)
            .cloned()
            .collect();
        let mut released = false;
        let mut dirty = Vec::new();
        for slot in slots {
            let mut core = slot.core();
            let Some(core) = core.as_mut() else { continue };
            let r = core.release_member(member);
            let archived = core.take_archived();
            self.note_archived(&slot, archived);
            released |= r.released;
            if r.state_changed {
                slot.changed();
                dirty.push(Arc::clone(&slot));
            }
        }
        if released {
            self.wake();
        }
        for slot in dirty {
            let _ = self.persist(broker, &slot).await;
        }
        self.drop_idle_group(group);
    }

    /// Kafka's `onGroupEmpty`: once no member of `group` has a share session here, its
    /// share-partitions leave the cache and the next fetch reads them again from the share
    /// coordinator. That is how an administrator's reset or deletion of the group's offsets
    /// (AlterShareGroupOffsets, DeleteShareGroupOffsets, DeleteGroups: allowed only while the
    /// group is Empty) reaches the leader. A share-partition with changes not yet written
    /// stays until the timer has written them. Returns how many were dropped.
    fn drop_idle_group(&self, group: &str) -> usize {
        // The sessions' lock is held throughout, so no session of the group opens meanwhile.
        let sessions = self.sessions();
        if sessions.keys().any(|(g, _)| g == group) {
            return 0;
        }
        let idle: Vec<Arc<Slot>> = self
            .slots()
            .values()
            .filter(|s| s.key.group_id == group && !s.is_dirty())
            .cloned()
            .collect();
        for slot in &idle {
            self.drop_slot(slot);
        }
        drop(sessions);
        if !idle.is_empty() {
            tracing::debug!(
                group,
                share_partitions = idle.len(),
                "no share session of the group left: its share-partitions leave the cache"
            );
        }
        idle.len()
    }

    /// One timer pass at the broker's clock: ends due acquisition locks, follows log start
    /// moves, writes what changed (and what failed to be written before), drops slots of
    /// partitions no longer led in their epoch, expires sessions idle for twice their
    /// group's `share.session.timeout.ms` (releasing their records), and drops the slots of
    /// groups without a session here.
    pub async fn tick(&self, broker: &Broker) {
        let now = broker.clock.now_ms();
        let slots: Vec<Arc<Slot>> = self.slots().values().cloned().collect();
        let mut released = false;
        let mut dirty = Vec::new();
        for slot in slots {
            let part = &slot.partition;
            if !part.is_leader() || part.leader_epoch() != slot.leader_epoch {
                self.drop_slot(&slot);
                continue;
            }
            {
                let mut core = slot.core();
                let Some(core) = core.as_mut() else { continue };
                let mut changed = false;
                if core.next_deadline().is_some_and(|d| d <= now) {
                    let r = core.tick(now);
                    released |= r.released;
                    changed |= r.state_changed;
                }
                if let Ok(log_start) = part.log_start_offset() {
                    changed |= core.advance_log_start(log_start).state_changed;
                }
                let archived = core.take_archived();
                self.note_archived(&slot, archived);
                if changed {
                    slot.changed();
                }
            }
            if slot.is_dirty() {
                dirty.push(slot);
            }
        }
        if released {
            self.wake();
        }
        for slot in dirty {
            let _ = self.persist(broker, &slot).await;
        }
        let expired: Vec<(String, String)> = {
            let mut sessions = self.sessions();
            let mut timeouts: HashMap<String, i64> = HashMap::new();
            let gone: Vec<(String, String)> = sessions
                .iter()
                .filter(|((group, _), s)| {
                    let timeout = *timeouts.entry(group.clone()).or_insert_with(|| {
                        let ms =
                            crate::group_configs::share_settings(broker, group).session_timeout_ms;
                        i64::try_from(ms).unwrap_or(i64::MAX / 4).saturating_mul(2)
                    });
                    now.saturating_sub(s.last_used_ms) > timeout
                })
                .map(|(k, _)| k.clone())
                .collect();
            for k in &gone {
                sessions.remove(k);
            }
            gone
        };
        for (group, member) in expired {
            tracing::debug!(group, member, "idle share session expired");
            self.release_member(broker, &group, &member).await;
        }
        // Groups whose share-partitions could not be dropped when their last session ended
        // (changes not yet written then).
        let mut groups: Vec<String> = self.slots().keys().map(|k| k.group_id.clone()).collect();
        groups.sort_unstable();
        groups.dedup();
        for group in groups {
            self.drop_idle_group(&group);
        }
    }

    /// Runs [`Self::tick`] every 100 ms while the broker lives.
    pub async fn run_timers(self: Arc<Self>, broker: Weak<Broker>) {
        let mut every = tokio::time::interval(TIMER_INTERVAL);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            let Some(broker) = broker.upgrade() else {
                return;
            };
            self.tick(&broker).await;
        }
    }

    /// Writes what the share-partitions archive as undeliverable to their groups'
    /// dead-letter queues, in order, while the broker lives: a task of its own, so that a DLQ
    /// leader that is slow or gone holds back no lock timeout or session expiry.
    pub async fn run_dead_letter_queues(self: Arc<Self>, broker: Weak<Broker>) {
        loop {
            self.undeliverable_added.notified().await;
            let undeliverable = self.take_undeliverable();
            if undeliverable.is_empty() {
                continue;
            }
            let Some(broker) = broker.upgrade() else {
                return;
            };
            crate::share_dlq::write(&broker, undeliverable).await;
        }
    }

    /// The loaded share-partition's state, for tests and describing: `(start, end)`.
    pub fn offsets(&self, key: &ShareKey) -> Option<(i64, i64)> {
        let slot = self.slots().get(key).cloned()?;
        let core = slot.core();
        core.as_ref().map(|c| (c.start_offset(), c.end_offset()))
    }
}

/// The session epoch after `epoch` (wraps to 1, never 0 or -1).
fn next_epoch(epoch: i32) -> i32 {
    if epoch == i32::MAX {
        1
    } else {
        epoch + 1
    }
}

/// Kafka's mapping of a persister error to the partition's error code.
fn persist_error_code(e: &PersistError) -> ErrorCode {
    match e {
        PersistError::FencedLeaderEpoch | PersistError::FencedStateEpoch => {
            ErrorCode::NOT_LEADER_OR_FOLLOWER
        }
        PersistError::NotInitialized => ErrorCode::UNKNOWN_TOPIC_OR_PARTITION,
        PersistError::Unavailable(_) => ErrorCode::COORDINATOR_NOT_AVAILABLE,
        PersistError::Other { code, .. } => ErrorCode(*code),
    }
}

/// Where a new share-partition starts (`share.auto.offset.reset`): the log start, the high
/// watermark, or the first record at or after now minus the duration (the high watermark when
/// there is none).
fn resolve_start_offset(
    broker: &Broker,
    part: &Partition,
    settings: &ShareGroupSettings,
) -> Result<i64, ErrorCode> {
    let (log_start, hw) = part.offsets()?;
    Ok(match settings.auto_offset_reset {
        AutoOffsetReset::Earliest => log_start,
        AutoOffsetReset::Latest => hw,
        AutoOffsetReset::ByDurationMs(d) => {
            let ts = broker.clock.now_ms().saturating_sub(d);
            part.offset_for_timestamp(ts)?
                .map_or(hw, |(offset, _)| offset.clamp(log_start, hw))
        }
    })
}

/// Where a fetch reads, decided under the share-partition's lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct ReadPlan {
    /// The next fetch offset when the read was planned.
    at: i64,
    /// The end offset then: records from here on are new to the share-partition.
    new_from: i64,
    /// How many new records the fetch could take then (MaxRecords, and the room the
    /// record locks leave): the headers are read until that many new ones are covered.
    new_wanted: u64,
}

/// What [`acquire_read`] came to.
#[derive(Debug)]
enum Step {
    /// Records acquired (possibly none, when the read held nothing acquirable).
    Acquired(PartitionRecords),
    /// Nothing acquired, because the state moved since the plan: read again.
    Again,
    /// Nothing to acquire.
    Nothing,
}

/// How often a fetch reads again when others moved the share-partition's next fetch offset
/// while it read.
const ACQUIRE_ATTEMPTS: usize = 3;

/// Step 1, under the lock: follows the log start, and plans the read at the next fetch
/// offset (`None`: nothing can be acquired now). Returns whether the durable state changed.
fn plan_read(
    core: &mut SharePartition,
    part: &Partition,
    max_records: u64,
) -> (Option<ReadPlan>, bool) {
    let mut changed = false;
    if let Ok(log_start) = part.log_start_offset() {
        changed |= core.advance_log_start(log_start).state_changed;
    }
    if !core.can_acquire() || max_records == 0 {
        return (None, changed);
    }
    let plan = ReadPlan {
        at: core.next_fetch_offset(),
        new_from: core.end_offset(),
        new_wanted: max_records.min(core.new_record_room()),
    };
    (Some(plan), changed)
}

/// The batches a share fetch read: the file range and, per batch, what the core needs with
/// the batch's place in the range.
#[derive(Debug)]
struct ShareRead {
    slice: FileSlice,
    batches: Vec<(FetchedBatch, usize, usize)>,
}

/// Step 2, without the share-partition's lock and off the async workers: finds the batches
/// at the planned offset (the log's index, as a plain fetch does) and reads their headers,
/// classifying each (control batches, and under read_committed aborted ones, are never
/// delivered). `None` when there is nothing below the high watermark (the last stable
/// offset) yet.
fn read_batches(
    part: &Partition,
    plan: &ReadPlan,
    max_bytes: usize,
    read_committed: bool,
) -> Result<Option<ShareRead>, ErrorCode> {
    let isolation = if read_committed {
        FetchIsolation::TxnCommitted
    } else {
        FetchIsolation::HighWatermark
    };
    let read = part.fetch_read(plan.at, max_bytes.max(1), true, isolation)?;
    let Some(slice) = read.info.slice else {
        return Ok(None);
    };
    let headers = read_batch_headers(&slice, plan.new_from, plan.new_wanted)
        .map_err(|_| ErrorCode::KAFKA_STORAGE_ERROR)?;
    let aborted = read.aborted_transactions.unwrap_or_default();
    let batches = headers
        .into_iter()
        .map(|h| {
            let aborted_txn = read_committed
                && h.is_transactional()
                && !h.is_control()
                && aborted.iter().any(|a| {
                    a.producer_id == h.producer_id
                        && a.first_offset <= h.base_offset
                        && h.base_offset <= a.last_offset
                });
            let fetched = if h.is_control() || aborted_txn {
                FetchedBatch::skipped(h.base_offset, h.last_offset)
            } else {
                FetchedBatch::records(h.base_offset, h.last_offset)
            };
            (fetched, h.position, h.position + h.size)
        })
        .collect();
    Ok(Some(ShareRead { slice, batches }))
}

/// The group config `share.renew.acknowledge.enable` (true unless set to false): whether
/// RENEW acknowledgements are taken.
fn renew_acknowledge_enabled(broker: &Broker, group: &str) -> bool {
    crate::group_configs::group_configs(broker, group)
        .get("share.renew.acknowledge.enable")
        .is_none_or(|v| !v.trim().eq_ignore_ascii_case("false"))
}

/// Step 3, under the lock again: acquires from the batches read. The core takes only
/// records Available now, so what others acquired or acknowledged since the plan is left
/// alone. Returns the step and whether the durable state changed.
fn acquire_read(
    core: &mut SharePartition,
    member: &str,
    plan: &ReadPlan,
    read: ShareRead,
    max_records: u64,
    now: i64,
    mode: AcquireMode,
) -> (Step, bool) {
    let batches: Vec<FetchedBatch> = read.batches.iter().map(|(b, _, _)| *b).collect();
    let acquired = core.acquire_in(member, plan.at, &batches, max_records, now, mode);
    let changed = acquired.state_changed;
    if acquired.ranges.is_empty() {
        // Another fetch took what was read, or records before it became available again:
        // worth another read when there is something to acquire.
        let step = if core.can_acquire() && core.next_fetch_offset() != plan.at {
            Step::Again
        } else {
            Step::Nothing
        };
        return (step, changed);
    }
    // Only the batches holding acquired records go back.
    let overlaps = |b: &FetchedBatch| {
        acquired
            .ranges
            .iter()
            .any(|r| r.first_offset <= b.last_offset && b.first_offset <= r.last_offset)
    };
    let from = read
        .batches
        .iter()
        .find(|(b, _, _)| overlaps(b))
        .map(|s| s.1);
    let to = read
        .batches
        .iter()
        .rev()
        .find(|(b, _, _)| overlaps(b))
        .map(|s| s.2);
    let records = match (from, to) {
        (Some(from), Some(to)) if from < to => Some(FileSlice {
            file: Arc::clone(&read.slice.file),
            position: read.slice.position + from as u64,
            len: to - from,
        }),
        _ => None,
    };
    (
        Step::Acquired(PartitionRecords {
            records,
            acquired: acquired.ranges,
        }),
        changed,
    )
}

/// What a share fetch needs of a batch, from its 61-byte header alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct BatchHeader {
    /// Where the batch starts in the range read.
    position: usize,
    /// The whole batch's size (with its offset and length fields).
    size: usize,
    base_offset: i64,
    last_offset: i64,
    attributes: i16,
    producer_id: i64,
}

impl BatchHeader {
    fn is_transactional(&self) -> bool {
        self.attributes & batch::ATTR_TRANSACTIONAL != 0
    }

    fn is_control(&self) -> bool {
        self.attributes & batch::ATTR_CONTROL != 0
    }
}

/// How much of a segment is read at once while batches are small: the headers of a few
/// dozen small batches in one read.
const HEADER_WINDOW: usize = 8 * 1024;

/// Reads the headers of the batches of `slice` (pread: the page cache, or the disk when
/// cold), in order, until the batches cover `new_wanted` records from `new_from` on (the
/// records a fetch could acquire past the share-partition's end) or the range ends. Small
/// batches are read a window at a time; once batches are large, only their headers. Stops at
/// a header that is not a v2 batch inside the range, as a fetch stops at a torn tail.
fn read_batch_headers(
    slice: &FileSlice,
    new_from: i64,
    new_wanted: u64,
) -> std::io::Result<Vec<BatchHeader>> {
    use std::os::unix::fs::FileExt;
    const HEADER: usize = batch::BATCH_HEADER_LEN;
    let mut out = Vec::new();
    let mut window: Vec<u8> = Vec::new();
    let mut window_at = 0usize;
    let mut pos = 0usize;
    let mut large = false;
    let mut new_covered = 0u64;
    while pos + HEADER <= slice.len {
        if pos < window_at || pos + HEADER > window_at + window.len() {
            let n = if large {
                HEADER
            } else {
                HEADER_WINDOW.min(slice.len - pos)
            };
            window.resize(n, 0);
            slice
                .file
                .read_exact_at(&mut window, slice.position + pos as u64)?;
            window_at = pos;
        }
        let h = &window[pos - window_at..pos - window_at + HEADER];
        let be_i64 = |at: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&h[at..at + 8]);
            i64::from_be_bytes(b)
        };
        let be_i32 = |at: usize| i32::from_be_bytes([h[at], h[at + 1], h[at + 2], h[at + 3]]);
        let base_offset = be_i64(0);
        let length = usize::try_from(be_i32(8)).unwrap_or(0);
        let magic = h[16] as i8;
        let attributes = i16::from_be_bytes([h[21], h[22]]);
        let last_offset_delta = be_i32(23);
        let producer_id = be_i64(43);
        let size = length.saturating_add(batch::LOG_OVERHEAD);
        if magic != batch::MAGIC_V2
            || size < HEADER
            || size > slice.len - pos
            || last_offset_delta < 0
        {
            break;
        }
        let last_offset = base_offset.saturating_add(i64::from(last_offset_delta));
        out.push(BatchHeader {
            position: pos,
            size,
            base_offset,
            last_offset,
            attributes,
            producer_id,
        });
        pos += size;
        large = size >= HEADER_WINDOW / 2;
        if last_offset >= new_from {
            let first_new = base_offset.max(new_from);
            new_covered =
                new_covered.saturating_add(u64::try_from(last_offset - first_new + 1).unwrap_or(0));
            if new_covered >= new_wanted {
                break;
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use gregor_share::partition::AckBatch;
    use gregor_share::AcknowledgeType;

    use super::*;
    use crate::handlers::share_fetch::tests::{setup, Setup};

    /// `member` of group "g" acquires up to `max_records` of `part` (1 MiB, whole batches).
    async fn acquire(
        s: &Setup,
        part: &Arc<Partition>,
        member: &str,
        max_records: u64,
    ) -> PartitionRecords {
        s.broker
            .share_partitions
            .acquire(
                &s.broker,
                "g",
                member,
                s.topic.id,
                part,
                max_records,
                1 << 20,
                AcquireMode::BatchOptimized,
            )
            .await
            .expect("acquire")
    }

    /// `member` of group "g" acknowledges `first..=last` of `part` with `ack`.
    async fn acknowledge(
        s: &Setup,
        part: &Arc<Partition>,
        member: &str,
        (first, last): (i64, i64),
        ack: AcknowledgeType,
    ) {
        let batch = AckBatch {
            first_offset: first,
            last_offset: last,
            types: vec![ack],
        };
        s.broker
            .share_partitions
            .acknowledge(&s.broker, "g", member, s.topic.id, part, &[batch])
            .await
            .unwrap_or_else(|e| panic!("{member}: {ack:?} {first}-{last}: {e:?}"));
    }

    /// The share-partition of group "g", loaded (at offset 0: nothing is in the log yet).
    async fn loaded(s: &Setup) -> (Arc<Partition>, Arc<Slot>) {
        let part = Arc::clone(&s.topic.partitions[&0]);
        let manager = &s.broker.share_partitions;
        let out = acquire(s, &part, "m0", 500).await;
        assert!(out.acquired.is_empty());
        let slot = manager
            .slot(&s.broker, "g", s.topic.id, &part)
            .await
            .expect("slot");
        (part, slot)
    }

    /// Step 1 of a fetch, under the slot's lock.
    fn plan(slot: &Slot, part: &Partition, max_records: u64) -> ReadPlan {
        let mut core = slot.core();
        let core = core.as_mut().expect("loaded");
        plan_read(core, part, max_records)
            .0
            .expect("something to acquire")
    }

    /// Step 2 of a fetch, without the lock.
    fn read(part: &Partition, plan: &ReadPlan) -> ShareRead {
        read_batches(part, plan, 1 << 20, false)
            .expect("read")
            .expect("records")
    }

    /// `(first, last)` offsets.
    type Ranges = Vec<(i64, i64)>;

    /// Step 3 of a fetch, under the lock: `(first, last)` of what `member` acquired, and the
    /// batches sent, as read back from the file range.
    fn finish(
        slot: &Slot,
        member: &str,
        plan: &ReadPlan,
        read: ShareRead,
        max_records: u64,
    ) -> (Ranges, Ranges, bool) {
        let mut core = slot.core();
        let core = core.as_mut().expect("loaded");
        match acquire_read(
            core,
            member,
            plan,
            read,
            max_records,
            0,
            AcquireMode::BatchOptimized,
        )
        .0
        {
            Step::Acquired(out) => (
                out.acquired
                    .iter()
                    .map(|r| (r.first_offset, r.last_offset))
                    .collect(),
                sent_batches(&out),
                false,
            ),
            Step::Again => (Vec::new(), Vec::new(), true),
            Step::Nothing => (Vec::new(), Vec::new(), false),
        }
    }

    fn sent_batches(out: &PartitionRecords) -> Vec<(i64, i64)> {
        let Some(slice) = &out.records else {
            return Vec::new();
        };
        let bytes = slice.read_to_vec().expect("file range");
        batch::batches(&bytes)
            .map(|b| {
                b.map(|b| (b.base_offset(), b.last_offset()))
                    .expect("batch")
            })
            .collect()
    }

    fn holder(slot: &Slot, offset: i64) -> Option<String> {
        let core = slot.core();
        core.as_ref()
            .expect("loaded")
            .holder(offset)
            .map(str::to_string)
    }

    #[tokio::test]
    async fn two_fetches_racing_one_share_partition_acquire_each_record_once() {
        let s = setup();
        let (part, slot) = loaded(&s).await;
        for _ in 0..5 {
            s.append(2); // 0-1, 2-3, ..., 8-9
        }
        // Both plan and read at offset 0 before either acquires.
        let (pa, pb) = (plan(&slot, &part, 4), plan(&slot, &part, 4));
        assert_eq!((pa.at, pb.at), (0, 0));
        let (ra, rb) = (read(&part, &pa), read(&part, &pb));
        let (a, a_sent, _) = finish(&slot, "a", &pa, ra, 4);
        assert_eq!(a, vec![(0, 3)]);
        assert_eq!(
            a_sent,
            vec![(0, 1), (2, 3)],
            "whole batches of the acquired"
        );
        // b read 0-3 too (the headers only as far as its 4 records): all a's now, so b
        // reads again, from 4.
        let (b, _, again) = finish(&slot, "b", &pb, rb, 4);
        assert!(b.is_empty());
        assert!(again);
        let pb = plan(&slot, &part, 4);
        assert_eq!(pb.at, 4);
        let rb = read(&part, &pb);
        let (b, b_sent, _) = finish(&slot, "b", &pb, rb, 4);
        assert_eq!(b, vec![(4, 7)]);
        assert_eq!(b_sent, vec![(4, 5), (6, 7)]);
        for o in 0..4 {
            assert_eq!(holder(&slot, o).as_deref(), Some("a"));
        }
        for o in 4..8 {
            assert_eq!(holder(&slot, o).as_deref(), Some("b"));
        }
        // Nothing skipped: the next fetch gets 8-9.
        let c = acquire(&s, &part, "c", 500).await;
        assert_eq!(
            c.acquired
                .iter()
                .map(|r| (r.first_offset, r.last_offset))
                .collect::<Vec<_>>(),
            vec![(8, 9)]
        );
        assert_eq!(sent_batches(&c), vec![(8, 9)]);
    }

    #[tokio::test]
    async fn a_fetch_whose_read_was_taken_by_another_reads_again() {
        let s = setup();
        let (part, slot) = loaded(&s).await;
        s.append(3); // 0-2
        let (pa, pb) = (plan(&slot, &part, 500), plan(&slot, &part, 500));
        let (ra, rb) = (read(&part, &pa), read(&part, &pb));
        assert_eq!(finish(&slot, "a", &pa, ra, 500).0, vec![(0, 2)]);
        // All b read is a's now: b is told to read again (from 3, where it finds nothing).
        let (b, _, again) = finish(&slot, "b", &pb, rb, 500);
        assert!(b.is_empty());
        assert!(again, "the next fetch offset moved: read again");
        let pb = plan(&slot, &part, 500);
        assert_eq!(pb.at, 3);
        assert!(read_batches(&part, &pb, 1 << 20, false)
            .expect("read")
            .is_none());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_fetches_of_many_members_neither_skip_nor_repeat_a_record() {
        let s = setup();
        let (part, _slot) = loaded(&s).await;
        const BATCHES: usize = 200;
        for _ in 0..BATCHES {
            s.append(3);
        }
        let total = i64::try_from(BATCHES * 3).expect("fits");
        let broker = Arc::clone(&s.broker);
        let mut tasks = Vec::new();
        for m in 0..6 {
            let broker = Arc::clone(&broker);
            let part = Arc::clone(&part);
            let topic_id = s.topic.id;
            tasks.push(tokio::spawn(async move {
                let member = format!("m{m}");
                let mut got = Vec::new();
                for _ in 0..400 {
                    let out = broker
                        .share_partitions
                        .acquire(
                            &broker,
                            "g",
                            &member,
                            topic_id,
                            &part,
                            7,
                            1 << 20,
                            AcquireMode::BatchOptimized,
                        )
                        .await
                        .expect("acquire");
                    for r in &out.acquired {
                        got.push((r.first_offset, r.last_offset));
                    }
                    // The batches sent hold exactly the acquired ranges' batches.
                    for (first, last) in sent_batches(&out) {
                        assert!(out
                            .acquired
                            .iter()
                            .any(|r| r.first_offset <= last && first <= r.last_offset));
                    }
                    tokio::task::yield_now().await;
                }
                (member, got)
            }));
        }
        let mut owner: BTreeMap<i64, String> = BTreeMap::new();
        for t in tasks {
            let (member, got) = t.await.expect("task");
            for (first, last) in got {
                for o in first..=last {
                    let prev = owner.insert(o, member.clone());
                    assert!(
                        prev.is_none(),
                        "offset {o} acquired by {prev:?} and {member}"
                    );
                }
            }
        }
        let expected: Vec<i64> = (0..total).collect();
        assert_eq!(owner.keys().copied().collect::<Vec<_>>(), expected);
    }

    #[tokio::test]
    async fn a_fetch_racing_a_release_takes_only_what_is_available_and_skips_nothing() {
        let s = setup();
        let (part, slot) = loaded(&s).await;
        for _ in 0..4 {
            s.append(5); // 0-4, 5-9, 10-14, 15-19
        }
        let m1 = acquire(&s, &part, "m1", 10).await;
        assert_eq!(m1.acquired[0].first_offset, 0);
        assert_eq!(m1.acquired[0].last_offset, 9);
        // m2 plans at 10 and reads 10-19; meanwhile m1 releases 0-9.
        let p2 = plan(&slot, &part, 500);
        assert_eq!(p2.at, 10);
        let r2 = read(&part, &p2);
        acknowledge(&s, &part, "m1", (0, 9), AcknowledgeType::Release).await;
        // m3 plans and reads at 0 (released), then m2 finishes its read of 10-19.
        let p3 = plan(&slot, &part, 500);
        assert_eq!(p3.at, 0);
        let r3 = read(&part, &p3);
        assert_eq!(finish(&slot, "m2", &p2, r2, 500).0, vec![(10, 19)]);
        // m3's read covers 0-19: it gets the released 0-9 and nothing of m2's.
        let (m3, m3_sent, _) = finish(&slot, "m3", &p3, r3, 500);
        assert_eq!(m3, vec![(0, 9)]);
        assert_eq!(m3_sent, vec![(0, 4), (5, 9)]);
        let core = slot.core();
        let core = core.as_ref().expect("loaded");
        assert_eq!(core.record_state(0).map(|(_, count)| count), Some(2));
        assert_eq!(core.record_state(10).map(|(_, count)| count), Some(1));
    }

    #[tokio::test]
    async fn an_acknowledgement_between_the_read_and_the_acquisition_is_kept() {
        let s = setup();
        let (part, slot) = loaded(&s).await;
        let manager = &s.broker.share_partitions;
        s.append(4); // 0-3
        let m1 = acquire(&s, &part, "m1", 500).await;
        assert_eq!(m1.acquired.len(), 1);
        // m1 releases 0-3; m2 plans and reads at 0; m3 takes 0-3 and accepts them before m2
        // acquires.
        acknowledge(&s, &part, "m1", (0, 3), AcknowledgeType::Release).await;
        let p2 = plan(&slot, &part, 500);
        let r2 = read(&part, &p2);
        let m3 = acquire(&s, &part, "m3", 500).await;
        assert_eq!(m3.acquired[0].first_offset, 0);
        acknowledge(&s, &part, "m3", (0, 3), AcknowledgeType::Accept).await;
        let (m2, sent, _) = finish(&slot, "m2", &p2, r2, 500);
        assert!(m2.is_empty(), "accepted records are not delivered again");
        assert!(sent.is_empty());
        assert_eq!(manager.offsets(&s.key()), Some((4, 4)));
    }

    #[tokio::test]
    async fn a_read_that_fails_changes_nothing_and_the_records_come_later() {
        let s = setup();
        let (part, _slot) = loaded(&s).await;
        let manager = &s.broker.share_partitions;
        s.append(3); // 0-2
        let segment = s._dir.path().join("t-0").join("00000000000000000000.log");
        let saved = std::fs::read(&segment).expect("segment");
        // The segment file loses its bytes under the log (a failing disk, as far as a read
        // can tell): the header read fails.
        std::fs::OpenOptions::new()
            .write(true)
            .open(&segment)
            .expect("open")
            .set_len(0)
            .expect("truncate");
        let err = manager
            .acquire(
                &s.broker,
                "g",
                "m1",
                s.topic.id,
                &part,
                500,
                1 << 20,
                AcquireMode::BatchOptimized,
            )
            .await
            .expect_err("the read fails");
        assert_eq!(err, ErrorCode::KAFKA_STORAGE_ERROR);
        assert_eq!(manager.offsets(&s.key()), Some((0, 0)), "nothing acquired");
        std::fs::write(&segment, &saved).expect("restore");
        let out = acquire(&s, &part, "m1", 500).await;
        assert_eq!(
            out.acquired
                .iter()
                .map(|r| (r.first_offset, r.last_offset, r.delivery_count))
                .collect::<Vec<_>>(),
            vec![(0, 2, 1)],
            "delivered once, not counted for the failed read"
        );
    }

    #[tokio::test]
    async fn read_committed_skips_aborted_batches_and_archives_control_ones_from_headers() {
        use gregor_protocol::control::{ControlRecordType, EndTransactionMarker};
        let s = setup();
        let (part, slot) = loaded(&s).await;
        part.append(
            &crate::partition::tests::txn_batch(7, 0, 2),
            &s.topic.settings,
        )
        .expect("txn"); // 0-1
        part.append_end_txn_marker(
            7,
            0,
            EndTransactionMarker {
                control_type: ControlRecordType::Abort,
                coordinator_epoch: 0,
            },
        )
        .expect("abort"); // 2
        s.append(2); // 3-4
        let p = plan(&slot, &part, 500);
        let r = read_batches(&part, &p, 1 << 20, true)
            .expect("read")
            .expect("records");
        let kinds: Vec<FetchedBatch> = r.batches.iter().map(|(b, _, _)| *b).collect();
        assert_eq!(
            kinds,
            vec![
                FetchedBatch::skipped(0, 1),
                FetchedBatch::skipped(2, 2),
                FetchedBatch::records(3, 4)
            ]
        );
        let (got, sent, _) = finish(&slot, "m", &p, r, 500);
        assert_eq!(got, vec![(3, 4)]);
        assert_eq!(
            sent,
            vec![(3, 4)],
            "only the batch holding acquired records"
        );
        // read_uncommitted would deliver the aborted records: the same log read that way.
        let s2 = setup();
        let (part2, slot2) = loaded(&s2).await;
        part2
            .append(
                &crate::partition::tests::txn_batch(7, 0, 2),
                &s2.topic.settings,
            )
            .expect("txn");
        part2
            .append_end_txn_marker(
                7,
                0,
                EndTransactionMarker {
                    control_type: ControlRecordType::Abort,
                    coordinator_epoch: 0,
                },
            )
            .expect("abort");
        let p2 = plan(&slot2, &part2, 500);
        let r2 = read_batches(&part2, &p2, 1 << 20, false)
            .expect("read")
            .expect("records");
        assert_eq!(finish(&slot2, "m", &p2, r2, 500).0, vec![(0, 1)]);
    }

    #[test]
    fn headers_are_read_alone_and_match_the_batches() {
        use std::io::Write;
        let big = vec![b'x'; 6000];
        let mut file = tempfile::tempfile().expect("tempfile");
        let mut bytes = Vec::new();
        let mut base = 0i64;
        // Small batches (read a window at a time), then large ones (headers alone), then
        // small again.
        for (i, size) in [10usize, 10, 10, 6000, 6000, 10, 6000, 10, 10]
            .into_iter()
            .enumerate()
        {
            let value = &big[..size];
            let records: Vec<batch::SimpleRecord<'_>> =
                (0..=i % 3).map(|_| (None, Some(value))).collect();
            let mut b = batch::encode_simple_batch(1, &records);
            b[0..8].copy_from_slice(&base.to_be_bytes());
            base += i64::try_from(i % 3 + 1).expect("fits");
            bytes.extend_from_slice(&b);
        }
        file.write_all(&bytes).expect("write");
        let slice = FileSlice {
            file: Arc::new(file),
            position: 0,
            len: bytes.len(),
        };
        let expected: Vec<(usize, i64, i64)> = {
            let mut pos = 0;
            batch::batches(&bytes)
                .map(|b| {
                    let b = b.expect("batch");
                    let at = pos;
                    pos += b.size();
                    (at, b.base_offset(), b.last_offset())
                })
                .collect()
        };
        let got: Vec<(usize, i64, i64)> = read_batch_headers(&slice, 0, u64::MAX)
            .expect("headers")
            .iter()
            .map(|h| (h.position, h.base_offset, h.last_offset))
            .collect();
        assert_eq!(got, expected);
        // Enough new records covered: the read stops (records 0-5 are new from 3: 3 wanted
        // end in the batch 3-5).
        let got = read_batch_headers(&slice, 3, 3).expect("headers");
        assert_eq!(
            got.last().map(|h| (h.base_offset, h.last_offset)),
            Some((3, 5))
        );
        // A range past the file's end: the read fails.
        let at_end = FileSlice {
            position: u64::try_from(bytes.len()).expect("fits"),
            len: 100,
            ..slice
        };
        assert!(read_batch_headers(&at_end, 0, u64::MAX).is_err());
    }
}
