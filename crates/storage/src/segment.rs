//! `LogSegment`: one `.log` file of whole batches plus its offset and time indexes.
//!
//! ```text
//! append:   assign_offsets_vectored (in Log) -> one pwritev of [header, body].. at `size`
//!           -> walk the batch headers in memory -> maybe an index entry per index.interval.bytes
//! read:     OffsetIndex::lookup(offset) -> pread 61-byte headers forward -> FileSlice
//! recover:  pread each whole batch, check length/magic/CRC/offsets, rebuild both indexes;
//!           a batch that fails is either a torn write (cut off) or corruption (kept, logged)
//! ```
//!
//! Recovery tells a torn write from corruption by where the bad bytes are (see
//! [`LogSegment::recover`]): only the tail of the last segment, above the recovery point and with
//! nothing valid behind it, can be a write that never completed. Anything else was fsynced (and
//! maybe acknowledged) before it went bad: it stays where it is as a [`CorruptRange`], which
//! reads step over as one opaque batch, so every other batch stays readable.
//!
//! Only the `.log` holds a descriptor (shared with fetches and flushes through an `Arc<File>`);
//! the indexes are in memory and written to their files by path when the segment is flushed,
//! rolled or closed (see `index_file`).
//!
//! The `.log` is never memory-mapped (a truncation would turn later reads into SIGBUS); reads use
//! `pread` through [`SegmentReader`], which buffers a window of the file so that a scan over many
//! small batches costs few syscalls.

use std::fs::{File, OpenOptions};
use std::io::IoSlice;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use gregor_protocol::batch::{AssignedBatch, BatchView, BATCH_HEADER_LEN, LOG_OVERHEAD, MAGIC_V2};
use rustix::fs::FallocateFlags;

use crate::index::OffsetIndex;
use crate::time_index::TimeIndex;
use crate::txn_index::TransactionIndex;
use crate::{io_err, LogConfig, StorageError};

/// File name of a segment file: the base offset on 20 digits plus the extension.
pub(crate) fn segment_path(dir: &Path, base_offset: i64, ext: &str) -> PathBuf {
    dir.join(format!("{base_offset:020}.{ext}"))
}

/// What the log needs from a batch header, read without the batch body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BatchHeader {
    pub(crate) base_offset: i64,
    pub(crate) last_offset: i64,
    /// Total size on disk, log overhead included.
    pub(crate) size: u64,
    pub(crate) max_timestamp: i64,
    pub(crate) magic: i8,
    pub(crate) log_append_time: bool,
    /// `partitionLeaderEpoch`: the epoch of the leader that appended the batch (-1 unknown).
    pub(crate) partition_leader_epoch: i32,
}

impl BatchHeader {
    /// Decodes the fixed header (the layout is documented in `gregor_protocol::batch`). `None`
    /// when the length field cannot describe a batch.
    fn parse(h: &[u8]) -> Option<BatchHeader> {
        let be64 = |at: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&h[at..at + 8]);
            i64::from_be_bytes(a)
        };
        let be32 = |at: usize| i32::from_be_bytes([h[at], h[at + 1], h[at + 2], h[at + 3]]);
        let len = be32(8);
        if len < (BATCH_HEADER_LEN - LOG_OVERHEAD) as i32 {
            return None;
        }
        let base_offset = be64(0);
        let attributes = i16::from_be_bytes([h[21], h[22]]);
        Some(BatchHeader {
            base_offset,
            last_offset: base_offset.saturating_add(i64::from(be32(23))),
            size: LOG_OVERHEAD as u64 + len as u64,
            max_timestamp: be64(35),
            magic: h[16] as i8,
            log_append_time: attributes & 0x08 != 0,
            partition_leader_epoch: be32(12),
        })
    }
}

/// Bytes of a segment that recovery found corrupt below data it must keep (see
/// [`LogSegment::recover`]): left as they are on disk and read as one opaque batch covering
/// `[first_offset, next_offset)`, so header walks step over them to the valid batches behind.
/// A fetch that covers them returns the stored bytes; clients verify CRCs and report them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct CorruptRange {
    /// First byte of the range in the `.log`.
    pub(crate) position: u64,
    /// Byte after the range: the next valid batch, or the end of the segment.
    pub(crate) end: u64,
    /// First offset the range stands for (the offset expected after the last valid batch).
    pub(crate) first_offset: i64,
    /// Offset after the range (the next valid batch's base offset).
    pub(crate) next_offset: i64,
}

impl CorruptRange {
    /// The header walks see: a batch of the range's size and offsets, without a timestamp.
    fn as_header(&self) -> BatchHeader {
        BatchHeader {
            base_offset: self.first_offset,
            last_offset: self.next_offset - 1,
            size: self.end - self.position,
            max_timestamp: -1,
            magic: MAGIC_V2,
            log_append_time: false,
            partition_leader_epoch: -1,
        }
    }
}

/// Buffered positional reader over a `.log` file, bounded by the segment's logical size.
pub(crate) struct SegmentReader<'a> {
    file: &'a File,
    end: u64,
    chunk: usize,
    buf: Vec<u8>,
    buf_start: u64,
    /// The segment's corrupt ranges, by position: `header` answers for them.
    corrupt: &'a [CorruptRange],
}

impl<'a> SegmentReader<'a> {
    pub(crate) fn new(file: &'a File, end: u64, chunk: usize) -> SegmentReader<'a> {
        SegmentReader {
            file,
            end,
            chunk,
            buf: Vec::new(),
            buf_start: 0,
            corrupt: &[],
        }
    }

    /// `len` bytes at `pos`, or `None` if they would run past the end of the segment.
    pub(crate) fn bytes(&mut self, pos: u64, len: usize) -> std::io::Result<Option<&[u8]>> {
        if pos + len as u64 > self.end {
            return Ok(None);
        }
        let buf_end = self.buf_start + self.buf.len() as u64;
        if pos < self.buf_start || pos + len as u64 > buf_end {
            let n = (len.max(self.chunk) as u64).min(self.end - pos) as usize;
            self.buf.resize(n, 0);
            self.file.read_exact_at(&mut self.buf, pos)?;
            self.buf_start = pos;
        }
        let from = (pos - self.buf_start) as usize;
        Ok(Some(&self.buf[from..from + len]))
    }

    /// The batch header at `pos`; `None` at the end of the segment, for a torn header, and for
    /// a batch that would run past the end of the segment (a walk must never hand out a range
    /// beyond the file). A corrupt range starting at `pos` reads as one batch.
    pub(crate) fn header(&mut self, pos: u64) -> std::io::Result<Option<BatchHeader>> {
        if let Ok(i) = self.corrupt.binary_search_by_key(&pos, |r| r.position) {
            return Ok(Some(self.corrupt[i].as_header()));
        }
        let end = self.end;
        Ok(self
            .raw_header(pos)?
            .filter(|h| pos.checked_add(h.size).is_some_and(|e| e <= end)))
    }

    /// The header bytes at `pos` as they are, whether or not the batch fits (recovery).
    fn raw_header(&mut self, pos: u64) -> std::io::Result<Option<BatchHeader>> {
        Ok(self
            .bytes(pos, BATCH_HEADER_LEN)?
            .and_then(BatchHeader::parse))
    }
}

/// Header reads in the fetch path are small; keep the window modest.
const READ_CHUNK: usize = 16 * 1024;
/// Recovery reads every byte; read big windows.
const RECOVERY_CHUNK: usize = 1024 * 1024;

/// Outcome of scanning a segment during recovery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RecoveryResult {
    /// `(partition leader epoch, base offset)` of each valid batch whose epoch differs from
    /// the previous valid batch's: what the leader-epoch cache learns from the segment.
    pub(crate) epoch_starts: Vec<(i32, i64)>,
    /// Offset after the last batch kept (valid, or a corrupt range); `None` when none is kept.
    pub(crate) next_offset: Option<i64>,
    /// Bytes cut off the end of the file.
    pub(crate) truncated_bytes: u64,
    /// Corrupt ranges kept in place.
    pub(crate) corrupt_ranges: usize,
}

/// What recovery of one segment must know about the rest of the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RecoverContext {
    /// Everything below this offset was fsynced before the stop (the checkpointed recovery
    /// point; after a clean shutdown, the log end offset it wrote).
    pub(crate) recovery_point: i64,
    /// Base offset of the next segment; `None` for the last segment.
    pub(crate) next_base: Option<i64>,
}

/// Why a batch failed recovery's checks.
#[derive(Debug, Clone, Copy)]
struct BadBatch {
    reason: &'static str,
    /// Bytes are missing (torn header, or the batch runs past the end of the file): nothing at
    /// this position can ever be served, so it is cut whatever the cause.
    incomplete: bool,
    /// The header as stored, when its length field could be read.
    header: Option<BatchHeader>,
}

/// One segment of a partition log.
#[derive(Debug)]
pub(crate) struct LogSegment {
    base_offset: i64,
    log_path: PathBuf,
    /// Shared with `FileSlice`s and `FlushTarget`s so both outlive a deletion.
    log: Arc<File>,
    /// Bytes of whole batches in the file (writes go at this position).
    size: u64,
    /// End of the blocks reserved ahead of `size` with `fallocate(KEEP_SIZE)`: the file's size
    /// stays `size` (so recovery never sees them), but buffered writes into reserved blocks skip
    /// ext4's per-page delayed-allocation bookkeeping.
    preallocated: u64,
    /// Size of the last reservation and when it was made (ms): a reservation used up within a
    /// second makes the next one twice as large, so a busy partition calls `fallocate` about
    /// once per 8 MiB while a quiet one keeps 64 KiB steps.
    prealloc_step: u64,
    prealloc_at_ms: i64,
    offset_index: OffsetIndex,
    time_index: TimeIndex,
    /// The aborted transactions whose ABORT marker is in this segment (`.txnindex`).
    txn_index: TransactionIndex,
    /// Bytes appended since the last offset-index entry (index.interval.bytes).
    bytes_since_last_index_entry: u64,
    /// Corrupt bytes kept by recovery, sorted by position (usually none); recorded in the log's
    /// `corrupt-ranges` file so later processes step over them too.
    corrupt: Vec<CorruptRange>,
    /// Largest batch `maxTimestamp` seen; -1 when unknown/none. Drives time retention and
    /// ListOffsets by timestamp.
    max_timestamp: i64,
    /// Last offset of the batch holding `max_timestamp`.
    offset_of_max_timestamp: i64,
    /// Start of the segment's age for `segment.ms`: set at the first append to a new segment,
    /// or the first batch's timestamp for a segment loaded from disk (as Kafka does).
    rolling_base_ms: Option<i64>,
}

impl LogSegment {
    /// Creates a new, empty segment (truncating stale files of the same name).
    pub(crate) fn create(
        dir: &Path,
        base_offset: i64,
        config: &LogConfig,
    ) -> Result<LogSegment, StorageError> {
        Self::create_with_suffix(dir, base_offset, config, "")
    }

    /// [`create`](Self::create) with `suffix` after each file name (the log cleaner writes
    /// `<base>.log.cleaned` and its indexes beside the segments it replaces).
    pub(crate) fn create_with_suffix(
        dir: &Path,
        base_offset: i64,
        config: &LogConfig,
        suffix: &str,
    ) -> Result<LogSegment, StorageError> {
        let named = |ext: &str| dir.join(format!("{base_offset:020}.{ext}{suffix}"));
        let log_path = named("log");
        let log = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&log_path)
            .map_err(io_err(&log_path))?;
        let offset_index =
            OffsetIndex::create(&named("index"), base_offset, config.segment_index_bytes)?;
        let time_index =
            TimeIndex::create(&named("timeindex"), base_offset, config.segment_index_bytes)?;
        let txn_index = TransactionIndex::create(named("txnindex"))?;
        // `preallocate` (Kafka's `preallocate`): the whole segment's blocks reserved at once,
        // the file's size left at its data (so recovery never reads past it). Best effort, as
        // the reservations ahead of appends; the cleaner's `.cleaned` files are not.
        let preallocated = if config.preallocate && suffix.is_empty() {
            match rustix::fs::fallocate(&log, FallocateFlags::KEEP_SIZE, 0, config.segment_bytes) {
                Ok(()) => config.segment_bytes,
                Err(_) => 0,
            }
        } else {
            0
        };
        Ok(LogSegment {
            base_offset,
            log_path,
            log: Arc::new(log),
            size: 0,
            preallocated,
            prealloc_step: 0,
            prealloc_at_ms: 0,
            offset_index,
            time_index,
            txn_index,
            bytes_since_last_index_entry: 0,
            corrupt: Vec::new(),
            max_timestamp: -1,
            offset_of_max_timestamp: base_offset,
            rolling_base_ms: None,
        })
    }

    /// Opens an existing segment. The second value is false when an index was missing or corrupt
    /// (it is then empty and the caller must [`LogSegment::recover`] the segment).
    pub(crate) fn open(
        dir: &Path,
        base_offset: i64,
        config: &LogConfig,
    ) -> Result<(LogSegment, bool), StorageError> {
        let log_path = segment_path(dir, base_offset, "log");
        let log = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&log_path)
            .map_err(io_err(&log_path))?;
        let size = log.metadata().map_err(io_err(&log_path))?.len();
        let oi_path = segment_path(dir, base_offset, "index");
        let ti_path = segment_path(dir, base_offset, "timeindex");
        let oi = OffsetIndex::load(&oi_path, base_offset, config.segment_index_bytes, size)?;
        let ti = TimeIndex::load(&ti_path, base_offset, config.segment_index_bytes)?;
        let indexes_ok = oi.is_some() && ti.is_some();
        let (offset_index, time_index) = match (oi, ti) {
            (Some(oi), Some(ti)) => (oi, ti),
            _ => (
                OffsetIndex::create(&oi_path, base_offset, config.segment_index_bytes)?,
                TimeIndex::create(&ti_path, base_offset, config.segment_index_bytes)?,
            ),
        };
        let (max_timestamp, offset_of_max_timestamp) =
            time_index.last_entry().unwrap_or((-1, base_offset));
        let last_index_pos = offset_index.last_entry().map_or(0, |(_, p)| p);
        let txn_index = TransactionIndex::open(segment_path(dir, base_offset, "txnindex"))?;
        let mut seg = LogSegment {
            base_offset,
            log_path,
            log: Arc::new(log),
            size,
            preallocated: size,
            prealloc_step: 0,
            prealloc_at_ms: 0,
            offset_index,
            time_index,
            txn_index,
            bytes_since_last_index_entry: size.saturating_sub(last_index_pos),
            corrupt: Vec::new(),
            max_timestamp,
            offset_of_max_timestamp,
            rolling_base_ms: None,
        };
        if indexes_ok {
            let first = seg
                .reader(READ_CHUNK)
                .header(0)
                .map_err(io_err(&seg.log_path))?;
            seg.rolling_base_ms = first.map(|h| h.max_timestamp).filter(|&t| t >= 0);
        }
        Ok((seg, indexes_ok))
    }

    pub(crate) fn base_offset(&self) -> i64 {
        self.base_offset
    }
    pub(crate) fn size(&self) -> u64 {
        self.size
    }
    pub(crate) fn is_empty(&self) -> bool {
        self.size == 0
    }
    /// The greatest indexed batch start at or below `position` (see `OffsetIndex`).
    pub(crate) fn indexed_batch_start_at_or_below(&self, position: u64) -> Option<u64> {
        self.offset_index.floor_position(position)
    }

    pub(crate) fn log_file(&self) -> &Arc<File> {
        &self.log
    }
    pub(crate) fn log_path(&self) -> &Path {
        &self.log_path
    }
    pub(crate) fn max_timestamp(&self) -> i64 {
        self.max_timestamp
    }
    pub(crate) fn offset_of_max_timestamp(&self) -> i64 {
        self.offset_of_max_timestamp
    }
    pub(crate) fn indexes_full(&self) -> bool {
        self.offset_index.is_full() || self.time_index.is_full()
    }

    /// The newest timestamp for time retention: the largest record timestamp, or the file's
    /// modification time when no batch carried one (Kafka's `largestTimestamp`).
    pub(crate) fn largest_timestamp(&self) -> i64 {
        if self.max_timestamp >= 0 {
            return self.max_timestamp;
        }
        self.log
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(-1, |d| d.as_millis() as i64)
    }

    /// Milliseconds since the segment's age started; 0 when it has not started.
    pub(crate) fn age_ms(&self, now_ms: i64) -> i64 {
        self.rolling_base_ms.map_or(0, |b| now_ms - b)
    }

    pub(crate) fn reader(&self, chunk: usize) -> SegmentReader<'_> {
        let mut reader = SegmentReader::new(&self.log, self.size, chunk);
        reader.corrupt = &self.corrupt;
        reader
    }

    /// Corrupt ranges kept by recovery.
    pub(crate) fn corrupt_ranges(&self) -> &[CorruptRange] {
        &self.corrupt
    }

    /// Ranges a previous process kept (read back from the log's `corrupt-ranges` file): taken
    /// only where they still describe this file (inside it, in order, not overlapping).
    pub(crate) fn restore_corrupt_ranges(&mut self, mut ranges: Vec<CorruptRange>) {
        ranges.sort_by_key(|r| r.position);
        let mut end = 0;
        self.corrupt = ranges
            .into_iter()
            .filter(|r| {
                let fits = r.position >= end
                    && r.position < r.end
                    && r.end <= self.size
                    && r.first_offset <= r.next_offset
                    && r.first_offset >= self.base_offset;
                if fits {
                    end = r.end;
                } else {
                    tracing::warn!(segment = %self.log_path.display(), range = ?r,
                        "ignoring a recorded corrupt range that does not fit the segment");
                }
                fits
            })
            .collect();
    }

    /// Appends batches whose offsets are assigned: one positional vectored write of
    /// `[header, body]` per batch, then index entries from the headers (no per-record work).
    pub(crate) fn append(
        &mut self,
        batches: &[AssignedBatch<'_>],
        now_ms: i64,
        index_interval_bytes: u32,
    ) -> Result<(), StorageError> {
        let len: u64 = batches.iter().map(|b| b.size() as u64).sum();
        self.preallocate(len, now_ms);
        if let Err(e) = write_all_vectored_at(&self.log, batches, self.size) {
            // Drop whatever part of the set reached the file, so the segment ends on a batch.
            let _ = self.log.set_len(self.size);
            return Err(io_err(&self.log_path)(e));
        }
        if self.rolling_base_ms.is_none() {
            self.rolling_base_ms = Some(now_ms);
        }
        let mut pos = self.size;
        for b in batches {
            self.index_batch(
                b.last_offset(),
                b.max_timestamp(),
                pos,
                b.size() as u64,
                index_interval_bytes,
            )?;
            pos += b.size() as u64;
        }
        self.size = pos;
        Ok(())
    }

    /// Reserves disk blocks ahead of an append of `len` bytes. The step follows the partition's
    /// write rate: it doubles (64 KiB up to 8 MiB) while each reservation is used up within a
    /// second and falls back to 64 KiB when it is not, so a busy partition makes one
    /// `fallocate` (an ext4 journal update) per 8 MiB and thousands of quiet partitions do not
    /// pin much disk. Best effort: a filesystem without `fallocate` simply allocates on write.
    fn preallocate(&mut self, len: u64, now_ms: i64) {
        if self.size + len <= self.preallocated {
            return;
        }
        self.prealloc_step = next_prealloc_step(self.prealloc_step, now_ms - self.prealloc_at_ms);
        self.prealloc_at_ms = now_ms;
        let from = self.size.max(self.preallocated);
        let to = self.size + len + self.prealloc_step.max(len);
        match rustix::fs::fallocate(&*self.log, FallocateFlags::KEEP_SIZE, from, to - from) {
            Ok(()) => self.preallocated = to,
            // Not supported here, or no space: the write itself reports a real shortage.
            Err(_) => self.preallocated = u64::MAX,
        }
    }

    /// Gives back the blocks reserved past the end of the data (when the segment stops being
    /// the active one, and at shutdown).
    pub(crate) fn release_preallocation(&mut self) {
        if self.preallocated > self.size && self.preallocated != u64::MAX {
            // Truncating to the current size frees blocks past the end (a hole punch would
            // not: it stops at the file size).
            if let Err(e) = self.log.set_len(self.size) {
                tracing::warn!(segment = %self.log_path.display(), error = %e,
                    "could not release preallocated blocks");
            }
        }
        self.preallocated = self.size;
    }

    /// Bookkeeping shared by append and recovery for one batch at `pos`.
    fn index_batch(
        &mut self,
        last_offset: i64,
        max_timestamp: i64,
        pos: u64,
        size: u64,
        index_interval_bytes: u32,
    ) -> Result<(), StorageError> {
        if max_timestamp > self.max_timestamp {
            self.max_timestamp = max_timestamp;
            self.offset_of_max_timestamp = last_offset;
        }
        if self.bytes_since_last_index_entry > u64::from(index_interval_bytes) {
            self.offset_index.append(last_offset, pos)?;
            self.time_index
                .maybe_append(self.max_timestamp, self.offset_of_max_timestamp, false);
            self.bytes_since_last_index_entry = 0;
        }
        self.bytes_since_last_index_entry += size;
        Ok(())
    }

    /// Finds the first batch at or after the index hint for `offset` whose last offset is
    /// `>= offset`: the batch containing `offset`, or the next one. `None` past the end.
    pub(crate) fn find_batch(
        &self,
        reader: &mut SegmentReader<'_>,
        offset: i64,
    ) -> Result<Option<(u64, BatchHeader)>, StorageError> {
        let (_, mut pos) = self.offset_index.lookup(offset);
        while let Some(h) = reader.header(pos).map_err(io_err(&self.log_path))? {
            if h.last_offset >= offset {
                return Ok(Some((pos, h)));
            }
            pos += h.size;
        }
        Ok(None)
    }

    /// First batch whose max timestamp is `>= timestamp`, starting from the time index hint.
    pub(crate) fn find_batch_by_timestamp(
        &self,
        timestamp: i64,
    ) -> Result<Option<(u64, BatchHeader)>, StorageError> {
        let start = self.time_index.lookup_before(timestamp);
        let mut reader = self.reader(READ_CHUNK);
        let Some((mut pos, _)) = self.find_batch(&mut reader, start)? else {
            return Ok(None);
        };
        while let Some(h) = reader.header(pos).map_err(io_err(&self.log_path))? {
            if h.max_timestamp >= timestamp {
                return Ok(Some((pos, h)));
            }
            pos += h.size;
        }
        Ok(None)
    }

    /// Reads `len` bytes at `pos` into memory.
    pub(crate) fn read_bytes(&self, pos: u64, len: usize) -> Result<Vec<u8>, StorageError> {
        let mut buf = vec![0u8; len];
        self.log
            .read_exact_at(&mut buf, pos)
            .map_err(io_err(&self.log_path))?;
        Ok(buf)
    }

    /// Offset after the last batch, scanning headers from the last index entry; `None` when the
    /// segment holds no batch. Used on a clean start, where the data is trusted.
    pub(crate) fn read_next_offset(&self) -> Result<Option<i64>, StorageError> {
        Ok(self.scan_tail()?.0)
    }

    /// Walks the headers from the last index entry: the offset after the last whole batch and
    /// the position where the walk stopped (the segment's size unless the tail is torn).
    fn scan_tail(&self) -> Result<(Option<i64>, u64), StorageError> {
        let mut pos = self.offset_index.last_entry().map_or(0, |(_, p)| p);
        let mut reader = self.reader(READ_CHUNK);
        let mut next = None;
        while let Some(h) = reader.header(pos).map_err(io_err(&self.log_path))? {
            next = Some(h.last_offset + 1);
            pos += h.size;
        }
        Ok((next, pos))
    }

    /// `(partition leader epoch, base offset)` of each batch whose epoch differs from the
    /// previous batch's, walking every header (rebuilding a leader-epoch cache that has no
    /// checkpoint file). Corrupt ranges carry no epoch and are skipped.
    pub(crate) fn epoch_starts(&self) -> Result<Vec<(i32, i64)>, StorageError> {
        let mut reader = self.reader(READ_CHUNK);
        let mut pos = 0;
        let mut out = Vec::new();
        while let Some(h) = reader.header(pos).map_err(io_err(&self.log_path))? {
            note_epoch(&mut out, &h);
            pos += h.size;
        }
        Ok(out)
    }

    /// Clean start of the last segment: the clean-shutdown marker vouches for the data, not for
    /// the file's length (a copy, a restore or a hand that cut the file). If the last batch does
    /// not fit the file, the segment is cut after the last whole batch, so that the log end
    /// offset names what is readable and the next append starts on a batch boundary. Returns the
    /// offset after the last batch, `None` when the segment holds none.
    pub(crate) fn truncate_partial_tail(&mut self) -> Result<Option<i64>, StorageError> {
        let (next, end) = self.scan_tail()?;
        if end >= self.size {
            return Ok(next);
        }
        tracing::error!(
            segment = %self.log_path.display(),
            position = end,
            missing_from_offset = next.unwrap_or(self.base_offset),
            truncated_bytes = self.size - end,
            "the last batch of the log does not fit its file after a clean shutdown \
             (the file was cut): truncating to the last whole batch"
        );
        self.cut_at(end)
    }

    /// Re-validates every batch (length, magic, CRC-32C, increasing offsets that fit the
    /// segment) and rebuilds both indexes. `min_offset`: the offset the first batch may not start
    /// below (the previous segment's end).
    ///
    /// A batch that fails is one of two things, told apart by where it is:
    ///
    /// * a torn write: the tail of the last segment, at or above the recovery point, with no
    ///   valid batch behind it. It was never fsynced, so never acknowledged under acks=all: the
    ///   file is cut there (WARN).
    /// * corruption: below the recovery point, in a segment that is not the last, or followed
    ///   by valid batches. Those bytes were fsynced (or data written after them was), so cutting
    ///   there would drop acknowledged records: the bad bytes are kept as a [`CorruptRange`]
    ///   (ERROR naming the file, positions and offsets) and recovery goes on with the next valid
    ///   batch. The operator decides what to do with them; a follower would repair from the
    ///   leader.
    ///
    /// Missing bytes (a torn header, a batch that runs past the end of the file) are cut
    /// whatever the case, since they can never be served; the error names what was lost.
    pub(crate) fn recover(
        &mut self,
        min_offset: i64,
        config: &LogConfig,
        ctx: RecoverContext,
    ) -> Result<RecoveryResult, StorageError> {
        self.offset_index.truncate_to_position(0)?;
        self.time_index.truncate_to_offset(self.base_offset)?;
        self.max_timestamp = -1;
        self.offset_of_max_timestamp = self.base_offset;
        self.bytes_since_last_index_entry = 0;
        self.rolling_base_ms = None;
        self.corrupt.clear();

        let log = Arc::clone(&self.log);
        let mut reader = SegmentReader::new(&log, self.size, RECOVERY_CHUNK);
        let mut corrupt = Vec::new();
        let mut expected = min_offset.max(self.base_offset);
        let mut next_offset = None;
        let mut pos = 0u64;
        let mut truncated_bytes = 0;
        let mut epoch_starts: Vec<(i32, i64)> = Vec::new();
        while pos < self.size {
            let header = match self.check_at(&mut reader, pos, expected, true)? {
                Ok(h) => h,
                Err(bad) => {
                    if let Some((q, h)) = self.resync(&mut reader, pos, bad.header, expected)? {
                        // Valid data behind the bad bytes: they are not a torn write.
                        let range = CorruptRange {
                            position: pos,
                            end: q,
                            first_offset: expected,
                            next_offset: h.base_offset.max(expected),
                        };
                        self.log_corrupt(&range, bad.reason, "valid batches follow");
                        corrupt.push(range);
                        expected = range.next_offset;
                        next_offset = Some(expected);
                        // An index entry right behind the range, so reads of later offsets
                        // start there instead of walking into it.
                        self.bytes_since_last_index_entry = u64::MAX / 2;
                        pos = q;
                        continue;
                    }
                    let is_last = ctx.next_base.is_none();
                    let below_rp = expected < ctx.recovery_point;
                    if bad.incomplete || (is_last && !below_rp) {
                        truncated_bytes = self.size - pos;
                        if is_last && !below_rp {
                            tracing::warn!(
                                segment = %self.log_path.display(),
                                position = pos,
                                truncated_bytes,
                                from_offset = expected,
                                recovery_point = ctx.recovery_point,
                                reason = bad.reason,
                                "truncating a torn write at the end of the log (above the \
                                 recovery point: never fsynced, never acknowledged)"
                            );
                        } else {
                            tracing::error!(
                                segment = %self.log_path.display(),
                                position = pos,
                                truncated_bytes,
                                from_offset = expected,
                                to_offset = ctx.next_base.unwrap_or(ctx.recovery_point),
                                recovery_point = ctx.recovery_point,
                                reason = bad.reason,
                                "bytes are missing from a log segment that was fsynced: \
                                 records in this offset range are lost; truncating the \
                                 partial batch, keeping everything else"
                            );
                        }
                        self.log.set_len(pos).map_err(io_err(&self.log_path))?;
                        self.size = pos;
                        self.preallocated = pos;
                        break;
                    }
                    // Whole but bad bytes up to the end of the segment, below data that was
                    // fsynced: keep them. Their offsets end where the next segment starts, or
                    // (last segment) at the recovery point: the bad bytes start below it and
                    // nothing valid follows, so they hold the fsynced batches up to it. (Their
                    // own header is not trusted: its offset fields may be what went bad.)
                    let end_offset = ctx.next_base.unwrap_or(ctx.recovery_point);
                    let range = CorruptRange {
                        position: pos,
                        end: self.size,
                        first_offset: expected,
                        next_offset: end_offset.max(expected + 1),
                    };
                    let why = if is_last {
                        "below the recovery point"
                    } else {
                        "in a segment that is not the last"
                    };
                    self.log_corrupt(&range, bad.reason, why);
                    corrupt.push(range);
                    next_offset = Some(range.next_offset);
                    break;
                }
            };
            if self.rolling_base_ms.is_none() && header.max_timestamp >= 0 {
                self.rolling_base_ms = Some(header.max_timestamp);
            }
            note_epoch(&mut epoch_starts, &header);
            self.index_batch(
                header.last_offset,
                header.max_timestamp,
                pos,
                header.size,
                config.index_interval_bytes,
            )?;
            expected = header.last_offset + 1;
            next_offset = Some(expected);
            pos += header.size;
        }
        let corrupt_ranges = corrupt.len();
        self.corrupt = corrupt;
        Ok(RecoveryResult {
            epoch_starts,
            next_offset,
            truncated_bytes,
            corrupt_ranges,
        })
    }

    fn log_corrupt(&self, range: &CorruptRange, reason: &str, why: &str) {
        tracing::error!(
            segment = %self.log_path.display(),
            positions = %format_args!("{}..{}", range.position, range.end),
            offsets = %format_args!("{}..{}", range.first_offset, range.next_offset),
            reason,
            why,
            "corrupt data in a log segment: keeping it in place (not a torn write, so it may \
             hold acknowledged records); fetches of these offsets return the stored bytes and \
             every other batch stays readable. Restore the segment from a replica or backup, \
             or delete the records"
        );
    }

    /// Recovery's checks of the batch at `pos`.
    fn check_at(
        &self,
        reader: &mut SegmentReader<'_>,
        pos: u64,
        expected: i64,
        exact: bool,
    ) -> Result<Result<BatchHeader, BadBatch>, StorageError> {
        let Some(header) = reader.raw_header(pos).map_err(io_err(&self.log_path))? else {
            let incomplete = pos + BATCH_HEADER_LEN as u64 > self.size;
            return Ok(Err(BadBatch {
                reason: if incomplete {
                    "torn batch header"
                } else {
                    "batch length field cannot describe a batch"
                },
                incomplete,
                header: None,
            }));
        };
        let Some(bytes) = usize::try_from(header.size)
            .ok()
            .map(|len| reader.bytes(pos, len))
            .transpose()
            .map_err(io_err(&self.log_path))?
            .flatten()
        else {
            return Ok(Err(BadBatch {
                reason: "batch extends past the end of the file",
                incomplete: true,
                header: Some(header),
            }));
        };
        Ok(check_batch(bytes, expected, self.base_offset, exact)
            .map(|()| header)
            .map_err(|reason| BadBatch {
                reason,
                incomplete: false,
                header: Some(header),
            }))
    }

    /// After a bad batch at `pos`: the first valid batch behind it in this segment, as
    /// `(position, header)`. Tries the position the bad header's length points to first (a flip
    /// in a batch's body leaves its length intact), then every byte, filtering on the magic byte,
    /// a length that fits and plausible offsets before paying for a CRC.
    fn resync(
        &self,
        reader: &mut SegmentReader<'_>,
        pos: u64,
        bad_header: Option<BatchHeader>,
        expected: i64,
    ) -> Result<Option<(u64, BatchHeader)>, StorageError> {
        if let Some(q) = bad_header.and_then(|h| pos.checked_add(h.size)) {
            if q < self.size {
                if let Ok(h) = self.check_at(reader, q, expected, false)? {
                    return Ok(Some((q, h)));
                }
            }
        }
        let mut q = pos + 1;
        while q + BATCH_HEADER_LEN as u64 <= self.size {
            let plausible = reader
                .raw_header(q)
                .map_err(io_err(&self.log_path))?
                .is_some_and(|h| {
                    h.magic == MAGIC_V2
                        && q + h.size <= self.size
                        && h.base_offset >= expected
                        && u32::try_from(h.last_offset - self.base_offset).is_ok()
                });
            if plausible {
                if let Ok(h) = self.check_at(reader, q, expected, false)? {
                    return Ok(Some((q, h)));
                }
            }
            q += 1;
        }
        Ok(None)
    }

    /// Cuts the segment before the batch containing `offset` (or keeps it whole when every batch
    /// is below). Returns the segment's new next offset, `None` when it is now empty.
    pub(crate) fn truncate_to(&mut self, offset: i64) -> Result<Option<i64>, StorageError> {
        let mut reader = self.reader(READ_CHUNK);
        let cut = self.find_batch(&mut reader, offset)?;
        drop(reader);
        let Some((pos, _)) = cut else {
            return self.read_next_offset();
        };
        self.cut_at(pos)
    }

    /// Cuts the file at `pos`, a batch boundary, and brings the indexes and timestamps in line.
    /// Returns the segment's new next offset, `None` when it is now empty.
    fn cut_at(&mut self, pos: u64) -> Result<Option<i64>, StorageError> {
        self.log.set_len(pos).map_err(io_err(&self.log_path))?;
        self.size = pos;
        self.preallocated = pos;
        self.corrupt.retain(|r| r.end <= pos);
        self.offset_index.truncate_to_position(pos)?;
        // Rescan the headers that remain for the max timestamp and the index counters.
        let mut reader = self.reader(READ_CHUNK);
        let mut p = 0;
        let mut max_ts = (-1, self.base_offset);
        let mut next = None;
        while let Some(h) = reader.header(p).map_err(io_err(&self.log_path))? {
            if h.max_timestamp > max_ts.0 {
                max_ts = (h.max_timestamp, h.last_offset);
            }
            next = Some(h.last_offset + 1);
            p += h.size;
        }
        drop(reader);
        self.time_index
            .truncate_to_offset(next.unwrap_or(self.base_offset))?;
        self.txn_index
            .truncate_to(next.unwrap_or(self.base_offset))?;
        (self.max_timestamp, self.offset_of_max_timestamp) = max_ts;
        let last_index_pos = self.offset_index.last_entry().map_or(0, |(_, p)| p);
        self.bytes_since_last_index_entry = self.size.saturating_sub(last_index_pos);
        if self.size == 0 {
            self.rolling_base_ms = None;
        }
        Ok(next)
    }

    /// Writes index entries the files do not have yet (no fsync); returns whether anything was
    /// written. The flush path calls this for the active segment: its index files then cover
    /// what the flush makes durable.
    pub(crate) fn persist_indexes(&mut self) -> Result<bool, StorageError> {
        let offsets = self.offset_index.persist()?;
        let times = self.time_index.persist()?;
        Ok(offsets || times)
    }

    /// Called when the segment stops being the active one, after recovering a segment that is not
    /// the active one, and at shutdown: records the final max timestamp in the time index (so a
    /// later load knows it) and writes both indexes. Returns whether anything was written; the
    /// caller has the files fsynced with the next flush ([`LogSegment::index_paths`]).
    pub(crate) fn close_indexes(&mut self) -> Result<bool, StorageError> {
        self.time_index
            .maybe_append(self.max_timestamp, self.offset_of_max_timestamp, true);
        self.persist_indexes()
    }

    /// Paths of the `.index` and `.timeindex` files.
    pub(crate) fn index_paths(&self) -> [&Path; 2] {
        [self.offset_index.path(), self.time_index.path()]
    }

    /// Index entries not written to their files yet (offset index, time index).
    #[cfg(test)]
    pub(crate) fn unpersisted_index_entries(&self) -> (usize, usize) {
        (
            self.offset_index.unpersisted(),
            self.time_index.unpersisted(),
        )
    }

    /// A deleted log's segment: empties the `.log` so its blocks are freed now, not when the
    /// last descriptor closes (a fetch or flush in flight, a partition handle a request still
    /// holds). Deleting a topic is how an operator frees a full disk. A fetch racing the
    /// deletion reads nothing (or gets a short file and closes its connection).
    pub(crate) fn release_space(&mut self) {
        if let Err(e) = self.log.set_len(0) {
            tracing::warn!(segment = %self.log_path.display(), error = %e,
                "cannot empty a deleted segment");
        }
        self.size = 0;
        self.preallocated = 0;
        self.corrupt.clear();
    }

    /// Unlinks the segment's files. Open `FileSlice`s keep the data readable.
    pub(crate) fn delete_files(&self) -> Result<(), StorageError> {
        for path in [
            self.log_path.as_path(),
            self.offset_index.path(),
            self.time_index.path(),
        ] {
            match std::fs::remove_file(path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err(path)(e)),
            }
        }
        self.txn_index.delete()
    }

    /// Renames the segment's files from `<name><old>` to `<name><new>` (the log cleaner's
    /// `.cleaned` → `.swap` → final names, and `.deleted` for the segments it replaces); files
    /// that do not exist (an index never written, an empty `.txnindex`) are skipped. Open
    /// descriptors (fetches, flushes) keep reading the same data. `log_first`: rename the
    /// `.log` before the indexes (else after them); the cleaner's crash recovery reads the
    /// state of a swap from where the `.log` is.
    pub(crate) fn change_suffix(
        &mut self,
        old: &str,
        new: &str,
        log_first: bool,
    ) -> Result<(), StorageError> {
        let renamed = |path: &Path| -> Result<PathBuf, StorageError> {
            let name = path.to_string_lossy();
            let stem = name.strip_suffix(old).unwrap_or(&name);
            let to = PathBuf::from(format!("{stem}{new}"));
            match std::fs::rename(path, &to) {
                Ok(()) => Ok(to),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(to),
                Err(e) => Err(io_err(path)(e)),
            }
        };
        if log_first {
            self.log_path = renamed(&self.log_path)?;
        }
        let p = renamed(self.offset_index.path())?;
        self.offset_index.set_path(p);
        let p = renamed(self.time_index.path())?;
        self.time_index.set_path(p);
        let p = renamed(self.txn_index.path())?;
        self.txn_index.set_path(p);
        if !log_first {
            self.log_path = renamed(&self.log_path)?;
        }
        Ok(())
    }

    /// The `.log` file's modification time in ms (Kafka's `LogSegment.lastModified`), which
    /// the cleaner's delete horizon is measured by; -1 when unknown.
    pub(crate) fn last_modified_ms(&self) -> i64 {
        self.log
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(-1, |d| d.as_millis() as i64)
    }

    /// Sets the `.log` file's modification time (a cleaned segment keeps the time of the
    /// newest segment it replaces, as Kafka's cleaner does).
    pub(crate) fn set_last_modified_ms(&self, ms: i64) -> Result<(), StorageError> {
        let Ok(ms) = u64::try_from(ms) else {
            return Ok(());
        };
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms);
        self.log.set_modified(t).map_err(io_err(&self.log_path))
    }

    /// fsyncs the `.log` and every index file that exists (the cleaner, before a swap).
    pub(crate) fn sync_all_files(&self) -> Result<(), StorageError> {
        self.log.sync_all().map_err(io_err(&self.log_path))?;
        for path in [
            self.offset_index.path(),
            self.time_index.path(),
            self.txn_index.path(),
        ] {
            match File::open(path) {
                Ok(f) => f.sync_all().map_err(io_err(path))?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(io_err(path)(e)),
            }
        }
        Ok(())
    }

    /// The segment's aborted-transaction index.
    pub(crate) fn txn_index(&self) -> &TransactionIndex {
        &self.txn_index
    }

    /// The segment's aborted-transaction index, to append to or cut.
    pub(crate) fn txn_index_mut(&mut self) -> &mut TransactionIndex {
        &mut self.txn_index
    }
}

/// Records `h`'s epoch if it differs from the last one recorded (a corrupt range's -1 is not
/// an epoch).
fn note_epoch(out: &mut Vec<(i32, i64)>, h: &BatchHeader) {
    if h.partition_leader_epoch >= 0 && out.last().map(|e| e.0) != Some(h.partition_leader_epoch) {
        out.push((h.partition_leader_epoch, h.base_offset));
    }
}

/// Writes every batch's header and body at `pos` with `pwritev`, resuming after short writes.
fn write_all_vectored_at(
    file: &File,
    batches: &[AssignedBatch<'_>],
    pos: u64,
) -> std::io::Result<()> {
    let mut slices: Vec<IoSlice<'_>> = Vec::with_capacity(batches.len() * 2);
    for b in batches {
        slices.push(IoSlice::new(&b.header));
        slices.push(IoSlice::new(b.body));
    }
    let mut rest = &mut slices[..];
    let mut pos = pos;
    // IOV_MAX is 1024 on Linux; a produced set rarely holds more than a few batches.
    const IOV_MAX: usize = 1024;
    while !rest.is_empty() {
        let n = rest.len().min(IOV_MAX);
        let written = match rustix::io::pwritev(file, &rest[..n], pos) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(w) => w,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        };
        pos += written as u64;
        IoSlice::advance_slices(&mut rest, written);
    }
    Ok(())
}

/// Recovery's check of one stored batch; the error says why it is rejected. `exact`: the batch
/// must start at `expected_offset`, as every batch a leader appends does (offsets are assigned
/// from the log end); this also catches a flipped base offset, which the CRC does not cover.
/// Without it (looking for the first valid batch behind bad bytes) it may start later.
fn check_batch(
    bytes: &[u8],
    expected_offset: i64,
    segment_base: i64,
    exact: bool,
) -> Result<(), &'static str> {
    let b = BatchView::parse(bytes).map_err(|_| "malformed batch")?;
    if b.magic() != MAGIC_V2 {
        return Err("unsupported magic");
    }
    if b.computed_crc() != b.crc() {
        return Err("CRC mismatch");
    }
    if b.last_offset_delta() < 0 {
        return Err("negative lastOffsetDelta");
    }
    if b.base_offset() < expected_offset {
        return Err("offsets do not increase");
    }
    if exact && b.base_offset() != expected_offset {
        return Err("base offset does not follow the previous batch");
    }
    if u32::try_from(b.last_offset() - segment_base).is_err() {
        return Err("offset does not fit the segment");
    }
    Ok(())
}

/// The next preallocation step after one of `prev` bytes that lasted `elapsed_ms`.
fn next_prealloc_step(prev: u64, elapsed_ms: i64) -> u64 {
    const MIN_STEP: u64 = 64 << 10;
    const MAX_STEP: u64 = 8 << 20;
    if prev == 0 || !(0..1_000).contains(&elapsed_ms) {
        MIN_STEP
    } else {
        (prev * 2).clamp(MIN_STEP, MAX_STEP)
    }
}

#[cfg(test)]
mod prealloc_tests {
    use super::next_prealloc_step;

    #[test]
    fn reservations_grow_with_the_write_rate_and_shrink_when_it_drops() {
        let mut step = next_prealloc_step(0, 0);
        assert_eq!(step, 64 << 10);
        // Used up within a second each time: doubles up to 8 MiB and stays there.
        for _ in 0..20 {
            step = next_prealloc_step(step, 10);
        }
        assert_eq!(step, 8 << 20);
        // A reservation that lasted longer than a second: back to the smallest step.
        assert_eq!(next_prealloc_step(step, 1_500), 64 << 10);
        // A clock that went backwards is not a busy partition.
        assert_eq!(next_prealloc_step(step, -5), 64 << 10);
    }
}
