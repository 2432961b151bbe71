//! SASL on the controller listener (SASL_PLAINTEXT, SASL_SSL): the broker's side of
//! `gregor_raft::QuorumSasl`.
//!
//! ```text
//! node dialling a peer ── SASL_HANDSHAKE / SASL_AUTHENTICATE frames ──► SessionServer
//!                                                                         └─ SaslSession
//!                                       (fed SaslHandshake v0 and bare tokens, as a Kafka
//!                                        client's v0 login, so PLAIN's user_<name> check and
//!                                        its refusals are the SASL listeners' own)
//! Kafka client (kafka-metadata-quorum, AdminClient with bootstrap.controllers)
//!   └─ controller_listener.rs: a SaslSession per connection, before any other request
//! ```
//!
//! Every node dials with `sasl.mechanism.controller.protocol` as the `username` and `password`
//! of the listener's JAAS config (`BrokerConfig::controller_sasl`): PLAIN, checked against the
//! listener's `user_<name>` entries, or SCRAM-SHA-256/512 (`ScramDialer`), checked against the
//! SCRAM credentials of this node's metadata image.
//!
//! SCRAM's credentials live in the metadata log the quorum itself carries, so a node whose
//! image holds none yet (a new or wiped node) checks its peers' logins against the
//! credentials its own `--add-scram` SPECs make, as a Kafka controller checks them against
//! the bootstrap checkpoint `kafka-storage format --add-scram` wrote; once the image holds
//! any credential, the image alone decides (a credential altered or deleted later is so
//! everywhere). A node that starts without a metadata log and without an `--add-scram` SPEC
//! for its own login is refused at start, saying so: it could not check the leader that
//! dials it.

use std::path::Path;
use std::sync::{Arc, OnceLock, Weak};
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use gregor_protocol::messages::{RequestHeader, SaslHandshakeRequest};
use gregor_protocol::protocol::{Decodable, Encodable, StrBytes};
use gregor_raft::{
    MetadataQuorum, QuorumSasl, QuorumSaslClient, QuorumSaslClientExchange, QuorumSaslExchange,
    QuorumSaslServer, SaslStep,
};

use crate::config::BrokerConfig;
use crate::sasl::{Intercept, SaslSession, SaslSettings, ScramCredentials};
use crate::scram::{ScramCredential, ScramMechanism};

/// Where the started quorum goes, once it is: its image holds the SCRAM credentials the
/// nodes' logins are checked against.
pub(crate) type QuorumImageSlot = Arc<OnceLock<Weak<MetadataQuorum>>>;

/// Refuses a start that could not log in: SCRAM between the nodes on a node that has no
/// metadata log yet (`dir`, the quorum's directory, never claimed) and no `--add-scram` SPEC for
/// its own login. Called before anything is written.
pub fn check_scram_start(config: &BrokerConfig, dir: &Path) -> anyhow::Result<()> {
    let Some((_, login)) = config.controller_sasl()? else {
        return Ok(());
    };
    let Some(mechanism) = ScramMechanism::from_mechanism_name(login.mechanism.name()) else {
        return Ok(());
    };
    let own = config
        .scram_bootstrap
        .iter()
        .any(|b| b.name() == login.username && b.mechanism() == mechanism);
    // The quorum claims its directory (the `owner` file) at its first start.
    if !own && !dir.join("owner").exists() {
        anyhow::bail!(
            "sasl.mechanism.controller.protocol={name}: this node has no metadata log yet, so \
             it cannot check the SCRAM logins of the nodes that dial it until it has the \
             credentials: start it with --add-scram '{name}=[name={user},password=...]' (the \
             controller user's SPEC, as Kafka's kafka-storage format --add-scram)",
            name = mechanism.mechanism_name(),
            user = login.username
        );
    }
    Ok(())
}

/// The SASL of the quorum's connections when the controller listener is SASL_*: this node's
/// login and the listener's check. `image` is the slot the started quorum is put in.
pub(crate) fn quorum_sasl(
    config: &BrokerConfig,
    image: &QuorumImageSlot,
) -> anyhow::Result<Option<Arc<QuorumSasl>>> {
    let Some((settings, login)) = config.controller_sasl()? else {
        return Ok(None);
    };
    tracing::info!(
        mechanism = %config.controller_sasl_mechanism,
        user = %login.username,
        "the controller listener is SASL: quorum connections log in before their handshake"
    );
    let Some(mechanism) = ScramMechanism::from_mechanism_name(login.mechanism.name()) else {
        // PLAIN: checked against the listener's user_<name> entries; no SCRAM credential is
        // looked up for the nodes.
        let server = SessionServer {
            settings,
            scram: Arc::new(NoScram),
        };
        return Ok(Some(Arc::new(QuorumSasl::plain(
            login.username,
            login.password,
            Arc::new(server),
        ))));
    };
    let bootstrap: Vec<(String, ScramMechanism, ScramCredential)> = config
        .scram_bootstrap
        .iter()
        .map(|b| (b.name().to_string(), b.mechanism(), b.credential()))
        .collect();
    let server = SessionServer {
        settings,
        scram: Arc::new(NodeScram {
            image: Arc::clone(image),
            bootstrap,
        }),
    };
    Ok(Some(Arc::new(QuorumSasl::with_client(
        mechanism.mechanism_name(),
        login.username.clone(),
        Arc::new(ScramDialer(login)),
        Arc::new(server),
    ))))
}

/// SCRAM on the dialling side, with the node's login (gregor-client's exchange).
struct ScramDialer(gregor_client::SaslLogin);

impl QuorumSaslClient for ScramDialer {
    fn start(&self) -> Box<dyn QuorumSaslClientExchange> {
        let (client, first) = gregor_client::security::ScramClient::start(&self.0);
        Box::new(ScramDial {
            client,
            first: Some(first),
            sent_final: false,
        })
    }
}

struct ScramDial {
    client: gregor_client::security::ScramClient,
    first: Option<Vec<u8>>,
    sent_final: bool,
}

impl QuorumSaslClientExchange for ScramDial {
    fn first(&mut self) -> Vec<u8> {
        self.first.take().unwrap_or_default()
    }

    fn step(&mut self, from_server: &[u8]) -> Result<Option<Vec<u8>>, String> {
        if self.sent_final {
            // server-final: the server proves it holds the credential.
            self.client.verify(from_server)?;
            return Ok(None);
        }
        self.sent_final = true;
        self.client.client_final(from_server).map(Some)
    }
}

/// The credentials a node checks its peers' SCRAM logins against: its image's, or, while the
/// image holds none, its own `--add-scram` SPECs'.
struct NodeScram {
    image: QuorumImageSlot,
    bootstrap: Vec<(String, ScramMechanism, ScramCredential)>,
}

impl ScramCredentials for NodeScram {
    fn credential(&self, user: &str, mechanism: ScramMechanism) -> Option<ScramCredential> {
        let image = self
            .image
            .get()
            .and_then(Weak::upgrade)
            .map(|q| q.image().borrow().clone());
        match image {
            Some(image) if !image.scram().is_empty() => {
                image.scram().credential(user, mechanism.type_id()).cloned()
            }
            _ => self
                .bootstrap
                .iter()
                .find(|(name, m, _)| name == user && *m == mechanism)
                .map(|(_, _, c)| c.clone()),
        }
    }
}

/// Checks the peers' logins with a [`SaslSession`] per connection.
pub(crate) struct SessionServer {
    settings: Arc<SaslSettings>,
    scram: Arc<dyn ScramCredentials>,
}

impl SessionServer {
    #[cfg(test)]
    pub(crate) fn new(settings: Arc<SaslSettings>, scram: Arc<dyn ScramCredentials>) -> Self {
        SessionServer { settings, scram }
    }
}

impl QuorumSaslServer for SessionServer {
    fn start(&self, mechanism: &str) -> Result<Box<dyn QuorumSaslExchange>, String> {
        let mut session = SaslSession::new(Arc::clone(&self.settings), Arc::clone(&self.scram));
        let frame = handshake_v0(mechanism).map_err(|e| e.to_string())?;
        match session.intercept(&frame, Instant::now()) {
            Ok(Intercept::Reply(_)) => Ok(Box::new(SessionExchange(session))),
            Ok(Intercept::ReplyAndClose(_, reason) | Intercept::Close(reason)) => Err(reason),
            Ok(other) => Err(format!("unexpected SASL state: {other:?}")),
            Err(e) => Err(e.to_string()),
        }
    }
}

struct SessionExchange(SaslSession);

impl QuorumSaslExchange for SessionExchange {
    fn step(&mut self, token: &[u8]) -> SaslStep {
        match self
            .0
            .intercept(&Bytes::copy_from_slice(token), Instant::now())
        {
            // The mechanism's last word (SCRAM's server-final), size-prefixed as a bare token.
            Ok(Intercept::Authenticated(reply, login)) => SaslStep::Done {
                user: login.user,
                last: reply.get(4..).unwrap_or_default().to_vec(),
            },
            // A bare token's answer, size-prefixed.
            Ok(Intercept::Reply(reply)) => {
                SaslStep::Challenge(reply.get(4..).unwrap_or_default().to_vec())
            }
            Ok(Intercept::ReplyAndClose(_, reason) | Intercept::Close(reason)) => {
                SaslStep::Refused(reason)
            }
            Ok(other) => SaslStep::Refused(format!("unexpected SASL state: {other:?}")),
            Err(e) => SaslStep::Refused(e.to_string()),
        }
    }
}

/// A SaslHandshake v0 request (without its size prefix): after it, tokens travel bare.
fn handshake_v0(mechanism: &str) -> anyhow::Result<Bytes> {
    let mut buf = BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(crate::handlers::sasl_handshake::KEY as i16)
        .with_request_api_version(0)
        .with_correlation_id(1)
        .encode(&mut buf, 1)?;
    SaslHandshakeRequest::default()
        .with_mechanism(StrBytes::from_string(mechanism.to_string()))
        .encode(&mut buf, 0)?;
    let frame = buf.freeze();
    // Checked here, as the session decodes it.
    let mut check = frame.clone();
    RequestHeader::decode(&mut check, 1)?;
    Ok(frame)
}

/// SCRAM credentials from the metadata image the quorum applied last, for Kafka clients that
/// log in with SCRAM on the controller listener (its nodes log in with PLAIN).
pub(crate) struct QuorumScram(pub(crate) Weak<MetadataQuorum>);

impl ScramCredentials for QuorumScram {
    fn credential(&self, user: &str, mechanism: ScramMechanism) -> Option<ScramCredential> {
        let quorum = self.0.upgrade()?;
        let image = quorum.image().borrow().clone();
        image.scram().credential(user, mechanism.type_id()).cloned()
    }
}

/// No SCRAM credential for anyone.
pub(crate) struct NoScram;

impl ScramCredentials for NoScram {
    fn credential(&self, _: &str, _: ScramMechanism) -> Option<ScramCredential> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> Arc<SaslSettings> {
        let props = [
            ("sasl.enabled.mechanisms", "PLAIN,SCRAM-SHA-512"),
            (
                "plain.sasl.jaas.config",
                "org.apache.kafka.common.security.plain.PlainLoginModule required \
                 username=\"controller\" password=\"s3cret\" user_controller=\"s3cret\";",
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        Arc::new(SaslSettings::from_props(&props).expect("settings"))
    }

    fn started(s: &SessionServer, mechanism: &str) -> Box<dyn QuorumSaslExchange> {
        match s.start(mechanism) {
            Ok(x) => x,
            Err(e) => panic!("{mechanism} refused: {e}"),
        }
    }

    fn server() -> SessionServer {
        SessionServer::new(settings(), Arc::new(NoScram))
    }

    #[test]
    fn plain_logins_are_checked_against_the_user_entries() {
        let s = server();
        let mut x = started(&s, "PLAIN");
        assert_eq!(
            x.step(b"\0controller\0s3cret"),
            SaslStep::Done {
                user: "controller".into(),
                last: Vec::new(),
            }
        );
        let mut x = started(&s, "PLAIN");
        assert!(matches!(
            x.step(b"\0controller\0wrong"),
            SaslStep::Refused(r) if r.contains("Invalid username or password")
        ));
        let mut x = started(&s, "PLAIN");
        assert!(matches!(x.step(b"\0nobody\0s3cret"), SaslStep::Refused(_)));
        // Another identity than the user's: refused as Kafka's PlainSaslServer does.
        let mut x = started(&s, "PLAIN");
        assert!(matches!(
            x.step(b"admin\0controller\0s3cret"),
            SaslStep::Refused(_)
        ));
    }

    #[test]
    fn a_mechanism_the_listener_does_not_enable_is_refused() {
        let s = server();
        let e = s.start("SCRAM-SHA-256").err().expect("not enabled");
        assert!(e.contains("SCRAM-SHA-256"), "{e}");
        // SCRAM is enabled, but nobody has a credential: the first message is refused.
        let mut x = started(&s, "SCRAM-SHA-512");
        assert!(matches!(
            x.step(b"n,,n=controller,r=abcdefgh"),
            SaslStep::Refused(_)
        ));
    }

    /// SCRAM between the nodes, on a node whose image holds no credential yet: the dialling
    /// side's exchange against the listener's, checked against the node's `--add-scram`
    /// SPECs; the server's final message proves it holds the credential.
    #[test]
    fn scram_logins_are_checked_against_the_specs_while_the_image_has_none() {
        let spec = crate::scram_bootstrap::ScramBootstrap::parse(
            "SCRAM-SHA-512=[name=controller,password=s3cret]",
        )
        .expect("spec");
        let s = SessionServer::new(
            settings(),
            Arc::new(NodeScram {
                image: QuorumImageSlot::default(),
                bootstrap: vec![("controller".into(), spec.mechanism(), spec.credential())],
            }),
        );
        let login = |password: &str| {
            ScramDialer(gregor_client::SaslLogin {
                mechanism: gregor_client::SaslMechanism::ScramSha512,
                username: "controller".into(),
                password: password.into(),
            })
        };
        // Up to the client's final message: the exchanges and that message.
        let to_client_final = |password: &str| {
            let mut client = login(password).start();
            let mut server = started(&s, "SCRAM-SHA-512");
            let SaslStep::Challenge(server_first) = server.step(&client.first()) else {
                panic!("no server-first");
            };
            let client_final = client
                .step(&server_first)
                .expect("client-final")
                .expect("a token");
            (client, server, client_final)
        };
        // The right password: Done with server-final, which the dialling side checks.
        let (mut client, mut server, client_final) = to_client_final("s3cret");
        let SaslStep::Done { user, last } = server.step(&client_final) else {
            panic!("refused");
        };
        assert_eq!(user, "controller");
        assert_eq!(client.step(&last), Ok(None), "server-final checks out");
        // A forged server-final is refused by the dialling side.
        let (mut client, _, _) = to_client_final("s3cret");
        assert!(client.step(b"v=AAAA").is_err());
        // A wrong password is refused by the listener.
        let (_, mut server, client_final) = to_client_final("wrong");
        assert!(matches!(server.step(&client_final), SaslStep::Refused(_)));
    }

    use crate::controller_listener::tests::Silent;

    /// ApiVersions v0 over `stream`, after the login: the api keys answered.
    async fn api_keys(stream: &mut gregor_raft::QuorumStream) -> Vec<i16> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let request = [0u8, 18, 0, 0, 0, 0, 0, 9, 0xff, 0xff];
        let mut framed = (request.len() as u32).to_be_bytes().to_vec();
        framed.extend_from_slice(&request);
        stream.write_all(&framed).await.expect("write");
        stream.flush().await.expect("flush");
        let size = stream.read_u32().await.expect("answered");
        let mut body = vec![0; size as usize];
        stream.read_exact(&mut body).await.expect("read");
        // correlation id, error code, count, then (key, min, max) triples.
        assert_eq!(&body[..4], &9i32.to_be_bytes());
        assert_eq!(&body[4..6], &[0, 0], "no error");
        body[10..]
            .chunks(6)
            .map(|c| i16::from_be_bytes([c[0], c[1]]))
            .collect()
    }

    /// DescribeCluster v1 over `stream`: the answer, empty when the connection was closed.
    async fn describe_cluster(stream: &mut gregor_raft::QuorumStream) -> Vec<u8> {
        use gregor_protocol::messages::DescribeClusterRequest;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut buf = BytesMut::new();
        RequestHeader::default()
            .with_request_api_key(60)
            .with_request_api_version(1)
            .with_correlation_id(3)
            .encode(&mut buf, 2)
            .expect("header");
        DescribeClusterRequest::default()
            .with_endpoint_type(2)
            .encode(&mut buf, 1)
            .expect("body");
        let mut framed = (buf.len() as u32).to_be_bytes().to_vec();
        framed.extend_from_slice(&buf);
        stream.write_all(&framed).await.expect("write");
        stream.flush().await.expect("flush");
        let Ok(size) = stream.read_u32().await else {
            return Vec::new();
        };
        let mut body = vec![0; size as usize];
        stream.read_exact(&mut body).await.expect("read");
        body
    }

    /// A node dials a peer's SASL controller listener for Kafka requests (a forwarded
    /// DescribeQuorum) logged in with its own PLAIN login; a wrong password is refused.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn connect_kafka_logs_in_on_a_sasl_controller_listener() {
        let dir = tempfile::tempdir().expect("tempdir");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        drop(listener);
        let voters = [(1u64, addr.to_string())].into_iter().collect();
        let mut cfg = gregor_raft::QuorumConfig::new(
            1,
            "sasl-cluster",
            dir.path(),
            addr,
            addr.to_string(),
            voters,
        );
        let login = |password: &str| {
            Arc::new(QuorumSasl::plain(
                "controller",
                password,
                Arc::new(SessionServer::new(settings(), Arc::new(NoScram))),
            ))
        };
        cfg.sasl = Some(login("s3cret"));
        let quorum = Arc::new(
            MetadataQuorum::start(cfg, Arc::new(Silent))
                .await
                .expect("starts"),
        );
        crate::controller_listener::ControllerApis::install(
            &quorum,
            "sasl-cluster".into(),
            Arc::new(crate::clock::SystemClock),
            Arc::new(crate::admin_node::ControllerNode::new(
                Arc::default(),
                &quorum,
                Arc::default(),
                Arc::default(),
            )),
            Arc::default(),
            Some(settings()),
        );
        let mut stream = quorum
            .connect_kafka(&addr.to_string())
            .await
            .expect("logged in");
        let keys = api_keys(&mut stream).await;
        // The SASL APIs are advertised beside the controller listener's others.
        for key in [18, 17, 36, 60, 55] {
            assert!(keys.contains(&key), "api key {key} in {keys:?}");
        }
        // A wrong password: the connection is closed after the token.
        let mut tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let e = login("wrong")
            .kafka_login(&mut tcp)
            .await
            .expect_err("refused");
        assert!(e.to_string().contains("refused"), "{e}");
        // Logged in, DescribeCluster is answered; without a login the connection is closed.
        assert!(!describe_cluster(&mut stream).await.is_empty());
        let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let mut stream = gregor_raft::QuorumStream::Plain(tcp);
        assert!(
            describe_cluster(&mut stream).await.is_empty(),
            "answered before authentication"
        );
        match Arc::try_unwrap(quorum) {
            Ok(q) => q.shutdown().await.expect("shutdown"),
            Err(_) => panic!("the quorum is still shared"),
        }
    }
}
