//! The metadata state machine (openraft's `RaftStateMachine`): committed entries become the
//! node's `MetadataImage`.
//!
//! ```text
//! committed entry ─► Normal(batch) ─► decode_batch ─► MetadataDelta::replay (all or none)
//!                                                          │ apply(index, term)
//!                                                          ▼
//!                              watch::Sender<Arc<MetadataImage>>  (one swap per batch)
//!                 Membership ─► tracked for openraft and the snapshot
//!                 Blank ─────► nothing (a new leader's first entry)
//! ```
//!
//! **A batch that does not decode or does not replay is skipped, on every node.** The image is
//! a function of the committed log, and every node applies the same committed log with the same
//! code, so every node skips the same batch and the images stay equal. Stopping instead would
//! take the whole quorum down on one bad proposal (a controller bug, or a record that raced
//! with another change); the skip is logged at ERROR with the log index and reported back to
//! the proposer (`ApplyOutcome::rejected`). Replaying is all-or-nothing per batch: the records
//! are replayed on a scratch delta that is dropped on the first error.
//!
//! Snapshots are `encode_snapshot` of the image, kept in `<dir>/snapshot` together with the
//! last applied log id and membership (written whole: tmp, fsync, rename). At start the last
//! snapshot is loaded, and openraft replays the committed log tail after it.

use std::io::{self, Cursor};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use gregor_metadata::{
    decode_batch, decode_snapshot, encode_snapshot, MetadataDelta, MetadataImage,
    MetadataProvenance,
};
use openraft::storage::{RaftSnapshotBuilder, RaftStateMachine, Snapshot};
use openraft::{EntryPayload, ErrorSubject, ErrorVerb, StorageIOError};
use tokio::sync::watch;

use crate::fsutil::{invalid, read_checked, write_checked};
use crate::types::{
    ApplyOutcome, Entry, LogId, SnapshotMeta, StorageError, StoredMembership, TypeConfig,
};

const SNAPSHOT_FILE: &str = "snapshot";

/// A snapshot as kept on disk and sent to lagging nodes: openraft's metadata and the image
/// bytes (`encode_snapshot`).
#[derive(Clone)]
struct StoredSnapshot {
    meta: SnapshotMeta,
    data: Vec<u8>,
}

pub(crate) struct StateMachine {
    dir: PathBuf,
    image: Arc<MetadataImage>,
    image_tx: watch::Sender<Arc<MetadataImage>>,
    last_applied: Option<LogId>,
    membership: StoredMembership,
    /// The last snapshot built or installed; shared with the snapshot builder, which runs
    /// beside the state machine.
    snapshot: Arc<Mutex<Option<StoredSnapshot>>>,
    /// Metadata records applied so far (shared with the quorum's counters).
    pub(crate) applied_records: Arc<std::sync::atomic::AtomicU64>,
}

fn snapshot_err(e: impl Into<io::Error>, verb: ErrorVerb) -> StorageError {
    StorageError::from_io_error(ErrorSubject::Snapshot(None), verb, e.into())
}

/// The snapshot file: (after `write_checked`'s CRC) the length of the metadata as JSON, the
/// metadata, then the image bytes as `encode_snapshot` made them.
fn load_snapshot(dir: &Path) -> io::Result<Option<(StoredSnapshot, MetadataImage)>> {
    let path = dir.join(SNAPSHOT_FILE);
    let Some(bytes) = read_checked(&path)? else {
        return Ok(None);
    };
    let bad = |what: String| invalid(format!("{}: {what}", path.display()));
    let (len, rest) = bytes
        .split_first_chunk::<4>()
        .ok_or_else(|| bad("truncated".into()))?;
    let len = u32::from_be_bytes(*len) as usize;
    if rest.len() < len {
        return Err(bad("truncated metadata".into()));
    }
    let (meta, data) = rest.split_at(len);
    let meta: SnapshotMeta = serde_json::from_slice(meta).map_err(|e| bad(e.to_string()))?;
    let image = decode_snapshot(data).map_err(|e| bad(e.to_string()))?;
    let stored = StoredSnapshot {
        meta,
        data: data.to_vec(),
    };
    Ok(Some((stored, image)))
}

fn save_snapshot(dir: &Path, snapshot: &StoredSnapshot) -> io::Result<()> {
    let meta = serde_json::to_vec(&snapshot.meta).map_err(io::Error::other)?;
    let len =
        u32::try_from(meta.len()).map_err(|_| invalid("snapshot metadata too large".into()))?;
    let mut bytes = Vec::with_capacity(4 + meta.len() + snapshot.data.len());
    bytes.extend_from_slice(&len.to_be_bytes());
    bytes.extend_from_slice(&meta);
    bytes.extend_from_slice(&snapshot.data);
    write_checked(dir, SNAPSHOT_FILE, &bytes)
}

/// A Raft term as the image's epoch.
fn epoch(term: u64) -> i32 {
    i32::try_from(term).unwrap_or(i32::MAX)
}

impl StateMachine {
    /// Opens the state machine in `dir`: the last snapshot if there is one, else the empty
    /// image. Also returns the image receiver.
    pub(crate) fn open(
        dir: &Path,
    ) -> io::Result<(StateMachine, watch::Receiver<Arc<MetadataImage>>)> {
        let (image, last_applied, membership, snapshot) = match load_snapshot(dir)? {
            Some((stored, image)) => {
                tracing::info!(
                    last_log_id = ?stored.meta.last_log_id,
                    "loaded the metadata snapshot"
                );
                (
                    Arc::new(image),
                    stored.meta.last_log_id,
                    stored.meta.last_membership.clone(),
                    Some(stored),
                )
            }
            None => (
                Arc::new(MetadataImage::empty()),
                None,
                StoredMembership::default(),
                None,
            ),
        };
        let (image_tx, image_rx) = watch::channel(image.clone());
        Ok((
            StateMachine {
                dir: dir.to_path_buf(),
                image,
                image_tx,
                last_applied,
                membership,
                snapshot: Arc::new(Mutex::new(snapshot)),
                applied_records: Arc::default(),
            },
            image_rx,
        ))
    }

    fn apply_batch(&mut self, log_id: &LogId, bytes: &[u8]) -> ApplyOutcome {
        let records = match decode_batch(bytes) {
            Ok(records) => records,
            Err(e) => return self.reject(log_id, format!("batch does not decode: {e}")),
        };
        let mut delta = MetadataDelta::new(self.image.clone());
        if let Err(e) = delta.replay_all(&records) {
            return self.reject(log_id, format!("batch does not replay: {e}"));
        }
        let provenance = MetadataProvenance {
            offset: i64::try_from(log_id.index).unwrap_or(i64::MAX),
            epoch: epoch(log_id.leader_id.term),
        };
        self.image = Arc::new(delta.apply(provenance));
        self.image_tx.send_replace(self.image.clone());
        self.applied_records
            .fetch_add(records.len() as u64, std::sync::atomic::Ordering::Relaxed);
        ApplyOutcome::default()
    }

    fn reject(&self, log_id: &LogId, reason: String) -> ApplyOutcome {
        tracing::error!(
            index = log_id.index,
            term = log_id.leader_id.term,
            %reason,
            "skipping a committed metadata batch (every node skips it the same way)"
        );
        ApplyOutcome {
            rejected: Some(reason),
        }
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        Ok((self.last_applied, self.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<ApplyOutcome>, StorageError>
    where
        I: IntoIterator<Item = Entry> + Send,
        I::IntoIter: Send,
    {
        let mut outcomes = Vec::new();
        for entry in entries {
            let outcome = match &entry.payload {
                EntryPayload::Blank => ApplyOutcome::default(),
                EntryPayload::Normal(batch) => self.apply_batch(&entry.log_id, &batch.0),
                EntryPayload::Membership(m) => {
                    self.membership = StoredMembership::new(Some(entry.log_id), m.clone());
                    ApplyOutcome::default()
                }
            };
            self.last_applied = Some(entry.log_id);
            outcomes.push(outcome);
        }
        Ok(outcomes)
    }

    async fn get_snapshot_builder(&mut self) -> SnapshotBuilder {
        SnapshotBuilder {
            dir: self.dir.clone(),
            image: self.image.clone(),
            last_applied: self.last_applied,
            membership: self.membership.clone(),
            snapshot: self.snapshot.clone(),
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let data = snapshot.into_inner();
        let image = decode_snapshot(&data).map_err(|e| {
            StorageError::from(StorageIOError::read_snapshot(
                Some(meta.signature()),
                openraft::AnyError::new(&e),
            ))
        })?;
        let stored = StoredSnapshot {
            meta: meta.clone(),
            data,
        };
        {
            let mut current = self.snapshot.lock().expect("snapshot lock poisoned");
            save_snapshot(&self.dir, &stored).map_err(|e| snapshot_err(e, ErrorVerb::Write))?;
            *current = Some(stored);
        }
        tracing::info!(last_log_id = ?meta.last_log_id, "installed a metadata snapshot from the leader");
        self.image = Arc::new(image);
        self.image_tx.send_replace(self.image.clone());
        self.last_applied = meta.last_log_id;
        self.membership = meta.last_membership.clone();
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        let stored = self
            .snapshot
            .lock()
            .expect("snapshot lock poisoned")
            .clone();
        Ok(stored.map(|s| Snapshot {
            meta: s.meta,
            snapshot: Box::new(Cursor::new(s.data)),
        }))
    }
}

/// Builds a snapshot of the image as it was when openraft asked for the builder.
pub(crate) struct SnapshotBuilder {
    dir: PathBuf,
    image: Arc<MetadataImage>,
    last_applied: Option<LogId>,
    membership: StoredMembership,
    snapshot: Arc<Mutex<Option<StoredSnapshot>>>,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        let snapshot_id = match &self.last_applied {
            Some(l) => format!("{}-{}-{}", l.leader_id.term, l.leader_id.node_id, l.index),
            None => "empty".to_string(),
        };
        let stored = StoredSnapshot {
            meta: SnapshotMeta {
                last_log_id: self.last_applied,
                last_membership: self.membership.clone(),
                snapshot_id,
            },
            data: encode_snapshot(&self.image).to_vec(),
        };
        {
            // Under the lock, so an older build finishing late cannot replace a newer snapshot
            // (built or installed) on disk.
            let mut current = self.snapshot.lock().expect("snapshot lock poisoned");
            let newer = current
                .as_ref()
                .is_none_or(|c| c.meta.last_log_id <= stored.meta.last_log_id);
            if newer {
                save_snapshot(&self.dir, &stored).map_err(|e| snapshot_err(e, ErrorVerb::Write))?;
                tracing::info!(last_log_id = ?self.last_applied, bytes = stored.data.len(), "built a metadata snapshot");
                *current = Some(stored.clone());
            }
        }
        Ok(Snapshot {
            meta: stored.meta,
            snapshot: Box::new(Cursor::new(stored.data)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::MetadataBatch;
    use gregor_metadata::{MetadataRecord, TopicRecord};
    use openraft::CommittedLeaderId;

    fn normal(index: u64, bytes: Vec<u8>) -> Entry {
        Entry {
            log_id: LogId::new(CommittedLeaderId::new(2, 1), index),
            payload: EntryPayload::Normal(MetadataBatch(bytes)),
        }
    }

    fn topic(name: &str, id: u128) -> Vec<MetadataRecord> {
        vec![MetadataRecord::Topic(TopicRecord {
            name: name.into(),
            topic_id: uuid::Uuid::from_u128(id),
        })]
    }

    #[tokio::test]
    async fn bad_batches_are_skipped_and_snapshots_reload() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (mut sm, image) = StateMachine::open(dir.path()).expect("open");
        let outcomes = sm
            .apply(vec![
                normal(1, MetadataBatch::encode(&topic("a", 1)).0),
                normal(2, vec![0xff, 0x00, 0x13]),
                // Replays its first record, then fails on the second: none of it applies.
                normal(
                    3,
                    MetadataBatch::encode(&[topic("b", 2), topic("a", 3)].concat()).0,
                ),
                normal(4, MetadataBatch::encode(&topic("c", 4)).0),
            ])
            .await
            .expect("apply");
        let rejected: Vec<bool> = outcomes.iter().map(|o| o.rejected.is_some()).collect();
        assert_eq!(rejected, vec![false, true, true, false]);
        let img = image.borrow().clone();
        let names: Vec<&str> = img.topics().topics().map(|t| t.name.as_str()).collect();
        assert_eq!(names.len(), 2);
        assert!(img.topics().topic_by_name("a").is_some());
        assert!(img.topics().topic_by_name("b").is_none());
        assert_eq!(
            img.provenance(),
            MetadataProvenance {
                offset: 4,
                epoch: 2
            }
        );

        let mut builder = sm.get_snapshot_builder().await;
        let snapshot = builder.build_snapshot().await.expect("build");
        assert_eq!(snapshot.meta.last_log_id.map(|l| l.index), Some(4));
        drop(sm);
        let (mut sm, reloaded) = StateMachine::open(dir.path()).expect("reopen");
        assert_eq!(*reloaded.borrow().clone(), *img);
        assert_eq!(
            sm.applied_state().await.expect("state").0.map(|l| l.index),
            Some(4)
        );

        // A damaged snapshot is an error, not an empty image.
        let path = dir.path().join(SNAPSHOT_FILE);
        let mut bytes = std::fs::read(&path).expect("read");
        let mid = bytes.len() / 2;
        bytes[mid] ^= 1;
        std::fs::write(&path, &bytes).expect("write");
        assert!(StateMachine::open(dir.path()).is_err());
    }
}
