//! One partition hosted by this broker (Kafka's `cluster.Partition`): its log, the replication
//! core (`gregor_replication::Partition`: leader epoch, replicas, ISR, followers, high
//! watermark) and the watches that delayed produces and fetches wait on.
//!
//! ```text
//!  produce ─► append_to_leader ─► validate ─► check_append (core) ─► Log::append_as_leader
//!                                      │                   ─► core.leader_append(log end)
//!  WriteTxnMarkers ─► append_end_txn_marker ─► check_append(-1) ─► Log::append_end_txn_marker_as_leader
//!  fetch_read ─► Log::last_stable_offset(HW); read_committed reads below it (Log::read_committed)
//!                                      ▼
//!                    log_end_offset watch ──► delayed follower fetches
//!                    high_watermark watch ──► delayed consumer fetches, delayed produces
//!  follower Fetch ─► diverging_epoch (leader's epoch cache) ─► follower_fetch ─► core
//!                    .follower_fetch ─► HW may advance
//!  replica fetcher ─► append_as_follower ─► Log::append_as_follower ─► core.follower_append
//!                     (follower HW = min(leader's HW, local log end)); truncate_to on a
//!                     diverging epoch
//!  periodic task ──► tick ─► core.tick (ISR shrink) ─► pending AlterPartition queue
//!  acks=all ───────► wait_durable(offset): group commit (one flusher per partition)
//! ```
//!
//! Locks: the log's mutex (shared with the `LogManager`) and the core's mutex are separate;
//! whoever takes both takes the log first. An append holds both, so the log end the core
//! sees and the log's agree, and a read that takes the high watermark under the log lock
//! never sees it ahead of the log.
//!
//! On a single node the partition becomes leader when it is opened, with replicas = ISR =
//! this node (`node.id`) and leader epoch 0 (the epoch in every batch written so far); the
//! core then moves the high watermark to the log end after each append, as before it existed.
//! AlterPartition proposals from the core wait in a queue; queuing one wakes the replica
//! manager's AlterPartition sender (alter_partition.rs), which sends them to the controller and
//! hands each answer back ([`Partition::alter_partition_response`]).

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use gregor_protocol::batch::{validate_record_set, validate_record_set_bounded};
use gregor_protocol::control::EndTransactionMarker;
use gregor_protocol::error::ErrorCode;
use gregor_protocol::recompress::recompress;
use gregor_replication::epoch::EpochEndOffset;
use gregor_replication::{
    AlterPartitionRequest, AlterPartitionResponse, BrokerId, FollowerFetch, LeaderAndIsr,
    LogOffsets, Output, ProduceStatus, ProposalId, ReplicationConfig, ReplicationError, StateError,
};
use gregor_storage::producer_state::{
    AppendOrigin, ProducerStateError, TxnAppendStart, TxnVerification, VerificationGuard,
};
use gregor_storage::{AbortedTxn, LogAppendInfo, ReadInfo, StorageError, TopicPartition};
use tokio::sync::{watch, Notify};
use tracing::{debug, error, info, warn};

use crate::clock::Clock;
use crate::config::FlushPolicy;
use crate::topic_config::TopicSettings;

/// How far a read may go (Kafka's `FetchIsolation`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FetchIsolation {
    /// Consumers (read_uncommitted): only records below the high watermark (committed to the
    /// ISR).
    HighWatermark,
    /// read_committed consumers: only records below the last stable offset, with the aborted
    /// transactions among them.
    TxnCommitted,
    /// Followers: everything in the log.
    LogEnd,
}

/// A leader append: where the records went, and the leader epoch they were written in (a
/// delayed produce completes only while that epoch lasts).
#[derive(Debug, Clone)]
pub struct LeaderAppend {
    /// Offsets and times of the append.
    pub info: LogAppendInfo,
    /// The leader epoch written into the batches.
    pub leader_epoch: i32,
}

/// What a fetch read from one partition: the records and the offsets to report with them.
#[derive(Debug)]
pub struct PartitionRead {
    /// The records (file ranges), if any.
    pub info: ReadInfo,
    /// Log start offset at the read.
    pub log_start_offset: i64,
    /// High watermark at the read (consumer reads stop there).
    pub high_watermark: i64,
    /// Last stable offset at the read (read_committed reads stop there).
    pub last_stable_offset: i64,
    /// For a read_committed read, the aborted transactions that overlap the records returned
    /// (`None` for the other isolations).
    pub aborted_transactions: Option<Vec<AbortedTxn>>,
}

/// A producer a partition knows, as DescribeProducers shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ActiveProducer {
    pub producer_id: i64,
    pub epoch: i16,
    /// -1 when no batch of the current epoch is cached.
    pub last_sequence: i32,
    pub last_timestamp: i64,
    /// Epoch of the coordinator that wrote the producer's last marker (-1: none).
    pub coordinator_epoch: i32,
    /// First offset of the producer's open transaction (-1: none).
    pub current_txn_start_offset: i64,
}

/// The replication core and what it asked for that nobody has taken yet.
#[derive(Debug)]
struct Replica {
    core: gregor_replication::Partition,
    /// AlterPartition requests proposed by the core (ISR expand/shrink), oldest first. The
    /// AlterPartition sender drains this queue ([`Partition::take_pending_alter_partition`])
    /// and answers with [`Partition::alter_partition_response`].
    pending_alter_partition: Vec<AlterPartitionRequest>,
}

/// One partition hosted here.
#[derive(Debug)]
pub struct Partition {
    /// Topic and partition number.
    pub tp: TopicPartition,
    log: Arc<Mutex<gregor_storage::Log>>,
    /// Leader epoch, replicas, ISR, followers, high watermark.
    replica: Mutex<Replica>,
    /// Time for the core (ISR lag) and for append timestamps.
    clock: Arc<dyn Clock>,
    /// Log end offset: delayed follower fetches wait on it.
    log_end_offset: watch::Sender<i64>,
    /// High watermark: delayed consumer fetches and acks=all produces wait on it. Also sent
    /// (with an unchanged value) when leadership or the ISR may have changed, so waiters
    /// re-check.
    high_watermark: watch::Sender<i64>,
    /// Offset below which the log is fsynced; acks=all produces wait on it.
    durable: watch::Sender<i64>,
    /// Kafka's low watermark as leader (the smallest log start of the live replicas; `None`
    /// when not leader); DeleteRecords waits on it.
    low_watermark: watch::Sender<Option<i64>>,
    /// A flush task is running (at most one per partition; others ride along).
    flushing: AtomicBool,
    /// Set after an fsync failure: the log is no longer trusted (Kafka takes the dir offline).
    failed: AtomicBool,
    /// Records appended since the last flush (Kafka's `log.flush.interval.messages`).
    unflushed_records: AtomicI64,
    /// The topic's `flush.messages` under an interval flush policy; 0 under gregor's default
    /// (fsync before an acks=all answer). See [`Partition::flush_policy`].
    flush_messages: AtomicI64,
    /// The topic's `flush.ms` under an interval flush policy.
    flush_ms: AtomicI64,
    /// When the last flush ended, ms (Kafka's `lastFlushTime`), for `flush.ms`.
    last_flush_ms: AtomicI64,
    /// Woken when an AlterPartition is queued (the replica manager's, shared by every
    /// partition; the AlterPartition sender waits on it).
    alter_partition_wanted: Arc<Notify>,
    /// The topic's produce and fetch meters (`/metrics`), counted by the handlers.
    pub stats: crate::stats::TopicStats,
}

/// A log's size and offsets, for `/metrics` (Kafka's `kafka.log:type=Log` gauges).
#[derive(Debug, Clone, Copy)]
pub struct LogStats {
    pub size_bytes: u64,
    pub segments: usize,
    pub log_start_offset: i64,
    pub log_end_offset: i64,
}

/// The Kafka error code of a replication error.
pub(crate) fn replication_error_code(e: &ReplicationError) -> ErrorCode {
    ErrorCode(e.code())
}

impl Partition {
    /// Opens a partition over its log with no role yet; the metadata image gives it one
    /// ([`Partition::apply_registration`]).
    ///
    /// The high watermark starts at the checkpointed one (`replication-offset-checkpoint`,
    /// within the log), or at the log end for a partition without one (a data directory of a
    /// single-node version, where the log end was the high watermark). A leader's high
    /// watermark then moves forward as the ISR allows (a one-member ISR at once to the log
    /// end); a follower takes the leader's with every fetch.
    pub(crate) fn open_replica(
        tp: TopicPartition,
        log: Arc<Mutex<gregor_storage::Log>>,
        local_id: BrokerId,
        config: ReplicationConfig,
        clock: Arc<dyn Clock>,
        alter_partition_wanted: Arc<Notify>,
        checkpointed_high_watermark: Option<i64>,
    ) -> Result<Partition, ErrorCode> {
        let (offsets, durable) = {
            let l = log.lock().map_err(|_| ErrorCode::KAFKA_STORAGE_ERROR)?;
            let (start, end) = (l.log_start_offset(), l.log_end_offset());
            let offsets = LogOffsets {
                log_start_offset: start,
                high_watermark: checkpointed_high_watermark.map_or(end, |hw| hw.clamp(start, end)),
                log_end_offset: end,
            };
            (offsets, l.recovery_point())
        };
        let core = gregor_replication::Partition::new(local_id, 0, config, offsets).map_err(|e| {
            error!(partition = %tp_name(&tp), error = %e, "cannot start the partition's replication state");
            ErrorCode::KAFKA_STORAGE_ERROR
        })?;
        let stats = crate::stats::TopicStats::new(&tp.topic);
        let now = clock.now_ms();
        Ok(Partition {
            tp,
            log,
            replica: Mutex::new(Replica {
                core,
                pending_alter_partition: Vec::new(),
            }),
            clock,
            log_end_offset: watch::channel(offsets.log_end_offset).0,
            high_watermark: watch::channel(offsets.high_watermark).0,
            durable: watch::channel(durable).0,
            low_watermark: watch::channel(None).0,
            flushing: AtomicBool::new(false),
            failed: AtomicBool::new(false),
            unflushed_records: AtomicI64::new(0),
            flush_messages: AtomicI64::new(0),
            flush_ms: AtomicI64::new(i64::MAX),
            last_flush_ms: AtomicI64::new(now),
            alter_partition_wanted,
            stats,
        })
    }

    /// Applies the partition's registration from the metadata image: leader (Kafka's
    /// `makeLeader`) or follower (`makeFollower`) in the registration's epochs. A registration
    /// the core has already seen changes nothing.
    pub fn apply_registration(&self, registration: &LeaderAndIsr) -> Result<(), StateError> {
        let local = self.replica().core.local_id();
        if registration.leader == local {
            return self.become_leader(registration);
        }
        let mut replica = self.replica();
        if replica.core.leader_epoch() == registration.leader_epoch
            && replica.core.partition_epoch() == registration.partition_epoch
            && !replica.core.is_leader()
            && replica.core.leader() == Some(registration.leader)
        {
            return Ok(());
        }
        replica.core.become_follower(registration)?;
        self.execute(&mut replica, Vec::new(), true);
        Ok(())
    }

    fn lock(&self) -> Result<MutexGuard<'_, gregor_storage::Log>, ErrorCode> {
        self.log.lock().map_err(|_| ErrorCode::KAFKA_STORAGE_ERROR)
    }

    fn replica(&self) -> MutexGuard<'_, Replica> {
        // The core is left consistent by every call (each checks before it changes anything).
        self.replica.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Carries out the core's outputs, in order, and wakes the high watermark's waiters when
    /// it moved or, with `state_changed`, when leadership or the ISR may have changed (a
    /// delayed produce may now fail rather than wait).
    fn execute(&self, replica: &mut Replica, outputs: Vec<Output>, state_changed: bool) {
        for out in outputs {
            match out {
                Output::HighWatermarkAdvanced { .. } => {}
                Output::AlterPartition(request) => {
                    info!(partition = %tp_name(&self.tp), isr = ?request.isr_ids(),
                        "ISR change proposed (AlterPartition)");
                    let (current, proposed) = (replica.core.isr().len(), request.new_isr.len());
                    if proposed != current {
                        crate::stats::isr_change(proposed < current);
                    }
                    replica.pending_alter_partition.push(request);
                    self.alter_partition_wanted.notify_one();
                }
                Output::AssignEpochStartOffset {
                    leader_epoch,
                    start_offset,
                } => {
                    // Written to the log's leader-epoch cache by `become_leader` once the
                    // replica lock is released (the log lock comes first everywhere).
                    debug!(partition = %tp_name(&self.tp), leader_epoch, start_offset,
                        "leader epoch starts");
                }
            }
        }
        let hw = replica.core.high_watermark();
        if state_changed || hw != *self.high_watermark.borrow() {
            self.high_watermark.send_replace(hw);
        }
        let low = replica.core.low_watermark();
        self.low_watermark.send_if_modified(|l| {
            let changed = *l != low;
            *l = low;
            changed
        });
    }

    // ---- replication state ----

    /// Applies a registration naming this broker leader (Kafka's `makeLeader`), from the
    /// metadata image ([`apply_registration`](Self::apply_registration)) or a test.
    ///
    /// The new epoch enters the leader-epoch cache at the log end at once (Kafka's
    /// `assignEpochStartOffset` in `makeLeader`), not with the first batch of the epoch: a
    /// follower's OffsetForLeaderEpoch for the previous epoch then gets where it ended, and one
    /// for the new epoch an answer, even before anything was produced in it.
    pub fn become_leader(&self, registration: &LeaderAndIsr) -> Result<(), StateError> {
        {
            let mut replica = self.replica();
            let outputs = replica
                .core
                .become_leader(registration, self.clock.now_ms())?;
            self.execute(&mut replica, outputs, true);
        }
        // After the replica lock is released (appends take the log lock first). A produce
        // that got in between assigned the same epoch at the same offset already.
        match self.lock() {
            Ok(mut log) => {
                if let Err(e) = log.assign_epoch_start_offset(registration.leader_epoch) {
                    warn!(
                        partition = %tp_name(&self.tp),
                        epoch = registration.leader_epoch,
                        error = %e,
                        "could not record the leader epoch's start offset"
                    );
                }
            }
            Err(_) => warn!(partition = %tp_name(&self.tp), "log unavailable on becoming leader"),
        }
        Ok(())
    }

    /// The partition is no longer hosted here (its topic was deleted, or its replica moved
    /// away): it leads nothing any more, so waiting produces answer NOT_LEADER_OR_FOLLOWER and
    /// waiting fetches re-check (the log itself is deleted by the caller).
    pub(crate) fn mark_deleted(&self) {
        let mut replica = self.replica();
        let gone = LeaderAndIsr {
            leader: gregor_metadata::NO_LEADER,
            leader_epoch: replica.core.leader_epoch().saturating_add(1),
            partition_epoch: replica.core.partition_epoch().saturating_add(1),
            replicas: replica.core.replicas().to_vec(),
            isr: replica.core.isr().iter().copied().collect(),
        };
        if let Err(e) = replica.core.become_follower(&gone) {
            debug!(partition = %tp_name(&self.tp), error = %e, "deleted partition keeps its role");
        }
        self.execute(&mut replica, Vec::new(), true);
        self.log_end_offset.send_modify(|_| {});
    }

    /// The log, for the log cleaner (which takes its lock only briefly; see
    /// `gregor_storage::cleaner`).
    pub(crate) fn log_handle(&self) -> &Arc<Mutex<gregor_storage::Log>> {
        &self.log
    }

    /// What the log cleaner may clean now (`None`: nothing, or not a compacted log), with the
    /// log's `min.cleanable.dirty.ratio` and `max.compaction.lag.ms`: closed
    /// segments below the last stable offset, itself at most the high watermark, so the
    /// cleaner never touches records consumers cannot see yet, nor open transactions. A
    /// follower cleans its own copy below its high watermark the same way.
    pub(crate) fn cleanable(
        &self,
        checkpoint: Option<i64>,
        now_ms: i64,
    ) -> Option<(gregor_storage::LogToClean, f64, i64)> {
        let mut log = self.lock().ok()?;
        if !log.config().compact {
            return None;
        }
        let high_watermark = *self.high_watermark.borrow();
        let bound = log.last_stable_offset(high_watermark);
        let c = log.config();
        let (ratio, max_lag) = (c.min_cleanable_dirty_ratio, c.max_compaction_lag_ms);
        log.cleanable(checkpoint, bound, now_ms)
            .map(|t| (t, ratio, max_lag))
    }

    /// The topic's log settings changed (AlterConfigs).
    pub(crate) fn set_log_config(&self, config: gregor_storage::LogConfig) {
        if let Ok(mut log) = self.lock() {
            log.set_config(config);
        }
    }

    /// The topic's `min.insync.replicas` changed (AlterConfigs, or a dynamic broker config).
    pub(crate) fn set_min_insync_replicas(&self, min_insync_replicas: i32) {
        let mut replica = self.replica();
        let outputs = replica.core.set_min_insync_replicas(
            usize::try_from(min_insync_replicas).unwrap_or(1),
            self.clock.now_ms(),
        );
        if !outputs.is_empty() {
            self.execute(&mut replica, outputs, true);
        }
    }

    /// The controller's answer to an AlterPartition this partition proposed.
    pub fn alter_partition_response(
        &self,
        proposal: ProposalId,
        response: &AlterPartitionResponse,
    ) {
        let mut replica = self.replica();
        let outputs =
            replica
                .core
                .alter_partition_response(proposal, response, self.clock.now_ms());
        self.execute(&mut replica, outputs, true);
    }

    /// Takes the AlterPartition requests the core proposed, oldest first.
    pub fn take_pending_alter_partition(&self) -> Vec<AlterPartitionRequest> {
        std::mem::take(&mut self.replica().pending_alter_partition)
    }

    /// Periodic work: ISR shrink (followers out of sync for `replica.lag.time.max.ms`),
    /// AlterPartition retries.
    pub fn tick(&self) {
        let mut replica = self.replica();
        let outputs = replica.core.tick(self.clock.now_ms());
        if !outputs.is_empty() {
            self.execute(&mut replica, outputs, true);
        }
    }

    /// Whether this broker leads the partition.
    pub fn is_leader(&self) -> bool {
        self.replica().core.is_leader()
    }

    /// The current leader epoch.
    pub fn leader_epoch(&self) -> i32 {
        self.replica().core.leader_epoch()
    }

    /// Where this broker's leader epoch began in the log (Kafka's `leaderEpochStartOffsetOpt`);
    /// `None` when it does not lead. A new leader's high watermark can lag behind it until
    /// the followers fetch from it.
    pub fn leader_epoch_start_offset(&self) -> Option<i64> {
        self.replica().core.leader_epoch_start_offset()
    }

    /// The leader epoch the record at `offset` was written in, from the log's epoch cache.
    pub fn epoch_for_offset(&self, offset: i64) -> Result<Option<i32>, ErrorCode> {
        Ok(self.lock()?.leader_epoch_cache().epoch_for_offset(offset))
    }

    /// The leader, if known.
    pub fn leader(&self) -> Option<BrokerId> {
        self.replica().core.leader()
    }

    /// The replicas, in assignment order.
    pub fn replicas(&self) -> Vec<BrokerId> {
        self.replica().core.replicas().to_vec()
    }

    /// The committed ISR, sorted.
    pub fn isr(&self) -> Vec<BrokerId> {
        self.replica().core.isr().iter().copied().collect()
    }

    /// KIP-392, on the leader: the replicas a consumer fetching at `fetch_offset` may be sent
    /// to, as `(broker id, log end offset, ms since caught up)`, the leader first (0 ms), then
    /// the followers in the ISR whose log holds the offset (Kafka's
    /// `findPreferredReadReplica`). `None` on a follower.
    pub fn read_replica_candidates(
        &self,
        fetch_offset: i64,
        now_ms: i64,
    ) -> Option<Vec<(BrokerId, i64, i64)>> {
        let replica = self.replica();
        let core = &replica.core;
        if !core.is_leader() {
            return None;
        }
        let mut out = vec![(core.local_id(), core.log_end_offset(), 0)];
        for &id in core.isr().iter().filter(|&&id| id != core.local_id()) {
            let Some(state) = core.replica_state(id) else {
                continue;
            };
            if state.log_end_offset >= fetch_offset && state.log_start_offset <= fetch_offset {
                let since = state
                    .last_caught_up_time_ms
                    .map_or(i64::MAX, |t| now_ms.saturating_sub(t));
                out.push((id, state.log_end_offset, since));
            }
        }
        Some(out)
    }

    /// Kafka's `checkEnoughReplicasReachOffset` for a delayed acks=all produce.
    pub fn produce_status(&self, required_offset: i64, leader_epoch: i32) -> ProduceStatus {
        self.replica()
            .core
            .produce_status(required_offset, leader_epoch)
    }

    /// A follower fetched at `fetch.fetch_offset`: the core records its position (the HW may
    /// advance, the ISR may expand). An error is the partition's code in the Fetch response.
    pub fn follower_fetch(&self, fetch: &FollowerFetch) -> Result<(), ErrorCode> {
        let mut replica = self.replica();
        let outputs = replica
            .core
            .follower_fetch(fetch, self.clock.now_ms())
            .map_err(|e| replication_error_code(&e))?;
        self.execute(&mut replica, outputs, false);
        Ok(())
    }

    /// Kafka's `checkCurrentLeaderEpoch` for a request that carries one (`-1`: none).
    pub fn check_leader_epoch(&self, current_leader_epoch: i32) -> Result<(), ErrorCode> {
        let request = (current_leader_epoch >= 0).then_some(current_leader_epoch);
        self.replica()
            .core
            .check_leader_epoch(request)
            .map_err(|e| replication_error_code(&e))
    }

    /// DeleteRecords on the leader: moves the log start offset to `offset` (-1: the high
    /// watermark) and deletes the segments wholly below it. Returns the offset the replicas'
    /// low watermark must reach ([`wait_low_watermark`](Self::wait_low_watermark)): followers
    /// move their own log start when they next see the leader's. Beyond the high watermark:
    /// OFFSET_OUT_OF_RANGE.
    pub fn delete_records(&self, offset: i64) -> Result<i64, ErrorCode> {
        if !self.is_leader() {
            return Err(ErrorCode::NOT_LEADER_OR_FOLLOWER);
        }
        let hw = self.high_watermark();
        let target = if offset == -1 { hw } else { offset };
        if target < 0 || target > hw {
            return Err(ErrorCode::OFFSET_OUT_OF_RANGE);
        }
        {
            let mut log = self.lock()?;
            if target > log.log_start_offset() {
                log.delete_records_before(target)
                    .map_err(|e| storage_error_code(&self.tp, e))?;
            }
        }
        self.sync_log_start_offset()?;
        Ok(target)
    }

    /// The log start offset moved (retention): tell the core.
    pub(crate) fn sync_log_start_offset(&self) -> Result<(), ErrorCode> {
        let start = self.lock()?.log_start_offset();
        let mut replica = self.replica();
        if start > replica.core.log_start_offset() {
            replica.core.set_log_start_offset(start);
            self.execute(&mut replica, Vec::new(), false);
        }
        Ok(())
    }

    // ---- offsets ----

    /// Log start offset and high watermark: what consumers see.
    pub fn offsets(&self) -> Result<(i64, i64), ErrorCode> {
        let l = self.lock()?;
        Ok((l.log_start_offset(), *self.high_watermark.borrow()))
    }

    /// The log's size and offsets; `None` when its lock is poisoned.
    pub fn log_stats(&self) -> Option<LogStats> {
        let l = self.lock().ok()?;
        Some(LogStats {
            size_bytes: l.size_bytes(),
            segments: l.segment_count(),
            log_start_offset: l.log_start_offset(),
            log_end_offset: l.log_end_offset(),
        })
    }

    /// The topic's flush policy changed (its `flush.messages` / `flush.ms`, or the broker's
    /// `log.flush.interval.*`), or the partition was opened.
    pub(crate) fn set_flush_policy(&self, policy: FlushPolicy) {
        let (messages, ms) = match policy {
            FlushPolicy::OnAcksAll => (0, i64::MAX),
            FlushPolicy::Interval {
                messages,
                interval_ms,
            } => (messages.max(1), interval_ms),
        };
        self.flush_ms.store(ms, Ordering::Release);
        self.flush_messages.store(messages, Ordering::Release);
    }

    /// How its log is flushed: gregor's default (fsync before an acks=all answer, the
    /// followers before they fetch on), or Kafka's interval policy, the topic's
    /// `flush.messages` and `flush.ms` (the broker's `log.flush.interval.*` by default).
    pub fn flush_policy(&self) -> FlushPolicy {
        match self.flush_messages.load(Ordering::Acquire) {
            0 => FlushPolicy::OnAcksAll,
            messages => FlushPolicy::Interval {
                messages,
                interval_ms: self.flush_ms.load(Ordering::Acquire),
            },
        }
    }

    /// Whether an acks=all answer waits for the fsync of its records (gregor's default
    /// policy), and a follower fsyncs what it appended before it fetches on.
    pub fn flushes_before_acks(&self) -> bool {
        self.flush_messages.load(Ordering::Acquire) == 0
    }

    /// Under an interval policy, whether `flush.messages` records are unflushed: Kafka then
    /// flushes in the append, before the answer.
    pub fn flush_due_by_count(&self) -> bool {
        match self.flush_messages.load(Ordering::Acquire) {
            0 => false,
            messages => self.unflushed_records() >= messages,
        }
    }

    /// Under an interval policy, whether records are unflushed and due: `flush.messages` of
    /// them, or `flush.ms` passed since the last flush (Kafka's log flusher).
    pub fn flush_due(&self, now_ms: i64) -> bool {
        let messages = self.flush_messages.load(Ordering::Acquire);
        let unflushed = self.unflushed_records();
        if messages == 0 || unflushed == 0 {
            return false;
        }
        let since = now_ms.saturating_sub(self.last_flush_ms.load(Ordering::Acquire));
        unflushed >= messages || since >= self.flush_ms.load(Ordering::Acquire)
    }

    /// Whether a storage error took the partition offline (an fsync failed, here or in
    /// another partition of its log directory).
    pub fn is_offline(&self) -> bool {
        self.failed.load(Ordering::Acquire)
    }

    /// The answer to a failed write of the log. A write the disk refused (an I/O error but a
    /// full disk, ENOSPC or EDQUOT, which freed space cures) takes the partition offline, and
    /// with it its log directory at the next checkpoint tick, as Kafka treats any I/O error in
    /// a log directory; the records were not appended either way.
    fn write_error(&self, e: StorageError) -> ErrorCode {
        if e.is_disk_failure() {
            error!(partition = %tp_name(&self.tp), error = %e, "a write to the log failed; partition taken offline");
            self.fail_storage();
        }
        storage_error_code(&self.tp, e)
    }

    /// Takes the partition offline: its log directory failed (Kafka's offline log dir).
    pub(crate) fn fail_storage(&self) {
        self.failed.store(true, Ordering::Release);
        // Waiters for a flush re-check and see the failure.
        self.durable.send_modify(|_| {});
    }

    /// High watermark: what consumers may read.
    pub fn high_watermark(&self) -> i64 {
        *self.high_watermark.borrow()
    }

    /// Log end offset: the next offset an append gets.
    pub fn log_end_offset(&self) -> i64 {
        *self.log_end_offset.borrow()
    }

    /// Subscribes to high-watermark changes (delayed consumer fetch, delayed produce).
    pub fn watch_high_watermark(&self) -> watch::Receiver<i64> {
        self.high_watermark.subscribe()
    }

    /// Subscribes to log-end-offset changes (delayed follower fetch).
    pub fn watch_log_end_offset(&self) -> watch::Receiver<i64> {
        self.log_end_offset.subscribe()
    }

    // ---- produce ----

    /// Appends a produced record set as leader with acks=1 semantics (no ISR check): the
    /// group coordinator's writes and tests.
    pub fn append(
        &self,
        records: &[u8],
        settings: &TopicSettings,
    ) -> Result<LogAppendInfo, ErrorCode> {
        self.append_to_leader(records, settings, 1).map(|a| a.info)
    }

    /// The time on this partition's clock (the one its appends are stamped and checked with).
    pub fn now_ms(&self) -> i64 {
        self.clock.now_ms()
    }

    /// Kafka's `appendRecordsToLeader`: validates the record set, refuses when this broker does
    /// not lead or when `required_acks` is -1 and the ISR is below `min.insync.replicas`
    /// (NOT_ENOUGH_REPLICAS), else appends; the records go from the request buffer to the log
    /// file in one vectored write (rewritten batch headers only, no copy). The whole produce
    /// path's storage work (`validate_record_set`, `append_as_leader`) is in this function.
    pub fn append_to_leader(
        &self,
        records: &[u8],
        settings: &TopicSettings,
        required_acks: i16,
    ) -> Result<LeaderAppend, ErrorCode> {
        self.append_to_leader_from(AppendOrigin::Client, records, settings, required_acks)
    }

    /// [`append_to_leader`](Self::append_to_leader) for a coordinator of this broker (Kafka's
    /// `AppendOrigin`): the group coordinator's transactional offset batches get only the
    /// producer-epoch check.
    pub fn append_to_leader_from(
        &self,
        origin: AppendOrigin,
        records: &[u8],
        settings: &TopicSettings,
        required_acks: i16,
    ) -> Result<LeaderAppend, ErrorCode> {
        self.append_to_leader_verified(
            origin,
            records,
            settings,
            required_acks,
            TxnVerification::NotRequired,
        )
    }

    /// The log, locked, when this broker leads the partition and may append to it (the start
    /// of a transaction verification): KAFKA_STORAGE_ERROR after a storage failure, the
    /// replication error (NOT_LEADER_OR_FOLLOWER, ...) otherwise.
    fn lock_as_leader(&self) -> Result<MutexGuard<'_, gregor_storage::Log>, ErrorCode> {
        if self.failed.load(Ordering::Acquire) {
            return Err(ErrorCode::KAFKA_STORAGE_ERROR);
        }
        let log = self.lock()?;
        self.replica()
            .core
            .check_append(1)
            .map_err(|e| replication_error_code(&e))?;
        Ok(log)
    }

    /// Kafka's `maybeStartTransactionVerification` (KIP-890), with gregor's ordering of
    /// pipelined requests (`ProducerStateManager::start_transactional_append`): whether a
    /// transactional produce of `producer_id` is appended now, after a verification with its
    /// coordinator (the guard its append brings back), or after the producer's earlier
    /// deferred appends. Each deferred one ends with
    /// [`deferred_append_done`](Self::deferred_append_done). Refused when this broker does not
    /// lead the partition, and INVALID_PRODUCER_EPOCH when the producer is known here in a
    /// newer epoch (Kafka 4.1+ refuses it before asking the coordinator, KAFKA-18042).
    pub fn start_transactional_append(
        &self,
        producer_id: i64,
        sequence: i32,
        epoch: i16,
        supports_epoch_bump: bool,
    ) -> Result<TxnAppendStart, ErrorCode> {
        let mut log = self.lock_as_leader()?;
        if log.producer_state().has_newer_epoch(producer_id, epoch) {
            return Err(ErrorCode::INVALID_PRODUCER_EPOCH);
        }
        Ok(log.start_transactional_append(
            producer_id,
            sequence,
            epoch,
            supports_epoch_bump,
            self.clock.now_ms(),
        ))
    }

    /// Kafka's `maybeStartTransactionVerification` for the group coordinator's transactional
    /// offsets (not sequenced, never deferred): the guard their write must bring back, `None`
    /// when the producer's transaction is already open here. Refused when this broker does
    /// not lead the partition.
    pub fn maybe_start_transaction_verification(
        &self,
        producer_id: i64,
        epoch: i16,
        supports_epoch_bump: bool,
    ) -> Result<Option<VerificationGuard>, ErrorCode> {
        let mut log = self.lock_as_leader()?;
        if log.producer_state().has_newer_epoch(producer_id, epoch) {
            return Err(ErrorCode::INVALID_PRODUCER_EPOCH);
        }
        Ok(log.maybe_start_transaction_verification(
            producer_id,
            // Kafka's coordinator passes `RecordBatch.NO_SEQUENCE`.
            -1,
            epoch,
            supports_epoch_bump,
            self.clock.now_ms(),
        ))
    }

    /// A deferred transactional append of `producer_id` was made or given up.
    pub fn deferred_append_done(&self, producer_id: i64) {
        if let Ok(mut log) = self.lock() {
            log.deferred_append_done(producer_id);
        }
    }

    /// [`append_to_leader_from`](Self::append_to_leader_from) with a client's transaction
    /// verification (see `gregor_storage::Log::append_as_leader_verified`).
    pub fn append_to_leader_verified(
        &self,
        origin: AppendOrigin,
        records: &[u8],
        settings: &TopicSettings,
        required_acks: i16,
        verification: TxnVerification,
    ) -> Result<LeaderAppend, ErrorCode> {
        if self.failed.load(Ordering::Acquire) {
            return Err(ErrorCode::KAFKA_STORAGE_ERROR);
        }
        // Validation reads every record (CRC, record walk): done before taking the locks, so
        // producers to one partition validate in parallel.
        // A client's compressed records are each held to `max.decompressed.message.bytes`.
        let max_record = match origin {
            AppendOrigin::Client => settings.max_decompressed_record_bytes,
            _ => usize::MAX,
        };
        let mut summary =
            validate_record_set_bounded(records, settings.max_message_bytes, max_record)
                .map_err(|e| e.error_code())?;
        // Kafka's LogValidator takes one v2 batch per partition from a client ("Compressed
        // outer record has more than one batch"): producers never send more.
        if origin == AppendOrigin::Client && summary.batches().len() > 1 {
            return Err(ErrorCode::INVALID_RECORD);
        }
        if origin == AppendOrigin::Client {
            // KIP-937: a create time too far from the broker's clock refuses the whole set.
            let timestamps = summary.summary().record_timestamps;
            let now = self.clock.now_ms();
            if !timestamps.is_empty()
                && (settings.timestamp_out_of_range(timestamps.min, now)
                    || settings.timestamp_out_of_range(timestamps.max, now))
            {
                return Err(ErrorCode::INVALID_TIMESTAMP);
            }
        }
        // A topic with a codec of its own (`compression.type`) stores every client batch in
        // it: batches in another codec are decoded and written again (Kafka's LogValidator).
        let recompressed = match origin {
            AppendOrigin::Client => {
                recompress(records, settings.compression, &settings.compression_levels)
                    .map_err(|e| e.error_code())?
            }
            _ => None,
        };
        if let Some(rewritten) = &recompressed {
            summary = validate_record_set(rewritten, settings.max_message_bytes)
                .map_err(|e| e.error_code())?;
        }
        let mut log = self.lock()?;
        let mut replica = self.replica();
        replica
            .core
            .check_append(required_acks)
            .map_err(|e| replication_error_code(&e))?;
        let leader_epoch = replica.core.leader_epoch();
        let now = self.clock.now_ms();
        // The producer-state check (duplicates, sequences, epochs) runs inside the append,
        // under this log lock: two retries of one batch cannot both be appended.
        let info = log
            .append_as_leader_verified(
                origin,
                &summary,
                leader_epoch,
                now,
                settings.log_append_time,
                verification,
            )
            .map_err(|e| self.write_error(e))?;
        if info.duplicate {
            // A retry of batches already in the log: nothing moved. The reply waits (acks=all)
            // for the original offsets like any other append.
            return Ok(LeaderAppend { info, leader_epoch });
        }
        let record_count = summary.summary().offset_count;
        let end = info.last_offset + 1;
        let outputs = match replica.core.leader_append(end, now) {
            Ok(o) => o,
            Err(e) => {
                // The log and the core disagree about the log end: a bug, not a peer's doing.
                error!(partition = %tp_name(&self.tp), error = %e, "replication state refused an append");
                Vec::new()
            }
        };
        self.unflushed_records
            .fetch_add(record_count, Ordering::AcqRel);
        self.log_end_offset.send_replace(end);
        self.execute(&mut replica, outputs, false);
        log.on_high_watermark_updated(replica.core.high_watermark());
        Ok(LeaderAppend { info, leader_epoch })
    }

    /// Kafka's marker append (`appendRecords` with origin COORDINATOR, acks=all): writes the
    /// control batch that ends `producer_id`'s transaction as leader in the current leader
    /// epoch. Refused when this broker does not lead (NOT_LEADER_OR_FOLLOWER), when the ISR is
    /// below `min.insync.replicas` (NOT_ENOUGH_REPLICAS), and by the producer state
    /// (INVALID_PRODUCER_EPOCH, TRANSACTION_COORDINATOR_FENCED). The caller waits for the high
    /// watermark to pass it, as for an acks=all produce. A legacy (transactions version 0/1)
    /// marker; see [`Self::append_end_txn_marker_of_version`].
    pub fn append_end_txn_marker(
        &self,
        producer_id: i64,
        producer_epoch: i16,
        marker: EndTransactionMarker,
    ) -> Result<LeaderAppend, ErrorCode> {
        self.append_end_txn_marker_of_version(producer_id, producer_epoch, marker, 0)
    }

    /// [`Self::append_end_txn_marker`] of a coordinator on `transaction_version` (the marker's
    /// field from WriteTxnMarkers v2, KIP-1228): from 2 the marker's producer epoch must be
    /// newer than the partition's (INVALID_PRODUCER_EPOCH otherwise).
    pub fn append_end_txn_marker_of_version(
        &self,
        producer_id: i64,
        producer_epoch: i16,
        marker: EndTransactionMarker,
        transaction_version: i8,
    ) -> Result<LeaderAppend, ErrorCode> {
        if self.failed.load(Ordering::Acquire) {
            return Err(ErrorCode::KAFKA_STORAGE_ERROR);
        }
        let mut log = self.lock()?;
        let mut replica = self.replica();
        replica
            .core
            .check_append(-1)
            .map_err(|e| replication_error_code(&e))?;
        let leader_epoch = replica.core.leader_epoch();
        let now = self.clock.now_ms();
        let info = log
            .append_end_txn_marker_as_leader(
                producer_id,
                producer_epoch,
                marker,
                transaction_version,
                leader_epoch,
                now,
            )
            .map_err(|e| self.write_error(e))?;
        let end = info.last_offset + 1;
        let outputs = match replica.core.leader_append(end, now) {
            Ok(o) => o,
            Err(e) => {
                error!(partition = %tp_name(&self.tp), error = %e, "replication state refused a marker append");
                Vec::new()
            }
        };
        self.unflushed_records.fetch_add(1, Ordering::AcqRel);
        self.log_end_offset.send_replace(end);
        self.execute(&mut replica, outputs, false);
        log.on_high_watermark_updated(replica.core.high_watermark());
        Ok(LeaderAppend { info, leader_epoch })
    }

    /// Kafka's `lastStableOffset`: read_committed consumers read below it (see
    /// `gregor_storage::Log::last_stable_offset`).
    pub fn last_stable_offset(&self) -> Result<i64, ErrorCode> {
        let mut log = self.lock()?;
        let high_watermark = *self.high_watermark.borrow();
        Ok(log.last_stable_offset(high_watermark))
    }

    /// The producers this partition knows (DescribeProducers), by producer id.
    pub fn active_producers(&self) -> Result<Vec<ActiveProducer>, ErrorCode> {
        let log = self.lock()?;
        let state = log.producer_state();
        let mut out: Vec<_> = state
            .producers()
            .map(|(&id, e)| ActiveProducer {
                producer_id: id,
                epoch: e.epoch,
                last_sequence: e.last_seq().unwrap_or(-1),
                last_timestamp: e.last_timestamp,
                coordinator_epoch: e.coordinator_epoch,
                current_txn_start_offset: e.current_txn_first_offset.unwrap_or(-1),
            })
            .collect();
        out.sort_unstable_by_key(|p| p.producer_id);
        Ok(out)
    }

    /// Forgets the idempotent producers idle for `expiration_ms`; how many.
    pub fn remove_expired_producers(&self, now_ms: i64, expiration_ms: i64) -> usize {
        self.lock()
            .map(|mut log| log.remove_expired_producers(now_ms, expiration_ms))
            .unwrap_or(0)
    }

    // ---- fetch ----

    /// Reads for a consumer: whole batches from `offset`, below the high watermark.
    pub fn read(
        &self,
        offset: i64,
        max_bytes: usize,
        min_one_batch: bool,
    ) -> Result<ReadInfo, ErrorCode> {
        self.fetch_read(
            offset,
            max_bytes,
            min_one_batch,
            FetchIsolation::HighWatermark,
        )
        .map(|r| r.info)
    }

    /// Reads for a fetch, up to the high watermark or the log end; the offsets reported with
    /// the records are taken under the same log lock as the read.
    pub fn fetch_read(
        &self,
        offset: i64,
        max_bytes: usize,
        min_one_batch: bool,
        isolation: FetchIsolation,
    ) -> Result<PartitionRead, ErrorCode> {
        if self.is_offline() {
            return Err(ErrorCode::KAFKA_STORAGE_ERROR);
        }
        let mut log = self.lock()?;
        let high_watermark = *self.high_watermark.borrow();
        let last_stable_offset = log.last_stable_offset(high_watermark);
        let to_code = |e| storage_error_code(&self.tp, e);
        let (info, aborted_transactions) = match isolation {
            FetchIsolation::HighWatermark => (
                log.read(offset, max_bytes, high_watermark, min_one_batch)
                    .map_err(to_code)?,
                None,
            ),
            FetchIsolation::TxnCommitted => {
                let (info, aborted) = log
                    .read_committed(offset, max_bytes, last_stable_offset, min_one_batch)
                    .map_err(to_code)?;
                (info, Some(aborted))
            }
            FetchIsolation::LogEnd => (
                log.read(offset, max_bytes, log.log_end_offset(), min_one_batch)
                    .map_err(to_code)?,
                None,
            ),
        };
        Ok(PartitionRead {
            info,
            log_start_offset: log.log_start_offset(),
            high_watermark,
            last_stable_offset,
            aborted_transactions,
        })
    }

    /// ListOffsets by timestamp.
    pub fn offset_for_timestamp(&self, ts: i64) -> Result<Option<(i64, i64)>, ErrorCode> {
        self.lock()?
            .offset_for_timestamp(ts)
            .map_err(|e| storage_error_code(&self.tp, e))
    }

    /// ListOffsets MAX_TIMESTAMP (-3): the record with the largest timestamp, as
    /// `(offset, timestamp)`. The segment knows the largest timestamp and its batch; the record
    /// is the first one carrying that timestamp, found by decoding (KAFKA-16310: not the last
    /// offset of its batch). A batch that cannot be decoded answers with its own offset.
    pub fn max_timestamp(&self) -> Result<Option<(i64, i64)>, ErrorCode> {
        let log = self.lock()?;
        let Some((batch_offset, ts)) = log.max_timestamp() else {
            return Ok(None);
        };
        match log.offset_for_timestamp(ts) {
            Ok(Some((offset, found_ts))) if found_ts == ts => Ok(Some((offset, ts))),
            Ok(_) => Ok(Some((batch_offset, ts))),
            Err(e) => Err(storage_error_code(&self.tp, e)),
        }
    }

    // ---- follower side (the replica fetcher) ----

    /// The log start offset.
    pub fn log_start_offset(&self) -> Result<i64, ErrorCode> {
        Ok(self.lock()?.log_start_offset())
    }

    /// The epoch of the log's last batch (a follower fetch's `last_fetched_epoch`), -1 when
    /// the log holds no epoch.
    pub fn latest_log_epoch(&self) -> Result<i32, ErrorCode> {
        Ok(self.lock()?.latest_epoch().unwrap_or(-1))
    }

    /// Whether this partition follows `leader` in `leader_epoch` (what the replica fetcher
    /// checks before it writes what it fetched under that epoch).
    pub fn follows(&self, leader: BrokerId, leader_epoch: i32) -> bool {
        let replica = self.replica();
        !replica.core.is_leader()
            && replica.core.leader() == Some(leader)
            && replica.core.leader_epoch() == leader_epoch
    }

    /// The leader's check of a follower fetch that carries `last_fetched_epoch` (Kafka's
    /// `Partition.fetchRecords` → `lastOffsetForLeaderEpoch`): `Some(end)` when the follower's
    /// log diverges from this one at `fetch_offset` (the answer then carries the diverging
    /// epoch and no records, and the follower's position is not recorded); an epoch this log
    /// cannot place at all is OFFSET_OUT_OF_RANGE, as in Kafka.
    pub fn diverging_epoch(
        &self,
        last_fetched_epoch: i32,
        fetch_offset: i64,
    ) -> Result<Option<EpochEndOffset>, ErrorCode> {
        let log = self.lock()?;
        gregor_replication::epoch::diverging_epoch(
            log.leader_epoch_cache().epoch_entries(),
            log.log_end_offset(),
            last_fetched_epoch,
            fetch_offset,
        )
        .map_err(|()| ErrorCode::OFFSET_OUT_OF_RANGE)
    }

    /// Where this follower's log is cut, given the leader's diverging epoch `(leader_epoch,
    /// end_offset)` (Kafka's `getOffsetTruncationState`, from this log's epoch cache). When
    /// this log never had the leader's epoch, the cut is at the end of its largest older epoch
    /// and the next fetch (with that epoch as `last_fetched_epoch`) is checked again.
    pub fn follower_truncation_offset(
        &self,
        leader_epoch: i32,
        end_offset: i64,
    ) -> Result<i64, ErrorCode> {
        let log = self.lock()?;
        let end = log.log_end_offset();
        let state = gregor_replication::epoch::truncation_offset(
            log.leader_epoch_cache().epoch_entries(),
            end,
            end,
            EpochEndOffset {
                leader_epoch,
                end_offset,
            },
        );
        Ok(state.offset)
    }

    /// OffsetForLeaderEpoch (Kafka's `lastOffsetForLeaderEpoch`): checks the requester's
    /// current leader epoch (`-1`: none), answers only as leader, and reads the end of
    /// `leader_epoch` from the log's leader-epoch cache.
    pub fn offset_for_leader_epoch(
        &self,
        current_leader_epoch: i32,
        leader_epoch: i32,
    ) -> Result<EpochEndOffset, ErrorCode> {
        let log = self.lock()?;
        let replica = self.replica();
        replica
            .core
            .offset_for_leader_epoch(
                (current_leader_epoch >= 0).then_some(current_leader_epoch),
                leader_epoch,
                log.leader_epoch_cache().epoch_entries(),
            )
            .map_err(|e| replication_error_code(&e))
    }

    /// Kafka's follower append (`appendRecordsToFollowerOrFutureReplica`): stores the
    /// leader's batches byte for byte (`Log::append_as_follower`, nothing when `records` is
    /// empty) and keeps the core, the log-end watch and the follower's high watermark (the
    /// leader's, bounded by the local log end) in step. The leader's log start offset
    /// (DeleteRecords, retention) is followed up to the follower's high watermark (Kafka's
    /// `maybeIncrementLogStartOffset` with `LeaderOffsetIncremented`). Refused with
    /// FENCED_LEADER_EPOCH, and nothing written, unless this partition still follows `leader` in
    /// `leader_epoch`: the records of a fetch sent under an older registration never reach the
    /// log.
    ///
    /// What is appended is not fsynced here: the replica fetcher waits for
    /// [`Partition::wait_durable`] before its next fetch reports the new log end to the
    /// leader (under the default flush policy), so the leader's high watermark only covers
    /// records fsynced on every ISR member.
    pub fn append_as_follower(
        &self,
        leader: BrokerId,
        leader_epoch: i32,
        records: &[u8],
        leader_high_watermark: i64,
        leader_log_start_offset: i64,
    ) -> Result<Option<LogAppendInfo>, ErrorCode> {
        if self.failed.load(Ordering::Acquire) {
            return Err(ErrorCode::KAFKA_STORAGE_ERROR);
        }
        let mut log = self.lock()?;
        let mut replica = self.replica();
        if replica.core.is_leader()
            || replica.core.leader() != Some(leader)
            || replica.core.leader_epoch() != leader_epoch
        {
            return Err(ErrorCode::FENCED_LEADER_EPOCH);
        }
        let info = if records.is_empty() {
            None
        } else {
            let info = log
                .append_as_follower(records, self.clock.now_ms())
                .map_err(|e| self.write_error(e))?;
            self.unflushed_records
                .fetch_add(info.last_offset - info.first_offset + 1, Ordering::AcqRel);
            Some(info)
        };
        let end = log.log_end_offset();
        let outputs = replica
            .core
            .follower_append(end, leader_high_watermark)
            .map_err(|e| {
                error!(partition = %tp_name(&self.tp), error = %e, "replication state refused a follower append");
                ErrorCode::KAFKA_STORAGE_ERROR
            })?;
        if info.is_some() {
            self.log_end_offset.send_replace(end);
        }
        log.on_high_watermark_updated(replica.core.high_watermark());
        let start = leader_log_start_offset.min(replica.core.high_watermark());
        if start > log.log_start_offset() {
            log.delete_records_before(start)
                .map_err(|e| storage_error_code(&self.tp, e))?;
            replica.core.set_log_start_offset(log.log_start_offset());
        }
        self.execute(&mut replica, outputs, false);
        Ok(info)
    }

    /// A follower truncates its log to `offset` (the divergence point, Kafka's
    /// `truncateTo`), keeping the core, the watches and the durable offset in step; with
    /// `start_at`, the log is emptied and restarts at `offset` instead (the leader's log start
    /// is above this log's end: Kafka's `truncateFullyAndStartAt`). Same registration check as
    /// [`Partition::append_as_follower`]. Returns the new log end.
    pub fn truncate_as_follower(
        &self,
        leader: BrokerId,
        leader_epoch: i32,
        offset: i64,
        start_at: bool,
    ) -> Result<i64, ErrorCode> {
        let mut log = self.lock()?;
        let mut replica = self.replica();
        if replica.core.is_leader()
            || replica.core.leader() != Some(leader)
            || replica.core.leader_epoch() != leader_epoch
        {
            return Err(ErrorCode::FENCED_LEADER_EPOCH);
        }
        let before = log.log_end_offset();
        let result = if start_at {
            log.truncate_fully_and_start_at(offset)
        } else {
            log.truncate_to(offset)
        };
        result.map_err(|e| self.write_error(e))?;
        let end = log.log_end_offset();
        let core = replica.core.truncate_to(end);
        if start_at {
            replica.core.set_log_start_offset(log.log_start_offset());
        }
        if let Err(e) = core {
            error!(partition = %tp_name(&self.tp), error = %e, "replication state refused a truncation");
        }
        if end != before || start_at {
            info!(partition = %tp_name(&self.tp), from = before, to = end, start_at, "follower truncated its log");
        }
        // What was fsynced above the new end is gone: a later append there must be fsynced
        // again before anyone is told it is durable.
        self.durable.send_modify(|d| *d = (*d).min(end));
        self.log_end_offset.send_replace(end);
        self.execute(&mut replica, Vec::new(), true);
        Ok(end)
    }

    /// Tells the core what the metadata image says about brokers (Kafka's
    /// `isReplicaIsrEligible` inputs): a fenced follower stops holding the leader's high
    /// watermark back.
    pub fn set_broker_statuses(
        &self,
        statuses: &[(BrokerId, Option<gregor_replication::BrokerStatus>)],
    ) {
        let mut replica = self.replica();
        let now = self.clock.now_ms();
        let mut outputs = Vec::new();
        for &(id, status) in statuses {
            outputs.extend(replica.core.set_broker_status(id, status, now));
        }
        self.execute(&mut replica, outputs, false);
    }

    /// Waits until the low watermark (the smallest log start offset among this leader and its
    /// live followers) reaches `offset`, as Kafka's DelayedDeleteRecords does; returns it.
    /// NOT_LEADER_OR_FOLLOWER if leadership is lost meanwhile. The caller bounds the wait.
    pub async fn wait_low_watermark(&self, offset: i64) -> Result<i64, ErrorCode> {
        let mut rx = self.low_watermark.subscribe();
        loop {
            match *rx.borrow_and_update() {
                None => return Err(ErrorCode::NOT_LEADER_OR_FOLLOWER),
                Some(low) if low >= offset => return Ok(low),
                Some(_) => {}
            }
            if rx.changed().await.is_err() {
                return Err(ErrorCode::NOT_LEADER_OR_FOLLOWER);
            }
        }
    }

    // ---- durability (group commit) ----

    /// Waits until everything below `offset` is fsynced. Concurrent callers share fsyncs.
    pub async fn wait_durable(self: &Arc<Self>, offset: i64) -> Result<(), ErrorCode> {
        let mut rx = self.durable.subscribe();
        loop {
            if *rx.borrow_and_update() >= offset {
                return Ok(());
            }
            if self.failed.load(Ordering::Acquire) {
                return Err(ErrorCode::KAFKA_STORAGE_ERROR);
            }
            self.start_flush();
            if rx.changed().await.is_err() {
                return Err(ErrorCode::KAFKA_STORAGE_ERROR);
            }
        }
    }

    /// The offset below which the log is fsynced.
    pub fn durable_offset(&self) -> i64 {
        *self.durable.borrow()
    }

    /// Starts a flush task unless one is running. The task is detached so that a client that
    /// disconnects mid-wait cannot leave the partition with a flush that never finishes.
    pub fn start_flush(self: &Arc<Self>) {
        // Offline: its storage failed, and another fsync would only fail (and log) again.
        if self.is_offline() || self.flushing.swap(true, Ordering::AcqRel) {
            return;
        }
        let me = Arc::clone(self);
        tokio::spawn(async move { me.run_flush().await });
    }

    async fn run_flush(self: Arc<Self>) {
        // The target is taken on the blocking thread right before the fsync, not when the flush
        // was asked for: whatever was appended while the flush waited for a thread rides along.
        let me = Arc::clone(&self);
        let result = tokio::task::spawn_blocking(move || me.flush_now()).await;
        let mut durable = *self.durable.borrow();
        match result {
            // Capped at the log end: a follower may have truncated while the fsync ran.
            Ok(Ok(end)) => durable = durable.max(end).min(self.log_end_offset()),
            Ok(Err(e)) => {
                error!(partition = %tp_name(&self.tp), error = %e, "fsync failed; partition taken offline");
                self.failed.store(true, Ordering::Release);
            }
            Err(e) => {
                error!(partition = %tp_name(&self.tp), error = %e, "flush task failed");
                self.failed.store(true, Ordering::Release);
            }
        }
        self.flushing.store(false, Ordering::Release);
        // Always notify, even without progress, so waiters re-check (and start the next flush).
        self.durable.send_replace(durable);
    }

    /// Blocking: fsyncs everything appended so far and returns the offset now durable (the
    /// recovery point when there was nothing to sync).
    fn flush_now(&self) -> std::io::Result<i64> {
        let poisoned = || std::io::Error::other("partition log lock poisoned");
        let target = {
            let mut log = self.log.lock().map_err(|_| poisoned())?;
            match log.flush_target() {
                Some(t) => t,
                None => return Ok(log.recovery_point()),
            }
        };
        let pending = self.unflushed_records.swap(0, Ordering::AcqRel);
        let started = std::time::Instant::now();
        let synced = target.sync();
        crate::stats::log_flushed(started.elapsed());
        if let Err(e) = synced {
            self.unflushed_records.fetch_add(pending, Ordering::AcqRel);
            return Err(e);
        }
        self.log
            .lock()
            .map_err(|_| poisoned())?
            .mark_flushed(target.end_offset);
        self.last_flush_ms
            .store(self.clock.now_ms(), Ordering::Release);
        Ok(target.end_offset)
    }

    /// Records appended and not yet flushed.
    pub fn unflushed_records(&self) -> i64 {
        self.unflushed_records.load(Ordering::Acquire)
    }

    /// Whether a flush task is running.
    #[cfg(test)]
    pub(crate) fn is_flushing(&self) -> bool {
        self.flushing.load(Ordering::Acquire)
    }

    /// The log's recovery point.
    #[cfg(test)]
    pub(crate) fn recovery_point(&self) -> i64 {
        self.lock().map(|l| l.recovery_point()).unwrap_or(-1)
    }
}

pub(crate) fn tp_name(tp: &TopicPartition) -> String {
    format!("{}-{}", tp.topic, tp.partition)
}

pub(crate) fn storage_error_code(tp: &TopicPartition, e: StorageError) -> ErrorCode {
    match e {
        StorageError::OffsetOutOfRange { .. } => ErrorCode::OFFSET_OUT_OF_RANGE,
        // A request that raced the topic's deletion.
        StorageError::Deleted { .. } => ErrorCode::UNKNOWN_TOPIC_OR_PARTITION,
        StorageError::InvalidRecords(b) => b.error_code(),
        StorageError::Producer(e) => {
            debug!(partition = %tp_name(tp), error = %e, "produce refused by the producer state");
            match e {
                ProducerStateError::OutOfOrderSequence { .. } => {
                    ErrorCode::OUT_OF_ORDER_SEQUENCE_NUMBER
                }
                ProducerStateError::InvalidProducerEpoch { .. } => {
                    ErrorCode::INVALID_PRODUCER_EPOCH
                }
                ProducerStateError::InvalidTxnState { .. }
                | ProducerStateError::UnverifiedTransaction { .. } => ErrorCode::INVALID_TXN_STATE,
                ProducerStateError::TransactionCoordinatorFenced { .. } => {
                    ErrorCode::TRANSACTION_COORDINATOR_FENCED
                }
            }
        }
        other => {
            error!(partition = %tp_name(tp), error = %other, "storage error");
            ErrorCode::KAFKA_STORAGE_ERROR
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::replica_manager::{ReplicaManager, Topic};
    use gregor_protocol::batch::encode_simple_batch;
    use gregor_replication::IsrMember;

    /// A replica manager on a temp dir over `clock`, with a one-partition topic `t` whose
    /// `min.insync.replicas` is `min_isr`.
    pub(crate) fn one_partition(
        clock: Arc<dyn Clock>,
        min_isr: i32,
    ) -> (tempfile::TempDir, ReplicaManager, Arc<Topic>) {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = Arc::new(crate::config::BrokerConfig {
            data_dir: dir.path().to_path_buf(),
            ..Default::default()
        });
        let rm = ReplicaManager::open(config, clock).expect("open");
        let mut configs = std::collections::BTreeMap::new();
        configs.insert("min.insync.replicas".to_string(), min_isr.to_string());
        let topic = rm.create_topic("t", 1, 1, configs).expect("create");
        (dir, rm, topic)
    }

    /// Makes node 1 the leader of `part` in leader epoch 1 with a second replica, node 2, and
    /// the ISR `isr`: a follower that exists only in the core, the fake second replica.
    pub(crate) fn with_follower(part: &Partition, isr: Vec<BrokerId>) {
        part.become_leader(&LeaderAndIsr {
            leader: 1,
            leader_epoch: 1,
            partition_epoch: 1,
            replicas: vec![1, 2],
            isr,
        })
        .expect("become leader");
    }

    /// Makes node 1 a follower of node 2 for `part` (replicas and ISR 1 and 2), in
    /// `leader_epoch` and `partition_epoch`.
    pub(crate) fn with_leader_2(part: &Partition, leader_epoch: i32, partition_epoch: i32) {
        part.apply_registration(&LeaderAndIsr {
            leader: 2,
            leader_epoch,
            partition_epoch,
            replicas: vec![1, 2],
            isr: vec![1, 2],
        })
        .expect("become follower");
    }

    pub(crate) fn batch(n: usize) -> Vec<u8> {
        let records: Vec<gregor_protocol::batch::SimpleRecord<'_>> =
            (0..n).map(|_| (None, Some(&b"v"[..]))).collect();
        encode_simple_batch(1, &records)
    }

    /// A transactional batch of `n` records from producer `pid` (epoch 0) from sequence `seq`.
    pub(crate) fn txn_batch(pid: i64, seq: i32, n: usize) -> Vec<u8> {
        let mut b = batch(n);
        b[21..23].copy_from_slice(&gregor_protocol::batch::ATTR_TRANSACTIONAL.to_be_bytes());
        b[43..51].copy_from_slice(&pid.to_be_bytes());
        b[51..53].copy_from_slice(&0i16.to_be_bytes());
        b[53..57].copy_from_slice(&seq.to_be_bytes());
        let crc = crc32c::crc32c(&b[21..]);
        b[17..21].copy_from_slice(&crc.to_be_bytes());
        b
    }

    pub(crate) fn follower_fetch(offset: i64) -> FollowerFetch {
        FollowerFetch {
            replica_id: 2,
            fetch_offset: offset,
            log_start_offset: 0,
            current_leader_epoch: Some(1),
            broker_epoch: None,
        }
    }

    /// A single node leads every partition in epoch 0 with replicas = ISR = itself, and the
    /// high watermark follows the log end at each append.
    #[test]
    fn a_single_node_leads_with_itself_as_the_isr() {
        let (_dir, _rm, topic) = one_partition(Arc::new(crate::clock::SystemClock), 1);
        let part = &topic.partitions[&0];
        assert_eq!(
            (
                part.leader(),
                part.leader_epoch(),
                part.replicas(),
                part.isr()
            ),
            (Some(1), 0, vec![1], vec![1])
        );
        let info = part.append(&batch(3), &topic.settings).expect("append");
        assert_eq!((info.first_offset, info.last_offset), (0, 2));
        assert_eq!((part.high_watermark(), part.log_end_offset()), (3, 3));
        assert_eq!(part.offsets().expect("offsets"), (0, 3));
        let read = part.read(0, 1 << 20, true).expect("read");
        assert!(read.slice.is_some());
        part.tick();
        assert!(part.take_pending_alter_partition().is_empty());
    }

    /// A topic with `compression.type=lz4` stores a gzip batch and an uncompressed one as lz4,
    /// records, offsets and producer fields unchanged; an lz4 batch is stored as sent; a topic
    /// with `producer` keeps each codec.
    #[test]
    fn a_topic_codec_recompresses_client_batches() {
        use gregor_protocol::batch::{batches, Compression};
        use kafka_protocol::records::{
            Compression as Codec, Record, RecordBatchDecoder, RecordBatchEncoder,
            RecordEncodeOptions, TimestampType,
        };
        let encode = |codec: Codec, pid: i64, values: &[&str]| -> Vec<u8> {
            let records: Vec<Record> = values
                .iter()
                .enumerate()
                .map(|(i, v)| Record {
                    transactional: false,
                    control: false,
                    delete_horizon: false,
                    partition_leader_epoch: -1,
                    producer_id: pid,
                    producer_epoch: if pid >= 0 { 0 } else { -1 },
                    timestamp_type: TimestampType::Creation,
                    offset: i as i64,
                    sequence: if pid >= 0 { i as i32 } else { -1 + i as i32 },
                    timestamp: 1_000 + i as i64,
                    key: None,
                    value: Some(bytes::Bytes::copy_from_slice(v.as_bytes())),
                    headers: Default::default(),
                })
                .collect();
            let mut buf = bytes::BytesMut::new();
            RecordBatchEncoder::encode(
                &mut buf,
                records.iter(),
                &RecordEncodeOptions {
                    version: 2,
                    compression: codec,
                },
            )
            .expect("encodes");
            buf.to_vec()
        };
        let (_dir, rm, _) = one_partition(Arc::new(crate::clock::SystemClock), 1);
        let mut configs = std::collections::BTreeMap::new();
        configs.insert("compression.type".to_string(), "lz4".to_string());
        let lz4_topic = rm.create_topic("lz4", 1, 1, configs).expect("create");
        let plain_topic = rm
            .create_topic("plain", 1, 1, Default::default())
            .expect("create");
        for topic in [&lz4_topic, &plain_topic] {
            let part = &topic.partitions[&0];
            let s = &topic.settings;
            part.append(&encode(Codec::Gzip, -1, &["a", "b"]), s)
                .expect("gzip");
            part.append(&encode(Codec::None, 9, &["c"]), s)
                .expect("none");
            part.append(&encode(Codec::Lz4, -1, &["d", "e", "f"]), s)
                .expect("lz4");
        }
        let stored = |topic: &Arc<Topic>| {
            let read = topic.partitions[&0].read(0, 1 << 20, true).expect("read");
            read.slice.expect("records").read_to_vec().expect("bytes")
        };
        let summary = |bytes: &[u8]| -> Vec<(Compression, i64, i64, i64)> {
            batches(bytes)
                .map(|b| {
                    let b = b.expect("batch");
                    (
                        b.compression().expect("codec"),
                        b.base_offset(),
                        b.last_offset(),
                        b.producer_id(),
                    )
                })
                .collect()
        };
        let lz4 = stored(&lz4_topic);
        assert_eq!(
            summary(&lz4),
            vec![
                (Compression::Lz4, 0, 1, -1),
                (Compression::Lz4, 2, 2, 9),
                (Compression::Lz4, 3, 5, -1),
            ]
        );
        let plain = stored(&plain_topic);
        assert_eq!(
            summary(&plain),
            vec![
                (Compression::Gzip, 0, 1, -1),
                (Compression::None, 2, 2, 9),
                (Compression::Lz4, 3, 5, -1),
            ]
        );
        let values = |bytes: Vec<u8>| -> Vec<String> {
            let mut buf = bytes::Bytes::from(bytes);
            RecordBatchDecoder::decode_all(&mut buf)
                .expect("decodes")
                .into_iter()
                .flat_map(|set| set.records)
                .map(|r| String::from_utf8_lossy(&r.value.expect("value")).into_owned())
                .collect()
        };
        assert_eq!(values(lz4), ["a", "b", "c", "d", "e", "f"]);
        assert_eq!(values(plain), ["a", "b", "c", "d", "e", "f"]);
    }

    fn idempotent_batch(pid: i64, epoch: i16, seq: i32, n: usize) -> Vec<u8> {
        let mut b = batch(n);
        b[43..51].copy_from_slice(&pid.to_be_bytes());
        b[51..53].copy_from_slice(&epoch.to_be_bytes());
        b[53..57].copy_from_slice(&seq.to_be_bytes());
        let crc = crc32c::crc32c(&b[21..]);
        b[17..21].copy_from_slice(&crc.to_be_bytes());
        b
    }

    /// An idempotent producer's retry is answered with the original offsets and appends
    /// nothing; gaps and fenced epochs are the partition's error codes; idle producers expire
    /// on the injected clock.
    #[test]
    fn idempotent_produce_duplicates_errors_and_expiry() {
        let clock = Arc::new(ManualClock::new(1_000_000));
        let (_dir, rm, topic) = one_partition(clock.clone(), 1);
        let part = &topic.partitions[&0];
        let s = &topic.settings;
        let first = part
            .append(&idempotent_batch(4, 0, 0, 3), s)
            .expect("append");
        assert_eq!(
            (first.first_offset, first.last_offset, first.duplicate),
            (0, 2, false)
        );
        part.append(&batch(2), s).expect("a plain batch");
        let retry = part
            .append(&idempotent_batch(4, 0, 0, 3), s)
            .expect("retry");
        assert_eq!(
            (retry.first_offset, retry.last_offset, retry.duplicate),
            (0, 2, true)
        );
        assert_eq!((part.log_end_offset(), part.high_watermark()), (5, 5));
        assert_eq!(
            part.append(&idempotent_batch(4, 0, 9, 1), s).map(|_| ()),
            Err(ErrorCode::OUT_OF_ORDER_SEQUENCE_NUMBER)
        );
        part.append(&idempotent_batch(4, 1, 0, 1), s)
            .expect("bumped epoch");
        assert_eq!(
            part.append(&idempotent_batch(4, 0, 3, 1), s).map(|_| ()),
            Err(ErrorCode::INVALID_PRODUCER_EPOCH)
        );
        clock.advance(rm.config().producer_id_expiration_ms);
        rm.remove_expired_producers();
        // Forgotten: the partition accepts the producer at any sequence again (Kafka 4.x).
        part.append(&idempotent_batch(4, 0, 3, 1), s)
            .expect("unknown producer");
    }

    /// `producer.id.expiration.ms` is a dynamic broker config, as in Kafka: set cluster-wide,
    /// the next expiry pass takes it.
    #[test]
    fn a_dynamic_producer_id_expiration_applies_at_the_next_pass() {
        let clock = Arc::new(ManualClock::new(1_000_000));
        let (_dir, rm, topic) = one_partition(clock.clone(), 1);
        let part = &topic.partitions[&0];
        let s = &topic.settings;
        part.append(&idempotent_batch(4, 0, 0, 3), s)
            .expect("append");
        let record = gregor_metadata::controller::alter_broker_config(
            "",
            "producer.id.expiration.ms",
            Some("1000"),
        )
        .expect("a dynamic config");
        rm.apply_records(&[record]);
        clock.advance(999);
        rm.remove_expired_producers();
        assert_eq!(
            part.append(&idempotent_batch(4, 0, 9, 1), s).map(|_| ()),
            Err(ErrorCode::OUT_OF_ORDER_SEQUENCE_NUMBER),
            "still known before its expiration"
        );
        clock.advance(2);
        rm.remove_expired_producers();
        part.append(&idempotent_batch(4, 0, 9, 1), s)
            .expect("forgotten after the dynamic 1000 ms");
    }

    /// With a second replica in the ISR the high watermark waits for it: consumers read
    /// nothing, a follower reads to the log end, and the follower's fetch at the log end moves
    /// the high watermark there.
    #[test]
    fn a_follower_fetch_advances_the_high_watermark() {
        let (_dir, _rm, topic) = one_partition(Arc::new(crate::clock::SystemClock), 1);
        let part = &topic.partitions[&0];
        with_follower(part, vec![1, 2]);
        let append = part
            .append_to_leader(&batch(3), &topic.settings, -1)
            .expect("append");
        assert_eq!(append.leader_epoch, 1);
        assert_eq!((part.high_watermark(), part.log_end_offset()), (0, 3));
        let consumer = part
            .fetch_read(0, 1 << 20, true, FetchIsolation::HighWatermark)
            .expect("read");
        assert!(consumer.info.slice.is_none(), "nothing below the HW");
        let follower = part
            .fetch_read(0, 1 << 20, true, FetchIsolation::LogEnd)
            .expect("read");
        assert!(
            follower.info.slice.is_some(),
            "a follower reads to the log end"
        );
        assert_eq!(follower.high_watermark, 0);
        assert!(matches!(part.produce_status(3, 1), ProduceStatus::Pending));

        part.follower_fetch(&follower_fetch(1)).expect("fetch");
        assert_eq!(part.high_watermark(), 1);
        part.follower_fetch(&follower_fetch(3)).expect("fetch");
        assert_eq!(part.high_watermark(), 3);
        assert_eq!(part.produce_status(3, 1), ProduceStatus::Complete(Ok(())));
        let consumer = part.read(0, 1 << 20, true).expect("read");
        assert!(consumer.slice.is_some());

        // An unknown replica, and a fetch past the log end, are refused with Kafka's codes.
        let mut stranger = follower_fetch(3);
        stranger.replica_id = 3;
        assert_eq!(
            part.follower_fetch(&stranger),
            Err(ErrorCode::UNKNOWN_LEADER_EPOCH)
        );
        assert_eq!(
            part.follower_fetch(&follower_fetch(4)),
            Err(ErrorCode::OFFSET_OUT_OF_RANGE)
        );
    }

    /// A new leader knows its epoch before anything is produced in it: OffsetForLeaderEpoch
    /// for the previous epoch answers where it ended (the log end), and for the new epoch the
    /// log end too, not UNDEFINED.
    #[test]
    fn a_new_leader_answers_offset_for_leader_epoch_for_its_empty_epoch() {
        let (_dir, _rm, topic) = one_partition(Arc::new(crate::clock::SystemClock), 1);
        let part = &topic.partitions[&0];
        part.append(&batch(3), &topic.settings)
            .expect("append in epoch 0");
        with_follower(part, vec![1, 2]);
        let answer = part.offset_for_leader_epoch(1, 1).expect("leader answers");
        assert_eq!((answer.leader_epoch, answer.end_offset), (1, 3));
        let answer = part.offset_for_leader_epoch(1, 0).expect("leader answers");
        assert_eq!((answer.leader_epoch, answer.end_offset), (0, 3));
        let append = part
            .append_to_leader(&batch(2), &topic.settings, -1)
            .expect("append in epoch 1");
        assert_eq!(append.leader_epoch, 1);
        let answer = part.offset_for_leader_epoch(1, 0).expect("leader answers");
        assert_eq!(
            (answer.leader_epoch, answer.end_offset),
            (0, 3),
            "epoch 1 starts at 3, where epoch 0 ended"
        );
    }

    /// DeleteRecords completes only when the follower's log start has followed the leader's
    /// (Kafka's low watermark), and at once on a single replica.
    #[tokio::test]
    async fn delete_records_waits_for_the_followers_log_start() {
        let (_dir, _rm, topic) = one_partition(Arc::new(crate::clock::SystemClock), 1);
        let part = &topic.partitions[&0];
        with_follower(part, vec![1, 2]);
        part.append_to_leader(&batch(5), &topic.settings, -1)
            .expect("append");
        part.follower_fetch(&follower_fetch(5)).expect("fetch");
        assert_eq!(part.high_watermark(), 5);
        assert_eq!(part.delete_records(3), Ok(3));
        let waited = tokio::time::timeout(
            std::time::Duration::from_millis(100),
            part.wait_low_watermark(3),
        )
        .await;
        assert!(waited.is_err(), "the follower still starts at 0");
        let waiter = {
            let part = Arc::clone(part);
            tokio::spawn(async move { part.wait_low_watermark(3).await })
        };
        let mut moved = follower_fetch(5);
        moved.log_start_offset = 3;
        part.follower_fetch(&moved).expect("fetch");
        assert_eq!(waiter.await.expect("task"), Ok(3));

        let (_dir, _rm, single) = one_partition(Arc::new(crate::clock::SystemClock), 1);
        let only = &single.partitions[&0];
        only.append(&batch(4), &single.settings).expect("append");
        assert_eq!(only.delete_records(-1), Ok(4));
        assert_eq!(only.wait_low_watermark(4).await, Ok(4));
    }

    /// The bytes a read returned.
    fn slice_bytes(read: &PartitionRead) -> Vec<u8> {
        use std::os::unix::fs::FileExt;
        let slice = read.info.slice.as_ref().expect("records");
        let mut buf = vec![0u8; slice.len];
        slice
            .file
            .read_exact_at(&mut buf, slice.position)
            .expect("read the slice");
        buf
    }

    /// A follower stores the leader's batches byte for byte and takes the leader's high
    /// watermark bounded by its own log end; records fetched under a stale registration are
    /// refused; the leader reports a diverging epoch for a follower ahead of its epoch's end;
    /// the follower truncates to the divergence point, or fully to a leader's log start.
    #[test]
    fn a_follower_appends_truncates_and_refuses_stale_epochs() {
        let clock: Arc<dyn Clock> = Arc::new(crate::clock::SystemClock);
        let (_d1, _rm1, leader_topic) = one_partition(clock.clone(), 1);
        let leader = &leader_topic.partitions[&0];
        with_follower(leader, vec![1, 2]);
        leader
            .append_to_leader(&batch(3), &leader_topic.settings, 1)
            .expect("append");
        leader
            .append_to_leader(&batch(2), &leader_topic.settings, 1)
            .expect("append");
        let bytes = slice_bytes(
            &leader
                .fetch_read(0, 1 << 20, true, FetchIsolation::LogEnd)
                .expect("read"),
        );

        let (_d2, _rm2, follower_topic) = one_partition(clock, 1);
        let f = &follower_topic.partitions[&0];
        with_leader_2(f, 1, 1);
        assert!(f.follows(2, 1) && !f.is_leader());
        assert_eq!(
            f.append_as_follower(2, 0, &bytes, 5, 0),
            Err(ErrorCode::FENCED_LEADER_EPOCH),
            "a fetch sent under an older leader epoch"
        );
        assert_eq!(f.log_end_offset(), 0);
        let info = f
            .append_as_follower(2, 1, &bytes, 4, 0)
            .expect("append")
            .expect("records");
        assert_eq!((info.first_offset, info.last_offset), (0, 4));
        assert_eq!((f.log_end_offset(), f.high_watermark()), (5, 4));
        assert_eq!(f.latest_log_epoch(), Ok(1));
        let copy = slice_bytes(
            &f.fetch_read(0, 1 << 20, true, FetchIsolation::LogEnd)
                .expect("read"),
        );
        assert_eq!(
            copy, bytes,
            "the follower's log is the leader's, byte for byte"
        );
        f.append_as_follower(2, 1, &[], 9, 0).expect("HW only");
        assert_eq!(f.high_watermark(), 5, "bounded by the follower's log end");
        // The leader's log start moved (DeleteRecords): followed up to the high watermark.
        f.append_as_follower(2, 1, &[], 5, 1).expect("log start");
        assert_eq!(f.log_start_offset(), Ok(1));
        f.append_as_follower(2, 1, &[], 5, 0)
            .expect("never backwards");
        assert_eq!(f.log_start_offset(), Ok(1));

        // The leader's side: epoch 1 ends at 5 here.
        assert_eq!(leader.diverging_epoch(1, 5), Ok(None));
        let end = leader
            .diverging_epoch(1, 7)
            .expect("placed")
            .expect("diverges");
        assert_eq!((end.leader_epoch, end.end_offset), (1, 5));

        // The follower cuts at the divergence point (a batch boundary here).
        assert_eq!(f.follower_truncation_offset(1, 3), Ok(3));
        assert_eq!(f.truncate_as_follower(2, 1, 3, false), Ok(3));
        assert_eq!((f.log_end_offset(), f.high_watermark()), (3, 3));
        assert!(f.durable_offset() <= 3);
        // Its log ends below the leader's log start: it restarts there.
        assert_eq!(f.truncate_as_follower(2, 1, 10, true), Ok(10));
        assert_eq!(f.log_start_offset(), Ok(10));
        assert_eq!((f.log_end_offset(), f.high_watermark()), (10, 10));
        assert_eq!(
            f.truncate_as_follower(3, 1, 0, false),
            Err(ErrorCode::FENCED_LEADER_EPOCH),
            "not the leader it follows"
        );
    }

    /// A follower that never fetches leaves the ISR after `replica.lag.time.max.ms` by the
    /// clock: the tick proposes the shrink, which waits in the pending AlterPartition queue.
    #[test]
    fn a_lagging_follower_is_proposed_out_of_the_isr() {
        let clock = Arc::new(ManualClock::new(1_000_000));
        let (_dir, rm, topic) = one_partition(clock.clone(), 1);
        let part = &topic.partitions[&0];
        with_follower(part, vec![1, 2]);
        part.append(&batch(1), &topic.settings).expect("append");
        rm.tick_replication();
        assert!(
            rm.take_pending_alter_partition().is_empty(),
            "within the lag"
        );
        clock.advance(30_001);
        rm.tick_replication();
        let pending = rm.take_pending_alter_partition();
        assert_eq!(pending.len(), 1);
        let (tp, request) = &pending[0];
        assert_eq!(tp, &part.tp);
        assert_eq!(
            request.new_isr,
            vec![IsrMember {
                broker_id: 1,
                broker_epoch: 0
            }]
        );
        assert_eq!((request.leader_epoch, request.partition_epoch), (1, 1));
        assert!(rm.take_pending_alter_partition().is_empty(), "taken once");
    }
}
