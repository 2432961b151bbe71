//! SaslAuthenticate (key 36) where no SASL exchange is due: on a PLAINTEXT or SSL listener,
//! or after the connection authenticated. A SASL listener's connection answers it itself
//! until then (`sasl::SaslSession`). As Kafka: ILLEGAL_SASL_STATE.

use std::ops::RangeInclusive;

use gregor_protocol::error::ErrorCode;
use gregor_protocol::messages::{ApiKey, SaslAuthenticateResponse};

use super::str_bytes;

/// The API this module serves.
pub const KEY: ApiKey = ApiKey::SaslAuthenticate;
/// The versions served (and advertised in ApiVersions).
pub const VERSIONS: RangeInclusive<i16> = 0..=2;

/// The answer outside a SASL exchange.
pub fn handle() -> SaslAuthenticateResponse {
    SaslAuthenticateResponse::default()
        .with_error_code(ErrorCode::ILLEGAL_SASL_STATE.code())
        .with_error_message(Some(str_bytes(
            "Unexpected SaslAuthenticate request: this connection is not in a SASL exchange",
        )))
}
