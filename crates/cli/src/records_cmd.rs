//! `gregor records delete`, `gregor log-dirs describe` and `gregor producers describe`: the
//! counterparts of `kafka-delete-records.sh`, `kafka-log-dirs.sh` and `kafka-transactions.sh
//! describe-producers`, over the Admin client (DeleteRecords and DescribeProducers to the
//! partition's leader, DescribeLogDirs to each broker).

use crate::output::Table;
use crate::tool::{admin, ConnectArgs};

/// `gregor records` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum RecordsCommand {
    /// Delete a partition's records below an offset: its log start moves there.
    Delete(DeleteArgs),
}

/// Flags of `gregor records delete`.
#[derive(Debug, clap::Args)]
pub struct DeleteArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// Topic name.
    topic: String,
    /// Partition index.
    #[arg(long)]
    partition: i32,
    /// Delete every record below this offset (-1: up to the high watermark).
    #[arg(long, allow_hyphen_values = true)]
    before: i64,
}

/// `gregor log-dirs` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum LogDirsCommand {
    /// Each broker's log directory with the size of every partition in it.
    Describe(LogDirsArgs),
}

/// Flags of `gregor log-dirs describe`.
#[derive(Debug, clap::Args)]
pub struct LogDirsArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// Only this broker (default: every broker).
    #[arg(long)]
    broker: Option<i32>,
    /// Only partitions of this topic.
    #[arg(long)]
    topic: Option<String>,
}

/// `gregor producers` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum ProducersCommand {
    /// The producers a partition keeps state for: id, epoch, last sequence, open transaction.
    Describe(ProducersArgs),
}

/// Flags of `gregor producers describe`.
#[derive(Debug, clap::Args)]
pub struct ProducersArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// Topic name.
    #[arg(long)]
    topic: String,
    /// Partition index.
    #[arg(long)]
    partition: i32,
}

/// Runs a `gregor producers` subcommand.
pub async fn run_producers(cmd: ProducersCommand) -> anyhow::Result<()> {
    match cmd {
        ProducersCommand::Describe(args) => {
            let mut admin = admin(&args.connect).await?;
            let producers = admin
                .describe_producers(&args.topic, args.partition)
                .await?;
            if producers.is_empty() {
                println!("no active producers on {}-{}", args.topic, args.partition);
                return Ok(());
            }
            let mut table = Table::new(&[
                "PRODUCER ID",
                "EPOCH",
                "LAST SEQUENCE",
                "LAST TIMESTAMP",
                "COORDINATOR EPOCH",
                "TRANSACTION START",
            ]);
            let or_none = |n: i64| if n < 0 { "-".to_owned() } else { n.to_string() };
            for p in producers {
                table.row(vec![
                    p.producer_id.to_string(),
                    p.producer_epoch.to_string(),
                    p.last_sequence.to_string(),
                    p.last_timestamp.to_string(),
                    or_none(i64::from(p.coordinator_epoch)),
                    or_none(p.current_txn_start_offset),
                ]);
            }
            print!("{}", table.render());
            Ok(())
        }
    }
}

/// Runs a `gregor records` subcommand.
pub async fn run_records(cmd: RecordsCommand) -> anyhow::Result<()> {
    match cmd {
        RecordsCommand::Delete(args) => {
            let mut admin = admin(&args.connect).await?;
            let low = admin
                .delete_records(&args.topic, args.partition, args.before)
                .await?;
            println!(
                "{}-{}: records below offset {low} deleted (log start offset {low})",
                args.topic, args.partition
            );
            Ok(())
        }
    }
}

/// Runs a `gregor log-dirs` subcommand.
pub async fn run_log_dirs(cmd: LogDirsCommand) -> anyhow::Result<()> {
    match cmd {
        LogDirsCommand::Describe(args) => {
            let mut admin = admin(&args.connect).await?;
            let brokers: Vec<i32> = match args.broker {
                Some(b) => vec![b],
                None => admin
                    .metadata(Some(&[]))
                    .await?
                    .brokers
                    .keys()
                    .copied()
                    .collect(),
            };
            let mut table = Table::new(&["BROKER", "LOG DIR", "TOPIC", "PARTITION", "SIZE"]);
            for b in brokers {
                for dir in admin.describe_log_dirs(b).await? {
                    if let Some(e) = &dir.error {
                        eprintln!("broker {b}: {}: {e}", dir.path);
                    }
                    for p in &dir.partitions {
                        if args.topic.as_ref().is_some_and(|t| *t != p.topic) {
                            continue;
                        }
                        table.row(vec![
                            b.to_string(),
                            dir.path.clone(),
                            p.topic.clone(),
                            p.partition.to_string(),
                            p.size_bytes.to_string(),
                        ]);
                    }
                }
            }
            print!("{}", table.render());
            Ok(())
        }
    }
}
