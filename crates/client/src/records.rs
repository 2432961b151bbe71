//! Records as the producer hands them in and the consumer hands them out, and the two
//! conversions to and from RecordBatch v2 bytes (through `kafka-protocol`'s encoder/decoder,
//! which also handles gzip/snappy/lz4/zstd).
//!
//! These functions are pure: no sockets, so batch round trips are unit-tested here.

use crate::error::{ClientError, Result};
use bytes::{Bytes, BytesMut};
use gregor_protocol::batch::{BatchError, BatchView};
use indexmap::IndexMap;
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

pub use kafka_protocol::records::Compression;

/// One record to produce.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProducerRecord {
    /// Target partition; `None` lets the partitioner choose (murmur2 of the key, else sticky).
    pub partition: Option<i32>,
    /// Record key (`None` is a null key).
    pub key: Option<Bytes>,
    /// Record value (`None` is a null value, a tombstone on compacted topics).
    pub value: Option<Bytes>,
    /// Record headers, in order; a header name may repeat.
    pub headers: Vec<(String, Option<Bytes>)>,
    /// Create time in ms since the epoch; `None` means "now".
    pub timestamp: Option<i64>,
}

impl ProducerRecord {
    /// A record with just a value.
    pub fn value(value: impl Into<Bytes>) -> Self {
        ProducerRecord {
            value: Some(value.into()),
            ..Self::default()
        }
    }

    /// A record with a key and a value.
    pub fn key_value(key: impl Into<Bytes>, value: impl Into<Bytes>) -> Self {
        ProducerRecord {
            key: Some(key.into()),
            value: Some(value.into()),
            ..Self::default()
        }
    }
}

/// One record read from a partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerRecord {
    /// Topic name.
    pub topic: String,
    /// Partition index.
    pub partition: i32,
    /// Offset in the partition.
    pub offset: i64,
    /// Timestamp in ms (create time or log append time, see `log_append_time`).
    pub timestamp: i64,
    /// True when `timestamp` was set by the broker (LogAppendTime).
    pub log_append_time: bool,
    /// Record key.
    pub key: Option<Bytes>,
    /// Record value.
    pub value: Option<Bytes>,
    /// Record headers.
    pub headers: Vec<(String, Option<Bytes>)>,
}

/// Parses a compression codec name as Kafka spells it (`none`, `gzip`, `snappy`, `lz4`, `zstd`).
pub fn parse_compression(s: &str) -> Result<Compression> {
    match s.to_ascii_lowercase().as_str() {
        "none" | "uncompressed" => Ok(Compression::None),
        "gzip" => Ok(Compression::Gzip),
        "snappy" => Ok(Compression::Snappy),
        "lz4" => Ok(Compression::Lz4),
        "zstd" => Ok(Compression::Zstd),
        other => Err(ClientError::InvalidArgument(format!(
            "unknown compression codec {other:?} (none, gzip, snappy, lz4, zstd)"
        ))),
    }
}

/// Encodes `records` as one RecordBatch v2 with base offset 0 (the broker assigns offsets),
/// no producer id, and `now_ms` for records without a timestamp, compressed at the codec's
/// default level.
pub fn encode_batch(
    records: &[&ProducerRecord],
    compression: Compression,
    now_ms: i64,
) -> Result<Bytes> {
    encode_batch_at(records, compression, None, now_ms)
}

/// The level key of a codec (`compression.gzip.level`, ...), `None` for a codec without levels.
pub fn compression_level_key(compression: Compression) -> Option<&'static str> {
    match compression {
        Compression::Gzip => Some("compression.gzip.level"),
        Compression::Lz4 => Some("compression.lz4.level"),
        Compression::Zstd => Some("compression.zstd.level"),
        Compression::None | Compression::Snappy => None,
    }
}

/// [`encode_batch`] at `level` (the producer's `compression.<codec>.level`, KIP-390) when
/// given; the level must be one the codec takes
/// ([`gregor_protocol::record_rewrite::CompressionLevels::parse`]).
pub fn encode_batch_at(
    records: &[&ProducerRecord],
    compression: Compression,
    level: Option<i32>,
    now_ms: i64,
) -> Result<Bytes> {
    if records.is_empty() {
        return Err(ClientError::InvalidArgument(
            "a batch needs at least one record".to_owned(),
        ));
    }
    let recs: Vec<Record> = records
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let mut headers = IndexMap::new();
            for (k, v) in &r.headers {
                headers.insert(StrBytes::from_string(k.clone()), v.clone());
            }
            Record {
                transactional: false,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: -1,
                producer_id: -1,
                producer_epoch: -1,
                timestamp_type: TimestampType::Creation,
                offset: i as i64,
                // The encoder starts a new batch whenever `offset - sequence` changes; keeping it
                // constant puts all records in one batch, and makes baseSequence -1 (no producer).
                sequence: i as i32 - 1,
                timestamp: r.timestamp.unwrap_or(now_ms),
                key: r.key.clone(),
                value: r.value.clone(),
                headers,
            }
        })
        .collect();
    let mut buf = BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression,
    };
    let encoded = match (level, compression_level_key(compression)) {
        (Some(level), Some(key)) => {
            use gregor_protocol::record_rewrite::{compress_at, CompressionLevels};
            let mut levels = CompressionLevels::default();
            levels.set(key, level);
            let codec = match compression {
                Compression::Gzip => gregor_protocol::batch::Compression::Gzip,
                Compression::Lz4 => gregor_protocol::batch::Compression::Lz4,
                _ => gregor_protocol::batch::Compression::Zstd,
            };
            let compressor = |plain: &mut BytesMut, out: &mut BytesMut, _: Compression| {
                out.extend_from_slice(&compress_at(codec, plain, &levels)?);
                Ok(())
            };
            RecordBatchEncoder::encode_with_custom_compression(
                &mut buf,
                &recs,
                &options,
                Some(compressor),
            )
        }
        _ => RecordBatchEncoder::encode(&mut buf, &recs, &options),
    };
    encoded.map_err(|e| ClientError::Records(format!("encode: {e}")))?;
    Ok(buf.freeze())
}

/// What [`decode_record_set`] found in a fetched record set.
#[derive(Debug, Default)]
pub struct DecodedRecords {
    /// Data records at or above the requested offset, in offset order.
    pub records: Vec<ConsumerRecord>,
    /// The offset after the last complete batch, when at least one batch was complete.
    pub next_offset: Option<i64>,
}

/// Decodes the complete batches of a fetched record set, skipping control batches and records
/// below `from_offset` (a fetch returns whole batches, so it may start mid-batch). A truncated
/// batch at the end (the broker cut the set at `max_bytes`) is ignored.
pub fn decode_record_set(
    topic: &str,
    partition: i32,
    set: &Bytes,
    from_offset: i64,
) -> Result<DecodedRecords> {
    let mut out = DecodedRecords::default();
    let mut pos = 0usize;
    while pos < set.len() {
        let view = match BatchView::parse(&set[pos..]) {
            Ok(v) => v,
            Err(BatchError::Malformed(_)) => break,
            Err(e) => return Err(ClientError::Records(e.to_string())),
        };
        let size = view.size();
        let next = view.next_offset();
        if view.magic() != gregor_protocol::batch::MAGIC_V2 {
            return Err(ClientError::Records(format!(
                "{topic}-{partition}: batch at offset {} has magic {} (only v2 is supported)",
                view.base_offset(),
                view.magic()
            )));
        }
        if !view.is_control() && next > from_offset {
            let mut slice = set.slice(pos..pos + size);
            let decoded = RecordBatchDecoder::decode(&mut slice).map_err(|e| {
                ClientError::Records(format!(
                    "{topic}-{partition}: batch at offset {}: {e}",
                    view.base_offset()
                ))
            })?;
            for r in decoded.records {
                if r.offset < from_offset || r.control {
                    continue;
                }
                out.records.push(ConsumerRecord {
                    topic: topic.to_owned(),
                    partition,
                    offset: r.offset,
                    timestamp: r.timestamp,
                    log_append_time: r.timestamp_type == TimestampType::LogAppend,
                    key: r.key,
                    value: r.value,
                    headers: r
                        .headers
                        .into_iter()
                        .map(|(k, v)| (k.as_str().to_owned(), v))
                        .collect(),
                });
            }
        }
        out.next_offset = Some(next);
        pos += size;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<ProducerRecord> {
        vec![
            ProducerRecord::key_value("k1", "v1"),
            ProducerRecord {
                value: Some(Bytes::from_static(b"v2")),
                headers: vec![("h".to_owned(), Some(Bytes::from_static(b"x")))],
                timestamp: Some(5),
                ..ProducerRecord::default()
            },
            ProducerRecord {
                key: Some(Bytes::from_static(b"k3")),
                ..ProducerRecord::default()
            },
        ]
    }

    /// KIP-390 on the producer side: the level changes how hard a batch is compressed, never
    /// what it holds.
    #[test]
    fn a_compression_level_changes_the_size_not_the_records() {
        let recs: Vec<ProducerRecord> = (0..200)
            .map(|i| ProducerRecord {
                key: Some(Bytes::from(format!("k{i}"))),
                value: Some(Bytes::from(format!(
                    "{i} broker {} offset {} leader {}",
                    i * 7 % 13,
                    i * 31 % 101,
                    i % 5
                ))),
                ..ProducerRecord::default()
            })
            .collect();
        let refs: Vec<&ProducerRecord> = recs.iter().collect();
        for (c, low, high) in [(Compression::Gzip, 1, 9), (Compression::Zstd, -50, 19)] {
            let fast = encode_batch_at(&refs, c, Some(low), 1).expect("encode");
            let hard = encode_batch_at(&refs, c, Some(high), 1).expect("encode");
            assert!(
                hard.len() < fast.len(),
                "{c:?}: {} vs {}",
                hard.len(),
                fast.len()
            );
            for batch in [fast, hard] {
                let out = decode_record_set("t", 0, &batch, 0).expect("decode");
                assert_eq!(out.records.len(), 200);
                assert_eq!(out.records[7].value, recs[7].value);
            }
        }
        // A codec without levels ignores one.
        assert_eq!(
            encode_batch_at(&refs, Compression::Snappy, Some(3), 1).expect("encode"),
            encode_batch(&refs, Compression::Snappy, 1).expect("encode")
        );
    }

    #[test]
    fn encode_decode_round_trip_for_every_codec() {
        let recs = sample();
        let refs: Vec<&ProducerRecord> = recs.iter().collect();
        for c in [
            Compression::None,
            Compression::Gzip,
            Compression::Snappy,
            Compression::Lz4,
            Compression::Zstd,
        ] {
            let batch = encode_batch(&refs, c, 1000).expect("encode");
            // One batch the broker-side validator accepts.
            let validated =
                gregor_protocol::batch::validate_record_set(&batch, 1 << 20).expect("valid");
            let summary = validated.summary();
            assert_eq!(summary.batch_count, 1, "{c:?}");
            assert_eq!(summary.offset_count, 3);
            let view = BatchView::parse(&batch).expect("view");
            assert_eq!(view.base_sequence(), -1);
            assert_eq!(view.producer_id(), -1);

            let out = decode_record_set("t", 0, &batch, 0).expect("decode");
            assert_eq!(out.next_offset, Some(3));
            assert_eq!(out.records.len(), 3);
            assert_eq!(out.records[0].key.as_deref(), Some(&b"k1"[..]));
            assert_eq!(out.records[0].timestamp, 1000);
            assert_eq!(out.records[1].offset, 1);
            assert_eq!(out.records[1].timestamp, 5);
            assert_eq!(out.records[1].headers[0].0, "h");
            assert_eq!(out.records[2].value, None);
        }
    }

    #[test]
    fn records_below_the_fetch_offset_are_skipped_and_truncated_tail_ignored() {
        let recs = sample();
        let refs: Vec<&ProducerRecord> = recs.iter().collect();
        let mut set = encode_batch(&refs, Compression::None, 1)
            .expect("encode")
            .to_vec();
        let mut second = encode_batch(&refs, Compression::None, 1)
            .expect("encode")
            .to_vec();
        gregor_protocol::batch::assign_offsets(&mut second, 3, 0, None).expect("assign");
        set.extend_from_slice(&second);
        let full = Bytes::from(set.clone());
        let out = decode_record_set("t", 0, &full, 2).expect("decode");
        let offsets: Vec<i64> = out.records.iter().map(|r| r.offset).collect();
        assert_eq!(offsets, vec![2, 3, 4, 5]);
        assert_eq!(out.next_offset, Some(6));

        let cut = Bytes::from(set[..set.len() - 5].to_vec());
        let out = decode_record_set("t", 0, &cut, 0).expect("decode");
        assert_eq!(out.records.len(), 3);
        assert_eq!(out.next_offset, Some(3));
    }

    #[test]
    fn compression_names_parse() {
        assert_eq!(parse_compression("ZSTD").expect("zstd"), Compression::Zstd);
        assert!(parse_compression("brotli").is_err());
    }
}
