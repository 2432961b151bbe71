//! The node an admin request is served on: a broker, on its client listeners, or any node on
//! its controller listener (KIP-919: Kafka's tools with `--bootstrap-controller`, an
//! AdminClient with `bootstrap.controllers`). The admin handlers a Kafka controller serves (the
//! config and ACL APIs; CreateTopics, DeleteTopics, CreatePartitions, ElectLeaders, the
//! reassignment APIs, AlterClientQuotas, the SCRAM credential and delegation token APIs) and
//! the authorizer take an [`AdminNode`], so a controller-only node, which has no [`Broker`],
//! serves them as a broker does, with itself as "this node" (its BROKER and BROKER_LOGGER
//! resources, its image, its listener's security protocol).
//!
//! ```text
//!  client listener ─► router ─► handler(&Broker as AdminNode)       image: the replica
//!                                                                   manager's applied one
//!  controller listener ─► ControllerApis ─► handler(&ControllerNode)  image: the quorum's
//!                                   both ─► controller channel ─► the active controller
//! ```

use std::sync::{Arc, Weak};
use std::time::Duration;

use futures::future::BoxFuture;
use futures::FutureExt;
use gregor_controller::{ChannelError, ControllerChannel, ControllerRequest, ControllerResponse};
use gregor_metadata::MetadataImage;
use gregor_raft::MetadataQuorum;
use tokio::sync::watch;

use crate::broker::Broker;
use crate::config::BrokerConfig;
use crate::log_levels::LogLevels;
use crate::tls::ListenerTls;

/// Where an admin request came in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminListener {
    /// A broker's client listener (Kafka's `KafkaApis`).
    Broker,
    /// A node's controller listener (Kafka's `ControllerApis`).
    Controller,
}

/// What the admin handlers need of the node serving them.
pub trait AdminNode: Send + Sync {
    /// The node's static configuration (its id, `authorizer.class.name`, listeners, ...).
    fn config(&self) -> &BrokerConfig;
    /// The metadata image this node applied last.
    fn image(&self) -> Arc<MetadataImage>;
    /// Subscribes to the images this node applies.
    fn watch_image(&self) -> watch::Receiver<Arc<MetadataImage>>;
    /// The configuration in effect: the static one with the image's dynamic broker configs
    /// (the cluster-wide default's and this node's) over it.
    fn effective_config(&self) -> Arc<BrokerConfig>;
    /// Requests to the active controller.
    fn controller(&self) -> &dyn ControllerChannel;
    /// This process's log levels (the BROKER_LOGGER resource).
    fn log_levels(&self) -> &LogLevels;
    /// The node's SSL listeners' stores (reloaded when their dynamic `ssl.*` configs change).
    fn tls(&self) -> Arc<ListenerTls>;
    /// Which of Kafka's two request handlers this one stands for: a few answers differ
    /// between a broker (`KafkaApis`) and a controller (`ControllerApis`).
    fn listener(&self) -> AdminListener {
        AdminListener::Broker
    }

    /// Waits until every topic in `ids` is in this node's image (`present`) or gone from it
    /// (`!present`): a client that created a topic and asks for metadata next then sees it.
    /// At most the request's `timeout_ms` (the longer of it and a few seconds, at most a
    /// minute): creating thousands of partitions on a loaded machine can take longer than the
    /// few seconds that suffice otherwise.
    fn wait_for_topics<'a>(
        &'a self,
        ids: &'a [uuid::Uuid],
        present: bool,
        timeout_ms: i32,
    ) -> BoxFuture<'a, ()> {
        let mut images = self.watch_image();
        async move {
            if ids.is_empty() {
                return;
            }
            let done = |image: &MetadataImage| {
                ids.iter()
                    .all(|id| image.topics().topic(*id).is_some() == present)
            };
            let wait = until_image(&mut images, done);
            let limit = Duration::from_millis(u64::try_from(timeout_ms).unwrap_or(0))
                .clamp(TOPICS_APPLY_WAIT, Duration::from_secs(60));
            if tokio::time::timeout(limit, wait).await.is_err() {
                tracing::warn!(
                    topics = ids.len(),
                    present,
                    "the metadata change did not reach this node in time"
                );
            }
        }
        .boxed()
    }
}

/// Returns once `done` holds on the latest image of `images` (at once if it holds now), or
/// when the images end.
pub(crate) async fn until_image(
    images: &mut watch::Receiver<Arc<MetadataImage>>,
    done: impl Fn(&MetadataImage) -> bool,
) {
    loop {
        if done(&images.borrow_and_update()) {
            return;
        }
        if images.changed().await.is_err() {
            return;
        }
    }
}

/// The least time [`AdminNode::wait_for_topics`] waits for a change it asked the controller
/// for to reach this node's image before answering anyway.
const TOPICS_APPLY_WAIT: Duration = Duration::from_secs(5);

impl AdminNode for Broker {
    fn config(&self) -> &BrokerConfig {
        &self.config
    }

    fn image(&self) -> Arc<MetadataImage> {
        self.replicas.image()
    }

    fn watch_image(&self) -> watch::Receiver<Arc<MetadataImage>> {
        self.replicas.watch_image()
    }

    fn effective_config(&self) -> Arc<BrokerConfig> {
        self.replicas.effective_config()
    }

    fn controller(&self) -> &dyn ControllerChannel {
        &*self.controller
    }

    fn log_levels(&self) -> &LogLevels {
        &self.log_levels
    }

    fn tls(&self) -> Arc<ListenerTls> {
        Arc::clone(&self.tls)
    }
}

/// A handler given `&Arc<Broker>` passes it as it is.
impl<T: AdminNode + ?Sized> AdminNode for Arc<T> {
    fn config(&self) -> &BrokerConfig {
        (**self).config()
    }

    fn image(&self) -> Arc<MetadataImage> {
        (**self).image()
    }

    fn watch_image(&self) -> watch::Receiver<Arc<MetadataImage>> {
        (**self).watch_image()
    }

    fn effective_config(&self) -> Arc<BrokerConfig> {
        (**self).effective_config()
    }

    fn controller(&self) -> &dyn ControllerChannel {
        (**self).controller()
    }

    fn log_levels(&self) -> &LogLevels {
        (**self).log_levels()
    }

    fn tls(&self) -> Arc<ListenerTls> {
        (**self).tls()
    }

    fn listener(&self) -> AdminListener {
        (**self).listener()
    }
}

/// A node as its controller listener serves admin requests: its configuration, the metadata
/// quorum's image, and the quorum's way to the active controller. Every node has one, a
/// controller-only node too.
pub struct ControllerNode {
    config: Arc<BrokerConfig>,
    images: watch::Receiver<Arc<MetadataImage>>,
    controller: WeakQuorumChannel,
    log_levels: Arc<LogLevels>,
    tls: Arc<ListenerTls>,
}

impl ControllerNode {
    /// The node of `quorum` (held weakly: the quorum owns its listener, which owns this),
    /// configured by `config`, with the SSL listeners of `tls`.
    pub fn new(
        config: Arc<BrokerConfig>,
        quorum: &Arc<MetadataQuorum>,
        log_levels: Arc<LogLevels>,
        tls: Arc<ListenerTls>,
    ) -> ControllerNode {
        ControllerNode {
            config,
            images: quorum.image(),
            controller: WeakQuorumChannel(Arc::downgrade(quorum)),
            log_levels,
            tls,
        }
    }
}

impl AdminNode for ControllerNode {
    fn config(&self) -> &BrokerConfig {
        &self.config
    }

    fn image(&self) -> Arc<MetadataImage> {
        self.images.borrow().clone()
    }

    fn watch_image(&self) -> watch::Receiver<Arc<MetadataImage>> {
        self.images.clone()
    }

    fn effective_config(&self) -> Arc<BrokerConfig> {
        Arc::new(self.config.with_dynamic(self.image().configs()))
    }

    fn controller(&self) -> &dyn ControllerChannel {
        &self.controller
    }

    fn log_levels(&self) -> &LogLevels {
        &self.log_levels
    }

    fn tls(&self) -> Arc<ListenerTls> {
        Arc::clone(&self.tls)
    }

    fn listener(&self) -> AdminListener {
        AdminListener::Controller
    }
}

/// [`crate::cluster::QuorumChannel`] over a quorum held weakly; a quorum that is gone (the node
/// is stopping) answers as an unreachable controller.
struct WeakQuorumChannel(Weak<MetadataQuorum>);

impl ControllerChannel for WeakQuorumChannel {
    fn call(
        &self,
        req: ControllerRequest,
    ) -> BoxFuture<'static, Result<ControllerResponse, ChannelError>> {
        match self.0.upgrade() {
            Some(quorum) => crate::cluster::QuorumChannel(quorum).call(req),
            None => async {
                Err(ChannelError::Unreachable(
                    "this node is shutting down".to_string(),
                ))
            }
            .boxed(),
        }
    }
}
