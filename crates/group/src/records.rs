//! Records of the internal compacted topic `__consumer_offsets`, in Kafka's formats.
//!
//! Everything a group must keep across a restart is written here by the broker, from the
//! [`Output::Append`](crate::Output::Append)s the coordinator returns, and read back by the
//! [`loader`](crate::loader). Keys and values use Kafka's schemas (non-flexible versions, which is
//! what Kafka wrote before 4.0 and still reads):
//!
//! ```text
//! key   version 0/1 : OffsetCommitKey   { group: string, topic: string, partition: int32 }
//! key   version 2   : GroupMetadataKey  { group: string }
//! value OffsetCommitValue v3  { offset: int64, leader_epoch: int32, metadata: string,
//!                               commit_timestamp: int64 }            (v0–v2 are read too)
//! value GroupMetadataValue v3 { protocol_type: string, generation: int32,
//!                               protocol: nullable string, leader: nullable string,
//!                               current_state_timestamp: int64,
//!                               members: [member_id, group_instance_id (nullable), client_id,
//!                                         client_host, rebalance_timeout: int32,
//!                                         session_timeout: int32, subscription: bytes,
//!                                         assignment: bytes] }          (v0–v2 are read too)
//! ```
//! Every key and value starts with its int16 version. A `None` value is a tombstone: the
//! offset or the group was deleted, and compaction will eventually drop the key.

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::DecodeError;
use gregor_share::wire::{len_i32, put_bytes, put_nullable_string, put_string, Reader};

/// Kafka's default `offsets.topic.num.partitions`.
pub const DEFAULT_OFFSETS_TOPIC_PARTITIONS: i32 = 50;

/// One record for `__consumer_offsets`: a key and a value, or a tombstone (`value: None`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub key: Bytes,
    pub value: Option<Bytes>,
}

/// Java's `String.hashCode()`: `s[0]*31^(n-1) + ... + s[n-1]` over UTF-16 code units, wrapping.
pub fn java_string_hash_code(s: &str) -> i32 {
    s.encode_utf16().fold(0i32, |h, unit| {
        h.wrapping_mul(31).wrapping_add(i32::from(unit))
    })
}

/// The `__consumer_offsets` partition that owns `group_id`:
/// `Utils.abs(groupId.hashCode) % groupMetadataTopicPartitionCount`.
///
/// Kafka's `Utils.abs` is `n == Integer.MIN_VALUE ? 0 : Math.abs(n)` (not the partitioner's
/// `n & 0x7fffffff`, which gives different partitions for negative hash codes).
pub fn partition_for_group(group_id: &str, partition_count: i32) -> i32 {
    let count = partition_count.max(1);
    java_string_hash_code(group_id).checked_abs().unwrap_or(0) % count
}

/// A decoded `__consumer_offsets` key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordKey {
    Offset {
        group: String,
        topic: String,
        partition: i32,
    },
    Group {
        group: String,
    },
}

/// A committed offset as stored (OffsetCommitValue).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetCommitValue {
    pub offset: i64,
    /// -1 when unknown (and for v0–v2 values).
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp_ms: i64,
    /// Only in v1 values (explicit retention); never written by this crate.
    pub expire_timestamp_ms: Option<i64>,
}

/// A group's membership as stored (GroupMetadataValue).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMetadataValue {
    /// "" when the group has none.
    pub protocol_type: String,
    pub generation: i32,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    /// -1 when unknown (v0/v1 values).
    pub current_state_timestamp_ms: i64,
    pub members: Vec<MemberMetadataValue>,
}

/// One member inside a [`GroupMetadataValue`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberMetadataValue {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout_ms: i32,
    pub session_timeout_ms: i32,
    /// The member's metadata for the group's chosen protocol.
    pub subscription: Bytes,
    pub assignment: Bytes,
}

const OFFSET_KEY_VERSION: i16 = 1;
const GROUP_KEY_VERSION: i16 = 2;
const OFFSET_VALUE_VERSION: i16 = 3;
const GROUP_VALUE_VERSION: i16 = 3;

impl RecordKey {
    pub fn encode(&self) -> Bytes {
        let mut b = BytesMut::new();
        match self {
            RecordKey::Offset {
                group,
                topic,
                partition,
            } => {
                b.put_i16(OFFSET_KEY_VERSION);
                put_string(&mut b, group);
                put_string(&mut b, topic);
                b.put_i32(*partition);
            }
            RecordKey::Group { group } => {
                b.put_i16(GROUP_KEY_VERSION);
                put_string(&mut b, group);
            }
        }
        b.freeze()
    }

    pub fn decode(buf: &[u8]) -> Result<RecordKey, DecodeError> {
        let mut r = Reader::new(buf);
        let version = r.i16("key version")?;
        match version {
            0 | 1 => Ok(RecordKey::Offset {
                group: r.string("group")?,
                topic: r.string("topic")?,
                partition: r.i32("partition")?,
            }),
            2 => Ok(RecordKey::Group {
                group: r.string("group")?,
            }),
            v => Err(DecodeError::UnsupportedVersion {
                what: "__consumer_offsets key",
                version: v,
            }),
        }
    }
}

impl OffsetCommitValue {
    pub fn encode(&self) -> Bytes {
        let mut b = BytesMut::new();
        b.put_i16(OFFSET_VALUE_VERSION);
        b.put_i64(self.offset);
        b.put_i32(self.leader_epoch);
        put_string(&mut b, &self.metadata);
        b.put_i64(self.commit_timestamp_ms);
        b.freeze()
    }

    pub fn decode(buf: &[u8]) -> Result<OffsetCommitValue, DecodeError> {
        let mut r = Reader::new(buf);
        let version = r.i16("offset value version")?;
        match version {
            0 | 2 => Ok(OffsetCommitValue {
                offset: r.i64("offset")?,
                leader_epoch: -1,
                metadata: r.string("metadata")?,
                commit_timestamp_ms: r.i64("commit timestamp")?,
                expire_timestamp_ms: None,
            }),
            1 => Ok(OffsetCommitValue {
                offset: r.i64("offset")?,
                leader_epoch: -1,
                metadata: r.string("metadata")?,
                commit_timestamp_ms: r.i64("commit timestamp")?,
                expire_timestamp_ms: Some(r.i64("expire timestamp")?),
            }),
            3 => Ok(OffsetCommitValue {
                offset: r.i64("offset")?,
                leader_epoch: r.i32("leader epoch")?,
                metadata: r.string("metadata")?,
                commit_timestamp_ms: r.i64("commit timestamp")?,
                expire_timestamp_ms: None,
            }),
            v => Err(DecodeError::UnsupportedVersion {
                what: "OffsetCommitValue",
                version: v,
            }),
        }
    }
}

impl GroupMetadataValue {
    pub fn encode(&self) -> Bytes {
        let mut b = BytesMut::new();
        b.put_i16(GROUP_VALUE_VERSION);
        put_string(&mut b, &self.protocol_type);
        b.put_i32(self.generation);
        put_nullable_string(&mut b, self.protocol.as_deref());
        put_nullable_string(&mut b, self.leader.as_deref());
        b.put_i64(self.current_state_timestamp_ms);
        b.put_i32(len_i32(self.members.len()));
        for m in &self.members {
            put_string(&mut b, &m.member_id);
            put_nullable_string(&mut b, m.group_instance_id.as_deref());
            put_string(&mut b, &m.client_id);
            put_string(&mut b, &m.client_host);
            b.put_i32(m.rebalance_timeout_ms);
            b.put_i32(m.session_timeout_ms);
            put_bytes(&mut b, &m.subscription);
            put_bytes(&mut b, &m.assignment);
        }
        b.freeze()
    }

    pub fn decode(buf: &[u8]) -> Result<GroupMetadataValue, DecodeError> {
        let mut r = Reader::new(buf);
        let version = r.i16("group value version")?;
        if !(0..=3).contains(&version) {
            return Err(DecodeError::UnsupportedVersion {
                what: "GroupMetadataValue",
                version,
            });
        }
        let protocol_type = r.string("protocol type")?;
        let generation = r.i32("generation")?;
        let protocol = r.nullable_string("protocol")?;
        let leader = r.nullable_string("leader")?;
        let current_state_timestamp_ms = if version >= 2 {
            r.i64("current state timestamp")?
        } else {
            -1
        };
        let count = r.i32("member count")?;
        if count < 0 {
            return Err(DecodeError::NegativeLength {
                what: "members",
                len: count,
            });
        }
        let mut members = Vec::new();
        for _ in 0..count {
            let member_id = r.string("member id")?;
            let group_instance_id = if version >= 3 {
                r.nullable_string("group instance id")?
            } else {
                None
            };
            let client_id = r.string("client id")?;
            let client_host = r.string("client host")?;
            let session_or_rebalance = r.i32("timeout")?;
            // v0 has only the session timeout; v1+ put the rebalance timeout first.
            let (rebalance_timeout_ms, session_timeout_ms) = if version >= 1 {
                (session_or_rebalance, r.i32("session timeout")?)
            } else {
                (session_or_rebalance, session_or_rebalance)
            };
            members.push(MemberMetadataValue {
                member_id,
                group_instance_id,
                client_id,
                client_host,
                rebalance_timeout_ms,
                session_timeout_ms,
                subscription: r.bytes("subscription")?,
                assignment: r.bytes("assignment")?,
            });
        }
        Ok(GroupMetadataValue {
            protocol_type,
            generation,
            protocol,
            leader,
            current_state_timestamp_ms,
            members,
        })
    }
}

/// Builders used by the coordinator.
pub(crate) fn offset_record(
    group: &str,
    topic: &str,
    partition: i32,
    value: Option<&OffsetCommitValue>,
) -> Record {
    Record {
        key: RecordKey::Offset {
            group: group.to_string(),
            topic: topic.to_string(),
            partition,
        }
        .encode(),
        value: value.map(OffsetCommitValue::encode),
    }
}

pub(crate) fn group_record(group: &str, value: Option<&GroupMetadataValue>) -> Record {
    Record {
        key: RecordKey::Group {
            group: group.to_string(),
        }
        .encode(),
        value: value.map(GroupMetadataValue::encode),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn java_hash_codes() {
        assert_eq!(java_string_hash_code(""), 0);
        assert_eq!(java_string_hash_code("hello"), 99162322);
        assert_eq!(java_string_hash_code("a"), 97);
        // Overflowing and non-ASCII values, checked against the JVM.
        assert_eq!(java_string_hash_code("my-group"), -1_906_497_762);
        assert_eq!(java_string_hash_code("console-consumer-12345"), 158_455_506);
        assert_eq!(java_string_hash_code("polygenelubricants"), i32::MIN);
        // U+1F600 is a surrogate pair in UTF-16: 0xD83D, 0xDE00.
        assert_eq!(java_string_hash_code("\u{1F600}"), 0xD83D * 31 + 0xDE00);
    }

    #[test]
    fn partition_for_known_groups() {
        assert_eq!(partition_for_group("", 50), 0);
        assert_eq!(partition_for_group("hello", 50), 99162322 % 50);
        // hashCode == Integer.MIN_VALUE: Utils.abs gives 0, not an overflow.
        assert_eq!(partition_for_group("polygenelubricants", 50), 0);
        // A negative hash code: Utils.abs(-1906497762) = 1906497762, % 50 = 12.
        assert_eq!(partition_for_group("my-group", 50), 12);
        assert_eq!(partition_for_group("console-consumer-12345", 50), 6);
        for g in ["a", "b", "group-1", "ünïcödé"] {
            let p = partition_for_group(g, 50);
            assert!((0..50).contains(&p));
        }
    }

    #[test]
    fn key_round_trip() {
        let k = RecordKey::Offset {
            group: "g".into(),
            topic: "t".into(),
            partition: 7,
        };
        assert_eq!(RecordKey::decode(&k.encode()), Ok(k));
        let k = RecordKey::Group { group: "g".into() };
        let enc = k.encode();
        assert_eq!(&enc[..2], &[0, 2]);
        assert_eq!(RecordKey::decode(&enc), Ok(k));
    }

    #[test]
    fn offset_value_v3_layout() {
        let v = OffsetCommitValue {
            offset: 42,
            leader_epoch: 3,
            metadata: "m".into(),
            commit_timestamp_ms: 1000,
            expire_timestamp_ms: None,
        };
        let enc = v.encode();
        let expected: Vec<u8> = [
            &3i16.to_be_bytes()[..],
            &42i64.to_be_bytes(),
            &3i32.to_be_bytes(),
            &1i16.to_be_bytes(),
            b"m",
            &1000i64.to_be_bytes(),
        ]
        .concat();
        assert_eq!(&enc[..], &expected[..]);
        assert_eq!(OffsetCommitValue::decode(&enc), Ok(v));
    }

    #[test]
    fn old_offset_value_versions_decode() {
        let v1: Vec<u8> = [
            &1i16.to_be_bytes()[..],
            &5i64.to_be_bytes(),
            &0i16.to_be_bytes(),
            &10i64.to_be_bytes(),
            &20i64.to_be_bytes(),
        ]
        .concat();
        let d = OffsetCommitValue::decode(&v1).expect("valid v1");
        assert_eq!(d.offset, 5);
        assert_eq!(d.expire_timestamp_ms, Some(20));
        assert_eq!(d.leader_epoch, -1);
    }

    #[test]
    fn group_value_round_trip() {
        let v = GroupMetadataValue {
            protocol_type: "consumer".into(),
            generation: 4,
            protocol: Some("range".into()),
            leader: Some("c-1".into()),
            current_state_timestamp_ms: 77,
            members: vec![MemberMetadataValue {
                member_id: "c-1".into(),
                group_instance_id: Some("i".into()),
                client_id: "c".into(),
                client_host: "/127.0.0.1".into(),
                rebalance_timeout_ms: 300_000,
                session_timeout_ms: 45_000,
                subscription: Bytes::from_static(b"sub"),
                assignment: Bytes::from_static(b"asg"),
            }],
        };
        assert_eq!(GroupMetadataValue::decode(&v.encode()), Ok(v));
    }

    #[test]
    fn unsupported_versions_are_errors() {
        assert!(matches!(
            RecordKey::decode(&[0, 9, 0, 0]),
            Err(DecodeError::UnsupportedVersion { .. })
        ));
        assert!(RecordKey::decode(&[]).is_err());
    }

    proptest! {
        #[test]
        fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = RecordKey::decode(&bytes);
            let _ = OffsetCommitValue::decode(&bytes);
            let _ = GroupMetadataValue::decode(&bytes);
        }

        #[test]
        fn offset_value_round_trips(offset in any::<i64>(), epoch in any::<i32>(),
                                    metadata in "\\PC{0,20}", ts in any::<i64>()) {
            let v = OffsetCommitValue { offset, leader_epoch: epoch, metadata,
                                        commit_timestamp_ms: ts, expire_timestamp_ms: None };
            prop_assert_eq!(OffsetCommitValue::decode(&v.encode()), Ok(v));
        }
    }
}
