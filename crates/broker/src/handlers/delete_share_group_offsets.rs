//! DeleteShareGroupOffsets (key 92, KIP-932): an Empty share group forgets its
//! share-partitions' state for the topics named (`kafka-share-groups.sh --delete-offsets`),
//! deleted from the share coordinators (`GroupRuntime::delete_share_group_offsets`). A group
//! with members answers NON_EMPTY_GROUP; an unknown group GROUP_ID_NOT_FOUND; a topic that
//! does not exist, or without state in the group, UNKNOWN_TOPIC_OR_PARTITION.
//!
//! Authorization, as Kafka's `handleDeleteShareGroupOffsetsRequest`: DELETE on the group
//! (else GROUP_AUTHORIZATION_FAILED for the request), READ on each topic (else
//! TOPIC_AUTHORIZATION_FAILED for it, which keeps its state).

use std::ops::RangeInclusive;
use std::sync::Arc;

use gregor_metadata::{AclOperation, ResourceType};
use gregor_protocol::error::ErrorCode;
use gregor_protocol::messages::delete_share_group_offsets_response::DeleteShareGroupOffsetsResponseTopic as TopicOut;
use gregor_protocol::messages::ApiKey;
use gregor_protocol::messages::{DeleteShareGroupOffsetsRequest, DeleteShareGroupOffsetsResponse};

use super::group_common::authorize_group;
use super::{str_bytes, topic_name};
use crate::authorizer;
use crate::broker::Broker;
use crate::request::{encode, ready, Reply, RequestContext};

/// The API this module serves.
pub const KEY: ApiKey = ApiKey::DeleteShareGroupOffsets;
/// The versions served (and advertised in ApiVersions).
pub const VERSIONS: RangeInclusive<i16> = 0..=0;

/// Handles a DeleteShareGroupOffsets request.
pub fn handle(
    broker: &Arc<Broker>,
    ctx: RequestContext,
    req: DeleteShareGroupOffsetsRequest,
) -> Reply {
    let group_id = req.group_id.0.to_string();
    if !crate::group_coordinator::share_groups_enabled(&broker.replicas) {
        let resp = DeleteShareGroupOffsetsResponse::default()
            .with_error_code(ErrorCode::UNSUPPORTED_VERSION.code())
            .with_error_message(Some(str_bytes(
                super::share_group_heartbeat::UNSUPPORTED_MESSAGE,
            )));
        return ready(&ctx, &resp);
    }
    if !authorize_group(broker, &ctx, AclOperation::Delete, &group_id) {
        let code = ErrorCode::GROUP_AUTHORIZATION_FAILED;
        let resp = DeleteShareGroupOffsetsResponse::default()
            .with_error_code(code.code())
            .with_error_message(Some(str_bytes(code.name())));
        return ready(&ctx, &resp);
    }
    let (names, refused): (Vec<String>, Vec<String>) = req
        .topics
        .iter()
        .map(|t| t.topic_name.0.to_string())
        .partition(|name| {
            authorizer::authorize(broker, &ctx, AclOperation::Read, ResourceType::Topic, name)
        });
    let deleted = broker.groups.delete_share_group_offsets(
        &broker.replicas,
        &broker.share_persister,
        group_id,
        names,
    );
    Reply::Pending(Box::pin(async move {
        let resp = match deleted.await {
            Ok(results) => {
                let refused = refused.into_iter().map(|name| {
                    TopicOut::default()
                        .with_topic_name(topic_name(&name))
                        .with_error_code(ErrorCode::TOPIC_AUTHORIZATION_FAILED.code())
                });
                DeleteShareGroupOffsetsResponse::default().with_responses(
                    results
                        .into_iter()
                        .map(|t| {
                            TopicOut::default()
                                .with_topic_name(topic_name(&t.topic_name))
                                .with_topic_id(t.topic_id)
                                .with_error_code(t.error_code)
                                .with_error_message(t.error_message.map(str_bytes))
                        })
                        .chain(refused)
                        .collect(),
                )
            }
            Err((code, message)) => DeleteShareGroupOffsetsResponse::default()
                .with_error_code(code)
                .with_error_message(Some(str_bytes(message))),
        };
        encode(&ctx, &resp)
    }))
}
