//! ApiVersions (key 18): the APIs and version ranges gregor implements.
//!
//! v5 (KIP-1242): a client that knows which cluster and node it means to reach (from earlier
//! metadata) names both; if this node is not that one (the address now belongs to another
//! node, or another cluster) the answer is REBOOTSTRAP_REQUIRED, with no APIs, and a client
//! with `metadata.recovery.strategy=rebootstrap` starts again from its bootstrap servers.
//! Naming only one of the two is INVALID_REQUEST, as Kafka answers.

use std::ops::RangeInclusive;

use bytes::{BufMut, Bytes, BytesMut};
use gregor_protocol::error::ErrorCode;
use gregor_protocol::messages::api_versions_response::ApiVersion;
use gregor_protocol::messages::ApiKey;
use gregor_protocol::messages::{ApiVersionsRequest, ApiVersionsResponse};

use super::SERVED_APIS;

/// The API this module serves.
pub const KEY: ApiKey = ApiKey::ApiVersions;
/// The versions served (and advertised in ApiVersions).
pub const VERSIONS: RangeInclusive<i16> = 0..=5;

fn api_keys(served: &[(ApiKey, i16, i16)]) -> Vec<ApiVersion> {
    served
        .iter()
        .map(|&(k, min, max)| {
            ApiVersion::default()
                .with_api_key(k as i16)
                .with_min_version(min)
                .with_max_version(max)
        })
        .collect()
}

/// The node answering: what a v5 request's cluster id and node id are checked against.
#[derive(Debug, Clone, Copy)]
pub struct Identity<'a> {
    pub cluster_id: &'a str,
    pub node_id: i32,
}

/// A v5 request's error (KIP-1242): a client names both the cluster and the node it means to
/// reach, or neither (null, -1). One without the other is INVALID_REQUEST, another cluster or
/// node than `us` REBOOTSTRAP_REQUIRED, as Kafka answers.
fn check_node(us: Identity<'_>, req: &ApiVersionsRequest) -> Option<ErrorCode> {
    match (&req.cluster_id, req.node_id) {
        (None, -1) => None,
        (Some(_), -1) | (None, _) => Some(ErrorCode::INVALID_REQUEST),
        (Some(cluster_id), node_id) => (cluster_id.as_str() != us.cluster_id
            || node_id != us.node_id)
            .then_some(ErrorCode::REBOOTSTRAP_REQUIRED),
    }
}

/// Answers a supported ApiVersions request of `version` to a broker listener.
pub fn handle(us: Identity<'_>, version: i16, req: &ApiVersionsRequest) -> ApiVersionsResponse {
    handle_for(SERVED_APIS, us, version, req)
}

/// Answers a supported ApiVersions request of `version` on a listener serving `served` (the
/// controller listener serves fewer APIs than a broker's).
pub fn handle_for(
    served: &[(ApiKey, i16, i16)],
    us: Identity<'_>,
    version: i16,
    req: &ApiVersionsRequest,
) -> ApiVersionsResponse {
    if let Some(error) = check_node(us, req).filter(|_| version >= 5) {
        return ApiVersionsResponse::default().with_error_code(error.code());
    }
    ApiVersionsResponse::default()
        .with_error_code(0)
        .with_api_keys(api_keys(served))
}

/// The reply to an ApiVersions request of a version gregor does not know: v0 format (the only
/// one every client can parse), error UNSUPPORTED_VERSION, and our ranges so the client retries
/// with a version we speak. Response header v0: just the correlation id.
pub fn unsupported_version_reply(correlation_id: i32) -> Bytes {
    unsupported_version_reply_for(SERVED_APIS, correlation_id)
}

/// [`unsupported_version_reply`] of a listener serving `served`.
pub fn unsupported_version_reply_for(served: &[(ApiKey, i16, i16)], correlation_id: i32) -> Bytes {
    let keys = api_keys(served);
    let body_len = 4 + 2 + 4 + keys.len() * 6;
    let mut b = BytesMut::with_capacity(4 + body_len);
    b.put_i32(body_len as i32);
    b.put_i32(correlation_id);
    b.put_i16(ErrorCode::UNSUPPORTED_VERSION.code());
    b.put_i32(keys.len() as i32);
    for k in keys {
        b.put_i16(k.api_key);
        b.put_i16(k.min_version);
        b.put_i16(k.max_version);
    }
    b.freeze()
}

#[cfg(test)]
mod tests {
    use super::*;
    use gregor_protocol::protocol::{Decodable, Encodable, StrBytes};

    const US: Identity<'static> = Identity {
        cluster_id: "c1",
        node_id: 1,
    };

    /// A v5 request naming `cluster_id` and `node_id`, through the wire (so the fields are
    /// really read from their v5 places).
    fn v5_request(cluster_id: Option<&'static str>, node_id: i32) -> ApiVersionsRequest {
        let req = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("e2e"))
            .with_client_software_version(StrBytes::from_static_str("1"))
            .with_cluster_id(cluster_id.map(StrBytes::from_static_str))
            .with_node_id(node_id);
        let mut buf = bytes::BytesMut::new();
        req.encode(&mut buf, 5).expect("encode v5");
        let decoded = ApiVersionsRequest::decode(&mut buf.freeze(), 5).expect("decode v5");
        assert_eq!(decoded.node_id, node_id);
        decoded
    }

    /// KIP-1242: the node a v5 request names must be this one, of this cluster; otherwise
    /// REBOOTSTRAP_REQUIRED and no APIs. Naming neither is not checked; naming only one is
    /// INVALID_REQUEST (what Kafka 4.4 answers, seen by the kafka_peer test).
    #[test]
    fn v5_checks_the_cluster_and_node_the_client_meant() {
        let rebootstrap = ErrorCode::REBOOTSTRAP_REQUIRED.code();
        let invalid = ErrorCode::INVALID_REQUEST.code();
        for (cluster_id, node_id, expected) in [
            (Some("c1"), 1, 0),
            (Some("c1"), 2, rebootstrap),
            (Some("c2"), 1, rebootstrap),
            (None, -1, 0),
            (None, 2, invalid),
            (Some("c2"), -1, invalid),
        ] {
            let resp = handle(US, 5, &v5_request(cluster_id, node_id));
            assert_eq!(
                resp.error_code, expected,
                "cluster {cluster_id:?} node {node_id}"
            );
            assert_eq!(resp.api_keys.is_empty(), expected != 0);
        }
    }

    /// Before v5 there is nothing to check: a v4 request has no cluster or node id on the
    /// wire, and even one built with them is answered normally.
    #[test]
    fn before_v5_nothing_is_checked() {
        let req = ApiVersionsRequest::default()
            .with_cluster_id(Some(StrBytes::from_static_str("c2")))
            .with_node_id(7);
        let resp = handle(US, 4, &req);
        assert_eq!(resp.error_code, 0);
        assert!(resp
            .api_keys
            .iter()
            .any(|k| k.api_key == KEY as i16 && k.max_version == 5));
        let mut buf = bytes::BytesMut::new();
        req.encode(&mut buf, 4).expect("encode v4");
        let decoded = ApiVersionsRequest::decode(&mut buf.freeze(), 4).expect("decode v4");
        assert_eq!((decoded.cluster_id, decoded.node_id), (None, -1));
    }
}
