//! Log admin operations as more [`Admin`] methods: DeleteRecords (the AdminClient's
//! `deleteRecords`, `kafka-delete-records.sh`) and DescribeProducers (`describeProducers`,
//! `kafka-transactions.sh describe-producers`), sent to the partition's leader, and
//! DescribeLogDirs (`describeLogDirs`, `kafka-log-dirs.sh`) and AlterReplicaLogDirs
//! (`alterReplicaLogDirs`, `kafka-reassign-partitions.sh` with `log_dirs`), sent to each broker.

use std::time::Duration;

use kafka_protocol::messages::alter_replica_log_dirs_request::{
    AlterReplicaLogDir, AlterReplicaLogDirTopic,
};
use kafka_protocol::messages::delete_records_request::{
    DeleteRecordsPartition, DeleteRecordsTopic,
};
use kafka_protocol::messages::describe_producers_request::TopicRequest;
use kafka_protocol::messages::{
    AlterReplicaLogDirsRequest, ApiKey, DeleteRecordsRequest, DescribeLogDirsRequest,
    DescribeProducersRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use crate::admin::Admin;
use crate::cluster::Cluster;
use crate::error::{ClientError, Result};

/// How long the leader may wait for its followers to follow a new log start.
const DELETE_TIMEOUT: Duration = Duration::from_secs(30);

/// One partition in a broker's log directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogDirPartition {
    /// Topic name.
    pub topic: String,
    /// Partition index.
    pub partition: i32,
    /// Size of its files on disk.
    pub size_bytes: i64,
    /// How far a future replica is behind (0: none).
    pub offset_lag: i64,
    /// Whether this is a future replica: the copy of a partition moving into this directory.
    pub is_future: bool,
}

/// One log directory of a broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogDir {
    /// The broker.
    pub broker: i32,
    /// The directory's path on the broker.
    pub path: String,
    /// Its error, if the broker reports one.
    pub error: Option<String>,
    /// The partitions in it, sorted.
    pub partitions: Vec<LogDirPartition>,
}

/// An active producer of a partition, as DescribeProducers reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveProducer {
    /// Producer id.
    pub producer_id: i64,
    /// Its current epoch.
    pub producer_epoch: i32,
    /// The last sequence number the partition accepted from it.
    pub last_sequence: i32,
    /// The timestamp of its last batch (ms).
    pub last_timestamp: i64,
    /// The epoch of the transaction coordinator that wrote its last marker (-1: none).
    pub coordinator_epoch: i32,
    /// The first offset of its open transaction (-1: none).
    pub current_txn_start_offset: i64,
}

impl Admin {
    /// The active producers of `topic`'s `partition`, on its leader.
    pub async fn describe_producers(
        &mut self,
        topic: &str,
        partition: i32,
    ) -> Result<Vec<ActiveProducer>> {
        let meta = self.cluster().topic(topic, true).await?;
        let leader = Cluster::leader_of(&meta, partition)?;
        let conn = self.cluster().broker(leader).await?;
        let version = conn.version(ApiKey::DescribeProducers)?;
        let req = DescribeProducersRequest::default().with_topics(vec![TopicRequest::default()
            .with_name(TopicName(StrBytes::from_string(topic.to_owned())))
            .with_partition_indexes(vec![partition])]);
        let resp = conn.send_at(&req, version).await?;
        let p = resp
            .topics
            .iter()
            .filter(|t| t.name.0.as_str() == topic)
            .flat_map(|t| t.partitions.iter())
            .find(|p| p.partition_index == partition)
            .ok_or_else(|| ClientError::Protocol {
                addr: String::new(),
                message: format!("DescribeProducers has no result for {topic}-{partition}"),
            })?;
        ClientError::check(p.error_code, p.error_message.as_deref(), || {
            format!("describe the producers of {topic}-{partition}")
        })?;
        Ok(p.active_producers
            .iter()
            .map(|a| ActiveProducer {
                producer_id: a.producer_id.0,
                producer_epoch: a.producer_epoch,
                last_sequence: a.last_sequence,
                last_timestamp: a.last_timestamp,
                coordinator_epoch: a.coordinator_epoch,
                current_txn_start_offset: a.current_txn_start_offset,
            })
            .collect())
    }

    /// Deletes the records of `topic`'s `partition` below `before` (-1: up to the high
    /// watermark), on its leader; answers the new low watermark (log start offset).
    pub async fn delete_records(
        &mut self,
        topic: &str,
        partition: i32,
        before: i64,
    ) -> Result<i64> {
        let limit = DELETE_TIMEOUT + self.cluster().config().request_timeout;
        let meta = self.cluster().topic(topic, true).await?;
        let leader = Cluster::leader_of(&meta, partition)?;
        let conn = self.cluster().broker(leader).await?;
        let version = conn.version(ApiKey::DeleteRecords)?;
        let req = DeleteRecordsRequest::default()
            .with_timeout_ms(i32::try_from(DELETE_TIMEOUT.as_millis()).unwrap_or(i32::MAX))
            .with_topics(vec![DeleteRecordsTopic::default()
                .with_name(TopicName(StrBytes::from_string(topic.to_owned())))
                .with_partitions(vec![DeleteRecordsPartition::default()
                    .with_partition_index(partition)
                    .with_offset(before)])]);
        let resp = conn.send_at_with_timeout(&req, version, limit).await?;
        let p = resp
            .topics
            .iter()
            .filter(|t| t.name.0.as_str() == topic)
            .flat_map(|t| t.partitions.iter())
            .find(|p| p.partition_index == partition)
            .ok_or_else(|| ClientError::Protocol {
                addr: String::new(),
                message: format!("DeleteRecords response has no result for {topic}-{partition}"),
            })?;
        ClientError::check(p.error_code, None, || {
            format!("delete records of {topic}-{partition} before {before}")
        })?;
        Ok(p.low_watermark)
    }

    /// The log directories of `broker` with their partitions.
    pub async fn describe_log_dirs(&mut self, broker: i32) -> Result<Vec<LogDir>> {
        self.cluster().metadata(Some(&[])).await?;
        let conn = self.cluster().broker(broker).await?;
        let version = conn.version(ApiKey::DescribeLogDirs)?;
        // Null topics: every partition.
        let req = DescribeLogDirsRequest::default().with_topics(None);
        let resp = conn.send_at(&req, version).await?;
        ClientError::check(resp.error_code, None, || {
            format!("describe the log directories of broker {broker}")
        })?;
        Ok(resp
            .results
            .into_iter()
            .map(|d| {
                let mut partitions: Vec<LogDirPartition> = d
                    .topics
                    .iter()
                    .flat_map(|t| {
                        t.partitions.iter().map(|p| LogDirPartition {
                            topic: t.name.0.to_string(),
                            partition: p.partition_index,
                            size_bytes: p.partition_size,
                            offset_lag: p.offset_lag,
                            is_future: p.is_future_key,
                        })
                    })
                    .collect();
                partitions.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
                LogDir {
                    broker,
                    path: d.log_dir.to_string(),
                    error: (d.error_code != 0)
                        .then(|| gregor_protocol::error::ErrorCode(d.error_code).to_string()),
                    partitions,
                }
            })
            .collect())
    }

    /// Moves `topic`-`partition`'s log on `broker` to its log directory `dir`
    /// (AlterReplicaLogDirs); the move runs on the broker, DescribeLogDirs shows it.
    pub async fn alter_replica_log_dir(
        &mut self,
        broker: i32,
        dir: &str,
        topic: &str,
        partition: i32,
    ) -> Result<()> {
        self.cluster().metadata(Some(&[])).await?;
        let conn = self.cluster().broker(broker).await?;
        let version = conn.version(ApiKey::AlterReplicaLogDirs)?;
        let req =
            AlterReplicaLogDirsRequest::default().with_dirs(vec![AlterReplicaLogDir::default()
                .with_path(StrBytes::from_string(dir.to_string()))
                .with_topics(vec![AlterReplicaLogDirTopic::default()
                    .with_name(TopicName(StrBytes::from_string(topic.to_string())))
                    .with_partitions(vec![partition])])]);
        let resp = conn.send_at(&req, version).await?;
        let code = resp
            .results
            .iter()
            .filter(|t| t.topic_name.0.as_str() == topic)
            .flat_map(|t| t.partitions.iter())
            .find(|p| p.partition_index == partition)
            .map(|p| p.error_code)
            .ok_or_else(|| ClientError::Protocol {
                addr: String::new(),
                message: format!(
                    "AlterReplicaLogDirs response has no result for {topic}-{partition}"
                ),
            })?;
        ClientError::check(code, None, || {
            format!("move {topic}-{partition} on broker {broker} to {dir}")
        })
    }
}
