//! Cluster features (KIP-584) on three real nodes, changed with `gregor features` (the
//! counterpart of `kafka-features.sh`; Kafka's own tool is compared with Kafka 4.4 in
//! kafka_peer.rs and controller_admin_apis.rs):
//!
//! - `features_change_on_every_node_and_stay_changed_across_restarts`: `describe` lists
//!   `eligible.leader.replicas.version`, `group.version`, `metadata.version`,
//!   `share.version`, `streams.version` and
//!   `transaction.version` at a new cluster's levels (Kafka 4.4's `kafka-storage format` defaults);
//!   `disable` of `share.version` and `group.version` reaches every node's ApiVersions, and the
//!   consumer group protocol (KIP-848) is refused (UNSUPPORTED_VERSION) while classic groups
//!   are not touched; a refused upgrade (a level out of range) changes nothing and exits
//!   non-zero with the controller's reason; every node restarted, the active controller killed
//!   -9 on the way, the features stay disabled (a broker's registration does not finalize them
//!   again); `upgrade` brings both back and a consumer group member joins.
//! - `the_consumer_protocol_can_be_left_out_of_the_rebalance_protocols`: a broker started with
//!   `group.coordinator.rebalance.protocols=classic` refuses the consumer group APIs
//!   (UNSUPPORTED_VERSION) and describes the key as set, alike on Kafka 4.4.
//! - `transactions_commit_across_a_transaction_version_change`: the Java producer's
//!   transactions at `transaction.version` 1, then 2 under the same id, read once.
//!
//! Run: `cargo test -p gregor-e2e --test features` (after `cargo build -p gregor-cli`).

use std::net::SocketAddr;
use std::thread;
use std::time::{Duration, Instant};

use gregor_e2e::cluster::Cluster;
use gregor_e2e::cluster_client::{wait_for, wait_for_brokers};
use gregor_e2e::raw::{topic_name, RawConn};
use kafka_protocol::messages::{ApiVersionsRequest, ConsumerGroupHeartbeatRequest, GroupId};
use kafka_protocol::protocol::StrBytes;

use gregor_e2e::broker::{gregor_cli as cli, gregor_cli_ok as cli_ok};

/// The finalized features in `addr`'s ApiVersions (v4), sorted: `name=level`.
fn finalized(addr: SocketAddr) -> Vec<String> {
    let resp = RawConn::connect(addr)
        .request(
            4,
            &ApiVersionsRequest::default()
                .with_client_software_name(StrBytes::from_static_str("gregor-e2e"))
                .with_client_software_version(StrBytes::from_static_str("1")),
        )
        .unwrap_or_else(|e| panic!("ApiVersions of {addr}: {e}"));
    let mut levels: Vec<String> = resp
        .finalized_features
        .iter()
        .map(|f| format!("{}={}", f.name.as_str(), f.max_version_level))
        .collect();
    levels.sort();
    levels
}

/// Waits (30 s at most) until every node's ApiVersions finalizes exactly `want`.
fn every_node_finalizes(cluster: &Cluster, want: &[&str]) {
    for id in cluster.ids() {
        let addr = cluster.node(id).addr;
        wait_for(
            cluster,
            &format!("node {id} finalizes {want:?}"),
            Duration::from_secs(30),
            || (finalized(addr) == want).then_some(()),
        );
    }
}

/// A new member's ConsumerGroupHeartbeat (v0: the broker names the member) at `addr`: its
/// error code.
fn consumer_group_heartbeat(addr: SocketAddr) -> i16 {
    RawConn::connect(addr)
        .request(
            0,
            &ConsumerGroupHeartbeatRequest::default()
                .with_group_id(GroupId(StrBytes::from_static_str("features-group")))
                .with_member_epoch(0)
                .with_rebalance_timeout_ms(30_000)
                .with_subscribed_topic_names(Some(vec![topic_name("features-topic")]))
                .with_topic_partitions(Some(vec![])),
        )
        .unwrap_or_else(|e| panic!("ConsumerGroupHeartbeat at {addr}: {e}"))
        .error_code
}

/// Kafka's UNSUPPORTED_VERSION.
const UNSUPPORTED_VERSION: i16 = 35;

#[test]
fn features_change_on_every_node_and_stay_changed_across_restarts() {
    let mut cluster = Cluster::start(3, &[]);
    wait_for_brokers(&cluster, 3);
    let bootstrap = cluster.bootstrap();
    let all = [
        "eligible.leader.replicas.version=1",
        "group.version=1",
        "metadata.version=33",
        "share.version=2",
        "streams.version=1",
        "transaction.version=2",
    ];
    every_node_finalizes(&cluster, &all);
    let described = cli_ok(&bootstrap, &["features", "describe"]);
    let rows: Vec<String> = described
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    for row in [
        "eligible.leader.replicas.version 0-1 1",
        "group.version 0-1 1",
        "metadata.version 3.3-IV3 to 4.4-IV2 4.4-IV2 (33)",
        "share.version 0-2 2",
        "streams.version 0-1 1",
        "transaction.version 0-2 2",
    ] {
        assert!(
            rows.iter().any(|r| r.starts_with(&format!("{row} "))),
            "{row:?} in:\n{described}"
        );
    }

    let out = cli_ok(
        &bootstrap,
        &[
            "features",
            "disable",
            "--feature",
            "share.version",
            "--feature",
            "group.version",
        ],
    );
    assert_eq!(
        out,
        "share.version was disabled.\ngroup.version was disabled.\n"
    );
    let disabled = [
        "eligible.leader.replicas.version=1",
        "metadata.version=33",
        "streams.version=1",
        "transaction.version=2",
    ];
    every_node_finalizes(&cluster, &disabled);
    for id in cluster.ids() {
        assert_eq!(
            consumer_group_heartbeat(cluster.node(id).addr),
            UNSUPPORTED_VERSION,
            "node {id}: the consumer group protocol with group.version 0"
        );
    }

    // Refused whole: nothing changes.
    let (ok, _, err) = cli(
        &bootstrap,
        &[
            "features",
            "upgrade",
            "--feature",
            "group.version=1",
            "--feature",
            "share.version=3",
        ],
    );
    assert!(!ok, "an upgrade past the supported levels is refused");
    assert!(
        err.contains("Invalid update version 3 for feature share.version")
            && err.contains("only supports versions 0-2"),
        "{err}"
    );
    every_node_finalizes(&cluster, &disabled);

    // Every node registers again, the active controller killed on the way: the features an
    // operator disabled stay disabled.
    cluster.kill9(1);
    cluster.restart(1);
    for id in [2, 3] {
        cluster.restart(id);
    }
    wait_for_brokers(&cluster, 3);
    every_node_finalizes(&cluster, &disabled);

    let bootstrap = cluster.bootstrap();
    let out = cli_ok(
        &bootstrap,
        &[
            "features",
            "upgrade",
            "--feature",
            "group.version=1",
            "--feature",
            "share.version=2",
        ],
    );
    assert_eq!(
        out,
        "group.version was upgraded to 1.\nshare.version was upgraded to 2.\n"
    );
    every_node_finalizes(&cluster, &all);
    // A member joins at the group's coordinator (any node answers NOT_COORDINATOR or joins it).
    let codes = wait_for(
        &cluster,
        "a node takes a consumer group member",
        Duration::from_secs(30),
        || {
            let codes: Vec<i16> = cluster
                .ids()
                .iter()
                .map(|&id| consumer_group_heartbeat(cluster.node(id).addr))
                .collect();
            codes.contains(&0).then_some(codes)
        },
    );
    assert!(!codes.contains(&UNSUPPORTED_VERSION), "{codes:?}");
}

/// `group.coordinator.rebalance.protocols=classic` (a static broker config): the consumer
/// group APIs answer UNSUPPORTED_VERSION on gregor as on a Kafka 4.4 broker started with the
/// same setting (ConsumerGroupDescribe too), and the key describes as set (value and source),
/// alike on both.
#[test]
fn the_consumer_protocol_can_be_left_out_of_the_rebalance_protocols() {
    use gregor_e2e::kafka_peer::KafkaPeer;
    use gregor_e2e::Broker;
    use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
    use kafka_protocol::messages::{ConsumerGroupDescribeRequest, DescribeConfigsRequest};

    const SETTING: &str = "group.coordinator.rebalance.protocols=classic";
    let kafka = thread::spawn(|| KafkaPeer::start_with(&[SETTING]));
    let gregor = Broker::start_with(&[SETTING]);
    let kafka = kafka.join().expect("the Kafka peer's thread");
    let mut answers = Vec::new();
    for (name, addr) in [("kafka", kafka.addr()), ("gregor", gregor.addr())] {
        let mut conn = RawConn::connect(addr);
        // The group coordinator first (Kafka creates its offsets topic on the first lookup).
        conn.wait_for_group_coordinator("features-group", Duration::from_secs(30));
        let beat = consumer_group_heartbeat(addr);
        let described = conn
            .request(
                0,
                &ConsumerGroupDescribeRequest::default()
                    .with_group_ids(vec![GroupId(StrBytes::from_static_str("features-group"))]),
            )
            .unwrap_or_else(|e| panic!("{name}: ConsumerGroupDescribe: {e}"))
            .groups
            .iter()
            .map(|g| g.error_code)
            .collect::<Vec<_>>();
        let config = conn
            .request(
                4,
                &DescribeConfigsRequest::default().with_resources(vec![
                    DescribeConfigsResource::default()
                        .with_resource_type(4)
                        .with_resource_name(StrBytes::from_static_str("1"))
                        .with_configuration_keys(Some(vec![StrBytes::from_static_str(
                            "group.coordinator.rebalance.protocols",
                        )])),
                ]),
            )
            .unwrap_or_else(|e| panic!("{name}: DescribeConfigs: {e}"));
        let value: Vec<String> = config.results[0]
            .configs
            .iter()
            .map(|c| {
                format!(
                    "{}={:?} source {}",
                    c.name.as_str(),
                    c.value.as_ref().map(|v| v.to_string()),
                    c.config_source
                )
            })
            .collect();
        answers.push((name, beat, described, value));
    }
    assert_eq!(answers[0].1, UNSUPPORTED_VERSION, "Kafka: {answers:?}");
    assert_eq!(
        (&answers[1].1, &answers[1].2, &answers[1].3),
        (&answers[0].1, &answers[0].2, &answers[0].3),
        "gregor (left) against Kafka (right)"
    );
}

/// `transaction.version` moved on a live broker with `gregor features`: the Java producer
/// (`kafka-producer-perf-test --transactional-id`, a new process each time, so it reads the
/// level from ApiVersions) commits its transactions at level 1 and again, under the same
/// transactional id, at level 2; a read_committed consumer reads every record once.
#[test]
fn transactions_commit_across_a_transaction_version_change() {
    use gregor_e2e::kafka_tools::Toolbox;
    use gregor_e2e::Broker;
    let toolbox = Toolbox::installed();
    let broker = Broker::start();
    let bootstrap = broker.bootstrap();
    let perf = || {
        let run = toolbox.run(
            "kafka-producer-perf-test.sh",
            &[
                "--bootstrap-server",
                &bootstrap,
                "--topic",
                "tv-change",
                "--num-records",
                "2000",
                "--record-size",
                "100",
                "--throughput",
                "-1",
                "--transactional-id",
                "tv-change-txn",
                "--transaction-duration-ms",
                "50",
            ],
            None,
            Duration::from_secs(120),
        );
        assert!(
            run.stdout.contains("2000 records sent"),
            "{}",
            run.transcript()
        );
    };
    let levels = |want: &[&str]| {
        let deadline = Instant::now() + Duration::from_secs(15);
        while finalized(broker.addr()) != want {
            assert!(Instant::now() < deadline, "{:?}", finalized(broker.addr()));
            thread::sleep(Duration::from_millis(100));
        }
    };
    cli_ok(
        &bootstrap,
        &[
            "features",
            "downgrade",
            "--feature",
            "transaction.version=1",
        ],
    );
    levels(&[
        "eligible.leader.replicas.version=1",
        "group.version=1",
        "metadata.version=33",
        "share.version=2",
        "streams.version=1",
        "transaction.version=1",
    ]);
    perf();
    cli_ok(
        &bootstrap,
        &["features", "upgrade", "--feature", "transaction.version=2"],
    );
    levels(&[
        "eligible.leader.replicas.version=1",
        "group.version=1",
        "metadata.version=33",
        "share.version=2",
        "streams.version=1",
        "transaction.version=2",
    ]);
    perf();
    let run = toolbox.run(
        "kafka-console-consumer.sh",
        &[
            "--bootstrap-server",
            &bootstrap,
            "--topic",
            "tv-change",
            "--from-beginning",
            "--isolation-level",
            "read_committed",
            // Until 5 s pass without a record: more than 4000 would be a record read twice.
            "--timeout-ms",
            "5000",
        ],
        None,
        Duration::from_secs(120),
    );
    assert_eq!(
        run.stdout.lines().count(),
        4000,
        "read_committed reads both runs' records once\n{}",
        run.stderr
    );
}
