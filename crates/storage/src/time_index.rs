//! `TimeIndex`: the sparse `.timeindex` file of a segment, Kafka's on-disk format.
//!
//! ```text
//! entry (12 bytes, big-endian): timestamp i64 | relative offset u32
//! ```
//!
//! An entry `(t, o)` says: the largest timestamp among records at offsets `<= base + o` is `t`.
//! Timestamps are strictly increasing (an entry is only added when the segment's max timestamp
//! grew), so a ListOffsets-by-time lookup can binary search for where to start scanning.
//! Like the offset index, entries live in memory and each one is `pwrite`n to the file.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::index::{max_entries, read_index_file};
use crate::{io_err, StorageError};

/// Bytes per time-index entry.
pub(crate) const TIME_ENTRY_LEN: usize = 12;

/// A segment's time index.
#[derive(Debug)]
pub(crate) struct TimeIndex {
    path: PathBuf,
    file: File,
    base_offset: i64,
    /// `(timestamp, relative offset)`, timestamps strictly increasing.
    entries: Vec<(i64, u32)>,
    max_entries: usize,
}

impl TimeIndex {
    /// Creates (or empties) the index file.
    pub(crate) fn create(
        path: &Path,
        base_offset: i64,
        max_index_bytes: u32,
    ) -> Result<TimeIndex, StorageError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
            .map_err(io_err(path))?;
        Ok(TimeIndex {
            path: path.to_path_buf(),
            file,
            base_offset,
            entries: Vec::new(),
            max_entries: max_entries(max_index_bytes, TIME_ENTRY_LEN),
        })
    }

    /// Loads an existing index; `Ok(None)` when missing or failing the sanity checks.
    pub(crate) fn load(
        path: &Path,
        base_offset: i64,
        max_index_bytes: u32,
    ) -> Result<Option<TimeIndex>, StorageError> {
        let Some((file, bytes)) = read_index_file(path)? else {
            return Ok(None);
        };
        let entries = match parse_entries(&bytes) {
            Ok(e) => e,
            Err(reason) => {
                tracing::warn!(path = %path.display(), reason, "time index is corrupt; rebuilding");
                return Ok(None);
            }
        };
        Ok(Some(TimeIndex {
            path: path.to_path_buf(),
            file,
            base_offset,
            entries,
            max_entries: max_entries(max_index_bytes, TIME_ENTRY_LEN),
        }))
    }

    /// Adds `(timestamp, offset)` if the timestamp is newer than the last entry's.
    /// `skip_full_check` lets the final entry of a rolled segment in even when the index is full.
    pub(crate) fn maybe_append(
        &mut self,
        timestamp: i64,
        offset: i64,
        skip_full_check: bool,
    ) -> Result<(), StorageError> {
        if timestamp < 0 || (!skip_full_check && self.is_full()) {
            return Ok(());
        }
        let Ok(rel) = u32::try_from(offset - self.base_offset) else {
            return Ok(());
        };
        if let Some(&(lt, lo)) = self.entries.last() {
            if timestamp <= lt || rel < lo {
                return Ok(());
            }
        }
        let mut buf = [0u8; TIME_ENTRY_LEN];
        buf[..8].copy_from_slice(&timestamp.to_be_bytes());
        buf[8..].copy_from_slice(&rel.to_be_bytes());
        let at = (self.entries.len() * TIME_ENTRY_LEN) as u64;
        self.file
            .write_all_at(&buf, at)
            .map_err(io_err(&self.path))?;
        self.entries.push((timestamp, rel));
        Ok(())
    }

    /// Where a search for the first record with timestamp `>= timestamp` may start: the offset of
    /// the greatest entry whose timestamp is strictly below it (every record at or below that
    /// offset is older than `timestamp`), or the segment's base offset.
    pub(crate) fn lookup_before(&self, timestamp: i64) -> i64 {
        let slot = self.entries.partition_point(|&(t, _)| t < timestamp);
        match slot {
            0 => self.base_offset,
            n => self.base_offset + i64::from(self.entries[n - 1].1),
        }
    }

    /// Last entry as `(timestamp, offset)`.
    pub(crate) fn last_entry(&self) -> Option<(i64, i64)> {
        self.entries
            .last()
            .map(|&(t, o)| (t, self.base_offset + i64::from(o)))
    }

    /// True when no more entries fit in `segment.index.bytes`.
    pub(crate) fn is_full(&self) -> bool {
        self.entries.len() >= self.max_entries
    }

    /// Drops entries for offsets `>= offset`.
    pub(crate) fn truncate_to_offset(&mut self, offset: i64) -> Result<(), StorageError> {
        let keep = self
            .entries
            .partition_point(|&(_, o)| self.base_offset + i64::from(o) < offset);
        self.entries.truncate(keep);
        self.file
            .set_len((keep * TIME_ENTRY_LEN) as u64)
            .map_err(io_err(&self.path))
    }

    /// fsyncs the index file.
    pub(crate) fn flush(&self) -> Result<(), StorageError> {
        self.file.sync_data().map_err(io_err(&self.path))
    }

    /// Path of the file.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

fn parse_entries(bytes: &[u8]) -> Result<Vec<(i64, u32)>, &'static str> {
    if !bytes.chunks_exact(TIME_ENTRY_LEN).remainder().is_empty() {
        return Err("size is not a multiple of the entry size");
    }
    let mut entries: Vec<(i64, u32)> = Vec::with_capacity(bytes.len() / TIME_ENTRY_LEN);
    for e in bytes.chunks_exact(TIME_ENTRY_LEN) {
        let mut t = [0u8; 8];
        t.copy_from_slice(&e[..8]);
        let ts = i64::from_be_bytes(t);
        let rel = u32::from_be_bytes([e[8], e[9], e[10], e[11]]);
        if let Some(&(lt, lo)) = entries.last() {
            if ts <= lt || rel < lo {
                return Err("entries are not increasing");
            }
        }
        entries.push((ts, rel));
    }
    Ok(entries)
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
        idx.maybe_append(100, 12, false).unwrap();
        idx.maybe_append(100, 14, false).unwrap(); // same timestamp: skipped
        idx.maybe_append(200, 15, false).unwrap();
        assert_eq!(idx.lookup_before(100), 10);
        assert_eq!(idx.lookup_before(101), 12);
        assert_eq!(idx.lookup_before(1000), 15);
        let loaded = TimeIndex::load(&path, 10, 1200).unwrap().unwrap();
        assert_eq!(loaded.entries, idx.entries);
        idx.truncate_to_offset(15).unwrap();
        assert_eq!(idx.last_entry(), Some((100, 12)));
        std::fs::write(&path, [1u8; 5]).unwrap();
        assert!(TimeIndex::load(&path, 10, 1200).unwrap().is_none());
    }
}
