//! Server-side assignors (KIP-848): `uniform` (the default) and `range`, and the target
//! assignment builder that runs them (Kafka's `TargetAssignmentBuilder`).
//!
//! An assignor is a pure function of the group's members (their subscribed topic ids and
//! their previous target), and the topics' partition counts. Everything is ordered (by member
//! id, topic id, partition), so the same inputs always give the same assignment, on every
//! coordinator that replays the group.

use std::collections::{BTreeMap, BTreeSet};

use super::group::ConsumerGroup;
use super::records::ConsumerGroupRecord;
use super::topics::{TopicId, TopicPartitions};

/// The assignors a group may ask for (`group.consumer.assignors`; the first is the default).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AssignorName {
    /// Kafka's `UniformAssignor`: balanced counts, sticky to the previous target.
    Uniform,
    /// Kafka's `RangeAssignor`: per topic, contiguous ranges to the members in id order.
    Range,
}

impl AssignorName {
    pub fn name(self) -> &'static str {
        match self {
            AssignorName::Uniform => "uniform",
            AssignorName::Range => "range",
        }
    }

    pub fn parse(name: &str) -> Option<AssignorName> {
        match name {
            "uniform" => Some(AssignorName::Uniform),
            "range" => Some(AssignorName::Range),
            _ => None,
        }
    }

    /// An entry of `group.consumer.assignors`: a builtin assignor's name, or the class name
    /// Kafka's builtin assignors have (which a Kafka configuration may give instead).
    pub fn from_config(entry: &str) -> Option<AssignorName> {
        match entry.trim() {
            "org.apache.kafka.coordinator.group.assignor.UniformAssignor" => {
                Some(AssignorName::Uniform)
            }
            "org.apache.kafka.coordinator.group.assignor.RangeAssignor" => {
                Some(AssignorName::Range)
            }
            other => AssignorName::parse(other),
        }
    }
}

/// What an assignor sees of one member.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MemberSpec {
    pub subscribed_topics: BTreeSet<TopicId>,
    /// The member's previous target assignment, for stickiness.
    pub previous: TopicPartitions,
}

/// Runs `assignor` over `members` and the subscribed topics' partition counts. Every member
/// gets an entry, possibly empty; every partition of a subscribed topic goes to exactly one
/// member subscribed to it.
pub fn assign(
    assignor: AssignorName,
    members: &BTreeMap<String, MemberSpec>,
    topics: &BTreeMap<TopicId, i32>,
) -> BTreeMap<String, TopicPartitions> {
    match assignor {
        AssignorName::Uniform => uniform(members, topics),
        AssignorName::Range => range(members, topics),
    }
}

fn uniform(
    members: &BTreeMap<String, MemberSpec>,
    topics: &BTreeMap<TopicId, i32>,
) -> BTreeMap<String, TopicPartitions> {
    let mut owner: BTreeMap<(TopicId, i32), &str> = BTreeMap::new();
    let mut counts: BTreeMap<&str, usize> = members.keys().map(|m| (m.as_str(), 0)).collect();
    // 1. Stickiness: keep every previous partition that is still valid.
    for (id, spec) in members {
        for (topic, partitions) in &spec.previous {
            let Some(n) = topics.get(topic) else { continue };
            if !spec.subscribed_topics.contains(topic) {
                continue;
            }
            for p in partitions.iter().filter(|p| **p >= 0 && **p < *n) {
                if let std::collections::btree_map::Entry::Vacant(e) = owner.entry((*topic, *p)) {
                    e.insert(id);
                    *counts.entry(id).or_default() += 1;
                }
            }
        }
    }
    let eligible = |topic: &TopicId| -> Vec<&str> {
        members
            .iter()
            .filter(|(_, s)| s.subscribed_topics.contains(topic))
            .map(|(m, _)| m.as_str())
            .collect()
    };
    // 2. Every partition nobody kept goes to the least loaded member subscribed to it.
    for (topic, n) in topics {
        let candidates = eligible(topic);
        if candidates.is_empty() {
            continue;
        }
        for p in 0..*n {
            if owner.contains_key(&(*topic, p)) {
                continue;
            }
            let Some(best) = least_loaded(&candidates, &counts) else {
                break;
            };
            owner.insert((*topic, p), best);
            *counts.entry(best).or_default() += 1;
        }
    }
    // 3. Balance: move a partition from a member to one with at least two fewer, while
    //    such a move exists. Each move lowers the sum of squared counts, so this ends; in
    //    the common case (everybody subscribes to the same topics) the first partition of
    //    the most loaded member always moves, so it takes one pass over the surplus.
    let eligible_by_topic: BTreeMap<TopicId, Vec<&str>> =
        topics.keys().map(|t| (*t, eligible(t))).collect();
    let mut held: BTreeMap<&str, BTreeSet<(TopicId, i32)>> = BTreeMap::new();
    for (tp, m) in &owner {
        held.entry(*m).or_default().insert(*tp);
    }
    while let Some(min) = counts.values().copied().min() {
        let mut by_load: Vec<&str> = counts.keys().copied().collect();
        by_load.sort_by(|a, b| counts[b].cmp(&counts[a]).then(a.cmp(b)));
        let mut moved = None;
        'search: for from in by_load {
            let from_count = counts[from];
            if from_count <= min + 1 {
                break;
            }
            for (topic, p) in held.get(from).into_iter().flatten().rev() {
                let Some(candidates) = eligible_by_topic.get(topic) else {
                    continue;
                };
                let Some(to) = least_loaded(candidates, &counts) else {
                    continue;
                };
                if counts[to] + 1 < from_count {
                    moved = Some(((*topic, *p), from, to));
                    break 'search;
                }
            }
        }
        let Some((tp, from, to)) = moved else { break };
        owner.insert(tp, to);
        held.entry(from).or_default().remove(&tp);
        held.entry(to).or_default().insert(tp);
        *counts.entry(from).or_default() -= 1;
        *counts.entry(to).or_default() += 1;
    }
    let mut out: BTreeMap<String, TopicPartitions> = members
        .keys()
        .map(|m| (m.clone(), TopicPartitions::new()))
        .collect();
    for ((topic, p), m) in owner {
        if let Some(a) = out.get_mut(m) {
            a.entry(topic).or_default().insert(p);
        }
    }
    out
}

fn least_loaded<'a>(candidates: &[&'a str], counts: &BTreeMap<&'a str, usize>) -> Option<&'a str> {
    candidates.iter().copied().min_by(|a, b| {
        counts
            .get(a)
            .copied()
            .unwrap_or(0)
            .cmp(&counts.get(b).copied().unwrap_or(0))
            .then(a.cmp(b))
    })
}

fn range(
    members: &BTreeMap<String, MemberSpec>,
    topics: &BTreeMap<TopicId, i32>,
) -> BTreeMap<String, TopicPartitions> {
    let mut out: BTreeMap<String, TopicPartitions> = members
        .keys()
        .map(|m| (m.clone(), TopicPartitions::new()))
        .collect();
    for (topic, n) in topics {
        let subscribed: Vec<&String> = members
            .iter()
            .filter(|(_, s)| s.subscribed_topics.contains(topic))
            .map(|(m, _)| m)
            .collect();
        if subscribed.is_empty() || *n <= 0 {
            continue;
        }
        let k = subscribed.len();
        let n = *n as usize;
        let (per, extra) = (n / k, n % k);
        for (i, m) in subscribed.into_iter().enumerate() {
            let start = i * per + i.min(extra);
            let len = per + usize::from(i < extra);
            if len == 0 {
                continue;
            }
            let set: BTreeSet<i32> = (start..start + len).map(|p| p as i32).collect();
            if let Some(a) = out.get_mut(m) {
                a.insert(*topic, set);
            }
        }
    }
    out
}

/// Kafka's regex subscriptions match whole topic names (`re` is compiled anchored,
/// `^(?:...)$`) and never internal topics.
pub(crate) fn regex_subscribes(re: &regex::Regex, topic: &str) -> bool {
    const INTERNAL: [&str; 3] = [
        "__consumer_offsets",
        "__transaction_state",
        "__share_group_state",
    ];
    !INTERNAL.contains(&topic) && re.is_match(topic)
}

/// Computes the group's new target assignment for `group_epoch` from its current members
/// and subscription metadata, and returns it with the records that persist the change:
/// one per member whose target changed (and every member without one), then the new
/// target assignment epoch.
pub(crate) fn build_target_assignment(
    group: &ConsumerGroup,
    group_epoch: i32,
    assignor: AssignorName,
    regexes: &BTreeMap<String, regex::Regex>,
) -> (BTreeMap<String, TopicPartitions>, Vec<ConsumerGroupRecord>) {
    let topics: BTreeMap<TopicId, i32> = group
        .subscription_metadata
        .values()
        .map(|t| (t.id, t.num_partitions))
        .collect();
    let members: BTreeMap<String, MemberSpec> = group
        .members
        .values()
        .map(|m| {
            let mut subscribed_topics: BTreeSet<TopicId> = m
                .subscribed_topic_names
                .iter()
                .filter_map(|name| group.subscription_metadata.get(name).map(|t| t.id))
                .collect();
            // A regex subscribes to the topics of the subscription metadata it matches.
            if let Some(re) = m
                .subscribed_topic_regex
                .as_ref()
                .and_then(|r| regexes.get(r))
            {
                subscribed_topics.extend(
                    group
                        .subscription_metadata
                        .values()
                        .filter(|t| regex_subscribes(re, &t.name))
                        .map(|t| t.id),
                );
            }
            let previous = group
                .target_assignment
                .get(&m.member_id)
                .cloned()
                .unwrap_or_default();
            (
                m.member_id.clone(),
                MemberSpec {
                    subscribed_topics,
                    previous,
                },
            )
        })
        .collect();
    let target = assign(assignor, &members, &topics);
    let mut records = Vec::new();
    for (member_id, partitions) in &target {
        if group.target_assignment.get(member_id) != Some(partitions) {
            records.push(ConsumerGroupRecord::TargetAssignmentMember {
                group_id: group.group_id.clone(),
                member_id: member_id.clone(),
                partitions: Some(partitions.clone()),
            });
        }
    }
    records.push(ConsumerGroupRecord::TargetAssignmentEpoch {
        group_id: group.group_id.clone(),
        epoch: Some(group_epoch),
    });
    (target, records)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(n: u128) -> TopicId {
        TopicId::from_u128(n)
    }

    fn spec(topics: &[u128]) -> MemberSpec {
        MemberSpec {
            subscribed_topics: topics.iter().map(|n| t(*n)).collect(),
            previous: TopicPartitions::new(),
        }
    }

    fn count(a: &TopicPartitions) -> usize {
        a.values().map(BTreeSet::len).sum()
    }

    #[test]
    fn uniform_balances_and_covers_every_partition() {
        let members: BTreeMap<String, MemberSpec> = ["a", "b", "c"]
            .iter()
            .map(|m| (m.to_string(), spec(&[1, 2])))
            .collect();
        let topics = BTreeMap::from([(t(1), 4), (t(2), 3)]);
        let out = assign(AssignorName::Uniform, &members, &topics);
        let counts: Vec<usize> = out.values().map(count).collect();
        assert_eq!(counts.iter().sum::<usize>(), 7);
        let (max, min) = (counts.iter().max(), counts.iter().min());
        assert!(matches!((max, min), (Some(max), Some(min)) if max - min <= 1));
        // Deterministic: the same inputs, the same answer.
        assert_eq!(out, assign(AssignorName::Uniform, &members, &topics));
    }

    #[test]
    fn uniform_is_sticky_when_a_member_joins() {
        let mut members: BTreeMap<String, MemberSpec> = ["a", "b"]
            .iter()
            .map(|m| (m.to_string(), spec(&[1])))
            .collect();
        let topics = BTreeMap::from([(t(1), 6)]);
        let first = assign(AssignorName::Uniform, &members, &topics);
        for (m, spec) in members.iter_mut() {
            spec.previous = first[m].clone();
        }
        members.insert("c".into(), spec(&[1]));
        let second = assign(AssignorName::Uniform, &members, &topics);
        for m in ["a", "b"] {
            let kept = first[m][&t(1)].intersection(&second[m][&t(1)]).count();
            assert_eq!(kept, 2, "{m} keeps two of its three partitions");
        }
        assert_eq!(count(&second["c"]), 2);
    }

    #[test]
    fn uniform_respects_subscriptions() {
        let members =
            BTreeMap::from([("a".to_string(), spec(&[1])), ("b".to_string(), spec(&[2]))]);
        let topics = BTreeMap::from([(t(1), 3), (t(2), 1)]);
        let out = assign(AssignorName::Uniform, &members, &topics);
        assert_eq!(out["a"].keys().collect::<Vec<_>>(), vec![&t(1)]);
        assert_eq!(count(&out["a"]), 3);
        assert_eq!(count(&out["b"]), 1);
    }

    #[test]
    fn range_gives_contiguous_ranges_in_member_order() {
        let members: BTreeMap<String, MemberSpec> = ["a", "b", "c"]
            .iter()
            .map(|m| (m.to_string(), spec(&[1])))
            .collect();
        let topics = BTreeMap::from([(t(1), 7)]);
        let out = assign(AssignorName::Range, &members, &topics);
        let parts = |m: &str| out[m][&t(1)].iter().copied().collect::<Vec<_>>();
        assert_eq!(parts("a"), vec![0, 1, 2]);
        assert_eq!(parts("b"), vec![3, 4]);
        assert_eq!(parts("c"), vec![5, 6]);
    }

    #[test]
    fn uniform_scales_to_large_groups() {
        let members: BTreeMap<String, MemberSpec> = (0..200)
            .map(|i| (format!("m{i:03}"), spec(&[1, 2, 3])))
            .collect();
        let topics = BTreeMap::from([(t(1), 1000), (t(2), 1000), (t(3), 1000)]);
        let out = assign(AssignorName::Uniform, &members, &topics);
        assert!(out.values().all(|a| count(a) == 15));
    }

    #[test]
    fn assignor_names() {
        assert_eq!(AssignorName::parse("uniform"), Some(AssignorName::Uniform));
        assert_eq!(AssignorName::parse("range"), Some(AssignorName::Range));
        assert_eq!(AssignorName::parse("sticky"), None);
    }
}
