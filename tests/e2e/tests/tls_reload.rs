//! Certificate rotation without a restart (KIP-226's dynamic SSL stores) against the real
//! binary, with Apache Kafka's `kafka-configs.sh` and OpenSSL's `s_client`.
//!
//! ```text
//!   kafka-configs.sh --entity-type brokers --entity-name 1 --alter
//!       --add-config listener.name.ssl.ssl.keystore.location=... ──PLAINTEXT──▶ gregor
//!   openssl s_client (the serial of the certificate served) ───────SSL────────▶ gregor
//! ```
//!
//! `a_listener_s_certificate_is_rotated_live`: a broker serves `server.pem` on an SSL listener;
//! a TLS client connected before the rotation; `kafka-configs.sh --alter` names a new keystore
//! (same subject, new key and certificate): accepted, and a new connection gets the new serial
//! while the old connection still gets answers; a keystore for another subject is refused with
//! Kafka's INVALID_CONFIG and the listener keeps its certificate; the same path with the file
//! replaced in place, submitted again, is reread; DescribeConfigs shows the key as a dynamic
//! broker config; after a restart the broker serves the last store.
//!
//! `one_broker_s_certificate_is_rotated_in_a_tls_cluster`: three combined nodes replicate over
//! an SSL listener that requires client certificates; node 1's keystore is rotated with
//! `kafka-configs.sh`; node 2 is killed and restarted, so node 1's peers dial it anew (its new
//! certificate) and it dials them anew (its new client certificate); every ISR is whole again
//! and acks=all records written after the rotation are all read back.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use gregor_e2e::broker::wait_accepting;
use gregor_e2e::kafka_tools::Toolbox;
use gregor_e2e::pki::Pki;
use gregor_e2e::Broker;

/// How long one Kafka tool run may take.
const TOOL_TIMEOUT: Duration = Duration::from_secs(90);

/// The serial number (hex, as `openssl x509 -serial` prints it) of the certificate a new TLS
/// connection to `at` is served.
fn served_serial(at: SocketAddr, pki: &Pki) -> String {
    let script = format!(
        "openssl s_client -connect {at} -servername localhost -CAfile {} </dev/null \
         2>/dev/null | openssl x509 -noout -serial",
        pki.path("ca.pem").display()
    );
    let out = Command::new("sh")
        .args(["-c", &script])
        .output()
        .expect("run openssl");
    let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
    assert!(text.starts_with("serial="), "openssl said {text:?}");
    text
}

/// The serial of the first certificate in a PEM file.
fn file_serial(path: &std::path::Path) -> String {
    let out = Command::new("openssl")
        .args(["x509", "-noout", "-serial", "-in"])
        .arg(path)
        .output()
        .expect("run openssl");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// `kafka-configs.sh --alter --add-config <config>` on broker 1; the tool's run.
fn alter(toolbox: &Toolbox, bootstrap: &str, config: &str) -> gregor_e2e::kafka_tools::ToolRun {
    alter_broker(toolbox, bootstrap, "1", config)
}

/// `kafka-configs.sh --alter --add-config <config>` on broker `id`; the tool's run.
fn alter_broker(
    toolbox: &Toolbox,
    bootstrap: &str,
    id: &str,
    config: &str,
) -> gregor_e2e::kafka_tools::ToolRun {
    toolbox.run(
        "kafka-configs.sh",
        &[
            "--bootstrap-server",
            bootstrap,
            "--entity-type",
            "brokers",
            "--entity-name",
            id,
            "--alter",
            "--add-config",
            config,
        ],
        None,
        TOOL_TIMEOUT,
    )
}

/// A TLS connection held open by `openssl s_client -quiet`, over which raw Kafka requests go.
struct HeldConnection {
    child: std::process::Child,
}

impl HeldConnection {
    fn open(at: SocketAddr, pki: &Pki) -> HeldConnection {
        let child = Command::new("openssl")
            .args(["s_client", "-quiet", "-connect", &at.to_string()])
            .args(["-servername", "localhost", "-CAfile"])
            .arg(pki.path("ca.pem"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("run openssl s_client");
        HeldConnection { child }
    }

    /// Sends ApiVersions v0 (correlation id `id`) and checks the answer's correlation id and
    /// error code.
    fn api_versions(&mut self, id: i32) {
        let mut request = vec![0, 0, 0, 10, 0, 18, 0, 0];
        request.extend_from_slice(&id.to_be_bytes());
        request.extend_from_slice(&[0xff, 0xff]);
        let stdin = self.child.stdin.as_mut().expect("stdin");
        stdin.write_all(&request).expect("send");
        stdin.flush().expect("flush");
        let stdout = self.child.stdout.as_mut().expect("stdout");
        let mut size = [0u8; 4];
        stdout.read_exact(&mut size).expect("an answer's size");
        let mut body = vec![0u8; i32::from_be_bytes(size).max(0) as usize];
        stdout.read_exact(&mut body).expect("an answer");
        assert_eq!(&body[0..4], &id.to_be_bytes(), "correlation id");
        assert_eq!(&body[4..6], &[0, 0], "error code");
    }
}

impl Drop for HeldConnection {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[test]
fn a_listener_s_certificate_is_rotated_live() {
    let toolbox = Toolbox::installed();
    let pki = Pki::generate();
    let tls = gregor_e2e::ports::reserve();
    let mut sets = vec![format!("listeners=PLAINTEXT://127.0.0.1:0,SSL://{tls}")];
    sets.extend(pki.keystore_config());
    let sets: Vec<&str> = sets.iter().map(String::as_str).collect();
    let mut broker = Broker::start_with(&sets);
    let bootstrap = broker.bootstrap();
    wait_accepting(tls, Duration::from_secs(10), || broker.logs());
    let original = file_serial(&pki.path("server.pem"));
    assert_eq!(served_serial(tls, &pki), original);
    let mut held = HeldConnection::open(tls, &pki);
    held.api_versions(1);

    // A new key and certificate for the same subject, at a new path.
    let rotated = pki.issue_server_keystore("rotated.pem", "gregor e2e broker");
    let key = "listener.name.ssl.ssl.keystore.location";
    let run = alter(
        &toolbox,
        &bootstrap,
        &format!("{key}={}", rotated.display()),
    );
    assert!(run.succeeded(), "{}\n{}", run.transcript(), broker.logs());
    let new_serial = file_serial(&rotated);
    assert_ne!(new_serial, original);
    assert_eq!(served_serial(tls, &pki), new_serial, "a new connection");
    held.api_versions(2);

    // Another subject: refused, the listener keeps the rotated certificate.
    let stranger = pki.issue_server_keystore("stranger.pem", "someone else");
    let run = alter(
        &toolbox,
        &bootstrap,
        &format!("{key}={}", stranger.display()),
    );
    assert!(!run.succeeded(), "another subject was taken");
    let said = run.transcript();
    assert!(said.contains("InvalidConfigurationException"), "{said}");
    assert!(said.contains("DistinguishedName"), "{said}");
    assert_eq!(served_serial(tls, &pki), new_serial);

    // The same path, the file replaced in place, submitted again: reread.
    thread::sleep(Duration::from_millis(1100));
    let replaced = pki.issue_server_keystore("rotated.pem", "gregor e2e broker");
    let replaced_serial = file_serial(&replaced);
    let run = alter(
        &toolbox,
        &bootstrap,
        &format!("{key}={}", rotated.display()),
    );
    assert!(run.succeeded(), "{}\n{}", run.transcript(), broker.logs());
    assert_eq!(served_serial(tls, &pki), replaced_serial, "the file reread");
    held.api_versions(3);

    // DescribeConfigs: a dynamic broker config, not read-only.
    let run = toolbox.run(
        "kafka-configs.sh",
        &[
            "--bootstrap-server",
            &bootstrap,
            "--entity-type",
            "brokers",
            "--entity-name",
            "1",
            "--describe",
        ],
        None,
        TOOL_TIMEOUT,
    );
    let described = run
        .ok()
        .unwrap_or_else(|e| panic!("{e}\n{}", run.transcript()));
    assert!(
        described.contains(&format!(
            "{key}={} sensitive=false synonyms={{DYNAMIC_BROKER_CONFIG:{key}=",
            rotated.display()
        )),
        "{described}"
    );

    // A restart: the broker serves the store the metadata log names.
    drop(held);
    broker.restart();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if TcpStream::connect_timeout(&tls, Duration::from_secs(1)).is_ok()
            && served_serial(tls, &pki) == replaced_serial
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "after the restart the broker does not serve the rotated store; log:\n{}",
            broker.logs()
        );
        thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn one_broker_s_certificate_is_rotated_in_a_tls_cluster() {
    use gregor_e2e::cluster::{Cluster, Role};
    use gregor_e2e::cluster_client::{create_topic, describe, wait_for, wait_for_whole_isrs};
    use std::collections::BTreeMap;

    let toolbox = Toolbox::installed();
    let pki = Pki::generate();
    let mut sets = pki.keystore_config();
    sets.extend(pki.client_auth_config("required"));
    sets.push("inter.broker.listener.name=SSL".to_string());
    let sets: Vec<&str> = sets.iter().map(String::as_str).collect();
    let mut cluster = Cluster::prepare(&[Role::Combined; 3], &sets);
    let mut plaintext = BTreeMap::new();
    for id in cluster.ids() {
        let at = gregor_e2e::ports::reserve();
        cluster.args_mut(id).extend([
            "--set".to_string(),
            format!("listeners=SSL://127.0.0.1:0,PLAINTEXT://{at}"),
        ]);
        plaintext.insert(id, at);
    }
    let ids = cluster.ids();
    cluster.start_nodes(&ids);
    let bootstrap = plaintext
        .values()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(",");
    wait_for(
        &cluster,
        "Metadata on PLAINTEXT lists every broker",
        Duration::from_secs(60),
        || (describe(&bootstrap, "__consumer_offsets").0.len() == 3).then_some(()),
    );
    let topic = gregor_e2e::unique_topic("tls-rotation");
    create_topic(&bootstrap, &topic, 3, 3, &["min.insync.replicas=3"]);
    wait_for_whole_isrs(&cluster, &bootstrap, &topic, 3, 3, "creation");

    let (rotated_node, restarted_node) = (ids[0], ids[1]);
    let rotated = pki.issue_server_keystore("node-rotated.pem", "gregor e2e broker");
    let run = alter_broker(
        &toolbox,
        &bootstrap,
        &rotated_node.to_string(),
        &format!(
            "listener.name.ssl.ssl.keystore.location={}",
            rotated.display()
        ),
    );
    assert!(run.succeeded(), "{}\n{}", run.transcript(), cluster.logs());
    assert!(
        cluster
            .node(rotated_node)
            .logs()
            .contains("SSL stores reloaded"),
        "node {rotated_node} did not reload; log:\n{}",
        cluster.node(rotated_node).logs()
    );
    // New inter-broker connections both ways with the rotated node.
    cluster.kill9(restarted_node);
    cluster.restart(restarted_node);
    wait_for_whole_isrs(
        &cluster,
        &bootstrap,
        &topic,
        3,
        3,
        "the restart after the rotation",
    );
    let produced = gregor_e2e::run_python_json(
        "confluent_client.py",
        &[&bootstrap, "produce", &topic, "--count", "600"],
        Duration::from_secs(120),
    );
    let consumed = gregor_e2e::run_python_json(
        "confluent_client.py",
        &[&bootstrap, "consume", &topic],
        Duration::from_secs(120),
    );
    let key = |r: &gregor_e2e::check::Rec| (r.partition, r.offset, r.key.clone());
    let mut acked: Vec<_> = gregor_e2e::check::records(&produced, "delivered")
        .iter()
        .map(key)
        .collect();
    let mut read: Vec<_> = gregor_e2e::check::records(&consumed, "records")
        .iter()
        .map(key)
        .collect();
    acked.sort();
    read.sort();
    assert_eq!(acked.len(), 600, "acknowledged records");
    assert_eq!(read, acked, "every acknowledged record read once");
    // A refused certificate shows as a handshake error; a connection its peer dropped before
    // saying anything (while the restarted node came up) as `eof`, which is no refusal.
    let logs = cluster.logs();
    let refused: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("TLS handshake failed") && !l.contains("handshake eof"))
        .collect();
    assert!(
        refused.is_empty(),
        "a node refused a TLS handshake:\n{logs}"
    );
}
