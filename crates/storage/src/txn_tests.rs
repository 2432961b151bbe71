//! Transactions through `Log`: transactional batches open a producer's transaction, markers
//! end it, the last stable offset and the `.txnindex` follow; snapshots, recovery, truncation,
//! retention and followers keep them; a property test against a model.

use std::path::Path;

use gregor_protocol::batch::{encode_simple_batch, validate_record_set, ATTR_TRANSACTIONAL};
use gregor_protocol::control::{ControlRecordType, EndTransactionMarker};

use crate::log::LoadOptions;
use crate::producer_state::ProducerStateError;
use crate::txn_index::AbortedTxn;
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

/// A batch of `records` records from `pid` at `epoch`, sequences from `seq`.
fn producer_batch(pid: i64, epoch: i16, seq: i32, records: usize, transactional: bool) -> Vec<u8> {
    let value = [b'v'; 10];
    let recs: Vec<gregor_protocol::batch::SimpleRecord<'_>> =
        (0..records).map(|_| (None, Some(&value[..]))).collect();
    let mut b = encode_simple_batch(1_000, &recs);
    if transactional {
        b[21..23].copy_from_slice(&ATTR_TRANSACTIONAL.to_be_bytes());
    }
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
    seq: i32,
    records: usize,
    transactional: bool,
) -> Result<LogAppendInfo, StorageError> {
    let b = producer_batch(pid, 0, seq, records, transactional);
    let set = validate_record_set(&b, 1 << 20).expect("valid batch");
    log.append_as_leader(&set, 1, 0, false)
}

fn marker(
    log: &mut Log,
    pid: i64,
    epoch: i16,
    commit: bool,
    coordinator_epoch: i32,
) -> Result<LogAppendInfo, StorageError> {
    let m = EndTransactionMarker {
        control_type: ControlRecordType::from_committed(commit),
        coordinator_epoch,
    };
    log.append_end_txn_marker_as_leader(pid, epoch, m, 0, 1, 0)
}

fn aborted(pid: i64, first: i64, last: i64, lso: i64) -> AbortedTxn {
    AbortedTxn {
        producer_id: pid,
        first_offset: first,
        last_offset: last,
        last_stable_offset: lso,
    }
}

fn read_all(log: &Log) -> Vec<u8> {
    log.read(log.log_start_offset(), usize::MAX, i64::MAX, true)
        .expect("read")
        .slice
        .map(|s| s.read_to_vec().expect("bytes"))
        .unwrap_or_default()
}

fn txn_index_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("dir")
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|n| n.ends_with(".txnindex"))
        .collect();
    names.sort();
    names
}

#[test]
fn a_transaction_holds_the_lso_until_its_marker_and_an_abort_is_indexed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = Log::open(dir.path(), config(1 << 20), opts(true, 0)).expect("open");
    produce(&mut log, 1, 0, 2, false).expect("plain idempotent"); // 0..1
    assert_eq!(log.last_stable_offset(2), 2);
    produce(&mut log, 7, 0, 3, true).expect("txn 7"); // 2..4
    produce(&mut log, 8, 0, 1, true).expect("txn 8"); // 5
    produce(&mut log, 7, 3, 1, true).expect("txn 7 again"); // 6
    assert_eq!(log.last_stable_offset(7), 2, "txn 7 is open from 2");
    assert_eq!(
        log.last_stable_offset(1),
        1,
        "never above the high watermark"
    );
    let info = marker(&mut log, 7, 0, true, 0).expect("commit 7"); // 7
    assert_eq!((info.first_offset, info.last_offset), (7, 7));
    assert_eq!(log.last_stable_offset(8), 5, "txn 8 is still open from 5");
    marker(&mut log, 8, 0, false, 0).expect("abort 8"); // 8
    assert_eq!(log.last_stable_offset(9), 9);
    assert_eq!(log.log_end_offset(), 9);
    // The abort of 8 is indexed; txn 7 committed and is not.
    let all = log.collect_aborted_transactions(0, 9);
    assert_eq!(all, vec![aborted(8, 5, 8, 9)]);
    assert_eq!(
        log.collect_aborted_transactions(6, 9),
        all,
        "still overlaps"
    );
    assert!(
        log.collect_aborted_transactions(0, 5).is_empty(),
        "starts at 5"
    );
    assert!(
        log.collect_aborted_transactions(9, 10).is_empty(),
        "ended at 8"
    );
    assert_eq!(
        txn_index_files(dir.path()),
        vec![format!("{:020}.txnindex", 0)]
    );
    // The marker batches are control batches with the markers' producer.
    let data = read_all(&log);
    let control: Vec<_> = gregor_protocol::batch::batches(&data)
        .map(|b| b.expect("batch"))
        .filter(|b| b.is_control())
        .map(|b| (b.base_offset(), b.producer_id()))
        .collect();
    assert_eq!(control, vec![(7, 7), (8, 8)]);
}

#[test]
fn the_lso_waits_for_the_high_watermark_to_pass_the_marker() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = Log::open(dir.path(), config(1 << 20), opts(true, 0)).expect("open");
    produce(&mut log, 7, 0, 3, true).expect("txn"); // 0..2
    marker(&mut log, 7, 0, true, 0).expect("commit"); // 3
    assert_eq!(
        log.last_stable_offset(3),
        0,
        "the marker is not replicated yet"
    );
    assert_eq!(log.last_stable_offset(4), 4);
    assert_eq!(
        log.last_stable_offset(4),
        4,
        "forgotten once below the high watermark"
    );
}

#[test]
fn kafkas_transactional_checks() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = Log::open(dir.path(), config(1 << 20), opts(true, 0)).expect("open");
    produce(&mut log, 7, 0, 1, true).expect("txn");
    let err = produce(&mut log, 7, 1, 1, false).expect_err("plain batch in a transaction");
    assert!(matches!(
        err,
        StorageError::Producer(ProducerStateError::InvalidTxnState { producer_id: 7 })
    ));
    marker(&mut log, 7, 0, true, 5).expect("commit at coordinator epoch 5");
    let err = marker(&mut log, 7, 0, false, 4).expect_err("older coordinator");
    assert!(matches!(
        err,
        StorageError::Producer(ProducerStateError::TransactionCoordinatorFenced {
            coordinator_epoch: 4,
            current: 5,
            ..
        })
    ));
    // A marker with a bumped epoch (the coordinator fenced the producer) is taken; an older
    // epoch afterwards is refused.
    marker(&mut log, 7, 1, false, 5).expect("abort at epoch 1");
    let err = marker(&mut log, 7, 0, false, 5).expect_err("older producer epoch");
    assert!(matches!(
        err,
        StorageError::Producer(ProducerStateError::InvalidProducerEpoch {
            epoch: 0,
            current: 1,
            ..
        })
    ));
    assert_eq!(log.log_end_offset(), 3, "refused markers write nothing");
    // A marker for a producer with no transaction here changes no offset and indexes nothing.
    marker(&mut log, 99, 0, false, 5).expect("empty abort");
    assert_eq!(log.last_stable_offset(4), 4);
    assert!(log.collect_aborted_transactions(0, 4).is_empty());
    // Clients may not send control batches, and a transactional batch needs a producer id.
    let mut no_pid = producer_batch(-1, -1, -1, 1, true);
    let crc = crc32c::crc32c(&no_pid[21..]);
    no_pid[17..21].copy_from_slice(&crc.to_be_bytes());
    assert!(validate_record_set(&no_pid, 1 << 20).is_err());
}

#[test]
fn a_follower_rebuilds_the_same_transactions_and_txnindex() {
    let leader_dir = tempfile::tempdir().expect("tempdir");
    let dir = tempfile::tempdir().expect("tempdir");
    let mut leader = Log::open(leader_dir.path(), config(1 << 20), opts(true, 0)).expect("open");
    produce(&mut leader, 7, 0, 2, true).expect("a"); // 0..1
    produce(&mut leader, 8, 0, 2, true).expect("b"); // 2..3
    marker(&mut leader, 7, 0, false, 3).expect("abort 7"); // 4
    let mut follower = Log::open(dir.path(), config(1 << 20), opts(true, 0)).expect("open");
    follower
        .append_as_follower(&read_all(&leader), 0)
        .expect("replicate");
    assert_eq!(follower.last_stable_offset(5), 2);
    assert_eq!(
        follower.collect_aborted_transactions(0, 5),
        vec![aborted(7, 0, 4, 2)]
    );
    assert_eq!(
        follower
            .producer_state()
            .entry(7)
            .map(|e| e.coordinator_epoch),
        Some(3)
    );
    // Taking over as leader, the follower fences the old coordinator too.
    assert!(marker(&mut follower, 7, 0, true, 2).is_err());
}

#[test]
fn an_open_transaction_survives_a_clean_restart_and_a_kill() {
    let dir = tempfile::tempdir().expect("tempdir");
    let size = producer_batch(7, 0, 0, 2, true).len() as u64;
    let cfg = config(size * 3);
    let mut log = Log::open(dir.path(), cfg.clone(), opts(true, 0)).expect("open");
    produce(&mut log, 7, 0, 2, true).expect("txn 7"); // 0..1
    produce(&mut log, 8, 0, 2, true).expect("txn 8"); // 2..3
    marker(&mut log, 8, 0, false, 0).expect("abort 8"); // 4
    produce(&mut log, 9, 0, 2, true).expect("txn 9"); // 5..6, rolled at 5
    marker(&mut log, 9, 0, false, 0).expect("abort 9"); // 7
    produce(&mut log, 10, 0, 2, true).expect("txn 10"); // 8..9
    assert_eq!(log.last_stable_offset(10), 0);
    let aborted_before = log.collect_aborted_transactions(0, 10);
    assert_eq!(
        aborted_before,
        vec![aborted(8, 2, 4, 0), aborted(9, 5, 7, 0)]
    );
    log.flush_all().expect("close");
    drop(log);

    // Clean: the snapshot at the log end carries the open transactions.
    let mut log = Log::open(dir.path(), cfg.clone(), opts(true, 0)).expect("reopen");
    assert_eq!(log.last_stable_offset(10), 0);
    assert_eq!(log.collect_aborted_transactions(0, 10), aborted_before);
    // Kill -9 after a flush: the recovery point at the roll (5), so the state is the snapshot
    // at 5 plus the log after it, and the second segment's .txnindex is rebuilt.
    drop(log);
    for (offset, path) in crate::producer_state::list_snapshots(dir.path()).expect("list") {
        if offset > 5 {
            std::fs::remove_file(path).expect("remove");
        }
    }
    let seg2_index = dir.path().join(format!("{:020}.txnindex", 5));
    std::fs::remove_file(&seg2_index).expect("lose the second .txnindex");
    let mut log = Log::open(dir.path(), cfg, opts(false, 5)).expect("recover");
    assert_eq!(log.log_end_offset(), 10);
    assert_eq!(log.last_stable_offset(10), 0, "txn 7 is still open");
    assert_eq!(log.collect_aborted_transactions(0, 10), aborted_before);
    assert!(seg2_index.exists());
    // Ending them moves the LSO on.
    marker(&mut log, 7, 0, true, 0).expect("commit 7"); // 10
    assert_eq!(log.last_stable_offset(11), 8);
    marker(&mut log, 10, 0, true, 0).expect("commit 10"); // 11
    assert_eq!(log.last_stable_offset(12), 12);
}

/// A snapshot in gregor's first layout (version 1, from before transactions; the version
/// number is Kafka's layout's now) is not read as Kafka's: it is set aside and the state is
/// rebuilt from the log, as for a torn snapshot.
#[test]
fn a_snapshot_in_gregors_first_layout_is_rebuilt_from_the_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = Log::open(dir.path(), config(1 << 20), opts(true, 0)).expect("open");
    produce(&mut log, 7, 0, 2, false).expect("a");
    log.flush_all().expect("close");
    let (first_seq, last_seq, first_offset, last_offset) = {
        let b = log.producer_state().entry(7).expect("producer 7").batches[0];
        (b.first_seq, b.last_seq, b.first_offset, b.last_offset)
    };
    drop(log);
    let (offset, path) = crate::producer_state::list_snapshots(dir.path())
        .expect("list")
        .into_iter()
        .next_back()
        .expect("a snapshot");
    // map end, one producer: id, epoch, last time, one batch (sequences, offsets, time).
    let mut body = Vec::new();
    body.extend_from_slice(&offset.to_be_bytes());
    body.extend_from_slice(&1u32.to_be_bytes());
    body.extend_from_slice(&7i64.to_be_bytes());
    body.extend_from_slice(&0i16.to_be_bytes());
    body.extend_from_slice(&1_000i64.to_be_bytes());
    body.push(1);
    body.extend_from_slice(&first_seq.to_be_bytes());
    body.extend_from_slice(&last_seq.to_be_bytes());
    body.extend_from_slice(&first_offset.to_be_bytes());
    body.extend_from_slice(&last_offset.to_be_bytes());
    body.extend_from_slice(&1_000i64.to_be_bytes());
    let mut v1 = 1i16.to_be_bytes().to_vec();
    v1.extend_from_slice(&crc32c::crc32c(&body).to_be_bytes());
    v1.extend_from_slice(&body);
    std::fs::write(&path, v1).expect("write v1");
    let log = Log::open(dir.path(), config(1 << 20), opts(true, 0)).expect("reopen");
    let e = log
        .producer_state()
        .entry(7)
        .expect("producer 7, from the log");
    assert_eq!(
        e.batches
            .iter()
            .map(|b| (b.first_seq, b.last_seq, b.first_offset, b.last_offset))
            .collect::<Vec<_>>(),
        vec![(first_seq, last_seq, first_offset, last_offset)]
    );
}

#[test]
fn truncation_below_a_marker_reopens_the_transaction_and_drops_its_index_entry() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = Log::open(dir.path(), config(1 << 20), opts(true, 0)).expect("open");
    produce(&mut log, 7, 0, 2, true).expect("txn"); // 0..1
    marker(&mut log, 7, 0, false, 0).expect("abort"); // 2
    produce(&mut log, 8, 0, 1, false).expect("other"); // 3
    assert_eq!(log.collect_aborted_transactions(0, 4).len(), 1);
    log.truncate_to(2).expect("truncate");
    assert_eq!(log.log_end_offset(), 2);
    assert!(log.collect_aborted_transactions(0, 4).is_empty());
    assert!(txn_index_files(dir.path()).is_empty());
    assert_eq!(
        log.last_stable_offset(2),
        0,
        "the transaction is open again"
    );
    marker(&mut log, 7, 0, true, 0).expect("now committed");
    assert_eq!(log.last_stable_offset(3), 3);
}

#[test]
fn retention_deletes_a_segment_with_its_txnindex() {
    let dir = tempfile::tempdir().expect("tempdir");
    let size = producer_batch(7, 0, 0, 2, true).len() as u64;
    let mut log = Log::open(dir.path(), config(size * 2), opts(true, 0)).expect("open");
    produce(&mut log, 7, 0, 2, true).expect("txn"); // 0..1
    marker(&mut log, 7, 0, false, 0).expect("abort"); // 2
    produce(&mut log, 8, 0, 2, false).expect("rolls"); // 3..4
    produce(&mut log, 8, 2, 2, false).expect("rolls"); // 5..6
    assert_eq!(
        txn_index_files(dir.path()),
        vec![format!("{:020}.txnindex", 0)]
    );
    assert!(log.segment_count() >= 2);
    // Time retention takes the first segment (records at 1 000 ms, the marker at 0).
    log.set_config(LogConfig {
        retention_ms: 10,
        ..config(size * 2)
    });
    assert!(log.apply_retention(100_000).expect("retention") >= 1);
    assert!(log.log_start_offset() >= 3);
    assert!(txn_index_files(dir.path()).is_empty());
    assert!(log.collect_aborted_transactions(3, 7).is_empty());
}

#[test]
fn delete_records_takes_the_txnindex_of_the_segments_it_deletes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let size = producer_batch(7, 0, 0, 2, true).len() as u64;
    let mut log = Log::open(dir.path(), config(size * 2), opts(true, 0)).expect("open");
    produce(&mut log, 7, 0, 2, true).expect("txn"); // 0..1
    marker(&mut log, 7, 0, false, 0).expect("abort"); // 2
    produce(&mut log, 8, 0, 2, false).expect("rolls"); // 3..4
    produce(&mut log, 8, 2, 2, false).expect("rolls"); // 5..6
    log.delete_records_before(5).expect("delete records");
    assert!(txn_index_files(dir.path()).is_empty());
    assert!(log.collect_aborted_transactions(5, 7).is_empty());
}

proptest::proptest! {
    /// Random transactional and plain writes by a few producers, markers committing or aborting
    /// their open transactions, and restarts: the last stable offset is the first offset of the
    /// earliest open transaction (or the log end), and the aborted transactions found for any
    /// range are the model's (every aborted transaction that overlaps it).
    #[test]
    fn lso_and_aborted_transactions_follow_a_model(
        ops in proptest::collection::vec((0i64..3, 0u8..4, 1usize..4), 1..40),
        restart_at in proptest::option::of(0usize..40),
        segment_batches in 1u64..6,
    ) {
        let dir = tempfile::tempdir().expect("tempdir");
        let size = producer_batch(0, 0, 0, 2, true).len() as u64;
        let cfg = config(size * segment_batches);
        let mut log = Log::open(dir.path(), cfg.clone(), opts(true, 0)).expect("open");
        let mut seqs = [0i32; 3];
        // Model: open transaction first offset per producer; aborted (first, marker).
        let mut open: [Option<i64>; 3] = [None; 3];
        let mut model_aborted: Vec<(i64, i64, i64)> = Vec::new();
        for (i, (pid, op, n)) in ops.into_iter().enumerate() {
            let p = pid as usize;
            let leo = log.log_end_offset();
            match op {
                0 | 1 => {
                    let txn = op == 0;
                    let r = produce(&mut log, pid, seqs[p], n, txn);
                    if !txn && open[p].is_some() {
                        proptest::prop_assert!(r.is_err());
                    } else {
                        r.expect("append");
                        seqs[p] += n as i32;
                        if txn && open[p].is_none() {
                            open[p] = Some(leo);
                        }
                    }
                }
                _ => {
                    let commit = op == 2;
                    marker(&mut log, pid, 0, commit, 0).expect("marker");
                    if let Some(first) = open[p].take() {
                        if !commit {
                            model_aborted.push((pid, first, leo));
                        }
                    }
                }
            }
            if restart_at == Some(i) {
                log.flush_all().expect("close");
                drop(log);
                log = Log::open(dir.path(), cfg.clone(), opts(true, 0)).expect("reopen");
            }
            let end = log.log_end_offset();
            let model_lso = open.iter().flatten().min().copied().unwrap_or(end);
            proptest::prop_assert_eq!(log.last_stable_offset(end), model_lso);
        }
        let end = log.log_end_offset();
        for start in 0..end {
            for upper in start + 1..=end {
                let got: Vec<(i64, i64, i64)> = log
                    .collect_aborted_transactions(start, upper)
                    .into_iter()
                    .map(|a| (a.producer_id, a.first_offset, a.last_offset))
                    .collect();
                let want: Vec<(i64, i64, i64)> = model_aborted
                    .iter()
                    .copied()
                    .filter(|&(_, first, last)| last >= start && first < upper)
                    .collect();
                proptest::prop_assert_eq!(got, want, "range {}..{}", start, upper);
            }
        }
    }
}

#[test]
fn a_read_committed_read_names_the_aborted_transactions_of_its_range_only() {
    let dir = tempfile::tempdir().expect("tempdir");
    let size = producer_batch(7, 0, 0, 2, true).len() as u64;
    let mut log = Log::open(dir.path(), config(size * 2), opts(true, 0)).expect("open");
    produce(&mut log, 7, 0, 2, true).expect("txn 7"); // 0..1
    marker(&mut log, 7, 0, false, 0).expect("abort 7"); // 2
    produce(&mut log, 8, 0, 2, true).expect("txn 8"); // 3..4, rolled at 3
    produce(&mut log, 9, 0, 2, false).expect("plain"); // 5..6, rolled at 5
    marker(&mut log, 8, 0, false, 0).expect("abort 8"); // 7
    let lso = log.last_stable_offset(log.log_end_offset());
    assert_eq!(lso, 8);
    let pids = |start: i64| -> Vec<i64> {
        let (info, aborted) = log
            .read_committed(start, usize::MAX, lso, true)
            .expect("read");
        assert!(info.slice.is_some());
        aborted.iter().map(|a| a.producer_id).collect()
    };
    assert_eq!(pids(0), vec![7], "the first segment's records end at 3");
    // Txn 8 starts in the second segment; its marker is in the third.
    assert_eq!(pids(3), vec![8]);
    assert_eq!(pids(5), vec![8]);
    // Nothing to return: no list.
    let (info, aborted) = log.read_committed(8, usize::MAX, lso, true).expect("read");
    assert!(info.slice.is_none() && aborted.is_empty());
}

/// KIP-890 through `Log`: a marker appended between the verification and the append (the
/// coordinator's marker for the producer's previous transaction) makes the append fail, and
/// nothing is written; a verified append opens the transaction.
#[test]
fn a_verified_append_opens_a_transaction_and_a_marker_in_between_refuses_it() {
    use crate::producer_state::{AppendOrigin, TxnVerification};
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = Log::open(dir.path(), config(1 << 20), opts(true, 0)).expect("open");
    let append = |log: &mut Log, seq: i32, v: TxnVerification| {
        let b = producer_batch(7, 0, seq, 1, true);
        let set = validate_record_set(&b, 1 << 20).expect("valid batch");
        log.append_as_leader_verified(AppendOrigin::Client, &set, 1, 0, false, v)
    };
    // No verification at all: refused, nothing written.
    assert!(matches!(
        append(&mut log, 0, TxnVerification::Required(None)),
        Err(StorageError::Producer(
            ProducerStateError::UnverifiedTransaction { producer_id: 7 }
        ))
    ));
    assert_eq!(log.log_end_offset(), 0);
    let guard = log.maybe_start_transaction_verification(7, 0, 0, false, 0);
    assert!(guard.is_some());
    append(&mut log, 0, TxnVerification::Required(guard)).expect("verified");
    assert_eq!(log.last_stable_offset(1), 0, "the transaction is open");
    marker(&mut log, 7, 0, true, 0).expect("commit"); // 1
    let guard = log.maybe_start_transaction_verification(7, 1, 0, false, 0);
    marker(&mut log, 7, 0, true, 0).expect("a retried marker"); // 2
    assert!(matches!(
        append(&mut log, 1, TxnVerification::Required(guard)),
        Err(StorageError::Producer(
            ProducerStateError::UnverifiedTransaction { .. }
        ))
    ));
    assert_eq!(log.log_end_offset(), 3, "nothing appended");
    assert_eq!(log.last_stable_offset(3), 3, "no hanging transaction");
}
