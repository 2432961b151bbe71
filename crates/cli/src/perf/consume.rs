//! `gregor perf consume`: reads `--num-records` records of a topic from the earliest offset of
//! every partition and reports throughput, like `kafka-consumer-perf-test`.

use super::stats::MB;
use crate::tool::{client_config, ConnectArgs};
use anyhow::{bail, Context};
use gregor_client::{Consumer, ConsumerConfig, OffsetSpec};
use std::time::{Duration, Instant};

/// Flags of `gregor perf consume`.
#[derive(Debug, Clone, clap::Args)]
pub struct ConsumePerfArgs {
    #[command(flatten)]
    pub connect: ConnectArgs,
    /// Topic to read.
    #[arg(long)]
    pub topic: String,
    /// Stop after this many records.
    #[arg(long)]
    pub num_records: u64,
    /// `fetch.max.bytes`: the most data one Fetch response may carry.
    #[arg(long, default_value_t = 50 * 1024 * 1024)]
    pub fetch_max_bytes: i32,
    /// `max.partition.fetch.bytes`.
    #[arg(long, default_value_t = 4 * 1024 * 1024)]
    pub max_partition_fetch_bytes: i32,
    /// Give up when no record arrives for this long.
    #[arg(long, default_value_t = 10_000)]
    pub timeout_ms: u64,
}

/// Runs the consume load and prints the summary line.
pub async fn run(args: ConsumePerfArgs) -> anyhow::Result<()> {
    let config = ConsumerConfig {
        max_bytes: args.fetch_max_bytes,
        partition_max_bytes: args.max_partition_fetch_bytes,
        ..ConsumerConfig::default()
    };
    let bootstrap = &args.connect.bootstrap_server;
    let mut consumer = Consumer::connect(bootstrap, &client_config(&args.connect)?, config)
        .await
        .with_context(|| format!("cannot connect to {bootstrap}"))?;
    consumer
        .assign(&args.topic, None, OffsetSpec::Earliest)
        .await?;
    let start = Instant::now();
    let idle_limit = Duration::from_millis(args.timeout_ms);
    let mut last_progress = Instant::now();
    let mut last_report = Instant::now();
    let (mut records, mut bytes) = (0u64, 0u64);
    let (mut window_records, mut window_bytes) = (0u64, 0u64);
    while records < args.num_records {
        let batch = consumer.poll().await?;
        if batch.is_empty() {
            if last_progress.elapsed() > idle_limit {
                bail!(
                    "no records for {} ms after {records} of {} records",
                    args.timeout_ms,
                    args.num_records
                );
            }
        } else {
            last_progress = Instant::now();
        }
        for r in batch {
            if records == args.num_records {
                break;
            }
            let size =
                r.key.as_ref().map_or(0, |k| k.len()) + r.value.as_ref().map_or(0, |v| v.len());
            records += 1;
            bytes += size as u64;
            window_records += 1;
            window_bytes += size as u64;
        }
        let since = last_report.elapsed();
        if since >= Duration::from_secs(1) {
            let secs = since.as_secs_f64();
            eprintln!(
                "{window_records} records consumed, {:.1} records/sec ({:.2} MB/sec)",
                window_records as f64 / secs,
                window_bytes as f64 / MB / secs
            );
            last_report = Instant::now();
            window_records = 0;
            window_bytes = 0;
        }
    }
    let secs = start.elapsed().as_secs_f64().max(1e-9);
    println!(
        "{records} records consumed, {:.2} MB, {:.1} records/sec, {:.2} MB/sec, {secs:.2} s elapsed",
        bytes as f64 / MB,
        records as f64 / secs,
        bytes as f64 / MB / secs
    );
    Ok(())
}
