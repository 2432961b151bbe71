//! One TCP connection to one broker: framing, request headers, correlation ids, timeouts and the
//! ApiVersions handshake that picks, per API, the highest version both sides speak.
//!
//! ```text
//! send(req) ─► [size:i32][RequestHeader vN][body vM] ─► broker
//!          ◄─ [size:i32][ResponseHeader vK][body vM] ◄─ (checked: size limit, correlation id)
//! ```
//! Requests are sent one at a time (no pipelining); a connection whose exchange was cut short by
//! a timeout or an I/O error is marked broken, because the next frame on it could belong to the
//! abandoned request. With [`ClientConfig::security`] the connection first completes a TLS
//! handshake and, after ApiVersions, a SASL login (`security.rs`).
//!
//! When the broker gives the SASL session a lifetime (KIP-368, `connections.max.reauth.ms`),
//! the connection logs in again on the same socket before it ends: the first request after a
//! random point between 85% and 95% of the lifetime (Kafka's client window: room for latency
//! and clock drift, spread so that a client's connections do not all renew at once) is
//! preceded by a new SaslHandshake and SaslAuthenticate. A failed re-authentication breaks the
//! connection (the broker closes it), and the request fails with the broker's reason.

use crate::error::{ClientError, Result};
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, RequestHeader, ResponseHeader,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use std::collections::HashMap;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;

/// Settings shared by every connection a client opens.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// `client.id` sent in every request header.
    pub client_id: String,
    /// Limit for opening the TCP connection and the ApiVersions handshake.
    pub connect_timeout: Duration,
    /// Limit for one request/response exchange (`request.timeout.ms`).
    pub request_timeout: Duration,
    /// Largest response frame accepted; protects against a peer announcing gigabytes.
    pub max_response_bytes: usize,
    /// TLS and SASL for secured listeners (`None`: PLAINTEXT).
    pub security: Option<std::sync::Arc<crate::Security>>,
    /// SO_SNDBUF of each connection (Kafka's `send.buffer.bytes`); -1: the OS's.
    pub send_buffer_bytes: i32,
    /// SO_RCVBUF of each connection (Kafka's `receive.buffer.bytes`, a follower's
    /// `replica.socket.receive.buffer.bytes`); -1: the OS's.
    pub receive_buffer_bytes: i32,
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            client_id: "gregor-client".to_owned(),
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            max_response_bytes: 256 * 1024 * 1024,
            security: None,
            send_buffer_bytes: crate::socket::OS_DEFAULT,
            receive_buffer_bytes: crate::socket::OS_DEFAULT,
        }
    }
}

/// A broker's advertised range for one API, as ApiVersions reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ApiRange {
    /// API key number.
    pub api_key: i16,
    /// Lowest version the broker accepts.
    pub min: i16,
    /// Highest version the broker accepts.
    pub max: i16,
}

/// Picks, for each API both sides know, the intersection of the broker's range and what
/// `kafka-protocol` can encode; requests use its highest version. APIs with an empty
/// intersection are left out.
pub fn negotiate_versions(broker: &[ApiRange]) -> HashMap<i16, ApiRange> {
    let mut out = HashMap::new();
    for r in broker {
        let Ok(key) = ApiKey::try_from(r.api_key) else {
            continue;
        };
        let ours = key.valid_versions();
        let min = ours.min.max(r.min);
        let max = ours.max.min(r.max);
        if min <= max {
            out.insert(
                r.api_key,
                ApiRange {
                    api_key: r.api_key,
                    min,
                    max,
                },
            );
        }
    }
    out
}

/// The byte stream to a broker: plain TCP or TLS over it.
#[derive(Debug)]
enum Stream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// A connection to one broker, after the ApiVersions handshake.
#[derive(Debug)]
pub struct Connection {
    /// `host:port` as dialled; used in error messages.
    addr: String,
    stream: Stream,
    client_id: StrBytes,
    /// Next correlation id; responses must echo the id of the request they answer.
    next_correlation_id: i32,
    /// Negotiated version range per API key.
    versions: HashMap<i16, ApiRange>,
    config: ClientConfig,
    /// Set when an exchange was abandoned half way; the stream is then out of step.
    broken: bool,
    /// When the SASL session must be renewed before the next request (KIP-368); `None`: not
    /// logged in, or a session without end.
    reauthenticate_at: Option<Instant>,
}

/// `step` (connecting to `addr`, its TLS handshake) within `limit`: its failure is a
/// [`ClientError::Connect`], running out of time a [`ClientError::Timeout`] naming `what` and
/// `addr`.
async fn within<T>(
    addr: &str,
    limit: Duration,
    what: &str,
    step: impl std::future::Future<Output = std::io::Result<T>>,
) -> Result<T> {
    match tokio::time::timeout(limit, step).await {
        Ok(Ok(done)) => Ok(done),
        Ok(Err(source)) => Err(ClientError::Connect {
            addr: addr.to_owned(),
            source,
        }),
        Err(_) => Err(ClientError::Timeout {
            what: format!("{what} {addr}"),
            after: limit,
        }),
    }
}

impl Connection {
    /// Opens a TCP connection to `addr` and negotiates API versions with ApiVersions.
    pub async fn connect(addr: &str, config: &ClientConfig) -> Result<Connection> {
        let connecting =
            crate::socket::connect(addr, config.send_buffer_bytes, config.receive_buffer_bytes);
        let stream = within(addr, config.connect_timeout, "connecting to", connecting).await?;
        // Small requests (metadata, offsets) should not wait for Nagle.
        let _ = stream.set_nodelay(true);
        let security = config.security.clone();
        let stream = match security.as_ref().and_then(|s| s.tls.clone()) {
            None => Stream::Plain(stream),
            Some(tls) => {
                let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
                let host = host.trim_matches(['[', ']']);
                let name =
                    rustls_pki_types::ServerName::try_from(host.to_owned()).map_err(|e| {
                        ClientError::Connect {
                            addr: addr.to_owned(),
                            source: std::io::Error::new(std::io::ErrorKind::InvalidInput, e),
                        }
                    })?;
                let connector = tokio_rustls::TlsConnector::from(tls);
                let handshake = connector.connect(name, stream);
                let tls = within(
                    addr,
                    config.connect_timeout,
                    "the TLS handshake with",
                    handshake,
                )
                .await?;
                Stream::Tls(Box::new(tls))
            }
        };
        let mut conn = Connection {
            addr: addr.to_owned(),
            stream,
            client_id: StrBytes::from_string(config.client_id.clone()),
            next_correlation_id: 0,
            versions: HashMap::new(),
            config: config.clone(),
            broken: false,
            reauthenticate_at: None,
        };
        conn.handshake().await?;
        if let Some(login) = security.as_ref().and_then(|s| s.sasl.as_ref()) {
            conn.sasl_login(login).await?;
        }
        tracing::debug!(addr, apis = conn.versions.len(), "connected");
        Ok(conn)
    }

    /// The address this connection was opened to.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// True once an exchange failed half way; the connection must be replaced.
    pub fn is_broken(&self) -> bool {
        self.broken
    }

    /// The negotiated version of `key`, or an error when no common version exists.
    pub fn version(&self, key: ApiKey) -> Result<i16> {
        self.version_at_most(key, i16::MAX)
    }

    /// The highest common version of `key` not above `cap` (e.g. Produce below v13 when the
    /// topic id is unknown), or an error when none exists.
    pub fn version_at_most(&self, key: ApiKey, cap: i16) -> Result<i16> {
        match self.versions.get(&(key as i16)) {
            Some(r) if r.min <= cap => Ok(r.max.min(cap)),
            _ => Err(ClientError::UnsupportedApi {
                addr: self.addr.clone(),
                api: format!("{key:?}"),
            }),
        }
    }

    /// True when the broker supports `key` at some version this client speaks.
    pub fn supports(&self, key: ApiKey) -> bool {
        self.versions.contains_key(&(key as i16))
    }

    /// Sends `req` at the negotiated version and waits for its response.
    pub async fn send<R: Request>(&mut self, req: &R) -> Result<R::Response> {
        let key = api_key::<R>()?;
        let version = self.version(key)?;
        self.send_at(req, version).await
    }

    /// Sends `req` at an explicit `version` (the caller built the body for it).
    pub async fn send_at<R: Request>(&mut self, req: &R, version: i16) -> Result<R::Response> {
        self.send_at_with_timeout(req, version, self.config.request_timeout)
            .await
    }

    /// Like [`Connection::send_at`], with a custom time limit (a Fetch waits `max_wait` on the
    /// broker, so its limit must be longer).
    pub async fn send_at_with_timeout<R: Request>(
        &mut self,
        req: &R,
        version: i16,
        limit: Duration,
    ) -> Result<R::Response> {
        self.maybe_reauthenticate().await?;
        self.request(req, version, limit).await
    }

    /// Sends a request the broker will not answer (Produce with acks=0).
    pub async fn send_no_response<R: Request>(&mut self, req: &R, version: i16) -> Result<()> {
        self.maybe_reauthenticate().await?;
        self.exchange::<R>(req, version, self.config.request_timeout, false)
            .await
            .map(|_| ())
    }

    /// One request and its response, with no look at the SASL session (the login itself).
    async fn request<R: Request>(
        &mut self,
        req: &R,
        version: i16,
        limit: Duration,
    ) -> Result<R::Response> {
        let key = api_key::<R>()?;
        let mut body = self.exchange::<R>(req, version, limit, true).await?;
        let resp = R::Response::decode(&mut body, version).map_err(|e| self.decode_err(key, e))?;
        Ok(resp)
    }

    /// Logs in again when the session is due for renewal (KIP-368). A failure leaves the
    /// connection broken: the broker closes it after a failed re-authentication.
    async fn maybe_reauthenticate(&mut self) -> Result<()> {
        let Some(at) = self.reauthenticate_at else {
            return Ok(());
        };
        if self.broken || Instant::now() < at {
            return Ok(());
        }
        let Some(login) = self.config.security.as_ref().and_then(|s| s.sasl.clone()) else {
            return Ok(());
        };
        tracing::debug!(addr = %self.addr, user = %login.username, "SASL re-authentication");
        self.reauthenticate_at = None;
        let result = self.sasl_login(&login).await;
        if result.is_err() {
            self.broken = true;
        }
        result
    }

    async fn handshake(&mut self) -> Result<()> {
        let ours = ApiKey::ApiVersions.valid_versions();
        let mut version = ours.max;
        let limit = self.config.connect_timeout;
        // At most two rounds: a broker that does not know our version answers with a v0 body
        // listing what it does support, and we retry once at the best common version.
        for _ in 0..2 {
            let req = ApiVersionsRequest::default()
                .with_client_software_name(StrBytes::from_static_str("gregor"))
                .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
            let mut body = self
                .exchange::<ApiVersionsRequest>(&req, version, limit, true)
                .await?;
            let code = if body.len() >= 2 {
                i16::from_be_bytes([body[0], body[1]])
            } else {
                0
            };
            let decode_version = if code == 35 { 0 } else { version };
            let resp = ApiVersionsResponse::decode(&mut body, decode_version)
                .map_err(|e| self.decode_err(ApiKey::ApiVersions, e))?;
            let ranges: Vec<ApiRange> = resp
                .api_keys
                .iter()
                .map(|k| ApiRange {
                    api_key: k.api_key,
                    min: k.min_version,
                    max: k.max_version,
                })
                .collect();
            if code == 35 {
                let theirs = ranges
                    .iter()
                    .find(|r| r.api_key == ApiKey::ApiVersions as i16)
                    .map(|r| r.max)
                    .unwrap_or(0);
                let next = theirs.min(ours.max);
                if next >= version {
                    break;
                }
                version = next.max(0);
                continue;
            }
            ClientError::check(resp.error_code, None, || {
                format!("ApiVersions from {}", self.addr)
            })?;
            self.versions = negotiate_versions(&ranges);
            return Ok(());
        }
        Err(ClientError::UnsupportedApi {
            addr: self.addr.clone(),
            api: "ApiVersions".to_owned(),
        })
    }

    /// SaslHandshake v1, then SaslAuthenticate: PLAIN in one round, SCRAM in two. When the
    /// broker gives the session a lifetime, the time to renew it is set (see the module doc).
    async fn sasl_login(&mut self, login: &crate::SaslLogin) -> Result<()> {
        use crate::security::ScramClient;
        use kafka_protocol::messages::SaslHandshakeRequest;
        let refused = |addr: &str, message: String| ClientError::Protocol {
            addr: addr.to_owned(),
            message: format!("SASL authentication failed: {message}"),
        };
        let resp = self
            .request(
                &SaslHandshakeRequest::default()
                    .with_mechanism(StrBytes::from_static_str(login.mechanism.name())),
                1,
                self.config.request_timeout,
            )
            .await?;
        if resp.error_code != 0 {
            let enabled: Vec<&str> = resp.mechanisms.iter().map(|m| m.as_str()).collect();
            return Err(refused(
                &self.addr,
                format!(
                    "the listener does not take {} (error {}; it takes {enabled:?})",
                    login.mechanism.name(),
                    resp.error_code
                ),
            ));
        }
        // The session's lifetime counts from the broker's end of the exchange, which is after
        // the last round was sent: counting from the send errs on the safe side.
        let (last_sent, lifetime_ms) = if login.mechanism == crate::SaslMechanism::Plain {
            let token = format!("\0{}\0{}", login.username, login.password).into_bytes();
            let sent = Instant::now();
            (sent, self.sasl_round(token).await?.1)
        } else if login.mechanism == crate::SaslMechanism::OAuthBearer {
            // RFC 7628: the token in one round; a refusal comes as a JSON error the client
            // acknowledges with 0x01 before the broker fails the exchange.
            let first = crate::security::oauthbearer_first_message(login)
                .map_err(|m| refused(&self.addr, m))?;
            let sent = Instant::now();
            let (reply, lifetime_ms) = self.sasl_round(first).await?;
            if !reply.is_empty() {
                let error = String::from_utf8_lossy(&reply).into_owned();
                self.sasl_round(vec![1]).await?;
                return Err(refused(&self.addr, error));
            }
            (sent, lifetime_ms)
        } else {
            let (mut scram, first) = ScramClient::start(login);
            let (server_first, _) = self.sasl_round(first).await?;
            let last = scram
                .client_final(&server_first)
                .map_err(|m| refused(&self.addr, m))?;
            let sent = Instant::now();
            let (server_final, lifetime_ms) = self.sasl_round(last).await?;
            scram
                .verify(&server_final)
                .map_err(|m| refused(&self.addr, m))?;
            (sent, lifetime_ms)
        };
        self.reauthenticate_at =
            reauthentication_time(last_sent, lifetime_ms, rand::random::<f64>());
        Ok(())
    }

    /// One SaslAuthenticate round: the server's token and the session lifetime it gives (0
    /// before the last round, and from brokers without re-authentication).
    async fn sasl_round(&mut self, token: Vec<u8>) -> Result<(Bytes, i64)> {
        use kafka_protocol::messages::SaslAuthenticateRequest;
        let req = SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(token));
        let version = self.version(ApiKey::SaslAuthenticate)?;
        let resp = self
            .request(&req, version, self.config.request_timeout)
            .await?;
        if resp.error_code != 0 {
            return Err(ClientError::Protocol {
                addr: self.addr.clone(),
                message: format!(
                    "SASL authentication failed: {}",
                    resp.error_message
                        .map(|m| m.to_string())
                        .unwrap_or_else(|| format!("error {}", resp.error_code))
                ),
            });
        }
        Ok((resp.auth_bytes, resp.session_lifetime_ms))
    }

    /// Writes one request and, when `expect_response`, reads the matching response frame and
    /// returns its body (after the response header).
    async fn exchange<R: Request>(
        &mut self,
        req: &R,
        version: i16,
        limit: Duration,
        expect_response: bool,
    ) -> Result<Bytes> {
        if self.broken {
            return Err(ClientError::Io {
                addr: self.addr.clone(),
                source: std::io::Error::new(
                    std::io::ErrorKind::NotConnected,
                    "connection was abandoned after an earlier failure",
                ),
            });
        }
        let key = api_key::<R>()?;
        let correlation_id = self.next_correlation_id;
        self.next_correlation_id = self.next_correlation_id.wrapping_add(1);
        let frame = encode_request(req, version, correlation_id, &self.client_id)?;
        self.broken = true;
        let fut = async {
            let io = |source| ClientError::Io {
                addr: self.addr.clone(),
                source,
            };
            self.stream.write_all(&frame).await.map_err(io)?;
            // TLS holds written bytes until flushed (a no-op on plain TCP).
            self.stream.flush().await.map_err(io)?;
            if !expect_response {
                return Ok(Bytes::new());
            }
            self.read_frame().await
        };
        let mut frame = match tokio::time::timeout(limit, fut).await {
            Ok(r) => r?,
            Err(_) => {
                return Err(ClientError::Timeout {
                    what: format!("{key:?} request to {}", self.addr),
                    after: limit,
                })
            }
        };
        self.broken = false;
        if !expect_response {
            return Ok(frame);
        }
        let header_version = R::Response::header_version(version);
        let header = ResponseHeader::decode(&mut frame, header_version)
            .map_err(|e| self.decode_err(key, e))?;
        if header.correlation_id != correlation_id {
            self.broken = true;
            return Err(ClientError::Protocol {
                addr: self.addr.clone(),
                message: format!(
                    "response correlation id {} does not match request {correlation_id}",
                    header.correlation_id
                ),
            });
        }
        Ok(frame)
    }

    async fn read_frame(&mut self) -> Result<Bytes> {
        let io = |addr: &str, source| ClientError::Io {
            addr: addr.to_owned(),
            source,
        };
        let mut size = [0u8; 4];
        self.stream
            .read_exact(&mut size)
            .await
            .map_err(|e| io(&self.addr, e))?;
        let size = i32::from_be_bytes(size);
        if size < 0 || size as usize > self.config.max_response_bytes {
            return Err(ClientError::Protocol {
                addr: self.addr.clone(),
                message: format!(
                    "response frame size {size} outside 0..={}",
                    self.config.max_response_bytes
                ),
            });
        }
        let mut buf = BytesMut::zeroed(size as usize);
        self.stream
            .read_exact(&mut buf)
            .await
            .map_err(|e| io(&self.addr, e))?;
        Ok(buf.freeze())
    }

    fn decode_err(&self, key: ApiKey, e: impl std::fmt::Display) -> ClientError {
        ClientError::Decode {
            addr: self.addr.clone(),
            message: format!("{key:?}: {e}"),
        }
    }
}

/// When to renew a SASL session of `lifetime_ms` that began at `start` (KIP-368): at
/// 85% + `jitter` × 10% of the lifetime (`jitter` in 0..1), as Kafka's client does; `None` for a
/// session without end (0) or one too long for the clock.
fn reauthentication_time(start: Instant, lifetime_ms: i64, jitter: f64) -> Option<Instant> {
    if lifetime_ms <= 0 {
        return None;
    }
    let share = 0.85 + 0.10 * jitter.clamp(0.0, 1.0);
    let ms = (lifetime_ms as f64 * share) as u64;
    start.checked_add(Duration::from_millis(ms))
}

fn api_key<R: Request>() -> Result<ApiKey> {
    ApiKey::try_from(R::KEY).map_err(|_| ClientError::Encode(format!("unknown API key {}", R::KEY)))
}

/// Encodes a whole request frame: size prefix, header at the version the API requires, body.
pub(crate) fn encode_request<R: Request>(
    req: &R,
    version: i16,
    correlation_id: i32,
    client_id: &StrBytes,
) -> Result<Bytes> {
    let header = RequestHeader::default()
        .with_request_api_key(R::KEY)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(client_id.clone()));
    let mut buf = BytesMut::with_capacity(64);
    buf.put_i32(0);
    header
        .encode(&mut buf, R::header_version(version))
        .map_err(|e| ClientError::Encode(format!("request header: {e}")))?;
    req.encode(&mut buf, version)
        .map_err(|e| ClientError::Encode(format!("API {} v{version}: {e}", R::KEY)))?;
    let len = i32::try_from(buf.len() - 4)
        .map_err(|_| ClientError::Encode("request larger than 2 GiB".to_owned()))?;
    buf[..4].copy_from_slice(&len.to_be_bytes());
    Ok(buf.freeze())
}

/// Reads the frame size prefix of `frame` (for tests).
#[cfg(test)]
fn frame_len(frame: &Bytes) -> i32 {
    i32::from_be_bytes([frame[0], frame[1], frame[2], frame[3]])
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::api_versions_response::ApiVersion;
    use kafka_protocol::messages::MetadataRequest;

    #[test]
    fn negotiation_takes_highest_common_version() {
        let broker = [
            ApiRange {
                api_key: ApiKey::Produce as i16,
                min: 0,
                max: 9,
            },
            ApiRange {
                api_key: ApiKey::Fetch as i16,
                min: 4,
                max: 99,
            },
            // Only v0..2 offered: kafka-protocol starts Produce-like APIs higher, no overlap.
            ApiRange {
                api_key: ApiKey::CreateTopics as i16,
                min: 0,
                max: 1,
            },
            ApiRange {
                api_key: 9999,
                min: 0,
                max: 3,
            },
        ];
        let v = negotiate_versions(&broker);
        let max = |k: ApiKey| v.get(&(k as i16)).map(|r| r.max);
        let min = |k: ApiKey| v.get(&(k as i16)).map(|r| r.min);
        assert_eq!(max(ApiKey::Produce), Some(9));
        assert_eq!(min(ApiKey::Produce), Some(3));
        assert_eq!(max(ApiKey::Fetch), Some(ApiKey::Fetch.valid_versions().max));
        assert_eq!(v.get(&(ApiKey::CreateTopics as i16)), None);
        assert_eq!(v.len(), 2);
    }

    #[test]
    fn request_frame_round_trips_through_the_broker_side_decoder() {
        let req = MetadataRequest::default().with_allow_auto_topic_creation(false);
        let frame = encode_request(&req, 12, 7, &StrBytes::from_static_str("t")).expect("encode");
        assert_eq!(frame_len(&frame) as usize, frame.len() - 4);
        let mut body = frame.slice(4..);
        let header =
            kafka_protocol::protocol::decode_request_header_from_buffer(&mut body).expect("hdr");
        assert_eq!(header.request_api_key, ApiKey::Metadata as i16);
        assert_eq!(header.request_api_version, 12);
        assert_eq!(header.correlation_id, 7);
        let back = MetadataRequest::decode(&mut body, 12).expect("body");
        assert_eq!(back, req);
    }

    async fn read_test_frame(s: &mut TcpStream) -> Bytes {
        let mut len = [0u8; 4];
        s.read_exact(&mut len).await.expect("len");
        let mut buf = vec![0u8; i32::from_be_bytes(len) as usize];
        s.read_exact(&mut buf).await.expect("body");
        Bytes::from(buf)
    }

    fn api(key: ApiKey, min: i16, max: i16) -> ApiVersion {
        ApiVersion::default()
            .with_api_key(key as i16)
            .with_min_version(min)
            .with_max_version(max)
    }

    /// A broker that only knows ApiVersions v0..3 answers our v4 with UNSUPPORTED_VERSION and a
    /// v0 body; the client must retry at v3 and then use the versions it learns.
    #[tokio::test]
    async fn handshake_falls_back_to_the_brokers_api_versions_version() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        let broker = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.expect("accept");
            let mut seen = Vec::new();
            for _ in 0..2 {
                let mut body = read_test_frame(&mut s).await;
                let header = kafka_protocol::protocol::decode_request_header_from_buffer(&mut body)
                    .expect("header");
                seen.push(header.request_api_version);
                let mut out = BytesMut::new();
                out.put_i32(0);
                out.put_i32(header.correlation_id); // response header v0
                if header.request_api_version > 3 {
                    ApiVersionsResponse::default()
                        .with_error_code(35)
                        .with_api_keys(vec![api(ApiKey::ApiVersions, 0, 3)])
                        .encode(&mut out, 0)
                        .expect("encode v0");
                } else {
                    ApiVersionsResponse::default()
                        .with_api_keys(vec![
                            api(ApiKey::ApiVersions, 0, 3),
                            api(ApiKey::Metadata, 0, 12),
                        ])
                        .encode(&mut out, header.request_api_version)
                        .expect("encode");
                }
                let len = (out.len() - 4) as i32;
                out[..4].copy_from_slice(&len.to_be_bytes());
                s.write_all(&out).await.expect("write");
            }
            seen
        });
        let conn = Connection::connect(&addr, &ClientConfig::default())
            .await
            .expect("connect");
        assert_eq!(conn.version(ApiKey::Metadata).expect("metadata"), 12);
        assert_eq!(
            conn.version_at_most(ApiKey::Metadata, 9).expect("capped"),
            9
        );
        assert!(conn.version(ApiKey::Produce).is_err());
        let seen = broker.await.expect("broker task");
        assert_eq!(seen, vec![ApiKey::ApiVersions.valid_versions().max, 3]);
    }

    #[tokio::test]
    async fn a_silent_broker_times_out() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        let _hold = tokio::spawn(async move {
            let (s, _) = listener.accept().await.expect("accept");
            tokio::time::sleep(Duration::from_secs(5)).await;
            drop(s);
        });
        let config = ClientConfig {
            connect_timeout: Duration::from_millis(200),
            ..ClientConfig::default()
        };
        let err = Connection::connect(&addr, &config)
            .await
            .expect_err("must time out");
        assert!(matches!(err, ClientError::Timeout { .. }), "{err}");
    }

    #[test]
    fn reauthentication_comes_between_85_and_95_percent_of_the_lifetime() {
        let t = Instant::now();
        let at = |lifetime, jitter| reauthentication_time(t, lifetime, jitter).map(|i| i - t);
        assert_eq!(at(10_000, 0.0), Some(Duration::from_millis(8_500)));
        assert_eq!(at(10_000, 0.5), Some(Duration::from_millis(9_000)));
        assert_eq!(at(10_000, 1.0), Some(Duration::from_millis(9_500)));
        assert_eq!(at(10_000, 7.0), Some(Duration::from_millis(9_500)));
        assert_eq!(at(0, 0.5), None, "a session without end");
        assert_eq!(at(-1, 0.5), None);
    }

    /// A broker speaking just enough for a PLAIN login and Metadata, whose sessions last
    /// `lifetime_ms`; it answers the `fail_login`th SaslAuthenticate (from 1) with
    /// SASL_AUTHENTICATION_FAILED and closes. Returns its address and the API keys it saw.
    async fn sasl_broker(
        lifetime_ms: i64,
        fail_login: usize,
    ) -> (String, tokio::task::JoinHandle<Vec<i16>>) {
        use kafka_protocol::messages::{
            MetadataResponse, SaslAuthenticateResponse, SaslHandshakeResponse,
        };
        use kafka_protocol::protocol::HeaderVersion;
        fn respond<R: Encodable + HeaderVersion>(
            correlation_id: i32,
            version: i16,
            body: &R,
        ) -> BytesMut {
            let mut out = BytesMut::new();
            out.put_i32(0);
            ResponseHeader::default()
                .with_correlation_id(correlation_id)
                .encode(&mut out, R::header_version(version))
                .expect("header");
            body.encode(&mut out, version).expect("body");
            let len = (out.len() - 4) as i32;
            out[..4].copy_from_slice(&len.to_be_bytes());
            out
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        let task = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.expect("accept");
            let mut seen = Vec::new();
            let mut logins = 0;
            loop {
                let mut len = [0u8; 4];
                if s.read_exact(&mut len).await.is_err() {
                    return seen;
                }
                let mut body = vec![0u8; i32::from_be_bytes(len) as usize];
                s.read_exact(&mut body).await.expect("body");
                let mut body = Bytes::from(body);
                let h = kafka_protocol::protocol::decode_request_header_from_buffer(&mut body)
                    .expect("header");
                let (key, v, id) = (h.request_api_key, h.request_api_version, h.correlation_id);
                seen.push(key);
                let out = match ApiKey::try_from(key).expect("known") {
                    ApiKey::ApiVersions if v > 3 => respond(
                        id,
                        0,
                        &ApiVersionsResponse::default()
                            .with_error_code(35)
                            .with_api_keys(vec![api(ApiKey::ApiVersions, 0, 3)]),
                    ),
                    ApiKey::ApiVersions => respond(
                        id,
                        v,
                        &ApiVersionsResponse::default().with_api_keys(vec![
                            api(ApiKey::ApiVersions, 0, 3),
                            api(ApiKey::Metadata, 0, 12),
                            api(ApiKey::SaslHandshake, 0, 1),
                            api(ApiKey::SaslAuthenticate, 0, 2),
                        ]),
                    ),
                    ApiKey::SaslHandshake => respond(
                        id,
                        v,
                        &SaslHandshakeResponse::default()
                            .with_mechanisms(vec![StrBytes::from_static_str("PLAIN")]),
                    ),
                    ApiKey::SaslAuthenticate => {
                        logins += 1;
                        if logins == fail_login {
                            let out = respond(
                                id,
                                v,
                                &SaslAuthenticateResponse::default()
                                    .with_error_code(58)
                                    .with_error_message(Some(StrBytes::from_static_str(
                                        "Authentication failed: Invalid username or password",
                                    ))),
                            );
                            s.write_all(&out).await.expect("write");
                            return seen;
                        }
                        respond(
                            id,
                            v,
                            &SaslAuthenticateResponse::default()
                                .with_session_lifetime_ms(lifetime_ms),
                        )
                    }
                    _ => respond(id, v, &MetadataResponse::default()),
                };
                s.write_all(&out).await.expect("write");
            }
        });
        (addr, task)
    }

    fn sasl_config() -> ClientConfig {
        ClientConfig {
            security: Some(std::sync::Arc::new(crate::Security {
                tls: None,
                sasl: Some(crate::SaslLogin {
                    mechanism: crate::SaslMechanism::Plain,
                    username: "alice".into(),
                    password: "alice-secret".into(),
                }),
            })),
            ..ClientConfig::default()
        }
    }

    /// With a session lifetime, the first request after 95% of it is preceded by a new
    /// SaslHandshake and SaslAuthenticate on the same connection; requests before 85% are not.
    #[tokio::test]
    async fn a_session_with_a_lifetime_is_renewed_before_it_ends() {
        let (addr, broker) = sasl_broker(400, 0).await;
        let mut conn = Connection::connect(&addr, &sasl_config())
            .await
            .expect("connect");
        let metadata = MetadataRequest::default();
        conn.send(&metadata).await.expect("metadata");
        conn.send(&metadata).await.expect("metadata");
        tokio::time::sleep(Duration::from_millis(450)).await;
        conn.send(&metadata)
            .await
            .expect("metadata after re-authentication");
        conn.send(&metadata).await.expect("metadata");
        drop(conn);
        let seen: Vec<i16> = broker
            .await
            .expect("broker")
            .into_iter()
            .filter(|k| *k != ApiKey::ApiVersions as i16)
            .collect();
        let (hs, auth, md) = (
            ApiKey::SaslHandshake as i16,
            ApiKey::SaslAuthenticate as i16,
            ApiKey::Metadata as i16,
        );
        assert_eq!(seen, vec![hs, auth, md, md, hs, auth, md, md]);

        // Without a lifetime, never.
        let (addr, broker) = sasl_broker(0, 0).await;
        let mut conn = Connection::connect(&addr, &sasl_config())
            .await
            .expect("connect");
        conn.send(&metadata).await.expect("metadata");
        tokio::time::sleep(Duration::from_millis(100)).await;
        conn.send(&metadata).await.expect("metadata");
        drop(conn);
        let seen = broker.await.expect("broker");
        assert_eq!(seen.iter().filter(|k| **k == hs).count(), 1);
    }

    /// A refused re-authentication fails the request with the broker's reason and breaks the
    /// connection.
    #[tokio::test]
    async fn a_refused_reauthentication_breaks_the_connection() {
        let (addr, broker) = sasl_broker(200, 2).await;
        let mut conn = Connection::connect(&addr, &sasl_config())
            .await
            .expect("connect");
        tokio::time::sleep(Duration::from_millis(250)).await;
        let err = conn
            .send(&MetadataRequest::default())
            .await
            .expect_err("the re-authentication is refused");
        assert!(
            err.to_string().contains("Invalid username or password"),
            "{err}"
        );
        assert!(conn.is_broken());
        let seen = broker.await.expect("broker");
        assert!(!seen.contains(&(ApiKey::Metadata as i16)), "{seen:?}");
    }
}
