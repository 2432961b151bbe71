//! Internal topics a coordinator creates on first need (`__transaction_state`,
//! `__share_group_state`), as Kafka creates them on the first FindCoordinator for their key:
//! in the background, once enough brokers are live, while the caller answers
//! COORDINATOR_NOT_AVAILABLE.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use gregor_controller::protocol::{CreatableTopic, CreateTopicsRequest};
use gregor_controller::{ControllerChannel, ControllerRequest, ControllerResponse};
use gregor_protocol::error::ErrorCode;
use tracing::{debug, info, warn};

use crate::replica_manager::ReplicaManager;

/// One internal topic's creation on demand: at most one attempt at a time.
pub struct OnDemandTopic {
    name: &'static str,
    creating: Arc<AtomicBool>,
}

impl OnDemandTopic {
    /// The creation of `name`.
    pub fn new(name: &'static str) -> Self {
        Self {
            name,
            creating: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Starts creating the topic through the controller unless it exists or an attempt is
    /// under way. `topic` builds it for a replication factor; `want` is that factor (the
    /// attempt waits, returning, while fewer brokers are live).
    pub fn ensure(
        &self,
        replicas: &Arc<ReplicaManager>,
        controller: &Arc<dyn ControllerChannel>,
        want: usize,
        topic: impl FnOnce(usize) -> CreatableTopic,
    ) {
        if replicas.topic(self.name).is_some()
            || replicas.image().topics().topic_by_name(self.name).is_some()
            || self.creating.swap(true, Ordering::AcqRel)
        {
            return;
        }
        let name = self.name;
        let live = replicas.image().cluster().placeable_broker_ids().len();
        if live < want {
            // Clients retry FindCoordinator: one line per attempt at debug level only.
            debug!(
                live,
                want, "waiting for enough live brokers to create {name}"
            );
            self.creating.store(false, Ordering::Release);
            return;
        }
        let request = ControllerRequest::CreateTopics(CreateTopicsRequest {
            topics: vec![topic(want)],
            validate_only: false,
        });
        let (controller, creating) = (Arc::clone(controller), Arc::clone(&self.creating));
        tokio::spawn(async move {
            match controller.call(request).await {
                Ok(ControllerResponse::CreateTopics(resp)) => match resp.topics.first() {
                    Some(t) if t.error_code == 0 => info!(
                        partitions = t.num_partitions,
                        replication_factor = t.replication_factor,
                        "created {name}"
                    ),
                    Some(t) if t.error_code == ErrorCode::TOPIC_ALREADY_EXISTS.code() => {}
                    other => warn!(answer = ?other, "cannot create {name} yet"),
                },
                other => warn!(answer = ?other, "cannot create {name} yet"),
            }
            creating.store(false, Ordering::Release);
        });
    }
}
