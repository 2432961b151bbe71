//! SASL on the controller listener: `listener.security.protocol.map=CONTROLLER:SASL_PLAINTEXT`,
//! `sasl.mechanism.controller.protocol=PLAIN`, the node's login and PLAIN's users in
//! `listener.name.controller.plain.sasl.jaas.config`, as a Kafka 4.4 `server.properties` has them.
//!
//! ```text
//!   node i ══ PLAIN login, then the quorum protocol ══▶ node j's controller listener
//!   confluent-kafka ──PLAINTEXT──▶ the brokers' client listeners
//!   kafka-metadata-quorum.sh --bootstrap-controller --command-config (SASL_PLAINTEXT, PLAIN)
//! ```
//!
//! `the_quorum_logs_in_with_plain`: three combined nodes elect a controller and register as
//! brokers over logged-in quorum connections; a topic with RF=3 takes acks=all records; Kafka's
//! `kafka-metadata-quorum.sh` describes the quorum with the right password and is refused with
//! a wrong one; the active controller is killed with -9 and restarted: another is elected, the
//! restarted node rejoins (back in the ISR), and every acknowledged record reads back. A
//! broker-only node with a wrong password never joins: the voters refuse its login, and it
//! says why.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use gregor_e2e::broker::refused_start;
use gregor_e2e::cluster::{Cluster, Role};
use gregor_e2e::cluster_client::{
    acked_lines, assert_acknowledged_readable, create_topic, describe, metadata_quorum_request,
    quorum_leader, start_producer, stop_producer, wait_for, wait_for_brokers, wait_for_isr,
};
use gregor_e2e::kafka_tools::Toolbox;
use gregor_e2e::pki::Pki;
use gregor_e2e::raw::RawConn;
use gregor_e2e::unique_topic;

const PLAIN_MODULE: &str = "org.apache.kafka.common.security.plain.PlainLoginModule";

/// The controller listener's settings, with `password` as this node's own.
fn controller_sasl(password: &str) -> Vec<String> {
    vec![
        "controller.listener.names=CONTROLLER".to_string(),
        "listener.security.protocol.map=CONTROLLER:SASL_PLAINTEXT,PLAINTEXT:PLAINTEXT".to_string(),
        // The harness's --listen and --controller-listen give these their addresses.
        "listeners=PLAINTEXT://127.0.0.1:0,CONTROLLER://127.0.0.1:0".to_string(),
        "sasl.mechanism.controller.protocol=PLAIN".to_string(),
        "listener.name.controller.sasl.enabled.mechanisms=PLAIN".to_string(),
        format!(
            "listener.name.controller.plain.sasl.jaas.config={PLAIN_MODULE} required \
             username=\"controller\" password=\"{password}\" \
             user_controller=\"controller-secret\" user_admin=\"admin-secret\";"
        ),
    ]
}

/// Writes `<dir>/<password>.properties`, the tool's client config: `admin` logged in with PLAIN
/// and `password`, over SASL_SSL trusting `ca` when given, else SASL_PLAINTEXT; short
/// timeouts, since a refused login is retried until they expire.
fn admin_config(dir: &Path, password: &str, ca: Option<&Path>) -> PathBuf {
    let path = dir.join(format!("{password}.properties"));
    let transport = match ca {
        Some(ca) => format!(
            "security.protocol=SASL_SSL\nssl.truststore.type=PEM\nssl.truststore.location={}\n",
            ca.display()
        ),
        None => "security.protocol=SASL_PLAINTEXT\n".to_string(),
    };
    std::fs::write(
        &path,
        format!(
            "{transport}sasl.mechanism=PLAIN\n\
             sasl.jaas.config={PLAIN_MODULE} required username=\"admin\" \
             password=\"{password}\";\n\
             default.api.timeout.ms=8000\nrequest.timeout.ms=4000\n"
        ),
    )
    .expect("write the client config");
    path
}

#[test]
fn the_quorum_logs_in_with_plain() {
    let started = Instant::now();
    let toolbox = Toolbox::installed();
    let sets = controller_sasl("controller-secret");
    let sets: Vec<&str> = sets.iter().map(String::as_str).collect();
    let mut cluster = Cluster::start(3, &sets);
    wait_for_brokers(&cluster, 3);
    eprintln!(
        "quorum up with PLAIN on the controller listener after {:.1} s",
        started.elapsed().as_secs_f64()
    );
    for id in cluster.ids() {
        let log = cluster.node(id).logs();
        assert!(
            log.contains("the controller listener is SASL"),
            "node {id}:\n{log}"
        );
        assert!(
            !log.contains("refusing a quorum connection"),
            "node {id} refused a peer:\n{log}"
        );
    }

    // Kafka's tool on a controller's SASL listener: the right password describes the quorum,
    // a wrong one is refused.
    let dir = tempfile::tempdir().expect("temp dir");
    let client_config = |password: &str| admin_config(dir.path(), password, None);
    let controller = cluster.node(1).controller_addr.to_string();
    let quorum_tool = |config: &std::path::Path, timeout: u64| {
        toolbox.quorum_status(&controller, config, Duration::from_secs(timeout))
    };
    let run = quorum_tool(&client_config("admin-secret"), 60);
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
    let refused = quorum_tool(&client_config("wrong-secret"), 40);
    assert!(
        !refused.succeeded() && !refused.transcript().contains("LeaderId:"),
        "a wrong password described the quorum:\n{}",
        refused.transcript()
    );
    assert!(
        refused.transcript().contains("Authentication failed")
            || refused.transcript().contains("SaslAuthenticationException"),
        "the tool says why:\n{}",
        refused.transcript()
    );
    assert!(
        cluster
            .node(1)
            .logs()
            .contains("SASL authentication failed on the controller listener"),
        "the controller logs the refusal\n{}",
        cluster.node(1).logs()
    );
    eprintln!(
        "kafka-metadata-quorum with PLAIN: described with the right password, refused with a \
         wrong one ({:.1} s)",
        started.elapsed().as_secs_f64()
    );

    // Records through a broker listener; the active controller killed with -9 and restarted.
    let bootstrap = cluster.bootstrap();
    let topic = unique_topic("controller-sasl");
    create_topic(&bootstrap, &topic, 1, 3, &["min.insync.replicas=2"]);
    let ack_file = dir.path().join("acked.txt");
    let producer = start_producer(&bootstrap, &topic, &ack_file, 60);
    let acks = |cluster: &Cluster, n: usize, what: &str| {
        wait_for(cluster, what, Duration::from_secs(30), || {
            (acked_lines(&ack_file).len() >= n).then_some(())
        })
    };
    acks(&cluster, 300, "300 acks before the kill");
    let leader = quorum_leader(cluster.node(1).addr);
    assert!(
        cluster.ids().contains(&leader),
        "the active controller {leader}"
    );
    cluster.kill9(leader);
    let acked_at_kill = acked_lines(&ack_file).len();
    let other = cluster
        .ids()
        .into_iter()
        .find(|&id| id != leader)
        .expect("another node");
    let next = wait_for(
        &cluster,
        "another controller elected",
        Duration::from_secs(30),
        || {
            let c = quorum_leader(cluster.node(other).addr);
            (c >= 0 && c != leader).then_some(c)
        },
    );
    acks(&cluster, acked_at_kill + 300, "300 acks after the kill");
    cluster.restart(leader);
    // Back in the ISR: it registered again (a controller request over its own login) and
    // caught up.
    wait_for_isr(
        &cluster,
        &bootstrap,
        &topic,
        3,
        "the restarted node back in the ISR",
        Duration::from_secs(60),
    );
    let rejoined = wait_for(
        &cluster,
        "the restarted node knows the leader",
        Duration::from_secs(30),
        || {
            let c = quorum_leader(cluster.node(leader).addr);
            (c >= 0).then_some(c)
        },
    );
    assert!(
        !cluster
            .node(leader)
            .logs()
            .contains("a metadata quorum peer refuses this node"),
        "the restarted node was refused:\n{}",
        cluster.node(leader).logs()
    );
    let out = stop_producer(producer);
    let acked = acked_lines(&ack_file);
    assert!(acked.len() > acked_at_kill + 300, "{out}");
    assert_acknowledged_readable(&bootstrap, &topic, &acked, "after the controller kill");
    eprintln!(
        "controller {leader} killed at {acked_at_kill} acks; node {next} elected; restarted, it \
         rejoined (leader {rejoined}); {} acks read back ({:.1} s)",
        acked.len(),
        started.elapsed().as_secs_f64()
    );

    // A broker-only node with the wrong password cannot join.
    let bad = controller_sasl("not-the-password");
    let bad: Vec<&str> = bad.iter().map(String::as_str).collect();
    let outsider = cluster.prepare_broker(&bad);
    cluster.launch(outsider);
    wait_for(
        &cluster,
        "a voter refuses the outsider's login",
        Duration::from_secs(20),
        || {
            cluster
                .ids()
                .iter()
                .filter(|&&id| id != outsider)
                .any(|&id| {
                    cluster
                        .node(id)
                        .logs()
                        .contains("SASL authentication failed on the controller listener")
                        && cluster
                            .node(id)
                            .logs()
                            .contains("refusing a quorum connection")
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
        outsider_log.contains("a voter refuses this learner")
            && outsider_log.contains("Invalid username or password"),
        "the outsider must say why it cannot join:\n{outsider_log}"
    );
    eprintln!("{:.1} s in all", started.elapsed().as_secs_f64());
}

const SCRAM_MODULE: &str = "org.apache.kafka.common.security.scram.ScramLoginModule";

/// The controller listener with SCRAM-SHA-512 between the nodes: the node's login in the
/// ScramLoginModule config; PLAIN stays enabled with no users (the tool logs in with SCRAM).
fn controller_scram() -> Vec<String> {
    vec![
        "controller.listener.names=CONTROLLER".to_string(),
        "listener.security.protocol.map=CONTROLLER:SASL_PLAINTEXT,PLAINTEXT:PLAINTEXT".to_string(),
        "listeners=PLAINTEXT://127.0.0.1:0,CONTROLLER://127.0.0.1:0".to_string(),
        "sasl.mechanism.controller.protocol=SCRAM-SHA-512".to_string(),
        "listener.name.controller.sasl.enabled.mechanisms=SCRAM-SHA-512".to_string(),
        format!(
            "listener.name.controller.scram-sha-512.sasl.jaas.config={SCRAM_MODULE} required \
             username=\"controller\" password=\"controller-secret\";"
        ),
    ]
}

/// Writes `<dir>/admin.properties`: the tool's client config, `admin` logged in with
/// SCRAM-SHA-512 over SASL_PLAINTEXT.
fn scram_admin_config(dir: &Path) -> PathBuf {
    let config = dir.join("admin.properties");
    std::fs::write(
        &config,
        format!(
            "security.protocol=SASL_PLAINTEXT\nsasl.mechanism=SCRAM-SHA-512\n\
             sasl.jaas.config={SCRAM_MODULE} required username=\"admin\" \
             password=\"admin-secret\";\n\
             default.api.timeout.ms=8000\nrequest.timeout.ms=4000\n"
        ),
    )
    .expect("write the client config");
    config
}

/// `--add-scram` for the controller user and `admin`, as Kafka's `kafka-storage format
/// --add-scram` takes them.
fn scram_specs(args: &mut Vec<String>) {
    for (user, password) in [
        ("controller", "controller-secret"),
        ("admin", "admin-secret"),
    ] {
        args.extend([
            "--add-scram".to_string(),
            format!("SCRAM-SHA-512=[name={user},password={password}]"),
        ]);
    }
}

/// SCRAM-SHA-512 between the nodes (Kafka's `sasl.mechanism.controller.protocol=SCRAM-SHA-512`,
/// the credentials from `--add-scram`): three combined nodes elect a controller and register;
/// Kafka's `kafka-metadata-quorum.sh` logs in with SCRAM as admin and describes the quorum; a
/// follower's data directory is wiped and it comes back (its image empty, it checks the
/// leader's login against its own `--add-scram` SPECs); the active controller is killed with
/// -9 and restarted while acks=all records stream; a broker-only node joins with the SPECs and
/// its own login. Every acknowledged record reads back.
#[test]
fn the_quorum_logs_in_with_scram() {
    let started = Instant::now();
    let toolbox = Toolbox::installed();
    let sets = controller_scram();
    let sets: Vec<&str> = sets.iter().map(String::as_str).collect();
    let mut cluster = Cluster::prepare(&[Role::Combined; 3], &sets);
    for id in cluster.ids() {
        scram_specs(cluster.args_mut(id));
    }
    let ids = cluster.ids();
    cluster.start_nodes(&ids);
    wait_for_brokers(&cluster, 3);
    let no_refusals = |cluster: &Cluster| {
        for id in cluster.ids() {
            let log = cluster.node(id).logs();
            assert!(
                !log.contains("refusing a quorum connection")
                    && !log.contains("a metadata quorum peer refuses this node"),
                "node {id} refused a peer or was refused:\n{log}"
            );
        }
    };
    no_refusals(&cluster);
    eprintln!(
        "quorum up with SCRAM-SHA-512 between the nodes after {:.1} s",
        started.elapsed().as_secs_f64()
    );

    // Kafka's tool logs in with SCRAM as admin (a credential of the image).
    let dir = tempfile::tempdir().expect("temp dir");
    let config = scram_admin_config(dir.path());
    let controller = cluster.node(1).controller_addr.to_string();
    let run = toolbox.quorum_status(&controller, &config, Duration::from_secs(60));
    let out = run
        .ok()
        .unwrap_or_else(|e| panic!("{e}\n{}\n{}", run.transcript(), cluster.logs()));
    for id in [1, 2, 3] {
        assert!(out.contains(&format!("\"id\": {id}")), "voter {id}: {out}");
    }

    // A follower's disk replaced: it starts with an empty image and --add-scram.
    let bootstrap = cluster.bootstrap();
    let leader = quorum_leader(cluster.node(1).addr);
    let follower = cluster
        .ids()
        .into_iter()
        .find(|&id| id != leader)
        .expect("a follower");
    cluster.restart_empty(follower);
    wait_for(
        &cluster,
        "the wiped follower follows the leader again",
        Duration::from_secs(60),
        || {
            let offsets = voter_offsets(cluster.node(leader).addr);
            (offsets.len() == 3 && offsets.iter().all(|&o| o > 0)).then_some(())
        },
    );
    wait_for_brokers(&cluster, 3);

    // acks=all records; the active controller killed with -9 and restarted.
    let topic = unique_topic("controller-scram");
    create_topic(&bootstrap, &topic, 1, 3, &["min.insync.replicas=2"]);
    let ack_file = dir.path().join("acked.txt");
    let producer = start_producer(&bootstrap, &topic, &ack_file, 60);
    let acks = |cluster: &Cluster, n: usize, what: &str| {
        wait_for(cluster, what, Duration::from_secs(30), || {
            (acked_lines(&ack_file).len() >= n).then_some(())
        })
    };
    acks(&cluster, 300, "300 acks before the kill");
    let leader = quorum_leader(cluster.node(1).addr);
    cluster.kill9(leader);
    let acked_at_kill = acked_lines(&ack_file).len();
    acks(&cluster, acked_at_kill + 300, "300 acks after the kill");
    cluster.restart(leader);
    wait_for_isr(
        &cluster,
        &bootstrap,
        &topic,
        3,
        "the restarted node back in the ISR",
        Duration::from_secs(60),
    );

    // A broker-only node with the SPECs joins: the leader dials it, and it checks that login
    // against its SPECs until its image holds the credentials.
    let joining = cluster.prepare_broker(&sets);
    scram_specs(cluster.args_mut(joining));
    cluster.launch(joining);
    wait_for_brokers(&cluster, 4);
    no_refusals(&cluster);

    let out = stop_producer(producer);
    let acked = acked_lines(&ack_file);
    assert!(acked.len() > acked_at_kill + 300, "{out}");
    assert_acknowledged_readable(&bootstrap, &topic, &acked, "after the controller kill");
    eprintln!(
        "wiped follower {follower} back, controller {leader} killed at {acked_at_kill} acks and \
         restarted, broker {joining} joined; {} acks read back ({:.1} s)",
        acked.len(),
        started.elapsed().as_secs_f64()
    );
}

/// DescribeQuorum v1 at `addr`: each voter's log end offset as the answering node sees it.
fn voter_offsets(addr: std::net::SocketAddr) -> Vec<i64> {
    let mut conn = RawConn::connect(addr);
    conn.request(1, &metadata_quorum_request())
        .ok()
        .and_then(|r| {
            let p = r.topics.first()?.partitions.first()?.clone();
            Some(p.current_voters.iter().map(|v| v.log_end_offset).collect())
        })
        .unwrap_or_default()
}

/// The same over SASL_SSL, with brokers reaching each other on an SSL listener: a follower
/// forwards DescribeQuorum to the leader's controller listener, over TLS and logged in with
/// PLAIN (only the leader knows every voter's log end offset, so the answer shows it came
/// from there).
#[test]
fn the_quorum_logs_in_with_plain_over_sasl_ssl() {
    let started = Instant::now();
    let toolbox = Toolbox::installed();
    let pki = Pki::generate();
    let mut sets = controller_sasl("controller-secret");
    sets.retain(|s| !s.starts_with("listeners=") && !s.starts_with("listener.security"));
    sets.extend(pki.keystore_config());
    sets.extend([
        "ssl.truststore.type=PEM".to_string(),
        format!("ssl.truststore.location={}", pki.path("ca.pem").display()),
        "listener.security.protocol.map=CONTROLLER:SASL_SSL,SSL:SSL,PLAINTEXT:PLAINTEXT"
            .to_string(),
        "inter.broker.listener.name=SSL".to_string(),
    ]);
    let sets: Vec<&str> = sets.iter().map(String::as_str).collect();
    let mut cluster = Cluster::prepare(&[Role::Combined; 3], &sets);
    // The harness's --listen gives the SSL listener its address, --controller-listen the
    // controller's; the test's clients use a PLAINTEXT listener of each node's own.
    let mut plaintext = std::collections::BTreeMap::new();
    for id in cluster.ids() {
        let at = gregor_e2e::ports::reserve();
        cluster.args_mut(id).extend([
            "--set".to_string(),
            format!("listeners=SSL://127.0.0.1:0,PLAINTEXT://{at},CONTROLLER://127.0.0.1:0"),
        ]);
        plaintext.insert(id, at);
    }
    let ids = cluster.ids();
    cluster.start_nodes(&ids);
    let bootstrap = plaintext
        .values()
        .map(|a| a.to_string())
        .collect::<Vec<_>>()
        .join(",");
    wait_for(
        &cluster,
        "every broker registered",
        Duration::from_secs(60),
        || (describe(&bootstrap, "__consumer_offsets").0.len() == 3).then_some(()),
    );
    let leader = wait_for(&cluster, "a quorum leader", Duration::from_secs(30), || {
        let l = quorum_leader(plaintext[&1]);
        (l > 0).then_some(l)
    });
    let follower = ids
        .iter()
        .copied()
        .find(|&id| id != leader)
        .expect("a follower");
    // Answered by the leader through the follower: every voter's offset is known.
    let offsets = wait_for(
        &cluster,
        "a DescribeQuorum forwarded to the leader",
        Duration::from_secs(30),
        || {
            let o = voter_offsets(plaintext[&follower]);
            (o.len() == 3 && o.iter().all(|&x| x >= 0)).then_some(o)
        },
    );

    let dir = tempfile::tempdir().expect("temp dir");
    let ca = pki.path("ca.pem");
    let client_config = |password: &str| admin_config(dir.path(), password, Some(&ca));
    let controller = cluster.node(follower).controller_addr.to_string();
    let quorum_tool = |config: &std::path::Path, timeout: u64| {
        toolbox.quorum_status(&controller, config, Duration::from_secs(timeout))
    };
    let run = quorum_tool(&client_config("admin-secret"), 60);
    let out = run
        .ok()
        .unwrap_or_else(|e| panic!("{e}\n{}\n{}", run.transcript(), cluster.logs()));
    assert!(
        out.contains("LeaderId:") && out.contains("CurrentVoters:"),
        "{out}"
    );
    let refused = quorum_tool(&client_config("wrong-secret"), 40);
    assert!(
        !refused.succeeded() && !refused.transcript().contains("LeaderId:"),
        "a wrong password described the quorum:\n{}",
        refused.transcript()
    );

    let topic = unique_topic("controller-sasl-ssl");
    create_topic(&bootstrap, &topic, 1, 3, &["min.insync.replicas=3"]);
    wait_for_isr(
        &cluster,
        &bootstrap,
        &topic,
        3,
        "a whole ISR over SSL",
        Duration::from_secs(60),
    );
    // No quorum connection was refused its login. (A peer dialled through the harness's proxy
    // before it listens shows as a TLS handshake cut short, which says nothing about logins;
    // the tool's wrong password is logged by the controller listener's Kafka side.)
    for id in cluster.ids() {
        let log = cluster.node(id).logs();
        assert!(
            !log.contains("refusing a quorum connection"),
            "node {id} refused a quorum login:\n{log}"
        );
    }
    eprintln!(
        "SASL_SSL controller listener: forwarded DescribeQuorum {offsets:?}, the tool served \
         and refused, whole ISR ({:.1} s)",
        started.elapsed().as_secs_f64()
    );
}

/// The same controller-listener settings on Apache Kafka 4.4 (one combined node, formatted
/// and started from the toolbox): they load there too, and Kafka's answers to the tool match
/// gregor's, described with the right password and refused with a wrong one.
#[test]
fn the_same_settings_serve_on_kafka() {
    let toolbox = Toolbox::installed();
    let mut extra: Vec<String> = controller_sasl("controller-secret")
        .into_iter()
        .filter(|s| !s.starts_with("listeners=") && !s.starts_with("controller.listener.names"))
        .collect();
    extra.push(
        "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:SASL_PLAINTEXT".to_string(),
    );
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    let peer = gregor_e2e::kafka_peer::KafkaPeer::start_with(&extra);
    let props = std::fs::read_to_string(
        peer.log_path()
            .parent()
            .expect("the peer's directory")
            .join("server.properties"),
    )
    .expect("the peer's server.properties");
    let controller = props
        .lines()
        .find_map(|l| l.strip_prefix("controller.quorum.voters=1@"))
        .expect("the controller address")
        .to_string();
    let dir = tempfile::tempdir().expect("temp dir");
    let run = |password: &str| {
        let config = admin_config(dir.path(), password, None);
        toolbox.quorum_status(&controller, &config, Duration::from_secs(60))
    };
    let good = run("admin-secret");
    let out = good
        .ok()
        .unwrap_or_else(|e| panic!("{e}\n{}\n{}", good.transcript(), peer.log_tail(60)));
    assert!(out.contains("LeaderId:"), "{out}");
    let refused = run("wrong-secret");
    assert!(
        !refused.succeeded() && refused.transcript().contains("Authentication failed"),
        "Kafka with a wrong password:\n{}",
        refused.transcript()
    );
}

/// The SCRAM settings on Apache Kafka 4.4 (one combined node, whose broker logs in to its
/// controller with SCRAM-SHA-512), formatted with the same `--add-scram` SPECs: they load there
/// too, and Kafka's tool logs in with SCRAM as admin there as on gregor.
#[test]
fn the_scram_settings_serve_on_kafka() {
    let toolbox = Toolbox::installed();
    let mut extra: Vec<String> = controller_scram()
        .into_iter()
        .filter(|s| !s.starts_with("listeners=") && !s.starts_with("controller.listener.names"))
        .collect();
    extra.push(
        "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:SASL_PLAINTEXT".to_string(),
    );
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    let mut specs = Vec::new();
    scram_specs(&mut specs);
    let specs: Vec<&str> = specs.iter().map(String::as_str).collect();
    let peer = gregor_e2e::kafka_peer::KafkaPeer::start_formatted_with(&extra, &specs);
    let dir = tempfile::tempdir().expect("temp dir");
    let config = scram_admin_config(dir.path());
    let run = toolbox.quorum_status(
        &peer.controller_addr().to_string(),
        &config,
        Duration::from_secs(60),
    );
    let out = run
        .ok()
        .unwrap_or_else(|e| panic!("{e}\n{}\n{}", run.transcript(), peer.log_tail(60)));
    assert!(out.contains("LeaderId:"), "{out}");
}

/// A configuration gregor cannot serve on the controller listener stops the start, naming
/// the key.
#[test]
fn refused_controller_sasl_configurations_name_the_key() {
    let cases: [(&str, Vec<String>, &str); 3] = [
        (
            "GSSAPI, Kafka's default mechanism",
            controller_sasl("controller-secret")
                .into_iter()
                .filter(|s| !s.starts_with("sasl.mechanism.controller.protocol"))
                .collect(),
            "sasl.mechanism.controller.protocol=GSSAPI",
        ),
        (
            "SCRAM between controllers, a new node without --add-scram",
            controller_scram(),
            "--add-scram 'SCRAM-SHA-512=[name=controller,password=...]'",
        ),
        (
            "no username in the JAAS config",
            controller_sasl("controller-secret")
                .into_iter()
                .map(|s| {
                    if s.starts_with("listener.name.controller.plain.sasl.jaas.config") {
                        format!(
                            "listener.name.controller.plain.sasl.jaas.config={PLAIN_MODULE} \
                             required user_controller=\"controller-secret\";"
                        )
                    } else {
                        s
                    }
                })
                .collect(),
            "listener.name.controller.plain.sasl.jaas.config has no username",
        ),
    ];
    for (what, sets, expected) in cases {
        let args: Vec<&str> = sets.iter().flat_map(|s| ["--set", s.as_str()]).collect();
        let refusal = refused_start(&args);
        assert!(
            refusal.output.contains(expected),
            "{what}: the refusal must say {expected:?}:\n{}",
            refusal.output
        );
        assert!(!refusal.wrote_data, "{what}: wrote to its data directory");
    }
}
