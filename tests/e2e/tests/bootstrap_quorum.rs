//! Kafka 4.x's way to start a cluster, on real processes: Kafka-style properties files with
//! `controller.quorum.bootstrap.servers` and no `controller.quorum.voters`, the first
//! controller started with `--standalone` (Kafka's `kafka-storage format --standalone`), the
//! others joining through a bootstrap server and made voters with Kafka 4.4's
//! `kafka-metadata-quorum add-controller`.
//!
//! - `a_cluster_grows_from_a_standalone_controller`: node 1 (combined) starts alone; the
//!   cluster is at kraft.version 1 from its first record (`kafka-features describe`). Nodes 2
//!   and 3 (combined, `--no-initial-controllers`, the cluster id given) join through node 1's
//!   controller listener and node 4 (broker only) through node 2's, a follower, whose answer
//!   names the leader's address; `add-controller` makes 2 and 3 voters. A topic with three
//!   replicas takes records from an acks=all producer while node 1, the quorum's first leader,
//!   is killed -9: 2 and 3 elect a leader, the producer goes on, and node 1 restarts with
//!   `--standalone` still on its command line: its log has the voters, so it follows as one of
//!   them instead of starting a cluster of its own. Every acknowledged record reads back.
//! - `three_initial_controllers_start_a_cluster_together`: `--initial-controllers` with
//!   directory ids on three combined nodes started at once; each directory takes its id,
//!   DescribeQuorum reports them, kraft.version is 1, and the quorum survives its leader's kill.
//! - `a_directory_formatted_by_kafka_storage_starts_without_flags`: Kafka's own `kafka-storage
//!   format --standalone`, then `gregor server --config` with no flag: Kafka's cluster and
//!   directory ids, this node the first voter, kraft.version 1; it restarts the same way.
//! - `a_controller_that_is_its_own_only_bootstrap_server_is_told_to_use_standalone`: a node whose
//!   only bootstrap server is itself, with neither flag, is refused at start with what to add.
//! - `controllers_with_auto_join_make_themselves_voters`: `controller.quorum.auto.join.enable`
//!   on two joining controllers makes them voters with no `add-controller`; one's disk is then
//!   replaced under an acks=all producer, and its new directory has the old one's voter removed
//!   and becomes the voter; every acknowledged record reads back.
//!
//! Run: `cargo test -p gregor-e2e --test bootstrap_quorum` (after `cargo build -p gregor-cli`;
//! needs the toolbox for Kafka's tools and the venv's confluent-kafka).

use std::path::Path;
use std::time::Duration;

use gregor_e2e::broker::refused_start;
use gregor_e2e::cluster::{Cluster, Role};
use gregor_e2e::cluster_client::{
    acked_lines, assert_acknowledged_readable, create_topic, describe, start_producer,
    stop_producer, wait_for,
};
use gregor_e2e::kafka_tools::Toolbox;

const TIMEOUT: Duration = Duration::from_secs(90);
/// How long the acks=all producers may run: `stop_producer` ends them. Long enough that a
/// loaded machine's slow steps (Kafka's tools start in seconds) never leave the "goes on" check
/// after the producer's own end (a CI run failed so with 30 s).
const PRODUCER_SECONDS: u32 = 300;

/// A Kafka 4.x-style `server.properties` for node `id` of `cluster`, finding the quorum
/// through `bootstrap` (a controller listener).
fn properties(cluster: &Cluster, id: i32, bootstrap: &str, dir: &Path) -> String {
    let node = cluster.node(id);
    let roles = if node.role == Role::Broker {
        "broker"
    } else {
        "broker,controller"
    };
    let path = dir.join(format!("server-{id}.properties"));
    std::fs::write(
        &path,
        format!(
            "process.roles={roles}\n\
             node.id={id}\n\
             controller.quorum.bootstrap.servers={bootstrap}\n\
             listeners=PLAINTEXT://{client},CONTROLLER://{controller}\n\
             advertised.listeners=PLAINTEXT://{client},CONTROLLER://{controller}\n\
             inter.broker.listener.name=PLAINTEXT\n\
             controller.listener.names=CONTROLLER\n\
             listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT\n\
             log.dirs={data}\n\
             num.partitions=1\n\
             offsets.topic.replication.factor=1\n\
             transaction.state.log.replication.factor=1\n\
             transaction.state.log.min.isr=1\n",
            client = node.addr,
            controller = node.controller_addr,
            data = node.data_dir().display(),
        ),
    )
    .expect("write the properties");
    path.display().to_string()
}

/// `cluster.id` from a node's `meta.properties`.
fn cluster_id(cluster: &Cluster, id: i32) -> String {
    cluster.node(id).meta_property("cluster.id")
}

/// `kafka-features describe` through `bootstrap` lists kraft.version finalized at 1.
fn assert_kraft_version_1(toolbox: &Toolbox, bootstrap: &str) {
    let features = toolbox.run(
        "kafka-features.sh",
        &["--bootstrap-server", bootstrap, "describe"],
        None,
        TIMEOUT,
    );
    assert!(
        features.finalizes("kraft.version", 1),
        "{}",
        features.transcript()
    );
}

#[test]
fn a_cluster_grows_from_a_standalone_controller() {
    let mut cluster = Cluster::prepare(
        &[Role::Combined, Role::Combined, Role::Combined, Role::Broker],
        &[],
    );
    let toolbox = Toolbox::installed();
    let tmp = tempfile::tempdir().expect("temp dir");
    let controller = |id: i32| cluster.node(id).controller_addr.to_string();
    let (c1, c2) = (controller(1), controller(2));
    let props: Vec<String> = [(1, &c1), (2, &c1), (3, &c1), (4, &c2)]
        .into_iter()
        .map(|(id, bootstrap)| properties(&cluster, id, bootstrap, tmp.path()))
        .collect();
    *cluster.args_mut(1) = vec!["--config".into(), props[0].clone(), "--standalone".into()];
    cluster.start_nodes(&[1]);
    let broker1 = cluster.node(1).addr.to_string();

    // The first controller's log starts at kraft.version 1.
    assert_kraft_version_1(&toolbox, &broker1);

    // The others know only a bootstrap server and the cluster's id.
    let id = cluster_id(&cluster, 1);
    for n in 2..=4 {
        let mut args = vec![
            "--config".to_string(),
            props[n as usize - 1].clone(),
            "--set".to_string(),
            format!("cluster.id={id}"),
        ];
        if n != 4 {
            args.push("--no-initial-controllers".into());
        }
        *cluster.args_mut(n) = args;
    }
    cluster.start_nodes(&[2, 3]);
    let quorum = |at: &str, args: &[&str]| {
        let mut all = vec!["--bootstrap-controller", at];
        all.extend_from_slice(args);
        toolbox.run("kafka-metadata-quorum.sh", &all, None, TIMEOUT)
    };
    for n in [2, 3] {
        let added = quorum(
            &c1,
            &["--command-config", &props[n as usize - 1], "add-controller"],
        );
        assert!(
            added.status.is_some_and(|s| s.success())
                && added.stdout.contains(&format!("Added controller {n}")),
            "{}\n{}",
            added.transcript(),
            cluster.logs()
        );
    }
    let status = quorum(&c1, &["describe", "--status"]);
    assert_eq!(
        status.quorum_voters(),
        Some(vec![1, 2, 3]),
        "{}",
        status.transcript()
    );
    // The broker joins through node 2, a follower: its answer names the leader's address.
    cluster.start_nodes(&[4]);
    let bootstrap = [2, 3, 4]
        .map(|n| cluster.node(n).addr.to_string())
        .join(",");
    wait_for(
        &cluster,
        "Metadata lists the four brokers",
        Duration::from_secs(30),
        || (describe(&bootstrap, "__consumer_offsets").0.len() == 4).then_some(()),
    );

    // Node 1, the first leader, dies under an acks=all producer.
    create_topic(&bootstrap, "grown", 3, 3, &["min.insync.replicas=2"]);
    wait_for(&cluster, "full ISRs", Duration::from_secs(30), || {
        let (_, parts) = describe(&bootstrap, "grown");
        (parts.len() == 3 && parts.values().all(|p| p.isr.len() == 3)).then_some(())
    });
    let acks = tmp.path().join("acks");
    let producer = start_producer(&bootstrap, "grown", &acks, PRODUCER_SECONDS);
    wait_for(
        &cluster,
        "records acknowledged",
        Duration::from_secs(30),
        || (acked_lines(&acks).len() > 50).then_some(()),
    );
    cluster.kill9(1);
    let status = wait_for(&cluster, "a leader among 2 and 3", TIMEOUT, || {
        let run = quorum(&c2, &["describe", "--status"]);
        run.quorum_leader()
            .filter(|l| [2, 3].contains(l))
            .map(|_| run)
    });
    assert_eq!(status.quorum_voters(), Some(vec![1, 2, 3]));
    let before = acked_lines(&acks).len();
    wait_for(
        &cluster,
        "the producer goes on",
        Duration::from_secs(60),
        || (acked_lines(&acks).len() > before + 50).then_some(()),
    );
    // Restarted with --standalone still given: its log has the voters, the flag is not used.
    cluster.restart(1);
    wait_for(&cluster, "node 1 follows as a voter", TIMEOUT, || {
        let run = quorum(&c1, &["describe", "--status"]);
        (run.quorum_leader().is_some_and(|l| l != 1) && run.quorum_voters() == Some(vec![1, 2, 3]))
            .then_some(())
    });
    let out = stop_producer(producer);
    let acked = acked_lines(&acks);
    assert!(acked.len() > before + 50, "{out}");
    let all = [1, 2, 3, 4]
        .map(|n| cluster.node(n).addr.to_string())
        .join(",");
    assert_acknowledged_readable(&all, "grown", &acked, "after node 1's kill -9 and restart");
}

/// `--initial-controllers` with directory ids, the same list on three combined nodes started
/// at once (Kafka's `kafka-storage format --initial-controllers`): they form one quorum at
/// kraft.version 1, each data directory takes the id the list gives it, DescribeQuorum
/// reports them, and with the quorum leader killed -9 the other two elect one and serve.
#[test]
fn three_initial_controllers_start_a_cluster_together() {
    const DIRS: [&str; 3] = [
        "AAAAAAAAAAAAAAAAAAAAAQ",
        "AAAAAAAAAAAAAAAAAAAAAg",
        "AAAAAAAAAAAAAAAAAAAAAw",
    ];
    let mut cluster = Cluster::prepare(&[Role::Combined, Role::Combined, Role::Combined], &[]);
    let toolbox = Toolbox::installed();
    let tmp = tempfile::tempdir().expect("temp dir");
    let controllers: Vec<String> = (1..=3)
        .map(|n| cluster.node(n).controller_addr.to_string())
        .collect();
    let initial = (1..=3)
        .map(|n| format!("{n}@{}:{}", controllers[n - 1], DIRS[n - 1]))
        .collect::<Vec<_>>()
        .join(",");
    for n in 1..=3 {
        let props = properties(&cluster, n, &controllers.join(","), tmp.path());
        *cluster.args_mut(n) = vec![
            "--config".into(),
            props,
            "--initial-controllers".into(),
            initial.clone(),
        ];
    }
    cluster.start_nodes(&[1, 2, 3]);
    let ids: Vec<String> = (1..=3).map(|n| cluster_id(&cluster, n)).collect();
    assert!(ids.iter().all(|id| *id == ids[0]), "{ids:?}");
    for n in 1..=3 {
        assert_eq!(
            cluster.node(n).meta_property("directory.id"),
            DIRS[n as usize - 1]
        );
    }
    let quorum = |at: &str, args: &[&str]| {
        let mut all = vec!["--bootstrap-controller", at];
        all.extend_from_slice(args);
        toolbox.run("kafka-metadata-quorum.sh", &all, None, TIMEOUT)
    };
    let replication = quorum(&controllers[1], &["describe", "--replication"]);
    for (n, dir) in DIRS.iter().enumerate() {
        assert!(
            replication.stdout.lines().any(|l| {
                let cols: Vec<&str> = l.split_whitespace().collect();
                cols.first() == Some(&(n + 1).to_string().as_str()) && cols.get(1) == Some(dir)
            }),
            "{}",
            replication.transcript()
        );
    }
    let bootstrap = [1, 2, 3]
        .map(|n| cluster.node(n).addr.to_string())
        .join(",");
    assert_kraft_version_1(&toolbox, &bootstrap);
    let status = quorum(&controllers[0], &["describe", "--status"]);
    let leader = status
        .quorum_leader()
        .unwrap_or_else(|| panic!("{}", status.transcript()));
    assert_eq!(status.quorum_voters(), Some(vec![1, 2, 3]));
    cluster.kill9(leader);
    let live = (1..=3)
        .filter(|&n| n != leader)
        .map(|n| cluster.node(n).addr.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let other = controllers[(1..=3).find(|&n| n != leader).expect("another") as usize - 1].clone();
    wait_for(&cluster, "a new quorum leader", TIMEOUT, || {
        let run = quorum(&other, &["describe", "--status"]);
        run.quorum_leader().filter(|&l| l != leader && l > 0)
    });
    create_topic(&live, "after", 1, 2, &[]);
    wait_for(&cluster, "the topic led", TIMEOUT, || {
        let (_, parts) = describe(&live, "after");
        parts.get(&0).filter(|p| p.leader > 0).map(|_| ())
    });
}

/// Kafka 4.x's quickstart with gregor as the server: `kafka-storage format --standalone -t ID
/// -c server.properties` (Kafka's own StorageTool), then `gregor server --config
/// server.properties` with no flag. gregor reads the format's `meta.properties` (cluster and
/// directory ids) and its bootstrap checkpoint's VotersRecord (this node the first voter), and
/// the cluster starts at kraft.version 1 with Kafka's ids.
#[test]
fn a_directory_formatted_by_kafka_storage_starts_without_flags() {
    const CLUSTER_ID: &str = "MkU3OEVBNTcwNTJENDM2Qg";
    let mut cluster = Cluster::prepare(&[Role::Combined], &[]);
    let toolbox = Toolbox::installed();
    let tmp = tempfile::tempdir().expect("temp dir");
    let controller = cluster.node(1).controller_addr.to_string();
    let props = properties(&cluster, 1, &controller, tmp.path());
    let format = toolbox.run(
        "kafka-run-class.sh",
        &[
            "kafka.tools.StorageTool",
            "format",
            "--standalone",
            "-t",
            CLUSTER_ID,
            "-c",
            &props,
        ],
        None,
        TIMEOUT,
    );
    assert!(format.succeeded(), "{}", format.transcript());
    let directory = cluster.node(1).meta_property("directory.id");
    *cluster.args_mut(1) = vec!["--config".into(), props];
    cluster.start_nodes(&[1]);
    let broker = cluster.node(1).addr.to_string();
    assert_kraft_version_1(&toolbox, &broker);
    let id = toolbox.run(
        "kafka-cluster.sh",
        &["cluster-id", "--bootstrap-server", &broker],
        None,
        TIMEOUT,
    );
    assert!(id.stdout.contains(CLUSTER_ID), "{}", id.transcript());
    let replication = toolbox.run(
        "kafka-metadata-quorum.sh",
        &[
            "--bootstrap-controller",
            &controller,
            "describe",
            "--replication",
        ],
        None,
        TIMEOUT,
    );
    assert!(
        replication.stdout.lines().any(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            cols.first() == Some(&"1")
                && cols.get(1) == Some(&directory.as_str())
                && l.contains("Leader")
        }),
        "{}",
        replication.transcript()
    );
    create_topic(&broker, "formatted", 1, 1, &[]);
    wait_for(&cluster, "the topic led", TIMEOUT, || {
        let (_, parts) = describe(&broker, "formatted");
        parts.get(&0).filter(|p| p.leader == 1).map(|_| ())
    });
    // Kafka's checkpoint is gone once the node ran; a restart takes its own log.
    assert!(!cluster
        .node(1)
        .data_dir()
        .join("__cluster_metadata-0")
        .exists());
    cluster.restart(1);
    wait_for(&cluster, "the topic led after a restart", TIMEOUT, || {
        let (_, parts) = describe(&broker, "formatted");
        parts.get(&0).filter(|p| p.leader == 1).map(|_| ())
    });
}

#[test]
fn a_controller_that_is_its_own_only_bootstrap_server_is_told_to_use_standalone() {
    let cluster = Cluster::prepare(&[Role::Combined], &[]);
    let tmp = tempfile::tempdir().expect("temp dir");
    let own = cluster.node(1).controller_addr.to_string();
    let props = properties(&cluster, 1, &own, tmp.path());
    let refusal = refused_start(&["--config", &props]);
    assert!(
        refusal.output.contains("--standalone"),
        "{}",
        refusal.output
    );
}

/// The directory id `kafka-metadata-quorum describe --replication` shows for node `id`, and
/// its status (`Leader`, `Follower`, `Observer`).
fn replication_row(toolbox: &Toolbox, controller: &str, id: i32) -> Option<(String, String)> {
    let run = toolbox.run(
        "kafka-metadata-quorum.sh",
        &[
            "--bootstrap-controller",
            controller,
            "describe",
            "--replication",
        ],
        None,
        TIMEOUT,
    );
    run.stdout.lines().find_map(|l| {
        let cols: Vec<&str> = l.split_whitespace().collect();
        (cols.first() == Some(&id.to_string().as_str()) && cols.len() >= 3)
            .then(|| (cols[1].to_string(), cols[cols.len() - 1].to_string()))
    })
}

/// `controller.quorum.auto.join.enable=true` (Kafka 4.x): controllers that join through a
/// bootstrap server make themselves voters, no `add-controller` run. Then node 3's disk is
/// replaced (killed -9, its data directory emptied, restarted with the same configuration):
/// its new directory finds a voter under its id with the old directory, has it removed, and
/// becomes a voter again under the new one; the quorum keeps its three voters and serves.
#[test]
fn controllers_with_auto_join_make_themselves_voters() {
    let mut cluster = Cluster::prepare(&[Role::Combined, Role::Combined, Role::Combined], &[]);
    let toolbox = Toolbox::installed();
    let tmp = tempfile::tempdir().expect("temp dir");
    let c1 = cluster.node(1).controller_addr.to_string();
    let props: Vec<String> = (1..=3)
        .map(|id| properties(&cluster, id, &c1, tmp.path()))
        .collect();
    *cluster.args_mut(1) = vec!["--config".into(), props[0].clone(), "--standalone".into()];
    cluster.start_nodes(&[1]);
    let id = cluster_id(&cluster, 1);
    for n in [2, 3] {
        *cluster.args_mut(n) = vec![
            "--config".to_string(),
            props[n as usize - 1].clone(),
            "--set".to_string(),
            format!("cluster.id={id}"),
            "--set".to_string(),
            "controller.quorum.auto.join.enable=true".to_string(),
            "--no-initial-controllers".to_string(),
        ];
    }
    cluster.start_nodes(&[2, 3]);
    let voters = |at: &str| {
        toolbox
            .run(
                "kafka-metadata-quorum.sh",
                &["--bootstrap-controller", at, "describe", "--status"],
                None,
                TIMEOUT,
            )
            .quorum_voters()
    };
    wait_for(
        &cluster,
        "nodes 2 and 3 voters by themselves",
        TIMEOUT,
        || (voters(&c1) == Some(vec![1, 2, 3])).then_some(()),
    );
    let before = cluster.node(3).meta_property("directory.id");
    assert_eq!(
        replication_row(&toolbox, &c1, 3).map(|r| r.0),
        Some(before.clone())
    );

    // A replaced disk (a new directory under the same id and address), under an acks=all
    // producer to a topic on all three nodes.
    let bootstrap = [1, 2, 3]
        .map(|n| cluster.node(n).addr.to_string())
        .join(",");
    create_topic(&bootstrap, "joined", 1, 3, &["min.insync.replicas=2"]);
    let in_sync = || {
        let (_, parts) = describe(&bootstrap, "joined");
        parts
            .get(&0)
            .filter(|p| p.leader > 0 && p.isr.len() == 3)
            .map(|_| ())
    };
    wait_for(
        &cluster,
        "the topic's three replicas in sync",
        TIMEOUT,
        in_sync,
    );
    let acks = tmp.path().join("acks");
    let producer = start_producer(&bootstrap, "joined", &acks, PRODUCER_SECONDS);
    wait_for(&cluster, "records acknowledged", TIMEOUT, || {
        (acked_lines(&acks).len() > 50).then_some(())
    });
    cluster.restart_empty(3);
    let after = cluster.node(3).meta_property("directory.id");
    assert_ne!(before, after);
    wait_for(
        &cluster,
        "node 3 a voter again under its new directory",
        TIMEOUT,
        || {
            let row = replication_row(&toolbox, &c1, 3)?;
            (row.0 == after && row.1 != "Observer" && voters(&c1) == Some(vec![1, 2, 3]))
                .then_some(())
        },
    );
    // Node 3 fills the partition from nothing and rejoins its ISR; the producer goes on.
    wait_for(&cluster, "node 3 back in the ISR", TIMEOUT, in_sync);
    let before_stop = acked_lines(&acks).len();
    wait_for(&cluster, "the producer goes on", TIMEOUT, || {
        (acked_lines(&acks).len() > before_stop + 20).then_some(())
    });
    let out = stop_producer(producer);
    let acked = acked_lines(&acks);
    assert!(acked.len() > 70, "{out}");
    assert_acknowledged_readable(
        &bootstrap,
        "joined",
        &acked,
        "after node 3's disk was replaced",
    );
}
