//! Config resources beyond topics and brokers, end to end with Apache Kafka's own tools, each
//! scenario run against gregor and against a real Apache Kafka 4.4 broker (`kafka_peer`) and
//! compared:
//!
//! - `config_tools_answer_as_kafka_does`: `kafka-client-metrics.sh` (`ClientMetricsCommand`)
//!   --alter, --list (ListConfigResources), --describe (DescribeConfigs on CLIENT_METRICS) and
//!   --delete of KIP-714 subscriptions, its refusals (interval out of range, a bad match
//!   pattern), `kafka-configs.sh --describe --entity-type client-metrics|groups` without a name
//!   (ListConfigResources) and with one (`--all`), an unknown subscription key. The printed
//!   output of every step (stdout, and the exception line of a failure) must be Kafka's.
//! - `config_resource_requests_answer_as_kafka_does`: the same raw requests to both brokers:
//!   IncrementalAlterConfigs on CLIENT_METRICS and GROUP resources (good and refused ones: error
//!   codes and messages), ListConfigResources v0 and v1 (types asked, none, an unsupported one;
//!   topics left out of the comparison), DescribeConfigs v4 of a subscription with synonyms and
//!   documentation.
//! - `a_groups_own_session_timeout_expires_a_java_consumer`: a KIP-848 consumer group's
//!   `consumer.session.timeout.ms` / `consumer.heartbeat.interval.ms` (set with
//!   `kafka-configs.sh --entity-type groups`) replace the broker's: a raw
//!   ConsumerGroupHeartbeat gets the group's interval (another group the broker's), and Kafka's
//!   Java consumer (`group.protocol=consumer`) killed -9 leaves the group after the group's
//!   6 s session timeout, well before the broker's 45 s.
//!
//! Each test starts its own Kafka peer and gregor, one test at a time (what is listed depends on
//! all a broker holds). Both brokers run with `group.consumer.min.session.timeout.ms=6000` and
//! `group.consumer.min.heartbeat.interval.ms=1000` so that the group's shorter values are
//! allowed. Needs the toolbox (`scripts/toolbox`).
//!
//! Run: `cargo test -p gregor-e2e --test config_resources` (after `cargo build -p gregor-cli`).

use std::net::SocketAddr;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::{Mutex, MutexGuard};
use std::thread;
use std::time::{Duration, Instant};

use gregor_e2e::broker::send_signal;
use gregor_e2e::kafka_peer::KafkaPeer;
use gregor_e2e::kafka_tools::{ToolRun, Toolbox};
use gregor_e2e::raw::RawConn;
use gregor_e2e::{unique_topic, Broker};
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::{
    ConsumerGroupDescribeRequest, ConsumerGroupHeartbeatRequest, DescribeConfigsRequest,
    FindCoordinatorRequest, GroupId, IncrementalAlterConfigsRequest, ListConfigResourcesRequest,
    TopicName,
};
use kafka_protocol::protocol::StrBytes;

/// Broker settings both brokers run with: a group may shorten its session to 6 s and its
/// heartbeat interval to 1 s.
const SETTINGS: &[&str] = &[
    "group.consumer.min.session.timeout.ms=6000",
    "group.consumer.min.heartbeat.interval.ms=1000",
];

/// How long one tool run may take.
const TOOL_TIMEOUT: Duration = Duration::from_secs(90);

/// The tests run one at a time, each on a fresh Kafka peer and a fresh gregor: what they
/// list depends on every subscription and group config a broker holds.
static SERIAL: Mutex<()> = Mutex::new(());

/// A fresh Kafka peer, with [`SETTINGS`], and the lock that keeps the other tests waiting.
fn kafka() -> (MutexGuard<'static, ()>, KafkaPeer) {
    let serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    (serial, KafkaPeer::start_with(SETTINGS))
}

/// Runs `kafka-client-metrics.sh args` (the toolbox has no wrapper for it:
/// `kafka-run-class.sh org.apache.kafka.tools.ClientMetricsCommand`).
fn client_metrics(toolbox: &Toolbox, bootstrap: &str, args: &[&str]) -> ToolRun {
    let mut all = vec![
        "org.apache.kafka.tools.ClientMetricsCommand",
        "--bootstrap-server",
        bootstrap,
    ];
    all.extend_from_slice(args);
    toolbox.run("kafka-run-class.sh", &all, None, TOOL_TIMEOUT)
}

fn configs(toolbox: &Toolbox, bootstrap: &str, args: &[&str]) -> ToolRun {
    let mut all = vec!["--bootstrap-server", bootstrap];
    all.extend_from_slice(args);
    toolbox.run("kafka-configs.sh", &all, None, TOOL_TIMEOUT)
}

/// The steps of the tool scenario, each `(tool, args)`.
fn tool_steps() -> Vec<(&'static str, Vec<&'static str>)> {
    let cm = "client-metrics";
    let kc = "configs";
    vec![
        (cm, vec!["--list"]),
        (
            cm,
            vec![
                "--alter",
                "--name",
                "sub1",
                "--metrics",
                "org.apache.kafka.producer.",
                "--interval",
                "60000",
            ],
        ),
        (
            cm,
            vec![
                "--alter",
                "--name",
                "sub0",
                "--match",
                "client_id=abc.*,client_software_name=java",
                "--metrics",
                "a.b,c.d",
            ],
        ),
        (cm, vec!["--list"]),
        (cm, vec!["--describe"]),
        (cm, vec!["--describe", "--name", "sub1"]),
        (cm, vec!["--describe", "--name", "nosuch"]),
        (kc, vec!["--describe", "--entity-type", "client-metrics"]),
        (
            kc,
            vec![
                "--describe",
                "--entity-type",
                "client-metrics",
                "--entity-name",
                "sub1",
                "--all",
            ],
        ),
        (cm, vec!["--alter", "--name", "bad", "--interval", "50"]),
        (cm, vec!["--alter", "--name", "bad", "--match", "foo=bar"]),
        (
            cm,
            vec!["--alter", "--name", "bad", "--match", "client_id=["],
        ),
        (
            kc,
            vec![
                "--alter",
                "--entity-type",
                "client-metrics",
                "--entity-name",
                "bad",
                "--add-config",
                "nope=1",
            ],
        ),
        (
            kc,
            vec![
                "--alter",
                "--entity-type",
                "groups",
                "--entity-name",
                "g1",
                "--add-config",
                "consumer.session.timeout.ms=50000",
            ],
        ),
        (kc, vec!["--describe", "--entity-type", "groups"]),
        (cm, vec!["--delete", "--name", "sub0"]),
        (cm, vec!["--delete", "--name", "nosuch"]),
        (cm, vec!["--list"]),
    ]
}

/// Runs one step at `bootstrap`: what it printed that must be the same on both brokers
/// ([`ToolRun::comparable`]).
fn run_step(toolbox: &Toolbox, bootstrap: &str, tool: &str, args: &[&str]) -> String {
    let run = if tool == "configs" {
        configs(toolbox, bootstrap, args)
    } else {
        client_metrics(toolbox, bootstrap, args)
    };
    run.comparable(bootstrap, &[])
}

#[test]
fn config_tools_answer_as_kafka_does() {
    let toolbox = Toolbox::installed();
    let (_serial, kafka) = kafka();
    let gregor = Broker::start_with(SETTINGS);
    let (kb, gb) = (kafka.bootstrap(), gregor.bootstrap());
    let mut differences = Vec::new();
    for (tool, args) in tool_steps() {
        // Both brokers at once: each step is a JVM start on each side.
        let (on_kafka, on_gregor) = thread::scope(|s| {
            let k = s.spawn(|| run_step(&toolbox, &kb, tool, &args));
            let g = run_step(&toolbox, &gb, tool, &args);
            (k.join().expect("the Kafka side"), g)
        });
        eprintln!("$ {tool} {}\n{on_gregor}", args.join(" "));
        if on_kafka != on_gregor {
            differences.push(format!(
                "$ {tool} {}\n--- Apache Kafka ---\n{on_kafka}\n--- gregor ---\n{on_gregor}",
                args.join(" ")
            ));
        }
    }
    assert!(
        differences.is_empty(),
        "gregor's answers differ from Kafka's:\n{}",
        differences.join("\n\n")
    );
}

/// The heartbeat interval a new member of `group` is told, from a raw ConsumerGroupHeartbeat
/// (v1) joining with a subscription to `topic`; the member then leaves.
fn joined_heartbeat_interval(addr: SocketAddr, group: &str, topic: &str) -> i32 {
    let mut conn = RawConn::connect(addr);
    let member_id = format!("raw-{group}");
    let join = ConsumerGroupHeartbeatRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group.to_string())))
        .with_member_id(StrBytes::from_string(member_id.clone()))
        .with_member_epoch(0)
        .with_rebalance_timeout_ms(30_000)
        .with_subscribed_topic_names(Some(vec![TopicName(StrBytes::from_string(
            topic.to_string(),
        ))]))
        .with_topic_partitions(Some(Vec::new()));
    let deadline = Instant::now() + Duration::from_secs(30);
    // Kafka creates the offsets topic at the first FindCoordinator.
    let find = FindCoordinatorRequest::default().with_key(StrBytes::from_string(group.to_string()));
    while conn.request(1, &find).expect("FindCoordinator").error_code != 0 {
        assert!(Instant::now() < deadline, "no coordinator for {group}");
        thread::sleep(Duration::from_millis(300));
    }
    let resp = loop {
        let resp = conn.request(1, &join).expect("ConsumerGroupHeartbeat");
        // The coordinator may still be loading the offsets topic.
        if resp.error_code == 0 || Instant::now() > deadline {
            break resp;
        }
        thread::sleep(Duration::from_millis(300));
    };
    assert_eq!(resp.error_code, 0, "join {group}: {resp:?}");
    let leave = ConsumerGroupHeartbeatRequest::default()
        .with_group_id(GroupId(StrBytes::from_string(group.to_string())))
        .with_member_id(StrBytes::from_string(member_id))
        .with_member_epoch(-1);
    let _ = conn.request(1, &leave);
    resp.heartbeat_interval_ms
}

/// The members of consumer group `group` (ConsumerGroupDescribe v0; none while it does not
/// exist).
fn members(addr: SocketAddr, group: &str) -> usize {
    let mut conn = RawConn::connect(addr);
    let req = ConsumerGroupDescribeRequest::default()
        .with_group_ids(vec![GroupId(StrBytes::from_string(group.to_string()))]);
    let resp = conn.request(0, &req).expect("ConsumerGroupDescribe");
    resp.groups
        .first()
        .filter(|g| g.error_code == 0)
        .map_or(0, |g| g.members.len())
}

/// Kafka's Java console consumer in the KIP-848 protocol, in its own process group.
fn java_consumer(
    toolbox: &Toolbox,
    bootstrap: &str,
    topic: &str,
    group: &str,
) -> std::process::Child {
    Command::new(toolbox.bin("kafka-console-consumer.sh"))
        .args([
            "--bootstrap-server",
            bootstrap,
            "--topic",
            topic,
            "--group",
            group,
            "--consumer-property",
            "group.protocol=consumer",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0)
        .spawn()
        .expect("start kafka-console-consumer.sh")
}

/// The scenario on one broker: the seconds from the consumer's kill -9 until its group is
/// empty.
fn session_scenario(toolbox: &Toolbox, addr: SocketAddr, bootstrap: &str) -> Duration {
    let topic = unique_topic("cfg-session");
    let create = toolbox.run(
        "kafka-topics.sh",
        &[
            "--bootstrap-server",
            bootstrap,
            "--create",
            "--topic",
            &topic,
        ],
        None,
        TOOL_TIMEOUT,
    );
    create
        .ok()
        .unwrap_or_else(|e| panic!("create {topic}: {e}"));
    let group = format!("{topic}-g");
    let set = configs(
        toolbox,
        bootstrap,
        &[
            "--alter",
            "--entity-type",
            "groups",
            "--entity-name",
            &group,
            "--add-config",
            "consumer.session.timeout.ms=6000,consumer.heartbeat.interval.ms=1000",
        ],
    );
    set.ok()
        .unwrap_or_else(|e| panic!("set the group's configs: {e}"));
    assert_eq!(joined_heartbeat_interval(addr, &group, &topic), 1_000);
    assert_eq!(
        joined_heartbeat_interval(addr, &format!("{topic}-other"), &topic),
        5_000,
        "a group without configs gets the broker's interval"
    );

    let mut consumer = java_consumer(toolbox, bootstrap, &topic, &group);
    let deadline = Instant::now() + Duration::from_secs(90);
    while members(addr, &group) != 1 {
        assert!(Instant::now() < deadline, "the Java consumer did not join");
        thread::sleep(Duration::from_millis(300));
    }
    // Let it heartbeat a few times at the group's interval, then kill it without a leave.
    thread::sleep(Duration::from_secs(3));
    send_signal(consumer.id(), "KILL");
    let _ = consumer.wait();
    let killed = Instant::now();
    while members(addr, &group) != 0 {
        assert!(
            killed.elapsed() < Duration::from_secs(40),
            "the killed member is still in the group after {:?}",
            killed.elapsed()
        );
        thread::sleep(Duration::from_millis(200));
    }
    killed.elapsed()
}

#[test]
fn a_groups_own_session_timeout_expires_a_java_consumer() {
    let toolbox = Toolbox::installed();
    let (_serial, kafka) = kafka();
    let gregor = Broker::start_with(SETTINGS);
    let on_kafka = session_scenario(&toolbox, kafka.addr(), &kafka.bootstrap());
    let on_gregor = session_scenario(&toolbox, gregor.addr(), &gregor.bootstrap());
    eprintln!("the killed member left after {on_kafka:?} on Kafka, {on_gregor:?} on gregor");
    for (who, took) in [("Kafka", on_kafka), ("gregor", on_gregor)] {
        // Its last heartbeat was at most 1 s before the kill; the session is 6 s.
        assert!(
            took >= Duration::from_secs(4) && took <= Duration::from_secs(15),
            "{who}: the member left {took:?} after the kill, not after the group's 6 s session"
        );
    }
}

/// Kafka's resource types as the requests carry them.
const TOPIC: i8 = 2;
const CLIENT_METRICS: i8 = 16;
const GROUP: i8 = 32;

/// One IncrementalAlterConfigs resource's (error code, message).
fn alter_one(
    conn: &mut RawConn,
    resource_type: i8,
    name: &str,
    ops: &[(&str, i8, Option<&str>)],
) -> (i16, Option<String>) {
    let s = |v: &str| StrBytes::from_string(v.to_string());
    let req = IncrementalAlterConfigsRequest::default().with_resources(vec![
        AlterConfigsResource::default()
            .with_resource_type(resource_type)
            .with_resource_name(s(name))
            .with_configs(
                ops.iter()
                    .map(|(k, op, v)| {
                        AlterableConfig::default()
                            .with_name(s(k))
                            .with_config_operation(*op)
                            .with_value(v.map(s))
                    })
                    .collect(),
            ),
    ]);
    let resp = conn.request(1, &req).expect("IncrementalAlterConfigs");
    let r = &resp.responses[0];
    (
        r.error_code,
        r.error_message.as_ref().map(|m| m.to_string()),
    )
}

/// What one broker answers to the scenario's requests, as text to compare.
fn config_resource_answers(addr: SocketAddr) -> Vec<String> {
    let mut conn = RawConn::connect(addr);
    let mut out = Vec::new();
    let (set, delete) = (0i8, 1i8);
    for (resource_type, name, ops) in [
        (
            CLIENT_METRICS,
            "s1",
            vec![
                ("interval.ms", set, Some("1000")),
                ("metrics", set, Some("org.apache.kafka.")),
            ],
        ),
        (
            CLIENT_METRICS,
            "s2",
            vec![("match", set, Some("client_id=a.*"))],
        ),
        (CLIENT_METRICS, "s2", vec![("match", delete, None)]),
        (
            CLIENT_METRICS,
            "bad",
            vec![("interval.ms", set, Some("99"))],
        ),
        (
            CLIENT_METRICS,
            "bad",
            vec![("interval.ms", set, Some("3600001"))],
        ),
        (
            CLIENT_METRICS,
            "bad",
            vec![("interval.ms", set, Some("ten"))],
        ),
        (
            CLIENT_METRICS,
            "bad",
            vec![("match", set, Some("client_port=1"))],
        ),
        (
            CLIENT_METRICS,
            "bad",
            vec![("match", set, Some("client_id"))],
        ),
        (CLIENT_METRICS, "bad", vec![("nope", set, Some("1"))]),
        (CLIENT_METRICS, "", vec![("interval.ms", set, Some("1000"))]),
        (
            GROUP,
            "g1",
            vec![("consumer.heartbeat.interval.ms", set, Some("6000"))],
        ),
    ] {
        out.push(format!(
            "alter {resource_type} {name:?} {ops:?}: {:?}",
            alter_one(&mut conn, resource_type, name, &ops)
        ));
    }
    // Kafka's broker learns group configs from its metadata log a moment after the change is
    // answered; gregor's answer waits until its image has it.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let req = ListConfigResourcesRequest::default().with_resource_types(vec![GROUP]);
        let resp = conn.request(1, &req).expect("ListConfigResources");
        if resp
            .config_resources
            .iter()
            .any(|r| r.resource_name.as_str() == "g1")
            || Instant::now() > deadline
        {
            break;
        }
        thread::sleep(Duration::from_millis(200));
    }
    for (version, types) in [
        (0i16, vec![]),
        (1, vec![]),
        (1, vec![GROUP, CLIENT_METRICS]),
        (1, vec![CLIENT_METRICS, GROUP, GROUP]),
        (1, vec![8, 4]),
        (1, vec![TOPIC, 64]),
        (1, vec![1]),
    ] {
        let req = ListConfigResourcesRequest::default().with_resource_types(types.clone());
        let resp = conn.request(version, &req).expect("ListConfigResources");
        let listed: Vec<String> = resp
            .config_resources
            .iter()
            .filter(|r| r.resource_type != TOPIC)
            .map(|r| format!("{}:{}", r.resource_type, r.resource_name.as_str()))
            .collect();
        out.push(format!(
            "list v{version} {types:?}: error {} {listed:?}",
            resp.error_code
        ));
    }
    for name in ["s1", "nosuch", ""] {
        let req = DescribeConfigsRequest::default()
            .with_include_synonyms(true)
            .with_include_documentation(true)
            .with_resources(vec![DescribeConfigsResource::default()
                .with_resource_type(CLIENT_METRICS)
                .with_resource_name(StrBytes::from_string(name.to_string()))]);
        let resp = conn.request(4, &req).expect("DescribeConfigs");
        let r = &resp.results[0];
        out.push(format!(
            "describe {name:?}: error {} {:?}",
            r.error_code,
            r.error_message.as_deref()
        ));
        for c in &r.configs {
            let synonyms: Vec<String> = c
                .synonyms
                .iter()
                .map(|s| {
                    format!(
                        "{}={}({})",
                        s.name.as_str(),
                        s.value.as_deref().unwrap_or("null"),
                        s.source
                    )
                })
                .collect();
            out.push(format!(
                "  {}={:?} source {} type {} read_only {} sensitive {} doc {:?} synonyms {synonyms:?}",
                c.name.as_str(),
                c.value.as_deref(),
                c.config_source,
                c.config_type,
                c.read_only,
                c.is_sensitive,
                c.documentation.as_deref()
            ));
        }
    }
    out
}

#[test]
fn config_resource_requests_answer_as_kafka_does() {
    let (_serial, kafka) = kafka();
    let gregor = Broker::start_with(SETTINGS);
    let on_kafka = config_resource_answers(kafka.addr());
    let on_gregor = config_resource_answers(gregor.addr());
    eprintln!("{}", on_gregor.join("\n"));
    let differences: Vec<String> = on_kafka
        .iter()
        .zip(&on_gregor)
        .filter(|(k, g)| k != g)
        .map(|(k, g)| format!("Apache Kafka: {k}\ngregor:       {g}"))
        .collect();
    assert_eq!(on_kafka.len(), on_gregor.len());
    assert!(
        differences.is_empty(),
        "gregor's answers differ from Kafka's:\n{}",
        differences.join("\n\n")
    );
}
