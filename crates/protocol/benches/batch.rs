//! Micro-benchmark: validating a produced record set and assigning offsets in place — the
//! broker's whole per-batch work on the produce path.
//!
//! `validate_header` is the header and CRC-32C check alone (all the produce path did before it
//! walked records); `validate` is `validate_record_set`, which adds the record walk (and for
//! compressed batches the streaming decompression). `produce_*` is the broker's produce path:
//! validation, then the vectored offset assignment the log does from validation's batch spans
//! (`assign_vectored` alone). Throughput is in records, so criterion's time per iteration
//! divided by the record count is the cost per record.

use bytes::{Bytes, BytesMut};
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use gregor_protocol::batch::{
    assign_offsets, assign_offsets_vectored, batches, build_batch, encode_simple_batch,
    validate_record_set, BatchError, SimpleRecord, BATCH_HEADER_LEN,
};
use kafka_protocol::indexmap::IndexMap;
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};

/// The produce path's checks before the record walk: header and CRC of each batch.
fn validate_header(set: &[u8]) -> Result<(), BatchError> {
    for b in batches(set) {
        b?.validate()?;
    }
    Ok(())
}

/// `records` values of `size` bytes, text-like so that codecs compress them about 2–4×
/// (random bytes would not compress; zeros would compress ~1000× and flatter the decoders).
fn values(records: usize, size: usize) -> Vec<Bytes> {
    let words = [
        "order",
        "id",
        "customer",
        "amount",
        "eur",
        "status",
        "paid",
        "2026-12-02",
        "item",
        "sku",
    ];
    let mut state = 0x9e37_79b9u32;
    (0..records)
        .map(|_| {
            let mut v = Vec::with_capacity(size + 16);
            while v.len() < size {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                v.extend_from_slice(words[(state % 10) as usize].as_bytes());
                v.push(b' ');
                v.extend_from_slice(format!("{}", state % 100_000).as_bytes());
                v.push(b',');
            }
            v.truncate(size);
            Bytes::from(v)
        })
        .collect()
}

/// One batch of `records` values, encoded with `codec` by kafka-protocol's producer-side encoder.
fn encoded(values: &[Bytes], codec: Compression) -> Vec<u8> {
    let recs: Vec<Record> = values
        .iter()
        .enumerate()
        .map(|(i, v)| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: i as i32 - 1,
            timestamp: 1_700_000_000_000,
            key: None,
            value: Some(v.clone()),
            headers: IndexMap::new(),
        })
        .collect();
    let mut buf = BytesMut::new();
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

fn bench(c: &mut Criterion) {
    for (records, size) in [(10_000usize, 100usize), (1_000, 1024)] {
        let value = vec![7u8; size];
        let recs: Vec<SimpleRecord<'_>> = (0..records).map(|_| (None, Some(&value[..]))).collect();
        let batch = encode_simple_batch(1_700_000_000_000, &recs);
        let mut g = c.benchmark_group(format!("batch_{records}x{size}B"));
        g.throughput(Throughput::Elements(records as u64));
        g.bench_function("validate_header", |b| {
            b.iter(|| validate_header(&batch).expect("valid"))
        });
        g.bench_function("validate", |b| {
            b.iter(|| validate_record_set(&batch, usize::MAX).expect("valid"))
        });
        let mut buf = batch.clone();
        g.bench_function("assign_offsets", |b| {
            b.iter(|| assign_offsets(&mut buf, 42, 1, None).expect("assign"))
        });
        g.finish();
    }

    // The produce path as the broker runs it: validate the set, then the vectored offset
    // assignment the log does (headers rewritten in copies, the body borrowed). One batch, and
    // a set of 100 small batches where the per-batch work shows.
    for (sets, records) in [(1usize, 1_000usize), (100, 10)] {
        let value = [7u8; 100];
        let recs: Vec<SimpleRecord<'_>> = (0..records).map(|_| (None, Some(&value[..]))).collect();
        let mut set = Vec::new();
        for _ in 0..sets {
            set.extend_from_slice(&encode_simple_batch(1_700_000_000_000, &recs));
        }
        let set = &set[..];
        let mut g = c.benchmark_group(format!("produce_{sets}x{records}x100B"));
        g.throughput(Throughput::Elements((sets * records) as u64));
        g.bench_function("validate_and_assign_vectored", |b| {
            b.iter(|| {
                let v = validate_record_set(set, usize::MAX).expect("valid");
                assign_offsets_vectored(&v, 42, 1, None)
            })
        });
        let validated = validate_record_set(set, usize::MAX).expect("valid");
        g.bench_function("assign_vectored", |b| {
            b.iter(|| assign_offsets_vectored(&validated, 42, 1, None))
        });
        g.finish();
    }

    // Per codec: a producer-sized batch (1,000 records of 100 B and 100 of 1 KiB, text-like).
    for (records, size) in [(1_000usize, 100usize), (100, 1024)] {
        let vals = values(records, size);
        let mut g = c.benchmark_group(format!("codec_{records}x{size}B"));
        g.throughput(Throughput::Elements(records as u64));
        for (name, codec) in [
            ("none", Compression::None),
            ("gzip", Compression::Gzip),
            ("snappy", Compression::Snappy),
            ("lz4", Compression::Lz4),
            ("zstd", Compression::Zstd),
        ] {
            let batch = encoded(&vals, codec);
            g.bench_function(format!("{name}/validate_header"), |b| {
                b.iter(|| validate_header(&batch).expect("valid"))
            });
            g.bench_function(format!("{name}/validate"), |b| {
                b.iter(|| validate_record_set(&batch, usize::MAX).expect("valid"))
            });
        }
        // librdkafka's snappy: one raw block, no xerial framing.
        let plain = encoded(&vals, Compression::None);
        let raw = snap::raw::Encoder::new()
            .compress_vec(&plain[BATCH_HEADER_LEN..])
            .expect("snappy");
        let n = records as i32;
        let batch = build_batch(0, 2, n - 1, 1_700_000_000_000, 1_700_000_000_000, n, &raw);
        g.bench_function("snappy_raw/validate", |b| {
            b.iter(|| validate_record_set(&batch, usize::MAX).expect("valid"))
        });
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
