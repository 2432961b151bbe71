//! The admin APIs Kafka 4.4's controllers serve to clients besides the config and ACL ones
//! (KIP-919): CreateTopics, DeleteTopics, CreatePartitions, ElectLeaders, the reassignment
//! APIs, AlterClientQuotas, the SCRAM credential and delegation token APIs, asked of a gregor
//! controller-only node's controller listener and of a real Apache Kafka 4.4 controller
//! (`kafka_peer`, its CONTROLLER listener), step by step, and compared.
//!
//! ```text
//!   gregor: node 1, 2 broker,controller; node 3 controller only (no client listener)
//!   Kafka 4.4: node 1 broker,controller
//!
//!   kafka-configs.sh --bootstrap-controller ─┐
//!   ControllerAdmin.java (bootstrap.controllers) ├─► node 3's controller listener
//!   RawConn (the requests themselves) ───────┘   └► Kafka's CONTROLLER listener
//!   kafka-configs.sh --bootstrap-server, RawConn Metadata ─► a broker: what reached the log
//! ```
//!
//! Kafka 4.4's admin client refuses most of these calls itself when it bootstraps from
//! controllers (UnsupportedEndpointTypeException, nothing is sent): AlterUserScramCredentials,
//! and DescribeClientQuotas, which `kafka-configs --describe` and a quota `--alter` send first,
//! CreateTopics, CreatePartitions, DeleteTopics, ElectLeaders. It sends
//! ListPartitionReassignments and AlterPartitionReassignments. So the test runs Kafka's tools
//! and the admin client as a user would (both sides must refuse or succeed alike), and sends
//! the requests the client will not send itself on a raw connection to both controller
//! listeners, comparing the error codes; every change is read back through a broker.
//!
//! Steps (on each side; the two sides run at once):
//! 1. SCRAM: `kafka-configs --bootstrap-controller --alter --entity-type users --entity-name
//!    alice --add-config 'SCRAM-SHA-256=[iterations=8192,password=a]'` and `--describe`;
//!    AlterUserScramCredentials (the tool's request: PBKDF2 of `a`) and
//!    DescribeUserScramCredentials on the controller listener.
//! 2. Quotas: `kafka-configs --bootstrap-controller --alter ... --add-config
//!    producer_byte_rate=1024`; AlterClientQuotas on the controller listener; DescribeClientQuotas
//!    there (not a controller's API: the connection closes); `kafka-configs --bootstrap-server
//!    --describe --entity-type users --entity-name alice` at a broker shows both changes.
//! 3. Topics: CreateTopics on the controller listener, the topic seen at a broker;
//!    ControllerAdmin.java with `bootstrap.controllers`: create, add partitions, list
//!    reassignments, cancel a reassignment, delete; CreatePartitions (2), ElectLeaders
//!    (preferred) and DeleteTopics on the controller listener, each seen at a broker.
//! 4. Delegation tokens: CreateDelegationToken and DescribeDelegationToken on the PLAINTEXT
//!    controller listener (refused: Kafka's `allowTokenRequests`).
//! 5. Features: `kafka-features --bootstrap-controller disable --feature share.version`, then
//!    `upgrade --feature share.version=2` (UpdateFeatures), each read back from a broker's
//!    ApiVersions.
//!
//! Reads after a change are retried until they show it (up to 15 s): a change reaches a
//! broker's image a moment after the active controller commits it. Every step's outcome is
//! printed for both sides; the test fails listing every step that differs, and if gregor's
//! changes did not reach its brokers.
//!
//! Kafka 4.4, as this test found it (and checks on every run): the tools' SCRAM and quota
//! alters and describes through the controller, and the admin client's create, add
//! partitions and delete fail in the client (UnsupportedEndpointTypeException); listing
//! reassignments answers none and cancelling one that is not in progress
//! NoReassignmentInProgressException. On the wire, AlterUserScramCredentials,
//! AlterClientQuotas, CreateTopics, CreatePartitions and DeleteTopics succeed, a preferred
//! election of a partition led by its preferred replica is ELECTION_NOT_NEEDED (84),
//! DescribeClientQuotas closes the connection, CreateDelegationToken on PLAINTEXT is
//! DELEGATION_TOKEN_REQUEST_NOT_ALLOWED (64). DescribeUserScramCredentials and
//! DescribeDelegationToken are advertised but answered UNKNOWN_SERVER_ERROR ("Unsupported
//! ApiKey": `ControllerApis` has no handler for them); gregor answers them as its brokers do
//! ([`DIFFERENT`]).
//!
//! Needs the toolbox (`scripts/toolbox`).
//!
//! Run: `cargo test -p gregor-e2e --test controller_admin_apis` (after `cargo build -p
//! gregor-cli`).

use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::thread;
use std::time::{Duration, Instant};

use gregor_e2e::cluster::{Cluster, Role};
use gregor_e2e::cluster_client::wait_for_brokers;
use gregor_e2e::kafka_peer::KafkaPeer;
use gregor_e2e::kafka_tools::{ToolRun, Toolbox};
use gregor_e2e::raw::RawConn;
use gregor_e2e::unique_topic;
use kafka_protocol::messages::alter_client_quotas_request::{EntityData, EntryData, OpData};
use kafka_protocol::messages::alter_user_scram_credentials_request::ScramCredentialUpsertion;
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::describe_client_quotas_request::ComponentData;
use kafka_protocol::messages::describe_user_scram_credentials_request::UserName;
use kafka_protocol::messages::elect_leaders_request::TopicPartitions;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{
    AlterClientQuotasRequest, AlterUserScramCredentialsRequest, ApiVersionsRequest,
    CreateDelegationTokenRequest, CreatePartitionsRequest, CreateTopicsRequest,
    DeleteTopicsRequest, DescribeClientQuotasRequest, DescribeDelegationTokenRequest,
    DescribeUserScramCredentialsRequest, ElectLeadersRequest, MetadataRequest, TopicName,
};
use kafka_protocol::protocol::{Request, StrBytes};

/// How long one tool run may take (Java on two busy cores starts in seconds).
const TOOL_TIMEOUT: Duration = Duration::from_secs(90);
/// How long a read is retried until it shows a change.
const SETTLE: Duration = Duration::from_secs(15);

const CONFIGS: &str = "kafka-configs.sh";
/// The user whose SCRAM credential and quota the steps set.
const USER: &str = "alice";
const SCRAM_CONFIG: &str = "SCRAM-SHA-256=[iterations=8192,password=a]";
const QUOTA_CONFIG: &str = "producer_byte_rate=1024";
/// Kafka's `ScramMechanism.SCRAM_SHA_256`.
const SCRAM_SHA_256: i8 = 1;
const ITERATIONS: i32 = 8192;

/// The steps where gregor answers otherwise than Kafka 4.4, on purpose: (step, how Kafka's
/// outcome starts, how gregor's starts, why). Kafka's controllers advertise these two APIs in
/// ApiVersions (`ApiKeys.apisForListener(CONTROLLER)`) but `ControllerApis` has no handler for
/// them ("Unsupported ApiKey", UNKNOWN_SERVER_ERROR); Kafka's admin client never sends them
/// to a controller. gregor answers them as its brokers do, from the node's image.
const DIFFERENT: &[(&str, &str, &str, &str)] = &[
    (
        "DescribeUserScramCredentials alice (controller listener)",
        "error -1",
        "error 0; alice: error 0 [mechanism 1 iterations 8192]",
        "Kafka's ControllerApis has no handler",
    ),
    (
        "DescribeDelegationToken (controller listener)",
        "error -1",
        // DELEGATION_TOKEN_REQUEST_NOT_ALLOWED on a PLAINTEXT listener.
        "error 64",
        "Kafka's ControllerApis has no handler",
    ),
];

/// One cluster under test, as the steps see it.
struct Side {
    label: &'static str,
    /// The controller listener the steps ask.
    controller: SocketAddr,
    /// A broker listener, where what reached the metadata log is read back.
    broker: SocketAddr,
}

/// Each step and its outcome on one side, in order.
type Outcomes = Vec<(String, String)>;

fn str_bytes(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

fn topic_name(s: &str) -> TopicName {
    TopicName(str_bytes(s))
}

/// What a tool run came to: `ok`, or the class of the exception it failed with (the innermost
/// one it printed: the `Caused by:` line, else the first line naming an exception), else its
/// short reason.
fn tool_outcome(run: &ToolRun) -> String {
    if run.succeeded() {
        return "ok".to_string();
    }
    let text = format!("{}\n{}", run.stderr, run.stdout);
    let exception_in = |line: &str| {
        line.split(|c: char| c.is_whitespace() || c == ':')
            .map(|w| w.trim_matches(|c: char| !c.is_ascii_alphanumeric() && c != '.'))
            .find(|w| w.ends_with("Exception") || w.ends_with("Error"))
            .map(|w| w.rsplit('.').next().unwrap_or(w).to_string())
    };
    let caused = text
        .lines()
        .rev()
        .filter(|l| l.starts_with("Caused by:"))
        .find_map(exception_in);
    caused
        .or_else(|| text.lines().find_map(exception_in))
        .unwrap_or_else(|| format!("failed: {}", run.reason()))
}

/// Runs `kafka-configs.sh` with `flag` (`--bootstrap-controller` / `--bootstrap-server`) at
/// `addr` and `args`.
fn configs(toolbox: &Toolbox, flag: &str, addr: SocketAddr, args: &[&str]) -> ToolRun {
    let addr = addr.to_string();
    let mut all = vec![flag, addr.as_str()];
    all.extend_from_slice(args);
    toolbox.run(CONFIGS, &all, None, TOOL_TIMEOUT)
}

/// `read()` until `done` holds of it, at most [`SETTLE`]; the last read.
fn settled<T>(mut read: impl FnMut() -> T, done: impl Fn(&T) -> bool) -> T {
    let deadline = Instant::now() + SETTLE;
    loop {
        let value = read();
        if done(&value) || Instant::now() >= deadline {
            return value;
        }
        thread::sleep(Duration::from_millis(300));
    }
}

/// One request on a fresh connection to `addr`: its answer, or how the connection ended.
fn raw<R: Request>(addr: SocketAddr, version: i16, req: &R) -> Result<R::Response, String> {
    RawConn::connect(addr)
        .request(version, req)
        .map_err(|e| match e.kind() {
            std::io::ErrorKind::UnexpectedEof
            | std::io::ErrorKind::ConnectionReset
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::BrokenPipe => "connection closed".to_string(),
            _ => format!("failed: {e}"),
        })
}

/// `error <code>` of a raw answer, or how it failed.
fn code_of<T>(answer: Result<T, String>, code: impl Fn(&T) -> String) -> String {
    match answer {
        Ok(resp) => code(&resp),
        Err(e) => e,
    }
}

/// A list of per-entry error codes as the steps print them: `error 0, error 36`.
fn errors(codes: impl Iterator<Item = i16>) -> String {
    codes
        .map(|c| format!("error {c}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The topic as a broker's Metadata shows it: its partition count, or its error.
fn topic_at_broker(broker: SocketAddr, topic: &str) -> String {
    let req = MetadataRequest::default()
        .with_topics(Some(vec![
            MetadataRequestTopic::default().with_name(Some(topic_name(topic)))
        ]))
        .with_allow_auto_topic_creation(false);
    code_of(raw(broker, 12, &req), |resp| match resp.topics.first() {
        Some(t) if t.error_code == 0 => format!("{} partitions", t.partitions.len()),
        Some(t) => format!("error {}", t.error_code),
        None => "no answer for the topic".to_string(),
    })
}

/// The client's SCRAM request for `password`: a salt and PBKDF2-HMAC-SHA-256 of the password,
/// as `kafka-configs --add-config 'SCRAM-SHA-256=[iterations=8192,password=a]'` sends it.
fn scram_upsertion(password: &str) -> AlterUserScramCredentialsRequest {
    let salt = b"gregor-e2e-controller-salt".to_vec();
    let mut salted = [0u8; 32];
    ring::pbkdf2::derive(
        ring::pbkdf2::PBKDF2_HMAC_SHA256,
        NonZeroU32::new(ITERATIONS as u32).expect("non-zero"),
        &salt,
        password.as_bytes(),
        &mut salted,
    );
    AlterUserScramCredentialsRequest::default().with_upsertions(vec![
        ScramCredentialUpsertion::default()
            .with_name(str_bytes(USER))
            .with_mechanism(SCRAM_SHA_256)
            .with_iterations(ITERATIONS)
            .with_salt(salt.into())
            .with_salted_password(salted.to_vec().into()),
    ])
}

/// The steps of the module docs on one side.
fn run_side(toolbox: &Toolbox, side: &Side, topic: &str) -> Outcomes {
    let mut out: Outcomes = Vec::new();
    let mut step = |name: &str, outcome: String| {
        eprintln!("[{}] {name}: {outcome}", side.label);
        out.push((name.to_string(), outcome));
    };
    let ctl = side.controller;
    let user = ["--entity-type", "users", "--entity-name", USER];

    // 1. SCRAM credentials.
    let alter = |config: &str| {
        let mut args = vec!["--alter"];
        args.extend_from_slice(&user);
        args.extend_from_slice(&["--add-config", config]);
        configs(toolbox, "--bootstrap-controller", ctl, &args)
    };
    step(
        "kafka-configs --bootstrap-controller --alter users alice SCRAM-SHA-256",
        tool_outcome(&alter(SCRAM_CONFIG)),
    );
    let mut describe = vec!["--describe"];
    describe.extend_from_slice(&user);
    step(
        "kafka-configs --bootstrap-controller --describe users alice",
        tool_outcome(&configs(toolbox, "--bootstrap-controller", ctl, &describe)),
    );
    step(
        "AlterUserScramCredentials alice SCRAM-SHA-256 (controller listener)",
        code_of(raw(ctl, 0, &scram_upsertion("a")), |r| {
            let codes: Vec<String> = r
                .results
                .iter()
                .map(|u| format!("{}: error {}", u.user.as_str(), u.error_code))
                .collect();
            codes.join(", ")
        }),
    );
    let described = settled(
        || {
            let req = DescribeUserScramCredentialsRequest::default()
                .with_users(Some(vec![UserName::default().with_name(str_bytes(USER))]));
            code_of(raw(ctl, 0, &req), |r| {
                let users: Vec<String> = r
                    .results
                    .iter()
                    .map(|u| {
                        let infos: Vec<String> = u
                            .credential_infos
                            .iter()
                            .map(|c| {
                                format!("mechanism {} iterations {}", c.mechanism, c.iterations)
                            })
                            .collect();
                        format!(
                            "{}: error {} [{}]",
                            u.user.as_str(),
                            u.error_code,
                            infos.join(", ")
                        )
                    })
                    .collect();
                format!("error {}; {}", r.error_code, users.join("; "))
            })
        },
        // Retried only while it answers without the credential (Kafka's error is final).
        |s| s.contains("iterations 8192") || !s.starts_with("error 0"),
    );
    step(
        "DescribeUserScramCredentials alice (controller listener)",
        described,
    );

    // 2. Client quotas.
    step(
        "kafka-configs --bootstrap-controller --alter users alice producer_byte_rate=1024",
        tool_outcome(&alter(QUOTA_CONFIG)),
    );
    let quota = AlterClientQuotasRequest::default().with_entries(vec![EntryData::default()
        .with_entity(vec![EntityData::default()
            .with_entity_type(str_bytes("user"))
            .with_entity_name(Some(str_bytes(USER)))])
        .with_ops(vec![OpData::default()
            .with_key(str_bytes("producer_byte_rate"))
            .with_value(1024.0)])]);
    step(
        "AlterClientQuotas user alice producer_byte_rate=1024 (controller listener)",
        code_of(raw(ctl, 1, &quota), |r| {
            errors(r.entries.iter().map(|e| e.error_code))
        }),
    );
    let quotas =
        DescribeClientQuotasRequest::default().with_components(vec![ComponentData::default()
            .with_entity_type(str_bytes("user"))
            .with_match_type(0)
            .with_match(Some(str_bytes(USER)))]);
    step(
        "DescribeClientQuotas (controller listener)",
        code_of(raw(ctl, 1, &quotas), |r| {
            format!("answered: error {}", r.error_code)
        }),
    );
    let at_broker = settled(
        || configs(toolbox, "--bootstrap-server", side.broker, &describe),
        |run| {
            run.stdout.contains("SCRAM-SHA-256=iterations=8192")
                && run.stdout.contains("producer_byte_rate=1024")
        },
    );
    step(
        "kafka-configs --bootstrap-server --describe users alice (a broker)",
        if at_broker.succeeded() {
            at_broker
                .stdout
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect::<Vec<_>>()
                .join(" | ")
        } else {
            tool_outcome(&at_broker)
        },
    );

    // 3. Topics.
    let create = CreateTopicsRequest::default()
        .with_topics(vec![CreatableTopic::default()
            .with_name(topic_name(topic))
            .with_num_partitions(1)
            .with_replication_factor(1)])
        .with_timeout_ms(30_000);
    step(
        "CreateTopics 1 partition (controller listener)",
        code_of(raw(ctl, 7, &create), |r| {
            errors(r.topics.iter().map(|t| t.error_code))
        }),
    );
    step(
        "the topic at a broker",
        settled(
            || topic_at_broker(side.broker, topic),
            |s| s == "1 partitions",
        ),
    );
    let ctl_text = ctl.to_string();
    let steps = [
        format!("create:{topic}:1"),
        format!("partitions:{topic}:2"),
        "list".to_string(),
        format!("cancel:{topic}:0"),
        format!("delete:{topic}"),
    ];
    let mut args = vec![ctl_text.as_str()];
    args.extend(steps.iter().map(String::as_str));
    let json = toolbox.run_java_source("ControllerAdmin.java", &args, TOOL_TIMEOUT);
    let admin: serde_json::Value = serde_json::from_str(&json)
        .unwrap_or_else(|e| panic!("ControllerAdmin's JSON {json:?}: {e}"));
    for pair in admin["steps"].as_array().into_iter().flatten() {
        let name = pair[0].as_str().unwrap_or("?").replace(topic, "T");
        let outcome = pair[1].as_str().unwrap_or("?").to_string();
        step(
            &format!("AdminClient bootstrap.controllers {name}"),
            outcome,
        );
    }
    step(
        "AdminClient bootstrap.controllers reassignments listed",
        admin["reassignments"].to_string(),
    );
    let grow = CreatePartitionsRequest::default()
        .with_topics(vec![CreatePartitionsTopic::default()
            .with_name(topic_name(topic))
            .with_count(2)
            // No assignment, as Kafka's admin client sends it (kafka-protocol's default is an
            // empty list, which Kafka's controller refuses).
            .with_assignments(None)])
        .with_timeout_ms(30_000);
    step(
        "CreatePartitions to 2 (controller listener)",
        code_of(raw(ctl, 3, &grow), |r| {
            errors(r.results.iter().map(|t| t.error_code))
        }),
    );
    step(
        "the topic at a broker",
        settled(
            || topic_at_broker(side.broker, topic),
            |s| s == "2 partitions",
        ),
    );
    let elect = ElectLeadersRequest::default()
        .with_election_type(0)
        .with_topic_partitions(Some(vec![TopicPartitions::default()
            .with_topic(topic_name(topic))
            .with_partitions(vec![0])]))
        .with_timeout_ms(30_000);
    step(
        "ElectLeaders preferred partition 0 (controller listener)",
        code_of(raw(ctl, 2, &elect), |r| {
            let partitions: Vec<String> = r
                .replica_election_results
                .iter()
                .flat_map(|t| &t.partition_result)
                .map(|p| format!("partition {}: error {}", p.partition_id, p.error_code))
                .collect();
            format!("error {}; {}", r.error_code, partitions.join(", "))
        }),
    );
    let delete = DeleteTopicsRequest::default()
        .with_topics(vec![
            DeleteTopicState::default().with_name(Some(topic_name(topic)))
        ])
        .with_timeout_ms(30_000);
    step(
        "DeleteTopics (controller listener)",
        code_of(raw(ctl, 6, &delete), |r| {
            errors(r.responses.iter().map(|t| t.error_code))
        }),
    );
    step(
        "the topic at a broker",
        settled(
            || topic_at_broker(side.broker, topic),
            |s| s.starts_with("error"),
        ),
    );

    // 4. Delegation tokens on a PLAINTEXT controller listener.
    step(
        "CreateDelegationToken (controller listener)",
        code_of(raw(ctl, 3, &CreateDelegationTokenRequest::default()), |r| {
            format!("error {}", r.error_code)
        }),
    );
    step(
        "DescribeDelegationToken (controller listener)",
        code_of(
            raw(ctl, 3, &DescribeDelegationTokenRequest::default()),
            |r| format!("error {}", r.error_code),
        ),
    );

    // 5. Features (KIP-584): kafka-features.sh through the controller listener, each change
    //    read back from a broker's ApiVersions.
    for (command, level) in [
        (&["disable", "--feature", "share.version"][..], "none"),
        (&["upgrade", "--feature", "share.version=2"][..], "2"),
    ] {
        let ctl = ctl.to_string();
        let mut args = vec!["--bootstrap-controller", ctl.as_str()];
        args.extend_from_slice(command);
        let run = toolbox.run("kafka-features.sh", &args, None, TOOL_TIMEOUT);
        step(
            &format!(
                "kafka-features --bootstrap-controller {}",
                command.join(" ")
            ),
            format!("{}: {}", tool_outcome(&run), run.stdout.trim()),
        );
        step(
            "share.version at a broker",
            settled(
                || feature_at_broker(side.broker, "share.version"),
                |s| s == level,
            ),
        );
    }
    out
}

/// The finalized level of `feature` in a broker's ApiVersions (v4): `none`, the level, or
/// how the request failed.
fn feature_at_broker(broker: SocketAddr, feature: &str) -> String {
    code_of(
        raw(
            broker,
            4,
            &ApiVersionsRequest::default()
                .with_client_software_name(str_bytes("gregor-e2e"))
                .with_client_software_version(str_bytes("1")),
        ),
        |r| match r
            .finalized_features
            .iter()
            .find(|f| f.name.as_str() == feature)
        {
            Some(f) => f.max_version_level.to_string(),
            None => "none".to_string(),
        },
    )
}

/// Kafka's tools and admin client, and the requests themselves, on a controller-only node's
/// controller listener and on Kafka 4.4's: the same outcome at every step, and gregor's
/// changes seen at its brokers.
#[test]
fn admin_apis_on_a_controller_only_node_answer_as_on_kafka() {
    let toolbox = Toolbox::installed();
    let (peer, cluster) = thread::scope(|s| {
        let peer = s.spawn(KafkaPeer::shared);
        let cluster =
            Cluster::start_with_roles(&[Role::Combined, Role::Combined, Role::Controller], &[]);
        (peer.join().expect("the Kafka peer's thread"), cluster)
    });
    wait_for_brokers(&cluster, 2);
    let kafka = Side {
        label: "kafka",
        controller: peer.controller_addr(),
        broker: peer.addr(),
    };
    let gregor = Side {
        label: "gregor",
        controller: cluster.node(3).controller_addr,
        broker: cluster.node(1).addr,
    };
    let topic = unique_topic("controller-admin");
    let (on_kafka, on_gregor) = thread::scope(|s| {
        let on_kafka = s.spawn(|| run_side(&toolbox, &kafka, &topic));
        let on_gregor = run_side(&toolbox, &gregor, &topic);
        (on_kafka.join().expect("the Kafka side's thread"), on_gregor)
    });

    assert_eq!(on_kafka.len(), on_gregor.len(), "the same steps on both");
    let mut differences = Vec::new();
    for ((step, k), (_, g)) in on_kafka.iter().zip(&on_gregor) {
        let (differs, known) = match DIFFERENT.iter().find(|(s, _, _, _)| s == step) {
            Some((_, kafka_says, gregor_says, why)) => (
                !k.starts_with(kafka_says) || !g.starts_with(gregor_says),
                format!(
                    " (a known difference, {why}: Kafka `{kafka_says}`, gregor `{gregor_says}`)"
                ),
            ),
            None => (k != g, String::new()),
        };
        if differs {
            differences.push(format!("{step}{known}:\n    Kafka:  {k}\n    gregor: {g}"));
        }
    }
    // Equal outcomes could be equal failures: gregor's changes must have reached its brokers.
    let outcomes = |name: &str| -> Vec<&str> {
        on_gregor
            .iter()
            .filter(|(s, _)| s == name)
            .map(|(_, o)| o.as_str())
            .collect()
    };
    let described = outcomes("kafka-configs --bootstrap-server --describe users alice (a broker)");
    assert!(
        described
            .iter()
            .any(|d| d.contains("SCRAM-SHA-256=iterations=8192")
                && d.contains("producer_byte_rate=1024")),
        "gregor's broker does not show the SCRAM credential and the quota set through the \
         controller listener: {described:?}\ncluster logs:\n{}",
        cluster.logs()
    );
    assert_eq!(
        outcomes("share.version at a broker"),
        ["none", "2"],
        "share.version disabled and upgraded through gregor's controller listener, as a broker \
         saw it\ncluster logs:\n{}",
        cluster.logs()
    );
    assert_eq!(
        outcomes("the topic at a broker"),
        ["1 partitions", "2 partitions", "error 3"],
        "the topic created, grown and deleted through gregor's controller listener, as a \
         broker saw it\ncluster logs:\n{}",
        cluster.logs()
    );
    assert!(
        differences.is_empty(),
        "{} step(s) differ from Kafka 4.4:\n{}\ncluster logs:\n{}",
        differences.len(),
        differences.join("\n"),
        cluster.logs()
    );
}
