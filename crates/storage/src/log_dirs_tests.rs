//! `LogManager` over several log directories (Kafka's JBOD): where partitions go, what each
//! directory's checkpoints and marker hold, and what stops an open.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use gregor_protocol::batch::{encode_simple_batch, validate_record_set};

use crate::{LogConfig, LogManager, TopicPartition};

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
