//! DeleteGroups (key 42): removes Empty groups and tombstones their offsets; an Empty
//! consumer group (KIP-848) also gets its ConsumerGroup* tombstones, a non-empty one
//! NON_EMPTY_GROUP. v3 adds a per-group `error_message`. Kafka 4.4 leaves it null for the
//! answers about the group itself (GROUP_ID_NOT_FOUND, NON_EMPTY_GROUP, seen by the kafka_peer
//! test) and for the coordinator lookups a client retries; gregor does the same, and names
//! the cause only when the deletion could not be written (its tombstones refused by
//! `__consumer_offsets`).
//!
//! Authorization, as Kafka's `handleDeleteGroupsRequest`: DELETE on each group; the others are
//! answered GROUP_AUTHORIZATION_FAILED (null message), once each, after the groups deleted.

use std::ops::RangeInclusive;
use std::sync::Arc;

use gregor_group::Response;
use gregor_protocol::error::ErrorCode;
use gregor_protocol::messages::delete_groups_response::DeletableGroupResult;
use gregor_protocol::messages::ApiKey;
use gregor_protocol::messages::{DeleteGroupsRequest, DeleteGroupsResponse, GroupId};
use gregor_protocol::protocol::StrBytes;

use gregor_metadata::AclOperation;

use super::group_common::{authorize_group, NOT_AVAILABLE};
use super::str_bytes;
use crate::broker::Broker;
use crate::request::{encode, Reply, RequestContext};

/// The API this module serves.
pub const KEY: ApiKey = ApiKey::DeleteGroups;
/// The versions served (and advertised in ApiVersions).
pub const VERSIONS: RangeInclusive<i16> = 0..=3;

/// v3's `error_message` of a group answered `code`: none for a deleted group, for the
/// answers about the group (not found, not empty, an invalid id, refused) and for the coordinator
/// lookups a client retries, as Kafka answers; otherwise the deletion itself failed, and the
/// message says so.
fn error_message(code: i16) -> Option<String> {
    match ErrorCode(code) {
        ErrorCode::NONE
        | ErrorCode::GROUP_ID_NOT_FOUND
        | ErrorCode::NON_EMPTY_GROUP
        | ErrorCode::INVALID_GROUP_ID
        | ErrorCode::GROUP_AUTHORIZATION_FAILED
        | ErrorCode::NOT_COORDINATOR
        | ErrorCode::COORDINATOR_NOT_AVAILABLE
        | ErrorCode::COORDINATOR_LOAD_IN_PROGRESS => None,
        other => Some(format!(
            "The group's deletion could not be written to __consumer_offsets: {}",
            other.name()
        )),
    }
}

/// Handles a DeleteGroups request.
pub fn handle(broker: &Arc<Broker>, ctx: RequestContext, req: DeleteGroupsRequest) -> Reply {
    let (all, mut denied): (Vec<String>, Vec<String>) = req
        .groups_names
        .iter()
        .map(|g| g.0.to_string())
        .partition(|g| authorize_group(broker, &ctx, AclOperation::Delete, g));
    let mut seen = std::collections::HashSet::new();
    denied.retain(|g| seen.insert(g.clone()));
    // Groups coordinated elsewhere get NOT_COORDINATOR; the rest are deleted here.
    let order = all.clone();
    let (ids, elsewhere): (Vec<String>, Vec<String>) = all
        .into_iter()
        .partition(|g| broker.groups.not_coordinator(g).is_none());
    // Share groups (KIP-932) go first: their share-partitions' state is deleted with the
    // persister before their records are tombstoned.
    let (share_ids, ids): (Vec<String>, Vec<String>) = ids
        .into_iter()
        .partition(|g| broker.groups.is_share_group(g));
    let share_deleted =
        broker
            .groups
            .delete_share_groups(&broker.replicas, &broker.share_persister, share_ids);
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
        results.extend(share_deleted.await);
        results.extend(
            elsewhere
                .into_iter()
                .map(|g| (g, ErrorCode::NOT_COORDINATOR.code())),
        );
        // In the request's order.
        results.sort_by_key(|(g, _)| order.iter().position(|i| i == g).unwrap_or(usize::MAX));
        let refused = ErrorCode::GROUP_AUTHORIZATION_FAILED.code();
        results.extend(denied.into_iter().map(|g| (g, refused)));
        let resp = DeleteGroupsResponse::default().with_results(
            results
                .into_iter()
                .map(|(g, code)| {
                    let message = error_message(code).filter(|_| ctx.api_version >= 3);
                    DeletableGroupResult::default()
                        .with_group_id(GroupId(str_bytes(g)))
                        .with_error_code(code)
                        .with_error_message(message.map(StrBytes::from_string))
                })
                .collect(),
        );
        encode(&ctx, &resp)
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Buf;
    use gregor_protocol::messages::offset_commit_request::{
        OffsetCommitRequestPartition, OffsetCommitRequestTopic,
    };
    use gregor_protocol::messages::{OffsetCommitRequest, ResponseHeader, TopicName};
    use gregor_protocol::protocol::{Decodable, HeaderVersion};

    fn broker(dir: &std::path::Path) -> Arc<Broker> {
        crate::broker::test_group_broker(dir, 1)
    }

    fn ctx(api: ApiKey, version: i16) -> RequestContext {
        RequestContext::for_test(api, version)
    }

    use crate::request::reply_body as body;

    /// A simple (generation -1) commit by group `g`, which leaves an Empty group to delete.
    async fn commit(b: &Arc<Broker>, group: &'static str) {
        let req = OffsetCommitRequest::default()
            .with_group_id(GroupId(StrBytes::from_static_str(group)))
            .with_topics(vec![OffsetCommitRequestTopic::default()
                .with_name(TopicName(StrBytes::from_static_str("t")))
                .with_partitions(vec![OffsetCommitRequestPartition::default()
                    .with_partition_index(0)
                    .with_committed_offset(1)])]);
        let reply = super::super::offset_commit::handle(b, ctx(ApiKey::OffsetCommit, 2), req);
        body(reply).await;
    }

    /// (group, error code, error message) of each group, decoded at `version`.
    async fn delete(
        b: &Arc<Broker>,
        version: i16,
        groups: &[&'static str],
    ) -> Vec<(String, i16, Option<String>)> {
        let req = DeleteGroupsRequest::default().with_groups_names(
            groups
                .iter()
                .map(|g| GroupId(StrBytes::from_static_str(g)))
                .collect(),
        );
        let mut bytes = body(handle(b, ctx(KEY, version), req)).await;
        ResponseHeader::decode(&mut bytes, DeleteGroupsResponse::header_version(version))
            .expect("header");
        let resp = DeleteGroupsResponse::decode(&mut bytes, version).expect("decode");
        assert!(!bytes.has_remaining(), "v{version}: bytes left over");
        resp.results
            .into_iter()
            .map(|r| {
                (
                    r.group_id.0.to_string(),
                    r.error_code,
                    r.error_message.map(|m| m.to_string()),
                )
            })
            .collect()
    }

    /// v3: as Kafka 4.4, a deleted group and one not found have a null message (v2 none on
    /// the wire); a deletion that could not be written names its cause.
    #[tokio::test]
    async fn v3_error_messages() {
        let dir = tempfile::tempdir().expect("tempdir");
        let b = broker(dir.path());
        commit(&b, "empty").await;
        let not_found = ErrorCode::GROUP_ID_NOT_FOUND.code();
        assert_eq!(
            delete(&b, 3, &["empty", "nope"]).await,
            vec![
                ("empty".to_string(), 0, None),
                ("nope".to_string(), not_found, None),
            ]
        );
        assert_eq!(error_message(ErrorCode::NON_EMPTY_GROUP.code()), None);
        assert_eq!(
            error_message(ErrorCode::NOT_ENOUGH_REPLICAS.code()).as_deref(),
            Some("The group's deletion could not be written to __consumer_offsets: NOT_ENOUGH_REPLICAS")
        );
        assert_eq!(
            delete(&b, 2, &["nope"]).await,
            vec![("nope".to_string(), not_found, None)]
        );
    }

    /// DELETE on each group: the others are answered GROUP_AUTHORIZATION_FAILED (null
    /// message, after the groups deleted) and stay.
    #[tokio::test]
    async fn groups_need_delete() {
        use crate::authorizer::test_support::{allow_group, ctx_of};
        use crate::handlers::group_common::test_support::{admin_commit, auth_group_broker};
        use crate::request::decode_reply;

        let dir = tempfile::tempdir().expect("tempdir");
        let b = auth_group_broker(dir.path(), 1);
        admin_commit(&b, "g", &["t"]).await;
        admin_commit(&b, "h", &["t"]).await;
        allow_group(&b, "User:alice", AclOperation::Delete, "g");
        let req = DeleteGroupsRequest::default().with_groups_names(vec![
            GroupId(StrBytes::from_static_str("h")),
            GroupId(StrBytes::from_static_str("g")),
            GroupId(StrBytes::from_static_str("h")),
        ]);
        let r: DeleteGroupsResponse =
            decode_reply(handle(&b, ctx_of("alice", KEY, 3), req), 3).await;
        let results: Vec<(&str, i16, Option<&str>)> = r
            .results
            .iter()
            .map(|g| {
                (
                    g.group_id.0.as_str(),
                    g.error_code,
                    g.error_message.as_deref(),
                )
            })
            .collect();
        let refused = ErrorCode::GROUP_AUTHORIZATION_FAILED.code();
        assert_eq!(results, vec![("g", 0, None), ("h", refused, None)]);
        assert!(b.groups.core().group_state("h").is_some(), "h stays");
        assert!(b.groups.core().group_state("g").is_none(), "g is deleted");
    }
}
