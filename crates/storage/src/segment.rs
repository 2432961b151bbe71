//! `LogSegment`: one `.log` file of whole batches plus its offset and time indexes.
//!
//! ```text
//! append:   assign_offsets_vectored (in Log) -> one pwritev of [header, body].. at `size`
//!           -> walk the batch headers in memory -> maybe an index entry per index.interval.bytes
//! read:     OffsetIndex::lookup(offset) -> pread 61-byte headers forward -> FileSlice
//! recover:  pread each whole batch, check length/magic/CRC/offsets, rebuild both indexes,
//!           cut the file at the first batch that fails
//! ```
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
        })
    }
}

/// Buffered positional reader over a `.log` file, bounded by the segment's logical size.
pub(crate) struct SegmentReader<'a> {
    file: &'a File,
    end: u64,
    chunk: usize,
    buf: Vec<u8>,
    buf_start: u64,
}

impl<'a> SegmentReader<'a> {
    pub(crate) fn new(file: &'a File, end: u64, chunk: usize) -> SegmentReader<'a> {
        SegmentReader {
            file,
            end,
            chunk,
            buf: Vec::new(),
            buf_start: 0,
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

    /// The batch header at `pos`; `None` at the end of the segment or for a torn header.
    pub(crate) fn header(&mut self, pos: u64) -> std::io::Result<Option<BatchHeader>> {
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
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RecoveryResult {
    /// Offset after the last valid batch; `None` when no batch is valid.
    pub(crate) next_offset: Option<i64>,
    /// Bytes cut off the end of the file.
    pub(crate) truncated_bytes: u64,
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
    /// Bytes appended since the last offset-index entry (index.interval.bytes).
    bytes_since_last_index_entry: u64,
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
        let log_path = segment_path(dir, base_offset, "log");
        let log = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(&log_path)
            .map_err(io_err(&log_path))?;
        let offset_index = OffsetIndex::create(
            &segment_path(dir, base_offset, "index"),
            base_offset,
            config.segment_index_bytes,
        )?;
        let time_index = TimeIndex::create(
            &segment_path(dir, base_offset, "timeindex"),
            base_offset,
            config.segment_index_bytes,
        )?;
        Ok(LogSegment {
            base_offset,
            log_path,
            log: Arc::new(log),
            size: 0,
            preallocated: 0,
            prealloc_step: 0,
            prealloc_at_ms: 0,
            offset_index,
            time_index,
            bytes_since_last_index_entry: 0,
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
            bytes_since_last_index_entry: size.saturating_sub(last_index_pos),
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
        SegmentReader::new(&self.log, self.size, chunk)
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
        let mut pos = self.offset_index.last_entry().map_or(0, |(_, p)| p);
        let mut reader = self.reader(READ_CHUNK);
        let mut next = None;
        while let Some(h) = reader.header(pos).map_err(io_err(&self.log_path))? {
            next = Some(h.last_offset + 1);
            pos += h.size;
        }
        Ok(next)
    }

    /// Re-validates every batch (length, magic, CRC-32C, increasing offsets that fit the
    /// segment), rebuilds both indexes and cuts the file at the first batch that fails.
    /// `min_offset`: the offset the first batch may not start below (the previous segment's end).
    pub(crate) fn recover(
        &mut self,
        min_offset: i64,
        config: &LogConfig,
    ) -> Result<RecoveryResult, StorageError> {
        self.offset_index.truncate_to_position(0)?;
        self.time_index.truncate_to_offset(self.base_offset)?;
        self.max_timestamp = -1;
        self.offset_of_max_timestamp = self.base_offset;
        self.bytes_since_last_index_entry = 0;
        self.rolling_base_ms = None;

        let log = Arc::clone(&self.log);
        let mut reader = SegmentReader::new(&log, self.size, RECOVERY_CHUNK);
        let mut expected = min_offset.max(self.base_offset);
        let mut next_offset = None;
        let mut pos = 0u64;
        let mut reason = "";
        loop {
            let header = match reader.header(pos).map_err(io_err(&self.log_path))? {
                Some(h) => h,
                None => {
                    if pos < self.size {
                        reason = "torn batch header";
                    }
                    break;
                }
            };
            let Some(bytes) = reader
                .bytes(pos, header.size as usize)
                .map_err(io_err(&self.log_path))?
            else {
                reason = "batch extends past the end of the file";
                break;
            };
            if let Err(why) = check_batch(bytes, expected, self.base_offset) {
                reason = why;
                break;
            }
            if self.rolling_base_ms.is_none() && header.max_timestamp >= 0 {
                self.rolling_base_ms = Some(header.max_timestamp);
            }
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
        let truncated_bytes = self.size - pos;
        if truncated_bytes > 0 {
            tracing::warn!(
                segment = %self.log_path.display(),
                position = pos,
                truncated_bytes,
                reason,
                "truncating invalid bytes at the end of a log segment"
            );
            self.log.set_len(pos).map_err(io_err(&self.log_path))?;
            self.size = pos;
            self.preallocated = pos;
        }
        Ok(RecoveryResult {
            next_offset,
            truncated_bytes,
        })
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
        self.log.set_len(pos).map_err(io_err(&self.log_path))?;
        self.size = pos;
        self.preallocated = pos;
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
        Ok(())
    }
}

/// Recovery's check of one stored batch; the error says why it is rejected.
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

fn check_batch(bytes: &[u8], expected_offset: i64, segment_base: i64) -> Result<(), &'static str> {
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
