//! `/metrics` on the real binary (`http.listener`), read the way a Prometheus server reads it:
//! over HTTP, parsed by Prometheus' own Python client (`metrics_client.py`,
//! `prometheus_client.parser`), which also rejects a page that breaks the text format.
//!
//! - `one_node_counts_what_confluent_kafka_produced_and_consumed`: confluent-kafka produces a
//!   known number of records of a known size (acks=all) to a new 3-partition topic and reads
//!   them all in a consumer group. Exact where the broker knows exactly (records in, each
//!   partition's log end, the all-topics meters as the sum of the topics', bytes in as the
//!   bytes the logs hold, request counts against the time summaries' counts, the replica
//!   manager's and the controller's gauges against the per-partition ones), lower bounds where
//!   it depends on the client (bytes out, request counts, connections, the process).
//! - `the_http_listener_answers_and_survives_silent_and_garbage_connections`: `/` (the web
//!   console) answers 200, an unknown path 404, POST, PUT and DELETE 405; garbage on the HTTP
//!   port (random bytes, a Kafka frame, a TLS hello, an HTTP/2 preface, oversized headers, a
//!   bad request line) is closed within seconds, not held until the header read timeout, and
//!   the broker goes on; 100 silent connections: a scrape through a new connection is
//!   answered or closed at once, the Kafka listener still takes a produce, and the silent
//!   connections are dropped after the header read timeout, after which scrapes are answered.
//! - `three_nodes_report_a_killed_follower_and_its_return`: an RF=3 topic with
//!   `min.insync.replicas=2`; the leader keeps a fetch session for each follower (KIP-227);
//!   the followers count replication bytes in, the leader replication bytes out; kill -9 a follower that is not the active controller: the leader
//!   reports the partition under-replicated with an ISR of 2 and an ISR shrink, the active
//!   controller one fenced broker; the node restarts: nothing under-replicated, an ISR
//!   expansion, no fenced broker. Every wait polls the pages with a deadline.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use gregor_e2e::check;
use gregor_e2e::client::CONFLUENT;
use gregor_e2e::cluster::{Cluster, Role};
use gregor_e2e::cluster_client::{bootstrap_of, client, create_topic, describe, wait_for_brokers};
use gregor_e2e::mutate::Rng;
use gregor_e2e::raw::RawConn;
use gregor_e2e::{ports, run_python_json, unique_topic, Broker};
use serde_json::Value;

/// How long one run of `metrics_client.py` or of a Kafka client script may take.
const SCRIPT_TIMEOUT: Duration = Duration::from_secs(90);

// Kafka's metric names, as the JMX exporter's rules make them.
const MESSAGES_IN: &str = "kafka_server_brokertopicmetrics_messagesin_total";
const PARTITION_OFFSET: &str = "kafka_topic_partition_current_offset";
const PARTITION_OLDEST: &str = "kafka_topic_partition_oldest_offset";
const GROUP_OFFSET: &str = "kafka_consumergroup_current_offset";
const GROUP_LAG: &str = "kafka_consumergroup_lag";
const GROUP_OFFSET_SUM: &str = "kafka_consumergroup_current_offset_sum";
const GROUP_LAG_SUM: &str = "kafka_consumergroup_lag_sum";
const GROUP_MEMBERS: &str = "kafka_consumergroup_members";
const BYTES_IN: &str = "kafka_server_brokertopicmetrics_bytesin_total";
const BYTES_OUT: &str = "kafka_server_brokertopicmetrics_bytesout_total";
const REPLICATION_BYTES_IN: &str = "kafka_server_brokertopicmetrics_replicationbytesin_total";
const REPLICATION_BYTES_OUT: &str = "kafka_server_brokertopicmetrics_replicationbytesout_total";
const TOTAL_PRODUCE: &str = "kafka_server_brokertopicmetrics_totalproducerequests_total";
const FAILED_PRODUCE: &str = "kafka_server_brokertopicmetrics_failedproducerequests_total";
const TOTAL_FETCH: &str = "kafka_server_brokertopicmetrics_totalfetchrequests_total";
const FAILED_FETCH: &str = "kafka_server_brokertopicmetrics_failedfetchrequests_total";
const BROKER_TOPIC_METERS: [&str; 9] = [
    MESSAGES_IN,
    BYTES_IN,
    BYTES_OUT,
    REPLICATION_BYTES_IN,
    REPLICATION_BYTES_OUT,
    TOTAL_PRODUCE,
    FAILED_PRODUCE,
    TOTAL_FETCH,
    FAILED_FETCH,
];
const REQUESTS: &str = "kafka_network_requestmetrics_requests_total";
const TOTAL_TIME: &str = "kafka_network_requestmetrics_totaltimems";
const ISR_SHRINKS: &str = "kafka_server_replicamanager_isrshrinks_total";
const ISR_EXPANDS: &str = "kafka_server_replicamanager_isrexpands_total";
const BROKER_STATE: &str = "kafka_server_kafkaserver_brokerstate";
const PARTITION_COUNT: &str = "kafka_server_replicamanager_partitioncount";
const LEADER_COUNT: &str = "kafka_server_replicamanager_leadercount";
const UNDER_REPLICATED: &str = "kafka_server_replicamanager_underreplicatedpartitions";
const UNDER_MIN_ISR_COUNT: &str = "kafka_server_replicamanager_underminisrpartitioncount";
const AT_MIN_ISR_COUNT: &str = "kafka_server_replicamanager_atminisrpartitioncount";
const OFFLINE_REPLICAS: &str = "kafka_server_replicamanager_offlinereplicacount";
const P_UNDER_REPLICATED: &str = "kafka_cluster_partition_underreplicated";
const P_UNDER_MIN_ISR: &str = "kafka_cluster_partition_underminisr";
const P_AT_MIN_ISR: &str = "kafka_cluster_partition_atminisr";
const P_ISR: &str = "kafka_cluster_partition_insyncreplicascount";
const P_REPLICAS: &str = "kafka_cluster_partition_replicascount";
const P_LSO_LAG: &str = "kafka_cluster_partition_laststableoffsetlag";
const LOG_SIZE: &str = "kafka_log_log_size";
const LOG_SEGMENTS: &str = "kafka_log_log_numlogsegments";
const LOG_START: &str = "kafka_log_log_logstartoffset";
const LOG_END: &str = "kafka_log_log_logendoffset";
const ACTIVE_CONTROLLER: &str = "kafka_controller_kafkacontroller_activecontrollercount";
const GLOBAL_TOPICS: &str = "kafka_controller_kafkacontroller_globaltopiccount";
const GLOBAL_PARTITIONS: &str = "kafka_controller_kafkacontroller_globalpartitioncount";
const OFFLINE_PARTITIONS: &str = "kafka_controller_kafkacontroller_offlinepartitionscount";
const IMBALANCE: &str = "kafka_controller_kafkacontroller_preferredreplicaimbalancecount";
const ACTIVE_BROKERS: &str = "kafka_controller_kafkacontroller_activebrokercount";
const FENCED_BROKERS: &str = "kafka_controller_kafkacontroller_fencedbrokercount";
const CONNECTIONS: &str = "kafka_server_socket_server_metrics_connection_count";
const CONNECTIONS_CREATED: &str = "kafka_server_socket_server_metrics_connection_creation_total";

/// The quantiles the time summaries export (Kafka's histogram percentiles).
const QUANTILES: [&str; 6] = ["0.5", "0.75", "0.95", "0.98", "0.99", "0.999"];

/// One sample of a scraped page.
#[derive(Debug, Clone)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// A `/metrics` page as `prometheus_client` parsed it.
#[derive(Debug, Clone)]
struct Page {
    /// The `Content-Type` the page came with.
    content_type: String,
    /// Its `Content-Encoding` (the scraper asks for gzip, as Prometheus does).
    content_encoding: String,
    /// Family name (a counter's without `_total`, as the parser names it) → its TYPE.
    families: BTreeMap<String, String>,
    samples: Vec<Sample>,
}

impl Page {
    fn from_json(doc: &Value) -> Result<Page, String> {
        if let Some(e) = doc.get("error").and_then(Value::as_str) {
            return Err(e.to_string());
        }
        let families = doc["families"]
            .as_object()
            .ok_or_else(|| format!("no families in {doc}"))?
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
            .collect();
        let samples = doc["samples"]
            .as_array()
            .ok_or_else(|| format!("no samples in {doc}"))?
            .iter()
            .map(|s| Sample {
                name: s[0].as_str().unwrap_or_default().to_string(),
                labels: s[1]
                    .as_object()
                    .map(|m| {
                        m.iter()
                            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                            .collect()
                    })
                    .unwrap_or_default(),
                // null: a NaN sample (JSON has none).
                value: s[2].as_f64().unwrap_or(f64::NAN),
            })
            .collect();
        Ok(Page {
            content_type: doc["content_type"].as_str().unwrap_or_default().to_string(),
            content_encoding: doc["content_encoding"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
            families,
            samples,
        })
    }

    /// The samples called `name` whose labels include `labels`.
    fn matching<'a>(
        &'a self,
        name: &'a str,
        labels: &'a [(&'a str, &'a str)],
    ) -> impl Iterator<Item = &'a Sample> + 'a {
        self.samples.iter().filter(move |s| {
            s.name == name
                && labels
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
    }

    /// The sample called `name` with exactly `labels`.
    fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        self.matching(name, labels)
            .find(|s| s.labels.len() == labels.len())
            .map(|s| s.value)
    }

    /// [`Page::get`], failing the test when the sample is missing.
    fn value(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.get(name, labels).unwrap_or_else(|| {
            panic!(
                "no sample {name}{labels:?}; samples of that name:\n{}",
                self.show(name)
            )
        })
    }

    /// The sum of the samples called `name` whose labels include `labels` (0 when none).
    fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.matching(name, labels).map(|s| s.value).sum()
    }

    /// The samples called `name`, one a line, for failure messages.
    fn show(&self, name: &str) -> String {
        self.samples
            .iter()
            .filter(|s| s.name == name)
            .map(|s| format!("  {}{:?} {}", s.name, s.labels, s.value))
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// `(topic, partition)` of every sample called `name`.
    fn partitions(&self, name: &str) -> BTreeSet<(String, String)> {
        self.samples
            .iter()
            .filter(|s| s.name == name)
            .map(|s| {
                let l = |k: &str| s.labels.get(k).cloned().unwrap_or_default();
                (l("topic"), l("partition"))
            })
            .collect()
    }
}

/// Scrapes every URL in one run of the scraper: each page, or why it was not answered.
fn scrape_all(urls: &[&str]) -> Vec<Result<Page, String>> {
    scrape_with_timeout(urls, 10.0)
        .into_iter()
        .map(|(page, _)| page)
        .collect()
}

/// [`scrape_all`] with an HTTP timeout, and how long each request took.
fn scrape_with_timeout(urls: &[&str], timeout_s: f64) -> Vec<(Result<Page, String>, f64)> {
    let timeout = timeout_s.to_string();
    let mut args = vec!["scrape", "--timeout", &timeout];
    args.extend_from_slice(urls);
    let doc = run_python_json("metrics_client.py", &args, SCRIPT_TIMEOUT);
    let pages = doc["pages"]
        .as_array()
        .unwrap_or_else(|| panic!("no pages in {doc}"));
    assert_eq!(pages.len(), urls.len(), "{doc}");
    pages
        .iter()
        .map(|p| {
            (
                Page::from_json(p),
                p["seconds"].as_f64().unwrap_or(f64::NAN),
            )
        })
        .collect()
}

/// One page, which must be answered.
fn scrape(url: &str) -> Page {
    scrape_all(&[url])
        .remove(0)
        .unwrap_or_else(|e| panic!("scrape of {url} failed: {e}"))
}

/// `(status, body, error)` of one HTTP request by urllib.
fn http_request(method: &str, url: &str) -> (Option<u64>, String, Option<String>) {
    let doc = run_python_json(
        "metrics_client.py",
        &["request", method, url, "--timeout", "10"],
        SCRIPT_TIMEOUT,
    );
    (
        doc["status"].as_u64(),
        doc["body"].as_str().unwrap_or_default().to_string(),
        doc["error"].as_str().map(str::to_string),
    )
}

/// Gives every node of a prepared cluster an HTTP listener on a fixed port (below the ephemeral
/// range, so a restarted node serves on its old one): each node's `/metrics` URL.
fn http_listeners(cluster: &mut Cluster) -> BTreeMap<i32, String> {
    let mut urls = BTreeMap::new();
    for id in cluster.ids() {
        let addr = ports::reserve();
        cluster
            .args_mut(id)
            .extend(["--http-listen".to_string(), addr.to_string()]);
        urls.insert(id, format!("http://{addr}/metrics"));
    }
    urls
}

/// The `/metrics` URL a node logged (`metrics served on http://HOST:PORT/metrics`), the last
/// one if it started more than once.
fn metrics_url(logs: &str) -> String {
    logs.lines()
        .rev()
        .find_map(|l| {
            let rest = &l[l.find("metrics served on ")? + "metrics served on ".len()..];
            rest.split_whitespace().next().map(str::to_string)
        })
        .unwrap_or_else(|| panic!("no 'metrics served on' line in the log:\n{logs}"))
}

/// The HTTP listener's address in a `/metrics` URL.
fn http_addr(url: &str) -> SocketAddr {
    url.trim_start_matches("http://")
        .trim_end_matches("/metrics")
        .parse()
        .unwrap_or_else(|e| panic!("no address in {url}: {e}"))
}

/// Polls `f` every 250 ms until it returns `Ok`, or fails the test after `timeout` with the
/// last reason it gave (the scraped values that did not match) and `context()`.
fn poll<T>(
    what: &str,
    timeout: Duration,
    context: impl Fn() -> String,
    mut f: impl FnMut() -> Result<T, String>,
) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        match f() {
            Ok(v) => return v,
            Err(why) if Instant::now() > deadline => {
                panic!(
                    "{what}: not within {timeout:?}; last seen: {why}\n{}",
                    context()
                )
            }
            Err(_) => thread::sleep(Duration::from_millis(250)),
        }
    }
}

/// `Err(why)` unless `ok`: a step of a polled condition.
fn ensure(ok: bool, why: impl FnOnce() -> String) -> Result<(), String> {
    if ok {
        Ok(())
    } else {
        Err(why())
    }
}

// ---------------------------------------------------------------------------------------------
// One node
// ---------------------------------------------------------------------------------------------

/// Records produced, and the size of each value.
const RECORDS: usize = 600;
const VALUE_SIZE: usize = 200;

/// confluent-kafka produces and consumes; the page says exactly what the broker did.
#[test]
fn one_node_counts_what_confluent_kafka_produced_and_consumed() {
    let started = Instant::now();
    let broker = Broker::start_with(&["http.listener=127.0.0.1:0"]);
    let url = metrics_url(&broker.logs());
    let bootstrap = broker.bootstrap();
    let topic = unique_topic("metrics");
    CONFLUENT.create_topic(&broker, &topic, 3);
    // Uncompressed, so the record bytes the broker counts cover every value.
    let delivered = CONFLUENT.produce(&broker, &topic, RECORDS, VALUE_SIZE, "none");
    assert_eq!(delivered.len(), RECORDS);
    let mut per_partition: BTreeMap<i32, i64> = BTreeMap::new();
    for r in &delivered {
        *per_partition.entry(r.partition).or_default() += 1;
    }
    let group = unique_topic("metrics-group");
    let count = RECORDS.to_string();
    let doc = run_python_json(
        "group_client.py",
        &[
            &bootstrap,
            "consume-commit",
            &topic,
            &group,
            "--count",
            &count,
        ],
        SCRIPT_TIMEOUT,
    );
    let consumed = check::records(&doc, "records");
    assert_eq!(consumed.len(), RECORDS, "consumed in the group: {doc}");

    let page = scrape(&url);
    let t = [("topic", topic.as_str())];
    let show = |name: &str| page.show(name);

    // The format: Prometheus' text format, each family with the type Kafka's exporter gives.
    assert!(
        page.content_type.starts_with("text/plain") && page.content_type.contains("0.0.4"),
        "content type {:?}",
        page.content_type
    );
    assert_eq!(
        page.content_encoding, "gzip",
        "asked for gzip as Prometheus does"
    );
    // (The parser names a counter's family without `_total`.)
    let counters = [REQUESTS, CONNECTIONS_CREATED, "process_cpu_seconds_total"];
    for name in BROKER_TOPIC_METERS.iter().chain(&counters) {
        let family = name.trim_end_matches("_total");
        assert_eq!(
            page.families.get(family).map(String::as_str),
            Some("counter"),
            "TYPE of {name}"
        );
    }
    assert_eq!(
        page.families.get(TOTAL_TIME).map(String::as_str),
        Some("summary")
    );
    assert_eq!(
        page.families.get(BROKER_STATE).map(String::as_str),
        Some("gauge")
    );
    assert_eq!(
        page.families.get(LOG_END).map(String::as_str),
        Some("gauge")
    );

    // Records in: exactly what was acknowledged, and exactly where.
    assert_eq!(
        page.value(MESSAGES_IN, &t),
        RECORDS as f64,
        "{}",
        show(MESSAGES_IN)
    );
    assert!(
        page.value(MESSAGES_IN, &[]) >= RECORDS as f64,
        "{}",
        show(MESSAGES_IN)
    );
    // Consumer lag, kafka_exporter's names: the group committed every record it read.
    for p in 0..3 {
        let ps = p.to_string();
        let tp = [("topic", topic.as_str()), ("partition", ps.as_str())];
        let gtp = [
            ("consumergroup", group.as_str()),
            ("topic", topic.as_str()),
            ("partition", ps.as_str()),
        ];
        let want = per_partition.get(&p).copied().unwrap_or(0) as f64;
        assert_eq!(
            page.value(PARTITION_OFFSET, &tp),
            want,
            "{}",
            show(PARTITION_OFFSET)
        );
        assert_eq!(
            page.value(PARTITION_OLDEST, &tp),
            0.0,
            "{}",
            show(PARTITION_OLDEST)
        );
        if want > 0.0 {
            assert_eq!(
                page.value(GROUP_OFFSET, &gtp),
                want,
                "{}",
                show(GROUP_OFFSET)
            );
            assert_eq!(page.value(GROUP_LAG, &gtp), 0.0, "{}", show(GROUP_LAG));
        }
    }
    let gt = [("consumergroup", group.as_str()), ("topic", topic.as_str())];
    assert_eq!(page.value(GROUP_OFFSET_SUM, &gt), RECORDS as f64);
    assert_eq!(page.value(GROUP_LAG_SUM, &gt), 0.0);
    assert_eq!(
        page.value(GROUP_MEMBERS, &[("consumergroup", group.as_str())]),
        0.0,
        "the consumer closed: {}",
        show(GROUP_MEMBERS)
    );
    for p in 0..3 {
        let ps = p.to_string();
        let tp = [("topic", topic.as_str()), ("partition", ps.as_str())];
        let want = per_partition.get(&p).copied().unwrap_or(0) as f64;
        assert_eq!(
            page.value(LOG_END, &tp),
            want,
            "log end of partition {p}: {}",
            show(LOG_END)
        );
        assert_eq!(page.value(LOG_START, &tp), 0.0, "{}", show(LOG_START));
        assert!(
            page.value(LOG_SEGMENTS, &tp) >= 1.0,
            "{}",
            show(LOG_SEGMENTS)
        );
        // One replica, led here, in sync, no open transaction.
        assert_eq!(page.value(P_UNDER_REPLICATED, &tp), 0.0);
        assert_eq!(page.value(P_UNDER_MIN_ISR, &tp), 0.0);
        assert_eq!(
            page.value(P_AT_MIN_ISR, &tp),
            1.0,
            "ISR 1 = min.insync.replicas 1"
        );
        assert_eq!(page.value(P_ISR, &tp), 1.0);
        assert_eq!(page.value(P_REPLICAS, &tp), 1.0);
        assert_eq!(page.value(P_LSO_LAG, &tp), 0.0);
    }
    assert_eq!(page.sum(LOG_END, &t), RECORDS as f64, "{}", show(LOG_END));

    // Bytes: at least every value in and out; in, exactly what the logs hold (uncompressed
    // batches are stored as produced, and nothing was deleted).
    let bytes_in = page.value(BYTES_IN, &t);
    let floor = (RECORDS * VALUE_SIZE) as f64;
    assert!(bytes_in >= floor, "bytes in {bytes_in} < {floor}");
    assert_eq!(
        bytes_in,
        page.sum(LOG_SIZE, &t),
        "bytes in against the logs' bytes: {}",
        show(LOG_SIZE)
    );
    let bytes_out = page.value(BYTES_OUT, &t);
    assert!(
        bytes_out >= floor,
        "bytes out {bytes_out} < {floor} after consuming everything"
    );
    // One node: nothing replicated.
    assert_eq!(page.value(REPLICATION_BYTES_IN, &t), 0.0);
    assert_eq!(page.value(REPLICATION_BYTES_OUT, &t), 0.0);
    assert_eq!(page.value(REPLICATION_BYTES_OUT, &[]), 0.0);
    // Requests per partition, none refused.
    assert!(
        page.value(TOTAL_PRODUCE, &t) >= 1.0,
        "{}",
        show(TOTAL_PRODUCE)
    );
    assert_eq!(
        page.value(FAILED_PRODUCE, &t),
        0.0,
        "{}",
        show(FAILED_PRODUCE)
    );
    assert!(page.value(TOTAL_FETCH, &t) >= 1.0, "{}", show(TOTAL_FETCH));
    assert_eq!(page.value(FAILED_FETCH, &t), 0.0, "{}", show(FAILED_FETCH));
    // The all-topics meter of each kind is the sum of the topics' (both counted together).
    for name in BROKER_TOPIC_METERS {
        let per_topic: f64 = page
            .samples
            .iter()
            .filter(|s| s.name == name && s.labels.contains_key("topic"))
            .map(|s| s.value)
            .sum();
        assert_eq!(page.value(name, &[]), per_topic, "{name}:\n{}", show(name));
    }

    // RequestMetrics: the client's requests by Kafka's names, each with a version label, and
    // the time summary counting the same requests.
    for request in [
        "Produce",
        "FetchConsumer",
        "Metadata",
        "ApiVersions",
        "FindCoordinator",
        "JoinGroup",
        "SyncGroup",
        "OffsetCommit",
    ] {
        let n = page.sum(REQUESTS, &[("request", request)]);
        assert!(
            n >= 1.0,
            "no {request} request counted:\n{}",
            show(REQUESTS)
        );
        let counted = page.value(&format!("{TOTAL_TIME}_count"), &[("request", request)]);
        assert_eq!(
            counted, n,
            "{request}: time summary count against requests_total"
        );
    }
    assert_eq!(
        page.sum(REQUESTS, &[("request", "FetchFollower")]),
        0.0,
        "one node has no followers:\n{}",
        show(REQUESTS)
    );
    for s in page.samples.iter().filter(|s| s.name == REQUESTS) {
        let version = s.labels.get("version").map(String::as_str).unwrap_or("");
        assert!(
            version.parse::<u8>().is_ok_and(|v| v < 32),
            "version label {version:?} in {s:?}"
        );
    }
    let produce = [("request", "Produce")];
    let mut last = 0.0;
    for q in QUANTILES {
        let v = page.value(TOTAL_TIME, &[("request", "Produce"), ("quantile", q)]);
        assert!(
            v >= last,
            "Produce time quantiles decrease at {q}:\n{}",
            show(TOTAL_TIME)
        );
        last = v;
    }
    assert!(page.value(&format!("{TOTAL_TIME}_sum"), &produce) >= 0.0);

    // The replica manager: every partition here is led here, counted once.
    let logs = page.partitions(LOG_END);
    let offsets_partitions = logs
        .iter()
        .filter(|(t, _)| t == "__consumer_offsets")
        .count();
    let partitions = page.value(PARTITION_COUNT, &[]);
    assert_eq!(
        partitions,
        logs.len() as f64,
        "partition count against the logs"
    );
    assert!(
        partitions >= (3 + offsets_partitions) as f64 && offsets_partitions >= 1,
        "partition count {partitions}: the topic's 3 and __consumer_offsets' {offsets_partitions}"
    );
    assert_eq!(page.value(LEADER_COUNT, &[]), partitions);
    assert_eq!(
        page.partitions(P_ISR).len() as f64,
        partitions,
        "leader gauges per partition"
    );
    assert_eq!(page.value(UNDER_REPLICATED, &[]), 0.0);
    assert_eq!(page.value(UNDER_MIN_ISR_COUNT, &[]), 0.0);
    assert_eq!(page.value(OFFLINE_REPLICAS, &[]), 0.0);
    assert_eq!(page.value(BROKER_STATE, &[]), 3.0, "running");

    // The controller: this node, which sees every topic and partition and itself.
    let topics: BTreeSet<&String> = logs.iter().map(|(t, _)| t).collect();
    assert_eq!(page.value(ACTIVE_CONTROLLER, &[]), 1.0);
    // Registered at 0 by the active controller, as Kafka's meter is.
    assert_eq!(
        page.value(
            "kafka_controller_controllerstats_uncleanleaderelections_total",
            &[]
        ),
        0.0
    );
    assert_eq!(
        page.value(GLOBAL_TOPICS, &[]),
        topics.len() as f64,
        "topics {topics:?}"
    );
    assert_eq!(page.value(GLOBAL_PARTITIONS, &[]), partitions);
    assert_eq!(page.value(OFFLINE_PARTITIONS, &[]), 0.0);
    assert_eq!(page.value(IMBALANCE, &[]), 0.0);
    assert_eq!(page.value(ACTIVE_BROKERS, &[]), 1.0);
    assert_eq!(page.value(FENCED_BROKERS, &[]), 0.0);

    // Connections and the process.
    assert!(
        page.sum(CONNECTIONS_CREATED, &[]) >= 3.0,
        "{}",
        show(CONNECTIONS_CREATED)
    );
    // Open connections: none once the clients have exited; three held open count three.
    let connections = |what: &str, want: f64| {
        poll(
            what,
            Duration::from_secs(10),
            || broker.logs(),
            || {
                let p = scrape_all(&[&url]).remove(0)?;
                ensure(p.sum(CONNECTIONS, &[]) == want, || p.show(CONNECTIONS))?;
                Ok(p.sum(CONNECTIONS_CREATED, &[]))
            },
        )
    };
    let created = connections("no connection open once the clients have exited", 0.0);
    let held: Vec<RawConn> = (0..3)
        .map(|_| {
            let mut c = RawConn::connect(broker.addr());
            c.api_versions();
            c
        })
        .collect();
    let now_created = connections("three connections held open", 3.0);
    assert_eq!(now_created, created + 3.0, "connections created");
    drop(held);
    connections("the held connections closed", 0.0);
    let fds = page.value("process_open_fds", &[]);
    assert!(
        fds > 0.0 && fds < page.value("process_max_fds", &[]),
        "open fds {fds}"
    );
    assert!(page.value("process_resident_memory_bytes", &[]) > 1e6);
    assert!(page.value("process_cpu_seconds_total", &[]) > 0.0);
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs_f64();
    let start = page.value("process_start_time_seconds", &[]);
    let age = now - start;
    assert!(
        (-5.0..started.elapsed().as_secs_f64() + 5.0).contains(&age),
        "process started {age:.1} s ago by its page; the test began {:.1} s ago",
        started.elapsed().as_secs_f64()
    );

    // Deleted, the topic leaves the page: its counters as its gauges (Kafka removes its meters).
    let deleted = std::process::Command::new(gregor_e2e::broker::gregor_bin())
        .args(["topics", "delete", "-b", &bootstrap, &topic])
        .output()
        .expect("run gregor topics delete");
    assert!(deleted.status.success(), "{deleted:?}");
    let after = poll(
        "the deleted topic off the page",
        Duration::from_secs(10),
        || broker.logs(),
        || {
            let p = scrape(&url);
            ensure(p.get(MESSAGES_IN, &t).is_none(), || p.show(MESSAGES_IN))?;
            Ok(p)
        },
    );
    assert!(
        after
            .samples
            .iter()
            .all(|s| s.labels.get("topic") != Some(&topic)),
        "a sample of the deleted topic is left: {:?}",
        after
            .samples
            .iter()
            .filter(|s| s.labels.get("topic") == Some(&topic))
            .map(|s| &s.name)
            .collect::<Vec<_>>()
    );
    assert!(
        after.value(MESSAGES_IN, &[]) >= RECORDS as f64,
        "the all-topics total stays"
    );
    eprintln!(
        "one node: {RECORDS} records, bytes in {bytes_in}, bytes out {bytes_out}, {partitions} \
         partitions; {:.1} s",
        started.elapsed().as_secs_f64()
    );
}

// ---------------------------------------------------------------------------------------------
// The HTTP listener's edges
// ---------------------------------------------------------------------------------------------

/// Silent connections opened at once (the listener serves 64).
const SILENT: usize = 100;
/// The listener's header read timeout, and the margin allowed on top of it.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
const MARGIN: Duration = Duration::from_secs(5);
/// How soon a connection that sent garbage is closed: at once, give or take a loaded machine.
const GARBAGE_CLOSED_WITHIN: Duration = Duration::from_secs(5);

/// What a garbage connection saw: how long the broker took to close it, and the first line of
/// what it answered.
fn send_garbage(addr: SocketAddr, bytes: &[u8]) -> (Duration, String) {
    let mut s = TcpStream::connect(addr).expect("connect to the HTTP listener");
    s.set_read_timeout(Some(HEADER_READ_TIMEOUT + MARGIN))
        .expect("set a read timeout");
    let at = Instant::now();
    // The broker may close before it has read everything: a write error is an answer too.
    let _ = s.write_all(bytes);
    let mut answer = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return (Duration::MAX, "still open".to_string())
            }
            // Reset: closed with unread bytes.
            Err(_) => break,
        }
    }
    let first = String::from_utf8_lossy(&answer)
        .lines()
        .next()
        .unwrap_or("")
        .to_string();
    (at.elapsed(), first)
}

/// The answers to `/`, an unknown path and POST; garbage and silent connections neither stop
/// the broker nor hold the listener.
#[test]
fn the_http_listener_answers_and_survives_silent_and_garbage_connections() {
    let started = Instant::now();
    let mut broker = Broker::start_with(&["http.listener=127.0.0.1:0"]);
    let url = metrics_url(&broker.logs());
    let addr = http_addr(&url);
    let base = format!("http://{addr}");

    let (status, body, err) = http_request("GET", &format!("{base}/"));
    assert_eq!(status, Some(200), "GET /: {err:?}");
    assert!(!body.is_empty(), "GET / answered an empty page");
    for path in ["/nope", "/metrics/x", "/metricsx"] {
        let (status, body, err) = http_request("GET", &format!("{base}{path}"));
        assert_eq!(status, Some(404), "GET {path}: {body} {err:?}");
    }
    for method in ["POST", "PUT", "DELETE"] {
        let (status, body, err) = http_request(method, &url);
        assert_eq!(status, Some(405), "{method} /metrics: {body} {err:?}");
    }

    // Garbage, each on its own connection, all at once; the write side stays open, so the
    // broker must close each connection on its own.
    let mut rng = Rng::new(0x006d_6574_7269_6373);
    let random: Vec<u8> = (0..4096).map(|_| rng.next_u64() as u8).collect();
    // ApiVersions v0: size, key 18, version 0, correlation id 1, no client id.
    let kafka = [0, 0, 0, 10, 0, 18, 0, 0, 0, 0, 0, 1, 0xff, 0xff].to_vec();
    let mut tls = vec![
        0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03,
    ];
    tls.extend_from_slice(&random[..508]);
    let mut huge_header = b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Junk: ".to_vec();
    huge_header.extend(std::iter::repeat_n(b'a', 1 << 20));
    huge_header.extend_from_slice(b"\r\n\r\n");
    let many_headers: Vec<u8> = std::iter::once(b"GET /metrics HTTP/1.1\r\n".to_vec())
        .chain((0..2000).map(|i| format!("X-{i}: {i}\r\n").into_bytes()))
        .chain(std::iter::once(b"\r\n".to_vec()))
        .flatten()
        .collect();
    let garbage: Vec<(&str, Vec<u8>)> = vec![
        ("random bytes", random.clone()),
        ("a Kafka ApiVersions frame", kafka),
        ("a TLS ClientHello", tls),
        (
            "the HTTP/2 preface",
            b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec(),
        ),
        ("a 1 MiB header", huge_header),
        ("2000 headers", many_headers),
        (
            "a bad request line",
            b"GET\0/metrics HTTP/9.9\r\n\r\n".to_vec(),
        ),
        ("NUL bytes", vec![0; 1024]),
        (
            "a negative Content-Length",
            b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n".to_vec(),
        ),
    ];
    let seen: Vec<(&str, Duration, String)> = thread::scope(|s| {
        let handles: Vec<_> = garbage
            .iter()
            .map(|(what, bytes)| s.spawn(move || (*what, send_garbage(addr, bytes))))
            .collect();
        handles
            .into_iter()
            .map(|h| {
                let (what, (took, first)) = h.join().expect("garbage thread");
                (what, took, first)
            })
            .collect()
    });
    for (what, took, first) in &seen {
        eprintln!("garbage: {what}: closed after {took:?}, answered {first:?}");
        assert!(
            *took <= GARBAGE_CLOSED_WITHIN,
            "{what}: closed after {took:?} ({first}): the broker held a connection that sent \
             garbage"
        );
    }
    assert!(
        broker.is_running(),
        "the broker died of garbage:\n{}",
        broker.logs()
    );
    let page = scrape(&url);
    assert_eq!(page.value(BROKER_STATE, &[]), 3.0);

    // 100 silent connections: more than the listener serves at once.
    let topic = unique_topic("http-silent");
    CONFLUENT.create_topic(&broker, &topic, 1);
    let opened = Instant::now();
    let silent: Vec<TcpStream> = (0..SILENT)
        .map(|i| TcpStream::connect(addr).unwrap_or_else(|e| panic!("silent connection {i}: {e}")))
        .collect();
    // A scrape through a new connection is answered or closed, at once either way.
    let (first, took) = scrape_with_timeout(&[&url], 5.0).remove(0);
    eprintln!(
        "silent: a scrape with {SILENT} silent connections open: {} after {took:.3} s",
        match &first {
            Ok(_) => "answered".to_string(),
            Err(e) => format!("refused ({e})"),
        }
    );
    assert!(took < 3.0, "the scrape waited {took:.1} s: {first:?}");
    // The Kafka listener goes on.
    let delivered = CONFLUENT.produce(&broker, &topic, 10, 100, "none");
    assert_eq!(delivered.len(), 10);
    // The silent connections are dropped after the header read timeout; scrapes are answered
    // again while the test still holds its ends.
    let page = poll(
        "a scrape answered while the silent connections are held",
        HEADER_READ_TIMEOUT + MARGIN,
        || broker.logs(),
        || scrape_all(&[&url]).remove(0),
    );
    eprintln!(
        "silent: scrapes answered again {:.1} s after the silent connections opened",
        opened.elapsed().as_secs_f64()
    );
    assert_eq!(page.value(MESSAGES_IN, &[("topic", topic.as_str())]), 10.0);
    // Closed at about the same time as the ones whose permits the answered scrape took.
    let deadline = (opened + HEADER_READ_TIMEOUT + MARGIN).max(Instant::now() + MARGIN);
    let mut still_open = 0;
    for mut s in silent {
        let left = deadline.saturating_duration_since(Instant::now());
        s.set_read_timeout(Some(left.max(Duration::from_millis(10))))
            .expect("set a read timeout");
        let mut buf = [0u8; 1024];
        match s.read(&mut buf) {
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                still_open += 1
            }
            // EOF, a 408 answer then EOF, or a reset: the broker let go.
            _ => {}
        }
        let _ = s.shutdown(Shutdown::Both);
    }
    assert_eq!(
        still_open,
        0,
        "{still_open} of {SILENT} silent connections still open {:?} after they opened",
        opened.elapsed()
    );
    assert!(broker.is_running(), "{}", broker.logs());
    eprintln!("http edges: {:.1} s", started.elapsed().as_secs_f64());
}

// ---------------------------------------------------------------------------------------------
// Three nodes
// ---------------------------------------------------------------------------------------------

/// Records produced to the replicated topic before the kill.
const RF3_RECORDS: usize = 500;

/// A follower killed and restarted, as the leader's and the active controller's pages see it.
#[test]
fn three_nodes_report_a_killed_follower_and_its_return() {
    let started = Instant::now();
    // The session timeout well above the lag limit: the leader shrinks the ISR (and counts
    // it) before the controller fences the killed node.
    let mut cluster = Cluster::prepare(
        &[Role::Combined; 3],
        &[
            "replica.lag.time.max.ms=1500",
            "broker.session.timeout.ms=8000",
        ],
    );
    let urls = http_listeners(&mut cluster);
    let ids = cluster.ids();
    cluster.start_nodes(&ids);
    for &id in &ids {
        assert_eq!(
            metrics_url(&cluster.node(id).logs()),
            urls[&id],
            "node {id} logs where it serves /metrics"
        );
    }
    wait_for_brokers(&cluster, 3);
    let bootstrap = cluster.bootstrap();
    let topic = unique_topic("metrics-rf3");
    create_topic(&bootstrap, &topic, 1, 3, &["min.insync.replicas=2"]);
    let leader = poll(
        "the topic's full ISR",
        Duration::from_secs(30),
        || cluster.logs(),
        || {
            let (_, parts) = describe(&bootstrap, &topic);
            let p = parts.get(&0).ok_or("no partition 0")?;
            ensure(p.leader >= 0 && p.isr.len() == 3, || format!("{p:?}"))?;
            Ok(p.leader)
        },
    );
    let doc = run_python_json(
        "confluent_client.py",
        &[
            &bootstrap,
            "produce",
            &topic,
            "--count",
            &RF3_RECORDS.to_string(),
            "--size",
            "100",
        ],
        SCRIPT_TIMEOUT,
    );
    assert_eq!(check::records(&doc, "delivered").len(), RF3_RECORDS);

    let url_of = |id: i32| urls[&id].as_str();
    let t = [("topic", topic.as_str())];
    let tp = [("topic", topic.as_str()), ("partition", "0")];

    // Followers fetch in incremental fetch sessions (KIP-227): the leader keeps one for each
    // of the two nodes that follow it.
    const SESSIONS: &str = "kafka_server_fetchsessioncache_numincrementalfetchsessions";
    poll(
        "the followers' fetch sessions on the leader",
        Duration::from_secs(20),
        || cluster.logs(),
        || {
            let page = scrape_all(&[url_of(leader)])
                .into_iter()
                .next()
                .ok_or("no page")??;
            ensure(page.get(SESSIONS, &[]).is_some_and(|n| n >= 2.0), || {
                format!("leader {leader}: {}", page.show(SESSIONS))
            })
        },
    );

    // Consumer lag: each group is reported by its coordinator alone, also where the partition
    // is led by another node (the coordinator asks that leader for the end offset). Eight
    // groups, so that some coordinator is not the leader.
    let groups: Vec<(String, i64)> = (0..8i64)
        .map(|i| (format!("{topic}-lag-{i}"), 10 + 37 * i))
        .collect();
    for (g, offset) in &groups {
        let offsets = format!("0:{offset}");
        run_python_json(
            "group_client.py",
            &[
                &bootstrap,
                "standalone-commit",
                &topic,
                g,
                "--offsets",
                &offsets,
            ],
            SCRIPT_TIMEOUT,
        );
    }
    let reporters = poll(
        "each group's lag on its coordinator alone",
        Duration::from_secs(20),
        || cluster.logs(),
        || {
            let all: Vec<&str> = ids.iter().map(|&id| urls[&id].as_str()).collect();
            let pages: Vec<Page> = scrape_all(&all).into_iter().collect::<Result<_, _>>()?;
            let mut reporters = Vec::new();
            for (g, offset) in &groups {
                let labels = [
                    ("consumergroup", g.as_str()),
                    ("topic", topic.as_str()),
                    ("partition", "0"),
                ];
                let found: Vec<(i32, Option<f64>)> = ids
                    .iter()
                    .zip(&pages)
                    .filter(|(_, p)| p.get(GROUP_OFFSET, &labels).is_some())
                    .map(|(&id, p)| (id, p.get(GROUP_LAG, &labels)))
                    .collect();
                let want = (RF3_RECORDS as i64 - offset) as f64;
                ensure(found.len() == 1 && found[0].1 == Some(want), || {
                    format!(
                        "group {g} (committed {offset}): reported by {found:?}, want lag {want}"
                    )
                })?;
                reporters.push(found[0].0);
            }
            Ok(reporters)
        },
    );
    assert!(
        reporters.iter().any(|&id| id != leader),
        "every group's coordinator leads the partition ({reporters:?}, leader {leader}): the \
         remote end offset was not exercised"
    );

    // Exactly one node is the active controller, and Metadata names the same one.
    let controller = poll(
        "one active controller",
        Duration::from_secs(20),
        || cluster.logs(),
        || {
            let all: Vec<&str> = ids.iter().map(|&id| url_of(id)).collect();
            let mut active = Vec::new();
            for (&id, page) in ids.iter().zip(scrape_all(&all)) {
                // Every node is a controller: each reports the gauge, 1 on the active one.
                match page?.get(ACTIVE_CONTROLLER, &[]) {
                    Some(1.0) => active.push(id),
                    Some(0.0) => {}
                    other => return Err(format!("node {id}: {ACTIVE_CONTROLLER} {other:?}")),
                }
            }
            ensure(active.len() == 1, || {
                format!("active controllers {active:?}")
            })?;
            Ok(active[0])
        },
    );
    let named = client(&bootstrap, &["describe", &topic])["controller"]
        .as_i64()
        .unwrap_or(-1);
    assert_eq!(named, i64::from(controller), "Metadata's controller id");
    // The quorum as each node sees it (Kafka's raft-metrics): one leader, the active
    // controller, in one epoch; the leader's client side of the quorum channel has sent
    // requests; the runtime's idle fraction is a fraction.
    poll(
        "every node's raft-metrics",
        Duration::from_secs(20),
        || cluster.logs(),
        || {
            let all: Vec<&str> = ids.iter().map(|&id| url_of(id)).collect();
            let pages: Vec<Page> = scrape_all(&all).into_iter().collect::<Result<_, _>>()?;
            let mut epochs = Vec::new();
            for (&id, p) in ids.iter().zip(&pages) {
                ensure(
                    p.get("kafka_server_raftmetrics_current_leader", &[])
                        == Some(f64::from(controller)),
                    || {
                        format!(
                            "node {id}: {}",
                            p.show("kafka_server_raftmetrics_current_leader")
                        )
                    },
                )?;
                let state = if id == controller {
                    "leader"
                } else {
                    "follower"
                };
                ensure(
                    p.get(
                        "kafka_server_raftmetrics_current_state",
                        &[("current_state", state)],
                    ) == Some(1.0),
                    || {
                        format!(
                            "node {id}: {}",
                            p.show("kafka_server_raftmetrics_current_state")
                        )
                    },
                )?;
                epochs.push(p.get("kafka_server_raftmetrics_current_epoch", &[]));
                let idle = p
                    .get(
                        "kafka_server_kafkarequesthandlerpool_requesthandleravgidle_percent",
                        &[],
                    )
                    .unwrap_or(-1.0);
                ensure((0.0..=1.0).contains(&idle), || {
                    format!("node {id}: request handler idle {idle}")
                })?;
                for rate in [
                    "kafka_server_raftmetrics_append_records_rate",
                    "kafka_server_raftmetrics_fetch_records_rate",
                ] {
                    ensure(p.get(rate, &[]).is_some_and(|r| r >= 0.0), || {
                        format!("node {id}: {rate} {:?}", p.get(rate, &[]))
                    })?;
                }
                ensure(
                    p.get("kafka_server_raftmetrics_commit_latency_avg", &[])
                        .is_some(),
                    || format!("node {id}: no commit latency"),
                )?;
            }
            ensure(epochs.windows(2).all(|w| w[0] == w[1]), || {
                format!("epochs {epochs:?}")
            })?;
            let leader_page = &pages[ids.iter().position(|&i| i == controller).unwrap_or(0)];
            ensure(
                leader_page
                    .get("kafka_server_raftchannelmetrics_request_total", &[])
                    .unwrap_or(0.0)
                    > 0.0,
                || leader_page.show("kafka_server_raftchannelmetrics_request_total"),
            )?;
            Ok(())
        },
    );
    // A follower that is not the active controller (when the leader is, either follower).
    let follower = ids
        .iter()
        .copied()
        .find(|&id| id != leader && id != controller)
        .expect("three nodes: one is neither the leader nor the active controller");
    let others: Vec<i32> = ids.iter().copied().filter(|&id| id != follower).collect();
    eprintln!("rf3: leader {leader}, active controller {controller}, follower killed {follower}");

    // Replication is counted on both ends; records in only where they were produced.
    poll(
        "replication counted on the leader and both followers",
        Duration::from_secs(30),
        || cluster.logs(),
        || {
            let all: Vec<&str> = ids.iter().map(|&id| url_of(id)).collect();
            let pages: BTreeMap<i32, Page> = ids
                .iter()
                .copied()
                .zip(scrape_all(&all))
                .map(|(id, p)| p.map(|p| (id, p)))
                .collect::<Result<_, _>>()?;
            let lp = &pages[&leader];
            let bytes_in = lp.get(BYTES_IN, &t).unwrap_or(0.0);
            ensure(lp.get(MESSAGES_IN, &t) == Some(RF3_RECORDS as f64), || {
                format!("leader: {}", lp.show(MESSAGES_IN))
            })?;
            ensure(bytes_in >= (RF3_RECORDS * 100) as f64, || {
                format!("leader bytes in {bytes_in}")
            })?;
            let out = lp.get(REPLICATION_BYTES_OUT, &t).unwrap_or(0.0);
            ensure(out >= 2.0 * bytes_in, || {
                format!("leader replication bytes out {out}, bytes in {bytes_in}")
            })?;
            ensure(lp.get(P_ISR, &tp) == Some(3.0), || lp.show(P_ISR))?;
            ensure(lp.get(P_REPLICAS, &tp) == Some(3.0), || lp.show(P_REPLICAS))?;
            ensure(lp.get(P_UNDER_REPLICATED, &tp) == Some(0.0), || {
                lp.show(P_UNDER_REPLICATED)
            })?;
            ensure(lp.get(UNDER_REPLICATED, &[]) == Some(0.0), || {
                lp.show(UNDER_REPLICATED)
            })?;
            // Every node leads some partitions (of __consumer_offsets at least) that the
            // others fetch as followers.
            for (&id, p) in &pages {
                let follower_fetches = p.sum(REQUESTS, &[("request", "FetchFollower")]);
                ensure(follower_fetches >= 1.0, || {
                    format!("node {id}: FetchFollower requests {}", p.show(REQUESTS))
                })?;
            }
            // The three controllers' images agree.
            let counts: BTreeSet<(u64, u64)> = pages
                .values()
                .map(|p| {
                    let n = |name| p.get(name, &[]).unwrap_or(-1.0) as u64;
                    (n(GLOBAL_TOPICS), n(GLOBAL_PARTITIONS))
                })
                .collect();
            ensure(counts.len() == 1, || {
                format!("(topics, partitions) per controller: {counts:?}")
            })?;
            for (&id, p) in pages.iter().filter(|(&id, _)| id != leader) {
                let r_in = p.get(REPLICATION_BYTES_IN, &t).unwrap_or(0.0);
                ensure(r_in >= bytes_in, || {
                    format!("node {id}: replication bytes in {r_in} < leader's bytes in {bytes_in}")
                })?;
                ensure(p.get(MESSAGES_IN, &t) == Some(0.0), || {
                    format!("node {id} (a follower): {}", p.show(MESSAGES_IN))
                })?;
                ensure(p.get(LOG_END, &tp) == Some(RF3_RECORDS as f64), || {
                    format!("node {id}: {}", p.show(LOG_END))
                })?;
                // The partition gauges are the leader's: 0 on followers, as in Kafka.
                ensure(p.get(P_ISR, &tp) == Some(0.0), || {
                    format!("node {id} (a follower) reports {}", p.show(P_ISR))
                })?;
            }
            Ok(())
        },
    );

    // kill -9 the follower. A follower at the log end stays in sync however long it is silent
    // (Kafka's rule), so one more record (acks=1: the ISR still names the dead node) starts
    // its lag.
    cluster.kill9(follower);
    let killed_at = Instant::now();
    let live = bootstrap_of(&cluster, &others);
    let one = client(&live, &["produce-one", &topic, "--acks", "1"]);
    assert_eq!(one["error"], Value::Null, "acks=1 after the kill: {one}");
    let lp = poll(
        "the leader reports the shrunk ISR",
        Duration::from_secs(20),
        || cluster.logs(),
        || {
            let p = scrape_all(&[url_of(leader)]).remove(0)?;
            ensure(p.get(UNDER_REPLICATED, &[]).unwrap_or(0.0) >= 1.0, || {
                p.show(UNDER_REPLICATED)
            })?;
            ensure(p.get(P_ISR, &tp) == Some(2.0), || p.show(P_ISR))?;
            ensure(p.get(P_UNDER_REPLICATED, &tp) == Some(1.0), || {
                p.show(P_UNDER_REPLICATED)
            })?;
            ensure(p.get(ISR_SHRINKS, &[]).unwrap_or(0.0) >= 1.0, || {
                format!("isr shrinks: {}", p.show(ISR_SHRINKS))
            })?;
            Ok(p)
        },
    );
    eprintln!(
        "rf3: the leader reports the ISR of 2 {:.1} s after the kill",
        killed_at.elapsed().as_secs_f64()
    );
    // ISR 2 = min.insync.replicas 2: at, not under.
    assert!(
        lp.value(AT_MIN_ISR_COUNT, &[]) >= 1.0,
        "{}",
        lp.show(AT_MIN_ISR_COUNT)
    );
    assert_eq!(
        lp.value(P_AT_MIN_ISR, &tp),
        1.0,
        "{}",
        lp.show(P_AT_MIN_ISR)
    );
    assert_eq!(
        lp.value(P_UNDER_MIN_ISR, &tp),
        0.0,
        "{}",
        lp.show(P_UNDER_MIN_ISR)
    );
    assert_eq!(lp.value(P_REPLICAS, &tp), 3.0);
    assert_eq!(lp.value(LOG_END, &tp), (RF3_RECORDS + 1) as f64);
    poll(
        "the active controller reports the killed node fenced",
        Duration::from_secs(25),
        || cluster.logs(),
        || {
            let p = scrape_all(&[url_of(controller)]).remove(0)?;
            let (fenced, active) = (p.get(FENCED_BROKERS, &[]), p.get(ACTIVE_BROKERS, &[]));
            ensure(fenced == Some(1.0) && active == Some(2.0), || {
                format!("fenced {fenced:?}, active {active:?}")
            })?;
            ensure(p.get(ACTIVE_CONTROLLER, &[]) == Some(1.0), || {
                p.show(ACTIVE_CONTROLLER)
            })?;
            ensure(p.get(OFFLINE_PARTITIONS, &[]) == Some(0.0), || {
                p.show(OFFLINE_PARTITIONS)
            })
        },
    );
    eprintln!(
        "rf3: the controller reports node {follower} fenced {:.1} s after the kill",
        killed_at.elapsed().as_secs_f64()
    );

    // The node comes back: it catches up, the leader takes it back into the ISR.
    cluster.restart(follower);
    let restarted_at = Instant::now();
    poll(
        "the restarted node back in sync on every page",
        Duration::from_secs(30),
        || cluster.logs(),
        || {
            let pages = scrape_all(&[url_of(leader), url_of(controller), url_of(follower)]);
            let mut pages = pages.into_iter();
            let mut next = || pages.next().expect("three pages");
            let (lp, cp, fp) = (next()?, next()?, next()?);
            ensure(lp.get(UNDER_REPLICATED, &[]) == Some(0.0), || {
                format!("leader: {}", lp.show(UNDER_REPLICATED))
            })?;
            ensure(lp.get(P_ISR, &tp) == Some(3.0), || lp.show(P_ISR))?;
            ensure(lp.get(ISR_EXPANDS, &[]).unwrap_or(0.0) >= 1.0, || {
                format!("isr expands: {}", lp.show(ISR_EXPANDS))
            })?;
            let (fenced, active) = (cp.get(FENCED_BROKERS, &[]), cp.get(ACTIVE_BROKERS, &[]));
            ensure(fenced == Some(0.0) && active == Some(3.0), || {
                format!("controller: fenced {fenced:?}, active {active:?}")
            })?;
            ensure(fp.get(BROKER_STATE, &[]) == Some(3.0), || {
                fp.show(BROKER_STATE)
            })?;
            ensure(
                fp.get(LOG_END, &tp) == Some((RF3_RECORDS + 1) as f64),
                || format!("restarted node: {}", fp.show(LOG_END)),
            )?;
            ensure(
                fp.get(REPLICATION_BYTES_IN, &t).unwrap_or(0.0) > 0.0,
                || format!("restarted node: {}", fp.show(REPLICATION_BYTES_IN)),
            )?;
            Ok(())
        },
    );
    eprintln!(
        "rf3: back in sync {:.1} s after the restart; whole test {:.1} s",
        restarted_at.elapsed().as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
}

/// A controller-only node and two brokers: the controller reports the quorum and the cluster,
/// and no broker state; each broker reports its replicas and the quorum as an observer, and
/// no controller gauges; the controller's console says it has no broker to ask.
#[test]
fn a_controller_only_node_reports_the_quorum_and_brokers_their_replicas() {
    let mut cluster = Cluster::prepare(
        &[Role::Controller, Role::Broker, Role::Broker],
        // No cluster.id: the brokers derive the one-voter quorum's id as its voter does.
        &["offsets.topic.replication.factor=2"],
    );
    let urls = http_listeners(&mut cluster);
    let ids = cluster.ids();
    cluster.start_nodes(&ids);
    wait_for_brokers(&cluster, 2);
    let all: Vec<&str> = ids.iter().map(|id| urls[id].as_str()).collect();
    poll(
        "the controller's and the brokers' pages",
        Duration::from_secs(30),
        || cluster.logs(),
        || {
            let pages: Vec<Page> = scrape_all(&all).into_iter().collect::<Result<_, _>>()?;
            let controller = &pages[0];
            for (name, want) in [
                (ACTIVE_CONTROLLER, 1.0),
                ("kafka_controller_kafkacontroller_activebrokercount", 2.0),
                ("kafka_controller_kafkacontroller_fencedbrokercount", 0.0),
                ("kafka_server_raftmetrics_current_leader", 1.0),
            ] {
                ensure(controller.get(name, &[]) == Some(want), || {
                    format!("controller: {}", controller.show(name))
                })?;
            }
            ensure(
                controller.get(
                    "kafka_server_raftmetrics_current_state",
                    &[("current_state", "leader")],
                ) == Some(1.0),
                || controller.show("kafka_server_raftmetrics_current_state"),
            )?;
            for name in [BROKER_STATE, "kafka_server_replicamanager_partitioncount"] {
                ensure(controller.get(name, &[]).is_none(), || {
                    format!("a controller-only node reports {name}")
                })?;
            }
            for (&id, p) in ids[1..].iter().zip(&pages[1..]) {
                ensure(p.get(BROKER_STATE, &[]) == Some(3.0), || {
                    format!("broker {id}: {}", p.show(BROKER_STATE))
                })?;
                ensure(
                    p.get(
                        "kafka_server_raftmetrics_current_state",
                        &[("current_state", "observer")],
                    ) == Some(1.0),
                    || {
                        format!(
                            "broker {id}: {}",
                            p.show("kafka_server_raftmetrics_current_state")
                        )
                    },
                )?;
                ensure(
                    p.get("kafka_server_raftmetrics_current_leader", &[]) == Some(1.0),
                    || {
                        format!(
                            "broker {id}: {}",
                            p.show("kafka_server_raftmetrics_current_leader")
                        )
                    },
                )?;
                ensure(p.get(ACTIVE_CONTROLLER, &[]).is_none(), || {
                    format!("broker {id} (no controller) reports {ACTIVE_CONTROLLER}")
                })?;
            }
            Ok(())
        },
    );
    let overview = urls[&1].replace("/metrics", "/api/overview");
    let (status, body, error) = http_request("GET", &overview);
    assert_eq!(status, Some(503), "{body} {error:?}");
    assert!(body.contains("controller-only"), "{body}");
}
