//! The share-partition (Kafka's `SharePartition`), free of I/O: what one share group has done
//! with one topic partition on its leader. The broker's `share_partitions.rs` owns one per
//! (group, topic partition) it leads, reads the log for it, and persists what it returns.
//!
//! ```text
//!  offsets:   ... done ... | SPSO ........ in flight ........ | end offset ... never read ...
//!                          | runs: Available / Acquired (member, lock deadline) /
//!                          |       Acknowledged / Archived, each with its delivery count
//!
//!  acquire(member, fetch offset, batches read, max records, now)
//!      Available runs in the batches read (released ones first: reads start at the first
//!      Available offset), then new batches past the end offset while fewer than
//!      `partition_max_record_locks` records are in flight ─► Acquired, count + 1,
//!      lock deadline now + `record_lock_duration_ms`
//!  acknowledge(member, [(first, last, types)]) ─► Accept: Acknowledged, Release: Available
//!      (Archived at the delivery count limit), Reject / Gap: Archived; all or nothing
//!      (in two steps around the write of the new state: acknowledge_pending, then commit,
//!      or roll_back when the write failed: the records are Acquired by the member again)
//!  tick(now): locks past their deadline ─► Available (Archived at the limit)
//!  release_member(member): its Acquired records ─► Available (Archived at the limit)
//!  after each: the SPSO moves past the leading Acknowledged / Archived records
//! ```
//!
//! The in-flight records are kept as runs (first offset → last offset, one state, count,
//! holder and deadline) that exactly cover `[SPSO, end offset)`; an operation on part of a run
//! splits it and neighbours that end up alike are merged again. Offsets that the log does not
//! hold (compacted away, or the gap before the first batch read) and control batches (and,
//! for read_committed, aborted transactions' batches) are archived when they are read:
//! they are never handed to a consumer.
//!
//! An acknowledgement waiting for its write (Kafka's ongoing state transition) leaves its runs
//! *pending*: they already hold the new state (what the write carries) but are not acquired
//! again, not passed by the SPSO in memory, and keep their holder and lock deadline, to
//! return to them if the write fails (Kafka's `rollbackOrProcessStateUpdates`).
//!
//! Time is passed in (milliseconds); nothing here reads a clock.

use std::collections::BTreeMap;

use crate::state::{
    AcknowledgeType, DeliveryState, PersistedState, ShareGroupSettings, StateBatch,
};

/// One batch of the log read for a fetch, in offset order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FetchedBatch {
    /// The batch's base offset.
    pub first_offset: i64,
    /// The batch's last offset.
    pub last_offset: i64,
    /// False for a batch that is never delivered: a control batch (transaction marker), or
    /// under read_committed a batch of an aborted transaction. Its offsets are archived.
    pub deliverable: bool,
}

impl FetchedBatch {
    /// A batch of records a consumer gets.
    pub fn records(first_offset: i64, last_offset: i64) -> Self {
        Self {
            first_offset,
            last_offset,
            deliverable: true,
        }
    }

    /// A batch a consumer never gets (control, or aborted).
    pub fn skipped(first_offset: i64, last_offset: i64) -> Self {
        Self {
            first_offset,
            last_offset,
            deliverable: false,
        }
    }
}

/// Records handed to a member: `first_offset..=last_offset`, delivered `delivery_count` times
/// (this delivery included). ShareFetch's `AcquiredRecords`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AcquiredRange {
    /// First acquired offset.
    pub first_offset: i64,
    /// Last acquired offset, inclusive.
    pub last_offset: i64,
    /// The delivery count of these records.
    pub delivery_count: i16,
}

/// What an acquire did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Acquired {
    /// The ranges handed to the member, in offset order.
    pub ranges: Vec<AcquiredRange>,
    /// Records acquired (the ranges' total length).
    pub count: u64,
    /// The durable state changed (records archived, the SPSO moved): write it.
    pub state_changed: bool,
}

/// How a fetch counts MaxRecords (KIP-1206, ShareFetch v2's ShareAcquireMode).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AcquireMode {
    /// Whole log batches: MaxRecords may be exceeded to keep batch boundaries (0, and v1).
    #[default]
    BatchOptimized,
    /// MaxRecords is a hard limit: a batch may be acquired in part (1).
    RecordLimit,
}

impl AcquireMode {
    /// The mode for a wire code; `None` for an unknown one.
    pub fn from_code(code: i8) -> Option<Self> {
        match code {
            0 => Some(Self::BatchOptimized),
            1 => Some(Self::RecordLimit),
            _ => None,
        }
    }
}

/// One acknowledgement batch of ShareFetch / ShareAcknowledge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AckBatch {
    /// First offset acknowledged.
    pub first_offset: i64,
    /// Last offset acknowledged, inclusive.
    pub last_offset: i64,
    /// One type for the whole range, or one per offset.
    pub types: Vec<AcknowledgeType>,
}

/// Why an acknowledgement was refused (nothing of it was applied).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AckError {
    /// INVALID_RECORD_STATE: an offset is not acquired by this member.
    #[error("invalid record state: {0}")]
    InvalidRecordState(String),
    /// INVALID_REQUEST: malformed batches, or offsets past the records ever acquired.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
}

/// An acknowledgement applied but not yet durable ([`SharePartition::acknowledge_pending`]):
/// [`SharePartition::commit`] it once its write succeeded, [`SharePartition::roll_back`] it
/// when the write failed.
#[must_use = "a pending acknowledgement must be committed or rolled back"]
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PendingAck {
    /// The offsets it settled, in order.
    ranges: Vec<(i64, i64)>,
    /// The records it archives (rejected, or released at the delivery count limit), for the
    /// dead-letter queue once it is committed.
    archived: Vec<Archived>,
    /// The durable state changed: write it.
    pub state_changed: bool,
}

/// Records archived as undeliverable (KIP-1191's dead-letter queue takes them): rejected by a
/// member, or delivered `delivery_count_limit` times (released, or their lock ran out). Records
/// archived otherwise (acknowledged gaps, aborted transactions, control batches) are not.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Archived {
    pub first_offset: i64,
    pub last_offset: i64,
    /// Their delivery count when archived.
    pub delivery_count: i16,
    /// Rejected by a member (else: the delivery count limit).
    pub rejected: bool,
}

/// What an acknowledgement did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AckOutcome {
    /// Records became Available again (released): waiting fetches may acquire them.
    pub released: bool,
    /// The durable state changed: write it.
    pub state_changed: bool,
}

/// What a lock timeout, a member's release or a log start move did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Released {
    /// Records became Available again.
    pub released: bool,
    /// The durable state changed: write it.
    pub state_changed: bool,
}

/// A run of in-flight offsets in one state.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Run {
    last: i64,
    state: DeliveryState,
    delivery_count: i16,
    /// The member holding the records (Acquired only).
    member: Option<String>,
    /// When the acquisition lock ends (Acquired only), millis.
    deadline_ms: i64,
    /// Set by an acknowledgement whose write is in flight: `state` is the new state, and
    /// `member` and `deadline_ms` still hold what a failed write restores.
    pending: bool,
}

impl Run {
    fn available(last: i64, delivery_count: i16) -> Run {
        Run {
            last,
            state: DeliveryState::Available,
            delivery_count,
            member: None,
            deadline_ms: 0,
            pending: false,
        }
    }

    fn archived(last: i64, delivery_count: i16) -> Run {
        Run {
            last,
            state: DeliveryState::Archived,
            delivery_count,
            member: None,
            deadline_ms: 0,
            pending: false,
        }
    }

    /// Same state, count, holder and deadline: two such neighbours are one run.
    fn alike(&self, other: &Run) -> bool {
        self.state == other.state
            && self.delivery_count == other.delivery_count
            && self.member == other.member
            && self.deadline_ms == other.deadline_ms
            && self.pending == other.pending
    }

    fn is_terminal(&self) -> bool {
        matches!(
            self.state,
            DeliveryState::Acknowledged | DeliveryState::Archived
        )
    }

    /// Terminal and durable: the SPSO may move past it.
    fn is_done(&self) -> bool {
        self.is_terminal() && !self.pending
    }

    /// Available and not waiting for a write: a fetch may acquire it.
    fn is_acquirable(&self) -> bool {
        self.state == DeliveryState::Available && !self.pending
    }
}

/// One share group's state of one topic partition on its leader.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SharePartition {
    state_epoch: i32,
    /// The share-partition start offset (SPSO): everything below is done.
    start_offset: i64,
    /// The next offset never read for this share-partition.
    end_offset: i64,
    /// In-flight runs by first offset; they cover `[start_offset, end_offset)` exactly.
    runs: BTreeMap<i64, Run>,
    delivery_count_limit: i16,
    max_record_locks: u64,
    record_lock_duration_ms: i64,
    /// Archived as undeliverable since the last [`Self::take_archived`].
    archived: Vec<Archived>,
}

impl SharePartition {
    /// A share-partition with nothing in flight, starting at `start_offset` (resolved, >= 0).
    pub fn new(state_epoch: i32, start_offset: i64, settings: &ShareGroupSettings) -> Self {
        let mut sp = Self {
            state_epoch,
            start_offset,
            end_offset: start_offset,
            runs: BTreeMap::new(),
            delivery_count_limit: 1,
            max_record_locks: 1,
            record_lock_duration_ms: 0,
            archived: Vec::new(),
        };
        sp.update_settings(settings);
        sp
    }

    /// The share-partition as persisted (`state.start_offset` resolved, >= 0). Batches below
    /// the start offset are dropped; offsets between batches are Available with count 0; a
    /// persisted Acquired run (never written by a leader) loads as Available.
    pub fn load(state: &PersistedState, settings: &ShareGroupSettings) -> Self {
        let mut sp = Self::new(state.state_epoch, state.start_offset.max(0), settings);
        let mut batches: Vec<StateBatch> = state.state_batches.clone();
        batches.sort_by_key(|b| b.first_offset);
        for b in batches {
            let first = b.first_offset.max(sp.end_offset);
            if b.last_offset < first {
                continue;
            }
            if first > sp.end_offset {
                sp.runs.insert(sp.end_offset, Run::available(first - 1, 0));
            }
            let state = match b.delivery_state {
                DeliveryState::Acquired => DeliveryState::Available,
                s => s,
            };
            sp.runs.insert(
                first,
                Run {
                    last: b.last_offset,
                    state,
                    delivery_count: b.delivery_count.max(0),
                    member: None,
                    deadline_ms: 0,
                    pending: false,
                },
            );
            sp.end_offset = b.last_offset + 1;
        }
        sp.coalesce_all();
        sp.advance_start();
        sp
    }

    /// Takes the group's current settings (they may change with its configs): later
    /// acquisitions use the new lock duration, limit and lock count.
    pub fn update_settings(&mut self, settings: &ShareGroupSettings) {
        self.delivery_count_limit = settings.delivery_count_limit.max(1);
        self.max_record_locks = u64::try_from(settings.partition_max_record_locks)
            .unwrap_or(u64::MAX)
            .max(1);
        self.record_lock_duration_ms =
            i64::try_from(settings.record_lock_duration_ms).unwrap_or(i64::MAX);
    }

    /// The state epoch this state was loaded in.
    pub fn state_epoch(&self) -> i32 {
        self.state_epoch
    }

    /// The share-partition start offset (SPSO).
    pub fn start_offset(&self) -> i64 {
        self.start_offset
    }

    /// The next offset never read (the share-partition end offset, exclusive).
    pub fn end_offset(&self) -> i64 {
        self.end_offset
    }

    /// Records in flight (between the SPSO and the end offset).
    pub fn in_flight(&self) -> u64 {
        u64::try_from(self.end_offset - self.start_offset).unwrap_or(0)
    }

    /// How many records past the end offset a fetch may acquire now
    /// (`group.share.partition.max.record.locks` minus the records in flight).
    pub fn new_record_room(&self) -> u64 {
        self.max_record_locks.saturating_sub(self.in_flight())
    }

    /// The acquisition lock duration, as ShareFetch's `acquisition_lock_timeout_ms` tells it.
    pub fn record_lock_duration_ms(&self) -> i64 {
        self.record_lock_duration_ms
    }

    /// Where the next read starts: the first Available offset in flight, else the end offset.
    pub fn next_fetch_offset(&self) -> i64 {
        self.runs
            .iter()
            .find(|(_, r)| r.is_acquirable())
            .map_or(self.end_offset, |(&first, _)| first)
    }

    /// Whether a fetch could acquire anything now (given records to read): some in-flight
    /// record is Available, or fewer than `partition_max_record_locks` are in flight.
    pub fn can_acquire(&self) -> bool {
        self.next_fetch_offset() < self.end_offset || self.in_flight() < self.max_record_locks
    }

    /// The state and delivery count of `offset`: `None` below the SPSO or at or past the end
    /// offset (in tests and for describing).
    pub fn record_state(&self, offset: i64) -> Option<(DeliveryState, i16)> {
        if offset < self.start_offset || offset >= self.end_offset {
            return None;
        }
        let (_, run) = self.runs.range(..=offset).next_back()?;
        Some((run.state, run.delivery_count))
    }

    /// The member holding `offset`, if Acquired.
    pub fn holder(&self, offset: i64) -> Option<&str> {
        if offset < self.start_offset || offset >= self.end_offset {
            return None;
        }
        let (_, run) = self.runs.range(..=offset).next_back()?;
        run.member
            .as_deref()
            .filter(|_| run.state == DeliveryState::Acquired)
    }

    /// Acquires records for `member` from the batches read at `fetch_offset` (normally
    /// [`Self::next_fetch_offset`]): first the Available in-flight records the batches cover,
    /// then new records past the end offset while fewer than `partition_max_record_locks` are
    /// in flight. Whole log batches are acquired, so `max_records` may be exceeded to keep
    /// batch boundaries; a record on its last delivery attempt is delivered alone (a poison
    /// record then fails only itself). Offsets the batches do not hold before the first one,
    /// between new batches, and skipped (control, aborted) batches are archived.
    pub fn acquire(
        &mut self,
        member: &str,
        fetch_offset: i64,
        batches: &[FetchedBatch],
        max_records: u64,
        now_ms: i64,
    ) -> Acquired {
        self.acquire_in(
            member,
            fetch_offset,
            batches,
            max_records,
            now_ms,
            AcquireMode::BatchOptimized,
        )
    }

    /// [`Self::acquire`] in `mode`: [`AcquireMode::RecordLimit`] never acquires more than
    /// `max_records`, ending within a log batch when it must (the rest of the batch stays
    /// for the next fetch).
    pub fn acquire_in(
        &mut self,
        member: &str,
        fetch_offset: i64,
        batches: &[FetchedBatch],
        max_records: u64,
        now_ms: i64,
        mode: AcquireMode,
    ) -> Acquired {
        let mut out = Acquired::default();
        let batch_end = |batches: &[FetchedBatch], from: i64, count: u64| match mode {
            AcquireMode::BatchOptimized => batch_end(batches, from, count),
            AcquireMode::RecordLimit => {
                from.saturating_add(i64::try_from(count).unwrap_or(i64::MAX).max(1) - 1)
            }
        };
        let (Some(first_batch), Some(last_batch)) = (batches.first(), batches.last()) else {
            return out;
        };
        if max_records == 0 || last_batch.last_offset < self.start_offset {
            return out;
        }
        let read_first = first_batch.first_offset;
        let read_last = last_batch.last_offset;
        let deadline = now_ms.saturating_add(self.record_lock_duration_ms);
        // Compacted away since it was read before: the Available offsets from the fetch
        // offset to the first batch are gone from the log.
        let stale_from = fetch_offset.max(self.start_offset);
        if stale_from < read_first {
            let upto = read_first.min(self.end_offset) - 1;
            out.state_changed |= self.archive_available(stale_from, upto);
        }
        // Skipped batches already in flight.
        for b in batches.iter().filter(|b| !b.deliverable) {
            let lo = b.first_offset.max(self.start_offset);
            let hi = b.last_offset.min(self.end_offset - 1);
            if lo <= hi {
                out.state_changed |= self.archive_available(lo, hi);
            }
        }
        // Available in-flight records within the read.
        let mut stopped = false;
        let in_flight_last = read_last.min(self.end_offset - 1);
        let lo = read_first.max(self.start_offset);
        if lo <= in_flight_last {
            let firsts: Vec<i64> = self
                .runs
                .range(..=in_flight_last)
                .filter(|(_, r)| r.last >= lo && r.is_acquirable())
                .map(|(&f, _)| f)
                .collect();
            for run_first in firsts {
                if out.count >= max_records {
                    stopped = true;
                    break;
                }
                let Some(run) = self.runs.get(&run_first) else {
                    continue;
                };
                if !run.is_acquirable() {
                    continue;
                }
                let from = run_first.max(lo);
                let mut to = run.last.min(in_flight_last);
                let count = run.delivery_count;
                if self.delivery_count_limit > 2 && count == self.delivery_count_limit - 1 {
                    // The last attempt: alone, in a fetch of its own.
                    if out.count > 0 {
                        stopped = true;
                        break;
                    }
                    to = from;
                    stopped = true;
                } else {
                    let remaining = max_records - out.count;
                    to = to.min(batch_end(batches, from, remaining));
                }
                self.set_range(
                    from,
                    to,
                    Run {
                        last: to,
                        state: DeliveryState::Acquired,
                        delivery_count: count.saturating_add(1),
                        member: Some(member.to_string()),
                        deadline_ms: deadline,
                        pending: false,
                    },
                );
                push_range(&mut out, from, to, count.saturating_add(1));
                if stopped {
                    break;
                }
            }
        }
        // New records past the end offset.
        if !stopped && out.count < max_records && read_last >= self.end_offset {
            let room = self.max_record_locks.saturating_sub(self.in_flight());
            let cap = (max_records - out.count).min(room);
            if cap > 0 {
                let from = self.end_offset.max(read_first);
                if from > self.end_offset {
                    // Before the first batch read: not in the log (compacted, or deleted).
                    self.append_run(Run::archived(from - 1, 0));
                }
                let to = batch_end(batches, from, cap).min(read_last);
                let mut next = from;
                for b in batches {
                    if b.last_offset < next {
                        continue;
                    }
                    if b.first_offset > to {
                        break;
                    }
                    if b.first_offset > next {
                        // Between two batches: no record there.
                        self.append_run(Run::archived(b.first_offset - 1, 0));
                        next = b.first_offset;
                    }
                    let hi = b.last_offset.min(to);
                    if b.deliverable {
                        self.append_run(Run {
                            last: hi,
                            state: DeliveryState::Acquired,
                            delivery_count: 1,
                            member: Some(member.to_string()),
                            deadline_ms: deadline,
                            pending: false,
                        });
                        push_range(&mut out, next, hi, 1);
                    } else {
                        self.append_run(Run::archived(hi, 0));
                        out.state_changed = true;
                    }
                    next = hi + 1;
                }
                if next <= to {
                    self.append_run(Run::archived(to, 0));
                }
            }
        }
        out.state_changed |= self.advance_start();
        out
    }

    /// Applies a member's acknowledgements at once ([`Self::acknowledge_pending`], then
    /// [`Self::commit`]): for a state whose write cannot fail.
    pub fn acknowledge(
        &mut self,
        member: &str,
        batches: &[AckBatch],
        now_ms: i64,
    ) -> Result<AckOutcome, AckError> {
        let pending = self.acknowledge_pending(member, batches, now_ms)?;
        let released = self.commit(&pending);
        Ok(AckOutcome {
            released,
            state_changed: pending.state_changed,
        })
    }

    /// Applies a member's acknowledgements, all or nothing: every offset at or past the SPSO
    /// must be Acquired by `member` (INVALID_RECORD_STATE), and the batches well formed and
    /// within the records ever acquired (INVALID_REQUEST). Offsets below the SPSO are done
    /// already and skipped. The records take their new state pending its write: until
    /// [`Self::commit`] released ones are not acquired again and the SPSO does not move past
    /// done ones (though [`Self::persisted`] writes it moved); [`Self::roll_back`] makes them
    /// Acquired by `member` again, as before.
    ///
    /// RENEW (KIP-1222) leaves its records Acquired by `member`, with their delivery count,
    /// and starts their acquisition lock again at `now_ms` (nothing to write for them; a
    /// roll back of the other offsets keeps the renewal).
    pub fn acknowledge_pending(
        &mut self,
        member: &str,
        batches: &[AckBatch],
        now_ms: i64,
    ) -> Result<PendingAck, AckError> {
        let mut previous_last: Option<i64> = None;
        for b in batches {
            if b.first_offset > b.last_offset || b.first_offset < 0 {
                return Err(AckError::InvalidRequest(format!(
                    "acknowledgement batch {}-{} is empty",
                    b.first_offset, b.last_offset
                )));
            }
            if previous_last.is_some_and(|p| b.first_offset <= p) {
                return Err(AckError::InvalidRequest(
                    "acknowledgement batches overlap or are out of order".into(),
                ));
            }
            previous_last = Some(b.last_offset);
            let len = b.last_offset - b.first_offset + 1;
            if b.types.is_empty()
                || (b.types.len() != 1 && i64::try_from(b.types.len()).ok() != Some(len))
            {
                return Err(AckError::InvalidRequest(format!(
                    "{} acknowledge types for offsets {}-{}",
                    b.types.len(),
                    b.first_offset,
                    b.last_offset
                )));
            }
            if b.last_offset < self.start_offset {
                continue;
            }
            if b.last_offset >= self.end_offset {
                return Err(AckError::InvalidRequest(format!(
                    "offset {} was never acquired",
                    b.last_offset
                )));
            }
            let lo = b.first_offset.max(self.start_offset);
            let floor = self.runs.range(..=lo).next_back().map_or(lo, |(&f, _)| f);
            for (_, run) in self.runs.range(floor..=b.last_offset) {
                if run.last < lo {
                    continue;
                }
                if run.state != DeliveryState::Acquired {
                    return Err(AckError::InvalidRecordState(format!(
                        "offsets {}-{} are not acquired",
                        lo.max(b.first_offset),
                        run.last.min(b.last_offset)
                    )));
                }
                if run.member.as_deref() != Some(member) {
                    return Err(AckError::InvalidRecordState(
                        "the member does not hold these records".into(),
                    ));
                }
            }
        }
        let mut pending = PendingAck::default();
        for b in batches {
            if b.last_offset < self.start_offset {
                continue;
            }
            let lo = b.first_offset.max(self.start_offset);
            pending.ranges.push((lo, b.last_offset));
            if b.types.len() == 1 {
                let archived = self.settle(lo, b.last_offset, b.types[0], now_ms);
                pending.archived.extend(archived);
            } else {
                // Per offset, applied in runs of one type.
                let mut i = lo;
                while i <= b.last_offset {
                    let ty = ack_type_at(b, i);
                    let mut j = i;
                    while j < b.last_offset && ack_type_at(b, j + 1) == ty {
                        j += 1;
                    }
                    let archived = self.settle(i, j, ty, now_ms);
                    pending.archived.extend(archived);
                    i = j + 1;
                }
            }
            pending.state_changed |= b.types.iter().any(|&t| t != AcknowledgeType::Renew);
        }
        Ok(pending)
    }

    /// The pending acknowledgement's write succeeded: its records hold their new state for
    /// good (the SPSO moves past done ones). Whether any became Available (waiting fetches
    /// may acquire them).
    pub fn commit(&mut self, ack: &PendingAck) -> bool {
        let released = self.resolve(ack, |run| {
            run.member = None;
            run.deadline_ms = 0;
            run.state == DeliveryState::Available
        });
        self.advance_start();
        self.archived.extend_from_slice(&ack.archived);
        released
    }

    /// The records archived as undeliverable since the last call (their acknowledgements
    /// committed), in order.
    pub fn take_archived(&mut self) -> Vec<Archived> {
        std::mem::take(&mut self.archived)
    }

    /// The pending acknowledgement's write failed: its records are Acquired by their member
    /// again, with their delivery count and lock deadline, as before it (Kafka's rollback of
    /// a failed state transition). Whether anything was restored (records that left flight
    /// meanwhile, e.g. below a moved log start, are not).
    pub fn roll_back(&mut self, ack: &PendingAck) -> bool {
        self.resolve(ack, |run| {
            run.state = DeliveryState::Acquired;
            true
        })
    }

    /// Ends the pending state of `ack`'s runs with `end` (which says whether it counts);
    /// whether any counted.
    fn resolve(&mut self, ack: &PendingAck, mut end: impl FnMut(&mut Run) -> bool) -> bool {
        let mut any = false;
        for &(first, last) in &ack.ranges {
            let first = first.max(self.start_offset);
            let last = last.min(self.end_offset - 1);
            if first > last {
                continue;
            }
            self.split_at(first);
            self.split_at(last + 1);
            let firsts: Vec<i64> = self.runs.range(first..=last).map(|(&f, _)| f).collect();
            for f in firsts {
                let Some(run) = self.runs.get_mut(&f) else {
                    continue;
                };
                if !run.pending {
                    continue;
                }
                run.pending = false;
                any |= end(run);
            }
            self.coalesce_range(first, last);
        }
        any
    }

    /// Ends the acquisition locks that are due: their records become Available, or Archived
    /// once delivered `delivery_count_limit` times.
    pub fn tick(&mut self, now_ms: i64) -> Released {
        let due: Vec<(i64, i64)> = self
            .runs
            .iter()
            .filter(|(_, r)| r.state == DeliveryState::Acquired && r.deadline_ms <= now_ms)
            .map(|(&f, r)| (f, r.last))
            .collect();
        self.give_back(&due)
    }

    /// A member's session closed (or its connection did): the records it holds become
    /// Available, or Archived once delivered `delivery_count_limit` times. Their delivery
    /// counts stay, as Kafka 4.4's `releaseAcquiredRecords` keeps them (`DeliveryCountOps.
    /// NO_OP`): a consumer that died on a record may have died of it.
    pub fn release_member(&mut self, member: &str) -> Released {
        let held: Vec<(i64, i64)> = self
            .runs
            .iter()
            .filter(|(_, r)| {
                r.state == DeliveryState::Acquired && r.member.as_deref() == Some(member)
            })
            .map(|(&f, r)| (f, r.last))
            .collect();
        self.give_back(&held)
    }

    /// The earliest acquisition lock deadline, if any record is Acquired.
    pub fn next_deadline(&self) -> Option<i64> {
        self.runs
            .values()
            .filter(|r| r.state == DeliveryState::Acquired)
            .map(|r| r.deadline_ms)
            .min()
    }

    /// The log start offset moved to `log_start_offset` (retention, DeleteRecords): a SPSO
    /// below it moves up, and what was in flight below it is gone.
    pub fn advance_log_start(&mut self, log_start_offset: i64) -> Released {
        if log_start_offset <= self.start_offset {
            return Released::default();
        }
        let kept = self.runs.split_off(&log_start_offset);
        let straddling = self
            .runs
            .iter()
            .next_back()
            .filter(|(_, r)| r.last >= log_start_offset)
            .map(|(_, r)| r.clone());
        self.runs = kept;
        if let Some(run) = straddling {
            // Runs are disjoint: none of the kept ones starts at the new start.
            self.runs.insert(log_start_offset, run);
        }
        self.start_offset = log_start_offset;
        if self.end_offset < log_start_offset {
            self.end_offset = log_start_offset;
            self.runs.clear();
        }
        self.advance_start();
        Released {
            released: false,
            state_changed: true,
        }
    }

    /// The durable state to write: the SPSO and every in-flight run that is not plain
    /// Available with count 0; Acquired records are written as Available with their count
    /// (a new leader makes them available again), as Kafka writes them. Pending
    /// acknowledgements are written with their new state (the write is what they wait
    /// for), and the SPSO past those that are done.
    pub fn persisted(&self) -> PersistedState {
        let mut state_batches: Vec<StateBatch> = Vec::new();
        let mut start_offset = self.start_offset;
        let mut leading = true;
        for (&first, run) in &self.runs {
            if leading && run.is_terminal() {
                start_offset = run.last + 1;
                continue;
            }
            leading = false;
            let delivery_state = match run.state {
                DeliveryState::Acquired => DeliveryState::Available,
                s => s,
            };
            if delivery_state == DeliveryState::Available && run.delivery_count == 0 {
                continue;
            }
            match state_batches.last_mut() {
                Some(prev)
                    if prev.last_offset + 1 == first
                        && prev.delivery_state == delivery_state
                        && prev.delivery_count == run.delivery_count =>
                {
                    prev.last_offset = run.last;
                }
                _ => state_batches.push(StateBatch {
                    first_offset: first,
                    last_offset: run.last,
                    delivery_state,
                    delivery_count: run.delivery_count,
                }),
            }
        }
        PersistedState {
            state_epoch: self.state_epoch,
            start_offset,
            state_batches,
        }
    }

    // ---- internals ----

    /// Acknowledgement of `first..=last` (all Acquired, validated) with `ty`, pending its
    /// write (holder and deadline kept for a rollback). RENEW: still Acquired, its lock
    /// starting again at `now_ms`, not pending. Returns the records it archives as
    /// undeliverable (rejected, or released at the delivery count limit).
    fn settle(&mut self, first: i64, last: i64, ty: AcknowledgeType, now_ms: i64) -> Vec<Archived> {
        self.split_at(first);
        self.split_at(last + 1);
        let firsts: Vec<i64> = self.runs.range(first..=last).map(|(&f, _)| f).collect();
        let renewed_until = now_ms.saturating_add(self.record_lock_duration_ms);
        let mut archived = Vec::new();
        for f in firsts {
            let Some(run) = self.runs.get_mut(&f) else {
                continue;
            };
            if ty == AcknowledgeType::Renew {
                run.deadline_ms = renewed_until;
                continue;
            }
            run.pending = true;
            run.state = match ty {
                AcknowledgeType::Accept => DeliveryState::Acknowledged,
                AcknowledgeType::Reject | AcknowledgeType::Gap => DeliveryState::Archived,
                AcknowledgeType::Release | AcknowledgeType::Renew => {
                    if run.delivery_count >= self.delivery_count_limit {
                        DeliveryState::Archived
                    } else {
                        DeliveryState::Available
                    }
                }
            };
            if run.state == DeliveryState::Archived && ty != AcknowledgeType::Gap {
                archived.push(Archived {
                    first_offset: f,
                    last_offset: run.last,
                    delivery_count: run.delivery_count,
                    rejected: ty == AcknowledgeType::Reject,
                });
            }
        }
        self.coalesce_range(first, last);
        archived
    }

    /// Makes the Acquired runs `ranges` Available again (Archived at the limit).
    fn give_back(&mut self, ranges: &[(i64, i64)]) -> Released {
        let mut out = Released::default();
        for &(first, last) in ranges {
            let limit = self.delivery_count_limit;
            let Some(run) = self.runs.get_mut(&first) else {
                continue;
            };
            run.member = None;
            run.deadline_ms = 0;
            if run.delivery_count >= limit {
                run.state = DeliveryState::Archived;
                self.archived.push(Archived {
                    first_offset: first,
                    last_offset: run.last,
                    delivery_count: run.delivery_count,
                    rejected: false,
                });
            } else {
                run.state = DeliveryState::Available;
                out.released = true;
            }
            out.state_changed = true;
            self.coalesce_range(first, last);
        }
        if !ranges.is_empty() {
            self.advance_start();
        }
        out
    }

    /// Archives the Available offsets in `first..=last` (within flight); whether any.
    fn archive_available(&mut self, first: i64, last: i64) -> bool {
        if first > last {
            return false;
        }
        let touched: Vec<i64> = self
            .runs
            .range(..=last)
            .filter(|(_, r)| r.last >= first && r.is_acquirable())
            .map(|(&f, _)| f)
            .collect();
        if touched.is_empty() {
            return false;
        }
        self.split_at(first);
        self.split_at(last + 1);
        let firsts: Vec<i64> = self.runs.range(first..=last).map(|(&f, _)| f).collect();
        for f in firsts {
            if let Some(run) = self.runs.get_mut(&f) {
                if run.is_acquirable() {
                    run.state = DeliveryState::Archived;
                }
            }
        }
        self.coalesce_range(first, last);
        true
    }

    /// Replaces `first..=last` (in flight) with `run` (whose `last` is `last`).
    fn set_range(&mut self, first: i64, last: i64, run: Run) {
        self.split_at(first);
        self.split_at(last + 1);
        let firsts: Vec<i64> = self.runs.range(first..=last).map(|(&f, _)| f).collect();
        for f in firsts {
            self.runs.remove(&f);
        }
        self.runs.insert(first, run);
        self.coalesce_range(first, last);
    }

    /// Appends `run` at the end offset (`run.last` >= end offset) and moves the end past it.
    fn append_run(&mut self, run: Run) {
        let first = self.end_offset;
        if run.last < first {
            return;
        }
        self.end_offset = run.last + 1;
        self.runs.insert(first, run);
        self.coalesce_range(first, first);
    }

    /// Makes a run start at `offset` (if it lies inside one).
    fn split_at(&mut self, offset: i64) {
        if offset <= self.start_offset || offset >= self.end_offset {
            return;
        }
        let Some((&first, run)) = self.runs.range_mut(..=offset).next_back() else {
            return;
        };
        if first == offset || run.last < offset {
            return;
        }
        let mut tail = run.clone();
        run.last = offset - 1;
        tail.last = tail.last.max(offset);
        self.runs.insert(offset, tail);
    }

    /// Merges alike neighbours around `first..=last`.
    fn coalesce_range(&mut self, first: i64, last: i64) {
        let from = self
            .runs
            .range(..first)
            .next_back()
            .map_or(first, |(&f, _)| f);
        let to = self.runs.range(last + 1..).next().map_or(last, |(&f, _)| f);
        let firsts: Vec<i64> = self.runs.range(from..=to).map(|(&f, _)| f).collect();
        self.merge(&firsts);
    }

    fn coalesce_all(&mut self) {
        let firsts: Vec<i64> = self.runs.keys().copied().collect();
        self.merge(&firsts);
    }

    /// Merges each of `firsts` (in order) into its predecessor in the list when they touch
    /// and are alike.
    fn merge(&mut self, firsts: &[i64]) {
        let mut current: Option<i64> = None;
        for &f in firsts {
            let Some(cur) = current else {
                current = Some(f);
                continue;
            };
            let (Some(a), Some(b)) = (self.runs.get(&cur), self.runs.get(&f)) else {
                current = Some(f);
                continue;
            };
            if a.last + 1 == f && a.alike(b) {
                let last = b.last;
                self.runs.remove(&f);
                if let Some(a) = self.runs.get_mut(&cur) {
                    a.last = last;
                }
            } else {
                current = Some(f);
            }
        }
    }

    /// Moves the SPSO past the leading Acknowledged / Archived runs; whether it moved.
    fn advance_start(&mut self) -> bool {
        let before = self.start_offset;
        while let Some(entry) = self.runs.first_entry() {
            if !entry.get().is_done() {
                break;
            }
            let run = entry.remove();
            self.start_offset = run.last + 1;
        }
        if self.runs.is_empty() {
            self.start_offset = self.end_offset;
        }
        self.start_offset != before
    }
}

/// The acknowledge type of `offset` in a per-offset batch.
fn ack_type_at(b: &AckBatch, offset: i64) -> AcknowledgeType {
    let i = usize::try_from(offset - b.first_offset).unwrap_or(0);
    b.types.get(i).copied().unwrap_or(AcknowledgeType::Accept)
}

/// The last offset to acquire from `from` for `count` records: `from + count - 1`, moved to
/// the end of the batch holding it (whole batches), at least `from`.
fn batch_end(batches: &[FetchedBatch], from: i64, count: u64) -> i64 {
    let want = from.saturating_add(i64::try_from(count).unwrap_or(i64::MAX).max(1) - 1);
    batches
        .iter()
        .find(|b| b.first_offset <= want && want <= b.last_offset)
        .map_or(want, |b| b.last_offset)
}

/// Adds `first..=last` to the acquired ranges, merged with the previous one when they touch
/// with the same count.
fn push_range(out: &mut Acquired, first: i64, last: i64, delivery_count: i16) {
    out.count += u64::try_from(last - first + 1).unwrap_or(0);
    if let Some(prev) = out.ranges.last_mut() {
        if prev.last_offset + 1 == first && prev.delivery_count == delivery_count {
            prev.last_offset = last;
            return;
        }
    }
    out.ranges.push(AcquiredRange {
        first_offset: first,
        last_offset: last,
        delivery_count,
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(limit: i16, locks: usize, lock_ms: u64) -> ShareGroupSettings {
        ShareGroupSettings {
            delivery_count_limit: limit,
            partition_max_record_locks: locks,
            record_lock_duration_ms: lock_ms,
            ..ShareGroupSettings::default()
        }
    }

    fn sp() -> SharePartition {
        SharePartition::new(0, 0, &settings(5, 100, 1_000))
    }

    fn range(first: i64, last: i64, count: i16) -> AcquiredRange {
        AcquiredRange {
            first_offset: first,
            last_offset: last,
            delivery_count: count,
        }
    }

    fn ack(first: i64, last: i64, ty: AcknowledgeType) -> AckBatch {
        AckBatch {
            first_offset: first,
            last_offset: last,
            types: vec![ty],
        }
    }

    /// Batches of `size` records from `first` to `last`.
    fn batches(first: i64, last: i64, size: i64) -> Vec<FetchedBatch> {
        let mut out = Vec::new();
        let mut f = first;
        while f <= last {
            out.push(FetchedBatch::records(f, (f + size - 1).min(last)));
            f += size;
        }
        out
    }

    /// Reads as the runtime does: from the next fetch offset, the batches at or after it.
    fn fetch(
        sp: &mut SharePartition,
        member: &str,
        log: &[FetchedBatch],
        max: u64,
        now: i64,
    ) -> Acquired {
        let at = sp.next_fetch_offset();
        let read: Vec<FetchedBatch> = log
            .iter()
            .copied()
            .filter(|b| b.last_offset >= at)
            .collect();
        sp.acquire(member, at, &read, max, now)
    }

    /// The records archived as undeliverable, for the dead-letter queue: rejected ones once
    /// their acknowledgement is committed (not when it is rolled back), released ones and
    /// ones whose lock ran out at the delivery count limit, a member's held ones at the limit
    /// when its session ends; never accepted ones, acknowledged gaps or records still
    /// deliverable.
    #[test]
    fn undeliverable_records_are_reported_once_archived() {
        let mut sp = SharePartition::new(0, 0, &settings(2, 100, 1_000));
        // One record per batch, so that a fetch takes as many records as it asks for.
        let log = batches(0, 9, 1);
        fetch(&mut sp, "m1", &log, 10, 0);
        let archived = |first, last, delivery_count, rejected| Archived {
            first_offset: first,
            last_offset: last,
            delivery_count,
            rejected,
        };
        // A reject whose write fails is not reported; committed, it is.
        let pending = sp
            .acknowledge_pending("m1", &[ack(0, 1, AcknowledgeType::Reject)], 10)
            .expect("valid");
        assert!(sp.roll_back(&pending));
        assert_eq!(sp.take_archived(), vec![]);
        let mixed = AckBatch {
            first_offset: 0,
            last_offset: 4,
            types: vec![
                AcknowledgeType::Reject,
                AcknowledgeType::Accept,
                AcknowledgeType::Gap,
                AcknowledgeType::Reject,
                AcknowledgeType::Release,
            ],
        };
        sp.acknowledge("m1", &[mixed], 20).expect("valid");
        assert_eq!(
            sp.take_archived(),
            vec![archived(0, 0, 1, true), archived(3, 3, 1, true)]
        );
        assert_eq!(sp.take_archived(), vec![], "reported once");
        // 4 released with one delivery left, 5-9 time out: all Available, none reported.
        sp.tick(1_000);
        assert_eq!(sp.take_archived(), vec![]);
        // The second deliveries: 4-6 released at the limit, 7-8 time out at it, 9 held by
        // a member whose session ends.
        fetch(&mut sp, "m1", &log, 5, 1_100);
        fetch(&mut sp, "m2", &log, 1, 1_100);
        assert_eq!(sp.record_state(9), Some((DeliveryState::Acquired, 2)));
        sp.acknowledge("m1", &[ack(4, 6, AcknowledgeType::Release)], 1_200)
            .expect("valid");
        assert_eq!(sp.take_archived(), vec![archived(4, 6, 2, false)]);
        sp.release_member("m2");
        assert_eq!(sp.take_archived(), vec![archived(9, 9, 2, false)]);
        sp.tick(2_100);
        assert_eq!(sp.take_archived(), vec![archived(7, 8, 2, false)]);
        assert_eq!(sp.start_offset(), 10);
    }

    #[test]
    fn renew_keeps_the_records_acquired_and_starts_their_lock_again() {
        let mut sp = sp(); // lock 1000 ms
        let log = batches(0, 9, 10);
        fetch(&mut sp, "m1", &log, 10, 0);
        // At 900 ms the member renews 0-4; 5-9 keep their lock ending at 1000.
        let out = sp
            .acknowledge("m1", &[ack(0, 4, AcknowledgeType::Renew)], 900)
            .expect("renewed");
        assert!(!out.state_changed, "a renewal has nothing to write");
        assert!(!out.released);
        assert_eq!(sp.next_deadline(), Some(1_000));
        let gone = sp.tick(1_000);
        assert!(gone.released);
        assert_eq!(sp.record_state(3), Some((DeliveryState::Acquired, 1)));
        assert_eq!(sp.holder(3), Some("m1"));
        assert_eq!(sp.record_state(7), Some((DeliveryState::Available, 1)));
        assert_eq!(sp.next_deadline(), Some(1_900));
        // Renewed again before 1900: still held at 2500, the delivery count unchanged.
        sp.acknowledge("m1", &[ack(0, 4, AcknowledgeType::Renew)], 1_800)
            .expect("renewed");
        sp.tick(2_500);
        assert_eq!(sp.record_state(0), Some((DeliveryState::Acquired, 1)));
        // And then accepted: done, the SPSO moves.
        let out = sp
            .acknowledge("m1", &[ack(0, 4, AcknowledgeType::Accept)], 2_600)
            .expect("accepted");
        assert!(out.state_changed);
        assert_eq!(sp.start_offset(), 5);
    }

    #[test]
    fn renew_by_a_non_owner_or_of_an_expired_lock_is_refused() {
        let mut sp = sp();
        let log = batches(0, 9, 10);
        fetch(&mut sp, "m1", &log, 10, 0);
        let err = sp
            .acknowledge("m2", &[ack(0, 4, AcknowledgeType::Renew)], 100)
            .expect_err("not the holder");
        assert!(matches!(err, AckError::InvalidRecordState(_)));
        assert_eq!(sp.next_deadline(), Some(1_000), "nothing renewed");
        // The lock ran out: the records are Available, a renewal is too late.
        sp.tick(1_000);
        let err = sp
            .acknowledge("m1", &[ack(0, 4, AcknowledgeType::Renew)], 1_100)
            .expect_err("expired");
        assert!(matches!(err, AckError::InvalidRecordState(_)));
    }

    #[test]
    fn renew_mixed_with_other_types_per_offset() {
        let mut sp = sp();
        let log = batches(0, 3, 4);
        fetch(&mut sp, "m1", &log, 10, 0);
        let pending = sp
            .acknowledge_pending(
                "m1",
                &[AckBatch {
                    first_offset: 0,
                    last_offset: 3,
                    types: vec![
                        AcknowledgeType::Accept,
                        AcknowledgeType::Renew,
                        AcknowledgeType::Release,
                        AcknowledgeType::Renew,
                    ],
                }],
                500,
            )
            .expect("applied");
        assert!(pending.state_changed);
        // The write fails: the accepted and released offsets are Acquired again; the
        // renewals keep their new lock.
        assert!(sp.roll_back(&pending));
        assert_eq!(sp.record_state(0), Some((DeliveryState::Acquired, 1)));
        assert_eq!(sp.record_state(2), Some((DeliveryState::Acquired, 1)));
        sp.tick(1_000);
        assert_eq!(sp.record_state(0), Some((DeliveryState::Available, 1)));
        assert_eq!(sp.record_state(1), Some((DeliveryState::Acquired, 1)));
        assert_eq!(sp.record_state(3), Some((DeliveryState::Acquired, 1)));
        assert_eq!(sp.next_deadline(), Some(1_500));
    }

    #[test]
    fn record_limit_never_acquires_more_than_max_records() {
        let mut sp = sp();
        let log = batches(0, 29, 10);
        let at = sp.next_fetch_offset();
        let got = sp.acquire_in("m1", at, &log, 15, 0, AcquireMode::RecordLimit);
        // Batch-optimized would take 0-19; record_limit stops inside the second batch.
        assert_eq!(got.ranges, vec![range(0, 14, 1)]);
        assert_eq!(got.count, 15);
        assert_eq!(sp.next_fetch_offset(), 15);
        // The rest of that batch is read again and acquired from offset 15.
        let at = sp.next_fetch_offset();
        let read: Vec<FetchedBatch> = log
            .iter()
            .copied()
            .filter(|b| b.last_offset >= at)
            .collect();
        let got = sp.acquire_in("m2", at, &read, 3, 0, AcquireMode::RecordLimit);
        assert_eq!(got.ranges, vec![range(15, 17, 1)]);
        // Released records in flight are split the same way.
        sp.acknowledge("m1", &[ack(0, 14, AcknowledgeType::Release)], 10)
            .expect("released");
        let got = sp.acquire_in("m3", 0, &log, 4, 20, AcquireMode::RecordLimit);
        assert_eq!(got.ranges, vec![range(0, 3, 2)]);
        assert_eq!(got.count, 4);
        let got = sp.acquire_in("m3", 4, &log, 100, 20, AcquireMode::BatchOptimized);
        assert_eq!(got.ranges.first().map(|r| r.first_offset), Some(4));
    }

    #[test]
    fn acquire_modes_from_wire_codes() {
        assert_eq!(AcquireMode::from_code(0), Some(AcquireMode::BatchOptimized));
        assert_eq!(AcquireMode::from_code(1), Some(AcquireMode::RecordLimit));
        assert_eq!(AcquireMode::from_code(2), None);
        assert_eq!(AcquireMode::from_code(-1), None);
        assert_eq!(AcknowledgeType::from_code(4), Some(AcknowledgeType::Renew));
        assert_eq!(AcknowledgeType::from_code(5), None);
    }

    #[test]
    fn new_records_are_acquired_in_whole_batches() {
        let mut sp = sp();
        let log = batches(0, 29, 10);
        let got = fetch(&mut sp, "m1", &log, 15, 0);
        // 15 records asked: the batch holding the 15th (10-19) is taken whole.
        assert_eq!(got.ranges, vec![range(0, 19, 1)]);
        assert_eq!(got.count, 20);
        assert!(!got.state_changed, "acquiring alone writes nothing");
        assert_eq!(sp.end_offset(), 20);
        assert_eq!(sp.next_fetch_offset(), 20);
        assert_eq!(sp.record_state(5), Some((DeliveryState::Acquired, 1)));
        assert_eq!(sp.holder(5), Some("m1"));
        assert_eq!(sp.next_deadline(), Some(1_000));
        // The rest goes to the next fetch.
        let got = fetch(&mut sp, "m2", &log, 500, 10);
        assert_eq!(got.ranges, vec![range(20, 29, 1)]);
        assert_eq!(sp.holder(25), Some("m2"));
        // Nothing more to read: nothing acquired.
        let got = fetch(&mut sp, "m2", &log, 500, 10);
        assert!(got.ranges.is_empty());
    }

    #[test]
    fn accept_moves_the_start_offset() {
        let mut sp = sp();
        let log = batches(0, 9, 5);
        fetch(&mut sp, "m1", &log, 100, 0);
        let out = sp
            .acknowledge("m1", &[ack(5, 9, AcknowledgeType::Accept)], 0)
            .expect("ack");
        assert!(out.state_changed);
        assert!(!out.released);
        assert_eq!(sp.start_offset(), 0, "0-4 still acquired");
        assert_eq!(sp.record_state(7), Some((DeliveryState::Acknowledged, 1)));
        sp.acknowledge("m1", &[ack(0, 4, AcknowledgeType::Accept)], 0)
            .expect("ack");
        assert_eq!(sp.start_offset(), 10);
        assert_eq!(sp.in_flight(), 0);
        assert_eq!(sp.next_deadline(), None);
        assert_eq!(
            sp.persisted(),
            PersistedState {
                state_epoch: 0,
                start_offset: 10,
                state_batches: vec![]
            }
        );
    }

    #[test]
    fn released_records_are_redelivered_first_with_a_higher_count() {
        let mut sp = sp();
        let log = batches(0, 19, 10);
        fetch(&mut sp, "m1", &log, 10, 0);
        let out = sp
            .acknowledge("m1", &[ack(3, 5, AcknowledgeType::Release)], 0)
            .expect("ack");
        assert!(out.released);
        assert_eq!(sp.next_fetch_offset(), 3);
        assert_eq!(sp.record_state(4), Some((DeliveryState::Available, 1)));
        // The read starts at 3 (batch 0-9 returned whole), then the new batch 10-19.
        let got = fetch(&mut sp, "m2", &log, 100, 5);
        assert_eq!(got.ranges, vec![range(3, 5, 2), range(10, 19, 1)]);
        assert_eq!(sp.holder(4), Some("m2"));
        assert_eq!(sp.holder(2), Some("m1"));
    }

    #[test]
    fn reject_and_gap_archive_and_release_at_the_limit_archives() {
        let mut sp = SharePartition::new(0, 0, &settings(2, 100, 1_000));
        let log = batches(0, 9, 10);
        fetch(&mut sp, "m", &log, 100, 0);
        sp.acknowledge(
            "m",
            &[AckBatch {
                first_offset: 0,
                last_offset: 3,
                types: vec![
                    AcknowledgeType::Reject,
                    AcknowledgeType::Gap,
                    AcknowledgeType::Accept,
                    AcknowledgeType::Release,
                ],
            }],
            0,
        )
        .expect("ack");
        assert_eq!(sp.start_offset(), 3, "0 rejected, 1 a gap, 2 accepted");
        assert_eq!(sp.record_state(3), Some((DeliveryState::Available, 1)));
        // Second delivery of 3 (the limit is 2): released again, it is archived.
        let got = fetch(&mut sp, "m", &log, 100, 0);
        assert_eq!(got.ranges, vec![range(3, 3, 2)]);
        let out = sp
            .acknowledge("m", &[ack(3, 3, AcknowledgeType::Release)], 0)
            .expect("ack");
        assert!(!out.released);
        assert_eq!(sp.start_offset(), 4);
        let p = sp.persisted();
        assert_eq!(p.start_offset, 4);
        assert_eq!(
            p.state_batches,
            vec![StateBatch {
                first_offset: 4,
                last_offset: 9,
                delivery_state: DeliveryState::Available,
                delivery_count: 1
            }],
            "acquired records persist as available with their count"
        );
    }

    #[test]
    fn lock_timeout_makes_records_available_then_archives_at_the_limit() {
        let mut sp = SharePartition::new(0, 0, &settings(3, 100, 1_000));
        let log = batches(0, 4, 5);
        fetch(&mut sp, "m", &log, 100, 0);
        assert_eq!(sp.tick(999), Released::default(), "not due yet");
        let r = sp.tick(1_000);
        assert!(r.released && r.state_changed);
        assert_eq!(sp.record_state(0), Some((DeliveryState::Available, 1)));
        assert_eq!(sp.next_deadline(), None);
        let got = fetch(&mut sp, "m", &log, 100, 2_000);
        assert_eq!(got.ranges, vec![range(0, 4, 2)]);
        assert_eq!(sp.next_deadline(), Some(3_000));
        sp.tick(3_000);
        // Third attempt of 3: the last one, delivered alone.
        let got = fetch(&mut sp, "m", &log, 100, 4_000);
        assert_eq!(got.ranges, vec![range(0, 0, 3)]);
        let got = fetch(&mut sp, "m", &log, 100, 4_000);
        assert_eq!(got.ranges, vec![range(1, 1, 3)]);
        let r = sp.tick(5_000);
        assert!(!r.released, "both at the limit: archived");
        assert_eq!(sp.start_offset(), 2);
        assert_eq!(sp.record_state(2), Some((DeliveryState::Available, 2)));
    }

    #[test]
    fn acknowledging_records_of_another_member_is_refused_whole() {
        let mut sp = sp();
        let log = batches(0, 9, 5);
        fetch(&mut sp, "m1", &log, 5, 0);
        fetch(&mut sp, "m2", &log, 5, 0);
        let before = sp.clone();
        let err = sp
            .acknowledge(
                "m1",
                &[
                    ack(0, 4, AcknowledgeType::Accept),
                    ack(5, 5, AcknowledgeType::Accept),
                ],
                0,
            )
            .expect_err("5 is m2's");
        assert!(matches!(err, AckError::InvalidRecordState(_)));
        assert_eq!(sp, before, "nothing applied");
        // Acknowledged twice: not acquired any more.
        sp.acknowledge("m1", &[ack(0, 4, AcknowledgeType::Accept)], 0)
            .expect("ack");
        sp.acknowledge("m1", &[ack(0, 4, AcknowledgeType::Accept)], 0)
            .expect("below the SPSO: done already, skipped");
        sp.acknowledge("m2", &[ack(5, 6, AcknowledgeType::Release)], 0)
            .expect("ack");
        let err = sp
            .acknowledge("m2", &[ack(5, 5, AcknowledgeType::Accept)], 0)
            .expect_err("released");
        assert!(matches!(err, AckError::InvalidRecordState(_)));
    }

    #[test]
    fn a_pending_acknowledgement_is_written_but_waits_for_its_write() {
        let mut sp = SharePartition::new(0, 0, &settings(5, 100, 1_000));
        let log = batches(0, 9, 5);
        fetch(&mut sp, "m", &log, 100, 0);
        let pending = sp
            .acknowledge_pending(
                "m",
                &[
                    ack(0, 4, AcknowledgeType::Accept),
                    ack(5, 9, AcknowledgeType::Release),
                ],
                0,
            )
            .expect("ack");
        assert!(pending.state_changed);
        // The write carries the new state, the SPSO moved past the accepted records...
        let p = sp.persisted();
        assert_eq!(p.start_offset, 5);
        assert_eq!(
            p.state_batches,
            vec![StateBatch {
                first_offset: 5,
                last_offset: 9,
                delivery_state: DeliveryState::Available,
                delivery_count: 1
            }]
        );
        // ...but until it is durable nothing moves in memory, and released records are not
        // acquired again, nor acknowledged twice.
        assert_eq!(sp.start_offset(), 0);
        assert!(fetch(&mut sp, "n", &log, 100, 0).ranges.is_empty());
        assert!(matches!(
            sp.acknowledge("m", &[ack(5, 9, AcknowledgeType::Accept)], 0),
            Err(AckError::InvalidRecordState(_))
        ));
        assert_eq!(sp.holder(5), None);
        assert!(sp.next_deadline().is_none(), "no lock ends meanwhile");
        assert!(sp.commit(&pending), "5-9 released");
        assert_eq!(sp.start_offset(), 5);
        assert_eq!(sp.persisted(), p);
        let got = fetch(&mut sp, "n", &log, 100, 0);
        assert_eq!(got.ranges, vec![range(5, 9, 2)]);
    }

    #[test]
    fn a_failed_write_rolls_the_acknowledgement_back_to_acquired() {
        let mut sp = SharePartition::new(0, 0, &settings(5, 100, 1_000));
        let log = batches(0, 9, 5);
        fetch(&mut sp, "m", &log, 100, 0);
        let before = sp.clone();
        let pending = sp
            .acknowledge_pending(
                "m",
                &[
                    ack(0, 1, AcknowledgeType::Accept),
                    AckBatch {
                        first_offset: 2,
                        last_offset: 4,
                        types: vec![
                            AcknowledgeType::Release,
                            AcknowledgeType::Reject,
                            AcknowledgeType::Accept,
                        ],
                    },
                ],
                0,
            )
            .expect("ack");
        // Another member fetches meanwhile: nothing of the pending records.
        assert!(fetch(&mut sp, "n", &log, 100, 10).ranges.is_empty());
        assert!(sp.roll_back(&pending));
        assert_eq!(
            sp, before,
            "Acquired by m again, count and lock deadline as before"
        );
        assert_eq!(sp.holder(3), Some("m"));
        assert_eq!(sp.next_deadline(), Some(1_000));
        // Acknowledged again, for good this time.
        sp.acknowledge("m", &[ack(0, 9, AcknowledgeType::Accept)], 0)
            .expect("ack");
        assert_eq!(sp.start_offset(), 10);
        // Nothing left to resolve.
        assert!(!sp.roll_back(&pending));
        assert!(!sp.commit(&pending));
    }

    #[test]
    fn a_rollback_after_the_log_start_moved_restores_only_what_is_left() {
        let mut sp = SharePartition::new(0, 0, &settings(5, 100, 1_000));
        fetch(&mut sp, "m", &batches(0, 9, 10), 100, 0);
        let pending = sp
            .acknowledge_pending("m", &[ack(0, 9, AcknowledgeType::Accept)], 0)
            .expect("ack");
        sp.advance_log_start(6);
        assert!(sp.roll_back(&pending));
        assert_eq!(sp.start_offset(), 6);
        assert_eq!(sp.record_state(6), Some((DeliveryState::Acquired, 1)));
        assert_eq!(sp.holder(9), Some("m"));
    }

    #[test]
    fn malformed_acknowledgements_are_invalid_requests() {
        let mut sp = sp();
        fetch(&mut sp, "m", &batches(0, 9, 10), 100, 0);
        let cases = [
            vec![ack(5, 4, AcknowledgeType::Accept)],
            vec![ack(0, 20, AcknowledgeType::Accept)],
            vec![
                ack(4, 5, AcknowledgeType::Accept),
                ack(5, 6, AcknowledgeType::Accept),
            ],
            vec![AckBatch {
                first_offset: 0,
                last_offset: 2,
                types: vec![AcknowledgeType::Accept, AcknowledgeType::Accept],
            }],
            vec![AckBatch {
                first_offset: 0,
                last_offset: 2,
                types: vec![],
            }],
        ];
        for batches in cases {
            let err = sp.acknowledge("m", &batches, 0).expect_err("invalid");
            assert!(matches!(err, AckError::InvalidRequest(_)), "{batches:?}");
        }
        assert_eq!(sp.record_state(0), Some((DeliveryState::Acquired, 1)));
    }

    #[test]
    fn at_most_max_record_locks_are_in_flight() {
        let mut sp = SharePartition::new(0, 0, &settings(5, 10, 1_000));
        let log = batches(0, 49, 4);
        let got = fetch(&mut sp, "m", &log, 500, 0);
        // 10 locks: the batch holding the 10th record (8-11) is taken whole.
        assert_eq!(got.ranges, vec![range(0, 11, 1)]);
        assert!(!sp.can_acquire());
        assert!(fetch(&mut sp, "m", &log, 500, 0).ranges.is_empty());
        // A release below the end offset can be acquired again at the limit.
        sp.acknowledge("m", &[ack(2, 3, AcknowledgeType::Release)], 0)
            .expect("ack");
        assert!(sp.can_acquire());
        let got = fetch(&mut sp, "n", &log, 500, 0);
        assert_eq!(got.ranges, vec![range(2, 3, 2)]);
        // Accepting the head frees room for new records.
        sp.acknowledge("m", &[ack(0, 1, AcknowledgeType::Accept)], 0)
            .expect("ack");
        sp.acknowledge("m", &[ack(4, 7, AcknowledgeType::Accept)], 0)
            .expect("ack");
        assert_eq!(sp.start_offset(), 2);
        assert!(
            fetch(&mut sp, "m", &log, 500, 0).ranges.is_empty(),
            "2-11 in flight"
        );
        sp.acknowledge("n", &[ack(2, 3, AcknowledgeType::Accept)], 0)
            .expect("ack");
        assert_eq!(sp.start_offset(), 8);
        let got = fetch(&mut sp, "m", &log, 500, 0);
        assert_eq!(
            got.ranges,
            vec![range(12, 19, 1)],
            "8-11 in flight, room for 6: 12-19"
        );
    }

    #[test]
    fn control_batches_and_gaps_are_archived_never_acquired() {
        let mut sp = sp();
        // 0-2 a transaction's records, 3 its marker, 5-6 after a compacted offset 4.
        let log = vec![
            FetchedBatch::records(0, 2),
            FetchedBatch::skipped(3, 3),
            FetchedBatch::records(5, 6),
            FetchedBatch::skipped(7, 7),
        ];
        let got = fetch(&mut sp, "m", &log, 100, 0);
        assert_eq!(got.ranges, vec![range(0, 2, 1), range(5, 6, 1)]);
        assert!(got.state_changed);
        assert_eq!(sp.end_offset(), 8);
        assert_eq!(sp.record_state(3), Some((DeliveryState::Archived, 0)));
        assert_eq!(sp.record_state(4), Some((DeliveryState::Archived, 0)));
        sp.acknowledge("m", &[ack(0, 2, AcknowledgeType::Accept)], 0)
            .expect("ack");
        assert_eq!(sp.start_offset(), 5, "past the marker and the gap");
        sp.acknowledge("m", &[ack(5, 6, AcknowledgeType::Accept)], 0)
            .expect("ack");
        assert_eq!(sp.start_offset(), 8, "past the trailing marker");
    }

    #[test]
    fn a_read_starting_past_the_fetch_offset_archives_what_compaction_removed() {
        let mut sp = sp();
        fetch(&mut sp, "m", &batches(0, 9, 5), 100, 0);
        sp.acknowledge("m", &[ack(0, 9, AcknowledgeType::Release)], 0)
            .expect("ack");
        // 0-4 compacted away meanwhile: the read at 0 starts at 5.
        let got = sp.acquire("m", 0, &batches(5, 9, 5), 100, 0);
        assert_eq!(got.ranges, vec![range(5, 9, 2)]);
        assert!(got.state_changed);
        assert_eq!(sp.start_offset(), 5);
    }

    #[test]
    fn a_first_read_past_the_start_archives_the_offsets_before_it() {
        let mut sp = SharePartition::new(0, 3, &settings(5, 100, 1_000));
        let got = sp.acquire("m", 3, &batches(10, 14, 5), 100, 0);
        assert_eq!(got.ranges, vec![range(10, 14, 1)]);
        assert_eq!(sp.start_offset(), 10);
    }

    #[test]
    fn closing_a_session_releases_its_records_keeping_their_delivery_count() {
        let mut sp = sp();
        let log = batches(0, 9, 5);
        fetch(&mut sp, "m1", &log, 5, 0);
        fetch(&mut sp, "m2", &log, 5, 0);
        let r = sp.release_member("m1");
        assert!(r.released);
        assert_eq!(sp.record_state(0), Some((DeliveryState::Available, 1)));
        assert_eq!(sp.holder(5), Some("m2"));
        assert_eq!(sp.release_member("nobody"), Released::default());
        let got = fetch(&mut sp, "m2", &log, 100, 0);
        assert_eq!(got.ranges, vec![range(0, 4, 2)]);
    }

    #[test]
    fn records_released_by_a_closed_session_at_the_delivery_limit_are_archived() {
        let mut sp = SharePartition::new(0, 0, &settings(2, 100, 1_000));
        let log = batches(0, 4, 5);
        fetch(&mut sp, "m1", &log, 100, 0);
        assert!(sp.release_member("m1").released);
        assert_eq!(
            fetch(&mut sp, "m2", &log, 100, 0).ranges,
            vec![range(0, 4, 2)]
        );
        let r = sp.release_member("m2");
        assert!(!r.released && r.state_changed, "{r:?}");
        assert_eq!(sp.record_state(0), None, "archived, past the start");
        assert_eq!(sp.start_offset(), 5);
    }

    #[test]
    fn the_start_offset_follows_the_log_start() {
        let mut sp = sp();
        fetch(&mut sp, "m", &batches(0, 9, 10), 100, 0);
        sp.acknowledge("m", &[ack(0, 9, AcknowledgeType::Release)], 0)
            .expect("ack");
        let r = sp.advance_log_start(4);
        assert!(r.state_changed);
        assert_eq!(sp.start_offset(), 4);
        assert_eq!(sp.record_state(4), Some((DeliveryState::Available, 1)));
        assert_eq!(sp.record_state(3), None);
        assert_eq!(sp.advance_log_start(2), Released::default());
        sp.advance_log_start(50);
        assert_eq!((sp.start_offset(), sp.end_offset()), (50, 50));
        let got = sp.acquire("m", 50, &batches(50, 52, 3), 100, 0);
        assert_eq!(got.ranges, vec![range(50, 52, 1)]);
    }

    #[test]
    fn persisted_state_loads_back_the_same() {
        let mut sp = SharePartition::new(3, 0, &settings(5, 100, 1_000));
        let log = batches(0, 29, 10);
        fetch(&mut sp, "m", &log, 100, 0);
        sp.acknowledge(
            "m",
            &[
                ack(10, 14, AcknowledgeType::Accept),
                ack(15, 16, AcknowledgeType::Reject),
                ack(20, 29, AcknowledgeType::Release),
            ],
            0,
        )
        .expect("ack");
        let p = sp.persisted();
        assert_eq!(p.state_epoch, 3);
        assert_eq!(p.start_offset, 0);
        assert_eq!(
            p.state_batches,
            vec![
                StateBatch {
                    first_offset: 0,
                    last_offset: 9,
                    delivery_state: DeliveryState::Available,
                    delivery_count: 1
                },
                StateBatch {
                    first_offset: 10,
                    last_offset: 14,
                    delivery_state: DeliveryState::Acknowledged,
                    delivery_count: 1
                },
                StateBatch {
                    first_offset: 15,
                    last_offset: 16,
                    delivery_state: DeliveryState::Archived,
                    delivery_count: 1
                },
                StateBatch {
                    first_offset: 17,
                    last_offset: 29,
                    delivery_state: DeliveryState::Available,
                    delivery_count: 1
                },
            ]
        );
        let mut loaded = SharePartition::load(&p, &settings(5, 100, 1_000));
        assert_eq!(loaded.persisted(), p);
        assert_eq!(loaded.end_offset(), 30);
        assert_eq!(loaded.next_fetch_offset(), 0);
        // Everything not done is delivered again, with its count.
        let got = fetch(&mut loaded, "n", &log, 100, 0);
        assert_eq!(got.ranges, vec![range(0, 9, 2), range(17, 29, 2)]);
    }

    #[test]
    fn loading_sparse_batches_fills_the_gaps_with_new_records() {
        let p = PersistedState {
            state_epoch: 1,
            start_offset: 5,
            state_batches: vec![
                StateBatch {
                    first_offset: 2,
                    last_offset: 6,
                    delivery_state: DeliveryState::Acknowledged,
                    delivery_count: 1,
                },
                StateBatch {
                    first_offset: 10,
                    last_offset: 11,
                    delivery_state: DeliveryState::Archived,
                    delivery_count: 2,
                },
            ],
        };
        let mut sp = SharePartition::load(&p, &settings(5, 100, 1_000));
        assert_eq!(sp.start_offset(), 7, "5-6 acknowledged");
        assert_eq!(sp.end_offset(), 12);
        assert_eq!(sp.record_state(8), Some((DeliveryState::Available, 0)));
        let got = fetch(&mut sp, "m", &batches(0, 14, 5), 100, 0);
        assert_eq!(got.ranges, vec![range(7, 9, 1), range(12, 14, 1)]);
    }

    #[test]
    fn max_records_bounds_redelivery_at_batch_boundaries() {
        let mut sp = sp();
        let log = batches(0, 19, 5);
        fetch(&mut sp, "m", &log, 100, 0);
        sp.acknowledge("m", &[ack(0, 19, AcknowledgeType::Release)], 0)
            .expect("ack");
        let got = fetch(&mut sp, "m", &log, 7, 0);
        assert_eq!(got.ranges, vec![range(0, 9, 2)]);
        let got = fetch(&mut sp, "m", &log, 1, 0);
        assert_eq!(got.ranges, vec![range(10, 14, 2)]);
    }

    mod prop {
        use super::*;
        use proptest::prelude::*;

        #[derive(Debug, Clone)]
        enum Op {
            Fetch(u8, u64),
            Ack(u8, i64, i64, u8),
            /// An acknowledgement left pending (its write in flight).
            AckPending(u8, i64, i64, u8),
            /// The oldest pending acknowledgement's write: succeeded or failed.
            Written(bool),
            Tick(i64),
            Close(u8),
            LogStart(i64),
        }

        fn op() -> impl Strategy<Value = Op> {
            prop_oneof![
                (0u8..3, 1u64..20).prop_map(|(m, n)| Op::Fetch(m, n)),
                (0u8..3, 0i64..60, 0i64..6, 0u8..4).prop_map(|(m, f, l, t)| Op::Ack(m, f, l, t)),
                (0u8..3, 0i64..60, 0i64..6, 0u8..4)
                    .prop_map(|(m, f, l, t)| Op::AckPending(m, f, l, t)),
                any::<bool>().prop_map(Op::Written),
                (0i64..3_000).prop_map(Op::Tick),
                (0u8..3).prop_map(Op::Close),
                (0i64..60).prop_map(Op::LogStart),
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

            /// Whatever happens: runs cover [SPSO, end) exactly, alike neighbours are merged,
            /// the head is never done, counts stay within the limit, the persisted state loads
            /// back to itself, and an offset is never held by two members.
            #[test]
            fn invariants_hold(ops in proptest::collection::vec(op(), 1..60)) {
                let limit = 3;
                let mut sp = SharePartition::new(0, 0, &settings(limit, 25, 1_000));
                let log: Vec<FetchedBatch> = (0..20)
                    .map(|i| {
                        let f = i * 4;
                        if i % 7 == 6 {
                            FetchedBatch::skipped(f, f)
                        } else {
                            FetchedBatch::records(f, f + 2)
                        }
                    })
                    .collect();
                let mut now = 0;
                let mut in_flight: std::collections::VecDeque<(PendingAck, SharePartition)> =
                    Default::default();
                for op in ops {
                    match op {
                        Op::Fetch(m, n) => {
                            let name = format!("m{m}");
                            let got = fetch(&mut sp, &name, &log, n, now);
                            for r in &got.ranges {
                                for o in r.first_offset..=r.last_offset {
                                    prop_assert_eq!(sp.holder(o), Some(name.as_str()));
                                }
                            }
                        }
                        Op::Ack(m, f, l, t) => {
                            let ty = AcknowledgeType::from_code(t as i8).expect("type");
                            let before = sp.clone();
                            if sp.acknowledge(&format!("m{m}"), &[ack(f, f + l, ty)], 0).is_err() {
                                prop_assert_eq!(&sp, &before);
                            }
                        }
                        Op::AckPending(m, f, l, t) => {
                            let ty = AcknowledgeType::from_code(t as i8).expect("type");
                            let name = format!("m{m}");
                            let before = sp.clone();
                            match sp.acknowledge_pending(&name, &[ack(f, f + l, ty)], 0) {
                                Ok(p) => in_flight.push_back((p, before)),
                                Err(_) => prop_assert_eq!(&sp, &before),
                            }
                        }
                        Op::Written(ok) => {
                            if let Some((p, before)) = in_flight.pop_front() {
                                if ok {
                                    sp.commit(&p);
                                } else {
                                    sp.roll_back(&p);
                                    // What it settled is Acquired by its member again, unless
                                    // it left flight meanwhile.
                                    for &(f, l) in &p.ranges {
                                        for o in f..=l {
                                            if sp.record_state(o).is_some() {
                                                prop_assert_eq!(sp.holder(o), before.holder(o));
                                            }
                                        }
                                    }
                                }
                            }
                        }
                        Op::Tick(d) => {
                            now += d;
                            sp.tick(now);
                            prop_assert!(sp.next_deadline().is_none_or(|d| d > now));
                        }
                        Op::Close(m) => {
                            sp.release_member(&format!("m{m}"));
                        }
                        Op::LogStart(o) => {
                            sp.advance_log_start(o);
                        }
                    }
                    let mut expect = sp.start_offset;
                    let mut prev: Option<&Run> = None;
                    for (&f, r) in &sp.runs {
                        prop_assert_eq!(f, expect);
                        prop_assert!(r.last >= f);
                        prop_assert!(r.delivery_count <= limit && r.delivery_count >= 0);
                        prop_assert_eq!(
                            r.member.is_some(),
                            r.state == DeliveryState::Acquired || r.pending
                        );
                        prop_assert!(!(r.pending && r.state == DeliveryState::Acquired));
                        if let Some(p) = prev {
                            prop_assert!(!p.alike(r), "unmerged neighbours");
                        }
                        prev = Some(r);
                        expect = r.last + 1;
                    }
                    prop_assert_eq!(expect, sp.end_offset);
                    if let Some((_, head)) = sp.runs.iter().next() {
                        prop_assert!(!head.is_done());
                    }
                    let p = sp.persisted();
                    prop_assert_eq!(SharePartition::load(&p, &settings(limit, 25, 1_000)).persisted(), p);
                }
            }
        }
    }
}
