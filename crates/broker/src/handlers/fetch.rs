//! Fetch (key 1): reads whole batches from each requested partition, and long-polls: when less
//! than `min_bytes` is available the reply waits (Kafka's DelayedFetch) until an append to one
//! of the partitions wakes it or `max_wait_ms` passes.
//!
//! The response is encoded by hand (the fields of v4–v12) so that record data stays in the
//! segment files: each partition's records are a file range sent with sendfile, never copied
//! through user space. `tests::hand_encoding_matches_kafka_protocol` pins the encoding to the
//! `kafka-protocol` crate's for every version served.

use std::sync::Arc;
use std::time::Duration;

use bytes::BufMut;
use futures::future::select_all;
use gregor_protocol::error::ErrorCode;
use gregor_protocol::messages::FetchRequest;
use gregor_storage::FileSlice;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::replica_manager::Partition;
use crate::response::{Chunk, ChunkedResponse};
use crate::router::{Reply, RequestContext};
use crate::server::Broker;

/// Handles a Fetch request; the reply completes when data is there or the wait is over.
pub fn handle(broker: &Arc<Broker>, ctx: RequestContext, req: FetchRequest) -> Reply {
    let broker = Arc::clone(broker);
    Reply::PendingChunks(Box::pin(async move { Ok(fetch(broker, ctx, req).await) }))
}

struct Wanted {
    topic_index: usize,
    partition: i32,
    fetch_offset: i64,
    max_bytes: usize,
    part: Option<Arc<Partition>>,
}

/// One partition's answer.
#[derive(Debug, Clone)]
pub(crate) struct PartitionResult {
    pub topic_index: usize,
    pub partition: i32,
    pub error_code: i16,
    pub high_watermark: i64,
    pub log_start_offset: i64,
    pub records: Option<FileSlice>,
}

async fn fetch(broker: Arc<Broker>, ctx: RequestContext, req: FetchRequest) -> Vec<Chunk> {
    let mut wanted = Vec::new();
    let mut topics = Vec::with_capacity(req.topics.len());
    for (ti, t) in req.topics.iter().enumerate() {
        let topic = if ctx.api_version >= 13 {
            broker.replicas.topic_by_id(t.topic_id)
        } else {
            broker.replicas.topic(&t.topic.0)
        };
        topics.push(t.topic.0.to_string());
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
    let min_bytes = req.min_bytes.max(1) as usize;
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
        let (results, bytes, errors) = read_once(&wanted, max_bytes);
        if bytes >= min_bytes || errors || Instant::now() >= deadline {
            return encode_response(&ctx, &topics, &results, read_committed);
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
fn read_once(wanted: &[Wanted], max_bytes: usize) -> (Vec<PartitionResult>, usize, bool) {
    let mut out = Vec::with_capacity(wanted.len());
    let mut total = 0usize;
    let mut errors = false;
    for w in wanted {
        let mut r = PartitionResult {
            topic_index: w.topic_index,
            partition: w.partition,
            error_code: 0,
            high_watermark: -1,
            log_start_offset: -1,
            records: None,
        };
        let Some(part) = &w.part else {
            errors = true;
            r.error_code = ErrorCode::UNKNOWN_TOPIC_OR_PARTITION.code();
            out.push(r);
            continue;
        };
        match part.offsets() {
            Ok((start, hw)) => {
                r.log_start_offset = start;
                r.high_watermark = hw;
            }
            Err(code) => {
                errors = true;
                r.error_code = code.code();
                out.push(r);
                continue;
            }
        }
        let budget = w.max_bytes.min(max_bytes.saturating_sub(total));
        // KIP-74: the first partition with data returns at least one batch, whatever its size.
        match part.read(w.fetch_offset, budget, total == 0) {
            Ok(info) => {
                if let Some(slice) = info.slice {
                    total += slice.len;
                    r.records = Some(slice);
                }
            }
            Err(code) => {
                errors = true;
                r.error_code = code.code();
            }
        }
        out.push(r);
    }
    (out, total, errors)
}

fn put_uvarint(b: &mut bytes::BytesMut, mut v: u64) {
    while v >= 0x80 {
        b.put_u8((v as u8 & 0x7f) | 0x80);
        v >>= 7;
    }
    b.put_u8(v as u8);
}

fn put_len(b: &mut bytes::BytesMut, flexible: bool, n: usize) {
    if flexible {
        put_uvarint(b, n as u64 + 1);
    } else {
        b.put_i32(n as i32);
    }
}

/// Encodes a FetchResponse (v4–v12) with its header and size prefix; records as file ranges.
pub(crate) fn encode_response(
    ctx: &RequestContext,
    topics: &[String],
    results: &[PartitionResult],
    read_committed: bool,
) -> Vec<Chunk> {
    let v = ctx.api_version;
    let flex = v >= 12;
    let mut r = ChunkedResponse::new();
    {
        let b = r.buf();
        b.put_i32(ctx.correlation_id);
        if flex {
            put_uvarint(b, 0); // response header tagged fields
        }
        b.put_i32(0); // throttle_time_ms
        if v >= 7 {
            b.put_i16(0); // error_code
            b.put_i32(0); // session_id: sessionless
        }
        put_len(b, flex, topics.len());
    }
    for (ti, name) in topics.iter().enumerate() {
        let parts: Vec<&PartitionResult> = results.iter().filter(|p| p.topic_index == ti).collect();
        {
            let b = r.buf();
            if flex {
                put_uvarint(b, name.len() as u64 + 1);
            } else {
                b.put_i16(name.len() as i16);
            }
            b.put_slice(name.as_bytes());
            put_len(b, flex, parts.len());
        }
        for p in parts {
            let len = p.records.as_ref().map_or(0, |s| s.len);
            {
                let b = r.buf();
                b.put_i32(p.partition);
                b.put_i16(p.error_code);
                b.put_i64(p.high_watermark);
                b.put_i64(p.high_watermark); // last_stable_offset: no transactions
                if v >= 5 {
                    b.put_i64(p.log_start_offset);
                }
                // aborted_transactions: empty for read_committed, null otherwise.
                match (read_committed, flex) {
                    (true, true) => put_uvarint(b, 1),
                    (true, false) => b.put_i32(0),
                    (false, true) => put_uvarint(b, 0),
                    (false, false) => b.put_i32(-1),
                }
                if v >= 11 {
                    b.put_i32(-1); // preferred_read_replica
                }
                put_len(b, flex, len);
            }
            if let Some(slice) = &p.records {
                r.push_file(slice.clone());
            }
            if flex {
                put_uvarint(r.buf(), 0); // partition tagged fields
            }
        }
        if flex {
            put_uvarint(r.buf(), 0); // topic tagged fields
        }
    }
    if flex {
        put_uvarint(r.buf(), 0); // top-level tagged fields
    }
    r.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use gregor_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
    use gregor_protocol::messages::{ApiKey, BrokerId, FetchResponse, TopicName};
    use gregor_protocol::protocol::StrBytes;
    use std::io::Write;

    #[test]
    fn hand_encoding_matches_kafka_protocol() {
        let mut file = tempfile::tempfile().expect("tempfile");
        let data = gregor_protocol::batch::encode_simple_batch(1, &[(None, Some(&b"hello"[..]))]);
        file.write_all(b"xxxx").expect("write");
        file.write_all(&data).expect("write");
        let file = Arc::new(file);
        let slice = FileSlice {
            file,
            position: 4,
            len: data.len(),
        };
        for v in 4..=12 {
            for read_committed in [false, true] {
                let ctx = RequestContext {
                    api: ApiKey::Fetch,
                    api_version: v,
                    correlation_id: 42,
                    client_id: None,
                    client_host: String::new(),
                };
                let results = vec![
                    PartitionResult {
                        topic_index: 0,
                        partition: 0,
                        error_code: 0,
                        high_watermark: 10,
                        log_start_offset: 0,
                        records: Some(slice.clone()),
                    },
                    PartitionResult {
                        topic_index: 0,
                        partition: 1,
                        error_code: 1,
                        high_watermark: 5,
                        log_start_offset: 2,
                        records: None,
                    },
                ];
                let ours = crate::response::flatten(&encode_response(
                    &ctx,
                    &["t".to_string()],
                    &results,
                    read_committed,
                ))
                .expect("flatten");
                let partition = |p: &PartitionResult, records: Bytes| {
                    PartitionData::default()
                        .with_partition_index(p.partition)
                        .with_error_code(p.error_code)
                        .with_high_watermark(p.high_watermark)
                        .with_last_stable_offset(p.high_watermark)
                        .with_log_start_offset(p.log_start_offset)
                        .with_aborted_transactions(read_committed.then(Vec::new))
                        .with_preferred_read_replica(BrokerId(-1))
                        .with_records(Some(records))
                };
                let theirs =
                    FetchResponse::default().with_responses(vec![FetchableTopicResponse::default(
                    )
                    .with_topic(TopicName(StrBytes::from_static_str("t")))
                    .with_partitions(vec![
                        partition(&results[0], Bytes::from(data.clone())),
                        partition(&results[1], Bytes::new()),
                    ])]);
                let theirs = crate::router::encode(&ctx, &theirs).expect("encode");
                assert_eq!(ours, theirs, "fetch v{v} read_committed={read_committed}");
            }
        }
    }
}
