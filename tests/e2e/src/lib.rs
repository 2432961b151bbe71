//! End-to-end test harness: starts the real `gregor` binary on an ephemeral port and drives it
//! with real third-party Kafka clients.
//!
//! ```text
//!   test (tests/*.rs)
//!     ├── Cluster::start(3, ..)    three nodes, each link between them through a LinkProxy
//!     ├── Broker::start()          gregor server --data-dir <tmp> --listen 127.0.0.1:0
//!     │                             (port read back from its "listening on HOST:PORT" log line)
//!     ├── broker::refused_start    gregor server with a config it must refuse: its message
//!     ├── ack_stream::AckStream    a producer streaming under a cluster test (node kills), its
//!     │                             acknowledged records in an ack file, its JSON on SIGTERM
//!     ├── run_python("x.py", ..)   tests/e2e/python/x.py in <repo>/.venv: confluent-kafka,
//!     │                             kafka-python; JSON on stdout
//!     ├── kcat(..)                 Debian's kcat (librdkafka 2.0)
//!     ├── kafka_peer::KafkaPeer    a real Apache Kafka broker (toolbox jars, KRaft, one node)
//!     ├── kafka_tools::Toolbox     Apache Kafka's own CLI tools (kafka-topics.sh, ...) from the
//!     │                             toolbox scripts/toolbox installs; the compatibility table
//!     ├── connect::ConnectWorker   a Kafka Connect worker (distributed mode, REST on an
//!     │                             ephemeral port); connect::JavaService runs MirrorMaker 2
//!     ├── pki::Pki                 a CA, server and client certificates (rcgen) for TLS tests
//!     ├── raw::RawConn             hand-made requests over a plain TCP socket (bad input)
//!     ├── proxy::RecordingProxy    records the request frames real clients send (protocol fuzz)
//!     └── fault_proxy::LinkProxy   one link between cluster nodes: pass, delay, cut, reset
//! ```
//!
//! Everything here has a timeout: a test fails, it never hangs. `scripts/test` installs kcat and
//! the Python venv; run it once before `cargo nextest run -p gregor-e2e`.

pub mod ack_stream;
pub mod broker;
pub mod check;
pub mod client;
pub mod cluster;
pub mod cluster_client;
pub mod connect;
pub mod fault_proxy;
pub mod faulty_disk;
pub mod java_hold;
pub mod kafka_peer;
pub mod kafka_tools;
pub mod mutate;
pub mod pki;
pub mod ports;
mod process;
pub mod proxy;
pub mod raw;
pub mod share;

pub use broker::Broker;
pub use process::{
    kcat, python, python_script, run_command, run_python, run_python_json, run_python_json_or,
};

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

/// The partitions of `topic` whose log directory is in the broker's log directory `dir`.
pub fn partitions_in(dir: &std::path::Path, topic: &str) -> std::collections::BTreeSet<i32> {
    std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read the log directory {}: {e}", dir.display()))
        .filter_map(|e| {
            let name = e.ok()?.file_name().to_string_lossy().into_owned();
            name.strip_prefix(&format!("{topic}-"))?.parse().ok()
        })
        .collect()
}

/// The repository root (two levels above this crate).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("the e2e crate lives in <repo>/tests/e2e")
}

/// A topic name no other test (or earlier run) uses: `prefix-<pid>-<nanos>-<n>`.
pub fn unique_topic(prefix: &str) -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!(
        "{prefix}-{}-{nanos}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}
