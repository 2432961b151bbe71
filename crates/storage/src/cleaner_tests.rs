//! The log cleaner through `Log`: latest value per key, tombstones and their horizon, offsets
//! and reads across the gaps, compressed batches, aborted transactions, the swap protocol's
//! crash recovery, the cleaner checkpoint, and a property test against a model map.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use gregor_protocol::batch::{
    batches, encode_simple_batch, validate_record_set, BatchView, Compression, SimpleRecord,
    ATTR_TRANSACTIONAL,
};
use gregor_protocol::control::{ControlRecordType, EndTransactionMarker};
use gregor_protocol::records::{
    Compression as Codec, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions,
    TimestampType,
};
use proptest::prelude::*;

use crate::cleaner::{CleanOutcome, Cleaner, Throttler};
use crate::log::LoadOptions;
use crate::{Log, LogConfig, LogManager, TopicPartition};

fn cfg(segment_bytes: u64) -> LogConfig {
    LogConfig {
        segment_bytes,
        index_interval_bytes: 0,
        retention_ms: -1,
        compact: true,
        ..LogConfig::default()
    }
}

fn opts() -> LoadOptions {
    LoadOptions {
        recovery_point: 0,
        log_start_offset: None,
        clean_shutdown: true,
    }
}

type Kv = (&'static str, Option<&'static str>);

/// Appends one uncompressed batch of keyed records; returns its first offset.
fn put(log: &mut Log, recs: &[(&str, Option<&str>)]) -> i64 {
    let recs: Vec<SimpleRecord<'_>> = recs
        .iter()
        .map(|(k, v)| (Some(k.as_bytes()), v.map(str::as_bytes)))
        .collect();
    let b = encode_simple_batch(1_000, &recs);
    append(log, &b)
}

fn append(log: &mut Log, b: &[u8]) -> i64 {
    let set = validate_record_set(b, 1 << 20).expect("valid");
    log.append_as_leader(&set, 1, 0, false)
        .expect("append")
        .first_offset
}

/// A batch encoded by kafka-protocol with `codec` (a real producer's encoding).
fn encoded(codec: Codec, recs: &[(String, Option<String>)]) -> Vec<u8> {
    let recs: Vec<Record> = recs
        .iter()
        .enumerate()
        .map(|(i, (k, v))| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            sequence: i as i32,
            timestamp: 1_000,
            key: Some(bytes::Bytes::from(k.clone())),
            value: v.clone().map(bytes::Bytes::from),
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

/// Every batch of the log from its start, as stored.
fn raw_batches(log: &Log) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut offset = log.log_start_offset();
    while offset < log.log_end_offset() {
        let info = log.read(offset, 1 << 20, i64::MAX, true).expect("read");
        let Some(slice) = info.slice else { break };
        let bytes = slice.read_to_vec().expect("bytes");
        for b in batches(&bytes) {
            let b = b.expect("batch");
            assert_eq!(b.computed_crc(), b.crc(), "CRC of a stored batch");
            offset = b.next_offset();
            out.push(b.as_bytes().to_vec());
        }
    }
    out
}

/// `(offset, key, value)` of every record of the log, in order (a consumer's view).
fn records(log: &Log) -> Vec<(i64, String, Option<String>)> {
    let mut out = Vec::new();
    for b in raw_batches(log) {
        let view = BatchView::parse(&b).expect("batch");
        if view.is_control() {
            continue;
        }
        let mut buf = bytes::Bytes::from(b);
        let set = RecordBatchDecoder::decode(&mut buf).expect("decode");
        for r in set.records {
            let key = r.key.map(|k| String::from_utf8_lossy(&k).into_owned());
            let value = r.value.map(|v| String::from_utf8_lossy(&v).into_owned());
            out.push((r.offset, key.unwrap_or_default(), value));
        }
    }
    out
}

/// The latest value of each key (tombstones as `None`).
fn latest(recs: &[(i64, String, Option<String>)]) -> BTreeMap<String, Option<String>> {
    recs.iter()
        .map(|(_, k, v)| (k.clone(), v.clone()))
        .collect()
}

fn cleaner() -> Cleaner {
    Cleaner::new(1 << 20, Arc::new(Throttler::new(f64::INFINITY)))
}

/// One clean of everything cleanable (upper bound: the log end), from `checkpoint`.
fn clean(log: &Mutex<Log>, checkpoint: Option<i64>) -> Option<crate::CleanStats> {
    let to_clean = log
        .lock()
        .expect("lock")
        .cleanable(checkpoint, i64::MAX, 0)?;
    match cleaner().clean(log, &to_clean, 0).expect("clean") {
        CleanOutcome::Cleaned(stats) => Some(stats),
        CleanOutcome::Abandoned(why) => panic!("abandoned: {why}"),
    }
}

/// Rolls the active segment by appending a batch under a fresh key.
fn roll(log: &mut Log, key: &'static str) {
    let before = log.segment_count();
    while log.segment_count() == before {
        put(log, &[(key, Some("roll"))]);
    }
}

fn updates(log: &mut Log, rounds: usize, keys: &[&'static str]) {
    for round in 0..rounds {
        for k in keys {
            let v = format!("{k}-{round}");
            put(log, &[(k, Some(&v))]);
        }
    }
}

#[test]
fn the_latest_record_of_each_key_survives_with_its_offset() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = Log::open(dir.path(), cfg(400), opts()).expect("open");
    updates(&mut log, 10, &["a", "b", "c", "d"]);
    put(&mut log, &[("a", Some("a-last")), ("c", None)]);
    roll(&mut log, "z");
    let before = records(&log);
    let before_size = log.size_bytes();
    let before_segments = log.segment_count();
    let log = Mutex::new(log);
    let stats = clean(&log, None).expect("cleanable");
    let log = log.into_inner().expect("lock");
    let after = records(&log);
    assert_eq!(latest(&after), latest(&before), "same latest value per key");
    // Each key once below the active segment, at the offset it had.
    let active_base = log.segment_stats().last().expect("active").0;
    let mut seen = std::collections::HashSet::new();
    for (offset, key, value) in after.iter().filter(|r| r.0 < active_base) {
        assert!(seen.insert(key.clone()), "{key} twice");
        assert!(
            before.contains(&(*offset, key.clone(), value.clone())),
            "offset kept"
        );
    }
    assert!(
        log.size_bytes() < before_size / 3,
        "{} -> {}",
        before_size,
        log.size_bytes()
    );
    assert!(
        log.segment_count() < before_segments,
        "small segments are grouped"
    );
    assert_eq!(stats.end_offset, active_base);
    assert!(stats.records_kept < stats.records_read);
    // The tombstone of the first clean stays (no clean section yet: no horizon).
    assert!(after.iter().any(|(_, k, v)| k == "c" && v.is_none()));
    // The log reopens from the cleaned files (indexes included) and reads the same.
    drop(log);
    let log = Log::open(dir.path(), cfg(400), opts()).expect("reopen");
    assert_eq!(records(&log), after);
}

#[test]
fn a_fetch_from_a_removed_offset_returns_the_next_batch() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = Log::open(dir.path(), cfg(1 << 20), opts()).expect("open");
    for i in 0..6 {
        put(&mut log, &[("k", Some(&format!("v{i}")))]);
        put(&mut log, &[(if i == 5 { "other" } else { "o" }, Some("x"))]);
    }
    // offsets: k at 0,2,4,6,8,10; o at 1,3,5,7,9; other at 11
    log.roll().expect("roll");
    put(&mut log, &[("tail", Some("t"))]);
    let log = Mutex::new(log);
    clean(&log, None).expect("cleaned");
    let log = log.into_inner().expect("lock");
    let offsets: Vec<i64> = records(&log).iter().map(|r| r.0).collect();
    assert_eq!(offsets, vec![9, 10, 11, 12]);
    for (from, expect) in [(0, 9), (4, 9), (9, 9), (10, 10)] {
        let info = log.read(from, 1 << 20, i64::MAX, true).expect("read");
        let bytes = info.slice.expect("data").read_to_vec().expect("bytes");
        let b = BatchView::parse(&bytes).expect("batch");
        assert_eq!(b.base_offset(), expect, "fetch from {from}");
    }
    assert_eq!(log.log_start_offset(), 0, "the log start does not move");
}

#[test]
fn a_first_segment_left_without_records_keeps_the_log_start() {
    // Segments of one record each (segment.bytes below two batches): the first groups hold
    // only superseded records.
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = Log::open(dir.path(), cfg(120), opts()).expect("open");
    for i in 0..10 {
        put(&mut log, &[("k", Some(&format!("v{i}")))]);
    }
    roll(&mut log, "z");
    let log = Mutex::new(log);
    clean(&log, None).expect("cleaned");
    let log = log.into_inner().expect("lock");
    assert_eq!(log.segment_stats()[0].0, 0, "the first segment stays");
    let survivors: Vec<i64> = records(&log).iter().map(|r| r.0).collect();
    assert_eq!(survivors, vec![9, 10], "{survivors:?}");
    drop(log);
    let log = Log::open(dir.path(), cfg(120), opts()).expect("reopen");
    assert_eq!(log.log_start_offset(), 0, "the log start after a restart");
    assert_eq!(
        records(&log).iter().map(|r| r.0).collect::<Vec<_>>(),
        vec![9, 10]
    );
}

#[test]
fn tombstones_stay_until_the_delete_horizon_then_go() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = cfg(1 << 20);
    config.delete_retention_ms = 3_600_000;
    let mut log = Log::open(dir.path(), config.clone(), opts()).expect("open");
    put(&mut log, &[("a", Some("1")), ("b", Some("1"))]);
    put(&mut log, &[("a", None)]);
    log.roll().expect("roll");
    put(&mut log, &[("c", Some("1"))]);
    let log = Mutex::new(log);
    let first = clean(&log, None).expect("cleaned").end_offset;
    let has_tombstone = |log: &Mutex<Log>| {
        records(&log.lock().expect("lock"))
            .iter()
            .any(|(_, k, v)| k == "a" && v.is_none())
    };
    assert!(has_tombstone(&log), "kept by the first clean");
    // More dirty data; the tombstone's segment is now clean, modified just now: within
    // delete.retention.ms of the clean section's newest segment, it stays.
    log.lock().expect("lock").roll().expect("roll");
    put(&mut log.lock().expect("lock"), &[("d", Some("1"))]);
    let second = clean(&log, Some(first)).expect("cleaned").end_offset;
    assert!(has_tombstone(&log), "kept before the horizon");
    // With delete.retention.ms = 0 the horizon passes the tombstone's segment.
    config.delete_retention_ms = 0;
    log.lock().expect("lock").set_config(config);
    log.lock().expect("lock").roll().expect("roll");
    put(&mut log.lock().expect("lock"), &[("e", Some("1"))]);
    clean(&log, Some(second)).expect("cleaned");
    assert!(!has_tombstone(&log), "dropped after the horizon");
    let keys: Vec<String> = records(&log.lock().expect("lock"))
        .into_iter()
        .map(|r| r.1)
        .collect();
    assert_eq!(keys, vec!["b", "c", "d", "e"]);
}

#[test]
fn compressed_batches_stay_compressed_with_their_codec() {
    for codec in [Codec::Gzip, Codec::Snappy, Codec::Lz4, Codec::Zstd] {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = Log::open(dir.path(), cfg(1 << 20), opts()).expect("open");
        for round in 0..5 {
            let recs: Vec<(String, Option<String>)> = (0..20)
                .map(|i| (format!("key{}", i % 7), Some(format!("value-{round}-{i}"))))
                .collect();
            append(&mut log, &encoded(codec, &recs));
        }
        let before = latest(&records(&log));
        log.roll().expect("roll");
        put(&mut log, &[("tail", Some("t"))]);
        let log = Mutex::new(log);
        clean(&log, None).expect("cleaned");
        let log = log.into_inner().expect("lock");
        let mut after = latest(&records(&log));
        after.remove("tail");
        assert_eq!(after, before, "{codec:?}");
        let stored = raw_batches(&log);
        let first = BatchView::parse(&stored[0]).expect("batch");
        let expected = match codec {
            Codec::Gzip => Compression::Gzip,
            Codec::Snappy => Compression::Snappy,
            Codec::Lz4 => Compression::Lz4,
            _ => Compression::Zstd,
        };
        assert_eq!(first.compression().expect("codec"), expected);
        assert!(
            first.record_count() > 1 && first.record_count() < 20,
            "a rebuilt batch: {}",
            first.record_count()
        );
        assert_eq!(records(&log).len(), 7 + 1, "{codec:?}");
    }
}

/// A transactional batch of keyed records from `pid`.
fn txn_batch(pid: i64, seq: i32, recs: &[Kv]) -> Vec<u8> {
    let recs: Vec<SimpleRecord<'_>> = recs
        .iter()
        .map(|(k, v)| (Some(k.as_bytes()), v.map(str::as_bytes)))
        .collect();
    let mut b = encode_simple_batch(1_000, &recs);
    b[21..23].copy_from_slice(&ATTR_TRANSACTIONAL.to_be_bytes());
    b[43..51].copy_from_slice(&pid.to_be_bytes());
    b[51..53].copy_from_slice(&0i16.to_be_bytes());
    b[53..57].copy_from_slice(&seq.to_be_bytes());
    let crc = crc32c::crc32c(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    b
}

fn end_txn(log: &mut Log, pid: i64, commit: bool) {
    let m = EndTransactionMarker {
        control_type: ControlRecordType::from_committed(commit),
        coordinator_epoch: 0,
    };
    log.append_end_txn_marker_as_leader(pid, 0, m, 0, 1, 0)
        .expect("marker");
}

#[test]
fn aborted_transactional_records_are_removed_and_never_hide_committed_ones() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = Log::open(dir.path(), cfg(1 << 20), opts()).expect("open");
    append(
        &mut log,
        &txn_batch(7, 0, &[("a", Some("committed")), ("b", Some("1"))]),
    );
    end_txn(&mut log, 7, true);
    append(
        &mut log,
        &txn_batch(8, 0, &[("a", Some("aborted")), ("c", Some("aborted"))]),
    );
    end_txn(&mut log, 8, false);
    log.roll().expect("roll");
    put(&mut log, &[("tail", Some("t"))]);
    let markers_before = raw_batches(&log)
        .iter()
        .filter(|b| BatchView::parse(b).expect("batch").is_control())
        .count();
    let log = Mutex::new(log);
    clean(&log, None).expect("cleaned");
    let log = log.into_inner().expect("lock");
    let recs = records(&log);
    let values: Vec<(String, Option<String>)> =
        recs.iter().map(|r| (r.1.clone(), r.2.clone())).collect();
    assert_eq!(
        values,
        vec![
            ("a".into(), Some("committed".into())),
            ("b".into(), Some("1".into())),
            ("tail".into(), Some("t".into())),
        ]
    );
    let stored = raw_batches(&log);
    let markers = stored
        .iter()
        .filter(|b| BatchView::parse(b).expect("batch").is_control())
        .count();
    assert_eq!(markers, markers_before, "markers are kept");
    // The aborted producer's last batch keeps its header (no records), so its sequence and
    // epoch survive a reload.
    let empty: Vec<BatchView<'_>> = stored
        .iter()
        .map(|b| BatchView::parse(b).expect("batch"))
        .filter(|b| b.producer_id() == 8 && !b.is_control())
        .collect();
    assert_eq!(empty.len(), 1);
    assert_eq!((empty[0].record_count(), empty[0].last_offset()), (0, 4));
    // read_committed still learns about the aborted transaction from the .txnindex.
    let (_, aborted) = log
        .read_committed(0, 1 << 20, log.log_end_offset(), true)
        .expect("read");
    assert_eq!(aborted.len(), 1);
    assert_eq!(aborted[0].producer_id, 8);
}

/// The files of `dir` (names), sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .expect("dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// Writes the same log in `dir`: four segments of updates to three keys, then an active one.
fn build_updates(dir: &Path) -> Log {
    let mut log = Log::open(dir, cfg(300), opts()).expect("open");
    updates(&mut log, 8, &["a", "b", "c"]);
    roll(&mut log, "z");
    log.flush_all().expect("flush");
    log
}

#[test]
fn a_crash_with_cleaned_files_left_rolls_the_clean_back() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = build_updates(dir.path());
    let before = records(&log);
    drop(log);
    // A crash while writing: .cleaned files (a cut .log among them) and one index already
    // renamed to .swap (the .log is renamed last).
    let p = |n: &str| dir.path().join(n);
    std::fs::write(p("00000000000000000000.log.cleaned"), b"partial").expect("write");
    std::fs::write(p("00000000000000000000.index.swap"), [0u8; 8]).expect("write");
    std::fs::write(p("00000000000000000000.timeindex.cleaned"), [0u8; 12]).expect("write");
    let log = Log::open(dir.path(), cfg(300), opts()).expect("reopen");
    assert_eq!(records(&log), before);
    assert!(
        names(dir.path())
            .iter()
            .all(|n| !n.ends_with(".cleaned") && !n.ends_with(".swap")),
        "{:?}",
        names(dir.path())
    );
}

#[test]
fn a_crash_during_the_swap_finishes_it() {
    // The same log twice: one cleaned, whose new segment files play the `.swap` files a crash
    // left in the other.
    let cleaned_dir = tempfile::tempdir().expect("tempdir");
    let log = build_updates(cleaned_dir.path());
    let log = Mutex::new(log);
    clean(&log, None).expect("cleaned");
    let cleaned = log.into_inner().expect("lock");
    let expected = records(&cleaned);
    let new_bases: Vec<i64> = cleaned.segment_stats().iter().map(|s| s.0).collect();
    drop(cleaned);

    for stage in ["swap", "olds-deleted", "log-renamed"] {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = build_updates(dir.path());
        let old_bases: Vec<i64> = log.segment_stats().iter().map(|s| s.0).collect();
        drop(log);
        let active = *old_bases.last().expect("active");
        // The cleaned segments (every new base below the active one).
        for &base in new_bases.iter().filter(|&&b| b < active) {
            for ext in ["log", "index", "timeindex"] {
                let name = format!("{base:020}.{ext}");
                let from = cleaned_dir.path().join(&name);
                if !from.exists() {
                    continue;
                }
                let to = match (stage, ext) {
                    ("log-renamed", "log") => {
                        // The final rename began: the .log is in place (the old one is gone).
                        name.clone()
                    }
                    _ => format!("{name}.swap"),
                };
                if stage == "log-renamed" && ext == "log" {
                    std::fs::remove_file(dir.path().join(&name)).expect("old log");
                }
                std::fs::copy(&from, dir.path().join(to)).expect("copy");
            }
        }
        if stage != "swap" {
            // Old segments already renamed to .deleted (all but the first's .log, in the
            // log-renamed stage that one is already replaced).
            for &base in old_bases.iter().filter(|&&b| b < active) {
                for ext in ["log", "index", "timeindex"] {
                    let name = format!("{base:020}.{ext}");
                    let path = dir.path().join(&name);
                    let replaced_new =
                        stage == "log-renamed" && ext == "log" && new_bases.contains(&base);
                    if path.exists() && !replaced_new {
                        std::fs::rename(&path, dir.path().join(format!("{name}.deleted")))
                            .expect("rename");
                    }
                }
            }
        }
        let original = records(&Log::open(dir.path(), cfg(300), opts()).expect("reopen"));
        let log = Log::open(dir.path(), cfg(300), opts()).expect("reopen");
        if stage == "swap" {
            // Old segments a group replaced with nothing (every record superseded) were not
            // renamed yet: they stay, uncleaned; the swapped segments replace their olds.
            assert_eq!(latest(&records(&log)), latest(&expected), "stage {stage}");
            for r in expected.iter().filter(|r| r.0 >= new_bases[0]) {
                assert!(records(&log).contains(r), "stage {stage}: {r:?}");
            }
            assert_eq!(records(&log), original, "stable once recovered");
        } else {
            assert_eq!(records(&log), expected, "stage {stage}");
        }
        assert!(
            names(dir.path())
                .iter()
                .all(|n| !n.ends_with(".swap") && !n.ends_with(".deleted")),
            "{stage}: {:?}",
            names(dir.path())
        );
    }
}

#[test]
fn the_cleaner_checkpoint_is_kept_per_partition_and_dropped_with_its_topic() {
    let dir = tempfile::tempdir().expect("tempdir");
    let tp = TopicPartition {
        topic: "compacted".into(),
        partition: 3,
    };
    {
        let m = LogManager::open(dir.path()).expect("open");
        assert_eq!(m.cleaner_checkpoint(&tp), None);
        m.update_cleaner_checkpoint(&tp, 42).expect("write");
        let text =
            std::fs::read_to_string(dir.path().join("cleaner-offset-checkpoint")).expect("file");
        assert_eq!(text, "0\n1\ncompacted 3 42\n");
    }
    let m = LogManager::open(dir.path()).expect("reopen");
    assert_eq!(m.cleaner_checkpoint(&tp), Some(42));
    m.get_or_create(&tp, cfg(1 << 20)).expect("log");
    m.delete(&tp).expect("delete");
    assert_eq!(m.cleaner_checkpoint(&tp), None);
}

#[test]
fn nothing_is_cleanable_without_compaction_below_the_bound_or_within_the_lag() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = cfg(1 << 20);
    config.compact = false;
    let mut log = Log::open(dir.path(), config.clone(), opts()).expect("open");
    updates(&mut log, 3, &["a"]);
    log.roll().expect("roll");
    put(&mut log, &[("a", Some("x"))]);
    assert!(log.cleanable(None, i64::MAX, 0).is_none(), "delete policy");
    config.compact = true;
    log.set_config(config.clone());
    let c = log.cleanable(None, i64::MAX, 0).expect("cleanable");
    assert_eq!((c.first_dirty_offset, c.cleanable_end_offset), (0, 3));
    assert!((c.dirty_ratio() - 1.0).abs() < 1e-9);
    assert!(
        log.cleanable(None, 2, 0).is_none(),
        "the high watermark is inside the segment"
    );
    config.min_compaction_lag_ms = 10_000;
    log.set_config(config);
    // Records at timestamp 1000: too young at 5000, old enough at 20000.
    assert!(log.cleanable(None, i64::MAX, 5_000).is_none());
    assert!(log.cleanable(None, i64::MAX, 20_000).is_some());
    assert!(
        log.cleanable(Some(3), i64::MAX, 20_000).is_none(),
        "all clean"
    );
    let c = log.cleanable(Some(3), i64::MAX, 20_000);
    assert_eq!(c, None);
}

#[test]
fn a_small_dedupe_buffer_cleans_part_of_the_dirty_section() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = Log::open(dir.path(), cfg(200), opts()).expect("open");
    let keys = ["a", "b", "c", "d", "e", "f", "g", "h"];
    updates(&mut log, 4, &keys);
    roll(&mut log, "z");
    let before = latest(&records(&log));
    let log = Mutex::new(log);
    let to_clean = log
        .lock()
        .expect("lock")
        .cleanable(None, i64::MAX, 0)
        .expect("cleanable");
    // Room for 4 entries: the map fills after four single-record batches.
    let mut small = Cleaner::new(24 * 5, Arc::new(Throttler::new(f64::INFINITY)));
    let CleanOutcome::Cleaned(stats) = small.clean(&log, &to_clean, 0).expect("clean") else {
        panic!("abandoned");
    };
    assert!(stats.map_full);
    assert_eq!(stats.end_offset, 4, "the first four batches were mapped");
    assert_eq!(latest(&records(&log.lock().expect("lock"))), before);
    // Cleaning again from there goes on.
    let to_clean = log
        .lock()
        .expect("lock")
        .cleanable(Some(stats.end_offset), i64::MAX, 0)
        .expect("more");
    assert_eq!(to_clean.first_dirty_offset, 4);
}

#[test]
fn a_log_changed_while_cleaning_is_not_swapped() {
    // Retention, DeleteRecords or a follower's truncation between the view and the swap: the
    // clean is abandoned, its files removed, the log untouched.
    for change in ["retention", "truncation"] {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut log = Log::open(dir.path(), cfg(300), opts()).expect("open");
        updates(&mut log, 6, &["a", "b"]);
        roll(&mut log, "z");
        let to_clean = log.cleanable(None, i64::MAX, 0).expect("cleanable");
        let log = Mutex::new(log);
        let mut c = cleaner();
        let prepared = c
            .prepare(&log, &to_clean, 0)
            .expect("prepare")
            .expect("work");
        assert!(names(dir.path())
            .iter()
            .any(|n| n.ends_with(".log.cleaned")));
        {
            let mut l = log.lock().expect("lock");
            match change {
                "retention" => {
                    let second = l.segment_stats()[1].0;
                    l.delete_records_before(second).expect("delete records");
                }
                _ => l.truncate_to(5).expect("truncate"),
            }
        }
        let before = records(&log.lock().expect("lock"));
        let outcome = crate::cleaner::finish(&log, prepared).expect("finish");
        assert!(
            matches!(outcome, CleanOutcome::Abandoned(_)),
            "{change}: {outcome:?}"
        );
        assert!(
            names(dir.path()).iter().all(|n| !n.contains(".cleaned")),
            "{change}: {:?}",
            names(dir.path())
        );
        assert_eq!(records(&log.lock().expect("lock")), before);
    }
}

#[test]
fn appends_and_reads_go_on_while_a_clean_is_prepared_and_old_slices_stay_readable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = Log::open(dir.path(), cfg(300), opts()).expect("open");
    updates(&mut log, 6, &["a", "b"]);
    roll(&mut log, "z");
    let to_clean = log.cleanable(None, i64::MAX, 0).expect("cleanable");
    // A fetch in flight holds a slice of the first (old) segment.
    let slice = log
        .read(0, 1 << 20, i64::MAX, true)
        .expect("read")
        .slice
        .expect("data");
    let old_bytes = slice.read_to_vec().expect("bytes");
    let log = Mutex::new(log);
    let mut c = cleaner();
    let prepared = c
        .prepare(&log, &to_clean, 0)
        .expect("prepare")
        .expect("work");
    // The lock is free: appends (even a roll) go on.
    let end_before = {
        let mut l = log.lock().expect("lock");
        updates(&mut l, 3, &["c"]);
        l.roll().expect("roll");
        l.log_end_offset()
    };
    let outcome = crate::cleaner::finish(&log, prepared).expect("finish");
    assert!(matches!(outcome, CleanOutcome::Cleaned(_)), "{outcome:?}");
    assert_eq!(
        slice.read_to_vec().expect("bytes"),
        old_bytes,
        "old slice still reads"
    );
    let l = log.lock().expect("lock");
    assert_eq!(l.log_end_offset(), end_before);
    let recs = records(&l);
    assert_eq!(
        recs.iter().filter(|r| r.1 == "c").count(),
        3,
        "the appends are kept"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(32))]

    #[test]
    fn a_compacted_log_reads_back_the_model(
        writes in prop::collection::vec(
            prop::collection::vec((0u8..8, prop::option::weighted(0.85, 0u16..1000)), 1..4),
            1..120,
        ),
        segment_bytes in 150u64..2_000,
        cleans in 1usize..4,
        drop_tombstones in any::<bool>(),
    ) {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = cfg(segment_bytes);
        if drop_tombstones {
            // The horizon is the clean section's newest mtime: tombstones go from the 2nd clean.
            config.delete_retention_ms = 0;
        }
        let log = Log::open(dir.path(), config.clone(), opts()).expect("open");
        let mut model: BTreeMap<String, Option<String>> = BTreeMap::new();
        let mut all = Vec::new();
        let per_clean = writes.len().div_ceil(cleans);
        let mut checkpoint = None;
        let log = Mutex::new(log);
        for chunk in writes.chunks(per_clean) {
            {
                let mut l = log.lock().expect("lock");
                for batch in chunk {
                    let recs: Vec<(String, Option<String>)> = batch
                        .iter()
                        .map(|(k, v)| (format!("k{k}"), v.map(|v| format!("v{v}"))))
                        .collect();
                    let refs: Vec<(&str, Option<&str>)> =
                        recs.iter().map(|(k, v)| (k.as_str(), v.as_deref())).collect();
                    let first = put(&mut l, &refs);
                    for (i, (k, v)) in recs.into_iter().enumerate() {
                        all.push((first + i as i64, k.clone(), v.clone()));
                        model.insert(k, v);
                    }
                }
            }
            if let Some(stats) = clean(&log, checkpoint) {
                checkpoint = Some(stats.end_offset);
            }
        }
        let l = log.lock().expect("lock");
        let after = records(&l);
        // Every record read is one that was written, at its offset.
        for r in &after {
            prop_assert!(all.contains(r), "{r:?} was never written there");
        }
        // Reading the whole log gives the model's latest value of each key (a tombstone is
        // read as a null value, or is gone entirely).
        let mut read = latest(&after);
        read.retain(|_, v| v.is_some());
        let mut want = model.clone();
        want.retain(|_, v| v.is_some());
        prop_assert_eq!(read, want);
        // Below the cleaned end, each key appears once.
        if let Some(end) = checkpoint {
            let mut seen = std::collections::HashSet::new();
            for (_, k, _) in after.iter().filter(|r| r.0 < end) {
                prop_assert!(seen.insert(k.clone()), "{} twice in the clean section", k);
            }
        }
        drop(l);
        drop(log);
        let reopened = Log::open(dir.path(), config, opts()).expect("reopen");
        prop_assert_eq!(records(&reopened), after);
    }
}
