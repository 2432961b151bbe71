//! Producer state through `Log`: leader checks, duplicates answered with their original
//! offsets, follower updates, snapshots at roll and close, recovery after a clean stop and
//! after a kill -9 (torn tail), retention and truncation taking snapshots with them.

use std::path::Path;

use gregor_protocol::batch::{encode_simple_batch, validate_record_set};

use crate::log::LoadOptions;
use crate::producer_state::{list_snapshots, ProducerStateError};
use crate::{Log, LogAppendInfo, LogConfig, StorageError};

fn config(segment_bytes: u64) -> LogConfig {
    LogConfig {
        segment_bytes,
        index_interval_bytes: 0,
        retention_ms: -1,
        ..LogConfig::default()
    }
}

fn opts(clean_shutdown: bool, recovery_point: i64) -> LoadOptions {
    LoadOptions {
        recovery_point,
        log_start_offset: None,
        clean_shutdown,
    }
}

/// A batch of `records` records from producer `pid` at `epoch`, sequences from `seq`.
fn idempotent_batch(pid: i64, epoch: i16, seq: i32, records: usize) -> Vec<u8> {
    let value = [b'v'; 10];
    let recs: Vec<gregor_protocol::batch::SimpleRecord<'_>> =
        (0..records).map(|_| (None, Some(&value[..]))).collect();
    let mut b = encode_simple_batch(1_000, &recs);
    b[43..51].copy_from_slice(&pid.to_be_bytes());
    b[51..53].copy_from_slice(&epoch.to_be_bytes());
    b[53..57].copy_from_slice(&seq.to_be_bytes());
    let crc = crc32c::crc32c(&b[21..]);
    b[17..21].copy_from_slice(&crc.to_be_bytes());
    b
}

fn produce(
    log: &mut Log,
    pid: i64,
    epoch: i16,
    seq: i32,
    records: usize,
) -> Result<LogAppendInfo, StorageError> {
    let b = idempotent_batch(pid, epoch, seq, records);
    let set = validate_record_set(&b, 1 << 20).expect("valid batch");
    log.append_as_leader(&set, 1, 0, false)
}

fn offsets(info: &LogAppendInfo) -> (i64, i64, bool) {
    (info.first_offset, info.last_offset, info.duplicate)
}

fn snapshot_offsets(dir: &Path) -> Vec<i64> {
    list_snapshots(dir).expect("list").keys().copied().collect()
}

#[test]
fn a_retried_batch_gets_its_original_offsets_and_is_not_appended() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = Log::open(dir.path(), config(1 << 20), opts(true, 0)).expect("open");
    assert_eq!(
        offsets(&produce(&mut log, 7, 0, 0, 3).expect("a")),
        (0, 2, false)
    );
    assert_eq!(
        offsets(&produce(&mut log, 7, 0, 3, 2).expect("b")),
        (3, 4, false)
    );
    // Another producer in between.
    assert_eq!(
        offsets(&produce(&mut log, 8, 0, 0, 1).expect("c")),
        (5, 5, false)
    );
    assert_eq!(
        offsets(&produce(&mut log, 7, 0, 0, 3).expect("dup a")),
        (0, 2, true)
    );
    assert_eq!(
        offsets(&produce(&mut log, 7, 0, 3, 2).expect("dup b")),
        (3, 4, true)
    );
    assert_eq!(log.log_end_offset(), 6);
}

#[test]
fn gaps_and_fenced_epochs_are_refused_without_appending() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = Log::open(dir.path(), config(1 << 20), opts(true, 0)).expect("open");
    produce(&mut log, 7, 2, 0, 1).expect("first");
    let gap = produce(&mut log, 7, 2, 5, 1).expect_err("gap");
    assert!(matches!(
        gap,
        StorageError::Producer(ProducerStateError::OutOfOrderSequence { .. })
    ));
    let zombie = produce(&mut log, 7, 1, 1, 1).expect_err("old epoch");
    assert!(matches!(
        zombie,
        StorageError::Producer(ProducerStateError::InvalidProducerEpoch { .. })
    ));
    assert_eq!(log.log_end_offset(), 1);
    // A bumped epoch restarts at 0.
    assert_eq!(
        offsets(&produce(&mut log, 7, 3, 0, 1).expect("bump")),
        (1, 1, false)
    );
}

#[test]
fn a_follower_keeps_the_same_state_and_recognises_retries_after_taking_over() {
    let dir = tempfile::tempdir().expect("tempdir");
    let leader_dir = tempfile::tempdir().expect("tempdir");
    let mut leader = Log::open(leader_dir.path(), config(1 << 20), opts(true, 0)).expect("open");
    produce(&mut leader, 7, 0, 0, 2).expect("a");
    produce(&mut leader, 7, 0, 2, 2).expect("b");
    let mut follower = Log::open(dir.path(), config(1 << 20), opts(true, 0)).expect("open");
    let data = leader
        .read(0, usize::MAX, i64::MAX, true)
        .expect("read")
        .slice
        .expect("data")
        .read_to_vec()
        .expect("bytes");
    follower.append_as_follower(&data, 0).expect("replicate");
    assert_eq!(follower.producer_state(), leader.producer_state());
    // The follower becomes leader: the retry is a duplicate there too.
    assert_eq!(
        offsets(&produce(&mut follower, 7, 0, 2, 2).expect("dup")),
        (2, 3, true)
    );
}

#[test]
fn snapshots_are_taken_at_roll_and_close_and_restore_the_state() {
    let dir = tempfile::tempdir().expect("tempdir");
    let size = idempotent_batch(7, 0, 0, 2).len() as u64;
    let mut log = Log::open(dir.path(), config(size * 2), opts(true, 0)).expect("open");
    for i in 0..5 {
        produce(&mut log, 7, 0, i * 2, 2).expect("append");
    }
    // Rolls at 4 and 8.
    assert_eq!(snapshot_offsets(dir.path()), vec![4, 8]);
    log.flush_all().expect("close");
    assert_eq!(snapshot_offsets(dir.path()), vec![4, 8, 10]);
    let state = log.producer_state().clone();
    drop(log);
    let mut log = Log::open(dir.path(), config(size * 2), opts(true, 0)).expect("reopen");
    assert_eq!(log.producer_state(), &state);
    assert_eq!(
        offsets(&produce(&mut log, 7, 0, 6, 2).expect("dup")),
        (6, 7, true)
    );
    assert_eq!(
        offsets(&produce(&mut log, 7, 0, 10, 1).expect("next")),
        (10, 10, false)
    );
}

#[test]
fn without_snapshots_the_state_is_rebuilt_from_the_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = Log::open(dir.path(), config(1 << 20), opts(true, 0)).expect("open");
    for i in 0..4 {
        produce(&mut log, 7, 0, i, 1).expect("append");
    }
    let state = log.producer_state().clone();
    log.flush_all().expect("close");
    drop(log);
    for (_, path) in list_snapshots(dir.path()).expect("list") {
        std::fs::remove_file(path).expect("remove");
    }
    let log = Log::open(dir.path(), config(1 << 20), opts(true, 0)).expect("reopen");
    // The rebuilt entries carry the batches' timestamps instead of the append times.
    let rebuilt = log.producer_state().entry(7).expect("known");
    let original = state.entry(7).expect("known");
    assert_eq!(rebuilt.epoch, original.epoch);
    let ranges = |e: &crate::producer_state::ProducerStateEntry| -> Vec<_> {
        e.batches
            .iter()
            .map(|b| (b.first_seq, b.last_seq, b.first_offset, b.last_offset))
            .collect()
    };
    assert_eq!(ranges(rebuilt), ranges(original));
}

/// kill -9: a snapshot at a roll, more batches after it, no clean close, and the tail of the
/// log torn. Reopened, the batches that survived are still duplicates when retried; the torn
/// one is taken again.
#[test]
fn after_a_kill_a_retry_of_a_surviving_batch_is_still_a_duplicate() {
    let dir = tempfile::tempdir().expect("tempdir");
    let size = idempotent_batch(7, 0, 0, 2).len() as u64;
    let cfg = config(size * 3);
    let mut log = Log::open(dir.path(), cfg.clone(), opts(true, 0)).expect("open");
    for i in 0..5 {
        produce(&mut log, 7, 0, i * 2, 2).expect("append");
    }
    // Rolled at 6: the snapshot there; batches 6..7 and 8..9 follow in the active segment.
    assert_eq!(snapshot_offsets(dir.path()), vec![6]);
    // The process dies: no clean close. The last checkpoint put the recovery point at the roll.
    drop(log);
    // The last batch loses its last bytes.
    let active = dir.path().join(format!("{:020}.log", 6));
    let len = std::fs::metadata(&active).expect("stat").len();
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&active)
        .expect("open");
    f.set_len(len - 5).expect("cut");
    drop(f);

    let mut log = Log::open(dir.path(), cfg, opts(false, 6)).expect("recover");
    assert_eq!(log.log_end_offset(), 8, "the torn batch is cut");
    // Batch 6..7 survived (rebuilt from the log after the snapshot): a duplicate.
    assert_eq!(
        offsets(&produce(&mut log, 7, 0, 6, 2).expect("dup")),
        (6, 7, true)
    );
    // A batch before the snapshot: a duplicate too.
    assert_eq!(
        offsets(&produce(&mut log, 7, 0, 4, 2).expect("dup")),
        (4, 5, true)
    );
    // The torn batch was never acknowledged as stored: its retry is appended.
    assert_eq!(
        offsets(&produce(&mut log, 7, 0, 8, 2).expect("retry")),
        (8, 9, false)
    );
}

#[test]
fn snapshots_above_the_recovery_point_are_not_trusted() {
    let dir = tempfile::tempdir().expect("tempdir");
    let size = idempotent_batch(7, 0, 0, 2).len() as u64;
    let cfg = config(size * 2);
    let mut log = Log::open(dir.path(), cfg.clone(), opts(true, 0)).expect("open");
    for i in 0..3 {
        produce(&mut log, 7, 0, i * 2, 2).expect("append");
    }
    assert_eq!(snapshot_offsets(dir.path()), vec![4]);
    drop(log);
    // Nothing was flushed: the recovery point is 0, so the snapshot at 4 may describe data
    // that never reached the disk. The state comes from the log alone.
    let log = Log::open(dir.path(), cfg, opts(false, 0)).expect("recover");
    assert_eq!(snapshot_offsets(dir.path()), Vec::<i64>::new());
    assert_eq!(
        log.producer_state().entry(7).and_then(|e| e.last_seq()),
        Some(5)
    );
}

#[test]
fn retention_and_truncation_take_their_snapshots_with_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let size = idempotent_batch(7, 0, 0, 2).len() as u64;
    let mut log = Log::open(dir.path(), config(size * 2), opts(true, 0)).expect("open");
    for i in 0..6 {
        produce(&mut log, 7, 0, i * 2, 2).expect("append");
    }
    assert_eq!(snapshot_offsets(dir.path()), vec![4, 8]);
    assert_eq!(log.delete_records_before(4).expect("delete"), 1);
    assert_eq!(snapshot_offsets(dir.path()), vec![4, 8]);
    assert_eq!(log.delete_records_before(8).expect("delete"), 1);
    assert_eq!(snapshot_offsets(dir.path()), vec![8]);
    // A follower truncating to 9 (inside batch 8..9): the state goes back to offset 8.
    log.truncate_to(9).expect("truncate");
    assert_eq!(log.log_end_offset(), 8);
    assert_eq!(
        log.producer_state().entry(7).and_then(|e| e.last_seq()),
        Some(7)
    );
    assert_eq!(
        offsets(&produce(&mut log, 7, 0, 8, 2).expect("again")),
        (8, 9, false)
    );
    log.truncate_fully_and_start_at(20).expect("truncate fully");
    assert!(snapshot_offsets(dir.path()).is_empty());
    assert_eq!(log.producer_state().producer_count(), 0);
}

#[test]
fn idle_producers_expire_from_the_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = Log::open(dir.path(), config(1 << 20), opts(true, 0)).expect("open");
    let b = idempotent_batch(7, 0, 0, 1);
    let set = validate_record_set(&b, 1 << 20).expect("valid");
    log.append_as_leader(&set, 1, 1_000, false).expect("append");
    assert_eq!(log.remove_expired_producers(2_000, 5_000), 0);
    assert_eq!(log.remove_expired_producers(6_000, 5_000), 1);
    assert_eq!(log.producer_state().producer_count(), 0);
}

#[test]
fn snapshots_do_not_pile_up_across_restarts() {
    let dir = tempfile::tempdir().expect("tempdir");
    for i in 0..4 {
        let mut log = Log::open(dir.path(), config(1 << 20), opts(true, 0)).expect("open");
        produce(&mut log, 7, 0, i, 1).expect("append");
        log.flush_all().expect("close");
    }
    // One segment (base 0): only the newest snapshot is worth keeping.
    assert_eq!(snapshot_offsets(dir.path()), vec![4]);
    std::fs::write(
        dir.path().join("00000000000000000002.snapshot.tmp"),
        b"torn",
    )
    .expect("tmp");
    let log = Log::open(dir.path(), config(1 << 20), opts(true, 0)).expect("open");
    assert_eq!(
        log.producer_state().entry(7).and_then(|e| e.last_seq()),
        Some(3)
    );
    assert!(!dir
        .path()
        .join("00000000000000000002.snapshot.tmp")
        .exists());
}

/// A coordinator's batches (Kafka's `AppendOrigin.COORDINATOR`: the group coordinator writing
/// offsets sent in a transaction) all start at sequence 0: each is appended, none is taken for
/// a duplicate or a gap; only an older epoch is refused.
#[test]
fn coordinator_batches_get_only_the_epoch_check() {
    use crate::producer_state::AppendOrigin;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = Log::open(dir.path(), config(1 << 20), opts(true, 0)).expect("open");
    let mut append = |epoch: i16| {
        let b = idempotent_batch(9, epoch, 0, 2);
        let set = validate_record_set(&b, 1 << 20).expect("valid batch");
        log.append_as_leader_from(AppendOrigin::Coordinator, &set, 1, 0, false)
    };
    assert_eq!(offsets(&append(1).expect("first")), (0, 1, false));
    assert_eq!(offsets(&append(1).expect("same range")), (2, 3, false));
    assert_eq!(offsets(&append(2).expect("bumped")), (4, 5, false));
    let zombie = append(1).expect_err("old epoch");
    assert!(matches!(
        zombie,
        StorageError::Producer(ProducerStateError::InvalidProducerEpoch { .. })
    ));
    assert_eq!(log.log_end_offset(), 6);
    // Once its transaction is open, a plain batch of the producer is refused.
    let mut txn = idempotent_batch(9, 2, 0, 1);
    gregor_protocol::batch::set_producer(&mut txn, 9, 2, 0, true);
    let set = validate_record_set(&txn, 1 << 20).expect("valid batch");
    log.append_as_leader_from(AppendOrigin::Coordinator, &set, 1, 0, false)
        .expect("transactional");
    let plain = idempotent_batch(9, 2, 0, 1);
    let set = validate_record_set(&plain, 1 << 20).expect("valid batch");
    let refused = log
        .append_as_leader_from(AppendOrigin::Coordinator, &set, 1, 0, false)
        .expect_err("plain batch inside the transaction");
    assert!(matches!(
        refused,
        StorageError::Producer(ProducerStateError::InvalidTxnState { .. })
    ));
}
