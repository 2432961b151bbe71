//! CreateTopics (key 19): validates names, partition counts, replication factors and configs,
//! then creates the topics (or, with `validate_only`, only checks them).
//!
//! Request-wide limits, as Kafka's KRaft controller applies them (every topic of the request
//! gets the error, nothing is created):
//! - more than [`MAX_PARTITIONS_PER_REQUEST`] partitions asked for in all (a topic's
//!   `num_partitions`, the broker's `num.partitions` for -1, or its assignment count):
//!   `POLICY_VIOLATION` "Excessively large number of partitions per request."
//!   (`ReplicationControlManager.validateTotalNumberOfPartitions`, checked before anything else);
//! - more than [`MAX_RECORDS_PER_USER_OP`] metadata records for the valid topics (one per topic,
//!   one per partition, one per config): `POLICY_VIOLATION` "Unable to perform excessively large
//!   batch operation." (the controller's bounded record list; so one topic holds at most 9 999
//!   partitions).
//!
//! A name given twice is refused in each entry ("Duplicate topic name."), and the metadata log's
//! name `__cluster_metadata` ("Creation of internal topic __cluster_metadata is prohibited."),
//! both INVALID_REQUEST, before anything else. Authorization first, as Kafka's
//! `ControllerApis.createTopics`: CREATE on the cluster (asked
//! without an audit line) allows every topic, else CREATE on each topic; a topic without it
//! gets TOPIC_AUTHORIZATION_FAILED ("Authorization failed.") and is neither checked further nor
//! counted in the request-wide limits. A created topic's configs are in the answer only with
//! DESCRIBE_CONFIGS on it (else `topic_config_error_code` TOPIC_AUTHORIZATION_FAILED).
//!
//! The broker checks what it can alone (names, counts, configs, the limits above); the topics
//! that pass go to the active controller in one request, which places the replicas on live
//! brokers (INVALID_REPLICATION_FACTOR when there are too few), commits the topics to the
//! metadata log, and answers with their ids. The reply waits (a few seconds at most) until this
//! node has applied the new topics, so a Metadata request right after sees them. A controller
//! listener runs the same checks over its node (KIP-919: an AdminClient with
//! `bootstrap.controllers`), with the node's own `num.partitions` and
//! `default.replication.factor`, as Kafka's controller does.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::ops::RangeInclusive;
use std::sync::Arc;

use gregor_controller::protocol as proto;
use gregor_controller::{ControllerRequest, ControllerResponse};
use gregor_metadata::{AclOperation, ResourceType, CLUSTER_NAME};
use gregor_protocol::error::ErrorCode;
use gregor_protocol::messages::create_topics_request::CreatableTopic;
use gregor_protocol::messages::create_topics_response::{
    CreatableTopicConfigs, CreatableTopicResult,
};
use gregor_protocol::messages::ApiKey;
use gregor_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};
use tracing::warn;

use super::{str_bytes, topic_name};
use crate::admin_node::AdminNode;
use crate::authorizer;
use crate::request::{encode, Reply, RequestContext};
use crate::topic_config::{validate, validate_topic_name};

/// The API this module serves.
pub const KEY: ApiKey = ApiKey::CreateTopics;
/// The versions served (and advertised in ApiVersions).
pub const VERSIONS: RangeInclusive<i16> = 2..=7;

/// Kafka's `ReplicationControlManager.MAX_PARTITIONS_PER_BATCH`.
pub const MAX_PARTITIONS_PER_REQUEST: i64 = 10_000;

/// Kafka's `QuorumController.MAX_RECORDS_PER_USER_OP`.
pub const MAX_RECORDS_PER_USER_OP: i64 = 10_000;

const TOO_MANY_PARTITIONS: &str = "Excessively large number of partitions per request.";
const TOO_MANY_RECORDS: &str = "Unable to perform excessively large batch operation.";

fn failed(name: &str, code: ErrorCode, message: String) -> CreatableTopicResult {
    CreatableTopicResult::default()
        .with_name(topic_name(name))
        .with_error_code(code.code())
        .with_error_message(Some(str_bytes(message)))
        .with_num_partitions(-1)
        .with_replication_factor(-1)
}

/// Partitions a request asks for, counted as Kafka's `validateTotalNumberOfPartitions` does
/// (an invalid count adds nothing; it fails on its own later). Never overflows.
pub fn requested_partitions(topics: &[CreatableTopic], default_partitions: i32) -> i64 {
    topics
        .iter()
        .map(|t| {
            if !t.assignments.is_empty() {
                i64::try_from(t.assignments.len()).unwrap_or(i64::MAX)
            } else if t.num_partitions == -1 {
                i64::from(default_partitions)
            } else {
                i64::from(t.num_partitions.max(0))
            }
        })
        .fold(0i64, i64::saturating_add)
}

/// Metadata records Kafka's controller would write for one topic: its TopicRecord, one
/// ConfigRecord per config and one PartitionRecord per partition.
pub fn topic_records(partitions: i32, configs: usize) -> i64 {
    1i64.saturating_add(i64::try_from(configs).unwrap_or(i64::MAX))
        .saturating_add(i64::from(partitions))
}

/// A topic that passed the broker's checks.
struct Valid {
    name: String,
    /// As asked: -1 for the default, or the assignment count.
    num_partitions: i32,
    /// As asked: -1 for the default.
    replication_factor: i16,
    /// Explicit replicas per partition, in partition order.
    assignments: Vec<Vec<i32>>,
    configs: BTreeMap<String, String>,
}

/// Handles a CreateTopics request; the reply is ready once the controller has answered and
/// the created topics are applied here.
pub fn handle<N: AdminNode + 'static>(
    node: &Arc<N>,
    ctx: RequestContext,
    req: CreateTopicsRequest,
) -> Reply {
    let node = Arc::clone(node);
    Reply::Pending(Box::pin(async move {
        let response = create_topics(&*node, &ctx, req).await;
        encode(&ctx, &response)
    }))
}

/// Every topic of the request fails with `code` (a request-wide limit).
fn all_failed(req: &CreateTopicsRequest, code: ErrorCode, message: &str) -> CreateTopicsResponse {
    let results = req
        .topics
        .iter()
        .map(|t| failed(&t.name.0, code, message.to_string()))
        .collect();
    CreateTopicsResponse::default().with_topics(results)
}

/// The name of the metadata log (Kafka's `Topic.CLUSTER_METADATA_TOPIC_NAME`), which no topic
/// may take.
const CLUSTER_METADATA_TOPIC: &str = "__cluster_metadata";

/// The names among `names` the principal may create: all with CREATE on the cluster (asked
/// quietly, as Kafka does), else those with CREATE on the topic.
fn creatable<'a>(
    node: &dyn AdminNode,
    ctx: &RequestContext,
    names: impl Iterator<Item = &'a str>,
) -> HashSet<String> {
    if authorizer::authorize_quietly(
        node,
        ctx,
        AclOperation::Create,
        ResourceType::Cluster,
        CLUSTER_NAME,
    ) {
        names.map(str::to_string).collect()
    } else {
        authorizer::filter_authorized(node, ctx, AclOperation::Create, ResourceType::Topic, names)
    }
}

/// Validates, then creates through the controller.
async fn create_topics(
    node: &dyn AdminNode,
    ctx: &RequestContext,
    req: CreateTopicsRequest,
) -> CreateTopicsResponse {
    let config = node.config();
    // Kafka refuses every entry of a name given more than once (ControllerApis), before
    // authorizing the others.
    let mut mentions: HashMap<&str, usize> = HashMap::new();
    for t in &req.topics {
        *mentions.entry(&t.name.0).or_default() += 1;
    }
    let duplicate = |name: &str| mentions.get(name).is_some_and(|&n| n > 1);
    // The metadata log's name is never a topic's (Kafka's ControllerApis and KafkaApis): it
    // is refused before authorization and not counted.
    let authorized = creatable(
        node,
        ctx,
        req.topics
            .iter()
            .map(|t| &*t.name.0)
            .filter(|name| !duplicate(name) && *name != CLUSTER_METADATA_TOPIC),
    );
    // Kafka's controller counts the topics it is given: not the unauthorized ones.
    let unauthorized =
        |t: &CreatableTopic| !duplicate(&t.name.0) && !authorized.contains(&*t.name.0);
    let total = if req.topics.iter().any(unauthorized) {
        let asked: Vec<CreatableTopic> = req
            .topics
            .iter()
            .filter(|t| !unauthorized(t))
            .cloned()
            .collect();
        requested_partitions(&asked, config.num_partitions)
    } else {
        requested_partitions(&req.topics, config.num_partitions)
    };
    if total > MAX_PARTITIONS_PER_REQUEST {
        warn!(
            partitions = total,
            topics = req.topics.len(),
            "CreateTopics refused: more than {MAX_PARTITIONS_PER_REQUEST} partitions in one request"
        );
        return all_failed(&req, ErrorCode::POLICY_VIOLATION, TOO_MANY_PARTITIONS);
    }
    let mut outcomes: Vec<Result<Valid, Box<CreatableTopicResult>>> =
        Vec::with_capacity(req.topics.len());
    let image = node.image();
    for t in &req.topics {
        let outcome = if duplicate(&t.name.0) {
            Err(Box::new(failed(
                &t.name.0,
                ErrorCode::INVALID_REQUEST,
                "Duplicate topic name.".into(),
            )))
        } else if &*t.name.0 == CLUSTER_METADATA_TOPIC {
            Err(Box::new(failed(
                &t.name.0,
                ErrorCode::INVALID_REQUEST,
                format!("Creation of internal topic {CLUSTER_METADATA_TOPIC} is prohibited."),
            )))
        } else if !authorized.contains(&*t.name.0) {
            Err(Box::new(failed(
                &t.name.0,
                ErrorCode::TOPIC_AUTHORIZATION_FAILED,
                "Authorization failed.".into(),
            )))
        } else {
            validate_topic(config, &image, t)
        };
        outcomes.push(outcome);
    }
    let records = outcomes
        .iter()
        .filter_map(|o| o.as_ref().ok())
        .map(|v| {
            let partitions = if v.assignments.is_empty() {
                v.num_partitions
            } else {
                i32::try_from(v.assignments.len()).unwrap_or(i32::MAX)
            };
            topic_records(partitions, v.configs.len())
        })
        .fold(0i64, i64::saturating_add);
    if records > MAX_RECORDS_PER_USER_OP {
        warn!(
            records,
            topics = req.topics.len(),
            "CreateTopics refused: more than {MAX_RECORDS_PER_USER_OP} metadata records in one request"
        );
        return all_failed(&req, ErrorCode::POLICY_VIOLATION, TOO_MANY_RECORDS);
    }
    let valid: Vec<&Valid> = outcomes.iter().filter_map(|o| o.as_ref().ok()).collect();
    let mut created: HashMap<String, CreatableTopicResult> = HashMap::new();
    if !valid.is_empty() {
        let request = proto::CreateTopicsRequest {
            topics: valid
                .iter()
                .map(|v| proto::CreatableTopic {
                    name: v.name.clone(),
                    num_partitions: v.num_partitions,
                    replication_factor: v.replication_factor,
                    assignments: v
                        .assignments
                        .iter()
                        .enumerate()
                        .map(|(i, b)| proto::CreatableReplicaAssignment {
                            partition_index: i32::try_from(i).unwrap_or(i32::MAX),
                            broker_ids: b.clone(),
                        })
                        .collect(),
                    configs: v
                        .configs
                        .iter()
                        .map(|(k, val)| (k.clone(), Some(val.clone())))
                        .collect(),
                })
                .collect(),
            validate_only: req.validate_only,
        };
        match node
            .controller()
            .call(ControllerRequest::CreateTopics(request))
            .await
        {
            Ok(ControllerResponse::CreateTopics(resp)) => {
                let ids: Vec<uuid::Uuid> = resp
                    .topics
                    .iter()
                    .filter(|t| t.error_code == 0 && !t.topic_id.is_nil())
                    .map(|t| t.topic_id)
                    .collect();
                if !req.validate_only {
                    node.wait_for_topics(&ids, true, req.timeout_ms).await;
                }
                for t in resp.topics {
                    let v = valid.iter().find(|v| v.name == t.name);
                    let result = match v {
                        Some(v) if t.error_code == 0 => {
                            // Kafka returns a new topic's configs only to a principal that
                            // may describe them (asked quietly).
                            let describable = authorizer::authorize_quietly(
                                node,
                                ctx,
                                AclOperation::DescribeConfigs,
                                ResourceType::Topic,
                                &v.name,
                            );
                            ok_result(v, &t, describable)
                        }
                        _ => failed(
                            &t.name,
                            ErrorCode(t.error_code),
                            t.error_message.unwrap_or_default(),
                        ),
                    };
                    created.insert(t.name, result);
                }
            }
            Ok(other) => {
                let (code, message) = controller_failure(&other);
                for v in &valid {
                    created.insert(v.name.clone(), failed(&v.name, code, message.clone()));
                }
            }
            Err(e) => {
                warn!(error = %e, "CreateTopics: the controller could not be reached");
                for v in &valid {
                    created.insert(
                        v.name.clone(),
                        failed(&v.name, ErrorCode::REQUEST_TIMED_OUT, e.to_string()),
                    );
                }
            }
        }
    }
    let results = outcomes
        .into_iter()
        .map(|outcome| match outcome {
            Err(result) => *result,
            Ok(v) => created.remove(&v.name).unwrap_or_else(|| {
                failed(
                    &v.name,
                    ErrorCode::UNKNOWN_SERVER_ERROR,
                    "the controller did not answer for this topic".into(),
                )
            }),
        })
        .collect();
    CreateTopicsResponse::default().with_topics(results)
}

/// The error code and message of a controller answer of the wrong kind (NOT_CONTROLLER while
/// the quorum elects, an undecodable request).
pub(crate) fn controller_failure(resp: &ControllerResponse) -> (ErrorCode, String) {
    match resp {
        ControllerResponse::Error(e) => (ErrorCode(e.error_code), e.message.clone()),
        other => (
            ErrorCode::UNKNOWN_SERVER_ERROR,
            format!("unexpected controller answer {other:?}"),
        ),
    }
}

/// A created topic's result; without `describable` (DESCRIBE_CONFIGS on the topic) its configs,
/// partition count and replication factor are left out and `topic_config_error_code` is
/// TOPIC_AUTHORIZATION_FAILED, as Kafka's controller answers.
fn ok_result(
    v: &Valid,
    t: &proto::CreatableTopicResult,
    describable: bool,
) -> CreatableTopicResult {
    let result = CreatableTopicResult::default()
        .with_name(topic_name(&v.name))
        .with_error_message(None) // Kafka: null on success
        .with_topic_id(t.topic_id);
    if !describable {
        return result
            .with_topic_config_error_code(ErrorCode::TOPIC_AUTHORIZATION_FAILED.code())
            .with_configs(Some(Vec::new()));
    }
    let described: Vec<CreatableTopicConfigs> = v
        .configs
        .iter()
        .map(|(k, val)| {
            CreatableTopicConfigs::default()
                .with_name(str_bytes(k.clone()))
                .with_value(Some(str_bytes(val.clone())))
                .with_config_source(1) // DYNAMIC_TOPIC_CONFIG
        })
        .collect();
    result
        .with_num_partitions(t.num_partitions)
        .with_replication_factor(t.replication_factor)
        .with_configs(Some(described))
}

/// Kafka's per-topic checks: name, existence (in `image`, this node's), partitions,
/// replication factor, configs (`config`'s defaults).
fn validate_topic(
    config: &crate::config::BrokerConfig,
    image: &gregor_metadata::MetadataImage,
    t: &CreatableTopic,
) -> Result<Valid, Box<CreatableTopicResult>> {
    let name = t.name.0.to_string();
    let fail = |code: ErrorCode, message: String| Err(Box::new(failed(&name, code, message)));
    if let Err(m) = validate_topic_name(&name) {
        return fail(ErrorCode::INVALID_TOPIC_EXCEPTION, m);
    }
    if image.topics().topic_by_name(&name).is_some() {
        return fail(
            ErrorCode::TOPIC_ALREADY_EXISTS,
            format!("Topic '{name}' already exists."),
        );
    }
    let (partitions, rf) = if t.assignments.is_empty() {
        let p = if t.num_partitions == -1 {
            config.num_partitions
        } else {
            t.num_partitions
        };
        let rf = if t.replication_factor == -1 {
            config.default_replication_factor
        } else {
            t.replication_factor
        };
        (p, rf)
    } else {
        if t.num_partitions != -1 || t.replication_factor != -1 {
            return fail(
                ErrorCode::INVALID_REQUEST,
                "Both numPartitions or replicationFactor and replicasAssignments were set.".into(),
            );
        }
        let bad = t
            .assignments
            .iter()
            .enumerate()
            .any(|(i, a)| i32::try_from(i) != Ok(a.partition_index) || a.broker_ids.is_empty());
        if bad {
            return fail(
                ErrorCode::INVALID_REPLICA_ASSIGNMENT,
                "Replica assignments must name partitions 0..n in order, each with replicas."
                    .into(),
            );
        }
        // The request-wide limit has bounded the count.
        (
            i32::try_from(t.assignments.len()).unwrap_or(i32::MAX),
            i16::try_from(t.assignments[0].broker_ids.len()).unwrap_or(i16::MAX),
        )
    };
    if partitions <= 0 {
        return fail(
            ErrorCode::INVALID_PARTITIONS,
            "Number of partitions must be larger than 0.".into(),
        );
    }
    if rf <= 0 {
        return fail(
            ErrorCode::INVALID_REPLICATION_FACTOR,
            "Replication factor must be larger than 0.".into(),
        );
    }
    let mut configs = BTreeMap::new();
    for c in &t.configs {
        let key = c.name.to_string();
        let Some(value) = c.value.as_ref().map(|v| v.to_string()) else {
            return fail(
                ErrorCode::INVALID_CONFIG,
                format!("Null value not supported for topic config {key}"),
            );
        };
        if let Err(m) = validate(&key, &value) {
            return fail(
                ErrorCode::INVALID_CONFIG,
                format!("Invalid value {value} for configuration {key}: {m}"),
            );
        }
        if let Some(m) = crate::topic_config::refusal(&key, &value) {
            return fail(ErrorCode::INVALID_CONFIG, m.to_string());
        }
        configs.insert(key, value);
    }
    let assignments = t
        .assignments
        .iter()
        .map(|a| a.broker_ids.iter().map(|b| b.0).collect())
        .collect();
    Ok(Valid {
        name,
        num_partitions: if t.assignments.is_empty() {
            partitions
        } else {
            -1
        },
        replication_factor: if t.assignments.is_empty() { rf } else { -1 },
        assignments,
        configs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::Broker;
    use gregor_protocol::messages::TopicName;
    use gregor_protocol::protocol::StrBytes;

    fn broker(dir: &std::path::Path) -> Arc<Broker> {
        let mut config = crate::config::BrokerConfig {
            data_dir: dir.to_path_buf(),
            ..Default::default()
        };
        config.group.offsets_topic_num_partitions = 1;
        crate::broker::test_broker(config)
    }

    fn ctx() -> RequestContext {
        RequestContext::for_test(KEY, 7)
    }

    fn topic(name: &str, partitions: i32) -> CreatableTopic {
        CreatableTopic::default()
            .with_name(TopicName(StrBytes::from_string(name.to_string())))
            .with_num_partitions(partitions)
            .with_replication_factor(1)
    }

    fn codes(resp: &CreateTopicsResponse) -> Vec<(String, i16, Option<String>)> {
        resp.topics
            .iter()
            .map(|t| {
                (
                    t.name.0.to_string(),
                    t.error_code,
                    t.error_message.as_ref().map(|m| m.to_string()),
                )
            })
            .collect()
    }

    #[test]
    fn requested_partitions_count_like_kafka_and_never_overflow() {
        let t = [topic("a", i32::MAX), topic("b", i32::MAX), topic("c", -1)];
        assert_eq!(requested_partitions(&t, 3), 2 * i64::from(i32::MAX) + 3);
        assert_eq!(requested_partitions(&[topic("a", 0), topic("b", -5)], 1), 0);
    }

    /// Over the limits, every topic of the request gets POLICY_VIOLATION at once and nothing
    /// is made: one absurd topic, a sum over topics, and a topic one record over the bound.
    #[tokio::test]
    async fn request_wide_limits_refuse_every_topic_and_create_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let b = broker(dir.path());
        let policy = ErrorCode::POLICY_VIOLATION.code();
        let cases: [(Vec<CreatableTopic>, &str); 4] = [
            (vec![topic("huge", i32::MAX)], TOO_MANY_PARTITIONS),
            (
                vec![topic("big", 50_000), topic("bad name!", 1)],
                TOO_MANY_PARTITIONS,
            ),
            (
                vec![topic("x", 6_000), topic("y", 4_001)],
                TOO_MANY_PARTITIONS,
            ),
            (vec![topic("x", 5_000), topic("y", 5_000)], TOO_MANY_RECORDS),
        ];
        for (topics, message) in cases {
            let names: Vec<String> = topics.iter().map(|t| t.name.0.to_string()).collect();
            let started = std::time::Instant::now();
            let resp = create_topics(
                &b,
                &ctx(),
                CreateTopicsRequest::default().with_topics(topics),
            )
            .await;
            assert!(started.elapsed() < std::time::Duration::from_secs(1));
            let want: Vec<(String, i16, Option<String>)> = names
                .into_iter()
                .map(|n| (n, policy, Some(message.to_string())))
                .collect();
            assert_eq!(codes(&resp), want);
        }
        // 10 000 partitions in one topic are 10 001 records: refused as Kafka does.
        let resp = create_topics(
            &b,
            &ctx(),
            CreateTopicsRequest::default().with_topics(vec![topic("ten-k", 10_000)]),
        )
        .await;
        assert_eq!(codes(&resp)[0].2.as_deref(), Some(TOO_MANY_RECORDS));
        assert!(b.replicas.topic("ten-k").is_none());
        let dirs = std::fs::read_dir(dir.path())
            .expect("read dir")
            .filter_map(Result::ok)
            .filter(|e| e.path().is_dir())
            .count();
        assert_eq!(dirs, 1, "only __consumer_offsets-0");
    }

    /// A name given twice is refused in both entries (Kafka's ControllerApis); the rest of the
    /// request is created.
    #[tokio::test]
    async fn duplicate_names_are_refused_together() {
        let dir = tempfile::tempdir().expect("tempdir");
        let b = broker(dir.path());
        let resp = create_topics(
            &b,
            &ctx(),
            CreateTopicsRequest::default().with_topics(vec![
                topic("d", 1),
                topic("ok", 2),
                topic("d", 1),
            ]),
        )
        .await;
        let invalid = ErrorCode::INVALID_REQUEST.code();
        let dup = Some("Duplicate topic name.".to_string());
        assert_eq!(
            codes(&resp),
            [
                ("d".to_string(), invalid, dup.clone()),
                ("ok".to_string(), 0, None),
                ("d".to_string(), invalid, dup),
            ]
        );
        assert!(b.replicas.topic("d").is_none());
        assert_eq!(b.replicas.topic("ok").expect("created").partitions.len(), 2);
    }

    /// The metadata log's name is refused as Kafka refuses it; the rest is created, and the
    /// metadata log's own directory is not touched.
    #[tokio::test]
    async fn the_metadata_log_name_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let b = broker(dir.path());
        let resp = create_topics(
            &b,
            &ctx(),
            CreateTopicsRequest::default()
                .with_topics(vec![topic("__cluster_metadata", 1), topic("ok", 1)]),
        )
        .await;
        assert_eq!(
            codes(&resp),
            [
                (
                    "__cluster_metadata".to_string(),
                    ErrorCode::INVALID_REQUEST.code(),
                    Some("Creation of internal topic __cluster_metadata is prohibited.".into())
                ),
                ("ok".to_string(), 0, None),
            ]
        );
        assert!(b.replicas.topic("__cluster_metadata").is_none());
    }

    /// With an authorizer: CREATE on the topic or on the cluster. A refused topic is
    /// TOPIC_AUTHORIZATION_FAILED and does not count against the request's partition limit;
    /// a created topic's configs are answered only with DESCRIBE_CONFIGS on it.
    #[tokio::test]
    async fn topics_need_create_and_configs_need_describe_configs() {
        use crate::authorizer::test_support::{allow_cluster, allow_topic, ctx_of};
        use gregor_protocol::messages::create_topics_request::CreatableTopicConfig;

        let dir = tempfile::tempdir().expect("tempdir");
        let b = crate::handlers::admin_common::test_cluster::secured(dir.path());
        let alice = ctx_of("alice", KEY, 7);
        let denied = ErrorCode::TOPIC_AUTHORIZATION_FAILED.code();
        let with_config = |name: &str| {
            topic(name, 1).with_configs(vec![CreatableTopicConfig::default()
                .with_name(StrBytes::from_static_str("retention.ms"))
                .with_value(Some(StrBytes::from_static_str("60000")))])
        };
        let req = |topics| CreateTopicsRequest::default().with_topics(topics);
        let resp = create_topics(&b, &alice, req(vec![topic("a", 1), topic("b", 1)])).await;
        let refused = Some("Authorization failed.".to_string());
        assert_eq!(
            codes(&resp),
            vec![
                ("a".into(), denied, refused.clone()),
                ("b".into(), denied, refused.clone()),
            ]
        );
        assert!(b.replicas.topic("a").is_none());

        allow_topic(&b, "User:alice", AclOperation::Create, "a");
        let resp = create_topics(
            &b,
            &alice,
            req(vec![with_config("a"), topic("huge", 50_000)]),
        )
        .await;
        assert_eq!(
            codes(&resp),
            vec![("a".into(), 0, None), ("huge".into(), denied, refused)]
        );
        let a = &resp.topics[0];
        assert_eq!(a.topic_config_error_code, denied);
        assert_eq!(a.configs.as_ref().map(Vec::len), Some(0));
        assert_eq!(a.num_partitions, -1);
        assert!(b.replicas.topic("a").is_some());

        allow_cluster(&b, "User:alice", AclOperation::Create);
        allow_topic(&b, "User:alice", AclOperation::DescribeConfigs, "c");
        let resp = create_topics(&b, &alice, req(vec![with_config("c")])).await;
        let c = &resp.topics[0];
        assert_eq!((c.error_code, c.topic_config_error_code), (0, 0));
        assert_eq!(c.configs.as_ref().map(Vec::len), Some(1));
        assert_eq!(c.num_partitions, 1);
    }
}
