//! The consumer group records of `__consumer_offsets` (KIP-848), in Kafka's formats.
//!
//! Each record's key starts with an int16 "version" that is really the record type, and is
//! written in the classic (non-flexible) encoding; each value starts with an int16 version
//! (always 0) followed by the flexible encoding (compact strings and arrays, uuids, tagged
//! fields). A `None` value is a tombstone.
//!
//! ```text
//! key 3  ConsumerGroupMetadataKey             { group }             value { epoch }
//! key 4  ConsumerGroupPartitionMetadataKey    { group }             value { topics: [id, name,
//!                                                                    partitions, racks (empty)] }
//! key 5  ConsumerGroupMemberMetadataKey       { group, member }     value { instance, rack,
//!        client id/host, topic names, regex, rebalance timeout, server assignor }
//! key 6  ConsumerGroupTargetAssignmentMetadataKey { group }         value { assignment epoch }
//! key 7  ConsumerGroupTargetAssignmentMemberKey   { group, member } value { [topic id, partitions] }
//! key 8  ConsumerGroupCurrentMemberAssignmentKey  { group, member } value { epoch, previous
//!        epoch, state, assigned [topic id, partitions], pending revocation [...] }
//! ```
//! Keys 0–2 (offsets and classic groups) are the [`crate::records`] module's; a loader routes
//! a record here when [`is_consumer_group_key`] says so.

use bytes::{BufMut, BytesMut};

use super::topics::{TopicId, TopicMetadata, TopicPartitions};
use crate::error::DecodeError;
use crate::records::Record;
use gregor_share::wire::{
    put_compact_nullable_string, put_compact_string, put_string, put_uvarint, Reader,
};

const GROUP_EPOCH_KEY: i16 = 3;
const PARTITION_METADATA_KEY: i16 = 4;
const MEMBER_METADATA_KEY: i16 = 5;
const TARGET_ASSIGNMENT_METADATA_KEY: i16 = 6;
const TARGET_ASSIGNMENT_MEMBER_KEY: i16 = 7;
const CURRENT_ASSIGNMENT_KEY: i16 = 8;
const VALUE_VERSION: i16 = 0;

/// True when `key` is one of the consumer group record keys (types 3 to 8).
pub fn is_consumer_group_key(key: &[u8]) -> bool {
    key.len() >= 2
        && (GROUP_EPOCH_KEY..=CURRENT_ASSIGNMENT_KEY)
            .contains(&i16::from_be_bytes([key[0], key[1]]))
}

/// A member's subscription as stored (ConsumerGroupMemberMetadataValue).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MemberMetadataValue {
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub subscribed_topic_names: Vec<String>,
    pub subscribed_topic_regex: Option<String>,
    pub rebalance_timeout_ms: i32,
    pub server_assignor: Option<String>,
    /// Tagged field 0: set for a member that speaks the classic protocol inside a consumer
    /// group (KIP-848 online migration), `None` for a consumer-protocol member.
    pub classic_member_metadata: Option<ClassicMemberMetadata>,
}

/// Kafka's `ClassicMemberMetadata`: what a classic member sent in its last JoinGroup.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ClassicMemberMetadata {
    pub session_timeout_ms: i32,
    /// (protocol name, protocol metadata) in the member's order of preference.
    pub supported_protocols: Vec<(String, bytes::Bytes)>,
}

/// A member's current assignment as stored (ConsumerGroupCurrentMemberAssignmentValue).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CurrentAssignmentValue {
    pub member_epoch: i32,
    pub previous_member_epoch: i32,
    /// [`MemberState`](super::member::MemberState) value.
    pub state: i8,
    pub assigned_partitions: TopicPartitions,
    pub partitions_pending_revocation: TopicPartitions,
}

/// One consumer group record, decoded. `None` payloads are tombstones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConsumerGroupRecord {
    GroupEpoch {
        group_id: String,
        epoch: Option<i32>,
    },
    SubscriptionMetadata {
        group_id: String,
        topics: Option<Vec<TopicMetadata>>,
    },
    MemberMetadata {
        group_id: String,
        member_id: String,
        value: Option<MemberMetadataValue>,
    },
    TargetAssignmentEpoch {
        group_id: String,
        epoch: Option<i32>,
    },
    TargetAssignmentMember {
        group_id: String,
        member_id: String,
        partitions: Option<TopicPartitions>,
    },
    CurrentAssignment {
        group_id: String,
        member_id: String,
        value: Option<CurrentAssignmentValue>,
    },
}

impl ConsumerGroupRecord {
    pub fn group_id(&self) -> &str {
        match self {
            ConsumerGroupRecord::GroupEpoch { group_id, .. }
            | ConsumerGroupRecord::SubscriptionMetadata { group_id, .. }
            | ConsumerGroupRecord::MemberMetadata { group_id, .. }
            | ConsumerGroupRecord::TargetAssignmentEpoch { group_id, .. }
            | ConsumerGroupRecord::TargetAssignmentMember { group_id, .. }
            | ConsumerGroupRecord::CurrentAssignment { group_id, .. } => group_id,
        }
    }

    /// The key and value bytes Kafka writes for this record.
    pub fn encode(&self) -> Record {
        // Set when a value wrote its own tagged-field section (a classic member's metadata).
        let mut own_tags = false;
        let mut key = BytesMut::new();
        let value = match self {
            ConsumerGroupRecord::GroupEpoch { group_id, epoch } => {
                key.put_i16(GROUP_EPOCH_KEY);
                put_string(&mut key, group_id);
                epoch.map(|e| {
                    let mut v = value_header();
                    v.put_i32(e);
                    v
                })
            }
            ConsumerGroupRecord::SubscriptionMetadata { group_id, topics } => {
                key.put_i16(PARTITION_METADATA_KEY);
                put_string(&mut key, group_id);
                topics.as_ref().map(|topics| {
                    let mut v = value_header();
                    put_uvarint(&mut v, topics.len() + 1);
                    for t in topics {
                        v.put_slice(&t.id.0);
                        put_compact_string(&mut v, &t.name);
                        v.put_i32(t.num_partitions);
                        // PartitionMetadata (racks): deprecated, always empty.
                        put_uvarint(&mut v, 1);
                        put_uvarint(&mut v, 0);
                    }
                    v
                })
            }
            ConsumerGroupRecord::MemberMetadata {
                group_id,
                member_id,
                value,
            } => {
                key.put_i16(MEMBER_METADATA_KEY);
                put_string(&mut key, group_id);
                put_string(&mut key, member_id);
                value.as_ref().map(|m| {
                    let mut v = value_header();
                    put_compact_nullable_string(&mut v, m.instance_id.as_deref());
                    put_compact_nullable_string(&mut v, m.rack_id.as_deref());
                    put_compact_string(&mut v, &m.client_id);
                    put_compact_string(&mut v, &m.client_host);
                    put_uvarint(&mut v, m.subscribed_topic_names.len() + 1);
                    for name in &m.subscribed_topic_names {
                        put_compact_string(&mut v, name);
                    }
                    put_compact_nullable_string(&mut v, m.subscribed_topic_regex.as_deref());
                    v.put_i32(m.rebalance_timeout_ms);
                    put_compact_nullable_string(&mut v, m.server_assignor.as_deref());
                    match &m.classic_member_metadata {
                        None => {}
                        Some(c) => {
                            own_tags = true;
                            let mut field = BytesMut::new();
                            field.put_i32(c.session_timeout_ms);
                            put_uvarint(&mut field, c.supported_protocols.len() + 1);
                            for (name, metadata) in &c.supported_protocols {
                                put_compact_string(&mut field, name);
                                put_uvarint(&mut field, metadata.len() + 1);
                                field.put_slice(metadata);
                                put_uvarint(&mut field, 0);
                            }
                            put_uvarint(&mut field, 0);
                            put_uvarint(&mut v, 1);
                            put_uvarint(&mut v, 0);
                            put_uvarint(&mut v, field.len());
                            v.put_slice(&field);
                        }
                    }
                    v
                })
            }
            ConsumerGroupRecord::TargetAssignmentEpoch { group_id, epoch } => {
                key.put_i16(TARGET_ASSIGNMENT_METADATA_KEY);
                put_string(&mut key, group_id);
                epoch.map(|e| {
                    let mut v = value_header();
                    v.put_i32(e);
                    v
                })
            }
            ConsumerGroupRecord::TargetAssignmentMember {
                group_id,
                member_id,
                partitions,
            } => {
                key.put_i16(TARGET_ASSIGNMENT_MEMBER_KEY);
                put_string(&mut key, group_id);
                put_string(&mut key, member_id);
                partitions.as_ref().map(|p| {
                    let mut v = value_header();
                    put_topic_partitions(&mut v, p);
                    v
                })
            }
            ConsumerGroupRecord::CurrentAssignment {
                group_id,
                member_id,
                value,
            } => {
                key.put_i16(CURRENT_ASSIGNMENT_KEY);
                put_string(&mut key, group_id);
                put_string(&mut key, member_id);
                value.as_ref().map(|c| {
                    let mut v = value_header();
                    v.put_i32(c.member_epoch);
                    v.put_i32(c.previous_member_epoch);
                    v.put_i8(c.state);
                    put_topic_partitions(&mut v, &c.assigned_partitions);
                    put_topic_partitions(&mut v, &c.partitions_pending_revocation);
                    v
                })
            }
        };
        Record {
            key: key.freeze(),
            value: value.map(|mut v| {
                // The message's own tagged fields: none (unless written above).
                if !own_tags {
                    put_uvarint(&mut v, 0);
                }
                v.freeze()
            }),
        }
    }

    /// Decodes a consumer group record; fails on anything else, including keys 0–2.
    pub fn decode(key: &[u8], value: Option<&[u8]>) -> Result<ConsumerGroupRecord, DecodeError> {
        let mut k = Reader::new(key);
        let kind = k.i16("key version")?;
        let group_id = k.string("group id")?;
        let mut value = match value {
            Some(v) => {
                let mut r = Reader::new(v);
                let version = r.i16("value version")?;
                if version != VALUE_VERSION {
                    return Err(DecodeError::UnsupportedVersion {
                        what: "consumer group record value",
                        version,
                    });
                }
                Some(r)
            }
            None => None,
        };
        let record = match kind {
            GROUP_EPOCH_KEY => ConsumerGroupRecord::GroupEpoch {
                group_id,
                epoch: value.as_mut().map(|r| r.i32("epoch")).transpose()?,
            },
            PARTITION_METADATA_KEY => ConsumerGroupRecord::SubscriptionMetadata {
                group_id,
                topics: value.as_mut().map(read_topic_metadata).transpose()?,
            },
            MEMBER_METADATA_KEY => {
                let member_id = k.string("member id")?;
                let mut m = value.as_mut().map(read_member_metadata).transpose()?;
                if let (Some(r), Some(m)) = (value.as_mut(), m.as_mut()) {
                    m.classic_member_metadata = read_member_tagged_fields(r)?;
                }
                ConsumerGroupRecord::MemberMetadata {
                    group_id,
                    member_id,
                    value: m,
                }
            }
            TARGET_ASSIGNMENT_METADATA_KEY => ConsumerGroupRecord::TargetAssignmentEpoch {
                group_id,
                epoch: value
                    .as_mut()
                    .map(|r| r.i32("assignment epoch"))
                    .transpose()?,
            },
            TARGET_ASSIGNMENT_MEMBER_KEY => ConsumerGroupRecord::TargetAssignmentMember {
                group_id,
                member_id: k.string("member id")?,
                partitions: value.as_mut().map(read_topic_partitions).transpose()?,
            },
            CURRENT_ASSIGNMENT_KEY => ConsumerGroupRecord::CurrentAssignment {
                group_id,
                member_id: k.string("member id")?,
                value: value.as_mut().map(read_current_assignment).transpose()?,
            },
            version => {
                return Err(DecodeError::UnsupportedVersion {
                    what: "consumer group record key",
                    version,
                })
            }
        };
        if let Some(r) = value.as_mut() {
            if kind != MEMBER_METADATA_KEY {
                r.skip_tagged_fields()?;
            }
        }
        Ok(record)
    }
}

fn value_header() -> BytesMut {
    let mut v = BytesMut::new();
    v.put_i16(VALUE_VERSION);
    v
}

fn read_topic_metadata(r: &mut Reader<'_>) -> Result<Vec<TopicMetadata>, DecodeError> {
    let n = r.compact_len("topics")?;
    let mut topics = Vec::with_capacity(n.min(1024));
    for _ in 0..n {
        let id = TopicId(r.uuid("topic id")?);
        let name = r.compact_string("topic name")?;
        let num_partitions = r.i32("partition count")?;
        let racks = r.compact_len("partition metadata")?;
        for _ in 0..racks {
            r.i32("partition")?;
            let n = r.compact_len("racks")?;
            for _ in 0..n {
                r.compact_string("rack")?;
            }
            r.skip_tagged_fields()?;
        }
        r.skip_tagged_fields()?;
        topics.push(TopicMetadata {
            id,
            name,
            num_partitions,
        });
    }
    Ok(topics)
}

fn read_member_metadata(r: &mut Reader<'_>) -> Result<MemberMetadataValue, DecodeError> {
    let instance_id = r.compact_nullable_string("instance id")?;
    let rack_id = r.compact_nullable_string("rack id")?;
    let client_id = r.compact_string("client id")?;
    let client_host = r.compact_string("client host")?;
    let n = r.compact_len("subscribed topic names")?;
    let mut subscribed_topic_names = Vec::with_capacity(n.min(1024));
    for _ in 0..n {
        subscribed_topic_names.push(r.compact_string("subscribed topic name")?);
    }
    Ok(MemberMetadataValue {
        instance_id,
        rack_id,
        client_id,
        client_host,
        subscribed_topic_names,
        subscribed_topic_regex: r.compact_nullable_string("subscribed topic regex")?,
        rebalance_timeout_ms: r.i32("rebalance timeout")?,
        server_assignor: r.compact_nullable_string("server assignor")?,
        classic_member_metadata: None,
    })
}

/// The tagged fields of a member metadata value: tag 0 is the classic member metadata,
/// others are skipped.
fn read_member_tagged_fields(
    r: &mut Reader<'_>,
) -> Result<Option<ClassicMemberMetadata>, DecodeError> {
    let mut classic = None;
    let n = r.uvarint("tagged fields")?;
    for _ in 0..n {
        let tag = r.uvarint("tag")?;
        let size = r.uvarint("tagged field size")?;
        let size = usize::try_from(size).map_err(|_| DecodeError::Truncated("tagged field"))?;
        let raw = r.take(size, "tagged field")?;
        if tag != 0 {
            continue;
        }
        let mut f = Reader::new(raw);
        let session_timeout_ms = f.i32("classic session timeout")?;
        let count = f.compact_len("classic protocols")?;
        let mut supported_protocols = Vec::with_capacity(count.min(64));
        for _ in 0..count {
            let name = f.compact_string("classic protocol name")?;
            let len = f.compact_len("classic protocol metadata")?;
            let metadata = bytes::Bytes::copy_from_slice(f.take(len, "classic protocol metadata")?);
            f.skip_tagged_fields()?;
            supported_protocols.push((name, metadata));
        }
        f.skip_tagged_fields()?;
        classic = Some(ClassicMemberMetadata {
            session_timeout_ms,
            supported_protocols,
        });
    }
    Ok(classic)
}

fn read_current_assignment(r: &mut Reader<'_>) -> Result<CurrentAssignmentValue, DecodeError> {
    Ok(CurrentAssignmentValue {
        member_epoch: r.i32("member epoch")?,
        previous_member_epoch: r.i32("previous member epoch")?,
        state: r.i8("member state")?,
        assigned_partitions: read_topic_partitions(r)?,
        partitions_pending_revocation: read_topic_partitions(r)?,
    })
}

/// A KIP-848 `TopicPartitions` array (also in the share group records).
pub(crate) fn put_topic_partitions(b: &mut BytesMut, tp: &TopicPartitions) {
    put_uvarint(b, tp.len() + 1);
    for (id, partitions) in tp {
        b.put_slice(&id.0);
        put_uvarint(b, partitions.len() + 1);
        for p in partitions {
            b.put_i32(*p);
        }
        put_uvarint(b, 0);
    }
}

/// Reads a KIP-848 `TopicPartitions` array; topics with no partitions are dropped.
pub(crate) fn read_topic_partitions(r: &mut Reader<'_>) -> Result<TopicPartitions, DecodeError> {
    let n = r.compact_len("topic partitions")?;
    let mut out = TopicPartitions::new();
    for _ in 0..n {
        let id = TopicId(r.uuid("topic id")?);
        let count = r.compact_len("partitions")?;
        let set = out.entry(id).or_default();
        for _ in 0..count {
            set.insert(r.i32("partition")?);
        }
        r.skip_tagged_fields()?;
    }
    out.retain(|_, s| !s.is_empty());
    Ok(out)
}

/// Bytes of a key or value, for tests that compare layouts.
#[cfg(test)]
pub(crate) fn bytes_of(r: &Record) -> (bytes::Bytes, Option<bytes::Bytes>) {
    (r.key.clone(), r.value.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    fn tp(pairs: &[(u128, &[i32])]) -> TopicPartitions {
        pairs
            .iter()
            .map(|(id, ps)| (TopicId::from_u128(*id), ps.iter().copied().collect()))
            .collect()
    }

    fn round_trip(r: ConsumerGroupRecord) {
        let enc = r.encode();
        let dec = ConsumerGroupRecord::decode(&enc.key, enc.value.as_deref());
        assert_eq!(dec, Ok(r));
    }

    #[test]
    fn every_record_round_trips() {
        let g = "g".to_string();
        round_trip(ConsumerGroupRecord::GroupEpoch {
            group_id: g.clone(),
            epoch: Some(7),
        });
        round_trip(ConsumerGroupRecord::GroupEpoch {
            group_id: g.clone(),
            epoch: None,
        });
        round_trip(ConsumerGroupRecord::SubscriptionMetadata {
            group_id: g.clone(),
            topics: Some(vec![TopicMetadata {
                id: TopicId::from_u128(5),
                name: "orders".into(),
                num_partitions: 12,
            }]),
        });
        round_trip(ConsumerGroupRecord::MemberMetadata {
            group_id: g.clone(),
            member_id: "m".into(),
            value: Some(MemberMetadataValue {
                instance_id: Some("i".into()),
                rack_id: None,
                client_id: "c".into(),
                client_host: "/127.0.0.1".into(),
                subscribed_topic_names: vec!["a".into(), "b".into()],
                subscribed_topic_regex: None,
                rebalance_timeout_ms: 300_000,
                server_assignor: Some("range".into()),
                classic_member_metadata: None,
            }),
        });
        round_trip(ConsumerGroupRecord::TargetAssignmentEpoch {
            group_id: g.clone(),
            epoch: Some(3),
        });
        round_trip(ConsumerGroupRecord::TargetAssignmentMember {
            group_id: g.clone(),
            member_id: "m".into(),
            partitions: Some(tp(&[(1, &[0, 2]), (9, &[1])])),
        });
        round_trip(ConsumerGroupRecord::CurrentAssignment {
            group_id: g.clone(),
            member_id: "m".into(),
            value: Some(CurrentAssignmentValue {
                member_epoch: 4,
                previous_member_epoch: 3,
                state: 1,
                assigned_partitions: tp(&[(1, &[0])]),
                partitions_pending_revocation: tp(&[(1, &[2])]),
            }),
        });
        round_trip(ConsumerGroupRecord::CurrentAssignment {
            group_id: g,
            member_id: "m".into(),
            value: None,
        });
    }

    #[test]
    fn group_epoch_layout_is_kafkas() {
        let r = ConsumerGroupRecord::GroupEpoch {
            group_id: "ab".into(),
            epoch: Some(1),
        }
        .encode();
        let (key, value) = bytes_of(&r);
        assert_eq!(&key[..], &[0, 3, 0, 2, b'a', b'b']);
        // version 0, epoch 1, no tagged fields.
        assert_eq!(value.as_deref(), Some(&[0u8, 0, 0, 0, 0, 1, 0][..]));
        assert!(is_consumer_group_key(&key));
        assert!(!is_consumer_group_key(&[0, 2, 0, 0]));
        assert!(!is_consumer_group_key(&[0]));
    }

    #[test]
    fn current_assignment_layout_is_kafkas() {
        let r = ConsumerGroupRecord::CurrentAssignment {
            group_id: "g".into(),
            member_id: "m".into(),
            value: Some(CurrentAssignmentValue {
                member_epoch: 2,
                previous_member_epoch: 1,
                state: 0,
                assigned_partitions: tp(&[(1, &[3])]),
                partitions_pending_revocation: TopicPartitions::new(),
            }),
        }
        .encode();
        let mut expected = vec![0u8, 0, 0, 0, 0, 2, 0, 0, 0, 1, 0];
        expected.push(2); // one topic
        expected.extend_from_slice(&1u128.to_be_bytes());
        expected.push(2); // one partition
        expected.extend_from_slice(&3i32.to_be_bytes());
        expected.push(0); // topic's tagged fields
        expected.push(1); // no pending revocation
        expected.push(0); // message's tagged fields
        assert_eq!(r.value.as_deref(), Some(&expected[..]));
        assert_eq!(&r.key[..2], &[0, 8]);
    }

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
            .collect()
    }

    fn value_of(r: ConsumerGroupRecord) -> Vec<u8> {
        r.encode().value.map(|v| v.to_vec()).unwrap_or_default()
    }

    /// Bytes written by Apache Kafka 4.4's own generated classes
    /// (`MessageUtil.toVersionPrefixedByteBuffer`) for the same values: ours match them, and
    /// the tagged fields newer versions add (the metadata hash, the assignment timestamp,
    /// per-partition assignment epochs) are read past.
    #[test]
    fn layouts_match_kafka_4_4() {
        let g = || "g".to_string();
        let t = TopicId::from_u128(10);
        assert_eq!(
            value_of(ConsumerGroupRecord::GroupEpoch {
                group_id: g(),
                epoch: Some(7)
            }),
            unhex("00000000000700")
        );
        assert_eq!(
            value_of(ConsumerGroupRecord::SubscriptionMetadata {
                group_id: g(),
                topics: Some(vec![TopicMetadata {
                    id: t,
                    name: "orders".into(),
                    num_partitions: 12
                }]),
            }),
            unhex("0000020000000000000000000000000000000a076f72646572730000000c010000")
        );
        assert_eq!(
            value_of(ConsumerGroupRecord::MemberMetadata {
                group_id: g(),
                member_id: "m".into(),
                value: Some(MemberMetadataValue {
                    instance_id: Some("i".into()),
                    rack_id: None,
                    client_id: "c".into(),
                    client_host: "/127.0.0.1".into(),
                    subscribed_topic_names: vec!["a".into(), "b".into()],
                    subscribed_topic_regex: None,
                    rebalance_timeout_ms: 300_000,
                    server_assignor: Some("range".into()),
                    classic_member_metadata: None,
                }),
            }),
            unhex("000002690002630b2f3132372e302e302e31030261026200000493e00672616e676500")
        );
        assert_eq!(
            value_of(ConsumerGroupRecord::TargetAssignmentMember {
                group_id: g(),
                member_id: "m".into(),
                partitions: Some(tp(&[(10, &[0, 2])])),
            }),
            unhex("0000020000000000000000000000000000000a0300000000000000020000")
        );
        assert_eq!(
            value_of(ConsumerGroupRecord::TargetAssignmentEpoch {
                group_id: g(),
                epoch: Some(3)
            }),
            unhex("00000000000300")
        );
        let current = ConsumerGroupRecord::CurrentAssignment {
            group_id: g(),
            member_id: "m".into(),
            value: Some(CurrentAssignmentValue {
                member_epoch: 4,
                previous_member_epoch: 3,
                state: 1,
                assigned_partitions: tp(&[(10, &[0])]),
                partitions_pending_revocation: tp(&[(10, &[2])]),
            }),
        };
        assert_eq!(
            value_of(current.clone()),
            unhex(
                "0000000000040000000301020000000000000000000000000000000a020000000000020000000000\
                 000000000000000000000a02000000020000"
            )
        );
        let member_key = ConsumerGroupRecord::MemberMetadata {
            group_id: g(),
            member_id: "m".into(),
            value: None,
        };
        assert_eq!(member_key.encode().key.to_vec(), unhex("000500016700016d"));

        // Newer tagged fields are skipped.
        let key = ConsumerGroupRecord::GroupEpoch {
            group_id: g(),
            epoch: None,
        }
        .encode()
        .key;
        assert_eq!(
            ConsumerGroupRecord::decode(&key, Some(&unhex("0000000000070100080000000000003039"))),
            Ok(ConsumerGroupRecord::GroupEpoch {
                group_id: g(),
                epoch: Some(7)
            })
        );
        let current_key = current.encode().key;
        let decoded = ConsumerGroupRecord::decode(
            &current_key,
            Some(&unhex(
                "0000000000040000000300020000000000000000000000000000000a03000000000000000101000903\
                 00000002000000040100",
            )),
        );
        assert_eq!(
            decoded,
            Ok(ConsumerGroupRecord::CurrentAssignment {
                group_id: g(),
                member_id: "m".into(),
                value: Some(CurrentAssignmentValue {
                    member_epoch: 4,
                    previous_member_epoch: 3,
                    state: 0,
                    assigned_partitions: tp(&[(10, &[0, 1])]),
                    partitions_pending_revocation: TopicPartitions::new(),
                }),
            })
        );
    }

    #[test]
    fn unknown_tagged_fields_are_skipped() {
        // A member metadata value with a tagged field this version does not know (tag 1).
        let r = ConsumerGroupRecord::MemberMetadata {
            group_id: "g".into(),
            member_id: "m".into(),
            value: Some(MemberMetadataValue {
                client_id: "c".into(),
                client_host: "h".into(),
                rebalance_timeout_ms: 1,
                ..MemberMetadataValue::default()
            }),
        };
        let enc = r.encode();
        let mut value = enc.value.clone().expect("a value").to_vec();
        value.pop();
        value.extend_from_slice(&[1, 1, 3, 9, 9, 9]);
        assert_eq!(ConsumerGroupRecord::decode(&enc.key, Some(&value)), Ok(r));
    }

    #[test]
    fn classic_member_metadata_round_trips() {
        // Kafka's ClassicMemberMetadata (tag 0): a classic member inside a consumer group.
        let r = ConsumerGroupRecord::MemberMetadata {
            group_id: "g".into(),
            member_id: "m".into(),
            value: Some(MemberMetadataValue {
                client_id: "c".into(),
                client_host: "/127.0.0.1".into(),
                subscribed_topic_names: vec!["t".into()],
                rebalance_timeout_ms: 300_000,
                classic_member_metadata: Some(ClassicMemberMetadata {
                    session_timeout_ms: 45_000,
                    supported_protocols: vec![
                        ("range".into(), bytes::Bytes::from_static(&[0, 3, 1, 2])),
                        ("cooperative-sticky".into(), bytes::Bytes::new()),
                    ],
                }),
                ..MemberMetadataValue::default()
            }),
        };
        let enc = r.encode();
        assert_eq!(
            ConsumerGroupRecord::decode(&enc.key, enc.value.as_deref()),
            Ok(r)
        );
        // A truncated tag 0 is an error, not a panic.
        let mut value = enc.value.expect("a value").to_vec();
        value.truncate(value.len() - 3);
        assert!(ConsumerGroupRecord::decode(&enc.key, Some(&value)).is_err());
    }

    #[test]
    fn other_keys_are_refused() {
        assert!(matches!(
            ConsumerGroupRecord::decode(&[0, 2, 0, 1, b'g'], None),
            Err(DecodeError::UnsupportedVersion { .. })
        ));
    }

    proptest! {
        #[test]
        fn decoding_never_panics(key in proptest::collection::vec(any::<u8>(), 0..40),
                                 value in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..80))) {
            let _ = ConsumerGroupRecord::decode(&key, value.as_deref());
        }

        #[test]
        fn assignments_round_trip(parts in proptest::collection::btree_map(any::<u128>(),
                                      proptest::collection::btree_set(0i32..1000, 1..5), 0..4),
                                  epoch in any::<i32>()) {
            let assigned: TopicPartitions = parts.into_iter()
                .map(|(id, ps)| (TopicId::from_u128(id), ps.into_iter().collect::<BTreeSet<_>>()))
                .collect();
            let r = ConsumerGroupRecord::CurrentAssignment {
                group_id: "g".into(), member_id: "m".into(),
                value: Some(CurrentAssignmentValue { member_epoch: epoch, previous_member_epoch: epoch,
                    state: 2, assigned_partitions: assigned.clone(),
                    partitions_pending_revocation: assigned }),
            };
            let enc = r.encode();
            prop_assert_eq!(ConsumerGroupRecord::decode(&enc.key, enc.value.as_deref()), Ok(r));
        }
    }
}
