//! Consumer groups with real clients: confluent-kafka (librdkafka) members splitting
//! partitions, rebalancing on leave and on session expiry, with the classic protocol and with
//! KIP-848's (`group.protocol=consumer`), committed offsets that survive a broker kill -9;
//! kafka-python's group consumer and group admin API.
//!
//! The scenarios run in `tests/e2e/python/group_client.py` and `kafka_python_group.py`; these
//! tests check what they report. Members commit synchronously after each record, so a record
//! may be read twice only if a commit of it failed (reported as `commit_failed`).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use gregor_e2e::check::{self, Rec};
use gregor_e2e::client::{CONFLUENT, KAFKA_PYTHON};
use gregor_e2e::{run_python_json, unique_topic, Broker};
use serde_json::Value;

/// Rebalances are immediate unless a test checks the initial delay.
const NO_DELAY: &str = "group.initial.rebalance.delay.ms=0";
/// How long one scenario script may run (its own waits are bounded well below this).
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(150);

fn group_script(broker: &Broker, args: &[&str]) -> Value {
    let bootstrap = broker.bootstrap();
    let mut all = vec![bootstrap.as_str()];
    all.extend_from_slice(args);
    run_python_json("group_client.py", &all, SCRIPT_TIMEOUT)
}

fn ints(v: &Value) -> Vec<i64> {
    v.as_array()
        .unwrap_or_else(|| panic!("not a list: {v}"))
        .iter()
        .map(|x| x.as_i64().unwrap_or_else(|| panic!("not an int: {x}")))
        .collect()
}

/// One record a member read, with the member and the generation (assignment count) it was in.
#[derive(Debug, Clone)]
struct Read {
    member: String,
    generation: i64,
    rec: Rec,
}

fn member_reads(member: &Value) -> Vec<Read> {
    let name = member["name"].as_str().unwrap_or("?").to_string();
    member["records"]
        .as_array()
        .unwrap_or_else(|| panic!("no records in {member}"))
        .iter()
        .map(|r| {
            let a = r.as_array().filter(|a| a.len() == 5);
            let a = a.unwrap_or_else(|| panic!("bad record {r}"));
            Read {
                member: name.clone(),
                generation: a[4].as_i64().expect("generation"),
                rec: Rec {
                    partition: a[0].as_i64().expect("partition") as i32,
                    offset: a[1].as_i64().expect("offset"),
                    key: a[2].as_str().map(str::to_string),
                    value: a[3].as_str().map(str::to_string),
                },
            }
        })
        .collect()
}

fn commit_failures(members: &[Value]) -> BTreeSet<(i32, i64)> {
    members
        .iter()
        .flat_map(|m| m["commit_failed"].as_array().cloned().unwrap_or_default())
        .map(|f| {
            (
                f[0].as_i64().expect("partition") as i32,
                f[1].as_i64().expect("offset"),
            )
        })
        .collect()
}

/// Checks the reads of a group's members:
/// - no member reads a record twice within one generation;
/// - every record read is one that was acknowledged, with the same key and value;
/// - every acknowledged record (of `delivered`) is read;
/// - a record is read more than once overall only if a commit of it failed.
///
/// Returns the number of distinct records read.
fn check_group_reads(members: &[Value], delivered: &[Rec]) -> usize {
    let acked: HashMap<(i32, i64), &Rec> = delivered
        .iter()
        .map(|r| ((r.partition, r.offset), r))
        .collect();
    let failed = commit_failures(members);
    let mut seen: BTreeMap<(i32, i64), Vec<(String, i64)>> = BTreeMap::new();
    for m in members {
        let mut in_generation: BTreeSet<(i64, i32, i64)> = BTreeSet::new();
        for r in member_reads(m) {
            let at = (r.rec.partition, r.rec.offset);
            assert!(
                in_generation.insert((r.generation, at.0, at.1)),
                "{} read partition {} offset {} twice in its generation {}",
                r.member,
                at.0,
                at.1,
                r.generation
            );
            if let Some(a) = acked.get(&at) {
                assert_eq!(
                    (&r.rec.key, &r.rec.value),
                    (&a.key, &a.value),
                    "partition {} offset {}: read back differs from what was acknowledged",
                    at.0,
                    at.1
                );
            }
            seen.entry(at).or_default().push((r.member, r.generation));
        }
    }
    for (at, readers) in &seen {
        if readers.len() > 1 {
            assert!(
                failed.contains(at),
                "partition {} offset {} delivered {} times ({readers:?}) although its commit \
                 succeeded",
                at.0,
                at.1,
                readers.len()
            );
        }
    }
    let missing: Vec<_> = acked.keys().filter(|k| !seen.contains_key(k)).collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged records never delivered to the group, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    seen.len()
}

/// The final assignments: each member has at least one partition, disjoint, covering all.
fn check_split(doc: &Value, assignments: &[Vec<i64>]) {
    let all = ints(&doc["partitions"]);
    let mut union: Vec<i64> = assignments.iter().flatten().copied().collect();
    union.sort_unstable();
    assert!(
        assignments.iter().all(|a| !a.is_empty()),
        "a member has no partition: {assignments:?}"
    );
    assert_eq!(
        union, all,
        "assignments {assignments:?} are not a disjoint cover of {all:?}"
    );
}

fn setup_topic(broker: &Broker, partitions: i32, count: usize) -> (String, Vec<Rec>) {
    let topic = unique_topic("grp");
    CONFLUENT.create_topic(broker, &topic, partitions);
    let delivered = CONFLUENT.produce(broker, &topic, count, 100, "none");
    assert_eq!(
        check::partitions_used(&delivered),
        partitions as usize,
        "records on every partition"
    );
    (topic, delivered)
}

/// Runs `split` for `members` members of `group` and checks it; returns the document.
fn split_and_check(
    broker: &Broker,
    topic: &str,
    group: &str,
    members: usize,
    delivered: &[Rec],
    extra: &[&str],
) -> Value {
    let expect = delivered.len().to_string();
    let m = members.to_string();
    let mut args = vec!["split", topic, group, "--expect", &expect, "--members", &m];
    args.extend_from_slice(extra);
    let doc = group_script(broker, &args);
    let reports = doc["members"].as_array().expect("members").clone();
    let finals: Vec<Vec<i64>> = reports.iter().map(|r| ints(&r["assignment"])).collect();
    check_split(&doc, &finals);
    let distinct = check_group_reads(&reports, delivered);
    assert_eq!(distinct, delivered.len(), "{group}: distinct records read");
    doc
}

/// Two members of one group split a 4-partition topic, and read every record once between them.
#[test]
fn two_members_split_partitions_and_read_each_record_once() {
    let broker = Broker::start_with(&[NO_DELAY]);
    let (topic, delivered) = setup_topic(&broker, 4, 1000);
    split_and_check(&broker, &topic, "g-split", 2, &delivered, &[]);
}

/// With the default `group.initial.rebalance.delay.ms` (3 s), two members that start together
/// land in the first generation together: one assignment each, after at least the delay (Kafka
/// extends it by up to another delay while new members keep joining, so about 3 to 6 s).
#[test]
fn initial_rebalance_delay_puts_members_starting_together_in_one_generation() {
    let broker = Broker::start();
    let (topic, delivered) = setup_topic(&broker, 4, 400);
    let doc = split_and_check(&broker, &topic, "g-delay", 2, &delivered, &[]);
    for m in doc["members"].as_array().expect("members") {
        // Before the members close (the first one to close makes the other rebalance).
        let history = doc["history_at_end"][m["name"].as_str().expect("name")]
            .as_array()
            .expect("history_at_end");
        let assigns: Vec<&Value> = history.iter().filter(|h| h[1] == "assign").collect();
        assert_eq!(
            assigns.len(),
            1,
            "{}: expected one assignment (both members in the first generation), history \
             {history:?}",
            m["name"]
        );
        // One generation: the member read exactly the records of its own partitions.
        let own: BTreeSet<i64> = ints(&assigns[0][2]).into_iter().collect();
        let reads = member_reads(m);
        let want = delivered
            .iter()
            .filter(|r| own.contains(&(r.partition as i64)))
            .count();
        assert!(
            reads
                .iter()
                .all(|r| own.contains(&(r.rec.partition as i64))),
            "{}: read records outside its partitions {own:?}",
            m["name"]
        );
        assert_eq!(reads.len(), want, "{}: records read", m["name"]);
        let at = assigns[0][0].as_f64().expect("time");
        assert!(
            at >= 2.0,
            "{}: assigned {at:.3}s after subscribing, before group.initial.rebalance.delay.ms \
             (3000) elapsed",
            m["name"]
        );
    }
}

/// Two groups on the same topic each get every record (publish/subscribe).
#[test]
fn second_group_gets_every_record_too() {
    let broker = Broker::start_with(&[NO_DELAY]);
    let (topic, delivered) = setup_topic(&broker, 4, 600);
    split_and_check(&broker, &topic, "g-first", 2, &delivered, &[]);
    split_and_check(&broker, &topic, "g-second", 2, &delivered, &[]);
}

/// A member that closes (LeaveGroup): the survivor gets every partition at once (no session
/// timeout wait) and reads new records on all of them.
#[test]
fn member_leaving_hands_its_partitions_to_the_survivor() {
    let broker = Broker::start_with(&[NO_DELAY]);
    let (topic, delivered) = setup_topic(&broker, 4, 400);
    let doc = group_script(&broker, &["leave", &topic, "g-leave", "--expect", "400"]);
    let reports = doc["members"].as_array().expect("members").clone();
    let split: Vec<Vec<i64>> = ["survivor", "leaver"]
        .iter()
        .map(|m| ints(&doc["split"][m]))
        .collect();
    check_split(&doc, &split);
    let all = ints(&doc["partitions"]);
    assert_eq!(
        ints(&reports[0]["assignment"]),
        all,
        "survivor's final assignment"
    );
    let took = doc["reassigned_after_s"]
        .as_f64()
        .expect("reassigned_after_s");
    assert!(
        took < 5.0,
        "survivor reassigned {took}s after the leave: LeaveGroup should trigger the rebalance \
         at once (session.timeout.ms is 10 s)"
    );
    // The 400 produced before plus the 40 produced after the leave, each read (once, unless a
    // commit of it failed).
    let distinct = check_group_reads(&reports, &delivered);
    let extra = doc["extra"].as_u64().expect("extra") as usize;
    assert_eq!(distinct, delivered.len() + extra, "distinct records read");
    // The survivor read, in its last generation, records of partitions the leaver had.
    let survivor = member_reads(&reports[0]);
    let last_gen = survivor.iter().map(|r| r.generation).max().unwrap_or(0);
    let leaver_parts: BTreeSet<i64> = ints(&doc["leaver_partitions"]).into_iter().collect();
    assert!(
        survivor
            .iter()
            .any(|r| r.generation == last_gen && leaver_parts.contains(&(r.rec.partition as i64))),
        "the survivor read nothing from the leaver's partitions {leaver_parts:?} after the leave"
    );
}

/// A member process killed with SIGKILL (no LeaveGroup): the broker expires it after its
/// session timeout (6 s) and the survivor gets every partition.
#[test]
fn killed_member_expires_after_session_timeout() {
    let broker = Broker::start_with(&[NO_DELAY]);
    let (topic, _) = setup_topic(&broker, 4, 100);
    let doc = group_script(
        &broker,
        &[
            "kill",
            &topic,
            "g-kill",
            "--session-timeout-ms",
            "6000",
            "--wait",
            "30",
        ],
    );
    let during = ints(&doc["survivor_during_split"]);
    let all = ints(&doc["partitions"]);
    assert!(
        !during.is_empty() && during.len() < all.len(),
        "survivor during the split: {during:?}"
    );
    assert_eq!(ints(&doc["survivor"]["assignment"]), all, "after expiry");
    let took = doc["reassigned_after_s"]
        .as_f64()
        .expect("reassigned_after_s");
    assert!(
        took >= 4.0,
        "the survivor had every partition {took}s after the kill: the member was dropped well \
         before its 6 s session timeout"
    );
}

/// The broker settings of the KIP-848 tests: members heartbeat every 500 ms, so the
/// revocations and assignments of a rebalance reach them quickly.
const CONSUMER_PROTOCOL_HEARTBEAT: &str = "group.consumer.heartbeat.interval.ms=500";
const CONSUMER_PROTOCOL: [&str; 2] = ["--group-protocol", "consumer"];

/// KIP-848 (`group.protocol=consumer`): two confluent-kafka members split a 4-partition topic
/// by the broker's assignor and read every record once between them; `gregor groups describe`
/// then shows the group (ConsumerGroupDescribe), the assignor it got (the first of the broker's
/// `group.consumer.assignors`, range here; librdkafka names none) and its committed offsets.
#[test]
fn consumer_protocol_members_split_partitions_and_read_each_record_once() {
    let broker = Broker::start_with(&[
        CONSUMER_PROTOCOL_HEARTBEAT,
        "group.consumer.assignors=range,uniform",
    ]);
    let (topic, delivered) = setup_topic(&broker, 4, 1000);
    split_and_check(
        &broker,
        &topic,
        "g-kip848-split",
        2,
        &delivered,
        &CONSUMER_PROTOCOL,
    );
    let out = std::process::Command::new(gregor_e2e::broker::gregor_bin())
        .args([
            "groups",
            "describe",
            "--bootstrap-server",
            &broker.bootstrap(),
            "g-kip848-split",
        ])
        .output()
        .expect("gregor groups describe");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "gregor groups describe: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("State: Empty")
            && stdout.contains("ProtocolType: consumer")
            && stdout.contains("Protocol: range"),
        "{stdout}"
    );
    // Every partition's committed offset is its log end: nothing left to read.
    let lags: Vec<&str> = stdout
        .lines()
        .filter(|l| l.starts_with(topic.as_str()))
        .filter_map(|l| l.split_whitespace().nth(4))
        .collect();
    assert_eq!(lags, vec!["0"; 4], "{stdout}");
}

/// KIP-848: a member that closes (a heartbeat with epoch -1) hands its partitions to the
/// survivor at once, without waiting for its session to expire.
#[test]
fn consumer_protocol_member_leaving_hands_its_partitions_to_the_survivor() {
    let broker = Broker::start_with(&[CONSUMER_PROTOCOL_HEARTBEAT]);
    let (topic, delivered) = setup_topic(&broker, 4, 400);
    let mut args = vec!["leave", &topic, "g-kip848-leave", "--expect", "400"];
    args.extend_from_slice(&CONSUMER_PROTOCOL);
    let doc = group_script(&broker, &args);
    let reports = doc["members"].as_array().expect("members").clone();
    let all = ints(&doc["partitions"]);
    assert_eq!(
        ints(&reports[0]["assignment"]),
        all,
        "survivor's final assignment"
    );
    let took = doc["reassigned_after_s"]
        .as_f64()
        .expect("reassigned_after_s");
    assert!(
        took < 5.0,
        "survivor reassigned {took}s after the leave (the session timeout is 45 s)"
    );
    let distinct = check_group_reads(&reports, &delivered);
    let extra = doc["extra"].as_u64().expect("extra") as usize;
    assert_eq!(distinct, delivered.len() + extra, "distinct records read");
}

/// KIP-848: a member killed with SIGKILL is fenced once `group.consumer.session.timeout.ms`
/// (6 s here) passes without its heartbeat (the broker's tick), and the survivor gets every
/// partition.
#[test]
fn consumer_protocol_killed_member_is_fenced_after_the_session_timeout() {
    let broker = Broker::start_with(&[
        CONSUMER_PROTOCOL_HEARTBEAT,
        "group.consumer.session.timeout.ms=6000",
    ]);
    let (topic, _) = setup_topic(&broker, 4, 100);
    let mut args = vec!["kill", &topic, "g-kip848-kill", "--wait", "30"];
    args.extend_from_slice(&CONSUMER_PROTOCOL);
    let doc = group_script(&broker, &args);
    let during = ints(&doc["survivor_during_split"]);
    let all = ints(&doc["partitions"]);
    assert!(
        !during.is_empty() && during.len() < all.len(),
        "survivor during the split: {during:?}"
    );
    assert_eq!(ints(&doc["survivor"]["assignment"]), all, "after expiry");
    let took = doc["reassigned_after_s"]
        .as_f64()
        .expect("reassigned_after_s");
    assert!(
        took >= 4.0,
        "the survivor had every partition {took}s after the kill: the member was fenced well \
         before its 6 s session timeout"
    );
}

/// Parses the `committed` map of a script: partition → offset (negative = none).
fn committed(doc: &Value) -> BTreeMap<i32, i64> {
    doc["committed"]
        .as_object()
        .unwrap_or_else(|| panic!("no committed map in {doc}"))
        .iter()
        .map(|(p, o)| (p.parse().expect("partition"), o.as_i64().expect("offset")))
        .collect()
}

/// Offsets committed (synchronously) survive kill -9 of the broker: after a restart a new
/// member of the group resumes exactly after them.
#[test]
fn committed_offsets_survive_broker_kill9_and_restart() {
    committed_offsets_survive_kill9(&[NO_DELAY], "g-durable", &[]);
}

/// The same with KIP-848 (`group.protocol=consumer`): the consumer group's records and its
/// offsets are loaded again after the kill, and the group resumes where it committed.
#[test]
fn consumer_protocol_committed_offsets_survive_broker_kill9_and_restart() {
    committed_offsets_survive_kill9(
        &[CONSUMER_PROTOCOL_HEARTBEAT],
        "g-kip848-durable",
        &CONSUMER_PROTOCOL,
    );
}

/// One group consumes 500 records and commits them; kill -9, restart; the group's second run
/// resumes at the committed offsets and the two runs read every record exactly once.
fn committed_offsets_survive_kill9(sets: &[&str], group: &str, extra: &[&str]) {
    let mut broker = Broker::start_with(sets);
    let (topic, delivered) = setup_topic(&broker, 4, 1000);
    let mut args = vec!["consume-commit", &topic, group, "--count", "500"];
    args.extend_from_slice(extra);
    let first = group_script(&broker, &args);
    let first_recs = check::records(&first, "records");
    assert_eq!(first_recs.len(), 500, "records read before the kill");
    assert!(
        first["commit_failed"]
            .as_array()
            .is_some_and(|a| a.is_empty()),
        "commits failed: {}",
        first["commit_failed"]
    );
    // What the group committed = one past the last record read, per partition.
    let mut want: BTreeMap<i32, i64> = BTreeMap::new();
    for r in &first_recs {
        let e = want.entry(r.partition).or_insert(0);
        *e = (*e).max(r.offset + 1);
    }
    let before = committed(&first);
    for (p, o) in &want {
        assert_eq!(before.get(p), Some(o), "committed offset of partition {p}");
    }

    broker.kill9();
    broker.restart();

    let second = group_script(&broker, &args);
    let second_recs = check::records(&second, "records");
    let mut first_read: BTreeMap<i32, i64> = BTreeMap::new();
    for r in &second_recs {
        first_read.entry(r.partition).or_insert(r.offset);
    }
    for (p, o) in &first_read {
        assert_eq!(
            *o,
            want.get(p).copied().unwrap_or(0),
            "partition {p}: after the restart the group resumed at offset {o}, committed \
             before the kill: {:?}",
            want.get(p)
        );
    }
    let mut all = first_recs.clone();
    all.extend(second_recs);
    all.sort_by_key(|r| (r.partition, r.offset));
    let mut expected = delivered.clone();
    expected.sort_by_key(|r| (r.partition, r.offset));
    let at = |v: &[Rec]| {
        v.iter()
            .map(|r| (r.partition, r.offset))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        at(&all),
        at(&expected),
        "the two runs together read every record exactly once"
    );
}

/// A standalone consumer (assign, no subscribe) commits offsets under a group id and reads them
/// back, on the same and on a fresh consumer.
#[test]
fn standalone_consumer_commits_and_fetches_offsets() {
    let broker = Broker::start_with(&[NO_DELAY]);
    let (topic, _) = setup_topic(&broker, 2, 50);
    let doc = group_script(
        &broker,
        &[
            "standalone-commit",
            &topic,
            "g-standalone",
            "--offsets",
            "0:5,1:7",
        ],
    );
    let want = serde_json::json!({"0": 5, "1": 7});
    assert_eq!(doc["errors"], serde_json::json!([]), "{doc}");
    assert_eq!(
        doc["committed"], want,
        "committed() on the committing consumer"
    );
    assert_eq!(
        doc["committed_fresh"], want,
        "committed() on a new consumer"
    );
}

/// kafka-python: a group consumer reads and commits; KafkaAdminClient lists and describes the
/// group and its committed offsets, then deletes it once empty.
#[test]
fn kafka_python_group_consumer_and_group_admin() {
    let broker = Broker::start_with(&[NO_DELAY]);
    let topic = unique_topic("grp-kp");
    let group = "g-kafka-python";
    KAFKA_PYTHON.create_topic(&broker, &topic, 3);
    let delivered = KAFKA_PYTHON.produce(&broker, &topic, 300, 100, "none");
    let bootstrap = broker.bootstrap();
    let doc = run_python_json(
        "kafka_python_group.py",
        &[&bootstrap, &topic, group, "--expect", "300"],
        SCRIPT_TIMEOUT,
    );
    let consumed = check::records(&doc, "records");
    let mut sorted = consumed.clone();
    sorted.sort_by_key(|r| (r.partition, r.offset));
    check::assert_same_records(300, &delivered, &sorted);
    assert_eq!(ints(&doc["assignment"]), vec![0, 1, 2], "assignment");

    let mut high: BTreeMap<i32, i64> = BTreeMap::new();
    for r in &delivered {
        let e = high.entry(r.partition).or_insert(0);
        *e = (*e).max(r.offset + 1);
    }

    // Listed, with protocol type "consumer".
    let listed = doc["list_groups"]
        .as_array()
        .unwrap_or_else(|| panic!("list_groups failed: {}", doc["list_groups_error"]));
    let entry = listed
        .iter()
        .find(|g| g["group_id"] == group)
        .unwrap_or_else(|| panic!("{group} not in list_groups: {listed:?}"));
    assert_eq!(entry["protocol_type"], "consumer", "list_groups: {entry}");

    // Described: Stable, one member, the consumer protocol.
    let described = &doc["describe_groups"][group];
    assert!(
        described.is_object(),
        "describe_groups failed: {} / {}",
        doc["describe_groups"],
        doc["describe_groups_error"]
    );
    assert_eq!(described["error"], Value::Null, "{described}");
    assert_eq!(described["group_state"], "Stable", "{described}");
    assert_eq!(described["protocol_type"], "consumer", "{described}");
    let members = described["members"].as_array().expect("members");
    assert_eq!(members.len(), 1, "members: {members:?}");

    // Committed offsets = the high watermarks.
    let offsets = doc["list_group_offsets"][group]
        .as_object()
        .unwrap_or_else(|| {
            panic!(
                "list_group_offsets failed: {} / {}",
                doc["list_group_offsets"], doc["list_group_offsets_error"]
            )
        });
    for (p, hw) in &high {
        let got = &offsets[&format!("{topic}:{p}")]["offset"];
        assert_eq!(got.as_i64(), Some(*hw), "committed offset of partition {p}");
    }

    // After close: Empty; deletable; then no longer listed.
    let after = &doc["describe_after_close"][group];
    assert_eq!(after["group_state"], "Empty", "after close: {}", doc);
    // kafka-python 3: {group_id: "OK" | error class name}.
    assert_eq!(
        doc["delete_groups"][group], "OK",
        "delete_groups: {} / {}",
        doc["delete_groups"], doc["delete_groups_error"]
    );
    let after_delete = doc["list_after_delete"]
        .as_array()
        .expect("list_after_delete");
    assert!(
        after_delete.iter().all(|g| g["group_id"] != group),
        "{group} still listed after delete: {after_delete:?}"
    );
}

/// Rewrites a stopped broker's data directory into the layout of the single-node versions
/// before the metadata quorum: topics listed in `gregor-metadata.json` (with `cluster_id`), no
/// `__cluster_metadata`, no `meta.properties`, no leader-epoch checkpoints, no topic ids in the
/// partition directories (`partition.metadata`). The segment files are the same in both
/// versions.
fn make_legacy_data_dir(dir: &std::path::Path, cluster_id: &str) {
    let mut topics: BTreeMap<String, i32> = BTreeMap::new();
    for entry in std::fs::read_dir(dir).expect("data dir").flatten() {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().to_string();
        if name == "__cluster_metadata" {
            std::fs::remove_dir_all(&path).expect("remove the metadata quorum's dir");
            continue;
        }
        if !path.is_dir() {
            continue;
        }
        let _ = std::fs::remove_file(path.join("leader-epoch-checkpoint"));
        let _ = std::fs::remove_file(path.join("partition.metadata"));
        let (topic, partition) = name.rsplit_once('-').expect("topic-partition");
        let p: i32 = partition.parse().expect("partition number");
        let count = topics.entry(topic.to_string()).or_insert(0);
        *count = (*count).max(p + 1);
    }
    let _ = std::fs::remove_file(dir.join("meta.properties"));
    let mut json = serde_json::Map::new();
    for (name, partitions) in &topics {
        let mut configs = serde_json::Map::new();
        if name == "__consumer_offsets" {
            configs.insert("cleanup.policy".into(), "compact".into());
        }
        json.insert(
            name.clone(),
            serde_json::json!({
                "name": name,
                "id": format!("00000000-0000-4000-8000-{:012}", json.len() + 1),
                "partitions": partitions,
                "replication_factor": 1,
                "configs": configs,
            }),
        );
    }
    let doc = serde_json::json!({ "cluster_id": cluster_id, "topics": json });
    std::fs::write(
        dir.join("gregor-metadata.json"),
        serde_json::to_vec_pretty(&doc).expect("json"),
    )
    .expect("write the old topic list");
}

/// A data directory written by the single-node versions (topic list in a JSON file) starts
/// under the metadata quorum with its topics, records and committed offsets: a group resumes
/// exactly after what it committed, every record is read exactly once, and the cluster id is
/// kept.
#[test]
fn a_single_node_data_dir_of_the_previous_version_starts_with_everything_intact() {
    let mut broker = Broker::start_with(&[NO_DELAY]);
    let (topic, delivered) = setup_topic(&broker, 3, 600);
    let first = group_script(
        &broker,
        &["consume-commit", &topic, "g-upgrade", "--count", "300"],
    );
    let first_recs = check::records(&first, "records");
    assert_eq!(first_recs.len(), 300);
    let status = broker.stop();
    assert!(status.success(), "clean stop: {status:?}");

    let legacy_id = "LegacyClusterId0000000";
    make_legacy_data_dir(broker.data_dir(), legacy_id);
    broker.restart();
    let props = std::fs::read_to_string(broker.data_dir().join("meta.properties"))
        .expect("meta.properties written at the upgrade");
    assert!(
        props.contains(&format!("cluster.id={legacy_id}")),
        "{props}"
    );
    assert!(broker
        .data_dir()
        .join("gregor-metadata.json.migrated")
        .exists());

    let second = group_script(
        &broker,
        &["consume-commit", &topic, "g-upgrade", "--count", "300"],
    );
    let mut all = first_recs;
    all.extend(check::records(&second, "records"));
    all.sort_by_key(|r| (r.partition, r.offset));
    let mut expected = delivered;
    expected.sort_by_key(|r| (r.partition, r.offset));
    let key = |v: &[Rec]| {
        v.iter()
            .map(|r| (r.partition, r.offset, r.value.clone()))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        key(&all),
        key(&expected),
        "after the upgrade the group resumed at its committed offsets and read the rest"
    );
    // The imported topics survive a second restart (they now live in the metadata log).
    broker.kill9();
    broker.restart();
    let third = group_script(
        &broker,
        &["consume-commit", &topic, "g-upgrade-2", "--count", "600"],
    );
    assert_eq!(check::records(&third, "records").len(), 600);
}
