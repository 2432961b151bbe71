//! The request router: reads the request header, checks the API key and version against what
//! gregor advertises, decodes the typed request and hands it to that API's handler.
//!
//! Version policy (the same as Kafka's): an ApiVersions request of a version we do not know is
//! answered in the v0 format with UNSUPPORTED_VERSION and our ranges, so the client can retry;
//! Produce v0–v2 (advertised so librdkafka keeps compression on) get UNSUPPORTED_VERSION per
//! partition; any other unknown key or version closes the connection.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use gregor_protocol::messages::{
    ApiKey, ApiVersionsRequest, CreateTopicsRequest, DeleteTopicsRequest, FetchRequest,
    ListOffsetsRequest, MetadataRequest, ProduceRequest, RequestHeader, ResponseHeader,
};
use gregor_protocol::protocol::{Decodable, Encodable, HeaderVersion};

use crate::handlers;
use crate::server::Broker;

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

/// APIs gregor implements and the versions it advertises (the table lives with the request
/// decoder, so the fuzz targets decode exactly what the broker serves).
pub use gregor_protocol::request::SUPPORTED_APIS;

/// The advertised range of an API, if supported.
pub fn supported_range(api: ApiKey) -> Option<(i16, i16)> {
    SUPPORTED_APIS
        .iter()
        .find(|(k, _, _)| *k == api)
        .map(|&(_, min, max)| (min, max))
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
}

/// Encodes a response with its header and size prefix.
pub fn encode<R: Encodable + HeaderVersion>(
    ctx: &RequestContext,
    body: &R,
) -> Result<Bytes, ProtocolError> {
    let hv = R::header_version(ctx.api_version);
    let header = ResponseHeader::default().with_correlation_id(ctx.correlation_id);
    let enc = |e: anyhow::Error| ProtocolError::Encode(e.to_string());
    let size =
        header.compute_size(hv).map_err(enc)? + body.compute_size(ctx.api_version).map_err(enc)?;
    let mut buf = BytesMut::with_capacity(4 + size);
    buf.put_i32(size as i32);
    header.encode(&mut buf, hv).map_err(enc)?;
    body.encode(&mut buf, ctx.api_version).map_err(enc)?;
    Ok(buf.freeze())
}

fn decode<T: Decodable>(ctx: &RequestContext, body: &mut Bytes) -> Result<T, ProtocolError> {
    T::decode(body, ctx.api_version).map_err(|e| ProtocolError::Decode {
        api: ctx.api,
        version: ctx.api_version,
        reason: e.to_string(),
    })
}

/// Routes one request frame (without its size prefix).
pub fn dispatch(
    broker: &Arc<Broker>,
    peer: std::net::SocketAddr,
    frame: Bytes,
) -> Result<Reply, ProtocolError> {
    if frame.len() < 8 {
        return Err(ProtocolError::TooShort(frame.len()));
    }
    let key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
    let api = ApiKey::try_from(key).map_err(|_| ProtocolError::UnknownApiKey {
        key,
        client_id: peek_client_id(&frame),
    })?;
    let Some((min, max)) = supported_range(api) else {
        return Err(ProtocolError::UnsupportedVersion {
            api,
            version,
            client_id: peek_client_id(&frame),
        });
    };
    if version < min || version > max {
        if api == ApiKey::ApiVersions {
            return Ok(Reply::Ready(
                handlers::api_versions::unsupported_version_reply(correlation_id),
            ));
        }
        return Err(ProtocolError::UnsupportedVersion {
            api,
            version,
            client_id: peek_client_id(&frame),
        });
    }
    if api == ApiKey::Produce && version < 3 {
        return handlers::produce::legacy_unsupported(frame, version);
    }
    let mut body = frame;
    let mut ctx = RequestContext {
        api,
        api_version: version,
        correlation_id,
        client_id: None,
        client_host: format!("/{}", peer.ip()),
    };
    let header: RequestHeader =
        RequestHeader::decode(&mut body, api.request_header_version(version)).map_err(|e| {
            ProtocolError::Decode {
                api,
                version,
                reason: format!("request header: {e}"),
            }
        })?;
    ctx.client_id = header.client_id.map(|s| s.to_string());

    let reply = match api {
        ApiKey::ApiVersions => {
            let req: ApiVersionsRequest = decode(&ctx, &mut body)?;
            Reply::Ready(encode(&ctx, &handlers::api_versions::handle(&req))?)
        }
        ApiKey::Metadata => {
            let req: MetadataRequest = decode(&ctx, &mut body)?;
            Reply::Ready(encode(
                &ctx,
                &handlers::metadata::handle(broker, &ctx, req),
            )?)
        }
        ApiKey::CreateTopics => {
            let req: CreateTopicsRequest = decode(&ctx, &mut body)?;
            handlers::create_topics::handle(broker, ctx, req)
        }
        ApiKey::DeleteTopics => {
            let req: DeleteTopicsRequest = decode(&ctx, &mut body)?;
            Reply::Ready(encode(
                &ctx,
                &handlers::delete_topics::handle(broker, &ctx, req),
            )?)
        }
        ApiKey::ListOffsets => {
            let req: ListOffsetsRequest = decode(&ctx, &mut body)?;
            Reply::Ready(encode(
                &ctx,
                &handlers::list_offsets::handle(broker, &ctx, req),
            )?)
        }
        ApiKey::Produce => {
            let req: ProduceRequest = decode(&ctx, &mut body)?;
            handlers::produce::handle(broker, ctx, req)?
        }
        ApiKey::Fetch => {
            let req: FetchRequest = decode(&ctx, &mut body)?;
            handlers::fetch::handle(broker, ctx, req)
        }
        ApiKey::FindCoordinator => {
            let req = decode(&ctx, &mut body)?;
            Reply::Ready(encode(
                &ctx,
                &handlers::find_coordinator::handle(broker, &ctx, req),
            )?)
        }
        ApiKey::JoinGroup => {
            handlers::join_group::handle(broker, ctx.clone(), decode(&ctx, &mut body)?)
        }
        ApiKey::SyncGroup => {
            handlers::sync_group::handle(broker, ctx.clone(), decode(&ctx, &mut body)?)
        }
        ApiKey::Heartbeat => {
            let req = decode(&ctx, &mut body)?;
            Reply::Ready(encode(
                &ctx,
                &handlers::heartbeat::handle(broker, &ctx, req),
            )?)
        }
        ApiKey::LeaveGroup => {
            handlers::leave_group::handle(broker, ctx.clone(), decode(&ctx, &mut body)?)
        }
        ApiKey::OffsetCommit => {
            handlers::offset_commit::handle(broker, ctx.clone(), decode(&ctx, &mut body)?)
        }
        ApiKey::OffsetFetch => {
            let req = decode(&ctx, &mut body)?;
            Reply::Ready(encode(
                &ctx,
                &handlers::offset_fetch::handle(broker, &ctx, req),
            )?)
        }
        ApiKey::ListGroups => {
            let req = decode(&ctx, &mut body)?;
            Reply::Ready(encode(
                &ctx,
                &handlers::list_groups::handle(broker, &ctx, req),
            )?)
        }
        ApiKey::DescribeGroups => {
            let req = decode(&ctx, &mut body)?;
            Reply::Ready(encode(
                &ctx,
                &handlers::describe_groups::handle(broker, &ctx, req),
            )?)
        }
        ApiKey::DeleteGroups => {
            handlers::delete_groups::handle(broker, ctx.clone(), decode(&ctx, &mut body)?)
        }
        ApiKey::OffsetDelete => {
            handlers::offset_delete::handle(broker, ctx.clone(), decode(&ctx, &mut body)?)
        }
        other => {
            return Err(ProtocolError::UnsupportedVersion {
                api: other,
                version,
                client_id: ctx.client_id,
            })
        }
    };
    Ok(reply)
}

/// The `client_id` of a request header that will not be decoded (its API or version is not
/// served), for the log line: every header version but v0 (ControlledShutdown v0 only) has it
/// right after the correlation id, as a nullable int16-length string.
fn peek_client_id(frame: &[u8]) -> Option<String> {
    let len = i16::from_be_bytes([*frame.get(8)?, *frame.get(9)?]);
    let bytes = frame.get(10..10 + usize::try_from(len).ok()?)?;
    Some(String::from_utf8_lossy(bytes).into_owned())
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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn broker(dir: &std::path::Path) -> Arc<Broker> {
        let mut config = crate::config::BrokerConfig {
            data_dir: dir.to_path_buf(),
            ..Default::default()
        };
        config.group.offsets_topic_num_partitions = 2;
        crate::server::test_broker(config)
    }

    #[test]
    fn client_id_is_peeked_from_headers_that_are_not_decoded() {
        let mut f = vec![0, 3, 0, 99, 0, 0, 0, 7, 0, 4];
        f.extend_from_slice(b"app1");
        assert_eq!(peek_client_id(&f).as_deref(), Some("app1"));
        assert_eq!(peek_client_id(&f[..12]), None, "cut short");
        assert_eq!(peek_client_id(&[0, 3, 0, 99, 0, 0, 0, 7, 0xff, 0xff]), None);
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

        /// Any frame with a served key and version, whatever its body, is answered or refused;
        /// the decoder and handlers never panic.
        #[test]
        fn arbitrary_request_bodies_never_panic(
            api in 0usize..SUPPORTED_APIS.len(),
            version_pick in any::<u16>(),
            tail in proptest::collection::vec(any::<u8>(), 0..200),
            client_id_len in -1i16..8,
        ) {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("rt");
            let dir = tempfile::tempdir().expect("tempdir");
            rt.block_on(async {
                let b = broker(dir.path());
                let (key, min, max) = SUPPORTED_APIS[api];
                let version = min + (version_pick % ((max - min + 1) as u16)) as i16;
                let mut frame = Vec::new();
                frame.extend_from_slice(&(key as i16).to_be_bytes());
                frame.extend_from_slice(&version.to_be_bytes());
                frame.extend_from_slice(&7i32.to_be_bytes());
                frame.extend_from_slice(&client_id_len.to_be_bytes());
                frame.extend_from_slice(&tail);
                let peer = std::net::SocketAddr::from(([127, 0, 0, 1], 1));
                if let Ok(reply) = dispatch(&b, peer, Bytes::from(frame)) {
                    match reply {
                        Reply::Pending(f) => {
                            let _ = tokio::time::timeout(std::time::Duration::from_millis(50), f).await;
                        }
                        Reply::PendingChunks(f) => {
                            let _ = tokio::time::timeout(std::time::Duration::from_millis(50), f).await;
                        }
                        Reply::Ready(_) | Reply::None => {}
                    }
                }
            });
        }
    }
}
