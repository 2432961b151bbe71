//! End-to-end test of consumer groups through the tools: a real `gregor server` (initial
//! rebalance delay 0 so joins are quick), `gregor consume --group` as a member that commits and
//! leaves, and `gregor groups list|describe|reset-offsets|delete` reading and moving the offsets.

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

fn offsets(describe: &str, topic: &str) -> Vec<(i32, String, String, String)> {
    describe
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|c| c.first() == Some(&topic))
        .map(|c| {
            assert_eq!(c.len(), 8, "{c:?}");
            (
                c[1].parse().expect("partition"),
                c[2].to_owned(),
                c[3].to_owned(),
                c[4].to_owned(),
            )
        })
        .collect()
}

fn sorted_lines(s: &str) -> Vec<String> {
    let mut v: Vec<String> = s.lines().map(str::to_owned).collect();
    v.sort();
    v
}

#[test]
fn consume_with_a_group_commits_and_offsets_can_be_reset() {
    let server = start_server_with(&["--set", "group.initial.rebalance.delay.ms=0"]);
    ok(&gregor(
        &server,
        &["topics", "create", "orders", "--partitions", "2"],
        None,
    ));
    let input: String = (0..40).map(|i| format!("key{i}:value{i}\n")).collect();
    ok(&gregor(
        &server,
        &["produce", "orders", "--key-separator", ":"],
        Some(&input),
    ));
    let expected: Vec<String> = {
        let mut v: Vec<String> = (0..40).map(|i| format!("value{i}")).collect();
        v.sort();
        v
    };

    // A group member reads everything once, commits and leaves.
    let consume = [
        "consume",
        "orders",
        "--group",
        "g",
        "--from-beginning",
        "--max-messages",
        "40",
        "--timeout-ms",
        "20000",
    ];
    let out = ok(&gregor(&server, &consume, None));
    assert_eq!(sorted_lines(&out), expected);

    let list = ok(&gregor(&server, &["groups", "list"], None));
    let row: Vec<&str> = list
        .lines()
        .find(|l| l.starts_with("g "))
        .unwrap_or_else(|| panic!("group g not listed:\n{list}"))
        .split_whitespace()
        .collect();
    assert_eq!(row, ["g", "Empty", "consumer"]);

    // Committed offsets are at the log end on both partitions: lag 0.
    let describe = ok(&gregor(&server, &["groups", "describe", "g"], None));
    assert!(describe.starts_with("Group: g\tState: Empty"), "{describe}");
    let rows = offsets(&describe, "orders");
    assert_eq!(rows.len(), 2, "{describe}");
    let mut total = 0;
    for (p, cur, end, lag) in &rows {
        assert_eq!(cur, end, "partition {p}: {describe}");
        assert_eq!(lag, "0", "partition {p}: {describe}");
        total += end.parse::<i64>().expect("log end");
    }
    assert_eq!(total, 40, "{describe}");

    // A dry run prints the plan and changes nothing.
    let reset = [
        "groups",
        "reset-offsets",
        "g",
        "--topic",
        "orders",
        "--to-earliest",
    ];
    let plan = ok(&gregor(&server, &reset, None));
    assert_eq!(
        plan.lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>())
            .collect::<Vec<_>>(),
        vec![
            vec!["GROUP", "TOPIC", "PARTITION", "NEW-OFFSET"],
            vec!["g", "orders", "0", "0"],
            vec!["g", "orders", "1", "0"],
        ]
    );
    let describe = ok(&gregor(&server, &["groups", "describe", "g"], None));
    assert!(
        offsets(&describe, "orders").iter().all(|r| r.3 == "0"),
        "{describe}"
    );

    // Executed, the group starts over from the beginning (no --from-beginning needed).
    let mut exec = reset.to_vec();
    exec.push("--execute");
    ok(&gregor(&server, &exec, None));
    let describe = ok(&gregor(&server, &["groups", "describe", "g"], None));
    for (p, cur, _, _) in offsets(&describe, "orders") {
        assert_eq!(cur, "0", "partition {p}: {describe}");
    }
    let again = [
        "consume",
        "orders",
        "--group",
        "g",
        "--max-messages",
        "40",
        "--timeout-ms",
        "20000",
    ];
    let out = ok(&gregor(&server, &again, None));
    assert_eq!(sorted_lines(&out), expected);

    // Nothing left: a member starting at the committed offsets reads nothing.
    let idle = ["consume", "orders", "--group", "g", "--timeout-ms", "1000"];
    assert_eq!(ok(&gregor(&server, &idle, None)), "");

    // Delete, then the group is gone.
    let out = ok(&gregor(&server, &["groups", "delete", "g"], None));
    assert_eq!(out.trim(), "Deleted group g.");
    let list = ok(&gregor(&server, &["groups", "list"], None));
    assert!(!list.lines().any(|l| l.starts_with("g ")), "{list}");
}

#[test]
fn two_members_split_the_partitions_and_read_each_record_once() {
    let server = start_server_with(&["--set", "group.initial.rebalance.delay.ms=0"]);
    ok(&gregor(
        &server,
        &["topics", "create", "jobs", "--partitions", "2"],
        None,
    ));
    let input: String = (0..40).map(|i| format!("key{i}:value{i}\n")).collect();
    ok(&gregor(
        &server,
        &["produce", "jobs", "--key-separator", ":"],
        Some(&input),
    ));
    let spawn = || {
        Command::new(BIN)
            .args(["consume", "jobs", "--group", "pair", "--from-beginning"])
            .args(["--timeout-ms", "12000", "--bootstrap-server", &server.addr])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start a member")
    };
    let first = spawn();
    std::thread::sleep(Duration::from_millis(500));
    let second = spawn();

    // The second join makes the first rejoin (told by its heartbeat); then each owns one.
    let mut owners = Vec::new();
    for _ in 0..40 {
        let d = ok(&gregor(&server, &["groups", "describe", "pair"], None));
        if d.contains("State: Stable") && d.contains("Members: 2") {
            owners = d
                .lines()
                .filter(|l| l.starts_with("jobs "))
                .map(|l| l.split_whitespace().nth(5).unwrap_or_default().to_owned())
                .collect();
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    assert_eq!(
        owners.len(),
        2,
        "the group never became stable with two members"
    );
    assert!(owners.iter().all(|o| o != "-"), "{owners:?}");
    assert_ne!(owners[0], owners[1], "each member owns one partition");

    let a = first.wait_with_output().expect("first member");
    let b = second.wait_with_output().expect("second member");
    let mut all = sorted_lines(&ok(&a));
    all.extend(sorted_lines(&ok(&b)));
    all.sort();
    let mut expected: Vec<String> = (0..40).map(|i| format!("value{i}")).collect();
    expected.sort();
    assert_eq!(all, expected, "every record once across both members");

    let describe = ok(&gregor(&server, &["groups", "describe", "pair"], None));
    assert!(describe.contains("State: Empty"), "{describe}");
    for (p, cur, end, lag) in offsets(&describe, "jobs") {
        assert_eq!(
            (cur.as_str(), lag.as_str()),
            (end.as_str(), "0"),
            "partition {p}"
        );
    }
}
