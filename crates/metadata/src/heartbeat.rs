//! Broker sessions on the active controller: who heartbeated when, whose session expired, and
//! when a fenced broker may be unfenced.
//!
//! Kafka's `BrokerHeartbeatManager`, I/O-free: time comes in as `now_ms` (a manual clock in
//! tests), and the answers are decisions the controller runtime turns into records with
//! [`fence_broker`](crate::controller::fence_broker) and
//! [`unfence_broker`](crate::controller::unfence_broker):
//!
//! ```text
//! BrokerHeartbeat(id, epoch, offset, want_fence, want_shut_down)
//!                                           ─► heartbeat() ─► Unfence | Fence | ShutDownNow | None
//! timer at next_deadline()                                ─► expired()   ─► brokers to fence
//! ```
//!
//! A broker is caught up, and may be unfenced, once the metadata offset it has applied reaches
//! its broker epoch. That assumes what Kafka does: the runtime gives each registration the
//! offset of its RegisterBrokerRecord as the epoch, so a broker that has applied its own
//! registration has the metadata any leader needs.
//!
//! Sessions live only in the active controller's memory. A new active controller starts
//! everyone's session at its own start ([`BrokerHeartbeatManager::new`]), so a controller
//! failover never fences a broker that kept heartbeating.

use std::collections::BTreeMap;

use crate::error::ControllerError;
use crate::image::MetadataImage;
use crate::records::BrokerId;

/// What the controller should do after a heartbeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeartbeatAction {
    /// Nothing changes.
    None,
    /// The broker caught up: propose [`unfence_broker`](crate::controller::unfence_broker).
    Unfence,
    /// The broker asked to be fenced, or to shut down (controlled shutdown): propose
    /// [`fence_broker`](crate::controller::fence_broker), which moves its leaderships away and
    /// takes it out of the ISRs while it is still up.
    Fence,
    /// The broker asked to shut down and is fenced: its leaderships have moved, tell it to stop
    /// (`shouldShutDown` in Kafka's response).
    ShutDownNow,
}

/// A BrokerHeartbeat request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BrokerHeartbeat {
    pub broker: BrokerId,
    pub broker_epoch: i64,
    /// The offset of the last metadata record the broker has applied.
    pub current_metadata_offset: i64,
    /// The broker is not ready to serve (still starting).
    pub want_fence: bool,
    /// The broker is stopping (SIGTERM) and wants its leaderships moved first.
    pub want_shut_down: bool,
}

/// The last contact of every broker, and the session timeout.
#[derive(Debug, Clone)]
pub struct BrokerHeartbeatManager {
    /// `broker.session.timeout.ms`.
    session_timeout_ms: u64,
    /// When the session of a broker not heard from since this manager started expires: the
    /// start plus the session timeout, or plus a shorter activation grace.
    unheard_deadline_ms: u64,
    /// Last heartbeat (or registration) per broker, with the broker epoch it came with.
    last_contact: BTreeMap<BrokerId, (i64, u64)>,
}

impl BrokerHeartbeatManager {
    pub fn new(session_timeout_ms: u64, now_ms: u64) -> BrokerHeartbeatManager {
        BrokerHeartbeatManager {
            session_timeout_ms,
            unheard_deadline_ms: now_ms.saturating_add(session_timeout_ms),
            last_contact: BTreeMap::new(),
        }
    }

    /// Brokers not heard from since `now_ms` (this manager's start) expire after `grace_ms`
    /// (at most the session timeout) instead of a whole session: a newly active controller
    /// uses it so that a broker that died with the old controller is fenced sooner.
    pub fn with_activation_grace(mut self, now_ms: u64, grace_ms: u64) -> BrokerHeartbeatManager {
        self.unheard_deadline_ms = now_ms.saturating_add(grace_ms.min(self.session_timeout_ms));
        self
    }

    pub fn session_timeout_ms(&self) -> u64 {
        self.session_timeout_ms
    }

    /// A registration was accepted: its session starts now.
    pub fn registered(&mut self, broker: BrokerId, broker_epoch: i64, now_ms: u64) {
        self.last_contact.insert(broker, (broker_epoch, now_ms));
    }

    /// A broker left the cluster (UnregisterBroker).
    pub fn remove(&mut self, broker: BrokerId) {
        self.last_contact.remove(&broker);
    }

    /// A BrokerHeartbeat request. Unknown brokers and stale epochs (an old incarnation still
    /// running) are refused and do not extend any session.
    pub fn heartbeat(
        &mut self,
        image: &MetadataImage,
        request: &BrokerHeartbeat,
        now_ms: u64,
    ) -> Result<HeartbeatAction, ControllerError> {
        let BrokerHeartbeat {
            broker,
            broker_epoch,
            current_metadata_offset,
            want_fence,
            want_shut_down,
        } = *request;
        let registration = image
            .cluster()
            .broker(broker)
            .ok_or(ControllerError::BrokerNotRegistered(broker))?;
        if registration.epoch != broker_epoch {
            return Err(ControllerError::StaleBrokerEpoch {
                broker_id: broker,
                broker_epoch,
                current_epoch: registration.epoch,
            });
        }
        self.last_contact.insert(broker, (broker_epoch, now_ms));
        Ok(match (registration.fenced, want_fence || want_shut_down) {
            (false, true) => HeartbeatAction::Fence,
            // Fenced, so it leads nothing and is in no ISR but as a last remembered member.
            (true, true) if want_shut_down => HeartbeatAction::ShutDownNow,
            (true, false) if current_metadata_offset >= registration.epoch => {
                HeartbeatAction::Unfence
            }
            _ => HeartbeatAction::None,
        })
    }

    /// When `broker`'s current session expires.
    fn deadline_ms(&self, broker: BrokerId, epoch: i64) -> u64 {
        match self.last_contact.get(&broker) {
            // A contact under another epoch was an older incarnation's.
            Some(&(e, at)) if e == epoch => at.saturating_add(self.session_timeout_ms),
            _ => self.unheard_deadline_ms,
        }
    }

    /// Whether `broker`'s current registration has a session that has not expired at `now_ms`:
    /// a second process registering with its id while this holds is Kafka's
    /// DUPLICATE_BROKER_REGISTRATION. A registration this manager has heard from (registered
    /// or heartbeating, fenced or not) holds until its session expires. One it has not heard
    /// from counts from the manager's start if it is unfenced, and not at all if it is fenced,
    /// as in Kafka (a fenced broker has no session): a new active controller would otherwise
    /// give a dead, fenced incarnation a fresh session at every failover, and keep refusing
    /// its restarted process for as long as the failovers went on.
    pub fn has_valid_session(&self, image: &MetadataImage, broker: BrokerId, now_ms: u64) -> bool {
        image.cluster().broker(broker).is_some_and(|b| {
            let heard = matches!(self.last_contact.get(&b.id), Some(&(e, _)) if e == b.epoch);
            (heard || !b.fenced) && self.deadline_ms(b.id, b.epoch) > now_ms
        })
    }

    /// The unfenced brokers whose session has expired at `now_ms`, ascending: fence them.
    pub fn expired(&self, image: &MetadataImage, now_ms: u64) -> Vec<BrokerId> {
        image
            .cluster()
            .brokers()
            .filter(|b| !b.fenced)
            .filter(|b| self.deadline_ms(b.id, b.epoch) <= now_ms)
            .map(|b| b.id)
            .collect()
    }

    /// The earliest time a session of an unfenced broker can expire, if any: when to call
    /// [`expired`](Self::expired) next.
    pub fn next_deadline(&self, image: &MetadataImage) -> Option<u64> {
        image
            .cluster()
            .brokers()
            .filter(|b| !b.fenced)
            .map(|b| self.deadline_ms(b.id, b.epoch))
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::{
        fence_broker, register_broker, unfence_broker, ControllerDefaults, RegisterBroker,
    };
    use crate::error::code;
    use crate::{MetadataDelta, MetadataProvenance, MetadataRecord};

    fn beat(broker: BrokerId, epoch: i64, offset: i64) -> BrokerHeartbeat {
        BrokerHeartbeat {
            broker,
            broker_epoch: epoch,
            current_metadata_offset: offset,
            want_fence: false,
            want_shut_down: false,
        }
    }
    use std::sync::Arc;

    fn apply(image: &MetadataImage, records: &[MetadataRecord]) -> MetadataImage {
        let mut delta = MetadataDelta::new(Arc::new(image.clone()));
        delta.replay_all(records).expect("replays");
        delta.apply(MetadataProvenance::EMPTY)
    }

    fn register(image: &MetadataImage, id: BrokerId, epoch: i64) -> MetadataImage {
        let records = register_broker(
            image,
            &RegisterBroker {
                log_dirs: Vec::new(),
                broker_id: id,
                incarnation_id: uuid::Uuid::from_u128((id as u128) << 32 | epoch as u128),
                broker_epoch: epoch,
                endpoints: vec![],
                rack: None,
                clean_shutdown: false,
            },
            &ControllerDefaults::default(),
        )
        .expect("register");
        apply(image, &records)
    }

    #[test]
    fn a_broker_is_unfenced_once_caught_up_and_fenced_when_silent() {
        let defaults = ControllerDefaults::default();
        let mut hb = BrokerHeartbeatManager::new(3_000, 0);
        let image = register(&MetadataImage::empty(), 1, 40);
        hb.registered(1, 40, 100);
        // Behind its own registration: stays fenced.
        assert_eq!(
            hb.heartbeat(&image, &beat(1, 40, 39), 200),
            Ok(HeartbeatAction::None)
        );
        assert_eq!(
            hb.heartbeat(&image, &beat(1, 40, 40), 300),
            Ok(HeartbeatAction::Unfence)
        );
        let image = apply(
            &image,
            &unfence_broker(&image, 1, &defaults).expect("unfence"),
        );
        // Fenced brokers have no session to expire.
        assert_eq!(hb.next_deadline(&image), Some(3_300));
        assert_eq!(hb.expired(&image, 3_299), Vec::<BrokerId>::new());
        assert_eq!(
            hb.heartbeat(&image, &beat(1, 40, 50), 3_000),
            Ok(HeartbeatAction::None)
        );
        assert_eq!(hb.expired(&image, 5_999), Vec::<BrokerId>::new());
        assert_eq!(hb.expired(&image, 6_000), vec![1]);
        let image = apply(&image, &fence_broker(&image, 1, &defaults).expect("fence"));
        assert_eq!(hb.expired(&image, 60_000), Vec::<BrokerId>::new());
        assert_eq!(hb.next_deadline(&image), None);
    }

    #[test]
    fn a_fenced_broker_this_manager_never_heard_has_no_session() {
        // A new active controller: broker 1 registered (fenced) under an earlier one.
        let hb = BrokerHeartbeatManager::new(1_000, 10_000);
        let fenced = register(&MetadataImage::empty(), 1, 5);
        assert!(!hb.has_valid_session(&fenced, 1, 10_001));
        // Unfenced, it keeps the grace from the manager's start.
        let unfenced = apply(
            &fenced,
            &unfence_broker(&fenced, 1, &ControllerDefaults::default()).expect("unfence"),
        );
        assert!(hb.has_valid_session(&unfenced, 1, 10_999));
        assert!(!hb.has_valid_session(&unfenced, 1, 11_000));
    }

    #[test]
    fn a_session_is_valid_until_it_expires_fenced_or_not() {
        let mut hb = BrokerHeartbeatManager::new(1_000, 0);
        let image = register(&MetadataImage::empty(), 1, 5);
        assert!(!hb.has_valid_session(&image, 2, 0), "unknown broker");
        hb.registered(1, 5, 500);
        assert!(hb.has_valid_session(&image, 1, 1_499));
        assert!(!hb.has_valid_session(&image, 1, 1_500));
        // A contact under an older epoch does not count for the current registration.
        hb.registered(1, 4, 5_000);
        assert!(!hb.has_valid_session(&image, 1, 5_001));
    }

    #[test]
    fn stale_and_unknown_heartbeats_are_refused_and_extend_nothing() {
        let mut hb = BrokerHeartbeatManager::new(1_000, 0);
        let image = register(&MetadataImage::empty(), 1, 5);
        let image = apply(
            &image,
            &unfence_broker(&image, 1, &ControllerDefaults::default()).expect("unfence"),
        );
        hb.registered(1, 5, 0);
        let stale = hb
            .heartbeat(&image, &beat(1, 4, 10), 900)
            .map_err(|e| e.code());
        assert_eq!(stale, Err(code::STALE_BROKER_EPOCH));
        assert_eq!(
            hb.heartbeat(&image, &beat(2, 1, 0), 900)
                .map_err(|e| e.code()),
            Err(code::BROKER_ID_NOT_REGISTERED)
        );
        assert_eq!(hb.expired(&image, 1_000), vec![1]);
    }

    #[test]
    fn controlled_shutdown_moves_leaderships_then_lets_the_broker_stop() {
        use crate::controller::{create_topic, CreateTopic};
        let defaults = ControllerDefaults::default();
        let mut image = MetadataImage::empty();
        for id in 1..=2 {
            image = register(&image, id, id as i64);
            image = apply(
                &image,
                &unfence_broker(&image, id, &defaults).expect("unfence"),
            );
        }
        let create = CreateTopic {
            name: "t".into(),
            topic_id: uuid::Uuid::from_u128(1),
            partitions: 4,
            replication_factor: 2,
            configs: vec![],
            placement_seed: 3,
        };
        image = apply(&image, &create_topic(&image, &create).expect("create"));
        assert_eq!(image.topics().leader_count(1), 2);
        let mut hb = BrokerHeartbeatManager::new(1_000, 0);
        let stopping = BrokerHeartbeat {
            want_shut_down: true,
            ..beat(1, 1, 10)
        };
        assert_eq!(
            hb.heartbeat(&image, &stopping, 10),
            Ok(HeartbeatAction::Fence)
        );
        image = apply(&image, &fence_broker(&image, 1, &defaults).expect("fence"));
        assert_eq!(image.topics().leader_count(1), 0);
        assert_eq!(image.topics().leader_count(2), 4);
        assert_eq!(
            hb.heartbeat(&image, &stopping, 20),
            Ok(HeartbeatAction::ShutDownNow)
        );
    }

    #[test]
    fn want_fence_fences_and_a_new_controller_starts_sessions_afresh() {
        let defaults = ControllerDefaults::default();
        let image = register(&MetadataImage::empty(), 1, 5);
        let image = apply(
            &image,
            &unfence_broker(&image, 1, &defaults).expect("unfence"),
        );
        let mut hb = BrokerHeartbeatManager::new(1_000, 50_000);
        // Never heard from by this controller: the session runs from its start.
        assert_eq!(hb.next_deadline(&image), Some(51_000));
        assert_eq!(
            hb.heartbeat(
                &image,
                &BrokerHeartbeat {
                    want_fence: true,
                    ..beat(1, 5, 9)
                },
                50_100
            ),
            Ok(HeartbeatAction::Fence)
        );
        // A re-registered broker's old contact does not count for the new epoch.
        let image = register(&image, 1, 9);
        let image = apply(
            &image,
            &unfence_broker(&image, 1, &defaults).expect("unfence"),
        );
        assert_eq!(hb.next_deadline(&image), Some(51_000));
    }
}
