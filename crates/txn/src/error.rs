//! Kafka error codes the transaction coordinator answers with, and the crate's own error types.
//!
//! Codes are plain `i16` constants with Kafka's names so the broker can copy them straight into
//! the wire responses; `NONE` is success. Only decoding `__transaction_state` bytes can fail with
//! a Rust error ([`DecodeError`]); everything the protocol expects to go wrong is an error code.

/// Kafka error codes (`org.apache.kafka.common.protocol.Errors`) used by the transaction APIs.
pub mod code {
    pub const UNKNOWN_SERVER_ERROR: i16 = -1;
    pub const NONE: i16 = 0;
    pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
    pub const COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;
    pub const COORDINATOR_NOT_AVAILABLE: i16 = 15;
    pub const NOT_COORDINATOR: i16 = 16;
    pub const INVALID_REQUEST: i16 = 42;
    pub const INVALID_PRODUCER_EPOCH: i16 = 47;
    pub const INVALID_TXN_STATE: i16 = 48;
    pub const INVALID_PRODUCER_ID_MAPPING: i16 = 49;
    pub const INVALID_TRANSACTION_TIMEOUT: i16 = 50;
    pub const CONCURRENT_TRANSACTIONS: i16 = 51;
    pub const TRANSACTION_COORDINATOR_FENCED: i16 = 52;
    pub const OPERATION_NOT_ATTEMPTED: i16 = 55;
    pub const PRODUCER_FENCED: i16 = 90;
    pub const TRANSACTION_ABORTABLE: i16 = 120;
}

/// The transaction APIs whose answers depend on the request version (see
/// [`error_for_version`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxnApi {
    InitProducerId,
    AddPartitionsToTxn,
    AddOffsetsToTxn,
    EndTxn,
}

/// The error code to put in a response of `api` at `version`.
///
/// `PRODUCER_FENCED` exists since KIP-588 (InitProducerId v4, AddPartitionsToTxn v2,
/// AddOffsetsToTxn v2, EndTxn v2); older clients only know `INVALID_PRODUCER_EPOCH`, which is
/// what Kafka 4.x answers them instead.
pub fn error_for_version(api: TxnApi, version: i16, error: i16) -> i16 {
    let first_with_fenced = match api {
        TxnApi::InitProducerId => 4,
        TxnApi::AddPartitionsToTxn | TxnApi::AddOffsetsToTxn | TxnApi::EndTxn => 2,
    };
    if error == code::PRODUCER_FENCED && version < first_with_fenced {
        code::INVALID_PRODUCER_EPOCH
    } else {
        error
    }
}

/// `__transaction_state` bytes that could not be decoded. Never a panic: they come from disk or
/// from a replica.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("unexpected end of input while reading {0}")]
    Truncated(&'static str),
    #[error("negative length {len} for {what}")]
    NegativeLength { what: &'static str, len: i64 },
    #[error("invalid UTF-8 in {0}")]
    InvalidUtf8(&'static str),
    #[error("unsupported {what} version {version}")]
    UnsupportedVersion { what: &'static str, version: i16 },
    #[error("unknown transaction status {0}")]
    UnknownStatus(i8),
    #[error("null where a value is required: {0}")]
    UnexpectedNull(&'static str),
    #[error("{0} bytes left after the record")]
    TrailingBytes(usize),
}

/// A transition the state table forbids (Kafka throws `IllegalStateException` here). The
/// coordinator never asks for one; if it did, the request is answered `UNKNOWN_SERVER_ERROR`
/// and nothing is written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("illegal transaction state transition {from:?} -> {to:?}")]
pub struct IllegalTransition {
    pub from: crate::TransactionState,
    pub to: crate::TransactionState,
}
