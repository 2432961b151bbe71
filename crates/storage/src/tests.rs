//! Tests of `Log` and `LogManager` through the public surface, on temporary directories:
//! unit tests of append/read/roll/retention/truncation, and property tests of the storage
//! invariants (every offset reads back its batch; reopen, crash recovery and index rebuild give
//! back exactly the whole valid batches).

use std::path::Path;

use gregor_protocol::batch::{batches, encode_simple_batch, validate_record_set};
use proptest::prelude::*;

use crate::log::LoadOptions;
use crate::{Log, LogConfig, LogManager, StorageError, TopicPartition};

fn config(segment_bytes: u64, index_interval_bytes: u32) -> LogConfig {
    LogConfig {
        segment_bytes,
        index_interval_bytes,
        retention_ms: -1,
        ..LogConfig::default()
    }
}

fn clean() -> LoadOptions {
    LoadOptions {
        recovery_point: 0,
        log_start_offset: None,
        clean_shutdown: true,
    }
}

fn unclean(recovery_point: i64) -> LoadOptions {
    LoadOptions {
        recovery_point,
        log_start_offset: None,
        clean_shutdown: false,
    }
}

/// A record as `encode_simple_batch` takes it: (key, value).
type SimpleRecord<'a> = (Option<&'a [u8]>, Option<&'a [u8]>);

fn batch(records: usize, ts: i64, value_len: usize) -> Vec<u8> {
    let value = vec![b'v'; value_len];
    let recs: Vec<SimpleRecord<'_>> = (0..records).map(|_| (None, Some(&value[..]))).collect();
    encode_simple_batch(ts, &recs)
}

/// Appends one batch; returns (first, last) offsets.
fn append_at(log: &mut Log, records: usize, ts: i64, value_len: usize, now: i64) -> (i64, i64) {
    let b = batch(records, ts, value_len);
    let s = validate_record_set(&b, 1 << 20).unwrap();
    let info = log.append_as_leader(&s, 3, now, false).unwrap();
    (info.first_offset, info.last_offset)
}

fn append(log: &mut Log, records: usize) -> (i64, i64) {
    append_at(log, records, 1_000, 10, 0)
}

/// `(base, last)` of each batch a read returns.
fn read_ranges(log: &Log, offset: i64, max: usize, upper: i64, min_one: bool) -> Vec<(i64, i64)> {
    let info = log.read(offset, max, upper, min_one).unwrap();
    let Some(slice) = info.slice else {
        return Vec::new();
    };
    let bytes = slice.read_to_vec().unwrap();
    batches(&bytes)
        .map(|b| {
            let b = b.unwrap();
            b.validate().unwrap();
            (b.base_offset(), b.last_offset())
        })
        .collect()
}

/// Every batch of the log, read segment by segment from the log start.
fn all_batches(log: &Log) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut offset = log.log_start_offset();
    while offset < log.log_end_offset() {
        let slice = log
            .read(offset, usize::MAX, i64::MAX, true)
            .unwrap()
            .slice
            .expect("data below the log end");
        let bytes = slice.read_to_vec().unwrap();
        for b in batches(&bytes) {
            let b = b.unwrap();
            offset = b.next_offset();
            out.push(b.as_bytes().to_vec());
        }
    }
    out
}

fn files_with_ext(dir: &Path, ext: &str) -> Vec<std::path::PathBuf> {
    let mut v: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    v.sort();
    v
}

#[test]
fn append_read_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), config(1 << 20, 4096), clean()).unwrap();
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (0, 0));
    assert_eq!(append(&mut log, 3), (0, 2));
    assert_eq!(append(&mut log, 1), (3, 3));
    assert_eq!(append(&mut log, 5), (4, 8));
    assert_eq!(log.log_end_offset(), 9);
    assert_eq!(
        read_ranges(&log, 0, 1 << 20, 9, false),
        vec![(0, 2), (3, 3), (4, 8)]
    );
    let stored = all_batches(&log);
    let b = gregor_protocol::batch::BatchView::parse(&stored[1]).unwrap();
    assert_eq!(b.partition_leader_epoch(), 3);
    assert!(dir.path().join("00000000000000000000.log").exists());
    assert!(dir.path().join("00000000000000000000.index").exists());
    assert!(dir.path().join("00000000000000000000.timeindex").exists());
    assert_eq!(
        log.size_bytes(),
        stored.iter().map(Vec::len).sum::<usize>() as u64
    );
}

#[test]
fn read_from_middle_of_batch_returns_whole_batch() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), config(1 << 20, 4096), clean()).unwrap();
    append(&mut log, 5);
    append(&mut log, 5);
    assert_eq!(
        read_ranges(&log, 3, 1 << 20, 10, false),
        vec![(0, 4), (5, 9)]
    );
    assert_eq!(read_ranges(&log, 7, 1 << 20, 10, false), vec![(5, 9)]);
}

#[test]
fn max_bytes_min_one_batch_and_upper_bound() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), config(1 << 20, 4096), clean()).unwrap();
    for _ in 0..4 {
        append(&mut log, 2);
    }
    let size = batch(2, 1_000, 10).len();
    assert_eq!(read_ranges(&log, 0, 2 * size + 1, 8, false).len(), 2);
    assert_eq!(read_ranges(&log, 0, 2 * size, 8, false).len(), 2);
    // KIP-74: the first batch comes back even when larger than max_bytes.
    assert_eq!(read_ranges(&log, 2, 1, 8, true), vec![(2, 3)]);
    assert!(log.read(2, 1, 8, false).unwrap().slice.is_none());
    // The upper bound (high watermark) stops at whole batches below it.
    assert_eq!(
        read_ranges(&log, 0, 1 << 20, 4, false),
        vec![(0, 1), (2, 3)]
    );
    assert_eq!(
        read_ranges(&log, 0, 1 << 20, 5, false),
        vec![(0, 1), (2, 3)]
    );
    assert!(log.read(4, 1 << 20, 4, true).unwrap().slice.is_none());
    assert!(log.read(0, 1 << 20, 0, true).unwrap().slice.is_none());
}

#[test]
fn out_of_range_and_log_end() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), config(1 << 20, 4096), clean()).unwrap();
    assert!(log.read(0, 100, 0, true).unwrap().slice.is_none());
    append(&mut log, 2);
    assert!(log.read(2, 100, 2, true).unwrap().slice.is_none());
    assert!(matches!(
        log.read(3, 100, 3, true),
        Err(StorageError::OffsetOutOfRange {
            offset: 3,
            log_start: 0,
            log_end: 2
        })
    ));
    assert!(matches!(
        log.read(-1, 100, 2, true),
        Err(StorageError::OffsetOutOfRange { .. })
    ));
}

#[test]
fn rolls_by_size_and_reads_across_segments() {
    let dir = tempfile::tempdir().unwrap();
    let size = batch(1, 1_000, 10).len() as u64;
    let mut log = Log::open(dir.path(), config(size * 3, 4096), clean()).unwrap();
    for _ in 0..10 {
        append(&mut log, 1);
    }
    assert_eq!(log.segment_count(), 4);
    let logs = files_with_ext(dir.path(), "log");
    let names: Vec<_> = logs
        .iter()
        .map(|p| p.file_name().unwrap().to_str().unwrap().to_string())
        .collect();
    assert_eq!(names[1], "00000000000000000003.log");
    for o in 0..10 {
        assert_eq!(read_ranges(&log, o, 1, 10, true), vec![(o, o)]);
    }
    // One segment per read, as Kafka does.
    assert_eq!(
        read_ranges(&log, 1, 1 << 20, 10, false),
        vec![(1, 1), (2, 2)]
    );
}

/// Blocks reserved ahead of the data (fallocate KEEP_SIZE) never show in the file size, and are
/// given back when the segment rolls and at shutdown.
#[test]
fn preallocation_is_invisible_and_released() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    let size = batch(10, 1_000, 1000).len() as u64;
    let mut log = Log::open(dir.path(), config(size * 3, 4096), clean()).unwrap();
    append_at(&mut log, 10, 1_000, 1000, 0);
    let first = dir.path().join("00000000000000000000.log");
    let meta = std::fs::metadata(&first).unwrap();
    assert_eq!(
        meta.len(),
        size,
        "the reservation must not change the file size"
    );
    let reserved = meta.blocks() * 512;
    for _ in 0..3 {
        append_at(&mut log, 10, 1_000, 1000, 0);
    }
    assert_eq!(log.segment_count(), 2);
    let meta = std::fs::metadata(&first).unwrap();
    assert_eq!(meta.len(), size * 3);
    let allocated = meta.blocks() * 512;
    assert!(
        allocated <= (size * 3).next_multiple_of(4096) + 4096,
        "rolled segment still holds {allocated} bytes for {} bytes of data (reserved {reserved})",
        size * 3
    );
    log.flush_all().unwrap();
    let active = dir.path().join(format!("{:020}.log", 3 * 10));
    let meta = std::fs::metadata(&active).unwrap();
    assert_eq!(meta.len(), size);
    assert!(meta.blocks() * 512 <= size.next_multiple_of(4096) + 4096);
    // Reopened, every record is still there.
    drop(log);
    let log = Log::open(dir.path(), config(size * 3, 4096), clean()).unwrap();
    assert_eq!(log.log_end_offset(), 40);
    assert_eq!(read_ranges(&log, 0, 1 << 30, 40, false).len(), 3);
}

/// `preallocate`: a new segment has its whole `segment.bytes` reserved at once (the file's size
/// still its data), given back when it rolls; without it, only the steps ahead of appends.
#[test]
fn preallocate_reserves_the_whole_segment() {
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().unwrap();
    let size = batch(10, 1_000, 1000).len() as u64;
    let segment_bytes = 4 << 20;
    let mut cfg = config(segment_bytes, 4096);
    cfg.preallocate = true;
    let mut log = Log::open(dir.path(), cfg.clone(), clean()).unwrap();
    let first = dir.path().join("00000000000000000000.log");
    let meta = std::fs::metadata(&first).unwrap();
    // (A file system without fallocate reserves nothing; tmpfs and ext4 both have it.)
    assert_eq!(meta.len(), 0);
    assert!(
        meta.blocks() * 512 >= segment_bytes,
        "a new segment holds {} bytes, not {segment_bytes}",
        meta.blocks() * 512
    );
    append_at(&mut log, 10, 1_000, 1000, 0);
    assert_eq!(std::fs::metadata(&first).unwrap().len(), size);
    log.roll().unwrap();
    let meta = std::fs::metadata(&first).unwrap();
    assert!(
        meta.blocks() * 512 <= size.next_multiple_of(4096) + 4096,
        "the rolled segment still holds {} bytes",
        meta.blocks() * 512
    );
    let second = dir.path().join(format!("{:020}.log", 10));
    assert!(std::fs::metadata(&second).unwrap().blocks() * 512 >= segment_bytes);
    // The same log without it: a new segment reserves nothing until its first append.
    let other = tempfile::tempdir().unwrap();
    cfg.preallocate = false;
    let _plain = Log::open(other.path(), cfg, clean()).unwrap();
    let meta = std::fs::metadata(other.path().join("00000000000000000000.log")).unwrap();
    assert_eq!(meta.blocks(), 0);
}

#[test]
fn rolls_by_time() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(1 << 20, 4096);
    cfg.segment_ms = 100;
    let mut log = Log::open(dir.path(), cfg, clean()).unwrap();
    append_at(&mut log, 1, 0, 10, 1_000);
    append_at(&mut log, 1, 0, 10, 1_050);
    assert_eq!(log.segment_count(), 1);
    append_at(&mut log, 1, 0, 10, 1_101);
    assert_eq!(log.segment_count(), 2);
    append_at(&mut log, 1, 0, 10, 1_150);
    assert_eq!(log.segment_count(), 2);
}

/// `segment.jitter.ms`: each active segment rolls at `segment.ms` less a random jitter below
/// `min(segment.jitter.ms, segment.ms)`, drawn again for each new segment and when the config
/// changes; without jitter, at `segment.ms` exactly.
#[test]
fn rolls_by_time_less_a_random_jitter() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(1 << 20, 4096);
    cfg.segment_ms = 1_000;
    cfg.segment_jitter_ms = 900;
    let mut log = Log::open(dir.path(), cfg.clone(), clean()).unwrap();
    let mut jitters = std::collections::BTreeSet::new();
    let mut t = 1_000_000;
    for _ in 0..20 {
        // The first batch of a segment (the one before was old: this rolled).
        append_at(&mut log, 1, 0, 10, t);
        let jitter = log.roll_jitter_ms();
        assert!((0..900).contains(&jitter), "{jitter}");
        jitters.insert(jitter);
        let segments = log.segment_count();
        // Just before the jittered roll time: no roll; just after: a roll.
        append_at(&mut log, 1, 0, 10, t + 1_000 - jitter);
        assert_eq!(log.segment_count(), segments, "jitter {jitter}");
        append_at(&mut log, 1, 0, 10, t + 1_001 - jitter);
        assert_eq!(log.segment_count(), segments + 1, "jitter {jitter}");
        t += 10_000;
    }
    assert!(
        jitters.len() > 1,
        "drawn again for each segment: {jitters:?}"
    );
    // A jitter above segment.ms is capped by it; none gives none.
    cfg.segment_jitter_ms = 10_000;
    log.set_config(cfg.clone());
    assert!(log.roll_jitter_ms() < 1_000);
    cfg.segment_jitter_ms = 0;
    log.set_config(cfg);
    assert_eq!(log.roll_jitter_ms(), 0);
}

#[test]
fn rolls_when_index_full_and_index_is_used() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = config(1 << 20, 0);
    cfg.segment_index_bytes = 8 * 4;
    let mut log = Log::open(dir.path(), cfg, clean()).unwrap();
    for _ in 0..12 {
        append(&mut log, 2);
    }
    assert!(log.segment_count() > 1);
    let idx = files_with_ext(dir.path(), "index");
    assert_eq!(std::fs::metadata(&idx[0]).unwrap().len(), 32);
    for o in 0..24 {
        let r = read_ranges(&log, o, 1, 24, true);
        assert_eq!(r, vec![(o - o % 2, o - o % 2 + 1)]);
    }
}

/// A batch whose records carry distinct timestamps, built by kafka-protocol's encoder.
fn batch_with_timestamps(timestamps: &[i64]) -> Vec<u8> {
    use gregor_protocol::records::{
        Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
    };
    let records: Vec<Record> = timestamps
        .iter()
        .enumerate()
        .map(|(i, &ts)| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: -1,
            timestamp: ts,
            key: None,
            value: Some(bytes::Bytes::from_static(b"v")),
            headers: Default::default(),
        })
        .collect();
    let mut buf = bytes::BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .unwrap();
    buf.to_vec()
}

#[test]
fn offset_for_timestamp_finds_the_record() {
    let dir = tempfile::tempdir().unwrap();
    let mut log = Log::open(dir.path(), config(200, 0), clean()).unwrap();
    let sets = [vec![100, 110, 105], vec![120, 130], vec![130, 150, 200]];
    for ts in &sets {
        let b = batch_with_timestamps(ts);
        let s = validate_record_set(&b, 1 << 20).unwrap();
        log.append_as_leader(&s, 0, 0, false).unwrap();
    }
    assert!(log.segment_count() > 1);
    assert_eq!(log.offset_for_timestamp(0).unwrap(), Some((0, 100)));
    assert_eq!(log.offset_for_timestamp(106).unwrap(), Some((1, 110)));
    assert_eq!(log.offset_for_timestamp(111).unwrap(), Some((3, 120)));
    assert_eq!(log.offset_for_timestamp(130).unwrap(), Some((4, 130)));
    assert_eq!(log.offset_for_timestamp(131).unwrap(), Some((6, 150)));
    assert_eq!(log.offset_for_timestamp(200).unwrap(), Some((7, 200)));
    assert_eq!(log.offset_for_timestamp(201).unwrap(), None);
    assert_eq!(log.max_timestamp(), Some((7, 200)));

    // LogAppendTime: every record has the batch's timestamp.
    let b = batch(2, 5, 1);
    let s = validate_record_set(&b, 1 << 20).unwrap();
    let info = log.append_as_leader(&s, 0, 9_999, true).unwrap();
    assert_eq!(info.log_append_time, 9_999);
    assert_eq!(log.offset_for_timestamp(500).unwrap(), Some((8, 9_999)));
}

#[test]
fn flush_targets_cover_rolled_segments() {
    let dir = tempfile::tempdir().unwrap();
    let size = batch(1, 1_000, 10).len() as u64;
    let mut log = Log::open(dir.path(), config(size * 2, 4096), clean()).unwrap();
    assert!(log.flush_target().is_none());
    append(&mut log, 1);
    let t = log.flush_target().unwrap();
    assert_eq!((t.files.len(), t.end_offset), (1, 1));
    append(&mut log, 1);
    append(&mut log, 1); // rolls: old segment (+ directory) stay in the target
    let t = log.flush_target().unwrap();
    assert_eq!(t.end_offset, 3);
    assert!(t.files.len() >= 2);
    t.sync().unwrap();
    log.mark_flushed(t.end_offset);
    assert_eq!(log.recovery_point(), 3);
    assert!(log.flush_target().is_none());
}

#[test]
fn truncate_and_delete_records() {
    let dir = tempfile::tempdir().unwrap();
    let size = batch(2, 1_000, 10).len() as u64;
    let mut log = Log::open(dir.path(), config(size * 2, 0), clean()).unwrap();
    for _ in 0..6 {
        append(&mut log, 2);
    }
    assert_eq!(log.segment_count(), 3);
    log.truncate_to(7).unwrap(); // inside batch 6..7: cut before it
    assert_eq!(log.log_end_offset(), 6);
    assert_eq!(log.segment_count(), 2);
    assert_eq!(append(&mut log, 1), (6, 6));
    assert_eq!(
        read_ranges(&log, 4, 1 << 20, 7, false),
        vec![(4, 5), (6, 6)]
    );

    assert_eq!(log.delete_records_before(5).unwrap(), 1);
    assert_eq!(log.log_start_offset(), 5);
    assert!(matches!(
        log.read(4, 10, 7, true),
        Err(StorageError::OffsetOutOfRange { .. })
    ));
    assert_eq!(read_ranges(&log, 5, 1, 7, true), vec![(4, 5)]);
    assert!(log.delete_records_before(100).is_err());

    log.truncate_to(2).unwrap(); // below the log start: start over there
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (2, 2));
    assert_eq!(append(&mut log, 1), (2, 2));
}

#[test]
fn retention_by_time_rolls_then_deletes() {
    let dir = tempfile::tempdir().unwrap();
    let size = batch(1, 0, 10).len() as u64;
    let mut cfg = config(size * 2, 4096);
    cfg.retention_ms = 1_000;
    let mut log = Log::open(dir.path(), cfg, clean()).unwrap();
    for ts in [100, 200, 300, 400, 5_000] {
        append_at(&mut log, 1, ts, 10, ts);
    }
    assert_eq!(log.segment_count(), 3);
    // At 1_350 only the first segment (newest record 200) is expired.
    assert_eq!(log.apply_retention(1_350).unwrap(), 1);
    assert_eq!(log.log_start_offset(), 2);
    // Everything expired: the active segment is rolled, not deleted.
    assert_eq!(log.apply_retention(100_000).unwrap(), 1);
    assert_eq!(log.segment_count(), 2);
    assert_eq!(log.apply_retention(100_000).unwrap(), 1);
    assert_eq!(log.segment_count(), 1);
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (5, 5));
    assert_eq!(append(&mut log, 1), (5, 5));
}

#[test]
fn retention_by_size() {
    let dir = tempfile::tempdir().unwrap();
    let size = batch(1, 0, 10).len() as u64;
    let mut cfg = config(size * 2, 4096);
    cfg.retention_bytes = (size * 3) as i64;
    let mut log = Log::open(dir.path(), cfg, clean()).unwrap();
    for _ in 0..7 {
        append(&mut log, 1);
    }
    // 4 segments: 2+2+2+1 batches; keep at least 3 batches' worth.
    assert_eq!(log.apply_retention(0).unwrap(), 2);
    assert_eq!(log.size_bytes(), size * 3);
    assert_eq!(log.log_start_offset(), 4);
}

/// Flips `mask` into the byte at `at` of `path`.
fn flip(path: &Path, at: usize, mask: u8) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[at] ^= mask;
    std::fs::write(path, bytes).unwrap();
}

/// The batches a read from every offset returns, as raw bytes, skipping nothing: what a
/// consumer walking the log sees (corrupt ranges included, as stored).
fn walk_raw(log: &Log) -> Vec<u8> {
    let mut out = Vec::new();
    let mut offset = log.log_start_offset();
    while offset < log.log_end_offset() {
        let slice = log
            .read(offset, 1, i64::MAX, true)
            .unwrap()
            .slice
            .expect("data below the log end");
        let bytes = slice.read_to_vec().unwrap();
        // The first batch's header says where the next read starts (a corrupt range reads as
        // one batch whose stored header may lie: step by the range instead).
        let next = match gregor_protocol::batch::BatchView::parse(&bytes) {
            Ok(b) if b.validate().is_ok() => b.next_offset(),
            _ => {
                let r = log.corrupt_ranges_for_tests();
                r.iter()
                    .find(|r| r.0 <= offset && offset < r.1)
                    .map(|r| r.1)
                    .expect("an invalid batch is a corrupt range")
            }
        };
        out.extend_from_slice(&bytes);
        offset = next;
    }
    out
}

#[test]
fn corruption_in_an_earlier_segment_is_kept_with_everything_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let size = batch(1, 0, 10).len() as u64;
    let before;
    {
        let mut log = Log::open(dir.path(), config(size * 2, 0), clean()).unwrap();
        for _ in 0..6 {
            append(&mut log, 1);
        }
        before = walk_raw(&log);
    }
    let logs = files_with_ext(dir.path(), "log");
    let len = std::fs::metadata(&logs[1]).unwrap().len() as usize;
    flip(&logs[1], len - 1, 0xff); // second batch of the second segment
                                   // Recovery starts at the first segment (recovery point 0): the bad batch is not in the
                                   // last segment, so it is corruption, not a torn write.
    let log = Log::open(dir.path(), config(size * 2, 0), unclean(0)).unwrap();
    assert_eq!(log.log_end_offset(), 6);
    assert_eq!(log.segment_count(), 3);
    assert_eq!(log.corrupt_ranges_for_tests(), vec![(3, 4)]);
    // Every offset reads back; offset 3 as the stored (corrupt) bytes.
    let mut want = before.clone();
    want[size as usize * 3 + size as usize - 1] ^= 0xff;
    assert_eq!(walk_raw(&log), want);
    for o in [0, 1, 2, 4, 5] {
        assert_eq!(read_ranges(&log, o, 1, 6, true), vec![(o, o)]);
    }
}

#[test]
fn a_bad_batch_followed_by_valid_ones_is_kept_even_above_the_recovery_point() {
    let dir = tempfile::tempdir().unwrap();
    let size = batch(2, 0, 10).len();
    {
        let mut log = Log::open(dir.path(), config(1 << 20, 0), clean()).unwrap();
        for _ in 0..5 {
            append(&mut log, 2);
        }
    }
    let seg = files_with_ext(dir.path(), "log").pop().unwrap();
    flip(&seg, size + 40, 0x10); // inside the second batch's header fields (CRC covers them)
    let log = Log::open(dir.path(), config(1 << 20, 0), unclean(0)).unwrap();
    assert_eq!(log.log_end_offset(), 10);
    assert_eq!(log.corrupt_ranges_for_tests(), vec![(2, 4)]);
    for o in [0, 1, 4, 5, 6, 7, 8, 9] {
        let base = o - o % 2;
        assert_eq!(read_ranges(&log, o, 1, 10, true), vec![(base, base + 1)]);
    }
}

#[test]
fn a_garbage_length_field_is_stepped_over_to_the_next_valid_batch() {
    let dir = tempfile::tempdir().unwrap();
    let size = batch(1, 0, 30).len();
    {
        let mut log = Log::open(dir.path(), config(1 << 20, 0), clean()).unwrap();
        for _ in 0..4 {
            append_at(&mut log, 1, 1_000, 30, 0);
        }
    }
    let seg = files_with_ext(dir.path(), "log").pop().unwrap();
    // The second batch's length field (bytes 8..12) says 2 GiB.
    flip(&seg, size + 8, 0x7f);
    let mut log = Log::open(dir.path(), config(1 << 20, 0), unclean(0)).unwrap();
    assert_eq!(log.log_end_offset(), 4);
    assert_eq!(log.corrupt_ranges_for_tests(), vec![(1, 2)]);
    for o in [0, 2, 3] {
        assert_eq!(read_ranges(&log, o, 1, 4, true), vec![(o, o)]);
    }
    // The log goes on taking appends after it.
    assert_eq!(append(&mut log, 1), (4, 4));
    assert_eq!(read_ranges(&log, 4, 1, 5, true), vec![(4, 4)]);
}

#[test]
fn a_bad_last_batch_is_kept_below_the_recovery_point_and_cut_above_it() {
    let size = batch(1, 0, 10).len();
    for (recovery_point, leo, kept) in [(3, 3, true), (2, 2, false)] {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut log = Log::open(dir.path(), config(1 << 20, 0), clean()).unwrap();
            for _ in 0..3 {
                append(&mut log, 1);
            }
        }
        let seg = files_with_ext(dir.path(), "log").pop().unwrap();
        flip(&seg, 3 * size - 1, 0x01);
        let mut log = Log::open(dir.path(), config(1 << 20, 0), unclean(recovery_point)).unwrap();
        assert_eq!(log.log_end_offset(), leo, "recovery point {recovery_point}");
        let want: Vec<(i64, i64)> = if kept { vec![(2, 3)] } else { vec![] };
        assert_eq!(log.corrupt_ranges_for_tests(), want);
        assert_eq!(
            file_len(&seg),
            if kept { 3 * size } else { 2 * size } as u64
        );
        // The next append follows whatever was kept.
        assert_eq!(append(&mut log, 1), (leo, leo));
        assert_eq!(read_ranges(&log, leo, 1, leo + 1, true), vec![(leo, leo)]);
    }
}

#[test]
fn kept_corrupt_ranges_survive_a_clean_restart_and_go_with_their_segment() {
    let dir = tempfile::tempdir().unwrap();
    let size = batch(1, 0, 10).len();
    let cfg = config(1 << 20, 4096);
    {
        let mut log = Log::open(dir.path(), cfg.clone(), clean()).unwrap();
        for _ in 0..3 {
            append(&mut log, 1);
        }
    }
    // The last batch's length field can no longer describe a batch; it was fsynced
    // (recovery point 3), so it is kept as a corrupt range at the end of the log.
    let seg = files_with_ext(dir.path(), "log").pop().unwrap();
    let mut bytes = std::fs::read(&seg).unwrap();
    bytes[2 * size + 8..2 * size + 12].fill(0);
    std::fs::write(&seg, &bytes).unwrap();
    let mut log = Log::open(dir.path(), cfg.clone(), unclean(3)).unwrap();
    assert_eq!(log.log_end_offset(), 3);
    assert_eq!(log.corrupt_ranges_for_tests(), vec![(2, 3)]);
    assert!(dir.path().join("corrupt-ranges").exists());
    // An acknowledged append after it, then a clean stop and start: the start walks the
    // headers of the last segment, and must step over the range, not stop (and cut) at it.
    assert_eq!(append(&mut log, 1), (3, 3));
    log.flush_all().unwrap();
    drop(log);
    let mut log = Log::open(dir.path(), cfg.clone(), clean()).unwrap();
    assert_eq!(log.log_end_offset(), 4);
    assert_eq!(log.corrupt_ranges_for_tests(), vec![(2, 3)]);
    for o in [0, 1, 3] {
        assert_eq!(read_ranges(&log, o, 1, 4, true), vec![(o, o)]);
    }
    // Truncation below the range drops it, and the file with it.
    log.truncate_to(2).unwrap();
    assert!(log.corrupt_ranges_for_tests().is_empty());
    assert!(!dir.path().join("corrupt-ranges").exists());
}

#[test]
fn a_cut_last_batch_after_a_clean_shutdown_is_truncated() {
    let dir = tempfile::tempdir().unwrap();
    let size = batch(1, 0, 100).len();
    let cfg = config(1 << 20, 150);
    {
        let mut log = Log::open(dir.path(), cfg.clone(), clean()).unwrap();
        for _ in 0..5 {
            append_at(&mut log, 1, 1_000, 100, 0);
        }
        log.flush_all().unwrap();
    }
    let seg = files_with_ext(dir.path(), "log").pop().unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&seg)
        .unwrap()
        .set_len((5 * size - 7) as u64)
        .unwrap();
    let mut log = Log::open(dir.path(), cfg.clone(), clean()).unwrap();
    assert_eq!(log.log_end_offset(), 4);
    assert_eq!(file_len(&seg), 4 * size as u64);
    assert_eq!(append_at(&mut log, 1, 2_000, 100, 0), (4, 4));
    for o in 0..5 {
        assert_eq!(read_ranges(&log, o, 1, 5, true), vec![(o, o)]);
    }
    log.flush_all().unwrap();
    drop(log);
    let log = Log::open(dir.path(), cfg, clean()).unwrap();
    assert_eq!(log.log_end_offset(), 5);
}

#[test]
fn unclean_start_without_opening_every_log_is_not_marked_clean() {
    let dir = tempfile::tempdir().unwrap();
    let tp = |p| TopicPartition {
        topic: "t".to_string(),
        partition: p,
    };
    {
        let m = LogManager::open(dir.path()).unwrap();
        for p in 0..2 {
            let log = m.get_or_create(&tp(p), config(1 << 20, 4096)).unwrap();
            append(&mut log.lock().unwrap(), 1);
        }
        // crash: no shutdown
    }
    {
        let m = LogManager::open(dir.path()).unwrap();
        m.get_or_create(&tp(0), config(1 << 20, 4096)).unwrap();
        m.shutdown().unwrap();
        assert!(!dir.path().join(".gregor_cleanshutdown").exists());
    }
    let m = LogManager::open(dir.path()).unwrap();
    assert!(!m.had_clean_shutdown());
    for p in 0..2 {
        m.get_or_create(&tp(p), config(1 << 20, 4096)).unwrap();
    }
    m.shutdown().unwrap();
    assert!(dir.path().join(".gregor_cleanshutdown").exists());
}

#[test]
fn manager_lifecycle() {
    let dir = tempfile::tempdir().unwrap();
    let tp = TopicPartition {
        topic: "my-topic".to_string(),
        partition: 3,
    };
    {
        let m = LogManager::open(dir.path()).unwrap();
        assert!(!m.had_clean_shutdown());
        let log = m.get_or_create(&tp, config(1 << 20, 4096)).unwrap();
        assert!(std::sync::Arc::ptr_eq(
            &log,
            &m.get_or_create(&tp, config(1 << 20, 4096)).unwrap()
        ));
        append(&mut log.lock().unwrap(), 4);
        m.shutdown().unwrap();
    }
    assert!(dir.path().join(".gregor_cleanshutdown").exists());
    {
        let m = LogManager::open(dir.path()).unwrap();
        assert!(m.had_clean_shutdown());
        assert!(!dir.path().join(".gregor_cleanshutdown").exists());
        assert_eq!(m.existing_partitions().unwrap(), vec![tp.clone()]);
        let log = m.get_or_create(&tp, config(1 << 20, 4096)).unwrap();
        let mut log = log.lock().unwrap();
        assert_eq!(log.log_end_offset(), 4);
        assert_eq!(log.recovery_point(), 4);
        log.delete_records_before(2).unwrap();
        append(&mut log, 1);
        drop(log);
        m.checkpoint().unwrap();
        // no shutdown: next open is unclean
    }
    {
        let m = LogManager::open(dir.path()).unwrap();
        assert!(!m.had_clean_shutdown());
        let log = m.get_or_create(&tp, config(1 << 20, 4096)).unwrap();
        let log = log.lock().unwrap();
        assert_eq!((log.log_start_offset(), log.log_end_offset()), (2, 5));
        drop(log);
        assert_eq!(m.apply_retention(0).unwrap(), 0);
        m.delete(&tp).unwrap();
        assert!(m.get(&tp).is_none());
        assert!(m.existing_partitions().unwrap().is_empty());
        m.shutdown().unwrap();
    }
}

/// Appends the sets, returns the log and, per batch, `(base, last)`.
fn build_log(dir: &Path, cfg: &LogConfig, sets: &[(usize, usize)]) -> (Log, Vec<(i64, i64)>) {
    let mut log = Log::open(dir, cfg.clone(), clean()).unwrap();
    let mut ranges = Vec::new();
    for (i, &(n, len)) in sets.iter().enumerate() {
        ranges.push(append_at(&mut log, n, i as i64 * 10, len, i as i64));
    }
    (log, ranges)
}

fn check_every_offset(log: &Log, ranges: &[(i64, i64)]) -> Result<(), TestCaseError> {
    for &(base, last) in ranges {
        for o in base..=last {
            let got = read_ranges(log, o, 1, log.log_end_offset(), true);
            prop_assert_eq!(got, vec![(base, last)], "offset {}", o);
        }
    }
    Ok(())
}

fn sets_strategy() -> impl Strategy<Value = Vec<(usize, usize)>> {
    proptest::collection::vec((1usize..5, 0usize..120), 1..40)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn every_offset_reads_its_batch_and_survives_clean_reopen(
        sets in sets_strategy(),
        segment_bytes in 100u64..1500,
        interval in 0u32..400,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(segment_bytes, interval);
        let (mut log, ranges) = build_log(dir.path(), &cfg, &sets);
        check_every_offset(&log, &ranges)?;
        let before = all_batches(&log);
        let leo = log.log_end_offset();
        log.flush_all().unwrap();
        drop(log);
        let log = Log::open(dir.path(), cfg.clone(), clean()).unwrap();
        prop_assert_eq!(log.log_end_offset(), leo);
        prop_assert_eq!(all_batches(&log), before.clone());
        check_every_offset(&log, &ranges)?;

        // Deleted indexes are rebuilt, and the rebuilt log reads the same.
        drop(log);
        for ext in ["index", "timeindex"] {
            for p in files_with_ext(dir.path(), ext) {
                std::fs::remove_file(p).unwrap();
            }
        }
        let log = Log::open(dir.path(), cfg, clean()).unwrap();
        prop_assert_eq!(log.log_end_offset(), leo);
        prop_assert_eq!(all_batches(&log), before);
        check_every_offset(&log, &ranges)?;
        prop_assert!(!files_with_ext(dir.path(), "index").is_empty());
    }

    /// A read of `max_bytes` from any offset returns exactly the model's answer: the batch
    /// holding the offset, then following batches of the same segment while the total fits
    /// (the first one whole even when it does not, with `min_one`), none at or past the upper
    /// bound. Whether the index lets the read skip headers must not change the answer.
    #[test]
    fn reads_return_the_whole_batches_that_fit(
        sets in sets_strategy(),
        segment_bytes in 100u64..3000,
        interval in 0u32..600,
        reads in proptest::collection::vec(
            (any::<proptest::sample::Index>(), 0usize..2500, any::<bool>(), 0i64..4),
            1..30,
        ),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(segment_bytes, interval);
        let (log, ranges) = build_log(dir.path(), &cfg, &sets);
        // Model: batch sizes and the segment each batch went to (a roll starts a new one).
        let sizes: Vec<usize> = sets
            .iter()
            .enumerate()
            .map(|(i, &(n, len))| batch(n, i as i64 * 10, len).len())
            .collect();
        let segment_bases: Vec<i64> = log.segment_stats().iter().map(|s| s.0).collect();
        let segment_of = |base: i64| segment_bases.partition_point(|&b| b <= base);
        let leo = log.log_end_offset();
        for (at, max, min_one, bound_back) in reads {
            let i = at.index(ranges.len());
            let (base, last) = ranges[i];
            let offset = base + (last - base) / 2;
            let upper = if bound_back == 0 { leo } else { ranges[ranges.len().saturating_sub(bound_back as usize)].0 };
            let mut want = Vec::new();
            let mut total = 0;
            for j in i..ranges.len() {
                if segment_of(ranges[j].0) != segment_of(base) || ranges[j].1 >= upper {
                    break;
                }
                if total + sizes[j] > max && !(want.is_empty() && min_one) {
                    break;
                }
                total += sizes[j];
                want.push(ranges[j]);
            }
            let got = read_ranges(&log, offset, max, upper, min_one);
            prop_assert_eq!(got, want, "offset {} max {} min_one {} upper {}", offset, max, min_one, upper);
        }
    }

    #[test]
    fn crash_recovery_keeps_exactly_the_whole_valid_batches(
        sets in sets_strategy(),
        segment_bytes in 100u64..1500,
        interval in 0u32..400,
        cut in any::<proptest::sample::Index>(),
        do_cut in any::<bool>(),
        garbage in proptest::collection::vec(any::<u8>(), 0..150),
        rp in any::<proptest::sample::Index>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(segment_bytes, interval);
        let (log, ranges) = build_log(dir.path(), &cfg, &sets);
        let before = all_batches(&log);
        drop(log);

        // Tear the last segment, then maybe add garbage behind it.
        let last = files_with_ext(dir.path(), "log").pop().unwrap();
        let len = std::fs::metadata(&last).unwrap().len() as usize;
        let keep = if do_cut { cut.index(len + 1) } else { len };
        let mut bytes = std::fs::read(&last).unwrap();
        bytes.truncate(keep);
        bytes.extend_from_slice(&garbage);
        std::fs::write(&last, &bytes).unwrap();

        // Expected: the batches of earlier segments, plus whole ones inside the kept prefix.
        let last_base: i64 = last.file_stem().unwrap().to_str().unwrap().parse().unwrap();
        let mut expected = Vec::new();
        let mut pos = 0usize;
        for b in &before {
            let base = gregor_protocol::batch::BatchView::parse(b).unwrap().base_offset();
            if base < last_base {
                expected.push(b.clone());
            } else if pos + b.len() <= keep {
                expected.push(b.clone());
                pos += b.len();
            } else {
                break;
            }
        }
        let expected_leo = expected
            .last()
            .map_or(last_base, |b| gregor_protocol::batch::BatchView::parse(b).unwrap().next_offset());

        // A torn write lies above the recovery point (nothing there was fsynced): any
        // checkpointed recovery point at or below the tear recovers the same.
        let recovery_point = rp.index(expected_leo as usize + 1) as i64;
        let log = Log::open(dir.path(), cfg.clone(), unclean(recovery_point)).unwrap();
        prop_assert_eq!(log.log_end_offset(), expected_leo);
        prop_assert!(log.recovery_point() <= expected_leo);
        prop_assert_eq!(all_batches(&log), expected.clone());
        let kept: Vec<_> = ranges.iter().copied().filter(|&(_, l)| l < expected_leo).collect();
        check_every_offset(&log, &kept)?;

        // The recovered log takes appends and survives another (clean) reopen.
        let mut log = log;
        let (first, _) = append(&mut log, 2);
        prop_assert_eq!(first, expected_leo);
        drop(log);
        let log = Log::open(dir.path(), cfg, unclean(expected_leo)).unwrap();
        prop_assert_eq!(log.log_end_offset(), expected_leo + 2);
    }

    /// A flipped byte anywhere in any batch of the segments recovery scans (but the length
    /// field of a segment's last batch, which cannot be told from a cut file) costs that batch
    /// only, unless it is a torn write (the last batch of the log, at or above the recovery
    /// point), which is cut: every other batch reads back exactly as written and the log end
    /// stays.
    #[test]
    fn a_flipped_byte_costs_at_most_its_own_batch(
        sets in sets_strategy(),
        segment_bytes in 100u64..1500,
        interval in 0u32..400,
        victim in any::<proptest::sample::Index>(),
        at in any::<proptest::sample::Index>(),
        mask in 1u8..=255,
        rp in any::<proptest::sample::Index>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(segment_bytes, interval);
        let (mut log, ranges) = build_log(dir.path(), &cfg, &sets);
        let before = all_batches(&log);
        let leo = log.log_end_offset();
        flush(&mut log);
        drop(log);
        let v = victim.index(ranges.len());
        let (vbase, vlast) = ranges[v];

        // The victim's file, position, size, and whether it ends its segment.
        let files = files_with_ext(dir.path(), "log");
        let mut found = None;
        for (i, path) in files.iter().enumerate() {
            let bytes = std::fs::read(path).unwrap();
            let views: Vec<_> = batches(&bytes).map(|b| b.unwrap()).collect();
            let n = views.len();
            let mut pos = 0;
            for (k, b) in views.into_iter().enumerate() {
                if b.base_offset() == vbase {
                    found = Some((path.clone(), i, pos, b.as_bytes().len(), k + 1 == n));
                }
                pos += b.as_bytes().len();
            }
        }
        let (path, file_index, pos, len, last_in_segment) = found.unwrap();
        let in_last_segment = file_index + 1 == files.len();
        let segment_end = files
            .get(file_index + 1)
            .map_or(leo, |p| p.file_stem().unwrap().to_str().unwrap().parse().unwrap());
        // A recovery point is a flushed log end: always a batch boundary.
        let boundaries: Vec<i64> = ranges.iter().map(|r| r.0).chain([leo]).collect();
        let recovery_point = boundaries[rp.index(boundaries.len())];
        // Recovery starts at the segment holding the recovery point; one below is trusted.
        prop_assume!(in_last_segment || recovery_point < segment_end);
        let torn = v + 1 == ranges.len() && recovery_point <= vbase;

        let mut byte = at.index(len);
        if last_in_segment && (8..12).contains(&byte) {
            byte = 12;
        }
        flip(&path, pos + byte, mask);

        let log = Log::open(dir.path(), cfg, unclean(recovery_point)).unwrap();
        let corrupt = log.corrupt_ranges_for_tests();
        if torn {
            // The bytes that remain may still make a valid batch (a flip outside the CRC).
            prop_assert!(log.log_end_offset() == vbase || log.log_end_offset() == leo);
            prop_assert!(corrupt.is_empty(), "{:?}", corrupt);
        } else {
            prop_assert_eq!(log.log_end_offset(), leo);
            prop_assert!(corrupt.is_empty() || corrupt == vec![(vbase, vlast + 1)], "{:?}", corrupt);
        }
        for (j, &(base, _)) in ranges.iter().enumerate() {
            if j == v {
                continue;
            }
            let slice = log.read(base, 1, leo, true).unwrap().slice.unwrap();
            let bytes = slice.read_to_vec().unwrap();
            prop_assert_eq!(&bytes, &before[j], "batch at {}", base);
        }
    }

    #[test]
    fn retention_by_size_and_time(
        sets in sets_strategy(),
        segment_bytes in 100u64..1500,
        retention_bytes in 0i64..3000,
        retention_ms in 0i64..400,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let mut cfg = config(segment_bytes, 64);
        cfg.retention_bytes = retention_bytes;
        cfg.retention_ms = retention_ms;
        let (mut log, ranges) = build_log(dir.path(), &cfg, &sets);
        let now = sets.len() as i64 * 10;
        let leo = log.log_end_offset();
        let size_before = log.size_bytes();
        log.apply_retention(now).unwrap();
        prop_assert_eq!(log.log_end_offset(), leo);
        let start = log.log_start_offset();
        // Whatever went was expired or over the size limit.
        for (i, &(_, last)) in ranges.iter().enumerate() {
            if last < start {
                let ts = i as i64 * 10;
                prop_assert!(now - ts > retention_ms || size_before as i64 > retention_bytes);
            }
        }
        // The log is readable from its new start, every remaining offset included.
        let kept: Vec<_> = ranges.iter().copied().filter(|&(b, _)| b >= start).collect();
        check_every_offset(&log, &kept)?;
        let segs = log.segment_stats();
        if segs.len() > 1 {
            let (_, first_size, first_ts) = segs[0];
            // Size retention left no deletable segment behind.
            prop_assert!(((log.size_bytes() - first_size) as i64) < retention_bytes);
            // Time retention left no expired segment in front, except the active segment it
            // just rolled (which goes next time).
            if now - first_ts > retention_ms {
                prop_assert_eq!(segs.len(), 2);
                prop_assert_eq!(segs[1].1, 0);
            }
        }
    }
}

/// Descriptors of this process open on files inside `dir` (other tests run in parallel, so
/// only the entries under this test's own directory count).
fn open_descriptors_under(dir: &Path) -> usize {
    let Ok(fds) = std::fs::read_dir("/proc/self/fd") else {
        return 0;
    };
    fds.filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|target| target.starts_with(dir))
        .count()
}

fn flush(log: &mut Log) {
    if let Some(t) = log.flush_target() {
        t.sync().unwrap();
        log.mark_flushed(t.end_offset);
    }
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).unwrap().len()
}

#[test]
fn only_the_log_files_hold_descriptors() {
    let dir = tempfile::tempdir().unwrap();
    let size = batch(1, 1_000, 10).len() as u64;
    let mut log = Log::open(dir.path(), config(size * 3, 0), clean()).unwrap();
    assert_eq!(open_descriptors_under(dir.path()), 1);
    for _ in 0..7 {
        append(&mut log, 1);
    }
    assert_eq!(log.segment_count(), 3);
    flush(&mut log);
    assert_eq!(open_descriptors_under(dir.path()), 3);
    log.flush_all().unwrap();
    drop(log);
    let log = Log::open(dir.path(), config(size * 3, 0), clean()).unwrap();
    assert_eq!(open_descriptors_under(dir.path()), log.segment_count());
}

#[test]
fn index_entries_reach_the_files_on_flush_roll_and_close() {
    let dir = tempfile::tempdir().unwrap();
    let size = batch(1, 1_000, 10).len() as u64;
    let cfg = config(size * 4, 0);
    let mut log = Log::open(dir.path(), cfg.clone(), clean()).unwrap();
    let index = dir.path().join("00000000000000000000.index");
    let time_index = dir.path().join("00000000000000000000.timeindex");
    // index.interval.bytes = 0: an entry for every batch but the first (at position 0).
    for ts in 1..=3 {
        append_at(&mut log, 1, ts * 100, 10, 0);
    }
    assert_eq!(log.unpersisted_index_entries(), vec![(2, 2)]);
    assert_eq!((file_len(&index), file_len(&time_index)), (0, 0));

    // A flush leaves the active segment's entries in memory (recovery rebuilds that segment's
    // indexes after a crash), so group commits cost no index-file writes.
    let target = log.flush_target().unwrap();
    assert_eq!((file_len(&index), file_len(&time_index)), (0, 0));
    // The first flush of a new log also syncs its directory (the new files' entries).
    assert_eq!(target.paths(), &[dir.path().to_path_buf()]);
    target.sync().unwrap();
    log.mark_flushed(target.end_offset);
    assert_eq!(log.unpersisted_index_entries(), vec![(2, 2)]);

    // A roll finishes the old segment's indexes, and the next flush syncs them and the directory.
    append_at(&mut log, 1, 400, 10, 0);
    assert_eq!(log.unpersisted_index_entries(), vec![(3, 3)]);
    append_at(&mut log, 1, 500, 10, 0);
    assert_eq!(log.segment_count(), 2);
    assert_eq!(log.unpersisted_index_entries(), vec![(0, 0), (0, 0)]);
    assert_eq!((file_len(&index), file_len(&time_index)), (24, 36));
    let target = log.flush_target().unwrap();
    assert!(target.paths().contains(&index));
    assert!(target.paths().contains(&time_index));
    assert!(target.paths().iter().any(|p| p == dir.path()));
    target.sync().unwrap();
    log.mark_flushed(target.end_offset);
    assert!(log.flush_target().is_none());

    // Shutdown writes the active segment's entries (and the final max timestamp).
    for ts in 6..=7 {
        append_at(&mut log, 1, ts * 100, 10, 0);
    }
    assert_eq!(log.unpersisted_index_entries(), vec![(0, 0), (2, 2)]);
    log.flush_all().unwrap();
    assert_eq!(log.unpersisted_index_entries(), vec![(0, 0), (0, 0)]);
    let ranges: Vec<(i64, i64)> = (0..7).map(|o| (o, o)).collect();
    drop(log);

    // A clean reopen loads the same entries: nothing to write, every offset and time found.
    let log = Log::open(dir.path(), cfg, clean()).unwrap();
    assert_eq!(log.unpersisted_index_entries(), vec![(0, 0), (0, 0)]);
    for &(o, _) in &ranges {
        assert_eq!(read_ranges(&log, o, 1, 7, true), vec![(o, o)]);
        let ts = (o + 1) * 100;
        assert_eq!(log.offset_for_timestamp(ts).unwrap(), Some((o, ts)));
    }
    assert_eq!(log.max_timestamp(), Some((6, 700)));
}

#[test]
fn crash_after_appends_past_the_last_flush_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let size = batch(2, 1_000, 10).len() as u64;
    let cfg = config(size * 3, 0);
    let mut log = Log::open(dir.path(), cfg.clone(), clean()).unwrap();
    let mut ranges = Vec::new();
    for _ in 0..8 {
        ranges.push(append(&mut log, 2));
    }
    flush(&mut log);
    let recovery_point = log.recovery_point();
    assert_eq!(recovery_point, 16);
    // Appends past the flush, rolling once; then the process "dies" (no close).
    for _ in 0..4 {
        ranges.push(append(&mut log, 2));
    }
    let leo = log.log_end_offset();
    assert!(log.unpersisted_index_entries().iter().any(|&u| u != (0, 0)));
    drop(log);

    // Tear the active segment in its last batch, as a crash during a write would.
    let last = files_with_ext(dir.path(), "log").pop().unwrap();
    let torn = file_len(&last) - 5;
    std::fs::OpenOptions::new()
        .write(true)
        .open(&last)
        .unwrap()
        .set_len(torn)
        .unwrap();

    let mut log = Log::open(dir.path(), cfg.clone(), unclean(recovery_point)).unwrap();
    assert_eq!(log.log_end_offset(), leo - 2);
    assert!(log.recovery_point() <= recovery_point);
    ranges.pop();
    for &(base, last) in &ranges {
        for o in base..=last {
            assert_eq!(read_ranges(&log, o, 1, leo, true), vec![(base, last)]);
        }
    }
    // Recovery rebuilt the indexes of every segment from the recovery point on; after a flush
    // the finished ones are in their files (the active one is rebuilt by the next recovery),
    // so another crash reopens with the same lookups.
    flush(&mut log);
    let unpersisted = log.unpersisted_index_entries();
    assert!(unpersisted.len() > 1);
    assert!(unpersisted[..unpersisted.len() - 1]
        .iter()
        .all(|&u| u == (0, 0)));
    let rp = log.recovery_point();
    drop(log);
    let log = Log::open(dir.path(), cfg, unclean(rp)).unwrap();
    assert_eq!(log.log_end_offset(), leo - 2);
    for &(base, last) in &ranges {
        assert_eq!(read_ranges(&log, last, 1, leo, true), vec![(base, last)]);
    }
}

#[test]
fn truncation_shortens_index_files() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(1 << 20, 0);
    let mut log = Log::open(dir.path(), cfg.clone(), clean()).unwrap();
    for ts in 1..=6 {
        append_at(&mut log, 1, ts * 100, 10, 0);
    }
    flush(&mut log);
    log.persist_active_indexes().unwrap();
    let index = dir.path().join("00000000000000000000.index");
    let time_index = dir.path().join("00000000000000000000.timeindex");
    assert_eq!((file_len(&index), file_len(&time_index)), (5 * 8, 5 * 12));
    log.truncate_to(3).unwrap();
    assert_eq!(log.log_end_offset(), 3);
    // Entries for the batches at offsets 1 and 2 remain, in memory and in the files.
    assert_eq!(log.unpersisted_index_entries(), vec![(0, 0)]);
    assert_eq!((file_len(&index), file_len(&time_index)), (2 * 8, 2 * 12));
    append_at(&mut log, 1, 900, 10, 0);
    log.flush_all().unwrap();
    drop(log);
    let log = Log::open(dir.path(), cfg, clean()).unwrap();
    assert_eq!(log.log_end_offset(), 4);
    for o in 0..4 {
        assert_eq!(read_ranges(&log, o, 1, 4, true), vec![(o, o)]);
    }
    assert_eq!(log.offset_for_timestamp(301).unwrap(), Some((3, 900)));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Index files cut anywhere (a crash before their tail was written) are valid sparse
    /// indexes: a clean load finds every offset and keeps appending.
    #[test]
    fn short_index_files_still_find_every_offset(
        sets in sets_strategy(),
        segment_bytes in 100u64..1500,
        interval in 0u32..400,
        keep in any::<proptest::sample::Index>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(segment_bytes, interval);
        let (mut log, mut ranges) = build_log(dir.path(), &cfg, &sets);
        log.flush_all().unwrap();
        drop(log);
        for p in files_with_ext(dir.path(), "index") {
            let entries = file_len(&p) / 8;
            let kept = keep.index(entries as usize + 1) as u64;
            std::fs::OpenOptions::new().write(true).open(&p).unwrap().set_len(kept * 8).unwrap();
        }
        let mut log = Log::open(dir.path(), cfg, clean()).unwrap();
        check_every_offset(&log, &ranges)?;
        ranges.push(append(&mut log, 3));
        check_every_offset(&log, &ranges)?;
    }

    /// A crash after appends past the last flush: reopening from the recovery point gives back
    /// every record (the page cache kept them) and every offset is found through the indexes.
    #[test]
    fn crash_after_a_flush_keeps_every_record(
        sets in sets_strategy(),
        segment_bytes in 100u64..1500,
        interval in 0u32..400,
        flush_at in any::<proptest::sample::Index>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(segment_bytes, interval);
        let mut log = Log::open(dir.path(), cfg.clone(), clean()).unwrap();
        let flush_at = flush_at.index(sets.len() + 1);
        let mut ranges = Vec::new();
        for (i, &(n, len)) in sets.iter().enumerate() {
            if i == flush_at {
                flush(&mut log);
            }
            ranges.push(append_at(&mut log, n, i as i64 * 10, len, i as i64));
        }
        let before = all_batches(&log);
        let leo = log.log_end_offset();
        let recovery_point = log.recovery_point();
        drop(log);
        let log = Log::open(dir.path(), cfg, unclean(recovery_point)).unwrap();
        prop_assert_eq!(log.log_end_offset(), leo);
        prop_assert_eq!(all_batches(&log), before);
        check_every_offset(&log, &ranges)?;
    }
}

#[test]
fn a_deleted_log_never_writes_into_a_recreated_one() {
    let dir = tempfile::tempdir().unwrap();
    let tp = TopicPartition {
        topic: "t".to_string(),
        partition: 0,
    };
    let m = LogManager::open(dir.path()).unwrap();
    let old = m.get_or_create(&tp, config(1 << 20, 0)).unwrap();
    for _ in 0..3 {
        append(&mut old.lock().unwrap(), 1);
    }
    m.delete(&tp).unwrap();
    let new = m.get_or_create(&tp, config(1 << 20, 0)).unwrap();
    let index = dir.path().join("t-0").join("00000000000000000000.index");
    // A partition handle that outlived the deletion flushes: its `.log` is synced, but its
    // index entries do not land in the new log's file.
    let target = old.lock().unwrap().flush_target().unwrap();
    target.sync().unwrap();
    assert!(target.paths().is_empty());
    assert_eq!(file_len(&index), 0);
    append(&mut new.lock().unwrap(), 1);
    assert_eq!(new.lock().unwrap().log_end_offset(), 1);
    // Nor does it take appends (a roll would create a segment in the new log's directory).
    let b = batch(1, 1_000, 10);
    let s = validate_record_set(&b, 1 << 20).unwrap();
    assert!(matches!(
        old.lock().unwrap().append_as_leader(&s, 0, 0, false),
        Err(StorageError::Deleted { .. })
    ));
    assert_eq!(files_with_ext(&dir.path().join("t-0"), "log").len(), 1);
    m.shutdown().unwrap();
}

/// Two log managers on one data directory: the second fails at open, before it reads or
/// changes anything, and the directory opens again once the first is gone.
#[test]
fn a_second_log_manager_on_the_same_directory_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let first = crate::LogManager::open(dir.path()).expect("first");
    let e = crate::LogManager::open(dir.path()).expect_err("second is refused");
    assert!(e.to_string().contains("in use by another process"), "{e}");
    drop(first);
    crate::LogManager::open(dir.path()).expect("free again");
}

/// KIP-966: a clean shutdown leaves the broker epoch in the marker (Kafka's
/// `{"version":0,"brokerEpoch":N}`); the next open reads it, and only after a clean stop.
#[test]
fn the_clean_shutdown_marker_carries_the_broker_epoch() {
    let dir = tempfile::tempdir().unwrap();
    {
        let m = LogManager::open(dir.path()).unwrap();
        assert_eq!(m.previous_broker_epoch(), None);
        m.set_broker_epoch(Some(42));
        m.shutdown().unwrap();
    }
    let marker = dir.path().join(".gregor_cleanshutdown");
    assert_eq!(
        std::fs::read_to_string(&marker).unwrap(),
        r#"{"version":0,"brokerEpoch":42}"#
    );
    {
        let m = LogManager::open(dir.path()).unwrap();
        assert_eq!(m.previous_broker_epoch(), Some(42));
        // No shutdown: the next start proves nothing.
    }
    {
        let m = LogManager::open(dir.path()).unwrap();
        assert_eq!(m.previous_broker_epoch(), None);
        // A clean stop without an epoch (not registered) writes an empty marker.
        m.shutdown().unwrap();
    }
    assert_eq!(std::fs::read_to_string(&marker).unwrap(), "");
    let m = LogManager::open(dir.path()).unwrap();
    assert!(m.had_clean_shutdown());
    assert_eq!(m.previous_broker_epoch(), None);
    drop(m);
    for (content, epoch) in [
        (r#"{ "version": 0, "brokerEpoch": 7 }"#, Some(7)),
        (r#"{"brokerEpoch":7,"version":0}"#, Some(7)),
        (r#"{"version":1,"brokerEpoch":7}"#, None),
        (r#"{"version":0,"brokerEpoch":-1}"#, None),
        ("garbage", None),
    ] {
        std::fs::write(&marker, content).unwrap();
        let m = LogManager::open(dir.path()).unwrap();
        assert_eq!(m.previous_broker_epoch(), epoch, "{content}");
    }
}
