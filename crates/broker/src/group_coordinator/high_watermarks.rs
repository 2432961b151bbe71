//! The high watermarks the group coordinator needs for share-group lag (DescribeShareGroupOffsets
//! v1, KIP-1226), as Kafka's `PartitionMetadataClient.listLatestOffsets`:
//!
//! ```text
//!  partitions ─► led by this broker ─► the partition's high watermark
//!             └► led by another ─► one ListOffsets per leader (latest, read_uncommitted,
//!                                  over the inter-broker listener) ─► its offset or error
//!             └► no leader / unknown ─► LEADER_NOT_AVAILABLE / UNKNOWN_TOPIC_OR_PARTITION
//! ```
//! A leader that cannot be reached answers NETWORK_EXCEPTION for its partitions; the caller
//! reports that per partition, never for the whole group.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use gregor_client::{ClientConfig, Connection};
use gregor_protocol::error::ErrorCode;
use gregor_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use gregor_protocol::messages::{ApiKey, BrokerId, ListOffsetsRequest};
use gregor_protocol::protocol::Message;
use tracing::debug;

use crate::replica_manager::ReplicaManager;

/// How long one leader has to answer.
const TIMEOUT: Duration = Duration::from_secs(5);

/// A partition by topic name and index.
pub(crate) type TopicPartition = (String, i32);

/// The high watermark of each of `partitions`, or the Kafka error that kept it unknown.
pub(crate) async fn high_watermarks(
    replicas: &Arc<ReplicaManager>,
    partitions: BTreeSet<TopicPartition>,
) -> BTreeMap<TopicPartition, Result<i64, ErrorCode>> {
    let mut out = BTreeMap::new();
    let mut remote: BTreeMap<i32, Vec<TopicPartition>> = BTreeMap::new();
    let image = replicas.image();
    for tp in partitions {
        if let Some((_, part)) = replicas.partition(&tp.0, tp.1) {
            if part.is_leader() {
                out.insert(tp, Ok(part.high_watermark()));
                continue;
            }
        }
        let leader = image
            .topics()
            .topic_by_name(&tp.0)
            .and_then(|t| t.partition(tp.1))
            .map(|p| p.leader);
        match leader {
            None => {
                out.insert(tp, Err(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION));
            }
            Some(l) if l < 0 => {
                out.insert(tp, Err(ErrorCode::LEADER_NOT_AVAILABLE));
            }
            Some(l) => remote.entry(l).or_default().push(tp),
        }
    }
    let asks = remote.into_iter().map(|(leader, tps)| async move {
        let answer = tokio::time::timeout(TIMEOUT, ask(replicas, leader, &tps)).await;
        let answer = answer.unwrap_or_else(|_| Err("timed out".to_string()));
        match answer {
            Ok(found) => tps
                .into_iter()
                .map(|tp| {
                    let r = found
                        .get(&tp)
                        .copied()
                        .unwrap_or(Err(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION));
                    (tp, r)
                })
                .collect::<Vec<_>>(),
            Err(why) => {
                debug!(leader, why = %why, "share group lag: no high watermarks from the leader");
                tps.into_iter()
                    .map(|tp| (tp, Err(ErrorCode::NETWORK_EXCEPTION)))
                    .collect()
            }
        }
    });
    for answers in futures::future::join_all(asks).await {
        out.extend(answers);
    }
    out
}

/// One ListOffsets (latest, read_uncommitted: the high watermark) of `tps` to `leader`.
async fn ask(
    replicas: &ReplicaManager,
    leader: i32,
    tps: &[TopicPartition],
) -> Result<BTreeMap<TopicPartition, Result<i64, ErrorCode>>, String> {
    let config = replicas.config();
    let addr = crate::replica_fetcher::leader_address(replicas, config, leader)
        .ok_or_else(|| format!("broker {leader} has no known endpoint"))?;
    let client = ClientConfig {
        client_id: format!("gregor-group-coordinator-{}", config.node_id),
        connect_timeout: TIMEOUT,
        request_timeout: TIMEOUT,
        security: config.inter_broker_security.clone(),
        ..ClientConfig::default()
    };
    let mut conn = Connection::connect(&addr, &client)
        .await
        .map_err(|e| e.to_string())?;
    let mut topics: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (t, p) in tps {
        topics.entry(t).or_default().push(*p);
    }
    let req = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_isolation_level(0)
        .with_topics(
            topics
                .into_iter()
                .map(|(t, ps)| {
                    ListOffsetsTopic::default()
                        .with_name(crate::handlers::topic_name(t))
                        .with_partitions(
                            ps.into_iter()
                                .map(|p| {
                                    ListOffsetsPartition::default()
                                        .with_partition_index(p)
                                        .with_current_leader_epoch(-1)
                                        .with_timestamp(-1)
                                })
                                .collect(),
                        )
                })
                .collect(),
        );
    let version = conn
        .version_at_most(ApiKey::ListOffsets, ListOffsetsRequest::VERSIONS.max)
        .map_err(|e| e.to_string())?;
    let resp = conn
        .send_at(&req, version)
        .await
        .map_err(|e| e.to_string())?;
    let mut out = BTreeMap::new();
    for t in resp.topics {
        for p in t.partitions {
            let r = if p.error_code == 0 {
                Ok(p.offset)
            } else {
                Err(ErrorCode(p.error_code))
            };
            out.insert((t.name.0.to_string(), p.partition_index), r);
        }
    }
    Ok(out)
}
