//! ListGroups (key 16): groups this coordinator knows, optionally filtered by state and (v5)
//! by type: every group is a classic one.

use std::ops::RangeInclusive;
use std::sync::Arc;

use gregor_protocol::messages::list_groups_response::ListedGroup;
use gregor_protocol::messages::ApiKey;
use gregor_protocol::messages::{GroupId, ListGroupsRequest, ListGroupsResponse};

use super::str_bytes;
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
    let states: Vec<String> = req.states_filter.iter().map(|s| s.to_string()).collect();
    // Every group here is a classic one (KIP-848's consumer groups are not served yet).
    let classic_wanted = req.types_filter.is_empty()
        || req
            .types_filter
            .iter()
            .any(|t| t.eq_ignore_ascii_case("classic"));
    if !classic_wanted {
        return ListGroupsResponse::default();
    }
    let groups = broker
        .groups
        .core()
        .list_groups(&states)
        .into_iter()
        .map(|g| {
            let mut l = ListedGroup::default()
                .with_group_id(GroupId(str_bytes(g.group_id)))
                .with_protocol_type(str_bytes(g.protocol_type));
            if ctx.api_version >= 4 {
                l = l.with_group_state(str_bytes(g.group_state));
            }
            if ctx.api_version >= 5 {
                l = l.with_group_type(str_bytes("classic"));
            }
            l
        })
        .collect();
    ListGroupsResponse::default().with_groups(groups)
}
