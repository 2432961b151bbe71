//! DescribeQuorum (key 55): the metadata quorum's leader, epoch, high watermark, voters and
//! observers (`kafka-metadata-quorum.sh describe --status / --replication`).
//!
//! gregor's metadata log is an openraft log, not Kafka's `__cluster_metadata` KRaft
//! partition; this handler answers in Kafka's terms from [`QuorumState`]:
//!
//! ```text
//!  Kafka               openraft (QuorumState)
//!  leader id           leader
//!  leader epoch        term
//!  high watermark      last applied index + 1  (applied entries are committed)
//!  log end offset      last log index + 1 (this node), matched index + 1 (others, on the leader)
//!  voters / observers  voters / learners
//! ```
//!
//! Only the leader tracks the other nodes' replication, so a broker that is not the quorum
//! leader forwards the request to the leader's client listener, or to its controller listener
//! when it is controller-only or brokers reach each other over TLS or SASL (with TLS when the
//! controller listener is SSL), as a Kafka broker forwards it to the active controller, and
//! relays the answer; a forwarded request is never forwarded
//! again. If the leader cannot be reached in a few seconds, the broker answers from its own
//! view: the other nodes' log end offsets are then -1 (unknown). openraft does not track fetch
//! and caught-up times; gregor's quorum transport records when each node last answered the
//! leader's AppendEntries (`QuorumState::last_answer_ms`), which the leader reports as the
//! node's last fetch, and as its last caught-up time when the node matches the leader's log
//! (-1 otherwise); for itself the leader reports "now". Like Kafka's leader, which forgets an
//! observer after five minutes without a fetch, gregor's leader removes a learner that has not
//! answered for as long, so it leaves the observers (it joins again when it comes back).
//!
//! ```text
//!  client ─► broker 2 (follower) ──DescribeQuorum, client id gregor-forward──► broker 1 (leader)
//!         ◄─────────────── the leader's answer, relayed ◄────────────────────────┘
//! ```
//!
//! The principal needs DESCRIBE on the cluster (CLUSTER_AUTHORIZATION_FAILED otherwise), checked
//! where the client's request arrives. A forwarded request is authorized again on the leader,
//! for the forwarding connection's principal (there is no envelope carrying the client's);
//! when the leader refuses it, the broker answers from its own view.

use std::ops::RangeInclusive;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use gregor_metadata::AclOperation;
use gregor_protocol::error::ErrorCode;
use gregor_protocol::messages::describe_quorum_response::{
    Listener, Node, PartitionData, ReplicaState, TopicData,
};
use gregor_protocol::messages::ApiKey;
use gregor_protocol::messages::{BrokerId, DescribeQuorumRequest, DescribeQuorumResponse};
use gregor_protocol::messages::{RequestHeader, ResponseHeader};
use gregor_protocol::protocol::{Decodable, Encodable, HeaderVersion};
use gregor_raft::{NodeId, QuorumState};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::admin_common::CLUSTER_AUTHORIZATION_FAILED_MESSAGE;
use super::{str_bytes, topic_name};
use crate::authorizer;
use crate::broker::Broker;
use crate::request::{encode, Reply, RequestContext};

/// The API this module serves.
pub const KEY: ApiKey = ApiKey::DescribeQuorum;
/// The versions served (and advertised in ApiVersions).
pub const VERSIONS: RangeInclusive<i16> = 0..=2;

/// The metadata log's name in Kafka (what the tools ask about).
pub const METADATA_TOPIC: &str = "__cluster_metadata";

/// The listener name the quorum's addresses are given under (v2 `nodes`).
pub const CONTROLLER_LISTENER: &str = "CONTROLLER";

/// The client id of a request one broker forwards to the quorum leader.
pub const FORWARDED_CLIENT_ID: &str = "gregor-forward";

/// How long a follower waits for the leader's answer before answering itself.
const FORWARD_TIMEOUT: Duration = Duration::from_secs(5);

/// Handles a DescribeQuorum request: answered here on the quorum leader (or when forwarded),
/// forwarded to the leader otherwise.
pub fn handle(broker: &Arc<Broker>, ctx: RequestContext, req: DescribeQuorumRequest) -> Reply {
    let broker = Arc::clone(broker);
    Reply::Pending(Box::pin(async move {
        let response = describe_quorum(&broker, &ctx, &req).await;
        encode(&ctx, &response)
    }))
}

async fn describe_quorum(
    broker: &Broker,
    ctx: &RequestContext,
    req: &DescribeQuorumRequest,
) -> DescribeQuorumResponse {
    let version = ctx.api_version;
    if !authorizer::authorize_cluster(broker, ctx, AclOperation::Describe) {
        return denied(version);
    }
    let state = match &broker.quorum {
        Some(q) => q.state(),
        // No quorum (unit tests): this node alone.
        None => single_node(broker),
    };
    let forwarded = ctx.client_id.as_deref() == Some(FORWARDED_CLIENT_ID);
    if let Some(leader) = state.leader.filter(|&l| l != state.node_id && !forwarded) {
        match forward(broker, leader, version, req).await {
            // The leader authorizes the connection this broker forwards on, not the client
            // (gregor has no envelope): refused there, the client authorized here still gets
            // this node's view.
            Ok(resp) if resp.error_code == ErrorCode::CLUSTER_AUTHORIZATION_FAILED.code() => {
                tracing::warn!(
                    leader,
                    "DescribeQuorum: the leader refused this broker's forwarded request \
                     (CLUSTER_AUTHORIZATION_FAILED); answering from this node's view"
                )
            }
            Ok(resp) => return resp,
            Err(e) => tracing::debug!(
                leader,
                error = %e,
                "DescribeQuorum: the leader did not answer; answering from this node's view"
            ),
        }
    }
    describe(&state, broker.clock.now_ms(), req, version)
}

/// The request refused with CLUSTER_AUTHORIZATION_FAILED (Kafka's top-level error response).
pub(crate) fn denied(version: i16) -> DescribeQuorumResponse {
    DescribeQuorumResponse::default()
        .with_error_code(ErrorCode::CLUSTER_AUTHORIZATION_FAILED.code())
        .with_error_message((version >= 2).then(|| str_bytes(CLUSTER_AUTHORIZATION_FAILED_MESSAGE)))
}

/// Sends `req` to the quorum leader's client listener and reads its answer.
async fn forward(
    broker: &Broker,
    leader: NodeId,
    version: i16,
    req: &DescribeQuorumRequest,
) -> std::io::Result<DescribeQuorumResponse> {
    forward_to_leader(broker, leader, KEY, version, req, FORWARD_TIMEOUT).await
}

/// Sends `req` (API `key`, `version`) to the quorum leader `leader` and reads its answer of
/// type `Resp`, within `timeout`: to its client listener when brokers reach each other in
/// plaintext, else to its controller listener. Marked with [`FORWARDED_CLIENT_ID`], so the
/// leader answers it itself.
pub(crate) async fn forward_to_leader<Req, Resp>(
    broker: &Broker,
    leader: NodeId,
    key: ApiKey,
    version: i16,
    req: &Req,
    timeout: Duration,
) -> std::io::Result<Resp>
where
    Req: Encodable + HeaderVersion,
    Resp: Decodable + HeaderVersion,
{
    use std::io::{Error, ErrorKind};
    let id = i32::try_from(leader).map_err(|e| Error::new(ErrorKind::InvalidData, e))?;
    // The leader's client listener when brokers reach each other in plaintext; its controller
    // listener otherwise (over TLS when that listener is SSL: `connect_kafka`), as for a
    // controller-only leader, which has no client listener.
    let client_listener = || {
        if broker.config.inter_broker_security.is_some() {
            return None;
        }
        broker
            .config
            .cluster
            .peer_address_overrides
            .iter()
            .find(|v| v.id == id)
            .map(|v| (v.host.clone(), v.port))
            .or_else(|| {
                let image = broker.replicas.image();
                let e = image
                    .cluster()
                    .broker(id)?
                    .endpoint(&broker.config.inter_broker_listener_name())?;
                Some((e.host.clone(), e.port))
            })
    };
    // The configured address, else the one the quorum's membership records (a voter added
    // by AddRaftVoter).
    let controller_listener = || {
        if let Some(v) = broker.config.cluster.voters.iter().find(|v| v.id == id) {
            return Some((v.host.clone(), v.port));
        }
        let state = broker.quorum.as_ref()?.state();
        let addr = state.voters.get(&leader)?;
        let (host, port) = addr.rsplit_once(':')?;
        Some((
            host.trim_matches(['[', ']']).to_string(),
            port.parse().ok()?,
        ))
    };
    let (addr, via_controller) = client_listener()
        .map(|a| (a, false))
        .or_else(|| controller_listener().map(|a| (a, true)))
        .ok_or_else(|| Error::new(ErrorKind::NotFound, "the leader has no known address"))?;
    let connect = async {
        match (&broker.quorum, via_controller) {
            (Some(quorum), true) => {
                let (host, port) = &addr;
                let at = if host.contains(':') {
                    format!("[{host}]:{port}")
                } else {
                    format!("{host}:{port}")
                };
                quorum.connect_kafka(&at).await
            }
            _ => Ok(gregor_raft::QuorumStream::Plain(
                tokio::net::TcpStream::connect(addr).await?,
            )),
        }
    };
    exchange(connect, key, version, req, timeout).await
}

/// Sends `req` (API `key`, `version`, client id [`FORWARDED_CLIENT_ID`]) on the connection
/// `connect` opens and reads its answer of type `Resp`, all within `timeout`.
pub(crate) async fn exchange<Req, Resp>(
    connect: impl std::future::Future<Output = std::io::Result<gregor_raft::QuorumStream>>,
    key: ApiKey,
    version: i16,
    req: &Req,
    timeout: Duration,
) -> std::io::Result<Resp>
where
    Req: Encodable + HeaderVersion,
    Resp: Decodable + HeaderVersion,
{
    use std::io::{Error, ErrorKind};
    let invalid = |e: &dyn std::fmt::Display| Error::new(ErrorKind::InvalidData, e.to_string());
    let mut frame = BytesMut::new();
    frame.extend_from_slice(&[0; 4]);
    RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(1)
        .with_client_id(Some(str_bytes(FORWARDED_CLIENT_ID)))
        .encode(&mut frame, Req::header_version(version))
        .map_err(|e| invalid(&e))?;
    req.encode(&mut frame, version).map_err(|e| invalid(&e))?;
    let size = u32::try_from(frame.len() - 4).map_err(|e| invalid(&e))?;
    frame[..4].copy_from_slice(&size.to_be_bytes());
    let exchange = async {
        let mut stream = connect.await?;
        stream.write_all(&frame).await?;
        stream.flush().await?;
        let size = stream.read_u32().await?;
        // These answers are small; refuse anything absurd.
        if size > 1 << 20 {
            return Err(invalid(&format!("a {size}-byte answer")));
        }
        let mut body = vec![0; size as usize];
        stream.read_exact(&mut body).await?;
        Ok(body)
    };
    let body = tokio::time::timeout(timeout, exchange)
        .await
        .map_err(|_| Error::new(ErrorKind::TimedOut, "no answer in time"))??;
    let mut body = bytes::Bytes::from(body);
    let header = ResponseHeader::decode(&mut body, Resp::header_version(version))
        .map_err(|e| invalid(&e))?;
    if header.correlation_id != 1 {
        return Err(invalid(&"another correlation id"));
    }
    let resp = Resp::decode(&mut body, version).map_err(|e| invalid(&e))?;
    if body.has_remaining() {
        return Err(invalid(&"bytes after the answer"));
    }
    Ok(resp)
}

fn single_node(broker: &Broker) -> QuorumState {
    let id = NodeId::try_from(broker.config.node_id).unwrap_or_default();
    let (host, port) = &broker.advertised;
    QuorumState {
        node_id: id,
        leader: Some(id),
        term: 0,
        role: "leader",
        voters: [(id, format!("{host}:{port}"))].into_iter().collect(),
        learners: Default::default(),
        last_log_index: None,
        last_applied: None,
        replication: Default::default(),
        last_answer_ms: Default::default(),
        directory_ids: Default::default(),
    }
}

fn broker_id(id: NodeId) -> BrokerId {
    BrokerId(i32::try_from(id).unwrap_or(-1))
}

/// A Kafka offset from a Raft index (`None`: nothing yet, offset 0).
fn next_offset(index: Option<u64>) -> i64 {
    index.map_or(0, |i| {
        i64::try_from(i).unwrap_or(i64::MAX).saturating_add(1)
    })
}

/// What `state` says about node `id`.
fn replica(state: &QuorumState, id: NodeId, now_ms: i64) -> ReplicaState {
    let is_leader = state.leader == Some(state.node_id);
    let (leo, fetched, caught_up) = if id == state.node_id {
        let now = if is_leader { now_ms } else { -1 };
        (next_offset(state.last_log_index), now, now)
    } else if is_leader {
        // The last answer to the leader's AppendEntries is the replica's last fetch; when the
        // replica now matches the leader's log, that answer is when it caught up.
        let fetched = state.last_answer_ms.get(&id).copied().unwrap_or(-1);
        match state.replication.get(&id) {
            Some(matched) => (
                next_offset(*matched),
                fetched,
                if *matched == state.last_log_index {
                    fetched
                } else {
                    -1
                },
            ),
            None => (-1, fetched, -1),
        }
    } else {
        (-1, -1, -1)
    };
    ReplicaState::default()
        .with_replica_id(broker_id(id))
        .with_replica_directory_id(
            state
                .directory_ids
                .get(&id)
                .and_then(|d| gregor_protocol::kafka_uuid::parse(d))
                .unwrap_or_default(),
        )
        .with_log_end_offset(leo)
        .with_last_fetch_timestamp(fetched)
        .with_last_caught_up_timestamp(caught_up)
}

/// `host:port` split at the last colon.
fn split_addr(addr: &str) -> Option<(&str, u16)> {
    let (host, port) = addr.rsplit_once(':')?;
    Some((host, port.parse().ok()?))
}

/// The DescribeQuorum answer for `state` at `version` (pure: the handler's testable core).
/// Fields a version does not have stay at their defaults (the encoder refuses others):
/// timestamps from v1, error messages, directory ids and `nodes` from v2.
pub fn describe(
    state: &QuorumState,
    now_ms: i64,
    req: &DescribeQuorumRequest,
    version: i16,
) -> DescribeQuorumResponse {
    let message = |m: &'static str| (version >= 2).then(|| str_bytes(m));
    let replica = |id: NodeId| {
        let r = replica(state, id, now_ms);
        // Directory ids are v2's.
        let r = if version >= 2 {
            r
        } else {
            r.with_replica_directory_id(Default::default())
        };
        if version >= 1 {
            r
        } else {
            r.with_last_fetch_timestamp(-1)
                .with_last_caught_up_timestamp(-1)
        }
    };
    let topics = req
        .topics
        .iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    let data = PartitionData::default().with_partition_index(p.partition_index);
                    if *t.topic_name.0 != *METADATA_TOPIC || p.partition_index != 0 {
                        return data
                            .with_error_code(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION.code())
                            .with_error_message(message(
                                "The metadata quorum is __cluster_metadata-0.",
                            ));
                    }
                    let Some(leader) = state.leader else {
                        return data
                            .with_error_code(ErrorCode::NOT_LEADER_OR_FOLLOWER.code())
                            .with_error_message(message("The quorum has no leader."))
                            .with_leader_id(BrokerId(-1))
                            .with_leader_epoch(i32::try_from(state.term).unwrap_or(i32::MAX));
                    };
                    data.with_leader_id(broker_id(leader))
                        .with_leader_epoch(i32::try_from(state.term).unwrap_or(i32::MAX))
                        .with_high_watermark(if state.last_applied.is_some() {
                            next_offset(state.last_applied)
                        } else {
                            -1
                        })
                        .with_current_voters(state.voters.keys().map(|&id| replica(id)).collect())
                        .with_observers(state.learners.keys().map(|&id| replica(id)).collect())
                })
                .collect();
            TopicData::default()
                .with_topic_name(topic_name(&t.topic_name.0))
                .with_partitions(partitions)
        })
        .collect();
    if version < 2 {
        return DescribeQuorumResponse::default().with_topics(topics);
    }
    let nodes = state
        .voters
        .iter()
        .chain(state.learners.iter())
        .map(|(&id, addr)| {
            let listeners = split_addr(addr)
                .map(|(host, port)| {
                    vec![Listener::default()
                        .with_name(str_bytes(CONTROLLER_LISTENER))
                        .with_host(str_bytes(host))
                        .with_port(port)]
                })
                .unwrap_or_default();
            Node::default()
                .with_node_id(broker_id(id))
                .with_listeners(listeners)
        })
        .collect();
    DescribeQuorumResponse::default()
        .with_topics(topics)
        .with_nodes(nodes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use gregor_protocol::messages::describe_quorum_request;

    fn request(topic: &str) -> DescribeQuorumRequest {
        DescribeQuorumRequest::default().with_topics(vec![
            describe_quorum_request::TopicData::default()
                .with_topic_name(topic_name(topic))
                .with_partitions(vec![
                    describe_quorum_request::PartitionData::default().with_partition_index(0)
                ]),
        ])
    }

    fn leader_state() -> QuorumState {
        QuorumState {
            node_id: 1,
            leader: Some(1),
            term: 4,
            role: "leader",
            voters: [
                (1, "127.0.0.1:9093".into()),
                (2, "127.0.0.1:9094".into()),
                (3, "h3:9095".into()),
            ]
            .into_iter()
            .collect(),
            learners: [(4, "h4:9096".into())].into_iter().collect(),
            last_log_index: Some(41),
            last_applied: Some(40),
            replication: [(2, Some(41)), (3, Some(30)), (4, None)]
                .into_iter()
                .collect(),
            last_answer_ms: [(2, 990), (3, 980)].into_iter().collect(),
            directory_ids: [(3, "AAAAAAAAAAAAAAAAAAAAAw".to_string())]
                .into_iter()
                .collect(),
        }
    }

    #[test]
    fn the_leader_reports_every_voter_and_observer() {
        let resp = describe(&leader_state(), 1_000, &request(METADATA_TOPIC), 2);
        let p = &resp.topics[0].partitions[0];
        assert_eq!(p.error_code, 0);
        assert_eq!(p.leader_id, BrokerId(1));
        assert_eq!(p.leader_epoch, 4);
        assert_eq!(p.high_watermark, 41);
        // (id, log end offset, last fetch, last caught up): the leader itself now; 2 answered
        // at 990 and matches the leader's log; 3 answered at 980 and lags.
        let replicas = |rs: &[ReplicaState]| -> Vec<(i32, i64, i64, i64)> {
            rs.iter()
                .map(|r| {
                    (
                        r.replica_id.0,
                        r.log_end_offset,
                        r.last_fetch_timestamp,
                        r.last_caught_up_timestamp,
                    )
                })
                .collect()
        };
        assert_eq!(
            replicas(&p.current_voters),
            vec![(1, 42, 1_000, 1_000), (2, 42, 990, 990), (3, 31, 980, -1)]
        );
        // 4 never answered.
        assert_eq!(replicas(&p.observers), vec![(4, 0, -1, -1)]);
        // 3 told its directory id (KIP-853), the others did not.
        let dirs: Vec<uuid::Uuid> = p
            .current_voters
            .iter()
            .map(|r| r.replica_directory_id)
            .collect();
        assert_eq!(
            dirs,
            vec![
                uuid::Uuid::nil(),
                uuid::Uuid::nil(),
                uuid::Uuid::from_u128(3)
            ]
        );
        assert_eq!(resp.nodes.len(), 4);
        assert_eq!(resp.nodes[0].listeners[0].port, 9093);
        assert_eq!(&*resp.nodes[2].listeners[0].host, "h3");
    }

    /// Every version encodes (the encoder refuses fields a version does not have).
    #[test]
    fn every_version_encodes() {
        use gregor_protocol::protocol::Encodable;
        for v in VERSIONS {
            let resp = describe(&leader_state(), 1_000, &request(METADATA_TOPIC), v);
            let mut buf = bytes::BytesMut::new();
            resp.encode(&mut buf, v)
                .unwrap_or_else(|e| panic!("v{v}: {e}"));
            let mut state = leader_state();
            state.leader = None;
            let resp = describe(&state, 0, &request("other"), v);
            resp.encode(&mut buf, v)
                .unwrap_or_else(|e| panic!("v{v}: {e}"));
        }
    }

    #[test]
    fn a_follower_does_not_know_the_others_offsets() {
        let mut state = leader_state();
        state.node_id = 2;
        let resp = describe(&state, 1_000, &request(METADATA_TOPIC), 2);
        let p = &resp.topics[0].partitions[0];
        assert_eq!(p.leader_id, BrokerId(1));
        let leos: Vec<i64> = p.current_voters.iter().map(|r| r.log_end_offset).collect();
        assert_eq!(leos, vec![-1, 42, -1]);
    }

    #[test]
    fn other_partitions_and_a_quorum_without_leader_are_errors() {
        let resp = describe(&leader_state(), 0, &request("other"), 2);
        assert_eq!(
            resp.topics[0].partitions[0].error_code,
            ErrorCode::UNKNOWN_TOPIC_OR_PARTITION.code()
        );
        let mut state = leader_state();
        state.leader = None;
        let resp = describe(&state, 0, &request(METADATA_TOPIC), 2);
        assert_eq!(
            resp.topics[0].partitions[0].error_code,
            ErrorCode::NOT_LEADER_OR_FOLLOWER.code()
        );
    }

    /// With an authorizer: DESCRIBE on the cluster, else the request's top-level error is
    /// CLUSTER_AUTHORIZATION_FAILED (with Kafka's message from v2).
    #[tokio::test]
    async fn describing_the_quorum_needs_describe_on_the_cluster() {
        use crate::authorizer::test_support::{allow_cluster, ctx_of};
        let dir = tempfile::tempdir().expect("tempdir");
        let b = crate::handlers::admin_common::test_cluster::secured(dir.path());
        let req = request(METADATA_TOPIC);
        let alice = ctx_of("alice", KEY, 2);
        let resp = describe_quorum(&b, &alice, &req).await;
        assert_eq!(
            resp.error_code,
            ErrorCode::CLUSTER_AUTHORIZATION_FAILED.code()
        );
        assert_eq!(
            resp.error_message.as_deref(),
            Some(CLUSTER_AUTHORIZATION_FAILED_MESSAGE)
        );
        assert!(resp.topics.is_empty());
        for v in VERSIONS {
            use gregor_protocol::protocol::Encodable;
            let mut buf = bytes::BytesMut::new();
            denied(v)
                .encode(&mut buf, v)
                .unwrap_or_else(|e| panic!("v{v}: {e}"));
        }
        allow_cluster(&b, "User:alice", AclOperation::Describe);
        let resp = describe_quorum(&b, &alice, &req).await;
        assert_eq!(resp.error_code, 0);
        assert_eq!(resp.topics[0].partitions[0].error_code, 0);
    }
}
