//! `LogManager` over several log directories (Kafka's JBOD): where partitions go, what each
//! directory's checkpoints and marker hold, and what stops an open.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use gregor_protocol::batch::{encode_simple_batch, validate_record_set};

use crate::{LogConfig, LogManager, MoveStart, TopicPartition};

fn config() -> LogConfig {
    LogConfig {
        retention_ms: -1,
        ..LogConfig::default()
    }
}

fn tp(topic: &str, partition: i32) -> TopicPartition {
    TopicPartition {
        topic: topic.to_string(),
        partition,
    }
}

/// Appends `n` one-record batches to the partition's log.
fn append(m: &LogManager, tp: &TopicPartition, n: usize) {
    let log = m.get_or_create(tp, config()).expect("log");
    let mut log = log.lock().expect("lock");
    for _ in 0..n {
        let b = encode_simple_batch(1_000, &[(None, Some(&b"value"[..]))]);
        let s = validate_record_set(&b, 1 << 20).expect("valid");
        log.append_as_leader(&s, 0, 0, false).expect("append");
    }
}

fn end_offset(m: &LogManager, tp: &TopicPartition) -> i64 {
    let log = m.get_or_create(tp, config()).expect("log");
    let end = log.lock().expect("lock").log_end_offset();
    end
}

/// The partition directories in `dir`, as `topic-partition` names.
fn partition_dirs(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("read dir")
        .filter_map(|e| {
            let e = e.expect("entry");
            let name = e.file_name().to_string_lossy().into_owned();
            (e.file_type().expect("type").is_dir() && !name.starts_with('.')).then_some(name)
        })
        .collect();
    names.sort();
    names
}

fn three_dirs() -> (tempfile::TempDir, Vec<PathBuf>) {
    let root = tempfile::tempdir().expect("tempdir");
    let dirs = ["a", "b", "c"]
        .iter()
        .map(|d| root.path().join(d))
        .collect();
    (root, dirs)
}

#[test]
fn new_partitions_go_to_the_directory_with_the_fewest() {
    let (_root, dirs) = three_dirs();
    let m = LogManager::open_dirs(&dirs).expect("open");
    assert_eq!(m.dirs(), dirs);
    for p in 0..6 {
        append(&m, &tp("t", p), 1);
    }
    // Round robin from equal counts: the first of the least loaded each time.
    assert_eq!(partition_dirs(&dirs[0]), vec!["t-0", "t-3"]);
    assert_eq!(partition_dirs(&dirs[1]), vec!["t-1", "t-4"]);
    assert_eq!(partition_dirs(&dirs[2]), vec!["t-2", "t-5"]);
    assert_eq!(m.dir_of(&tp("t", 4)), Some(dirs[1].clone()));
    assert_eq!(m.dir_of(&tp("t", 9)), None, "not on disk");
    // A deleted partition frees its place: the next new one goes there.
    m.delete(&tp("t", 4)).expect("delete");
    assert_eq!(m.dir_of(&tp("t", 4)), None);
    append(&m, &tp("u", 0), 1);
    assert_eq!(m.dir_of(&tp("u", 0)), Some(dirs[1].clone()));
    assert_eq!(partition_dirs(&dirs[1]), vec!["t-1", "u-0"]);
    m.shutdown().expect("shutdown");
}

#[test]
fn every_directory_keeps_its_own_partitions_checkpoints_and_marker() {
    let (_root, dirs) = three_dirs();
    let mut hws = HashMap::new();
    {
        let m = LogManager::open_dirs(&dirs).expect("open");
        for p in 0..3 {
            append(&m, &tp("t", p), (p + 1) as usize);
            hws.insert(tp("t", p), i64::from(p + 1));
        }
        m.update_cleaner_checkpoint(&tp("t", 2), 2)
            .expect("cleaner checkpoint");
        m.checkpoint_high_watermarks(&hws).expect("high watermarks");
        m.set_broker_epoch(Some(7));
        m.shutdown().expect("shutdown");
    }
    for (i, dir) in dirs.iter().enumerate() {
        assert!(dir.join(".gregor_cleanshutdown").exists(), "{i}");
        for file in [
            "recovery-point-offset-checkpoint",
            "replication-offset-checkpoint",
        ] {
            let text = std::fs::read_to_string(dir.join(file)).expect("checkpoint");
            // Version, count, then this directory's one partition.
            assert_eq!(text.lines().nth(1), Some("1"), "{file} in {i}: {text}");
            assert!(text.contains(&format!("t {i} ")), "{file} in {i}: {text}");
        }
    }
    let cleaner = std::fs::read_to_string(dirs[2].join("cleaner-offset-checkpoint"))
        .expect("the cleaner checkpoint is in t-2's directory");
    assert!(cleaner.contains("t 2 2"), "{cleaner}");
    assert!(!dirs[0].join("cleaner-offset-checkpoint").exists());

    // A clean reopen finds every partition where it was, with its offsets and high watermark.
    let m = LogManager::open_dirs(&dirs).expect("reopen");
    assert!(m.had_clean_shutdown());
    assert_eq!(m.previous_broker_epoch(), Some(7));
    assert_eq!(
        m.existing_partitions().expect("partitions"),
        vec![tp("t", 0), tp("t", 1), tp("t", 2)]
    );
    for p in 0..3 {
        assert_eq!(m.dir_of(&tp("t", p)), Some(dirs[p as usize].clone()));
        assert_eq!(end_offset(&m, &tp("t", p)), i64::from(p + 1));
        assert_eq!(m.high_watermark(&tp("t", p)), Some(i64::from(p + 1)));
    }
    assert_eq!(m.high_watermarks(), hws);
    // No entry: none, whether the partition is on disk or not.
    append(&m, &tp("u", 0), 1);
    assert_eq!(m.high_watermark(&tp("u", 0)), None);
    assert_eq!(m.high_watermark(&tp("v", 0)), None);
    assert_eq!(m.cleaner_checkpoint(&tp("t", 2)), Some(2));
    assert_eq!(m.cleaner_checkpoint(&tp("t", 0)), None);
}

#[test]
fn directories_recover_and_mark_clean_on_their_own() {
    let (_root, dirs) = three_dirs();
    let dirs = dirs[..2].to_vec();
    {
        let m = LogManager::open_dirs(&dirs).expect("open");
        append(&m, &tp("t", 0), 2);
        append(&m, &tp("t", 1), 3);
        // crash: no shutdown
    }
    {
        let m = LogManager::open_dirs(&dirs).expect("open after the crash");
        assert!(!m.had_clean_shutdown());
        assert_eq!(m.previous_broker_epoch(), None);
        // Only t-0 (in the first directory) is opened, so recovered.
        assert_eq!(end_offset(&m, &tp("t", 0)), 2);
        m.set_broker_epoch(Some(3));
        m.shutdown().expect("shutdown");
    }
    assert!(dirs[0].join(".gregor_cleanshutdown").exists());
    assert!(
        !dirs[1].join(".gregor_cleanshutdown").exists(),
        "t-1 was never recovered"
    );
    let m = LogManager::open_dirs(&dirs).expect("open");
    assert!(!m.had_clean_shutdown());
    // The directories disagree: no epoch is proven.
    assert_eq!(m.previous_broker_epoch(), None);
    assert_eq!(end_offset(&m, &tp("t", 1)), 3);
}

#[test]
fn a_partition_in_two_directories_or_a_directory_given_twice_is_refused() {
    let (_root, dirs) = three_dirs();
    {
        let m = LogManager::open_dirs(&dirs[..1]).expect("open one");
        append(&m, &tp("t", 0), 1);
        m.shutdown().expect("shutdown");
    }
    // The partition copied into a second directory by hand.
    std::fs::create_dir_all(dirs[1].join("t-0")).expect("mkdir");
    let e = LogManager::open_dirs(&dirs[..2]).expect_err("two copies");
    let text = e.to_string();
    assert!(text.contains("t-0 is in two log directories"), "{text}");
    std::fs::remove_dir(dirs[1].join("t-0")).expect("rmdir");
    // Adding an empty directory to the list keeps the partition where it is.
    let m = LogManager::open_dirs(&dirs[..2]).expect("one copy");
    assert_eq!(m.dir_of(&tp("t", 0)), Some(dirs[0].clone()));
    assert_eq!(end_offset(&m, &tp("t", 0)), 1);
    drop(m);

    let again = vec![
        dirs[0].clone(),
        dirs[1].clone(),
        dirs[0].join("..").join("a"),
    ];
    let e = LogManager::open_dirs(&again).expect_err("the same directory twice");
    assert!(e.to_string().contains("is given twice"), "{e}");
    // And the lock is free again for a correct list.
    LogManager::open_dirs(&dirs).expect("open three");
}

/// All batches of the log, as bytes, from its start.
fn all_bytes(m: &LogManager, tp: &TopicPartition) -> Vec<u8> {
    let log = m.get(tp).expect("open");
    let log = log.lock().expect("lock");
    let mut out = Vec::new();
    let mut offset = log.log_start_offset();
    while offset < log.log_end_offset() {
        let info = log
            .read(offset, 1 << 20, log.log_end_offset(), true)
            .expect("read");
        let Some(slice) = info.slice else { break };
        let bytes = slice.read_to_vec().expect("bytes");
        let mut next = offset;
        for b in gregor_protocol::batch::batches(&bytes) {
            next = b.expect("batch").next_offset();
        }
        out.extend(bytes);
        offset = next;
    }
    out
}

fn small_segments() -> LogConfig {
    LogConfig {
        segment_bytes: 4096,
        retention_ms: -1,
        ..LogConfig::default()
    }
}

#[test]
fn a_log_moves_to_another_directory_while_appends_go_on() {
    let (_root, dirs) = three_dirs();
    let dirs = dirs[..2].to_vec();
    let t0 = tp("t", 0);
    let m = std::sync::Arc::new(LogManager::open_dirs(&dirs).expect("open"));
    let log = m.get_or_create(&t0, small_segments()).expect("log");
    let one = |log: &std::sync::Mutex<crate::Log>| {
        let b = encode_simple_batch(1_000, &[(None, Some(&[b'x'; 300][..]))]);
        let s = validate_record_set(&b, 1 << 20).expect("valid");
        log.lock()
            .expect("lock")
            .append_as_leader(&s, 4, 0, false)
            .expect("append");
    };
    for _ in 0..200 {
        one(&log);
    }
    log.lock()
        .expect("lock")
        .delete_records_before(10)
        .expect("delete records");
    assert_eq!(m.dir_of(&t0), Some(dirs[0].clone()));
    let original = all_bytes(&m, &t0);
    assert_eq!(m.alter_dir(&t0, 0).expect("same"), MoveStart::AlreadyThere);
    assert_eq!(m.alter_dir(&t0, 1).expect("move"), MoveStart::Started);
    assert_eq!(m.alter_dir(&t0, 1).expect("again"), MoveStart::InProgress);
    assert_eq!(m.moves().len(), 1);
    // Appends go on from another thread while the move runs.
    let writer = {
        let log = std::sync::Arc::clone(&log);
        std::thread::spawn(move || {
            for _ in 0..300 {
                one(&log);
            }
        })
    };
    m.run_move(&t0, &|_| {}).expect("move");
    writer.join().expect("writer");
    assert!(m.moves().is_empty());
    assert_eq!(m.dir_of(&t0), Some(dirs[1].clone()));
    assert!(dirs[1].join("t-0").is_dir());
    assert_eq!(
        partition_dirs(&dirs[0]),
        Vec::<String>::new(),
        "source gone"
    );
    // The same Arc serves the moved log: everything there, appends continue.
    {
        let l = log.lock().expect("lock");
        assert_eq!((l.log_start_offset(), l.log_end_offset()), (10, 500));
        assert_eq!(l.latest_epoch(), Some(4));
    }
    let before = all_bytes(&m, &t0);
    assert!(
        before.starts_with(&original),
        "the batches copied byte for byte"
    );
    one(&log);
    assert_eq!(log.lock().expect("lock").log_end_offset(), 501);
    m.shutdown().expect("shutdown");
    drop(log);
    drop(m);
    let m = LogManager::open_dirs(&dirs).expect("reopen");
    assert!(m.had_clean_shutdown());
    assert_eq!(m.dir_of(&t0), Some(dirs[1].clone()));
    m.get_or_create(&t0, small_segments()).expect("log");
    let after = all_bytes(&m, &t0);
    assert!(after.starts_with(&before) && after.len() > before.len());
    let log = m.get(&t0).expect("open");
    let l = log.lock().expect("lock");
    assert_eq!((l.log_start_offset(), l.log_end_offset()), (10, 501));
}

#[test]
fn a_move_called_off_leaves_the_log_where_it_was() {
    let (_root, dirs) = three_dirs();
    let m = LogManager::open_dirs(&dirs).expect("open");
    append(&m, &tp("t", 0), 5);
    // Back to its own directory before it ran: called off.
    assert_eq!(
        m.alter_dir(&tp("t", 0), 2).expect("move"),
        MoveStart::Started
    );
    assert_eq!(
        m.alter_dir(&tp("t", 0), 0).expect("back"),
        MoveStart::AlreadyThere
    );
    m.run_move(&tp("t", 0), &|_| {}).expect("nothing to run");
    assert_eq!(m.dir_of(&tp("t", 0)), Some(dirs[0].clone()));
    // Deleted with a move registered: the move does nothing.
    assert_eq!(
        m.alter_dir(&tp("t", 0), 1).expect("move"),
        MoveStart::Started
    );
    m.delete(&tp("t", 0)).expect("delete");
    m.run_move(&tp("t", 0), &|_| {}).expect("called off");
    for dir in &dirs {
        assert_eq!(
            partition_dirs(dir),
            Vec::<String>::new(),
            "{}",
            dir.display()
        );
    }
    // A partition with no log yet is created where it was asked to go.
    assert_eq!(
        m.alter_dir(&tp("n", 0), 2).expect("prefer"),
        MoveStart::NotOnDisk
    );
    append(&m, &tp("n", 0), 1);
    assert_eq!(m.dir_of(&tp("n", 0)), Some(dirs[2].clone()));
    assert_eq!(m.dir_index_of_path(&dirs[1]), Some(1));
    assert_eq!(m.dir_index_of_path(&dirs[1].join("..").join("b")), Some(1));
    assert_eq!(m.dir_index_of_path(Path::new("/nowhere")), None);
}

#[test]
fn a_move_cut_short_by_a_crash_is_finished_or_undone_at_open() {
    let (_root, dirs) = three_dirs();
    {
        let m = LogManager::open_dirs(&dirs).expect("open");
        for p in 0..3 {
            append(&m, &tp("t", p), 3);
        }
        m.shutdown().expect("shutdown");
    }
    // t-0 (in a): crashed after its source was set aside, before the copy took its name.
    std::fs::rename(dirs[0].join("t-0"), dirs[0].join("t-0.00ff-moved")).expect("rename");
    std::fs::create_dir_all(dirs[1].join("t-0.00aa-future")).expect("future");
    // t-1 (in b): crashed after the copy in c took its name, before the source went.
    std::fs::create_dir_all(dirs[2].join("t-1")).expect("copy");
    for entry in std::fs::read_dir(dirs[1].join("t-1")).expect("read") {
        let entry = entry.expect("entry");
        std::fs::copy(entry.path(), dirs[2].join("t-1").join(entry.file_name())).expect("copy");
    }
    std::fs::rename(dirs[1].join("t-1"), dirs[1].join("t-1.0011-moved")).expect("rename");
    let m = LogManager::open_dirs(&dirs).expect("open");
    assert_eq!(m.dir_of(&tp("t", 0)), Some(dirs[0].clone()), "undone");
    assert_eq!(m.dir_of(&tp("t", 1)), Some(dirs[2].clone()), "finished");
    assert_eq!(partition_dirs(&dirs[0]), vec!["t-0"]);
    assert_eq!(partition_dirs(&dirs[1]), Vec::<String>::new());
    assert_eq!(partition_dirs(&dirs[2]), vec!["t-1", "t-2"]);
    for p in 0..3 {
        assert_eq!(end_offset(&m, &tp("t", p)), 3);
    }
}

/// A move larger than a chunk reports each full chunk to its throttle, and a throttler bounds
/// a quick burst of large chunks (checked before its 100 ms interval once they exceed what
/// the rate allows in it).
#[test]
fn a_move_reports_its_chunks_to_the_throttle() {
    let (_root, dirs) = three_dirs();
    let dirs = dirs[..2].to_vec();
    let t0 = tp("t", 0);
    let m = LogManager::open_dirs(&dirs).expect("open");
    {
        let log = m.get_or_create(&t0, config()).expect("log");
        let mut log = log.lock().expect("lock");
        let value = vec![b'v'; 100_000];
        for _ in 0..30 {
            let b = encode_simple_batch(1_000, &[(None, Some(&value[..]))]);
            let s = validate_record_set(&b, 1 << 20).expect("valid");
            log.append_as_leader(&s, 0, 0, false).expect("append");
        }
    }
    assert_eq!(m.alter_dir(&t0, 1).expect("move"), MoveStart::Started);
    let counted = std::sync::atomic::AtomicU64::new(0);
    m.run_move(&t0, &|bytes| {
        counted.fetch_add(bytes, std::sync::atomic::Ordering::Relaxed);
    })
    .expect("move");
    assert_eq!(m.dir_of(&t0), Some(dirs[1].clone()));
    // About 3 MB in chunks of at most 1 MiB: the two before the last are counted.
    let counted = counted.into_inner();
    assert!((2_000_000..3_100_000).contains(&counted), "{counted}");

    let throttler = crate::Throttler::new(1_000_000.0);
    let started = std::time::Instant::now();
    for _ in 0..3 {
        throttler.maybe_throttle(300_000);
    }
    let took = started.elapsed();
    assert!(took >= std::time::Duration::from_millis(800), "{took:?}");
}

/// A truncation of the source during its move (a follower told to by a new leader), followed
/// by different batches past what was copied: the copy starts again, and the moved log holds
/// the source's batches, not the ones the truncation took back.
#[test]
fn a_truncation_during_a_move_makes_the_copy_start_again() {
    let (_root, dirs) = three_dirs();
    let dirs = dirs[..2].to_vec();
    let t0 = tp("t", 0);
    let m = LogManager::open_dirs(&dirs).expect("open");
    let log = m.get_or_create(&t0, config()).expect("log");
    // Leader-style appends of 30 batches of 100 kB: three chunks to copy.
    {
        let value = vec![b'v'; 100_000];
        let mut l = log.lock().expect("lock");
        for _ in 0..30 {
            let b = encode_simple_batch(1_000, &[(None, Some(&value[..]))]);
            let s = validate_record_set(&b, 1 << 20).expect("valid");
            l.append_as_leader(&s, 0, 0, false).expect("append");
        }
    }
    assert_eq!(m.alter_dir(&t0, 1).expect("move"), MoveStart::Started);
    let expected = std::sync::Mutex::new(Vec::new());
    let first = std::sync::atomic::AtomicBool::new(true);
    m.run_move(&t0, &|_| {
        if !first.swap(false, std::sync::atomic::Ordering::SeqCst) {
            return;
        }
        // After the first chunk (10 batches copied): back to 5, then 20 other batches.
        {
            let mut l = log.lock().expect("lock");
            l.truncate_to(5).expect("truncate");
            let value = vec![b'w'; 100_000];
            for _ in 0..20 {
                let b = encode_simple_batch(1_000, &[(None, Some(&value[..]))]);
                let s = validate_record_set(&b, 1 << 20).expect("valid");
                l.append_as_leader(&s, 1, 0, false).expect("append");
            }
            assert_eq!(l.log_end_offset(), 25);
        }
        *expected.lock().expect("lock") = all_bytes(&m, &t0);
    })
    .expect("move");
    assert_eq!(m.dir_of(&t0), Some(dirs[1].clone()));
    let expected = expected.into_inner().expect("lock");
    assert!(!expected.is_empty(), "the throttle ran");
    assert_eq!(log.lock().expect("lock").log_end_offset(), 25);
    assert!(
        all_bytes(&m, &t0) == expected,
        "the moved log is the source's, not what the truncation took back"
    );
}

/// A directory a storage failure took offline: named once with its partitions, no new
/// partition placed there, its checkpoints no longer written, no moves into it, not marked
/// clean at shutdown (which says so), while the other directory goes on and is marked clean.
#[test]
fn an_offline_directory_is_left_alone_and_not_marked_clean() {
    let (_root, dirs) = three_dirs();
    let dirs = dirs[..2].to_vec();
    {
        let m = LogManager::open_dirs(&dirs).expect("open");
        append(&m, &tp("t", 0), 1);
        append(&m, &tp("t", 1), 1);
        append(&m, &tp("t", 2), 1);
        assert_eq!(m.dir_of(&tp("t", 1)), Some(dirs[1].clone()));
        let (dir, mut held) = m.mark_dir_offline(&tp("t", 1)).expect("newly offline");
        held.sort();
        assert_eq!((dir, held), (dirs[1].clone(), vec![tp("t", 1)]));
        assert!(m.mark_dir_offline(&tp("t", 1)).is_none(), "once");
        assert_eq!(m.offline_dirs(), vec![dirs[1].clone()]);
        // New partitions go to the online directory only.
        append(&m, &tp("u", 0), 1);
        append(&m, &tp("u", 1), 1);
        assert_eq!(m.dir_of(&tp("u", 0)), Some(dirs[0].clone()));
        assert_eq!(m.dir_of(&tp("u", 1)), Some(dirs[0].clone()));
        // Its checkpoints are left as they were.
        std::fs::remove_file(dirs[1].join("recovery-point-offset-checkpoint")).ok();
        m.checkpoint().expect("checkpoint");
        assert!(!dirs[1].join("recovery-point-offset-checkpoint").exists());
        assert!(dirs[0].join("recovery-point-offset-checkpoint").exists());
        assert!(m.alter_dir(&tp("t", 0), 1).is_err(), "no move into it");
        assert!(m.alter_dir(&tp("t", 1), 0).is_err(), "nor out of it");
        let e = m.shutdown().expect_err("not a clean stop");
        assert!(e.to_string().contains("is offline"), "{e}");
    }
    assert!(dirs[0].join(".gregor_cleanshutdown").exists());
    assert!(!dirs[1].join(".gregor_cleanshutdown").exists());
    // The next start recovers it and finds everything.
    let m = LogManager::open_dirs(&dirs).expect("reopen");
    assert!(m.offline_dirs().is_empty());
    for t in [tp("t", 0), tp("t", 1), tp("t", 2), tp("u", 0), tp("u", 1)] {
        assert_eq!(end_offset(&m, &t), 1, "{t:?}");
    }
}

/// A checkpoint write that fails in a directory (here: its temporary file's name taken by a
/// directory, so the create fails as a dying disk's would) takes that directory offline, once,
/// with its partitions; the other directory's checkpoint is written.
#[test]
fn a_failed_checkpoint_write_takes_its_directory_offline() {
    let (_root, dirs) = three_dirs();
    let dirs = dirs[..2].to_vec();
    let m = LogManager::open_dirs(&dirs).expect("open");
    append(&m, &tp("t", 0), 1);
    append(&m, &tp("t", 1), 1);
    std::fs::create_dir(dirs[1].join("recovery-point-offset-checkpoint.tmp")).expect("mkdir");
    assert!(m.checkpoint().is_err());
    assert_eq!(
        m.take_newly_offline(),
        vec![(dirs[1].clone(), vec![tp("t", 1)])]
    );
    assert!(m.take_newly_offline().is_empty(), "once");
    assert_eq!(m.offline_dirs(), vec![dirs[1].clone()]);
    assert!(dirs[0].join("recovery-point-offset-checkpoint").exists());
    // Offline: no longer written, so no longer failing.
    m.checkpoint().expect("the online directory only");
}

/// Cordoned directories (KIP-1066) take no new partition while another is not cordoned; with
/// every one cordoned, new partitions are placed as before; partitions already there stay.
#[test]
fn cordoned_directories_take_no_new_partition() {
    let (_root, dirs) = three_dirs();
    let m = LogManager::open_dirs(&dirs).expect("open");
    append(&m, &tp("t", 0), 1);
    assert_eq!(m.dir_of(&tp("t", 0)), Some(dirs[0].clone()));
    m.set_cordoned(&[0, 1]);
    assert_eq!(m.cordoned_dirs(), vec![dirs[0].clone(), dirs[1].clone()]);
    for p in 1..4 {
        append(&m, &tp("t", p), 1);
        assert_eq!(m.dir_of(&tp("t", p)), Some(dirs[2].clone()), "t-{p}");
    }
    assert_eq!(end_offset(&m, &tp("t", 0)), 1, "t-0 stays and serves");
    m.set_cordoned(&[0, 1, 2]);
    append(&m, &tp("u", 0), 1);
    append(&m, &tp("u", 1), 1);
    assert_eq!(
        m.dir_of(&tp("u", 0)),
        Some(dirs[1].clone()),
        "the least loaded"
    );
    m.set_cordoned(&[]);
    assert!(m.cordoned_dirs().is_empty());
}

#[test]
fn a_directory_that_cannot_be_opened_starts_offline_but_the_first_must_open() {
    let (_tmp, dirs) = three_dirs();
    {
        let m = LogManager::open_dirs(&dirs).expect("open");
        append(&m, &tp("a", 0), 2);
        append(&m, &tp("b", 0), 3);
        append(&m, &tp("c", 0), 1);
        m.shutdown().expect("shutdown");
    }
    let held_by_second = partition_dirs(&dirs[1]);
    assert_eq!(held_by_second.len(), 1, "one partition per directory");
    // The second directory's disk is gone: in its place, a file.
    std::fs::rename(&dirs[1], dirs[1].with_extension("gone")).expect("rename");
    std::fs::write(&dirs[1], b"not a directory").expect("file");
    let m = LogManager::open_dirs(&dirs).expect("opens without it");
    assert_eq!(m.offline_dirs(), vec![dirs[1].clone()]);
    assert!(m.is_dir_offline(1) && !m.is_dir_offline(0));
    let existing = m.existing_partitions().expect("existing");
    assert_eq!(existing.len(), 2, "{existing:?}");
    // New partitions, and one preferred there, go to the online ones.
    m.prefer_dir(&tp("new", 0), 1);
    m.get_or_create(&tp("new", 0), config()).expect("new");
    assert_ne!(m.dir_index_of(&tp("new", 0)), Some(1));
    m.prefer_dir(&tp("new", 1), 2);
    m.get_or_create(&tp("new", 1), config()).expect("new");
    assert_eq!(m.dir_index_of(&tp("new", 1)), Some(2));
    // A shutdown with a directory offline says so (the others are marked clean).
    assert!(m.shutdown().is_err());
    drop(m);
    // Told that a directory's meta.properties cannot be read: offline too.
    std::fs::remove_file(&dirs[1]).expect("remove");
    std::fs::rename(dirs[1].with_extension("gone"), &dirs[1]).expect("back");
    let m = LogManager::open_dirs_with(&dirs, &[1]).expect("open");
    assert_eq!(m.offline_dirs(), vec![dirs[1].clone()]);
    assert!(m.shutdown().is_err());
    drop(m);
    // Healed, it is back with its partition.
    let m = LogManager::open_dirs(&dirs).expect("open");
    assert!(m.offline_dirs().is_empty());
    assert_eq!(m.existing_partitions().expect("existing").len(), 5);
    drop(m);
    // The first directory holds the metadata log: it must open.
    std::fs::rename(&dirs[0], dirs[0].with_extension("gone")).expect("rename");
    std::fs::write(&dirs[0], b"not a directory").expect("file");
    assert!(LogManager::open_dirs(&dirs).is_err());
}

/// A log set aside as a stray keeps its files under `<topic>-<partition>.<hex>-stray`, is no
/// partition any more (not listed, not opened again, its place free for a new log), and stays
/// so across a restart.
#[test]
fn a_stray_log_is_set_aside_with_its_data_and_never_opened_again() {
    let (_root, dirs) = three_dirs();
    let m = LogManager::open_dirs(&dirs).expect("open");
    for p in 0..3 {
        append(&m, &tp("t", p), 3);
    }
    let aside = m
        .set_aside(&tp("t", 1))
        .expect("set aside")
        .expect("on disk");
    assert_eq!(aside.parent(), Some(dirs[1].as_path()));
    let name = aside
        .file_name()
        .expect("name")
        .to_string_lossy()
        .into_owned();
    assert!(
        name.starts_with("t-1.") && name.ends_with("-stray"),
        "{name}"
    );
    let segments: Vec<_> = std::fs::read_dir(&aside)
        .expect("read")
        .filter_map(|e| {
            let name = e.ok()?.file_name().to_string_lossy().into_owned();
            name.ends_with(".log").then_some(name)
        })
        .collect();
    assert_eq!(segments.len(), 1, "the data is kept: {segments:?}");
    assert!(
        std::fs::metadata(aside.join(&segments[0]))
            .expect("segment")
            .len()
            > 0
    );
    assert_eq!(m.dir_of(&tp("t", 1)), None);
    assert!(!m.existing_partitions().expect("list").contains(&tp("t", 1)));
    assert_eq!(m.set_aside(&tp("t", 9)).expect("not on disk"), None);
    m.shutdown().expect("shutdown");
    drop(m);

    let m = LogManager::open_dirs(&dirs).expect("reopen");
    assert_eq!(
        m.existing_partitions().expect("list"),
        vec![tp("t", 0), tp("t", 2)]
    );
    assert!(aside.is_dir(), "kept across a restart");
    // A new log of that partition starts empty, beside the stray one.
    assert_eq!(end_offset(&m, &tp("t", 1)), 0);
    assert_eq!(end_offset(&m, &tp("t", 0)), 3);
    m.shutdown().expect("shutdown");
}

/// A topic of 249 characters (the longest Kafka allows): its partitions are deleted and set
/// aside like any other (the renamed directory's name is cut to fit).
#[test]
fn the_longest_topic_name_is_deleted_and_set_aside() {
    let (_root, dirs) = three_dirs();
    let m = LogManager::open_dirs(&dirs[..1]).expect("open");
    let long = "t".repeat(249);
    append(&m, &tp(&long, 0), 2);
    append(&m, &tp(&long, 1), 2);
    m.delete(&tp(&long, 0)).expect("delete");
    let aside = m
        .set_aside(&tp(&long, 1))
        .expect("set aside")
        .expect("on disk");
    assert!(aside.is_dir());
    assert_eq!(
        partition_dirs(&dirs[0]).len(),
        1,
        "only the stray one is left"
    );
    assert!(m.existing_partitions().expect("list").is_empty());
    m.shutdown().expect("shutdown");
}
