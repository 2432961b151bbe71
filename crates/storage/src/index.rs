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
//! The entries live in memory (the workspace forbids `unsafe`, so no mmap); each new entry is also
//! written to the file with one `pwrite`. The file is only fsynced when the segment rolls or the
//! log shuts down: after a crash the indexes of unflushed segments are rebuilt from the `.log`.

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::{io_err, StorageError};

/// Bytes per offset-index entry.
pub(crate) const OFFSET_ENTRY_LEN: usize = 8;

/// A segment's offset index.
#[derive(Debug)]
pub(crate) struct OffsetIndex {
    path: PathBuf,
    file: File,
    base_offset: i64,
    /// `(relative offset, position)`, both strictly increasing.
    entries: Vec<(u32, u32)>,
    /// `segment.index.bytes / 8`: the segment rolls once this many entries exist.
    max_entries: usize,
}

impl OffsetIndex {
    /// Creates (or empties) the index file.
    pub(crate) fn create(
        path: &Path,
        base_offset: i64,
        max_index_bytes: u32,
    ) -> Result<OffsetIndex, StorageError> {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
            .map_err(io_err(path))?;
        Ok(OffsetIndex {
            path: path.to_path_buf(),
            file,
            base_offset,
            entries: Vec::new(),
            max_entries: max_entries(max_index_bytes, OFFSET_ENTRY_LEN),
        })
    }

    /// Loads an existing index; `Ok(None)` when the file is missing or fails the sanity checks
    /// (the caller then rebuilds it from the `.log`).
    pub(crate) fn load(
        path: &Path,
        base_offset: i64,
        max_index_bytes: u32,
        log_size: u64,
    ) -> Result<Option<OffsetIndex>, StorageError> {
        let Some((file, bytes)) = read_index_file(path)? else {
            return Ok(None);
        };
        let entries = match parse_entries(&bytes, log_size) {
            Ok(e) => e,
            Err(reason) => {
                tracing::warn!(path = %path.display(), reason, "offset index is corrupt; rebuilding");
                return Ok(None);
            }
        };
        Ok(Some(OffsetIndex {
            path: path.to_path_buf(),
            file,
            base_offset,
            entries,
            max_entries: max_entries(max_index_bytes, OFFSET_ENTRY_LEN),
        }))
    }

    /// Adds an entry for a batch ending at `offset` that starts at `position`. Entries that would
    /// not keep the index strictly increasing are skipped (they add nothing to a lookup).
    pub(crate) fn append(&mut self, offset: i64, position: u64) -> Result<(), StorageError> {
        let rel = u32::try_from(offset - self.base_offset).map_err(|_| self.corrupt("offset"))?;
        let pos = u32::try_from(position).map_err(|_| self.corrupt("position"))?;
        if let Some(&(last_rel, last_pos)) = self.entries.last() {
            if rel <= last_rel || pos <= last_pos {
                return Ok(());
            }
        }
        let mut buf = [0u8; OFFSET_ENTRY_LEN];
        buf[..4].copy_from_slice(&rel.to_be_bytes());
        buf[4..].copy_from_slice(&pos.to_be_bytes());
        let at = (self.entries.len() * OFFSET_ENTRY_LEN) as u64;
        self.file
            .write_all_at(&buf, at)
            .map_err(io_err(&self.path))?;
        self.entries.push((rel, pos));
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
        let slot = self.entries.partition_point(|&(o, _)| o <= rel);
        match slot {
            0 => (self.base_offset, 0),
            n => {
                let (o, p) = self.entries[n - 1];
                (self.base_offset + i64::from(o), u64::from(p))
            }
        }
    }

    /// Last entry as `(offset, position)`.
    pub(crate) fn last_entry(&self) -> Option<(i64, u64)> {
        self.entries
            .last()
            .map(|&(o, p)| (self.base_offset + i64::from(o), u64::from(p)))
    }

    /// True when no more entries fit in `segment.index.bytes`.
    pub(crate) fn is_full(&self) -> bool {
        self.entries.len() >= self.max_entries
    }

    /// Number of entries.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Drops every entry pointing at or past `position` of the `.log` (the log was cut there).
    pub(crate) fn truncate_to_position(&mut self, position: u64) -> Result<(), StorageError> {
        let keep = self
            .entries
            .partition_point(|&(_, p)| u64::from(p) < position);
        self.entries.truncate(keep);
        self.file
            .set_len((keep * OFFSET_ENTRY_LEN) as u64)
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

    fn corrupt(&self, what: &str) -> StorageError {
        StorageError::Corrupt {
            path: self.path.display().to_string(),
            reason: format!("{what} does not fit a 32-bit index entry"),
        }
    }
}

/// How many entries a file of `max_index_bytes` holds (at least one, so a segment can progress).
pub(crate) fn max_entries(max_index_bytes: u32, entry_len: usize) -> usize {
    (max_index_bytes as usize / entry_len).max(1)
}

/// Opens and reads an index file; `None` when it does not exist.
pub(crate) fn read_index_file(path: &Path) -> Result<Option<(File, Vec<u8>)>, StorageError> {
    let mut file = match OpenOptions::new().read(true).write(true).open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err(path)(e)),
    };
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes).map_err(io_err(path))?;
    Ok(Some((file, bytes)))
}

/// Decodes and sanity-checks offset-index entries (Kafka's `sanityCheck`): whole entries,
/// strictly increasing, positions inside the `.log`.
fn parse_entries(bytes: &[u8], log_size: u64) -> Result<Vec<(u32, u32)>, &'static str> {
    if !bytes.chunks_exact(OFFSET_ENTRY_LEN).remainder().is_empty() {
        return Err("size is not a multiple of the entry size");
    }
    let mut entries: Vec<(u32, u32)> = Vec::with_capacity(bytes.len() / OFFSET_ENTRY_LEN);
    for e in bytes.chunks_exact(OFFSET_ENTRY_LEN) {
        let rel = u32::from_be_bytes([e[0], e[1], e[2], e[3]]);
        let pos = u32::from_be_bytes([e[4], e[5], e[6], e[7]]);
        if let Some(&(lr, lp)) = entries.last() {
            if rel <= lr || pos <= lp {
                return Err("entries are not increasing");
            }
        }
        if u64::from(pos) >= log_size {
            return Err("entry points past the end of the log");
        }
        entries.push((rel, pos));
    }
    Ok(entries)
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

        let loaded = OffsetIndex::load(&path, 100, 1024, 2000).unwrap().unwrap();
        assert_eq!(loaded.entries, idx.entries);
        // Entries pointing past the log: rejected.
        assert!(OffsetIndex::load(&path, 100, 1024, 600).unwrap().is_none());

        idx.truncate_to_position(900).unwrap();
        assert_eq!(idx.last_entry(), Some((110, 500)));
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
