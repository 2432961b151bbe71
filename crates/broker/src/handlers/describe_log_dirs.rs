//! DescribeLogDirs (key 35): this broker's log directory with the size of every partition it
//! hosts (`kafka-reassign-partitions.sh` reads it before a move; `kafka-log-dirs.sh`).
//!
//! One result per log directory (`log.dirs`, in order), each with the partitions it holds; a
//! partition's size is its log's size, the bytes of its segments' `.log` files (Kafka's
//! `UnifiedLog.size`: indexes, checkpoints and producer snapshots do not count). There are no
//! `offset_lag` of 0 (a leader's or caught-up replica's); a partition moving to another
//! directory (AlterReplicaLogDirs) also shows its copy there, `is_future_key` true, with the
//! offsets still to copy as its lag (Kafka's future replica).
//! A directory a storage failure took offline is answered with KAFKA_STORAGE_ERROR and nothing
//! else, as Kafka answers. v3 adds a top-level error code (0), v4 the total and usable
//! bytes of the directory's volume (statvfs, as Java's `FileStore` total and usable space; -1 if
//! it cannot be read), v5 `is_cordoned` (KIP-1066): whether `cordoned.log.dirs` names it.
//!
//! The principal needs DESCRIBE on the cluster (Kafka's `handleDescribeLogDirsRequest`).

use std::collections::{BTreeMap, BTreeSet};
use std::ops::RangeInclusive;
use std::path::{Path, PathBuf};

use gregor_metadata::AclOperation;
use gregor_protocol::error::ErrorCode;
use gregor_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use gregor_protocol::messages::ApiKey;
use gregor_protocol::messages::{DescribeLogDirsRequest, DescribeLogDirsResponse};

use super::{str_bytes, topic_name};
use crate::authorizer;
use crate::broker::Broker;
use crate::request::RequestContext;

/// The API this module serves.
pub const KEY: ApiKey = ApiKey::DescribeLogDirs;
/// The versions served (and advertised in ApiVersions).
pub const VERSIONS: RangeInclusive<i16> = 1..=5;

/// The total and usable bytes of the volume holding `dir`, or -1 each if unknown.
fn volume_bytes(dir: &Path) -> (i64, i64) {
    match rustix::fs::statvfs(dir) {
        Ok(st) => {
            let bytes =
                |blocks: u64| i64::try_from(blocks.saturating_mul(st.f_frsize)).unwrap_or(i64::MAX);
            (bytes(st.f_blocks), bytes(st.f_bavail))
        }
        Err(_) => (-1, -1),
    }
}

/// Handles a DescribeLogDirs request from the partitions hosted here. The principal needs
/// DESCRIBE on the cluster; without it the answer is empty with CLUSTER_AUTHORIZATION_FAILED
/// (v3+; older versions have no error code: only the empty list), as Kafka answers.
pub fn handle(
    broker: &Broker,
    ctx: &RequestContext,
    req: &DescribeLogDirsRequest,
) -> DescribeLogDirsResponse {
    if !authorizer::authorize_cluster(broker, ctx, AclOperation::Describe) {
        return DescribeLogDirsResponse::default()
            .with_error_code(ErrorCode::CLUSTER_AUTHORIZATION_FAILED.code());
    }
    let dirs = broker.replicas.log_dirs();
    let wanted: Option<BTreeSet<(String, i32)>> = req.topics.as_ref().map(|topics| {
        topics
            .iter()
            .flat_map(|t| t.partitions.iter().map(|&p| (t.topic.0.to_string(), p)))
            .collect()
    });
    // Each directory's topics, in name order, with their partitions.
    type Partitions = Vec<DescribeLogDirsPartition>;
    let mut by_dir: Vec<BTreeMap<String, Partitions>> = vec![BTreeMap::new(); dirs.len()];
    let wants = |topic: &str, p: i32| {
        wanted
            .as_ref()
            .is_none_or(|w| w.contains(&(topic.to_string(), p)))
    };
    let mut log_ends: BTreeMap<(String, i32), i64> = BTreeMap::new();
    // The moves before the placements: a move's swap changes the placement before the move
    // is forgotten, so this order never shows a partition back where it was with no move.
    let moves = broker.replicas.log_dir_moves();
    for t in broker.replicas.topics() {
        for (&p, part) in &t.partitions {
            if !wants(&t.name, p) {
                continue;
            }
            // A hosted partition always has its log on disk; were it missing, the main
            // directory is where it would be created first.
            let dir = broker
                .replicas
                .log_dir_of(&t.name, p)
                .and_then(|d| dirs.iter().position(|x| *x == d))
                .unwrap_or(0);
            // A log whose lock is poisoned (a panic mid-append) reports 0 rather than fail
            // the whole answer.
            let stats = part.log_stats();
            let size = stats.as_ref().map_or(0, |s| s.size_bytes);
            if let Some(s) = &stats {
                log_ends.insert((t.name.clone(), p), s.log_end_offset);
            }
            by_dir[dir].entry(t.name.clone()).or_default().push(
                DescribeLogDirsPartition::default()
                    .with_partition_index(p)
                    .with_partition_size(i64::try_from(size).unwrap_or(i64::MAX))
                    .with_offset_lag(0)
                    .with_is_future_key(false),
            );
        }
    }
    // A move under way: the copy in its destination, as Kafka's future replica, lagging the
    // log by the offsets still to copy.
    for m in moves {
        let Some(dir) = dirs.iter().position(|d| *d == m.dest) else {
            continue;
        };
        let Some(&end) = log_ends.get(&(m.tp.topic.clone(), m.tp.partition)) else {
            continue;
        };
        by_dir[dir].entry(m.tp.topic.clone()).or_default().push(
            DescribeLogDirsPartition::default()
                .with_partition_index(m.tp.partition)
                .with_partition_size(i64::try_from(m.copied_bytes).unwrap_or(i64::MAX))
                .with_offset_lag((end - m.copied_end).max(0))
                .with_is_future_key(true),
        );
    }
    let topics: Vec<Vec<DescribeLogDirsTopic>> = by_dir
        .into_iter()
        .map(|topics| {
            topics
                .into_iter()
                .map(|(name, mut partitions)| {
                    partitions.sort_by_key(|p| (p.partition_index, p.is_future_key));
                    DescribeLogDirsTopic::default()
                        .with_name(topic_name(&name))
                        .with_partitions(partitions)
                })
                .collect()
        })
        .collect();
    let offline = broker.replicas.offline_log_dirs();
    // As Kafka's: `is_cordoned` only from metadata.version 4.3-IV0 on.
    let cordoned =
        if gregor_metadata::controller::cordoned_log_dirs_supported(&broker.replicas.image()) {
            broker.replicas.cordoned_log_dirs()
        } else {
            Vec::new()
        };
    let results = dirs
        .iter()
        .zip(topics)
        .map(|(dir, topics)| {
            let absolute: PathBuf = std::path::absolute(dir).unwrap_or_else(|_| dir.clone());
            if offline.contains(dir) {
                // Kafka's answer for an offline directory: its error, nothing else.
                return DescribeLogDirsResult::default()
                    .with_log_dir(str_bytes(absolute.display().to_string()))
                    .with_error_code(ErrorCode::KAFKA_STORAGE_ERROR.code())
                    .with_total_bytes(-1)
                    .with_usable_bytes(-1);
            }
            let (total_bytes, usable_bytes) = volume_bytes(dir);
            DescribeLogDirsResult::default()
                .with_log_dir(str_bytes(absolute.display().to_string()))
                .with_topics(topics)
                .with_total_bytes(total_bytes)
                .with_usable_bytes(usable_bytes)
                .with_is_cordoned(cordoned.contains(dir))
        })
        .collect();
    DescribeLogDirsResponse::default()
        .with_error_code(0)
        .with_results(results)
}

#[cfg(test)]
mod tests {
    use super::*;
    use gregor_protocol::messages::describe_log_dirs_request::DescribableLogDirTopic;
    use gregor_protocol::protocol::{Decodable, Encodable};

    use crate::handlers::admin_common::test_cluster;

    fn ctx() -> RequestContext {
        RequestContext::for_test(KEY, 4)
    }

    #[test]
    fn lists_hosted_partitions_with_their_sizes_and_encodes_at_every_version() {
        let dir = tempfile::tempdir().expect("tempdir");
        let b = test_cluster::broker(dir.path());
        test_cluster::topic(&b, "t", &[vec![1], vec![2], vec![1]]);
        let all = handle(
            &b,
            &ctx(),
            &DescribeLogDirsRequest::default().with_topics(None),
        );
        assert_eq!(all.results.len(), 1);
        let names: Vec<String> = all.results[0]
            .topics
            .iter()
            .map(|t| t.name.0.to_string())
            .collect();
        assert_eq!(names, vec!["__consumer_offsets", "t"]);
        let t = &all.results[0].topics[1];
        let hosted: Vec<i32> = t.partitions.iter().map(|p| p.partition_index).collect();
        assert_eq!(hosted, vec![0, 2], "partition 1 lives on broker 2");
        assert!(t.partitions.iter().all(|p| p.partition_size == 0));
        // The size is the log's bytes: a batch written counts, the files beside it do not.
        let (topic, part) = b.replicas.partition("t", 2).expect("t-2 hosted here");
        part.append(&crate::partition::tests::batch(3), &topic.settings)
            .expect("append");
        let on_disk = std::fs::metadata(dir.path().join("t-2").join(format!("{:020}.log", 0)))
            .expect("the segment file")
            .len();
        assert!(on_disk > 0);
        let resp = handle(
            &b,
            &ctx(),
            &DescribeLogDirsRequest::default().with_topics(None),
        );
        let sizes: Vec<(i32, i64)> = resp.results[0].topics[1]
            .partitions
            .iter()
            .map(|p| (p.partition_index, p.partition_size))
            .collect();
        assert_eq!(
            sizes,
            vec![(0, 0), (2, i64::try_from(on_disk).expect("size"))]
        );
        let some = handle(
            &b,
            &ctx(),
            &DescribeLogDirsRequest::default().with_topics(Some(vec![
                DescribableLogDirTopic::default()
                    .with_topic(topic_name("t"))
                    .with_partitions(vec![2, 1]),
            ])),
        );
        let t = &some.results[0].topics;
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].partitions.len(), 1);
        assert_eq!(t[0].partitions[0].partition_index, 2);
        for v in VERSIONS {
            let mut buf = bytes::BytesMut::new();
            all.encode(&mut buf, v)
                .unwrap_or_else(|e| panic!("v{v}: {e}"));
        }
    }

    /// Several log directories: one result each, in `log.dirs` order, each listing the
    /// partitions whose logs are in it, every hosted partition in exactly one.
    #[test]
    fn one_result_per_log_directory_with_the_partitions_it_holds() {
        let root = tempfile::tempdir().expect("tempdir");
        let (a, c) = (root.path().join("a"), root.path().join("c"));
        let b = test_cluster::with_config(&a, |mut config| {
            config.extra_log_dirs = vec![c.clone()];
            config
        });
        test_cluster::topic(&b, "t", &[vec![1], vec![1], vec![1], vec![1], vec![2]]);
        let resp = handle(
            &b,
            &ctx(),
            &DescribeLogDirsRequest::default().with_topics(None),
        );
        let dirs: Vec<String> = resp.results.iter().map(|r| r.log_dir.to_string()).collect();
        assert_eq!(
            dirs,
            vec![a.display().to_string(), c.display().to_string()],
            "absolute, in log.dirs order"
        );
        let mut seen = Vec::new();
        for (r, dir) in resp.results.iter().zip([&a, &c]) {
            let t: Vec<i32> = r
                .topics
                .iter()
                .filter(|t| t.name.0.as_str() == "t")
                .flat_map(|t| t.partitions.iter().map(|p| p.partition_index))
                .collect();
            assert!(!t.is_empty(), "{} holds some of t: {resp:?}", dir.display());
            for p in t {
                assert!(
                    dir.join(format!("t-{p}")).is_dir(),
                    "t-{p} in {}",
                    dir.display()
                );
                seen.push(p);
            }
            assert!(r.total_bytes > 0);
        }
        seen.sort_unstable();
        assert_eq!(seen, vec![0, 1, 2, 3], "each hosted partition once");

        // A move registered, not run yet: the copy shows in its destination as the future
        // replica, everything still to copy; once run, only the partition, there.
        let (topic, part) = b.replicas.partition("t", 0).expect("t-0");
        part.append(&crate::partition::tests::batch(3), &topic.settings)
            .expect("append");
        let from = b.replicas.log_dir_of("t", 0).expect("on disk");
        let (to, to_index) = if from == a { (&c, 1) } else { (&a, 0) };
        let tp = gregor_storage::TopicPartition {
            topic: "t".into(),
            partition: 0,
        };
        let logs = b.replicas.log_manager();
        assert_eq!(
            logs.alter_dir(&tp, to_index).expect("move"),
            gregor_storage::MoveStart::Started
        );
        let t0 = |resp: &DescribeLogDirsResponse, dir: usize| -> Vec<(bool, i64)> {
            resp.results[dir]
                .topics
                .iter()
                .filter(|t| t.name.0.as_str() == "t")
                .flat_map(|t| t.partitions.iter())
                .filter(|p| p.partition_index == 0)
                .map(|p| (p.is_future_key, p.offset_lag))
                .collect()
        };
        let all = DescribeLogDirsRequest::default().with_topics(None);
        let resp = handle(&b, &ctx(), &all);
        assert_eq!(t0(&resp, to_index), vec![(true, 3)], "{resp:?}");
        assert_eq!(t0(&resp, 1 - to_index), vec![(false, 0)], "{resp:?}");
        logs.run_move(&tp, &|_| {}).expect("run the move");
        assert_eq!(b.replicas.log_dir_of("t", 0).as_ref(), Some(to));
        let resp = handle(&b, &ctx(), &all);
        assert_eq!(t0(&resp, to_index), vec![(false, 0)], "{resp:?}");
        assert!(t0(&resp, 1 - to_index).is_empty(), "{resp:?}");
    }

    /// A cordoned directory (`cordoned.log.dirs`) says so from v5, and takes no new partition.
    #[test]
    fn cordoned_directories_say_so() {
        let root = tempfile::tempdir().expect("tempdir");
        let (a, c) = (root.path().join("a"), root.path().join("c"));
        let b = test_cluster::with_config(&a, |mut config| {
            config.extra_log_dirs = vec![c.clone()];
            config.cordoned_log_dirs = vec![a.display().to_string()];
            config
        });
        test_cluster::topic(&b, "t", &[vec![1], vec![1]]);
        let resp = handle(
            &b,
            &ctx(),
            &DescribeLogDirsRequest::default().with_topics(None),
        );
        let flags: Vec<bool> = resp.results.iter().map(|r| r.is_cordoned).collect();
        assert_eq!(flags, vec![true, false]);
        assert_eq!(b.replicas.log_dir_of("t", 0).as_ref(), Some(&c));
        assert_eq!(b.replicas.log_dir_of("t", 1).as_ref(), Some(&c));

        // Below metadata.version 4.3-IV0 no directory says so, as in Kafka.
        b.replicas
            .apply_records(&[gregor_metadata::MetadataRecord::FeatureLevel(
                gregor_metadata::FeatureLevelRecord {
                    name: gregor_metadata::METADATA_VERSION_FEATURE.to_string(),
                    feature_level: gregor_metadata::controller::CORDONED_LOG_DIRS_METADATA_VERSION
                        - 1,
                },
            )]);
        let resp = handle(
            &b,
            &ctx(),
            &DescribeLogDirsRequest::default().with_topics(None),
        );
        let flags: Vec<bool> = resp.results.iter().map(|r| r.is_cordoned).collect();
        assert_eq!(flags, vec![false, false]);
    }

    /// v4's volume sizes are the data directory's volume (usable at most total), and v5's
    /// `is_cordoned` is on the wire, false: decoded back at v5 it is false, and v4's encoding
    /// is one byte per directory shorter.
    #[test]
    fn volume_sizes_and_is_cordoned_from_v4_and_v5() {
        let dir = tempfile::tempdir().expect("tempdir");
        let b = test_cluster::broker(dir.path());
        let resp = handle(
            &b,
            &ctx(),
            &DescribeLogDirsRequest::default().with_topics(None),
        );
        let r = &resp.results[0];
        assert!(r.total_bytes > 0, "total {}", r.total_bytes);
        assert!(
            (0..=r.total_bytes).contains(&r.usable_bytes),
            "usable {} of {}",
            r.usable_bytes,
            r.total_bytes
        );
        assert!(!r.is_cordoned);
        let encoded = |v: i16, resp: &DescribeLogDirsResponse| {
            let mut buf = bytes::BytesMut::new();
            resp.encode(&mut buf, v).expect("encode");
            buf.freeze()
        };
        let mut v5 = encoded(5, &resp);
        assert_eq!(v5.len(), encoded(4, &resp).len() + 1);
        let back = DescribeLogDirsResponse::decode(&mut v5, 5).expect("decode v5");
        assert!(!back.results[0].is_cordoned);
        assert_eq!(back.results[0].total_bytes, r.total_bytes);
        // The field is really there: a cordoned directory would decode as one.
        let cordoned = DescribeLogDirsResponse::default()
            .with_results(vec![DescribeLogDirsResult::default().with_is_cordoned(true)]);
        let back = DescribeLogDirsResponse::decode(&mut encoded(5, &cordoned), 5).expect("decode");
        assert!(back.results[0].is_cordoned);
    }

    /// With an authorizer: DESCRIBE on the cluster, else no directories and
    /// CLUSTER_AUTHORIZATION_FAILED.
    #[test]
    fn describing_log_dirs_needs_describe_on_the_cluster() {
        use crate::authorizer::test_support::{allow_cluster, ctx_of};
        let dir = tempfile::tempdir().expect("tempdir");
        let b = test_cluster::secured(dir.path());
        let req = DescribeLogDirsRequest::default().with_topics(None);
        let alice = ctx_of("alice", KEY, 4);
        let resp = handle(&b, &alice, &req);
        assert_eq!(
            resp.error_code,
            ErrorCode::CLUSTER_AUTHORIZATION_FAILED.code()
        );
        assert!(resp.results.is_empty());
        allow_cluster(&b, "User:alice", AclOperation::Describe);
        let resp = handle(&b, &alice, &req);
        assert_eq!(resp.error_code, 0);
        assert_eq!(resp.results.len(), 1);
    }
}
