//! The node an admin request is served on: a broker, on its client listeners, or any node on
//! its controller listener (KIP-919: Kafka's tools with `--bootstrap-controller`, an
//! AdminClient with `bootstrap.controllers`). The config and ACL handlers (DescribeConfigs,
//! IncrementalAlterConfigs, AlterConfigs, DescribeAcls, CreateAcls, DeleteAcls) and the
//! authorizer take an [`AdminNode`], so a controller-only node, which has no [`Broker`], serves
//! them as a broker does, with itself as "this node" (its BROKER and BROKER_LOGGER resources).
//!
//! ```text
//!  client listener ─► router ─► handler(&Broker as AdminNode)       image: the replica
//!                                                                   manager's applied one
//!  controller listener ─► ControllerApis ─► handler(&ControllerNode)  image: the quorum's
//!                                   both ─► controller channel ─► the active controller
//! ```

use std::sync::{Arc, Weak};

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
}

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
