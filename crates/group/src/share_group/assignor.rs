//! Kafka's `SimpleAssignor` ("simple", the only share group assignor): spreads the
//! assignable share-partitions of the subscribed topics over the members, balance first,
//! stickiness second. Unlike a consumer group's assignors, a partition may go to several
//! members: with more members than partitions each partition is shared by
//! ceil(members / partitions) of them.
//!
//! ```text
//!  desired sharing  S = ceil(M / P)          (1 while M <= P)
//!  desired count of member i = ceil(S·P·(i+1) / M) − ceil(S·P·i / M)
//!  1. keep each member's current partitions of the topics it still subscribes to
//!  2. revoke from members holding more than their desired count
//!  3. revoke from partitions shared by more than S members
//!  4. give partitions shared by fewer than S members to members below their count
//! ```
//! When all members subscribe to the same topics (Kafka's homogeneous case) this runs once
//! over all partitions; otherwise once per topic, over the members subscribed to it
//! (`SimpleHeterogeneousAssignmentBuilder`: balance is computed per topic and combined).
//! Only assignable partitions count: those whose share state is initialized.

use std::collections::{BTreeMap, BTreeSet};

use crate::consumer_group::{TopicId, TopicPartitions};

/// The assignor's name, as ShareGroupDescribe shows it.
pub const SIMPLE_ASSIGNOR: &str = "simple";

/// One member as the assignor sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AssignorMember {
    pub member_id: String,
    /// The ids of the (existing) topics it subscribes to.
    pub subscribed: BTreeSet<TopicId>,
    /// Its current target assignment.
    pub current: TopicPartitions,
}

/// The new target assignment of every member (members without partitions get an empty
/// one). `assignable`: per topic, the partitions that may be assigned.
pub fn assign(
    members: &[AssignorMember],
    assignable: &BTreeMap<TopicId, BTreeSet<i32>>,
) -> BTreeMap<String, TopicPartitions> {
    let mut out: BTreeMap<String, TopicPartitions> = members
        .iter()
        .map(|m| (m.member_id.clone(), TopicPartitions::new()))
        .collect();
    let Some(first) = members.first() else {
        return out;
    };
    let homogeneous = members.iter().all(|m| m.subscribed == first.subscribed);
    let runs: Vec<(BTreeSet<TopicId>, Vec<usize>)> = if homogeneous {
        vec![(first.subscribed.clone(), (0..members.len()).collect())]
    } else {
        let topics: BTreeSet<TopicId> = members
            .iter()
            .flat_map(|m| m.subscribed.iter().copied())
            .collect();
        topics
            .into_iter()
            .map(|t| {
                let subscribers = (0..members.len())
                    .filter(|&i| members[i].subscribed.contains(&t))
                    .collect();
                (BTreeSet::from([t]), subscribers)
            })
            .collect()
    };
    for (topics, subscribers) in runs {
        let targets: Vec<(TopicId, i32)> = topics
            .iter()
            .flat_map(|t| {
                assignable
                    .get(t)
                    .into_iter()
                    .flat_map(move |ps| ps.iter().map(move |p| (*t, *p)))
            })
            .collect();
        let old: Vec<BTreeSet<(TopicId, i32)>> = subscribers
            .iter()
            .map(|&i| {
                members[i]
                    .current
                    .iter()
                    .filter(|(t, _)| topics.contains(t))
                    .flat_map(|(t, ps)| ps.iter().map(move |p| (*t, *p)))
                    .collect()
            })
            .collect();
        let balanced = balance(&targets, &old);
        for (k, &i) in subscribers.iter().enumerate() {
            let entry = out.entry(members[i].member_id.clone()).or_default();
            for (t, p) in &balanced[k] {
                entry.entry(*t).or_default().insert(*p);
            }
        }
    }
    out
}

/// One run of the homogeneous algorithm: `targets` over members numbered 0..old.len(),
/// `old[i]` being member i's current partitions among them.
fn balance(
    targets: &[(TopicId, i32)],
    old: &[BTreeSet<(TopicId, i32)>],
) -> Vec<BTreeSet<(TopicId, i32)>> {
    let m = old.len();
    let p = targets.len();
    if m == 0 || p == 0 {
        return vec![BTreeSet::new(); m];
    }
    let sharing = m.div_ceil(p);
    // ceil(S·P·i / M) with exact integer arithmetic (Kafka uses doubles).
    let total = sharing * p;
    let desired: Vec<usize> = (0..m)
        .map(|i| (total * (i + 1)).div_ceil(m) - (total * i).div_ceil(m))
        .collect();
    let target_set: BTreeSet<(TopicId, i32)> = targets.iter().copied().collect();

    // 1. Keep what is still assignable.
    let mut by_member: Vec<BTreeSet<(TopicId, i32)>> = old
        .iter()
        .map(|o| o.intersection(&target_set).copied().collect())
        .collect();
    // 2. Revoke from overfilled members.
    for (i, assigned) in by_member.iter_mut().enumerate() {
        while assigned.len() > desired[i] {
            assigned.pop_last();
        }
    }
    let mut by_partition: BTreeMap<(TopicId, i32), BTreeSet<usize>> =
        targets.iter().map(|tp| (*tp, BTreeSet::new())).collect();
    for (i, assigned) in by_member.iter().enumerate() {
        for tp in assigned {
            by_partition.entry(*tp).or_default().insert(i);
        }
    }
    // 3. Revoke over-shared partitions (the members with the most partitions give first).
    for (tp, holders) in by_partition.iter_mut() {
        while holders.len() > sharing {
            let Some(&giver) = holders.iter().max_by_key(|&&i| (by_member[i].len(), i)) else {
                break;
            };
            holders.remove(&giver);
            by_member[giver].remove(tp);
        }
    }
    // 4. Fill under-shared partitions from the members below their desired count, cycling
    //    through them; a partition that none of them can take stays under-shared.
    let mut unfilled: Vec<usize> = (0..m)
        .filter(|&i| by_member[i].len() < desired[i])
        .collect();
    let mut cursor = 0usize;
    for (tp, holders) in by_partition.iter_mut() {
        if unfilled.is_empty() {
            break;
        }
        let mut tried = 0usize;
        while holders.len() < sharing && !unfilled.is_empty() && tried < unfilled.len() {
            cursor %= unfilled.len();
            let i = unfilled[cursor];
            if holders.contains(&i) {
                cursor += 1;
                tried += 1;
                continue;
            }
            holders.insert(i);
            by_member[i].insert(*tp);
            tried = 0;
            if by_member[i].len() >= desired[i] {
                unfilled.remove(cursor);
            } else {
                cursor += 1;
            }
        }
    }
    by_member
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(n: u128) -> TopicId {
        TopicId::from_u128(n)
    }

    fn member(id: &str, topics: &[u128], current: &[(u128, &[i32])]) -> AssignorMember {
        AssignorMember {
            member_id: id.to_string(),
            subscribed: topics.iter().map(|n| t(*n)).collect(),
            current: current
                .iter()
                .map(|(n, ps)| (t(*n), ps.iter().copied().collect()))
                .collect(),
        }
    }

    fn partitions(topic: u128, n: i32) -> BTreeMap<TopicId, BTreeSet<i32>> {
        BTreeMap::from([(t(topic), (0..n).collect())])
    }

    fn count(a: &TopicPartitions) -> usize {
        a.values().map(BTreeSet::len).sum()
    }

    /// How many members hold each partition.
    fn sharing(result: &BTreeMap<String, TopicPartitions>) -> BTreeMap<(TopicId, i32), usize> {
        let mut out = BTreeMap::new();
        for a in result.values() {
            for (topic, ps) in a {
                for p in ps {
                    *out.entry((*topic, *p)).or_insert(0) += 1;
                }
            }
        }
        out
    }

    #[test]
    fn fewer_members_than_partitions_split_them() {
        let members = vec![member("a", &[1], &[]), member("b", &[1], &[])];
        let result = assign(&members, &partitions(1, 5));
        let counts: Vec<usize> = result.values().map(count).collect();
        assert_eq!(counts.iter().sum::<usize>(), 5);
        assert!(counts.iter().all(|&c| c == 2 || c == 3), "{counts:?}");
        assert!(sharing(&result).values().all(|&s| s == 1));
    }

    #[test]
    fn more_members_than_partitions_share_them() {
        // 5 members, 2 partitions: each partition shared by 3, 6 assignments in all.
        let members: Vec<AssignorMember> = ["a", "b", "c", "d", "e"]
            .iter()
            .map(|id| member(id, &[1], &[]))
            .collect();
        let result = assign(&members, &partitions(1, 2));
        assert!(result.values().all(|a| count(a) >= 1), "{result:?}");
        let shares = sharing(&result);
        assert_eq!(shares.len(), 2);
        assert!(shares.values().all(|&s| s == 3), "{shares:?}");
        // A single partition goes to every member.
        let result = assign(&members, &partitions(1, 1));
        assert!(result.values().all(|a| count(a) == 1));
    }

    #[test]
    fn assignment_is_sticky() {
        let members = vec![
            member("a", &[1], &[(1, &[0, 1])]),
            member("b", &[1], &[(1, &[2, 3])]),
        ];
        let result = assign(&members, &partitions(1, 4));
        assert_eq!(result["a"], members[0].current);
        assert_eq!(result["b"], members[1].current);
        // A third member takes one partition from one of them, the rest stays.
        let mut three = members.clone();
        three.push(member("c", &[1], &[]));
        let result = assign(&three, &partitions(1, 4));
        assert_eq!(count(&result["c"]), 1);
        let kept: usize = ["a", "b"]
            .iter()
            .map(|id| {
                result[*id][&t(1)]
                    .intersection(
                        &three
                            .iter()
                            .find(|m| m.member_id == *id)
                            .expect("m")
                            .current[&t(1)],
                    )
                    .count()
            })
            .sum();
        assert_eq!(kept, 3);
        assert!(sharing(&result).values().all(|&s| s == 1));
    }

    #[test]
    fn unsubscribed_and_unassignable_partitions_are_dropped() {
        let members = vec![member("a", &[1], &[(1, &[0, 7]), (2, &[0])])];
        let result = assign(&members, &partitions(1, 2));
        assert_eq!(
            result["a"],
            TopicPartitions::from([(t(1), BTreeSet::from([0, 1]))])
        );
        // Nothing assignable: nothing assigned.
        let result = assign(&members, &BTreeMap::new());
        assert!(result["a"].is_empty());
    }

    #[test]
    fn heterogeneous_subscriptions_balance_each_topic() {
        let members = vec![
            member("a", &[1], &[]),
            member("b", &[2], &[]),
            member("c", &[1, 2], &[]),
        ];
        let mut assignable = partitions(1, 4);
        assignable.extend(partitions(2, 2));
        let result = assign(&members, &assignable);
        assert!(!result["a"].contains_key(&t(2)));
        assert!(!result["b"].contains_key(&t(1)));
        assert_eq!(result["a"][&t(1)].len(), 2);
        assert_eq!(result["c"][&t(1)].len(), 2);
        assert_eq!(result["b"][&t(2)].len(), 1);
        assert_eq!(result["c"][&t(2)].len(), 1);
        assert!(sharing(&result).values().all(|&s| s == 1));
    }

    proptest::proptest! {
        /// From any current assignment: every assignable partition of a subscribed topic goes
        /// to at least one subscriber and to no more than ceil(subscribers / partitions) of
        /// them; nobody gets a partition it does not subscribe to or that is not assignable.
        #[test]
        fn invariants_hold_from_any_start(
            subs in proptest::collection::vec(proptest::collection::btree_set(1u128..4, 0..3), 1..7),
            counts in proptest::collection::vec(0i32..6, 3),
            current in proptest::collection::vec(
                proptest::collection::vec((1u128..4, 0i32..8), 0..6), 7),
        ) {
            let members: Vec<AssignorMember> = subs
                .iter()
                .enumerate()
                .map(|(i, topics)| {
                    let mut cur = TopicPartitions::new();
                    for (topic, p) in &current[i] {
                        cur.entry(t(*topic)).or_default().insert(*p);
                    }
                    AssignorMember {
                        member_id: format!("m{i}"),
                        subscribed: topics.iter().map(|n| t(*n)).collect(),
                        current: cur,
                    }
                })
                .collect();
            let assignable: BTreeMap<TopicId, BTreeSet<i32>> = (1u128..4)
                .zip(counts.iter())
                .filter(|(_, n)| **n > 0)
                .map(|(topic, n)| (t(topic), (0..*n).collect()))
                .collect();
            let result = assign(&members, &assignable);
            proptest::prop_assert_eq!(result.len(), members.len());
            let shares = sharing(&result);
            for m in &members {
                for (topic, ps) in &result[&m.member_id] {
                    proptest::prop_assert!(m.subscribed.contains(topic));
                    for p in ps {
                        proptest::prop_assert!(assignable.get(topic).is_some_and(|a| a.contains(p)));
                    }
                }
            }
            let homogeneous = members.iter().all(|m| m.subscribed == members[0].subscribed);
            for (topic, ps) in &assignable {
                let subscribers = members.iter().filter(|m| m.subscribed.contains(topic)).count();
                if subscribers == 0 {
                    continue;
                }
                let total: usize = if homogeneous {
                    members[0]
                        .subscribed
                        .iter()
                        .map(|t| assignable.get(t).map_or(0, BTreeSet::len))
                        .sum()
                } else {
                    ps.len()
                };
                let max = subscribers.div_ceil(total);
                for p in ps {
                    let held = shares.get(&(*topic, *p)).copied().unwrap_or(0);
                    proptest::prop_assert!(held >= 1, "{:?}-{} unassigned", topic, p);
                    proptest::prop_assert!(held <= max, "{:?}-{} held by {} > {}", topic, p, held, max);
                }
            }
        }
    }

    #[test]
    fn every_partition_is_assigned_and_counts_differ_by_at_most_one() {
        for m in 1..9usize {
            for p in 1..9i32 {
                let members: Vec<AssignorMember> = (0..m)
                    .map(|i| member(&format!("m{i}"), &[1], &[]))
                    .collect();
                let result = assign(&members, &partitions(1, p));
                let shares = sharing(&result);
                assert_eq!(shares.len(), p as usize, "m={m} p={p}");
                let s = m.div_ceil(p as usize);
                assert!(shares.values().all(|&x| x == s), "m={m} p={p} {shares:?}");
                let counts: Vec<usize> = result.values().map(count).collect();
                let (lo, hi) = (counts.iter().min(), counts.iter().max());
                assert!(
                    hi.zip(lo).is_some_and(|(h, l)| h - l <= 1),
                    "m={m} p={p} {counts:?}"
                );
            }
        }
    }
}
