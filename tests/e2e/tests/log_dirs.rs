//! Several log directories (`log.dirs=a,b,c`, Kafka's JBOD) on one `gregor server`: a topic's
//! partitions are spread over them, each directory is the node's (`meta.properties` with its own
//! directory id), Kafka's `kafka-log-dirs.sh` sees every directory with the partitions it holds,
//! and every acknowledged record is read back after a kill -9 and after a clean stop. A list
//! reordered so that the metadata log is no longer in the first directory is refused, losing
//! nothing.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use gregor_e2e::broker::{gregor_cli, gregor_cli_ok, refused_start};
use gregor_e2e::client::CONFLUENT;
use gregor_e2e::kafka_tools::Toolbox;
use gregor_e2e::{partitions_in, unique_topic, Broker};

const PARTITIONS: i32 = 6;
const RECORDS: usize = 600;

/// `key=value` lines of the directory's `meta.properties`.
fn meta_properties(dir: &Path) -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(dir.join("meta.properties"))
        .unwrap_or_else(|e| panic!("{}/meta.properties: {e}", dir.display()));
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

/// Every acknowledged record is read back at its offset with its value.
fn assert_all_read_back(
    broker: &Broker,
    topic: &str,
    acked: &[gregor_e2e::check::Rec],
    when: &str,
) {
    let consumed = CONFLUENT.consume(broker, topic);
    let stored: HashMap<(i32, i64), Option<&str>> = consumed
        .iter()
        .map(|r| ((r.partition, r.offset), r.value.as_deref()))
        .collect();
    assert_eq!(consumed.len(), acked.len(), "{when}: records read back");
    for r in acked {
        assert_eq!(
            stored.get(&(r.partition, r.offset)),
            Some(&r.value.as_deref()),
            "{when}: partition {} offset {}",
            r.partition,
            r.offset
        );
    }
}

#[test]
fn partitions_spread_over_several_log_dirs_and_survive_kill_9() {
    let mut broker = Broker::start_with_log_dirs(2, &[]);
    let dirs = broker.log_dirs();
    let topic = unique_topic("jbod");
    CONFLUENT.create_topic(&broker, &topic, PARTITIONS);
    let acked = CONFLUENT.produce(&broker, &topic, RECORDS, 100, "none");
    assert_eq!(acked.len(), RECORDS, "every record acknowledged");
    let used: BTreeSet<i32> = acked.iter().map(|r| r.partition).collect();
    assert_eq!(
        used.len(),
        PARTITIONS as usize,
        "keys spread over every partition"
    );

    // Each partition's log in exactly one directory, two in each.
    let placed: Vec<BTreeSet<i32>> = dirs.iter().map(|d| partitions_in(d, &topic)).collect();
    for (dir, held) in dirs.iter().zip(&placed) {
        assert_eq!(held.len(), 2, "{} holds {held:?}", dir.display());
    }
    let all: BTreeSet<i32> = placed.iter().flatten().copied().collect();
    assert_eq!(all, (0..PARTITIONS).collect());

    // Every directory is this node's, with a directory id of its own.
    let props: Vec<BTreeMap<String, String>> = dirs.iter().map(|d| meta_properties(d)).collect();
    let ids: BTreeSet<&String> = props.iter().filter_map(|p| p.get("directory.id")).collect();
    assert_eq!(ids.len(), dirs.len(), "distinct directory ids: {props:?}");
    for p in &props {
        assert_eq!(p.get("node.id"), props[0].get("node.id"));
        assert_eq!(p.get("cluster.id"), props[0].get("cluster.id"));
    }

    // Kafka's tool: every directory, each with the partitions it holds.
    let toolbox = Toolbox::installed();
    let run = toolbox.run(
        "kafka-log-dirs.sh",
        &[
            "--bootstrap-server",
            &broker.bootstrap(),
            "--describe",
            "--topic-list",
            &topic,
        ],
        None,
        Duration::from_secs(90),
    );
    let out = run.ok().unwrap_or_else(|e| panic!("kafka-log-dirs: {e}"));
    let json = out
        .lines()
        .find(|l| l.starts_with('{'))
        .unwrap_or_else(|| panic!("no JSON in kafka-log-dirs' output: {out}"));
    eprintln!("kafka-log-dirs: {json}");
    let doc: serde_json::Value = serde_json::from_str(json).expect("kafka-log-dirs JSON");
    let log_dirs = doc["brokers"][0]["logDirs"]
        .as_array()
        .unwrap_or_else(|| panic!("no logDirs: {json}"));
    assert_eq!(log_dirs.len(), dirs.len(), "{json}");
    for (dir, held) in dirs.iter().zip(&placed) {
        let shown = std::fs::canonicalize(dir).expect("canonical");
        let entry = log_dirs
            .iter()
            .find(|d| {
                d["logDir"]
                    .as_str()
                    .and_then(|p| std::fs::canonicalize(p).ok())
                    .is_some_and(|p| p == shown)
            })
            .unwrap_or_else(|| panic!("{} not listed: {json}", dir.display()));
        assert_eq!(entry["error"], serde_json::Value::Null, "{json}");
        let listed: BTreeSet<i32> = entry["partitions"]
            .as_array()
            .expect("partitions")
            .iter()
            .filter_map(|p| p["partition"].as_str()?.rsplit_once('-')?.1.parse().ok())
            .collect();
        assert_eq!(&listed, held, "{json}");
    }

    // gregor's own tool: every directory in its table, then a partition moved from the first
    // directory to the last, followed to the end; a directory the broker lacks is refused.
    let out = gregor_cli_ok(
        &broker.bootstrap(),
        &["log-dirs", "describe", "--topic", &topic],
    );
    for dir in &dirs {
        assert!(out.contains(&dir.display().to_string()), "{out}");
    }
    let moving = *placed[0]
        .iter()
        .next()
        .expect("a partition in the first directory");
    let last = dirs[2].display().to_string();
    let move_to = |partition: &str, to: &str| {
        let args = [
            "log-dirs",
            "move",
            "--topic",
            &topic,
            "--partition",
            partition,
            "--to",
            to,
        ];
        gregor_cli(&broker.bootstrap(), &args)
    };
    let (ok, out, err) = move_to(&moving.to_string(), &last);
    assert!(ok, "{out}{err}");
    assert!(
        out.contains(&format!("{topic}-{moving} is in {last}")),
        "{out}"
    );
    assert!(partitions_in(&dirs[2], &topic).contains(&moving));
    assert!(!partitions_in(&dirs[0], &topic).contains(&moving));
    let (ok, out, err) = move_to("0", "/nowhere");
    assert!(!ok && err.contains("LOG_DIR_NOT_FOUND"), "{out}{err}");

    // Cordoned (KIP-1066, a dynamic broker config): the first two directories take no new
    // partition; a directory that is not one of log.dirs is refused.
    let cordon = |value: &str| {
        let set = format!("cordoned.log.dirs={value}");
        let args = ["configs", "alter", "--broker", "1", "--set", &set];
        gregor_cli(&broker.bootstrap(), &args)
    };
    let (ok, out, err) = cordon(&format!("{},{}", dirs[0].display(), dirs[1].display()));
    assert!(ok, "{out}{err}");
    let (ok, out, err) = cordon("/nowhere");
    assert!(!ok && err.contains("is not one of log.dirs"), "{out}{err}");
    let fresh = unique_topic("jbod-cordoned");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    for attempt in 0.. {
        // The config reaches the broker with the metadata image it is in: a topic created
        // before that spreads as before, so each try is a new topic.
        let name = format!("{fresh}-{attempt}");
        gregor_cli_ok(
            &broker.bootstrap(),
            &["topics", "create", &name, "--partitions", "3"],
        );
        if partitions_in(&dirs[2], &name).len() == 3 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "never placed in the last directory only"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let (ok, out, err) = cordon("");
    assert!(ok, "{out}{err}");
    let placed: Vec<BTreeSet<i32>> = dirs.iter().map(|d| partitions_in(d, &topic)).collect();

    broker.kill9();
    broker.restart();
    assert_all_read_back(&broker, &topic, &acked, "after kill -9");
    let status = broker.stop();
    assert!(status.success(), "clean stop: {status:?}");
    for dir in &dirs {
        assert!(
            dir.join(".gregor_cleanshutdown").exists(),
            "{} marked clean",
            dir.display()
        );
    }
    broker.restart();
    assert_all_read_back(&broker, &topic, &acked, "after a clean stop");
    for (dir, held) in dirs.iter().zip(&placed) {
        assert_eq!(
            &partitions_in(dir, &topic),
            held,
            "{} unchanged",
            dir.display()
        );
    }
}

/// `gregor server --set SET`, which must be refused: what it printed.
fn refused(set: &str) -> String {
    refused_start(&["--set", set]).output
}

#[test]
fn a_reordered_log_dirs_list_is_refused_and_loses_nothing() {
    let mut broker = Broker::start_with_log_dirs(1, &[]);
    let dirs = broker.log_dirs();
    let topic = unique_topic("jbod-order");
    CONFLUENT.create_topic(&broker, &topic, 2);
    let acked = CONFLUENT.produce(&broker, &topic, 50, 10, "none");
    assert_eq!(acked.len(), 50);
    let status = broker.stop();
    assert!(status.success());

    // The second directory first: the metadata log is not where the list says.
    let swapped = format!("log.dirs={},{}", dirs[1].display(), dirs[0].display());
    let output = refused(&swapped);
    assert!(
        output.contains(&format!(
            "list {0} first, or set metadata.log.dir={0}",
            dirs[0].display()
        )),
        "{output}"
    );
    // The same directory twice.
    let twice = format!("log.dirs={},{}", dirs[0].display(), dirs[0].display());
    let output = refused(&twice);
    assert!(output.contains("is listed twice"), "{output}");

    broker.restart();
    assert_all_read_back(&broker, &topic, &acked, "after the refused starts");

    // The swapped list with metadata.log.dir naming where the metadata log is (Kafka's key).
    broker.restart_with(&[swapped, format!("metadata.log.dir={}", dirs[0].display())]);
    assert_all_read_back(&broker, &topic, &acked, "with metadata.log.dir");
}

/// Kafka's `metadata.log.dir` outside `log.dirs`: the metadata log and the node's
/// `meta.properties` there, no partition; every partition in `log.dirs`, which alone are the
/// node's log directories (DescribeLogDirs). A kill -9 loses nothing; a misspelt
/// `metadata.log.dir` is refused before anything is written, naming where the node ran.
#[test]
fn a_metadata_log_dir_of_its_own_holds_the_metadata_log_alone() {
    let meta = tempfile::Builder::new()
        .prefix("gregor-e2e-metadata-")
        .tempdir()
        .expect("tempdir");
    let set = format!("metadata.log.dir={}", meta.path().display());
    let mut broker = Broker::start_with_log_dirs(1, &[&set]);
    let dirs = broker.log_dirs();
    let topic = unique_topic("jbod-metadata");
    CONFLUENT.create_topic(&broker, &topic, 4);
    let acked = CONFLUENT.produce(&broker, &topic, 200, 100, "none");
    assert_eq!(acked.len(), 200, "every record acknowledged");

    assert!(meta.path().join("__cluster_metadata").is_dir());
    assert!(partitions_in(meta.path(), &topic).is_empty());
    let placed: Vec<BTreeSet<i32>> = dirs.iter().map(|d| partitions_in(d, &topic)).collect();
    for (dir, held) in dirs.iter().zip(&placed) {
        assert!(
            !dir.join("__cluster_metadata").exists(),
            "{}",
            dir.display()
        );
        assert_eq!(held.len(), 2, "{} holds {held:?}", dir.display());
    }
    let mut props = vec![meta_properties(meta.path())];
    props.extend(dirs.iter().map(|d| meta_properties(d)));
    let ids: BTreeSet<&String> = props.iter().filter_map(|p| p.get("directory.id")).collect();
    assert_eq!(ids.len(), 3, "distinct directory ids: {props:?}");

    let out = gregor_cli_ok(
        &broker.bootstrap(),
        &["log-dirs", "describe", "--topic", &topic],
    );
    for dir in &dirs {
        assert!(out.contains(&dir.display().to_string()), "{out}");
    }
    assert!(!out.contains(&meta.path().display().to_string()), "{out}");
    let out = gregor_cli_ok(
        &broker.bootstrap(),
        &["configs", "describe", "--broker", "1", "--all"],
    );
    let line = out
        .lines()
        .find(|l| l.contains("metadata.log.dir "))
        .unwrap_or_else(|| panic!("no metadata.log.dir: {out}"));
    assert!(line.contains(&meta.path().display().to_string()), "{out}");

    broker.restart();
    assert_all_read_back(&broker, &topic, &acked, "after kill -9");
    let status = broker.stop();
    assert!(status.success());

    // metadata.log.dir misspelt: refused, nothing written there.
    let misspelt = meta.path().with_extension("typo");
    let log_dirs = dirs
        .iter()
        .map(|d| d.display().to_string())
        .collect::<Vec<_>>()
        .join(",");
    let refusal = refused_start(&[
        "--set",
        &format!("log.dirs={log_dirs}"),
        "--set",
        &format!("metadata.log.dir={}", misspelt.display()),
    ]);
    assert!(
        refusal.output.contains(&format!(
            "the metadata.log.dir {} holds no meta.properties, but the log directory {} has run",
            misspelt.display(),
            dirs[0].display()
        )),
        "{}",
        refusal.output
    );
    assert!(!misspelt.join("meta.properties").exists());

    broker.restart();
    assert_all_read_back(&broker, &topic, &acked, "after the refused start");
}

/// Kafka's `kafka-reassign-partitions.sh` with `log_dirs` in its plan moves a partition's log
/// to the other directory (AlterReplicaLogDirs) under its `--replica-alter-log-dirs-throttle`;
/// `--verify` sees the move in progress, then complete (through DescribeLogDirs), and every
/// record is read back after it and after a restart.
#[test]
fn kafka_reassign_partitions_moves_a_log_between_directories() {
    let mut broker = Broker::start_with_log_dirs(1, &[]);
    let dirs = broker.log_dirs();
    let topic = unique_topic("jbod-move");
    CONFLUENT.create_topic(&broker, &topic, 2);
    // About 2 MB in each partition, copied in chunks of up to 1 MiB.
    let mut acked = CONFLUENT.produce(&broker, &topic, 4000, 1000, "none");
    assert_eq!(acked.len(), 4000);
    let from = dirs
        .iter()
        .position(|d| partitions_in(d, &topic).contains(&0))
        .expect("t-0 on disk");
    let to = &dirs[1 - from];

    let toolbox = Toolbox::installed();
    let scratch = tempfile::tempdir().expect("tempdir");
    let plan = scratch.path().join("plan.json");
    std::fs::write(
        &plan,
        serde_json::json!({
            "version": 1,
            "partitions": [{
                "topic": topic,
                "partition": 0,
                "replicas": [1],
                "log_dirs": [to.display().to_string()],
            }]
        })
        .to_string(),
    )
    .expect("write the plan");
    let bootstrap = broker.bootstrap();
    let reassign = |action: &[&str]| toolbox.reassign_partitions(&bootstrap, &plan, action);
    // Throttled to 1 kB/s, the move stalls after its first chunk: Kafka's tool, however slow
    // to start on a busy machine, sees it under way. Then the throttle is raised (a dynamic
    // broker config) and the move ends.
    let run = reassign(&["--execute", "--replica-alter-log-dirs-throttle", "1000"]);
    let out = run
        .ok()
        .unwrap_or_else(|e| panic!("kafka-reassign-partitions --execute: {e}"));
    assert!(
        out.contains("The replica-alter-dir throttle limit was set to 1000 B/s"),
        "{out}"
    );
    let done = format!("Reassignment of replica {topic}-0-1 completed successfully.");
    let going = format!("Reassignment of replica {topic}-0-1 is still in progress.");
    let verify_until = |want: &str| {
        let deadline = std::time::Instant::now() + Duration::from_secs(90);
        loop {
            let out = reassign(&["--verify"]).transcript();
            if out.contains(want) {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "--verify never said {want:?}: {out}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    verify_until(&going);
    // gregor's own table shows the copy moving in, with offsets still to copy.
    let table = gregor_cli_ok(&bootstrap, &["log-dirs", "describe", "--topic", &topic]);
    assert!(table.contains("offsets to copy"), "{table}");
    gregor_cli_ok(
        &bootstrap,
        &[
            "configs",
            "alter",
            "--broker",
            "1",
            "--set",
            "replica.alter.log.dirs.io.max.bytes.per.second=1000000000",
        ],
    );
    verify_until(&done);
    assert!(partitions_in(to, &topic).contains(&0), "moved");
    assert!(
        !partitions_in(&dirs[from], &topic).contains(&0),
        "source gone"
    );

    // The partition goes on in its new directory.
    acked.extend(CONFLUENT.produce(&broker, &topic, 100, 1000, "none"));
    assert_all_read_back(&broker, &topic, &acked, "after the move");
    let status = broker.stop();
    assert!(status.success());
    broker.restart();
    assert_all_read_back(&broker, &topic, &acked, "after a restart");
    assert!(partitions_in(to, &topic).contains(&0));
    assert!(!partitions_in(&dirs[from], &topic).contains(&0));
}

/// A partition's log on a node with several directories: its segments' bytes, from whichever
/// directory holds it.
fn node_log_bytes(dirs: &[PathBuf], topic: &str, partition: i32) -> Vec<u8> {
    dirs.iter()
        .map(|d| gregor_e2e::cluster_client::log_bytes(d, topic, partition))
        .find(|b| !b.is_empty())
        .unwrap_or_default()
}

/// Three nodes with two log directories each, under an acks=all producer: a replicated topic's
/// replicas spread over each node's directories; partition 0's replica on a follower, then on
/// its leader, moved to the node's other directory while records keep coming; the leader then
/// killed -9 and restarted. Every acknowledged record reads back, and the replicas end
/// byte-identical.
#[test]
fn a_cluster_with_two_log_dirs_per_node_moves_replicas_under_load_and_fails_over() {
    use gregor_e2e::cluster::{Cluster, Role};
    use gregor_e2e::cluster_client::*;

    let mut cluster = Cluster::prepare(&[Role::Combined; 3], &[]);
    let extra: Vec<tempfile::TempDir> = (0..3)
        .map(|_| {
            tempfile::Builder::new()
                .prefix("gregor-cluster-logdir-")
                .tempdir()
                .expect("tempdir")
        })
        .collect();
    let mut dirs: BTreeMap<i32, Vec<PathBuf>> = BTreeMap::new();
    for (id, more) in (1..=3).zip(&extra) {
        let main = cluster.node(id).data_dir().to_path_buf();
        dirs.insert(id, vec![main, more.path().to_path_buf()]);
        cluster.set_log_dirs(id, &[more.path()]);
    }
    cluster.start_nodes(&[1, 2, 3]);
    wait_for_brokers(&cluster, 3);
    let bootstrap = cluster.bootstrap();
    let topic = unique_topic("jbod-cluster");
    create_topic(&bootstrap, &topic, 4, 3, &["min.insync.replicas=2"]);
    wait_for_whole_isrs(&cluster, &bootstrap, &topic, 4, 3, "creation");
    for (id, node_dirs) in &dirs {
        let held: Vec<BTreeSet<i32>> = node_dirs.iter().map(|d| partitions_in(d, &topic)).collect();
        assert!(held.iter().all(|h| !h.is_empty()), "node {id}: {held:?}");
        assert_eq!(
            held.iter().map(BTreeSet::len).sum::<usize>(),
            4,
            "node {id}: {held:?}"
        );
    }

    let scratch = tempfile::tempdir().expect("tempdir");
    let ack_file = scratch.path().join("acked.txt");
    let producer = start_producer(&bootstrap, &topic, &ack_file, 120);
    wait_for_acks(&cluster, &ack_file, 1000, "1000 acks");
    let (_, parts) = describe(&bootstrap, &topic);
    let leader = parts[&0].leader;
    let follower = *parts[&0]
        .replicas
        .iter()
        .find(|&&r| r != leader)
        .expect("a follower");
    for node in [follower, leader] {
        let node_dirs = &dirs[&node];
        let from = node_dirs
            .iter()
            .position(|d| partitions_in(d, &topic).contains(&0))
            .expect("partition 0 on the node");
        let to = node_dirs[1 - from].display().to_string();
        let out = gregor_cli_ok(
            &bootstrap,
            &[
                "log-dirs",
                "move",
                "--broker",
                &node.to_string(),
                "--topic",
                &topic,
                "--partition",
                "0",
                "--to",
                &to,
            ],
        );
        assert!(out.contains(&format!("{topic}-0 is in {to}")), "{out}");
        let before = acked_lines(&ack_file).len();
        wait_for_acks(
            &cluster,
            &ack_file,
            before + 500,
            "500 more acks after a move",
        );
    }

    cluster.kill9(leader);
    let (live, new_leader) = new_leader_after_kill(&cluster, &topic, leader);
    eprintln!("node {leader} killed; node {new_leader} leads partition 0");
    let before = acked_lines(&ack_file).len();
    wait_for_acks(
        &cluster,
        &ack_file,
        before + 500,
        "500 more acks on the new leader",
    );
    cluster.restart(leader);
    wait_for_whole_isrs(&cluster, &live, &topic, 4, 3, "the restart");
    let out = stop_producer(producer);
    let acked = acked_lines(&ack_file);
    eprintln!("crash_producer: {} acknowledged; {out}", acked.len());

    wait_for(
        &cluster,
        "the replicas' logs are byte-identical",
        Duration::from_secs(30),
        || {
            (0..4)
                .all(|p| {
                    let logs: Vec<Vec<u8>> = dirs
                        .values()
                        .map(|d| node_log_bytes(d, &topic, p))
                        .collect();
                    !logs[0].is_empty() && logs.iter().all(|l| l == &logs[0])
                })
                .then_some(())
        },
    );
    assert_acknowledged_readable(&bootstrap, &topic, &acked, "after the moves and the kill");
}

/// KIP-1066's controller half: broker 2 of three cordons every log directory
/// (`cordoned.log.dirs=*`, a dynamic config), its heartbeat tells the controller, and new
/// topics go to brokers 1 and 3 only; a replication factor of 3 is refused while it lasts, and
/// works again once broker 2 is uncordoned.
#[test]
fn a_broker_with_every_log_dir_cordoned_gets_no_new_replicas() {
    use gregor_e2e::cluster::{Cluster, Role};
    use gregor_e2e::cluster_client::*;

    let mut cluster = Cluster::prepare(&[Role::Combined; 3], &[]);
    cluster.start_nodes(&[1, 2, 3]);
    wait_for_brokers(&cluster, 3);
    let bootstrap = cluster.bootstrap();
    let cordon = |change: &[&str]| {
        let mut args = vec!["configs", "alter", "--broker", "2"];
        args.extend_from_slice(change);
        gregor_cli_ok(&bootstrap, &args);
    };
    cordon(&["--set", "cordoned.log.dirs=*"]);
    let fresh = unique_topic("cordoned-broker");
    let mut attempt = 0;
    // The config reaches broker 2 with the image it is in, and the controller with broker 2's
    // next heartbeat: each try is a new topic.
    let placed = wait_for(
        &cluster,
        "a topic placed without broker 2",
        Duration::from_secs(20),
        || {
            attempt += 1;
            let name = format!("{fresh}-{attempt}");
            create_topic(&bootstrap, &name, 6, 2, &[]);
            let (_, parts) = describe(&bootstrap, &name);
            (parts.len() == 6 && parts.values().all(|s| !s.replicas.contains(&2))).then_some(name)
        },
    );
    let (_, parts) = describe(&bootstrap, &placed);
    assert!(parts.values().all(|s| s.replicas.len() == 2), "{parts:?}");
    // Three replicas cannot be placed on the two brokers left.
    let wide = unique_topic("cordoned-wide");
    let create_wide = || {
        let args = ["topics", "create", &wide, "--partitions", "1"];
        let args: Vec<&str> = args
            .into_iter()
            .chain(["--replication-factor", "3"])
            .collect();
        gregor_cli(&bootstrap, &args)
    };
    let (ok, out, err) = create_wide();
    assert!(
        !ok && err.contains("INVALID_REPLICATION_FACTOR"),
        "{out}{err}"
    );
    // Uncordoned, broker 2 takes replicas again.
    cordon(&["--delete", "cordoned.log.dirs"]);
    wait_for(
        &cluster,
        "a replication factor of 3 again",
        Duration::from_secs(20),
        || create_wide().0.then_some(()),
    );
}

/// A node whose metadata log is gone (a lost disk, a wrong directory) starts a new one without
/// its topics. The logs it holds are not deleted: each is moved aside as
/// `<topic>-<partition>.<hex>-stray` with its data, as Kafka keeps its stray logs.
#[test]
fn logs_the_metadata_does_not_name_are_kept_as_strays() {
    let mut broker = Broker::start();
    let topic = unique_topic("stray");
    CONFLUENT.create_topic(&broker, &topic, 2);
    let acked = CONFLUENT.produce(&broker, &topic, 40, 100, "none");
    assert_eq!(acked.len(), 40);
    let status = broker.stop();
    assert!(status.success());
    let data = broker.data_dir().to_path_buf();
    let sizes = |dir: &Path| -> u64 {
        std::fs::read_dir(dir)
            .expect("read")
            .filter_map(|e| e.ok())
            .filter(|e| e.file_name().to_string_lossy().ends_with(".log"))
            .map(|e| e.metadata().map_or(0, |m| m.len()))
            .sum()
    };
    let before: Vec<u64> = (0..2)
        .map(|p| sizes(&data.join(format!("{topic}-{p}"))))
        .collect();
    assert!(before.iter().all(|&b| b > 0), "{before:?}");
    std::fs::remove_dir_all(data.join("__cluster_metadata")).expect("remove the metadata log");

    broker.restart();
    let (ok, out, err) = gregor_cli(&broker.bootstrap(), &["topics", "describe", &topic]);
    assert!(!ok, "the topic is unknown to the new metadata: {out}{err}");
    assert!(partitions_in(&data, &topic).is_empty());
    for (p, size) in before.iter().enumerate() {
        let prefix = format!("{topic}-{p}.");
        let aside: Vec<PathBuf> = std::fs::read_dir(&data)
            .expect("read")
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|d| {
                let name = d.file_name().map(|n| n.to_string_lossy().into_owned());
                name.is_some_and(|n| n.starts_with(&prefix) && n.ends_with("-stray"))
            })
            .collect();
        assert_eq!(aside.len(), 1, "partition {p}: {aside:?}");
        assert_eq!(sizes(&aside[0]), *size, "partition {p} kept whole");
    }
    assert!(
        broker.logs().contains("moved aside as a stray log, kept"),
        "{}",
        broker.logs()
    );
}
