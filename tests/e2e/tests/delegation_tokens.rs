//! Delegation tokens (KIP-48, kept in the metadata log as KIP-900 does) with Kafka's own tools
//! and Java client.
//!
//! ```text
//!   kafka-configs (PLAINTEXT) ─► SCRAM-SHA-512 users admin, bob, carol
//!   kafka-delegation-tokens --command-config admin.properties (SASL_PLAINTEXT, SCRAM)
//!       --create --renewer-principal User:bob ─► token id + HMAC
//!       --describe (admin, bob: the token; carol: none) / --renew (bob) / --expire (admin)
//!   Java client: ScramLoginModule username=<token id> password=<HMAC> tokenauth="true"
//!       ─► produces and reads back as User:admin; may not create a token itself
//!       ─► refused once the token is expired
//! ```
//!
//! - `kafka_tools_manage_a_token_and_the_java_client_logs_in_with_it`: one broker, the whole
//!   tool session and the refusals Kafka gives (PLAINTEXT, a stranger's renewal, a token
//!   expired).
//! - `a_token_made_through_one_broker_logs_in_on_another`: three combined nodes whose client
//!   listener is SASL_PLAINTEXT; the token is made through node 1 and used on node 3, renewed
//!   through node 2, and expired; every node then refuses it.
//!
//! Run: `GREGOR_TOOLBOX=... cargo test -p gregor-e2e --test delegation_tokens` (after
//! `cargo build -p gregor-cli`).

use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use gregor_e2e::broker::wait_accepting;
use gregor_e2e::cluster::{Cluster, Role};
use gregor_e2e::kafka_tools::Toolbox;
use gregor_e2e::{unique_topic, Broker};
use serde_json::Value;

/// How long one run of a Kafka tool or of the Java client may take.
const JAVA_TIMEOUT: Duration = Duration::from_secs(180);
/// How long a SASL listener may take to accept connections.
const LISTEN_TIMEOUT: Duration = Duration::from_secs(20);
/// The secret every node signs tokens with.
const SECRET: &str = "e2e-delegation-token-secret";
/// The SCRAM users and their passwords.
const USERS: [(&str, &str); 3] = [
    ("admin", "admin-secret"),
    ("bob", "bob-secret"),
    ("carol", "carol-secret"),
];

/// `kafka-delegation-tokens.sh` is `kafka-run-class.sh` with this class.
const DELEGATION_TOKEN_COMMAND: &str = "org.apache.kafka.tools.DelegationTokenCommand";

/// A token as `kafka-delegation-tokens --create` prints it.
#[derive(Debug, Clone)]
struct Token {
    id: String,
    hmac: String,
    owner: String,
    renewers: String,
}

/// Writes `<user>.properties` for each SCRAM user in `dir`: SASL_PLAINTEXT, SCRAM-SHA-512.
fn write_client_properties(dir: &Path) {
    for (user, password) in USERS {
        let text = format!(
            "security.protocol=SASL_PLAINTEXT\nsasl.mechanism=SCRAM-SHA-512\n\
             sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required \
             username=\"{user}\" password=\"{password}\";\n"
        );
        std::fs::write(dir.join(format!("{user}.properties")), text).expect("write properties");
    }
    std::fs::write(
        dir.join("plaintext.properties"),
        "security.protocol=PLAINTEXT\n",
    )
    .expect("write properties");
}

/// Runs `kafka-delegation-tokens.sh --bootstrap-server <at> --command-config <user>.properties
/// args...`: Ok(stdout) or Err(the whole transcript).
fn tokens_tool(
    toolbox: &Toolbox,
    dir: &Path,
    at: &str,
    user: &str,
    args: &[&str],
) -> Result<String, String> {
    tokens_tool_with(toolbox, &dir.join(format!("{user}.properties")), at, args)
}

/// [`tokens_tool`] with the client properties at `config`.
fn tokens_tool_with(
    toolbox: &Toolbox,
    config: &Path,
    at: &str,
    args: &[&str],
) -> Result<String, String> {
    let config = config.display().to_string();
    let mut all = vec![
        DELEGATION_TOKEN_COMMAND,
        "--bootstrap-server",
        at,
        "--command-config",
        config.as_str(),
    ];
    all.extend_from_slice(args);
    let run = toolbox.run("kafka-run-class.sh", &all, None, JAVA_TIMEOUT);
    match run.ok() {
        Ok(out) => Ok(out.to_string()),
        Err(_) => Err(run.transcript()),
    }
}

/// The token of a `--create` output.
fn parse_created(out: &str) -> Token {
    let id = out
        .lines()
        .find_map(|l| l.split("Created delegation token with tokenId : ").nth(1))
        .unwrap_or_else(|| panic!("no token id in:\n{out}"))
        .trim()
        .to_string();
    let row: Vec<&str> = out
        .lines()
        .find(|l| l.starts_with(&id))
        .unwrap_or_else(|| panic!("no row for {id} in:\n{out}"))
        .split_whitespace()
        .collect();
    Token {
        id: row[0].to_string(),
        hmac: row[1].to_string(),
        owner: row[2].to_string(),
        renewers: row[4].to_string(),
    }
}

/// The token ids a `--describe` output lists.
fn described(out: &str) -> Vec<String> {
    let total = out
        .lines()
        .find_map(|l| l.split("Total number of tokens : ").nth(1))
        .and_then(|n| n.trim().parse::<usize>().ok())
        .unwrap_or_else(|| panic!("no token count in:\n{out}"));
    let mut rows = out.lines().skip_while(|l| !l.starts_with("TOKENID"));
    rows.next();
    let ids: Vec<String> = rows
        .filter(|l| !l.trim().is_empty())
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect();
    assert_eq!(ids.len(), total, "{out}");
    ids
}

/// Runs the Java client with the token: `ok` (produce, read back, try to create a token) or
/// `refused`.
fn token_client(toolbox: &Toolbox, at: &str, topic: &str, token: &Token, mode: &str) -> Value {
    let line = toolbox.run_java_source(
        "TokenClient.java",
        &[at, topic, "50", &token.id, &token.hmac, mode],
        JAVA_TIMEOUT,
    );
    serde_json::from_str(&line).unwrap_or_else(|e| panic!("{line}: {e}"))
}

/// Adds every user's SCRAM-SHA-512 credential with kafka-configs through `at` (PLAINTEXT).
fn add_scram_users(toolbox: &Toolbox, at: &str) {
    for (user, password) in USERS {
        let config = format!("SCRAM-SHA-512=[iterations=4096,password={password}]");
        let args = vec![
            "--bootstrap-server",
            at,
            "--alter",
            "--add-config",
            &config,
            "--entity-type",
            "users",
            "--entity-name",
            user,
        ];
        let run = toolbox.run("kafka-configs.sh", &args, None, JAVA_TIMEOUT);
        if let Err(e) = run.ok() {
            panic!("kafka-configs for {user}: {e}\n{}", run.transcript());
        }
    }
}

/// The settings both brokers (gregor's and Kafka's) run the tool session with: SCRAM-SHA-512
/// on the SASL listener, the token secret, and the StandardAuthorizer, under which
/// DescribeDelegationToken hides others' tokens from carol (no ACLs); admin and the PLAINTEXT
/// listener's ANONYMOUS (kafka-configs, and Kafka's own inter-broker traffic) may do all.
fn session_settings() -> Vec<String> {
    vec![
        "sasl.enabled.mechanisms=SCRAM-SHA-512".to_string(),
        format!("delegation.token.secret.key={SECRET}"),
        "num.partitions=1".to_string(),
        "authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer".to_string(),
        "super.users=User:admin;User:ANONYMOUS".to_string(),
    ]
}

#[test]
fn kafka_tools_manage_a_token_and_the_java_client_logs_in_with_it() {
    let sasl = gregor_e2e::ports::reserve();
    let mut sets = vec![format!(
        "listeners=PLAINTEXT://127.0.0.1:0,SASL_PLAINTEXT://{sasl}"
    )];
    sets.extend(session_settings());
    let sets: Vec<&str> = sets.iter().map(String::as_str).collect();
    let broker = Broker::start_with(&sets);
    wait_accepting(sasl, LISTEN_TIMEOUT, || broker.logs());
    tool_session(&broker.bootstrap(), &sasl.to_string(), &|| broker.logs());
}

/// The same session against Apache Kafka 4.4 (KRaft, one node, the secret on its controller
/// too): the same outcomes, which is what the gregor test above holds gregor to.
#[test]
fn the_same_tool_session_on_apache_kafka() {
    let sasl = gregor_e2e::ports::reserve();
    let mut extra = vec![
        format!(
            "listeners=PLAINTEXT://127.0.0.1:{{port}},CONTROLLER://127.0.0.1:{{controller_port}},\
             SASL_PLAINTEXT://{sasl}"
        ),
        format!("advertised.listeners=PLAINTEXT://127.0.0.1:{{port}},SASL_PLAINTEXT://{sasl}"),
        "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,\
         SASL_PLAINTEXT:SASL_PLAINTEXT"
            .to_string(),
        // Kafka wants a JAAS entry for the listener's mechanism, even an empty one.
        "listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config=\
         org.apache.kafka.common.security.scram.ScramLoginModule required;"
            .to_string(),
    ];
    extra.extend(session_settings());
    let extra: Vec<&str> = extra.iter().map(String::as_str).collect();
    let kafka = gregor_e2e::kafka_peer::KafkaPeer::start_with(&extra);
    wait_accepting(sasl, LISTEN_TIMEOUT, || kafka.log_tail(60));
    tool_session(&kafka.bootstrap(), &sasl.to_string(), &|| {
        kafka.log_tail(60)
    });
}

/// kafka-delegation-tokens and the Java client against a broker whose PLAINTEXT listener is
/// `plaintext` and whose SASL_PLAINTEXT (SCRAM-SHA-512) one is `at`.
fn tool_session(plaintext: &str, at: &str, logs: &dyn Fn() -> String) {
    let toolbox = Toolbox::installed();
    add_scram_users(&toolbox, plaintext);
    let dir = tempfile::tempdir().expect("temp dir");
    write_client_properties(dir.path());
    let tool = |user: &str, args: &[&str]| tokens_tool(&toolbox, dir.path(), at, user, args);

    // PLAINTEXT may not manage tokens (DELEGATION_TOKEN_REQUEST_NOT_ALLOWED).
    let refused = tokens_tool(
        &toolbox,
        dir.path(),
        plaintext,
        "plaintext",
        &["--create", "--max-life-time-period", "-1"],
    )
    .expect_err("a token over PLAINTEXT");
    assert!(
        refused.contains("UnsupportedByAuthenticationException"),
        "{refused}\nlog:\n{}",
        logs()
    );

    let out = tool(
        "admin",
        &[
            "--create",
            "--max-life-time-period",
            "-1",
            "--renewer-principal",
            "User:bob",
        ],
    )
    .unwrap_or_else(|e| panic!("{e}\nlog:\n{}", logs()));
    let token = parse_created(&out);
    eprintln!("created {token:?}");
    assert_eq!(token.owner, "User:admin");
    assert!(token.renewers.contains("User:bob"), "{out}");

    // The owner and the renewer see it; another user does not. Without --owner-principal the
    // tool sends an empty owner list, which Kafka answers with no tokens (and gregor too).
    let out = tool("admin", &["--describe"]).unwrap_or_else(|e| panic!("{e}"));
    assert!(described(&out).is_empty(), "{out}");
    for (user, expected) in [
        ("admin", vec![token.id.clone()]),
        ("bob", vec![token.id.clone()]),
        ("carol", vec![]),
    ] {
        let out = tool(user, &["--describe", "--owner-principal", "User:admin"])
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(described(&out), expected, "{user}: {out}");
        if user == "admin" {
            assert!(out.contains(&token.hmac), "the HMAC is shown: {out}");
        }
    }

    // The token logs in as its owner, produces and reads back; it may not make tokens.
    let topic = unique_topic("token");
    let ok = token_client(&toolbox, at, &topic, &token, "ok");
    assert_eq!(
        (ok["delivered"].as_u64(), ok["read"].as_u64()),
        (Some(50), Some(50)),
        "{ok}"
    );
    assert_eq!(
        ok["token_create"].as_str(),
        Some("UnsupportedByAuthenticationException"),
        "{ok}"
    );

    // Renewal: a stranger is refused, the renewer may.
    let refused = tool(
        "carol",
        &[
            "--renew",
            "--hmac",
            &token.hmac,
            "--renew-time-period",
            "3600000",
        ],
    )
    .expect_err("carol is no renewer");
    assert!(
        refused.contains("DelegationTokenOwnerMismatchException"),
        "{refused}"
    );
    let out = tool(
        "bob",
        &[
            "--renew",
            "--hmac",
            &token.hmac,
            "--renew-time-period",
            "3600000",
        ],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(out.contains("Completed renew operation"), "{out}");

    // Expired at once by its owner: gone, and no longer logs in.
    let out = tool(
        "admin",
        &[
            "--expire",
            "--hmac",
            &token.hmac,
            "--expiry-time-period",
            "-1",
        ],
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(out.contains("Completed expire operation"), "{out}");
    let out = tool("admin", &["--describe", "--owner-principal", "User:admin"])
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(described(&out).is_empty(), "{out}");
    let refused = token_client(&toolbox, at, &topic, &token, "refused");
    assert_eq!(
        refused["refused"]["exception"].as_str(),
        Some("SaslAuthenticationException"),
        "{refused}\nlog:\n{}",
        logs()
    );
    let refused = tool(
        "bob",
        &[
            "--renew",
            "--hmac",
            &token.hmac,
            "--renew-time-period",
            "1000",
        ],
    )
    .expect_err("the token is gone");
    assert!(
        refused.contains("DelegationTokenNotFoundException"),
        "{refused}"
    );
}

#[test]
fn a_token_made_through_one_broker_logs_in_on_another() {
    let toolbox = Toolbox::installed();
    let plain_jaas = "org.apache.kafka.common.security.plain.PlainLoginModule required \
                      username=\"broker\" password=\"broker-secret\" \
                      user_broker=\"broker-secret\" user_admin=\"admin-secret\";";
    let sets = [
        "listeners=SASL_PLAINTEXT://127.0.0.1:0".to_string(),
        "security.inter.broker.protocol=SASL_PLAINTEXT".to_string(),
        "sasl.enabled.mechanisms=PLAIN,SCRAM-SHA-512".to_string(),
        "sasl.mechanism.inter.broker.protocol=PLAIN".to_string(),
        format!("listener.name.sasl_plaintext.plain.sasl.jaas.config={plain_jaas}"),
        format!("delegation.token.secret.key={SECRET}"),
        "num.partitions=1".to_string(),
        "default.replication.factor=3".to_string(),
        "offsets.topic.replication.factor=3".to_string(),
        // The active controller's expiry check, often enough to watch it.
        "delegation.token.expiry.check.interval.ms=1000".to_string(),
    ];
    let sets: Vec<&str> = sets.iter().map(String::as_str).collect();
    let cluster = Cluster::start_with_roles(&[Role::Combined; 3], &sets);
    let addr = |id: i32| cluster.node(id).addr.to_string();
    let dir = tempfile::tempdir().expect("temp dir");
    // admin logs in with PLAIN (the JAAS users); SCRAM serves the token.
    let admin = dir.path().join("admin-plain.properties");
    std::fs::write(
        &admin,
        "security.protocol=SASL_PLAINTEXT\nsasl.mechanism=PLAIN\n\
         sasl.jaas.config=org.apache.kafka.common.security.plain.PlainLoginModule required \
         username=\"admin\" password=\"admin-secret\";\n",
    )
    .expect("write properties");
    let tool = |at: &str, args: &[&str]| {
        tokens_tool_with(&toolbox, &admin, at, args)
            .unwrap_or_else(|transcript| panic!("{transcript}\nlogs:\n{}", cluster.logs()))
    };
    let token = parse_created(&tool(
        &addr(1),
        &["--create", "--max-life-time-period", "-1"],
    ));
    assert_eq!(token.owner, "User:admin");
    // Made through node 1, described by node 2, used on node 3.
    assert_eq!(
        described(&tool(
            &addr(2),
            &["--describe", "--owner-principal", "User:admin"]
        )),
        vec![token.id.clone()]
    );
    let topic = unique_topic("token-cluster");
    let ok = token_client(&toolbox, &addr(3), &topic, &token, "ok");
    assert_eq!(
        (ok["delivered"].as_u64(), ok["read"].as_u64()),
        (Some(50), Some(50)),
        "{ok}"
    );
    let out = tool(
        &addr(2),
        &[
            "--renew",
            "--hmac",
            &token.hmac,
            "--renew-time-period",
            "600000",
        ],
    );
    assert!(out.contains("Completed renew operation"), "{out}");
    let out = tool(
        &addr(3),
        &[
            "--expire",
            "--hmac",
            &token.hmac,
            "--expiry-time-period",
            "-1",
        ],
    );
    assert!(out.contains("Completed expire operation"), "{out}");
    // Every node applies the removal: none lets the token in.
    for id in [1, 2, 3] {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let out = tool(
                &addr(id),
                &["--describe", "--owner-principal", "User:admin"],
            );
            if described(&out).is_empty() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "node {id} still shows the token: {out}"
            );
            thread::sleep(Duration::from_millis(500));
        }
    }
    let refused = token_client(&toolbox, &addr(1), &topic, &token, "refused");
    assert_eq!(
        refused["refused"]["exception"].as_str(),
        Some("SaslAuthenticationException"),
        "{refused}"
    );

    // A token whose expiry comes in two seconds is refused once past it, and the active
    // controller's expiry check (every second here) removes it from every node.
    let short = parse_created(&tool(
        &addr(2),
        &["--create", "--max-life-time-period", "-1"],
    ));
    let out = tool(
        &addr(1),
        &[
            "--expire",
            "--hmac",
            &short.hmac,
            "--expiry-time-period",
            "2000",
        ],
    );
    assert!(out.contains("Completed expire operation"), "{out}");
    let deadline = Instant::now() + Duration::from_secs(30);
    for id in [3, 2, 1] {
        loop {
            let out = tool(
                &addr(id),
                &["--describe", "--owner-principal", "User:admin"],
            );
            if !described(&out).contains(&short.id) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "node {id} still shows the expired token: {out}\nlogs:\n{}",
                cluster.logs()
            );
            thread::sleep(Duration::from_millis(500));
        }
    }
    assert!(
        cluster.logs().contains("expired delegation tokens removed"),
        "the controller's expiry check removed it"
    );
    let refused = token_client(&toolbox, &addr(3), &topic, &short, "refused");
    assert_eq!(
        refused["refused"]["exception"].as_str(),
        Some("SaslAuthenticationException"),
        "{refused}"
    );
}
