//! DescribeShareGroupOffsets (key 90, KIP-932): the start offset of share groups'
//! share-partitions (`kafka-share-groups.sh --describe`), read from the share coordinators
//! (`GroupRuntime::describe_share_group_offsets`): every initialized share-partition of the
//! group when the topics are null, else those asked; -1 where there is no state. v1 adds each
//! share-partition's lag (KIP-1226): the partition's high watermark less the start offset and
//! the records past it whose delivery is complete (the count the leader writes with its
//! state); -1 where it cannot be told. A v0 request is answered as before, without looking
//! for high watermarks.
//!
//! Authorization, as Kafka's `handleDescribeShareGroupOffsetsRequest`: DESCRIBE on each group
//! (else GROUP_AUTHORIZATION_FAILED for the group), DESCRIBE on each topic (else
//! TOPIC_AUTHORIZATION_FAILED on its partitions; with all topics, the topics the principal
//! may not describe are left out).

use std::ops::RangeInclusive;
use std::sync::Arc;

use gregor_metadata::{AclOperation, ResourceType};
use gregor_protocol::error::ErrorCode;
use gregor_protocol::messages::describe_share_group_offsets_response::{
    DescribeShareGroupOffsetsResponseGroup as GroupOut,
    DescribeShareGroupOffsetsResponsePartition as PartitionOut,
    DescribeShareGroupOffsetsResponseTopic as TopicOut,
};
use gregor_protocol::messages::ApiKey;
use gregor_protocol::messages::{
    DescribeShareGroupOffsetsRequest, DescribeShareGroupOffsetsResponse, GroupId,
};

use super::group_common::authorize_group;
use super::{str_bytes, topic_name};
use crate::authorizer;
use crate::broker::Broker;
use crate::group_coordinator::{DescribedShareTopic, ShareOffsetsTopic, ShareTopicResult};
use crate::request::{encode, Reply, RequestContext};

/// The API this module serves.
pub const KEY: ApiKey = ApiKey::DescribeShareGroupOffsets;
/// The versions served (and advertised in ApiVersions).
pub const VERSIONS: RangeInclusive<i16> = 0..=1;

fn topic_out(t: DescribedShareTopic) -> TopicOut {
    TopicOut::default()
        .with_topic_name(topic_name(&t.topic_name))
        .with_topic_id(t.topic_id)
        .with_partitions(
            t.partitions
                .into_iter()
                .map(|p| {
                    PartitionOut::default()
                        .with_partition_index(p.partition)
                        .with_start_offset(p.start_offset)
                        .with_leader_epoch(p.leader_epoch)
                        .with_lag(p.lag)
                        .with_error_code(p.error_code)
                        .with_error_message(p.error_message.map(str_bytes))
                })
                .collect(),
        )
}

/// Handles a DescribeShareGroupOffsets request.
pub fn handle(
    broker: &Arc<Broker>,
    ctx: RequestContext,
    req: DescribeShareGroupOffsetsRequest,
) -> Reply {
    let enabled = crate::group_coordinator::share_groups_enabled(&broker.replicas);
    let mut answers = Vec::new();
    for g in req.groups {
        let group_id = g.group_id.0.to_string();
        if !enabled {
            let message = super::share_group_heartbeat::UNSUPPORTED_MESSAGE;
            answers.push(futures::future::Either::Left(std::future::ready(
                GroupOut::default()
                    .with_group_id(GroupId(str_bytes(group_id)))
                    .with_error_code(ErrorCode::UNSUPPORTED_VERSION.code())
                    .with_error_message(Some(str_bytes(message))),
            )));
            continue;
        }
        if !authorize_group(broker, &ctx, AclOperation::Describe, &group_id) {
            let code = ErrorCode::GROUP_AUTHORIZATION_FAILED;
            answers.push(futures::future::Either::Left(std::future::ready(
                GroupOut::default()
                    .with_group_id(GroupId(str_bytes(group_id)))
                    .with_error_code(code.code()),
            )));
            continue;
        }
        // Topics the principal may not describe: refused here, never read.
        let mut refused = Vec::new();
        let topics = g.topics.map(|topics| {
            topics
                .into_iter()
                .filter_map(|t| {
                    let name = t.topic_name.0.to_string();
                    let ok = authorizer::authorize(
                        broker,
                        &ctx,
                        AclOperation::Describe,
                        ResourceType::Topic,
                        &name,
                    );
                    if ok {
                        return Some(ShareOffsetsTopic {
                            topic_name: name,
                            partitions: t.partitions.iter().map(|p| (*p, -1)).collect(),
                        });
                    }
                    refused.push(DescribedShareTopic::from_result(ShareTopicResult {
                        topic_name: name,
                        topic_id: uuid::Uuid::nil(),
                        partitions: t
                            .partitions
                            .iter()
                            .map(|p| {
                                let code = ErrorCode::TOPIC_AUTHORIZATION_FAILED.code();
                                (*p, -1, -1, code, None)
                            })
                            .collect(),
                        error_code: 0,
                        error_message: None,
                    }));
                    None
                })
                .collect()
        });
        let all_topics = topics.is_none();
        let described = broker.groups.describe_share_group_offsets(
            &broker.replicas,
            &broker.share_persister,
            group_id.clone(),
            topics,
            ctx.api_version >= 1,
        );
        let broker = Arc::clone(broker);
        let ctx = ctx.clone();
        answers.push(futures::future::Either::Right(async move {
            let out = GroupOut::default().with_group_id(GroupId(str_bytes(group_id)));
            match described.await {
                Ok(mut results) => {
                    if all_topics {
                        results.retain(|t| {
                            authorizer::authorize_quietly(
                                &broker,
                                &ctx,
                                AclOperation::Describe,
                                ResourceType::Topic,
                                &t.topic_name,
                            )
                        });
                    }
                    results.extend(refused);
                    out.with_topics(results.into_iter().map(topic_out).collect())
                }
                Err((code, message)) => out
                    .with_error_code(code)
                    .with_error_message(Some(str_bytes(message))),
            }
        }));
    }
    Reply::Pending(Box::pin(async move {
        let groups = futures::future::join_all(answers).await;
        encode(
            &ctx,
            &DescribeShareGroupOffsetsResponse::default().with_groups(groups),
        )
    }))
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::sync::Mutex;

    use gregor_protocol::messages::describe_share_group_offsets_request::{
        DescribeShareGroupOffsetsRequestGroup, DescribeShareGroupOffsetsRequestTopic,
    };
    use gregor_protocol::messages::TopicName;
    use gregor_protocol::protocol::StrBytes;
    use gregor_share::{PersistError, PersistedState, ShareKey, StateSummary};

    use super::*;
    use crate::share_persister::{PersistFuture, Persister};
    use crate::txn_coordinator::tests::call;

    /// The share coordinators as a map of summaries.
    #[derive(Default)]
    struct Summaries(Mutex<BTreeMap<ShareKey, StateSummary>>);

    impl Persister for Summaries {
        fn read(&self, _: &ShareKey, _: i32) -> PersistFuture<'_, PersistedState> {
            Box::pin(async { Err(PersistError::NotInitialized) })
        }
        fn write(&self, _: &ShareKey, _: i32, _: &PersistedState) -> PersistFuture<'_, ()> {
            Box::pin(async { Ok(()) })
        }
        fn initialize(&self, _: &ShareKey, _: i32, _: i64) -> PersistFuture<'_, ()> {
            Box::pin(async { Ok(()) })
        }
        fn read_summary(&self, key: &ShareKey) -> PersistFuture<'_, StateSummary> {
            let found = self.0.lock().expect("lock").get(key).copied();
            Box::pin(async move { found.ok_or(PersistError::NotInitialized) })
        }
        fn delete(&self, _: &ShareKey) -> PersistFuture<'_, ()> {
            Box::pin(async { Ok(()) })
        }
    }

    fn summary(start_offset: i64, delivery_complete_count: i32) -> StateSummary {
        StateSummary {
            state_epoch: 1,
            leader_epoch: 4,
            start_offset,
            delivery_complete_count,
        }
    }

    /// Topic `t` (3 partitions, led here) with 10 records in t-0 and 4 in t-1, and group "g"'s
    /// share-partitions: t-0 from 3 with 2 delivered, t-1 from 1 with no count written (a
    /// v0 leader), t-2 without a start offset, and a partition 7 the image does not have.
    fn broker(dir: &std::path::Path) -> Arc<Broker> {
        let b = crate::broker::test_group_broker(dir, 3);
        let (topic, _) = b.replicas.partition("t", 0).expect("t-0");
        for (p, n) in [(0, 10), (1, 4)] {
            let (_, part) = b.replicas.partition("t", p).expect("partition");
            part.append(&crate::partition::tests::batch(n), &topic.settings)
                .expect("append");
        }
        let persister = Arc::new(Summaries::default());
        let key = |partition| ShareKey {
            group_id: "g".into(),
            topic_id: topic.id,
            partition,
        };
        {
            let mut s = persister.0.lock().expect("lock");
            s.insert(key(0), summary(3, 2));
            s.insert(key(1), summary(1, -1));
            s.insert(key(2), summary(-1, -1));
            s.insert(key(7), summary(0, 0));
        }
        assert!(b.groups.use_share_persister(persister));
        b
    }

    fn request(partitions: &[i32]) -> DescribeShareGroupOffsetsRequest {
        DescribeShareGroupOffsetsRequest::default().with_groups(vec![
            DescribeShareGroupOffsetsRequestGroup::default()
                .with_group_id(GroupId(StrBytes::from_static_str("g")))
                .with_topics(Some(vec![DescribeShareGroupOffsetsRequestTopic::default()
                    .with_topic_name(TopicName(StrBytes::from_static_str("t")))
                    .with_partitions(partitions.to_vec())])),
        ])
    }

    /// (partition, start offset, leader epoch, lag, error code) of each partition answered.
    fn rows(r: &DescribeShareGroupOffsetsResponse) -> Vec<(i32, i64, i32, i64, i16)> {
        r.groups[0].topics[0]
            .partitions
            .iter()
            .map(|p| {
                (
                    p.partition_index,
                    p.start_offset,
                    p.leader_epoch,
                    p.lag,
                    p.error_code,
                )
            })
            .collect()
    }

    /// v1 answers the lag: high watermark - start offset - delivery-complete count, where
    /// both are known; -1 elsewhere. A share-partition whose high watermark cannot be had
    /// (no such partition) answers that error alone, as Kafka.
    #[tokio::test]
    async fn v1_answers_each_share_partitions_lag() {
        let dir = tempfile::tempdir().expect("tempdir");
        let b = broker(dir.path());
        let r = call(&b, 1, &request(&[0, 1, 2, 5, 7])).await;
        assert_eq!(r.groups[0].error_code, 0);
        let unknown = ErrorCode::UNKNOWN_TOPIC_OR_PARTITION.code();
        assert_eq!(
            rows(&r),
            vec![
                (0, 3, 4, 10 - 3 - 2, 0),
                (1, 1, 4, -1, 0),
                (2, -1, 4, -1, 0),
                (5, -1, -1, -1, 0),
                (7, 0, 0, -1, unknown),
            ]
        );
        let p7 = &r.groups[0].topics[0].partitions[4];
        assert_eq!(
            p7.error_message.as_deref(),
            Some("UNKNOWN_TOPIC_OR_PARTITION")
        );
    }

    /// v0 answers as before: no lag on the wire, and no high watermark looked for (the
    /// partition the image does not have shows its start offset, without an error).
    #[tokio::test]
    async fn v0_answers_start_offsets_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let b = broker(dir.path());
        let r = call(&b, 0, &request(&[0, 1, 2, 5, 7])).await;
        assert_eq!(
            rows(&r),
            vec![
                (0, 3, 4, -1, 0),
                (1, 1, 4, -1, 0),
                (2, -1, 4, -1, 0),
                (5, -1, -1, -1, 0),
                (7, 0, 4, -1, 0),
            ]
        );
    }

    /// The lag follows the log: more records raise it.
    #[tokio::test]
    async fn the_lag_follows_the_high_watermark() {
        let dir = tempfile::tempdir().expect("tempdir");
        let b = broker(dir.path());
        let (topic, part) = b.replicas.partition("t", 0).expect("t-0");
        part.append(&crate::partition::tests::batch(5), &topic.settings)
            .expect("append");
        let r = call(&b, 1, &request(&[0])).await;
        assert_eq!(rows(&r), vec![(0, 3, 4, 15 - 3 - 2, 0)]);
    }
}
