//! `Log` (Kafka's `UnifiedLog`): one partition's ordered segments, the last one active.
//!
//! ```text
//!  log start offset                                   recovery point        log end offset
//!        |                                                 |                      |
//!  [ 000…000.log ][ 000…512.log ][ 000…977.log (active) ..........................]
//!   rolled, closed indexes          appends go here (one pwrite per record set)
//! ```
//!
//! Two ways in: [`Log::append_as_leader`] takes a produced set that passed
//! `validate_record_set` and assigns offsets and the leader's epoch; [`Log::append_as_follower`]
//! takes batches a leader already assigned and stores them byte for byte. Both keep the
//! leader-epoch cache ([`LeaderEpochFileCache`], the `leader-epoch-checkpoint` file) in step,
//! and so do truncation and every move of the log start.
//!
//! Each log owns its producer state ([`ProducerStateManager`], the `.snapshot` files): a
//! leader append checks every batch with a producer id against it under the same `&mut self`
//! as the write, so two retries of one batch can never both be appended; a duplicate is
//! answered with the original offsets (`LogAppendInfo::duplicate`). Followers and recovery
//! update it without checks. Snapshots are written at each roll and at shutdown, dropped with
//! their segments and on truncation, and read back at open (see `load_producer_state`).
//!
//! Loading a log is the `loader` module's work (Kafka's `LogLoader`): recovery after an unclean
//! shutdown, index rebuilds, the epoch cache; it hands a ready state to `Log::from_loaded`.

use std::collections::BTreeMap;
use std::fs::File;
use std::hash::{BuildHasher, Hasher};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use gregor_protocol::batch::{
    assign_offsets_vectored, batches, AssignedBatch, BatchError, BatchView, ValidatedRecords,
    ATTR_CONTROL, ATTR_TRANSACTIONAL, BATCH_HEADER_LEN, MAGIC_V2,
};
use gregor_protocol::control::{
    build_end_txn_marker_batch, parse_end_txn_marker, ControlRecordType, EndTransactionMarker,
};
use gregor_protocol::records::RecordBatchDecoder;
use gregor_replication::epoch::{self, UNDEFINED_EPOCH_OFFSET};

use crate::leader_epoch::LeaderEpochFileCache;
pub(crate) use crate::loader::LoadOptions;
use crate::loader::{LoadedLog, LogLoader};
use crate::producer_state::{
    self, AppendCheck, AppendOrigin, ProducerBatch, ProducerStateManager, TxnVerification,
    VerificationGuard,
};
use crate::segment::{CorruptRange, LogSegment, SegmentReader};
use crate::txn_index::AbortedTxn;
use crate::{io_err, FileSlice, FlushTarget, LogAppendInfo, LogConfig, ReadInfo, StorageError};

/// Header reads on the fetch path: a few batch headers (61 bytes each) per read, so finding a
/// position copies little of the record data it skips (that data goes out by sendfile).
const READ_CHUNK: usize = 1024;

/// One partition's log: an ordered list of segments, the last one active.
#[derive(Debug)]
pub struct Log {
    pub(crate) dir: PathBuf,
    pub(crate) config: LogConfig,
    /// Segments by base offset; never empty.
    pub(crate) segments: BTreeMap<i64, LogSegment>,
    pub(crate) log_start_offset: i64,
    pub(crate) log_end_offset: i64,
    recovery_point: i64,
    /// What the next flush must sync besides the active segment: rolled segments and their
    /// finished indexes, and the directory after a segment was created.
    unflushed: Vec<PendingSync>,
    /// The log's directory was deleted (`LogManager::delete`): index files are no longer
    /// written, since their paths may by now name a new log's files.
    pub(crate) deleted: bool,
    /// The lowest offset the log was truncated to since the cleaner last looked (the cleaner
    /// checkpoint may name offsets that were cut and written again: dirty data).
    pub(crate) truncated_to: Option<i64>,
    /// How many truncations the log has had since it was opened (a move between directories
    /// starts its copy again when this changes).
    truncations: u64,
    /// The directory holds a `corrupt-ranges` file: rewrite it when segments are cut or go.
    corrupt_ranges_stored: bool,
    /// Where each leader epoch starts (`leader-epoch-checkpoint`); covers
    /// `[log_start_offset, log_end_offset)`.
    leader_epoch_cache: LeaderEpochFileCache,
    /// Idempotent producers' epochs and last batches, up to the log end offset.
    pub(crate) producer_state: ProducerStateManager,
    /// What is taken off `segment_ms` for the active segment (Kafka's `rollJitterMs`): drawn
    /// at random below `segment_jitter_ms` for each new active segment.
    roll_jitter_ms: i64,
}

/// Kafka's `LogConfig.randomSegmentJitter`: 0 without jitter, else a random number of
/// milliseconds below `min(segment.jitter.ms, segment.ms)`.
fn random_roll_jitter(config: &LogConfig) -> i64 {
    let bound = config.segment_jitter_ms.min(config.segment_ms);
    if bound <= 0 {
        return 0;
    }
    let random = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    i64::try_from(random % bound as u64).unwrap_or(0)
}

/// Per partition directory: the corrupt ranges recovery kept (see `LogSegment::recover`), so
/// that a later process, which does not re-scan old segments, still reads them as opaque batches
/// instead of walking into their headers. Also where an operator finds them. One line each:
/// `<segment base offset> <position> <end> <first offset> <next offset>`.
const CORRUPT_RANGES_FILE: &str = "corrupt-ranges";

/// One file or directory that the next flush syncs.
#[derive(Debug)]
struct PendingSync {
    /// Log end offset when it was added.
    added_at: i64,
    what: SyncItem,
    /// Handed to a `FlushTarget`: `mark_flushed` may drop it. Entries added after the target
    /// was taken (a roll at the same log end offset) stay for the next flush.
    in_target: bool,
}

#[derive(Debug)]
enum SyncItem {
    /// A rolled segment's `.log` (its descriptor is held anyway).
    Segment(Arc<File>),
    /// A finished index file, by path (indexes hold no descriptor).
    Index(PathBuf),
    /// The partition directory, after a segment file was created in it.
    Dir,
}

impl Log {
    /// Opens (creating if needed) the log in `dir`, recovering it as `opts` says (see the
    /// `loader` module).
    pub(crate) fn open(
        dir: &Path,
        config: LogConfig,
        opts: LoadOptions,
    ) -> Result<Log, StorageError> {
        LogLoader::new(dir, config, opts).load()
    }

    /// The last step of loading: log start offset, recovery point, segments that must reach
    /// the next flush, and the epoch cache cut to the log's range.
    pub(crate) fn from_loaded(loaded: LoadedLog) -> Result<Log, StorageError> {
        let LoadedLog {
            dir,
            config,
            opts,
            segments,
            log_end_offset,
            rebuilt,
            had_corrupt_ranges_file,
            epoch_cache,
            epoch_entries,
        } = loaded;
        let mut log = Log {
            dir,
            config,
            segments,
            log_start_offset: 0,
            log_end_offset: 0,
            recovery_point: 0,
            unflushed: Vec::new(),
            deleted: false,
            truncated_to: None,
            truncations: 0,
            corrupt_ranges_stored: false,
            leader_epoch_cache: epoch_cache,
            producer_state: ProducerStateManager::new(),
            roll_jitter_ms: 0,
        };
        log.roll_jitter_ms = random_roll_jitter(&log.config);
        let dir = log.dir.clone();
        let dir = dir.as_path();

        let checkpoint_start = opts.log_start_offset.unwrap_or(0);
        if log.segments.is_empty() {
            let base = checkpoint_start.max(0);
            let seg = LogSegment::create(dir, base, &log.config)?;
            log.segments.insert(base, seg);
            log.log_end_offset = base;
            log.add_pending(SyncItem::Dir);
        } else {
            // The loader found the end of every non-empty log.
            log.log_end_offset = log_end_offset.unwrap_or_else(|| log.first_base());
        }
        let first_base = log.first_base();
        log.log_start_offset = opts.log_start_offset.unwrap_or(first_base).max(first_base);
        let mut entries = epoch_entries;
        cut_epochs_to_log(&mut entries, log.log_start_offset, log.log_end_offset);
        log.leader_epoch_cache.set_entries(entries)?;
        if log.log_start_offset > log.log_end_offset {
            // The checkpoint is ahead of the data (its tail was lost): start over at it.
            tracing::warn!(
                dir = %dir.display(),
                log_start = log.log_start_offset,
                log_end = log.log_end_offset,
                "log start offset beyond the recovered end; truncating fully"
            );
            let start = log.log_start_offset;
            log.truncate_fully_and_start_at(start)?;
        }
        log.recovery_point = if opts.clean_shutdown {
            log.log_end_offset
        } else {
            opts.recovery_point
                .clamp(log.log_start_offset, log.log_end_offset)
        };
        // Segments past the recovery point were never fsynced, and indexes rebuilt above exist
        // only in memory: write the indexes of those that are finished (not the active one) and
        // include everything in the next flush.
        let rp = log.recovery_point;
        let active_base = log.active().base_offset();
        let finished: Vec<i64> = log
            .segments
            .keys()
            .copied()
            .filter(|&b| b != active_base)
            .filter(|&b| b >= rp || log.segment_end(b) > rp || rebuilt.contains(&b))
            .collect();
        if !opts.clean_shutdown && !finished.is_empty() {
            // Segments created since the last flush may not be in the directory for good.
            log.add_pending(SyncItem::Dir);
        }
        for base in finished {
            log.finish_segment(base)?;
        }
        log.corrupt_ranges_stored = had_corrupt_ranges_file;
        log.store_corrupt_ranges()?;
        log.load_producer_state()?;
        tracing::debug!(
            dir = %dir.display(),
            segments = log.segments.len(),
            log_start = log.log_start_offset,
            log_end = log.log_end_offset,
            "log loaded"
        );
        Ok(log)
    }

    fn active(&self) -> &LogSegment {
        self.segments
            .values()
            .next_back()
            .expect("a log always has an active segment")
    }

    fn active_mut(&mut self) -> &mut LogSegment {
        self.segments
            .values_mut()
            .next_back()
            .expect("a log always has an active segment")
    }

    fn note_truncation(&mut self, offset: i64) {
        self.truncated_to = Some(self.truncated_to.map_or(offset, |t| t.min(offset)));
        self.truncations += 1;
    }

    /// How many truncations the log has had since it was opened: a reader that copies it
    /// (a move between directories) must not trust what it copied before a change.
    pub fn truncation_count(&self) -> u64 {
        self.truncations
    }

    pub(crate) fn first_base(&self) -> i64 {
        self.segments.keys().next().copied().unwrap_or(0)
    }

    /// Offset after a segment: the next segment's base, or the log end for the active one.
    pub(crate) fn segment_end(&self, base: i64) -> i64 {
        self.segments
            .range(base + 1..)
            .next()
            .map_or(self.log_end_offset, |(&b, _)| b)
    }

    /// Appends a record set that passed `validate_record_set`, assigning offsets and
    /// `leader_epoch` in rewritten copies of the batch headers (see
    /// `gregor_protocol::batch::assign_offsets_vectored`, which finds the batches from what
    /// validation recorded instead of parsing the set again): the records go from the request
    /// buffer to the file in one vectored write, never copied. Rolls the active segment first
    /// when the set would overflow it, when it is older than `segment_ms`, or when its indexes
    /// are full. A new epoch starts at the set's first offset in the leader-epoch cache.
    /// `log_append_time`: the topic uses `message.timestamp.type=LogAppendTime`.
    pub fn append_as_leader(
        &mut self,
        records: &ValidatedRecords<'_>,
        leader_epoch: i32,
        now_ms: i64,
        log_append_time: bool,
    ) -> Result<LogAppendInfo, StorageError> {
        self.append_as_leader_from(
            AppendOrigin::Client,
            records,
            leader_epoch,
            now_ms,
            log_append_time,
        )
    }

    /// [`append_as_leader`](Self::append_as_leader) for an `origin` other than a client's
    /// produce: a coordinator's batches get only the producer-epoch check (Kafka's
    /// `AppendOrigin.COORDINATOR`).
    pub fn append_as_leader_from(
        &mut self,
        origin: AppendOrigin,
        records: &ValidatedRecords<'_>,
        leader_epoch: i32,
        now_ms: i64,
        log_append_time: bool,
    ) -> Result<LogAppendInfo, StorageError> {
        self.append_as_leader_verified(
            origin,
            records,
            leader_epoch,
            now_ms,
            log_append_time,
            TxnVerification::NotRequired,
        )
    }

    /// [`append_as_leader_from`](Self::append_as_leader_from) with a client's transaction
    /// verification (KIP-890): with [`TxnVerification::Required`], a transactional batch that
    /// would open its producer's transaction here is refused
    /// ([`producer_state::ProducerStateError::UnverifiedTransaction`]) unless the producer's
    /// verification entry holds the request's guard.
    pub fn append_as_leader_verified(
        &mut self,
        origin: AppendOrigin,
        records: &ValidatedRecords<'_>,
        leader_epoch: i32,
        now_ms: i64,
        log_append_time: bool,
        verification: TxnVerification,
    ) -> Result<LogAppendInfo, StorageError> {
        self.check_not_deleted()?;
        let summary = records.summary();
        // (batch, its offset delta from the set's first offset) for batches with a producer id.
        let producer_batches = produced_batches(records);
        if !producer_batches.is_empty() {
            let batches: Vec<ProducerBatch> = producer_batches.iter().map(|(b, _)| *b).collect();
            if let AppendCheck::Duplicate(original) =
                self.producer_state
                    .check_from_verified(origin, &batches, verification)?
            {
                return Ok(LogAppendInfo {
                    first_offset: original.first_offset,
                    last_offset: original.last_offset,
                    max_timestamp: -1,
                    log_append_time: -1,
                    log_start_offset: self.log_start_offset,
                    duplicate: true,
                });
            }
        }
        let first_offset = self.log_end_offset;
        let last_offset = first_offset + summary.offset_count.max(1) - 1;
        self.maybe_roll(records.len(), last_offset, now_ms)?;
        let append_time = log_append_time.then_some(now_ms);
        let (assigned, next) =
            assign_offsets_vectored(records, first_offset, leader_epoch, append_time);
        let epoch_added = self.maybe_assign_epoch(leader_epoch, first_offset)?;
        self.write_batches(&assigned, first_offset, epoch_added, now_ms)?;
        self.log_end_offset = next;
        for (b, (start, end)) in &producer_batches {
            self.producer_state
                .update(b, first_offset + start, first_offset + end, now_ms);
        }
        self.producer_state.advance_to(next);
        Ok(LogAppendInfo {
            first_offset,
            last_offset: next - 1,
            max_timestamp: append_time.unwrap_or(summary.max_timestamp),
            log_append_time: append_time.unwrap_or(-1),
            log_start_offset: self.log_start_offset,
            duplicate: false,
        })
    }

    /// Appends batches whose offsets a leader assigned (a follower's fetch), byte for byte as
    /// they are, so replicas hold identical segment files. Checks each batch's framing, magic,
    /// CRC-32C and `lastOffsetDelta`, and that the offsets increase from the log end (gaps are
    /// allowed: a compacted leader has them; [`StorageError::OffsetOutOfOrder`] for offsets
    /// that go back); records inside the batches are not
    /// re-walked (the leader validated them, and the CRC covers them since). Control batches
    /// and compacted batches (fewer records than offsets) are accepted, as a leader may hold
    /// them. Each batch's `partitionLeaderEpoch` goes into the leader-epoch cache. Rolls,
    /// indexes and flushes like a leader append. Nothing is written unless every batch passes.
    pub fn append_as_follower(
        &mut self,
        records: &[u8],
        now_ms: i64,
    ) -> Result<LogAppendInfo, StorageError> {
        self.check_not_deleted()?;
        let first_offset = self.log_end_offset;
        let mut expected = first_offset;
        let mut max_timestamp = -1;
        let mut epoch_starts: Vec<(i32, i64)> = Vec::new();
        let mut producer_events: Vec<ProducerEvent> = Vec::new();
        let mut assigned = Vec::with_capacity(1);
        let mut first_batch_offset = None;
        for b in batches(records) {
            let b = b?;
            check_replicated_batch(&b)?;
            first_batch_offset.get_or_insert(b.base_offset());
            // A gap is a compacted leader's (the cleaner removes whole batches); only offsets
            // that go back are refused.
            if b.base_offset() < expected {
                return Err(StorageError::OffsetOutOfOrder {
                    expected,
                    found: b.base_offset(),
                });
            }
            expected = b.next_offset();
            max_timestamp = max_timestamp.max(b.max_timestamp());
            let e = b.partition_leader_epoch();
            if e >= 0 && epoch_starts.last().map(|x| x.0) != Some(e) {
                epoch_starts.push((e, b.base_offset()));
            }
            if b.is_control() {
                if let Some(m) = MarkerEvent::of(&b) {
                    producer_events.push(ProducerEvent::Marker(m));
                }
            } else if b.producer_id() >= 0 {
                producer_events.push(ProducerEvent::Data(
                    ProducerBatch::new(
                        b.producer_id(),
                        b.producer_epoch(),
                        b.base_sequence(),
                        b.last_offset_delta().saturating_add(1),
                    )
                    .with_transactional(b.is_transactional()),
                    b.base_offset(),
                    b.last_offset(),
                ));
            }
            assigned.push(AssignedBatch::unchanged(b));
        }
        if assigned.is_empty() {
            return Err(BatchError::Malformed("empty record set").into());
        }
        let last_offset = expected - 1;
        if last_offset - first_offset >= i64::from(i32::MAX) {
            return Err(
                BatchError::Invalid("record set spans more offsets than a segment holds").into(),
            );
        }
        self.maybe_roll(records.len(), last_offset, now_ms)?;
        let mut epoch_added = false;
        for (e, start) in epoch_starts {
            epoch_added |= self.maybe_assign_epoch(e, start)?;
        }
        self.write_batches(&assigned, first_offset, epoch_added, now_ms)?;
        self.log_end_offset = expected;
        // The leader checked these batches; a follower keeps the same state (transactions and
        // aborted-transaction index included) so that it can take over as leader and still
        // recognise a retry, and serve read_committed fetches.
        for event in &producer_events {
            match event {
                ProducerEvent::Data(b, start, end) => {
                    self.producer_state.update(b, *start, *end, now_ms)
                }
                ProducerEvent::Marker(m) => {
                    if let Some(aborted) = m.apply(&mut self.producer_state) {
                        self.add_aborted_txn(aborted)?;
                    }
                }
            }
        }
        self.producer_state.advance_to(expected);
        Ok(LogAppendInfo {
            first_offset: first_batch_offset.unwrap_or(first_offset),
            last_offset,
            max_timestamp,
            log_append_time: -1,
            log_start_offset: self.log_start_offset,
            duplicate: false,
        })
    }

    /// This replica became leader in `epoch`: the epoch starts at the log end (Kafka's
    /// `assignEpochStartOffset`), persisted in the leader-epoch checkpoint before it returns.
    /// An epoch not above the newest one in the cache changes nothing. Returns whether the
    /// cache changed.
    pub fn assign_epoch_start_offset(&mut self, epoch: i32) -> Result<bool, StorageError> {
        self.check_not_deleted()?;
        if self
            .leader_epoch_cache
            .latest_epoch()
            .is_some_and(|e| e >= epoch)
        {
            return Ok(false);
        }
        self.leader_epoch_cache.assign(epoch, self.log_end_offset)
    }

    /// Kafka's marker append as leader (`appendAsLeader` with origin COORDINATOR): writes the
    /// control batch that ends `producer_id`'s transaction, in `leader_epoch`, timestamped
    /// `now_ms`. Refused before anything is written when the producer's epoch is older than the
    /// partition's (`INVALID_PRODUCER_EPOCH`) or the coordinator's epoch older than the one of
    /// the producer's last marker (`TRANSACTION_COORDINATOR_FENCED`); with
    /// `transaction_version` 2 (KIP-1228) also when it is not newer. An ABORT that ends a
    /// transaction adds it to the active segment's `.txnindex`.
    pub fn append_end_txn_marker_as_leader(
        &mut self,
        producer_id: i64,
        producer_epoch: i16,
        marker: EndTransactionMarker,
        transaction_version: i8,
        leader_epoch: i32,
        now_ms: i64,
    ) -> Result<LogAppendInfo, StorageError> {
        self.check_not_deleted()?;
        self.producer_state.check_end_txn_marker(
            producer_id,
            producer_epoch,
            marker.coordinator_epoch,
            transaction_version,
        )?;
        let offset = self.log_end_offset;
        let bytes = build_end_txn_marker_batch(
            offset,
            leader_epoch,
            producer_id,
            producer_epoch,
            now_ms,
            marker,
        );
        self.maybe_roll(bytes.len(), offset, now_ms)?;
        let view = BatchView::parse(&bytes)?;
        let event = MarkerEvent::of(&view).ok_or(BatchError::Invalid("not a marker"))?;
        let epoch_added = self.maybe_assign_epoch(leader_epoch, offset)?;
        self.write_batches(
            &[AssignedBatch::unchanged(view)],
            offset,
            epoch_added,
            now_ms,
        )?;
        self.log_end_offset = offset + 1;
        if let Some(aborted) = event.apply(&mut self.producer_state) {
            self.add_aborted_txn(aborted)?;
        }
        self.producer_state.advance_to(self.log_end_offset);
        Ok(LogAppendInfo {
            first_offset: offset,
            last_offset: offset,
            max_timestamp: now_ms,
            log_append_time: -1,
            log_start_offset: self.log_start_offset,
            duplicate: false,
        })
    }

    /// Adds an aborted transaction to the `.txnindex` of the segment holding its marker, to be
    /// fsynced with the next flush.
    fn add_aborted_txn(&mut self, aborted: AbortedTxn) -> Result<(), StorageError> {
        let Some((_, seg)) = self.segments.range_mut(..=aborted.last_offset).next_back() else {
            return Ok(());
        };
        seg.txn_index_mut().append(aborted)?;
        let path = seg.txn_index().path().to_path_buf();
        self.add_pending(SyncItem::Index(path));
        Ok(())
    }

    /// Kafka's `onHighWatermarkUpdated`: ended transactions whose marker is below the high
    /// watermark no longer hold the last stable offset back and are forgotten.
    pub fn on_high_watermark_updated(&mut self, high_watermark: i64) {
        self.producer_state
            .on_high_watermark_updated(high_watermark);
    }

    /// Kafka's `lastStableOffset`: the first offset of the earliest transaction that is open
    /// (or whose marker `high_watermark` has not passed), else `high_watermark`. Never below
    /// the log start. Forgets ended transactions below the high watermark on the way.
    pub fn last_stable_offset(&mut self, high_watermark: i64) -> i64 {
        self.producer_state
            .on_high_watermark_updated(high_watermark);
        match self.producer_state.first_unstable_offset(high_watermark) {
            Some(first) if first < high_watermark => first.max(self.log_start_offset),
            _ => high_watermark,
        }
    }

    /// Kafka's `collectAbortedTransactions`: the aborted transactions that overlap
    /// `[start, upper_bound)` (a read_committed fetch from `start` whose records end before
    /// `upper_bound`), from the `.txnindex` of the segment holding `start` and the later ones,
    /// until an entry's last stable offset shows that no later one can overlap.
    pub fn collect_aborted_transactions(&self, start: i64, upper_bound: i64) -> Vec<AbortedTxn> {
        let mut out = Vec::new();
        let first = self
            .segments
            .range(..=start)
            .next_back()
            .map_or(self.first_base(), |(&b, _)| b);
        for seg in self.segments.range(first..).map(|(_, s)| s) {
            if seg.txn_index().collect(start, upper_bound, &mut out) {
                break;
            }
        }
        out
    }

    /// Starts (or joins) a transaction verification of `producer_id` before its transactional
    /// produce is sent to the coordinator (see
    /// [`ProducerStateManager::maybe_start_verification`]): `None` when its transaction is
    /// already open here.
    pub fn maybe_start_transaction_verification(
        &mut self,
        producer_id: i64,
        sequence: i32,
        epoch: i16,
        supports_epoch_bump: bool,
        now_ms: i64,
    ) -> Option<VerificationGuard> {
        self.producer_state.maybe_start_verification(
            producer_id,
            sequence,
            epoch,
            supports_epoch_bump,
            now_ms,
        )
    }

    /// [`ProducerStateManager::start_transactional_append`] on this log's producer state.
    pub fn start_transactional_append(
        &mut self,
        producer_id: i64,
        sequence: i32,
        epoch: i16,
        supports_epoch_bump: bool,
        now_ms: i64,
    ) -> producer_state::TxnAppendStart {
        self.producer_state.start_transactional_append(
            producer_id,
            sequence,
            epoch,
            supports_epoch_bump,
            now_ms,
        )
    }

    /// [`ProducerStateManager::deferred_append_done`] on this log's producer state.
    pub fn deferred_append_done(&mut self, producer_id: i64) {
        self.producer_state.deferred_append_done(producer_id);
    }

    /// The partition's producer state (read only: the log keeps it in step with its data).
    pub fn producer_state(&self) -> &ProducerStateManager {
        &self.producer_state
    }

    /// Forgets producers idle for `expiration_ms` (`producer.id.expiration.ms`); returns how
    /// many.
    pub fn remove_expired_producers(&mut self, now_ms: i64, expiration_ms: i64) -> usize {
        self.producer_state.remove_expired(now_ms, expiration_ms)
    }

    /// Writes `<log end offset>.snapshot`. A failure is logged, not returned: the snapshot
    /// only shortens the next recovery, which falls back on an older one and the log.
    fn take_producer_snapshot(&mut self) {
        if self.deleted {
            return;
        }
        self.producer_state.advance_to(self.log_end_offset);
        if let Err(e) = self.producer_state.write_snapshot(&self.dir) {
            tracing::warn!(dir = %self.dir.display(), error = %e, "cannot write a producer-state snapshot");
        }
        self.remove_stray_snapshots();
    }

    /// Keeps the snapshots at segment bases and the newest one (see
    /// `producer_state::remove_stray_snapshots`); a failure only leaves files behind.
    fn remove_stray_snapshots(&self) {
        let mut bases: std::collections::BTreeSet<i64> = self.segments.keys().copied().collect();
        // The active segment's snapshot is written at the roll, before the segment exists.
        bases.insert(self.log_end_offset);
        if let Err(e) = producer_state::remove_stray_snapshots(&self.dir, &bases) {
            tracing::warn!(dir = %self.dir.display(), error = %e, "cannot remove stray producer-state snapshots");
        }
    }

    /// Loads the producer state at open: snapshots above the recovery point may describe data
    /// that never reached the disk and are removed (so are those of segments gone); the newest
    /// one left, plus the batches after it, gives the state at the log end.
    fn load_producer_state(&mut self) -> Result<(), StorageError> {
        producer_state::delete_snapshots(&self.dir, self.recovery_point + 1..)?;
        producer_state::delete_snapshots(&self.dir, ..self.first_base())?;
        self.rebuild_producer_state(self.log_end_offset)?;
        self.remove_stray_snapshots();
        Ok(())
    }

    /// The producer state at `end` (the log end): the newest readable snapshot at or below
    /// it, then every batch from there on.
    fn rebuild_producer_state(&mut self, end: i64) -> Result<(), StorageError> {
        let first_base = self.first_base();
        let mut state = None;
        for (&offset, path) in producer_state::list_snapshots(&self.dir)?
            .range(..=end)
            .rev()
        {
            if offset < first_base {
                break;
            }
            match producer_state::read_snapshot(path, offset)? {
                Some(s) => {
                    state = Some(s);
                    break;
                }
                _ => {
                    tracing::warn!(path = %path.display(), "ignoring an unreadable producer-state snapshot")
                }
            }
        }
        let mut state = state.unwrap_or_else(|| {
            // No snapshot (a log from before producer state, or one whose snapshots were all
            // dropped): like Kafka, scan only the last two segments rather than the whole log.
            // A producer last seen before them is unknown here, which Kafka 4.x accepts at any
            // sequence.
            let start = self
                .segments
                .keys()
                .rev()
                .nth(1)
                .copied()
                .unwrap_or(first_base)
                .max(first_base);
            let mut s = ProducerStateManager::new();
            s.reset(start);
            s
        });
        let from = state.map_end_offset();
        // The aborted transactions from `from` on are rebuilt with the state (Kafka rebuilds
        // the `.txnindex` of the segments it recovers).
        for seg in self.segments.values_mut() {
            seg.txn_index_mut().truncate_to(from)?;
        }
        let mut aborted = Vec::new();
        let mut replayed = 0usize;
        for seg in self.segments.values() {
            let seg_end = self
                .segments
                .range(seg.base_offset() + 1..)
                .next()
                .map_or(end, |(&b, _)| b);
            if seg_end <= from {
                continue;
            }
            let mut reader = seg.reader(READ_CHUNK);
            let Some((mut pos, _)) = seg.find_batch(&mut reader, from)? else {
                continue;
            };
            while let Some(h) = reader.header(pos).map_err(io_err(seg.log_path()))? {
                if h.base_offset >= end {
                    break;
                }
                if let Some(raw) = reader
                    .bytes(pos, BATCH_HEADER_LEN)
                    .map_err(io_err(seg.log_path()))?
                {
                    // A corrupt range reads as one batch whose header is not in the file.
                    let stored =
                        raw[16] as i8 == MAGIC_V2 && raw[..8] == h.base_offset.to_be_bytes();
                    if stored && is_marker_header(raw) {
                        // A marker is one small record: read the whole batch.
                        let size = usize::try_from(h.size).unwrap_or(0);
                        let event = reader
                            .bytes(pos, size)
                            .map_err(io_err(seg.log_path()))?
                            .and_then(|whole| BatchView::parse(whole).ok())
                            .and_then(|b| MarkerEvent::of(&b));
                        if let Some(m) = event {
                            aborted.extend(m.apply(&mut state));
                            replayed += 1;
                        }
                    } else if let Some(b) = producer_batch_of_header(raw).filter(|_| stored) {
                        state.update(&b, h.base_offset, h.last_offset, h.max_timestamp);
                        replayed += 1;
                    }
                }
                pos += h.size;
            }
        }
        state.advance_to(end);
        if replayed > 0 {
            tracing::debug!(dir = %self.dir.display(), from, end, replayed, "producer state rebuilt from the log");
        }
        self.producer_state = state;
        for entry in aborted {
            self.add_aborted_txn(entry)?;
        }
        Ok(())
    }

    fn check_not_deleted(&self) -> Result<(), StorageError> {
        if self.deleted {
            return Err(StorageError::Deleted {
                path: self.dir.display().to_string(),
            });
        }
        Ok(())
    }

    /// Kafka's `maybeAssignEpochStartOffset`, before the batches are written (as Kafka does: a
    /// crash in between leaves the file ahead of the log, which loading cuts back). Returns
    /// whether the cache changed. The common case, the latest epoch again, costs a compare.
    fn maybe_assign_epoch(&mut self, epoch: i32, start_offset: i64) -> Result<bool, StorageError> {
        if epoch < 0 || self.leader_epoch_cache.latest_epoch() == Some(epoch) {
            return Ok(false);
        }
        self.leader_epoch_cache.assign(epoch, start_offset)
    }

    /// Writes batches to the active segment at the log end offset. If the write fails and an
    /// epoch was just assigned for it, the cache is cut back to the log end again.
    fn write_batches(
        &mut self,
        batches: &[AssignedBatch<'_>],
        first_offset: i64,
        epoch_added: bool,
        now_ms: i64,
    ) -> Result<(), StorageError> {
        let interval = self.config.index_interval_bytes;
        if let Err(e) = self.active_mut().append(batches, now_ms, interval) {
            if epoch_added {
                if let Err(undo) = self.leader_epoch_cache.truncate_from_end(first_offset) {
                    tracing::warn!(dir = %self.dir.display(), error = %undo,
                        "cannot cut the leader-epoch cache back after a failed append");
                }
            }
            return Err(e);
        }
        Ok(())
    }

    /// The newest leader epoch in the log's epoch cache.
    pub fn latest_epoch(&self) -> Option<i32> {
        self.leader_epoch_cache.latest_epoch()
    }

    /// Kafka's `endOffsetForEpoch` (the answer to OffsetForLeaderEpoch): the largest epoch at
    /// most `epoch` that this log knows, and the offset where it ends here (the log end for
    /// the latest epoch; the next epoch's start otherwise). `None` when the epoch is undefined
    /// or newer than every epoch the log holds. See `gregor_replication::epoch::end_offset_for`.
    pub fn end_offset_for_epoch(&self, epoch: i32) -> Option<(i32, i64)> {
        let end = self
            .leader_epoch_cache
            .end_offset_for(epoch, self.log_end_offset);
        (end.end_offset != UNDEFINED_EPOCH_OFFSET).then_some((end.leader_epoch, end.end_offset))
    }

    /// The log's leader-epoch cache (read only: the log keeps it in step with its data).
    pub fn leader_epoch_cache(&self) -> &LeaderEpochFileCache {
        &self.leader_epoch_cache
    }

    /// Kafka's `shouldRoll`: only a non-empty segment rolls (an empty one would be replaced by a
    /// segment with the same base offset).
    fn maybe_roll(
        &mut self,
        set_len: usize,
        last_offset: i64,
        now_ms: i64,
    ) -> Result<(), StorageError> {
        let seg = self.active();
        if seg.is_empty() {
            return Ok(());
        }
        // Positions in the offset index are u32; Kafka caps segment.bytes at i32::MAX likewise.
        let max_size = self.config.segment_bytes.min(i32::MAX as u64);
        let too_big = seg.size() + set_len as u64 > max_size;
        let too_old = seg.age_ms(now_ms) > self.config.segment_ms - self.roll_jitter_ms;
        let offsets_overflow = last_offset - seg.base_offset() > i64::from(i32::MAX);
        if too_big || too_old || seg.indexes_full() || offsets_overflow {
            tracing::debug!(
                dir = %self.dir.display(),
                too_big, too_old, offsets_overflow,
                "rolling segment"
            );
            self.roll()?;
        }
        Ok(())
    }

    /// Starts a new active segment at the log end offset. The old one stays in the next flush.
    pub(crate) fn roll(&mut self) -> Result<(), StorageError> {
        let leo = self.log_end_offset;
        if self.active().base_offset() == leo {
            return Ok(());
        }
        // Finish the old segment first: if its indexes cannot be written, the roll fails and
        // the next append tries again, instead of leaving a rolled segment with a short index.
        let old_base = self.active().base_offset();
        self.active_mut().release_preallocation();
        self.finish_segment(old_base)?;
        self.take_producer_snapshot();
        let new = LogSegment::create(&self.dir, leo, &self.config)?;
        self.segments.insert(leo, new);
        self.roll_jitter_ms = random_roll_jitter(&self.config);
        self.add_pending(SyncItem::Dir);
        Ok(())
    }

    /// A segment that is no longer active: writes its final index entries and queues its
    /// `.log` and index files for the next flush.
    fn finish_segment(&mut self, base: i64) -> Result<(), StorageError> {
        let Some(seg) = self.segments.get_mut(&base) else {
            return Ok(());
        };
        let indexes_written = seg.close_indexes()?;
        let log_file = Arc::clone(seg.log_file());
        let index_paths = seg.index_paths().map(Path::to_path_buf);
        self.add_pending(SyncItem::Segment(log_file));
        if indexes_written {
            for path in index_paths {
                self.add_pending(SyncItem::Index(path));
            }
        }
        Ok(())
    }

    /// After the cleaner replaced segments: the directory's new entries reach the next flush.
    pub(crate) fn add_pending_dir(&mut self) {
        self.add_pending(SyncItem::Dir);
    }

    fn add_pending(&mut self, what: SyncItem) {
        if matches!(what, SyncItem::Dir)
            && self
                .unflushed
                .iter()
                .any(|p| matches!(p.what, SyncItem::Dir) && !p.in_target)
        {
            return;
        }
        self.unflushed.push(PendingSync {
            added_at: self.log_end_offset,
            what,
            in_target: false,
        });
    }

    /// Reads whole batches from `offset` on, at most `max_bytes` (but at least the first batch
    /// when `min_one_batch`, KIP-74), never past `upper_bound` (exclusive; the high watermark).
    /// The first batch returned is the one that contains `offset`.
    pub fn read(
        &self,
        offset: i64,
        max_bytes: usize,
        upper_bound: i64,
        min_one_batch: bool,
    ) -> Result<ReadInfo, StorageError> {
        self.read_in_segment(offset, max_bytes, upper_bound, min_one_batch)
            .map(|(info, _)| info)
    }

    /// A read_committed read (Kafka's `read` with `includeAbortedTxns`): [`read`](Self::read)
    /// up to `last_stable_offset`, and the aborted transactions that overlap what it returned
    /// (bounded, as Kafka's, by the end of the segment read from), so the client can drop
    /// their records. No data, no aborted transactions.
    pub fn read_committed(
        &self,
        offset: i64,
        max_bytes: usize,
        last_stable_offset: i64,
        min_one_batch: bool,
    ) -> Result<(ReadInfo, Vec<AbortedTxn>), StorageError> {
        let (info, segment_base) =
            self.read_in_segment(offset, max_bytes, last_stable_offset, min_one_batch)?;
        let aborted = match (&info.slice, segment_base) {
            (Some(_), Some(base)) => {
                let upper = self.segment_end(base).min(last_stable_offset);
                self.collect_aborted_transactions(offset, upper)
            }
            _ => Vec::new(),
        };
        Ok((info, aborted))
    }

    /// [`read`](Self::read), and the base offset of the segment the data came from.
    fn read_in_segment(
        &self,
        offset: i64,
        max_bytes: usize,
        upper_bound: i64,
        min_one_batch: bool,
    ) -> Result<(ReadInfo, Option<i64>), StorageError> {
        if offset < self.log_start_offset || offset > self.log_end_offset {
            return Err(self.out_of_range(offset));
        }
        if offset == self.log_end_offset || offset >= upper_bound {
            return Ok((ReadInfo { slice: None }, None));
        }
        let first = self
            .segments
            .range(..=offset)
            .next_back()
            .map_or(self.first_base(), |(&b, _)| b);
        // Usually the first segment holds the offset; a later one only across a gap.
        for (_, seg) in self.segments.range(first..) {
            let mut reader = seg.reader(READ_CHUNK);
            let Some((start, _)) = seg.find_batch(&mut reader, offset)? else {
                continue;
            };
            let total = read_extent(
                seg,
                &mut reader,
                start,
                max_bytes as u64,
                upper_bound >= self.log_end_offset,
                upper_bound,
                min_one_batch,
            )?;
            let total = usize::try_from(total).expect("segment sizes fit in usize");
            let slice = (total > 0).then(|| FileSlice {
                file: Arc::clone(seg.log_file()),
                position: start,
                len: total,
            });
            return Ok((ReadInfo { slice }, Some(seg.base_offset())));
        }
        Ok((ReadInfo { slice: None }, None))
    }

    fn out_of_range(&self, offset: i64) -> StorageError {
        StorageError::OffsetOutOfRange {
            offset,
            log_start: self.log_start_offset,
            log_end: self.log_end_offset,
        }
    }

    /// First offset still in the log.
    pub fn log_start_offset(&self) -> i64 {
        self.log_start_offset
    }

    /// Offset the next record will get.
    pub fn log_end_offset(&self) -> i64 {
        self.log_end_offset
    }

    /// Offset up to which the log is known durable (fsynced).
    pub fn recovery_point(&self) -> i64 {
        self.recovery_point
    }

    /// Total bytes of all segments.
    pub fn size_bytes(&self) -> u64 {
        self.segments.values().map(LogSegment::size).sum()
    }

    /// Number of segments (the active one included).
    pub fn segment_count(&self) -> usize {
        self.segments.len()
    }

    /// `(base offset, size, largest timestamp)` of each segment.
    #[cfg(test)]
    pub(crate) fn segment_stats(&self) -> Vec<(i64, u64, i64)> {
        self.segments
            .values()
            .map(|s| (s.base_offset(), s.size(), s.largest_timestamp()))
            .collect()
    }

    /// `(first offset, next offset)` of every corrupt range recovery kept.
    #[cfg(test)]
    pub(crate) fn corrupt_ranges_for_tests(&self) -> Vec<(i64, i64)> {
        self.segments
            .values()
            .flat_map(|s| {
                s.corrupt_ranges()
                    .iter()
                    .map(|r| (r.first_offset, r.next_offset))
            })
            .collect()
    }

    /// Writes the active segment's in-memory index entries to its files (tests: to set up
    /// index files that hold the active segment's entries).
    #[cfg(test)]
    pub(crate) fn persist_active_indexes(&mut self) -> Result<bool, StorageError> {
        self.active_mut().persist_indexes()
    }

    /// Per segment, index entries not written to the index files yet (offset, time).
    #[cfg(test)]
    pub(crate) fn unpersisted_index_entries(&self) -> Vec<(usize, usize)> {
        self.segments
            .values()
            .map(LogSegment::unpersisted_index_entries)
            .collect()
    }

    /// The log's current config.
    pub fn config(&self) -> &LogConfig {
        &self.config
    }

    /// ListOffsets `MAX_TIMESTAMP` (KIP-734): `(offset, timestamp)` of the batch holding the largest
    /// timestamp (the batch's last offset), `None` for a log without timestamps.
    pub fn max_timestamp(&self) -> Option<(i64, i64)> {
        self.segments
            .values()
            .filter(|s| s.max_timestamp() >= 0)
            .max_by_key(|s| s.max_timestamp())
            .map(|s| {
                (
                    s.offset_of_max_timestamp().max(self.log_start_offset),
                    s.max_timestamp(),
                )
            })
    }

    /// ListOffsets by timestamp: the earliest record whose timestamp is >= `timestamp`, as
    /// `(offset, record timestamp)`; `None` when no record is that new.
    ///
    /// The batch is found from the time index and batch headers; the record inside it by decoding
    /// the batch. If the batch cannot be decoded (an unsupported codec), the batch's base offset
    /// and max timestamp are returned: a consumer starting there sees every matching record.
    pub fn offset_for_timestamp(&self, timestamp: i64) -> Result<Option<(i64, i64)>, StorageError> {
        for seg in self.segments.values() {
            if seg.max_timestamp() < timestamp {
                continue;
            }
            let Some((pos, h)) = seg.find_batch_by_timestamp(timestamp)? else {
                continue;
            };
            if h.last_offset < self.log_start_offset {
                continue;
            }
            let fallback = (h.base_offset.max(self.log_start_offset), h.max_timestamp);
            if h.log_append_time {
                // Every record of a LogAppendTime batch carries the batch's max timestamp.
                return Ok(Some(fallback));
            }
            let bytes = seg.read_bytes(pos, h.size as usize)?;
            let mut buf = bytes::Bytes::from(bytes);
            let found = match RecordBatchDecoder::decode(&mut buf) {
                Ok(set) => set
                    .records
                    .iter()
                    .find(|r| r.timestamp >= timestamp && r.offset >= self.log_start_offset)
                    .map(|r| (r.offset, r.timestamp)),
                Err(e) => {
                    tracing::debug!(error = %e, "cannot decode batch for a timestamp lookup");
                    Some(fallback)
                }
            };
            if let Some(found) = found {
                return Ok(Some(found));
            }
        }
        Ok(None)
    }

    /// What to fsync to make everything appended so far durable; `None` if already durable.
    ///
    /// The active segment's index entries stay in memory: after an unclean shutdown the segment
    /// holding the recovery point (always the active one or an earlier one) is re-scanned and
    /// its indexes rebuilt, so writing them here would buy nothing and cost an open, a write and
    /// a close per index file on every group commit. They reach their files when the segment
    /// rolls (then they are queued for the next flush, which fsyncs them) and at shutdown.
    pub fn flush_target(&mut self) -> Option<FlushTarget> {
        // A directory entry only matters once there is data in the files it names.
        let only_dir = self
            .unflushed
            .iter()
            .all(|p| matches!(p.what, SyncItem::Dir));
        if self.recovery_point >= self.log_end_offset && only_dir {
            return None;
        }
        let mut files = Vec::new();
        let mut paths = Vec::new();
        for p in &mut self.unflushed {
            p.in_target = true;
            match &p.what {
                SyncItem::Segment(f) => files.push(Arc::clone(f)),
                SyncItem::Index(path) => paths.push(path.clone()),
                SyncItem::Dir => paths.push(self.dir.clone()),
            }
        }
        files.push(Arc::clone(self.active().log_file()));
        Some(FlushTarget {
            files,
            end_offset: self.log_end_offset,
            paths,
        })
    }

    /// Records that a `FlushTarget` with this `end_offset` was synced.
    pub fn mark_flushed(&mut self, end_offset: i64) {
        let end = end_offset.min(self.log_end_offset);
        if end > self.recovery_point {
            self.recovery_point = end;
        }
        self.unflushed
            .retain(|p| !(p.in_target && p.added_at <= end_offset));
    }

    /// Shutdown path: writes the active segment's final index entries, then flushes data and
    /// indexes under the lock and advances the recovery point.
    pub(crate) fn flush_all(&mut self) -> Result<(), StorageError> {
        if self.deleted {
            return Ok(());
        }
        let active = self.active_mut();
        active.release_preallocation();
        // An index that cannot be written (a full disk) must not keep the data from being
        // synced: the data is what was acknowledged; the index is rebuilt by the recovery the
        // missing clean-shutdown marker then causes.
        let indexes = active.close_indexes();
        if let Ok(true) = indexes {
            let paths = active.index_paths().map(Path::to_path_buf);
            for path in paths {
                self.add_pending(SyncItem::Index(path));
            }
        }
        if let Some(target) = self.flush_target() {
            target.sync().map_err(io_err(&self.dir))?;
            self.mark_flushed(target.end_offset);
        }
        // After the data: a snapshot must never describe batches that are not on disk.
        self.take_producer_snapshot();
        indexes.map(|_| ())
    }

    /// Applies retention (time, then size); deletes whole segments, never the active one,
    /// and moves the log start offset. Returns how many segments went.
    pub fn apply_retention(&mut self, now_ms: i64) -> Result<usize, StorageError> {
        let mut deleted = 0;
        if self.config.retention_ms >= 0 {
            let retention_ms = self.config.retention_ms;
            deleted +=
                self.delete_oldest_while(|seg, _| now_ms - seg.largest_timestamp() > retention_ms)?;
            let active = self.active();
            if self.segments.len() == 1
                && !active.is_empty()
                && now_ms - active.largest_timestamp() > retention_ms
            {
                // Everything is expired: Kafka rolls the active segment so retention can take
                // it next time.
                self.roll()?;
            }
        }
        if self.config.retention_bytes >= 0 {
            let mut diff = self.size_bytes() as i64 - self.config.retention_bytes;
            deleted += self.delete_oldest_while(|seg, _| {
                if diff - seg.size() as i64 >= 0 {
                    diff -= seg.size() as i64;
                    true
                } else {
                    false
                }
            })?;
        }
        Ok(deleted)
    }

    /// Kafka DeleteRecords: moves the log start offset to `offset` and deletes segments that lie
    /// entirely below it (never the active one). Returns how many segments went.
    pub fn delete_records_before(&mut self, offset: i64) -> Result<usize, StorageError> {
        if offset > self.log_end_offset {
            return Err(self.out_of_range(offset));
        }
        if offset <= self.log_start_offset {
            return Ok(0);
        }
        self.log_start_offset = offset;
        self.delete_oldest_while(|_, end| end <= offset)
    }

    /// Deletes segments from the oldest while `pred(segment, segment end offset)` holds, never
    /// the active one; then moves the log start offset to the first remaining segment.
    fn delete_oldest_while(
        &mut self,
        mut pred: impl FnMut(&LogSegment, i64) -> bool,
    ) -> Result<usize, StorageError> {
        let mut deleted = 0;
        while self.segments.len() > 1 {
            let base = self.first_base();
            let end = self.segment_end(base);
            let Some(seg) = self.segments.get(&base) else {
                break;
            };
            if !pred(seg, end) {
                break;
            }
            if let Some(seg) = self.segments.remove(&base) {
                tracing::info!(
                    segment = %seg.log_path().display(),
                    size = seg.size(),
                    "deleting segment"
                );
                seg.delete_files()?;
                deleted += 1;
            }
        }
        let first = self.first_base();
        if first > self.log_start_offset {
            self.log_start_offset = first;
        }
        if deleted > 0 {
            // The snapshots of deleted segments go with them.
            producer_state::delete_snapshots(&self.dir, ..first)?;
        }
        // Kafka's `maybeIncrementLogStartOffset`: epochs that started before the new log start
        // now start at it.
        if self
            .leader_epoch_cache
            .epoch_entries()
            .first()
            .is_some_and(|e| e.start_offset < self.log_start_offset)
        {
            let mut entries = self.leader_epoch_cache.epoch_entries().to_vec();
            cut_epochs_to_log(&mut entries, self.log_start_offset, self.log_end_offset);
            self.leader_epoch_cache.set_entries(entries)?;
        }
        if deleted > 0 {
            self.store_corrupt_ranges()?;
        }
        Ok(deleted)
    }

    /// Drops everything at and above `offset` (replication: a follower truncating to the
    /// leader's log). Cuts at batch boundaries, so the new log end offset is the base offset of
    /// the batch containing `offset`. Below the log start (or when that batch starts below
    /// it), the log is emptied and restarts at `offset`.
    pub fn truncate_to(&mut self, offset: i64) -> Result<(), StorageError> {
        if offset >= self.log_end_offset {
            // As Kafka's `truncateTo`: the cache may still end with an epoch this replica
            // started at the log end as leader and never appended to; the new leader does not
            // know it, and a follower that kept it would name it in every fetch and be told
            // to truncate again, for ever.
            return self
                .leader_epoch_cache
                .truncate_from_end(self.log_end_offset);
        }
        if offset < self.log_start_offset || offset <= self.first_base() {
            return self.truncate_fully_and_start_at(offset.max(0));
        }
        tracing::info!(dir = %self.dir.display(), offset, log_end = self.log_end_offset, "truncating log");
        self.note_truncation(offset);
        // Segments starting at or above `offset` go entirely; `offset > first base` keeps one.
        let later: Vec<i64> = self.segments.range(offset..).map(|(&b, _)| b).collect();
        for b in later {
            if let Some(seg) = self.segments.remove(&b) {
                seg.delete_files()?;
            }
        }
        let seg = self.active_mut();
        let base = seg.base_offset();
        self.log_end_offset = seg.truncate_to(offset)?.unwrap_or(base);
        if self.log_end_offset < self.log_start_offset {
            // The batch holding `offset` started below the log start: nothing readable is
            // left, and a log end below the log start would name offsets DeleteRecords gave up.
            return self.truncate_fully_and_start_at(offset);
        }
        self.recovery_point = self.recovery_point.min(self.log_end_offset);
        self.leader_epoch_cache
            .truncate_from_end(self.log_end_offset)?;
        // Kafka's `truncateAndReload`: snapshots above the new end describe batches that are
        // gone; the state is rebuilt from the newest one left plus the log after it.
        producer_state::delete_snapshots(&self.dir, self.log_end_offset + 1..)?;
        self.rebuild_producer_state(self.log_end_offset)?;
        let leo = self.log_end_offset;
        self.unflushed
            .retain(|p| p.added_at <= leo || matches!(p.what, SyncItem::Dir));
        self.store_corrupt_ranges()
    }

    /// Deletes every segment and starts an empty log at `offset` (replication: a follower whose
    /// log ends below the leader's log start restarts its log there, Kafka's
    /// `truncateFullyAndStartAt`).
    pub fn truncate_fully_and_start_at(&mut self, offset: i64) -> Result<(), StorageError> {
        tracing::info!(dir = %self.dir.display(), offset, "truncating log fully");
        self.note_truncation(offset);
        for (_, seg) in std::mem::take(&mut self.segments) {
            seg.delete_files()?;
        }
        let seg = LogSegment::create(&self.dir, offset, &self.config)?;
        self.segments.insert(offset, seg);
        self.log_start_offset = offset;
        self.log_end_offset = offset;
        self.recovery_point = offset;
        self.leader_epoch_cache.clear()?;
        producer_state::delete_snapshots(&self.dir, ..)?;
        self.producer_state.reset(offset);
        self.unflushed.clear();
        self.add_pending(SyncItem::Dir);
        self.store_corrupt_ranges()
    }

    /// Writes the `corrupt-ranges` file (atomically), or removes it when no range is left.
    /// Does nothing for a log that never had one.
    fn store_corrupt_ranges(&mut self) -> Result<(), StorageError> {
        let mut text = String::new();
        for seg in self.segments.values() {
            for r in seg.corrupt_ranges() {
                text.push_str(&format!(
                    "{} {} {} {} {}\n",
                    seg.base_offset(),
                    r.position,
                    r.end,
                    r.first_offset,
                    r.next_offset
                ));
            }
        }
        if text.is_empty() && !self.corrupt_ranges_stored {
            return Ok(());
        }
        let path = self.dir.join(CORRUPT_RANGES_FILE);
        if text.is_empty() {
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err(&path)(e)),
            }
            self.corrupt_ranges_stored = false;
            return Ok(());
        }
        let tmp = self.dir.join(format!("{CORRUPT_RANGES_FILE}.tmp"));
        std::fs::write(&tmp, text.as_bytes())
            .and_then(|()| File::open(&tmp)?.sync_all())
            .map_err(io_err(&tmp))?;
        std::fs::rename(&tmp, &path).map_err(io_err(&path))?;
        crate::checkpoint::sync_dir(&self.dir)?;
        self.corrupt_ranges_stored = true;
        Ok(())
    }

    /// Called by `LogManager::delete` under the log's lock before the directory goes: a
    /// partition handle that outlives the deletion may still flush, but must not write index
    /// files by path (a topic re-created under the same name owns them now).
    pub(crate) fn mark_deleted(&mut self) {
        self.deleted = true;
        self.unflushed.clear();
    }

    /// After `LogManager::delete` removed the directory: frees the segments' blocks at once
    /// (see `LogSegment::release_space`).
    pub(crate) fn release_space(&mut self) {
        for seg in self.segments.values_mut() {
            seg.release_space();
        }
    }

    /// Whether the log was deleted (or moved away) under its holders.
    pub fn is_deleted(&self) -> bool {
        self.deleted
    }

    /// Replaces the log's config (topic config changes).
    pub fn set_config(&mut self, config: LogConfig) {
        let jitter_changed = (config.segment_jitter_ms, config.segment_ms)
            != (self.config.segment_jitter_ms, self.config.segment_ms);
        self.config = config;
        if jitter_changed {
            self.roll_jitter_ms = random_roll_jitter(&self.config);
        }
    }

    /// What is taken off `segment.ms` for the active segment (tests).
    #[cfg(test)]
    pub(crate) fn roll_jitter_ms(&self) -> i64 {
        self.roll_jitter_ms
    }
}

/// The `corrupt-ranges` file of `dir` by segment base; `None` when there is none. A line that
/// does not parse is skipped with a warning (the range is then re-read as stored bytes).
pub(crate) fn load_corrupt_ranges(
    dir: &Path,
) -> Result<Option<BTreeMap<i64, Vec<CorruptRange>>>, StorageError> {
    let path = dir.join(CORRUPT_RANGES_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err(&path)(e)),
    };
    let mut out: BTreeMap<i64, Vec<CorruptRange>> = BTreeMap::new();
    for line in text.lines() {
        let nums: Vec<i64> = line
            .split_whitespace()
            .map_while(|w| w.parse().ok())
            .collect();
        match nums[..] {
            [base, position, end, first_offset, next_offset] if position >= 0 && end >= 0 => {
                out.entry(base).or_default().push(CorruptRange {
                    position: position as u64,
                    end: end as u64,
                    first_offset,
                    next_offset,
                });
            }
            _ => tracing::warn!(file = %path.display(), line, "ignoring a malformed line"),
        }
    }
    Ok(Some(out))
}

/// Base offsets of the `.log` files in `dir`, sorted. Other files are ignored; index files
/// without a `.log` are removed (left behind by a crash during deletion).
pub(crate) fn list_segment_bases(dir: &Path) -> Result<Vec<i64>, StorageError> {
    let mut bases = Vec::new();
    let mut orphans = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io_err(dir))? {
        let entry = entry.map_err(io_err(dir))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some((stem, ext)) = name.split_once('.') else {
            continue;
        };
        if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(base) = stem.parse::<i64>() else {
            continue;
        };
        match ext {
            "log" => bases.push(base),
            "index" | "timeindex" | "txnindex" => orphans.push((base, entry.path())),
            _ => {}
        }
    }
    bases.sort_unstable();
    for (base, path) in orphans {
        if bases.binary_search(&base).is_err() {
            tracing::info!(path = %path.display(), "removing index without a segment");
            std::fs::remove_file(&path).map_err(io_err(&path))?;
        }
    }
    Ok(bases)
}

/// The epoch cache of a log holding `[log_start, log_end)`: entries before the log start
/// collapse into one starting at it (Kafka's `truncateFromStart`), then entries starting at or
/// past the log end go (`truncateFromEnd`). In that order, so a log whose every record was
/// deleted (log start = log end) has no epoch left, whether its cache was kept in step or
/// rebuilt from its batches at load.
fn cut_epochs_to_log(entries: &mut Vec<epoch::EpochEntry>, log_start: i64, log_end: i64) {
    epoch::truncate_from_start(entries, log_start);
    epoch::truncate_from_end(entries, log_end);
}

/// The batches of a produced set that carry a producer id, with their offset range relative
/// to the set's first offset.
fn produced_batches(records: &ValidatedRecords<'_>) -> Vec<(ProducerBatch, (i64, i64))> {
    let bytes = records.bytes();
    let mut out = Vec::new();
    let mut delta = 0i64;
    for span in records.batches() {
        let header = &bytes[span.position..span.position + BATCH_HEADER_LEN.min(span.size)];
        let end = delta + i64::from(span.last_offset_delta);
        if let Some(b) = producer_batch_of_header(header) {
            out.push((b, (delta, end)));
        }
        delta = end + 1;
    }
    out
}

/// The producer fields of a batch header (its first 61 bytes), for a data batch with a
/// producer id; `None` otherwise (no producer id, a control batch, a short header).
fn producer_batch_of_header(h: &[u8]) -> Option<ProducerBatch> {
    if h.len() < BATCH_HEADER_LEN {
        return None;
    }
    let i64_at = |at: usize| {
        let mut a = [0u8; 8];
        a.copy_from_slice(&h[at..at + 8]);
        i64::from_be_bytes(a)
    };
    let i32_at = |at: usize| i32::from_be_bytes([h[at], h[at + 1], h[at + 2], h[at + 3]]);
    let attributes = i16::from_be_bytes([h[21], h[22]]);
    let producer_id = i64_at(43);
    if producer_id < 0 || attributes & ATTR_CONTROL != 0 {
        return None;
    }
    let epoch = i16::from_be_bytes([h[51], h[52]]);
    let first_seq = i32_at(53);
    let last_offset_delta = i32_at(23);
    Some(
        ProducerBatch::new(
            producer_id,
            epoch,
            first_seq,
            last_offset_delta.saturating_add(1),
        )
        .with_transactional(attributes & ATTR_TRANSACTIONAL != 0),
    )
}

/// A batch header's attributes say control batch (a transaction marker) with a producer id.
fn is_marker_header(h: &[u8]) -> bool {
    if h.len() < BATCH_HEADER_LEN {
        return false;
    }
    let attributes = i16::from_be_bytes([h[21], h[22]]);
    let mut pid = [0u8; 8];
    pid.copy_from_slice(&h[43..51]);
    attributes & ATTR_CONTROL != 0 && i64::from_be_bytes(pid) >= 0
}

/// A transaction marker found in a batch: who it is for and what it says.
#[derive(Debug, Clone, Copy)]
struct MarkerEvent {
    producer_id: i64,
    producer_epoch: i16,
    marker: EndTransactionMarker,
    offset: i64,
    timestamp: i64,
}

impl MarkerEvent {
    /// The marker of a control batch; `None` for other batches (and control records that are
    /// not transaction markers).
    fn of(b: &BatchView<'_>) -> Option<MarkerEvent> {
        if b.producer_id() < 0 {
            return None;
        }
        parse_end_txn_marker(b).map(|marker| MarkerEvent {
            producer_id: b.producer_id(),
            producer_epoch: b.producer_epoch(),
            marker,
            offset: b.base_offset(),
            timestamp: b.max_timestamp(),
        })
    }

    /// Ends the producer's transaction in `state`; an ABORT that ended one returns the entry
    /// for the `.txnindex`.
    fn apply(&self, state: &mut ProducerStateManager) -> Option<AbortedTxn> {
        let completed = state.apply_end_txn_marker(
            self.producer_id,
            self.producer_epoch,
            self.marker.coordinator_epoch,
            self.marker.control_type == ControlRecordType::Abort,
            self.offset,
            self.timestamp,
        )?;
        completed.is_aborted.then(|| AbortedTxn {
            producer_id: completed.producer_id,
            first_offset: completed.first_offset,
            last_offset: completed.last_offset,
            last_stable_offset: state.last_stable_offset_of(&completed),
        })
    }
}

/// What a replicated or recovered batch means to the producer state, in log order.
#[derive(Debug, Clone, Copy)]
enum ProducerEvent {
    /// A data batch with a producer id, with its first and last offset.
    Data(ProducerBatch, i64, i64),
    /// A transaction marker.
    Marker(MarkerEvent),
}

/// A follower's check of one batch a leader sent: framing was checked by the parse; here
/// magic, CRC-32C and a usable `lastOffsetDelta`. The records inside are covered by the CRC.
fn check_replicated_batch(b: &BatchView<'_>) -> Result<(), BatchError> {
    if b.magic() != MAGIC_V2 {
        return Err(BatchError::UnsupportedMagic(b.magic()));
    }
    let computed = b.computed_crc();
    if computed != b.crc() {
        return Err(BatchError::CrcMismatch {
            stored: b.crc(),
            computed,
        });
    }
    if b.last_offset_delta() < 0 {
        return Err(BatchError::Invalid("negative lastOffsetDelta"));
    }
    Ok(())
}

/// Bytes of whole batches from `start` (a batch start in `seg`) that a read may return: at most
/// `max_bytes` (but the first batch whole when `min_one_batch`, KIP-74), and none whose last
/// offset is at or past `upper_bound`.
///
/// When the bound is the log end (`whole_segment_readable`: every batch of the segment is below
/// it), no header is read at all if the rest of the segment fits, and otherwise the scan starts
/// at the furthest indexed batch start that fits, so a megabyte read costs a few header reads
/// instead of one per batch.
fn read_extent(
    seg: &LogSegment,
    reader: &mut SegmentReader<'_>,
    start: u64,
    max_bytes: u64,
    whole_segment_readable: bool,
    upper_bound: i64,
    min_one_batch: bool,
) -> Result<u64, StorageError> {
    let limit = start.saturating_add(max_bytes);
    let mut pos = start;
    if whole_segment_readable {
        if seg.size() <= limit {
            return Ok(seg.size() - start);
        }
        if let Some(p) = seg.indexed_batch_start_at_or_below(limit) {
            pos = pos.max(p);
        }
    }
    while let Some(h) = reader.header(pos).map_err(io_err(seg.log_path()))? {
        if h.last_offset >= upper_bound {
            break;
        }
        if pos + h.size > limit && !(pos == start && min_one_batch) {
            break;
        }
        pos += h.size;
    }
    Ok(pos - start)
}
