//! Consumer without a group: the caller assigns partitions of one topic and a start position
//! (ListOffsets for earliest / latest / by timestamp), then `poll` sends one Fetch per partition
//! leader, decodes the batches (any codec) and advances each partition's position.
//!
//! ```text
//! assign(topic, partitions, start) ─► ListOffsets ─► positions
//! poll() ─► Fetch(positions, max_wait, min_bytes) per leader ─► decode ─► records, positions += n
//! ```

use crate::cluster::{Cluster, TopicMetadata};
use crate::connection::ClientConfig;
use crate::error::{ClientError, Result};
use crate::records::{decode_record_set, ConsumerRecord};
use gregor_protocol::error::ErrorCode;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{ApiKey, BrokerId, FetchRequest, ListOffsetsRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use std::collections::BTreeMap;
use std::time::Duration;

/// Where to start reading a partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetSpec {
    /// The log start offset (ListOffsets timestamp -2).
    Earliest,
    /// The log end offset: only new records (ListOffsets timestamp -1).
    Latest,
    /// The first offset whose timestamp is at or after this many ms since the epoch.
    Timestamp(i64),
    /// An explicit offset.
    Offset(i64),
}

impl OffsetSpec {
    /// Parses `earliest`, `latest`, `@<timestamp-ms>` or a non-negative offset.
    pub fn parse(s: &str) -> Result<OffsetSpec> {
        match s {
            "earliest" | "beginning" => Ok(OffsetSpec::Earliest),
            "latest" | "end" => Ok(OffsetSpec::Latest),
            _ => {
                if let Some(ts) = s.strip_prefix('@') {
                    return ts.parse().map(OffsetSpec::Timestamp).map_err(|_| {
                        ClientError::InvalidArgument(format!("invalid timestamp {ts:?}"))
                    });
                }
                match s.parse::<i64>() {
                    Ok(n) if n >= 0 => Ok(OffsetSpec::Offset(n)),
                    _ => Err(ClientError::InvalidArgument(format!(
                        "invalid offset {s:?} (a number, earliest, latest or @timestamp-ms)"
                    ))),
                }
            }
        }
    }
}

/// Consumer settings.
#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    /// `fetch.max.wait.ms`: how long the broker may hold a Fetch for `min_bytes`.
    pub max_wait: Duration,
    /// `fetch.min.bytes`.
    pub min_bytes: i32,
    /// `fetch.max.bytes` per response.
    pub max_bytes: i32,
    /// `max.partition.fetch.bytes`.
    pub partition_max_bytes: i32,
    /// 0 = read_uncommitted, 1 = read_committed.
    pub isolation_level: i8,
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        ConsumerConfig {
            max_wait: Duration::from_millis(500),
            min_bytes: 1,
            max_bytes: 50 * 1024 * 1024,
            partition_max_bytes: 1024 * 1024,
            isolation_level: 0,
        }
    }
}

/// A consumer of explicitly assigned partitions of one topic.
#[derive(Debug)]
pub struct Consumer {
    cluster: Cluster,
    config: ConsumerConfig,
    /// The assigned topic's layout (`None` before `assign`).
    topic: Option<TopicMetadata>,
    /// Next offset to fetch, per assigned partition.
    positions: BTreeMap<i32, i64>,
    /// High watermark from the last fetch, per partition.
    high_watermarks: BTreeMap<i32, i64>,
}

impl Consumer {
    /// Connects to the cluster.
    pub async fn connect(
        bootstrap: &str,
        client: &ClientConfig,
        config: ConsumerConfig,
    ) -> Result<Consumer> {
        Ok(Consumer {
            cluster: Cluster::connect(bootstrap, client).await?,
            config,
            topic: None,
            positions: BTreeMap::new(),
            high_watermarks: BTreeMap::new(),
        })
    }

    /// The underlying cluster view.
    pub fn cluster(&mut self) -> &mut Cluster {
        &mut self.cluster
    }

    /// Resolves `spec` for `partitions` of `topic` with ListOffsets, sent to each leader. A
    /// retriable error (a leader that moved, or one just elected whose high watermark has not
    /// caught up: OFFSET_NOT_AVAILABLE) is retried after a metadata refresh, within the
    /// request timeout, as Kafka's consumer does.
    pub async fn list_offsets(
        &mut self,
        topic: &str,
        partitions: &[i32],
        spec: OffsetSpec,
    ) -> Result<BTreeMap<i32, i64>> {
        let ts = match spec {
            OffsetSpec::Offset(n) => return Ok(partitions.iter().map(|&p| (p, n)).collect()),
            OffsetSpec::Earliest => -2,
            OffsetSpec::Latest => -1,
            OffsetSpec::Timestamp(t) => t,
        };
        let deadline = tokio::time::Instant::now() + self.cluster.config().request_timeout;
        let mut refresh = false;
        let mut backoff = Duration::from_millis(50);
        loop {
            match self.list_offsets_once(topic, partitions, ts, refresh).await {
                Err(e) if e.is_retriable() && tokio::time::Instant::now() + backoff < deadline => {
                    tracing::debug!(topic, error = %e, "list offsets failed; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(1));
                    refresh = true;
                }
                result => return result,
            }
        }
    }

    /// One round of [`list_offsets`](Self::list_offsets) for the timestamp `ts`.
    async fn list_offsets_once(
        &mut self,
        topic: &str,
        partitions: &[i32],
        ts: i64,
        refresh: bool,
    ) -> Result<BTreeMap<i32, i64>> {
        let meta = self.cluster.topic(topic, refresh).await?;
        let mut by_leader: BTreeMap<i32, Vec<i32>> = BTreeMap::new();
        for &p in partitions {
            by_leader
                .entry(Cluster::leader_of(&meta, p)?)
                .or_default()
                .push(p);
        }
        let timeout_ms =
            i32::try_from(self.cluster.config().request_timeout.as_millis()).unwrap_or(i32::MAX);
        let isolation = self.config.isolation_level;
        let mut out = BTreeMap::new();
        for (leader, parts) in by_leader {
            let conn = self.cluster.broker(leader).await?;
            let version = conn.version(ApiKey::ListOffsets)?;
            let mut t = ListOffsetsTopic::default();
            t.name = TopicName(StrBytes::from_string(topic.to_owned()));
            t.partitions = parts
                .iter()
                .map(|&p| {
                    ListOffsetsPartition::default()
                        .with_partition_index(p)
                        .with_timestamp(ts)
                })
                .collect();
            let mut req = ListOffsetsRequest::default();
            // -1: an ordinary consumer, not a follower (the schema default is 0, a broker id).
            req.replica_id = BrokerId(-1);
            if version >= 2 {
                req.isolation_level = isolation;
            }
            if version >= 10 {
                req.timeout_ms = timeout_ms;
            }
            req.topics.push(t);
            let resp = conn.send_at(&req, version).await?;
            for t in resp.topics {
                for p in t.partitions {
                    ClientError::check(p.error_code, None, || {
                        format!("list offsets of {topic}-{}", p.partition_index)
                    })?;
                    // A timestamp after the last record answers -1: start at the end then.
                    out.insert(p.partition_index, p.offset);
                }
            }
        }
        if out.values().any(|&o| o < 0) {
            let ends = Box::pin(self.list_offsets(topic, partitions, OffsetSpec::Latest)).await?;
            for (p, o) in out.iter_mut() {
                if *o < 0 {
                    *o = ends.get(p).copied().unwrap_or(0);
                }
            }
        }
        for p in partitions {
            if !out.contains_key(p) {
                return Err(ClientError::Protocol {
                    addr: String::new(),
                    message: format!("ListOffsets response lacks partition {topic}-{p}"),
                });
            }
        }
        Ok(out)
    }

    /// Assigns `partitions` of `topic` (all partitions when `None`), each starting at `start`.
    /// Returns the assigned partitions.
    pub async fn assign(
        &mut self,
        topic: &str,
        partitions: Option<&[i32]>,
        start: OffsetSpec,
    ) -> Result<Vec<i32>> {
        let meta = self.cluster.topic(topic, true).await?;
        let all: Vec<i32> = meta.partitions.iter().map(|p| p.partition).collect();
        let chosen = match partitions {
            None => all,
            Some(ps) => {
                for p in ps {
                    if !all.contains(p) {
                        return Err(ClientError::InvalidArgument(format!(
                            "partition {p} does not exist (topic {topic} has {})",
                            all.len()
                        )));
                    }
                }
                ps.to_vec()
            }
        };
        self.positions = self.list_offsets(topic, &chosen, start).await?;
        self.high_watermarks.clear();
        self.topic = Some(meta);
        Ok(chosen)
    }

    /// Next offset to fetch, per assigned partition.
    pub fn positions(&self) -> &BTreeMap<i32, i64> {
        &self.positions
    }

    /// High watermarks seen in the last fetch responses.
    pub fn high_watermarks(&self) -> &BTreeMap<i32, i64> {
        &self.high_watermarks
    }

    /// Moves a partition's position.
    pub fn seek(&mut self, partition: i32, offset: i64) {
        self.positions.insert(partition, offset);
    }

    /// One fetch round: a Fetch to each leader of the assigned partitions; waits up to
    /// `max_wait` on the broker when nothing is there. Returns records in partition order.
    pub async fn poll(&mut self) -> Result<Vec<ConsumerRecord>> {
        let Some(meta) = self.topic.clone() else {
            return Err(ClientError::InvalidArgument(
                "poll before assign".to_owned(),
            ));
        };
        let mut by_leader: BTreeMap<i32, Vec<i32>> = BTreeMap::new();
        let mut stale = false;
        for &p in self.positions.keys() {
            match Cluster::leader_of(&meta, p) {
                Ok(l) => by_leader.entry(l).or_default().push(p),
                Err(e) if e.is_retriable() => stale = true,
                Err(e) => return Err(e),
            }
        }
        let mut out = Vec::new();
        for (leader, parts) in by_leader {
            match self.fetch_from(leader, &meta, &parts).await {
                Ok(mut recs) => out.append(&mut recs),
                Err(e) if e.is_retriable() => {
                    tracing::debug!(leader, error = %e, "fetch failed; refreshing metadata");
                    stale = true;
                }
                Err(e) => return Err(e),
            }
        }
        if stale {
            tokio::time::sleep(Duration::from_millis(100)).await;
            self.topic = Some(self.cluster.topic(&meta.name, true).await?);
        }
        Ok(out)
    }

    async fn fetch_from(
        &mut self,
        leader: i32,
        meta: &TopicMetadata,
        parts: &[i32],
    ) -> Result<Vec<ConsumerRecord>> {
        let cfg = self.config.clone();
        let request_timeout = self.cluster.config().request_timeout;
        let conn = self.cluster.broker(leader).await?;
        // Fetch v13 addresses topics by id; without a known id stay below it.
        let cap = if meta.topic_id.is_nil() { 12 } else { i16::MAX };
        let version = conn.version_at_most(ApiKey::Fetch, cap)?;
        let mut t = FetchTopic::default();
        if version >= 13 {
            t.topic_id = meta.topic_id;
        } else {
            t.topic = TopicName(StrBytes::from_string(meta.name.clone()));
        }
        for &p in parts {
            let offset = self.positions.get(&p).copied().unwrap_or(0);
            t.partitions.push(
                FetchPartition::default()
                    .with_partition(p)
                    .with_fetch_offset(offset)
                    .with_partition_max_bytes(cfg.partition_max_bytes),
            );
        }
        let mut req = FetchRequest::default()
            .with_max_wait_ms(i32::try_from(cfg.max_wait.as_millis()).unwrap_or(i32::MAX))
            .with_min_bytes(cfg.min_bytes)
            .with_max_bytes(cfg.max_bytes)
            .with_isolation_level(cfg.isolation_level)
            .with_topics(vec![t]);
        if version >= 15 {
            // Consumers identify by replica_state (default: replica -1) from v15 on.
            req.replica_id = BrokerId(-1);
        }
        let limit = cfg.max_wait + request_timeout;
        let resp = conn.send_at_with_timeout(&req, version, limit).await?;
        ClientError::check(resp.error_code, None, || {
            format!("fetch from broker {leader}")
        })?;
        let mut out = Vec::new();
        for t in resp.responses {
            for p in t.partitions {
                let partition = p.partition_index;
                let Some(&position) = self.positions.get(&partition) else {
                    continue;
                };
                if p.error_code == ErrorCode::OFFSET_OUT_OF_RANGE.0 {
                    return Err(ClientError::Kafka {
                        code: ErrorCode(p.error_code),
                        message: Some(format!(
                            "offset {position} is outside the log (log start {}, high watermark {})",
                            p.log_start_offset, p.high_watermark
                        )),
                        context: format!("fetch {}-{partition}", meta.name),
                    });
                }
                ClientError::check(p.error_code, None, || {
                    format!("fetch {}-{partition}", meta.name)
                })?;
                self.high_watermarks.insert(partition, p.high_watermark);
                let Some(records) = p.records else {
                    continue;
                };
                let decoded = decode_record_set(&meta.name, partition, &records, position)?;
                if let Some(next) = decoded.next_offset {
                    if next > position {
                        self.positions.insert(partition, next);
                    }
                }
                out.extend(decoded.records);
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::{BufMut, BytesMut};
    use kafka_protocol::messages::api_versions_response::ApiVersion;
    use kafka_protocol::messages::list_offsets_response::{
        ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
    };
    use kafka_protocol::messages::metadata_response::{
        MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
    };
    use kafka_protocol::messages::{
        ApiVersionsResponse, ListOffsetsResponse, MetadataResponse, ResponseHeader,
    };
    use kafka_protocol::protocol::{Encodable, HeaderVersion};
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A scripted broker (node 1, leader of `t`-0) whose ListOffsets answers the codes of
    /// `answers` in turn, then offset 42; counts the ListOffsets it was sent.
    async fn scripted_broker(answers: Vec<i16>) -> (String, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let asked = Arc::new(AtomicUsize::new(0));
        let count = Arc::clone(&asked);
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                let count = Arc::clone(&count);
                let answers = answers.clone();
                tokio::spawn(async move {
                    loop {
                        let mut len = [0u8; 4];
                        if s.read_exact(&mut len).await.is_err() {
                            return;
                        }
                        let mut buf = vec![0u8; i32::from_be_bytes(len) as usize];
                        s.read_exact(&mut buf).await.expect("body");
                        let mut body = bytes::Bytes::from(buf);
                        let h =
                            kafka_protocol::protocol::decode_request_header_from_buffer(&mut body)
                                .expect("header");
                        let v = h.request_api_version;
                        let mut out = BytesMut::new();
                        out.put_i32(0);
                        let header =
                            ResponseHeader::default().with_correlation_id(h.correlation_id);
                        let api = |k: ApiKey| {
                            ApiVersion::default()
                                .with_api_key(k as i16)
                                .with_min_version(0)
                                .with_max_version(k.valid_versions().max)
                        };
                        match ApiKey::try_from(h.request_api_key).expect("api key") {
                            ApiKey::ApiVersions => {
                                header.encode(&mut out, 0).expect("header");
                                ApiVersionsResponse::default()
                                    .with_api_keys(vec![
                                        api(ApiKey::ApiVersions),
                                        api(ApiKey::Metadata),
                                        api(ApiKey::ListOffsets),
                                    ])
                                    .encode(&mut out, v)
                                    .expect("encode");
                            }
                            ApiKey::Metadata => {
                                header
                                    .encode(&mut out, MetadataResponse::header_version(v))
                                    .expect("header");
                                MetadataResponse::default()
                                    .with_brokers(vec![MetadataResponseBroker::default()
                                        .with_node_id(BrokerId(1))
                                        .with_host(StrBytes::from_string(addr.ip().to_string()))
                                        .with_port(i32::from(addr.port()))])
                                    .with_topics(vec![MetadataResponseTopic::default()
                                        .with_name(Some(TopicName(StrBytes::from_static_str("t"))))
                                        .with_partitions(vec![
                                            MetadataResponsePartition::default()
                                                .with_partition_index(0)
                                                .with_leader_id(BrokerId(1))
                                                .with_replica_nodes(vec![BrokerId(1)])
                                                .with_isr_nodes(vec![BrokerId(1)]),
                                        ])])
                                    .encode(&mut out, v)
                                    .expect("encode");
                            }
                            ApiKey::ListOffsets => {
                                let n = count.fetch_add(1, Ordering::SeqCst);
                                let code = answers.get(n).copied().unwrap_or(0);
                                header
                                    .encode(&mut out, ListOffsetsResponse::header_version(v))
                                    .expect("header");
                                ListOffsetsResponse::default()
                                    .with_topics(vec![ListOffsetsTopicResponse::default()
                                        .with_name(TopicName(StrBytes::from_static_str("t")))
                                        .with_partitions(vec![
                                            ListOffsetsPartitionResponse::default()
                                                .with_partition_index(0)
                                                .with_error_code(code)
                                                .with_timestamp(-1)
                                                .with_offset(if code == 0 { 42 } else { -1 }),
                                        ])])
                                    .encode(&mut out, v)
                                    .expect("encode");
                            }
                            other => panic!("unexpected {other:?}"),
                        }
                        let len = (out.len() - 4) as i32;
                        out[..4].copy_from_slice(&len.to_be_bytes());
                        s.write_all(&out).await.expect("write");
                    }
                });
            }
        });
        (addr.to_string(), asked)
    }

    /// A leader just elected may answer OFFSET_NOT_AVAILABLE (its high watermark lags its
    /// epoch), a moved one NOT_LEADER_OR_FOLLOWER: both are retried after a metadata refresh,
    /// as Kafka's consumer does. Any other error is returned at once.
    #[tokio::test]
    async fn list_offsets_retries_what_a_leader_change_answers() {
        let not_available = ErrorCode::OFFSET_NOT_AVAILABLE.0;
        let not_leader = ErrorCode::NOT_LEADER_OR_FOLLOWER.0;
        let (addr, asked) = scripted_broker(vec![not_available, not_leader]).await;
        let mut c = Consumer::connect(&addr, &ClientConfig::default(), ConsumerConfig::default())
            .await
            .expect("connect");
        let ends = c
            .list_offsets("t", &[0], OffsetSpec::Latest)
            .await
            .expect("retried to an answer");
        assert_eq!(ends, BTreeMap::from([(0, 42)]));
        assert_eq!(asked.load(Ordering::SeqCst), 3);

        let denied = ErrorCode::TOPIC_AUTHORIZATION_FAILED.0;
        let (addr, asked) = scripted_broker(vec![denied]).await;
        let mut c = Consumer::connect(&addr, &ClientConfig::default(), ConsumerConfig::default())
            .await
            .expect("connect");
        let err = c
            .list_offsets("t", &[0], OffsetSpec::Latest)
            .await
            .expect_err("not retriable");
        assert_eq!(err.code(), Some(ErrorCode::TOPIC_AUTHORIZATION_FAILED));
        assert_eq!(asked.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn offset_specs_parse() {
        assert_eq!(
            OffsetSpec::parse("earliest").expect("e"),
            OffsetSpec::Earliest
        );
        assert_eq!(OffsetSpec::parse("latest").expect("l"), OffsetSpec::Latest);
        assert_eq!(OffsetSpec::parse("42").expect("n"), OffsetSpec::Offset(42));
        assert_eq!(
            OffsetSpec::parse("@1700000000000").expect("ts"),
            OffsetSpec::Timestamp(1_700_000_000_000)
        );
        assert!(OffsetSpec::parse("-3").is_err());
        assert!(OffsetSpec::parse("soon").is_err());
    }
}
