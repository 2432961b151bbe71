//! The dead-letter queue of share groups (KIP-1191, Kafka 4.4): a record a share-partition
//! archives as undeliverable (rejected by a member, or delivered `share.delivery.count.limit`
//! times) is written to the topic its group's `errors.deadletterqueue.topic.name` names, as
//! Kafka 4.4 writes it:
//!
//! ```text
//!  SharePartition::take_archived ─► SharePartitionManager queue ─► its DLQ task: write
//!     group has no DLQ topic ─► nothing
//!     name without errors.deadletterqueue.topic.name.prefix, topic missing (unless
//!     errors.deadletterqueue.auto.create.topics.enable: created, flag set), topic without
//!     errors.deadletterqueue.group.enable=true ─► logged, nothing written (as Kafka)
//!     else one record per offset, to DLQ partition (source partition mod its count):
//!        headers __dlq.errors.{topic,partition,offset,group,delivery.count,message},
//!        key and value copied with errors.deadletterqueue.copy.record.enable, else null;
//!        appended here when this broker leads it, else produced to its leader (acks=all)
//! ```
//!
//! Best effort, as Kafka's: the archive is durable first, and a write that fails is logged,
//! not retried.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use gregor_client::{ClientConfig, Connection};
use gregor_controller::protocol as proto;
use gregor_controller::{ControllerRequest, ControllerResponse};
use gregor_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use gregor_protocol::messages::{ApiKey, ProduceRequest};
use gregor_protocol::records::{
    Compression, Record, RecordBatchDecoder, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use gregor_share::Archived;
use gregor_storage::producer_state::AppendOrigin;
use tracing::{debug, info, warn};

use crate::broker::Broker;
use crate::partition::Partition;

/// The group config naming a share group's DLQ topic.
pub const DLQ_TOPIC_KEY: &str = "errors.deadletterqueue.topic.name";
/// The group config copying the archived record's key and value to the DLQ.
pub const DLQ_COPY_KEY: &str = "errors.deadletterqueue.copy.record.enable";
/// The topic config that lets share groups write to a topic as their DLQ.
pub const DLQ_TOPIC_FLAG: &str = "errors.deadletterqueue.group.enable";

/// Tries of one DLQ write after the first.
const APPEND_ATTEMPTS: u32 = 6;
/// How long a write to a remote DLQ leader may take.
const REMOTE_TIMEOUT: Duration = Duration::from_secs(10);

/// Records of one share-partition archived as undeliverable, waiting to be written.
#[derive(Debug, Clone)]
pub struct Undeliverable {
    pub group: String,
    /// The source partition (its log is read to copy a record).
    pub partition: Arc<Partition>,
    pub archived: Archived,
}

/// One record for a DLQ partition.
struct DlqRecord {
    key: Option<Bytes>,
    value: Option<Bytes>,
    headers: Vec<(&'static str, String)>,
}

/// Writes `items` to their groups' DLQ topics (see the module docs).
pub async fn write(broker: &Broker, items: Vec<Undeliverable>) {
    let mut by_group: BTreeMap<String, Vec<Undeliverable>> = BTreeMap::new();
    for item in items {
        by_group.entry(item.group.clone()).or_default().push(item);
    }
    for (group, items) in by_group {
        let configs = crate::group_configs::group_configs(broker, &group);
        let Some(dlq) = configs
            .get(DLQ_TOPIC_KEY)
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
        else {
            continue;
        };
        let copy = configs
            .get(DLQ_COPY_KEY)
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
        let Some(partitions) = dlq_partitions(broker, &group, &dlq).await else {
            continue;
        };
        let mut records: BTreeMap<i32, Vec<DlqRecord>> = BTreeMap::new();
        for item in &items {
            let a = item.archived;
            let source = &item.partition;
            for offset in a.first_offset..=a.last_offset {
                let (key, value) = if copy {
                    read_record(source, offset)
                } else {
                    (None, None)
                };
                let message = if a.rejected {
                    "Offset rejected by client."
                } else {
                    "Offset delivery count exceeded the threshold."
                };
                records
                    .entry(source.tp.partition.rem_euclid(partitions))
                    .or_default()
                    .push(DlqRecord {
                        key,
                        value,
                        headers: vec![
                            ("__dlq.errors.topic", source.tp.topic.clone()),
                            ("__dlq.errors.partition", source.tp.partition.to_string()),
                            ("__dlq.errors.offset", offset.to_string()),
                            ("__dlq.errors.group", group.clone()),
                            ("__dlq.errors.delivery.count", a.delivery_count.to_string()),
                            ("__dlq.errors.message", message.to_string()),
                        ],
                    });
            }
        }
        for (partition, records) in records {
            let count = records.len();
            let batch = match encode(records, broker.clock.now_ms()) {
                Ok(b) => b,
                Err(e) => {
                    warn!(group, dlq, error = %e, "cannot encode dead-letter queue records");
                    continue;
                }
            };
            match append_retrying(broker, &dlq, partition, &batch).await {
                Ok(()) => debug!(
                    group,
                    dlq, partition, count, "written to the dead-letter queue"
                ),
                Err(e) => warn!(group, dlq, partition, count, error = %e,
                    "cannot write archived records to the share group's dead-letter queue"),
            }
        }
    }
}

/// The DLQ topic's partition count once it may be written: its name has the broker's
/// `errors.deadletterqueue.topic.name.prefix`, it exists (or was auto-created), and it has
/// `errors.deadletterqueue.group.enable=true`. `None`, logged, otherwise.
async fn dlq_partitions(broker: &Broker, group: &str, dlq: &str) -> Option<i32> {
    let effective = broker.replicas.effective_config();
    let prefix = effective.dlq.topic_name_prefix.as_str();
    if !prefix.is_empty() && !dlq.starts_with(prefix) {
        warn!(group, topic = dlq, prefix,
            "DLQ topic name does not start with the required prefix (errors.deadletterqueue.topic.name.prefix): nothing written");
        return None;
    }
    if broker
        .replicas
        .image()
        .topics()
        .topic_by_name(dlq)
        .is_none()
    {
        if !effective.dlq.auto_create_topics_enable {
            warn!("DLQ topic does not exist and auto create is disabled on cluster for share group: {group}, topic: {dlq}.");
            return None;
        }
        create_dlq_topic(broker, dlq).await;
    }
    let image = broker.replicas.image();
    let topic = image.topics().topic_by_name(dlq)?;
    let enabled = image
        .configs()
        .topic_configs(dlq)
        .any(|(k, v)| k == DLQ_TOPIC_FLAG && v.trim().eq_ignore_ascii_case("true"));
    if !enabled {
        warn!(group, topic = dlq,
            "the DLQ topic does not allow share groups to write to it ({DLQ_TOPIC_FLAG} is not true): nothing written");
        return None;
    }
    i32::try_from(topic.partition_count())
        .ok()
        .filter(|&n| n > 0)
}

/// Creates the DLQ topic with the broker's defaults and `errors.deadletterqueue.group.enable`
/// (`errors.deadletterqueue.auto.create.topics.enable`), and waits until it is applied here.
async fn create_dlq_topic(broker: &Broker, dlq: &str) {
    let request = proto::CreateTopicsRequest {
        topics: vec![proto::CreatableTopic {
            name: dlq.to_string(),
            num_partitions: broker.config.num_partitions,
            replication_factor: broker.config.default_replication_factor,
            assignments: Vec::new(),
            // Kafka 4.4 creates it with these three set.
            configs: vec![
                (DLQ_TOPIC_FLAG.to_string(), Some("true".to_string())),
                (
                    "min.insync.replicas".to_string(),
                    Some(
                        broker
                            .config
                            .min_insync_replicas
                            .min(i32::from(broker.config.default_replication_factor).max(1))
                            .to_string(),
                    ),
                ),
                (
                    "message.timestamp.type".to_string(),
                    Some("CreateTime".to_string()),
                ),
            ],
        }],
        validate_only: false,
    };
    match broker
        .controller
        .call(ControllerRequest::CreateTopics(request))
        .await
    {
        Ok(ControllerResponse::CreateTopics(resp)) => {
            for t in resp.topics {
                if t.error_code == 0 {
                    info!(topic = %t.name, "auto-created the share group dead-letter queue topic");
                    broker.wait_for_topics(&[t.topic_id], true, 5_000).await;
                } else {
                    warn!(topic = %t.name, code = t.error_code, message = ?t.error_message,
                        "cannot auto-create the dead-letter queue topic");
                }
            }
        }
        other => {
            warn!(topic = dlq, answer = ?other, "cannot auto-create the dead-letter queue topic")
        }
    }
}

/// The key and value of the record at `offset` of `partition` (null when it cannot be read).
fn read_record(partition: &Partition, offset: i64) -> (Option<Bytes>, Option<Bytes>) {
    let read = || -> Option<(Option<Bytes>, Option<Bytes>)> {
        let slice = partition.read(offset, 1, true).ok()?.slice?;
        let mut bytes = Bytes::from(slice.read_to_vec().ok()?);
        let sets = RecordBatchDecoder::decode_all(&mut bytes).ok()?;
        let record = sets
            .into_iter()
            .flat_map(|s| s.records)
            .find(|r| r.offset == offset)?;
        Some((record.key, record.value))
    };
    read().unwrap_or((None, None))
}

/// [`append`], tried again a few times while it fails (a DLQ topic created a moment ago may
/// not have its leader yet).
async fn append_retrying(
    broker: &Broker,
    dlq: &str,
    partition: i32,
    batch: &Bytes,
) -> Result<(), String> {
    let mut attempt = 0;
    loop {
        match append(broker, dlq, partition, batch.clone()).await {
            Ok(()) => return Ok(()),
            Err(e) if attempt >= APPEND_ATTEMPTS => return Err(e),
            Err(e) => {
                debug!(dlq, partition, error = %e, "dead-letter queue write failed; trying again");
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        }
    }
}

/// One batch of `records` (no producer, CreateTime now).
fn encode(records: Vec<DlqRecord>, now_ms: i64) -> Result<Bytes, String> {
    let records: Vec<Record> = records
        .into_iter()
        .enumerate()
        .map(|(i, r)| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: -1,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: i as i64,
            // One batch: kafka-protocol's encoder starts a new one where offset - sequence
            // changes; the batch's base sequence is -1 (no producer).
            sequence: i as i32 - 1,
            timestamp: now_ms,
            key: r.key,
            value: r.value,
            headers: r
                .headers
                .into_iter()
                .map(|(k, v)| (k.to_string().into(), Some(Bytes::from(v))))
                .collect(),
        })
        .collect();
    let mut buf = BytesMut::new();
    RecordBatchEncoder::encode(
        &mut buf,
        &records,
        &RecordEncodeOptions {
            version: 2,
            compression: Compression::None,
        },
    )
    .map_err(|e| e.to_string())?;
    Ok(buf.freeze())
}

/// Appends `records` to `dlq`-`partition`: here when this broker leads it, else at its leader.
async fn append(broker: &Broker, dlq: &str, partition: i32, batch: Bytes) -> Result<(), String> {
    if let Some((topic, part)) = broker.replicas.partition(dlq, partition) {
        if part.is_leader() {
            return part
                .append_to_leader_from(AppendOrigin::Client, &batch, &topic.settings, 1)
                .map(|_| ())
                .map_err(|code| code.to_string());
        }
    }
    let leader = broker
        .replicas
        .image()
        .topics()
        .topic_by_name(dlq)
        .and_then(|t| t.partition(partition).map(|p| p.leader))
        .ok_or_else(|| "the DLQ partition has no leader".to_string())?;
    let addr = crate::replica_fetcher::leader_address(&broker.replicas, &broker.config, leader)
        .ok_or_else(|| format!("broker {leader} has no known endpoint"))?;
    let config = ClientConfig {
        client_id: format!("gregor-share-dlq-{}", broker.config.node_id),
        connect_timeout: Duration::from_secs(5),
        request_timeout: REMOTE_TIMEOUT,
        security: broker.config.inter_broker_security.clone(),
        ..ClientConfig::default()
    };
    let mut conn = Connection::connect(&addr, &config)
        .await
        .map_err(|e| e.to_string())?;
    let req = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(REMOTE_TIMEOUT.as_millis() as i32)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(crate::handlers::topic_name(dlq))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(partition)
                .with_records(Some(batch))])]);
    let version = conn
        .version_at_most(ApiKey::Produce, 12)
        .map_err(|e| e.to_string())?;
    let resp = conn
        .send_at(&req, version)
        .await
        .map_err(|e| e.to_string())?;
    let code = resp
        .responses
        .first()
        .and_then(|t| t.partition_responses.first())
        .map_or(-1, |p| p.error_code);
    if code == 0 {
        Ok(())
    } else {
        Err(format!("the DLQ leader {leader} answered error {code}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Several DLQ records are one batch (a leader takes one batch per partition from a
    /// produce), with the headers and no producer.
    #[test]
    fn records_are_encoded_as_one_batch() {
        let record = |offset: i64| DlqRecord {
            key: Some(Bytes::from_static(b"k")),
            value: None,
            headers: vec![("__dlq.errors.offset", offset.to_string())],
        };
        let batch = encode((0..5).map(record).collect(), 1_000).expect("encode");
        let validated = gregor_protocol::batch::validate_record_set(&batch, 1 << 20)
            .expect("a valid record set");
        assert_eq!(validated.batches().len(), 1);
        let mut bytes = batch.clone();
        let sets = RecordBatchDecoder::decode_all(&mut bytes).expect("decode");
        let records: Vec<Record> = sets.into_iter().flat_map(|s| s.records).collect();
        assert_eq!(records.len(), 5);
        assert!(records
            .iter()
            .all(|r| r.producer_id == -1 && r.timestamp == 1_000));
        let offsets: Vec<String> = records
            .iter()
            .map(|r| {
                let v = r.headers.values().next().and_then(|v| v.clone());
                String::from_utf8_lossy(&v.unwrap_or_default()).to_string()
            })
            .collect();
        assert_eq!(offsets, ["0", "1", "2", "3", "4"]);
    }
}
