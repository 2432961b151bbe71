//! Leader election for one partition: from a registration and a target (ISR, replicas,
//! election kind), the [`PartitionChangeRecord`] the controller should emit, if any.
//!
//! Kafka's `PartitionChangeBuilder`. The leader must end up in the ISR and on an acceptable
//! (registered, unfenced) broker:
//!
//! ```text
//! leader still in target ISR and acceptable ──► keep it (Preferred: unless the preferred
//!                                               replica is in the ISR and acceptable)
//! otherwise, in replica order:
//!   first replica in the target ISR and acceptable       ──► clean election
//!   (ELR) ISR empty: first ELR member acceptable         ──► clean election, ISR becomes [it]
//!   (ELR) ISR and ELR empty: the last known leader, if acceptable ──► it leads, ISR [it]
//!   else, if unclean election is allowed: first acceptable replica ──► unclean election,
//!                                                           ISR becomes [it]
//!   else                                                 ──► NO_LEADER
//! ```
//!
//! Eligible leader replicas (KIP-966, when `eligible.leader.replicas.version` is 1, Kafka
//! 4.4's default): while the target ISR is below the topic's `min.insync.replicas`, the
//! replicas leaving it (and the ELR already there) form the ELR, minus any broker that came
//! back from an unclean shutdown (a kill, a crash: what it had may be gone). The high
//! watermark does not advance under min ISR, so an ELR member holds every committed record and
//! may lead once the ISR is empty. An ISR at or above min ISR clears the ELR. With ELR the
//! ISR may become empty (the partition leaderless, its candidates in the ELR); without it the
//! last ISR member stays in the ISR. When the ISR and the ELR are both empty, the last leader
//! is kept as the last known ELR and leads again when it is back (Kafka's balanced recovery;
//! Kafka elects it even while it is fenced, gregor once it is acceptable).
//!
//! Before electing, a reassignment completes if every replica it adds is in the target ISR:
//! the replicas it removes leave the replica list and the ISR (so a removed leader is replaced
//! here). A replica still being added is never chosen, not even by an unclean election.
//!
//! Replaying the record sets the leader in a new leader epoch and bumps the partition epoch
//! ([`PartitionRegistration`]), so epochs only ever grow. The builder emits nothing when nothing
//! would change, and without ELR never a change that leaves the ISR empty.

use uuid::Uuid;

use crate::image::PartitionRegistration;
use crate::records::{BrokerId, PartitionChangeRecord, NO_LEADER};

/// How many of `records` elect a leader from outside the partition's ISR in `image`: unclean
/// elections (Kafka's `UncleanLeaderElectionsPerSec`). A clean election (from the ISR, or from
/// the ELR or the last known leader, which hold every committed record), or a change of a
/// partition the image does not know, counts nothing.
pub fn unclean_elections(
    image: &crate::image::MetadataImage,
    records: &[crate::records::MetadataRecord],
) -> u64 {
    records
        .iter()
        .filter(|r| match r {
            crate::records::MetadataRecord::PartitionChange(c) => match c.leader {
                Some(leader) if leader != NO_LEADER => image
                    .topics()
                    .topic(c.topic_id)
                    .and_then(|t| t.partition(c.partition_id))
                    .is_some_and(|p| {
                        !p.isr.contains(&leader)
                            && !p.elr.contains(&leader)
                            && p.last_known_elr != [leader]
                    }),
                _ => false,
            },
            _ => false,
        })
        .count() as u64
}

/// Which leaders an election may choose.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Election {
    /// Move leadership to the preferred (first) replica if it is in the ISR and acceptable;
    /// otherwise behave like `Online`.
    Preferred,
    /// Keep a valid leader; otherwise choose from the ISR only.
    Online,
    /// Like `Online`, but when no ISR member is acceptable, choose any acceptable replica and
    /// restart the ISR from it (`unclean.leader.election.enable`): records the ISR had may be
    /// lost.
    Unclean,
}

/// How a leader was chosen, for logs and the ElectLeaders response.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElectionResult {
    /// The current leader stays.
    Unchanged,
    /// A new leader from the ISR.
    Clean(BrokerId),
    /// A new leader from outside the ISR.
    Unclean(BrokerId),
    /// KIP-966: the ISR and the ELR were empty; the last known leader is back and leads.
    LastKnownLeader(BrokerId),
    /// No acceptable leader: the partition is offline.
    NoLeader,
}

/// Builds the change for one partition.
pub struct PartitionChangeBuilder<'a> {
    partition: &'a PartitionRegistration,
    topic_id: Uuid,
    partition_id: i32,
    is_acceptable_leader: &'a dyn Fn(BrokerId) -> bool,
    election: Election,
    target_isr: Vec<BrokerId>,
    target_replicas: Vec<BrokerId>,
    target_adding: Vec<BrokerId>,
    target_removing: Vec<BrokerId>,
    /// KIP-966 on, with the topic's effective `min.insync.replicas`.
    elr: Option<usize>,
    /// Brokers back from an unclean shutdown: they leave the ELR.
    unclean_shutdown: Vec<BrokerId>,
}

impl<'a> PartitionChangeBuilder<'a> {
    /// `is_acceptable_leader` says whether a broker may lead (registered and unfenced, as of
    /// the records before this change).
    pub fn new(
        partition: &'a PartitionRegistration,
        topic_id: Uuid,
        partition_id: i32,
        is_acceptable_leader: &'a dyn Fn(BrokerId) -> bool,
    ) -> PartitionChangeBuilder<'a> {
        PartitionChangeBuilder {
            partition,
            topic_id,
            partition_id,
            is_acceptable_leader,
            election: Election::Online,
            target_isr: partition.isr.clone(),
            target_replicas: partition.replicas.clone(),
            target_adding: partition.adding_replicas.clone(),
            target_removing: partition.removing_replicas.clone(),
            elr: None,
            unclean_shutdown: Vec::new(),
        }
    }

    /// Eligible leader replicas (KIP-966) on, for a topic whose effective
    /// `min.insync.replicas` is `min_isr`; `None` turns them off (and clears any the partition
    /// has).
    pub fn set_eligible_leader_replicas(mut self, min_isr: Option<usize>) -> Self {
        self.elr = min_isr;
        self
    }

    /// Brokers that registered again after an unclean shutdown: they leave the ELR (and the
    /// caller takes them out of the target ISR and the acceptable leaders).
    pub fn set_unclean_shutdown_replicas(mut self, brokers: Vec<BrokerId>) -> Self {
        self.unclean_shutdown = brokers;
        self
    }

    pub fn set_election(mut self, election: Election) -> Self {
        self.election = election;
        self
    }

    /// The ISR wanted after the change (members that are not target replicas are dropped).
    /// An empty target keeps the current ISR: a partition always remembers who had its data.
    pub fn set_target_isr(mut self, isr: Vec<BrokerId>) -> Self {
        self.target_isr = isr;
        self
    }

    /// The replicas wanted after the change, with the ones a reassignment is adding and
    /// removing (both empty when it is not reassigning).
    pub fn set_target_replicas(
        mut self,
        replicas: Vec<BrokerId>,
        adding: Vec<BrokerId>,
        removing: Vec<BrokerId>,
    ) -> Self {
        self.target_replicas = replicas;
        self.target_adding = adding;
        self.target_removing = removing;
        self
    }

    /// Kafka's `completeReassignmentIfNeeded`: once every replica being added is in the ISR,
    /// drop the ones being removed (from the replicas and the ISR) and end the reassignment,
    /// unless that would leave the ISR empty.
    fn complete_reassignment_if_needed(&mut self, isr: &mut Vec<BrokerId>) {
        if self.target_adding.is_empty() && self.target_removing.is_empty() {
            return;
        }
        if !self.target_adding.iter().all(|b| isr.contains(b)) {
            return;
        }
        let removing = &self.target_removing;
        let remaining: Vec<BrokerId> = isr
            .iter()
            .copied()
            .filter(|b| !removing.contains(b))
            .collect();
        if remaining.is_empty() {
            return;
        }
        self.target_replicas.retain(|b| !removing.contains(b));
        *isr = remaining;
        self.target_adding.clear();
        self.target_removing.clear();
    }

    /// Kafka's `maybePopulateTargetElr`: the ELR after the change, from the target ISR.
    fn target_elr(&self, isr: &[BrokerId]) -> Vec<BrokerId> {
        let Some(min_isr) = self.elr else {
            return Vec::new();
        };
        if isr.len() >= min_isr {
            return Vec::new();
        }
        // The current ELR and ISR, less the target ISR and unclean restarts, in replica order.
        self.target_replicas
            .iter()
            .copied()
            .filter(|b| self.partition.elr.contains(b) || self.partition.isr.contains(b))
            .filter(|b| !isr.contains(b) && !self.unclean_shutdown.contains(b))
            .collect()
    }

    fn elect(&self, isr: &[BrokerId], elr: &[BrokerId]) -> ElectionResult {
        let acceptable = |b: BrokerId| b != NO_LEADER && (self.is_acceptable_leader)(b);
        // In the ISR, or in the ELR when the ISR is empty (Kafka's `isValidNewLeader`).
        let valid = |b: BrokerId| {
            acceptable(b) && (isr.contains(&b) || (isr.is_empty() && elr.contains(&b)))
        };
        let current = self.partition.leader;
        if self.election == Election::Preferred {
            if let Some(&preferred) = self.target_replicas.first() {
                if valid(preferred) {
                    return if preferred == current {
                        ElectionResult::Unchanged
                    } else {
                        ElectionResult::Clean(preferred)
                    };
                }
            }
        }
        if valid(current) {
            return ElectionResult::Unchanged;
        }
        if let Some(&b) = self.target_replicas.iter().find(|&&b| valid(b)) {
            return ElectionResult::Clean(b);
        }
        // Kafka's `canElectLastKnownLeader`: nothing in the ISR or the ELR, and one last known
        // leader, which is back.
        if self.elr.is_some() && isr.is_empty() && elr.is_empty() {
            if let [last] = self.partition.last_known_elr[..] {
                if acceptable(last) && self.target_replicas.contains(&last) {
                    return ElectionResult::LastKnownLeader(last);
                }
            }
        }
        if self.election == Election::Unclean {
            // A replica still being added has nothing to lead with.
            let candidate = |b: BrokerId| acceptable(b) && !self.target_adding.contains(&b);
            if let Some(&b) = self.target_replicas.iter().find(|&&b| candidate(b)) {
                return ElectionResult::Unclean(b);
            }
        }
        if current == NO_LEADER {
            ElectionResult::Unchanged
        } else {
            ElectionResult::NoLeader
        }
    }

    /// The election's outcome and the record to emit (`None` if nothing changes).
    ///
    /// The result is always a valid registration: without ELR, if the targets would leave the
    /// ISR empty (every ISR member dropped), the ISR stays as it is.
    pub fn build(mut self) -> (ElectionResult, Option<PartitionChangeRecord>) {
        let in_target = |b: &BrokerId| self.target_replicas.contains(b);
        let mut isr: Vec<BrokerId> = self.target_isr.iter().copied().filter(in_target).collect();
        if isr.is_empty() && self.elr.is_none() {
            isr = self
                .partition
                .isr
                .iter()
                .copied()
                .filter(in_target)
                .collect();
            if isr.is_empty() {
                return (ElectionResult::Unchanged, None);
            }
        }
        self.complete_reassignment_if_needed(&mut isr);
        let mut elr = self.target_elr(&isr);
        let result = self.elect(&isr, &elr);
        let leader = match result {
            ElectionResult::Unchanged | ElectionResult::Clean(_) => {
                let b = match result {
                    ElectionResult::Clean(b) => b,
                    _ => self.partition.leader,
                };
                if b != NO_LEADER && isr.is_empty() {
                    // Led from the ELR: it is the ISR now.
                    isr = vec![b];
                    elr.retain(|&e| e != b);
                }
                b
            }
            ElectionResult::LastKnownLeader(b) | ElectionResult::Unclean(b) => {
                isr = vec![b];
                elr.clear();
                b
            }
            ElectionResult::NoLeader => NO_LEADER,
        };
        // An ISR at min ISR after the election (led from the ELR with min ISR 1) commits
        // records the rest of the ELR does not have: it is no longer eligible.
        if self.elr.is_some_and(|min_isr| isr.len() >= min_isr) {
            elr.clear();
        }
        // Kafka's `maybeUpdateLastKnownLeader`: the last leader is kept when the ISR first
        // becomes empty, and forgotten once the partition has a leader again.
        // A last known leader that is no longer a replica (reassigned away) can never lead.
        let mut last_known: Vec<BrokerId> = self
            .partition
            .last_known_elr
            .iter()
            .copied()
            .filter(|b| self.target_replicas.contains(b))
            .collect();
        if self.elr.is_some() {
            let was_led = self.partition.leader != NO_LEADER;
            if isr.is_empty() && !self.partition.isr.is_empty() && was_led {
                last_known = vec![self.partition.leader];
            } else if leader != NO_LEADER {
                last_known.clear();
            }
        } else {
            last_known.clear();
        }
        let changed_to =
            |new: &Vec<BrokerId>, old: &Vec<BrokerId>| (new != old).then(|| new.clone());
        let change = PartitionChangeRecord {
            directories: None,
            topic_id: self.topic_id,
            partition_id: self.partition_id,
            leader: (leader != self.partition.leader).then_some(leader),
            isr: changed_to(&isr, &self.partition.isr),
            replicas: changed_to(&self.target_replicas, &self.partition.replicas),
            adding_replicas: changed_to(&self.target_adding, &self.partition.adding_replicas),
            removing_replicas: changed_to(&self.target_removing, &self.partition.removing_replicas),
            eligible_leader_replicas: changed_to(&elr, &self.partition.elr),
            last_known_elr: changed_to(&last_known, &self.partition.last_known_elr),
        };
        let changed = change.leader.is_some()
            || change.isr.is_some()
            || change.replicas.is_some()
            || change.adding_replicas.is_some()
            || change.removing_replicas.is_some()
            || change.eligible_leader_replicas.is_some()
            || change.last_known_elr.is_some();
        (result, changed.then_some(change))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn reg(replicas: &[i32], isr: &[i32], leader: i32) -> PartitionRegistration {
        PartitionRegistration {
            directories: Default::default(),
            replicas: replicas.to_vec(),
            isr: isr.to_vec(),
            leader,
            leader_epoch: 4,
            partition_epoch: 9,
            adding_replicas: vec![],
            removing_replicas: vec![],
            elr: vec![],
            last_known_elr: vec![],
        }
    }

    fn build(
        p: &PartitionRegistration,
        alive: &[i32],
        election: Election,
        isr: Option<Vec<i32>>,
    ) -> (ElectionResult, Option<PartitionChangeRecord>) {
        let alive = alive.to_vec();
        let ok = move |b: i32| alive.contains(&b);
        let mut builder =
            PartitionChangeBuilder::new(p, Uuid::from_u128(1), 0, &ok).set_election(election);
        if let Some(isr) = isr {
            builder = builder.set_target_isr(isr);
        }
        builder.build()
    }

    #[test]
    fn fenced_leader_is_replaced_from_the_isr_in_replica_order() {
        let p = reg(&[1, 2, 3], &[3, 2, 1], 1);
        let (result, change) = build(&p, &[2, 3], Election::Online, Some(vec![3, 2]));
        assert_eq!(result, ElectionResult::Clean(2));
        let change = change.expect("a change");
        assert_eq!(change.leader, Some(2));
        assert_eq!(change.isr, Some(vec![3, 2]));
        let next = p.merge(&change).expect("merge");
        assert_eq!((next.leader_epoch, next.partition_epoch), (5, 10));
    }

    #[test]
    fn no_isr_member_alive_means_no_leader_unless_unclean() {
        let p = reg(&[1, 2, 3], &[1], 1);
        let (result, change) = build(&p, &[2, 3], Election::Online, Some(vec![]));
        assert_eq!(result, ElectionResult::NoLeader);
        let change = change.expect("leader removed");
        assert_eq!(change.leader, Some(NO_LEADER));
        assert_eq!(change.isr, None, "the last ISR member stays in the ISR");

        let (result, change) = build(&p, &[2, 3], Election::Unclean, Some(vec![]));
        assert_eq!(result, ElectionResult::Unclean(2));
        let change = change.expect("unclean leader");
        assert_eq!((change.leader, change.isr), (Some(2), Some(vec![2])));
    }

    #[test]
    fn offline_partition_gets_its_isr_member_back_when_it_returns() {
        let p = reg(&[1, 2, 3], &[1], NO_LEADER);
        assert_eq!(
            build(&p, &[2, 3], Election::Online, None),
            (ElectionResult::Unchanged, None)
        );
        let (result, change) = build(&p, &[1, 2, 3], Election::Online, None);
        assert_eq!(result, ElectionResult::Clean(1));
        assert_eq!(change.and_then(|c| c.leader), Some(1));
    }

    #[test]
    fn preferred_election_moves_back_only_when_possible() {
        let p = reg(&[1, 2, 3], &[1, 2, 3], 2);
        let (result, change) = build(&p, &[1, 2, 3], Election::Preferred, None);
        assert_eq!(result, ElectionResult::Clean(1));
        assert_eq!(change.and_then(|c| c.leader), Some(1));
        // Preferred replica fenced: the current leader stays.
        assert_eq!(
            build(&p, &[2, 3], Election::Preferred, None),
            (ElectionResult::Unchanged, None)
        );
        // Preferred replica out of the ISR: the same.
        let p = reg(&[1, 2, 3], &[2, 3], 2);
        assert_eq!(
            build(&p, &[1, 2, 3], Election::Preferred, None),
            (ElectionResult::Unchanged, None)
        );
    }

    #[test]
    fn isr_shrink_of_a_follower_keeps_leader_and_leader_epoch() {
        let p = reg(&[1, 2, 3], &[1, 2, 3], 1);
        let (result, change) = build(&p, &[1, 2], Election::Online, Some(vec![1, 2]));
        assert_eq!(result, ElectionResult::Unchanged);
        let change = change.expect("isr change");
        assert_eq!(
            (change.leader, change.isr.clone()),
            (None, Some(vec![1, 2]))
        );
        let next = p.merge(&change).expect("merge");
        assert_eq!((next.leader_epoch, next.partition_epoch), (4, 10));
    }

    /// `build` with ELR on (min ISR `min_isr`) and brokers back from an unclean shutdown.
    fn build_elr(
        p: &PartitionRegistration,
        alive: &[i32],
        min_isr: usize,
        isr: Option<Vec<i32>>,
        unclean: &[i32],
    ) -> (ElectionResult, Option<PartitionChangeRecord>) {
        let alive = alive.to_vec();
        let ok = move |b: i32| alive.contains(&b);
        let mut builder = PartitionChangeBuilder::new(p, Uuid::from_u128(1), 0, &ok)
            .set_eligible_leader_replicas(Some(min_isr))
            .set_unclean_shutdown_replicas(unclean.to_vec());
        if let Some(isr) = isr {
            builder = builder.set_target_isr(isr);
        }
        builder.build()
    }

    fn with_elr(
        mut p: PartitionRegistration,
        elr: &[i32],
        last_known: &[i32],
    ) -> PartitionRegistration {
        p.elr = elr.to_vec();
        p.last_known_elr = last_known.to_vec();
        p
    }

    /// (leader, ISR, ELR, last known ELR).
    fn state(p: &PartitionRegistration) -> (BrokerId, Vec<BrokerId>, Vec<BrokerId>, Vec<BrokerId>) {
        (
            p.leader,
            p.isr.clone(),
            p.elr.clone(),
            p.last_known_elr.clone(),
        )
    }

    fn next(
        p: &PartitionRegistration,
        change: Option<PartitionChangeRecord>,
    ) -> PartitionRegistration {
        let next = match change {
            Some(c) => p.merge(&c).expect("merge"),
            None => p.clone(),
        };
        assert_eq!(next.invalid_reason(), None, "{next:?}");
        next
    }

    /// KIP-966, Kafka's `maybePopulateTargetElr`: replicas leaving an ISR below min ISR stay
    /// eligible; an ISR back at min ISR clears them.
    #[test]
    fn replicas_leaving_an_isr_below_min_isr_become_eligible() {
        let p = reg(&[1, 2, 3], &[1, 2, 3], 1);
        // Down to 2 = min ISR: nobody is eligible.
        let (_, change) = build_elr(&p, &[1, 2], 2, Some(vec![1, 2]), &[]);
        let p = next(&p, change);
        assert_eq!((p.isr.clone(), p.elr.clone()), (vec![1, 2], vec![]));
        // Down to 1: the one leaving is.
        let (result, change) = build_elr(&p, &[1], 2, Some(vec![1]), &[]);
        assert_eq!(result, ElectionResult::Unchanged);
        let p = next(&p, change);
        assert_eq!((p.isr.clone(), p.elr.clone()), (vec![1], vec![2]));
        // 3 catches up and joins: back at min ISR, the ELR is cleared.
        let (_, change) = build_elr(&p, &[1, 3], 2, Some(vec![1, 3]), &[]);
        let p = next(&p, change);
        assert_eq!((p.isr.clone(), p.elr.clone()), (vec![1, 3], vec![]));
    }

    /// The leader of an ISR of one dies: the ISR empties and a live ELR member leads at once,
    /// with an ISR of itself.
    #[test]
    fn an_empty_isr_is_led_from_the_elr() {
        let p = with_elr(reg(&[1, 2, 3], &[1], 1), &[2], &[]);
        let (result, change) = build_elr(&p, &[2, 3], 2, Some(vec![]), &[]);
        assert_eq!(result, ElectionResult::Clean(2));
        let p = next(&p, change);
        assert_eq!(
            (p.leader, p.isr.clone(), p.elr.clone()),
            (2, vec![2], vec![1])
        );
        assert!(p.last_known_elr.is_empty());
        // A replica outside the ISR and the ELR (3) is never chosen cleanly.
        let p = with_elr(reg(&[1, 2, 3], &[1], 1), &[2], &[]);
        let (result, change) = build_elr(&p, &[3], 2, Some(vec![]), &[]);
        assert_eq!(result, ElectionResult::NoLeader);
        let p = next(&p, change);
        assert_eq!(state(&p), (NO_LEADER, vec![], vec![1, 2], vec![1]));
        // 2 comes back cleanly and is unfenced: it leads.
        let (result, change) = build_elr(&p, &[2, 3], 2, None, &[]);
        assert_eq!(result, ElectionResult::Clean(2));
        let p = next(&p, change);
        assert_eq!(
            (p.leader, p.isr.clone(), p.elr.clone()),
            (2, vec![2], vec![1])
        );
        assert!(p.last_known_elr.is_empty(), "forgotten once led");
    }

    /// Brokers back from an unclean shutdown leave the ELR; with the ISR and the ELR empty the
    /// last known leader leads again once it is back (not before).
    #[test]
    fn unclean_restarts_leave_the_elr_and_the_last_leader_comes_back() {
        let p = with_elr(reg(&[1, 2, 3], &[], NO_LEADER), &[1, 2], &[1]);
        let (result, change) = build_elr(&p, &[3], 2, Some(vec![]), &[2]);
        assert_eq!(result, ElectionResult::Unchanged);
        let p = next(&p, change);
        assert_eq!(
            (p.elr.clone(), p.last_known_elr.clone()),
            (vec![1], vec![1])
        );
        let (_, change) = build_elr(&p, &[3], 2, Some(vec![]), &[1]);
        let p = next(&p, change);
        assert_eq!((p.elr.clone(), p.last_known_elr.clone()), (vec![], vec![1]));
        // 2 is back (fenced 1 is not): nothing to elect.
        assert_eq!(
            build_elr(&p, &[2, 3], 2, None, &[]),
            (ElectionResult::Unchanged, None)
        );
        // 1 is back: it leads, with an ISR of itself.
        let (result, change) = build_elr(&p, &[1, 2, 3], 2, None, &[]);
        assert_eq!(result, ElectionResult::LastKnownLeader(1));
        let p = next(&p, change);
        assert_eq!(state(&p), (1, vec![1], vec![], vec![]));
    }

    /// With min ISR 1 (the default) the last ISR member becomes the ELR when it goes, and
    /// leads again when it is back, as it did without ELR.
    #[test]
    fn with_min_isr_one_the_last_member_waits_in_the_elr() {
        let p = reg(&[1, 2], &[1], 1);
        let (result, change) = build_elr(&p, &[2], 1, Some(vec![]), &[]);
        assert_eq!(result, ElectionResult::NoLeader);
        let p = next(&p, change);
        assert_eq!(state(&p), (NO_LEADER, vec![], vec![1], vec![1]));
        let (result, change) = build_elr(&p, &[1, 2], 1, None, &[]);
        assert_eq!(result, ElectionResult::Clean(1));
        let p = next(&p, change);
        assert_eq!(
            (p.leader, p.isr.clone(), p.elr.clone()),
            (1, vec![1], vec![])
        );
    }

    /// An unclean election, or ELR turned off, clears the ELR fields.
    #[test]
    fn an_unclean_election_or_elr_off_clears_the_elr() {
        let p = with_elr(reg(&[1, 2, 3], &[], NO_LEADER), &[1], &[2]);
        let alive = [3];
        let ok = |b: i32| alive.contains(&b);
        let (result, change) = PartitionChangeBuilder::new(&p, Uuid::from_u128(1), 0, &ok)
            .set_eligible_leader_replicas(Some(2))
            .set_election(Election::Unclean)
            .build();
        assert_eq!(result, ElectionResult::Unclean(3));
        let n = next(&p, change);
        assert_eq!(
            (n.isr.clone(), n.elr.clone(), n.last_known_elr.clone()),
            (vec![3], vec![], vec![])
        );
        // ELR off: the fields go; without a live ISR member the partition stays leaderless,
        // and an empty ISR stays empty until someone can lead.
        let p = with_elr(reg(&[1, 2, 3], &[2], 2), &[1], &[]);
        let (_, change) = build(&p, &[2, 3], Election::Online, None);
        let n = next(&p, change);
        assert_eq!(
            (n.leader, n.isr.clone(), n.elr.clone()),
            (2, vec![2], vec![])
        );
    }

    fn elr_registration_strategy() -> impl Strategy<Value = PartitionRegistration> {
        (
            registration_strategy(),
            proptest::collection::btree_set(0..6i32, 0..3),
            any::<bool>(),
            any::<prop::sample::Index>(),
        )
            .prop_map(|(mut p, elr, empty_isr, pick)| {
                if empty_isr {
                    p.isr.clear();
                    p.leader = NO_LEADER;
                    let r = p.replicas[pick.index(p.replicas.len())];
                    p.last_known_elr = vec![r];
                }
                p.elr = elr
                    .into_iter()
                    .filter(|b| p.replicas.contains(b) && !p.isr.contains(b))
                    .collect();
                p
            })
    }

    proptest! {
        #[test]
        fn elections_with_elr_keep_the_partition_valid(
            p in elr_registration_strategy(),
            alive in proptest::collection::btree_set(0..6i32, 0..6),
            target_isr in proptest::collection::btree_set(0..6i32, 0..4),
            min_isr in 1..4usize,
            unclean in proptest::collection::btree_set(0..6i32, 0..2),
        ) {
            let unclean: Vec<i32> = unclean.into_iter().collect();
            let alive: Vec<i32> = alive.into_iter().filter(|b| !unclean.contains(b)).collect();
            let target: Vec<i32> = target_isr.into_iter().filter(|b| !unclean.contains(b)).collect();
            let (result, change) = build_elr(&p, &alive, min_isr, Some(target.clone()), &unclean);
            let next = match &change {
                Some(c) => p.merge(c).expect("no overflow"),
                None => p.clone(),
            };
            prop_assert_eq!(next.invalid_reason(), None, "{:?} -> {:?}", p, next);
            if next.leader != NO_LEADER {
                prop_assert!(alive.contains(&next.leader), "leader on a fenced broker");
                prop_assert!(next.isr.contains(&next.leader));
            }
            prop_assert!(next.elr.iter().all(|b| !unclean.contains(b)), "unclean in ELR");
            if change.as_ref().is_some_and(|c| c.eligible_leader_replicas.is_some()) && next.isr.len() >= min_isr {
                prop_assert!(next.elr.is_empty(), "ELR beside a full ISR: {:?}", next);
            }
            match result {
                ElectionResult::Clean(b) => {
                    // From the target ISR, or from the ELR when that is empty.
                    let in_target = target.contains(&b) && p.replicas.contains(&b);
                    prop_assert!(in_target || p.elr.contains(&b) || p.isr.contains(&b));
                }
                ElectionResult::LastKnownLeader(b) => {
                    prop_assert_eq!(&p.last_known_elr, &vec![b]);
                    prop_assert!(next.elr.is_empty());
                }
                ElectionResult::Unclean(_) => prop_assert!(false, "an online election"),
                ElectionResult::NoLeader | ElectionResult::Unchanged => {}
            }
        }
    }

    fn registration_strategy() -> impl Strategy<Value = PartitionRegistration> {
        (proptest::sample::subsequence((0..6).collect::<Vec<i32>>(), 1..=5))
            .prop_shuffle()
            .prop_flat_map(|replicas| {
                let n = replicas.len();
                (
                    Just(replicas.clone()),
                    proptest::sample::subsequence(replicas, 1..=n),
                    any::<prop::sample::Index>(),
                    any::<bool>(),
                )
            })
            .prop_map(|(replicas, isr, pick, leaderless)| {
                let leader = if leaderless {
                    NO_LEADER
                } else {
                    isr[pick.index(isr.len())]
                };
                PartitionRegistration {
                    directories: Default::default(),
                    replicas,
                    isr,
                    leader,
                    leader_epoch: 3,
                    partition_epoch: 7,
                    adding_replicas: vec![],
                    removing_replicas: vec![],
                    elr: vec![],
                    last_known_elr: vec![],
                }
            })
    }

    proptest! {
        #[test]
        fn elections_are_valid_and_stay_in_the_isr_unless_unclean(
            p in registration_strategy(),
            alive in proptest::collection::btree_set(0..6i32, 0..6),
            target_isr in proptest::collection::vec(0..6i32, 0..4),
            election in prop_oneof![Just(Election::Online), Just(Election::Preferred),
                                     Just(Election::Unclean)],
        ) {
            let alive: Vec<i32> = alive.into_iter().collect();
            let mut target: Vec<i32> = Vec::new();
            for b in target_isr {
                if !target.contains(&b) { target.push(b); }
            }
            let (result, change) = build(&p, &alive, election, Some(target.clone()));
            // The ISR the election chose from: the target within the replicas, or the current
            // ISR when that is empty.
            let mut effective: Vec<i32> =
                target.iter().copied().filter(|b| p.replicas.contains(b)).collect();
            if effective.is_empty() {
                effective = p.isr.clone();
            }
            let next = match &change {
                Some(c) => p.merge(c).expect("no overflow"),
                None => p.clone(),
            };
            prop_assert_eq!(next.invalid_reason(), None, "{:?} -> {:?}", p, next);
            if next.leader != NO_LEADER {
                prop_assert!(alive.contains(&next.leader), "leader on a fenced broker");
            }
            match result {
                ElectionResult::Clean(b) => {
                    prop_assert_eq!(next.leader, b);
                    // Chosen from the ISR it was elected with.
                    prop_assert!(next.isr.contains(&b));
                    prop_assert!(effective.contains(&b));
                }
                ElectionResult::Unclean(b) => {
                    prop_assert_eq!(election, Election::Unclean);
                    prop_assert_eq!(&next.isr, &vec![b]);
                    // Only when no ISR member could lead.
                    prop_assert!(!effective.iter().any(|m| alive.contains(m)));
                }
                ElectionResult::LastKnownLeader(_) => prop_assert!(false, "without ELR"),
                ElectionResult::NoLeader => prop_assert_eq!(next.leader, NO_LEADER),
                ElectionResult::Unchanged => {
                    prop_assert_eq!(next.leader, p.leader);
                    if p.leader != NO_LEADER {
                        prop_assert!(effective.contains(&p.leader));
                    }
                }
            }
            if let Some(c) = &change {
                prop_assert!(next.partition_epoch > p.partition_epoch);
                if c.leader.is_some() {
                    prop_assert!(next.leader_epoch > p.leader_epoch);
                    prop_assert_ne!(next.leader, p.leader);
                }
            }
        }
    }
}
