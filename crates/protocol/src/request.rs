//! Request decoding without a broker: a frame body → the request header → the typed request.
//!
//! ```text
//!   frame body (after the int32 size prefix, see [`crate::frame`])
//!     ├─ api key, api version, correlation id   (fixed 8 bytes, read before anything else)
//!     ├─ version check against the served ranges (the caller's table)
//!     ├─ RequestHeader  v1 or v2 (flexible: tagged fields)
//!     └─ body           kafka-protocol's decoder for that API and version
//! ```
//!
//! The broker's router performs the same steps, interleaved with the version-fallback replies it
//! owns. This module holds them as one pure function so every decoder a connection can reach can
//! be fuzzed and tested with no socket or broker state (`fuzz/fuzz_targets/request.rs`).

use bytes::Bytes;
use kafka_protocol::messages::{
    AddRaftVoterRequest, AlterClientQuotasRequest, AlterConfigsRequest,
    AlterPartitionReassignmentsRequest, AlterReplicaLogDirsRequest, ApiKey, ApiVersionsRequest,
    ConsumerGroupDescribeRequest, ConsumerGroupHeartbeatRequest, CreatePartitionsRequest,
    CreateTopicsRequest, DeleteGroupsRequest, DeleteRecordsRequest, DeleteTopicsRequest,
    DescribeClientQuotasRequest, DescribeClusterRequest, DescribeConfigsRequest,
    DescribeGroupsRequest, DescribeLogDirsRequest, DescribeProducersRequest, DescribeQuorumRequest,
    DescribeTopicPartitionsRequest, ElectLeadersRequest, FetchRequest, FindCoordinatorRequest,
    HeartbeatRequest, IncrementalAlterConfigsRequest, InitProducerIdRequest, JoinGroupRequest,
    LeaveGroupRequest, ListConfigResourcesRequest, ListGroupsRequest, ListOffsetsRequest,
    ListPartitionReassignmentsRequest, MetadataRequest, OffsetCommitRequest, OffsetDeleteRequest,
    OffsetFetchRequest, OffsetForLeaderEpochRequest, ProduceRequest, RemoveRaftVoterRequest,
    RequestHeader, SaslAuthenticateRequest, SaslHandshakeRequest, SyncGroupRequest,
    TxnOffsetCommitRequest, UnregisterBrokerRequest, UpdateFeaturesRequest, WriteTxnMarkersRequest,
};
// Delegation tokens (KIP-48).
use kafka_protocol::messages::{
    CreateDelegationTokenRequest, DescribeDelegationTokenRequest, ExpireDelegationTokenRequest,
    RenewDelegationTokenRequest,
};
// SCRAM credentials (KIP-554).
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, CreateAclsRequest, DeleteAclsRequest, DescribeAclsRequest,
    DescribeUserScramCredentialsRequest,
};
// Share groups: the partition leader's fetch and acknowledgements (KIP-932).
use kafka_protocol::messages::{ShareAcknowledgeRequest, ShareFetchRequest};
// Share groups: the group coordinator's share group APIs (KIP-932).
use kafka_protocol::messages::{
    AlterShareGroupOffsetsRequest, DeleteShareGroupOffsetsRequest,
    DescribeShareGroupOffsetsRequest, ShareGroupDescribeRequest, ShareGroupHeartbeatRequest,
};
// The share coordinator's state APIs (KIP-932, inter-broker).
use kafka_protocol::messages::{
    DeleteShareGroupStateRequest, InitializeShareGroupStateRequest, ReadShareGroupStateRequest,
    ReadShareGroupStateSummaryRequest, WriteShareGroupStateRequest,
};
use kafka_protocol::protocol::Decodable;

// The transaction coordinator's APIs.
use kafka_protocol::messages::{
    AddOffsetsToTxnRequest, AddPartitionsToTxnRequest, DescribeTransactionsRequest, EndTxnRequest,
    ListTransactionsRequest,
};

/// Bytes in front of every request header's variable part: api key, version, correlation id.
pub const FIXED_HEADER_LEN: usize = 8;

/// Why a request frame cannot be served. Every case is a protocol violation: Kafka closes the
/// connection (except for an ApiVersions of an unknown version, which the router answers).
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// Shorter than the fixed part of a request header.
    #[error("request of {0} bytes is shorter than a request header")]
    TooShort(usize),
    /// The API key is unknown to Kafka.
    #[error("unknown API key {0}")]
    UnknownApiKey(i16),
    /// The API, or this version of it, is not served.
    #[error("unsupported API {api:?} version {version}")]
    UnsupportedVersion {
        /// API asked for.
        api: ApiKey,
        /// Version asked for.
        version: i16,
    },
    /// The request header or body does not decode.
    #[error("cannot decode {api:?} v{version}: {reason}")]
    Decode {
        /// API.
        api: ApiKey,
        /// Version.
        version: i16,
        /// The decoder's message.
        reason: String,
    },
}

/// The typed body of every request gregor routes to a handler.
#[derive(Debug)]
pub enum RequestBody {
    /// Produce.
    Produce(ProduceRequest),
    /// Fetch.
    Fetch(FetchRequest),
    /// ListOffsets.
    ListOffsets(ListOffsetsRequest),
    /// Metadata.
    Metadata(MetadataRequest),
    /// ApiVersions.
    ApiVersions(ApiVersionsRequest),
    /// SaslHandshake.
    SaslHandshake(SaslHandshakeRequest),
    /// SaslAuthenticate.
    SaslAuthenticate(SaslAuthenticateRequest),
    /// CreateTopics.
    CreateTopics(CreateTopicsRequest),
    /// DeleteTopics.
    DeleteTopics(DeleteTopicsRequest),
    /// FindCoordinator.
    FindCoordinator(FindCoordinatorRequest),
    /// JoinGroup.
    JoinGroup(JoinGroupRequest),
    /// SyncGroup.
    SyncGroup(SyncGroupRequest),
    /// Heartbeat.
    Heartbeat(HeartbeatRequest),
    /// LeaveGroup.
    LeaveGroup(LeaveGroupRequest),
    /// OffsetCommit.
    OffsetCommit(OffsetCommitRequest),
    /// OffsetFetch.
    OffsetFetch(OffsetFetchRequest),
    /// ListGroups.
    ListGroups(ListGroupsRequest),
    /// DescribeGroups.
    DescribeGroups(DescribeGroupsRequest),
    /// DeleteGroups.
    DeleteGroups(DeleteGroupsRequest),
    /// OffsetDelete.
    OffsetDelete(OffsetDeleteRequest),
    /// TxnOffsetCommit.
    TxnOffsetCommit(TxnOffsetCommitRequest),
    /// DescribeConfigs.
    DescribeConfigs(DescribeConfigsRequest),
    /// DeleteRecords.
    DeleteRecords(DeleteRecordsRequest),
    /// AlterConfigs.
    AlterConfigs(AlterConfigsRequest),
    /// IncrementalAlterConfigs.
    IncrementalAlterConfigs(IncrementalAlterConfigsRequest),
    /// DescribeClientQuotas.
    DescribeClientQuotas(DescribeClientQuotasRequest),
    /// AlterClientQuotas.
    AlterClientQuotas(AlterClientQuotasRequest),
    /// DescribeUserScramCredentials (KIP-554).
    DescribeUserScramCredentials(DescribeUserScramCredentialsRequest),
    /// AlterUserScramCredentials (KIP-554).
    AlterUserScramCredentials(AlterUserScramCredentialsRequest),
    /// CreateDelegationToken (KIP-48).
    CreateDelegationToken(CreateDelegationTokenRequest),
    /// RenewDelegationToken (KIP-48).
    RenewDelegationToken(RenewDelegationTokenRequest),
    /// ExpireDelegationToken (KIP-48).
    ExpireDelegationToken(ExpireDelegationTokenRequest),
    /// DescribeDelegationToken (KIP-48).
    DescribeDelegationToken(DescribeDelegationTokenRequest),
    /// DescribeAcls.
    DescribeAcls(DescribeAclsRequest),
    /// CreateAcls.
    CreateAcls(CreateAclsRequest),
    /// DeleteAcls.
    DeleteAcls(DeleteAclsRequest),
    /// InitializeShareGroupState (KIP-932).
    InitializeShareGroupState(InitializeShareGroupStateRequest),
    /// ReadShareGroupState (KIP-932).
    ReadShareGroupState(ReadShareGroupStateRequest),
    /// WriteShareGroupState (KIP-932).
    WriteShareGroupState(WriteShareGroupStateRequest),
    /// DeleteShareGroupState (KIP-932).
    DeleteShareGroupState(DeleteShareGroupStateRequest),
    /// ReadShareGroupStateSummary (KIP-932).
    ReadShareGroupStateSummary(ReadShareGroupStateSummaryRequest),
    /// ShareFetch (KIP-932).
    ShareFetch(ShareFetchRequest),
    /// ShareAcknowledge (KIP-932).
    ShareAcknowledge(ShareAcknowledgeRequest),
    /// ShareGroupHeartbeat (KIP-932).
    ShareGroupHeartbeat(ShareGroupHeartbeatRequest),
    /// ShareGroupDescribe (KIP-932).
    ShareGroupDescribe(ShareGroupDescribeRequest),
    /// DescribeShareGroupOffsets (KIP-932).
    DescribeShareGroupOffsets(DescribeShareGroupOffsetsRequest),
    /// AlterShareGroupOffsets (KIP-932).
    AlterShareGroupOffsets(AlterShareGroupOffsetsRequest),
    /// DeleteShareGroupOffsets (KIP-932).
    DeleteShareGroupOffsets(DeleteShareGroupOffsetsRequest),
    /// OffsetForLeaderEpoch.
    OffsetForLeaderEpoch(OffsetForLeaderEpochRequest),
    /// CreatePartitions.
    CreatePartitions(CreatePartitionsRequest),
    /// ElectLeaders.
    ElectLeaders(ElectLeadersRequest),
    /// AlterPartitionReassignments.
    AlterPartitionReassignments(AlterPartitionReassignmentsRequest),
    /// ListPartitionReassignments.
    ListPartitionReassignments(ListPartitionReassignmentsRequest),
    /// DescribeQuorum.
    DescribeQuorum(DescribeQuorumRequest),
    /// AddRaftVoter (KIP-853).
    AddRaftVoter(AddRaftVoterRequest),
    /// RemoveRaftVoter (KIP-853).
    RemoveRaftVoter(RemoveRaftVoterRequest),
    /// UpdateFeatures (KIP-584).
    UpdateFeatures(UpdateFeaturesRequest),
    /// UnregisterBroker.
    UnregisterBroker(UnregisterBrokerRequest),
    /// DescribeCluster.
    DescribeCluster(DescribeClusterRequest),
    /// DescribeLogDirs.
    DescribeLogDirs(DescribeLogDirsRequest),
    /// AlterReplicaLogDirs.
    AlterReplicaLogDirs(AlterReplicaLogDirsRequest),
    /// InitProducerId.
    InitProducerId(InitProducerIdRequest),
    /// DescribeProducers.
    DescribeProducers(DescribeProducersRequest),
    /// AddPartitionsToTxn.
    AddPartitionsToTxn(AddPartitionsToTxnRequest),
    /// AddOffsetsToTxn.
    AddOffsetsToTxn(AddOffsetsToTxnRequest),
    /// EndTxn.
    EndTxn(EndTxnRequest),
    /// ListTransactions.
    ListTransactions(ListTransactionsRequest),
    /// DescribeTransactions.
    DescribeTransactions(DescribeTransactionsRequest),
    /// WriteTxnMarkers.
    WriteTxnMarkers(WriteTxnMarkersRequest),
    /// ConsumerGroupHeartbeat (KIP-848).
    ConsumerGroupHeartbeat(ConsumerGroupHeartbeatRequest),
    /// ConsumerGroupDescribe (KIP-848).
    ConsumerGroupDescribe(ConsumerGroupDescribeRequest),
    /// DescribeTopicPartitions (KIP-966).
    DescribeTopicPartitions(DescribeTopicPartitionsRequest),
    /// ListConfigResources (KIP-1142; v0 was ListClientMetricsResources, KIP-714).
    ListConfigResources(ListConfigResourcesRequest),
}

/// A request as a handler receives it.
#[derive(Debug)]
pub struct DecodedRequest {
    /// The request header (api key, version, correlation id, client id).
    pub header: RequestHeader,
    /// The typed body.
    pub body: RequestBody,
    /// Bytes after the body; Kafka ignores them, and so does gregor.
    pub trailing: usize,
}

/// The fixed start of a request header: `(api key, api version, correlation id)`.
pub fn peek_header(frame: &[u8]) -> Result<(i16, i16, i32), RequestError> {
    if frame.len() < FIXED_HEADER_LEN {
        return Err(RequestError::TooShort(frame.len()));
    }
    Ok((
        i16::from_be_bytes([frame[0], frame[1]]),
        i16::from_be_bytes([frame[2], frame[3]]),
        i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]),
    ))
}

/// APIs gregor implements and the versions it advertises: (key, min, max).
pub const SUPPORTED_APIS: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 0, 13),
    (ApiKey::Fetch, 4, 18),
    (ApiKey::ListOffsets, 1, 11),
    (ApiKey::Metadata, 0, 13),
    (ApiKey::ApiVersions, 0, 5),
    (ApiKey::SaslHandshake, 0, 1),
    (ApiKey::SaslAuthenticate, 0, 2),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteTopics, 1, 6),
    (ApiKey::InitProducerId, 0, 5),
    (ApiKey::FindCoordinator, 0, 6),
    (ApiKey::JoinGroup, 0, 9),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 5),
    (ApiKey::OffsetCommit, 2, 10),
    (ApiKey::OffsetFetch, 1, 10),
    (ApiKey::ListGroups, 0, 5),
    (ApiKey::DescribeGroups, 0, 6),
    (ApiKey::DeleteGroups, 0, 3),
    (ApiKey::OffsetDelete, 0, 0),
    (ApiKey::TxnOffsetCommit, 0, 6),
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::DeleteRecords, 0, 2),
    (ApiKey::AlterConfigs, 0, 2),
    (ApiKey::IncrementalAlterConfigs, 0, 1),
    (ApiKey::OffsetForLeaderEpoch, 0, 4),
    (ApiKey::CreatePartitions, 0, 3),
    (ApiKey::ElectLeaders, 0, 2),
    (ApiKey::AlterPartitionReassignments, 0, 1),
    (ApiKey::ListPartitionReassignments, 0, 0),
    (ApiKey::DescribeQuorum, 0, 2),
    (ApiKey::AddRaftVoter, 0, 0),
    (ApiKey::RemoveRaftVoter, 0, 0),
    (ApiKey::UpdateFeatures, 0, 2),
    (ApiKey::DescribeCluster, 0, 2),
    (ApiKey::UnregisterBroker, 0, 0),
    (ApiKey::DescribeLogDirs, 1, 5),
    (ApiKey::AlterReplicaLogDirs, 1, 2),
    (ApiKey::DescribeProducers, 0, 0),
    (ApiKey::AddPartitionsToTxn, 0, 5),
    (ApiKey::AddOffsetsToTxn, 0, 4),
    (ApiKey::EndTxn, 0, 5),
    (ApiKey::ListTransactions, 0, 2),
    (ApiKey::DescribeTransactions, 0, 0),
    (ApiKey::WriteTxnMarkers, 1, 2),
    (ApiKey::ConsumerGroupHeartbeat, 0, 1),
    (ApiKey::ConsumerGroupDescribe, 0, 1),
    (ApiKey::StreamsGroupHeartbeat, 0, 1),
    (ApiKey::StreamsGroupDescribe, 0, 1),
    (ApiKey::DescribeTopicPartitions, 0, 0),
    (ApiKey::ListConfigResources, 0, 1),
    (ApiKey::DescribeClientQuotas, 0, 1),
    (ApiKey::AlterClientQuotas, 0, 1),
    (ApiKey::DescribeUserScramCredentials, 0, 0),
    (ApiKey::AlterUserScramCredentials, 0, 0),
    (ApiKey::DescribeAcls, 1, 3),
    (ApiKey::CreateAcls, 1, 3),
    (ApiKey::DeleteAcls, 1, 3),
    (ApiKey::CreateDelegationToken, 1, 3),
    (ApiKey::RenewDelegationToken, 1, 2),
    (ApiKey::ExpireDelegationToken, 1, 2),
    (ApiKey::DescribeDelegationToken, 1, 3),
    (ApiKey::InitializeShareGroupState, 0, 0),
    (ApiKey::ReadShareGroupState, 0, 0),
    (ApiKey::WriteShareGroupState, 0, 1),
    (ApiKey::DeleteShareGroupState, 0, 0),
    (ApiKey::ReadShareGroupStateSummary, 0, 1),
    (ApiKey::ShareFetch, 1, 2),
    (ApiKey::ShareAcknowledge, 1, 2),
    (ApiKey::ShareGroupHeartbeat, 1, 1),
    (ApiKey::ShareGroupDescribe, 1, 1),
    (ApiKey::DescribeShareGroupOffsets, 0, 1),
    (ApiKey::AlterShareGroupOffsets, 0, 0),
    (ApiKey::DeleteShareGroupOffsets, 0, 0),
];

/// Decodes one request frame body (without its size prefix).
///
/// `served` is the table of `(api, min version, max version)` the broker advertises
/// ([`SUPPORTED_APIS`]); anything outside it is refused before any decoder runs, as the
/// router does. Records in Produce stay `Bytes` slices of `frame`.
pub fn decode_request(
    frame: Bytes,
    served: &[(ApiKey, i16, i16)],
) -> Result<DecodedRequest, RequestError> {
    let (key, version, _correlation_id) = peek_header(&frame)?;
    let api = ApiKey::try_from(key).map_err(|()| RequestError::UnknownApiKey(key))?;
    let served = served
        .iter()
        .any(|&(k, min, max)| k == api && (min..=max).contains(&version));
    if !served {
        return Err(RequestError::UnsupportedVersion { api, version });
    }
    let decode_error = |what: &str, e: &dyn std::fmt::Display| RequestError::Decode {
        api,
        version,
        reason: format!("{what}{e}"),
    };
    let mut buf = frame;
    let header = RequestHeader::decode(&mut buf, api.request_header_version(version))
        .map_err(|e| decode_error("request header: ", &e))?;
    let body = decode_body(api, &mut buf, version)
        .ok_or(RequestError::UnsupportedVersion { api, version })?
        .map_err(|e| decode_error("", &e))?;
    Ok(DecodedRequest {
        header,
        body,
        trailing: buf.len(),
    })
}

/// The body decoder the router uses for `api`; `None` for an API gregor does not route.
fn decode_body(api: ApiKey, buf: &mut Bytes, version: i16) -> Option<Result<RequestBody, String>> {
    fn dec<T: Decodable>(buf: &mut Bytes, version: i16) -> Result<T, String> {
        T::decode(buf, version).map_err(|e| e.to_string())
    }
    Some(match api {
        ApiKey::Produce => dec(buf, version).map(RequestBody::Produce),
        ApiKey::Fetch => dec(buf, version).map(RequestBody::Fetch),
        ApiKey::ListOffsets => dec(buf, version).map(RequestBody::ListOffsets),
        ApiKey::Metadata => dec(buf, version).map(RequestBody::Metadata),
        ApiKey::ApiVersions => dec(buf, version).map(RequestBody::ApiVersions),
        ApiKey::SaslHandshake => dec(buf, version).map(RequestBody::SaslHandshake),
        ApiKey::SaslAuthenticate => dec(buf, version).map(RequestBody::SaslAuthenticate),
        ApiKey::CreateTopics => dec(buf, version).map(RequestBody::CreateTopics),
        ApiKey::DeleteTopics => dec(buf, version).map(RequestBody::DeleteTopics),
        ApiKey::FindCoordinator => dec(buf, version).map(RequestBody::FindCoordinator),
        ApiKey::JoinGroup => dec(buf, version).map(RequestBody::JoinGroup),
        ApiKey::SyncGroup => dec(buf, version).map(RequestBody::SyncGroup),
        ApiKey::Heartbeat => dec(buf, version).map(RequestBody::Heartbeat),
        ApiKey::LeaveGroup => dec(buf, version).map(RequestBody::LeaveGroup),
        ApiKey::OffsetCommit => dec(buf, version).map(RequestBody::OffsetCommit),
        ApiKey::OffsetFetch => dec(buf, version).map(RequestBody::OffsetFetch),
        ApiKey::ListGroups => dec(buf, version).map(RequestBody::ListGroups),
        ApiKey::DescribeGroups => dec(buf, version).map(RequestBody::DescribeGroups),
        ApiKey::DeleteGroups => dec(buf, version).map(RequestBody::DeleteGroups),
        ApiKey::OffsetDelete => dec(buf, version).map(RequestBody::OffsetDelete),
        ApiKey::TxnOffsetCommit => dec(buf, version).map(RequestBody::TxnOffsetCommit),
        ApiKey::DescribeConfigs => dec(buf, version).map(RequestBody::DescribeConfigs),
        ApiKey::DeleteRecords => dec(buf, version).map(RequestBody::DeleteRecords),
        ApiKey::AlterConfigs => dec(buf, version).map(RequestBody::AlterConfigs),
        ApiKey::IncrementalAlterConfigs => {
            dec(buf, version).map(RequestBody::IncrementalAlterConfigs)
        }
        ApiKey::OffsetForLeaderEpoch => dec(buf, version).map(RequestBody::OffsetForLeaderEpoch),
        ApiKey::CreatePartitions => dec(buf, version).map(RequestBody::CreatePartitions),
        ApiKey::ElectLeaders => dec(buf, version).map(RequestBody::ElectLeaders),
        ApiKey::AlterPartitionReassignments => {
            dec(buf, version).map(RequestBody::AlterPartitionReassignments)
        }
        ApiKey::ListPartitionReassignments => {
            dec(buf, version).map(RequestBody::ListPartitionReassignments)
        }
        ApiKey::DescribeQuorum => dec(buf, version).map(RequestBody::DescribeQuorum),
        ApiKey::AddRaftVoter => dec(buf, version).map(RequestBody::AddRaftVoter),
        ApiKey::RemoveRaftVoter => dec(buf, version).map(RequestBody::RemoveRaftVoter),
        ApiKey::UpdateFeatures => dec(buf, version).map(RequestBody::UpdateFeatures),
        ApiKey::UnregisterBroker => dec(buf, version).map(RequestBody::UnregisterBroker),
        ApiKey::DescribeCluster => dec(buf, version).map(RequestBody::DescribeCluster),
        ApiKey::DescribeLogDirs => dec(buf, version).map(RequestBody::DescribeLogDirs),
        ApiKey::AlterReplicaLogDirs => dec(buf, version).map(RequestBody::AlterReplicaLogDirs),
        ApiKey::InitProducerId => dec(buf, version).map(RequestBody::InitProducerId),
        ApiKey::DescribeProducers => dec(buf, version).map(RequestBody::DescribeProducers),
        ApiKey::AddPartitionsToTxn => dec(buf, version).map(RequestBody::AddPartitionsToTxn),
        ApiKey::AddOffsetsToTxn => dec(buf, version).map(RequestBody::AddOffsetsToTxn),
        ApiKey::EndTxn => dec(buf, version).map(RequestBody::EndTxn),
        ApiKey::ListTransactions => dec(buf, version).map(RequestBody::ListTransactions),
        ApiKey::DescribeTransactions => dec(buf, version).map(RequestBody::DescribeTransactions),
        ApiKey::WriteTxnMarkers => dec(buf, version).map(RequestBody::WriteTxnMarkers),
        ApiKey::ConsumerGroupHeartbeat => {
            dec(buf, version).map(RequestBody::ConsumerGroupHeartbeat)
        }
        ApiKey::ConsumerGroupDescribe => dec(buf, version).map(RequestBody::ConsumerGroupDescribe),
        ApiKey::DescribeTopicPartitions => {
            dec(buf, version).map(RequestBody::DescribeTopicPartitions)
        }
        ApiKey::ListConfigResources => dec(buf, version).map(RequestBody::ListConfigResources),
        ApiKey::DescribeClientQuotas => dec(buf, version).map(RequestBody::DescribeClientQuotas),
        ApiKey::AlterClientQuotas => dec(buf, version).map(RequestBody::AlterClientQuotas),
        ApiKey::DescribeUserScramCredentials => {
            dec(buf, version).map(RequestBody::DescribeUserScramCredentials)
        }
        ApiKey::DescribeAcls => dec(buf, version).map(RequestBody::DescribeAcls),
        ApiKey::CreateAcls => dec(buf, version).map(RequestBody::CreateAcls),
        ApiKey::DeleteAcls => dec(buf, version).map(RequestBody::DeleteAcls),
        ApiKey::InitializeShareGroupState => {
            dec(buf, version).map(RequestBody::InitializeShareGroupState)
        }
        ApiKey::ReadShareGroupState => dec(buf, version).map(RequestBody::ReadShareGroupState),
        ApiKey::WriteShareGroupState => dec(buf, version).map(RequestBody::WriteShareGroupState),
        ApiKey::DeleteShareGroupState => dec(buf, version).map(RequestBody::DeleteShareGroupState),
        ApiKey::ReadShareGroupStateSummary => {
            dec(buf, version).map(RequestBody::ReadShareGroupStateSummary)
        }
        ApiKey::ShareFetch => dec(buf, version).map(RequestBody::ShareFetch),
        ApiKey::ShareAcknowledge => dec(buf, version).map(RequestBody::ShareAcknowledge),
        ApiKey::ShareGroupHeartbeat => dec(buf, version).map(RequestBody::ShareGroupHeartbeat),
        ApiKey::ShareGroupDescribe => dec(buf, version).map(RequestBody::ShareGroupDescribe),
        ApiKey::DescribeShareGroupOffsets => {
            dec(buf, version).map(RequestBody::DescribeShareGroupOffsets)
        }
        ApiKey::AlterShareGroupOffsets => {
            dec(buf, version).map(RequestBody::AlterShareGroupOffsets)
        }
        ApiKey::DeleteShareGroupOffsets => {
            dec(buf, version).map(RequestBody::DeleteShareGroupOffsets)
        }
        ApiKey::AlterUserScramCredentials => {
            dec(buf, version).map(RequestBody::AlterUserScramCredentials)
        }
        ApiKey::CreateDelegationToken => dec(buf, version).map(RequestBody::CreateDelegationToken),
        ApiKey::RenewDelegationToken => dec(buf, version).map(RequestBody::RenewDelegationToken),
        ApiKey::ExpireDelegationToken => dec(buf, version).map(RequestBody::ExpireDelegationToken),
        ApiKey::DescribeDelegationToken => {
            dec(buf, version).map(RequestBody::DescribeDelegationToken)
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use kafka_protocol::messages::{MetadataRequest, ProduceRequest};
    use kafka_protocol::protocol::{Encodable, HeaderVersion, StrBytes};

    const SERVED: &[(ApiKey, i16, i16)] = &[(ApiKey::Metadata, 0, 12), (ApiKey::Produce, 3, 11)];

    fn frame<R: Encodable + HeaderVersion>(key: ApiKey, version: i16, req: &R) -> Bytes {
        let header = RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(version)
            .with_correlation_id(42)
            .with_client_id(Some(StrBytes::from_static_str("test")));
        let mut b = BytesMut::new();
        header
            .encode(&mut b, R::header_version(version))
            .expect("encode header");
        req.encode(&mut b, version).expect("encode body");
        b.freeze()
    }

    #[test]
    fn served_requests_decode_with_their_header() {
        for v in 0..=12 {
            let f = frame(ApiKey::Metadata, v, &MetadataRequest::default());
            let r = decode_request(f, SERVED).expect("metadata decodes");
            assert_eq!(r.header.correlation_id, 42);
            assert_eq!(r.trailing, 0);
            assert!(matches!(r.body, RequestBody::Metadata(_)));
        }
    }

    #[test]
    fn unserved_keys_and_versions_are_refused_before_decoding() {
        let f = frame(ApiKey::Produce, 12, &ProduceRequest::default());
        assert!(matches!(
            decode_request(f, SERVED),
            Err(RequestError::UnsupportedVersion { version: 12, .. })
        ));
        let f = Bytes::from_static(&[0x7f, 0x7f, 0, 0, 0, 0, 0, 1]);
        assert!(matches!(
            decode_request(f, SERVED),
            Err(RequestError::UnknownApiKey(0x7f7f))
        ));
        let f = Bytes::from_static(&[0, 3, 0]);
        assert!(matches!(
            decode_request(f, SERVED),
            Err(RequestError::TooShort(3))
        ));
    }

    #[test]
    fn truncated_bodies_are_decode_errors() {
        let f = frame(ApiKey::Metadata, 12, &MetadataRequest::default());
        for cut in FIXED_HEADER_LEN..f.len() {
            assert!(matches!(
                decode_request(f.slice(..cut), SERVED),
                Err(RequestError::Decode { .. })
            ));
        }
    }
}
