//! Group configs (Kafka's `ConfigResource.Type.GROUP`, KIP-848 and KIP-932): a group's own
//! settings over the broker's `group.*` defaults.

use gregor_share::ShareGroupSettings;

use crate::broker::Broker;

/// The settings of share group `group`: its `share.*` group configs over the broker's
/// `group.share.*` defaults.
pub fn share_settings(broker: &Broker, group: &str) -> ShareGroupSettings {
    let _ = (broker, group);
    ShareGroupSettings::default()
}
