//! DescribeLogDirs (key 35): this broker's log directory with the size of every partition it
//! hosts (`kafka-reassign-partitions.sh` reads it before a move; `kafka-log-dirs.sh`).
//!
//! gregor has one log directory (`log.dirs`' first entry); a partition's size is the sum of
//! its files' sizes on disk. There are no future (moving between directories) logs, so
//! `offset_lag` is 0 and `is_future_key` false; the volume's total and usable bytes (v4) are
//! -1 (unknown).

use std::collections::BTreeSet;
use std::ops::RangeInclusive;
use std::path::Path;

use gregor_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use gregor_protocol::messages::ApiKey;
use gregor_protocol::messages::{DescribeLogDirsRequest, DescribeLogDirsResponse};

use super::{str_bytes, topic_name};
use crate::broker::Broker;

/// The API this module serves.
pub const KEY: ApiKey = ApiKey::DescribeLogDirs;
/// The versions served (and advertised in ApiVersions).
pub const VERSIONS: RangeInclusive<i16> = 1..=4;

/// Bytes of the regular files directly in `dir` (0 if it cannot be read).
fn dir_size(dir: &Path) -> i64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .filter_map(|e| e.metadata().ok())
        .filter(|m| m.is_file())
        .map(|m| i64::try_from(m.len()).unwrap_or(i64::MAX))
        .fold(0i64, i64::saturating_add)
}

/// Handles a DescribeLogDirs request from the partitions hosted here.
pub fn handle(broker: &Broker, req: &DescribeLogDirsRequest) -> DescribeLogDirsResponse {
    let data_dir = &broker.config.data_dir;
    let wanted: Option<BTreeSet<(String, i32)>> = req.topics.as_ref().map(|topics| {
        topics
            .iter()
            .flat_map(|t| t.partitions.iter().map(|&p| (t.topic.0.to_string(), p)))
            .collect()
    });
    let mut topics: Vec<DescribeLogDirsTopic> = Vec::new();
    let mut hosted = broker.replicas.topics();
    hosted.sort_by(|a, b| a.name.cmp(&b.name));
    for t in hosted {
        let partitions: Vec<DescribeLogDirsPartition> = t
            .partitions
            .keys()
            .filter(|&&p| {
                wanted
                    .as_ref()
                    .is_none_or(|w| w.contains(&(t.name.clone(), p)))
            })
            .map(|&p| {
                DescribeLogDirsPartition::default()
                    .with_partition_index(p)
                    .with_partition_size(dir_size(&data_dir.join(format!("{}-{p}", t.name))))
                    .with_offset_lag(0)
                    .with_is_future_key(false)
            })
            .collect();
        if !partitions.is_empty() {
            topics.push(
                DescribeLogDirsTopic::default()
                    .with_name(topic_name(&t.name))
                    .with_partitions(partitions),
            );
        }
    }
    let absolute = std::path::absolute(data_dir).unwrap_or_else(|_| data_dir.clone());
    DescribeLogDirsResponse::default().with_results(vec![DescribeLogDirsResult::default()
        .with_log_dir(str_bytes(absolute.display().to_string()))
        .with_topics(topics)
        .with_total_bytes(-1)
        .with_usable_bytes(-1)])
}

#[cfg(test)]
mod tests {
    use super::*;
    use gregor_protocol::messages::describe_log_dirs_request::DescribableLogDirTopic;
    use gregor_protocol::protocol::Encodable;

    use crate::handlers::admin_common::test_cluster;

    #[test]
    fn lists_hosted_partitions_with_their_sizes_and_encodes_at_every_version() {
        let dir = tempfile::tempdir().expect("tempdir");
        let b = test_cluster::broker(dir.path());
        test_cluster::topic(&b, "t", &[vec![1], vec![2], vec![1]]);
        let all = handle(&b, &DescribeLogDirsRequest::default().with_topics(None));
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
        assert!(t.partitions.iter().all(|p| p.partition_size >= 0));
        let some = handle(
            &b,
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
}
