//! SASL between brokers: three combined `gregor server` nodes whose only client listener is a
//! SASL one, which is also the listener they replicate over (`security.inter.broker.protocol`),
//! as many Kafka clusters run. Each node logs in to its peers with
//! `sasl.mechanism.inter.broker.protocol` as the `username`/`password` of its JAAS config.
//!
//! ```text
//!   confluent-kafka (alice, PLAIN) ──SASL_SSL──▶ any node
//!   node i ══ SASL_SSL, logged in as User:broker (PLAIN), through the harness's LinkProxy ══▶ node j
//!   node i ══ SSL, showing its certificate ══▶ node j's controller listener (Raft, heartbeats)
//! ```
//!
//! - `brokers_replicate_over_sasl_ssl_through_a_leader_kill`: SASL_SSL only, PLAIN between
//!   brokers, the controller listener on SSL. A topic with 3 partitions, RF=3 and `min.insync.replicas=2` gets whole ISRs
//!   (followers logged in to fetch); an idempotent acks=all producer streams while partition
//!   0's leader is killed with -9; a reader on another node reads every acknowledged record
//!   exactly once. No node refused a login.
//! - `brokers_log_in_with_scram_once_their_credential_exists`: SASL_PLAINTEXT only, SCRAM-SHA-512
//!   between brokers, PLAIN beside it for the admin. Before the brokers' credential is in the
//!   metadata log every node says so, followers are refused (an acks=all record cannot be
//!   acknowledged); once an admin makes it through the AdminClient, replication starts by
//!   itself, and the same leader kill under load loses nothing.
//! - `a_sasl_inter_broker_listener_without_a_login_is_refused`: no `username` in the JAAS
//!   config, or a mechanism the listener does not enable: the node does not start, and says
//!   which key to set.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use gregor_e2e::ack_stream::AckStream;
use gregor_e2e::broker::refused_start;
use gregor_e2e::check::{self, Rec};
use gregor_e2e::cluster::{Cluster, Role};
use gregor_e2e::cluster_client::{wait_for, PartitionState};
use gregor_e2e::pki::Pki;
use gregor_e2e::{python, python_script, run_command, unique_topic};
use serde_json::Value;

/// How long one client call may take.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(60);
/// The stream's own limit, should the test never stop it.
const STREAM_SECONDS: &str = "40";
/// How long the stream has to flush and report after SIGTERM.
const STREAM_STOP_TIMEOUT: Duration = Duration::from_secs(60);
/// The partitions of the topic.
const PARTITIONS: usize = 3;
/// The brokers' own login, and the users of every node's PLAIN JAAS config.
const BROKER: (&str, &str) = ("broker", "broker-secret");
const ALICE: (&str, &str) = ("alice", "alice-secret");

/// The PLAIN JAAS config of every node: the broker's login (`username`/`password`) and the
/// users PLAIN accepts (`user_<name>`), the broker among them, as Kafka's docs show it.
fn plain_jaas() -> String {
    format!(
        "org.apache.kafka.common.security.plain.PlainLoginModule required \
         username=\"{}\" password=\"{}\" user_{}=\"{}\" user_{}=\"{}\";",
        BROKER.0, BROKER.1, BROKER.0, BROKER.1, ALICE.0, ALICE.1
    )
}

/// Three combined nodes whose only client listener is `protocol` (SASL_SSL or
/// SASL_PLAINTEXT), the one they replicate over.
struct SaslCluster {
    cluster: Cluster,
    /// `Some(CA)` over SASL_SSL.
    ca: Option<PathBuf>,
    _pki: Pki,
}

impl SaslCluster {
    fn prepare(protocol: &str, sets: &[String]) -> SaslCluster {
        let pki = Pki::generate();
        let mut all = vec![format!("security.inter.broker.protocol={protocol}")];
        let ca = (protocol == "SASL_SSL").then(|| {
            // Kafka's usual shape: the controller listener on SSL beside the SASL_SSL one,
            // taking the global ssl.* keys. The harness's --listen and --controller-listen
            // give the listeners their addresses.
            all.extend([
                format!("listeners={protocol}://127.0.0.1:0,CONTROLLER://127.0.0.1:0"),
                "controller.listener.names=CONTROLLER".to_string(),
                format!("listener.security.protocol.map={protocol}:{protocol},CONTROLLER:SSL"),
            ]);
            all.extend(pki.keystore_config());
            all.push("ssl.truststore.type=PEM".to_string());
            all.push(format!(
                "ssl.truststore.location={}",
                pki.path("ca.pem").display()
            ));
            pki.path("ca.pem")
        });
        if ca.is_none() {
            all.push(format!("listeners={protocol}://127.0.0.1:0"));
        }
        all.extend(sets.iter().cloned());
        let all: Vec<&str> = all.iter().map(String::as_str).collect();
        SaslCluster {
            cluster: Cluster::prepare(&[Role::Combined; 3], &all),
            ca,
            _pki: pki,
        }
    }

    fn start(&mut self) {
        let ids = self.cluster.ids();
        self.cluster.start_nodes(&ids);
    }

    /// The SASL client options: log in as `user` with PLAIN.
    fn login(&self, (user, password): (&str, &str)) -> Vec<String> {
        let mut v: Vec<String> = ["--user", user, "--password", password]
            .map(str::to_string)
            .to_vec();
        if let Some(ca) = &self.ca {
            v.extend(["--ca".to_string(), ca.display().to_string()]);
        }
        v
    }

    /// `script BOOTSTRAP <alice's login> args...`.
    fn command(&self, script: &str, bootstrap: &str, args: &[&str]) -> Command {
        let mut cmd = Command::new(python());
        cmd.arg("-u")
            .arg("-B")
            .arg(python_script(script))
            .arg(bootstrap)
            .args(self.login(ALICE))
            .args(args);
        cmd
    }

    /// Runs a client script to its JSON document, or fails with its output and the logs.
    fn run(&self, script: &str, bootstrap: &str, args: &[&str]) -> Value {
        let out = run_command(self.command(script, bootstrap, args), None, CLIENT_TIMEOUT);
        self.json(
            &format!("{script} {}", args.join(" ")),
            out.status.success(),
            &out.stdout,
            &out.stderr,
        )
    }

    fn json(&self, what: &str, ok: bool, stdout: &[u8], stderr: &[u8]) -> Value {
        let stdout = String::from_utf8_lossy(stdout);
        let doc = ok.then(|| serde_json::from_str(&stdout).ok()).flatten();
        doc.unwrap_or_else(|| {
            panic!(
                "{what} failed:\n--- stderr ---\n{}\n--- stdout ---\n{}\n{}",
                String::from_utf8_lossy(stderr),
                stdout.chars().take(2000).collect::<String>(),
                self.cluster.logs()
            )
        })
    }

    fn bootstrap_without(&self, skip: Option<i32>) -> String {
        self.cluster
            .ids()
            .into_iter()
            .filter(|&id| Some(id) != skip)
            .map(|id| self.cluster.node(id).addr.to_string())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// `topic`'s partitions as the nodes of `bootstrap` see it over SASL.
    fn describe(&self, bootstrap: &str, topic: &str) -> BTreeMap<i32, PartitionState> {
        let doc = self.run("sasl_admin.py", bootstrap, &["describe", topic]);
        let ids = |v: &Value| -> Vec<i32> {
            v.as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_i64)
                .map(|i| i as i32)
                .collect()
        };
        doc["partitions"]
            .as_object()
            .into_iter()
            .flatten()
            .map(|(p, s)| {
                (
                    p.parse().expect("partition number"),
                    PartitionState {
                        leader: s["leader"].as_i64().unwrap_or(-1) as i32,
                        replicas: ids(&s["replicas"]),
                        isr: ids(&s["isr"]),
                    },
                )
            })
            .collect()
    }

    fn wait_for_whole_isrs(&self, bootstrap: &str, topic: &str, what: &str) {
        wait_for(&self.cluster, what, Duration::from_secs(60), || {
            let parts = self.describe(bootstrap, topic);
            (parts.len() == PARTITIONS && parts.values().all(|s| s.isr.len() == 3)).then_some(())
        });
    }

    /// Waits until every node's log has a line containing `text`.
    fn wait_for_log(&self, text: &str, timeout: Duration) {
        wait_for(
            &self.cluster,
            &format!("every node logs {text:?}"),
            timeout,
            || {
                self.cluster
                    .ids()
                    .iter()
                    .all(|&id| self.cluster.node(id).logs().contains(text))
                    .then_some(())
            },
        );
    }

    /// The stream-kill-read check: an idempotent acks=all producer (alice) streams into
    /// `topic` while partition 0's leader is killed with -9; the stream goes on with the two
    /// survivors; a reader on a survivor reads every acknowledged record exactly once.
    /// Returns the nodes' logs as they were just before the kill.
    fn replicate_through_a_leader_kill(&mut self, topic: &str) -> String {
        let bootstrap = self.bootstrap_without(None);
        let leader = self.describe(&bootstrap, topic)[&0].leader;
        let producer_at = self
            .cluster
            .ids()
            .into_iter()
            .find(|&id| id != leader)
            .expect("another node");
        let dir = tempfile::tempdir().expect("temp dir");
        let ack_file = dir.path().join("acked.txt");
        let at = self.cluster.node(producer_at).addr.to_string();
        let ack_path = ack_file.display().to_string();
        let mut stream = AckStream::start(
            "sasl_client.py stream",
            self.command(
                "sasl_client.py",
                &at,
                &[
                    "stream",
                    topic,
                    &ack_path,
                    "--seconds",
                    STREAM_SECONDS,
                    "--idempotent",
                ],
            ),
            &ack_file,
        );
        stream.wait_for_acks(&self.cluster, 1_000, "1000 acks before the kill");
        let before_kill = self.cluster.logs();
        self.cluster.kill9(leader);
        let killed_at = Instant::now();
        let acked_at_kill = stream.acked().len();
        let survivors = self.bootstrap_without(Some(leader));
        let new_leader = wait_for(
            &self.cluster,
            "a live leader for every partition",
            Duration::from_secs(30),
            || {
                let parts = self.describe(&survivors, topic);
                (parts.len() == PARTITIONS
                    && parts.values().all(|p| p.leader >= 0 && p.leader != leader))
                .then(|| parts[&0].leader)
            },
        );
        stream.wait_for_acks(
            &self.cluster,
            acked_at_kill + 1_000,
            "1000 acks after the kill",
        );
        eprintln!(
            "node {leader} (partition 0's leader) killed at {acked_at_kill} acks; node \
             {new_leader} leads it; 1000 more acks {:.1} s after the kill",
            killed_at.elapsed().as_secs_f64()
        );
        let produced = stream.stop(&self.cluster, STREAM_STOP_TIMEOUT);
        assert_eq!(
            produced["fatal"],
            Value::Null,
            "the idempotent producer hit a fatal error\n{}",
            self.cluster.logs()
        );
        let delivered = check::records(&produced, "delivered");
        assert_eq!(
            (produced["failed"].as_u64(), produced["produced"].as_u64()),
            (Some(0), Some(delivered.len() as u64)),
            "every record produced must be acknowledged: failures {}\n{}",
            produced["failures"],
            self.cluster.logs()
        );
        assert_eq!(
            check::partitions_used(&delivered),
            PARTITIONS,
            "the stream covers every partition"
        );
        let reader_at = self.cluster.node(new_leader).addr.to_string();
        let doc = self.run("sasl_client.py", &reader_at, &["read", topic]);
        let consumed: Vec<Rec> = check::records(&doc, "records");
        check::assert_same_records(delivered.len(), &delivered, &consumed);
        eprintln!(
            "{} acknowledged records read back exactly once",
            delivered.len()
        );
        before_kill
    }
}

#[test]
fn brokers_replicate_over_sasl_ssl_through_a_leader_kill() {
    let started = Instant::now();
    let mut c = SaslCluster::prepare(
        "SASL_SSL",
        &[format!(
            "listener.name.sasl_ssl.plain.sasl.jaas.config={}",
            plain_jaas()
        )],
    );
    c.start();
    c.wait_for_log(
        "the controller listener is SSL: quorum connections show and check certificates",
        Duration::from_secs(1),
    );
    let bootstrap = c.bootstrap_without(None);
    let topic = unique_topic("sasl-inter-broker");
    c.run(
        "sasl_admin.py",
        &bootstrap,
        &[
            "create-topic",
            &topic,
            "3",
            "3",
            "--config",
            "min.insync.replicas=2",
        ],
    );
    c.wait_for_whole_isrs(&bootstrap, &topic, "whole ISRs over SASL_SSL");
    // Up to the kill (a handshake cut by kill -9 fails on the survivor's side), no node
    // refused a peer's TLS handshake or SASL login.
    let logs = c.replicate_through_a_leader_kill(&topic);
    for refused in ["failed authentication", "TLS handshake failed"] {
        assert!(
            !logs.contains(refused),
            "a node refused a peer ({refused}):\n{logs}"
        );
    }
    eprintln!("{:.1} s in all", started.elapsed().as_secs_f64());
}

#[test]
fn brokers_log_in_with_scram_once_their_credential_exists() {
    let started = Instant::now();
    let scram_jaas = format!(
        "org.apache.kafka.common.security.scram.ScramLoginModule required \
         username=\"{}\" password=\"{}\";",
        BROKER.0, BROKER.1
    );
    let mut c = SaslCluster::prepare(
        "SASL_PLAINTEXT",
        &[
            "sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-512".to_string(),
            "sasl.mechanism.inter.broker.protocol=SCRAM-SHA-512".to_string(),
            format!(
                "listener.name.sasl_plaintext.plain.sasl.jaas.config={}",
                plain_jaas()
            ),
            format!("listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config={scram_jaas}"),
            // A short acks=all probe below.
            "replica.fetch.backoff.ms=200".to_string(),
        ],
    );
    c.start();
    c.wait_for_log(
        "the metadata log has no SCRAM-SHA-512 credential for broker",
        Duration::from_secs(10),
    );
    let bootstrap = c.bootstrap_without(None);
    let topic = unique_topic("scram-inter-broker");
    c.run(
        "sasl_admin.py",
        &bootstrap,
        &[
            "create-topic",
            &topic,
            "3",
            "3",
            "--config",
            "min.insync.replicas=2",
        ],
    );
    // Without the credential no follower gets in: an acks=all record (to a topic of its own,
    // since it is appended on the leader all the same) is not acknowledged.
    let probe = format!("{topic}-probe");
    c.run(
        "sasl_admin.py",
        &bootstrap,
        &["create-topic", &probe, "1", "3"],
    );
    let refused = c.run("sasl_client.py", &bootstrap, &["refused", &probe]);
    assert_ne!(
        refused["delivery"],
        Value::Null,
        "an acks=all record was acknowledged while no follower could log in\n{refused}"
    );
    assert!(
        c.cluster.logs().contains("failed authentication"),
        "a leader must have refused a follower's SCRAM login\n{}",
        c.cluster.logs()
    );
    c.run(
        "sasl_admin.py",
        &bootstrap,
        &[
            "add-scram",
            BROKER.0,
            BROKER.1,
            "--scram-mechanism",
            "SCRAM-SHA-512",
        ],
    );
    c.wait_for_log(
        "the metadata log has the SCRAM-SHA-512 credential",
        Duration::from_secs(10),
    );
    c.wait_for_whole_isrs(&bootstrap, &topic, "whole ISRs once the credential exists");
    c.replicate_through_a_leader_kill(&topic);
    eprintln!("{:.1} s in all", started.elapsed().as_secs_f64());
}

#[test]
fn a_sasl_inter_broker_listener_without_a_login_is_refused() {
    let refusal = |sets: &[String]| -> String {
        let args: Vec<&str> = sets.iter().flat_map(|s| ["--set", s.as_str()]).collect();
        refused_start(&args).output
    };
    let base = |jaas: &str| {
        vec![
            "listeners=SASL_PLAINTEXT://127.0.0.1:0".to_string(),
            "security.inter.broker.protocol=SASL_PLAINTEXT".to_string(),
            format!("listener.name.sasl_plaintext.plain.sasl.jaas.config={jaas}"),
        ]
    };
    let no_login = "org.apache.kafka.common.security.plain.PlainLoginModule required \
                    user_alice=\"alice-secret\";";
    let text = refusal(&base(no_login));
    assert!(
        text.contains("listener.name.sasl_plaintext.plain.sasl.jaas.config")
            && text.contains("username"),
        "the refusal must name the key and what it lacks:\n{text}"
    );
    let mut sets = base(&plain_jaas());
    sets.push("sasl.mechanism.inter.broker.protocol=SCRAM-SHA-256".to_string());
    let text = refusal(&sets);
    assert!(
        text.contains("SCRAM-SHA-256") && text.contains("sasl.enabled.mechanisms"),
        "the refusal must name the mechanism and the key that enables it:\n{text}"
    );
}
