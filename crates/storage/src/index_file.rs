//! `IndexFile`: what `OffsetIndex` and `TimeIndex` share (Kafka's `AbstractIndex`): a sorted,
//! in-memory list of fixed-width entries mirrored in a file that is opened only while it is
//! read or written. No descriptor stays open, so a partition costs one descriptor (its `.log`),
//! not three.
//!
//! ```text
//!  entries in memory:  [e0 e1 e2 e3 e4 e5]
//!  in the file:        [e0 e1 e2]            persisted = 3
//!                                 ^ persist(): open, one pwrite of e3..e5, close
//! ```
//!
//! The file is always a prefix of the entries (or empty), so an index cut short by a crash is
//! still a valid sparse index: lookups land earlier and scan forward further. The owner decides
//! when the tail matters: on flush, when the segment rolls, at shutdown. A truncation below the
//! persisted prefix shortens the file by path at once, so the file never holds entries that
//! point at data the log no longer has.

use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::{io_err, StorageError};

/// One fixed-width entry of an index file (big-endian on disk, as Kafka writes them).
pub(crate) trait IndexEntry: Copy + std::fmt::Debug {
    /// Bytes per entry.
    const LEN: usize;
    /// Encodes into `buf`, which is exactly `LEN` bytes.
    fn encode(&self, buf: &mut [u8]);
    /// Decodes from `buf`, which is exactly `LEN` bytes.
    fn decode(buf: &[u8]) -> Self;
    /// Whether `self` may follow `prev` (entries must keep the index searchable).
    fn follows(&self, prev: &Self) -> bool;
}

/// A fixed-width index file and its entries.
#[derive(Debug)]
pub(crate) struct IndexFile<E: IndexEntry> {
    path: PathBuf,
    entries: Vec<E>,
    /// `entries[..persisted]` are in the file, and the file is exactly that long.
    persisted: usize,
    /// `segment.index.bytes / LEN`: the segment rolls once this many entries exist.
    max_entries: usize,
}

impl<E: IndexEntry> IndexFile<E> {
    /// Creates (or empties) the file.
    pub(crate) fn create(path: &Path, max_index_bytes: u32) -> Result<Self, StorageError> {
        OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)
            .map_err(io_err(path))?;
        Ok(IndexFile {
            path: path.to_path_buf(),
            entries: Vec::new(),
            persisted: 0,
            max_entries: max_entries(max_index_bytes, E::LEN),
        })
    }

    /// Reads the file; `Ok(None)` when it is missing or fails the sanity checks (whole entries,
    /// each one `follows` the previous, `valid` holds for each), in which case the caller
    /// rebuilds it from the `.log`.
    pub(crate) fn load(
        path: &Path,
        max_index_bytes: u32,
        valid: impl Fn(&E) -> bool,
    ) -> Result<Option<Self>, StorageError> {
        let bytes = match std::fs::read(path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_err(path)(e)),
        };
        let entries = match parse(&bytes, valid) {
            Ok(e) => e,
            Err(reason) => {
                tracing::warn!(path = %path.display(), reason, "index file is corrupt; rebuilding");
                return Ok(None);
            }
        };
        Ok(Some(IndexFile {
            path: path.to_path_buf(),
            persisted: entries.len(),
            entries,
            max_entries: max_entries(max_index_bytes, E::LEN),
        }))
    }

    /// Adds an entry in memory if it follows the last one; returns whether it was added.
    pub(crate) fn push(&mut self, entry: E) -> bool {
        if self.entries.last().is_some_and(|last| !entry.follows(last)) {
            return false;
        }
        self.entries.push(entry);
        true
    }

    /// Writes the entries the file does not have yet (open, one pwrite, close). Returns whether
    /// anything was written.
    pub(crate) fn persist(&mut self) -> Result<bool, StorageError> {
        if self.persisted == self.entries.len() {
            return Ok(false);
        }
        let tail = &self.entries[self.persisted..];
        let mut buf = vec![0u8; tail.len() * E::LEN];
        for (e, chunk) in tail.iter().zip(buf.chunks_exact_mut(E::LEN)) {
            e.encode(chunk);
        }
        // `create`: the file may have been removed by hand. A hole of zeroed entries before the
        // write is rejected by the next load's sanity check (a single one points at the
        // segment start, which is merely sparse).
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(false)
            .open(&self.path)
            .map_err(io_err(&self.path))?;
        file.write_all_at(&buf, (self.persisted * E::LEN) as u64)
            .map_err(io_err(&self.path))?;
        self.persisted = self.entries.len();
        Ok(true)
    }

    /// Keeps the first `keep` entries; shortens the file (by path) if it held more.
    pub(crate) fn truncate(&mut self, keep: usize) -> Result<(), StorageError> {
        self.entries.truncate(keep);
        if keep < self.persisted {
            let file = OpenOptions::new()
                .write(true)
                .open(&self.path)
                .map_err(io_err(&self.path))?;
            file.set_len((keep * E::LEN) as u64)
                .map_err(io_err(&self.path))?;
            self.persisted = keep;
        }
        Ok(())
    }

    /// The entries, sorted.
    pub(crate) fn entries(&self) -> &[E] {
        &self.entries
    }

    /// True when no more entries fit in `segment.index.bytes`.
    pub(crate) fn is_full(&self) -> bool {
        self.entries.len() >= self.max_entries
    }

    /// Entries not written to the file yet.
    #[cfg(test)]
    pub(crate) fn unpersisted(&self) -> usize {
        self.entries.len() - self.persisted
    }

    /// Path of the file.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The file was renamed (the log cleaner's `.cleaned` → `.swap` → final name): later writes
    /// go to `path`.
    pub(crate) fn set_path(&mut self, path: PathBuf) {
        self.path = path;
    }
}

/// How many entries a file of `max_index_bytes` holds (at least one, so a segment can progress).
fn max_entries(max_index_bytes: u32, entry_len: usize) -> usize {
    (max_index_bytes as usize / entry_len).max(1)
}

/// Decodes and sanity-checks a file's entries (Kafka's `sanityCheck`).
fn parse<E: IndexEntry>(bytes: &[u8], valid: impl Fn(&E) -> bool) -> Result<Vec<E>, &'static str> {
    if !bytes.len().is_multiple_of(E::LEN) {
        return Err("size is not a multiple of the entry size");
    }
    let mut entries: Vec<E> = Vec::with_capacity(bytes.len() / E::LEN);
    for chunk in bytes.chunks_exact(E::LEN) {
        let e = E::decode(chunk);
        if entries.last().is_some_and(|last| !e.follows(last)) {
            return Err("entries are not increasing");
        }
        if !valid(&e) {
            return Err("entry points past the end of the log");
        }
        entries.push(e);
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 2-byte entry, enough to exercise the file handling.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    struct Tiny(u16);

    impl IndexEntry for Tiny {
        const LEN: usize = 2;
        fn encode(&self, buf: &mut [u8]) {
            buf.copy_from_slice(&self.0.to_be_bytes());
        }
        fn decode(buf: &[u8]) -> Self {
            Tiny(u16::from_be_bytes([buf[0], buf[1]]))
        }
        fn follows(&self, prev: &Self) -> bool {
            self.0 > prev.0
        }
    }

    fn file_len(path: &Path) -> u64 {
        std::fs::metadata(path).unwrap().len()
    }

    #[test]
    fn entries_reach_the_file_only_when_persisted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.index");
        let mut idx = IndexFile::<Tiny>::create(&path, 100).unwrap();
        assert!(idx.push(Tiny(1)));
        assert!(idx.push(Tiny(5)));
        assert!(!idx.push(Tiny(5)));
        assert_eq!((idx.unpersisted(), file_len(&path)), (2, 0));
        assert!(idx.persist().unwrap());
        assert!(!idx.persist().unwrap());
        assert_eq!(file_len(&path), 4);
        idx.push(Tiny(7));
        idx.persist().unwrap();
        let loaded = IndexFile::<Tiny>::load(&path, 100, |_| true)
            .unwrap()
            .unwrap();
        assert_eq!(loaded.entries(), &[Tiny(1), Tiny(5), Tiny(7)]);
        assert_eq!(loaded.unpersisted(), 0);
    }

    #[test]
    fn truncation_shortens_the_file_only_below_the_persisted_prefix() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.index");
        let mut idx = IndexFile::<Tiny>::create(&path, 100).unwrap();
        for v in 1..=4 {
            idx.push(Tiny(v));
        }
        idx.persist().unwrap();
        idx.push(Tiny(9));
        idx.truncate(4).unwrap(); // only the unpersisted entry goes
        assert_eq!(file_len(&path), 8);
        idx.truncate(1).unwrap();
        assert_eq!(file_len(&path), 2);
        idx.push(Tiny(3));
        idx.persist().unwrap();
        let loaded = IndexFile::<Tiny>::load(&path, 100, |_| true)
            .unwrap()
            .unwrap();
        assert_eq!(loaded.entries(), &[Tiny(1), Tiny(3)]);
    }

    #[test]
    fn bad_files_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.index");
        assert!(IndexFile::<Tiny>::load(&path, 100, |_| true)
            .unwrap()
            .is_none());
        std::fs::write(&path, [0, 1, 0]).unwrap();
        assert!(IndexFile::<Tiny>::load(&path, 100, |_| true)
            .unwrap()
            .is_none());
        std::fs::write(&path, [0, 2, 0, 1]).unwrap();
        assert!(IndexFile::<Tiny>::load(&path, 100, |_| true)
            .unwrap()
            .is_none());
        std::fs::write(&path, [0, 1, 0, 2]).unwrap();
        assert!(IndexFile::<Tiny>::load(&path, 100, |e| e.0 < 2)
            .unwrap()
            .is_none());
        assert!(IndexFile::<Tiny>::load(&path, 100, |_| true)
            .unwrap()
            .is_some());
    }

    #[test]
    fn full_at_max_index_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let mut idx = IndexFile::<Tiny>::create(&dir.path().join("t.index"), 4).unwrap();
        idx.push(Tiny(1));
        assert!(!idx.is_full());
        idx.push(Tiny(2));
        assert!(idx.is_full());
    }
}
