//! Users' SCRAM credentials (KIP-554) with Apache Kafka's own `kafka-configs.sh`, against a
//! real gregor and, step by step, against a real Apache Kafka broker (the toolbox's jars): the
//! same commands must give the same outcome and the same output on both.
//!
//! ```text
//!   kafka-configs --alter --add-config 'SCRAM-SHA-256=[...],SCRAM-SHA-512=[...]'  refused by
//!       both (Kafka's controller allows one alteration per user and request)
//!   kafka-configs --alter --add-config 'SCRAM-SHA-256=[iterations=8192,password=...]'
//!   kafka-configs --alter --add-config 'SCRAM-SHA-512=[password=...]'          (4096 iterations)
//!   kafka-configs --describe --entity-type users [--entity-name alice]   mechanisms, iterations
//!   kafka-configs --alter --delete-config SCRAM-SHA-512   (again: ResourceNotFoundException)
//!   gregor restarted ─► the credentials are still there (metadata log)
//! ```
//!
//! Needs the toolbox (`scripts/toolbox`); without it the test fails saying so.

use std::thread;
use std::time::{Duration, Instant};

use gregor_e2e::kafka_peer::KafkaPeer;
use gregor_e2e::kafka_tools::{ToolRun, Toolbox};
use gregor_e2e::Broker;

/// The longest one tool run may take (Java on two busy cores starts in seconds).
const TOOL_TIMEOUT: Duration = Duration::from_secs(90);

const PASSWORD: &str = "alice-secret";

/// `kafka-configs.sh --bootstrap-server <bootstrap> args...`.
fn configs(toolbox: &Toolbox, bootstrap: &str, args: &[&str]) -> ToolRun {
    let mut all = vec!["--bootstrap-server", bootstrap];
    all.extend_from_slice(args);
    toolbox.run("kafka-configs.sh", &all, None, TOOL_TIMEOUT)
}

/// What a run shows a user: its output when it worked, its error (exception and message) when
/// it did not. The same on gregor and on Kafka, addresses aside.
fn outcome(run: &ToolRun) -> Result<String, String> {
    match run.ok() {
        Ok(stdout) => Ok(stdout
            .lines()
            .map(sorted_mechanisms)
            .collect::<Vec<_>>()
            .join("\n")),
        Err(_) => Err(run.error_in_output().unwrap_or_else(|| run.reason())),
    }
}

/// A describe line with its mechanisms in one order: Kafka lists a user's mechanisms in no
/// fixed order from run to run ("... are SCRAM-SHA-512=iterations=4096,
/// SCRAM-SHA-256=iterations=8192" as often as the other way round).
fn sorted_mechanisms(line: &str) -> String {
    let line = line.trim();
    match line.split_once(" are ") {
        Some((head, list)) if head.starts_with("SCRAM credential configs") => {
            let mut items: Vec<&str> = list.split(", ").collect();
            items.sort_unstable();
            format!("{head} are {}", items.join(", "))
        }
        _ => line.to_string(),
    }
}

fn alter_alice(args: &[&str]) -> Vec<String> {
    let mut all = vec!["--alter"];
    all.extend_from_slice(args);
    all.extend(["--entity-type", "users", "--entity-name", "alice"]);
    all.into_iter().map(str::to_string).collect()
}

const DESCRIBE_USERS: &[&str] = &["--describe", "--entity-type", "users"];
const DESCRIBE_ALICE: &[&str] = &[
    "--describe",
    "--entity-type",
    "users",
    "--entity-name",
    "alice",
];
const BOTH: &str = "SCRAM-SHA-256=[iterations=8192,password=alice-secret],\
                    SCRAM-SHA-512=[password=alice-secret]";
const BOTH_SHOWN: &str = "SCRAM credential configs for user-principal 'alice' are \
                          SCRAM-SHA-256=iterations=8192, SCRAM-SHA-512=iterations=4096";
const SHA_256_SHOWN: &str =
    "SCRAM credential configs for user-principal 'alice' are SCRAM-SHA-256=iterations=8192";

/// The steps, each with what it must give (`Ok(stdout)` or `Err(error)`); run in order.
fn steps() -> Vec<(Vec<String>, Result<String, String>)> {
    let updated = || Ok("Completed updating config for user alice.".to_string());
    let owned = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    vec![
        // Kafka's docs type both mechanisms in one command; a KRaft controller refuses a
        // second alteration of one user in one request (ScramControlManager), and so does
        // gregor's.
        (
            alter_alice(&["--add-config", BOTH]),
            Err(
                "DuplicateResourceException: A user credential cannot be altered twice in the \
                 same request"
                    .to_string(),
            ),
        ),
        (
            alter_alice(&[
                "--add-config",
                "SCRAM-SHA-256=[iterations=8192,password=alice-secret]",
            ]),
            updated(),
        ),
        (
            alter_alice(&["--add-config", "SCRAM-SHA-512=[password=alice-secret]"]),
            updated(),
        ),
        (owned(DESCRIBE_USERS), Ok(BOTH_SHOWN.to_string())),
        (owned(DESCRIBE_ALICE), Ok(BOTH_SHOWN.to_string())),
        (
            alter_alice(&["--delete-config", "SCRAM-SHA-512"]),
            updated(),
        ),
        (owned(DESCRIBE_USERS), Ok(SHA_256_SHOWN.to_string())),
        (
            alter_alice(&["--delete-config", "SCRAM-SHA-512"]),
            Err(
                "ResourceNotFoundException: Attempt to delete a user credential that does not \
                 exist"
                    .to_string(),
            ),
        ),
    ]
}

/// Runs `args` until it gives `want` (a change may take a moment to reach the broker that
/// answers a describe); returns the last outcome.
fn run_until(
    toolbox: &Toolbox,
    bootstrap: &str,
    args: &[String],
    want: &Result<String, String>,
) -> (Result<String, String>, ToolRun) {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let run = configs(toolbox, bootstrap, &args);
        let got = outcome(&run);
        if &got == want || Instant::now() > deadline || !args.contains(&"--describe") {
            return (got, run);
        }
        thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn kafka_configs_creates_lists_and_deletes_scram_credentials_as_on_kafka() {
    let toolbox = Toolbox::installed();
    let mut gregor = Broker::start();
    let kafka = KafkaPeer::start();
    for (args, want) in steps() {
        for (who, bootstrap) in [("Kafka", kafka.bootstrap()), ("gregor", gregor.bootstrap())] {
            let (got, run) = run_until(&toolbox, &bootstrap, &args, &want);
            assert_eq!(got, want, "{who}:\n{}", run.transcript());
            // (The tool echoes its own arguments, password included, when it fails.)
            if args.iter().any(|a| a == "--describe") {
                assert!(
                    !run.stdout.contains(PASSWORD),
                    "{who} described the password:\n{}",
                    run.transcript()
                );
            }
        }
    }

    // The credentials live in the metadata log: a restarted broker still has them.
    gregor.restart();
    let want = Ok(SHA_256_SHOWN.to_string());
    let (got, run) = run_until(
        &toolbox,
        &gregor.bootstrap(),
        &to_strings(DESCRIBE_USERS),
        &want,
    );
    assert_eq!(got, want, "after a restart:\n{}", run.transcript());

    // Created again after the restart, and listed with the one that survived it.
    let run = configs(
        &toolbox,
        &gregor.bootstrap(),
        &[
            "--alter",
            "--add-config",
            "SCRAM-SHA-512=[iterations=16384,password=x]",
        ]
        .into_iter()
        .chain(["--entity-type", "users", "--entity-name", "alice"])
        .collect::<Vec<_>>(),
    );
    assert!(run.succeeded(), "{}", run.transcript());
    let want = Ok("SCRAM credential configs for user-principal 'alice' are \
                   SCRAM-SHA-256=iterations=8192, SCRAM-SHA-512=iterations=16384"
        .to_string());
    let (got, run) = run_until(
        &toolbox,
        &gregor.bootstrap(),
        &to_strings(DESCRIBE_ALICE),
        &want,
    );
    assert_eq!(got, want, "{}", run.transcript());
    assert!(
        !gregor.logs().contains(PASSWORD),
        "the broker logged the password"
    );
}

fn to_strings(args: &[&str]) -> Vec<String> {
    args.iter().map(|s| s.to_string()).collect()
}
