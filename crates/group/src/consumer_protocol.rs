//! The "consumer" embedded protocol: which topics a group subscribes to, and, for classic
//! members inside a KIP-848 consumer group, the whole subscription (owned partitions, rack)
//! and the assignment the coordinator hands out in SyncGroup.
//!
//! Members of a `protocol_type = "consumer"` group put a `ConsumerProtocolSubscription` in their
//! protocol metadata: `version: int16, topics: [string], user_data: nullable bytes, ...` (later
//! versions append owned partitions, generation id and rack id, which we do not need). The
//! coordinator reads the topic list to refuse OffsetDelete on subscribed topics
//! (GROUP_SUBSCRIBED_TO_TOPIC) and to expire offsets of topics a Stable group no longer reads.
//! These bytes come from clients, so decoding returns errors and never panics.

use std::collections::BTreeSet;

use crate::error::DecodeError;
use gregor_share::wire::Reader;

/// The `protocol_type` whose metadata is a `ConsumerProtocolSubscription`.
pub const CONSUMER_PROTOCOL_TYPE: &str = "consumer";

/// Decodes the topic list of a `ConsumerProtocolSubscription` (any version; the topics come
/// right after the version in all of them).
pub fn decode_subscription_topics(metadata: &[u8]) -> Result<Vec<String>, DecodeError> {
    let mut r = Reader::new(metadata);
    let version = r.i16("subscription version")?;
    if version < 0 {
        return Err(DecodeError::UnsupportedVersion {
            what: "ConsumerProtocolSubscription",
            version,
        });
    }
    let count = r.i32("topic count")?;
    if count < 0 {
        return Err(DecodeError::NegativeLength {
            what: "subscription topics",
            len: count,
        });
    }
    // Don't trust `count` for the allocation: each topic takes at least 2 bytes.
    let mut topics = Vec::with_capacity((count as usize).min(metadata.len() / 2));
    for _ in 0..count {
        topics.push(r.string("subscription topic")?);
    }
    Ok(topics)
}

/// A whole `ConsumerProtocolSubscription` (v0–v3; later versions only add fields).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConsumerSubscription {
    pub version: i16,
    pub topics: Vec<String>,
    /// v1+: the partitions the member owns (by topic name).
    pub owned_partitions: Vec<(String, Vec<i32>)>,
    /// v3+.
    pub rack_id: Option<String>,
}

/// Decodes a `ConsumerProtocolSubscription`; fields a version lacks are empty.
pub fn decode_subscription(metadata: &[u8]) -> Result<ConsumerSubscription, DecodeError> {
    let mut r = Reader::new(metadata);
    let version = r.i16("subscription version")?;
    if version < 0 {
        return Err(DecodeError::UnsupportedVersion {
            what: "ConsumerProtocolSubscription",
            version,
        });
    }
    let topics = read_strings(&mut r, metadata.len(), "subscription topics")?;
    r.bytes("subscription user data")?;
    let mut owned_partitions = Vec::new();
    if version >= 1 {
        owned_partitions = read_topic_partitions(&mut r, metadata.len(), "owned partitions")?;
    }
    let mut rack_id = None;
    if version >= 2 {
        r.i32("subscription generation")?;
    }
    if version >= 3 {
        rack_id = r.nullable_string("subscription rack")?;
    }
    Ok(ConsumerSubscription {
        version,
        topics,
        owned_partitions,
        rack_id,
    })
}

/// Decodes the partitions of a `ConsumerProtocolAssignment` (any version).
pub fn decode_assignment(assignment: &[u8]) -> Result<Vec<(String, Vec<i32>)>, DecodeError> {
    if assignment.is_empty() {
        return Ok(Vec::new());
    }
    let mut r = Reader::new(assignment);
    let version = r.i16("assignment version")?;
    if version < 0 {
        return Err(DecodeError::UnsupportedVersion {
            what: "ConsumerProtocolAssignment",
            version,
        });
    }
    read_topic_partitions(&mut r, assignment.len(), "assigned partitions")
}

/// Encodes a `ConsumerProtocolAssignment` of `version` (capped at 3, the highest Kafka 4.x
/// knows; all versions share this layout) without user data.
pub fn encode_assignment(version: i16, partitions: &[(String, Vec<i32>)]) -> bytes::Bytes {
    use bytes::BufMut;
    let mut b = bytes::BytesMut::new();
    b.put_i16(version.clamp(0, 3));
    b.put_i32(partitions.len() as i32);
    for (topic, ps) in partitions {
        b.put_i16(topic.len() as i16);
        b.put_slice(topic.as_bytes());
        b.put_i32(ps.len() as i32);
        for p in ps {
            b.put_i32(*p);
        }
    }
    b.put_i32(-1); // null user data
    b.freeze()
}

fn read_len(r: &mut Reader<'_>, input: usize, what: &'static str) -> Result<usize, DecodeError> {
    let count = r.i32(what)?;
    if count < 0 {
        return Err(DecodeError::NegativeLength { what, len: count });
    }
    // Each element takes at least 2 bytes: refuse counts the input cannot hold.
    let count = count as usize;
    if count > input / 2 {
        return Err(DecodeError::Truncated(what));
    }
    Ok(count)
}

fn read_strings(
    r: &mut Reader<'_>,
    input: usize,
    what: &'static str,
) -> Result<Vec<String>, DecodeError> {
    let count = read_len(r, input, what)?;
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        out.push(r.string(what)?);
    }
    Ok(out)
}

fn read_topic_partitions(
    r: &mut Reader<'_>,
    input: usize,
    what: &'static str,
) -> Result<Vec<(String, Vec<i32>)>, DecodeError> {
    let count = read_len(r, input, what)?;
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        let topic = r.string(what)?;
        let n = read_len(r, input, what)?;
        let mut partitions = Vec::with_capacity(n);
        for _ in 0..n {
            partitions.push(r.i32(what)?);
        }
        out.push((topic, partitions));
    }
    Ok(out)
}

/// Encodes a subscription of `version` (1–3 carry `owned`), for tests and tools.
pub fn encode_subscription_with(
    version: i16,
    topics: &[&str],
    owned: &[(&str, &[i32])],
) -> bytes::Bytes {
    use bytes::BufMut;
    let mut b = bytes::BytesMut::new();
    b.put_i16(version);
    b.put_i32(topics.len() as i32);
    for t in topics {
        b.put_i16(t.len() as i16);
        b.put_slice(t.as_bytes());
    }
    b.put_i32(-1); // null user data
    if version >= 1 {
        b.put_i32(owned.len() as i32);
        for (t, ps) in owned {
            b.put_i16(t.len() as i16);
            b.put_slice(t.as_bytes());
            b.put_i32(ps.len() as i32);
            for p in *ps {
                b.put_i32(*p);
            }
        }
    }
    if version >= 2 {
        b.put_i32(-1);
    }
    if version >= 3 {
        b.put_i16(-1);
    }
    b.freeze()
}

/// The union of the topics in `metadatas`, or `None` if any of them cannot be decoded (then
/// Kafka treats every topic as subscribed, the safe answer).
pub(crate) fn subscribed_topics<'a>(
    metadatas: impl IntoIterator<Item = &'a [u8]>,
) -> Option<BTreeSet<String>> {
    let mut all = BTreeSet::new();
    for m in metadatas {
        all.extend(decode_subscription_topics(m).ok()?);
    }
    Some(all)
}

/// Encodes a v0 subscription (used by tests and tools).
pub fn encode_subscription(topics: &[&str]) -> bytes::Bytes {
    use bytes::BufMut;
    let mut b = bytes::BytesMut::new();
    b.put_i16(0);
    b.put_i32(topics.len() as i32);
    for t in topics {
        b.put_i16(t.len() as i16);
        b.put_slice(t.as_bytes());
    }
    b.put_i32(-1); // null user data
    b.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn decodes_topics() {
        let m = encode_subscription(&["a", "bb"]);
        assert_eq!(
            decode_subscription_topics(&m),
            Ok(vec!["a".into(), "bb".into()])
        );
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(decode_subscription_topics(&[0, 0, 0x7f, 0xff, 0xff, 0xff]).is_err());
        assert!(decode_subscription_topics(&[]).is_err());
        assert_eq!(subscribed_topics([&b"x"[..]]), None);
    }

    #[test]
    fn whole_subscriptions_and_assignments() {
        let m = encode_subscription_with(3, &["t"], &[("t", &[0, 2])]);
        let s = decode_subscription(&m).expect("decodes");
        assert_eq!(s.version, 3);
        assert_eq!(s.topics, vec!["t".to_string()]);
        assert_eq!(s.owned_partitions, vec![("t".to_string(), vec![0, 2])]);
        let a = encode_assignment(3, &[("t".into(), vec![1, 3])]);
        assert_eq!(
            decode_assignment(&a),
            Ok(vec![("t".to_string(), vec![1, 3])])
        );
        assert_eq!(decode_assignment(&[]), Ok(Vec::new()));
        assert!(decode_subscription(&[0, 1, 0, 0]).is_err());
    }

    proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode_subscription_topics(&bytes);
            let _ = decode_subscription(&bytes);
            let _ = decode_assignment(&bytes);
        }
    }
}
