//! Security listeners across a cluster: three combined `gregor server` nodes ([`Cluster`]), each
//! serving a `SASL_SSL://` listener of its own beside the PLAINTEXT one the nodes replicate
//! over, driven by confluent-kafka (librdkafka) through `sasl_client.py` while a node dies.
//!
//! ```text
//!   producer (SCRAM-SHA-256) ──TLS+SASL──▶ node P's SASL_SSL ─┐   Metadata on SASL_SSL lists
//!   reader (PLAIN)           ──TLS+SASL──▶ node R's SASL_SSL  ├─▶ every node's SASL_SSL
//!   reader (SCRAM-SHA-256)   ──TLS+SASL──▶ node V's SASL_SSL ─┘   endpoint, nothing else
//!   node i ══ PLAINTEXT, through the harness's LinkProxy ══▶ node j   (replication, Raft)
//!   kafka-configs.sh ──PLAINTEXT──▶ a SCRAM credential in the metadata log
//! ```
//!
//! `a_cluster_serves_sasl_ssl_clients_through_a_leader_kill`: one PKI (a server certificate for
//! 127.0.0.1) and the same PLAIN users on every node; a SCRAM-SHA-256 user made with Kafka's
//! `kafka-configs.sh`. An idempotent acks=all producer bootstrapped on one node's SASL_SSL port
//! streams into a topic with 3 partitions, RF=3 and `min.insync.replicas=2`; under it a node is
//! killed with -9 (the leader of partition 0, or the producer's bootstrap node), held down, and
//! restarted. Then a reader bootstrapped on another node's SASL_SSL port, and one on the
//! restarted node's, each read every acknowledged record exactly once, at its acknowledged
//! offset, in produce order; no delivery failed; and every broker any of the clients was told of
//! (each Metadata answer, and every broker librdkafka's statistics ever listed) is one of the
//! three SASL_SSL endpoints, never a PLAINTEXT port.
//!
//! The test's choices (the producer's node, the victim, when it dies, how long it stays down,
//! the reader's node) come from a seed: `GREGOR_CLUSTER_SECURITY_SEED`, else the clock; it is
//! printed, and a failing run replays with it (the controller places the leaders on its own, so
//! whether the producer's node also leads partition 0 may differ).

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use gregor_e2e::ack_stream::AckStream;
use gregor_e2e::broker::wait_accepting;
use gregor_e2e::check::{self, Rec};
use gregor_e2e::cluster::{Cluster, Role};
use gregor_e2e::cluster_client::{
    acked_lines, bootstrap_of, create_topic, describe, wait_for, wait_for_brokers,
    wait_for_whole_isrs,
};
use gregor_e2e::kafka_tools::Toolbox;
use gregor_e2e::mutate::Rng;
use gregor_e2e::pki::Pki;
use gregor_e2e::{python, python_script, run_command, unique_topic};
use serde_json::Value;

/// How long one reader run or one kafka-configs call may take.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(90);
/// The stream's own limit, should the test never stop it.
const STREAM_SECONDS: &str = "50";
/// How long the stream has to flush and report after SIGTERM.
const STREAM_STOP_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a node's SASL_SSL listener has to accept connections once the node listens.
const LISTEN_TIMEOUT: Duration = Duration::from_secs(10);
/// The partitions of the topic.
const PARTITIONS: usize = 3;

/// The PLAIN users of every node's SASL_SSL listener, as Kafka's PlainLoginModule takes them.
const JAAS: &str = "org.apache.kafka.common.security.plain.PlainLoginModule required \
                    user_alice=\"alice-secret\" user_admin=\"admin-secret\";";
/// A PLAIN user of [`JAAS`] and their password.
const PLAIN_USER: (&str, &str) = ("alice", "alice-secret");
/// The SCRAM-SHA-256 user the test makes with kafka-configs, and their password.
const SCRAM_USER: (&str, &str) = ("carol", "carol-secret");

/// Three combined nodes, each with a SASL_SSL listener on its own reserved port.
struct SecureCluster {
    cluster: Cluster,
    /// Each node's SASL_SSL listener (its PLAINTEXT one is `cluster.node(id).addr`).
    sasl_ssl: BTreeMap<i32, SocketAddr>,
    /// The CA the clients trust.
    ca: PathBuf,
    /// Owns the certificates' directory, removed when the test ends.
    _pki: Pki,
}

impl SecureCluster {
    /// Lays out three combined nodes, gives each its own `listeners` (the PLAINTEXT entry first:
    /// the harness's `--listen` replaces its address, port 0 is never bound), starts them, and
    /// waits until every SASL_SSL listener accepts connections and Metadata lists three brokers.
    fn start() -> SecureCluster {
        let pki = Pki::generate();
        let mut sets = vec![
            "sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256".to_string(),
            format!("listener.name.sasl_ssl.plain.sasl.jaas.config={JAAS}"),
        ];
        sets.extend(pki.keystore_config());
        let sets: Vec<&str> = sets.iter().map(String::as_str).collect();
        let mut cluster = Cluster::prepare(&[Role::Combined; 3], &sets);
        let mut sasl_ssl = BTreeMap::new();
        for id in cluster.ids() {
            let at = gregor_e2e::ports::reserve();
            cluster.args_mut(id).extend([
                "--set".to_string(),
                format!("listeners=PLAINTEXT://127.0.0.1:0,SASL_SSL://{at}"),
            ]);
            sasl_ssl.insert(id, at);
        }
        let ids = cluster.ids();
        cluster.start_nodes(&ids);
        let secure = SecureCluster {
            cluster,
            sasl_ssl,
            ca: pki.path("ca.pem"),
            _pki: pki,
        };
        for &id in &ids {
            secure.wait_for_sasl_ssl(id);
        }
        wait_for_brokers(&secure.cluster, ids.len());
        secure
    }

    /// Waits until node `id`'s SASL_SSL listener accepts connections.
    fn wait_for_sasl_ssl(&self, id: i32) {
        let at = self.sasl_ssl[&id];
        assert_ne!(
            self.cluster.node(id).addr,
            at,
            "node {id}: the harness took the SASL_SSL listener for the PLAINTEXT one"
        );
        wait_accepting(at, LISTEN_TIMEOUT, || self.cluster.logs());
    }

    /// `sasl_client.py` options: log in with `mechanism` as `user` over TLS, trusting the CA.
    fn login(&self, mechanism: &str, (user, password): (&str, &str)) -> Vec<String> {
        [
            "--mechanism",
            mechanism,
            "--user",
            user,
            "--password",
            password,
            "--ca",
            &self.ca.display().to_string(),
        ]
        .map(str::to_string)
        .to_vec()
    }

    /// `sasl_client.py` at node `id`'s SASL_SSL listener with `options` and `args`.
    fn command(&self, id: i32, options: &[String], args: &[&str]) -> Command {
        let mut cmd = Command::new(python());
        cmd.arg("-u")
            .arg("-B")
            .arg(python_script("sasl_client.py"))
            .arg(self.sasl_ssl[&id].to_string())
            .args(options)
            .args(args);
        cmd
    }

    /// Reads `topic` from the beginning through node `id`'s SASL_SSL listener.
    fn read(&self, id: i32, options: &[String], topic: &str) -> Value {
        let out = run_command(
            self.command(id, options, &["read", topic]),
            None,
            CLIENT_TIMEOUT,
        );
        let what = format!("sasl_client.py read at node {id} ({})", options[1]);
        self.json(&what, out.status.success(), &out.stdout, &out.stderr)
    }

    /// A client's JSON document, or a failure with its output and the cluster's logs.
    fn json(&self, what: &str, ok: bool, stdout: &[u8], stderr: &[u8]) -> Value {
        let stdout = String::from_utf8_lossy(stdout);
        let stderr = String::from_utf8_lossy(stderr);
        let doc = ok.then(|| serde_json::from_str(&stdout).ok()).flatten();
        doc.unwrap_or_else(|| {
            panic!(
                "{what} failed:\n--- stderr ---\n{stderr}\n--- stdout (start) ---\n{}\n{}",
                stdout.chars().take(2000).collect::<String>(),
                self.cluster.logs()
            )
        })
    }

    /// Runs Kafka's `kafka-configs.sh` against the PLAINTEXT listeners.
    fn kafka_configs(&self, toolbox: &Toolbox, args: &[&str]) {
        let bootstrap = self.cluster.bootstrap();
        let mut all = vec!["--bootstrap-server", bootstrap.as_str()];
        all.extend_from_slice(args);
        let run = toolbox.run("kafka-configs.sh", &all, None, CLIENT_TIMEOUT);
        if let Err(e) = run.ok() {
            panic!(
                "kafka-configs {}: {e}\n{}\n{}",
                args.join(" "),
                run.transcript(),
                self.cluster.logs()
            );
        }
    }

    /// Asserts that every broker a client document names is one of the nodes' SASL_SSL
    /// endpoints, and that it was told of all three: `doc[field]` for each Metadata answer
    /// (`[[id, host, port], ...]`), and `doc["learned"]` for every broker librdkafka's
    /// statistics listed while it ran (`[[id, "host:port", name], ...]`).
    fn assert_sasl_ssl_only(&self, what: &str, doc: &Value, metadata_fields: &[&str]) {
        let expected: BTreeSet<(i64, String)> = self
            .sasl_ssl
            .iter()
            .map(|(&id, at)| (i64::from(id), at.to_string()))
            .collect();
        let plaintext: BTreeMap<String, i32> = self
            .cluster
            .ids()
            .into_iter()
            .flat_map(|id| {
                let node = self.cluster.node(id);
                [
                    (node.addr.to_string(), id),
                    (node.controller_addr.to_string(), id),
                ]
            })
            .collect();
        let told = |listed: BTreeSet<(i64, String)>, source: &str| {
            for (id, at) in &listed {
                if let Some(node) = plaintext.get(at) {
                    panic!(
                        "{what}: {source} hands the client node {node}'s PLAINTEXT (or \
                         controller) endpoint {at} as broker {id}; the SASL_SSL endpoints are \
                         {expected:?}\n{doc}"
                    );
                }
            }
            assert_eq!(
                listed, expected,
                "{what}: {source} must list every node's SASL_SSL endpoint and nothing else\n{doc}"
            );
        };
        for field in metadata_fields {
            let listed = doc[*field]
                .as_array()
                .unwrap_or_else(|| panic!("{what}: no Metadata broker list '{field}' in {doc}"))
                .iter()
                .map(|b| {
                    let host = b[1].as_str().unwrap_or_default();
                    let port = b[2].as_u64().unwrap_or_default();
                    (b[0].as_i64().unwrap_or(-1), format!("{host}:{port}"))
                })
                .collect();
            told(listed, &format!("the Metadata '{field}'"));
        }
        let learned = doc["learned"]
            .as_array()
            .unwrap_or_else(|| panic!("{what}: no 'learned' brokers in {doc}"));
        for b in learned {
            let name = b[2].as_str().unwrap_or_default();
            assert!(
                name.starts_with("sasl_ssl://"),
                "{what}: librdkafka speaks {name:?}, not SASL_SSL, to a broker it was told of\n{doc}"
            );
        }
        let learned = learned
            .iter()
            .map(|b| {
                let at = b[1].as_str().unwrap_or_default().to_string();
                (b[0].as_i64().unwrap_or(-1), at)
            })
            .collect();
        told(learned, "librdkafka's statistics");
    }
}

/// The seed: `GREGOR_CLUSTER_SECURITY_SEED`, else one drawn from the clock.
fn seed() -> u64 {
    std::env::var("GREGOR_CLUSTER_SECURITY_SEED")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64 % 1_000_000)
                .unwrap_or(1)
        })
}

/// Seconds since the Unix epoch, to set beside the times the clients report.
fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or_default()
}

/// One of `ids`, drawn from `rng`.
fn pick(rng: &mut Rng, ids: &[i32]) -> i32 {
    ids[rng.below(ids.len())]
}

#[test]
fn a_cluster_serves_sasl_ssl_clients_through_a_leader_kill() {
    let seed = seed();
    eprintln!("GREGOR_CLUSTER_SECURITY_SEED={seed}");
    let mut rng = Rng::new(seed);
    let started = Instant::now();
    let toolbox = Toolbox::installed();
    let mut secure = SecureCluster::start();
    let ids = secure.cluster.ids();
    let plaintext = secure.cluster.bootstrap();
    eprintln!(
        "cluster up after {:.1} s; SASL_SSL listeners {:?}",
        started.elapsed().as_secs_f64(),
        secure.sasl_ssl
    );

    let topic = unique_topic("sasl-ssl-cluster");
    create_topic(
        &plaintext,
        &topic,
        PARTITIONS as i32,
        3,
        &["min.insync.replicas=2"],
    );
    wait_for_whole_isrs(
        &secure.cluster,
        &plaintext,
        &topic,
        PARTITIONS,
        3,
        "creation",
    );
    // A SCRAM credential in the metadata log, which every node (and the restarted one, from
    // its log) must know.
    secure.kafka_configs(
        &toolbox,
        &[
            "--alter",
            "--add-config",
            &format!("SCRAM-SHA-256=[iterations=4096,password={}]", SCRAM_USER.1),
            "--entity-type",
            "users",
            "--entity-name",
            SCRAM_USER.0,
        ],
    );

    let (_, parts) = describe(&plaintext, &topic);
    let leader0 = parts[&0].leader;
    let at = pick(&mut rng, &ids);
    let victim = if rng.chance(50) { leader0 } else { at };
    let acks_before_kill = 1_000 + rng.below(2_000);
    let down_for = Duration::from_millis(1_500 + rng.below(3_000) as u64);
    let others: Vec<i32> = ids.iter().copied().filter(|&i| i != at).collect();
    let reader = pick(&mut rng, &others);
    eprintln!(
        "seed {seed}: producer at node {at}; partition leaders {:?}; kill -9 node {victim} \
         ({}) after {acks_before_kill} acks, down for {down_for:?}; reader at node {reader}",
        parts
            .iter()
            .map(|(p, s)| (*p, s.leader))
            .collect::<Vec<_>>(),
        match (victim == leader0, victim == at) {
            (true, true) => "partition 0's leader and the producer's bootstrap node",
            (true, false) => "partition 0's leader",
            _ => "the producer's bootstrap node",
        }
    );

    let dir = tempfile::tempdir().expect("temp dir");
    let ack_file = dir.path().join("acked.txt");
    let mut stream = AckStream::start(
        "sasl_client.py stream",
        secure.command(
            at,
            &secure.login("SCRAM-SHA-256", SCRAM_USER),
            &[
                "stream",
                &topic,
                &ack_file.display().to_string(),
                "--seconds",
                STREAM_SECONDS,
                "--idempotent",
            ],
        ),
        &ack_file,
    );
    stream.wait_for_acks(
        &secure.cluster,
        acks_before_kill,
        "the acks before the kill",
    );

    let kill_time = unix_now();
    secure.cluster.kill9(victim);
    let killed_at = Instant::now();
    let acked_at_kill = stream.acked().len();
    let live: Vec<i32> = ids.iter().copied().filter(|&i| i != victim).collect();
    let live_plaintext = bootstrap_of(&secure.cluster, &live);
    let new_leader = wait_for(
        &secure.cluster,
        "a leader of every partition on a live node",
        Duration::from_secs(30),
        || {
            let (_, parts) = describe(&live_plaintext, &topic);
            let leaders: Vec<i32> = parts.values().map(|s| s.leader).collect();
            (leaders.len() == PARTITIONS && leaders.iter().all(|l| live.contains(l)))
                .then(|| parts[&0].leader)
        },
    );
    let failover = killed_at.elapsed();
    // The producer goes on without the node. acks=all waits for the whole ISR, so the stream
    // stalls until the controller fences the node and the ISRs shrink to the live two (still
    // min.insync.replicas), and then goes on while the node is down.
    stream.wait_for_acks(
        &secure.cluster,
        acked_at_kill + 500,
        "500 acks with the node down",
    );
    let to_500 = killed_at.elapsed();
    thread::sleep(down_for.saturating_sub(killed_at.elapsed()));
    eprintln!(
        "node {victim} killed at {acked_at_kill} acks: partition 0 led by node {new_leader} \
         (every partition on a live node) after {:.2} s; 500 more acks after {:.2} s; restart \
         after {:.2} s",
        failover.as_secs_f64(),
        to_500.as_secs_f64(),
        killed_at.elapsed().as_secs_f64()
    );
    let restart_time = unix_now();
    secure.cluster.restart(victim);
    secure.wait_for_sasl_ssl(victim);
    eprintln!(
        "node {victim}: kill -9 at unix time {kill_time:.3}, restarted at {restart_time:.3}, \
         its SASL_SSL listener accepting at {:.3}",
        unix_now()
    );
    wait_for_whole_isrs(
        &secure.cluster,
        &plaintext,
        &topic,
        PARTITIONS,
        3,
        &format!("the restart of node {victim}"),
    );
    eprintln!(
        "node {victim} back in every ISR {:.2} s after the kill",
        killed_at.elapsed().as_secs_f64()
    );
    let acked_at_rejoin = stream.acked().len();
    stream.wait_for_acks(
        &secure.cluster,
        acked_at_rejoin + 500,
        "500 acks after the node rejoined",
    );
    let produced = stream.stop(&secure.cluster, STREAM_STOP_TIMEOUT);

    let delivered = check::records(&produced, "delivered");
    eprintln!(
        "producer: {} produced, {} acknowledged, {} failed; client errors (first seen at):",
        produced["produced"],
        delivered.len(),
        produced["failed"],
    );
    for e in produced["errors"].as_array().into_iter().flatten() {
        eprintln!("  {}", e.as_str().unwrap_or_default());
    }
    assert_eq!(
        produced["fatal"],
        Value::Null,
        "the idempotent producer hit a fatal error\n{}",
        secure.cluster.logs()
    );
    assert_eq!(
        (produced["failed"].as_u64(), produced["produced"].as_u64()),
        (Some(0), Some(delivered.len() as u64)),
        "every record produced must be acknowledged (30 s delivery timeout, min ISR 2 of 3): \
         failures {}\n{}",
        produced["failures"],
        secure.cluster.logs()
    );
    assert_eq!(
        acked_lines(&ack_file).len(),
        delivered.len(),
        "the ack file and the delivery reports"
    );
    assert!(
        delivered.len() > acked_at_rejoin,
        "acknowledgements after the rejoin"
    );
    assert_eq!(
        check::partitions_used(&delivered),
        PARTITIONS,
        "the stream covers every partition"
    );
    secure.assert_sasl_ssl_only(
        &format!("the producer bootstrapped on node {at}"),
        &produced,
        &["brokers_at_start", "brokers"],
    );

    // Read back by a PLAIN user through another node, and by the SCRAM user through the
    // restarted one: every acknowledged record once, as acknowledged, and nothing else.
    let readers = [
        (reader, "PLAIN", PLAIN_USER),
        (victim, "SCRAM-SHA-256", SCRAM_USER),
    ];
    for (id, mechanism, user) in readers {
        let doc = secure.read(id, &secure.login(mechanism, user), &topic);
        let consumed: Vec<Rec> = check::records(&doc, "records");
        let what = format!("the {mechanism} reader bootstrapped on node {id}");
        eprintln!("{what}: {} records", consumed.len());
        check::assert_same_records(delivered.len(), &delivered, &consumed);
        secure.assert_sasl_ssl_only(&what, &doc, &["brokers"]);
    }
    eprintln!(
        "seed {seed}: {} records acknowledged and read back exactly once; {:.1} s in all",
        delivered.len(),
        started.elapsed().as_secs_f64()
    );
}
