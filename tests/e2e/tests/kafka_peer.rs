//! gregor side by side with a real Apache Kafka broker (the toolbox's jars, KRaft, one node):
//! the same request to both, the answers compared.
//!
//! - `api_versions_match_the_expected_file`: for every API gregor serves, Kafka's version range
//!   and gregor's, against `tests/interop/api-versions.expected` (each difference has a reason
//!   there; `GREGOR_UPDATE_EXPECTED=1` rewrites the file from the live answers, keeping reasons).
//!
//! Needs the toolbox (`scripts/toolbox`); without it the tests fail saying so. The tests of this
//! file share one Kafka peer while they run (Java starts slowly on two cores).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, Weak};

use gregor_e2e::kafka_peer::KafkaPeer;
use gregor_e2e::raw::RawConn;
use gregor_e2e::{repo_root, Broker};
use kafka_protocol::messages::ApiKey;

/// The Kafka peer the tests running now share; started by the first, killed after the last.
fn peer() -> Arc<KafkaPeer> {
    static SHARED: Mutex<Weak<KafkaPeer>> = Mutex::new(Weak::new());
    let mut shared = SHARED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(peer) = shared.upgrade() {
        return peer;
    }
    let peer = Arc::new(KafkaPeer::start());
    *shared = Arc::downgrade(&peer);
    peer
}

// ---------------------------------------------------------------------------------------------
// ApiVersions

/// A version range as the file writes it: `3..=13`, or `-` when the broker does not serve it.
fn range_text(range: Option<(i16, i16)>) -> String {
    match range {
        Some((min, max)) => format!("{min}..={max}"),
        None => "-".to_string(),
    }
}

/// One line of the expected file: `Api | kafka | gregor | reason`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct VersionsRow {
    api: String,
    kafka: String,
    gregor: String,
    reason: String,
}

impl VersionsRow {
    fn differs(&self) -> bool {
        self.kafka != self.gregor
    }
}

const VERSIONS_HEADER: &str = "\
# ApiVersions of gregor and of Apache Kafka (KRaft, one node, default settings), for every API
# gregor serves: `API | Kafka's range | gregor's range | reason for the difference`.
# Checked by the kafka_peer test (tests/e2e/tests/kafka_peer.rs) against both live brokers;
# GREGOR_UPDATE_EXPECTED=1 rewrites the ranges and keeps the reasons. Every row whose ranges
# differ needs a reason.
";

fn parse_versions_file(text: &str) -> Vec<VersionsRow> {
    text.lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            let mut parts = l.splitn(4, '|').map(str::trim);
            let mut next = || parts.next().unwrap_or_default().to_string();
            VersionsRow {
                api: next(),
                kafka: next(),
                gregor: next(),
                reason: next(),
            }
        })
        .collect()
}

fn render_versions_file(rows: &[VersionsRow]) -> String {
    let mut out = VERSIONS_HEADER.to_string();
    for r in rows {
        let line = format!("{} | {} | {} | {}", r.api, r.kafka, r.gregor, r.reason);
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// The ranges a broker advertises, by API key.
fn advertised(conn: &mut RawConn) -> BTreeMap<i16, (i16, i16)> {
    conn.api_versions()
        .api_keys
        .iter()
        .map(|k| (k.api_key, (k.min_version, k.max_version)))
        .collect()
}

fn api_name(key: i16) -> String {
    ApiKey::try_from(key)
        .map(|k| format!("{k:?}"))
        .unwrap_or_else(|_| format!("api {key}"))
}

#[test]
fn api_versions_match_the_expected_file() {
    let kafka = peer();
    let gregor = Broker::start();
    let kafka_ranges = advertised(&mut RawConn::connect(kafka.addr()));
    let gregor_ranges = advertised(&mut RawConn::connect(gregor.addr()));

    let path = repo_root().join("tests/interop/api-versions.expected");
    let expected = parse_versions_file(&std::fs::read_to_string(&path).unwrap_or_default());
    let reasons: BTreeMap<&str, &VersionsRow> =
        expected.iter().map(|r| (r.api.as_str(), r)).collect();

    let live: Vec<VersionsRow> = gregor_ranges
        .iter()
        .map(|(&key, &range)| {
            let api = api_name(key);
            let kafka = range_text(kafka_ranges.get(&key).copied());
            let gregor = range_text(Some(range));
            // A reason stays while the ranges it explains stay.
            let reason = match reasons.get(api.as_str()) {
                Some(old) if old.kafka == kafka && old.gregor == gregor => old.reason.clone(),
                _ => String::new(),
            };
            VersionsRow {
                api,
                kafka,
                gregor,
                reason,
            }
        })
        .collect();
    let rendered = render_versions_file(&live);
    let out_dir = repo_root().join("target/interop");
    let _ = std::fs::create_dir_all(&out_dir);
    let _ = std::fs::write(out_dir.join("api-versions.expected"), &rendered);
    eprintln!("Apache Kafka {} vs gregor:\n{rendered}", kafka.version());
    if std::env::var_os("GREGOR_UPDATE_EXPECTED").is_some() {
        std::fs::write(&path, &rendered).expect("write tests/interop/api-versions.expected");
    }

    let strip = |rows: &[VersionsRow]| -> Vec<(String, String, String)> {
        rows.iter()
            .map(|r| (r.api.clone(), r.kafka.clone(), r.gregor.clone()))
            .collect()
    };
    assert_eq!(
        strip(&expected),
        strip(&live),
        "the live ApiVersions (left: tests/interop/api-versions.expected, right: live) differ; \
         GREGOR_UPDATE_EXPECTED=1 rewrites the file (the live answer is in \
         target/interop/api-versions.expected)"
    );
    let unexplained: Vec<&str> = expected
        .iter()
        .filter(|r| r.differs() && r.reason.is_empty())
        .map(|r| r.api.as_str())
        .collect();
    assert!(
        unexplained.is_empty(),
        "these APIs differ from Kafka without a reason in tests/interop/api-versions.expected: \
         {unexplained:?}"
    );
}
