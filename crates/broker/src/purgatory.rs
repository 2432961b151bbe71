//! The purgatory: requests that cannot be answered yet (Kafka's `DelayedOperationPurgatory`
//! with `DelayedProduce` and `DelayedFetch`). Owned by the replica manager; the produce and
//! fetch handlers hand it what they wait for and get a future back.
//!
//! ```text
//!  acks=all produce ─► delay_produce ─┬─ per partition: produce_status (core) ◄── high_watermark watch
//!                                     │      Pending → wait │ Complete(result)
//!                                     ├─ then wait_durable (fsync, group commit)
//!                                     └─ timeout_ms passed → REQUEST_TIMED_OUT for partitions not done
//!  fetch ──────────► delay_fetch ─── try_complete(read) ◄── high_watermark watch (consumers;
//!                                          │                  read_committed ones too: the
//!                                          │                  LSO moves only with the HW)
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
    /// Wait for the high watermark (acks=all); an acks=1 answer waits only for its fsync.
    pub replication: bool,
    /// Also wait for the local fsync (acks=all under the default flush policy; any answer
    /// whose append reached the topic's `flush.messages`).
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
            let mut result = if w.replication {
                replicated(w, deadline).await
            } else {
                Ok(())
            };
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
                    // The last stable offset only moves with the high watermark (a marker
                    // holds its transaction back until the high watermark passes it).
                    FetchIsolation::HighWatermark | FetchIsolation::TxnCommitted => {
                        p.watch_high_watermark()
                    }
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

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;
    use std::time::Instant as StdInstant;

    use bytes::{Buf, Bytes};
    use gregor_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
    use gregor_protocol::messages::{ApiKey, ProduceRequest, ProduceResponse, TopicName};
    use gregor_protocol::protocol::{Decodable, StrBytes};
    use gregor_replication::AlterPartitionResponse;

    use super::*;
    use crate::broker::{test_broker_with_clock, Broker};
    use crate::clock::{Clock, ManualClock, SystemClock};
    use crate::partition::tests::{batch, follower_fetch, one_partition, with_follower};
    use crate::request::{Reply, RequestContext};

    /// A broker with topic `t` (one partition, `min.insync.replicas` = `min_isr`) whose
    /// partition has the fake second replica 2 and the ISR `isr`.
    fn broker_with_follower(
        clock: Arc<dyn Clock>,
        min_isr: i32,
        isr: Vec<i32>,
    ) -> (tempfile::TempDir, Arc<Broker>, Arc<Partition>) {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut config = crate::config::BrokerConfig {
            data_dir: dir.path().to_path_buf(),
            ..Default::default()
        };
        config.group.offsets_topic_num_partitions = 1;
        let b = test_broker_with_clock(config, clock);
        let mut configs = BTreeMap::new();
        configs.insert("min.insync.replicas".to_string(), min_isr.to_string());
        let topic = b.replicas.create_topic("t", 1, 2, configs).expect("create");
        let part = Arc::clone(&topic.partitions[&0]);
        with_follower(&part, isr);
        (dir, b, part)
    }

    /// Produce v8 of one batch of `n` records to `t`-0 through the handler; the partition's
    /// error code once answered.
    async fn produce(b: &Arc<Broker>, acks: i16, timeout_ms: i32, n: usize) -> i16 {
        produce_to(b, "t", acks, timeout_ms, n)
            .await
            .unwrap_or_default()
    }

    /// [`produce`] to `topic`-0; `None` for acks=0 (no answer).
    async fn produce_to(
        b: &Arc<Broker>,
        topic: &'static str,
        acks: i16,
        timeout_ms: i32,
        n: usize,
    ) -> Option<i16> {
        let ctx = RequestContext {
            api: ApiKey::Produce,
            api_version: 8,
            correlation_id: 1,
            client_id: None,
            client_host: String::new(),
            mute: Default::default(),
            listener: Default::default(),
            principal: Default::default(),
            connection: Default::default(),
        };
        let req = ProduceRequest::default()
            .with_acks(acks)
            .with_timeout_ms(timeout_ms)
            .with_topic_data(vec![TopicProduceData::default()
                .with_name(TopicName(StrBytes::from_static_str(topic)))
                .with_partition_data(vec![PartitionProduceData::default()
                    .with_index(0)
                    .with_records(Some(Bytes::from(batch(n))))])]);
        let mut bytes = match crate::handlers::produce::handle(b, ctx, req).expect("handled") {
            Reply::Ready(bytes) => bytes,
            Reply::Pending(f) => f.await.expect("encoded"),
            Reply::None => return None,
            _ => panic!("a produce reply is bytes"),
        };
        bytes.advance(8); // size, correlation id (response header v0)
        let resp = ProduceResponse::decode(&mut bytes, 8).expect("decode");
        Some(resp.responses[0].partition_responses[0].error_code)
    }

    /// Kafka's `flush.messages`: an append that brings the unflushed records to the topic's
    /// count is flushed before its answer, whatever the acks (acks=0 starts the flush); below
    /// it nothing waits. gregor's default policy fsyncs for acks=all only.
    #[tokio::test]
    async fn an_append_reaching_flush_messages_is_answered_after_its_fsync() {
        let (_dir, b, plain) = broker_with_follower(Arc::new(SystemClock), 1, vec![1]);
        let mut configs = BTreeMap::new();
        configs.insert("flush.messages".to_string(), "3".to_string());
        let topic = b.replicas.create_topic("f", 1, 1, configs).expect("create");
        let part = Arc::clone(&topic.partitions[&0]);
        assert_eq!(
            part.flush_policy(),
            crate::config::FlushPolicy::Interval {
                messages: 3,
                interval_ms: i64::MAX
            }
        );
        // The default policy: acks=1 is answered from the page cache.
        assert_eq!(produce(&b, 1, 1000, 2).await, 0);
        assert_eq!(plain.durable_offset(), 0);
        // Two of three: not flushed.
        assert_eq!(produce_to(&b, "f", 1, 1000, 2).await, Some(0));
        assert_eq!(part.durable_offset(), 0);
        assert_eq!(part.unflushed_records(), 2);
        // The third: answered once durable.
        assert_eq!(produce_to(&b, "f", 1, 1000, 1).await, Some(0));
        assert_eq!(part.durable_offset(), 3, "acks=1 answered before its fsync");
        assert_eq!(part.unflushed_records(), 0);
        // acks=all the same (under the interval policy it waits for the count, not for
        // every fsync).
        assert_eq!(produce_to(&b, "f", -1, 1000, 1).await, Some(0));
        assert_eq!(part.durable_offset(), 3);
        assert_eq!(produce_to(&b, "f", -1, 1000, 2).await, Some(0));
        assert_eq!(
            part.durable_offset(),
            6,
            "acks=all answered before its fsync"
        );
        // acks=0 has no answer to hold back; the flush starts all the same.
        assert_eq!(produce_to(&b, "f", 0, 1000, 3).await, None);
        let deadline = StdInstant::now() + Duration::from_secs(10);
        while part.durable_offset() < 9 {
            assert!(
                StdInstant::now() < deadline,
                "acks=0 at the count not flushed"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// An acks=all produce whose ISR holds a follower that never fetches cannot complete: it is
    /// answered REQUEST_TIMED_OUT once its `timeout_ms` has passed, not left hanging. The
    /// records stay appended (above the high watermark), as in Kafka.
    #[tokio::test]
    async fn acks_all_times_out_when_a_follower_never_fetches() {
        let (_dir, b, part) = broker_with_follower(Arc::new(SystemClock), 1, vec![1, 2]);
        let started = StdInstant::now();
        let code = produce(&b, -1, 300, 2).await;
        let waited = started.elapsed();
        assert_eq!(code, ErrorCode::REQUEST_TIMED_OUT.code());
        assert!(
            waited >= Duration::from_millis(300) && waited < Duration::from_secs(10),
            "answered after {waited:?}"
        );
        assert_eq!((part.high_watermark(), part.log_end_offset()), (0, 2));
        assert_eq!(b.replicas.purgatory().delayed_produces(), 0);
        // acks=1 does not wait for the follower.
        assert_eq!(produce(&b, 1, 300, 1).await, 0);
    }

    /// The same wait completes as soon as the follower fetches past the records.
    #[tokio::test]
    async fn acks_all_completes_when_the_follower_catches_up() {
        let (_dir, b, part) = broker_with_follower(Arc::new(SystemClock), 2, vec![1, 2]);
        let p = Arc::clone(&part);
        let follower = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            p.follower_fetch(&follower_fetch(2))
                .expect("follower fetch");
        });
        let started = StdInstant::now();
        assert_eq!(produce(&b, -1, 30_000, 2).await, 0);
        assert!(started.elapsed() < Duration::from_secs(10));
        follower.await.expect("follower");
        assert_eq!(part.high_watermark(), 2);
        assert!(
            part.durable_offset() >= 2,
            "acks=all also waited for the fsync"
        );
    }

    /// With the ISR below `min.insync.replicas`, acks=all is refused before anything is
    /// appended; acks=1 still appends.
    #[tokio::test]
    async fn acks_all_is_refused_when_the_isr_is_too_small() {
        let (_dir, b, part) = broker_with_follower(Arc::new(SystemClock), 2, vec![1]);
        assert_eq!(
            produce(&b, -1, 1_000, 1).await,
            ErrorCode::NOT_ENOUGH_REPLICAS.code()
        );
        assert_eq!(part.log_end_offset(), 0, "nothing appended");
        assert_eq!(produce(&b, 1, 1_000, 1).await, 0);
        assert_eq!(part.log_end_offset(), 1);
    }

    /// The ISR shrinks below `min.insync.replicas` while an acks=all produce waits: the high
    /// watermark stays (Kafka 3.7+), so the records are not committed and the produce keeps
    /// waiting; once `min.insync.replicas` is lowered to the ISR they are, and it is answered.
    #[tokio::test]
    async fn an_isr_shrink_below_min_isr_keeps_an_acks_all_produce_waiting() {
        let clock = Arc::new(ManualClock::new(1_000_000));
        let (_dir, b, part) = broker_with_follower(clock.clone(), 2, vec![1, 2]);
        let b2 = Arc::clone(&b);
        let waiting = tokio::spawn(async move { produce(&b2, -1, 30_000, 1).await });
        while b.replicas.purgatory().delayed_produces() == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        clock.advance(30_001);
        b.replicas.tick_replication();
        let pending = b.replicas.take_pending_alter_partition();
        let (_, request) = pending.first().expect("a shrink proposal");
        part.alter_partition_response(
            request.proposal,
            &AlterPartitionResponse::Accepted {
                leader_id: 1,
                leader_epoch: 1,
                partition_epoch: 2,
                isr: vec![1],
            },
        );
        assert_eq!(part.isr(), vec![1]);
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert!(!waiting.is_finished(), "answered below min.insync.replicas");
        assert_eq!(b.replicas.purgatory().delayed_produces(), 1);
        part.set_min_insync_replicas(1);
        let code = tokio::time::timeout(Duration::from_secs(10), waiting)
            .await
            .expect("answered")
            .expect("task");
        assert_eq!(code, ErrorCode::NONE.code());
    }

    /// A delayed follower fetch is woken by an append; a delayed consumer fetch is not (the
    /// high watermark does not move while the follower holds it back) and ends at its
    /// `max_wait`.
    #[tokio::test]
    async fn delayed_fetches_wake_on_their_own_watch() {
        let (_dir, rm, topic) = one_partition(Arc::new(SystemClock), 1);
        let part = Arc::clone(&topic.partitions[&0]);
        with_follower(&part, vec![1, 2]);
        let settings = topic.settings.clone();
        let appender = {
            let part = Arc::clone(&part);
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(50)).await;
                part.append(&batch(1), &settings).expect("append");
            })
        };
        let parts = [Arc::clone(&part)];
        let started = StdInstant::now();
        let woken = rm
            .purgatory()
            .delay_fetch(
                &parts,
                FetchIsolation::LogEnd,
                Duration::from_secs(20),
                |expired| (part.log_end_offset() > 0 || expired).then_some(!expired),
            )
            .await;
        assert!(woken, "the follower fetch was woken by the append");
        assert!(started.elapsed() < Duration::from_secs(10));
        appender.await.expect("appender");

        let started = StdInstant::now();
        let mut checks = 0;
        let expired = rm
            .purgatory()
            .delay_fetch(
                &parts,
                FetchIsolation::HighWatermark,
                Duration::from_millis(200),
                |expired| {
                    checks += 1;
                    (part.high_watermark() > 0 || expired).then_some(expired)
                },
            )
            .await;
        assert!(expired, "the consumer fetch ended at max_wait");
        assert!(started.elapsed() >= Duration::from_millis(200));
        assert_eq!(checks, 2, "checked at the start and at the deadline only");
        assert_eq!(rm.purgatory().delayed_fetches(), 0);
    }

    /// A delayed fetch over many partitions is woken by a change to any one of them, also by
    /// one that lands between its check and its wait.
    #[tokio::test]
    async fn a_fetch_over_many_partitions_wakes_on_any_of_them() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = Arc::new(crate::config::BrokerConfig {
            data_dir: dir.path().to_path_buf(),
            ..Default::default()
        });
        let rm = crate::replica_manager::ReplicaManager::open(config, Arc::new(SystemClock))
            .expect("open");
        let topic = rm
            .create_topic("many", 200, 1, BTreeMap::new())
            .expect("create");
        let parts: Vec<Arc<Partition>> = (0..200)
            .map(|i| Arc::clone(&topic.partitions[&i]))
            .collect();
        for (round, i) in [199, 0, 117].into_iter().enumerate() {
            let target = Arc::clone(&parts[i]);
            let settings = topic.settings.clone();
            let mut checks = 0;
            let started = StdInstant::now();
            let woken = rm
                .purgatory()
                .delay_fetch(
                    &parts,
                    FetchIsolation::LogEnd,
                    Duration::from_secs(20),
                    |expired| {
                        checks += 1;
                        if checks == 1 {
                            // The append lands after the first check and before the wait.
                            target.append(&batch(1), &settings).expect("append");
                            return None;
                        }
                        (target.log_end_offset() > 0 || expired).then_some(!expired)
                    },
                )
                .await;
            assert!(
                woken,
                "round {round}: partition {i}'s append woke the fetch"
            );
            assert_eq!(checks, 2, "round {round}: one check after the append");
            assert!(started.elapsed() < Duration::from_secs(10));
        }
    }
}
