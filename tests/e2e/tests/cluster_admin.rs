//! The cluster admin APIs over raw frames against the real binary: DescribeCluster,
//! DescribeQuorum, CreatePartitions, ElectLeaders, AlterPartitionReassignments and
//! ListPartitionReassignments (and DescribeLogDirs, DeleteRecords waiting for every live replica), every served version, first on a single node, then on a
//! three-node cluster (three brokers and voters; an RF=3 topic grown; a preferred-leader
//! election after a restart; an RF=1 partition moved to another broker).

use std::thread;
use std::time::{Duration, Instant};

use gregor_e2e::broker::gregor_bin;
use gregor_e2e::cluster::Cluster;
use gregor_e2e::cluster_client::metadata_quorum_request;
use gregor_e2e::raw::{topic_name, RawConn};
use gregor_e2e::Broker;
use kafka_protocol::messages::alter_partition_reassignments_request::{
    ReassignablePartition, ReassignableTopic,
};
use kafka_protocol::messages::create_partitions_request::{
    CreatePartitionsAssignment, CreatePartitionsTopic,
};
use kafka_protocol::messages::create_topics_request::{CreatableReplicaAssignment, CreatableTopic};
use kafka_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::elect_leaders_request::TopicPartitions;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, AlterPartitionReassignmentsResponse, BrokerId,
    CreatePartitionsRequest, CreateTopicsRequest, DeleteRecordsRequest, DeleteTopicsRequest,
    DescribeClusterRequest, DescribeClusterResponse, DescribeLogDirsRequest,
    DescribeQuorumResponse, ElectLeadersRequest, ElectLeadersResponse,
    ListPartitionReassignmentsRequest, ListPartitionReassignmentsResponse, MetadataRequest,
    MetadataResponse,
};

const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
const REQUEST_TIMED_OUT: i16 = 7;
const INVALID_PARTITIONS: i16 = 37;
const INVALID_REPLICA_ASSIGNMENT: i16 = 39;
const ELECTION_NOT_NEEDED: i16 = 84;
const PREFERRED_LEADER_NOT_AVAILABLE: i16 = 80;

fn describe_cluster(c: &mut RawConn, version: i16) -> DescribeClusterResponse {
    c.request(
        version,
        &DescribeClusterRequest::default()
            .with_endpoint_type(1)
            .with_include_fenced_brokers(version >= 2),
    )
    .unwrap_or_else(|e| panic!("DescribeCluster v{version}: {e}"))
}

fn describe_quorum(c: &mut RawConn, version: i16) -> DescribeQuorumResponse {
    c.request(version, &metadata_quorum_request())
        .unwrap_or_else(|e| panic!("DescribeQuorum v{version}: {e}"))
}

fn create_partitions(c: &mut RawConn, version: i16, topic: &str, count: i32) -> i16 {
    create_partitions_assigned(c, version, topic, count, None)
}

fn create_partitions_assigned(
    c: &mut RawConn,
    version: i16,
    topic: &str,
    count: i32,
    assignments: Option<Vec<Vec<i32>>>,
) -> i16 {
    let assignments = assignments.map(|a| {
        a.into_iter()
            .map(|ids| {
                CreatePartitionsAssignment::default()
                    .with_broker_ids(ids.into_iter().map(BrokerId).collect())
            })
            .collect()
    });
    let req = CreatePartitionsRequest::default()
        .with_timeout_ms(10_000)
        .with_topics(vec![CreatePartitionsTopic::default()
            .with_name(topic_name(topic))
            .with_count(count)
            .with_assignments(assignments)]);
    let resp = c
        .request(version, &req)
        .unwrap_or_else(|e| panic!("CreatePartitions v{version}: {e}"));
    assert_eq!(resp.results.len(), 1);
    resp.results[0].error_code
}

fn elect(
    c: &mut RawConn,
    version: i16,
    partitions: Option<(&str, Vec<i32>)>,
) -> ElectLeadersResponse {
    let req = ElectLeadersRequest::default()
        .with_election_type(0)
        .with_timeout_ms(10_000)
        .with_topic_partitions(partitions.map(|(t, ps)| {
            vec![TopicPartitions::default()
                .with_topic(topic_name(t))
                .with_partitions(ps)]
        }));
    c.request(version, &req)
        .unwrap_or_else(|e| panic!("ElectLeaders v{version}: {e}"))
}

fn election_codes(resp: &ElectLeadersResponse) -> Vec<(String, i32, i16)> {
    resp.replica_election_results
        .iter()
        .flat_map(|t| {
            t.partition_result
                .iter()
                .map(|p| (t.topic.0.to_string(), p.partition_id, p.error_code))
        })
        .collect()
}

fn reassign(
    c: &mut RawConn,
    version: i16,
    topic: &str,
    partition: i32,
    replicas: Option<Vec<i32>>,
) -> AlterPartitionReassignmentsResponse {
    let req = AlterPartitionReassignmentsRequest::default()
        .with_timeout_ms(10_000)
        .with_allow_replication_factor_change(true)
        .with_topics(vec![ReassignableTopic::default()
            .with_name(topic_name(topic))
            .with_partitions(vec![ReassignablePartition::default()
                .with_partition_index(partition)
                .with_replicas(
                    replicas.map(|r| r.into_iter().map(BrokerId).collect()),
                )])]);
    c.request(version, &req)
        .unwrap_or_else(|e| panic!("AlterPartitionReassignments v{version}: {e}"))
}

fn list_reassignments(c: &mut RawConn) -> ListPartitionReassignmentsResponse {
    c.request(
        0,
        &ListPartitionReassignmentsRequest::default()
            .with_timeout_ms(10_000)
            .with_topics(None),
    )
    .unwrap_or_else(|e| panic!("ListPartitionReassignments: {e}"))
}

fn metadata(c: &mut RawConn, topic: &str) -> MetadataResponse {
    let req = MetadataRequest::default().with_topics(Some(vec![
        MetadataRequestTopic::default().with_name(Some(topic_name(topic)))
    ]));
    c.request(12, &req)
        .unwrap_or_else(|e| panic!("Metadata: {e}"))
}

/// `(partition, leader, replicas, isr)` of every partition of `topic`.
fn layout(c: &mut RawConn, topic: &str) -> Vec<(i32, i32, Vec<i32>, Vec<i32>)> {
    let md = metadata(c, topic);
    let mut out: Vec<_> = md
        .topics
        .iter()
        .flat_map(|t| t.partitions.iter())
        .map(|p| {
            (
                p.partition_index,
                p.leader_id.0,
                p.replica_nodes.iter().map(|b| b.0).collect(),
                p.isr_nodes.iter().map(|b| b.0).collect(),
            )
        })
        .collect();
    out.sort();
    out
}

fn wait_for<T>(what: &str, timeout: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        thread::sleep(Duration::from_millis(200));
    }
}

/// Metadata auto-creates an unknown topic. On one node every partition is led by the node that
/// answers, which applied the creation before answering: the partitions come at once. On a
/// cluster the leaders are other nodes that may not have applied it yet (a produce sent to one
/// at once got UNKNOWN_TOPIC_OR_PARTITION, which librdkafka takes as final: its test 0067 failed
/// now and then), so the first answer is LEADER_NOT_AVAILABLE, as Kafka answers every
/// auto-creation, and the client's next request gets the partitions.
#[test]
fn auto_creation_answers_leader_not_available_while_other_nodes_lead() {
    let broker = Broker::start();
    let mut c = RawConn::connect(broker.addr());
    let md = metadata(&mut c, "auto-created-on-one-node");
    assert_eq!(md.topics[0].error_code, 0, "{md:?}");
    assert!(!md.topics[0].partitions.is_empty(), "{md:?}");
    drop(c);
    drop(broker);

    let cluster = Cluster::start(3, &["num.partitions=6"]);
    let mut c = RawConn::connect(cluster.node(1).addr);
    wait_for("three live brokers", Duration::from_secs(60), || {
        let r = describe_cluster(&mut c, 2);
        (r.brokers.iter().filter(|b| !b.is_fenced).count() == 3).then_some(())
    });
    let topic = "auto-created-on-three-nodes";
    let first = metadata(&mut c, topic);
    assert_eq!(
        first.topics[0].error_code, 5,
        "LEADER_NOT_AVAILABLE: {first:?}"
    );
    let md = wait_for("the auto-created topic", Duration::from_secs(10), || {
        let md = metadata(&mut c, topic);
        (md.topics[0].error_code == 0).then_some(md)
    });
    let leaders: Vec<i32> = md.topics[0]
        .partitions
        .iter()
        .map(|p| p.leader_id.0)
        .collect();
    assert_eq!(leaders.len(), 6, "{md:?}");
    assert!(
        leaders.iter().any(|&l| l != 1),
        "every partition led by node 1: {leaders:?}"
    );
}

#[test]
fn describe_cluster_and_quorum_on_one_node() {
    let broker = Broker::start();
    let mut c = RawConn::connect(broker.addr());
    for v in 0..=2 {
        let resp = describe_cluster(&mut c, v);
        assert_eq!(resp.error_code, 0, "v{v}");
        assert!(!resp.cluster_id.is_empty(), "v{v}");
        assert_eq!(resp.controller_id, BrokerId(1), "v{v}");
        assert_eq!(resp.brokers.len(), 1, "v{v}");
        assert_eq!(resp.brokers[0].broker_id, BrokerId(1));
        assert_eq!(i32::from(broker.addr().port()), resp.brokers[0].port);
    }
    // Controller endpoints are not served by a broker.
    let resp = c
        .request(1, &DescribeClusterRequest::default().with_endpoint_type(2))
        .expect("DescribeCluster");
    assert_eq!(resp.error_code, 115, "UNSUPPORTED_ENDPOINT_TYPE");
    for v in 0..=2 {
        let resp = describe_quorum(&mut c, v);
        assert_eq!(resp.error_code, 0, "v{v}");
        let p = &resp.topics[0].partitions[0];
        assert_eq!(p.error_code, 0, "v{v}");
        assert_eq!(p.leader_id, BrokerId(1));
        assert!(p.leader_epoch >= 1, "v{v}: epoch {}", p.leader_epoch);
        assert!(p.high_watermark > 0, "v{v}: hw {}", p.high_watermark);
        assert_eq!(p.current_voters.len(), 1);
        assert!(p.current_voters[0].log_end_offset >= p.high_watermark);
        assert_eq!(resp.nodes.len(), if v >= 2 { 1 } else { 0 }, "v{v}");
    }
}

#[test]
fn create_partitions_elect_and_reassign_on_one_node() {
    let broker = Broker::start();
    let mut c = RawConn::connect(broker.addr());
    assert_eq!(c.create_topic("t", 1), 0);
    for (v, count) in (0..=3).zip(2..) {
        assert_eq!(create_partitions(&mut c, v, "t", count), 0, "v{v}");
        assert_eq!(layout(&mut c, "t").len(), count as usize, "v{v}");
    }
    assert_eq!(create_partitions(&mut c, 3, "t", 2), INVALID_PARTITIONS);
    // An empty (not null) assignment list names no new partition: refused, as Kafka does,
    // and nothing is added; one list per new partition is taken.
    for v in 0..=3 {
        assert_eq!(
            create_partitions_assigned(&mut c, v, "t", 6, Some(vec![])),
            INVALID_REPLICA_ASSIGNMENT,
            "v{v}"
        );
        assert_eq!(layout(&mut c, "t").len(), 5, "v{v}");
    }
    assert_eq!(
        create_partitions_assigned(&mut c, 3, "t", 7, Some(vec![vec![1]])),
        INVALID_REPLICA_ASSIGNMENT
    );
    assert_eq!(
        create_partitions_assigned(&mut c, 3, "t", 6, Some(vec![vec![1]])),
        0
    );
    assert_eq!(layout(&mut c, "t").len(), 6);
    assert_eq!(
        create_partitions(&mut c, 3, "missing", 2),
        UNKNOWN_TOPIC_OR_PARTITION
    );
    for v in 0..=2 {
        // All partitions: every preferred leader leads, nothing to answer.
        let resp = elect(&mut c, v, None);
        assert_eq!(resp.error_code, 0, "v{v}");
        assert!(election_codes(&resp).is_empty(), "v{v}: {resp:?}");
        let resp = elect(&mut c, v, Some(("t", vec![0, 9])));
        assert_eq!(
            election_codes(&resp),
            vec![
                ("t".into(), 0, ELECTION_NOT_NEEDED),
                ("t".into(), 9, UNKNOWN_TOPIC_OR_PARTITION)
            ],
            "v{v}"
        );
    }
    for v in 0..=1 {
        let resp = reassign(&mut c, v, "t", 0, Some(vec![1]));
        assert_eq!(resp.responses[0].partitions[0].error_code, 0, "v{v}");
        let resp = reassign(&mut c, v, "t", 0, Some(vec![5]));
        assert_ne!(resp.responses[0].partitions[0].error_code, 0, "v{v}");
    }
    assert!(list_reassignments(&mut c).topics.is_empty());
    // DescribeLogDirs: one directory holding every partition of t.
    for v in 1..=4 {
        let resp = c
            .request(v, &DescribeLogDirsRequest::default().with_topics(None))
            .unwrap_or_else(|e| panic!("DescribeLogDirs v{v}: {e}"));
        assert_eq!(resp.results.len(), 1, "v{v}");
        let t = resp.results[0]
            .topics
            .iter()
            .find(|t| t.name.0.as_str() == "t")
            .unwrap_or_else(|| panic!("v{v}: t not listed"));
        assert_eq!(t.partitions.len(), 6, "v{v}");
    }
}

#[test]
fn admin_apis_on_a_three_node_cluster() {
    let mut cluster = Cluster::start(3, &["auto.leader.rebalance.enable=false"]);
    let mut c = RawConn::connect(cluster.node(1).addr);

    // Three live brokers and a controller.
    let resp = wait_for("three live brokers", Duration::from_secs(60), || {
        let r = describe_cluster(&mut c, 2);
        (r.brokers.iter().filter(|b| !b.is_fenced).count() == 3).then_some(r)
    });
    let ids: Vec<i32> = resp.brokers.iter().map(|b| b.broker_id.0).collect();
    assert_eq!(ids, vec![1, 2, 3]);
    assert!((1..=3).contains(&resp.controller_id.0), "{resp:?}");
    let controller = resp.controller_id.0;

    // Three voters, led by the controller, each node answering (a follower forwards the
    // request to the leader, which knows every voter's log end offset).
    for id in 1..=3 {
        let mut n = RawConn::connect(cluster.node(id).addr);
        let q = describe_quorum(&mut n, 2);
        let p = &q.topics[0].partitions[0];
        assert_eq!(p.error_code, 0, "node {id}");
        assert_eq!(p.leader_id.0, controller, "node {id}");
        let voters: Vec<i32> = p.current_voters.iter().map(|r| r.replica_id.0).collect();
        assert_eq!(voters, vec![1, 2, 3], "node {id}");
        assert_eq!(q.nodes.len(), 3, "node {id}");
        assert!(
            p.current_voters.iter().all(|r| r.log_end_offset > 0),
            "node {id}: every voter's log end offset is known: {p:?}"
        );
        // The leader's transport records when each voter last answered it: a fetch within
        // the last seconds (Kafka's lastFetchTimestamp), never -1 on a live cluster.
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("clock after 1970")
            .as_millis() as i64;
        assert!(
            p.current_voters
                .iter()
                .all(|r| (now - r.last_fetch_timestamp).abs() < 10_000),
            "node {id}: every voter fetched within 10 s of {now}: {p:?}"
        );
    }

    // `gregor cluster describe`: three live nodes, the controller, three voters with lags.
    let out = std::process::Command::new(gregor_bin())
        .args([
            "cluster",
            "describe",
            "--bootstrap-server",
            &cluster.bootstrap(),
        ])
        .output()
        .expect("run gregor cluster describe");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        text.contains(&format!("Controller: {controller}")),
        "{text}"
    );
    assert_eq!(text.matches(" live").count(), 3, "{text}");
    let voters: Vec<Vec<&str>> = text
        .lines()
        .skip_while(|l| !l.starts_with("NODE") || !l.contains("LAG"))
        .skip(1)
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(voters.len(), 3, "{text}");
    for v in &voters {
        assert!(
            v[3].parse::<i64>().is_ok(),
            "a known lag for every voter: {text}"
        );
        // LAST-FETCH: "<n> ms ago".
        assert!(
            v.len() == 7 && v[4].parse::<i64>().is_ok() && v[5..] == ["ms", "ago"],
            "a known last fetch for every voter: {text}"
        );
    }

    // CreatePartitions on an RF=3 topic.
    let req = CreateTopicsRequest::default()
        .with_timeout_ms(10_000)
        .with_topics(vec![CreatableTopic::default()
            .with_name(topic_name("rf3"))
            .with_num_partitions(3)
            .with_replication_factor(3)]);
    let resp = c.request(7, &req).expect("CreateTopics");
    assert_eq!(resp.topics[0].error_code, 0, "{resp:?}");
    assert_eq!(create_partitions(&mut c, 3, "rf3", 6), 0);
    let parts = layout(&mut c, "rf3");
    assert_eq!(parts.len(), 6);
    for (p, leader, replicas, _) in &parts {
        assert_eq!(replicas.len(), 3, "partition {p}");
        assert_eq!(Some(leader), replicas.first(), "partition {p}");
    }

    // Preferred-leader election: stop a node, its partitions get other leaders; once it is
    // back, the election hands them back to it (or, while it has not caught up into the ISR,
    // answers PREFERRED_LEADER_NOT_AVAILABLE).
    let victim = if controller == 3 { 2 } else { 3 };
    let led: Vec<i32> = parts
        .iter()
        .filter(|(_, leader, _, _)| *leader == victim)
        .map(|(p, ..)| *p)
        .collect();
    assert!(
        !led.is_empty(),
        "node {victim} prefers some partition: {parts:?}"
    );
    cluster.stop(victim);
    wait_for(
        "leaders to move off the stopped node",
        Duration::from_secs(60),
        || {
            let now = layout(&mut c, "rf3");
            now.iter()
                .filter(|(p, ..)| led.contains(p))
                .all(|(_, leader, _, _)| *leader != victim && *leader >= 0)
                .then_some(())
        },
    );
    // `gregor topics describe --under-replicated-partitions`: every rf3 partition, with the
    // stopped node offline.
    let out = std::process::Command::new(gregor_bin())
        .args([
            "topics",
            "describe",
            "rf3",
            "--under-replicated-partitions",
            "--bootstrap-server",
            &cluster.node(controller).addr.to_string(),
        ])
        .output()
        .expect("run gregor topics describe");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let rows: Vec<Vec<&str>> = text
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows.len(), 6, "{text}");
    for row in &rows {
        assert_eq!(row[0], "rf3", "{text}");
        assert_eq!(
            row[6],
            victim.to_string(),
            "the stopped node is offline: {text}"
        );
        assert!(
            !row[5].split(',').any(|b| b == victim.to_string()),
            "{text}"
        );
    }
    cluster.restart(victim);
    wait_for(
        "the restarted node to be live",
        Duration::from_secs(60),
        || {
            let r = describe_cluster(&mut c, 2);
            (r.brokers.iter().filter(|b| !b.is_fenced).count() == 3).then_some(())
        },
    );
    let mut last = Vec::new();
    let elected = wait_for_opt(Duration::from_secs(30), || {
        let resp = elect(&mut c, 2, Some(("rf3", led.clone())));
        last = election_codes(&resp);
        // A partition elected by an earlier round of this loop answers ELECTION_NOT_NEEDED.
        last.iter()
            .all(|(_, _, code)| *code == 0 || *code == ELECTION_NOT_NEEDED)
            .then_some(())
    });
    assert_eq!(last.len(), led.len(), "{last:?}");
    if elected.is_some() {
        let now = layout(&mut c, "rf3");
        for (p, leader, replicas, _) in now.iter().filter(|(p, ..)| led.contains(p)) {
            assert_eq!(
                Some(leader),
                replicas.first(),
                "partition {p} after the election"
            );
        }
    } else {
        // The restarted node has not come back into the ISR (replica fetching).
        assert!(
            last.iter()
                .all(|(_, _, code)| *code == PREFERRED_LEADER_NOT_AVAILABLE),
            "{last:?}"
        );
        eprintln!("node {victim} did not rejoin the ISR: the preferred leaders stay elsewhere");
    }

    // A reassignment of an RF=1 partition to another broker: accepted, listed while the new
    // replica catches up, and done once it has.
    let req = CreateTopicsRequest::default()
        .with_timeout_ms(10_000)
        .with_topics(vec![CreatableTopic::default()
            .with_name(topic_name("rf1"))
            .with_num_partitions(1)
            .with_replication_factor(1)]);
    let resp = c.request(7, &req).expect("CreateTopics");
    assert_eq!(resp.topics[0].error_code, 0, "{resp:?}");
    let (_, from, _, _) = layout(&mut c, "rf1")[0].clone();
    let to = if from == 1 { 2 } else { 1 };
    let resp = reassign(&mut c, 1, "rf1", 0, Some(vec![to]));
    assert_eq!(resp.responses[0].partitions[0].error_code, 0, "{resp:?}");
    let listed = list_reassignments(&mut c);
    let (_, leader, replicas, _) = layout(&mut c, "rf1")[0].clone();
    if replicas == vec![to] {
        // Already done: the new replica caught up at once (an empty partition).
        assert!(listed.topics.is_empty(), "{listed:?}");
        assert_eq!(leader, to);
    } else {
        let p = &listed.topics[0].partitions[0];
        assert_eq!(listed.topics[0].name.0.as_str(), "rf1");
        assert_eq!(p.adding_replicas, vec![BrokerId(to)]);
        assert_eq!(p.removing_replicas, vec![BrokerId(from)]);
        // Completing needs the new replica to fetch the partition into the ISR.
        let done = wait_for_opt(Duration::from_secs(30), || {
            let (_, leader, replicas, _) = layout(&mut c, "rf1")[0].clone();
            (replicas == vec![to] && leader == to).then_some(())
        });
        if done.is_none() {
            eprintln!(
                "the reassignment of rf1-0 to {to} did not complete: the new replica did not \
                 join the ISR (replica fetching)"
            );
            // Cancelling puts the original replica back.
            let resp = reassign(&mut c, 1, "rf1", 0, None);
            assert_eq!(resp.responses[0].partitions[0].error_code, 0, "{resp:?}");
            assert!(list_reassignments(&mut c).topics.is_empty());
            assert_eq!(layout(&mut c, "rf1")[0].2, vec![from]);
        }
    }
}

fn wait_for_opt<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        thread::sleep(Duration::from_millis(200));
    }
}

/// DeleteRecords `offset` on partition 0 of `topic` with `timeout_ms`: (error, low watermark).
fn delete_records(c: &mut RawConn, topic: &str, offset: i64, timeout_ms: i32) -> (i16, i64) {
    let req = DeleteRecordsRequest::default()
        .with_timeout_ms(timeout_ms)
        .with_topics(vec![DeleteRecordsTopic::default()
            .with_name(topic_name(topic))
            .with_partitions(vec![DeleteRecordsPartition::default()
                .with_partition_index(0)
                .with_offset(offset)])]);
    let resp = c
        .request(2, &req)
        .unwrap_or_else(|e| panic!("DeleteRecords: {e}"));
    let p = &resp.topics[0].partitions[0];
    (p.error_code, p.low_watermark)
}

/// DeleteRecords answers once every live replica's log start has moved (Kafka's
/// DelayedDeleteRecords): with a follower paused it times out with REQUEST_TIMED_OUT; resumed,
/// the same request completes with the low watermark; with the follower dead and fenced, the
/// others alone complete it.
#[test]
fn delete_records_waits_for_every_live_replica() {
    let mut cluster = Cluster::start(3, &["auto.leader.rebalance.enable=false"]);
    let mut c = RawConn::connect(cluster.node(1).addr);
    wait_for("three live brokers", Duration::from_secs(60), || {
        let r = describe_cluster(&mut c, 2);
        (r.brokers.iter().filter(|b| !b.is_fenced).count() == 3).then_some(())
    });
    let req = CreateTopicsRequest::default()
        .with_timeout_ms(10_000)
        .with_topics(vec![CreatableTopic::default()
            .with_name(topic_name("trim"))
            .with_num_partitions(1)
            .with_replication_factor(3)]);
    let resp = c.request(5, &req).expect("CreateTopics");
    assert_eq!(resp.topics[0].error_code, 0, "{resp:?}");
    let (leader, followers) = wait_for("a full ISR", Duration::from_secs(30), || {
        let (_, leader, replicas, isr) = layout(&mut c, "trim").first().cloned()?;
        (leader > 0 && isr.len() == 3).then(|| {
            let followers: Vec<i32> = replicas.into_iter().filter(|&r| r != leader).collect();
            (leader, followers)
        })
    });
    let mut l = RawConn::connect(cluster.node(leader).addr);
    // The leader may not have applied the new topic yet (the ISR above is the one it was
    // created with): the first produce waits for it.
    wait_for(
        "the leader to host the topic",
        Duration::from_secs(30),
        || {
            let batch = gregor_e2e::raw::simple_batch(&[("k", "v0")]);
            (l.produce("trim", 0, batch).0 == 0).then_some(())
        },
    );
    for i in 1..10 {
        let batch = gregor_e2e::raw::simple_batch(&[("k", &format!("v{i}"))]);
        assert_eq!(l.produce("trim", 0, batch).0, 0, "acks=all produce");
    }

    // One follower paused (not yet fenced: its session outlives the request).
    let paused = followers[0];
    cluster.pause(paused);
    let started = Instant::now();
    let (code, low) = delete_records(&mut l, "trim", 6, 1_000);
    assert_eq!(
        (code, low),
        (REQUEST_TIMED_OUT, -1),
        "waits for the paused follower"
    );
    assert!(started.elapsed() >= Duration::from_millis(900));
    cluster.resume(paused);
    let (code, low) = delete_records(&mut l, "trim", 6, 30_000);
    assert_eq!((code, low), (0, 6), "the follower's log start followed");

    // A dead follower, once fenced, is not waited for.
    let dead = followers[1];
    cluster.kill9(dead);
    let (code, low) = wait_for(
        "DeleteRecords without the dead follower",
        Duration::from_secs(30),
        || {
            let r = delete_records(&mut l, "trim", 8, 2_000);
            (r.0 == 0).then_some(r)
        },
    );
    assert_eq!((code, low), (0, 8));
}

/// Runs `gregor configs ...` against `bootstrap`; (success, stdout, stderr).
fn configs_cli(bootstrap: &str, args: &[&str]) -> (bool, String, String) {
    let all: Vec<&str> = std::iter::once("configs")
        .chain(args.iter().copied())
        .collect();
    cli(bootstrap, &all, None)
}

/// The SOURCE column of `key` in a `gregor configs describe --all` table.
fn source_of(table: &str, key: &str) -> Option<(String, String)> {
    table.lines().find_map(|l| {
        let cells: Vec<&str> = l.split_whitespace().collect();
        (cells.first() == Some(&key)).then(|| (cells[1].to_string(), cells[2].to_string()))
    })
}

/// Dynamic broker configs on three nodes, through the gregor CLI: a cluster-wide default
/// reaches every broker, one broker's own config only that broker, both survive a restart, and
/// a key that cannot change at run time is refused.
#[test]
fn dynamic_broker_configs_on_a_three_node_cluster() {
    let mut cluster = Cluster::start(3, &[]);
    let bootstrap = cluster.bootstrap();
    let (ok, _, err) = configs_cli(
        &bootstrap,
        &[
            "alter",
            "--broker-defaults",
            "--set",
            "log.retention.ms=3600000",
        ],
    );
    assert!(ok, "{err}");
    let (ok, _, err) = configs_cli(
        &bootstrap,
        &[
            "alter",
            "--broker",
            "2",
            "--set",
            "log.segment.bytes=1048576",
        ],
    );
    assert!(ok, "{err}");
    let (ok, _, err) = configs_cli(
        &bootstrap,
        &["alter", "--broker", "2", "--set", "num.partitions=3"],
    );
    assert!(!ok && err.contains("INVALID_REQUEST"), "{err}");

    let check = |cluster: &Cluster| {
        for id in 1..=3 {
            // Each broker's image gets the change within moments of the controller's commit.
            let table = wait_for(
                &format!("broker {id} sees the cluster-wide default"),
                Duration::from_secs(20),
                || {
                    let (ok, out, _) = configs_cli(
                        &cluster.bootstrap(),
                        &["describe", "--broker", &id.to_string(), "--all"],
                    );
                    (ok && source_of(&out, "log.retention.ms").is_some_and(|(v, _)| v == "3600000"))
                        .then_some(out)
                },
            );
            assert_eq!(
                source_of(&table, "log.retention.ms"),
                Some((
                    "3600000".to_string(),
                    "DYNAMIC_DEFAULT_BROKER_CONFIG".to_string()
                )),
                "broker {id}"
            );
            let segment = source_of(&table, "log.segment.bytes");
            if id == 2 {
                assert_eq!(
                    segment,
                    Some(("1048576".to_string(), "DYNAMIC_BROKER_CONFIG".to_string()))
                );
            } else {
                assert_eq!(
                    segment,
                    Some(("1073741824".to_string(), "DEFAULT_CONFIG".to_string())),
                    "broker {id}"
                );
            }
        }
    };
    check(&cluster);
    // The metadata log keeps them across a restart.
    cluster.restart(2);
    check(&cluster);
    let (ok, out, err) = configs_cli(&bootstrap, &["describe", "--broker-defaults"]);
    assert!(ok, "{err}");
    assert!(out.contains("log.retention.ms"), "{out}");
}

/// Runs a gregor CLI command against `bootstrap`; (success, stdout, stderr).
fn cli(bootstrap: &str, args: &[&str], stdin: Option<&str>) -> (bool, String, String) {
    use std::io::Write;
    let mut child = std::process::Command::new(gregor_bin())
        .args(args)
        .args(["--bootstrap-server", bootstrap])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run gregor");
    if let Some(mut input) = child.stdin.take() {
        input
            .write_all(stdin.unwrap_or("").as_bytes())
            .expect("write stdin");
    }
    let out = child.wait_with_output().expect("gregor exits");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `gregor records delete` moves a partition's log start (and refuses an offset past the end);
/// `gregor log-dirs describe` lists the partition with its size on disk.
#[test]
fn records_delete_and_log_dirs_through_the_cli() {
    let broker = Broker::start();
    let b = broker.bootstrap();
    let (ok, _, err) = cli(&b, &["topics", "create", "trim", "--partitions", "2"], None);
    assert!(ok, "{err}");
    let lines: String = (0..10).map(|i| format!("r{i}\n")).collect();
    let (ok, _, err) = cli(&b, &["produce", "trim", "--partition", "0"], Some(&lines));
    assert!(ok, "{err}");
    let (ok, out, err) = cli(
        &b,
        &[
            "records",
            "delete",
            "trim",
            "--partition",
            "0",
            "--before",
            "4",
        ],
        None,
    );
    assert!(ok, "{err}");
    assert!(out.contains("log start offset 4"), "{out}");
    let (ok, _, err) = cli(
        &b,
        &[
            "records",
            "delete",
            "trim",
            "--partition",
            "0",
            "--before",
            "99",
        ],
        None,
    );
    assert!(!ok && err.contains("OFFSET_OUT_OF_RANGE"), "{err}");
    let (ok, out, err) = cli(
        &b,
        &[
            "records",
            "delete",
            "trim",
            "--partition",
            "0",
            "--before",
            "-1",
        ],
        None,
    );
    assert!(ok, "{err}");
    assert!(
        out.contains("log start offset 10"),
        "-1 deletes up to the high watermark: {out}"
    );
    let (ok, out, err) = cli(&b, &["log-dirs", "describe", "--topic", "trim"], None);
    assert!(ok, "{err}");
    let rows: Vec<Vec<&str>> = out
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(rows.len(), 2, "{out}");
    assert_eq!(
        (rows[0][0], rows[0][2], rows[0][3]),
        ("1", "trim", "0"),
        "{out}"
    );
    let size: i64 = rows[0][4].parse().expect("a size");
    assert!(size > 0, "{out}");
}

/// CreateTopics of `topic`, one partition on `replicas` (the first unfenced one leads).
fn create_assigned(c: &mut RawConn, topic: &str, replicas: &[i32]) {
    let req = CreateTopicsRequest::default()
        .with_timeout_ms(10_000)
        .with_topics(vec![CreatableTopic::default()
            .with_name(topic_name(topic))
            .with_num_partitions(-1)
            .with_replication_factor(-1)
            .with_assignments(vec![CreatableReplicaAssignment::default()
                .with_partition_index(0)
                .with_broker_ids(
                    replicas.iter().copied().map(BrokerId).collect(),
                )])]);
    let resp = c.request(5, &req).expect("CreateTopics");
    assert_eq!(resp.topics[0].error_code, 0, "{resp:?}");
}

/// Produces `values` to partition 0 of `topic` through its leader (acks=all), retrying while
/// the leader has not applied the topic yet.
fn produce_values(cluster: &Cluster, c: &mut RawConn, topic: &str, values: &[&str]) {
    let leader = wait_for("a leader", Duration::from_secs(30), || {
        let (_, leader, _, _) = layout(c, topic).first().cloned()?;
        (leader > 0).then_some(leader)
    });
    let mut l = RawConn::connect(cluster.node(leader).addr);
    for v in values {
        wait_for("the produce", Duration::from_secs(30), || {
            let batch = gregor_e2e::raw::simple_batch(&[("k", v)]);
            (l.produce(topic, 0, batch).0 == 0).then_some(())
        });
    }
}

/// A topic deleted and created again under its name while one of its replicas' brokers was
/// down: the broker back replays its metadata log (the earlier topic), then the deletion and
/// the new topic in one image; its replica of the new topic starts on a log of its own, and,
/// led by that broker, the partition serves the new topic's records only. (A broker whose
/// metadata no longer names the earlier topic tells the logs apart by the topic id each
/// records, KIP-516: `replica_manager` unit tests.)
#[test]
fn a_topic_created_again_while_a_replica_was_down_does_not_inherit_its_log() {
    let mut cluster = Cluster::start(
        3,
        &[
            "auto.leader.rebalance.enable=false",
            "auto.create.topics.enable=false",
        ],
    );
    let mut c = RawConn::connect(cluster.node(1).addr);
    wait_for("three live brokers", Duration::from_secs(60), || {
        let r = describe_cluster(&mut c, 2);
        (r.brokers.iter().filter(|b| !b.is_fenced).count() == 3).then_some(())
    });
    let full_isr = |c: &mut RawConn| {
        wait_for("a full ISR", Duration::from_secs(30), || {
            let (_, leader, _, isr) = layout(c, "again").first().cloned()?;
            (leader > 0 && isr.len() == 3).then_some(leader)
        })
    };
    create_assigned(&mut c, "again", &[1, 2, 3]);
    full_isr(&mut c);
    produce_values(
        &cluster,
        &mut c,
        "again",
        &["old0", "old1", "old2", "old3", "old4"],
    );
    full_isr(&mut c);

    cluster.kill9(3);
    let delete = DeleteTopicsRequest::default()
        .with_topics(vec![
            DeleteTopicState::default().with_name(Some(topic_name("again")))
        ])
        .with_timeout_ms(30_000);
    let resp = c.request(6, &delete).expect("DeleteTopics");
    assert_eq!(resp.responses[0].error_code, 0, "{resp:?}");
    wait_for("the topic gone", Duration::from_secs(30), || {
        let md = metadata(&mut c, "again");
        (md.topics[0].error_code == UNKNOWN_TOPIC_OR_PARTITION).then_some(())
    });
    create_assigned(&mut c, "again", &[1, 2, 3]);
    produce_values(&cluster, &mut c, "again", &["new0", "new1"]);

    cluster.restart(3);
    full_isr(&mut c);

    // Node 3 leads: it serves what the new topic holds, nothing of the earlier one.
    let resp = reassign(&mut c, 0, "again", 0, Some(vec![3, 1, 2]));
    assert_eq!(resp.error_code, 0, "{resp:?}");
    wait_for("node 3 first", Duration::from_secs(30), || {
        let (_, _, replicas, isr) = layout(&mut c, "again").first().cloned()?;
        (replicas == vec![3, 1, 2] && isr.len() == 3).then_some(())
    });
    wait_for("node 3 leads", Duration::from_secs(30), || {
        let r = elect(&mut c, 1, Some(("again", vec![0])));
        let codes = election_codes(&r);
        let done = codes
            .iter()
            .all(|(_, _, code)| *code == 0 || *code == ELECTION_NOT_NEEDED);
        let (_, leader, _, _) = layout(&mut c, "again").first().cloned()?;
        (done && leader == 3).then_some(())
    });
    let mut three = RawConn::connect(cluster.node(3).addr);
    let values = wait_for("node 3 serves", Duration::from_secs(30), || {
        let records = three.fetch_records("again", 0, 0);
        (!records.is_empty()).then_some(records)
    });
    let values: Vec<String> = values
        .iter()
        .map(|r| String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into_owned())
        .collect();
    assert_eq!(values, vec!["new0", "new1"]);
}

/// Kafka's `kafka-reassign-partitions.sh --throttle` (KIP-73): the replica it adds copies the
/// partition at about the rate given, the leader holding back what it sends and the follower
/// what it fetches (`*.replication.throttled.rate` on the brokers,
/// `*.replication.throttled.replicas` on the topic, all set by the tool); `--verify` sees the
/// move under way, then complete, and removes the throttles. About 6 MB at 1 MB/s (the
/// brokers' quota window of 2 samples allows a first second at full speed) take several
/// seconds; unthrottled, well under one.
#[test]
fn kafka_reassign_partitions_throttles_the_replica_it_adds() {
    use gregor_e2e::kafka_tools::Toolbox;
    let cluster = Cluster::start(
        3,
        &[
            "auto.create.topics.enable=false",
            "replication.quota.window.num=2",
        ],
    );
    let mut c = RawConn::connect(cluster.node(1).addr);
    wait_for("three live brokers", Duration::from_secs(60), || {
        let r = describe_cluster(&mut c, 2);
        (r.brokers.iter().filter(|b| !b.is_fenced).count() == 3).then_some(())
    });
    let topic = "throttled";
    create_assigned(&mut c, topic, &[1]);
    let value = "x".repeat(1000);
    let records: Vec<(&str, &str)> = (0..100).map(|_| ("k", value.as_str())).collect();
    let mut l = RawConn::connect(cluster.node(1).addr);
    wait_for("the topic on node 1", Duration::from_secs(30), || {
        let batch = gregor_e2e::raw::simple_batch(&records);
        (l.produce(topic, 0, batch).0 == 0).then_some(())
    });
    for _ in 1..60 {
        let batch = gregor_e2e::raw::simple_batch(&records);
        assert_eq!(l.produce(topic, 0, batch).0, 0, "produce");
    }

    let toolbox = Toolbox::installed();
    let scratch = tempfile::tempdir().expect("tempdir");
    let plan = scratch.path().join("plan.json");
    std::fs::write(
        &plan,
        serde_json::json!({
            "version": 1,
            "partitions": [{"topic": topic, "partition": 0, "replicas": [1, 2]}]
        })
        .to_string(),
    )
    .expect("write the plan");
    let bootstrap = cluster.bootstrap();
    let reassign = |action: &[&str]| toolbox.reassign_partitions(&bootstrap, &plan, action);
    let started = Instant::now();
    let run = reassign(&["--execute", "--throttle", "1000000"]);
    let out = run
        .ok()
        .unwrap_or_else(|e| panic!("kafka-reassign-partitions --execute: {e}"));
    assert!(
        out.contains("The inter-broker throttle limit was set to 1000000 B/s"),
        "{out}"
    );
    let mut saw_going = false;
    let finished = loop {
        let out = reassign(&["--verify"]).transcript();
        if out.contains(&format!("Reassignment of partition {topic}-0 is completed")) {
            break out;
        }
        if out.contains(&format!(
            "Reassignment of partition {topic}-0 is still in progress"
        )) {
            saw_going = true;
        }
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "--verify never saw the move complete: {out}"
        );
        thread::sleep(Duration::from_millis(300));
    };
    let took = started.elapsed();
    assert!(saw_going, "--verify saw the move under way");
    assert!(
        took >= Duration::from_secs(3),
        "6 MB at 1 MB/s took only {took:?}"
    );
    assert!(
        finished.contains("Clearing broker-level throttles"),
        "{finished}"
    );
    assert!(
        finished.contains("Clearing topic-level throttles"),
        "{finished}"
    );
    let (_, _, replicas, isr) = layout(&mut c, topic).first().cloned().expect("layout");
    assert_eq!((replicas, isr.len()), (vec![1, 2], 2));
    eprintln!("the throttled move took {took:?}");
}
