//! ACLs with Kafka's StandardAuthorizer semantics, driven by Apache Kafka's own tools against a
//! real gregor and, step by step, against a real Apache Kafka 4.4 broker (the toolbox's jars):
//! the same commands must give the same outcome and the same output on both.
//!
//! ```text
//!   kafka_acls_adds_lists_and_removes_acls_as_on_kafka      (PLAINTEXT, User:ANONYMOUS is super)
//!     kafka-acls --add  allow/deny, operations, topic/group/cluster/transactional-id,
//!                       prefixed, --producer --idempotent, --consumer, hosts, an existing ACL,
//!                       an empty resource name (InvalidRequestException)
//!     kafka-acls --list all, by resource, --resource-pattern-type match/any, --principal
//!     kafka-acls --remove --force  by entry, by resource, by match, nothing matching
//!     gregor restarted ─► the same --list (the ACLs live in the metadata log)
//!
//!   kafka_acls_without_an_authorizer_fails_as_on_kafka       SecurityDisabledException
//!
//!   acls_are_enforced_over_sasl_as_on_kafka
//!     admin (super user) ──SASL PLAIN──┐   kafka-acls.sh, kafka-topics.sh
//!     alice ──SASL PLAIN───────────────┼─▶ SASL_PLAINTEXT listener ─▶ gregor │ Kafka 4.4
//!     bob   ──SASL PLAIN───────────────┘   console producer/consumer, producer-perf-test
//!       alice kafka-acls --list ─► ClusterAuthorizationException (DESCRIBE on the cluster)
//!       no ACL ─► TopicAuthorizationException; --producer ─► produces
//!       topic READ only ─► GroupAuthorizationException; + group READ ─► consumes
//!       transactional id not granted ─► TransactionalIdAuthorizationException
//!       DENY WRITE ─► ClusterAuthorizationException (no topic WRITE left for InitProducerId),
//!                     then TopicAuthorizationException once a prefixed ACL grants WRITE elsewhere
//!       prefixed ACL ─► produces (topic auto-created); removed ─► refused, no restart
//! ```
//!
//! Kafka's AclCommand prints from hash maps, so its order changes from run to run: outputs are
//! compared with each resource's entries sorted and the resources sorted. Every test collects
//! the steps where gregor and Kafka differ and fails at the end listing all of them, so one
//! run shows every difference, not just the first.
//!
//! Needs the toolbox (`scripts/toolbox`); without it the tests fail saying so.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use gregor_e2e::broker::wait_accepting;
use gregor_e2e::kafka_peer::KafkaPeer;
use gregor_e2e::kafka_tools::{ToolRun, Toolbox};
use gregor_e2e::Broker;
use tempfile::TempDir;

/// The longest one tool run may take (Java on two busy cores starts in seconds).
const TOOL_TIMEOUT: Duration = Duration::from_secs(90);
/// How long a step is retried until it gives what it should: an ACL change reaches the
/// broker's authorizer a moment after the controller committed it, on Kafka as on gregor.
const SETTLE: Duration = Duration::from_secs(10);
/// How long gregor's SASL listener may take to accept connections.
const LISTEN_TIMEOUT: Duration = Duration::from_secs(10);

/// Kafka's KRaft authorizer, which gregor's `authorizer.class.name` takes too.
const AUTHORIZER: &str =
    "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer";

/// What a `kafka-acls.sh` run shows a user: its output when it worked; when it did not, the
/// output before the error and the error line (`Error while executing ACL command: ...`),
/// without the stack trace. Entries sorted within each resource, resources sorted.
fn acl_outcome(run: &ToolRun) -> Result<String, String> {
    const ERROR: &str = "Error while executing ACL command: ";
    let (body, error) = match run.stdout.find(ERROR) {
        Some(i) => (
            &run.stdout[..i],
            run.stdout[i..].lines().next().map(str::to_string),
        ),
        None => (run.stdout.as_str(), None),
    };
    let shown = gregor_e2e::kafka_tools::sorted_acl_units(body);
    match (run.succeeded(), error) {
        (true, None) => Ok(shown),
        (_, Some(error)) => Err(format!("{shown}{error}")),
        (false, None) => Err(run.reason()),
    }
}

/// `kafka-acls.sh --bootstrap-server <bootstrap> [--command-config <config>] args...`.
fn kafka_acls(toolbox: &Toolbox, bootstrap: &str, config: Option<&Path>, args: &[&str]) -> ToolRun {
    let config = config.map(|c| c.display().to_string());
    let mut all = vec!["--bootstrap-server", bootstrap];
    if let Some(config) = &config {
        all.extend(["--command-config", config.as_str()]);
    }
    all.extend_from_slice(args);
    toolbox.run("kafka-acls.sh", &all, None, TOOL_TIMEOUT)
}

/// Runs `kafka` and `gregor` at once (two JVMs start in about the time of one and a half).
fn both<T: Send>(kafka: impl FnOnce() -> T + Send, gregor: impl FnOnce() -> T + Send) -> (T, T) {
    thread::scope(|s| {
        let on_kafka = s.spawn(kafka);
        let on_gregor = gregor();
        (on_kafka.join().expect("the Kafka run's thread"), on_gregor)
    })
}

/// Runs `run` until its outcome is `want` or [`SETTLE`] has passed; the last run and outcome.
fn until<T: PartialEq>(want: &T, mut run: impl FnMut() -> (T, ToolRun)) -> (T, ToolRun) {
    let deadline = Instant::now() + SETTLE;
    loop {
        let (got, tool_run) = run();
        if &got == want || Instant::now() > deadline {
            return (got, tool_run);
        }
        thread::sleep(Duration::from_millis(500));
    }
}

/// One `kafka-acls.sh` step of the side-by-side sequence, and whether it should succeed (on
/// Kafka: a check of the sequence itself).
struct AclStep {
    args: &'static [&'static str],
    succeeds: bool,
}

const fn ok(args: &'static [&'static str]) -> AclStep {
    AclStep {
        args,
        succeeds: true,
    }
}

/// The side-by-side sequence: several ACLs per call where the output stays comparable.
const ACL_STEPS: &[AclStep] = &[
    // Two principals, two operations, one topic: four ACLs.
    ok(&[
        "--add",
        "--allow-principal",
        "User:alice",
        "--allow-principal",
        "User:bob",
        "--operation",
        "Read",
        "--operation",
        "Write",
        "--topic",
        "orders",
    ]),
    // DENY, the default operation (All), a topic and a group in one call.
    ok(&[
        "--add",
        "--deny-principal",
        "User:mallory",
        "--topic",
        "orders",
        "--group",
        "billing",
    ]),
    // --producer: WRITE, DESCRIBE, CREATE on the topic, WRITE, DESCRIBE on the transactional
    // id, IDEMPOTENT_WRITE on the cluster.
    ok(&[
        "--add",
        "--allow-principal",
        "User:alice",
        "--producer",
        "--topic",
        "events",
        "--transactional-id",
        "tx-events",
        "--idempotent",
    ]),
    // --consumer: READ, DESCRIBE on the topic, READ on the group.
    ok(&[
        "--add",
        "--allow-principal",
        "User:bob",
        "--consumer",
        "--topic",
        "events",
        "--group",
        "readers",
    ]),
    ok(&[
        "--add",
        "--allow-principal",
        "User:alice",
        "--operation",
        "Read",
        "--operation",
        "Describe",
        "--topic",
        "pay-",
        "--group",
        "team-",
        "--resource-pattern-type",
        "prefixed",
    ]),
    // Hosts, the cluster and every transactional id.
    ok(&[
        "--add",
        "--allow-principal",
        "User:carol",
        "--allow-host",
        "10.0.0.1",
        "--allow-host",
        "10.0.0.2",
        "--operation",
        "Describe",
        "--cluster",
        "--transactional-id",
        "*",
    ]),
    // The wildcard principal on every topic.
    ok(&[
        "--add",
        "--allow-principal",
        "User:*",
        "--operation",
        "Describe",
        "--topic",
        "*",
    ]),
    // One ACL already there ("already exists"), one new.
    ok(&[
        "--add",
        "--allow-principal",
        "User:alice",
        "--operation",
        "Read",
        "--operation",
        "Describe",
        "--topic",
        "orders",
    ]),
    // Refused by the controller: InvalidRequestException "Invalid empty resource name".
    AclStep {
        args: &[
            "--add",
            "--allow-principal",
            "User:alice",
            "--operation",
            "Read",
            "--topic",
            "",
        ],
        succeeds: false,
    },
    ok(&["--list"]),
    ok(&["--list", "--topic", "orders"]),
    // MATCH: the literal name, the prefixes that cover it and the wildcard.
    ok(&[
        "--list",
        "--topic",
        "pay-2024",
        "--resource-pattern-type",
        "match",
    ]),
    // ANY: this exact name, whatever the pattern type.
    ok(&[
        "--list",
        "--topic",
        "pay-",
        "--resource-pattern-type",
        "any",
    ]),
    ok(&[
        "--list",
        "--group",
        "team-",
        "--resource-pattern-type",
        "prefixed",
    ]),
    ok(&["--list", "--cluster"]),
    ok(&["--list", "--principal", "User:alice"]),
    // One entry of one resource.
    ok(&[
        "--remove",
        "--force",
        "--allow-principal",
        "User:bob",
        "--operation",
        "Read",
        "--topic",
        "orders",
    ]),
    ok(&["--list", "--topic", "orders"]),
    // Every ACL of two resources.
    ok(&[
        "--remove", "--force", "--topic", "orders", "--group", "billing",
    ]),
    // By MATCH: the prefixed group ACLs that cover team-sales.
    ok(&[
        "--remove",
        "--force",
        "--group",
        "team-sales",
        "--resource-pattern-type",
        "match",
    ]),
    ok(&[
        "--remove",
        "--force",
        "--topic",
        "pay-",
        "--resource-pattern-type",
        "prefixed",
    ]),
    // What --producer --idempotent added, removed the same way.
    ok(&[
        "--remove",
        "--force",
        "--allow-principal",
        "User:alice",
        "--producer",
        "--topic",
        "events",
        "--transactional-id",
        "tx-events",
        "--idempotent",
    ]),
    // Nothing matches: nothing to say, no error.
    ok(&["--remove", "--force", "--topic", "nothing-here"]),
    ok(&["--list"]),
];

/// A run's outcome in one line, for the progress log: `ok (N lines)` or the error line.
fn brief(outcome: &Result<String, String>) -> String {
    match outcome {
        Ok(shown) => format!("ok ({} lines)", shown.lines().count()),
        Err(e) => e.lines().last().unwrap_or_default().to_string(),
    }
}

/// One difference between gregor and Kafka (or between Kafka and what the sequence expects),
/// for the report at the end of a test.
fn difference(
    what: &str,
    kafka: &impl std::fmt::Debug,
    gregor: &impl std::fmt::Debug,
    run: &ToolRun,
) -> String {
    format!(
        "{what}\n  Kafka:  {kafka:?}\n  gregor: {gregor:?}\n{}\n",
        run.transcript()
    )
}

#[test]
fn kafka_acls_adds_lists_and_removes_acls_as_on_kafka() {
    let started = Instant::now();
    let toolbox = Toolbox::installed();
    let anonymous_is_super = [AUTHORIZER, "super.users=User:ANONYMOUS"];
    let mut gregor = Broker::start_with(&anonymous_is_super);
    let kafka = KafkaPeer::start_with(&anonymous_is_super);
    let (kafka_at, gregor_at) = (kafka.bootstrap(), gregor.bootstrap());

    let mut differences = Vec::new();
    let mut last_list = None;
    for step in ACL_STEPS {
        let (on_kafka, on_gregor) = both(
            || kafka_acls(&toolbox, &kafka_at, None, step.args),
            || kafka_acls(&toolbox, &gregor_at, None, step.args),
        );
        let want = acl_outcome(&on_kafka);
        let mut got = (acl_outcome(&on_gregor), on_gregor);
        if step.args[0] == "--list" && got.0 != want {
            // A listing may run before the broker's image shows the last change.
            got = until(&want, || {
                let run = kafka_acls(&toolbox, &gregor_at, None, step.args);
                (acl_outcome(&run), run)
            });
        }
        let shown = format!("kafka-acls {}", step.args.join(" "));
        eprintln!("{shown}: {}", brief(&want));
        if want.is_ok() != step.succeeds {
            differences.push(difference(
                &format!("{shown}: Kafka itself did not do what the sequence expects"),
                &want,
                &got.0,
                &on_kafka,
            ));
        }
        if got.0 != want {
            differences.push(difference(&shown, &want, &got.0, &got.1));
        }
        if step.args == ["--list"] {
            last_list = Some(want);
        }
    }

    // The ACLs live in the metadata log: a restarted gregor lists what Kafka lists.
    gregor.restart();
    let want = last_list.expect("the sequence ends with --list");
    let (got, run) = until(&want, || {
        let run = kafka_acls(&toolbox, &gregor_at, None, &["--list"]);
        (acl_outcome(&run), run)
    });
    if got != want {
        differences.push(difference(
            "kafka-acls --list after gregor restarted",
            &want,
            &got,
            &run,
        ));
    }
    eprintln!(
        "{} steps on both brokers in {:.0?}",
        ACL_STEPS.len(),
        started.elapsed()
    );
    assert!(
        differences.is_empty(),
        "{} difference(s) between gregor and Kafka:\n\n{}\n--- gregor log ---\n{}",
        differences.len(),
        differences.join("\n"),
        gregor.logs()
    );
}

#[test]
fn kafka_acls_without_an_authorizer_fails_as_on_kafka() {
    let started = Instant::now();
    let toolbox = Toolbox::installed();
    let gregor = Broker::start();
    let kafka = KafkaPeer::start();
    let (kafka_at, gregor_at) = (kafka.bootstrap(), gregor.bootstrap());
    // --list is DescribeAcls; --add asks DescribeAcls first (for "already exists"), so it fails
    // there too; --remove is DeleteAcls, whose message Kafka words differently.
    let steps: [&[&str]; 3] = [
        &["--list"],
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
    ];
    let mut differences = Vec::new();
    for args in steps {
        let (on_kafka, on_gregor) = both(
            || kafka_acls(&toolbox, &kafka_at, None, args),
            || kafka_acls(&toolbox, &gregor_at, None, args),
        );
        let (want, got) = (acl_outcome(&on_kafka), acl_outcome(&on_gregor));
        let shown = format!("kafka-acls {}", args.join(" "));
        eprintln!("{shown}: {}", brief(&want));
        if !want
            .as_ref()
            .is_err_and(|e| e.contains("SecurityDisabledException"))
        {
            differences.push(difference(
                &format!("{shown}: Kafka did not answer SecurityDisabledException"),
                &want,
                &got,
                &on_kafka,
            ));
        }
        if got != want {
            differences.push(difference(&shown, &want, &got, &on_gregor));
        }
    }
    eprintln!("3 steps on both brokers in {:.0?}", started.elapsed());
    assert!(
        differences.is_empty(),
        "{} difference(s) between gregor and Kafka:\n\n{}\n--- gregor log ---\n{}",
        differences.len(),
        differences.join("\n"),
        gregor.logs()
    );
}

/// The PLAIN users of both brokers' SASL listener (PlainLoginModule's `user_<name>` entries);
/// the `username`/`password` pair is Kafka's own login on its listener (as admin).
const JAAS: &str = "org.apache.kafka.common.security.plain.PlainLoginModule required \
                    username=\"admin\" password=\"admin-secret\" user_admin=\"admin-secret\" \
                    user_alice=\"alice-secret\" user_bob=\"bob-secret\";";
/// `super.users` of the enforcement test: ANONYMOUS for Kafka's CONTROLLER listener and
/// gregor's PLAINTEXT one, admin for the tools over SASL.
const SUPER_USERS: &str = "super.users=User:ANONYMOUS;User:admin";

/// A gregor with its PLAINTEXT listener (the harness's) and a SASL_PLAINTEXT one; the address
/// of the latter.
fn gregor_with_sasl() -> (Broker, SocketAddr) {
    let sasl = gregor_e2e::ports::reserve();
    let sets = [
        format!("listeners=PLAINTEXT://127.0.0.1:0,SASL_PLAINTEXT://{sasl}"),
        "sasl.enabled.mechanisms=PLAIN".to_string(),
        format!("listener.name.sasl_plaintext.plain.sasl.jaas.config={JAAS}"),
        AUTHORIZER.to_string(),
        SUPER_USERS.to_string(),
        "group.initial.rebalance.delay.ms=0".to_string(),
        "num.partitions=3".to_string(),
    ];
    let sets: Vec<&str> = sets.iter().map(String::as_str).collect();
    let broker = Broker::start_with(&sets);
    wait_accepting(sasl, LISTEN_TIMEOUT, || broker.logs());
    (broker, sasl)
}

/// A Kafka whose client listener speaks SASL_PLAINTEXT with [`JAAS`]'s users. The peer's
/// listener is named PLAINTEXT; mapping that name to the SASL_PLAINTEXT protocol (a later
/// `server.properties` line wins) makes it a SASL listener on the peer's port. The broker logs
/// in to itself as admin; the CONTROLLER listener stays plain (ANONYMOUS, a super user).
fn kafka_with_sasl() -> KafkaPeer {
    let jaas = format!("listener.name.plaintext.plain.sasl.jaas.config={JAAS}");
    KafkaPeer::start_with(&[
        AUTHORIZER,
        SUPER_USERS,
        "listener.security.protocol.map=PLAINTEXT:SASL_PLAINTEXT,CONTROLLER:PLAINTEXT",
        "sasl.enabled.mechanisms=PLAIN",
        "sasl.mechanism.inter.broker.protocol=PLAIN",
        &jaas,
        "num.partitions=3",
    ])
}

/// Kafka's client properties for logging in as each user, in a temporary directory.
struct Logins {
    dir: TempDir,
}

impl Logins {
    fn write() -> Logins {
        let dir = tempfile::Builder::new()
            .prefix("acls-logins-")
            .tempdir()
            .expect("a temp dir for the client properties");
        for user in ["admin", "alice", "bob"] {
            let text = format!(
                "security.protocol=SASL_PLAINTEXT\nsasl.mechanism=PLAIN\n\
                 sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule \
                 required username=\"{user}\" password=\"{user}-secret\";\n"
            );
            std::fs::write(dir.path().join(format!("{user}.properties")), text)
                .expect("write client properties");
        }
        Logins { dir }
    }

    fn of(&self, user: &str) -> PathBuf {
        self.dir.path().join(format!("{user}.properties"))
    }
}

/// One step of the enforcement sequence.
enum Action {
    /// `kafka-acls.sh` as a user (its output is compared in the first test; here only whether
    /// it worked, and its error).
    Acls {
        user: &'static str,
        args: &'static [&'static str],
    },
    /// The console producer sends `a`, `b`, `c` to a topic, as a user.
    Produce {
        user: &'static str,
        topic: &'static str,
    },
    /// The console consumer reads three records from the beginning, in a group, as a user.
    Consume {
        user: &'static str,
        topic: &'static str,
        group: &'static str,
    },
    /// `kafka-producer-perf-test.sh` sends five records in transactions, as a user.
    Transact {
        user: &'static str,
        topic: &'static str,
        transactional_id: &'static str,
    },
}

/// The package of Kafka's client exceptions, which the tools print as they fail.
const ERRORS: &str = "org.apache.kafka.common.errors.";

/// What a client run shows: the first Kafka exception it printed (`Class: message`), else its
/// result: the records read (sorted) for the consumer, `N records sent` for the perf test,
/// nothing for the console producer.
fn client_outcome(action: &Action, run: &ToolRun) -> Result<String, String> {
    let exception = run.stderr.lines().chain(run.stdout.lines()).find_map(|l| {
        l.find(ERRORS)
            .map(|i| l[i + ERRORS.len()..].trim().to_string())
    });
    if let Some(exception) = exception {
        return Err(exception);
    }
    if !run.succeeded() {
        return Err(run.reason());
    }
    Ok(match action {
        Action::Consume { .. } => {
            let mut records: Vec<&str> = run.stdout.lines().collect();
            records.sort_unstable();
            records.join("\n")
        }
        Action::Transact { .. } => run
            .stdout
            .lines()
            .find_map(|l| l.split_once(" records sent,").map(|(n, _)| n))
            .map(|n| format!("{n} records sent"))
            .unwrap_or_else(|| format!("no summary: {}", run.stdout.trim())),
        Action::Produce { .. } | Action::Acls { .. } => String::new(),
    })
}

/// The producers' timeouts, short: a refusal must show as an exception, not as a hang.
const PRODUCER_PROPS: [&str; 3] = [
    "max.block.ms=15000",
    "request.timeout.ms=10000",
    "delivery.timeout.ms=15000",
];

/// The class of the last Kafka exception named in `error`, else all of it. Kafka's message for
/// a refused DescribeAcls names the request's connection and session objects (`Request
/// Request(processor=2, connectionId=..., session=...Session@7f42e1ae, ...) needs DESCRIBE
/// permission.`), which no other broker can repeat, so only the class is compared.
fn exception_class(error: &str) -> String {
    match error.rfind(ERRORS) {
        Some(i) => error[i + ERRORS.len()..]
            .split(':')
            .next()
            .unwrap_or_default()
            .to_string(),
        None => error.to_string(),
    }
}

/// Runs `action` against the broker at `bootstrap`.
fn perform(toolbox: &Toolbox, logins: &Logins, bootstrap: &str, action: &Action) -> ToolRun {
    match *action {
        Action::Acls { user, args } => kafka_acls(toolbox, bootstrap, Some(&logins.of(user)), args),
        Action::Produce { user, topic } => {
            let config = logins.of(user).display().to_string();
            let mut args = vec![
                "--bootstrap-server",
                bootstrap,
                "--command-config",
                &config,
                "--topic",
                topic,
            ];
            for prop in PRODUCER_PROPS {
                args.extend(["--command-property", prop]);
            }
            toolbox.run(
                "kafka-console-producer.sh",
                &args,
                Some(b"a\nb\nc\n"),
                TOOL_TIMEOUT,
            )
        }
        Action::Consume { user, topic, group } => {
            let config = logins.of(user).display().to_string();
            toolbox.run(
                "kafka-console-consumer.sh",
                &[
                    "--bootstrap-server",
                    bootstrap,
                    "--command-config",
                    &config,
                    "--topic",
                    topic,
                    "--group",
                    group,
                    "--from-beginning",
                    "--max-messages",
                    "3",
                    "--timeout-ms",
                    "20000",
                ],
                None,
                TOOL_TIMEOUT,
            )
        }
        Action::Transact {
            user,
            topic,
            transactional_id,
        } => {
            let config = logins.of(user).display().to_string();
            let mut args = vec![
                "--bootstrap-server",
                bootstrap,
                "--command-config",
                &config,
                "--topic",
                topic,
                "--num-records",
                "5",
                "--record-size",
                "10",
                "--throughput",
                "-1",
                "--transactional-id",
                transactional_id,
                "--transaction-duration-ms",
                "100",
            ];
            // The perf test's argparse takes the properties after one flag (a second
            // --command-property would replace the first).
            args.push("--command-property");
            args.extend(PRODUCER_PROPS);
            toolbox.run("kafka-producer-perf-test.sh", &args, None, TOOL_TIMEOUT)
        }
    }
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Action::Acls { user, args } => write!(f, "{user}: kafka-acls {}", args.join(" ")),
            Action::Produce { user, topic } => write!(f, "{user} produces to {topic}"),
            Action::Consume { user, topic, group } => {
                write!(f, "{user} consumes {topic} in group {group}")
            }
            Action::Transact {
                user,
                topic,
                transactional_id,
            } => write!(
                f,
                "{user} produces to {topic} in transactions as {transactional_id}"
            ),
        }
    }
}

/// The enforcement sequence, each step with what it must give on both brokers.
fn enforcement_steps() -> Vec<(Action, Result<&'static str, &'static str>)> {
    use Action::*;
    let alice_to = |topic| Produce {
        user: "alice",
        topic,
    };
    let bob_reads = |topic| Consume {
        user: "bob",
        topic,
        group: "readers",
    };
    let admin = |args: &'static [&'static str]| Acls {
        user: "admin",
        args,
    };
    let not_authorized_to_orders =
        Err("TopicAuthorizationException: Not authorized to access topics: [orders]");
    vec![
        // Only a super user (or an ACL on the cluster) may see the ACLs.
        (
            Acls {
                user: "alice",
                args: &["--list"],
            },
            Err("ClusterAuthorizationException"),
        ),
        (alice_to("orders"), not_authorized_to_orders),
        (
            admin(&[
                "--add",
                "--allow-principal",
                "User:alice",
                "--producer",
                "--topic",
                "orders",
                "--transactional-id",
                "tx-orders",
            ]),
            Ok(""),
        ),
        // Idempotent by default: InitProducerId passes on WRITE to some topic (KIP-679).
        (alice_to("orders"), Ok("")),
        (
            admin(&[
                "--add",
                "--allow-principal",
                "User:bob",
                "--operation",
                "Read",
                "--topic",
                "orders",
            ]),
            Ok(""),
        ),
        (
            bob_reads("orders"),
            Err("GroupAuthorizationException: Not authorized to access group: readers"),
        ),
        (
            admin(&[
                "--add",
                "--allow-principal",
                "User:bob",
                "--operation",
                "Read",
                "--group",
                "readers",
            ]),
            Ok(""),
        ),
        (bob_reads("orders"), Ok("a\nb\nc")),
        (
            Transact {
                user: "alice",
                topic: "orders",
                transactional_id: "tx-other",
            },
            Err("TransactionalIdAuthorizationException: Transactional Id authorization failed."),
        ),
        (
            Transact {
                user: "alice",
                topic: "orders",
                transactional_id: "tx-orders",
            },
            Ok("5 records sent"),
        ),
        // DENY wins over the ALLOW of the same operation. With no topic left that alice may
        // WRITE, the idempotent producer's InitProducerId is refused first (cluster
        // IDEMPOTENT_WRITE or WRITE on some topic, Kafka's KafkaApis).
        (
            admin(&[
                "--add",
                "--deny-principal",
                "User:alice",
                "--operation",
                "Write",
                "--topic",
                "orders",
            ]),
            Ok(""),
        ),
        (
            alice_to("orders"),
            Err("ClusterAuthorizationException: Cluster authorization failed."),
        ),
        // A prefixed ACL: alice may create and write any pfx-* topic...
        (
            admin(&[
                "--add",
                "--allow-principal",
                "User:alice",
                "--producer",
                "--topic",
                "pfx-",
                "--resource-pattern-type",
                "prefixed",
            ]),
            Ok(""),
        ),
        (alice_to("pfx-one"), Ok("")),
        // ...which lets InitProducerId pass, so the DENY on orders shows on the topic itself.
        (alice_to("orders"), not_authorized_to_orders),
        (
            bob_reads("pfx-one"),
            Err("TopicAuthorizationException: Not authorized to access topics: [pfx-one]"),
        ),
        // Removed, it no longer holds: no restart.
        (
            admin(&[
                "--remove",
                "--force",
                "--allow-principal",
                "User:alice",
                "--producer",
                "--topic",
                "pfx-",
                "--resource-pattern-type",
                "prefixed",
            ]),
            Ok(""),
        ),
        (
            alice_to("pfx-one"),
            Err("TopicAuthorizationException: Not authorized to access topics: [pfx-one]"),
        ),
    ]
}

#[test]
fn acls_are_enforced_over_sasl_as_on_kafka() {
    let started = Instant::now();
    let toolbox = Toolbox::installed();
    let logins = Logins::write();
    let (gregor, gregor_sasl) = gregor_with_sasl();
    let kafka = kafka_with_sasl();
    let (kafka_at, gregor_at) = (kafka.bootstrap(), gregor_sasl.to_string());

    // The topic the sequence starts with, made by the super user.
    let (made_on_kafka, made_on_gregor) = both(
        || create_topic(&toolbox, &logins, &kafka_at),
        || create_topic(&toolbox, &logins, &gregor_at),
    );
    for (who, run) in [("Kafka", &made_on_kafka), ("gregor", &made_on_gregor)] {
        assert!(
            run.succeeded(),
            "{who}: admin creates the topic:\n{}\n--- gregor log ---\n{}",
            run.transcript(),
            gregor.logs()
        );
    }

    let mut differences = Vec::new();
    for (action, want) in enforcement_steps() {
        let want = want.map(str::to_string).map_err(str::to_string);
        let attempt = |bootstrap: &str| {
            until(&want, || {
                let run = perform(&toolbox, &logins, bootstrap, &action);
                let got = match action {
                    Action::Acls { .. } => acl_outcome(&run)
                        .map(|_| String::new())
                        .map_err(|e| exception_class(&e)),
                    _ => client_outcome(&action, &run),
                };
                (got, run)
            })
        };
        let ((on_kafka, kafka_run), (on_gregor, gregor_run)) =
            both(|| attempt(&kafka_at), || attempt(&gregor_at));
        eprintln!("{action}: Kafka {on_kafka:?}, gregor {on_gregor:?}");
        if on_kafka != want {
            differences.push(difference(
                &format!("{action}: Kafka itself did not give {want:?}"),
                &on_kafka,
                &on_gregor,
                &kafka_run,
            ));
        }
        if on_gregor != want {
            differences.push(difference(
                &format!("{action}: gregor did not give {want:?}"),
                &on_kafka,
                &on_gregor,
                &gregor_run,
            ));
        }
    }
    eprintln!(
        "the enforcement sequence on both brokers in {:.0?}",
        started.elapsed()
    );
    assert!(
        differences.is_empty(),
        "{} difference(s):\n\n{}\n--- gregor log ---\n{}",
        differences.len(),
        differences.join("\n"),
        gregor.logs()
    );
}

/// `kafka-topics.sh --create --topic orders --partitions 3` as admin.
fn create_topic(toolbox: &Toolbox, logins: &Logins, bootstrap: &str) -> ToolRun {
    let config = logins.of("admin").display().to_string();
    toolbox.run(
        "kafka-topics.sh",
        &[
            "--bootstrap-server",
            bootstrap,
            "--command-config",
            &config,
            "--create",
            "--topic",
            "orders",
            "--partitions",
            "3",
            "--replication-factor",
            "1",
        ],
        None,
        TOOL_TIMEOUT,
    )
}
