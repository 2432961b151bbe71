//! Delegation tokens (KIP-48) as the metadata log keeps them (KIP-900): the records, the
//! image, and the active controller's decisions (Kafka's `DelegationTokenControlManager`).
//!
//! ```text
//!  CreateDelegationToken ─► create_delegation_token ─► DelegationTokenRecord (new token id)
//!  RenewDelegationToken  ─► renew_delegation_token  ─► DelegationTokenRecord (new expiry)
//!  ExpireDelegationToken ─► expire_delegation_token ─► DelegationTokenRecord (new expiry), or
//!                                                      RemoveDelegationTokenRecord (period < 0)
//!  expiry check interval ─► expired_delegation_tokens ► RemoveDelegationTokenRecord…
//!  every node: DelegationTokenImage  token id ─► DelegationTokenRecord; snapshots write it back
//! ```
//!
//! A token's password is its HMAC: HmacSHA512 of the token id (UTF-8) keyed with the UTF-8
//! bytes of `delegation.token.secret.key`, which every node has, so any broker recomputes it
//! and the log never holds it. Renew and expire name a token by that HMAC, as Kafka's requests
//! do. Principals are kept as Kafka's `KafkaPrincipal.toString()` (`User:alice`). Time is
//! the caller's (milliseconds since the epoch): nothing here reads a clock.

use std::collections::BTreeMap;

use hmac::{Hmac, Mac};
use sha2::Sha512;

use crate::error::code;
use crate::records::MetadataRecord;

/// A token was created, renewed or had its expiry moved (Kafka's `DelegationTokenRecord`,
/// type 10): the token's whole information, replacing what the image held for its id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DelegationTokenRecord {
    /// The owner's principal, `User:<name>`.
    pub owner: String,
    /// Who asked for the token (the owner unless it was created for another user).
    pub requester: String,
    /// Principals that may renew it besides the owner.
    pub renewers: Vec<String>,
    pub issue_timestamp_ms: i64,
    /// Renewals cannot move the expiry past this.
    pub max_timestamp_ms: i64,
    /// The token stops working after this unless renewed.
    pub expiration_timestamp_ms: i64,
    pub token_id: String,
}

impl DelegationTokenRecord {
    /// Kafka's `TokenInformation.ownerOrRenewer`: the owner, the requester or a renewer.
    pub fn owner_or_renewer(&self, principal: &str) -> bool {
        self.owner == principal
            || self.requester == principal
            || self.renewers.iter().any(|r| r == principal)
    }

    /// Kafka's `allowedToRenew`: the owner or a renewer.
    fn may_renew(&self, principal: &str) -> bool {
        self.owner == principal || self.renewers.iter().any(|r| r == principal)
    }

    /// Whether the token is past its expiry or its max timestamp at `now_ms`.
    pub fn is_expired(&self, now_ms: i64) -> bool {
        self.max_timestamp_ms < now_ms || self.expiration_timestamp_ms < now_ms
    }
}

/// A token was removed: expired on request or by the controller's expiry check (Kafka's
/// `RemoveDelegationTokenRecord`, type 26).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoveDelegationTokenRecord {
    pub token_id: String,
}

/// The delegation tokens of the cluster (Kafka's `DelegationTokenImage`), by token id.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DelegationTokenImage {
    pub(crate) tokens: BTreeMap<String, DelegationTokenRecord>,
}

impl DelegationTokenImage {
    pub fn is_empty(&self) -> bool {
        self.tokens.is_empty()
    }

    pub fn get(&self, token_id: &str) -> Option<&DelegationTokenRecord> {
        self.tokens.get(token_id)
    }

    /// Every token, by id.
    pub fn tokens(&self) -> impl Iterator<Item = &DelegationTokenRecord> {
        self.tokens.values()
    }

    /// The token whose HMAC under `secret` is `hmac` (renew and expire name tokens so). One
    /// HMAC per token; the comparison does not stop at the first differing byte.
    pub fn find_by_hmac(&self, secret: &str, hmac: &[u8]) -> Option<&DelegationTokenRecord> {
        self.tokens
            .values()
            .find(|t| constant_time_eq(&token_hmac(secret, &t.token_id), hmac))
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A token id as Kafka's controller makes one (`Uuid.randomUuid().toString()`): the UUID's 16
/// bytes in URL-safe base64 without padding, 22 characters. `None` for an id Kafka would draw
/// again (one starting with `-`, which a command line would take for an option).
pub fn token_id_of(id: uuid::Uuid) -> Option<String> {
    use base64::Engine;
    let text = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(id.as_bytes());
    (!text.starts_with('-')).then_some(text)
}

/// A token's HMAC, as Kafka computes it: HmacSHA512 keyed with the secret key's UTF-8 bytes,
/// over the token id's UTF-8 bytes. Its base64 is the token's SCRAM password.
pub fn token_hmac(secret: &str, token_id: &str) -> Vec<u8> {
    let mut mac = <Hmac<Sha512> as Mac>::new_from_slice(secret.as_bytes())
        .expect("HMAC takes keys of any length");
    mac.update(token_id.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

/// The controller's token settings (Kafka's `delegation.token.*` keys).
#[derive(Clone, PartialEq, Eq)]
pub struct DelegationTokenConfig {
    /// `delegation.token.secret.key`; `None`: tokens are disabled.
    pub secret_key: Option<String>,
    /// `delegation.token.max.lifetime.ms` (7 days).
    pub max_lifetime_ms: i64,
    /// `delegation.token.expiry.time.ms` (1 day): how long a creation or renewal lasts.
    pub expiry_time_ms: i64,
    /// `delegation.token.expiry.check.interval.ms` (1 hour).
    pub expiry_check_interval_ms: i64,
}

impl std::fmt::Debug for DelegationTokenConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DelegationTokenConfig")
            .field("secret_key", &self.secret_key.as_ref().map(|_| "[hidden]"))
            .field("max_lifetime_ms", &self.max_lifetime_ms)
            .field("expiry_time_ms", &self.expiry_time_ms)
            .field("expiry_check_interval_ms", &self.expiry_check_interval_ms)
            .finish()
    }
}

impl Default for DelegationTokenConfig {
    fn default() -> Self {
        DelegationTokenConfig {
            secret_key: None,
            max_lifetime_ms: 7 * 24 * 3_600_000,
            expiry_time_ms: 24 * 3_600_000,
            expiry_check_interval_ms: 3_600_000,
        }
    }
}

/// Why a token request was refused: one of Kafka's error codes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("Delegation Token authentication is disabled")]
    AuthDisabled,
    #[error("Delegation Token is not found on server")]
    NotFound,
    #[error("Specified Principal is not valid Owner/Renewer")]
    OwnerMismatch,
    #[error("Delegation Token is expired")]
    Expired,
    #[error("Principal type must be User")]
    InvalidPrincipalType,
}

impl TokenError {
    /// Kafka's error code.
    pub fn code(&self) -> i16 {
        match self {
            TokenError::AuthDisabled => code::DELEGATION_TOKEN_AUTH_DISABLED,
            TokenError::NotFound => code::DELEGATION_TOKEN_NOT_FOUND,
            TokenError::OwnerMismatch => code::DELEGATION_TOKEN_OWNER_MISMATCH,
            TokenError::Expired => code::DELEGATION_TOKEN_EXPIRED,
            TokenError::InvalidPrincipalType => code::INVALID_PRINCIPAL_TYPE,
        }
    }
}

/// A CreateDelegationToken as the controller takes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreateToken {
    /// `User:<name>`: the requester, or the user the token is made for.
    pub owner: String,
    pub requester: String,
    /// `<type>:<name>` of each renewer; only `User` is accepted.
    pub renewers: Vec<String>,
    /// `max_lifetime_ms` of the request: > 0 lowers the configured maximum.
    pub max_lifetime_ms: i64,
}

/// A created token: its record (to propose) and its HMAC (for the response).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedToken {
    pub token: DelegationTokenRecord,
    pub hmac: Vec<u8>,
}

impl CreatedToken {
    pub fn record(&self) -> MetadataRecord {
        MetadataRecord::DelegationToken(self.token.clone())
    }
}

fn secret(config: &DelegationTokenConfig) -> Result<&str, TokenError> {
    config.secret_key.as_deref().ok_or(TokenError::AuthDisabled)
}

/// Kafka's `createDelegationToken`: the lifetime is the configured maximum, lowered by the
/// request's when it is positive; the token expires after `delegation.token.expiry.time.ms`
/// unless renewed, and never after its max timestamp. `token_id` is the caller's fresh id.
pub fn create_delegation_token(
    config: &DelegationTokenConfig,
    now_ms: i64,
    token_id: String,
    request: &CreateToken,
) -> Result<CreatedToken, TokenError> {
    let secret = secret(config)?;
    if request.renewers.iter().any(|r| !r.starts_with("User:")) {
        return Err(TokenError::InvalidPrincipalType);
    }
    let mut max_lifetime = config.max_lifetime_ms;
    if request.max_lifetime_ms > 0 {
        max_lifetime = max_lifetime.min(request.max_lifetime_ms);
    }
    let max_timestamp_ms = now_ms.saturating_add(max_lifetime);
    let expiration_timestamp_ms =
        max_timestamp_ms.min(now_ms.saturating_add(config.expiry_time_ms));
    let hmac = token_hmac(secret, &token_id);
    Ok(CreatedToken {
        token: DelegationTokenRecord {
            owner: request.owner.clone(),
            requester: request.requester.clone(),
            renewers: request.renewers.clone(),
            issue_timestamp_ms: now_ms,
            max_timestamp_ms,
            expiration_timestamp_ms,
            token_id,
        },
        hmac,
    })
}

/// The token `hmac` names, still valid at `now_ms`, that `principal` may renew or expire.
fn renewable<'a>(
    image: &'a DelegationTokenImage,
    config: &DelegationTokenConfig,
    now_ms: i64,
    hmac: &[u8],
    principal: &str,
) -> Result<&'a DelegationTokenRecord, TokenError> {
    let secret = secret(config)?;
    let token = image
        .find_by_hmac(secret, hmac)
        .ok_or(TokenError::NotFound)?;
    if token.is_expired(now_ms) {
        return Err(TokenError::Expired);
    }
    if !token.may_renew(principal) {
        return Err(TokenError::OwnerMismatch);
    }
    Ok(token)
}

/// Kafka's `renewDelegationToken`: by the owner or a renewer, before expiry; the new expiry is
/// `now` plus the configured expiry time (lowered by a positive `renew_period_ms`), at most the
/// token's max timestamp. Returns the record and the new expiry.
pub fn renew_delegation_token(
    image: &DelegationTokenImage,
    config: &DelegationTokenConfig,
    now_ms: i64,
    hmac: &[u8],
    principal: &str,
    renew_period_ms: i64,
) -> Result<(MetadataRecord, i64), TokenError> {
    let token = renewable(image, config, now_ms, hmac, principal)?;
    let mut renew_lifetime = config.expiry_time_ms;
    if renew_period_ms > 0 {
        renew_lifetime = renew_lifetime.min(renew_period_ms);
    }
    let expiry = token
        .max_timestamp_ms
        .min(now_ms.saturating_add(renew_lifetime));
    let mut renewed = token.clone();
    renewed.expiration_timestamp_ms = expiry;
    Ok((MetadataRecord::DelegationToken(renewed), expiry))
}

/// Kafka's `expireDelegationToken`: by the owner or a renewer, before expiry; a negative
/// period removes the token at once (the answer's expiry is that period), otherwise its expiry
/// becomes `now + period` (at most its max timestamp). Returns the record and the expiry.
pub fn expire_delegation_token(
    image: &DelegationTokenImage,
    config: &DelegationTokenConfig,
    now_ms: i64,
    hmac: &[u8],
    principal: &str,
    expiry_time_period_ms: i64,
) -> Result<(MetadataRecord, i64), TokenError> {
    let token = renewable(image, config, now_ms, hmac, principal)?;
    if expiry_time_period_ms < 0 {
        return Ok((
            MetadataRecord::RemoveDelegationToken(RemoveDelegationTokenRecord {
                token_id: token.token_id.clone(),
            }),
            expiry_time_period_ms,
        ));
    }
    let expiry = token
        .max_timestamp_ms
        .min(now_ms.saturating_add(expiry_time_period_ms));
    let mut expired = token.clone();
    expired.expiration_timestamp_ms = expiry;
    Ok((MetadataRecord::DelegationToken(expired), expiry))
}

/// Kafka's `sweepExpiredDelegationTokens`: a removal for every token expired at `now_ms`.
pub fn expired_delegation_tokens(image: &DelegationTokenImage, now_ms: i64) -> Vec<MetadataRecord> {
    image
        .tokens
        .values()
        .filter(|t| t.is_expired(now_ms))
        .map(|t| {
            MetadataRecord::RemoveDelegationToken(RemoveDelegationTokenRecord {
                token_id: t.token_id.clone(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::delta::MetadataDelta;
    use crate::image::{MetadataImage, MetadataProvenance};
    use std::sync::Arc;

    const HOUR: i64 = 3_600_000;

    fn config() -> DelegationTokenConfig {
        DelegationTokenConfig {
            secret_key: Some("secret".into()),
            ..Default::default()
        }
    }

    fn create(owner: &str, renewers: &[&str], max_lifetime_ms: i64) -> CreateToken {
        CreateToken {
            owner: owner.into(),
            requester: owner.into(),
            renewers: renewers.iter().map(|r| r.to_string()).collect(),
            max_lifetime_ms,
        }
    }

    fn apply(image: &MetadataImage, records: &[MetadataRecord]) -> MetadataImage {
        let mut delta = MetadataDelta::new(Arc::new(image.clone()));
        delta.replay_all(records).expect("replays");
        delta.apply(MetadataProvenance {
            offset: image.provenance().offset + records.len() as i64,
            epoch: 1,
        })
    }

    /// The value Kafka computes: `Mac.getInstance("HmacSHA512")` keyed with the UTF-8 bytes of
    /// "secret" over those of "token-1" (as `DelegationTokenControlManager.createHmac`), run
    /// in Java: base64 `bYOmZTpQOVSngHgEmxnEyPr4uaAuGJfcNFNIS2fkeeEq4yPpKNolAD3Gnn2WXDg9iS/X
    /// oVaJ7TyVZIhoaT/aRA==`, here in hex.
    #[test]
    fn the_hmac_is_hmac_sha512_of_the_token_id_under_the_secret() {
        let hmac = token_hmac("secret", "token-1");
        let hex = |b: &[u8]| b.iter().map(|b| format!("{b:02x}")).collect::<String>();
        assert_eq!(
            hex(&hmac),
            "6d83a6653a503954a78078049b19c4c8faf8b9a02e1897dc3453484b67e479e12ae323e928da25003dc\
             69e7d965c383d892fd7a15689ed3c95648868693fda44"
        );
        // RFC 4231 test case 2 pins the construction: key "Jefe".
        let rfc = token_hmac("Jefe", "what do ya want for nothing?");
        assert_eq!(
            hex(&rfc),
            "164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea2505549758bf75c05a994a6d\
             034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737"
        );
        assert_ne!(hmac, token_hmac("other", "token-1"));
        assert_ne!(hmac, token_hmac("secret", "token-2"));
    }

    /// Token ids look like Kafka's: 22 characters of URL-safe base64, never a leading `-`.
    #[test]
    fn token_ids_are_kafka_uuid_strings() {
        let id = uuid::Uuid::from_u128(0x1234_5678_9abc_def0_1234_5678_9abc_def0);
        assert_eq!(token_id_of(id).as_deref(), Some("EjRWeJq83vASNFZ4mrze8A"));
        assert_eq!(
            token_id_of(uuid::Uuid::from_u128(0xf8 << 120)),
            None,
            "'-' first"
        );
    }

    #[test]
    fn creation_follows_the_lifetimes_and_needs_the_secret() {
        let now = 1_000_000;
        let t =
            create_delegation_token(&config(), now, "t1".into(), &create("User:alice", &[], -1))
                .expect("created");
        assert_eq!(t.token.issue_timestamp_ms, now);
        assert_eq!(t.token.max_timestamp_ms, now + 7 * 24 * HOUR);
        assert_eq!(t.token.expiration_timestamp_ms, now + 24 * HOUR);
        assert_eq!(t.hmac, token_hmac("secret", "t1"));
        // A shorter lifetime asked for caps the expiry too.
        let short =
            create_delegation_token(&config(), now, "t2".into(), &create("User:a", &[], HOUR))
                .expect("created");
        assert_eq!(
            (
                short.token.max_timestamp_ms,
                short.token.expiration_timestamp_ms
            ),
            (now + HOUR, now + HOUR)
        );
        // A longer one than the maximum is the maximum.
        let long = create_delegation_token(
            &config(),
            now,
            "t3".into(),
            &create("User:a", &[], 30 * 24 * HOUR),
        )
        .expect("created");
        assert_eq!(long.token.max_timestamp_ms, now + 7 * 24 * HOUR);
        let disabled = DelegationTokenConfig::default();
        assert_eq!(
            create_delegation_token(&disabled, now, "t".into(), &create("User:a", &[], -1)),
            Err(TokenError::AuthDisabled)
        );
        assert_eq!(
            create_delegation_token(
                &config(),
                now,
                "t".into(),
                &create("User:a", &["Group:g"], -1)
            ),
            Err(TokenError::InvalidPrincipalType)
        );
        assert_eq!(TokenError::AuthDisabled.code(), 61);
        assert_eq!(TokenError::InvalidPrincipalType.code(), 67);
    }

    #[test]
    fn renew_and_expire_by_owner_or_renewer_only_and_before_expiry() {
        let now = 1_000_000;
        let cfg = config();
        let t = create_delegation_token(
            &cfg,
            now,
            "t1".into(),
            &create("User:alice", &["User:bob"], -1),
        )
        .expect("created");
        let image = apply(&MetadataImage::empty(), &[t.record()]);
        let tokens = image.delegation_tokens();
        assert_eq!(tokens.get("t1"), Some(&t.token));

        // Renewal: the renewer may, a stranger may not, an unknown HMAC is not found.
        let later = now + HOUR;
        let (record, expiry) =
            renew_delegation_token(tokens, &cfg, later, &t.hmac, "User:bob", -1).expect("renewed");
        assert_eq!(expiry, later + 24 * HOUR);
        assert_eq!(
            renew_delegation_token(tokens, &cfg, later, &t.hmac, "User:bob", HOUR).map(|r| r.1),
            Ok(later + HOUR)
        );
        assert_eq!(
            renew_delegation_token(tokens, &cfg, later, &t.hmac, "User:carol", -1),
            Err(TokenError::OwnerMismatch)
        );
        assert_eq!(
            renew_delegation_token(tokens, &cfg, later, b"nope", "User:alice", -1),
            Err(TokenError::NotFound)
        );
        let renewed = apply(&image, &[record]);
        assert_eq!(
            renewed
                .delegation_tokens()
                .get("t1")
                .map(|t| t.expiration_timestamp_ms),
            Some(later + 24 * HOUR)
        );

        // Past its expiry the token can be neither renewed nor expired.
        let after = now + 25 * HOUR;
        assert_eq!(
            renew_delegation_token(tokens, &cfg, after, &t.hmac, "User:alice", -1),
            Err(TokenError::Expired)
        );
        assert_eq!(
            expire_delegation_token(tokens, &cfg, after, &t.hmac, "User:alice", -1),
            Err(TokenError::Expired)
        );

        // Expiry with a period moves the expiry; a negative one removes the token.
        let (moved, expiry) =
            expire_delegation_token(tokens, &cfg, later, &t.hmac, "User:alice", 1_000).expect("ok");
        assert_eq!(expiry, later + 1_000);
        assert!(
            matches!(moved, MetadataRecord::DelegationToken(ref r) if r.expiration_timestamp_ms == later + 1_000)
        );
        let (removal, expiry) =
            expire_delegation_token(tokens, &cfg, later, &t.hmac, "User:bob", -1).expect("ok");
        assert_eq!(expiry, -1);
        let gone = apply(&image, &[removal]);
        assert!(gone.delegation_tokens().is_empty());
        assert_eq!(
            expire_delegation_token(tokens, &cfg, later, &t.hmac, "User:carol", -1),
            Err(TokenError::OwnerMismatch)
        );
        assert_eq!(
            expire_delegation_token(
                tokens,
                &DelegationTokenConfig::default(),
                later,
                &t.hmac,
                "User:alice",
                -1
            ),
            Err(TokenError::AuthDisabled)
        );
    }

    #[test]
    fn the_expiry_check_removes_expired_tokens_and_snapshots_keep_the_rest() {
        let now = 0;
        let cfg = config();
        let a = create_delegation_token(&cfg, now, "a".into(), &create("User:alice", &[], HOUR))
            .expect("a");
        let b =
            create_delegation_token(&cfg, now, "b".into(), &create("User:bob", &["User:x"], -1))
                .expect("b");
        let image = apply(&MetadataImage::empty(), &[a.record(), b.record()]);
        assert!(expired_delegation_tokens(image.delegation_tokens(), HOUR).is_empty());
        let removals = expired_delegation_tokens(image.delegation_tokens(), HOUR + 1);
        assert_eq!(
            removals,
            vec![MetadataRecord::RemoveDelegationToken(
                RemoveDelegationTokenRecord {
                    token_id: "a".into()
                }
            )]
        );
        let after = apply(&image, &removals);
        assert_eq!(
            after
                .delegation_tokens()
                .tokens()
                .map(|t| t.token_id.as_str())
                .collect::<Vec<_>>(),
            vec!["b"]
        );
        // Written back as records, the tokens replay to the same image part.
        let rebuilt = apply(&MetadataImage::empty(), &after.to_records());
        assert_eq!(rebuilt.delegation_tokens(), after.delegation_tokens());
        let snapshot = crate::snapshot::encode_snapshot(&after);
        let loaded = crate::snapshot::decode_snapshot(&snapshot).expect("loads");
        assert_eq!(loaded.delegation_tokens(), after.delegation_tokens());
    }

    #[test]
    fn records_round_trip_and_bad_ones_do_not_replay() {
        let cfg = config();
        let t = create_delegation_token(
            &cfg,
            5,
            "id".into(),
            &create("User:alice", &["User:bob", "User:c"], -1),
        )
        .expect("t");
        for record in [
            t.record(),
            MetadataRecord::RemoveDelegationToken(RemoveDelegationTokenRecord {
                token_id: "id".into(),
            }),
        ] {
            assert_eq!(MetadataRecord::decode(&record.encode()), Ok(record));
        }
        let mut delta = MetadataDelta::new(Arc::new(MetadataImage::empty()));
        let mut empty_id = t.token.clone();
        empty_id.token_id.clear();
        assert!(delta
            .replay(&MetadataRecord::DelegationToken(empty_id))
            .is_err());
        assert!(delta
            .replay(&MetadataRecord::RemoveDelegationToken(
                RemoveDelegationTokenRecord {
                    token_id: "unknown".into()
                }
            ))
            .is_err());
        assert_eq!(delta.record_count(), 0);
    }
}
