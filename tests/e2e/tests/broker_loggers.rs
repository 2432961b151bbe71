//! A running broker's log levels with Kafka's own `kafka-configs.sh --entity-type
//! broker-loggers` (DescribeConfigs and IncrementalAlterConfigs on BROKER_LOGGER, KIP-412):
//!
//! - `kafka_configs_changes_gregors_log_levels`: describe lists the root and gregor's crate
//!   targets at INFO; setting `gregor_broker.connection` to DEBUG makes the broker print that
//!   target's DEBUG line for a connection it closes on a bad frame; deleting the level stops
//!   it again, and describe shows the target back at the root's level. validate-only changes
//!   nothing (a raw request); another broker's id, an unknown logger, a bad level, APPEND and
//!   deleting the root are refused with Kafka's codes. `gregor configs --broker-logger 1`
//!   sets and deletes the same level.
//! - `refusals_and_shapes_match_kafka`: the same `kafka-configs.sh` steps against a real
//!   Apache Kafka 4.4 broker and gregor. Logger names differ (log4j's against tracing's), so
//!   the refusals, whose loggers both brokers have (`root`) or neither has, are compared as
//!   printed; the successful steps by their shape (success, the lines' form).
//!
//! Needs the toolbox (`scripts/toolbox`).
//!
//! Run: `cargo test -p gregor-e2e --test broker_loggers` (after `cargo build -p gregor-cli`).

use std::time::{Duration, Instant};

use gregor_e2e::kafka_peer::KafkaPeer;
use gregor_e2e::kafka_tools::{ToolRun, Toolbox};
use gregor_e2e::raw::RawConn;
use gregor_e2e::Broker;
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::incremental_alter_configs_request::{
    AlterConfigsResource, AlterableConfig,
};
use kafka_protocol::messages::{DescribeConfigsRequest, IncrementalAlterConfigsRequest};
use kafka_protocol::protocol::StrBytes;

/// How long one tool run may take.
const TOOL_TIMEOUT: Duration = Duration::from_secs(90);
/// Kafka's `ConfigResource.Type.BROKER_LOGGER`.
const BROKER_LOGGER: i8 = 8;
/// The target whose DEBUG line the test looks for (the connection closed on a bad frame).
const TARGET: &str = "gregor_broker::connection";
/// Its logger name (dotted, as `kafka-configs` takes it).
const LOGGER: &str = "gregor_broker.connection";

fn configs(toolbox: &Toolbox, bootstrap: &str, args: &[&str]) -> ToolRun {
    let mut all = vec!["--bootstrap-server", bootstrap];
    all.extend_from_slice(args);
    toolbox.run("kafka-configs.sh", &all, None, TOOL_TIMEOUT)
}

/// `kafka-configs.sh --entity-type broker-loggers --entity-name 1` with `args`.
fn loggers(toolbox: &Toolbox, bootstrap: &str, args: &[&str]) -> ToolRun {
    let mut all = vec!["--entity-type", "broker-loggers", "--entity-name", "1"];
    all.extend_from_slice(args);
    configs(toolbox, bootstrap, &all)
}

/// The `name=LEVEL` of one logger in a describe's output.
fn level_in(describe: &str, logger: &str) -> Option<String> {
    describe.lines().find_map(|l| {
        let l = l.trim();
        let rest = l.strip_prefix(logger)?.strip_prefix('=')?;
        Some(rest.split_whitespace().next().unwrap_or("").to_string())
    })
}

/// What a run printed ([`ToolRun::comparable`]), with the tool's own refusals (the names it
/// checks against its describe, `Invalid ...`).
fn printed(run: &ToolRun, bootstrap: &str) -> String {
    run.comparable(bootstrap, &["Invalid "])
}

/// The lines of the broker's log that are DEBUG lines of [`TARGET`].
fn debug_lines(broker: &Broker) -> usize {
    broker
        .logs()
        .lines()
        .filter(|l| l.contains("DEBUG") && l.contains(TARGET))
        .count()
}

/// Opens a connection and sends a frame too short for a request header: the broker closes it
/// (logged at DEBUG by [`TARGET`]).
fn bad_frame(broker: &Broker) {
    let mut conn = RawConn::connect(broker.addr());
    conn.write_raw(&[0, 0, 0, 2, 0, 18]).expect("write");
    conn.wait_closed(Duration::from_secs(10));
}

/// Waits until `f` holds, up to 10 s.
fn eventually(what: &str, broker: &Broker, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(
            Instant::now() < deadline,
            "{what} did not happen; log:\n{}",
            broker.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn alter_request(
    name: &str,
    ops: &[(&str, i8, Option<&str>)],
    validate_only: bool,
) -> IncrementalAlterConfigsRequest {
    IncrementalAlterConfigsRequest::default()
        .with_validate_only(validate_only)
        .with_resources(vec![AlterConfigsResource::default()
            .with_resource_type(BROKER_LOGGER)
            .with_resource_name(StrBytes::from_string(name.to_string()))
            .with_configs(
                ops.iter()
                    .map(|(k, op, v)| {
                        AlterableConfig::default()
                            .with_name(StrBytes::from_string(k.to_string()))
                            .with_config_operation(*op)
                            .with_value(v.map(|v| StrBytes::from_string(v.to_string())))
                    })
                    .collect(),
            )])
}

/// Sends an IncrementalAlterConfigs of `ops` on BROKER_LOGGER `name`; its error code and message.
fn alter_raw(
    conn: &mut RawConn,
    name: &str,
    ops: &[(&str, i8, Option<&str>)],
    validate_only: bool,
) -> (i16, String) {
    let resp = conn
        .request(1, &alter_request(name, ops, validate_only))
        .expect("IncrementalAlterConfigs");
    let r = &resp.responses[0];
    (
        r.error_code,
        r.error_message
            .as_ref()
            .map(|m| m.to_string())
            .unwrap_or_default(),
    )
}

/// The level DescribeConfigs gives `logger` on BROKER_LOGGER `1`, and the entry's source.
fn describe_raw(conn: &mut RawConn, logger: &str) -> Option<(String, i8)> {
    let req =
        DescribeConfigsRequest::default().with_resources(vec![DescribeConfigsResource::default()
            .with_resource_type(BROKER_LOGGER)
            .with_resource_name(StrBytes::from_static_str("1"))
            .with_configuration_keys(Some(vec![StrBytes::from_string(logger.to_string())]))]);
    let resp = conn.request(4, &req).expect("DescribeConfigs");
    let result = &resp.results[0];
    assert_eq!(result.error_code, 0, "{:?}", result.error_message);
    result.configs.first().map(|c| {
        (
            c.value.as_ref().map(|v| v.to_string()).unwrap_or_default(),
            c.config_source,
        )
    })
}

#[test]
fn kafka_configs_changes_gregors_log_levels() {
    let toolbox = Toolbox::installed();
    let broker = Broker::start();
    let bootstrap = broker.bootstrap();

    let described = loggers(&toolbox, &bootstrap, &["--describe"]);
    let out = described.ok().unwrap_or_else(|e| panic!("describe: {e}"));
    assert_eq!(level_in(out, "root").as_deref(), Some("INFO"), "{out}");
    assert_eq!(
        level_in(out, "gregor_broker").as_deref(),
        Some("INFO"),
        "{out}"
    );
    assert_eq!(level_in(out, "openraft").as_deref(), Some("WARN"), "{out}");

    // At INFO the closed connection leaves no DEBUG line.
    bad_frame(&broker);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(debug_lines(&broker), 0, "{}", broker.logs());

    // validate_only changes nothing.
    let mut conn = RawConn::connect(broker.addr());
    assert_eq!(
        alter_raw(&mut conn, "1", &[(TARGET, 0, Some("DEBUG"))], true),
        (0, String::new())
    );
    // Listed only once it has logged, and then at the root's level.
    let before = describe_raw(&mut conn, LOGGER);
    assert!(
        before.is_none() || before == Some(("INFO".into(), 6)),
        "{before:?}"
    );

    let set = loggers(
        &toolbox,
        &bootstrap,
        &["--alter", "--add-config", &format!("{LOGGER}=DEBUG")],
    );
    set.ok().unwrap_or_else(|e| panic!("set: {e}"));
    let described = loggers(&toolbox, &bootstrap, &["--describe"]);
    let out = described.ok().unwrap_or_else(|e| panic!("describe: {e}"));
    assert_eq!(level_in(out, LOGGER).as_deref(), Some("DEBUG"), "{out}");
    assert_eq!(level_in(out, "root").as_deref(), Some("INFO"), "{out}");
    assert_eq!(describe_raw(&mut conn, LOGGER), Some(("DEBUG".into(), 6)));

    bad_frame(&broker);
    eventually("a DEBUG line of the connection", &broker, || {
        debug_lines(&broker) >= 1
    });

    let delete = loggers(
        &toolbox,
        &bootstrap,
        &["--alter", "--delete-config", LOGGER],
    );
    delete.ok().unwrap_or_else(|e| panic!("delete: {e}"));
    let seen = debug_lines(&broker);
    bad_frame(&broker);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(debug_lines(&broker), seen, "{}", broker.logs());
    // It has logged, so it is listed, at the root's level.
    assert_eq!(describe_raw(&mut conn, LOGGER), Some(("INFO".into(), 6)));

    // Refusals, with Kafka's codes.
    let invalid_config = 40;
    let invalid_request = 42;
    let code = |r: (i16, String)| r.0;
    assert_eq!(
        code(alter_raw(
            &mut conn,
            "2",
            &[(TARGET, 0, Some("DEBUG"))],
            false
        )),
        invalid_request
    );
    assert_eq!(
        code(alter_raw(
            &mut conn,
            "1",
            &[("no.such.Logger", 0, Some("DEBUG"))],
            false
        )),
        invalid_config
    );
    assert_eq!(
        code(alter_raw(
            &mut conn,
            "1",
            &[(TARGET, 0, Some("VERBOSE"))],
            false
        )),
        invalid_config
    );
    assert_eq!(
        code(alter_raw(
            &mut conn,
            "1",
            &[(TARGET, 2, Some("DEBUG"))],
            false
        )),
        invalid_request
    );
    assert_eq!(
        code(alter_raw(&mut conn, "1", &[("root", 1, None)], false)),
        invalid_request
    );
    // kafka-configs checks the names against the broker's describe before it alters.
    let wrong = loggers(
        &toolbox,
        &bootstrap,
        &["--alter", "--add-config", "no.such.Logger=DEBUG"],
    );
    assert!(!wrong.succeeded());
    assert!(
        wrong
            .stderr
            .contains("Invalid broker logger(s): no.such.Logger"),
        "{}",
        wrong.transcript()
    );
    // `gregor configs --broker-logger` does the same.
    let cli = |args: &[&str]| {
        let out = std::process::Command::new(gregor_e2e::broker::gregor_bin())
            .args(["configs"])
            .args(args)
            .args(["-b", &bootstrap, "--broker-logger", "1"])
            .output()
            .expect("run gregor configs");
        assert!(out.status.success(), "{args:?}: {:?}", out);
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    cli(&["alter", "--set", &format!("{LOGGER}=TRACE")]);
    let described = cli(&["describe"]);
    assert!(
        described
            .lines()
            .any(|l| l.starts_with(LOGGER) && l.contains("TRACE")),
        "{described}"
    );
    let seen = debug_lines(&broker);
    bad_frame(&broker);
    eventually("a DEBUG line at TRACE", &broker, || {
        debug_lines(&broker) > seen
    });
    cli(&["alter", "--delete", LOGGER]);
    assert_eq!(describe_raw(&mut conn, LOGGER), Some(("INFO".into(), 6)));

    // The broker is still up and at INFO.
    assert_eq!(describe_raw(&mut conn, "root"), Some(("INFO".into(), 6)));
}

/// The `kafka-configs.sh` steps run against both brokers; `true` where the printed output must
/// be the same, `false` where only its shape is compared.
fn steps() -> Vec<(Vec<&'static str>, bool)> {
    vec![
        (vec!["--describe"], false),
        (vec!["--alter", "--add-config", "root=VERBOSE"], true),
        (vec!["--alter", "--add-config", "root=debug"], true),
        (
            vec!["--alter", "--add-config", "no.such.Logger=DEBUG"],
            true,
        ),
        (vec!["--alter", "--delete-config", "no.such.Logger"], true),
        (vec!["--alter", "--delete-config", "root"], true),
        (vec!["--alter", "--add-config", "root=WARN"], true),
        (vec!["--alter", "--add-config", "root=INFO"], true),
    ]
}

/// A describe's lines with logger names and levels taken out: its form.
fn shape(printed: &str) -> Vec<String> {
    let mut lines: Vec<String> = printed
        .lines()
        .map(|l| match l.trim_start().split_once('=') {
            Some((_, rest)) if l.starts_with(' ') => {
                let after = rest.split_once(' ').map_or("", |(_, a)| a);
                format!("  <logger>=<LEVEL> {after}")
            }
            _ => l.to_string(),
        })
        .collect();
    lines.dedup();
    lines
}

#[test]
fn refusals_and_shapes_match_kafka() {
    let toolbox = Toolbox::installed();
    let kafka = KafkaPeer::start();
    let gregor = Broker::start();
    let mut differences = Vec::new();
    for (args, exact) in steps() {
        let k = printed(
            &loggers(&toolbox, &kafka.bootstrap(), &args),
            &kafka.bootstrap(),
        );
        let g = printed(
            &loggers(&toolbox, &gregor.bootstrap(), &args),
            &gregor.bootstrap(),
        );
        let (k_cmp, g_cmp) = if exact {
            (vec![k.clone()], vec![g.clone()])
        } else {
            (shape(&k), shape(&g))
        };
        if k_cmp != g_cmp {
            differences.push(format!("{args:?}:\n--- Kafka\n{k}\n--- gregor\n{g}"));
        }
    }
    // Another broker's id: both refuse (the messages name the ids).
    let other = |bootstrap: &str| {
        configs(
            &toolbox,
            bootstrap,
            &[
                "--entity-type",
                "broker-loggers",
                "--entity-name",
                "7",
                "--describe",
            ],
        )
    };
    let (k, g) = (other(&kafka.bootstrap()), other(&gregor.bootstrap()));
    let (k, g) = (
        printed(&k, &kafka.bootstrap()),
        printed(&g, &gregor.bootstrap()),
    );
    if k != g {
        differences.push(format!(
            "describe of broker 7:\n--- Kafka\n{k}\n--- gregor\n{g}"
        ));
    }
    assert!(differences.is_empty(), "{}", differences.join("\n\n"));
}
