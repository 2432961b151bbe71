//! A deleted topic's committed offsets, on gregor and on a real Apache Kafka 4.4 broker side by
//! side (the toolbox's jars): the same steps on both, the answers compared.
//!
//! ```text
//!   topics keep (2 partitions) and gone (1), records in each
//!   group two-topics commits keep-0, keep-1 and gone-0; group one-topic commits gone-0 only
//!   DeleteTopics gone (the admin API)
//!     ─► OffsetFetch two-topics: only keep's offsets; gone-0 has none
//!     ─► one-topic (Empty, no offsets left) removed at the next expiration check
//!        (offsets.retention.check.interval.ms=2000 on both)
//!     ─► kafka-consumer-groups.sh --describe of both groups: the same output
//!   gregor killed (-9) and restarted ─► the same answers (tombstones in __consumer_offsets)
//!   gone created again, 3 records ─► one-topic has no offset there: a consumer of the group
//!     starts from its reset policy (earliest: all 3 records) and commits 3
//! ```
//!
//! Needs the toolbox (`scripts/toolbox`); without it the test fails saying so.

use std::net::SocketAddr;
use std::thread;
use std::time::{Duration, Instant};

use gregor_e2e::kafka_peer::KafkaPeer;
use gregor_e2e::kafka_tools::{ToolRun, Toolbox};
use gregor_e2e::raw::{code, simple_batch, topic_name, RawConn};
use gregor_e2e::Broker;
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::{
    DeleteTopicsRequest, DescribeGroupsRequest, FindCoordinatorRequest, GroupId,
    OffsetCommitRequest, OffsetFetchRequest,
};
use kafka_protocol::protocol::StrBytes;

const KEEP: &str = "keep";
const GONE: &str = "gone";
const TWO_TOPICS: &str = "two-topics";
const ONE_TOPIC: &str = "one-topic";
/// Both brokers check for expired offsets and empty groups every 2 s.
const CHECK_INTERVAL: &str = "offsets.retention.check.interval.ms=2000";
const TOOL_TIMEOUT: Duration = Duration::from_secs(90);
const WAIT: Duration = Duration::from_secs(30);

/// Every committed offset of `group` (OffsetFetch v8, all topics): sorted
/// `(topic, partition, offset)`, or the group's error.
fn fetch_all(conn: &mut RawConn, group: &str) -> Result<Vec<(String, i32, i64)>, i16> {
    fetch(conn, group, None)
}

/// OffsetFetch v8 of `group`, `topics` as `(topic, partition)` or all with `None`.
fn fetch(
    conn: &mut RawConn,
    group: &str,
    topics: Option<&[(&str, i32)]>,
) -> Result<Vec<(String, i32, i64)>, i16> {
    let req = OffsetFetchRequest::default().with_groups(vec![OffsetFetchRequestGroup::default()
        .with_group_id(GroupId(StrBytes::from_string(group.to_owned())))
        .with_topics(topics.map(|ts| {
            ts.iter()
                .map(|&(t, p)| {
                    OffsetFetchRequestTopics::default()
                        .with_name(topic_name(t))
                        .with_partition_indexes(vec![p])
                })
                .collect()
        }))]);
    let resp = conn.request(8, &req).expect("OffsetFetch v8");
    let g = &resp.groups[0];
    if g.error_code != code::NONE {
        return Err(g.error_code);
    }
    let mut out: Vec<(String, i32, i64)> = Vec::new();
    for t in &g.topics {
        for p in &t.partitions {
            if p.error_code != code::NONE {
                return Err(p.error_code);
            }
            out.push((t.name.to_string(), p.partition_index, p.committed_offset));
        }
    }
    out.sort();
    Ok(out)
}

/// A standalone OffsetCommit v9 (generation -1) of `(topic, partition, offset)`.
fn commit(conn: &mut RawConn, group: &str, offsets: &[(&str, i32, i64)]) {
    let req = OffsetCommitRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group.to_owned())))
        .with_generation_id_or_member_epoch(-1)
        .with_topics(
            offsets
                .iter()
                .map(|&(t, p, o)| {
                    OffsetCommitRequestTopic::default()
                        .with_name(topic_name(t))
                        .with_partitions(vec![OffsetCommitRequestPartition::default()
                            .with_partition_index(p)
                            .with_committed_offset(o)
                            .with_committed_leader_epoch(-1)])
                })
                .collect(),
        );
    let resp = conn.request(9, &req).expect("OffsetCommit v9");
    for t in &resp.topics {
        for p in &t.partitions {
            assert_eq!(
                p.error_code,
                code::NONE,
                "commit {}-{}",
                t.name.as_str(),
                p.partition_index
            );
        }
    }
}

/// The group's state as DescribeGroups v5 names it ("Dead" once it is gone).
fn group_state(conn: &mut RawConn, group: &str) -> String {
    let resp = conn
        .request(
            5,
            &DescribeGroupsRequest::default()
                .with_groups(vec![GroupId(StrBytes::from_string(group.to_owned()))]),
        )
        .expect("DescribeGroups v5");
    resp.groups[0].group_state.to_string()
}

/// Waits until `group`'s coordinator answers FindCoordinator (Kafka creates its offsets topic
/// on the first lookup; a restarted gregor loads its partitions).
fn wait_coordinator(conn: &mut RawConn, group: &str) {
    let deadline = Instant::now() + WAIT;
    loop {
        let resp = conn
            .request(
                4,
                &FindCoordinatorRequest::default()
                    .with_key_type(0)
                    .with_coordinator_keys(vec![StrBytes::from_string(group.to_owned())]),
            )
            .expect("FindCoordinator v4");
        let c = &resp.coordinators[0];
        if c.error_code == code::NONE && fetch_all(conn, group).is_ok() {
            return;
        }
        assert!(Instant::now() < deadline, "no coordinator for {group}");
        thread::sleep(Duration::from_millis(200));
    }
}

/// Produces `n` records to a partition, retrying while it has no leader yet.
fn fill(conn: &mut RawConn, topic: &str, partition: i32, n: usize) {
    let values: Vec<String> = (0..n).map(|i| format!("{topic}-{partition}-{i}")).collect();
    let records: Vec<(&str, &str)> = values.iter().map(|v| ("k", v.as_str())).collect();
    let deadline = Instant::now() + WAIT;
    loop {
        let (error, _) = conn.produce(topic, partition, simple_batch(&records));
        if error == code::NONE {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "produce to {topic}-{partition}: {error}"
        );
        thread::sleep(Duration::from_millis(100));
    }
}

/// Polls `probe` until it gives `want`; returns what it gave last.
fn eventually<T: PartialEq + std::fmt::Debug>(want: &T, mut probe: impl FnMut() -> T) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        let got = probe();
        if &got == want || Instant::now() >= deadline {
            return got;
        }
        thread::sleep(Duration::from_millis(200));
    }
}

/// What a tool run shows a user: its output with blank lines dropped and columns collapsed,
/// or its error line.
fn shown(run: &ToolRun) -> String {
    match run.ok() {
        Ok(out) => out
            .lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .filter(|l| !l.is_empty())
            .collect::<Vec<_>>()
            .join("\n"),
        Err(_) => run.error_in_output().unwrap_or_else(|| run.reason()),
    }
}

/// `kafka-consumer-groups.sh --describe --group <group>` against `bootstrap`.
fn describe(toolbox: &Toolbox, bootstrap: &str, group: &str) -> String {
    let run = toolbox.run(
        "kafka-consumer-groups.sh",
        &[
            "--bootstrap-server",
            bootstrap,
            "--describe",
            "--group",
            group,
        ],
        None,
        TOOL_TIMEOUT,
    );
    shown(&run)
}

/// `f` on both brokers at once (Java starts slowly: the runs overlap), as (kafka, gregor).
fn both<T: Send>(
    kafka: SocketAddr,
    gregor: SocketAddr,
    f: impl Fn(&'static str, SocketAddr) -> T + Sync,
) -> (T, T) {
    thread::scope(|s| {
        let k = s.spawn(|| f("kafka", kafka));
        let g = f("gregor", gregor);
        (k.join().expect("the kafka side panicked"), g)
    })
}

#[test]
fn a_deleted_topic_s_offsets_go_as_on_kafka() {
    let started = Instant::now();
    let toolbox = Toolbox::installed();
    let kafka = KafkaPeer::start_with(&[CHECK_INTERVAL]);
    let mut gregor = Broker::start_with(&[CHECK_INTERVAL]);

    let keep_offsets = vec![(KEEP.to_string(), 0, 5), (KEEP.to_string(), 1, 4)];
    let setup = |name: &str, addr: SocketAddr| {
        let mut conn = RawConn::connect(addr);
        assert_eq!(
            conn.create_topic(KEEP, 2),
            code::NONE,
            "{name}: create {KEEP}"
        );
        assert_eq!(
            conn.create_topic(GONE, 1),
            code::NONE,
            "{name}: create {GONE}"
        );
        fill(&mut conn, KEEP, 0, 10);
        fill(&mut conn, KEEP, 1, 4);
        fill(&mut conn, GONE, 0, 10);
        wait_coordinator(&mut conn, TWO_TOPICS);
        wait_coordinator(&mut conn, ONE_TOPIC);
        commit(
            &mut conn,
            TWO_TOPICS,
            &[(KEEP, 0, 5), (KEEP, 1, 4), (GONE, 0, 7)],
        );
        commit(&mut conn, ONE_TOPIC, &[(GONE, 0, 1)]);
        let resp = conn
            .request(
                6,
                &DeleteTopicsRequest::default()
                    .with_timeout_ms(30_000)
                    .with_topics(vec![
                        DeleteTopicState::default().with_name(Some(topic_name(GONE)))
                    ]),
            )
            .expect("DeleteTopics v6");
        assert_eq!(
            resp.responses[0].error_code,
            code::NONE,
            "{name}: delete {GONE}"
        );
    };
    both(kafka.addr(), gregor.addr(), setup);

    // What each broker answers once the deletion reached its coordinator.
    let after_deletion = |name: &str, addr: SocketAddr| -> Vec<String> {
        let mut conn = RawConn::connect(addr);
        let two = eventually(&Ok(keep_offsets.clone()), || {
            fetch_all(&mut conn, TWO_TOPICS)
        });
        let gone_0 = fetch(&mut conn, TWO_TOPICS, Some(&[(GONE, 0)]));
        let one_offsets = fetch_all(&mut conn, ONE_TOPIC);
        let one_state = eventually(&"Dead".to_string(), || group_state(&mut conn, ONE_TOPIC));
        let two_state = group_state(&mut conn, TWO_TOPICS);
        let _ = name;
        vec![
            format!("{TWO_TOPICS}: {two:?}"),
            format!("{TWO_TOPICS} {GONE}-0: {gone_0:?}"),
            format!("{ONE_TOPIC} after the deletion: {one_offsets:?}"),
            format!("{ONE_TOPIC} state: {one_state}"),
            format!("{TWO_TOPICS} state: {two_state}"),
        ]
    };
    let (on_kafka, on_gregor) = both(kafka.addr(), gregor.addr(), after_deletion);
    assert_eq!(on_gregor, on_kafka, "gregor (left) against Kafka (right)");
    assert_eq!(on_gregor[0], format!("{TWO_TOPICS}: Ok({keep_offsets:?})"));
    assert_eq!(on_gregor[3], format!("{ONE_TOPIC} state: Dead"));

    let describes = |_: &str, addr: SocketAddr| {
        let bootstrap = addr.to_string();
        (
            describe(&toolbox, &bootstrap, TWO_TOPICS),
            describe(&toolbox, &bootstrap, ONE_TOPIC),
        )
    };
    let (on_kafka, on_gregor) = both(kafka.addr(), gregor.addr(), describes);
    assert_eq!(on_gregor, on_kafka, "kafka-consumer-groups.sh --describe");
    assert!(
        on_gregor.0.contains("two-topics keep 0 5 10 5"),
        "{}",
        on_gregor.0
    );
    assert!(!on_gregor.0.contains(GONE), "{}", on_gregor.0);
    assert!(
        on_gregor
            .1
            .contains("GroupIdNotFoundException: Group one-topic not found."),
        "{}",
        on_gregor.1
    );

    // The tombstones are in __consumer_offsets: a restart does not bring the offsets back.
    gregor.restart();
    let mut conn = RawConn::connect(gregor.addr());
    wait_coordinator(&mut conn, TWO_TOPICS);
    assert_eq!(fetch_all(&mut conn, TWO_TOPICS), Ok(keep_offsets.clone()));
    assert_eq!(group_state(&mut conn, ONE_TOPIC), "Dead");
    assert_eq!(fetch_all(&mut conn, ONE_TOPIC), Ok(vec![]));

    // The topic again, under the same name: the group has no offset there, so its consumer
    // starts where its reset policy says (earliest: every record of the new topic).
    let recreate = |name: &str, addr: SocketAddr| {
        let mut conn = RawConn::connect(addr);
        assert_eq!(
            conn.create_topic(GONE, 1),
            code::NONE,
            "{name}: create {GONE} again"
        );
        fill(&mut conn, GONE, 0, 3);
        let before = fetch(&mut conn, ONE_TOPIC, Some(&[(GONE, 0)]));
        let run = toolbox.run(
            "kafka-console-consumer.sh",
            &[
                "--bootstrap-server",
                &addr.to_string(),
                "--topic",
                GONE,
                "--group",
                ONE_TOPIC,
                "--command-property",
                "auto.offset.reset=earliest",
                "--max-messages",
                "3",
                "--timeout-ms",
                "30000",
            ],
            None,
            TOOL_TIMEOUT,
        );
        let read = shown(&run);
        let after = eventually(&Ok(vec![(GONE.to_string(), 0, 3)]), || {
            fetch(&mut conn, ONE_TOPIC, Some(&[(GONE, 0)]))
        });
        vec![
            format!("before: {before:?}"),
            format!("read: {read}"),
            format!("after: {after:?}"),
        ]
    };
    let (on_kafka, on_gregor) = both(kafka.addr(), gregor.addr(), recreate);
    assert_eq!(on_gregor, on_kafka, "the recreated topic");
    assert_eq!(
        on_gregor,
        vec![
            format!("before: Ok([(\"{GONE}\", 0, -1)])"),
            format!("read: {GONE}-0-0\n{GONE}-0-1\n{GONE}-0-2"),
            format!("after: Ok([(\"{GONE}\", 0, 3)])"),
        ]
    );
    eprintln!("took {:.1} s", started.elapsed().as_secs_f64());
}
