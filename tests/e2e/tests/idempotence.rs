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
use gregor_e2e::cluster_client::{describe, new_leader_after_kill, replicated_topic};
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

    // `gregor producers describe`: the partition keeps the producer (rebuilt after the
    // kill -9), with no open transaction.
    let out = Command::new(gregor_e2e::broker::gregor_bin())
        .args([
            "producers",
            "describe",
            "--topic",
            &topic,
            "--partition",
            "0",
        ])
        .args(["--bootstrap-server", &broker.bootstrap()])
        .output()
        .expect("run gregor producers describe");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    let rows: Vec<Vec<&str>> = text
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert!(!rows.is_empty(), "{text}");
    assert!(rows.iter().all(|r| r.len() == 6 && r[5] == "-"), "{text}");
}

#[test]
fn idempotent_producer_survives_a_leader_kill_without_duplicates() {
    let mut cluster = Cluster::start(3, &[]);
    let bootstrap = cluster.bootstrap();
    let topic = unique_topic("idempotent-failover");
    replicated_topic(&cluster, &topic);
    let dir = tempfile::tempdir().expect("temp dir");
    let progress = dir.path().join("progress");
    let mut producer = start_producer(&bootstrap, &topic, &progress);
    wait_for_acks(&mut producer, &progress, RECORDS / 3);
    let (_, parts) = describe(&bootstrap, &topic);
    let p0 = &parts[&0];
    assert_eq!(p0.isr.len(), 3, "a full ISR before the kill");
    let leader = p0.leader;
    cluster.kill9(leader);
    let report = finish(producer);
    assert_all_acked(&report);
    let (live, _) = new_leader_after_kill(&cluster, &topic, leader);
    let doc = run_python_json(
        "confluent_client.py",
        &[&live, "consume", &topic],
        CLIENT_TIMEOUT,
    );
    let consumed = gregor_e2e::check::records(&doc, "records");
    assert_exactly_once_in_order(&consumed);
}

/// A batch from producer `pid` at `epoch` with sequences from `seq` (`n` records).
fn idempotent_batch(pid: i64, epoch: i16, seq: i32, n: usize) -> Vec<u8> {
    gregor_e2e::raw::producer_batch(pid, epoch, seq, n, false)
}

/// Raw produces as a hostile or confused idempotent producer would send them: each gets Kafka's
/// error code for its partition, nothing already stored changes, the broker stays up; an
/// InitProducerId with a transactional id goes to the transaction coordinator, which exists
/// once FindCoordinator created `__transaction_state`.
#[test]
fn bad_sequences_and_epochs_get_kafkas_error_codes() {
    use gregor_e2e::raw::RawConn;
    use kafka_protocol::messages::{
        ApiKey, FindCoordinatorRequest, InitProducerIdRequest, ProducerId, TransactionalId,
    };
    use kafka_protocol::protocol::StrBytes;

    const OUT_OF_ORDER_SEQUENCE_NUMBER: i16 = 45;
    const INVALID_PRODUCER_EPOCH: i16 = 47;
    const COORDINATOR_NOT_AVAILABLE: i16 = 15;
    const NOT_COORDINATOR: i16 = 16;

    let broker = Broker::start();
    let topic = unique_topic("idempotent-bad");
    let mut conn = RawConn::connect(broker.addr());
    assert_eq!(conn.create_topic(&topic, 1), 0);
    let advertised = conn
        .api_versions()
        .api_keys
        .iter()
        .find(|k| k.api_key == ApiKey::InitProducerId as i16)
        .map(|k| (k.min_version, k.max_version));
    assert_eq!(advertised, Some((0, 5)), "InitProducerId v0-5 advertised");
    let v = 4;
    let init = conn
        .request(
            v,
            &InitProducerIdRequest::default()
                .with_transactional_id(None)
                .with_transaction_timeout_ms(60_000)
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1),
        )
        .expect("InitProducerId");
    assert_eq!((init.error_code, init.producer_epoch), (0, 0));
    let pid = init.producer_id.0;
    assert!(pid >= 0);

    let produce = |conn: &mut RawConn, epoch: i16, seq: i32, n: usize| {
        conn.produce(&topic, 0, idempotent_batch(pid, epoch, seq, n))
    };
    assert_eq!(produce(&mut conn, 0, 0, 3), (0, 0));
    assert_eq!(produce(&mut conn, 0, 3, 2), (0, 3));
    // A retry: the original base offset, nothing appended.
    assert_eq!(produce(&mut conn, 0, 0, 3), (0, 0));
    // A gap, a replay of part of a batch, a fenced epoch, a new epoch not at 0.
    assert_eq!(produce(&mut conn, 0, 9, 1).0, OUT_OF_ORDER_SEQUENCE_NUMBER);
    assert_eq!(produce(&mut conn, 0, 1, 1).0, OUT_OF_ORDER_SEQUENCE_NUMBER);
    assert_eq!(produce(&mut conn, 1, 7, 1).0, OUT_OF_ORDER_SEQUENCE_NUMBER);
    assert_eq!(produce(&mut conn, 1, 0, 1), (0, 5));
    assert_eq!(produce(&mut conn, 0, 5, 1).0, INVALID_PRODUCER_EPOCH);
    // A producer id the broker never issued, near the sequence wrap: accepted (unknown
    // producers start anywhere, as in Kafka 4.x), and its sequence wraps to 0.
    let stranger = |seq: i32, n: usize| idempotent_batch(i64::MAX - 1, 0, seq, n);
    assert_eq!(conn.produce(&topic, 0, stranger(i32::MAX - 1, 2)), (0, 6));
    assert_eq!(conn.produce(&topic, 0, stranger(0, 1)), (0, 8));
    assert_eq!(conn.log_end_offset(&topic, 0), 9);

    let init_txn = |conn: &mut RawConn| {
        conn.request(
            v,
            &InitProducerIdRequest::default()
                .with_transactional_id(Some(TransactionalId(StrBytes::from_static_str("txn"))))
                .with_transaction_timeout_ms(60_000)
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1),
        )
        .expect("InitProducerId with a transactional id")
    };
    // No `__transaction_state` yet: no coordinator here.
    assert_eq!(init_txn(&mut conn).error_code, NOT_COORDINATOR);
    // A transactional client asks for its coordinator first: the first lookup creates the
    // topic (COORDINATOR_NOT_AVAILABLE meanwhile), a later one finds this broker.
    let find = |conn: &mut RawConn| {
        conn.request(
            3,
            &FindCoordinatorRequest::default()
                .with_key(StrBytes::from_static_str("txn"))
                .with_key_type(1),
        )
        .expect("FindCoordinator for a transactional id")
    };
    assert_eq!(find(&mut conn).error_code, COORDINATOR_NOT_AVAILABLE);
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while find(&mut conn).error_code != 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "no transaction coordinator"
        );
        thread::sleep(Duration::from_millis(100));
    }
    let txn = loop {
        let txn = init_txn(&mut conn);
        if txn.error_code == 0 || std::time::Instant::now() > deadline {
            break txn;
        }
        thread::sleep(Duration::from_millis(100));
    };
    assert_eq!((txn.error_code, txn.producer_epoch), (0, 0));

    // Everything stored reads back: 9 records, the broker still serves.
    let consumed = CONFLUENT.consume(&broker, &topic);
    assert_eq!(consumed.len(), 9);
}
