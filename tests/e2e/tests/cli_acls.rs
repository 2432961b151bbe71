//! `gregor acls list|add|remove` against a real gregor with Kafka's StandardAuthorizer: the
//! tables it prints, Kafka's `--producer` / `--consumer` conveniences, pattern-type filters,
//! removal with and without `--force`, ACLs kept across a restart, readable errors from a broker
//! without an authorizer and for a principal that may not manage ACLs, and ACLs added by the
//! CLI over SASL (`--command-config`) deciding what a user may produce. Kafka's own
//! `kafka-acls.sh` against gregor is in acls.rs.
//!
//! ```text
//!   gregor_acls_add_list_and_remove            PLAINTEXT, User:ANONYMOUS is a super user
//!   gregor_acls_without_an_authorizer_is_a_readable_error
//!   gregor_acls_over_sasl_decide_who_may_produce
//!     ANONYMOUS ──PLAINTEXT──────────┐  acls list ─► CLUSTER_AUTHORIZATION_FAILED
//!     admin (super user) ──SASL──────┼─▶ gregor     acls add / remove, topics create
//!     alice ──SASL───────────────────┘              produce: refused, allowed, refused
//! ```

use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use gregor_e2e::broker::{gregor_bin, wait_accepting};
use gregor_e2e::{run_command, unique_topic, Broker};

/// The longest one CLI run may take.
const CLI_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the SASL listener may take to accept connections.
const LISTEN_TIMEOUT: Duration = Duration::from_secs(10);

/// Kafka's KRaft authorizer, which gregor's `authorizer.class.name` takes too.
const AUTHORIZER: &str =
    "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer";

/// The users of the SASL listener, as Kafka's PlainLoginModule takes them.
const JAAS: &str = "org.apache.kafka.common.security.plain.PlainLoginModule required \
                    user_alice=\"alice-secret\" user_admin=\"admin-secret\";";

/// What one CLI run gave.
struct Run {
    ok: bool,
    stdout: String,
    stderr: String,
}

impl Run {
    fn of(out: Output) -> Run {
        Run {
            ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// The stdout of a run that must succeed.
    fn expect_ok(self, what: &str) -> String {
        assert!(
            self.ok,
            "gregor {what} failed:\n{}\n{}",
            self.stdout, self.stderr
        );
        self.stdout
    }
}

/// `gregor ARGS --bootstrap-server BOOTSTRAP [--command-config CONFIG]`, with `stdin`.
fn gregor(bootstrap: &str, config: Option<&Path>, args: &[&str], stdin: Option<&str>) -> Run {
    let mut cmd = Command::new(gregor_bin());
    cmd.args(args).args(["--bootstrap-server", bootstrap]);
    if let Some(config) = config {
        cmd.arg("--command-config").arg(config);
    }
    Run::of(run_command(cmd, stdin.map(str::as_bytes), CLI_TIMEOUT))
}

/// `gregor acls ARGS` on PLAINTEXT; its stdout, which must be a success.
fn acls_ok(bootstrap: &str, args: &[&str]) -> String {
    let mut all = vec!["acls"];
    all.extend_from_slice(args);
    gregor(bootstrap, None, &all, None).expect_ok(&all.join(" "))
}

/// The rows of the ACL table in `out` (the seven-cell lines after its PRINCIPAL header), cells
/// joined by one space, sorted.
fn rows(out: &str) -> Vec<String> {
    let mut rows: Vec<String> = out
        .lines()
        .skip_while(|l| !l.starts_with("PRINCIPAL"))
        .skip(1)
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .take_while(|cells| cells.len() == 7)
        .map(|cells| cells.join(" "))
        .collect();
    rows.sort();
    rows
}

fn sorted(rows: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = rows.iter().map(|r| r.to_string()).collect();
    v.sort();
    v
}

/// The ACLs the first steps add, as the table shows them.
const ALICE: [&str; 4] = [
    "User:alice * WRITE ALLOW TOPIC orders LITERAL",
    "User:alice * DESCRIBE ALLOW TOPIC orders LITERAL",
    "User:alice * CREATE ALLOW TOPIC orders LITERAL",
    "User:alice * IDEMPOTENT_WRITE ALLOW CLUSTER kafka-cluster LITERAL",
];
const BOB: [&str; 3] = [
    "User:bob * READ ALLOW TOPIC orders LITERAL",
    "User:bob * DESCRIBE ALLOW TOPIC orders LITERAL",
    "User:bob * READ ALLOW GROUP billing LITERAL",
];
const EVE: &str = "User:eve 10.0.0.9 READ DENY TOPIC orders- PREFIXED";

/// Adds ACLs with both conveniences and by hand, lists them by resource, pattern type and
/// principal, removes them by entry, by resource (asking first) and by match, and finds the
/// rest again after a restart.
#[test]
fn gregor_acls_add_list_and_remove() {
    let mut broker = Broker::start_with(&[AUTHORIZER, "super.users=User:ANONYMOUS"]);
    let b = broker.bootstrap();
    assert_eq!(acls_ok(&b, &["list"]).trim(), "no ACLs set");

    let out = acls_ok(
        &b,
        &[
            "add",
            "--allow-principal",
            "User:alice",
            "--producer",
            "--idempotent",
            "--topic",
            "orders",
        ],
    );
    assert!(out.starts_with("added 4 ACL(s):\n"), "{out}");
    assert_eq!(rows(&out), sorted(&ALICE));
    let out = acls_ok(
        &b,
        &[
            "add",
            "--allow-principal",
            "User:bob",
            "--consumer",
            "--topic",
            "orders",
            "--group",
            "billing",
        ],
    );
    assert_eq!(rows(&out), sorted(&BOB));
    let out = acls_ok(
        &b,
        &[
            "add",
            "--deny-principal",
            "User:eve",
            "--deny-host",
            "10.0.0.9",
            "--operation",
            "Read",
            "--topic",
            "orders-",
            "--resource-pattern-type",
            "prefixed",
        ],
    );
    assert_eq!(rows(&out), [EVE]);
    // An ACL that exists already is no error and no duplicate (as on Kafka).
    let out = acls_ok(
        &b,
        &[
            "add",
            "--allow-principal",
            "User:alice",
            "--operation",
            "write",
            "--topic",
            "orders",
        ],
    );
    assert_eq!(rows(&out), [ALICE[0]]);

    let everything: Vec<&str> = ALICE.iter().chain(&BOB).copied().chain([EVE]).collect();
    let out = acls_ok(&b, &["list"]);
    assert!(
        out.starts_with("PRINCIPAL "),
        "the table comes first: {out}"
    );
    assert_eq!(rows(&out), sorted(&everything));
    assert_eq!(
        rows(&acls_ok(&b, &["list", "--topic", "orders"])),
        sorted(&[ALICE[0], ALICE[1], ALICE[2], BOB[0], BOB[1]])
    );
    assert_eq!(
        rows(&acls_ok(
            &b,
            &[
                "list",
                "--topic",
                "orders-audit",
                "--resource-pattern-type",
                "match"
            ]
        )),
        [EVE]
    );
    assert_eq!(
        rows(&acls_ok(&b, &["list", "--principal", "User:bob"])),
        sorted(&BOB)
    );
    assert_eq!(rows(&acls_ok(&b, &["list", "--cluster"])), [ALICE[3]]);
    assert_eq!(
        acls_ok(&b, &["list", "--topic", "payments"]).trim(),
        "no ACLs match"
    );

    // Without --force: the matching ACLs, a question, and nothing removed unless answered yes.
    let group = ["acls", "remove", "--group", "billing"];
    let out = gregor(&b, None, &group, Some("n\n")).expect_ok("acls remove (no)");
    assert!(out.starts_with("1 ACL(s) match:\n"), "{out}");
    assert_eq!(rows(&out), [BOB[2]]);
    assert!(out.ends_with("nothing removed\n"), "{out}");
    assert_eq!(
        rows(&acls_ok(&b, &["list", "--group", "billing"])),
        [BOB[2]]
    );
    gregor(&b, None, &group, Some("y\n")).expect_ok("acls remove (yes)");
    assert_eq!(
        acls_ok(&b, &["list", "--group", "billing"]).trim(),
        "no ACLs match"
    );

    let out = acls_ok(
        &b,
        &[
            "remove",
            "--topic",
            "orders",
            "--allow-principal",
            "User:bob",
            "--force",
        ],
    );
    assert!(out.starts_with("removed 2 ACL(s):\n"), "{out}");
    assert_eq!(rows(&out), sorted(&BOB[..2]));
    let out = acls_ok(
        &b,
        &[
            "remove",
            "--topic",
            "orders-audit",
            "--resource-pattern-type",
            "match",
            "--force",
        ],
    );
    assert_eq!(rows(&out), [EVE]);
    assert_eq!(
        acls_ok(&b, &["remove", "--topic", "payments", "--force"]).trim(),
        "no ACLs match; nothing removed"
    );

    // The ACLs live in the metadata log.
    broker.restart();
    let b = broker.bootstrap();
    assert_eq!(rows(&acls_ok(&b, &["list"])), sorted(&ALICE));

    // Mistakes are told before anything is sent.
    let run = gregor(&b, None, &["acls", "add", "--topic", "orders"], None);
    assert!(!run.ok && run.stderr.contains("whom?"), "{}", run.stderr);
    let run = gregor(
        &b,
        None,
        &[
            "acls",
            "add",
            "--allow-principal",
            "User:alice",
            "--operation",
            "IdempotentWrite",
            "--topic",
            "orders",
        ],
        None,
    );
    assert!(
        !run.ok && run.stderr.contains("TOPIC ACLs take operation ALL or"),
        "{}",
        run.stderr
    );
}

/// A broker without an authorizer answers SECURITY_DISABLED; the CLI says so in words and
/// exits non-zero.
#[test]
fn gregor_acls_without_an_authorizer_is_a_readable_error() {
    let broker = Broker::start();
    let b = broker.bootstrap();
    for args in [
        &["acls", "list"][..],
        &[
            "acls",
            "add",
            "--allow-principal",
            "User:alice",
            "--operation",
            "read",
            "--topic",
            "orders",
        ],
        &["acls", "remove", "--topic", "orders", "--force"],
    ] {
        let run = gregor(&b, None, args, None);
        assert!(!run.ok, "{} succeeded: {}", args.join(" "), run.stdout);
        assert!(
            run.stderr.contains("SECURITY_DISABLED")
                && run
                    .stderr
                    .contains("no authorizer is configured on the broker"),
            "{}: {}",
            args.join(" "),
            run.stderr
        );
        assert!(
            !run.stdout.contains("added") && !run.stdout.contains("removed"),
            "{}",
            run.stdout
        );
    }
}

/// With `super.users=User:admin`, a SASL_PLAINTEXT listener and the PLAINTEXT one: ANONYMOUS
/// may not list ACLs (a readable CLUSTER_AUTHORIZATION_FAILED); admin adds and removes ACLs
/// through `--command-config`, and they decide whether alice may produce, without a restart.
#[test]
fn gregor_acls_over_sasl_decide_who_may_produce() {
    let sasl = gregor_e2e::ports::reserve();
    let listeners = format!("listeners=PLAINTEXT://127.0.0.1:0,SASL_PLAINTEXT://{sasl}");
    let jaas = format!("listener.name.sasl_plaintext.plain.sasl.jaas.config={JAAS}");
    let broker = Broker::start_with(&[
        listeners.as_str(),
        "sasl.enabled.mechanisms=PLAIN",
        jaas.as_str(),
        AUTHORIZER,
        "super.users=User:admin",
    ]);
    wait_accepting(sasl, LISTEN_TIMEOUT, || broker.logs());
    let dir = tempfile::tempdir().expect("tempdir");
    let login = |user: &str| {
        let path = dir.path().join(format!("{user}.properties"));
        std::fs::write(
            &path,
            format!(
                "security.protocol=SASL_PLAINTEXT\nsasl.mechanism=PLAIN\n\
                 sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule \
                 required username=\"{user}\" password=\"{user}-secret\";\n"
            ),
        )
        .expect("write properties");
        path
    };
    let (admin, alice) = (login("admin"), login("alice"));
    let at = sasl.to_string();

    let run = gregor(&broker.bootstrap(), None, &["acls", "list"], None);
    assert!(
        !run.ok
            && run.stderr.contains("CLUSTER_AUTHORIZATION_FAILED")
            && run.stderr.contains("may not manage ACLs"),
        "{}",
        run.stderr
    );

    let topic = unique_topic("cli-acls");
    gregor(
        &at,
        Some(&admin),
        &["topics", "create", &topic, "--partitions", "1"],
        None,
    )
    .expect_ok("topics create");
    let produce = || gregor(&at, Some(&alice), &["produce", &topic], Some("one\ntwo\n"));
    let run = produce();
    assert!(!run.ok, "alice produced without an ACL: {}", run.stderr);

    let out = gregor(
        &at,
        Some(&admin),
        &[
            "acls",
            "add",
            "--allow-principal",
            "User:alice",
            "--producer",
            "--topic",
            &topic,
        ],
        None,
    )
    .expect_ok("acls add");
    assert_eq!(rows(&out).len(), 3, "{out}");
    let run = produce();
    assert!(
        run.ok && run.stderr.contains("2 records produced"),
        "alice could not produce with --producer ACLs: {}\n{}",
        run.stderr,
        broker.logs()
    );
    // alice may produce but not manage ACLs.
    let run = gregor(&at, Some(&alice), &["acls", "list"], None);
    assert!(
        !run.ok && run.stderr.contains("CLUSTER_AUTHORIZATION_FAILED"),
        "{}",
        run.stderr
    );

    let out = gregor(
        &at,
        Some(&admin),
        &["acls", "remove", "--topic", &topic, "--force"],
        None,
    )
    .expect_ok("acls remove");
    assert!(out.starts_with("removed 3 ACL(s):\n"), "{out}");
    let run = produce();
    assert!(
        !run.ok,
        "alice produced after her ACLs were removed: {}",
        run.stderr
    );
}
