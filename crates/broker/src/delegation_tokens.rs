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

use crate::broker::Broker;
use crate::request::RequestContext;
use crate::sasl::TokenCredential;
use crate::scram::{ScramCredential, ScramMechanism};

/// Kafka's `KafkaApis.allowTokenRequests`: token requests need an authenticated connection
/// that did not itself log in with a token. PLAINTEXT listeners, SSL without a client
/// certificate (`User:ANONYMOUS`) and token-authenticated sessions are refused with
/// DELEGATION_TOKEN_REQUEST_NOT_ALLOWED.
pub fn allow_token_requests(broker: &Broker, ctx: &RequestContext) -> bool {
    if ctx.principal.token_authenticated() {
        return false;
    }
    let protocol = broker
        .config
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
/// code and the new expiry (-1 on error). The change is waited for in this broker's image, so
/// the next request here (a describe, a login) sees it.
pub async fn forward_expiry(
    broker: &Broker,
    hmac: &[u8],
    request: gregor_controller::ControllerRequest,
) -> (gregor_protocol::error::ErrorCode, i64) {
    use gregor_controller::ControllerResponse;
    use gregor_protocol::error::ErrorCode;
    let token_id = broker
        .config
        .delegation_tokens
        .secret_key
        .as_deref()
        .and_then(|secret| {
            broker
                .replicas
                .image()
                .delegation_tokens()
                .find_by_hmac(secret, hmac)
                .map(|t| t.token_id.clone())
        });
    let answer = broker.controller.call(request).await;
    match answer {
        Ok(ControllerResponse::DelegationTokenExpiry(r)) if r.error_code == 0 => {
            if let Some(token_id) = token_id {
                let expiry = r.expiry_timestamp_ms;
                crate::handlers::admin_common::wait_for_image(broker, |image| {
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
        c.set("delegation.token.max.lifetime.ms", "1000").expect("set");
        c.set("delegation.token.expiry.time.ms", "500").expect("set");
        c.set("delegation.token.expiry.check.interval.ms", "50").expect("set");
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

    #[test]
    fn principals_name_their_user() {
        assert_eq!(user_name("User:alice"), "alice");
        assert_eq!(user_name("Group:x"), "Group:x");
    }
}
