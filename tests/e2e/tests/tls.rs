//! TLS listeners (`SSL://` in `listeners`, Kafka's `ssl.*` keys with PEM files) against the
//! real binary, with real clients. Each test makes its own PKI (`gregor_e2e::pki`): a CA, a
//! server certificate for `127.0.0.1` (IP SAN) and `localhost` signed by it, a client
//! certificate signed by it, and a second, untrusted CA with a client certificate of its own.
//!
//! ```text
//!   confluent-kafka, kafka-clients, Python ssl ──TLS─────▶ SSL://127.0.0.1:Q ──────┐
//!   confluent-kafka, raw sockets ──plaintext─────────────▶ PLAINTEXT://127.0.0.1:P ┴─▶ gregor
//!   raw sockets: plaintext, garbage, half a handshake ───▶ SSL://127.0.0.1:Q
//! ```
//!
//! - confluent-kafka (librdkafka, OpenSSL) and Kafka's Java client produce 500 keyed records to
//!   an auto-created topic and read them back over TLS, checking the broker's name (its IP; the
//!   `localhost` name too, with Python's ssl); the Metadata they get lists the SSL endpoint, so
//!   they never leave TLS;
//! - with `ssl.client.auth=required`, a client with a certificate from the truststore's CA is
//!   served, while librdkafka without a certificate, and OpenSSL (Python's ssl) without one or
//!   with one from another CA, are turned away, and the broker keeps serving;
//! - plaintext Kafka requests, other garbage and half a handshake on the TLS port get no Kafka
//!   answer and a closed connection (at most a TLS alert first), a stalled handshake does not
//!   hold up other clients, and the broker lives on;
//! - the PLAINTEXT listener keeps working beside the SSL one, each listener's Metadata lists its
//!   own endpoint, and both see the same records.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use gregor_e2e::broker::wait_accepting;
use gregor_e2e::check::{self, Rec};
use gregor_e2e::kafka_tools::Toolbox;
use gregor_e2e::pki::Pki;
use gregor_e2e::raw::RawConn;
use gregor_e2e::{run_python_json_or, unique_topic, Broker};
use serde_json::Value;

/// How long one Python client run may take.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(90);
/// How long the Java client (compiled from source at each run) may take.
const JAVA_TIMEOUT: Duration = Duration::from_secs(180);
/// How long the broker has to close a connection it cannot serve.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(10);
/// The first byte of a TLS alert record (content type 21): the one answer a TLS listener may
/// give to bytes that are not a TLS handshake.
const TLS_ALERT: u8 = 0x15;

/// The `--set` entries of a broker with a PLAINTEXT listener and an SSL one on `tls`, serving
/// the PKI's `server.pem`. The PLAINTEXT entry is the primary listener, whose address the
/// harness's `--listen` replaces (port 0 here is never bound); without it the SSL entry would be
/// the primary one and `--listen` would replace that instead.
fn broker_config(pki: &Pki, tls: SocketAddr) -> Vec<String> {
    let mut sets = vec![format!("listeners=PLAINTEXT://127.0.0.1:0,SSL://{tls}")];
    sets.extend(pki.keystore_config());
    sets
}

/// `tls_client.py` options for TLS trusting the PKI's CA, presenting `identity` (`client` or
/// `rogue`) when given.
fn client_options(pki: &Pki, identity: Option<&str>) -> Vec<String> {
    let mut options = vec!["--ca".to_string(), pki.path("ca.pem").display().to_string()];
    if let Some(id) = identity {
        options.push("--cert".to_string());
        options.push(pki.path(&format!("{id}.pem")).display().to_string());
        options.push("--key".to_string());
        options.push(pki.path(&format!("{id}.key")).display().to_string());
    }
    options
}

/// Starts a broker with the PKI's SSL listener and `extra` config; returns it and the SSL
/// listener's address, once that accepts connections.
fn start_tls_broker(pki: &Pki, extra: &[String]) -> (Broker, SocketAddr) {
    let tls = gregor_e2e::ports::reserve();
    let mut sets = broker_config(pki, tls);
    sets.extend_from_slice(extra);
    let sets: Vec<&str> = sets.iter().map(String::as_str).collect();
    let broker = Broker::start_with(&sets);
    assert_ne!(
        broker.addr(),
        tls,
        "the harness took the SSL listener for the PLAINTEXT one; log:\n{}",
        broker.logs()
    );
    wait_accepting(tls, CLOSE_TIMEOUT, || broker.logs());
    (broker, tls)
}

/// Runs `tls_client.py BOOTSTRAP OPTIONS... ARGS...` and returns its JSON; fails the test with
/// the script's stderr and the broker's log when it fails.
fn tls_client(broker: &Broker, bootstrap: &str, options: &[String], args: &[&str]) -> Value {
    let bootstrap = bootstrap.to_string();
    let mut all: Vec<&str> = vec![bootstrap.as_str()];
    all.extend(options.iter().map(String::as_str));
    all.extend_from_slice(args);
    run_python_json_or("tls_client.py", &all, CLIENT_TIMEOUT, || {
        format!("--- broker log ---\n{}", broker.logs())
    })
}

/// Produces `count` keyed records to `topic` through `bootstrap`, then reads them back through
/// it, and checks that every acknowledged record is there, in order, intact, and that both
/// clients were told of `bootstrap` only. Returns what was delivered.
fn roundtrip(
    broker: &Broker,
    bootstrap: SocketAddr,
    options: &[String],
    topic: &str,
    count: usize,
) -> Vec<Rec> {
    let (at, n) = (bootstrap.to_string(), count.to_string());
    let produced = tls_client(broker, &at, options, &["produce", topic, "--count", &n]);
    assert_brokers(broker, &produced, bootstrap);
    let delivered = check::records(&produced, "delivered");
    let consumed = tls_client(broker, &at, options, &["consume", topic]);
    assert_brokers(broker, &consumed, bootstrap);
    check::assert_same_records(count, &delivered, &check::records(&consumed, "records"));
    delivered
}

/// Asserts that the client's Metadata (`doc["brokers"]`, `[[id, host, port], ...]`) lists the
/// one broker at `endpoint`.
fn assert_brokers(broker: &Broker, doc: &Value, endpoint: SocketAddr) {
    let listed: Vec<(String, u64)> = doc["brokers"]
        .as_array()
        .unwrap_or_else(|| panic!("no brokers in {doc}"))
        .iter()
        .map(|b| {
            (
                b[1].as_str().unwrap_or_default().to_string(),
                b[2].as_u64().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        listed,
        vec![(endpoint.ip().to_string(), u64::from(endpoint.port()))],
        "Metadata through {endpoint} must list that endpoint; log:\n{}",
        broker.logs()
    );
}

/// How a connection the broker was not meant to serve ended.
#[derive(Debug)]
enum Ending {
    /// The broker closed it (EOF or reset), after sending these bytes.
    Closed(Vec<u8>),
    /// Still open at the deadline, after sending these bytes.
    Open(Vec<u8>),
}

/// Reads what the broker sends on `stream` until it closes it or `timeout` passes.
fn read_until_closed(stream: &mut TcpStream, timeout: Duration) -> Ending {
    let deadline = Instant::now() + timeout;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    stream
        .set_read_timeout(Some(Duration::from_millis(100)))
        .expect("set read timeout");
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return Ending::Closed(got),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            // Reset, aborted: closed.
            Err(_) => return Ending::Closed(got),
        }
        if Instant::now() >= deadline {
            return Ending::Open(got);
        }
    }
}

/// Sends `bytes` to the SSL listener (then half-closes when `then_close`) and asserts that the
/// broker closes the connection with no Kafka answer: nothing, or a TLS alert record.
fn expect_refused(broker: &Broker, tls: SocketAddr, what: &str, bytes: &[u8], then_close: bool) {
    let mut stream = TcpStream::connect_timeout(&tls, CLOSE_TIMEOUT)
        .unwrap_or_else(|e| panic!("{what}: connect to {tls}: {e}; log:\n{}", broker.logs()));
    // The broker may close before everything is written: that is a refusal too.
    let _ = stream.write_all(bytes);
    if then_close {
        let _ = stream.shutdown(Shutdown::Write);
    }
    let ending = read_until_closed(&mut stream, CLOSE_TIMEOUT);
    eprintln!("{what}: {ending:02x?}");
    match ending {
        Ending::Closed(got) => assert!(
            got.first().is_none_or(|&b| b == TLS_ALERT),
            "{what}: the broker answered {} bytes that are not a TLS alert: {:02x?}; log:\n{}",
            got.len(),
            &got[..got.len().min(64)],
            broker.logs()
        ),
        Ending::Open(got) => panic!(
            "{what}: the connection is still open after {CLOSE_TIMEOUT:?} (the broker sent \
             {:02x?}); log:\n{}",
            &got[..got.len().min(64)],
            broker.logs()
        ),
    }
}

/// An ApiVersions v0 request frame, as a plaintext client opens a connection.
fn plaintext_api_versions() -> Vec<u8> {
    let client_id = b"gregor-e2e";
    let mut body = Vec::new();
    body.extend_from_slice(&18i16.to_be_bytes()); // ApiVersions
    body.extend_from_slice(&0i16.to_be_bytes()); // v0
    body.extend_from_slice(&1i32.to_be_bytes()); // correlation id
    body.extend_from_slice(&(client_id.len() as i16).to_be_bytes());
    body.extend_from_slice(client_id);
    let mut frame = (body.len() as i32).to_be_bytes().to_vec();
    frame.extend_from_slice(&body);
    frame
}

/// The first bytes of a TLS 1.2/1.3 ClientHello whose record announces 512 bytes.
fn half_client_hello() -> Vec<u8> {
    let mut bytes = vec![
        0x16, 0x03, 0x01, 0x02, 0x00, // handshake record, 512 bytes
        0x01, 0x00, 0x01, 0xfc, // ClientHello, 508 bytes
        0x03, 0x03, // legacy version TLS 1.2
    ];
    bytes.extend_from_slice(&[0x5a; 32]); // client random
    bytes
}

#[test]
fn confluent_kafka_produces_and_consumes_over_tls() {
    let pki = Pki::generate();
    let (broker, tls) = start_tls_broker(&pki, &[]);
    let topic = unique_topic("tls-confluent");
    roundtrip(&broker, tls, &client_options(&pki, None), &topic, 500);

    // The certificate's DNS name, checked by Python's ssl.
    let by_name = format!("localhost:{}", tls.port());
    let doc = tls_client(
        &broker,
        &by_name,
        &client_options(&pki, None),
        &["api-versions"],
    );
    assert_eq!(
        doc["answered"].as_bool(),
        Some(true),
        "ApiVersions over TLS to {by_name}: {doc}; log:\n{}",
        broker.logs()
    );
}

#[test]
fn java_client_produces_and_consumes_over_tls() {
    let toolbox = Toolbox::installed();
    let pki = Pki::generate();
    let (broker, tls) = start_tls_broker(&pki, &[]);
    let topic = unique_topic("tls-java");
    let line = toolbox.run_java_source(
        "TlsClient.java",
        &[
            &tls.to_string(),
            &topic,
            "500",
            &pki.path("ca.pem").display().to_string(),
        ],
        JAVA_TIMEOUT,
    );
    let doc: Value = serde_json::from_str(&line)
        .unwrap_or_else(|e| panic!("{line}: {e}; log:\n{}", broker.logs()));
    assert_brokers(&broker, &doc, tls);
    check::assert_same_records(
        500,
        &check::records(&doc, "delivered"),
        &check::records(&doc, "records"),
    );
}

#[test]
fn client_certificates_are_required_when_configured() {
    let pki = Pki::generate();
    let (mut broker, tls) = start_tls_broker(&pki, &pki.client_auth_config("required"));
    let at = tls.to_string();
    let trusted = client_options(&pki, Some("client"));
    let topic = unique_topic("tls-mtls");
    roundtrip(&broker, tls, &trusted, &topic, 200);

    // librdkafka without a certificate, and with one from a CA the broker does not trust (which
    // it does not present: the broker names its CA), are both turned away. Run side by side:
    // each waits out its client's short timeouts.
    let refused: Vec<(&str, Value)> = thread::scope(|s| {
        let runs: Vec<_> = [("no certificate", None), ("untrusted CA", Some("rogue"))]
            .into_iter()
            .map(|(what, identity)| {
                let options = client_options(&pki, identity);
                let (broker, at, topic) = (&broker, &at, &topic);
                let run = s.spawn(move || tls_client(broker, at, &options, &["refused", topic]));
                (what, run)
            })
            .collect();
        runs.into_iter()
            .map(|(what, run)| (what, run.join().expect("client thread")))
            .collect()
    });
    for (what, doc) in &refused {
        eprintln!("librdkafka with {what}: {doc}");
        assert!(
            doc["metadata"].is_string() && doc["delivery"].is_string(),
            "librdkafka with {what} was served: {doc}; log:\n{}",
            broker.logs()
        );
    }

    // OpenSSL through Python's ssl presents whatever certificate it is given: the broker
    // answers the trusted one only.
    for (what, identity, answered) in [
        ("the trusted certificate", Some("client"), true),
        ("the untrusted CA's certificate", Some("rogue"), false),
        ("no certificate", None, false),
    ] {
        let doc = tls_client(
            &broker,
            &at,
            &client_options(&pki, identity),
            &["api-versions"],
        );
        eprintln!("ApiVersions over TLS with {what}: {doc}");
        assert_eq!(
            doc["answered"].as_bool(),
            Some(answered),
            "ApiVersions over TLS with {what}: {doc}; log:\n{}",
            broker.logs()
        );
    }

    assert!(
        broker.is_running(),
        "the broker died; log:\n{}",
        broker.logs()
    );
    let delivered = tls_client(
        &broker,
        &at,
        &trusted,
        &["produce", &topic, "--count", "50"],
    );
    assert_eq!(check::records(&delivered, "delivered").len(), 50);
    let consumed = tls_client(&broker, &at, &trusted, &["consume", &topic]);
    assert_eq!(
        check::records(&consumed, "records").len(),
        250,
        "the first 200 records and the last 50; log:\n{}",
        broker.logs()
    );
}

#[test]
fn a_plaintext_client_on_the_tls_port_gets_no_answer_and_the_broker_lives() {
    let pki = Pki::generate();
    let (mut broker, tls) = start_tls_broker(&pki, &[]);

    expect_refused(
        &broker,
        tls,
        "plaintext ApiVersions",
        &plaintext_api_versions(),
        false,
    );
    expect_refused(
        &broker,
        tls,
        "an HTTP request",
        b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n",
        false,
    );
    let garbage: Vec<u8> = (0..512u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    expect_refused(&broker, tls, "512 garbage bytes", &garbage, false);
    expect_refused(
        &broker,
        tls,
        "half a ClientHello, then EOF",
        &half_client_hello(),
        true,
    );

    // A handshake stalled halfway does not hold up the clients that come after it.
    let mut stalled = TcpStream::connect_timeout(&tls, CLOSE_TIMEOUT).expect("connect");
    stalled
        .write_all(&half_client_hello())
        .expect("write half a ClientHello");
    let topic = unique_topic("tls-after-garbage");
    roundtrip(&broker, tls, &client_options(&pki, None), &topic, 50);
    drop(stalled);

    assert!(
        broker.is_running(),
        "the broker died; log:\n{}",
        broker.logs()
    );
    let mut plain = RawConn::connect(broker.addr());
    plain.api_versions();
    // The three that were not TLS are failed handshakes, logged at INFO; the two clients that
    // went away mid-handshake (EOF) are disconnections, as Kafka takes them, and are not.
    let failed = || broker.logs().matches("TLS handshake failed").count();
    let deadline = Instant::now() + CLOSE_TIMEOUT;
    while failed() < 3 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(failed(), 3, "log:\n{}", broker.logs());
}

#[test]
fn the_plaintext_listener_keeps_working_beside_tls() {
    let pki = Pki::generate();
    let (broker, tls) = start_tls_broker(&pki, &[]);
    let plain = broker.addr();
    let over_tls = client_options(&pki, None);

    // Written in plaintext, read over TLS; then the other way round.
    for (from, from_options, to, to_options) in [
        (plain, &[][..], tls, &over_tls[..]),
        (tls, &over_tls[..], plain, &[][..]),
    ] {
        let topic = unique_topic("across-listeners");
        let produced = tls_client(
            &broker,
            &from.to_string(),
            from_options,
            &["produce", &topic, "--count", "200"],
        );
        assert_brokers(&broker, &produced, from);
        let consumed = tls_client(&broker, &to.to_string(), to_options, &["consume", &topic]);
        assert_brokers(&broker, &consumed, to);
        check::assert_same_records(
            200,
            &check::records(&produced, "delivered"),
            &check::records(&consumed, "records"),
        );
    }
}
