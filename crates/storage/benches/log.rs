//! Micro-benchmarks of the log: appending a 10,000-record batch (one write, sparse index
//! entries), and reading by offset (offset-index lookup plus a short header scan).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use gregor_protocol::batch::{encode_simple_batch, validate_record_set, SimpleRecord};
use gregor_storage::{LogConfig, LogManager, TopicPartition};

fn bench(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("tempdir");
    let manager = LogManager::open(dir.path()).expect("open");
    let tp = TopicPartition {
        topic: "bench".into(),
        partition: 0,
    };
    let log = manager
        .get_or_create(&tp, LogConfig::default())
        .expect("log");
    let value = [7u8; 100];
    let recs: Vec<SimpleRecord<'_>> = (0..10_000).map(|_| (None, Some(&value[..]))).collect();
    let batch = encode_simple_batch(1_700_000_000_000, &recs);

    let mut g = c.benchmark_group("log");
    g.throughput(Throughput::Elements(10_000));
    g.bench_function("append_10000x100B", |b| {
        let buf = batch.clone();
        let validated = validate_record_set(&buf, usize::MAX).expect("valid");
        b.iter(|| {
            let mut l = log.lock().expect("lock");
            l.append_as_leader(&validated, 0, 1_700_000_000_000, false)
                .expect("append")
        })
    });
    g.finish();

    let end = log.lock().expect("lock").log_end_offset();
    let mut g = c.benchmark_group("log");
    g.throughput(Throughput::Elements(1));
    let mut i = 0i64;
    g.bench_function("read_by_offset", |b| {
        b.iter(|| {
            i = (i + 7919 * 10_000) % end.max(1);
            let l = log.lock().expect("lock");
            l.read(i, 1 << 20, end, true).expect("read")
        })
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
