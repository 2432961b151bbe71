//! The metadata log as the controller sees it: propose a batch of records, watch the image
//! they build.
//!
//! ```text
//!  QuorumController ── propose(records) ──► MetadataLog ──► (Raft: replicate, commit)
//!         ▲                                     │ replay through MetadataDelta, in order
//!         └──── image(): watch<Arc<MetadataImage>> ◄┘ (published after each applied batch)
//! ```
//!
//! [`MetadataLog`] is what the controller needs from a metadata quorum and nothing more. The
//! Raft quorum implements it on a controller node; [`LocalMetadataLog`] is an in-memory,
//! single-node log for tests (and for a broker's unit tests that want a real image).
//!
//! Offsets: every record has one, growing by one per record within a batch; a batch's offset is
//! its last record's, and an image's provenance offset is the last record it holds. A Raft
//! implementation that gives one log index to a whole batch satisfies the controller as well:
//! it only needs offsets that grow, and a broker epoch taken before a proposal (the image's
//! offset + 1) that is not above the offset the registration gets.

use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;
use futures::FutureExt;
use gregor_metadata::{
    MetadataDelta, MetadataImage, MetadataProvenance, MetadataRecord, ReplayError,
};
use tokio::sync::watch;

/// A proposal that was not committed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProposeError {
    /// This node is not (or no longer) the active controller: the caller answers NOT_CONTROLLER
    /// and the controller runtime stops.
    #[error("this node is not the active controller")]
    NotLeader,
    /// The records do not apply to the image (a controller bug: its decisions replay on the
    /// image they were made from).
    #[error("the records do not apply to the metadata image: {0}")]
    Invalid(#[from] ReplayError),
    /// The log is shutting down or failed; the proposal may or may not have been committed.
    #[error("the metadata log is unavailable: {0}")]
    Unavailable(String),
}

/// The metadata log of the quorum, as the active controller uses it.
pub trait MetadataLog: Send + Sync + 'static {
    /// The committed, applied image (updated atomically after each applied batch).
    fn image(&self) -> watch::Receiver<Arc<MetadataImage>>;

    /// Appends the records as one atomic batch; resolves once committed and applied to
    /// [`image`](Self::image), with the batch's offset. Fails with
    /// [`ProposeError::NotLeader`] when this node is not (or no longer) the active controller.
    ///
    /// The future must resolve, with the commit or an error: the controller decides nothing
    /// else until it does, so that no decision is made on an image missing its predecessor's
    /// records.
    fn propose(
        &self,
        records: Vec<MetadataRecord>,
    ) -> BoxFuture<'static, Result<u64, ProposeError>>;

    /// Stops sending the log to `node`, a broker-only node that was unregistered (the quorum
    /// removes it as a learner; a voter stays). Best effort: a node that is in fact still
    /// running joins again. Logs without the notion (tests) do nothing.
    fn forget_learner(&self, node: i32) -> BoxFuture<'static, ()> {
        let _ = node;
        Box::pin(async {})
    }
}

/// An in-memory metadata log on one node: a proposal commits at once, replayed through
/// [`MetadataDelta`] like a broker replays the real log. Clones share the log.
#[derive(Clone)]
pub struct LocalMetadataLog {
    inner: Arc<Mutex<Local>>,
    image: watch::Sender<Arc<MetadataImage>>,
}

struct Local {
    /// Whether proposals are accepted (a test turns it off to play a lost leadership).
    leader: bool,
    /// Every committed record with its offset, for tests to inspect.
    records: Vec<(i64, MetadataRecord)>,
}

impl LocalMetadataLog {
    /// An empty log, leading.
    pub fn new() -> LocalMetadataLog {
        let (image, _) = watch::channel(Arc::new(MetadataImage::empty()));
        LocalMetadataLog {
            inner: Arc::new(Mutex::new(Local {
                leader: true,
                records: Vec::new(),
            })),
            image,
        }
    }

    /// Whether this node accepts proposals; `false` makes them fail with `NotLeader`.
    pub fn set_leader(&self, leader: bool) {
        self.lock().leader = leader;
    }

    /// The committed records, with their offsets.
    pub fn records(&self) -> Vec<(i64, MetadataRecord)> {
        self.lock().records.clone()
    }

    /// The current image.
    pub fn current(&self) -> Arc<MetadataImage> {
        self.image.borrow().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Local> {
        // A panic while holding the lock leaves consistent data: the image is published only
        // after the whole batch replayed.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn append(&self, records: Vec<MetadataRecord>) -> Result<u64, ProposeError> {
        let mut local = self.lock();
        if !local.leader {
            return Err(ProposeError::NotLeader);
        }
        let base = self.image.borrow().clone();
        let first = base.provenance().offset + 1;
        if records.is_empty() {
            return Ok(u64::try_from(base.provenance().offset).unwrap_or(0));
        }
        let mut delta = MetadataDelta::new(base);
        delta.replay_all(&records)?;
        let last = first + records.len() as i64 - 1;
        let image = delta.apply(MetadataProvenance {
            offset: last,
            epoch: 1,
        });
        local.records.extend((first..).zip(records));
        self.image.send_replace(Arc::new(image));
        Ok(u64::try_from(last).unwrap_or(0))
    }
}

impl Default for LocalMetadataLog {
    fn default() -> LocalMetadataLog {
        LocalMetadataLog::new()
    }
}

impl MetadataLog for LocalMetadataLog {
    fn image(&self) -> watch::Receiver<Arc<MetadataImage>> {
        self.image.subscribe()
    }

    fn propose(
        &self,
        records: Vec<MetadataRecord>,
    ) -> BoxFuture<'static, Result<u64, ProposeError>> {
        futures::future::ready(self.append(records)).boxed()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gregor_metadata::{RegisterBrokerRecord, TopicRecord};

    fn register(id: i32, epoch: i64) -> MetadataRecord {
        MetadataRecord::RegisterBroker(RegisterBrokerRecord {
            log_dirs: Vec::new(),
            broker_id: id,
            incarnation_id: uuid::Uuid::from_u128(id as u128 + 1),
            broker_epoch: epoch,
            endpoints: vec![],
            rack: None,
            fenced: true,
        })
    }

    #[tokio::test]
    async fn batches_commit_atomically_and_publish_the_image() {
        let log = LocalMetadataLog::new();
        let mut rx = log.image();
        assert_eq!(
            log.propose(vec![register(1, 0), register(2, 1)]).await,
            Ok(1)
        );
        assert!(rx.has_changed().expect("sender alive"));
        let image = rx.borrow_and_update().clone();
        assert_eq!(image.provenance().offset, 1);
        assert_eq!(image.cluster().brokers().count(), 2);
        // A batch that does not replay changes nothing.
        let bad = vec![
            register(3, 2),
            MetadataRecord::Topic(TopicRecord {
                name: "bad name!".into(),
                topic_id: uuid::Uuid::from_u128(9),
            }),
        ];
        assert!(matches!(
            log.propose(bad).await,
            Err(ProposeError::Invalid(_))
        ));
        assert_eq!(log.current().cluster().brokers().count(), 2);
        assert_eq!(log.records().len(), 2);
        log.set_leader(false);
        assert_eq!(
            log.propose(vec![register(3, 2)]).await,
            Err(ProposeError::NotLeader)
        );
    }
}
