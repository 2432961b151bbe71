//! ApiVersions (key 18): the APIs and version ranges gregor implements.

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
pub const VERSIONS: RangeInclusive<i16> = 0..=4;

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

/// Answers a supported ApiVersions request.
pub fn handle(req: &ApiVersionsRequest) -> ApiVersionsResponse {
    handle_for(SERVED_APIS, req)
}

/// Answers a supported ApiVersions request of a listener serving `served` (the controller
/// listener serves fewer APIs than a broker's).
pub fn handle_for(served: &[(ApiKey, i16, i16)], _req: &ApiVersionsRequest) -> ApiVersionsResponse {
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
