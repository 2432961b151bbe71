//! StreamsGroupHeartbeat (key 88, KIP-1071): a member of a Kafka Streams application joins
//! with its topology, heartbeats, reports the tasks it holds and receives its active, standby
//! and warm-up tasks. The streams group core decides (`GroupRuntime::streams_group_heartbeat`);
//! the answer waits until the records it wrote to `__consumer_offsets` are on the ISR.
//!
//! As Kafka 4.4's `handleStreamsGroupHeartbeat`:
//! - with `streams.version` 0 or `streams` missing from `group.coordinator.rebalance.protocols`
//!   the answer is UNSUPPORTED_VERSION;
//! - READ on the group, else GROUP_AUTHORIZATION_FAILED;
//! - a topology naming Kafka's internal topics or invalid topic names is
//!   STREAMS_INVALID_TOPOLOGY; DESCRIBE on every topic it names, else
//!   TOPIC_AUTHORIZATION_FAILED (no message);
//! - the internal topics the coordinator finds missing (repartition and changelog topics) are
//!   created in the background on behalf of the client, with the partitions, replication
//!   factor and configs the client sent, if it may CREATE them (on the cluster or on each
//!   topic); otherwise "Unauthorized to CREATE on topics ..." is added to the
//!   MISSING_INTERNAL_TOPICS status and nothing is created.

use std::collections::BTreeMap;
use std::ops::RangeInclusive;
use std::sync::Arc;

use gregor_controller::protocol as proto;
use gregor_controller::{ControllerRequest, ControllerResponse};
use gregor_group::streams_group::records::{
    CopartitionGroup, Endpoint, Subtopology, TopicInfo, TopologyValue,
};
use gregor_group::streams_group::topology::{check_topic_names, named_topics, TopologyCheck};
use gregor_group::streams_group::{
    status, StreamsGroupHeartbeatRequest as CoreRequest, TaskMap, TaskOffset, TopicToCreate,
};
use gregor_metadata::{AclOperation, ResourceType};
use gregor_protocol::error::ErrorCode;
use gregor_protocol::messages::streams_group_heartbeat_request as wire_req;
use gregor_protocol::messages::streams_group_heartbeat_response::{
    Endpoint as WireEndpoint, EndpointToPartitions, Status, TaskIds, TopicPartition,
};
use gregor_protocol::messages::ApiKey;
use gregor_protocol::messages::{StreamsGroupHeartbeatRequest, StreamsGroupHeartbeatResponse};
use tracing::{info, warn};

use super::group_common::authorize_group;
use super::{str_bytes, topic_name};
use crate::authorizer;
use crate::broker::Broker;
use crate::request::{encode, ready, Reply, RequestContext};

/// The API this module serves.
pub const KEY: ApiKey = ApiKey::StreamsGroupHeartbeat;
/// The versions served (and advertised in ApiVersions).
pub const VERSIONS: RangeInclusive<i16> = 0..=1;

fn task_map(tasks: &[wire_req::TaskIds]) -> TaskMap {
    let mut map = TaskMap::new();
    for t in tasks {
        map.entry(t.subtopology_id.to_string())
            .or_default()
            .extend(t.partitions.iter().copied());
    }
    map
}

fn topic_info(t: &wire_req::TopicInfo) -> TopicInfo {
    TopicInfo {
        name: t.name.0.to_string(),
        partitions: t.partitions,
        replication_factor: t.replication_factor,
        topic_configs: t
            .topic_configs
            .iter()
            .map(|kv| (kv.key.to_string(), kv.value.to_string()))
            .collect(),
    }
}

fn topology(t: &wire_req::Topology) -> TopologyValue {
    TopologyValue {
        epoch: t.epoch,
        subtopologies: t
            .subtopologies
            .iter()
            .map(|s| Subtopology {
                subtopology_id: s.subtopology_id.to_string(),
                source_topics: s.source_topics.iter().map(|n| n.0.to_string()).collect(),
                source_topic_regex: s.source_topic_regex.iter().map(|r| r.to_string()).collect(),
                state_changelog_topics: s.state_changelog_topics.iter().map(topic_info).collect(),
                repartition_sink_topics: s
                    .repartition_sink_topics
                    .iter()
                    .map(|n| n.0.to_string())
                    .collect(),
                repartition_source_topics: s
                    .repartition_source_topics
                    .iter()
                    .map(topic_info)
                    .collect(),
                copartition_groups: s
                    .copartition_groups
                    .iter()
                    .map(|c| CopartitionGroup {
                        source_topics: c.source_topics.clone(),
                        source_topic_regex: c.source_topic_regex.clone(),
                        repartition_source_topics: c.repartition_source_topics.clone(),
                    })
                    .collect(),
            })
            .collect(),
    }
}

fn task_offsets(offsets: &[wire_req::TaskOffset]) -> Vec<TaskOffset> {
    offsets
        .iter()
        .map(|o| TaskOffset {
            subtopology_id: o.subtopology_id.to_string(),
            partition: o.partition,
            offset: o.offset,
        })
        .collect()
}

/// The core's request: the wire fields, the header's client id and the peer's address.
fn core_request(ctx: &RequestContext, req: &StreamsGroupHeartbeatRequest) -> CoreRequest {
    CoreRequest {
        api_version: ctx.api_version,
        group_id: req.group_id.0.to_string(),
        member_id: req.member_id.to_string(),
        member_epoch: req.member_epoch,
        endpoint_information_epoch: req.endpoint_information_epoch,
        instance_id: req.instance_id.as_ref().map(|s| s.to_string()),
        rack_id: req.rack_id.as_ref().map(|s| s.to_string()),
        rebalance_timeout_ms: req.rebalance_timeout_ms,
        topology: req.topology.as_ref().map(topology),
        active_tasks: req.active_tasks.as_deref().map(task_map),
        standby_tasks: req.standby_tasks.as_deref().map(task_map),
        warmup_tasks: req.warmup_tasks.as_deref().map(task_map),
        process_id: req.process_id.as_ref().map(|s| s.to_string()),
        user_endpoint: req.user_endpoint.as_ref().map(|e| Endpoint {
            host: e.host.to_string(),
            port: e.port,
        }),
        client_tags: req.client_tags.as_ref().map(|tags| {
            tags.iter()
                .map(|kv| (kv.key.to_string(), kv.value.to_string()))
                .collect()
        }),
        task_offsets: req.task_offsets.as_deref().map(task_offsets),
        task_end_offsets: req.task_end_offsets.as_deref().map(task_offsets),
        shutdown_application: req.shutdown_application,
        client_id: ctx.client_id.clone().unwrap_or_default(),
        client_host: ctx.client_host.clone(),
    }
}

/// An answer with only an error (and an empty status list, as Kafka's).
fn error_response(code: ErrorCode, message: Option<String>) -> StreamsGroupHeartbeatResponse {
    StreamsGroupHeartbeatResponse::default()
        .with_error_code(code.code())
        .with_error_message(message.map(str_bytes))
        .with_status(Some(Vec::new()))
}

/// The refusal of a heartbeat the principal may not send, or whose topology names topics no
/// Kafka Streams application may use, in Kafka's order.
fn refused(
    broker: &Broker,
    ctx: &RequestContext,
    req: &StreamsGroupHeartbeatRequest,
    topology: Option<&TopologyValue>,
) -> Option<StreamsGroupHeartbeatResponse> {
    if !authorize_group(broker, ctx, AclOperation::Read, &req.group_id.0) {
        return Some(error_response(ErrorCode::GROUP_AUTHORIZATION_FAILED, None));
    }
    let topology = topology?;
    if let Err(check) = check_topic_names(topology) {
        let (code, message) = match check {
            TopologyCheck::InvalidTopology(m) => (ErrorCode::STREAMS_INVALID_TOPOLOGY, m),
            TopologyCheck::InvalidRequest(m) => (ErrorCode::INVALID_REQUEST, m),
        };
        return Some(error_response(code, Some(message)));
    }
    let names = named_topics(topology);
    let describable = authorizer::filter_authorized(
        broker,
        ctx,
        AclOperation::Describe,
        ResourceType::Topic,
        names.iter().copied(),
    );
    (describable.len() < names.len())
        .then(|| error_response(ErrorCode::TOPIC_AUTHORIZATION_FAILED, None))
}

fn wire_tasks(tasks: TaskMap) -> Vec<TaskIds> {
    tasks
        .into_iter()
        .map(|(id, partitions)| {
            TaskIds::default()
                .with_subtopology_id(str_bytes(id))
                .with_partitions(partitions.into_iter().collect())
        })
        .collect()
}

/// Handles a StreamsGroupHeartbeat request.
pub fn handle(
    broker: &Arc<Broker>,
    ctx: RequestContext,
    req: StreamsGroupHeartbeatRequest,
) -> Reply {
    if !crate::group_coordinator::streams_groups_enabled(&broker.replicas) {
        let resp = StreamsGroupHeartbeatResponse::default()
            .with_error_code(ErrorCode::UNSUPPORTED_VERSION.code())
            .with_status(Some(Vec::new()));
        return ready(&ctx, &resp);
    }
    let core = core_request(&ctx, &req);
    if let Some(resp) = refused(broker, &ctx, &req, core.topology.as_ref()) {
        return ready(&ctx, &resp);
    }
    let answer = broker
        .groups
        .streams_group_heartbeat(&broker.replicas, core);
    let broker = Arc::clone(broker);
    Reply::Pending(Box::pin(async move {
        let answer = answer.await;
        let mut r = answer.response;
        if !answer.create.is_empty() {
            if let Some(denied) = create_internal_topics(&broker, &ctx, answer.create) {
                let suffix = format!("Unauthorized to CREATE on topics {}.", denied.join(", "));
                add_to_missing_internal_topics(&mut r, suffix, true);
            }
        }
        if !answer.failures.is_empty() {
            // Kafka's `KafkaApis`: at most three, then how many more.
            let shown: Vec<String> = answer
                .failures
                .iter()
                .take(3)
                .map(|(name, why)| format!("{name} ({why})"))
                .collect();
            let more = answer.failures.len().saturating_sub(3);
            let mut suffix = format!("Creation failed: {}", shown.join(", "));
            if more > 0 {
                suffix.push_str(&format!(" and {more} more"));
            }
            suffix.push('.');
            add_to_missing_internal_topics(&mut r, suffix, false);
        }
        let mut resp = StreamsGroupHeartbeatResponse::default()
            .with_error_code(r.error_code)
            .with_error_message(r.error_message.map(str_bytes))
            .with_member_id(str_bytes(r.member_id))
            .with_member_epoch(r.member_epoch)
            .with_heartbeat_interval_ms(r.heartbeat_interval_ms)
            .with_task_offset_interval_ms(r.task_offset_interval_ms)
            .with_status(Some(
                r.status
                    .unwrap_or_default()
                    .into_iter()
                    .map(|s| {
                        Status::default()
                            .with_status_code(s.code)
                            .with_status_detail(str_bytes(s.detail))
                    })
                    .collect(),
            ))
            .with_active_tasks(r.active_tasks.map(wire_tasks))
            .with_standby_tasks(r.standby_tasks.map(wire_tasks))
            .with_warmup_tasks(r.warmup_tasks.map(wire_tasks))
            .with_endpoint_information_epoch(r.endpoint_information_epoch)
            .with_partitions_by_user_endpoint(r.partitions_by_user_endpoint.map(|list| {
                list.into_iter()
                    .map(|e| {
                        let partitions =
                            |tps: Vec<gregor_group::streams_group::TopicPartitions>| {
                                tps.into_iter()
                                    .map(|tp| {
                                        TopicPartition::default()
                                            .with_topic(topic_name(&tp.topic))
                                            .with_partitions(tp.partitions)
                                    })
                                    .collect()
                            };
                        EndpointToPartitions::default()
                            .with_user_endpoint(
                                WireEndpoint::default()
                                    .with_host(str_bytes(e.user_endpoint.host))
                                    .with_port(e.user_endpoint.port),
                            )
                            .with_active_partitions(partitions(e.active_partitions))
                            .with_standby_partitions(partitions(e.standby_partitions))
                    })
                    .collect()
            }));
        if r.error_code == 0 {
            if ctx.api_version >= 1 {
                resp = resp.with_acceptable_recovery_lag(r.acceptable_recovery_lag);
            } else {
                resp = resp.with_acceptable_recovery_lag_legacy(
                    i32::try_from(r.acceptable_recovery_lag).unwrap_or(i32::MAX),
                );
            }
        }
        encode(&ctx, &resp)
    }))
}

/// Adds `suffix` to the MISSING_INTERNAL_TOPICS status's detail ("; " between), or, when
/// there is none and `or_add`, adds that status with `suffix` as its detail.
fn add_to_missing_internal_topics(
    r: &mut gregor_group::streams_group::StreamsGroupHeartbeatResponse,
    suffix: String,
    or_add: bool,
) {
    let statuses = r.status.get_or_insert_with(Vec::new);
    match statuses
        .iter_mut()
        .find(|s| s.code == status::MISSING_INTERNAL_TOPICS)
    {
        Some(s) => s.detail = format!("{}; {suffix}", s.detail),
        None if or_add => statuses.push(gregor_group::streams_group::Status {
            code: status::MISSING_INTERNAL_TOPICS,
            detail: suffix,
        }),
        None => {}
    }
}

/// Creates `topics` in the background on behalf of the client, as Kafka's
/// `AutoTopicCreationManager.createStreamsInternalTopics`: only if the principal may CREATE
/// on the cluster or on every one of them. Returns the names it may not create (nothing is
/// created then).
fn create_internal_topics(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    topics: Vec<TopicToCreate>,
) -> Option<Vec<String>> {
    let on_cluster = authorizer::authorize_quietly(
        broker,
        ctx,
        AclOperation::Create,
        ResourceType::Cluster,
        "kafka-cluster",
    );
    if !on_cluster {
        let names: Vec<&str> = topics.iter().map(|t| t.name.as_str()).collect();
        let allowed = authorizer::filter_authorized(
            broker,
            ctx,
            AclOperation::Create,
            ResourceType::Topic,
            names.iter().copied(),
        );
        let mut denied: Vec<String> = names
            .iter()
            .filter(|n| !allowed.contains(**n))
            .map(|n| n.to_string())
            .collect();
        if !denied.is_empty() {
            denied.sort();
            return Some(denied);
        }
    }
    let request = proto::CreateTopicsRequest {
        topics: topics
            .into_iter()
            .map(|t| {
                let configs: BTreeMap<String, String> = t.configs.into_iter().collect();
                proto::CreatableTopic {
                    name: t.name,
                    num_partitions: t.partitions,
                    replication_factor: if t.replication_factor > 0 {
                        t.replication_factor
                    } else {
                        -1
                    },
                    assignments: Vec::new(),
                    configs: configs.into_iter().map(|(k, v)| (k, Some(v))).collect(),
                }
            })
            .collect(),
        validate_only: false,
    };
    let broker = Arc::clone(broker);
    tokio::spawn(async move {
        match broker
            .controller
            .call(ControllerRequest::CreateTopics(request))
            .await
        {
            Ok(ControllerResponse::CreateTopics(resp)) => {
                for t in resp.topics {
                    if t.error_code == 0 {
                        info!(topic = %t.name, partitions = t.num_partitions, "created a streams group's internal topic");
                    } else if t.error_code != ErrorCode::TOPIC_ALREADY_EXISTS.code() {
                        warn!(topic = %t.name, code = t.error_code, message = ?t.error_message, "cannot create a streams group's internal topic");
                        let why = t
                            .error_message
                            .filter(|m| !m.is_empty())
                            .unwrap_or_else(|| ErrorCode(t.error_code).name().to_string());
                        broker.groups.streams_topic_creation_failed(&t.name, why);
                    }
                }
            }
            other => warn!(answer = ?other, "cannot create streams groups' internal topics"),
        }
    });
    None
}

#[cfg(test)]
mod tests {
    use gregor_protocol::messages::{
        ConsumerGroupHeartbeatRequest, ConsumerGroupHeartbeatResponse, GroupId, ResponseHeader,
        StreamsGroupDescribeRequest, StreamsGroupDescribeResponse, TopicName,
    };
    use gregor_protocol::protocol::{Decodable, HeaderVersion, StrBytes};

    use super::*;
    use crate::request::reply_body as body;

    /// A broker coordinating every group, with topic "t" of 2 partitions, and streams groups
    /// that assign at once (no initial rebalance delay, no assignment interval).
    fn broker(dir: &std::path::Path) -> Arc<Broker> {
        let mut config = crate::config::BrokerConfig {
            data_dir: dir.to_path_buf(),
            ..Default::default()
        };
        config.group.offsets_topic_num_partitions = 1;
        config.streams_group.initial_rebalance_delay_ms = 0;
        config.streams_group.assignment_interval_ms = 0;
        let b = crate::broker::test_broker(config);
        b.replicas
            .create_topic("t", 2, 1, Default::default())
            .expect("create");
        b
    }

    fn s(v: &str) -> StrBytes {
        StrBytes::from_string(v.to_string())
    }

    /// A joining member of `group` whose one subtopology "0" reads `source` into a store.
    fn join(group: &str, member: &str, source: &str) -> StreamsGroupHeartbeatRequest {
        let changelog = wire_req::TopicInfo::default()
            .with_name(TopicName(s(&format!("{group}-store-changelog"))));
        StreamsGroupHeartbeatRequest::default()
            .with_group_id(GroupId(s(group)))
            .with_member_id(s(member))
            .with_member_epoch(0)
            .with_rebalance_timeout_ms(30_000)
            .with_process_id(Some(s(&format!("{member}-process"))))
            .with_topology(Some(
                wire_req::Topology::default()
                    .with_epoch(0)
                    .with_subtopologies(vec![wire_req::Subtopology::default()
                        .with_subtopology_id(s("0"))
                        .with_source_topics(vec![TopicName(s(source))])
                        .with_state_changelog_topics(vec![changelog])]),
            ))
            .with_active_tasks(Some(Vec::new()))
            .with_standby_tasks(Some(Vec::new()))
            .with_warmup_tasks(Some(Vec::new()))
    }

    async fn heartbeat(
        b: &Arc<Broker>,
        req: StreamsGroupHeartbeatRequest,
    ) -> StreamsGroupHeartbeatResponse {
        let version = 1;
        let mut bytes = body(handle(b, RequestContext::for_test(KEY, version), req)).await;
        ResponseHeader::decode(
            &mut bytes,
            StreamsGroupHeartbeatResponse::header_version(version),
        )
        .expect("header");
        StreamsGroupHeartbeatResponse::decode(&mut bytes, version).expect("decode")
    }

    fn describe(b: &Arc<Broker>, group: &str) -> StreamsGroupDescribeResponse {
        let ctx = RequestContext::for_test(super::super::streams_group_describe::KEY, 1);
        super::super::streams_group_describe::handle(
            b,
            &ctx,
            StreamsGroupDescribeRequest::default().with_group_ids(vec![GroupId(s(group))]),
        )
    }

    /// Waits until the broker's image has `topic`.
    async fn wait_for_topic(b: &Arc<Broker>, topic: &str) {
        for _ in 0..200 {
            if b.replicas.topic(topic).is_some() {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        panic!("{topic} was never created");
    }

    /// A member joins: the broker creates the changelog topic the group needs, and once it
    /// exists the member gets both tasks of its subtopology.
    #[tokio::test]
    async fn a_member_gets_its_tasks_once_the_internal_topics_exist() {
        let dir = tempfile::tempdir().expect("tempdir");
        let b = broker(dir.path());
        let r = heartbeat(&b, join("app", "m1", "t")).await;
        assert_eq!(r.error_code, 0, "{r:?}");
        let status = r.status.clone().unwrap_or_default();
        assert_eq!(status.len(), 1, "{r:?}");
        assert_eq!(status[0].status_code, status::MISSING_INTERNAL_TOPICS);
        assert_eq!(
            status[0].status_detail.as_str(),
            "Internal topics are missing: app-store-changelog"
        );
        wait_for_topic(&b, "app-store-changelog").await;
        assert_eq!(
            b.replicas
                .topic("app-store-changelog")
                .map(|t| t.partitions.len()),
            Some(2),
            "as many partitions as the source"
        );
        let next = StreamsGroupHeartbeatRequest::default()
            .with_group_id(GroupId(s("app")))
            .with_member_id(s("m1"))
            .with_member_epoch(r.member_epoch)
            .with_rebalance_timeout_ms(-1);
        let r = heartbeat(&b, next).await;
        assert_eq!(r.error_code, 0, "{r:?}");
        assert_eq!(r.status.as_deref().map(<[Status]>::len), Some(0), "{r:?}");
        let active = r.active_tasks.expect("tasks");
        assert_eq!(active.len(), 1);
        assert_eq!(active[0].partitions, vec![0, 1]);
        assert_eq!(r.acceptable_recovery_lag, 10_000);
        let d = describe(&b, "app");
        let g = &d.groups[0];
        assert_eq!((g.error_code, g.group_state.as_str()), (0, "Stable"));
        assert_eq!(g.members.len(), 1);
        assert_eq!(g.assignor_name.as_deref(), Some("sticky"));
    }

    /// An internal topic the controller refuses to create: the members' next heartbeats say
    /// why, after the MISSING_INTERNAL_TOPICS status, as Kafka's do.
    #[tokio::test]
    async fn a_failed_creation_is_reported_in_the_status() {
        let dir = tempfile::tempdir().expect("tempdir");
        let b = broker(dir.path());
        let mut req = join("app", "m1", "t");
        if let Some(t) = req.topology.as_mut() {
            // Five replicas on a one-broker cluster.
            t.subtopologies[0].state_changelog_topics[0].replication_factor = 5;
        }
        let r = heartbeat(&b, req).await;
        assert_eq!(r.error_code, 0, "{r:?}");
        let mut epoch = r.member_epoch;
        let mut detail = String::new();
        for _ in 0..100 {
            let next = StreamsGroupHeartbeatRequest::default()
                .with_group_id(GroupId(s("app")))
                .with_member_id(s("m1"))
                .with_member_epoch(epoch)
                .with_rebalance_timeout_ms(-1);
            let r = heartbeat(&b, next).await;
            assert_eq!(r.error_code, 0, "{r:?}");
            epoch = r.member_epoch;
            detail = r
                .status
                .unwrap_or_default()
                .iter()
                .find(|s| s.status_code == status::MISSING_INTERNAL_TOPICS)
                .map(|s| s.status_detail.to_string())
                .unwrap_or_default();
            if detail.contains("Creation failed") {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert!(
            detail.starts_with(
                "Internal topics are missing: app-store-changelog; Creation failed: app-store-changelog ("
            ),
            "{detail}"
        );
        assert!(b.replicas.topic("app-store-changelog").is_none());
    }

    /// Kafka's internal topics are no Streams application's, and a topology naming one is
    /// refused before the coordinator sees it.
    #[tokio::test]
    async fn a_topology_naming_an_internal_topic_is_invalid() {
        let dir = tempfile::tempdir().expect("tempdir");
        let b = broker(dir.path());
        let r = heartbeat(&b, join("app", "m1", "__consumer_offsets")).await;
        assert_eq!(r.error_code, ErrorCode::STREAMS_INVALID_TOPOLOGY.code());
        assert_eq!(
            r.error_message.as_deref(),
            Some("Use of Kafka internal topics __consumer_offsets in a Kafka Streams topology is prohibited.")
        );
        assert!(!b.groups.is_streams_group("app"));
    }

    /// One id, one group: a streams group's id is not a consumer group's, and the reverse.
    #[tokio::test]
    async fn a_streams_group_id_is_not_a_consumer_group_id() {
        let dir = tempfile::tempdir().expect("tempdir");
        let b = broker(dir.path());
        let r = heartbeat(&b, join("app", "m1", "t")).await;
        assert_eq!(r.error_code, 0);
        let consumer = ConsumerGroupHeartbeatRequest::default()
            .with_group_id(GroupId(s("app")))
            .with_member_id(s("c1"))
            .with_member_epoch(0)
            .with_rebalance_timeout_ms(30_000)
            .with_subscribed_topic_names(Some(vec![TopicName(s("t"))]))
            .with_topic_partitions(Some(Vec::new()));
        let ctx = RequestContext::for_test(super::super::consumer_group_heartbeat::KEY, 1);
        let mut bytes = body(super::super::consumer_group_heartbeat::handle(
            &b, ctx, consumer,
        ))
        .await;
        ResponseHeader::decode(
            &mut bytes,
            ConsumerGroupHeartbeatResponse::header_version(1),
        )
        .expect("header");
        let c = ConsumerGroupHeartbeatResponse::decode(&mut bytes, 1).expect("decode");
        assert_eq!(c.error_code, ErrorCode::GROUP_ID_NOT_FOUND.code());
        assert_eq!(
            c.error_message.as_deref(),
            Some("Group app is not a consumer group.")
        );
        let r = heartbeat(&b, join("app2", "m1", "t")).await;
        assert_eq!(r.error_code, 0);
        let d = describe(&b, "nope");
        assert_eq!(d.groups[0].error_code, ErrorCode::GROUP_ID_NOT_FOUND.code());
        assert_eq!(
            d.groups[0].error_message.as_deref(),
            Some("Group nope not found.")
        );
    }

    /// With `streams.version` 0 the streams group APIs answer UNSUPPORTED_VERSION.
    #[tokio::test]
    async fn streams_groups_disabled_by_the_streams_version() {
        let dir = tempfile::tempdir().expect("tempdir");
        let b = broker(dir.path());
        b.replicas
            .apply_records(&[gregor_metadata::MetadataRecord::FeatureLevel(
                gregor_metadata::FeatureLevelRecord {
                    name: gregor_metadata::STREAMS_VERSION_FEATURE.to_string(),
                    feature_level: 0,
                },
            )]);
        let r = heartbeat(&b, join("app", "m1", "t")).await;
        assert_eq!(r.error_code, ErrorCode::UNSUPPORTED_VERSION.code());
        assert!(!b.groups.is_streams_group("app"));
        assert_eq!(
            describe(&b, "app").groups[0].error_code,
            ErrorCode::UNSUPPORTED_VERSION.code()
        );
    }
}
