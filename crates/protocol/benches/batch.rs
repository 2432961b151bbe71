//! Micro-benchmark: validating a produced record set (CRC-32C over the batch) and assigning
//! offsets in place — the broker's whole per-batch work on the produce path.

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use gregor_protocol::batch::{
    assign_offsets, encode_simple_batch, validate_record_set, SimpleRecord,
};

fn bench(c: &mut Criterion) {
    for (records, size) in [(10_000usize, 100usize), (1_000, 1024)] {
        let value = vec![7u8; size];
        let recs: Vec<SimpleRecord<'_>> = (0..records).map(|_| (None, Some(&value[..]))).collect();
        let batch = encode_simple_batch(1_700_000_000_000, &recs);
        let mut g = c.benchmark_group(format!("batch_{records}x{size}B"));
        g.throughput(Throughput::Elements(records as u64));
        g.bench_function("validate", |b| {
            b.iter(|| validate_record_set(&batch, usize::MAX).expect("valid"))
        });
        let mut buf = batch.clone();
        g.bench_function("assign_offsets", |b| {
            b.iter(|| assign_offsets(&mut buf, 42, 1, None).expect("assign"))
        });
        g.finish();
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
