//! Brokers that reach each other over TLS (`inter.broker.listener.name=SSL`): three combined
//! `gregor server` nodes whose replication, transaction markers and verification go over an
//! `SSL://` listener that requires client certificates (the nodes show their own keystore), with
//! a PLAINTEXT listener beside it for the test's clients.
//!
//! ```text
//!   node i ══ SSL + client certificate, through the harness's LinkProxy ══▶ node j
//!   confluent-kafka ──PLAINTEXT──▶ any node
//! ```
//!
//! `brokers_replicate_over_tls_through_a_leader_kill`: a topic with 3 partitions, RF=3 and
//! `min.insync.replicas=2` gets whole ISRs (followers fetched over TLS); acks=all records go in;
//! partition 0's leader is killed with -9; a new leader takes over and more records go in; a
//! reader on another node reads every acknowledged record exactly once. No node logged a failed
//! TLS handshake.

use std::collections::BTreeMap;
use std::time::Duration;

use gregor_e2e::check;
use gregor_e2e::cluster::{Cluster, Role};
use gregor_e2e::cluster_client::{create_topic, describe, wait_for, wait_for_whole_isrs};
use gregor_e2e::pki::Pki;
use gregor_e2e::{run_python_json, unique_topic};

/// How long a client script may take.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(120);

#[test]
fn brokers_replicate_over_tls_through_a_leader_kill() {
    let pki = Pki::generate();
    let mut sets = pki.keystore_config();
    sets.extend(pki.client_auth_config("required"));
    sets.push("inter.broker.listener.name=SSL".to_string());
    let sets: Vec<&str> = sets.iter().map(String::as_str).collect();
    let mut cluster = Cluster::prepare(&[Role::Combined; 3], &sets);
    // The harness's --listen gives the SSL (primary) listener its address; the clients use
    // a PLAINTEXT listener of each node's own.
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
    let bootstrap_without = |skip: Option<i32>| {
        plaintext
            .iter()
            .filter(|(id, _)| Some(**id) != skip)
            .map(|(_, a)| a.to_string())
            .collect::<Vec<_>>()
            .join(",")
    };
    let bootstrap = bootstrap_without(None);
    wait_for(
        &cluster,
        "Metadata on PLAINTEXT lists every broker",
        Duration::from_secs(60),
        || (describe(&bootstrap, "__consumer_offsets").0.len() == 3).then_some(()),
    );

    let topic = unique_topic("tls-replicas");
    create_topic(&bootstrap, &topic, 3, 3, &["min.insync.replicas=2"]);
    wait_for_whole_isrs(&cluster, &bootstrap, &topic, 3, 3, "creation");
    let produce = |at: &str, count: &str| {
        run_python_json(
            "confluent_client.py",
            &[at, "produce", &topic, "--count", count],
            CLIENT_TIMEOUT,
        )
    };
    let first = produce(&bootstrap, "1500");
    let (_, parts) = describe(&bootstrap, &topic);
    let victim = parts[&0].leader;
    eprintln!("every ISR whole over TLS; killing node {victim}, partition 0's leader");
    cluster.kill9(victim);
    let survivors = bootstrap_without(Some(victim));
    wait_for(
        &cluster,
        "a new leader for every partition",
        Duration::from_secs(60),
        || {
            let (_, parts) = describe(&survivors, &topic);
            (parts.len() == 3 && parts.values().all(|p| p.leader >= 0 && p.leader != victim))
                .then_some(())
        },
    );
    let second = produce(&survivors, "1500");
    let consumed = run_python_json(
        "confluent_client.py",
        &[&survivors, "consume", &topic],
        CLIENT_TIMEOUT,
    );
    // The two runs reuse record numbers: compare by (partition, offset), each read once.
    let key = |r: &check::Rec| (r.partition, r.offset, r.key.clone(), r.value.clone());
    let mut acked: Vec<_> = check::records(&first, "delivered")
        .iter()
        .chain(check::records(&second, "delivered").iter())
        .map(key)
        .collect();
    let mut read: Vec<_> = check::records(&consumed, "records")
        .iter()
        .map(key)
        .collect();
    acked.sort();
    read.sort();
    assert_eq!(acked.len(), 3000, "acknowledged records");
    assert_eq!(
        read, acked,
        "every acknowledged record must be read exactly once, at its offset"
    );
    let logs = cluster.logs();
    assert!(
        !logs.contains("TLS handshake failed"),
        "a node refused a TLS handshake:\n{logs}"
    );
}
