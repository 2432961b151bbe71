//! What a handler receives besides its typed request, and what it gives back: the request's
//! header fields ([`RequestContext`]), the reply the connection sends ([`Reply`]), the errors
//! that close a connection ([`ProtocolError`]) and response encoding. Shared by the router and
//! every handler, so neither depends on the other's module.

use std::future::Future;
use std::pin::Pin;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use gregor_protocol::messages::{ApiKey, ResponseHeader};
use gregor_protocol::protocol::{Encodable, HeaderVersion};

/// What the connection sends back for one request.
pub enum Reply {
    /// Nothing (acks=0 produce).
    None,
    /// An encoded, size-prefixed response.
    Ready(Bytes),
    /// A response that is not ready yet (fsync, long poll); awaited in order by the writer.
    Pending(Pin<Box<dyn Future<Output = Result<Bytes, ProtocolError>> + Send>>),
    /// A response of encoded bytes and segment-file ranges (fetch), sent with sendfile.
    PendingChunks(
        Pin<Box<dyn Future<Output = Result<Vec<crate::response::Chunk>, ProtocolError>> + Send>>,
    ),
}

/// A request the broker will not serve; the connection is closed.
#[derive(Debug, thiserror::Error)]
pub enum ProtocolError {
    /// API key unknown to Kafka.
    #[error("unknown API key {key}")]
    UnknownApiKey {
        /// The key.
        key: i16,
        /// The client's `client.id`, for the log line.
        client_id: Option<String>,
    },
    /// API or version not supported by gregor.
    #[error("unsupported API {api:?} version {version}")]
    UnsupportedVersion {
        /// API.
        api: ApiKey,
        /// Version asked for.
        version: i16,
        /// The client's `client.id`, for the log line.
        client_id: Option<String>,
    },
    /// The request could not be decoded.
    #[error("cannot decode {api:?} v{version}: {reason}")]
    Decode {
        /// API.
        api: ApiKey,
        /// Version.
        version: i16,
        /// Decoder's message.
        reason: String,
    },
    /// Shorter than a request header.
    #[error("request of {0} bytes is shorter than a request header")]
    TooShort(usize),
    /// An acks=0 produce failed: Kafka closes the connection so the client notices.
    #[error("acks=0 produce failed: {0}")]
    AcksZeroFailed(String),
    /// A response could not be encoded (a bug; logged).
    #[error("cannot encode response: {0}")]
    Encode(String),
}

/// The name of the listener a connection came in on (`PLAINTEXT`, `SSL`, ...): Metadata,
/// FindCoordinator and DescribeCluster answer the brokers' endpoints on that listener, so a
/// client that bootstrapped over TLS stays on TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListenerName(pub std::sync::Arc<str>);

impl ListenerName {
    pub fn new(name: &str) -> Self {
        ListenerName(std::sync::Arc::from(name))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for ListenerName {
    /// The listener gregor's brokers reach each other on.
    fn default() -> Self {
        ListenerName::new(crate::handlers::metadata::CLIENT_LISTENER)
    }
}

/// Who sent a request: the user a SASL listener authenticated, else `ANONYMOUS` (Kafka's
/// `KafkaPrincipal`, type `User`). Client quotas by user resolve with it.
#[derive(Debug, Clone, PartialEq, Eq)]
/// The second field is Kafka's `tokenAuthenticated`: the user logged in with a delegation
/// token (KIP-48), and so may not create, renew, expire or describe tokens.
pub struct Principal(pub std::sync::Arc<str>, pub bool);

impl Principal {
    pub fn user(name: &str) -> Self {
        Principal(std::sync::Arc::from(name), false)
    }

    /// The owner of the delegation token a connection authenticated with.
    pub fn token_owner(name: &str) -> Self {
        Principal(std::sync::Arc::from(name), true)
    }

    /// Authenticated with a delegation token.
    pub fn token_authenticated(&self) -> bool {
        self.1
    }

    /// The user's name (`ANONYMOUS` for an unauthenticated client).
    pub fn name(&self) -> &str {
        &self.0
    }
}

impl Default for Principal {
    fn default() -> Self {
        Principal::user(crate::quota::ANONYMOUS)
    }
}

/// The client connection a request came on (Kafka's `connectionId`): state bound to a
/// connection, such as a share session, ends when it closes. [`ConnectionId::NONE`] for
/// requests that came on no client connection (tests, the controller listener, internal calls).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ConnectionId(pub u64);

impl ConnectionId {
    /// No client connection: never closes.
    pub const NONE: ConnectionId = ConnectionId(0);

    /// A fresh id, unique for the life of the process.
    pub fn next() -> ConnectionId {
        static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
        ConnectionId(NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed))
    }
}

/// Header fields handlers need.
#[derive(Debug, Clone)]
pub struct RequestContext {
    /// API of the request.
    pub api: ApiKey,
    /// Version of the request.
    pub api_version: i16,
    /// Echoed in the response header.
    pub correlation_id: i32,
    /// The client's `client.id`.
    pub client_id: Option<String>,
    /// The client's address, as group descriptions show it (`/127.0.0.1`).
    pub client_host: String,
    /// The connection's mute, which a throttled Produce or Fetch sets (client quotas).
    pub mute: crate::quota::Mute,
    /// The listener the connection came in on.
    pub listener: ListenerName,
    /// The connection's authenticated user.
    pub principal: Principal,
    /// The connection the request came on.
    pub connection: ConnectionId,
}

#[cfg(test)]
impl RequestContext {
    /// A request of `api` at `version` from a test client at `/127.0.0.1`.
    pub(crate) fn for_test(api: ApiKey, version: i16) -> RequestContext {
        RequestContext {
            api,
            api_version: version,
            correlation_id: 1,
            client_id: Some("cid".into()),
            client_host: "/127.0.0.1".into(),
            mute: Default::default(),
            listener: Default::default(),
            principal: Default::default(),
            connection: ConnectionId::NONE,
        }
    }
}

/// The bytes of a reply after its size prefix (header and body), once it is ready.
#[cfg(test)]
pub(crate) async fn reply_body(reply: Reply) -> Bytes {
    use bytes::Buf;
    let mut bytes = match reply {
        Reply::Ready(bytes) => bytes,
        Reply::Pending(f) => f.await.expect("encoded"),
        _ => panic!("a reply is bytes"),
    };
    bytes.advance(4); // size
    bytes
}

/// The response of a reply (its header checked), decoded at `version`.
#[cfg(test)]
pub(crate) async fn decode_reply<R>(reply: Reply, version: i16) -> R
where
    R: gregor_protocol::protocol::Decodable + HeaderVersion,
{
    use gregor_protocol::protocol::Decodable;
    let mut bytes = reply_body(reply).await;
    ResponseHeader::decode(&mut bytes, R::header_version(version)).expect("header");
    R::decode(&mut bytes, version).expect("decode")
}

/// A reply answered at once (e.g. a refused authorization); an encoding error reaches the
/// writer as a pending reply's would.
pub fn ready<R: Encodable + HeaderVersion + 'static>(ctx: &RequestContext, resp: &R) -> Reply {
    match encode(ctx, resp) {
        Ok(bytes) => Reply::Ready(bytes),
        Err(e) => Reply::Pending(Box::pin(async move { Err(e) })),
    }
}

/// Encodes a response with its header and size prefix.
pub fn encode<R: Encodable + HeaderVersion + 'static>(
    ctx: &RequestContext,
    body: &R,
) -> Result<Bytes, ProtocolError> {
    encode_with(ctx.correlation_id, ctx.api_version, body)
}

/// [`encode`] for a request known by its correlation id and version alone.
pub fn encode_with<R: Encodable + HeaderVersion + 'static>(
    correlation_id: i32,
    version: i16,
    body: &R,
) -> Result<Bytes, ProtocolError> {
    // Kafka counts a response's error codes as it sends it (ErrorsPerSec).
    crate::stats::response_errors_any(body, version);
    let hv = R::header_version(version);
    let header = ResponseHeader::default().with_correlation_id(correlation_id);
    let enc = |e: anyhow::Error| ProtocolError::Encode(e.to_string());
    let size = header.compute_size(hv).map_err(enc)? + body.compute_size(version).map_err(enc)?;
    let mut buf = BytesMut::with_capacity(4 + size);
    buf.put_i32(size as i32);
    header.encode(&mut buf, hv).map_err(enc)?;
    body.encode(&mut buf, version).map_err(enc)?;
    Ok(buf.freeze())
}

/// Reads a Kafka `string` (int16 length) from a legacy request.
pub(crate) fn read_legacy_string(buf: &mut Bytes) -> Option<Option<String>> {
    if buf.remaining() < 2 {
        return None;
    }
    let len = buf.get_i16();
    if len < 0 {
        return Some(None);
    }
    let len = len as usize;
    if buf.remaining() < len {
        return None;
    }
    let s = buf.split_to(len);
    Some(Some(String::from_utf8_lossy(&s).into_owned()))
}
