//! `gregor records delete`, `gregor log-dirs describe|move` and `gregor producers describe`: the
//! counterparts of `kafka-delete-records.sh`, `kafka-log-dirs.sh`, `kafka-reassign-partitions.sh`
//! with `log_dirs` and `kafka-transactions.sh describe-producers`, over the Admin client
//! (DeleteRecords and DescribeProducers to the partition's leader, DescribeLogDirs and
//! AlterReplicaLogDirs to each broker).

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
    /// Each broker's log directories with the size of every partition in them.
    Describe(LogDirsArgs),
    /// Move a partition's log to another log directory of a broker (it keeps serving).
    Move(MoveArgs),
}

/// Flags of `gregor log-dirs move`.
#[derive(Debug, clap::Args)]
pub struct MoveArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// Topic name.
    #[arg(long)]
    topic: String,
    /// Partition index.
    #[arg(long)]
    partition: i32,
    /// The broker whose replica moves (default: 1).
    #[arg(long, default_value_t = 1)]
    broker: i32,
    /// The log directory to move it to, as `log-dirs describe` shows it.
    #[arg(long)]
    to: String,
    /// Return once the move is started instead of following it to the end.
    #[arg(long)]
    no_wait: bool,
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
            let mut table = Table::new(&[
                "BROKER",
                "LOG DIR",
                "TOPIC",
                "PARTITION",
                "SIZE",
                "MOVING IN",
            ]);
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
                            if p.is_future {
                                format!("yes, {} offsets to copy", p.offset_lag)
                            } else {
                                String::new()
                            },
                        ]);
                    }
                }
            }
            print!("{}", table.render());
            Ok(())
        }
        LogDirsCommand::Move(args) => {
            let mut admin = admin(&args.connect).await?;
            let (topic, p, b) = (args.topic.as_str(), args.partition, args.broker);
            admin.alter_replica_log_dir(b, &args.to, topic, p).await?;
            println!("moving {topic}-{p} on broker {b} to {}", args.to);
            if args.no_wait {
                return Ok(());
            }
            let (mut last, mut gone) = (None, 0);
            loop {
                let dirs = admin.describe_log_dirs(b).await?;
                let find = |future: bool| {
                    dirs.iter().find_map(|d| {
                        d.partitions
                            .iter()
                            .find(|x| x.topic == topic && x.partition == p && x.is_future == future)
                            .map(|x| (d.path.clone(), x.offset_lag))
                    })
                };
                match (find(false), find(true)) {
                    (Some((dir, _)), None) if dir == args.to => {
                        println!("{topic}-{p} is in {dir}");
                        return Ok(());
                    }
                    // Seen twice, not a swap caught between two reads.
                    (Some((dir, _)), None) if gone > 0 => anyhow::bail!(
                        "{topic}-{p} is in {dir} and no longer moving to {} (called off?)",
                        args.to
                    ),
                    (Some(_), None) => gone += 1,
                    (_, Some((_, lag))) => {
                        if last != Some(lag) {
                            println!("{lag} offsets to copy");
                            last = Some(lag);
                        }
                    }
                    (None, None) => anyhow::bail!("broker {b} does not hold {topic}-{p}"),
                }
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            }
        }
    }
}
