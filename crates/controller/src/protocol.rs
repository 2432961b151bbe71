//! The controller's requests and responses, typed and as bytes.
//!
//! Brokers (and the broker-side handlers of admin APIs) send these to the active controller;
//! the metadata quorum carries them between nodes as opaque payloads over the controller
//! listener. They are an internal protocol, so the encoding is simple: one version byte
//! ([`PROTOCOL_VERSION`]) and then JSON. Decoding bytes that are not a request of this version
//! is an error, never a panic.
//!
//! Error codes are Kafka's numbers (`gregor_metadata::code`). A response for a request the
//! controller could not take at all (this node is not the active controller, or the bytes were
//! not a request) is [`ControllerResponse::Error`].

use bytes::{BufMut, Bytes, BytesMut};
use gregor_metadata::{BrokerId, Endpoint};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// The first byte of every encoded request and response.
pub const PROTOCOL_VERSION: u8 = 1;

/// Bytes that are not a request or response of this protocol.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    #[error("empty controller message")]
    Empty,
    #[error("unsupported controller protocol version {0}")]
    UnsupportedVersion(u8),
    #[error("malformed controller message: {0}")]
    Malformed(String),
}

fn encode<T: Serialize>(message: &T) -> Bytes {
    let mut buf = BytesMut::with_capacity(128);
    buf.put_u8(PROTOCOL_VERSION);
    let mut writer = buf.writer();
    // Serializing these plain data types to a growable buffer has no failure case.
    serde_json::to_writer(&mut writer, message).expect("controller messages serialize to JSON");
    writer.into_inner().freeze()
}

fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> Result<T, ProtocolError> {
    let (&version, body) = bytes.split_first().ok_or(ProtocolError::Empty)?;
    if version != PROTOCOL_VERSION {
        return Err(ProtocolError::UnsupportedVersion(version));
    }
    serde_json::from_slice(body).map_err(|e| ProtocolError::Malformed(e.to_string()))
}

/// A request to the active controller.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ControllerRequest {
    RegisterBroker(RegisterBrokerRequest),
    BrokerHeartbeat(BrokerHeartbeatRequest),
    CreateTopics(CreateTopicsRequest),
    DeleteTopics(DeleteTopicsRequest),
    CreatePartitions(CreatePartitionsRequest),
    AlterPartition(AlterPartitionRequest),
    ElectLeaders(ElectLeadersRequest),
    AlterPartitionReassignments(AlterPartitionReassignmentsRequest),
    ListPartitionReassignments(ListPartitionReassignmentsRequest),
    AlterConfigs(AlterConfigsRequest),
    AllocateProducerIds(AllocateProducerIdsRequest),
    AlterClientQuotas(AlterClientQuotasRequest),
    AlterUserScramCredentials(AlterUserScramCredentialsRequest),
    CreateAcls(CreateAclsRequest),
    DeleteAcls(DeleteAclsRequest),
    CreateDelegationToken(CreateDelegationTokenRequest),
    RenewDelegationToken(RenewDelegationTokenRequest),
    ExpireDelegationToken(ExpireDelegationTokenRequest),
    UpdateFeatures(UpdateFeaturesRequest),
    UnregisterBroker(UnregisterBrokerRequest),
    AssignReplicasToDirs(AssignReplicasToDirsRequest),
}

impl ControllerRequest {
    pub fn encode(&self) -> Bytes {
        encode(self)
    }

    pub fn decode(bytes: &[u8]) -> Result<ControllerRequest, ProtocolError> {
        decode(bytes)
    }

    /// The Kafka API name, for logs.
    pub fn name(&self) -> &'static str {
        match self {
            ControllerRequest::RegisterBroker(_) => "BrokerRegistration",
            ControllerRequest::BrokerHeartbeat(_) => "BrokerHeartbeat",
            ControllerRequest::CreateTopics(_) => "CreateTopics",
            ControllerRequest::DeleteTopics(_) => "DeleteTopics",
            ControllerRequest::CreatePartitions(_) => "CreatePartitions",
            ControllerRequest::AlterPartition(_) => "AlterPartition",
            ControllerRequest::ElectLeaders(_) => "ElectLeaders",
            ControllerRequest::AlterPartitionReassignments(_) => "AlterPartitionReassignments",
            ControllerRequest::ListPartitionReassignments(_) => "ListPartitionReassignments",
            ControllerRequest::AlterConfigs(_) => "AlterConfigs",
            ControllerRequest::AllocateProducerIds(_) => "AllocateProducerIds",
            ControllerRequest::AlterClientQuotas(_) => "AlterClientQuotas",
            ControllerRequest::AlterUserScramCredentials(_) => "AlterUserScramCredentials",
            ControllerRequest::CreateAcls(_) => "CreateAcls",
            ControllerRequest::DeleteAcls(_) => "DeleteAcls",
            ControllerRequest::CreateDelegationToken(_) => "CreateDelegationToken",
            ControllerRequest::RenewDelegationToken(_) => "RenewDelegationToken",
            ControllerRequest::ExpireDelegationToken(_) => "ExpireDelegationToken",
            ControllerRequest::UpdateFeatures(_) => "UpdateFeatures",
            ControllerRequest::UnregisterBroker(_) => "UnregisterBroker",
            ControllerRequest::AssignReplicasToDirs(_) => "AssignReplicasToDirs",
        }
    }
}

/// The controller's answer, one variant per request kind, or [`ControllerResponse::Error`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ControllerResponse {
    RegisterBroker(RegisterBrokerResponse),
    BrokerHeartbeat(BrokerHeartbeatResponse),
    CreateTopics(CreateTopicsResponse),
    DeleteTopics(DeleteTopicsResponse),
    CreatePartitions(CreatePartitionsResponse),
    AlterPartition(AlterPartitionResponse),
    ElectLeaders(ElectLeadersResponse),
    AlterPartitionReassignments(AlterPartitionReassignmentsResponse),
    ListPartitionReassignments(ListPartitionReassignmentsResponse),
    AlterConfigs(AlterConfigsResponse),
    AllocateProducerIds(AllocateProducerIdsResponse),
    AlterClientQuotas(AlterClientQuotasResponse),
    AlterUserScramCredentials(AlterUserScramCredentialsResponse),
    CreateAcls(CreateAclsResponse),
    DeleteAcls(DeleteAclsResponse),
    CreateDelegationToken(CreateDelegationTokenResponse),
    /// RenewDelegationToken and ExpireDelegationToken: the error and the new expiry.
    DelegationTokenExpiry(DelegationTokenExpiryResponse),
    UpdateFeatures(UpdateFeaturesResponse),
    UnregisterBroker(UnregisterBrokerResponse),
    AssignReplicasToDirs(AssignReplicasToDirsResponse),
    /// The request was not handled: NOT_CONTROLLER (retry on the active controller),
    /// INVALID_REQUEST (undecodable), or another whole-request error.
    Error(ErrorResponse),
}

impl ControllerResponse {
    pub fn encode(&self) -> Bytes {
        encode(self)
    }

    pub fn decode(bytes: &[u8]) -> Result<ControllerResponse, ProtocolError> {
        decode(bytes)
    }

    pub fn error(error_code: i16, message: impl Into<String>) -> ControllerResponse {
        ControllerResponse::Error(ErrorResponse {
            error_code,
            message: message.into(),
        })
    }

    /// The whole-request error code, if this is [`ControllerResponse::Error`].
    pub fn error_code(&self) -> Option<i16> {
        match self {
            ControllerResponse::Error(e) => Some(e.error_code),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorResponse {
    pub error_code: i16,
    pub message: String,
}

/// A listener a broker advertises (Kafka's `BrokerEndpoint`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerEndpoint {
    pub name: String,
    pub host: String,
    pub port: u16,
    /// Kafka's `SecurityProtocol` id (0 = PLAINTEXT).
    pub security_protocol: i16,
}

impl From<&BrokerEndpoint> for Endpoint {
    fn from(e: &BrokerEndpoint) -> Endpoint {
        Endpoint {
            name: e.name.clone(),
            host: e.host.clone(),
            port: e.port,
            security_protocol: e.security_protocol,
        }
    }
}

impl From<&Endpoint> for BrokerEndpoint {
    fn from(e: &Endpoint) -> BrokerEndpoint {
        BrokerEndpoint {
            name: e.name.clone(),
            host: e.host.clone(),
            port: e.port,
            security_protocol: e.security_protocol,
        }
    }
}

/// BrokerRegistration: a broker process announces itself.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisterBrokerRequest {
    pub broker_id: BrokerId,
    /// Fresh for every process start.
    pub incarnation_id: Uuid,
    pub endpoints: Vec<BrokerEndpoint>,
    pub rack: Option<String>,
    /// The broker epoch the process's clean-shutdown marker holds (Kafka's
    /// `PreviousBrokerEpoch`, KIP-966): the controller takes the restart as clean only when it
    /// is the epoch it last registered the broker with. `None` after an unclean stop.
    #[serde(default)]
    pub previous_broker_epoch: Option<i64>,
    /// KIP-858: the ids of the broker's online log directories (a directory that could not
    /// be opened is left out; absent from older brokers).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub log_dirs: Vec<Uuid>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisterBrokerResponse {
    pub error_code: i16,
    pub error_message: Option<String>,
    /// The offset of the registration in the metadata log; -1 on error.
    pub broker_epoch: i64,
    /// With DUPLICATE_BROKER_REGISTRATION: which sessions the refusing controller judges by (a
    /// random id drawn at its activation). A new active controller starts every session
    /// afresh, so the broker starts its own wait for the other registration's session to end
    /// again when this changes (`None` from other answers and older controllers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sessions_id: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerHeartbeatRequest {
    pub broker_id: BrokerId,
    pub broker_epoch: i64,
    /// The offset of the last metadata record the broker applied.
    pub current_metadata_offset: i64,
    pub want_fence: bool,
    pub want_shut_down: bool,
    /// The replicas this broker holds in a log directory that failed (Kafka's
    /// `OfflineLogDirs`, by replica rather than by directory): the controller takes them out
    /// of their ISRs and elects none of them. Every heartbeat repeats them; absent from older
    /// brokers' heartbeats (none).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub offline_replicas: Vec<OfflineReplica>,
    /// KIP-1066: whether every log directory of the broker is cordoned (its
    /// `cordoned.log.dirs`), once it has applied the metadata; `None` before, and from older
    /// brokers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cordoned: Option<bool>,
    /// KIP-858 (Kafka's `OfflineLogDirs`): the ids of the log directories that failed since the
    /// broker registered. The controller keeps only the others in its registration and takes
    /// the replicas assigned to these out of their ISRs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub offline_log_dirs: Vec<Uuid>,
}

/// AssignReplicasToDirs (KIP-858, Kafka's key 73): which log directory of the broker holds
/// each of these replicas.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssignReplicasToDirsRequest {
    pub broker_id: BrokerId,
    pub broker_epoch: i64,
    pub assignments: Vec<DirectoryAssignment>,
}

/// One replica's log directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct DirectoryAssignment {
    pub topic_id: Uuid,
    pub partition: i32,
    pub directory: Uuid,
}

/// The whole request's error, and one error code per assignment, in the request's order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssignReplicasToDirsResponse {
    pub error_code: i16,
    pub results: Vec<i16>,
}

/// A replica in a failed log directory: its topic's id and its partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct OfflineReplica {
    pub topic_id: Uuid,
    pub partition: i32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerHeartbeatResponse {
    pub error_code: i16,
    pub is_caught_up: bool,
    pub is_fenced: bool,
    pub should_shut_down: bool,
}

/// AllocateProducerIds (KIP-730): a broker asks for its next block of producer ids.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllocateProducerIdsRequest {
    pub broker_id: BrokerId,
    pub broker_epoch: i64,
}

/// The block `[producer_id_start, producer_id_start + producer_id_len)`, committed to the
/// metadata log before this answer; on error the start is -1 and the length 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllocateProducerIdsResponse {
    pub error_code: i16,
    pub producer_id_start: i64,
    pub producer_id_len: i32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateTopicsRequest {
    pub topics: Vec<CreatableTopic>,
    pub validate_only: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatableTopic {
    pub name: String,
    /// -1: the controller's `num.partitions` (or the assignment count).
    pub num_partitions: i32,
    /// -1: the controller's `default.replication.factor` (or the assignments').
    pub replication_factor: i16,
    /// Explicit replicas per partition (then both counts above must be -1).
    pub assignments: Vec<CreatableReplicaAssignment>,
    /// Config overrides; a `None` value is refused (INVALID_CONFIG), as Kafka does.
    pub configs: Vec<(String, Option<String>)>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatableReplicaAssignment {
    pub partition_index: i32,
    pub broker_ids: Vec<BrokerId>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateTopicsResponse {
    pub topics: Vec<CreatableTopicResult>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatableTopicResult {
    pub name: String,
    /// The new topic's id (nil on error).
    pub topic_id: Uuid,
    pub error_code: i16,
    pub error_message: Option<String>,
    /// -1 on error.
    pub num_partitions: i32,
    pub replication_factor: i16,
}

/// A topic named by name or by id (DeleteTopics v6 takes either).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TopicRef {
    Name(String),
    Id(Uuid),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteTopicsRequest {
    pub topics: Vec<TopicRef>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteTopicsResponse {
    pub topics: Vec<DeletableTopicResult>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeletableTopicResult {
    /// `None` when asked by an unknown id.
    pub name: Option<String>,
    pub topic_id: Uuid,
    pub error_code: i16,
    pub error_message: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatePartitionsRequest {
    pub topics: Vec<CreatePartitionsTopic>,
    pub validate_only: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatePartitionsTopic {
    pub name: String,
    /// The total partition count wanted.
    pub count: i32,
    /// Explicit replicas of the new partitions (not supported yet: INVALID_REQUEST).
    pub assignments: Option<Vec<Vec<BrokerId>>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreatePartitionsResponse {
    pub results: Vec<TopicResult>,
}

/// One topic's outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicResult {
    pub name: String,
    pub error_code: i16,
    pub error_message: Option<String>,
}

/// AlterPartition: a partition leader asks to change ISRs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlterPartitionRequest {
    pub broker_id: BrokerId,
    pub broker_epoch: i64,
    pub partitions: Vec<PartitionIsrChange>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionIsrChange {
    pub topic_id: Uuid,
    pub partition: i32,
    pub leader_epoch: i32,
    pub partition_epoch: i32,
    pub new_isr: Vec<BrokerId>,
    /// Each new ISR member's broker epoch as the leader saw it in the member's fetches, in
    /// `new_isr`'s order (Kafka's AlterPartition v3 `NewIsrWithEpochs`, KIP-903); -1 for a
    /// member whose epoch the leader does not know, empty from a sender that sends none.
    #[serde(default)]
    pub new_isr_broker_epochs: Vec<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlterPartitionResponse {
    /// Whole-request error (STALE_BROKER_EPOCH, BROKER_ID_NOT_REGISTERED).
    pub error_code: i16,
    pub partitions: Vec<PartitionIsrResult>,
}

/// The partition's state after the request (or its current state with the error).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionIsrResult {
    pub topic_id: Uuid,
    pub partition: i32,
    pub error_code: i16,
    pub leader_id: BrokerId,
    pub leader_epoch: i32,
    pub isr: Vec<BrokerId>,
    pub partition_epoch: i32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ElectionType {
    Preferred,
    Unclean,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TopicPartition {
    pub topic: String,
    pub partition: i32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ElectLeadersRequest {
    pub election_type: ElectionType,
    /// `None`: every partition.
    pub partitions: Option<Vec<TopicPartition>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ElectLeadersResponse {
    pub results: Vec<PartitionResult>,
}

/// One partition's outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionResult {
    pub topic: String,
    pub partition: i32,
    pub error_code: i16,
    pub error_message: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlterPartitionReassignmentsRequest {
    pub partitions: Vec<ReassignablePartition>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReassignablePartition {
    pub topic: String,
    pub partition: i32,
    /// The target replicas; `None` cancels the partition's reassignment.
    pub replicas: Option<Vec<BrokerId>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlterPartitionReassignmentsResponse {
    pub results: Vec<PartitionResult>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListPartitionReassignmentsRequest {
    /// `None`: every partition being reassigned.
    pub partitions: Option<Vec<TopicPartition>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListPartitionReassignmentsResponse {
    pub reassignments: Vec<OngoingReassignment>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OngoingReassignment {
    pub topic: String,
    pub partition: i32,
    pub replicas: Vec<BrokerId>,
    pub adding_replicas: Vec<BrokerId>,
    pub removing_replicas: Vec<BrokerId>,
}

/// Config changes (IncrementalAlterConfigs / AlterConfigs SET and DELETE on topics, on
/// brokers' dynamic configs and on groups).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlterConfigsRequest {
    pub topics: Vec<AlterConfigsTopic>,
    pub validate_only: bool,
    /// Dynamic broker configs, by broker resource (`""`: cluster-wide; a broker id).
    #[serde(default)]
    pub brokers: Vec<AlterConfigsBroker>,
    /// Group configs, by group id.
    #[serde(default)]
    pub groups: Vec<AlterConfigsGroup>,
    /// Client metrics subscriptions' configs, by subscription name.
    #[serde(default)]
    pub client_metrics: Vec<AlterConfigsClientMetrics>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlterConfigsClientMetrics {
    pub subscription: String,
    /// `Some`: set; `None`: remove.
    pub configs: Vec<(String, Option<String>)>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlterConfigsGroup {
    pub group: String,
    /// `Some`: set; `None`: remove.
    pub configs: Vec<(String, Option<String>)>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlterConfigsBroker {
    /// `""` for the cluster-wide default, else a broker id.
    pub resource: String,
    /// `Some`: set; `None`: remove.
    pub configs: Vec<(String, Option<String>)>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlterConfigsTopic {
    pub topic: String,
    /// `Some`: set; `None`: remove the override.
    pub configs: Vec<(String, Option<String>)>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlterConfigsResponse {
    pub results: Vec<TopicResult>,
    /// One per broker resource of the request, in order (`name`: the resource).
    #[serde(default)]
    pub broker_results: Vec<TopicResult>,
    /// One per group of the request, in order (`name`: the group id).
    #[serde(default)]
    pub group_results: Vec<TopicResult>,
    /// One per client metrics subscription of the request, in order (`name`: the
    /// subscription).
    #[serde(default)]
    pub client_metrics_results: Vec<TopicResult>,
}

/// UnregisterBroker (`kafka-cluster.sh unregister --id N`): a broker's registration removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnregisterBrokerRequest {
    pub broker_id: i32,
}

/// NONE, or why the registration was not removed (BROKER_ID_NOT_REGISTERED).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnregisterBrokerResponse {
    pub error_code: i16,
    pub error_message: Option<String>,
}

/// UpdateFeatures (KIP-584): finalized feature levels to set, all or none.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateFeaturesRequest {
    pub updates: Vec<FeatureLevelUpdate>,
    pub validate_only: bool,
}

impl UpdateFeaturesRequest {
    /// The updates by feature name, as `gregor_metadata::update_features` takes them.
    pub fn feature_updates(
        &self,
    ) -> std::collections::BTreeMap<String, gregor_metadata::FeatureUpdate> {
        self.updates
            .iter()
            .map(|u| {
                let update = gregor_metadata::FeatureUpdate {
                    level: u.level,
                    upgrade_type: gregor_metadata::UpgradeType::from_code(u.upgrade_type),
                };
                (u.name.clone(), update)
            })
            .collect()
    }
}

/// One feature's new level and how it may move (UpdateFeatures v1's `UpgradeType` code: 1
/// upgrade, 2 safe downgrade, 3 unsafe downgrade).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FeatureLevelUpdate {
    pub name: String,
    pub level: i16,
    pub upgrade_type: i8,
}

/// The whole request's outcome: NONE, or the first refusal (INVALID_UPDATE_VERSION with
/// Kafka's message).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UpdateFeaturesResponse {
    pub error_code: i16,
    pub error_message: Option<String>,
}

/// AlterClientQuotas: quotas set or removed, per entity.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlterClientQuotasRequest {
    pub entries: Vec<ClientQuotaAlteration>,
    pub validate_only: bool,
}

/// One entity's quota changes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClientQuotaAlteration {
    /// Kafka's entity: (entity type, name; `None` is the default) pairs.
    pub entity: Vec<(String, Option<String>)>,
    /// (key, `Some(value)` to set, `None` to remove). Values are finite: the broker refuses
    /// others before it asks (JSON has no NaN), which is what makes this `Eq`.
    pub ops: Vec<(String, Option<f64>)>,
}

impl Eq for ClientQuotaAlteration {}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlterClientQuotasResponse {
    /// One per entry of the request, in order (`name` unused).
    pub results: Vec<TopicResult>,
}

/// AlterUserScramCredentials (KIP-554): credentials deleted and set, as the Admin client sent
/// them (the salted password, never the password). Like Kafka's broker, which forwards the
/// request to the controller, the salted password crosses the controller channel; only the
/// keys derived from it reach the metadata log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlterUserScramCredentialsRequest {
    pub deletions: Vec<ScramCredentialDeletion>,
    pub upsertions: Vec<ScramCredentialUpsertion>,
}

/// The request as gregor-metadata's `alter_user_scram_credentials` decides it: (deletions,
/// upsertions).
pub type ScramAlterations = (
    Vec<gregor_metadata::controller::ScramCredentialDeletion>,
    Vec<gregor_metadata::controller::ScramCredentialUpsertion>,
);

impl AlterUserScramCredentialsRequest {
    /// The deletions and upsertions in gregor-metadata's types.
    pub fn into_alterations(self) -> ScramAlterations {
        use gregor_metadata::controller as decide;
        let deletions = self
            .deletions
            .into_iter()
            .map(|d| decide::ScramCredentialDeletion {
                name: d.name,
                mechanism: d.mechanism,
            })
            .collect();
        let upsertions = self
            .upsertions
            .into_iter()
            .map(|u| decide::ScramCredentialUpsertion {
                name: u.name,
                mechanism: u.mechanism,
                iterations: u.iterations,
                salt: u.salt,
                salted_password: u.salted_password,
            })
            .collect();
        (deletions, upsertions)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScramCredentialDeletion {
    pub name: String,
    /// Kafka's `ScramMechanism` type (1 = SCRAM-SHA-256, 2 = SCRAM-SHA-512).
    pub mechanism: i8,
}

/// One credential to set. `Debug` hides the salt and salted password.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScramCredentialUpsertion {
    pub name: String,
    /// Kafka's `ScramMechanism` type.
    pub mechanism: i8,
    pub iterations: i32,
    pub salt: Vec<u8>,
    pub salted_password: Vec<u8>,
}

impl std::fmt::Debug for ScramCredentialUpsertion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScramCredentialUpsertion")
            .field("name", &self.name)
            .field("mechanism", &self.mechanism)
            .field("iterations", &self.iterations)
            .field("salt", &"[hidden]")
            .field("salted_password", &"[hidden]")
            .finish()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlterUserScramCredentialsResponse {
    /// One per user named in the request, in the order they first appear (deletions, then
    /// upsertions); `name` is the user.
    pub results: Vec<TopicResult>,
}

/// CreateDelegationToken (KIP-48): the broker checked the connection and the owner's
/// CREATE_TOKENS; principals are `<type>:<name>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateDelegationTokenRequest {
    pub owner: String,
    pub requester: String,
    pub renewers: Vec<String>,
    pub max_lifetime_ms: i64,
}

/// The created token (or the error, with the other fields unset).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateDelegationTokenResponse {
    pub error_code: i16,
    pub issue_timestamp_ms: i64,
    pub expiry_timestamp_ms: i64,
    pub max_timestamp_ms: i64,
    pub token_id: String,
    pub hmac: Vec<u8>,
}

impl std::fmt::Debug for CreateDelegationTokenResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreateDelegationTokenResponse")
            .field("error_code", &self.error_code)
            .field("token_id", &self.token_id)
            .field("expiry_timestamp_ms", &self.expiry_timestamp_ms)
            .field("hmac", &"[hidden]")
            .finish_non_exhaustive()
    }
}

/// RenewDelegationToken: the token by its HMAC, by `principal` (`User:<name>`).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenewDelegationTokenRequest {
    pub hmac: Vec<u8>,
    pub principal: String,
    pub renew_period_ms: i64,
}

/// ExpireDelegationToken: the token by its HMAC; a negative period removes it at once.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExpireDelegationTokenRequest {
    pub hmac: Vec<u8>,
    pub principal: String,
    pub expiry_time_period_ms: i64,
}

impl std::fmt::Debug for RenewDelegationTokenRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RenewDelegationTokenRequest")
            .field("principal", &self.principal)
            .field("renew_period_ms", &self.renew_period_ms)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for ExpireDelegationTokenRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExpireDelegationTokenRequest")
            .field("principal", &self.principal)
            .field("expiry_time_period_ms", &self.expiry_time_period_ms)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DelegationTokenExpiryResponse {
    pub error_code: i16,
    pub expiry_timestamp_ms: i64,
}

/// One ACL as the controller channel carries it: Kafka's wire codes (`gregor_metadata::acl`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AclEntry {
    pub resource_type: i8,
    pub resource_name: String,
    pub pattern_type: i8,
    pub principal: String,
    pub host: String,
    pub operation: i8,
    pub permission_type: i8,
}

impl AclEntry {
    pub fn from_acl(acl: &gregor_metadata::StandardAcl) -> AclEntry {
        AclEntry {
            resource_type: acl.resource_type.code(),
            resource_name: acl.resource_name.clone(),
            pattern_type: acl.pattern_type.code(),
            principal: acl.principal.clone(),
            host: acl.host.clone(),
            operation: acl.operation.code(),
            permission_type: acl.permission_type.code(),
        }
    }

    pub fn to_acl(&self) -> gregor_metadata::StandardAcl {
        use gregor_metadata::acl::*;
        StandardAcl {
            resource_type: ResourceType::from_code(self.resource_type),
            resource_name: self.resource_name.clone(),
            pattern_type: PatternType::from_code(self.pattern_type),
            principal: self.principal.clone(),
            host: self.host.clone(),
            operation: AclOperation::from_code(self.operation),
            permission_type: AclPermissionType::from_code(self.permission_type),
        }
    }
}

/// One filter of DeleteAcls: `None` names match anything.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AclFilterEntry {
    pub resource_type: i8,
    pub resource_name: Option<String>,
    pub pattern_type: i8,
    pub principal: Option<String>,
    pub host: Option<String>,
    pub operation: i8,
    pub permission_type: i8,
}

impl AclFilterEntry {
    pub fn from_filter(f: &gregor_metadata::AclBindingFilter) -> AclFilterEntry {
        AclFilterEntry {
            resource_type: f.resource_type.code(),
            resource_name: f.resource_name.clone(),
            pattern_type: f.pattern_type.code(),
            principal: f.principal.clone(),
            host: f.host.clone(),
            operation: f.operation.code(),
            permission_type: f.permission_type.code(),
        }
    }

    pub fn to_filter(&self) -> gregor_metadata::AclBindingFilter {
        use gregor_metadata::acl::*;
        AclBindingFilter {
            resource_type: ResourceType::from_code(self.resource_type),
            resource_name: self.resource_name.clone(),
            pattern_type: PatternType::from_code(self.pattern_type),
            principal: self.principal.clone(),
            host: self.host.clone(),
            operation: AclOperation::from_code(self.operation),
            permission_type: AclPermissionType::from_code(self.permission_type),
        }
    }
}

/// CreateAcls: the ACLs to create, in request order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateAclsRequest {
    pub creations: Vec<AclEntry>,
}

/// One outcome per ACL of the request, in its order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateAclsResponse {
    pub results: Vec<AclResult>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AclResult {
    pub error_code: i16,
    pub error_message: Option<String>,
}

impl CreateAclsResponse {
    /// The answer for a decision (`gregor_metadata::controller::create_acls`) once committed.
    pub fn from_results(
        results: Vec<Result<(), gregor_metadata::ControllerError>>,
    ) -> CreateAclsResponse {
        CreateAclsResponse {
            results: results
                .into_iter()
                .map(|r| match r {
                    Ok(()) => AclResult {
                        error_code: 0,
                        error_message: None,
                    },
                    Err(e) => AclResult {
                        error_code: e.code(),
                        error_message: Some(e.to_string()),
                    },
                })
                .collect(),
        }
    }
}

/// DeleteAcls: every ACL a filter matches is deleted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteAclsRequest {
    pub filters: Vec<AclFilterEntry>,
}

/// One outcome per filter, in request order: the ACLs it matched and deleted, or an error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteAclsResponse {
    pub results: Vec<DeleteAclsFilterResult>,
}

impl DeleteAclsResponse {
    /// The answer for a decision (`gregor_metadata::controller::delete_acls`) once committed.
    pub fn from_results(
        results: Vec<Result<Vec<gregor_metadata::StandardAcl>, gregor_metadata::ControllerError>>,
    ) -> DeleteAclsResponse {
        DeleteAclsResponse {
            results: results
                .into_iter()
                .map(|r| match r {
                    Ok(deleted) => DeleteAclsFilterResult {
                        error_code: 0,
                        error_message: None,
                        deleted: deleted.iter().map(AclEntry::from_acl).collect(),
                    },
                    Err(e) => DeleteAclsFilterResult {
                        error_code: e.code(),
                        error_message: Some(e.to_string()),
                        deleted: Vec::new(),
                    },
                })
                .collect(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteAclsFilterResult {
    pub error_code: i16,
    pub error_message: Option<String>,
    pub deleted: Vec<AclEntry>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn samples() -> Vec<ControllerRequest> {
        vec![
            ControllerRequest::RegisterBroker(RegisterBrokerRequest {
                log_dirs: Vec::new(),
                broker_id: 1,
                incarnation_id: Uuid::from_u128(7),
                endpoints: vec![BrokerEndpoint {
                    name: "PLAINTEXT".into(),
                    host: "127.0.0.1".into(),
                    port: 9092,
                    security_protocol: 0,
                }],
                rack: Some("r1".into()),
                previous_broker_epoch: Some(3),
            }),
            ControllerRequest::BrokerHeartbeat(BrokerHeartbeatRequest {
                offline_log_dirs: Vec::new(),
                broker_id: 1,
                broker_epoch: 4,
                current_metadata_offset: 9,
                want_fence: false,
                want_shut_down: true,
                offline_replicas: vec![OfflineReplica {
                    topic_id: Uuid::from_u128(5),
                    partition: 2,
                }],
                cordoned: Some(true),
            }),
            ControllerRequest::CreateTopics(CreateTopicsRequest {
                topics: vec![CreatableTopic {
                    name: "t".into(),
                    num_partitions: -1,
                    replication_factor: -1,
                    assignments: vec![CreatableReplicaAssignment {
                        partition_index: 0,
                        broker_ids: vec![1, 2],
                    }],
                    configs: vec![("cleanup.policy".into(), Some("compact".into()))],
                }],
                validate_only: true,
            }),
            ControllerRequest::DeleteTopics(DeleteTopicsRequest {
                topics: vec![TopicRef::Name("a".into()), TopicRef::Id(Uuid::from_u128(3))],
            }),
            ControllerRequest::ElectLeaders(ElectLeadersRequest {
                election_type: ElectionType::Unclean,
                partitions: None,
            }),
            ControllerRequest::AlterPartitionReassignments(AlterPartitionReassignmentsRequest {
                partitions: vec![ReassignablePartition {
                    topic: "t".into(),
                    partition: 0,
                    replicas: None,
                }],
            }),
            ControllerRequest::AllocateProducerIds(AllocateProducerIdsRequest {
                broker_id: 2,
                broker_epoch: 11,
            }),
            ControllerRequest::AlterUserScramCredentials(AlterUserScramCredentialsRequest {
                deletions: vec![ScramCredentialDeletion {
                    name: "bob".into(),
                    mechanism: 2,
                }],
                upsertions: vec![ScramCredentialUpsertion {
                    name: "alice".into(),
                    mechanism: 1,
                    iterations: 8192,
                    salt: vec![0, 1, 255],
                    salted_password: vec![9; 32],
                }],
            }),
            ControllerRequest::CreateAcls(CreateAclsRequest {
                creations: vec![AclEntry {
                    resource_type: 2,
                    resource_name: "t".into(),
                    pattern_type: 4,
                    principal: "User:alice".into(),
                    host: "*".into(),
                    operation: 3,
                    permission_type: 3,
                }],
            }),
            ControllerRequest::DeleteAcls(DeleteAclsRequest {
                filters: vec![AclFilterEntry {
                    resource_type: 1,
                    resource_name: None,
                    pattern_type: 2,
                    principal: Some("User:alice".into()),
                    host: None,
                    operation: 1,
                    permission_type: 1,
                }],
            }),
        ]
    }

    #[test]
    fn requests_and_responses_round_trip() {
        for request in samples() {
            let bytes = request.encode();
            assert_eq!(bytes[0], PROTOCOL_VERSION);
            assert_eq!(ControllerRequest::decode(&bytes), Ok(request));
        }
        let responses = vec![
            ControllerResponse::error(41, "not the controller"),
            ControllerResponse::BrokerHeartbeat(BrokerHeartbeatResponse {
                error_code: 0,
                is_caught_up: true,
                is_fenced: false,
                should_shut_down: false,
            }),
            ControllerResponse::AlterPartition(AlterPartitionResponse {
                error_code: 0,
                partitions: vec![PartitionIsrResult {
                    topic_id: Uuid::from_u128(1),
                    partition: 2,
                    error_code: 0,
                    leader_id: 1,
                    leader_epoch: 3,
                    isr: vec![1, 2],
                    partition_epoch: 5,
                }],
            }),
            ControllerResponse::AllocateProducerIds(AllocateProducerIdsResponse {
                error_code: 0,
                producer_id_start: 2000,
                producer_id_len: 1000,
            }),
            ControllerResponse::AlterUserScramCredentials(AlterUserScramCredentialsResponse {
                results: vec![TopicResult {
                    name: "alice".into(),
                    error_code: 93,
                    error_message: Some("Too few iterations".into()),
                }],
            }),
        ];
        for response in responses {
            assert_eq!(ControllerResponse::decode(&response.encode()), Ok(response));
        }
    }

    #[test]
    fn salted_passwords_stay_out_of_debug_output() {
        let shown = format!("{:?}", samples()[7]);
        assert!(shown.contains("alice") && shown.contains("8192"), "{shown}");
        assert!(
            !shown.contains("[9, 9") && !shown.contains("255"),
            "{shown}"
        );
    }

    #[test]
    fn garbage_and_other_versions_are_errors() {
        assert_eq!(ControllerRequest::decode(&[]), Err(ProtocolError::Empty));
        let mut other = samples()[0].encode().to_vec();
        other[0] = 2;
        assert_eq!(
            ControllerRequest::decode(&other),
            Err(ProtocolError::UnsupportedVersion(2))
        );
        assert!(matches!(
            ControllerRequest::decode(b"\x01{\"RegisterBroker\":"),
            Err(ProtocolError::Malformed(_))
        ));
        // A response is not a request.
        let response = ControllerResponse::error(41, "x").encode();
        assert!(ControllerRequest::decode(&response).is_err());
    }

    proptest! {
        #[test]
        fn decoding_random_bytes_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = ControllerRequest::decode(&bytes);
            let _ = ControllerResponse::decode(&bytes);
            let mut versioned = vec![PROTOCOL_VERSION];
            versioned.extend(&bytes);
            let _ = ControllerRequest::decode(&versioned);
            let _ = ControllerResponse::decode(&versioned);
        }

        #[test]
        fn decoding_mutated_requests_never_panics(index in 0usize..8, flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..8)) {
            let mut bytes = samples()[index].encode().to_vec();
            for (at, value) in flips {
                let i = at.index(bytes.len());
                bytes[i] = value;
            }
            let _ = ControllerRequest::decode(&bytes);
        }
    }
}
