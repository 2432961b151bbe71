//! End-to-end test of the client tools: starts the real `gregor server` on an ephemeral port
//! with a temp data dir, then drives `gregor topics|produce|consume` as a user would and checks
//! what they print. The server is killed by a drop guard, also when an assertion fails.

mod common;

use common::*;
#[test]
fn topics_produce_consume_round_trip() {
    let server = start_server();

    // Create, and refuse to create twice.
    let out = ok(&gregor(
        &server,
        &[
            "topics",
            "create",
            "events",
            "--partitions",
            "3",
            "--config",
            "retention.ms=600000",
        ],
        None,
    ));
    assert_eq!(out.trim(), "Created topic events.");
    let again = gregor(&server, &["topics", "create", "events"], None);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("TOPIC_ALREADY_EXISTS"));
    ok(&gregor(
        &server,
        &["topics", "create", "events", "--if-not-exists"],
        None,
    ));
    ok(&gregor(&server, &["topics", "create", "other"], None));

    let list = ok(&gregor(&server, &["topics", "list"], None));
    assert_eq!(list.lines().collect::<Vec<_>>(), vec!["events", "other"]);

    let describe = ok(&gregor(&server, &["topics", "describe", "events"], None));
    let lines: Vec<&str> = describe.lines().collect();
    assert!(
        lines[0].starts_with("Topic: events\tTopicId: "),
        "{describe}"
    );
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
        assert_eq!(cells.len(), 7, "{row}");
        assert_eq!(cells[0], "events");
        assert_eq!(cells[1], i.to_string());
    }
    assert_eq!(lines.len(), 5, "{describe}");

    // Keyed records, in two runs with different codecs and acks.
    let first: String = (0..100).map(|i| format!("key{i}:value{i}\n")).collect();
    let second: String = (100..150).map(|i| format!("key{i}:value{i}\n")).collect();
    let out = gregor(
        &server,
        &[
            "produce",
            "events",
            "--key-separator",
            ":",
            "--compression",
            "gzip",
        ],
        Some(&first),
    );
    assert_eq!(ok(&out), "", "produce prints nothing on stdout");
    assert!(String::from_utf8_lossy(&out.stderr).contains("100 records produced"));
    ok(&gregor(
        &server,
        &[
            "produce",
            "events",
            "--key-separator",
            ":",
            "--compression",
            "lz4",
            "--acks",
            "1",
        ],
        Some(&second),
    ));

    // All partitions from the beginning: every record once, each key where murmur2 puts it.
    let out = ok(&gregor(
        &server,
        &[
            "consume",
            "events",
            "--from-beginning",
            "--timeout-ms",
            "1500",
            "--format",
            "%p %o %k %v",
        ],
        None,
    ));
    let mut seen = Vec::new();
    for line in out.lines() {
        let f: Vec<&str> = line.split(' ').collect();
        assert_eq!(f.len(), 4, "{line}");
        let p: i32 = f[0].parse().expect("partition");
        assert_eq!(
            p,
            gregor_client::partitioner::partition_for_key(f[2].as_bytes(), 3),
            "{line}"
        );
        assert_eq!(f[3], f[2].replace("key", "value"));
        seen.push(f[2].trim_start_matches("key").parse::<u32>().expect("n"));
    }
    seen.sort_unstable();
    assert_eq!(seen, (0..150).collect::<Vec<_>>());

    // One partition, from an offset, bounded by --max-messages.
    let out = ok(&gregor(
        &server,
        &[
            "consume",
            "events",
            "--partition",
            "1",
            "--offset",
            "2",
            "--max-messages",
            "3",
            "--format",
            "%p:%o",
        ],
        None,
    ));
    assert_eq!(out, "1:2\n1:3\n1:4\n");

    // From the end: nothing new arrives, the timeout ends the tool successfully.
    let out = ok(&gregor(
        &server,
        &["consume", "events", "--timeout-ms", "500"],
        None,
    ));
    assert_eq!(out, "");

    // Keyless values to an explicit partition, uncompressed, fire-and-forget, then read back.
    ok(&gregor(
        &server,
        &["produce", "other", "--partition", "0", "--acks", "0"],
        Some("a\nb\nc\n"),
    ));
    ok(&gregor(
        &server,
        &["produce", "other", "--compression", "zstd"],
        Some("d\n"),
    ));
    // A codec's level (Kafka's compression.<codec>.level); one out of its range is refused.
    ok(&gregor(
        &server,
        &[
            "produce",
            "other",
            "--compression",
            "gzip",
            "--compression-level",
            "9",
        ],
        Some("e\n"),
    ));
    let bad_level = gregor(
        &server,
        &[
            "produce",
            "other",
            "--compression",
            "gzip",
            "--compression-level",
            "10",
        ],
        Some("f\n"),
    );
    assert!(!bad_level.status.success());
    assert!(String::from_utf8_lossy(&bad_level.stderr)
        .contains("Value must be between 1 and 9 or equal to -1"));
    let out = ok(&gregor(
        &server,
        &[
            "consume",
            "other",
            "--from-beginning",
            "--max-messages",
            "5",
            "--timeout-ms",
            "5000",
        ],
        None,
    ));
    let mut values: Vec<&str> = out.lines().collect();
    values.sort_unstable();
    assert_eq!(values, ["a", "b", "c", "d", "e"]);

    // Errors: a clear message and a non-zero exit.
    let missing = gregor(&server, &["consume", "nope", "--timeout-ms", "200"], None);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("UNKNOWN_TOPIC_OR_PARTITION"));
    let bad = gregor(
        &server,
        &["produce", "events", "--partition", "7"],
        Some("x\n"),
    );
    assert!(!bad.status.success());

    // Delete.
    let out = ok(&gregor(&server, &["topics", "delete", "other"], None));
    assert_eq!(out.trim(), "Deleted topic other.");
    let list = ok(&gregor(&server, &["topics", "list"], None));
    assert_eq!(list.trim(), "events");
    let gone = gregor(&server, &["topics", "delete", "other"], None);
    assert!(!gone.status.success());
    ok(&gregor(
        &server,
        &["topics", "delete", "other", "--if-exists"],
        None,
    ));

    // A topic the broker does not have is created on the first produce, as Kafka's producer
    // asks it to (`auto.create.topics.enable`, true by default).
    ok(&gregor(&server, &["produce", "fresh"], Some("new\n")));
    let out = ok(&gregor(
        &server,
        &[
            "consume",
            "fresh",
            "--from-beginning",
            "--max-messages",
            "1",
            "--timeout-ms",
            "5000",
        ],
        None,
    ));
    assert_eq!(out, "new\n");
}
