//! Partition logs on disk (Kafka's `LogManager` / `UnifiedLog` / `LogSegment`).
//!
//! API CONTRACT (bodies are being written; the broker codes against these signatures).
//!
//! ```text
//! <data>/<topic>-<partition>/00000000000000000000.log        batches, as produced (offsets assigned)
//!                            00000000000000000000.index      relative offset -> file position (sparse)
//!                            00000000000000000000.timeindex  timestamp -> relative offset (sparse)
//! ```

use std::fs::File;
use std::path::Path;
use std::sync::{Arc, Mutex};

use gregor_protocol::batch::RecordSetSummary;

/// A topic name and partition number; names the partition's directory `<topic>-<partition>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    /// Topic name.
    pub topic: String,
    /// Partition index.
    pub partition: i32,
}

/// Per-log settings (Kafka topic-level config names in brackets).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// Roll the active segment once it would exceed this size [segment.bytes].
    pub segment_bytes: u64,
    /// Roll the active segment once its first batch is older than this [segment.ms].
    pub segment_ms: i64,
    /// Delete segments whose newest record is older than this; -1 keeps forever [retention.ms].
    pub retention_ms: i64,
    /// Delete oldest segments while the log is larger than this; -1 means no limit [retention.bytes].
    pub retention_bytes: i64,
    /// Bytes between two offset-index entries [index.interval.bytes].
    pub index_interval_bytes: u32,
    /// Largest offset/time index file; the segment rolls when it is full [segment.index.bytes].
    pub segment_index_bytes: u32,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: 1 << 30,
            segment_ms: 7 * 24 * 3600 * 1000,
            retention_ms: 7 * 24 * 3600 * 1000,
            retention_bytes: -1,
            index_interval_bytes: 4096,
            segment_index_bytes: 10 * 1024 * 1024,
        }
    }
}

/// Storage failures.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// I/O error from the file system.
    #[error("I/O error on {path}: {source}")]
    Io {
        /// File or directory involved.
        path: String,
        /// Underlying error.
        source: std::io::Error,
    },
    /// A read asked for an offset outside `[log_start_offset, log_end_offset]`.
    #[error("offset {offset} is out of range [{log_start}, {log_end}]")]
    OffsetOutOfRange {
        /// Requested offset.
        offset: i64,
        /// Current log start offset.
        log_start: i64,
        /// Current log end offset.
        log_end: i64,
    },
    /// A record set handed to append is not valid.
    #[error("invalid record set: {0}")]
    InvalidRecords(#[from] gregor_protocol::batch::BatchError),
    /// Stored data is corrupt beyond what recovery may truncate.
    #[error("corrupt log {path}: {reason}")]
    Corrupt {
        /// File involved.
        path: String,
        /// What is wrong.
        reason: String,
    },
}

/// Result of an append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogAppendInfo {
    /// Offset given to the first record.
    pub first_offset: i64,
    /// Offset given to the last record.
    pub last_offset: i64,
    /// The broker time written into the batches for LogAppendTime topics, else -1.
    pub log_append_time: i64,
    /// Log start offset after the append.
    pub log_start_offset: i64,
}

/// A byte range of a segment file: what a fetch sends (by sendfile or pread).
/// Holding the `Arc<File>` keeps the data readable even if retention deletes the segment.
#[derive(Debug, Clone)]
pub struct FileSlice {
    /// The segment's `.log` file.
    pub file: Arc<File>,
    /// Start of the range in the file.
    pub position: u64,
    /// Length of the range; always whole batches.
    pub len: usize,
}

impl FileSlice {
    /// Reads the range into memory (pread).
    pub fn read_to_vec(&self) -> std::io::Result<Vec<u8>> {
        todo!()
    }
}

/// What a fetch read found.
#[derive(Debug, Clone)]
pub struct ReadInfo {
    /// Whole batches starting at (or containing) the fetch offset; `None` when there is nothing
    /// below the upper bound yet.
    pub slice: Option<FileSlice>,
}

/// Files to fsync to make the log durable up to `end_offset`; synced outside the log's lock so
/// appends continue meanwhile (group commit).
#[derive(Debug, Clone)]
pub struct FlushTarget {
    /// Segment files with unflushed data (the active one, plus any rolled since the last flush).
    pub files: Vec<Arc<File>>,
    /// Everything below this offset is durable once the files are synced.
    pub end_offset: i64,
}

impl FlushTarget {
    /// fdatasync every file.
    pub fn sync(&self) -> std::io::Result<()> {
        todo!()
    }
}

/// One partition's log: an ordered list of segments, the last one active.
#[derive(Debug)]
pub struct Log {}

impl Log {
    /// Appends a record set that passed `validate_record_set`, assigning offsets in place
    /// (see `gregor_protocol::batch::assign_offsets`). Rolls the active segment first when the
    /// set would overflow it, when it is older than `segment_ms`, or when its indexes are full.
    /// `log_append_time`: the topic uses `message.timestamp.type=LogAppendTime`.
    pub fn append_as_leader(
        &mut self,
        records: &mut [u8],
        summary: &RecordSetSummary,
        leader_epoch: i32,
        now_ms: i64,
        log_append_time: bool,
    ) -> Result<LogAppendInfo, StorageError> {
        let _ = (records, summary, leader_epoch, now_ms, log_append_time);
        todo!()
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
        let _ = (offset, max_bytes, upper_bound, min_one_batch);
        todo!()
    }

    /// First offset still in the log.
    pub fn log_start_offset(&self) -> i64 {
        todo!()
    }

    /// Offset the next record will get.
    pub fn log_end_offset(&self) -> i64 {
        todo!()
    }

    /// Offset up to which the log is known durable (fsynced).
    pub fn recovery_point(&self) -> i64 {
        todo!()
    }

    /// Total bytes of all segments.
    pub fn size_bytes(&self) -> u64 {
        todo!()
    }

    /// ListOffsets by timestamp: the earliest record whose timestamp is >= `timestamp`, as
    /// `(offset, record timestamp)`; `None` when no record is that new.
    pub fn offset_for_timestamp(&self, timestamp: i64) -> Result<Option<(i64, i64)>, StorageError> {
        let _ = timestamp;
        todo!()
    }

    /// What to fsync to make everything appended so far durable; `None` if already durable.
    pub fn flush_target(&self) -> Option<FlushTarget> {
        todo!()
    }

    /// Records that a `FlushTarget` with this `end_offset` was synced.
    pub fn mark_flushed(&mut self, end_offset: i64) {
        let _ = end_offset;
        todo!()
    }

    /// Applies retention (time, then size); deletes whole segments, never the active one,
    /// and moves the log start offset. Returns how many segments went.
    pub fn apply_retention(&mut self, now_ms: i64) -> Result<usize, StorageError> {
        let _ = now_ms;
        todo!()
    }

    /// Replaces the log's config (topic config changes).
    pub fn set_config(&mut self, config: LogConfig) {
        let _ = config;
        todo!()
    }
}

/// Owns the data directory: opens logs (recovering those that were not shut down cleanly),
/// creates and deletes them, and writes checkpoints and the clean-shutdown marker.
#[derive(Debug)]
pub struct LogManager {}

impl LogManager {
    /// Opens `data_dir` (creating it if missing). Notes whether the last shutdown was clean and
    /// removes the marker, so a crash from now on is seen as unclean at the next start.
    pub fn open(data_dir: &Path) -> Result<LogManager, StorageError> {
        let _ = data_dir;
        todo!()
    }

    /// Partitions with a directory on disk.
    pub fn existing_partitions(&self) -> Result<Vec<TopicPartition>, StorageError> {
        todo!()
    }

    /// Opens the partition's log, creating its directory if needed; recovers it if the last
    /// shutdown was unclean. Returns the same `Arc` for repeated calls.
    pub fn get_or_create(
        &self,
        tp: &TopicPartition,
        config: LogConfig,
    ) -> Result<Arc<Mutex<Log>>, StorageError> {
        let _ = (tp, config);
        todo!()
    }

    /// The open log, if any.
    pub fn get(&self, tp: &TopicPartition) -> Option<Arc<Mutex<Log>>> {
        let _ = tp;
        todo!()
    }

    /// Closes and removes the partition's log and directory.
    pub fn delete(&self, tp: &TopicPartition) -> Result<(), StorageError> {
        let _ = tp;
        todo!()
    }

    /// Writes the recovery-point and log-start-offset checkpoints of all open logs.
    pub fn checkpoint(&self) -> Result<(), StorageError> {
        todo!()
    }

    /// Runs retention on every open log.
    pub fn apply_retention(&self, now_ms: i64) -> Result<usize, StorageError> {
        let _ = now_ms;
        todo!()
    }

    /// Flushes every log, writes checkpoints and the clean-shutdown marker.
    pub fn shutdown(&self) -> Result<(), StorageError> {
        todo!()
    }
}
