//! One module per Kafka API. A handler takes the broker state and a typed request and returns
//! the typed response (or, for produce and fetch, a reply that completes later). Handlers never
//! see the socket; partition-level problems become error codes in the response.
//!
//! Each module declares the API it serves (`KEY`) and the versions it serves (`VERSIONS`);
//! [`SERVED_APIS`] gathers them, the router checks requests against it and ApiVersions
//! advertises it. gregor-protocol's `SUPPORTED_APIS` (what `decode_request` and the fuzz
//! targets decode) must be the same table: `tests::served_apis_match_the_protocol_table`.

pub mod add_offsets_to_txn;
pub mod add_partitions_to_txn;
pub(crate) mod admin_common;
pub mod alter_client_quotas;
pub mod alter_configs;
pub mod alter_partition_reassignments;
pub mod alter_replica_log_dirs;
pub mod alter_share_group_offsets;
pub mod alter_user_scram_credentials;
pub mod api_versions;
pub mod consumer_group_describe;
pub mod consumer_group_heartbeat;
pub mod create_acls;
pub mod create_delegation_token;
pub mod create_partitions;
pub mod create_topics;
pub mod delete_acls;
pub mod delete_groups;
pub mod delete_records;
pub mod delete_share_group_offsets;
pub mod delete_share_group_state;
pub mod delete_topics;
pub mod describe_acls;
pub mod describe_client_quotas;
pub mod describe_cluster;
pub mod describe_configs;
pub mod describe_delegation_token;
pub mod describe_groups;
pub mod describe_log_dirs;
pub mod describe_producers;
pub mod describe_quorum;
pub mod describe_share_group_offsets;
pub mod describe_topic_partitions;
pub mod describe_transactions;
pub mod describe_user_scram_credentials;
pub mod elect_leaders;
pub mod end_txn;
pub mod expire_delegation_token;
pub mod fetch;
pub mod find_coordinator;
mod group_common;
pub mod heartbeat;
pub mod incremental_alter_configs;
pub mod init_producer_id;
pub mod initialize_share_group_state;
pub mod join_group;
pub mod leave_group;
pub mod list_config_resources;
pub mod list_groups;
pub mod list_offsets;
pub mod list_partition_reassignments;
pub mod list_transactions;
pub mod metadata;
pub mod offset_commit;
pub mod offset_delete;
pub mod offset_fetch;
pub mod offset_for_leader_epoch;
pub mod produce;
pub mod raft_voters;
pub mod read_share_group_state;
pub mod read_share_group_state_summary;
pub mod renew_delegation_token;
pub mod sasl_authenticate;
pub mod sasl_handshake;
pub mod share_acknowledge;
pub mod share_fetch;
pub mod share_group_describe;
pub mod share_group_heartbeat;
pub mod streams_group_describe;
pub mod streams_group_heartbeat;
pub mod sync_group;
pub mod txn_offset_commit;
pub mod unregister_broker;
pub mod update_features;
pub mod write_share_group_state;
pub mod write_txn_markers;

use std::ops::RangeInclusive;

use gregor_protocol::messages::{ApiKey, TopicName};
use gregor_protocol::protocol::StrBytes;

/// A topic name for a response.
pub fn topic_name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

/// A string for a response.
pub fn str_bytes(s: impl Into<String>) -> StrBytes {
    StrBytes::from_string(s.into())
}

/// Kafka's "authorized operations not requested" marker (`Integer.MIN_VALUE`).
pub const OPS_NOT_REQUESTED: i32 = i32::MIN;

/// `(api, min version, max version)`, from a handler's `KEY` and `VERSIONS`.
const fn served(key: ApiKey, versions: RangeInclusive<i16>) -> (ApiKey, i16, i16) {
    (key, *versions.start(), *versions.end())
}

/// Every API gregor serves, with its versions: one entry per handler module.
pub const SERVED_APIS: &[(ApiKey, i16, i16)] = &[
    served(produce::KEY, produce::VERSIONS),
    served(fetch::KEY, fetch::VERSIONS),
    served(list_offsets::KEY, list_offsets::VERSIONS),
    served(metadata::KEY, metadata::VERSIONS),
    served(api_versions::KEY, api_versions::VERSIONS),
    served(sasl_handshake::KEY, sasl_handshake::VERSIONS),
    served(sasl_authenticate::KEY, sasl_authenticate::VERSIONS),
    served(create_topics::KEY, create_topics::VERSIONS),
    served(delete_topics::KEY, delete_topics::VERSIONS),
    served(init_producer_id::KEY, init_producer_id::VERSIONS),
    served(find_coordinator::KEY, find_coordinator::VERSIONS),
    served(join_group::KEY, join_group::VERSIONS),
    served(sync_group::KEY, sync_group::VERSIONS),
    served(heartbeat::KEY, heartbeat::VERSIONS),
    served(leave_group::KEY, leave_group::VERSIONS),
    served(offset_commit::KEY, offset_commit::VERSIONS),
    served(offset_fetch::KEY, offset_fetch::VERSIONS),
    served(list_groups::KEY, list_groups::VERSIONS),
    served(describe_groups::KEY, describe_groups::VERSIONS),
    served(delete_groups::KEY, delete_groups::VERSIONS),
    served(offset_delete::KEY, offset_delete::VERSIONS),
    served(txn_offset_commit::KEY, txn_offset_commit::VERSIONS),
    served(describe_configs::KEY, describe_configs::VERSIONS),
    served(delete_records::KEY, delete_records::VERSIONS),
    served(alter_configs::KEY, alter_configs::VERSIONS),
    served(
        incremental_alter_configs::KEY,
        incremental_alter_configs::VERSIONS,
    ),
    served(
        offset_for_leader_epoch::KEY,
        offset_for_leader_epoch::VERSIONS,
    ),
    served(create_partitions::KEY, create_partitions::VERSIONS),
    served(elect_leaders::KEY, elect_leaders::VERSIONS),
    served(
        alter_partition_reassignments::KEY,
        alter_partition_reassignments::VERSIONS,
    ),
    served(
        list_partition_reassignments::KEY,
        list_partition_reassignments::VERSIONS,
    ),
    served(describe_quorum::KEY, describe_quorum::VERSIONS),
    served(raft_voters::ADD_KEY, raft_voters::ADD_VERSIONS),
    served(raft_voters::REMOVE_KEY, raft_voters::REMOVE_VERSIONS),
    served(update_features::KEY, update_features::VERSIONS),
    served(describe_cluster::KEY, describe_cluster::VERSIONS),
    served(unregister_broker::KEY, unregister_broker::VERSIONS),
    served(describe_log_dirs::KEY, describe_log_dirs::VERSIONS),
    served(
        alter_replica_log_dirs::KEY,
        alter_replica_log_dirs::VERSIONS,
    ),
    served(describe_producers::KEY, describe_producers::VERSIONS),
    served(add_partitions_to_txn::KEY, add_partitions_to_txn::VERSIONS),
    served(add_offsets_to_txn::KEY, add_offsets_to_txn::VERSIONS),
    served(end_txn::KEY, end_txn::VERSIONS),
    served(list_transactions::KEY, list_transactions::VERSIONS),
    served(describe_transactions::KEY, describe_transactions::VERSIONS),
    served(write_txn_markers::KEY, write_txn_markers::VERSIONS),
    served(
        consumer_group_heartbeat::KEY,
        consumer_group_heartbeat::VERSIONS,
    ),
    served(
        consumer_group_describe::KEY,
        consumer_group_describe::VERSIONS,
    ),
    served(
        streams_group_heartbeat::KEY,
        streams_group_heartbeat::VERSIONS,
    ),
    served(
        streams_group_describe::KEY,
        streams_group_describe::VERSIONS,
    ),
    served(
        describe_topic_partitions::KEY,
        describe_topic_partitions::VERSIONS,
    ),
    served(list_config_resources::KEY, list_config_resources::VERSIONS),
    served(
        describe_client_quotas::KEY,
        describe_client_quotas::VERSIONS,
    ),
    served(alter_client_quotas::KEY, alter_client_quotas::VERSIONS),
    served(
        describe_user_scram_credentials::KEY,
        describe_user_scram_credentials::VERSIONS,
    ),
    served(
        alter_user_scram_credentials::KEY,
        alter_user_scram_credentials::VERSIONS,
    ),
    served(describe_acls::KEY, describe_acls::VERSIONS),
    served(create_acls::KEY, create_acls::VERSIONS),
    served(delete_acls::KEY, delete_acls::VERSIONS),
    served(
        create_delegation_token::KEY,
        create_delegation_token::VERSIONS,
    ),
    served(
        renew_delegation_token::KEY,
        renew_delegation_token::VERSIONS,
    ),
    served(
        expire_delegation_token::KEY,
        expire_delegation_token::VERSIONS,
    ),
    served(
        describe_delegation_token::KEY,
        describe_delegation_token::VERSIONS,
    ),
    served(
        initialize_share_group_state::KEY,
        initialize_share_group_state::VERSIONS,
    ),
    served(
        read_share_group_state::KEY,
        read_share_group_state::VERSIONS,
    ),
    served(
        write_share_group_state::KEY,
        write_share_group_state::VERSIONS,
    ),
    served(
        delete_share_group_state::KEY,
        delete_share_group_state::VERSIONS,
    ),
    served(
        read_share_group_state_summary::KEY,
        read_share_group_state_summary::VERSIONS,
    ),
    served(share_fetch::KEY, share_fetch::VERSIONS),
    served(share_acknowledge::KEY, share_acknowledge::VERSIONS),
    served(share_group_heartbeat::KEY, share_group_heartbeat::VERSIONS),
    served(share_group_describe::KEY, share_group_describe::VERSIONS),
    served(
        describe_share_group_offsets::KEY,
        describe_share_group_offsets::VERSIONS,
    ),
    served(
        alter_share_group_offsets::KEY,
        alter_share_group_offsets::VERSIONS,
    ),
    served(
        delete_share_group_offsets::KEY,
        delete_share_group_offsets::VERSIONS,
    ),
];

/// The served range of an API, if served.
pub fn served_range(api: ApiKey) -> Option<(i16, i16)> {
    SERVED_APIS
        .iter()
        .find(|(k, _, _)| *k == api)
        .map(|&(_, min, max)| (min, max))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The handlers' table is the one gregor-protocol decodes with (the fuzz targets and
    /// `decode_request`), entry for entry.
    #[test]
    fn served_apis_match_the_protocol_table() {
        assert_eq!(SERVED_APIS, gregor_protocol::request::SUPPORTED_APIS);
    }
}
