//! One module per Kafka API. A handler takes the broker state and a typed request and returns
//! the typed response (or, for produce and fetch, a reply that completes later). Handlers never
//! see the socket; partition-level problems become error codes in the response.

pub mod api_versions;
pub mod create_topics;
pub mod delete_groups;
pub mod delete_topics;
pub mod describe_groups;
pub mod fetch;
pub mod find_coordinator;
mod group_common;
pub mod heartbeat;
pub mod join_group;
pub mod leave_group;
pub mod list_groups;
pub mod list_offsets;
pub mod metadata;
pub mod offset_commit;
pub mod offset_delete;
pub mod offset_fetch;
pub mod produce;
pub mod sync_group;

use gregor_protocol::messages::TopicName;
use gregor_protocol::protocol::StrBytes;

/// A topic name for a response.
pub fn topic_name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

/// A string for a response.
pub fn str_bytes(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}
