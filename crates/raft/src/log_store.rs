//! The durable Raft log of the metadata quorum (openraft's `RaftLogStorage`).
//!
//! ```text
//! <dir>/log        append-only: (length: u32, crc32c: u32, entry as JSON)…
//! <dir>/vote       the vote, written whole (tmp + fsync + rename + fsync dir) with a CRC
//! <dir>/committed  the last committed log id, likewise
//! <dir>/purged     the last purged log id, likewise
//! ```
//!
//! Every entry is also held in memory (the metadata log is compacted by snapshots, so it stays
//! small); reads never touch the disk. Writes run on tokio's blocking pool. `append` writes and
//! fsyncs before it tells openraft the entries are durable. On open, a torn tail (a short frame or a bad checksum after the last
//! good entry, as a crash in the middle of an append leaves) is cut off. `truncate` cuts the
//! file at the first removed entry; `purge` records the purged log id first and then rewrites
//! the file without the purged head, so a crash in between only leaves entries that the next
//! open drops.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::ops::RangeBounds;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{ErrorSubject, ErrorVerb, RaftLogId, RaftLogReader, Vote};

use crate::fsutil::{invalid, read_checked, sync_dir, write_checked};
use crate::types::{Entry, LogId, NodeId, StorageError, TypeConfig};

const LOG_FILE: &str = "log";
const VOTE_FILE: &str = "vote";
const COMMITTED_FILE: &str = "committed";
const PURGED_FILE: &str = "purged";
/// A frame's header: length of the JSON, then its CRC-32C.
const FRAME_HEADER: usize = 8;
/// No single entry of the metadata log comes near this; a bigger length is a torn or corrupt
/// frame, not an allocation to make.
const MAX_ENTRY_BYTES: usize = 256 * 1024 * 1024;

/// The log store handed to openraft; its reader shares the same state.
#[derive(Clone)]
pub(crate) struct LogStore {
    inner: Arc<Mutex<LogInner>>,
}

struct LogInner {
    dir: PathBuf,
    /// The log file, opened for append.
    file: File,
    /// Entries by index, with the byte position of each one's frame.
    entries: BTreeMap<u64, (u64, Entry)>,
    /// Where the next frame goes.
    end: u64,
    last_purged: Option<LogId>,
    vote: Option<Vote<NodeId>>,
    committed: Option<LogId>,
}

fn io_err(subject: ErrorSubject<NodeId>, verb: ErrorVerb, e: io::Error) -> StorageError {
    StorageError::from_io_error(subject, verb, e)
}

fn logs_err(verb: ErrorVerb) -> impl Fn(io::Error) -> StorageError {
    move |e| io_err(ErrorSubject::Logs, verb, e)
}

fn encode_frame(entry: &Entry, out: &mut Vec<u8>) -> io::Result<()> {
    let json = serde_json::to_vec(entry).map_err(io::Error::other)?;
    let len = u32::try_from(json.len()).map_err(|_| invalid("log entry too large".into()))?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&crc32c::crc32c(&json).to_be_bytes());
    out.extend_from_slice(&json);
    Ok(())
}

/// Decodes the frames of a log file: the entries with their positions, and the length of the
/// valid prefix (where a torn tail, if any, starts).
fn decode_frames(bytes: &[u8]) -> (Vec<(u64, Entry)>, u64) {
    let mut entries = Vec::new();
    let mut pos = 0usize;
    while bytes.len() - pos >= FRAME_HEADER {
        let h = &bytes[pos..pos + FRAME_HEADER];
        let len = u32::from_be_bytes([h[0], h[1], h[2], h[3]]) as usize;
        let crc = u32::from_be_bytes([h[4], h[5], h[6], h[7]]);
        if len > MAX_ENTRY_BYTES || bytes.len() - pos - FRAME_HEADER < len {
            break;
        }
        let json = &bytes[pos + FRAME_HEADER..pos + FRAME_HEADER + len];
        if crc32c::crc32c(json) != crc {
            break;
        }
        let Ok(entry) = serde_json::from_slice::<Entry>(json) else {
            break;
        };
        entries.push((pos as u64, entry));
        pos += FRAME_HEADER + len;
    }
    (entries, pos as u64)
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> io::Result<Option<T>> {
    match read_checked(path)? {
        None => Ok(None),
        Some(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| invalid(format!("{}: {e}", path.display()))),
    }
}

fn write_json<T: serde::Serialize>(dir: &Path, name: &str, value: &T) -> io::Result<()> {
    let bytes = serde_json::to_vec(value).map_err(io::Error::other)?;
    write_checked(dir, name, &bytes)
}

fn open_append(path: &Path) -> io::Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .read(true)
        .open(path)
}

impl LogStore {
    /// Opens (or creates) the log in `dir`, cutting off a torn tail.
    pub(crate) fn open(dir: &Path) -> io::Result<LogStore> {
        crate::fsutil::ensure_space_reserve(dir);
        let last_purged: Option<LogId> = read_json(&dir.join(PURGED_FILE))?;
        let vote: Option<Vote<NodeId>> = read_json(&dir.join(VOTE_FILE))?;
        let committed: Option<LogId> = read_json(&dir.join(COMMITTED_FILE))?;

        let path = dir.join(LOG_FILE);
        let mut file = open_append(&path)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        let (frames, valid) = decode_frames(&bytes);
        if valid < bytes.len() as u64 {
            tracing::warn!(
                log = %path.display(),
                valid_bytes = valid,
                cut_bytes = bytes.len() as u64 - valid,
                "metadata log has a torn tail after its last good entry; cutting it off"
            );
            file.set_len(valid)?;
            file.sync_all()?;
        }
        let mut entries = BTreeMap::new();
        let purged_index = last_purged.map(|l| l.index);
        for (pos, entry) in frames {
            let index = entry.log_id.index;
            if purged_index.is_some_and(|p| index <= p) {
                continue; // purged, the rewrite did not happen before a crash
            }
            if let Some((&last, _)) = entries.last_key_value() {
                if index != last + 1 {
                    return Err(invalid(format!(
                        "{}: entry {index} follows entry {last}",
                        path.display()
                    )));
                }
            }
            entries.insert(index, (pos, entry));
        }
        if let (Some(p), Some((&first, _))) = (purged_index, entries.first_key_value()) {
            if first != p + 1 {
                return Err(invalid(format!(
                    "{}: first entry {first} does not follow the purged log id at {p}",
                    path.display()
                )));
            }
        }
        Ok(LogStore {
            inner: Arc::new(Mutex::new(LogInner {
                dir: dir.to_path_buf(),
                file,
                entries,
                end: valid,
                last_purged,
                vote,
                committed,
            })),
        })
    }

    /// The bytes of the log's frames after entry `after` (from the first, for `None`) up to
    /// and including entry `upto`: what a snapshot taken at `upto` would stand for.
    pub(crate) fn bytes_between(&self, after: Option<u64>, upto: u64) -> u64 {
        let inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let start = after.map_or(0, |a| a.saturating_add(1));
        let Some(from) = inner
            .entries
            .range(start..)
            .next()
            .map(|(_, (pos, _))| *pos)
        else {
            return 0;
        };
        let to = inner
            .entries
            .range(upto.saturating_add(1)..)
            .next()
            .map_or(inner.end, |(_, (pos, _))| *pos);
        to.saturating_sub(from)
    }

    /// The index of the first entry in the log file of `dir` (tests look at purging with it).
    #[cfg(test)]
    pub(crate) fn first_index_on_disk(dir: &Path) -> Option<u64> {
        let bytes = std::fs::read(dir.join(LOG_FILE)).ok()?;
        decode_frames(&bytes).0.first().map(|(_, e)| e.log_id.index)
    }

    /// Runs a file operation on the blocking pool, so an fsync does not stall a runtime worker
    /// (the broker shares the runtime with Kafka traffic).
    async fn blocking<T: Send + 'static>(
        &self,
        op: impl FnOnce(&mut LogInner) -> io::Result<T> + Send + 'static,
    ) -> io::Result<T> {
        let inner = self.inner.clone();
        tokio::task::spawn_blocking(move || {
            let mut guard = inner.lock().expect("metadata log lock poisoned");
            op(&mut guard)
        })
        .await
        .map_err(|e| io::Error::other(format!("metadata log task failed: {e}")))?
    }

    fn lock(&self) -> MutexGuard<'_, LogInner> {
        // A panic while holding the lock leaves in-memory state that may not match the file;
        // openraft stops the node on the panic anyway, so poisoning is not recovered from.
        self.inner.lock().expect("metadata log lock poisoned")
    }
}

impl LogInner {
    fn append(&mut self, entries: impl IntoIterator<Item = Entry>) -> io::Result<()> {
        let mut buf = Vec::new();
        let mut added = Vec::new();
        for entry in entries {
            let pos = self.end + buf.len() as u64;
            encode_frame(&entry, &mut buf)?;
            added.push((pos, entry));
        }
        let (end, dir) = (self.end, self.dir.clone());
        let file = &self.file;
        crate::fsutil::with_space_reserve(
            &dir,
            || {
                let mut f = file;
                f.write_all(&buf)?;
                f.sync_data()
            },
            // A write cut short by the full disk leaves a partial frame: cut it off first.
            || file.set_len(end),
        )?;
        self.end += buf.len() as u64;
        for (pos, entry) in added {
            self.entries.insert(entry.log_id.index, (pos, entry));
        }
        Ok(())
    }

    fn truncate(&mut self, since: u64) -> io::Result<()> {
        let Some((_, (pos, _))) = self.entries.range(since..).next() else {
            return Ok(());
        };
        let pos = *pos;
        self.file.set_len(pos)?;
        self.file.sync_all()?;
        self.end = pos;
        self.entries.split_off(&since);
        Ok(())
    }

    fn purge(&mut self, upto: LogId) -> io::Result<()> {
        write_json(&self.dir, PURGED_FILE, &upto)?;
        self.last_purged = Some(upto);
        self.entries = self.entries.split_off(&(upto.index + 1));
        // Rewrite the file with what is left.
        let tmp = self.dir.join(format!("{LOG_FILE}.tmp"));
        let mut buf = Vec::new();
        let mut positions = Vec::new();
        for (index, (_, entry)) in &self.entries {
            positions.push((*index, buf.len() as u64));
            encode_frame(entry, &mut buf)?;
        }
        {
            let mut f = File::create(&tmp)?;
            f.write_all(&buf)?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, self.dir.join(LOG_FILE))?;
        sync_dir(&self.dir)?;
        self.file = open_append(&self.dir.join(LOG_FILE))?;
        self.end = buf.len() as u64;
        for (index, pos) in positions {
            if let Some(slot) = self.entries.get_mut(&index) {
                slot.0 = pos;
            }
        }
        Ok(())
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + Send>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let inner = self.lock();
        Ok(inner
            .entries
            .range(range)
            .map(|(_, (_, e))| e.clone())
            .collect())
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let inner = self.lock();
        let last = inner
            .entries
            .last_key_value()
            .map(|(_, (_, e))| *e.get_log_id())
            .or(inner.last_purged);
        Ok(LogState {
            last_purged_log_id: inner.last_purged,
            last_log_id: last,
        })
    }

    async fn get_log_reader(&mut self) -> LogStore {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError> {
        let vote = *vote;
        self.blocking(move |inner| {
            crate::fsutil::with_space_reserve(
                &inner.dir.clone(),
                || write_json(&inner.dir, VOTE_FILE, &vote),
                || Ok(()),
            )?;
            inner.vote = Some(vote);
            Ok(())
        })
        .await
        .map_err(|e| io_err(ErrorSubject::Vote, ErrorVerb::Write, e))
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError> {
        Ok(self.lock().vote)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        if self.lock().committed == committed {
            return Ok(());
        }
        self.blocking(move |inner| {
            crate::fsutil::with_space_reserve(
                &inner.dir.clone(),
                || write_json(&inner.dir, COMMITTED_FILE, &committed),
                || Ok(()),
            )?;
            inner.committed = committed;
            Ok(())
        })
        .await
        .map_err(|e| io_err(ErrorSubject::Store, ErrorVerb::Write, e))
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        Ok(self.lock().committed)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        // Written and fsynced before the callback: openraft counts the entries towards the
        // quorum (and answers the leader) only once they are durable.
        let entries: Vec<Entry> = entries.into_iter().collect();
        let result = self.blocking(move |inner| inner.append(entries)).await;
        match result {
            Ok(()) => {
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot append to the metadata log");
                Err(io_err(ErrorSubject::Logs, ErrorVerb::Write, e))
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.blocking(move |inner| inner.truncate(log_id.index))
            .await
            .map_err(logs_err(ErrorVerb::Delete))
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        self.blocking(move |inner| inner.purge(log_id))
            .await
            .map_err(logs_err(ErrorVerb::Delete))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::types::MetadataBatch;
    use openraft::{CommittedLeaderId, EntryPayload};

    pub(crate) fn entry(term: u64, index: u64) -> Entry {
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(term, 1), index),
            payload: EntryPayload::Normal(MetadataBatch(vec![index as u8; 3])),
        }
    }

    fn indexes(store: &LogStore) -> Vec<u64> {
        store.lock().entries.keys().copied().collect()
    }

    #[test]
    fn torn_tail_is_cut_and_the_log_appends_after_it() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let store = LogStore::open(dir.path()).expect("open");
            store
                .lock()
                .append((1..=3).map(|i| entry(1, i)))
                .expect("append");
        }
        let path = dir.path().join(LOG_FILE);
        let good_len = std::fs::metadata(&path).expect("stat").len();
        {
            let mut f = OpenOptions::new().append(true).open(&path).expect("open");
            // A half-written frame: a header that promises more bytes than follow, then junk.
            f.write_all(&[0, 0, 0, 100, 1, 2, 3, 4, 0xde, 0xad])
                .expect("write");
        }
        let store = LogStore::open(dir.path()).expect("reopen");
        assert_eq!(indexes(&store), vec![1, 2, 3]);
        assert_eq!(std::fs::metadata(&path).expect("stat").len(), good_len);
        store.lock().append([entry(1, 4)]).expect("append");
        drop(store);
        let store = LogStore::open(dir.path()).expect("reopen");
        assert_eq!(indexes(&store), vec![1, 2, 3, 4]);
    }

    proptest::proptest! {
        /// Any bytes decode to a valid prefix of whole frames, without panicking.
        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400)) {
            let (entries, valid) = decode_frames(&bytes);
            proptest::prop_assert!(valid as usize <= bytes.len());
            proptest::prop_assert!(entries.len() <= bytes.len() / FRAME_HEADER);
        }

        /// Whole frames followed by garbage: the frames survive, the garbage goes.
        #[test]
        fn frames_then_garbage(n in 1u64..6, tail in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..40)) {
            let mut buf = Vec::new();
            for i in 1..=n {
                encode_frame(&entry(1, i), &mut buf).expect("encode");
            }
            let good = buf.len() as u64;
            buf.extend_from_slice(&tail);
            let (entries, valid) = decode_frames(&buf);
            // Garbage may happen to be a valid frame only if it carries a whole entry, which
            // 40 random bytes with a matching CRC-32C practically never do.
            proptest::prop_assert_eq!(valid, good);
            proptest::prop_assert_eq!(entries.len() as u64, n);
        }
    }

    #[test]
    fn bad_checksum_in_the_last_frame_is_a_torn_tail() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let store = LogStore::open(dir.path()).expect("open");
            store
                .lock()
                .append((1..=2).map(|i| entry(1, i)))
                .expect("append");
        }
        let path = dir.path().join(LOG_FILE);
        let mut bytes = std::fs::read(&path).expect("read");
        let last = bytes.len() - 2;
        bytes[last] ^= 0xff;
        std::fs::write(&path, &bytes).expect("write");
        let store = LogStore::open(dir.path()).expect("reopen");
        assert_eq!(indexes(&store), vec![1]);
    }

    #[test]
    fn truncate_and_purge_survive_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let store = LogStore::open(dir.path()).expect("open");
            let mut inner = store.lock();
            inner.append((1..=10).map(|i| entry(1, i))).expect("append");
            inner.truncate(8).expect("truncate");
            inner.append([entry(2, 8)]).expect("append");
            inner.purge(*entry(1, 3).get_log_id()).expect("purge");
            inner.append([entry(2, 9)]).expect("append");
        }
        let store = LogStore::open(dir.path()).expect("reopen");
        assert_eq!(indexes(&store), vec![4, 5, 6, 7, 8, 9]);
        let inner = store.lock();
        assert_eq!(inner.entries[&8].1.log_id.leader_id.term, 2);
        assert_eq!(inner.last_purged.map(|l| l.index), Some(3));
    }

    #[tokio::test]
    async fn vote_and_committed_survive_reopen() {
        let dir = tempfile::tempdir().expect("tempdir");
        let vote = Vote::new_committed(3, 2);
        let committed = Some(*entry(3, 7).get_log_id());
        {
            let mut store = LogStore::open(dir.path()).expect("open");
            store.save_vote(&vote).await.expect("save vote");
            store
                .save_committed(committed)
                .await
                .expect("save committed");
        }
        let mut store = LogStore::open(dir.path()).expect("reopen");
        assert_eq!(store.read_vote().await.expect("vote"), Some(vote));
        assert_eq!(store.read_committed().await.expect("committed"), committed);
        // A damaged vote file is an error, not a silent "never voted".
        let path = dir.path().join(VOTE_FILE);
        let mut bytes = std::fs::read(&path).expect("read");
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        std::fs::write(&path, &bytes).expect("write");
        assert!(LogStore::open(dir.path()).is_err());
    }
}
