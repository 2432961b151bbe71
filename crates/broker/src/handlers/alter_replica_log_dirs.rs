//! AlterReplicaLogDirs (key 34): moves partitions' logs between this broker's log directories
//! (`kafka-reassign-partitions.sh` with `log_dirs` in its plan, `Admin.alterReplicaLogDirs`).
//!
//! Each partition gets its own error code, as Kafka's `ReplicaManager.alterReplicaLogDirs`
//! answers: NONE once its move is under way (or it is there already), LOG_DIR_NOT_FOUND for a
//! path that is not one of `log.dirs` (an absolute path, as the broker reports it in
//! DescribeLogDirs), REPLICA_NOT_AVAILABLE for a partition with no replica here (its log is
//! then created in that directory if a replica comes), INVALID_TOPIC_EXCEPTION for a name too
//! long for the copy's directory, KAFKA_STORAGE_ERROR for an offline directory and
//! INVALID_REPLICA_ASSIGNMENT for a cordoned one (`cordoned.log.dirs`, as Kafka 4.4). The copy runs in the background; DescribeLogDirs shows it as
//! the future replica until it takes the partition's place. The principal needs ALTER on the
//! cluster (else CLUSTER_AUTHORIZATION_FAILED for every partition).

use std::collections::BTreeMap;
use std::ops::RangeInclusive;

use gregor_metadata::AclOperation;
use gregor_protocol::error::ErrorCode;
use gregor_protocol::messages::alter_replica_log_dirs_response::{
    AlterReplicaLogDirPartitionResult, AlterReplicaLogDirTopicResult,
};
use gregor_protocol::messages::ApiKey;
use gregor_protocol::messages::{AlterReplicaLogDirsRequest, AlterReplicaLogDirsResponse};

use super::topic_name;
use crate::authorizer;
use crate::broker::Broker;
use crate::request::RequestContext;

/// The API this module serves.
pub const KEY: ApiKey = ApiKey::AlterReplicaLogDirs;
/// The versions served (and advertised in ApiVersions): Kafka 4's.
pub const VERSIONS: RangeInclusive<i16> = 1..=2;

/// Handles the request (see the module doc).
pub fn handle(
    broker: &Broker,
    ctx: &RequestContext,
    req: &AlterReplicaLogDirsRequest,
) -> AlterReplicaLogDirsResponse {
    let allowed = authorizer::authorize_cluster(broker, ctx, AclOperation::Alter);
    // By topic, then partition; a partition named twice gets the last directory's answer.
    let mut results: BTreeMap<String, BTreeMap<i32, i16>> = BTreeMap::new();
    for dir in &req.dirs {
        for t in &dir.topics {
            for &p in &t.partitions {
                let code = if allowed {
                    broker
                        .replicas
                        .alter_log_dir(t.name.0.as_str(), p, dir.path.as_str())
                } else {
                    ErrorCode::CLUSTER_AUTHORIZATION_FAILED
                };
                results
                    .entry(t.name.0.to_string())
                    .or_default()
                    .insert(p, code.code());
            }
        }
    }
    AlterReplicaLogDirsResponse::default().with_results(
        results
            .into_iter()
            .map(|(topic, partitions)| {
                AlterReplicaLogDirTopicResult::default()
                    .with_topic_name(topic_name(&topic))
                    .with_partitions(
                        partitions
                            .into_iter()
                            .map(|(p, code)| {
                                AlterReplicaLogDirPartitionResult::default()
                                    .with_partition_index(p)
                                    .with_error_code(code)
                            })
                            .collect(),
                    )
            })
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use gregor_protocol::messages::alter_replica_log_dirs_request::{
        AlterReplicaLogDir, AlterReplicaLogDirTopic,
    };

    use crate::handlers::admin_common::test_cluster;
    use crate::handlers::str_bytes;

    fn ctx() -> RequestContext {
        RequestContext::for_test(KEY, 2)
    }

    fn request(path: &str, topic: &str, partitions: Vec<i32>) -> AlterReplicaLogDirsRequest {
        AlterReplicaLogDirsRequest::default().with_dirs(vec![AlterReplicaLogDir::default()
            .with_path(str_bytes(path.to_string()))
            .with_topics(vec![AlterReplicaLogDirTopic::default()
                .with_name(topic_name(topic))
                .with_partitions(partitions)])])
    }

    fn codes(resp: &AlterReplicaLogDirsResponse) -> Vec<(String, i32, i16)> {
        resp.results
            .iter()
            .flat_map(|t| {
                t.partitions
                    .iter()
                    .map(|p| (t.topic_name.0.to_string(), p.partition_index, p.error_code))
            })
            .collect()
    }

    /// A hosted partition moves (the log ends up in the other directory, the same handle
    /// serving it); an unknown directory, a relative path, a partition hosted elsewhere and
    /// a topic name too long get Kafka's codes.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn moves_a_hosted_partition_and_answers_the_others_with_kafkas_codes() {
        let root = tempfile::tempdir().expect("tempdir");
        let (a, c) = (root.path().join("a"), root.path().join("c"));
        let b = test_cluster::with_config(&a, |mut config| {
            config.extra_log_dirs = vec![c.clone()];
            config
        });
        test_cluster::topic(&b, "t", &[vec![1], vec![2]]);
        let (topic, part) = b.replicas.partition("t", 0).expect("t-0 hosted here");
        part.append(&crate::partition::tests::batch(3), &topic.settings)
            .expect("append");
        let from = b.replicas.log_dir_of("t", 0).expect("on disk");
        let to = if from == a { &c } else { &a };
        let resp = handle(
            &b,
            &ctx(),
            &request(&to.display().to_string(), "t", vec![0, 1]),
        );
        assert_eq!(
            codes(&resp),
            vec![
                ("t".into(), 0, 0),
                ("t".into(), 1, ErrorCode::REPLICA_NOT_AVAILABLE.code())
            ]
        );
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        // Placed there at the swap; the move is forgotten just after.
        while b.replicas.log_dir_of("t", 0).as_ref() != Some(to)
            || !b.replicas.log_dir_moves().is_empty()
        {
            assert!(
                std::time::Instant::now() < deadline,
                "the move did not finish"
            );
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        assert!(to.join("t-0").is_dir() && !from.join("t-0").exists());
        assert!(
            to.join("t-0").join("partition.metadata").is_file(),
            "the topic id goes with the log"
        );
        // The partition goes on from where it was.
        let info = part
            .append(&crate::partition::tests::batch(2), &topic.settings)
            .expect("append after the move");
        assert_eq!(info.first_offset, 3);
        // Asked again: there already.
        let again = handle(
            &b,
            &ctx(),
            &request(&to.display().to_string(), "t", vec![0]),
        );
        assert_eq!(codes(&again), vec![("t".into(), 0, 0)]);

        let elsewhere = root.path().join("elsewhere");
        for path in [elsewhere.display().to_string(), "a".to_string()] {
            let resp = handle(&b, &ctx(), &request(&path, "t", vec![0]));
            assert_eq!(
                codes(&resp),
                vec![("t".into(), 0, ErrorCode::LOG_DIR_NOT_FOUND.code())],
                "{path}"
            );
        }
        let long = "x".repeat(240);
        let resp = handle(
            &b,
            &ctx(),
            &request(&a.display().to_string(), &long, vec![0]),
        );
        assert_eq!(
            codes(&resp),
            vec![(long, 0, ErrorCode::INVALID_TOPIC_EXCEPTION.code())]
        );
        for v in VERSIONS {
            let mut buf = bytes::BytesMut::new();
            gregor_protocol::protocol::Encodable::encode(&resp, &mut buf, v)
                .unwrap_or_else(|e| panic!("v{v}: {e}"));
        }
    }

    /// A cordoned directory takes no move (KIP-1066, as Kafka 4.4): INVALID_REPLICA_ASSIGNMENT,
    /// and the partition stays where it is.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_cordoned_directory_takes_no_move() {
        let root = tempfile::tempdir().expect("tempdir");
        let (a, c) = (root.path().join("a"), root.path().join("c"));
        let b = test_cluster::with_config(&a, |mut config| {
            config.extra_log_dirs = vec![c.clone()];
            config.cordoned_log_dirs = vec![c.display().to_string()];
            config
        });
        test_cluster::topic(&b, "t", &[vec![1]]);
        assert_eq!(b.replicas.log_dir_of("t", 0).as_ref(), Some(&a));
        let resp = handle(&b, &ctx(), &request(&c.display().to_string(), "t", vec![0]));
        assert_eq!(
            codes(&resp),
            vec![("t".into(), 0, ErrorCode::INVALID_REPLICA_ASSIGNMENT.code())]
        );
        assert!(b.replicas.log_dir_moves().is_empty());
        assert_eq!(b.replicas.log_dir_of("t", 0).as_ref(), Some(&a));
        let resp = handle(&b, &ctx(), &request(&a.display().to_string(), "t", vec![0]));
        assert_eq!(codes(&resp), vec![("t".into(), 0, 0)], "there already");
    }

    /// Without ALTER on the cluster: CLUSTER_AUTHORIZATION_FAILED for every partition, and
    /// nothing moves.
    #[test]
    fn moving_needs_alter_on_the_cluster() {
        use crate::authorizer::test_support::{allow_cluster, ctx_of};
        let dir = tempfile::tempdir().expect("tempdir");
        let b = test_cluster::secured(dir.path());
        let req = request(&dir.path().display().to_string(), "t", vec![0, 1]);
        let alice = ctx_of("alice", KEY, 2);
        let resp = handle(&b, &alice, &req);
        let denied = ErrorCode::CLUSTER_AUTHORIZATION_FAILED.code();
        assert_eq!(
            codes(&resp),
            vec![("t".into(), 0, denied), ("t".into(), 1, denied)]
        );
        allow_cluster(&b, "User:alice", AclOperation::Alter);
        let resp = handle(&b, &alice, &req);
        assert!(codes(&resp).iter().all(|(_, _, c)| *c != denied));
    }
}
