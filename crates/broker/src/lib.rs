//! The gregor broker: network server, request router, one handler per Kafka API, and the
//! replica manager that owns topics, partitions and their logs.
//!
//! ```text
//! clients ─TCP─► server (accept, bound connections) ─► connection (framing, in-order replies)
//!                  │ builds at startup                     │ header + body
//!                  ▼                                       ▼
//!   broker::Broker (config, replicas,          router (match on each handler's KEY)
//!   groups, advertised, clock) ◄────────────────────────── │ typed request
//!                                                          ▼
//!                                   handlers::{api_versions, metadata, produce, fetch, ...}
//!                                                          │
//!                                                          ▼
//!         replica_manager (topics, purgatory) ─► partition (replication core + log) ─► storage
//! ```

pub mod add_partitions_to_txn_manager;
pub mod admin_node;
pub mod alter_partition;
mod authorizer;
pub mod auto_join;
pub mod broker;
pub mod broker_configs;
pub mod client_metrics;
pub mod clock;
pub mod cluster;
pub mod config;
pub mod config_docs;
pub mod config_providers;
mod connection;
mod connection_slots;
mod console;
pub mod controller_listener;
mod controller_sasl;
pub mod delegation_tokens;
#[cfg(test)]
mod fake_node;
pub mod fetch_session;
pub mod group_configs;
pub mod group_coordinator;
mod handlers;
mod http_server;
mod inter_broker;
pub mod internal_topic;
pub mod kafka_format;
pub mod log_cleaner;
pub mod log_levels;
mod memory_pool;
pub mod metadata;
pub mod oauthbearer;
pub mod partition;
pub mod principal_mapping;
pub mod producer_id_manager;
pub mod purgatory;
pub mod quota;
mod refusal_log;
pub mod replica_fetcher;
pub mod replica_manager;
pub mod replica_selector;
mod request;
mod response;
mod router;
pub mod sasl;
pub mod scram;
pub mod scram_bootstrap;
mod server;
pub mod share_coordinator;
pub mod share_dlq;
pub mod share_partitions;
pub mod share_persister;
pub mod stats;
pub mod tls;
pub mod topic_config;
pub mod txn_coordinator;

pub use broker::Broker;
pub use clock::{Clock, ManualClock, SystemClock};
pub use config::{BrokerConfig, ConfigError, FlushPolicy};
pub use server::run;

/// Request dispatch without a socket: what the connection does with one frame. For benchmarks
/// (fetch assembly) and for embedding.
pub use request::{ProtocolError, Reply};
pub use response::Chunk;
pub use router::dispatch;
