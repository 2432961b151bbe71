//! AddRaftVoter (key 80) and RemoveRaftVoter (key 81), KIP-853: the controller listener's
//! answers to `kafka-metadata-quorum --bootstrap-controller HOST:PORT add-controller` and
//! `remove-controller`, which change the metadata quorum's voters once `kraft.version` is 1.
//!
//! ```text
//!  AddRaftVoter {cluster id, timeout, voter id, directory id, listeners}
//!     ALTER on the cluster, else CLUSTER_AUTHORIZATION_FAILED
//!     another cluster id ─► INCONSISTENT_CLUSTER_ID
//!     the listener named like this node's controller listener (else the first) ─► host:port
//!     MetadataQuorum::add_voter ─► NONE once the new voter set is committed, or Kafka's code:
//!       NOT_LEADER_OR_FOLLOWER, UNSUPPORTED_VERSION (kraft.version 0), DUPLICATE_VOTER,
//!       REQUEST_TIMED_OUT (a change under way, the node not caught up in time)
//!  RemoveRaftVoter {cluster id, voter id, directory id}
//!     the same checks ─► MetadataQuorum::remove_voter: NONE, VOTER_NOT_FOUND, INVALID_REQUEST
//!     (the only voter), ...
//! ```
//!
//! Both are served on the broker listener too, as Kafka's brokers serve them
//! (`kafka-metadata-quorum --bootstrap-server`): answered there when the node leads the quorum,
//! else forwarded to the leader (as DescribeQuorum is).
//!
//! The membership records a node's directory id when the node told it (its JOIN carries its
//! `meta.properties` `directory.id`; AddRaftVoter's for a node not yet in it): AddRaftVoter
//! with another one is INVALID_REQUEST, RemoveRaftVoter with another one VOTER_NOT_FOUND, as
//! Kafka names a voter by id and directory id. A voter recorded without one (a configured
//! voter, a node of an older gregor) is removed under any. gregor's guard against a voter that
//! lost its disk stays its vote gate.

use std::ops::RangeInclusive;
use std::sync::Arc;
use std::time::Duration;

use gregor_protocol::error::ErrorCode;
use gregor_protocol::messages::{
    AddRaftVoterRequest, AddRaftVoterResponse, ApiKey, RemoveRaftVoterRequest,
    RemoveRaftVoterResponse,
};
use gregor_raft::{MetadataQuorum, VoterChangeError};
use tracing::{info, warn};

use gregor_metadata::AclOperation;
use gregor_protocol::protocol::{Decodable, Encodable, HeaderVersion};

use super::describe_quorum::{forward_to_leader, FORWARDED_CLIENT_ID};
use super::str_bytes;
use crate::authorizer;
use crate::broker::Broker;
use crate::request::{encode, Reply, RequestContext};

/// The APIs this module serves.
pub const ADD_KEY: ApiKey = ApiKey::AddRaftVoter;
pub const REMOVE_KEY: ApiKey = ApiKey::RemoveRaftVoter;
/// The versions served (and advertised in ApiVersions on the controller listener).
pub const ADD_VERSIONS: RangeInclusive<i16> = 0..=0;
pub const REMOVE_VERSIONS: RangeInclusive<i16> = 0..=0;

/// How long a RemoveRaftVoter may take (its request has no timeout of its own), and the
/// bounds put on AddRaftVoter's.
const REMOVE_TIMEOUT: Duration = Duration::from_secs(30);
const MIN_ADD_TIMEOUT: Duration = Duration::from_secs(1);
const MAX_ADD_TIMEOUT: Duration = Duration::from_secs(300);

/// Kafka's INCONSISTENT_CLUSTER_ID and VOTER_NOT_FOUND.
const INCONSISTENT_CLUSTER_ID: i16 = 104;
const VOTER_NOT_FOUND: i16 = 117;

/// `Some(message)` when the request names another cluster (a missing or empty id is
/// accepted, as Kafka accepts a missing one).
fn other_cluster(ours: &str, theirs: Option<&str>) -> Option<String> {
    match theirs {
        Some(id) if !id.is_empty() && id != ours => Some(format!(
            "The request's cluster id {id} is not this cluster's ({ours})"
        )),
        _ => None,
    }
}

/// A request's directory id as the membership records it, `None` for the zero UUID (not
/// given).
fn directory_text(id: uuid::Uuid) -> Option<String> {
    (!id.is_nil()).then(|| gregor_protocol::kafka_uuid::to_text(id))
}

fn refusal(e: &VoterChangeError) -> (i16, Option<String>) {
    let message = match e {
        VoterChangeError::NotLeader { .. } => None,
        other => Some(other.to_string()),
    };
    (e.kafka_code(), message)
}

/// The `host:port` of the listener named `listener_name` (case-insensitively), else of the
/// first listener.
fn listener_address(req: &AddRaftVoterRequest, listener_name: &str) -> Option<String> {
    let chosen = req
        .listeners
        .iter()
        .find(|l| l.name.eq_ignore_ascii_case(listener_name))
        .or_else(|| req.listeners.first())?;
    let host = chosen.host.to_string();
    Some(if host.contains(':') {
        format!("[{host}]:{}", chosen.port)
    } else {
        format!("{host}:{}", chosen.port)
    })
}

/// The voter a request names, `(id, directory id)`, or its refusal `(code, message)`: another
/// cluster's id is INCONSISTENT_CLUSTER_ID, a negative voter id `bad_id`.
fn named_voter(
    cluster_id: &str,
    request_cluster: Option<&str>,
    voter_id: i32,
    directory: uuid::Uuid,
    bad_id: i16,
) -> Result<(u64, Option<String>), (i16, Option<String>)> {
    if let Some(m) = other_cluster(cluster_id, request_cluster) {
        return Err((INCONSISTENT_CLUSTER_ID, Some(m)));
    }
    let id = u64::try_from(voter_id)
        .map_err(|_| (bad_id, Some(format!("Invalid voter id {voter_id}"))))?;
    Ok((id, directory_text(directory)))
}

/// A voter change's answer `(code, message)`, the refusal logged.
fn outcome(api: &str, id: u64, result: Result<(), VoterChangeError>) -> (i16, Option<String>) {
    match result {
        Ok(()) => (ErrorCode::NONE.code(), None),
        Err(e) => {
            warn!(voter = id, error = %e, "{api} refused");
            refusal(&e)
        }
    }
}

/// Makes the requested node a voter (see the module docs).
pub async fn add(
    quorum: Arc<MetadataQuorum>,
    cluster_id: &str,
    listener_name: &str,
    req: AddRaftVoterRequest,
) -> AddRaftVoterResponse {
    let (code, message) = async {
        let (id, directory_id) = named_voter(
            cluster_id,
            req.cluster_id.as_deref(),
            req.voter_id,
            req.voter_directory_id,
            ErrorCode::INVALID_REQUEST.code(),
        )?;
        let addr = listener_address(&req, listener_name).ok_or_else(|| {
            (
                ErrorCode::INVALID_REQUEST.code(),
                Some(format!("The request gives voter {id} no listener")),
            )
        })?;
        let timeout = Duration::from_millis(u64::try_from(req.timeout_ms).unwrap_or(0))
            .clamp(MIN_ADD_TIMEOUT, MAX_ADD_TIMEOUT);
        info!(voter = id, %addr, ?directory_id, "AddRaftVoter");
        let result = quorum
            .add_voter(id, &addr, directory_id.as_deref(), timeout)
            .await;
        Ok::<_, (i16, Option<String>)>(outcome("AddRaftVoter", id, result))
    }
    .await
    .unwrap_or_else(|refused| refused);
    AddRaftVoterResponse::default()
        .with_error_code(code)
        .with_error_message(message.map(str_bytes))
}

/// Takes the requested voter out (see the module docs).
pub async fn remove(
    quorum: Arc<MetadataQuorum>,
    cluster_id: &str,
    req: RemoveRaftVoterRequest,
) -> RemoveRaftVoterResponse {
    let (code, message) = match named_voter(
        cluster_id,
        req.cluster_id.as_deref(),
        req.voter_id,
        req.voter_directory_id,
        VOTER_NOT_FOUND,
    ) {
        Ok((id, directory_id)) => {
            info!(voter = id, ?directory_id, "RemoveRaftVoter");
            let result = quorum
                .remove_voter(id, directory_id.as_deref(), REMOVE_TIMEOUT)
                .await;
            outcome("RemoveRaftVoter", id, result)
        }
        Err(refused) => refused,
    };
    RemoveRaftVoterResponse::default()
        .with_error_code(code)
        .with_error_message(message.map(str_bytes))
}

/// How much longer than the request's own timeout a broker waits for the leader's answer to
/// a forwarded AddRaftVoter.
const FORWARD_MARGIN: Duration = Duration::from_secs(5);

/// The broker listener's AddRaftVoter (Kafka serves both APIs there too): ALTER on the
/// cluster, then answered here on the quorum leader, else forwarded to it.
pub fn handle_add(broker: &Arc<Broker>, ctx: RequestContext, req: AddRaftVoterRequest) -> Reply {
    let broker = Arc::clone(broker);
    Reply::Pending(Box::pin(async move {
        let response = add_on_broker(&broker, &ctx, req).await;
        encode(&ctx, &response)
    }))
}

/// The broker listener's RemoveRaftVoter, as [`handle_add`].
pub fn handle_remove(
    broker: &Arc<Broker>,
    ctx: RequestContext,
    req: RemoveRaftVoterRequest,
) -> Reply {
    let broker = Arc::clone(broker);
    Reply::Pending(Box::pin(async move {
        let response = remove_on_broker(&broker, &ctx, req).await;
        encode(&ctx, &response)
    }))
}

/// Where a broker's request goes: `Ok(quorum)` to answer here, `Err(leader)` to forward, or
/// `None` with no leader (or no quorum) to go to.
fn route(broker: &Broker, ctx: &RequestContext) -> Option<Result<Arc<MetadataQuorum>, u64>> {
    let quorum = broker.quorum.as_ref()?;
    let state = quorum.state();
    let forwarded = ctx.client_id.as_deref() == Some(FORWARDED_CLIENT_ID);
    match state.leader? {
        l if l == state.node_id || forwarded => Some(Ok(Arc::clone(quorum))),
        l => Some(Err(l)),
    }
}

fn controller_listener_name(broker: &Broker) -> &str {
    broker
        .config
        .controller_listener_names
        .first()
        .map_or("CONTROLLER", String::as_str)
}

/// A voter request on the broker listener: ALTER on the cluster, then `local` on the quorum
/// leader (this node, or the leader that a broker forwarded to), else forwarded to the leader
/// within `forward_timeout`; `answer` builds the response to an error.
async fn on_broker<Req, Resp, Fut>(
    broker: &Broker,
    ctx: &RequestContext,
    key: ApiKey,
    req: Req,
    forward_timeout: Duration,
    answer: impl Fn(i16, Option<&str>) -> Resp,
    local: impl FnOnce(Arc<MetadataQuorum>, Req) -> Fut,
) -> Resp
where
    Req: Encodable + HeaderVersion,
    Resp: Decodable + HeaderVersion,
    Fut: std::future::Future<Output = Resp>,
{
    if !authorizer::authorize_cluster(broker, ctx, AclOperation::Alter) {
        return answer(ErrorCode::CLUSTER_AUTHORIZATION_FAILED.code(), None);
    }
    match route(broker, ctx) {
        Some(Ok(quorum)) => local(quorum, req).await,
        Some(Err(leader)) => {
            match forward_to_leader(broker, leader, key, ctx.api_version, &req, forward_timeout)
                .await
            {
                Ok(resp) => resp,
                Err(e) => {
                    warn!(leader, api = ?key, error = %e, "the quorum leader did not answer");
                    answer(
                        ErrorCode::REQUEST_TIMED_OUT.code(),
                        Some("the metadata quorum's leader did not answer"),
                    )
                }
            }
        }
        None => answer(
            ErrorCode::REQUEST_TIMED_OUT.code(),
            Some("the metadata quorum has no leader"),
        ),
    }
}

async fn add_on_broker(
    broker: &Broker,
    ctx: &RequestContext,
    req: AddRaftVoterRequest,
) -> AddRaftVoterResponse {
    let timeout = Duration::from_millis(u64::try_from(req.timeout_ms).unwrap_or(0))
        .clamp(MIN_ADD_TIMEOUT, MAX_ADD_TIMEOUT)
        + FORWARD_MARGIN;
    let answer = |code: i16, message: Option<&str>| {
        AddRaftVoterResponse::default()
            .with_error_code(code)
            .with_error_message(message.map(|m| str_bytes(m.to_string())))
    };
    on_broker(broker, ctx, ADD_KEY, req, timeout, answer, |quorum, req| {
        add(
            quorum,
            &broker.cluster_id,
            controller_listener_name(broker),
            req,
        )
    })
    .await
}

async fn remove_on_broker(
    broker: &Broker,
    ctx: &RequestContext,
    req: RemoveRaftVoterRequest,
) -> RemoveRaftVoterResponse {
    let answer = |code: i16, message: Option<&str>| {
        RemoveRaftVoterResponse::default()
            .with_error_code(code)
            .with_error_message(message.map(|m| str_bytes(m.to_string())))
    };
    let timeout = REMOVE_TIMEOUT + FORWARD_MARGIN;
    on_broker(
        broker,
        ctx,
        REMOVE_KEY,
        req,
        timeout,
        answer,
        |quorum, req| remove(quorum, &broker.cluster_id, req),
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use gregor_protocol::messages::add_raft_voter_request::Listener;

    #[test]
    fn the_controller_listener_is_chosen_by_name_else_the_first() {
        let req = AddRaftVoterRequest::default().with_listeners(vec![
            Listener::default()
                .with_name(str_bytes("OTHER"))
                .with_host(str_bytes("h1"))
                .with_port(1),
            Listener::default()
                .with_name(str_bytes("CONTROLLER"))
                .with_host(str_bytes("::1"))
                .with_port(9093),
        ]);
        assert_eq!(
            listener_address(&req, "controller").as_deref(),
            Some("[::1]:9093")
        );
        assert_eq!(listener_address(&req, "NONE").as_deref(), Some("h1:1"));
        assert_eq!(
            listener_address(&AddRaftVoterRequest::default(), "CONTROLLER"),
            None
        );
    }

    #[test]
    fn another_cluster_id_is_refused_and_none_accepted() {
        assert!(other_cluster("abc", Some("xyz")).is_some());
        assert!(other_cluster("abc", Some("abc")).is_none());
        assert!(other_cluster("abc", None).is_none());
        assert!(other_cluster("abc", Some("")).is_none());
    }
}
