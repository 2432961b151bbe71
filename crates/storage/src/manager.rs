//! `LogManager`: owns the log directories (Kafka's `log.dirs`, one or several: JBOD).
//!
//! ```text
//! <dir>/.gregor_cleanshutdown            present only between a clean shutdown and the next open
//!       recovery-point-offset-checkpoint  everything below is fsynced, per partition
//!       log-start-offset-checkpoint       log start offsets (retention, DeleteRecords)
//!       replication-offset-checkpoint     high watermarks (replication; see below)
//!       cleaner-offset-checkpoint         first dirty offset of each compacted log (cleaner)
//!       orders-0/                         one Log per partition
//!       orders-1.5f3a…-delete/            being deleted
//!       orders-2.9c1e…-stray/             a log the metadata does not give this broker, kept
//!       orders-0/partition.metadata       the topic id of the log (Kafka's, KIP-516)
//! ```
//!
//! Every directory has all of these for the partitions it holds, and its own lock, as in
//! Kafka. A partition lives in exactly one directory: the one it was found in at open, or, for
//! a new one, the directory holding the fewest partitions (the first of those on a tie; Kafka's
//! `LogManager.nextLogDirs`). A partition found in two directories stops the open.
//!
//! A partition moves to another directory (AlterReplicaLogDirs, Kafka's future log) by a copy:
//! [`LogManager::alter_dir`] registers the move and [`LogManager::run_move`] (on a blocking
//! thread) copies the batches into `<dest>/<topic>-<partition>.<hex>-future` as a follower
//! would, then, under the log's lock with the rest copied and flushed, renames the source to
//! `<topic>-<partition>.<hex>-moved`, the future log to its partition name, and swaps the new
//! log into the same `Arc<Mutex<Log>>` every holder shares. At open, a `-future` directory is
//! an unfinished copy (removed); a `-moved` one is removed when its partition is found in a
//! directory, and renamed back otherwise (the crash came before the future log took its name).
//!
//! `open` notes whether each directory's marker was there and removes it at once, so a crash
//! from then on is seen as unclean at the next start; logs opened by `get_or_create` are then
//! recovered from their recovery point.
//!
//! The high-watermark checkpoint is read at `open` ([`LogManager::high_watermarks`]) and
//! written by [`LogManager::checkpoint_high_watermarks`]. The high watermark is the replication
//! layer's number, so the caller hands in every partition's value.

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasher, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::checkpoint::{
    read_checkpoint, sync_dir, write_checkpoint, CLEANER_OFFSET_CHECKPOINT,
    LOG_START_OFFSET_CHECKPOINT, RECOVERY_POINT_CHECKPOINT, REPLICATION_OFFSET_CHECKPOINT,
};
use crate::log::{LoadOptions, Log};
use crate::{io_err, LogConfig, StorageError, TopicPartition};

/// Name of the clean-shutdown marker file.
pub(crate) const CLEAN_SHUTDOWN_FILE: &str = ".gregor_cleanshutdown";
/// Suffix of partition directories that are being deleted.
const DELETE_SUFFIX: &str = "-delete";
/// Kafka's `partition.metadata` (KIP-516) in a partition's directory: the id of the topic its
/// log belongs to, so that a log left by a deleted topic is never taken for a new topic of the
/// same name.
const PARTITION_METADATA_FILE: &str = "partition.metadata";
/// Suffix of a partition's directory moved aside as a stray log (Kafka's `-stray`), kept.
const STRAY_SUFFIX: &str = "-stray";
/// Suffix of a partition's copy being made in another directory (Kafka's future log).
const FUTURE_SUFFIX: &str = "-future";
/// Suffix of a partition's directory whose copy elsewhere is taking its place.
const MOVED_SUFFIX: &str = "-moved";
/// The most bytes a move copies per read of the source log.
const MOVE_CHUNK_BYTES: usize = 1 << 20;

/// What [`LogManager::alter_dir`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MoveStart {
    /// The partition is in that directory already (a move elsewhere was called off).
    AlreadyThere,
    /// A move to that directory is already under way.
    InProgress,
    /// A move was registered: run it with [`LogManager::run_move`].
    Started,
    /// The partition has no log here: it will be created in that directory.
    NotOnDisk,
}

/// A partition's move to another directory, as DescribeLogDirs reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MoveProgress {
    pub tp: TopicPartition,
    /// Where it goes.
    pub dest: PathBuf,
    /// The copy's log end offset so far.
    pub copied_end: i64,
    /// The copy's size so far (segment bytes).
    pub copied_bytes: u64,
}

/// A move in progress.
#[derive(Debug)]
struct LogMove {
    dest: usize,
    future_dir: PathBuf,
    copied_end: AtomicI64,
    copied_bytes: AtomicU64,
    cancelled: AtomicBool,
}

/// Owns the log directories: opens logs (recovering those that were not shut down cleanly),
/// places, creates and deletes them, and writes checkpoints and the clean-shutdown markers.
#[derive(Debug)]
pub struct LogManager {
    /// The directories, in `log.dirs` order.
    dirs: Vec<LogDir>,
    /// The broker epoch to write into the markers at a clean shutdown.
    broker_epoch: Mutex<Option<i64>>,
    logs: Mutex<HashMap<TopicPartition, Arc<Mutex<Log>>>>,
    /// The directory (index into `dirs`) of every partition on disk or open. Taken after
    /// `logs` when both are held.
    placement: Mutex<HashMap<TopicPartition, usize>>,
    /// Where a partition with no log yet goes when it is created (AlterReplicaLogDirs before
    /// the replica exists, as Kafka's `preferredLogDirs`).
    preferred: Mutex<HashMap<TopicPartition, usize>>,
    /// Moves between directories under way.
    moves: Mutex<HashMap<TopicPartition, Arc<LogMove>>>,
    /// Directories a failed checkpoint write took offline, with their partitions, not yet
    /// taken by [`LogManager::take_newly_offline`].
    newly_offline: Mutex<Vec<(PathBuf, Vec<TopicPartition>)>>,
}

/// One log directory: its lock, its clean-shutdown state and its checkpoint files.
#[derive(Debug)]
struct LogDir {
    path: PathBuf,
    /// Cordoned (KIP-1066, `cordoned.log.dirs`): no new partition goes here while another
    /// directory is not cordoned; its partitions stay.
    cordoned: AtomicBool,
    /// A storage failure took the directory offline (Kafka's offline log dir): no new
    /// partition goes there, its checkpoints are no longer written, and it is not marked
    /// clean at shutdown. Until the process restarts.
    offline: AtomicBool,
    /// Whether the previous process shut this directory down cleanly (decides recovery for
    /// every log opened from it).
    had_clean_shutdown: bool,
    /// The broker epoch the previous process wrote into this directory's clean-shutdown marker
    /// (KIP-966's `previousBrokerEpoch`), if it shut down cleanly as a registered broker.
    previous_broker_epoch: Option<i64>,
    /// Checkpoint entries read at open for logs not opened yet: written back by `checkpoint`
    /// so partitions the broker has not touched keep their recovery points.
    initial_recovery_points: Mutex<BTreeMap<TopicPartition, i64>>,
    initial_log_starts: Mutex<BTreeMap<TopicPartition, i64>>,
    /// The high watermarks the `replication-offset-checkpoint` file holds: read at open, then
    /// what `checkpoint_high_watermarks` last wrote.
    high_watermarks: Mutex<BTreeMap<TopicPartition, i64>>,
    /// The `cleaner-offset-checkpoint` file's entries: read at open, then kept as written.
    cleaner_checkpoints: Mutex<BTreeMap<TopicPartition, i64>>,
    /// Serialises checkpoint writers (they share one temporary file name) and holds what they
    /// last wrote (recovery points, log start offsets), so an unchanged file is not rewritten:
    /// the checkpoint runs on a short timer to keep the persisted recovery point close to what
    /// the flushes made durable.
    checkpoint_lock: Mutex<WrittenCheckpoints>,
    /// An exclusive `flock` on `<dir>/.lock` (Kafka's log-dir lock), held while the manager
    /// lives: a second process on the same directory fails at open instead of recovering (and
    /// truncating) logs another process is writing. `None` for a directory that could not
    /// be opened at start.
    _dir_lock: Option<std::fs::File>,
}

/// The data directory's lock file.
pub(crate) const LOCK_FILE: &str = ".lock";

/// Takes the data directory's lock, or says which directory is in use.
fn lock_data_dir(data_dir: &Path) -> Result<std::fs::File, StorageError> {
    let path = data_dir.join(LOCK_FILE);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(io_err(&path))?;
    rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive).map_err(
        |e| StorageError::Io {
            path: path.display().to_string(),
            source: std::io::Error::new(
                std::io::ErrorKind::WouldBlock,
                format!(
                    "the data directory {} is in use by another process ({e})",
                    data_dir.display()
                ),
            ),
        },
    )?;
    Ok(file)
}

/// The checkpoint files' contents as last written by this process.
#[derive(Debug, Default)]
struct WrittenCheckpoints {
    recovery_points: Option<BTreeMap<TopicPartition, i64>>,
    log_starts: Option<BTreeMap<TopicPartition, i64>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding a manager lock leaves plain maps behind, still consistent.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl LogDir {
    fn is_offline(&self) -> bool {
        self.offline.load(Ordering::SeqCst)
    }

    /// Locks and opens one directory (creating it if missing): reads its marker (removing it)
    /// and checkpoints, and finishes the deletions a crash interrupted.
    fn open(data_dir: &Path) -> Result<LogDir, StorageError> {
        std::fs::create_dir_all(data_dir).map_err(io_err(data_dir))?;
        // Before anything reads or changes the directory.
        let dir_lock = lock_data_dir(data_dir)?;
        let marker = data_dir.join(CLEAN_SHUTDOWN_FILE);
        let had_clean_shutdown = marker.exists();
        let mut previous_broker_epoch = None;
        if had_clean_shutdown {
            // Kafka's `CleanShutdownFileHandler` content; an empty marker (an earlier gregor,
            // or a stop before registering) proves no epoch.
            previous_broker_epoch = std::fs::read_to_string(&marker)
                .ok()
                .as_deref()
                .and_then(parse_broker_epoch);
            std::fs::remove_file(&marker).map_err(io_err(&marker))?;
            sync_dir(data_dir)?;
        }
        tracing::info!(dir = %data_dir.display(), had_clean_shutdown, "opening log directory");
        let read_or_empty = |name: &str| {
            let path = data_dir.join(name);
            match read_checkpoint(&path) {
                Ok(m) => Ok(m),
                Err(e @ StorageError::Corrupt { .. }) => {
                    // Losing a checkpoint costs a longer recovery, never data: carry on.
                    tracing::warn!(error = %e, "ignoring corrupt checkpoint file");
                    Ok(BTreeMap::new())
                }
                Err(e) => Err(e),
            }
        };
        let recovery_points = read_or_empty(RECOVERY_POINT_CHECKPOINT)?;
        let log_starts = read_or_empty(LOG_START_OFFSET_CHECKPOINT)?;
        let high_watermarks = read_or_empty(REPLICATION_OFFSET_CHECKPOINT)?;
        let cleaner_checkpoints = read_or_empty(CLEANER_OFFSET_CHECKPOINT)?;
        // Finish deletions a crash interrupted.
        for entry in std::fs::read_dir(data_dir).map_err(io_err(data_dir))? {
            let entry = entry.map_err(io_err(data_dir))?;
            let name = entry.file_name();
            if name.to_str().is_some_and(|n| n.ends_with(DELETE_SUFFIX)) {
                let path = entry.path();
                tracing::info!(dir = %path.display(), "removing log left half-deleted");
                std::fs::remove_dir_all(&path).map_err(io_err(&path))?;
            }
        }
        Ok(LogDir {
            path: data_dir.to_path_buf(),
            offline: AtomicBool::new(false),
            cordoned: AtomicBool::new(false),
            had_clean_shutdown,
            previous_broker_epoch,
            initial_recovery_points: Mutex::new(recovery_points),
            initial_log_starts: Mutex::new(log_starts),
            high_watermarks: Mutex::new(high_watermarks),
            cleaner_checkpoints: Mutex::new(cleaner_checkpoints),
            checkpoint_lock: Mutex::new(WrittenCheckpoints::default()),
            _dir_lock: Some(dir_lock),
        })
    }

    /// A directory that could not be opened at start (Kafka starts with it offline): nothing
    /// is read from it or written to it until a restart.
    fn unreadable(data_dir: &Path) -> LogDir {
        LogDir {
            path: data_dir.to_path_buf(),
            offline: AtomicBool::new(true),
            cordoned: AtomicBool::new(false),
            had_clean_shutdown: false,
            previous_broker_epoch: None,
            initial_recovery_points: Mutex::new(BTreeMap::new()),
            initial_log_starts: Mutex::new(BTreeMap::new()),
            high_watermarks: Mutex::new(BTreeMap::new()),
            cleaner_checkpoints: Mutex::new(BTreeMap::new()),
            checkpoint_lock: Mutex::new(WrittenCheckpoints::default()),
            _dir_lock: None,
        }
    }

    /// Partitions with a directory here.
    fn partitions(&self) -> Result<Vec<TopicPartition>, StorageError> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&self.path).map_err(io_err(&self.path))? {
            let entry = entry.map_err(io_err(&self.path))?;
            if !entry.file_type().map_err(io_err(&entry.path()))?.is_dir() {
                continue;
            }
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            if let Some(tp) = parse_log_dir_name(name) {
                out.push(tp);
            }
        }
        Ok(out)
    }

    /// Writes this directory's `cleaner-offset-checkpoint` with `entries`.
    fn write_cleaner_checkpoint(
        &self,
        entries: &BTreeMap<TopicPartition, i64>,
    ) -> Result<(), StorageError> {
        write_checkpoint(&self.path.join(CLEANER_OFFSET_CHECKPOINT), entries)
    }
}

impl LogManager {
    /// Opens one data directory (creating it if missing); see [`LogManager::open_dirs`].
    pub fn open(data_dir: &Path) -> Result<LogManager, StorageError> {
        Self::open_dirs(&[data_dir.to_path_buf()])
    }

    /// Opens the log directories (creating those missing), in `log.dirs` order. Notes whether
    /// each was shut down cleanly and removes its marker, so a crash from now on is seen as
    /// unclean at the next start. The same directory named twice, or a partition found in two
    /// of them, is refused. A directory after the first that cannot be read or created (a
    /// failed disk) is opened offline, as Kafka starts with it offline; the first one, which
    /// holds the metadata log, must open, and so must a directory that another process holds.
    pub fn open_dirs(data_dirs: &[PathBuf]) -> Result<LogManager, StorageError> {
        Self::open_dirs_with(data_dirs, &[])
    }

    /// [`LogManager::open_dirs`], with the directories at the indexes in `unreadable` offline
    /// from the start (the broker could not read their `meta.properties`).
    pub fn open_dirs_with(
        data_dirs: &[PathBuf],
        unreadable: &[usize],
    ) -> Result<LogManager, StorageError> {
        if data_dirs.is_empty() {
            return Err(StorageError::Io {
                path: String::new(),
                source: std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "no log directory given",
                ),
            });
        }
        let mut dirs: Vec<LogDir> = Vec::with_capacity(data_dirs.len());
        for (i, path) in data_dirs.iter().enumerate() {
            let offline_at_start = |e: &StorageError| {
                tracing::error!(
                    dir = %path.display(),
                    error = %e,
                    "the log directory cannot be opened: it stays offline until a restart, and \
                     its partitions are led elsewhere"
                );
                LogDir::unreadable(path)
            };
            if i > 0 && unreadable.contains(&i) {
                dirs.push(offline_at_start(&StorageError::Io {
                    path: path.display().to_string(),
                    source: std::io::Error::other("its meta.properties cannot be read"),
                }));
                continue;
            }
            // The lock is per directory: a directory named twice (under another spelling too)
            // fails on its own lock, but with a misleading "in use by another process".
            let canonical = match std::fs::create_dir_all(path)
                .and_then(|()| std::fs::canonicalize(path))
                .map_err(io_err(path))
            {
                Ok(c) => c,
                Err(e) if i > 0 => {
                    dirs.push(offline_at_start(&e));
                    continue;
                }
                Err(e) => return Err(e),
            };
            if let Some(other) = dirs
                .iter()
                .filter(|d| !d.is_offline())
                .find(|d| std::fs::canonicalize(&d.path).is_ok_and(|c| c == canonical))
            {
                return Err(StorageError::Io {
                    path: path.display().to_string(),
                    source: std::io::Error::new(
                        std::io::ErrorKind::InvalidInput,
                        format!(
                            "the log directory {} is given twice (also as {})",
                            path.display(),
                            other.path.display()
                        ),
                    ),
                });
            }
            // Another process holding it is a configuration error, not a failed disk.
            let in_use = |e: &StorageError| {
                matches!(e, StorageError::Io { source, .. }
                    if source.kind() == std::io::ErrorKind::WouldBlock)
            };
            match LogDir::open(path).and_then(|d| d.partitions().map(|_| d)) {
                Ok(d) => dirs.push(d),
                Err(e) if i > 0 && !in_use(&e) => dirs.push(offline_at_start(&e)),
                Err(e) => return Err(e),
            }
        }
        let moved = finish_interrupted_moves(&dirs)?;
        let mut placement = HashMap::new();
        for (i, dir) in dirs.iter().enumerate() {
            if dir.is_offline() {
                continue;
            }
            for tp in dir.partitions()? {
                if let Some(j) = placement.insert(tp.clone(), i) {
                    // Kafka stops here too ("Duplicate log directories for ... are found").
                    let path = dir.path.join(format!("{}-{}", tp.topic, tp.partition));
                    return Err(StorageError::Corrupt {
                        path: path.display().to_string(),
                        reason: format!(
                            "partition {}-{} is in two log directories, {} and {}: remove the \
                             copy that should not be there",
                            tp.topic,
                            tp.partition,
                            dirs[j].path.display(),
                            dir.path.display()
                        ),
                    });
                }
            }
        }
        for (i, tp, path) in moved {
            match placement.entry(tp) {
                std::collections::hash_map::Entry::Occupied(_) => {
                    // The copy took the partition's name: the source was only left to remove.
                    tracing::info!(dir = %path.display(), "removing the source of a finished move");
                    std::fs::remove_dir_all(&path).map_err(io_err(&path))?;
                }
                std::collections::hash_map::Entry::Vacant(slot) => {
                    // The crash came before the copy took the name: the source is the partition.
                    let tp = slot.key();
                    let back = dirs[i].path.join(format!("{}-{}", tp.topic, tp.partition));
                    tracing::warn!(dir = %back.display(), "a move was cut short: the partition stays here");
                    std::fs::rename(&path, &back).map_err(io_err(&path))?;
                    sync_dir(&dirs[i].path)?;
                    slot.insert(i);
                }
            }
        }
        Ok(LogManager {
            dirs,
            broker_epoch: Mutex::new(None),
            logs: Mutex::new(HashMap::new()),
            placement: Mutex::new(placement),
            preferred: Mutex::new(HashMap::new()),
            moves: Mutex::new(HashMap::new()),
            newly_offline: Mutex::new(Vec::new()),
        })
    }

    /// The index of the log directory at `path` (compared as absolute paths), if it is one.
    pub fn dir_index_of_path(&self, path: &Path) -> Option<usize> {
        let wanted = std::path::absolute(path).ok()?;
        let canonical = std::fs::canonicalize(path).ok();
        self.dirs.iter().position(|d| {
            std::path::absolute(&d.path).is_ok_and(|a| a == wanted)
                || canonical
                    .as_ref()
                    .is_some_and(|c| std::fs::canonicalize(&d.path).is_ok_and(|dc| dc == *c))
        })
    }

    /// Moves the partition's log to directory `dest` (AlterReplicaLogDirs): see [`MoveStart`].
    /// A move already under way to another directory is called off first.
    pub fn alter_dir(&self, tp: &TopicPartition, dest: usize) -> Result<MoveStart, StorageError> {
        if dest >= self.dirs.len() {
            return Err(StorageError::Io {
                path: String::new(),
                source: std::io::Error::new(
                    std::io::ErrorKind::NotFound,
                    format!("no log directory {dest}"),
                ),
            });
        }
        if self.dirs[dest].is_offline() {
            return Err(offline_error(&self.dirs[dest].path));
        }
        let current = lock(&self.placement).get(tp).copied();
        if let Some(i) = current.filter(|&i| self.dirs[i].is_offline()) {
            return Err(offline_error(&self.dirs[i].path));
        }
        let Some(current) = current else {
            lock(&self.preferred).insert(tp.clone(), dest);
            return Ok(MoveStart::NotOnDisk);
        };
        let mut moves = lock(&self.moves);
        if let Some(m) = moves.get(tp) {
            if m.dest == dest {
                return Ok(MoveStart::InProgress);
            }
            m.cancelled.store(true, Ordering::SeqCst);
            moves.remove(tp);
        }
        if current == dest {
            return Ok(MoveStart::AlreadyThere);
        }
        let suffix = std::collections::hash_map::RandomState::new()
            .build_hasher()
            .finish();
        let future_dir = self.dirs[dest].path.join(format!(
            "{}-{}.{suffix:016x}{FUTURE_SUFFIX}",
            tp.topic, tp.partition
        ));
        moves.insert(
            tp.clone(),
            Arc::new(LogMove {
                dest,
                future_dir,
                copied_end: AtomicI64::new(0),
                copied_bytes: AtomicU64::new(0),
                cancelled: AtomicBool::new(false),
            }),
        );
        Ok(MoveStart::Started)
    }

    /// The moves under way.
    pub fn moves(&self) -> Vec<MoveProgress> {
        lock(&self.moves)
            .iter()
            .map(|(tp, m)| MoveProgress {
                tp: tp.clone(),
                dest: self.dirs[m.dest].path.clone(),
                copied_end: m.copied_end.load(Ordering::Relaxed),
                copied_bytes: m.copied_bytes.load(Ordering::Relaxed),
            })
            .collect()
    }

    /// Runs the partition's registered move to completion (blocking: call it on a thread of
    /// its own): copies the log into the destination while appends go on, then swaps the copy
    /// in under the log's lock. Returns once the move is done, called off (by another
    /// [`alter_dir`](Self::alter_dir), the partition's deletion or [`shutdown`](Self::shutdown)),
    /// or failed; its copy is removed unless it took the partition's place.
    ///
    /// `throttle` is called with the bytes of each chunk copied, before the next (the broker's
    /// `replica.alter.log.dirs.io.max.bytes.per.second`); it may sleep.
    pub fn run_move(
        &self,
        tp: &TopicPartition,
        throttle: &dyn Fn(u64),
    ) -> Result<(), StorageError> {
        let Some(mv) = lock(&self.moves).get(tp).cloned() else {
            return Ok(());
        };
        let result = self.copy_and_swap(tp, &mv, throttle);
        {
            let mut moves = lock(&self.moves);
            if moves.get(tp).is_some_and(|m| Arc::ptr_eq(m, &mv)) {
                moves.remove(tp);
            }
        }
        if mv.future_dir.exists() {
            if let Err(e) = std::fs::remove_dir_all(&mv.future_dir) {
                tracing::warn!(dir = %mv.future_dir.display(), error = %e, "cannot remove a move's copy");
            }
        }
        match &result {
            Ok(()) => {}
            Err(e) => tracing::error!(
                topic = %tp.topic,
                partition = tp.partition,
                error = %e,
                "moving the log to another directory failed; it stays where it was"
            ),
        }
        result
    }

    fn copy_and_swap(
        &self,
        tp: &TopicPartition,
        mv: &LogMove,
        throttle: &dyn Fn(u64),
    ) -> Result<(), StorageError> {
        let Some(source) = self.get(tp) else {
            // Never opened: the broker opens every partition it hosts, so it is going away.
            return Ok(());
        };
        let config = lock(&source).config().clone();
        let fresh = LoadOptions {
            recovery_point: 0,
            log_start_offset: None,
            clean_shutdown: true,
        };
        let mut future = Log::open(&mv.future_dir, config, fresh)?;
        // A truncation of the source (a follower told to by its new leader) may take back
        // offsets already copied: the copy then starts again.
        let mut truncations = lock(&source).truncation_count();
        let now = || {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        };
        // Copy outside the log's lock (one read under it per chunk) until less than a chunk
        // is left.
        loop {
            if mv.cancelled.load(Ordering::SeqCst) {
                return Ok(());
            }
            let (slice, end) = {
                let log = lock(&source);
                if log.is_deleted() {
                    return Ok(());
                }
                resync_copy(tp, &log, &mut future, &mut truncations)?;
                let end = log.log_end_offset();
                if end - future.log_end_offset() <= 0 {
                    break;
                }
                let info = log.read(future.log_end_offset(), MOVE_CHUNK_BYTES, end, true)?;
                (info.slice, end)
            };
            let Some(slice) = slice else { break };
            let bytes = slice.read_to_vec().map_err(io_err(&mv.future_dir))?;
            let small = bytes.len() < MOVE_CHUNK_BYTES;
            if let Err(e) = future.append_as_follower(&bytes, now()) {
                // Read outside the lock: a truncation since may have rewritten those bytes.
                if lock(&source).truncation_count() != truncations {
                    continue;
                }
                return Err(e);
            }
            mv.copied_end
                .store(future.log_end_offset(), Ordering::Relaxed);
            mv.copied_bytes
                .store(future.size_bytes(), Ordering::Relaxed);
            if small && future.log_end_offset() >= end {
                break;
            }
            throttle(bytes.len() as u64);
        }
        // The rest, and the swap, under the lock: no append in between.
        let mut log = lock(&source);
        if mv.cancelled.load(Ordering::SeqCst) || log.is_deleted() {
            return Ok(());
        }
        resync_copy(tp, &log, &mut future, &mut truncations)?;
        while future.log_end_offset() < log.log_end_offset() {
            let info = log.read(
                future.log_end_offset(),
                MOVE_CHUNK_BYTES,
                log.log_end_offset(),
                true,
            )?;
            let Some(slice) = info.slice else { break };
            let bytes = slice.read_to_vec().map_err(io_err(&mv.future_dir))?;
            future.append_as_follower(&bytes, now())?;
        }
        if future.log_end_offset() != log.log_end_offset() {
            return Err(StorageError::Corrupt {
                path: mv.future_dir.display().to_string(),
                reason: format!(
                    "the copy ends at {} but the log at {}",
                    future.log_end_offset(),
                    log.log_end_offset()
                ),
            });
        }
        if future.log_start_offset() < log.log_start_offset() {
            future.delete_records_before(log.log_start_offset())?;
        }
        if let Some(epoch) = log.latest_epoch() {
            // An epoch begun with no batch yet (a leader elected since the last append).
            if future.latest_epoch() < Some(epoch) {
                future.assign_epoch_start_offset(epoch)?;
            }
        }
        future.flush_all()?;
        let (end, start) = (future.log_end_offset(), future.log_start_offset());
        drop(future);
        let from = self.dir_index(tp);
        let source_dir = self.log_dir(from, tp);
        let dest_dir = self.log_dir(mv.dest, tp);
        // The topic id goes with the log.
        match std::fs::copy(
            source_dir.join(PARTITION_METADATA_FILE),
            mv.future_dir.join(PARTITION_METADATA_FILE),
        ) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(&mv.future_dir)(e)),
        }
        let moved = self.dirs[from].path.join(format!(
            "{}-{}.{:016x}{MOVED_SUFFIX}",
            tp.topic,
            tp.partition,
            std::collections::hash_map::RandomState::new()
                .build_hasher()
                .finish()
        ));
        std::fs::rename(&source_dir, &moved).map_err(io_err(&source_dir))?;
        sync_dir(&self.dirs[from].path)?;
        if let Err(e) = std::fs::rename(&mv.future_dir, &dest_dir)
            .map_err(io_err(&mv.future_dir))
            .and_then(|()| sync_dir(&self.dirs[mv.dest].path))
        {
            // Put the source back: the partition stays where it was.
            std::fs::rename(&moved, &source_dir).map_err(io_err(&moved))?;
            sync_dir(&self.dirs[from].path)?;
            return Err(e);
        }
        let opts = LoadOptions {
            recovery_point: end,
            log_start_offset: Some(start),
            clean_shutdown: true,
        };
        let config = log.config().clone();
        let new = match Log::open(&dest_dir, config, opts) {
            Ok(new) => new,
            Err(e) => {
                // The copy cannot be read back: the source takes its name again.
                let _ = std::fs::rename(&dest_dir, &mv.future_dir);
                std::fs::rename(&moved, &source_dir).map_err(io_err(&moved))?;
                sync_dir(&self.dirs[from].path)?;
                return Err(e);
            }
        };
        let mut old = std::mem::replace(&mut *log, new);
        // The old log's files are gone from under its path: it must not write there again.
        old.mark_deleted();
        drop(old);
        lock(&self.placement).insert(tp.clone(), mv.dest);
        self.forget_checkpoint_entries(from, tp, mv.dest)?;
        drop(log);
        tracing::info!(
            topic = %tp.topic,
            partition = tp.partition,
            from = %self.dirs[from].path.display(),
            to = %self.dirs[mv.dest].path.display(),
            end_offset = end,
            "moved the log to another directory"
        );
        if let Err(e) = std::fs::remove_dir_all(&moved) {
            // Removed at the next start.
            tracing::warn!(dir = %moved.display(), error = %e, "cannot remove a moved log's source");
        }
        self.checkpoint()
    }

    /// After a move from `from` to `to`: the source directory's checkpoint entries for `tp`
    /// go (its recovery point and log start are the open log's from now on); its cleaner
    /// checkpoint goes with it.
    fn forget_checkpoint_entries(
        &self,
        from: usize,
        tp: &TopicPartition,
        to: usize,
    ) -> Result<(), StorageError> {
        let source = &self.dirs[from];
        lock(&source.initial_recovery_points).remove(tp);
        lock(&source.initial_log_starts).remove(tp);
        let hw = lock(&source.high_watermarks).remove(tp);
        if let Some(hw) = hw {
            lock(&self.dirs[to].high_watermarks).insert(tp.clone(), hw);
        }
        let cleaned = lock(&source.cleaner_checkpoints).get(tp).copied();
        if let Some(offset) = cleaned {
            self.remove_cleaner_checkpoint(from, tp)?;
            self.update_cleaner_checkpoint(tp, offset)?;
        }
        Ok(())
    }

    /// The log directories, in `log.dirs` order.
    pub fn dirs(&self) -> Vec<PathBuf> {
        self.dirs.iter().map(|d| d.path.clone()).collect()
    }

    /// The log directory holding the partition (`None` for a partition not on disk).
    pub fn dir_of(&self, tp: &TopicPartition) -> Option<PathBuf> {
        lock(&self.placement)
            .get(tp)
            .map(|&i| self.dirs[i].path.clone())
    }

    /// Takes the directory holding `tp` offline after a storage failure there (an fsync that
    /// failed). Returns the directory and the partitions in it when it was online until now,
    /// `None` otherwise (already offline, or `tp` not on disk).
    pub fn mark_dir_offline(&self, tp: &TopicPartition) -> Option<(PathBuf, Vec<TopicPartition>)> {
        let i = lock(&self.placement).get(tp).copied()?;
        self.fail_dir(i)
    }

    /// Directories a failed checkpoint write took offline since the last call, each with its
    /// partitions (the broker takes them offline too).
    pub fn take_newly_offline(&self) -> Vec<(PathBuf, Vec<TopicPartition>)> {
        std::mem::take(&mut *lock(&self.newly_offline))
    }

    /// A write to directory `i` failed: unless the disk is only full (ENOSPC, EDQUOT: space
    /// freed brings it back), the directory is taken offline, as Kafka treats any I/O error.
    fn note_write_failure(&self, i: usize, e: &StorageError) {
        if e.is_disk_full() {
            return;
        }
        if let Some(offline) = self.fail_dir(i) {
            tracing::error!(dir = %self.dirs[i].path.display(), error = %e, "a checkpoint write failed");
            lock(&self.newly_offline).push(offline);
        }
    }

    /// Takes directory `i` offline: its path and partitions if it was online until now.
    fn fail_dir(&self, i: usize) -> Option<(PathBuf, Vec<TopicPartition>)> {
        if self.dirs[i].offline.swap(true, Ordering::SeqCst) {
            return None;
        }
        // Moves into or out of it are called off.
        for (mtp, m) in lock(&self.moves).iter() {
            if m.dest == i || self.dir_index(mtp) == i {
                m.cancelled.store(true, Ordering::SeqCst);
            }
        }
        let partitions = lock(&self.placement)
            .iter()
            .filter(|(_, &d)| d == i)
            .map(|(tp, _)| tp.clone())
            .collect();
        Some((self.dirs[i].path.clone(), partitions))
    }

    /// Cordons exactly the directories at these indexes (KIP-1066): new partitions go to the
    /// others while one is left.
    pub fn set_cordoned(&self, cordoned: &[usize]) {
        for (i, d) in self.dirs.iter().enumerate() {
            d.cordoned.store(cordoned.contains(&i), Ordering::SeqCst);
        }
    }

    /// Whether directory `i` is cordoned.
    pub fn is_dir_cordoned(&self, i: usize) -> bool {
        self.dirs
            .get(i)
            .is_some_and(|d| d.cordoned.load(Ordering::SeqCst))
    }

    /// The cordoned directories.
    pub fn cordoned_dirs(&self) -> Vec<PathBuf> {
        self.dirs
            .iter()
            .filter(|d| d.cordoned.load(Ordering::SeqCst))
            .map(|d| d.path.clone())
            .collect()
    }

    /// The index of the directory holding the partition (`None` for a partition not on disk).
    pub fn dir_index_of(&self, tp: &TopicPartition) -> Option<usize> {
        lock(&self.placement).get(tp).copied()
    }

    /// Creates the partition, when it is created, in directory `dest` (KIP-858: where the
    /// metadata assigns it), unless it is offline. Nothing for a partition on disk already.
    pub fn prefer_dir(&self, tp: &TopicPartition, dest: usize) {
        if dest < self.dirs.len()
            && !self.dirs[dest].is_offline()
            && !lock(&self.placement).contains_key(tp)
        {
            lock(&self.preferred).insert(tp.clone(), dest);
        }
    }

    /// Takes directory `i` offline (its `meta.properties` could not be read at start).
    pub fn fail_dir_at(&self, i: usize) {
        if i < self.dirs.len() {
            let _ = self.fail_dir(i);
        }
    }

    /// Whether directory `i` is offline.
    pub fn is_dir_offline(&self, i: usize) -> bool {
        self.dirs.get(i).is_some_and(LogDir::is_offline)
    }

    /// The directories a storage failure took offline.
    pub fn offline_dirs(&self) -> Vec<PathBuf> {
        self.dirs
            .iter()
            .filter(|d| d.is_offline())
            .map(|d| d.path.clone())
            .collect()
    }

    /// Whether the previous shutdown was clean, in every directory.
    pub fn had_clean_shutdown(&self) -> bool {
        self.dirs.iter().all(|d| d.had_clean_shutdown)
    }

    /// The broker epoch the previous process left in its clean-shutdown markers: `None` after
    /// an unclean stop, a clean one that had no epoch to write, or directories that disagree
    /// (Kafka's `readBrokerEpochFromCleanShutdownFiles`).
    pub fn previous_broker_epoch(&self) -> Option<i64> {
        let first = self.dirs.first()?.previous_broker_epoch?;
        self.dirs
            .iter()
            .all(|d| d.previous_broker_epoch == Some(first))
            .then_some(first)
    }

    /// The broker epoch a clean shutdown writes into the marker (the broker's registration),
    /// for the next start to present to the controller.
    pub fn set_broker_epoch(&self, epoch: Option<i64>) {
        *lock(&self.broker_epoch) = epoch;
    }

    fn log_dir(&self, dir: usize, tp: &TopicPartition) -> PathBuf {
        self.dirs[dir]
            .path
            .join(format!("{}-{}", tp.topic, tp.partition))
    }

    /// The directory a partition is in, or the one a new partition goes to: the one holding
    /// the fewest partitions, the first of those on a tie.
    fn place(&self, tp: &TopicPartition) -> usize {
        let mut placement = lock(&self.placement);
        if let Some(&i) = placement.get(tp) {
            return i;
        }
        if let Some(i) = lock(&self.preferred).remove(tp) {
            placement.insert(tp.clone(), i);
            return i;
        }
        let mut counts = vec![0usize; self.dirs.len()];
        for &i in placement.values() {
            counts[i] += 1;
        }
        // Offline directories last (with every one offline, the open fails there), then
        // cordoned ones (taken only when every online one is).
        let chosen = (0..self.dirs.len())
            .min_by_key(|&i| {
                let d = &self.dirs[i];
                (
                    d.is_offline(),
                    d.cordoned.load(Ordering::SeqCst),
                    counts[i],
                    i,
                )
            })
            .unwrap_or(0);
        placement.insert(tp.clone(), chosen);
        chosen
    }

    /// The directory of a partition on disk, else the first one (for checkpoint entries of
    /// partitions with no log).
    fn dir_index(&self, tp: &TopicPartition) -> usize {
        lock(&self.placement).get(tp).copied().unwrap_or(0)
    }

    /// Partitions with a directory on disk, in any log directory.
    pub fn existing_partitions(&self) -> Result<Vec<TopicPartition>, StorageError> {
        let mut out = Vec::new();
        for dir in self.dirs.iter().filter(|d| !d.is_offline()) {
            out.extend(dir.partitions()?);
        }
        out.sort();
        Ok(out)
    }

    /// Opens the partition's log, creating its directory if needed; recovers it if the last
    /// shutdown was unclean. Returns the same `Arc` for repeated calls.
    pub fn get_or_create(
        &self,
        tp: &TopicPartition,
        config: LogConfig,
    ) -> Result<Arc<Mutex<Log>>, StorageError> {
        self.open_log(tp, config, true)
    }

    /// [`get_or_create`](Self::get_or_create) without the fsync of the data directory that
    /// makes a new partition directory durable: for creating many partitions at once, followed
    /// by one [`sync_data_dir`](Self::sync_data_dir) (10 000 directory fsyncs take tens of
    /// seconds; one takes milliseconds).
    pub fn get_or_create_unsynced(
        &self,
        tp: &TopicPartition,
        config: LogConfig,
    ) -> Result<Arc<Mutex<Log>>, StorageError> {
        self.open_log(tp, config, false)
    }

    /// Makes the log directories' entries (new partition directories) durable.
    pub fn sync_data_dir(&self) -> Result<(), StorageError> {
        for dir in &self.dirs {
            sync_dir(&dir.path)?;
        }
        Ok(())
    }

    fn open_log(
        &self,
        tp: &TopicPartition,
        config: LogConfig,
        sync_new_dir: bool,
    ) -> Result<Arc<Mutex<Log>>, StorageError> {
        if let Some(log) = lock(&self.logs).get(tp) {
            return Ok(Arc::clone(log));
        }
        // Opened (and recovered) without the map's lock, so several partitions open at once
        // (`num.recovery.threads.per.data.dir`); one partition is opened by one caller at a
        // time (the broker applies one metadata image at a time).
        let i = self.place(tp);
        let parent = &self.dirs[i];
        let dir = self.log_dir(i, tp);
        let existed = dir.exists();
        let opts = LoadOptions {
            recovery_point: lock(&parent.initial_recovery_points)
                .get(tp)
                .copied()
                .unwrap_or(0),
            log_start_offset: lock(&parent.initial_log_starts).get(tp).copied(),
            clean_shutdown: parent.had_clean_shutdown,
        };
        let log = match Log::open(&dir, config, opts) {
            Ok(log) => log,
            Err(e) => {
                if !existed && !dir.exists() {
                    // Not placed after all: the next attempt may choose again.
                    lock(&self.placement).remove(tp);
                }
                return Err(e);
            }
        };
        if !existed && sync_new_dir {
            // Make the new partition directory itself durable.
            sync_dir(&parent.path)?;
        }
        let mut logs = lock(&self.logs);
        if let Some(log) = logs.get(tp) {
            return Ok(Arc::clone(log));
        }
        let log = Arc::new(Mutex::new(log));
        logs.insert(tp.clone(), Arc::clone(&log));
        Ok(log)
    }

    /// The open log, if any.
    pub fn get(&self, tp: &TopicPartition) -> Option<Arc<Mutex<Log>>> {
        lock(&self.logs).get(tp).cloned()
    }

    /// Closes and removes the partition's log and directory; the space is freed at once, even
    /// while other handles to the log's files are still open.
    pub fn delete(&self, tp: &TopicPartition) -> Result<(), StorageError> {
        let Some(doomed) = self.take_out(tp, DELETE_SUFFIX)? else {
            return Ok(());
        };
        tracing::info!(topic = %tp.topic, partition = tp.partition, "deleting log");
        std::fs::remove_dir_all(&doomed).map_err(io_err(&doomed))
    }

    /// The topic id recorded in the partition's directory (`partition.metadata`, Kafka's
    /// text form of the id): `None` when the partition is not on disk or its directory records
    /// none (a log from before gregor recorded them, or a file a crash cut short, which is
    /// logged).
    pub fn recorded_topic_id(&self, tp: &TopicPartition) -> Result<Option<String>, StorageError> {
        let Some(i) = self.dir_index_of(tp) else {
            return Ok(None);
        };
        let path = self.log_dir(i, tp).join(PARTITION_METADATA_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err(&path)(e)),
        };
        let mut version = None;
        let mut topic_id = None;
        for line in text.lines() {
            match line.split_once(':').map(|(k, v)| (k.trim(), v.trim())) {
                Some(("version", v)) => version = Some(v.to_string()),
                Some(("topic_id", v)) if !v.is_empty() => topic_id = Some(v.to_string()),
                _ => {}
            }
        }
        if version.as_deref() != Some("0") || topic_id.is_none() {
            tracing::warn!(path = %path.display(), "partition.metadata unreadable: the topic id is recorded again");
            return Ok(None);
        }
        Ok(topic_id)
    }

    /// Records the partition's topic id in its directory, as Kafka's `partition.metadata`
    /// (`version: 0`, `topic_id: <id>`): written to a temporary file and renamed over, not
    /// fsynced (thousands of partitions are created at once; a file a crash loses or cuts short
    /// reads as none, and the id is recorded again at the next open).
    pub fn record_topic_id(&self, tp: &TopicPartition, topic_id: &str) -> Result<(), StorageError> {
        let Some(i) = self.dir_index_of(tp) else {
            return Ok(());
        };
        let dir = self.log_dir(i, tp);
        let tmp = dir.join(format!("{PARTITION_METADATA_FILE}.tmp"));
        std::fs::write(&tmp, format!("version: 0\ntopic_id: {topic_id}\n"))
            .map_err(io_err(&tmp))?;
        let path = dir.join(PARTITION_METADATA_FILE);
        std::fs::rename(&tmp, &path).map_err(io_err(&path))
    }

    /// Closes the partition's log and moves its directory aside, to
    /// `<topic>-<partition>.<hex>-stray` in the same log directory, where it stays (Kafka's
    /// stray log: a log the metadata does not give this broker is renamed, never deleted, so a
    /// metadata log lost or misplaced costs no data). Returns where it went, `None` when it
    /// was not on disk. A `-stray` directory is never opened as a partition.
    pub fn set_aside(&self, tp: &TopicPartition) -> Result<Option<PathBuf>, StorageError> {
        self.take_out(tp, STRAY_SUFFIX)
    }

    /// Closes the partition's log, forgets it, and renames its directory with `suffix`
    /// (durably): the new path, `None` when it was not on disk.
    fn take_out(&self, tp: &TopicPartition, suffix: &str) -> Result<Option<PathBuf>, StorageError> {
        if let Some(m) = lock(&self.moves).remove(tp) {
            m.cancelled.store(true, Ordering::SeqCst);
        }
        lock(&self.preferred).remove(tp);
        let removed = lock(&self.logs).remove(tp);
        let Some(i) = lock(&self.placement).get(tp).copied() else {
            // Never on disk: nothing else to forget.
            if let Some(log) = removed.as_ref() {
                lock(log).mark_deleted();
            }
            return Ok(None);
        };
        let parent = &self.dirs[i];
        lock(&parent.initial_recovery_points).remove(tp);
        lock(&parent.initial_log_starts).remove(tp);
        lock(&parent.high_watermarks).remove(tp);
        if lock(&parent.cleaner_checkpoints).contains_key(tp) {
            // A topic re-created under the same name starts dirty from its log start.
            self.remove_cleaner_checkpoint(i, tp)?;
        }
        // Hold the log's lock while its directory goes, so no append is half-way through.
        let mut guard = removed.as_ref().map(|l| lock(l));
        if let Some(log) = guard.as_mut() {
            log.mark_deleted();
        }
        let dir = self.log_dir(i, tp);
        if !dir.exists() {
            lock(&self.placement).remove(tp);
            return Ok(None);
        }
        if let Some(log) = guard.as_mut().filter(|_| suffix == DELETE_SUFFIX) {
            // Files still open elsewhere would keep their blocks after the unlink that follows.
            log.release_space();
        }
        let renamed = parent.path.join(capped_dir_name(tp, suffix));
        // Rename first: a crash mid-removal leaves a `-delete` dir that `open` finishes off,
        // never a half-empty partition that would be loaded as a log.
        std::fs::rename(&dir, &renamed).map_err(io_err(&dir))?;
        lock(&self.placement).remove(tp);
        sync_dir(&parent.path)?;
        Ok(Some(renamed))
    }

    /// Writes the recovery-point and log-start-offset checkpoints of all open logs, each
    /// directory's file with its own partitions; a file whose contents would not change is
    /// left alone. Recovery trusts everything below a partition's checkpointed recovery point
    /// (a bad batch there is corruption, kept, not a torn write to cut), so the broker runs
    /// this often: the recovery points only move with fsyncs the group commits already did,
    /// and writing them costs one small file per interval, not one per flush.
    pub fn checkpoint(&self) -> Result<(), StorageError> {
        let logs: Vec<(TopicPartition, Arc<Mutex<Log>>)> = lock(&self.logs)
            .iter()
            .map(|(tp, l)| (tp.clone(), Arc::clone(l)))
            .collect();
        let mut by_dir: Vec<Vec<(TopicPartition, i64, i64)>> = vec![Vec::new(); self.dirs.len()];
        for (tp, log) in logs {
            let i = self.dir_index(&tp);
            let log = lock(&log);
            by_dir[i].push((tp, log.recovery_point(), log.log_start_offset()));
        }
        let mut failed: Vec<(usize, StorageError)> = Vec::new();
        for (index, (dir, open)) in self.dirs.iter().zip(by_dir).enumerate() {
            if dir.is_offline() {
                continue;
            }
            let mut written = lock(&dir.checkpoint_lock);
            let mut recovery_points = lock(&dir.initial_recovery_points).clone();
            let mut log_starts = lock(&dir.initial_log_starts).clone();
            for (tp, recovery_point, log_start) in open {
                recovery_points.insert(tp.clone(), recovery_point);
                log_starts.insert(tp, log_start);
            }
            // One directory's failure does not keep the others' checkpoints from moving.
            if written.recovery_points.as_ref() != Some(&recovery_points) {
                match write_checkpoint(&dir.path.join(RECOVERY_POINT_CHECKPOINT), &recovery_points)
                {
                    Ok(()) => written.recovery_points = Some(recovery_points),
                    Err(e) => failed.push((index, e)),
                }
            }
            if written.log_starts.as_ref() != Some(&log_starts) {
                match write_checkpoint(&dir.path.join(LOG_START_OFFSET_CHECKPOINT), &log_starts) {
                    Ok(()) => written.log_starts = Some(log_starts),
                    Err(e) => failed.push((index, e)),
                }
            }
        }
        self.report_write_failures(failed)
    }

    /// One partition's high watermark in the checkpoints (as read at open, or as last
    /// written by [`checkpoint_high_watermarks`](Self::checkpoint_high_watermarks)).
    pub fn high_watermark(&self, tp: &TopicPartition) -> Option<i64> {
        let i = self.dir_index(tp);
        let own = lock(&self.dirs[i].high_watermarks).get(tp).copied();
        own.or_else(|| {
            self.dirs
                .iter()
                .find_map(|d| lock(&d.high_watermarks).get(tp).copied())
        })
    }

    /// The high watermarks of the `replication-offset-checkpoint` files: as read at open (empty
    /// when there was none, or when it was corrupt: a high watermark is re-learnt from the
    /// leader), then as last written.
    pub fn high_watermarks(&self) -> HashMap<TopicPartition, i64> {
        let mut out = HashMap::new();
        // The first directory's entry wins, as in the lookup of one partition.
        for dir in self.dirs.iter().rev() {
            for (tp, hw) in lock(&dir.high_watermarks).iter() {
                out.insert(tp.clone(), *hw);
            }
        }
        let placement = lock(&self.placement);
        for (tp, &i) in placement.iter() {
            if let Some(hw) = lock(&self.dirs[i].high_watermarks).get(tp) {
                out.insert(tp.clone(), *hw);
            }
        }
        out
    }

    /// Writes `replication-offset-checkpoint` (Kafka's format: version 0, count, `topic
    /// partition offset` lines; atomic) in each directory with exactly its partitions of
    /// these; unchanged contents are not rewritten. The replication layer owns the high
    /// watermark, so it passes every partition's (the broker does, with its recovery-point
    /// checkpoints and at shutdown).
    pub fn checkpoint_high_watermarks(
        &self,
        high_watermarks: &HashMap<TopicPartition, i64>,
    ) -> Result<(), StorageError> {
        let mut by_dir: Vec<BTreeMap<TopicPartition, i64>> = vec![BTreeMap::new(); self.dirs.len()];
        for (tp, hw) in high_watermarks {
            by_dir[self.dir_index(tp)].insert(tp.clone(), *hw);
        }
        let mut failed: Vec<(usize, StorageError)> = Vec::new();
        for (index, (dir, next)) in self.dirs.iter().zip(by_dir).enumerate() {
            if dir.is_offline() {
                continue;
            }
            let _writer = lock(&dir.checkpoint_lock);
            let mut current = lock(&dir.high_watermarks);
            let path = dir.path.join(REPLICATION_OFFSET_CHECKPOINT);
            if *current == next && path.exists() {
                continue;
            }
            match write_checkpoint(&path, &next) {
                Ok(()) => *current = next,
                Err(e) => failed.push((index, e)),
            }
        }
        self.report_write_failures(failed)
    }

    /// After checkpoint writes: a directory whose write failed (for another reason than a
    /// full disk) goes offline, and the call fails with the first error.
    fn report_write_failures(
        &self,
        failed: Vec<(usize, StorageError)>,
    ) -> Result<(), StorageError> {
        for (i, e) in &failed {
            self.note_write_failure(*i, e);
        }
        failed.into_iter().next().map_or(Ok(()), |(_, e)| Err(e))
    }

    /// Where the cleaner's dirty section of `tp` starts, as last checkpointed.
    pub fn cleaner_checkpoint(&self, tp: &TopicPartition) -> Option<i64> {
        let i = self.dir_index(tp);
        lock(&self.dirs[i].cleaner_checkpoints).get(tp).copied()
    }

    /// Records that `tp` is clean below `offset` in its directory's `cleaner-offset-checkpoint`
    /// (atomic).
    pub fn update_cleaner_checkpoint(
        &self,
        tp: &TopicPartition,
        offset: i64,
    ) -> Result<(), StorageError> {
        let dir = &self.dirs[self.dir_index(tp)];
        let _writer = lock(&dir.checkpoint_lock);
        let mut entries = lock(&dir.cleaner_checkpoints);
        entries.insert(tp.clone(), offset);
        dir.write_cleaner_checkpoint(&entries)
    }

    fn remove_cleaner_checkpoint(&self, i: usize, tp: &TopicPartition) -> Result<(), StorageError> {
        let dir = &self.dirs[i];
        let _writer = lock(&dir.checkpoint_lock);
        let mut entries = lock(&dir.cleaner_checkpoints);
        entries.remove(tp);
        dir.write_cleaner_checkpoint(&entries)
    }

    /// Runs retention on every open log.
    pub fn apply_retention(&self, now_ms: i64) -> Result<usize, StorageError> {
        let logs: Vec<Arc<Mutex<Log>>> = lock(&self.logs).values().cloned().collect();
        let mut deleted = 0;
        for log in logs {
            deleted += lock(&log).apply_retention(now_ms)?;
        }
        Ok(deleted)
    }

    /// Flushes every log, writes checkpoints and the clean-shutdown markers. A directory
    /// opened after an unclean stop only gets its marker if every partition in it was opened
    /// (and so recovered) by this process.
    ///
    /// A log that fails to flush does not stop the others from being flushed; the checkpoints
    /// are still written (a failed flush did not move its log's recovery point), but no marker
    /// is, and the first error is returned: the next start recovers, and the caller must not
    /// report a clean stop.
    pub fn shutdown(&self) -> Result<(), StorageError> {
        self.shutdown_with(1)
    }

    /// [`shutdown`](Self::shutdown), the logs flushed by `threads_per_dir` threads for each
    /// online log directory (`num.recovery.threads.per.data.dir`).
    pub fn shutdown_with(&self, threads_per_dir: usize) -> Result<(), StorageError> {
        // A move's copy is left for the next start to remove; the source stays the log.
        for m in lock(&self.moves).values() {
            m.cancelled.store(true, Ordering::SeqCst);
        }
        let logs: Vec<Arc<Mutex<Log>>> = lock(&self.logs)
            .iter()
            .filter(|(tp, _)| !self.dirs[self.dir_index(tp)].is_offline())
            .map(|(_, l)| Arc::clone(l))
            .collect();
        let online = self.dirs.iter().filter(|d| !d.is_offline()).count();
        let threads = threads_per_dir.max(1).saturating_mul(online.max(1));
        let flushed = crate::parallel::run(logs, threads, |log| lock(&log).flush_all());
        let mut first_error = None;
        for e in flushed.into_iter().filter_map(Result::err) {
            tracing::error!(error = %e, "final flush of a log failed");
            first_error.get_or_insert(e);
        }
        if let Err(e) = self.checkpoint() {
            tracing::error!(error = %e, "final checkpoint failed");
            first_error.get_or_insert(e);
        }
        if let Some(e) = first_error {
            return Err(e);
        }
        let content = match *lock(&self.broker_epoch) {
            Some(epoch) => format!("{{\"version\":0,\"brokerEpoch\":{epoch}}}"),
            None => String::new(),
        };
        for dir in self.dirs.iter().filter(|d| !d.is_offline()) {
            if !dir.had_clean_shutdown {
                // Logs are opened lazily: one never opened since an unclean start was never
                // recovered, and a marker now would make the next start trust its torn tail.
                let open = lock(&self.logs);
                let unrecovered = dir
                    .partitions()?
                    .into_iter()
                    .filter(|tp| !open.contains_key(tp))
                    .count();
                if unrecovered > 0 {
                    tracing::warn!(
                        dir = %dir.path.display(),
                        partitions = unrecovered,
                        "not writing the clean-shutdown marker: some logs were never recovered"
                    );
                    continue;
                }
            }
            let marker = dir.path.join(CLEAN_SHUTDOWN_FILE);
            std::fs::File::create(&marker)
                .and_then(|mut f| {
                    std::io::Write::write_all(&mut f, content.as_bytes())?;
                    f.sync_all()
                })
                .map_err(io_err(&marker))?;
            sync_dir(&dir.path)?;
            tracing::info!(dir = %dir.path.display(), "log directory shut down cleanly");
        }
        // The others are marked clean; an offline one is recovered at the next start, and the
        // stop is not a clean one.
        match self.dirs.iter().find(|d| d.is_offline()) {
            Some(d) => Err(offline_error(&d.path)),
            None => Ok(()),
        }
    }
}

/// The error of an operation on a directory a storage failure took offline.
fn offline_error(path: &Path) -> StorageError {
    StorageError::Io {
        path: path.display().to_string(),
        source: std::io::Error::other(format!(
            "the log directory {} is offline after a storage failure",
            path.display()
        )),
    }
}

/// Before a move reads its source again (under the source's lock): a truncation since the last
/// read may have taken back what was copied, so the copy starts again; a log start that passed
/// the copy's end (retention, DeleteRecords) restarts it there.
fn resync_copy(
    tp: &TopicPartition,
    log: &Log,
    future: &mut Log,
    seen: &mut u64,
) -> Result<(), StorageError> {
    if log.truncation_count() != *seen {
        *seen = log.truncation_count();
        tracing::info!(
            topic = %tp.topic,
            partition = tp.partition,
            "the log was truncated during its move: copying it again"
        );
        future.truncate_fully_and_start_at(log.log_start_offset())?;
    }
    if future.log_end_offset() < log.log_start_offset() {
        future.truncate_fully_and_start_at(log.log_start_offset())?;
    }
    Ok(())
}

/// Removes the copies of moves a stop cut short (`-future`) and lists the sources of moves
/// that reached their swap (`-moved`): (directory index, partition, path).
fn finish_interrupted_moves(
    dirs: &[LogDir],
) -> Result<Vec<(usize, TopicPartition, PathBuf)>, StorageError> {
    let mut moved = Vec::new();
    for (i, dir) in dirs.iter().enumerate().filter(|(_, d)| !d.is_offline()) {
        for entry in std::fs::read_dir(&dir.path).map_err(io_err(&dir.path))? {
            let entry = entry.map_err(io_err(&dir.path))?;
            let name = entry.file_name();
            let Some(name) = name.to_str() else { continue };
            let path = entry.path();
            if name.ends_with(FUTURE_SUFFIX) {
                tracing::info!(dir = %path.display(), "removing the copy of a move a stop cut short");
                std::fs::remove_dir_all(&path).map_err(io_err(&path))?;
            } else if let Some(tp) = name
                .strip_suffix(MOVED_SUFFIX)
                .and_then(|n| n.rsplit_once('.'))
                .and_then(|(n, _)| parse_log_dir_name(n))
            {
                moved.push((i, tp, path));
            }
        }
    }
    Ok(moved)
}

/// The broker epoch of a clean-shutdown marker, Kafka's `{"version":0,"brokerEpoch":N}`
/// (whitespace allowed between the tokens); anything else proves nothing.
fn parse_broker_epoch(content: &str) -> Option<i64> {
    let compact: String = content.chars().filter(|c| !c.is_whitespace()).collect();
    let inner = compact.strip_prefix('{')?.strip_suffix('}')?;
    let (mut version, mut epoch) = (None, None);
    for field in inner.split(',') {
        match field.split_once(':')? {
            ("\"version\"", v) => version = v.parse::<i32>().ok(),
            ("\"brokerEpoch\"", v) => epoch = v.parse::<i64>().ok(),
            _ => {}
        }
    }
    (version == Some(0)).then_some(epoch?).filter(|&e| e >= 0)
}

/// `<topic>-<partition>` → `TopicPartition`; topics may contain `-`, so split at the last one.
/// Directories being deleted and anything else that does not parse are skipped.
/// The most bytes a directory name may have (`NAME_MAX` on Linux).
const NAME_MAX: usize = 255;

/// `<topic>-<partition>.<unique>{suffix}`, the topic cut short as needed to fit a directory
/// name (Kafka's `logDirNameWithSuffixCappedLength`): a topic of 249 characters, the longest
/// Kafka allows, with the suffix would not fit, and its deletion would fail.
fn capped_dir_name(tp: &TopicPartition, suffix: &str) -> String {
    let unique = std::collections::hash_map::RandomState::new()
        .build_hasher()
        .finish();
    let tail = format!("-{}.{unique:016x}{suffix}", tp.partition);
    let mut keep = tp.topic.len().min(NAME_MAX.saturating_sub(tail.len()));
    while !tp.topic.is_char_boundary(keep) {
        keep -= 1;
    }
    format!("{}{tail}", &tp.topic[..keep])
}

fn parse_log_dir_name(name: &str) -> Option<TopicPartition> {
    if name.ends_with(DELETE_SUFFIX) || name.starts_with('.') {
        return None;
    }
    let (topic, partition) = name.rsplit_once('-')?;
    if topic.is_empty() || !partition.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(TopicPartition {
        topic: topic.to_string(),
        partition: partition.parse().ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dir_names() {
        let tp = parse_log_dir_name("my-topic-12").unwrap();
        assert_eq!((tp.topic.as_str(), tp.partition), ("my-topic", 12));
        assert!(parse_log_dir_name("orders-0.abcdef-delete").is_none());
        assert!(parse_log_dir_name("orders-0.abcdef-stray").is_none());
    }

    #[test]
    fn renamed_directories_fit_a_directory_name() {
        let short = TopicPartition {
            topic: "orders".into(),
            partition: 3,
        };
        let name = capped_dir_name(&short, DELETE_SUFFIX);
        assert!(
            name.starts_with("orders-3.") && name.ends_with("-delete"),
            "{name}"
        );
        assert_eq!(name.len(), "orders-3.".len() + 16 + "-delete".len());
        let long = TopicPartition {
            topic: "t".repeat(249),
            partition: 2_147_483_647,
        };
        for suffix in [DELETE_SUFFIX, STRAY_SUFFIX] {
            let name = capped_dir_name(&long, suffix);
            assert_eq!(name.len(), NAME_MAX, "{name}");
            assert!(name.ends_with(suffix) && name.starts_with("ttt"), "{name}");
            assert!(parse_log_dir_name(&name).is_none());
        }
        assert!(parse_log_dir_name("orders").is_none());
        assert!(parse_log_dir_name("orders-x").is_none());
        assert!(parse_log_dir_name("-3").is_none());
    }
}
