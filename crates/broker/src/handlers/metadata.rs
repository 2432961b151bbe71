//! Metadata (key 3): brokers, controller, and topics with their partitions, leaders and ISR.
//! Unknown topics are auto-created when `auto.create.topics.enable` and the client allow it,
//! within CreateTopics' limits (a `num.partitions` over them is refused and logged). A missing
//! coordinator topic (`__consumer_offsets`, `__transaction_state`, `__share_group_state`) is
//! never created as a plain topic of `num.partitions`: its coordinator creates it with its own
//! partitions and configs (as Kafka's `AutoTopicCreationManager.creatableTopic` does), and the
//! name is answered UNKNOWN_TOPIC_OR_PARTITION meanwhile, as Kafka answers it. v13's
//! top-level error code is always NONE (Kafka uses it to ask a client to re-bootstrap).
//!
//! Authorization (Kafka's `handleTopicMetadataRequest`): DESCRIBE on each topic. A topic asked
//! for by name without it is answered TOPIC_AUTHORIZATION_FAILED with a zero id, whether it
//! exists or not (its existence is not disclosed); one asked for by id, with the id and a null
//! name; an all-topics request simply leaves it out (and logs no denial). Auto-creating a
//! missing topic needs CREATE on the cluster or, failing that, on the topic, else the topic
//! is answered TOPIC_AUTHORIZATION_FAILED. The authorized operations, when asked, are the
//! principal's (every operation without an authorizer): a topic's for each topic described,
//! the cluster's (v8–v10) only with DESCRIBE on the cluster, else none (0).

use std::collections::{HashMap, HashSet};
use std::ops::RangeInclusive;
use std::sync::Arc;

use gregor_controller::protocol as proto;
use gregor_controller::{ControllerRequest, ControllerResponse};
use gregor_metadata::{AclOperation, MetadataImage, ResourceType, TopicImage, CLUSTER_NAME};
use gregor_protocol::error::ErrorCode;
use gregor_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use gregor_protocol::messages::ApiKey;
use gregor_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse};
use tracing::{info, warn};

use super::create_topics::{topic_records, MAX_PARTITIONS_PER_REQUEST, MAX_RECORDS_PER_USER_OP};
use super::{str_bytes, topic_name, OPS_NOT_REQUESTED};
use crate::authorizer;
use crate::broker::Broker;
use crate::request::{encode, ProtocolError, Reply, RequestContext};
use crate::topic_config::validate_topic_name;

/// The API this module serves.
pub const KEY: ApiKey = ApiKey::Metadata;
/// The versions served (and advertised in ApiVersions).
pub const VERSIONS: RangeInclusive<i16> = 0..=13;

/// The listener name brokers register their client endpoint under.
pub const CLIENT_LISTENER: &str = "PLAINTEXT";

/// Describes one topic as the metadata image has it: every partition's leader, epochs,
/// replicas and ISR (replicas on fenced or unknown brokers listed as offline).
pub fn describe_topic(image: &MetadataImage, t: &TopicImage) -> MetadataResponseTopic {
    let partitions = t
        .partitions()
        .map(|(number, p)| {
            let offline: Vec<BrokerId> = p
                .replicas
                .iter()
                .filter(|&&b| !image.cluster().is_unfenced(b))
                .map(|&b| BrokerId(b))
                .collect();
            let code = if p.has_leader() {
                0
            } else {
                ErrorCode::LEADER_NOT_AVAILABLE.code()
            };
            MetadataResponsePartition::default()
                .with_error_code(code)
                .with_partition_index(number)
                .with_leader_id(BrokerId(p.leader))
                .with_leader_epoch(p.leader_epoch)
                .with_replica_nodes(p.replicas.iter().map(|&b| BrokerId(b)).collect())
                .with_isr_nodes(p.isr.iter().map(|&b| BrokerId(b)).collect())
                .with_offline_replicas(offline)
        })
        .collect();
    MetadataResponseTopic::default()
        .with_error_code(0)
        .with_name(Some(topic_name(&t.name)))
        .with_topic_id(t.id)
        .with_is_internal(t.name.starts_with("__"))
        .with_partitions(partitions)
        .with_topic_authorized_operations(OPS_NOT_REQUESTED)
}

fn topic_error(name: Option<&str>, code: ErrorCode) -> MetadataResponseTopic {
    MetadataResponseTopic::default()
        .with_error_code(code.code())
        .with_name(name.map(topic_name))
        .with_topic_authorized_operations(OPS_NOT_REQUESTED)
}

/// Why a topic asked for by name is answered with an error instead of its description.
#[derive(Debug, Clone, Copy)]
struct Refusal {
    code: ErrorCode,
    /// Kafka's `isInternal` of the name: set only when CREATE was refused (a refused
    /// DESCRIBE says nothing about the topic).
    is_internal: bool,
}

impl From<ErrorCode> for Refusal {
    fn from(code: ErrorCode) -> Self {
        Refusal {
            code,
            is_internal: false,
        }
    }
}

/// Kafka's internal topics (`Topic.isInternal`).
fn is_internal(name: &str) -> bool {
    matches!(name, "__consumer_offsets" | "__transaction_state")
}

/// Whether `name` is a coordinator's topic; if so, has its coordinator create it (in the
/// background) with its own partitions, replication and configs. `__consumer_offsets` is
/// created at start-up, retried until enough brokers are live; `__transaction_state` and
/// `__share_group_state` on first need. Created here with `num.partitions` instead, a
/// coordinator topic would keep the wrong number of partitions for good, and the keys hashed
/// to the missing ones would find no coordinator.
fn ensure_coordinator_topic(broker: &Arc<Broker>, name: &str) -> bool {
    match name {
        crate::group_coordinator::OFFSETS_TOPIC => true,
        crate::txn_coordinator::TRANSACTION_STATE_TOPIC => {
            broker.txn.ensure_topic();
            true
        }
        crate::share_coordinator::SHARE_GROUP_STATE_TOPIC => {
            broker.share_coordinator.ensure_topic();
            true
        }
        _ => false,
    }
}

/// What to answer for one requested name.
enum Wanted {
    /// Described from the image (or an error), once any creation is done.
    Name(String),
    /// By topic id.
    Id(uuid::Uuid),
}

/// Handles a Metadata request. Unknown topics that may be auto-created are created through
/// the controller first; the reply is then a future.
pub fn handle(
    broker: &Arc<Broker>,
    ctx: RequestContext,
    req: MetadataRequest,
) -> Result<Reply, ProtocolError> {
    // v0: an empty list means all topics; v1+: null means all, empty means none.
    let all = match &req.topics {
        None => true,
        Some(t) => t.is_empty() && ctx.api_version == 0,
    };
    let allow_auto_create = ctx.api_version < 4 || req.allow_auto_topic_creation;
    let ops = AskedOps {
        topic: req.include_topic_authorized_operations,
        cluster: req.include_cluster_authorized_operations,
    };
    let wanted: Vec<Wanted> = if all {
        Vec::new()
    } else {
        req.topics
            .unwrap_or_default()
            .into_iter()
            .map(|rt| match rt.name {
                Some(n) => Wanted::Name(n.0.to_string()),
                None => Wanted::Id(rt.topic_id),
            })
            .collect()
    };
    let image = broker.replicas.image();
    let mut refused: HashMap<String, Refusal> = HashMap::new();
    // A name asked for twice is checked (and a denial logged) once, as Kafka's set of names.
    let mut checked: HashSet<&str> = HashSet::new();
    // CREATE on the cluster, asked (quietly) at the first missing topic only.
    let mut cluster_create: Option<bool> = None;
    let may_auto_create = allow_auto_create && broker.config.auto_create_topics;
    let mut create: Vec<String> = Vec::new();
    for w in &wanted {
        let Wanted::Name(name) = w else { continue };
        if !checked.insert(name) {
            continue;
        }
        if !authorizer::authorize(
            broker,
            &ctx,
            AclOperation::Describe,
            ResourceType::Topic,
            name,
        ) {
            refused.insert(name.clone(), ErrorCode::TOPIC_AUTHORIZATION_FAILED.into());
            continue;
        }
        if image.topics().topic_by_name(name).is_some() {
            continue;
        }
        if may_auto_create {
            let may_create = *cluster_create.get_or_insert_with(|| {
                authorizer::authorize_quietly(
                    broker,
                    &ctx,
                    AclOperation::Create,
                    ResourceType::Cluster,
                    CLUSTER_NAME,
                )
            }) || authorizer::authorize(
                broker,
                &ctx,
                AclOperation::Create,
                ResourceType::Topic,
                name,
            );
            if !may_create {
                refused.insert(
                    name.clone(),
                    Refusal {
                        code: ErrorCode::TOPIC_AUTHORIZATION_FAILED,
                        is_internal: is_internal(name),
                    },
                );
                continue;
            }
        }
        if validate_topic_name(name).is_err() {
            refused.insert(name.clone(), ErrorCode::INVALID_TOPIC_EXCEPTION.into());
        } else if !may_auto_create {
            refused.insert(name.clone(), ErrorCode::UNKNOWN_TOPIC_OR_PARTITION.into());
        } else if ensure_coordinator_topic(broker, name) {
            refused.insert(
                name.clone(),
                Refusal {
                    code: ErrorCode::UNKNOWN_TOPIC_OR_PARTITION,
                    is_internal: is_internal(name),
                },
            );
        } else {
            let partitions = broker.config.num_partitions;
            if i64::from(partitions) > MAX_PARTITIONS_PER_REQUEST
                || topic_records(partitions, 0) > MAX_RECORDS_PER_USER_OP
            {
                // Kafka's controller refuses this creation with POLICY_VIOLATION; the
                // Metadata answer for a topic whose auto-creation did not happen is
                // LEADER_NOT_AVAILABLE, and the refusal is only logged.
                warn!(topic = %name, partitions, "not auto-creating topic: num.partitions is over the per-request limit");
                refused.insert(name.clone(), ErrorCode::LEADER_NOT_AVAILABLE.into());
            } else {
                create.push(name.clone());
            }
        }
    }
    if create.is_empty() {
        // The image the names were checked against: a topic deleted since is still answered
        // as it was then, not as missing (LEADER_NOT_AVAILABLE, "being created").
        let resp = respond(broker, &image, &ctx, all, &wanted, &refused, ops);
        return Ok(Reply::Ready(encode(&ctx, &resp)?));
    }
    let broker = Arc::clone(broker);
    Ok(Reply::Pending(Box::pin(async move {
        let led_elsewhere = auto_create(&broker, create, &mut refused).await;
        for name in led_elsewhere {
            refused.insert(name, ErrorCode::LEADER_NOT_AVAILABLE.into());
        }
        let image = broker.replicas.image();
        let resp = respond(&broker, &image, &ctx, all, &wanted, &refused, ops);
        encode(&ctx, &resp)
    })))
}

/// Creates topics with the broker's defaults (Kafka's `AutoTopicCreationManager`). A topic
/// that could not be created is answered LEADER_NOT_AVAILABLE, as Kafka does (the client
/// retries), and the reason is logged. Returns the created topics with a partition led by
/// another node: this node has applied their creation, their leaders may not have yet (a
/// client's produce sent to one at once would get UNKNOWN_TOPIC_OR_PARTITION, which
/// librdkafka takes as final), so they too are answered LEADER_NOT_AVAILABLE this time, as
/// Kafka answers every auto-creation; the client asks again after its backoff. A topic led
/// here alone (every topic of a single node) is answered with its partitions at once.
async fn auto_create(
    broker: &Broker,
    names: Vec<String>,
    refused: &mut HashMap<String, Refusal>,
) -> Vec<String> {
    let mut led_elsewhere = Vec::new();
    let request = proto::CreateTopicsRequest {
        topics: names
            .iter()
            .map(|n| proto::CreatableTopic {
                name: n.clone(),
                num_partitions: broker.config.num_partitions,
                replication_factor: broker.config.default_replication_factor,
                assignments: Vec::new(),
                configs: Vec::new(),
            })
            .collect(),
        validate_only: false,
    };
    match broker
        .controller
        .call(ControllerRequest::CreateTopics(request))
        .await
    {
        Ok(ControllerResponse::CreateTopics(resp)) => {
            let ids: Vec<uuid::Uuid> = resp
                .topics
                .iter()
                .filter(|t| t.error_code == 0)
                .map(|t| t.topic_id)
                .collect();
            broker.wait_for_topics(&ids, true, 0).await;
            let image = broker.replicas.image();
            for t in resp.topics {
                if t.error_code == 0 {
                    info!(topic = %t.name, "auto-created topic");
                    let remote = image.topics().topic(t.topic_id).is_some_and(|topic| {
                        topic
                            .partitions()
                            .any(|(_, p)| p.leader != broker.config.node_id)
                    });
                    if remote {
                        led_elsewhere.push(t.name);
                    }
                } else if t.error_code != ErrorCode::TOPIC_ALREADY_EXISTS.code() {
                    warn!(topic = %t.name, code = t.error_code, message = ?t.error_message, "cannot auto-create topic");
                    refused.insert(t.name, ErrorCode::LEADER_NOT_AVAILABLE.into());
                }
            }
        }
        other => {
            warn!(answer = ?other, "cannot auto-create topics: the controller did not create them");
            for n in names {
                refused.insert(n, ErrorCode::LEADER_NOT_AVAILABLE.into());
            }
        }
    }
    led_elsewhere
}

/// Which authorized-operations fields the request asks for.
#[derive(Debug, Clone, Copy)]
struct AskedOps {
    topic: bool,
    cluster: bool,
}

/// The response, from the image applied now. Topics named in the request were authorized
/// (their refusals are in `refused`); those of an all-topics request and those asked for by id
/// are authorized here.
fn respond(
    broker: &Broker,
    image: &MetadataImage,
    ctx: &RequestContext,
    all: bool,
    wanted: &[Wanted],
    refused: &HashMap<String, Refusal>,
    ops: AskedOps,
) -> MetadataResponse {
    let describe = |name: &str, log_if_denied: bool| {
        if log_if_denied {
            authorizer::authorize(
                broker,
                ctx,
                AclOperation::Describe,
                ResourceType::Topic,
                name,
            )
        } else {
            authorizer::authorize_quietly(
                broker,
                ctx,
                AclOperation::Describe,
                ResourceType::Topic,
                name,
            )
        }
    };
    // Each topic with whether it is described (authorized operations go only to those).
    let topics: Vec<(MetadataResponseTopic, bool)> = if all {
        // Kafka does not log the denials of an all-topics request.
        image
            .topics()
            .topics()
            .filter(|t| describe(&t.name, false))
            .map(|t| (describe_topic(image, t), true))
            .collect()
    } else {
        wanted
            .iter()
            .map(|w| match w {
                Wanted::Id(id) => match image.topics().topic(*id) {
                    // Topic ids are not secret: the id is answered, the name is not.
                    Some(t) if !describe(&t.name, true) => (
                        topic_error(None, ErrorCode::TOPIC_AUTHORIZATION_FAILED).with_topic_id(*id),
                        false,
                    ),
                    Some(t) => (describe_topic(image, t), true),
                    None => (
                        topic_error(None, ErrorCode::UNKNOWN_TOPIC_ID).with_topic_id(*id),
                        false,
                    ),
                },
                Wanted::Name(name) => match (image.topics().topic_by_name(name), refused.get(name))
                {
                    (Some(t), None) => (describe_topic(image, t), true),
                    (_, Some(r)) => (
                        topic_error(Some(name), r.code).with_is_internal(r.is_internal),
                        r.code != ErrorCode::TOPIC_AUTHORIZATION_FAILED,
                    ),
                    (None, None) => (
                        topic_error(Some(name), ErrorCode::LEADER_NOT_AVAILABLE),
                        true,
                    ),
                },
            })
            .collect()
    };
    // Authorized operations (v8+ for topics, v8–v10 for the cluster), when asked.
    let topic_ops = ctx.api_version >= 8 && ops.topic;
    let topics = topics
        .into_iter()
        .map(|(t, described)| match &t.name {
            Some(name) if topic_ops && described => {
                let bits =
                    authorizer::authorized_operations(broker, ctx, ResourceType::Topic, name);
                t.with_topic_authorized_operations(bits)
            }
            _ => t,
        })
        .collect();
    let cluster_ops = if (8..=10).contains(&ctx.api_version) && ops.cluster {
        if authorizer::authorize_cluster(broker, ctx, AclOperation::Describe) {
            authorizer::authorized_operations(broker, ctx, ResourceType::Cluster, CLUSTER_NAME)
        } else {
            0
        }
    } else {
        OPS_NOT_REQUESTED
    };
    MetadataResponse::default()
        .with_brokers(brokers(broker, image, ctx.listener.as_str()))
        .with_cluster_id(Some(str_bytes(broker.cluster_id.clone())))
        .with_controller_id(BrokerId(broker.controller_id().unwrap_or(-1)))
        .with_topics(topics)
        .with_cluster_authorized_operations(cluster_ops)
}

/// The live brokers' endpoints on `listener` (the one the request came in on). Before this
/// broker's own registration is in the image (it is starting) it lists itself, so a client is
/// never told of an empty cluster.
pub fn brokers(
    broker: &Broker,
    image: &MetadataImage,
    listener: &str,
) -> Vec<MetadataResponseBroker> {
    let mut out: Vec<MetadataResponseBroker> = image
        .cluster()
        .live_endpoints(listener)
        .map(|(b, e)| {
            MetadataResponseBroker::default()
                .with_node_id(BrokerId(b.id))
                .with_host(str_bytes(e.host.clone()))
                .with_port(i32::from(e.port))
                .with_rack(b.rack.clone().map(str_bytes))
        })
        .collect();
    if !out.iter().any(|b| b.node_id.0 == broker.config.node_id) {
        let (host, port) = broker.advertised_on(listener);
        out.push(
            MetadataResponseBroker::default()
                .with_node_id(BrokerId(broker.config.node_id))
                .with_host(str_bytes(host.clone()))
                .with_port(i32::from(*port))
                .with_rack(broker.config.cluster.rack.clone().map(str_bytes)),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use gregor_metadata::acl::all_operations;
    use gregor_protocol::messages::metadata_request::MetadataRequestTopic;

    use super::*;
    use crate::authorizer::test_support::{allow_cluster, allow_topic, ctx_of};
    use crate::handlers::group_common::test_support::auth_group_broker;
    use crate::request::decode_reply;

    fn named(names: &[&str]) -> MetadataRequest {
        MetadataRequest::default().with_topics(Some(
            names
                .iter()
                .map(|n| MetadataRequestTopic::default().with_name(Some(topic_name(n))))
                .collect(),
        ))
    }

    async fn metadata(
        b: &Arc<Broker>,
        user: &str,
        version: i16,
        req: MetadataRequest,
    ) -> MetadataResponse {
        let reply = handle(b, ctx_of(user, KEY, version), req).expect("reply");
        decode_reply(reply, version).await
    }

    /// (name, error code, topic id is zero) of each topic answered.
    fn answered(r: &MetadataResponse) -> Vec<(Option<String>, i16, bool)> {
        r.topics
            .iter()
            .map(|t| {
                let name = t.name.as_ref().map(|n| n.0.to_string());
                (name, t.error_code, t.topic_id.is_nil())
            })
            .collect()
    }

    /// DESCRIBE per topic: a topic named without it is TOPIC_AUTHORIZATION_FAILED with a zero
    /// id, whether it exists or not (and not auto-created); an all-topics request leaves it out.
    #[tokio::test]
    async fn topics_without_describe_are_refused_by_name_and_left_out_of_all() {
        let dir = tempfile::tempdir().expect("tempdir");
        let b = auth_group_broker(dir.path(), 1);
        b.replicas
            .create_topic("u", 1, 1, Default::default())
            .expect("create");
        allow_topic(&b, "User:alice", AclOperation::Describe, "t");
        let refused = ErrorCode::TOPIC_AUTHORIZATION_FAILED.code();
        let r = metadata(&b, "alice", 12, named(&["t", "u", "missing"])).await;
        assert_eq!(
            answered(&r),
            vec![
                (Some("t".into()), 0, false),
                (Some("u".into()), refused, true),
                (Some("missing".into()), refused, true),
            ]
        );
        assert!(b.replicas.topic("missing").is_none(), "not auto-created");
        let all = metadata(
            &b,
            "alice",
            12,
            MetadataRequest::default().with_topics(None),
        )
        .await;
        assert_eq!(answered(&all), vec![(Some("t".into()), 0, false)]);
        let all = metadata(
            &b,
            "admin",
            12,
            MetadataRequest::default().with_topics(None),
        )
        .await;
        assert!(all.topics.len() >= 3, "a super user sees every topic");
    }

    /// By id (v12): a topic without DESCRIBE answers its id with a null name.
    #[tokio::test]
    async fn a_topic_asked_by_id_without_describe_keeps_its_id() {
        let dir = tempfile::tempdir().expect("tempdir");
        let b = auth_group_broker(dir.path(), 1);
        let id = b.replicas.topic("t").expect("t").id;
        let req =
            MetadataRequest::default().with_topics(Some(vec![MetadataRequestTopic::default()
                .with_topic_id(id)
                .with_name(None)]));
        let r = metadata(&b, "alice", 12, req.clone()).await;
        assert_eq!(
            r.topics[0].error_code,
            ErrorCode::TOPIC_AUTHORIZATION_FAILED.code()
        );
        assert_eq!(r.topics[0].name, None);
        assert_eq!(r.topics[0].topic_id, id);
        allow_topic(&b, "User:alice", AclOperation::Describe, "t");
        let r = metadata(&b, "alice", 12, req).await;
        assert_eq!(r.topics[0].error_code, 0);
        assert_eq!(r.topics[0].name.as_ref().map(|n| n.0.as_str()), Some("t"));
    }

    /// Auto-creation needs CREATE on the cluster or on the topic, besides DESCRIBE.
    #[tokio::test]
    async fn auto_creation_needs_create() {
        let dir = tempfile::tempdir().expect("tempdir");
        let b = auth_group_broker(dir.path(), 1);
        for t in ["new1", "new2"] {
            allow_topic(&b, "User:alice", AclOperation::Describe, t);
        }
        let req = |name: &str| named(&[name]).with_allow_auto_topic_creation(true);
        let r = metadata(&b, "alice", 12, req("new1")).await;
        assert_eq!(
            r.topics[0].error_code,
            ErrorCode::TOPIC_AUTHORIZATION_FAILED.code()
        );
        assert!(b.replicas.topic("new1").is_none());
        allow_topic(&b, "User:alice", AclOperation::Create, "new1");
        metadata(&b, "alice", 12, req("new1")).await;
        assert!(
            b.replicas.topic("new1").is_some(),
            "created with CREATE on it"
        );
        allow_cluster(&b, "User:alice", AclOperation::Create);
        metadata(&b, "alice", 12, req("new2")).await;
        assert!(
            b.replicas.topic("new2").is_some(),
            "created with CREATE on the cluster"
        );
    }

    /// A Metadata request naming a missing `__transaction_state` with auto-creation allowed
    /// (sarama sends one while its FindCoordinator is answered COORDINATOR_NOT_AVAILABLE) does
    /// not create it with `num.partitions`: it is answered UNKNOWN_TOPIC_OR_PARTITION, internal
    /// (as Kafka answers it), and the transaction coordinator creates it with
    /// `transaction.state.log.num.partitions`.
    #[tokio::test]
    async fn a_coordinator_topic_is_not_auto_created_as_a_plain_topic() {
        let dir = tempfile::tempdir().expect("tempdir");
        let b = crate::authorizer::test_support::secured_broker_with(dir.path(), |c| {
            c.txn.state_log_num_partitions = 5;
        });
        let name = crate::txn_coordinator::TRANSACTION_STATE_TOPIC;
        let req = named(&[name]).with_allow_auto_topic_creation(true);
        let r = metadata(&b, "admin", 12, req).await;
        assert_eq!(
            r.topics[0].error_code,
            ErrorCode::UNKNOWN_TOPIC_OR_PARTITION.code()
        );
        assert!(r.topics[0].is_internal);
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let partitions = loop {
            let image = b.replicas.image();
            if let Some(t) = image.topics().topic_by_name(name) {
                break t.partitions().count();
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{name} was not created"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        };
        assert_eq!(partitions, 5, "{name} has the coordinator's partitions");
    }

    /// The authorized operations asked for are the principal's: a topic's for each topic
    /// described, the cluster's only with DESCRIBE on it (else 0).
    #[tokio::test]
    async fn authorized_operations_are_the_principals() {
        let dir = tempfile::tempdir().expect("tempdir");
        let b = auth_group_broker(dir.path(), 1);
        allow_topic(&b, "User:alice", AclOperation::Read, "t");
        let req = named(&["t", "u"])
            .with_include_topic_authorized_operations(true)
            .with_include_cluster_authorized_operations(true);
        let r = metadata(&b, "alice", 10, req.clone()).await;
        let read_describe = (1 << AclOperation::Read.code()) | (1 << AclOperation::Describe.code());
        assert_eq!(r.topics[0].topic_authorized_operations, read_describe);
        assert_eq!(r.topics[1].topic_authorized_operations, OPS_NOT_REQUESTED);
        assert_eq!(r.cluster_authorized_operations, 0);
        let r = metadata(&b, "admin", 10, req).await;
        assert_eq!(
            r.topics[0].topic_authorized_operations,
            all_operations(ResourceType::Topic)
        );
        assert_eq!(
            r.cluster_authorized_operations,
            all_operations(ResourceType::Cluster)
        );
    }
}
