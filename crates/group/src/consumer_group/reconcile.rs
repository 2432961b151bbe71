//! Moving a member from its current assignment towards its target (Kafka's
//! `CurrentAssignmentBuilder`): revocations first, and a partition is given to a member only
//! once no other member owns it any more.
//!
//! ```text
//!  assigned' = assigned ∩ target
//!  revoking  = assigned − assigned'
//!  pending   = target − assigned' − {partitions some member still owns (epoch ≠ -1)}
//!  revoking ≠ ∅ and the member still reports one   → UNREVOKED_PARTITIONS (same epoch)
//!  pending ≠ ∅                                     → assigned' ∪ pending at the target epoch,
//!                                                    STABLE or UNRELEASED_PARTITIONS
//!  some target partition not yet released          → UNRELEASED_PARTITIONS at the target epoch
//!  otherwise                                       → STABLE at the target epoch
//! ```

use super::group::ConsumerGroup;
use super::member::{ConsumerGroupMember, MemberState};
use super::topics::{TopicId, TopicPartitions};

/// The member is in a state this version does not know and still reports partitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MustRejoin;

/// Reconciles `member` towards `target` at `target_epoch`. `owned` is what the member
/// reported in its heartbeat (`None` when it did not say).
pub(crate) fn reconcile(
    member: &ConsumerGroupMember,
    group: &ConsumerGroup,
    target_epoch: i32,
    target: &TopicPartitions,
    owned: Option<&TopicPartitions>,
) -> Result<ConsumerGroupMember, MustRejoin> {
    let next = |epoch: i32| next_assignment(member, group, epoch, target_epoch, target, owned);
    match member.state {
        MemberState::Stable => {
            if member.member_epoch != target_epoch {
                Ok(next(member.member_epoch))
            } else {
                Ok(member.clone())
            }
        }
        MemberState::UnrevokedPartitions => {
            if owns_any(owned, &member.partitions_pending_revocation) {
                Ok(member.clone())
            } else {
                Ok(next(member.member_epoch + 1))
            }
        }
        MemberState::UnreleasedPartitions => Ok(next(member.member_epoch)),
        MemberState::Unknown => {
            if owned.is_none_or(|o| !o.is_empty()) {
                return Err(MustRejoin);
            }
            Ok(next(target_epoch))
        }
    }
}

/// True when `owned` (None: unknown, so assume yes) contains a partition of `revoking`.
fn owns_any(owned: Option<&TopicPartitions>, revoking: &TopicPartitions) -> bool {
    let Some(owned) = owned else { return true };
    owned.iter().any(|(topic, partitions)| {
        revoking
            .get(topic)
            .is_some_and(|r| partitions.iter().any(|p| r.contains(p)))
    })
}

fn next_assignment(
    member: &ConsumerGroupMember,
    group: &ConsumerGroup,
    member_epoch: i32,
    target_epoch: i32,
    target: &TopicPartitions,
    owned: Option<&TopicPartitions>,
) -> ConsumerGroupMember {
    let mut has_unreleased = false;
    let mut assigned = TopicPartitions::new();
    let mut revoking = TopicPartitions::new();
    let mut pending = TopicPartitions::new();
    let topics: std::collections::BTreeSet<TopicId> = target
        .keys()
        .chain(member.assigned_partitions.keys())
        .copied()
        .collect();
    let empty = Default::default();
    for topic in topics {
        let want = target.get(&topic).unwrap_or(&empty);
        let have = member.assigned_partitions.get(&topic).unwrap_or(&empty);
        let keep: std::collections::BTreeSet<i32> = have.intersection(want).copied().collect();
        let revoke: std::collections::BTreeSet<i32> = have.difference(&keep).copied().collect();
        let mut add: std::collections::BTreeSet<i32> = want.difference(&keep).copied().collect();
        let before = add.len();
        add.retain(|p| group.current_partition_epoch(topic, *p) == -1);
        has_unreleased |= add.len() != before;
        if !keep.is_empty() {
            assigned.insert(topic, keep);
        }
        if !revoke.is_empty() {
            revoking.insert(topic, revoke);
        }
        if !add.is_empty() {
            pending.insert(topic, add);
        }
    }
    let mut next = member.clone();
    if !revoking.is_empty() && owns_any(owned, &revoking) {
        next.state = MemberState::UnrevokedPartitions;
        next.update_member_epoch(member_epoch);
        next.assigned_partitions = assigned;
        next.partitions_pending_revocation = revoking;
    } else {
        for (topic, partitions) in pending.iter() {
            assigned
                .entry(*topic)
                .or_default()
                .extend(partitions.iter().copied());
        }
        next.state = if has_unreleased {
            MemberState::UnreleasedPartitions
        } else {
            MemberState::Stable
        };
        next.update_member_epoch(target_epoch);
        next.assigned_partitions = assigned;
        next.partitions_pending_revocation = TopicPartitions::new();
    }
    next
}
