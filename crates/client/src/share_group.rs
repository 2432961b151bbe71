//! Share-group admin requests (KIP-932, `kafka-share-groups.sh`): ShareGroupDescribe,
//! DescribeShareGroupOffsets, AlterShareGroupOffsets and DeleteShareGroupOffsets, each sent to
//! the group's coordinator (FindCoordinator, key type group), as functions over a coordinator
//! [`Connection`] and their faces on [`Admin`]. Listing share groups is ListGroups with the
//! `share` type ([`Admin::list_groups_of_type`]); deleting one is DeleteGroups
//! ([`Admin::delete_group`]); their configs are the GROUP config resource
//! ([`crate::ConfigResource::Group`]).
//!
//! ```text
//! any broker ─► FindCoordinator(group) ─► coordinator ◄─ ShareGroupDescribe (v1)
//!                                                     ◄─ DescribeShareGroupOffsets (v0-1)
//!                                                     ◄─ AlterShareGroupOffsets (v0)
//!                                                     ◄─ DeleteShareGroupOffsets (v0)
//! ```

use std::collections::BTreeMap;

use kafka_protocol::messages::alter_share_group_offsets_request::{
    AlterShareGroupOffsetsRequestPartition, AlterShareGroupOffsetsRequestTopic,
};
use kafka_protocol::messages::delete_share_group_offsets_request::DeleteShareGroupOffsetsRequestTopic;
use kafka_protocol::messages::describe_share_group_offsets_request::{
    DescribeShareGroupOffsetsRequestGroup, DescribeShareGroupOffsetsRequestTopic,
};
use kafka_protocol::messages::{
    AlterShareGroupOffsetsRequest, ApiKey, DeleteShareGroupOffsetsRequest,
    DescribeShareGroupOffsetsRequest, GroupId, ShareGroupDescribeRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;

use crate::admin::Admin;
use crate::connection::Connection;
use crate::error::{ClientError, Result};

/// One member of a share group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareGroupMember {
    /// Member id (chosen by the client, KIP-932).
    pub member_id: String,
    /// The member's rack, if it gave one.
    pub rack_id: Option<String>,
    /// The member's epoch.
    pub member_epoch: i32,
    /// The member's `client.id`.
    pub client_id: String,
    /// The member's host as the coordinator saw it.
    pub client_host: String,
    /// The topics it subscribes to.
    pub subscribed_topics: Vec<String>,
    /// Its assigned partitions, by topic name.
    pub assignment: BTreeMap<String, Vec<i32>>,
}

/// A share group as ShareGroupDescribe reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareGroupDescription {
    /// Group id.
    pub group_id: String,
    /// `Empty`, `Stable`, `Dead`, ...
    pub state: String,
    /// The group epoch.
    pub group_epoch: i32,
    /// The epoch of the target assignment.
    pub assignment_epoch: i32,
    /// The server-side assignor (`simple`).
    pub assignor: String,
    /// Members.
    pub members: Vec<ShareGroupMember>,
}

/// A share group's start offsets (the share-partition start offset, SPSO) by topic, then
/// partition; `None` where the share-partition has not been initialized.
pub type ShareOffsets = BTreeMap<String, BTreeMap<i32, Option<i64>>>;

/// One share-partition as DescribeShareGroupOffsets shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SharePartitionOffset {
    /// The share-partition start offset; `None` where it has not been initialized.
    pub start_offset: Option<i64>,
    /// The lag the coordinator answered (v1, KIP-1226: the records from the start offset up
    /// to the high watermark not yet delivered for good); `None` where it could not tell it,
    /// or spoke only v0.
    pub lag: Option<i64>,
}

/// [`SharePartitionOffset`]s by topic, then partition.
pub type ShareOffsetsAndLag = BTreeMap<String, BTreeMap<i32, SharePartitionOffset>>;

fn group_id(group: &str) -> GroupId {
    GroupId(StrBytes::from_string(group.to_owned()))
}

fn topic_name(topic: &str) -> TopicName {
    TopicName(StrBytes::from_string(topic.to_owned()))
}

/// ShareGroupDescribe of one group on its coordinator. A group that is not a share group is
/// GROUP_ID_NOT_FOUND (or INVALID_GROUP_TYPE), as Kafka answers.
pub async fn share_group_describe(
    coord: &mut Connection,
    group: &str,
) -> Result<ShareGroupDescription> {
    let version = coord.version(ApiKey::ShareGroupDescribe)?;
    let req = ShareGroupDescribeRequest::default().with_group_ids(vec![group_id(group)]);
    let resp = coord.send_at(&req, version).await?;
    let g = ClientError::first_result(resp.groups, coord.addr(), "ShareGroupDescribe", group)?;
    ClientError::check(g.error_code, g.error_message.as_deref(), || {
        format!("describe share group {group}")
    })?;
    let members = g
        .members
        .into_iter()
        .map(|m| ShareGroupMember {
            member_id: m.member_id.to_string(),
            rack_id: m.rack_id.map(|r| r.to_string()),
            member_epoch: m.member_epoch,
            client_id: m.client_id.to_string(),
            client_host: m.client_host.to_string(),
            subscribed_topics: m
                .subscribed_topic_names
                .into_iter()
                .map(|t| t.0.to_string())
                .collect(),
            assignment: m
                .assignment
                .topic_partitions
                .into_iter()
                .map(|tp| (tp.topic_name.0.to_string(), tp.partitions))
                .collect(),
        })
        .collect();
    Ok(ShareGroupDescription {
        group_id: g.group_id.0.to_string(),
        state: g.group_state.to_string(),
        group_epoch: g.group_epoch,
        assignment_epoch: g.assignment_epoch,
        assignor: g.assignor_name.to_string(),
        members,
    })
}

/// DescribeShareGroupOffsets of one group: every topic the group has state for when `topics`
/// is `None`, else those partitions. A partition-level error fails the call.
pub async fn describe_share_group_offsets(
    coord: &mut Connection,
    group: &str,
    topics: Option<&BTreeMap<String, Vec<i32>>>,
) -> Result<ShareOffsets> {
    let described = describe_share_group_offsets_and_lag(coord, group, topics).await?;
    Ok(described
        .into_iter()
        .map(|(t, ps)| {
            let ps = ps.into_iter().map(|(p, o)| (p, o.start_offset)).collect();
            (t, ps)
        })
        .collect())
}

/// [`describe_share_group_offsets`] with each share-partition's lag, as the coordinator
/// answers it (at the newest version both speak: v1 has the lag).
pub async fn describe_share_group_offsets_and_lag(
    coord: &mut Connection,
    group: &str,
    topics: Option<&BTreeMap<String, Vec<i32>>>,
) -> Result<ShareOffsetsAndLag> {
    let version = coord.version(ApiKey::DescribeShareGroupOffsets)?;
    let req = DescribeShareGroupOffsetsRequest::default().with_groups(vec![
        DescribeShareGroupOffsetsRequestGroup::default()
            .with_group_id(group_id(group))
            .with_topics(topics.map(|ts| {
                ts.iter()
                    .map(|(t, ps)| {
                        DescribeShareGroupOffsetsRequestTopic::default()
                            .with_topic_name(topic_name(t))
                            .with_partitions(ps.clone())
                    })
                    .collect()
            })),
    ]);
    let resp = coord.send_at(&req, version).await?;
    let g = ClientError::first_result(
        resp.groups,
        coord.addr(),
        "DescribeShareGroupOffsets",
        group,
    )?;
    ClientError::check(g.error_code, g.error_message.as_deref(), || {
        format!("describe the offsets of share group {group}")
    })?;
    let mut out = ShareOffsetsAndLag::new();
    for t in g.topics {
        let name = t.topic_name.0.to_string();
        for p in t.partitions {
            ClientError::check(p.error_code, p.error_message.as_deref(), || {
                format!(
                    "describe the offset of share group {group} on {name}-{}",
                    p.partition_index
                )
            })?;
            // A v0 answer decodes the lag as its default, -1.
            let offset = SharePartitionOffset {
                start_offset: (p.start_offset >= 0).then_some(p.start_offset),
                lag: (p.lag >= 0 && version >= 1).then_some(p.lag),
            };
            out.entry(name.clone())
                .or_default()
                .insert(p.partition_index, offset);
        }
    }
    Ok(out)
}

/// AlterShareGroupOffsets: sets the start offsets of the share-partitions named (the group
/// must be empty). A group- or partition-level error fails the call.
pub async fn alter_share_group_offsets(
    coord: &mut Connection,
    group: &str,
    offsets: &BTreeMap<String, BTreeMap<i32, i64>>,
) -> Result<()> {
    let version = coord.version(ApiKey::AlterShareGroupOffsets)?;
    let req = AlterShareGroupOffsetsRequest::default()
        .with_group_id(group_id(group))
        .with_topics(
            offsets
                .iter()
                .map(|(t, ps)| {
                    AlterShareGroupOffsetsRequestTopic::default()
                        .with_topic_name(topic_name(t))
                        .with_partitions(
                            ps.iter()
                                .map(|(p, o)| {
                                    AlterShareGroupOffsetsRequestPartition::default()
                                        .with_partition_index(*p)
                                        .with_start_offset(*o)
                                })
                                .collect(),
                        )
                })
                .collect(),
        );
    let resp = coord.send_at(&req, version).await?;
    ClientError::check(resp.error_code, resp.error_message.as_deref(), || {
        format!("alter the offsets of share group {group}")
    })?;
    for t in resp.responses {
        for p in t.partitions {
            ClientError::check(p.error_code, p.error_message.as_deref(), || {
                format!(
                    "alter the offset of share group {group} on {}-{}",
                    t.topic_name.0, p.partition_index
                )
            })?;
        }
    }
    Ok(())
}

/// DeleteShareGroupOffsets: forgets the group's state of whole topics (the group must be
/// empty); one result per topic, in request order.
pub async fn delete_share_group_offsets(
    coord: &mut Connection,
    group: &str,
    topics: &[String],
) -> Result<Vec<(String, Result<()>)>> {
    let version = coord.version(ApiKey::DeleteShareGroupOffsets)?;
    let req = DeleteShareGroupOffsetsRequest::default()
        .with_group_id(group_id(group))
        .with_topics(
            topics
                .iter()
                .map(|t| {
                    DeleteShareGroupOffsetsRequestTopic::default().with_topic_name(topic_name(t))
                })
                .collect(),
        );
    let resp = coord.send_at(&req, version).await?;
    ClientError::check(resp.error_code, resp.error_message.as_deref(), || {
        format!("delete the offsets of share group {group}")
    })?;
    Ok(topics
        .iter()
        .map(|t| {
            let r = resp
                .responses
                .iter()
                .find(|r| r.topic_name.0.as_str() == t)
                .ok_or_else(|| ClientError::no_result(coord.addr(), "DeleteShareGroupOffsets", t))
                .and_then(|r| {
                    ClientError::check(r.error_code, r.error_message.as_deref(), || {
                        format!("delete the offsets of share group {group} on {t}")
                    })
                });
            (t.clone(), r)
        })
        .collect())
}

impl Admin {
    /// The share groups of the cluster (ListGroups with the `share` type).
    pub async fn list_share_groups(&mut self) -> Result<Vec<crate::GroupListing>> {
        self.list_groups_of_type(&["share"]).await
    }

    /// Describes one share group.
    pub async fn describe_share_group(&mut self, group: &str) -> Result<ShareGroupDescription> {
        let mut coord = self.coordinator(group).await?;
        share_group_describe(&mut coord, group).await
    }

    /// The start offsets of a share group's share-partitions (all when `topics` is `None`).
    pub async fn describe_share_group_offsets(
        &mut self,
        group: &str,
        topics: Option<&BTreeMap<String, Vec<i32>>>,
    ) -> Result<ShareOffsets> {
        let mut coord = self.coordinator(group).await?;
        describe_share_group_offsets(&mut coord, group, topics).await
    }

    /// The start offsets and lags of a share group's share-partitions (all when `topics` is
    /// `None`); lags only from a coordinator that serves DescribeShareGroupOffsets v1.
    pub async fn describe_share_group_offsets_and_lag(
        &mut self,
        group: &str,
        topics: Option<&BTreeMap<String, Vec<i32>>>,
    ) -> Result<ShareOffsetsAndLag> {
        let mut coord = self.coordinator(group).await?;
        describe_share_group_offsets_and_lag(&mut coord, group, topics).await
    }

    /// Sets start offsets of an empty share group's share-partitions.
    pub async fn alter_share_group_offsets(
        &mut self,
        group: &str,
        offsets: &BTreeMap<String, BTreeMap<i32, i64>>,
    ) -> Result<()> {
        let mut coord = self.coordinator(group).await?;
        alter_share_group_offsets(&mut coord, group, offsets).await
    }

    /// Deletes an empty share group's state of whole topics.
    pub async fn delete_share_group_offsets(
        &mut self,
        group: &str,
        topics: &[String],
    ) -> Result<Vec<(String, Result<()>)>> {
        let mut coord = self.coordinator(group).await?;
        delete_share_group_offsets(&mut coord, group, topics).await
    }
}
