//! OffsetCommit (key 8): partitions of unknown topics are refused here; the rest go to the
//! coordinator, and the reply waits until the commit is in `__consumer_offsets`. v9 is v8 for
//! a classic group (its generation in `generation_id_or_member_epoch`); for a consumer group
//! (KIP-848) that field is the member epoch, checked by the consumer group core
//! (UNKNOWN_MEMBER_ID, STALE_MEMBER_EPOCH, UNSUPPORTED_VERSION below v9 on every partition);
//! accepted offsets are stored as a simple (generation -1) commit's. v10 (KIP-848) names
//! topics by id in the request and the answer: each id is resolved to its topic through the
//! broker's metadata (as Fetch v13+ does); an id the cluster does not know answers
//! UNKNOWN_TOPIC_ID for each of its partitions and commits nothing for it.
//!
//! Authorization, as Kafka's `handleOffsetCommitRequest`: READ on the group, else every
//! partition of the request answers GROUP_AUTHORIZATION_FAILED; READ on each topic, else its
//! partitions answer TOPIC_AUTHORIZATION_FAILED and nothing is committed for it. When no
//! partition is left to commit, the coordinator is not asked.

use std::ops::RangeInclusive;
use std::sync::Arc;

use gregor_group::{Output, Response};
use gregor_metadata::{AclOperation, ResourceType};
use gregor_protocol::error::ErrorCode;
use gregor_protocol::messages::offset_commit_request::OffsetCommitRequestTopic;
use gregor_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use gregor_protocol::messages::ApiKey;
use gregor_protocol::messages::{OffsetCommitRequest, OffsetCommitResponse};

use super::group_common::{
    authorize_group, call_core, check_consumer_member, commit_topics, pending, CommitMember,
    NOT_AVAILABLE,
};
use super::topic_name;
use crate::authorizer;
use crate::broker::Broker;
use crate::request::{ready, Reply, RequestContext};

/// The API this module serves.
pub const KEY: ApiKey = ApiKey::OffsetCommit;
/// The versions served (and advertised in ApiVersions).
pub const VERSIONS: RangeInclusive<i16> = 2..=10;

/// A partition's result from the coordinator: ((topic, partition), error code).
type PartitionCode = ((String, i32), i16);

/// Every partition of the request answering `code`, topics as they were sent (Kafka's
/// `OffsetCommitRequest.getErrorResponse`).
fn error_response(req: &OffsetCommitRequest, code: ErrorCode) -> OffsetCommitResponse {
    OffsetCommitResponse::default().with_topics(
        req.topics
            .iter()
            .map(|t| {
                OffsetCommitResponseTopic::default()
                    .with_name(t.name.clone())
                    .with_topic_id(t.topic_id)
                    .with_partitions(
                        t.partitions
                            .iter()
                            .map(|p| {
                                OffsetCommitResponsePartition::default()
                                    .with_partition_index(p.partition_index)
                                    .with_error_code(code.code())
                            })
                            .collect(),
                    )
            })
            .collect(),
    )
}

/// Handles an OffsetCommit request.
pub fn handle(broker: &Arc<Broker>, ctx: RequestContext, req: OffsetCommitRequest) -> Reply {
    if !authorize_group(broker, &ctx, AclOperation::Read, &req.group_id.0) {
        return ready(
            &ctx,
            &error_response(&req, ErrorCode::GROUP_AUTHORIZATION_FAILED),
        );
    }
    let v6 = ctx.api_version >= 6;
    let by_id = ctx.api_version >= 10;
    // Each request topic's name: as sent, or (v10) its id's in the metadata, None if unknown.
    let names: Vec<Option<String>> = req
        .topics
        .iter()
        .map(|t| {
            if by_id {
                broker
                    .replicas
                    .topic_by_id(t.topic_id)
                    .map(|k| k.name.clone())
            } else {
                Some(t.name.0.to_string())
            }
        })
        .collect();
    let readable = authorizer::filter_authorized(
        broker,
        &ctx,
        AclOperation::Read,
        ResourceType::Topic,
        names.iter().flatten().map(String::as_str),
    );
    let known: Vec<(String, &OffsetCommitRequestTopic)> = names
        .iter()
        .zip(&req.topics)
        .filter_map(|(name, t)| Some((name.clone()?, t)))
        .filter(|(name, _)| readable.contains(name))
        .collect();
    let (topics, rejected) = commit_topics(
        broker,
        &known,
        |(name, t)| (name.clone(), &t.partitions[..]),
        |p| gregor_group::OffsetCommitPartition {
            partition_index: p.partition_index,
            committed_offset: p.committed_offset,
            committed_leader_epoch: if v6 { p.committed_leader_epoch } else { -1 },
            committed_metadata: p.committed_metadata.as_ref().map(|s| s.to_string()),
        },
    );
    let unreadable_some = names.iter().flatten().any(|n| !readable.contains(n));
    let order: Vec<RequestTopic> = req
        .topics
        .iter()
        .zip(names)
        .map(|(t, name)| RequestTopic {
            name,
            topic_id: t.topic_id,
            partitions: t.partitions.iter().map(|p| p.partition_index).collect(),
        })
        .collect();
    // The code of a partition the coordinator does not see: refused here, or `fallback`.
    let refused = move |name: &str, partition: i32, fallback: i16| {
        if !readable.contains(name) {
            ErrorCode::TOPIC_AUTHORIZATION_FAILED.code()
        } else if rejected.iter().any(|(n, p)| n == name && *p == partition) {
            ErrorCode::UNKNOWN_TOPIC_OR_PARTITION.code()
        } else {
            fallback
        }
    };
    if unreadable_some && topics.iter().all(|t| t.partitions.is_empty()) {
        // Nothing left to commit: answered without the coordinator, as Kafka does.
        return ready(
            &ctx,
            &answer(order, |name, p| refused(name, p, NOT_AVAILABLE)),
        );
    }
    let mut core_req = gregor_group::OffsetCommitRequest {
        group_id: req.group_id.0.to_string(),
        generation_id: req.generation_id_or_member_epoch,
        member_id: req.member_id.to_string(),
        group_instance_id: req.group_instance_id.as_ref().map(|s| s.to_string()),
        topics,
    };
    let group_id = core_req.group_id.clone();
    let version = ctx.api_version;
    let rx = call_core(broker, &group_id, |core, id, now| {
        let member = CommitMember {
            group_id: &group_id,
            member_id: &mut core_req.member_id,
            generation_id: &mut core_req.generation_id,
            group_instance_id: &mut core_req.group_instance_id,
        };
        if let Err(topics) = check_consumer_member(broker, member, &core_req.topics, false, version)
        {
            return vec![Output::Respond {
                request: id,
                response: Response::OffsetCommit(gregor_group::OffsetCommitResponse { topics }),
            }];
        }
        core.commit_offsets(id, core_req, now)
    });
    pending(ctx, rx, move |resp| {
        let (codes, fallback): (Vec<PartitionCode>, i16) = match resp {
            Some(Response::OffsetCommit(r)) => (
                r.topics
                    .into_iter()
                    .flat_map(|t| {
                        let name = t.name;
                        t.partitions
                            .into_iter()
                            .map(move |p| ((name.clone(), p.partition_index), p.error_code))
                    })
                    .collect(),
                NOT_AVAILABLE,
            ),
            Some(other) => (Vec::new(), other.error_code()),
            None => (Vec::new(), NOT_AVAILABLE),
        };
        answer(order, |name, p| {
            let committed = codes
                .iter()
                .find(|((n, i), _)| n == name && *i == p)
                .map_or(fallback, |(_, c)| *c);
            refused(name, p, committed)
        })
    })
}

/// One topic of the request as the answer names it: its name (`None`: a v10 id the cluster
/// does not know), id and partitions.
struct RequestTopic {
    name: Option<String>,
    topic_id: uuid::Uuid,
    partitions: Vec<i32>,
}

/// The answer, in the request's order: each partition with `code(topic, partition)`, those of
/// an unknown topic id UNKNOWN_TOPIC_ID.
fn answer(
    order: Vec<RequestTopic>,
    mut code: impl FnMut(&str, i32) -> i16,
) -> OffsetCommitResponse {
    let topics = order
        .into_iter()
        .map(|t| {
            let partitions = t
                .partitions
                .into_iter()
                .map(|p| {
                    let code = match &t.name {
                        Some(name) => code(name, p),
                        None => ErrorCode::UNKNOWN_TOPIC_ID.code(),
                    };
                    OffsetCommitResponsePartition::default()
                        .with_partition_index(p)
                        .with_error_code(code)
                })
                .collect();
            // v10 answers by id (the name is not on its wire), older versions by name.
            OffsetCommitResponseTopic::default()
                .with_name(topic_name(t.name.as_deref().unwrap_or_default()))
                .with_topic_id(t.topic_id)
                .with_partitions(partitions)
        })
        .collect();
    OffsetCommitResponse::default().with_topics(topics)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::{Buf, Bytes};
    use gregor_protocol::messages::offset_commit_request::OffsetCommitRequestPartition;
    use gregor_protocol::messages::offset_fetch_request::{
        OffsetFetchRequestGroup, OffsetFetchRequestTopics,
    };
    use gregor_protocol::messages::{GroupId, OffsetFetchRequest, ResponseHeader};
    use gregor_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};

    fn broker(dir: &std::path::Path) -> Arc<Broker> {
        crate::broker::test_group_broker(dir, 2)
    }

    fn ctx(api: ApiKey, version: i16) -> RequestContext {
        RequestContext::for_test(api, version)
    }

    /// A v10 commit by group "g" of `(topic id, partition, offset)`, through the wire.
    fn commit_request(offsets: &[(uuid::Uuid, i32, i64)]) -> OffsetCommitRequest {
        let req = OffsetCommitRequest::default()
            .with_group_id(GroupId(StrBytes::from_static_str("g")))
            .with_topics(
                offsets
                    .iter()
                    .map(|&(id, p, o)| {
                        OffsetCommitRequestTopic::default()
                            .with_topic_id(id)
                            .with_partitions(vec![OffsetCommitRequestPartition::default()
                                .with_partition_index(p)
                                .with_committed_offset(o)])
                    })
                    .collect(),
            );
        let mut buf = bytes::BytesMut::new();
        req.encode(&mut buf, 10).expect("encode v10");
        OffsetCommitRequest::decode(&mut buf.freeze(), 10).expect("decode v10")
    }

    /// (topic id, partition, error code) of each partition of a v10 commit's answer.
    async fn commit(b: &Arc<Broker>, req: OffsetCommitRequest) -> Vec<(uuid::Uuid, i32, i16)> {
        let mut bytes: Bytes = match handle(b, ctx(KEY, 10), req) {
            Reply::Pending(f) => f.await.expect("encoded"),
            Reply::Ready(bytes) => bytes,
            _ => panic!("a reply is bytes"),
        };
        bytes.advance(4);
        ResponseHeader::decode(&mut bytes, OffsetCommitResponse::header_version(10))
            .expect("header");
        let resp = OffsetCommitResponse::decode(&mut bytes, 10).expect("decode");
        resp.topics
            .iter()
            .flat_map(|t| {
                t.partitions
                    .iter()
                    .map(|p| (t.topic_id, p.partition_index, p.error_code))
            })
            .collect()
    }

    /// (topic id, partition, committed offset, error code) of group "g" through a v10
    /// OffsetFetch by id (`None`: every committed topic), decoded from its v10 encoding.
    fn fetch(
        b: &Arc<Broker>,
        topics: Option<&[(uuid::Uuid, i32)]>,
    ) -> Vec<(uuid::Uuid, i32, i64, i16)> {
        let group = OffsetFetchRequestGroup::default()
            .with_group_id(GroupId(StrBytes::from_static_str("g")))
            .with_topics(topics.map(|ts| {
                ts.iter()
                    .map(|&(id, p)| {
                        OffsetFetchRequestTopics::default()
                            .with_topic_id(id)
                            .with_partition_indexes(vec![p])
                    })
                    .collect()
            }));
        let req = OffsetFetchRequest::default().with_groups(vec![group]);
        let mut buf = bytes::BytesMut::new();
        req.encode(&mut buf, 10).expect("encode v10");
        let req = OffsetFetchRequest::decode(&mut buf.freeze(), 10).expect("decode v10");
        let resp = super::super::offset_fetch::handle(b, &ctx(ApiKey::OffsetFetch, 10), req);
        let mut buf = bytes::BytesMut::new();
        resp.encode(&mut buf, 10).expect("encode v10");
        let resp = gregor_protocol::messages::OffsetFetchResponse::decode(&mut buf.freeze(), 10)
            .expect("decode v10");
        let g = &resp.groups[0];
        assert_eq!(g.error_code, 0);
        g.topics
            .iter()
            .flat_map(|t| {
                t.partitions.iter().map(|p| {
                    (
                        t.topic_id,
                        p.partition_index,
                        p.committed_offset,
                        p.error_code,
                    )
                })
            })
            .collect()
    }

    /// v10 (KIP-848): offsets committed by topic id are read back by topic id, and also by
    /// name (v9), since they are the topic's; answers name the topic by id.
    #[tokio::test]
    async fn v10_commits_and_fetches_by_topic_id() {
        let dir = tempfile::tempdir().expect("tempdir");
        let b = broker(dir.path());
        let id = b.replicas.topic("t").expect("t").id;
        assert_eq!(
            commit(&b, commit_request(&[(id, 0, 5), (id, 1, 7)])).await,
            vec![(id, 0, 0), (id, 1, 0)]
        );
        assert_eq!(
            fetch(&b, Some(&[(id, 1), (id, 0)])),
            vec![(id, 1, 7, 0), (id, 0, 5, 0)]
        );
        // Every committed topic, by id.
        assert_eq!(fetch(&b, None), vec![(id, 0, 5, 0), (id, 1, 7, 0)]);
        // The same offsets by name, v9.
        let by_name = super::super::offset_fetch::handle(
            &b,
            &ctx(ApiKey::OffsetFetch, 9),
            OffsetFetchRequest::default().with_groups(vec![OffsetFetchRequestGroup::default()
                .with_group_id(GroupId(StrBytes::from_static_str("g")))
                .with_topics(None)]),
        );
        let t = &by_name.groups[0].topics[0];
        assert_eq!(t.name.0.as_str(), "t");
        assert_eq!(t.partitions[1].committed_offset, 7);
    }

    /// An id the cluster does not know: UNKNOWN_TOPIC_ID for each of its partitions in both
    /// APIs, nothing committed for it, and the known topics of the same request unaffected; a
    /// known topic's missing partition stays UNKNOWN_TOPIC_OR_PARTITION.
    #[tokio::test]
    async fn v10_an_unknown_topic_id_is_unknown_topic_id() {
        let dir = tempfile::tempdir().expect("tempdir");
        let b = broker(dir.path());
        let id = b.replicas.topic("t").expect("t").id;
        let unknown = uuid::Uuid::from_u128(0x5eed);
        let unknown_topic_id = ErrorCode::UNKNOWN_TOPIC_ID.code();
        assert_eq!(
            commit(
                &b,
                commit_request(&[(unknown, 0, 3), (id, 0, 4), (id, 9, 4)])
            )
            .await,
            vec![
                (unknown, 0, unknown_topic_id),
                (id, 0, 0),
                (id, 9, ErrorCode::UNKNOWN_TOPIC_OR_PARTITION.code())
            ]
        );
        assert_eq!(
            fetch(&b, Some(&[(unknown, 0), (id, 0)])),
            vec![(unknown, 0, -1, unknown_topic_id), (id, 0, 4, 0)]
        );
        assert_eq!(fetch(&b, None), vec![(id, 0, 4, 0)]);
    }

    /// READ on the group (else every partition GROUP_AUTHORIZATION_FAILED) and on each topic
    /// (else its partitions TOPIC_AUTHORIZATION_FAILED, nothing committed for it).
    #[tokio::test]
    async fn commits_need_read_on_the_group_and_each_topic() {
        use crate::authorizer::test_support::{allow_group, allow_topic, ctx_of};
        use crate::handlers::group_common::test_support::auth_group_broker;
        use crate::request::decode_reply;
        use gregor_protocol::messages::TopicName;

        let dir = tempfile::tempdir().expect("tempdir");
        let b = auth_group_broker(dir.path(), 1);
        b.replicas
            .create_topic("u", 1, 1, Default::default())
            .expect("create");
        let req = |topics: &[&'static str]| {
            OffsetCommitRequest::default()
                .with_group_id(GroupId(StrBytes::from_static_str("g")))
                .with_topics(
                    topics
                        .iter()
                        .map(|t| {
                            OffsetCommitRequestTopic::default()
                                .with_name(TopicName(StrBytes::from_static_str(t)))
                                .with_partitions(vec![OffsetCommitRequestPartition::default()
                                    .with_partition_index(0)
                                    .with_committed_offset(3)])
                        })
                        .collect(),
                )
        };
        let commit = |topics: &[&'static str]| {
            let reply = handle(&b, ctx_of("alice", KEY, 9), req(topics));
            async move {
                let r: OffsetCommitResponse = decode_reply(reply, 9).await;
                r.topics
                    .iter()
                    .map(|t| (t.name.0.to_string(), t.partitions[0].error_code))
                    .collect::<Vec<_>>()
            }
        };
        let group_refused = ErrorCode::GROUP_AUTHORIZATION_FAILED.code();
        assert_eq!(
            commit(&["t", "u"]).await,
            vec![("t".into(), group_refused), ("u".into(), group_refused)]
        );
        allow_group(&b, "User:alice", AclOperation::Read, "g");
        allow_topic(&b, "User:alice", AclOperation::Read, "t");
        let topic_refused = ErrorCode::TOPIC_AUTHORIZATION_FAILED.code();
        assert_eq!(commit(&["u"]).await, vec![("u".into(), topic_refused)]);
        assert_eq!(
            commit(&["t", "u"]).await,
            vec![("t".into(), 0), ("u".into(), topic_refused)]
        );
        let committed = b
            .groups
            .core()
            .fetch_offsets(&gregor_group::OffsetFetchRequest {
                group_id: "g".into(),
                topics: None,
                require_stable: false,
            });
        let topics: Vec<&str> = committed.topics.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(topics, vec!["t"]);
    }
}
