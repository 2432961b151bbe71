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

use bytes::Bytes;
use gregor_protocol::error::ErrorCode;
use gregor_share::partition::{
    AckBatch, AckError, AcquiredRange, FetchedBatch, PendingAck, SharePartition,
};
use gregor_share::{AutoOffsetReset, PersistError, PersistedState, ShareGroupSettings, ShareKey};
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
    /// Whole batches holding the acquired records.
    pub records: Option<Bytes>,
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
        }
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
        let slot = self.slot(broker, group, topic_id, partition).await?;
        let pending = {
            let mut core = slot.core();
            let Some(core) = core.as_mut() else {
                return Err(ErrorCode::NOT_LEADER_OR_FOLLOWER);
            };
            let pending = core
                .acknowledge_pending(member, batches)
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
        let released = slot
            .core()
            .as_mut()
            .is_some_and(|core| core.commit(&pending));
        if released {
            self.wake();
        }
        Ok(())
    }

    /// Acquires records of `partition` for `member` now: reads whole batches from the
    /// share-partition's next fetch offset (at most `max_bytes`, at least one batch) below
    /// the high watermark (read_committed: the last stable offset) and acquires up to
    /// `max_records` of them. An empty answer when nothing can be acquired.
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
    ) -> Result<PartitionRecords, ErrorCode> {
        let slot = self.slot(broker, group, topic_id, partition).await?;
        let settings = crate::group_configs::share_settings(broker, group);
        let now = broker.clock.now_ms();
        let (out, changed) = {
            let mut guard = slot.core();
            let Some(core) = guard.as_mut() else {
                return Err(ErrorCode::NOT_LEADER_OR_FOLLOWER);
            };
            core.update_settings(&settings);
            acquire_locked(
                core,
                partition,
                member,
                max_records,
                max_bytes,
                &settings,
                now,
            )?
        };
        if changed {
            slot.changed();
            // Archived records or a moved start: written in the background (nothing waits).
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

/// The read and acquisition of one partition, under the slot's lock (so reads of one
/// share-partition do not interleave). Returns the records and whether the durable state
/// changed.
fn acquire_locked(
    core: &mut SharePartition,
    part: &Partition,
    member: &str,
    max_records: u64,
    max_bytes: usize,
    settings: &ShareGroupSettings,
    now: i64,
) -> Result<(PartitionRecords, bool), ErrorCode> {
    let mut changed = false;
    if let Ok(log_start) = part.log_start_offset() {
        changed |= core.advance_log_start(log_start).state_changed;
    }
    if !core.can_acquire() {
        return Ok((PartitionRecords::default(), changed));
    }
    let at = core.next_fetch_offset();
    let isolation = if settings.read_committed {
        FetchIsolation::TxnCommitted
    } else {
        FetchIsolation::HighWatermark
    };
    let read = match part.fetch_read(at, max_bytes.max(1), true, isolation) {
        Ok(read) => read,
        Err(code) if code == ErrorCode::OFFSET_OUT_OF_RANGE => {
            // Retention removed the next records: start again at the log start (Kafka
            // answers this partition without an error and the client fetches again).
            if let Ok(log_start) = part.log_start_offset() {
                changed |= core.advance_log_start(log_start).state_changed;
            }
            return Ok((PartitionRecords::default(), changed));
        }
        Err(code) => return Err(code),
    };
    let Some(slice) = read.info.slice else {
        return Ok((PartitionRecords::default(), changed));
    };
    let bytes = slice
        .read_to_vec()
        .map_err(|_| ErrorCode::KAFKA_STORAGE_ERROR)?;
    let aborted = read.aborted_transactions.unwrap_or_default();
    let mut spans: Vec<(FetchedBatch, usize, usize)> = Vec::new();
    let mut pos = 0usize;
    for batch in gregor_protocol::batch::batches(&bytes) {
        let Ok(batch) = batch else { break };
        let (first, last) = (batch.base_offset(), batch.last_offset());
        let aborted_txn = settings.read_committed
            && batch.is_transactional()
            && !batch.is_control()
            && aborted.iter().any(|a| {
                a.producer_id == batch.producer_id()
                    && a.first_offset <= first
                    && first <= a.last_offset
            });
        let fetched = if batch.is_control() || aborted_txn {
            FetchedBatch::skipped(first, last)
        } else {
            FetchedBatch::records(first, last)
        };
        spans.push((fetched, pos, pos + batch.size()));
        pos += batch.size();
    }
    let batches: Vec<FetchedBatch> = spans.iter().map(|(b, _, _)| *b).collect();
    let acquired = core.acquire(member, at, &batches, max_records, now);
    changed |= acquired.state_changed;
    if acquired.ranges.is_empty() {
        return Ok((PartitionRecords::default(), changed));
    }
    // Only the batches holding acquired records go back.
    let overlaps = |b: &FetchedBatch| {
        acquired
            .ranges
            .iter()
            .any(|r| r.first_offset <= b.last_offset && b.first_offset <= r.last_offset)
    };
    let from = spans.iter().find(|(b, _, _)| overlaps(b)).map(|s| s.1);
    let to = spans
        .iter()
        .rev()
        .find(|(b, _, _)| overlaps(b))
        .map(|s| s.2);
    let records = match (from, to) {
        (Some(from), Some(to)) if from < to => Some(Bytes::from(bytes).slice(from..to)),
        _ => None,
    };
    Ok((
        PartitionRecords {
            records,
            acquired: acquired.ranges,
        },
        changed,
    ))
}
