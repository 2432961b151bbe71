//! `gregor transactions list|describe`: the counterpart of `kafka-transactions.sh list` and
//! `describe`, over gregor-client's ListTransactions (every broker) and DescribeTransactions
//! (the transactional id's coordinator).

use crate::output::Table;
use crate::tool::{admin, ConnectArgs};

/// `gregor transactions` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum TransactionsCommand {
    /// List transactional ids with their coordinator, producer id and state.
    List(ListArgs),
    /// Show a transactional id's producer, state, timeout and open transaction.
    Describe(DescribeArgs),
}

/// Flags of `gregor transactions list`.
#[derive(Debug, clap::Args)]
pub struct ListArgs {
    #[command(flatten)]
    connect: ConnectArgs,
}

/// Flags of `gregor transactions describe`.
#[derive(Debug, clap::Args)]
pub struct DescribeArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// Transactional id.
    transactional_id: String,
}

/// Runs a `gregor transactions` subcommand.
pub async fn run(cmd: TransactionsCommand) -> anyhow::Result<()> {
    match cmd {
        TransactionsCommand::List(a) => list(a).await,
        TransactionsCommand::Describe(a) => describe(a).await,
    }
}

async fn list(a: ListArgs) -> anyhow::Result<()> {
    let mut admin = admin(&a.connect).await?;
    let mut table = Table::new(&["TRANSACTIONAL-ID", "COORDINATOR", "PRODUCER-ID", "STATE"]);
    for t in admin.list_transactions().await? {
        table.row(vec![
            t.transactional_id,
            t.coordinator.to_string(),
            t.producer_id.to_string(),
            t.state,
        ]);
    }
    print!("{}", table.render());
    Ok(())
}

async fn describe(a: DescribeArgs) -> anyhow::Result<()> {
    let mut admin = admin(&a.connect).await?;
    let t = admin.describe_transaction(&a.transactional_id).await?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    let (start, duration) = if t.start_time_ms >= 0 {
        (
            t.start_time_ms.to_string(),
            (now - t.start_time_ms).max(0).to_string(),
        )
    } else {
        ("None".to_string(), "None".to_string())
    };
    let partitions = t
        .partitions
        .iter()
        .map(|(topic, p)| format!("{topic}-{p}"))
        .collect::<Vec<_>>()
        .join(",");
    let mut table = Table::new(&[
        "TRANSACTIONAL-ID",
        "PRODUCER-ID",
        "PRODUCER-EPOCH",
        "STATE",
        "TIMEOUT-MS",
        "START-TIME-MS",
        "DURATION-MS",
        "PARTITIONS",
    ]);
    table.row(vec![
        t.transactional_id,
        t.producer_id.to_string(),
        t.producer_epoch.to_string(),
        t.state,
        t.timeout_ms.to_string(),
        start,
        duration,
        partitions,
    ]);
    print!("{}", table.render());
    Ok(())
}
