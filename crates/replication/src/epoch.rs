//! Leader epochs and log divergence, I/O-free: Kafka's `LeaderEpochFileCache.endOffsetFor`,
//! the leader's diverging-epoch check on a follower Fetch (KIP-320) and the follower's
//! truncation decision (`AbstractFetcherThread.getOffsetTruncationState`).
//!
//! A leader-epoch cache is a list of [`EpochEntry`]s sorted by epoch, start offsets strictly
//! increasing: epoch `e` covers offsets from its start to the next entry's start (the last one
//! to the log end). Storage owns the cache and its checkpoint file; the functions here take it
//! as a slice, plus [`assign`], [`truncate_from_end`] and [`truncate_from_start`], the rules by
//! which the cache changes (Kafka's), so the divergence logic is tested against them.
//!
//! ```text
//!  follower                                   leader
//!  latest_epoch(cache) = e ── OffsetForLeaderEpoch(e) ──► end_offset_for(cache, e, LEO)
//!  truncation_offset(cache, LEO, answer) ◄── (epoch, end offset) ──┘
//!    └─ truncate to .offset; if !.completed ask again with the new latest epoch
//! ```

/// Kafka's `UNDEFINED_EPOCH`.
pub const UNDEFINED_EPOCH: i32 = -1;
/// Kafka's `UNDEFINED_EPOCH_OFFSET`.
pub const UNDEFINED_EPOCH_OFFSET: i64 = -1;

/// Leader epoch `epoch` starts at `start_offset` (one line of the checkpoint file).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochEntry {
    pub epoch: i32,
    pub start_offset: i64,
}

/// An OffsetForLeaderEpoch answer (or a Fetch response's diverging epoch): the largest epoch
/// at most the requested one that the answering log knows, and where it ends there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EpochEndOffset {
    pub leader_epoch: i32,
    pub end_offset: i64,
}

impl EpochEndOffset {
    pub const UNDEFINED: EpochEndOffset = EpochEndOffset {
        leader_epoch: UNDEFINED_EPOCH,
        end_offset: UNDEFINED_EPOCH_OFFSET,
    };
}

/// Where the follower truncates, and whether that settles the divergence (`false`: ask the
/// leader again with the follower's new latest epoch).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetTruncationState {
    pub offset: i64,
    pub completed: bool,
}

/// The epoch of the last entry: what a follower asks the leader about.
pub fn latest_epoch(cache: &[EpochEntry]) -> Option<i32> {
    cache.last().map(|e| e.epoch)
}

/// Kafka's `LeaderEpochFileCache.endOffsetFor`: the end of `requested_epoch` in this log.
///
/// * the latest epoch → the log end (that epoch is still being written);
/// * an epoch below the first entry → the requested epoch ending at the first start (the
///   records before were deleted; the asker replicates from there);
/// * otherwise → the largest known epoch ≤ the requested one, ending where the next epoch
///   starts;
/// * undefined, or above every known epoch → [`EpochEndOffset::UNDEFINED`].
pub fn end_offset_for(
    cache: &[EpochEntry],
    requested_epoch: i32,
    log_end_offset: i64,
) -> EpochEndOffset {
    if requested_epoch == UNDEFINED_EPOCH {
        return EpochEndOffset::UNDEFINED;
    }
    if latest_epoch(cache) == Some(requested_epoch) {
        return EpochEndOffset {
            leader_epoch: requested_epoch,
            end_offset: log_end_offset,
        };
    }
    let higher = cache.partition_point(|e| e.epoch <= requested_epoch);
    let Some(next) = cache.get(higher) else {
        return EpochEndOffset::UNDEFINED;
    };
    match higher.checked_sub(1).and_then(|i| cache.get(i)) {
        None => EpochEndOffset {
            leader_epoch: requested_epoch,
            end_offset: next.start_offset,
        },
        Some(floor) => EpochEndOffset {
            leader_epoch: floor.epoch,
            end_offset: next.start_offset,
        },
    }
}

/// The leader's check of a follower Fetch that carries `last_fetched_epoch` (the epoch of the
/// follower's last record) at `fetch_offset` (Kafka's `Partition.readRecords`): `Some` when
/// the follower's log diverges from the leader's, with the epoch end offset to truncate by
/// (the fetch then returns no records and must not update the follower's state); `None` when
/// the fetch may proceed. `Err(())` when the leader cannot place the epoch at all, which Kafka
/// answers OFFSET_OUT_OF_RANGE.
#[allow(clippy::result_unit_err)]
pub fn diverging_epoch(
    leader_cache: &[EpochEntry],
    leader_log_end_offset: i64,
    last_fetched_epoch: i32,
    fetch_offset: i64,
) -> Result<Option<EpochEndOffset>, ()> {
    let end = end_offset_for(leader_cache, last_fetched_epoch, leader_log_end_offset);
    if end.end_offset == UNDEFINED_EPOCH_OFFSET || end.leader_epoch == UNDEFINED_EPOCH {
        return Err(());
    }
    if end.leader_epoch < last_fetched_epoch || end.end_offset < fetch_offset {
        return Ok(Some(end));
    }
    Ok(None)
}

/// Kafka's `getOffsetTruncationState`: where a follower whose log ends at `log_end_offset`
/// truncates given the leader's answer. `fetch_offset` is the follower's current fetch
/// position, used when the leader could not answer.
pub fn truncation_offset(
    cache: &[EpochEntry],
    log_end_offset: i64,
    fetch_offset: i64,
    leader: EpochEndOffset,
) -> OffsetTruncationState {
    if leader.end_offset == UNDEFINED_EPOCH_OFFSET {
        // The leader knows nothing of our epoch; keep the position we had.
        return OffsetTruncationState {
            offset: fetch_offset,
            completed: true,
        };
    }
    if leader.leader_epoch == UNDEFINED_EPOCH {
        return OffsetTruncationState {
            offset: leader.end_offset.min(log_end_offset),
            completed: true,
        };
    }
    let ours = end_offset_for(cache, leader.leader_epoch, log_end_offset);
    if ours.end_offset == UNDEFINED_EPOCH_OFFSET {
        // Our log has no epoch that old: the leader's offset is all we can go by.
        return OffsetTruncationState {
            offset: leader.end_offset.min(log_end_offset),
            completed: true,
        };
    }
    if ours.leader_epoch != leader.leader_epoch {
        // We never had the leader's epoch: cut to the end of our largest epoch below it and
        // ask again about that one.
        return OffsetTruncationState {
            offset: ours.end_offset.min(log_end_offset),
            completed: false,
        };
    }
    OffsetTruncationState {
        offset: ours.end_offset.min(leader.end_offset).min(log_end_offset),
        completed: true,
    }
}

/// Kafka's `LeaderEpochFileCache.assign`: record that `epoch` starts at `start_offset`.
/// Entries that would break monotonicity (an epoch ≥ it, or a start ≥ it) are removed first;
/// a repeat of the latest epoch at a later offset changes nothing. Returns whether the cache
/// changed.
pub fn assign(cache: &mut Vec<EpochEntry>, epoch: i32, start_offset: i64) -> bool {
    if epoch < 0 || start_offset < 0 {
        return false;
    }
    if let Some(last) = cache.last() {
        if last.epoch == epoch && start_offset >= last.start_offset {
            return false;
        }
    }
    while cache
        .last()
        .is_some_and(|e| e.epoch >= epoch || e.start_offset >= start_offset)
    {
        cache.pop();
    }
    cache.push(EpochEntry {
        epoch,
        start_offset,
    });
    true
}

/// Kafka's `truncateFromEnd`: the log was truncated to end at `end_offset`; epochs starting
/// at or after it are gone.
pub fn truncate_from_end(cache: &mut Vec<EpochEntry>, end_offset: i64) {
    while cache.last().is_some_and(|e| e.start_offset >= end_offset) {
        cache.pop();
    }
}

/// Kafka's `truncateFromStart`: the log now starts at `start_offset`; entries starting at or
/// before it collapse into the latest of them, moved to start there.
pub fn truncate_from_start(cache: &mut Vec<EpochEntry>, start_offset: i64) {
    let covered = cache.partition_point(|e| e.start_offset <= start_offset);
    if covered == 0 {
        return;
    }
    let keep = cache[covered - 1].epoch;
    cache.drain(..covered);
    cache.insert(
        0,
        EpochEntry {
            epoch: keep,
            start_offset,
        },
    );
}
