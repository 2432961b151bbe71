//! Partition logs on disk (Kafka's `LogManager` / `UnifiedLog` / `LogSegment`).
//!
//! The broker codes against the types here plus [`Log`] and [`LogManager`].
//!
//! ```text
//! <data>/<topic>-<partition>/00000000000000000000.log        batches, as produced (offsets assigned)
//!                            00000000000000000000.index      relative offset -> file position (sparse)
//!                            00000000000000000000.timeindex  timestamp -> relative offset (sparse)
//!                            00000000000000000000.txnindex   aborted transactions (marker here)
//! ```
//!
//! Modules, from the bottom up:
//!
//! * `index_file`: a fixed-width index kept in memory and written to its file by path, without
//!   holding a descriptor (Kafka's `AbstractIndex`).
//! * `index` / `time_index`: the sparse `.index` and `.timeindex` files (Kafka's `OffsetIndex` /
//!   `TimeIndex`) on top of it.
//! * `segment`: `LogSegment`, one `.log` plus its indexes; append, header scans,
//!   per-segment recovery.
//! * `log`: [`Log`], the ordered segments of one partition: leader and follower appends with
//!   roll, read, flush targets, retention, truncation, the leader-epoch cache kept in step.
//! * `loader`: `LogLoader`, loading a partition directory: recovery after an unclean shutdown,
//!   index rebuilds, the leader-epoch cache (rebuilt from the batches when its file is missing).
//! * `producer_state` / `txn_index`: idempotent and transactional producers' state (the
//!   `.snapshot` files) and each segment's aborted transactions (the `.txnindex` file).
//! * `checkpoint`: the recovery-point, log-start-offset and high-watermark files.
//! * `leader_epoch`: [`LeaderEpochFileCache`], a partition's leader epochs and their
//!   `leader-epoch-checkpoint` file, owned by each [`Log`].
//! * `cleaner`: the log cleaner's core ([`Cleaner`]): compaction of one log (offset map,
//!   segment rewrite, the `.cleaned`/`.swap` protocol and its completion at load).
//! * `manager`: [`LogManager`], the log directories (one or several) with their checkpoints.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

mod checkpoint;
pub mod cleaner;
mod index;
mod index_file;
mod leader_epoch;
mod loader;
mod log;
mod manager;
pub mod parallel;
pub mod producer_state;
mod segment;
mod time_index;
pub mod txn_index;

#[cfg(test)]
mod cleaner_tests;
#[cfg(test)]
mod log_dirs_tests;
#[cfg(test)]
mod producer_state_tests;
#[cfg(test)]
mod replication_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod txn_tests;

pub use crate::cleaner::{CleanOutcome, CleanStats, Cleaner, LogToClean, Throttler};
pub use crate::leader_epoch::{LeaderEpochFileCache, LEADER_EPOCH_CHECKPOINT};
pub use crate::log::Log;
pub use crate::manager::{LogManager, MoveProgress, MoveStart};
pub use crate::txn_index::AbortedTxn;

/// A topic name and partition number; names the partition's directory `<topic>-<partition>`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    /// Topic name.
    pub topic: String,
    /// Partition index.
    pub partition: i32,
}

/// Per-log settings (Kafka topic-level config names in brackets).
#[derive(Debug, Clone, PartialEq)]
pub struct LogConfig {
    /// Roll the active segment once it would exceed this size [segment.bytes].
    pub segment_bytes: u64,
    /// Roll the active segment once its first batch is older than this [segment.ms].
    pub segment_ms: i64,
    /// At most this much is taken off `segment_ms` for each segment, at random, so that logs
    /// created together do not all roll at once [segment.jitter.ms].
    pub segment_jitter_ms: i64,
    /// Delete segments whose newest record is older than this; -1 keeps forever [retention.ms].
    pub retention_ms: i64,
    /// Delete oldest segments while the log is larger than this; -1 means no limit [retention.bytes].
    pub retention_bytes: i64,
    /// Bytes between two offset-index entries [index.interval.bytes].
    pub index_interval_bytes: u32,
    /// Largest offset/time index file; the segment rolls when it is full [segment.index.bytes].
    pub segment_index_bytes: u32,
    /// The log cleaner compacts this log: `cleanup.policy` holds `compact`.
    pub compact: bool,
    /// How long a tombstone (and, later, a transaction marker) stays after its segment was
    /// cleaned [delete.retention.ms].
    pub delete_retention_ms: i64,
    /// Records younger than this are never compacted [min.compaction.lag.ms].
    pub min_compaction_lag_ms: i64,
    /// A log whose oldest dirty record is older than this is cleaned whatever its dirty ratio
    /// [max.compaction.lag.ms].
    pub max_compaction_lag_ms: i64,
    /// Dirty bytes / total bytes a log needs before the cleaner picks it
    /// [min.cleanable.dirty.ratio].
    pub min_cleanable_dirty_ratio: f64,
    /// Reserve a new segment's whole `segment_bytes` on disk when it is created, instead of in
    /// steps ahead of the appends [preallocate].
    pub preallocate: bool,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            segment_bytes: 1 << 30,
            segment_ms: 7 * 24 * 3600 * 1000,
            segment_jitter_ms: 0,
            retention_ms: 7 * 24 * 3600 * 1000,
            retention_bytes: -1,
            index_interval_bytes: 4096,
            segment_index_bytes: 10 * 1024 * 1024,
            compact: false,
            delete_retention_ms: 86_400_000,
            min_compaction_lag_ms: 0,
            max_compaction_lag_ms: i64::MAX,
            min_cleanable_dirty_ratio: 0.5,
            preallocate: false,
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
    /// A follower append whose batches do not continue the log: the first batch starts below
    /// the log end offset, or a batch starts before the previous one ended (an overlap; gaps
    /// are a compacted log's and are allowed). Kafka's `UnexpectedAppendOffsetException` / out-of-order offsets.
    #[error("offset out of order: expected a batch at offset {expected}, found {found}")]
    OffsetOutOfOrder {
        /// Offset the next batch must start at.
        expected: i64,
        /// Base offset of the batch found.
        found: i64,
    },
    /// The log was deleted (`LogManager::delete`) while a handle to it was still held: it
    /// takes no more appends, which could otherwise roll a segment into a re-created log's
    /// directory.
    #[error("log {path} was deleted")]
    Deleted {
        /// The deleted log's directory.
        path: String,
    },
    /// An idempotent producer's batch the producer state refuses (a fenced epoch or a sequence
    /// gap); the produce response carries its Kafka error code.
    #[error(transparent)]
    Producer(#[from] crate::producer_state::ProducerStateError),
    /// Stored data is corrupt beyond what recovery may truncate.
    #[error("corrupt log {path}: {reason}")]
    Corrupt {
        /// File involved.
        path: String,
        /// What is wrong.
        reason: String,
    },
}

impl StorageError {
    /// The OS refused an operation (an I/O error from the kernel), and not because the disk is
    /// full: Kafka takes the log directory offline for such an error. A full disk (ENOSPC,
    /// EDQUOT) refuses the write only: space freed brings it back.
    pub fn is_disk_failure(&self) -> bool {
        matches!(self, StorageError::Io { source, .. }
            if source.raw_os_error().is_some_and(|code| code != ENOSPC && code != EDQUOT))
    }

    /// The disk is full (ENOSPC) or the quota spent (EDQUOT).
    pub fn is_disk_full(&self) -> bool {
        matches!(self, StorageError::Io { source, .. }
            if matches!(source.raw_os_error(), Some(ENOSPC | EDQUOT)))
    }
}

/// Linux's "no space left on device" and "disk quota exceeded".
const ENOSPC: i32 = 28;
const EDQUOT: i32 = 122;

/// Result of an append.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogAppendInfo {
    /// Offset given to the first record.
    pub first_offset: i64,
    /// Offset given to the last record.
    pub last_offset: i64,
    /// Largest batch `maxTimestamp` appended (the append time for LogAppendTime topics); -1
    /// when the batches carry none.
    pub max_timestamp: i64,
    /// The broker time written into the batches for LogAppendTime topics, else -1.
    pub log_append_time: i64,
    /// Log start offset after the append.
    pub log_start_offset: i64,
    /// The set was a retry of batches already in the log (an idempotent producer's duplicate):
    /// nothing was appended, and the offsets are the original batch's.
    pub duplicate: bool,
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
        let mut buf = vec![0u8; self.len];
        self.file.read_exact_at(&mut buf, self.position)?;
        Ok(buf)
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
    /// Files and directories the log holds no descriptor for (finished index files, the
    /// partition directory after a segment was created): opened by path to be synced.
    paths: Vec<PathBuf>,
}

impl FlushTarget {
    /// fdatasync every file, then fsync every path. A path that is gone (its segment was deleted
    /// meanwhile) has nothing left to make durable.
    pub fn sync(&self) -> std::io::Result<()> {
        for f in &self.files {
            f.sync_data()?;
        }
        for path in &self.paths {
            match File::open(path) {
                Ok(f) => f.sync_all()?,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Paths synced by [`FlushTarget::sync`] besides `files`.
    #[cfg(test)]
    pub(crate) fn paths(&self) -> &[PathBuf] {
        &self.paths
    }
}

/// Maps an I/O error to [`StorageError::Io`] naming the path involved.
pub(crate) fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> StorageError + '_ {
    move |source| StorageError::Io {
        path: path.display().to_string(),
        source,
    }
}
