//! Smoke test of `gregor perf`: starts the real `gregor server` on an ephemeral port with a temp
//! data dir, produces 20 000 records with acks=all through `gregor perf produce`, reads them back
//! with `gregor perf consume` and checks both summaries count 20 000 records; runs `gregor perf
//! e2e` at a fixed rate and checks its three summary lines; runs `gregor perf floor` on a small
//! stream.

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

/// The value after `key` in a summary line (`p99 1.23 ms` → 1.23).
fn figure(line: &str, key: &str) -> f64 {
    let words: Vec<&str> = line.split_whitespace().collect();
    let i = words
        .iter()
        .position(|w| *w == key)
        .unwrap_or_else(|| panic!("no {key} in {line}"));
    words[i + 1]
        .trim_end_matches(',')
        .parse()
        .unwrap_or_else(|e| panic!("{key} in {line}: {e}"))
}

#[test]
fn e2e_reports_produce_and_end_to_end_latency_of_every_record() {
    let server = start_server();
    // 3 000 records at 3 000/s over 3 partitions: about one second of paced load.
    let start = std::time::Instant::now();
    let out = perf(
        &server,
        &[
            "e2e",
            "--topic",
            "perf-e2e",
            "--num-records",
            "3000",
            "--record-size",
            "200",
            "--throughput",
            "3000",
            "--acks",
            "all",
            "--partitions",
            "3",
        ],
    );
    let elapsed = start.elapsed();
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 3, "e2e summary: {out}");
    assert!(lines[0].starts_with("3000 records sent, "), "{out}");
    assert!(
        lines[1].starts_with("3000 records received end-to-end, "),
        "{out}"
    );
    assert!(lines[2].starts_with("send lag behind schedule"), "{out}");
    assert!(!out.contains("clock stepped back"), "{out}");
    for line in &lines[..2] {
        let (p50, p99, p999, max) = (
            figure(line, "p50"),
            figure(line, "p99"),
            figure(line, "p99.9"),
            figure(line, "max"),
        );
        // Latencies are positive, ordered, and shorter than the whole run.
        assert!(p50 > 0.0, "{line}");
        assert!(p50 <= p99 && p99 <= p999 && p999 <= max, "{line}");
        assert!(max < elapsed.as_secs_f64() * 1000.0, "{line}");
    }
    // Paced, not sent at once: 3 000 records at 3 000/s take about a second.
    assert!(
        elapsed >= std::time::Duration::from_millis(900),
        "3000 records at 3000/s took {elapsed:?}"
    );

    // Exactly the records sent are in the topic (the consumer started at its end).
    let consumed = perf(
        &server,
        &["consume", "--topic", "perf-e2e", "--num-records", "3000"],
    );
    assert!(
        consumed.starts_with("3000 records consumed, "),
        "consume summary: {consumed}"
    );
}

#[test]
fn e2e_refuses_records_too_short_for_the_send_time() {
    let server = start_server();
    let out = Command::new(BIN)
        .args(["perf", "e2e", "--topic", "short", "--num-records", "10"])
        .args(["--record-size", "4", "--bootstrap-server", &server.addr])
        .stdin(Stdio::null())
        .output()
        .expect("run gregor perf e2e");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("--record-size must be at least 8"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `gregor perf floor` measures the kernel floors (and the O_DIRECT figure) on a small stream,
/// prints one line with a figure for each (a 16 MiB stream may round to 0 at the kernel's 10 ms tick), and leaves no
/// scratch file behind.
#[test]
fn floor_prints_three_costs_and_cleans_up() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new(BIN)
        .args([
            "perf",
            "floor",
            "--bytes",
            "16777216",
            "--sync-bytes",
            "1048576",
            "--dir",
        ])
        .arg(dir.path())
        .stdin(Stdio::null())
        .output()
        .expect("run gregor perf floor");
    assert!(
        out.status.success(),
        "gregor perf floor failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = String::from_utf8(out.stdout).expect("utf-8 stdout");
    assert!(line.starts_with("floor "), "floor line: {line}");
    for key in ["produce-nosync", "produce-sync", "consume"] {
        let v = figure(&line, key);
        assert!(v.is_finite() && v >= 0.0, "{key} in {line}");
    }
    // O_DIRECT may be refused by the temp dir's file system; then the figure is `-`.
    let direct = line
        .split_whitespace()
        .skip_while(|w| *w != "produce-direct-sync")
        .nth(1)
        .unwrap_or_else(|| panic!("no produce-direct-sync in {line}"));
    assert!(
        direct == "-" || direct.parse::<f64>().is_ok_and(|v| v >= 0.0),
        "produce-direct-sync in {line}"
    );
    assert_eq!(
        std::fs::read_dir(dir.path()).expect("read dir").count(),
        0,
        "scratch files left behind"
    );
}
