//! Share groups (KIP-932, "queues for Kafka") end to end, with Apache Kafka's own
//! `KafkaShareConsumer` (`tests/interop/java/ShareLoop.java`), `kafka-configs.sh` and
//! `kafka-share-groups.sh`. Each scenario runs against gregor and, where the harness can, the
//! same against a real Apache Kafka broker (the toolbox's jars, `kafka_peer`), which is the
//! reference: a scenario that fails on Kafka is a wrong test.
//!
//! - `queue_semantics_*`: two share consumers of one group (implicit acknowledgement) share a
//!   2-partition topic's 3000 records: each record delivered and accepted exactly once across
//!   both, both got some; a second group gets every record too.
//! - `release_and_reject_*` (explicit acknowledgement): a released record comes back with
//!   delivery count 2, a rejected one never, one released on every delivery is archived after
//!   the delivery count limit (5).
//! - `renew_and_record_limit_*` (ShareFetch/ShareAcknowledge v2): records renewed
//!   (AcknowledgeType.RENEW, KIP-1222) every 0.8 s under a 2 s acquisition lock stay with
//!   their consumer for over 3 s, delivery count 1, then are accepted; with
//!   `share.acquire.mode=record_limit` (KIP-1206) no poll returns more than max.poll.records.
//! - `a_killed_consumers_records_come_back_*`: a consumer killed -9 while it holds records
//!   under a 60 s acquisition lock; the broker ends its share session with its connection and
//!   another member of the group gets the records within seconds.
//! - `kafka_share_groups_tool_*`: `kafka-share-groups.sh` --list, --describe (offsets,
//!   --members, --state), --reset-offsets --to-earliest --execute and the redelivery it brings,
//!   --delete; the tables' columns are Kafka's.
//! - `console_share_consumer_and_perf_test_*`: Kafka's `kafka-console-share-consumer.sh`
//!   reads records and releases them, then reads every record (the released ones again) and
//!   rejects them, leaving nothing; `kafka-share-consumer-perf-test.sh` with two consumers
//!   reads a whole topic.
//! - `a_killed_and_restarted_broker_keeps_acknowledgements_*`: the broker killed -9 and
//!   restarted while a consumer runs: no record is delivered again after its acceptance was
//!   answered, none is lost (an acceptance in flight at the kill may be applied with its
//!   answer lost: such records must never come again and the group's start offset, read with
//!   `kafka-share-groups.sh --describe`, must pass them).
//! - `cluster_leader_killed_keeps_acknowledgements`: the same through a partition leader's
//!   kill -9 in a 3-node gregor cluster, replication factor 3 (gregor only: the harness has no
//!   Kafka cluster).
//! - `dead_letter_queue_*` (KIP-1191): a rejected record and one released past the delivery
//!   count limit are written to the group's DLQ topic with Kafka's `__dlq.errors.*` headers,
//!   key and value copied; a DLQ topic without `errors.deadletterqueue.group.enable` or one
//!   that does not exist gets nothing. The DLQ records read back from Kafka and from gregor
//!   are compared.
//! - `cluster_dead_letter_queue_at_another_leader`: the DLQ partition led by another node of a
//!   3-node gregor cluster than the source partition: the records reach it.
//! - `gregor_share_groups_cli_on_gregor`: gregor's own `gregor configs --group` and `gregor
//!   share-groups` (describe offsets with lag, members, state; reset-offsets dry run and
//!   --execute; delete-offsets; delete).
//!
//! Every broker runs with `share::SHARE_BROKER_SETTINGS` (1 s record locks allowed, 1 s
//! heartbeats) so that the tests take seconds. Needs the toolbox (`scripts/toolbox`).
//!
//! Run: `cargo test -p gregor-e2e --test share_groups` (after `cargo build -p gregor-cli`).

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet};
use std::panic::{self, AssertUnwindSafe};
use std::sync::{Arc, Mutex, Weak};
use std::thread;
use std::time::{Duration, Instant};

use gregor_e2e::cluster::Cluster;
use gregor_e2e::cluster_client::{describe, wait_for, wait_for_brokers};
use gregor_e2e::kafka_peer::KafkaPeer;
use gregor_e2e::share::{
    accepted, acks, assert_all_accepted, deliveries, errors, positions, produce,
    redelivered_after_ack, set_group_config, share_groups_tool, Pos, Produced, ShareConsumer,
    SHARE_BROKER_SETTINGS,
};
use gregor_e2e::{unique_topic, Broker};
use serde_json::Value;

/// The Kafka peer the tests running now share; started by the first, killed after the last.
fn kafka() -> Arc<KafkaPeer> {
    static SHARED: Mutex<Weak<KafkaPeer>> = Mutex::new(Weak::new());
    let mut shared = SHARED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(peer) = shared.upgrade() {
        return peer;
    }
    let peer = Arc::new(KafkaPeer::start_with(SHARE_BROKER_SETTINGS));
    *shared = Arc::downgrade(&peer);
    peer
}

fn gregor() -> Broker {
    Broker::start_with(SHARE_BROKER_SETTINGS)
}

/// How long a consumer may take to get what a scenario waits for.
const WAIT: Duration = Duration::from_secs(120);

/// Whether the accepted positions in `events` (no error) cover `want`.
fn accepted_all(events: &[Value], want: &BTreeSet<Pos>) -> bool {
    let got = accepted(events);
    want.iter().all(|p| got.contains_key(p))
}

/// What of `want` is not accepted yet in `events` (`None` once all is): how many, the first
/// ones with the last event each had, and the errors seen.
fn not_accepted(events: &[Value], want: &BTreeSet<Pos>) -> Option<String> {
    let got = accepted(events);
    let missing: Vec<&Pos> = want.iter().filter(|p| !got.contains_key(p)).collect();
    if missing.is_empty() {
        return None;
    }
    let last_event = |p: &Pos| {
        events
            .iter()
            .rev()
            .find(|v| {
                v["partition"].as_i64() == Some(i64::from(p.0)) && v["offset"].as_i64() == Some(p.1)
            })
            .map_or_else(|| "never delivered".to_string(), Value::to_string)
    };
    let mut text = format!("{} records not accepted; the first:\n", missing.len());
    for p in missing.iter().take(8) {
        text.push_str(&format!("  {p:?}: {}\n", last_event(p)));
    }
    let errors = errors(events);
    text.push_str(&format!("{} error events", errors.len()));
    for e in errors.iter().rev().take(5) {
        text.push_str(&format!("\n  {e}"));
    }
    Some(text)
}

/// Panics unless `events` hold no error event.
fn assert_no_errors(events: &[Value], who: &str) {
    let errs = errors(events);
    assert!(errs.is_empty(), "{who}: errors:\n{}", errs.join("\n"));
}

// ---------------------------------------------------------------------------------------------
// 1. Queue semantics

#[test]
fn queue_semantics_on_kafka() {
    let peer = kafka();
    queue_semantics(&peer.bootstrap());
}

#[test]
fn queue_semantics_on_gregor() {
    let broker = gregor();
    queue_semantics(&broker.bootstrap());
}

/// Two consumers of one share group (implicit acknowledgement) and 3000 records on 2
/// partitions: each record delivered once (delivery count 1) and accepted once across both,
/// both got some; then a second group's consumer gets all 3000 again.
fn queue_semantics(bootstrap: &str) {
    const COUNT: usize = 3000;
    let topic = unique_topic("share-queue");
    let (group, group2) = (format!("{topic}-g1"), format!("{topic}-g2"));
    // The group's start offset is "latest" by default: set earliest first, with Kafka's tool.
    set_group_config(bootstrap, &group, &["share.auto.offset.reset=earliest"]);
    set_group_config(bootstrap, &group2, &["share.auto.offset.reset=earliest"]);
    // Slow consumers (at most ~1000 records/s each), both in the group before the records are
    // produced, so that each gets a share.
    let slow = [
        "--max-poll-records",
        "100",
        "--poll-sleep-ms",
        "100",
        "--timeout-ms",
        "180000",
    ];
    // The topic first: a consumer's metadata request would create it with one partition.
    produce(bootstrap, &topic, 0, 2, 1, 0);
    let mut c1 = ShareConsumer::start(bootstrap, &topic, &group, "c1", &slow);
    let mut c2 = ShareConsumer::start(bootstrap, &topic, &group, "c2", &slow);
    let produced = produce(bootstrap, &topic, COUNT, 2, 1, 0);
    let want = positions(&produced);
    let deadline = Instant::now() + WAIT;
    loop {
        let mut all = c1.events();
        all.extend(c2.events());
        if accepted_all(&all, &want) {
            break;
        }
        assert!(
            c1.is_running() && c2.is_running(),
            "a consumer exited early\n{}\n{}",
            c1.tail(30),
            c2.tail(30)
        );
        assert!(
            Instant::now() < deadline,
            "not every record accepted within {WAIT:?}: {} of {COUNT}\n{}\n{}",
            accepted(&all).len(),
            c1.tail(30),
            c2.tail(30)
        );
        thread::sleep(Duration::from_millis(200));
    }
    let (e1, e2) = (c1.stop(), c2.stop());
    assert_no_errors(&e1, "c1");
    assert_no_errors(&e2, "c2");
    let (d1, d2) = (deliveries(&e1), deliveries(&e2));
    assert!(
        !d1.is_empty() && !d2.is_empty(),
        "both consumers should get records: c1 {}, c2 {}",
        d1.len(),
        d2.len()
    );
    let mut all = e1.clone();
    all.extend(e2.iter().cloned());
    assert_delivered_once(&produced, &all, &format!("group {group}"));
    eprintln!(
        "queue semantics: c1 got {}, c2 got {} of {COUNT}",
        d1.len(),
        d2.len()
    );

    // Another group: every record again.
    let mut c3 = ShareConsumer::start(
        bootstrap,
        &topic,
        &group2,
        "c3",
        &["--timeout-ms", "180000"],
    );
    c3.wait_for("every record of the second group accepted", WAIT, |e| {
        accepted_all(e, &want)
    });
    let e3 = c3.stop();
    assert_no_errors(&e3, "c3");
    assert_delivered_once(&produced, &e3, &format!("group {group2}"));
}

/// Each record of `produced` delivered exactly once in `events` (delivery count 1, its key)
/// and accepted exactly once, with no error.
fn assert_delivered_once(produced: &[Produced], events: &[Value], what: &str) {
    let keys: BTreeMap<Pos, &str> = produced
        .iter()
        .map(|p| ((p.partition, p.offset), p.key.as_str()))
        .collect();
    let mut seen: BTreeMap<Pos, usize> = BTreeMap::new();
    for d in deliveries(events) {
        let pos = (d.partition, d.offset);
        *seen.entry(pos).or_insert(0) += 1;
        assert_eq!(
            keys.get(&pos).copied(),
            Some(d.key.as_str()),
            "{what}: {d:?} is no record produced there"
        );
        assert_eq!(d.delivery, 1, "{what}: {d:?} delivered more than once");
    }
    let twice: Vec<_> = seen.iter().filter(|(_, &n)| n > 1).collect();
    assert!(
        twice.is_empty(),
        "{what}: delivered more than once: {twice:?}"
    );
    assert_eq!(seen.len(), produced.len(), "{what}: records delivered");
    let acks = acks(events);
    let failed: Vec<_> = acks.iter().filter(|a| a.error.is_some()).collect();
    assert!(
        failed.is_empty(),
        "{what}: acknowledgements failed: {failed:?}"
    );
    let accepted = accepted(events);
    let twice: Vec<_> = accepted.iter().filter(|(_, &n)| n > 1).collect();
    assert!(
        twice.is_empty(),
        "{what}: accepted more than once: {twice:?}"
    );
    assert_all_accepted(produced, &accepted, what);
    assert_eq!(acks.len(), produced.len(), "{what}: acknowledgements");
}

// ---------------------------------------------------------------------------------------------
// 2. Release and reject

#[test]
fn release_and_reject_on_kafka() {
    let peer = kafka();
    release_and_reject(&peer.bootstrap());
}

#[test]
fn release_and_reject_on_gregor() {
    let broker = gregor();
    release_and_reject(&broker.bootstrap());
}

/// Explicit acknowledgement of 30 records on one partition: keys ending in 3 rejected, in 5
/// released once (then accepted), in 7 released on every delivery; every other accepted.
fn release_and_reject(bootstrap: &str) {
    const COUNT: usize = 30;
    let topic = unique_topic("share-release");
    let group = format!("{topic}-g");
    set_group_config(bootstrap, &group, &["share.auto.offset.reset=earliest"]);
    let produced = produce(bootstrap, &topic, COUNT, 1, 1, 0);
    let ends = |p: &Produced, digit: char| p.key.ends_with(digit);
    let always: BTreeSet<Pos> = produced
        .iter()
        .filter(|p| ends(p, '7'))
        .map(|p| (p.partition, p.offset))
        .collect();
    let settled: BTreeSet<Pos> = produced
        .iter()
        .filter(|p| !ends(p, '7'))
        .map(|p| (p.partition, p.offset))
        .collect();
    let mut c = ShareConsumer::start(
        bootstrap,
        &topic,
        &group,
        "explicit",
        &[
            "--mode",
            "explicit",
            "--reject",
            "k[0-9]*3",
            "--release-once",
            "k[0-9]*5",
            "--release-always",
            "k[0-9]*7",
        ],
    );
    // Settled: every other record accepted or rejected, the always-released ones released at
    // their fifth delivery.
    c.wait_for("every record settled", WAIT, |e| {
        let acks = acks(e);
        let done: BTreeSet<Pos> = acks
            .iter()
            .filter(|a| a.error.is_none() && (a.kind == "accept" || a.kind == "reject"))
            .map(|a| (a.partition, a.offset))
            .collect();
        let mut released: BTreeMap<Pos, usize> = BTreeMap::new();
        for a in acks.iter().filter(|a| a.kind == "release") {
            *released.entry((a.partition, a.offset)).or_insert(0) += 1;
        }
        settled.is_subset(&done) && always.iter().all(|p| released.get(p) >= Some(&5))
    });
    // Long enough for an archived record to come back if it were not archived.
    thread::sleep(Duration::from_secs(3));
    let events = c.stop();
    assert_no_errors(&events, "explicit");
    let mut counts: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for d in deliveries(&events) {
        counts.entry(d.key.clone()).or_default().push(d.delivery);
    }
    let mut ack_kinds: BTreeMap<Pos, Vec<String>> = BTreeMap::new();
    for a in acks(&events) {
        assert_eq!(a.error, None, "acknowledgement failed: {a:?}");
        ack_kinds
            .entry((a.partition, a.offset))
            .or_default()
            .push(a.kind.clone());
    }
    for p in &produced {
        let got = counts.get(&p.key).cloned().unwrap_or_default();
        let kinds = ack_kinds
            .get(&(p.partition, p.offset))
            .cloned()
            .unwrap_or_default();
        let (want_counts, want_kinds): (Vec<i64>, Vec<&str>) = if ends(p, '3') {
            (vec![1], vec!["reject"])
        } else if ends(p, '5') {
            (vec![1, 2], vec!["release", "accept"])
        } else if ends(p, '7') {
            (vec![1, 2, 3, 4, 5], vec!["release"; 5])
        } else {
            (vec![1], vec!["accept"])
        };
        assert_eq!(got, want_counts, "delivery counts of {}", p.key);
        assert_eq!(kinds, want_kinds, "acknowledgements of {}", p.key);
    }
}

// ---------------------------------------------------------------------------------------------
// 2b. Renewed acquisition locks and the record_limit acquire mode (v2 of ShareFetch and
// ShareAcknowledge)

#[test]
fn renew_and_record_limit_on_kafka() {
    let peer = kafka();
    renew_and_record_limit(&peer.bootstrap());
}

#[test]
fn renew_and_record_limit_on_gregor() {
    let broker = gregor();
    renew_and_record_limit(&broker.bootstrap());
}

/// 6 records under a 2 s acquisition lock; the explicit consumer renews each the first 4
/// times it is polled, sleeping 0.8 s after each poll, then accepts it (commitSync): over 3 s
/// with the record, yet the lock never ends (every delivery has count 1, the acceptance
/// succeeds).
/// Then another group reads them with record_limit and max.poll.records 2: no poll returns
/// more than 2 records, though the producer wrote them in one batch.
fn renew_and_record_limit(bootstrap: &str) {
    const COUNT: usize = 6;
    const RENEWS: usize = 4;
    let topic = unique_topic("share-renew");
    let group = format!("{topic}-g");
    set_group_config(
        bootstrap,
        &group,
        &[
            "share.auto.offset.reset=earliest",
            "share.record.lock.duration.ms=2000",
        ],
    );
    let produced = produce(bootstrap, &topic, COUNT, 1, 1, 0);
    let mut c = ShareConsumer::start(
        bootstrap,
        &topic,
        &group,
        "renewer",
        &[
            "--mode",
            "explicit",
            "--renew",
            "k.*",
            "--renew-times",
            "4",
            "--poll-sleep-ms",
            "800",
            "--commit",
            "sync",
        ],
    );
    let want = positions(&produced);
    c.wait_for("every record accepted", WAIT, |e| accepted_all(e, &want));
    let events = c.stop();
    assert_no_errors(&events, "renewer");
    for a in acks(&events) {
        assert_eq!(a.error, None, "acknowledgement failed: {a:?}");
    }
    let mut counts: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    for d in deliveries(&events) {
        counts.entry(d.key.clone()).or_default().push(d.delivery);
    }
    for p in &produced {
        let got = counts.get(&p.key).cloned().unwrap_or_default();
        // Polled again after each renewal, always as the first delivery.
        assert_eq!(got, vec![1; RENEWS + 1], "deliveries of {}", p.key);
    }
    let accepts: BTreeMap<Pos, usize> = accepted(&events);
    assert_all_accepted(&produced, &accepts, "renewer");
    // record_limit, in a second group: at most max.poll.records a poll.
    let group = format!("{topic}-limit");
    set_group_config(bootstrap, &group, &["share.auto.offset.reset=earliest"]);
    let mut c = ShareConsumer::start(
        bootstrap,
        &topic,
        &group,
        "limited",
        &["--acquire-mode", "record_limit", "--max-poll-records", "2"],
    );
    c.wait_for("every record accepted", WAIT, |e| accepted_all(e, &want));
    let events = c.stop();
    assert_no_errors(&events, "limited");
    let polls: Vec<i64> = events
        .iter()
        .filter(|e| e["event"] == "poll")
        .filter_map(|e| e["count"].as_i64())
        .collect();
    assert!(!polls.is_empty());
    assert!(
        polls.iter().all(|&n| n <= 2),
        "record_limit: a poll returned more than max.poll.records: {polls:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// 3. A consumer killed while it holds records

#[test]
fn a_killed_consumers_records_come_back_on_kafka() {
    let peer = kafka();
    a_killed_consumers_records_come_back(&peer.bootstrap());
}

#[test]
fn a_killed_consumers_records_come_back_on_gregor() {
    let broker = gregor();
    a_killed_consumers_records_come_back(&broker.bootstrap());
}

/// A consumer takes records and holds them without acknowledging; killed -9 while another
/// member of the group is polling. The broker ends the killed consumer's share session when
/// its connection closes (Kafka 4.4's share session cache listens for disconnects) and
/// releases its records at once: the other member gets them within seconds, long before their
/// acquisition lock (`share.record.lock.duration.ms`, 60 s) or the group's session timeout
/// (45 s) could end, each delivered once to it (delivery count 2); every record is accepted
/// once.
fn a_killed_consumers_records_come_back(bootstrap: &str) {
    const COUNT: usize = 20;
    /// Far below the record lock and the session timeout: only the disconnect explains it.
    const WITHIN: Duration = Duration::from_secs(20);
    let topic = unique_topic("share-kill");
    let group = format!("{topic}-g");
    set_group_config(
        bootstrap,
        &group,
        &[
            "share.auto.offset.reset=earliest",
            "share.record.lock.duration.ms=60000",
            "share.session.timeout.ms=45000",
        ],
    );
    let produced = produce(bootstrap, &topic, COUNT, 1, 1, 0);
    let want = positions(&produced);
    let mut holder = ShareConsumer::start(
        bootstrap,
        &topic,
        &group,
        "holder",
        &["--hold-after", "1", "--hold-ms", "600000"],
    );
    holder.wait_for("holding records", WAIT, |e| {
        e.iter().any(|v| v["event"] == "holding")
    });
    let held: BTreeSet<Pos> = deliveries(&holder.events())
        .iter()
        .map(|d| (d.partition, d.offset))
        .collect();
    assert!(!held.is_empty(), "the holder holds no record");
    // The other member joins and polls (it gets what the holder does not hold) first.
    let mut taker = ShareConsumer::start(bootstrap, &topic, &group, "taker", &[]);
    taker.wait_for("the other member started", WAIT, |e| {
        e.iter().any(|v| v["event"] == "started")
    });
    let not_held: BTreeSet<Pos> = want.difference(&held).copied().collect();
    taker.wait_for("the records not held accepted", WAIT, |e| {
        accepted_all(e, &not_held)
    });
    thread::sleep(Duration::from_secs(3));
    assert!(
        accepted(&taker.events()).keys().all(|p| !held.contains(p)),
        "the other member got held records before the kill"
    );
    holder.kill9();
    let killed_at = Instant::now();
    taker.wait_for("every record accepted by the other member", WAIT, |e| {
        accepted_all(e, &want)
    });
    let took = killed_at.elapsed();
    let events = taker.stop();
    assert_no_errors(&events, "taker");
    let mut seen = BTreeMap::new();
    for d in deliveries(&events) {
        let pos = (d.partition, d.offset);
        let want_count = if held.contains(&pos) {
            HELD_DELIVERY
        } else {
            1
        };
        assert_eq!(
            d.delivery, want_count,
            "{d:?}: the killed consumer held {held:?}"
        );
        *seen.entry(pos).or_insert(0usize) += 1;
    }
    assert_eq!(seen.len(), COUNT, "records the other member got");
    assert!(
        seen.values().all(|&n| n == 1),
        "a record delivered twice to the other member: {seen:?}"
    );
    eprintln!(
        "killed consumer: it held {} records; the other member had all within {took:?}",
        held.len()
    );
    assert!(
        took < WITHIN,
        "the killed consumer's records came back after {took:?}: its session did not end with \
         its connection"
    );
}

/// The delivery count the other member sees for a record the killed consumer held: released
/// when its session ended, a record keeps the delivery it had (Kafka 4.4's
/// `releaseAcquiredRecords`), as when its acquisition lock ends.
const HELD_DELIVERY: i64 = 2;

// ---------------------------------------------------------------------------------------------
// 4. The broker killed and restarted

#[test]
fn a_killed_and_restarted_broker_keeps_acknowledgements_on_kafka() {
    // Its own peer: the shared one must not be killed under the other tests.
    let mut peer = KafkaPeer::start_with(SHARE_BROKER_SETTINGS);
    let bootstrap = peer.bootstrap();
    let run = panic::catch_unwind(AssertUnwindSafe(|| {
        // Kafka restarting from a kill -9 on a loaded machine (log recovery, the share
        // coordinator reloading its state) has taken more than two minutes in CI.
        a_killed_and_restarted_broker_keeps_acknowledgements(&bootstrap, WAIT * 3, || {
            peer.kill9_and_restart()
        })
    }));
    if let Err(failure) = run {
        eprintln!("--- Apache Kafka's log ---\n{}", peer.log_tail(80));
        panic::resume_unwind(failure);
    }
}

#[test]
fn a_killed_and_restarted_broker_keeps_acknowledgements_on_gregor() {
    let mut broker = gregor();
    let bootstrap = broker.bootstrap();
    a_killed_and_restarted_broker_keeps_acknowledgements(&bootstrap, WAIT, || {
        broker.kill9();
        thread::sleep(Duration::from_millis(500));
        broker.restart();
    });
}

/// The broker killed -9 while a share consumer runs (after 300 of 1000 records accepted) and
/// restarted: no record is delivered again after the broker answered its acceptance, and
/// every record is accepted in the end, within `after_restart` of the restart (records in
/// flight at the kill may come again; an acceptance in flight may have been applied with its
/// answer lost, which the group's start offset tells: `wait_all_done`).
fn a_killed_and_restarted_broker_keeps_acknowledgements(
    bootstrap: &str,
    after_restart: Duration,
    mut kill_and_restart: impl FnMut(),
) {
    const COUNT: usize = 1000;
    let topic = unique_topic("share-restart");
    let group = format!("{topic}-g");
    set_group_config(bootstrap, &group, &["share.auto.offset.reset=earliest"]);
    let produced = produce(bootstrap, &topic, COUNT, 2, 1, 0);
    let want = positions(&produced);
    let mut c = ShareConsumer::start(
        bootstrap,
        &topic,
        &group,
        "c",
        &[
            "--max-poll-records",
            "20",
            "--poll-sleep-ms",
            "100",
            "--timeout-ms",
            &(WAIT + after_restart + Duration::from_secs(60))
                .as_millis()
                .to_string(),
        ],
    );
    c.wait_for("300 records accepted", WAIT, |e| accepted(e).len() >= 300);
    assert!(
        accepted(&c.events()).len() < COUNT * 3 / 4,
        "the consumer had most records before the kill: slow it down"
    );
    kill_and_restart();
    let lost = wait_all_done(
        &mut c,
        bootstrap,
        &group,
        &want,
        after_restart,
        "every record accepted after the restart",
    );
    let events = c.stop();
    check_at_least_once(&produced, &events, &lost, "broker killed and restarted");
}

/// The records of `want` not in `got` (accepted in `events`) whose last event is a failed
/// acceptance: the acknowledgement in flight when the broker died, which it may have applied
/// (its state written) without the answer reaching the consumer. Such a record is never
/// delivered again.
fn failed_last(
    events: &[Value],
    want: &BTreeSet<Pos>,
    got: &BTreeMap<Pos, usize>,
) -> BTreeSet<Pos> {
    let mut last: BTreeMap<Pos, bool> = BTreeMap::new();
    for v in events {
        let pos = (
            v["partition"].as_i64().unwrap_or(-1) as i32,
            v["offset"].as_i64().unwrap_or(-1),
        );
        if v["event"] == "record" {
            last.insert(pos, false);
        } else if v["event"] == "ack" {
            let failed = v["type"] == "accept" && !v["error"].is_null();
            last.insert(pos, failed);
        }
    }
    want.iter()
        .filter(|p| !got.contains_key(p) && last.get(p) == Some(&true))
        .copied()
        .collect()
}

/// Each partition's share-partition start offset (SPSO) for `group`, as `kafka-share-groups.sh
/// --describe` prints it; `None` when the run failed or printed no such table.
fn start_offsets(bootstrap: &str, group: &str) -> Option<BTreeMap<i32, i64>> {
    let run = share_groups_tool(bootstrap, &["--describe", "--group", group]);
    let (head, rows) = tables(run.ok().ok()?).into_iter().next()?;
    let partition = head.iter().position(|h| h == "PARTITION")?;
    let start = head.iter().position(|h| h == "START-OFFSET")?;
    rows.iter()
        .map(|r| Some((r.get(partition)?.parse().ok()?, r.get(start)?.parse().ok()?)))
        .collect()
}

/// Waits (at most `timeout`) until every record of `want` is done: accepted by `c` without an
/// error, or its acceptance failed (the broker died before answering), it never came again,
/// and the group's start offset on the broker has passed it, so the broker applied that
/// acceptance. Returns the records done the second way; panics naming `what` when time runs
/// out with a record neither.
fn wait_all_done(
    c: &mut ShareConsumer,
    bootstrap: &str,
    group: &str,
    want: &BTreeSet<Pos>,
    timeout: Duration,
    what: &str,
) -> BTreeSet<Pos> {
    let confirmed: RefCell<BTreeSet<Pos>> = RefCell::new(BTreeSet::new());
    let asked = Cell::new(Instant::now());
    c.wait_explained(what, timeout, |events| {
        let missing = not_accepted(events, want)?;
        let got = accepted(events);
        let failed = failed_last(events, want, &got);
        let open = want.iter().filter(|p| !got.contains_key(p)).count();
        // Ask the broker (a JVM tool run: seconds) only once nothing else is missing, and not
        // more often than every 5 s.
        if failed.len() == open && asked.get().elapsed() >= Duration::from_secs(5) {
            asked.set(Instant::now());
            if let Some(starts) = start_offsets(bootstrap, group) {
                let past: BTreeSet<Pos> = failed
                    .iter()
                    .filter(|(p, o)| starts.get(p).is_some_and(|s| s > o))
                    .copied()
                    .collect();
                if past.len() == failed.len() {
                    *confirmed.borrow_mut() = past;
                    return None;
                }
            }
        }
        Some(format!(
            "{missing}\n{} of them with a failed acceptance as their last event",
            failed.len()
        ))
    });
    confirmed.into_inner()
}

/// The at-least-once checks across a fault: nothing delivered after its acceptance was
/// answered, every record accepted (or, in `lost`, accepted by the broker without the answer
/// reaching the consumer: `wait_all_done`); prints how many came again and the errors on the
/// way.
fn check_at_least_once(produced: &[Produced], events: &[Value], lost: &BTreeSet<Pos>, what: &str) {
    let bad = redelivered_after_ack(events);
    assert!(
        bad.is_empty(),
        "{what}: {} records delivered again after their acceptance was answered:\n{}",
        bad.len(),
        bad[..bad.len().min(10)].join("\n")
    );
    let mut done = accepted(events);
    for p in lost {
        done.entry(*p).or_insert(1);
    }
    assert_all_accepted(produced, &done, what);
    let all = deliveries(events);
    let again = all.iter().filter(|d| d.delivery > 1).count();
    let mut times: BTreeMap<Pos, usize> = BTreeMap::new();
    for d in &all {
        *times.entry((d.partition, d.offset)).or_insert(0) += 1;
    }
    let twice: Vec<&Pos> = times
        .iter()
        .filter(|(_, &n)| n > 1)
        .map(|(p, _)| p)
        .collect();
    let failed_acks = acks(events).iter().filter(|a| a.error.is_some()).count();
    eprintln!(
        "{what}: {} deliveries of {} records ({} delivered more than once, e.g. {:?}; \
         {again} deliveries with a count above 1), {} acknowledgements ({failed_acks} failed; \
         {} accepted by the broker with the answer lost), {} error events",
        all.len(),
        times.len(),
        twice.len(),
        &twice[..twice.len().min(5)],
        acks(events).len(),
        lost.len(),
        errors(events).len()
    );
    for e in errors(events).iter().take(5) {
        eprintln!("  {e}");
    }
}

// ---------------------------------------------------------------------------------------------
// 4b. The dead-letter queue (KIP-1191)

#[test]
fn dead_letter_queue_on_kafka_and_gregor() {
    let peer = kafka();
    let broker = gregor();
    // Both at once: each scenario waits on consumers going idle.
    let (on_kafka, on_gregor) = thread::scope(|s| {
        let kafka = s.spawn(|| dead_letter_queue(&peer.bootstrap(), peer.addr()));
        let gregor = dead_letter_queue(&broker.bootstrap(), broker.addr());
        (kafka.join().expect("the Kafka scenario"), gregor)
    });
    eprintln!("kafka:\n  {}", on_kafka.join("\n  "));
    eprintln!("gregor:\n  {}", on_gregor.join("\n  "));
    assert_eq!(
        on_gregor, on_kafka,
        "gregor's DLQ (left) against Kafka's (right)"
    );
}

/// A 2-partition topic of 6 records and three share groups rejecting `k1` and releasing `k2`
/// on every delivery (delivery count limit 2): the first names a DLQ topic of 3 partitions
/// with `errors.deadletterqueue.group.enable=true` and copies records, the second one without
/// the flag, the third one that does not exist. Returns each DLQ topic's records as lines
/// (partition, key, value, headers; the topic name stood for by `T`); the third topic must
/// not exist (auto-creation is off by default).
fn dead_letter_queue(bootstrap: &str, addr: std::net::SocketAddr) -> Vec<String> {
    use bytes::Buf;
    use gregor_e2e::kafka_tools::Toolbox;
    use gregor_e2e::raw::RawConn;
    use kafka_protocol::records::RecordBatchDecoder;
    let topic = unique_topic("share-dlq");
    produce(bootstrap, &topic, 6, 2, 1, 0);
    let tool = Toolbox::installed();
    let create = |name: &str, flag: bool| {
        let mut args = vec![
            "--bootstrap-server",
            bootstrap,
            "--create",
            "--topic",
            name,
            "--partitions",
            "3",
        ];
        if flag {
            args.extend(["--config", "errors.deadletterqueue.group.enable=true"]);
        }
        let run = tool.run("kafka-topics.sh", &args, None, Duration::from_secs(120));
        assert!(
            run.status.is_some_and(|s| s.success()),
            "create {name}: {run:?}"
        );
    };
    let (flagged, unflagged, missing) = (
        format!("dlq.{topic}"),
        format!("dlq.noflag-{topic}"),
        format!("dlq.missing-{topic}"),
    );
    // Without the broker's prefix (`dlq.`), though flagged.
    let unprefixed = format!("noprefix.{topic}");
    let auto = format!("dlq.auto-{topic}");
    create(&flagged, true);
    create(&unflagged, false);
    create(&unprefixed, true);
    let auto_create = |on: bool| {
        let op = if on {
            [
                "--add-config",
                "errors.deadletterqueue.auto.create.topics.enable=true",
            ]
        } else {
            [
                "--delete-config",
                "errors.deadletterqueue.auto.create.topics.enable",
            ]
        };
        let mut args = vec![
            "--bootstrap-server",
            bootstrap,
            "--alter",
            "--entity-type",
            "brokers",
            "--entity-default",
        ];
        args.extend(op);
        let run = tool.run("kafka-configs.sh", &args, None, Duration::from_secs(120));
        assert!(run.status.is_some_and(|s| s.success()), "{run:?}");
    };
    for (group, dlq) in [
        ("g1", &flagged),
        ("g2", &unflagged),
        ("g3", &missing),
        ("g4", &unprefixed),
        ("g5", &auto),
    ] {
        if group == "g5" {
            auto_create(true);
        }
        let group = format!("{topic}-{group}");
        set_group_config(
            bootstrap,
            &group,
            &[
                "share.auto.offset.reset=earliest",
                "share.delivery.count.limit=2",
                &format!("errors.deadletterqueue.topic.name={dlq}"),
                "errors.deadletterqueue.copy.record.enable=true",
            ],
        );
        let mut c = ShareConsumer::start(
            bootstrap,
            &topic,
            &group,
            "c",
            &[
                "--mode",
                "explicit",
                "--reject",
                "k1",
                "--release-always",
                "k2",
                "--idle-ms",
                "6000",
                "--timeout-ms",
                "60000",
            ],
        );
        let events = c.wait_exit(Duration::from_secs(120));
        assert_no_errors(&events, &group);
    }
    auto_create(false);
    let mut conn = RawConn::connect(addr);
    let read = |conn: &mut RawConn, dlq: &str| {
        let mut lines = Vec::new();
        for partition in 0..3 {
            let (code, mut raw) = conn.fetch_partition(dlq, partition, 0);
            if code != 0 {
                // A topic of fewer partitions, or none.
                lines.push(format!(
                    "{} p{partition}: error {code}",
                    dlq.replace(&topic, "T")
                ));
                continue;
            }
            while raw.has_remaining() {
                let set = RecordBatchDecoder::decode(&mut raw).expect("decode a DLQ batch");
                for r in set.records {
                    let text = |b: Option<&bytes::Bytes>| {
                        b.map(|b| String::from_utf8_lossy(b).replace(&topic, "T"))
                    };
                    let headers: Vec<String> = r
                        .headers
                        .iter()
                        .map(|(k, v)| format!("{}={:?}", k.as_str(), text(v.as_ref())))
                        .collect();
                    lines.push(format!(
                        "{dlq_name} p{partition} key {:?} value {:?} {}",
                        text(r.key.as_ref()),
                        text(r.value.as_ref()),
                        headers.join(" "),
                        dlq_name = dlq.replace(&topic, "T"),
                    ));
                }
            }
        }
        lines.sort();
        lines
    };
    // The DLQ writes follow the archiving within moments.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut written = read(&mut conn, &flagged);
    while written.len() < 2 && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(200));
        written = read(&mut conn, &flagged);
    }
    let mut out = written;
    out.extend(read(&mut conn, &unflagged));
    out.extend(read(&mut conn, &unprefixed));
    out.extend(read(&mut conn, &auto));
    // The auto-created topic: its partitions and configs as kafka-topics.sh shows them.
    let described = tool.run(
        "kafka-topics.sh",
        &[
            "--bootstrap-server",
            bootstrap,
            "--describe",
            "--topic",
            &auto,
        ],
        None,
        Duration::from_secs(120),
    );
    let summary = described.stdout.lines().next().unwrap_or_default();
    let field = |name: &str| {
        summary
            .split('\t')
            .find_map(|f| f.trim().strip_prefix(name).map(|v| v.trim().to_string()))
            .unwrap_or_default()
    };
    out.push(format!(
        "auto-created: PartitionCount {} Configs {}",
        field("PartitionCount:"),
        field("Configs:")
    ));
    let listed = tool.run(
        "kafka-topics.sh",
        &["--bootstrap-server", bootstrap, "--list"],
        None,
        Duration::from_secs(120),
    );
    out.push(format!(
        "the missing DLQ topic exists: {}",
        listed.stdout.lines().any(|l| l.trim() == missing)
    ));
    out
}

// ---------------------------------------------------------------------------------------------
// 5. kafka-share-groups.sh

#[test]
fn kafka_share_groups_tool_on_kafka() {
    let peer = kafka();
    kafka_share_groups_tool(&peer.bootstrap());
}

#[test]
fn kafka_share_groups_tool_on_gregor() {
    let broker = gregor();
    kafka_share_groups_tool(&broker.bootstrap());
}

#[test]
fn console_share_consumer_and_perf_test_on_kafka() {
    let peer = kafka();
    console_share_consumer_and_perf_test(&peer.bootstrap());
}

#[test]
fn console_share_consumer_and_perf_test_on_gregor() {
    let broker = gregor();
    console_share_consumer_and_perf_test(&broker.bootstrap());
}

/// Kafka's console share consumer and share consumer perf test: 10 of a 2-partition topic's 40
/// records read and released (`--release`), then all 40 read, each once, and rejected
/// (`--reject`), then none left for a third run or in the group's lag; the perf test's two
/// consumers read all 2,000 records of another topic.
fn console_share_consumer_and_perf_test(bootstrap: &str) {
    use gregor_e2e::kafka_tools::{ToolRun, Toolbox};
    const COUNT: usize = 40;
    const RUN: Duration = Duration::from_secs(120);
    let topic = unique_topic("share-console");
    let group = format!("{topic}-g");
    set_group_config(bootstrap, &group, &["share.auto.offset.reset=earliest"]);
    let want = positions(&produce(bootstrap, &topic, COUNT, 2, 1, 0));
    let console = |extra: &[&str]| -> ToolRun {
        let mut args = vec![
            "--bootstrap-server",
            bootstrap,
            "--topic",
            &topic,
            "--group",
            &group,
            "--formatter-property",
            "print.partition=true",
            "--formatter-property",
            "print.offset=true",
        ];
        args.extend_from_slice(extra);
        Toolbox::installed().run("kafka-console-share-consumer.sh", &args, None, RUN)
    };
    // `Partition:P<TAB>Offset:O<TAB>value` lines.
    let read = |run: &ToolRun| -> Vec<Pos> {
        run.stdout
            .lines()
            .filter_map(|l| {
                let mut fields = l.split('\t');
                let p = fields.next()?.strip_prefix("Partition:")?.parse().ok()?;
                let o = fields.next()?.strip_prefix("Offset:")?.parse().ok()?;
                Some((p, o))
            })
            .collect()
    };
    let released = console(&["--release", "--max-messages", "10"]);
    released
        .ok()
        .unwrap_or_else(|e| panic!("{e}\n{}", released.transcript()));
    let first = read(&released);
    assert_eq!(first.len(), 10, "{}", released.transcript());
    let rejected = console(&["--reject", "--max-messages", &COUNT.to_string()]);
    rejected
        .ok()
        .unwrap_or_else(|e| panic!("{e}\n{}", rejected.transcript()));
    let all = read(&rejected);
    assert_eq!(
        all.len(),
        COUNT,
        "each record once:\n{}",
        rejected.transcript()
    );
    assert_eq!(
        all.iter().copied().collect::<BTreeSet<Pos>>(),
        want,
        "every record, the released ones again:\n{}",
        rejected.transcript()
    );
    assert!(
        first.iter().all(|p| all.contains(p)),
        "the released records come back"
    );
    // Nothing left: a third run reads nothing before its timeout (the tool then exits with
    // its TimeoutException), and the group's lag is 0 on both partitions.
    let after = console(&["--timeout-ms", "5000"]);
    assert!(
        read(&after).is_empty() && after.stderr.contains("Processed a total of 0 messages"),
        "{}",
        after.transcript()
    );
    let offsets = share_groups_tool(bootstrap, &["--describe", "--group", &group]);
    let mut lags: Vec<(String, String)> = table(
        &offsets,
        &["GROUP", "TOPIC", "PARTITION", "START-OFFSET", "LAG"],
    )
    .into_iter()
    .map(|r| (r[2].clone(), r[4].clone()))
    .collect();
    lags.sort();
    assert_eq!(
        lags,
        vec![
            ("0".to_string(), "0".to_string()),
            ("1".to_string(), "0".to_string())
        ],
        "{}",
        offsets.transcript()
    );

    // The perf test: two share consumers of one group read the whole topic.
    let perf_topic = unique_topic("share-perf");
    let perf_group = format!("{perf_topic}-g");
    set_group_config(
        bootstrap,
        &perf_group,
        &["share.auto.offset.reset=earliest"],
    );
    produce(bootstrap, &perf_topic, 2000, 2, 1, 0);
    let perf = Toolbox::installed().run(
        "kafka-share-consumer-perf-test.sh",
        &[
            "--bootstrap-server",
            bootstrap,
            "--topic",
            &perf_topic,
            "--group",
            &perf_group,
            "--num-records",
            "2000",
            "--threads",
            "2",
            "--timeout",
            "60000",
        ],
        None,
        RUN,
    );
    let out = perf
        .ok()
        .unwrap_or_else(|e| panic!("{e}\n{}", perf.transcript()));
    // `start.time, end.time, data.consumed.in.MB, MB.sec, nMsg.sec, data.consumed.in.nMsg,
    // fetch.time.ms`, then one line of figures.
    let figures: Vec<&str> = out.lines().last().unwrap_or_default().split(", ").collect();
    assert_eq!(
        figures.get(5).copied(),
        Some("2000"),
        "records consumed:\n{}",
        perf.transcript()
    );
}

/// The tables a `kafka-share-groups.sh` run printed: each a header (split on whitespace) and
/// its rows, the blank lines and other lines between them skipped. A row is split on runs of
/// two or more spaces and single spaces alike; no cell here holds a space but the
/// coordinator's `host:port  (id)`, which the callers do not read.
fn tables(stdout: &str) -> Vec<(Vec<String>, Vec<Vec<String>>)> {
    let mut out: Vec<(Vec<String>, Vec<Vec<String>>)> = Vec::new();
    let mut current: Option<(Vec<String>, Vec<Vec<String>>)> = None;
    for line in stdout.lines() {
        let cells: Vec<String> = line.split_whitespace().map(str::to_string).collect();
        if cells.is_empty() {
            out.extend(current.take());
            continue;
        }
        match current.as_mut() {
            None if cells[0] == "GROUP" => current = Some((cells, Vec::new())),
            None => {}
            Some((_, rows)) => rows.push(cells),
        }
    }
    out.extend(current.take());
    out
}

/// The one table of a run, checked to have `header`; its rows.
fn table(run: &gregor_e2e::kafka_tools::ToolRun, header: &[&str]) -> Vec<Vec<String>> {
    let out = run
        .ok()
        .unwrap_or_else(|e| panic!("{e}\n{}", run.transcript()));
    let found = tables(out);
    assert_eq!(found.len(), 1, "one table wanted:\n{}", run.transcript());
    let (head, rows) = found.into_iter().next().expect("one table");
    assert_eq!(head, header, "columns:\n{}", run.transcript());
    assert!(
        run.error_in_output().is_none(),
        "an error printed:\n{}",
        run.transcript()
    );
    rows
}

/// --list, --describe (offsets, --members, --state), --reset-offsets --to-earliest --execute
/// on the Empty group and the redelivery it brings, --delete.
fn kafka_share_groups_tool(bootstrap: &str) {
    const COUNT: usize = 100;
    let topic = unique_topic("share-tool");
    let group = format!("{topic}-g");
    set_group_config(bootstrap, &group, &["share.auto.offset.reset=earliest"]);
    let produced = produce(bootstrap, &topic, COUNT, 2, 1, 0);
    let want = positions(&produced);
    let mut c1 = ShareConsumer::start(bootstrap, &topic, &group, "tool-c1", &[]);
    c1.wait_for("every record accepted", WAIT, |e| accepted_all(e, &want));

    // While the consumer is a member: --members and --state.
    let members = table(
        &share_groups_tool(bootstrap, &["--describe", "--group", &group, "--members"]),
        &[
            "GROUP",
            "CONSUMER-ID",
            "HOST",
            "CLIENT-ID",
            "#PARTITIONS",
            "ASSIGNMENT",
        ],
    );
    assert_eq!(members.len(), 1, "one member: {members:?}");
    let m = &members[0];
    assert_eq!(m[0], group);
    assert_eq!(m[3], "tool-c1", "client id: {m:?}");
    assert_eq!(m[4], "2", "partitions assigned: {m:?}");
    assert_eq!(m[5], format!("{topic}:0,1"), "assignment: {m:?}");
    let state = share_groups_tool(bootstrap, &["--describe", "--group", &group, "--state"]);
    let rows = table(
        &state,
        &["GROUP", "COORDINATOR", "(ID)", "STATE", "#MEMBERS"],
    );
    assert_eq!(rows.len(), 1, "{}", state.transcript());
    let last = rows[0].len() - 1;
    assert_eq!(
        (rows[0][last - 1].as_str(), rows[0][last].as_str()),
        ("Stable", "1"),
        "{}",
        state.transcript()
    );
    let events = c1.stop();
    assert_no_errors(&events, "tool-c1");

    // --list names the group.
    let list = share_groups_tool(bootstrap, &["--list"]);
    let listed = list
        .ok()
        .unwrap_or_else(|e| panic!("{e}\n{}", list.transcript()));
    assert!(
        listed.lines().any(|l| l.trim() == group),
        "--list lacks {group}:\n{}",
        list.transcript()
    );

    // Empty once the member left; every record done: lag 0 on both partitions.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let state = share_groups_tool(bootstrap, &["--describe", "--group", &group, "--state"]);
        let rows = table(
            &state,
            &["GROUP", "COORDINATOR", "(ID)", "STATE", "#MEMBERS"],
        );
        let last = rows[0].len() - 1;
        if (rows[0][last - 1].as_str(), rows[0][last].as_str()) == ("Empty", "0") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the group is not Empty after its member left:\n{}",
            state.transcript()
        );
        thread::sleep(Duration::from_millis(500));
    }
    let offsets = share_groups_tool(bootstrap, &["--describe", "--group", &group]);
    let rows = table(
        &offsets,
        &["GROUP", "TOPIC", "PARTITION", "START-OFFSET", "LAG"],
    );
    let mut parts: Vec<(&str, &str, &str)> = rows
        .iter()
        .map(|r| (r[1].as_str(), r[2].as_str(), r[4].as_str()))
        .collect();
    // The tool prints the partitions in no fixed order.
    parts.sort();
    // The lag (DescribeShareGroupOffsets v1, KIP-1226) is checked last, so that a broker that
    // does not know it ("-") still has the rest of the scenario run.
    let mut lag_differences = Vec::new();
    if parts != vec![(topic.as_str(), "0", "0"), (topic.as_str(), "1", "0")] {
        lag_differences.push(format!(
            "offsets (topic, partition, lag) want lag 0 on both partitions:\n{}",
            offsets.transcript()
        ));
    }

    // --reset-offsets --to-earliest on the Empty group: start offset 0, lag the whole topic.
    let reset = share_groups_tool(
        bootstrap,
        &[
            "--reset-offsets",
            "--to-earliest",
            "--group",
            &group,
            "--topic",
            &topic,
            "--execute",
        ],
    );
    let rows = table(&reset, &["GROUP", "TOPIC", "PARTITION", "NEW-OFFSET"]);
    let mut new: Vec<(&str, &str)> = rows
        .iter()
        .map(|r| (r[2].as_str(), r[3].as_str()))
        .collect();
    // The tool prints the partitions in no fixed order.
    new.sort();
    assert_eq!(new, vec![("0", "0"), ("1", "0")], "{}", reset.transcript());
    let offsets = share_groups_tool(bootstrap, &["--describe", "--group", &group]);
    let rows = table(
        &offsets,
        &["GROUP", "TOPIC", "PARTITION", "START-OFFSET", "LAG"],
    );
    let half = (COUNT / 2).to_string();
    let mut parts: Vec<(&str, &str)> = rows
        .iter()
        .map(|r| (r[2].as_str(), r[3].as_str()))
        .collect();
    // The tool prints the partitions in no fixed order.
    parts.sort();
    assert_eq!(
        parts,
        vec![("0", "0"), ("1", "0")],
        "offsets after the reset (partition, start offset):\n{}",
        offsets.transcript()
    );
    if rows.iter().any(|r| r[4] != half) {
        lag_differences.push(format!(
            "offsets after the reset want lag {half} on both partitions:\n{}",
            offsets.transcript()
        ));
    }

    // Redelivery: every record again, as new (delivery count 1).
    let mut c2 = ShareConsumer::start(bootstrap, &topic, &group, "tool-c2", &[]);
    c2.wait_for("every record accepted again", WAIT, |e| {
        accepted_all(e, &want)
    });
    let events = c2.stop();
    assert_no_errors(&events, "tool-c2");
    assert_delivered_once(&produced, &events, "after the reset");

    // --delete, then the group is gone.
    let delete = share_groups_tool(bootstrap, &["--delete", "--group", &group]);
    let out = delete
        .ok()
        .unwrap_or_else(|e| panic!("{e}\n{}", delete.transcript()));
    assert!(
        out.contains(&format!(
            "Deletion of requested share groups ('{group}') was successful."
        )),
        "{}",
        delete.transcript()
    );
    let list = share_groups_tool(bootstrap, &["--list"]);
    let listed = list
        .ok()
        .unwrap_or_else(|e| panic!("{e}\n{}", list.transcript()));
    assert!(
        !listed.lines().any(|l| l.trim() == group),
        "--list still names {group} after --delete:\n{}",
        list.transcript()
    );
    let gone = share_groups_tool(bootstrap, &["--describe", "--group", &group]);
    assert!(
        format!("{}{}", gone.stdout, gone.stderr).contains("GroupIdNotFoundException"),
        "describing a deleted group:\n{}",
        gone.transcript()
    );
    assert!(
        lag_differences.is_empty(),
        "the lag column differs from Kafka's:\n{}",
        lag_differences.join("\n")
    );
}

// ---------------------------------------------------------------------------------------------
// 6. A 3-node cluster: a partition leader killed

/// Three gregor nodes, a 2-partition topic of replication factor 3 and 1000 records; a share
/// consumer runs, and after 300 records accepted partition 0's leader is killed -9. No record
/// is delivered again after its acceptance was answered; every record is accepted.
#[test]
fn cluster_leader_killed_keeps_acknowledgements() {
    const COUNT: usize = 1000;
    let mut settings = SHARE_BROKER_SETTINGS.to_vec();
    settings.push("group.initial.rebalance.delay.ms=0");
    let mut cluster = Cluster::start(3, &settings);
    wait_for_brokers(&cluster, 3);
    let bootstrap = cluster.bootstrap();
    let topic = unique_topic("share-cluster");
    let group = format!("{topic}-g");
    let produced = produce(&bootstrap, &topic, COUNT, 2, 3, 0);
    wait_for(&cluster, "full ISRs", Duration::from_secs(60), || {
        let (_, parts) = describe(&bootstrap, &topic);
        (parts.len() == 2 && parts.values().all(|s| s.isr.len() == 3)).then_some(())
    });
    set_group_config(&bootstrap, &group, &["share.auto.offset.reset=earliest"]);
    let want = positions(&produced);
    let mut c = ShareConsumer::start(
        &bootstrap,
        &topic,
        &group,
        "c",
        &[
            "--max-poll-records",
            "20",
            "--poll-sleep-ms",
            "100",
            "--timeout-ms",
            "240000",
        ],
    );
    c.wait_for("100 records of partition 0 accepted", WAIT, |e| {
        accepted(e).keys().filter(|(p, _)| *p == 0).count() >= 100
    });
    let done = accepted(&c.events())
        .keys()
        .filter(|(p, _)| *p == 0)
        .count();
    assert!(
        done < COUNT / 2,
        "the consumer had all of partition 0 before the kill: slow it down"
    );
    let (_, parts) = describe(&bootstrap, &topic);
    let leader = parts
        .get(&0)
        .map(|s| s.leader)
        .expect("partition 0 has a leader");
    eprintln!("killing node {leader}, partition 0's leader");
    cluster.kill9(leader);
    let lost = wait_all_done(
        &mut c,
        &bootstrap,
        &group,
        &want,
        WAIT,
        "every record accepted after the leader's kill",
    );
    let events = c.stop();
    check_at_least_once(&produced, &events, &lost, "partition leader killed");
}

/// The dead-letter queue in a 3-node gregor cluster when the DLQ partition is led by another
/// node than the source partition: the share-partition leader produces the records to it over
/// an inter-broker connection (a 1-partition source topic of replication factor 3, the DLQ
/// placed on another node with `--replica-assignment`).
#[test]
fn cluster_dead_letter_queue_at_another_leader() {
    use bytes::Buf;
    use gregor_e2e::kafka_tools::Toolbox;
    use gregor_e2e::raw::RawConn;
    use kafka_protocol::records::RecordBatchDecoder;
    let mut settings = SHARE_BROKER_SETTINGS.to_vec();
    settings.push("group.initial.rebalance.delay.ms=0");
    let cluster = Cluster::start(3, &settings);
    wait_for_brokers(&cluster, 3);
    let bootstrap = cluster.bootstrap();
    let topic = unique_topic("share-dlq-cluster");
    let group = format!("{topic}-g");
    let dlq = format!("dlq.{topic}");
    produce(&bootstrap, &topic, 4, 1, 3, 0);
    let leader = wait_for(&cluster, "a leader", Duration::from_secs(60), || {
        let (_, parts) = describe(&bootstrap, &topic);
        parts.get(&0).map(|p| p.leader).filter(|&l| l > 0)
    });
    let other = cluster
        .broker_ids()
        .into_iter()
        .find(|&id| id != leader)
        .expect("another broker");
    let run = Toolbox::installed().run(
        "kafka-topics.sh",
        &[
            "--bootstrap-server",
            &bootstrap,
            "--create",
            "--topic",
            &dlq,
            "--replica-assignment",
            &other.to_string(),
            "--config",
            "errors.deadletterqueue.group.enable=true",
        ],
        None,
        Duration::from_secs(120),
    );
    assert!(run.status.is_some_and(|s| s.success()), "{run:?}");
    set_group_config(
        &bootstrap,
        &group,
        &[
            "share.auto.offset.reset=earliest",
            &format!("errors.deadletterqueue.topic.name={dlq}"),
        ],
    );
    let mut c = ShareConsumer::start(
        &bootstrap,
        &topic,
        &group,
        "c",
        &[
            "--mode",
            "explicit",
            "--reject",
            "k[13]",
            "--idle-ms",
            "6000",
            "--timeout-ms",
            "60000",
        ],
    );
    let events = c.wait_exit(Duration::from_secs(120));
    assert_no_errors(&events, "c");
    let mut conn = RawConn::connect(cluster.node(other).addr);
    let offsets = wait_for(&cluster, "two DLQ records", Duration::from_secs(30), || {
        let (code, mut raw) = conn.fetch_partition(&dlq, 0, 0);
        let mut offsets = Vec::new();
        while code == 0 && raw.has_remaining() {
            let set = RecordBatchDecoder::decode(&mut raw).ok()?;
            for r in set.records {
                let header = |name: &str| {
                    r.headers
                        .iter()
                        .find(|(k, _)| k.as_str() == name)
                        .and_then(|(_, v)| v.as_ref())
                        .map(|v| String::from_utf8_lossy(v).to_string())
                };
                assert_eq!(
                    header("__dlq.errors.group").as_deref(),
                    Some(group.as_str())
                );
                offsets.push(header("__dlq.errors.offset")?);
            }
        }
        (offsets.len() >= 2).then_some(offsets)
    });
    assert_eq!(offsets, vec!["1".to_string(), "3".to_string()]);
}

// ---------------------------------------------------------------------------------------------
// 7. gregor's own CLI on a share group

/// Runs `gregor <args>` against `bootstrap`; its stdout, or a panic with both streams.
fn gregor_cli(bootstrap: &str, args: &[&str]) -> String {
    let out = std::process::Command::new(gregor_e2e::broker::gregor_bin())
        .args(args)
        .env("GREGOR_BOOTSTRAP_SERVER", bootstrap)
        .output()
        .unwrap_or_else(|e| panic!("gregor {args:?}: {e}"));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "gregor {args:?}: {}\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

/// The rows of the first table in `stdout` (whitespace-separated, header first) as
/// `(partition, start offset, lag)` sorted, from `gregor share-groups describe --offsets`.
fn cli_offsets(stdout: &str) -> Vec<(String, String, String)> {
    let mut lines = stdout.lines().filter(|l| !l.trim().is_empty());
    let header: Vec<&str> = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        ["GROUP", "TOPIC", "PARTITION", "START-OFFSET", "LAG"],
        "{stdout}"
    );
    let mut rows: Vec<(String, String, String)> = lines
        .map(|l| {
            let c: Vec<&str> = l.split_whitespace().collect();
            (c[2].to_string(), c[3].to_string(), c[4].to_string())
        })
        .collect();
    rows.sort();
    rows
}

/// `gregor configs alter --group`, a share consumer that accepts everything, then `gregor
/// share-groups` describe (offsets with lag, members, state), reset-offsets (a dry run changes
/// nothing, `--execute` brings every record back), delete-offsets and delete.
#[test]
fn gregor_share_groups_cli_on_gregor() {
    const COUNT: usize = 60;
    let broker = gregor();
    let bootstrap = broker.bootstrap();
    let topic = unique_topic("share-cli");
    let group = format!("{topic}-g");
    gregor_cli(
        &bootstrap,
        &[
            "configs",
            "alter",
            "--group",
            &group,
            "--set",
            "share.auto.offset.reset=earliest",
        ],
    );
    let described = gregor_cli(&bootstrap, &["configs", "describe", "--group", &group]);
    assert!(
        described
            .lines()
            .any(|l| l.starts_with("share.auto.offset.reset") && l.contains("earliest")),
        "{described}"
    );
    let produced = produce(&bootstrap, &topic, COUNT, 2, 1, 0);
    let want = positions(&produced);
    let mut c1 = ShareConsumer::start(&bootstrap, &topic, &group, "cli-c1", &[]);
    c1.wait_for("every record accepted", WAIT, |e| accepted_all(e, &want));
    let members = gregor_cli(
        &bootstrap,
        &["share-groups", "describe", "--group", &group, "--members"],
    );
    assert!(members.contains("cli-c1"), "{members}");
    assert_no_errors(&c1.stop(), "cli-c1");

    // Empty once the member left, every record done: lag 0.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !gregor_cli(
        &bootstrap,
        &["share-groups", "describe", "--group", &group, "--state"],
    )
    .contains("Empty")
    {
        assert!(Instant::now() < deadline, "the group is not Empty");
        thread::sleep(Duration::from_millis(300));
    }
    let per = (COUNT / 2).to_string();
    let offsets = |b: &str| {
        cli_offsets(&gregor_cli(
            b,
            &["share-groups", "describe", "--group", &group, "--offsets"],
        ))
    };
    let done = vec![
        ("0".to_string(), per.clone(), "0".to_string()),
        ("1".to_string(), per.clone(), "0".to_string()),
    ];
    assert_eq!(offsets(&bootstrap), done);

    // A dry run changes nothing; --execute moves both partitions back to 0.
    let reset = [
        "share-groups",
        "reset-offsets",
        "--group",
        &group,
        "--topic",
        &topic,
    ];
    gregor_cli(&bootstrap, &[&reset[..], &["--to-earliest"]].concat());
    assert_eq!(offsets(&bootstrap), done, "after a dry run");
    gregor_cli(
        &bootstrap,
        &[&reset[..], &["--to-earliest", "--execute"]].concat(),
    );
    assert_eq!(
        offsets(&bootstrap),
        vec![
            ("0".to_string(), "0".to_string(), per.clone()),
            ("1".to_string(), "0".to_string(), per.clone()),
        ],
        "after the reset"
    );
    let mut c2 = ShareConsumer::start(&bootstrap, &topic, &group, "cli-c2", &[]);
    c2.wait_for("every record accepted again", WAIT, |e| {
        accepted_all(e, &want)
    });
    let events = c2.stop();
    assert_no_errors(&events, "cli-c2");
    assert_delivered_once(&produced, &events, "after the reset");

    // delete-offsets forgets the topic; delete removes the group.
    let deadline = Instant::now() + Duration::from_secs(30);
    while !gregor_cli(
        &bootstrap,
        &["share-groups", "describe", "--group", &group, "--state"],
    )
    .contains("Empty")
    {
        assert!(Instant::now() < deadline, "the group is not Empty again");
        thread::sleep(Duration::from_millis(300));
    }
    gregor_cli(
        &bootstrap,
        &[
            "share-groups",
            "delete-offsets",
            "--group",
            &group,
            "--topic",
            &topic,
        ],
    );
    let none = gregor_cli(
        &bootstrap,
        &["share-groups", "describe", "--group", &group, "--offsets"],
    );
    assert!(
        none.contains("has no offsets"),
        "after delete-offsets: {none}"
    );
    gregor_cli(&bootstrap, &["share-groups", "delete", "--group", &group]);
    let listed = gregor_cli(&bootstrap, &["share-groups", "list"]);
    assert!(
        !listed
            .lines()
            .any(|l| l.split_whitespace().next() == Some(group.as_str())),
        "{listed}"
    );
}
