//! Who is in the cluster, across real processes ([`Cluster`] with node roles), driven by
//! confluent-kafka, raw frames and the `gregor` CLI:
//!
//! - `separate_controllers_and_brokers_serve_and_fail_over`: three controller-only nodes and two
//!   broker-only nodes. Metadata lists only the brokers; DescribeQuorum lists the controllers as
//!   voters and the brokers as observers; the controllers hold no partition, and answer
//!   ApiVersions, DescribeCluster (controller endpoints) and DescribeQuorum on their controller
//!   listeners (`kafka-metadata-quorum --bootstrap-controller` when the toolbox is installed).
//!   An RF=2 topic takes
//!   acks=all records; kill -9 of the active controller → another controller takes over and the
//!   producer goes on; kill -9 of the partition's leader → the other broker leads. Every
//!   acknowledged record reads back.
//! - `a_broker_only_node_joins_takes_a_partition_and_survives_a_restart`: a fourth,
//!   broker-only node joins a three-node cluster, shows in Metadata and `gregor cluster
//!   describe`, gets a partition by `gregor topics reassign`, leads it after `gregor topics
//!   elect-leaders` and serves its records, also after a restart.
//! - `a_node_with_other_voters_is_refused_and_the_others_serve`: node 3 started with other
//!   `--voters` than nodes 1–2 never serves; both sides log the two voter sets; nodes 1–2 serve.
//! - `a_dead_broker_is_unregistered_with_kafka_cluster_sh`: a broker-only node killed for good
//!   is removed with `kafka-cluster.sh unregister` (UnregisterBroker): no node lists it (nor
//!   the quorum as an observer), its
//!   partitions keep it as an offline replica with leaders elsewhere; again, or an unknown id,
//!   is refused by Kafka's tool and `gregor cluster unregister`; restarted, it registers again.
//! - `a_second_process_with_a_live_brokers_id_exits`: a process started with the node id of a
//!   live broker-only node (its own data dir and ports) is refused by the controller
//!   (DUPLICATE_BROKER_REGISTRATION) and exits with an error; the original keeps serving; once
//!   the original is killed, a restart under that id is accepted.

use std::thread;
use std::time::{Duration, Instant};

use gregor_e2e::broker::{gregor_bin, launch_server, wait_timeout};
use gregor_e2e::check;
use gregor_e2e::cluster::{free_port, Cluster, Role};
use gregor_e2e::cluster_client::*;
use gregor_e2e::kafka_tools::{run_program, toolbox_dir};
use gregor_e2e::raw::RawConn;
use gregor_e2e::{run_python_json, unique_topic};
use kafka_protocol::messages::{
    DescribeClusterRequest, DescribeClusterResponse, DescribeQuorumResponse,
};

/// Kafka's `EndpointType.CONTROLLER`.
const CONTROLLER_ENDPOINTS: i8 = 2;

/// `(leader, voters, observers)` of the metadata quorum as the broker at `addr` describes it.
fn quorum_at(addr: std::net::SocketAddr) -> Option<(i32, Vec<i32>, Vec<i32>)> {
    let mut c = RawConn::connect(addr);
    let resp: DescribeQuorumResponse = c.request(1, &metadata_quorum_request()).ok()?;
    let p = resp.topics.first()?.partitions.first()?;
    if p.error_code != 0 || p.leader_id.0 < 0 {
        return None;
    }
    let mut voters: Vec<i32> = p.current_voters.iter().map(|r| r.replica_id.0).collect();
    let mut observers: Vec<i32> = p.observers.iter().map(|r| r.replica_id.0).collect();
    voters.sort_unstable();
    observers.sort_unstable();
    Some((p.leader_id.0, voters, observers))
}

/// Runs `gregor ARGS`; its stdout, or a panic with both streams if it failed.
fn gregor(args: &[&str]) -> String {
    let out = std::process::Command::new(gregor_bin())
        .args(args)
        .output()
        .expect("run gregor");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "gregor {args:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// Whether `dir` holds a log directory of `topic`.
fn hosts_topic(dir: &std::path::Path, topic: &str) -> bool {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .any(|e| e.file_name().to_string_lossy().starts_with(topic))
        })
        .unwrap_or(false)
}

/// Waits until more than `n` records are acknowledged in `ack_file`.
fn wait_for_acks(cluster: &Cluster, ack_file: &std::path::Path, n: usize, what: &str) {
    wait_for(cluster, what, Duration::from_secs(30), || {
        (acked_lines(ack_file).len() > n).then_some(())
    });
}

#[test]
fn separate_controllers_and_brokers_serve_and_fail_over() {
    use Role::{Broker, Controller};
    let mut cluster = Cluster::start_with_roles(
        &[Controller, Controller, Controller, Broker, Broker],
        &["offsets.topic.replication.factor=2"],
    );
    assert_eq!(cluster.broker_ids(), vec![4, 5]);
    wait_for_brokers(&cluster, 2);
    let bootstrap = cluster.bootstrap();
    let (brokers, _) = describe(&bootstrap, "__consumer_offsets");
    assert_eq!(brokers, vec![4, 5], "Metadata lists the brokers only");
    let controller_told = client(&bootstrap, &["describe", "__consumer_offsets"])["controller"]
        .as_i64()
        .unwrap_or(-1);
    assert!(
        [4, 5].contains(&controller_told),
        "clients are told a broker as controller, not a controller-only node: {controller_told}"
    );
    let (leader, voters, observers) = wait_for(
        &cluster,
        "DescribeQuorum with a leader",
        Duration::from_secs(30),
        || quorum_at(cluster.node(4).addr),
    );
    assert_eq!(voters, vec![1, 2, 3]);
    assert_eq!(observers, vec![4, 5]);
    assert!((1..=3).contains(&leader), "a controller leads: {leader}");
    // A broker forwards DescribeQuorum to the controller-only leader's controller listener, so
    // every node's log end offset is known.
    {
        let mut c = RawConn::connect(cluster.node(4).addr);
        let resp: DescribeQuorumResponse = c
            .request(1, &metadata_quorum_request())
            .expect("DescribeQuorum");
        let p = &resp.topics[0].partitions[0];
        assert!(
            p.current_voters
                .iter()
                .chain(&p.observers)
                .all(|r| r.log_end_offset > 0),
            "the leader's view, with every log end offset: {p:?}"
        );
    }
    // Every controller answers Kafka clients on its controller listener, as Kafka's do.
    for id in cluster.controller_ids() {
        let at = cluster.node(id).controller_addr;
        let (l, voters, observers) = quorum_at(at).expect("DescribeQuorum on a controller");
        assert_eq!((l, voters, observers), (leader, vec![1, 2, 3], vec![4, 5]));
        let mut c = RawConn::connect(at);
        let resp: DescribeClusterResponse = c
            .request(
                1,
                &DescribeClusterRequest::default().with_endpoint_type(CONTROLLER_ENDPOINTS),
            )
            .expect("DescribeCluster on a controller");
        assert_eq!(resp.error_code, 0, "{resp:?}");
        assert_eq!(resp.controller_id.0, leader);
        let ids: Vec<i32> = resp.brokers.iter().map(|b| b.broker_id.0).collect();
        assert_eq!(ids, vec![1, 2, 3], "the controllers: {resp:?}");
    }
    let tool = toolbox_dir().join("bin/kafka-metadata-quorum.sh");
    if tool.is_file() {
        let at = cluster.node(1).controller_addr.to_string();
        let run = run_program(
            &tool,
            "kafka-metadata-quorum.sh",
            &["--bootstrap-controller", &at, "describe", "--status"],
            None,
            Duration::from_secs(60),
        );
        let out = run
            .ok()
            .unwrap_or_else(|e| panic!("{e}\n{}", run.transcript()));
        assert!(out.contains("LeaderId:"), "{out}");
        assert!(out.contains("\"id\": 3"), "{out}");
    } else {
        eprintln!(
            "kafka-metadata-quorum --bootstrap-controller skipped: no toolbox (scripts/toolbox)"
        );
    }

    let topic = unique_topic("separate");
    create_topic(&bootstrap, &topic, 1, 2, &[]);
    let (_, parts) = describe(&bootstrap, &topic);
    assert_eq!(parts[&0].replicas.len(), 2, "{parts:?}");
    for id in cluster.controller_ids() {
        assert!(
            !hosts_topic(cluster.node(id).data_dir(), &topic),
            "controller-only node {id} hosts no partition"
        );
    }

    let dir = tempfile::tempdir().expect("temp dir");
    let ack_file = dir.path().join("acked.txt");
    let producer = start_producer(&bootstrap, &topic, &ack_file, 60);
    wait_for_acks(&cluster, &ack_file, 500, "500 acks before any kill");

    // The active controller dies: another controller takes over, the producer goes on.
    let killed_at = Instant::now();
    cluster.kill9(leader);
    let acked = acked_lines(&ack_file).len();
    let next = wait_for(
        &cluster,
        "a new active controller",
        Duration::from_secs(30),
        || {
            quorum_at(cluster.node(4).addr)
                .map(|q| q.0)
                .filter(|&l| l != leader)
        },
    );
    eprintln!(
        "controller {leader} killed; controller {next} leads after {:.2} s",
        killed_at.elapsed().as_secs_f64()
    );
    assert!((1..=3).contains(&next));
    wait_for_acks(
        &cluster,
        &ack_file,
        acked + 200,
        "acks after the controller kill",
    );
    cluster.restart(leader);

    // The partition's leader dies: the other broker leads, the producer goes on.
    let (_, parts) = describe(&bootstrap, &topic);
    let old = parts[&0].leader;
    let other = if old == 4 { 5 } else { 4 };
    assert_eq!(parts[&0].isr.len(), 2, "{parts:?}");
    let killed_at = Instant::now();
    cluster.kill9(old);
    let acked = acked_lines(&ack_file).len();
    wait_for(
        &cluster,
        "the other broker leads",
        Duration::from_secs(30),
        || (leader_at(cluster.node(other).addr, &topic) == Some(other)).then_some(()),
    );
    eprintln!(
        "broker {old} killed; broker {other} leads after {:.2} s",
        killed_at.elapsed().as_secs_f64()
    );
    wait_for_acks(
        &cluster,
        &ack_file,
        acked + 200,
        "acks after the broker kill",
    );
    cluster.restart(old);
    wait_for_isr(
        &cluster,
        &bootstrap,
        &topic,
        2,
        "the restarted broker back in the ISR",
        Duration::from_secs(30),
    );
    let out = stop_producer(producer);
    let acked = acked_lines(&ack_file);
    eprintln!("crash_producer: {} acknowledged; {out}", acked.len());
    assert_acknowledged_readable(&bootstrap, &topic, &acked, "separate controllers");
}

#[test]
fn a_broker_only_node_joins_takes_a_partition_and_survives_a_restart() {
    let mut cluster = Cluster::start(3, &["auto.leader.rebalance.enable=false"]);
    wait_for_brokers(&cluster, 3);
    let topic = unique_topic("joined");
    create_topic(&cluster.bootstrap(), &topic, 1, 2, &[]);
    let doc = run_python_json(
        "confluent_client.py",
        &[
            &cluster.bootstrap(),
            "produce",
            &topic,
            "--count",
            "300",
            "--size",
            "50",
        ],
        CLIENT_TIMEOUT,
    );
    let delivered = check::records(&doc, "delivered");

    let new = cluster.add_broker(&["auto.leader.rebalance.enable=false"]);
    assert_eq!(new, 4);
    wait_for_brokers(&cluster, 4);
    let at_node1 = cluster.node(1).addr.to_string();
    let text = gregor(&["cluster", "describe", "--bootstrap-server", &at_node1]);
    assert_eq!(text.matches(" live").count(), 4, "{text}");
    let rows: Vec<Vec<&str>> = text
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert!(
        rows.iter()
            .any(|r| r.first() == Some(&"4") && r.get(1) == Some(&"observer")),
        "node 4 is an observer of the quorum:\n{text}"
    );

    // Move the partition onto the new node (as its preferred leader) and elect it.
    let (_, parts) = describe(&cluster.bootstrap(), &topic);
    let kept = parts[&0].replicas[0];
    let target = format!("{new},{kept}");
    gregor(&[
        "topics",
        "reassign",
        "--topic",
        &topic,
        "--partition",
        "0",
        "--replicas",
        &target,
        "--bootstrap-server",
        &at_node1,
    ]);
    wait_for(
        &cluster,
        "the reassignment completes with the new node in the ISR",
        Duration::from_secs(60),
        || {
            let (_, parts) = describe(&cluster.bootstrap(), &topic);
            let p = parts.get(&0)?;
            (p.replicas == vec![new, kept] && p.isr.contains(&new)).then_some(())
        },
    );
    let elect = |cluster: &Cluster| {
        wait_for(
            cluster,
            "the new node leads after elect-leaders",
            Duration::from_secs(60),
            || {
                let _ = std::process::Command::new(gregor_bin())
                    .args(["topics", "elect-leaders", "--topic", &topic])
                    .args(["--bootstrap-server", &at_node1])
                    .output();
                (leader_at(cluster.node(new).addr, &topic) == Some(new)).then_some(())
            },
        )
    };
    elect(&cluster);
    let only_new = cluster.node(new).addr.to_string();
    let consumed = consume(&only_new, &topic);
    check::assert_same_records(300, &delivered, &consumed);
    assert!(
        !hosts_topic(cluster.node(3).data_dir(), &topic) || kept == 3,
        "the removed replica's log is deleted"
    );

    // Restarted, it is still a member, rejoins the ISR, leads again and serves the same data.
    cluster.restart(new);
    wait_for_brokers(&cluster, 4);
    elect(&cluster);
    let consumed = consume(&only_new, &topic);
    check::assert_same_records(300, &delivered, &consumed);
}

/// The brokers DescribeCluster (v1, fenced ones included) lists at `addr`, sorted.
fn registered_at(addr: std::net::SocketAddr) -> Vec<i32> {
    let resp: DescribeClusterResponse = RawConn::connect(addr)
        .request(
            2,
            &DescribeClusterRequest::default().with_include_fenced_brokers(true),
        )
        .unwrap_or_else(|e| panic!("DescribeCluster at {addr}: {e}"));
    let mut ids: Vec<i32> = resp.brokers.iter().map(|b| b.broker_id.0).collect();
    ids.sort_unstable();
    ids
}

/// A broker-only node that died for good is removed with Kafka's `kafka-cluster.sh
/// unregister` (UnregisterBroker): every node stops listing it (DescribeCluster with fenced
/// brokers, `gregor cluster describe`, the quorum's observers), its partitions keep it as an
/// offline replica and have leaders; unregistering it again, or an id never seen, is refused (BROKER_ID_NOT_REGISTERED)
/// by Kafka's tool and by `gregor cluster unregister`; started again, it registers again.
#[test]
fn a_dead_broker_is_unregistered_with_kafka_cluster_sh() {
    let toolbox = gregor_e2e::kafka_tools::Toolbox::installed();
    let mut cluster = Cluster::start(3, &[]);
    let gone = cluster.add_broker(&[]);
    wait_for_brokers(&cluster, 4);
    let topic = unique_topic("unregister");
    // Four partitions, two replicas each, over four brokers: node 4 holds some.
    create_topic(&cluster.bootstrap(), &topic, 4, 2, &[]);
    let on_gone: Vec<i32> = wait_for(
        &cluster,
        "every replica in the ISR",
        Duration::from_secs(60),
        || {
            let (_, parts) = describe(&cluster.bootstrap(), &topic);
            (parts.len() == 4 && parts.values().all(|p| p.isr.len() == 2)).then(|| {
                parts
                    .iter()
                    .filter(|(_, p)| p.replicas.contains(&gone))
                    .map(|(n, _)| *n)
                    .collect()
            })
        },
    );
    assert!(!on_gone.is_empty(), "node {gone} holds no replica");
    let at_node1 = cluster.node(1).addr.to_string();
    assert_eq!(registered_at(cluster.node(1).addr), [1, 2, 3, gone]);

    cluster.kill9(gone);
    let kafka_cluster = |args: &[&str]| {
        let mut all = vec!["unregister", "--bootstrap-server", at_node1.as_str()];
        all.extend_from_slice(args);
        toolbox.run("kafka-cluster.sh", &all, None, Duration::from_secs(90))
    };
    let id = gone.to_string();
    let run = kafka_cluster(&["--id", &id]);
    assert_eq!(
        run.stdout.trim(),
        format!("Broker {gone} is no longer registered."),
        "{}",
        run.stderr
    );
    for node in [1, 2, 3] {
        let addr = cluster.node(node).addr;
        wait_for(
            &cluster,
            "the registration is gone at every node",
            Duration::from_secs(15),
            || (registered_at(addr) == [1, 2, 3]).then_some(()),
        );
    }
    // Nor is it an observer of the metadata quorum any more (the learner was removed).
    wait_for(
        &cluster,
        "the quorum no longer has the node as an observer",
        Duration::from_secs(15),
        || {
            let (_, _, observers) = quorum_at(cluster.node(1).addr)?;
            (!observers.contains(&gone)).then_some(())
        },
    );
    let text = gregor(&["cluster", "describe", "--bootstrap-server", &at_node1]);
    assert!(
        !text
            .lines()
            .any(|l| l.split_whitespace().next() == Some(id.as_str())),
        "node {gone} is not listed:\n{text}"
    );
    let (_, parts) = describe(&cluster.bootstrap(), &topic);
    for n in &on_gone {
        let p = &parts[n];
        assert!(p.replicas.contains(&gone), "partition {n}: {p:?}");
        assert!(!p.isr.contains(&gone), "partition {n}: {p:?}");
        assert!(p.leader >= 0 && p.leader != gone, "partition {n}: {p:?}");
    }

    // Refused: the same id again, one never seen; Kafka's tool and gregor's.
    for refused in [id.as_str(), "9"] {
        let run = kafka_cluster(&["--id", refused]);
        assert!(
            format!("{}{}", run.stdout, run.stderr).contains("BrokerIdNotRegisteredException"),
            "kafka-cluster.sh unregister --id {refused}: {}\n{}",
            run.stdout,
            run.stderr
        );
        let out = std::process::Command::new(gregor_bin())
            .args(["cluster", "unregister", "--id", refused])
            .args(["--bootstrap-server", &at_node1])
            .output()
            .expect("run gregor");
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("BROKER_ID_NOT_REGISTERED"), "{err}");
    }

    // Back after all (its log still names it a learner): it joins the quorum again,
    // registers again and takes its place in the ISRs.
    cluster.restart(gone);
    wait_for_brokers(&cluster, 4);
    assert_eq!(registered_at(cluster.node(1).addr), [1, 2, 3, gone]);
    wait_for(
        &cluster,
        "the node an observer of the quorum again",
        Duration::from_secs(30),
        || {
            let (_, _, observers) = quorum_at(cluster.node(1).addr)?;
            observers.contains(&gone).then_some(())
        },
    );
    wait_for(
        &cluster,
        "the returned broker back in the ISRs",
        Duration::from_secs(60),
        || {
            let (_, parts) = describe(&cluster.bootstrap(), &topic);
            on_gone
                .iter()
                .all(|n| parts.get(n).is_some_and(|p| p.isr.contains(&gone)))
                .then_some(())
        },
    );
}

/// Replaces the value after `flag` in `args`.
fn set_flag(args: &mut [String], flag: &str, value: String) {
    let i = args
        .iter()
        .position(|a| a == flag)
        .unwrap_or_else(|| panic!("no {flag} in {args:?}"));
    args[i + 1] = value;
}

fn flag<'a>(args: &'a [String], flag: &str) -> &'a str {
    let i = args
        .iter()
        .position(|a| a == flag)
        .unwrap_or_else(|| panic!("no {flag} in {args:?}"));
    &args[i + 1]
}

#[test]
fn a_node_with_other_voters_is_refused_and_the_others_serve() {
    let mut cluster = Cluster::prepare(
        &[Role::Combined; 3],
        &["offsets.topic.replication.factor=2"],
    );
    let voters = format!(
        "{},4@{}",
        flag(cluster.node(3).args(), "--voters"),
        free_port()
    );
    set_flag(cluster.args_mut(3), "--voters", voters);
    cluster.start_nodes(&[1, 2]);
    cluster.launch(3);
    let refused_by_peer = "voter set mismatch: this node is configured with voters {1, 2, 3}, \
                           the peer with {1, 2, 3, 4}";
    wait_for(
        &cluster,
        "nodes 1-2 refuse node 3 naming both voter sets, and node 3 says so",
        Duration::from_secs(30),
        || {
            let peers = cluster.node(1).logs().contains(refused_by_peer)
                || cluster.node(2).logs().contains(refused_by_peer);
            let own = cluster.node(3).logs();
            let own = own.contains("a metadata quorum peer refuses this node")
                && own.contains(refused_by_peer);
            (peers && own).then_some(())
        },
    );
    // Nodes 1-2 serve; node 3 never does.
    let bootstrap = bootstrap_of(&cluster, &[1, 2]);
    let topic = unique_topic("two-of-three");
    create_topic(&bootstrap, &topic, 1, 2, &[]);
    let doc = run_python_json(
        "confluent_client.py",
        &[&bootstrap, "produce", &topic, "--count", "100"],
        CLIENT_TIMEOUT,
    );
    let delivered = check::records(&doc, "delivered");
    check::assert_same_records(100, &delivered, &consume(&bootstrap, &topic));
    assert!(
        !cluster.node(3).logs().contains("listening on"),
        "node 3 never serves:\n{}",
        cluster.node(3).logs()
    );
}

#[test]
fn a_second_process_with_a_live_brokers_id_exits() {
    let mut cluster = Cluster::start(3, &[]);
    wait_for_brokers(&cluster, 3);
    let original = cluster.add_broker(&[]);
    wait_for_brokers(&cluster, 4);

    // Same node id and voters, its own data dir and ports.
    let dir = tempfile::tempdir().expect("temp dir");
    let mut args = cluster.node(original).args().to_vec();
    set_flag(&mut args, "--data-dir", dir.path().display().to_string());
    set_flag(&mut args, "--listen", free_port().to_string());
    set_flag(&mut args, "--controller-listen", free_port().to_string());
    let log = Default::default();
    let (mut impostor, _lines) = launch_server(&args, &log).expect("launch the impostor");
    let status = wait_timeout(&mut impostor, Duration::from_secs(40));
    let text = {
        let lines = log.lock().unwrap_or_else(|p| p.into_inner());
        lines.iter().cloned().collect::<Vec<_>>().join("\n")
    };
    let Some(status) = status else {
        let _ = impostor.kill();
        panic!("the impostor did not exit:\n{text}");
    };
    assert!(
        !status.success(),
        "the impostor exits with an error:\n{text}"
    );
    assert!(
        text.contains("DUPLICATE_BROKER_REGISTRATION")
            && text.contains(&format!("node.id {original} is already registered")),
        "the impostor names the problem:\n{text}"
    );
    assert!(
        !text.contains("listening on"),
        "the impostor never served:\n{text}"
    );
    // The original still serves, registered and unfenced all along.
    let (brokers, _) = describe(
        &cluster.node(original).addr.to_string(),
        "__consumer_offsets",
    );
    assert_eq!(brokers, vec![1, 2, 3, 4]);
    let original_log = cluster.node(original).logs();
    assert!(
        !original_log.contains("registering again"),
        "the original kept its registration:\n{original_log}"
    );

    // The original dies; a new process under its id (a restart) is accepted once the old
    // session is over.
    cluster.kill9(original);
    thread::sleep(Duration::from_millis(200));
    cluster.restart(original);
    wait_for_brokers(&cluster, 4);
}
