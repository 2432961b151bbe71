//! The idempotent producer end to end, with librdkafka (confluent-kafka,
//! `enable.idempotence=true`):
//!
//! - `idempotent_producer_across_a_kill9_stores_every_record_once_in_order`: 10 000 records into
//!   one partition with a kill -9 and restart of the broker in the middle; the producer retries
//!   through it, and the log holds every record exactly once, in produce order (the retried
//!   batches the broker had already stored are recognised after recovery, from the producer
//!   state snapshots and the log tail).
//! - `idempotent_producer_survives_a_leader_kill_without_duplicates`: the same in a 3-node
//!   cluster (RF=3) while the partition's leader is killed: the new leader rebuilt the same
//!   producer state from the batches it replicated.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use gregor_e2e::broker::wait_timeout;
use gregor_e2e::check::Rec;
use gregor_e2e::client::CONFLUENT;
use gregor_e2e::cluster::Cluster;
use gregor_e2e::{python, python_script, run_python_json, unique_topic, Broker};
use serde_json::Value;

const RECORDS: usize = 10_000;
const CLIENT_TIMEOUT: Duration = Duration::from_secs(120);

fn start_producer(bootstrap: &str, topic: &str, progress: &Path) -> Child {
    Command::new(python())
        .arg("-u")
        .arg("-B")
        .arg(python_script("idempotent_producer.py"))
        .arg(bootstrap)
        .arg(topic)
        .arg(progress)
        .arg("--count")
        .arg(RECORDS.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start idempotent_producer.py")
}

fn acked(progress: &Path) -> usize {
    std::fs::read_to_string(progress)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

fn wait_for_acks(producer: &mut Child, progress: &Path, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while acked(progress) < n {
        if let Ok(Some(status)) = producer.try_wait() {
            panic!(
                "the producer exited early ({status}) after {} acks",
                acked(progress)
            );
        }
        assert!(Instant::now() < deadline, "{n} acks not within 60 s");
        thread::sleep(Duration::from_millis(10));
    }
}

/// Waits for the producer to finish; its JSON report.
fn finish(mut producer: Child) -> Value {
    if wait_timeout(&mut producer, CLIENT_TIMEOUT + Duration::from_secs(30)).is_none() {
        let _ = producer.kill();
    }
    let out = producer.wait_with_output().expect("producer output");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "producer failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("report {stdout:?}: {e}"))
}

fn index_of(r: &Rec) -> usize {
    r.value
        .as_deref()
        .and_then(|v| v.get(1..8))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("not a test value: {r:?}"))
}

/// Every index `0..RECORDS` exactly once, in offset order, offsets gapless from 0.
fn assert_exactly_once_in_order(consumed: &[Rec]) {
    let indexes: Vec<usize> = consumed.iter().map(index_of).collect();
    let mut seen = vec![0u32; RECORDS];
    for &i in &indexes {
        seen[i] += 1;
    }
    let duplicated: Vec<usize> = (0..RECORDS).filter(|&i| seen[i] > 1).collect();
    let missing: Vec<usize> = (0..RECORDS).filter(|&i| seen[i] == 0).collect();
    assert!(
        duplicated.is_empty() && missing.is_empty(),
        "{} duplicated (e.g. {:?}), {} missing (e.g. {:?})",
        duplicated.len(),
        &duplicated[..duplicated.len().min(10)],
        missing.len(),
        &missing[..missing.len().min(10)]
    );
    assert!(
        indexes.windows(2).all(|w| w[0] < w[1]),
        "records out of produce order"
    );
    for (n, r) in consumed.iter().enumerate() {
        assert_eq!(r.offset, n as i64, "offsets gapless from 0");
    }
}

fn assert_all_acked(report: &Value) {
    assert_eq!(
        (report["acked"].as_u64(), report["failed"].as_u64()),
        (Some(RECORDS as u64), Some(0)),
        "every record acknowledged: {report}"
    );
}

#[test]
fn idempotent_producer_across_a_kill9_stores_every_record_once_in_order() {
    let mut broker = Broker::start();
    let topic = unique_topic("idempotent");
    CONFLUENT.create_topic(&broker, &topic, 1);
    let dir = tempfile::tempdir().expect("temp dir");
    let progress = dir.path().join("progress");
    let mut producer = start_producer(&broker.bootstrap(), &topic, &progress);
    wait_for_acks(&mut producer, &progress, RECORDS / 3);
    assert!(
        matches!(producer.try_wait(), Ok(None)),
        "still producing at the kill"
    );
    broker.restart(); // kill -9, then start on the same data dir and port
    let report = finish(producer);
    assert_all_acked(&report);
    let consumed = CONFLUENT.consume(&broker, &topic);
    assert_exactly_once_in_order(&consumed);
}

fn cluster_client(bootstrap: &str, args: &[&str]) -> Value {
    let mut all = vec![bootstrap];
    all.extend_from_slice(args);
    run_python_json("cluster_client.py", &all, Duration::from_secs(90))
}

/// Partition 0's leader and the broker count, as `bootstrap` sees them.
fn describe(bootstrap: &str, topic: &str) -> (i32, usize, usize) {
    let doc = cluster_client(bootstrap, &["describe", topic]);
    let brokers = doc["brokers"].as_array().map_or(0, Vec::len);
    let p = &doc["partitions"]["0"];
    let leader = p["leader"].as_i64().unwrap_or(-1) as i32;
    let isr = p["isr"].as_array().map_or(0, Vec::len);
    (leader, isr, brokers)
}

#[test]
fn idempotent_producer_survives_a_leader_kill_without_duplicates() {
    let mut cluster = Cluster::start(3, &[]);
    let bootstrap = cluster.bootstrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while describe(&bootstrap, "__consumer_offsets").2 < 3 {
        assert!(
            Instant::now() < deadline,
            "cluster not formed:\n{}",
            cluster.logs()
        );
        thread::sleep(Duration::from_millis(200));
    }
    let topic = unique_topic("idempotent-failover");
    cluster_client(
        &bootstrap,
        &[
            "create-topic",
            &topic,
            "1",
            "3",
            "--config",
            "min.insync.replicas=2",
        ],
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let progress = dir.path().join("progress");
    let mut producer = start_producer(&bootstrap, &topic, &progress);
    wait_for_acks(&mut producer, &progress, RECORDS / 3);
    let (leader, isr, _) = describe(&bootstrap, &topic);
    assert_eq!(isr, 3, "a full ISR before the kill");
    cluster.kill9(leader);
    let report = finish(producer);
    assert_all_acked(&report);
    let live: Vec<String> = cluster
        .ids()
        .into_iter()
        .filter(|&id| id != leader)
        .map(|id| cluster.node(id).addr.to_string())
        .collect();
    let doc = run_python_json(
        "confluent_client.py",
        &[&live.join(","), "consume", &topic],
        CLIENT_TIMEOUT,
    );
    let consumed = gregor_e2e::check::records(&doc, "records");
    assert_exactly_once_in_order(&consumed);
}
