//! A log directory whose disk starts failing (a real EIO from the kernel: a FUSE filesystem
//! that fails fsyncs on command, [`FaultyDisk`]) under a broker with two log directories:
//! the produce whose fsync fails is answered KAFKA_STORAGE_ERROR, not acknowledged; the whole
//! directory goes offline (DescribeLogDirs says so, its other partitions answer
//! KAFKA_STORAGE_ERROR too, no new partition goes there) and the controller is told, so its
//! partitions have no leader in the metadata (Kafka's offline partitions); the healthy
//! directory's partitions go on; the stop says the directory was offline and marks only the
//! healthy one clean; once the disk is back, a restart recovers it and every acknowledged
//! record reads back. In a cluster, the broker goes on serving its healthy directory while the
//! controller leads the failed one's partitions elsewhere.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use gregor_e2e::broker::{gregor_cli, gregor_cli_ok};
use gregor_e2e::client::CONFLUENT;
use gregor_e2e::faulty_disk::FaultyDisk;
use gregor_e2e::raw::{simple_batch, RawConn};
use gregor_e2e::{partitions_in, unique_topic, Broker};

/// Kafka's KAFKA_STORAGE_ERROR.
const KAFKA_STORAGE_ERROR: i16 = 56;

/// `gregor produce TOPIC --partition P` of one record: (success, what it printed).
fn produce_one(bootstrap: &str, topic: &str, partition: i32) -> (bool, String) {
    let mut cmd = std::process::Command::new(gregor_e2e::broker::gregor_bin());
    cmd.args(["produce", topic, "--partition", &partition.to_string()])
        .args(["--bootstrap-server", bootstrap]);
    let out = gregor_e2e::run_command(cmd, Some(b"one more\n"), Duration::from_secs(60));
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// One broker with a healthy log directory and one on the faulty disk, and a topic of four
/// partitions, two in each.
struct OneBroker {
    disk: FaultyDisk,
    healthy: tempfile::TempDir,
    broker: Broker,
    topic: String,
    on_disk: std::collections::BTreeSet<i32>,
    on_healthy: std::collections::BTreeSet<i32>,
}

fn one_broker(prefix: &str) -> OneBroker {
    let disk = FaultyDisk::mount();
    let healthy = tempfile::tempdir().expect("tempdir");
    let log_dirs = format!(
        "log.dirs={},{}",
        healthy.path().display(),
        disk.path().display()
    );
    let broker = Broker::start_with(&[&log_dirs]);
    let topic = unique_topic(prefix);
    CONFLUENT.create_topic(&broker, &topic, 4);
    let on_disk = partitions_in(&disk.backing(), &topic);
    let on_healthy = partitions_in(healthy.path(), &topic);
    assert_eq!(
        (on_disk.len(), on_healthy.len()),
        (2, 2),
        "{on_disk:?} {on_healthy:?}"
    );
    OneBroker {
        disk,
        healthy,
        broker,
        topic,
        on_disk,
        on_healthy,
    }
}

/// Waits until `gregor log-dirs describe` names the faulty disk's directory with
/// KAFKA_STORAGE_ERROR (within 10 s); what it printed on standard output then.
fn wait_until_offline(bootstrap: &str, disk: &FaultyDisk) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, out, err) = gregor_cli(bootstrap, &["log-dirs", "describe"]);
        if err.contains(&format!(
            "{}: KAFKA_STORAGE_ERROR (56)",
            disk.path().display()
        )) {
            return out;
        }
        assert!(
            Instant::now() < deadline,
            "the directory never went offline: {out}{err}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_failing_disk_takes_its_log_directory_offline_and_the_other_goes_on() {
    let OneBroker {
        disk,
        healthy,
        mut broker,
        topic,
        on_disk,
        on_healthy,
    } = one_broker("disk");
    let bootstrap = broker.bootstrap();
    let acked = CONFLUENT.produce(&broker, &topic, 400, 100, "none");
    assert_eq!(acked.len(), 400);

    disk.fail("fsync");
    let mut failing = on_disk.iter().copied();
    let (first, second) = (
        failing.next().expect("a partition"),
        failing.next().expect("another"),
    );
    let mut conn = RawConn::connect(broker.addr());
    let (code, _) = conn.produce(&topic, first, simple_batch(&[("k", "one more")]));
    assert_eq!(code, KAFKA_STORAGE_ERROR, "the produce whose fsync failed");

    // The whole directory goes offline: DescribeLogDirs names it with its error, and the
    // other partition there, whose own fsync never failed, cannot be read either.
    let out = wait_until_offline(&bootstrap, &disk);
    assert!(!out.contains(&disk.path().display().to_string()), "{out}");
    let (code, _) = conn.fetch_partition(&topic, second, 0);
    assert_eq!(code, KAFKA_STORAGE_ERROR, "a fetch of partition {second}");
    let (code, _) = conn.produce(&topic, second, simple_batch(&[("k", "one more")]));
    assert_eq!(code, KAFKA_STORAGE_ERROR, "a produce to partition {second}");
    // The controller was told (the broker's heartbeat names the replicas): the failed
    // directory's partitions have no leader now, the healthy one's are led as before.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, parts) = gregor_e2e::cluster_client::describe(&bootstrap, &topic);
        let leaders: BTreeMap<i32, i32> = parts.iter().map(|(&p, s)| (p, s.leader)).collect();
        if on_disk.iter().all(|p| leaders.get(p) == Some(&-1)) {
            assert!(
                on_healthy.iter().all(|p| leaders.get(p) == Some(&1)),
                "{leaders:?}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the failed directory's partitions are still led: {leaders:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // The healthy directory goes on: produce, and a new topic placed there only.
    for &p in &on_healthy {
        let (ok, out) = produce_one(&bootstrap, &topic, p);
        assert!(ok, "partition {p} on the healthy disk: {out}");
    }
    let other = unique_topic("disk-new");
    gregor_cli_ok(
        &bootstrap,
        &["topics", "create", &other, "--partitions", "4"],
    );
    assert_eq!(partitions_in(healthy.path(), &other).len(), 4);
    assert!(partitions_in(&disk.backing(), &other).is_empty());
    let logs = broker.logs();
    assert_eq!(
        logs.matches("log directory offline after a storage failure")
            .count(),
        1,
        "said once: {logs}"
    );
    // At most the checkpoint writes of the tick that found the failure; none after it.
    assert!(logs.matches("checkpoint failed").count() <= 2, "{logs}");

    // A stop is not a clean one, and says why; only the healthy directory is marked clean.
    let status = broker.stop();
    assert!(!status.success(), "{status:?}");
    assert!(broker.logs().contains("is offline after a storage failure"));
    assert!(healthy.path().join(".gregor_cleanshutdown").exists());
    assert!(!disk.backing().join(".gregor_cleanshutdown").exists());

    // The disk is replaced (healed): everything acknowledged is there, and the partitions that
    // were offline take records again.
    disk.heal();
    broker.restart();
    let consumed = CONFLUENT.consume(&broker, &topic);
    let stored: BTreeMap<(i32, i64), Option<&str>> = consumed
        .iter()
        .map(|r| ((r.partition, r.offset), r.value.as_deref()))
        .collect();
    for r in &acked {
        assert_eq!(
            stored.get(&(r.partition, r.offset)),
            Some(&r.value.as_deref()),
            "partition {} offset {}",
            r.partition,
            r.offset
        );
    }
    for &p in &on_disk {
        let (ok, out) = produce_one(&bootstrap, &topic, p);
        assert!(ok, "partition {p} after the restart: {out}");
    }
}

/// A write of a log (not an fsync) that the disk refuses takes its directory offline too, as
/// Kafka treats any I/O error in a log directory: only the topic's segment writes fail here
/// (`write:<topic>`), so no checkpoint write is what takes it offline. The produce is refused
/// with KAFKA_STORAGE_ERROR, the other partition of the directory goes offline with it, the
/// healthy directory goes on.
#[test]
fn a_failed_log_write_takes_its_log_directory_offline() {
    let OneBroker {
        disk,
        healthy: _healthy,
        broker,
        topic,
        on_disk,
        on_healthy,
    } = one_broker("diskwrite");
    let bootstrap = broker.bootstrap();
    let mut failing = on_disk.iter().copied();
    let (first, second) = (
        failing.next().expect("a partition"),
        failing.next().expect("another"),
    );
    let mut conn = RawConn::connect(broker.addr());
    let (code, _) = conn.produce(&topic, first, simple_batch(&[("k", "before")]));
    assert_eq!(code, 0, "a produce before the fault");

    disk.fail(&format!("write:{topic}"));
    let (code, _) = conn.produce(&topic, first, simple_batch(&[("k", "refused")]));
    assert_eq!(code, KAFKA_STORAGE_ERROR, "the produce whose write failed");
    wait_until_offline(&bootstrap, &disk);
    let (code, _) = conn.produce(&topic, second, simple_batch(&[("k", "one more")]));
    assert_eq!(code, KAFKA_STORAGE_ERROR, "a produce to partition {second}");
    for &p in &on_healthy {
        let (ok, out) = produce_one(&bootstrap, &topic, p);
        assert!(ok, "partition {p} on the healthy disk: {out}");
    }
    let logs = broker.logs();
    assert!(
        logs.contains("a write to the log failed; partition taken offline"),
        "{logs}"
    );
    assert!(!logs.contains("checkpoint failed"), "{logs}");
}

/// In a cluster of three, node 1 keeps its second log directory on the failing disk and leads a
/// partition there, and another in its healthy directory, under an acks=all producer. When the
/// disk fails, node 1 reports the failed directory's replicas in its heartbeat: the controller
/// leads that partition elsewhere and takes node 1 out of its ISR, while node 1 goes on leading
/// the other; the producer goes on. With the disk back node 1 restarts and rejoins every ISR,
/// and every acknowledged record reads back.
#[test]
fn in_a_cluster_a_failed_directory_is_led_elsewhere_and_its_broker_goes_on() {
    use gregor_e2e::cluster::{Cluster, Role};
    use gregor_e2e::cluster_client::*;

    let disk = FaultyDisk::mount();
    let mut cluster = Cluster::prepare(&[Role::Combined; 3], &[]);
    cluster.set_log_dirs(1, &[&disk.path()]);
    cluster.start_nodes(&[1, 2, 3]);
    wait_for_brokers(&cluster, 3);
    let bootstrap = cluster.bootstrap();
    let topic = unique_topic("disk-cluster");
    create_topic(&bootstrap, &topic, 2, 3, &["min.insync.replicas=2"]);
    wait_for_whole_isrs(&cluster, &bootstrap, &topic, 2, 3, "creation");
    // Node 1 leads the partition whose replica there is on the failing disk.
    let on_disk = partitions_in(&disk.backing(), &topic);
    assert_eq!(
        on_disk.len(),
        1,
        "one partition in each directory: {on_disk:?}"
    );
    let p = *on_disk
        .iter()
        .next()
        .expect("a partition on the failing disk");
    make_leader(&cluster, &topic, p, 1, &[1, 2, 3]);
    let q = 1 - p;
    make_leader(&cluster, &topic, q, 1, &[1, 2, 3]);

    let scratch = tempfile::tempdir().expect("tempdir");
    let ack_file = scratch.path().join("acked.txt");
    let producer = start_producer(&bootstrap, &topic, &ack_file, 120);
    wait_for_acks(&cluster, &ack_file, 1000, "1000 acks");
    disk.fail("fsync");
    let live = bootstrap_without(&cluster, 1);
    let leader = wait_for(&cluster, "a new leader", Duration::from_secs(30), || {
        let (_, parts) = describe(&live, &topic);
        parts
            .get(&p)
            .filter(|s| s.leader > 1 && !s.isr.contains(&1))
            .map(|s| s.leader)
    });
    let before = acked_lines(&ack_file).len();
    wait_for_acks(
        &cluster,
        &ack_file,
        before + 500,
        "500 acks with node 1's disk failed",
    );
    // Node 1 runs on, leading and in the ISR of the partition in its healthy directory.
    assert!(
        cluster.wait_exit(1, Duration::from_secs(1)).is_none(),
        "node 1 stopped:\n{}",
        cluster.node(1).logs()
    );
    let (_, parts) = describe(&bootstrap, &topic);
    let healthy = &parts[&q];
    assert!(healthy.leader == 1 && healthy.isr.len() == 3, "{healthy:?}");
    let logs = cluster.node(1).logs();
    assert!(
        logs.contains("reporting the replicas of the offline log directories"),
        "{logs}"
    );
    // Told by replica or (KIP-858) by directory, whichever heartbeat came first.
    let all = cluster.logs();
    assert!(
        all.contains("replicas in a failed log directory left their ISRs")
            || all.contains("log directories offline: their replicas left their ISRs"),
        "the controller's log"
    );
    eprintln!("node {leader} leads partition {p}; node 1 still leads partition {q}");

    disk.heal();
    cluster.restart(1);
    wait_for_whole_isrs(&cluster, &live, &topic, 2, 3, "node 1's restart");
    let out = stop_producer(producer);
    let acked = acked_lines(&ack_file);
    eprintln!("crash_producer: {} acknowledged; {out}", acked.len());
    assert_acknowledged_readable(&bootstrap, &topic, &acked, "after the failed disk");
}

/// KIP-858 in a cluster of three: node 1 has two log directories, and the controller learns
/// which one holds each of its replicas. Node 1 stops; its second directory's disk is gone when
/// it starts again (a file where the directory was). It starts with the directory offline: the
/// partitions there are not created afresh in the other directory (an empty replica must not
/// take the place of one whose data is out of reach), and the controller, whose metadata says
/// where they were, keeps them out of their ISRs and leaderships, while node 1 rejoins the ISRs
/// of its healthy directory. With the disk back, node 1 restarts and rejoins every ISR, and
/// every acknowledged record reads back.
#[test]
fn a_broker_starts_without_a_missing_log_directory_and_leaves_its_replicas_offline() {
    use gregor_e2e::cluster::{Cluster, Role};
    use gregor_e2e::cluster_client::*;

    const ASSIGNED: &str = "replicas assigned to their log directories";
    let scratch = tempfile::tempdir().expect("tempdir");
    let second = scratch.path().join("second");
    let mut cluster = Cluster::prepare(&[Role::Combined; 3], &[]);
    cluster.set_log_dirs(1, &[&second]);
    cluster.start_nodes(&[1, 2, 3]);
    wait_for_brokers(&cluster, 3);
    let bootstrap = cluster.bootstrap();
    let topic = unique_topic("dir-missing");
    let assigned_before = cluster.node(1).logs().matches(ASSIGNED).count();
    create_topic(&bootstrap, &topic, 4, 3, &["min.insync.replicas=2"]);
    wait_for_whole_isrs(&cluster, &bootstrap, &topic, 4, 3, "creation");
    wait_for(
        &cluster,
        "node 1's AssignReplicasToDirs",
        Duration::from_secs(30),
        || (cluster.node(1).logs().matches(ASSIGNED).count() > assigned_before).then_some(()),
    );
    // The answer is committed before the line is logged; the next round (every second) would
    // cover a partition the first one missed.
    std::thread::sleep(Duration::from_secs(2));
    let main = cluster.node(1).data_dir().to_path_buf();
    let in_second = partitions_in(&second, &topic);
    let in_main = partitions_in(&main, &topic);
    assert!(
        !in_second.is_empty() && !in_main.is_empty(),
        "both directories hold partitions: {in_main:?} {in_second:?}"
    );
    let p = *in_second.iter().next().expect("one");
    make_leader(&cluster, &topic, p, 1, &[1, 2, 3]);

    let ack_file = scratch.path().join("acked.txt");
    let producer = start_producer(&bootstrap, &topic, &ack_file, 120);
    wait_for_acks(&cluster, &ack_file, 500, "500 acks");
    let status = cluster.stop(1);
    assert!(status.success(), "node 1's stop: {status:?}");
    // The disk is gone: a file where the directory was.
    let hidden = scratch.path().join("second.gone");
    std::fs::rename(&second, &hidden).expect("hide the directory");
    std::fs::write(&second, b"no directory here").expect("a file in its place");
    cluster.restart(1);
    let live = bootstrap_without(&cluster, 1);
    let before = acked_lines(&ack_file).len();
    wait_for_acks(
        &cluster,
        &ack_file,
        before + 500,
        "500 acks with node 1 down",
    );
    // Node 1 runs, back in the ISRs of its healthy directory's partitions.
    wait_for(
        &cluster,
        "node 1 in its healthy partitions' ISRs",
        Duration::from_secs(60),
        || {
            let (_, parts) = describe(&live, &topic);
            in_main
                .iter()
                .all(|q| parts.get(q).is_some_and(|s| s.isr.contains(&1)))
                .then_some(())
        },
    );
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        cluster.wait_exit(1, Duration::from_secs(1)).is_none(),
        "node 1 stopped:\n{}",
        cluster.node(1).logs()
    );
    let (_, parts) = describe(&live, &topic);
    for q in &in_second {
        let s = &parts[q];
        assert!(
            s.leader != 1 && !s.isr.contains(&1),
            "partition {q}, in the missing directory, led or in-sync on node 1: {s:?}"
        );
    }
    assert_eq!(
        partitions_in(&main, &topic),
        in_main,
        "the missing directory's partitions were created afresh in the other one"
    );
    let logs = cluster.node(1).logs();
    assert!(logs.contains("stays offline"), "{logs}");

    // The disk is back: node 1 restarts and catches up everywhere.
    cluster.stop(1);
    std::fs::remove_file(&second).expect("remove the file");
    std::fs::rename(&hidden, &second).expect("the directory back");
    cluster.restart(1);
    wait_for_whole_isrs(
        &cluster,
        &live,
        &topic,
        4,
        3,
        "node 1 with its directory back",
    );
    let out = stop_producer(producer);
    let acked = acked_lines(&ack_file);
    eprintln!("crash_producer: {} acknowledged; {out}", acked.len());
    assert_acknowledged_readable(&bootstrap, &topic, &acked, "after the missing directory");
}

/// In a cluster of three, node 1's only log directory, which also holds its copy of the metadata
/// log, is on the failing disk. When the disk fails under an acks=all producer to a partition
/// node 1 leads, node 1 cannot go on: it stops (exit status 1) and the controller leads its
/// partitions elsewhere; the producer goes on; with the disk back node 1 restarts, rejoins
/// every ISR, and every acknowledged record reads back.
#[test]
fn when_the_metadata_logs_directory_fails_its_broker_stops() {
    use gregor_e2e::cluster::{Cluster, Role};
    use gregor_e2e::cluster_client::*;

    let disk = FaultyDisk::mount();
    let mut cluster = Cluster::prepare(&[Role::Combined; 3], &[]);
    cluster.set_data_dir(1, &disk.path());
    cluster.start_nodes(&[1, 2, 3]);
    wait_for_brokers(&cluster, 3);
    let bootstrap = cluster.bootstrap();
    let topic = unique_topic("disk-metadata");
    create_topic(&bootstrap, &topic, 1, 3, &["min.insync.replicas=2"]);
    wait_for_whole_isrs(&cluster, &bootstrap, &topic, 1, 3, "creation");
    make_leader(&cluster, &topic, 0, 1, &[1, 2, 3]);

    let scratch = tempfile::tempdir().expect("tempdir");
    let ack_file = scratch.path().join("acked.txt");
    let producer = start_producer(&bootstrap, &topic, &ack_file, 120);
    wait_for_acks(&cluster, &ack_file, 200, "200 acks");
    disk.fail("fsync");
    let status = cluster
        .wait_exit(1, Duration::from_secs(60))
        .unwrap_or_else(|| panic!("node 1 did not stop:\n{}", cluster.logs()));
    assert!(!status.success(), "{status:?}");
    let live = bootstrap_without(&cluster, 1);
    let leader = wait_for(&cluster, "a new leader", Duration::from_secs(30), || {
        let (_, parts) = describe(&live, &topic);
        parts.get(&0).map(|s| s.leader).filter(|&l| l > 1)
    });
    let logs = cluster.node(1).logs();
    assert!(
        logs.contains("the log directory of the metadata log, or every log directory, is offline"),
        "{logs}"
    );
    eprintln!("node 1 stopped ({status}); node {leader} leads");
    let before = acked_lines(&ack_file).len();
    wait_for_acks(
        &cluster,
        &ack_file,
        before + 500,
        "500 acks with node 1 stopped",
    );

    disk.heal();
    cluster.restart(1);
    wait_for_whole_isrs(&cluster, &live, &topic, 1, 3, "node 1's restart");
    let out = stop_producer(producer);
    let acked = acked_lines(&ack_file);
    eprintln!("crash_producer: {} acknowledged; {out}", acked.len());
    assert_acknowledged_readable(&bootstrap, &topic, &acked, "after the failed disk");
}

/// Node 1 of three keeps its copy of the metadata log on the failing disk, and only the metadata
/// log's fsyncs fail: the next metadata record it must write fails, Raft stops on it, and node 1
/// stops (exit status 1) rather than serve on a metadata image that no longer moves; the others
/// go on. With the disk back it restarts and is a broker of the cluster again.
#[test]
fn a_failed_metadata_log_write_stops_its_node() {
    use gregor_e2e::cluster::{Cluster, Role};
    use gregor_e2e::cluster_client::*;

    let disk = FaultyDisk::mount();
    let mut cluster = Cluster::prepare(&[Role::Combined; 3], &[]);
    cluster.set_data_dir(1, &disk.path());
    cluster.start_nodes(&[1, 2, 3]);
    wait_for_brokers(&cluster, 3);
    disk.fail("fsync:__cluster_metadata");
    let live = bootstrap_without(&cluster, 1);
    let topic = unique_topic("disk-metadata-write");
    create_topic(&live, &topic, 3, 2, &[]);
    let status = cluster
        .wait_exit(1, Duration::from_secs(60))
        .unwrap_or_else(|| panic!("node 1 did not stop:\n{}", cluster.node(1).logs()));
    assert!(!status.success(), "{status:?}");
    let logs = cluster.node(1).logs();
    assert!(
        logs.contains("the metadata log cannot be written"),
        "{logs}"
    );
    // The others lead every partition, node 1 fenced out of the ISRs.
    wait_for(
        &cluster,
        "leaders on nodes 2 and 3",
        Duration::from_secs(30),
        || {
            let (_, parts) = describe(&live, &topic);
            (parts.len() == 3 && parts.values().all(|s| s.leader > 1 && !s.isr.contains(&1)))
                .then_some(())
        },
    );
    disk.heal();
    cluster.restart(1);
    wait_for_brokers(&cluster, 3);
}

/// KIP-858's `log.dir.failure.timeout.ms`: node 1 of three is cut off from the others (a
/// blackhole on every link; clients still reach it) and then its second log directory fails
/// under a produce. Its heartbeats carrying the failed directory go unanswered, so after the
/// timeout (3 s here) it shuts down rather than serve on as a leader the controller thinks has
/// the directory's partitions; the others go on. Without the timeout it would run on.
#[test]
fn a_broker_that_cannot_report_a_failed_directory_shuts_down() {
    use gregor_e2e::cluster::{Cluster, Role};
    use gregor_e2e::cluster_client::*;

    let disk = FaultyDisk::mount();
    let mut cluster = Cluster::prepare(&[Role::Combined; 3], &["log.dir.failure.timeout.ms=3000"]);
    cluster.set_log_dirs(1, &[&disk.path()]);
    cluster.start_nodes(&[1, 2, 3]);
    wait_for_brokers(&cluster, 3);
    let bootstrap = cluster.bootstrap();
    let topic = unique_topic("disk-unreported");
    create_topic(&bootstrap, &topic, 2, 3, &[]);
    wait_for_whole_isrs(&cluster, &bootstrap, &topic, 2, 3, "creation");
    let on_disk = partitions_in(&disk.backing(), &topic);
    let p = *on_disk
        .iter()
        .next()
        .expect("a partition on the failing disk");
    make_leader(&cluster, &topic, p, 1, &[1, 2, 3]);
    let mut conn = RawConn::connect(cluster.node(1).addr);
    let (code, _) = conn.produce(&topic, p, simple_batch(&[("k", "before")]));
    assert_eq!(code, 0, "a produce before the fault");

    cluster.isolate(1);
    disk.fail(&format!("write:{topic}"));
    let failed_at = Instant::now();
    let (code, _) = conn.produce(&topic, p, simple_batch(&[("k", "refused")]));
    assert_eq!(code, KAFKA_STORAGE_ERROR, "the produce whose write failed");
    let status = cluster.wait_exit(1, Duration::from_secs(90));
    let took = failed_at.elapsed();
    let logs = cluster.node(1).logs();
    assert!(status.is_some(), "node 1 still runs:\n{logs}");
    assert!(
        took >= Duration::from_secs(3),
        "stopped after {took:?}, before the 3 s timeout"
    );
    assert!(
        logs.contains("within log.dir.failure.timeout.ms"),
        "node 1's log:\n{logs}"
    );
    eprintln!("node 1 stopped {took:?} after its directory failed ({status:?})");
    cluster.heal();
    disk.heal();
}
