//! DeleteGroups (key 42): removes Empty groups and tombstones their offsets; an Empty
//! consumer group (KIP-848) also gets its ConsumerGroup* tombstones, a non-empty one
//! NON_EMPTY_GROUP.

use std::ops::RangeInclusive;
use std::sync::Arc;

use gregor_group::Response;
use gregor_protocol::error::ErrorCode;
use gregor_protocol::messages::delete_groups_response::DeletableGroupResult;
use gregor_protocol::messages::ApiKey;
use gregor_protocol::messages::{DeleteGroupsRequest, DeleteGroupsResponse, GroupId};

use super::group_common::NOT_AVAILABLE;
use super::str_bytes;
use crate::broker::Broker;
use crate::request::{encode, Reply, RequestContext};

/// The API this module serves.
pub const KEY: ApiKey = ApiKey::DeleteGroups;
/// The versions served (and advertised in ApiVersions).
pub const VERSIONS: RangeInclusive<i16> = 0..=2;

/// Handles a DeleteGroups request.
pub fn handle(broker: &Arc<Broker>, ctx: RequestContext, req: DeleteGroupsRequest) -> Reply {
    let all: Vec<String> = req.groups_names.iter().map(|g| g.0.to_string()).collect();
    // Groups coordinated elsewhere get NOT_COORDINATOR; the rest are deleted here.
    let order = all.clone();
    let (ids, elsewhere): (Vec<String>, Vec<String>) = all
        .into_iter()
        .partition(|g| broker.groups.not_coordinator(g).is_none());
    let (id, rx) = broker.groups.park();
    let now = broker.clock.now_ms();
    let mut deletion = None;
    broker.groups.run(&broker.replicas, |core| {
        let d = broker
            .groups
            .delete_consumer_groups(&broker.replicas, core, ids.clone());
        let outputs = core.delete_groups(id, &d.classic, now);
        deletion = Some(d);
        outputs
    });
    let deletion = deletion.unwrap_or_default();
    let broker = Arc::clone(broker);
    Reply::Pending(Box::pin(async move {
        let resp = rx.await.ok();
        let classic: Vec<(String, i16)> = match resp {
            Some(Response::DeleteGroups(r)) => r
                .results
                .into_iter()
                .map(|g| (g.group_id, g.error_code))
                .collect(),
            other => {
                let code = other.map_or(NOT_AVAILABLE, |r| r.error_code());
                deletion.classic.iter().map(|g| (g.clone(), code)).collect()
            }
        };
        let consumer = deletion
            .finish(&broker.replicas, |g| {
                classic.iter().find(|(id, _)| id == g).map(|(_, c)| *c)
            })
            .await;
        let mut results: Vec<(String, i16)> = classic
            .into_iter()
            .filter(|(g, _)| !consumer.iter().any(|(c, _)| c == g))
            .collect();
        results.extend(consumer);
        results.extend(
            elsewhere
                .into_iter()
                .map(|g| (g, ErrorCode::NOT_COORDINATOR.code())),
        );
        // In the request's order.
        results.sort_by_key(|(g, _)| order.iter().position(|i| i == g).unwrap_or(usize::MAX));
        let resp = DeleteGroupsResponse::default().with_results(
            results
                .into_iter()
                .map(|(g, code)| {
                    DeletableGroupResult::default()
                        .with_group_id(GroupId(str_bytes(g)))
                        .with_error_code(code)
                })
                .collect(),
        );
        encode(&ctx, &resp)
    }))
}
