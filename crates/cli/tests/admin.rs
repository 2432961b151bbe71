//! End-to-end test of the cluster admin tools against a real single-node `gregor server`:
//! `gregor cluster describe`, `topics describe` (epochs, offline replicas,
//! `--under-replicated-partitions`), `topics alter --partitions`, `topics elect-leaders`
//! and `topics reassign`.

mod common;

use common::*;

#[test]
fn cluster_describe_shows_the_node_the_controller_and_the_quorum() {
    let server = start_server();
    let out = ok(&gregor(&server, &["cluster", "describe"], None));
    let lines: Vec<&str> = out.lines().collect();
    assert!(lines[0].starts_with("Cluster: "), "{out}");
    assert_eq!(lines[1], "Controller: 1", "{out}");
    let header: Vec<&str> = lines[3].split_whitespace().collect();
    assert_eq!(header, ["NODE", "ADDRESS", "RACK", "STATE"], "{out}");
    let node: Vec<&str> = lines[4].split_whitespace().collect();
    assert_eq!(node, ["1", server.addr.as_str(), "-", "live"], "{out}");
    assert!(
        out.contains("Quorum: leader 1, epoch "),
        "no quorum section: {out}"
    );
    let voter = out
        .lines()
        .skip_while(|l| !l.starts_with("NODE  ROLE") && !l.starts_with("NODE ROLE"))
        .nth(1)
        .unwrap_or_default();
    let cells: Vec<&str> = voter.split_whitespace().collect();
    // NODE ROLE LOG-END-OFFSET LAG LAST-FETCH ("<n> ms ago": the leader itself, now).
    assert_eq!(cells.len(), 7, "{out}");
    assert_eq!(&cells[..2], ["1", "leader"], "{out}");
    assert_eq!(cells[3], "0", "{out}");
    assert!(cells[4].parse::<u64>().is_ok(), "{out}");
    assert_eq!(&cells[5..], ["ms", "ago"], "{out}");
}

#[test]
fn topics_alter_elect_and_reassign() {
    let server = start_server();
    ok(&gregor(
        &server,
        &["topics", "create", "t", "--partitions", "1"],
        None,
    ));
    let out = ok(&gregor(
        &server,
        &["topics", "alter", "t", "--partitions", "3"],
        None,
    ));
    assert_eq!(out.trim(), "Topic t now has 3 partitions.");
    let describe = ok(&gregor(&server, &["topics", "describe", "t"], None));
    let lines: Vec<&str> = describe.lines().collect();
    assert!(lines[0].contains("PartitionCount: 3"), "{describe}");
    let header: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(
        header,
        [
            "TOPIC",
            "PARTITION",
            "LEADER",
            "EPOCH",
            "REPLICAS",
            "ISR",
            "OFFLINE"
        ]
    );
    for (i, row) in lines[2..].iter().enumerate() {
        let cells: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(
            cells,
            ["t", &i.to_string(), "1", "0", "1", "1", "-"],
            "{describe}"
        );
    }
    // Shrinking is refused.
    let shrink = gregor(
        &server,
        &["topics", "alter", "t", "--partitions", "2"],
        None,
    );
    assert!(!shrink.status.success());
    assert!(
        String::from_utf8_lossy(&shrink.stderr).contains("INVALID_PARTITIONS"),
        "{}",
        String::from_utf8_lossy(&shrink.stderr)
    );
    // Nothing is under-replicated on one node.
    let under = ok(&gregor(
        &server,
        &["topics", "describe", "--under-replicated-partitions"],
        None,
    ));
    assert_eq!(under, "");
    // Every preferred leader already leads.
    let out = ok(&gregor(&server, &["topics", "elect-leaders"], None));
    assert_eq!(out.trim(), "No partition needed a new leader.");
    let out = ok(&gregor(
        &server,
        &[
            "topics",
            "elect-leaders",
            "--topic",
            "t",
            "--partition",
            "1",
        ],
        None,
    ));
    let row: Vec<&str> = out
        .lines()
        .nth(1)
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(row, ["t", "1", "not", "needed"], "{out}");
    // A reassignment to the broker it is already on is a no-op; nothing is in progress.
    let out = ok(&gregor(
        &server,
        &[
            "topics",
            "reassign",
            "--topic",
            "t",
            "--partition",
            "0",
            "--replicas",
            "1",
        ],
        None,
    ));
    assert_eq!(out.trim(), "Reassignment of t-0 to 1 started.");
    let out = ok(&gregor(&server, &["topics", "reassign", "--list"], None));
    assert_eq!(out.trim(), "No reassignment in progress.");
    // To an unknown broker: refused.
    let bad = gregor(
        &server,
        &[
            "topics",
            "reassign",
            "--topic",
            "t",
            "--partition",
            "0",
            "--replicas",
            "7",
        ],
        None,
    );
    assert!(!bad.status.success());
}
