//! Typed requests and answers of the streams group APIs (StreamsGroupHeartbeat, API 88;
//! StreamsGroupDescribe, API 89) as the core sees them. The broker decodes the wire request
//! into these and encodes what comes back; field names follow Kafka's schemas.

pub use super::records::{
    CopartitionGroup, Endpoint, Subtopology, TopicInfo, TopologyValue as Topology,
};
use super::tasks::TaskMap;
use crate::records::Record;

/// Kafka error codes of the streams group APIs.
pub mod codes {
    pub const NONE: i16 = 0;
    pub const UNKNOWN_MEMBER_ID: i16 = 25;
    pub const INVALID_REQUEST: i16 = 42;
    pub const GROUP_ID_NOT_FOUND: i16 = 69;
    pub const GROUP_MAX_SIZE_REACHED: i16 = 81;
    pub const FENCED_INSTANCE_ID: i16 = 82;
    pub const FENCED_MEMBER_EPOCH: i16 = 110;
    pub const UNRELEASED_INSTANCE_ID: i16 = 111;
    pub const STALE_MEMBER_EPOCH: i16 = 113;
    pub const STREAMS_INVALID_TOPOLOGY: i16 = 130;
    pub const STREAMS_INVALID_TOPOLOGY_EPOCH: i16 = 131;
    pub const STREAMS_TOPOLOGY_FENCED: i16 = 132;
}

/// The heartbeat's status codes (`Status.StatusCode`).
pub mod status {
    pub const STALE_TOPOLOGY: i8 = 0;
    pub const MISSING_SOURCE_TOPICS: i8 = 1;
    pub const INCORRECTLY_PARTITIONED_TOPICS: i8 = 2;
    pub const MISSING_INTERNAL_TOPICS: i8 = 3;
    pub const SHUTDOWN_APPLICATION: i8 = 4;
    pub const ASSIGNMENT_DELAYED: i8 = 5;
    pub const MISSING_CLIENT_TAGS: i8 = 6;
}

/// A changelog offset of one task (`TaskOffset`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TaskOffset {
    pub subtopology_id: String,
    pub partition: i32,
    pub offset: i64,
}

/// StreamsGroupHeartbeat (API 88). `None` fields are null on the wire: "unchanged".
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StreamsGroupHeartbeatRequest {
    pub api_version: i16,
    pub group_id: String,
    pub member_id: String,
    /// 0 joins, -1 leaves, -2 leaves a static member for now; otherwise the current epoch.
    pub member_epoch: i32,
    pub endpoint_information_epoch: i32,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    /// -1 when unchanged.
    pub rebalance_timeout_ms: i32,
    /// Only on a join (member epoch 0).
    pub topology: Option<Topology>,
    pub active_tasks: Option<TaskMap>,
    pub standby_tasks: Option<TaskMap>,
    pub warmup_tasks: Option<TaskMap>,
    pub process_id: Option<String>,
    pub user_endpoint: Option<Endpoint>,
    pub client_tags: Option<Vec<(String, String)>>,
    pub task_offsets: Option<Vec<TaskOffset>>,
    pub task_end_offsets: Option<Vec<TaskOffset>>,
    pub shutdown_application: bool,
    /// From the request header.
    pub client_id: String,
    /// The client's address as the broker saw it ("/1.2.3.4").
    pub client_host: String,
}

/// One status of the group in a heartbeat answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    pub code: i8,
    pub detail: String,
}

/// The partitions of one topic (`TopicPartition` in the answer's endpoint information).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TopicPartitions {
    pub topic: String,
    pub partitions: Vec<i32>,
}

/// Where one member's tasks' partitions are served (`EndpointToPartitions`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct EndpointToPartitions {
    pub user_endpoint: Endpoint,
    pub active_partitions: Vec<TopicPartitions>,
    pub standby_partitions: Vec<TopicPartitions>,
}

/// StreamsGroupHeartbeat response.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StreamsGroupHeartbeatResponse {
    pub error_code: i16,
    pub error_message: Option<String>,
    pub member_id: String,
    pub member_epoch: i32,
    pub heartbeat_interval_ms: i32,
    pub acceptable_recovery_lag: i64,
    pub task_offset_interval_ms: i32,
    /// `None`: null on the wire.
    pub status: Option<Vec<Status>>,
    /// `None` when unchanged.
    pub active_tasks: Option<TaskMap>,
    pub standby_tasks: Option<TaskMap>,
    pub warmup_tasks: Option<TaskMap>,
    pub endpoint_information_epoch: i32,
    /// `None` when unchanged.
    pub partitions_by_user_endpoint: Option<Vec<EndpointToPartitions>>,
}

impl StreamsGroupHeartbeatResponse {
    /// An error answer, as Kafka builds it from an exception.
    pub fn error(error_code: i16, message: impl Into<String>) -> StreamsGroupHeartbeatResponse {
        StreamsGroupHeartbeatResponse {
            error_code,
            error_message: Some(message.into()),
            ..StreamsGroupHeartbeatResponse::default()
        }
    }
}

/// Records to append to `__consumer_offsets` partition `partition` before answering.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamsGroupAppend {
    pub partition: i32,
    pub records: Vec<Record>,
}

/// Internal topics the coordinator found missing: the broker creates them (Kafka's
/// `KafkaApis` does, on MISSING_INTERNAL_TOPICS) and answers meanwhile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicToCreate {
    pub name: String,
    pub partitions: i32,
    /// 0 or less: the broker's default.
    pub replication_factor: i16,
    pub configs: Vec<(String, String)>,
}

/// What a heartbeat returns: append `append` (if any), create `create_topics`, then send
/// `response`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamsHeartbeatResult {
    pub response: StreamsGroupHeartbeatResponse,
    pub append: Option<StreamsGroupAppend>,
    pub create_topics: Vec<TopicToCreate>,
}

/// One member in a StreamsGroupDescribe answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribedStreamsMember {
    pub member_id: String,
    pub member_epoch: i32,
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub topology_epoch: i32,
    pub process_id: String,
    pub user_endpoint: Option<Endpoint>,
    pub client_tags: Vec<(String, String)>,
    /// The tasks the member holds now (not those it is giving up).
    pub assignment: super::tasks::Tasks,
    pub target_assignment: super::tasks::Tasks,
}

/// One group in a StreamsGroupDescribe (API 89) answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribedStreamsGroup {
    pub error_code: i16,
    pub error_message: Option<String>,
    pub group_id: String,
    pub group_state: String,
    pub group_epoch: i32,
    pub assignment_epoch: i32,
    /// The topology as configured against the topics when it is ready, else as the members
    /// sent it; subtopologies sorted by id, topics by name. `None` only in an error answer.
    pub topology: Option<Topology>,
    pub members: Vec<DescribedStreamsMember>,
    pub assignor_name: Option<String>,
}

impl DescribedStreamsGroup {
    /// An error entry for `group_id`.
    pub fn error(
        group_id: &str,
        error_code: i16,
        message: impl Into<String>,
    ) -> DescribedStreamsGroup {
        DescribedStreamsGroup {
            error_code,
            error_message: Some(message.into()),
            group_id: group_id.to_string(),
            group_state: String::new(),
            group_epoch: 0,
            assignment_epoch: 0,
            topology: None,
            members: Vec::new(),
            assignor_name: None,
        }
    }
}

/// A streams group as ListGroups lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedStreamsGroup {
    pub group_id: String,
    /// "streams".
    pub protocol_type: String,
    pub group_state: String,
    /// "streams".
    pub group_type: String,
}
