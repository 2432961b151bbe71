//! `gregor consume TOPIC`: reads one partition or all of them (no consumer group), from the end
//! by default, `--from-beginning`, or `--offset`. Each record is printed through a kcat-style
//! template. Exits after `--max-messages`, or after `--timeout-ms` without a new record.

use crate::output::RecordFormat;
use crate::tool::{client_config, ConnectArgs};
use anyhow::Context;
use gregor_client::{Consumer, ConsumerConfig, OffsetSpec};
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
    #[arg(long)]
    partition: Option<i32>,
    /// Start offset: a number, earliest, latest, or @TIMESTAMP_MS (default: latest).
    #[arg(long)]
    offset: Option<String>,
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
    let mut consumer = Consumer::connect(&a.connect.bootstrap_server, &client_config(), config)
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

/// A reader that went away (`| head`) ends the tool quietly; other write errors are errors.
fn broken_pipe_is_fine(e: std::io::Error) -> anyhow::Result<()> {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        Ok(())
    } else {
        Err(e).context("cannot write to stdout")
    }
}
