//! Rewriting a RecordBatch v2 with a subset of its records: the log cleaner's tool (Kafka's
//! `MemoryRecords.filterTo` / `buildRetainedRecordsInto`).
//!
//! ```text
//! stored batch ─► decode_records: body decompressed (same codec rules as the record walk),
//!                 each record's byte range, offset delta, timestamp delta, key, null value
//!              ─► the cleaner picks the records to keep
//!              ─► rebuild_batch: kept records' bytes as they were (their offset and timestamp
//!                 deltas still count from the unchanged baseOffset / baseTimestamp), body
//!                 recompressed with the batch's codec, header rebuilt: batchLength, records
//!                 count, maxTimestamp (CreateTime: the kept records' largest), CRC-32C
//! ```
//!
//! The header keeps `baseOffset` and `lastOffsetDelta` (so the batch's last offset, which an
//! idempotent producer's last sequence is tied to, does not move), `partitionLeaderEpoch`, the
//! attributes, the producer id, epoch and base sequence. Offsets inside the batch may then have
//! gaps, as in a batch Kafka compacted; consumers compute each record's offset as
//! `baseOffset + offsetDelta`.

use std::io::Write;
use std::ops::Range;

use crate::batch::{
    BatchError, BatchView, Compression, ATTR_COMPRESSION_MASK, BATCH_HEADER_LEN, CRC_START,
    LOG_OVERHEAD,
};

/// One record inside a decoded batch body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordInfo {
    /// The whole record in [`DecodedRecords::raw`], its length varint included.
    pub range: Range<usize>,
    /// `offsetDelta`: the record's offset is the batch's base offset plus this.
    pub offset_delta: i32,
    /// `timestampDelta` from the batch's base timestamp.
    pub timestamp_delta: i64,
    /// The key's bytes in [`DecodedRecords::raw`]; `None` for a null key.
    pub key: Option<Range<usize>>,
    /// False for a null value (a tombstone).
    pub has_value: bool,
}

/// A batch's records, decompressed, with where each one lies.
#[derive(Debug, Clone)]
pub struct DecodedRecords {
    /// The uncompressed records, back to back.
    pub raw: Vec<u8>,
    /// Each record, in order.
    pub records: Vec<RecordInfo>,
}

impl DecodedRecords {
    /// A record's key bytes (`None` for a null key).
    pub fn key(&self, r: &RecordInfo) -> Option<&[u8]> {
        r.key.clone().map(|k| &self.raw[k])
    }
}

const BAD_RECORD: BatchError = BatchError::Invalid("record does not decode");

/// Decompresses `batch`'s records (at most `limit` bytes) and locates each one.
pub fn decode_records(batch: &BatchView<'_>, limit: usize) -> Result<DecodedRecords, BatchError> {
    let body = &batch.as_bytes()[BATCH_HEADER_LEN..];
    let raw = crate::record_walk::decompress(body, batch.compression()?, limit)?;
    let count = usize::try_from(batch.record_count()).map_err(|_| BAD_RECORD)?;
    let mut records = Vec::with_capacity(count.min(raw.len()));
    let mut pos = 0usize;
    for _ in 0..count {
        let start = pos;
        let len = usize::try_from(varint(&raw, &mut pos)?).map_err(|_| BAD_RECORD)?;
        let end = pos
            .checked_add(len)
            .filter(|&e| e <= raw.len())
            .ok_or(BAD_RECORD)?;
        let mut p = pos + 1; // attributes
        let timestamp_delta = varlong(&raw[..end], &mut p)?;
        let offset_delta = varint(&raw[..end], &mut p)?;
        let key_len = varint(&raw[..end], &mut p)?;
        let key = if key_len < 0 {
            None
        } else {
            let k = p..p + key_len as usize;
            if k.end > end {
                return Err(BAD_RECORD);
            }
            p = k.end;
            Some(k)
        };
        let value_len = varint(&raw[..end], &mut p)?;
        records.push(RecordInfo {
            range: start..end,
            offset_delta,
            timestamp_delta,
            key,
            has_value: value_len >= 0,
        });
        pos = end;
    }
    if pos != raw.len() {
        return Err(BatchError::Invalid("bytes after the last record"));
    }
    Ok(DecodedRecords { raw, records })
}

/// `original` with only the records `kept` (from [`decode_records`] of it), recompressed with
/// the same codec; see the module docs for what the header keeps. With no record kept, the
/// result is the header alone (records count 0), as Kafka keeps for a producer's last batch.
pub fn rebuild_batch(
    original: &BatchView<'_>,
    decoded: &DecodedRecords,
    kept: &[&RecordInfo],
) -> Result<Vec<u8>, BatchError> {
    if kept.is_empty() {
        // No body to decompress: an empty batch is uncompressed (Kafka's `writeEmptyHeader`).
        return Ok(empty_batch(original));
    }
    let mut plain = Vec::with_capacity(kept.iter().map(|r| r.range.len()).sum());
    for r in kept {
        plain.extend_from_slice(&decoded.raw[r.range.clone()]);
    }
    let body = compress(original.compression()?, &plain)?;
    let max_timestamp = if original.is_log_append_time() {
        original.max_timestamp()
    } else {
        kept.iter()
            .map(|r| original.base_timestamp().saturating_add(r.timestamp_delta))
            .max()
            .unwrap_or(original.max_timestamp())
    };
    let mut out = Vec::with_capacity(BATCH_HEADER_LEN + body.len());
    out.extend_from_slice(&original.as_bytes()[..BATCH_HEADER_LEN]);
    out.extend_from_slice(&body);
    let len = i32::try_from(out.len() - LOG_OVERHEAD)
        .map_err(|_| BatchError::Invalid("rebuilt batch too large"))?;
    out[8..12].copy_from_slice(&len.to_be_bytes());
    out[35..43].copy_from_slice(&max_timestamp.to_be_bytes());
    out[57..61].copy_from_slice(&(kept.len() as i32).to_be_bytes());
    let crc = crc32c::crc32c(&out[CRC_START..]);
    out[17..21].copy_from_slice(&crc.to_be_bytes());
    Ok(out)
}

/// `original`'s header alone: no record, uncompressed, its offsets, producer fields and max
/// timestamp kept (what [`rebuild_batch`] makes of a batch with nothing kept).
pub fn empty_batch(original: &BatchView<'_>) -> Vec<u8> {
    let mut out = original.as_bytes()[..BATCH_HEADER_LEN].to_vec();
    let len = (BATCH_HEADER_LEN - LOG_OVERHEAD) as i32;
    out[8..12].copy_from_slice(&len.to_be_bytes());
    out[57..61].copy_from_slice(&0i32.to_be_bytes());
    let attributes = i16::from_be_bytes([out[21], out[22]]) & !ATTR_COMPRESSION_MASK;
    out[21..23].copy_from_slice(&attributes.to_be_bytes());
    let crc = crc32c::crc32c(&out[CRC_START..]);
    out[17..21].copy_from_slice(&crc.to_be_bytes());
    out
}

/// The compression level of each codec that has one (KIP-390): a topic's or broker's
/// `compression.gzip.level`, `compression.lz4.level` and `compression.zstd.level`, used when
/// the broker compresses batches itself (a topic's `compression.type` other than the
/// producer's codec). Snappy has no level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CompressionLevels {
    /// `compression.gzip.level`: 1 (fastest) to 9 (smallest), or -1 for zlib's default (6).
    pub gzip: i32,
    /// `compression.lz4.level`: 1 to 17; the default 9 is LZ4's fast compressor, as in Kafka,
    /// any other level its high-compression one (the C library caps it at 12).
    pub lz4: i32,
    /// `compression.zstd.level`: -131072 to 22.
    pub zstd: i32,
}

impl Default for CompressionLevels {
    fn default() -> Self {
        CompressionLevels {
            gzip: Self::GZIP_DEFAULT,
            lz4: Self::LZ4_DEFAULT,
            zstd: Self::ZSTD_DEFAULT,
        }
    }
}

impl CompressionLevels {
    /// Kafka's `CompressionType.GZIP.defaultLevel()` (`Deflater.DEFAULT_COMPRESSION`).
    pub const GZIP_DEFAULT: i32 = -1;
    /// Kafka's `CompressionType.LZ4.defaultLevel()`.
    pub const LZ4_DEFAULT: i32 = 9;
    /// Kafka's `CompressionType.ZSTD.defaultLevel()` (`ZSTD_CLEVEL_DEFAULT`).
    pub const ZSTD_DEFAULT: i32 = 3;
    /// The config keys, topic and broker alike (Kafka's broker keys have the topic's names).
    pub const KEYS: [&'static str; 3] = [
        "compression.gzip.level",
        "compression.lz4.level",
        "compression.zstd.level",
    ];

    /// The level `key` (one of [`CompressionLevels::KEYS`]) sets, if `value` is one Kafka's
    /// validator for the key accepts; Kafka's message otherwise. `None` for another key.
    pub fn parse(key: &str, value: &str) -> Option<Result<i32, String>> {
        let (min, max) = match key {
            "compression.gzip.level" => (1, 9),
            "compression.lz4.level" => (1, 17),
            "compression.zstd.level" => (-131_072, 22),
            _ => return None,
        };
        let Ok(level) = value.trim().parse::<i32>() else {
            return Some(Err("Not a number of type INT".to_string()));
        };
        Some(if key == "compression.gzip.level" {
            if level > max || (level < min && level != Self::GZIP_DEFAULT) {
                Err(format!(
                    "Value must be between {min} and {max} or equal to {}",
                    Self::GZIP_DEFAULT
                ))
            } else {
                Ok(level)
            }
        } else if level < min {
            Err(format!("Value must be at least {min}"))
        } else if level > max {
            Err(format!("Value must be no more than {max}"))
        } else {
            Ok(level)
        })
    }

    /// Sets the level `key` names to `level` (already checked by [`CompressionLevels::parse`]);
    /// false for a key that is not a level's.
    pub fn set(&mut self, key: &str, level: i32) -> bool {
        match key {
            "compression.gzip.level" => self.gzip = level,
            "compression.lz4.level" => self.lz4 = level,
            "compression.zstd.level" => self.zstd = level,
            _ => return false,
        }
        true
    }

    /// The level `key` names.
    pub fn get(&self, key: &str) -> Option<i32> {
        match key {
            "compression.gzip.level" => Some(self.gzip),
            "compression.lz4.level" => Some(self.lz4),
            "compression.zstd.level" => Some(self.zstd),
            _ => None,
        }
    }
}

/// Compresses record bytes with `codec` at the default levels, as producers do; see
/// [`compress_at`].
pub fn compress(codec: Compression, plain: &[u8]) -> Result<Vec<u8>, BatchError> {
    compress_at(codec, plain, &CompressionLevels::default())
}

/// Compresses record bytes with `codec` at `levels`: gzip, raw snappy (what librdkafka
/// writes; every client reads it), an LZ4 frame of independent 64 KiB blocks (Kafka's
/// `KafkaLZ4BlockOutputStream`), zstd.
pub fn compress_at(
    codec: Compression,
    plain: &[u8],
    levels: &CompressionLevels,
) -> Result<Vec<u8>, BatchError> {
    let failed = |_| BatchError::Invalid("records do not compress");
    match codec {
        Compression::None => Ok(plain.to_vec()),
        Compression::Gzip => {
            let level = match u32::try_from(levels.gzip) {
                Ok(level) if level <= 9 => flate2::Compression::new(level),
                _ => flate2::Compression::default(),
            };
            let mut e = flate2::write::GzEncoder::new(Vec::new(), level);
            e.write_all(plain).map_err(failed)?;
            e.finish().map_err(failed)
        }
        Compression::Snappy => snap::raw::Encoder::new()
            .compress_vec(plain)
            .map_err(|_| BatchError::Invalid("records do not compress")),
        Compression::Lz4 => {
            // Level 0 is the frame library's fast compressor, which Kafka uses at its default.
            let level = if levels.lz4 == CompressionLevels::LZ4_DEFAULT {
                0
            } else {
                u32::try_from(levels.lz4).unwrap_or(0)
            };
            let mut e = lz4::EncoderBuilder::new()
                .block_size(lz4::BlockSize::Max64KB)
                .block_mode(lz4::BlockMode::Independent)
                .level(level)
                .build(Vec::new())
                .map_err(failed)?;
            e.write_all(plain).map_err(failed)?;
            let (out, result) = e.finish();
            result.map_err(failed)?;
            Ok(out)
        }
        Compression::Zstd => zstd::stream::encode_all(plain, levels.zstd).map_err(failed),
    }
}

fn varint(b: &[u8], pos: &mut usize) -> Result<i32, BatchError> {
    let mut raw = 0u32;
    for shift in (0..35).step_by(7) {
        let byte = *b.get(*pos).ok_or(BAD_RECORD)?;
        *pos += 1;
        raw |= u32::from(byte & 0x7f).wrapping_shl(shift);
        if byte & 0x80 == 0 {
            return Ok(((raw >> 1) as i32) ^ -((raw & 1) as i32));
        }
    }
    Err(BAD_RECORD)
}

fn varlong(b: &[u8], pos: &mut usize) -> Result<i64, BatchError> {
    let mut raw = 0u64;
    for shift in (0..70).step_by(7) {
        let byte = *b.get(*pos).ok_or(BAD_RECORD)?;
        *pos += 1;
        raw |= u64::from(byte & 0x7f).wrapping_shl(shift);
        if byte & 0x80 == 0 {
            return Ok(((raw >> 1) as i64) ^ -((raw & 1) as i64));
        }
    }
    Err(BAD_RECORD)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{encode_simple_batch, SimpleRecord};

    /// A batch of `recs` with the given codec (attributes low bits), via kafka-protocol's
    /// encoder for the compressed ones.
    fn compressed(codec: kafka_protocol::records::Compression, n: usize) -> Vec<u8> {
        use kafka_protocol::records::{
            Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
        };
        let recs: Vec<Record> = (0..n)
            .map(|i| Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: 0,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: TimestampType::Creation,
                offset: i as i64,
                sequence: i as i32,
                timestamp: 1000 + i as i64,
                key: Some(bytes::Bytes::from(format!("k{}", i % 3))),
                value: (i != 4).then(|| bytes::Bytes::from(format!("value-{i}"))),
                headers: Default::default(),
            })
            .collect();
        let mut buf = bytes::BytesMut::new();
        RecordBatchEncoder::encode(
            &mut buf,
            &recs,
            &RecordEncodeOptions {
                version: 2,
                compression: codec,
            },
        )
        .expect("encode");
        buf.to_vec()
    }

    #[test]
    fn filtering_keeps_offsets_codec_and_a_valid_crc() {
        use kafka_protocol::records::Compression as C;
        for codec in [C::None, C::Gzip, C::Snappy, C::Lz4, C::Zstd] {
            let bytes = compressed(codec, 6);
            let b = BatchView::parse(&bytes).expect("parse");
            let decoded = decode_records(&b, 1 << 20).expect("decode");
            assert_eq!(decoded.records.len(), 6);
            assert!(!decoded.records[4].has_value, "record 4 is a tombstone");
            assert_eq!(decoded.key(&decoded.records[5]), Some(&b"k2"[..]));
            let kept: Vec<&RecordInfo> = decoded.records.iter().skip(3).step_by(2).collect();
            let out = rebuild_batch(&b, &decoded, &kept).expect("rebuild");
            let nb = BatchView::parse(&out).expect("parse");
            assert_eq!(nb.computed_crc(), nb.crc(), "{codec:?}");
            assert_eq!(
                nb.compression().expect("codec"),
                b.compression().expect("codec")
            );
            assert_eq!((nb.base_offset(), nb.last_offset()), (0, 5));
            assert_eq!(nb.record_count(), 2);
            assert_eq!(nb.max_timestamp(), 1005);
            // A real decoder reads back offsets 3 and 5.
            let mut buf = bytes::Bytes::from(out.clone());
            let set =
                kafka_protocol::records::RecordBatchDecoder::decode(&mut buf).expect("decode");
            let offsets: Vec<i64> = set.records.iter().map(|r| r.offset).collect();
            assert_eq!(offsets, vec![3, 5], "{codec:?}");
            // Nothing kept: the header alone.
            let empty = rebuild_batch(&b, &decoded, &[]).expect("rebuild");
            assert_eq!(empty.len(), BATCH_HEADER_LEN);
            let eb = BatchView::parse(&empty).expect("parse");
            assert_eq!((eb.record_count(), eb.last_offset()), (0, 5));
            assert_eq!(eb.compression().expect("codec"), Compression::None);
            let mut buf = bytes::Bytes::from(empty.clone());
            let set =
                kafka_protocol::records::RecordBatchDecoder::decode(&mut buf).expect("decode");
            assert!(set.records.is_empty());
            assert_eq!(eb.computed_crc(), eb.crc());
        }
    }

    proptest::proptest! {
        /// Stored bytes are parsed here: any body and record count decode or fail, never
        /// panic, and what decodes lies inside the body.
        #[test]
        fn any_body_decodes_or_fails_cleanly(
            body in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200),
            count in -2i32..12,
            codec in 0i16..6,
        ) {
            let mut bytes = crate::batch::build_batch(0, codec, 10, 0, 0, count, &body);
            let crc = crc32c::crc32c(&bytes[CRC_START..]);
            bytes[17..21].copy_from_slice(&crc.to_be_bytes());
            let b = BatchView::parse(&bytes).expect("a header");
            if let Ok(d) = decode_records(&b, 1 << 16) {
                for r in &d.records {
                    proptest::prop_assert!(r.range.end <= d.raw.len());
                    if let Some(k) = &r.key {
                        proptest::prop_assert!(k.end <= r.range.end);
                    }
                }
                let kept: Vec<&RecordInfo> = d.records.iter().collect();
                proptest::prop_assert!(rebuild_batch(&b, &d, &kept).is_ok());
            }
        }
    }

    #[test]
    fn plain_batches_decode() {
        let recs: Vec<SimpleRecord<'_>> = vec![(Some(b"a"), Some(b"1")), (None, None)];
        let bytes = encode_simple_batch(5, &recs);
        let b = BatchView::parse(&bytes).expect("parse");
        let d = decode_records(&b, 1 << 20).expect("decode");
        assert_eq!(d.key(&d.records[0]), Some(&b"a"[..]));
        assert_eq!(d.records[1].key, None);
        assert!(!d.records[1].has_value);
        let mut broken = bytes.clone();
        broken[57..61].copy_from_slice(&3i32.to_be_bytes());
        let b = BatchView::parse(&broken).expect("parse");
        assert!(decode_records(&b, 1 << 20).is_err());
    }
}
