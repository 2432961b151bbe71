//! Offsets sent in transactions (TxnOffsetCommit), end to end with librdkafka (confluent-kafka):
//!
//! - `offsets_sent_in_transactions_commit_and_abort_with_them`: a consume-transform-produce loop
//!   over 20 records in transactions of 5, committing the 1st and 3rd and aborting the 2nd and
//!   4th, each with the consumer's position sent in the transaction. The group's committed
//!   offset (read as a read_committed consumer reads it, OffsetFetch with require_stable) is
//!   the end of the last committed transaction, a read_committed reader of the output sees the
//!   committed transactions' records only and a read_uncommitted one sees all of them; after a
//!   kill -9 and restart the committed offset is the same (the transactional offset records
//!   and their markers are replayed when `__consumer_offsets` is loaded).
//!
//! It goes through the transaction coordinator (InitProducerId with a transactional id,
//! AddPartitionsToTxn, AddOffsetsToTxn, EndTxn) and WriteTxnMarkers.

use std::time::Duration;

use gregor_e2e::client::CONFLUENT;
use gregor_e2e::{run_python_json, unique_topic, Broker};
use serde_json::Value;

const TIMEOUT: Duration = Duration::from_secs(180);

fn client(broker: &Broker, args: &[&str]) -> Value {
    let bootstrap = broker.bootstrap();
    let mut all = vec![bootstrap.as_str()];
    all.extend_from_slice(args);
    run_python_json("txn_offsets_client.py", &all, TIMEOUT)
}

fn committed(broker: &Broker, topic: &str, group: &str) -> i64 {
    client(broker, &["committed", topic, group])["offset"]
        .as_i64()
        .expect("an offset")
}

fn read(broker: &Broker, topic: &str, isolation: &str) -> Vec<String> {
    let doc = client(broker, &["read", topic, "--isolation", isolation]);
    doc["values"]
        .as_array()
        .expect("values")
        .iter()
        .map(|v| v.as_str().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn offsets_sent_in_transactions_commit_and_abort_with_them() {
    let mut broker = Broker::start();
    let (topic_in, topic_out) = (unique_topic("ctp-in"), unique_topic("ctp-out"));
    CONFLUENT.create_topic(&broker, &topic_in, 1);
    CONFLUENT.create_topic(&broker, &topic_out, 1);
    client(&broker, &["produce", &topic_in, "--count", "20"]);

    let doc = client(
        &broker,
        &[
            "ctp",
            &topic_in,
            &topic_out,
            "ctp-group",
            "ctp-tx",
            "--count",
            "20",
            "--batch",
            "5",
        ],
    );
    if let Some(reason) = doc["error"].as_str() {
        panic!("the transactional producer did not start: {reason}");
    }
    let transactions = doc["transactions"].as_array().expect("transactions");
    let outcome: Vec<(bool, i64)> = transactions
        .iter()
        .map(|t| {
            (
                t["committed"].as_bool().unwrap_or(false),
                t["position"].as_i64().unwrap_or(-1),
            )
        })
        .collect();
    assert_eq!(
        outcome,
        vec![(true, 5), (false, 10), (true, 15), (false, 20)],
        "{doc}"
    );

    // The offset sent with the last committed transaction; the aborted one after it is gone.
    assert_eq!(committed(&broker, &topic_in, "ctp-group"), 15);
    let committed_values: Vec<String> = (0..5).chain(10..15).map(|i| format!("Tv{i}")).collect();
    assert_eq!(
        read(&broker, &topic_out, "read_committed"),
        committed_values
    );
    assert_eq!(read(&broker, &topic_out, "read_uncommitted").len(), 20);

    broker.kill9();
    broker.restart();
    assert_eq!(
        committed(&broker, &topic_in, "ctp-group"),
        15,
        "after a kill -9 and restart"
    );
    assert_eq!(
        read(&broker, &topic_out, "read_committed"),
        committed_values
    );
}
