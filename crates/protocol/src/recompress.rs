//! Re-compression of produced batches to a topic's `compression.type` (Kafka's
//! `LogValidator`, the path where the source codec differs from the target): each batch whose
//! codec is not the target is decoded and written again, one batch for one, with the target
//! codec. Everything the batch header carries is kept: base offset, offset deltas, producer
//! id, epoch and base sequence, the transactional flag, the partition leader epoch and the
//! timestamps. Batches already in the target codec are copied unchanged, and a record set
//! with nothing to change is not copied at all.
//!
//! The record set must have been validated first ([`crate::batch::validate_record_set`]): the
//! decoder here trusts lengths and does not bound the decompressed size.

use bytes::{Bytes, BytesMut};
use kafka_protocol::records::{
    Compression as Codec, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions,
};

use crate::batch::{batches, BatchError, Compression};
use crate::record_rewrite::{compress_at, CompressionLevels};

/// A topic's `compression.type`: keep what the producer sent, or one codec for every batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TopicCompression {
    /// `producer`: batches are stored as sent.
    #[default]
    Producer,
    /// `uncompressed`, `gzip`, `snappy`, `lz4` or `zstd`.
    Codec(Compression),
}

impl TopicCompression {
    /// Parses a `compression.type` value (Kafka's names).
    pub fn parse(value: &str) -> Option<TopicCompression> {
        Some(match value.trim() {
            "producer" => TopicCompression::Producer,
            "uncompressed" => TopicCompression::Codec(Compression::None),
            "gzip" => TopicCompression::Codec(Compression::Gzip),
            "snappy" => TopicCompression::Codec(Compression::Snappy),
            "lz4" => TopicCompression::Codec(Compression::Lz4),
            "zstd" => TopicCompression::Codec(Compression::Zstd),
            _ => return None,
        })
    }

    /// The value as Kafka names it.
    pub fn name(self) -> &'static str {
        match self {
            TopicCompression::Producer => "producer",
            TopicCompression::Codec(Compression::None) => "uncompressed",
            TopicCompression::Codec(Compression::Gzip) => "gzip",
            TopicCompression::Codec(Compression::Snappy) => "snappy",
            TopicCompression::Codec(Compression::Lz4) => "lz4",
            TopicCompression::Codec(Compression::Zstd) => "zstd",
        }
    }
}

fn codec(c: Compression) -> Codec {
    match c {
        Compression::None => Codec::None,
        Compression::Gzip => Codec::Gzip,
        Compression::Snappy => Codec::Snappy,
        Compression::Lz4 => Codec::Lz4,
        Compression::Zstd => Codec::Zstd,
    }
}

/// The record set with every batch in `target`'s codec, compressed at `levels` (KIP-390), or
/// `None` when nothing changes (`Producer`, or every batch already in the codec: as in Kafka,
/// a batch in the target codec is not compressed again for another level). A batch that does
/// not decode is CORRUPT_MESSAGE (it passed validation, so this means a codec's stream is bad).
pub fn recompress(
    records: &[u8],
    target: TopicCompression,
    levels: &CompressionLevels,
) -> Result<Option<Vec<u8>>, BatchError> {
    let TopicCompression::Codec(target) = target else {
        return Ok(None);
    };
    let mut needed = false;
    for batch in batches(records) {
        if batch?.compression()? != target {
            needed = true;
            break;
        }
    }
    if !needed {
        return Ok(None);
    }
    let mut out = BytesMut::with_capacity(records.len());
    for batch in batches(records) {
        let batch = batch?;
        if batch.compression()? == target {
            out.extend_from_slice(batch.as_bytes());
            continue;
        }
        let mut buf = Bytes::copy_from_slice(batch.as_bytes());
        let set = RecordBatchDecoder::decode(&mut buf)
            .map_err(|_| BatchError::Invalid("compressed records do not decode"))?;
        let options = RecordEncodeOptions {
            version: 2,
            compression: codec(target),
        };
        let start = out.len();
        // The encoder hands over the records' bytes; they are compressed here, at the levels.
        let compressor = |plain: &mut BytesMut, out: &mut BytesMut, _: Codec| {
            out.extend_from_slice(&compress_at(target, plain, levels)?);
            Ok(())
        };
        RecordBatchEncoder::encode_with_custom_compression(
            &mut out,
            set.records.iter(),
            &options,
            Some(compressor),
        )
        .map_err(|_| BatchError::Invalid("records cannot be re-encoded"))?;
        // The encoder derives the header from the records; the span is the batch's own, and
        // an empty batch (nothing for the encoder to see) stays as it is.
        if set.records.is_empty() {
            out.truncate(start);
            out.extend_from_slice(batch.as_bytes());
            continue;
        }
        crate::batch::keep_span(&mut out[start..], &batch);
    }
    Ok(Some(out.to_vec()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::{validate_record_set, BatchView};
    use indexmap::IndexMap;
    use kafka_protocol::records::{Record, TimestampType};

    fn records(n: usize, producer_id: i64, base_sequence: i32) -> Vec<Record> {
        (0..n)
            .map(|i| Record {
                transactional: producer_id >= 0,
                control: false,
                delete_horizon: false,
                partition_leader_epoch: 7,
                producer_id,
                producer_epoch: if producer_id >= 0 { 3 } else { -1 },
                timestamp_type: TimestampType::Creation,
                offset: i as i64,
                // As kafka-protocol's decoder gives them: base sequence + offset delta, also
                // for the -1 of a producer without sequences.
                sequence: base_sequence.wrapping_add(i as i32),
                timestamp: 1_700_000_000_000 + i as i64,
                key: Some(Bytes::from(format!("key-{i}"))),
                value: Some(Bytes::from(vec![b'v'; 100 + i])),
                headers: IndexMap::from([(
                    kafka_protocol::protocol::StrBytes::from_static_str("h"),
                    Some(Bytes::from_static(b"x")),
                )]),
            })
            .collect()
    }

    fn encode(recs: &[Record], c: Codec) -> Vec<u8> {
        let mut buf = BytesMut::new();
        RecordBatchEncoder::encode(
            &mut buf,
            recs.iter(),
            &RecordEncodeOptions {
                version: 2,
                compression: c,
            },
        )
        .expect("encodes");
        buf.to_vec()
    }

    fn decode_all(bytes: &[u8]) -> Vec<(Codec, Vec<Record>)> {
        let mut buf = Bytes::copy_from_slice(bytes);
        RecordBatchDecoder::decode_all(&mut buf)
            .expect("decodes")
            .into_iter()
            .map(|s| (s.compression, s.records))
            .collect()
    }

    #[test]
    fn producer_and_matching_codecs_change_nothing() {
        let set = encode(&records(5, -1, -1), Codec::Lz4);
        assert_eq!(
            recompress(
                &set,
                TopicCompression::Producer,
                &CompressionLevels::default()
            )
            .expect("ok"),
            None
        );
        assert_eq!(
            recompress(
                &set,
                TopicCompression::Codec(Compression::Lz4),
                &CompressionLevels::default()
            )
            .expect("ok"),
            None
        );
    }

    #[test]
    fn every_codec_to_every_other_keeps_records_and_header_fields() {
        let all = [
            (Codec::None, Compression::None),
            (Codec::Gzip, Compression::Gzip),
            (Codec::Snappy, Compression::Snappy),
            (Codec::Lz4, Compression::Lz4),
            (Codec::Zstd, Compression::Zstd),
        ];
        let recs = records(20, 42, 1000);
        for (from, _) in all {
            let set = encode(&recs, from);
            let before = BatchView::parse(&set).expect("batch");
            for (to, target) in all {
                if from == to {
                    continue;
                }
                let out = recompress(
                    &set,
                    TopicCompression::Codec(target),
                    &CompressionLevels::default(),
                )
                .expect("recompresses")
                .expect("changed");
                validate_record_set(&out, 1 << 20).expect("the result is a valid record set");
                let after = BatchView::parse(&out).expect("batch");
                assert_eq!(
                    after.compression().expect("codec"),
                    target,
                    "{from:?} -> {to:?}"
                );
                assert_eq!(after.base_offset(), before.base_offset());
                assert_eq!(after.last_offset_delta(), before.last_offset_delta());
                assert_eq!(after.producer_id(), 42);
                assert_eq!(after.producer_epoch(), 3);
                assert_eq!(after.base_sequence(), 1000);
                assert!(after.is_transactional());
                assert_eq!(after.partition_leader_epoch(), 7);
                assert_eq!(after.base_timestamp(), before.base_timestamp());
                assert_eq!(after.max_timestamp(), before.max_timestamp());
                let decoded = decode_all(&out);
                assert_eq!(decoded.len(), 1);
                assert_eq!(decoded[0].0, to);
                assert_eq!(decoded[0].1, recs, "{from:?} -> {to:?}: the same records");
            }
        }
    }

    /// Text that compresses, but not to nothing: words drawn by a fixed pseudo-random walk.
    fn wordy_records(n: usize) -> Vec<Record> {
        let words = [
            "broker", "offset", "leader", "replica", "segment", "fetch", "epoch",
        ];
        let mut x = 7u64;
        let mut recs = records(n, -1, -1);
        for r in &mut recs {
            let mut value = String::new();
            for _ in 0..200 {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                value.push_str(words[(x >> 33) as usize % words.len()]);
                value.push_str(&((x >> 40) % 1000).to_string());
                value.push(' ');
            }
            r.value = Some(Bytes::from(value));
        }
        recs
    }

    /// KIP-390: the topic's level for its codec is the one the broker compresses with; the
    /// records come out the same at every level.
    #[test]
    fn the_topic_level_decides_how_hard_batches_are_compressed() {
        let recs = wordy_records(50);
        let set = encode(&recs, Codec::None);
        for (target, codec, fast, hard) in [
            (
                Compression::Gzip,
                Codec::Gzip,
                ("compression.gzip.level", 1),
                9,
            ),
            (
                Compression::Lz4,
                Codec::Lz4,
                ("compression.lz4.level", 9),
                17,
            ),
            (
                Compression::Zstd,
                Codec::Zstd,
                ("compression.zstd.level", -5),
                19,
            ),
        ] {
            let size = |level: i32| {
                let mut levels = CompressionLevels::default();
                assert!(levels.set(fast.0, level));
                let out = recompress(&set, TopicCompression::Codec(target), &levels)
                    .expect("recompresses")
                    .expect("changed");
                validate_record_set(&out, 1 << 22).expect("valid");
                let decoded = decode_all(&out);
                assert_eq!(decoded[0].0, codec);
                assert_eq!(decoded[0].1, recs, "{target:?} at {level}");
                out.len()
            };
            let (small_effort, large_effort) = (size(fast.1), size(hard));
            assert!(
                large_effort < small_effort,
                "{target:?}: level {hard} gives {large_effort} bytes, level {} {small_effort}",
                fast.1
            );
        }
        // The default levels are Kafka's, and gzip's -1 is zlib's own default (6).
        let six = CompressionLevels {
            gzip: 6,
            ..CompressionLevels::default()
        };
        let gzip = TopicCompression::Codec(Compression::Gzip);
        assert_eq!(
            recompress(&set, gzip, &CompressionLevels::default()).expect("ok"),
            recompress(&set, gzip, &six).expect("ok")
        );
    }

    /// Kafka's validators and their messages for the three level keys.
    #[test]
    fn levels_are_checked_as_kafka_checks_them() {
        let ok = |k: &str, v: &str| CompressionLevels::parse(k, v).expect("a level key");
        assert_eq!(ok("compression.gzip.level", "-1"), Ok(-1));
        assert_eq!(ok("compression.gzip.level", "9"), Ok(9));
        assert_eq!(
            ok("compression.gzip.level", "0"),
            Err("Value must be between 1 and 9 or equal to -1".to_string())
        );
        assert!(ok("compression.gzip.level", "10").is_err());
        assert_eq!(ok("compression.lz4.level", "17"), Ok(17));
        assert_eq!(
            ok("compression.lz4.level", "0"),
            Err("Value must be at least 1".to_string())
        );
        assert_eq!(
            ok("compression.lz4.level", "18"),
            Err("Value must be no more than 17".to_string())
        );
        assert_eq!(ok("compression.zstd.level", "-131072"), Ok(-131_072));
        assert!(ok("compression.zstd.level", "-131073").is_err());
        assert!(ok("compression.zstd.level", "23").is_err());
        assert_eq!(
            ok("compression.zstd.level", "high"),
            Err("Not a number of type INT".to_string())
        );
        assert_eq!(CompressionLevels::parse("compression.type", "1"), None);
        let levels = CompressionLevels::default();
        assert_eq!(
            CompressionLevels::KEYS.map(|k| levels.get(k)),
            [Some(-1), Some(9), Some(3)]
        );
    }

    #[test]
    fn a_set_of_mixed_batches_converts_only_those_in_another_codec() {
        let mut set = encode(&records(3, -1, -1), Codec::Gzip);
        let mut second = records(2, -1, -1);
        for r in &mut second {
            r.offset += 3;
            r.sequence += 3;
        }
        let zstd_batch = encode(&second, Codec::Zstd);
        set.extend(&zstd_batch);
        let out = recompress(
            &set,
            TopicCompression::Codec(Compression::Zstd),
            &CompressionLevels::default(),
        )
        .expect("ok")
        .expect("changed");
        let decoded = decode_all(&out);
        assert_eq!(decoded.len(), 2);
        assert!(decoded.iter().all(|(c, _)| *c == Codec::Zstd));
        assert_eq!(decoded[0].1, records(3, -1, -1));
        assert_eq!(decoded[1].1, second);
        // The zstd batch is the producer's, byte for byte.
        assert!(out.ends_with(&zstd_batch));
    }

    #[test]
    fn names_parse_as_kafka_spells_them() {
        assert_eq!(
            TopicCompression::parse("producer"),
            Some(TopicCompression::Producer)
        );
        assert_eq!(
            TopicCompression::parse("uncompressed"),
            Some(TopicCompression::Codec(Compression::None))
        );
        assert_eq!(
            TopicCompression::parse(" zstd "),
            Some(TopicCompression::Codec(Compression::Zstd))
        );
        for name in ["producer", "uncompressed", "gzip", "snappy", "lz4", "zstd"] {
            let parsed = TopicCompression::parse(name).expect("a name");
            assert_eq!(parsed.name(), name);
        }
        assert_eq!(TopicCompression::parse("none"), None);
        assert_eq!(TopicCompression::parse("brotli"), None);
    }
}
