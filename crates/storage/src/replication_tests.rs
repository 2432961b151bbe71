//! Tests of what replication needs from a `Log`: leader epochs stamped into batches and kept
//! in the leader-epoch cache through appends, truncation, log-start moves, crashes and
//! reloads (old directories without a checkpoint file included); follower appends that store a
//! leader's bytes unchanged and refuse what does not continue the log; the high-watermark
//! checkpoint of `LogManager`.

use std::collections::HashMap;
use std::path::Path;

use gregor_protocol::batch::{
    assign_offsets, batches, encode_simple_batch, validate_record_set, BatchError,
};
use gregor_replication::epoch::{self, EpochEntry};
use proptest::prelude::*;

use crate::log::LoadOptions;
use crate::{Log, LogConfig, LogManager, StorageError, TopicPartition, LEADER_EPOCH_CHECKPOINT};

fn config(segment_bytes: u64) -> LogConfig {
    LogConfig {
        segment_bytes,
        index_interval_bytes: 64,
        retention_ms: -1,
        ..LogConfig::default()
    }
}

fn opts(clean_shutdown: bool, recovery_point: i64, log_start_offset: Option<i64>) -> LoadOptions {
    LoadOptions {
        recovery_point,
        log_start_offset,
        clean_shutdown,
    }
}

fn batch(records: usize, ts: i64) -> Vec<u8> {
    let value = [b'v'; 20];
    let recs: Vec<gregor_protocol::batch::SimpleRecord<'_>> =
        (0..records).map(|_| (None, Some(&value[..]))).collect();
    encode_simple_batch(ts, &recs)
}

fn entry(epoch: i32, start_offset: i64) -> EpochEntry {
    EpochEntry {
        epoch,
        start_offset,
    }
}

/// Appends one produced batch of `records` records as leader of `epoch`; returns (first, last).
fn lead(log: &mut Log, records: usize, epoch: i32) -> (i64, i64) {
    let b = batch(records, 1_000);
    let v = validate_record_set(&b, 1 << 20).expect("valid");
    let info = log.append_as_leader(&v, epoch, 0, false).expect("append");
    (info.first_offset, info.last_offset)
}

/// A batch as a leader of `epoch` would have stored it at `base_offset`.
fn replicated(records: usize, base_offset: i64, epoch: i32) -> Vec<u8> {
    let mut b = batch(records, 2_000);
    assign_offsets(&mut b, base_offset, epoch, None).expect("assign");
    b
}

/// Every batch of the log from the log start, as bytes.
fn log_batches(log: &Log) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut offset = log.log_start_offset();
    while offset < log.log_end_offset() {
        let bytes = log
            .read(offset, usize::MAX, i64::MAX, true)
            .expect("read")
            .slice
            .expect("data below the log end")
            .read_to_vec()
            .expect("pread");
        for b in batches(&bytes) {
            let b = b.expect("whole batch");
            offset = b.next_offset();
            out.push(b.as_bytes().to_vec());
        }
    }
    out
}

/// The cache a rebuild from the log's batches gives (what the loader does without a file):
/// every batch of every segment file, those below the log start included, then cut to the
/// log's range.
fn rebuilt_cache(log: &Log, dir: &Path) -> Vec<EpochEntry> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    files.sort();
    let mut entries = Vec::new();
    for f in files {
        let bytes = std::fs::read(&f).expect("segment");
        for b in batches(&bytes) {
            let b = b.expect("whole batches");
            epoch::assign(&mut entries, b.partition_leader_epoch(), b.base_offset());
        }
    }
    epoch::truncate_from_start(&mut entries, log.log_start_offset());
    epoch::truncate_from_end(&mut entries, log.log_end_offset());
    entries
}

fn cache(log: &Log) -> Vec<EpochEntry> {
    log.leader_epoch_cache().epoch_entries().to_vec()
}

fn checkpoint_text(dir: &Path) -> String {
    std::fs::read_to_string(dir.join(LEADER_EPOCH_CHECKPOINT)).expect("checkpoint file")
}

#[test]
fn leader_appends_stamp_their_epoch_and_start_it_in_the_cache() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = Log::open(dir.path(), config(1 << 20), opts(true, 0, None)).expect("open");
    assert_eq!(log.latest_epoch(), None);
    assert!(!dir.path().join(LEADER_EPOCH_CHECKPOINT).exists());
    lead(&mut log, 3, 1);
    lead(&mut log, 2, 1);
    lead(&mut log, 4, 4);
    let epochs: Vec<(i64, i32)> = log_batches(&log)
        .iter()
        .map(|b| {
            let v = batches(b).next().expect("one").expect("valid");
            v.validate().expect("CRC still valid");
            (v.base_offset(), v.partition_leader_epoch())
        })
        .collect();
    assert_eq!(epochs, vec![(0, 1), (3, 1), (5, 4)]);
    assert_eq!(cache(&log), vec![entry(1, 0), entry(4, 5)]);
    assert_eq!(log.latest_epoch(), Some(4));
    assert_eq!(checkpoint_text(dir.path()), "0\n2\n1 0\n4 5\n");
}

#[test]
fn becoming_leader_starts_the_epoch_at_the_log_end_before_any_batch() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = Log::open(dir.path(), config(1 << 20), opts(true, 0, None)).expect("open");
    lead(&mut log, 5, 1); // 0..5
    assert!(log.assign_epoch_start_offset(3).expect("assign"));
    assert_eq!(cache(&log), vec![entry(1, 0), entry(3, 5)]);
    assert_eq!(
        checkpoint_text(dir.path()),
        "0\n2\n1 0\n3 5\n",
        "persisted at once"
    );
    assert_eq!(
        log.end_offset_for_epoch(1),
        Some((1, 5)),
        "the previous epoch ends where the new one starts"
    );
    assert_eq!(
        log.end_offset_for_epoch(3),
        Some((3, 5)),
        "the new, empty epoch is known"
    );
    assert!(
        !log.assign_epoch_start_offset(3).expect("again"),
        "same epoch: no change"
    );
    assert!(
        !log.assign_epoch_start_offset(2).expect("older"),
        "older epoch: no change"
    );
    lead(&mut log, 2, 3); // 5..7, the epoch already starts at 5
    assert_eq!(cache(&log), vec![entry(1, 0), entry(3, 5)]);
    // A leader that never appended, replaced by a newer leader at the same log end.
    assert!(log.assign_epoch_start_offset(4).expect("assign"));
    assert!(log.assign_epoch_start_offset(5).expect("assign"));
    assert_eq!(cache(&log), vec![entry(1, 0), entry(3, 5), entry(5, 7)]);
}

/// A leader that never appended to its epoch, then a follower told to truncate to its own
/// log end: the empty epoch leaves the cache (else its fetches would name it for ever).
#[test]
fn truncating_to_the_log_end_drops_an_epoch_started_there() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = Log::open(dir.path(), config(1 << 20), opts(true, 0, None)).expect("open");
    lead(&mut log, 5, 1); // 0..5
    assert!(log.assign_epoch_start_offset(3).expect("assign"));
    assert_eq!(cache(&log), vec![entry(1, 0), entry(3, 5)]);
    log.truncate_to(5).expect("truncate to the log end");
    assert_eq!(log.log_end_offset(), 5, "no record goes");
    assert_eq!(cache(&log), vec![entry(1, 0)]);
    assert_eq!(checkpoint_text(dir.path()), "0\n1\n1 0\n", "persisted");
    log.truncate_to(9).expect("above the log end");
    assert_eq!(cache(&log), vec![entry(1, 0)]);
}

#[test]
fn end_offset_for_epoch_answers_as_kafka() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = Log::open(dir.path(), config(1 << 20), opts(true, 0, None)).expect("open");
    assert_eq!(log.end_offset_for_epoch(0), None);
    lead(&mut log, 5, 1); // 0..5
    lead(&mut log, 4, 4); // 5..9
    lead(&mut log, 3, 6); // 9..12
    assert_eq!(
        log.end_offset_for_epoch(6),
        Some((6, 12)),
        "latest: the log end"
    );
    assert_eq!(log.end_offset_for_epoch(4), Some((4, 9)));
    assert_eq!(
        log.end_offset_for_epoch(5),
        Some((4, 9)),
        "unknown: the one below"
    );
    assert_eq!(log.end_offset_for_epoch(1), Some((1, 5)));
    assert_eq!(
        log.end_offset_for_epoch(0),
        Some((0, 0)),
        "older than every epoch: ends where the first starts"
    );
    assert_eq!(log.end_offset_for_epoch(7), None, "newer than every epoch");
    assert_eq!(log.end_offset_for_epoch(-1), None, "undefined");
    lead(&mut log, 1, 6);
    assert_eq!(log.end_offset_for_epoch(6), Some((6, 13)));
}

#[test]
fn truncation_and_log_start_moves_keep_the_cache_consistent() {
    let dir = tempfile::tempdir().expect("tempdir");
    let size = batch(2, 0).len() as u64;
    let cfg = config(size * 2);
    let mut log = Log::open(dir.path(), cfg.clone(), opts(true, 0, None)).expect("open");
    for e in [1, 1, 2, 3, 3, 5] {
        lead(&mut log, 2, e);
    }
    // [1@0, 2@4, 3@6, 5@10], log end 12.
    assert_eq!(
        cache(&log),
        vec![entry(1, 0), entry(2, 4), entry(3, 6), entry(5, 10)]
    );
    // Inside epoch 3's second batch: cut at its start (batch boundary), epoch 5 goes.
    log.truncate_to(9).expect("truncate");
    assert_eq!(log.log_end_offset(), 8);
    assert_eq!(cache(&log), vec![entry(1, 0), entry(2, 4), entry(3, 6)]);
    // Exactly at an epoch's start: that epoch goes too.
    log.truncate_to(6).expect("truncate");
    assert_eq!(cache(&log), vec![entry(1, 0), entry(2, 4)]);
    assert_eq!(cache(&log), rebuilt_cache(&log, dir.path()));
    // A new leader epoch after the truncation.
    lead(&mut log, 2, 7);
    assert_eq!(cache(&log), vec![entry(1, 0), entry(2, 4), entry(7, 6)]);
    // DeleteRecords into epoch 2: entries before collapse to start there.
    log.delete_records_before(5).expect("delete records");
    assert_eq!(cache(&log), vec![entry(2, 5), entry(7, 6)]);
    assert_eq!(cache(&log), rebuilt_cache(&log, dir.path()));
    // The file holds what memory holds.
    let reopened = crate::LeaderEpochFileCache::open(dir.path()).expect("reopen cache");
    assert_eq!(reopened.epoch_entries(), &cache(&log)[..]);
    // Below the log start: the log is emptied and the cache with it.
    log.truncate_to(3).expect("truncate fully");
    assert_eq!(log.log_end_offset(), 3);
    assert_eq!(cache(&log), vec![]);
    assert_eq!(checkpoint_text(dir.path()), "0\n0\n");
    lead(&mut log, 1, 8);
    assert_eq!(cache(&log), vec![entry(8, 3)]);
}

#[test]
fn retention_moves_the_first_epoch_to_the_new_log_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let size = batch(2, 0).len() as u64;
    let mut cfg = config(size * 2);
    cfg.retention_bytes = (size * 2) as i64;
    let mut log = Log::open(dir.path(), cfg, opts(true, 0, None)).expect("open");
    lead(&mut log, 2, 1);
    lead(&mut log, 2, 1);
    lead(&mut log, 2, 2);
    lead(&mut log, 2, 3);
    lead(&mut log, 2, 3);
    assert!(log.apply_retention(0).expect("retention") > 0);
    assert!(log.log_start_offset() > 0);
    assert_eq!(
        cache(&log).first().map(|e| e.start_offset),
        Some(log.log_start_offset())
    );
    assert_eq!(cache(&log), rebuilt_cache(&log, dir.path()));
}

/// The same produced sets appended as leader on one log and, as the leader stored them, as
/// follower on another give byte-identical segment, index and epoch files.
#[test]
fn follower_append_of_the_leaders_bytes_gives_identical_files() {
    let leader_dir = tempfile::tempdir().expect("tempdir");
    let follower_dir = tempfile::tempdir().expect("tempdir");
    let size = batch(3, 0).len() as u64;
    let cfg = config(size * 3 + 10);
    let mut leader = Log::open(leader_dir.path(), cfg.clone(), opts(true, 0, None)).expect("open");
    let mut follower = Log::open(follower_dir.path(), cfg, opts(true, 0, None)).expect("open");
    let plan: [(usize, usize, i32, bool); 7] = [
        (1, 3, 0, false),
        (2, 1, 0, false),
        (1, 5, 2, true),
        (3, 2, 2, false),
        (1, 1, 5, false),
        (2, 4, 5, true),
        (1, 2, 6, false),
    ];
    for (i, &(sets, records, epoch, append_time)) in plan.iter().enumerate() {
        let mut set = Vec::new();
        for _ in 0..sets {
            set.extend_from_slice(&batch(records, 1_000 + i as i64));
        }
        let now = 10_000 + i as i64;
        let v = validate_record_set(&set, 1 << 20).expect("valid");
        let led = leader
            .append_as_leader(&v, epoch, now, append_time)
            .expect("leader append");
        // What a follower's fetch would return: the batches just appended.
        let fetched = leader
            .read(led.first_offset, usize::MAX, i64::MAX, true)
            .expect("read")
            .slice
            .expect("data")
            .read_to_vec()
            .expect("pread");
        let followed = follower
            .append_as_follower(&fetched, now)
            .expect("follower append");
        assert_eq!(followed.first_offset, led.first_offset);
        assert_eq!(followed.last_offset, led.last_offset);
        assert_eq!(followed.max_timestamp, led.max_timestamp);
    }
    assert!(leader.segment_count() > 1, "the plan rolls segments");
    assert_eq!(follower.segment_count(), leader.segment_count());
    assert_eq!(cache(&follower), cache(&leader));
    assert_eq!(follower.log_end_offset(), leader.log_end_offset());
    // Follower appends take part in flushes like leader appends.
    let target = follower.flush_target().expect("unflushed data");
    assert_eq!(target.end_offset, follower.log_end_offset());
    target.sync().expect("sync");
    follower.mark_flushed(target.end_offset);
    assert_eq!(follower.recovery_point(), follower.log_end_offset());
    leader.flush_all().expect("flush");
    follower.flush_all().expect("flush");
    let names = |dir: &Path| {
        let mut v: Vec<String> = std::fs::read_dir(dir)
            .expect("read dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    };
    let files = names(leader_dir.path());
    assert_eq!(files, names(follower_dir.path()));
    assert!(files.iter().any(|f| f == LEADER_EPOCH_CHECKPOINT));
    for f in files {
        let a = std::fs::read(leader_dir.path().join(&f)).expect("leader file");
        let b = std::fs::read(follower_dir.path().join(&f)).expect("follower file");
        assert!(a == b, "{f} differs between leader and follower");
    }
}

#[test]
fn follower_append_takes_each_batchs_epoch_and_accepts_control_batches() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = Log::open(dir.path(), config(1 << 20), opts(true, 0, None)).expect("open");
    let mut set = replicated(2, 0, 3);
    set.extend_from_slice(&replicated(1, 2, 3));
    set.extend_from_slice(&replicated(3, 3, 4));
    // A control batch (a transaction marker) as a leader may hold one; its CRC fixed up.
    let mut marker = replicated(1, 6, 4);
    marker[22] |= 0x20;
    let crc = crc32c::crc32c(&marker[21..]);
    marker[17..21].copy_from_slice(&crc.to_be_bytes());
    set.extend_from_slice(&marker);
    let info = log.append_as_follower(&set, 0).expect("append");
    assert_eq!((info.first_offset, info.last_offset), (0, 6));
    assert_eq!(cache(&log), vec![entry(3, 0), entry(4, 3)]);
    assert_eq!(log_batches(&log).concat(), set);
}

#[test]
fn follower_append_refuses_overlaps_and_corruption() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = Log::open(dir.path(), config(1 << 20), opts(true, 0, None)).expect("open");
    log.append_as_follower(&replicated(5, 0, 1), 0)
        .expect("first");
    let size = log.size_bytes();
    let refused = |log: &mut Log, set: &[u8]| {
        let e = log.append_as_follower(set, 0).expect_err("refused");
        assert_eq!(log.log_end_offset(), 5);
        assert_eq!(log.size_bytes(), size, "nothing written");
        assert_eq!(cache(log), vec![entry(1, 0)]);
        e
    };
    // An overlap with the log, and one inside the set.
    assert!(matches!(
        refused(&mut log, &replicated(2, 4, 2)),
        StorageError::OffsetOutOfOrder {
            expected: 5,
            found: 4
        }
    ));
    let mut overlap = replicated(2, 5, 2);
    overlap.extend_from_slice(&replicated(2, 6, 2));
    assert!(matches!(
        refused(&mut log, &overlap),
        StorageError::OffsetOutOfOrder {
            expected: 7,
            found: 6
        }
    ));
    // A flipped record byte: the CRC catches it, even in the second batch.
    let mut corrupt = replicated(2, 5, 2);
    let mut second = replicated(2, 7, 2);
    let last = second.len() - 1;
    second[last] ^= 0x40;
    corrupt.extend_from_slice(&second);
    assert!(matches!(
        refused(&mut log, &corrupt),
        StorageError::InvalidRecords(BatchError::CrcMismatch { .. })
    ));
    // A cut batch, a wrong magic, an empty set.
    let whole = replicated(2, 5, 2);
    assert!(matches!(
        refused(&mut log, &whole[..whole.len() - 3]),
        StorageError::InvalidRecords(BatchError::Malformed(_))
    ));
    let mut v1 = whole.clone();
    v1[16] = 1;
    assert!(matches!(
        refused(&mut log, &v1),
        StorageError::InvalidRecords(BatchError::UnsupportedMagic(1))
    ));
    assert!(matches!(
        refused(&mut log, &[]),
        StorageError::InvalidRecords(BatchError::Malformed(_))
    ));
    log.append_as_follower(&whole, 0).expect("the right batch");
    assert_eq!(cache(&log), vec![entry(1, 0), entry(2, 5)]);
}

#[test]
fn follower_append_takes_the_gaps_of_a_compacted_leader() {
    // A compacted leader's batches skip the offsets the cleaner removed (Kafka's followers
    // accept gaps, only refusing offsets that go back).
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = Log::open(dir.path(), config(1 << 20), opts(true, 0, None)).expect("open");
    log.append_as_follower(&replicated(5, 0, 1), 0)
        .expect("first");
    let info = log
        .append_as_follower(&replicated(2, 6, 2), 0)
        .expect("a gap before the set");
    assert_eq!((info.first_offset, info.last_offset), (6, 7));
    let mut gap = replicated(2, 8, 2);
    gap.extend_from_slice(&replicated(2, 12, 2));
    log.append_as_follower(&gap, 0)
        .expect("a gap inside the set");
    assert_eq!(log.log_end_offset(), 14);
    let read = log.read(5, 1 << 20, 14, true).expect("read");
    let bytes = read.slice.expect("data").read_to_vec().expect("read");
    assert_eq!(
        gregor_protocol::batch::BatchView::parse(&bytes)
            .expect("batch")
            .base_offset(),
        6,
        "a read from a removed offset returns the next batch"
    );
}

#[test]
fn a_crash_keeps_the_cache_and_a_torn_epoch_start_is_cut_from_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(1 << 20);
    let mut log = Log::open(dir.path(), cfg.clone(), opts(true, 0, None)).expect("open");
    lead(&mut log, 3, 1);
    lead(&mut log, 3, 2);
    let target = log.flush_target().expect("data");
    target.sync().expect("sync");
    log.mark_flushed(target.end_offset);
    let rp = log.recovery_point();
    lead(&mut log, 2, 2);
    lead(&mut log, 2, 3);
    let before = cache(&log);
    assert_eq!(before, vec![entry(1, 0), entry(2, 3), entry(3, 8)]);
    drop(log); // a crash: no flush, no close

    let log = Log::open(dir.path(), cfg.clone(), opts(false, rp, None)).expect("reopen");
    assert_eq!(cache(&log), before);
    drop(log);

    // The last batch, the one that started epoch 3, torn by the crash: recovery cuts it, and
    // the cache (whose file was written before the batch) loses the epoch with it.
    let seg = dir.path().join(format!("{:020}.log", 0));
    let len = std::fs::metadata(&seg).expect("stat").len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&seg)
        .expect("open segment")
        .set_len(len - 4)
        .expect("tear");
    let log = Log::open(dir.path(), cfg.clone(), opts(false, rp, None)).expect("reopen");
    assert_eq!(log.log_end_offset(), 8);
    assert_eq!(cache(&log), vec![entry(1, 0), entry(2, 3)]);
    assert_eq!(checkpoint_text(dir.path()), "0\n2\n1 0\n2 3\n");
    drop(log);

    // The file lost too: the epochs come back from the batches.
    std::fs::remove_file(dir.path().join(LEADER_EPOCH_CHECKPOINT)).expect("rm");
    let log = Log::open(dir.path(), cfg, opts(false, rp, None)).expect("reopen");
    assert_eq!(cache(&log), vec![entry(1, 0), entry(2, 3)]);
}

/// A data directory written before logs kept epochs: no checkpoint file, every batch stamped
/// with epoch 0. It opens, and the cache is rebuilt (and written) from the batches.
#[test]
fn a_directory_without_a_checkpoint_file_opens_with_a_rebuilt_cache() {
    let dir = tempfile::tempdir().expect("tempdir");
    let size = batch(2, 0).len() as u64;
    let cfg = config(size * 2);
    let mut log = Log::open(dir.path(), cfg.clone(), opts(true, 0, None)).expect("open");
    for _ in 0..5 {
        lead(&mut log, 2, 0);
    }
    log.delete_records_before(3).expect("delete records");
    log.flush_all().expect("flush");
    let expected_batches = log_batches(&log);
    drop(log);
    std::fs::remove_file(dir.path().join(LEADER_EPOCH_CHECKPOINT)).expect("rm");

    for clean in [true, false] {
        let log = Log::open(dir.path(), cfg.clone(), opts(clean, 0, Some(3))).expect("open");
        assert_eq!(log.log_start_offset(), 3);
        assert_eq!(log.log_end_offset(), 10);
        assert_eq!(log_batches(&log), expected_batches);
        assert_eq!(cache(&log), vec![entry(0, 3)]);
        assert_eq!(log.end_offset_for_epoch(0), Some((0, 10)));
        assert_eq!(checkpoint_text(dir.path()), "0\n1\n0 3\n");
        drop(log);
        std::fs::remove_file(dir.path().join(LEADER_EPOCH_CHECKPOINT)).expect("rm");
    }
    // A corrupt file is rebuilt the same way.
    std::fs::write(dir.path().join(LEADER_EPOCH_CHECKPOINT), "0\n7\n1 x\n").expect("write");
    let log = Log::open(dir.path(), cfg, opts(true, 0, Some(3))).expect("open");
    assert_eq!(cache(&log), vec![entry(0, 3)]);
}

fn tp(topic: &str, partition: i32) -> TopicPartition {
    TopicPartition {
        topic: topic.to_string(),
        partition,
    }
}

#[test]
fn high_watermark_checkpoint_round_trips_in_kafkas_format() {
    let dir = tempfile::tempdir().expect("tempdir");
    let manager = LogManager::open(dir.path()).expect("open");
    assert!(manager.high_watermarks().is_empty());
    let hws: HashMap<TopicPartition, i64> = [
        (tp("orders", 1), 7),
        (tp("orders", 0), 1234),
        (tp("my-topic", 3), 0),
    ]
    .into();
    manager
        .checkpoint_high_watermarks(&hws)
        .expect("checkpoint");
    assert_eq!(manager.high_watermarks(), hws);
    let text =
        std::fs::read_to_string(dir.path().join("replication-offset-checkpoint")).expect("file");
    assert_eq!(text, "0\n3\nmy-topic 3 0\norders 0 1234\norders 1 7\n");
    manager.shutdown().expect("shutdown");
    drop(manager);

    let manager = LogManager::open(dir.path()).expect("reopen");
    assert_eq!(manager.high_watermarks(), hws);
    // Exactly the partitions given: one that is gone from the map is gone from the file.
    let fewer: HashMap<TopicPartition, i64> = [(tp("orders", 0), 1300)].into();
    manager
        .checkpoint_high_watermarks(&fewer)
        .expect("checkpoint");
    drop(manager);
    let manager = LogManager::open(dir.path()).expect("reopen");
    assert_eq!(manager.high_watermarks(), fewer);
    drop(manager);

    // A corrupt file costs the high watermarks (the leader has them), not the start.
    std::fs::write(
        dir.path().join("replication-offset-checkpoint"),
        "0\n2\nx 0 1\n",
    )
    .expect("write");
    let manager = LogManager::open(dir.path()).expect("reopen");
    assert!(manager.high_watermarks().is_empty());
}

/// Through the manager, as the broker opens logs: a process that dies without shutting down
/// (no flush, no clean marker) comes back with the same epochs, and so does a clean restart.
#[test]
fn the_manager_reopens_logs_with_their_epochs_after_a_crash_and_a_clean_stop() {
    let dir = tempfile::tempdir().expect("tempdir");
    let orders = tp("orders", 0);
    let manager = LogManager::open(dir.path()).expect("open");
    {
        let log = manager
            .get_or_create(&orders, config(1 << 20))
            .expect("log");
        let mut log = log.lock().expect("lock");
        lead(&mut log, 2, 1);
        lead(&mut log, 2, 3);
        log.append_as_follower(&replicated(1, 4, 4), 0)
            .expect("follower append");
    }
    drop(manager); // a crash
    let manager = LogManager::open(dir.path()).expect("reopen");
    assert!(!manager.had_clean_shutdown());
    let log = manager
        .get_or_create(&orders, config(1 << 20))
        .expect("log");
    let expected = vec![entry(1, 0), entry(3, 2), entry(4, 4)];
    assert_eq!(cache(&log.lock().expect("lock")), expected);
    manager.shutdown().expect("shutdown");
    drop((log, manager));
    let manager = LogManager::open(dir.path()).expect("reopen");
    assert!(manager.had_clean_shutdown());
    let log = manager
        .get_or_create(&orders, config(1 << 20))
        .expect("log");
    let log = log.lock().expect("lock");
    assert_eq!(cache(&log), expected);
    assert_eq!(log.end_offset_for_epoch(3), Some((3, 4)));
}

/// One step of the property test below.
#[derive(Debug, Clone)]
enum Op {
    /// A produced batch of `records` records, appended as leader; `bump` raises the epoch.
    Lead { records: usize, bump: i32 },
    /// A batch a leader of the (maybe raised) epoch stored, appended as follower.
    Follow { records: usize, bump: i32 },
    /// `Log::truncate_to` somewhere in `[0, log end]`.
    Truncate(proptest::sample::Index),
    /// `delete_records_before` somewhere in `[log start, log end]`.
    DeleteRecords(proptest::sample::Index),
    /// Close (clean: flushed, or a crash) and load again.
    Reopen { clean: bool },
}

fn op_strategy() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (1usize..4, 0i32..3).prop_map(|(records, bump)| Op::Lead { records, bump }),
        2 => (1usize..4, 0i32..3).prop_map(|(records, bump)| Op::Follow { records, bump }),
        1 => any::<proptest::sample::Index>().prop_map(Op::Truncate),
        1 => any::<proptest::sample::Index>().prop_map(Op::DeleteRecords),
        1 => any::<bool>().prop_map(|clean| Op::Reopen { clean }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Whatever happens to a log (appends of changing epochs as leader and follower,
    /// truncations, log-start moves, clean and unclean reloads), its epoch cache, in memory
    /// and in its file, equals what a rebuild from the batches it holds gives.
    #[test]
    fn the_epoch_cache_always_equals_a_rebuild_from_the_batches(
        ops in proptest::collection::vec(op_strategy(), 1..40),
        segment_batches in 1u64..4,
    ) {
        let dir = tempfile::tempdir().expect("tempdir");
        let size = batch(2, 0).len() as u64;
        let cfg = config(size * segment_batches);
        let mut log = Log::open(dir.path(), cfg.clone(), opts(true, 0, None)).expect("open");
        let mut epoch = 0;
        for op in ops {
            match op {
                Op::Lead { records, bump } => {
                    epoch += bump;
                    lead(&mut log, records, epoch);
                }
                Op::Follow { records, bump } => {
                    epoch += bump;
                    let b = replicated(records, log.log_end_offset(), epoch);
                    log.append_as_follower(&b, 0).expect("follower append");
                }
                Op::Truncate(at) => {
                    let to = at.index(log.log_end_offset() as usize + 1) as i64;
                    log.truncate_to(to).expect("truncate");
                }
                Op::DeleteRecords(at) => {
                    let span = (log.log_end_offset() - log.log_start_offset()) as usize;
                    let to = log.log_start_offset() + at.index(span + 1) as i64;
                    log.delete_records_before(to).expect("delete records");
                }
                Op::Reopen { clean } => {
                    if clean {
                        log.flush_all().expect("flush");
                    }
                    let (rp, start) = (log.recovery_point(), log.log_start_offset());
                    drop(log);
                    log = Log::open(dir.path(), cfg.clone(), opts(clean, rp, Some(start)))
                        .expect("reopen");
                }
            }
            let expected = rebuilt_cache(&log, dir.path());
            prop_assert_eq!(&cache(&log), &expected);
            let on_disk = crate::LeaderEpochFileCache::open(dir.path()).expect("read file");
            prop_assert_eq!(on_disk.epoch_entries(), &expected[..]);
        }
    }
}
