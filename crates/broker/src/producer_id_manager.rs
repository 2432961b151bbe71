//! Producer ids for InitProducerId (Kafka's `RPCProducerIdManager`): this broker takes blocks of
//! ids from the controller (AllocateProducerIds, KIP-730) and hands them out one by one.
//!
//! ```text
//!  InitProducerId ─► ProducerIdManager::generate ─► ProducerIdBlocks::take (I/O-free)
//!                                                     ├─ Id(id), maybe "prefetch now" (90 % used)
//!                                                     └─ Exhausted ─► ask the controller, wait
//!  prefetch task ─► AllocateProducerIds ─► controller commits ProducerIdsRecord ─► next block
//! ```
//!
//! A block is committed to the metadata log before the controller answers, so ids are unique
//! across the cluster and never reused after any restart (a restarted broker simply asks for a
//! new block; the rest of its old one is never used). The next block is fetched in the
//! background once 90 % of the current one is used, so a busy broker does not wait.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use gregor_controller::protocol::AllocateProducerIdsRequest;
use gregor_controller::{ControllerChannel, ControllerRequest, ControllerResponse};
use gregor_protocol::error::ErrorCode;
use tracing::{debug, warn};

use crate::replica_manager::ReplicaManager;

/// How much of a block is used before the next one is fetched (Kafka: 90 %).
const PREFETCH_PERCENT: i64 = 90;

/// Pause after a failed AllocateProducerIds before the next may be sent.
const FETCH_RETRY_BACKOFF: Duration = Duration::from_millis(200);

/// How long a request waits for a block when none is left.
const BLOCK_WAIT: Duration = Duration::from_secs(5);

/// A block `[first, first + len)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerIdBlock {
    pub first: i64,
    pub len: i64,
}

/// What [`ProducerIdBlocks::take`] gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Take {
    /// An id; `prefetch` when the next block should be asked for now.
    Id { id: i64, prefetch: bool },
    /// No id left: a block must arrive first.
    Exhausted,
}

/// The blocks this broker holds, without I/O: the current one and at most one fetched ahead.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProducerIdBlocks {
    current: Option<ProducerIdBlock>,
    /// The next id of `current`.
    next: i64,
    prefetched: Option<ProducerIdBlock>,
    /// A request for a block is out.
    fetching: bool,
}

impl ProducerIdBlocks {
    /// The next id. Moves to the prefetched block when the current one is used up; asks for
    /// a prefetch once 90 % of the current block is used and nothing is fetched or in flight.
    pub fn take(&mut self) -> Take {
        let exhausted = self.current.is_none_or(|b| self.next >= b.first + b.len);
        if exhausted {
            match self.prefetched.take() {
                Some(b) => {
                    self.current = Some(b);
                    self.next = b.first;
                }
                None => return Take::Exhausted,
            }
        }
        let Some(block) = self.current else {
            return Take::Exhausted;
        };
        let id = self.next;
        self.next += 1;
        let used = self.next - block.first;
        let prefetch = !self.fetching
            && self.prefetched.is_none()
            && used * 100 >= block.len * PREFETCH_PERCENT;
        if prefetch {
            self.fetching = true;
        }
        Take::Id { id, prefetch }
    }

    /// Marks a fetch as started (when [`take`](Self::take) said `Exhausted`); `false` if one is
    /// already out.
    pub fn start_fetch(&mut self) -> bool {
        !std::mem::replace(&mut self.fetching, true)
    }

    /// A fetched block arrived (`None`: the fetch failed; the next take asks again).
    pub fn fetched(&mut self, block: Option<ProducerIdBlock>) {
        self.fetching = false;
        let Some(block) = block else { return };
        let exhausted = self.current.is_none_or(|b| self.next >= b.first + b.len);
        if exhausted {
            self.current = Some(block);
            self.next = block.first;
        } else {
            self.prefetched = Some(block);
        }
    }
}

/// Hands out producer ids from controller-allocated blocks.
pub struct ProducerIdManager {
    node_id: i32,
    controller: Arc<dyn ControllerChannel>,
    /// For this broker's epoch (its registration in the applied image).
    replicas: Arc<ReplicaManager>,
    blocks: Mutex<ProducerIdBlocks>,
    /// Wakes requests waiting for a block.
    arrived: tokio::sync::Notify,
}

impl std::fmt::Debug for ProducerIdManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProducerIdManager")
            .field("node_id", &self.node_id)
            .finish_non_exhaustive()
    }
}

impl ProducerIdManager {
    pub fn new(
        node_id: i32,
        controller: Arc<dyn ControllerChannel>,
        replicas: Arc<ReplicaManager>,
    ) -> ProducerIdManager {
        ProducerIdManager {
            node_id,
            controller,
            replicas,
            blocks: Mutex::new(ProducerIdBlocks::default()),
            arrived: tokio::sync::Notify::new(),
        }
    }

    fn blocks(&self) -> std::sync::MutexGuard<'_, ProducerIdBlocks> {
        self.blocks.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A new producer id. Waits for a block when none is left (at most a few seconds, then
    /// COORDINATOR_LOAD_IN_PROGRESS, which clients retry, as Kafka answers while its block is
    /// on the way).
    pub async fn generate(self: &Arc<Self>) -> Result<i64, ErrorCode> {
        let deadline = tokio::time::Instant::now() + BLOCK_WAIT;
        loop {
            // Register for the wake-up before looking, so a block arriving in between is seen.
            let arrived = self.arrived.notified();
            let take = self.blocks().take();
            match take {
                Take::Id { id, prefetch } => {
                    if prefetch {
                        self.spawn_fetch();
                    }
                    return Ok(id);
                }
                Take::Exhausted => {
                    if self.blocks().start_fetch() {
                        self.spawn_fetch();
                    }
                }
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                return Err(ErrorCode::COORDINATOR_LOAD_IN_PROGRESS);
            }
        }
    }

    fn spawn_fetch(self: &Arc<Self>) {
        let this = Arc::clone(self);
        tokio::spawn(async move {
            let block = this.fetch_block().await;
            if block.is_none() {
                // The waiters ask again at once: do not hammer a controller that just refused.
                tokio::time::sleep(FETCH_RETRY_BACKOFF).await;
            }
            this.blocks().fetched(block);
            this.arrived.notify_waiters();
        });
    }

    async fn fetch_block(&self) -> Option<ProducerIdBlock> {
        let broker_epoch = self
            .replicas
            .image()
            .cluster()
            .broker(self.node_id)
            .map_or(-1, |b| b.epoch);
        let request = ControllerRequest::AllocateProducerIds(AllocateProducerIdsRequest {
            broker_id: self.node_id,
            broker_epoch,
        });
        match self.controller.call(request).await {
            Ok(ControllerResponse::AllocateProducerIds(r)) if r.error_code == 0 => {
                debug!(
                    first = r.producer_id_start,
                    len = r.producer_id_len,
                    "producer id block"
                );
                Some(ProducerIdBlock {
                    first: r.producer_id_start,
                    len: i64::from(r.producer_id_len),
                })
            }
            Ok(ControllerResponse::AllocateProducerIds(r)) => {
                warn!(error = %ErrorCode(r.error_code), "AllocateProducerIds refused");
                None
            }
            Ok(ControllerResponse::Error(e)) => {
                debug!(error = %ErrorCode(e.error_code), message = %e.message, "AllocateProducerIds not handled");
                None
            }
            Ok(other) => {
                warn!(answer = ?other, "unexpected answer to AllocateProducerIds");
                None
            }
            Err(e) => {
                warn!(error = %e, "AllocateProducerIds not sent");
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(first: i64, len: i64) -> Option<ProducerIdBlock> {
        Some(ProducerIdBlock { first, len })
    }

    #[test]
    fn ids_come_from_the_block_and_the_next_is_prefetched_at_ninety_percent() {
        let mut b = ProducerIdBlocks::default();
        assert_eq!(b.take(), Take::Exhausted);
        assert!(b.start_fetch());
        assert!(!b.start_fetch(), "one fetch at a time");
        b.fetched(block(1000, 10));
        for i in 0..8 {
            assert_eq!(
                b.take(),
                Take::Id {
                    id: 1000 + i,
                    prefetch: false
                }
            );
        }
        assert_eq!(
            b.take(),
            Take::Id {
                id: 1008,
                prefetch: true
            }
        );
        assert_eq!(
            b.take(),
            Take::Id {
                id: 1009,
                prefetch: false
            }
        );
        // The prefetch has not arrived yet: nothing left.
        assert_eq!(b.take(), Take::Exhausted);
        b.fetched(block(5000, 10));
        assert_eq!(
            b.take(),
            Take::Id {
                id: 5000,
                prefetch: false
            }
        );
    }

    #[test]
    fn a_prefetched_block_waits_until_the_current_one_is_used() {
        let mut b = ProducerIdBlocks::default();
        b.start_fetch();
        b.fetched(block(0, 10));
        for _ in 0..9 {
            b.take();
        }
        b.fetched(block(20, 10));
        assert_eq!(
            b.take(),
            Take::Id {
                id: 9,
                prefetch: false
            }
        );
        assert_eq!(
            b.take(),
            Take::Id {
                id: 20,
                prefetch: false
            }
        );
        // A failed fetch lets the next take ask again.
        let mut b = ProducerIdBlocks::default();
        b.start_fetch();
        b.fetched(None);
        assert!(b.start_fetch());
    }

    /// A controller that refuses every block: InitProducerId gets a retriable error after the
    /// wait, never a made-up id.
    #[tokio::test(start_paused = true)]
    async fn without_a_block_the_answer_is_retriable() {
        use futures::future::BoxFuture;
        use futures::FutureExt;
        use gregor_controller::ChannelError;

        struct Refusing;
        impl ControllerChannel for Refusing {
            fn call(
                &self,
                _req: ControllerRequest,
            ) -> BoxFuture<'static, Result<ControllerResponse, ChannelError>> {
                async { Ok(ControllerResponse::error(41, "not the controller")) }.boxed()
            }
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let broker = crate::broker::test_broker(crate::config::BrokerConfig {
            data_dir: dir.path().to_path_buf(),
            ..Default::default()
        });
        let manager = Arc::new(ProducerIdManager::new(
            1,
            Arc::new(Refusing),
            Arc::clone(&broker.replicas),
        ));
        assert_eq!(
            manager.generate().await,
            Err(ErrorCode::COORDINATOR_LOAD_IN_PROGRESS)
        );
    }
}
