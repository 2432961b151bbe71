//! Kafka error codes the group coordinator answers with, and the crate's own error types.
//!
//! Codes are plain `i16` constants with Kafka's names so the broker can copy them straight into
//! the wire responses; `NONE` is success. Only decoding of bytes that came from a peer or from
//! the log can fail with a Rust error ([`DecodeError`]); everything the protocol expects to go
//! wrong is an error code inside a response.

/// Kafka error codes (`org.apache.kafka.common.protocol.Errors`) used by the group APIs.
pub mod code {
    pub const NONE: i16 = 0;
    pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
    pub const OFFSET_METADATA_TOO_LARGE: i16 = 12;
    pub const COORDINATOR_NOT_AVAILABLE: i16 = 15;
    pub const ILLEGAL_GENERATION: i16 = 22;
    pub const INCONSISTENT_GROUP_PROTOCOL: i16 = 23;
    pub const INVALID_GROUP_ID: i16 = 24;
    pub const UNKNOWN_MEMBER_ID: i16 = 25;
    pub const INVALID_SESSION_TIMEOUT: i16 = 26;
    pub const REBALANCE_IN_PROGRESS: i16 = 27;
    pub const NON_EMPTY_GROUP: i16 = 68;
    pub const GROUP_ID_NOT_FOUND: i16 = 69;
    pub const MEMBER_ID_REQUIRED: i16 = 79;
    pub const GROUP_MAX_SIZE_REACHED: i16 = 81;
    pub const FENCED_INSTANCE_ID: i16 = 82;
    pub const GROUP_SUBSCRIBED_TO_TOPIC: i16 = 86;
    pub const UNSTABLE_OFFSET_COMMIT: i16 = 88;
}

/// Bytes that could not be decoded: a `__consumer_offsets` record or a client's
/// consumer-protocol metadata. Never a panic: these bytes come from peers or from disk.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("unexpected end of input while reading {0}")]
    Truncated(&'static str),
    #[error("negative length {len} for {what}")]
    NegativeLength { what: &'static str, len: i32 },
    #[error("invalid UTF-8 in {0}")]
    InvalidUtf8(&'static str),
    #[error("unsupported {what} version {version}")]
    UnsupportedVersion { what: &'static str, version: i16 },
    #[error("null where a value is required: {0}")]
    UnexpectedNull(&'static str),
}

/// The shared wire reader's errors, as this crate has always reported them (a varint too long
/// for 64 bits reads as truncated).
impl From<gregor_share::wire::WireError> for DecodeError {
    fn from(e: gregor_share::wire::WireError) -> DecodeError {
        use gregor_share::wire::WireError;
        match e {
            WireError::Truncated(what) | WireError::VarintTooLong(what) => {
                DecodeError::Truncated(what)
            }
            WireError::InvalidUtf8(what) => DecodeError::InvalidUtf8(what),
            WireError::UnexpectedNull(what) => DecodeError::UnexpectedNull(what),
        }
    }
}
