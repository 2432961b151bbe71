//! Records of the internal topic `__share_group_state`, in Kafka's formats (the share
//! coordinator's `ShareSnapshotKey`/`ShareSnapshotValue` and `ShareUpdateKey`/`ShareUpdateValue`,
//! Kafka 4.4), so Kafka's tools can read what gregor writes and gregor can replay what Kafka
//! wrote.
//!
//! ```text
//! key   : int16 record type (0 snapshot, 1 update), then (not flexible)
//!         { group_id: string, topic_id: uuid, partition: int32 }
//! value : int16 version 0, then (flexible: compact arrays, tagged fields)
//!   snapshot : { snapshot_epoch: int32, state_epoch: int32, leader_epoch: int32,
//!                start_offset: int64, create_timestamp: int64, write_timestamp: int64,
//!                state_batches: [ { first_offset: int64, last_offset: int64,
//!                                   delivery_state: int8, delivery_count: int16 } ],
//!                tagged 0 delivery_complete_count: int32 (default -1) }
//!   update   : { snapshot_epoch: int32, leader_epoch: int32, start_offset: int64 (-1: not
//!                changed), state_batches: [ ... ], tagged 0 delivery_complete_count }
//! ```
//! A snapshot is a share-partition's whole state; an update carries only the batches that
//! changed since the snapshot. A snapshot key with no value is a tombstone: the share-partition's
//! state was deleted. gregor writes snapshots and tombstones only; it replays updates too.

use uuid::Uuid;

use crate::state::{DeliveryState, ShareKey, StateBatch};
use crate::wire::{put_string, put_uvarint, Reader, WireError};

/// The key's record type of a snapshot (`ShareSnapshotKey`, Kafka's coordinator record type 0).
pub const SNAPSHOT_RECORD_TYPE: i16 = 0;
/// The key's record type of an update (`ShareUpdateKey`, record type 1).
pub const UPDATE_RECORD_TYPE: i16 = 1;
/// The value version written and read.
pub const VALUE_VERSION: i16 = 0;
/// `delivery_complete_count` when it is not known (the tagged field's default).
pub const UNKNOWN_DELIVERY_COMPLETE_COUNT: i32 = -1;

/// Why a record could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The bytes end before `0`.
    #[error("truncated record: {0}")]
    Truncated(&'static str),
    /// A field holds a value the format does not allow.
    #[error("invalid record: {0}")]
    Invalid(String),
}

/// A `ShareSnapshotValue`: the whole state of one share-partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareSnapshotValue {
    /// Counts the snapshots of the share-partition (0 for its first).
    pub snapshot_epoch: i32,
    /// The state epoch (bumped when an administrator resets the share-partition).
    pub state_epoch: i32,
    /// The leader epoch of the share-partition leader that wrote it.
    pub leader_epoch: i32,
    /// The share-partition start offset (-1: not decided yet).
    pub start_offset: i64,
    /// Offsets at or above the start offset whose delivery is complete (KIP-1226); -1: unknown.
    pub delivery_complete_count: i32,
    /// When the state was created (Initialize), in ms.
    pub create_timestamp: i64,
    /// When it was last written, in ms.
    pub write_timestamp: i64,
    /// The runs past the start offset, in offset order.
    pub state_batches: Vec<StateBatch>,
}

/// A `ShareUpdateValue`: the batches that changed since the last snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareUpdateValue {
    /// The snapshot epoch it applies to.
    pub snapshot_epoch: i32,
    /// The leader epoch of the writer.
    pub leader_epoch: i32,
    /// The new start offset, or -1 when unchanged.
    pub start_offset: i64,
    /// As in the snapshot; -1: unknown.
    pub delivery_complete_count: i32,
    /// The runs that changed.
    pub state_batches: Vec<StateBatch>,
}

/// One decoded `__share_group_state` record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShareRecord {
    /// A snapshot: the share-partition's whole state.
    Snapshot(ShareKey, ShareSnapshotValue),
    /// An update on top of the last snapshot.
    Update(ShareKey, ShareUpdateValue),
    /// The share-partition's state was deleted.
    Tombstone(ShareKey),
}

impl ShareRecord {
    /// The share-partition the record is about.
    pub fn key(&self) -> &ShareKey {
        match self {
            ShareRecord::Snapshot(k, _) | ShareRecord::Update(k, _) | ShareRecord::Tombstone(k) => {
                k
            }
        }
    }

    /// The record's key and value bytes (`None`: a tombstone).
    pub fn encode(&self) -> (Vec<u8>, Option<Vec<u8>>) {
        match self {
            ShareRecord::Snapshot(k, v) => (
                encode_key(SNAPSHOT_RECORD_TYPE, k),
                Some(encode_snapshot_value(v)),
            ),
            ShareRecord::Update(k, v) => (
                encode_key(UPDATE_RECORD_TYPE, k),
                Some(encode_update_value(v)),
            ),
            ShareRecord::Tombstone(k) => (encode_key(SNAPSHOT_RECORD_TYPE, k), None),
        }
    }

    /// Decodes a record. `Ok(None)` for a record type this format does not know (skipped when
    /// loading, as Kafka skips them) and for a tombstone of an update key (Kafka writes none).
    pub fn decode(key: &[u8], value: Option<&[u8]>) -> Result<Option<ShareRecord>, DecodeError> {
        let mut r = Reader::new(key);
        let record_type = r.i16("record type")?;
        if record_type != SNAPSHOT_RECORD_TYPE && record_type != UPDATE_RECORD_TYPE {
            return Ok(None);
        }
        let group_id = r.string("group id")?;
        let topic_id = read_uuid(&mut r, "topic id")?;
        let partition = r.i32("partition")?;
        finish(&r, "key")?;
        let share_key = ShareKey {
            group_id,
            topic_id,
            partition,
        };
        let Some(value) = value else {
            return Ok(
                (record_type == SNAPSHOT_RECORD_TYPE).then_some(ShareRecord::Tombstone(share_key))
            );
        };
        Ok(Some(if record_type == SNAPSHOT_RECORD_TYPE {
            ShareRecord::Snapshot(share_key, decode_snapshot_value(value)?)
        } else {
            ShareRecord::Update(share_key, decode_update_value(value)?)
        }))
    }
}

/// A record key: its record type, then the share-partition (not flexible).
pub fn encode_key(record_type: i16, key: &ShareKey) -> Vec<u8> {
    let mut out = Vec::with_capacity(24 + key.group_id.len());
    out.extend_from_slice(&record_type.to_be_bytes());
    put_string(&mut out, &key.group_id);
    out.extend_from_slice(key.topic_id.as_bytes());
    out.extend_from_slice(&key.partition.to_be_bytes());
    out
}

/// A `ShareSnapshotValue` (version 0).
pub fn encode_snapshot_value(v: &ShareSnapshotValue) -> Vec<u8> {
    let mut out = Vec::with_capacity(48 + 20 * v.state_batches.len());
    out.extend_from_slice(&VALUE_VERSION.to_be_bytes());
    out.extend_from_slice(&v.snapshot_epoch.to_be_bytes());
    out.extend_from_slice(&v.state_epoch.to_be_bytes());
    out.extend_from_slice(&v.leader_epoch.to_be_bytes());
    out.extend_from_slice(&v.start_offset.to_be_bytes());
    out.extend_from_slice(&v.create_timestamp.to_be_bytes());
    out.extend_from_slice(&v.write_timestamp.to_be_bytes());
    put_batches(&mut out, &v.state_batches);
    put_delivery_complete_count(&mut out, v.delivery_complete_count);
    out
}

/// A `ShareUpdateValue` (version 0).
pub fn encode_update_value(v: &ShareUpdateValue) -> Vec<u8> {
    let mut out = Vec::with_capacity(32 + 20 * v.state_batches.len());
    out.extend_from_slice(&VALUE_VERSION.to_be_bytes());
    out.extend_from_slice(&v.snapshot_epoch.to_be_bytes());
    out.extend_from_slice(&v.leader_epoch.to_be_bytes());
    out.extend_from_slice(&v.start_offset.to_be_bytes());
    put_batches(&mut out, &v.state_batches);
    put_delivery_complete_count(&mut out, v.delivery_complete_count);
    out
}

/// Decodes a `ShareSnapshotValue`.
pub fn decode_snapshot_value(bytes: &[u8]) -> Result<ShareSnapshotValue, DecodeError> {
    let mut r = Reader::new(bytes);
    read_version(&mut r)?;
    let snapshot_epoch = r.i32("snapshot epoch")?;
    let state_epoch = r.i32("state epoch")?;
    let leader_epoch = r.i32("leader epoch")?;
    let start_offset = r.i64("start offset")?;
    let create_timestamp = r.i64("create timestamp")?;
    let write_timestamp = r.i64("write timestamp")?;
    let state_batches = read_batches(&mut r)?;
    let delivery_complete_count = read_tagged_fields(&mut r)?;
    finish(&r, "snapshot value")?;
    Ok(ShareSnapshotValue {
        snapshot_epoch,
        state_epoch,
        leader_epoch,
        start_offset,
        delivery_complete_count,
        create_timestamp,
        write_timestamp,
        state_batches,
    })
}

/// Decodes a `ShareUpdateValue`.
pub fn decode_update_value(bytes: &[u8]) -> Result<ShareUpdateValue, DecodeError> {
    let mut r = Reader::new(bytes);
    read_version(&mut r)?;
    let snapshot_epoch = r.i32("snapshot epoch")?;
    let leader_epoch = r.i32("leader epoch")?;
    let start_offset = r.i64("start offset")?;
    let state_batches = read_batches(&mut r)?;
    let delivery_complete_count = read_tagged_fields(&mut r)?;
    finish(&r, "update value")?;
    Ok(ShareUpdateValue {
        snapshot_epoch,
        leader_epoch,
        start_offset,
        delivery_complete_count,
        state_batches,
    })
}

/// A compact array of state batches, each with an empty tagged-field section.
fn put_batches(out: &mut Vec<u8>, batches: &[StateBatch]) {
    put_uvarint(out, batches.len() + 1);
    for b in batches {
        out.extend_from_slice(&b.first_offset.to_be_bytes());
        out.extend_from_slice(&b.last_offset.to_be_bytes());
        out.push(b.delivery_state.code() as u8);
        out.extend_from_slice(&b.delivery_count.to_be_bytes());
        put_uvarint(out, 0);
    }
}

/// The struct's tagged fields: `delivery_complete_count` (tag 0) unless it is the default.
fn put_delivery_complete_count(out: &mut Vec<u8>, count: i32) {
    if count == UNKNOWN_DELIVERY_COMPLETE_COUNT {
        put_uvarint(out, 0);
    } else {
        put_uvarint(out, 1);
        put_uvarint(out, 0);
        put_uvarint(out, 4);
        out.extend_from_slice(&count.to_be_bytes());
    }
}

impl From<WireError> for DecodeError {
    fn from(e: WireError) -> DecodeError {
        match e {
            WireError::Truncated(what) => DecodeError::Truncated(what),
            WireError::VarintTooLong(what) => {
                DecodeError::Invalid(format!("{what}: varint too long"))
            }
            WireError::InvalidUtf8(what) => DecodeError::Invalid(format!("{what}: not UTF-8")),
            WireError::UnexpectedNull(what) => DecodeError::Invalid(format!("{what}: null")),
        }
    }
}

fn read_uuid(r: &mut Reader<'_>, what: &'static str) -> Result<Uuid, DecodeError> {
    Ok(Uuid::from_bytes(r.uuid(what)?))
}

fn read_version(r: &mut Reader<'_>) -> Result<(), DecodeError> {
    match r.i16("value version")? {
        VALUE_VERSION => Ok(()),
        v => Err(DecodeError::Invalid(format!("value version {v}"))),
    }
}

fn read_batches(r: &mut Reader<'_>) -> Result<Vec<StateBatch>, DecodeError> {
    let n = r.uvarint("state batches")?;
    let Some(n) = n.checked_sub(1) else {
        return Err(DecodeError::Invalid("null state batches".into()));
    };
    // Each batch takes at least 20 bytes: a count past what is left is corrupt.
    if n > (r.remaining().len() / 20) as u64 {
        return Err(DecodeError::Truncated("state batches"));
    }
    let mut out = Vec::with_capacity(n as usize);
    for _ in 0..n {
        let first_offset = r.i64("first offset")?;
        let last_offset = r.i64("last offset")?;
        let code = r.i8("delivery state")?;
        let delivery_state = DeliveryState::from_code(code)
            .ok_or_else(|| DecodeError::Invalid(format!("delivery state {code}")))?;
        let delivery_count = r.i16("delivery count")?;
        read_tagged_fields(r)?;
        out.push(StateBatch {
            first_offset,
            last_offset,
            delivery_state,
            delivery_count,
        });
    }
    Ok(out)
}

/// A tagged-field section: the value of tag 0 (`delivery_complete_count`, -1 when absent);
/// other tags are skipped.
fn read_tagged_fields(r: &mut Reader<'_>) -> Result<i32, DecodeError> {
    let mut count = UNKNOWN_DELIVERY_COMPLETE_COUNT;
    let n = r.uvarint("tagged fields")?;
    for _ in 0..n {
        let tag = r.uvarint("tag")?;
        let size = usize::try_from(r.uvarint("tag size")?)
            .map_err(|_| DecodeError::Invalid("tag size".into()))?;
        let data = r.take(size, "tagged field")?;
        if tag == 0 {
            let bytes: [u8; 4] = data
                .try_into()
                .map_err(|_| DecodeError::Invalid("delivery complete count".into()))?;
            count = i32::from_be_bytes(bytes);
        }
    }
    Ok(count)
}

fn finish(r: &Reader<'_>, what: &'static str) -> Result<(), DecodeError> {
    let left = r.remaining().len();
    if left == 0 {
        Ok(())
    } else {
        Err(DecodeError::Invalid(format!(
            "{left} bytes after the {what}"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key() -> ShareKey {
        ShareKey {
            group_id: "g".into(),
            topic_id: Uuid::from_u128(0x0102_0304_0506_0708_090a_0b0c_0d0e_0f10),
            partition: 3,
        }
    }

    /// The bytes Kafka's generated `ShareSnapshotKey` and `ShareSnapshotValue` write (worked
    /// out from the 4.4 schemas field by field).
    #[test]
    fn a_snapshot_is_written_as_kafka_writes_it() {
        let v = ShareSnapshotValue {
            snapshot_epoch: 1,
            state_epoch: 2,
            leader_epoch: 3,
            start_offset: 10,
            delivery_complete_count: UNKNOWN_DELIVERY_COMPLETE_COUNT,
            create_timestamp: 5,
            write_timestamp: 6,
            state_batches: vec![StateBatch::new(10, 12, DeliveryState::Acknowledged, 1)],
        };
        let (k, value) = ShareRecord::Snapshot(key(), v.clone()).encode();
        let mut want_key = vec![0, 0, 0, 1, b'g'];
        want_key.extend_from_slice(key().topic_id.as_bytes());
        want_key.extend_from_slice(&[0, 0, 0, 3]);
        assert_eq!(k, want_key);
        let mut want = vec![0, 0]; // version
        want.extend_from_slice(&1i32.to_be_bytes());
        want.extend_from_slice(&2i32.to_be_bytes());
        want.extend_from_slice(&3i32.to_be_bytes());
        want.extend_from_slice(&10i64.to_be_bytes());
        want.extend_from_slice(&5i64.to_be_bytes());
        want.extend_from_slice(&6i64.to_be_bytes());
        want.push(2); // compact array of one
        want.extend_from_slice(&10i64.to_be_bytes());
        want.extend_from_slice(&12i64.to_be_bytes());
        want.push(2);
        want.extend_from_slice(&1i16.to_be_bytes());
        want.push(0); // the batch's tagged fields
        want.push(0); // the value's tagged fields
        assert_eq!(value.as_deref(), Some(&want[..]));
        assert_eq!(
            ShareRecord::decode(&k, value.as_deref()),
            Ok(Some(ShareRecord::Snapshot(key(), v)))
        );
    }

    #[test]
    fn the_delivery_complete_count_is_a_tagged_field() {
        let v = ShareUpdateValue {
            snapshot_epoch: 0,
            leader_epoch: 4,
            start_offset: -1,
            delivery_complete_count: 7,
            state_batches: vec![],
        };
        let bytes = encode_update_value(&v);
        // One tagged field: tag 0, four bytes.
        assert_eq!(&bytes[bytes.len() - 7..], &[1, 0, 4, 0, 0, 0, 7]);
        assert_eq!(decode_update_value(&bytes), Ok(v));
    }

    #[test]
    fn tombstones_and_unknown_record_types() {
        let (k, v) = ShareRecord::Tombstone(key()).encode();
        assert_eq!(v, None);
        assert_eq!(
            ShareRecord::decode(&k, None),
            Ok(Some(ShareRecord::Tombstone(key())))
        );
        // An update key without a value is ignored; another record type is skipped.
        let update_key = encode_key(UPDATE_RECORD_TYPE, &key());
        assert_eq!(ShareRecord::decode(&update_key, None), Ok(None));
        assert_eq!(ShareRecord::decode(&[0, 7, 1, 2], Some(&[0, 0])), Ok(None));
    }

    #[test]
    fn corrupt_records_are_errors() {
        let (k, v) = ShareRecord::Snapshot(
            key(),
            ShareSnapshotValue {
                snapshot_epoch: 0,
                state_epoch: 0,
                leader_epoch: 0,
                start_offset: 0,
                delivery_complete_count: -1,
                create_timestamp: 0,
                write_timestamp: 0,
                state_batches: vec![StateBatch::new(0, 0, DeliveryState::Archived, 1)],
            },
        )
        .encode();
        let v = v.expect("value");
        for cut in 0..v.len() {
            assert!(
                ShareRecord::decode(&k, Some(&v[..cut])).is_err(),
                "cut at {cut}"
            );
        }
        for cut in 2..k.len() {
            assert!(
                ShareRecord::decode(&k[..cut], Some(&v)).is_err(),
                "key cut at {cut}"
            );
        }
        let mut bad_state = v.clone();
        // The batch's delivery state byte: version 2 + 4*3 + 8*3 + array 1 + 16 offsets.
        bad_state[2 + 12 + 24 + 1 + 16] = 3;
        assert!(matches!(
            ShareRecord::decode(&k, Some(&bad_state)),
            Err(DecodeError::Invalid(_))
        ));
        let mut trailing = v;
        trailing.push(0);
        assert!(ShareRecord::decode(&k, Some(&trailing)).is_err());
    }

    fn any_batch() -> impl Strategy<Value = StateBatch> {
        (
            any::<i64>(),
            any::<i64>(),
            prop_oneof![
                Just(DeliveryState::Available),
                Just(DeliveryState::Acquired),
                Just(DeliveryState::Acknowledged),
                Just(DeliveryState::Archived)
            ],
            any::<i16>(),
        )
            .prop_map(|(f, l, s, c)| StateBatch::new(f, l, s, c))
    }

    proptest! {
        #[test]
        fn snapshots_and_updates_round_trip(
            group in "[a-z.-]{0,40}",
            topic in any::<u128>(),
            partition in any::<i32>(),
            epochs in any::<(i32, i32, i32)>(),
            start in any::<i64>(),
            dcc in any::<i32>(),
            ts in any::<(i64, i64)>(),
            batches in proptest::collection::vec(any_batch(), 0..20),
        ) {
            let k = ShareKey { group_id: group, topic_id: Uuid::from_u128(topic), partition };
            let snapshot = ShareRecord::Snapshot(k.clone(), ShareSnapshotValue {
                snapshot_epoch: epochs.0, state_epoch: epochs.1, leader_epoch: epochs.2,
                start_offset: start, delivery_complete_count: dcc,
                create_timestamp: ts.0, write_timestamp: ts.1, state_batches: batches.clone(),
            });
            let (kb, vb) = snapshot.encode();
            prop_assert_eq!(ShareRecord::decode(&kb, vb.as_deref()), Ok(Some(snapshot)));
            let update = ShareRecord::Update(k, ShareUpdateValue {
                snapshot_epoch: epochs.0, leader_epoch: epochs.2, start_offset: start,
                delivery_complete_count: dcc, state_batches: batches,
            });
            let (kb, vb) = update.encode();
            prop_assert_eq!(ShareRecord::decode(&kb, vb.as_deref()), Ok(Some(update)));
        }

        #[test]
        fn arbitrary_bytes_never_panic(
            k in proptest::collection::vec(any::<u8>(), 0..64),
            v in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..128)),
        ) {
            let _ = ShareRecord::decode(&k, v.as_deref());
        }
    }
}
