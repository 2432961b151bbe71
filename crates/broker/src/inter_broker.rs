//! How this broker reaches its peers (replication, transaction markers and verification, the
//! console's and the lag metrics' client), and the checks that tell an operator early why a
//! peer would turn it away.
//!
//! ```text
//!  inter-broker listener (config.rs: inter_broker_tls, inter_broker_sasl)
//!     PLAINTEXT ─► plain TCP, principal User:ANONYMOUS
//!     SSL       ─► TLS with the listener's truststore, its keystore as client certificate
//!     SASL_*    ─► (TLS as above) + SASL login: sasl.mechanism.inter.broker.protocol as the
//!                  JAAS config's username/password, principal User:<username>
//!
//!  watch (every committed image) ─► LoginCheck: is the SCRAM credential there, does it fit
//!                                   the password; may the principal CLUSTER_ACTION?
//!                                   ─► one log line per change, at WARN while it blocks
//! ```
//!
//! SCRAM between brokers needs the brokers' credential in the metadata log before a follower
//! can log in to its leader. Kafka bootstraps it with `kafka-storage format --add-scram`;
//! gregor with `gregor server --add-scram` on a new cluster's voters (scram_bootstrap.rs), or
//! later with `kafka-configs.sh` (or `gregor configs`) through a listener the operator can
//! log in to. Until it exists, the broker logs why at WARN, its replica fetchers retry every
//! `replica.fetch.backoff.ms`, and replication starts by itself once the credential is
//! committed.

use std::sync::Arc;

use gregor_client::{SaslLogin, SaslMechanism, Security};
use gregor_metadata::{
    AclOperation, MetadataImage, ResourceType, StandardAuthorizer, CLUSTER_NAME,
};
use tokio::sync::watch;
use tracing::{info, warn};

use crate::config::BrokerConfig;
use crate::scram::{ScramCredential, ScramMechanism};

/// What this broker dials its peers with, from the inter-broker listener's settings: `None`
/// for plain TCP. Over TLS, `tls` is that listener's reloadable TLS: a reload of its stores
/// changes the certificate this broker shows and the truststore it checks peers with for the
/// next connection it opens.
pub fn client_security(
    config: &BrokerConfig,
    tls: Option<&crate::tls::ReloadableTls>,
) -> anyhow::Result<Option<Arc<Security>>> {
    let tls = match tls {
        Some(tls) => Some(
            tls.client_config()
                .map_err(|e| anyhow::anyhow!("the inter-broker listener: {e}"))?,
        ),
        None => None,
    };
    let sasl = config.inter_broker_sasl()?.map(|(_, login)| login);
    Ok((tls.is_some() || sasl.is_some()).then(|| Arc::new(Security { tls, sasl })))
}

/// The principal a peer sees this broker as, when it can be told from the configuration:
/// `User:<username>` over SASL, `User:ANONYMOUS` over PLAINTEXT; `None` over SSL (the subject
/// of the keystore's certificate, which peers map).
pub fn principal(config: &BrokerConfig) -> Option<String> {
    match config
        .inter_broker_security
        .as_deref()
        .map(|s| (s.tls.is_some(), s.sasl.as_ref()))
    {
        None => Some("User:ANONYMOUS".to_string()),
        Some((_, Some(login))) => Some(format!("User:{}", login.username)),
        Some((_, None)) => None,
    }
}

/// The SCRAM mechanism of an inter-broker login, if it is SCRAM.
fn scram_mechanism(login: &SaslLogin) -> Option<ScramMechanism> {
    match login.mechanism {
        SaslMechanism::Plain | SaslMechanism::OAuthBearer => None,
        SaslMechanism::ScramSha256 => Some(ScramMechanism::Sha256),
        SaslMechanism::ScramSha512 => Some(ScramMechanism::Sha512),
    }
}

/// Where this broker's inter-broker SCRAM login stands against the metadata log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScramLogin {
    /// The credential is there and the configured password fits it.
    Ready,
    /// No credential for the user and mechanism: every login is refused.
    Missing,
    /// A credential made from another password: every login is refused.
    Mismatch,
}

/// Checks `login` (a SCRAM one) against `credential`, as a server would check a proof: the
/// password salted with the credential's salt and iterations must give its stored key.
pub fn scram_login(
    mechanism: ScramMechanism,
    login: &SaslLogin,
    credential: Option<&ScramCredential>,
) -> ScramLogin {
    let Some(credential) = credential else {
        return ScramLogin::Missing;
    };
    let rounds = u32::try_from(credential.iterations).unwrap_or(0).max(1);
    let password = login.password.as_bytes();
    let salted: Vec<u8> = match mechanism {
        ScramMechanism::Sha256 => {
            pbkdf2::pbkdf2_hmac_array::<sha2::Sha256, 32>(password, &credential.salt, rounds)
                .to_vec()
        }
        ScramMechanism::Sha512 => {
            pbkdf2::pbkdf2_hmac_array::<sha2::Sha512, 64>(password, &credential.salt, rounds)
                .to_vec()
        }
    };
    let keys = gregor_metadata::ScramKeys::derive(mechanism, &salted);
    if keys.stored_key == credential.stored_key {
        ScramLogin::Ready
    } else {
        ScramLogin::Mismatch
    }
}

/// What the checks found in one image; the watcher logs when it changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Findings {
    /// `None`: the login is not SCRAM.
    scram: Option<ScramLogin>,
    /// `None`: no authorizer, or the principal is not known from the configuration.
    cluster_action: Option<bool>,
}

fn findings(
    image: &MetadataImage,
    login: Option<&SaslLogin>,
    authorizer: Option<&StandardAuthorizer>,
    principal: Option<&str>,
) -> Findings {
    let scram = login.and_then(|login| {
        let mechanism = scram_mechanism(login)?;
        let credential = image
            .scram()
            .credential(&login.username, mechanism.type_id());
        Some(scram_login(mechanism, login, credential))
    });
    let cluster_action = authorizer.zip(principal).map(|(authorizer, principal)| {
        // Peers connect from anywhere; an ACL bound to a host is judged with a wildcard-free
        // host the authorizer matches only by `*`.
        authorizer
            .authorize(
                image.acls(),
                principal,
                "*",
                AclOperation::ClusterAction,
                ResourceType::Cluster,
                CLUSTER_NAME,
            )
            .allowed()
    });
    Findings {
        scram,
        cluster_action,
    }
}

/// Follows the committed images and logs, once per change, what keeps peers from accepting this
/// broker: a missing or mismatched SCRAM credential for its login, or (with an authorizer) a
/// principal without CLUSTER_ACTION on the cluster. Runs until the image channel closes.
pub async fn watch_login(
    config: Arc<BrokerConfig>,
    mut images: watch::Receiver<Arc<MetadataImage>>,
) {
    let login = config
        .inter_broker_security
        .as_ref()
        .and_then(|s| s.sasl.clone());
    let principal = principal(&config);
    let authorizer = config
        .authorizer
        .as_ref()
        .filter(|_| !config.cluster.is_single_node(config.node_id));
    if login.as_ref().and_then(scram_mechanism).is_none() && authorizer.is_none() {
        return;
    }
    let mut last = Findings {
        scram: Some(ScramLogin::Ready),
        cluster_action: Some(true),
    };
    loop {
        let now = {
            let image = images.borrow_and_update();
            findings(&image, login.as_ref(), authorizer, principal.as_deref())
        };
        if now.scram != last.scram {
            if let (Some(state), Some(login)) = (now.scram, login.as_ref()) {
                log_scram(state, login);
            }
        }
        if now.cluster_action != last.cluster_action {
            if let (Some(allowed), Some(principal)) = (now.cluster_action, principal.as_deref()) {
                if allowed {
                    info!(%principal, "the inter-broker principal may now CLUSTER_ACTION on the cluster");
                } else {
                    warn!(
                        %principal,
                        "the authorizer is on and brokers reach each other as {principal}, \
                         which is neither in super.users nor granted CLUSTER_ACTION on the \
                         cluster: peers refuse its replication fetches and transaction markers"
                    );
                }
            }
        }
        last = now;
        if images.changed().await.is_err() {
            return;
        }
    }
}

fn log_scram(state: ScramLogin, login: &SaslLogin) {
    let (user, mechanism) = (&login.username, login.mechanism.name());
    match state {
        ScramLogin::Ready => info!(
            user = %user,
            "the metadata log has the {mechanism} credential this broker logs in to its peers \
             with"
        ),
        ScramLogin::Missing => warn!(
            user = %user,
            "brokers log in to each other with {mechanism} as {user}, and the metadata log has no \
             {mechanism} credential for {user}: replication with this broker is refused and \
             retried until one is made, with kafka-configs.sh --bootstrap-server <a listener \
             you can log in to> --alter --entity-type users --entity-name {user} --add-config \
             '{mechanism}=[password=<its password>]' (a new cluster starts with it when its \
             voters are given gregor server --add-scram '{mechanism}=[name={user},password=...]')"
        ),
        ScramLogin::Mismatch => warn!(
            user = %user,
            "the {mechanism} credential for {user} in the metadata log was made from another \
             password than this broker's JAAS config gives: its peers refuse its logins until \
             the two agree"
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn login(mechanism: SaslMechanism, password: &str) -> SaslLogin {
        SaslLogin {
            mechanism,
            username: "broker".to_string(),
            password: password.to_string(),
        }
    }

    fn credential(mechanism: ScramMechanism, password: &str) -> ScramCredential {
        let salt = b"0123456789abcdef".to_vec();
        let iterations = 4096;
        let salted = match mechanism {
            ScramMechanism::Sha256 => {
                pbkdf2::pbkdf2_hmac_array::<sha2::Sha256, 32>(password.as_bytes(), &salt, 4096)
                    .to_vec()
            }
            ScramMechanism::Sha512 => {
                pbkdf2::pbkdf2_hmac_array::<sha2::Sha512, 64>(password.as_bytes(), &salt, 4096)
                    .to_vec()
            }
        };
        let keys = gregor_metadata::ScramKeys::derive(mechanism, &salted);
        ScramCredential {
            salt,
            stored_key: keys.stored_key,
            server_key: keys.server_key,
            iterations,
        }
    }

    #[test]
    fn a_scram_login_is_checked_against_the_credential_as_a_server_would() {
        for (m, s) in [
            (ScramMechanism::Sha256, SaslMechanism::ScramSha256),
            (ScramMechanism::Sha512, SaslMechanism::ScramSha512),
        ] {
            let c = credential(m, "secret");
            assert_eq!(
                scram_login(m, &login(s, "secret"), Some(&c)),
                ScramLogin::Ready
            );
            assert_eq!(
                scram_login(m, &login(s, "other"), Some(&c)),
                ScramLogin::Mismatch
            );
            assert_eq!(
                scram_login(m, &login(s, "secret"), None),
                ScramLogin::Missing
            );
        }
    }

    #[test]
    fn the_principal_follows_the_inter_broker_protocol() {
        let mut c = BrokerConfig::default();
        assert_eq!(principal(&c).as_deref(), Some("User:ANONYMOUS"));
        c.inter_broker_security = Some(Arc::new(Security {
            tls: None,
            sasl: Some(login(SaslMechanism::Plain, "p")),
        }));
        assert_eq!(principal(&c).as_deref(), Some("User:broker"));
    }

    #[test]
    fn findings_tell_a_missing_credential_and_a_missing_grant() {
        let image = MetadataImage::default();
        let scram = login(SaslMechanism::ScramSha256, "secret");
        let authorizer = StandardAuthorizer {
            super_users: vec![],
            allow_everyone_if_no_acl_found: false,
        };
        let f = findings(&image, Some(&scram), Some(&authorizer), Some("User:broker"));
        assert_eq!(f.scram, Some(ScramLogin::Missing));
        assert_eq!(f.cluster_action, Some(false));
        let superuser = StandardAuthorizer {
            super_users: vec!["User:broker".to_string()],
            allow_everyone_if_no_acl_found: false,
        };
        let plain = login(SaslMechanism::Plain, "p");
        let f = findings(&image, Some(&plain), Some(&superuser), Some("User:broker"));
        assert_eq!(f.scram, None);
        assert_eq!(f.cluster_action, Some(true));
    }
}
