//! The replica manager: every topic and partition this broker hosts, and the operations the
//! request handlers perform on them — create/delete topics, append (produce), read (fetch),
//! wait for durability (group commit) and wait for new data (delayed fetch).
//!
//! ```text
//!  produce ─► validate batches ─► Partition::append ─► Log (page cache) ─► end_offset watch ─► waiting fetches wake
//!                                        │ acks=all
//!                                        ▼
//!                           Partition::wait_durable(offset)
//!                 one flusher at a time per partition: FlushTarget::sync (fdatasync, off the lock)
//!                 everything appended meanwhile rides along on the next fsync (group commit)
//! ```

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};

use gregor_protocol::batch::validate_record_set;
use gregor_protocol::error::ErrorCode;
use gregor_storage::{LogAppendInfo, LogManager, ReadInfo, StorageError, TopicPartition};
use tokio::sync::watch;
use tracing::{error, info, warn};

use crate::config::{BrokerConfig, FlushPolicy};
use crate::metadata::{MetadataImage, TopicRecord};
use crate::topic_config::TopicSettings;

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

/// One partition hosted here (always the leader on a single node).
#[derive(Debug)]
pub struct Partition {
    /// Topic and partition number.
    pub tp: TopicPartition,
    log: Arc<Mutex<gregor_storage::Log>>,
    /// Log end offset; fetches waiting for data watch it.
    end_offset: watch::Sender<i64>,
    /// Offset below which the log is fsynced; acks=all produces wait on it.
    durable: watch::Sender<i64>,
    /// A flush task is running (at most one per partition; others ride along).
    flushing: AtomicBool,
    /// Set after an fsync failure: the log is no longer trusted (Kafka takes the dir offline).
    failed: AtomicBool,
    /// Records appended since the last flush (Kafka's `log.flush.interval.messages`).
    unflushed_records: AtomicI64,
}

impl Partition {
    fn new(tp: TopicPartition, log: Arc<Mutex<gregor_storage::Log>>) -> Result<Self, ErrorCode> {
        let (leo, durable) = {
            let l = log.lock().map_err(|_| ErrorCode::KAFKA_STORAGE_ERROR)?;
            (l.log_end_offset(), l.recovery_point())
        };
        Ok(Partition {
            tp,
            log,
            end_offset: watch::channel(leo).0,
            durable: watch::channel(durable).0,
            flushing: AtomicBool::new(false),
            failed: AtomicBool::new(false),
            unflushed_records: AtomicI64::new(0),
        })
    }

    fn lock(&self) -> Result<MutexGuard<'_, gregor_storage::Log>, ErrorCode> {
        self.log.lock().map_err(|_| ErrorCode::KAFKA_STORAGE_ERROR)
    }

    /// Log start offset, log end offset (= high watermark on a single node).
    pub fn offsets(&self) -> Result<(i64, i64), ErrorCode> {
        let l = self.lock()?;
        Ok((l.log_start_offset(), l.log_end_offset()))
    }

    /// High watermark: what consumers may read. A single node's ISR is itself, so it is the
    /// log end offset.
    pub fn high_watermark(&self) -> i64 {
        *self.end_offset.borrow()
    }

    /// Subscribes to log-end-offset changes (delayed fetch).
    pub fn watch_end_offset(&self) -> watch::Receiver<i64> {
        self.end_offset.subscribe()
    }

    /// Validates and appends a produced record set: the records go from the request buffer to
    /// the log file in one vectored write (rewritten batch headers only, no copy).
    pub fn append(
        &self,
        records: &[u8],
        settings: &TopicSettings,
    ) -> Result<LogAppendInfo, ErrorCode> {
        if self.failed.load(Ordering::Acquire) {
            return Err(ErrorCode::KAFKA_STORAGE_ERROR);
        }
        let validated =
            validate_record_set(records, settings.max_message_bytes).map_err(|e| e.error_code())?;
        let info = {
            let mut log = self.lock()?;
            log.append_as_leader(&validated, 0, now_ms(), settings.log_append_time)
                .map_err(|e| storage_error_code(&self.tp, e))?
        };
        self.unflushed_records
            .fetch_add(validated.summary().offset_count, Ordering::AcqRel);
        self.end_offset.send_replace(info.last_offset + 1);
        Ok(info)
    }

    /// Reads for a fetch; `upper_bound` is the high watermark.
    pub fn read(
        &self,
        offset: i64,
        max_bytes: usize,
        min_one_batch: bool,
    ) -> Result<ReadInfo, ErrorCode> {
        let log = self.lock()?;
        let hw = log.log_end_offset();
        log.read(offset, max_bytes, hw, min_one_batch)
            .map_err(|e| storage_error_code(&self.tp, e))
    }

    /// ListOffsets by timestamp.
    pub fn offset_for_timestamp(&self, ts: i64) -> Result<Option<(i64, i64)>, ErrorCode> {
        self.lock()?
            .offset_for_timestamp(ts)
            .map_err(|e| storage_error_code(&self.tp, e))
    }

    /// ListOffsets MAX_TIMESTAMP (-3): the record with the largest timestamp, as
    /// `(offset, timestamp)`.
    pub fn max_timestamp(&self) -> Result<Option<(i64, i64)>, ErrorCode> {
        Ok(self.lock()?.max_timestamp())
    }

    /// Waits until everything below `offset` is fsynced. Concurrent callers share fsyncs.
    pub async fn wait_durable(self: &Arc<Self>, offset: i64) -> Result<(), ErrorCode> {
        let mut rx = self.durable.subscribe();
        loop {
            if *rx.borrow_and_update() >= offset {
                return Ok(());
            }
            if self.failed.load(Ordering::Acquire) {
                return Err(ErrorCode::KAFKA_STORAGE_ERROR);
            }
            self.start_flush();
            if rx.changed().await.is_err() {
                return Err(ErrorCode::KAFKA_STORAGE_ERROR);
            }
        }
    }

    /// Starts a flush task unless one is running. The task is detached so that a client that
    /// disconnects mid-wait cannot leave the partition with a flush that never finishes.
    pub fn start_flush(self: &Arc<Self>) {
        if self.flushing.swap(true, Ordering::AcqRel) {
            return;
        }
        let me = Arc::clone(self);
        tokio::spawn(async move { me.run_flush().await });
    }

    async fn run_flush(self: Arc<Self>) {
        // The target is taken on the blocking thread right before the fsync, not when the flush
        // was asked for: whatever was appended while the flush waited for a thread rides along.
        let me = Arc::clone(&self);
        let result = tokio::task::spawn_blocking(move || me.flush_now()).await;
        let mut durable = *self.durable.borrow();
        match result {
            Ok(Ok(end)) => durable = durable.max(end),
            Ok(Err(e)) => {
                error!(partition = %tp_name(&self.tp), error = %e, "fsync failed; partition taken offline");
                self.failed.store(true, Ordering::Release);
            }
            Err(e) => {
                error!(partition = %tp_name(&self.tp), error = %e, "flush task failed");
                self.failed.store(true, Ordering::Release);
            }
        }
        self.flushing.store(false, Ordering::Release);
        // Always notify, even without progress, so waiters re-check (and start the next flush).
        self.durable.send_replace(durable);
    }

    /// Blocking: fsyncs everything appended so far and returns the offset now durable (the
    /// recovery point when there was nothing to sync).
    fn flush_now(&self) -> std::io::Result<i64> {
        let poisoned = || std::io::Error::other("partition log lock poisoned");
        let target = {
            let mut log = self.log.lock().map_err(|_| poisoned())?;
            match log.flush_target() {
                Some(t) => t,
                None => return Ok(log.recovery_point()),
            }
        };
        let pending = self.unflushed_records.swap(0, Ordering::AcqRel);
        if let Err(e) = target.sync() {
            self.unflushed_records.fetch_add(pending, Ordering::AcqRel);
            return Err(e);
        }
        self.log
            .lock()
            .map_err(|_| poisoned())?
            .mark_flushed(target.end_offset);
        Ok(target.end_offset)
    }

    /// Records appended and not yet flushed.
    pub fn unflushed_records(&self) -> i64 {
        self.unflushed_records.load(Ordering::Acquire)
    }
}

fn tp_name(tp: &TopicPartition) -> String {
    format!("{}-{}", tp.topic, tp.partition)
}

fn storage_error_code(tp: &TopicPartition, e: StorageError) -> ErrorCode {
    match e {
        StorageError::OffsetOutOfRange { .. } => ErrorCode::OFFSET_OUT_OF_RANGE,
        // A request that raced the topic's deletion.
        StorageError::Deleted { .. } => ErrorCode::UNKNOWN_TOPIC_OR_PARTITION,
        StorageError::InvalidRecords(b) => b.error_code(),
        other => {
            error!(partition = %tp_name(tp), error = %other, "storage error");
            ErrorCode::KAFKA_STORAGE_ERROR
        }
    }
}

/// A topic hosted here.
#[derive(Debug)]
pub struct Topic {
    /// Persisted description (name, id, partition count, overrides).
    pub record: TopicRecord,
    /// Effective settings.
    pub settings: TopicSettings,
    /// Partitions, indexed by partition number.
    pub partitions: Vec<Arc<Partition>>,
}

/// Why a topic could not be created.
#[derive(Debug)]
pub struct CreateTopicError {
    /// Kafka error code.
    pub code: ErrorCode,
    /// Message for the client.
    pub message: String,
}

/// All topics and partitions of this broker.
#[derive(Debug)]
pub struct ReplicaManager {
    config: Arc<BrokerConfig>,
    logs: LogManager,
    /// The persisted image and the live topics, changed together under one lock.
    state: RwLock<State>,
    /// Names of topics being created (their logs are made outside `state`'s lock).
    creating: Mutex<HashSet<String>>,
}

/// A creation that takes longer than this is logged at WARN.
const SLOW_CREATION: std::time::Duration = std::time::Duration::from_secs(1);

/// A topic name claimed by one creator until dropped.
struct CreationClaim<'a> {
    creating: &'a Mutex<HashSet<String>>,
    name: String,
}

impl<'a> CreationClaim<'a> {
    /// Claims `name`, or `None` if another creation of it is under way.
    fn take(creating: &'a Mutex<HashSet<String>>, name: &str) -> Option<CreationClaim<'a>> {
        let mut names = creating.lock().unwrap_or_else(|p| p.into_inner());
        names.insert(name.to_string()).then(|| CreationClaim {
            creating,
            name: name.to_string(),
        })
    }
}

impl Drop for CreationClaim<'_> {
    fn drop(&mut self) {
        self.creating
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&self.name);
    }
}

#[derive(Debug)]
struct State {
    image: MetadataImage,
    topics: HashMap<String, Arc<Topic>>,
}

impl ReplicaManager {
    /// Opens the data directory: metadata, then every topic's logs (recovering after a crash).
    pub fn open(config: Arc<BrokerConfig>) -> anyhow::Result<ReplicaManager> {
        std::fs::create_dir_all(&config.data_dir)?;
        let logs = LogManager::open(&config.data_dir)?;
        let image = MetadataImage::load_or_init(&config.data_dir)?;
        let mut topics = HashMap::new();
        for record in image.topics.values() {
            let topic = open_topic(&config, &logs, record.clone())?;
            topics.insert(record.name.clone(), Arc::new(topic));
        }
        for tp in logs.existing_partitions()? {
            let known = image
                .topics
                .get(&tp.topic)
                .is_some_and(|t| tp.partition < t.partitions);
            if !known {
                warn!(partition = %tp_name(&tp), "removing log of a topic that no longer exists");
                logs.delete(&tp)?;
            }
        }
        info!(topics = topics.len(), cluster_id = %image.cluster_id, "metadata loaded");
        Ok(ReplicaManager {
            config,
            logs,
            state: RwLock::new(State { image, topics }),
            creating: Mutex::new(HashSet::new()),
        })
    }

    /// Broker configuration.
    pub fn config(&self) -> &BrokerConfig {
        &self.config
    }

    /// Cluster id.
    pub fn cluster_id(&self) -> String {
        self.read_state().image.cluster_id.clone()
    }

    fn read_state(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write_state(&self) -> std::sync::RwLockWriteGuard<'_, State> {
        self.state.write().unwrap_or_else(|p| p.into_inner())
    }

    /// A topic by name.
    pub fn topic(&self, name: &str) -> Option<Arc<Topic>> {
        self.read_state().topics.get(name).cloned()
    }

    /// A topic by id.
    pub fn topic_by_id(&self, id: uuid::Uuid) -> Option<Arc<Topic>> {
        self.read_state()
            .topics
            .values()
            .find(|t| t.record.id == id)
            .cloned()
    }

    /// All topics, sorted by name.
    pub fn topics(&self) -> Vec<Arc<Topic>> {
        let mut v: Vec<_> = self.read_state().topics.values().cloned().collect();
        v.sort_by(|a, b| a.record.name.cmp(&b.record.name));
        v
    }

    /// A partition, if hosted here.
    pub fn partition(&self, topic: &str, partition: i32) -> Option<(Arc<Topic>, Arc<Partition>)> {
        let t = self.topic(topic)?;
        let p = usize::try_from(partition)
            .ok()
            .and_then(|i| t.partitions.get(i))?
            .clone();
        Some((t, p))
    }

    /// Creates a topic (already validated by the caller except for existence).
    ///
    /// The partitions' directories and segments are made first, outside the state lock, so
    /// Metadata, Produce and Fetch on other connections carry on meanwhile; then the topic is
    /// published (metadata file rewritten, topic inserted) under a short write lock. A failure
    /// removes exactly the partitions this call made. The name is claimed for the duration so
    /// that two creators of one name never build the same logs.
    pub fn create_topic(
        &self,
        name: &str,
        partitions: i32,
        replication_factor: i16,
        configs: BTreeMap<String, String>,
    ) -> Result<Arc<Topic>, CreateTopicError> {
        let already_exists = || CreateTopicError {
            code: ErrorCode::TOPIC_ALREADY_EXISTS,
            message: format!("Topic '{name}' already exists."),
        };
        let storage_failure = |e: String| CreateTopicError {
            code: ErrorCode::KAFKA_STORAGE_ERROR,
            message: e,
        };
        let Some(_claim) = CreationClaim::take(&self.creating, name) else {
            return Err(already_exists());
        };
        if self.read_state().topics.contains_key(name) {
            return Err(already_exists());
        }
        let started = std::time::Instant::now();
        let record = TopicRecord {
            name: name.to_string(),
            id: uuid::Uuid::new_v4(),
            partitions,
            replication_factor,
            configs,
        };
        let topic = match create_logs(&self.config, &self.logs, record.clone()) {
            Ok(t) => Arc::new(t),
            Err((made, e)) => {
                warn!(topic = name, partitions, made, error = %e, "topic creation failed; removing the partitions it made");
                self.remove_logs(name, made);
                return Err(storage_failure(e.to_string()));
            }
        };
        {
            let mut state = self.write_state();
            state.image.topics.insert(name.to_string(), record);
            if let Err(e) = state.image.store(&self.config.data_dir) {
                state.image.topics.remove(name);
                drop(state);
                warn!(topic = name, error = %e, "cannot persist the new topic; removing its partitions");
                self.remove_logs(name, partitions);
                return Err(storage_failure(e.to_string()));
            }
            state.topics.insert(name.to_string(), Arc::clone(&topic));
        }
        let elapsed = started.elapsed();
        if elapsed >= SLOW_CREATION {
            warn!(
                topic = name,
                partitions,
                elapsed_ms = elapsed.as_millis() as u64,
                "slow topic creation"
            );
        } else {
            info!(topic = name, partitions, "created topic");
        }
        Ok(topic)
    }

    /// Removes the logs of partitions `0..count` of `topic` (a creation that did not finish).
    fn remove_logs(&self, topic: &str, count: i32) {
        for p in 0..count {
            let tp = TopicPartition {
                topic: topic.to_string(),
                partition: p,
            };
            if let Err(e) = self.logs.delete(&tp) {
                // Not named by the metadata: startup removes what is left.
                warn!(partition = %tp_name(&tp), error = %e, "cannot remove log directory");
            }
        }
    }

    /// Deletes a topic and its logs.
    ///
    /// The metadata is persisted first and the logs removed after, so a crash in between leaves
    /// orphan directories that startup removes. On a full disk the metadata cannot be rewritten
    /// (its new copy needs blocks), and deleting is how an operator frees space: then the logs go
    /// first and the metadata is persisted after. A crash between those two steps brings the
    /// topic back empty at the next start (its logs are gone either way).
    pub fn delete_topic(&self, name: &str) -> Result<uuid::Uuid, ErrorCode> {
        let mut state = self.write_state();
        let Some(topic) = state.topics.get(name).cloned() else {
            return Err(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION);
        };
        let record = state.image.topics.remove(name);
        let persisted_first = match state.image.store(&self.config.data_dir) {
            Ok(()) => true,
            Err(e) if e.is_disk_full() => {
                warn!(topic = name, error = %e,
                    "disk full: deleting the topic's logs before persisting its deletion");
                false
            }
            Err(e) => {
                error!(topic = name, error = %e, "cannot persist topic deletion");
                if let Some(r) = record {
                    state.image.topics.insert(name.to_string(), r);
                }
                return Err(ErrorCode::KAFKA_STORAGE_ERROR);
            }
        };
        state.topics.remove(name);
        for p in &topic.partitions {
            if let Err(e) = self.logs.delete(&p.tp) {
                // The metadata no longer names the topic (or will not, below); startup removes
                // what is left.
                warn!(partition = %tp_name(&p.tp), error = %e, "cannot remove log directory");
            }
        }
        if !persisted_first {
            // The state lock is still held: no other metadata change can slip in between.
            if let Err(e) = state.image.store(&self.config.data_dir) {
                error!(topic = name, error = %e,
                    "topic's logs deleted but its deletion cannot be persisted; it comes back \
                     empty at the next start unless deleted again");
                return Err(ErrorCode::KAFKA_STORAGE_ERROR);
            }
        }
        drop(state);
        info!(topic = name, "deleted topic");
        Ok(topic.record.id)
    }

    /// Periodic work: retention.
    pub fn apply_retention(&self) {
        match self.logs.apply_retention(now_ms()) {
            Ok(0) => {}
            Ok(n) => info!(segments = n, "retention deleted segments"),
            Err(e) => error!(error = %e, "retention failed"),
        }
        // The log start offset may have moved; nothing else to notify on a single node.
    }

    /// Periodic work: recovery-point checkpoints.
    pub fn checkpoint(&self) {
        if let Err(e) = self.logs.checkpoint() {
            error!(error = %e, "checkpoint failed");
        }
    }

    /// Kafka's flush policy: flush partitions with at least `messages` unflushed records, or
    /// all with unflushed data when `by_time`.
    pub fn flush_by_policy(&self, by_time: bool) {
        let FlushPolicy::Interval { messages, .. } = self.config.flush else {
            return;
        };
        for t in self.topics() {
            for p in &t.partitions {
                let n = p.unflushed_records();
                if n > 0 && (by_time || n >= messages) {
                    p.start_flush();
                }
            }
        }
    }

    /// Clean shutdown: flush everything and leave the clean-shutdown marker.
    pub fn shutdown(&self) -> Result<(), StorageError> {
        self.logs.shutdown()
    }
}

fn open_topic(
    config: &BrokerConfig,
    logs: &LogManager,
    record: TopicRecord,
) -> anyhow::Result<Topic> {
    create_logs(config, logs, record).map_err(|(_, e)| e)
}

/// Makes the logs of a new topic, with one fsync of the data directory for all of them; on
/// failure, returns how many partitions (`0..made`) it made, so the caller removes those and
/// nothing else.
fn create_logs(
    config: &BrokerConfig,
    logs: &LogManager,
    record: TopicRecord,
) -> Result<Topic, (i32, anyhow::Error)> {
    let settings = TopicSettings::resolve(config, &record.configs);
    let mut partitions = Vec::with_capacity(usize::try_from(record.partitions).unwrap_or(0));
    for p in 0..record.partitions {
        let tp = TopicPartition {
            topic: record.name.clone(),
            partition: p,
        };
        let log = logs
            .get_or_create_unsynced(&tp, settings.log.clone())
            // p + 1: a failed open may have left partition p's directory behind.
            .map_err(|e| (p + 1, e.into()))?;
        let partition = Partition::new(tp, log)
            .map_err(|c| (p + 1, anyhow::anyhow!("cannot open partition {p}: {c}")))?;
        partitions.push(Arc::new(partition));
    }
    logs.sync_data_dir()
        .map_err(|e| (record.partitions, e.into()))?;
    Ok(Topic {
        record,
        settings,
        partitions,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use gregor_protocol::batch::encode_simple_batch;

    /// A replica manager on a temp dir with one single-partition topic `t`.
    fn one_partition() -> (tempfile::TempDir, ReplicaManager, Arc<Topic>) {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = Arc::new(BrokerConfig {
            data_dir: dir.path().to_path_buf(),
            ..Default::default()
        });
        let rm = ReplicaManager::open(config).expect("open");
        let topic = rm.create_topic("t", 1, 1, BTreeMap::new()).expect("create");
        (dir, rm, topic)
    }

    #[test]
    fn appends_are_listed_by_timestamp_and_max_timestamp() {
        let (_dir, _rm, topic) = one_partition();
        let part = &topic.partitions[0];
        for ts in [10, 30, 20] {
            let batch = encode_simple_batch(ts, &[(None, Some(&b"v"[..]))]);
            part.append(&batch, &topic.settings).expect("append");
        }
        assert_eq!(part.offsets().expect("offsets"), (0, 3));
        assert_eq!(part.max_timestamp().expect("max"), Some((1, 30)));
        assert_eq!(part.offset_for_timestamp(15).expect("ts"), Some((1, 30)));
        assert_eq!(part.offset_for_timestamp(31).expect("ts"), None);
        // A corrupt batch is refused with CORRUPT_MESSAGE and leaves the log as it was.
        let mut bad = encode_simple_batch(40, &[(None, Some(&b"v"[..]))]);
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert_eq!(
            part.append(&bad, &topic.settings),
            Err(ErrorCode::CORRUPT_MESSAGE)
        );
        assert_eq!(part.offsets().expect("offsets"), (0, 3));
    }

    /// Concurrent acks=all producers on one partition (group commit): every wait ends with its
    /// records durable, and at the end the durable offset, the recovery point and the log end
    /// agree and no flush is left running.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_waits_share_flushes() {
        let (_dir, _rm, topic) = one_partition();
        let part = Arc::clone(&topic.partitions[0]);
        let settings = Arc::new(topic.settings.clone());
        let (producers, batches) = (8, 40);
        let mut tasks = Vec::new();
        for _ in 0..producers {
            let part = Arc::clone(&part);
            let settings = Arc::clone(&settings);
            tasks.push(tokio::spawn(async move {
                let value = vec![7u8; 4096];
                for _ in 0..batches {
                    let batch = encode_simple_batch(1, &[(None, Some(&value[..]))]);
                    let info = part.append(&batch, &settings).expect("append");
                    part.wait_durable(info.last_offset + 1)
                        .await
                        .expect("durable");
                    assert!(*part.durable.borrow() > info.last_offset);
                }
            }));
        }
        let all = async {
            for t in tasks {
                t.await.expect("producer");
            }
        };
        tokio::time::timeout(std::time::Duration::from_secs(60), all)
            .await
            .expect("every wait ends");
        let leo = i64::from(producers * batches);
        assert_eq!(part.offsets().expect("offsets"), (0, leo));
        assert_eq!(*part.durable.borrow(), leo);
        assert_eq!(part.lock().expect("log").recovery_point(), leo);
        assert!(!part.flushing.load(Ordering::Acquire));
    }
}
