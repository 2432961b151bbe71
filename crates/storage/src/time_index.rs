//! `TimeIndex`: the sparse `.timeindex` file of a segment, Kafka's on-disk format.
//!
//! ```text
//! entry (12 bytes, big-endian): timestamp i64 | relative offset u32
//! ```
//!
//! An entry `(t, o)` says: the largest timestamp among records at offsets `<= base + o` is `t`.
//! Timestamps are strictly increasing (an entry is only added when the segment's max timestamp
//! grew), so a ListOffsets-by-time lookup can binary search for where to start scanning.
//! Like the offset index, entries live in memory and reach the file through [`IndexFile`].

use std::path::Path;

use crate::index_file::{IndexEntry, IndexFile};
use crate::StorageError;

/// `(timestamp, relative offset)`: timestamps strictly increasing, offsets not decreasing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TimeEntry {
    timestamp: i64,
    rel: u32,
}

impl IndexEntry for TimeEntry {
    const LEN: usize = 12;
    fn encode(&self, buf: &mut [u8]) {
        buf[..8].copy_from_slice(&self.timestamp.to_be_bytes());
        buf[8..].copy_from_slice(&self.rel.to_be_bytes());
    }
    fn decode(buf: &[u8]) -> Self {
        let mut t = [0u8; 8];
        t.copy_from_slice(&buf[..8]);
        TimeEntry {
            timestamp: i64::from_be_bytes(t),
            rel: u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]),
        }
    }
    fn follows(&self, prev: &Self) -> bool {
        self.timestamp > prev.timestamp && self.rel >= prev.rel
    }
}

/// A segment's time index.
#[derive(Debug)]
pub(crate) struct TimeIndex {
    file: IndexFile<TimeEntry>,
    base_offset: i64,
}

impl TimeIndex {
    /// Creates (or empties) the index file.
    pub(crate) fn create(
        path: &Path,
        base_offset: i64,
        max_index_bytes: u32,
    ) -> Result<TimeIndex, StorageError> {
        Ok(TimeIndex {
            file: IndexFile::create(path, max_index_bytes)?,
            base_offset,
        })
    }

    /// Loads an existing index; `Ok(None)` when missing or failing the sanity checks.
    pub(crate) fn load(
        path: &Path,
        base_offset: i64,
        max_index_bytes: u32,
    ) -> Result<Option<TimeIndex>, StorageError> {
        let file = IndexFile::load(path, max_index_bytes, |_: &TimeEntry| true)?;
        Ok(file.map(|file| TimeIndex { file, base_offset }))
    }

    /// Adds `(timestamp, offset)` if the timestamp is newer than the last entry's.
    /// `skip_full_check` lets the final entry of a rolled segment in even when the index is full.
    pub(crate) fn maybe_append(&mut self, timestamp: i64, offset: i64, skip_full_check: bool) {
        if timestamp < 0 || (!skip_full_check && self.is_full()) {
            return;
        }
        let Ok(rel) = u32::try_from(offset - self.base_offset) else {
            return;
        };
        self.file.push(TimeEntry { timestamp, rel });
    }

    /// Where a search for the first record with timestamp `>= timestamp` may start: the offset of
    /// the greatest entry whose timestamp is strictly below it (every record at or below that
    /// offset is older than `timestamp`), or the segment's base offset.
    pub(crate) fn lookup_before(&self, timestamp: i64) -> i64 {
        let entries = self.file.entries();
        match entries.partition_point(|e| e.timestamp < timestamp) {
            0 => self.base_offset,
            n => self.base_offset + i64::from(entries[n - 1].rel),
        }
    }

    /// Last entry as `(timestamp, offset)`.
    pub(crate) fn last_entry(&self) -> Option<(i64, i64)> {
        self.file
            .entries()
            .last()
            .map(|e| (e.timestamp, self.base_offset + i64::from(e.rel)))
    }

    /// True when no more entries fit in `segment.index.bytes`.
    pub(crate) fn is_full(&self) -> bool {
        self.file.is_full()
    }

    /// Entries not written to the file yet.
    #[cfg(test)]
    pub(crate) fn unpersisted(&self) -> usize {
        self.file.unpersisted()
    }

    /// Drops entries for offsets `>= offset`.
    pub(crate) fn truncate_to_offset(&mut self, offset: i64) -> Result<(), StorageError> {
        let keep = self
            .file
            .entries()
            .partition_point(|e| self.base_offset + i64::from(e.rel) < offset);
        self.file.truncate(keep)
    }

    /// Writes entries the file does not have yet; returns whether anything was written.
    pub(crate) fn persist(&mut self) -> Result<bool, StorageError> {
        self.file.persist()
    }

    /// Path of the file.
    pub(crate) fn path(&self) -> &Path {
        self.file.path()
    }

    /// See `IndexFile::set_path`.
    pub(crate) fn set_path(&mut self, path: std::path::PathBuf) {
        self.file.set_path(path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_and_reload() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.timeindex");
        let mut idx = TimeIndex::create(&path, 10, 1200).unwrap();
        assert_eq!(idx.lookup_before(5), 10);
        idx.maybe_append(100, 12, false);
        idx.maybe_append(100, 14, false); // same timestamp: skipped
        idx.maybe_append(200, 15, false);
        idx.maybe_append(-1, 16, false); // no timestamp: skipped
        assert_eq!(idx.lookup_before(100), 10);
        assert_eq!(idx.lookup_before(101), 12);
        assert_eq!(idx.lookup_before(1000), 15);
        idx.persist().unwrap();
        let loaded = TimeIndex::load(&path, 10, 1200).unwrap().unwrap();
        assert_eq!(loaded.file.entries(), idx.file.entries());
        idx.truncate_to_offset(15).unwrap();
        assert_eq!(idx.last_entry(), Some((100, 12)));
        let loaded = TimeIndex::load(&path, 10, 1200).unwrap().unwrap();
        assert_eq!(loaded.last_entry(), Some((100, 12)));
        std::fs::write(&path, [1u8; 5]).unwrap();
        assert!(TimeIndex::load(&path, 10, 1200).unwrap().is_none());
    }
}
