//! Typed requests and answers of the share group APIs (ShareGroupHeartbeat, API 76;
//! ShareGroupDescribe, API 77) and of the share-group views of ListGroups and the share
//! admin APIs. The broker decodes the wire request into these and encodes what comes back;
//! field names follow Kafka's schemas.

use crate::consumer_group::{
    ConsumerGroupAppend, DescribedTopicPartitions, HeartbeatTopicPartitions, TopicPartitions,
};

/// Records to append to a `__consumer_offsets` partition before answering (the same shape
/// as a consumer group's).
pub type ShareGroupAppend = ConsumerGroupAppend;

/// Member epoch of a heartbeat that joins (or rejoins) the group.
pub const JOIN_GROUP_MEMBER_EPOCH: i32 = 0;
/// Member epoch of a heartbeat that leaves the group.
pub const LEAVE_GROUP_MEMBER_EPOCH: i32 = -1;

/// ShareGroupHeartbeat (API 76, v1). `None` fields are null on the wire: "unchanged".
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ShareGroupHeartbeatRequest {
    pub group_id: String,
    /// Chosen by the client (a UUID); never empty.
    pub member_id: String,
    /// 0 joins, -1 leaves; otherwise the current epoch.
    pub member_epoch: i32,
    pub rack_id: Option<String>,
    /// Set on a full request (joining); null when unchanged.
    pub subscribed_topic_names: Option<Vec<String>>,
    /// From the request header.
    pub client_id: String,
    /// The client's address as the broker saw it ("/1.2.3.4").
    pub client_host: String,
}

/// ShareGroupHeartbeat response.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ShareGroupHeartbeatResponse {
    pub error_code: i16,
    pub error_message: Option<String>,
    pub member_id: Option<String>,
    pub member_epoch: i32,
    pub heartbeat_interval_ms: i32,
    /// `None` (null) when the assignment did not change and was not asked for.
    pub assignment: Option<Vec<HeartbeatTopicPartitions>>,
}

impl ShareGroupHeartbeatResponse {
    /// An error answer, as Kafka builds it from an exception.
    pub fn error(error_code: i16, message: impl Into<String>) -> ShareGroupHeartbeatResponse {
        ShareGroupHeartbeatResponse {
            error_code,
            error_message: Some(message.into()),
            ..ShareGroupHeartbeatResponse::default()
        }
    }
}

/// Share-partitions whose state the broker must initialize with the persister
/// (InitializeShareGroupState at `state_epoch`, start offset -1), then report with
/// [`ShareGroupCoordinator::initialize_completed`](super::ShareGroupCoordinator::initialize_completed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitializeRequest {
    pub group_id: String,
    /// Kafka initializes at the group epoch.
    pub state_epoch: i32,
    pub partitions: TopicPartitions,
}

/// What a heartbeat returns: append `append` (if any), then send `response`; after that
/// (not before answering) initialize `initialize` with the persister.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareHeartbeatResult {
    pub response: ShareGroupHeartbeatResponse,
    pub append: Option<ShareGroupAppend>,
    pub initialize: Option<InitializeRequest>,
}

/// What [`tick`](super::ShareGroupCoordinator::tick) returns.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ShareTickResult {
    /// Records of expired members, per `__consumer_offsets` partition.
    pub appends: Vec<ShareGroupAppend>,
    /// Initializations to try again (after one failed).
    pub initialize: Vec<InitializeRequest>,
}

/// One member in a ShareGroupDescribe answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribedShareGroupMember {
    pub member_id: String,
    pub rack_id: Option<String>,
    pub member_epoch: i32,
    pub client_id: String,
    pub client_host: String,
    pub subscribed_topic_names: Vec<String>,
    pub assignment: Vec<DescribedTopicPartitions>,
}

/// One group in a ShareGroupDescribe (API 77) answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribedShareGroup {
    pub error_code: i16,
    pub error_message: Option<String>,
    pub group_id: String,
    pub group_state: String,
    pub group_epoch: i32,
    pub assignment_epoch: i32,
    pub assignor_name: String,
    pub members: Vec<DescribedShareGroupMember>,
}

impl DescribedShareGroup {
    /// GROUP_ID_NOT_FOUND for `group_id` (Kafka's messages: "Group {id} not found." or,
    /// for a group of another type, "Group {id} is not a share group.").
    pub fn not_found(group_id: &str, message: impl Into<String>) -> DescribedShareGroup {
        DescribedShareGroup {
            error_code: crate::error::code::GROUP_ID_NOT_FOUND,
            error_message: Some(message.into()),
            group_id: group_id.to_string(),
            group_state: String::new(),
            group_epoch: 0,
            assignment_epoch: 0,
            assignor_name: String::new(),
            members: Vec::new(),
        }
    }
}

/// A share group as ListGroups lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedShareGroup {
    pub group_id: String,
    /// "share".
    pub protocol_type: String,
    pub group_state: String,
    /// "share".
    pub group_type: String,
}

/// One topic's share-partitions known to a group (initialized or initializing), for the
/// share admin APIs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShareTopicPartitions {
    pub topic_id: crate::consumer_group::TopicId,
    pub topic_name: String,
    pub partitions: std::collections::BTreeSet<i32>,
}
