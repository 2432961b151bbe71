//! Metadata (key 3): brokers, controller, and topics with their partitions, leaders and ISR.
//! Unknown topics are auto-created when `auto.create.topics.enable` and the client allow it,
//! within CreateTopics' limits (a `num.partitions` over them is refused and logged). v13's
//! top-level error code is always NONE (Kafka uses it to ask a client to re-bootstrap). The
//! authorized operations, when asked, are everything, as Kafka without an authorizer answers.

use std::collections::HashMap;
use std::ops::RangeInclusive;
use std::sync::Arc;

use gregor_controller::protocol as proto;
use gregor_controller::{ControllerRequest, ControllerResponse};
use gregor_metadata::{MetadataImage, TopicImage};
use gregor_protocol::error::ErrorCode;
use gregor_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use gregor_protocol::messages::ApiKey;
use gregor_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse};
use tracing::{info, warn};

use super::create_topics::{topic_records, MAX_PARTITIONS_PER_REQUEST, MAX_RECORDS_PER_USER_OP};
use super::{
    str_bytes, topic_name, CLUSTER_AUTHORIZED_OPERATIONS, OPS_NOT_REQUESTED,
    TOPIC_AUTHORIZED_OPERATIONS,
};
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
    let mut refused: HashMap<String, ErrorCode> = HashMap::new();
    let mut create: Vec<String> = Vec::new();
    for w in &wanted {
        let Wanted::Name(name) = w else { continue };
        if image.topics().topic_by_name(name).is_some() || create.contains(name) {
            continue;
        }
        if validate_topic_name(name).is_err() {
            refused.insert(name.clone(), ErrorCode::INVALID_TOPIC_EXCEPTION);
        } else if !(allow_auto_create && broker.config.auto_create_topics) {
            refused.insert(name.clone(), ErrorCode::UNKNOWN_TOPIC_OR_PARTITION);
        } else {
            let partitions = broker.config.num_partitions;
            if i64::from(partitions) > MAX_PARTITIONS_PER_REQUEST
                || topic_records(partitions, 0) > MAX_RECORDS_PER_USER_OP
            {
                // Kafka's controller refuses this creation with POLICY_VIOLATION; the
                // Metadata answer for a topic whose auto-creation did not happen is
                // LEADER_NOT_AVAILABLE, and the refusal is only logged.
                warn!(topic = %name, partitions, "not auto-creating topic: num.partitions is over the per-request limit");
                refused.insert(name.clone(), ErrorCode::LEADER_NOT_AVAILABLE);
            } else {
                create.push(name.clone());
            }
        }
    }
    if create.is_empty() {
        let resp = respond(broker, &ctx, all, &wanted, &refused, ops);
        return Ok(Reply::Ready(encode(&ctx, &resp)?));
    }
    let broker = Arc::clone(broker);
    Ok(Reply::Pending(Box::pin(async move {
        let led_elsewhere = auto_create(&broker, create, &mut refused).await;
        for name in led_elsewhere {
            refused.insert(name, ErrorCode::LEADER_NOT_AVAILABLE);
        }
        let resp = respond(&broker, &ctx, all, &wanted, &refused, ops);
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
    refused: &mut HashMap<String, ErrorCode>,
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
                    refused.insert(t.name, ErrorCode::LEADER_NOT_AVAILABLE);
                }
            }
        }
        other => {
            warn!(answer = ?other, "cannot auto-create topics: the controller did not create them");
            for n in names {
                refused.insert(n, ErrorCode::LEADER_NOT_AVAILABLE);
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

/// The response, from the image applied now.
fn respond(
    broker: &Broker,
    ctx: &RequestContext,
    all: bool,
    wanted: &[Wanted],
    refused: &HashMap<String, ErrorCode>,
    ops: AskedOps,
) -> MetadataResponse {
    let image = broker.replicas.image();
    let topics: Vec<MetadataResponseTopic> = if all {
        image
            .topics()
            .topics()
            .map(|t| describe_topic(&image, t))
            .collect()
    } else {
        wanted
            .iter()
            .map(|w| match w {
                Wanted::Id(id) => match image.topics().topic(*id) {
                    Some(t) => describe_topic(&image, t),
                    None => topic_error(None, ErrorCode::UNKNOWN_TOPIC_ID).with_topic_id(*id),
                },
                Wanted::Name(name) => match image
                    .topics()
                    .topic_by_name(name)
                    .filter(|_| !refused.contains_key(name))
                {
                    Some(t) => describe_topic(&image, t),
                    None => topic_error(
                        Some(name),
                        refused
                            .get(name)
                            .copied()
                            .unwrap_or(ErrorCode::LEADER_NOT_AVAILABLE),
                    ),
                },
            })
            .collect()
    };
    // Authorized operations (v8+ for topics, v8–v10 for the cluster), when asked: everything,
    // as Kafka without an authorizer answers.
    let topics = if ctx.api_version >= 8 && ops.topic {
        topics
            .into_iter()
            .map(|t| t.with_topic_authorized_operations(TOPIC_AUTHORIZED_OPERATIONS))
            .collect()
    } else {
        topics
    };
    let cluster_ops = if (8..=10).contains(&ctx.api_version) && ops.cluster {
        CLUSTER_AUTHORIZED_OPERATIONS
    } else {
        OPS_NOT_REQUESTED
    };
    MetadataResponse::default()
        .with_brokers(brokers(broker, &image, ctx.listener.as_str()))
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
