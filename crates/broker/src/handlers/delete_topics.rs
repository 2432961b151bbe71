//! DeleteTopics (key 20): by name (v1–v5) or by name or topic id (v6+).

use std::ops::RangeInclusive;
use std::sync::Arc;

use gregor_protocol::error::ErrorCode;
use gregor_protocol::messages::delete_topics_response::DeletableTopicResult;
use gregor_protocol::messages::ApiKey;
use gregor_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse};

use super::{str_bytes, topic_name};
use crate::broker::Broker;
use crate::request::RequestContext;

/// The API this module serves.
pub const KEY: ApiKey = ApiKey::DeleteTopics;
/// The versions served (and advertised in ApiVersions).
pub const VERSIONS: RangeInclusive<i16> = 1..=6;

/// Handles a DeleteTopics request.
pub fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    req: DeleteTopicsRequest,
) -> DeleteTopicsResponse {
    let rm = &broker.replicas;
    let mut targets: Vec<(Option<String>, uuid::Uuid)> = Vec::new();
    if ctx.api_version >= 6 {
        for t in req.topics {
            targets.push((t.name.map(|n| n.0.to_string()), t.topic_id));
        }
    } else {
        for n in req.topic_names {
            targets.push((Some(n.0.to_string()), uuid::Uuid::nil()));
        }
    }
    let mut results = Vec::with_capacity(targets.len());
    for (name, id) in targets {
        let resolved = match &name {
            Some(n) => rm.topic(n).map(|t| t.record.name.clone()),
            None => rm.topic_by_id(id).map(|t| t.record.name.clone()),
        };
        let result = DeletableTopicResult::default()
            .with_name(name.as_deref().map(topic_name))
            .with_topic_id(id);
        let Some(resolved) = resolved else {
            let code = if name.is_some() {
                ErrorCode::UNKNOWN_TOPIC_OR_PARTITION
            } else {
                ErrorCode::UNKNOWN_TOPIC_ID
            };
            results.push(result.with_error_code(code.code()));
            continue;
        };
        if !broker.config.delete_topic_enable {
            results.push(
                result
                    .with_error_code(ErrorCode::TOPIC_AUTHORIZATION_FAILED.code())
                    .with_error_message(Some(str_bytes("Topic deletion is disabled."))),
            );
            continue;
        }
        match rm.delete_topic(&resolved) {
            Ok(id) => results.push(
                result
                    .with_name(Some(topic_name(&resolved)))
                    .with_topic_id(id)
                    .with_error_code(0),
            ),
            Err(code) => results.push(result.with_error_code(code.code())),
        }
    }
    DeleteTopicsResponse::default().with_responses(results)
}
