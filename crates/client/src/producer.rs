//! Producer: picks a partition per record, builds one RecordBatch v2 per partition (with the
//! configured compression), sends one Produce request per partition leader, and maps each
//! record to its (partition, offset) or error. Retriable errors (leader moved, topic not yet
//! ready) refresh the metadata and try again a few times.
//!
//! ```text
//! records ─► partitioner ─► per-partition batches ─► group by leader ─► Produce ─► offsets
//!                                    ▲                                     │ retriable error
//!                                    └──────── metadata refresh ◄──────────┘
//! ```
//! Without idempotence a retry after a lost response can write a batch twice, as with the Java
//! client's `enable.idempotence=false`.

use crate::cluster::{Cluster, TopicMetadata};
use crate::connection::ClientConfig;
use crate::error::{ClientError, Result};
use crate::partitioner::{partition_for_key, StickyPartitioner};
use crate::records::{encode_batch_at, Compression, ProducerRecord};
use gregor_protocol::error::ErrorCode;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{ApiKey, ProduceRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use std::collections::BTreeMap;
use std::time::Duration;

/// Producer settings.
#[derive(Debug, Clone)]
pub struct ProducerConfig {
    /// `acks`: 0 (no response), 1 (leader), -1 (all in-sync replicas).
    pub acks: i16,
    /// Batch compression codec.
    pub compression: Compression,
    /// `compression.<codec>.level` (KIP-390); `None`: the codec's default.
    pub compression_level: Option<i32>,
    /// `allow.auto.create.topics` (the Java producer's default, true): metadata requests ask
    /// the broker to create a topic it does not have, as its `auto.create.topics.enable`
    /// allows.
    pub allow_auto_create_topics: bool,
    /// How long the broker may wait for replication (`timeout_ms` in Produce).
    pub ack_timeout: Duration,
    /// Retries of retriable errors, each after a metadata refresh.
    pub retries: u32,
    /// Pause before a retry (`retry.backoff.ms`).
    pub retry_backoff: Duration,
}

impl Default for ProducerConfig {
    fn default() -> Self {
        ProducerConfig {
            acks: -1,
            compression: Compression::None,
            compression_level: None,
            allow_auto_create_topics: true,
            ack_timeout: Duration::from_secs(30),
            retries: 5,
            retry_backoff: Duration::from_millis(100),
        }
    }
}

/// Parses `acks` as the tools spell it: `0`, `1`, `all` or `-1`.
pub fn parse_acks(s: &str) -> Result<i16> {
    match s {
        "0" => Ok(0),
        "1" => Ok(1),
        "all" | "-1" => Ok(-1),
        other => Err(ClientError::InvalidArgument(format!(
            "invalid acks {other:?} (0, 1, all or -1)"
        ))),
    }
}

/// Where a record was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordMetadata {
    /// Partition the record went to.
    pub partition: i32,
    /// Its offset; `None` with acks=0, where the broker does not answer.
    pub offset: Option<i64>,
}

/// A producer for any number of topics.
#[derive(Debug)]
pub struct Producer {
    cluster: Cluster,
    config: ProducerConfig,
    sticky: StickyPartitioner,
}

impl Producer {
    /// Connects to the cluster.
    pub async fn connect(
        bootstrap: &str,
        client: &ClientConfig,
        config: ProducerConfig,
    ) -> Result<Producer> {
        if !matches!(config.acks, -1..=1) {
            return Err(ClientError::InvalidArgument(format!(
                "invalid acks {}",
                config.acks
            )));
        }
        Ok(Producer {
            cluster: Cluster::connect(bootstrap, client).await?,
            config,
            sticky: StickyPartitioner::new(),
        })
    }

    /// The underlying cluster view.
    pub fn cluster(&mut self) -> &mut Cluster {
        &mut self.cluster
    }

    /// Sends one record and waits for its acknowledgement.
    pub async fn send(&mut self, topic: &str, record: ProducerRecord) -> Result<RecordMetadata> {
        let mut r = self.send_all(topic, std::slice::from_ref(&record)).await?;
        r.pop()
            .unwrap_or_else(|| Err(ClientError::InvalidArgument("no record".to_owned())))
    }

    /// Sends records to `topic` (one batch per partition) and returns one result per record,
    /// in input order. The outer error is for failures before anything could be sent (unknown
    /// topic, no connection).
    pub async fn send_all(
        &mut self,
        topic: &str,
        records: &[ProducerRecord],
    ) -> Result<Vec<Result<RecordMetadata>>> {
        let mut results: Vec<Option<Result<RecordMetadata>>> =
            (0..records.len()).map(|_| None).collect();
        if records.is_empty() {
            return Ok(Vec::new());
        }
        let mut meta = self.topic_with_retry(topic).await?;
        let num_partitions = meta.partitions.len() as i32;
        // Partition choice happens once: a retry must not move keyless records around.
        let mut by_partition: BTreeMap<i32, Vec<usize>> = BTreeMap::new();
        for (i, r) in records.iter().enumerate() {
            let p = match (r.partition, &r.key) {
                (Some(p), _) => p,
                (None, Some(k)) => partition_for_key(k, num_partitions),
                (None, None) => self.sticky.current(num_partitions),
            };
            if p < 0 || p >= num_partitions {
                results[i] = Some(Err(ClientError::InvalidArgument(format!(
                    "partition {p} does not exist (topic {topic} has {num_partitions})"
                ))));
                continue;
            }
            by_partition.entry(p).or_default().push(i);
        }
        self.sticky.next_batch();

        let now = now_ms();
        let mut attempt = 0;
        while !by_partition.is_empty() {
            let mut retry: BTreeMap<i32, Vec<usize>> = BTreeMap::new();
            let mut last_retriable: BTreeMap<i32, ClientError> = BTreeMap::new();
            // Group partitions by leader.
            let mut by_leader: BTreeMap<i32, Vec<i32>> = BTreeMap::new();
            for &p in by_partition.keys() {
                match Cluster::leader_of(&meta, p) {
                    Ok(l) => by_leader.entry(l).or_default().push(p),
                    Err(e) => {
                        last_retriable.insert(p, e);
                    }
                }
            }
            for (leader, parts) in by_leader {
                let outcome = self
                    .produce_to(leader, &meta, &parts, &by_partition, records, now)
                    .await;
                match outcome {
                    Ok(per_partition) => {
                        for (p, r) in per_partition {
                            let idx = &by_partition[&p];
                            match r {
                                Ok(base) => {
                                    for (n, &i) in idx.iter().enumerate() {
                                        results[i] = Some(Ok(RecordMetadata {
                                            partition: p,
                                            offset: base.map(|b| b + n as i64),
                                        }));
                                    }
                                }
                                Err(e) if e.is_retriable() => {
                                    last_retriable.insert(p, e);
                                }
                                Err(e) => {
                                    let msg = e.to_string();
                                    for &i in idx {
                                        results[i] = Some(Err(clone_err(&e, &msg)));
                                    }
                                }
                            }
                        }
                    }
                    Err(e) => {
                        let retriable = e.is_retriable();
                        let msg = e.to_string();
                        for p in parts {
                            if retriable {
                                last_retriable.insert(p, clone_err(&e, &msg));
                            } else {
                                for &i in &by_partition[&p] {
                                    results[i] = Some(Err(clone_err(&e, &msg)));
                                }
                            }
                        }
                    }
                }
            }
            for (p, e) in last_retriable {
                if attempt < self.config.retries {
                    tracing::debug!(topic, partition = p, error = %e, attempt, "retrying produce");
                    if let Some(idx) = by_partition.remove(&p) {
                        retry.insert(p, idx);
                    }
                } else {
                    let msg = e.to_string();
                    for &i in by_partition.get(&p).map(Vec::as_slice).unwrap_or(&[]) {
                        results[i] = Some(Err(clone_err(&e, &msg)));
                    }
                }
            }
            by_partition = retry;
            if by_partition.is_empty() {
                break;
            }
            attempt += 1;
            tokio::time::sleep(self.config.retry_backoff).await;
            meta = self.cluster.topic(topic, true).await?;
        }
        Ok(results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(ClientError::Other("record was not sent".to_owned()))))
            .collect())
    }

    /// Looks a topic up, waiting briefly for a topic that is still being created.
    async fn topic_with_retry(&mut self, topic: &str) -> Result<TopicMetadata> {
        let mut attempt = 0;
        loop {
            let auto_create = self.config.allow_auto_create_topics;
            match self
                .cluster
                .topic_creating(topic, attempt > 0, auto_create)
                .await
            {
                Ok(t) if !t.partitions.is_empty() => return Ok(t),
                Ok(_) if attempt < self.config.retries => {}
                Ok(_) => {
                    return Err(ClientError::Kafka {
                        code: ErrorCode::LEADER_NOT_AVAILABLE,
                        message: Some("topic has no partitions yet".to_owned()),
                        context: format!("topic {topic}"),
                    })
                }
                Err(e)
                    if e.code() == Some(ErrorCode::LEADER_NOT_AVAILABLE)
                        && attempt < self.config.retries => {}
                Err(e) => return Err(e),
            }
            attempt += 1;
            tokio::time::sleep(self.config.retry_backoff).await;
        }
    }

    /// One Produce request to `leader` for `parts`; per partition the base offset (`None` with
    /// acks=0) or the partition's error.
    async fn produce_to(
        &mut self,
        leader: i32,
        meta: &TopicMetadata,
        parts: &[i32],
        by_partition: &BTreeMap<i32, Vec<usize>>,
        records: &[ProducerRecord],
        now: i64,
    ) -> Result<Vec<(i32, Result<Option<i64>>)>> {
        let compression = self.config.compression;
        let level = self.config.compression_level;
        let acks = self.config.acks;
        let timeout_ms = i32::try_from(self.config.ack_timeout.as_millis()).unwrap_or(i32::MAX);
        let conn = self.cluster.broker(leader).await?;
        // Produce v13 addresses topics by id; without a known id stay below it.
        let cap = if meta.topic_id.is_nil() { 12 } else { i16::MAX };
        let version = conn.version_at_most(ApiKey::Produce, cap)?;

        let mut td = TopicProduceData::default();
        if version >= 13 {
            td.topic_id = meta.topic_id;
        } else {
            td.name = TopicName(StrBytes::from_string(meta.name.clone()));
        }
        for &p in parts {
            let idx = by_partition.get(&p).map(Vec::as_slice).unwrap_or(&[]);
            let batch: Vec<&ProducerRecord> = idx.iter().map(|&i| &records[i]).collect();
            let bytes = encode_batch_at(&batch, compression, level, now)?;
            td.partition_data.push(
                PartitionProduceData::default()
                    .with_index(p)
                    .with_records(Some(bytes)),
            );
        }
        let req = ProduceRequest::default()
            .with_acks(acks)
            .with_timeout_ms(timeout_ms)
            .with_topic_data(vec![td]);
        if acks == 0 {
            conn.send_no_response(&req, version).await?;
            return Ok(parts.iter().map(|&p| (p, Ok(None))).collect());
        }
        let limit = self.config.ack_timeout + Duration::from_secs(5);
        let resp = conn.send_at_with_timeout(&req, version, limit).await?;
        let mut out = Vec::new();
        for &p in parts {
            let pr = resp
                .responses
                .iter()
                .flat_map(|t| t.partition_responses.iter())
                .find(|r| r.index == p);
            let r = match pr {
                None => Err(ClientError::Protocol {
                    addr: conn.addr().to_owned(),
                    message: format!("Produce response lacks partition {}-{p}", meta.name),
                }),
                Some(r) => ClientError::check(r.error_code, r.error_message.as_deref(), || {
                    format!("produce to {}-{p}", meta.name)
                })
                .map(|()| Some(r.base_offset)),
            };
            out.push((p, r));
        }
        Ok(out)
    }
}

/// Errors are not `Clone` (they may hold an `io::Error`); a per-record copy keeps the Kafka code
/// and the text.
fn clone_err(e: &ClientError, msg: &str) -> ClientError {
    match e {
        ClientError::Kafka {
            code,
            message,
            context,
        } => ClientError::Kafka {
            code: *code,
            message: message.clone(),
            context: context.clone(),
        },
        _ => ClientError::Other(msg.to_owned()),
    }
}

pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acks_parse() {
        assert_eq!(parse_acks("all").expect("all"), -1);
        assert_eq!(parse_acks("-1").expect("-1"), -1);
        assert_eq!(parse_acks("0").expect("0"), 0);
        assert!(parse_acks("2").is_err());
    }
}
