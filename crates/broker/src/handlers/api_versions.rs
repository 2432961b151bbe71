//! ApiVersions (key 18): the APIs and version ranges gregor implements.
//!
//! v3+ (KIP-511): the client's software name and version must match
//! `[a-zA-Z0-9](?:[a-zA-Z0-9\-.]*[a-zA-Z0-9])?`; otherwise the answer is INVALID_REQUEST with
//! no APIs, as Kafka's (`ApiVersionsRequest.isValid`).
//!
//! v5 (KIP-1242): a client that knows which cluster and node it means to reach (from earlier
//! metadata) names both; if this node is not that one (the address now belongs to another
//! node, or another cluster) the answer is REBOOTSTRAP_REQUIRED, with no APIs, and a client
//! with `metadata.recovery.strategy=rebootstrap` starts again from its bootstrap servers.
//! Naming only one of the two is INVALID_REQUEST, as Kafka answers.
//!
//! v3+ also carries the features (KIP-584): the ones this broker supports
//! (`gregor_metadata::SUPPORTED_FEATURES`: `eligible.leader.replicas.version` 0–1, KIP-966;
//! `group.version` 0–1, KIP-848; `kraft.version` 0–1, KIP-853; `metadata.version`
//! 7–33, 3.3-IV3 to 4.4-IV2, finalized at 4.4-IV2; `share.version` 0–2, KIP-932;
//! `streams.version` 0–1, KIP-1071's streams groups; `transaction.version` 0–2) and the
//! cluster's finalized levels, from the metadata image (`FeatureLevelRecord`s the active controller writes; a new cluster's are Kafka 4.4's
//! `kafka-storage format` defaults), with the image's offset as their epoch. A Java client
//! finalized at `transaction.version` 2 uses transactions version 2 (KIP-890 part 2). As in
//! Kafka, below v4 a supported feature whose minimum is 0 is left out (older clients cannot
//! parse it, KAFKA-17492), and a level 0 is never listed as finalized.

use std::ops::RangeInclusive;

use bytes::{BufMut, Bytes, BytesMut};
use gregor_protocol::error::ErrorCode;
use gregor_protocol::messages::api_versions_response::{
    ApiVersion, FinalizedFeatureKey, SupportedFeatureKey,
};
use gregor_protocol::messages::ApiKey;
use gregor_protocol::messages::{ApiVersionsRequest, ApiVersionsResponse};
use gregor_protocol::protocol::StrBytes;

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

use gregor_metadata::SUPPORTED_FEATURES;

/// The cluster's finalized features as this broker's image has them: (name, level) and the
/// epoch (the image's offset; -1 before any metadata).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Features {
    pub finalized: Vec<(String, i16)>,
    pub epoch: i64,
}

impl Features {
    /// The finalized features of `image`.
    pub fn of(image: &gregor_metadata::MetadataImage) -> Features {
        Features {
            finalized: image
                .finalized_features()
                .map(|(n, l)| (n.to_string(), l))
                .collect(),
            epoch: image.provenance().offset,
        }
    }
}

fn with_features(
    resp: ApiVersionsResponse,
    version: i16,
    features: &Features,
) -> ApiVersionsResponse {
    let supported = SUPPORTED_FEATURES
        .iter()
        .filter(|(_, min, _)| version >= 4 || *min != 0)
        .map(|&(name, min, max)| {
            SupportedFeatureKey::default()
                .with_name(StrBytes::from_static_str(name))
                .with_min_version(min)
                .with_max_version(max)
        })
        .collect();
    let finalized = features
        .finalized
        .iter()
        .filter(|(_, level)| *level != 0)
        .map(|(name, level)| {
            FinalizedFeatureKey::default()
                .with_name(StrBytes::from_string(name.clone()))
                .with_min_version_level(*level)
                .with_max_version_level(*level)
        })
        .collect();
    resp.with_supported_features(supported)
        .with_finalized_features_epoch(features.epoch)
        .with_finalized_features(finalized)
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

/// Answers a supported ApiVersions request of `version` to a broker listener, with the
/// cluster's finalized `features`.
pub fn handle(
    us: Identity<'_>,
    version: i16,
    req: &ApiVersionsRequest,
    features: &Features,
) -> ApiVersionsResponse {
    handle_listing(SERVED_APIS, us, version, req, features)
}

/// [`handle`] on a listener serving `served` (the controller listener serves fewer APIs than
/// a broker's, and the same features).
pub fn handle_listing(
    served: &[(ApiKey, i16, i16)],
    us: Identity<'_>,
    version: i16,
    req: &ApiVersionsRequest,
    features: &Features,
) -> ApiVersionsResponse {
    let resp = handle_for(served, us, version, req);
    if resp.error_code != 0 {
        return resp;
    }
    with_features(resp, version, features)
}

/// Whether a client software name or version is what KIP-511 allows:
/// `[a-zA-Z0-9](?:[a-zA-Z0-9\-.]*[a-zA-Z0-9])?` (an empty one is not).
fn valid_software_text(text: &str) -> bool {
    let bytes = text.as_bytes();
    match (bytes.first(), bytes.last()) {
        (Some(first), Some(last)) => {
            first.is_ascii_alphanumeric()
                && last.is_ascii_alphanumeric()
                && bytes
                    .iter()
                    .all(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'.')
        }
        _ => false,
    }
}

/// Answers a supported ApiVersions request of `version` on a listener serving `served` (the
/// controller listener serves fewer APIs than a broker's).
pub fn handle_for(
    served: &[(ApiKey, i16, i16)],
    us: Identity<'_>,
    version: i16,
    req: &ApiVersionsRequest,
) -> ApiVersionsResponse {
    // KIP-511 (Kafka's `ApiVersionsRequest.isValid`): from v3 the client names its software.
    if version >= 3
        && !(valid_software_text(&req.client_software_name)
            && valid_software_text(&req.client_software_version))
    {
        return ApiVersionsResponse::default().with_error_code(ErrorCode::INVALID_REQUEST.code());
    }
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
            let resp = handle(
                US,
                5,
                &v5_request(cluster_id, node_id),
                &Features::default(),
            );
            assert_eq!(
                resp.error_code, expected,
                "cluster {cluster_id:?} node {node_id}"
            );
            assert_eq!(resp.api_keys.is_empty(), expected != 0);
        }
    }

    /// A request naming its client software validly (KIP-511).
    fn named() -> ApiVersionsRequest {
        ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("unit-test"))
            .with_client_software_version(StrBytes::from_static_str("1.0"))
    }

    /// From v3 the client software name and version must match KIP-511's pattern, as Kafka
    /// checks; below v3 they are not on the wire.
    #[test]
    fn client_software_names_are_checked_from_v3() {
        for (name, version, ok) in [
            ("librdkafka", "2.3.0", true),
            ("apache-kafka-java", "4.4.0", true),
            ("a", "1", true),
            ("", "1.0", false),
            ("kcat", "", false),
            ("-lead", "1.0", false),
            ("trail.", "1.0", false),
            ("with space", "1.0", false),
            ("@scope/pkg", "1.0", false),
            ("kgo", "(devel)", false),
        ] {
            let req = ApiVersionsRequest::default()
                .with_client_software_name(StrBytes::from_string(name.to_string()))
                .with_client_software_version(StrBytes::from_string(version.to_string()));
            for v in [3, 4, 5] {
                let resp = handle(US, v, &req, &Features::default());
                let expected = if ok {
                    0
                } else {
                    ErrorCode::INVALID_REQUEST.code()
                };
                assert_eq!(resp.error_code, expected, "v{v} {name:?} {version:?}");
                assert_eq!(resp.api_keys.is_empty(), !ok);
            }
            let resp = handle(US, 2, &req, &Features::default());
            assert_eq!(resp.error_code, 0, "v2 {name:?}");
        }
    }

    /// Before v5 there is nothing to check: a v4 request has no cluster or node id on the
    /// wire, and even one built with them is answered normally.
    #[test]
    fn before_v5_nothing_is_checked() {
        let req = named()
            .with_cluster_id(Some(StrBytes::from_static_str("c2")))
            .with_node_id(7);
        let resp = handle(US, 4, &req, &Features::default());
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

    /// KIP-584: v3+ lists the supported features and the finalized levels with their epoch;
    /// through the wire, as a client reads them. Below v4 every supported feature whose
    /// minimum is 0 is left out, as Kafka does; a level 0 is never finalized.
    #[test]
    fn features_are_advertised_from_v3() {
        let features = Features {
            finalized: vec![
                ("streams.version".to_string(), 1),
                ("transaction.version".to_string(), 2),
            ],
            epoch: 42,
        };
        for version in [3, 4, 5] {
            let resp = handle(US, version, &named(), &features);
            let mut buf = bytes::BytesMut::new();
            resp.encode(&mut buf, version).expect("encode");
            let read = ApiVersionsResponse::decode(&mut buf.freeze(), version).expect("decode");
            let supported: Vec<_> = read
                .supported_features
                .iter()
                .map(|f| (f.name.to_string(), f.min_version, f.max_version))
                .collect();
            if version >= 4 {
                assert_eq!(
                    supported,
                    vec![
                        ("eligible.leader.replicas.version".to_string(), 0, 1),
                        ("group.version".to_string(), 0, 1),
                        ("kraft.version".to_string(), 0, 1),
                        ("metadata.version".to_string(), 7, 33),
                        ("share.version".to_string(), 0, 2),
                        ("streams.version".to_string(), 0, 1),
                        ("transaction.version".to_string(), 0, 2)
                    ]
                );
            } else {
                // metadata.version's range starts at 7 (3.3-IV3), so v3 keeps it.
                assert_eq!(supported, vec![("metadata.version".to_string(), 7, 33)]);
            }
            let finalized: Vec<_> = read
                .finalized_features
                .iter()
                .map(|f| (f.name.to_string(), f.min_version_level, f.max_version_level))
                .collect();
            assert_eq!(
                finalized,
                vec![
                    ("streams.version".to_string(), 1, 1),
                    ("transaction.version".to_string(), 2, 2)
                ]
            );
            assert_eq!(read.finalized_features_epoch, 42);
        }
        let level0 = Features {
            finalized: vec![
                ("streams.version".to_string(), 0),
                ("transaction.version".to_string(), 0),
            ],
            epoch: 3,
        };
        let resp = handle(US, 4, &named(), &level0);
        assert!(resp.finalized_features.is_empty());
    }
}
