//! The consumer protocol (protocol type `consumer`) in plain types, and the client-side partition
//! assignors the group leader runs between JoinGroup and SyncGroup. No I/O here.
//!
//! ```text
//! JoinGroup(metadata = Subscription{topics}) ─► leader gets every member's Subscription
//! leader: assign(members, partition counts) ─► SyncGroup(Assignment per member)
//! every member: SyncGroup response ─► decode Assignment ─► fetch its partitions
//! ```
//! On the wire both are `[version: i16][body at that version]` (versions 0–3); a newer version
//! than we know is read at our highest, as Kafka does, since fields are only ever appended.

use crate::error::{ClientError, Result};
use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition as AssignedTopic;
use kafka_protocol::messages::{
    ConsumerProtocolAssignment, ConsumerProtocolSubscription, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use std::collections::{BTreeMap, BTreeSet};

/// Highest consumer protocol version this client writes and reads.
const CONSUMER_PROTOCOL_VERSION: i16 = 3;

/// A partition assignment strategy, as named in JoinGroup's protocol list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Assignor {
    /// `range`: per topic, contiguous partition ranges to members sorted by id.
    Range,
    /// `roundrobin`: all partitions, sorted, dealt out to members in turn.
    RoundRobin,
}

impl Assignor {
    /// The protocol name sent in JoinGroup.
    pub fn name(self) -> &'static str {
        match self {
            Assignor::Range => "range",
            Assignor::RoundRobin => "roundrobin",
        }
    }

    /// Looks an assignor up by its protocol name.
    pub fn from_name(name: &str) -> Option<Assignor> {
        match name {
            "range" => Some(Assignor::Range),
            "roundrobin" => Some(Assignor::RoundRobin),
            _ => None,
        }
    }

    /// Assigns the partitions of the subscribed topics. `members` maps member id to its
    /// subscribed topics; `partitions` maps topic to partition count (topics missing there are
    /// skipped). Every member appears in the result, possibly with nothing.
    pub fn assign(
        self,
        members: &BTreeMap<String, Vec<String>>,
        partitions: &BTreeMap<String, i32>,
    ) -> BTreeMap<String, BTreeMap<String, Vec<i32>>> {
        let mut out: BTreeMap<String, BTreeMap<String, Vec<i32>>> = members
            .keys()
            .map(|m| (m.clone(), BTreeMap::new()))
            .collect();
        // Topic -> subscribed members, sorted by member id (BTreeMap order).
        let mut subscribers: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
        for (m, topics) in members {
            let unique: BTreeSet<&str> = topics.iter().map(String::as_str).collect();
            for t in unique {
                subscribers.entry(t).or_default().push(m);
            }
        }
        match self {
            Assignor::Range => {
                for (topic, subs) in &subscribers {
                    let Some(&n) = partitions.get(*topic) else {
                        continue;
                    };
                    let n = n.max(0);
                    let m = subs.len() as i32;
                    let (per, extra) = (n / m, n % m);
                    let mut next = 0;
                    for (i, member) in subs.iter().enumerate() {
                        let count = per + i32::from((i as i32) < extra);
                        let ps: Vec<i32> = (next..next + count).collect();
                        next += count;
                        if !ps.is_empty() {
                            if let Some(a) = out.get_mut(*member) {
                                a.insert((*topic).to_owned(), ps);
                            }
                        }
                    }
                }
            }
            Assignor::RoundRobin => {
                let all: Vec<&str> = members.keys().map(String::as_str).collect();
                let mut turn = 0usize;
                for (topic, subs) in &subscribers {
                    let Some(&n) = partitions.get(*topic) else {
                        continue;
                    };
                    for p in 0..n.max(0) {
                        // Walk the ring of all members until one subscribes to this topic.
                        for _ in 0..all.len() {
                            let m = all[turn % all.len()];
                            turn += 1;
                            if subs.contains(&m) {
                                if let Some(a) = out.get_mut(m) {
                                    a.entry((*topic).to_owned()).or_default().push(p);
                                }
                                break;
                            }
                        }
                    }
                }
            }
        }
        out
    }
}

/// Encodes a member's subscription (JoinGroup protocol metadata).
pub fn encode_subscription(
    topics: &[String],
    assignor_owned: &BTreeMap<String, Vec<i32>>,
) -> Result<Bytes> {
    let mut s = ConsumerProtocolSubscription::default();
    s.topics = topics
        .iter()
        .map(|t| StrBytes::from_string(t.clone()))
        .collect();
    s.owned_partitions = assignor_owned
        .iter()
        .map(|(t, ps)| {
            kafka_protocol::messages::consumer_protocol_subscription::TopicPartition::default()
                .with_topic(TopicName(StrBytes::from_string(t.clone())))
                .with_partitions(ps.clone())
        })
        .collect();
    s.generation_id = -1;
    versioned(&s)
}

/// Decodes a subscription; returns the subscribed topics.
pub fn decode_subscription(bytes: &[u8]) -> Result<Vec<String>> {
    let s: ConsumerProtocolSubscription = unversioned(bytes, "subscription")?;
    Ok(s.topics.iter().map(|t| t.to_string()).collect())
}

/// Encodes an assignment (SyncGroup payload for one member).
pub fn encode_assignment(assigned: &BTreeMap<String, Vec<i32>>) -> Result<Bytes> {
    let mut a = ConsumerProtocolAssignment::default();
    a.assigned_partitions = assigned
        .iter()
        .map(|(t, ps)| {
            AssignedTopic::default()
                .with_topic(TopicName(StrBytes::from_string(t.clone())))
                .with_partitions(ps.clone())
        })
        .collect();
    versioned(&a)
}

/// Decodes an assignment; an empty payload (a member that got nothing) is an empty map.
pub fn decode_assignment(bytes: &[u8]) -> Result<BTreeMap<String, Vec<i32>>> {
    if bytes.is_empty() {
        return Ok(BTreeMap::new());
    }
    let a: ConsumerProtocolAssignment = unversioned(bytes, "assignment")?;
    let mut out: BTreeMap<String, Vec<i32>> = BTreeMap::new();
    for t in a.assigned_partitions {
        let e = out.entry(t.topic.0.to_string()).or_default();
        e.extend(t.partitions);
        e.sort_unstable();
        e.dedup();
    }
    Ok(out)
}

fn versioned<M: Encodable>(m: &M) -> Result<Bytes> {
    let mut buf = BytesMut::new();
    buf.put_i16(CONSUMER_PROTOCOL_VERSION);
    m.encode(&mut buf, CONSUMER_PROTOCOL_VERSION)
        .map_err(|e| ClientError::Encode(e.to_string()))?;
    Ok(buf.freeze())
}

fn unversioned<M: Decodable>(bytes: &[u8], what: &str) -> Result<M> {
    let bad = |message: String| ClientError::Decode {
        addr: String::new(),
        message: format!("consumer protocol {what}: {message}"),
    };
    if bytes.len() < 2 {
        return Err(bad(format!("{} bytes, too short", bytes.len())));
    }
    let mut buf = Bytes::copy_from_slice(bytes);
    let version = buf.get_i16();
    if version < 0 {
        return Err(bad(format!("negative version {version}")));
    }
    M::decode(&mut buf, version.min(CONSUMER_PROTOCOL_VERSION)).map_err(|e| bad(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members(list: &[(&str, &[&str])]) -> BTreeMap<String, Vec<String>> {
        list.iter()
            .map(|(m, ts)| (m.to_string(), ts.iter().map(|t| t.to_string()).collect()))
            .collect()
    }

    fn counts(list: &[(&str, i32)]) -> BTreeMap<String, i32> {
        list.iter().map(|(t, n)| (t.to_string(), *n)).collect()
    }

    #[test]
    fn range_gives_contiguous_ranges_extra_to_the_first() {
        let m = members(&[("b", &["t"]), ("a", &["t"]), ("c", &["t", "u"])]);
        let a = Assignor::Range.assign(&m, &counts(&[("t", 5), ("u", 2)]));
        assert_eq!(a["a"]["t"], vec![0, 1]);
        assert_eq!(a["b"]["t"], vec![2, 3]);
        assert_eq!(a["c"]["t"], vec![4]);
        assert_eq!(a["c"]["u"], vec![0, 1]);
        assert!(!a["a"].contains_key("u"));
    }

    #[test]
    fn range_with_more_members_than_partitions_leaves_some_empty() {
        let m = members(&[("a", &["t"]), ("b", &["t"]), ("c", &["t"])]);
        let a = Assignor::Range.assign(&m, &counts(&[("t", 2)]));
        assert_eq!(a["a"]["t"], vec![0]);
        assert_eq!(a["b"]["t"], vec![1]);
        assert!(a["c"].is_empty());
    }

    #[test]
    fn roundrobin_deals_partitions_in_turn_skipping_non_subscribers() {
        let m = members(&[("a", &["t", "u"]), ("b", &["t"])]);
        let a = Assignor::RoundRobin.assign(&m, &counts(&[("t", 3), ("u", 2)]));
        assert_eq!(a["a"]["t"], vec![0, 2]);
        assert_eq!(a["b"]["t"], vec![1]);
        assert_eq!(a["a"]["u"], vec![0, 1]);
        let total: usize = a.values().flat_map(|m| m.values()).map(Vec::len).sum();
        assert_eq!(total, 5);
    }

    #[test]
    fn unknown_topics_are_skipped() {
        let m = members(&[("a", &["missing"])]);
        let a = Assignor::Range.assign(&m, &BTreeMap::new());
        assert!(a["a"].is_empty());
        assert_eq!(Assignor::from_name("range"), Some(Assignor::Range));
        assert_eq!(
            Assignor::from_name(Assignor::RoundRobin.name()),
            Some(Assignor::RoundRobin)
        );
        assert_eq!(Assignor::from_name("sticky"), None);
    }

    #[test]
    fn subscription_and_assignment_round_trip() {
        let topics = vec!["t".to_owned(), "u".to_owned()];
        let bytes = encode_subscription(&topics, &BTreeMap::new()).expect("encode");
        assert_eq!(&bytes[..2], &[0, 3]);
        assert_eq!(decode_subscription(&bytes).expect("decode"), topics);

        let mut assigned = BTreeMap::new();
        assigned.insert("t".to_owned(), vec![0, 2]);
        let bytes = encode_assignment(&assigned).expect("encode");
        assert_eq!(decode_assignment(&bytes).expect("decode"), assigned);
        assert!(decode_assignment(&[]).expect("empty").is_empty());
    }

    #[test]
    fn version_0_payloads_from_older_clients_decode() {
        // v0 subscription written by hand: version, topics[1] = "t", user_data = null.
        let mut b = BytesMut::new();
        b.put_i16(0);
        b.put_i32(1);
        b.put_i16(1);
        b.put_slice(b"t");
        b.put_i32(-1);
        assert_eq!(decode_subscription(&b).expect("v0"), vec!["t".to_owned()]);
        assert!(decode_subscription(&[0]).is_err());
        assert!(decode_assignment(&[0, 0, 0]).is_err());
    }
}
