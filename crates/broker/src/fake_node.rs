//! A fake Kafka node for unit tests of the broker's clients of other nodes (the transaction
//! coordinator's marker writer, the partition leader's verification sender): it listens on
//! 127.0.0.1, reads framed requests, decodes their headers, answers ApiVersions with the ranges
//! given, and every other request with what the test's `answer` encodes (no answer: the
//! connection is dropped).

use std::future::Future;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use gregor_protocol::messages::api_versions_response::ApiVersion;
use gregor_protocol::messages::{ApiKey, ApiVersionsResponse, RequestHeader, ResponseHeader};
use gregor_protocol::protocol::{Decodable, Encodable};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Starts the node; returns its port. `versions` are the (api, min, max) ApiVersions lists
/// besides ApiVersions itself; `answer(api, version, body)` encodes the response body of any
/// other request, or `None` to drop the connection.
pub(crate) async fn start<F, Fut>(versions: Vec<(ApiKey, i16, i16)>, answer: F) -> u16
where
    F: Fn(ApiKey, i16, Bytes) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Option<BytesMut>> + Send + 'static,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let answer = Arc::new(answer);
    let versions = Arc::new(versions);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(serve(stream, Arc::clone(&versions), Arc::clone(&answer)));
        }
    });
    port
}

async fn serve<F, Fut>(
    mut stream: tokio::net::TcpStream,
    versions: Arc<Vec<(ApiKey, i16, i16)>>,
    answer: Arc<F>,
) where
    F: Fn(ApiKey, i16, Bytes) -> Fut,
    Fut: Future<Output = Option<BytesMut>>,
{
    loop {
        let Ok(size) = stream.read_i32().await else {
            return;
        };
        let mut frame = vec![0u8; size as usize];
        if stream.read_exact(&mut frame).await.is_err() {
            return;
        }
        let mut b = Bytes::from(frame);
        let key = i16::from_be_bytes([b[0], b[1]]);
        let version = i16::from_be_bytes([b[2], b[3]]);
        let api = ApiKey::try_from(key).expect("api");
        let header =
            RequestHeader::decode(&mut b, api.request_header_version(version)).expect("header");
        let mut out = BytesMut::new();
        ResponseHeader::default()
            .with_correlation_id(header.correlation_id)
            .encode(&mut out, api.response_header_version(version))
            .expect("encode");
        let body = if api == ApiKey::ApiVersions {
            let keys = std::iter::once((ApiKey::ApiVersions, 0, 3))
                .chain(versions.iter().copied())
                .map(|(k, min, max)| {
                    ApiVersion::default()
                        .with_api_key(k as i16)
                        .with_min_version(min)
                        .with_max_version(max)
                })
                .collect();
            let mut body = BytesMut::new();
            ApiVersionsResponse::default()
                .with_api_keys(keys)
                .encode(&mut body, version)
                .expect("encode");
            body
        } else {
            match answer(api, version, b).await {
                Some(body) => body,
                None => return,
            }
        };
        out.extend_from_slice(&body);
        let mut framed = (out.len() as i32).to_be_bytes().to_vec();
        framed.extend_from_slice(&out);
        if stream.write_all(&framed).await.is_err() {
            return;
        }
    }
}
