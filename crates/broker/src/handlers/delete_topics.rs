//! DeleteTopics (key 20): by name (v1–v5) or by name or topic id (v6+).

use std::ops::RangeInclusive;
use std::sync::Arc;

use gregor_protocol::error::ErrorCode;
use gregor_protocol::messages::delete_topics_response::DeletableTopicResult;
use gregor_protocol::messages::ApiKey;
use gregor_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse};

use gregor_controller::protocol as proto;
use gregor_controller::{ControllerRequest, ControllerResponse};

use super::{str_bytes, topic_name};
use crate::broker::Broker;
use crate::request::{encode, Reply, RequestContext};

/// The API this module serves.
pub const KEY: ApiKey = ApiKey::DeleteTopics;
/// The versions served (and advertised in ApiVersions).
pub const VERSIONS: RangeInclusive<i16> = 1..=6;

/// Handles a DeleteTopics request: the broker resolves names and ids against its image, the
/// controller deletes; the reply waits until the deletions are applied here.
pub fn handle(broker: &Arc<Broker>, ctx: RequestContext, req: DeleteTopicsRequest) -> Reply {
    let broker = Arc::clone(broker);
    Reply::Pending(Box::pin(async move {
        let response = delete_topics(&broker, &ctx, req).await;
        encode(&ctx, &response)
    }))
}

async fn delete_topics(
    broker: &Broker,
    ctx: &RequestContext,
    req: DeleteTopicsRequest,
) -> DeleteTopicsResponse {
    let rm = &broker.replicas;
    let timeout_ms = req.timeout_ms;
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
    let mut results: Vec<Option<DeletableTopicResult>> = Vec::with_capacity(targets.len());
    // (index in results, name, id) of the topics the controller is asked to delete.
    let mut asked: Vec<(usize, String, uuid::Uuid)> = Vec::new();
    for (name, id) in targets {
        let resolved = match &name {
            Some(n) => rm.topic(n).map(|t| (t.name.clone(), t.id)),
            None => rm.topic_by_id(id).map(|t| (t.name.clone(), t.id)),
        };
        let result = DeletableTopicResult::default()
            .with_name(name.as_deref().map(topic_name))
            .with_topic_id(id);
        let Some((resolved, topic_id)) = resolved else {
            let code = if name.is_some() {
                ErrorCode::UNKNOWN_TOPIC_OR_PARTITION
            } else {
                ErrorCode::UNKNOWN_TOPIC_ID
            };
            results.push(Some(result.with_error_code(code.code())));
            continue;
        };
        if !broker.config.delete_topic_enable {
            results.push(Some(
                result
                    .with_error_code(ErrorCode::TOPIC_AUTHORIZATION_FAILED.code())
                    .with_error_message(Some(str_bytes("Topic deletion is disabled."))),
            ));
            continue;
        }
        asked.push((results.len(), resolved, topic_id));
        results.push(None);
    }
    if !asked.is_empty() {
        let request = proto::DeleteTopicsRequest {
            topics: asked
                .iter()
                .map(|(_, _, id)| proto::TopicRef::Id(*id))
                .collect(),
        };
        let answer = broker
            .controller
            .call(ControllerRequest::DeleteTopics(request))
            .await;
        let outcome: Vec<(ErrorCode, Option<String>)> = match answer {
            Ok(ControllerResponse::DeleteTopics(resp)) => {
                let deleted: Vec<uuid::Uuid> = resp
                    .topics
                    .iter()
                    .filter(|t| t.error_code == 0)
                    .map(|t| t.topic_id)
                    .collect();
                broker.wait_for_topics(&deleted, false, timeout_ms).await;
                asked
                    .iter()
                    .map(|(_, _, id)| {
                        resp.topics
                            .iter()
                            .find(|t| t.topic_id == *id)
                            .map_or((ErrorCode::UNKNOWN_SERVER_ERROR, None), |t| {
                                (ErrorCode(t.error_code), t.error_message.clone())
                            })
                    })
                    .collect()
            }
            Ok(other) => {
                let (code, message) = super::create_topics::controller_failure(&other);
                vec![(code, Some(message)); asked.len()]
            }
            Err(e) => vec![(ErrorCode::REQUEST_TIMED_OUT, Some(e.to_string())); asked.len()],
        };
        for ((slot, name, id), (code, message)) in asked.into_iter().zip(outcome) {
            let mut r = DeletableTopicResult::default()
                .with_name(Some(topic_name(&name)))
                .with_topic_id(id)
                .with_error_code(code.code());
            if code.code() != 0 {
                r = r.with_error_message(message.map(str_bytes));
            }
            results[slot] = Some(r);
        }
    }
    DeleteTopicsResponse::default().with_responses(results.into_iter().flatten().collect())
}
