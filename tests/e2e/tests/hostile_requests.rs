//! Requests that are well-formed but hostile in size or shape, and state a restart must keep:
//! CreateTopics asking for absurd partition counts, Fetch asking for more than the broker
//! should send (or naming a partition many times), and an Empty consumer group across a
//! restart. After each case the broker keeps answering other connections.

use std::time::Duration;

use gregor_e2e::{run_python_json, unique_topic, Broker};
use serde_json::Value;

/// How long one client script may run.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(60);

fn group_step(broker: &Broker, args: &[&str]) -> Value {
    let bootstrap = broker.bootstrap();
    let mut all = vec![bootstrap.as_str()];
    all.extend_from_slice(args);
    run_python_json("hostile_group.py", &all, SCRIPT_TIMEOUT)
}

/// A consumer (librdkafka) joins a group and leaves without committing: the group is Empty
/// with no offsets. Kafka keeps it across a restart (until the offsets-retention check removes
/// it), so after a restart ListGroups and DescribeGroups still show it as Empty.
#[test]
fn empty_group_without_offsets_is_listed_after_restart() {
    let mut broker = Broker::start_with(&["group.initial.rebalance.delay.ms=0"]);
    let topic = unique_topic("empty-group");
    let group = unique_topic("group");
    let mut conn = gregor_e2e::raw::RawConn::connect(broker.addr());
    assert_eq!(conn.create_topic(&topic, 2), gregor_e2e::raw::code::NONE);
    drop(conn);

    let joined = group_step(&broker, &["join-leave", &topic, &group]);
    assert_eq!(joined["assigned"], serde_json::json!([0, 1]), "{joined}");
    let before = group_step(&broker, &["list-groups"]);
    assert_eq!(
        before["groups"][&group], "EMPTY",
        "before restart: {before}"
    );

    broker.restart();
    let after = group_step(&broker, &["list-groups"]);
    assert_eq!(after["groups"][&group], "EMPTY", "after restart: {after}");
    assert_eq!(
        after["described"][&group], "EMPTY",
        "after restart: {after}"
    );
}
