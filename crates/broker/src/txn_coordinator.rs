//! The transaction coordinator's runtime (Kafka's `TransactionCoordinator` with its
//! `TransactionStateManager` and `TransactionMarkerChannelManager`): drives the I/O-free core
//! (`gregor-txn`) with the clock, persists its decisions in the internal compacted topic
//! `__transaction_state`, writes the transaction markers to the partitions' leaders, and
//! follows the leadership of `__transaction_state`'s partitions.
//!
//! ```text
//!  handler ─► status of the id's partition (NOT_COORDINATOR / COORDINATOR_LOAD_IN_PROGRESS)
//!          ─► core decision (under the core lock) ─► Decision { error, write, markers }
//!               write ─► append to __transaction_state-<p> (acks=all: ISR + fsync)
//!                     ─► core.write_completed ─► answer `error`
//!               markers ─► marker task: partitions grouped by leader ─► each broker's
//!                          marker sender (one WriteTxnMarkers at a time, carrying every
//!                          marker queued meanwhile), retried on leader changes
//!                          ─► core.markers_written ─► Complete* appended
//!  leadership (after every applied image): newly led partitions are loaded by replaying them
//!     (their Prepare* transactions get their markers again); partitions no longer led are
//!     unloaded
//!  timers: transaction.abort.timed.out.transaction.cleanup.interval.ms ─► abort_timed_out
//!          transaction.remove.expired.transaction.cleanup.interval.ms ─► expire (tombstones)
//! ```
//!
//! The coordinator epoch sent with the markers is the leader epoch of the id's
//! `__transaction_state` partition, as in Kafka. EndTxn is answered once its Prepare* record is
//! durable; the markers follow in the background (Kafka does not wait for them either), and
//! requests for the transaction meanwhile wait for its completion (at most `SETTLE_WAIT`,
//! then CONCURRENT_TRANSACTIONS, which Kafka answers at once). The Complete* record is
//! installed as soon as it is appended: the markers are durable by then, and the id's next
//! record, which its request waits for, lands after it in the same log.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
use gregor_client::{ClientConfig, Connection};
use gregor_controller::protocol::CreatableTopic;
use gregor_controller::ControllerChannel;
use gregor_metadata::TRANSACTION_VERSION_FEATURE;
use gregor_protocol::error::ErrorCode;
use gregor_protocol::messages::write_txn_markers_request::{
    WritableTxnMarker, WritableTxnMarkerTopic,
};
use gregor_protocol::messages::{ProducerId, WriteTxnMarkersRequest};
use gregor_protocol::records::RecordBatchDecoder;
use gregor_txn::{
    code, is_epoch_exhausted, record_for, Decision, InitProducerIdRequest, ProducerIdAndEpoch,
    TopicPartition, TransactionCoordinator, TransactionMetadata, TransactionResult, TxnConfig,
    TxnMarkers,
};
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, error, info, warn};

use crate::clock::Clock;
use crate::config::BrokerConfig;
use crate::partition::{FetchIsolation, Partition};
use crate::producer_id_manager::ProducerIdManager;
use crate::replica_manager::ReplicaManager;

/// Name of the internal transaction state topic.
pub const TRANSACTION_STATE_TOPIC: &str = gregor_txn::TRANSACTION_STATE_TOPIC;

/// Kafka's TRANSACTIONAL_ID_NOT_FOUND (DescribeTransactions).
pub const TRANSACTIONAL_ID_NOT_FOUND: i16 = 105;

/// How long a `__transaction_state` record waits for the ISR of its partition.
const APPEND_TIMEOUT: Duration = Duration::from_secs(5);
/// First pause before markers are sent again (doubled up to [`MARKER_BACKOFF_MAX`]).
const MARKER_BACKOFF_MIN: Duration = Duration::from_millis(50);
const MARKER_BACKOFF_MAX: Duration = Duration::from_secs(2);
/// One WriteTxnMarkers exchange (Kafka's `request.timeout.ms` for the marker channel).
const MARKER_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a request for a transactional id waits while the id is between two states (a
/// write in flight, or a decided transaction whose markers are being written) before it is
/// decided anyway (then answered CONCURRENT_TRANSACTIONS, as Kafka answers at once). EndTxn
/// is answered once its Prepare* record is durable, as Kafka does; a producer that begins its
/// next transaction at once sends its AddPartitionsToTxn (or, under transactions version 2,
/// its first produce) while the markers are still going out. Kafka answers it
/// CONCURRENT_TRANSACTIONS and the client (or the partition leader) retries after a backoff
/// of 20 to 100 ms; holding it until the transaction completes spares that backoff.
pub(crate) const SETTLE_WAIT: Duration = Duration::from_secs(1);

/// The replication factor `__transaction_state` is created with:
/// `transaction.state.log.replication.factor` capped by the cluster's size as configured (its
/// voters; one for a lone node), as `__consumer_offsets`' is.
pub fn transaction_state_replication_factor(config: &BrokerConfig) -> usize {
    config
        .cluster
        .internal_replication_factor(config.txn.state_log_replication_factor)
}

/// The CreateTopics entry for `__transaction_state`: `transaction.state.log.num.partitions`,
/// `replication_factor` replicas, compacted, `transaction.state.log.segment.bytes`, and
/// `transaction.state.log.min.isr` as its `min.insync.replicas` (at most the replication
/// factor, so a lone node can write it).
pub fn transaction_state_topic(config: &BrokerConfig, replication_factor: usize) -> CreatableTopic {
    let rf = i16::try_from(replication_factor.max(1)).unwrap_or(i16::MAX);
    let min_isr = config.txn.state_log_min_isr.clamp(1, i32::from(rf));
    CreatableTopic {
        name: TRANSACTION_STATE_TOPIC.to_string(),
        num_partitions: config.txn.state_log_num_partitions,
        replication_factor: rf,
        assignments: Vec::new(),
        configs: vec![
            ("cleanup.policy".to_string(), Some("compact".to_string())),
            (
                "segment.bytes".to_string(),
                Some(config.txn.state_log_segment_bytes.to_string()),
            ),
            ("min.insync.replicas".to_string(), Some(min_isr.to_string())),
            (
                "unclean.leader.election.enable".to_string(),
                Some("false".to_string()),
            ),
        ],
    }
}

/// Where this broker stands with one `__transaction_state` partition it leads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PartitionStatus {
    /// Being replayed: its ids' requests get COORDINATOR_LOAD_IN_PROGRESS.
    Loading,
    /// Loaded in this leader epoch (the coordinator epoch of its markers).
    Loaded { coordinator_epoch: i32 },
}

/// The transaction coordinator of the `__transaction_state` partitions this broker leads.
pub struct TxnRuntime {
    /// The decisions and the cache of every loaded transactional id. Lock order: `core`, then
    /// `status`.
    core: Mutex<TransactionCoordinator>,
    /// The partitions this broker coordinates (loaded) or is loading.
    status: Mutex<HashMap<i32, PartitionStatus>>,
    /// One leadership sync at a time (the follow task, and the tests).
    sync: Mutex<()>,
    clock: Arc<dyn Clock>,
    config: Arc<BrokerConfig>,
    replicas: Arc<ReplicaManager>,
    /// New producer ids (controller-allocated blocks).
    producer_ids: Arc<ProducerIdManager>,
    /// Creates `__transaction_state` on first need.
    controller: Arc<dyn ControllerChannel>,
    /// A creation of `__transaction_state` is under way.
    creating: crate::internal_topic::OnDemandTopic,
    /// The queue of each broker's marker sender (Kafka's marker channel): one connection and
    /// one WriteTxnMarkers at a time per broker, carrying every marker queued meanwhile.
    marker_queues: Mutex<HashMap<i32, mpsc::UnboundedSender<QueuedMarker>>>,
    /// Woken whenever a transactional id's state settles (a write installed or failed, a
    /// partition loaded or unloaded): requests held by [`TxnRuntime::settled`] look again.
    settled: tokio::sync::Notify,
}

impl std::fmt::Debug for TxnRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TxnRuntime")
            .field("status", &self.status.lock().map(|s| s.len()).unwrap_or(0))
            .finish_non_exhaustive()
    }
}

/// When a `__transaction_state` record is installed in the coordinator's cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Commit {
    /// Once the ISR has it (and it is fsynced under the default flush policy): every record a
    /// request is answered on.
    Acked,
    /// Once it is in the leader's log: a Complete* record, whose markers are durable already.
    Appended,
}

/// One transaction's marker waiting for its broker's next WriteTxnMarkers.
struct QueuedMarker {
    marker: WritableTxnMarker,
    producer_id: i64,
    partitions: Vec<TopicPartition>,
    /// Each partition's error code, or why the request failed as a whole.
    reply: oneshot::Sender<Result<Vec<(TopicPartition, i16)>, String>>,
}

/// What a per-partition answer to WriteTxnMarkers means for the marker (Kafka's
/// `TransactionMarkerRequestCompletionHandler`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MarkerOutcome {
    /// Written (or the partition cannot take markers: dropped as Kafka does).
    Done,
    /// Send again once the leader may have changed.
    Retry,
    /// The producer or coordinator epoch is stale: stop; a newer coordinator or epoch takes over.
    Stop,
}

fn marker_outcome(error: i16) -> MarkerOutcome {
    match ErrorCode(error) {
        ErrorCode::NONE | ErrorCode::UNSUPPORTED_FOR_MESSAGE_FORMAT => MarkerOutcome::Done,
        ErrorCode::INVALID_PRODUCER_EPOCH => MarkerOutcome::Stop,
        _ if error == code::TRANSACTION_COORDINATOR_FENCED => MarkerOutcome::Stop,
        _ => MarkerOutcome::Retry,
    }
}

/// The answer for a `__transaction_state` append that failed (Kafka's mapping in
/// `TransactionStateManager.appendTransactionToLog`).
fn append_error(error: ErrorCode) -> i16 {
    match error {
        ErrorCode::UNKNOWN_TOPIC_OR_PARTITION
        | ErrorCode::NOT_ENOUGH_REPLICAS
        | ErrorCode::NOT_ENOUGH_REPLICAS_AFTER_APPEND
        | ErrorCode::REQUEST_TIMED_OUT => code::COORDINATOR_NOT_AVAILABLE,
        ErrorCode::NOT_LEADER_OR_FOLLOWER | ErrorCode::KAFKA_STORAGE_ERROR => code::NOT_COORDINATOR,
        _ => code::UNKNOWN_SERVER_ERROR,
    }
}

impl TxnRuntime {
    /// A coordinator that owns nothing yet; [`TxnRuntime::sync_leadership`] loads the
    /// partitions this broker leads.
    pub fn new(
        replicas: Arc<ReplicaManager>,
        producer_ids: Arc<ProducerIdManager>,
        controller: Arc<dyn ControllerChannel>,
    ) -> TxnRuntime {
        let config = Arc::new(replicas.config().clone());
        let core = TransactionCoordinator::new(TxnConfig {
            max_timeout_ms: config.txn.max_timeout_ms,
            state_log_partitions: config.txn.state_log_num_partitions,
            offsets_topic_partitions: config.group.offsets_topic_num_partitions,
            transactional_id_expiration_ms: config.txn.transactional_id_expiration_ms,
            // Until the first image: what a new cluster finalizes; then the image's level.
            transaction_version: config.txn.transaction_version,
        });
        TxnRuntime {
            core: Mutex::new(core),
            status: Mutex::new(HashMap::new()),
            sync: Mutex::new(()),
            clock: Arc::clone(replicas.clock()),
            config,
            replicas,
            producer_ids,
            controller,
            creating: crate::internal_topic::OnDemandTopic::new(TRANSACTION_STATE_TOPIC),
            marker_queues: Mutex::new(HashMap::new()),
            settled: tokio::sync::Notify::new(),
        }
    }

    fn core(&self) -> MutexGuard<'_, TransactionCoordinator> {
        self.core.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn status(&self) -> MutexGuard<'_, HashMap<i32, PartitionStatus>> {
        self.status.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The `__transaction_state` partition of `transactional_id`.
    pub fn partition_for(&self, transactional_id: &str) -> i32 {
        gregor_txn::partition_for_transactional_id(
            transactional_id,
            self.config.txn.state_log_num_partitions,
        )
    }

    /// The coordinator epoch if this broker coordinates `partition`, else the error its ids'
    /// requests get.
    fn coordinator_epoch(&self, partition: i32) -> Result<i32, i16> {
        match self.status().get(&partition) {
            Some(PartitionStatus::Loaded { coordinator_epoch }) => Ok(*coordinator_epoch),
            Some(PartitionStatus::Loading) => Err(code::COORDINATOR_LOAD_IN_PROGRESS),
            None => Err(code::NOT_COORDINATOR),
        }
    }

    /// `None` if this broker coordinates `transactional_id`, else the error for its requests.
    pub fn not_coordinator(&self, transactional_id: &str) -> Option<i16> {
        self.coordinator_epoch(self.partition_for(transactional_id))
            .err()
    }

    /// Waits (at most [`SETTLE_WAIT`]) while `transactional_id` is between two states: a
    /// write of its metadata in flight, or a transaction decided (Prepare*, or an epoch fence)
    /// whose markers are still being written.
    async fn settled(&self, transactional_id: &str) {
        let deadline = tokio::time::Instant::now() + SETTLE_WAIT;
        loop {
            let notified = self.settled.notified();
            tokio::pin!(notified);
            // Registered before the look, so a settle in between is not missed.
            notified.as_mut().enable();
            let busy = self.core().get(transactional_id).is_some_and(|m| {
                m.pending_transition_in_progress()
                    || m.state.is_prepare()
                    || m.state == gregor_txn::TransactionState::PrepareEpochFence
            });
            if !busy || tokio::time::timeout_at(deadline, notified).await.is_err() {
                return;
            }
        }
    }

    /// Wakes the requests waiting in [`TxnRuntime::settled`].
    fn settle(&self) {
        self.settled.notify_waiters();
    }

    /// [`TxnRuntime::decide`] once `transactional_id` has [`settled`](TxnRuntime::settled).
    async fn decide_settled(
        &self,
        transactional_id: &str,
        decide: impl FnOnce(&mut TransactionCoordinator, i64) -> Decision,
    ) -> Result<(i32, i32, Decision), i16> {
        self.settled(transactional_id).await;
        self.decide(transactional_id, decide)
    }

    /// Runs a core decision for `transactional_id` while this broker coordinates its
    /// partition (checked under the core lock, so no unload slips in between).
    fn decide(
        &self,
        transactional_id: &str,
        decide: impl FnOnce(&mut TransactionCoordinator, i64) -> Decision,
    ) -> Result<(i32, i32, Decision), i16> {
        let partition = self.partition_for(transactional_id);
        let mut core = self.core();
        let epoch = self.coordinator_epoch(partition)?;
        let decision = decide(&mut core, self.clock.now_ms());
        Ok((partition, epoch, decision))
    }

    /// Carries out a decision: appends its record (acks=all) and installs it, then starts its
    /// markers. `Err` is the code to answer instead of the decision's.
    async fn complete(
        self: &Arc<Self>,
        partition: i32,
        coordinator_epoch: i32,
        decision: &Decision,
    ) -> Result<(), i16> {
        self.complete_as(partition, coordinator_epoch, decision, Commit::Acked)
            .await
    }

    /// [`TxnRuntime::complete`], with the record installed once `commit` says.
    async fn complete_as(
        self: &Arc<Self>,
        partition: i32,
        coordinator_epoch: i32,
        decision: &Decision,
        commit: Commit,
    ) -> Result<(), i16> {
        let result = self
            .install(partition, coordinator_epoch, decision, commit)
            .await;
        self.settle();
        result?;
        if let Some(markers) = &decision.markers {
            self.spawn_markers(partition, coordinator_epoch, markers.clone());
        }
        Ok(())
    }

    async fn install(
        &self,
        partition: i32,
        coordinator_epoch: i32,
        decision: &Decision,
        commit: Commit,
    ) -> Result<(), i16> {
        if let Some(next) = &decision.write {
            let appended = self
                .append(partition, coordinator_epoch, next, commit)
                .await;
            let mut core = self.core();
            let still = self.coordinator_epoch(partition) == Ok(coordinator_epoch);
            match appended {
                Ok(()) if still => {
                    if let Err(e) = core.write_completed(next.clone()) {
                        error!(transactional_id = %next.transactional_id, error = %e,
                            "transaction state written but not installed");
                        return Err(code::UNKNOWN_SERVER_ERROR);
                    }
                }
                Ok(()) => return Err(code::NOT_COORDINATOR),
                Err(error) => {
                    if still {
                        core.write_failed(&next.transactional_id);
                    }
                    warn!(transactional_id = %next.transactional_id, partition, error,
                        "cannot write transaction state");
                    return Err(if still { error } else { code::NOT_COORDINATOR });
                }
            }
        }
        Ok(())
    }

    /// Appends the record of `m` to `__transaction_state-<partition>` in `coordinator_epoch`
    /// and, for [`Commit::Acked`], waits until the ISR has it (and, under the default flush
    /// policy, it is fsynced).
    async fn append(
        &self,
        partition: i32,
        coordinator_epoch: i32,
        m: &TransactionMetadata,
        commit: Commit,
    ) -> Result<(), i16> {
        let (topic, part) = self
            .replicas
            .partition(TRANSACTION_STATE_TOPIC, partition)
            .ok_or(code::NOT_COORDINATOR)?;
        if !part.is_leader() || part.leader_epoch() != coordinator_epoch {
            return Err(code::NOT_COORDINATOR);
        }
        let (key, value) = record_for(m);
        let batch = gregor_protocol::batch::encode_simple_batch(
            self.clock.now_ms(),
            &[(Some(&key[..]), value.as_deref())],
        );
        let appended = part
            .append_to_leader(&batch, &topic.settings, -1)
            .map_err(append_error)?;
        if appended.leader_epoch != coordinator_epoch {
            return Err(code::NOT_COORDINATOR);
        }
        if commit == Commit::Appended {
            return Ok(());
        }
        let wait = crate::purgatory::ProduceWait {
            partition: Arc::clone(&part),
            required_offset: appended.info.last_offset + 1,
            leader_epoch: appended.leader_epoch,
            replication: true,
            durable: part.flushes_before_acks(),
        };
        self.replicas
            .purgatory()
            .delay_produce(vec![wait], APPEND_TIMEOUT)
            .await
            .pop()
            .unwrap_or(Ok(()))
            .map_err(|f| append_error(f.code))
    }

    // ---- requests ----

    /// InitProducerId with a transactional id: `(error, producer id, epoch)`.
    pub async fn init_producer_id(
        self: &Arc<Self>,
        transactional_id: &str,
        transaction_timeout_ms: i32,
        expected: Option<ProducerIdAndEpoch>,
    ) -> (i16, i64, i16) {
        let fail = |error| (error, -1, -1);
        if let Err(error) = self.coordinator_epoch(self.partition_for(transactional_id)) {
            return fail(error);
        }
        // Producer ids come from the controller's blocks (async); the core takes them
        // synchronously, so one is fetched first when the id is new or its epoch exhausted.
        let needs_id = self
            .core()
            .get(transactional_id)
            .is_none_or(|m| is_epoch_exhausted(m.producer_epoch));
        let mut fetched = if needs_id {
            Some(self.producer_ids.generate().await.map_err(|c| c.code()))
        } else {
            None
        };
        let request = InitProducerIdRequest {
            transactional_id: transactional_id.to_string(),
            transaction_timeout_ms,
            expected,
        };
        let decided = self
            .decide_settled(transactional_id, |core, now| {
                let mut ids = || {
                    fetched
                        .take()
                        .unwrap_or(Err(code::COORDINATOR_LOAD_IN_PROGRESS))
                };
                core.init_producer_id(&request, &mut ids, now)
            })
            .await;
        let (partition, epoch, decision) = match decided {
            Ok(d) => d,
            Err(error) => return fail(error),
        };
        match self.complete(partition, epoch, &decision).await {
            Ok(()) => (
                decision.error,
                decision.producer_id,
                decision.producer_epoch,
            ),
            Err(error) => fail(error),
        }
    }

    /// AddPartitionsToTxn for one transaction: the error for every partition.
    pub async fn add_partitions(
        self: &Arc<Self>,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        partitions: &[TopicPartition],
    ) -> i16 {
        self.run(transactional_id, |core, now| {
            core.add_partitions(
                transactional_id,
                producer_id,
                producer_epoch,
                partitions,
                now,
            )
        })
        .await
    }

    /// AddPartitionsToTxn v4+ `verify_only` (KIP-890): whether each partition is in the
    /// producer's open transaction. Nothing is written.
    pub fn verify_partitions(
        &self,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        partitions: &[TopicPartition],
    ) -> Vec<(TopicPartition, i16)> {
        let partition = self.partition_for(transactional_id);
        let core = self.core();
        if let Err(error) = self.coordinator_epoch(partition) {
            return partitions.iter().map(|p| (p.clone(), error)).collect();
        }
        gregor_txn::verify_partitions(
            core.get(transactional_id),
            transactional_id,
            producer_id,
            producer_epoch,
            partitions,
        )
    }

    /// AddOffsetsToTxn: the group's `__consumer_offsets` partition joins the transaction.
    pub async fn add_offsets(
        self: &Arc<Self>,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        group_id: &str,
    ) -> i16 {
        self.run(transactional_id, |core, now| {
            core.add_offsets(transactional_id, producer_id, producer_epoch, group_id, now)
        })
        .await
    }

    /// EndTxn: answered once the Prepare* record is durable (the markers follow in the
    /// background): `(error, producer id, epoch)`. `transactions_v2`
    /// (EndTxn v5+, KIP-890 part 2) bumps the epoch and answers the id and epoch the producer
    /// goes on with; below v5 the answer's id and epoch are -1 and nothing is bumped.
    pub async fn end_txn(
        self: &Arc<Self>,
        transactional_id: &str,
        producer_id: i64,
        producer_epoch: i16,
        commit: bool,
        transactions_v2: bool,
    ) -> (i16, i64, i16) {
        let fail = |error| (error, -1, -1);
        let result = if commit {
            TransactionResult::Commit
        } else {
            TransactionResult::Abort
        };
        // An exhausted epoch moves to a new producer id (from the controller's blocks, async):
        // fetched before the core decides, which takes ids synchronously.
        let mut fetched = None;
        if transactions_v2 {
            if let Err(error) = self.coordinator_epoch(self.partition_for(transactional_id)) {
                return fail(error);
            }
            let exhausted = self.core().get(transactional_id).is_some_and(|m| {
                is_epoch_exhausted(m.producer_epoch) && m.producer_id == producer_id
            });
            if exhausted {
                fetched = Some(self.producer_ids.generate().await.map_err(|c| c.code()));
            }
        }
        let decided = self
            .decide_settled(transactional_id, |core, now| {
                if transactions_v2 {
                    let mut ids = || {
                        fetched
                            .take()
                            .unwrap_or(Err(code::COORDINATOR_LOAD_IN_PROGRESS))
                    };
                    core.end_txn_v2(
                        transactional_id,
                        producer_id,
                        producer_epoch,
                        result,
                        &mut ids,
                        now,
                    )
                } else {
                    core.end_txn(transactional_id, producer_id, producer_epoch, result, now)
                }
            })
            .await;
        let (partition, epoch, decision) = match decided {
            Ok(d) => d,
            Err(error) => return fail(error),
        };
        match self.complete(partition, epoch, &decision).await {
            Ok(()) => {
                if decision.error == code::NONE {
                    (
                        decision.error,
                        decision.producer_id,
                        decision.producer_epoch,
                    )
                } else {
                    fail(decision.error)
                }
            }
            Err(error) => fail(error),
        }
    }

    async fn run(
        self: &Arc<Self>,
        transactional_id: &str,
        decide: impl FnOnce(&mut TransactionCoordinator, i64) -> Decision,
    ) -> i16 {
        let (partition, epoch, decision) = match self.decide_settled(transactional_id, decide).await
        {
            Ok(d) => d,
            Err(error) => return error,
        };
        match self.complete(partition, epoch, &decision).await {
            Ok(()) => decision.error,
            Err(error) => error,
        }
    }

    /// DescribeTransactions for one id: its metadata, or the error to answer
    /// (NOT_COORDINATOR, COORDINATOR_LOAD_IN_PROGRESS, TRANSACTIONAL_ID_NOT_FOUND).
    pub fn describe(&self, transactional_id: &str) -> Result<TransactionMetadata, i16> {
        let partition = self.partition_for(transactional_id);
        let core = self.core();
        self.coordinator_epoch(partition)?;
        core.get(transactional_id)
            .filter(|m| m.producer_epoch != gregor_txn::NO_PRODUCER_EPOCH)
            .cloned()
            .ok_or(TRANSACTIONAL_ID_NOT_FOUND)
    }

    /// ListTransactions: every transaction this broker coordinates (COORDINATOR_LOAD_IN_PROGRESS
    /// while a partition is loading, as Kafka answers).
    pub fn list(&self) -> Result<Vec<TransactionMetadata>, i16> {
        let core = self.core();
        if self
            .status()
            .values()
            .any(|s| *s == PartitionStatus::Loading)
        {
            return Err(code::COORDINATOR_LOAD_IN_PROGRESS);
        }
        let mut all: Vec<TransactionMetadata> = core
            .transactions()
            .filter(|m| m.producer_epoch != gregor_txn::NO_PRODUCER_EPOCH)
            .cloned()
            .collect();
        all.sort_by(|a, b| a.transactional_id.cmp(&b.transactional_id));
        Ok(all)
    }

    // ---- timers ----

    /// Aborts every transaction past its timeout under a bumped epoch (Kafka's
    /// `abortTimedOutTransactions`); waits until their PrepareAbort records are written.
    /// Returns how many were aborted.
    pub async fn abort_timed_out(self: &Arc<Self>) -> usize {
        let now = self.clock.now_ms();
        // A transactions-version-2 abort at an exhausted epoch moves to a new producer id (from
        // the controller's blocks, async): fetched before the core decides, which takes ids
        // synchronously. One that finds none left is aborted at the next tick.
        let wanted = self.core().producer_ids_to_abort_timed_out(now);
        let mut fetched = Vec::with_capacity(wanted);
        for _ in 0..wanted {
            fetched.push(self.producer_ids.generate().await.map_err(|c| c.code()));
        }
        let decisions = {
            let mut ids = || {
                fetched
                    .pop()
                    .unwrap_or(Err(code::COORDINATOR_LOAD_IN_PROGRESS))
            };
            self.core().abort_timed_out(&mut ids, now)
        };
        self.complete_sweep(decisions, "abort a timed-out transaction")
            .await
    }

    /// Forgets transactional ids idle for `transactional.id.expiration.ms` (tombstones).
    /// Returns how many expired.
    pub async fn expire_transactional_ids(self: &Arc<Self>) -> usize {
        let decisions = self.core().expire(self.clock.now_ms());
        self.complete_sweep(decisions, "expire a transactional id")
            .await
    }

    async fn complete_sweep(self: &Arc<Self>, decisions: Vec<Decision>, what: &str) -> usize {
        let mut done = 0;
        for d in decisions {
            let Some(id) = d.write.as_ref().map(|m| m.transactional_id.clone()) else {
                continue;
            };
            let partition = self.partition_for(&id);
            let epoch = match self.coordinator_epoch(partition) {
                Ok(e) => e,
                Err(_) => {
                    self.core().write_failed(&id);
                    self.settle();
                    continue;
                }
            };
            match self.complete(partition, epoch, &d).await {
                Ok(_) => {
                    info!(transactional_id = %id, "{what}: done");
                    done += 1;
                }
                Err(error) => warn!(transactional_id = %id, error, "cannot {what}"),
            }
        }
        done
    }

    /// Runs the timeout abort and the expiration at their intervals.
    pub async fn run_timers(self: Arc<Self>) {
        let every = |ms: u64| {
            let mut t = tokio::time::interval(Duration::from_millis(ms.max(1)));
            t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            t
        };
        let mut abort = every(self.config.txn.abort_timed_out_interval_ms);
        let mut expire = every(self.config.txn.remove_expired_interval_ms);
        abort.tick().await;
        expire.tick().await;
        loop {
            tokio::select! {
                _ = abort.tick() => { self.abort_timed_out().await; }
                _ = expire.tick() => { self.expire_transactional_ids().await; }
            }
        }
    }

    // ---- leadership ----

    /// Loads every `__transaction_state` partition this broker now leads (in a new leader
    /// epoch: loaded again) and unloads those it no longer leads. Blocking (reads the
    /// partitions); call after each applied metadata image. A partition that cannot be read
    /// stays unowned and is tried again at the next call.
    pub fn sync_leadership(self: &Arc<Self>) -> anyhow::Result<()> {
        let _one = self.sync.lock().unwrap_or_else(|p| p.into_inner());
        // The cluster's transaction version, which a fence follows (an absent feature is 0).
        let transaction_version = self
            .replicas
            .image()
            .feature_level(TRANSACTION_VERSION_FEATURE)
            .unwrap_or(0);
        self.core().set_transaction_version(transaction_version);
        let led: BTreeMap<i32, i32> = self
            .replicas
            .topic(TRANSACTION_STATE_TOPIC)
            .map(|t| {
                t.partitions
                    .iter()
                    .filter(|(_, p)| p.is_leader())
                    .map(|(n, p)| (*n, p.leader_epoch()))
                    .collect()
            })
            .unwrap_or_default();
        let current = self.status().clone();
        for (p, status) in current {
            let keep = matches!(status, PartitionStatus::Loaded { coordinator_epoch }
                if led.get(&p) == Some(&coordinator_epoch));
            if !keep {
                let mut core = self.core();
                core.unload_partition(p);
                self.status().remove(&p);
                info!(
                    partition = p,
                    "no longer the transaction coordinator of {TRANSACTION_STATE_TOPIC}-{p}"
                );
            }
        }
        let mut failed = None;
        let mut newly_led = 0;
        for (p, epoch) in led {
            if self.status().contains_key(&p) {
                continue;
            }
            let Some((_, part)) = self.replicas.partition(TRANSACTION_STATE_TOPIC, p) else {
                continue;
            };
            self.status().insert(p, PartitionStatus::Loading);
            let loaded = read_all(&part).and_then(|records| {
                let mut core = self.core();
                let summary = core
                    .load_partition(
                        p,
                        records
                            .iter()
                            .map(|(k, v)| (&k[..], v.as_ref().map(|v| &v[..]))),
                    )
                    .map_err(|e| anyhow::anyhow!("corrupt {TRANSACTION_STATE_TOPIC}-{p}: {e}"))?;
                self.status().insert(
                    p,
                    PartitionStatus::Loaded {
                        coordinator_epoch: epoch,
                    },
                );
                let pending: Vec<TxnMarkers> = core
                    .pending_markers()
                    .into_iter()
                    .filter(|m| self.partition_for(&m.transactional_id) == p)
                    .collect();
                Ok((summary, pending))
            });
            match loaded {
                Ok((summary, pending)) => {
                    newly_led += 1;
                    debug!(
                        partition = p,
                        coordinator_epoch = epoch,
                        transactions = summary.transactions,
                        resent_markers = pending.len(),
                        "became the transaction coordinator of {TRANSACTION_STATE_TOPIC}-{p}"
                    );
                    for m in pending {
                        self.spawn_markers(p, epoch, m);
                    }
                }
                Err(e) => {
                    self.status().remove(&p);
                    error!(partition = p, error = %e, "cannot load {TRANSACTION_STATE_TOPIC} partition");
                    failed = Some(e);
                }
            }
        }
        if newly_led > 0 {
            info!(
                partitions = newly_led,
                "became the transaction coordinator of {newly_led} {TRANSACTION_STATE_TOPIC} partitions"
            );
        }
        self.settle();
        match failed {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Creates `__transaction_state` through the controller if it does not exist yet (Kafka
    /// creates it on the first FindCoordinator for a transactional id), in the background:
    /// the caller answers COORDINATOR_NOT_AVAILABLE meanwhile.
    pub fn ensure_topic(self: &Arc<Self>) {
        let want = transaction_state_replication_factor(&self.config);
        let config = &self.config;
        self.creating
            .ensure(&self.replicas, &self.controller, want, |rf| {
                transaction_state_topic(config, rf)
            });
    }

    // ---- markers ----

    /// Writes `markers` to every partition of the transaction in the background, then
    /// completes the transaction (Complete* appended).
    fn spawn_markers(
        self: &Arc<Self>,
        partition: i32,
        coordinator_epoch: i32,
        markers: TxnMarkers,
    ) {
        let me = Arc::clone(self);
        tokio::spawn(async move {
            me.deliver_markers(partition, coordinator_epoch, markers)
                .await
        });
    }

    /// Kafka's `TransactionMarkerChannelManager` for one transaction: the partitions are
    /// grouped by their leader's broker, one WriteTxnMarkers per broker; partitions answered
    /// with a retriable error (or whose broker could not be reached) are sent again after a
    /// backoff or a metadata change; a partition that no longer exists is dropped. Stops when
    /// this broker stops coordinating the transaction (the new coordinator sends them again).
    async fn deliver_markers(
        self: Arc<Self>,
        partition: i32,
        coordinator_epoch: i32,
        markers: TxnMarkers,
    ) {
        let mut remaining: BTreeSet<TopicPartition> = markers.partitions.iter().cloned().collect();
        let mut images = self.replicas.watch_image();
        let mut backoff = MARKER_BACKOFF_MIN;
        let mut failures: u64 = 0;
        while !remaining.is_empty() {
            if self.coordinator_epoch(partition) != Ok(coordinator_epoch) {
                debug!(transactional_id = %markers.transactional_id,
                    "no longer the coordinator; the markers are left to the new one");
                return;
            }
            let image = self.replicas.image();
            let mut by_leader: BTreeMap<i32, Vec<TopicPartition>> = BTreeMap::new();
            for tp in remaining.clone() {
                let registration = image
                    .topics()
                    .topic_by_name(&tp.topic)
                    .and_then(|t| t.partition(tp.partition).map(|p| p.leader));
                match registration {
                    None => {
                        info!(transactional_id = %markers.transactional_id,
                            topic = %tp.topic, partition = tp.partition,
                            "the partition no longer exists; its transaction marker is dropped");
                        remaining.remove(&tp);
                    }
                    Some(leader) if leader < 0 => {}
                    Some(leader) => by_leader.entry(leader).or_default().push(tp),
                }
            }
            drop(image);
            let mut progressed = false;
            for (broker, tps) in by_leader {
                match self
                    .send_markers(broker, &markers, coordinator_epoch, &tps)
                    .await
                {
                    Ok(results) => {
                        for (tp, error) in results {
                            match marker_outcome(error) {
                                MarkerOutcome::Done => {
                                    remaining.remove(&tp);
                                    progressed = true;
                                }
                                MarkerOutcome::Retry => {
                                    debug!(transactional_id = %markers.transactional_id,
                                        topic = %tp.topic, partition = tp.partition, error,
                                        "transaction marker not written; retrying")
                                }
                                MarkerOutcome::Stop => {
                                    warn!(transactional_id = %markers.transactional_id,
                                        topic = %tp.topic, partition = tp.partition, error,
                                        "transaction marker refused: a newer producer or coordinator epoch exists");
                                    return;
                                }
                            }
                        }
                    }
                    Err(e) => {
                        if failures.is_multiple_of(30) {
                            warn!(transactional_id = %markers.transactional_id, broker,
                                error = %e, "cannot send transaction markers; retrying");
                        } else {
                            debug!(transactional_id = %markers.transactional_id, broker,
                                error = %e, "cannot send transaction markers");
                        }
                        failures += 1;
                    }
                }
            }
            if remaining.is_empty() {
                break;
            }
            if progressed {
                backoff = MARKER_BACKOFF_MIN;
            }
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                changed = images.changed() => if changed.is_err() { return },
            }
            backoff = (backoff * 2).min(MARKER_BACKOFF_MAX);
        }
        // Every marker is written: CompleteCommit / CompleteAbort.
        let mut backoff = MARKER_BACKOFF_MIN;
        loop {
            let decided = {
                let mut core = self.core();
                if self.coordinator_epoch(partition) != Ok(coordinator_epoch) {
                    return;
                }
                core.markers_written(&markers, self.clock.now_ms())
            };
            let Some(decision) = decided else { return };
            // Installed once appended: the markers are durable, and the next record of this
            // id goes after it in the same log, so its acknowledgement covers this one. A
            // crash before that reloads Prepare* and sends the markers again, as a
            // coordinator failover does.
            match self
                .complete_as(partition, coordinator_epoch, &decision, Commit::Appended)
                .await
            {
                Ok(()) => {
                    debug!(transactional_id = %markers.transactional_id, result = ?markers.result,
                        "transaction completed");
                    return;
                }
                Err(error) if error == code::NOT_COORDINATOR => return,
                Err(error) => {
                    warn!(transactional_id = %markers.transactional_id, error,
                        "cannot write the transaction's completion; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MARKER_BACKOFF_MAX);
                }
            }
        }
    }

    /// The markers of one transaction for the partitions `broker` leads: each partition's
    /// error code (a partition missing from the answer is retried). Queued to the broker's
    /// marker sender, which puts every marker queued meanwhile into the same WriteTxnMarkers.
    async fn send_markers(
        self: &Arc<Self>,
        broker: i32,
        markers: &TxnMarkers,
        coordinator_epoch: i32,
        partitions: &[TopicPartition],
    ) -> Result<Vec<(TopicPartition, i16)>, String> {
        let mut topics: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
        for tp in partitions {
            topics.entry(&tp.topic).or_default().push(tp.partition);
        }
        let marker = WritableTxnMarker::default()
            .with_producer_id(ProducerId(markers.producer_id))
            .with_producer_epoch(markers.producer_epoch)
            .with_transaction_result(markers.result == TransactionResult::Commit)
            .with_coordinator_epoch(coordinator_epoch)
            .with_transaction_version(markers.transaction_version)
            .with_topics(
                topics
                    .into_iter()
                    .map(|(name, ps)| {
                        WritableTxnMarkerTopic::default()
                            .with_name(crate::handlers::topic_name(name))
                            .with_partition_indexes(ps)
                    })
                    .collect(),
            );
        let (reply, answer) = oneshot::channel();
        let queued = QueuedMarker {
            marker,
            producer_id: markers.producer_id,
            partitions: partitions.to_vec(),
            reply,
        };
        self.marker_queue(broker)
            .send(queued)
            .map_err(|_| format!("the marker sender of broker {broker} stopped"))?;
        answer
            .await
            .map_err(|_| format!("the marker sender of broker {broker} stopped"))?
    }

    /// The queue of `broker`'s marker sender (started on first use).
    fn marker_queue(self: &Arc<Self>, broker: i32) -> mpsc::UnboundedSender<QueuedMarker> {
        let mut queues = self.marker_queues.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(q) = queues.get(&broker).filter(|q| !q.is_closed()) {
            return q.clone();
        }
        let (tx, rx) = mpsc::unbounded_channel();
        queues.insert(broker, tx.clone());
        tokio::spawn(Arc::clone(self).run_marker_sender(broker, rx));
        tx
    }

    /// One broker's marker sender (Kafka's `TransactionMarkerChannelManager` drain loop): one
    /// connection, one WriteTxnMarkers at a time carrying every marker queued meanwhile; each
    /// marker's partitions are answered to its transaction's task.
    async fn run_marker_sender(
        self: Arc<Self>,
        broker: i32,
        mut queue: mpsc::UnboundedReceiver<QueuedMarker>,
    ) {
        let mut conn: Option<Connection> = None;
        while let Some(first) = queue.recv().await {
            let mut batch = vec![first];
            while let Ok(more) = queue.try_recv() {
                batch.push(more);
            }
            let request = WriteTxnMarkersRequest::default()
                .with_markers(batch.iter().map(|q| q.marker.clone()).collect());
            match self.exchange_markers(broker, &mut conn, &request).await {
                Ok(answered) => {
                    for q in batch {
                        let results = q
                            .partitions
                            .iter()
                            .map(|tp| {
                                let key = (q.producer_id, tp.topic.clone(), tp.partition);
                                let error = answered
                                    .get(&key)
                                    .copied()
                                    .unwrap_or(ErrorCode::UNKNOWN_SERVER_ERROR.code());
                                (tp.clone(), error)
                            })
                            .collect();
                        let _ = q.reply.send(Ok(results));
                    }
                }
                Err(e) => {
                    for q in batch {
                        let _ = q.reply.send(Err(e.clone()));
                    }
                }
            }
        }
    }

    /// Sends one WriteTxnMarkers to `broker` (dialling it first if needed): the error code of
    /// every (producer id, topic, partition) answered.
    async fn exchange_markers(
        &self,
        broker: i32,
        conn: &mut Option<Connection>,
        request: &WriteTxnMarkersRequest,
    ) -> Result<HashMap<(i64, String, i32), i16>, String> {
        if conn.as_ref().is_none_or(|c| c.is_broken()) {
            *conn = None;
            let addr = crate::replica_fetcher::leader_address(&self.replicas, &self.config, broker)
                .ok_or_else(|| format!("broker {broker} has no known endpoint"))?;
            let config = ClientConfig {
                client_id: format!("gregor-txn-markers-{}", self.config.node_id),
                connect_timeout: Duration::from_secs(5),
                request_timeout: MARKER_REQUEST_TIMEOUT,
                max_response_bytes: 16 << 20,
                security: self.config.inter_broker_security.clone(),
                ..ClientConfig::default()
            };
            *conn = Some(
                Connection::connect(&addr, &config)
                    .await
                    .map_err(|e| e.to_string())?,
            );
        }
        let c = conn.as_mut().ok_or("no connection")?;
        let response = match c.send(request).await {
            Ok(r) => r,
            Err(e) => {
                if c.is_broken() {
                    *conn = None;
                }
                return Err(e.to_string());
            }
        };
        let mut answered = HashMap::new();
        for m in &response.markers {
            for t in &m.topics {
                for p in &t.partitions {
                    answered.insert(
                        (m.producer_id.0, t.name.0.to_string(), p.partition_index),
                        p.error_code,
                    );
                }
            }
        }
        Ok(answered)
    }
}

/// Every record of a `__transaction_state` partition up to its log end (Kafka loads to the log
/// end: a new leader's tail becomes committed as its followers catch up), as (key, value).
pub(crate) fn read_all(part: &Partition) -> anyhow::Result<Vec<(Bytes, Option<Bytes>)>> {
    let mut offset = part
        .log_start_offset()
        .map_err(|c| anyhow::anyhow!("cannot read the log start: {c}"))?;
    let end = part.log_end_offset();
    let mut out = Vec::new();
    while offset < end {
        let read = part
            .fetch_read(offset, 1 << 20, true, FetchIsolation::LogEnd)
            .map_err(|c| anyhow::anyhow!("cannot read at {offset}: {c}"))?;
        let Some(slice) = read.info.slice else { break };
        let mut bytes = Bytes::from(slice.read_to_vec()?);
        let raw = bytes.clone();
        let sets = RecordBatchDecoder::decode_all(&mut bytes)?;
        // Where the batches end: a compacted log's last batches may hold no record at all (a
        // producer's emptied last batch keeps its header), and offsets have gaps.
        let batches_end = gregor_protocol::batch::batches(&raw)
            .filter_map(Result::ok)
            .map(|b| b.next_offset())
            .max();
        let mut progressed = false;
        for set in sets {
            for r in set.records {
                if r.offset >= offset {
                    offset = r.offset + 1;
                    progressed = true;
                    if let Some(key) = r.key {
                        out.push((key, r.value));
                    }
                }
            }
        }
        if let Some(end) = batches_end.filter(|&e| e > offset) {
            offset = end;
            progressed = true;
        }
        if !progressed {
            break;
        }
    }
    Ok(out)
}

#[cfg(test)]
#[path = "txn_coordinator_tests.rs"]
pub(crate) mod tests;
