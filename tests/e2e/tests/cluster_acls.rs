//! ACLs across a cluster through a leader kill: three combined `gregor server` nodes
//! ([`Cluster`]) with Kafka's StandardAuthorizer and no allow-everyone, replicating to each other
//! over an SSL listener that requires client certificates, and serving SASL_SSL clients whose
//! every request the authorizer judges, driven by confluent-kafka (librdkafka) while a
//! partition's leader is killed with -9 and restarted.
//!
//! ```text
//!   admin   (PLAIN, super user)  ─┐                      AlterUserScramCredentials, CreateAcls,
//!   alice   (SCRAM, producer)    ─┤  TLS + SASL ─▶ any   CreateTopics, DescribeAcls, Metadata
//!   bob     (SCRAM, consumer)    ─┤  node's SASL_SSL     idempotent acks=all stream (alice)
//!   mallory (SCRAM, no ACL)      ─┘                      group billing reads (bob), probes
//!   node i ══ SSL, client certificate CN=gregor e2e broker, through the harness's LinkProxy
//!            ══▶ node j   (replica fetches: CLUSTER_ACTION as User:CN=gregor e2e broker,
//!                          a super user)
//!   node i ── PLAINTEXT controller listener ──▶ node j   (Raft; no Kafka ACL check on it)
//! ```
//!
//! `acls_hold_through_a_leader_kill_under_load`, in order:
//! - the admin gives alice, bob and mallory SCRAM-SHA-256 credentials and creates the ACLs of
//!   [`ACLS`] (alice: `--producer` on the topic prefix `orders`; bob: `--consumer` on the topic
//!   `orders` and the group `billing`; mallory: nothing), then `orders` with 3 partitions, RF=3
//!   and `min.insync.replicas=2`; DescribeAcls lists exactly those ACLs;
//! - before any fault, on every node: bob's Metadata for `orders` is clean (his credential and
//!   the ACLs reached each node). The probes: mallory is refused `orders` in Metadata with
//!   TOPIC_AUTHORIZATION_FAILED, so her records to each partition fail with it (librdkafka
//!   never sends them to a leader), and her consumer in group `billing` gets
//!   GROUP_AUTHORIZATION_FAILED; alice, who may describe `orders`, has her Fetch of every
//!   partition refused by its leader with TOPIC_AUTHORIZATION_FAILED and her join of `billing`
//!   with GROUP_AUTHORIZATION_FAILED; bob's Produce to every partition is refused by its leader
//!   with TOPIC_AUTHORIZATION_FAILED;
//! - alice streams acks=all idempotent records (sasl_client.py `stream`); bob reads what is
//!   there in group `billing` and commits; a partition's leader is killed with -9 (seeded);
//!   every partition gets a leader on a live node and the stream goes on; the same probes
//!   through the live nodes give the same refusals;
//! - the node restarts; bob's first Metadata bootstrapped on it alone, with no retry, is clean
//!   (his SCRAM credential and ACLs came back from its metadata log); every ISR is whole again
//!   and every partition led by its preferred replica
//!   (`leader.imbalance.check.interval.seconds=2`), so the restarted node leads a partition
//!   again; the probes through it give the same refusals; alice's stream gets
//!   acknowledgements from the partition it leads;
//! - the stream stops: no record failed, none fatal; bob, in group `billing` again and
//!   bootstrapped on the restarted node, resumes from the offsets he committed before the kill;
//!   his two sessions together read every acknowledged record exactly once, at its offset, in
//!   produce order per partition; DescribeAcls through the restarted node lists the same ACLs;
//! - all along (the logs are read at every client call and poll, and the test fails at once):
//!   no node logged a denial of the brokers' own principal (or of any principal but the three
//!   users'), a CLUSTER_AUTHORIZATION_FAILED, or a failed TLS handshake on the SSL listener.
//!
//! The test's choices (the stream's node, which partition's leader dies, when, how long it stays
//! down, the node of bob's first read) come from a seed: `GREGOR_CLUSTER_ACLS_SEED`, else the
//! clock; it is printed, and a failing run replays with it (the controller places the leaders on
//! its own).

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use gregor_e2e::ack_stream::{AckStream, Acked, ACK_TIMEOUT};
use gregor_e2e::broker::wait_accepting;
use gregor_e2e::check::{self, Rec};
use gregor_e2e::cluster::{Cluster, Role};
use gregor_e2e::cluster_client::{acked_lines, wait_for};
use gregor_e2e::mutate::Rng;
use gregor_e2e::pki::Pki;
use gregor_e2e::{python, python_script, run_python_json_or};
use serde_json::Value;

/// How long one client run may take.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(60);
/// The stream's own limit, should the test never stop it.
const STREAM_SECONDS: &str = "80";
/// How long the stream has to flush and report after SIGTERM.
const STREAM_STOP_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a node's SASL_SSL listener has to accept connections once the node listens.
const LISTEN_TIMEOUT: Duration = Duration::from_secs(10);
/// How long an ACL or a SCRAM credential may take to reach every node's image.
const SETTLE: Duration = Duration::from_secs(15);

/// The topic alice writes and bob reads.
const TOPIC: &str = "orders";
/// Its partitions.
const PARTITIONS: usize = 3;
/// Bob's consumer group.
const GROUP: &str = "billing";

/// The subject of the test PKI's broker certificate (`pki.rs`) as Kafka's default
/// `ssl.principal.mapping.rules` names it: the principal of every inter-broker request.
const BROKER_PRINCIPAL: &str = "User:CN=gregor e2e broker";

/// A SASL user of the client listener.
#[derive(Clone, Copy)]
struct User {
    name: &'static str,
    password: &'static str,
    mechanism: &'static str,
}

/// The super user, a PLAIN user of the listener's JAAS config.
const ADMIN: User = User {
    name: "admin",
    password: "admin-secret",
    mechanism: "PLAIN",
};
/// The producer: WRITE, DESCRIBE, CREATE on the topic prefix `orders`.
const ALICE: User = User {
    name: "alice",
    password: "alice-secret",
    mechanism: "SCRAM-SHA-256",
};
/// The consumer: READ, DESCRIBE on the topic `orders`, READ on the group `billing`.
const BOB: User = User {
    name: "bob",
    password: "bob-secret",
    mechanism: "SCRAM-SHA-256",
};
/// Authenticated, and granted nothing.
const MALLORY: User = User {
    name: "mallory",
    password: "mallory-secret",
    mechanism: "SCRAM-SHA-256",
};

/// The PLAIN users of every node's SASL_SSL listener: only the admin (the others log in with
/// SCRAM credentials the admin puts in the metadata log).
const JAAS: &str = "org.apache.kafka.common.security.plain.PlainLoginModule required \
                    user_admin=\"admin-secret\";";

/// The ACLs the admin creates, as `acl_cluster_client.py` writes them ("principal|permission|
/// operation|resource type|pattern type|name"): what `kafka-acls.sh --producer --topic orders
/// --resource-pattern-type prefixed` gives alice (idempotence comes with WRITE on a topic,
/// KIP-679) and `--consumer --topic orders --group billing` gives bob. Sorted, as DescribeAcls
/// is compared with them.
const ACLS: [&str; 6] = [
    "User:alice|ALLOW|CREATE|TOPIC|PREFIXED|orders",
    "User:alice|ALLOW|DESCRIBE|TOPIC|PREFIXED|orders",
    "User:alice|ALLOW|WRITE|TOPIC|PREFIXED|orders",
    "User:bob|ALLOW|DESCRIBE|TOPIC|LITERAL|orders",
    "User:bob|ALLOW|READ|GROUP|LITERAL|billing",
    "User:bob|ALLOW|READ|TOPIC|LITERAL|orders",
];

const TOPIC_AUTHORIZATION_FAILED: &str = "TOPIC_AUTHORIZATION_FAILED";
const GROUP_AUTHORIZATION_FAILED: &str = "GROUP_AUTHORIZATION_FAILED";

/// Three combined nodes under the authorizer, each with a SASL_SSL listener of its own.
struct AclCluster {
    cluster: Cluster,
    /// Each node's SASL_SSL listener (`cluster.node(id).addr` is its inter-broker SSL one).
    sasl_ssl: BTreeMap<i32, SocketAddr>,
    /// The CA the clients trust.
    ca: PathBuf,
    /// What the nodes logged about authorization, gathered as the test goes.
    watch: Mutex<LogWatch>,
    /// Owns the certificates' directory, removed when the test ends.
    _pki: Pki,
}

impl AclCluster {
    /// Lays out three combined nodes: the SSL listener first (the harness's `--listen` gives it
    /// its address, and the nodes' links point at it) for the brokers, requiring client
    /// certificates; a SASL_SSL listener of each node's own for the clients; the authorizer with
    /// the admin and the brokers' certificate as super users. Starts them and waits until every
    /// SASL_SSL listener accepts connections.
    fn start() -> AclCluster {
        let pki = Pki::generate();
        let ca = pki.path("ca.pem");
        let mut sets = vec![
            "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer"
                .to_string(),
            format!("super.users=User:{};{BROKER_PRINCIPAL}", ADMIN.name),
            "inter.broker.listener.name=SSL".to_string(),
            // Only the brokers' listener asks for certificates; SASL_SSL clients show none.
            "listener.name.ssl.ssl.truststore.type=PEM".to_string(),
            format!("listener.name.ssl.ssl.truststore.location={}", ca.display()),
            "listener.name.ssl.ssl.client.auth=required".to_string(),
            "sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256".to_string(),
            format!("listener.name.sasl_ssl.plain.sasl.jaas.config={JAAS}"),
            // The restarted node gets its preferred leaderships back within seconds.
            "leader.imbalance.check.interval.seconds=2".to_string(),
            // The admin's Metadata for `orders` before creating it must not create it.
            "auto.create.topics.enable=false".to_string(),
        ];
        sets.extend(pki.keystore_config());
        let sets: Vec<&str> = sets.iter().map(String::as_str).collect();
        let mut cluster = Cluster::prepare(&[Role::Combined; 3], &sets);
        let mut sasl_ssl = BTreeMap::new();
        for id in cluster.ids() {
            let at = gregor_e2e::ports::reserve();
            cluster.args_mut(id).extend([
                "--set".to_string(),
                format!("listeners=SSL://127.0.0.1:0,SASL_SSL://{at}"),
            ]);
            sasl_ssl.insert(id, at);
        }
        let ids = cluster.ids();
        cluster.start_nodes(&ids);
        let acl_cluster = AclCluster {
            cluster,
            sasl_ssl,
            ca,
            watch: Mutex::new(LogWatch::default()),
            _pki: pki,
        };
        for &id in &ids {
            acl_cluster.wait_for_sasl_ssl(id);
        }
        acl_cluster
    }

    /// Waits until node `id`'s SASL_SSL listener accepts connections.
    fn wait_for_sasl_ssl(&self, id: i32) {
        let at = self.sasl_ssl[&id];
        assert_ne!(
            self.cluster.node(id).addr,
            at,
            "node {id}: the harness took the SASL_SSL listener for the SSL one"
        );
        wait_accepting(at, LISTEN_TIMEOUT, || self.cluster.logs());
    }

    /// The SASL_SSL listeners of the nodes `ids`, as bootstrap servers.
    fn bootstrap(&self, ids: &[i32]) -> String {
        ids.iter()
            .map(|id| self.sasl_ssl[id].to_string())
            .collect::<Vec<_>>()
            .join(",")
    }

    /// A client's leading arguments: bootstrapped on `ids`' SASL_SSL listeners, logged in as
    /// `user`, trusting the CA.
    fn login(&self, ids: &[i32], user: User) -> Vec<String> {
        vec![
            self.bootstrap(ids),
            "--user".to_string(),
            user.name.to_string(),
            "--password".to_string(),
            user.password.to_string(),
            "--mechanism".to_string(),
            user.mechanism.to_string(),
            "--ca".to_string(),
            self.ca.display().to_string(),
        ]
    }

    /// `acl_cluster_client.py` as `user` through `ids`; its JSON document, or a failure with
    /// the nodes' logs.
    fn client(&self, ids: &[i32], user: User, args: &[&str]) -> Value {
        let login = self.login(ids, user);
        let mut all: Vec<&str> = login.iter().map(String::as_str).collect();
        all.extend_from_slice(args);
        let doc = run_python_json_or("acl_cluster_client.py", &all, CLIENT_TIMEOUT, || {
            self.cluster.logs()
        });
        self.scan_logs();
        doc
    }

    /// Reads what the nodes logged since the last scan (see [`LogWatch`]) and fails at once on
    /// a line no node may log here: a denial of anyone but the three users (the brokers' own
    /// principal above all), a CLUSTER_AUTHORIZATION_FAILED, or a failed TLS handshake on the
    /// brokers' SSL listener.
    fn scan_logs(&self) {
        let wrong = self
            .watch
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .scan(&self.cluster);
        assert!(
            wrong.is_empty(),
            "a node refused the brokers (or someone but the three users), or a TLS handshake \
             between them:\n{}\n{}",
            wrong.join("\n"),
            self.cluster.logs()
        );
    }

    /// Partition → (leader, replicas, ISR) of [`TOPIC`] as the admin's Metadata through `ids`
    /// shows it, and the brokers it lists.
    fn describe(&self, ids: &[i32]) -> (Vec<i64>, BTreeMap<i32, Partition>) {
        let doc = self.client(ids, ADMIN, &["describe", TOPIC]);
        let list = |v: &Value| -> Vec<i64> {
            v.as_array()
                .map(|a| a.iter().filter_map(Value::as_i64).collect())
                .unwrap_or_default()
        };
        let mut parts = BTreeMap::new();
        for (p, s) in doc["partitions"].as_object().into_iter().flatten() {
            parts.insert(
                p.parse().expect("a partition number"),
                Partition {
                    leader: s["leader"].as_i64().unwrap_or(-1),
                    replicas: list(&s["replicas"]),
                    isr: list(&s["isr"]),
                },
            );
        }
        (list(&doc["brokers"]), parts)
    }

    /// Waits until every partition of [`TOPIC`] has all three replicas in its ISR and is led
    /// by its preferred (first) replica; the partitions then.
    fn wait_for_whole_and_preferred(&self, ids: &[i32], after: &str) -> BTreeMap<i32, Partition> {
        wait_for(
            &self.cluster,
            &format!("every ISR whole and every leader preferred after {after}"),
            Duration::from_secs(60),
            || {
                let (_, parts) = self.describe(ids);
                (parts.len() == PARTITIONS
                    && parts
                        .values()
                        .all(|s| s.isr.len() == 3 && s.replicas.first() == Some(&s.leader)))
                .then_some(parts)
            },
        )
    }

    /// Bob's Metadata for [`TOPIC`], bootstrapped on node `id` alone: whether it came without
    /// an error and with every partition (his SCRAM credential and his ACLs are in that node's
    /// image), and the answer.
    fn bob_sees_orders_at(&self, id: i32) -> (bool, Value) {
        let doc = self.client(&[id], BOB, &["metadata", TOPIC]);
        (
            doc["error"].is_null() && doc["partitions"] == PARTITIONS,
            doc,
        )
    }

    /// Waits until [`AclCluster::bob_sees_orders_at`] node `id`: an ACL or a credential the
    /// controller committed reaches each broker's image a moment later.
    fn wait_for_bob_at(&self, id: i32) {
        let deadline = Instant::now() + SETTLE;
        loop {
            let (ok, doc) = self.bob_sees_orders_at(id);
            if ok {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "bob's Metadata at node {id} is still {doc} {SETTLE:?} after the ACLs were \
                 created\n{}",
                self.cluster.logs()
            );
            thread::sleep(Duration::from_millis(200));
        }
    }

    /// The three users' probes through `ids`, at once; every refusal that did not come as it
    /// should, as one failure listing them all.
    fn assert_refusals(&self, ids: &[i32], when: &str) {
        let partitions = PARTITIONS.to_string();
        let probe = |user: User, steps: &[&str]| {
            let mut args = vec!["probe", TOPIC, "--partitions", partitions.as_str()];
            args.extend_from_slice(steps);
            self.client(ids, user, &args)
        };
        let (mallory, alice, bob) = thread::scope(|s| {
            // No assign()-and-fetch step for mallory, and no topic error from her group
            // consumer: refused the topic in Metadata (and the group at FindCoordinator),
            // librdkafka never learns a leader to send her Produce or Fetch to. The leaders'
            // own Produce and Fetch refusals are bob's and alice's steps.
            let mallory = s.spawn(|| probe(MALLORY, &["--produce", "--group", GROUP]));
            let alice = s.spawn(|| probe(ALICE, &["--group", GROUP, "--fetch"]));
            let bob = probe(BOB, &["--produce"]);
            (
                mallory.join().expect("mallory's probe"),
                alice.join().expect("alice's probe"),
                bob,
            )
        });
        let mut wrong = Vec::new();
        let mut expect = |who: &str, what: &str, ok: bool, doc: &Value| {
            if !ok {
                wrong.push(format!("{who}: {what}; got {doc}"));
            }
        };
        let every_partition =
            |v: &Value| (0..PARTITIONS).all(|p| v[p.to_string()] == TOPIC_AUTHORIZATION_FAILED);
        let names = |v: &Value| -> BTreeSet<String> {
            v.as_array()
                .into_iter()
                .flatten()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        };
        let m = &mallory;
        expect(
            "mallory",
            "Metadata for orders refused with TOPIC_AUTHORIZATION_FAILED",
            m["metadata"] == TOPIC_AUTHORIZATION_FAILED,
            m,
        );
        expect(
            "mallory",
            "a record to each partition refused with TOPIC_AUTHORIZATION_FAILED",
            every_partition(&m["produce"]),
            m,
        );
        expect(
            "mallory",
            "consuming in group billing refused with GROUP_AUTHORIZATION_FAILED, nothing read",
            names(&m["group"]["errors"]).contains(GROUP_AUTHORIZATION_FAILED)
                && m["group"]["records"] == 0,
            m,
        );
        let a = &alice;
        expect(
            "alice",
            "Metadata for orders allowed",
            a["metadata"].is_null(),
            a,
        );
        expect(
            "alice",
            "group billing refused with GROUP_AUTHORIZATION_FAILED, nothing read",
            names(&a["group"]["errors"]).contains(GROUP_AUTHORIZATION_FAILED)
                && a["group"]["records"] == 0,
            a,
        );
        expect(
            "alice",
            "every partition's leader refuses her Fetch with TOPIC_AUTHORIZATION_FAILED, \
             nothing read",
            every_partition(&a["fetch"]["partitions"]) && a["fetch"]["records"] == 0,
            a,
        );
        let b = &bob;
        expect(
            "bob",
            "Metadata for orders allowed",
            b["metadata"].is_null(),
            b,
        );
        expect(
            "bob",
            "every partition's leader refuses his Produce with TOPIC_AUTHORIZATION_FAILED",
            every_partition(&b["produce"]),
            b,
        );
        assert!(
            wrong.is_empty(),
            "{when}, through nodes {ids:?}, the authorizer did not answer as it should:\n{}\n{}",
            wrong.join("\n"),
            self.cluster.logs()
        );
        eprintln!("{when}: every probe refused as it should (through nodes {ids:?})");
    }

    /// Asserts that DescribeAcls through `ids` lists exactly [`ACLS`].
    fn assert_acls(&self, ids: &[i32], when: &str) {
        let doc = self.client(ids, ADMIN, &["describe-acls"]);
        let listed: Vec<&str> = doc["acls"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        assert_eq!(
            listed, ACLS,
            "{when}: DescribeAcls through nodes {ids:?} lists other ACLs"
        );
    }

    /// The last scan of the logs: nothing wrong (see [`AclCluster::scan_logs`]) and no line
    /// unseen; prints how many denials each user got.
    fn assert_clean_logs(&self) {
        self.scan_logs();
        let watch = self.watch.lock().unwrap_or_else(|p| p.into_inner());
        let mut denied: BTreeMap<&str, usize> = BTreeMap::new();
        for (_, line) in &watch.lines {
            if let Some(principal) = denied_principal(line) {
                *denied.entry(principal).or_default() += 1;
            }
        }
        eprintln!(
            "denials logged: {denied:?}; log lines seen per node: {:?}",
            watch.seen
        );
        assert!(
            watch.gaps.is_empty(),
            "lines of nodes {:?} scrolled out of the harness's log window before the test saw \
             them",
            watch.gaps
        );
    }
}

/// The principal of an authorizer audit line (`Principal = User:bob is Denied ...`).
fn denied_principal(line: &str) -> Option<&str> {
    let rest = line.split("Principal = ").nth(1)?;
    rest.split_once(" is Denied")
        .map(|(principal, _)| principal)
}

/// The lines of the nodes' logs the test checks at the end, gathered at every client call and
/// every poll: the harness keeps only a node's last [`LOG_WINDOW`] lines, so they are read
/// while they are still there. A scan that no longer finds the line it saw last on a node
/// records a gap (lines the test never saw).
#[derive(Default)]
struct LogWatch {
    /// The authorizer's audit lines, by node, each once (they carry timestamps).
    lines: BTreeSet<(i32, String)>,
    /// Each node's last line at the previous scan.
    last: BTreeMap<i32, String>,
    /// How many lines of each node the scans saw in all.
    seen: BTreeMap<i32, usize>,
    /// Nodes whose lines scrolled away unseen.
    gaps: BTreeSet<i32>,
}

/// The harness's `LOG_LINES_KEPT` (`broker.rs`): the lines of a node's log it keeps.
const LOG_WINDOW: usize = 300;

/// Whether a node may not log `line` in this test: a denial of anyone but the three users,
/// a CLUSTER_AUTHORIZATION_FAILED, or a failed TLS handshake on the brokers' SSL listener (the
/// SASL_SSL listeners log the test's own connect-and-drop checks as failed handshakes).
fn wrong_line(line: &str) -> bool {
    let stranger = denied_principal(line).is_some_and(|principal| {
        principal == BROKER_PRINCIPAL
            || ![ALICE, BOB, MALLORY]
                .iter()
                .any(|u| principal == format!("User:{}", u.name))
    });
    stranger
        || line.contains("CLUSTER_AUTHORIZATION_FAILED")
        || (line.contains("TLS handshake failed") && line.contains("listener=SSL"))
}

impl LogWatch {
    /// Reads each node's new lines; the wrong ones among them (see [`wrong_line`]).
    fn scan(&mut self, cluster: &Cluster) -> Vec<String> {
        let mut wrong = Vec::new();
        for id in cluster.ids() {
            let log = cluster.node(id).logs();
            let lines: Vec<&str> = log.lines().collect();
            let new_from = match self.last.get(&id) {
                Some(last) => match lines.iter().rposition(|l| l == last) {
                    Some(i) => i + 1,
                    None => {
                        self.gaps.insert(id);
                        0
                    }
                },
                None => {
                    if lines.len() >= LOG_WINDOW {
                        self.gaps.insert(id);
                    }
                    0
                }
            };
            *self.seen.entry(id).or_default() += lines.len() - new_from;
            for line in &lines[new_from..] {
                if wrong_line(line) {
                    wrong.push(format!("node {id}: {line}"));
                }
                if denied_principal(line).is_some() {
                    self.lines.insert((id, line.to_string()));
                }
            }
            if let Some(last) = lines.last() {
                self.last.insert(id, last.to_string());
            }
        }
        wrong
    }
}

/// One partition as Metadata describes it.
#[derive(Debug, Clone)]
struct Partition {
    leader: i64,
    replicas: Vec<i64>,
    isr: Vec<i64>,
}

/// Alice's `sasl_client.py stream` at node `at`, acknowledged records in `ack_file`.
fn alice_stream(acl: &AclCluster, at: i32, ack_file: &Path) -> AckStream {
    let login = acl.login(&[at], ALICE);
    let mut cmd = Command::new(python());
    cmd.arg("-u")
        .arg("-B")
        .arg(python_script("sasl_client.py"))
        .args(&login)
        .args(["stream", TOPIC])
        .arg(ack_file)
        .args(["--seconds", STREAM_SECONDS, "--idempotent"]);
    AckStream::start("alice's stream", cmd, ack_file)
}

/// Waits until `done` holds for alice's acknowledgements, scanning the nodes' logs at each
/// poll; fails if her producer stopped.
fn wait_until(
    stream: &mut AckStream,
    acl: &AclCluster,
    what: &str,
    mut done: impl FnMut(&[Acked]) -> bool,
) {
    stream.wait_until(&acl.cluster, what, ACK_TIMEOUT, |acked| {
        acl.scan_logs();
        done(acked)
    });
}

/// The seed: `GREGOR_CLUSTER_ACLS_SEED`, else one drawn from the clock.
fn seed() -> u64 {
    std::env::var("GREGOR_CLUSTER_ACLS_SEED")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or_else(|| {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64 % 1_000_000)
                .unwrap_or(1)
        })
}

/// One of `ids`, drawn from `rng`.
fn pick(rng: &mut Rng, ids: &[i32]) -> i32 {
    ids[rng.below(ids.len())]
}

/// Bob's records of one `group-read` session, and the offsets it started from and committed.
fn session(doc: &Value) -> (Vec<Rec>, BTreeMap<String, Value>, BTreeMap<String, Value>) {
    let map = |v: &Value| -> BTreeMap<String, Value> {
        v.as_object()
            .map(|m| m.clone().into_iter().collect())
            .unwrap_or_default()
    };
    (
        check::records(doc, "records"),
        map(&doc["started"]),
        map(&doc["committed"]),
    )
}

#[test]
fn acls_hold_through_a_leader_kill_under_load() {
    let seed = seed();
    eprintln!("GREGOR_CLUSTER_ACLS_SEED={seed}");
    let mut rng = Rng::new(seed);
    let started = Instant::now();
    let mut acl = AclCluster::start();
    let ids = acl.cluster.ids();
    eprintln!(
        "cluster up after {:.1} s; SASL_SSL listeners {:?}",
        started.elapsed().as_secs_f64(),
        acl.sasl_ssl
    );
    wait_for(
        &acl.cluster,
        "the admin's Metadata lists every broker",
        Duration::from_secs(30),
        || (acl.describe(&ids).0.len() == ids.len()).then_some(()),
    );

    // The admin sets the cluster up through a real client, over SASL_SSL.
    let users: Vec<String> = [ALICE, BOB, MALLORY]
        .iter()
        .map(|u| format!("{}:{}", u.name, u.password))
        .collect();
    let mut args = vec!["scram"];
    args.extend(users.iter().map(String::as_str));
    acl.client(&ids, ADMIN, &args);
    let mut args = vec!["create-acls"];
    args.extend(ACLS);
    acl.client(&ids, ADMIN, &args);
    acl.client(
        &ids,
        ADMIN,
        &[
            "create-topic",
            TOPIC,
            &PARTITIONS.to_string(),
            "3",
            "--config",
            "min.insync.replicas=2",
        ],
    );
    let parts = acl.wait_for_whole_and_preferred(&ids, "creation");
    acl.assert_acls(&ids, "after creation");
    for &id in &ids {
        acl.wait_for_bob_at(id);
    }
    acl.assert_refusals(&ids, "before the kill");
    eprintln!(
        "set up after {:.1} s; partition leaders {:?}",
        started.elapsed().as_secs_f64(),
        parts
            .iter()
            .map(|(p, s)| (*p, s.leader))
            .collect::<Vec<_>>()
    );

    // The seeded choices.
    let at = pick(&mut rng, &ids);
    let victim_partition = rng.below(PARTITIONS) as i32;
    let victim = parts[&victim_partition].leader as i32;
    let acks_before_kill = 500 + rng.below(1_500);
    let down_for = Duration::from_millis(1_500 + rng.below(3_000) as u64);
    let first_reader = pick(&mut rng, &ids);
    eprintln!(
        "seed {seed}: alice's stream at node {at}; kill -9 node {victim} (partition \
         {victim_partition}'s leader) after {acks_before_kill} acks, down for {down_for:?}; \
         bob's first read at node {first_reader}"
    );

    let dir = tempfile::tempdir().expect("temp dir");
    let ack_file = dir.path().join("acked.txt");
    let mut stream = alice_stream(&acl, at, &ack_file);
    wait_until(&mut stream, &acl, "the acks before the kill", |a| {
        a.len() >= acks_before_kill
    });
    // Bob reads what is there and commits, while alice goes on.
    let first = acl.client(&[first_reader], BOB, &["group-read", TOPIC, GROUP]);
    let (first_records, _, first_committed) = session(&first);
    eprintln!(
        "bob's first session at node {first_reader}: {} records, committed {first_committed:?}",
        first_records.len()
    );

    acl.cluster.kill9(victim);
    let killed_at = Instant::now();
    let acked_at_kill = stream.acked().len();
    let live: Vec<i32> = ids.iter().copied().filter(|&i| i != victim).collect();
    let new_leader = wait_for(
        &acl.cluster,
        "a leader of every partition on a live node",
        Duration::from_secs(30),
        || {
            let (_, parts) = acl.describe(&live);
            let leaders: Vec<i64> = parts.values().map(|s| s.leader).collect();
            (leaders.len() == PARTITIONS && leaders.iter().all(|&l| live.contains(&(l as i32))))
                .then(|| parts[&victim_partition].leader)
        },
    );
    let failover = killed_at.elapsed();
    wait_until(&mut stream, &acl, "300 acks with the node down", |a| {
        a.len() >= acked_at_kill + 300
    });
    eprintln!(
        "node {victim} killed at {acked_at_kill} acks: partition {victim_partition} led by node \
         {new_leader} after {:.2} s; 300 more acks after {:.2} s",
        failover.as_secs_f64(),
        killed_at.elapsed().as_secs_f64()
    );
    acl.assert_refusals(&live, "with the leader killed");
    thread::sleep(down_for.saturating_sub(killed_at.elapsed()));

    acl.cluster.restart(victim);
    acl.wait_for_sasl_ssl(victim);
    // At once, no retry: a node serves its listeners only once it has caught up with the
    // metadata log, so bob's first request must find his credential and ACLs, replayed from
    // the node's own log and the quorum.
    let (ok, doc) = acl.bob_sees_orders_at(victim);
    assert!(
        ok,
        "bob's first Metadata at the restarted node {victim}: {doc}\n{}",
        acl.cluster.logs()
    );
    eprintln!(
        "node {victim} restarted {:.2} s after the kill; bob's first Metadata there is clean",
        killed_at.elapsed().as_secs_f64()
    );
    let parts = acl.wait_for_whole_and_preferred(&ids, &format!("the restart of node {victim}"));
    let led_again: Vec<i32> = parts
        .iter()
        .filter(|(_, s)| s.leader == i64::from(victim))
        .map(|(p, _)| *p)
        .collect();
    assert!(
        led_again.contains(&victim_partition),
        "node {victim} leads {led_again:?} again, not partition {victim_partition}: {parts:?}"
    );
    let acked_at_rejoin = stream.acked().len();
    eprintln!(
        "every ISR whole and node {victim} leading {led_again:?} again {:.2} s after the kill \
         ({acked_at_rejoin} acks)",
        killed_at.elapsed().as_secs_f64()
    );
    acl.assert_refusals(&[victim], "after the restart");
    // Alice's records go to the restarted leader too.
    wait_until(
        &mut stream,
        &acl,
        "acks from the restarted leader",
        |a: &[Acked]| {
            a.len() >= acked_at_rejoin + 300
                && a[acked_at_rejoin..]
                    .iter()
                    .any(|(p, _, _)| led_again.contains(p))
        },
    );
    let produced = stream.stop(&acl.cluster, STREAM_STOP_TIMEOUT);

    let delivered = check::records(&produced, "delivered");
    eprintln!(
        "alice: {} produced, {} acknowledged, {} failed; client errors (first seen at):",
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
        "alice's idempotent producer hit a fatal error\n{}",
        acl.cluster.logs()
    );
    assert_eq!(
        (produced["failed"].as_u64(), produced["produced"].as_u64()),
        (Some(0), Some(delivered.len() as u64)),
        "every record alice produced must be acknowledged: failures {}\n{}",
        produced["failures"],
        acl.cluster.logs()
    );
    assert_eq!(
        acked_lines(&ack_file).len(),
        delivered.len(),
        "the ack file and the delivery reports"
    );

    // Bob again, in the same group, through the restarted node: on from his commits.
    let second = acl.client(&[victim], BOB, &["group-read", TOPIC, GROUP]);
    let (second_records, second_started, _) = session(&second);
    eprintln!(
        "bob's second session at node {victim}: {} records from {second_started:?}",
        second_records.len()
    );
    assert_eq!(
        second_started, first_committed,
        "bob's second session must start where his first committed, before the kill"
    );
    let consumed: Vec<Rec> = first_records.into_iter().chain(second_records).collect();
    check::assert_same_records(delivered.len(), &delivered, &consumed);
    assert_eq!(
        check::partitions_used(&delivered),
        PARTITIONS,
        "the stream covers every partition"
    );

    acl.assert_acls(&[victim], "after the restart");
    acl.assert_clean_logs();
    eprintln!(
        "seed {seed}: {} records acknowledged and read back once by bob in group {GROUP}; \
         ACLs held before, during and after; {:.1} s in all",
        delivered.len(),
        started.elapsed().as_secs_f64()
    );
}
