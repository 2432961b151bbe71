//! SASL/PLAIN and SCRAM on `SASL_PLAINTEXT://` and `SASL_SSL://` listeners (Kafka's keys:
//! `sasl.enabled.mechanisms`, `listener.name.<listener>.plain.sasl.jaas.config` with
//! PlainLoginModule's `user_<name>="<password>"` entries) against the real binary, with real
//! clients. Each test starts its own broker with both SASL listeners beside the PLAINTEXT one,
//! and its own PKI (`gregor_e2e::pki`) for SASL_SSL.
//!
//! ```text
//!   confluent-kafka, kafka-clients ──PLAIN─────────▶ SASL_PLAINTEXT://127.0.0.1:Q ──┐
//!   confluent-kafka, kafka-clients ──TLS + PLAIN───▶ SASL_SSL://127.0.0.1:R ────────┼─▶ gregor
//!   raw sockets ───────────────────────────────────▶ PLAINTEXT://127.0.0.1:P ───────┘
//!   raw sockets: requests before SASL, bad mechanisms, bad credentials ─▶ Q
//! ```
//!
//! - confluent-kafka (librdkafka) logs in with `sasl.mechanism=PLAIN` on each SASL listener,
//!   produces keyed records and reads them back in a consumer group that commits; the Metadata
//!   it gets lists that listener's endpoint, so it never leaves SASL (or TLS);
//! - Kafka's Java client logs in with PlainLoginModule over SASL_SSL (PEM truststore), produces
//!   and consumes in a group; with a wrong password it gets a `SaslAuthenticationException`
//!   saying the username or password is invalid;
//! - librdkafka with a wrong password or an unknown user delivers nothing and is told of an
//!   authentication failure; the broker logs "failed authentication" and keeps serving others;
//! - SCRAM-SHA-256 and -512 with credentials made by Kafka's `kafka-configs.sh`: librdkafka and
//!   the Java client log in and read back what they wrote, a wrong or deleted credential is
//!   refused;
//! - on the wire: before authenticating, anything but ApiVersions, SaslHandshake and
//!   SaslAuthenticate closes the connection unanswered; an unsupported mechanism gets
//!   UNSUPPORTED_SASL_MECHANISM with the enabled list, SaslAuthenticate before SaslHandshake
//!   ILLEGAL_SASL_STATE, bad PLAIN credentials SASL_AUTHENTICATION_FAILED, each then a closed
//!   connection; the proper exchange is followed by ordinary requests; the PLAINTEXT listener
//!   answers SaslHandshake with ILLEGAL_SASL_STATE and goes on serving.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::Duration;

use gregor_e2e::broker::{gregor_cli_roundtrip, gregor_with_config, wait_accepting};
use gregor_e2e::check;
use gregor_e2e::kafka_tools::Toolbox;
use gregor_e2e::pki::Pki;
use gregor_e2e::raw::{self, Closed, RawConn};
use gregor_e2e::{run_python_json_or, unique_topic, Broker};
use kafka_protocol::messages::{
    ApiKey, MetadataRequest, MetadataResponse, SaslAuthenticateRequest, SaslAuthenticateResponse,
    SaslHandshakeRequest, SaslHandshakeResponse,
};
use kafka_protocol::protocol::StrBytes;
use serde_json::Value;

/// How long one Python client run may take.
const CLIENT_TIMEOUT: Duration = Duration::from_secs(90);
/// How long the Java client (compiled from source at each run) may take.
const JAVA_TIMEOUT: Duration = Duration::from_secs(180);
/// How long the broker has to close a connection it will not serve.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(10);

/// The users of both SASL listeners, as Kafka's PlainLoginModule takes them.
const JAAS: &str = "org.apache.kafka.common.security.plain.PlainLoginModule required \
                    user_alice=\"alice-secret\" user_admin=\"admin-secret\";";
/// A user of [`JAAS`]...
const USER: &str = "alice";
/// ...and their password.
const PASSWORD: &str = "alice-secret";
/// The message of Kafka's PlainSaslServer for a bad user or password.
const BAD_CREDENTIALS: &str = "Authentication failed: Invalid username or password";

/// Kafka error codes of the SASL exchange (values from Kafka's `Errors`).
const UNSUPPORTED_SASL_MECHANISM: i16 = 33;
const ILLEGAL_SASL_STATE: i16 = 34;
const SASL_AUTHENTICATION_FAILED: i16 = 58;

/// A broker with a PLAINTEXT listener (the harness's), a SASL_PLAINTEXT one and a SASL_SSL one.
struct SaslBroker {
    /// The running broker; its own address is the PLAINTEXT listener.
    broker: Broker,
    /// The SASL_PLAINTEXT listener.
    sasl_plaintext: SocketAddr,
    /// The SASL_SSL listener, serving the PKI's `server.pem`.
    sasl_ssl: SocketAddr,
    /// The CA clients trust on SASL_SSL.
    ca: PathBuf,
    /// Owns the certificates' directory, removed when the test ends.
    _pki: Pki,
}

impl SaslBroker {
    /// Starts the broker, and waits until both SASL listeners accept connections.
    ///
    /// The PLAINTEXT entry comes first: it is the primary listener, whose address the harness's
    /// `--listen` replaces (port 0 here is never bound). A consumer group's first rebalance
    /// starts at once, and auto-created topics have three partitions, so one member reads
    /// several.
    fn start() -> SaslBroker {
        SaslBroker::start_with_mechanisms("PLAIN")
    }

    /// [`SaslBroker::start`] with `sasl.enabled.mechanisms` set to `mechanisms`.
    fn start_with_mechanisms(mechanisms: &str) -> SaslBroker {
        let pki = Pki::generate();
        let sasl_plaintext = gregor_e2e::ports::reserve();
        let sasl_ssl = gregor_e2e::ports::reserve();
        let mut sets = vec![
            format!(
                "listeners=PLAINTEXT://127.0.0.1:0,SASL_PLAINTEXT://{sasl_plaintext},\
                 SASL_SSL://{sasl_ssl}"
            ),
            format!("sasl.enabled.mechanisms={mechanisms}"),
            format!("listener.name.sasl_plaintext.plain.sasl.jaas.config={JAAS}"),
            format!("listener.name.sasl_ssl.plain.sasl.jaas.config={JAAS}"),
            "group.initial.rebalance.delay.ms=0".to_string(),
            "num.partitions=3".to_string(),
        ];
        sets.extend(pki.keystore_config());
        let sets: Vec<&str> = sets.iter().map(String::as_str).collect();
        let broker = Broker::start_with(&sets);
        for addr in [sasl_plaintext, sasl_ssl] {
            assert_ne!(
                broker.addr(),
                addr,
                "the harness took a SASL listener for the PLAINTEXT one; log:\n{}",
                broker.logs()
            );
            wait_accepting(addr, CLOSE_TIMEOUT, || broker.logs());
        }
        SaslBroker {
            broker,
            sasl_plaintext,
            sasl_ssl,
            ca: pki.path("ca.pem"),
            _pki: pki,
        }
    }

    /// The two SASL listeners: name, address, and the CA a client trusts (SASL_SSL only).
    fn listeners(&self) -> [(&'static str, SocketAddr, Option<&Path>); 2] {
        [
            ("SASL_PLAINTEXT", self.sasl_plaintext, None),
            ("SASL_SSL", self.sasl_ssl, Some(self.ca.as_path())),
        ]
    }

    fn logs(&self) -> String {
        self.broker.logs()
    }
}

/// `sasl_client.py` options: log in as `user` with `password`, over TLS trusting `ca` when
/// given.
fn login(user: &str, password: &str, ca: Option<&Path>) -> Vec<String> {
    login_with("PLAIN", user, password, ca)
}

/// [`login`] with a SASL mechanism other than PLAIN.
fn login_with(mechanism: &str, user: &str, password: &str, ca: Option<&Path>) -> Vec<String> {
    let mut options = vec![
        "--mechanism".to_string(),
        mechanism.to_string(),
        "--user".to_string(),
        user.to_string(),
        "--password".to_string(),
        password.to_string(),
    ];
    if let Some(ca) = ca {
        options.push("--ca".to_string());
        options.push(ca.display().to_string());
    }
    options
}

/// Runs `sasl_client.py BOOTSTRAP OPTIONS... ARGS...` and returns its JSON; fails the test
/// with the script's stderr and the broker's log when it fails.
fn sasl_client(
    broker: &SaslBroker,
    bootstrap: SocketAddr,
    options: &[String],
    args: &[&str],
) -> Value {
    let bootstrap = bootstrap.to_string();
    let mut all: Vec<&str> = vec![bootstrap.as_str()];
    all.extend(options.iter().map(String::as_str));
    all.extend_from_slice(args);
    run_python_json_or("sasl_client.py", &all, CLIENT_TIMEOUT, || {
        format!("--- broker log ---\n{}", broker.logs())
    })
}

/// Produces `count` keyed records to a new topic through `at` as alice, reads them back there
/// in a consumer group that commits, and checks that every acknowledged record is read, in
/// order, intact, that the group committed the end of each partition, and that both clients
/// were told of `at` only.
fn roundtrip(broker: &SaslBroker, at: SocketAddr, ca: Option<&Path>, what: &str, count: usize) {
    let options = login(USER, PASSWORD, ca);
    let topic = unique_topic(what);
    let n = count.to_string();
    let produced = sasl_client(broker, at, &options, &["produce", &topic, "--count", &n]);
    assert_brokers(broker, &produced, at);
    let group = format!("{topic}-group");
    let consumed = sasl_client(
        broker,
        at,
        &options,
        &["consume", &topic, &group, "--count", &n],
    );
    assert_brokers(broker, &consumed, at);
    check::assert_same_records(
        count,
        &check::records(&produced, "delivered"),
        &check::records(&consumed, "records"),
    );
    let committed: u64 = consumed["committed"]
        .as_object()
        .unwrap_or_else(|| panic!("no committed offsets in {consumed}"))
        .values()
        .map(|o| o.as_u64().unwrap_or_default())
        .sum();
    assert_eq!(
        committed,
        count as u64,
        "{what}: the group's committed offsets must add up to the records read: {}; log:\n{}",
        consumed["committed"],
        broker.logs()
    );
}

/// Asserts that the client's Metadata (`doc["brokers"]`, `[[id, host, port], ...]`) lists the
/// one broker at `endpoint`.
fn assert_brokers(broker: &SaslBroker, doc: &Value, endpoint: SocketAddr) {
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

#[test]
fn confluent_kafka_authenticates_with_plain_over_sasl_plaintext_and_sasl_ssl() {
    let broker = SaslBroker::start();
    for (name, at, ca) in broker.listeners() {
        roundtrip(&broker, at, ca, &format!("sasl-confluent-{name}"), 300);
    }
}

#[test]
fn java_client_authenticates_with_plain() {
    let toolbox = Toolbox::installed();
    let broker = SaslBroker::start();
    let topic = unique_topic("sasl-java");
    let line = toolbox.run_java_source(
        "SaslClient.java",
        &[
            "SASL_SSL",
            &broker.sasl_ssl.to_string(),
            &topic,
            "300",
            USER,
            PASSWORD,
            "not-alice-secret",
            &broker.ca.display().to_string(),
        ],
        JAVA_TIMEOUT,
    );
    let doc: Value = serde_json::from_str(&line)
        .unwrap_or_else(|e| panic!("{line}: {e}; log:\n{}", broker.logs()));
    assert_brokers(&broker, &doc, broker.sasl_ssl);
    check::assert_same_records(
        300,
        &check::records(&doc, "delivered"),
        &check::records(&doc, "records"),
    );
    assert_eq!(
        doc["committed"].as_u64(),
        Some(300),
        "the group's committed offsets must add up to the records read; log:\n{}",
        broker.logs()
    );

    let refused = &doc["refused"];
    eprintln!("kafka-clients with a wrong password: {refused}");
    assert_eq!(
        refused["exception"].as_str(),
        Some("SaslAuthenticationException"),
        "a wrong password must fail the client's authentication: {refused}; log:\n{}",
        broker.logs()
    );
    let message = refused["message"].as_str().unwrap_or_default();
    assert!(
        message
            .to_ascii_lowercase()
            .contains("invalid username or password"),
        "the client must be told the username or password is invalid: {message:?}; log:\n{}",
        broker.logs()
    );
}

#[test]
fn a_wrong_password_or_unknown_user_is_refused_and_the_broker_lives() {
    let mut broker = SaslBroker::start();
    let topic = unique_topic("sasl-refused");

    // A wrong password and an unknown user, on both listeners. Run side by side: each waits
    // out its client's short timeouts.
    let refused: Vec<(String, Value)> = thread::scope(|s| {
        let mut runs = Vec::new();
        for (name, at, ca) in broker.listeners() {
            for (who, user, password) in [
                ("a wrong password", USER, "alice-secret-not"),
                ("an unknown user", "mallory", PASSWORD),
            ] {
                let options = login(user, password, ca);
                let (broker, topic) = (&broker, &topic);
                let run = s.spawn(move || sasl_client(broker, at, &options, &["refused", topic]));
                runs.push((format!("{who} on {name}"), run));
            }
        }
        runs.into_iter()
            .map(|(what, run)| (what, run.join().expect("client thread")))
            .collect()
    });
    for (what, doc) in &refused {
        eprintln!("librdkafka with {what}: {doc}");
        assert!(
            doc["delivery"].is_string(),
            "librdkafka with {what} delivered a record: {doc}; log:\n{}",
            broker.logs()
        );
        // librdkafka reports the failure with the broker's message.
        let told = format!("{} {}", doc["metadata"], doc["errors"]);
        assert!(
            told.to_ascii_lowercase().contains("authentication") && told.contains(BAD_CREDENTIALS),
            "librdkafka with {what} was not told of an authentication failure: {doc}; log:\n{}",
            broker.logs()
        );
    }
    assert!(
        broker.logs().contains("failed authentication"),
        "the broker must log the failed authentications; log:\n{}",
        broker.logs()
    );
    assert!(
        broker.broker.is_running(),
        "the broker died; log:\n{}",
        broker.logs()
    );

    // The refused clients wrote nothing, and good clients are served on both listeners: the
    // topic they tried holds exactly what alice writes now, from offset 0.
    let produced = sasl_client(
        &broker,
        broker.sasl_plaintext,
        &login(USER, PASSWORD, None),
        &["produce", &topic, "--count", "50"],
    );
    assert_brokers(&broker, &produced, broker.sasl_plaintext);
    let group = format!("{topic}-group");
    let consumed = sasl_client(
        &broker,
        broker.sasl_ssl,
        &login(USER, PASSWORD, Some(&broker.ca)),
        &["consume", &topic, &group, "--count", "50"],
    );
    assert_brokers(&broker, &consumed, broker.sasl_ssl);
    check::assert_same_records(
        50,
        &check::records(&produced, "delivered"),
        &check::records(&consumed, "records"),
    );
}

/// A connection's first steps on a SASL listener, by hand.
trait SaslSteps {
    /// SaslHandshake v1 (the one version served) for `mechanism`.
    fn handshake(&mut self, mechanism: &str) -> SaslHandshakeResponse;
    /// SaslAuthenticate at `version` carrying `auth_bytes`.
    fn authenticate(&mut self, version: i16, auth_bytes: &[u8]) -> SaslAuthenticateResponse;
    /// Metadata v12 for all topics.
    fn metadata(&mut self) -> MetadataResponse;
}

impl SaslSteps for RawConn {
    fn handshake(&mut self, mechanism: &str) -> SaslHandshakeResponse {
        let req = SaslHandshakeRequest::default()
            .with_mechanism(StrBytes::from_string(mechanism.to_string()));
        self.request(1, &req)
            .unwrap_or_else(|e| panic!("SaslHandshake v1 for {mechanism}: {e}"))
    }

    fn authenticate(&mut self, version: i16, auth_bytes: &[u8]) -> SaslAuthenticateResponse {
        let req = SaslAuthenticateRequest::default()
            .with_auth_bytes(bytes::Bytes::copy_from_slice(auth_bytes));
        self.request(version, &req)
            .unwrap_or_else(|e| panic!("SaslAuthenticate v{version}: {e}"))
    }

    fn metadata(&mut self) -> MetadataResponse {
        self.request(12, &metadata_request())
            .unwrap_or_else(|e| panic!("Metadata v12: {e}"))
    }
}

/// A Metadata request for all topics (creating none).
fn metadata_request() -> MetadataRequest {
    MetadataRequest::default()
        .with_topics(None)
        .with_allow_auto_topic_creation(false)
}

/// The `(host, port)` of each broker a Metadata response lists.
fn endpoints(resp: &MetadataResponse) -> Vec<(String, u16)> {
    resp.brokers
        .iter()
        .map(|b| (b.host.to_string(), b.port as u16))
        .collect()
}

/// The one `(host, port)` a client of `addr` must be told of.
fn endpoint(addr: SocketAddr) -> Vec<(String, u16)> {
    vec![(addr.ip().to_string(), addr.port())]
}

/// Asserts that the broker closes `conn` within [`CLOSE_TIMEOUT`] without sending more.
fn assert_closed(broker: &SaslBroker, conn: &mut RawConn, what: &str) {
    let closed = conn.wait_closed(CLOSE_TIMEOUT);
    assert_eq!(
        closed,
        Closed::Yes,
        "{what}: the broker must close the connection without a further answer; log:\n{}",
        broker.logs()
    );
}

/// A request frame (header and body, no size prefix) the broker must not answer before SASL.
fn frame_before_sasl(conn: &mut RawConn, api: ApiKey) -> Vec<u8> {
    match api {
        ApiKey::Metadata => conn.encode_request(12, &metadata_request()).1,
        ApiKey::Produce => {
            let batch = raw::simple_batch(&[("k", "v")]);
            conn.encode_request(9, &raw::produce_request("sasl-raw", 0, batch))
                .1
        }
        other => panic!("no request made for {other:?}"),
    }
}

#[test]
fn requests_before_authentication_close_the_connection() {
    let mut broker = SaslBroker::start();
    let at = broker.sasl_plaintext;

    // Metadata as the first request, and Produce after ApiVersions (which is answered, and
    // advertises the SASL APIs): closed, unanswered.
    for (what, api, ask_versions_first) in [
        ("Metadata as the first request", ApiKey::Metadata, false),
        ("Produce after ApiVersions", ApiKey::Produce, true),
    ] {
        let mut conn = RawConn::connect(at);
        if ask_versions_first {
            let versions = conn.api_versions();
            for (key, version) in [
                (ApiKey::SaslHandshake, 1),
                (ApiKey::SaslAuthenticate, 0),
                (ApiKey::SaslAuthenticate, 2),
            ] {
                assert!(
                    versions.api_keys.iter().any(|v| v.api_key == key as i16
                        && (v.min_version..=v.max_version).contains(&version)),
                    "ApiVersions before SASL must advertise {key:?} v{version}: {:?}",
                    versions.api_keys
                );
            }
        }
        let frame = frame_before_sasl(&mut conn, api);
        // The broker may close before all of it is written: that is the refusal too.
        let _ = conn.send_frame(&frame);
        assert_closed(&broker, &mut conn, what);
    }
    // The harness reads the broker's stderr on its own thread: the line may land a moment
    // after the close.
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while !broker.logs().contains("before SASL authentication") {
        assert!(
            std::time::Instant::now() < deadline,
            "the broker must log why it closed those connections; log:\n{}",
            broker.logs()
        );
        thread::sleep(Duration::from_millis(50));
    }

    // A mechanism not enabled: UNSUPPORTED_SASL_MECHANISM with the enabled ones, then closed.
    let mut conn = RawConn::connect(at);
    let resp = conn.handshake("SCRAM-SHA-256");
    assert_eq!(resp.error_code, UNSUPPORTED_SASL_MECHANISM, "{resp:?}");
    let mechanisms: Vec<String> = resp.mechanisms.iter().map(|m| m.to_string()).collect();
    assert_eq!(mechanisms, ["PLAIN"], "the enabled mechanisms");
    assert_closed(&broker, &mut conn, "after an unsupported mechanism");

    // SaslAuthenticate with no SaslHandshake before it: ILLEGAL_SASL_STATE, then closed.
    let mut conn = RawConn::connect(at);
    let resp = conn.authenticate(2, format!("\0{USER}\0{PASSWORD}").as_bytes());
    assert_eq!(resp.error_code, ILLEGAL_SASL_STATE, "{resp:?}");
    assert_closed(
        &broker,
        &mut conn,
        "after SaslAuthenticate before SaslHandshake",
    );

    // Bad PLAIN messages after a proper handshake: SASL_AUTHENTICATION_FAILED, then closed.
    let bad: [(&str, &[u8]); 5] = [
        ("a wrong password", b"\0alice\0admin-secret"),
        ("an unknown user", b"\0mallory\0alice-secret"),
        ("another identity asked for", b"admin\0alice\0alice-secret"),
        ("no NUL separators", b"alice alice-secret"),
        ("invalid UTF-8", b"\0alice\0\xff\xfe"),
    ];
    for (i, (what, auth_bytes)) in bad.into_iter().enumerate() {
        let mut conn = RawConn::connect(at);
        let resp = conn.handshake("PLAIN");
        assert_eq!(resp.error_code, 0, "SaslHandshake PLAIN: {resp:?}");
        let version = (i % 3) as i16;
        let asked = std::time::Instant::now();
        let resp = conn.authenticate(version, auth_bytes);
        // KIP-306: the failure is answered `connection.failed.authentication.delay.ms`
        // (100 ms by default) late, to slow a client guessing passwords.
        let waited = asked.elapsed();
        assert!(
            waited >= Duration::from_millis(100),
            "{what}: answered after {waited:?}"
        );
        assert_eq!(
            resp.error_code, SASL_AUTHENTICATION_FAILED,
            "{what} (SaslAuthenticate v{version}): {resp:?}"
        );
        assert_eq!(
            resp.error_message.as_deref(),
            Some(BAD_CREDENTIALS),
            "{what}: the message"
        );
        assert_closed(&broker, &mut conn, &format!("after {what}"));
    }
    assert!(
        broker.logs().contains("failed authentication"),
        "the broker must log the failed authentications; log:\n{}",
        broker.logs()
    );

    // The proper exchange, at each SaslAuthenticate version: then ordinary requests are served,
    // and Metadata lists this listener.
    for version in 0..=2 {
        let mut conn = RawConn::connect(at);
        let resp = conn.handshake("PLAIN");
        assert_eq!(resp.error_code, 0, "SaslHandshake PLAIN: {resp:?}");
        let mechanisms: Vec<String> = resp.mechanisms.iter().map(|m| m.to_string()).collect();
        assert_eq!(mechanisms, ["PLAIN"], "the enabled mechanisms");
        let resp = conn.authenticate(version, format!("\0{USER}\0{PASSWORD}").as_bytes());
        assert_eq!(
            resp.error_code,
            0,
            "SaslAuthenticate v{version} as {USER}: {resp:?}; log:\n{}",
            broker.logs()
        );
        let md = conn.metadata();
        assert_eq!(endpoints(&md), endpoint(at), "Metadata after SASL on {at}");
        let topic = unique_topic("sasl-raw");
        assert_eq!(conn.create_topic(&topic, 1), 0, "CreateTopics after SASL");
        let (error, offset) = conn.produce(&topic, 0, raw::simple_batch(&[("k", "v")]));
        assert_eq!((error, offset), (0, 0), "Produce after SASL");
    }

    // The PLAINTEXT listener has no SASL exchange: both SASL APIs are ILLEGAL_SASL_STATE, and
    // the connection goes on.
    let mut conn = RawConn::connect(broker.broker.addr());
    let resp = conn.handshake("PLAIN");
    assert_eq!(
        resp.error_code, ILLEGAL_SASL_STATE,
        "SaslHandshake on PLAINTEXT: {resp:?}"
    );
    let resp = conn.authenticate(2, format!("\0{USER}\0{PASSWORD}").as_bytes());
    assert_eq!(
        resp.error_code, ILLEGAL_SASL_STATE,
        "SaslAuthenticate on PLAINTEXT: {resp:?}"
    );
    let md = conn.metadata();
    assert_eq!(
        endpoints(&md),
        endpoint(broker.broker.addr()),
        "Metadata on PLAINTEXT"
    );

    assert!(
        broker.broker.is_running(),
        "the broker died; log:\n{}",
        broker.logs()
    );
}

/// SCRAM (KIP-84) with the credentials Kafka's own `kafka-configs.sh` puts in the metadata log
/// (KIP-554): librdkafka logs in with SCRAM-SHA-256 over SASL_SSL and SCRAM-SHA-512 over
/// SASL_PLAINTEXT and reads back what it wrote; the Java client with ScramLoginModule too; a
/// wrong password is refused; a credential deleted with kafka-configs no longer logs in; and
/// PLAIN still serves its JAAS users beside SCRAM.
#[test]
fn scram_users_made_with_kafka_configs_log_in_with_librdkafka_and_java() {
    let toolbox = Toolbox::installed();
    let broker = SaslBroker::start_with_mechanisms("PLAIN,SCRAM-SHA-256,SCRAM-SHA-512");
    let bootstrap = broker.broker.bootstrap();
    let configs = |args: &[&str]| {
        let mut all = vec!["--bootstrap-server", bootstrap.as_str()];
        all.extend_from_slice(args);
        let run = toolbox.run("kafka-configs.sh", &all, None, JAVA_TIMEOUT);
        run.ok().map(str::to_string).unwrap_or_else(|e| {
            panic!(
                "kafka-configs {}: {e}\n{}\nlog:\n{}",
                args.join(" "),
                run.transcript(),
                broker.logs()
            )
        })
    };
    // One credential per request: Kafka refuses a user twice in one (DUPLICATE_RESOURCE).
    for config in [
        "SCRAM-SHA-256=[iterations=4096,password=carol-secret]",
        "SCRAM-SHA-512=[password=carol-secret]",
    ] {
        configs(&[
            "--alter",
            "--add-config",
            config,
            "--entity-type",
            "users",
            "--entity-name",
            "carol",
        ]);
    }

    // librdkafka, both hashes, both SASL listeners: every record back, in order.
    for (mechanism, (name, at, ca)) in [
        ("SCRAM-SHA-256", broker.listeners()[1]),
        ("SCRAM-SHA-512", broker.listeners()[0]),
    ] {
        let options = login_with(mechanism, "carol", "carol-secret", ca);
        let topic = unique_topic("scram");
        let produced = sasl_client(
            &broker,
            at,
            &options,
            &["produce", &topic, "--count", "200"],
        );
        let group = format!("{topic}-group");
        let consumed = sasl_client(
            &broker,
            at,
            &options,
            &["consume", &topic, &group, "--count", "200"],
        );
        eprintln!("{mechanism} over {name}: 200 records produced and read back");
        check::assert_same_records(
            200,
            &check::records(&produced, "delivered"),
            &check::records(&consumed, "records"),
        );
        let refused = sasl_client(
            &broker,
            at,
            &login_with(mechanism, "carol", "not-carol-secret", ca),
            &["refused", &topic],
        );
        assert!(
            refused.to_string().contains("invalid credentials"),
            "{mechanism}: a wrong password must be refused: {refused}; log:\n{}",
            broker.logs()
        );
    }

    // Kafka's Java client with ScramLoginModule.
    let topic = unique_topic("scram-java");
    let line = toolbox.run_java_source(
        "SaslClient.java",
        &[
            "SASL_SSL",
            &broker.sasl_ssl.to_string(),
            &topic,
            "100",
            "carol",
            "carol-secret",
            "not-carol-secret",
            &broker.ca.display().to_string(),
            "SCRAM-SHA-512",
        ],
        JAVA_TIMEOUT,
    );
    let doc: Value = serde_json::from_str(&line)
        .unwrap_or_else(|e| panic!("{line}: {e}; log:\n{}", broker.logs()));
    check::assert_same_records(
        100,
        &check::records(&doc, "delivered"),
        &check::records(&doc, "records"),
    );
    assert_eq!(
        doc["refused"]["exception"].as_str(),
        Some("SaslAuthenticationException"),
        "{doc}; log:\n{}",
        broker.logs()
    );

    // PLAIN's JAAS users still log in beside SCRAM.
    roundtrip(
        &broker,
        broker.sasl_plaintext,
        None,
        "plain-beside-scram",
        50,
    );

    // A deleted credential no longer logs in; the other mechanism still does.
    configs(&[
        "--alter",
        "--delete-config",
        "SCRAM-SHA-512",
        "--entity-type",
        "users",
        "--entity-name",
        "carol",
    ]);
    let topic = unique_topic("scram-deleted");
    let refused = sasl_client(
        &broker,
        broker.sasl_plaintext,
        &login_with("SCRAM-SHA-512", "carol", "carol-secret", None),
        &["refused", &topic],
    );
    assert!(
        refused.to_string().contains("invalid credentials"),
        "a deleted SCRAM-SHA-512 credential must no longer log in: {refused}; log:\n{}",
        broker.logs()
    );
    sasl_client(
        &broker,
        broker.sasl_plaintext,
        &login_with("SCRAM-SHA-256", "carol", "carol-secret", None),
        &["produce", &topic, "--count", "10"],
    );
}

/// gregor's own CLI on the secured listeners, with Kafka's client properties in
/// `--command-config`: it creates a topic, produces and consumes in a group over SASL_SSL with
/// SCRAM-SHA-512 and over SASL_PLAINTEXT with PLAIN, and a wrong password is an error naming
/// the authentication failure.
#[test]
fn gregor_s_cli_logs_in_with_command_config() {
    let toolbox = Toolbox::installed();
    let broker = SaslBroker::start_with_mechanisms("PLAIN,SCRAM-SHA-512");
    let bootstrap = broker.broker.bootstrap();
    let made = toolbox.run(
        "kafka-configs.sh",
        &[
            "--bootstrap-server",
            &bootstrap,
            "--alter",
            "--add-config",
            "SCRAM-SHA-512=[password=carol-secret]",
            "--entity-type",
            "users",
            "--entity-name",
            "carol",
        ],
        None,
        JAVA_TIMEOUT,
    );
    made.ok()
        .unwrap_or_else(|e| panic!("kafka-configs: {e}; log:\n{}", broker.logs()));
    let dir = tempfile::tempdir().expect("tempdir");
    let write = |name: &str, text: String| {
        let path = dir.path().join(name);
        std::fs::write(&path, text).expect("write properties");
        path
    };
    let scram = write(
        "scram.properties",
        format!(
            "security.protocol=SASL_SSL\nsasl.mechanism=SCRAM-SHA-512\n\
             sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required \
             username=\"carol\" password=\"carol-secret\";\n\
             ssl.truststore.type=PEM\nssl.truststore.location={}\n",
            broker.ca.display()
        ),
    );
    let plain = write(
        "plain.properties",
        format!(
            "security.protocol=SASL_PLAINTEXT\nsasl.mechanism=PLAIN\n\
             sasl.username={USER}\nsasl.password={PASSWORD}\n"
        ),
    );
    let wrong = write(
        "wrong.properties",
        format!(
            "security.protocol=SASL_PLAINTEXT\nsasl.mechanism=PLAIN\n\
             sasl.username={USER}\nsasl.password=not-{PASSWORD}\n"
        ),
    );
    let topic = unique_topic("cli-secured");
    for (at, config, what) in [
        (
            broker.sasl_ssl,
            scram.as_path(),
            "SCRAM-SHA-512 over SASL_SSL",
        ),
        (
            broker.sasl_plaintext,
            plain.as_path(),
            "PLAIN over SASL_PLAINTEXT",
        ),
    ] {
        let t = format!("{topic}-{}", at.port());
        gregor_cli_roundtrip(&at.to_string(), config, &t, true)
            .unwrap_or_else(|e| panic!("{what}: {e}; log:\n{}", broker.logs()));
        eprintln!("gregor CLI, {what}: created, produced and consumed in a group");
    }
    let (ok, out, err) = gregor_with_config(
        &broker.sasl_plaintext.to_string(),
        &wrong,
        &["topics", "list"],
        None,
    );
    assert!(!ok, "a wrong password must fail: {out}");
    assert!(
        err.contains("Invalid username or password"),
        "the error must say why: {err}"
    );
}
