//! Typed requests and answers of the consumer group APIs (ConsumerGroupHeartbeat, API 68;
//! ConsumerGroupDescribe, API 69) and of the consumer-group views of ListGroups,
//! DescribeGroups and the offset APIs. The broker decodes the wire request into these and
//! encodes what comes back; field names follow Kafka's schemas.

use super::topics::TopicId;
use crate::records::Record;

/// Kafka error codes of the KIP-848 APIs that the classic ones do not use.
pub mod codes {
    pub const NONE: i16 = 0;
    pub const UNSUPPORTED_VERSION: i16 = 35;
    pub const INVALID_REQUEST: i16 = 42;
    pub const UNKNOWN_MEMBER_ID: i16 = 25;
    pub const NON_EMPTY_GROUP: i16 = 68;
    pub const GROUP_ID_NOT_FOUND: i16 = 69;
    pub const GROUP_MAX_SIZE_REACHED: i16 = 81;
    pub const FENCED_INSTANCE_ID: i16 = 82;
    pub const FENCED_MEMBER_EPOCH: i16 = 110;
    pub const UNRELEASED_INSTANCE_ID: i16 = 111;
    pub const UNSUPPORTED_ASSIGNOR: i16 = 112;
    pub const STALE_MEMBER_EPOCH: i16 = 113;
    pub const INVALID_REGULAR_EXPRESSION: i16 = 128;
}

/// One topic's partitions, by topic id, as the heartbeat carries them.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HeartbeatTopicPartitions {
    pub topic_id: TopicId,
    pub partitions: Vec<i32>,
}

/// ConsumerGroupHeartbeat (API 68). `None` fields are null on the wire: "unchanged".
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConsumerGroupHeartbeatRequest {
    /// The request's version: v1+ requires a client-generated member id (KIP-1082).
    pub api_version: i16,
    pub group_id: String,
    pub member_id: String,
    /// 0 joins, -1 leaves, -2 leaves a static member for now; otherwise the current epoch.
    pub member_epoch: i32,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    /// -1 when unchanged.
    pub rebalance_timeout_ms: i32,
    pub subscribed_topic_names: Option<Vec<String>>,
    /// v1+: a regex (RE2 syntax) over whole topic names; "" drops it.
    pub subscribed_topic_regex: Option<String>,
    pub server_assignor: Option<String>,
    /// The partitions the member owns.
    pub topic_partitions: Option<Vec<HeartbeatTopicPartitions>>,
    /// From the request header.
    pub client_id: String,
    /// The client's address as the broker saw it ("/1.2.3.4").
    pub client_host: String,
}

/// ConsumerGroupHeartbeat response.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ConsumerGroupHeartbeatResponse {
    pub error_code: i16,
    pub error_message: Option<String>,
    pub member_id: Option<String>,
    pub member_epoch: i32,
    pub heartbeat_interval_ms: i32,
    /// `None` (null) when the assignment did not change and was not asked for.
    pub assignment: Option<Vec<HeartbeatTopicPartitions>>,
}

impl ConsumerGroupHeartbeatResponse {
    /// An error answer, as Kafka builds it from an exception.
    pub fn error(error_code: i16, message: impl Into<String>) -> ConsumerGroupHeartbeatResponse {
        ConsumerGroupHeartbeatResponse {
            error_code,
            error_message: Some(message.into()),
            ..ConsumerGroupHeartbeatResponse::default()
        }
    }
}

/// Records to append to `__consumer_offsets` partition `partition` before answering.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerGroupAppend {
    pub partition: i32,
    pub records: Vec<Record>,
}

/// What a heartbeat returns: append `append` (if any), then send `response`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeartbeatResult {
    pub response: ConsumerGroupHeartbeatResponse,
    pub append: Option<ConsumerGroupAppend>,
}

/// A topic's partitions as ConsumerGroupDescribe lists them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribedTopicPartitions {
    pub topic_id: TopicId,
    pub topic_name: String,
    pub partitions: Vec<i32>,
}

/// One member in a ConsumerGroupDescribe answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribedConsumerGroupMember {
    pub member_id: String,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub member_epoch: i32,
    pub client_id: String,
    pub client_host: String,
    pub subscribed_topic_names: Vec<String>,
    pub subscribed_topic_regex: Option<String>,
    pub assignment: Vec<DescribedTopicPartitions>,
    pub target_assignment: Vec<DescribedTopicPartitions>,
    /// v1+ (KIP-1099): 1 for a member of the consumer protocol (0 would be classic).
    pub member_type: i8,
}

/// One group in a ConsumerGroupDescribe (API 69) answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribedConsumerGroup {
    pub error_code: i16,
    pub error_message: Option<String>,
    pub group_id: String,
    pub group_state: String,
    pub group_epoch: i32,
    pub assignment_epoch: i32,
    pub assignor_name: String,
    pub members: Vec<DescribedConsumerGroupMember>,
}

impl DescribedConsumerGroup {
    /// GROUP_ID_NOT_FOUND for `group_id` (Kafka's messages: "Group {id} not found." or,
    /// for a classic group, "Group {id} is not a consumer group.").
    pub fn not_found(group_id: &str, message: impl Into<String>) -> DescribedConsumerGroup {
        DescribedConsumerGroup {
            error_code: codes::GROUP_ID_NOT_FOUND,
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

/// A consumer group as ListGroups lists it (v5 has the group type).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedConsumerGroup {
    pub group_id: String,
    /// "consumer".
    pub protocol_type: String,
    pub group_state: String,
    /// "consumer".
    pub group_type: String,
}

/// How DescribeGroups (API 15, the classic API) answers for a consumer group. Kafka 4.x
/// describes only classic groups there: v6+ answers GROUP_ID_NOT_FOUND with "Group {id} is
/// not a classic group.", older versions no error; both in state "Dead", with no protocol
/// type, protocol or members (clients then use ConsumerGroupDescribe).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClassicDescribeAnswer {
    pub error_code: i16,
    pub error_message: Option<String>,
    pub group_state: String,
}

/// The outcome of checking an OffsetCommit or OffsetFetch against the consumer groups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OffsetCheck {
    /// The group is not a consumer group: the classic path decides.
    NotConsumerGroup,
    /// The request may go on (the offsets are stored as for any group).
    Accepted,
    /// Answer every partition with `error_code`.
    Rejected { error_code: i16, message: String },
}
