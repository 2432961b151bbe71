//! DeleteTopics (key 20): by name (v1–v5) or by name or topic id (v6+).
//!
//! Authorization is Kafka's (`ControllerApis.deleteTopics`): DELETE on the cluster (asked
//! without an audit line) allows every topic; else a topic needs DELETE on it, and DESCRIBE
//! decides what a refusal reveals: a name the principal may not describe is
//! TOPIC_AUTHORIZATION_FAILED whether or not it exists, and a topic given by id that it may not
//! delete is refused without its name unless it may describe it.
//!
//! Names and ids are resolved against this node's image: a broker's, or the quorum's on a
//! controller listener (KIP-919), which deletes as a broker does.

use std::collections::{HashMap, HashSet};
use std::ops::RangeInclusive;
use std::sync::Arc;

use gregor_metadata::{AclOperation, ResourceType, CLUSTER_NAME};
use gregor_protocol::error::ErrorCode;
use gregor_protocol::messages::delete_topics_response::DeletableTopicResult;
use gregor_protocol::messages::ApiKey;
use gregor_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse};

use gregor_controller::protocol as proto;
use gregor_controller::{ControllerRequest, ControllerResponse};

use super::{str_bytes, topic_name};
use crate::admin_node::AdminNode;
use crate::authorizer;
use crate::request::{encode, Reply, RequestContext};

/// The API this module serves.
pub const KEY: ApiKey = ApiKey::DeleteTopics;
/// The versions served (and advertised in ApiVersions).
pub const VERSIONS: RangeInclusive<i16> = 1..=6;

/// Handles a DeleteTopics request: the node resolves names and ids against its image, the
/// controller deletes; the reply waits until the deletions are applied here.
pub fn handle<N: AdminNode + 'static>(
    node: &Arc<N>,
    ctx: RequestContext,
    req: DeleteTopicsRequest,
) -> Reply {
    let node = Arc::clone(node);
    Reply::Pending(Box::pin(async move {
        let response = delete_topics(&*node, &ctx, req).await;
        encode(&ctx, &response)
    }))
}

/// What the principal may do to the topics of a request (Kafka's `ControllerApis.deleteTopics`):
/// with DELETE on the cluster (asked quietly) everything, else per topic DESCRIBE and DELETE.
enum Access {
    Cluster,
    Topics {
        describable: HashSet<String>,
        deletable: HashSet<String>,
    },
}

impl Access {
    fn of(node: &dyn AdminNode, ctx: &RequestContext, names: &[&str]) -> Access {
        if authorizer::authorize_quietly(
            node,
            ctx,
            AclOperation::Delete,
            ResourceType::Cluster,
            CLUSTER_NAME,
        ) {
            return Access::Cluster;
        }
        let filter = |op| {
            authorizer::filter_authorized(node, ctx, op, ResourceType::Topic, names.iter().copied())
        };
        Access::Topics {
            describable: filter(AclOperation::Describe),
            deletable: filter(AclOperation::Delete),
        }
    }

    fn describable(&self, name: &str) -> bool {
        match self {
            Access::Cluster => true,
            Access::Topics { describable, .. } => describable.contains(name),
        }
    }

    fn deletable(&self, name: &str) -> bool {
        match self {
            Access::Cluster => true,
            Access::Topics { deletable, .. } => deletable.contains(name),
        }
    }
}

/// An entry of a request: the topic's name, its id, or (refused) both or neither.
type Target = (Option<String>, uuid::Uuid);

/// Kafka's checks of the entries themselves (`ControllerApis.deleteTopics`), before anything
/// is looked up: an entry with neither a name nor an id, or with both, is refused; a name or an
/// id given more than once is refused once, and none of its entries is deleted. The refusals
/// (in the order of their first entry; Kafka lists the repeats after the others) and the
/// entries left, in their order.
fn refuse_malformed(targets: Vec<Target>) -> (Vec<Option<DeletableTopicResult>>, Vec<Target>) {
    let refusal = |name: Option<&str>, id: uuid::Uuid, message: &str| {
        Some(
            DeletableTopicResult::default()
                .with_name(name.map(topic_name))
                .with_topic_id(id)
                .with_error_code(ErrorCode::INVALID_REQUEST.code())
                .with_error_message(Some(str_bytes(message))),
        )
    };
    let mut names: HashMap<&str, usize> = HashMap::new();
    let mut ids: HashMap<uuid::Uuid, usize> = HashMap::new();
    for (name, id) in &targets {
        match name {
            Some(n) if id.is_nil() => *names.entry(n.as_str()).or_default() += 1,
            None if !id.is_nil() => *ids.entry(*id).or_default() += 1,
            _ => {}
        }
    }
    let mut refused = Vec::new();
    let mut reported: HashSet<Target> = HashSet::new();
    let mut kept = Vec::new();
    for (name, id) in &targets {
        let message = match name {
            None if id.is_nil() => Some("Neither topic name nor id were specified."),
            Some(_) if !id.is_nil() => Some("You may not specify both topic name and topic id."),
            Some(n) if names[n.as_str()] > 1 => {
                if reported.insert((name.clone(), *id)) {
                    refused.push(refusal(Some(n), *id, "Duplicate topic name."));
                }
                continue;
            }
            None if ids[id] > 1 => {
                if reported.insert((None, *id)) {
                    refused.push(refusal(None, *id, "Duplicate topic id."));
                }
                continue;
            }
            _ => None,
        };
        match message {
            Some(m) => refused.push(refusal(name.as_deref(), *id, m)),
            None => kept.push((name.clone(), *id)),
        }
    }
    (refused, kept)
}

async fn delete_topics(
    node: &dyn AdminNode,
    ctx: &RequestContext,
    req: DeleteTopicsRequest,
) -> DeleteTopicsResponse {
    let image = node.image();
    let timeout_ms = req.timeout_ms;
    let mut targets: Vec<Target> = Vec::new();
    if ctx.api_version >= 6 {
        for t in req.topics {
            targets.push((t.name.map(|n| n.0.to_string()), t.topic_id));
        }
    } else {
        for n in req.topic_names {
            targets.push((Some(n.0.to_string()), uuid::Uuid::nil()));
        }
    }
    let (mut results, targets) = refuse_malformed(targets);
    let resolved: Vec<Option<(String, uuid::Uuid)>> = targets
        .iter()
        .map(|(name, id)| match name {
            Some(n) => image
                .topics()
                .topic_by_name(n)
                .map(|t| (t.name.clone(), t.id)),
            None => image.topics().topic(*id).map(|t| (t.name.clone(), t.id)),
        })
        .collect();
    // The names to authorize: those given, and those the given ids resolve to.
    let names: Vec<&str> = targets
        .iter()
        .zip(&resolved)
        .filter_map(|((name, _), resolved)| {
            name.as_deref()
                .or_else(|| resolved.as_ref().map(|(n, _)| n.as_str()))
        })
        .collect();
    let access = Access::of(node, ctx, &names);
    // (index in results, name, id) of the topics the controller is asked to delete.
    let mut asked: Vec<(usize, String, uuid::Uuid)> = Vec::new();
    for ((name, id), resolved) in targets.into_iter().zip(resolved) {
        let result = DeletableTopicResult::default()
            .with_name(name.as_deref().map(topic_name))
            .with_topic_id(id);
        let denied = ErrorCode::TOPIC_AUTHORIZATION_FAILED.code();
        // Kafka's order: a name the principal may not describe is refused whether or not the
        // topic exists; an unknown id is UNKNOWN_TOPIC_ID; a topic found by id that may not be
        // deleted is refused without its name unless the principal may describe it.
        if let Some(n) = &name {
            if !access.describable(n) {
                results.push(Some(result.with_error_code(denied)));
                continue;
            }
        }
        let Some((resolved, topic_id)) = resolved else {
            let code = if name.is_some() {
                ErrorCode::UNKNOWN_TOPIC_OR_PARTITION
            } else {
                ErrorCode::UNKNOWN_TOPIC_ID
            };
            results.push(Some(result.with_error_code(code.code())));
            continue;
        };
        if !access.deletable(&resolved) {
            let shown =
                (name.is_some() || access.describable(&resolved)).then(|| topic_name(&resolved));
            results.push(Some(result.with_name(shown).with_error_code(denied)));
            continue;
        }
        if !node.config().delete_topic_enable {
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
        let answer = node
            .controller()
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
                node.wait_for_topics(&deleted, false, timeout_ms).await;
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::authorizer::test_support::{allow_topic, ctx_of};
    use gregor_protocol::messages::delete_topics_request::DeleteTopicState;

    fn by_name(name: &str) -> DeleteTopicState {
        DeleteTopicState::default().with_name(Some(topic_name(name)))
    }

    fn by_id(id: uuid::Uuid) -> DeleteTopicState {
        DeleteTopicState::default().with_topic_id(id)
    }

    fn outcome(resp: &DeleteTopicsResponse) -> Vec<(Option<String>, i16)> {
        resp.responses
            .iter()
            .map(|r| (r.name.as_ref().map(|n| n.0.to_string()), r.error_code))
            .collect()
    }

    /// Kafka's refusals of the entries themselves: neither a name nor an id, both, and a name
    /// or an id given twice (refused once, not deleted); the other entries go on.
    #[tokio::test]
    async fn malformed_and_repeated_entries_are_refused_as_kafka_does() {
        let dir = tempfile::tempdir().expect("tempdir");
        let b = crate::handlers::admin_common::test_cluster::broker(dir.path());
        let t = crate::handlers::admin_common::test_cluster::topic(&b, "t", &[vec![1]]);
        let u = crate::handlers::admin_common::test_cluster::topic(&b, "u", &[vec![1]]);
        let ctx = ctx_of("admin", KEY, 6);
        let req = DeleteTopicsRequest::default().with_topics(vec![
            by_name("t"),
            DeleteTopicState::default(),
            by_name("t"),
            by_name("u").with_topic_id(u),
            by_id(u),
            by_id(u),
        ]);
        let resp = delete_topics(&b, &ctx, req).await;
        let got: Vec<(Option<String>, i16, Option<String>)> = resp
            .responses
            .iter()
            .map(|r| {
                (
                    r.name.as_ref().map(|n| n.0.to_string()),
                    r.error_code,
                    r.error_message.as_ref().map(|m| m.to_string()),
                )
            })
            .collect();
        let invalid = ErrorCode::INVALID_REQUEST.code();
        let m = |s: &str| Some(s.to_string());
        assert_eq!(
            got,
            vec![
                (m("t"), invalid, m("Duplicate topic name.")),
                (
                    None,
                    invalid,
                    m("Neither topic name nor id were specified.")
                ),
                (
                    m("u"),
                    invalid,
                    m("You may not specify both topic name and topic id.")
                ),
                (None, invalid, m("Duplicate topic id.")),
            ]
        );
        // Nothing was deleted.
        assert!(b.replicas.topic("t").is_some() && b.replicas.topic("u").is_some());
        let _ = t;
    }

    /// With an authorizer: DELETE on the topic deletes it; without it, DESCRIBE decides what
    /// the refusal reveals (a missing name is refused rather than reported unknown, a topic
    /// given by id is refused without its name).
    #[tokio::test]
    async fn deletion_needs_delete_and_refusals_reveal_only_what_may_be_described() {
        let dir = tempfile::tempdir().expect("tempdir");
        let b = crate::handlers::admin_common::test_cluster::secured(dir.path());
        let t = crate::handlers::admin_common::test_cluster::topic(&b, "t", &[vec![1]]);
        let alice = ctx_of("alice", KEY, 6);
        let req = DeleteTopicsRequest::default().with_topics(vec![
            by_name("missing"),
            by_id(t),
            by_id(uuid::Uuid::from_u128(7)),
        ]);
        let denied = ErrorCode::TOPIC_AUTHORIZATION_FAILED.code();
        let some = |n: &str| Some(n.to_string());
        assert_eq!(
            outcome(&delete_topics(&b, &alice, req.clone()).await),
            vec![
                (some("missing"), denied),
                (None, denied),
                (None, ErrorCode::UNKNOWN_TOPIC_ID.code()),
            ]
        );
        for name in ["missing", "t"] {
            allow_topic(&b, "User:alice", AclOperation::Describe, name);
        }
        let resp = delete_topics(&b, &alice, req.clone()).await;
        assert_eq!(
            outcome(&resp)[..2],
            [
                (
                    some("missing"),
                    ErrorCode::UNKNOWN_TOPIC_OR_PARTITION.code()
                ),
                (some("t"), denied),
            ]
        );
        assert!(b.replicas.topic("t").is_some());
        allow_topic(&b, "User:alice", AclOperation::Delete, "t");
        let resp = delete_topics(&b, &alice, req).await;
        assert_eq!(outcome(&resp)[1], (some("t"), 0));
        assert!(b.replicas.topic("t").is_none());
    }
}
