//! Interop with Debian's kcat (librdkafka 2.0): metadata, keyed produce and consume.
//! Topics are created with a raw CreateTopics request (kcat has no admin commands).

use std::time::Duration;

use gregor_e2e::raw::{code, RawConn};
use gregor_e2e::{kcat, unique_topic, Broker};

const KCAT_TIMEOUT: Duration = Duration::from_secs(60);

fn create_topic(broker: &Broker, topic: &str, partitions: i32) {
    let mut conn = RawConn::connect(broker.addr());
    assert_eq!(
        conn.create_topic(topic, partitions),
        code::NONE,
        "CreateTopics {topic}"
    );
}

#[test]
fn metadata_lists_topics_and_partitions() {
    let broker = Broker::start();
    let topic = unique_topic("kcat-meta");
    create_topic(&broker, &topic, 3);
    let out = kcat(&["-b", &broker.bootstrap(), "-L"], None, KCAT_TIMEOUT);
    assert!(out.contains("1 brokers:"), "kcat -L output:\n{out}");
    assert!(
        out.contains(&format!("topic \"{topic}\" with 3 partitions:")),
        "kcat -L output:\n{out}"
    );
    for p in 0..3 {
        assert!(
            out.contains(&format!("partition {p}, leader ")),
            "kcat -L output lacks partition {p}:\n{out}"
        );
    }
}

#[test]
fn produce_lines_then_consume_them_back() {
    let broker = Broker::start();
    let topic = unique_topic("kcat");
    create_topic(&broker, &topic, 1);
    let lines: Vec<String> = (0..500)
        .map(|i| format!("key{}:value number {i}", i % 7))
        .collect();
    let input = lines.join("\n") + "\n";
    let bootstrap = broker.bootstrap();
    kcat(
        &[
            "-b", &bootstrap, "-P", "-t", &topic, "-K:", "-X", "acks=all",
        ],
        Some(input.as_bytes()),
        KCAT_TIMEOUT,
    );
    let out = kcat(
        &[
            "-b",
            &bootstrap,
            "-C",
            "-t",
            &topic,
            "-o",
            "beginning",
            "-e",
            "-f",
            "%k:%s\n",
        ],
        None,
        KCAT_TIMEOUT,
    );
    let got: Vec<&str> = out.lines().collect();
    assert_eq!(got.len(), lines.len(), "records read back:\n{out}");
    for (i, (g, want)) in got.iter().zip(&lines).enumerate() {
        assert_eq!(g, want, "record {i}");
    }
}

#[test]
fn keyed_produce_over_partitions_keeps_keys_together() {
    let broker = Broker::start();
    let topic = unique_topic("kcat-keys");
    create_topic(&broker, &topic, 3);
    let bootstrap = broker.bootstrap();
    let lines: Vec<String> = (0..300).map(|i| format!("k{}:v{i:04}", i % 10)).collect();
    let input = lines.join("\n") + "\n";
    kcat(
        &[
            "-b", &bootstrap, "-P", "-t", &topic, "-K:", "-X", "acks=all",
        ],
        Some(input.as_bytes()),
        KCAT_TIMEOUT,
    );
    let out = kcat(
        &[
            "-b",
            &bootstrap,
            "-C",
            "-t",
            &topic,
            "-o",
            "beginning",
            "-e",
            "-f",
            "%p %o %k:%s\n",
        ],
        None,
        KCAT_TIMEOUT,
    );
    let mut partition_of = std::collections::HashMap::new();
    let mut next_offset = std::collections::HashMap::new();
    let mut got = Vec::new();
    for line in out.lines() {
        let mut it = line.splitn(3, ' ');
        let (p, o, kv) = match (it.next(), it.next(), it.next()) {
            (Some(p), Some(o), Some(kv)) => (p, o, kv),
            _ => panic!("unexpected kcat line {line:?}"),
        };
        let o: i64 = o.parse().expect("offset");
        let key = kv.split(':').next().expect("key");
        let first = partition_of.entry(key.to_string()).or_insert(p.to_string());
        assert_eq!(first, p, "key {key} in two partitions");
        let next = next_offset.entry(p.to_string()).or_insert(0i64);
        assert_eq!(o, *next, "partition {p}: offsets not contiguous");
        *next += 1;
        got.push(kv.to_string());
    }
    got.sort();
    let mut want = lines.clone();
    want.sort();
    assert_eq!(got, want, "records read back");
    assert!(next_offset.len() > 1, "10 keys all went to one partition");
}
