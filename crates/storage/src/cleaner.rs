//! The log cleaner's core (Kafka's `Cleaner`, `LogToClean`, `SkimpyOffsetMap`, `Throttler`):
//! compaction of one log, keeping the latest record of each key.
//!
//! ```text
//!  log start        cleaner checkpoint (first dirty offset)   first uncleanable   log end
//!     |  clean section     |        dirty section                   |  (HW/LSO, min lag,  |
//!  [ seg ][ seg ][ seg ]   [ seg ][ seg ][ seg ]                     [ seg ] active segment ]
//!
//!  1. Log::cleanable (lock held, no data read): first dirty offset, the closed segments below
//!     the first uncleanable offset, clean and dirty bytes (the dirty ratio).
//!  2. Cleaner::clean
//!     a. under the lock: a CleaningView (each segment's Arc<File>, size, mtime, aborted txns,
//!        the producers' last batches). Appends and fetches go on meanwhile.
//!     b. no lock: offset map (key hash → latest offset) of the dirty section, bounded by
//!        log.cleaner.dedupe.buffer.size; a full map ends the clean early (at a batch).
//!     c. no lock: segments from the log start to the end of the mapped range, in groups
//!        (segment.bytes, index size), rewritten into <base>.log.cleaned (+ indexes), fsynced.
//!     d. under the lock (short): the view is checked against the log (same files, same sizes:
//!        retention, DeleteRecords, truncation or deletion meanwhile abandon the clean), then
//!        .cleaned → .swap, old segments → .deleted, .swap → final names, .deleted removed.
//!  3. the caller writes the new checkpoint (cleaner-offset-checkpoint) = end of the cleaned range.
//! ```
//!
//! What a clean keeps (Kafka's `shouldRetainRecord` and `filterTo`):
//!
//! * a record whose key has a later offset in the map goes; a record without a key goes;
//! * a tombstone (null value) stays while its segment's mtime is newer than the delete horizon
//!   (the mtime of the last segment of the clean section minus `delete.retention.ms`, so a
//!   tombstone survives at least one clean after it became clean, then `delete.retention.ms`);
//! * records of aborted transactions go (the `.txnindex` entries say which); they never enter
//!   the offset map, so they cannot hide an older committed value;
//! * control batches (transaction markers) are always kept in this first version, and so are
//!   the `.txnindex` entries of the segments rewritten: simpler than Kafka's marker removal,
//!   and always correct (a marker costs one small batch);
//! * a batch left without records is dropped, unless it is the last batch of a producer the
//!   partition's producer state knows: its header is kept (record count 0), so the producer's
//!   last sequence and epoch survive a reload, as Kafka does;
//! * offsets never change: a rebuilt batch keeps its base offset and last offset delta.
//!
//! Crash safety (Kafka's swap protocol), finished by [`complete_interrupted_swaps`] at load:
//! every `.cleaned` file is written and fsynced before any rename; `.cleaned` → `.swap` renames
//! the `.log` last, `.swap` → final renames the `.log` first. At load a `<base>.log.cleaned`
//! means the swap never started (all `.cleaned`/`.swap` files of that base go); a
//! `<base>.log.swap` means it must finish (segments with a base in `[base, swap end)` go, then
//! the `.swap` files are renamed); a lone index `.swap` finishes its rename; `.deleted` files go.

use std::collections::HashMap;
use std::fs::File;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use gregor_protocol::batch::{AssignedBatch, BatchView, BATCH_HEADER_LEN};
use gregor_protocol::record_rewrite::{decode_records, rebuild_batch, RecordInfo};
use gregor_protocol::record_walk::decompression_limit;

use crate::log::Log;
use crate::segment::{LogSegment, SegmentReader};
use crate::txn_index::AbortedTxn;
use crate::{io_err, LogConfig, StorageError};

/// Suffix of a cleaned segment's files while they are written.
pub const CLEANED_SUFFIX: &str = ".cleaned";
/// Suffix of a cleaned segment's files once complete, until they replace the old segments.
pub const SWAP_SUFFIX: &str = ".swap";
/// Suffix of a replaced segment's files until they are removed.
pub const DELETED_SUFFIX: &str = ".deleted";

/// Bytes the offset map counts per entry (Kafka's `SkimpyOffsetMap`: a 16-byte hash and an
/// 8-byte offset); the map is filled to 90 % of `dedupe buffer / 24` entries, as Kafka's.
const MAP_ENTRY_BYTES: u64 = 24;
const MAP_LOAD_FACTOR: f64 = 0.9;
/// Read window over a segment being cleaned.
const CLEAN_READ_CHUNK: usize = 1024 * 1024;

/// What the cleaner knows of one log before cleaning it (Kafka's `LogToClean`).
#[derive(Debug, Clone, PartialEq)]
pub struct LogToClean {
    /// Where the dirty section starts: the cleaner checkpoint (or the log start).
    pub first_dirty_offset: i64,
    /// End of the cleanable dirty segments: the next segment's base offset.
    pub cleanable_end_offset: i64,
    /// Bytes of the segments below the first dirty offset.
    pub clean_bytes: u64,
    /// Bytes of the dirty segments that may be cleaned now.
    pub cleanable_bytes: u64,
    /// Timestamp of the first dirty batch (for `max.compaction.lag.ms`); `None` if unknown.
    pub first_dirty_timestamp: Option<i64>,
}

impl LogToClean {
    /// Cleanable dirty bytes over all bytes considered (Kafka's `cleanableRatio`).
    pub fn dirty_ratio(&self) -> f64 {
        let total = self.clean_bytes + self.cleanable_bytes;
        if total == 0 {
            0.0
        } else {
            self.cleanable_bytes as f64 / total as f64
        }
    }

    /// The oldest dirty record waited longer than `max_compaction_lag_ms`.
    pub fn compaction_overdue(&self, now_ms: i64, max_compaction_lag_ms: i64) -> bool {
        max_compaction_lag_ms < i64::MAX
            && self
                .first_dirty_timestamp
                .is_some_and(|t| now_ms.saturating_sub(t) > max_compaction_lag_ms)
    }
}

/// What one clean did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CleanStats {
    /// The new cleaner checkpoint: everything below was cleaned.
    pub end_offset: i64,
    /// Bytes of the segments rewritten.
    pub bytes_read: u64,
    /// Bytes of the segments that replaced them.
    pub bytes_written: u64,
    /// Bytes of the dirty section read to build the offset map.
    pub map_bytes_read: u64,
    /// Records read while rewriting.
    pub records_read: u64,
    /// Records kept.
    pub records_kept: u64,
    /// Segments replaced.
    pub segments_before: usize,
    /// Segments that replaced them (groups left without a record write none).
    pub segments_after: usize,
    /// The offset map filled before the end of the cleanable range.
    pub map_full: bool,
}

/// The outcome of [`Cleaner::clean`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CleanOutcome {
    /// The segments were replaced.
    Cleaned(CleanStats),
    /// Nothing changed: the reason (the log moved under the cleaner, nothing to clean).
    Abandoned(&'static str),
}

/// Kafka's `Throttler`: bounds the cleaners' I/O to `log.cleaner.io.max.bytes.per.second`,
/// shared by every cleaner thread.
#[derive(Debug)]
pub struct Throttler {
    bytes_per_second: f64,
    state: Mutex<(Instant, f64)>,
}

/// How often the throttler compares the observed rate with the target.
const THROTTLE_CHECK: Duration = Duration::from_millis(100);

impl Throttler {
    /// A throttler to `bytes_per_second`; not finite or not positive: unlimited.
    pub fn new(bytes_per_second: f64) -> Throttler {
        Throttler {
            bytes_per_second,
            state: Mutex::new((Instant::now(), 0.0)),
        }
    }

    /// Counts `bytes` of I/O; sleeps (holding the throttler, so every thread waits) when the
    /// rate since the last check is above the target. Checked every [`THROTTLE_CHECK`], or
    /// sooner once more bytes than the target allows in that time were counted (a few large
    /// chunks copied quickly are throttled too).
    pub fn maybe_throttle(&self, bytes: u64) {
        let rate = self.bytes_per_second;
        if !rate.is_finite() || rate <= 0.0 {
            return;
        }
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.1 += bytes as f64;
        let elapsed = state.0.elapsed();
        if elapsed < THROTTLE_CHECK && state.1 < rate * THROTTLE_CHECK.as_secs_f64() {
            return;
        }
        let wanted = Duration::from_secs_f64(state.1 / rate);
        if wanted > elapsed {
            std::thread::sleep(wanted - elapsed);
        }
        *state = (Instant::now(), 0.0);
    }
}

/// One segment as the cleaner saw it under the log lock.
#[derive(Debug, Clone)]
struct SegmentView {
    base: i64,
    /// The next segment's base offset.
    end: i64,
    file: Arc<File>,
    size: u64,
    last_modified_ms: i64,
    /// Its `.txnindex` entries.
    aborted: Vec<AbortedTxn>,
}

/// Everything a clean needs from the log, taken under the lock.
#[derive(Debug)]
struct CleaningView {
    dir: PathBuf,
    config: LogConfig,
    /// Closed segments from the first one up to the cleanable end.
    segments: Vec<SegmentView>,
    /// Aborted transactions of the whole log by producer: (first offset, marker offset).
    aborted: HashMap<i64, Vec<(i64, i64)>>,
    /// Each known producer's last batch's last offset.
    producer_last: HashMap<i64, i64>,
    /// Tombstones in segments last modified at or before this go.
    delete_horizon_ms: i64,
    /// `Log::truncated_to` when the view was taken.
    truncated_to: Option<i64>,
}

impl CleaningView {
    fn is_aborted(&self, b: &BatchView<'_>) -> bool {
        b.is_transactional()
            && !b.is_control()
            && self.aborted.get(&b.producer_id()).is_some_and(|v| {
                v.iter()
                    .any(|&(first, marker)| first <= b.base_offset() && b.base_offset() < marker)
            })
    }
}

impl Log {
    /// Kafka's `cleanableOffsets` for this log, `None` when it is not compacted or nothing is
    /// cleanable. `checkpoint`: the cleaner checkpoint (reset to the log start when it is
    /// outside the log, and to the lowest truncation point since); `upper_bound`: the first
    /// offset the cleaner must not reach (the high watermark, or the last stable offset on a
    /// leader). Only closed segments ending at or below it are cleanable, and only those whose
    /// newest record is older than `min.compaction.lag.ms`.
    pub fn cleanable(
        &self,
        checkpoint: Option<i64>,
        upper_bound: i64,
        now_ms: i64,
    ) -> Option<LogToClean> {
        if !self.config.compact || self.deleted {
            return None;
        }
        let first_dirty = self.first_dirty_offset(checkpoint);
        let active_base = self.segments.keys().next_back().copied()?;
        let mut out = LogToClean {
            first_dirty_offset: first_dirty,
            cleanable_end_offset: first_dirty,
            clean_bytes: 0,
            cleanable_bytes: 0,
            first_dirty_timestamp: None,
        };
        let min_lag = self.config.min_compaction_lag_ms;
        for (&base, seg) in self.segments.range(..active_base) {
            let end = self.segment_end(base);
            if end <= first_dirty {
                out.clean_bytes += seg.size();
                continue;
            }
            if end > upper_bound
                || (min_lag > 0 && seg.largest_timestamp() > now_ms.saturating_sub(min_lag))
            {
                break;
            }
            if out.cleanable_bytes == 0 {
                out.first_dirty_timestamp = seg
                    .reader(BATCH_HEADER_LEN)
                    .header(0)
                    .ok()
                    .flatten()
                    .map(|h| h.max_timestamp)
                    .filter(|&t| t >= 0);
            }
            out.cleanable_bytes += seg.size();
            out.cleanable_end_offset = end;
        }
        (out.cleanable_bytes > 0).then_some(out)
    }

    fn first_dirty_offset(&self, checkpoint: Option<i64>) -> i64 {
        let mut first = checkpoint.unwrap_or(self.log_start_offset);
        if let Some(t) = self.truncated_to {
            first = first.min(t);
        }
        if first < self.log_start_offset || first > self.log_end_offset {
            first = self.log_start_offset;
        }
        first
    }

    /// The view a clean works from; `None` when the log cannot be cleaned now (deleted, or
    /// corrupt ranges among the segments: those stay as recovery left them).
    fn cleaning_view(&self, first_dirty: i64, end: i64) -> Option<CleaningView> {
        if self.deleted {
            return None;
        }
        let active_base = self.segments.keys().next_back().copied()?;
        let mut segments = Vec::new();
        let mut aborted: HashMap<i64, Vec<(i64, i64)>> = HashMap::new();
        let mut clean_mtime = None;
        for (&base, seg) in &self.segments {
            for e in seg.txn_index().all() {
                aborted
                    .entry(e.producer_id)
                    .or_default()
                    .push((e.first_offset, e.last_offset));
            }
            let seg_end = self.segment_end(base);
            if base >= active_base || seg_end > end {
                continue;
            }
            if !seg.corrupt_ranges().is_empty() {
                return None;
            }
            let last_modified_ms = seg.last_modified_ms();
            if seg_end <= first_dirty {
                clean_mtime = Some(last_modified_ms);
            }
            segments.push(SegmentView {
                base,
                end: seg_end,
                file: Arc::clone(seg.log_file()),
                size: seg.size(),
                last_modified_ms,
                aborted: seg.txn_index().all().to_vec(),
            });
        }
        let producer_last = self
            .producer_state
            .producers()
            .filter_map(|(&id, e)| e.batches.back().map(|b| (id, b.last_offset)))
            .collect();
        Some(CleaningView {
            dir: self.dir.clone(),
            config: self.config.clone(),
            segments,
            aborted,
            producer_last,
            delete_horizon_ms: clean_mtime.map_or(i64::MIN, |m| {
                m.saturating_sub(self.config.delete_retention_ms)
            }),
            truncated_to: self.truncated_to,
        })
    }
}

/// One cleaner thread's state (Kafka's `Cleaner`): its offset map, reused between cleans.
#[derive(Debug)]
pub struct Cleaner {
    /// Key hash → latest offset of the dirty section.
    map: HashMap<u128, i64>,
    /// Entries the map may hold (from the dedupe buffer size).
    map_capacity: usize,
    throttler: Arc<Throttler>,
    /// Set when the broker stops: a clean in progress gives up at the next batch.
    stop: Arc<AtomicBool>,
}

impl Cleaner {
    /// A cleaner whose offset map takes `dedupe_buffer_bytes` (its share of
    /// `log.cleaner.dedupe.buffer.size`) and whose I/O goes through `throttler`.
    pub fn new(dedupe_buffer_bytes: u64, throttler: Arc<Throttler>) -> Cleaner {
        let entries = (dedupe_buffer_bytes / MAP_ENTRY_BYTES) as f64 * MAP_LOAD_FACTOR;
        Cleaner {
            map: HashMap::new(),
            map_capacity: (entries as usize).max(1),
            throttler,
            stop: Arc::new(AtomicBool::new(false)),
        }
    }

    /// A clean in progress is abandoned (its files removed) soon after `stop` is set.
    pub fn with_stop(mut self, stop: Arc<AtomicBool>) -> Cleaner {
        self.stop = stop;
        self
    }

    fn check_stop(&self) -> Result<(), StorageError> {
        if self.stop.load(Ordering::Relaxed) {
            return Err(StorageError::Io {
                path: "log cleaner".into(),
                source: std::io::Error::new(
                    std::io::ErrorKind::Interrupted,
                    "the log cleaner is stopping",
                ),
            });
        }
        Ok(())
    }

    /// Cleans `log` as `to_clean` (from [`Log::cleanable`]) describes, holding the log's lock
    /// only to take a view and to swap the cleaned segments in.
    pub fn clean(
        &mut self,
        log: &Mutex<Log>,
        to_clean: &LogToClean,
        now_ms: i64,
    ) -> Result<CleanOutcome, StorageError> {
        match self.prepare(log, to_clean, now_ms)? {
            Ok(prepared) => finish(log, prepared),
            Err(why) => Ok(CleanOutcome::Abandoned(why)),
        }
    }

    /// Steps a–c of a clean: the view (under the lock), then the offset map and the `.cleaned`
    /// segments without it.
    pub(crate) fn prepare(
        &mut self,
        log: &Mutex<Log>,
        to_clean: &LogToClean,
        now_ms: i64,
    ) -> Result<Result<PreparedClean, &'static str>, StorageError> {
        let first_dirty = to_clean.first_dirty_offset;
        let Some(view) = lock(log).cleaning_view(first_dirty, to_clean.cleanable_end_offset) else {
            return Ok(Err("log deleted or holds corrupt ranges"));
        };
        let mut stats = CleanStats::default();
        let mapped = self.build_offset_map(
            &view,
            first_dirty,
            to_clean.cleanable_end_offset,
            &mut stats,
        );
        let end = match mapped {
            Err(_) if self.stop.load(Ordering::Relaxed) => return Ok(Err("cleaner stopping")),
            other => other?,
        };
        if end <= first_dirty {
            return Ok(Err("nothing mapped"));
        }
        stats.end_offset = end;
        let mut cleaned: Vec<(Vec<SegmentView>, Option<LogSegment>)> = Vec::new();
        for group in group_segments(&view, end) {
            match self.clean_group(&view, &group, now_ms, &mut stats) {
                Ok(seg) => cleaned.push((group, seg)),
                Err(e) => {
                    discard(&cleaned);
                    discard_by_name(&view.dir);
                    if self.stop.load(Ordering::Relaxed) {
                        return Ok(Err("cleaner stopping"));
                    }
                    return Err(e);
                }
            }
        }
        Ok(Ok(PreparedClean {
            view,
            cleaned,
            stats,
        }))
    }

    /// Maps each key of the dirty section `[first_dirty, end)` to its latest offset; returns
    /// where the mapped range ends (`end`, or the first batch that did not fit).
    fn build_offset_map(
        &mut self,
        view: &CleaningView,
        first_dirty: i64,
        end: i64,
        stats: &mut CleanStats,
    ) -> Result<i64, StorageError> {
        self.map.clear();
        for seg in view
            .segments
            .iter()
            .filter(|s| s.end > first_dirty && s.end <= end)
        {
            let path = segment_name(&view.dir, seg.base);
            let mut reader = SegmentReader::new(&seg.file, seg.size, CLEAN_READ_CHUNK);
            let mut pos = 0u64;
            while let Some(h) = reader.header(pos).map_err(io_err(&path))? {
                let size = h.size;
                let here = pos;
                pos += size;
                if h.last_offset < first_dirty {
                    continue;
                }
                self.check_stop()?;
                let bytes = read_batch(&mut reader, here, size, &path)?;
                self.throttler.maybe_throttle(size);
                stats.map_bytes_read += size;
                let b = BatchView::parse(bytes)?;
                if b.is_control() || view.is_aborted(&b) {
                    continue;
                }
                let count = usize::try_from(b.record_count()).unwrap_or(0);
                if self.map.len() + count > self.map_capacity {
                    if self.map.is_empty() {
                        return Err(StorageError::Corrupt {
                            path: path.display().to_string(),
                            reason: "log.cleaner.dedupe.buffer.size is too small to map one batch"
                                .into(),
                        });
                    }
                    stats.map_full = true;
                    return Ok(b.base_offset());
                }
                let decoded = decode_records(&b, decompression_limit(b.size()))?;
                for r in &decoded.records {
                    if let Some(k) = decoded.key(r) {
                        self.map.insert(
                            key_hash(k),
                            b.base_offset().saturating_add(i64::from(r.offset_delta)),
                        );
                    }
                }
            }
        }
        Ok(end)
    }

    /// Rewrites one group of segments into `<base>.log.cleaned` (+ indexes), fsynced; `None`
    /// when nothing of the group is left.
    fn clean_group(
        &self,
        view: &CleaningView,
        group: &[SegmentView],
        now_ms: i64,
        stats: &mut CleanStats,
    ) -> Result<Option<LogSegment>, StorageError> {
        let base = group[0].base;
        let mut out =
            LogSegment::create_with_suffix(&view.dir, base, &view.config, CLEANED_SUFFIX)?;
        // The header of the last batch dropped: the log's first segment keeps it when nothing
        // else of its group is left, so the first segment (and the log start offset a restart
        // derives from it) stays where it was, as Kafka keeps the first cleaned segment.
        let mut last_dropped: Option<Vec<u8>> = None;
        let first_of_log = view.segments.first().is_some_and(|s| s.base == base);
        for seg in group {
            stats.bytes_read += seg.size;
            stats.segments_before += 1;
            let retain_deletes = seg.last_modified_ms > view.delete_horizon_ms;
            let path = segment_name(&view.dir, seg.base);
            let mut reader = SegmentReader::new(&seg.file, seg.size, CLEAN_READ_CHUNK);
            let mut pos = 0u64;
            while let Some(h) = reader.header(pos).map_err(io_err(&path))? {
                let here = pos;
                pos += h.size;
                self.check_stop()?;
                let bytes = read_batch(&mut reader, here, h.size, &path)?;
                self.throttler.maybe_throttle(h.size);
                let b = BatchView::parse(bytes)?;
                let rebuilt = self.filter_batch(view, &b, retain_deletes, stats)?;
                let batch = match &rebuilt {
                    Filtered::Unchanged => b,
                    Filtered::Rebuilt(v) => BatchView::parse(v)?,
                    Filtered::Dropped => {
                        if first_of_log {
                            last_dropped = Some(gregor_protocol::record_rewrite::empty_batch(&b));
                        }
                        continue;
                    }
                };
                stats.bytes_written += batch.size() as u64;
                out.append(
                    &[AssignedBatch::unchanged(batch)],
                    now_ms,
                    view.config.index_interval_bytes,
                )?;
            }
            for e in &seg.aborted {
                out.txn_index_mut().append(*e)?;
            }
        }
        if let Some(header) = last_dropped.filter(|_| out.is_empty()) {
            let batch = BatchView::parse(&header)?;
            stats.bytes_written += batch.size() as u64;
            out.append(
                &[AssignedBatch::unchanged(batch)],
                now_ms,
                view.config.index_interval_bytes,
            )?;
        }
        if out.is_empty() && out.txn_index().is_empty() {
            out.delete_files()?;
            return Ok(None);
        }
        out.release_preallocation();
        out.close_indexes()?;
        if let Some(last) = group.last() {
            out.set_last_modified_ms(last.last_modified_ms)?;
        }
        out.sync_all_files()?;
        stats.segments_after += 1;
        Ok(Some(out))
    }

    /// Kafka's `shouldRetainRecord` over one batch.
    fn filter_batch(
        &self,
        view: &CleaningView,
        b: &BatchView<'_>,
        retain_deletes: bool,
        stats: &mut CleanStats,
    ) -> Result<Filtered, StorageError> {
        if b.is_control() {
            return Ok(Filtered::Unchanged);
        }
        let count = u64::try_from(b.record_count()).unwrap_or(0);
        stats.records_read += count;
        let decoded = decode_records(b, decompression_limit(b.size()))?;
        let kept: Vec<&RecordInfo> = if view.is_aborted(b) {
            Vec::new()
        } else {
            decoded
                .records
                .iter()
                .filter(|r| {
                    let Some(k) = decoded.key(r) else {
                        return false;
                    };
                    let offset = b.base_offset().saturating_add(i64::from(r.offset_delta));
                    let latest = self.map.get(&key_hash(k)).is_none_or(|&m| offset >= m);
                    latest && (r.has_value || retain_deletes)
                })
                .collect()
        };
        stats.records_kept += kept.len() as u64;
        if kept.len() == decoded.records.len() && !view.is_aborted(b) {
            return Ok(Filtered::Unchanged);
        }
        if kept.is_empty() {
            let producers_last = b.producer_id() >= 0
                && view.producer_last.get(&b.producer_id()) == Some(&b.last_offset());
            if !producers_last {
                return Ok(Filtered::Dropped);
            }
        }
        Ok(Filtered::Rebuilt(rebuild_batch(b, &decoded, &kept)?))
    }
}

/// What the filter made of a batch.
enum Filtered {
    Unchanged,
    Rebuilt(Vec<u8>),
    Dropped,
}

fn lock(log: &Mutex<Log>) -> MutexGuard<'_, Log> {
    log.lock().unwrap_or_else(|e| e.into_inner())
}

fn segment_name(dir: &Path, base: i64) -> PathBuf {
    crate::segment::segment_path(dir, base, "log")
}

fn read_batch<'r>(
    reader: &'r mut SegmentReader<'_>,
    pos: u64,
    size: u64,
    path: &Path,
) -> Result<&'r [u8], StorageError> {
    let len = usize::try_from(size).map_err(|_| StorageError::Corrupt {
        path: path.display().to_string(),
        reason: "batch too large".into(),
    })?;
    reader
        .bytes(pos, len)
        .map_err(io_err(path))?
        .ok_or_else(|| StorageError::Corrupt {
            path: path.display().to_string(),
            reason: "segment shorter than its batches (changed while cleaning)".into(),
        })
}

/// A 128-bit hash of a key (Kafka's map keys on a 16-byte MD5; a collision is as unlikely).
fn key_hash(key: &[u8]) -> u128 {
    let half = |seed: u64| {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        seed.hash(&mut h);
        key.hash(&mut h);
        h.finish()
    };
    (u128::from(half(0x9e37_79b9_7f4a_7c15)) << 64) | u128::from(half(0x2545_f491_4f6c_dd1d))
}

/// Kafka's `groupSegmentsBySize`: consecutive segments below `end` whose sum stays within
/// `segment.bytes`, whose offsets fit one segment, and whose index entries fit one index.
fn group_segments(view: &CleaningView, end: i64) -> Vec<Vec<SegmentView>> {
    let max_size = view.config.segment_bytes.min(i32::MAX as u64);
    let interval = u64::from(view.config.index_interval_bytes).max(1);
    let max_index_entries = u64::from(view.config.segment_index_bytes) / 8;
    let mut groups: Vec<Vec<SegmentView>> = Vec::new();
    let mut size = 0u64;
    let mut index_entries = 0u64;
    for seg in view.segments.iter().filter(|s| s.base < end) {
        let entries = seg.size / interval + 1;
        let fits = groups.last().is_some_and(|g| {
            size + seg.size <= max_size
                && index_entries + entries <= max_index_entries
                && seg.end - 1 - g[0].base <= i64::from(i32::MAX)
        });
        if fits {
            size += seg.size;
            index_entries += entries;
            if let Some(g) = groups.last_mut() {
                g.push(seg.clone());
            }
        } else {
            size = seg.size;
            index_entries = entries;
            groups.push(vec![seg.clone()]);
        }
    }
    groups
}

/// Why the log no longer matches the view (retention, DeleteRecords, truncation, deletion or
/// a roll of a segment the cleaner took as closed); `None` when it still does.
fn changed_since(
    log: &Log,
    cleaned: &[(Vec<SegmentView>, Option<LogSegment>)],
) -> Option<&'static str> {
    if log.deleted {
        return Some("log deleted while cleaning");
    }
    let active = log.segments.keys().next_back().copied();
    for (group, _) in cleaned {
        for seg in group {
            match log.segments.get(&seg.base) {
                Some(s)
                    if Arc::ptr_eq(s.log_file(), &seg.file)
                        && s.size() == seg.size
                        && Some(seg.base) != active
                        && log.segment_end(seg.base) == seg.end => {}
                _ => return Some("segments changed while cleaning"),
            }
        }
    }
    None
}

/// A clean written to `.cleaned` files, waiting for its swap.
#[derive(Debug)]
pub(crate) struct PreparedClean {
    view: CleaningView,
    cleaned: Vec<(Vec<SegmentView>, Option<LogSegment>)>,
    stats: CleanStats,
}

/// Step d: under the log lock, checks that the log still holds the segments the clean read
/// (abandoning it and removing its files otherwise), then swaps the cleaned ones in.
pub(crate) fn finish(
    log: &Mutex<Log>,
    prepared: PreparedClean,
) -> Result<CleanOutcome, StorageError> {
    let PreparedClean {
        view,
        cleaned,
        mut stats,
    } = prepared;
    let mut guard = lock(log);
    if let Some(why) = changed_since(&guard, &cleaned) {
        drop(guard);
        discard(&cleaned);
        return Ok(CleanOutcome::Abandoned(why));
    }
    let end = stats.end_offset;
    swap_in(&mut guard, &view, cleaned, end, &mut stats)?;
    Ok(CleanOutcome::Cleaned(stats))
}

/// The swap, under the log lock: `.cleaned` → `.swap` (log last), old segments → `.deleted`,
/// `.swap` → final (log first), `.deleted` removed.
fn swap_in(
    log: &mut Log,
    view: &CleaningView,
    cleaned: Vec<(Vec<SegmentView>, Option<LogSegment>)>,
    end: i64,
    stats: &mut CleanStats,
) -> Result<(), StorageError> {
    let mut cleaned = cleaned;
    for (_, seg) in cleaned.iter_mut() {
        if let Some(seg) = seg {
            seg.change_suffix(CLEANED_SUFFIX, SWAP_SUFFIX, false)?;
        }
    }
    crate::checkpoint::sync_dir(&view.dir)?;
    let mut replaced = Vec::new();
    for (group, _) in &cleaned {
        for s in group {
            if let Some(mut old) = log.segments.remove(&s.base) {
                old.change_suffix("", DELETED_SUFFIX, false)?;
                replaced.push(old);
            }
        }
    }
    for (_, seg) in cleaned {
        if let Some(mut seg) = seg {
            seg.change_suffix(SWAP_SUFFIX, "", true)?;
            log.segments.insert(seg.base_offset(), seg);
        }
    }
    crate::checkpoint::sync_dir(&view.dir)?;
    for old in replaced {
        old.delete_files()?;
    }
    log.add_pending_dir();
    if log.truncated_to == view.truncated_to || log.truncated_to.is_some_and(|t| t >= end) {
        log.truncated_to = None;
    }
    tracing::info!(
        dir = %view.dir.display(),
        end_offset = end,
        segments_before = stats.segments_before,
        segments_after = stats.segments_after,
        bytes_before = stats.bytes_read,
        bytes_after = stats.bytes_written,
        "log cleaned"
    );
    Ok(())
}

/// Removes the `.cleaned` files of an abandoned clean.
fn discard(cleaned: &[(Vec<SegmentView>, Option<LogSegment>)]) {
    for (_, seg) in cleaned {
        if let Some(seg) = seg {
            if let Err(e) = seg.delete_files() {
                tracing::warn!(segment = %seg.log_path().display(), error = %e,
                    "cannot remove an abandoned cleaned segment");
            }
        }
    }
}

/// Removes every `.cleaned` file of `dir` (after a failed clean, whose partly written segment
/// was never returned).
fn discard_by_name(dir: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if entry
            .file_name()
            .to_string_lossy()
            .ends_with(CLEANED_SUFFIX)
        {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

fn remove_if_present(path: &Path) -> Result<(), StorageError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err(path)(e)),
    }
}

/// Loading a directory (before its segments are listed): finishes or rolls back what a crash
/// left of a clean (see the module docs). Returns whether anything was found.
pub(crate) fn complete_interrupted_swaps(dir: &Path) -> Result<bool, StorageError> {
    let mut names = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io_err(dir))? {
        let entry = entry.map_err(io_err(dir))?;
        if let Some(n) = entry.file_name().to_str() {
            names.push(n.to_string());
        }
    }
    let split = |name: &str, suffix: &str| -> Option<(i64, String)> {
        let rest = name.strip_suffix(suffix)?;
        let (stem, ext) = rest.split_once('.')?;
        if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        Some((stem.parse().ok()?, ext.to_string()))
    };
    let mut found = false;
    // Replaced segments and rolled-back cleans: their files go.
    let mut log_cleaned = Vec::new();
    for n in &names {
        if n.ends_with(DELETED_SUFFIX) {
            found = true;
            remove_if_present(&dir.join(n))?;
        } else if let Some((base, ext)) = split(n, CLEANED_SUFFIX) {
            found = true;
            if ext == "log" {
                log_cleaned.push(base);
            }
            remove_if_present(&dir.join(n))?;
        }
    }
    let swaps: Vec<(i64, String)> = names.iter().filter_map(|n| split(n, SWAP_SUFFIX)).collect();
    for (base, ext) in &swaps {
        found = true;
        let from = dir.join(format!("{base:020}.{ext}{SWAP_SUFFIX}"));
        if log_cleaned.contains(base) {
            // The `.log` never reached `.swap`: the swap never started.
            remove_if_present(&from)?;
            continue;
        }
        if ext == "log" {
            // The swap must finish: the old segments it replaces go first.
            let next = swap_next_offset(&from)?;
            for n in &names {
                let Some((stem, old_ext)) = n.split_once('.') else {
                    continue;
                };
                let Ok(old_base) = stem.parse::<i64>() else {
                    continue;
                };
                let plain = matches!(old_ext, "log" | "index" | "timeindex" | "txnindex");
                if stem.len() == 20 && plain && old_base >= *base && old_base < next {
                    remove_if_present(&dir.join(n))?;
                }
            }
        }
    }
    // Index files first (a `.log` renamed before its indexes leaves lone index swaps), then
    // the `.log`s.
    for pass_log in [false, true] {
        for (base, ext) in &swaps {
            if (ext == "log") != pass_log || log_cleaned.contains(base) {
                continue;
            }
            let from = dir.join(format!("{base:020}.{ext}{SWAP_SUFFIX}"));
            let to = dir.join(format!("{base:020}.{ext}"));
            std::fs::rename(&from, &to).map_err(io_err(&from))?;
        }
    }
    if found {
        tracing::info!(dir = %dir.display(), "finished a log clean interrupted by a crash");
        crate::checkpoint::sync_dir(dir)?;
    }
    Ok(found)
}

/// The offset after the last whole batch of a `.swap` log file (its base when empty).
fn swap_next_offset(path: &Path) -> Result<i64, StorageError> {
    let file = File::open(path).map_err(io_err(path))?;
    let size = file.metadata().map_err(io_err(path))?.len();
    let mut reader = SegmentReader::new(&file, size, CLEAN_READ_CHUNK);
    let mut pos = 0;
    let mut next = i64::MIN;
    while let Some(h) = reader.header(pos).map_err(io_err(path))? {
        next = h.last_offset + 1;
        pos += h.size;
    }
    Ok(next)
}
