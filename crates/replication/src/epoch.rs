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

/// Kafka's `LeaderEpochFileCache.epochForOffset`: the epoch the record at `offset` was written
/// in (the last entry starting at or before it), `None` before the first entry. ListOffsets
/// answers it with an offset it found, so a consumer can later check its position (KIP-320).
pub fn epoch_for_offset(cache: &[EpochEntry], offset: i64) -> Option<i32> {
    cache
        .iter()
        .take_while(|e| e.start_offset <= offset)
        .last()
        .map(|e| e.epoch)
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

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn e(epoch: i32, start_offset: i64) -> EpochEntry {
        EpochEntry {
            epoch,
            start_offset,
        }
    }

    fn eo(leader_epoch: i32, end_offset: i64) -> EpochEndOffset {
        EpochEndOffset {
            leader_epoch,
            end_offset,
        }
    }

    const CACHE: [EpochEntry; 3] = [
        EpochEntry {
            epoch: 2,
            start_offset: 6,
        },
        EpochEntry {
            epoch: 3,
            start_offset: 8,
        },
        EpochEntry {
            epoch: 5,
            start_offset: 12,
        },
    ];

    #[test]
    fn epoch_for_offset_is_the_last_epoch_started_at_or_before_it() {
        assert_eq!(epoch_for_offset(&CACHE, 5), None);
        assert_eq!(epoch_for_offset(&CACHE, 6), Some(2));
        assert_eq!(epoch_for_offset(&CACHE, 7), Some(2));
        assert_eq!(epoch_for_offset(&CACHE, 8), Some(3));
        assert_eq!(epoch_for_offset(&CACHE, 11), Some(3));
        assert_eq!(epoch_for_offset(&CACHE, 12), Some(5));
        assert_eq!(epoch_for_offset(&CACHE, 1000), Some(5));
        assert_eq!(epoch_for_offset(&[], 0), None);
    }

    #[test]
    fn end_offset_for_follows_kafkas_cases() {
        // The latest epoch ends at the log end.
        assert_eq!(end_offset_for(&CACHE, 5, 20), eo(5, 20));
        // A known epoch ends where the next starts.
        assert_eq!(end_offset_for(&CACHE, 2, 20), eo(2, 8));
        assert_eq!(end_offset_for(&CACHE, 3, 20), eo(3, 12));
        // An unknown epoch between two known ones: the one below, ending at the next start.
        assert_eq!(end_offset_for(&CACHE, 4, 20), eo(3, 12));
        // Below every epoch: the requested epoch, ending at the first start.
        assert_eq!(end_offset_for(&CACHE, 1, 20), eo(1, 6));
        // Above every epoch, undefined, or an empty cache.
        assert_eq!(end_offset_for(&CACHE, 6, 20), EpochEndOffset::UNDEFINED);
        assert_eq!(
            end_offset_for(&CACHE, UNDEFINED_EPOCH, 20),
            EpochEndOffset::UNDEFINED
        );
        assert_eq!(end_offset_for(&[], 3, 20), EpochEndOffset::UNDEFINED);
        assert_eq!(latest_epoch(&CACHE), Some(5));
        assert_eq!(latest_epoch(&[]), None);
    }

    #[test]
    fn diverging_epoch_on_a_follower_fetch() {
        // Last fetched epoch 3 at offset 12: exactly where epoch 3 ends, no divergence.
        assert_eq!(diverging_epoch(&CACHE, 20, 3, 12), Ok(None));
        assert_eq!(diverging_epoch(&CACHE, 20, 5, 20), Ok(None));
        // Past the end of epoch 3 on the leader: diverged, truncate to 12.
        assert_eq!(diverging_epoch(&CACHE, 20, 3, 14), Ok(Some(eo(3, 12))));
        // An epoch the leader never had: its largest epoch below ends at 12.
        assert_eq!(diverging_epoch(&CACHE, 20, 4, 10), Ok(Some(eo(3, 12))));
        // Newer than anything the leader knows: out of range.
        assert_eq!(diverging_epoch(&CACHE, 20, 6, 10), Err(()));
    }

    #[test]
    fn truncation_offset_follows_kafkas_cases() {
        let ours = [e(2, 6), e(3, 8), e(4, 10)];
        // Same epoch on both sides: the smaller end.
        let t = |leader| truncation_offset(&ours, 15, 15, leader);
        assert_eq!(
            t(eo(3, 9)),
            OffsetTruncationState {
                offset: 9,
                completed: true
            }
        );
        assert_eq!(
            t(eo(3, 20)),
            OffsetTruncationState {
                offset: 10,
                completed: true
            }
        );
        assert_eq!(
            t(eo(4, 30)),
            OffsetTruncationState {
                offset: 15,
                completed: true
            }
        );
        // The leader's epoch is below all of ours.
        assert_eq!(
            t(eo(1, 6)),
            OffsetTruncationState {
                offset: 6,
                completed: true
            }
        );
        // The leader's epoch (3 here) is one we never had: cut to the end of our epoch below
        // it and ask again.
        let gap = [e(2, 6), e(4, 10)];
        assert_eq!(
            truncation_offset(&gap, 15, 15, eo(3, 12)),
            OffsetTruncationState {
                offset: 10,
                completed: false
            }
        );
        // The leader could not answer: keep the fetch position.
        assert_eq!(
            t(EpochEndOffset::UNDEFINED),
            OffsetTruncationState {
                offset: 15,
                completed: true
            }
        );
        // An answer without an epoch: its offset, bounded by our log end.
        assert_eq!(
            t(eo(UNDEFINED_EPOCH, 11)),
            OffsetTruncationState {
                offset: 11,
                completed: true
            }
        );
        assert_eq!(
            t(eo(UNDEFINED_EPOCH, 40)),
            OffsetTruncationState {
                offset: 15,
                completed: true
            }
        );
        // Our log has no epochs at all.
        assert_eq!(
            truncation_offset(&[], 4, 4, eo(3, 2)),
            OffsetTruncationState {
                offset: 2,
                completed: true
            }
        );
    }

    #[test]
    fn assign_keeps_the_cache_monotonic() {
        let mut c = vec![e(1, 0)];
        assert!(assign(&mut c, 2, 5));
        // The latest epoch again at a later offset: nothing to do.
        assert!(!assign(&mut c, 2, 7));
        // The latest epoch at an earlier offset moves its start.
        assert!(assign(&mut c, 2, 3));
        assert_eq!(c, vec![e(1, 0), e(2, 3)]);
        // An older epoch, or a start not after the latest, replaces what would break order.
        assert!(assign(&mut c, 3, 3));
        assert_eq!(c, vec![e(1, 0), e(3, 3)]);
        assert!(assign(&mut c, 1, 10));
        assert_eq!(c, vec![e(1, 10)]);
        assert!(!assign(&mut c, -1, 12));
        assert!(!assign(&mut c, 4, -1));
    }

    #[test]
    fn truncation_from_either_end() {
        let mut c = CACHE.to_vec();
        truncate_from_end(&mut c, 13);
        assert_eq!(c, CACHE.to_vec());
        truncate_from_end(&mut c, 12);
        assert_eq!(c, vec![e(2, 6), e(3, 8)]);
        truncate_from_end(&mut c, 0);
        assert!(c.is_empty());

        let mut c = CACHE.to_vec();
        truncate_from_start(&mut c, 5);
        assert_eq!(c, CACHE.to_vec());
        truncate_from_start(&mut c, 9);
        assert_eq!(c, vec![e(3, 9), e(5, 12)]);
        truncate_from_start(&mut c, 12);
        assert_eq!(c, vec![e(5, 12)]);
        truncate_from_start(&mut c, 30);
        assert_eq!(c, vec![e(5, 30)]);
    }

    /// A replica in the model: each record's leader epoch, and the leader-epoch cache kept by
    /// the rules above (a leader assigns its epoch at its log end when elected; a follower
    /// assigns each copied record's epoch).
    #[derive(Debug, Clone, Default)]
    struct Replica {
        log: Vec<i32>,
        cache: Vec<EpochEntry>,
    }

    impl Replica {
        fn truncate(&mut self, offset: usize) {
            self.log.truncate(offset);
            truncate_from_end(&mut self.cache, offset as i64);
        }

        fn push(&mut self, epoch: i32) {
            assign(&mut self.cache, epoch, self.log.len() as i64);
            self.log.push(epoch);
        }
    }

    fn common_prefix(a: &[i32], b: &[i32]) -> usize {
        a.iter().zip(b).take_while(|(x, y)| x == y).count()
    }

    /// One leadership term: who leads, how many records it writes, and for each replica how
    /// much of the leader's log it copies (a fraction in percent; 0 = does not fetch).
    type Term = (usize, usize, [u8; 3], i32);

    fn history(terms: &[Term]) -> (Vec<Replica>, usize, i32) {
        let mut replicas = vec![Replica::default(); 3];
        let mut epoch = 0;
        let mut last_leader = 0;
        for &(leader, records, copies, skip) in terms {
            epoch += skip;
            last_leader = leader;
            let l = &mut replicas[leader];
            assign(&mut l.cache, epoch, l.log.len() as i64);
            for _ in 0..records {
                l.push(epoch);
            }
            let lead = replicas[leader].clone();
            for (i, r) in replicas.iter_mut().enumerate() {
                if i == leader || copies[i] == 0 {
                    continue;
                }
                // A follower first truncates to where it agrees with the leader (by the ground
                // truth here; the protocol below must find the same point), then copies.
                let agree = common_prefix(&r.log, &lead.log);
                r.truncate(agree);
                let upto = agree + (lead.log.len() - agree) * copies[i] as usize / 100;
                for &record_epoch in &lead.log[agree..upto] {
                    r.push(record_epoch);
                }
            }
        }
        (replicas, last_leader, epoch)
    }

    /// Terms where followers often copy nothing or everything, so logs diverge in many ways.
    fn terms() -> impl Strategy<Value = Vec<Term>> {
        let copy = prop_oneof![Just(0u8), Just(100u8), 0u8..=100];
        prop::collection::vec(
            (0usize..3, 0usize..4, prop::array::uniform3(copy), 1i32..3),
            1..14,
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]

        /// Leaders and followers built by random terms (any replica may lead, unclean
        /// elections included, followers copy part of the leader's log): the
        /// OffsetForLeaderEpoch exchange truncates every follower to exactly the longest prefix
        /// it shares with the leader.
        #[test]
        fn follower_truncates_to_the_common_prefix(terms in terms()) {
            let (replicas, leader, _) = history(&terms);
            let lead = &replicas[leader];
            let leader_end = lead.log.len() as i64;
            for (i, original) in replicas.iter().enumerate() {
                if i == leader {
                    continue;
                }
                let mut f = original.clone();
                let mut rounds = 0;
                while let Some(epoch) = latest_epoch(&f.cache) {
                    rounds += 1;
                    prop_assert!(rounds <= 20, "no progress: {f:?} vs {lead:?}");
                    let answer = end_offset_for(&lead.cache, epoch, leader_end);
                    let end = f.log.len() as i64;
                    let t = truncation_offset(&f.cache, end, end, answer);
                    prop_assert!(t.offset >= 0 && t.offset <= end);
                    f.truncate(t.offset as usize);
                    if t.completed {
                        break;
                    }
                }
                let expected = common_prefix(&original.log, &lead.log);
                prop_assert_eq!(f.log.len(), expected, "follower {:?} leader {:?}", original, lead);
                // And the leader's fetch check agrees: no divergence left.
                if let Some(&last) = f.log.last() {
                    let d = diverging_epoch(&lead.cache, leader_end, last, f.log.len() as i64);
                    prop_assert_eq!(d, Ok(None));
                }
            }
        }

        /// Before truncating, the leader's fetch check reports divergence exactly when the
        /// follower's log is not a prefix of the leader's.
        #[test]
        fn diverging_epoch_detects_exactly_a_non_prefix(terms in terms()) {
            let (replicas, leader, _) = history(&terms);
            let lead = &replicas[leader];
            for (i, f) in replicas.iter().enumerate() {
                let Some(&last) = f.log.last() else { continue };
                if i == leader {
                    continue;
                }
                let prefix = common_prefix(&f.log, &lead.log) == f.log.len();
                let d = diverging_epoch(&lead.cache, lead.log.len() as i64, last, f.log.len() as i64);
                match d {
                    Ok(None) => prop_assert!(prefix, "{f:?} vs {lead:?}"),
                    Ok(Some(end)) => {
                        prop_assert!(!prefix);
                        prop_assert!(end.leader_epoch <= last);
                    }
                    Err(()) => prop_assert!(!prefix),
                }
            }
        }

        /// `end_offset_for` against a direct reading of the cache.
        #[test]
        fn end_offset_for_matches_a_scan(
            starts in prop::collection::btree_set(0i64..100, 0..6),
            epochs in prop::collection::btree_set(0i32..20, 6),
            requested in -1i32..22,
            extra in 0i64..10,
        ) {
            let cache: Vec<EpochEntry> = starts
                .iter()
                .zip(epochs.iter())
                .map(|(&s, &e)| EpochEntry { epoch: e, start_offset: s })
                .collect();
            let end = cache.last().map_or(0, |e| e.start_offset) + extra;
            let got = end_offset_for(&cache, requested, end);
            let floor = cache.iter().rev().find(|e| e.epoch <= requested);
            let higher = cache.iter().find(|e| e.epoch > requested);
            let want = if requested == UNDEFINED_EPOCH {
                EpochEndOffset::UNDEFINED
            } else if cache.last().map(|e| e.epoch) == Some(requested) {
                EpochEndOffset { leader_epoch: requested, end_offset: end }
            } else {
                match (floor, higher) {
                    (_, None) => EpochEndOffset::UNDEFINED,
                    (None, Some(h)) => EpochEndOffset { leader_epoch: requested, end_offset: h.start_offset },
                    (Some(f), Some(h)) => EpochEndOffset { leader_epoch: f.epoch, end_offset: h.start_offset },
                }
            };
            prop_assert_eq!(got, want);
        }
    }
}
