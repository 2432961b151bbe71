//! Moving a member from its current tasks towards its target (Kafka's streams
//! `CurrentAssignmentBuilder`): revocations first, and a task is given to a member only once
//! no other process holds it in a way that conflicts.
//!
//! ```text
//!  per role:  keep = current ∩ target    revoke = current − keep    add = target − keep
//!             an active task is unreleased while some process holds it active, or this
//!             member's process holds it as standby or warm-up; a standby or warm-up task while
//!             this member's process holds it in any role
//!  revoke ≠ ∅ and the member may still hold one     → UNREVOKED_TASKS (same epoch)
//!  add (released) ≠ ∅                               → keep ∪ add at the target epoch,
//!                                                     STABLE or UNRELEASED_TASKS
//!  some task unreleased                             → UNRELEASED_TASKS at the target epoch
//!  otherwise                                        → STABLE at the target epoch
//! ```
//! Active tasks keep the epoch at which they were assigned; new ones get the target epoch.

use std::collections::{BTreeMap, BTreeSet};

use super::group::StreamsGroup;
use super::member::{MemberState, StreamsGroupMember, TasksWithEpochs};
use super::records::TaskEpochs;
use super::tasks::{TaskMap, Tasks};

/// The member is in a state this version does not know and (maybe) still holds tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct MustRejoin;

/// Reconciles `member` towards `target` at `target_epoch`. `owned` is what the member
/// reported in its heartbeat (`None` unless it sent all three lists).
pub(crate) fn reconcile(
    member: &StreamsGroupMember,
    group: &StreamsGroup,
    target_epoch: i32,
    target: &Tasks,
    owned: Option<&Tasks>,
) -> Result<StreamsGroupMember, MustRejoin> {
    if member.is_reconciled_to(target_epoch) {
        return Ok(member.clone());
    }
    let next = |epoch: i32| next_assignment(member, group, epoch, target_epoch, target, owned);
    match member.state {
        MemberState::Stable => {
            if member.member_epoch != target_epoch {
                Ok(next(member.member_epoch))
            } else {
                Ok(member.clone())
            }
        }
        MemberState::UnrevokedTasks => {
            if holds_any(owned, &member.pending_revocation.tasks()) {
                Ok(member.clone())
            } else {
                Ok(next(member.member_epoch + 1))
            }
        }
        MemberState::UnreleasedTasks => Ok(next(member.member_epoch)),
        MemberState::Unknown => {
            if owned.is_none_or(|o| !o.is_empty()) {
                return Err(MustRejoin);
            }
            Ok(next(target_epoch))
        }
    }
}

/// True when `owned` (None: unknown, so assume yes) holds one of `tasks`, in the same role.
fn holds_any(owned: Option<&Tasks>, tasks: &Tasks) -> bool {
    let Some(owned) = owned else { return true };
    let overlap = |a: &TaskMap, b: &TaskMap| {
        a.iter().any(|(id, partitions)| {
            b.get(id)
                .is_some_and(|other| partitions.iter().any(|p| other.contains(p)))
        })
    };
    overlap(&owned.active, &tasks.active)
        || overlap(&owned.standby, &tasks.standby)
        || overlap(&owned.warmup, &tasks.warmup)
}

/// (keep, revoke, add) of one role, per subtopology.
fn split(current: &TaskMap, target: &TaskMap) -> (TaskMap, TaskMap, TaskMap) {
    let mut keep = TaskMap::new();
    let mut revoke = TaskMap::new();
    let mut add = TaskMap::new();
    let ids: BTreeSet<&String> = current.keys().chain(target.keys()).collect();
    let empty = BTreeSet::new();
    for id in ids {
        let have = current.get(id).unwrap_or(&empty);
        let want = target.get(id).unwrap_or(&empty);
        let k: BTreeSet<i32> = have.intersection(want).copied().collect();
        let r: BTreeSet<i32> = have.difference(&k).copied().collect();
        let a: BTreeSet<i32> = want.difference(&k).copied().collect();
        for (map, set) in [(&mut keep, k), (&mut revoke, r), (&mut add, a)] {
            if !set.is_empty() {
                map.insert(id.clone(), set);
            }
        }
    }
    (keep, revoke, add)
}

fn next_assignment(
    member: &StreamsGroupMember,
    group: &StreamsGroup,
    member_epoch: i32,
    target_epoch: i32,
    target: &Tasks,
    owned: Option<&Tasks>,
) -> StreamsGroupMember {
    let current = member.assigned.tasks();
    let process = &member.process_id;
    let held_as = |owners: &BTreeMap<(String, i32), BTreeSet<String>>, id: &str, p: i32| {
        owners
            .get(&(id.to_string(), p))
            .is_some_and(|set| set.contains(process))
    };
    let active_elsewhere = |id: &str, p: i32| group.active_owner.contains_key(&(id.to_string(), p));
    let active_here =
        |id: &str, p: i32| group.active_owner.get(&(id.to_string(), p)) == Some(process);
    let mut has_unreleased = false;

    let (keep_active, revoke_active, mut add_active) = split(&current.active, &target.active);
    for (id, partitions) in add_active.iter_mut() {
        let before = partitions.len();
        partitions.retain(|&p| {
            !(active_elsewhere(id, p)
                || held_as(&group.standby_owners, id, p)
                || held_as(&group.warmup_owners, id, p))
        });
        has_unreleased |= partitions.len() != before;
    }
    let (keep_standby, revoke_standby, mut add_standby) = split(&current.standby, &target.standby);
    let (keep_warmup, revoke_warmup, mut add_warmup) = split(&current.warmup, &target.warmup);
    for map in [&mut add_standby, &mut add_warmup] {
        for (id, partitions) in map.iter_mut() {
            let before = partitions.len();
            partitions.retain(|&p| {
                !(active_here(id, p)
                    || held_as(&group.standby_owners, id, p)
                    || held_as(&group.warmup_owners, id, p))
            });
            has_unreleased |= partitions.len() != before;
        }
    }
    for map in [&mut add_active, &mut add_standby, &mut add_warmup] {
        map.retain(|_, partitions| !partitions.is_empty());
    }

    // Active tasks keep their assignment epochs.
    let with_epochs = |tasks: &TaskMap| -> TaskEpochs {
        tasks
            .iter()
            .map(|(id, partitions)| {
                let epochs = member.assigned.active.get(id);
                (
                    id.clone(),
                    partitions
                        .iter()
                        .map(|p| {
                            let epoch = epochs
                                .and_then(|e| e.get(p))
                                .copied()
                                .unwrap_or(target_epoch);
                            (*p, epoch)
                        })
                        .collect(),
                )
            })
            .collect()
    };
    let revoking = Tasks {
        active: revoke_active,
        standby: revoke_standby,
        warmup: revoke_warmup,
    };
    let mut next = member.clone();
    if !revoking.is_empty() && holds_any(owned, &revoking) {
        next.state = MemberState::UnrevokedTasks;
        next.update_member_epoch(member_epoch);
        next.assigned = TasksWithEpochs {
            active: with_epochs(&keep_active),
            standby: keep_standby,
            warmup: keep_warmup,
        };
        next.pending_revocation = TasksWithEpochs {
            active: with_epochs(&revoking.active),
            standby: revoking.standby,
            warmup: revoking.warmup,
        };
        return next;
    }
    let mut active = with_epochs(&keep_active);
    for (id, partitions) in &add_active {
        let entry = active.entry(id.clone()).or_default();
        for p in partitions {
            entry.insert(*p, target_epoch);
        }
    }
    let union = |mut a: TaskMap, b: &TaskMap| {
        for (id, partitions) in b {
            a.entry(id.clone()).or_default().extend(partitions);
        }
        a
    };
    next.state = if has_unreleased {
        MemberState::UnreleasedTasks
    } else {
        MemberState::Stable
    };
    next.update_member_epoch(target_epoch);
    next.assigned = TasksWithEpochs {
        active,
        standby: union(keep_standby, &add_standby),
        warmup: union(keep_warmup, &add_warmup),
    };
    next.pending_revocation = TasksWithEpochs::default();
    next
}
