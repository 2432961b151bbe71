//! SASL on the controller listener (SASL_PLAINTEXT, SASL_SSL): the broker's side of
//! `gregor_raft::QuorumSasl`.
//!
//! ```text
//! node dialling a peer ── SASL_HANDSHAKE / SASL_AUTHENTICATE frames ──► SessionServer
//!                                                                         └─ SaslSession
//!                                       (fed SaslHandshake v0 and bare tokens, as a Kafka
//!                                        client's v0 login, so PLAIN's user_<name> check and
//!                                        its refusals are the SASL listeners' own)
//! Kafka client (kafka-metadata-quorum, AdminClient with bootstrap.controllers)
//!   └─ controller_listener.rs: a SaslSession per connection, before any other request
//! ```
//!
//! Every node dials with `sasl.mechanism.controller.protocol` (PLAIN) as the `username` and
//! `password` of the listener's JAAS config (`BrokerConfig::controller_sasl`).

use std::sync::{Arc, Weak};
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use gregor_protocol::messages::{RequestHeader, SaslHandshakeRequest};
use gregor_protocol::protocol::{Decodable, Encodable, StrBytes};
use gregor_raft::{MetadataQuorum, QuorumSasl, QuorumSaslExchange, QuorumSaslServer, SaslStep};

use crate::config::BrokerConfig;
use crate::sasl::{Intercept, SaslSession, SaslSettings, ScramCredentials};
use crate::scram::{ScramCredential, ScramMechanism};

/// The SASL of the quorum's connections when the controller listener is SASL_*: this node's
/// login and the listener's check.
pub(crate) fn quorum_sasl(config: &BrokerConfig) -> anyhow::Result<Option<Arc<QuorumSasl>>> {
    let Some((settings, login)) = config.controller_sasl()? else {
        return Ok(None);
    };
    // The nodes log in with PLAIN: no SCRAM credential is looked up for them.
    let server = SessionServer {
        settings,
        scram: Arc::new(NoScram),
    };
    tracing::info!(
        mechanism = %config.controller_sasl_mechanism,
        user = %login.username,
        "the controller listener is SASL: quorum connections log in before their handshake"
    );
    Ok(Some(Arc::new(QuorumSasl::plain(
        login.username,
        login.password,
        Arc::new(server),
    ))))
}

/// Checks the peers' logins with a [`SaslSession`] per connection.
pub(crate) struct SessionServer {
    settings: Arc<SaslSettings>,
    scram: Arc<dyn ScramCredentials>,
}

impl SessionServer {
    #[cfg(test)]
    pub(crate) fn new(settings: Arc<SaslSettings>, scram: Arc<dyn ScramCredentials>) -> Self {
        SessionServer { settings, scram }
    }
}

impl QuorumSaslServer for SessionServer {
    fn start(&self, mechanism: &str) -> Result<Box<dyn QuorumSaslExchange>, String> {
        let mut session = SaslSession::new(Arc::clone(&self.settings), Arc::clone(&self.scram));
        let frame = handshake_v0(mechanism).map_err(|e| e.to_string())?;
        match session.intercept(&frame, Instant::now()) {
            Ok(Intercept::Reply(_)) => Ok(Box::new(SessionExchange(session))),
            Ok(Intercept::ReplyAndClose(_, reason) | Intercept::Close(reason)) => Err(reason),
            Ok(other) => Err(format!("unexpected SASL state: {other:?}")),
            Err(e) => Err(e.to_string()),
        }
    }
}

struct SessionExchange(SaslSession);

impl QuorumSaslExchange for SessionExchange {
    fn step(&mut self, token: &[u8]) -> SaslStep {
        match self
            .0
            .intercept(&Bytes::copy_from_slice(token), Instant::now())
        {
            Ok(Intercept::Authenticated(_, login)) => SaslStep::Done { user: login.user },
            // A bare token's answer, size-prefixed.
            Ok(Intercept::Reply(reply)) => {
                SaslStep::Challenge(reply.get(4..).unwrap_or_default().to_vec())
            }
            Ok(Intercept::ReplyAndClose(_, reason) | Intercept::Close(reason)) => {
                SaslStep::Refused(reason)
            }
            Ok(other) => SaslStep::Refused(format!("unexpected SASL state: {other:?}")),
            Err(e) => SaslStep::Refused(e.to_string()),
        }
    }
}

/// A SaslHandshake v0 request (without its size prefix): after it, tokens travel bare.
fn handshake_v0(mechanism: &str) -> anyhow::Result<Bytes> {
    let mut buf = BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(crate::handlers::sasl_handshake::KEY as i16)
        .with_request_api_version(0)
        .with_correlation_id(1)
        .encode(&mut buf, 1)?;
    SaslHandshakeRequest::default()
        .with_mechanism(StrBytes::from_string(mechanism.to_string()))
        .encode(&mut buf, 0)?;
    let frame = buf.freeze();
    // Checked here, as the session decodes it.
    let mut check = frame.clone();
    RequestHeader::decode(&mut check, 1)?;
    Ok(frame)
}

/// SCRAM credentials from the metadata image the quorum applied last, for Kafka clients that
/// log in with SCRAM on the controller listener (its nodes log in with PLAIN).
pub(crate) struct QuorumScram(pub(crate) Weak<MetadataQuorum>);

impl ScramCredentials for QuorumScram {
    fn credential(&self, user: &str, mechanism: ScramMechanism) -> Option<ScramCredential> {
        let quorum = self.0.upgrade()?;
        let image = quorum.image().borrow().clone();
        image.scram().credential(user, mechanism.type_id()).cloned()
    }
}

/// No SCRAM credential for anyone.
pub(crate) struct NoScram;

impl ScramCredentials for NoScram {
    fn credential(&self, _: &str, _: ScramMechanism) -> Option<ScramCredential> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> Arc<SaslSettings> {
        let props = [
            ("sasl.enabled.mechanisms", "PLAIN,SCRAM-SHA-512"),
            (
                "plain.sasl.jaas.config",
                "org.apache.kafka.common.security.plain.PlainLoginModule required \
                 username=\"controller\" password=\"s3cret\" user_controller=\"s3cret\";",
            ),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        Arc::new(SaslSettings::from_props(&props).expect("settings"))
    }

    fn started(s: &SessionServer, mechanism: &str) -> Box<dyn QuorumSaslExchange> {
        match s.start(mechanism) {
            Ok(x) => x,
            Err(e) => panic!("{mechanism} refused: {e}"),
        }
    }

    fn server() -> SessionServer {
        SessionServer::new(settings(), Arc::new(NoScram))
    }

    #[test]
    fn plain_logins_are_checked_against_the_user_entries() {
        let s = server();
        let mut x = started(&s, "PLAIN");
        assert_eq!(
            x.step(b"\0controller\0s3cret"),
            SaslStep::Done {
                user: "controller".into()
            }
        );
        let mut x = started(&s, "PLAIN");
        assert!(matches!(
            x.step(b"\0controller\0wrong"),
            SaslStep::Refused(r) if r.contains("Invalid username or password")
        ));
        let mut x = started(&s, "PLAIN");
        assert!(matches!(x.step(b"\0nobody\0s3cret"), SaslStep::Refused(_)));
        // Another identity than the user's: refused as Kafka's PlainSaslServer does.
        let mut x = started(&s, "PLAIN");
        assert!(matches!(
            x.step(b"admin\0controller\0s3cret"),
            SaslStep::Refused(_)
        ));
    }

    #[test]
    fn a_mechanism_the_listener_does_not_enable_is_refused() {
        let s = server();
        let e = s.start("SCRAM-SHA-256").err().expect("not enabled");
        assert!(e.contains("SCRAM-SHA-256"), "{e}");
        // SCRAM is enabled, but nobody has a credential: the first message is refused.
        let mut x = started(&s, "SCRAM-SHA-512");
        assert!(matches!(
            x.step(b"n,,n=controller,r=abcdefgh"),
            SaslStep::Refused(_)
        ));
    }
}
