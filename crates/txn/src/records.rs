//! Records of the internal compacted topic `__transaction_state`, in Kafka's formats
//! (`TransactionLogKey` / `TransactionLogValue`), and which partition holds a transactional id.
//!
//! ```text
//! key   version 0 : { transactional_id: string }
//! value version 0 : { producer_id: int64, producer_epoch: int16, txn_timeout_ms: int32,
//!                     status: int8, partitions: nullable [ { topic: string,
//!                     partition_ids: [int32] } ], last_update_ms: int64, start_ms: int64 }
//! value version 1 : the same fields, flexible (compact strings and arrays, tagged fields), plus
//!                   tagged 0 previous_producer_id: int64 (default -1),
//!                   tagged 1 next_producer_id: int64 (default -1, transactions v2),
//!                   tagged 2 client_transaction_version: int16 (default 0)
//! ```
//! Every key and value starts with its int16 version. The partitions are null in `Empty`. A
//! `None` value is a tombstone: the transactional id expired (`Dead`). This crate writes value
//! version 1 (so the previous producer id survives a restart) and reads both.

use std::collections::BTreeSet;

use crate::error::DecodeError;
use crate::metadata::{TopicPartition, TransactionMetadata, NO_PRODUCER_EPOCH, NO_PRODUCER_ID};
use crate::state::TransactionState;

/// Kafka's default `transaction.state.log.num.partitions`.
pub const DEFAULT_TRANSACTION_STATE_PARTITIONS: i32 = 50;
/// The internal topic holding transaction metadata.
pub const TRANSACTION_STATE_TOPIC: &str = "__transaction_state";
/// The value version this crate writes.
pub const VALUE_VERSION: i16 = 1;

/// Java's `String.hashCode` (UTF-16 code units, wrapping `31 * h + c`).
pub fn java_string_hash_code(s: &str) -> i32 {
    s.encode_utf16().fold(0i32, |h, unit| {
        h.wrapping_mul(31).wrapping_add(i32::from(unit))
    })
}

/// The `__transaction_state` partition of `transactional_id`:
/// `Utils.abs(transactionalId.hashCode) % transaction.state.log.num.partitions`, where Kafka's
/// `Utils.abs(Integer.MIN_VALUE)` is 0.
pub fn partition_for_transactional_id(transactional_id: &str, partition_count: i32) -> i32 {
    let count = partition_count.max(1);
    java_string_hash_code(transactional_id)
        .checked_abs()
        .unwrap_or(0)
        % count
}

/// The `__consumer_offsets` partition of a group (the same hash), for AddOffsetsToTxn.
pub fn partition_for_group(group_id: &str, partition_count: i32) -> i32 {
    partition_for_transactional_id(group_id, partition_count)
}

/// The decoded value of a `__transaction_state` record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionLogValue {
    pub producer_id: i64,
    pub previous_producer_id: i64,
    pub next_producer_id: i64,
    pub producer_epoch: i16,
    pub txn_timeout_ms: i32,
    pub state: TransactionState,
    pub partitions: BTreeSet<TopicPartition>,
    pub last_update_timestamp_ms: i64,
    pub start_timestamp_ms: i64,
    pub client_transaction_version: i16,
}

impl TransactionLogValue {
    pub fn from_metadata(m: &TransactionMetadata) -> TransactionLogValue {
        TransactionLogValue {
            producer_id: m.producer_id,
            previous_producer_id: m.last_producer_id,
            next_producer_id: m.next_producer_id,
            producer_epoch: m.producer_epoch,
            txn_timeout_ms: m.txn_timeout_ms,
            state: m.state,
            partitions: m.partitions.clone(),
            last_update_timestamp_ms: m.txn_last_update_timestamp_ms,
            start_timestamp_ms: m.txn_start_timestamp_ms,
            client_transaction_version: m.client_transaction_version,
        }
    }

    pub fn into_metadata(self, transactional_id: String) -> TransactionMetadata {
        TransactionMetadata {
            transactional_id,
            producer_id: self.producer_id,
            last_producer_id: self.previous_producer_id,
            producer_epoch: self.producer_epoch,
            last_producer_epoch: NO_PRODUCER_EPOCH,
            next_producer_id: self.next_producer_id,
            client_transaction_version: self.client_transaction_version,
            txn_timeout_ms: self.txn_timeout_ms,
            state: self.state,
            partitions: self.partitions,
            txn_start_timestamp_ms: self.start_timestamp_ms,
            txn_last_update_timestamp_ms: self.last_update_timestamp_ms,
            pending_state: None,
        }
    }
}

/// The record (key, value) that persists `m`: a tombstone for `Dead`.
pub fn record_for(m: &TransactionMetadata) -> (Vec<u8>, Option<Vec<u8>>) {
    let key = encode_key(&m.transactional_id);
    let value = (m.state != TransactionState::Dead)
        .then(|| encode_value(&TransactionLogValue::from_metadata(m), VALUE_VERSION));
    (key, value)
}

pub fn encode_key(transactional_id: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(4 + transactional_id.len());
    out.extend_from_slice(&0i16.to_be_bytes());
    put_string(&mut out, transactional_id);
    out
}

/// The transactional id of a key; `Ok(None)` for a key version this crate does not know
/// (skipped when loading, as Kafka does with keys of other record types).
pub fn decode_key(bytes: &[u8]) -> Result<Option<String>, DecodeError> {
    let mut r = Reader { buf: bytes };
    let version = r.i16("key version")?;
    if version != 0 {
        return Ok(None);
    }
    let id = r.string("transactional id")?;
    r.finish()?;
    Ok(Some(id))
}

/// Encodes `v` as value `version` (0 or 1; anything else is written as 1).
pub fn encode_value(v: &TransactionLogValue, version: i16) -> Vec<u8> {
    let flexible = version >= 1;
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(&(if flexible { 1i16 } else { 0 }).to_be_bytes());
    out.extend_from_slice(&v.producer_id.to_be_bytes());
    out.extend_from_slice(&v.producer_epoch.to_be_bytes());
    out.extend_from_slice(&v.txn_timeout_ms.to_be_bytes());
    out.push(v.state.id() as u8);
    // Group the partitions by topic, in order.
    let mut topics: Vec<(&str, Vec<i32>)> = Vec::new();
    for tp in &v.partitions {
        match topics.last_mut() {
            Some((t, ids)) if *t == tp.topic => ids.push(tp.partition),
            _ => topics.push((&tp.topic, vec![tp.partition])),
        }
    }
    let null = v.state == TransactionState::Empty && v.partitions.is_empty();
    if flexible {
        if null {
            put_uvarint(&mut out, 0);
        } else {
            put_uvarint(&mut out, topics.len() as u64 + 1);
            for (topic, ids) in &topics {
                put_uvarint(&mut out, topic.len() as u64 + 1);
                out.extend_from_slice(topic.as_bytes());
                put_uvarint(&mut out, ids.len() as u64 + 1);
                for id in ids {
                    out.extend_from_slice(&id.to_be_bytes());
                }
                put_uvarint(&mut out, 0); // no tagged fields
            }
        }
    } else if null {
        out.extend_from_slice(&(-1i32).to_be_bytes());
    } else {
        out.extend_from_slice(&(topics.len() as i32).to_be_bytes());
        for (topic, ids) in &topics {
            put_string(&mut out, topic);
            out.extend_from_slice(&(ids.len() as i32).to_be_bytes());
            for id in ids {
                out.extend_from_slice(&id.to_be_bytes());
            }
        }
    }
    out.extend_from_slice(&v.last_update_timestamp_ms.to_be_bytes());
    out.extend_from_slice(&v.start_timestamp_ms.to_be_bytes());
    if flexible {
        let mut tags: Vec<(u64, Vec<u8>)> = Vec::new();
        if v.previous_producer_id != NO_PRODUCER_ID {
            tags.push((0, v.previous_producer_id.to_be_bytes().to_vec()));
        }
        if v.next_producer_id != NO_PRODUCER_ID {
            tags.push((1, v.next_producer_id.to_be_bytes().to_vec()));
        }
        if v.client_transaction_version != 0 {
            tags.push((2, v.client_transaction_version.to_be_bytes().to_vec()));
        }
        put_uvarint(&mut out, tags.len() as u64);
        for (tag, data) in tags {
            put_uvarint(&mut out, tag);
            put_uvarint(&mut out, data.len() as u64);
            out.extend_from_slice(&data);
        }
    }
    out
}

pub fn decode_value(bytes: &[u8]) -> Result<TransactionLogValue, DecodeError> {
    let mut r = Reader { buf: bytes };
    let version = r.i16("value version")?;
    if !(0..=1).contains(&version) {
        return Err(DecodeError::UnsupportedVersion {
            what: "TransactionLogValue",
            version,
        });
    }
    let flexible = version == 1;
    let producer_id = r.i64("producer id")?;
    let producer_epoch = r.i16("producer epoch")?;
    let txn_timeout_ms = r.i32("transaction timeout")?;
    let status = r.i8("transaction status")?;
    let state = TransactionState::from_id(status).ok_or(DecodeError::UnknownStatus(status))?;
    let mut partitions = BTreeSet::new();
    let topic_count = if flexible {
        r.compact_len("partitions")?
    } else {
        r.len_i32("partitions")?
    };
    for _ in 0..topic_count.unwrap_or(0) {
        let topic = if flexible {
            let len = r
                .compact_len("topic")?
                .ok_or(DecodeError::UnexpectedNull("topic"))?;
            r.utf8(len, "topic")?
        } else {
            r.string("topic")?
        };
        let ids = if flexible {
            r.compact_len("partition ids")?
        } else {
            r.len_i32("partition ids")?
        }
        .ok_or(DecodeError::UnexpectedNull("partition ids"))?;
        for _ in 0..ids {
            partitions.insert(TopicPartition::new(topic.clone(), r.i32("partition id")?));
        }
        if flexible {
            r.skip_tagged_fields()?;
        }
    }
    let mut value = TransactionLogValue {
        producer_id,
        previous_producer_id: NO_PRODUCER_ID,
        next_producer_id: NO_PRODUCER_ID,
        producer_epoch,
        txn_timeout_ms,
        state,
        partitions,
        last_update_timestamp_ms: r.i64("last update timestamp")?,
        start_timestamp_ms: r.i64("start timestamp")?,
        client_transaction_version: 0,
    };
    if flexible {
        let count = r.uvarint("tagged field count")?;
        for _ in 0..count {
            let tag = r.uvarint("tag")?;
            let size = r.uvarint("tag size")? as usize;
            let mut field = Reader {
                buf: r.take(size, "tagged field")?,
            };
            match tag {
                0 => value.previous_producer_id = field.i64("previous producer id")?,
                1 => value.next_producer_id = field.i64("next producer id")?,
                2 => value.client_transaction_version = field.i16("client transaction version")?,
                _ => {} // unknown tags are skipped, as the schema promises
            }
        }
    }
    r.finish()?;
    Ok(value)
}

fn put_string(out: &mut Vec<u8>, s: &str) {
    // Transactional ids and topic names are far below 32 KiB; Kafka rejects longer ones.
    let len = i16::try_from(s.len()).unwrap_or(i16::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&s.as_bytes()[..len as usize]);
}

fn put_uvarint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], DecodeError> {
        if self.buf.len() < n {
            return Err(DecodeError::Truncated(what));
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }
    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], DecodeError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N, what)?);
        Ok(a)
    }
    fn i8(&mut self, what: &'static str) -> Result<i8, DecodeError> {
        Ok(i8::from_be_bytes(self.array(what)?))
    }
    fn i16(&mut self, what: &'static str) -> Result<i16, DecodeError> {
        Ok(i16::from_be_bytes(self.array(what)?))
    }
    fn i32(&mut self, what: &'static str) -> Result<i32, DecodeError> {
        Ok(i32::from_be_bytes(self.array(what)?))
    }
    fn i64(&mut self, what: &'static str) -> Result<i64, DecodeError> {
        Ok(i64::from_be_bytes(self.array(what)?))
    }
    fn uvarint(&mut self, what: &'static str) -> Result<u64, DecodeError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.array::<1>(what)?[0];
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(DecodeError::Truncated(what))
    }
    fn utf8(&mut self, len: usize, what: &'static str) -> Result<String, DecodeError> {
        let bytes = self.take(len, what)?;
        String::from_utf8(bytes.to_vec()).map_err(|_| DecodeError::InvalidUtf8(what))
    }
    fn string(&mut self, what: &'static str) -> Result<String, DecodeError> {
        let len = self.i16(what)?;
        if len < 0 {
            return Err(DecodeError::NegativeLength {
                what,
                len: i64::from(len),
            });
        }
        self.utf8(len as usize, what)
    }
    /// An int32 array length; `None` for null (-1).
    fn len_i32(&mut self, what: &'static str) -> Result<Option<usize>, DecodeError> {
        match self.i32(what)? {
            -1 => Ok(None),
            n if n < 0 => Err(DecodeError::NegativeLength {
                what,
                len: i64::from(n),
            }),
            // Each element takes at least 4 bytes: a length beyond the input is a lie.
            n if n as usize > self.buf.len() => Err(DecodeError::Truncated(what)),
            n => Ok(Some(n as usize)),
        }
    }
    /// A compact length (uvarint n + 1); `None` for null (0).
    fn compact_len(&mut self, what: &'static str) -> Result<Option<usize>, DecodeError> {
        match self.uvarint(what)? {
            0 => Ok(None),
            n if (n - 1) as usize > self.buf.len() => Err(DecodeError::Truncated(what)),
            n => Ok(Some((n - 1) as usize)),
        }
    }
    fn skip_tagged_fields(&mut self) -> Result<(), DecodeError> {
        let count = self.uvarint("tagged field count")?;
        for _ in 0..count {
            self.uvarint("tag")?;
            let size = self.uvarint("tag size")? as usize;
            self.take(size, "tagged field")?;
        }
        Ok(())
    }
    fn finish(&self) -> Result<(), DecodeError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::TrailingBytes(self.buf.len()))
        }
    }
}
