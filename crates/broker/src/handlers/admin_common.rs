//! What the partition-admin handlers (CreatePartitions, ElectLeaders, the reassignment APIs)
//! share: waiting until this broker's applied image shows the change the controller made, so
//! that a Metadata request right after the answer sees it.

use std::time::Duration;

use gregor_metadata::MetadataImage;

use crate::broker::Broker;

/// How long a handler waits for the controller's change to reach this broker's image.
const APPLY_WAIT: Duration = Duration::from_secs(5);

/// Waits (at most a few seconds) until `done` holds on this broker's applied image.
pub(crate) async fn wait_for_image(broker: &Broker, done: impl Fn(&MetadataImage) -> bool) {
    let mut images = broker.replicas.watch_image();
    let wait = async {
        loop {
            if done(&images.borrow_and_update()) {
                return;
            }
            if images.changed().await.is_err() {
                return;
            }
        }
    };
    if tokio::time::timeout(APPLY_WAIT, wait).await.is_err() {
        tracing::warn!("the metadata change did not reach this broker in time");
    }
}
