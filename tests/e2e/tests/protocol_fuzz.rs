//! Protocol-level fuzzing of a running broker with mutated frames of real client sessions.
//!
//! ```text
//!   1. record   confluent-kafka + kafka-python ──► RecordingProxy ──► gregor
//!               (create topic, produce with every codec, group join/sync/commit, fetch)
//!   2. bursts   Mutator(seed, recorded frames) ──► fresh connections ──► gregor
//!   3. after each burst: the process is alive, ApiVersions answers on a fresh connection, a
//!      produce + fetch of a known record works, and every acknowledged record is unchanged
//!   4. at the end: a real client (librdkafka) reads every acknowledged record
//! ```
//!
//! `GREGOR_FUZZ_SEED` (default below, printed) seeds the mutator; `GREGOR_FUZZ_BURSTS` sets the
//! number of bursts (small by default, for CI); `GREGOR_FUZZ_BURST_SECONDS` caps the time spent in
//! bursts. The recorded frames are written to a file whose path is printed; pass it back as
//! `GREGOR_FUZZ_CORPUS` to replay exactly the same bytes (a real client session is never
//! byte-for-byte the same twice); a replay skips the client session, so the session's topic and
//! groups do not exist on the replaying broker. On a failure the failing burst's frames are
//! printed in hex.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use gregor_e2e::mutate::Mutator;
use gregor_e2e::proxy::RecordingProxy;
use gregor_e2e::raw::{code, simple_batch, RawConn};
use gregor_e2e::{run_python_json, unique_topic, Broker};

/// Default seed when `GREGOR_FUZZ_SEED` is not set.
const DEFAULT_SEED: u64 = 0x6772_6567_6f72;
/// Default number of bursts when `GREGOR_FUZZ_BURSTS` is not set.
const DEFAULT_BURSTS: u64 = 40;
/// Default cap on the time spent in bursts.
const DEFAULT_SECONDS: u64 = 60;
/// Fresh connections per burst, and mutated frames sent on each (the broker closes a
/// connection at its first protocol violation, so later frames often go unread).
const CONNECTIONS_PER_BURST: usize = 8;
const FRAMES_PER_CONNECTION: usize = 3;
/// How long a burst's connections stay open for the broker to answer before they are dropped.
const BURST_LINGER: Duration = Duration::from_millis(150);
/// APIs the recorded session must contain, or the fuzzing would miss their decoders.
const EXPECTED_APIS: &[(i16, &str)] = &[
    (0, "Produce"),
    (1, "Fetch"),
    (3, "Metadata"),
    (8, "OffsetCommit"),
    (10, "FindCoordinator"),
    (11, "JoinGroup"),
    (14, "SyncGroup"),
    (18, "ApiVersions"),
    (19, "CreateTopics"),
];

/// An unsigned number from the environment, decimal or `0x` hex; `default` when unset.
fn env_or(name: &str, default: u64) -> u64 {
    let Ok(v) = std::env::var(name) else {
        return default;
    };
    let parsed = match v.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16),
        None => v.parse(),
    };
    parsed.unwrap_or_else(|e| panic!("{name}={v}: {e}"))
}

/// Frames as a file: each with its int32 size prefix, back to back.
fn save_corpus(frames: &[Vec<u8>], path: &PathBuf) {
    let mut out = Vec::new();
    for f in frames {
        out.extend_from_slice(&(f.len() as i32).to_be_bytes());
        out.extend_from_slice(f);
    }
    std::fs::write(path, out).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
}

fn load_corpus(path: &str) -> Vec<Vec<u8>> {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("read {path}: {e}"));
    let mut frames = Vec::new();
    let mut rest = &bytes[..];
    while rest.len() >= 4 {
        let n = i32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        assert!(rest.len() >= 4 + n, "{path}: truncated corpus");
        frames.push(rest[4..4 + n].to_vec());
        rest = &rest[4 + n..];
    }
    frames
}

/// The broker, the topic with known records, and what has been acknowledged in it.
struct Target {
    broker: Broker,
    topic: String,
    acknowledged: Vec<(String, String)>,
}

impl Target {
    /// Produces one record through a fresh connection; it must be acknowledged at the next offset.
    fn produce_probe(&mut self, label: &str) {
        let key = format!("probe-{label}");
        let value = format!("value of {label}");
        let mut conn = RawConn::connect(self.broker.addr());
        let got = conn.produce(&self.topic, 0, simple_batch(&[(&key, &value)]));
        assert_eq!(
            got,
            (code::NONE, self.acknowledged.len() as i64),
            "{label}: produce of a known record"
        );
        self.acknowledged.push((key, value));
    }

    /// Alive, ApiVersions answers, a new record is acknowledged, and every acknowledged record
    /// reads back unchanged.
    fn assert_healthy(&mut self, label: &str) {
        assert!(self.broker.is_running(), "{label}: the broker process died");
        let mut conn = RawConn::connect(self.broker.addr());
        assert!(
            !conn.api_versions().api_keys.is_empty(),
            "{label}: ApiVersions lists no APIs"
        );
        self.produce_probe(label);
        let got: Vec<(i64, String, String)> = conn
            .fetch_records(&self.topic, 0, 0)
            .into_iter()
            .map(|r| {
                let s = |b: Option<Vec<u8>>| {
                    String::from_utf8_lossy(&b.unwrap_or_default()).into_owned()
                };
                (r.offset, s(r.key), s(r.value))
            })
            .collect();
        let want: Vec<(i64, String, String)> = self
            .acknowledged
            .iter()
            .enumerate()
            .map(|(i, (k, v))| (i as i64, k.clone(), v.clone()))
            .collect();
        assert_eq!(got, want, "{label}: acknowledged records changed");
    }
}

/// Sends one burst: `CONNECTIONS_PER_BURST` fresh connections with mutated frames each, open
/// together, drained and dropped after a short linger. Returns the frames sent and how many of
/// the connections got at least one response byte.
fn burst(target: &Target, mutator: &mut Mutator) -> (Vec<Vec<u8>>, usize) {
    let mut sent = Vec::new();
    let mut conns = Vec::new();
    for _ in 0..CONNECTIONS_PER_BURST {
        let Ok(mut s) = TcpStream::connect(target.broker.addr()) else {
            continue;
        };
        let _ = s.set_nodelay(true);
        let _ = s.set_write_timeout(Some(Duration::from_secs(2)));
        for _ in 0..FRAMES_PER_CONNECTION {
            let frame = mutator.next_frame();
            // The broker may have closed the connection already: that is an answer too.
            let _ = s.write_all(&frame);
            sent.push(frame);
        }
        conns.push(s);
    }
    std::thread::sleep(BURST_LINGER);
    let mut buf = [0u8; 16 << 10];
    let mut answered = 0;
    for s in &mut conns {
        let _ = s.set_nonblocking(true);
        let mut got = 0;
        loop {
            match s.read(&mut buf) {
                Ok(n) if n > 0 => got += n,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                _ => break,
            }
        }
        let _ = s.shutdown(Shutdown::Both);
        if got > 0 {
            answered += 1;
        }
    }
    (sent, answered)
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn mutated_client_frames_never_take_the_broker_down() {
    let seed = env_or("GREGOR_FUZZ_SEED", DEFAULT_SEED);
    let bursts = env_or("GREGOR_FUZZ_BURSTS", DEFAULT_BURSTS);
    let budget = Duration::from_secs(env_or("GREGOR_FUZZ_BURST_SECONDS", DEFAULT_SECONDS));
    eprintln!("protocol fuzz: GREGOR_FUZZ_SEED={seed:#x} GREGOR_FUZZ_BURSTS={bursts}");

    // 1. Record a real session through the proxy (or replay a saved one).
    let proxy = RecordingProxy::bind();
    let advertised = format!("advertised.listeners=PLAINTEXT://{}", proxy.bootstrap());
    let broker = Broker::start_with(&[&advertised, "group.initial.rebalance.delay.ms=0"]);
    proxy.set_upstream(broker.addr());
    let corpus = match std::env::var("GREGOR_FUZZ_CORPUS") {
        Ok(path) => load_corpus(&path),
        Err(_) => {
            let topic = unique_topic("fuzz-session");
            let doc = run_python_json(
                "fuzz_session.py",
                &[&proxy.bootstrap(), &topic, "fuzz-session-group"],
                Duration::from_secs(120),
            );
            eprintln!("protocol fuzz: client session {doc}");
            proxy.frames()
        }
    };
    // The proxy stays up: the broker advertises its address, so the final real client reaches
    // the broker through it.
    let mut per_api = std::collections::BTreeMap::<i16, usize>::new();
    for f in &corpus {
        if f.len() >= 2 {
            *per_api.entry(i16::from_be_bytes([f[0], f[1]])).or_default() += 1;
        }
    }
    eprintln!(
        "protocol fuzz: {} recorded frames, by API key: {per_api:?}",
        corpus.len()
    );
    for (key, name) in EXPECTED_APIS {
        assert!(
            per_api.contains_key(key),
            "the recorded session has no {name} request: {per_api:?}"
        );
    }
    let corpus_path = std::env::temp_dir().join(format!(
        "gregor-protocol-fuzz-{seed:x}-{}.frames",
        std::process::id()
    ));
    save_corpus(&corpus, &corpus_path);
    eprintln!(
        "protocol fuzz: replay with GREGOR_FUZZ_SEED={seed:#x} GREGOR_FUZZ_CORPUS={}",
        corpus_path.display()
    );

    // The topic the health checks read: created here, named in no recorded frame.
    let mut target = Target {
        broker,
        topic: unique_topic("fuzz-known"),
        acknowledged: Vec::new(),
    };
    let mut conn = RawConn::connect(target.broker.addr());
    assert_eq!(
        conn.create_topic(&target.topic, 1),
        code::NONE,
        "CreateTopics"
    );
    drop(conn);
    target.produce_probe("before");

    // 2–3. Bursts, each followed by the health checks.
    let mut mutator = Mutator::new(seed, corpus);
    let started = Instant::now();
    let mut done = 0;
    let mut frames_sent = 0;
    let mut connections_answered = 0;
    for b in 0..bursts {
        if started.elapsed() > budget {
            eprintln!("protocol fuzz: time budget of {budget:?} spent after {b} bursts");
            break;
        }
        let (sent, answered) = burst(&target, &mut mutator);
        frames_sent += sent.len();
        connections_answered += answered;
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            target.assert_healthy(&format!("burst {b}"));
        }));
        if let Err(panic) = outcome {
            eprintln!("protocol fuzz: FAILED after burst {b} (seed {seed:#x}); its frames, hex:");
            for f in &sent {
                eprintln!("  {}", hex(f));
            }
            std::panic::resume_unwind(panic);
        }
        done += 1;
    }
    eprintln!(
        "protocol fuzz: {done} bursts, {frames_sent} mutated frames on {} connections \
         ({connections_answered} got an answer) in {:.1?}",
        done * CONNECTIONS_PER_BURST as u64,
        started.elapsed()
    );

    // 4. A real client reads every acknowledged record.
    let doc = run_python_json(
        "confluent_client.py",
        &[
            &target.broker.bootstrap(),
            "consume",
            &target.topic,
            "--timeout",
            "30",
        ],
        Duration::from_secs(60),
    );
    let records = doc["records"].as_array().expect("records array");
    let got: Vec<(i64, String, String)> = records
        .iter()
        .map(|r| {
            (
                r[1].as_i64().expect("offset"),
                r[2].as_str().unwrap_or_default().to_string(),
                r[3].as_str().unwrap_or_default().to_string(),
            )
        })
        .collect();
    let want: Vec<(i64, String, String)> = target
        .acknowledged
        .iter()
        .enumerate()
        .map(|(i, (k, v))| (i as i64, k.clone(), v.clone()))
        .collect();
    assert_eq!(got, want, "librdkafka reads the acknowledged records");
    let _ = std::fs::remove_file(&corpus_path);
}
