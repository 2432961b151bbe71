//! The client's view of the cluster: a bootstrap connection for metadata and admin requests,
//! the brokers and topic layouts learnt from Metadata, and one lazily opened connection per
//! broker for partition leaders (Produce, Fetch, ListOffsets go to the leader).

use crate::connection::{ClientConfig, Connection};
use crate::error::{ClientError, Result};
use gregor_protocol::error::ErrorCode;
use kafka_protocol::messages::{
    metadata_request::MetadataRequestTopic, ApiKey, MetadataRequest, MetadataResponse, TopicName,
};
use kafka_protocol::protocol::StrBytes;
use std::collections::{BTreeMap, HashMap};
use uuid::Uuid;

/// A broker as Metadata advertises it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerInfo {
    /// `node.id`.
    pub node_id: i32,
    /// Advertised host.
    pub host: String,
    /// Advertised port.
    pub port: i32,
    /// `broker.rack`, if set.
    pub rack: Option<String>,
}

impl BrokerInfo {
    /// `host:port`, ready to dial.
    pub fn addr(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// One partition's placement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionMetadata {
    /// Partition index.
    pub partition: i32,
    /// Leader broker id, -1 when there is none.
    pub leader: i32,
    /// Leader epoch (-1 when unknown).
    pub leader_epoch: i32,
    /// Assigned replicas.
    pub replicas: Vec<i32>,
    /// In-sync replicas.
    pub isr: Vec<i32>,
    /// Replicas that are offline.
    pub offline_replicas: Vec<i32>,
    /// Partition-level error (e.g. LEADER_NOT_AVAILABLE), `None` when fine.
    pub error: Option<ErrorCode>,
}

/// One topic's layout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicMetadata {
    /// Topic name.
    pub name: String,
    /// Topic id (nil when the broker speaks Metadata below v10).
    pub topic_id: Uuid,
    /// True for internal topics such as `__consumer_offsets`.
    pub is_internal: bool,
    /// Partitions, sorted by index.
    pub partitions: Vec<PartitionMetadata>,
    /// Topic-level error (e.g. UNKNOWN_TOPIC_OR_PARTITION), `None` when fine.
    pub error: Option<ErrorCode>,
}

/// A Metadata response in plain types.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClusterMetadata {
    /// Cluster id, if the broker reports one.
    pub cluster_id: Option<String>,
    /// Active controller id (-1 when unknown).
    pub controller_id: i32,
    /// Brokers by node id.
    pub brokers: BTreeMap<i32, BrokerInfo>,
    /// Topics, sorted by name.
    pub topics: Vec<TopicMetadata>,
}

fn code(c: i16) -> Option<ErrorCode> {
    (c != 0).then_some(ErrorCode(c))
}

impl ClusterMetadata {
    /// Converts a decoded Metadata response.
    pub fn from_response(resp: MetadataResponse) -> Self {
        let brokers = resp
            .brokers
            .into_iter()
            .map(|b| {
                (
                    b.node_id.0,
                    BrokerInfo {
                        node_id: b.node_id.0,
                        host: b.host.to_string(),
                        port: b.port,
                        rack: b.rack.map(|r| r.to_string()),
                    },
                )
            })
            .collect();
        let mut topics: Vec<TopicMetadata> = resp
            .topics
            .into_iter()
            .map(|t| {
                let mut partitions: Vec<PartitionMetadata> = t
                    .partitions
                    .into_iter()
                    .map(|p| PartitionMetadata {
                        partition: p.partition_index,
                        leader: p.leader_id.0,
                        leader_epoch: p.leader_epoch,
                        replicas: p.replica_nodes.iter().map(|b| b.0).collect(),
                        isr: p.isr_nodes.iter().map(|b| b.0).collect(),
                        offline_replicas: p.offline_replicas.iter().map(|b| b.0).collect(),
                        error: code(p.error_code),
                    })
                    .collect();
                partitions.sort_by_key(|p| p.partition);
                TopicMetadata {
                    name: t.name.map(|n| n.0.to_string()).unwrap_or_default(),
                    topic_id: t.topic_id,
                    is_internal: t.is_internal,
                    partitions,
                    error: code(t.error_code),
                }
            })
            .collect();
        topics.sort_by(|a, b| a.name.cmp(&b.name));
        ClusterMetadata {
            cluster_id: resp.cluster_id.map(|c| c.to_string()),
            controller_id: resp.controller_id.0,
            brokers,
            topics,
        }
    }
}

/// Connections and cached metadata for one cluster.
#[derive(Debug)]
pub struct Cluster {
    config: ClientConfig,
    /// Addresses given by the user (`bootstrap.servers`), tried in order.
    bootstrap: Vec<String>,
    /// Connection for metadata and admin requests (to any broker).
    control: Connection,
    /// Brokers from the last Metadata response.
    brokers: BTreeMap<i32, BrokerInfo>,
    /// Connections to partition leaders, by node id.
    leaders: HashMap<i32, Connection>,
    /// Topic layouts from the last Metadata responses.
    topics: HashMap<String, TopicMetadata>,
}

impl Cluster {
    /// Connects to the first reachable address of a comma-separated bootstrap list.
    pub async fn connect(bootstrap: &str, config: &ClientConfig) -> Result<Cluster> {
        let list: Vec<String> = bootstrap
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        if list.is_empty() {
            return Err(ClientError::InvalidArgument(
                "empty bootstrap server list".to_owned(),
            ));
        }
        let control = connect_any(&list, config).await?;
        Ok(Cluster {
            config: config.clone(),
            bootstrap: list,
            control,
            brokers: BTreeMap::new(),
            leaders: HashMap::new(),
            topics: HashMap::new(),
        })
    }

    /// The client settings.
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// The connection for metadata and admin requests, reopened if an earlier failure broke it.
    pub async fn control(&mut self) -> Result<&mut Connection> {
        if self.control.is_broken() {
            self.control = connect_any(&self.bootstrap, &self.config).await?;
        }
        Ok(&mut self.control)
    }

    /// Fetches metadata for `topics` (all topics when `None`) and refreshes the caches.
    pub async fn metadata(&mut self, topics: Option<&[String]>) -> Result<ClusterMetadata> {
        self.metadata_creating(topics, false).await
    }

    /// [`Cluster::metadata`], asking the broker to create a topic it does not have when
    /// `auto_create` (its `auto.create.topics.enable` decides; the producer's
    /// `allow.auto.create.topics`).
    pub async fn metadata_creating(
        &mut self,
        topics: Option<&[String]>,
        auto_create: bool,
    ) -> Result<ClusterMetadata> {
        let conn = self.control().await?;
        let version = conn.version(ApiKey::Metadata)?;
        let mut req = MetadataRequest::default();
        req.topics = topics.map(|ts| {
            ts.iter()
                .map(|t| {
                    MetadataRequestTopic::default()
                        .with_name(Some(TopicName(StrBytes::from_string(t.clone()))))
                })
                .collect()
        });
        if version >= 4 {
            req.allow_auto_topic_creation = auto_create;
        }
        let resp = conn.send_at(&req, version).await?;
        let md = ClusterMetadata::from_response(resp);
        self.brokers = md.brokers.clone();
        for t in &md.topics {
            if t.error.is_none() {
                self.topics.insert(t.name.clone(), t.clone());
            } else {
                self.topics.remove(&t.name);
            }
        }
        Ok(md)
    }

    /// The layout of `topic`, from the cache unless `refresh`; an error if the topic does not
    /// exist or reports a topic-level error.
    pub async fn topic(&mut self, topic: &str, refresh: bool) -> Result<TopicMetadata> {
        self.topic_creating(topic, refresh, false).await
    }

    /// [`Cluster::topic`], asking the broker to create the topic if it has none and
    /// `auto_create` ([`Cluster::metadata_creating`]).
    pub async fn topic_creating(
        &mut self,
        topic: &str,
        refresh: bool,
        auto_create: bool,
    ) -> Result<TopicMetadata> {
        if !refresh {
            if let Some(t) = self.topics.get(topic) {
                return Ok(t.clone());
            }
        }
        let md = self
            .metadata_creating(Some(&[topic.to_owned()]), auto_create)
            .await?;
        let t = md
            .topics
            .into_iter()
            .find(|t| t.name == topic)
            .ok_or_else(|| ClientError::Kafka {
                code: ErrorCode::UNKNOWN_TOPIC_OR_PARTITION,
                message: None,
                context: format!("topic {topic}"),
            })?;
        if let Some(code) = t.error {
            return Err(ClientError::Kafka {
                code,
                message: None,
                context: format!("topic {topic}"),
            });
        }
        Ok(t)
    }

    /// Forgets cached layouts so the next lookup asks the cluster again.
    pub fn invalidate(&mut self, topic: &str) {
        self.topics.remove(topic);
    }

    /// Forgets the cached layouts of several topics.
    pub fn invalidate_all<'a>(&mut self, topics: impl IntoIterator<Item = &'a str>) {
        for t in topics {
            self.topics.remove(t);
        }
    }

    /// The leader of `topic`-`partition` according to `t`.
    pub fn leader_of(t: &TopicMetadata, partition: i32) -> Result<i32> {
        let p = t
            .partitions
            .iter()
            .find(|p| p.partition == partition)
            .ok_or_else(|| ClientError::Kafka {
                code: ErrorCode::UNKNOWN_TOPIC_OR_PARTITION,
                message: Some(format!("topic has {} partitions", t.partitions.len())),
                context: format!("partition {}-{partition}", t.name),
            })?;
        if p.leader < 0 {
            return Err(ClientError::NoLeader {
                topic: t.name.clone(),
                partition,
            });
        }
        Ok(p.leader)
    }

    /// A connection to broker `node_id`, opened on first use and reopened when broken.
    pub async fn broker(&mut self, node_id: i32) -> Result<&mut Connection> {
        let stale = self.leaders.get(&node_id).is_none_or(|c| c.is_broken());
        if stale {
            let info = self.brokers.get(&node_id).ok_or_else(|| {
                ClientError::InvalidArgument(format!("broker {node_id} is not in the metadata"))
            })?;
            let conn = Connection::connect(&info.addr(), &self.config).await?;
            self.leaders.insert(node_id, conn);
        }
        self.leaders
            .get_mut(&node_id)
            .ok_or_else(|| ClientError::InvalidArgument(format!("broker {node_id} vanished")))
    }
}

async fn connect_any(list: &[String], config: &ClientConfig) -> Result<Connection> {
    let mut last = None;
    for addr in list {
        match Connection::connect(addr, config).await {
            Ok(c) => return Ok(c),
            Err(e) => {
                tracing::debug!(addr, error = %e, "bootstrap server unreachable");
                last = Some(e);
            }
        }
    }
    Err(last.unwrap_or_else(|| ClientError::InvalidArgument("no bootstrap servers".to_owned())))
}
