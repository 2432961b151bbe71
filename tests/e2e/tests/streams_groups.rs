//! KIP-1071 streams groups (StreamsGroupHeartbeat, API 88; StreamsGroupDescribe, API 89) with
//! the real Kafka Streams 4.4 client on `group.protocol=streams`
//! (`tests/interop/java/StreamsGroups.java`, kafka-streams from the toolbox):
//!
//! ```text
//!   <prefix>-input (4 partitions) ◀── 2,000 words (20-word vocabulary, known counts)
//!   app A ─┐  stream(input).selectKey(word).groupByKey().count("counts").to(<prefix>-output)
//!   app B ─┘  the broker creates <app>-counts-repartition and <app>-counts-changelog
//!   describe: Stable, 2 members, 4 + 4 active tasks, 2 subtopologies, every task active once
//!   close B (leave) ── 500 more words ──▶ A alone: 1 member, 8 active tasks, the new counts
//! ```
//!
//! The same program runs against Apache Kafka 4.4 (the toolbox's `KafkaPeer`), whose answers
//! are the expectations, and against a gregor process; the third test compares the shape of
//! the two groups' descriptions; the fourth runs it on a three-node gregor cluster. Each
//! broker's run is made once per test binary and shared by the tests that look at it.

use std::sync::OnceLock;
use std::time::{Duration, Instant};

use gregor_e2e::kafka_peer::KafkaPeer;
use gregor_e2e::kafka_tools::Toolbox;
use gregor_e2e::{unique_topic, Broker};
use serde_json::Value;

/// The Java program (compiled from source at each run) runs about 15-20 s against Kafka; its
/// own waits give up after 60 s + 45 s and its watchdog answers at 150 s.
const JAVA_TIMEOUT: Duration = Duration::from_secs(200);

/// Tasks of the word count: two subtopologies (input → repartition, repartition → count) of
/// four partitions each.
const TASKS: u64 = 8;

/// One run of the program against one broker.
struct Run {
    /// Which broker, for the messages.
    broker: &'static str,
    /// The application id (the streams group's id, the internal topics' prefix).
    app: String,
    /// The program's JSON answer, or why there is none.
    doc: Result<Value, String>,
    /// The last lines of the broker's log, taken after the run.
    log: String,
}

impl Run {
    /// The answer; fails the test (with the broker's log) when the program gave none.
    fn doc(&self) -> &Value {
        match &self.doc {
            Ok(doc) => doc,
            Err(e) => panic!("{}: {e}\n--- broker log ---\n{}", self.broker, self.log),
        }
    }
}

/// Runs the program against `bootstrap`; never panics (a failure is in [`Run::doc`]).
fn run_streams_groups(broker: &'static str, bootstrap: &str, log: &dyn Fn() -> String) -> Run {
    let started = Instant::now();
    let prefix = unique_topic("streams");
    let app = format!("{prefix}-app");
    let answer = std::panic::catch_unwind(|| {
        Toolbox::installed().run_java_source(
            "StreamsGroups.java",
            &[bootstrap, &prefix, &app],
            JAVA_TIMEOUT,
        )
    });
    let doc = match answer {
        Ok(line) => serde_json::from_str::<Value>(&line).map_err(|e| format!("{line}: {e}")),
        Err(panic) => Err(panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "the Java program failed".to_string())),
    };
    match &doc {
        Ok(doc) => eprintln!(
            "streams groups against {broker} ({bootstrap}): {} ms: {doc}",
            started.elapsed().as_millis()
        ),
        Err(e) => eprintln!(
            "streams groups against {broker} ({bootstrap}): {} ms: no answer: {e}",
            started.elapsed().as_millis()
        ),
    }
    Run {
        broker,
        app,
        doc,
        log: log(),
    }
}

/// The last `n` lines of `text`.
fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// The run against Apache Kafka 4.4 (made by the first test that asks).
fn on_kafka() -> &'static Run {
    static RUN: OnceLock<Run> = OnceLock::new();
    RUN.get_or_init(|| {
        let peer = KafkaPeer::shared();
        run_streams_groups("Apache Kafka", &peer.bootstrap(), &|| peer.log_tail(80))
    })
}

/// The run against a gregor process (made by the first test that asks).
fn on_gregor() -> &'static Run {
    static RUN: OnceLock<Run> = OnceLock::new();
    RUN.get_or_init(|| {
        let broker = Broker::start();
        run_streams_groups("gregor", &broker.bootstrap(), &|| tail(&broker.logs(), 80))
    })
}

fn u64_of(v: &Value) -> u64 {
    v.as_u64().unwrap_or(u64::MAX)
}

fn counts(v: &Value) -> Vec<u64> {
    v.as_array()
        .map(|a| a.iter().map(u64_of).collect())
        .unwrap_or_default()
}

/// What both brokers must show (Kafka's behaviour): the counts right; two stable members that
/// share the eight tasks evenly, then one that has them all; every task active exactly once; no
/// standby tasks; the repartition and changelog topics the broker created.
fn assert_expected(run: &Run) {
    let doc = run.doc();
    let why = format!("{}: {doc}\n--- broker log ---\n{}", run.broker, run.log);
    assert_eq!(doc["ok"], Value::Bool(true), "{why}");
    assert_eq!(doc["countsCorrect"], Value::Bool(true), "{why}");

    let initial = &doc["initial"];
    assert_eq!(initial["state"], "Stable", "{why}");
    assert_eq!(u64_of(&initial["members"]), 2, "{why}");
    assert_eq!(u64_of(&initial["subtopologies"]), 2, "{why}");
    assert_eq!(u64_of(&initial["expectedTasks"]), TASKS, "{why}");
    assert_eq!(u64_of(&initial["tasks"]), TASKS, "{why}");
    assert_eq!(initial["everyTaskOnce"], Value::Bool(true), "{why}");
    // Kafka's sticky assignor balances the active tasks: four each.
    assert_eq!(counts(&initial["activeTasksPerMember"]), [4, 4], "{why}");
    assert_eq!(counts(&initial["standbyTasksPerMember"]), [0, 0], "{why}");

    let last = &doc["final"];
    assert_eq!(last["state"], "Stable", "{why}");
    assert_eq!(u64_of(&last["members"]), 1, "{why}");
    assert_eq!(u64_of(&last["subtopologies"]), 2, "{why}");
    assert_eq!(u64_of(&last["expectedTasks"]), TASKS, "{why}");
    assert_eq!(u64_of(&last["tasks"]), TASKS, "{why}");
    assert_eq!(last["everyTaskOnce"], Value::Bool(true), "{why}");
    assert_eq!(counts(&last["activeTasksPerMember"]), [TASKS], "{why}");
    assert_eq!(counts(&last["standbyTasksPerMember"]), [0], "{why}");
    assert_eq!(u64_of(&last["localActiveTasks"]), TASKS, "{why}");

    // The names Kafka gives them: `<application.id>-<store>-changelog` for count()'s store and
    // `<application.id>-<store>-repartition` for the groupByKey() after selectKey() (the
    // repartition topic is named after the Materialized store).
    let internal: Vec<&str> = doc["internalTopics"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let app = &run.app;
    assert_eq!(
        internal,
        [
            format!("{app}-counts-changelog"),
            format!("{app}-counts-repartition")
        ],
        "{why}"
    );
}

#[test]
fn kafka_streams_with_the_streams_protocol_runs_on_kafka() {
    assert_expected(on_kafka());
}

#[test]
fn kafka_streams_with_the_streams_protocol_runs_on_gregor() {
    assert_expected(on_gregor());
}

/// The described group, reduced to what does not depend on the broker's ids or timing.
fn shape(run: &Run) -> Value {
    let doc = run.doc();
    let pick = |d: &Value| {
        serde_json::json!({
            "state": d["state"],
            "members": d["members"],
            "activeTasksPerMember": d["activeTasksPerMember"],
            "standbyTasksPerMember": d["standbyTasksPerMember"],
            "subtopologies": d["subtopologies"],
            "tasks": d["tasks"],
            "everyTaskOnce": d["everyTaskOnce"],
        })
    };
    let internal: Vec<String> = doc["internalTopics"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(|t| t.strip_prefix(run.app.as_str()).unwrap_or(t).to_string())
                .collect()
        })
        .unwrap_or_default();
    serde_json::json!({
        "ok": doc["ok"],
        "initial": pick(&doc["initial"]),
        "final": pick(&doc["final"]),
        "internalTopics": internal,
        "countsCorrect": doc["countsCorrect"],
    })
}

#[test]
fn both_describe_the_group_alike() {
    let kafka = shape(on_kafka());
    let gregor = shape(on_gregor());
    assert_eq!(
        gregor, kafka,
        "gregor (left) and Apache Kafka (right) differ"
    );
}

/// The same application on a three-node gregor cluster: the group's coordinator, the
/// partitions and the internal topics the coordinator creates (through the controller, on the
/// client's behalf) are spread over the nodes.
#[test]
fn kafka_streams_with_the_streams_protocol_runs_on_a_gregor_cluster() {
    // Internal topics with the broker's default replication factor: all three nodes.
    let cluster = gregor_e2e::cluster::Cluster::start(3, &["default.replication.factor=3"]);
    gregor_e2e::cluster_client::wait_for_brokers(&cluster, 3);
    let run = run_streams_groups("a gregor cluster", &cluster.bootstrap(), &|| {
        tail(&cluster.logs(), 120)
    });
    assert_expected(&run);
}

/// The group's coordinator killed (-9) under a running application on a three-node cluster:
/// both instances (exactly-once) run on, the coordinator moves with the leadership of the
/// group's `__consumer_offsets` partition, the group comes back Stable with both members and
/// every task active once, and the output has every count right, none repeated.
#[test]
fn the_coordinator_killed_under_a_running_application() {
    let mut cluster = gregor_e2e::cluster::Cluster::start(3, &["default.replication.factor=3"]);
    gregor_e2e::cluster_client::wait_for_brokers(&cluster, 3);
    let signals = tempfile::tempdir().expect("tempdir");
    let signal_dir = signals.path().to_string_lossy().to_string();
    let bootstrap = cluster.bootstrap();
    let prefix = unique_topic("failover");
    let app = format!("{prefix}-app");
    let runner = {
        let (bootstrap, prefix, app, signal_dir) = (
            bootstrap.clone(),
            prefix.clone(),
            app.clone(),
            signal_dir.clone(),
        );
        std::thread::spawn(move || {
            std::panic::catch_unwind(|| {
                Toolbox::installed().run_java_source(
                    "StreamsGroups.java",
                    &[&bootstrap, &prefix, &app, &signal_dir],
                    Duration::from_secs(300),
                )
            })
            .map_err(|_| "the Java program failed".to_string())
        })
    };
    let ready = signals.path().join("ready");
    let deadline = Instant::now() + Duration::from_secs(150);
    while !ready.exists() && Instant::now() < deadline && !runner.is_finished() {
        std::thread::sleep(Duration::from_millis(100));
    }
    let coordinator: Option<i32> = std::fs::read_to_string(&ready)
        .ok()
        .and_then(|s| s.trim().parse().ok());
    if let Some(id) = coordinator {
        eprintln!("killing node {id}, the streams group's coordinator");
        cluster.kill9(id);
    }
    let _ = std::fs::write(signals.path().join("go"), b"go");
    let answer = runner
        .join()
        .unwrap_or_else(|_| Err("the runner panicked".to_string()));
    let line = answer.unwrap_or_else(|e| panic!("{e}\n{}", tail(&cluster.logs(), 200)));
    let doc: Value = serde_json::from_str(&line)
        .unwrap_or_else(|e| panic!("{line}: {e}\n{}", tail(&cluster.logs(), 200)));
    eprintln!("failover run: {doc}");
    let why = format!("{doc}\n--- cluster log ---\n{}", tail(&cluster.logs(), 200));
    assert!(coordinator.is_some(), "the program never got ready: {why}");
    assert_eq!(doc["ok"], Value::Bool(true), "{why}");
    assert_eq!(doc["countsCorrect"], Value::Bool(true), "{why}");
    let last = &doc["final"];
    assert_eq!(last["state"], "Stable", "{why}");
    assert_eq!(u64_of(&last["members"]), 2, "{why}");
    assert_eq!(u64_of(&last["tasks"]), TASKS, "{why}");
    assert_eq!(last["everyTaskOnce"], Value::Bool(true), "{why}");
}
