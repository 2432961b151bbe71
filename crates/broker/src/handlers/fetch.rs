//! Fetch (key 1): reads whole batches from each requested partition, and long-polls: when less
//! than `min_bytes` is available the reply waits (Kafka's DelayedFetch) until an append to one
//! of the partitions wakes it or `max_wait_ms` passes.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::future::select_all;
use gregor_protocol::error::ErrorCode;
use gregor_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use gregor_protocol::messages::{FetchRequest, FetchResponse};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::replica_manager::Partition;
use crate::router::{encode, ProtocolError, Reply, RequestContext};
use crate::server::Broker;

/// Handles a Fetch request; the reply completes when data is there or the wait is over.
pub fn handle(broker: &Arc<Broker>, ctx: RequestContext, req: FetchRequest) -> Reply {
    let broker = Arc::clone(broker);
    Reply::Pending(Box::pin(async move { fetch(broker, ctx, req).await }))
}

struct Wanted {
    topic_index: usize,
    partition: i32,
    fetch_offset: i64,
    max_bytes: usize,
    part: Option<Arc<Partition>>,
}

async fn fetch(
    broker: Arc<Broker>,
    ctx: RequestContext,
    req: FetchRequest,
) -> Result<Bytes, ProtocolError> {
    let mut wanted = Vec::new();
    let mut topics = Vec::with_capacity(req.topics.len());
    for (ti, t) in req.topics.iter().enumerate() {
        let topic = if ctx.api_version >= 13 {
            broker.replicas.topic_by_id(t.topic_id)
        } else {
            broker.replicas.topic(&t.topic.0)
        };
        topics.push(
            FetchableTopicResponse::default()
                .with_topic(t.topic.clone())
                .with_topic_id(t.topic_id),
        );
        for p in &t.partitions {
            let part = topic.as_ref().and_then(|topic| {
                usize::try_from(p.partition)
                    .ok()
                    .and_then(|i| topic.partitions.get(i))
                    .cloned()
            });
            wanted.push(Wanted {
                topic_index: ti,
                partition: p.partition,
                fetch_offset: p.fetch_offset,
                max_bytes: p.partition_max_bytes.max(0) as usize,
                part,
            });
        }
    }
    let max_bytes = if req.max_bytes <= 0 {
        usize::MAX
    } else {
        req.max_bytes as usize
    };
    let min_bytes = req.min_bytes.max(0) as usize;
    let deadline = Instant::now() + Duration::from_millis(req.max_wait_ms.max(0) as u64);
    let read_committed = req.isolation_level == 1;

    loop {
        // Subscribe before reading, so an append that lands after the read still wakes us.
        let mut watchers: Vec<watch::Receiver<i64>> = wanted
            .iter()
            .filter_map(|w| w.part.as_ref().map(|p| p.watch_end_offset()))
            .collect();
        for w in &mut watchers {
            w.borrow_and_update();
        }
        let (partitions, bytes, errors) = read_once(&wanted, max_bytes, read_committed);
        if bytes >= min_bytes.max(1) || errors || Instant::now() >= deadline {
            let mut response_topics = topics.clone();
            for (ti, pd) in partitions {
                response_topics[ti].partitions.push(pd);
            }
            let response = FetchResponse::default()
                .with_error_code(0)
                .with_session_id(0)
                .with_responses(response_topics);
            return encode(&ctx, &response);
        }
        if bytes >= min_bytes && bytes > 0 {
            continue;
        }
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

/// One pass over the partitions: what is there now, within the byte limits.
fn read_once(
    wanted: &[Wanted],
    max_bytes: usize,
    read_committed: bool,
) -> (Vec<(usize, PartitionData)>, usize, bool) {
    let mut out = Vec::with_capacity(wanted.len());
    let mut total = 0usize;
    let mut errors = false;
    for w in wanted {
        let base = PartitionData::default()
            .with_partition_index(w.partition)
            .with_high_watermark(-1)
            .with_last_stable_offset(-1)
            .with_log_start_offset(-1)
            .with_preferred_read_replica(gregor_protocol::messages::BrokerId(-1))
            .with_aborted_transactions(if read_committed {
                Some(Vec::new())
            } else {
                None
            })
            .with_records(Some(Bytes::new()));
        let Some(part) = &w.part else {
            errors = true;
            out.push((
                w.topic_index,
                base.with_error_code(ErrorCode::UNKNOWN_TOPIC_OR_PARTITION.code()),
            ));
            continue;
        };
        let (log_start, hw) = match part.offsets() {
            Ok(o) => o,
            Err(code) => {
                errors = true;
                out.push((w.topic_index, base.with_error_code(code.code())));
                continue;
            }
        };
        let base = base
            .with_high_watermark(hw)
            .with_last_stable_offset(hw)
            .with_log_start_offset(log_start);
        let budget = w.max_bytes.min(max_bytes.saturating_sub(total));
        // KIP-74: the first partition with data returns at least one batch, whatever its size.
        let result = part.read(w.fetch_offset, budget, total == 0);
        match result {
            Ok(info) => {
                let records = match info.slice {
                    Some(slice) => match slice.read_to_vec() {
                        Ok(v) => Bytes::from(v),
                        Err(_) => {
                            errors = true;
                            out.push((
                                w.topic_index,
                                base.with_error_code(ErrorCode::KAFKA_STORAGE_ERROR.code()),
                            ));
                            continue;
                        }
                    },
                    None => Bytes::new(),
                };
                total += records.len();
                out.push((
                    w.topic_index,
                    base.with_error_code(0).with_records(Some(records)),
                ));
            }
            Err(code) => {
                errors = true;
                out.push((w.topic_index, base.with_error_code(code.code())));
            }
        }
    }
    (out, total, errors)
}
