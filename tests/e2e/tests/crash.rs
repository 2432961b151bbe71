//! kill -9 under an acks=all produce stream, restart on the same data dir: every record the
//! broker acknowledged must be there, at the offset it was acknowledged at, with its value; the
//! logs recovered by several threads at once (`num.recovery.threads.per.data.dir`).
//!
//! Kafka's flush policy, per topic and as a dynamic broker default
//! (`flush_messages_and_the_dynamic_flush_interval_fsync_acks_1_records`): what the recovery
//! point checkpoint says was fsynced. `preallocate` (`a_preallocated_topic_reserves_its_segments`):
//! what the segment files hold on disk.

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use gregor_e2e::broker::{gregor_cli_ok, send_signal, wait_timeout};
use gregor_e2e::client::CONFLUENT;
use gregor_e2e::{check, python, python_script, unique_topic, Broker};

/// Records acknowledged before the kill.
const ACKED_BEFORE_KILL: usize = 3000;

fn acked_lines(path: &std::path::Path) -> Vec<(i32, i64, String)> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.split_inclusive('\n')
        // A line without its newline may be half-written: it does not count as acknowledged.
        .filter(|l| l.ends_with('\n'))
        .map(|l| {
            let mut it = l.trim_end().splitn(3, ' ');
            let p = it.next().and_then(|s| s.parse().ok());
            let o = it.next().and_then(|s| s.parse().ok());
            match (p, o, it.next()) {
                (Some(p), Some(o), Some(v)) => (p, o, v.to_string()),
                _ => panic!("bad ack line {l:?}"),
            }
        })
        .collect()
}

#[test]
fn acknowledged_records_survive_kill_9() {
    // Four recovery threads open and recover the twelve partitions (and the internal topics'
    // fifty) after the kill, several at once.
    let mut broker = Broker::start_with(&["num.recovery.threads.per.data.dir=4"]);
    let topic = unique_topic("crash");
    CONFLUENT.create_topic(&broker, &topic, 12);

    let dir = tempfile::tempdir().expect("temp dir");
    let ack_file = dir.path().join("acked.txt");
    let mut producer = Command::new(python())
        .arg("-u")
        .arg("-B")
        .arg(python_script("crash_producer.py"))
        .arg(broker.bootstrap())
        .arg(&topic)
        .arg(&ack_file)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start crash_producer.py");

    // Wait until enough records are acknowledged, then kill the broker mid-stream.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let n = acked_lines(&ack_file).len();
        if n >= ACKED_BEFORE_KILL {
            break;
        }
        if let Ok(Some(status)) = producer.try_wait() {
            panic!("crash_producer.py exited early ({status}) after {n} acks");
        }
        if Instant::now() > deadline {
            let _ = producer.kill();
            panic!("only {n} records acknowledged within 60 s");
        }
        thread::sleep(Duration::from_millis(20));
    }
    assert!(
        matches!(producer.try_wait(), Ok(None)),
        "the producer must still be producing when the broker is killed"
    );
    broker.kill9();

    // Let the producer notice, then stop it; it exits on its own after SIGTERM.
    thread::sleep(Duration::from_millis(500));
    send_signal(producer.id(), "TERM");
    let status = wait_timeout(&mut producer, Duration::from_secs(30));
    if status.is_none() {
        let _ = producer.kill();
        let _ = producer.wait();
    }
    let out = producer
        .wait_with_output()
        .map(|o| {
            format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            )
        })
        .unwrap_or_default();
    let acked = acked_lines(&ack_file);
    eprintln!(
        "crash_producer: {} acknowledged; exit {status:?}; output: {out}",
        acked.len()
    );
    assert!(acked.len() >= ACKED_BEFORE_KILL);

    broker.restart();
    let consumed = CONFLUENT.consume(&broker, &topic);
    let stored: HashMap<(i32, i64), &str> = consumed
        .iter()
        .map(|r| ((r.partition, r.offset), r.value.as_deref().unwrap_or("")))
        .collect();
    assert_eq!(stored.len(), consumed.len(), "an offset was read twice");
    let mut missing = Vec::new();
    for (p, o, v) in &acked {
        match stored.get(&(*p, *o)) {
            Some(got) if got == v => {}
            Some(got) => panic!("partition {p} offset {o}: acknowledged {v:?}, read back {got:?}"),
            None => missing.push((*p, *o)),
        }
    }
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged records lost after kill -9, e.g. {:?}",
        missing.len(),
        acked.len(),
        &missing[..missing.len().min(10)]
    );
    // What was read back is a gapless log per partition, in produce order.
    let mut by_partition: HashMap<i32, Vec<&check::Rec>> = HashMap::new();
    for r in &consumed {
        by_partition.entry(r.partition).or_default().push(r);
    }
    for (p, recs) in by_partition {
        for (i, r) in recs.iter().enumerate() {
            assert_eq!(
                r.offset, i as i64,
                "partition {p}: gap in offsets after restart"
            );
        }
    }
    check::assert_keys_stick_to_partitions(&consumed);
}

/// This broker's recovery point of `topic`-0 from its `recovery-point-offset-checkpoint`
/// (written every second when it moved): the offset below which the log is fsynced.
fn recovery_point(broker: &Broker, topic: &str) -> i64 {
    let file = broker.data_dir().join("recovery-point-offset-checkpoint");
    let text = std::fs::read_to_string(file).unwrap_or_default();
    text.lines()
        .filter_map(|l| {
            let mut it = l.split(' ');
            match (it.next(), it.next(), it.next()) {
                (Some(t), Some("0"), Some(o)) if t == topic => o.parse().ok(),
                _ => None,
            }
        })
        .next()
        .unwrap_or(0)
}

/// Waits up to 30 s for `topic`-0's recovery point to reach `offset`.
fn wait_recovery_point(broker: &Broker, topic: &str, offset: i64, why: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while recovery_point(broker, topic) < offset {
        assert!(
            Instant::now() < deadline,
            "{topic}: recovery point {} after 30 s, not {offset}: {why}",
            recovery_point(broker, topic)
        );
        thread::sleep(Duration::from_millis(100));
    }
}

/// Kafka's flush policy on a real broker: acks=1 records sent to a topic with
/// `flush.messages=1` are fsynced (the recovery point reaches their end) while a plain topic's
/// stay in the page cache (gregor's default fsyncs before acks=all answers only); then a
/// cluster-wide `log.flush.interval.ms=200` has the plain topic flushed too, without a restart.
#[test]
fn flush_messages_and_the_dynamic_flush_interval_fsync_acks_1_records() {
    const RECORDS: i64 = 500;
    let broker = Broker::start();
    let b = broker.bootstrap();
    let (each, plain) = (unique_topic("flush-each"), unique_topic("flush-plain"));
    let create = |topic: &str, configs: &[&str]| {
        let mut args = vec!["topics", "create", topic, "--partitions", "1"];
        for c in configs {
            args.extend(["--config", c]);
        }
        gregor_cli_ok(&b, &args);
    };
    create(&each, &["flush.messages=1"]);
    create(&plain, &[]);
    let records = RECORDS.to_string();
    for topic in [&each, &plain] {
        gregor_cli_ok(
            &b,
            &[
                "perf",
                "produce",
                "--topic",
                topic,
                "--num-records",
                &records,
                "--record-size",
                "100",
                "--acks",
                "1",
            ],
        );
    }
    wait_recovery_point(&broker, &each, RECORDS, "flush.messages=1 did not fsync");
    // Two checkpoint intervals more: the plain topic's records are still not fsynced.
    thread::sleep(Duration::from_secs(2));
    assert_eq!(
        recovery_point(&broker, &plain),
        0,
        "the plain topic's acks=1 records were fsynced"
    );
    gregor_cli_ok(
        &b,
        &[
            "configs",
            "alter",
            "--broker-defaults",
            "--set",
            "log.flush.interval.ms=200",
        ],
    );
    wait_recovery_point(
        &broker,
        &plain,
        RECORDS,
        "the dynamic log.flush.interval.ms did not reach the topic",
    );
}

/// `preallocate=true` on a real broker: a new topic's segment has its whole `segment.bytes`
/// reserved on disk (its size still 0); a topic without it reserves nothing before its first
/// append; set on the plain topic with `gregor configs alter`, the next segment is reserved.
#[test]
fn a_preallocated_topic_reserves_its_segments() {
    use std::os::unix::fs::MetadataExt;
    const SEGMENT: u64 = 4 << 20;
    let broker = Broker::start();
    let b = broker.bootstrap();
    let (reserved, plain) = (unique_topic("prealloc"), unique_topic("prealloc-plain"));
    let segment = SEGMENT.to_string();
    for (topic, preallocate) in [(&reserved, "true"), (&plain, "false")] {
        gregor_cli_ok(
            &b,
            &[
                "topics",
                "create",
                topic,
                "--partitions",
                "1",
                "--config",
                &format!("segment.bytes={segment}"),
                "--config",
                &format!("preallocate={preallocate}"),
            ],
        );
    }
    let on_disk = |topic: &str, base: u64| {
        let path = broker
            .data_dir()
            .join(format!("{topic}-0"))
            .join(format!("{base:020}.log"));
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(meta) = std::fs::metadata(&path) {
                return (meta.len(), meta.blocks() * 512);
            }
            assert!(Instant::now() < deadline, "{} not created", path.display());
            thread::sleep(Duration::from_millis(100));
        }
    };
    let (len, held) = on_disk(&reserved, 0);
    assert_eq!(len, 0);
    assert!(held >= SEGMENT, "a preallocated segment holds {held} bytes");
    let (len, held) = on_disk(&plain, 0);
    assert_eq!((len, held), (0, 0), "the plain topic's segment");
    gregor_cli_ok(
        &b,
        &[
            "configs",
            "alter",
            "--topic",
            &plain,
            "--set",
            "preallocate=true",
        ],
    );
    // Past one segment: the plain topic's next one is created with the setting.
    gregor_cli_ok(
        &b,
        &[
            "perf",
            "produce",
            "--topic",
            &plain,
            "--num-records",
            "50",
            "--record-size",
            "100000",
            "--acks",
            "1",
        ],
    );
    let dir = broker.data_dir().join(format!("{plain}-0"));
    let deadline = Instant::now() + Duration::from_secs(30);
    let next = loop {
        let mut bases: Vec<u64> = std::fs::read_dir(&dir)
            .map(|d| {
                d.filter_map(|e| {
                    let name = e.ok()?.file_name().into_string().ok()?;
                    name.strip_suffix(".log")?.parse().ok()
                })
                .collect()
            })
            .unwrap_or_default();
        bases.sort();
        if let Some(&last) = bases.last().filter(|&&l| l > 0) {
            break last;
        }
        assert!(Instant::now() < deadline, "the plain topic did not roll");
        thread::sleep(Duration::from_millis(100));
    };
    let (_, held) = on_disk(&plain, next);
    assert!(
        held >= SEGMENT,
        "the new segment holds {held} bytes after the alter"
    );
}
