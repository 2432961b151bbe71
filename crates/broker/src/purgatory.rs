//! The purgatory: requests that cannot be answered yet (Kafka's `DelayedOperationPurgatory`
//! with `DelayedProduce` and `DelayedFetch`). Owned by the replica manager; the produce and
//! fetch handlers hand it what they wait for and get a future back.
//!
//! ```text
//!  acks=all produce ─► delay_produce ─┬─ per partition: produce_status (core) ◄── high_watermark watch
//!                                     │      Pending → wait │ Complete(result)
//!                                     ├─ then wait_durable (fsync, group commit)
//!                                     └─ timeout_ms passed → REQUEST_TIMED_OUT for partitions not done
//!  fetch ──────────► delay_fetch ─── try_complete(read) ◄── high_watermark watch (consumers)
//!                                          │               ◄── log_end_offset watch (followers)
//!                                          └─ enough bytes, an error, or max_wait_ms passed
//! ```
//!
//! A delayed operation subscribes to its watches before it checks, so a change that lands
//! between the check and the wait still wakes it. Deadlines use tokio's timer (tests pause it).
//!
//! The timeout of a produce bounds the wait for replication (the high watermark), as Kafka's
//! does. The local fsync that gregor adds for acks=all under the default flush policy is not
//! cut short by it: the fsync is under way and cannot be recalled, so answering
//! REQUEST_TIMED_OUT meanwhile would only make the producer resend records about to be
//! durable. It ends with the flush, or KAFKA_STORAGE_ERROR if the flush fails.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures::future::select_all;
use gregor_protocol::error::ErrorCode;
use gregor_replication::ProduceStatus;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::partition::{replication_error_code, FetchIsolation, Partition};

/// What a delayed produce waits for on one partition.
#[derive(Debug, Clone)]
pub struct ProduceWait {
    /// The partition appended to.
    pub partition: Arc<Partition>,
    /// The offset after the appended records: the high watermark must reach it.
    pub required_offset: i64,
    /// The leader epoch of the append.
    pub leader_epoch: i32,
    /// Also wait for the local fsync (acks=all under the default flush policy).
    pub durable: bool,
}

/// Why a delayed produce's partition failed: its error code and a message for the response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProduceFailure {
    /// Kafka error code.
    pub code: ErrorCode,
    /// For the response's `error_message`.
    pub message: Option<String>,
}

/// Delayed operations waiting now (Kafka's `PurgatorySize` metrics).
#[derive(Debug, Default)]
pub struct Purgatory {
    delayed_produces: AtomicUsize,
    delayed_fetches: AtomicUsize,
}

/// Counts one operation while it waits.
struct Waiting<'a>(&'a AtomicUsize);

impl<'a> Waiting<'a> {
    fn new(counter: &'a AtomicUsize) -> Waiting<'a> {
        counter.fetch_add(1, Ordering::Relaxed);
        Waiting(counter)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Purgatory {
    /// Produces waiting for replication or durability.
    pub fn delayed_produces(&self) -> usize {
        self.delayed_produces.load(Ordering::Relaxed)
    }

    /// Fetches waiting for data.
    pub fn delayed_fetches(&self) -> usize {
        self.delayed_fetches.load(Ordering::Relaxed)
    }

    /// Kafka's `DelayedProduce`: waits until each partition's records are below its high
    /// watermark (and durable when asked), or until `timeout` passes. One result per wait, in
    /// order: `Ok`, or the error to answer for that partition (REQUEST_TIMED_OUT,
    /// NOT_ENOUGH_REPLICAS_AFTER_APPEND, NOT_LEADER_OR_FOLLOWER, KAFKA_STORAGE_ERROR).
    pub async fn delay_produce(
        &self,
        waits: Vec<ProduceWait>,
        timeout: Duration,
    ) -> Vec<Result<(), ProduceFailure>> {
        let _waiting = Waiting::new(&self.delayed_produces);
        let deadline = Instant::now() + timeout;
        // Start every fsync at once; each partition's flusher takes what is there.
        for w in waits.iter().filter(|w| w.durable) {
            if w.partition.durable_offset() < w.required_offset {
                w.partition.start_flush();
            }
        }
        let mut results = Vec::with_capacity(waits.len());
        for w in &waits {
            let mut result = replicated(w, deadline).await;
            if result.is_ok() && w.durable {
                result = w
                    .partition
                    .wait_durable(w.required_offset)
                    .await
                    .map_err(|code| ProduceFailure {
                        code,
                        message: Some("flush to disk failed".into()),
                    });
            }
            results.push(result);
        }
        results
    }

    /// Kafka's `DelayedFetch`: calls `try_complete(expired)` now and again whenever one of
    /// `partitions` changes (the high watermark for consumers, the log end for followers),
    /// until it returns a result; `expired` is true once `max_wait` has passed, and then
    /// `try_complete` must answer with what there is.
    pub async fn delay_fetch<T>(
        &self,
        partitions: &[Arc<Partition>],
        isolation: FetchIsolation,
        max_wait: Duration,
        mut try_complete: impl FnMut(bool) -> Option<T>,
    ) -> T {
        let deadline = Instant::now() + max_wait;
        let mut waiting = None;
        loop {
            // Subscribe before reading, so a change that lands after the read still wakes us.
            let mut watchers: Vec<watch::Receiver<i64>> = partitions
                .iter()
                .map(|p| match isolation {
                    FetchIsolation::HighWatermark => p.watch_high_watermark(),
                    FetchIsolation::LogEnd => p.watch_log_end_offset(),
                })
                .collect();
            for w in &mut watchers {
                w.borrow_and_update();
            }
            let expired = Instant::now() >= deadline;
            if let Some(done) = try_complete(expired) {
                return done;
            }
            if expired {
                // `try_complete` must answer once expired; do not spin if it did not.
                tokio::time::sleep(Duration::from_millis(1)).await;
                continue;
            }
            waiting.get_or_insert_with(|| Waiting::new(&self.delayed_fetches));
            let sleep = tokio::time::sleep_until(deadline);
            if watchers.is_empty() {
                sleep.await;
                continue;
            }
            let changes = select_all(watchers.iter_mut().map(|w| Box::pin(w.changed())));
            tokio::select! {
                _ = sleep => {}
                _ = changes => {}
            }
        }
    }
}

/// Waits until the core says the produce is done (the high watermark reached the required
/// offset, or it failed), or the deadline passes.
async fn replicated(w: &ProduceWait, deadline: Instant) -> Result<(), ProduceFailure> {
    let mut hw = w.partition.watch_high_watermark();
    loop {
        hw.borrow_and_update();
        match w
            .partition
            .produce_status(w.required_offset, w.leader_epoch)
        {
            ProduceStatus::Complete(Ok(())) => return Ok(()),
            ProduceStatus::Complete(Err(e)) => {
                return Err(ProduceFailure {
                    code: replication_error_code(&e),
                    message: Some(e.to_string()),
                })
            }
            ProduceStatus::Pending => {}
        }
        if Instant::now() >= deadline {
            return Err(ProduceFailure {
                code: ErrorCode::REQUEST_TIMED_OUT,
                message: Some("timed out waiting for the in-sync replicas".into()),
            });
        }
        tokio::select! {
            _ = tokio::time::sleep_until(deadline) => {}
            changed = hw.changed() => {
                if changed.is_err() {
                    return Err(ProduceFailure {
                        code: ErrorCode::KAFKA_STORAGE_ERROR,
                        message: None,
                    });
                }
            }
        }
    }
}
