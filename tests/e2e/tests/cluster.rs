//! Replication across real processes: three `gregor server` nodes (every link between them
//! through a fault proxy, [`Cluster`]) driven by confluent-kafka.
//!
//! - `rf3_acks_all_replicas_are_byte_identical`: the cluster forms (Metadata lists 3 brokers);
//!   an RF=3 topic with `min.insync.replicas=2` takes a few thousand acks=all records; every
//!   replica's log files end up byte-identical and everything reads back exactly.
//! - `leader_kill9_fails_over_and_loses_nothing`: kill -9 the partition's leader under acks=all
//!   load → a new leader within seconds (printed), the producer goes on; the old leader
//!   restarts, truncates if needed, catches up and rejoins the ISR; every acknowledged record
//!   reads back as acknowledged, in offset order, and the replicas are byte-identical.
//! - `a_rolling_restart_with_controlled_shutdowns_costs_the_producer_no_errors`: SIGTERM each
//!   node in turn under acks=all load: its leaderships have moved when it exits, it restarts and
//!   rejoins every ISR, and the producer sees no failed delivery.
//! - `paused_follower_leaves_the_isr_and_rejoins`: SIGSTOP a follower → it leaves the ISR after
//!   `replica.lag.time.max.ms`; acks=all with `min.insync.replicas=3` then fails with
//!   NOT_ENOUGH_REPLICAS instead of hanging, and acks=1 records are taken but the high
//!   watermark does not move past them (Kafka 3.7+); SIGCONT → it rejoins, they are committed
//!   and acks=all succeeds.
//! - `a_consumer_reads_from_the_follower_in_its_rack`: nodes with `broker.rack` and the
//!   rack-aware replica selector (KIP-392); a confluent-kafka consumer whose `client.rack` is a
//!   follower's reads (almost) all its bytes from that follower, and so does a Java consumer
//!   (`tests/interop/java/RackConsumer.java`), which also sees each node's rack; with that
//!   follower killed (-9), a consumer in its rack reads everything from the leader.
//! - `several_replica_fetchers_per_leader_keep_the_replicas_identical` and
//!   `..._survive_a_kill9_under_load`: `num.replica.fetchers=3`, replicas byte-identical, the
//!   count changed at run time, a node killed -9 under acks=all and restarted.

use std::collections::BTreeMap;
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use gregor_e2e::check;
use gregor_e2e::cluster::Cluster;
use gregor_e2e::cluster_client::*;
use gregor_e2e::fault_proxy::LinkMode;
use gregor_e2e::{run_python_json, unique_topic};
use serde_json::Value;

/// (a) The cluster forms; acks=all into an RF=3 topic; replicas byte-identical; all read back.
#[test]
fn rf3_acks_all_replicas_are_byte_identical() {
    let cluster = Cluster::start(3, &[]);
    wait_for_brokers(&cluster, 3);
    let bootstrap = cluster.bootstrap();
    let topic = unique_topic("rf3");
    create_topic(&bootstrap, &topic, 3, 3, &["min.insync.replicas=2"]);
    let (_, parts) = describe(&bootstrap, &topic);
    assert_eq!(parts.len(), 3, "{parts:?}");
    for s in parts.values() {
        assert_eq!(s.replicas.len(), 3, "{parts:?}");
    }
    let leaders: std::collections::BTreeSet<i32> = parts.values().map(|s| s.leader).collect();
    assert_eq!(leaders.len(), 3, "leaders spread over the nodes: {parts:?}");

    let count = 3000;
    let doc = run_python_json(
        "confluent_client.py",
        &[
            &bootstrap, "produce", &topic, "--count", "3000", "--size", "100",
        ],
        CLIENT_TIMEOUT,
    );
    let delivered = check::records(&doc, "delivered");
    let sizes = wait_for_identical_replicas(&cluster, &topic, 3);
    eprintln!("replica logs byte-identical, sizes {sizes:?}");
    let consumed = consume(&bootstrap, &topic);
    check::assert_same_records(count, &delivered, &consumed);
    let (_, parts) = describe(&bootstrap, &topic);
    for s in parts.values() {
        assert_eq!(
            s.isr,
            vec![1, 2, 3],
            "every replica stays in the ISR: {parts:?}"
        );
    }
}

/// `num.replica.fetchers=3`: each node fetches from each leader with three fetchers (their
/// own connections and sessions, partitions spread as Kafka spreads them), and an RF=3 topic of
/// six partitions still ends byte-identical on every replica under acks=all; set back to one
/// at run time (`gregor configs alter --broker-defaults`), the partitions move to the single
/// fetcher and the next records replicate the same.
#[test]
fn several_replica_fetchers_per_leader_keep_the_replicas_identical() {
    let cluster = Cluster::start(3, &["num.replica.fetchers=3"]);
    wait_for_brokers(&cluster, 3);
    let bootstrap = cluster.bootstrap();
    let topic = unique_topic("fetchers");
    create_topic(&bootstrap, &topic, 6, 3, &["min.insync.replicas=2"]);
    let produce = |count: &str| {
        let doc = run_python_json(
            "confluent_client.py",
            &[
                &bootstrap, "produce", &topic, "--count", count, "--size", "100",
            ],
            CLIENT_TIMEOUT,
        );
        check::records(&doc, "delivered")
    };
    let first = produce("3000");
    wait_for_identical_replicas(&cluster, &topic, 6);
    check::assert_same_records(3000, &first, &consume(&bootstrap, &topic));
    let logs = cluster.logs();
    assert!(
        logs.contains("fetcher=1") || logs.contains("fetcher=2"),
        "no node started a second or third fetcher:\n{logs}"
    );
    gregor_e2e::broker::gregor_cli_ok(
        &bootstrap,
        &[
            "configs",
            "alter",
            "--broker-defaults",
            "--set",
            "num.replica.fetchers=1",
        ],
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while cluster
        .logs()
        .matches("num.replica.fetchers changed")
        .count()
        < 3
    {
        assert!(
            Instant::now() < deadline,
            "not every node took the new count:\n{}",
            cluster.logs()
        );
        thread::sleep(Duration::from_millis(200));
    }
    let second = produce("1000");
    let sizes = wait_for_identical_replicas(&cluster, &topic, 6);
    eprintln!("replica logs byte-identical, sizes {sizes:?}");
    // The second run numbers its records from 0 again: it is checked on its own offsets.
    let earlier: std::collections::BTreeSet<(i32, i64)> =
        first.iter().map(|r| (r.partition, r.offset)).collect();
    let later: Vec<_> = consume(&bootstrap, &topic)
        .into_iter()
        .filter(|r| !earlier.contains(&(r.partition, r.offset)))
        .collect();
    let by_offset = |recs: &[check::Rec]| -> Vec<(i32, i64, Option<String>, Option<String>)> {
        let mut v: Vec<_> = recs
            .iter()
            .map(|r| (r.partition, r.offset, r.key.clone(), r.value.clone()))
            .collect();
        v.sort();
        v
    };
    assert_eq!(second.len(), 1000);
    assert_eq!(
        by_offset(&later),
        by_offset(&second),
        "the second run's records, read back"
    );
    wait_for_whole_isrs(&cluster, &bootstrap, &topic, 6, 3, "after the change");
}

/// Three fetchers per leader under an acks=all producer: node 3 (a follower of some partitions,
/// the leader of others) is killed -9 and restarted; it catches up through its fetchers and
/// rejoins every ISR, every acknowledged record reads back, and the replicas end identical.
#[test]
fn several_replica_fetchers_per_leader_survive_a_kill9_under_load() {
    let mut cluster = Cluster::start(3, &["num.replica.fetchers=3"]);
    wait_for_brokers(&cluster, 3);
    let bootstrap = cluster.bootstrap();
    let topic = unique_topic("fetchers-kill");
    create_topic(&bootstrap, &topic, 6, 3, &["min.insync.replicas=2"]);
    wait_for_whole_isrs(&cluster, &bootstrap, &topic, 6, 3, "creation");
    let scratch = tempfile::tempdir().expect("tempdir");
    let ack_file = scratch.path().join("acked.txt");
    let producer = start_producer(&bootstrap, &topic, &ack_file, 300);
    wait_for_acks(&cluster, &ack_file, 500, "500 acks");
    cluster.kill9(3);
    let before = acked_lines(&ack_file).len();
    wait_for_acks(
        &cluster,
        &ack_file,
        before + 500,
        "500 acks with node 3 down",
    );
    cluster.restart(3);
    wait_for_whole_isrs(&cluster, &bootstrap, &topic, 6, 3, "node 3's restart");
    let out = stop_producer(producer);
    let acked = acked_lines(&ack_file);
    eprintln!("crash_producer: {} acknowledged; {out}", acked.len());
    assert_acknowledged_readable(&bootstrap, &topic, &acked, "after node 3's kill -9");
    wait_for_identical_replicas(&cluster, &topic, 6);
}

/// (b) kill -9 the leader under acks=all load: a new leader within seconds, the producer goes
/// on; the old leader restarts and rejoins the ISR; nothing acknowledged is lost or changed.
#[test]
fn leader_kill9_fails_over_and_loses_nothing() {
    let mut cluster = Cluster::start(3, &[]);
    wait_for_brokers(&cluster, 3);
    let bootstrap = cluster.bootstrap();
    let topic = unique_topic("failover");
    create_topic(&bootstrap, &topic, 1, 3, &["min.insync.replicas=2"]);

    let dir = tempfile::tempdir().expect("temp dir");
    let ack_file = dir.path().join("acked.txt");
    let producer = start_producer(&bootstrap, &topic, &ack_file, 90);
    wait_for(
        &cluster,
        "2000 acks before the kill",
        Duration::from_secs(30),
        || (acked_lines(&ack_file).len() >= 2000).then_some(()),
    );
    let (_, parts) = describe(&bootstrap, &topic);
    let old = parts[&0].leader;
    assert_eq!(parts[&0].isr.len(), 3, "{parts:?}");
    let controller = client(&bootstrap, &["describe", &topic])["controller"]
        .as_i64()
        .unwrap_or(-1);
    let (new, to_leader, to_ack, killed_at) =
        kill_leader_and_time_failover(&mut cluster, &topic, &ack_file, old);
    eprintln!(
        "failover: node {old} killed (active controller: node {controller}); node {new} leads \
         after {:.2} s; first acks=all produce acknowledged on it after {:.2} s",
        to_leader.as_secs_f64(),
        to_ack.as_secs_f64()
    );
    assert!(
        to_leader < Duration::from_secs(10),
        "failover took {to_leader:?}"
    );

    // The old leader comes back, truncates where it diverged, catches up, rejoins the ISR.
    cluster.restart(old);
    wait_for_isr(
        &cluster,
        &bootstrap,
        &topic,
        3,
        "the restarted node back in the ISR",
        Duration::from_secs(30),
    );
    let rejoined = killed_at.elapsed();
    eprintln!(
        "node {old} back in the ISR {:.2} s after the kill",
        rejoined.as_secs_f64()
    );

    // A second leader dies under the same load, and this time it is also the active
    // controller: leadership of the partition is moved onto the controller's node first
    // (reassign to the same replicas with it preferred, then a preferred election), so the
    // failover needs a Raft election and a new controller as well.
    let controller = client(&bootstrap, &["describe", &topic])["controller"]
        .as_i64()
        .expect("a controller") as i32;
    let (_, parts) = describe(&bootstrap, &topic);
    make_leader(&cluster, &topic, 0, controller, &parts[&0].replicas);
    let second = controller;
    let (third, to_leader, to_ack, _) =
        kill_leader_and_time_failover(&mut cluster, &topic, &ack_file, second);
    eprintln!(
        "second failover: node {second} killed (the leader and the active controller); node \
         {third} leads after {:.2} s; first acks=all produce acknowledged on it after {:.2} s",
        to_leader.as_secs_f64(),
        to_ack.as_secs_f64()
    );
    cluster.restart(second);
    wait_for_isr(
        &cluster,
        &bootstrap,
        &topic,
        3,
        "the second killed node back in the ISR",
        Duration::from_secs(30),
    );
    thread::sleep(Duration::from_secs(1));
    let out = stop_producer(producer);
    let acked = acked_lines(&ack_file);
    eprintln!("crash_producer: {} acknowledged; {out}", acked.len());

    wait_for_identical_replicas(&cluster, &topic, 1);
    assert_acknowledged_readable(&bootstrap, &topic, &acked, "after two failovers");
    if std::env::var_os("GREGOR_E2E_LOGS").is_some() {
        eprintln!("{}", cluster.logs());
    }
}

/// Kills (-9) node `old`, the leader of partition 0 of `topic`, while the producer writing
/// `ack_file` runs; returns the new leader, the time until a live node names it, and the time
/// until the first record produced after the kill is acknowledged (at an offset above every
/// earlier one, so written by the new leader), and the instant of the kill. Polled every
/// 20 ms.
fn kill_leader_and_time_failover(
    cluster: &mut Cluster,
    topic: &str,
    ack_file: &Path,
    old: i32,
) -> (i32, Duration, Duration, Instant) {
    let acked_at_kill = acked_lines(ack_file).len();
    let killed_at = Instant::now();
    cluster.kill9(old);
    let live: Vec<i32> = cluster.ids().into_iter().filter(|&i| i != old).collect();
    // Polled every 20 ms: the new leader in a live node's metadata, and the first record
    // acknowledged after the kill at an offset above every earlier one (written by the new
    // leader: the old one is dead).
    let last_acked_offset = |lines: &[(i32, i64, String)]| lines.iter().map(|l| l.1).max();
    // Answers the old leader sent just before it died may still be on their way: they settle
    // in well under the failover time.
    thread::sleep(Duration::from_millis(300));
    let settled = acked_lines(ack_file);
    let acked_at_kill = settled.len().max(acked_at_kill);
    let before = last_acked_offset(&settled);
    let (mut new, mut to_leader, mut to_ack) = (None, None, None);
    let deadline = killed_at + Duration::from_secs(30);
    while (to_leader.is_none() || to_ack.is_none()) && Instant::now() < deadline {
        if to_leader.is_none() {
            let seen = live
                .iter()
                .filter_map(|&id| leader_at(cluster.node(id).addr, topic))
                .find(|&l| l >= 0 && l != old);
            if seen.is_some() {
                new = seen;
                to_leader = Some(killed_at.elapsed());
            }
        }
        if to_ack.is_none() {
            let lines = acked_lines(ack_file);
            if last_acked_offset(&lines) > before && lines.len() > acked_at_kill {
                to_ack = Some(killed_at.elapsed());
            }
        }
        thread::sleep(Duration::from_millis(20));
    }
    let (Some(new), Some(to_leader), Some(to_ack)) = (new, to_leader, to_ack) else {
        panic!(
            "no failover within 30 s of kill -9 (new leader {new:?} after {to_leader:?}, first \
             ack after {to_ack:?})\n{}",
            cluster.logs()
        );
    };
    (new, to_leader, to_ack, killed_at)
}

/// (c) A paused follower leaves the ISR; acks=all with min.insync.replicas=3 then fails fast
/// with NOT_ENOUGH_REPLICAS, and acks=1 records are taken but not committed (the high
/// watermark stays below min.insync.replicas, as in Kafka 3.7+); resumed, it rejoins and they
/// are.
#[test]
fn paused_follower_leaves_the_isr_and_rejoins() {
    // The session timeout well above the lag limit: the paused follower leaves the ISR
    // because the leader shrinks it (AlterPartition), not because the controller fences it.
    let mut cluster = Cluster::start(
        3,
        &[
            "replica.lag.time.max.ms=1500",
            "broker.session.timeout.ms=10000",
        ],
    );
    wait_for_brokers(&cluster, 3);
    let bootstrap = cluster.bootstrap();
    let topic = unique_topic("pause");
    create_topic(&bootstrap, &topic, 1, 3, &["min.insync.replicas=3"]);
    let ok = client(&bootstrap, &["produce-one", &topic]);
    assert_eq!(ok["error"], Value::Null, "{ok}");

    let doc = client(&bootstrap, &["describe", &topic]);
    let controller = doc["controller"].as_i64().unwrap_or(-1) as i32;
    let (_, parts) = describe(&bootstrap, &topic);
    let leader = parts[&0].leader;
    // A follower that is not also the active controller, so the pause tests replication
    // alone (when every follower is, any follower will do).
    let follower = cluster
        .ids()
        .into_iter()
        .filter(|&i| i != leader)
        .max_by_key(|&i| i != controller)
        .expect("a follower");
    let others: Vec<i32> = cluster
        .ids()
        .into_iter()
        .filter(|&i| i != follower)
        .collect();
    let others_bootstrap = bootstrap_of(&cluster, &others);

    cluster.pause(follower);
    let paused_at = Instant::now();
    // A follower at the leader's log end is in sync however long it is silent (Kafka's
    // rule): a record it does not fetch starts its lag.
    let moved = client(&others_bootstrap, &["produce-one", &topic, "--acks", "1"]);
    assert_eq!(moved["error"], Value::Null, "acks=1 while paused: {moved}");
    wait_for(
        &cluster,
        "the paused follower out of the ISR",
        Duration::from_secs(20),
        || {
            let (_, parts) = describe(&others_bootstrap, &topic);
            parts
                .get(&0)
                .filter(|s| !s.isr.contains(&follower) && !s.isr.is_empty())
                .map(|_| ())
        },
    );
    eprintln!(
        "node {follower} left the ISR {:.2} s after SIGSTOP",
        paused_at.elapsed().as_secs_f64()
    );
    let refused = client(
        &others_bootstrap,
        &["produce-one", &topic, "--timeout", "10"],
    );
    assert_eq!(
        refused["error"],
        Value::from("NOT_ENOUGH_REPLICAS"),
        "acks=all below min.insync.replicas: {refused}"
    );
    assert!(
        refused["seconds"].as_f64().unwrap_or(99.0) < 5.0,
        "the refusal must not wait for the timeout: {refused}"
    );
    // Below min.insync.replicas the high watermark stays (Kafka 3.7+): the acks=1 record
    // taken while the follower was paused is not committed, nor is one taken now.
    let taken = client(&others_bootstrap, &["produce-one", &topic, "--acks", "1"]);
    assert_eq!(taken["error"], Value::Null, "acks=1 below min ISR: {taken}");
    let moved_at = moved["offset"].as_i64().unwrap_or(-1);
    let marks = client(&others_bootstrap, &["watermarks", &topic]);
    assert_eq!(
        marks["high"].as_i64(),
        Some(moved_at),
        "the high watermark moved below min.insync.replicas: {marks}, acks=1 at {moved_at} and {taken}"
    );

    cluster.resume(follower);
    let resumed_at = Instant::now();
    // Asked of the leader: the resumed node's own metadata is stale until it catches up.
    let leader_bootstrap = bootstrap_of(&cluster, &[leader]);
    wait_for(
        &cluster,
        "the resumed follower back in the ISR",
        Duration::from_secs(30),
        || {
            let (_, parts) = describe(&leader_bootstrap, &topic);
            (parts.get(&0).map(|s| s.isr.len()) == Some(3)).then_some(())
        },
    );
    eprintln!(
        "node {follower} back in the ISR {:.2} s after SIGCONT",
        resumed_at.elapsed().as_secs_f64()
    );
    // A producer retries NOT_ENOUGH_REPLICAS, and so does this check, briefly. (Before the
    // metadata quorum had pre-vote, the resumed node stood for election at once and unseated
    // the active controller in the middle of the ISR expansion; a CI run saw the first acks=all
    // produce refused 0.16 s after SIGCONT.)
    let deadline = Instant::now() + Duration::from_secs(15);
    let ok = loop {
        let ok = client(&leader_bootstrap, &["produce-one", &topic]);
        if ok["error"] != "NOT_ENOUGH_REPLICAS" || Instant::now() >= deadline {
            break ok;
        }
        thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(ok["error"], Value::Null, "acks=all after the rejoin: {ok}");
    // Committed now, with the ISR whole: every record so far.
    let marks = client(&leader_bootstrap, &["watermarks", &topic]);
    assert_eq!(
        marks["high"].as_i64(),
        ok["offset"].as_i64().map(|o| o + 1),
        "{marks} after {ok}"
    );
    if std::env::var_os("GREGOR_E2E_LOGS").is_some() {
        eprintln!("{}", cluster.logs());
    }
}

/// (d) A network partition: the leader of an RF=3 partition is cut off from the controller and
/// the other replicas (every link to and from it through the harness's proxies blackholes its
/// traffic; clients still reach it). The others elect a new leader; what the isolated leader
/// could not replicate it never acknowledged (acks=all with min.insync.replicas=2); healed, it
/// truncates what diverged, catches up and rejoins, and every acknowledged record is readable
/// exactly as acknowledged, in offset order, on byte-identical replicas.
#[test]
fn isolated_leader_is_replaced_and_nothing_acknowledged_is_lost() {
    let cluster = Cluster::start(3, &[]);
    wait_for_brokers(&cluster, 3);
    let bootstrap = cluster.bootstrap();
    let topic = unique_topic("partition");
    create_topic(&bootstrap, &topic, 1, 3, &["min.insync.replicas=2"]);

    let dir = tempfile::tempdir().expect("temp dir");
    let ack_file = dir.path().join("acked.txt");
    let producer = start_producer(&bootstrap, &topic, &ack_file, 60);
    wait_for(
        &cluster,
        "1000 acks before the cut",
        Duration::from_secs(30),
        || (acked_lines(&ack_file).len() >= 1000).then_some(()),
    );
    let (_, parts) = describe(&bootstrap, &topic);
    let old = parts[&0].leader;
    let cut_at = Instant::now();
    cluster.isolate(old);
    let others: Vec<i32> = cluster.ids().into_iter().filter(|&i| i != old).collect();
    let new = wait_for(
        &cluster,
        "a new leader among the connected nodes",
        Duration::from_secs(30),
        || {
            others
                .iter()
                .filter_map(|&id| leader_at(cluster.node(id).addr, &topic))
                .find(|&l| l >= 0 && l != old)
        },
    );
    eprintln!(
        "partition: node {old} isolated; node {new} leads after {:.2} s",
        cut_at.elapsed().as_secs_f64()
    );
    let acked_at_new = acked_lines(&ack_file).len();
    wait_for(
        &cluster,
        "acknowledgements from the new leader",
        Duration::from_secs(30),
        || (acked_lines(&ack_file).len() > acked_at_new + 500).then_some(()),
    );

    cluster.heal();
    wait_for_isr(
        &cluster,
        &bootstrap,
        &topic,
        3,
        "the healed node back in the ISR",
        Duration::from_secs(60),
    );
    eprintln!(
        "partition: node {old} back in the ISR {:.2} s after the cut",
        cut_at.elapsed().as_secs_f64()
    );
    thread::sleep(Duration::from_secs(1));
    let out = stop_producer(producer);
    let acked = acked_lines(&ack_file);
    eprintln!("crash_producer: {} acknowledged; {out}", acked.len());

    wait_for_identical_replicas(&cluster, &topic, 1);
    assert_acknowledged_readable(&bootstrap, &topic, &acked, "across the network partition");
}

/// Kafka's partition of a group in `__consumer_offsets`: `abs(groupId.hashCode()) % n`, with
/// Java's String hash and `Utils.abs` (the sign bit cleared).
fn offsets_partition(group: &str, partitions: i32) -> i32 {
    let mut h: i32 = 0;
    for c in group.encode_utf16() {
        h = h.wrapping_mul(31).wrapping_add(i32::from(c));
    }
    (h & 0x7fff_ffff) % partitions
}

fn group_consume(bootstrap: &str, topic: &str, group: &str, count: usize) -> Value {
    run_python_json(
        "group_client.py",
        &[
            bootstrap,
            "consume-commit",
            topic,
            group,
            "--count",
            &count.to_string(),
        ],
        CLIENT_TIMEOUT,
    )
}

/// (e) A consumer group's committed offsets survive kill -9 of its coordinator's node: the
/// coordinator moves with the leadership of the group's `__consumer_offsets` partition
/// (replicated three times), and the group resumes exactly after what it committed.
#[test]
fn committed_offsets_survive_killing_the_coordinators_node() {
    let mut cluster = Cluster::start(3, &["group.initial.rebalance.delay.ms=0"]);
    wait_for_brokers(&cluster, 3);
    let bootstrap = cluster.bootstrap();
    let topic = unique_topic("grp-failover");
    create_topic(&bootstrap, &topic, 2, 3, &["min.insync.replicas=2"]);
    let dir = tempfile::tempdir().expect("temp dir");
    let ack_file = dir.path().join("acked.txt");
    let out = gregor_e2e::run_python(
        "crash_producer.py",
        &[
            &bootstrap,
            &topic,
            &ack_file.display().to_string(),
            "--max",
            "600",
        ],
        CLIENT_TIMEOUT,
    );
    let produced = acked_lines(&ack_file).len();
    assert_eq!(produced, 600, "every record acknowledged: {out}");

    let group = "g-coordinator-failover";
    let first = group_consume(&bootstrap, &topic, group, 300);
    let first_recs = check::records(&first, "records");
    assert_eq!(first_recs.len(), 300, "{first}");
    let mut want: BTreeMap<i32, i64> = BTreeMap::new();
    for r in &first_recs {
        let e = want.entry(r.partition).or_insert(0);
        *e = (*e).max(r.offset + 1);
    }
    let (_, offsets) = describe(&bootstrap, "__consumer_offsets");
    let coordinator = offsets[&offsets_partition(group, 50)].leader;
    assert!(
        coordinator > 0,
        "the group's offsets partition has a leader: {offsets:?}"
    );
    cluster.kill9(coordinator);
    let live: Vec<i32> = cluster
        .ids()
        .into_iter()
        .filter(|&i| i != coordinator)
        .collect();
    let live_bootstrap = bootstrap_of(&cluster, &live);

    let second = group_consume(&live_bootstrap, &topic, group, produced - 300);
    let second_recs = check::records(&second, "records");
    let mut first_read: BTreeMap<i32, i64> = BTreeMap::new();
    for r in &second_recs {
        first_read.entry(r.partition).or_insert(r.offset);
    }
    for (p, o) in &first_read {
        assert_eq!(
            *o,
            want.get(p).copied().unwrap_or(0),
            "partition {p}: after the coordinator's node died the group resumed at {o}, \
             committed before: {:?}",
            want.get(p)
        );
    }
    let mut all: Vec<(i32, i64)> = first_recs
        .iter()
        .chain(second_recs.iter())
        .map(|r| (r.partition, r.offset))
        .collect();
    all.sort_unstable();
    all.dedup();
    assert_eq!(
        all.len(),
        first_recs.len() + second_recs.len(),
        "a record was read twice"
    );
    assert_eq!(all.len(), produced, "every record read once");
}

/// (f) A cut between the two followers (they never talk to each other about data: the ISR is
/// whole again once it heals), then every link to and from the leader slowed by 150 ms each
/// way (well inside `replica.lag.time.max.ms`): the ISR stays whole and acks=all goes on.
/// Healed, the replicas are byte-identical with every acknowledged record in place.
///
/// The links also carry the metadata quorum, whose RPC deadline is its heartbeat interval
/// (500 ms by default). A 300 ms round trip on a loaded machine (a CI run) went past it: the
/// quorum's leader timed out on the partition leader's node, and acks stalled for a few
/// seconds. This test is about the ISR, so its quorum runs with a 1 s heartbeat and a 2 s
/// election timeout, leaving room for the slowed links. (The stall still showed once in four
/// runs after that change: see the notes.)
#[test]
fn a_cut_between_followers_and_slow_links_keep_the_isr_whole() {
    let cluster = Cluster::start(
        3,
        &[
            "controller.quorum.heartbeat.interval.ms=1000",
            "controller.quorum.election.timeout.ms=2000",
        ],
    );
    wait_for_brokers(&cluster, 3);
    let bootstrap = cluster.bootstrap();
    let topic = unique_topic("slow-links");
    create_topic(&bootstrap, &topic, 1, 3, &["min.insync.replicas=3"]);
    let dir = tempfile::tempdir().expect("temp dir");
    let ack_file = dir.path().join("acked.txt");
    let producer = start_producer(&bootstrap, &topic, &ack_file, 60);
    wait_for(&cluster, "500 acks", Duration::from_secs(30), || {
        (acked_lines(&ack_file).len() >= 500).then_some(())
    });
    let (_, parts) = describe(&bootstrap, &topic);
    let leader = parts[&0].leader;
    let followers: Vec<i32> = cluster.ids().into_iter().filter(|&i| i != leader).collect();
    let isr_whole = || {
        let (_, parts) = describe(&bootstrap, &topic);
        parts.get(&0).map(|s| s.isr.len()) == Some(3)
    };

    // The followers fetch only from the leader, so their data path does not cross the cut;
    // but when the active controller is on one of them, the other cannot heartbeat it and is
    // fenced (as in Kafka), which shrinks the ISR. Either way nothing acknowledged is lost and
    // the ISR is whole again once the link heals.
    cluster.set_between(followers[0], followers[1], LinkMode::Blackhole);
    thread::sleep(Duration::from_secs(5));
    eprintln!(
        "cut between followers {followers:?}: ISR whole during the cut: {}",
        isr_whole()
    );
    cluster.heal();
    wait_for(
        &cluster,
        "the ISR whole after the heal",
        Duration::from_secs(30),
        || isr_whole().then_some(()),
    );
    // While the ISR was short, min.insync.replicas=3 held the producer's messages back and
    // many are near their 5 s message timeout; librdkafka bounds a request's timeout by the
    // oldest message's, so over 300 ms round trips those requests would time out one after
    // another. Let the backlog drain over the healed links first.
    let resumed = acked_lines(&ack_file).len();
    wait_for(
        &cluster,
        "acks again after the heal",
        Duration::from_secs(30),
        || (acked_lines(&ack_file).len() > resumed + 500).then_some(()),
    );
    thread::sleep(Duration::from_secs(1));

    for &f in &followers {
        cluster.set_between(leader, f, LinkMode::Delay(Duration::from_millis(150)));
    }
    let before = acked_lines(&ack_file).len();
    thread::sleep(Duration::from_secs(6));
    assert!(
        isr_whole(),
        "a 150 ms delay shrank the ISR: {:?}\n{}",
        describe(&bootstrap, &topic).1,
        cluster.logs()
    );
    assert!(
        acked_lines(&ack_file).len() > before + 10,
        "acks=all stopped over slow links: {} acks in 6 s\n{}",
        acked_lines(&ack_file).len() - before,
        cluster.logs()
    );
    cluster.heal();

    thread::sleep(Duration::from_secs(1));
    let out = stop_producer(producer);
    let acked = acked_lines(&ack_file);
    eprintln!("crash_producer: {} acknowledged; {out}", acked.len());
    wait_for_identical_replicas(&cluster, &topic, 1);
    assert_acknowledged_readable(&bootstrap, &topic, &acked, "after the link faults");
}

/// (g) A node restarted with an empty data directory (a replaced disk): it registers again,
/// fetches every partition it hosts from the leaders, and rejoins the ISR with a byte-identical
/// copy; nothing acknowledged is lost, and it never leads with its empty log.
#[test]
fn a_node_restarted_with_an_empty_data_dir_catches_up() {
    let mut cluster = Cluster::start(3, &[]);
    wait_for_brokers(&cluster, 3);
    let bootstrap = cluster.bootstrap();
    let topic = unique_topic("empty-disk");
    create_topic(&bootstrap, &topic, 1, 3, &["min.insync.replicas=2"]);
    let dir = tempfile::tempdir().expect("temp dir");
    let ack_file = dir.path().join("acked.txt");
    let producer = start_producer(&bootstrap, &topic, &ack_file, 60);
    wait_for(&cluster, "2000 acks", Duration::from_secs(30), || {
        (acked_lines(&ack_file).len() >= 2000).then_some(())
    });
    let (_, parts) = describe(&bootstrap, &topic);
    let leader = parts[&0].leader;
    let victim = cluster
        .ids()
        .into_iter()
        .find(|&i| i != leader)
        .expect("a follower");
    cluster.restart_empty(victim);
    wait_for_isr(
        &cluster,
        &bootstrap,
        &topic,
        3,
        "the emptied node back in the ISR",
        Duration::from_secs(60),
    );
    let (_, parts) = describe(&bootstrap, &topic);
    assert_ne!(parts[&0].leader, victim, "the emptied node does not lead");
    thread::sleep(Duration::from_secs(1));
    let out = stop_producer(producer);
    let acked = acked_lines(&ack_file);
    eprintln!("crash_producer: {} acknowledged; {out}", acked.len());
    wait_for_identical_replicas(&cluster, &topic, 1);
    assert_acknowledged_readable(&bootstrap, &topic, &acked, "after the empty restart");
}

/// (h) Seeded random faults under acks=all load: each seed (`GREGOR_CLUSTER_SEEDS`, default
/// "3,6", which between them kill, pause, cut and slow; `GREGOR_CLUSTER_STEPS` faults per seed,
/// default 4) drives a 3-node cluster through
/// kills and restarts, pauses, link cuts and slow links, one at a time, each healed before the
/// next once the ISR is whole again. After every seed: every acknowledged record is readable
/// exactly as acknowledged, offsets have no gaps, and the replicas are byte-identical. A failing
/// seed replays with `GREGOR_CLUSTER_SEEDS=<seed>`.
#[test]
fn seeded_random_faults_lose_nothing_acknowledged() {
    let seeds: Vec<u64> = std::env::var("GREGOR_CLUSTER_SEEDS")
        .unwrap_or_else(|_| "3,6".into())
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let steps: usize = std::env::var("GREGOR_CLUSTER_STEPS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(4);
    for seed in seeds {
        let mut rng = gregor_e2e::mutate::Rng::new(seed);
        let mut cluster = Cluster::start(3, &[]);
        wait_for_brokers(&cluster, 3);
        let bootstrap = cluster.bootstrap();
        let topic = unique_topic(&format!("seed{seed}"));
        create_topic(&bootstrap, &topic, 2, 3, &["min.insync.replicas=2"]);
        let dir = tempfile::tempdir().expect("temp dir");
        let ack_file = dir.path().join("acked.txt");
        let producer = start_producer(&bootstrap, &topic, &ack_file, 600);
        wait_for(&cluster, "500 acks", Duration::from_secs(30), || {
            (acked_lines(&ack_file).len() >= 500).then_some(())
        });
        run_seeded_faults(
            &mut cluster,
            &mut rng,
            steps,
            &topic,
            2,
            &format!("seed {seed}"),
        );
        let out = stop_producer(producer);
        let acked = acked_lines(&ack_file);
        eprintln!("seed {seed}: {} acknowledged; {out}", acked.len());
        wait_for_identical_replicas(&cluster, &topic, 2);
        assert_acknowledged_readable(&bootstrap, &topic, &acked, &format!("seed {seed}"));
    }
}

/// A rolling restart with controlled shutdowns (SIGTERM): each node in turn asks the
/// controller to move its leaderships away, exits cleanly, restarts and rejoins every ISR,
/// while an acks=all producer (confluent-kafka, 5 s delivery timeout) writes to partitions led
/// by every node. The producer sees no failed delivery, and every acknowledged record reads
/// back exactly.
#[test]
fn a_rolling_restart_with_controlled_shutdowns_costs_the_producer_no_errors() {
    let mut cluster = Cluster::start(3, &[]);
    wait_for_brokers(&cluster, 3);
    let bootstrap = cluster.bootstrap();
    let topic = unique_topic("rolling");
    create_topic(&bootstrap, &topic, 3, 3, &["min.insync.replicas=2"]);
    let full_isr = |bootstrap: &str| {
        let (_, parts) = describe(bootstrap, &topic);
        parts.len() == 3 && parts.values().all(|p| p.leader > 0 && p.isr.len() == 3)
    };
    wait_for(
        &cluster,
        "a full ISR everywhere",
        Duration::from_secs(30),
        || full_isr(&bootstrap).then_some(()),
    );

    let dir = tempfile::tempdir().expect("temp dir");
    let ack_file = dir.path().join("acked.txt");
    let producer = start_producer(&bootstrap, &topic, &ack_file, 120);
    wait_for(&cluster, "1000 acks", Duration::from_secs(30), || {
        (acked_lines(&ack_file).len() >= 1000).then_some(())
    });
    for id in cluster.ids() {
        let before = acked_lines(&ack_file).len();
        let stopping = Instant::now();
        let status = cluster.stop(id);
        assert!(
            status.success(),
            "node {id} exited with {status:?} after SIGTERM"
        );
        eprintln!(
            "node {id}: controlled shutdown took {:.2} s",
            stopping.elapsed().as_secs_f64()
        );
        // Its leaderships moved before it exited (a crash would leave them on it until its
        // session expires).
        let others: Vec<i32> = cluster.ids().into_iter().filter(|&i| i != id).collect();
        let (_, parts) = describe(&bootstrap_of(&cluster, &others), &topic);
        assert!(
            parts.values().all(|p| p.leader != id && p.leader > 0),
            "node {id} still leads right after its controlled shutdown: {parts:?}"
        );
        cluster.restart(id);
        wait_for(
            &cluster,
            "the restarted node back in every ISR",
            Duration::from_secs(60),
            || full_isr(&bootstrap).then_some(()),
        );
        wait_for(
            &cluster,
            "acks after the restart",
            Duration::from_secs(30),
            || (acked_lines(&ack_file).len() > before + 200).then_some(()),
        );
    }
    let out = stop_producer(producer);
    let report: Value = out
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|v| v.get("failed").is_some())
        .unwrap_or_else(|| panic!("no report from the producer: {out}"));
    assert_eq!(
        report["failed"].as_i64(),
        Some(0),
        "deliveries failed during the rolling restart: {report}\n{}",
        cluster.logs()
    );
    let acked = acked_lines(&ack_file);
    eprintln!("rolling restart: {} acknowledged, none failed", acked.len());
    wait_for_identical_replicas(&cluster, &topic, 3);
    assert_acknowledged_readable(&bootstrap, &topic, &acked, "after a rolling restart");
}

/// KIP-392 with a real client: three nodes in racks RACK1..3 with the rack-aware selector; a
/// confluent-kafka consumer with `client.rack` set to a follower's rack is sent there by the
/// leader and reads every record from it (librdkafka's statistics: the follower's bytes exceed
/// the records', the leader's stay small), as librdkafka's own test 0101 checks.
#[test]
fn a_consumer_reads_from_the_follower_in_its_rack() {
    let mut cluster = Cluster::prepare(
        &[gregor_e2e::cluster::Role::Combined; 3],
        &["replica.selector.class=org.apache.kafka.common.replica.RackAwareReplicaSelector"],
    );
    for id in cluster.ids() {
        let args = cluster.args_mut(id);
        args.push("--set".to_string());
        args.push(format!("broker.rack=RACK{id}"));
    }
    let ids = cluster.ids();
    cluster.start_nodes(&ids);
    let topic = unique_topic("rack");
    let leader = replicated_topic(&cluster, &topic);
    let bootstrap = cluster.bootstrap();
    let count = 2000;
    let doc = run_python_json(
        "confluent_client.py",
        &[
            &bootstrap, "produce", &topic, "--count", "2000", "--size", "100",
        ],
        CLIENT_TIMEOUT,
    );
    assert_eq!(check::records(&doc, "delivered").len(), count);
    let follower = ids
        .iter()
        .copied()
        .find(|&id| id != leader)
        .expect("a follower");
    let rack = format!("RACK{follower}");
    let doc = client(
        &bootstrap,
        &["consume-from-rack", &topic, "2000", "--rack", &rack],
    );
    assert_eq!(doc["consumed"].as_u64(), Some(count as u64), "{doc}");
    let rx = |id: i32| doc["rxbytes"][id.to_string()].as_u64().unwrap_or(0);
    eprintln!(
        "leader {leader}, client in {rack}: rxbytes {}",
        doc["rxbytes"]
    );
    assert!(
        rx(follower) > (count * 100) as u64,
        "the follower served the records: {doc}"
    );
    for other in ids.iter().copied().filter(|&id| id != follower) {
        assert!(
            rx(other) < rx(follower) / 10,
            "node {other} served little: {doc}"
        );
    }

    // The Java client (kafka-clients): it sees the racks in DescribeCluster and reads from the
    // follower too (its per-node `incoming-byte-total`).
    let line = gregor_e2e::kafka_tools::Toolbox::installed().run_java_source(
        "RackConsumer.java",
        &[&bootstrap, &topic, "2000", &rack],
        CLIENT_TIMEOUT,
    );
    let doc: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line}: {e}"));
    eprintln!("Java consumer in {rack}: {doc}");
    for &id in &ids {
        assert_eq!(doc["racks"][id.to_string()], format!("RACK{id}"), "{doc}");
    }
    assert_eq!(doc["consumed"].as_u64(), Some(count as u64), "{doc}");
    let rx = |id: i32| doc["bytes"][id.to_string()].as_u64().unwrap_or(0);
    assert!(
        rx(follower) > (count * 100) as u64,
        "the follower served the Java consumer: {doc}"
    );
    for other in ids.iter().copied().filter(|&id| id != follower) {
        assert!(
            rx(other) < rx(follower) / 10,
            "node {other} served little: {doc}"
        );
    }

    // The follower killed (-9): a consumer in its rack still reads everything, from the leader
    // (librdkafka goes back to the leader when the preferred replica fails; once the node is
    // fenced the leader sends nobody there).
    cluster.kill9(follower);
    let doc = client(
        &bootstrap_of(&cluster, &[leader]),
        &["consume-from-rack", &topic, "2000", "--rack", &rack],
    );
    eprintln!("after the follower's kill: {doc}");
    assert_eq!(doc["consumed"].as_u64(), Some(count as u64), "{doc}");
    let rx = |id: i32| doc["rxbytes"][id.to_string()].as_u64().unwrap_or(0);
    assert!(
        rx(leader) > (count * 100) as u64,
        "the leader served the records: {doc}"
    );
}
