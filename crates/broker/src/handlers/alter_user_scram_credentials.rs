//! AlterUserScramCredentials (key 51): creates, replaces and deletes users' SCRAM credentials
//! (KIP-554; `kafka-configs --alter --entity-type users --entity-name alice --add-config
//! 'SCRAM-SHA-256=[iterations=8192,password=...]'` or `--delete-config SCRAM-SHA-256`).
//!
//! ```text
//!  Admin client: salt, salted_password = Hi(password, salt, iterations)
//!    ─► this handler ─► ControllerRequest::AlterUserScramCredentials ─► active controller:
//!       checks each user (gregor-metadata `alter_user_scram_credentials`), derives the stored
//!       and server keys, commits UserScramCredentialRecord / RemoveUserScramCredentialRecord
//!    ◄─ one result per user ◄─ waits until this node's image shows the accepted changes
//! ```
//!
//! As in Kafka's brokers, which forward the request to the controller, every check is the
//! controller's: UNSUPPORTED_SASL_MECHANISM, UNACCEPTABLE_CREDENTIAL (empty name, iterations
//! outside 4096..=16384), RESOURCE_NOT_FOUND (deleting a credential that does not exist),
//! DUPLICATE_RESOURCE (a user altered twice in one request, whatever the mechanisms). The
//! salted password is never logged, and only the derived keys reach the metadata log.
//!
//! The principal needs ALTER on the cluster; without it every user named is
//! CLUSTER_AUTHORIZATION_FAILED and nothing is sent to the controller.

use std::ops::RangeInclusive;
use std::sync::Arc;

use gregor_controller::protocol as proto;
use gregor_controller::{ControllerRequest, ControllerResponse};
use gregor_metadata::{AclOperation, MetadataImage};
use gregor_protocol::error::ErrorCode;
use gregor_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
use gregor_protocol::messages::{
    AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse, ApiKey,
};

use super::admin_common::{wait_for_image, CLUSTER_AUTHORIZATION_FAILED_MESSAGE};
use super::str_bytes;
use crate::admin_node::AdminNode;
use crate::authorizer;
use crate::request::{encode, Reply, RequestContext};

/// The API this module serves.
pub const KEY: ApiKey = ApiKey::AlterUserScramCredentials;
/// The versions served (and advertised in ApiVersions).
pub const VERSIONS: RangeInclusive<i16> = 0..=0;

/// The request as the controller takes it.
fn to_controller(
    req: &AlterUserScramCredentialsRequest,
) -> proto::AlterUserScramCredentialsRequest {
    proto::AlterUserScramCredentialsRequest {
        deletions: req
            .deletions
            .iter()
            .map(|d| proto::ScramCredentialDeletion {
                name: d.name.to_string(),
                mechanism: d.mechanism,
            })
            .collect(),
        upsertions: req
            .upsertions
            .iter()
            .map(|u| proto::ScramCredentialUpsertion {
                name: u.name.to_string(),
                mechanism: u.mechanism,
                iterations: u.iterations,
                salt: u.salt.to_vec(),
                salted_password: u.salted_password.to_vec(),
            })
            .collect(),
    }
}

/// Every user the request names, once, in the order they first appear (deletions, then
/// upsertions): the users a whole-request failure answers for.
fn users(req: &proto::AlterUserScramCredentialsRequest) -> Vec<String> {
    let mut users: Vec<String> = Vec::new();
    let named = req
        .deletions
        .iter()
        .map(|d| &d.name)
        .chain(req.upsertions.iter().map(|u| &u.name));
    for name in named {
        if !users.contains(name) {
            users.push(name.clone());
        }
    }
    users
}

/// Whether `image` shows every change the controller accepted: an accepted user has exactly
/// one alteration (a second one makes it DUPLICATE_RESOURCE). A new credential is recognised
/// by its salt, which the client draws afresh.
fn shows(
    image: &MetadataImage,
    req: &proto::AlterUserScramCredentialsRequest,
    accepted: &[String],
) -> bool {
    let scram = image.scram();
    let deleted = req
        .deletions
        .iter()
        .filter(|d| accepted.contains(&d.name))
        .all(|d| scram.credential(&d.name, d.mechanism).is_none());
    let upserted = req
        .upsertions
        .iter()
        .filter(|u| accepted.contains(&u.name))
        .all(|u| {
            scram
                .credential(&u.name, u.mechanism)
                .is_some_and(|c| c.salt == u.salt && c.iterations == u.iterations)
        });
    deleted && upserted
}

fn result(
    user: String,
    code: ErrorCode,
    message: Option<String>,
) -> AlterUserScramCredentialsResult {
    AlterUserScramCredentialsResult::default()
        .with_user(str_bytes(user))
        .with_error_code(code.code())
        .with_error_message(message.filter(|_| code != ErrorCode::NONE).map(str_bytes))
}

/// Handles an AlterUserScramCredentials request.
pub fn handle<N: AdminNode + 'static>(
    node: &Arc<N>,
    ctx: RequestContext,
    req: AlterUserScramCredentialsRequest,
) -> Reply {
    let node = Arc::clone(node);
    Reply::Pending(Box::pin(async move {
        let request = to_controller(&req);
        drop(req);
        let mut results = Vec::new();
        // Kafka's `ControllerApis.handleAlterUserScramCredentials`: ALTER on the cluster, else
        // every user named, once, in name order, is CLUSTER_AUTHORIZATION_FAILED.
        if !authorizer::authorize_cluster(&*node, &ctx, AclOperation::Alter) {
            let mut named = users(&request);
            named.sort();
            results = named
                .into_iter()
                .map(|user| {
                    result(
                        user,
                        ErrorCode::CLUSTER_AUTHORIZATION_FAILED,
                        Some(CLUSTER_AUTHORIZATION_FAILED_MESSAGE.to_string()),
                    )
                })
                .collect();
        } else if !request.deletions.is_empty() || !request.upsertions.is_empty() {
            let named = users(&request);
            let answer = node
                .controller()
                .call(ControllerRequest::AlterUserScramCredentials(
                    request.clone(),
                ))
                .await;
            results = match answer {
                Ok(ControllerResponse::AlterUserScramCredentials(resp)) => resp
                    .results
                    .into_iter()
                    .map(|r| result(r.name, ErrorCode(r.error_code), r.error_message))
                    .collect(),
                Ok(other) => {
                    let (code, message) = super::create_topics::controller_failure(&other);
                    named
                        .into_iter()
                        .map(|user| result(user, code, Some(message.clone())))
                        .collect()
                }
                Err(e) => named
                    .into_iter()
                    .map(|user| result(user, ErrorCode::REQUEST_TIMED_OUT, Some(e.to_string())))
                    .collect(),
            };
            let accepted: Vec<String> = results
                .iter()
                .filter(|r| r.error_code == ErrorCode::NONE.code())
                .map(|r| r.user.to_string())
                .collect();
            if !accepted.is_empty() {
                wait_for_image(&*node, |image| shows(image, &request, &accepted)).await;
            }
        }
        encode(
            &ctx,
            &AlterUserScramCredentialsResponse::default().with_results(results),
        )
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::Broker;
    use gregor_protocol::messages::alter_user_scram_credentials_request::{
        ScramCredentialDeletion, ScramCredentialUpsertion,
    };
    use gregor_protocol::messages::{DescribeUserScramCredentialsRequest, ResponseHeader};
    use gregor_protocol::protocol::{Decodable, HeaderVersion};

    fn broker(dir: &std::path::Path) -> Arc<Broker> {
        crate::broker::test_broker(crate::config::BrokerConfig {
            data_dir: dir.to_path_buf(),
            ..Default::default()
        })
    }

    fn upsert(name: &str, mechanism: i8, iterations: i32) -> ScramCredentialUpsertion {
        ScramCredentialUpsertion::default()
            .with_name(str_bytes(name))
            .with_mechanism(mechanism)
            .with_iterations(iterations)
            .with_salt(bytes::Bytes::from(format!("salt-{name}-{mechanism}")))
            .with_salted_password(bytes::Bytes::from_static(&[42; 32]))
    }

    fn delete(name: &str, mechanism: i8) -> ScramCredentialDeletion {
        ScramCredentialDeletion::default()
            .with_name(str_bytes(name))
            .with_mechanism(mechanism)
    }

    async fn alter(
        b: &Arc<Broker>,
        deletions: Vec<ScramCredentialDeletion>,
        upsertions: Vec<ScramCredentialUpsertion>,
    ) -> Vec<(String, i16, Option<String>)> {
        alter_as(b, RequestContext::for_test(KEY, 0), deletions, upsertions).await
    }

    async fn alter_as(
        b: &Arc<Broker>,
        ctx: RequestContext,
        deletions: Vec<ScramCredentialDeletion>,
        upsertions: Vec<ScramCredentialUpsertion>,
    ) -> Vec<(String, i16, Option<String>)> {
        let req = AlterUserScramCredentialsRequest::default()
            .with_deletions(deletions)
            .with_upsertions(upsertions);
        let mut bytes = crate::request::reply_body(handle(b, ctx, req)).await;
        ResponseHeader::decode(
            &mut bytes,
            AlterUserScramCredentialsResponse::header_version(0),
        )
        .expect("header");
        let resp = AlterUserScramCredentialsResponse::decode(&mut bytes, 0).expect("decode");
        assert!(bytes.is_empty(), "bytes left over");
        resp.results
            .into_iter()
            .map(|r| {
                (
                    r.user.to_string(),
                    r.error_code,
                    r.error_message.map(|m| m.to_string()),
                )
            })
            .collect()
    }

    fn ok(user: &str) -> (String, i16, Option<String>) {
        (user.to_string(), 0, None)
    }

    #[tokio::test]
    async fn credentials_are_created_described_and_deleted() {
        let dir = tempfile::tempdir().expect("tempdir");
        let b = broker(dir.path());
        assert_eq!(alter(&b, vec![], vec![]).await, vec![]);
        assert_eq!(
            alter(
                &b,
                vec![],
                vec![upsert("alice", 1, 8192), upsert("bob", 2, 4096)]
            )
            .await,
            vec![ok("alice"), ok("bob")]
        );
        let image = b.replicas.image();
        let alice = image.scram().credential("alice", 1).expect("applied here");
        assert_eq!(alice.salt, b"salt-alice-1".to_vec());
        assert_eq!(
            alice.stored_key,
            gregor_metadata::ScramKeys::derive(gregor_metadata::ScramMechanism::Sha256, &[42; 32])
                .stored_key
        );
        let described = super::super::describe_user_scram_credentials::handle(
            &b,
            &RequestContext::for_test(super::super::describe_user_scram_credentials::KEY, 0),
            &DescribeUserScramCredentialsRequest::default(),
        );
        let users: Vec<(String, Vec<(i8, i32)>)> = described
            .results
            .iter()
            .map(|r| {
                (
                    r.user.to_string(),
                    r.credential_infos
                        .iter()
                        .map(|c| (c.mechanism, c.iterations))
                        .collect(),
                )
            })
            .collect();
        assert_eq!(
            users,
            vec![
                ("alice".to_string(), vec![(1, 8192)]),
                ("bob".to_string(), vec![(2, 4096)])
            ]
        );
        assert_eq!(
            alter(&b, vec![delete("bob", 2)], vec![]).await,
            vec![ok("bob")]
        );
        assert_eq!(
            b.replicas.image().scram().users().collect::<Vec<_>>(),
            vec!["alice"]
        );
    }

    #[tokio::test]
    async fn refusals_carry_kafkas_codes_and_messages() {
        let dir = tempfile::tempdir().expect("tempdir");
        let b = broker(dir.path());
        let results = alter(
            &b,
            vec![delete("ghost", 1), delete("", 1)],
            vec![
                upsert("few", 1, 4095),
                upsert("many", 1, 16385),
                upsert("odd", 3, 4096),
                upsert("alice", 1, 4096),
                upsert("alice", 2, 4096),
            ],
        )
        .await;
        let refused = |user: &str, code: ErrorCode, message: &str| {
            (user.to_string(), code.code(), Some(message.to_string()))
        };
        assert_eq!(
            results,
            vec![
                refused(
                    "ghost",
                    ErrorCode::RESOURCE_NOT_FOUND,
                    "Attempt to delete a user credential that does not exist"
                ),
                refused(
                    "",
                    ErrorCode::UNACCEPTABLE_CREDENTIAL,
                    "Username must not be empty"
                ),
                refused(
                    "few",
                    ErrorCode::UNACCEPTABLE_CREDENTIAL,
                    "Too few iterations"
                ),
                refused(
                    "many",
                    ErrorCode::UNACCEPTABLE_CREDENTIAL,
                    "Too many iterations"
                ),
                refused("odd", ErrorCode(33), "Unknown SCRAM mechanism"),
                refused(
                    "alice",
                    ErrorCode::DUPLICATE_RESOURCE,
                    "A user credential cannot be altered twice in the same request"
                ),
            ]
        );
        assert!(b.replicas.image().scram().is_empty());
    }

    /// The wire request decodes with the Admin client's fields (a round trip through
    /// kafka-protocol's v0 codec), and its Debug form in the controller request hides the
    /// salted password.
    #[test]
    fn the_controller_request_hides_the_salted_password() {
        let req = AlterUserScramCredentialsRequest::default()
            .with_upsertions(vec![upsert("alice", 1, 4096)]);
        let mut buf = bytes::BytesMut::new();
        gregor_protocol::protocol::Encodable::encode(&req, &mut buf, 0).expect("encodes");
        let decoded =
            AlterUserScramCredentialsRequest::decode(&mut buf.freeze(), 0).expect("decodes");
        let sent = to_controller(&decoded);
        assert_eq!(sent.upsertions[0].salted_password, vec![42; 32]);
        let shown = format!("{:?}", ControllerRequest::AlterUserScramCredentials(sent));
        assert!(shown.contains("alice") && !shown.contains("42"), "{shown}");
    }

    /// With an authorizer: ALTER on the cluster, else every user named, once and in name
    /// order, is CLUSTER_AUTHORIZATION_FAILED and nothing changes.
    #[tokio::test]
    async fn altering_credentials_needs_alter_on_the_cluster() {
        use crate::authorizer::test_support::{allow_cluster, ctx_of};
        let dir = tempfile::tempdir().expect("tempdir");
        let b = crate::handlers::admin_common::test_cluster::secured(dir.path());
        let alice = || ctx_of("alice", KEY, 0);
        let refused = |user: &str| {
            (
                user.to_string(),
                ErrorCode::CLUSTER_AUTHORIZATION_FAILED.code(),
                Some(CLUSTER_AUTHORIZATION_FAILED_MESSAGE.to_string()),
            )
        };
        assert_eq!(
            alter_as(
                &b,
                alice(),
                vec![delete("zed", 1)],
                vec![upsert("bob", 1, 4096), upsert("zed", 2, 4096)]
            )
            .await,
            vec![refused("bob"), refused("zed")]
        );
        assert!(b.replicas.image().scram().is_empty());
        allow_cluster(&b, "User:alice", AclOperation::Alter);
        assert_eq!(
            alter_as(&b, alice(), vec![], vec![upsert("bob", 1, 4096)]).await,
            vec![ok("bob")]
        );
        assert!(b.replicas.image().scram().credential("bob", 1).is_some());
    }
}
