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
//!   else, if unclean election is allowed: first acceptable replica ──► unclean election,
//!                                                           ISR becomes [it]
//!   else                                                 ──► NO_LEADER (ISR kept)
//! ```
//!
//! Before electing, a reassignment completes if every replica it adds is in the target ISR:
//! the replicas it removes leave the replica list and the ISR (so a removed leader is replaced
//! here). A replica still being added is never chosen, not even by an unclean election.
//!
//! Replaying the record sets the leader in a new leader epoch and bumps the partition epoch
//! ([`PartitionRegistration`]), so epochs only ever grow. The builder emits nothing when nothing
//! would change, and never a change that leaves the ISR empty.

use uuid::Uuid;

use crate::image::PartitionRegistration;
use crate::records::{BrokerId, PartitionChangeRecord, NO_LEADER};

/// How many of `records` elect a leader from outside the partition's ISR in `image`: unclean
/// elections (Kafka's `UncleanLeaderElectionsPerSec`). A clean election, or a change of a
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
                    .is_some_and(|p| !p.isr.contains(&leader)),
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
        }
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

    fn elect(&self, isr: &[BrokerId]) -> ElectionResult {
        let acceptable = |b: BrokerId| b != NO_LEADER && (self.is_acceptable_leader)(b);
        let valid = |b: BrokerId| acceptable(b) && isr.contains(&b);
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
    /// The result is always a valid registration: if the targets would leave the ISR empty
    /// (every ISR member dropped with the replicas), nothing changes.
    pub fn build(mut self) -> (ElectionResult, Option<PartitionChangeRecord>) {
        let mut isr: Vec<BrokerId> = self
            .target_isr
            .iter()
            .copied()
            .filter(|b| self.target_replicas.contains(b))
            .collect();
        if isr.is_empty() {
            isr = self
                .partition
                .isr
                .iter()
                .copied()
                .filter(|b| self.target_replicas.contains(b))
                .collect();
        }
        if isr.is_empty() {
            return (ElectionResult::Unchanged, None);
        }
        self.complete_reassignment_if_needed(&mut isr);
        let result = self.elect(&isr);
        let leader = match result {
            ElectionResult::Unchanged => self.partition.leader,
            ElectionResult::Clean(b) => b,
            ElectionResult::Unclean(b) => {
                isr = vec![b];
                b
            }
            ElectionResult::NoLeader => NO_LEADER,
        };
        let change = PartitionChangeRecord {
            topic_id: self.topic_id,
            partition_id: self.partition_id,
            leader: (leader != self.partition.leader).then_some(leader),
            isr: (isr != self.partition.isr).then_some(isr),
            replicas: (self.target_replicas != self.partition.replicas)
                .then(|| self.target_replicas.clone()),
            adding_replicas: (self.target_adding != self.partition.adding_replicas)
                .then(|| self.target_adding.clone()),
            removing_replicas: (self.target_removing != self.partition.removing_replicas)
                .then(|| self.target_removing.clone()),
        };
        let changed = change.leader.is_some()
            || change.isr.is_some()
            || change.replicas.is_some()
            || change.adding_replicas.is_some()
            || change.removing_replicas.is_some();
        (result, changed.then_some(change))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn reg(replicas: &[i32], isr: &[i32], leader: i32) -> PartitionRegistration {
        PartitionRegistration {
            replicas: replicas.to_vec(),
            isr: isr.to_vec(),
            leader,
            leader_epoch: 4,
            partition_epoch: 9,
            adding_replicas: vec![],
            removing_replicas: vec![],
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
                    replicas,
                    isr,
                    leader,
                    leader_epoch: 3,
                    partition_epoch: 7,
                    adding_replicas: vec![],
                    removing_replicas: vec![],
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
