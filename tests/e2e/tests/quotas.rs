//! Client quotas end to end: set through `gregor quotas alter`, enforced on a real third-party
//! client (confluent-kafka, on librdkafka), kept in the metadata log across a restart and seen by
//! every broker of a cluster. Kafka's own `kafka-configs` is in kafka_tools.rs.
//!
//! The brokers run with `quota.window.num=2` (1 s windows): the rate is then measured over at
//! least one second, so a client may burst about one second's worth of its quota before it is
//! throttled, instead of Kafka's default ten, and a few megabytes show the throttling.

use std::thread;
use std::time::{Duration, Instant};

use gregor_e2e::cluster::Cluster;
use gregor_e2e::{run_python_json, unique_topic, Broker};

/// 1 MiB/s.
const RATE: u64 = 1 << 20;
/// What each load sends: four times the rate.
const VOLUME: u64 = 4 << 20;

use gregor_e2e::broker::{gregor_cli as cli, gregor_cli_ok as cli_ok};

/// One confluent-kafka load: (elapsed seconds, throttle reports, largest throttle ms).
fn load(bootstrap: &str, what: &str, topic: &str, client_id: &str) -> (f64, u64, u64) {
    let doc = run_python_json(
        "quota_client.py",
        &[
            bootstrap,
            what,
            topic,
            "--client-id",
            client_id,
            "--bytes",
            &VOLUME.to_string(),
        ],
        Duration::from_secs(240),
    );
    let elapsed = doc["elapsed_s"].as_f64().expect("elapsed_s");
    let events = doc["throttle_events"].as_u64().expect("throttle_events");
    let max = doc["max_throttle_ms"].as_u64().expect("max_throttle_ms");
    eprintln!("{what} as {client_id}: {elapsed:.2} s, {events} throttle reports, max {max} ms");
    (elapsed, events, max)
}

/// The least time `VOLUME` bytes can take at `RATE` once the one-second burst is spent.
fn least_seconds() -> f64 {
    (VOLUME - RATE) as f64 / RATE as f64 * 0.8
}

fn create_topic(bootstrap: &str) -> String {
    let topic = unique_topic("quota");
    cli_ok(
        bootstrap,
        &["topics", "create", &topic, "--partitions", "1"],
    );
    topic
}

/// The quota rows of `gregor quotas describe`: (entity, key, value).
fn described(bootstrap: &str, args: &[&str]) -> Vec<(String, String, String)> {
    let mut all = vec!["quotas", "describe"];
    all.extend_from_slice(args);
    cli_ok(bootstrap, &all)
        .lines()
        .skip(1)
        .filter_map(|l| {
            let cells: Vec<&str> = l.split_whitespace().collect();
            (cells.len() == 3).then(|| (cells[0].into(), cells[1].into(), cells[2].into()))
        })
        .collect()
}

/// A `producer_byte_rate` holds one client id's producer to its rate, leaves another client id
/// alone, survives a restart, and its removal lifts it without one.
#[test]
fn a_producer_quota_slows_its_client_id_only() {
    let mut broker = Broker::start_with(&["quota.window.num=2"]);
    let b = broker.bootstrap();
    let topic = create_topic(&b);
    let out = cli_ok(
        &b,
        &[
            "quotas",
            "alter",
            "--client-id",
            "slow-producer",
            "--set",
            &format!("producer_byte_rate={RATE}"),
        ],
    );
    assert!(out.contains("updated 1 quota"), "{out}");
    assert_eq!(
        described(&b, &["--client-id", "slow-producer"]),
        vec![(
            "client-id=slow-producer".to_string(),
            "producer_byte_rate".to_string(),
            RATE.to_string()
        )]
    );

    let (fast, fast_events, _) = load(&b, "produce", &topic, "fast-producer");
    let (slow, slow_events, slow_max) = load(&b, "produce", &topic, "slow-producer");
    assert!(
        slow >= least_seconds(),
        "{VOLUME} bytes at {RATE} B/s took only {slow:.2} s"
    );
    assert!(slow < 30.0, "throttled far below the rate: {slow:.2} s");
    assert!(
        slow_events > 0 && slow_max > 0,
        "no throttle_time_ms reported"
    );
    assert_eq!(fast_events, 0, "the unthrottled client id was throttled");
    assert!(
        fast < slow / 2.0,
        "the client id without a quota took {fast:.2} s (the throttled one {slow:.2} s)"
    );

    // The metadata log keeps the quota, and the broker enforces it again after a restart.
    broker.restart();
    let b = broker.bootstrap();
    assert_eq!(
        described(&b, &[]),
        vec![(
            "client-id=slow-producer".to_string(),
            "producer_byte_rate".to_string(),
            RATE.to_string()
        )]
    );
    let (slow, _, _) = load(&b, "produce", &topic, "slow-producer");
    assert!(
        slow >= least_seconds(),
        "after a restart: {VOLUME} bytes in {slow:.2} s"
    );

    // Removed: the same client id is no longer slowed, without a restart.
    cli_ok(
        &b,
        &[
            "quotas",
            "alter",
            "--client-id",
            "slow-producer",
            "--delete",
            "producer_byte_rate",
        ],
    );
    assert!(described(&b, &[]).is_empty());
    let (after, events, _) = load(&b, "produce", &topic, "slow-producer");
    assert_eq!(events, 0, "throttled after the quota was removed");
    assert!(after < least_seconds(), "still slow: {after:.2} s");
}

/// A `consumer_byte_rate` for the default client id slows every consumer without a quota of
/// its own, while a client id with a higher quota of its own is not slowed (precedence).
#[test]
fn a_default_consumer_quota_slows_fetches_and_a_client_quota_overrides_it() {
    let broker = Broker::start_with(&["quota.window.num=2"]);
    let b = broker.bootstrap();
    let topic = create_topic(&b);
    // Fill the topic before any quota.
    load(&b, "produce", &topic, "filler");
    cli_ok(
        &b,
        &[
            "quotas",
            "alter",
            "--client-id-default",
            "--set",
            &format!("consumer_byte_rate={RATE}"),
        ],
    );
    cli_ok(
        &b,
        &[
            "quotas",
            "alter",
            "--client-id",
            "vip-reader",
            "--set",
            &format!("consumer_byte_rate={}", RATE * 1000),
        ],
    );
    let rows = described(&b, &[]);
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(
        rows.iter().any(|r| r.0 == "client-id=<default>"),
        "{rows:?}"
    );

    let (slow, events, _) = load(&b, "consume", &topic, "any-reader");
    assert!(
        slow >= least_seconds(),
        "{VOLUME} bytes fetched at {RATE} B/s in {slow:.2} s"
    );
    assert!(events > 0, "no throttle_time_ms reported to the consumer");
    let (vip, vip_events, _) = load(&b, "consume", &topic, "vip-reader");
    assert_eq!(
        vip_events, 0,
        "the client id's own quota did not override the default"
    );
    assert!(vip < slow / 2.0, "vip {vip:.2} s, default {slow:.2} s");
}

/// Bad keys and values are refused with INVALID_REQUEST and Kafka's message; nothing is kept.
#[test]
fn bad_quotas_are_refused() {
    let broker = Broker::start();
    let b = broker.bootstrap();
    for (set, message) in [
        ("bytes_per_fortnight=10", "Invalid configuration key"),
        ("producer_byte_rate=1.5", "must be an integer"),
        ("consumer_byte_rate=-4", "must be positive"),
    ] {
        let (ok, _, err) = cli(&b, &["quotas", "alter", "--client-id", "c", "--set", set]);
        assert!(
            !ok && err.contains("INVALID_REQUEST") && err.contains(message),
            "{set}: {err}"
        );
    }
    let (ok, _, err) = cli(&b, &["quotas", "alter", "--set", "producer_byte_rate=5"]);
    assert!(!ok && err.contains("which entity"), "{err}");
    // validate_only checks without keeping.
    let out = cli_ok(
        &b,
        &[
            "quotas",
            "alter",
            "--client-id",
            "c",
            "--set",
            "request_percentage=12.5",
            "--validate-only",
        ],
    );
    assert!(out.contains("valid"), "{out}");
    assert!(described(&b, &[]).is_empty());
}

/// Quotas go through the controller into the metadata log: set on one broker, every broker of
/// a three-node cluster describes them, also after a restart.
#[test]
fn every_broker_of_a_cluster_sees_the_quotas() {
    let mut cluster = Cluster::start(3, &[]);
    let first = cluster.node(1).addr.to_string();
    cli_ok(
        &first,
        &[
            "quotas",
            "alter",
            "--user-default",
            "--client-id",
            "etl",
            "--set",
            "producer_byte_rate=2048",
            "--set",
            "request_percentage=50",
        ],
    );
    let want = vec![
        (
            "user=<default>,".to_string(),
            "client-id=etl".to_string(),
            "producer_byte_rate".to_string(),
        ),
        (
            "user=<default>,".to_string(),
            "client-id=etl".to_string(),
            "request_percentage".to_string(),
        ),
    ];
    let check = |cluster: &Cluster| {
        for id in 1..=3 {
            let addr = cluster.node(id).addr.to_string();
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                let (ok, out, _) = cli(&addr, &["quotas", "describe"]);
                // Rows: `user=<default>, client-id=etl  KEY  VALUE`.
                let rows: Vec<(String, String, String)> = out
                    .lines()
                    .skip(1)
                    .filter_map(|l| {
                        let c: Vec<&str> = l.split_whitespace().collect();
                        (c.len() == 4).then(|| (c[0].into(), c[1].into(), c[2].into()))
                    })
                    .collect();
                if ok && rows == want {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "broker {id} does not show the quotas:\n{out}\n{}",
                    cluster.logs()
                );
                thread::sleep(Duration::from_millis(200));
            }
        }
    };
    check(&cluster);
    cluster.restart(2);
    check(&cluster);
}
