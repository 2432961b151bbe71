//! The quorum's transport: Raft RPCs and controller requests over TCP, one listener per node on
//! its controller address.
//!
//! ```text
//! frame:  length: u32 (of what follows) | kind: u8 | payload
//!
//! client                                   server (serve → one task per connection)
//!   HANDSHAKE {cluster_id, node_id, ─────►  refused (ERROR) on another cluster id, or when the
//!     voters}                       ◄─────  peer claims this node's own id, or names other
//!                                           voters; else OK {ours}
//!   APPEND_ENTRIES / VOTE /         ─────►  openraft (JSON in, JSON Result out)
//!   INSTALL_SNAPSHOT
//!   CONTROLLER  opaque bytes        ─────►  ControllerRpcHandler, only on the leader
//!                                   ◄─────  OK bytes | NOT_LEADER Option<leader id>
//!   JOIN {node_id, addr, dir id}    ─────►  add_learner, only on the leader
//!   PRE_VOTE {last_log_id}          ─────►  would this voter vote ([`crate::pre_vote`])
//!                                   ◄─────  OK {granted}
//! ```
//!
//! A connection whose first frame opens with a 0 byte is a Kafka client's (a Kafka request's
//! api key is below 256, so its high byte is 0; quorum frame kinds start at 1): it goes whole,
//! with that first request, to the [`KafkaConnectionHandler`] if one is set (the broker's
//! controller-listener APIs: ApiVersions, DescribeCluster, DescribeQuorum), and is closed
//! otherwise.
//!
//! One request at a time per connection; a client keeps its connection for the next request
//! and drops it after any failure, so the next request reconnects. Payloads are JSON (openraft's
//! `serde` feature); the metadata log is small, so clarity wins over bytes.

use std::collections::{BTreeSet, HashMap};
use std::error::Error;
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::contacts::PeerContacts;
use crate::log_store::LogStore;
use crate::pre_vote::{grant, voter_view, LeaderContact, PreVoteRequest, PreVoteResponse};
use crate::quorum_sasl::{QuorumSasl, SaslStep};
use crate::types::{ControllerNode, NodeId, Raft, TypeConfig};
use crate::vote_gate::{VoteGate, VoteVerdict};

/// Frame kinds. Requests are below 0x80, replies from 0x80.
pub(crate) mod kind {
    pub(crate) const HANDSHAKE: u8 = 1;
    pub(crate) const APPEND_ENTRIES: u8 = 2;
    pub(crate) const VOTE: u8 = 3;
    pub(crate) const INSTALL_SNAPSHOT: u8 = 4;
    pub(crate) const CONTROLLER: u8 = 5;
    pub(crate) const JOIN: u8 = 6;
    pub(crate) const PRE_VOTE: u8 = 7;
    /// SASL on the controller listener ([`crate::quorum_sasl`]), before HANDSHAKE.
    pub(crate) const SASL_HANDSHAKE: u8 = 8;
    pub(crate) const SASL_AUTHENTICATE: u8 = 9;
    pub(crate) const OK: u8 = 0x80;
    pub(crate) const ERROR: u8 = 0x81;
    pub(crate) const NOT_LEADER: u8 = 0x82;
    pub(crate) const CHALLENGE: u8 = 0x83;
}

/// The first byte of a Kafka request after its length: the high byte of its api key.
const KAFKA_REQUEST: u8 = 0;

/// The largest frame accepted; checked before allocating. A snapshot chunk (3 MiB by default)
/// as JSON stays well below.
const MAX_FRAME: usize = 64 * 1024 * 1024;
/// Connections served at once; a cluster has a handful of voters and one connection per
/// broker and purpose, so this is far above need.
const MAX_CONNECTIONS: usize = 1024;
/// How long a new connection may take to send its handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Serves the layer above the quorum (the controller): the payload of a `CONTROLLER` frame
/// that reached the leader, and the bytes to answer with.
pub trait ControllerRpcHandler: Send + Sync + 'static {
    /// Handles one request from node `from` (this node's own id when the leader calls itself).
    fn handle(&self, from: NodeId, payload: Bytes) -> BoxFuture<'static, Bytes>;
}

/// Serves a Kafka client's connection to the controller listener, given the first request
/// (without its length prefix) that was already read from it.
pub trait KafkaConnectionHandler: Send + Sync + 'static {
    fn serve(&self, stream: QuorumStream, peer: SocketAddr, first: Bytes)
        -> BoxFuture<'static, ()>;
}

/// TLS on the controller listener (its listener mapped to SSL): what this node shows and
/// trusts, on both sides of every quorum connection.
///
/// The quorum protocol has no authentication of its own, so a quorum connection (one that
/// opens with HANDSHAKE) must show a client certificate the truststore vouches for, whatever
/// `ssl.client.auth` says, as Kafka's controllers do with `ssl.client.auth=required`. The TLS
/// layer asks every client for a certificate and refuses an untrusted one; a client showing
/// none gets as far as its first frame, which decides: a quorum connection is refused, a Kafka
/// client is served unless [`QuorumTls::kafka_clients_need_certificate`].
///
/// The configs are read at each handshake, so a node whose certificates are reloaded
/// ([`QuorumTls::reloadable`]) shows and checks the new ones on every new connection, in both
/// directions; connections already open keep theirs.
#[derive(Clone)]
pub struct QuorumTls {
    /// The server side: this node's certificate chain and key, client certificates asked for
    /// (optional at the TLS level) and checked against the truststore.
    server: Arc<dyn Fn() -> Arc<rustls::ServerConfig> + Send + Sync>,
    /// The client side: the truststore peers' certificates must chain to, and this node's
    /// certificate, shown to the peer.
    client: Arc<dyn Fn() -> Arc<rustls::ClientConfig> + Send + Sync>,
    /// `ssl.client.auth=required`: a Kafka client (kafka-metadata-quorum.sh, an AdminClient
    /// with `bootstrap.controllers`) must show a trusted certificate too.
    pub kafka_clients_need_certificate: bool,
}

impl QuorumTls {
    /// Fixed configs, read once.
    pub fn new(
        server: Arc<rustls::ServerConfig>,
        client: Arc<rustls::ClientConfig>,
        kafka_clients_need_certificate: bool,
    ) -> QuorumTls {
        QuorumTls::reloadable(
            move || Arc::clone(&server),
            move || Arc::clone(&client),
            kafka_clients_need_certificate,
        )
    }

    /// Configs asked for at each handshake: whoever reloads the stores swaps what these return.
    pub fn reloadable(
        server: impl Fn() -> Arc<rustls::ServerConfig> + Send + Sync + 'static,
        client: impl Fn() -> Arc<rustls::ClientConfig> + Send + Sync + 'static,
        kafka_clients_need_certificate: bool,
    ) -> QuorumTls {
        QuorumTls {
            server: Arc::new(server),
            client: Arc::new(client),
            kafka_clients_need_certificate,
        }
    }

    /// The server config for the next accepted connection.
    pub fn server_config(&self) -> Arc<rustls::ServerConfig> {
        (self.server)()
    }

    /// The client config for the next connection dialled.
    pub fn client_config(&self) -> Arc<rustls::ClientConfig> {
        (self.client)()
    }
}

impl std::fmt::Debug for QuorumTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QuorumTls")
            .field(
                "kafka_clients_need_certificate",
                &self.kafka_clients_need_certificate,
            )
            .finish_non_exhaustive()
    }
}

/// A connection on the controller listener, or to a peer's: plain TCP, or TLS over it.
pub enum QuorumStream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::TlsStream<TcpStream>>),
}

impl QuorumStream {
    /// The certificate the other side showed (its leaf, DER), over TLS.
    pub fn peer_certificate(&self) -> Option<&[u8]> {
        match self {
            QuorumStream::Plain(_) => None,
            QuorumStream::Tls(s) => {
                let (_, state) = s.get_ref();
                state.peer_certificates()?.first().map(|c| c.as_ref())
            }
        }
    }

    /// Whether the connection is TLS.
    pub fn is_tls(&self) -> bool {
        matches!(self, QuorumStream::Tls(_))
    }

    fn tcp(&self) -> &TcpStream {
        match self {
            QuorumStream::Plain(s) => s,
            QuorumStream::Tls(s) => s.get_ref().0,
        }
    }

    /// `TCP_NODELAY`: frames are small and answered one at a time.
    pub fn set_nodelay(&self) -> io::Result<()> {
        self.tcp().set_nodelay(true)
    }
}

impl AsyncRead for QuorumStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            QuorumStream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            QuorumStream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for QuorumStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            QuorumStream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            QuorumStream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            QuorumStream::Plain(s) => Pin::new(s).poll_flush(cx),
            QuorumStream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            QuorumStream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            QuorumStream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// Opens a connection to `addr` (`host:port`), with TLS when `tls` is set: the peer's
/// certificate must name `host` and chain to the truststore, and this node shows its own.
pub(crate) async fn dial(
    addr: &str,
    tls: Option<&QuorumTls>,
) -> Result<QuorumStream, TransportError> {
    let tcp = TcpStream::connect(addr)
        .await
        .map_err(|source| TransportError::Connect {
            addr: addr.to_string(),
            source,
        })?;
    tcp.set_nodelay(true)?;
    let Some(tls) = tls else {
        return Ok(QuorumStream::Plain(tcp));
    };
    let tls_error = |reason: String| TransportError::Tls {
        addr: addr.to_string(),
        reason,
    };
    let host = addr
        .rsplit_once(':')
        .map_or(addr, |(host, _)| host)
        .trim_matches(['[', ']']);
    let name = rustls_pki_types::ServerName::try_from(host.to_string())
        .map_err(|e| tls_error(format!("{host} is not a name a certificate can hold: {e}")))?;
    let stream = tokio_rustls::TlsConnector::from(tls.client_config())
        .connect(name, tcp)
        .await
        .map_err(|e| {
            // The peer went away mid-handshake (a restart, a loaded peer's timeout): not a
            // refusal, but a peer that cannot be reached now.
            if went_away(&e) {
                TransportError::Io(e)
            } else {
                tls_error(e.to_string())
            }
        })?;
    Ok(QuorumStream::Tls(Box::new(
        tokio_rustls::TlsStream::Client(stream),
    )))
}

/// Whether a TLS handshake's error is the other side closing the connection (end of stream, a
/// reset): a disconnection, as Kafka's `Selector` takes it, not a TLS failure.
pub fn went_away(e: &io::Error) -> bool {
    tls_failure(e).is_none()
        && matches!(
            e.kind(),
            io::ErrorKind::UnexpectedEof
                | io::ErrorKind::ConnectionReset
                | io::ErrorKind::ConnectionAborted
                | io::ErrorKind::BrokenPipe
        )
}

/// The TLS failure behind an I/O error, if it is one (a peer's alert about this node's
/// certificate arrives with the first read after the handshake under TLS 1.3).
fn tls_failure(e: &io::Error) -> Option<String> {
    e.get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        .map(|e| e.to_string())
}

/// Where the quorum's listener finds the [`KafkaConnectionHandler`], set once after start.
pub(crate) type KafkaSlot = Arc<std::sync::OnceLock<Arc<dyn KafkaConnectionHandler>>>;

/// The first frame on every connection.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct Hello {
    pub(crate) cluster_id: String,
    pub(crate) node_id: NodeId,
    /// The sender's configured voter ids. Nodes configured with different voter sets must not
    /// talk: two voters that each initialized a different membership would both have it at
    /// log index 0 with the same log id, and Raft could not tell their logs apart.
    pub(crate) voters: BTreeSet<NodeId>,
}

/// A learner asking the leader to add it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct JoinRequest {
    pub(crate) node_id: NodeId,
    pub(crate) addr: String,
    /// The learner's data directory id, recorded with it (absent from older nodes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) directory_id: Option<String>,
    /// Name the leader's address in a NOT_LEADER answer ([`LeaderAt`]), not only its id: a
    /// node that found the quorum through a bootstrap server knows no voter's address yet.
    /// Older nodes neither send nor read it.
    #[serde(default)]
    pub(crate) want_leader_addr: bool,
}

/// A NOT_LEADER answer to a JOIN that asked for the leader's address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct LeaderAt {
    pub(crate) leader: Option<NodeId>,
    pub(crate) addr: Option<String>,
}

/// The leader, and its address when named, from a NOT_LEADER answer's payload: a [`LeaderAt`]
/// or (any other request, an older node) the leader id alone.
pub(crate) fn parse_not_leader(payload: &[u8]) -> (Option<NodeId>, Option<String>) {
    if let Ok(at) = serde_json::from_slice::<LeaderAt>(payload) {
        return (at.leader, at.addr);
    }
    (
        serde_json::from_slice::<Option<NodeId>>(payload)
            .ok()
            .flatten(),
        None,
    )
}

/// Why a request to a peer failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TransportError {
    #[error("cannot connect to {addr}: {source}")]
    Connect { addr: String, source: io::Error },
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    #[error("connection failed: {0}")]
    Io(#[from] io::Error),
    #[error("{addr} refused the handshake: {reason}")]
    Refused { addr: String, reason: String },
    #[error("TLS with {addr} failed: {reason}")]
    Tls { addr: String, reason: String },
    #[error("the node at {addr} is node {actual}, not node {expected}")]
    WrongPeer {
        addr: String,
        expected: NodeId,
        actual: NodeId,
    },
    #[error("the peer answered with frame kind {0:#04x}")]
    Unexpected(u8),
    #[error("the peer failed the request: {0}")]
    Remote(String),
    #[error("bad payload: {0}")]
    Codec(#[from] serde_json::Error),
}

async fn write_frame<S: AsyncWrite + Unpin>(
    stream: &mut S,
    kind: u8,
    payload: &[u8],
) -> io::Result<()> {
    let len = u32::try_from(payload.len() + 1)
        .ok()
        .filter(|&l| l as usize <= MAX_FRAME)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "frame too large"))?;
    let mut buf = Vec::with_capacity(payload.len() + 5);
    buf.extend_from_slice(&len.to_be_bytes());
    buf.push(kind);
    buf.extend_from_slice(payload);
    stream.write_all(&buf).await?;
    // TLS keeps what it encrypted until flushed.
    stream.flush().await
}

async fn read_frame<S: AsyncRead + Unpin>(stream: &mut S) -> io::Result<(u8, Vec<u8>)> {
    let len = stream.read_u32().await? as usize;
    if len == 0 || len > MAX_FRAME {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("frame length {len} out of range"),
        ));
    }
    let kind = stream.read_u8().await?;
    let mut payload = vec![0; len - 1];
    stream.read_exact(&mut payload).await?;
    Ok((kind, payload))
}

/// A client connection that passed the handshake.
pub(crate) struct Connection {
    stream: QuorumStream,
}

impl Connection {
    /// Connects to `addr` (with TLS when `tls` is set) and shakes hands; `expect` is the node
    /// id the peer must have.
    #[cfg(test)]
    pub(crate) async fn connect(
        addr: &str,
        hello: &Hello,
        expect: Option<NodeId>,
        timeout: Duration,
        tls: Option<&QuorumTls>,
    ) -> Result<Connection, TransportError> {
        Connection::connect_secured(addr, hello, expect, timeout, tls, None).await
    }

    /// [`Connection::connect`], logging in with `sasl` first when the controller listener is
    /// SASL_PLAINTEXT or SASL_SSL.
    pub(crate) async fn connect_secured(
        addr: &str,
        hello: &Hello,
        expect: Option<NodeId>,
        timeout: Duration,
        tls: Option<&QuorumTls>,
        sasl: Option<&QuorumSasl>,
    ) -> Result<Connection, TransportError> {
        let fut = async {
            let mut stream = dial(addr, tls).await?;
            let tls_refusal = |e: io::Error| match tls_failure(&e) {
                Some(reason) => TransportError::Tls {
                    addr: addr.to_string(),
                    reason,
                },
                None => TransportError::Io(e),
            };
            if let Some(sasl) = sasl {
                sasl_login(&mut stream, addr, sasl)
                    .await
                    .map_err(|e| match e {
                        TransportError::Io(e) => tls_refusal(e),
                        other => other,
                    })?;
            }
            write_frame(&mut stream, kind::HANDSHAKE, &serde_json::to_vec(hello)?)
                .await
                .map_err(tls_refusal)?;
            let (k, payload) = read_frame(&mut stream).await.map_err(tls_refusal)?;
            match k {
                kind::OK => {
                    let theirs: Hello = serde_json::from_slice(&payload)?;
                    if let Some(expected) = expect.filter(|&e| e != theirs.node_id) {
                        return Err(TransportError::WrongPeer {
                            addr: addr.to_string(),
                            expected,
                            actual: theirs.node_id,
                        });
                    }
                    Ok(Connection { stream })
                }
                kind::ERROR => Err(TransportError::Refused {
                    addr: addr.to_string(),
                    reason: String::from_utf8_lossy(&payload).into_owned(),
                }),
                other => Err(TransportError::Unexpected(other)),
            }
        };
        tokio::time::timeout(timeout, fut)
            .await
            .map_err(|_| TransportError::Timeout(timeout))?
    }

    /// Sends one request and waits for its reply.
    pub(crate) async fn call(
        &mut self,
        kind: u8,
        payload: &[u8],
        timeout: Duration,
    ) -> Result<(u8, Vec<u8>), TransportError> {
        let fut = async {
            write_frame(&mut self.stream, kind, payload).await?;
            // Kafka's `raft-channel-metrics` (the quorum's client side), under the names
            // Strimzi's exporter rules give them.
            metrics::counter!("kafka_server_raftchannelmetrics_request_total").increment(1);
            metrics::counter!("kafka_server_raftchannelmetrics_outgoing_byte_total")
                .increment(payload.len() as u64 + 5);
            let reply = read_frame(&mut self.stream).await?;
            metrics::counter!("kafka_server_raftchannelmetrics_response_total").increment(1);
            metrics::counter!("kafka_server_raftchannelmetrics_incoming_byte_total")
                .increment(reply.1.len() as u64 + 5);
            Ok::<_, TransportError>(reply)
        };
        tokio::time::timeout(timeout, fut)
            .await
            .map_err(|_| TransportError::Timeout(timeout))?
    }
}

/// The dialling side of SASL on a quorum connection: the mechanism, then tokens until the
/// peer says OK. A refusal is [`TransportError::Refused`] with the peer's reason.
async fn sasl_login(
    stream: &mut QuorumStream,
    addr: &str,
    sasl: &QuorumSasl,
) -> Result<(), TransportError> {
    let refused = |payload: &[u8]| TransportError::Refused {
        addr: addr.to_string(),
        reason: String::from_utf8_lossy(payload).into_owned(),
    };
    write_frame(stream, kind::SASL_HANDSHAKE, sasl.mechanism.as_bytes()).await?;
    match read_frame(stream).await? {
        (kind::OK, _) => {}
        (kind::ERROR, payload) => return Err(refused(&payload)),
        (other, _) => return Err(TransportError::Unexpected(other)),
    }
    // Tokens until OK: PLAIN's one, SCRAM's two (the server's first message a CHALLENGE, its
    // final one in the OK, checked by the mechanism).
    let mut exchange = sasl.start_login();
    let mut token = exchange.first();
    loop {
        write_frame(stream, kind::SASL_AUTHENTICATE, &token).await?;
        let (k, payload) = read_frame(stream).await?;
        let this_side = |reason: String| TransportError::Refused {
            addr: addr.to_string(),
            reason: format!("this node stopped its {} login: {reason}", sasl.mechanism),
        };
        match k {
            kind::CHALLENGE => match exchange.step(&payload).map_err(this_side)? {
                Some(next) => token = next,
                None => return Err(this_side("the peer asked for more".into())),
            },
            kind::OK => {
                return match exchange.step(&payload).map_err(this_side)? {
                    None => Ok(()),
                    Some(_) => Err(this_side("the peer ended the login early".into())),
                }
            }
            kind::ERROR => return Err(refused(&payload)),
            other => return Err(TransportError::Unexpected(other)),
        }
    }
}

/// Idle connections to peers for controller requests, reused by later calls.
pub(crate) struct ConnectionPool {
    hello: Hello,
    tls: Option<Arc<QuorumTls>>,
    sasl: Option<Arc<QuorumSasl>>,
    idle: Mutex<HashMap<NodeId, Vec<Connection>>>,
}

impl ConnectionPool {
    pub(crate) fn new(hello: Hello, tls: Option<Arc<QuorumTls>>) -> ConnectionPool {
        ConnectionPool {
            hello,
            tls,
            sasl: None,
            idle: Mutex::new(HashMap::new()),
        }
    }

    /// Logs in with `sasl` on every new connection.
    pub(crate) fn with_sasl(mut self, sasl: Option<Arc<QuorumSasl>>) -> ConnectionPool {
        self.sasl = sasl;
        self
    }

    /// SASL on the quorum's connections, if the controller listener is SASL_*.
    pub(crate) fn sasl(&self) -> Option<&QuorumSasl> {
        self.sasl.as_deref()
    }

    /// TLS on the quorum's connections, if the controller listener is SSL.
    pub(crate) fn tls(&self) -> Option<&QuorumTls> {
        self.tls.as_deref()
    }

    /// Sends one request to node `target` at `addr` over an idle connection or a new one; the
    /// connection goes back to the pool only after a complete exchange.
    /// One request to whichever node answers at `addr` (a bootstrap server: its id unknown),
    /// on a connection of its own, closed afterwards.
    pub(crate) async fn call_any(
        &self,
        addr: &str,
        kind: u8,
        payload: &[u8],
        timeout: Duration,
    ) -> Result<(u8, Vec<u8>), TransportError> {
        let mut conn =
            Connection::connect_secured(addr, &self.hello, None, timeout, self.tls(), self.sasl())
                .await?;
        conn.call(kind, payload, timeout).await
    }

    pub(crate) async fn call(
        &self,
        target: NodeId,
        addr: &str,
        kind: u8,
        payload: &[u8],
        timeout: Duration,
    ) -> Result<(u8, Vec<u8>), TransportError> {
        let idle = self
            .idle
            .lock()
            .expect("connection pool lock poisoned")
            .get_mut(&target)
            .and_then(Vec::pop);
        let mut conn = match idle {
            Some(c) => c,
            None => {
                Connection::connect_secured(
                    addr,
                    &self.hello,
                    Some(target),
                    timeout,
                    self.tls(),
                    self.sasl(),
                )
                .await?
            }
        };
        let reply = conn.call(kind, payload, timeout).await?;
        self.idle
            .lock()
            .expect("connection pool lock poisoned")
            .entry(target)
            .or_default()
            .push(conn);
        Ok(reply)
    }
}

/// Makes openraft's per-peer clients.
pub(crate) struct NetworkFactory {
    /// This node's own view of the voters' addresses (`--voters`), which wins over the address
    /// in the membership: the membership entry holds whichever node's view was written first,
    /// while each node may reach a voter at another address (a proxy per link, a NAT).
    pub(crate) voters: std::collections::BTreeMap<NodeId, String>,
    pub(crate) hello: Arc<Hello>,
    pub(crate) connect_timeout: Duration,
    /// The last handshake refusal per peer, so each is logged once (openraft makes a new
    /// client per election and retries every heartbeat).
    pub(crate) refusals: Arc<Mutex<HashMap<NodeId, String>>>,
    /// TLS on the quorum's connections, if the controller listener is SSL.
    pub(crate) tls: Option<Arc<QuorumTls>>,
    /// SASL on the quorum's connections, if the controller listener is SASL_*.
    pub(crate) sasl: Option<Arc<QuorumSasl>>,
    /// When each peer last answered (shared by all the clients).
    pub(crate) contacts: Arc<PeerContacts>,
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = PeerClient;

    async fn new_client(&mut self, target: NodeId, node: &ControllerNode) -> PeerClient {
        PeerClient {
            target,
            addr: self
                .voters
                .get(&target)
                .cloned()
                .unwrap_or_else(|| node.addr.clone()),
            hello: self.hello.clone(),
            connect_timeout: self.connect_timeout,
            conn: None,
            refusals: Arc::clone(&self.refusals),
            tls: self.tls.clone(),
            sasl: self.sasl.clone(),
            contacts: Arc::clone(&self.contacts),
        }
    }
}

/// openraft's client for one peer: one connection, reused, dropped after a failure.
pub(crate) struct PeerClient {
    target: NodeId,
    addr: String,
    hello: Arc<Hello>,
    connect_timeout: Duration,
    conn: Option<Connection>,
    /// Shared with the factory: see [`NetworkFactory::refusals`].
    refusals: Arc<Mutex<HashMap<NodeId, String>>>,
    tls: Option<Arc<QuorumTls>>,
    sasl: Option<Arc<QuorumSasl>>,
    contacts: Arc<PeerContacts>,
}

type RpcResult<T, E> = Result<T, RPCError<NodeId, ControllerNode, RaftError<NodeId, E>>>;

impl PeerClient {
    async fn rpc<Req, Resp, E>(&mut self, kind: u8, req: &Req, ttl: Duration) -> RpcResult<Resp, E>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: Error + DeserializeOwned,
    {
        let payload =
            serde_json::to_vec(req).map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        self.contacts.tried(self.target, std::time::Instant::now());
        let mut conn = match self.conn.take() {
            Some(c) => c,
            None => Connection::connect_secured(
                &self.addr,
                &self.hello,
                Some(self.target),
                self.connect_timeout.min(ttl),
                self.tls.as_deref(),
                self.sasl.as_deref(),
            )
            .await
            .map_err(|e| {
                match &e {
                    // A peer that refuses this node (another cluster, other voters, a
                    // certificate it does not trust) will not change its mind: say so loudly,
                    // once.
                    TransportError::Refused { reason, .. } | TransportError::Tls { reason, .. } => {
                        let mut seen = self.refusals.lock().unwrap_or_else(|p| p.into_inner());
                        if seen.get(&self.target) != Some(reason) {
                            tracing::error!(
                                target_node = self.target,
                                addr = %self.addr,
                                %reason,
                                "a metadata quorum peer refuses this node"
                            );
                            seen.insert(self.target, reason.clone());
                        }
                    }
                    _ => tracing::debug!(
                        target_node = self.target,
                        addr = %self.addr,
                        error = %e,
                        "raft peer unreachable"
                    ),
                }
                RPCError::Unreachable(Unreachable::new(&e))
            })?,
        };
        let (k, reply) = conn
            .call(kind, &payload, ttl)
            .await
            .map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
        match k {
            kind::OK => {
                let result: Result<Resp, RaftError<NodeId, E>> = serde_json::from_slice(&reply)
                    .map_err(|e| RPCError::Network(NetworkError::new(&e)))?;
                self.contacts.answered(
                    self.target,
                    std::time::Instant::now(),
                    crate::contacts::wall_ms(),
                );
                self.conn = Some(conn);
                result.map_err(|e| RPCError::RemoteError(RemoteError::new(self.target, e)))
            }
            kind::ERROR => {
                let e = TransportError::Remote(String::from_utf8_lossy(&reply).into_owned());
                Err(RPCError::Network(NetworkError::new(&e)))
            }
            other => Err(RPCError::Network(NetworkError::new(
                &TransportError::Unexpected(other),
            ))),
        }
    }
}

impl RaftNetwork<TypeConfig> for PeerClient {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<AppendEntriesResponse<NodeId>, openraft::error::Infallible> {
        self.rpc(kind::APPEND_ENTRIES, &rpc, option.hard_ttl())
            .await
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> RpcResult<InstallSnapshotResponse<NodeId>, InstallSnapshotError> {
        self.rpc(kind::INSTALL_SNAPSHOT, &rpc, option.hard_ttl())
            .await
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> RpcResult<VoteResponse<NodeId>, openraft::error::Infallible> {
        self.rpc(kind::VOTE, &rpc, option.hard_ttl()).await
    }
}

/// The server side: what a connection needs to answer requests.
pub(crate) struct Server {
    pub(crate) node_id: NodeId,
    pub(crate) cluster_id: String,
    pub(crate) voters: BTreeSet<NodeId>,
    pub(crate) raft: Raft,
    pub(crate) handler: Arc<dyn ControllerRpcHandler>,
    /// Closed while this voter catches up after starting without a log.
    pub(crate) vote_gate: Arc<VoteGate>,
    /// When a leader was last heard from (the election timer of [`crate::pre_vote`]).
    pub(crate) contact: Arc<LeaderContact>,
    /// The metadata log, for the last log id a pre-vote compares.
    pub(crate) log: LogStore,
    /// The leader lease (the maximum election timeout): a voter that heard from a leader
    /// within it grants no pre-vote.
    pub(crate) lease: Duration,
    pub(crate) kafka: KafkaSlot,
    /// TLS on the controller listener, if it is SSL.
    pub(crate) tls: Option<Arc<QuorumTls>>,
    /// SASL on the controller listener, if it is SASL_PLAINTEXT or SASL_SSL: every quorum
    /// connection logs in before its handshake.
    pub(crate) sasl: Option<Arc<QuorumSasl>>,
}

/// Accepts connections until the task is aborted; aborting it also ends every connection
/// (they live in the task's `JoinSet`).
pub(crate) async fn serve(listener: TcpListener, server: Arc<Server>) {
    let mut conns = JoinSet::new();
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        // Wait for a free slot before accepting, so a flood of connections queues in the
        // kernel's backlog instead of in tasks and buffers here.
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return;
        };
        match listener.accept().await {
            Ok((stream, peer)) => {
                let server = server.clone();
                conns.spawn(async move {
                    if let Some(stream) = server.accept(stream, peer).await {
                        if let Err(e) = server.serve_connection(stream, peer).await {
                            tracing::debug!(%peer, error = %e, "quorum connection closed");
                        }
                    }
                    drop(permit);
                });
            }
            Err(e) => {
                // Out of descriptors and the like: back off instead of spinning.
                tracing::warn!(error = %e, "cannot accept a quorum connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        while conns.try_join_next().is_some() {}
    }
}

fn json_reply<T: Serialize>(value: &T) -> (u8, Vec<u8>) {
    match serde_json::to_vec(value) {
        Ok(bytes) => (kind::OK, bytes),
        Err(e) => (
            kind::ERROR,
            format!("cannot encode the reply: {e}").into_bytes(),
        ),
    }
}

fn not_leader(leader: Option<NodeId>) -> (u8, Vec<u8>) {
    match serde_json::to_vec(&leader) {
        Ok(bytes) => (kind::NOT_LEADER, bytes),
        Err(e) => (
            kind::ERROR,
            format!("cannot encode the reply: {e}").into_bytes(),
        ),
    }
}

impl Server {
    /// The TLS handshake of a new connection when the listener is SSL (within the handshake
    /// timeout); `None`, logged, when it fails.
    async fn accept(&self, stream: TcpStream, peer: SocketAddr) -> Option<QuorumStream> {
        let _ = stream.set_nodelay(true);
        let Some(tls) = &self.tls else {
            return Some(QuorumStream::Plain(stream));
        };
        let acceptor = tokio_rustls::TlsAcceptor::from(tls.server_config());
        match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
            Ok(Ok(s)) => Some(QuorumStream::Tls(Box::new(
                tokio_rustls::TlsStream::Server(s),
            ))),
            Ok(Err(e)) if went_away(&e) => {
                tracing::debug!(%peer, error = %e,
                    "the peer closed its connection during the TLS handshake on the controller listener");
                None
            }
            Ok(Err(e)) => {
                tracing::info!(%peer, error = %e, "TLS handshake failed on the controller listener");
                None
            }
            Err(_) => {
                tracing::info!(%peer, "TLS handshake timed out on the controller listener");
                None
            }
        }
    }

    async fn serve_connection(
        &self,
        mut stream: QuorumStream,
        peer: SocketAddr,
    ) -> Result<(), TransportError> {
        let (k, payload) = tokio::time::timeout(HANDSHAKE_TIMEOUT, read_frame(&mut stream))
            .await
            .map_err(|_| TransportError::Timeout(HANDSHAKE_TIMEOUT))??;
        let certified = stream.peer_certificate().is_some();
        if k == KAFKA_REQUEST {
            if self
                .tls
                .as_ref()
                .is_some_and(|t| t.kafka_clients_need_certificate)
                && !certified
            {
                tracing::info!(%peer, "a Kafka client without a certificate on the controller \
                    listener (ssl.client.auth=required); closing");
                return Ok(());
            }
            match self.kafka.get() {
                Some(kafka) => {
                    let mut first = Vec::with_capacity(payload.len() + 1);
                    first.push(k);
                    first.extend_from_slice(&payload);
                    kafka.serve(stream, peer, Bytes::from(first)).await;
                }
                None => {
                    tracing::debug!(%peer, "a Kafka request on the controller listener; closing")
                }
            }
            return Ok(());
        }
        let (k, payload) = match &self.sasl {
            None => (k, payload),
            Some(sasl) => {
                let login = tokio::time::timeout(
                    HANDSHAKE_TIMEOUT,
                    self.sasl_accept(&mut stream, sasl, k, payload),
                )
                .await
                .map_err(|_| TransportError::Timeout(HANDSHAKE_TIMEOUT))??;
                match login {
                    Ok(user) => {
                        tracing::debug!(%peer, %user, "a quorum peer logged in");
                        tokio::time::timeout(HANDSHAKE_TIMEOUT, read_frame(&mut stream))
                            .await
                            .map_err(|_| TransportError::Timeout(HANDSHAKE_TIMEOUT))??
                    }
                    Err(reason) => {
                        if sasl.first_refusal(peer.ip(), &reason) {
                            tracing::info!(%peer, %reason, "refusing a quorum connection: SASL \
                                authentication failed on the controller listener");
                        } else {
                            tracing::debug!(%peer, %reason, "refusing a quorum connection");
                        }
                        write_frame(&mut stream, kind::ERROR, reason.as_bytes()).await?;
                        return Ok(());
                    }
                }
            }
        };
        if k != kind::HANDSHAKE {
            tracing::warn!(%peer, kind = k, "quorum connection did not start with a handshake; closing it");
            write_frame(&mut stream, kind::ERROR, b"expected a handshake").await?;
            return Ok(());
        }
        if stream.is_tls() && !certified && self.sasl.is_none() {
            let reason = "this controller listener is SSL: a quorum connection must show a \
                          certificate its truststore trusts (set the listener's \
                          ssl.keystore.location on the connecting node)";
            tracing::warn!(%peer, "refusing a quorum connection without a client certificate");
            write_frame(&mut stream, kind::ERROR, reason.as_bytes()).await?;
            return Ok(());
        }
        let hello: Hello = serde_json::from_slice(&payload)?;
        // The voter sets first: with no configured cluster.id each node derives its cluster id
        // from its voters, so a voter-set mismatch also shows as a cluster-id mismatch, and
        // the voters are what the operator has to fix.
        let refusal = if hello.voters != self.voters {
            // An empty set: the node finds its quorum through bootstrap servers (a quorum
            // whose voters are its log's), which a cluster does on every node or on none.
            let side = |voters: &BTreeSet<NodeId>, prefix: &str| {
                if voters.is_empty() {
                    "controller.quorum.bootstrap.servers (no configured voters)".to_string()
                } else {
                    format!("{prefix}{voters:?}")
                }
            };
            Some(format!(
                "voter set mismatch: this node is configured with {}, the peer with {}",
                side(&self.voters, "voters "),
                side(&hello.voters, "")
            ))
        } else if hello.cluster_id != self.cluster_id {
            Some(format!(
                "cluster id mismatch: this node belongs to cluster {:?}, the peer to {:?}",
                self.cluster_id, hello.cluster_id
            ))
        } else if hello.node_id == self.node_id {
            Some(format!(
                "the peer claims node id {}, which is this node's own id",
                hello.node_id
            ))
        } else {
            None
        };
        if let Some(reason) = refusal {
            tracing::error!(%peer, peer_node = hello.node_id, %reason, "refusing a quorum connection");
            write_frame(&mut stream, kind::ERROR, reason.as_bytes()).await?;
            return Ok(());
        }
        let ours = Hello {
            cluster_id: self.cluster_id.clone(),
            node_id: self.node_id,
            voters: self.voters.clone(),
        };
        write_frame(&mut stream, kind::OK, &serde_json::to_vec(&ours)?).await?;
        loop {
            let (k, payload) = match read_frame(&mut stream).await {
                Ok(frame) => frame,
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
                Err(e) => return Err(e.into()),
            };
            let (reply_kind, reply) = match self.dispatch(hello.node_id, k, payload).await {
                Ok(reply) => reply,
                Err(e) => {
                    // A request that does not decode is a protocol violation: answer, close.
                    tracing::warn!(%peer, kind = k, error = %e, "bad quorum request; closing the connection");
                    write_frame(&mut stream, kind::ERROR, e.to_string().as_bytes()).await?;
                    return Ok(());
                }
            };
            write_frame(&mut stream, reply_kind, &reply).await?;
        }
    }

    async fn dispatch(
        &self,
        from: NodeId,
        k: u8,
        payload: Vec<u8>,
    ) -> Result<(u8, Vec<u8>), TransportError> {
        Ok(match k {
            kind::APPEND_ENTRIES => {
                let req: AppendEntriesRequest<TypeConfig> = serde_json::from_slice(&payload)?;
                let gated = !self.vote_gate.is_open();
                if gated {
                    self.vote_gate
                        .saw_leader_commit(req.leader_commit.map(|l| l.index));
                }
                let reply = self.raft.append_entries(req).await;
                if gated {
                    self.vote_gate.applied(self.last_applied());
                }
                // A leader this node follows (not one it refused for a newer term).
                if matches!(&reply, Ok(r) if !matches!(r, AppendEntriesResponse::HigherVote(_))) {
                    self.contact.heard();
                }
                json_reply(&reply)
            }
            kind::VOTE => {
                let req: VoteRequest<NodeId> = serde_json::from_slice(&payload)?;
                if !self.vote_gate.is_open() {
                    self.vote_gate.applied(self.last_applied());
                }
                match self.vote_gate.verdict(req.last_log_id.map(|l| l.index)) {
                    VoteVerdict::Consider => json_reply(&self.raft.vote(req).await),
                    VoteVerdict::Refuse { first } => {
                        if first {
                            tracing::info!(
                                candidate = from,
                                "not voting: this voter started without its metadata log and has \
                                 not caught up with a quorum leader yet"
                            );
                        }
                        let vote = self.raft.metrics().borrow().vote;
                        let refusal: Result<VoteResponse<NodeId>, RaftError<NodeId>> =
                            Ok(VoteResponse {
                                vote,
                                vote_granted: false,
                                last_log_id: None,
                            });
                        json_reply(&refusal)
                    }
                }
            }
            kind::INSTALL_SNAPSHOT => {
                let reply = self
                    .raft
                    .install_snapshot(serde_json::from_slice(&payload)?)
                    .await;
                if reply.is_ok() {
                    self.contact.heard();
                }
                json_reply(&reply)
            }
            kind::PRE_VOTE => {
                let req: PreVoteRequest = serde_json::from_slice(&payload)?;
                if !self.vote_gate.is_open() {
                    self.vote_gate.applied(self.last_applied());
                }
                // As for a vote: the gate's verdict (a fresh cluster's first election passes).
                let votes = matches!(
                    self.vote_gate.verdict(req.last_log_id.map(|l| l.index)),
                    VoteVerdict::Consider
                );
                let mut log = self.log.clone();
                let view = voter_view(&self.raft, &self.contact, &mut log, votes).await;
                let granted = grant(&view, req.last_log_id, self.lease);
                tracing::debug!(candidate = from, granted, ?view, "pre-vote");
                json_reply(&PreVoteResponse { granted })
            }
            kind::CONTROLLER => {
                let leader = self.raft.metrics().borrow().current_leader;
                if leader != Some(self.node_id) {
                    return Ok(not_leader(leader));
                }
                let reply = self.handler.handle(from, Bytes::from(payload)).await;
                (kind::OK, reply.to_vec())
            }
            kind::JOIN => self.join(from, serde_json::from_slice(&payload)?).await,
            other => return Err(TransportError::Unexpected(other)),
        })
    }

    /// The server side of a quorum connection's login, from its first frame (`k`,
    /// `payload`): the user, or why it is refused.
    async fn sasl_accept(
        &self,
        stream: &mut QuorumStream,
        sasl: &QuorumSasl,
        k: u8,
        payload: Vec<u8>,
    ) -> Result<Result<String, String>, TransportError> {
        if k != kind::SASL_HANDSHAKE {
            return Ok(Err(format!(
                "this controller listener is SASL_{}: a quorum connection must log in first \
                 (sasl.mechanism.controller.protocol={} and the node's username and password \
                 in the listener's JAAS config)",
                if stream.is_tls() { "SSL" } else { "PLAINTEXT" },
                sasl.mechanism
            )));
        }
        let mechanism = String::from_utf8_lossy(&payload).into_owned();
        let mut exchange = match sasl.server.start(&mechanism) {
            Ok(exchange) => exchange,
            Err(reason) => return Ok(Err(reason)),
        };
        write_frame(stream, kind::OK, &[]).await?;
        loop {
            let (k, token) = read_frame(stream).await?;
            if k != kind::SASL_AUTHENTICATE {
                return Ok(Err(format!(
                    "expected a SASL token, got frame kind {k:#04x}"
                )));
            }
            match exchange.step(&token) {
                SaslStep::Challenge(bytes) => write_frame(stream, kind::CHALLENGE, &bytes).await?,
                SaslStep::Done { user, last } => {
                    write_frame(stream, kind::OK, &last).await?;
                    return Ok(Ok(user));
                }
                SaslStep::Refused(reason) => return Ok(Err(reason)),
            }
        }
    }

    fn last_applied(&self) -> Option<u64> {
        self.raft.metrics().borrow().last_applied.map(|l| l.index)
    }

    /// Records `req`'s address and directory id for a node already in the membership: one
    /// that moved (voter or learner), or a learner whose directory was replaced.
    async fn move_node(&self, req: JoinRequest) -> (u8, Vec<u8>) {
        let node = ControllerNode::with_directory(req.addr, req.directory_id);
        match self
            .raft
            .change_membership(
                openraft::ChangeMembers::SetNodes(std::collections::BTreeMap::from([(
                    req.node_id,
                    node,
                )])),
                true,
            )
            .await
        {
            Ok(_) => (kind::OK, Vec::new()),
            Err(RaftError::APIError(openraft::error::ClientWriteError::ForwardToLeader(f))) => {
                not_leader(f.leader_id)
            }
            Err(e) => (kind::ERROR, e.to_string().into_bytes()),
        }
    }

    async fn join(&self, from: NodeId, req: JoinRequest) -> (u8, Vec<u8>) {
        if req.node_id != from {
            let msg = format!("node {from} cannot ask to add node {}", req.node_id);
            return (kind::ERROR, msg.into_bytes());
        }
        let (leader, is_voter, known) = {
            let m = self.raft.metrics();
            let m = m.borrow();
            let membership = m.membership_config.membership();
            let is_voter = membership.voter_ids().any(|v| v == req.node_id);
            let known = membership.get_node(&req.node_id).cloned();
            (m.current_leader, is_voter, known)
        };
        if leader != Some(self.node_id) {
            if !req.want_leader_addr {
                return not_leader(leader);
            }
            let addr = leader.and_then(|l| {
                self.raft
                    .metrics()
                    .borrow()
                    .membership_config
                    .membership()
                    .get_node(&l)
                    .map(|n| n.addr.clone())
            });
            return match serde_json::to_vec(&LeaderAt { leader, addr }) {
                Ok(bytes) => (kind::NOT_LEADER, bytes),
                Err(e) => (
                    kind::ERROR,
                    format!("cannot encode the reply: {e}").into_bytes(),
                ),
            };
        }
        let known_at = known.as_ref().map(|n| n.addr.clone());
        // The same data directory (its id recorded when the node joined or was added) at
        // another address: the node moved (restarted with another advertised address, a
        // container on a new IP). The log goes to the new address from now on, as Kafka's
        // UpdateRaftVoter does for a voter's endpoints.
        let moved = known.as_ref().is_some_and(|n| {
            n.addr != req.addr && n.directory_id.is_some() && n.directory_id == req.directory_id
        });
        if moved {
            tracing::info!(
                node = req.node_id,
                addr = %req.addr,
                "a node of the metadata quorum moved: its data directory answers at a new address"
            );
            return self.move_node(req).await;
        }
        // A learner (no voter) at its recorded address with another data directory: its disk
        // was replaced. The membership records the new directory, which AddRaftVoter names
        // (a controller with controller.quorum.auto.join.enable makes itself a voter again).
        let replaced = !is_voter
            && known.as_ref().is_some_and(|n| {
                n.addr == req.addr
                    && n.directory_id.is_some()
                    && req.directory_id.is_some()
                    && n.directory_id != req.directory_id
            });
        if replaced {
            tracing::info!(
                node = req.node_id,
                directory_id = ?req.directory_id,
                "a learner of the metadata quorum answers with another data directory"
            );
            return self.move_node(req).await;
        }
        if is_voter {
            // A voter added by AddRaftVoter that restarted without knowing it (its log lost,
            // or not yet replayed): the leader sends it the log anyway.
            if known_at.as_deref() == Some(req.addr.as_str()) {
                return (kind::OK, Vec::new());
            }
            let msg = format!(
                "node {} is a voter at {}; another directory cannot join at {} as a learner",
                req.node_id,
                known_at.as_deref().unwrap_or("?"),
                req.addr
            );
            return (kind::ERROR, msg.into_bytes());
        }
        if let Some(known_at) = known_at {
            // Already a learner: re-adding would append a membership entry per retry, and
            // openraft keeps the recorded address anyway. Another address under another
            // directory id (or none) means another process with this node id; the log keeps
            // going to the recorded one, and the controller refuses the newcomer's broker
            // registration while the recorded one is alive.
            if known_at != req.addr {
                tracing::warn!(
                    node = req.node_id,
                    addr = %req.addr,
                    %known_at,
                    "a process asks to join the metadata quorum with the id of a learner \
                     recorded at another address; the log still goes to the recorded address"
                );
            }
            return (kind::OK, Vec::new());
        }
        tracing::info!(node = req.node_id, addr = %req.addr, "adding a learner to the metadata quorum");
        match self
            .raft
            .add_learner(
                req.node_id,
                ControllerNode::with_directory(req.addr, req.directory_id),
                false,
            )
            .await
        {
            Ok(_) => (kind::OK, Vec::new()),
            Err(RaftError::APIError(openraft::error::ClientWriteError::ForwardToLeader(f))) => {
                not_leader(f.leader_id)
            }
            Err(e) => (kind::ERROR, e.to_string().into_bytes()),
        }
    }
}
