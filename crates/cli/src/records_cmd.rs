//! `gregor records delete` and `gregor log-dirs describe`: the counterparts of
//! `kafka-delete-records.sh` and `kafka-log-dirs.sh`, over the Admin client (DeleteRecords to
//! the partition's leader, DescribeLogDirs to each broker).

use crate::output::Table;
use crate::tool::{client_config, ConnectArgs};
use anyhow::Context;
use gregor_client::Admin;

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

async fn admin(c: &ConnectArgs) -> anyhow::Result<Admin> {
    Admin::connect(&c.bootstrap_server, &client_config())
        .await
        .with_context(|| format!("cannot reach the cluster at {}", c.bootstrap_server))
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
