//! `gregor perf produce`: writes `--num-records` records of `--record-size` random bytes and
//! reports throughput and per-record ack latency, like `kafka-producer-perf-test`.
//!
//! The topic's partitions are dealt out to `--producers` tasks; each task opens one connection
//! per partition leader and keeps up to `--max-in-flight` Produce requests outstanding on it,
//! so throughput is not bounded by round trips. Each request carries one batch per partition of
//! the task. Batches are encoded once up front (distinct random payloads per record in a batch,
//! generated once), so the tool spends its time on the socket, not on encoding.
//!
//! A request carries at most `--max-request-size` bytes (`max.request.size`), so with many
//! partitions a task cycles through them over several requests, as a Kafka producer's sender
//! does. Under `--throughput` each request holds what arrives within `--linger-ms` (at most
//! `--batch-size` per partition) and is sent when its last record is due: the load is paced in
//! linger-sized steps, never in bursts of a whole second. A task that falls behind (all
//! `--max-in-flight` slots taken) sends as soon as it can; how far behind it was is kept as the
//! schedule lag, so a run that could not hold its rate says so.
//!
//! For `gregor perf e2e` the batches are encoded per request instead, with the send time in each
//! record (see [`STAMP_LEN`]).
//!
//! ```text
//! writer ──Produce(corr)──► broker          pending FIFO: (corr, sent_at, records, permit)
//! reader ◄──response(corr)── broker  ──► latency = now - sent_at, recorded once per record
//! ```

use super::stats::{Stats, Window};
use crate::tool::{client_config, ConnectArgs};
use anyhow::{bail, Context};
use bytes::{BufMut, Bytes, BytesMut};
use gregor_client::records::encode_batch;
use gregor_client::{parse_acks, parse_compression, Admin, Compression, NewTopic, ProducerRecord};
use gregor_protocol::error::ErrorCode;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiKey, ProduceRequest, ProduceResponse, RequestHeader, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::OwnedReadHalf;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};

/// Flags of `gregor perf produce`.
#[derive(Debug, Clone, clap::Args)]
pub struct ProducePerfArgs {
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// Topic to write to.
    #[arg(long)]
    pub topic: String,
    /// Records to send in total.
    #[arg(long)]
    pub num_records: u64,
    /// Value size of each record in bytes.
    #[arg(long, default_value_t = 100)]
    pub record_size: usize,
    /// Target records/s over all producers; -1 = unlimited.
    #[arg(long, default_value_t = -1.0, allow_hyphen_values = true)]
    pub throughput: f64,
    /// 0, 1 or all.
    #[arg(long, default_value = "1")]
    pub acks: String,
    /// Create the topic with this many partitions when it does not exist.
    #[arg(long)]
    pub partitions: Option<i32>,
    /// Bytes of record values per batch per partition (`batch.size`).
    #[arg(long, default_value_t = 16384)]
    pub batch_size: usize,
    /// With --throughput, how long a batch may wait to fill (`linger.ms`).
    #[arg(long, default_value_t = 5)]
    pub linger_ms: u64,
    /// none, gzip, snappy, lz4 or zstd.
    #[arg(long, default_value = "none")]
    pub compression: String,
    /// Parallel producers, each its own task and connection(s).
    #[arg(long, default_value_t = 1)]
    pub producers: usize,
    /// Produce requests in flight per connection (`max.in.flight.requests.per.connection`).
    #[arg(long, default_value_t = 5)]
    pub max_in_flight: usize,
    /// Most record bytes in one Produce request (`max.request.size`); at least one batch.
    #[arg(long, default_value_t = 1024 * 1024)]
    pub max_request_size: usize,
    /// Give the records keys `key-00000000` … cycling over this many distinct keys (a load for
    /// compacted topics); without it records have no key.
    #[arg(long)]
    pub key_count: Option<usize>,
}

/// Bytes at the start of every record value that carry the send time in `gregor perf e2e`:
/// microseconds since the Unix epoch, big-endian. The record's CreateTime is the same instant
/// in milliseconds.
pub const STAMP_LEN: usize = 8;

/// One producer task's share of the work against one leader.
#[derive(Debug)]
struct Job {
    addr: String,
    version: i16,
    partitions: Vec<i32>,
    records: u64,
    /// Records/s for this job, `None` when unlimited.
    rate: Option<f64>,
}

/// What every job reads.
#[derive(Debug)]
pub struct Plan {
    topic: String,
    acks: i16,
    compression: Compression,
    record_size: usize,
    /// Records per full batch.
    batch_records: usize,
    linger: Duration,
    max_in_flight: usize,
    max_request_size: usize,
    /// Put the send time in each record (`perf e2e`); batches are then encoded per request.
    stamp: bool,
    /// Random bytes, `batch_records * record_size` long; record i of a batch is slice i.
    payload: Bytes,
    /// `--key-count`: records carry keys cycling over this many.
    key_count: Option<usize>,
    /// Acknowledged records and their ack latency (request written → response read).
    pub stats: Stats,
    /// How late each record was sent against the `--throughput` schedule.
    pub lag: Stats,
}

/// A prepared produce load: the topic exists and every task knows its connection and share.
#[derive(Debug)]
pub struct Load {
    jobs: Vec<Job>,
    pub plan: Arc<Plan>,
}

/// Runs the produce load and prints the summary line.
pub async fn run(args: ProducePerfArgs) -> anyhow::Result<()> {
    let load = prepare(&args, false).await?;
    let plan = load.plan.clone();
    let reporter = spawn_reporter(plan.stats.clone(), "records sent");
    let result = execute(load).await;
    reporter.abort();
    println!("{}", plan.stats.total().line("records sent"));
    if args.throughput > 0.0 {
        eprintln!("{}", lag_line(&plan.lag.total()));
    }
    result
}

/// `send lag behind schedule p50 … max …`: how late records left against `--throughput`.
pub fn lag_line(lag: &Window) -> String {
    let h = &lag.latency_us;
    let ms = |us: u64| us as f64 / 1000.0;
    format!(
        "send lag behind schedule p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        ms(h.value_at_quantile(0.5)),
        ms(h.value_at_quantile(0.99)),
        ms(h.max())
    )
}

/// Creates the topic when needed, looks up the leaders and deals the work out to tasks.
/// With `stamp`, every record value starts with its send time ([`STAMP_LEN`]).
pub async fn prepare(args: &ProducePerfArgs, stamp: bool) -> anyhow::Result<Load> {
    let acks = parse_acks(&args.acks)?;
    let compression = parse_compression(&args.compression)?;
    if args.producers == 0 || args.max_in_flight == 0 {
        bail!("--producers and --max-in-flight must be at least 1");
    }
    if stamp && args.record_size < STAMP_LEN {
        bail!("--record-size must be at least {STAMP_LEN} to carry the send time");
    }
    let bootstrap = &args.connect.bootstrap_server;
    let mut admin = Admin::connect(bootstrap, &client_config(&args.connect)?)
        .await
        .with_context(|| format!("cannot connect to {bootstrap}"))?;
    let meta = ensure_topic(&mut admin, &args.topic, args.partitions).await?;
    let brokers = admin.metadata(None).await?.brokers;

    let mut partitions: Vec<(i32, i32)> = meta
        .partitions
        .iter()
        .map(|p| (p.partition, p.leader))
        .collect();
    partitions.sort_unstable();
    // Deal partitions to producers; with more producers than partitions, they share.
    let n = args.producers;
    let mut shares: Vec<Vec<(i32, i32)>> = vec![Vec::new(); n];
    if n <= partitions.len() {
        for (i, p) in partitions.iter().enumerate() {
            shares[i % n].push(*p);
        }
    } else {
        for (i, share) in shares.iter_mut().enumerate() {
            share.push(partitions[i % partitions.len()]);
        }
    }
    let mut groups: Vec<(i32, Vec<i32>)> = Vec::new();
    for share in shares {
        let mut by_leader: BTreeMap<i32, Vec<i32>> = BTreeMap::new();
        for (p, leader) in share {
            by_leader.entry(leader).or_default().push(p);
        }
        groups.extend(by_leader);
    }
    let total_parts: usize = groups.iter().map(|g| g.1.len()).sum();
    let mut jobs = Vec::new();
    let mut assigned = 0u64;
    let mut seen_parts = 0usize;
    for (leader, parts) in groups {
        let broker = brokers
            .get(&leader)
            .with_context(|| format!("leader {leader} is not in the broker list"))?;
        let addr = broker.addr();
        let conn = admin.cluster().broker(leader).await?;
        // v13 addresses topics by id; names are enough below it.
        let version = conn.version_at_most(ApiKey::Produce, 12)?;
        seen_parts += parts.len();
        let upto = args.num_records * seen_parts as u64 / total_parts as u64;
        let records = upto - assigned;
        assigned = upto;
        let rate = (args.throughput > 0.0)
            .then(|| args.throughput * parts.len() as f64 / total_parts as f64);
        jobs.push(Job {
            addr,
            version,
            partitions: parts,
            records,
            rate,
        });
    }
    drop(admin);

    let batch_records = (args.batch_size / args.record_size.max(1)).max(1);
    let plan = Arc::new(Plan {
        topic: args.topic.clone(),
        acks,
        compression,
        record_size: args.record_size,
        batch_records,
        linger: Duration::from_millis(args.linger_ms),
        max_in_flight: args.max_in_flight,
        max_request_size: args.max_request_size,
        stamp,
        payload: random_bytes(batch_records * args.record_size),
        key_count: args.key_count.filter(|&k| k > 0),
        stats: Stats::new(),
        lag: Stats::new(),
    });
    Ok(Load { jobs, plan })
}

/// Prints a progress line of `stats` to stderr every second until aborted.
pub fn spawn_reporter(stats: Stats, label: &'static str) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.tick().await;
        loop {
            tick.tick().await;
            eprintln!("{}", stats.take_window().line(label));
        }
    })
}

/// Runs every task of `load` to the end; the figures are in `load.plan`.
pub async fn execute(load: Load) -> anyhow::Result<()> {
    let mut tasks = Vec::new();
    for job in load.jobs {
        let plan = load.plan.clone();
        tasks.push(tokio::spawn(async move { run_job(job, plan).await }));
    }
    let mut first_err = None;
    for t in tasks {
        let r = match t.await {
            Ok(r) => r,
            Err(e) => Err(anyhow::anyhow!("producer task failed: {e}")),
        };
        if let Err(e) = r {
            first_err.get_or_insert(e);
        }
    }
    match first_err {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// Creates `topic` when it does not exist, then waits until every partition has a leader.
async fn ensure_topic(
    admin: &mut Admin,
    topic: &str,
    partitions: Option<i32>,
) -> anyhow::Result<gregor_client::TopicMetadata> {
    if admin.cluster().topic(topic, true).await.is_err() {
        let mut nt = NewTopic::new(topic);
        nt.partitions = partitions;
        match admin.create_topic(nt).await {
            Ok(_) => {}
            Err(e) if e.code() == Some(ErrorCode::TOPIC_ALREADY_EXISTS) => {}
            Err(e) => return Err(e).with_context(|| format!("cannot create topic {topic}")),
        }
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = admin.cluster().topic(topic, true).await;
        match r {
            Ok(t) if !t.partitions.is_empty() && t.partitions.iter().all(|p| p.leader >= 0) => {
                return Ok(t)
            }
            Err(e) if !e.is_retriable() => return Err(e.into()),
            _ if Instant::now() > deadline => bail!("topic {topic} has no leaders after 10 s"),
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// A request on the wire, waiting for its response.
struct InFlight {
    correlation_id: i32,
    sent_at: Instant,
    records: u64,
    /// Held until the response arrives: bounds the requests in flight.
    _permit: Option<OwnedSemaphorePermit>,
}

async fn run_job(job: Job, plan: Arc<Plan>) -> anyhow::Result<()> {
    let stream = TcpStream::connect(&job.addr)
        .await
        .with_context(|| format!("cannot connect to {}", job.addr))?;
    let _ = stream.set_nodelay(true);
    let (read, mut write) = stream.into_split();

    // Under a rate limit a batch holds what arrives within linger.ms, like a real producer, and
    // a request holds what arrives over all the task's partitions in that time.
    let (per_batch, request_records) = match job.rate {
        Some(rate) => {
            let linger = plan.linger.as_secs_f64();
            let per_part = rate / job.partitions.len() as f64 * linger;
            (
                (per_part.ceil() as usize).clamp(1, plan.batch_records),
                (rate * linger).ceil().max(1.0) as u64,
            )
        }
        None => (plan.batch_records, u64::MAX),
    };
    let mut batches: HashMap<usize, Bytes> = HashMap::new();
    // With --key-count: every batch a different slice of the key cycle (built once, reused).
    let mut keyed: HashMap<usize, Vec<Bytes>> = HashMap::new();
    let mut keyed_next = 0usize;

    let (tx, rx) = mpsc::unbounded_channel::<InFlight>();
    let reader = tokio::spawn(read_responses(read, rx, plan.clone(), job.version));
    let permits = Arc::new(Semaphore::new(plan.max_in_flight));
    let client_id = StrBytes::from_static_str("gregor-perf");
    let start = Instant::now();
    let mut sent = 0u64;
    let mut correlation_id = 0i32;
    // Next partition (index into job.partitions) to put in a request.
    let mut cursor = 0usize;
    while sent < job.records {
        // Which partitions get how many records: round robin from `cursor`, each at most once,
        // until the request is full (max.request.size, or what linger.ms collects).
        let mut shares: Vec<(i32, usize)> = Vec::new();
        let mut in_request = 0u64;
        let mut request_bytes = 0usize;
        for _ in 0..job.partitions.len() {
            let left = job.records - sent - in_request;
            if left == 0 {
                break;
            }
            let n = per_batch.min(left as usize);
            let bytes = n * plan.record_size;
            if !shares.is_empty()
                && (request_bytes + bytes > plan.max_request_size || in_request >= request_records)
            {
                break;
            }
            shares.push((job.partitions[cursor], n));
            cursor = (cursor + 1) % job.partitions.len();
            in_request += n as u64;
            request_bytes += bytes;
        }
        let due = job
            .rate
            .map(|rate| start + Duration::from_secs_f64((sent + in_request) as f64 / rate));
        if let Some(due) = due {
            if due > Instant::now() {
                tokio::time::sleep_until(due.into()).await;
            }
        }
        let permit = if plan.acks != 0 {
            Some(permits.clone().acquire_owned().await?)
        } else {
            None
        };
        // The send time: after pacing and after a slot is free, right before the write.
        let sent_at = Instant::now();
        let now = unix_now();
        let now_ms = i64::try_from(now.as_millis()).unwrap_or(i64::MAX);
        let mut td = TopicProduceData::default();
        td.name = TopicName(StrBytes::from_string(plan.topic.clone()));
        for (p, n) in shares {
            let batch = if plan.stamp {
                let us = u64::try_from(now.as_micros()).unwrap_or(u64::MAX);
                build_batch(&plan, n, now_ms, Some(us))?
            } else if let Some(keys) = plan.key_count {
                let list = match keyed.entry(n) {
                    std::collections::hash_map::Entry::Occupied(e) => e.into_mut(),
                    std::collections::hash_map::Entry::Vacant(e) => {
                        let count = keys.div_ceil(n).max(1);
                        let built = (0..count)
                            .map(|j| build_keyed_batch(&plan, n, j * n, keys, now_ms))
                            .collect::<anyhow::Result<Vec<_>>>()?;
                        e.insert(built)
                    }
                };
                keyed_next = keyed_next.wrapping_add(1);
                match list.get(keyed_next % list.len().max(1)) {
                    Some(b) => b.clone(),
                    None => build_keyed_batch(&plan, n, 0, keys, now_ms)?,
                }
            } else if let Some(b) = batches.get(&n) {
                b.clone()
            } else {
                let b = build_batch(&plan, n, now_ms, None)?;
                batches.insert(n, b.clone());
                b
            };
            td.partition_data.push(
                PartitionProduceData::default()
                    .with_index(p)
                    .with_records(Some(batch)),
            );
        }
        if let Some(due) = due {
            plan.lag
                .record(in_request, 0, Some(sent_at.saturating_duration_since(due)));
        }
        let req = ProduceRequest::default()
            .with_acks(plan.acks)
            .with_timeout_ms(30_000)
            .with_topic_data(vec![td]);
        let frame = encode_frame(&req, job.version, correlation_id, &client_id)?;
        if plan.acks != 0 {
            let inflight = InFlight {
                correlation_id,
                sent_at,
                records: in_request,
                _permit: permit,
            };
            if tx.send(inflight).is_err() {
                break; // the reader stopped on an error; it reports it below
            }
        }
        write
            .write_all(&frame)
            .await
            .with_context(|| format!("writing to {}", job.addr))?;
        if plan.acks == 0 {
            plan.stats
                .record(in_request, in_request * plan.record_size as u64, None);
        }
        correlation_id = correlation_id.wrapping_add(1);
        sent += in_request;
    }
    drop(tx);
    match reader.await {
        Ok(r) => r,
        Err(e) => Err(anyhow::anyhow!("response reader failed: {e}")),
    }
}

/// Time since the Unix epoch (zero if the clock is before it).
pub fn unix_now() -> Duration {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
}

/// Encodes `n` records (slices of the shared random payload) as one RecordBatch with CreateTime
/// `now_ms`. With `stamp_us`, each value starts with it instead of random bytes ([`STAMP_LEN`]).
fn build_batch(plan: &Plan, n: usize, now_ms: i64, stamp_us: Option<u64>) -> anyhow::Result<Bytes> {
    let size = plan.record_size;
    let values = match stamp_us {
        None => plan.payload.slice(..n * size),
        Some(us) => {
            let mut v = BytesMut::from(&plan.payload[..n * size]);
            for record in v.chunks_exact_mut(size) {
                record[..STAMP_LEN].copy_from_slice(&us.to_be_bytes());
            }
            v.freeze()
        }
    };
    let records: Vec<ProducerRecord> = (0..n)
        .map(|i| ProducerRecord {
            timestamp: Some(now_ms),
            ..ProducerRecord::value(values.slice(i * size..(i + 1) * size))
        })
        .collect();
    let refs: Vec<&ProducerRecord> = records.iter().collect();
    Ok(encode_batch(&refs, plan.compression, now_ms)?)
}

/// [`build_batch`] with keys: record i gets `key-<(first + i) % keys>`.
fn build_keyed_batch(
    plan: &Plan,
    n: usize,
    first: usize,
    keys: usize,
    now_ms: i64,
) -> anyhow::Result<Bytes> {
    let size = plan.record_size;
    let values = plan.payload.slice(..n * size);
    let records: Vec<ProducerRecord> = (0..n)
        .map(|i| ProducerRecord {
            timestamp: Some(now_ms),
            key: Some(Bytes::from(format!("key-{:08}", (first + i) % keys))),
            ..ProducerRecord::value(values.slice(i * size..(i + 1) * size))
        })
        .collect();
    let refs: Vec<&ProducerRecord> = records.iter().collect();
    Ok(encode_batch(&refs, plan.compression, now_ms)?)
}

/// Reads Produce responses in order, checks them and records their latency.
async fn read_responses(
    mut read: OwnedReadHalf,
    mut pending: mpsc::UnboundedReceiver<InFlight>,
    plan: Arc<Plan>,
    version: i16,
) -> anyhow::Result<()> {
    let header_version = ProduceResponse::header_version(version);
    while let Some(req) = pending.recv().await {
        let mut len = [0u8; 4];
        read.read_exact(&mut len)
            .await
            .context("reading a Produce response")?;
        let len = i32::from_be_bytes(len);
        if !(0..=64 * 1024 * 1024).contains(&len) {
            bail!("Produce response frame of {len} bytes");
        }
        let mut buf = BytesMut::zeroed(len as usize);
        read.read_exact(&mut buf)
            .await
            .context("reading a Produce response")?;
        let latency = req.sent_at.elapsed();
        let mut body = buf.freeze();
        let header = ResponseHeader::decode(&mut body, header_version)
            .map_err(|e| anyhow::anyhow!("Produce response header: {e}"))?;
        if header.correlation_id != req.correlation_id {
            bail!(
                "response correlation id {} does not match request {}",
                header.correlation_id,
                req.correlation_id
            );
        }
        let resp = ProduceResponse::decode(&mut body, version)
            .map_err(|e| anyhow::anyhow!("Produce response v{version}: {e}"))?;
        for t in &resp.responses {
            for p in &t.partition_responses {
                if p.error_code != 0 {
                    bail!(
                        "produce to {}-{} failed: {} {}",
                        plan.topic,
                        p.index,
                        ErrorCode(p.error_code),
                        p.error_message.as_deref().unwrap_or("")
                    );
                }
            }
        }
        plan.stats.record(
            req.records,
            req.records * plan.record_size as u64,
            Some(latency),
        );
    }
    Ok(())
}

/// A whole request frame: size prefix, header at the version the API requires, body.
fn encode_frame<R: Request>(
    req: &R,
    version: i16,
    correlation_id: i32,
    client_id: &StrBytes,
) -> anyhow::Result<Bytes> {
    let header = RequestHeader::default()
        .with_request_api_key(R::KEY)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(client_id.clone()));
    let mut buf = BytesMut::with_capacity(4096);
    buf.put_i32(0);
    header
        .encode(&mut buf, R::header_version(version))
        .map_err(|e| anyhow::anyhow!("request header: {e}"))?;
    req.encode(&mut buf, version)
        .map_err(|e| anyhow::anyhow!("Produce v{version}: {e}"))?;
    let len = i32::try_from(buf.len() - 4).context("request larger than 2 GiB")?;
    buf[..4].copy_from_slice(&len.to_be_bytes());
    Ok(buf.freeze())
}

/// `n` pseudo-random bytes (xorshift64*; incompressible enough for codecs, no extra crate).
fn random_bytes(n: usize) -> Bytes {
    let mut state = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0x9E37_79B9_7F4A_7C15)
        | 1;
    let mut out = BytesMut::with_capacity(n + 8);
    while out.len() < n {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        out.put_u64(state.wrapping_mul(0x2545_F491_4F6C_DD1D));
    }
    out.truncate(n);
    out.freeze()
}
