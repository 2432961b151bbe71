//! The client matrix: each Kafka client against a real `gregor server`, doing what an
//! application does with it.
//!
//! For every client, against one broker and again against a 3-node cluster (topics with RF=3):
//!
//! ```text
//!   create    the client's admin creates a 3-partition topic (gregor's CLI when it has none)
//!   produce   300 records, keys k0..k299, with the client's default producer settings
//!   consume   a consumer joins a group (the classic protocol, or KIP-848's in the rows with
//!             group.protocol=consumer), processes 150 records, commits exactly what it
//!             processed, stops
//!   resume    a new consumer in the group reads exactly the other 150: nothing lost, nothing
//!             read twice
//!   describe  the client's admin: list and describe topics, describe the cluster, list and
//!             describe groups
//! ```
//!
//! plus a Kafka Streams word count (at-least-once) run twice, the second run resuming from the
//! first one's commits and state.
//!
//! Each client (but the KIP-848 variants) does the same steps again over a SASL_SSL listener of
//! one more broker, logging in with SCRAM-SHA-256 as a user `kafka-configs.sh` made (kcat, whose
//! librdkafka's SCRAM is refused, with PLAIN), trusting the test's CA (`gregor_e2e::pki`) from a
//! PEM file:
//!
//! ```text
//!   the client's driver --security.protocol=SASL_SSL --sasl.mechanism=SCRAM-SHA-256 ...
//!        │                                                   ▼
//!        └──────────────────────────────────────▶ SASL_SSL://127.0.0.1:R ──┐
//!   kafka-configs.sh (the SCRAM user), gregor's CLI (set-up) ─▶ PLAINTEXT ─┴─▶ gregor
//! ```
//!
//! Each client has a driver taking the same arguments and printing one JSON line (described in
//! `tests/e2e/python/matrix_client.py`, with the `--OPTION=VALUE` connection settings):
//! `tests/e2e/python/matrix_client.py` (kafka-python, confluent-kafka, aiokafka),
//! `tests/interop/java` (kafka-clients, Streams), `tests/interop/go/cmd/matrix-*` (franz-go,
//! sarama), `tests/interop/node/kafkajs.js`, `tests/interop/node/platformatic.js` and
//! `tests/interop/kcat-matrix.sh`. `scripts/toolbox` builds and installs the non-Python ones.
//!
//! The table is written to `target/interop/client-matrix.md` and checked against
//! `tests/interop/client-matrix.expected`: any row that changes fails the test (a fix too, so
//! the file and the README say what works). `GREGOR_UPDATE_README=1` rewrites the expected file
//! and the README's "Clients" table instead of failing.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::thread;
use std::time::{Duration, Instant};

use gregor_e2e::broker::gregor_bin;
use gregor_e2e::cluster::Cluster;
use gregor_e2e::kafka_tools::{replace_between, run_program, Toolbox};
use gregor_e2e::pki::Pki;
use gregor_e2e::{python, repo_root, Broker};

/// The producer settings the matrix sets instead of the defaults of the clients whose default
/// producer is idempotent (Java, Streams, kafka-python). None since gregor serves InitProducerId
/// (issue 12): every client runs its default producer. A setting put back here shows in the
/// rows' notes.
const PRODUCER_OVERRIDES: &[&str] = &[];

const RECORDS: usize = 300;
const FIRST_RUN: usize = 150;
const PARTITIONS: usize = 3;
/// The longest one driver run may take (each driver gives up on its own after 60 s).
const STEP_TIMEOUT: Duration = Duration::from_secs(100);
/// Client drivers run at the same time (two cores: the JVMs dominate).
const PARALLEL: usize = 3;
/// The SCRAM user of the SASL_SSL rows (made with `kafka-configs.sh`) and their password.
const SASL_USER: &str = "matrix";
const SASL_PASSWORD: &str = "matrix-secret";
/// PLAIN's user on the SASL_SSL listener, for a client that cannot do SCRAM.
const SASL_JAAS: &str = "org.apache.kafka.common.security.plain.PlainLoginModule required \
                         user_matrix=\"matrix-secret\";";

/// How a client's driver is started.
#[derive(Debug, Clone, Copy)]
enum Driver {
    /// `tests/e2e/python/matrix_client.py <client>` in the venv.
    Python(&'static str),
    /// `ClientMatrix` from the toolbox's `java/classes`.
    Java,
    /// A Go program of the toolbox (`tests/interop/go/cmd/<name>`).
    Go(&'static str),
    /// A driver in `tests/interop/node` (kafkajs.js, platformatic.js) with the toolbox's
    /// `node_modules`.
    Node(&'static str),
    /// `tests/interop/kcat-matrix.sh`.
    Kcat,
}

/// One row of the matrix.
#[derive(Debug, Clone, Copy)]
struct Client {
    name: &'static str,
    /// A short name for topics and groups.
    slug: &'static str,
    driver: Driver,
    /// Producer settings instead of the client's defaults.
    producer: &'static [&'static str],
    /// Consumer settings instead of the client's defaults (the Java and @platformatic/kafka
    /// drivers).
    consumer: &'static [&'static str],
    /// What the row always says, e.g. which settings it uses.
    note: &'static str,
    /// Whether the row also runs against the 3-node cluster.
    on_cluster: bool,
    /// The SASL mechanism of the row's SASL_SSL run (SCRAM-SHA-256, or PLAIN for a client
    /// without SCRAM); `None`: no SASL_SSL row.
    sasl: Option<&'static str>,
    /// What the SASL_SSL row says besides, e.g. why it does not use SCRAM.
    sasl_note: &'static str,
}

const CLIENTS: &[Client] = &[
    Client {
        name: "Java kafka-clients",
        slug: "java",
        driver: Driver::Java,
        producer: PRODUCER_OVERRIDES,
        consumer: &[],
        note: "default settings (an idempotent producer); the classic consumer group protocol",
        on_cluster: true,
        sasl: Some("SCRAM-SHA-256"),
        sasl_note: "",
    },
    Client {
        name: "Java kafka-clients (group.protocol=consumer)",
        slug: "java-kip848",
        driver: Driver::Java,
        producer: PRODUCER_OVERRIDES,
        consumer: &["group.protocol=consumer"],
        note: "the KIP-848 consumer group protocol: ConsumerGroupHeartbeat with the server-side \
               assignor, OffsetCommit/OffsetFetch v9 with the member epoch; admin describes \
               the group with ConsumerGroupDescribe",
        on_cluster: true,
        sasl: None,
        sasl_note: "",
    },
    Client {
        name: "franz-go (kgo, kadm)",
        slug: "franz-go",
        driver: Driver::Go("matrix-franz-go"),
        producer: &[],
        consumer: &[],
        note: "default settings (an idempotent producer)",
        on_cluster: true,
        sasl: Some("SCRAM-SHA-256"),
        sasl_note: "",
    },
    Client {
        name: "sarama",
        slug: "sarama",
        driver: Driver::Go("matrix-sarama"),
        producer: &[],
        consumer: &[],
        note: "default settings (its default protocol version)",
        on_cluster: true,
        sasl: Some("SCRAM-SHA-256"),
        sasl_note: "",
    },
    Client {
        name: "kafka-python",
        slug: "kafka-python",
        driver: Driver::Python("kafka-python"),
        producer: PRODUCER_OVERRIDES,
        consumer: &[],
        note: "default settings (an idempotent producer)",
        on_cluster: true,
        sasl: Some("SCRAM-SHA-256"),
        sasl_note: "",
    },
    Client {
        name: "aiokafka",
        slug: "aiokafka",
        driver: Driver::Python("aiokafka"),
        producer: &[],
        consumer: &[],
        note: "default settings",
        on_cluster: true,
        sasl: Some("SCRAM-SHA-256"),
        sasl_note: "",
    },
    Client {
        name: "confluent-kafka (librdkafka)",
        slug: "confluent",
        driver: Driver::Python("confluent-kafka"),
        producer: &[],
        consumer: &[],
        note: "default settings",
        on_cluster: true,
        sasl: Some("SCRAM-SHA-256"),
        sasl_note: "",
    },
    Client {
        name: "confluent-kafka (librdkafka, group.protocol=consumer)",
        slug: "confluent-kip848",
        driver: Driver::Python("confluent-kafka"),
        producer: &[],
        consumer: &["group.protocol=consumer"],
        note: "the KIP-848 consumer group protocol: ConsumerGroupHeartbeat with the server-side \
               assignor, OffsetCommit/OffsetFetch with the member epoch",
        on_cluster: true,
        sasl: None,
        sasl_note: "",
    },
    Client {
        name: "kafkajs",
        slug: "kafkajs",
        driver: Driver::Node("kafkajs.js"),
        producer: &[],
        consumer: &[],
        note: "default settings",
        on_cluster: true,
        sasl: Some("SCRAM-SHA-256"),
        sasl_note: "",
    },
    Client {
        name: "@platformatic/kafka",
        slug: "platformatic",
        driver: Driver::Node("platformatic.js"),
        producer: &[],
        consumer: &[],
        note: "default settings; fetches by topic id (Fetch v13+)",
        on_cluster: true,
        sasl: Some("SCRAM-SHA-256"),
        sasl_note: "",
    },
    Client {
        name: "@platformatic/kafka (group.protocol=consumer)",
        slug: "platformatic-kip848",
        driver: Driver::Node("platformatic.js"),
        producer: &[],
        consumer: &["group.protocol=consumer"],
        note: "the KIP-848 consumer group protocol: ConsumerGroupHeartbeat with the server-side \
               assignor, OffsetCommit/OffsetFetch with the member epoch; admin lists the group \
               with type consumer, and has no ConsumerGroupDescribe (DescribeGroups answers a \
               consumer group Dead, as Kafka 4.x does)",
        on_cluster: true,
        sasl: None,
        sasl_note: "",
    },
    Client {
        name: "kcat",
        slug: "kcat",
        driver: Driver::Kcat,
        producer: &[],
        consumer: &[],
        note: "admin: kcat has only its metadata listing (-L); topic created with gregor's CLI",
        on_cluster: true,
        // librdkafka before 2.6.1 repeats its own nonce in the SCRAM client-final-message
        // (librdkafka#4895): gregor refuses the login, as Kafka 4.x does since
        // CVE-2024-56128's fix ("the nonce does not match the server's").
        sasl: Some("PLAIN"),
        sasl_note: "PLAIN: the librdkafka kcat was packaged with (before 2.6.1) repeats its own \
                    nonce in SCRAM's client-final-message (librdkafka#4895), a login gregor \
                    refuses as Kafka 4.x does",
    },
];

/// What one driver run answered.
#[derive(Debug, Default)]
struct StepResult {
    ok: bool,
    version: Option<String>,
    error: Option<String>,
    /// Set when the client cannot do the step at all.
    unsupported: Option<String>,
    produced: Option<u64>,
    keys: Vec<String>,
    /// describe: admin call → "ok", "unsupported" or the error.
    steps: BTreeMap<String, String>,
}

/// One cell: works, fails, or not run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cell {
    Works,
    Fails,
    NotRun,
}

impl Cell {
    fn as_str(self) -> &'static str {
        match self {
            Cell::Works => "works",
            Cell::Fails => "fails",
            Cell::NotRun => "—",
        }
    }

    fn parse(s: &str) -> Option<Cell> {
        match s {
            "works" => Some(Cell::Works),
            "fails" => Some(Cell::Fails),
            "—" | "-" => Some(Cell::NotRun),
            _ => None,
        }
    }
}

#[derive(Debug, Clone)]
struct Row {
    client: String,
    version: String,
    produce: Cell,
    consume: Cell,
    resume: Cell,
    admin: Cell,
    notes: Vec<String>,
}

impl Row {
    fn new(client: &str) -> Row {
        Row {
            client: client.to_string(),
            version: "unknown".to_string(),
            produce: Cell::NotRun,
            consume: Cell::NotRun,
            resume: Cell::NotRun,
            admin: Cell::NotRun,
            notes: Vec::new(),
        }
    }

    /// The row as `tests/interop/client-matrix.expected` lists it.
    fn expected_line(&self) -> String {
        format!(
            "{} | {} | {} | {} | {}",
            self.client,
            self.produce.as_str(),
            self.consume.as_str(),
            self.resume.as_str(),
            self.admin.as_str()
        )
    }

    /// Keeps the version a step reported.
    fn saw(&mut self, r: &StepResult) {
        if let Some(v) = &r.version {
            self.version = v.clone();
        }
    }
}

/// The environment the drivers run in.
struct Env {
    toolbox: Toolbox,
    python: PathBuf,
}

impl Env {
    /// The program and arguments of `client`'s driver for one step.
    fn command(&self, driver: Driver, args: &[String]) -> (PathBuf, Vec<String>) {
        let mut all: Vec<String> = Vec::new();
        let program = match driver {
            Driver::Python(client) => {
                let script = repo_root().join("tests/e2e/python/matrix_client.py");
                all.extend([
                    "-u".into(),
                    "-B".into(),
                    script.display().to_string(),
                    client.into(),
                ]);
                self.python.clone()
            }
            Driver::Java => {
                let dir = self.toolbox.dir();
                all.extend([
                    "-XX:+UseSerialGC".into(),
                    "-XX:TieredStopAtLevel=1".into(),
                    "-Xmx256M".into(),
                    format!(
                        "-Dlog4j2.configurationFile={}",
                        dir.join("config/tools-log4j2.properties").display()
                    ),
                    "-cp".into(),
                    format!(
                        "{}:{}",
                        dir.join("java/classes").display(),
                        dir.join("jars/*").display()
                    ),
                    "ClientMatrix".into(),
                ]);
                PathBuf::from("java")
            }
            Driver::Go(name) => self.toolbox.go_program(name),
            Driver::Node(script) => {
                all.extend([
                    format!(
                        "NODE_PATH={}",
                        self.toolbox.dir().join("node/node_modules").display()
                    ),
                    "KAFKAJS_NO_PARTITIONER_WARNING=1".into(),
                    "node".into(),
                    repo_root()
                        .join("tests/interop/node")
                        .join(script)
                        .display()
                        .to_string(),
                ]);
                PathBuf::from("env")
            }
            Driver::Kcat => {
                // kcat runs on the librdkafka it was packaged with, not the one `cargo test`
                // may put on LD_LIBRARY_PATH for the load generator.
                all.extend([
                    "-u".into(),
                    "LD_LIBRARY_PATH".into(),
                    "bash".into(),
                    repo_root()
                        .join("tests/interop/kcat-matrix.sh")
                        .display()
                        .to_string(),
                ]);
                PathBuf::from("env")
            }
        };
        all.extend(args.iter().cloned());
        (program, all)
    }

    /// Runs one step of a driver; a driver that crashes or prints no JSON is a failed step.
    #[allow(clippy::too_many_arguments)]
    fn step(
        &self,
        client: &str,
        driver: Driver,
        step: &str,
        bootstrap: &str,
        topic: &str,
        group: &str,
        n: usize,
        extra: &[&str],
    ) -> StepResult {
        let mut args: Vec<String> = [step, bootstrap, topic, group, &n.to_string()]
            .iter()
            .map(|s| s.to_string())
            .collect();
        args.extend(extra.iter().map(|s| s.to_string()));
        let (program, args) = self.command(driver, &args);
        let arg_refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let started = Instant::now();
        let run = run_program(
            &program,
            &format!("{client} {step}"),
            &arg_refs,
            None,
            STEP_TIMEOUT,
        );
        let doc = run.stdout.lines().rev().find_map(|l| {
            serde_json::from_str::<serde_json::Value>(l.trim())
                .ok()
                .filter(|v| v.get("ok").is_some())
        });
        let result = match doc {
            Some(doc) => StepResult {
                ok: doc["ok"] == true,
                version: doc["version"].as_str().map(str::to_string),
                error: doc["error"].as_str().map(str::to_string),
                unsupported: doc["unsupported"].as_str().map(str::to_string),
                produced: doc["produced"].as_u64(),
                keys: doc["keys"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|k| k.as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default(),
                steps: doc["steps"]
                    .as_object()
                    .map(|o| {
                        o.iter()
                            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("?").to_string()))
                            .collect()
                    })
                    .unwrap_or_default(),
            },
            None => StepResult {
                error: Some(format!("no JSON result: {}", run.reason())),
                ..StepResult::default()
            },
        };
        eprintln!(
            "[client_matrix] {client} {step}: {} in {:.1?}{}",
            if result.ok { "ok" } else { "FAILED" },
            started.elapsed(),
            result
                .error
                .as_deref()
                .map(|e| format!(": {e}"))
                .unwrap_or_default()
        );
        if !result.ok && result.unsupported.is_none() {
            eprintln!("{}", run.transcript());
        }
        result
    }
}

/// Where a row's clients connect.
struct Target<'a> {
    /// The clients' bootstrap servers.
    bootstrap: &'a str,
    /// The driver options of every step: how the clients connect (`--security.protocol=...`),
    /// none for PLAINTEXT.
    options: &'a [String],
    /// A PLAINTEXT listener of the same brokers, where gregor's CLI (which has no TLS or SASL)
    /// sets up what a client's own step could not.
    plaintext: &'a str,
}

impl<'a> Target<'a> {
    fn plaintext(bootstrap: &'a str) -> Target<'a> {
        Target {
            bootstrap,
            options: &[],
            plaintext: bootstrap,
        }
    }
}

/// A broker with a SASL_SSL listener beside its PLAINTEXT one: SCRAM-SHA-256 for the user
/// [`SASL_USER`] (made with `kafka-configs.sh` over PLAINTEXT), and PLAIN.
struct SaslSslBroker {
    /// The running broker; its own address is the PLAINTEXT listener.
    broker: Broker,
    /// The SASL_SSL listener's bootstrap.
    bootstrap: String,
    /// The CA that signed the broker's certificate, in PEM.
    ca: PathBuf,
    /// Owns the certificates' directory.
    _pki: Pki,
}

impl SaslSslBroker {
    fn start(toolbox: &Toolbox) -> SaslSslBroker {
        let pki = Pki::generate();
        let sasl_ssl = gregor_e2e::ports::reserve();
        // PLAINTEXT first: the primary listener, whose address the harness's `--listen` sets.
        let mut sets = vec![
            format!("listeners=PLAINTEXT://127.0.0.1:0,SASL_SSL://{sasl_ssl}"),
            "sasl.enabled.mechanisms=SCRAM-SHA-256,PLAIN".to_string(),
            format!("listener.name.sasl_ssl.plain.sasl.jaas.config={SASL_JAAS}"),
        ];
        sets.extend(pki.keystore_config());
        let sets: Vec<&str> = sets.iter().map(String::as_str).collect();
        let broker = Broker::start_with(&sets);
        let plaintext = broker.bootstrap();
        let credential = format!("SCRAM-SHA-256=[password={SASL_PASSWORD}]");
        let run = toolbox.run(
            "kafka-configs.sh",
            &[
                "--bootstrap-server",
                &plaintext,
                "--alter",
                "--add-config",
                &credential,
                "--entity-type",
                "users",
                "--entity-name",
                SASL_USER,
            ],
            None,
            STEP_TIMEOUT,
        );
        if let Err(e) = run.ok() {
            panic!(
                "kafka-configs (the SCRAM user): {e}\n{}\nlog:\n{}",
                run.transcript(),
                broker.logs()
            );
        }
        SaslSslBroker {
            broker,
            bootstrap: sasl_ssl.to_string(),
            ca: pki.path("ca.pem"),
            _pki: pki,
        }
    }

    /// The driver options that log in with `mechanism` over SASL_SSL.
    fn options(&self, mechanism: &str) -> Vec<String> {
        vec![
            "--security.protocol=SASL_SSL".to_string(),
            format!("--sasl.mechanism={mechanism}"),
            format!("--sasl.username={SASL_USER}"),
            format!("--sasl.password={SASL_PASSWORD}"),
            format!("--ssl.ca.location={}", self.ca.display()),
        ]
    }
}

/// Runs the gregor CLI against `bootstrap` (to set up what a client's own step could not).
fn gregor(bootstrap: &str, args: &[&str], stdin: Option<&[u8]>) -> Result<String, String> {
    let mut all = args.to_vec();
    all.extend(["--bootstrap-server", bootstrap]);
    run_program(&gregor_bin(), "gregor", &all, stdin, STEP_TIMEOUT)
        .ok()
        .map(str::to_string)
        .map_err(|e| format!("gregor {}: {e}", args.join(" ")))
}

fn first_line(s: &str) -> String {
    let line = s.lines().next().unwrap_or("").trim();
    let mut out: String = line.chars().take(160).collect();
    if line.chars().count() > 160 {
        out.push('…');
    }
    out
}

/// The whole scenario for one client against `target`; `label` names the row.
fn run_client(env: &Env, client: &Client, target: &Target, label: &str, slug: &str) -> Row {
    let mut row = Row::new(label);
    let topic = format!("matrix-{slug}");
    let group = format!("matrix-{slug}-group");
    let bootstrap = target.bootstrap;
    let step = |name: &str, n: usize, extra: &[&str]| {
        let mut args = extra.to_vec();
        args.extend(target.options.iter().map(String::as_str));
        env.step(
            label,
            client.driver,
            name,
            bootstrap,
            &topic,
            &group,
            n,
            &args,
        )
    };
    let mut admin_ok = true;

    // create
    let created = step("create", PARTITIONS, &[]);
    row.saw(&created);
    if !created.ok {
        match &created.unsupported {
            Some(_) => {}
            None => {
                admin_ok = false;
                row.notes.push(format!(
                    "create topic: {}",
                    first_line(created.error.as_deref().unwrap_or("failed"))
                ));
            }
        }
        // Over the PLAINTEXT listener: gregor's CLI has no TLS or SASL.
        let parts = PARTITIONS.to_string();
        match gregor(
            target.plaintext,
            &["topics", "create", &topic, "--partitions", &parts],
            None,
        ) {
            Err(e) if !e.contains("TOPIC_ALREADY_EXISTS") => row.notes.push(format!("setup: {e}")),
            _ if target.plaintext != bootstrap => row.notes.push(
                "topic created with gregor's CLI over the broker's PLAINTEXT listener".to_string(),
            ),
            _ => {}
        }
    }

    // produce
    let produced = step("produce", RECORDS, client.producer);
    row.saw(&produced);
    if produced.ok && produced.produced == Some(RECORDS as u64) {
        row.produce = Cell::Works;
    } else {
        row.produce = Cell::Fails;
        row.notes.push(format!(
            "produce: {}",
            first_line(produced.error.as_deref().unwrap_or("records missing"))
        ));
        // The consumer columns should say whether the consumer works: produce another way.
        let lines: String = (0..RECORDS).map(|i| format!("k{i}:v{i}\n")).collect();
        if let Err(e) = gregor(
            target.plaintext,
            &["produce", &topic, "--key-separator", ":"],
            Some(lines.as_bytes()),
        ) {
            row.notes.push(format!("setup: {e}"));
        }
    }
    if !client.producer.is_empty() {
        row.notes
            .push(format!("producer: {}", client.producer.join(", ")));
    }

    // consume, commit, stop; resume
    let all: BTreeSet<String> = (0..RECORDS).map(|i| format!("k{i}")).collect();
    let first = step("consume", FIRST_RUN, client.consumer);
    row.saw(&first);
    let first_keys: BTreeSet<String> = first.keys.iter().cloned().collect();
    let first_ok = first.ok
        && first.keys.len() == FIRST_RUN
        && first_keys.len() == FIRST_RUN
        && first_keys.is_subset(&all);
    if first_ok {
        row.consume = Cell::Works;
        let rest = RECORDS - FIRST_RUN;
        let second = step("consume", rest, client.consumer);
        let second_keys: BTreeSet<String> = second.keys.iter().cloned().collect();
        let again: Vec<&String> = first_keys.intersection(&second_keys).collect();
        let union: BTreeSet<&String> = first_keys.union(&second_keys).collect();
        if second.ok && again.is_empty() && union.len() == RECORDS && second.keys.len() == rest {
            row.resume = Cell::Works;
        } else {
            row.resume = Cell::Fails;
            let why = if !again.is_empty() {
                format!(
                    "{} records read again after the commit (e.g. {})",
                    again.len(),
                    again[0]
                )
            } else {
                first_line(second.error.as_deref().unwrap_or("records missing"))
            };
            row.notes.push(format!("resume: {why}"));
        }
    } else {
        row.consume = Cell::Fails;
        let why = match &first.error {
            Some(e) => first_line(e),
            None => format!(
                "{} records, {} distinct, want {FIRST_RUN}",
                first.keys.len(),
                first_keys.len()
            ),
        };
        row.notes.push(format!("group consume: {why}"));
    }

    // describe
    // With the consumer's settings: the admin calls on the group depend on its protocol.
    let described = step("describe", 0, client.consumer);
    row.saw(&described);
    if described.steps.is_empty() {
        admin_ok = false;
        row.notes.push(format!(
            "admin: {}",
            first_line(described.error.as_deref().unwrap_or("failed"))
        ));
    }
    let mut group_unchecked = false;
    for (name, outcome) in &described.steps {
        // Without a group the group calls have nothing to find: not the admin client's fault.
        if row.consume != Cell::Works && name.contains("group") {
            group_unchecked = true;
            continue;
        }
        match outcome.as_str() {
            "ok" | "unsupported" => {}
            e => {
                admin_ok = false;
                row.notes.push(format!("{name}: {}", first_line(e)));
            }
        }
    }
    if group_unchecked {
        row.notes
            .push("admin: group calls not judged (the group never formed)".to_string());
    }
    row.admin = if admin_ok { Cell::Works } else { Cell::Fails };
    if !client.note.is_empty() {
        row.notes.push(client.note.to_string());
    }
    row
}

/// The Kafka Streams word count: two runs of the same application, the second resuming from
/// the first one's committed offsets and restoring its state from the changelog; at-least-once,
/// or with `processing.guarantee=exactly_once_v2` (transactions: read_committed consumers, a
/// transactional producer per thread, offsets committed in the transactions).
fn run_streams(env: &Env, bootstrap: &str, on_cluster: bool, eos: bool) -> Row {
    let guarantee = if eos {
        "exactly_once_v2"
    } else {
        "at-least-once"
    };
    let cluster = if on_cluster { " (3-node cluster)" } else { "" };
    let label = format!("Kafka Streams (word count, {guarantee}){cluster}");
    let mut row = Row::new(&label);
    let suffix = if eos { "-eos" } else { "" };
    let topic = format!("matrix-streams-sentences{suffix}");
    let app = format!("matrix-streams-wordcount{suffix}");
    let mut settings: Vec<&str> = PRODUCER_OVERRIDES.to_vec();
    if eos {
        settings.push("processing.guarantee=exactly_once_v2");
    }
    let round = |n: usize| {
        env.step(
            &label,
            Driver::Java,
            "streams-wordcount",
            bootstrap,
            &topic,
            &app,
            n,
            &settings,
        )
    };
    let first = round(1);
    row.saw(&first);
    if first.ok {
        row.produce = Cell::Works;
        row.consume = Cell::Works;
        let second = round(2);
        if second.ok {
            row.resume = Cell::Works;
        } else {
            row.resume = Cell::Fails;
            row.notes.push(format!(
                "second run: {}",
                first_line(second.error.as_deref().unwrap_or("failed"))
            ));
        }
    } else {
        row.produce = Cell::Fails;
        row.consume = Cell::Fails;
        row.notes.push(format!(
            "first run: {}",
            first_line(first.error.as_deref().unwrap_or("failed"))
        ));
    }
    if !PRODUCER_OVERRIDES.is_empty() {
        row.notes
            .push(format!("producer: {}", PRODUCER_OVERRIDES.join(", ")));
    }
    row.notes.push(
        if eos {
            "processing.guarantee=exactly_once_v2: the counts after both runs are exactly \
             rounds 1+2; consumer session.timeout.ms=6000, commit.interval.ms=1000"
        } else {
            "consumer session.timeout.ms=6000, commit.interval.ms=1000"
        }
        .to_string(),
    );
    row
}

/// The table as Markdown.
fn markdown(rows: &[Row]) -> String {
    let mut out = format!(
        "Each client against one gregor broker, then over one broker's SASL_SSL listener \
         (SCRAM-SHA-256), then against a 3-node cluster (topics with RF=3), as \
         `tests/e2e/tests/client_matrix.rs` runs them: {RECORDS} records \
         produced to a {PARTITIONS}-partition topic; a consumer in a group processes \
         {FIRST_RUN}, commits exactly those (auto-commit off, an explicit commit; kcat commits \
         what it printed when it exits) and stops; a new consumer in the group must read \
         exactly the other {}; then the client's admin calls (list and describe topics, describe \
         the cluster, list and describe groups). `GREGOR_UPDATE_README=1 cargo nextest run -p \
         gregor-e2e --test client_matrix` (after `scripts/toolbox`) regenerates this table.\n\n\
         | client | version | produce | group consume | commit/resume | admin | notes |\n\
         |---|---|---|---|---|---|---|\n",
        RECORDS - FIRST_RUN
    );
    for r in rows {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} |\n",
            r.client,
            r.version,
            r.produce.as_str(),
            r.consume.as_str(),
            r.resume.as_str(),
            r.admin.as_str(),
            r.notes.join("; ").replace('|', "\\|")
        ));
    }
    out
}

const EXPECTED_HEADER: &str = "\
# The client matrix: the expected cells of each row of the client_matrix test,
# `client | produce | group consume | commit/resume | admin` (works, fails, or — for not run).
# Any row that differs fails the test; `GREGOR_UPDATE_README=1` rewrites this file (and the
# README's table) from a run. The reasons of failures are in the README's notes column.
";

fn render_expected(rows: &[Row]) -> String {
    let mut out = EXPECTED_HEADER.to_string();
    for r in rows {
        out.push_str(&r.expected_line());
        out.push('\n');
    }
    out
}

/// The expected rows: client → the line as [`Row::expected_line`] writes it.
fn parse_expected(text: &str) -> Result<BTreeMap<String, String>, String> {
    let mut rows = BTreeMap::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split(" | ").map(str::trim).collect();
        if fields.len() != 5 || fields[1..].iter().any(|f| Cell::parse(f).is_none()) {
            return Err(format!(
                "line {}: want `client | produce | group consume | commit/resume | admin` with \
                 works/fails/—: {line}",
                n + 1
            ));
        }
        if rows
            .insert(fields[0].to_string(), fields.join(" | "))
            .is_some()
        {
            return Err(format!("line {}: {} listed twice", n + 1, fields[0]));
        }
    }
    Ok(rows)
}

const README_BEGIN: &str = "<!-- client matrix: generated by the client_matrix test -->";
const README_END: &str = "<!-- end of client matrix -->";

fn toolbox_ready(toolbox: &Toolbox) {
    for needed in ["java/.stamp", "node/.stamp"] {
        let path: &Path = &toolbox.dir().join(needed);
        assert!(
            path.is_file(),
            "the client matrix's drivers are not installed ({} is missing): run scripts/toolbox",
            path.display()
        );
    }
}

#[test]
fn client_matrix_against_gregor() {
    let toolbox = Toolbox::installed();
    toolbox_ready(&toolbox);
    let env = Env {
        toolbox,
        python: python(),
    };
    let started = Instant::now();
    let broker = Broker::start();
    let bootstrap = broker.bootstrap();
    let cluster = Cluster::start(3, &["default.replication.factor=3"]);
    let cluster_bootstrap = cluster.bootstrap();
    let secure = SaslSslBroker::start(&env.toolbox);
    let secure_plaintext = secure.broker.bootstrap();

    // A work queue of single-node rows, with the 3-node Java row and Streams among them.
    enum Job {
        Client(usize),
        ClusterClient(usize),
        SaslSslClient(usize, &'static str),
        Streams(bool),
        ClusterStreams(bool),
    }
    // The number is the row's place in the table: the single-node rows (Java first, then
    // Streams at-least-once and exactly-once, then the others), the SASL_SSL rows, then the
    // cluster rows. The slow jobs start first.
    let mut jobs: Vec<(usize, Job)> = vec![
        (2, Job::Streams(false)),
        (3, Job::Streams(true)),
        (102, Job::ClusterStreams(false)),
        (103, Job::ClusterStreams(true)),
    ];
    for (i, c) in CLIENTS.iter().enumerate() {
        jobs.push((if i < 2 { i } else { i + 2 }, Job::Client(i)));
        if c.on_cluster {
            jobs.push((if i < 2 { 100 + i } else { 102 + i }, Job::ClusterClient(i)));
        }
        if let Some(mechanism) = c.sasl {
            jobs.push((50 + i, Job::SaslSslClient(i, mechanism)));
        }
    }
    jobs.reverse();
    let queue = Mutex::new(jobs);
    let done: Mutex<Vec<(usize, Row)>> = Mutex::new(Vec::new());
    thread::scope(|s| {
        for _ in 0..PARALLEL {
            s.spawn(|| loop {
                let job = queue.lock().expect("queue lock").pop();
                let Some((place, job)) = job else { break };
                let row = match job {
                    Job::Client(i) => {
                        let c = &CLIENTS[i];
                        run_client(&env, c, &Target::plaintext(&bootstrap), c.name, c.slug)
                    }
                    Job::SaslSslClient(i, mechanism) => {
                        let c = &CLIENTS[i];
                        let options = secure.options(mechanism);
                        let target = Target {
                            bootstrap: &secure.bootstrap,
                            options: &options,
                            plaintext: &secure_plaintext,
                        };
                        let label = format!("{} (SASL_SSL, {mechanism})", c.name);
                        let slug = format!("{}-sasl-ssl", c.slug);
                        let mut row = run_client(&env, c, &target, &label, &slug);
                        let user = if mechanism.starts_with("SCRAM-") {
                            "a user made with kafka-configs.sh"
                        } else {
                            "a user of the listener's JAAS config"
                        };
                        let mut notes = vec![format!(
                            "SASL_SSL with {mechanism} ({user}), the CA from a PEM file"
                        )];
                        if !c.sasl_note.is_empty() {
                            notes.push(c.sasl_note.to_string());
                        }
                        row.notes.splice(0..0, notes);
                        row
                    }
                    Job::ClusterClient(i) => {
                        let c = &CLIENTS[i];
                        let slug = format!("{}-cluster", c.slug);
                        let mut row = run_client(
                            &env,
                            c,
                            &Target::plaintext(&cluster_bootstrap),
                            &format!("{} (3-node cluster)", c.name),
                            &slug,
                        );
                        // The client asked for the broker's default replication factor.
                        let topic = format!("matrix-{slug}");
                        let describe = ["topics", "describe", topic.as_str()];
                        let note = match gregor(&cluster_bootstrap, &describe, None) {
                            Ok(d) if d.contains("ReplicationFactor: 3") => "topic RF=3".into(),
                            Ok(d) => {
                                row.admin = Cell::Fails;
                                format!("create topic: not RF=3: {}", first_line(&d))
                            }
                            Err(e) => format!("topic not checked: {}", first_line(&e)),
                        };
                        row.notes.insert(0, note);
                        row
                    }
                    Job::Streams(eos) => run_streams(&env, &bootstrap, false, eos),
                    Job::ClusterStreams(eos) => run_streams(&env, &cluster_bootstrap, true, eos),
                };
                done.lock().expect("rows lock").push((place, row));
            });
        }
    });
    let mut rows = done.into_inner().expect("rows lock");
    rows.sort_by_key(|(place, _)| *place);
    let rows: Vec<Row> = rows.into_iter().map(|(_, r)| r).collect();

    let table = markdown(&rows);
    let out_dir = repo_root().join("target/interop");
    std::fs::create_dir_all(&out_dir).expect("create target/interop");
    std::fs::write(out_dir.join("client-matrix.md"), &table).expect("write the table");
    let current = render_expected(&rows);
    std::fs::write(out_dir.join("client-matrix.expected"), &current)
        .expect("write the current outcomes");
    eprintln!(
        "{table}\n(table in target/interop/client-matrix.md; {} rows in {:.0?})",
        rows.len(),
        started.elapsed()
    );

    let expected_path = repo_root().join("tests/interop/client-matrix.expected");
    if std::env::var_os("GREGOR_UPDATE_README").is_some() {
        std::fs::write(&expected_path, &current).expect("write the expected file");
        let path = repo_root().join("README.md");
        let readme = std::fs::read_to_string(&path).expect("read README.md");
        let updated = replace_between(&readme, README_BEGIN, README_END, &table)
            .unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(&path, updated).expect("write README.md");
        eprintln!("tests/interop/client-matrix.expected and README.md's client matrix updated");
        return;
    }
    let expected = std::fs::read_to_string(&expected_path)
        .map_err(|e| e.to_string())
        .and_then(|t| parse_expected(&t))
        .unwrap_or_else(|e| panic!("{}: {e}", expected_path.display()));
    let mut changed = Vec::new();
    for r in &rows {
        match expected.get(&r.client) {
            Some(line) if *line == r.expected_line() => {}
            Some(line) => changed.push(format!(
                "{}\n    expected {line}\n    now      {}\n    notes: {}",
                r.client,
                r.expected_line(),
                r.notes.join("; ")
            )),
            None => changed.push(format!("{} is not listed", r.client)),
        }
    }
    for client in expected.keys() {
        if !rows.iter().any(|r| &r.client == client) {
            changed.push(format!("{client} is listed but was not run"));
        }
    }
    assert!(
        changed.is_empty(),
        "the client matrix changed (GREGOR_UPDATE_README=1 rewrites \
         tests/interop/client-matrix.expected and the README if that is right):\n  {}",
        changed.join("\n  ")
    );
}

#[test]
fn the_expected_file_round_trips_and_rejects_bad_cells() {
    let mut row = Row::new("some client");
    row.produce = Cell::Works;
    row.consume = Cell::Fails;
    row.admin = Cell::Works;
    let text = render_expected(std::slice::from_ref(&row));
    let parsed = parse_expected(&text).expect("parses");
    assert_eq!(parsed.get("some client"), Some(&row.expected_line()));
    assert_eq!(
        row.expected_line(),
        "some client | works | fails | — | works"
    );
    assert!(parse_expected("c | works | maybe | works | works\n").is_err());
    assert!(parse_expected("c | works | works\n").is_err());
    assert!(parse_expected(
        "c | works | works | works | works\nc | works | works | works | works\n"
    )
    .is_err());
}
