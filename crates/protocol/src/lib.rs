//! Kafka wire protocol for gregor.
//!
//! * [`batch`]: a zero-copy view over RecordBatch v2 headers, validation (length, magic, CRC-32C)
//!   and the in-place header rewrite that assigns offsets. Used by the produce path and storage.
//! * [`control`]: control records (transaction markers, Kafka's `EndTransactionMarker`): the
//!   control batch a partition leader writes to end a transaction, and its parse.
//! * [`record_walk`]: the walk over the records inside a batch (decompressing as a stream) that
//!   refuses batches with a valid CRC but malformed records.
//! * [`record_rewrite`]: a batch rebuilt with a subset of its records (the log cleaner).
//! * [`frame`]: the size-prefixed framing every Kafka request and response travels in.
//! * [`request`]: a request frame decoded to its header and typed body, without a broker.
//! * [`messages`]/[`protocol`]: re-exports of the `kafka-protocol` crate's generated types.
//! * [`error`]: Kafka error codes used by the broker.
//! * [`kafka_uuid`]: Kafka's text form of a UUID.

pub mod batch;
pub mod control;
pub mod error;
pub mod frame;
pub mod kafka_uuid;
pub mod recompress;
pub mod record_rewrite;
pub mod record_walk;
pub mod request;

pub use kafka_protocol::messages;
pub use kafka_protocol::protocol;
pub use kafka_protocol::records;
