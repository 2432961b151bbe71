//! Control records: the transaction markers a partition leader writes when a transaction ends
//! (Kafka's `EndTransactionMarker` and `ControlRecordType`).
//!
//! ```text
//! control batch: attributes = transactional | control, producer id + epoch of the
//!                transaction, base sequence -1, exactly one record:
//!   key   = version int16 (0) | type int16 (0 ABORT, 1 COMMIT)
//!   value = version int16 (0) | coordinator epoch int32
//! ```
//!
//! The transaction coordinator asks for markers with WriteTxnMarkers; the log builds the batch
//! ([`build_end_txn_marker_batch`]) and readers (followers, recovery) recognise it
//! ([`parse_end_txn_marker`]). Control batches are never handed to applications: clients skip
//! them by the attribute bit.

use crate::batch::{
    put_varlong, BatchView, ATTR_CONTROL, ATTR_TRANSACTIONAL, BATCH_HEADER_LEN, CRC_START,
    LOG_OVERHEAD, MAGIC_V2,
};

/// What a transaction marker says (Kafka's `ControlRecordType`, the two marker types).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ControlRecordType {
    /// The transaction is aborted: read_committed consumers drop its records.
    Abort,
    /// The transaction is committed.
    Commit,
}

impl ControlRecordType {
    /// The type field of the control record key.
    pub fn code(self) -> i16 {
        match self {
            ControlRecordType::Abort => 0,
            ControlRecordType::Commit => 1,
        }
    }

    /// A marker type from its code; `None` for other control records (e.g. KRaft's).
    pub fn from_code(code: i16) -> Option<ControlRecordType> {
        match code {
            0 => Some(ControlRecordType::Abort),
            1 => Some(ControlRecordType::Commit),
            _ => None,
        }
    }

    /// A marker that commits when `committed`, aborts otherwise (WriteTxnMarkers' field).
    pub fn from_committed(committed: bool) -> ControlRecordType {
        if committed {
            ControlRecordType::Commit
        } else {
            ControlRecordType::Abort
        }
    }
}

/// A transaction marker: its type and the epoch of the coordinator that wrote it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EndTransactionMarker {
    /// Commit or abort.
    pub control_type: ControlRecordType,
    /// The transaction coordinator's epoch (its `__transaction_state` partition's leader
    /// epoch); a marker from an older coordinator is fenced.
    pub coordinator_epoch: i32,
}

/// Version of the control record key and of the marker value written.
const CONTROL_RECORD_VERSION: i16 = 0;

/// Builds the control batch of one marker at `base_offset` in `partition_leader_epoch`: one
/// record, timestamp `timestamp`, for producer `producer_id` at `producer_epoch`.
pub fn build_end_txn_marker_batch(
    base_offset: i64,
    partition_leader_epoch: i32,
    producer_id: i64,
    producer_epoch: i16,
    timestamp: i64,
    marker: EndTransactionMarker,
) -> Vec<u8> {
    let mut key = Vec::with_capacity(4);
    key.extend_from_slice(&CONTROL_RECORD_VERSION.to_be_bytes());
    key.extend_from_slice(&marker.control_type.code().to_be_bytes());
    let mut value = Vec::with_capacity(6);
    value.extend_from_slice(&CONTROL_RECORD_VERSION.to_be_bytes());
    value.extend_from_slice(&marker.coordinator_epoch.to_be_bytes());
    let mut record = Vec::with_capacity(24);
    record.push(0u8); // attributes
    put_varlong(&mut record, 0); // timestamp delta
    put_varlong(&mut record, 0); // offset delta
    put_varlong(&mut record, key.len() as i64);
    record.extend_from_slice(&key);
    put_varlong(&mut record, value.len() as i64);
    record.extend_from_slice(&value);
    put_varlong(&mut record, 0); // headers
    let mut records = Vec::with_capacity(record.len() + 2);
    put_varlong(&mut records, record.len() as i64);
    records.extend_from_slice(&record);

    let mut b = Vec::with_capacity(BATCH_HEADER_LEN + records.len());
    b.extend_from_slice(&base_offset.to_be_bytes());
    let len = (BATCH_HEADER_LEN - LOG_OVERHEAD + records.len()) as i32;
    b.extend_from_slice(&len.to_be_bytes());
    b.extend_from_slice(&partition_leader_epoch.to_be_bytes());
    b.push(MAGIC_V2 as u8);
    b.extend_from_slice(&0u32.to_be_bytes()); // crc, filled below
    b.extend_from_slice(&(ATTR_TRANSACTIONAL | ATTR_CONTROL).to_be_bytes());
    b.extend_from_slice(&0i32.to_be_bytes()); // last offset delta
    b.extend_from_slice(&timestamp.to_be_bytes());
    b.extend_from_slice(&timestamp.to_be_bytes());
    b.extend_from_slice(&producer_id.to_be_bytes());
    b.extend_from_slice(&producer_epoch.to_be_bytes());
    b.extend_from_slice(&(-1i32).to_be_bytes()); // base sequence
    b.extend_from_slice(&1i32.to_be_bytes()); // record count
    b.extend_from_slice(&records);
    let crc = crc32c::crc32c(&b[CRC_START..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    b
}

/// The marker a control batch holds; `None` when the batch is not an uncompressed control
/// batch whose first record is a well-formed ABORT or COMMIT marker.
pub fn parse_end_txn_marker(batch: &BatchView<'_>) -> Option<EndTransactionMarker> {
    if !batch.is_control() || batch.record_count() < 1 {
        return None;
    }
    let body = batch.as_bytes().get(BATCH_HEADER_LEN..)?;
    let mut r = Reader { buf: body };
    let len = usize::try_from(r.varint()?).ok()?;
    let mut rec = Reader {
        buf: r.buf.get(..len)?,
    };
    rec.take(1)?; // attributes
    rec.varint()?; // timestamp delta
    rec.varint()?; // offset delta
    let key_len = usize::try_from(rec.varint()?).ok()?;
    let key = rec.take(key_len)?;
    let value_len = usize::try_from(rec.varint()?).ok()?;
    let value = rec.take(value_len)?;
    if key.len() < 4 || value.len() < 6 {
        return None;
    }
    let control_type = ControlRecordType::from_code(i16::from_be_bytes([key[2], key[3]]))?;
    let coordinator_epoch = i32::from_be_bytes([value[2], value[3], value[4], value[5]]);
    Some(EndTransactionMarker {
        control_type,
        coordinator_epoch,
    })
}

struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.buf.len() < n {
            return None;
        }
        let (head, rest) = self.buf.split_at(n);
        self.buf = rest;
        Some(head)
    }

    /// A zigzag varlong of at most 10 bytes.
    fn varint(&mut self) -> Option<i64> {
        let mut raw: u64 = 0;
        for i in 0..10 {
            let b = *self.take(1)?.first()?;
            raw |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Some(((raw >> 1) as i64) ^ -((raw & 1) as i64));
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_marker_batch_round_trips_and_is_a_valid_transactional_control_batch() {
        for control_type in [ControlRecordType::Abort, ControlRecordType::Commit] {
            let marker = EndTransactionMarker {
                control_type,
                coordinator_epoch: 7,
            };
            let bytes = build_end_txn_marker_batch(42, 3, 1000, 5, 1_700_000_000_000, marker);
            let b = BatchView::parse(&bytes).expect("parse");
            b.validate().expect("valid crc and counts");
            assert!(b.is_control() && b.is_transactional());
            assert_eq!((b.base_offset(), b.last_offset()), (42, 42));
            assert_eq!(b.partition_leader_epoch(), 3);
            assert_eq!((b.producer_id(), b.producer_epoch()), (1000, 5));
            assert_eq!(b.base_sequence(), -1);
            assert_eq!(parse_end_txn_marker(&b), Some(marker));
        }
    }

    #[test]
    fn kafka_protocol_decodes_the_marker_as_a_control_record() {
        let marker = EndTransactionMarker {
            control_type: ControlRecordType::Commit,
            coordinator_epoch: 2,
        };
        let bytes = build_end_txn_marker_batch(0, 0, 9, 1, 5, marker);
        let mut buf = bytes::Bytes::from(bytes);
        let set = kafka_protocol::records::RecordBatchDecoder::decode(&mut buf).expect("decode");
        assert_eq!(set.records.len(), 1);
        let r = &set.records[0];
        assert!(r.control && r.transactional);
        assert_eq!(r.key.as_deref(), Some(&[0u8, 0, 0, 1][..]));
        assert_eq!(r.value.as_deref(), Some(&[0u8, 0, 0, 0, 0, 2][..]));
    }

    proptest::proptest! {
        /// Any marker round-trips; any body behind a control header parses without panicking.
        #[test]
        fn markers_round_trip_and_garbage_never_panics(
            pid in 0i64..i64::MAX,
            epoch in 0i16..i16::MAX,
            coordinator_epoch in proptest::prelude::any::<i32>(),
            commit in proptest::prelude::any::<bool>(),
            garbage in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..64),
        ) {
            let marker = EndTransactionMarker {
                control_type: ControlRecordType::from_committed(commit),
                coordinator_epoch,
            };
            let bytes = build_end_txn_marker_batch(5, 1, pid, epoch, 0, marker);
            let b = BatchView::parse(&bytes).expect("parse");
            proptest::prop_assert_eq!(parse_end_txn_marker(&b), Some(marker));
            let mut junk = bytes[..BATCH_HEADER_LEN].to_vec();
            junk.extend_from_slice(&garbage);
            let len = (junk.len() - LOG_OVERHEAD) as i32;
            junk[8..12].copy_from_slice(&len.to_be_bytes());
            let b = BatchView::parse(&junk).expect("parse");
            let _ = parse_end_txn_marker(&b);
        }
    }

    #[test]
    fn data_batches_and_garbage_are_not_markers() {
        let data = crate::batch::encode_simple_batch(0, &[(None, Some(b"v"))]);
        let b = BatchView::parse(&data).expect("parse");
        assert_eq!(parse_end_txn_marker(&b), None);
        let marker = EndTransactionMarker {
            control_type: ControlRecordType::Abort,
            coordinator_epoch: 0,
        };
        let full = build_end_txn_marker_batch(0, 0, 1, 0, 0, marker);
        // Cut inside the record: the header still says control, the record is short.
        for cut in BATCH_HEADER_LEN..full.len() {
            let mut short = full[..cut].to_vec();
            let len = (cut - LOG_OVERHEAD) as i32;
            short[8..12].copy_from_slice(&len.to_be_bytes());
            let b = BatchView::parse(&short).expect("parse");
            assert_eq!(parse_end_txn_marker(&b), None, "cut at {cut}");
        }
    }
}
