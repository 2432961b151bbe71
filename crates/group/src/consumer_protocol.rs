//! Just enough of the "consumer" embedded protocol to know which topics a group subscribes to.
//!
//! Members of a `protocol_type = "consumer"` group put a `ConsumerProtocolSubscription` in their
//! protocol metadata: `version: int16, topics: [string], user_data: nullable bytes, ...` (later
//! versions append owned partitions, generation id and rack id, which we do not need). The
//! coordinator reads the topic list to refuse OffsetDelete on subscribed topics
//! (GROUP_SUBSCRIBED_TO_TOPIC) and to expire offsets of topics a Stable group no longer reads.
//! These bytes come from clients, so decoding returns errors and never panics.

use std::collections::BTreeSet;

use crate::error::DecodeError;
use crate::records::Reader;

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

    proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode_subscription_topics(&bytes);
        }
    }
}
