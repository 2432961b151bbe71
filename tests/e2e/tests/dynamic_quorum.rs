//! A dynamic controller quorum (KIP-853) on real processes, driven by Kafka 4.4's own tools:
//! one controller-only voter (node 1) and one broker (node 2), then three more controller-only
//! nodes (3, 4 and 5) started outside the voters.
//!
//! - `controllers_are_added_and_removed_with_kafka_metadata_quorum`:
//!   `kafka-metadata-quorum add-controller` is refused at kraft.version 0
//!   (UNSUPPORTED_VERSION); `kafka-features upgrade --feature kraft.version=1` passes; nodes 3
//!   and 4 are added with `add-controller` (3 through node 1's controller listener, 4 through
//!   the broker, which forwards it; each from a Kafka-style controller properties file,
//!   whose `log.dirs` holds the node's `meta.properties` with its `directory.id`), and
//!   `describe --status` lists voters 1, 3 and 4, `describe --replication` their directory
//!   ids; `remove-controller` with another directory id is refused (VOTER_NOT_FOUND);
//!   `remove-controller` takes out node 1, the leader, which is then killed -9. Voters 3 and 4 elect a leader, the broker creates a
//!   topic through it and forwards `describe --status` to it; node 3 is killed -9 and restarted with its configured voters still
//!   `{1}`: it takes the log's voters, and a second topic is created. Then gregor's own CLI
//!   through the broker: `gregor cluster add-controller` makes node 5 a voter (its directory
//!   id read from its data dir), `remove-controller` under another directory id is refused,
//!   and without one takes it out again.
//!
//! Run: `cargo test -p gregor-e2e --test dynamic_quorum` (after `cargo build -p gregor-cli`;
//! needs the toolbox for Kafka's tools).

use std::time::Duration;

use gregor_e2e::broker::{gregor_cli, gregor_cli_ok};
use gregor_e2e::cluster::{Cluster, Role};
use gregor_e2e::cluster_client::{wait_for, wait_for_brokers};
use gregor_e2e::fault_proxy::LinkMode;
use gregor_e2e::kafka_tools::Toolbox;

const TIMEOUT: Duration = Duration::from_secs(90);

/// `directory.id` from a node's `meta.properties`.
fn directory_id(cluster: &Cluster, id: i32) -> String {
    cluster.node(id).meta_property("directory.id")
}

/// A Kafka controller properties file for node `id`, as `add-controller --command-config`
/// reads it.
fn controller_properties(cluster: &Cluster, id: i32, dir: &std::path::Path) -> String {
    let node = cluster.node(id);
    let path = dir.join(format!("controller-{id}.properties"));
    std::fs::write(
        &path,
        format!(
            "node.id={id}\nprocess.roles=controller\ncontroller.listener.names=CONTROLLER\n\
             listeners=CONTROLLER://{}\nlog.dirs={}\n",
            node.controller_addr,
            node.data_dir().display()
        ),
    )
    .expect("write the properties");
    path.display().to_string()
}

#[test]
fn controllers_are_added_and_removed_with_kafka_metadata_quorum() {
    let mut cluster = Cluster::start_with_roles(
        &[Role::Controller, Role::Broker],
        &["offsets.topic.replication.factor=1"],
    );
    wait_for_brokers(&cluster, 1);
    let toolbox = Toolbox::installed();
    let tmp = tempfile::tempdir().expect("temp dir");
    let broker = cluster.node(2).addr.to_string();
    let three = cluster.prepare_observer_controller(&[]);
    let four = cluster.prepare_observer_controller(&[]);
    let five = cluster.prepare_observer_controller(&[]);
    let controllers: std::collections::BTreeMap<i32, String> = [1, three, four, five]
        .into_iter()
        .map(|id| (id, cluster.node(id).controller_addr.to_string()))
        .collect();
    let quorum = |at: i32, args: &[&str]| {
        let mut all = vec!["--bootstrap-controller", controllers[&at].as_str()];
        all.extend_from_slice(args);
        toolbox.run("kafka-metadata-quorum.sh", &all, None, TIMEOUT)
    };
    cluster.start_nodes(&[three, four, five]);
    let props3 = controller_properties(&cluster, three, tmp.path());
    let props4 = controller_properties(&cluster, four, tmp.path());

    // kraft.version 0: the configured voters, for good.
    let refused = quorum(1, &["--command-config", &props3, "add-controller"]);
    assert!(
        !refused.status.is_some_and(|s| s.success()) && refused.stderr.contains("kraft.version"),
        "{}",
        refused.transcript()
    );
    let upgraded = toolbox.run(
        "kafka-features.sh",
        &[
            "--bootstrap-server",
            &broker,
            "upgrade",
            "--feature",
            "kraft.version=1",
        ],
        None,
        TIMEOUT,
    );
    assert!(
        upgraded.stdout.contains("kraft.version was upgraded to 1."),
        "{}",
        upgraded.transcript()
    );

    // 3 through the controller listener, 4 through the broker, which forwards it.
    for (id, props) in [(three, &props3), (four, &props4)] {
        let added = if id == three {
            quorum(1, &["--command-config", props, "add-controller"])
        } else {
            toolbox.run(
                "kafka-metadata-quorum.sh",
                &[
                    "--bootstrap-server",
                    &broker,
                    "--command-config",
                    props,
                    "add-controller",
                ],
                None,
                TIMEOUT,
            )
        };
        assert!(
            added.status.is_some_and(|s| s.success())
                && added.stdout.contains(&format!(
                    "Added controller {id} with directory id {}",
                    directory_id(&cluster, id)
                )),
            "{}\n{}",
            added.transcript(),
            cluster.logs()
        );
    }
    let status = quorum(1, &["describe", "--status"]);
    assert_eq!(
        status.quorum_voters(),
        Some(vec![1, three, four]),
        "{}",
        status.transcript()
    );

    // The added controllers' directory ids, as their JOINs told them.
    let replication = quorum(1, &["describe", "--replication"]);
    for id in [three, four] {
        let dir = directory_id(&cluster, id);
        assert!(
            replication.stdout.lines().any(|l| {
                let cols: Vec<&str> = l.split_whitespace().collect();
                cols.first() == Some(&id.to_string().as_str()) && cols.get(1) == Some(&dir.as_str())
            }),
            "{}",
            replication.transcript()
        );
    }
    // gregor's own view: the quorum table's DIRECTORY column.
    let described = gregor_cli_ok(&broker, &["cluster", "describe"]);
    for id in [three, four] {
        let dir = directory_id(&cluster, id);
        assert!(
            described
                .lines()
                .any(|l| l.split_whitespace().next() == Some(&id.to_string()) && l.contains(&dir)),
            "{described}"
        );
    }
    // A voter is named by id and directory id.
    let wrong = quorum(
        1,
        &[
            "remove-controller",
            "--controller-id",
            &four.to_string(),
            "--controller-directory-id",
            "AAAAAAAAAAAAAAAAAAAAAQ",
        ],
    );
    assert!(
        wrong.stderr.contains("VoterNotFoundException")
            || wrong.stderr.contains("Cannot remove voter"),
        "{}",
        wrong.transcript()
    );

    // The leader takes itself out, and dies.
    let dir1 = directory_id(&cluster, 1);
    let removed = quorum(
        1,
        &[
            "remove-controller",
            "--controller-id",
            "1",
            "--controller-directory-id",
            &dir1,
        ],
    );
    assert!(
        removed.status.is_some_and(|s| s.success())
            && removed.stdout.contains("Removed KRaft controller 1"),
        "{}\n{}",
        removed.transcript(),
        cluster.logs()
    );
    cluster.kill9(1);
    let status = wait_for(&cluster, "a leader among 3 and 4", TIMEOUT, || {
        let s = quorum(three, &["describe", "--status"]);
        s.quorum_leader()
            .filter(|l| [three, four].contains(l))
            .map(|_| s)
    });
    assert_eq!(
        status.quorum_voters(),
        Some(vec![three, four]),
        "{}",
        status.transcript()
    );
    let topics = |name: &str| {
        toolbox.run(
            "kafka-topics.sh",
            &[
                "--bootstrap-server",
                &broker,
                "--create",
                "--topic",
                name,
                "--partitions",
                "2",
            ],
            None,
            TIMEOUT,
        )
    };
    let created = topics("after-the-move");
    assert!(
        created.stdout.contains("Created topic after-the-move"),
        "{}\n{}",
        created.transcript(),
        cluster.logs()
    );

    // The broker forwards DescribeQuorum to the new leader, which is in no configuration.
    let via_broker = toolbox.run(
        "kafka-metadata-quorum.sh",
        &["--bootstrap-server", &broker, "describe", "--status"],
        None,
        TIMEOUT,
    );
    assert_eq!(
        via_broker.quorum_voters(),
        Some(vec![three, four]),
        "{}",
        via_broker.transcript()
    );

    // A voter added at run time restarts on its configured voters ({1}, dead and removed).
    cluster.kill9(three);
    cluster.start_nodes(&[three]);
    wait_for(&cluster, "a leader after the restart", TIMEOUT, || {
        let s = quorum(four, &["describe", "--status"]);
        s.quorum_leader().filter(|l| [three, four].contains(l))
    });
    let created = topics("after-the-restart");
    assert!(
        created.stdout.contains("Created topic after-the-restart"),
        "{}\n{}",
        created.transcript(),
        cluster.logs()
    );

    // gregor's own CLI, through the broker: 5 in, then out (not under another directory id).
    let endpoint5 = controllers[&five].clone();
    let data5 = cluster.node(five).data_dir().display().to_string();
    let out = gregor_cli_ok(
        &broker,
        &[
            "cluster",
            "add-controller",
            "--id",
            &five.to_string(),
            "--endpoint",
            &endpoint5,
            "--data-dir",
            &data5,
        ],
    );
    assert!(out.contains("is a voter of the metadata quorum"), "{out}");
    let status = quorum(four, &["describe", "--status"]);
    assert_eq!(
        status.quorum_voters(),
        Some(vec![three, four, five]),
        "{}",
        status.transcript()
    );
    let (ok, _, err) = gregor_cli(
        &broker,
        &[
            "cluster",
            "remove-controller",
            "--id",
            &five.to_string(),
            "--directory-id",
            "AAAAAAAAAAAAAAAAAAAAAQ",
        ],
    );
    assert!(!ok && err.contains("Cannot remove voter"), "{err}");
    gregor_cli_ok(
        &broker,
        &["cluster", "remove-controller", "--id", &five.to_string()],
    );
    let status = quorum(four, &["describe", "--status"]);
    assert_eq!(
        status.quorum_voters(),
        Some(vec![three, four]),
        "{}",
        status.transcript()
    );
}

/// The quorum leader of the cluster as `kafka-metadata-quorum describe --status` at `at`
/// reports it, with the voters.
fn status_at(toolbox: &Toolbox, at: &str) -> (Option<i32>, Option<Vec<i32>>) {
    let s = toolbox.run(
        "kafka-metadata-quorum.sh",
        &["--bootstrap-server", at, "describe", "--status"],
        None,
        TIMEOUT,
    );
    (s.quorum_leader(), s.quorum_voters())
}

/// Seeded (`GREGOR_QUORUM_SEEDS`, default "1,2"): three combined nodes at kraft.version 1 under
/// an acks=all producer (a topic on all three, min ISR 2); controller 4 is added with `gregor
/// cluster add-controller` over slowed links between the voters while a voter is killed -9
/// after a seeded delay (odd seeds the quorum leader, even seeds a follower), so the change may
/// die at any step. The killed node restarts;
/// the change is retried until 4 is a voter (DUPLICATE_VOTER counts: it got in), which needs
/// the quorum out of any half-done joint membership; then node 1 is removed and a topic is
/// created. Every acknowledged record reads back, and the replicas are identical.
#[test]
fn a_voter_change_under_a_kill_loses_nothing() {
    use gregor_e2e::cluster_client::{
        acked_lines, assert_acknowledged_readable, create_topic, start_producer, stop_producer,
        wait_for_identical_replicas,
    };
    let seeds: Vec<u64> = std::env::var("GREGOR_QUORUM_SEEDS")
        .unwrap_or_else(|_| "1,2".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let toolbox = Toolbox::installed();
    for seed in seeds {
        let mut rng = gregor_e2e::mutate::Rng::new(seed);
        let mut cluster = Cluster::start(3, &[]);
        wait_for_brokers(&cluster, 3);
        let bootstrap = cluster.bootstrap();
        let upgraded = gregor_cli_ok(
            &bootstrap,
            &["features", "upgrade", "--feature", "kraft.version=1"],
        );
        assert!(upgraded.contains("kraft.version"), "{upgraded}");
        let topic = gregor_e2e::unique_topic(&format!("quorum{seed}"));
        create_topic(&bootstrap, &topic, 2, 3, &["min.insync.replicas=2"]);
        let dir = tempfile::tempdir().expect("temp dir");
        let ack_file = dir.path().join("acked.txt");
        let producer = start_producer(&bootstrap, &topic, &ack_file, 600);
        wait_for(&cluster, "300 acks", TIMEOUT, || {
            (acked_lines(&ack_file).len() >= 300).then_some(())
        });

        let four = cluster.prepare_observer_controller(&[]);
        cluster.start_nodes(&[four]);
        let endpoint = cluster.node(four).controller_addr.to_string();
        let data = cluster.node(four).data_dir().display().to_string();
        let leader = status_at(&toolbox, &cluster.node(1).addr.to_string())
            .0
            .expect("a quorum leader");
        let victim = if seed % 2 == 1 {
            leader
        } else {
            (1..=3).find(|&n| n != leader).expect("a follower")
        };
        let via = (1..=3)
            .find(|&n| n != victim)
            .map(|n| cluster.node(n).addr.to_string())
            .expect("a node to ask");
        // Slow links between the voters stretch the change (two commits) over up to a
        // second, so the kill lands before, during or after it; above about 120 ms a round
        // trip outlasts the quorum's RPC timeout, and the change waits for the links to heal.
        let link = Duration::from_millis(40 + rng.below(160) as u64);
        for a in 1..=3 {
            for b in (1..=3).filter(|&b| b != a) {
                cluster.set_link(a, b, LinkMode::Delay(link));
            }
        }
        let delay = Duration::from_millis(rng.below(1000) as u64);
        eprintln!("seed {seed}: leader {leader}, links {link:?}, killing {victim} after {delay:?}");
        let add = |at: &str| {
            gregor_cli(
                at,
                &[
                    "cluster",
                    "add-controller",
                    "--id",
                    &four.to_string(),
                    "--endpoint",
                    &endpoint,
                    "--data-dir",
                    &data,
                    "--timeout-ms",
                    "10000",
                ],
            )
        };
        let first_try = std::thread::scope(|s| {
            let adding = s.spawn(|| add(&via));
            std::thread::sleep(delay);
            cluster.kill9(victim);
            adding.join().expect("add-controller thread")
        });
        eprintln!("seed {seed}: first add-controller: {first_try:?}");
        cluster.heal();
        cluster.start_nodes(&[victim]);
        wait_for(&cluster, "4 a voter", Duration::from_secs(60), || {
            let (ok, _, err) = add(&via);
            (ok || err.contains("DUPLICATE_VOTER") || err.contains("already part")).then_some(())
        });
        wait_for(&cluster, "voters 1-4 everywhere", TIMEOUT, || {
            (1..=3)
                .all(|n| {
                    status_at(&toolbox, &cluster.node(n).addr.to_string()).1
                        == Some(vec![1, 2, 3, four])
                })
                .then_some(())
        });
        gregor_cli_ok(&via, &["cluster", "remove-controller", "--id", "1"]);
        let created = gregor_cli_ok(
            &via,
            &[
                "topics",
                "create",
                &gregor_e2e::unique_topic("after"),
                "--partitions",
                "1",
            ],
        );
        eprintln!("seed {seed}: {created}");
        let out = stop_producer(producer);
        let acked = acked_lines(&ack_file);
        eprintln!("seed {seed}: {} acknowledged; {out}", acked.len());
        wait_for_identical_replicas(&cluster, &topic, 2);
        assert_acknowledged_readable(&bootstrap, &topic, &acked, &format!("seed {seed}"));
    }
}
