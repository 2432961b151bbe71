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

use crate::error::{ClientError, Result};
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, RequestHeader, ResponseHeader,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use std::collections::HashMap;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;
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
}

impl Default for ClientConfig {
    fn default() -> Self {
        ClientConfig {
            client_id: "gregor-client".to_owned(),
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            max_response_bytes: 256 * 1024 * 1024,
            security: None,
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
}

impl Connection {
    /// Opens a TCP connection to `addr` and negotiates API versions with ApiVersions.
    pub async fn connect(addr: &str, config: &ClientConfig) -> Result<Connection> {
        let stream =
            match tokio::time::timeout(config.connect_timeout, TcpStream::connect(addr)).await {
                Ok(Ok(s)) => s,
                Ok(Err(source)) => {
                    return Err(ClientError::Connect {
                        addr: addr.to_owned(),
                        source,
                    })
                }
                Err(_) => {
                    return Err(ClientError::Timeout {
                        what: format!("connecting to {addr}"),
                        after: config.connect_timeout,
                    })
                }
            };
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
                match tokio::time::timeout(config.connect_timeout, connector.connect(name, stream))
                    .await
                {
                    Ok(Ok(s)) => Stream::Tls(Box::new(s)),
                    Ok(Err(source)) => {
                        return Err(ClientError::Connect {
                            addr: addr.to_owned(),
                            source,
                        })
                    }
                    Err(_) => {
                        return Err(ClientError::Timeout {
                            what: format!("the TLS handshake with {addr}"),
                            after: config.connect_timeout,
                        })
                    }
                }
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
        let key = api_key::<R>()?;
        let mut body = self.exchange::<R>(req, version, limit, true).await?;
        let resp = R::Response::decode(&mut body, version).map_err(|e| self.decode_err(key, e))?;
        Ok(resp)
    }

    /// Sends a request the broker will not answer (Produce with acks=0).
    pub async fn send_no_response<R: Request>(&mut self, req: &R, version: i16) -> Result<()> {
        self.exchange::<R>(req, version, self.config.request_timeout, false)
            .await
            .map(|_| ())
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

    /// SaslHandshake v1, then SaslAuthenticate: PLAIN in one round, SCRAM in two.
    async fn sasl_login(&mut self, login: &crate::SaslLogin) -> Result<()> {
        use crate::security::ScramClient;
        use kafka_protocol::messages::SaslHandshakeRequest;
        let refused = |addr: &str, message: String| ClientError::Protocol {
            addr: addr.to_owned(),
            message: format!("SASL authentication failed: {message}"),
        };
        let resp = self
            .send_at(
                &SaslHandshakeRequest::default()
                    .with_mechanism(StrBytes::from_static_str(login.mechanism.name())),
                1,
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
        if login.mechanism == crate::SaslMechanism::Plain {
            let token = format!("\0{}\0{}", login.username, login.password).into_bytes();
            self.sasl_round(token).await?;
            return Ok(());
        }
        let (mut scram, first) = ScramClient::start(login);
        let server_first = self.sasl_round(first).await?;
        let last = scram
            .client_final(&server_first)
            .map_err(|m| refused(&self.addr, m))?;
        let server_final = self.sasl_round(last).await?;
        scram
            .verify(&server_final)
            .map_err(|m| refused(&self.addr, m))
    }

    /// One SaslAuthenticate round: the server's token.
    async fn sasl_round(&mut self, token: Vec<u8>) -> Result<Bytes> {
        use kafka_protocol::messages::SaslAuthenticateRequest;
        let req = SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(token));
        let resp = self.send(&req).await?;
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
        Ok(resp.auth_bytes)
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
}
