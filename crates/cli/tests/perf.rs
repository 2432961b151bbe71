//! Smoke test of `gregor perf`: starts the real `gregor server` on an ephemeral port with a temp
//! data dir, produces 20 000 records with acks=all through `gregor perf produce`, reads them back
//! with `gregor perf consume` and checks both summaries count 20 000 records.

mod common;

use std::process::{Command, Stdio};

use common::*;

fn perf(server: &Server, args: &[&str]) -> String {
    let out = Command::new(BIN)
        .arg("perf")
        .args(args)
        .args(["--bootstrap-server", &server.addr])
        .stdin(Stdio::null())
        .output()
        .expect("run gregor perf");
    assert!(
        out.status.success(),
        "gregor perf {args:?} failed: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8 stdout")
}

#[test]
fn produce_then_consume_twenty_thousand_records() {
    let server = start_server();
    let produced = perf(
        &server,
        &[
            "produce",
            "--topic",
            "perf-smoke",
            "--num-records",
            "20000",
            "--record-size",
            "100",
            "--acks",
            "all",
            "--partitions",
            "2",
            "--producers",
            "2",
        ],
    );
    assert!(
        produced.starts_with("20000 records sent, "),
        "produce summary: {produced}"
    );
    assert!(produced.contains("p99.9"), "produce summary: {produced}");

    let consumed = perf(
        &server,
        &["consume", "--topic", "perf-smoke", "--num-records", "20000"],
    );
    assert!(
        consumed.starts_with("20000 records consumed, "),
        "consume summary: {consumed}"
    );
    assert!(consumed.contains("1.91 MB"), "consume summary: {consumed}");
}
