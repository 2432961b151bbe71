//! Streams-group admin requests (KIP-1071, `kafka-streams-groups.sh`): StreamsGroupDescribe,
//! sent to the group's coordinator (FindCoordinator, key type group), as a function over a
//! coordinator [`Connection`] and its faces on [`Admin`]. Listing streams groups is ListGroups
//! with the `streams` type ([`Admin::list_groups_of_type`]); their committed offsets are
//! OffsetFetch ([`Admin::fetch_group_offsets`]); deleting one is DeleteGroups
//! ([`Admin::delete_streams_group`] checks first that the group is a streams group).
//!
//! ```text
//! any broker ─► FindCoordinator(group) ─► coordinator ◄─ StreamsGroupDescribe (v0-1)
//!                                                     ◄─ DeleteGroups
//! ```

use std::cmp::Ordering;

use kafka_protocol::messages::streams_group_describe_response::{Assignment, TaskIds, TopicInfo};
use kafka_protocol::messages::{ApiKey, GroupId, StreamsGroupDescribeRequest};
use kafka_protocol::protocol::StrBytes;

use crate::admin::Admin;
use crate::connection::Connection;
use crate::error::{ClientError, Result};

/// Tasks by subtopology id, each with its partitions (sorted), in subtopology order (`0`, `1`,
/// ..., `10`: numeric ids by number).
pub type StreamsTasks = Vec<(String, Vec<i32>)>;

/// A member's tasks of each kind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StreamsAssignment {
    /// Active tasks: the member processes them.
    pub active: StreamsTasks,
    /// Standby tasks: the member keeps a replica of their state.
    pub standby: StreamsTasks,
    /// Warm-up tasks: standbys catching up before they become active here.
    pub warmup: StreamsTasks,
}

/// One member of a streams group (a stream thread of an application instance).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamsGroupMember {
    /// Member id.
    pub member_id: String,
    /// The member's epoch.
    pub member_epoch: i32,
    /// `group.instance.id` of a static member.
    pub instance_id: Option<String>,
    /// The member's rack, if it gave one.
    pub rack_id: Option<String>,
    /// The member's `client.id`.
    pub client_id: String,
    /// The member's host as the coordinator saw it.
    pub client_host: String,
    /// The epoch of the topology the member runs.
    pub topology_epoch: i32,
    /// The id of the application instance (process) the member belongs to.
    pub process_id: String,
    /// The interactive-query endpoint (`host:port`), if the instance has one.
    pub user_endpoint: Option<String>,
    /// The tasks the member owns now.
    pub assignment: StreamsAssignment,
    /// The tasks the coordinator means it to own.
    pub target_assignment: StreamsAssignment,
    /// True for a member that joined with the classic protocol.
    pub is_classic: bool,
}

/// An internal topic of a subtopology (a repartition or changelog topic).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamsTopicInfo {
    /// Topic name.
    pub name: String,
    /// Partition count the application asked for; 0 when the broker decides (a repartition
    /// topic sized from its writers, a changelog sized by its tasks).
    pub partitions: i32,
    /// Replication factor the application asked for; 0 for the broker's default.
    pub replication_factor: i16,
}

/// One subtopology of a streams application's topology.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamsSubtopology {
    /// Subtopology id (`0`, `1`, ...).
    pub subtopology_id: String,
    /// The user topics it reads.
    pub source_topics: Vec<String>,
    /// The repartition topics it writes.
    pub repartition_sink_topics: Vec<String>,
    /// The repartition topics it reads.
    pub repartition_source_topics: Vec<StreamsTopicInfo>,
    /// The changelog topics of its state stores.
    pub state_changelog_topics: Vec<StreamsTopicInfo>,
}

/// The topology a streams group runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamsTopology {
    /// The topology's epoch.
    pub epoch: i32,
    /// Its subtopologies, in subtopology order.
    pub subtopologies: Vec<StreamsSubtopology>,
}

impl StreamsTopology {
    /// The topics the application reads and commits offsets of: every subtopology's source
    /// and repartition source topics, sorted, without repeats.
    pub fn input_topics(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .subtopologies
            .iter()
            .flat_map(|s| {
                s.source_topics
                    .iter()
                    .cloned()
                    .chain(s.repartition_source_topics.iter().map(|t| t.name.clone()))
            })
            .collect();
        out.sort();
        out.dedup();
        out
    }
}

/// A streams group as StreamsGroupDescribe reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamsGroupDescription {
    /// Group id (the application id).
    pub group_id: String,
    /// `Empty`, `NotReady`, `Assigning`, `Reconciling`, `Stable`, `Dead`.
    pub state: String,
    /// The group epoch.
    pub group_epoch: i32,
    /// The epoch of the target assignment.
    pub target_assignment_epoch: i32,
    /// The task assignor the coordinator uses (`sticky`); `None` from a v0 answer, which does
    /// not carry it.
    pub assignor: Option<String>,
    /// The topology the group runs; `None` until a member has sent one.
    pub topology: Option<StreamsTopology>,
    /// Members.
    pub members: Vec<StreamsGroupMember>,
}

/// Where a group is coordinated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoordinatorNode {
    /// The coordinator's `host:port`, as FindCoordinator answered it.
    pub addr: String,
    /// Its node id, when the cluster's metadata names a broker at that address.
    pub node_id: Option<i32>,
}

/// Subtopology ids in order: numeric ids by number, before any other id.
fn subtopology_order(a: &str, b: &str) -> Ordering {
    match (a.parse::<u64>(), b.parse::<u64>()) {
        (Ok(x), Ok(y)) => x.cmp(&y),
        (Ok(_), Err(_)) => Ordering::Less,
        (Err(_), Ok(_)) => Ordering::Greater,
        (Err(_), Err(_)) => a.cmp(b),
    }
}

fn tasks(ids: Vec<TaskIds>) -> StreamsTasks {
    let mut out: StreamsTasks = ids
        .into_iter()
        .map(|t| {
            let mut ps = t.partitions;
            ps.sort_unstable();
            (t.subtopology_id.to_string(), ps)
        })
        .collect();
    out.sort_by(|a, b| subtopology_order(&a.0, &b.0));
    out
}

fn assignment(a: Assignment) -> StreamsAssignment {
    StreamsAssignment {
        active: tasks(a.active_tasks),
        standby: tasks(a.standby_tasks),
        warmup: tasks(a.warmup_tasks),
    }
}

fn topic_infos(infos: Vec<TopicInfo>) -> Vec<StreamsTopicInfo> {
    infos
        .into_iter()
        .map(|t| StreamsTopicInfo {
            name: t.name.0.to_string(),
            partitions: t.partitions,
            replication_factor: t.replication_factor,
        })
        .collect()
}

/// StreamsGroupDescribe of one group on its coordinator. A group that does not exist, or is
/// not a streams group, is GROUP_ID_NOT_FOUND, as Kafka answers ("Group G not found." or
/// "Group G is not a streams group.").
pub async fn streams_group_describe(
    coord: &mut Connection,
    group: &str,
) -> Result<StreamsGroupDescription> {
    let version = coord.version(ApiKey::StreamsGroupDescribe)?;
    let req = StreamsGroupDescribeRequest::default()
        .with_group_ids(vec![GroupId(StrBytes::from_string(group.to_owned()))]);
    let resp = coord.send_at(&req, version).await?;
    let g = ClientError::first_result(resp.groups, coord.addr(), "StreamsGroupDescribe", group)?;
    ClientError::check(g.error_code, g.error_message.as_deref(), || {
        format!("describe streams group {group}")
    })?;
    let topology = g.topology.map(|t| {
        let mut subtopologies: Vec<StreamsSubtopology> = t
            .subtopologies
            .unwrap_or_default()
            .into_iter()
            .map(|s| StreamsSubtopology {
                subtopology_id: s.subtopology_id.to_string(),
                source_topics: s
                    .source_topics
                    .into_iter()
                    .map(|n| n.0.to_string())
                    .collect(),
                repartition_sink_topics: s
                    .repartition_sink_topics
                    .into_iter()
                    .map(|n| n.0.to_string())
                    .collect(),
                repartition_source_topics: topic_infos(s.repartition_source_topics),
                state_changelog_topics: topic_infos(s.state_changelog_topics),
            })
            .collect();
        subtopologies.sort_by(|a, b| subtopology_order(&a.subtopology_id, &b.subtopology_id));
        StreamsTopology {
            epoch: t.epoch,
            subtopologies,
        }
    });
    let members = g
        .members
        .into_iter()
        .map(|m| StreamsGroupMember {
            member_id: m.member_id.to_string(),
            member_epoch: m.member_epoch,
            instance_id: m.instance_id.map(|s| s.to_string()),
            rack_id: m.rack_id.map(|s| s.to_string()),
            client_id: m.client_id.to_string(),
            client_host: m.client_host.to_string(),
            topology_epoch: m.topology_epoch,
            process_id: m.process_id.to_string(),
            user_endpoint: m.user_endpoint.map(|e| {
                if e.host.contains(':') {
                    format!("[{}]:{}", e.host, e.port)
                } else {
                    format!("{}:{}", e.host, e.port)
                }
            }),
            assignment: assignment(m.assignment),
            target_assignment: assignment(m.target_assignment),
            is_classic: m.is_classic,
        })
        .collect();
    Ok(StreamsGroupDescription {
        group_id: g.group_id.0.to_string(),
        state: g.group_state.to_string(),
        group_epoch: g.group_epoch,
        target_assignment_epoch: g.assignment_epoch,
        assignor: g
            .assignor_name
            .filter(|_| version >= 1)
            .map(|a| a.to_string()),
        topology,
        members,
    })
}

impl Admin {
    /// The streams groups of the cluster (ListGroups with the `streams` type).
    pub async fn list_streams_groups(&mut self) -> Result<Vec<crate::GroupListing>> {
        self.list_groups_of_type(&["streams"]).await
    }

    /// Describes one streams group.
    pub async fn describe_streams_group(&mut self, group: &str) -> Result<StreamsGroupDescription> {
        let mut coord = self.coordinator(group).await?;
        streams_group_describe(&mut coord, group).await
    }

    /// Where `group` is coordinated: the coordinator's address and node id.
    pub async fn group_coordinator_node(&mut self, group: &str) -> Result<CoordinatorNode> {
        let addr = self.coordinator(group).await?.addr().to_owned();
        let md = self.cluster().metadata(Some(&[])).await?;
        let node_id = md
            .brokers
            .values()
            .find(|b| b.addr() == addr)
            .map(|b| b.node_id);
        Ok(CoordinatorNode { addr, node_id })
    }

    /// Deletes one streams group (DeleteGroups; the coordinator refuses a group with members,
    /// NON_EMPTY_GROUP). A group that is not a streams group is GROUP_ID_NOT_FOUND, as
    /// StreamsGroupDescribe answers, and is left alone.
    pub async fn delete_streams_group(&mut self, group: &str) -> Result<()> {
        self.describe_streams_group(group).await?;
        self.delete_group(group).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tasks_are_in_subtopology_order_with_sorted_partitions() {
        let ids = ["10", "2", "a", "0"]
            .into_iter()
            .map(|id| {
                TaskIds::default()
                    .with_subtopology_id(StrBytes::from_static_str(id))
                    .with_partitions(vec![2, 0, 1])
            })
            .collect();
        let got = tasks(ids);
        let order: Vec<&str> = got.iter().map(|(id, _)| id.as_str()).collect();
        assert_eq!(order, ["0", "2", "10", "a"]);
        assert!(got.iter().all(|(_, ps)| ps == &[0, 1, 2]));
    }

    #[test]
    fn input_topics_are_sources_and_repartition_sources() {
        let info = |name: &str| StreamsTopicInfo {
            name: name.into(),
            partitions: 0,
            replication_factor: 0,
        };
        let topology = StreamsTopology {
            epoch: 0,
            subtopologies: vec![
                StreamsSubtopology {
                    subtopology_id: "0".into(),
                    source_topics: vec!["in".into()],
                    repartition_sink_topics: vec!["app-r-repartition".into()],
                    repartition_source_topics: vec![],
                    state_changelog_topics: vec![],
                },
                StreamsSubtopology {
                    subtopology_id: "1".into(),
                    source_topics: vec!["in".into()],
                    repartition_sink_topics: vec![],
                    repartition_source_topics: vec![info("app-r-repartition")],
                    state_changelog_topics: vec![info("app-counts-changelog")],
                },
            ],
        };
        assert_eq!(topology.input_topics(), ["app-r-repartition", "in"]);
    }
}
