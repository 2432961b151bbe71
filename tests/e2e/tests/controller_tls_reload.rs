//! Certificates reload on the controller listener (KIP-226's dynamic SSL stores, as on the
//! client listeners): `kafka-configs.sh --alter` of `listener.name.controller.ssl.*` on a
//! running node changes what its quorum connections show and trust, in both directions, with
//! no restart.
//!
//! ```text
//!   kafka-configs.sh --entity-name N --alter listener.name.controller.ssl.* ──PLAINTEXT──▶ node N
//!   node i ══ TLS + client certificates, through the harness's link proxies ══▶ node j (CONTROLLER)
//!   openssl s_client (serial served), Python ssl (ApiVersions with a certificate) ──▶ CONTROLLER
//! ```
//!
//! `controller_certificates_rotate_through_a_ca_change`: three combined nodes, the controller
//! listener SSL with client certificates required, every node on a certificate of CA 1.
//! - Node 1's keystore is rotated (same subject, new key): its controller listener serves the
//!   new serial at once; a keystore naming another subject is refused (INVALID_CONFIG).
//! - A CA rotation, as operators do it, all with `kafka-configs.sh`: every truststore becomes
//!   CA 1 + CA 2, every keystore a certificate of CA 2, every truststore CA 2 alone.
//! - Then every quorum connection is cut (the proxies reset them), so each is dialled anew with
//!   the new stores; the active controller is isolated: the other two elect a new one and
//!   commit a new topic; healed, the old leader learns that topic over new connections; another
//!   node isolated, the remaining two (one of them the healed one) commit a second topic.
//! - A client certificate of CA 1 is refused on every controller listener, one of CA 2 served.
//!
//! `a_controller_only_node_rotates_its_certificate_through_its_own_listener`: two combined
//! nodes and a controller-only one, which has no broker listener to take the change (KIP-919):
//! `kafka-configs.sh --bootstrap-controller <its controller listener>`, over TLS with a client
//! certificate, rotates its keystore; it serves the new certificate at once, describes the
//! dynamic config back, refuses a keystore naming another subject, and, with every link to it
//! cut and a combined node isolated, commits a topic with the other combined node over new
//! connections that show the new certificate.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use gregor_e2e::cluster::{Cluster, Role};
use gregor_e2e::cluster_client::{
    create_topic, leader_at, quorum_leader, wait_for, wait_for_brokers,
};
use gregor_e2e::fault_proxy::LinkMode;
use gregor_e2e::kafka_tools::{ToolRun, Toolbox};
use gregor_e2e::pki::Ca;
use gregor_e2e::raw::{topic_name, RawConn};
use gregor_e2e::{run_python_json_or, unique_topic};
use kafka_protocol::messages::create_topics_request::{CreatableReplicaAssignment, CreatableTopic};
use kafka_protocol::messages::{BrokerId, CreateTopicsRequest};
use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, KeyUsagePurpose};

const TOOL_TIMEOUT: Duration = Duration::from_secs(90);
/// Every node's certificate names this subject (a rotation keeps it, as Kafka requires).
const NODE_CN: &str = "gregor e2e controller";
/// The controller listener's `ssl.principal.mapping.rules`.
const CONTROLLER_RULES: &str = "RULE:^CN=(gregor e2e controller|a client of CA [12])$/$1/L";

/// Two CAs and the files issued by them, in a temporary directory.
struct Pki {
    dir: tempfile::TempDir,
    cas: [Ca; 2],
}

impl Pki {
    fn new() -> Pki {
        let dir = tempfile::Builder::new()
            .prefix("gregor-e2e-controller-reload-")
            .tempdir()
            .expect("temp dir");
        let pki = Pki {
            dir,
            cas: [Ca::new("controller CA 1"), Ca::new("controller CA 2")],
        };
        let [one, two] = [pki.cas[0].pem(), pki.cas[1].pem()];
        pki.write("ca1.pem", one.clone());
        pki.write("ca2.pem", two.clone());
        pki.write("ca1+ca2.pem", format!("{one}{two}"));
        pki
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn write(&self, name: &str, text: String) {
        std::fs::write(self.path(name), text).unwrap_or_else(|e| panic!("{name}: {e}"));
    }

    /// Writes `<name>.pem` (a PEM keystore: key, certificate, CA) and `<name>.crt`/`.key`,
    /// issued by CA `ca` (1 or 2) for `cn`, 127.0.0.1 and localhost; returns the keystore.
    fn issue(&self, name: &str, ca: usize, cn: &str) -> String {
        let ca = &self.cas[ca - 1];
        let mut params =
            CertificateParams::new(vec!["127.0.0.1".into(), "localhost".into()]).expect("params");
        params.distinguished_name.push(DnType::CommonName, cn);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let (cert, key) = ca.sign(params);
        self.write(&format!("{name}.crt"), cert.pem());
        self.write(&format!("{name}.key"), key.serialize_pem());
        self.write(
            &format!("{name}.pem"),
            format!("{}{}{}", key.serialize_pem(), cert.pem(), ca.pem()),
        );
        self.path(&format!("{name}.pem")).display().to_string()
    }
}

/// The serial (`serial=...`) of the certificate a new TLS connection to `at` is served,
/// trusting `ca`.
fn served_serial(at: SocketAddr, ca: &std::path::Path) -> String {
    let script = format!(
        "openssl s_client -connect {at} -servername localhost -CAfile {} </dev/null \
         2>/dev/null | openssl x509 -noout -serial",
        ca.display()
    );
    let out = Command::new("sh")
        .args(["-c", &script])
        .output()
        .expect("run openssl");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn file_serial(path: &str) -> String {
    let out = Command::new("openssl")
        .args(["x509", "-noout", "-serial", "-in", path])
        .output()
        .expect("run openssl");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// `kafka-configs.sh --alter --add-config <config>` for node `id`, sent to that node.
fn alter(toolbox: &Toolbox, cluster: &Cluster, id: i32, config: &str) -> ToolRun {
    toolbox.run(
        "kafka-configs.sh",
        &[
            "--bootstrap-server",
            &cluster.node(id).addr.to_string(),
            "--entity-type",
            "brokers",
            "--entity-name",
            &id.to_string(),
            "--alter",
            "--add-config",
            config,
        ],
        None,
        TOOL_TIMEOUT,
    )
}

fn alter_ok(toolbox: &Toolbox, cluster: &Cluster, id: i32, config: &str) {
    let run = alter(toolbox, cluster, id, config);
    run.ok().unwrap_or_else(|e| {
        panic!(
            "node {id}: {config}: {e}\n{}\n{}",
            run.transcript(),
            cluster.logs()
        )
    });
}

/// A keystore naming another subject than the node's is refused, as on the client listeners.
fn assert_refused_as_another_subject(refused: &ToolRun) {
    assert!(
        !refused.succeeded()
            && refused
                .transcript()
                .contains("InvalidConfigurationException"),
        "a keystore naming another subject must be refused:\n{}",
        refused.transcript()
    );
}

/// ApiVersions on a controller listener over Python's TLS, trusting `ca`, showing `name`'s
/// certificate: `{"answered": bool, ...}`.
fn api_versions(pki: &Pki, cluster: &Cluster, id: i32, ca: &str, name: &str) -> serde_json::Value {
    let at = cluster.node(id).controller_addr.to_string();
    let p = |f: String| pki.path(&f).display().to_string();
    let (ca, cert, key) = (
        p(ca.to_string()),
        p(format!("{name}.crt")),
        p(format!("{name}.key")),
    );
    run_python_json_or(
        "tls_client.py",
        &[
            &at,
            "--ca",
            &ca,
            "--cert",
            &cert,
            "--key",
            &key,
            "api-versions",
        ],
        Duration::from_secs(30),
        || cluster.logs(),
    )
}

/// The cluster's settings: the controller listener SSL with client certificates required,
/// every node on `keystore` and trusting CA 1.
fn controller_ssl_sets(pki: &Pki, keystore: &str) -> Vec<String> {
    vec![
        "controller.listener.names=CONTROLLER".to_string(),
        "listener.security.protocol.map=CONTROLLER:SSL,PLAINTEXT:PLAINTEXT".to_string(),
        "listeners=PLAINTEXT://127.0.0.1:0,CONTROLLER://127.0.0.1:0".to_string(),
        "listener.name.controller.ssl.keystore.type=PEM".to_string(),
        format!("listener.name.controller.ssl.keystore.location={keystore}"),
        "listener.name.controller.ssl.truststore.type=PEM".to_string(),
        format!(
            "listener.name.controller.ssl.truststore.location={}",
            pki.path("ca1.pem").display()
        ),
        "listener.name.controller.ssl.client.auth=required".to_string(),
        // KIP-371 on the controller listener: the nodes and the test's clients are mapped,
        // any other subject fails authentication.
        format!("listener.name.controller.ssl.principal.mapping.rules={CONTROLLER_RULES}"),
    ]
}

#[test]
fn controller_certificates_rotate_through_a_ca_change() {
    let started = Instant::now();
    let toolbox = Toolbox::installed();
    let pki = Pki::new();
    let first = pki.issue("node-ca1", 1, NODE_CN);
    let sets = controller_ssl_sets(&pki, &first);
    let sets: Vec<&str> = sets.iter().map(String::as_str).collect();
    let cluster = Cluster::start_with_roles(&[Role::Combined; 3], &sets);
    wait_for_brokers(&cluster, 3);
    let ids = cluster.ids();
    eprintln!(
        "three nodes up, quorum over TLS on CA 1, after {:.1} s",
        started.elapsed().as_secs_f64()
    );

    // One node's certificate rotated, same CA and subject.
    let rotated = pki.issue("node1-ca1-rotated", 1, NODE_CN);
    assert_ne!(file_serial(&rotated), file_serial(&first));
    let controller1 = cluster.node(1).controller_addr;
    assert_eq!(
        served_serial(controller1, &pki.path("ca1.pem")),
        file_serial(&first)
    );
    alter_ok(
        &toolbox,
        &cluster,
        1,
        &format!("listener.name.controller.ssl.keystore.location={rotated}"),
    );
    assert_eq!(
        served_serial(controller1, &pki.path("ca1.pem")),
        file_serial(&rotated),
        "node 1's controller listener serves the new certificate at once"
    );
    // Another subject is refused, as on the client listeners.
    let other = pki.issue("node1-other-subject", 1, "someone else");
    let refused = alter(
        &toolbox,
        &cluster,
        1,
        &format!("listener.name.controller.ssl.keystore.location={other}"),
    );
    assert_refused_as_another_subject(&refused);
    assert_eq!(
        served_serial(controller1, &pki.path("ca1.pem")),
        file_serial(&rotated)
    );
    eprintln!("node 1 rotated live; another subject refused");

    // The CA rotation: trust both, move every node to CA 2, trust CA 2 alone.
    let both = pki.path("ca1+ca2.pem").display().to_string();
    let ca2 = pki.path("ca2.pem").display().to_string();
    for &id in &ids {
        alter_ok(
            &toolbox,
            &cluster,
            id,
            &format!("listener.name.controller.ssl.truststore.location={both}"),
        );
    }
    let mut new_serials = Vec::new();
    for &id in &ids {
        let keystore = pki.issue(&format!("node{id}-ca2"), 2, NODE_CN);
        alter_ok(
            &toolbox,
            &cluster,
            id,
            &format!("listener.name.controller.ssl.keystore.location={keystore}"),
        );
        new_serials.push((id, file_serial(&keystore)));
    }
    for &id in &ids {
        alter_ok(
            &toolbox,
            &cluster,
            id,
            &format!("listener.name.controller.ssl.truststore.location={ca2}"),
        );
    }
    for (id, serial) in &new_serials {
        assert_eq!(
            &served_serial(cluster.node(*id).controller_addr, &pki.path("ca2.pem")),
            serial,
            "node {id} serves its CA 2 certificate"
        );
    }
    eprintln!(
        "every node on CA 2, trusting CA 2 alone, after {:.1} s",
        started.elapsed().as_secs_f64()
    );

    // Every quorum and replication connection cut: each is dialled again with the new stores.
    for &a in &ids {
        for &b in &ids {
            if a != b {
                cluster.set_link(a, b, LinkMode::Reset);
            }
        }
    }
    std::thread::sleep(Duration::from_millis(500));
    cluster.heal();

    // The active controller isolated: the other two elect another and commit.
    let leader = wait_for(&cluster, "a quorum leader", Duration::from_secs(30), || {
        let l = quorum_leader(cluster.node(ids[0]).addr);
        (l > 0).then_some(l)
    });
    cluster.isolate(leader);
    let others: Vec<i32> = ids.iter().copied().filter(|&id| id != leader).collect();
    let next = wait_for(
        &cluster,
        "another controller elected over the new certificates",
        Duration::from_secs(30),
        || {
            let l = quorum_leader(cluster.node(others[0]).addr);
            (l > 0 && l != leader && others.contains(&l)).then_some(l)
        },
    );
    let bootstrap = others
        .iter()
        .map(|&id| cluster.node(id).addr.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let during = unique_topic("while-isolated");
    create_topic(&bootstrap, &during, 1, 2, &[]);
    for &id in &others {
        wait_for(
            &cluster,
            "the new topic on both voters",
            Duration::from_secs(30),
            || leader_at(cluster.node(id).addr, &during),
        );
    }
    eprintln!("node {leader} isolated; node {next} elected; a topic committed");

    // Healed, the old leader fetches the log over new connections.
    cluster.heal();
    wait_for(
        &cluster,
        "the healed node learns the topic committed without it",
        Duration::from_secs(30),
        || leader_at(cluster.node(leader).addr, &during),
    );
    // Another node isolated: the healed node and the third commit together.
    let second = others[0];
    cluster.isolate(second);
    let remaining: Vec<i32> = ids.iter().copied().filter(|&id| id != second).collect();
    // `second` may have been the active controller: the two left elect one first.
    wait_for(
        &cluster,
        "a controller among the two left",
        Duration::from_secs(30),
        || {
            let l = quorum_leader(cluster.node(remaining[0]).addr);
            (remaining.contains(&l) && quorum_leader(cluster.node(remaining[1]).addr) == l)
                .then_some(l)
        },
    );
    let bootstrap = remaining
        .iter()
        .map(|&id| cluster.node(id).addr.to_string())
        .collect::<Vec<_>>()
        .join(",");
    let after = unique_topic("after-heal");
    create_topic(&bootstrap, &after, 1, 2, &[]);
    for &id in &remaining {
        wait_for(
            &cluster,
            "the second topic on both voters",
            Duration::from_secs(30),
            || leader_at(cluster.node(id).addr, &after),
        );
    }
    cluster.heal();
    eprintln!(
        "node {second} isolated; nodes {remaining:?} committed a topic; after {:.1} s",
        started.elapsed().as_secs_f64()
    );

    // The old CA is refused, the new one served, on every controller listener.
    pki.issue("client-ca1", 1, "a client of CA 1");
    pki.issue("client-ca2", 2, "a client of CA 2");
    for &id in &ids {
        let old = api_versions(&pki, &cluster, id, "ca2.pem", "client-ca1");
        assert_eq!(
            old["answered"], false,
            "node {id} served a client certificate of the old CA: {old}"
        );
        let new = api_versions(&pki, &cluster, id, "ca2.pem", "client-ca2");
        assert_eq!(
            new["answered"], true,
            "node {id} refused a certificate of the new CA: {new}"
        );
    }
    // A trusted certificate whose subject no rule maps is refused on the controller listener.
    pki.issue("client-unmapped", 2, "unmapped client");
    let unmapped = api_versions(&pki, &cluster, 1, "ca2.pem", "client-unmapped");
    assert_eq!(
        unmapped["answered"], false,
        "a subject no rule maps was served: {unmapped}"
    );
    assert!(
        cluster.node(1).logs().contains(
            "No rules apply to CN=unmapped client, rules [RULE:^CN=(gregor e2e controller|a \
             client of CA [12])$/$1/L]"
        ),
        "the controller says why:\n{}",
        cluster.node(1).logs()
    );
    let logs = cluster.logs();
    assert!(
        logs.contains("SSL stores reloaded"),
        "the reloads are logged:\n{logs}"
    );
    assert!(
        !logs.contains("SSL stores not reloaded"),
        "no reload was refused after its check:\n{logs}"
    );
    eprintln!(
        "CA 1 refused, CA 2 served on every controller listener; {:.1} s in all",
        started.elapsed().as_secs_f64()
    );
}

/// `kafka-configs.sh --bootstrap-controller <node id's controller listener>` over TLS with the
/// client settings `config`, for node `id`'s BROKER resource: `args` after the entity.
fn configs_at_controller(
    toolbox: &Toolbox,
    cluster: &Cluster,
    id: i32,
    config: &std::path::Path,
    args: &[&str],
) -> ToolRun {
    let at = cluster.node(id).controller_addr.to_string();
    let id = id.to_string();
    let mut all = vec![
        "--bootstrap-controller",
        &at,
        "--command-config",
        config.to_str().expect("a UTF-8 path"),
        "--entity-type",
        "brokers",
        "--entity-name",
        &id,
    ];
    all.extend_from_slice(args);
    toolbox.run("kafka-configs.sh", &all, None, TOOL_TIMEOUT)
}

/// Creates `topic`, one partition on broker `on` alone, through `addr`; asks again while the
/// quorum settles (a request the controller did not commit is asked again, one it did is
/// TOPIC_ALREADY_EXISTS).
fn create_topic_on(cluster: &Cluster, addr: SocketAddr, topic: &str, on: i32) {
    wait_for(
        cluster,
        &format!("{topic} created on node {on}"),
        Duration::from_secs(30),
        || {
            let req = CreateTopicsRequest::default()
                .with_timeout_ms(10_000)
                .with_topics(vec![CreatableTopic::default()
                    .with_name(topic_name(topic))
                    .with_num_partitions(-1)
                    .with_replication_factor(-1)
                    .with_assignments(vec![CreatableReplicaAssignment::default()
                        .with_partition_index(0)
                        .with_broker_ids(vec![BrokerId(on)])])]);
            let resp = RawConn::connect(addr).request(5, &req).ok()?;
            let code = resp.topics.first()?.error_code;
            // TOPIC_ALREADY_EXISTS: an earlier attempt was committed.
            (code == 0 || code == 36).then_some(())
        },
    );
}

#[test]
fn a_controller_only_node_rotates_its_certificate_through_its_own_listener() {
    let started = Instant::now();
    let toolbox = Toolbox::installed();
    let pki = Pki::new();
    let first = pki.issue("node-ca1", 1, NODE_CN);
    let sets = controller_ssl_sets(&pki, &first);
    let sets: Vec<&str> = sets.iter().map(String::as_str).collect();
    let cluster =
        Cluster::start_with_roles(&[Role::Combined, Role::Combined, Role::Controller], &sets);
    wait_for_brokers(&cluster, 2);
    let controller_only = 3;
    let at = cluster.node(controller_only).controller_addr;
    assert_eq!(served_serial(at, &pki.path("ca1.pem")), file_serial(&first));

    // The tool's own certificate, mapped by the listener's rules.
    let admin = pki.issue("admin-ca1", 1, "a client of CA 1");
    let client = pki.path("admin.properties");
    pki.write(
        "admin.properties",
        format!(
            "security.protocol=SSL\nssl.truststore.type=PEM\nssl.truststore.location={}\n\
             ssl.keystore.type=PEM\nssl.keystore.location={admin}\n",
            pki.path("ca1.pem").display()
        ),
    );
    let rotated = pki.issue("node3-rotated", 1, NODE_CN);
    let key = "listener.name.controller.ssl.keystore.location";
    // Sets node 3's controller keystore through its own listener.
    let set_keystore = |path: &str| {
        configs_at_controller(
            &toolbox,
            &cluster,
            controller_only,
            &client,
            &["--alter", "--add-config", &format!("{key}={path}")],
        )
    };
    let run = set_keystore(&rotated);
    run.ok().unwrap_or_else(|e| {
        panic!(
            "the rotation through the controller listener: {e}\n{}\n{}",
            run.transcript(),
            cluster.logs()
        )
    });
    assert_eq!(
        served_serial(at, &pki.path("ca1.pem")),
        file_serial(&rotated),
        "the controller-only node serves the new certificate at once"
    );
    let described = configs_at_controller(
        &toolbox,
        &cluster,
        controller_only,
        &client,
        &["--describe"],
    );
    let out = described
        .ok()
        .unwrap_or_else(|e| panic!("describe: {e}\n{}", described.transcript()));
    assert!(
        out.contains(&format!("{key}={rotated}")),
        "the dynamic config is described back:\n{out}"
    );
    // Another subject is never served. Over --bootstrap-controller, Kafka's admin client sends
    // a broker's configs to the active controller: node 3 itself checks the stores and refuses
    // them, as a broker does; another controller checks only the node id, as Kafka's
    // controllers do, and commits, and node 3 refuses to load them and keeps its certificate.
    let other = pki.issue("node3-other-subject", 1, "someone else");
    let refused = set_keystore(&other);
    if refused.succeeded() {
        let leader = quorum_leader(cluster.node(2).addr);
        assert_ne!(
            leader,
            controller_only,
            "node 3 led and did not check its own stores:\n{}",
            refused.transcript()
        );
        wait_for(
            &cluster,
            "node 3 refusing to load another subject's keystore",
            Duration::from_secs(30),
            || {
                let logs = cluster.node(controller_only).logs();
                (logs.contains("SSL stores not reloaded") && logs.contains("new={CN=someone else"))
                    .then_some(())
            },
        );
        eprintln!("node {leader} led: the change was committed and node 3 refused to load it");
        // The image back to the certificate node 3 serves.
        let run = set_keystore(&rotated);
        run.ok()
            .unwrap_or_else(|e| panic!("back to the rotated keystore: {e}\n{}", run.transcript()));
    } else {
        assert_refused_as_another_subject(&refused);
    }
    assert_eq!(
        served_serial(at, &pki.path("ca1.pem")),
        file_serial(&rotated)
    );
    eprintln!(
        "node {controller_only} (controller-only) rotated through its own listener after {:.1} s",
        started.elapsed().as_secs_f64()
    );

    // Every link to and from it cut, so each is dialled again; node 1 isolated: nodes 2 and 3
    // can only commit over connections that show node 3's new certificate.
    for id in [1, 2] {
        cluster.set_link(id, controller_only, LinkMode::Reset);
        cluster.set_link(controller_only, id, LinkMode::Reset);
    }
    std::thread::sleep(Duration::from_millis(500));
    cluster.heal();
    cluster.isolate(1);
    wait_for(
        &cluster,
        "a controller among nodes 2 and 3",
        Duration::from_secs(30),
        || {
            let l = quorum_leader(cluster.node(2).addr);
            (l == 2 || l == controller_only).then_some(l)
        },
    );
    let topic = unique_topic("after-controller-rotation");
    // Placed on node 2 alone: node 1 may or may not count as live yet (its session ends
    // while the election runs), so neither a replication factor of 2 nor a placement of the
    // controller's choice is sure to be served by node 2.
    create_topic_on(&cluster, cluster.node(2).addr, &topic, 2);
    wait_for(
        &cluster,
        "the topic committed by nodes 2 and 3",
        Duration::from_secs(30),
        || leader_at(cluster.node(2).addr, &topic),
    );
    cluster.heal();
    let logs = cluster.node(controller_only).logs();
    assert!(
        logs.contains("SSL stores reloaded"),
        "the controller-only node logs its reload:\n{logs}"
    );
    eprintln!(
        "nodes 2 and 3 committed a topic over new connections; {:.1} s in all",
        started.elapsed().as_secs_f64()
    );
}
