//! SASL re-authentication (KIP-368): gregor with `connections.max.reauth.ms` of a few seconds,
//! against the real binary with real clients. Each test starts its own broker with a
//! SASL_PLAINTEXT and a SASL_SSL listener beside the PLAINTEXT one (PLAIN with a JAAS `admin`
//! user, SCRAM-SHA-256/512 with users in the metadata log) and an HTTP listener for `/metrics`.
//!
//! ```text
//!   kafka-clients (SCRAM-SHA-256) ─────▶ SASL_PLAINTEXT ──┐  session: 3 s, re-authenticated
//!   confluent-kafka (SCRAM-SHA-512) ───▶ SASL_SSL ────────┼─▶ gregor   on the same connection
//!   gregor produce / consume (SCRAM) ──▶ SASL_PLAINTEXT ──┤            every 85-95% of it
//!   raw socket that never renews ──────▶ SASL_PLAINTEXT ──┘  closed at its first late request
//!   kafka-configs.sh --delete-config ──▶ PLAINTEXT: the next re-authentication fails
//! ```
//!
//! - Kafka's Java client and librdkafka keep producing and consuming across several lifetimes
//!   without an error: every acknowledged record is read back, the clients' own
//!   successful-reauthentication counts (Java) and the broker's (both) grow, and no connection
//!   is closed for an expired session. Then the user's credential is deleted with Kafka's
//!   `kafka-configs.sh`: the client's next re-authentication fails within a lifetime, it is told
//!   of an authentication failure, and the broker counts and logs the failed re-authentication.
//! - A raw client authenticates with SaslAuthenticate v1 and is told the lifetime; one that
//!   re-authenticates as another user is refused; one that never re-authenticates, and one that
//!   logged in with v0 (which cannot be told), are closed at their first request after the
//!   lifetime, logged and counted, and the broker keeps serving.
//! - gregor's own `consume` in a group and `produce` fed line by line stay on their connections
//!   across lifetimes and lose nothing.
//! - Three nodes replicating over SASL_PLAINTEXT renew their sessions with each other (replica
//!   fetchers, through gregor's client): an acks=all stream with `min.insync.replicas=3` across
//!   four lifetimes, no ISR shrinks, no connection closed for an expired session.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use gregor_e2e::broker::{gregor_bin, wait_accepting};
use gregor_e2e::check;
use gregor_e2e::cluster::{Cluster, Role};
use gregor_e2e::kafka_tools::Toolbox;
use gregor_e2e::pki::Pki;
use gregor_e2e::raw::{Closed, RawConn};
use gregor_e2e::{run_python_json_or, unique_topic, Broker};
use kafka_protocol::messages::{
    MetadataRequest, SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest,
};
use kafka_protocol::protocol::StrBytes;
use serde_json::Value;

/// The session lifetime the clients' tests run with.
const LIFETIME_MS: u64 = 3000;
/// How long the clients produce and consume: more than three lifetimes.
const RUN: Duration = Duration::from_secs(10);
/// How long one client program may take.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(120);
/// The PLAIN users of both SASL listeners.
const JAAS: &str = "org.apache.kafka.common.security.plain.PlainLoginModule required \
                    user_admin=\"admin-secret\" user_alice=\"alice-secret\";";

/// A broker whose SASL sessions last `lifetime_ms`.
struct ReauthBroker {
    broker: Broker,
    sasl_plaintext: SocketAddr,
    sasl_ssl: SocketAddr,
    /// The CA clients trust on SASL_SSL.
    ca: PathBuf,
    /// `/metrics`.
    metrics: String,
    _pki: Pki,
}

impl ReauthBroker {
    fn start(lifetime_ms: u64) -> ReauthBroker {
        let pki = Pki::generate();
        let sasl_plaintext = gregor_e2e::ports::reserve();
        let sasl_ssl = gregor_e2e::ports::reserve();
        let http = gregor_e2e::ports::reserve();
        let mut sets = vec![
            format!(
                "listeners=PLAINTEXT://127.0.0.1:0,SASL_PLAINTEXT://{sasl_plaintext},\
                 SASL_SSL://{sasl_ssl}"
            ),
            "sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-256,SCRAM-SHA-512".to_string(),
            format!("listener.name.sasl_plaintext.plain.sasl.jaas.config={JAAS}"),
            format!("listener.name.sasl_ssl.plain.sasl.jaas.config={JAAS}"),
            format!("connections.max.reauth.ms={lifetime_ms}"),
            format!("http.listener={http}"),
            "group.initial.rebalance.delay.ms=0".to_string(),
            "num.partitions=3".to_string(),
        ];
        sets.extend(pki.keystore_config());
        let sets: Vec<&str> = sets.iter().map(String::as_str).collect();
        let broker = Broker::start_with(&sets);
        for addr in [sasl_plaintext, sasl_ssl, http] {
            wait_accepting(addr, Duration::from_secs(10), || broker.logs());
        }
        ReauthBroker {
            broker,
            sasl_plaintext,
            sasl_ssl,
            ca: pki.path("ca.pem"),
            metrics: format!("http://{http}/metrics"),
            _pki: pki,
        }
    }

    fn logs(&self) -> String {
        self.broker.logs()
    }

    /// A socket-server counter of `listener` on `/metrics` (0 until first counted).
    fn counter(&self, name: &str, listener: &str) -> u64 {
        counter(&self.metrics, name, listener)
    }

    /// Creates `topic` with three partitions through the PLAINTEXT listener.
    fn create_topic(&self, topic: &str) {
        let mut conn = RawConn::connect(self.broker.addr());
        assert_eq!(conn.create_topic(topic, 3), 0, "CreateTopics {topic}");
    }

    /// Gives `user` a SCRAM credential (AlterUserScramCredentials from librdkafka's admin, as
    /// the PLAIN user admin).
    fn add_scram(&self, mechanism: &str, user: &str, password: &str) {
        let at = self.sasl_plaintext.to_string();
        run_python_json_or(
            "sasl_admin.py",
            &[
                &at,
                "--user",
                "admin",
                "--password",
                "admin-secret",
                "add-scram",
                user,
                password,
                "--scram-mechanism",
                mechanism,
            ],
            CLIENT_TIMEOUT,
            || format!("--- broker log ---\n{}", self.logs()),
        );
    }

    /// Deletes `user`'s `mechanism` credential with Kafka's `kafka-configs.sh`.
    fn delete_scram(&self, toolbox: &Toolbox, mechanism: &str, user: &str) {
        let bootstrap = self.broker.bootstrap();
        let run = toolbox.run(
            "kafka-configs.sh",
            &[
                "--bootstrap-server",
                &bootstrap,
                "--alter",
                "--delete-config",
                mechanism,
                "--entity-type",
                "users",
                "--entity-name",
                user,
            ],
            None,
            CLIENT_TIMEOUT,
        );
        run.ok().unwrap_or_else(|e| {
            panic!(
                "kafka-configs --delete-config {mechanism}: {e}\n{}\nlog:\n{}",
                run.transcript(),
                self.logs()
            )
        });
    }
}

/// The socket-server counter `name` of `listener` on the `/metrics` page at `url` (0 until
/// first counted).
fn counter(url: &str, name: &str, listener: &str) -> u64 {
    let page = minreq::get(url)
        .with_timeout(10)
        .send()
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    let text = page.as_str().unwrap_or_default();
    let full = format!("kafka_server_socket_server_metrics_{name}{{");
    let label = format!("listener=\"{listener}\"");
    text.lines()
        .filter(|l| l.starts_with(&full) && l.contains(&label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .map(|v| v as u64)
        .sum()
}

/// Runs `client` (a Java or Python program that writes `ready` after its first phase and then
/// waits for `deleted`) in a thread; once `ready` appears, deletes the credential and creates
/// `deleted`. Returns the client's JSON.
fn with_deletion_midway(
    broker: &ReauthBroker,
    dir: &Path,
    delete: impl FnOnce(),
    client: impl FnOnce() -> Value + Send,
) -> Value {
    let ready = dir.join("ready");
    thread::scope(|s| {
        let run = s.spawn(client);
        let deadline = Instant::now() + CLIENT_TIMEOUT;
        while !ready.exists() {
            assert!(
                !run.is_finished() && Instant::now() < deadline,
                "the client did not finish its first phase; log:\n{}",
                broker.logs()
            );
            thread::sleep(Duration::from_millis(50));
        }
        delete();
        std::fs::write(dir.join("deleted"), b"deleted\n").expect("write the deleted marker");
        run.join().expect("client thread")
    })
}

/// The checks common to both clients: phase 1 lost nothing and saw no error, nothing was cut
/// off for an expired session, and after the deletion the client was refused within a lifetime
/// by a failed re-authentication that the broker counted and logged.
fn assert_reauthenticated_then_refused(
    broker: &ReauthBroker,
    doc: &Value,
    listener: &str,
    what: &str,
) {
    let errors = doc["errors"].as_array().cloned().unwrap_or_default();
    assert!(
        errors.is_empty(),
        "{what}: errors across session lifetimes: {errors:?}; log:\n{}",
        broker.logs()
    );
    let delivered = check::records(doc, "delivered");
    assert!(
        delivered.len() >= 50,
        "{what}: only {} records delivered in {RUN:?}",
        delivered.len()
    );
    check::assert_same_records(delivered.len(), &delivered, &check::records(doc, "records"));
    let renewed = broker.counter("successful_reauthentication_total", listener);
    assert!(
        renewed >= 4,
        "{what}: the broker counted {renewed} re-authentications over {RUN:?} with a {LIFETIME_MS} \
         ms lifetime; log:\n{}",
        broker.logs()
    );
    assert_eq!(
        broker.counter("expired_connections_killed_count", listener),
        0,
        "{what}: a connection was closed for an expired session; log:\n{}",
        broker.logs()
    );
    let refused = &doc["refused"];
    eprintln!("{what}: {renewed} re-authentications; after the deletion: {refused}");
    let after_ms = refused["after_ms"].as_u64().unwrap_or_else(|| {
        panic!(
            "{what}: still served after its credential was deleted: {doc}; log:\n{}",
            broker.logs()
        )
    });
    assert!(
        after_ms < LIFETIME_MS + 5000,
        "{what}: refused only {after_ms} ms after the deletion"
    );
    assert!(
        broker.counter("failed_reauthentication_total", listener) >= 1,
        "{what}: the broker did not count a failed re-authentication; log:\n{}",
        broker.logs()
    );
    assert!(
        broker.logs().contains("reauthentication=true"),
        "{what}: the broker must log the failed re-authentication; log:\n{}",
        broker.logs()
    );
}

#[test]
fn java_client_reauthenticates_across_lifetimes_until_its_credential_is_deleted() {
    let toolbox = Toolbox::installed();
    let mut broker = ReauthBroker::start(LIFETIME_MS);
    broker.add_scram("SCRAM-SHA-256", "carol", "carol-secret");
    let topic = unique_topic("reauth-java");
    broker.create_topic(&topic);
    let dir = tempfile::tempdir().expect("tempdir");
    let (ready, deleted) = (dir.path().join("ready"), dir.path().join("deleted"));
    let at = broker.sasl_plaintext.to_string();
    let run_ms = RUN.as_millis().to_string();
    let doc = with_deletion_midway(
        &broker,
        dir.path(),
        || broker.delete_scram(&toolbox, "SCRAM-SHA-256", "carol"),
        || {
            let line = toolbox.run_java_source(
                "SaslReauth.java",
                &[
                    &at,
                    &topic,
                    "SCRAM-SHA-256",
                    "carol",
                    "carol-secret",
                    &run_ms,
                    &ready.display().to_string(),
                    &deleted.display().to_string(),
                ],
                CLIENT_TIMEOUT,
            );
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line}: {e}"))
        },
    );
    assert_reauthenticated_then_refused(&broker, &doc, "SASL_PLAINTEXT", "kafka-clients");
    // The client's own count: each of its clients renewed its sessions more than once.
    let reauth = &doc["reauth"];
    for client in ["producer", "consumer"] {
        assert!(
            reauth[client].as_u64().unwrap_or_default() >= 2,
            "kafka-clients' {client} re-authenticated {} times over {RUN:?}: {reauth}",
            reauth[client]
        );
    }
    assert_eq!(reauth["failed"].as_u64(), Some(0), "{reauth}");
    assert_eq!(
        doc["refused"]["exception"].as_str(),
        Some("SaslAuthenticationException"),
        "{doc}; log:\n{}",
        broker.logs()
    );
    assert!(broker.broker.is_running(), "log:\n{}", broker.logs());
}

#[test]
fn librdkafka_reauthenticates_across_lifetimes_until_its_credential_is_deleted() {
    let toolbox = Toolbox::installed();
    let mut broker = ReauthBroker::start(LIFETIME_MS);
    broker.add_scram("SCRAM-SHA-512", "carol", "carol-secret");
    let topic = unique_topic("reauth-librdkafka");
    broker.create_topic(&topic);
    let dir = tempfile::tempdir().expect("tempdir");
    let (ready, deleted) = (dir.path().join("ready"), dir.path().join("deleted"));
    let at = broker.sasl_ssl.to_string();
    let ca = broker.ca.display().to_string();
    let seconds = RUN.as_secs().to_string();
    let doc = with_deletion_midway(
        &broker,
        dir.path(),
        || broker.delete_scram(&toolbox, "SCRAM-SHA-512", "carol"),
        || {
            run_python_json_or(
                "sasl_reauth.py",
                &[
                    &at,
                    "--mechanism",
                    "SCRAM-SHA-512",
                    "--user",
                    "carol",
                    "--password",
                    "carol-secret",
                    "--ca",
                    &ca,
                    &topic,
                    "--seconds",
                    &seconds,
                    "--ready",
                    &ready.display().to_string(),
                    "--deleted",
                    &deleted.display().to_string(),
                ],
                CLIENT_TIMEOUT,
                || format!("--- broker log ---\n{}", broker.logs()),
            )
        },
    );
    assert_reauthenticated_then_refused(&broker, &doc, "SASL_SSL", "librdkafka");
    let told = doc["refused"]["errors"].to_string();
    assert!(
        told.to_ascii_uppercase().contains("AUTHENTICATION"),
        "librdkafka must be told of an authentication failure: {told}"
    );
    assert!(broker.broker.is_running(), "log:\n{}", broker.logs());
}

/// SaslHandshake v1 and SaslAuthenticate `version` with PLAIN `user` on `conn`.
fn login(conn: &mut RawConn, version: i16, user: &str, password: &str) -> SaslAuthenticateResponse {
    let hs = SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str("PLAIN"));
    let resp = conn.request(1, &hs).expect("SaslHandshake v1");
    assert_eq!(resp.error_code, 0, "SaslHandshake: {resp:?}");
    let token = format!("\0{user}\0{password}");
    let req = SaslAuthenticateRequest::default()
        .with_auth_bytes(bytes::Bytes::copy_from_slice(token.as_bytes()));
    conn.request(version, &req)
        .unwrap_or_else(|e| panic!("SaslAuthenticate v{version}: {e}"))
}

fn metadata(conn: &mut RawConn) -> std::io::Result<()> {
    let req = MetadataRequest::default()
        .with_topics(None)
        .with_allow_auto_topic_creation(false);
    conn.request(12, &req).map(|_| ())
}

#[test]
fn a_client_that_does_not_reauthenticate_is_closed_after_its_session() {
    const LIFETIME: u64 = 2000;
    let mut broker = ReauthBroker::start(LIFETIME);
    let at = broker.sasl_plaintext;

    // Told the lifetime in SaslAuthenticate v1; another user on re-authentication is refused.
    let mut conn = RawConn::connect(at);
    let resp = login(&mut conn, 1, "alice", "alice-secret");
    assert_eq!(
        (resp.error_code, resp.session_lifetime_ms),
        (0, LIFETIME as i64),
        "{resp:?}"
    );
    let resp = login(&mut conn, 1, "admin", "admin-secret");
    assert_eq!(resp.error_code, 58, "SASL_AUTHENTICATION_FAILED: {resp:?}");
    assert_eq!(
        resp.error_message.as_deref(),
        Some("Cannot change principals during re-authentication from User.alice: User.admin")
    );
    assert_eq!(conn.wait_closed(Duration::from_secs(5)), Closed::Yes);

    // One that re-authenticates (same user) gets a new lifetime from then; one that logged in
    // with v0 (no lifetime field) has one all the same; neither renews again.
    let mut renewing = RawConn::connect(at);
    let mut v0 = RawConn::connect(at);
    assert_eq!(
        login(&mut renewing, 2, "alice", "alice-secret").error_code,
        0
    );
    assert_eq!(login(&mut v0, 0, "alice", "alice-secret").error_code, 0);
    thread::sleep(Duration::from_millis(LIFETIME / 2));
    let resp = login(&mut renewing, 2, "alice", "alice-secret");
    assert_eq!(
        (resp.error_code, resp.session_lifetime_ms),
        (0, LIFETIME as i64)
    );
    let renewed_at = Instant::now();
    // v0's session ends first: its next request closes it, while the renewed one is served.
    thread::sleep(Duration::from_millis(LIFETIME / 2 + 300));
    metadata(&mut renewing).expect("the renewed session is live");
    let _ = metadata(&mut v0);
    assert_eq!(v0.wait_closed(Duration::from_secs(5)), Closed::Yes);
    thread::sleep((renewed_at + Duration::from_millis(LIFETIME + 300)) - Instant::now());
    let late = metadata(&mut renewing);
    assert!(late.is_err(), "a request after the lifetime was answered");
    assert_eq!(renewing.wait_closed(Duration::from_secs(5)), Closed::Yes);

    assert!(
        broker.logs().contains("session expired"),
        "the broker must log why; log:\n{}",
        broker.logs()
    );
    assert_eq!(
        broker.counter("expired_connections_killed_count", "SASL_PLAINTEXT"),
        2
    );
    assert_eq!(
        broker.counter("failed_reauthentication_total", "SASL_PLAINTEXT"),
        1
    );
    assert!(broker.broker.is_running(), "log:\n{}", broker.logs());
    let mut fresh = RawConn::connect(at);
    assert_eq!(login(&mut fresh, 2, "alice", "alice-secret").error_code, 0);
    metadata(&mut fresh).expect("a new connection is served");
}

#[test]
fn gregor_s_cli_produces_and_consumes_across_lifetimes() {
    const LIFETIME: u64 = 2000;
    let broker = ReauthBroker::start(LIFETIME);
    broker.add_scram("SCRAM-SHA-512", "carol", "carol-secret");
    let topic = unique_topic("reauth-cli");
    broker.create_topic(&topic);
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("scram.properties");
    std::fs::write(
        &config,
        "security.protocol=SASL_PLAINTEXT\nsasl.mechanism=SCRAM-SHA-512\n\
         sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required \
         username=\"carol\" password=\"carol-secret\";\n",
    )
    .expect("write properties");
    let at = broker.sasl_plaintext.to_string();
    let cli = |args: &[&str]| {
        let mut cmd = Command::new(gregor_bin());
        cmd.args(args)
            .arg("--bootstrap-server")
            .arg(&at)
            .arg("--command-config")
            .arg(&config)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    };
    const COUNT: usize = 40;
    let consumer = cli(&[
        "consume",
        &topic,
        "--group",
        &format!("{topic}-g"),
        "--from-beginning",
        "--max-messages",
        &COUNT.to_string(),
        "--timeout-ms",
        "20000",
    ])
    .spawn()
    .expect("gregor consume");
    let mut producer = cli(&["produce", &topic])
        .stdin(Stdio::piped())
        .spawn()
        .expect("gregor produce");
    // One line every 200 ms: 8 s, four lifetimes, on one producer connection.
    let mut stdin = producer.stdin.take().expect("stdin");
    for i in 0..COUNT {
        writeln!(stdin, "line-{i:03}").expect("feed the producer");
        stdin.flush().expect("flush");
        thread::sleep(Duration::from_millis(200));
    }
    drop(stdin);
    let produced = producer.wait_with_output().expect("producer");
    assert!(
        produced.status.success(),
        "gregor produce: {}; log:\n{}",
        String::from_utf8_lossy(&produced.stderr),
        broker.logs()
    );
    let consumed = consumer.wait_with_output().expect("consumer");
    let out = String::from_utf8_lossy(&consumed.stdout);
    assert!(
        consumed.status.success(),
        "gregor consume: {out}{}; log:\n{}",
        String::from_utf8_lossy(&consumed.stderr),
        broker.logs()
    );
    let mut got: Vec<&str> = out.lines().collect();
    got.sort_unstable();
    let want: Vec<String> = (0..COUNT).map(|i| format!("line-{i:03}")).collect();
    assert_eq!(got, want, "every line, once");
    let renewed = broker.counter("successful_reauthentication_total", "SASL_PLAINTEXT");
    eprintln!("gregor CLI: {renewed} re-authentications");
    assert!(
        renewed >= 4,
        "the CLI's connections were renewed {renewed} times over four lifetimes; log:\n{}",
        broker.logs()
    );
    for name in [
        "expired_connections_killed_count",
        "failed_reauthentication_total",
    ] {
        assert_eq!(
            broker.counter(name, "SASL_PLAINTEXT"),
            0,
            "{name}; log:\n{}",
            broker.logs()
        );
    }
}

/// Brokers that reach each other over SASL (`security.inter.broker.protocol=SASL_PLAINTEXT`,
/// PLAIN as User:broker) renew those sessions through gregor's client as well: three nodes
/// with a 2 s lifetime replicate an acks=all stream (`min.insync.replicas=3`, so every record
/// needs both followers' fetches) for 8 s, and no node closes a connection for an expired
/// session, refuses a login, or shrinks an ISR, while each counts its peers' renewals.
#[test]
fn brokers_renew_their_sasl_sessions_with_each_other() {
    const LIFETIME: u64 = 2000;
    let jaas = "org.apache.kafka.common.security.plain.PlainLoginModule required \
                username=\"broker\" password=\"broker-secret\" user_broker=\"broker-secret\" \
                user_alice=\"alice-secret\";";
    let sets = [
        "listeners=SASL_PLAINTEXT://127.0.0.1:0".to_string(),
        "security.inter.broker.protocol=SASL_PLAINTEXT".to_string(),
        "sasl.enabled.mechanisms=PLAIN".to_string(),
        format!("listener.name.sasl_plaintext.plain.sasl.jaas.config={jaas}"),
        format!("connections.max.reauth.ms={LIFETIME}"),
    ];
    let sets: Vec<&str> = sets.iter().map(String::as_str).collect();
    let mut cluster = Cluster::prepare(&[Role::Combined; 3], &sets);
    let mut metrics = Vec::new();
    for id in cluster.ids() {
        let http = gregor_e2e::ports::reserve();
        cluster
            .args_mut(id)
            .extend(["--http-listen".to_string(), http.to_string()]);
        metrics.push((id, format!("http://{http}/metrics")));
    }
    let ids = cluster.ids();
    cluster.start_nodes(&ids);
    let bootstrap = ids
        .iter()
        .map(|&id| cluster.node(id).addr.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let alice = ["--user", "alice", "--password", "alice-secret"];
    let python = |script: &str, args: &[&str]| -> Value {
        let mut all = vec![bootstrap.as_str()];
        all.extend_from_slice(&alice);
        all.extend_from_slice(args);
        run_python_json_or(script, &all, CLIENT_TIMEOUT, || {
            format!("--- logs ---\n{}", cluster.logs())
        })
    };
    let topic = unique_topic("reauth-cluster");
    python(
        "sasl_admin.py",
        &[
            "create-topic",
            &topic,
            "3",
            "3",
            "--config",
            "min.insync.replicas=3",
        ],
    );
    let whole_isrs = || {
        let doc = python("sasl_admin.py", &["describe", &topic]);
        let parts = doc["partitions"].as_object().cloned().unwrap_or_default();
        parts.len() == 3
            && parts
                .values()
                .all(|p| p["isr"].as_array().map(Vec::len) == Some(3))
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while !whole_isrs() {
        assert!(
            Instant::now() < deadline,
            "the ISRs never became whole; logs:\n{}",
            cluster.logs()
        );
        thread::sleep(Duration::from_millis(500));
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let acks = dir.path().join("acks");
    let streamed = python(
        "sasl_client.py",
        &[
            "stream",
            &topic,
            &acks.display().to_string(),
            "--seconds",
            "8",
        ],
    );
    let delivered = check::records(&streamed, "delivered");
    assert!(
        streamed["failed"].as_u64() == Some(0) && delivered.len() >= 20,
        "acks=all records across four lifetimes: {} delivered, failures {}; logs:\n{}",
        delivered.len(),
        streamed["failures"],
        cluster.logs()
    );
    assert!(whole_isrs(), "an ISR shrank; logs:\n{}", cluster.logs());
    for (id, url) in &metrics {
        let renewed = counter(url, "successful_reauthentication_total", "SASL_PLAINTEXT");
        eprintln!("node {id}: {renewed} re-authentications");
        assert!(
            renewed >= 4,
            "node {id} counted {renewed} re-authentications; logs:\n{}",
            cluster.logs()
        );
        for name in [
            "expired_connections_killed_count",
            "failed_reauthentication_total",
        ] {
            assert_eq!(
                counter(url, name, "SASL_PLAINTEXT"),
                0,
                "node {id}: {name}; logs:\n{}",
                cluster.logs()
            );
        }
    }
    let logs = cluster.logs();
    assert!(
        !logs.contains("session expired") && !logs.contains("failed authentication"),
        "logs:\n{logs}"
    );
}
