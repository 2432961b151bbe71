//! What the multi-process cluster tests do with a [`Cluster`]: confluent-kafka calls through
//! `cluster_client.py` and `confluent_client.py` (create a topic, describe it, produce, read
//! back), a raw Metadata request for a partition's leader, polling with a deadline, the
//! acknowledged-records file of `crash_producer.py`, and the check every cluster test ends
//! with: each acknowledged record reads back exactly as acknowledged, in offset order.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use kafka_protocol::messages::describe_quorum_request::{PartitionData, TopicData};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{DescribeQuorumRequest, MetadataRequest};
use serde_json::Value;

use crate::broker::{send_signal, wait_timeout};
use crate::check::{self, Rec};
use crate::cluster::Cluster;
use crate::raw::{topic_name, RawConn};
use crate::{python, python_script, run_python_json};

pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(90);

pub fn client(bootstrap: &str, args: &[&str]) -> Value {
    let mut all = vec![bootstrap];
    all.extend_from_slice(args);
    run_python_json("cluster_client.py", &all, CLIENT_TIMEOUT)
}

/// The bootstrap string of the nodes in `ids`.
pub fn bootstrap_of(cluster: &Cluster, ids: &[i32]) -> String {
    ids.iter()
        .map(|&id| cluster.node(id).addr.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

/// The bootstrap list of every node but `down` (one that was killed).
pub fn bootstrap_without(cluster: &Cluster, down: i32) -> String {
    let others: Vec<i32> = cluster.ids().into_iter().filter(|&id| id != down).collect();
    bootstrap_of(cluster, &others)
}

/// One partition as Metadata describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionState {
    pub leader: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
}

pub fn ids(v: &Value) -> Vec<i32> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_i64)
                .map(|i| i as i32)
                .collect()
        })
        .unwrap_or_default()
}

/// `(brokers, partitions)` of `topic` as the nodes in `bootstrap` see it.
pub fn describe(bootstrap: &str, topic: &str) -> (Vec<i32>, BTreeMap<i32, PartitionState>) {
    let doc = client(bootstrap, &["describe", topic]);
    let mut parts = BTreeMap::new();
    if let Some(map) = doc.get("partitions").and_then(Value::as_object) {
        for (p, s) in map {
            parts.insert(
                p.parse().expect("partition number"),
                PartitionState {
                    leader: s.get("leader").and_then(Value::as_i64).unwrap_or(-1) as i32,
                    replicas: ids(&s["replicas"]),
                    isr: ids(&s["isr"]),
                },
            );
        }
    }
    (ids(&doc["brokers"]), parts)
}

/// Polls `f` every 200 ms until it returns `Some`, or panics with `what` after `timeout`.
pub fn wait_for<T>(
    cluster: &Cluster,
    what: &str,
    timeout: Duration,
    mut f: impl FnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        if Instant::now() > deadline {
            panic!("{what}: not within {timeout:?}\n{}", cluster.logs());
        }
        thread::sleep(Duration::from_millis(200));
    }
}

/// Partition 0's leader of `topic` as the node at `addr` sees it, from one Metadata request
/// (cheap enough to poll every few milliseconds).
pub fn leader_at(addr: std::net::SocketAddr, topic: &str) -> Option<i32> {
    let mut conn = RawConn::connect(addr);
    let req = MetadataRequest::default().with_topics(Some(vec![
        MetadataRequestTopic::default().with_name(Some(topic_name(topic)))
    ]));
    let resp = conn.request(12, &req).ok()?;
    let p = resp.topics.first()?.partitions.first()?;
    (p.error_code == 0).then_some(p.leader_id.0)
}

/// DescribeQuorum of the metadata log (`__cluster_metadata`, partition 0).
pub fn metadata_quorum_request() -> DescribeQuorumRequest {
    DescribeQuorumRequest::default().with_topics(vec![TopicData::default()
        .with_topic_name(topic_name("__cluster_metadata"))
        .with_partitions(vec![PartitionData::default().with_partition_index(0)])])
}

/// The quorum leader (the active controller) as the node at `addr` reports it in
/// DescribeQuorum v1; -1 when it cannot tell.
pub fn quorum_leader(addr: std::net::SocketAddr) -> i32 {
    let mut conn = RawConn::connect(addr);
    match conn.request(1, &metadata_quorum_request()) {
        Ok(resp) => resp
            .topics
            .first()
            .and_then(|t| t.partitions.first())
            .map_or(-1, |p| p.leader_id.0),
        Err(_) => -1,
    }
}

pub fn create_topic(bootstrap: &str, topic: &str, partitions: i32, rf: i32, configs: &[&str]) {
    let (p, r) = (partitions.to_string(), rf.to_string());
    let mut args = vec!["create-topic", topic, &p, &r];
    for c in configs {
        args.push("--config");
        args.push(c);
    }
    client(bootstrap, &args);
}

/// Waits until partition 0 of `topic` has `n` replicas in its ISR (`what` names the wait in
/// the panic).
pub fn wait_for_isr(
    cluster: &Cluster,
    bootstrap: &str,
    topic: &str,
    n: usize,
    what: &str,
    timeout: Duration,
) {
    wait_for(cluster, what, timeout, || {
        let (_, parts) = describe(bootstrap, topic);
        (parts.get(&0).map(|s| s.isr.len()) == Some(n)).then_some(())
    });
}

/// Waits (up to a minute) until `topic` has `partitions` partitions, each with all `replicas`
/// in its ISR, after `fault`: a fault test's "healed" point.
pub fn wait_for_whole_isrs(
    cluster: &Cluster,
    bootstrap: &str,
    topic: &str,
    partitions: usize,
    replicas: usize,
    fault: &str,
) {
    wait_for(
        cluster,
        &format!("every ISR whole again after {fault}"),
        Duration::from_secs(60),
        || {
            let (_, parts) = describe(bootstrap, topic);
            (parts.len() == partitions && parts.values().all(|s| s.isr.len() == replicas))
                .then_some(())
        },
    );
}

/// `steps` faults drawn from `rng` (`Fault::pick`), one at a time on `cluster`, each held, then
/// healed (`Fault::run`), then waited out until `topic`'s `partitions` partitions have every
/// node back in their ISRs. Each is printed with `label` first, so a failing seed can be told.
pub fn run_seeded_faults(
    cluster: &mut Cluster,
    rng: &mut crate::mutate::Rng,
    steps: usize,
    topic: &str,
    partitions: usize,
    label: &str,
) {
    let ids = cluster.ids();
    let bootstrap = cluster.bootstrap();
    for step in 0..steps {
        let (fault, hold) = crate::cluster::Fault::pick(rng, &ids);
        eprintln!("{label} step {step}: {fault:?} for {hold:?}");
        fault.run(cluster, hold);
        wait_for_whole_isrs(
            cluster,
            &bootstrap,
            topic,
            partitions,
            ids.len(),
            &format!("{label} step {step}: {fault:?}"),
        );
    }
}

/// Waits until the cluster forms: Metadata lists every node.
pub fn wait_for_brokers(cluster: &Cluster, n: usize) {
    let bootstrap = cluster.bootstrap();
    wait_for(
        cluster,
        "Metadata lists every broker",
        Duration::from_secs(30),
        || {
            let (brokers, _) = describe(&bootstrap, "__consumer_offsets");
            (brokers.len() == n).then_some(())
        },
    );
}

/// Waits until the cluster lists its brokers, then creates `topic` with one partition on
/// every node (`min.insync.replicas=2`) and waits for its full ISR; returns the leader.
pub fn replicated_topic(cluster: &Cluster, topic: &str) -> i32 {
    let n = cluster.ids().len();
    wait_for_brokers(cluster, n);
    let bootstrap = cluster.bootstrap();
    create_topic(&bootstrap, topic, 1, n as i32, &["min.insync.replicas=2"]);
    wait_for(cluster, "a full ISR", Duration::from_secs(30), || {
        let (_, parts) = describe(&bootstrap, topic);
        parts
            .get(&0)
            .filter(|s| s.leader >= 0 && s.isr.len() == n)
            .map(|s| s.leader)
    })
}

/// After partition 0's leader `killed` was killed: the bootstrap string of the other nodes
/// and the leader they elect.
pub fn new_leader_after_kill(cluster: &Cluster, topic: &str, killed: i32) -> (String, i32) {
    let live = bootstrap_without(cluster, killed);
    let leader = wait_for(cluster, "a new leader", Duration::from_secs(60), || {
        let (_, parts) = describe(&live, topic);
        parts
            .get(&0)
            .map(|s| s.leader)
            .filter(|&l| l >= 0 && l != killed)
    });
    (live, leader)
}

/// The bytes of a partition's log on one node: its segment files in offset order.
pub fn log_bytes(data_dir: &Path, topic: &str, partition: i32) -> Vec<u8> {
    let dir = data_dir.join(format!("{topic}-{partition}"));
    let mut segments: Vec<_> = std::fs::read_dir(&dir)
        .map(|rd| {
            rd.flatten()
                .map(|e| e.path())
                .filter(|p| p.extension().is_some_and(|x| x == "log"))
                .collect()
        })
        .unwrap_or_default();
    segments.sort();
    let mut out = Vec::new();
    for s in segments {
        out.extend(std::fs::read(&s).unwrap_or_default());
    }
    out
}

/// Waits until every replica's log of every partition holds the same bytes (the followers have
/// fetched everything), and returns the log sizes. Every broker is taken to host a replica;
/// controller-only nodes host none.
pub fn wait_for_identical_replicas(cluster: &Cluster, topic: &str, partitions: i32) -> Vec<usize> {
    wait_for(
        cluster,
        "the replicas' logs are byte-identical",
        Duration::from_secs(30),
        || {
            let mut sizes = Vec::new();
            for p in 0..partitions {
                let logs: Vec<Vec<u8>> = cluster
                    .broker_ids()
                    .iter()
                    .map(|&id| log_bytes(cluster.node(id).data_dir(), topic, p))
                    .collect();
                if logs.iter().any(|l| l != &logs[0]) || logs[0].is_empty() {
                    return None;
                }
                sizes.push(logs[0].len());
            }
            Some(sizes)
        },
    )
}

pub fn consume(bootstrap: &str, topic: &str) -> Vec<Rec> {
    let doc = run_python_json(
        "confluent_client.py",
        &[bootstrap, "consume", topic],
        CLIENT_TIMEOUT,
    );
    check::records(&doc, "records")
}

/// Reads `topic` back and checks what every cluster test promises: each acknowledged record is
/// there exactly as acknowledged, no offset is read twice, and each partition's offsets run from
/// 0 without gaps (nothing lost, changed or reordered).
pub fn assert_acknowledged_readable(
    bootstrap: &str,
    topic: &str,
    acked: &[(i32, i64, String)],
    context: &str,
) {
    let consumed = consume(bootstrap, topic);
    let stored: HashMap<(i32, i64), &str> = consumed
        .iter()
        .map(|r| ((r.partition, r.offset), r.value.as_deref().unwrap_or("")))
        .collect();
    assert_eq!(
        stored.len(),
        consumed.len(),
        "{context}: an offset was read twice"
    );
    for (p, o, v) in acked {
        match stored.get(&(*p, *o)) {
            Some(got) if got == v => {}
            Some(got) => {
                panic!("{context}: partition {p} offset {o}: acknowledged {v:?}, read back {got:?}")
            }
            None => panic!(
                "{context}: partition {p} offset {o} (acknowledged {v:?}) lost; read {} records",
                consumed.len()
            ),
        }
    }
    let mut by_partition: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
    for r in &consumed {
        by_partition.entry(r.partition).or_default().push(r.offset);
    }
    for (p, offsets) in by_partition {
        let expected: Vec<i64> = (0..offsets.len() as i64).collect();
        assert_eq!(
            offsets, expected,
            "{context}: gap or reordering in partition {p}"
        );
    }
}

/// Acknowledged records as crash_producer.py logs them: `(partition, offset, value)`.
pub fn acked_lines(path: &Path) -> Vec<(i32, i64, String)> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    text.split_inclusive('\n')
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

pub fn start_producer(bootstrap: &str, topic: &str, ack_file: &Path, seconds: u32) -> Child {
    Command::new(python())
        .arg("-u")
        .arg("-B")
        .arg(python_script("crash_producer.py"))
        .arg(bootstrap)
        .arg(topic)
        .arg(ack_file)
        .arg("--seconds")
        .arg(seconds.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start crash_producer.py")
}

pub fn stop_producer(mut producer: Child) -> String {
    send_signal(producer.id(), "TERM");
    if wait_timeout(&mut producer, Duration::from_secs(30)).is_none() {
        let _ = producer.kill();
    }
    producer
        .wait_with_output()
        .map(|o| {
            format!(
                "{}{}",
                String::from_utf8_lossy(&o.stdout),
                String::from_utf8_lossy(&o.stderr)
            )
        })
        .unwrap_or_default()
}

/// Makes `leader` lead `topic`-`partition` with all of `replicas` in its ISR: reassigns the
/// partition to `replicas` (`leader` first, the preferred replica) with gregor's CLI, then
/// asks for preferred elections until it leads (ELECTION_NOT_NEEDED once it does).
pub fn make_leader(cluster: &Cluster, topic: &str, partition: i32, leader: i32, replicas: &[i32]) {
    let bootstrap = cluster.bootstrap();
    let mut order = vec![leader];
    order.extend(replicas.iter().copied().filter(|&r| r != leader));
    let order = order
        .iter()
        .map(i32::to_string)
        .collect::<Vec<_>>()
        .join(",");
    let p = partition.to_string();
    let (ok, out, err) = crate::broker::gregor_cli(
        &bootstrap,
        &[
            "topics",
            "reassign",
            "--topic",
            topic,
            "--partition",
            &p,
            "--replicas",
            &order,
        ],
    );
    assert!(ok, "reassign: {out}{err}");
    wait_for(
        cluster,
        &format!("node {leader} to lead {topic}-{partition}"),
        Duration::from_secs(30),
        || {
            let _ = crate::broker::gregor_cli(
                &bootstrap,
                &[
                    "topics",
                    "elect-leaders",
                    "--topic",
                    topic,
                    "--partition",
                    &p,
                ],
            );
            let (_, parts) = describe(&bootstrap, topic);
            parts
                .get(&partition)
                .filter(|s| s.leader == leader && s.isr.len() == replicas.len())
                .map(|_| ())
        },
    );
}

/// Waits (up to a minute) until the producer writing `ack_file` has `n` acknowledgements.
pub fn wait_for_acks(cluster: &Cluster, ack_file: &Path, n: usize, what: &str) {
    wait_for(cluster, what, Duration::from_secs(60), || {
        (acked_lines(ack_file).len() >= n).then_some(())
    })
}
