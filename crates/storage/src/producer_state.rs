//! Producer state of one partition (Kafka's `ProducerStateManager`): what idempotent producers
//! wrote last, so a retried batch is recognised and a lost one is noticed.
//!
//! ```text
//!  append_as_leader ─► ProducerStateManager::check (per batch with a producer id)
//!        │               ├─ Duplicate(original offsets) ─► answer them, append nothing
//!        │               ├─ error (OUT_OF_ORDER_SEQUENCE_NUMBER, INVALID_PRODUCER_EPOCH)
//!        │               └─ Append ─► write ─► update (epoch, last 5 batches)
//!  append_as_follower / recovery ─► update (no checks: the leader checked)
//!  roll, close ─► <offset>.snapshot (Kafka's layout: every producer's batches, CRC-32C)
//!  open ─► newest snapshot at or below the recovery point ─► replay the log tail after it
//! ```
//!
//! Per producer id the state keeps the epoch and the last [`MAX_CACHED_BATCHES`] batches
//! (first and last sequence, first and last offset, time). The checks are Kafka 4.x's
//! `ProducerAppendInfo.checkProducerEpoch` / `checkSequence`: an older epoch is refused, a newer
//! one must start at sequence 0 (unless the producer is unknown), the same epoch must continue
//! at last sequence + 1 (`i32::MAX` wraps to 0). A producer this partition does not know (never
//! seen, or expired) is accepted at any sequence, as Kafka has done since KIP-360: the client
//! cannot tell an expired producer from a fresh one, and refusing it would stall it.
//!
//! The logic here does no I/O except [`ProducerStateManager::write_snapshot`] and
//! [`read_snapshot`]; the log calls them and owns when.
//!
//! Transactions (Kafka's `ProducerAppendInfo.appendDataBatch` / `appendEndTxnMarker`): a
//! transactional batch from a producer without an ongoing transaction starts one at its first
//! offset; a control batch (a COMMIT or ABORT marker) ends it and yields a [`CompletedTxn`].
//! A non-transactional batch from a producer whose transaction is open is refused
//! (`INVALID_TXN_STATE`); a marker with an older producer epoch (`INVALID_PRODUCER_EPOCH`) or
//! an older coordinator epoch than the last marker's (`TRANSACTION_COORDINATOR_FENCED`) too.
//! A transactions-version-2 marker (KIP-1228) must carry a newer epoch than the producer's,
//! since the coordinator bumps it before every marker; the same epoch is accepted only as the
//! retry of a marker already written (no transaction open), as Kafka 4.4 does.
//!
//! ```text
//!  transactional batch ─► ongoing[first offset] = producer      (LSO ≤ first offset)
//!  marker at offset m ──► ongoing removed; unreplicated[first] = m until the high
//!                         watermark passes m; an ABORT also goes to the segment's .txnindex
//!  first_unstable_offset = min(ongoing firsts, unreplicated firsts)   (the log clamps it by
//!                          the high watermark: that is the last stable offset)
//! ```
//!
//! Transaction verification (KIP-890 part 1, Kafka's `VerificationStateEntry` and
//! `VerificationGuard`): before a leader asks the transaction coordinator whether a partition is
//! in a producer's transaction, [`ProducerStateManager::maybe_start_verification`] hands out a
//! guard for that producer (none while its transaction is already open here in the request's
//! epoch). The append then carries the guard ([`TxnVerification::Required`]); a transactional
//! batch that would start a transaction is refused (`INVALID_TXN_STATE`) unless the producer's
//! entry still holds that very guard. Any transactional batch or marker of the producer clears
//! the entry, so a marker that lands between the verification and the append makes the append
//! fail instead of opening a transaction that no coordinator knows (a hanging transaction).
//!
//! Transactions version 2 (Kafka 4.x): EndTxn bumps the epoch and is answered before the
//! markers are written, so the producer's next transaction (epoch + 1) can reach a partition
//! where its previous one (epoch) is still open. That open transaction does not count: the new
//! one is verified (its coordinator holds the add until the markers are written), and the
//! marker that then ends the previous one carries the bumped epoch, the verification's own:
//! it leaves the entry of a verification that supports the bump (Kafka's
//! `isV2NextTransactionStarted`).
//!
//! ```text
//!  verify start ─► verification[pid] = guard G ─► coordinator says "in the transaction"
//!  append (G) ──► guard still G?  yes ─► append, transaction opens, entry cleared
//!                                 no (a marker cleared it) ─► INVALID_TXN_STATE
//! ```

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::{io_err, StorageError};

/// How many batches per producer are remembered for duplicate detection (Kafka's
/// `NUM_BATCHES_TO_RETAIN`; clients keep at most 5 requests in flight with idempotence).
pub const MAX_CACHED_BATCHES: usize = 5;

/// Suffix of producer-state snapshot files: `<20-digit offset>.snapshot`.
pub const SNAPSHOT_SUFFIX: &str = "snapshot";

/// `producer.id.expiration.ms` (Kafka's default: one day).
pub const DEFAULT_PRODUCER_ID_EXPIRATION_MS: i64 = 86_400_000;

/// The epoch of a producer the partition knows nothing about (Kafka's `NO_PRODUCER_EPOCH`).
const NO_PRODUCER_EPOCH: i16 = -1;

/// One batch a producer wrote: sequences and offsets (Kafka's `BatchMetadata`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchMetadata {
    pub first_seq: i32,
    pub last_seq: i32,
    pub first_offset: i64,
    pub last_offset: i64,
    /// When it was appended (the broker's clock; the batch's max timestamp when rebuilt from
    /// the log).
    pub timestamp: i64,
}

/// What a partition knows about one producer (Kafka's `ProducerStateEntry`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerStateEntry {
    pub epoch: i16,
    /// The last batches, oldest first; at most [`MAX_CACHED_BATCHES`].
    pub batches: VecDeque<BatchMetadata>,
    /// Time of the last append (for `producer.id.expiration.ms`).
    pub last_timestamp: i64,
    /// Epoch of the coordinator that wrote this producer's last marker (-1: none yet).
    pub coordinator_epoch: i32,
    /// First offset of the producer's ongoing transaction, if one is open here.
    pub current_txn_first_offset: Option<i64>,
}

impl ProducerStateEntry {
    fn empty() -> ProducerStateEntry {
        ProducerStateEntry {
            epoch: NO_PRODUCER_EPOCH,
            batches: VecDeque::new(),
            last_timestamp: -1,
            coordinator_epoch: -1,
            current_txn_first_offset: None,
        }
    }

    /// The last sequence written in the current epoch, if any.
    pub fn last_seq(&self) -> Option<i32> {
        self.batches.back().map(|b| b.last_seq)
    }

    fn find_duplicate(&self, epoch: i16, first_seq: i32, last_seq: i32) -> Option<BatchMetadata> {
        if epoch != self.epoch {
            return None;
        }
        self.batches
            .iter()
            .find(|b| b.first_seq == first_seq && b.last_seq == last_seq)
            .copied()
    }

    fn push(&mut self, epoch: i16, batch: BatchMetadata) {
        if epoch != self.epoch {
            // A new epoch starts a new sequence: the old batches can no longer be retried.
            self.batches.clear();
            self.epoch = epoch;
        }
        if self.batches.len() == MAX_CACHED_BATCHES {
            self.batches.pop_front();
        }
        self.batches.push_back(batch);
        self.last_timestamp = batch.timestamp;
    }
}

/// A batch a producer sent, as the check sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerBatch {
    pub producer_id: i64,
    pub epoch: i16,
    pub first_seq: i32,
    /// `first_seq + record count - 1`, wrapping past `i32::MAX` to 0.
    pub last_seq: i32,
    /// The batch belongs to a transaction (attributes bit 4).
    pub transactional: bool,
}

impl ProducerBatch {
    /// A batch of `record_count` records starting at `first_seq`.
    pub fn new(producer_id: i64, epoch: i16, first_seq: i32, record_count: i32) -> ProducerBatch {
        ProducerBatch {
            producer_id,
            epoch,
            first_seq,
            last_seq: increment_sequence(first_seq, record_count.max(1) - 1),
            transactional: false,
        }
    }

    /// The same batch, marked transactional or not.
    pub fn with_transactional(mut self, transactional: bool) -> ProducerBatch {
        self.transactional = transactional;
        self
    }
}

/// A transaction that a marker ended on this partition (Kafka's `CompletedTxn`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompletedTxn {
    pub producer_id: i64,
    /// Offset of the transaction's first batch here.
    pub first_offset: i64,
    /// Offset of the marker.
    pub last_offset: i64,
    /// The marker was an ABORT.
    pub is_aborted: bool,
}

/// Kafka's `VerificationGuard`: the token of one transaction verification of one producer on
/// one partition. Guards are unique in the process, so a guard handed out before the state was
/// rebuilt (truncation, reload) never matches one handed out after.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct VerificationGuard(u64);

impl VerificationGuard {
    fn next() -> VerificationGuard {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        VerificationGuard(NEXT.fetch_add(1, Ordering::Relaxed))
    }
}

/// Kafka's `VerificationStateEntry`: a verification under way for a producer with no open
/// transaction on this partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VerificationStateEntry {
    /// The guard the append must bring back.
    pub guard: VerificationGuard,
    /// The lowest first sequence among the batches waiting on it (in `epoch`).
    pub lowest_sequence: i32,
    /// The newest producer epoch that asked.
    pub epoch: i16,
    /// Asked for by a transactions-version-2 request (Produce v12+), whose transaction began
    /// with an epoch bump: a marker in `epoch` ends the previous transaction, not this one.
    pub supports_epoch_bump: bool,
    /// When it was created (expired like idle producers).
    pub created_ms: i64,
}

/// How a leader goes on with a transactional produce of a producer (see
/// [`ProducerStateManager::start_transactional_append`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxnAppendStart {
    /// The producer's transaction is open here and nothing of it waits: append now.
    Now,
    /// Verify with the coordinator first, then append with this guard.
    Verify(VerificationGuard),
    /// The transaction is open, but earlier appends of the producer still wait for their
    /// verification: append after them (the same connection's replies are made in order), so
    /// the sequences stay in order.
    Behind,
}

/// What a leader append proves about its transactional batches (Kafka's request
/// `VerificationGuard` and `transaction.partition.verification.enable`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TxnVerification {
    /// No verification: `transaction.partition.verification.enable=false`, a coordinator's own
    /// append, or a caller that is not a client's produce.
    #[default]
    NotRequired,
    /// A transactional batch may start a transaction only with the guard the verification of
    /// this request handed out, if the producer's entry still holds it. `None`: the request
    /// made no verification (the producer's transaction was open when it arrived), so it may
    /// only continue an open transaction.
    Required(Option<VerificationGuard>),
}

/// Kafka's `DefaultRecordBatch.incrementSequence`: sequences wrap from `i32::MAX` to 0.
pub fn increment_sequence(seq: i32, by: i32) -> i32 {
    if seq > i32::MAX - by {
        by - (i32::MAX - seq) - 1
    } else {
        seq + by
    }
}

/// Kafka's `DefaultRecordBatch.decrementSequence`: the inverse of [`increment_sequence`].
fn decrement_sequence(seq: i32, by: i32) -> i32 {
    if seq < by {
        i32::MAX - (by - seq) + 1
    } else {
        seq - by
    }
}

fn in_sequence(last_seq: i32, next_seq: i32) -> bool {
    i64::from(next_seq) == i64::from(last_seq) + 1 || (next_seq == 0 && last_seq == i32::MAX)
}

/// Why a producer's batch is refused; each is a Kafka error code in the produce response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProducerStateError {
    /// The batch's epoch is older than the producer's (`INVALID_PRODUCER_EPOCH`): a zombie.
    #[error("producer {producer_id}: epoch {epoch} is older than the current {current}")]
    InvalidProducerEpoch {
        producer_id: i64,
        epoch: i16,
        current: i16,
    },
    /// A gap or a reordering (`OUT_OF_ORDER_SEQUENCE_NUMBER`).
    #[error(
        "producer {producer_id} epoch {epoch}: sequence {first_seq} does not follow {last_seq:?}"
    )]
    OutOfOrderSequence {
        producer_id: i64,
        epoch: i16,
        first_seq: i32,
        last_seq: Option<i32>,
    },
    /// A non-transactional batch from a producer whose transaction is open here
    /// (`INVALID_TXN_STATE`).
    #[error("producer {producer_id}: a non-transactional batch while a transaction is open")]
    InvalidTxnState { producer_id: i64 },
    /// A transactional batch that would start a transaction on this partition without a
    /// verification the coordinator confirmed, or whose verification a marker invalidated
    /// (`INVALID_TXN_STATE`, KIP-890).
    #[error("producer {producer_id}: the transactional batch was not verified as part of an ongoing transaction")]
    UnverifiedTransaction { producer_id: i64 },
    /// A marker from a coordinator older than the one that wrote the producer's last marker
    /// (`TRANSACTION_COORDINATOR_FENCED`).
    #[error(
        "producer {producer_id}: coordinator epoch {coordinator_epoch} is older than {current}"
    )]
    TransactionCoordinatorFenced {
        producer_id: i64,
        coordinator_epoch: i32,
        current: i32,
    },
}

/// Who is appending (Kafka's `AppendOrigin`), which sets how much the producer state checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AppendOrigin {
    /// A client's produce: epochs, sequences and duplicates are checked.
    #[default]
    Client,
    /// A coordinator of this broker (the group coordinator writing offsets sent in a
    /// transaction): its batches carry no real sequence (always 0), so only the epoch is
    /// checked and no batch is taken for a duplicate.
    Coordinator,
}

/// The outcome of checking one batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendCheck {
    /// New and in order: append it.
    Append,
    /// A retry of a batch already in the log: answer its offsets, append nothing.
    Duplicate(BatchMetadata),
}

/// The producer state of one partition.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProducerStateManager {
    producers: HashMap<i64, ProducerStateEntry>,
    /// The state covers the log up to here (exclusive): the offset after the last batch seen.
    map_end_offset: i64,
    /// Open transactions: first offset → producer id (Kafka's `ongoingTxns`).
    ongoing: BTreeMap<i64, i64>,
    /// Ended transactions whose marker the high watermark has not passed yet: first offset →
    /// marker offset (Kafka's `unreplicatedTxns`). Not in snapshots: a restarted replica
    /// learns the high watermark again before it serves read_committed fetches.
    unreplicated: BTreeMap<i64, i64>,
    /// Transaction verifications under way, by producer id (Kafka's `verificationStates`). Not
    /// in snapshots: a verification lives only as long as the request that started it.
    verification: HashMap<i64, VerificationStateEntry>,
    /// Per producer, the transactional appends that wait behind a verification and have not
    /// been made yet (see [`ProducerStateManager::start_transactional_append`]). Not in
    /// snapshots.
    deferred: HashMap<i64, u32>,
}

impl ProducerStateManager {
    pub fn new() -> ProducerStateManager {
        ProducerStateManager::default()
    }

    /// The producer's entry, if known.
    pub fn entry(&self, producer_id: i64) -> Option<&ProducerStateEntry> {
        self.producers.get(&producer_id)
    }

    /// Every known producer and its entry, in no particular order.
    pub fn producers(&self) -> impl Iterator<Item = (&i64, &ProducerStateEntry)> {
        self.producers.iter()
    }

    /// How many producers are known.
    pub fn producer_count(&self) -> usize {
        self.producers.len()
    }

    /// The offset after the last batch the state includes.
    pub fn map_end_offset(&self) -> i64 {
        self.map_end_offset
    }

    /// Checks the batches of one produced record set, in order, as if each earlier one had
    /// been appended. A duplicate of a cached batch ends the check with that batch's offsets
    /// (Kafka answers the whole set with them). Changes nothing.
    pub fn check(&self, batches: &[ProducerBatch]) -> Result<AppendCheck, ProducerStateError> {
        self.check_verified(batches, TxnVerification::NotRequired)
    }

    /// [`check`](Self::check) with transaction verification: with
    /// [`TxnVerification::Required`], a transactional batch that would start the producer's
    /// transaction here needs the producer's verification entry to hold the request's guard
    /// (Kafka's `UnifiedLog.batchMissingRequiredVerification`).
    pub fn check_verified(
        &self,
        batches: &[ProducerBatch],
        verification: TxnVerification,
    ) -> Result<AppendCheck, ProducerStateError> {
        // The entries as the earlier batches of this set would leave them.
        let mut pending: HashMap<i64, ProducerStateEntry> = HashMap::new();
        for b in batches {
            let current = pending
                .get(&b.producer_id)
                .or_else(|| self.producers.get(&b.producer_id));
            if let Some(dup) =
                current.and_then(|e| e.find_duplicate(b.epoch, b.first_seq, b.last_seq))
            {
                return Ok(AppendCheck::Duplicate(dup));
            }
            // Kafka's `checkSequence` with a verification under way: while batches of the
            // producer wait for their coordinator, only the lowest sequence among them may be
            // appended first (an unknown producer is otherwise accepted at any sequence, so a
            // later batch verified sooner would jump ahead). The first batch of the producer
            // in this set is the one checked.
            if !self.verification.is_empty() && !pending.contains_key(&b.producer_id) {
                if let Some(v) = self.verification.get(&b.producer_id) {
                    if b.first_seq > v.lowest_sequence {
                        return Err(ProducerStateError::OutOfOrderSequence {
                            producer_id: b.producer_id,
                            epoch: b.epoch,
                            first_seq: b.first_seq,
                            last_seq: current.and_then(ProducerStateEntry::last_seq),
                        });
                    }
                }
            }
            check_batch(current, b)?;
            let ongoing = current.is_some_and(|e| e.current_txn_first_offset.is_some());
            if ongoing && !b.transactional {
                return Err(ProducerStateError::InvalidTxnState {
                    producer_id: b.producer_id,
                });
            }
            if b.transactional && !ongoing {
                if let TxnVerification::Required(guard) = verification {
                    let held = self.verification.get(&b.producer_id).map(|e| e.guard);
                    if guard.is_none() || held != guard {
                        return Err(ProducerStateError::UnverifiedTransaction {
                            producer_id: b.producer_id,
                        });
                    }
                }
            }
            let mut next = current.cloned().unwrap_or_else(ProducerStateEntry::empty);
            if b.transactional && next.current_txn_first_offset.is_none() {
                // Only whether one is open matters to the later batches of this set.
                next.current_txn_first_offset = Some(-1);
            }
            next.push(
                b.epoch,
                BatchMetadata {
                    first_seq: b.first_seq,
                    last_seq: b.last_seq,
                    first_offset: -1,
                    last_offset: -1,
                    timestamp: -1,
                },
            );
            pending.insert(b.producer_id, next);
        }
        Ok(AppendCheck::Append)
    }

    /// [`check`](Self::check) for `origin`: a coordinator's batches only need an epoch no
    /// older than the producer's and, while its transaction is open, the transactional bit
    /// (Kafka's `ProducerAppendInfo` skips the sequence check and the duplicate search for
    /// them).
    pub fn check_from(
        &self,
        origin: AppendOrigin,
        batches: &[ProducerBatch],
    ) -> Result<AppendCheck, ProducerStateError> {
        self.check_from_verified(origin, batches, TxnVerification::NotRequired)
    }

    /// [`check_from`](Self::check_from) with a transaction verification (see
    /// [`check_verified`](Self::check_verified)). A coordinator's batches (the group
    /// coordinator's transactional offsets) are not sequenced, but with
    /// [`TxnVerification::Required`] one that would open the producer's transaction here needs
    /// the request's guard too, as Kafka checks both origins (`UnifiedLog`,
    /// `AppendOrigin.COORDINATOR`): offsets verified before a marker ended that transaction
    /// are not written after it.
    pub fn check_from_verified(
        &self,
        origin: AppendOrigin,
        batches: &[ProducerBatch],
        verification: TxnVerification,
    ) -> Result<AppendCheck, ProducerStateError> {
        match origin {
            AppendOrigin::Client => self.check_verified(batches, verification),
            AppendOrigin::Coordinator => {
                for b in batches {
                    let Some(e) = self.producers.get(&b.producer_id) else {
                        continue;
                    };
                    if e.epoch != NO_PRODUCER_EPOCH && b.epoch < e.epoch {
                        return Err(ProducerStateError::InvalidProducerEpoch {
                            producer_id: b.producer_id,
                            epoch: b.epoch,
                            current: e.epoch,
                        });
                    }
                    if e.current_txn_first_offset.is_some() && !b.transactional {
                        return Err(ProducerStateError::InvalidTxnState {
                            producer_id: b.producer_id,
                        });
                    }
                }
                for b in batches.iter().filter(|b| b.transactional) {
                    let ongoing = self
                        .producers
                        .get(&b.producer_id)
                        .is_some_and(|e| e.current_txn_first_offset.is_some());
                    if let (false, TxnVerification::Required(guard)) = (ongoing, verification) {
                        let held = self.verification.get(&b.producer_id).map(|e| e.guard);
                        if guard.is_none() || held != guard {
                            return Err(ProducerStateError::UnverifiedTransaction {
                                producer_id: b.producer_id,
                            });
                        }
                    }
                }
                Ok(AppendCheck::Append)
            }
        }
    }

    /// Records an appended batch (leader after [`check`](Self::check), follower and recovery
    /// without): the producer's epoch becomes the batch's, and the batch joins its last
    /// batches.
    pub fn update(
        &mut self,
        batch: &ProducerBatch,
        first_offset: i64,
        last_offset: i64,
        now_ms: i64,
    ) {
        let entry = self
            .producers
            .entry(batch.producer_id)
            .or_insert_with(ProducerStateEntry::empty);
        entry.push(
            batch.epoch,
            BatchMetadata {
                first_seq: batch.first_seq,
                last_seq: batch.last_seq,
                first_offset,
                last_offset,
                timestamp: now_ms,
            },
        );
        if batch.transactional && entry.current_txn_first_offset.is_none() {
            // A transaction starts here (a follower or recovery may also see a data batch
            // without the bit while one is open: the leader let it in, so it is kept).
            entry.current_txn_first_offset = Some(first_offset);
            self.ongoing.insert(first_offset, batch.producer_id);
        }
        if batch.transactional {
            // The transaction is open here now: its later batches need no verification.
            self.verification.remove(&batch.producer_id);
        }
        self.map_end_offset = self.map_end_offset.max(last_offset + 1);
    }

    /// Kafka's checks of a marker a coordinator asks a leader to write: the producer's epoch
    /// may not go back (`INVALID_PRODUCER_EPOCH`), nor the coordinator's
    /// (`TRANSACTION_COORDINATOR_FENCED`). With `transaction_version` 2 or more (KIP-1228) the
    /// marker's epoch must be newer than the producer's, since TV2 bumps it for every marker:
    /// an equal one while a transaction is open here is a late marker of an older transaction.
    /// Kafka 4.4 still lets an equal one through when no transaction is open (the coordinator
    /// retrying a marker already written) or at the last epoch, which cannot be bumped.
    /// Changes nothing.
    pub fn check_end_txn_marker(
        &self,
        producer_id: i64,
        producer_epoch: i16,
        coordinator_epoch: i32,
        transaction_version: i8,
    ) -> Result<(), ProducerStateError> {
        let Some(entry) = self.producers.get(&producer_id) else {
            return Ok(());
        };
        let same_epoch_retry = producer_epoch == entry.epoch
            && (entry.current_txn_first_offset.is_none() || producer_epoch == i16::MAX);
        let stale = if transaction_version >= 2 {
            producer_epoch < entry.epoch || (producer_epoch == entry.epoch && !same_epoch_retry)
        } else {
            producer_epoch < entry.epoch
        };
        if entry.epoch != NO_PRODUCER_EPOCH && stale {
            return Err(ProducerStateError::InvalidProducerEpoch {
                producer_id,
                epoch: producer_epoch,
                current: entry.epoch,
            });
        }
        if entry.coordinator_epoch > coordinator_epoch {
            return Err(ProducerStateError::TransactionCoordinatorFenced {
                producer_id,
                coordinator_epoch,
                current: entry.coordinator_epoch,
            });
        }
        Ok(())
    }

    /// Records a marker written at `offset` (leader after
    /// [`check_end_txn_marker`](Self::check_end_txn_marker), follower and recovery without):
    /// the producer's transaction ends. Returns it, unless the producer had none open here (a
    /// marker for a partition the transaction never wrote to changes no offset).
    pub fn apply_end_txn_marker(
        &mut self,
        producer_id: i64,
        producer_epoch: i16,
        coordinator_epoch: i32,
        is_abort: bool,
        offset: i64,
        timestamp: i64,
    ) -> Option<CompletedTxn> {
        let entry = self
            .producers
            .entry(producer_id)
            .or_insert_with(ProducerStateEntry::empty);
        if producer_epoch != entry.epoch {
            entry.batches.clear();
            entry.epoch = producer_epoch;
        }
        entry.coordinator_epoch = coordinator_epoch;
        entry.last_timestamp = timestamp;
        let completed = entry
            .current_txn_first_offset
            .take()
            .map(|first_offset| CompletedTxn {
                producer_id,
                first_offset,
                last_offset: offset,
                is_aborted: is_abort,
            });
        if let Some(c) = completed {
            self.ongoing.remove(&c.first_offset);
            self.unreplicated.insert(c.first_offset, c.last_offset);
        }
        // A verification made before this marker was for the transaction it ends: an append
        // that still carries its guard must not open a new transaction here. Except under
        // transactions version 2, when the marker is in the verification's (bumped) epoch: it
        // ends the previous transaction, the verified one is the next.
        let next_started = self
            .verification
            .get(&producer_id)
            .is_some_and(|v| v.supports_epoch_bump && v.epoch == producer_epoch);
        if !next_started {
            self.verification.remove(&producer_id);
        }
        self.map_end_offset = self.map_end_offset.max(offset + 1);
        completed
    }

    /// The last stable offset recorded with an aborted transaction in the `.txnindex`
    /// (Kafka's `lastStableOffset(completedTxn)`): the first offset of the earliest other
    /// transaction still open, or the offset after the marker.
    pub fn last_stable_offset_of(&self, completed: &CompletedTxn) -> i64 {
        self.ongoing
            .iter()
            .find(|(_, &pid)| pid != completed.producer_id)
            .map_or(completed.last_offset + 1, |(&first, _)| first)
    }

    /// The first offset of the earliest transaction that is open, or ended by a marker the
    /// high watermark `high_watermark` has not passed: read_committed readers stop there.
    pub fn first_unstable_offset(&self, high_watermark: i64) -> Option<i64> {
        let ongoing = self.ongoing.keys().next().copied();
        let unreplicated = self
            .unreplicated
            .iter()
            .find(|(_, &marker)| marker >= high_watermark)
            .map(|(&first, _)| first);
        match (ongoing, unreplicated) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Forgets ended transactions whose marker is below `high_watermark` (Kafka's
    /// `onHighWatermarkUpdated`).
    pub fn on_high_watermark_updated(&mut self, high_watermark: i64) {
        self.unreplicated
            .retain(|_, &mut marker| marker >= high_watermark);
    }

    /// The open transactions: `(first offset, producer id)`, oldest first.
    pub fn ongoing_transactions(&self) -> impl Iterator<Item = (i64, i64)> + '_ {
        self.ongoing.iter().map(|(&f, &p)| (f, p))
    }

    /// Notes that the log reached `offset` (batches without a producer id move it too).
    pub fn advance_to(&mut self, offset: i64) {
        self.map_end_offset = self.map_end_offset.max(offset);
    }

    /// Forgets producers idle for at least `expiration_ms` (`producer.id.expiration.ms`).
    /// Returns how many were removed.
    pub fn remove_expired(&mut self, now_ms: i64, expiration_ms: i64) -> usize {
        let before = self.producers.len();
        // A producer with an open transaction stays (Kafka's `isProducerExpired`): the
        // coordinator's marker must still find it.
        self.producers.retain(|_, e| {
            e.current_txn_first_offset.is_some()
                || now_ms.saturating_sub(e.last_timestamp) < expiration_ms
        });
        // A verification whose produce never came back (Kafka expires them alike).
        self.verification
            .retain(|_, v| now_ms.saturating_sub(v.created_ms) < expiration_ms);
        before - self.producers.len()
    }

    /// Forgets everything: the state starts over at `offset` (a log truncated fully).
    pub fn reset(&mut self, offset: i64) {
        self.producers.clear();
        self.ongoing.clear();
        self.unreplicated.clear();
        self.verification.clear();
        self.deferred.clear();
        self.map_end_offset = offset;
    }

    // ---- transaction verification (KIP-890) ------------------------------------------------

    /// Kafka's `maybeStartTransactionVerification`: `None` when the producer's transaction is
    /// already open here (its batches need no verification), else the guard of the producer's
    /// verification entry, created if there is none (a concurrent request of the same producer
    /// shares it). The entry keeps the newest epoch and, in it, the lowest sequence.
    pub fn maybe_start_verification(
        &mut self,
        producer_id: i64,
        sequence: i32,
        epoch: i16,
        supports_epoch_bump: bool,
        now_ms: i64,
    ) -> Option<VerificationGuard> {
        // Kafka's `hasOngoingTransaction(producerId, producerEpoch)`: a transaction open here
        // in an older epoch is the previous one (transactions version 2), not this one.
        if self
            .producers
            .get(&producer_id)
            .is_some_and(|e| e.current_txn_first_offset.is_some() && e.epoch == epoch)
        {
            return None;
        }
        let entry =
            self.verification
                .entry(producer_id)
                .or_insert_with(|| VerificationStateEntry {
                    guard: VerificationGuard::next(),
                    lowest_sequence: sequence,
                    epoch,
                    supports_epoch_bump,
                    created_ms: now_ms,
                });
        if epoch > entry.epoch {
            entry.epoch = epoch;
            entry.lowest_sequence = sequence;
        } else if epoch == entry.epoch && sequence < entry.lowest_sequence {
            entry.lowest_sequence = sequence;
        }
        entry.supports_epoch_bump |= supports_epoch_bump;
        Some(entry.guard)
    }

    /// Whether the producer is known here in a newer epoch than `epoch`: Kafka refuses such a
    /// transactional produce INVALID_PRODUCER_EPOCH before it asks the coordinator
    /// (KAFKA-18042), whatever the coordinator would have said of its transactional id.
    pub fn has_newer_epoch(&self, producer_id: i64, epoch: i16) -> bool {
        self.producers
            .get(&producer_id)
            .is_some_and(|e| e.epoch > epoch)
    }

    /// The producer's verification under way, if any.
    pub fn verification_entry(&self, producer_id: i64) -> Option<&VerificationStateEntry> {
        self.verification.get(&producer_id)
    }

    /// Forgets the producer's verification (Kafka's `clearVerificationStateEntry`).
    pub fn clear_verification(&mut self, producer_id: i64) {
        self.verification.remove(&producer_id);
    }

    /// [`maybe_start_verification`](Self::maybe_start_verification) for a leader that appends
    /// verified batches later, out of the request's turn: Kafka handles a connection's requests
    /// one at a time, gregor pipelines them, so a request of the producer that needs no
    /// verification (its transaction opened meanwhile) must still not be appended before an
    /// earlier one that waits for its verification. Each `Verify` and `Behind` is one deferred
    /// append, ended by [`deferred_append_done`](Self::deferred_append_done).
    pub fn start_transactional_append(
        &mut self,
        producer_id: i64,
        sequence: i32,
        epoch: i16,
        supports_epoch_bump: bool,
        now_ms: i64,
    ) -> TxnAppendStart {
        let verify = self.maybe_start_verification(
            producer_id,
            sequence,
            epoch,
            supports_epoch_bump,
            now_ms,
        );
        let start = match verify {
            Some(guard) => TxnAppendStart::Verify(guard),
            None if self.deferred.contains_key(&producer_id) => TxnAppendStart::Behind,
            None => return TxnAppendStart::Now,
        };
        *self.deferred.entry(producer_id).or_insert(0) += 1;
        start
    }

    /// One deferred append of the producer was made (or given up).
    pub fn deferred_append_done(&mut self, producer_id: i64) {
        if let Some(n) = self.deferred.get_mut(&producer_id) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.deferred.remove(&producer_id);
            }
        }
    }

    // ---- snapshots ------------------------------------------------------------------------

    /// Encodes the state in Kafka's snapshot layout (`ProducerSnapshot` version 1, as
    /// `ProducerStateManager.writeSnapshot` writes it): version, CRC-32C of what follows, and
    /// one fixed-size entry per cached batch. Kafka keeps only each producer's last batch; this
    /// keeps all cached ones (a retry of any of them is still a duplicate after a restart), as
    /// consecutive entries of the same producer, oldest first, so Kafka's reader (which keeps
    /// the last entry of a producer id) and `kafka-dump-log.sh` read the file as Kafka's own.
    /// A producer with no batch in its epoch is one entry with no sequence and offset -1. The
    /// last entry's time is the producer's last time (Kafka's `lastTimestamp`; it can be a
    /// marker's), the others their batch's. The map end offset is the file's name.
    pub fn encode_snapshot(&self) -> Vec<u8> {
        let entries: usize = self
            .producers
            .values()
            .map(|e| e.batches.len().max(1))
            .sum();
        let mut body = Vec::with_capacity(4 + entries * SNAPSHOT_ENTRY_BYTES);
        body.extend_from_slice(&(entries as i32).to_be_bytes());
        // Sorted, so equal states give equal files.
        let sorted: BTreeMap<_, _> = self.producers.iter().collect();
        for (pid, e) in sorted {
            let txn_first = e.current_txn_first_offset.unwrap_or(-1);
            let mut entry = |last_seq: i32, last_offset: i64, delta: i32, timestamp: i64| {
                body.extend_from_slice(&pid.to_be_bytes());
                body.extend_from_slice(&e.epoch.to_be_bytes());
                body.extend_from_slice(&last_seq.to_be_bytes());
                body.extend_from_slice(&last_offset.to_be_bytes());
                body.extend_from_slice(&delta.to_be_bytes());
                body.extend_from_slice(&timestamp.to_be_bytes());
                body.extend_from_slice(&e.coordinator_epoch.to_be_bytes());
                body.extend_from_slice(&txn_first.to_be_bytes());
            };
            if e.batches.is_empty() {
                entry(-1, -1, 0, e.last_timestamp);
            }
            for (i, b) in e.batches.iter().enumerate() {
                let delta = i32::try_from(b.last_offset - b.first_offset).unwrap_or(i32::MAX);
                let last = i + 1 == e.batches.len();
                let timestamp = if last { e.last_timestamp } else { b.timestamp };
                entry(b.last_seq, b.last_offset, delta, timestamp);
            }
        }
        let mut out = Vec::with_capacity(body.len() + 6);
        out.extend_from_slice(&SNAPSHOT_VERSION.to_be_bytes());
        out.extend_from_slice(&crc32c::crc32c(&body).to_be_bytes());
        out.extend_from_slice(&body);
        out
    }

    /// Decodes a snapshot named `map_end_offset`: Kafka's layout (what
    /// [`encode_snapshot`](Self::encode_snapshot) writes, or a Kafka broker did), or gregor's
    /// own layout of earlier versions (version 2, which held the map end offset too); `None`
    /// for anything else, a torn file or a wrong CRC.
    pub fn decode_snapshot(bytes: &[u8], map_end_offset: i64) -> Option<ProducerStateManager> {
        let mut r = SnapshotReader { buf: bytes };
        let version = r.i16()?;
        let crc = r.u32()?;
        if crc32c::crc32c(r.buf) != crc {
            return None;
        }
        let (producers, ongoing) = match version {
            SNAPSHOT_VERSION => Self::decode_kafka_entries(r)?,
            GREGOR_SNAPSHOT_VERSION_2 => {
                let (end, producers, ongoing) = Self::decode_gregor_v2(r)?;
                if end != map_end_offset {
                    return None;
                }
                (producers, ongoing)
            }
            _ => return None,
        };
        Some(ProducerStateManager {
            producers,
            map_end_offset,
            ongoing,
            unreplicated: BTreeMap::new(),
            verification: HashMap::new(),
            deferred: HashMap::new(),
        })
    }

    /// Kafka's entries (after the CRC): a count, then fixed-size entries; consecutive entries
    /// of one producer are its cached batches, oldest first.
    fn decode_kafka_entries(mut r: SnapshotReader<'_>) -> Option<(Producers, BTreeMap<i64, i64>)> {
        let count = usize::try_from(r.i32()?).ok()?;
        if r.buf.len() != count.checked_mul(SNAPSHOT_ENTRY_BYTES)? {
            return None;
        }
        let mut producers: Producers = HashMap::new();
        for _ in 0..count {
            let pid = r.i64()?;
            let epoch = r.i16()?;
            let last_seq = r.i32()?;
            let last_offset = r.i64()?;
            let delta = r.i32()?;
            let timestamp = r.i64()?;
            let coordinator_epoch = r.i32()?;
            let txn_first = r.i64()?;
            let e = producers
                .entry(pid)
                .or_insert_with(ProducerStateEntry::empty);
            e.epoch = epoch;
            e.last_timestamp = timestamp;
            e.coordinator_epoch = coordinator_epoch;
            e.current_txn_first_offset = (txn_first >= 0).then_some(txn_first);
            if last_offset >= 0 {
                // A batch's sequences and offsets are never negative (a crafted file must not
                // make the first ones wrap).
                if last_seq < 0
                    || delta < 0
                    || last_offset < i64::from(delta)
                    || e.batches.len() == MAX_CACHED_BATCHES
                {
                    return None;
                }
                e.batches.push_back(BatchMetadata {
                    first_seq: decrement_sequence(last_seq, delta),
                    last_seq,
                    first_offset: last_offset - i64::from(delta),
                    last_offset,
                    timestamp,
                });
            }
        }
        let ongoing = producers
            .iter()
            .filter_map(|(&pid, e)| e.current_txn_first_offset.map(|first| (first, pid)))
            .collect();
        Some((producers, ongoing))
    }

    /// gregor's version 2 layout (after the CRC): map end offset, count, then per producer its
    /// epoch, last time, coordinator epoch, open transaction's first offset and batches.
    fn decode_gregor_v2(mut r: SnapshotReader<'_>) -> Option<(i64, Producers, BTreeMap<i64, i64>)> {
        let map_end_offset = r.i64()?;
        let count = r.u32()?;
        let mut producers = HashMap::new();
        let mut ongoing = BTreeMap::new();
        for _ in 0..count {
            let pid = r.i64()?;
            let epoch = r.i16()?;
            let last_timestamp = r.i64()?;
            let coordinator_epoch = r.i32()?;
            let txn_first = r.i64()?;
            let current_txn_first_offset = (txn_first >= 0).then_some(txn_first);
            if let Some(first) = current_txn_first_offset {
                ongoing.insert(first, pid);
            }
            let n = r.u8()?;
            if usize::from(n) > MAX_CACHED_BATCHES {
                return None;
            }
            let mut batches = VecDeque::with_capacity(usize::from(n));
            for _ in 0..n {
                batches.push_back(BatchMetadata {
                    first_seq: r.i32()?,
                    last_seq: r.i32()?,
                    first_offset: r.i64()?,
                    last_offset: r.i64()?,
                    timestamp: r.i64()?,
                });
            }
            producers.insert(
                pid,
                ProducerStateEntry {
                    epoch,
                    batches,
                    last_timestamp,
                    coordinator_epoch,
                    current_txn_first_offset,
                },
            );
        }
        if !r.buf.is_empty() {
            return None;
        }
        Some((map_end_offset, producers, ongoing))
    }

    /// Writes `<map end offset>.snapshot` in `dir` (temporary file, fsync, rename), so a
    /// snapshot on disk is whole. Returns its offset.
    pub fn write_snapshot(&self, dir: &Path) -> Result<i64, StorageError> {
        let offset = self.map_end_offset;
        let path = snapshot_path(dir, offset);
        let tmp = path.with_extension("snapshot.tmp");
        let bytes = self.encode_snapshot();
        let write = || -> std::io::Result<()> {
            let mut f = fs::File::create(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
            fs::rename(&tmp, &path)
        };
        write().map_err(io_err(&path))?;
        Ok(offset)
    }
}

/// Version of Kafka's snapshot layout (`ProducerSnapshot.json`), the one written.
const SNAPSHOT_VERSION: i16 = 1;
/// Bytes of one entry in Kafka's layout: producer id, epoch, last sequence, last offset,
/// offset delta, timestamp, coordinator epoch, first offset of the open transaction.
const SNAPSHOT_ENTRY_BYTES: usize = 8 + 2 + 4 + 8 + 4 + 8 + 4 + 8;
/// gregor's own layout before it wrote Kafka's, still read.
const GREGOR_SNAPSHOT_VERSION_2: i16 = 2;

type Producers = HashMap<i64, ProducerStateEntry>;

struct SnapshotReader<'a> {
    buf: &'a [u8],
}

impl SnapshotReader<'_> {
    fn take<const N: usize>(&mut self) -> Option<[u8; N]> {
        if self.buf.len() < N {
            return None;
        }
        let (head, rest) = self.buf.split_at(N);
        self.buf = rest;
        head.try_into().ok()
    }
    fn u8(&mut self) -> Option<u8> {
        self.take::<1>().map(|b| b[0])
    }
    fn i16(&mut self) -> Option<i16> {
        self.take().map(i16::from_be_bytes)
    }
    fn i32(&mut self) -> Option<i32> {
        self.take().map(i32::from_be_bytes)
    }
    fn u32(&mut self) -> Option<u32> {
        self.take().map(u32::from_be_bytes)
    }
    fn i64(&mut self) -> Option<i64> {
        self.take().map(i64::from_be_bytes)
    }
}

/// Kafka's checks of one batch against the producer's entry (`None`: unknown producer).
fn check_batch(
    current: Option<&ProducerStateEntry>,
    b: &ProducerBatch,
) -> Result<(), ProducerStateError> {
    let Some(entry) = current.filter(|e| e.epoch != NO_PRODUCER_EPOCH) else {
        // Unknown (never seen, expired, or its batches were deleted): any sequence.
        return Ok(());
    };
    if b.epoch < entry.epoch {
        return Err(ProducerStateError::InvalidProducerEpoch {
            producer_id: b.producer_id,
            epoch: b.epoch,
            current: entry.epoch,
        });
    }
    let out_of_order = || ProducerStateError::OutOfOrderSequence {
        producer_id: b.producer_id,
        epoch: b.epoch,
        first_seq: b.first_seq,
        last_seq: entry.last_seq(),
    };
    if b.epoch != entry.epoch {
        // A bumped epoch restarts the sequence.
        if b.first_seq != 0 {
            return Err(out_of_order());
        }
        return Ok(());
    }
    match entry.last_seq() {
        Some(last) if !in_sequence(last, b.first_seq) => Err(out_of_order()),
        _ => Ok(()),
    }
}

/// `<dir>/<20-digit offset>.snapshot`.
pub fn snapshot_path(dir: &Path, offset: i64) -> PathBuf {
    dir.join(format!("{offset:020}.{SNAPSHOT_SUFFIX}"))
}

/// The snapshot files in `dir`, by offset.
pub fn list_snapshots(dir: &Path) -> Result<BTreeMap<i64, PathBuf>, StorageError> {
    let mut out = BTreeMap::new();
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(io_err(dir)(e)),
    };
    for entry in entries {
        let entry = entry.map_err(io_err(dir))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(stem) = name.strip_suffix(&format!(".{SNAPSHOT_SUFFIX}")) else {
            continue;
        };
        if let Ok(offset) = stem.parse::<i64>() {
            out.insert(offset, entry.path());
        }
    }
    Ok(out)
}

/// Removes snapshots that are neither at a segment's base offset nor the newest, and
/// temporary files a crash left (Kafka's `removeStraySnapshots`): one snapshot per segment is
/// what recovery and truncation can use, the rest only piles up with every restart.
pub fn remove_stray_snapshots(
    dir: &Path,
    segment_bases: &std::collections::BTreeSet<i64>,
) -> Result<(), StorageError> {
    let snapshots = list_snapshots(dir)?;
    let newest = snapshots.keys().next_back().copied();
    for (offset, path) in &snapshots {
        if Some(*offset) != newest && !segment_bases.contains(offset) {
            remove_if_present(path)?;
        }
    }
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_err(dir)(e)),
    };
    for entry in entries {
        let entry = entry.map_err(io_err(dir))?;
        if entry
            .file_name()
            .to_str()
            .is_some_and(|n| n.ends_with(&format!(".{SNAPSHOT_SUFFIX}.tmp")))
        {
            remove_if_present(&entry.path())?;
        }
    }
    Ok(())
}

fn remove_if_present(path: &Path) -> Result<(), StorageError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err(path)(e)),
    }
}

/// Reads the snapshot file `path` of offset `offset` (its name); `Ok(None)` when it is not a
/// whole snapshot (a torn or foreign file).
pub fn read_snapshot(
    path: &Path,
    offset: i64,
) -> Result<Option<ProducerStateManager>, StorageError> {
    let bytes = fs::read(path).map_err(io_err(path))?;
    Ok(ProducerStateManager::decode_snapshot(&bytes, offset))
}

/// Removes the snapshots whose offset is in `range`.
pub fn delete_snapshots(
    dir: &Path,
    range: impl std::ops::RangeBounds<i64>,
) -> Result<(), StorageError> {
    for (_, path) in list_snapshots(dir)?.range(range) {
        remove_if_present(path)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(pid: i64, epoch: i16, first_seq: i32, count: i32) -> ProducerBatch {
        ProducerBatch::new(pid, epoch, first_seq, count)
    }

    /// Checks and, if new, appends at `offset`; returns the check.
    fn append(
        s: &mut ProducerStateManager,
        b: ProducerBatch,
        offset: i64,
        now: i64,
    ) -> Result<AppendCheck, ProducerStateError> {
        let check = s.check(&[b])?;
        if check == AppendCheck::Append {
            let count = i64::from(b.last_seq.wrapping_sub(b.first_seq)) + 1;
            s.update(&b, offset, offset + count - 1, now);
        }
        Ok(check)
    }

    /// Checks with `verification` and, if new, appends at `offset` (as the log does).
    fn append_verified(
        s: &mut ProducerStateManager,
        b: ProducerBatch,
        offset: i64,
        verification: TxnVerification,
    ) -> Result<AppendCheck, ProducerStateError> {
        let check = s.check_verified(&[b], verification)?;
        if check == AppendCheck::Append {
            let count = i64::from(b.last_seq.wrapping_sub(b.first_seq)) + 1;
            s.update(&b, offset, offset + count - 1, 0);
        }
        Ok(check)
    }

    #[test]
    fn a_verified_transactional_batch_opens_the_transaction_and_clears_the_guard() {
        let mut s = ProducerStateManager::new();
        let guard = s
            .maybe_start_verification(7, 0, 0, false, 0)
            .expect("no open transaction");
        // A second request of the same producer joins the same verification.
        assert_eq!(s.maybe_start_verification(7, 0, 0, false, 0), Some(guard));
        let b = batch(7, 0, 0, 2).with_transactional(true);
        assert_eq!(
            append_verified(&mut s, b, 0, TxnVerification::Required(Some(guard))),
            Ok(AppendCheck::Append)
        );
        assert!(s.verification_entry(7).is_none(), "the append clears it");
        // The transaction is open: later batches need no verification, and none starts.
        assert_eq!(s.maybe_start_verification(7, 2, 0, false, 0), None);
        let next = batch(7, 0, 2, 1).with_transactional(true);
        assert_eq!(
            append_verified(&mut s, next, 2, TxnVerification::Required(None)),
            Ok(AppendCheck::Append)
        );
    }

    /// Transactions version 2: the producer's next transaction (epoch 1) reaches the partition
    /// while its previous one (epoch 0) is still open here, its marker not yet written. The
    /// open transaction is not the new one's: it is verified; the marker that then ends the
    /// previous transaction carries the bumped epoch and leaves the verification in place, so
    /// the verified append opens the new transaction. A marker in another epoch, or one for a
    /// verification without the bump (transactions version 1), still clears it.
    #[test]
    fn a_bumped_epoch_is_verified_past_the_previous_open_transaction() {
        let mut s = ProducerStateManager::new();
        let first = batch(7, 0, 0, 1).with_transactional(true);
        append_verified(&mut s, first, 0, TxnVerification::NotRequired).expect("open");
        assert_eq!(
            s.maybe_start_verification(7, 1, 0, true, 0),
            None,
            "the open transaction's own epoch continues it"
        );
        let guard = s
            .maybe_start_verification(7, 0, 1, true, 0)
            .expect("a newer epoch is verified");
        s.apply_end_txn_marker(7, 1, 0, false, 1, 0);
        assert_eq!(s.verification_entry(7).map(|v| v.guard), Some(guard));
        let next = batch(7, 1, 0, 1).with_transactional(true);
        assert_eq!(
            append_verified(&mut s, next, 2, TxnVerification::Required(Some(guard))),
            Ok(AppendCheck::Append)
        );
        assert_eq!(s.ongoing_transactions().count(), 1);

        // Without the bump (version 1), the same sequence clears the verification.
        let mut s = ProducerStateManager::new();
        append_verified(&mut s, first, 0, TxnVerification::NotRequired).expect("open");
        let guard = s
            .maybe_start_verification(7, 0, 1, false, 0)
            .expect("guard");
        s.apply_end_txn_marker(7, 1, 0, false, 1, 0);
        assert!(s.verification_entry(7).is_none());
        assert_eq!(
            append_verified(&mut s, next, 2, TxnVerification::Required(Some(guard))),
            Err(ProducerStateError::UnverifiedTransaction { producer_id: 7 })
        );
    }

    /// The group coordinator's transactional offsets (origin Coordinator, not sequenced) need
    /// the request's guard to open the producer's transaction, as a client's batches do: a
    /// marker between the verification and the write clears it, and the write is refused
    /// instead of leaving offsets no marker will ever end. Once the transaction is open here,
    /// its further offsets need none; without verification nothing is checked.
    #[test]
    fn coordinator_offsets_need_the_guard_to_open_a_transaction() {
        let offsets = batch(7, 0, 0, 0).with_transactional(true);
        let write = |s: &mut ProducerStateManager, v: TxnVerification| {
            let check = s.check_from_verified(AppendOrigin::Coordinator, &[offsets], v)?;
            s.update(&offsets, 0, 0, 0);
            Ok::<_, ProducerStateError>(check)
        };
        // Verified, then a marker (the transaction's timeout abort) before the write.
        let mut s = ProducerStateManager::new();
        let guard = s.maybe_start_verification(7, -1, 0, false, 0);
        assert!(guard.is_some());
        s.apply_end_txn_marker(7, 0, 0, false, 1, 0);
        assert_eq!(
            write(&mut s, TxnVerification::Required(guard)),
            Err(ProducerStateError::UnverifiedTransaction { producer_id: 7 })
        );
        assert_eq!(
            write(&mut s, TxnVerification::Required(None)),
            Err(ProducerStateError::UnverifiedTransaction { producer_id: 7 })
        );
        // Verified and written: the transaction is open, the next offsets need no guard.
        let guard = s.maybe_start_verification(7, -1, 0, false, 0);
        assert_eq!(
            write(&mut s, TxnVerification::Required(guard)),
            Ok(AppendCheck::Append)
        );
        assert!(s.verification_entry(7).is_none());
        assert_eq!(s.maybe_start_verification(7, -1, 0, false, 0), None);
        assert_eq!(
            write(&mut s, TxnVerification::Required(None)),
            Ok(AppendCheck::Append)
        );
        // Verification off: written as before.
        let mut s = ProducerStateManager::new();
        assert_eq!(
            write(&mut s, TxnVerification::NotRequired),
            Ok(AppendCheck::Append)
        );
    }

    #[test]
    fn a_marker_between_verification_and_append_makes_the_append_fail() {
        let mut s = ProducerStateManager::new();
        // Producer 7's transaction is open here; it ends while a new request of 7 (for its
        // next transaction) is being verified.
        let first = batch(7, 0, 0, 1).with_transactional(true);
        append_verified(&mut s, first, 0, TxnVerification::NotRequired).expect("open");
        s.apply_end_txn_marker(7, 0, 0, false, 1, 0);
        let guard = s
            .maybe_start_verification(7, 1, 0, false, 0)
            .expect("closed now");
        // A late marker of the same producer (the coordinator's retry) lands before the append.
        s.apply_end_txn_marker(7, 0, 0, false, 2, 0);
        let late = batch(7, 0, 1, 1).with_transactional(true);
        assert_eq!(
            append_verified(&mut s, late, 3, TxnVerification::Required(Some(guard))),
            Err(ProducerStateError::UnverifiedTransaction { producer_id: 7 })
        );
        assert_eq!(
            s.ongoing_transactions().count(),
            0,
            "no hanging transaction"
        );
        // Without any verification, or with another producer's guard, it is refused too.
        assert!(append_verified(&mut s, late, 3, TxnVerification::Required(None)).is_err());
        let other = s
            .maybe_start_verification(8, 0, 0, false, 0)
            .expect("guard of 8");
        assert!(append_verified(&mut s, late, 3, TxnVerification::Required(Some(other))).is_err());
        // A fresh verification lets it in.
        let fresh = s
            .maybe_start_verification(7, 1, 0, false, 0)
            .expect("guard");
        assert_ne!(fresh, guard, "guards are never reused");
        assert_eq!(
            append_verified(&mut s, late, 3, TxnVerification::Required(Some(fresh))),
            Ok(AppendCheck::Append)
        );
    }

    #[test]
    fn non_transactional_batches_need_no_verification() {
        let mut s = ProducerStateManager::new();
        for (i, seq) in [0, 3].into_iter().enumerate() {
            assert_eq!(
                append_verified(
                    &mut s,
                    batch(9, 0, seq, 3),
                    i as i64 * 3,
                    TxnVerification::Required(None)
                ),
                Ok(AppendCheck::Append)
            );
        }
        // Verification off: a transactional batch opens a transaction as before KIP-890.
        let t = batch(10, 0, 0, 1).with_transactional(true);
        assert_eq!(
            append_verified(&mut s, t, 6, TxnVerification::NotRequired),
            Ok(AppendCheck::Append)
        );
    }

    #[test]
    fn while_verifications_wait_only_the_lowest_sequence_is_appended_first() {
        let mut s = ProducerStateManager::new();
        // Two requests of a producer new to this partition, sequences 0 and 5, both verifying.
        let g = s
            .maybe_start_verification(7, 5, 0, false, 0)
            .expect("guard");
        assert_eq!(s.maybe_start_verification(7, 0, 0, false, 0), Some(g));
        let later = batch(7, 0, 5, 2).with_transactional(true);
        assert!(matches!(
            append_verified(&mut s, later, 0, TxnVerification::Required(Some(g))),
            Err(ProducerStateError::OutOfOrderSequence { first_seq: 5, .. })
        ));
        let first = batch(7, 0, 0, 5).with_transactional(true);
        assert_eq!(
            append_verified(&mut s, first, 0, TxnVerification::Required(Some(g))),
            Ok(AppendCheck::Append)
        );
        // The transaction is open and the entry gone: the retried later batch follows.
        assert_eq!(
            append_verified(&mut s, later, 5, TxnVerification::Required(Some(g))),
            Ok(AppendCheck::Append)
        );
    }

    #[test]
    fn appends_behind_a_waiting_verification_wait_their_turn() {
        let mut s = ProducerStateManager::new();
        let Some(first) = (match s.start_transactional_append(7, 0, 0, false, 0) {
            TxnAppendStart::Verify(g) => Some(g),
            _ => None,
        }) else {
            panic!("the first append of a transaction verifies");
        };
        // A second request joins the verification.
        assert_eq!(
            s.start_transactional_append(7, 2, 0, false, 0),
            TxnAppendStart::Verify(first)
        );
        // The first is appended: the transaction is open, the second still waits.
        let b = batch(7, 0, 0, 2).with_transactional(true);
        append_verified(&mut s, b, 0, TxnVerification::Required(Some(first))).expect("first");
        s.deferred_append_done(7);
        assert_eq!(
            s.start_transactional_append(7, 4, 0, false, 0),
            TxnAppendStart::Behind,
            "a third request may not overtake the second"
        );
        s.deferred_append_done(7); // the second
        s.deferred_append_done(7); // the third
        assert_eq!(
            s.start_transactional_append(7, 6, 0, false, 0),
            TxnAppendStart::Now
        );
        // Another producer is not held up.
        assert!(matches!(
            s.start_transactional_append(8, 0, 0, false, 0),
            TxnAppendStart::Verify(_)
        ));
    }

    #[test]
    fn a_verification_keeps_the_newest_epoch_and_its_lowest_sequence_and_expires() {
        let mut s = ProducerStateManager::new();
        let g = s
            .maybe_start_verification(7, 5, 0, false, 100)
            .expect("guard");
        s.maybe_start_verification(7, 3, 0, false, 100);
        let e = *s.verification_entry(7).expect("entry");
        assert_eq!((e.guard, e.epoch, e.lowest_sequence), (g, 0, 3));
        s.maybe_start_verification(7, 9, 1, false, 100);
        s.maybe_start_verification(7, 2, 0, false, 100);
        let e = *s.verification_entry(7).expect("entry");
        assert_eq!((e.epoch, e.lowest_sequence), (1, 9));
        s.remove_expired(100 + 1_000, 1_000);
        assert!(s.verification_entry(7).is_none());
    }

    #[test]
    fn in_order_batches_are_appended() {
        let mut s = ProducerStateManager::new();
        assert_eq!(
            append(&mut s, batch(7, 0, 0, 3), 0, 1),
            Ok(AppendCheck::Append)
        );
        assert_eq!(
            append(&mut s, batch(7, 0, 3, 2), 3, 2),
            Ok(AppendCheck::Append)
        );
        let e = s.entry(7).expect("known");
        assert_eq!((e.epoch, e.last_seq()), (0, Some(4)));
        assert_eq!(s.map_end_offset(), 5);
    }

    #[test]
    fn a_retry_of_any_of_the_last_five_batches_is_a_duplicate_with_its_offsets() {
        let mut s = ProducerStateManager::new();
        for i in 0..6 {
            append(&mut s, batch(7, 0, i * 2, 2), i64::from(i) * 10, 0).expect("in order");
        }
        // Batch 0 fell out of the cache; 1..=5 are remembered.
        for i in 1..6 {
            let dup = append(&mut s, batch(7, 0, i * 2, 2), 999, 0).expect("duplicate");
            let AppendCheck::Duplicate(b) = dup else {
                panic!("batch {i} is a duplicate, got {dup:?}")
            };
            assert_eq!(b.first_offset, i64::from(i) * 10);
            assert_eq!(b.last_offset, i64::from(i) * 10 + 1);
        }
        assert!(matches!(
            append(&mut s, batch(7, 0, 0, 2), 999, 0),
            Err(ProducerStateError::OutOfOrderSequence { .. })
        ));
    }

    #[test]
    fn a_gap_is_out_of_order() {
        let mut s = ProducerStateManager::new();
        append(&mut s, batch(7, 0, 0, 1), 0, 0).expect("first");
        let err = append(&mut s, batch(7, 0, 2, 1), 1, 0).expect_err("gap");
        assert!(matches!(
            err,
            ProducerStateError::OutOfOrderSequence {
                first_seq: 2,
                last_seq: Some(0),
                ..
            }
        ));
        // A batch inside an earlier one but not equal to it is out of order too.
        append(&mut s, batch(7, 0, 1, 4), 1, 0).expect("next");
        assert!(append(&mut s, batch(7, 0, 2, 1), 5, 0).is_err());
    }

    #[test]
    fn epochs_fence_and_restart_the_sequence() {
        let mut s = ProducerStateManager::new();
        append(&mut s, batch(7, 3, 0, 5), 0, 0).expect("first");
        // An older epoch is a zombie.
        assert!(matches!(
            append(&mut s, batch(7, 2, 5, 1), 5, 0),
            Err(ProducerStateError::InvalidProducerEpoch {
                epoch: 2,
                current: 3,
                ..
            })
        ));
        // A newer epoch must start at 0.
        assert!(matches!(
            append(&mut s, batch(7, 4, 5, 1), 5, 0),
            Err(ProducerStateError::OutOfOrderSequence { .. })
        ));
        assert_eq!(
            append(&mut s, batch(7, 4, 0, 1), 5, 0),
            Ok(AppendCheck::Append)
        );
        // The old epoch's batches are no longer duplicates: they are fenced.
        assert!(matches!(
            append(&mut s, batch(7, 3, 0, 5), 6, 0),
            Err(ProducerStateError::InvalidProducerEpoch { .. })
        ));
    }

    #[test]
    fn unknown_producers_start_anywhere_as_in_kafka_4() {
        let mut s = ProducerStateManager::new();
        assert_eq!(
            append(&mut s, batch(9, 0, 42, 1), 0, 0),
            Ok(AppendCheck::Append)
        );
        assert_eq!(
            append(&mut s, batch(9, 0, 43, 1), 1, 0),
            Ok(AppendCheck::Append)
        );
    }

    #[test]
    fn sequences_wrap_from_max_to_zero() {
        assert_eq!(increment_sequence(i32::MAX, 1), 0);
        assert_eq!(increment_sequence(i32::MAX - 1, 3), 1);
        let mut s = ProducerStateManager::new();
        let b = batch(7, 0, i32::MAX - 1, 2);
        assert_eq!(b.last_seq, i32::MAX);
        append(&mut s, b, 0, 0).expect("first");
        let wrapped = batch(7, 0, 0, 3);
        assert_eq!(append(&mut s, wrapped, 2, 0), Ok(AppendCheck::Append));
        // A batch crossing the wrap.
        let mut s = ProducerStateManager::new();
        append(&mut s, batch(7, 0, i32::MAX - 1, 4), 0, 0).expect("crosses");
        assert_eq!(s.entry(7).and_then(ProducerStateEntry::last_seq), Some(1));
        assert_eq!(
            append(&mut s, batch(7, 0, 2, 1), 4, 0),
            Ok(AppendCheck::Append)
        );
    }

    #[test]
    fn several_batches_of_one_set_are_checked_in_order() {
        let s = ProducerStateManager::new();
        let ok = [batch(7, 0, 0, 2), batch(7, 0, 2, 2)];
        assert_eq!(s.check(&ok), Ok(AppendCheck::Append));
        let gap = [batch(7, 0, 0, 2), batch(7, 0, 5, 2)];
        assert!(s.check(&gap).is_err());
    }

    #[test]
    fn idle_producers_expire() {
        let mut s = ProducerStateManager::new();
        append(&mut s, batch(1, 0, 0, 1), 0, 1_000).expect("a");
        append(&mut s, batch(2, 0, 0, 1), 1, 5_000).expect("b");
        assert_eq!(s.remove_expired(10_999, 10_000), 0);
        assert_eq!(s.remove_expired(11_000, 10_000), 1);
        assert!(s.entry(1).is_none() && s.entry(2).is_some());
        // The expired producer is unknown again: any sequence is taken.
        assert_eq!(
            append(&mut s, batch(1, 0, 1, 1), 2, 12_000),
            Ok(AppendCheck::Append)
        );
    }

    proptest::proptest! {
        /// A producer sends batches in order and retries some of them, as a client with five
        /// requests in flight does: every retry of one of the last five batches is a duplicate
        /// answered with its first offsets, older retries are refused, nothing is appended
        /// twice; the state survives a snapshot round trip unchanged.
        #[test]
        fn retries_are_duplicates_and_never_appended_twice(
            steps in proptest::collection::vec((1i32..20, proptest::option::of(0usize..8)), 1..60),
            start in proptest::prop_oneof![proptest::strategy::Just(0i32), (i32::MAX - 200)..=i32::MAX],
        ) {
            let mut s = ProducerStateManager::new();
            let mut sent: Vec<(ProducerBatch, i64, i64)> = Vec::new();
            let mut seq = start;
            let mut log_end = 0i64;
            for (count, retry) in steps {
                let b = batch(3, 0, seq, count);
                proptest::prop_assert_eq!(s.check(&[b]), Ok(AppendCheck::Append));
                s.update(&b, log_end, log_end + i64::from(count) - 1, 0);
                sent.push((b, log_end, log_end + i64::from(count) - 1));
                log_end += i64::from(count);
                seq = increment_sequence(seq, count);
                if let Some(back) = retry.filter(|&r| r < sent.len()) {
                    let (old, first, last) = sent[sent.len() - 1 - back];
                    let answer = s.check(&[old]);
                    if back < MAX_CACHED_BATCHES {
                        let AppendCheck::Duplicate(d) = answer.clone().expect("a duplicate") else {
                            return Err(proptest::test_runner::TestCaseError::fail(format!("{answer:?}")));
                        };
                        proptest::prop_assert_eq!((d.first_offset, d.last_offset), (first, last));
                    } else {
                        proptest::prop_assert!(answer.is_err(), "an old retry is refused: {answer:?}");
                    }
                }
            }
            proptest::prop_assert_eq!(s.map_end_offset(), log_end);
            let restored = ProducerStateManager::decode_snapshot(&s.encode_snapshot(), s.map_end_offset());
            proptest::prop_assert_eq!(restored.as_ref(), Some(&s));
        }
    }

    #[test]
    fn snapshots_round_trip_and_refuse_damage() {
        let mut s = ProducerStateManager::new();
        for i in 0..7 {
            append(&mut s, batch(1, 2, i, 1), i64::from(i), 100).expect("a");
        }
        append(&mut s, batch(5, 0, 0, 10), 7, 200).expect("b");
        let bytes = s.encode_snapshot();
        assert_eq!(
            ProducerStateManager::decode_snapshot(&bytes, 17),
            Some(s.clone())
        );
        for cut in 0..bytes.len() {
            assert_eq!(
                ProducerStateManager::decode_snapshot(&bytes[..cut], 17),
                None
            );
        }
        let mut flipped = bytes.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        assert_eq!(ProducerStateManager::decode_snapshot(&flipped, 17), None);

        let dir = tempfile::tempdir().expect("tempdir");
        let offset = s.write_snapshot(dir.path()).expect("write");
        assert_eq!(offset, 17);
        let listed = list_snapshots(dir.path()).expect("list");
        assert_eq!(listed.keys().copied().collect::<Vec<_>>(), vec![17]);
        assert_eq!(read_snapshot(&listed[&17], 17).expect("read"), Some(s));
        delete_snapshots(dir.path(), ..=17).expect("delete");
        assert!(list_snapshots(dir.path()).expect("list").is_empty());
    }

    /// One entry of Kafka's `ProducerSnapshot` version 1, field by field as its schema lists
    /// them (producer id, epoch, last sequence, last offset, offset delta, timestamp,
    /// coordinator epoch, current transaction's first offset).
    #[allow(clippy::too_many_arguments)]
    fn kafka_entry(
        out: &mut Vec<u8>,
        pid: i64,
        epoch: i16,
        last_seq: i32,
        last_offset: i64,
        delta: i32,
        timestamp: i64,
        coordinator_epoch: i32,
        txn_first: i64,
    ) {
        out.extend_from_slice(&pid.to_be_bytes());
        out.extend_from_slice(&epoch.to_be_bytes());
        out.extend_from_slice(&last_seq.to_be_bytes());
        out.extend_from_slice(&last_offset.to_be_bytes());
        out.extend_from_slice(&delta.to_be_bytes());
        out.extend_from_slice(&timestamp.to_be_bytes());
        out.extend_from_slice(&coordinator_epoch.to_be_bytes());
        out.extend_from_slice(&txn_first.to_be_bytes());
    }

    /// Kafka's file: version 1, then the CRC-32C of the array (count and entries).
    fn kafka_file(count: i32, entries: &[u8]) -> Vec<u8> {
        let mut body = count.to_be_bytes().to_vec();
        body.extend_from_slice(entries);
        let mut out = 1i16.to_be_bytes().to_vec();
        out.extend_from_slice(&crc32c::crc32c(&body).to_be_bytes());
        out.extend_from_slice(&body);
        out
    }

    /// The snapshot is Kafka's layout byte for byte: a state of one batch per producer encodes
    /// as Kafka's writer would, and a file a Kafka broker wrote loads (a producer with an open
    /// transaction, one whose last batch wrapped its sequence, one with no batch).
    #[test]
    fn snapshots_are_kafkas_layout() {
        let mut entries = Vec::new();
        kafka_entry(&mut entries, 3, 1, 3, 13, 3, 500, -1, 10);
        kafka_entry(&mut entries, 9, 0, 2, 18, 4, 600, -1, -1);
        let kafka = kafka_file(2, &entries);
        let mut mine = ProducerStateManager::new();
        mine.update(&batch(3, 1, 0, 4).with_transactional(true), 10, 13, 500);
        mine.update(&batch(9, 0, i32::MAX - 1, 5), 14, 18, 600);
        assert_eq!(
            mine.encode_snapshot(),
            kafka,
            "encoded as Kafka's writer would"
        );

        let loaded = ProducerStateManager::decode_snapshot(&kafka, 19).expect("Kafka's file loads");
        assert_eq!(mine.map_end_offset(), 19);
        assert_eq!(loaded, mine);
        let e9 = &loaded.producers[&9];
        assert_eq!(
            e9.batches
                .iter()
                .map(|b| (b.first_seq, b.last_seq))
                .collect::<Vec<_>>(),
            vec![(i32::MAX - 1, 2)],
            "the first sequence is the last minus the offset delta, wrapped"
        );
        assert_eq!(loaded.first_unstable_offset(0), Some(10));
        // A retry of either batch is a duplicate after the load.
        let mut again = loaded.clone();
        assert!(matches!(
            again.check(&[batch(9, 0, i32::MAX - 1, 5)]),
            Ok(AppendCheck::Duplicate(_))
        ));
        assert_eq!(
            append(&mut again, batch(9, 0, 3, 1), 19, 700),
            Ok(AppendCheck::Append)
        );

        // A producer with no batch in its epoch: no sequence, offset -1.
        let mut entries = Vec::new();
        kafka_entry(&mut entries, 4, 2, -1, -1, 0, 800, 5, -1);
        let loaded =
            ProducerStateManager::decode_snapshot(&kafka_file(1, &entries), 0).expect("loads");
        let e4 = &loaded.producers[&4];
        assert!(e4.batches.is_empty());
        assert_eq!(
            (e4.epoch, e4.coordinator_epoch, e4.last_timestamp),
            (2, 5, 800)
        );
        assert_eq!(loaded.encode_snapshot(), kafka_file(1, &entries));
        // A count that does not match the entries is refused.
        assert_eq!(
            ProducerStateManager::decode_snapshot(&kafka_file(2, &entries), 0),
            None
        );
        // So is a batch with a negative sequence or an offset delta past its offset (with a
        // right CRC: a crafted file), rather than wrapped.
        for (last_seq, last_offset, delta) in [(-5, 10, i32::MAX), (3, 2, 3), (3, 10, -1)] {
            let mut entries = Vec::new();
            kafka_entry(&mut entries, 4, 0, last_seq, last_offset, delta, 1, -1, -1);
            assert_eq!(
                ProducerStateManager::decode_snapshot(&kafka_file(1, &entries), 11),
                None,
                "{last_seq} {last_offset} {delta}"
            );
        }
    }

    /// Every cached batch is written, oldest first, as entries of the same producer (Kafka's
    /// reader keeps the last, the newest); a marker's time is the last entry's.
    #[test]
    fn cached_batches_are_consecutive_entries_and_a_marker_time_is_kept() {
        let mut s = ProducerStateManager::new();
        for i in 0..3 {
            s.update(
                &batch(7, 0, i, 1).with_transactional(true),
                i64::from(i),
                i64::from(i),
                100 + i64::from(i),
            );
        }
        s.apply_end_txn_marker(7, 0, 4, false, 3, 900);
        let bytes = s.encode_snapshot();
        let mut entries = Vec::new();
        kafka_entry(&mut entries, 7, 0, 0, 0, 0, 100, 4, -1);
        kafka_entry(&mut entries, 7, 0, 1, 1, 0, 101, 4, -1);
        kafka_entry(&mut entries, 7, 0, 2, 2, 0, 900, 4, -1);
        assert_eq!(bytes, kafka_file(3, &entries));
        let loaded = ProducerStateManager::decode_snapshot(&bytes, 4).expect("loads");
        let e = &loaded.producers[&7];
        assert_eq!(e.batches.len(), 3);
        assert_eq!(e.last_timestamp, 900);
        assert_eq!(e.current_txn_first_offset, None);
        assert!(matches!(
            loaded.clone().check(&[batch(7, 0, 0, 1)]),
            Ok(AppendCheck::Duplicate(_))
        ));
    }

    /// gregor's own layout of earlier versions (version 2) still loads, under its own name.
    #[test]
    fn gregors_earlier_snapshot_layout_still_loads() {
        let mut body = Vec::new();
        body.extend_from_slice(&21i64.to_be_bytes()); // map end offset
        body.extend_from_slice(&1u32.to_be_bytes());
        body.extend_from_slice(&5i64.to_be_bytes()); // producer id
        body.extend_from_slice(&3i16.to_be_bytes());
        body.extend_from_slice(&444i64.to_be_bytes()); // last time
        body.extend_from_slice(&2i32.to_be_bytes()); // coordinator epoch
        body.extend_from_slice(&17i64.to_be_bytes()); // open transaction from 17
        body.push(1);
        for v in [0i32, 3] {
            body.extend_from_slice(&v.to_be_bytes());
        }
        for v in [17i64, 20, 444] {
            body.extend_from_slice(&v.to_be_bytes());
        }
        let mut file = 2i16.to_be_bytes().to_vec();
        file.extend_from_slice(&crc32c::crc32c(&body).to_be_bytes());
        file.extend_from_slice(&body);
        let loaded = ProducerStateManager::decode_snapshot(&file, 21).expect("loads");
        let e = &loaded.producers[&5];
        assert_eq!(
            (e.epoch, e.coordinator_epoch, e.last_timestamp),
            (3, 2, 444)
        );
        assert_eq!(e.batches[0].first_offset, 17);
        assert_eq!(loaded.first_unstable_offset(0), Some(17));
        assert_eq!(loaded.map_end_offset(), 21);
        assert_eq!(
            ProducerStateManager::decode_snapshot(&file, 22),
            None,
            "a file whose offset is not its name's"
        );
    }
}
