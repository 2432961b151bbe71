//! `OffsetIndex`: the sparse `.index` file of a segment, Kafka's on-disk format.
//!
//! ```text
//! entry (8 bytes, big-endian): relative offset u32 | position in .log u32
//! ```
//!
//! An entry `(o, p)` says: the batch starting at byte `p` of the segment's `.log` ends at offset
//! `base + o` (Kafka indexes a batch's *last* offset). A read for offset `t` looks up the greatest
//! entry `<= t` and scans batch headers forward from `p`; every batch before `p` ends below `t`.
//!
//! The entries live in memory (the workspace forbids `unsafe`, so no mmap) and reach the file
//! through [`IndexFile`], which holds no descriptor: see there for when the tail is written.

use std::path::Path;

use crate::index_file::{IndexEntry, IndexFile};
use crate::StorageError;

/// `(relative offset, position)`, both strictly increasing along the index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct OffsetEntry {
    rel: u32,
    pos: u32,
}

impl IndexEntry for OffsetEntry {
    const LEN: usize = 8;
    fn encode(&self, buf: &mut [u8]) {
        buf[..4].copy_from_slice(&self.rel.to_be_bytes());
        buf[4..].copy_from_slice(&self.pos.to_be_bytes());
    }
    fn decode(buf: &[u8]) -> Self {
        OffsetEntry {
            rel: u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]),
            pos: u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]),
        }
    }
    fn follows(&self, prev: &Self) -> bool {
        self.rel > prev.rel && self.pos > prev.pos
    }
}

/// A segment's offset index.
#[derive(Debug)]
pub(crate) struct OffsetIndex {
    file: IndexFile<OffsetEntry>,
    base_offset: i64,
}

impl OffsetIndex {
    /// Creates (or empties) the index file.
    pub(crate) fn create(
        path: &Path,
        base_offset: i64,
        max_index_bytes: u32,
    ) -> Result<OffsetIndex, StorageError> {
        Ok(OffsetIndex {
            file: IndexFile::create(path, max_index_bytes)?,
            base_offset,
        })
    }

    /// Loads an existing index; `Ok(None)` when the file is missing or fails the sanity checks
    /// (the caller then rebuilds it from the `.log`). Every position must lie inside the `.log`.
    pub(crate) fn load(
        path: &Path,
        base_offset: i64,
        max_index_bytes: u32,
        log_size: u64,
    ) -> Result<Option<OffsetIndex>, StorageError> {
        let file = IndexFile::load(path, max_index_bytes, |e: &OffsetEntry| {
            u64::from(e.pos) < log_size
        })?;
        Ok(file.map(|file| OffsetIndex { file, base_offset }))
    }

    /// Adds an entry for a batch ending at `offset` that starts at `position`. Entries that would
    /// not keep the index strictly increasing are skipped (they add nothing to a lookup).
    pub(crate) fn append(&mut self, offset: i64, position: u64) -> Result<(), StorageError> {
        let rel = u32::try_from(offset - self.base_offset).map_err(|_| self.corrupt("offset"))?;
        let pos = u32::try_from(position).map_err(|_| self.corrupt("position"))?;
        self.file.push(OffsetEntry { rel, pos });
        Ok(())
    }

    /// The greatest entry whose offset is `<= offset`, as `(offset, position)`; the segment start
    /// `(base, 0)` when there is none.
    pub(crate) fn lookup(&self, offset: i64) -> (i64, u64) {
        let Ok(rel) = u32::try_from(offset - self.base_offset) else {
            // Below the base offset (or absurdly far above it: clamp to the last entry).
            if offset < self.base_offset {
                return (self.base_offset, 0);
            }
            return self.last_entry().unwrap_or((self.base_offset, 0));
        };
        let entries = self.file.entries();
        match entries.partition_point(|e| e.rel <= rel) {
            0 => (self.base_offset, 0),
            n => self.absolute(&entries[n - 1]),
        }
    }

    /// The greatest indexed batch start at or below `position` of the `.log`, if any: every byte
    /// before it belongs to whole batches, so a read can jump there without scanning headers.
    pub(crate) fn floor_position(&self, position: u64) -> Option<u64> {
        let entries = self.file.entries();
        match entries.partition_point(|e| u64::from(e.pos) <= position) {
            0 => None,
            n => Some(u64::from(entries[n - 1].pos)),
        }
    }

    /// Last entry as `(offset, position)`.
    pub(crate) fn last_entry(&self) -> Option<(i64, u64)> {
        self.file.entries().last().map(|e| self.absolute(e))
    }

    fn absolute(&self, e: &OffsetEntry) -> (i64, u64) {
        (self.base_offset + i64::from(e.rel), u64::from(e.pos))
    }

    /// True when no more entries fit in `segment.index.bytes`.
    pub(crate) fn is_full(&self) -> bool {
        self.file.is_full()
    }

    /// Number of entries.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.file.entries().len()
    }

    /// Entries not written to the file yet.
    #[cfg(test)]
    pub(crate) fn unpersisted(&self) -> usize {
        self.file.unpersisted()
    }

    /// Drops every entry pointing at or past `position` of the `.log` (the log was cut there).
    pub(crate) fn truncate_to_position(&mut self, position: u64) -> Result<(), StorageError> {
        let keep = self
            .file
            .entries()
            .partition_point(|e| u64::from(e.pos) < position);
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

    fn corrupt(&self, what: &str) -> StorageError {
        StorageError::Corrupt {
            path: self.path().display().to_string(),
            reason: format!("{what} does not fit a 32-bit index entry"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_finds_greatest_entry_at_or_below() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.index");
        let mut idx = OffsetIndex::create(&path, 100, 1024).unwrap();
        assert_eq!(idx.lookup(150), (100, 0));
        idx.append(110, 500).unwrap();
        idx.append(120, 900).unwrap();
        idx.append(119, 1000).unwrap(); // not increasing: skipped
        assert_eq!(idx.len(), 2);
        assert_eq!(idx.lookup(99), (100, 0));
        assert_eq!(idx.lookup(109), (100, 0));
        assert_eq!(idx.lookup(110), (110, 500));
        assert_eq!(idx.lookup(119), (110, 500));
        assert_eq!(idx.lookup(10_000), (120, 900));
        assert!(idx.append(100 + (1 << 32), 2000).is_err());

        // Nothing is in the file until the index is persisted.
        let loaded = OffsetIndex::load(&path, 100, 1024, 2000).unwrap().unwrap();
        assert_eq!(loaded.len(), 0);
        assert!(idx.persist().unwrap());
        let loaded = OffsetIndex::load(&path, 100, 1024, 2000).unwrap().unwrap();
        assert_eq!(loaded.file.entries(), idx.file.entries());
        // Entries pointing past the log: rejected.
        assert!(OffsetIndex::load(&path, 100, 1024, 600).unwrap().is_none());

        idx.truncate_to_position(900).unwrap();
        assert_eq!(idx.last_entry(), Some((110, 500)));
        let loaded = OffsetIndex::load(&path, 100, 1024, 600).unwrap().unwrap();
        assert_eq!(loaded.last_entry(), Some((110, 500)));
        assert!(
            OffsetIndex::load(&dir.path().join("missing.index"), 0, 1024, 10)
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn full_index() {
        let dir = tempfile::tempdir().unwrap();
        let mut idx = OffsetIndex::create(&dir.path().join("y.index"), 0, 16).unwrap();
        idx.append(1, 10).unwrap();
        assert!(!idx.is_full());
        idx.append(2, 20).unwrap();
        assert!(idx.is_full());
    }
}
