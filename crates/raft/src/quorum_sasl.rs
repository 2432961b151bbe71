//! SASL on the controller listener (SASL_PLAINTEXT or SASL_SSL): a quorum connection logs in
//! before its HANDSHAKE, and a node dialling a peer's controller listener for Kafka requests
//! (a forwarded DescribeQuorum) logs in as a Kafka client would.
//!
//! ```text
//! client (dialling node)                   server (controller listener)
//!   SASL_HANDSHAKE  mechanism      ─────►  OK | ERROR reason (mechanism not enabled)
//!   SASL_AUTHENTICATE  token       ─────►  CHALLENGE bytes (another token follows)
//!                                  ◄─────  OK (logged in) | ERROR reason (refused, closed)
//!   HANDSHAKE ... as without SASL
//! ```
//!
//! The two frames carry Kafka's SaslHandshake and SaslAuthenticate contents (the mechanism's
//! name, the mechanism's own bytes); the server checks them with a [`QuorumSaslServer`], which
//! the broker backs with the same SASL session its SASL listeners run. A node dials with the
//! mechanism `sasl.mechanism.controller.protocol` names: this crate speaks PLAIN
//! (`\0username\0password`, RFC 4616) itself, and any mechanism with challenges (SCRAM) through
//! a [`QuorumSaslClient`] the broker gives it. The server's last word (SCRAM's server-final
//! message, which proves it holds the credential) travels in the OK frame and is checked.

use std::collections::HashSet;
use std::io;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// What one step of the server's exchange decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SaslStep {
    /// Send these bytes to the client and wait for its next token.
    Challenge(Vec<u8>),
    /// The client logged in as this user; `last` is the mechanism's final message to it (empty
    /// for PLAIN; SCRAM's server-final).
    Done { user: String, last: Vec<u8> },
    /// Authentication failed, for this reason (sent to the client, logged).
    Refused(String),
}

/// The server side: checks the logins of the nodes that dial this one.
pub trait QuorumSaslServer: Send + Sync + 'static {
    /// Starts an exchange with `mechanism`, or refuses it (not enabled on the listener).
    fn start(&self, mechanism: &str) -> Result<Box<dyn QuorumSaslExchange>, String>;
}

/// One connection's exchange on the server side.
pub trait QuorumSaslExchange: Send {
    /// Takes the client's next token.
    fn step(&mut self, token: &[u8]) -> SaslStep;
}

/// The dialling side of a mechanism: one exchange per login.
pub trait QuorumSaslClient: Send + Sync + 'static {
    fn start(&self) -> Box<dyn QuorumSaslClientExchange>;
}

/// One login's exchange on the dialling side.
pub trait QuorumSaslClientExchange: Send {
    /// The first token.
    fn first(&mut self) -> Vec<u8>;
    /// Takes the server's next message: the token to answer it with, `None` when this was the
    /// server's last word and it checks out, or why the login must stop.
    fn step(&mut self, from_server: &[u8]) -> Result<Option<Vec<u8>>, String>;
}

/// PLAIN's dialling side: one token, and an empty last word.
struct PlainClient {
    username: String,
    password: String,
}

impl QuorumSaslClient for PlainClient {
    fn start(&self) -> Box<dyn QuorumSaslClientExchange> {
        let mut token = Vec::with_capacity(self.username.len() + self.password.len() + 2);
        token.push(0);
        token.extend_from_slice(self.username.as_bytes());
        token.push(0);
        token.extend_from_slice(self.password.as_bytes());
        Box::new(PlainExchange(Some(token)))
    }
}

struct PlainExchange(Option<Vec<u8>>);

impl QuorumSaslClientExchange for PlainExchange {
    fn first(&mut self) -> Vec<u8> {
        self.0.take().unwrap_or_default()
    }

    fn step(&mut self, _: &[u8]) -> Result<Option<Vec<u8>>, String> {
        Ok(None)
    }
}

/// SASL on the controller listener: the login this node dials its peers with, and the check
/// of the peers that dial it.
#[derive(Clone)]
pub struct QuorumSasl {
    /// `sasl.mechanism.controller.protocol`.
    pub mechanism: String,
    /// This node's login (the JAAS config's `username`).
    pub username: String,
    client: Arc<dyn QuorumSaslClient>,
    /// The listener's side.
    pub server: Arc<dyn QuorumSaslServer>,
    /// Refusals already logged, by peer address and reason: each is logged once.
    refusals: Arc<Mutex<HashSet<(IpAddr, String)>>>,
}

impl std::fmt::Debug for QuorumSasl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuorumSasl")
            .field("mechanism", &self.mechanism)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// The mechanism this crate can dial with.
pub const PLAIN: &str = "PLAIN";

impl QuorumSasl {
    /// PLAIN with `username` and `password` on the dialling side, `server` on the listener's.
    pub fn plain(
        username: impl Into<String>,
        password: impl Into<String>,
        server: Arc<dyn QuorumSaslServer>,
    ) -> QuorumSasl {
        let username = username.into();
        QuorumSasl::with_client(
            PLAIN,
            username.clone(),
            Arc::new(PlainClient {
                username,
                password: password.into(),
            }),
            server,
        )
    }

    /// `mechanism` as `username`, spoken by `client` on the dialling side (SCRAM), `server` on
    /// the listener's.
    pub fn with_client(
        mechanism: impl Into<String>,
        username: impl Into<String>,
        client: Arc<dyn QuorumSaslClient>,
        server: Arc<dyn QuorumSaslServer>,
    ) -> QuorumSasl {
        QuorumSasl {
            mechanism: mechanism.into(),
            username: username.into(),
            client,
            server,
            refusals: Default::default(),
        }
    }

    /// A new login's exchange on the dialling side.
    pub(crate) fn start_login(&self) -> Box<dyn QuorumSaslClientExchange> {
        self.client.start()
    }

    /// Whether a refusal of `peer` for `reason` is new (to be logged at INFO); later ones are
    /// logged at debug.
    pub(crate) fn first_refusal(&self, peer: IpAddr, reason: &str) -> bool {
        let mut seen = self.refusals.lock().unwrap_or_else(|p| p.into_inner());
        // Bounded: past this many distinct pairs every refusal is logged again.
        if seen.len() >= 4096 {
            seen.clear();
        }
        seen.insert((peer, reason.to_string()))
    }

    /// Logs in on a Kafka connection (a peer's controller listener dialled for Kafka
    /// requests), as a Kafka client does with SaslHandshake v0 and bare tokens: Kafka's
    /// framing. A refusal closes the connection (Kafka's way for v0) and is an error.
    pub async fn kafka_login<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        stream: &mut S,
    ) -> io::Result<()> {
        const SASL_HANDSHAKE: i16 = 17;
        let refused = |why: String| io::Error::new(io::ErrorKind::PermissionDenied, why);
        let mut req = Vec::new();
        req.extend_from_slice(&SASL_HANDSHAKE.to_be_bytes());
        req.extend_from_slice(&0i16.to_be_bytes());
        req.extend_from_slice(&1i32.to_be_bytes());
        let client_id = b"gregor-controller";
        req.extend_from_slice(&(client_id.len() as i16).to_be_bytes());
        req.extend_from_slice(client_id);
        req.extend_from_slice(&(self.mechanism.len() as i16).to_be_bytes());
        req.extend_from_slice(self.mechanism.as_bytes());
        write_sized(stream, &req).await?;
        let reply = read_sized(stream).await?;
        // correlation id (4) then the error code (2).
        if reply.len() < 6 {
            return Err(refused("a short SaslHandshake answer".to_string()));
        }
        let code = i16::from_be_bytes([reply[4], reply[5]]);
        if code != 0 {
            return Err(refused(format!(
                "the controller listener does not enable {} (error code {code})",
                self.mechanism
            )));
        }
        let mut exchange = self.start_login();
        let mut token = exchange.first();
        loop {
            write_sized(stream, &token).await?;
            let answer = match read_sized(stream).await {
                Ok(answer) => answer,
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                    return Err(refused(format!(
                        "the controller listener refused this node's {} login as {}",
                        self.mechanism, self.username
                    )))
                }
                Err(e) => return Err(e),
            };
            match exchange.step(&answer).map_err(refused)? {
                Some(next) => token = next,
                None => return Ok(()),
            }
        }
    }
}

async fn write_sized<S: AsyncWrite + Unpin>(stream: &mut S, body: &[u8]) -> io::Result<()> {
    let size = u32::try_from(body.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "frame too large"))?;
    let mut buf = Vec::with_capacity(body.len() + 4);
    buf.extend_from_slice(&size.to_be_bytes());
    buf.extend_from_slice(body);
    stream.write_all(&buf).await?;
    stream.flush().await
}

async fn read_sized<S: AsyncRead + Unpin>(stream: &mut S) -> io::Result<Vec<u8>> {
    let size = stream.read_u32().await? as usize;
    if size > 1 << 20 {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("a {size}-byte SASL answer"),
        ));
    }
    let mut body = vec![0; size];
    stream.read_exact(&mut body).await?;
    Ok(body)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Duration;

    use super::*;
    use crate::network::{Connection, Hello, TransportError};
    use crate::tests::{elect_commit_and_call, topic, topic_count, wait_for, wait_leader, Trio};
    use crate::MetadataQuorum;

    /// PLAIN's server side over a fixed user list, as the broker's `user_<name>` entries.
    struct Users(BTreeMap<String, String>);

    struct PlainCheck(BTreeMap<String, String>);

    impl QuorumSaslServer for Users {
        fn start(&self, mechanism: &str) -> Result<Box<dyn QuorumSaslExchange>, String> {
            if mechanism != PLAIN {
                return Err(format!("Unsupported SASL mechanism {mechanism}"));
            }
            Ok(Box::new(PlainCheck(self.0.clone())))
        }
    }

    impl QuorumSaslExchange for PlainCheck {
        fn step(&mut self, token: &[u8]) -> SaslStep {
            let parts: Vec<&[u8]> = token.split(|&b| b == 0).collect();
            let [_, user, password] = parts.as_slice() else {
                return SaslStep::Refused("a malformed PLAIN token".into());
            };
            let user = String::from_utf8_lossy(user).into_owned();
            match self.0.get(&user) {
                Some(p) if p.as_bytes() == *password => SaslStep::Done {
                    user,
                    last: Vec::new(),
                },
                _ => {
                    SaslStep::Refused("Authentication failed: Invalid username or password".into())
                }
            }
        }
    }

    fn server() -> Arc<dyn QuorumSaslServer> {
        Arc::new(Users(
            [("controller".to_string(), "controller-secret".to_string())]
                .into_iter()
                .collect(),
        ))
    }

    fn login(password: &str) -> Arc<QuorumSasl> {
        Arc::new(QuorumSasl::plain("controller", password, server()))
    }

    fn hello(node_id: u64, voters: &Trio) -> Hello {
        let cfg = voters.cfg(1);
        Hello {
            cluster_id: cfg.cluster_id.clone(),
            node_id,
            voters: cfg.voters.keys().copied().collect(),
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn three_voters_elect_and_commit_with_sasl() {
        let trio = Trio::new();
        let mut nodes = Vec::new();
        for id in 1..=3 {
            let mut cfg = trio.cfg(id);
            cfg.sasl = Some(login("controller-secret"));
            nodes.push(
                MetadataQuorum::start(cfg, Arc::new(crate::tests::Echo(id)))
                    .await
                    .expect("starts"),
            );
        }
        // Raft and a follower's controller request, over logged-in connections.
        elect_commit_and_call(&nodes, "over logged-in connections").await;
        for n in nodes {
            n.shutdown().await.expect("shutdown");
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_peer_with_a_wrong_password_is_refused_and_the_quorum_works_without_it() {
        let trio = Trio::new();
        let mut nodes = Vec::new();
        for id in 1..=3 {
            let mut cfg = trio.cfg(id);
            // Node 3 has the wrong password: every node it dials refuses it.
            cfg.sasl = Some(login(if id == 3 {
                "not-the-password"
            } else {
                "controller-secret"
            }));
            nodes.push(
                MetadataQuorum::start(cfg, Arc::new(crate::tests::Echo(id)))
                    .await
                    .expect("starts"),
            );
        }
        let good: Vec<&MetadataQuorum> = nodes.iter().take(2).collect();
        let leader = wait_leader(&good).await;
        assert_ne!(leader, 3);
        nodes[(leader - 1) as usize]
            .propose(topic(1))
            .await
            .expect("committed by the two that log in");
        wait_for(
            "nodes 1 and 2 apply the topic",
            Duration::from_secs(5),
            || good.iter().all(|n| topic_count(&n.image().borrow()) == 1),
        )
        .await;
        // Node 3 cannot ask anything of the leader: its controller requests never get through.
        let r = nodes[2]
            .call_controller(bytes::Bytes::from_static(b"hi"), Duration::from_millis(800))
            .await;
        assert!(r.is_err(), "node 3 reached the leader: {r:?}");

        let t = Duration::from_secs(5);
        let port_of = |id: u64| trio.cfg(id).advertised.clone();
        let at = port_of(leader);
        // The wrong password, by name.
        let r = Connection::connect_secured(
            &at,
            &hello(3, &trio),
            Some(leader),
            t,
            None,
            Some(&login("not-the-password")),
        )
        .await;
        assert!(
            matches!(&r, Err(TransportError::Refused { reason, .. })
                if reason.contains("Invalid username or password")),
            "{:?}",
            r.err()
        );
        // No login at all: refused before the handshake, naming the setting.
        let r =
            Connection::connect_secured(&at, &hello(3, &trio), Some(leader), t, None, None).await;
        assert!(
            matches!(&r, Err(TransportError::Refused { reason, .. })
                if reason.contains("sasl.mechanism.controller.protocol")),
            "{:?}",
            r.err()
        );
        // Another mechanism than the listener's: refused.
        let mut scram = QuorumSasl::plain("controller", "controller-secret", server());
        scram.mechanism = "SCRAM-SHA-512".into();
        let r =
            Connection::connect_secured(&at, &hello(3, &trio), Some(leader), t, None, Some(&scram))
                .await;
        assert!(
            matches!(&r, Err(TransportError::Refused { reason, .. })
                if reason.contains("Unsupported SASL mechanism")),
            "{:?}",
            r.err()
        );
        // The right password passes.
        Connection::connect_secured(
            &at,
            &hello(3, &trio),
            Some(leader),
            t,
            None,
            Some(&login("controller-secret")),
        )
        .await
        .expect("the right password logs in");
        for n in nodes {
            n.shutdown().await.expect("shutdown");
        }
    }
}
