//! DescribeUserScramCredentials (key 50): which SCRAM mechanisms each user has a credential
//! for, and with how many iterations (KIP-554; `kafka-configs --describe --entity-type users`),
//! from this node's applied metadata image (`ScramImage`), as Kafka's brokers answer it, and its
//! controllers on their controller listener (KIP-919; the quorum's image there).
//!
//! No users (null or empty) lists every user with a credential. A named user without any gets
//! RESOURCE_NOT_FOUND, a user named twice DUPLICATE_RESOURCE, each with Kafka's message and
//! without failing the others. Only the mechanism and iterations are shown: never the salt or
//! the keys.
//!
//! The principal needs DESCRIBE on the cluster (CLUSTER_AUTHORIZATION_FAILED otherwise).

use std::ops::RangeInclusive;

use gregor_metadata::{AclOperation, ScramImage};
use gregor_protocol::error::ErrorCode;
use gregor_protocol::messages::describe_user_scram_credentials_request::UserName;
use gregor_protocol::messages::describe_user_scram_credentials_response::{
    CredentialInfo, DescribeUserScramCredentialsResult,
};
use gregor_protocol::messages::{
    ApiKey, DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse,
};

use super::admin_common::CLUSTER_AUTHORIZATION_FAILED_MESSAGE;
use super::str_bytes;
use crate::admin_node::AdminNode;
use crate::authorizer;
use crate::request::RequestContext;

/// The API this module serves.
pub const KEY: ApiKey = ApiKey::DescribeUserScramCredentials;
/// The versions served (and advertised in ApiVersions).
pub const VERSIONS: RangeInclusive<i16> = 0..=0;

/// Kafka's messages (`ScramImage.describe`).
const DESCRIBE_DUPLICATE_USER: &str =
    "Cannot describe SCRAM credentials for the same user twice in a single request: ";
const DESCRIBE_USER_THAT_DOES_NOT_EXIST: &str =
    "Attempt to describe a user credential that does not exist: ";

fn result(scram: &ScramImage, user: &str, duplicate: bool) -> DescribeUserScramCredentialsResult {
    let answer = DescribeUserScramCredentialsResult::default().with_user(str_bytes(user));
    if duplicate {
        return answer
            .with_error_code(ErrorCode::DUPLICATE_RESOURCE.code())
            .with_error_message(Some(str_bytes(format!("{DESCRIBE_DUPLICATE_USER}{user}"))));
    }
    let infos = scram.credential_infos(user);
    if infos.is_empty() {
        return answer
            .with_error_code(ErrorCode::RESOURCE_NOT_FOUND.code())
            .with_error_message(Some(str_bytes(format!(
                "{DESCRIBE_USER_THAT_DOES_NOT_EXIST}{user}"
            ))));
    }
    answer.with_credential_infos(
        infos
            .into_iter()
            .map(|(mechanism, iterations)| {
                CredentialInfo::default()
                    .with_mechanism(mechanism)
                    .with_iterations(iterations)
            })
            .collect(),
    )
}

/// The answer for `users` (`None` or empty: every user), one result per distinct user in the
/// order asked (by name when listing all).
fn describe(
    scram: &ScramImage,
    users: Option<&[UserName]>,
) -> DescribeUserScramCredentialsResponse {
    let results = match users {
        None | Some([]) => scram
            .users()
            .map(|user| result(scram, user, false))
            .collect(),
        Some(users) => {
            let mut distinct: Vec<(&str, bool)> = Vec::with_capacity(users.len());
            for user in users {
                match distinct.iter_mut().find(|(u, _)| *u == user.name.as_str()) {
                    Some((_, duplicate)) => *duplicate = true,
                    None => distinct.push((user.name.as_str(), false)),
                }
            }
            distinct
                .into_iter()
                .map(|(user, duplicate)| result(scram, user, duplicate))
                .collect()
        }
    };
    DescribeUserScramCredentialsResponse::default().with_results(results)
}

/// The request refused with CLUSTER_AUTHORIZATION_FAILED (Kafka's
/// `DescribeUserScramCredentialsRequest.getErrorResponse`: the top-level error, and one result
/// per user asked for carrying it, without the user's name).
fn denied(req: &DescribeUserScramCredentialsRequest) -> DescribeUserScramCredentialsResponse {
    let code = ErrorCode::CLUSTER_AUTHORIZATION_FAILED.code();
    let message = || Some(str_bytes(CLUSTER_AUTHORIZATION_FAILED_MESSAGE));
    let results = req
        .users
        .iter()
        .flatten()
        .map(|_| {
            DescribeUserScramCredentialsResult::default()
                .with_error_code(code)
                .with_error_message(message())
        })
        .collect();
    DescribeUserScramCredentialsResponse::default()
        .with_error_code(code)
        .with_error_message(message())
        .with_results(results)
}

/// Handles a DescribeUserScramCredentials request. The principal needs DESCRIBE on the
/// cluster (Kafka's `handleDescribeUserScramCredentialsRequest`).
pub fn handle(
    node: &dyn AdminNode,
    ctx: &RequestContext,
    req: &DescribeUserScramCredentialsRequest,
) -> DescribeUserScramCredentialsResponse {
    if !authorizer::authorize_cluster(node, ctx, AclOperation::Describe) {
        return denied(req);
    }
    let image = node.image();
    describe(image.scram(), req.users.as_deref())
}

#[cfg(test)]
mod tests {
    use super::*;
    use gregor_metadata::controller::{alter_user_scram_credentials, ScramCredentialUpsertion};
    use gregor_metadata::{MetadataDelta, MetadataImage, MetadataProvenance};
    use std::sync::Arc;

    fn image() -> Arc<ScramImage> {
        let upsert = |name: &str, mechanism: i8, iterations: i32| ScramCredentialUpsertion {
            name: name.into(),
            mechanism,
            iterations,
            salt: b"salt".to_vec(),
            salted_password: b"salted password".to_vec(),
        };
        let empty = MetadataImage::empty();
        let mut delta = MetadataDelta::new(Arc::new(empty.clone()));
        for upsertions in [
            vec![upsert("alice", 1, 8192), upsert("bob", 2, 4096)],
            vec![upsert("alice", 2, 4096)],
        ] {
            let decided = alter_user_scram_credentials(&empty, &[], &upsertions);
            delta.replay_all(&decided.records).expect("replays");
        }
        Arc::clone(delta.apply(MetadataProvenance::EMPTY).scram())
    }

    fn name(n: &str) -> UserName {
        UserName::default().with_name(str_bytes(n))
    }

    /// (user, error code, error message, (mechanism, iterations)...). A found user keeps the
    /// message's default, "", as Kafka's `ScramImage.describe` leaves it.
    type Row = (String, i16, Option<String>, Vec<(i8, i32)>);

    fn rows(resp: &DescribeUserScramCredentialsResponse) -> Vec<Row> {
        assert_eq!(resp.error_code, 0);
        resp.results
            .iter()
            .map(|r| {
                (
                    r.user.to_string(),
                    r.error_code,
                    r.error_message.as_ref().map(|m| m.to_string()),
                    r.credential_infos
                        .iter()
                        .map(|c| (c.mechanism, c.iterations))
                        .collect(),
                )
            })
            .collect()
    }

    #[test]
    fn no_users_lists_every_user_with_mechanisms_and_iterations() {
        let scram = image();
        let want: Vec<Row> = vec![
            (
                "alice".into(),
                0,
                Some(String::new()),
                vec![(1, 8192), (2, 4096)],
            ),
            ("bob".into(), 0, Some(String::new()), vec![(2, 4096)]),
        ];
        assert_eq!(rows(&describe(&scram, None)), want);
        assert_eq!(rows(&describe(&scram, Some(&[]))), want);
        assert!(describe(&ScramImage::default(), None).results.is_empty());
    }

    #[test]
    fn named_users_missing_and_duplicates_have_kafkas_errors() {
        let scram = image();
        let asked = [name("bob"), name("nobody"), name("alice"), name("bob")];
        assert_eq!(
            rows(&describe(&scram, Some(&asked))),
            vec![
                (
                    "bob".into(),
                    ErrorCode::DUPLICATE_RESOURCE.code(),
                    Some(
                        "Cannot describe SCRAM credentials for the same user twice in a \
                         single request: bob"
                            .into()
                    ),
                    vec![]
                ),
                (
                    "nobody".into(),
                    ErrorCode::RESOURCE_NOT_FOUND.code(),
                    Some(
                        "Attempt to describe a user credential that does not exist: nobody".into()
                    ),
                    vec![]
                ),
                (
                    "alice".into(),
                    0,
                    Some(String::new()),
                    vec![(1, 8192), (2, 4096)]
                ),
            ]
        );
    }

    /// The answer carries mechanisms and iterations only: nothing of the salt or keys.
    #[test]
    fn secrets_are_never_described() {
        let scram = image();
        let credential = scram.credential("alice", 1).expect("alice");
        let resp = describe(&scram, None);
        let mut encoded = bytes::BytesMut::new();
        gregor_protocol::protocol::Encodable::encode(&resp, &mut encoded, 0).expect("encodes");
        for secret in [
            &credential.salt,
            &credential.stored_key,
            &credential.server_key,
        ] {
            assert!(
                !encoded.windows(secret.len()).any(|w| w == &secret[..]),
                "a secret in the answer"
            );
        }
    }

    /// With an authorizer: DESCRIBE on the cluster, else CLUSTER_AUTHORIZATION_FAILED for the
    /// request and for each user asked for, and nothing described.
    #[test]
    fn describing_credentials_needs_describe_on_the_cluster() {
        use crate::authorizer::test_support::{allow_cluster, ctx_of};
        let dir = tempfile::tempdir().expect("tempdir");
        let b = crate::handlers::admin_common::test_cluster::secured(dir.path());
        let req = DescribeUserScramCredentialsRequest::default()
            .with_users(Some(vec![name("alice"), name("bob")]));
        let alice = ctx_of("alice", KEY, 0);
        let denied = ErrorCode::CLUSTER_AUTHORIZATION_FAILED.code();
        let resp = handle(&b, &alice, &req);
        assert_eq!(resp.error_code, denied);
        assert_eq!(
            resp.results
                .iter()
                .map(|r| (r.error_code, r.credential_infos.len()))
                .collect::<Vec<_>>(),
            vec![(denied, 0), (denied, 0)]
        );
        allow_cluster(&b, "User:alice", AclOperation::Describe);
        let resp = handle(&b, &alice, &req);
        assert_eq!(resp.error_code, 0);
        assert_eq!(
            resp.results[0].error_code,
            ErrorCode::RESOURCE_NOT_FOUND.code()
        );
    }
}
