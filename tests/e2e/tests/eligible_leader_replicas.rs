//! Eligible leader replicas (KIP-966) on real processes: one controller-only node and four
//! brokers, a topic on brokers 2, 3 and 4 with `min.insync.replicas=2`, acks=all records from
//! confluent-kafka, and broker 5 (no replica) to ask.
//!
//! - `a_cleanly_stopped_replica_leads_once_the_isr_is_gone`: the followers are stopped with
//!   SIGTERM one after the other; the second leaves the ISR below min ISR and becomes an
//!   eligible leader replica (DescribeTopicPartitions and `kafka-topics.sh --describe` show
//!   it). The leader is killed -9: the ISR empties and the partition waits, with the ELR and
//!   the last known leader kept (`kafka-topics.sh --describe` and `gregor topics describe`
//!   show them). The eligible replica comes back (its clean-shutdown marker proves its stop
//!   was clean) and leads; with the first follower back in its ISR every acknowledged record
//!   is readable while the killed leader is still down. The killed leader comes back without
//!   that proof, does not lead, catches up and rejoins the ISR. Before ELR the partition
//!   stayed offline until the last ISR member came back.
//!
//! Run: `cargo test -p gregor-e2e --test eligible_leader_replicas` (after
//! `cargo build -p gregor-cli`; needs the toolbox for `kafka-topics.sh`).

use std::thread;
use std::time::Duration;

use gregor_e2e::broker::gregor_cli_ok;
use gregor_e2e::cluster::{Cluster, Role};
use gregor_e2e::cluster_client::{
    acked_lines, assert_acknowledged_readable, start_producer, stop_producer, wait_for,
    wait_for_brokers,
};
use gregor_e2e::kafka_tools::Toolbox;
use gregor_e2e::raw::{topic_name, RawConn};
use kafka_protocol::messages::describe_topic_partitions_request::TopicRequest;
use kafka_protocol::messages::DescribeTopicPartitionsRequest;

const TOPIC: &str = "elr";

/// (leader, ISR, ELR, last known ELR).
type State = (i32, Vec<i32>, Vec<i32>, Vec<i32>);

/// Partition 0 as broker `at` describes it (DescribeTopicPartitions, KIP-966's fields):
/// (leader, ISR, ELR, last known ELR).
fn state(cluster: &Cluster, at: i32) -> Option<State> {
    let mut conn = RawConn::connect(cluster.node(at).addr);
    let req = DescribeTopicPartitionsRequest::default()
        .with_topics(vec![TopicRequest::default().with_name(topic_name(TOPIC))])
        .with_response_partition_limit(10);
    let resp = conn.request(0, &req).ok()?;
    let p = resp.topics.first()?.partitions.first()?;
    let ids = |v: &[kafka_protocol::messages::BrokerId]| v.iter().map(|b| b.0).collect();
    Some((
        p.leader_id.0,
        ids(&p.isr_nodes),
        ids(p.eligible_leader_replicas.as_deref().unwrap_or_default()),
        ids(p.last_known_elr.as_deref().unwrap_or_default()),
    ))
}

fn wait_state(cluster: &Cluster, what: &str, ok: impl Fn(&State) -> bool) -> State {
    wait_for(cluster, what, Duration::from_secs(40), || {
        state(cluster, 5).filter(|s| ok(s))
    })
}

#[test]
fn a_cleanly_stopped_replica_leads_once_the_isr_is_gone() {
    use Role::{Broker, Controller};
    let mut cluster = Cluster::start_with_roles(
        &[Controller, Broker, Broker, Broker, Broker],
        &["offsets.topic.replication.factor=1"],
    );
    wait_for_brokers(&cluster, 4);
    let toolbox = Toolbox::installed();
    let observer = cluster.node(5).addr.to_string();
    let topics = |args: &[&str]| {
        let mut all = vec!["--bootstrap-server", observer.as_str()];
        all.extend_from_slice(args);
        toolbox.run("kafka-topics.sh", &all, None, Duration::from_secs(60))
    };
    let created = topics(&[
        "--create",
        "--topic",
        TOPIC,
        "--replica-assignment",
        "2:3:4",
        "--config",
        "min.insync.replicas=2",
    ]);
    assert!(
        created.stdout.contains("Created topic"),
        "{}",
        created.transcript()
    );
    let (leader, isr, _, _) = wait_state(&cluster, "the topic led with a whole ISR", |s| {
        s.0 > 0 && s.1.len() == 3
    });
    let followers: Vec<i32> = isr.iter().copied().filter(|&b| b != leader).collect();
    let (first, second) = (followers[0], followers[1]);

    // acks=all records while every replica is in.
    let dir = tempfile::tempdir().expect("temp dir");
    let ack_file = dir.path().join("acked.txt");
    let producer = start_producer(&observer, TOPIC, &ack_file, 30);
    wait_for(&cluster, "300 acks", Duration::from_secs(30), || {
        (acked_lines(&ack_file).len() >= 300).then_some(())
    });
    eprintln!("producer: {}", stop_producer(producer));
    let acked = acked_lines(&ack_file);

    // The first follower stops: ISR 2 = min ISR, nobody eligible.
    assert!(
        cluster.stop(first).success(),
        "{}",
        cluster.node(first).logs()
    );
    let s = wait_state(&cluster, "the first follower out of the ISR", |s| {
        !s.1.contains(&first)
    });
    assert!(s.2.is_empty(), "an ISR at min ISR keeps no ELR: {s:?}");
    // The second stops: below min ISR it stays eligible.
    assert!(
        cluster.stop(second).success(),
        "{}",
        cluster.node(second).logs()
    );
    let s = wait_state(&cluster, "the second follower eligible", |s| {
        s.1 == vec![leader]
    });
    assert_eq!(s.2, vec![second], "ELR after the second stop: {s:?}");

    // The leader is killed: the ISR empties, the partition waits for its eligible replicas.
    cluster.kill9(leader);
    let s = wait_state(&cluster, "no leader and an empty ISR", |s| {
        s.0 == -1 && s.1.is_empty()
    });
    let mut elr = s.2.clone();
    elr.sort_unstable();
    let mut want = vec![leader, second];
    want.sort_unstable();
    assert_eq!((elr, s.3.clone()), (want, vec![leader]), "{s:?}");
    let described = topics(&["--describe", "--topic", TOPIC]);
    let line = described
        .stdout
        .lines()
        .find(|l| l.contains("Partition: 0"))
        .unwrap_or_default()
        .to_string();
    eprintln!("kafka-topics.sh --describe: {line}");
    assert!(
        line.contains("Leader: none") && line.contains("Elr: ") && line.contains("LastKnownElr: "),
        "{}",
        described.transcript()
    );

    // gregor's own CLI: two more columns while a partition has eligible replicas.
    let ours = gregor_cli_ok(&observer, &["topics", "describe", TOPIC]);
    let row = ours
        .lines()
        .find(|l| l.starts_with(TOPIC) && l.contains(" none "))
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .unwrap_or_default();
    eprintln!("gregor topics describe: {row}");
    assert!(ours.contains("LAST-KNOWN-ELR"), "{ours}");
    assert!(row.ends_with(&format!(" {leader}")), "{ours}");

    // The second follower comes back from its clean stop and leads, with an ISR of itself:
    // below min ISR its high watermark stays where it was (as Kafka's), so what its log has
    // beyond it waits for a second replica. The first follower comes back and joins: every
    // acknowledged record is readable while the killed leader is still down.
    cluster.restart(second);
    let s = wait_state(&cluster, "the eligible replica leading", |s| s.0 == second);
    assert_eq!(s.1, vec![second], "{s:?}");
    cluster.restart(first);
    let s = wait_state(&cluster, "the first follower back in the ISR", |s| {
        s.1.len() == 2
    });
    assert_eq!(s.0, second, "{s:?}");
    assert!(s.2.is_empty(), "an ISR at min ISR keeps no ELR: {s:?}");
    assert_acknowledged_readable(&observer, TOPIC, &acked, "led from the ELR");

    // The killed leader comes back without proof of a clean stop: it does not lead; it
    // catches up and rejoins the ISR.
    cluster.restart(leader);
    let s = wait_state(&cluster, "the ISR whole again", |s| s.1.len() == 3);
    assert_eq!(s.0, second, "{s:?}");
    assert!(s.2.is_empty() && s.3.is_empty(), "{s:?}");
    thread::sleep(Duration::from_millis(500));
    assert_acknowledged_readable(&observer, TOPIC, &acked, "after the ISR healed");
}
