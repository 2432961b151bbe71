//! `gregor produce TOPIC`: each stdin line becomes a record (optionally `KEY<sep>VALUE`).
//! Lines are gathered into batches (up to `--batch-size` records, or whatever arrived within
//! `--linger-ms` of the first one) and sent with the Producer; a reader task keeps reading stdin
//! while a batch is in flight. Nothing goes to stdout; failures and a final summary go to stderr.

use crate::tool::{client_config, ConnectArgs};
use anyhow::Context;
use bytes::Bytes;
use gregor_client::{parse_acks, parse_compression, Producer, ProducerConfig, ProducerRecord};
use std::time::{Duration, Instant};
use tokio::io::AsyncBufReadExt;

/// Flags of `gregor produce`.
#[derive(Debug, clap::Args)]
pub struct ProduceArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// Topic to write to.
    topic: String,
    /// Split each line at the first SEP into key and value (lines without SEP are rejected).
    #[arg(long, value_name = "SEP")]
    key_separator: Option<String>,
    /// Acknowledgements: 0, 1, or all (-1).
    #[arg(long, default_value = "all", allow_hyphen_values = true)]
    acks: String,
    /// Write every record to this partition (default: by key hash, keyless records sticky).
    #[arg(long)]
    partition: Option<i32>,
    /// Compression codec: none, gzip, snappy, lz4, zstd.
    #[arg(long, default_value = "none")]
    compression: String,
    /// The codec's level (Kafka's `compression.<codec>.level`): gzip 1-9, lz4 1-17, zstd
    /// -131072-22; default the codec's own.
    #[arg(long, allow_hyphen_values = true)]
    compression_level: Option<i32>,
    /// How long to wait for more lines before sending a batch.
    #[arg(long, default_value_t = 5)]
    linger_ms: u64,
    /// Most records per request.
    #[arg(long, default_value_t = 10_000)]
    batch_size: usize,
}

/// Errors printed in full before only counting the rest.
const MAX_PRINTED_ERRORS: usize = 10;

/// Runs `gregor produce`.
pub async fn run(a: ProduceArgs) -> anyhow::Result<()> {
    let compression = parse_compression(&a.compression)?;
    if let Some(level) = a.compression_level {
        let key = gregor_client::compression_level_key(compression).ok_or_else(|| {
            anyhow::anyhow!("--compression-level: {} has no levels", a.compression)
        })?;
        gregor_protocol::record_rewrite::CompressionLevels::parse(key, &level.to_string())
            .unwrap_or(Ok(level))
            .map_err(|e| anyhow::anyhow!("--compression-level {level}: {e} ({key})"))?;
    }
    let config = ProducerConfig {
        acks: parse_acks(&a.acks)?,
        compression,
        compression_level: a.compression_level,
        ..ProducerConfig::default()
    };
    let batch_size = a.batch_size.max(1);
    let mut producer = Producer::connect(
        &a.connect.bootstrap_server,
        &client_config(&a.connect)?,
        config,
    )
    .await
    .with_context(|| format!("cannot reach the cluster at {}", a.connect.bootstrap_server))?;

    let (tx, mut rx) = tokio::sync::mpsc::channel::<std::io::Result<Vec<u8>>>(batch_size);
    let reader = tokio::spawn(async move {
        let mut stdin = tokio::io::BufReader::new(tokio::io::stdin());
        loop {
            let mut line = Vec::new();
            match stdin.read_until(b'\n', &mut line).await {
                Ok(0) => break,
                Ok(_) => {
                    if line.last() == Some(&b'\n') {
                        line.pop();
                        if line.last() == Some(&b'\r') {
                            line.pop();
                        }
                    }
                    if tx.send(Ok(line)).await.is_err() {
                        break;
                    }
                }
                Err(e) => {
                    let _ = tx.send(Err(e)).await;
                    break;
                }
            }
        }
    });

    let started = Instant::now();
    let linger = Duration::from_millis(a.linger_ms);
    let (mut sent, mut failed, mut printed) = (0u64, 0u64, 0usize);
    let report = |msg: String, failed: &mut u64, printed: &mut usize| {
        *failed += 1;
        if *printed < MAX_PRINTED_ERRORS {
            eprintln!("error: {msg}");
            *printed += 1;
        }
    };
    let mut done = false;
    while !done {
        let Some(first) = rx.recv().await else {
            break;
        };
        let mut lines = vec![first];
        let deadline = tokio::time::Instant::now() + linger;
        while lines.len() < batch_size {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(l)) => lines.push(l),
                Ok(None) => {
                    done = true;
                    break;
                }
                Err(_) => break,
            }
        }
        let mut records = Vec::with_capacity(lines.len());
        for line in lines {
            let line = line.context("cannot read stdin")?;
            match to_record(line, a.key_separator.as_deref(), a.partition) {
                Ok(r) => records.push(r),
                Err(e) => report(e, &mut failed, &mut printed),
            }
        }
        if records.is_empty() {
            continue;
        }
        let results = producer.send_all(&a.topic, &records).await?;
        for r in results {
            match r {
                Ok(_) => sent += 1,
                Err(e) => report(e.to_string(), &mut failed, &mut printed),
            }
        }
    }
    reader.abort();
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "{sent} records produced to {} in {secs:.2}s ({:.0} records/s){}",
        a.topic,
        sent as f64 / secs.max(1e-9),
        if failed > 0 {
            format!(", {failed} failed")
        } else {
            String::new()
        }
    );
    if failed > 0 {
        anyhow::bail!("{failed} records could not be produced");
    }
    Ok(())
}

/// Turns one input line into a record.
fn to_record(
    line: Vec<u8>,
    sep: Option<&str>,
    partition: Option<i32>,
) -> Result<ProducerRecord, String> {
    let mut r = ProducerRecord {
        partition,
        ..ProducerRecord::default()
    };
    match sep {
        None => r.value = Some(Bytes::from(line)),
        Some(sep) => {
            let sep = sep.as_bytes();
            let at = find(&line, sep).ok_or_else(|| {
                format!(
                    "no key separator in line {:?}",
                    String::from_utf8_lossy(&line)
                )
            })?;
            let line = Bytes::from(line);
            r.key = Some(line.slice(..at));
            r.value = Some(line.slice(at + sep.len()..));
        }
    }
    Ok(r)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    if needle.is_empty() {
        return None;
    }
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_split_at_the_first_separator() {
        let r = to_record(b"k::v::w".to_vec(), Some("::"), None).expect("split");
        assert_eq!(r.key.as_deref(), Some(&b"k"[..]));
        assert_eq!(r.value.as_deref(), Some(&b"v::w"[..]));
        assert!(to_record(b"novalue".to_vec(), Some(":"), None).is_err());
        let r = to_record(b"plain".to_vec(), None, Some(3)).expect("plain");
        assert_eq!(r.key, None);
        assert_eq!(r.partition, Some(3));
    }
}
