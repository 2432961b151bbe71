//! SCRAM credentials bootstrapped with the cluster (`gregor server --add-scram`, Kafka's
//! `kafka-storage format --add-scram`): three combined nodes whose only client listener is
//! SASL_PLAINTEXT with SCRAM-SHA-512 alone, which is also the listener they replicate over.
//! Without a bootstrap such a cluster could never make the credential its brokers log in with.
//!
//! ```text
//!   confluent-kafka (alice, SCRAM-SHA-512) ──SASL_PLAINTEXT──▶ any node
//!   node i ══ SASL_PLAINTEXT, logged in as User:broker (SCRAM-SHA-512) ══▶ node j
//!   every node: --add-scram broker and alice (node 1 as flags, nodes 2 and 3 from a file)
//! ```
//!
//! - `a_scram_only_cluster_starts_with_its_credentials`: exactly one controller writes the
//!   bootstrap records; every node says the log holds its `--add-scram` credentials as given
//!   and none finds the brokers' credential missing; an acks=all produce to a topic with RF=3 and
//!   `min.insync.replicas=3` is acknowledged at once (followers logged in), read back by
//!   alice; no node refused a login before a client with a wrong password is refused. Then
//!   every node is killed and restarted with another password for alice: every node says the
//!   flag is ignored, no bootstrap is written again, alice still logs in with the first
//!   password (reads every record back, and a new topic replicates as the first did) and not
//!   with the second; no password reaches a log.
//! - `a_malformed_add_scram_stops_the_start`: bad SPECs (and a bad line of a SPEC file) stop
//!   the process before it listens, with Kafka's reason, the argument or line, and without
//!   the password.

use std::process::Command;
use std::time::{Duration, Instant};

use gregor_e2e::broker::refused_start;
use gregor_e2e::check::{self, Rec};
use gregor_e2e::cluster::{Cluster, Role};
use gregor_e2e::cluster_client::wait_for;
use gregor_e2e::{python, python_script, run_command, unique_topic};
use serde_json::Value;

/// How long one client call may take.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(60);
const MECHANISM: &str = "SCRAM-SHA-512";
/// The brokers' own login.
const BROKER: (&str, &str) = ("broker", "broker-secret-b00t");
/// A client user, and the password a later restart gives it in vain.
const ALICE: (&str, &str) = ("alice", "alice-secret-b00t");
const ALICE_LATER: &str = "alice-second-password";
/// Records per produce.
const RECORDS: usize = 300;

fn spec((user, password): (&str, &str)) -> String {
    format!("{MECHANISM}=[name={user},password={password}]")
}

struct ScramCluster {
    cluster: Cluster,
    /// Holds the SPEC files of nodes 2 and 3.
    files: tempfile::TempDir,
}

impl ScramCluster {
    fn prepare() -> ScramCluster {
        let jaas = format!(
            "org.apache.kafka.common.security.scram.ScramLoginModule required \
             username=\"{}\" password=\"{}\";",
            BROKER.0, BROKER.1
        );
        let sets = [
            "listeners=SASL_PLAINTEXT://127.0.0.1:0".to_string(),
            "security.inter.broker.protocol=SASL_PLAINTEXT".to_string(),
            format!("sasl.enabled.mechanisms={MECHANISM}"),
            format!("sasl.mechanism.inter.broker.protocol={MECHANISM}"),
            format!("listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config={jaas}"),
            "replica.fetch.backoff.ms=200".to_string(),
        ];
        let sets: Vec<&str> = sets.iter().map(String::as_str).collect();
        let mut c = ScramCluster {
            cluster: Cluster::prepare(&[Role::Combined; 3], &sets),
            files: tempfile::tempdir().expect("temp dir"),
        };
        c.give_specs(ALICE.1);
        c
    }

    /// Gives every node the brokers' and alice's SPECs, alice's with `alice_password`: node 1
    /// as `--add-scram` flags, the others in an `--add-scram-file`.
    fn give_specs(&mut self, alice_password: &str) {
        let specs = [spec(BROKER), spec((ALICE.0, alice_password))];
        for id in self.cluster.ids() {
            let file = self.files.path().join(format!("node-{id}.scram"));
            std::fs::write(
                &file,
                format!(
                    "# SCRAM credentials of a new cluster\n\n{}\n",
                    specs.join("\n")
                ),
            )
            .expect("write the SPEC file");
            let args = self.cluster.args_mut(id);
            // Drop what an earlier call gave.
            while let Some(at) = args
                .iter()
                .position(|a| a == "--add-scram" || a == "--add-scram-file")
            {
                args.drain(at..at + 2);
            }
            if id == 1 {
                for s in &specs {
                    args.extend(["--add-scram".to_string(), s.clone()]);
                }
            } else {
                args.extend(["--add-scram-file".to_string(), file.display().to_string()]);
            }
        }
    }

    fn bootstrap(&self) -> String {
        self.cluster
            .ids()
            .into_iter()
            .map(|id| self.cluster.node(id).addr.to_string())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// Runs a client script as alice (SCRAM-SHA-512 with `password`) to its JSON document,
    /// or fails with its output and the logs.
    fn run(&self, script: &str, password: &str, args: &[&str]) -> Value {
        let mut cmd = Command::new(python());
        cmd.arg("-u")
            .arg("-B")
            .arg(python_script(script))
            .arg(self.bootstrap())
            .args(["--user", ALICE.0, "--password", password])
            .args(["--mechanism", MECHANISM])
            .args(args);
        let out = run_command(cmd, None, CLIENT_TIMEOUT);
        let stdout = String::from_utf8_lossy(&out.stdout);
        let doc = out
            .status
            .success()
            .then(|| serde_json::from_str(&stdout).ok())
            .flatten();
        doc.unwrap_or_else(|| {
            panic!(
                "{script} {} failed:\n--- stderr ---\n{}\n--- stdout ---\n{}\n{}",
                args.join(" "),
                String::from_utf8_lossy(&out.stderr),
                stdout.chars().take(2000).collect::<String>(),
                self.cluster.logs()
            )
        })
    }

    /// Waits until every node's log has `text` at least `times` times.
    fn wait_for_log(&self, text: &str, times: usize, timeout: Duration) {
        wait_for(
            &self.cluster,
            &format!("every node logs {text:?} {times} time(s)"),
            timeout,
            || {
                self.cluster
                    .ids()
                    .iter()
                    .all(|&id| self.cluster.node(id).logs().matches(text).count() >= times)
                    .then_some(())
            },
        );
    }

    /// Creates `topic` as alice: one partition on all three nodes, `min.insync.replicas=3`.
    fn create_topic(&self, topic: &str) {
        self.run(
            "sasl_admin.py",
            ALICE.1,
            &[
                "create-topic",
                topic,
                "1",
                "3",
                "--config",
                "min.insync.replicas=3",
            ],
        );
    }

    /// Produces [`RECORDS`] with acks=all as alice; every one must be acknowledged.
    fn produce(&self, topic: &str) -> Vec<Rec> {
        let started = Instant::now();
        let doc = self.run(
            "sasl_client.py",
            ALICE.1,
            &["produce", topic, "--count", &RECORDS.to_string()],
        );
        let delivered = check::records(&doc, "delivered");
        assert_eq!(delivered.len(), RECORDS, "{doc}");
        eprintln!(
            "{RECORDS} acks=all records acknowledged in {:.1} s",
            started.elapsed().as_secs_f64()
        );
        delivered
    }

    /// Alice logging in with `password` is turned away.
    fn assert_refused(&self, password: &str, topic: &str) {
        let doc = self.run("sasl_client.py", password, &["refused", topic]);
        assert_ne!(
            doc["metadata"],
            Value::Null,
            "alice logged in with a password she was not given\n{doc}"
        );
        assert!(
            doc["errors"].to_string().contains("uthentication"),
            "the client must have been refused at login: {doc}"
        );
    }
}

#[test]
fn a_scram_only_cluster_starts_with_its_credentials() {
    let started = Instant::now();
    let mut c = ScramCluster::prepare();
    let ids = c.cluster.ids();
    c.cluster.start_nodes(&ids);
    eprintln!(
        "three SCRAM-only nodes serving {:.1} s after the start",
        started.elapsed().as_secs_f64()
    );
    c.wait_for_log(
        "--add-scram: the metadata log holds these SCRAM credentials as given",
        1,
        Duration::from_secs(10),
    );
    let logs = c.cluster.logs();
    assert_eq!(
        logs.matches("a new metadata log: wrote its bootstrap records")
            .count(),
        1,
        "exactly one controller writes the bootstrap records\n{logs}"
    );
    assert!(
        !logs.contains("has no SCRAM-SHA-512 credential"),
        "a broker found its credential missing\n{logs}"
    );

    // Replication at once: RF=3 with min.insync.replicas=3, acks=all.
    let topic = unique_topic("scram-bootstrap");
    c.create_topic(&topic);
    let delivered = c.produce(&topic);
    let doc = c.run("sasl_client.py", ALICE.1, &["read", &topic]);
    check::assert_same_records(
        delivered.len(),
        &delivered,
        &check::records(&doc, "records"),
    );
    let logs = c.cluster.logs();
    assert!(
        !logs.contains("failed authentication"),
        "a node refused a login before any wrong password was tried\n{logs}"
    );
    c.assert_refused("not-alices-password", &topic);
    // librdkafka tries every node, and again: each node logs the refusal of this address
    // and reason once (the repeats are counted into the next line, a minute later).
    let lines: Vec<usize> = ids
        .iter()
        .map(|&id| {
            c.cluster
                .node(id)
                .logs()
                .matches("failed authentication")
                .count()
        })
        .collect();
    eprintln!("refused logins logged per node: {lines:?}");
    assert!(
        lines.iter().sum::<usize>() >= 1 && lines.iter().all(|&n| n <= 1),
        "one line per node for the same refusal, got {lines:?}\n{}",
        c.cluster.logs()
    );

    // A full restart with another password for alice: the bootstrap applies once.
    for &id in &ids {
        c.cluster.kill9(id);
    }
    c.give_specs(ALICE_LATER);
    let restarted = Instant::now();
    c.cluster.start_nodes(&ids);
    eprintln!(
        "restarted with another --add-scram password, serving after {:.1} s",
        restarted.elapsed().as_secs_f64()
    );
    c.wait_for_log("--add-scram ignored", 1, Duration::from_secs(10));
    let logs = c.cluster.logs();
    assert!(
        logs.contains("different=alice (SCRAM-SHA-512)"),
        "the warning must name the credential that differs\n{logs}"
    );
    assert_eq!(
        logs.matches("a new metadata log: wrote its bootstrap records")
            .count(),
        1,
        "no bootstrap records written again\n{logs}"
    );
    // Alice's first password still works: the records of before the restart read back, and
    // a new topic replicates as the first did.
    let doc = c.run("sasl_client.py", ALICE.1, &["read", &topic]);
    check::assert_same_records(
        delivered.len(),
        &delivered,
        &check::records(&doc, "records"),
    );
    let again = format!("{topic}-again");
    c.create_topic(&again);
    let delivered = c.produce(&again);
    let doc = c.run("sasl_client.py", ALICE.1, &["read", &again]);
    check::assert_same_records(
        delivered.len(),
        &delivered,
        &check::records(&doc, "records"),
    );
    c.assert_refused(ALICE_LATER, &topic);
    let logs = c.cluster.logs();
    for secret in [BROKER.1, ALICE.1, ALICE_LATER] {
        assert!(
            !logs.contains(secret),
            "a password reached a node's log\n{logs}"
        );
    }
    eprintln!("{:.1} s in all", started.elapsed().as_secs_f64());
}

#[test]
fn a_malformed_add_scram_stops_the_start() {
    let files = tempfile::tempdir().expect("temp dir");
    let refusal = |flags: &[&str]| -> String {
        let refusal = refused_start(flags);
        let text = refusal.output;
        assert!(
            !text.contains("hunter2"),
            "the refusal quotes the password:\n{text}"
        );
        assert!(
            !refusal.wrote_data,
            "{flags:?} wrote to the data directory:\n{text}"
        );
        text
    };
    let cases: [(&[&str], &str); 5] = [
        (
            &[
                "--add-scram",
                "SCRAM-SHA-512=[name=broker,password=ok]",
                "--add-scram",
                "SCRAM-SHA-512=[name=alice,password=hunter2,iterations=100]",
            ],
            "--add-scram argument 2: The 'iterations' value must be >= 4096 for add-scram using \
             SCRAM-SHA-512",
        ),
        (
            &["--add-scram", "SCRAM-SHA-1=[name=alice,password=hunter2]"],
            "The add-scram mechanism SCRAM-SHA-1 is not supported",
        ),
        (
            &["--add-scram", "SCRAM-SHA-256=[password=hunter2]"],
            "You must supply 'name' to add-scram",
        ),
        (
            &[
                "--add-scram",
                "SCRAM-SHA-256=[name=alice,password=hunt,er2]",
            ],
            "No equals sign found in a SCRAM component",
        ),
        (
            &[
                "--add-scram",
                "SCRAM-SHA-256=[name=alice,password=hunter2]",
                "--add-scram",
                "SCRAM-SHA-256=[name=alice,password=hunter2]",
            ],
            "the SCRAM-SHA-256 credential of alice is given twice",
        ),
    ];
    for (flags, want) in cases {
        let text = refusal(flags);
        assert!(text.contains(want), "{flags:?}: want {want:?} in\n{text}");
    }
    let file = files.path().join("bad.scram");
    std::fs::write(
        &file,
        "# two users\nSCRAM-SHA-512=[name=a,password=hunter2]\n\nSCRAM-SHA-512=[name=b,password=hunter2,iterations=99999]\n",
    )
    .expect("write the SPEC file");
    let file = file.display().to_string();
    let text = refusal(&["--add-scram-file", &file]);
    let want = format!(
        "--add-scram-file {file} line 4: The 'iterations' value must be <= 16384 for add-scram \
         using SCRAM-SHA-512"
    );
    assert!(text.contains(&want), "want {want:?} in\n{text}");
    let missing = files.path().join("absent.scram").display().to_string();
    let text = refusal(&["--add-scram-file", &missing]);
    assert!(text.contains(&missing), "{text}");
}
