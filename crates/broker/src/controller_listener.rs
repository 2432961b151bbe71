//! The Kafka APIs of the controller listener: what Kafka's controllers answer to clients that
//! bootstrap from them (KIP-919: `kafka-metadata-quorum`, `kafka-configs`, `kafka-acls` with
//! `--bootstrap-controller`, an AdminClient with `bootstrap.controllers`): ApiVersions,
//! DescribeCluster for controller endpoints, DescribeQuorum, and the admin APIs Kafka 4.4's
//! `ControllerApis` serves to clients. Every node serves them, a controller-only node too (it
//! has no broker listener). What Kafka's controllers do not serve (Metadata,
//! DescribeClientQuotas, the group APIs, ...) is not served here either.
//!
//! ```text
//!  client ─► controller listener ─► gregor-raft: first byte 0 = a Kafka request
//!               └─► ControllerApis::serve (this module): one request at a time, in order
//!                     ApiVersions      the APIs below
//!                     DescribeCluster  endpoint type CONTROLLER: the voters, the quorum
//!                                      leader as controller
//!                     DescribeQuorum   this node's view (describe_quorum::describe)
//!                     DescribeConfigs, IncrementalAlterConfigs, AlterConfigs,
//!                     DescribeAcls, CreateAcls, DeleteAcls,
//!                     CreateTopics, DeleteTopics, CreatePartitions, ElectLeaders,
//!                     Alter/ListPartitionReassignments, AlterClientQuotas,
//!                     Describe/AlterUserScramCredentials,
//!                     AddRaftVoter, RemoveRaftVoter
//!                                      the quorum's voters at kraft.version 1 (KIP-853,
//!                                      handlers::raft_voters), on the quorum leader
//!                     Create/Renew/Expire/DescribeDelegationToken
//!                                      the broker's handlers over this node
//!                                      (admin_node::ControllerNode): its own BROKER and
//!                                      BROKER_LOGGER resources, the quorum's image, changes
//!                                      through the active controller, the answer once this
//!                                      node's image shows them; the delegation token APIs
//!                                      judge the connection by this listener's protocol
//!                     anything else    closes the connection (logged once per connection)
//! ```
//!
//! The handler holds the quorum weakly: the quorum owns its listener, which owns this handler.

use std::net::SocketAddr;
use std::ops::RangeInclusive;
use std::sync::{Arc, LazyLock, Weak};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::future::BoxFuture;
use futures::FutureExt;
use gregor_protocol::error::ErrorCode;
use gregor_protocol::messages::describe_cluster_response::DescribeClusterBroker;
use gregor_protocol::messages::{
    AddRaftVoterRequest, AddRaftVoterResponse, AlterClientQuotasRequest, AlterConfigsRequest,
    AlterPartitionReassignmentsRequest, AlterUserScramCredentialsRequest, ApiKey,
    ApiVersionsRequest, BrokerId, CreateAclsRequest, CreateDelegationTokenRequest,
    CreatePartitionsRequest, CreateTopicsRequest, DeleteAclsRequest, DeleteTopicsRequest,
    DescribeAclsRequest, DescribeClusterRequest, DescribeClusterResponse, DescribeConfigsRequest,
    DescribeDelegationTokenRequest, DescribeQuorumRequest, DescribeUserScramCredentialsRequest,
    ElectLeadersRequest, ExpireDelegationTokenRequest, IncrementalAlterConfigsRequest,
    ListPartitionReassignmentsRequest, RemoveRaftVoterRequest, RemoveRaftVoterResponse,
    RenewDelegationTokenRequest, RequestHeader, UnregisterBrokerRequest, UpdateFeaturesRequest,
};
use gregor_protocol::protocol::Decodable;
use gregor_raft::{KafkaConnectionHandler, MetadataQuorum, QuorumState, QuorumStream};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tracing::{debug, info};

use gregor_metadata::{AclOperation, ResourceType, CLUSTER_NAME};

use crate::admin_node::{AdminNode, ControllerNode};
use crate::clock::Clock;
use crate::handlers::admin_common::CLUSTER_AUTHORIZATION_FAILED_MESSAGE;
use crate::handlers::{
    alter_client_quotas, alter_configs, alter_partition_reassignments,
    alter_user_scram_credentials, api_versions, create_acls, create_delegation_token,
    create_partitions, create_topics, delete_acls, delete_topics, describe_acls, describe_cluster,
    describe_configs, describe_delegation_token, describe_quorum, describe_user_scram_credentials,
    elect_leaders, expire_delegation_token, incremental_alter_configs,
    list_partition_reassignments, raft_voters, renew_delegation_token, sasl_authenticate,
    sasl_handshake, str_bytes, unregister_broker, update_features,
};
use crate::request::{encode, ready, ListenerName, ProtocolError, Reply, RequestContext};

/// The APIs a SASL_* controller listener serves, and their versions (the broker's), by key:
/// those Kafka 4.4's controllers serve to clients (`ApiKeys.apisForListener(CONTROLLER)`
/// without the quorum's and the brokers' own: Fetch, Vote, BrokerRegistration, ...), with
/// SaslHandshake and SaslAuthenticate, which a Kafka client looks for in ApiVersions before it
/// logs in.
pub const CONTROLLER_APIS_SASL: &[(ApiKey, i16, i16)] = &[
    range(sasl_handshake::KEY, sasl_handshake::VERSIONS),
    range(api_versions::KEY, api_versions::VERSIONS),
    range(create_topics::KEY, create_topics::VERSIONS),
    range(delete_topics::KEY, delete_topics::VERSIONS),
    range(describe_acls::KEY, describe_acls::VERSIONS),
    range(create_acls::KEY, create_acls::VERSIONS),
    range(delete_acls::KEY, delete_acls::VERSIONS),
    range(describe_configs::KEY, describe_configs::VERSIONS),
    range(alter_configs::KEY, alter_configs::VERSIONS),
    range(sasl_authenticate::KEY, sasl_authenticate::VERSIONS),
    range(create_partitions::KEY, create_partitions::VERSIONS),
    range(
        create_delegation_token::KEY,
        create_delegation_token::VERSIONS,
    ),
    range(
        renew_delegation_token::KEY,
        renew_delegation_token::VERSIONS,
    ),
    range(
        expire_delegation_token::KEY,
        expire_delegation_token::VERSIONS,
    ),
    range(
        describe_delegation_token::KEY,
        describe_delegation_token::VERSIONS,
    ),
    range(elect_leaders::KEY, elect_leaders::VERSIONS),
    range(
        incremental_alter_configs::KEY,
        incremental_alter_configs::VERSIONS,
    ),
    range(
        alter_partition_reassignments::KEY,
        alter_partition_reassignments::VERSIONS,
    ),
    range(
        list_partition_reassignments::KEY,
        list_partition_reassignments::VERSIONS,
    ),
    range(alter_client_quotas::KEY, alter_client_quotas::VERSIONS),
    range(
        describe_user_scram_credentials::KEY,
        describe_user_scram_credentials::VERSIONS,
    ),
    range(
        alter_user_scram_credentials::KEY,
        alter_user_scram_credentials::VERSIONS,
    ),
    range(describe_quorum::KEY, describe_quorum::VERSIONS),
    range(update_features::KEY, update_features::VERSIONS),
    range(describe_cluster::KEY, describe_cluster::VERSIONS),
    range(unregister_broker::KEY, unregister_broker::VERSIONS),
    range(raft_voters::ADD_KEY, raft_voters::ADD_VERSIONS),
    range(raft_voters::REMOVE_KEY, raft_voters::REMOVE_VERSIONS),
];

/// [`CONTROLLER_APIS_SASL`] without the SASL APIs: what any other controller listener serves.
pub static CONTROLLER_APIS: LazyLock<Vec<(ApiKey, i16, i16)>> = LazyLock::new(|| {
    CONTROLLER_APIS_SASL
        .iter()
        .copied()
        .filter(|(key, _, _)| ![sasl_handshake::KEY, sasl_authenticate::KEY].contains(key))
        .collect()
});

const fn range(key: ApiKey, v: RangeInclusive<i16>) -> (ApiKey, i16, i16) {
    (key, *v.start(), *v.end())
}

/// Kafka's `EndpointType.CONTROLLER`.
const CONTROLLER_ENDPOINTS: i8 = 2;

/// The largest request read here; these APIs' requests are tiny.
const MAX_REQUEST: usize = 1 << 20;

/// A connection idle this long is closed.
const IDLE_TIMEOUT: Duration = Duration::from_secs(600);

/// Serves Kafka clients on the controller listener.
pub struct ControllerApis {
    quorum: Weak<MetadataQuorum>,
    cluster_id: String,
    /// This controller's node id (`node.id`), which ApiVersions v5 checks (KIP-1242).
    node_id: i32,
    clock: Arc<dyn Clock>,
    /// `authorizer.class.name` and its settings: with one, DescribeQuorum needs DESCRIBE and
    /// DescribeCluster ALTER on the cluster, as on Kafka's controllers. The principal is the
    /// subject of the client's certificate on an SSL controller listener, else
    /// `User:ANONYMOUS`.
    authorizer: Option<gregor_metadata::StandardAuthorizer>,
    /// The listener's `ssl.principal.mapping.rules`, applied to that subject (KIP-371).
    principal_mapper: Arc<crate::principal_mapping::SslPrincipalMapper>,
    /// The listener's SASL settings when it is SASL_PLAINTEXT or SASL_SSL: a client logs in
    /// before any request but ApiVersions, and is authorized as its SASL user.
    sasl: Option<Arc<crate::sasl::SaslSettings>>,
    /// This node as the admin handlers see it.
    node: Arc<ControllerNode>,
    /// The listener's name (the first of `controller.listener.names`, else `CONTROLLER`), in
    /// each request's context: its security protocol decides whether a connection may manage
    /// delegation tokens, as on a client listener.
    listener: ListenerName,
}

impl ControllerApis {
    /// Serves the controller listener of `quorum` from now on, as `node` (whose configuration's
    /// `authorizer.class.name` the listener applies).
    pub fn install(
        quorum: &Arc<MetadataQuorum>,
        cluster_id: String,
        clock: Arc<dyn Clock>,
        node: Arc<ControllerNode>,
        principal_mapper: Arc<crate::principal_mapping::SslPrincipalMapper>,
        sasl: Option<Arc<crate::sasl::SaslSettings>>,
    ) {
        let apis = ControllerApis {
            quorum: Arc::downgrade(quorum),
            cluster_id,
            node_id: i32::try_from(quorum.node_id()).unwrap_or(-1),
            clock,
            authorizer: crate::admin_node::AdminNode::config(&*node)
                .authorizer
                .clone(),
            principal_mapper,
            sasl,
            listener: ListenerName::new(
                crate::admin_node::AdminNode::config(&*node)
                    .controller_listener_names
                    .first()
                    .map_or("CONTROLLER", String::as_str),
            ),
            node,
        };
        quorum.serve_kafka(Arc::new(apis));
    }

    /// The APIs this listener serves.
    fn apis(&self) -> &'static [(ApiKey, i16, i16)] {
        if self.sasl.is_some() {
            CONTROLLER_APIS_SASL
        } else {
            &CONTROLLER_APIS
        }
    }

    /// The answer to one request (without its size prefix), size-prefixed, or the answer to
    /// come; an error closes the connection.
    fn answer(
        &self,
        peer: SocketAddr,
        principal: &crate::request::Principal,
        frame: Bytes,
    ) -> Result<Reply, ProtocolError> {
        if frame.len() < 8 {
            return Err(ProtocolError::TooShort(frame.len()));
        }
        let key = i16::from_be_bytes([frame[0], frame[1]]);
        let version = i16::from_be_bytes([frame[2], frame[3]]);
        let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
        let api = ApiKey::try_from(key).map_err(|_| ProtocolError::UnknownApiKey {
            key,
            client_id: None,
        })?;
        let unsupported = || ProtocolError::UnsupportedVersion {
            api,
            version,
            client_id: None,
        };
        let (_, min, max) = CONTROLLER_APIS
            .iter()
            .find(|(k, _, _)| *k == api)
            .ok_or_else(unsupported)?;
        if version < *min || version > *max {
            if api == api_versions::KEY {
                return Ok(Reply::Ready(api_versions::unsupported_version_reply_for(
                    self.apis(),
                    correlation_id,
                )));
            }
            return Err(unsupported());
        }
        let mut body = frame;
        let header = RequestHeader::decode(&mut body, api.request_header_version(version))
            .map_err(|e| ProtocolError::Decode {
                api,
                version,
                reason: format!("request header: {e}"),
            })?;
        let ctx = RequestContext {
            mute: Default::default(),
            listener: self.listener.clone(),
            principal: principal.clone(),
            connection: Default::default(),
            api,
            api_version: version,
            correlation_id,
            client_id: header.client_id.map(|s| s.to_string()),
            client_host: format!("/{}", peer.ip()),
        };
        let decode_error = |e: anyhow::Error| ProtocolError::Decode {
            api,
            version,
            reason: e.to_string(),
        };
        // An admin API the controller listener shares with the brokers: decoded, then the
        // broker's handler over this node, its answer at once (`ready`) or to come.
        macro_rules! answer {
            (ready $module:ident, $request:ty) => {{
                let req = <$request>::decode(&mut body, version).map_err(decode_error)?;
                Ok(ready(&ctx, &$module::handle(&*self.node, &ctx, req)))
            }};
            (ready_ref $module:ident, $request:ty) => {{
                let req = <$request>::decode(&mut body, version).map_err(decode_error)?;
                Ok(ready(&ctx, &$module::handle(&*self.node, &ctx, &req)))
            }};
            (pending $module:ident, $request:ty) => {{
                let req = <$request>::decode(&mut body, version).map_err(decode_error)?;
                Ok($module::handle(&self.node, ctx, req))
            }};
        }
        match api {
            api_versions::KEY => {
                let req = ApiVersionsRequest::decode(&mut body, version).map_err(decode_error)?;
                let us = api_versions::Identity {
                    cluster_id: &self.cluster_id,
                    node_id: self.node_id,
                };
                // With the features, as Kafka's controllers answer (`kafka-features.sh
                // --bootstrap-controller describe`).
                let features = api_versions::Features::of(&AdminNode::image(&*self.node));
                Ok(ready(
                    &ctx,
                    &api_versions::handle_listing(self.apis(), us, version, &req, &features),
                ))
            }
            describe_cluster::KEY => {
                let req =
                    DescribeClusterRequest::decode(&mut body, version).map_err(decode_error)?;
                if !self.authorized(peer, principal, AclOperation::Alter) {
                    return Ok(ready(
                        &ctx,
                        &DescribeClusterResponse::default()
                            .with_error_code(ErrorCode::CLUSTER_AUTHORIZATION_FAILED.code())
                            .with_error_message(Some(str_bytes(
                                CLUSTER_AUTHORIZATION_FAILED_MESSAGE,
                            )))
                            .with_cluster_authorized_operations(i32::MIN),
                    ));
                }
                Ok(ready(&ctx, &self.describe_cluster(version, &req)))
            }
            describe_quorum::KEY => {
                let req =
                    DescribeQuorumRequest::decode(&mut body, version).map_err(decode_error)?;
                if !self.authorized(peer, principal, AclOperation::Describe) {
                    return Ok(ready(&ctx, &describe_quorum::denied(version)));
                }
                let state = self.state().ok_or_else(unsupported)?;
                Ok(ready(
                    &ctx,
                    &describe_quorum::describe(&state, self.clock.now_ms(), &req, version),
                ))
            }
            describe_configs::KEY => answer!(ready describe_configs, DescribeConfigsRequest),
            incremental_alter_configs::KEY => {
                answer!(pending incremental_alter_configs, IncrementalAlterConfigsRequest)
            }
            alter_configs::KEY => answer!(pending alter_configs, AlterConfigsRequest),
            describe_acls::KEY => answer!(ready describe_acls, DescribeAclsRequest),
            create_acls::KEY => answer!(pending create_acls, CreateAclsRequest),
            delete_acls::KEY => answer!(pending delete_acls, DeleteAclsRequest),
            create_topics::KEY => answer!(pending create_topics, CreateTopicsRequest),
            delete_topics::KEY => answer!(pending delete_topics, DeleteTopicsRequest),
            create_partitions::KEY => answer!(pending create_partitions, CreatePartitionsRequest),
            elect_leaders::KEY => answer!(pending elect_leaders, ElectLeadersRequest),
            alter_partition_reassignments::KEY => {
                answer!(pending alter_partition_reassignments, AlterPartitionReassignmentsRequest)
            }
            list_partition_reassignments::KEY => {
                answer!(ready_ref list_partition_reassignments, ListPartitionReassignmentsRequest)
            }
            alter_client_quotas::KEY => {
                answer!(pending alter_client_quotas, AlterClientQuotasRequest)
            }
            update_features::KEY => answer!(pending update_features, UpdateFeaturesRequest),
            raft_voters::ADD_KEY => {
                let req = AddRaftVoterRequest::decode(&mut body, version).map_err(decode_error)?;
                if !self.authorized(peer, principal, AclOperation::Alter) {
                    return Ok(ready(
                        &ctx,
                        &AddRaftVoterResponse::default()
                            .with_error_code(ErrorCode::CLUSTER_AUTHORIZATION_FAILED.code()),
                    ));
                }
                let quorum = self.quorum.upgrade().ok_or_else(unsupported)?;
                let cluster_id = self.cluster_id.clone();
                let listener = self.listener.as_str().to_string();
                Ok(Reply::Pending(Box::pin(async move {
                    let response = raft_voters::add(quorum, &cluster_id, &listener, req).await;
                    encode(&ctx, &response)
                })))
            }
            raft_voters::REMOVE_KEY => {
                let req =
                    RemoveRaftVoterRequest::decode(&mut body, version).map_err(decode_error)?;
                if !self.authorized(peer, principal, AclOperation::Alter) {
                    return Ok(ready(
                        &ctx,
                        &RemoveRaftVoterResponse::default()
                            .with_error_code(ErrorCode::CLUSTER_AUTHORIZATION_FAILED.code()),
                    ));
                }
                let quorum = self.quorum.upgrade().ok_or_else(unsupported)?;
                let cluster_id = self.cluster_id.clone();
                Ok(Reply::Pending(Box::pin(async move {
                    let response = raft_voters::remove(quorum, &cluster_id, req).await;
                    encode(&ctx, &response)
                })))
            }
            unregister_broker::KEY => {
                answer!(pending unregister_broker, UnregisterBrokerRequest)
            }
            describe_user_scram_credentials::KEY => {
                answer!(ready_ref describe_user_scram_credentials, DescribeUserScramCredentialsRequest)
            }
            alter_user_scram_credentials::KEY => {
                answer!(pending alter_user_scram_credentials, AlterUserScramCredentialsRequest)
            }
            create_delegation_token::KEY => {
                answer!(pending create_delegation_token, CreateDelegationTokenRequest)
            }
            renew_delegation_token::KEY => {
                answer!(pending renew_delegation_token, RenewDelegationTokenRequest)
            }
            expire_delegation_token::KEY => {
                answer!(pending expire_delegation_token, ExpireDelegationTokenRequest)
            }
            describe_delegation_token::KEY => {
                answer!(ready_ref describe_delegation_token, DescribeDelegationTokenRequest)
            }
            _ => Err(unsupported()),
        }
    }

    /// May `principal` at `peer` do `op` on the cluster? Always, without an authorizer.
    /// Judged on the latest image this node has.
    fn authorized(
        &self,
        peer: SocketAddr,
        principal: &crate::request::Principal,
        op: AclOperation,
    ) -> bool {
        let Some(authorizer) = &self.authorizer else {
            return true;
        };
        let Some(quorum) = self.quorum.upgrade() else {
            return false;
        };
        let image = quorum.image().borrow().clone();
        let user = format!("User:{}", principal.name());
        let rule = authorizer.authorize(
            image.acls(),
            &user,
            &peer.ip().to_string(),
            op,
            ResourceType::Cluster,
            CLUSTER_NAME,
        );
        if !rule.allowed() {
            tracing::info!(
                target: "gregor::authorizer",
                "Principal = {user} is Denied operation = {op} from host = {} on \
                 resource = CLUSTER:LITERAL:{CLUSTER_NAME} on the controller listener based on \
                 rule {rule}",
                peer.ip()
            );
        }
        rule.allowed()
    }

    fn state(&self) -> Option<QuorumState> {
        self.quorum.upgrade().map(|q| q.state())
    }

    /// DescribeCluster on a controller: the voters at their controller listeners, the quorum
    /// leader as controller. Broker endpoints are not served here (MISMATCHED_ENDPOINT_TYPE, as
    /// Kafka's controllers answer).
    fn describe_cluster(
        &self,
        version: i16,
        req: &DescribeClusterRequest,
    ) -> DescribeClusterResponse {
        let response = DescribeClusterResponse::default()
            .with_cluster_id(str_bytes(self.cluster_id.clone()))
            .with_endpoint_type(CONTROLLER_ENDPOINTS)
            .with_cluster_authorized_operations(i32::MIN);
        if version < 1 || req.endpoint_type != CONTROLLER_ENDPOINTS {
            return response
                .with_error_code(ErrorCode::MISMATCHED_ENDPOINT_TYPE.code())
                .with_error_message(Some(str_bytes(
                    "The request was sent to an endpoint of type CONTROLLER, but we wanted an \
                     endpoint of type BROKER",
                )))
                .with_controller_id(BrokerId(-1));
        }
        let Some(state) = self.state() else {
            return response.with_controller_id(BrokerId(-1));
        };
        controllers(response, &state)
    }
}

/// `response` with the voters of `state` as its nodes and its leader as controller.
fn controllers(response: DescribeClusterResponse, state: &QuorumState) -> DescribeClusterResponse {
    let nodes = state
        .voters
        .iter()
        .filter_map(|(id, addr)| {
            let (host, port) = addr.rsplit_once(':')?;
            Some(
                DescribeClusterBroker::default()
                    .with_broker_id(BrokerId(i32::try_from(*id).ok()?))
                    .with_host(str_bytes(host.trim_matches(['[', ']']).to_string()))
                    .with_port(port.parse().ok()?)
                    .with_is_fenced(false),
            )
        })
        .collect();
    let leader = state
        .leader
        .and_then(|l| i32::try_from(l).ok())
        .unwrap_or(-1);
    response
        .with_controller_id(BrokerId(leader))
        .with_brokers(nodes)
}

/// The bytes of an answer, once it is ready.
async fn resolve(reply: Result<Reply, ProtocolError>) -> Result<Bytes, ProtocolError> {
    match reply? {
        Reply::Ready(bytes) => Ok(bytes),
        Reply::Pending(answer) => answer.await,
        // The APIs served here always answer, and never with file ranges.
        Reply::None | Reply::PendingChunks(_) => Ok(Bytes::new()),
    }
}

impl KafkaConnectionHandler for ControllerApis {
    fn serve(
        &self,
        stream: QuorumStream,
        peer: SocketAddr,
        first: Bytes,
    ) -> BoxFuture<'static, ()> {
        let apis = ControllerApis {
            quorum: self.quorum.clone(),
            cluster_id: self.cluster_id.clone(),
            node_id: self.node_id,
            clock: Arc::clone(&self.clock),
            authorizer: self.authorizer.clone(),
            principal_mapper: Arc::clone(&self.principal_mapper),
            sasl: self.sasl.clone(),
            node: Arc::clone(&self.node),
            listener: self.listener.clone(),
        };
        async move {
            if let Err(e) = apis.serve_connection(stream, peer, first).await {
                debug!(%peer, error = %e, "controller listener: Kafka connection closed");
            }
        }
        .boxed()
    }
}

impl ControllerApis {
    async fn serve_connection(
        &self,
        mut stream: QuorumStream,
        peer: SocketAddr,
        first: Bytes,
    ) -> std::io::Result<()> {
        let _ = stream.set_nodelay();
        // A client certificate names the client, through the listener's
        // ssl.principal.mapping.rules, as on the broker's SSL listeners: no rule matching fails
        // authentication and closes the connection.
        let principal = match stream
            .peer_certificate()
            .and_then(crate::tls::certificate_principal)
        {
            None => crate::request::Principal::default(),
            Some(dn) => match self.principal_mapper.name(&dn) {
                Ok(user) => crate::request::Principal::user(&user),
                Err(e) => {
                    info!(%peer, error = %e, "SSL authentication failed on the controller \
                        listener: Failed to map name for '{dn}' based on SSL principal mapping \
                        rules; connection closed");
                    return Ok(());
                }
            },
        };
        let mut principal = principal;
        let mut session = self.sasl.as_ref().map(|settings| {
            crate::sasl::SaslSession::new(
                Arc::clone(settings),
                Arc::new(crate::controller_sasl::QuorumScram(self.quorum.clone())),
            )
        });
        let mut frame = first;
        loop {
            // The SASL exchange's own reply, when the session takes the frame.
            let mut sasl_reply = None;
            if let Some(session) = &mut session {
                use crate::sasl::Intercept;
                let intercepted = match session.intercept(&frame, std::time::Instant::now()) {
                    Ok(i) => i,
                    Err(e) => {
                        debug!(%peer, error = %e, "controller listener: closing a Kafka connection");
                        return Ok(());
                    }
                };
                match intercepted {
                    Intercept::Pass => {}
                    Intercept::Reply(reply) => sasl_reply = Some(reply),
                    Intercept::Authenticated(reply, login) => {
                        // As on a client listener: a token's login may not manage tokens.
                        principal = if session.token_authenticated() {
                            crate::request::Principal::token_owner(&login.user)
                        } else {
                            crate::request::Principal::user(&login.user)
                        };
                        sasl_reply = Some(reply);
                    }
                    Intercept::ReplyAndClose(reply, reason) => {
                        info!(%peer, %reason, "SASL authentication failed on the controller \
                            listener; connection closed");
                        // KIP-306, as on a client listener.
                        let delay = crate::admin_node::AdminNode::config(&*self.node)
                            .net
                            .failed_authentication_delay_ms;
                        tokio::time::sleep(std::time::Duration::from_millis(delay.min(1 << 40)))
                            .await;
                        stream.write_all(&reply).await?;
                        stream.flush().await?;
                        return Ok(());
                    }
                    Intercept::Close(reason) | Intercept::Expired(reason) => {
                        info!(%peer, %reason, "SASL authentication failed on the controller \
                            listener; connection closed");
                        return Ok(());
                    }
                }
            }
            let reply = match sasl_reply {
                Some(reply) => reply,
                None => match resolve(self.answer(peer, &principal, frame)).await {
                    Ok(reply) => reply,
                    Err(e) => {
                        debug!(%peer, error = %e, "controller listener: closing a Kafka connection");
                        return Ok(());
                    }
                },
            };
            stream.write_all(&reply).await?;
            stream.flush().await?;
            frame = match self.next_frame(&mut stream).await? {
                Some(f) => f,
                None => return Ok(()),
            };
        }
    }

    /// The next request (without its size prefix); `None` at its end or after the idle
    /// timeout.
    async fn next_frame(&self, stream: &mut QuorumStream) -> std::io::Result<Option<Bytes>> {
        {
            let size = match tokio::time::timeout(IDLE_TIMEOUT, stream.read_i32()).await {
                Ok(Ok(size)) => size,
                Ok(Err(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
                Ok(Err(e)) => return Err(e),
                Err(_) => return Ok(None),
            };
            let size = usize::try_from(size)
                .ok()
                .filter(|&s| s <= MAX_REQUEST)
                .ok_or_else(|| {
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("request size {size} out of range"),
                    )
                })?;
            let mut buf = BytesMut::zeroed(size);
            stream.read_exact(&mut buf).await?;
            Ok(Some(buf.freeze()))
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use gregor_protocol::messages::create_acls_request::AclCreation;
    use gregor_protocol::messages::describe_configs_request::DescribeConfigsResource;
    use gregor_protocol::messages::{CreateAclsResponse, DescribeConfigsResponse, ResponseHeader};
    use gregor_protocol::protocol::{Encodable, HeaderVersion};

    /// A controller RPC handler that answers nothing: a quorum without an active controller.
    pub(crate) struct Silent;

    impl gregor_raft::ControllerRpcHandler for Silent {
        fn handle(
            &self,
            _from: gregor_raft::NodeId,
            _payload: Bytes,
        ) -> futures::future::BoxFuture<'static, Bytes> {
            Box::pin(async { Bytes::new() })
        }
    }

    /// One request of `version` over `stream` and its decoded answer.
    async fn call<Q: Encodable + HeaderVersion, R: Decodable + HeaderVersion>(
        stream: &mut QuorumStream,
        key: ApiKey,
        version: i16,
        request: &Q,
    ) -> R {
        let mut buf = BytesMut::new();
        RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(version)
            .with_correlation_id(7)
            .with_client_id(Some(str_bytes("unit")))
            .encode(&mut buf, Q::header_version(version))
            .expect("header");
        request.encode(&mut buf, version).expect("body");
        let mut framed = BytesMut::new();
        framed.extend_from_slice(&u32::try_from(buf.len()).expect("small").to_be_bytes());
        framed.extend_from_slice(&buf);
        stream.write_all(&framed).await.expect("write");
        stream.flush().await.expect("flush");
        let size = stream.read_u32().await.expect("answered");
        let mut body = BytesMut::zeroed(usize::try_from(size).expect("size"));
        stream.read_exact(&mut body).await.expect("read");
        let mut body = body.freeze();
        let header = ResponseHeader::decode(&mut body, R::header_version(version)).expect("header");
        assert_eq!(header.correlation_id, 7);
        R::decode(&mut body, version).expect("answer")
    }

    /// A controller listener on a one-voter quorum of node 1 configured by `shape` (no active
    /// controller: the `Silent` handler answers controller requests with nothing), and a
    /// connection to it.
    async fn listening(
        shape: impl FnOnce(crate::config::BrokerConfig) -> crate::config::BrokerConfig,
    ) -> (tempfile::TempDir, Arc<MetadataQuorum>, QuorumStream) {
        let dir = tempfile::tempdir().expect("tempdir");
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        drop(listener);
        let voters = [(1u64, addr.to_string())].into_iter().collect();
        let cfg = gregor_raft::QuorumConfig::new(
            1,
            "admin-cluster",
            dir.path(),
            addr,
            addr.to_string(),
            voters,
        );
        let quorum = Arc::new(
            MetadataQuorum::start(cfg, Arc::new(Silent))
                .await
                .expect("starts"),
        );
        let config = shape(crate::config::BrokerConfig {
            node_id: 1,
            data_dir: dir.path().to_path_buf(),
            ..Default::default()
        });
        ControllerApis::install(
            &quorum,
            "admin-cluster".into(),
            Arc::new(crate::clock::SystemClock),
            Arc::new(ControllerNode::new(
                Arc::new(config),
                &quorum,
                Arc::default(),
                Arc::default(),
            )),
            Arc::default(),
            None,
        );
        let tcp = tokio::net::TcpStream::connect(addr).await.expect("connect");
        (dir, quorum, QuorumStream::Plain(tcp))
    }

    /// Closes the connection and stops the quorum.
    async fn stop(stream: QuorumStream, quorum: Arc<MetadataQuorum>) {
        drop(stream);
        match Arc::try_unwrap(quorum) {
            Ok(q) => q.shutdown().await.expect("shutdown"),
            Err(_) => panic!("the quorum is still shared"),
        }
    }

    /// A controller listener (a one-voter quorum, no active controller needed for these)
    /// answers the config and ACL APIs for its own node: they are advertised with the
    /// features, its loggers and
    /// its broker configs are described, and the ACL APIs refuse as a broker without an
    /// authorizer does.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_controller_listener_serves_configs_and_acls_of_its_node() {
        let (_dir, quorum, mut stream) = listening(|c| c).await;

        let versions: gregor_protocol::messages::ApiVersionsResponse = call(
            &mut stream,
            ApiKey::ApiVersions,
            4,
            &ApiVersionsRequest::default()
                .with_client_software_name(str_bytes("unit"))
                .with_client_software_version(str_bytes("1")),
        )
        .await;
        let keys: Vec<i16> = versions.api_keys.iter().map(|k| k.api_key).collect();
        for key in [18, 29, 30, 31, 32, 33, 44, 55, 60] {
            assert!(keys.contains(&key), "api key {key} in {keys:?}");
        }
        // The features too, as on a broker (`kafka-features.sh --bootstrap-controller`).
        let features: Vec<&str> = versions
            .supported_features
            .iter()
            .map(|f| f.name.as_str())
            .collect();
        assert!(features.contains(&"transaction.version"), "{features:?}");

        let describe = |resource_type: i8, name: &str| {
            DescribeConfigsRequest::default().with_resources(vec![
                DescribeConfigsResource::default()
                    .with_resource_type(resource_type)
                    .with_resource_name(str_bytes(name.to_string())),
            ])
        };
        let loggers: DescribeConfigsResponse = call(
            &mut stream,
            ApiKey::DescribeConfigs,
            4,
            &describe(describe_configs::RESOURCE_BROKER_LOGGER, "1"),
        )
        .await;
        let r = &loggers.results[0];
        assert_eq!(r.error_code, 0, "{:?}", r.error_message);
        assert!(r.configs.iter().any(|c| c.name.as_str() == "root"), "{r:?}");
        // Another node's loggers are that node's to describe, as on a broker.
        let other: DescribeConfigsResponse = call(
            &mut stream,
            ApiKey::DescribeConfigs,
            4,
            &describe(describe_configs::RESOURCE_BROKER_LOGGER, "2"),
        )
        .await;
        assert_ne!(other.results[0].error_code, 0);
        let broker: DescribeConfigsResponse = call(
            &mut stream,
            ApiKey::DescribeConfigs,
            4,
            &describe(describe_configs::RESOURCE_BROKER, "1"),
        )
        .await;
        let r = &broker.results[0];
        assert_eq!(r.error_code, 0, "{:?}", r.error_message);
        assert!(
            r.configs
                .iter()
                .any(|c| c.name.as_str() == "num.partitions"),
            "{r:?}"
        );

        let created: CreateAclsResponse = call(
            &mut stream,
            ApiKey::CreateAcls,
            3,
            &CreateAclsRequest::default().with_creations(vec![AclCreation::default()
                .with_resource_type(2)
                .with_resource_name(str_bytes("t"))
                .with_resource_pattern_type(3)
                .with_principal(str_bytes("User:alice"))
                .with_host(str_bytes("*"))
                .with_operation(3)
                .with_permission_type(3)]),
        )
        .await;
        assert_eq!(
            created.results[0].error_code,
            ErrorCode::SECURITY_DISABLED.code()
        );

        stop(stream, quorum).await;
    }

    /// The other admin APIs Kafka 4.4's controllers serve are advertised with the broker's
    /// versions, and what Kafka's controllers do not serve is not (Metadata,
    /// DescribeClientQuotas, the group APIs); those needing no active controller answer from
    /// the node's own image and checks: no SCRAM credentials, no reassignments, a topic name
    /// refused, missing topics, a quota value refused, and the delegation token APIs refused
    /// on a PLAINTEXT listener (Kafka's `allowTokenRequests`). A request for an API not served
    /// closes the connection.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_controller_listener_serves_the_admin_apis_of_kafkas_controllers() {
        use crate::handlers::topic_name;
        use gregor_protocol::messages::alter_client_quotas_request::{
            EntityData, EntryData, OpData,
        };
        use gregor_protocol::messages::create_partitions_request::CreatePartitionsTopic;
        use gregor_protocol::messages::create_topics_request::CreatableTopic;
        use gregor_protocol::messages::delete_topics_request::DeleteTopicState;
        use gregor_protocol::messages::describe_user_scram_credentials_request::UserName;
        use gregor_protocol::messages::{
            AlterClientQuotasResponse, CreateDelegationTokenResponse, CreatePartitionsResponse,
            CreateTopicsResponse, DeleteTopicsResponse, DescribeDelegationTokenResponse,
            DescribeUserScramCredentialsResponse, ListPartitionReassignmentsResponse,
            MetadataRequest,
        };

        let (_dir, quorum, mut stream) = listening(|c| c).await;
        let versions: gregor_protocol::messages::ApiVersionsResponse = call(
            &mut stream,
            ApiKey::ApiVersions,
            3,
            &ApiVersionsRequest::default()
                .with_client_software_name(str_bytes("unit"))
                .with_client_software_version(str_bytes("1")),
        )
        .await;
        let advertised: Vec<(i16, i16, i16)> = versions
            .api_keys
            .iter()
            .map(|k| (k.api_key, k.min_version, k.max_version))
            .collect();
        let admin = [
            (create_topics::KEY, create_topics::VERSIONS),
            (delete_topics::KEY, delete_topics::VERSIONS),
            (create_partitions::KEY, create_partitions::VERSIONS),
            (
                create_delegation_token::KEY,
                create_delegation_token::VERSIONS,
            ),
            (
                renew_delegation_token::KEY,
                renew_delegation_token::VERSIONS,
            ),
            (
                expire_delegation_token::KEY,
                expire_delegation_token::VERSIONS,
            ),
            (
                describe_delegation_token::KEY,
                describe_delegation_token::VERSIONS,
            ),
            (elect_leaders::KEY, elect_leaders::VERSIONS),
            (
                alter_partition_reassignments::KEY,
                alter_partition_reassignments::VERSIONS,
            ),
            (
                list_partition_reassignments::KEY,
                list_partition_reassignments::VERSIONS,
            ),
            (alter_client_quotas::KEY, alter_client_quotas::VERSIONS),
            (
                describe_user_scram_credentials::KEY,
                describe_user_scram_credentials::VERSIONS,
            ),
            (
                alter_user_scram_credentials::KEY,
                alter_user_scram_credentials::VERSIONS,
            ),
        ];
        for (key, v) in admin {
            let want = (key as i16, *v.start(), *v.end());
            assert!(advertised.contains(&want), "{want:?} in {advertised:?}");
        }
        // Metadata, FindCoordinator, JoinGroup, DescribeGroups, ListGroups, DescribeClientQuotas.
        for key in [3, 10, 11, 15, 16, 48] {
            assert!(
                advertised.iter().all(|(k, _, _)| *k != key),
                "api key {key} in {advertised:?}"
            );
        }
        let keys: Vec<i16> = advertised.iter().map(|(k, _, _)| *k).collect();
        let mut sorted = keys.clone();
        sorted.sort_unstable();
        assert_eq!(keys, sorted, "by key");

        let scram: DescribeUserScramCredentialsResponse = call(
            &mut stream,
            ApiKey::DescribeUserScramCredentials,
            0,
            &DescribeUserScramCredentialsRequest::default(),
        )
        .await;
        assert_eq!((scram.error_code, scram.results.len()), (0, 0), "{scram:?}");
        let alice: DescribeUserScramCredentialsResponse = call(
            &mut stream,
            ApiKey::DescribeUserScramCredentials,
            0,
            &DescribeUserScramCredentialsRequest::default().with_users(Some(vec![
                UserName::default().with_name(str_bytes("alice")),
            ])),
        )
        .await;
        assert_eq!(
            alice.results[0].error_code,
            ErrorCode::RESOURCE_NOT_FOUND.code()
        );

        let moves: ListPartitionReassignmentsResponse = call(
            &mut stream,
            ApiKey::ListPartitionReassignments,
            0,
            &ListPartitionReassignmentsRequest::default(),
        )
        .await;
        assert_eq!((moves.error_code, moves.topics.len()), (0, 0), "{moves:?}");

        let created: CreateTopicsResponse = call(
            &mut stream,
            ApiKey::CreateTopics,
            7,
            &CreateTopicsRequest::default().with_topics(vec![CreatableTopic::default()
                .with_name(topic_name("bad name!"))
                .with_num_partitions(1)
                .with_replication_factor(1)]),
        )
        .await;
        assert_eq!(
            created.topics[0].error_code,
            ErrorCode::INVALID_TOPIC_EXCEPTION.code()
        );
        let deleted: DeleteTopicsResponse = call(
            &mut stream,
            ApiKey::DeleteTopics,
            6,
            &DeleteTopicsRequest::default().with_topics(vec![
                DeleteTopicState::default().with_name(Some(topic_name("missing")))
            ]),
        )
        .await;
        assert_eq!(
            deleted.responses[0].error_code,
            ErrorCode::UNKNOWN_TOPIC_OR_PARTITION.code()
        );
        let grown: CreatePartitionsResponse = call(
            &mut stream,
            ApiKey::CreatePartitions,
            3,
            &CreatePartitionsRequest::default().with_topics(vec![CreatePartitionsTopic::default()
                .with_name(topic_name("missing"))
                .with_count(3)]),
        )
        .await;
        assert_eq!(
            grown.results[0].error_code,
            ErrorCode::UNKNOWN_TOPIC_OR_PARTITION.code()
        );
        let quotas: AlterClientQuotasResponse = call(
            &mut stream,
            ApiKey::AlterClientQuotas,
            1,
            &AlterClientQuotasRequest::default().with_entries(vec![EntryData::default()
                .with_entity(vec![EntityData::default()
                    .with_entity_type(str_bytes("user"))
                    .with_entity_name(Some(str_bytes("alice")))])
                .with_ops(vec![OpData::default()
                    .with_key(str_bytes("producer_byte_rate"))
                    .with_value(f64::NAN)])]),
        )
        .await;
        assert_eq!(
            quotas.entries[0].error_code,
            ErrorCode::INVALID_REQUEST.code()
        );

        let token: CreateDelegationTokenResponse = call(
            &mut stream,
            ApiKey::CreateDelegationToken,
            3,
            &CreateDelegationTokenRequest::default(),
        )
        .await;
        assert_eq!(
            token.error_code,
            ErrorCode::DELEGATION_TOKEN_REQUEST_NOT_ALLOWED.code()
        );
        let tokens: DescribeDelegationTokenResponse = call(
            &mut stream,
            ApiKey::DescribeDelegationToken,
            3,
            &DescribeDelegationTokenRequest::default(),
        )
        .await;
        assert_eq!(
            tokens.error_code,
            ErrorCode::DELEGATION_TOKEN_REQUEST_NOT_ALLOWED.code()
        );

        // Not a controller's API: the connection closes, as Kafka's controller closes it.
        let mut buf = BytesMut::new();
        RequestHeader::default()
            .with_request_api_key(ApiKey::Metadata as i16)
            .with_request_api_version(12)
            .with_correlation_id(8)
            .encode(&mut buf, 2)
            .expect("header");
        MetadataRequest::default()
            .encode(&mut buf, 12)
            .expect("body");
        let size = u32::try_from(buf.len()).expect("small").to_be_bytes();
        stream.write_all(&size).await.expect("write");
        stream.write_all(&buf).await.expect("write");
        stream.flush().await.expect("flush");
        let mut rest = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut rest))
            .await
            .expect("closed in time");
        assert!(
            read.is_err() || rest.is_empty(),
            "no answer to Metadata: {rest:?}"
        );

        stop(stream, quorum).await;
    }

    /// With an authorizer and no ACLs, the controller listener's admin APIs refuse as a
    /// broker's do, and as Kafka's `ControllerApis` does: ALTER on the cluster for elections
    /// and SCRAM credentials, DESCRIBE for listing them, CREATE for a topic.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_controller_listeners_admin_apis_are_authorized() {
        use crate::handlers::topic_name;
        use gregor_protocol::messages::alter_user_scram_credentials_request::ScramCredentialDeletion;
        use gregor_protocol::messages::create_topics_request::CreatableTopic;
        use gregor_protocol::messages::elect_leaders_request::TopicPartitions;
        use gregor_protocol::messages::{
            AlterUserScramCredentialsResponse, CreateTopicsResponse,
            DescribeUserScramCredentialsResponse, ElectLeadersResponse,
            ListPartitionReassignmentsResponse,
        };

        let (_dir, quorum, mut stream) =
            listening(crate::authorizer::test_support::with_authorizer).await;
        let denied = ErrorCode::CLUSTER_AUTHORIZATION_FAILED.code();
        let scram: DescribeUserScramCredentialsResponse = call(
            &mut stream,
            ApiKey::DescribeUserScramCredentials,
            0,
            &DescribeUserScramCredentialsRequest::default(),
        )
        .await;
        assert_eq!(scram.error_code, denied);
        let altered: AlterUserScramCredentialsResponse = call(
            &mut stream,
            ApiKey::AlterUserScramCredentials,
            0,
            &AlterUserScramCredentialsRequest::default().with_deletions(vec![
                ScramCredentialDeletion::default()
                    .with_name(str_bytes("alice"))
                    .with_mechanism(1),
            ]),
        )
        .await;
        assert_eq!(altered.results[0].error_code, denied);
        let moves: ListPartitionReassignmentsResponse = call(
            &mut stream,
            ApiKey::ListPartitionReassignments,
            0,
            &ListPartitionReassignmentsRequest::default(),
        )
        .await;
        assert_eq!(moves.error_code, denied);
        let elected: ElectLeadersResponse = call(
            &mut stream,
            ApiKey::ElectLeaders,
            2,
            &ElectLeadersRequest::default().with_topic_partitions(Some(vec![
                TopicPartitions::default()
                    .with_topic(topic_name("t"))
                    .with_partitions(vec![0]),
            ])),
        )
        .await;
        assert_eq!(elected.error_code, denied);
        let created: CreateTopicsResponse = call(
            &mut stream,
            ApiKey::CreateTopics,
            7,
            &CreateTopicsRequest::default().with_topics(vec![CreatableTopic::default()
                .with_name(topic_name("t"))
                .with_num_partitions(1)
                .with_replication_factor(1)]),
        )
        .await;
        assert_eq!(
            created.topics[0].error_code,
            ErrorCode::TOPIC_AUTHORIZATION_FAILED.code()
        );
        stop(stream, quorum).await;
    }

    #[test]
    fn controllers_are_the_voters_and_the_leader() {
        let state = QuorumState {
            node_id: 2,
            leader: Some(3),
            term: 4,
            role: "follower",
            voters: [
                (1, "127.0.0.1:9191".to_string()),
                (3, "[::1]:9193".to_string()),
            ]
            .into_iter()
            .collect(),
            learners: [(4, "127.0.0.1:9194".to_string())].into_iter().collect(),
            last_log_index: Some(10),
            last_applied: Some(10),
            replication: Default::default(),
            last_answer_ms: Default::default(),
            directory_ids: Default::default(),
        };
        let resp = controllers(DescribeClusterResponse::default(), &state);
        assert_eq!(resp.controller_id, BrokerId(3));
        let nodes: Vec<(i32, String, i32)> = resp
            .brokers
            .iter()
            .map(|b| (b.broker_id.0, b.host.to_string(), b.port))
            .collect();
        assert_eq!(
            nodes,
            vec![(1, "127.0.0.1".into(), 9191), (3, "::1".into(), 9193)]
        );
    }
}
