//! The leader-epoch cache of one partition and its checkpoint file (Kafka's
//! `LeaderEpochFileCache` over `LeaderEpochCheckpointFile`).
//!
//! The cache says at which offset each leader epoch's records start. The rules by which it
//! changes and is read live, I/O-free, in `gregor_replication::epoch`; this module keeps the
//! entries in memory and on disk, and rewrites the file whenever they change:
//!
//! ```text
//! <data>/<topic>-<partition>/leader-epoch-checkpoint
//! 0          <- version
//! 2          <- number of entries
//! 0 0        <- epoch start_offset
//! 3 1200
//! ```
//!
//! Written atomically (a temporary file, fsync, rename over the old one, fsync the directory),
//! and the in-memory entries change only once the file holds them, so the two never disagree.
//! A missing file is an empty cache; a corrupt one is an error naming the file (Kafka's
//! `CheckpointFile`), never a silently shortened cache.
//!
//! Each [`crate::Log`] owns one: appends assign new epochs (a leader's from its own epoch, a
//! follower's from each batch's `partitionLeaderEpoch`), truncation and log-start moves cut it,
//! and the log loader rebuilds it from the batches when the file is missing.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use gregor_replication::epoch::{self, EpochEndOffset, EpochEntry};

use crate::checkpoint::sync_dir;
use crate::{io_err, StorageError};

/// The checkpoint file's name in the partition directory (Kafka's).
pub const LEADER_EPOCH_CHECKPOINT: &str = "leader-epoch-checkpoint";

const VERSION: u32 = 0;

/// A partition's leader epochs, each with the offset its records start at, kept in its
/// checkpoint file.
#[derive(Debug)]
pub struct LeaderEpochFileCache {
    /// `<partition dir>/leader-epoch-checkpoint`.
    path: PathBuf,
    /// Sorted by epoch, start offsets strictly increasing; always what the file holds.
    entries: Vec<EpochEntry>,
}

impl LeaderEpochFileCache {
    /// Reads the cache of the partition in `dir`; empty when the file does not exist.
    pub fn open(dir: &Path) -> Result<Self, StorageError> {
        let path = dir.join(LEADER_EPOCH_CHECKPOINT);
        let entries = match std::fs::read(&path) {
            Ok(bytes) => std::str::from_utf8(&bytes)
                .map_err(|_| "not UTF-8 text".to_string())
                .and_then(parse)
                .map_err(|reason| StorageError::Corrupt {
                    path: path.display().to_string(),
                    reason,
                })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(io_err(&path)(e)),
        };
        Ok(LeaderEpochFileCache { path, entries })
    }

    /// An empty cache for the partition in `dir`, whatever its file holds (the loader, when it
    /// rebuilds the cache from the log's batches). The file is written at the first change.
    pub(crate) fn empty(dir: &Path) -> Self {
        LeaderEpochFileCache {
            path: dir.join(LEADER_EPOCH_CHECKPOINT),
            entries: Vec::new(),
        }
    }

    /// Replaces every entry (persisted first, when they differ): the loader's rebuilt cache.
    pub(crate) fn set_entries(&mut self, entries: Vec<EpochEntry>) -> Result<(), StorageError> {
        self.replace(entries)
    }

    /// Drops every entry (Kafka's `clearAndFlush`): the log was emptied and restarted.
    pub fn clear(&mut self) -> Result<(), StorageError> {
        self.replace(Vec::new())
    }

    /// The checkpoint file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Records that `epoch` starts at `start_offset` (Kafka's `assign`); returns whether the
    /// cache changed (and so the file was rewritten).
    pub fn assign(&mut self, epoch: i32, start_offset: i64) -> Result<bool, StorageError> {
        let mut next = self.entries.clone();
        if !epoch::assign(&mut next, epoch, start_offset) {
            return Ok(false);
        }
        self.replace(next)?;
        Ok(true)
    }

    /// The log was truncated to end at `end_offset`: epochs starting at or after it go.
    pub fn truncate_from_end(&mut self, end_offset: i64) -> Result<(), StorageError> {
        let mut next = self.entries.clone();
        epoch::truncate_from_end(&mut next, end_offset);
        self.replace(next)
    }

    /// The log now starts at `start_offset`: the entries at or before it collapse into one
    /// starting there.
    pub fn truncate_from_start(&mut self, start_offset: i64) -> Result<(), StorageError> {
        let mut next = self.entries.clone();
        epoch::truncate_from_start(&mut next, start_offset);
        self.replace(next)
    }

    /// Where `requested_epoch` ends in a log ending at `log_end_offset` (the answer to
    /// OffsetForLeaderEpoch).
    pub fn end_offset_for(&self, requested_epoch: i32, log_end_offset: i64) -> EpochEndOffset {
        epoch::end_offset_for(&self.entries, requested_epoch, log_end_offset)
    }

    /// The epoch the record at `offset` was written in, if the cache reaches back to it.
    pub fn epoch_for_offset(&self, offset: i64) -> Option<i32> {
        epoch::epoch_for_offset(&self.entries, offset)
    }

    /// The newest epoch, if any.
    pub fn latest_epoch(&self) -> Option<i32> {
        epoch::latest_epoch(&self.entries)
    }

    /// The entries, oldest first.
    pub fn epoch_entries(&self) -> &[EpochEntry] {
        &self.entries
    }

    /// Persists `next` if it differs, then adopts it.
    fn replace(&mut self, next: Vec<EpochEntry>) -> Result<(), StorageError> {
        if next == self.entries {
            return Ok(());
        }
        write(&self.path, &next)?;
        self.entries = next;
        Ok(())
    }
}

/// Kafka's text format, read strictly: a version line `0`, a count line, then exactly that
/// many `epoch start_offset` lines, epochs and offsets non-negative and strictly increasing.
fn parse(text: &str) -> Result<Vec<EpochEntry>, String> {
    let mut lines = text.lines();
    let version: u32 = lines
        .next()
        .and_then(|l| l.trim().parse().ok())
        .ok_or("missing or malformed version line")?;
    if version != VERSION {
        return Err(format!("unsupported checkpoint version {version}"));
    }
    let count: usize = lines
        .next()
        .and_then(|l| l.trim().parse().ok())
        .ok_or("missing or malformed entry count")?;
    let mut entries: Vec<EpochEntry> = Vec::new();
    for line in lines {
        let mut parts = line.split_whitespace();
        let (Some(epoch), Some(offset), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(format!("malformed entry line {line:?}"));
        };
        let (Ok(epoch), Ok(start_offset)) = (epoch.parse::<i32>(), offset.parse::<i64>()) else {
            return Err(format!("malformed entry line {line:?}"));
        };
        if epoch < 0 || start_offset < 0 {
            return Err(format!("negative epoch or offset in line {line:?}"));
        }
        if let Some(prev) = entries.last() {
            if epoch <= prev.epoch || start_offset <= prev.start_offset {
                return Err(format!(
                    "entry {line:?} does not follow {} {}: epochs and offsets must increase",
                    prev.epoch, prev.start_offset
                ));
            }
        }
        entries.push(EpochEntry {
            epoch,
            start_offset,
        });
    }
    if entries.len() != count {
        return Err(format!("expected {count} entries, found {}", entries.len()));
    }
    Ok(entries)
}

/// Writes the checkpoint atomically.
fn write(path: &Path, entries: &[EpochEntry]) -> Result<(), StorageError> {
    let mut text = format!("{VERSION}\n{}\n", entries.len());
    for e in entries {
        text.push_str(&format!("{} {}\n", e.epoch, e.start_offset));
    }
    let tmp = path.with_extension("tmp");
    let mut f = File::create(&tmp).map_err(io_err(&tmp))?;
    f.write_all(text.as_bytes()).map_err(io_err(&tmp))?;
    f.sync_all().map_err(io_err(&tmp))?;
    drop(f);
    std::fs::rename(&tmp, path).map_err(io_err(path))?;
    if let Some(dir) = path.parent() {
        sync_dir(dir)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn entry(epoch: i32, start_offset: i64) -> EpochEntry {
        EpochEntry {
            epoch,
            start_offset,
        }
    }

    fn reopen(cache: &LeaderEpochFileCache) -> Vec<EpochEntry> {
        let dir = cache.path().parent().expect("the file is in a directory");
        LeaderEpochFileCache::open(dir)
            .expect("reopen")
            .epoch_entries()
            .to_vec()
    }

    #[test]
    fn missing_file_is_an_empty_cache() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cache = LeaderEpochFileCache::open(dir.path()).expect("open");
        assert!(cache.epoch_entries().is_empty());
        assert_eq!(cache.latest_epoch(), None);
    }

    #[test]
    fn round_trip_in_kafka_format() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut cache = LeaderEpochFileCache::open(dir.path()).expect("open");
        assert!(cache.assign(0, 0).expect("assign"));
        assert!(cache.assign(3, 1200).expect("assign"));
        let text = std::fs::read_to_string(dir.path().join(LEADER_EPOCH_CHECKPOINT))
            .expect("read the file");
        assert_eq!(text, "0\n2\n0 0\n3 1200\n");
        assert_eq!(reopen(&cache), vec![entry(0, 0), entry(3, 1200)]);
        assert!(!dir.path().join("leader-epoch-checkpoint.tmp").exists());
    }

    #[test]
    fn reopen_after_each_mutation_equals_memory() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut cache = LeaderEpochFileCache::open(dir.path()).expect("open");
        cache.assign(1, 10).expect("assign");
        assert_eq!(reopen(&cache), cache.epoch_entries());
        cache.assign(2, 20).expect("assign");
        assert_eq!(reopen(&cache), cache.epoch_entries());
        cache.assign(4, 40).expect("assign");
        assert_eq!(reopen(&cache), cache.epoch_entries());
        cache.truncate_from_end(35).expect("truncate_from_end");
        assert_eq!(reopen(&cache), vec![entry(1, 10), entry(2, 20)]);
        cache.truncate_from_start(15).expect("truncate_from_start");
        assert_eq!(reopen(&cache), vec![entry(1, 15), entry(2, 20)]);
        assert_eq!(cache.latest_epoch(), Some(2));
        assert_eq!(
            cache.end_offset_for(1, 50),
            EpochEndOffset {
                leader_epoch: 1,
                end_offset: 20
            }
        );
        cache.truncate_from_end(0).expect("truncate_from_end");
        assert_eq!(reopen(&cache), Vec::<EpochEntry>::new());
    }

    #[test]
    fn unchanged_cache_is_not_rewritten() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join(LEADER_EPOCH_CHECKPOINT);
        let mut cache = LeaderEpochFileCache::open(dir.path()).expect("open");
        cache.truncate_from_end(10).expect("truncate_from_end");
        cache.truncate_from_start(10).expect("truncate_from_start");
        assert!(!file.exists(), "no change, no file");
        cache.assign(1, 5).expect("assign");
        std::fs::remove_file(&file).expect("remove");
        // The latest epoch again at a later offset, and truncations that drop nothing.
        assert!(!cache.assign(1, 9).expect("assign"));
        cache.truncate_from_end(100).expect("truncate_from_end");
        cache.truncate_from_start(2).expect("truncate_from_start");
        assert!(!file.exists(), "nothing changed, so nothing was written");
    }

    #[test]
    fn failed_write_leaves_the_cache_unchanged() {
        let dir = tempfile::tempdir().expect("tempdir");
        let part = dir.path().join("orders-0");
        std::fs::create_dir(&part).expect("mkdir");
        let mut cache = LeaderEpochFileCache::open(&part).expect("open");
        cache.assign(1, 10).expect("assign");
        std::fs::remove_dir_all(&part).expect("remove the partition directory");
        assert!(matches!(cache.assign(2, 20), Err(StorageError::Io { .. })));
        assert!(cache.truncate_from_end(0).is_err());
        assert_eq!(cache.epoch_entries(), [entry(1, 10)]);
        assert_eq!(cache.latest_epoch(), Some(1));
    }

    #[test]
    fn corrupt_files_are_errors_naming_the_file() {
        let cases = [
            "",
            "1\n0\n",
            "x\n0\n",
            "0\n",
            "0\nx\n",
            "0\n2\n0 0\n",
            "0\n1\n0 0\n1 5\n",
            "0\n1\n0\n",
            "0\n1\n0 0 0\n",
            "0\n1\na 0\n",
            "0\n1\n0 b\n",
            "0\n1\n-1 0\n",
            "0\n1\n0 -5\n",
            "0\n2\n1 0\n1 5\n",
            "0\n2\n2 0\n1 5\n",
            "0\n2\n1 5\n2 5\n",
            "0\n2\n1 5\n2 4\n",
        ];
        for text in cases {
            let dir = tempfile::tempdir().expect("tempdir");
            std::fs::write(dir.path().join(LEADER_EPOCH_CHECKPOINT), text).expect("write");
            match LeaderEpochFileCache::open(dir.path()) {
                Err(StorageError::Corrupt { path, .. }) => {
                    assert!(path.ends_with(LEADER_EPOCH_CHECKPOINT), "{text:?}: {path}")
                }
                other => panic!("{text:?} gave {other:?}"),
            }
        }
    }

    #[test]
    fn non_utf8_file_is_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(
            dir.path().join(LEADER_EPOCH_CHECKPOINT),
            [0xff, 0xfe, b'\n'],
        )
        .expect("write");
        assert!(matches!(
            LeaderEpochFileCache::open(dir.path()),
            Err(StorageError::Corrupt { .. })
        ));
    }

    #[derive(Debug, Clone)]
    enum Op {
        Assign(i32, i64),
        TruncateFromEnd(i64),
        TruncateFromStart(i64),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (-1i32..12, -1i64..60).prop_map(|(e, o)| Op::Assign(e, o)),
            1 => (-1i64..60).prop_map(Op::TruncateFromEnd),
            1 => (-1i64..60).prop_map(Op::TruncateFromStart),
        ]
    }

    /// Text that is mostly shaped like a checkpoint, so parsing gets past the first lines.
    fn checkpoint_like() -> impl Strategy<Value = String> {
        (
            prop_oneof![Just("0".to_string()), "[0-9a-z -]{0,3}"],
            prop_oneof![(0usize..5).prop_map(|n| n.to_string()), "[0-9a-z -]{0,3}"],
            prop::collection::vec(
                prop_oneof![
                    (-2i32..6, -2i64..6).prop_map(|(e, o)| format!("{e} {o}")),
                    "[0-9a-z -]{0,6}",
                ],
                0..6,
            ),
        )
            .prop_map(|(v, c, lines)| {
                let mut text = format!("{v}\n{c}\n");
                for l in lines {
                    text.push_str(&l);
                    text.push('\n');
                }
                text
            })
    }

    fn well_formed(entries: &[EpochEntry]) -> bool {
        entries.iter().all(|e| e.epoch >= 0 && e.start_offset >= 0)
            && entries
                .windows(2)
                .all(|w| w[0].epoch < w[1].epoch && w[0].start_offset < w[1].start_offset)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// Any sequence of assign/truncate calls leaves the cache, and the cache reopened from
        /// its file after every call, equal to the same calls applied to a plain Vec with the
        /// replication crate's rules.
        #[test]
        fn matches_the_rules_on_a_vec_and_survives_reopen(ops in prop::collection::vec(op(), 0..30)) {
            let dir = tempfile::tempdir().expect("tempdir");
            let mut cache = LeaderEpochFileCache::open(dir.path()).expect("open");
            let mut model: Vec<EpochEntry> = Vec::new();
            for op in ops {
                match op {
                    Op::Assign(e, o) => {
                        let changed = epoch::assign(&mut model, e, o);
                        prop_assert_eq!(cache.assign(e, o).expect("assign"), changed);
                    }
                    Op::TruncateFromEnd(o) => {
                        epoch::truncate_from_end(&mut model, o);
                        cache.truncate_from_end(o).expect("truncate_from_end");
                    }
                    Op::TruncateFromStart(o) => {
                        epoch::truncate_from_start(&mut model, o);
                        cache.truncate_from_start(o).expect("truncate_from_start");
                    }
                }
                prop_assert_eq!(cache.epoch_entries(), model.as_slice());
                prop_assert_eq!(reopen(&cache), model.clone());
                prop_assert_eq!(cache.latest_epoch(), epoch::latest_epoch(&model));
                for requested in -1..13 {
                    prop_assert_eq!(
                        cache.end_offset_for(requested, 70),
                        epoch::end_offset_for(&model, requested, 70)
                    );
                }
            }
        }

        /// Random bytes never panic: the file opens to a well-formed cache or is an error.
        #[test]
        fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..64)) {
            let dir = tempfile::tempdir().expect("tempdir");
            std::fs::write(dir.path().join(LEADER_EPOCH_CHECKPOINT), &bytes).expect("write");
            if let Ok(cache) = LeaderEpochFileCache::open(dir.path()) {
                prop_assert!(well_formed(cache.epoch_entries()));
            }
        }

        /// Checkpoint-shaped text: whatever opens is well formed and what the file says, and
        /// writing it back gives the same text.
        #[test]
        fn checkpoint_like_text_opens_only_when_valid(text in checkpoint_like()) {
            let dir = tempfile::tempdir().expect("tempdir");
            let file = dir.path().join(LEADER_EPOCH_CHECKPOINT);
            std::fs::write(&file, &text).expect("write");
            match LeaderEpochFileCache::open(dir.path()) {
                Ok(cache) => {
                    prop_assert!(well_formed(cache.epoch_entries()));
                    let out = dir.path().join("again");
                    write(&out, cache.epoch_entries()).expect("write back");
                    let again = std::fs::read_to_string(&out).expect("read back");
                    prop_assert_eq!(parse(&again), Ok(cache.epoch_entries().to_vec()));
                }
                Err(StorageError::Corrupt { path, .. }) => {
                    prop_assert_eq!(path, file.display().to_string());
                }
                Err(other) => prop_assert!(false, "unexpected error {other:?}"),
            }
        }
    }
}
