//! The metadata quorum over TLS: every node's controller listener is `SSL`
//! (`listener.security.protocol.map=CONTROLLER:SSL`, the listener's own `ssl.*` keys, client
//! certificates required), so Raft, the brokers' registrations and heartbeats, learners' joins
//! and Kafka's tools on that port all go over TLS, each node showing its certificate.
//!
//! ```text
//!   node i ══ TLS + client certificate, through the harness's LinkProxy ══▶ node j's controller listener
//!   confluent-kafka ──PLAINTEXT──▶ the brokers' client listeners
//!   kafka-metadata-quorum.sh --bootstrap-controller --command-config (SSL) ──▶ a controller
//! ```
//!
//! `the_quorum_runs_over_tls_through_a_controller_kill`: a controller-only node and two
//! combined nodes form the quorum; a broker-only node joins it as a learner. Kafka's
//! `kafka-metadata-quorum.sh` describes the quorum over SSL with a client certificate, and is
//! turned away without one (`ssl.client.auth=required`). A topic is created; an acks=all
//! producer streams while the quorum leader (the active controller) is killed with -9; another
//! controller is elected and the stream goes on; every acknowledged record reads back. A
//! broker-only node whose certificate the cluster does not trust never joins: the voters refuse
//! its TLS handshake, and it never serves.

use std::time::{Duration, Instant};

use gregor_e2e::cluster::{Cluster, Role};
use gregor_e2e::cluster_client::{
    acked_lines, assert_acknowledged_readable, client, create_topic, quorum_leader, start_producer,
    stop_producer, wait_for, wait_for_brokers,
};
use gregor_e2e::kafka_tools::Toolbox;
use gregor_e2e::pki::Pki;
use gregor_e2e::unique_topic;

/// The settings every node gets: the controller listener is SSL with the PKI's keystore and
/// truststore, client certificates required.
fn controller_ssl(pki: &Pki, keystore: &str) -> Vec<String> {
    vec![
        "controller.listener.names=CONTROLLER".to_string(),
        "listener.security.protocol.map=CONTROLLER:SSL,PLAINTEXT:PLAINTEXT".to_string(),
        // The harness's --listen and --controller-listen give these their addresses.
        "listeners=PLAINTEXT://127.0.0.1:0,CONTROLLER://127.0.0.1:0".to_string(),
        "listener.name.controller.ssl.keystore.type=PEM".to_string(),
        format!("listener.name.controller.ssl.keystore.location={keystore}"),
        "listener.name.controller.ssl.truststore.type=PEM".to_string(),
        format!(
            "listener.name.controller.ssl.truststore.location={}",
            pki.path("ca.pem").display()
        ),
        "listener.name.controller.ssl.client.auth=required".to_string(),
    ]
}

#[test]
fn the_quorum_runs_over_tls_through_a_controller_kill() {
    let started = Instant::now();
    let toolbox = Toolbox::installed();
    let pki = Pki::generate();
    let server_pem = pki.path("server.pem").display().to_string();
    let sets = controller_ssl(&pki, &server_pem);
    let sets: Vec<&str> = sets.iter().map(String::as_str).collect();
    let mut cluster =
        Cluster::start_with_roles(&[Role::Controller, Role::Combined, Role::Combined], &sets);
    let learner = cluster.add_broker(&sets);
    wait_for_brokers(&cluster, 3);
    eprintln!(
        "quorum up over TLS, broker-only node {learner} joined, after {:.1} s",
        started.elapsed().as_secs_f64()
    );

    // Kafka's tool on a controller's SSL listener: with a client certificate it describes the
    // quorum; without one it is turned away (ssl.client.auth=required).
    let dir = tempfile::tempdir().expect("temp dir");
    let with_cert = dir.path().join("ssl-with-cert.properties");
    let without_cert = dir.path().join("ssl.properties");
    let ssl = format!(
        "security.protocol=SSL\nssl.truststore.type=PEM\nssl.truststore.location={}\n",
        pki.path("ca.pem").display()
    );
    // Turned away, the client would retry for its default minute.
    std::fs::write(
        &without_cert,
        format!("{ssl}default.api.timeout.ms=6000\nrequest.timeout.ms=3000\n"),
    )
    .expect("write the client config");
    std::fs::write(
        &with_cert,
        format!("{ssl}ssl.keystore.type=PEM\nssl.keystore.location={server_pem}\n"),
    )
    .expect("write the client config");
    let controller = cluster.node(1).controller_addr.to_string();
    let quorum_tool = |config: &std::path::Path, timeout: u64| {
        toolbox.quorum_status(&controller, config, Duration::from_secs(timeout))
    };
    let run = quorum_tool(&with_cert, 60);
    let out = run
        .ok()
        .unwrap_or_else(|e| panic!("{e}\n{}\n{}", run.transcript(), cluster.logs()));
    assert!(
        out.contains("LeaderId:") && out.contains("CurrentVoters:"),
        "{out}"
    );
    for id in [1, 2, 3] {
        assert!(out.contains(&format!("\"id\": {id}")), "voter {id}: {out}");
    }
    let refused = quorum_tool(&without_cert, 30);
    assert!(
        !refused.succeeded() && !refused.transcript().contains("LeaderId:"),
        "a client without a certificate described the quorum:\n{}",
        refused.transcript()
    );
    assert!(
        cluster
            .node(1)
            .logs()
            .contains("a Kafka client without a certificate on the controller listener"),
        "the controller says why it closed the connection\n{}",
        cluster.node(1).logs()
    );
    eprintln!(
        "kafka-metadata-quorum over SSL: described with a certificate, refused without ({:.1} s)",
        started.elapsed().as_secs_f64()
    );

    let bootstrap = cluster.bootstrap();
    let topic = unique_topic("controller-tls");
    create_topic(&bootstrap, &topic, 3, 2, &[]);
    let ack_file = dir.path().join("acked.txt");
    let producer = start_producer(&bootstrap, &topic, &ack_file, 60);
    let acks = |cluster: &Cluster, n: usize, what: &str| {
        wait_for(cluster, what, Duration::from_secs(30), || {
            (acked_lines(&ack_file).len() >= n).then_some(())
        })
    };
    acks(&cluster, 500, "500 acks before the kill");
    let leader = quorum_leader(cluster.node(learner).addr);
    assert!(
        cluster.controller_ids().contains(&leader),
        "the active controller {leader} is a voter"
    );
    cluster.kill9(leader);
    let killed_at = Instant::now();
    let acked_at_kill = acked_lines(&ack_file).len();
    let live: Vec<i32> = cluster
        .broker_ids()
        .into_iter()
        .filter(|&id| id != leader)
        .collect();
    let live_bootstrap = live
        .iter()
        .map(|&id| cluster.node(id).addr.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let next = wait_for(
        &cluster,
        "another controller elected over TLS",
        Duration::from_secs(30),
        || {
            let c = quorum_leader(cluster.node(learner).addr);
            (c >= 0 && c != leader).then_some(c)
        },
    );
    acks(&cluster, acked_at_kill + 500, "500 acks after the kill");
    eprintln!(
        "controller {leader} killed at {acked_at_kill} acks; node {next} elected; 500 more acks \
         {:.1} s after the kill",
        killed_at.elapsed().as_secs_f64()
    );
    let out = stop_producer(producer);
    let acked = acked_lines(&ack_file);
    assert!(acked.len() > acked_at_kill + 500, "{out}");
    assert_acknowledged_readable(&live_bootstrap, &topic, &acked, "after the controller kill");

    // A node whose certificate the cluster does not trust cannot join.
    let rogue = pki.rogue_keystore().display().to_string();
    let rogue_sets = controller_ssl(&pki, &rogue);
    let rogue_sets: Vec<&str> = rogue_sets.iter().map(String::as_str).collect();
    let outsider = cluster.prepare_broker(&rogue_sets);
    cluster.launch(outsider);
    wait_for(
        &cluster,
        "a voter refuses the outsider's TLS handshake",
        Duration::from_secs(20),
        || {
            cluster
                .controller_ids()
                .iter()
                .filter(|&&id| id != leader)
                .any(|&id| {
                    cluster
                        .node(id)
                        .logs()
                        .contains("TLS handshake failed on the controller listener")
                })
                .then_some(())
        },
    );
    std::thread::sleep(Duration::from_secs(3));
    let outsider_log = cluster.node(outsider).logs();
    assert!(
        !outsider_log.contains("listening on"),
        "the outsider served:\n{outsider_log}"
    );
    assert!(
        outsider_log.contains("a voter refuses this learner"),
        "the outsider must say why it cannot join:\n{outsider_log}"
    );
    let brokers = client(&live_bootstrap, &["describe", "__consumer_offsets"])["brokers"].clone();
    assert!(
        !brokers
            .as_array()
            .into_iter()
            .flatten()
            .any(|b| b.as_i64() == Some(i64::from(outsider))),
        "the outsider registered as a broker: {brokers}"
    );
    eprintln!("{:.1} s in all", started.elapsed().as_secs_f64());
}
