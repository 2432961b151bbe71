//! The request router: reads the request header, checks the API key and version against what
//! gregor advertises, decodes the typed request and hands it to that API's handler.
//!
//! Version policy (the same as Kafka's): an ApiVersions request of a version we do not know is
//! answered in the v0 format with UNSUPPORTED_VERSION and our ranges, so the client can retry;
//! Produce v0–v2 (advertised so librdkafka keeps compression on) get UNSUPPORTED_VERSION per
//! partition; any other unknown key or version closes the connection.

use std::sync::Arc;

use bytes::Bytes;
use gregor_protocol::messages::{
    ApiKey, ApiVersionsRequest, CreateTopicsRequest, DeleteTopicsRequest, FetchRequest,
    ListOffsetsRequest, MetadataRequest, ProduceRequest, RequestHeader,
};
use gregor_protocol::protocol::Decodable;

use crate::broker::Broker;
use crate::handlers;
use crate::request::{encode, ProtocolError, Reply, RequestContext};

fn decode<T: Decodable>(ctx: &RequestContext, body: &mut Bytes) -> Result<T, ProtocolError> {
    T::decode(body, ctx.api_version).map_err(|e| ProtocolError::Decode {
        api: ctx.api,
        version: ctx.api_version,
        reason: e.to_string(),
    })
}

/// Routes one request frame (without its size prefix).
pub fn dispatch(
    broker: &Arc<Broker>,
    peer: std::net::SocketAddr,
    frame: Bytes,
) -> Result<Reply, ProtocolError> {
    dispatch_muted(
        broker,
        peer,
        frame,
        crate::quota::Mute::default(),
        Default::default(),
        Default::default(),
        crate::request::ConnectionId::NONE,
    )
    .map(|(reply, _)| reply)
}

/// [`dispatch`] for a connection whose `mute` a throttled request sets; with the reply, the
/// request's kind in the request metrics (its API, a Fetch as `FetchConsumer` or
/// `FetchFollower`).
pub(crate) fn dispatch_muted(
    broker: &Arc<Broker>,
    peer: std::net::SocketAddr,
    frame: Bytes,
    mute: crate::quota::Mute,
    listener: crate::request::ListenerName,
    principal: crate::request::Principal,
    connection: crate::request::ConnectionId,
) -> Result<(Reply, crate::stats::RequestKind), ProtocolError> {
    if frame.len() < 8 {
        return Err(ProtocolError::TooShort(frame.len()));
    }
    let key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let correlation_id = i32::from_be_bytes([frame[4], frame[5], frame[6], frame[7]]);
    let api = ApiKey::try_from(key).map_err(|_| ProtocolError::UnknownApiKey {
        key,
        client_id: peek_client_id(&frame),
    })?;
    let Some((min, max)) = handlers::served_range(api) else {
        return Err(ProtocolError::UnsupportedVersion {
            api,
            version,
            client_id: peek_client_id(&frame),
        });
    };
    let mut name = crate::stats::RequestKind::api(key);
    if version < min || version > max {
        if api == handlers::api_versions::KEY {
            return Ok((
                Reply::Ready(handlers::api_versions::unsupported_version_reply(
                    correlation_id,
                )),
                name,
            ));
        }
        return Err(ProtocolError::UnsupportedVersion {
            api,
            version,
            client_id: peek_client_id(&frame),
        });
    }
    if api == handlers::produce::KEY && version < 3 {
        return handlers::produce::legacy_unsupported(frame, version).map(|r| (r, name));
    }
    let mut body = frame;
    let mut ctx = RequestContext {
        api,
        api_version: version,
        correlation_id,
        client_id: None,
        client_host: format!("/{}", peer.ip()),
        mute,
        listener,
        principal,
        connection,
    };
    let header: RequestHeader =
        RequestHeader::decode(&mut body, api.request_header_version(version)).map_err(|e| {
            ProtocolError::Decode {
                api,
                version,
                reason: format!("request header: {e}"),
            }
        })?;
    ctx.client_id = header.client_id.map(|s| s.to_string());

    let reply = match api {
        handlers::api_versions::KEY => {
            let req: ApiVersionsRequest = decode(&ctx, &mut body)?;
            let us = handlers::api_versions::Identity {
                cluster_id: &broker.cluster_id,
                node_id: broker.config.node_id,
            };
            let features = handlers::api_versions::Features::of(&broker.replicas.image());
            let resp = handlers::api_versions::handle(us, ctx.api_version, &req, &features);
            Reply::Ready(encode(&ctx, &resp)?)
        }
        handlers::metadata::KEY => {
            let req: MetadataRequest = decode(&ctx, &mut body)?;
            handlers::metadata::handle(broker, ctx, req)?
        }
        handlers::create_topics::KEY => {
            let req: CreateTopicsRequest = decode(&ctx, &mut body)?;
            handlers::create_topics::handle(broker, ctx, req)
        }
        handlers::delete_topics::KEY => {
            let req: DeleteTopicsRequest = decode(&ctx, &mut body)?;
            handlers::delete_topics::handle(broker, ctx, req)
        }
        handlers::describe_client_quotas::KEY => {
            let req = decode(&ctx, &mut body)?;
            Reply::Ready(encode(
                &ctx,
                &handlers::describe_client_quotas::handle(broker, &ctx, req),
            )?)
        }
        handlers::alter_client_quotas::KEY => {
            handlers::alter_client_quotas::handle(broker, ctx.clone(), decode(&ctx, &mut body)?)
        }
        handlers::describe_user_scram_credentials::KEY => {
            let req = decode(&ctx, &mut body)?;
            Reply::Ready(encode(
                &ctx,
                &handlers::describe_user_scram_credentials::handle(broker, &ctx, &req),
            )?)
        }
        handlers::alter_user_scram_credentials::KEY => {
            handlers::alter_user_scram_credentials::handle(
                broker,
                ctx.clone(),
                decode(&ctx, &mut body)?,
            )
        }
        handlers::describe_acls::KEY => {
            let req = decode(&ctx, &mut body)?;
            Reply::Ready(encode(
                &ctx,
                &handlers::describe_acls::handle(broker, &ctx, req),
            )?)
        }
        handlers::create_delegation_token::KEY => {
            handlers::create_delegation_token::handle(broker, ctx.clone(), decode(&ctx, &mut body)?)
        }
        handlers::renew_delegation_token::KEY => {
            handlers::renew_delegation_token::handle(broker, ctx.clone(), decode(&ctx, &mut body)?)
        }
        handlers::expire_delegation_token::KEY => {
            handlers::expire_delegation_token::handle(broker, ctx.clone(), decode(&ctx, &mut body)?)
        }
        handlers::describe_delegation_token::KEY => {
            let req = decode(&ctx, &mut body)?;
            Reply::Ready(encode(
                &ctx,
                &handlers::describe_delegation_token::handle(broker, &ctx, &req),
            )?)
        }
        handlers::create_acls::KEY => {
            handlers::create_acls::handle(broker, ctx.clone(), decode(&ctx, &mut body)?)
        }
        handlers::delete_acls::KEY => {
            handlers::delete_acls::handle(broker, ctx.clone(), decode(&ctx, &mut body)?)
        }
        handlers::describe_producers::KEY => {
            let req = decode(&ctx, &mut body)?;
            Reply::Ready(encode(
                &ctx,
                &handlers::describe_producers::handle(broker, &ctx, req),
            )?)
        }
        handlers::write_txn_markers::KEY => {
            handlers::write_txn_markers::handle(broker, ctx.clone(), decode(&ctx, &mut body)?)?
        }
        handlers::init_producer_id::KEY => {
            handlers::init_producer_id::handle(broker, ctx.clone(), decode(&ctx, &mut body)?)
        }
        handlers::list_offsets::KEY => {
            let req: ListOffsetsRequest = decode(&ctx, &mut body)?;
            Reply::Ready(encode(
                &ctx,
                &handlers::list_offsets::handle(broker, &ctx, req),
            )?)
        }
        handlers::produce::KEY => {
            let req: ProduceRequest = decode(&ctx, &mut body)?;
            handlers::produce::handle(broker, ctx, req)?
        }
        handlers::fetch::KEY => {
            let req: FetchRequest = decode(&ctx, &mut body)?;
            name = if handlers::fetch::replica_id(&ctx, &req) >= 0 {
                crate::stats::RequestKind::FETCH_FOLLOWER
            } else {
                crate::stats::RequestKind::FETCH_CONSUMER
            };
            handlers::fetch::handle(broker, ctx, req)
        }
        handlers::find_coordinator::KEY => {
            let req = decode(&ctx, &mut body)?;
            Reply::Ready(encode(
                &ctx,
                &handlers::find_coordinator::handle(broker, &ctx, req),
            )?)
        }
        handlers::join_group::KEY => {
            handlers::join_group::handle(broker, ctx.clone(), decode(&ctx, &mut body)?)
        }
        handlers::sync_group::KEY => {
            handlers::sync_group::handle(broker, ctx.clone(), decode(&ctx, &mut body)?)
        }
        handlers::heartbeat::KEY => {
            let req = decode(&ctx, &mut body)?;
            Reply::Ready(encode(
                &ctx,
                &handlers::heartbeat::handle(broker, &ctx, req),
            )?)
        }
        handlers::leave_group::KEY => {
            handlers::leave_group::handle(broker, ctx.clone(), decode(&ctx, &mut body)?)
        }
        handlers::offset_commit::KEY => {
            handlers::offset_commit::handle(broker, ctx.clone(), decode(&ctx, &mut body)?)
        }
        handlers::txn_offset_commit::KEY => {
            handlers::txn_offset_commit::handle(broker, ctx.clone(), decode(&ctx, &mut body)?)?
        }
        handlers::offset_fetch::KEY => {
            let req = decode(&ctx, &mut body)?;
            Reply::Ready(encode(
                &ctx,
                &handlers::offset_fetch::handle(broker, &ctx, req),
            )?)
        }
        handlers::share_fetch::KEY => {
            handlers::share_fetch::handle(broker, ctx.clone(), decode(&ctx, &mut body)?)
        }
        handlers::share_acknowledge::KEY => {
            handlers::share_acknowledge::handle(broker, ctx.clone(), decode(&ctx, &mut body)?)
        }
        handlers::share_group_heartbeat::KEY => {
            handlers::share_group_heartbeat::handle(broker, ctx.clone(), decode(&ctx, &mut body)?)
        }
        handlers::share_group_describe::KEY => {
            let req = decode(&ctx, &mut body)?;
            Reply::Ready(encode(
                &ctx,
                &handlers::share_group_describe::handle(broker, &ctx, req),
            )?)
        }
        handlers::describe_share_group_offsets::KEY => {
            handlers::describe_share_group_offsets::handle(
                broker,
                ctx.clone(),
                decode(&ctx, &mut body)?,
            )
        }
        handlers::alter_share_group_offsets::KEY => handlers::alter_share_group_offsets::handle(
            broker,
            ctx.clone(),
            decode(&ctx, &mut body)?,
        ),
        handlers::delete_share_group_offsets::KEY => handlers::delete_share_group_offsets::handle(
            broker,
            ctx.clone(),
            decode(&ctx, &mut body)?,
        ),
        handlers::consumer_group_heartbeat::KEY => handlers::consumer_group_heartbeat::handle(
            broker,
            ctx.clone(),
            decode(&ctx, &mut body)?,
        ),
        handlers::consumer_group_describe::KEY => {
            let req = decode(&ctx, &mut body)?;
            Reply::Ready(encode(
                &ctx,
                &handlers::consumer_group_describe::handle(broker, &ctx, req),
            )?)
        }
        handlers::streams_group_heartbeat::KEY => {
            handlers::streams_group_heartbeat::handle(broker, ctx.clone(), decode(&ctx, &mut body)?)
        }
        handlers::streams_group_describe::KEY => {
            let req = decode(&ctx, &mut body)?;
            Reply::Ready(encode(
                &ctx,
                &handlers::streams_group_describe::handle(broker, &ctx, req),
            )?)
        }
        handlers::list_groups::KEY => {
            let req = decode(&ctx, &mut body)?;
            Reply::Ready(encode(
                &ctx,
                &handlers::list_groups::handle(broker, &ctx, req),
            )?)
        }
        handlers::describe_groups::KEY => {
            let req = decode(&ctx, &mut body)?;
            Reply::Ready(encode(
                &ctx,
                &handlers::describe_groups::handle(broker, &ctx, req),
            )?)
        }
        handlers::delete_groups::KEY => {
            handlers::delete_groups::handle(broker, ctx.clone(), decode(&ctx, &mut body)?)
        }
        handlers::offset_delete::KEY => {
            handlers::offset_delete::handle(broker, ctx.clone(), decode(&ctx, &mut body)?)
        }
        handlers::delete_records::KEY => {
            let req = decode(&ctx, &mut body)?;
            handlers::delete_records::handle(broker, ctx, req)
        }
        handlers::describe_configs::KEY => {
            let req = decode(&ctx, &mut body)?;
            Reply::Ready(encode(
                &ctx,
                &handlers::describe_configs::handle(broker, &ctx, req),
            )?)
        }
        handlers::alter_configs::KEY => {
            handlers::alter_configs::handle(broker, ctx.clone(), decode(&ctx, &mut body)?)
        }
        handlers::incremental_alter_configs::KEY => handlers::incremental_alter_configs::handle(
            broker,
            ctx.clone(),
            decode(&ctx, &mut body)?,
        ),
        handlers::offset_for_leader_epoch::KEY => {
            let req = decode(&ctx, &mut body)?;
            Reply::Ready(encode(
                &ctx,
                &handlers::offset_for_leader_epoch::handle(broker, &ctx, req),
            )?)
        }
        handlers::create_partitions::KEY => {
            handlers::create_partitions::handle(broker, ctx.clone(), decode(&ctx, &mut body)?)
        }
        handlers::elect_leaders::KEY => {
            handlers::elect_leaders::handle(broker, ctx.clone(), decode(&ctx, &mut body)?)
        }
        handlers::alter_partition_reassignments::KEY => {
            let req = decode(&ctx, &mut body)?;
            handlers::alter_partition_reassignments::handle(broker, ctx, req)
        }
        handlers::list_partition_reassignments::KEY => {
            let req = decode(&ctx, &mut body)?;
            Reply::Ready(encode(
                &ctx,
                &handlers::list_partition_reassignments::handle(broker, &ctx, &req),
            )?)
        }
        handlers::unregister_broker::KEY => {
            handlers::unregister_broker::handle(broker, ctx.clone(), decode(&ctx, &mut body)?)
        }
        handlers::update_features::KEY => {
            handlers::update_features::handle(broker, ctx.clone(), decode(&ctx, &mut body)?)
        }
        handlers::describe_quorum::KEY => {
            let req = decode(&ctx, &mut body)?;
            handlers::describe_quorum::handle(broker, ctx, req)
        }
        handlers::raft_voters::ADD_KEY => {
            let req = decode(&ctx, &mut body)?;
            handlers::raft_voters::handle_add(broker, ctx, req)
        }
        handlers::raft_voters::REMOVE_KEY => {
            let req = decode(&ctx, &mut body)?;
            handlers::raft_voters::handle_remove(broker, ctx, req)
        }
        handlers::alter_replica_log_dirs::KEY => {
            let req = decode(&ctx, &mut body)?;
            Reply::Ready(encode(
                &ctx,
                &handlers::alter_replica_log_dirs::handle(broker, &ctx, &req),
            )?)
        }
        handlers::describe_log_dirs::KEY => {
            let req = decode(&ctx, &mut body)?;
            Reply::Ready(encode(
                &ctx,
                &handlers::describe_log_dirs::handle(broker, &ctx, &req),
            )?)
        }
        handlers::sasl_handshake::KEY => {
            let _: gregor_protocol::messages::SaslHandshakeRequest = decode(&ctx, &mut body)?;
            Reply::Ready(encode(&ctx, &handlers::sasl_handshake::handle())?)
        }
        handlers::sasl_authenticate::KEY => {
            let _: gregor_protocol::messages::SaslAuthenticateRequest = decode(&ctx, &mut body)?;
            Reply::Ready(encode(&ctx, &handlers::sasl_authenticate::handle())?)
        }
        handlers::describe_cluster::KEY => {
            let req = decode(&ctx, &mut body)?;
            Reply::Ready(encode(
                &ctx,
                &handlers::describe_cluster::handle(broker, &ctx, &req),
            )?)
        }
        handlers::describe_topic_partitions::KEY => {
            let req = decode(&ctx, &mut body)?;
            Reply::Ready(encode(
                &ctx,
                &handlers::describe_topic_partitions::handle(broker, &ctx, &req),
            )?)
        }
        handlers::list_config_resources::KEY => {
            let req = decode(&ctx, &mut body)?;
            Reply::Ready(encode(
                &ctx,
                &handlers::list_config_resources::handle(broker, &ctx, &req),
            )?)
        }
        handlers::add_partitions_to_txn::KEY => {
            handlers::add_partitions_to_txn::handle(broker, ctx.clone(), decode(&ctx, &mut body)?)
        }
        handlers::add_offsets_to_txn::KEY => {
            handlers::add_offsets_to_txn::handle(broker, ctx.clone(), decode(&ctx, &mut body)?)
        }
        handlers::end_txn::KEY => {
            handlers::end_txn::handle(broker, ctx.clone(), decode(&ctx, &mut body)?)
        }
        handlers::list_transactions::KEY => {
            let req = decode(&ctx, &mut body)?;
            Reply::Ready(encode(
                &ctx,
                &handlers::list_transactions::handle(broker, &ctx, req),
            )?)
        }
        handlers::initialize_share_group_state::KEY => {
            handlers::initialize_share_group_state::handle(
                broker,
                ctx.clone(),
                decode(&ctx, &mut body)?,
            )
        }
        handlers::read_share_group_state::KEY => {
            handlers::read_share_group_state::handle(broker, ctx.clone(), decode(&ctx, &mut body)?)
        }
        handlers::write_share_group_state::KEY => {
            handlers::write_share_group_state::handle(broker, ctx.clone(), decode(&ctx, &mut body)?)
        }
        handlers::delete_share_group_state::KEY => handlers::delete_share_group_state::handle(
            broker,
            ctx.clone(),
            decode(&ctx, &mut body)?,
        ),
        handlers::read_share_group_state_summary::KEY => {
            handlers::read_share_group_state_summary::handle(
                broker,
                ctx.clone(),
                decode(&ctx, &mut body)?,
            )
        }
        handlers::describe_transactions::KEY => {
            let req = decode(&ctx, &mut body)?;
            Reply::Ready(encode(
                &ctx,
                &handlers::describe_transactions::handle(broker, &ctx, req),
            )?)
        }
        other => {
            return Err(ProtocolError::UnsupportedVersion {
                api: other,
                version,
                client_id: ctx.client_id,
            })
        }
    };
    Ok((reply, name))
}

/// The `client_id` of a request header that will not be decoded (its API or version is not
/// served), for the log line: every header version but v0 (ControlledShutdown v0 only) has it
/// right after the correlation id, as a nullable int16-length string.
fn peek_client_id(frame: &[u8]) -> Option<String> {
    let len = i16::from_be_bytes([*frame.get(8)?, *frame.get(9)?]);
    let bytes = frame.get(10..10 + usize::try_from(len).ok()?)?;
    Some(String::from_utf8_lossy(bytes).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn broker(dir: &std::path::Path) -> Arc<Broker> {
        let mut config = crate::config::BrokerConfig {
            data_dir: dir.to_path_buf(),
            ..Default::default()
        };
        config.group.offsets_topic_num_partitions = 2;
        crate::broker::test_broker(config)
    }

    #[test]
    fn client_id_is_peeked_from_headers_that_are_not_decoded() {
        let mut f = vec![0, 3, 0, 99, 0, 0, 0, 7, 0, 4];
        f.extend_from_slice(b"app1");
        assert_eq!(peek_client_id(&f).as_deref(), Some("app1"));
        assert_eq!(peek_client_id(&f[..12]), None, "cut short");
        assert_eq!(peek_client_id(&[0, 3, 0, 99, 0, 0, 0, 7, 0xff, 0xff]), None);
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

        /// Any frame with a served key and version, whatever its body, is answered or refused;
        /// the decoder and handlers never panic.
        #[test]
        fn arbitrary_request_bodies_never_panic(
            api in 0usize..handlers::SERVED_APIS.len(),
            version_pick in any::<u16>(),
            tail in proptest::collection::vec(any::<u8>(), 0..200),
            client_id_len in -1i16..8,
        ) {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("rt");
            let dir = tempfile::tempdir().expect("tempdir");
            rt.block_on(async {
                let b = broker(dir.path());
                let (key, min, max) = handlers::SERVED_APIS[api];
                let version = min + (version_pick % ((max - min + 1) as u16)) as i16;
                let mut frame = Vec::new();
                frame.extend_from_slice(&(key as i16).to_be_bytes());
                frame.extend_from_slice(&version.to_be_bytes());
                frame.extend_from_slice(&7i32.to_be_bytes());
                frame.extend_from_slice(&client_id_len.to_be_bytes());
                frame.extend_from_slice(&tail);
                let peer = std::net::SocketAddr::from(([127, 0, 0, 1], 1));
                if let Ok(reply) = dispatch(&b, peer, Bytes::from(frame)) {
                    match reply {
                        Reply::Pending(f) => {
                            let _ = tokio::time::timeout(std::time::Duration::from_millis(50), f).await;
                        }
                        Reply::PendingChunks(f) => {
                            let _ = tokio::time::timeout(std::time::Duration::from_millis(50), f).await;
                        }
                        Reply::Ready(_) | Reply::None => {}
                    }
                }
            });
        }
    }
}
