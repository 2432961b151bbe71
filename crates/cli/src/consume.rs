//! `gregor consume TOPIC`: reads one partition or all of them (no consumer group), from the end
//! by default, `--from-beginning`, or `--offset`. Each record is printed through a kcat-style
//! template. Exits after `--max-messages`, or after `--timeout-ms` without a new record.
//!
//! With `--group G` it is a member of consumer group G instead: the group assigns partitions,
//! each starts at the group's committed offset (else the end, or the start with
//! `--from-beginning`), offsets are committed as records are printed and on exit, and the
//! member leaves the group on exit, including on Ctrl-C.

use crate::output::RecordFormat;
use crate::tool::{client_config, ConnectArgs};
use anyhow::Context;
use gregor_client::{
    Assignor, Consumer, ConsumerConfig, GroupConsumer, GroupConsumerConfig, OffsetSpec,
};
use std::io::Write;
use std::time::{Duration, Instant};

/// Flags of `gregor consume`.
#[derive(Debug, clap::Args)]
pub struct ConsumeArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// Topic to read.
    topic: String,
    /// Start at the earliest offset (same as --offset earliest).
    #[arg(long, conflicts_with = "offset")]
    from_beginning: bool,
    /// Read only this partition (default: all partitions of the topic).
    #[arg(long, conflicts_with = "group")]
    partition: Option<i32>,
    /// Start offset: a number, earliest, latest, or @TIMESTAMP_MS (default: latest).
    #[arg(long, conflicts_with = "group")]
    offset: Option<String>,
    /// Consume as a member of this consumer group (committed offsets, rebalancing).
    #[arg(long)]
    group: Option<String>,
    /// Partition assignor of the group member: range or roundrobin.
    #[arg(long, default_value = "range", requires = "group")]
    assignor: String,
    /// Exit after this many records.
    #[arg(long)]
    max_messages: Option<u64>,
    /// Output template: %t topic, %p partition, %o offset, %k key, %v value, %T timestamp,
    /// %h headers, %K/%S key/value length, %% and \n \t escapes. A newline ends each record.
    #[arg(long, default_value = "%v")]
    format: String,
    /// Exit (successfully) when no record arrives for this long.
    #[arg(long)]
    timeout_ms: Option<u64>,
}

/// Runs `gregor consume`.
pub async fn run(a: ConsumeArgs) -> anyhow::Result<()> {
    let format = RecordFormat::parse(&a.format)?;
    let start = if a.from_beginning {
        OffsetSpec::Earliest
    } else {
        match &a.offset {
            Some(o) => OffsetSpec::parse(o)?,
            None => OffsetSpec::Latest,
        }
    };
    let timeout = a.timeout_ms.map(Duration::from_millis);
    let mut config = ConsumerConfig::default();
    if let Some(t) = timeout {
        // Keep one fetch shorter than the idle timeout so the exit is timely.
        config.max_wait = config.max_wait.min(t.max(Duration::from_millis(10)));
    }
    if let Some(group) = a.group.clone() {
        return run_group(a, group, format, config).await;
    }
    let mut consumer = Consumer::connect(
        &a.connect.bootstrap_server,
        &client_config(&a.connect)?,
        config,
    )
    .await
    .with_context(|| format!("cannot reach the cluster at {}", a.connect.bootstrap_server))?;
    let partitions = a.partition.map(|p| vec![p]);
    consumer
        .assign(&a.topic, partitions.as_deref(), start)
        .await?;

    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut count = 0u64;
    let mut last_record = Instant::now();
    let max = a.max_messages.unwrap_or(u64::MAX);
    'outer: while count < max {
        let records = consumer.poll().await?;
        if records.is_empty() {
            if timeout.is_some_and(|t| last_record.elapsed() >= t) {
                break;
            }
            continue;
        }
        last_record = Instant::now();
        for r in &records {
            if let Err(e) = format.write(&mut out, r) {
                return broken_pipe_is_fine(e);
            }
            count += 1;
            if count >= max {
                break 'outer;
            }
        }
        if let Err(e) = out.flush() {
            return broken_pipe_is_fine(e);
        }
    }
    if let Err(e) = out.flush() {
        return broken_pipe_is_fine(e);
    }
    eprintln!("Processed a total of {count} messages");
    Ok(())
}

/// `gregor consume --group`: a group member until `--max-messages`, `--timeout-ms` idle, or
/// Ctrl-C; then it commits and leaves the group.
async fn run_group(
    a: ConsumeArgs,
    group: String,
    format: RecordFormat,
    fetch: ConsumerConfig,
) -> anyhow::Result<()> {
    let assignor = Assignor::from_name(&a.assignor)
        .with_context(|| format!("unknown assignor {:?} (range or roundrobin)", a.assignor))?;
    let mut config = GroupConsumerConfig::new(group, vec![a.topic.clone()]);
    config.assignors = vec![assignor];
    config.session_timeout = Duration::from_secs(10);
    config.rebalance_timeout = Duration::from_secs(30);
    config.auto_offset_reset = if a.from_beginning {
        OffsetSpec::Earliest
    } else {
        OffsetSpec::Latest
    };
    config.fetch = fetch;
    let max = a.max_messages.unwrap_or(u64::MAX);
    config.max_poll_records = usize::try_from(max).unwrap_or(usize::MAX).min(500);
    let timeout = a.timeout_ms.map(Duration::from_millis);

    let bootstrap = a.connect.bootstrap_server.clone();
    let mut consumer = GroupConsumer::join(&bootstrap, &client_config(&a.connect)?, config)
        .await
        .with_context(|| format!("cannot join the group through {bootstrap}"))?;
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::new(stdout.lock());
    let mut count = 0u64;
    let mut last_record = Instant::now();
    let mut result = Ok(());
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    while count < max {
        consumer.set_max_poll_records(usize::try_from(max - count).unwrap_or(usize::MAX).min(500));
        let records = tokio::select! {
            r = consumer.poll() => r,
            _ = &mut ctrl_c => break,
        };
        let records = match records {
            Ok(r) => r,
            Err(e) => {
                result = Err(e.into());
                break;
            }
        };
        if records.is_empty() {
            if timeout.is_some_and(|t| last_record.elapsed() >= t) {
                break;
            }
            continue;
        }
        last_record = Instant::now();
        // poll hands out at most what is still wanted, so every record is printed (and counts
        // as consumed for the commit).
        for r in &records {
            if let Err(e) = format.write(&mut out, r) {
                result = broken_pipe_is_fine(e);
                break;
            }
            count += 1;
        }
        if let Err(e) = out.flush() {
            result = broken_pipe_is_fine(e);
            break;
        }
        if result.is_err() {
            break;
        }
    }
    let _ = out.flush();
    let closed = consumer
        .close()
        .await
        .context("cannot commit and leave the group");
    eprintln!("Processed a total of {count} messages");
    result.and(closed)
}

/// A reader that went away (`| head`) ends the tool quietly; other write errors are errors.
fn broken_pipe_is_fine(e: std::io::Error) -> anyhow::Result<()> {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        Ok(())
    } else {
        Err(e).context("cannot write to stdout")
    }
}
