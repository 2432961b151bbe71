//! Delegation tokens on the broker (KIP-48; kept in the metadata log as KIP-900 does): who may
//! ask for them, how a token logs in, and what DescribeDelegationToken shows.
//!
//! ```text
//!  CreateDelegationToken / Renew / Expire ─► handlers ─► allow_token_requests?
//!      ─► (create: CREATE_TOKENS on User:<owner> when the owner is another user)
//!      ─► ControllerRequest ─► active controller (gregor-metadata `delegation_token`)
//!      ─► DelegationTokenRecord / RemoveDelegationTokenRecord ─► every node's image
//!  DescribeDelegationToken ─► this node's image, filtered by owners and DESCRIBE ACLs
//!  SaslAuthenticate SCRAM, tokenauth=true, user = token id, password = base64(HMAC)
//!      ─► token_credential: the token in the image, not expired ─► a SCRAM credential
//!         derived from its HMAC ─► principal = the owner, token-authenticated, the session
//!         ending at the token's expiry at the latest
//! ```
//!
//! Every node holds `delegation.token.secret.key`, so the HMAC (the token's password) is
//! recomputed here and never stored in the log.

use std::sync::Arc;

use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use gregor_metadata::{DelegationTokenConfig, DelegationTokenRecord, MetadataImage};

use crate::admin_node::AdminNode;
use crate::request::RequestContext;
use crate::sasl::TokenCredential;
use crate::scram::{ScramCredential, ScramMechanism};

/// Kafka's `KafkaApis.allowTokenRequests`: token requests need an authenticated connection
/// that did not itself log in with a token. PLAINTEXT listeners, SSL without a client
/// certificate (`User:ANONYMOUS`) and token-authenticated sessions are refused with
/// DELEGATION_TOKEN_REQUEST_NOT_ALLOWED. The protocol is that of the listener the request came
/// on: a client listener's, or the controller listener's (KIP-919; Kafka's
/// `ControllerApis.allowTokenRequests` applies the same rules to a request that was not
/// forwarded).
pub fn allow_token_requests(node: &dyn AdminNode, ctx: &RequestContext) -> bool {
    if ctx.principal.token_authenticated() {
        return false;
    }
    let protocol = node
        .config()
        .protocol_of(ctx.listener.as_str())
        .unwrap_or_else(|| "PLAINTEXT".to_string());
    match protocol.as_str() {
        "PLAINTEXT" => false,
        "SSL" => ctx.principal.name() != crate::quota::ANONYMOUS,
        _ => true,
    }
}

/// Milliseconds since the epoch (tokens' timestamps are wall-clock times).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// The user name of a `User:<name>` principal (other principal types as they are).
pub fn user_name(principal: &str) -> &str {
    principal.strip_prefix("User:").unwrap_or(principal)
}

/// The HMAC of `token` under this node's secret key (DescribeDelegationToken shows it to
/// those allowed to see the token; it is the token's password).
pub fn hmac_of(config: &DelegationTokenConfig, token: &DelegationTokenRecord) -> Vec<u8> {
    config
        .secret_key
        .as_deref()
        .map(|secret| gregor_metadata::token_hmac(secret, &token.token_id))
        .unwrap_or_default()
}

/// Sends a renewal or an expiry of the token `hmac` names to the active controller: its error
/// code and the new expiry (-1 on error). The change is waited for in this node's image, so
/// the next request here (a describe, a login) sees it.
pub async fn forward_expiry(
    node: &dyn AdminNode,
    hmac: &[u8],
    request: gregor_controller::ControllerRequest,
) -> (gregor_protocol::error::ErrorCode, i64) {
    use gregor_controller::ControllerResponse;
    use gregor_protocol::error::ErrorCode;
    let token_id = node
        .config()
        .delegation_tokens
        .secret_key
        .as_deref()
        .and_then(|secret| {
            node.image()
                .delegation_tokens()
                .find_by_hmac(secret, hmac)
                .map(|t| t.token_id.clone())
        });
    let answer = node.controller().call(request).await;
    match answer {
        Ok(ControllerResponse::DelegationTokenExpiry(r)) if r.error_code == 0 => {
            if let Some(token_id) = token_id {
                let expiry = r.expiry_timestamp_ms;
                crate::handlers::admin_common::wait_for_image(node, |image| {
                    let token = image.delegation_tokens().get(&token_id);
                    match token {
                        None => true,
                        Some(t) => expiry >= 0 && t.expiration_timestamp_ms == expiry,
                    }
                })
                .await;
            }
            (ErrorCode::NONE, r.expiry_timestamp_ms)
        }
        Ok(ControllerResponse::DelegationTokenExpiry(r)) => (ErrorCode(r.error_code), -1),
        Ok(ControllerResponse::Error(e)) => (ErrorCode(e.error_code), -1),
        Ok(_) => (ErrorCode::UNKNOWN_SERVER_ERROR, -1),
        Err(_) => (ErrorCode::REQUEST_TIMED_OUT, -1),
    }
}

/// Kafka's `ScramFormatter.generateCredential` default iterations for token credentials.
const TOKEN_SCRAM_ITERATIONS: u32 = 4096;

/// The SCRAM credential of delegation token `token_id` for `mechanism` at `now_ms`: the token
/// must be in `image` and unexpired, and tokens enabled here. Its password is the base64 of the
/// token's HMAC, salted afresh for each login (Kafka's `DelegationTokenCache` salts once per
/// token; the client cannot tell).
pub fn token_credential(
    image: &MetadataImage,
    config: &DelegationTokenConfig,
    token_id: &str,
    mechanism: ScramMechanism,
    now_ms: i64,
) -> Option<TokenCredential> {
    let secret = config.secret_key.as_deref()?;
    let token = image.delegation_tokens().get(token_id)?;
    if token.is_expired(now_ms) {
        // Kafka keeps authenticating a token until the controller's expiry check removes it;
        // gregor refuses it as soon as it expired.
        return None;
    }
    let password = B64.encode(gregor_metadata::token_hmac(secret, token_id));
    let salt: [u8; 16] = rand::random();
    let salted = crate::scram_bootstrap::salted_password(
        mechanism,
        &password,
        &salt,
        TOKEN_SCRAM_ITERATIONS,
    );
    let keys = gregor_metadata::ScramKeys::derive(mechanism, &salted);
    let remaining = token.expiration_timestamp_ms.saturating_sub(now_ms).max(0);
    Some(TokenCredential {
        credential: ScramCredential {
            salt: salt.to_vec(),
            stored_key: keys.stored_key,
            server_key: keys.server_key,
            iterations: TOKEN_SCRAM_ITERATIONS as i32,
        },
        owner: user_name(&token.owner).to_string(),
        remaining_ms: u64::try_from(remaining).unwrap_or(0),
    })
}

/// [`token_credential`] against the image a broker applied last, for its SASL sessions.
pub struct ImageTokens {
    pub replicas: Arc<crate::replica_manager::ReplicaManager>,
    pub config: DelegationTokenConfig,
}

impl ImageTokens {
    pub fn credential(&self, token_id: &str, mechanism: ScramMechanism) -> Option<TokenCredential> {
        token_credential(
            &self.replicas.image(),
            &self.config,
            token_id,
            mechanism,
            now_ms(),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::broker::Broker;
    use crate::request::RequestContext;
    use gregor_metadata::{MetadataDelta, MetadataProvenance, MetadataRecord};

    fn image_with(token: DelegationTokenRecord) -> MetadataImage {
        let mut delta = MetadataDelta::new(Arc::new(MetadataImage::empty()));
        delta
            .replay(&MetadataRecord::DelegationToken(token))
            .expect("replays");
        delta.apply(MetadataProvenance {
            offset: 1,
            epoch: 1,
        })
    }

    fn token(expiry: i64) -> DelegationTokenRecord {
        DelegationTokenRecord {
            owner: "User:alice".into(),
            requester: "User:admin".into(),
            renewers: vec![],
            issue_timestamp_ms: 0,
            max_timestamp_ms: expiry,
            expiration_timestamp_ms: expiry,
            token_id: "tok".into(),
        }
    }

    /// A SCRAM login with `tokenauth=true`, the token id and the base64 HMAC authenticates
    /// the owner; a wrong password, an expired token or disabled tokens do not.
    #[test]
    fn a_token_logs_in_as_its_owner_with_its_hmac_until_it_expires() {
        let config = DelegationTokenConfig {
            secret_key: Some("secret".into()),
            ..Default::default()
        };
        let image = image_with(token(10_000));
        let m = ScramMechanism::Sha256;
        let password = B64.encode(gregor_metadata::token_hmac("secret", "tok"));
        let cred = token_credential(&image, &config, "tok", m, 4_000).expect("a credential");
        assert_eq!((cred.owner.as_str(), cred.remaining_ms), ("alice", 6_000));
        // The exchange, as a client does it with the password.
        let salted =
            crate::scram_bootstrap::salted_password(m, &password, &cred.credential.salt, 4096);
        let keys = gregor_metadata::ScramKeys::derive(m, &salted);
        assert_eq!(keys.stored_key, cred.credential.stored_key);
        let wrong = crate::scram_bootstrap::salted_password(m, "nope", &cred.credential.salt, 4096);
        assert_ne!(
            gregor_metadata::ScramKeys::derive(m, &wrong).stored_key,
            cred.credential.stored_key
        );

        assert!(
            token_credential(&image, &config, "tok", m, 10_001).is_none(),
            "expired"
        );
        assert!(
            token_credential(&image, &config, "other", m, 0).is_none(),
            "unknown"
        );
        assert!(
            token_credential(&image, &DelegationTokenConfig::default(), "tok", m, 0).is_none(),
            "tokens disabled"
        );
    }

    /// Kafka's keys: the secret key (its old name only when the new one is not given) and the
    /// three durations, which must be positive.
    #[test]
    fn the_delegation_token_keys_configure_tokens() {
        let mut c = crate::config::BrokerConfig::default();
        assert_eq!(c.delegation_tokens, DelegationTokenConfig::default());
        assert!(c.delegation_tokens.secret_key.is_none(), "off by default");
        c.set("delegation.token.master.key", "old").expect("set");
        assert_eq!(c.delegation_tokens.secret_key.as_deref(), Some("old"));
        c.set("delegation.token.secret.key", "new").expect("set");
        c.set("delegation.token.master.key", "older").expect("set");
        assert_eq!(c.delegation_tokens.secret_key.as_deref(), Some("new"));
        c.set("delegation.token.max.lifetime.ms", "1000")
            .expect("set");
        c.set("delegation.token.expiry.time.ms", "500")
            .expect("set");
        c.set("delegation.token.expiry.check.interval.ms", "50")
            .expect("set");
        assert_eq!(
            (
                c.delegation_tokens.max_lifetime_ms,
                c.delegation_tokens.expiry_time_ms,
                c.delegation_tokens.expiry_check_interval_ms
            ),
            (1000, 500, 50)
        );
        assert!(c.set("delegation.token.expiry.time.ms", "0").is_err());
        assert!(c.set("delegation.token.max.lifetime.ms", "x").is_err());
        // The secret never shows in Debug output.
        assert!(!format!("{:?}", c.delegation_tokens).contains("new"));
    }

    /// A test broker with tokens on (secret "secret") and, when `acls`, the StandardAuthorizer
    /// without ACLs (nothing is allowed but what owners may do).
    fn broker(dir: &std::path::Path, secret: bool, acls: bool) -> Arc<Broker> {
        let mut config = crate::config::BrokerConfig {
            data_dir: dir.to_path_buf(),
            ..Default::default()
        };
        if secret {
            config
                .set("delegation.token.secret.key", "secret")
                .expect("set");
        }
        if acls {
            config
                .set(
                    "authorizer.class.name",
                    "org.apache.kafka.metadata.authorizer.StandardAuthorizer",
                )
                .expect("set");
        }
        crate::broker::test_broker(config)
    }

    /// A request from `user` on `listener` (`None`: ANONYMOUS), optionally token-authenticated.
    fn ctx(
        api: gregor_protocol::messages::ApiKey,
        version: i16,
        listener: &str,
        user: Option<&str>,
        token: bool,
    ) -> RequestContext {
        let mut ctx = RequestContext::for_test(api, version);
        ctx.listener = crate::request::ListenerName::new(listener);
        if let Some(user) = user {
            ctx.principal = if token {
                crate::request::Principal::token_owner(user)
            } else {
                crate::request::Principal::user(user)
            };
        }
        ctx
    }

    /// Kafka's `allowTokenRequests`: PLAINTEXT, anonymous SSL and token logins may not manage
    /// tokens; SASL and SSL with a certificate may.
    #[test]
    fn only_authenticated_non_token_connections_may_manage_tokens() {
        use gregor_protocol::messages::ApiKey::CreateDelegationToken as K;
        let dir = tempfile::tempdir().expect("dir");
        let b = broker(dir.path(), true, false);
        assert!(!allow_token_requests(
            &b,
            &ctx(K, 3, "PLAINTEXT", None, false)
        ));
        assert!(!allow_token_requests(&b, &ctx(K, 3, "SSL", None, false)));
        assert!(allow_token_requests(
            &b,
            &ctx(K, 3, "SSL", Some("CN=alice"), false)
        ));
        assert!(allow_token_requests(
            &b,
            &ctx(K, 3, "SASL_PLAINTEXT", Some("alice"), false)
        ));
        assert!(allow_token_requests(
            &b,
            &ctx(K, 3, "SASL_SSL", Some("alice"), false)
        ));
        assert!(!allow_token_requests(
            &b,
            &ctx(K, 3, "SASL_SSL", Some("alice"), true)
        ));
    }

    /// CreateDelegationToken's refusals on the broker, before the controller: NOT_ALLOWED (64),
    /// AUTHORIZATION_FAILED (65) for another owner without CREATE_TOKENS, INVALID_PRINCIPAL_TYPE
    /// (67) for a renewer that is not a user; each with the principals and -1 timestamps.
    #[tokio::test]
    async fn create_refuses_as_kafka_s_broker_does() {
        use gregor_protocol::messages::create_delegation_token_request::CreatableRenewers;
        use gregor_protocol::messages::{
            ApiKey, CreateDelegationTokenRequest, CreateDelegationTokenResponse,
        };
        let dir = tempfile::tempdir().expect("dir");
        let b = broker(dir.path(), true, true);
        let s = |v: &str| gregor_protocol::protocol::StrBytes::from_string(v.to_string());
        let create = |owner: Option<&str>, renewer: Option<&str>| {
            let mut req = CreateDelegationTokenRequest::default().with_max_lifetime_ms(-1);
            if let Some(owner) = owner {
                req = req
                    .with_owner_principal_type(Some(s("User")))
                    .with_owner_principal_name(Some(s(owner)));
            }
            if let Some(r) = renewer {
                let (kind, name) = r.split_once(':').expect("type:name");
                req = req.with_renewers(vec![CreatableRenewers::default()
                    .with_principal_type(s(kind))
                    .with_principal_name(s(name))]);
            }
            req
        };
        let answer = |c: RequestContext, req| async {
            let reply = crate::handlers::create_delegation_token::handle(&b, c, req);
            crate::request::decode_reply::<CreateDelegationTokenResponse>(reply, 3).await
        };
        let plaintext = ctx(ApiKey::CreateDelegationToken, 3, "PLAINTEXT", None, false);
        let r = answer(plaintext, create(None, None)).await;
        assert_eq!(r.error_code, 64);
        assert_eq!(
            (&*r.principal_name, r.expiry_timestamp_ms),
            ("ANONYMOUS", -1)
        );
        let alice = || {
            ctx(
                ApiKey::CreateDelegationToken,
                3,
                "SASL_PLAINTEXT",
                Some("alice"),
                false,
            )
        };
        let r = answer(alice(), create(Some("bob"), None)).await;
        assert_eq!(r.error_code, 65);
        assert_eq!(
            (&*r.principal_name, &*r.token_requester_principal_name),
            ("bob", "alice")
        );
        let r = answer(alice(), create(None, Some("Group:g"))).await;
        assert_eq!(r.error_code, 67);
        let token = ctx(
            ApiKey::CreateDelegationToken,
            3,
            "SASL_PLAINTEXT",
            Some("alice"),
            true,
        );
        assert_eq!(answer(token, create(None, None)).await.error_code, 64);
    }

    /// DescribeDelegationToken from the image: NOT_ALLOWED, AUTH_DISABLED without the secret,
    /// none for an empty owner list, and with the authorizer only the tokens the requester
    /// owns, asked for or may renew, each with its HMAC.
    #[tokio::test]
    async fn describe_filters_by_owners_and_acls() {
        use gregor_protocol::messages::describe_delegation_token_request::DescribeDelegationTokenOwner;
        use gregor_protocol::messages::{ApiKey, DescribeDelegationTokenRequest};
        let dir = tempfile::tempdir().expect("dir");
        let b = broker(dir.path(), true, true);
        let mut alices = token(i64::MAX);
        alices.token_id = "a".into();
        alices.renewers = vec!["User:bob".into()];
        let mut carols = token(i64::MAX);
        carols.token_id = "c".into();
        carols.owner = "User:carol".into();
        carols.requester = "User:carol".into();
        b.replicas.apply_records(&[
            MetadataRecord::DelegationToken(alices),
            MetadataRecord::DelegationToken(carols),
        ]);
        let s = |v: &str| gregor_protocol::protocol::StrBytes::from_string(v.to_string());
        let all = DescribeDelegationTokenRequest::default().with_owners(None);
        let ids = |user: &str, req: &DescribeDelegationTokenRequest| {
            let c = ctx(
                ApiKey::DescribeDelegationToken,
                3,
                "SASL_SSL",
                Some(user),
                false,
            );
            let r = crate::handlers::describe_delegation_token::handle(&b, &c, req);
            assert_eq!(r.error_code, 0);
            r.tokens
                .iter()
                .map(|t| {
                    assert_eq!(
                        t.hmac.to_vec(),
                        gregor_metadata::token_hmac("secret", &t.token_id)
                    );
                    t.token_id.to_string()
                })
                .collect::<Vec<_>>()
        };
        assert_eq!(ids("alice", &all), vec!["a"]);
        assert_eq!(ids("bob", &all), vec!["a"], "a renewer");
        assert_eq!(ids("carol", &all), vec!["c"]);
        assert!(ids("dave", &all).is_empty());
        let owners = |o: &str| {
            DescribeDelegationTokenRequest::default().with_owners(Some(vec![
                DescribeDelegationTokenOwner::default()
                    .with_principal_type(s("User"))
                    .with_principal_name(s(o)),
            ]))
        };
        assert_eq!(ids("bob", &owners("alice")), vec!["a"]);
        assert!(ids("bob", &owners("carol")).is_empty());
        let none = DescribeDelegationTokenRequest::default().with_owners(Some(vec![]));
        assert!(ids("alice", &none).is_empty());
        let plaintext = ctx(ApiKey::DescribeDelegationToken, 3, "PLAINTEXT", None, false);
        let r = crate::handlers::describe_delegation_token::handle(&b, &plaintext, &all);
        assert_eq!(r.error_code, 64);
        let dir2 = tempfile::tempdir().expect("dir");
        let off = broker(dir2.path(), false, false);
        let c = ctx(
            ApiKey::DescribeDelegationToken,
            3,
            "SASL_SSL",
            Some("alice"),
            false,
        );
        let r = crate::handlers::describe_delegation_token::handle(&off, &c, &all);
        assert_eq!(r.error_code, 61);
    }

    #[test]
    fn principals_name_their_user() {
        assert_eq!(user_name("User:alice"), "alice");
        assert_eq!(user_name("Group:x"), "Group:x");
    }
}
