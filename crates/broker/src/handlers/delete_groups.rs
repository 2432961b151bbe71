//! DeleteGroups (key 42): removes Empty groups and tombstones their offsets.

use std::ops::RangeInclusive;
use std::sync::Arc;

use gregor_group::Response;
use gregor_protocol::error::ErrorCode;
use gregor_protocol::messages::delete_groups_response::DeletableGroupResult;
use gregor_protocol::messages::ApiKey;
use gregor_protocol::messages::{DeleteGroupsRequest, DeleteGroupsResponse, GroupId};

use super::group_common::{pending, NOT_AVAILABLE};
use super::str_bytes;
use crate::broker::Broker;
use crate::request::{Reply, RequestContext};

/// The API this module serves.
pub const KEY: ApiKey = ApiKey::DeleteGroups;
/// The versions served (and advertised in ApiVersions).
pub const VERSIONS: RangeInclusive<i16> = 0..=2;

/// Handles a DeleteGroups request.
pub fn handle(broker: &Arc<Broker>, ctx: RequestContext, req: DeleteGroupsRequest) -> Reply {
    let all: Vec<String> = req.groups_names.iter().map(|g| g.0.to_string()).collect();
    // Groups coordinated elsewhere get NOT_COORDINATOR; the rest are deleted here.
    let (ids, elsewhere): (Vec<String>, Vec<String>) = all
        .into_iter()
        .partition(|g| broker.groups.not_coordinator(g).is_none());
    let (id, rx) = broker.groups.park();
    let now = broker.clock.now_ms();
    broker
        .groups
        .run(&broker.replicas, |core| core.delete_groups(id, &ids, now));
    pending(ctx, rx, move |resp| {
        let mut results = match resp {
            Some(Response::DeleteGroups(r)) => r
                .results
                .into_iter()
                .map(|g| (g.group_id, g.error_code))
                .collect(),
            other => {
                let code = other.map_or(NOT_AVAILABLE, |r| r.error_code());
                ids.into_iter().map(|g| (g, code)).collect::<Vec<_>>()
            }
        };
        results.extend(
            elsewhere
                .into_iter()
                .map(|g| (g, ErrorCode::NOT_COORDINATOR.code())),
        );
        DeleteGroupsResponse::default().with_results(
            results
                .into_iter()
                .map(|(g, code)| {
                    DeletableGroupResult::default()
                        .with_group_id(GroupId(str_bytes(g)))
                        .with_error_code(code)
                })
                .collect(),
        )
    })
}
