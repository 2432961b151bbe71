//! SaslHandshake (key 17) where no SASL exchange is due: on a PLAINTEXT or SSL listener, or
//! after the connection authenticated. A SASL listener's connection answers it itself until
//! then (`sasl::SaslSession`). As Kafka: ILLEGAL_SASL_STATE, with no mechanism.

use std::ops::RangeInclusive;

use gregor_protocol::error::ErrorCode;
use gregor_protocol::messages::{ApiKey, SaslHandshakeResponse};

/// The API this module serves.
pub const KEY: ApiKey = ApiKey::SaslHandshake;
/// The versions served (and advertised in ApiVersions). After v0 the SASL tokens follow as
/// bare size-prefixed frames (clients before Kafka 1.0); librdkafka needs v0 advertised to
/// use SASL at all, and then sends v1.
pub const VERSIONS: RangeInclusive<i16> = 0..=1;

/// The answer outside a SASL exchange.
pub fn handle() -> SaslHandshakeResponse {
    SaslHandshakeResponse::default().with_error_code(ErrorCode::ILLEGAL_SASL_STATE.code())
}
