//! Consumer-group requests: FindCoordinator, then the coordinator-bound APIs (OffsetFetch,
//! OffsetCommit, DescribeGroups, ConsumerGroupDescribe, DeleteGroups) as functions over a
//! coordinator [`Connection`], and their admin faces on [`Admin`] (ListGroups goes to every
//! broker; a group DescribeGroups does not know is asked with ConsumerGroupDescribe, for the
//! consumer groups of KIP-848).
//!
//! ```text
//! any broker ─► FindCoordinator(group) ─► coordinator host:port ─► Connection
//! coordinator ◄─ OffsetFetch / OffsetCommit / DescribeGroups / DeleteGroups
//! ```

use crate::admin::Admin;
use crate::assignor::decode_assignment;
use crate::connection::{ClientConfig, Connection};
use crate::error::{ClientError, Result};
use gregor_protocol::error::ErrorCode;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::{
    ApiKey, ConsumerGroupDescribeRequest, DeleteGroupsRequest, DescribeGroupsRequest,
    FindCoordinatorRequest, GroupId, ListGroupsRequest, OffsetCommitRequest, OffsetFetchRequest,
    TopicName,
};
use kafka_protocol::protocol::StrBytes;
use std::collections::BTreeMap;
use std::time::Duration;

/// Committed offsets by topic, then partition.
pub type TopicOffsets = BTreeMap<String, BTreeMap<i32, i64>>;

/// A group as ListGroups reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupListing {
    /// Group id.
    pub group_id: String,
    /// `Empty`, `Stable`, `PreparingRebalance`, ... (empty when the broker is older than v4).
    pub state: String,
    /// `consumer`, `connect`, or empty for offset-only groups.
    pub protocol_type: String,
    /// `classic`, `consumer`, `share`, ... (ListGroups v5+; empty from older brokers).
    pub group_type: String,
}

/// One member of a described group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMember {
    /// Member id given by the coordinator.
    pub member_id: String,
    /// `group.instance.id` of a static member.
    pub group_instance_id: Option<String>,
    /// The member's `client.id`.
    pub client_id: String,
    /// The member's host as the coordinator saw it.
    pub client_host: String,
    /// Its assignment decoded with the consumer protocol (empty for other protocol types or
    /// while rebalancing).
    pub assignment: BTreeMap<String, Vec<i32>>,
}

/// A group as DescribeGroups reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDescription {
    /// Group id.
    pub group_id: String,
    /// Group state (`Dead` for a group that does not exist).
    pub state: String,
    /// Protocol type (`consumer`).
    pub protocol_type: String,
    /// Chosen protocol (the assignor, e.g. `range`).
    pub protocol: String,
    /// Members.
    pub members: Vec<GroupMember>,
}

/// Sends FindCoordinator(group) on `conn` and returns the coordinator's `host:port`. Retries a
/// few times while the coordinator is loading or not yet available.
pub async fn find_coordinator(conn: &mut Connection, group: &str) -> Result<String> {
    find_coordinator_of(conn, 0, group).await
}

/// FindCoordinator for `key` of `key_type` (0: a group, 1: a transactional id): the
/// coordinator's `host:port`, retried a few times while it is loading or not yet available.
pub async fn find_coordinator_of(
    conn: &mut Connection,
    key_type: i8,
    group: &str,
) -> Result<String> {
    let version = conn.version(ApiKey::FindCoordinator)?;
    let mut last = None;
    for attempt in 0..20 {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let mut req = FindCoordinatorRequest::default().with_key_type(key_type);
        if version >= 4 {
            req.coordinator_keys = vec![StrBytes::from_string(group.to_owned())];
        } else {
            req.key = StrBytes::from_string(group.to_owned());
        }
        let resp = conn.send_at(&req, version).await?;
        let (code, message, host, port) = if version >= 4 {
            let c = resp
                .coordinators
                .into_iter()
                .next()
                .ok_or_else(|| ClientError::Protocol {
                    addr: conn.addr().to_owned(),
                    message: "FindCoordinator response has no coordinator".to_owned(),
                })?;
            (c.error_code, c.error_message, c.host, c.port)
        } else {
            (resp.error_code, resp.error_message, resp.host, resp.port)
        };
        match ClientError::check(code, message.as_deref(), || {
            let what = if key_type == 1 {
                "transactional id"
            } else {
                "group"
            };
            format!("find coordinator of {what} {group}")
        }) {
            Ok(()) => {
                let host = host.to_string();
                return Ok(if host.contains(':') {
                    format!("[{host}]:{port}")
                } else {
                    format!("{host}:{port}")
                });
            }
            Err(e) if is_coordinator_retriable(&e) => last = Some(e),
            Err(e) => return Err(e),
        }
    }
    Err(last.unwrap_or_else(|| ClientError::Other("coordinator not found".to_owned())))
}

/// True for errors after which looking the coordinator up again may help.
pub fn is_coordinator_retriable(e: &ClientError) -> bool {
    matches!(
        e.code(),
        Some(
            ErrorCode::COORDINATOR_NOT_AVAILABLE
                | ErrorCode::COORDINATOR_LOAD_IN_PROGRESS
                | ErrorCode::NOT_COORDINATOR
        )
    )
}

/// Opens a connection to the coordinator of `group`, asking `conn` where it is.
pub async fn connect_coordinator(
    conn: &mut Connection,
    group: &str,
    config: &ClientConfig,
) -> Result<Connection> {
    let addr = find_coordinator(conn, group).await?;
    Connection::connect(&addr, config).await
}

/// The newest OffsetCommit and OffsetFetch version that names topics: v10 (KIP-848) names them
/// by id only, and this client addresses offsets by topic name.
const BY_NAME_MAX: i16 = 9;

/// OffsetFetch: the committed offsets of `group`, for `topics` (all committed topics when
/// `None`). Partitions without a committed offset are left out.
pub async fn fetch_offsets(
    coord: &mut Connection,
    group: &str,
    topics: Option<&BTreeMap<String, Vec<i32>>>,
) -> Result<TopicOffsets> {
    let version = coord.version_at_most(ApiKey::OffsetFetch, BY_NAME_MAX)?;
    let gid = GroupId(StrBytes::from_string(group.to_owned()));
    let name = |t: &String| TopicName(StrBytes::from_string(t.clone()));
    let mut req = OffsetFetchRequest::default();
    let mut out = TopicOffsets::new();
    let context = || format!("fetch offsets of group {group}");
    if version >= 8 {
        let mut g = OffsetFetchRequestGroup::default().with_group_id(gid);
        g.topics = topics.map(|ts| {
            ts.iter()
                .map(|(t, ps)| {
                    OffsetFetchRequestTopics::default()
                        .with_name(name(t))
                        .with_partition_indexes(ps.clone())
                })
                .collect()
        });
        req.groups = vec![g];
        let resp = coord.send_at(&req, version).await?;
        let g = resp
            .groups
            .into_iter()
            .next()
            .ok_or_else(|| ClientError::Protocol {
                addr: coord.addr().to_owned(),
                message: "OffsetFetch response has no group".to_owned(),
            })?;
        ClientError::check(g.error_code, None, context)?;
        for t in g.topics {
            for p in t.partitions {
                ClientError::check(p.error_code, None, context)?;
                if p.committed_offset >= 0 {
                    out.entry(t.name.0.to_string())
                        .or_default()
                        .insert(p.partition_index, p.committed_offset);
                }
            }
        }
    } else {
        req.group_id = gid;
        req.topics = match topics {
            Some(ts) => Some(
                ts.iter()
                    .map(|(t, ps)| {
                        OffsetFetchRequestTopic::default()
                            .with_name(name(t))
                            .with_partition_indexes(ps.clone())
                    })
                    .collect(),
            ),
            // v1 cannot ask for "all topics"; v2+ can with a null array.
            None if version < 2 => {
                return Err(ClientError::UnsupportedApi {
                    addr: coord.addr().to_owned(),
                    api: "OffsetFetch (all topics) v2+".to_owned(),
                })
            }
            None => None,
        };
        let resp = coord.send_at(&req, version).await?;
        if version >= 2 {
            ClientError::check(resp.error_code, None, context)?;
        }
        for t in resp.topics {
            for p in t.partitions {
                ClientError::check(p.error_code, None, context)?;
                if p.committed_offset >= 0 {
                    out.entry(t.name.0.to_string())
                        .or_default()
                        .insert(p.partition_index, p.committed_offset);
                }
            }
        }
    }
    Ok(out)
}

/// OffsetCommit of `offsets` for `group` as member `member_id` of `generation` (a standalone
/// commit uses generation -1 and an empty member id). Fails on the first partition error.
pub async fn commit_offsets(
    coord: &mut Connection,
    group: &str,
    generation: i32,
    member_id: &str,
    offsets: &TopicOffsets,
) -> Result<()> {
    let version = coord.version_at_most(ApiKey::OffsetCommit, BY_NAME_MAX)?;
    let mut req = OffsetCommitRequest::default();
    req.group_id = GroupId(StrBytes::from_string(group.to_owned()));
    req.generation_id_or_member_epoch = generation;
    req.member_id = StrBytes::from_string(member_id.to_owned());
    if (2..=4).contains(&version) {
        req.retention_time_ms = -1; // broker default retention
    }
    req.topics = offsets
        .iter()
        .map(|(t, ps)| {
            OffsetCommitRequestTopic::default()
                .with_name(TopicName(StrBytes::from_string(t.clone())))
                .with_partitions(
                    ps.iter()
                        .map(|(&p, &o)| {
                            OffsetCommitRequestPartition::default()
                                .with_partition_index(p)
                                .with_committed_offset(o)
                                .with_committed_leader_epoch(-1)
                                .with_committed_metadata(Some(StrBytes::default()))
                        })
                        .collect(),
                )
        })
        .collect();
    let resp = coord.send_at(&req, version).await?;
    for t in resp.topics {
        for p in t.partitions {
            ClientError::check(p.error_code, None, || {
                format!(
                    "commit offset of {}-{} for group {group}",
                    t.name.0, p.partition_index
                )
            })?;
        }
    }
    Ok(())
}

/// DescribeGroups for `groups` on their coordinator.
pub async fn describe_groups(
    coord: &mut Connection,
    groups: &[String],
) -> Result<Vec<GroupDescription>> {
    let version = coord.version(ApiKey::DescribeGroups)?;
    let req = DescribeGroupsRequest::default().with_groups(
        groups
            .iter()
            .map(|g| GroupId(StrBytes::from_string(g.clone())))
            .collect(),
    );
    let resp = coord.send_at(&req, version).await?;
    let mut out = Vec::new();
    for g in resp.groups {
        let id = g.group_id.0.to_string();
        ClientError::check(g.error_code, g.error_message.as_deref(), || {
            format!("describe group {id}")
        })?;
        let consumer = g.protocol_type.as_str() == "consumer";
        let members = g
            .members
            .into_iter()
            .map(|m| GroupMember {
                member_id: m.member_id.to_string(),
                group_instance_id: m.group_instance_id.map(|s| s.to_string()),
                client_id: m.client_id.to_string(),
                client_host: m.client_host.to_string(),
                // A member with an undecodable assignment is still worth listing.
                assignment: if consumer {
                    decode_assignment(&m.member_assignment).unwrap_or_default()
                } else {
                    BTreeMap::new()
                },
            })
            .collect();
        out.push(GroupDescription {
            group_id: id,
            state: g.group_state.to_string(),
            protocol_type: g.protocol_type.to_string(),
            protocol: g.protocol_data.to_string(),
            members,
        });
    }
    Ok(out)
}

/// ConsumerGroupDescribe (KIP-848) of one group on the coordinator, in DescribeGroups'
/// shape: protocol type `consumer`, the server-side assignor as the protocol, each member's
/// current assignment.
pub async fn consumer_group_describe(
    coord: &mut Connection,
    group: &str,
) -> Result<GroupDescription> {
    let version = coord.version(ApiKey::ConsumerGroupDescribe)?;
    let req = ConsumerGroupDescribeRequest::default()
        .with_group_ids(vec![GroupId(StrBytes::from_string(group.to_owned()))]);
    let resp = coord.send_at(&req, version).await?;
    let g = ClientError::first_result(resp.groups, coord.addr(), "ConsumerGroupDescribe", group)?;
    ClientError::check(g.error_code, g.error_message.as_deref(), || {
        format!("describe consumer group {group}")
    })?;
    let members = g
        .members
        .into_iter()
        .map(|m| GroupMember {
            member_id: m.member_id.to_string(),
            group_instance_id: m.instance_id.map(|s| s.to_string()),
            client_id: m.client_id.to_string(),
            client_host: m.client_host.to_string(),
            assignment: m
                .assignment
                .topic_partitions
                .into_iter()
                .map(|tp| (tp.topic_name.0.to_string(), tp.partitions))
                .collect(),
        })
        .collect();
    Ok(GroupDescription {
        group_id: g.group_id.0.to_string(),
        state: g.group_state.to_string(),
        protocol_type: "consumer".to_owned(),
        protocol: g.assignor_name.to_string(),
        members,
    })
}

/// DeleteGroups on the coordinator; one result per group, in request order.
pub async fn delete_groups(
    coord: &mut Connection,
    groups: &[String],
) -> Result<Vec<(String, Result<()>)>> {
    let version = coord.version(ApiKey::DeleteGroups)?;
    let req = DeleteGroupsRequest::default().with_groups_names(
        groups
            .iter()
            .map(|g| GroupId(StrBytes::from_string(g.clone())))
            .collect(),
    );
    let resp = coord.send_at(&req, version).await?;
    Ok(groups
        .iter()
        .map(|g| {
            let r = resp
                .results
                .iter()
                .find(|r| r.group_id.0.as_str() == g)
                .ok_or_else(|| ClientError::no_result(coord.addr(), "DeleteGroups", g))
                .and_then(|r| {
                    ClientError::check(r.error_code, None, || format!("delete group {g}"))
                });
            (g.clone(), r)
        })
        .collect())
}

impl Admin {
    /// A connection to the coordinator of `group`.
    pub async fn coordinator(&mut self, group: &str) -> Result<Connection> {
        let config = self.cluster().config().clone();
        let conn = self.cluster().control().await?;
        connect_coordinator(conn, group, &config).await
    }

    /// ListGroups on every broker of the cluster, merged and sorted by id.
    pub async fn list_groups(&mut self) -> Result<Vec<GroupListing>> {
        self.list_groups_of_type(&[]).await
    }

    /// ListGroups of the given group types only (`share`, `consumer`, `classic`, ...; Kafka's
    /// `types_filter`, v5+; every type when empty), on every broker, merged and sorted by id.
    pub async fn list_groups_of_type(&mut self, types: &[&str]) -> Result<Vec<GroupListing>> {
        let md = self.cluster().metadata(Some(&[])).await?;
        let mut out = BTreeMap::new();
        let filter: Vec<StrBytes> = types
            .iter()
            .map(|t| StrBytes::from_string((*t).to_owned()))
            .collect();
        for node in md.brokers.keys() {
            let conn = self.cluster().broker(*node).await?;
            let version = conn.version(ApiKey::ListGroups)?;
            if !filter.is_empty() && version < 5 {
                return Err(ClientError::Other(format!(
                    "broker {node} cannot list groups by type (ListGroups v{version})"
                )));
            }
            let req = ListGroupsRequest::default().with_types_filter(filter.clone());
            let resp = conn.send_at(&req, version).await?;
            ClientError::check(resp.error_code, None, || {
                format!("list groups on broker {node}")
            })?;
            for g in resp.groups {
                let l = GroupListing {
                    group_id: g.group_id.0.to_string(),
                    state: g.group_state.to_string(),
                    protocol_type: g.protocol_type.to_string(),
                    group_type: g.group_type.to_string(),
                };
                out.insert(l.group_id.clone(), l);
            }
        }
        Ok(out.into_values().collect())
    }

    /// Describes one group: DescribeGroups, and for a group it does not know (Dead, or
    /// GROUP_ID_NOT_FOUND from v6) ConsumerGroupDescribe when the broker serves it, since
    /// DescribeGroups does not describe the consumer groups of KIP-848.
    pub async fn describe_group(&mut self, group: &str) -> Result<GroupDescription> {
        let mut coord = self.coordinator(group).await?;
        let classic = describe_groups(&mut coord, &[group.to_owned()])
            .await
            .and_then(|d| ClientError::first_result(d, coord.addr(), "DescribeGroups", group));
        let unknown = match &classic {
            Ok(d) => d.state == "Dead",
            Err(ClientError::Kafka { code, .. }) => *code == ErrorCode::GROUP_ID_NOT_FOUND,
            Err(_) => false,
        };
        if unknown && coord.supports(ApiKey::ConsumerGroupDescribe) {
            if let Ok(d) = consumer_group_describe(&mut coord, group).await {
                return Ok(d);
            }
        }
        classic
    }

    /// Committed offsets of `group` (all topics when `topics` is `None`).
    pub async fn fetch_group_offsets(
        &mut self,
        group: &str,
        topics: Option<&BTreeMap<String, Vec<i32>>>,
    ) -> Result<TopicOffsets> {
        let mut coord = self.coordinator(group).await?;
        fetch_offsets(&mut coord, group, topics).await
    }

    /// Commits offsets for `group` outside any generation (generation -1, no member id); the
    /// coordinator accepts this only while the group has no active members.
    pub async fn commit_group_offsets(
        &mut self,
        group: &str,
        offsets: &TopicOffsets,
    ) -> Result<()> {
        let mut coord = self.coordinator(group).await?;
        commit_offsets(&mut coord, group, -1, "", offsets).await
    }

    /// Deletes one group (it must be empty).
    pub async fn delete_group(&mut self, group: &str) -> Result<()> {
        let mut coord = self.coordinator(group).await?;
        match delete_groups(&mut coord, &[group.to_owned()]).await?.pop() {
            Some((_, r)) => r,
            None => Err(ClientError::Other(format!("no result for group {group}"))),
        }
    }
}
