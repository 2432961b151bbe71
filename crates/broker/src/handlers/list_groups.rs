//! ListGroups (key 16): groups this coordinator knows, optionally filtered by state and (v5)
//! by type: "classic" groups from the classic core, "consumer" groups (KIP-848) from the
//! consumer group core, "share" groups (KIP-932) from the share group core.
//!
//! Authorization, as Kafka's `handleListGroupsRequest`: with DESCRIBE on the cluster every
//! group is listed, otherwise only the groups the principal may DESCRIBE (neither check logs
//! a denial).

use std::ops::RangeInclusive;
use std::sync::Arc;

use gregor_protocol::messages::list_groups_response::ListedGroup;
use gregor_protocol::messages::ApiKey;
use gregor_protocol::messages::{GroupId, ListGroupsRequest, ListGroupsResponse};

use gregor_metadata::{AclOperation, ResourceType, CLUSTER_NAME};

use super::str_bytes;
use crate::authorizer;
use crate::broker::Broker;
use crate::request::RequestContext;

/// The API this module serves.
pub const KEY: ApiKey = ApiKey::ListGroups;
/// The versions served (and advertised in ApiVersions).
pub const VERSIONS: RangeInclusive<i16> = 0..=5;

/// Handles a ListGroups request.
pub fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    req: ListGroupsRequest,
) -> ListGroupsResponse {
    let all_visible = authorizer::authorize_quietly(
        broker,
        ctx,
        AclOperation::Describe,
        ResourceType::Cluster,
        CLUSTER_NAME,
    );
    let visible = |group_id: &str| {
        all_visible
            || authorizer::authorize_quietly(
                broker,
                ctx,
                AclOperation::Describe,
                ResourceType::Group,
                group_id,
            )
    };
    let states: Vec<String> = req.states_filter.iter().map(|s| s.to_string()).collect();
    let types: Vec<String> = req.types_filter.iter().map(|s| s.to_string()).collect();
    let classic_wanted =
        types.is_empty() || types.iter().any(|t| t.eq_ignore_ascii_case("classic"));
    let core = broker.groups.core();
    let consumer = broker.groups.consumer();
    let streams: Vec<_> = broker.groups.streams().list_groups(&states, &types);
    let streams_ids: std::collections::HashSet<&str> =
        streams.iter().map(|g| g.group_id.as_str()).collect();
    let all_streams = broker.groups.streams().list_groups(&[], &[]);
    let is_streams =
        |id: &str| streams_ids.contains(id) || all_streams.iter().any(|g| g.group_id == id);
    // A consumer or streams group's committed offsets live in a classic entry of the same
    // id: listed once, as the consumer or streams group.
    let classic: Vec<(String, String, String, &str)> = if classic_wanted {
        core.list_groups(&states)
            .into_iter()
            .filter(|g| !consumer.contains_group(&g.group_id) && !is_streams(&g.group_id))
            .map(|g| (g.group_id, g.protocol_type, g.group_state, "classic"))
            .collect()
    } else {
        Vec::new()
    };
    let consumer_groups = consumer
        .list_groups(&states, &types)
        .into_iter()
        .map(|g| (g.group_id, g.protocol_type, g.group_state, "consumer"));
    // Share groups (KIP-932): type "share", protocol type "share".
    let share_groups = broker
        .groups
        .share()
        .list_groups(&states, &types)
        .into_iter()
        .map(|g| (g.group_id, g.protocol_type, g.group_state, "share"));
    // Streams groups (KIP-1071): type "streams", protocol type "streams".
    let streams_groups = streams.iter().map(|g| {
        (
            g.group_id.clone(),
            g.protocol_type.clone(),
            g.group_state.clone(),
            "streams",
        )
    });
    let listed: Vec<_> = classic
        .into_iter()
        .chain(consumer_groups)
        .chain(share_groups)
        .chain(streams_groups)
        .collect();
    drop(consumer);
    drop(core);
    // Authorized outside the group locks.
    let groups = listed
        .into_iter()
        .filter(|(group_id, ..)| visible(group_id))
        .map(|(group_id, protocol_type, group_state, group_type)| {
            let mut l = ListedGroup::default()
                .with_group_id(GroupId(str_bytes(group_id)))
                .with_protocol_type(str_bytes(protocol_type));
            if ctx.api_version >= 4 {
                l = l.with_group_state(str_bytes(group_state));
            }
            if ctx.api_version >= 5 {
                l = l.with_group_type(str_bytes(group_type));
            }
            l
        })
        .collect();
    ListGroupsResponse::default().with_groups(groups)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authorizer::test_support::{allow_cluster, allow_group, ctx_of};
    use crate::handlers::group_common::test_support::{admin_commit, auth_group_broker};

    fn listed(b: &Arc<Broker>, user: &str) -> Vec<String> {
        let r = handle(b, &ctx_of(user, KEY, 4), ListGroupsRequest::default());
        let mut ids: Vec<String> = r.groups.iter().map(|g| g.group_id.0.to_string()).collect();
        ids.sort();
        ids
    }

    /// Only the groups with DESCRIBE, or all of them with DESCRIBE on the cluster.
    #[tokio::test]
    async fn groups_are_listed_by_describe() {
        let dir = tempfile::tempdir().expect("tempdir");
        let b = auth_group_broker(dir.path(), 1);
        admin_commit(&b, "g", &["t"]).await;
        admin_commit(&b, "h", &["t"]).await;
        assert!(listed(&b, "alice").is_empty());
        allow_group(&b, "User:alice", AclOperation::Describe, "h");
        assert_eq!(listed(&b, "alice"), vec!["h"]);
        allow_cluster(&b, "User:alice", AclOperation::Describe);
        assert_eq!(listed(&b, "alice"), vec!["g", "h"]);
    }
}
