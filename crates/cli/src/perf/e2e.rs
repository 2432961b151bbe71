//! `gregor perf e2e`: a paced producer and a consumer on the same topic in one process,
//! reporting produce (ack) latency and end-to-end latency, like Kafka's `EndToEndLatency` tool
//! but at a fixed `--throughput` instead of one record at a time.
//!
//! ```text
//! consumer: assign(topic, latest) ──────────────────────────── poll ─► now − stamp ─► e2e histogram
//!                  │ (positioned before the first send)          ▲
//! producer:        └─► paced Produce, value[0..8] = send time µs ─┘ broker ─► ack ─► produce histogram
//! ```
//!
//! The send time travels in the first [`STAMP_LEN`] bytes of each value (µs since the Unix
//! epoch, big-endian); CreateTime carries the same instant in ms. It is taken right before the
//! request is written, so the end-to-end figure is broker + network + consumer time, like the
//! produce figure (request written → ack). Time a record spends waiting for a free in-flight slot
//! is not in either; it shows as the schedule lag on the last line.

use super::produce::{self, lag_line, spawn_reporter, unix_now, ProducePerfArgs, STAMP_LEN};
use super::stats::Stats;
use crate::tool::client_config;
use anyhow::{bail, Context};
use gregor_client::{Consumer, ConsumerConfig, OffsetSpec};
use std::time::{Duration, Instant};

/// Flags of `gregor perf e2e`.
#[derive(Debug, Clone, clap::Args)]
pub struct E2ePerfArgs {
    #[command(flatten)]
    pub produce: ProducePerfArgs,
    /// The consumer's `fetch.max.wait.ms`: how long the broker may hold an empty Fetch.
    #[arg(long, default_value_t = 500)]
    pub fetch_max_wait_ms: u64,
    /// Give up when the consumer gets no record for this long.
    #[arg(long, default_value_t = 10_000)]
    pub timeout_ms: u64,
}

/// What the consumer saw besides latencies.
#[derive(Debug, Default)]
struct Received {
    /// Records whose stamp is later than their receipt (the wall clock stepped back).
    clock_went_back: u64,
}

/// Runs the producer and the consumer and prints three lines: produce, end-to-end and the
/// producer's schedule lag.
pub async fn run(args: E2ePerfArgs) -> anyhow::Result<()> {
    let load = produce::prepare(&args.produce, true).await?;
    let plan = load.plan.clone();

    let bootstrap = &args.produce.connect.bootstrap_server;
    let config = ConsumerConfig {
        max_wait: Duration::from_millis(args.fetch_max_wait_ms),
        ..ConsumerConfig::default()
    };
    let mut consumer = Consumer::connect(bootstrap, &client_config(&args.produce.connect)?, config)
        .await
        .with_context(|| format!("cannot connect to {bootstrap}"))?;
    // Positioned at the end before the first record is sent: every record after is ours, and
    // neither connection set-up nor a first metadata round trip is in the figures.
    consumer
        .assign(&args.produce.topic, None, OffsetSpec::Latest)
        .await?;

    let e2e = Stats::new();
    let consumer_task = tokio::spawn(consume(
        consumer,
        args.produce.num_records,
        e2e.clone(),
        Duration::from_millis(args.timeout_ms),
    ));
    let reporters = [
        spawn_reporter(plan.stats.clone(), "records sent"),
        spawn_reporter(e2e.clone(), "records received end-to-end"),
    ];
    let produced = produce::execute(load).await;
    let received = match produced {
        Ok(()) => match consumer_task.await {
            Ok(r) => r,
            Err(e) => Err(anyhow::anyhow!("consumer task failed: {e}")),
        },
        Err(e) => {
            consumer_task.abort();
            Err(e)
        }
    };
    for r in reporters {
        r.abort();
    }
    let received = received?;
    println!("{}", plan.stats.total().line("records sent"));
    println!("{}", e2e.total().line("records received end-to-end"));
    let mut lag = lag_line(&plan.lag.total());
    if received.clock_went_back > 0 {
        lag.push_str(&format!(
            "; {} records stamped after their receipt (clock stepped back), counted as 0",
            received.clock_went_back
        ));
    }
    println!("{lag}");
    Ok(())
}

/// Polls until `want` stamped records have arrived and records their end-to-end latency.
async fn consume(
    mut consumer: Consumer,
    want: u64,
    stats: Stats,
    idle_limit: Duration,
) -> anyhow::Result<Received> {
    let mut out = Received::default();
    let mut got = 0u64;
    let mut last_progress = Instant::now();
    while got < want {
        let batch = consumer.poll().await?;
        let now_us = u64::try_from(unix_now().as_micros()).unwrap_or(u64::MAX);
        if batch.is_empty() {
            if last_progress.elapsed() > idle_limit {
                bail!(
                    "no records for {} ms after {got} of {want} records",
                    idle_limit.as_millis()
                );
            }
            continue;
        }
        last_progress = Instant::now();
        for r in batch {
            if got == want {
                break;
            }
            let Some(value) = r.value.as_ref() else {
                bail!("record {}-{} has no value", r.partition, r.offset);
            };
            let Some(stamp) = value.get(..STAMP_LEN) else {
                bail!(
                    "record {}-{} is {} bytes, too short for a send time (another writer?)",
                    r.partition,
                    r.offset,
                    value.len()
                );
            };
            let mut be = [0u8; STAMP_LEN];
            be.copy_from_slice(stamp);
            let sent_us = u64::from_be_bytes(be);
            if sent_us > now_us {
                out.clock_went_back += 1;
            }
            let latency = Duration::from_micros(now_us.saturating_sub(sent_us));
            stats.record(1, value.len() as u64, Some(latency));
            got += 1;
        }
    }
    Ok(out)
}
