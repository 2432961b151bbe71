//! Cluster admin operations: DescribeCluster, DescribeQuorum, Add/RemoveRaftVoter,
//! CreatePartitions, ElectLeaders, AlterPartitionReassignments and
//! ListPartitionReassignments, as more [`Admin`] methods
//! (the counterparts of the AdminClient's `describeCluster`, `describeMetadataQuorum`,
//! `createPartitions`, `electLeaders`, `alterPartitionReassignments` and
//! `listPartitionReassignments`).

use std::collections::BTreeMap;
use std::time::Duration;

use kafka_protocol::messages::alter_partition_reassignments_request::{
    ReassignablePartition, ReassignableTopic,
};
use kafka_protocol::messages::create_partitions_request::CreatePartitionsTopic;
use kafka_protocol::messages::describe_quorum_request::{PartitionData, TopicData};
use kafka_protocol::messages::elect_leaders_request::TopicPartitions;
use kafka_protocol::messages::{
    AlterPartitionReassignmentsRequest, ApiKey, BrokerId, CreatePartitionsRequest,
    DescribeClusterRequest, DescribeQuorumRequest, ElectLeadersRequest,
    ListPartitionReassignmentsRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use crate::admin::Admin;
use crate::error::{ClientError, Result};

/// A Kafka UUID from its text form (URL-safe base64 of 16 bytes), the nil UUID for `None`.
fn kafka_uuid(text: Option<&str>) -> Result<uuid::Uuid> {
    let Some(text) = text else {
        return Ok(uuid::Uuid::nil());
    };
    gregor_protocol::kafka_uuid::parse(text).ok_or_else(|| ClientError::Protocol {
        addr: String::new(),
        message: format!("{text:?} is not a Kafka UUID (22 characters of URL-safe base64)"),
    })
}

/// How long the broker may take for a partition change (`timeout_ms` in the request).
const OPERATION_TIMEOUT: Duration = Duration::from_secs(30);

/// A broker as DescribeCluster reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterBroker {
    /// `node.id`.
    pub node_id: i32,
    /// Advertised host.
    pub host: String,
    /// Advertised port.
    pub port: i32,
    /// `broker.rack`, if set.
    pub rack: Option<String>,
    /// Registered but fenced (not serving).
    pub fenced: bool,
}

/// A DescribeCluster response in plain types.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterDescription {
    /// The cluster id.
    pub cluster_id: String,
    /// The active controller (-1 when unknown).
    pub controller_id: i32,
    /// Brokers, by node id.
    pub brokers: Vec<ClusterBroker>,
}

/// One member of the metadata quorum, as DescribeQuorum reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumReplica {
    /// Node id.
    pub node_id: i32,
    /// Log end offset of its metadata log (-1 when unknown to the answering node).
    pub log_end_offset: i64,
    /// Last fetch time, ms since the epoch (-1 when unknown).
    pub last_fetch_timestamp: i64,
    /// Last time it was caught up, ms since the epoch (-1 when unknown).
    pub last_caught_up_timestamp: i64,
    /// Its data directory's id in Kafka's text form, when the quorum knows it (KIP-853,
    /// DescribeQuorum v2).
    pub directory_id: Option<String>,
}

/// A DescribeQuorum response in plain types.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumDescription {
    /// The quorum leader (the active controller).
    pub leader_id: i32,
    /// The leader's epoch (Raft term).
    pub leader_epoch: i32,
    /// The metadata log's high watermark.
    pub high_watermark: i64,
    /// Voters.
    pub voters: Vec<QuorumReplica>,
    /// Observers (non-voting members).
    pub observers: Vec<QuorumReplica>,
}

impl QuorumDescription {
    /// How many records `replica` is behind the leader, when its log end offset is known.
    pub fn lag(&self, replica: &QuorumReplica) -> Option<i64> {
        let leader = self
            .voters
            .iter()
            .find(|v| v.node_id == self.leader_id)?
            .log_end_offset;
        (leader >= 0 && replica.log_end_offset >= 0)
            .then(|| (leader - replica.log_end_offset).max(0))
    }
}

/// Which leader an election picks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ElectionType {
    /// The first assigned replica, if it is live and in the ISR.
    Preferred,
    /// Any live replica, even outside the ISR (may lose records), when there is no leader.
    Unclean,
}

/// A reassignment in progress, as ListPartitionReassignments reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionReassignment {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Current replicas (old and new).
    pub replicas: Vec<i32>,
    /// Replicas being added.
    pub adding_replicas: Vec<i32>,
    /// Replicas being removed.
    pub removing_replicas: Vec<i32>,
}

/// One partition's outcome of an election or reassignment.
pub type PartitionOutcome = (String, i32, Result<()>);

fn name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_owned()))
}

fn ids(v: &[BrokerId]) -> Vec<i32> {
    v.iter().map(|b| b.0).collect()
}

fn timeout_ms() -> i32 {
    i32::try_from(OPERATION_TIMEOUT.as_millis()).unwrap_or(i32::MAX)
}

/// `(topic, partitions)` groups in first-seen topic order.
fn by_topic(partitions: &[(String, i32)]) -> Vec<(String, Vec<i32>)> {
    let mut out: Vec<(String, Vec<i32>)> = Vec::new();
    for (t, p) in partitions {
        match out.iter_mut().find(|(n, _)| n == t) {
            Some((_, ps)) => ps.push(*p),
            None => out.push((t.clone(), vec![*p])),
        }
    }
    out
}

impl Admin {
    /// The cluster id, the controller and the brokers (fenced ones too when asked and the
    /// broker speaks DescribeCluster v2).
    pub async fn describe_cluster(&mut self, include_fenced: bool) -> Result<ClusterDescription> {
        let conn = self.cluster().control().await?;
        let version = conn.version(ApiKey::DescribeCluster)?;
        let req = DescribeClusterRequest::default()
            .with_endpoint_type(1)
            .with_include_fenced_brokers(include_fenced && version >= 2);
        let resp = conn.send_at(&req, version).await?;
        ClientError::check(resp.error_code, resp.error_message.as_deref(), || {
            "describe cluster".to_owned()
        })?;
        let mut brokers: Vec<ClusterBroker> = resp
            .brokers
            .into_iter()
            .map(|b| ClusterBroker {
                node_id: b.broker_id.0,
                host: b.host.to_string(),
                port: b.port,
                rack: b.rack.map(|r| r.to_string()),
                fenced: b.is_fenced,
            })
            .collect();
        brokers.sort_by_key(|b| b.node_id);
        Ok(ClusterDescription {
            cluster_id: resp.cluster_id.to_string(),
            controller_id: resp.controller_id.0,
            brokers,
        })
    }

    /// The metadata quorum (`__cluster_metadata-0`): leader, epoch, high watermark, voters and
    /// observers with their log end offsets.
    pub async fn describe_quorum(&mut self) -> Result<QuorumDescription> {
        let conn = self.cluster().control().await?;
        let version = conn.version(ApiKey::DescribeQuorum)?;
        let req = DescribeQuorumRequest::default().with_topics(vec![TopicData::default()
            .with_topic_name(name("__cluster_metadata"))
            .with_partitions(vec![PartitionData::default().with_partition_index(0)])]);
        let resp = conn.send_at(&req, version).await?;
        ClientError::check(resp.error_code, resp.error_message.as_deref(), || {
            "describe quorum".to_owned()
        })?;
        let p = resp
            .topics
            .into_iter()
            .flat_map(|t| t.partitions)
            .next()
            .ok_or_else(|| ClientError::Protocol {
                addr: String::new(),
                message: "DescribeQuorum response has no partition".to_owned(),
            })?;
        ClientError::check(p.error_code, p.error_message.as_deref(), || {
            "describe quorum".to_owned()
        })?;
        let replicas =
            |v: Vec<kafka_protocol::messages::describe_quorum_response::ReplicaState>| {
                v.into_iter()
                    .map(|r| QuorumReplica {
                        directory_id: (!r.replica_directory_id.is_nil())
                            .then(|| gregor_protocol::kafka_uuid::to_text(r.replica_directory_id)),
                        node_id: r.replica_id.0,
                        log_end_offset: r.log_end_offset,
                        last_fetch_timestamp: r.last_fetch_timestamp,
                        last_caught_up_timestamp: r.last_caught_up_timestamp,
                    })
                    .collect()
            };
        Ok(QuorumDescription {
            leader_id: p.leader_id.0,
            leader_epoch: p.leader_epoch,
            high_watermark: p.high_watermark,
            voters: replicas(p.current_voters),
            observers: replicas(p.observers),
        })
    }

    /// Makes node `id` a voter of the metadata quorum (AddRaftVoter, KIP-853: `kafka-metadata-quorum
    /// add-controller`), at `kraft.version` 1: the node, a controller reachable at
    /// `host:port` on its listener `listener`, with data directory id `directory_id` (Kafka's
    /// text form; `None` for none), must catch up with the quorum leader within `timeout`.
    /// Sent to a broker, which forwards it to the quorum leader.
    pub async fn add_raft_voter(
        &mut self,
        id: i32,
        directory_id: Option<&str>,
        listener: &str,
        host: &str,
        port: u16,
        timeout: Duration,
    ) -> Result<()> {
        use kafka_protocol::messages::add_raft_voter_request::Listener;
        use kafka_protocol::messages::AddRaftVoterRequest;
        let directory = kafka_uuid(directory_id)?;
        let limit = timeout + self.cluster().config().request_timeout;
        let conn = self.cluster().control().await?;
        let version = conn.version(ApiKey::AddRaftVoter)?;
        let req = AddRaftVoterRequest::default()
            .with_cluster_id(None)
            .with_timeout_ms(i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX))
            .with_voter_id(id)
            .with_voter_directory_id(directory)
            .with_listeners(vec![Listener::default()
                .with_name(StrBytes::from_string(listener.to_string()))
                .with_host(StrBytes::from_string(host.to_string()))
                .with_port(port)]);
        let resp = conn.send_at_with_timeout(&req, version, limit).await?;
        ClientError::check(resp.error_code, resp.error_message.as_deref(), || {
            format!("add controller {id}")
        })
    }

    /// Takes voter `id` out of the metadata quorum (RemoveRaftVoter, KIP-853:
    /// `kafka-metadata-quorum remove-controller`), at `kraft.version` 1. `directory_id` names
    /// its data directory (Kafka's text form), `None` for any.
    pub async fn remove_raft_voter(&mut self, id: i32, directory_id: Option<&str>) -> Result<()> {
        use kafka_protocol::messages::RemoveRaftVoterRequest;
        let directory = kafka_uuid(directory_id)?;
        let limit = OPERATION_TIMEOUT + self.cluster().config().request_timeout;
        let conn = self.cluster().control().await?;
        let version = conn.version(ApiKey::RemoveRaftVoter)?;
        let req = RemoveRaftVoterRequest::default()
            .with_cluster_id(None)
            .with_voter_id(id)
            .with_voter_directory_id(directory);
        let resp = conn.send_at_with_timeout(&req, version, limit).await?;
        ClientError::check(resp.error_code, resp.error_message.as_deref(), || {
            format!("remove controller {id}")
        })
    }

    /// Removes broker `id`'s registration for good (UnregisterBroker, `kafka-cluster.sh
    /// unregister`): for a broker that is gone; a running one registers again.
    pub async fn unregister_broker(&mut self, id: i32) -> Result<()> {
        use kafka_protocol::messages::{BrokerId, UnregisterBrokerRequest};
        let conn = self.cluster().control().await?;
        let version = conn.version(ApiKey::UnregisterBroker)?;
        let req = UnregisterBrokerRequest::default().with_broker_id(BrokerId(id));
        let resp = conn.send_at(&req, version).await?;
        ClientError::check(resp.error_code, resp.error_message.as_deref(), || {
            format!("unregister broker {id}")
        })
    }

    /// Grows `topic` to `total` partitions.
    pub async fn create_partitions(&mut self, topic: &str, total: i32) -> Result<()> {
        let limit = OPERATION_TIMEOUT + self.cluster().config().request_timeout;
        let conn = self.cluster().control().await?;
        let version = conn.version(ApiKey::CreatePartitions)?;
        let req = CreatePartitionsRequest::default()
            .with_timeout_ms(timeout_ms())
            .with_topics(vec![CreatePartitionsTopic::default()
                .with_name(name(topic))
                .with_count(total)
                .with_assignments(None)]);
        let resp = conn.send_at_with_timeout(&req, version, limit).await?;
        self.cluster().invalidate(topic);
        let r = resp
            .results
            .iter()
            .find(|r| r.name.0.as_str() == topic)
            .ok_or_else(|| ClientError::Protocol {
                addr: String::new(),
                message: format!("CreatePartitions response has no result for {topic}"),
            })?;
        ClientError::check(r.error_code, r.error_message.as_deref(), || {
            format!("add partitions to {topic}")
        })
    }

    /// Elects leaders of `partitions` (every partition when `None`; then only the partitions
    /// that got a new leader are reported).
    pub async fn elect_leaders(
        &mut self,
        election: ElectionType,
        partitions: Option<&[(String, i32)]>,
    ) -> Result<Vec<PartitionOutcome>> {
        let limit = OPERATION_TIMEOUT + self.cluster().config().request_timeout;
        let conn = self.cluster().control().await?;
        let version = conn.version(ApiKey::ElectLeaders)?;
        if election == ElectionType::Unclean && version < 1 {
            return Err(ClientError::InvalidArgument(
                "the broker does not support unclean elections (ElectLeaders v1)".to_owned(),
            ));
        }
        let req = ElectLeadersRequest::default()
            .with_election_type(match election {
                ElectionType::Preferred => 0,
                ElectionType::Unclean => 1,
            })
            .with_timeout_ms(timeout_ms())
            .with_topic_partitions(partitions.map(|ps| {
                by_topic(ps)
                    .into_iter()
                    .map(|(t, ps)| {
                        TopicPartitions::default()
                            .with_topic(name(&t))
                            .with_partitions(ps)
                    })
                    .collect()
            }));
        let resp = conn.send_at_with_timeout(&req, version, limit).await?;
        ClientError::check(resp.error_code, None, || "elect leaders".to_owned())?;
        let mut out = Vec::new();
        for t in resp.replica_election_results {
            for p in t.partition_result {
                let topic = t.topic.0.to_string();
                let r = ClientError::check(p.error_code, p.error_message.as_deref(), || {
                    format!("elect a leader for {topic}-{}", p.partition_id)
                });
                out.push((topic, p.partition_id, r));
            }
        }
        Ok(out)
    }

    /// Starts (`Some(replicas)`) or cancels (`None`) reassignments; one outcome per partition.
    pub async fn alter_partition_reassignments(
        &mut self,
        moves: &[(String, i32, Option<Vec<i32>>)],
    ) -> Result<Vec<PartitionOutcome>> {
        let limit = OPERATION_TIMEOUT + self.cluster().config().request_timeout;
        let conn = self.cluster().control().await?;
        let version = conn.version(ApiKey::AlterPartitionReassignments)?;
        let mut topics: BTreeMap<String, Vec<ReassignablePartition>> = BTreeMap::new();
        for (t, p, replicas) in moves {
            topics.entry(t.clone()).or_default().push(
                ReassignablePartition::default()
                    .with_partition_index(*p)
                    .with_replicas(
                        replicas
                            .as_ref()
                            .map(|r| r.iter().map(|&b| BrokerId(b)).collect()),
                    ),
            );
        }
        let req = AlterPartitionReassignmentsRequest::default()
            .with_timeout_ms(timeout_ms())
            .with_allow_replication_factor_change(true)
            .with_topics(
                topics
                    .into_iter()
                    .map(|(t, ps)| {
                        ReassignableTopic::default()
                            .with_name(name(&t))
                            .with_partitions(ps)
                    })
                    .collect(),
            );
        let resp = conn.send_at_with_timeout(&req, version, limit).await?;
        ClientError::check(resp.error_code, resp.error_message.as_deref(), || {
            "alter partition reassignments".to_owned()
        })?;
        for (t, _, _) in moves {
            self.cluster().invalidate(t);
        }
        let mut out = Vec::new();
        for t in resp.responses {
            for p in t.partitions {
                let topic = t.name.0.to_string();
                let r = ClientError::check(p.error_code, p.error_message.as_deref(), || {
                    format!("reassign {topic}-{}", p.partition_index)
                });
                out.push((topic, p.partition_index, r));
            }
        }
        Ok(out)
    }

    /// The reassignments in progress, sorted by topic and partition.
    pub async fn list_partition_reassignments(&mut self) -> Result<Vec<PartitionReassignment>> {
        let conn = self.cluster().control().await?;
        let version = conn.version(ApiKey::ListPartitionReassignments)?;
        let req = ListPartitionReassignmentsRequest::default()
            .with_timeout_ms(timeout_ms())
            .with_topics(None);
        let resp = conn.send_at(&req, version).await?;
        ClientError::check(resp.error_code, resp.error_message.as_deref(), || {
            "list partition reassignments".to_owned()
        })?;
        let mut out: Vec<PartitionReassignment> = resp
            .topics
            .into_iter()
            .flat_map(|t| {
                let topic = t.name.0.to_string();
                t.partitions
                    .into_iter()
                    .map(move |p| PartitionReassignment {
                        topic: topic.clone(),
                        partition: p.partition_index,
                        replicas: ids(&p.replicas),
                        adding_replicas: ids(&p.adding_replicas),
                        removing_replicas: ids(&p.removing_replicas),
                    })
            })
            .collect();
        out.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
        Ok(out)
    }
}
