//! The gregor broker: network server, request router, one handler per Kafka API, and the
//! replica manager that owns topics, partitions and their logs.
//!
//! ```text
//! clients ─TCP─► server (accept, bound connections) ─► connection (framing, in-order replies)
//!                                                          │ header + body
//!                                                          ▼
//!                                                  router (match on API key)
//!                                                          │ typed request
//!                                                          ▼
//!                                   handlers::{api_versions, metadata, produce, fetch, ...}
//!                                                          │
//!                                                          ▼
//!                                  replica_manager (topics, partitions) ─► gregor-storage logs
//! ```

pub mod config;
mod connection;
pub mod group_coordinator;
mod handlers;
mod memory_pool;
pub mod metadata;
pub mod replica_manager;
mod response;
mod router;
mod server;
pub mod topic_config;

pub use config::{BrokerConfig, ConfigError, FlushPolicy};
pub use server::{run, Broker};

/// Request dispatch without a socket: what the connection does with one frame. For benchmarks
/// (fetch assembly) and for embedding.
pub use response::Chunk;
pub use router::{dispatch, ProtocolError, Reply};
