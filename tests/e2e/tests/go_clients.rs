//! The Go clients against gregor: the programs of `tests/interop/go` (built by
//! `scripts/toolbox`), one per library, each creating a topic, producing records, consuming
//! them in a consumer group, committing, and reading the committed offsets back with its admin
//! client. Each prints a JSON summary; the counts must agree.
//!
//! Without the toolbox the test fails saying to run `scripts/toolbox`.

use std::time::Duration;

use gregor_e2e::kafka_tools::{run_program, Toolbox};
use gregor_e2e::Broker;

const RECORDS: usize = 2000;
const PARTITIONS: usize = 3;
const TIMEOUT: Duration = Duration::from_secs(90);

/// Runs one Go program against a fresh broker and checks its summary.
fn round_trip(program: &str) {
    let toolbox = Toolbox::installed();
    let path = toolbox.go_program(program);
    let broker = Broker::start();
    let bootstrap = broker.bootstrap();
    let records = RECORDS.to_string();
    let partitions = PARTITIONS.to_string();
    let args = [
        "-bootstrap-server",
        bootstrap.as_str(),
        "-topic",
        "go-interop",
        "-group",
        "go-interop-group",
        "-records",
        records.as_str(),
        "-partitions",
        partitions.as_str(),
        "-timeout",
        "60s",
    ];
    let run = run_program(&path, program, &args, None, TIMEOUT);
    let summary: serde_json::Value = serde_json::from_str(run.stdout.trim())
        .unwrap_or_else(|e| panic!("{program}: no JSON summary ({e})\n{}", run.transcript()));
    assert!(
        run.succeeded() && summary["ok"] == true,
        "{program} failed: {}\n{}",
        summary["error"],
        run.transcript()
    );
    for field in ["produced", "consumed", "committed"] {
        assert_eq!(
            summary[field].as_u64(),
            Some(RECORDS as u64),
            "{program}: {field} in {summary}"
        );
    }
    assert_eq!(
        summary["in_order"], true,
        "{program}: a partition went backwards"
    );
}

#[test]
fn franz_go_produces_consumes_in_a_group_and_commits() {
    round_trip("franz-go");
}

#[test]
fn sarama_produces_consumes_in_a_group_and_commits() {
    round_trip("sarama");
}
