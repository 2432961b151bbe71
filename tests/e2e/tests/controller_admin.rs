//! Kafka's admin tools with `--bootstrap-controller` (KIP-919) on gregor's controller listeners,
//! step by step against a real Apache Kafka 4.4 controller (`kafka_peer`, KRaft combined mode,
//! its CONTROLLER listener) and compared: DescribeConfigs, IncrementalAlterConfigs,
//! AlterConfigs, DescribeAcls, CreateAcls and DeleteAcls, served by every node's controller
//! listener, a controller-only node's too.
//!
//! ```text
//!   gregor: node 1, 2 broker,controller; node 3 controller only; StandardAuthorizer,
//!           super.users=User:ANONYMOUS (the tools' principal on PLAINTEXT)
//!   Kafka 4.4: node 1 broker,controller, the same authorizer settings
//!
//!   kafka-configs.sh / kafka-acls.sh --bootstrap-controller ─► node 3's controller listener
//!                                                          └► Kafka's CONTROLLER listener
//!   kafka-configs.sh / kafka-acls.sh --bootstrap-server     ─► a broker (what reached the log)
//!   RawConn                                                 ─► the same two listeners
//! ```
//!
//! - `kafka_tools_bootstrapping_from_a_controller_answer_as_on_kafka`: on the controller-only
//!   node 3 and on Kafka's controller, with Kafka's tools:
//!   - broker-loggers of the node itself: described (gregor's modules at INFO, `openraft` at
//!     WARN; log4j's loggers on Kafka), a logger set to DEBUG and deleted back to the root's
//!     level; the refusals (a bad level, lower case, an unknown logger, deleting `root`) and a
//!     node that does not exist are printed as Kafka prints them. Node 3's levels are its own:
//!     through node 1's controller listener (the admin client routes `--entity-name 3` to node
//!     3) the logger is DEBUG, on node 1 it is not.
//!   - brokers: the node's dynamic configs and `--all` (node 3: `node.id=3`,
//!     `process.roles=controller`; node 1, a combined node, through the same bootstrap),
//!     `message.max.bytes` set for the node and as the cluster default, described with Kafka's
//!     synonyms, seen at a broker listener (it went through the active controller into the
//!     metadata log), deleted again.
//!   - topics: created at a broker, `retention.ms=1234` set through the controller, described
//!     through the controller (`--all`; without it Kafka's tool lists topics first, which the
//!     admin client refuses on a controller: UnsupportedEndpointTypeException) and through a
//!     broker, the same value; a bad value, an unknown key, a topic that does not exist.
//!   - groups and client-metrics configs set and described (`--all`) through the controller.
//!   - ACLs: `kafka-acls.sh --add/--list/--remove` through the controller (the remove through
//!     node 2's, a combined node), listed at a broker too; an existing ACL, an empty resource
//!     name.
//!   - raw requests on both controller listeners, error codes and messages compared: another
//!     node's id for BROKER_LOGGER (describe and alter) and BROKER (describe), an empty or
//!     non-numeric id, an unknown logger, APPEND on a logger, validate-only, legacy
//!     AlterConfigs on BROKER_LOGGER (refused) and on a topic (applied), a missing topic, a
//!     node that does not exist.
//!
//!   The refusals and confirmations are compared as printed; describes of loggers and of all
//!   configs by their shape (`  <entry>` lines), or by the lines of the key the step set. Reads
//!   after a change are retried until both agree (up to 15 s): a change reaches node 3's image
//!   a moment after the active controller commits it. Every difference is collected and the
//!   test fails listing all of them.
//! - `kafka_acls_without_an_authorizer_on_a_controller_as_on_kafka`: no authorizer, a
//!   controller-only node: `kafka-acls.sh --bootstrap-controller --list/--add/--remove` print
//!   Kafka's SecurityDisabledException messages.
//!
//! What Kafka 4.4's controller does, found while writing this test: it accepts any key for a
//! BROKER resource sent straight to it (`no.such.key=3`, `log.cleaner.threads=abc`,
//! `broker.id=5`: no validation, unlike a broker listener), so the test sets only a dynamic key
//! both know (`message.max.bytes`) and leaves that out; `kafka-configs --describe --entity-type
//! topics|groups|client-metrics --entity-name X` without `--all` fails in the admin client (it
//! lists the resources first, which it does not do over `--bootstrap-controller`:
//! UnsupportedEndpointTypeException, compared for topics); `kafka-configs --alter` of a BROKER or
//! BROKER_LOGGER resource of a node that does not exist is never sent (the admin client finds
//! no such node and times out after a minute), so the raw requests check those answers.
//!
//! Needs the toolbox (`scripts/toolbox`).
//!
//! Run: `cargo test -p gregor-e2e --test controller_admin` (after `cargo build -p gregor-cli`).

use std::net::SocketAddr;
use std::thread;
use std::time::{Duration, Instant};

use gregor_e2e::cluster::{Cluster, Role};
use gregor_e2e::cluster_client::wait_for_brokers;
use gregor_e2e::kafka_peer::KafkaPeer;
use gregor_e2e::kafka_tools::{ToolRun, Toolbox};
use gregor_e2e::raw::RawConn;
use gregor_e2e::unique_topic;
use kafka_protocol::messages::alter_configs_request::{
    AlterConfigsResource as LegacyResource, AlterableConfig as LegacyConfig,
};
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::{
    AlterConfigsRequest, DescribeConfigsRequest, IncrementalAlterConfigsRequest,
};
use kafka_protocol::protocol::StrBytes;

/// How long one tool run may take (Java on two busy cores starts in seconds).
const TOOL_TIMEOUT: Duration = Duration::from_secs(90);
/// How long a read is retried until both brokers agree: a change reaches a node's image a
/// moment after the active controller commits it.
const SETTLE: Duration = Duration::from_secs(15);

/// Kafka's KRaft authorizer, which gregor's `authorizer.class.name` takes too.
const AUTHORIZER: &str =
    "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer";
/// The tools connect over PLAINTEXT as `User:ANONYMOUS`; so do gregor's nodes to each other.
const ANONYMOUS_IS_SUPER: &str = "super.users=User:ANONYMOUS";

const CONFIGS: &str = "kafka-configs.sh";
const ACLS: &str = "kafka-acls.sh";

/// A node id neither cluster has.
const NO_SUCH_NODE: i32 = 9;

/// Kafka's `ConfigResource.Type` codes.
const TOPIC: i8 = 2;
const BROKER: i8 = 4;
const BROKER_LOGGER: i8 = 8;

/// The Kafka APIs KIP-919 adds to a controller listener, and what they are called.
const KIP_919_APIS: &[(i16, &str)] = &[
    (29, "DescribeAcls"),
    (30, "CreateAcls"),
    (31, "DeleteAcls"),
    (32, "DescribeConfigs"),
    (33, "AlterConfigs"),
    (44, "IncrementalAlterConfigs"),
];

/// One broker under test, as the steps see it.
#[derive(Clone)]
struct Side {
    label: &'static str,
    /// The controller listener the steps bootstrap from.
    controller: SocketAddr,
    /// A broker listener, where what reached the metadata log is read back.
    broker: String,
    /// The node id of `controller`: the `{id}` of the steps.
    id: i32,
    /// Another node's id, for the refusals of the raw requests.
    other: i32,
    /// One of the node's loggers, at INFO until a step sets it: the `{logger}` of the steps.
    logger: &'static str,
}

/// Where a tool run bootstraps from.
#[derive(Clone, Copy, Debug)]
enum Via {
    /// `--bootstrap-controller <the side's controller listener>`.
    Controller,
    /// `--bootstrap-server <the side's broker>`.
    Broker,
}

/// What of two runs' printed output must be equal.
#[derive(Clone, Copy, Debug)]
enum Compare {
    /// Everything.
    Exact,
    /// The lines, with each config entry (`  key=value ...`) reduced to `  <entry>`.
    Shape,
    /// The lines that are not config entries, and the entries of this key.
    Lines(&'static str),
}

/// Runs `tool` on `side` with `args`, where `{id}` and `{logger}` stand for the side's.
fn run_tool(toolbox: &Toolbox, side: &Side, tool: &str, via: Via, args: &[&str]) -> ToolRun {
    let bootstrap = bootstrap_of(side, via);
    let args: Vec<String> = args
        .iter()
        .map(|a| {
            a.replace("{id}", &side.id.to_string())
                .replace("{logger}", side.logger)
        })
        .collect();
    let flag = match via {
        Via::Controller => "--bootstrap-controller",
        Via::Broker => "--bootstrap-server",
    };
    let mut all = vec![flag, bootstrap.as_str()];
    all.extend(args.iter().map(String::as_str));
    toolbox.run(tool, &all, None, TOOL_TIMEOUT)
}

fn bootstrap_of(side: &Side, via: Via) -> String {
    match via {
        Via::Controller => side.controller.to_string(),
        Via::Broker => side.broker.clone(),
    }
}

/// What a run printed, comparable between the two sides: [`ToolRun::comparable`] for
/// kafka-configs (with its own `Invalid ...` refusals), [`acl_printed`] for kafka-acls; the
/// bootstrap, the side's node id (outside config entries) and its logger replaced by
/// `<bootstrap>`, `<id>` and `<logger>`.
fn printed(side: &Side, tool: &str, via: Via, run: &ToolRun) -> String {
    let bootstrap = bootstrap_of(side, via);
    let text = if tool == ACLS {
        acl_printed(run)
    } else {
        run.comparable(&bootstrap, &["Invalid "])
    };
    let id = side.id.to_string();
    text.lines()
        .map(|line| {
            let line = line
                .replace(&bootstrap, "<bootstrap>")
                .replace(side.logger, "<logger>");
            if line.starts_with("  ") {
                line
            } else {
                replace_words(&line, &[(id.as_str(), "<id>")])
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// `text` with every whole word found in `map` replaced; a word is a run of ASCII
/// alphanumerics, `-` and `_` (so a topic named `t-1` stays whole).
fn replace_words(text: &str, map: &[(&str, &str)]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut word = String::new();
    let flush = |word: &mut String, out: &mut String| {
        let w = std::mem::take(word);
        match map.iter().find(|(from, _)| *from == w) {
            Some((_, to)) => out.push_str(to),
            None => out.push_str(&w),
        }
    };
    for c in text.chars() {
        if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
            word.push(c);
        } else {
            flush(&mut word, &mut out);
            out.push(c);
        }
    }
    flush(&mut word, &mut out);
    out
}

/// What a `kafka-acls.sh` run shows a user: whether it succeeded, its output with the entries
/// of each resource and the resources sorted (AclCommand prints from hash maps), and the
/// `Error while executing ACL command: ...` line without the stack trace.
fn acl_printed(run: &ToolRun) -> String {
    const ERROR: &str = "Error while executing ACL command: ";
    let (body, error) = match run.stdout.find(ERROR) {
        Some(i) => (
            &run.stdout[..i],
            run.stdout[i..]
                .lines()
                .next()
                .unwrap_or_default()
                .to_string(),
        ),
        None if run.succeeded() => (run.stdout.as_str(), String::new()),
        None => (run.stdout.as_str(), run.reason()),
    };
    format!(
        "succeeded: {}\n{}{error}",
        run.succeeded(),
        gregor_e2e::kafka_tools::sorted_acl_units(body)
    )
}

/// The part of `printed` that `compare` holds equal.
fn view(printed: &str, compare: Compare) -> String {
    let entry = |l: &str| l.starts_with("  ");
    let mut lines: Vec<String> = match compare {
        Compare::Exact => return printed.to_string(),
        Compare::Shape => printed
            .lines()
            .map(|l| {
                if entry(l) {
                    "  <entry>".to_string()
                } else {
                    l.to_string()
                }
            })
            .collect(),
        Compare::Lines(key) => printed
            .lines()
            .filter(|l| !entry(l) || l.trim_start().starts_with(&format!("{key}=")))
            .map(str::to_string)
            .collect(),
    };
    lines.dedup();
    lines.join("\n")
}

/// The level a describe of broker-loggers prints for `logger`.
fn level_in(describe: &str, logger: &str) -> Option<String> {
    describe.lines().find_map(|l| {
        let rest = l.trim().strip_prefix(logger)?.strip_prefix('=')?;
        Some(rest.split_whitespace().next().unwrap_or("").to_string())
    })
}

/// Runs `kafka` and `gregor` at once (two JVMs start in about the time of one and a half).
fn both<K: Send, G>(kafka: impl FnOnce() -> K + Send, gregor: impl FnOnce() -> G) -> (K, G) {
    thread::scope(|s| {
        let on_kafka = s.spawn(kafka);
        let on_gregor = gregor();
        (on_kafka.join().expect("the Kafka run's thread"), on_gregor)
    })
}

/// The two sides and what differed so far.
struct Comparison<'a> {
    toolbox: &'a Toolbox,
    kafka: Side,
    gregor: Side,
    differences: Vec<String>,
    started: Instant,
    steps: usize,
}

impl<'a> Comparison<'a> {
    /// Kafka's controller (node 1, another node 2) against gregor's node `id` (its controller
    /// listener; another node `other`), what reached the metadata log read back at gregor's
    /// node `broker`.
    fn new(
        toolbox: &'a Toolbox,
        kafka: &KafkaPeer,
        cluster: &Cluster,
        id: i32,
        broker: i32,
        other: i32,
        started: Instant,
    ) -> Comparison<'a> {
        Comparison {
            toolbox,
            kafka: Side {
                label: "Kafka",
                controller: kafka.controller_addr(),
                broker: kafka.bootstrap(),
                id: 1,
                other: 2,
                logger: "kafka.server.ControllerApis",
            },
            gregor: Side {
                label: "gregor",
                controller: cluster.node(id).controller_addr,
                broker: cluster.node(broker).addr.to_string(),
                id,
                other,
                logger: "gregor_broker.controller_listener",
            },
            differences: Vec::new(),
            started,
            steps: 0,
        }
    }

    /// Runs one tool step on both sides and compares what they printed; with `settle` (a read),
    /// runs it again on both while they differ, up to [`SETTLE`]. Both printed outputs.
    fn step(
        &mut self,
        tool: &str,
        via: Via,
        args: &[&str],
        compare: Compare,
        settle: bool,
    ) -> (String, String) {
        self.steps += 1;
        let deadline = Instant::now() + SETTLE;
        let (kafka, gregor, toolbox) = (&self.kafka, &self.gregor, self.toolbox);
        loop {
            let (k, g) = both(
                || printed(kafka, tool, via, &run_tool(toolbox, kafka, tool, via, args)),
                || {
                    printed(
                        gregor,
                        tool,
                        via,
                        &run_tool(toolbox, gregor, tool, via, args),
                    )
                },
            );
            let same = view(&k, compare) == view(&g, compare);
            if same || !settle || Instant::now() > deadline {
                let shown = format!("{tool} {:?} {}", via, args.join(" "));
                eprintln!(
                    "[{:5.1} s] {shown}: {}",
                    self.started.elapsed().as_secs_f64(),
                    if same { "same" } else { "DIFFERENT" }
                );
                if !same {
                    self.differences.push(format!(
                        "{shown} ({compare:?}):\n--- Kafka\n{k}\n--- gregor\n{g}"
                    ));
                }
                return (k, g);
            }
            thread::sleep(Duration::from_millis(500));
        }
    }

    /// A check of one side's output that is not a comparison (Kafka's: what the test takes
    /// Kafka to do; gregor's: what the test adds to Kafka's answers).
    fn check(&mut self, ok: bool, what: &str, output: &str) {
        if !ok {
            self.differences.push(format!("{what}:\n{output}"));
        }
    }

    /// A tool run on gregor alone, through the controller listener `controller`: whether it
    /// succeeded, its stdout, and why it failed; `{id}` stands for the gregor side's node.
    fn gregor_only(&self, controller: SocketAddr, tool: &str, args: &[&str]) -> String {
        let side = Side {
            controller,
            ..self.gregor.clone()
        };
        let run = run_tool(self.toolbox, &side, tool, Via::Controller, args);
        format!(
            "succeeded: {}\n{}{}",
            run.succeeded(),
            run.stdout,
            if run.succeeded() {
                String::new()
            } else {
                run.reason()
            }
        )
    }
}

/// Calls `f` until it says it is done, up to [`SETTLE`]; the last value it gave.
fn settle<T>(mut f: impl FnMut() -> (bool, T)) -> T {
    let deadline = Instant::now() + SETTLE;
    loop {
        let (done, value) = f();
        if done || Instant::now() > deadline {
            return value;
        }
        thread::sleep(Duration::from_millis(300));
    }
}

fn s(x: &str) -> StrBytes {
    StrBytes::from_string(x.to_string())
}

/// `code message` of one answer, with `<self>`/`<other>` for the side's ids in the message.
fn answer(side: &Side, code: i16, message: Option<&StrBytes>) -> String {
    let message = message.map(|m| m.to_string()).unwrap_or_default();
    let (me, other) = (side.id.to_string(), side.other.to_string());
    let message = replace_words(
        &message,
        &[(me.as_str(), "<self>"), (other.as_str(), "<other>")],
    );
    format!("{code} {message}")
}

fn describe_configs(
    conn: &mut RawConn,
    side: &Side,
    kind: i8,
    name: &str,
    keys: Option<&[&str]>,
) -> (String, Vec<(String, String, i8)>) {
    let req =
        DescribeConfigsRequest::default().with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(kind)
            .with_resource_name(s(name))
            .with_configuration_keys(keys.map(|k| k.iter().map(|k| s(k)).collect()))]);
    match conn.request(4, &req) {
        Ok(resp) => {
            let r = &resp.results[0];
            let configs = r
                .configs
                .iter()
                .map(|c| {
                    (
                        c.name.to_string(),
                        c.value.as_ref().map(|v| v.to_string()).unwrap_or_default(),
                        c.config_source,
                    )
                })
                .collect();
            // A success's message is "" on Kafka and may be absent on gregor: the same to a
            // client.
            let message = r.error_message.as_ref().filter(|_| r.error_code != 0);
            (answer(side, r.error_code, message), configs)
        }
        Err(e) => (format!("no answer: {e}"), Vec::new()),
    }
}

fn incremental_alter(
    conn: &mut RawConn,
    side: &Side,
    kind: i8,
    name: &str,
    (key, op, value): (&str, i8, Option<&str>),
    validate_only: bool,
) -> String {
    let req = IncrementalAlterConfigsRequest::default()
        .with_validate_only(validate_only)
        .with_resources(vec![AlterConfigsResource::default()
            .with_resource_type(kind)
            .with_resource_name(s(name))
            .with_configs(vec![AlterableConfig::default()
                .with_name(s(key))
                .with_config_operation(op)
                .with_value(value.map(s))])]);
    match conn.request(1, &req) {
        Ok(resp) => {
            let r = &resp.responses[0];
            answer(side, r.error_code, r.error_message.as_ref())
        }
        Err(e) => format!("no answer: {e}"),
    }
}

fn legacy_alter(
    conn: &mut RawConn,
    side: &Side,
    kind: i8,
    name: &str,
    key: &str,
    value: &str,
) -> String {
    let req = AlterConfigsRequest::default().with_resources(vec![LegacyResource::default()
        .with_resource_type(kind)
        .with_resource_name(s(name))
        .with_configs(vec![LegacyConfig::default()
            .with_name(s(key))
            .with_value(Some(s(value)))])]);
    match conn.request(2, &req) {
        Ok(resp) => {
            let r = &resp.responses[0];
            answer(side, r.error_code, r.error_message.as_ref())
        }
        Err(e) => format!("no answer: {e}"),
    }
}

/// The KIP-919 APIs the side's controller listener lists in ApiVersions, with their ranges.
fn kip_919_versions(side: &Side) -> Vec<String> {
    let mut conn = RawConn::connect(side.controller);
    let versions = conn.api_versions();
    KIP_919_APIS
        .iter()
        .filter_map(|&(key, name)| {
            versions
                .api_keys
                .iter()
                .find(|k| k.api_key == key)
                .map(|k| format!("{name} {}..{}", k.min_version, k.max_version))
        })
        .collect()
}

/// The raw requests of the comparison: `(what, answer)` on one side's controller listener.
fn raw_answers(side: &Side, topic: &str) -> Vec<(String, String)> {
    let mut conn = RawConn::connect(side.controller);
    let (me, other, none) = (
        side.id.to_string(),
        side.other.to_string(),
        NO_SUCH_NODE.to_string(),
    );
    let mut out = Vec::new();
    let mut push = |what: &str, answer: String| out.push((what.to_string(), answer));

    let d = |conn: &mut RawConn, kind, name: &str, keys: Option<&[&str]>| {
        describe_configs(conn, side, kind, name, keys).0
    };
    push(
        "DescribeConfigs BROKER_LOGGER <self> [root]",
        d(&mut conn, BROKER_LOGGER, &me, Some(&["root"])),
    );
    push(
        "DescribeConfigs BROKER_LOGGER <other>",
        d(&mut conn, BROKER_LOGGER, &other, None),
    );
    push(
        "DescribeConfigs BROKER_LOGGER \"\"",
        d(&mut conn, BROKER_LOGGER, "", None),
    );
    push(
        "DescribeConfigs BROKER_LOGGER x",
        d(&mut conn, BROKER_LOGGER, "x", None),
    );
    push(
        "DescribeConfigs BROKER <other>",
        d(&mut conn, BROKER, &other, None),
    );
    push(
        "DescribeConfigs BROKER \"\" (the default)",
        d(&mut conn, BROKER, "", Some(&["message.max.bytes"])),
    );
    push(
        "DescribeConfigs TOPIC nosuch",
        d(&mut conn, TOPIC, "nosuch-controller-admin", None),
    );
    push("DescribeConfigs TOPIC \"\"", d(&mut conn, TOPIC, "", None));

    let ia = |conn: &mut RawConn, kind, name: &str, op, validate_only| {
        incremental_alter(conn, side, kind, name, op, validate_only)
    };
    push(
        "IncrementalAlterConfigs BROKER_LOGGER <other> SET root=DEBUG",
        ia(
            &mut conn,
            BROKER_LOGGER,
            &other,
            ("root", 0, Some("DEBUG")),
            false,
        ),
    );
    push(
        "IncrementalAlterConfigs BROKER_LOGGER <self> SET no.such.Logger=DEBUG",
        ia(
            &mut conn,
            BROKER_LOGGER,
            &me,
            ("no.such.Logger", 0, Some("DEBUG")),
            false,
        ),
    );
    push(
        "IncrementalAlterConfigs BROKER_LOGGER <self> APPEND root=DEBUG",
        ia(
            &mut conn,
            BROKER_LOGGER,
            &me,
            ("root", 2, Some("DEBUG")),
            false,
        ),
    );
    push(
        "IncrementalAlterConfigs BROKER_LOGGER <self> SET root=DEBUG validate-only",
        ia(
            &mut conn,
            BROKER_LOGGER,
            &me,
            ("root", 0, Some("DEBUG")),
            true,
        ),
    );
    push(
        "DescribeConfigs BROKER_LOGGER <self> [root] after validate-only",
        describe_configs(&mut conn, side, BROKER_LOGGER, &me, Some(&["root"]))
            .1
            .first()
            .map(|(_, v, _)| v.clone())
            .unwrap_or_default(),
    );
    push(
        "IncrementalAlterConfigs BROKER <no such node> SET message.max.bytes",
        ia(
            &mut conn,
            BROKER,
            &none,
            ("message.max.bytes", 0, Some("2000000")),
            false,
        ),
    );
    push(
        "AlterConfigs BROKER_LOGGER <self> root=INFO",
        legacy_alter(&mut conn, side, BROKER_LOGGER, &me, "root", "INFO"),
    );
    push(
        "AlterConfigs BROKER <no such node> message.max.bytes",
        legacy_alter(
            &mut conn,
            side,
            BROKER,
            &none,
            "message.max.bytes",
            "2000000",
        ),
    );
    push(
        "AlterConfigs TOPIC nosuch retention.ms=5555",
        legacy_alter(
            &mut conn,
            side,
            TOPIC,
            "nosuch-controller-admin",
            "retention.ms",
            "5555",
        ),
    );
    push(
        "AlterConfigs TOPIC <topic> retention.ms=5555",
        legacy_alter(&mut conn, side, TOPIC, topic, "retention.ms", "5555"),
    );
    // AlterConfigs replaces the topic's configs; read back through the controller listener
    // once the node's image has it.
    let read_back = settle(|| {
        let (code, configs) =
            describe_configs(&mut conn, side, TOPIC, topic, Some(&["retention.ms"]));
        let shown = format!("{code} {configs:?}");
        (shown.contains("\"5555\""), shown)
    });
    push(
        "DescribeConfigs TOPIC <topic> [retention.ms] after AlterConfigs",
        read_back,
    );
    out
}

#[test]
fn kafka_tools_bootstrapping_from_a_controller_answer_as_on_kafka() {
    let started = Instant::now();
    let toolbox = Toolbox::installed();
    let sets = [AUTHORIZER, ANONYMOUS_IS_SUPER];
    let (kafka, cluster) = both(
        || KafkaPeer::start_with(&sets),
        || Cluster::start_with_roles(&[Role::Combined, Role::Combined, Role::Controller], &sets),
    );
    wait_for_brokers(&cluster, 2);
    eprintln!(
        "Kafka {} and gregor (nodes 1, 2 combined, 3 controller-only) up after {:.1} s",
        kafka.version(),
        started.elapsed().as_secs_f64()
    );
    let mut c = Comparison::new(&toolbox, &kafka, &cluster, 3, 1, 1, started);

    // Before any tool: the controller listener must offer the APIs, or every run below would
    // wait for its timeout.
    let (kafka_apis, gregor_apis) = (kip_919_versions(&c.kafka), kip_919_versions(&c.gregor));
    eprintln!("controller ApiVersions: Kafka {kafka_apis:?}; gregor {gregor_apis:?}");
    assert_eq!(
        kafka_apis.len(),
        KIP_919_APIS.len(),
        "Kafka's controller: {kafka_apis:?}"
    );
    assert_eq!(
        gregor_apis.len(),
        KIP_919_APIS.len(),
        "gregor's controller listener (node 3) does not list every KIP-919 API: {gregor_apis:?}\n{}",
        cluster.logs()
    );

    let loggers = ["--entity-type", "broker-loggers", "--entity-name", "{id}"];
    let with = |extra: &[&'static str]| -> Vec<&'static str> {
        loggers
            .iter()
            .copied()
            .chain(extra.iter().copied())
            .collect()
    };
    use Compare::{Exact, Lines, Shape};
    use Via::{Broker, Controller};

    // broker-loggers: the node's own levels.
    let (k, g) = c.step(CONFIGS, Controller, &with(&["--describe"]), Shape, false);
    for (logger, level) in [
        ("root", "INFO"),
        ("gregor_broker", "INFO"),
        ("openraft", "WARN"),
        ("<logger>", "INFO"),
    ] {
        let got = level_in(&g, logger);
        c.check(
            got.as_deref() == Some(level),
            &format!("gregor's node 3 describes {logger} at {got:?}, not {level}"),
            &g,
        );
    }
    c.check(
        level_in(&k, "<logger>").as_deref() == Some("INFO"),
        "Kafka's controller lists its logger at INFO",
        &k,
    );
    c.step(
        CONFIGS,
        Controller,
        &with(&["--alter", "--add-config", "{logger}=DEBUG"]),
        Exact,
        false,
    );
    let (k, g) = c.step(CONFIGS, Controller, &with(&["--describe"]), Shape, false);
    for (side, out) in [("Kafka", &k), ("gregor", &g)] {
        c.check(
            level_in(out, "<logger>").as_deref() == Some("DEBUG"),
            &format!("{side}: the logger set to DEBUG is described at DEBUG"),
            out,
        );
    }
    // The admin client routes `--entity-name 3` to node 3 whichever controller it bootstraps
    // from; node 1's levels are its own.
    let node1 = cluster.node(1).controller_addr;
    let routed = c.gregor_only(node1, CONFIGS, &with(&["--describe"]));
    c.check(
        level_in(&routed, c.gregor.logger).as_deref() == Some("DEBUG"),
        "gregor: node 3's logger through node 1's controller listener is DEBUG",
        &routed,
    );
    let own = c.gregor_only(
        node1,
        CONFIGS,
        &[
            "--describe",
            "--entity-type",
            "broker-loggers",
            "--entity-name",
            "1",
        ],
    );
    c.check(
        level_in(&own, c.gregor.logger).as_deref() == Some("INFO")
            && level_in(&own, "root").as_deref() == Some("INFO"),
        "gregor: node 1's own loggers stay at INFO",
        &own,
    );
    c.step(
        CONFIGS,
        Controller,
        &with(&["--alter", "--delete-config", "{logger}"]),
        Exact,
        false,
    );
    let (k, g) = c.step(CONFIGS, Controller, &with(&["--describe"]), Shape, false);
    for (side, out) in [("Kafka", &k), ("gregor", &g)] {
        c.check(
            level_in(out, "<logger>").as_deref() == Some("INFO"),
            &format!("{side}: the deleted logger is back at the root's INFO"),
            out,
        );
    }
    for args in [
        &["--alter", "--add-config", "root=VERBOSE"][..],
        &["--alter", "--add-config", "root=debug"],
        &["--alter", "--add-config", "no.such.Logger=DEBUG"],
        &["--alter", "--delete-config", "no.such.Logger"],
        &["--alter", "--delete-config", "root"],
    ] {
        c.step(CONFIGS, Controller, &with(args), Exact, false);
    }
    c.step(
        CONFIGS,
        Controller,
        &[
            "--describe",
            "--entity-type",
            "broker-loggers",
            "--entity-name",
            "9",
        ],
        Exact,
        false,
    );

    // brokers: the node's configs, then a dynamic one through the active controller.
    let node = ["--entity-type", "brokers", "--entity-name", "{id}"];
    let node_with = |extra: &[&'static str]| -> Vec<&'static str> {
        node.iter().copied().chain(extra.iter().copied()).collect()
    };
    let default = ["--entity-type", "brokers", "--entity-default"];
    let default_with = |extra: &[&'static str]| -> Vec<&'static str> {
        default
            .iter()
            .copied()
            .chain(extra.iter().copied())
            .collect()
    };
    c.step(
        CONFIGS,
        Controller,
        &node_with(&["--describe"]),
        Exact,
        false,
    );
    let (_, g) = c.step(
        CONFIGS,
        Controller,
        &node_with(&["--describe", "--all"]),
        Shape,
        false,
    );
    for line in ["  node.id=3 ", "  process.roles=controller "] {
        c.check(
            g.lines().any(|l| l.starts_with(line)),
            &format!("gregor's node 3 describes `{}` with --all", line.trim()),
            &g,
        );
    }
    let combined = c.gregor_only(
        c.gregor.controller,
        CONFIGS,
        &[
            "--describe",
            "--entity-type",
            "brokers",
            "--entity-name",
            "1",
            "--all",
        ],
    );
    c.check(
        combined.contains("All configs for broker 1 are:")
            && combined.lines().any(|l| l.starts_with("  node.id=1 ")),
        "gregor: node 1 (combined) described with --all through node 3's controller listener",
        &combined,
    );
    let every = c.gregor_only(
        c.gregor.controller,
        CONFIGS,
        &["--describe", "--entity-type", "brokers"],
    );
    c.check(
        (1..=3).all(|id| every.contains(&format!("Dynamic configs for broker {id} are:")))
            && every.contains("Default configs for brokers in the cluster are:"),
        "gregor: --describe --entity-type brokers lists the three controllers and the default",
        &every,
    );
    c.step(
        CONFIGS,
        Controller,
        &node_with(&["--alter", "--add-config", "message.max.bytes=2000000"]),
        Exact,
        false,
    );
    c.step(
        CONFIGS,
        Controller,
        &node_with(&["--describe"]),
        Exact,
        true,
    );
    c.step(
        CONFIGS,
        Controller,
        &default_with(&["--alter", "--add-config", "message.max.bytes=3000000"]),
        Exact,
        false,
    );
    c.step(
        CONFIGS,
        Controller,
        &default_with(&["--describe"]),
        Lines("message.max.bytes"),
        true,
    );
    c.step(
        CONFIGS,
        Controller,
        &node_with(&["--describe"]),
        Exact,
        true,
    );
    c.step(
        CONFIGS,
        Broker,
        &default_with(&["--describe"]),
        Lines("message.max.bytes"),
        true,
    );
    c.step(
        CONFIGS,
        Controller,
        &node_with(&["--alter", "--delete-config", "message.max.bytes"]),
        Exact,
        false,
    );
    c.step(
        CONFIGS,
        Controller,
        &default_with(&["--alter", "--delete-config", "message.max.bytes"]),
        Exact,
        false,
    );
    c.step(
        CONFIGS,
        Controller,
        &node_with(&["--describe"]),
        Exact,
        true,
    );
    c.step(
        CONFIGS,
        Controller,
        &[
            "--describe",
            "--entity-type",
            "brokers",
            "--entity-name",
            "9",
        ],
        Exact,
        false,
    );

    // topics: created at a broker, altered through the controller.
    let topic = unique_topic("controller-admin");
    let group = unique_topic("controller-admin-group");
    let subscription = unique_topic("controller-admin-metrics");
    let t = ["--entity-type", "topics", "--entity-name", topic.as_str()];
    let topic_with = |extra: &[&'static str]| -> Vec<&str> {
        t.iter().copied().chain(extra.iter().copied()).collect()
    };
    c.step(
        "kafka-topics.sh",
        Broker,
        &[
            "--create",
            "--topic",
            &topic,
            "--partitions",
            "1",
            "--replication-factor",
            "1",
        ],
        Exact,
        false,
    );
    c.step(
        CONFIGS,
        Controller,
        &topic_with(&["--alter", "--add-config", "retention.ms=1234"]),
        Exact,
        true,
    );
    c.step(
        CONFIGS,
        Controller,
        &topic_with(&["--describe"]),
        Exact,
        false,
    );
    c.step(
        CONFIGS,
        Controller,
        &topic_with(&["--describe", "--all"]),
        Lines("retention.ms"),
        true,
    );
    c.step(CONFIGS, Broker, &topic_with(&["--describe"]), Exact, true);
    let combined = c.gregor_only(node1, CONFIGS, &topic_with(&["--describe", "--all"]));
    c.check(
        combined
            .lines()
            .any(|l| l.starts_with("  retention.ms=1234 ")),
        "gregor: node 1's controller listener describes retention.ms=1234",
        &combined,
    );
    for args in [
        &["--alter", "--add-config", "retention.ms=abc"][..],
        &["--alter", "--add-config", "no.such.key=1"],
    ] {
        c.step(CONFIGS, Controller, &topic_with(args), Exact, false);
    }
    let missing = [
        "--entity-type",
        "topics",
        "--entity-name",
        "nosuch-controller-admin",
    ];
    for extra in [
        &["--alter", "--add-config", "retention.ms=1234"][..],
        &["--describe", "--all"],
    ] {
        let args: Vec<&str> = missing.iter().chain(extra).copied().collect();
        c.step(CONFIGS, Controller, &args, Exact, false);
    }

    // groups and client-metrics: the metadata image's other config resources.
    let g_args = ["--entity-type", "groups", "--entity-name", group.as_str()];
    let alter_group: Vec<&str> = g_args
        .iter()
        .copied()
        .chain([
            "--alter",
            "--add-config",
            "consumer.session.timeout.ms=50000",
        ])
        .collect();
    c.step(CONFIGS, Controller, &alter_group, Exact, false);
    let describe_group: Vec<&str> = g_args
        .iter()
        .copied()
        .chain(["--describe", "--all"])
        .collect();
    c.step(
        CONFIGS,
        Controller,
        &describe_group,
        Lines("consumer.session.timeout.ms"),
        true,
    );
    let m_args = [
        "--entity-type",
        "client-metrics",
        "--entity-name",
        subscription.as_str(),
    ];
    let alter_metrics: Vec<&str> = m_args
        .iter()
        .copied()
        .chain([
            "--alter",
            "--add-config",
            "metrics=org.apache.kafka.producer.,interval.ms=60000",
        ])
        .collect();
    c.step(CONFIGS, Controller, &alter_metrics, Exact, false);
    let describe_metrics: Vec<&str> = m_args
        .iter()
        .copied()
        .chain(["--describe", "--all"])
        .collect();
    c.step(CONFIGS, Controller, &describe_metrics, Exact, true);

    // ACLs through the controller: node 3 (controller-only) adds and lists, a broker lists,
    // node 2 (combined) removes.
    let alice = [
        "--allow-principal",
        "User:alice",
        "--operation",
        "Read",
        "--topic",
        topic.as_str(),
    ];
    let add_alice: Vec<&str> = ["--add"].into_iter().chain(alice).collect();
    let add_bob = [
        "--add",
        "--deny-principal",
        "User:bob",
        "--operation",
        "Write",
        "--topic",
        topic.as_str(),
        "--resource-pattern-type",
        "prefixed",
    ];
    c.step(ACLS, Controller, &["--list"], Exact, false);
    c.step(ACLS, Controller, &add_alice, Exact, false);
    c.step(ACLS, Controller, &add_alice, Exact, true);
    c.step(ACLS, Controller, &add_bob, Exact, false);
    c.step(ACLS, Controller, &["--list"], Exact, true);
    c.step(ACLS, Broker, &["--list"], Exact, true);
    let remove_alice: Vec<&str> = ["--remove", "--force"].into_iter().chain(alice).collect();
    let node3 = c.gregor.controller;
    c.gregor.controller = cluster.node(2).controller_addr;
    c.step(ACLS, Controller, &remove_alice, Exact, false);
    c.gregor.controller = node3;
    c.step(ACLS, Controller, &["--list"], Exact, true);
    c.step(
        ACLS,
        Controller,
        &[
            "--add",
            "--allow-principal",
            "User:alice",
            "--operation",
            "Read",
            "--topic",
            "",
        ],
        Exact,
        false,
    );

    // Raw requests on both controller listeners.
    let (on_kafka, on_gregor) = both(
        || raw_answers(&c.kafka, &topic),
        || raw_answers(&c.gregor, &topic),
    );
    for ((what, k), (_, g)) in on_kafka.iter().zip(&on_gregor) {
        eprintln!(
            "{what}: Kafka {k:?}{}",
            if k == g {
                String::new()
            } else {
                format!(", gregor {g:?}")
            }
        );
        if k != g {
            c.differences
                .push(format!("raw {what}:\n--- Kafka\n{k}\n--- gregor\n{g}"));
        }
    }

    eprintln!(
        "{} tool steps and {} raw requests on both in {:.1} s",
        c.steps,
        on_kafka.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(
        c.differences.is_empty(),
        "{} difference(s) between gregor ({}) and Kafka ({}):\n\n{}\n--- gregor logs ---\n{}",
        c.differences.len(),
        c.gregor.label,
        c.kafka.label,
        c.differences.join("\n\n"),
        cluster.logs()
    );
}

#[test]
fn kafka_acls_without_an_authorizer_on_a_controller_as_on_kafka() {
    let started = Instant::now();
    let toolbox = Toolbox::installed();
    let (kafka, cluster) = both(KafkaPeer::start, || {
        Cluster::start_with_roles(&[Role::Combined, Role::Controller], &[])
    });
    wait_for_brokers(&cluster, 1);
    let mut c = Comparison::new(&toolbox, &kafka, &cluster, 2, 1, 1, started);
    // --list is DescribeAcls; --add asks DescribeAcls first; --remove is DeleteAcls, whose
    // message Kafka words differently.
    for args in [
        &["--list"][..],
        &[
            "--add",
            "--allow-principal",
            "User:alice",
            "--operation",
            "Read",
            "--topic",
            "orders",
        ],
        &["--remove", "--force", "--topic", "orders"],
    ] {
        let (k, _) = c.step(ACLS, Via::Controller, args, Compare::Exact, false);
        c.check(
            k.contains("SecurityDisabledException"),
            "Kafka's controller answers SecurityDisabledException",
            &k,
        );
    }
    assert!(
        c.differences.is_empty(),
        "{} difference(s) between gregor and Kafka:\n\n{}\n--- gregor logs ---\n{}",
        c.differences.len(),
        c.differences.join("\n\n"),
        cluster.logs()
    );
}
