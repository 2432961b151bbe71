//! The aborted-transaction index of one segment (Kafka's `TransactionIndex`, the `.txnindex`
//! file): one entry per ABORT marker in the segment, which read_committed fetches return so
//! that clients drop the aborted records.
//!
//! ```text
//! entry (34 bytes, big endian, Kafka's `AbortedTxn`):
//!   version int16 (0) | producer id int64 | first offset int64 | last offset int64 (the marker)
//!   | last stable offset int64 (when the marker was written)
//! ```
//!
//! Entries are appended in marker order and kept in memory; the file is appended to (opened
//! by path, no descriptor held), cut on truncation and deleted with its segment. It is created
//! with its first entry, so most segments have none. The log has the file fsynced with the
//! next flush; recovery rebuilds the entries above the producer-state snapshot it starts from.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::{io_err, StorageError};

/// Size of one entry on disk.
pub const ABORTED_TXN_SIZE: usize = 34;
/// The only entry version.
const ABORTED_TXN_VERSION: i16 = 0;

/// One aborted transaction (Kafka's `AbortedTxn`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbortedTxn {
    pub producer_id: i64,
    /// Offset of the transaction's first batch in this partition.
    pub first_offset: i64,
    /// Offset of the ABORT marker.
    pub last_offset: i64,
    /// The partition's last stable offset once the marker was written: a search for aborted
    /// transactions below it can stop at this entry.
    pub last_stable_offset: i64,
}

impl AbortedTxn {
    fn encode(&self) -> [u8; ABORTED_TXN_SIZE] {
        let mut out = [0u8; ABORTED_TXN_SIZE];
        out[0..2].copy_from_slice(&ABORTED_TXN_VERSION.to_be_bytes());
        out[2..10].copy_from_slice(&self.producer_id.to_be_bytes());
        out[10..18].copy_from_slice(&self.first_offset.to_be_bytes());
        out[18..26].copy_from_slice(&self.last_offset.to_be_bytes());
        out[26..34].copy_from_slice(&self.last_stable_offset.to_be_bytes());
        out
    }

    fn decode(b: &[u8]) -> Option<AbortedTxn> {
        let i64_at = |at: usize| {
            let mut a = [0u8; 8];
            a.copy_from_slice(&b[at..at + 8]);
            i64::from_be_bytes(a)
        };
        if b.len() != ABORTED_TXN_SIZE || i16::from_be_bytes([b[0], b[1]]) != ABORTED_TXN_VERSION {
            return None;
        }
        Some(AbortedTxn {
            producer_id: i64_at(2),
            first_offset: i64_at(10),
            last_offset: i64_at(18),
            last_stable_offset: i64_at(26),
        })
    }
}

/// One segment's `.txnindex`.
#[derive(Debug)]
pub(crate) struct TransactionIndex {
    path: PathBuf,
    /// The entries, by marker offset.
    entries: Vec<AbortedTxn>,
}

impl TransactionIndex {
    /// A new, empty index (a stale file of the same name is removed).
    pub(crate) fn create(path: PathBuf) -> Result<TransactionIndex, StorageError> {
        remove_if_present(&path)?;
        Ok(TransactionIndex {
            path,
            entries: Vec::new(),
        })
    }

    /// Loads the index at `path` (none: empty). A torn last entry (a crash mid-write) or an
    /// entry that does not decode ends the index there; the file is cut to what was read.
    pub(crate) fn open(path: PathBuf) -> Result<TransactionIndex, StorageError> {
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(io_err(&path)(e)),
        };
        let mut entries = Vec::with_capacity(bytes.len() / ABORTED_TXN_SIZE);
        for chunk in bytes.chunks(ABORTED_TXN_SIZE) {
            match AbortedTxn::decode(chunk) {
                Some(e)
                    if entries
                        .last()
                        .is_none_or(|l: &AbortedTxn| l.last_offset < e.last_offset) =>
                {
                    entries.push(e)
                }
                _ => break,
            }
        }
        let mut index = TransactionIndex { path, entries };
        if index.entries.len() * ABORTED_TXN_SIZE != bytes.len() {
            tracing::warn!(path = %index.path.display(), kept = index.entries.len(),
                "cutting a damaged transaction index");
            index.rewrite()?;
        }
        Ok(index)
    }

    /// The file's path (the log has it fsynced with the next flush after an append).
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The file was renamed (the log cleaner's suffix changes): later writes go to `path`.
    pub(crate) fn set_path(&mut self, path: PathBuf) {
        self.path = path;
    }

    /// Whether the index holds entries (and so has a file).
    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The entries, by marker offset.
    pub(crate) fn all(&self) -> &[AbortedTxn] {
        &self.entries
    }

    /// The entries, by marker offset.
    #[cfg(test)]
    pub(crate) fn entries(&self) -> &[AbortedTxn] {
        &self.entries
    }

    /// Appends an entry; its marker must follow the last one's (as Kafka checks).
    pub(crate) fn append(&mut self, entry: AbortedTxn) -> Result<(), StorageError> {
        if let Some(last) = self.entries.last() {
            if last.last_offset >= entry.last_offset {
                return Err(StorageError::Corrupt {
                    path: self.path.display().to_string(),
                    reason: format!(
                        "aborted transaction ending at {} does not follow the one ending at {}",
                        entry.last_offset, last.last_offset
                    ),
                });
            }
        }
        let mut f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .map_err(io_err(&self.path))?;
        f.write_all(&entry.encode()).map_err(io_err(&self.path))?;
        self.entries.push(entry);
        Ok(())
    }

    /// Drops the entries whose marker is at or above `offset` (Kafka's `truncateTo`).
    pub(crate) fn truncate_to(&mut self, offset: i64) -> Result<(), StorageError> {
        let keep = self.entries.partition_point(|e| e.last_offset < offset);
        if keep == self.entries.len() {
            return Ok(());
        }
        self.entries.truncate(keep);
        self.rewrite()
    }

    /// Kafka's `collectAbortedTxns`: the entries that overlap `[fetch_offset, upper_bound)`,
    /// added to `out`. Returns true when the search is complete: an entry's last stable offset
    /// reached `upper_bound`, so no later marker can end a transaction that started below it.
    pub(crate) fn collect(
        &self,
        fetch_offset: i64,
        upper_bound: i64,
        out: &mut Vec<AbortedTxn>,
    ) -> bool {
        for e in &self.entries {
            if e.last_offset >= fetch_offset && e.first_offset < upper_bound {
                out.push(*e);
            }
            if e.last_stable_offset >= upper_bound {
                return true;
            }
        }
        false
    }

    /// Removes the file (the segment is deleted).
    pub(crate) fn delete(&self) -> Result<(), StorageError> {
        remove_if_present(&self.path)
    }

    /// Writes the file as the entries say (none: no file).
    fn rewrite(&mut self) -> Result<(), StorageError> {
        if self.entries.is_empty() {
            return remove_if_present(&self.path);
        }
        let mut bytes = Vec::with_capacity(self.entries.len() * ABORTED_TXN_SIZE);
        for e in &self.entries {
            bytes.extend_from_slice(&e.encode());
        }
        std::fs::write(&self.path, &bytes).map_err(io_err(&self.path))
    }
}

fn remove_if_present(path: &Path) -> Result<(), StorageError> {
    match std::fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err(path)(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn txn(pid: i64, first: i64, last: i64, lso: i64) -> AbortedTxn {
        AbortedTxn {
            producer_id: pid,
            first_offset: first,
            last_offset: last,
            last_stable_offset: lso,
        }
    }

    #[test]
    fn entries_are_kafkas_34_bytes_and_survive_a_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("00000000000000000000.txnindex");
        let mut idx = TransactionIndex::create(path.clone()).expect("create");
        assert!(!path.exists(), "created with the first entry");
        idx.append(txn(7, 0, 10, 11)).expect("append");
        idx.append(txn(8, 5, 20, 21)).expect("append");
        assert!(idx.append(txn(9, 1, 20, 21)).is_err(), "markers go forward");
        let bytes = std::fs::read(&path).expect("read");
        assert_eq!(bytes.len(), 2 * ABORTED_TXN_SIZE);
        assert_eq!(&bytes[..2], &[0, 0], "version 0");
        assert_eq!(&bytes[2..10], &7i64.to_be_bytes());
        let reopened = TransactionIndex::open(path.clone()).expect("open");
        assert_eq!(reopened.entries(), idx.entries());

        // A torn last entry is cut off.
        std::fs::write(&path, &bytes[..ABORTED_TXN_SIZE + 5]).expect("tear");
        let torn = TransactionIndex::open(path.clone()).expect("open");
        assert_eq!(torn.entries(), &[txn(7, 0, 10, 11)]);
        assert_eq!(std::fs::metadata(&path).expect("meta").len(), 34);
    }

    #[test]
    fn truncation_drops_markers_at_and_above_the_offset() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("x.txnindex");
        let mut idx = TransactionIndex::create(path.clone()).expect("create");
        for (i, last) in [3, 6, 9].into_iter().enumerate() {
            idx.append(txn(i as i64, last - 2, last, last + 1))
                .expect("append");
        }
        idx.truncate_to(6).expect("truncate");
        assert_eq!(idx.entries(), &[txn(0, 1, 3, 4)]);
        assert_eq!(
            TransactionIndex::open(path.clone())
                .expect("open")
                .entries()
                .len(),
            1
        );
        idx.truncate_to(0).expect("truncate");
        assert!(!path.exists());
    }

    #[test]
    fn collect_returns_overlapping_entries_and_stops_at_the_upper_bound() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut idx = TransactionIndex::create(dir.path().join("x.txnindex")).expect("create");
        idx.append(txn(1, 0, 4, 2)).expect("append"); // another txn from 2 was still open
        idx.append(txn(2, 2, 9, 10)).expect("append");
        idx.append(txn(3, 12, 15, 16)).expect("append");
        let mut out = Vec::new();
        assert!(idx.collect(5, 8, &mut out), "txn 2's LSO 10 covers 8");
        assert_eq!(out, vec![txn(2, 2, 9, 10)]);
        let mut out = Vec::new();
        assert!(!idx.collect(0, 100, &mut out));
        assert_eq!(out.len(), 3);
        let mut out = Vec::new();
        assert!(idx.collect(10, 13, &mut out));
        assert_eq!(out, vec![txn(3, 12, 15, 16)]);
    }
}
