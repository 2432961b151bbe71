//! OffsetForLeaderEpoch (key 23): where a leader epoch ends in the leader's log (Kafka's
//! `ReplicaManager.lastOffsetForLeaderEpoch`). Consumers (librdkafka, the Java client) ask after
//! a leader change to find out whether their position survived it; followers may ask before
//! they fetch (gregor's replica fetcher uses the Fetch `diverging_epoch` instead).
//!
//! Per partition: the requester's `current_leader_epoch` is checked (FENCED_LEADER_EPOCH /
//! UNKNOWN_LEADER_EPOCH), only the leader answers (NOT_LEADER_OR_FOLLOWER), and the answer is
//! the largest epoch at most `leader_epoch` that the log's leader-epoch cache knows with the
//! offset where it ends (`-1, -1` when the log cannot place it).
//!
//! Authorization, as Kafka's (KIP-320): CLUSTER_ACTION on the cluster (a broker; asked
//! quietly) or else DESCRIBE on each topic (a consumer; TOPIC_AUTHORIZATION_FAILED).

use std::ops::RangeInclusive;
use std::sync::Arc;

use gregor_metadata::{AclOperation, ResourceType, CLUSTER_NAME};
use gregor_protocol::error::ErrorCode;
use gregor_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use gregor_protocol::messages::{
    ApiKey, OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse,
};

use crate::authorizer;
use crate::broker::Broker;
use crate::request::RequestContext;

/// The API this module serves.
pub const KEY: ApiKey = ApiKey::OffsetForLeaderEpoch;
/// The versions served (and advertised in ApiVersions).
pub const VERSIONS: RangeInclusive<i16> = 0..=4;

/// Handles an OffsetForLeaderEpoch request.
pub fn handle(
    broker: &Arc<Broker>,
    ctx: &RequestContext,
    req: OffsetForLeaderEpochRequest,
) -> OffsetForLeaderEpochResponse {
    let cluster_action = authorizer::authorize_quietly(
        broker,
        ctx,
        AclOperation::ClusterAction,
        ResourceType::Cluster,
        CLUSTER_NAME,
    );
    let authorized = if cluster_action {
        None
    } else {
        Some(authorizer::filter_authorized(
            broker,
            ctx,
            AclOperation::Describe,
            ResourceType::Topic,
            req.topics.iter().map(|t| t.topic.0.as_str()),
        ))
    };
    let topics = req
        .topics
        .into_iter()
        .map(|t| {
            let name = t.topic.0.to_string();
            let allowed = authorized.as_ref().is_none_or(|a| a.contains(&name));
            let topic = broker.replicas.topic(&name);
            let partitions = t
                .partitions
                .into_iter()
                .map(|p| {
                    let resp = EpochEndOffset::default()
                        .with_partition(p.partition)
                        .with_leader_epoch(-1)
                        .with_end_offset(-1);
                    if !allowed {
                        return resp.with_error_code(ErrorCode::TOPIC_AUTHORIZATION_FAILED.code());
                    }
                    let Some(topic) = &topic else {
                        return resp.with_error_code(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION.code());
                    };
                    let Some(part) = topic.partition(p.partition) else {
                        let code = if topic.has_partition(p.partition) {
                            ErrorCode::NOT_LEADER_OR_FOLLOWER
                        } else {
                            ErrorCode::UNKNOWN_TOPIC_OR_PARTITION
                        };
                        return resp.with_error_code(code.code());
                    };
                    match part.offset_for_leader_epoch(p.current_leader_epoch, p.leader_epoch) {
                        Ok(end) => resp
                            .with_error_code(0)
                            .with_leader_epoch(end.leader_epoch)
                            .with_end_offset(end.end_offset),
                        Err(code) => resp.with_error_code(code.code()),
                    }
                })
                .collect();
            OffsetForLeaderTopicResult::default()
                .with_topic(t.topic)
                .with_partitions(partitions)
        })
        .collect();
    OffsetForLeaderEpochResponse::default().with_topics(topics)
}

#[cfg(test)]
mod tests {
    use super::*;
    use gregor_protocol::messages::offset_for_leader_epoch_request::{
        OffsetForLeaderPartition, OffsetForLeaderTopic,
    };

    fn request(
        topic: &str,
        partition: i32,
        current: i32,
        epoch: i32,
    ) -> OffsetForLeaderEpochRequest {
        OffsetForLeaderEpochRequest::default().with_topics(vec![OffsetForLeaderTopic::default()
            .with_topic(super::super::topic_name(topic))
            .with_partitions(vec![OffsetForLeaderPartition::default()
                .with_partition(partition)
                .with_current_leader_epoch(current)
                .with_leader_epoch(epoch)])])
    }

    fn ctx() -> RequestContext {
        RequestContext::for_test(KEY, 4)
    }

    fn answer(resp: &OffsetForLeaderEpochResponse) -> (i16, i32, i64) {
        let p = &resp.topics[0].partitions[0];
        (p.error_code, p.leader_epoch, p.end_offset)
    }

    /// The leader answers from its epoch cache; a stale or future current epoch and an unknown
    /// partition get Kafka's codes.
    #[test]
    fn the_leader_answers_from_its_epoch_cache() {
        let dir = tempfile::tempdir().expect("tempdir");
        let b = crate::broker::test_broker_with_clock(
            crate::config::BrokerConfig {
                data_dir: dir.path().to_path_buf(),
                ..Default::default()
            },
            Arc::new(crate::clock::SystemClock),
        );
        let topic = b
            .replicas
            .create_topic("t", 1, 1, Default::default())
            .expect("create");
        let part = &topic.partitions[&0];
        part.append(&crate::partition::tests::batch(3), &topic.settings)
            .expect("append");
        // Epoch 0 holds offsets 0..3 and is the latest: it ends at the log end.
        assert_eq!(
            answer(&handle(&b, &ctx(), request("t", 0, 0, 0))),
            (0, 0, 3)
        );
        // No current epoch sent (v0-v1 clients); an epoch newer than any known is undefined.
        assert_eq!(
            answer(&handle(&b, &ctx(), request("t", 0, -1, 0))),
            (0, 0, 3)
        );
        assert_eq!(
            answer(&handle(&b, &ctx(), request("t", 0, -1, 5))),
            (0, -1, -1)
        );
        assert_eq!(
            answer(&handle(&b, &ctx(), request("t", 0, 1, 0))).0,
            ErrorCode::UNKNOWN_LEADER_EPOCH.code()
        );
        assert_eq!(
            answer(&handle(&b, &ctx(), request("nope", 0, -1, 0))).0,
            ErrorCode::UNKNOWN_TOPIC_OR_PARTITION.code()
        );
        assert_eq!(
            answer(&handle(&b, &ctx(), request("t", 9, -1, 0))).0,
            ErrorCode::UNKNOWN_TOPIC_OR_PARTITION.code()
        );
    }

    /// CLUSTER_ACTION on the cluster (a broker) or DESCRIBE on the topic (a consumer), else
    /// TOPIC_AUTHORIZATION_FAILED.
    #[test]
    fn an_authorizer_asks_for_cluster_action_or_describe_on_the_topic() {
        use crate::authorizer::test_support::{allow_cluster, allow_topic, ctx_of, secured_broker};
        let dir = tempfile::tempdir().expect("tempdir");
        let b = secured_broker(dir.path());
        let topic = b
            .replicas
            .create_topic("t", 1, 1, Default::default())
            .expect("create");
        topic.partitions[&0]
            .append(&crate::partition::tests::batch(3), &topic.settings)
            .expect("append");
        let ask = |user: &str| answer(&handle(&b, &ctx_of(user, KEY, 4), request("t", 0, 0, 0)));
        assert_eq!(
            ask("alice"),
            (ErrorCode::TOPIC_AUTHORIZATION_FAILED.code(), -1, -1)
        );
        allow_topic(&b, "User:alice", AclOperation::Describe, "t");
        allow_cluster(&b, "User:broker2", AclOperation::ClusterAction);
        assert_eq!(ask("alice"), (0, 0, 3));
        assert_eq!(ask("broker2"), (0, 0, 3));
    }
}
