//! `gregor topics create|list|describe|alter|delete|elect-leaders|reassign`: the counterpart
//! of `kafka-topics.sh`, `kafka-leader-election.sh` and `kafka-reassign-partitions.sh`, over the
//! Admin client (CreateTopics, Metadata, DescribeConfigs, CreatePartitions, DeleteTopics,
//! ElectLeaders, AlterPartitionReassignments, ListPartitionReassignments).

use crate::output::Table;
use crate::tool::{admin, ConnectArgs};
use anyhow::Context;
use gregor_client::NewTopic;

/// `gregor topics` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum TopicsCommand {
    /// Create a topic.
    Create(CreateArgs),
    /// List topic names, one per line.
    List(ListArgs),
    /// Show partitions, leaders, replicas and ISR (all topics when none is named).
    Describe(DescribeArgs),
    /// Add partitions to a topic: `gregor topics alter TOPIC --partitions N`.
    Alter(AlterArgs),
    /// Delete a topic.
    Delete(DeleteArgs),
    /// Elect leaders: the preferred replica (default) or, with --unclean, any live replica of
    /// partitions that have none.
    ElectLeaders(ElectArgs),
    /// Move a partition to other brokers, or list the moves in progress (--list).
    Reassign(ReassignArgs),
}

/// Flags of `gregor topics create`.
#[derive(Debug, clap::Args)]
pub struct CreateArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// Topic name.
    topic: String,
    /// Number of partitions (default: the broker's num.partitions).
    #[arg(long)]
    partitions: Option<i32>,
    /// Replication factor (default: the broker's default.replication.factor).
    #[arg(long)]
    replication_factor: Option<i16>,
    /// Topic config KEY=VALUE (repeatable), e.g. --config retention.ms=60000.
    #[arg(long = "config", value_name = "KEY=VALUE")]
    configs: Vec<String>,
    /// Succeed quietly when the topic already exists.
    #[arg(long)]
    if_not_exists: bool,
}

/// Flags of `gregor topics list`.
#[derive(Debug, clap::Args)]
pub struct ListArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// Include internal topics such as __consumer_offsets.
    #[arg(long)]
    include_internal: bool,
}

/// Flags of `gregor topics describe`.
#[derive(Debug, clap::Args)]
pub struct DescribeArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// Topic to describe (default: all topics).
    topic: Option<String>,
    /// Only partitions whose ISR is smaller than their replica set.
    #[arg(long)]
    under_replicated_partitions: bool,
}

/// Flags of `gregor topics alter`.
#[derive(Debug, clap::Args)]
pub struct AlterArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// Topic name.
    topic: String,
    /// The new (larger) partition count.
    #[arg(long)]
    partitions: i32,
}

/// Flags of `gregor topics elect-leaders`.
#[derive(Debug, clap::Args)]
pub struct ElectArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// Only this topic's partitions (default: every partition of every topic).
    #[arg(long)]
    topic: Option<String>,
    /// Only this partition of --topic.
    #[arg(long, requires = "topic")]
    partition: Option<i32>,
    /// Unclean election: any live replica may lead a partition without leader (may lose
    /// records).
    #[arg(long)]
    unclean: bool,
}

/// Flags of `gregor topics reassign`.
#[derive(Debug, clap::Args)]
pub struct ReassignArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// Topic of the partition to move.
    #[arg(long, required_unless_present = "list")]
    topic: Option<String>,
    /// Partition to move.
    #[arg(long, required_unless_present = "list")]
    partition: Option<i32>,
    /// The target replicas, comma-separated broker ids, the preferred leader first.
    #[arg(long, value_delimiter = ',', required_unless_present_any = ["list", "cancel"])]
    replicas: Vec<i32>,
    /// Cancel the partition's reassignment in progress.
    #[arg(long, conflicts_with = "replicas")]
    cancel: bool,
    /// List the reassignments in progress instead.
    #[arg(long, conflicts_with_all = ["topic", "partition", "replicas", "cancel"])]
    list: bool,
}

/// Flags of `gregor topics delete`.
#[derive(Debug, clap::Args)]
pub struct DeleteArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// Topic name.
    topic: String,
    /// Succeed quietly when the topic does not exist.
    #[arg(long)]
    if_exists: bool,
}

/// Runs a `gregor topics` subcommand.
pub async fn run(cmd: TopicsCommand) -> anyhow::Result<()> {
    match cmd {
        TopicsCommand::Create(a) => create(a).await,
        TopicsCommand::List(a) => list(a).await,
        TopicsCommand::Describe(a) => describe(a).await,
        TopicsCommand::Alter(a) => alter(a).await,
        TopicsCommand::Delete(a) => delete(a).await,
        TopicsCommand::ElectLeaders(a) => elect_leaders(a).await,
        TopicsCommand::Reassign(a) => reassign(a).await,
    }
}

/// Splits `key=value`.
pub fn parse_kv(s: &str) -> anyhow::Result<(String, String)> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() => Ok((k.to_owned(), v.to_owned())),
        _ => anyhow::bail!("expected KEY=VALUE, got {s:?}"),
    }
}

async fn create(a: CreateArgs) -> anyhow::Result<()> {
    let configs = a
        .configs
        .iter()
        .map(|s| parse_kv(s))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut admin = admin(&a.connect).await?;
    let topic = NewTopic {
        name: a.topic.clone(),
        partitions: a.partitions,
        replication_factor: a.replication_factor,
        configs,
    };
    match admin.create_topic(topic).await {
        Ok(_) => {
            println!("Created topic {}.", a.topic);
            Ok(())
        }
        Err(e)
            if a.if_not_exists
                && e.code() == Some(gregor_protocol::error::ErrorCode::TOPIC_ALREADY_EXISTS) =>
        {
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

async fn list(a: ListArgs) -> anyhow::Result<()> {
    let mut admin = admin(&a.connect).await?;
    for t in admin.list_topics(a.include_internal).await? {
        println!("{t}");
    }
    Ok(())
}

async fn describe(a: DescribeArgs) -> anyhow::Result<()> {
    let mut admin = admin(&a.connect).await?;
    let names = a.topic.as_ref().map(|t| vec![t.clone()]);
    let md = admin.metadata(names.as_deref()).await?;
    if a.under_replicated_partitions {
        return under_replicated(&md);
    }
    let with_configs = admin.supports_describe_configs().await.unwrap_or(false);
    // KIP-966: the eligible leader replicas of every topic described, in one exchange.
    let names: Vec<String> = md.topics.iter().map(|t| t.name.clone()).collect();
    let elr = match admin.describe_elr(&names).await {
        Ok(elr) => elr,
        Err(e) => {
            tracing::debug!(error = %e, "no eligible leader replicas");
            Default::default()
        }
    };
    let mut first = true;
    for t in &md.topics {
        if let Some(code) = t.error {
            anyhow::bail!("topic {}: {code}", t.name);
        }
        if !first {
            println!();
        }
        first = false;
        let rf = t.partitions.first().map_or(0, |p| p.replicas.len());
        let mut header = format!(
            "Topic: {}\tTopicId: {}\tPartitionCount: {}\tReplicationFactor: {rf}",
            t.name,
            t.topic_id,
            t.partitions.len()
        );
        if with_configs {
            match admin.describe_topic_configs(&t.name).await {
                Ok(cfg) => {
                    let set: Vec<String> = cfg
                        .iter()
                        .filter(|c| c.is_topic_override)
                        .map(|c| format!("{}={}", c.name, c.value.as_deref().unwrap_or("")))
                        .collect();
                    header.push_str(&format!("\tConfigs: {}", set.join(",")));
                }
                Err(e) => tracing::debug!(topic = %t.name, error = %e, "no configs"),
            }
        }
        println!("{header}");
        // Two more columns when a partition of the topic has eligible leader replicas (as
        // `kafka-topics.sh --describe` prints `Elr:` and `LastKnownElr:`).
        let of_topic = |p: i32| elr.get(&(t.name.clone(), p)).cloned().unwrap_or_default();
        let with_elr = t.partitions.iter().any(|p| {
            let e = of_topic(p.partition);
            !e.elr.is_empty() || !e.last_known_elr.is_empty()
        });
        let mut table = if with_elr {
            Table::new(&[PARTITION_COLUMNS, &["ELR", "LAST-KNOWN-ELR"]].concat())
        } else {
            partition_table()
        };
        for p in &t.partitions {
            let mut row = partition_row(&t.name, p);
            if with_elr {
                let e = of_topic(p.partition);
                let list = |v: &[i32]| {
                    if v.is_empty() {
                        "-".to_owned()
                    } else {
                        join(v)
                    }
                };
                row.push(list(&e.elr));
                row.push(list(&e.last_known_elr));
            }
            table.row(row);
        }
        print!("{}", table.render());
    }
    Ok(())
}

/// The partition columns.
const PARTITION_COLUMNS: &[&str] = &[
    "TOPIC",
    "PARTITION",
    "LEADER",
    "EPOCH",
    "REPLICAS",
    "ISR",
    "OFFLINE",
];

fn partition_table() -> Table {
    Table::new(PARTITION_COLUMNS)
}

/// One partition: leader ("none" without one), leader epoch, replicas, ISR, and the
/// replicas on brokers that are down ("-" when none).
fn partition_row(topic: &str, p: &gregor_client::PartitionMetadata) -> Vec<String> {
    vec![
        topic.to_owned(),
        p.partition.to_string(),
        if p.leader < 0 {
            "none".to_owned()
        } else {
            p.leader.to_string()
        },
        p.leader_epoch.to_string(),
        join(&p.replicas),
        join(&p.isr),
        if p.offline_replicas.is_empty() {
            "-".to_owned()
        } else {
            join(&p.offline_replicas)
        },
    ]
}

/// `--under-replicated-partitions`: one table of the partitions whose ISR is smaller than
/// their replicas, over every topic described (nothing printed when there are none).
fn under_replicated(md: &gregor_client::ClusterMetadata) -> anyhow::Result<()> {
    let mut table = partition_table();
    let mut any = false;
    for t in &md.topics {
        if let Some(code) = t.error {
            anyhow::bail!("topic {}: {code}", t.name);
        }
        for p in t
            .partitions
            .iter()
            .filter(|p| p.isr.len() < p.replicas.len())
        {
            table.row(partition_row(&t.name, p));
            any = true;
        }
    }
    if any {
        print!("{}", table.render());
    }
    Ok(())
}

async fn alter(a: AlterArgs) -> anyhow::Result<()> {
    let mut admin = admin(&a.connect).await?;
    admin.create_partitions(&a.topic, a.partitions).await?;
    println!("Topic {} now has {} partitions.", a.topic, a.partitions);
    Ok(())
}

async fn elect_leaders(a: ElectArgs) -> anyhow::Result<()> {
    let mut admin = admin(&a.connect).await?;
    let partitions: Option<Vec<(String, i32)>> = match (&a.topic, a.partition) {
        (None, _) => None,
        (Some(t), Some(p)) => Some(vec![(t.clone(), p)]),
        (Some(t), None) => {
            let md = admin.metadata(Some(std::slice::from_ref(t))).await?;
            let topic = md
                .topics
                .iter()
                .find(|x| &x.name == t)
                .with_context(|| format!("topic {t} not found"))?;
            if let Some(code) = topic.error {
                anyhow::bail!("topic {t}: {code}");
            }
            Some(
                topic
                    .partitions
                    .iter()
                    .map(|p| (t.clone(), p.partition))
                    .collect(),
            )
        }
    };
    let election = if a.unclean {
        gregor_client::ElectionType::Unclean
    } else {
        gregor_client::ElectionType::Preferred
    };
    let results = admin.elect_leaders(election, partitions.as_deref()).await?;
    let mut failed = 0;
    let mut table = Table::new(&["TOPIC", "PARTITION", "RESULT"]);
    for (topic, partition, r) in &results {
        let result = match r {
            Ok(()) => "elected".to_owned(),
            Err(e) => match e.code() {
                Some(gregor_protocol::error::ErrorCode::ELECTION_NOT_NEEDED) => {
                    "not needed".to_owned()
                }
                _ => {
                    failed += 1;
                    e.to_string()
                }
            },
        };
        table.row(vec![topic.clone(), partition.to_string(), result]);
    }
    if results.is_empty() {
        println!("No partition needed a new leader.");
    } else {
        print!("{}", table.render());
    }
    anyhow::ensure!(failed == 0, "{failed} election(s) failed");
    Ok(())
}

async fn reassign(a: ReassignArgs) -> anyhow::Result<()> {
    let mut admin = admin(&a.connect).await?;
    if a.list {
        let ongoing = admin.list_partition_reassignments().await?;
        if ongoing.is_empty() {
            println!("No reassignment in progress.");
            return Ok(());
        }
        let mut table = Table::new(&["TOPIC", "PARTITION", "REPLICAS", "ADDING", "REMOVING"]);
        for r in &ongoing {
            let or_dash = |v: &[i32]| {
                if v.is_empty() {
                    "-".to_owned()
                } else {
                    join(v)
                }
            };
            table.row(vec![
                r.topic.clone(),
                r.partition.to_string(),
                join(&r.replicas),
                or_dash(&r.adding_replicas),
                or_dash(&r.removing_replicas),
            ]);
        }
        print!("{}", table.render());
        return Ok(());
    }
    let (Some(topic), Some(partition)) = (a.topic, a.partition) else {
        anyhow::bail!("--topic and --partition are required");
    };
    let target = (!a.cancel).then(|| a.replicas.clone());
    let results = admin
        .alter_partition_reassignments(&[(topic.clone(), partition, target)])
        .await?;
    for (t, p, r) in results {
        r?;
        if a.cancel {
            println!("Cancelled the reassignment of {t}-{p}.");
        } else {
            println!("Reassignment of {t}-{p} to {} started.", join(&a.replicas));
        }
    }
    Ok(())
}

fn join(ids: &[i32]) -> String {
    ids.iter().map(i32::to_string).collect::<Vec<_>>().join(",")
}

async fn delete(a: DeleteArgs) -> anyhow::Result<()> {
    let mut admin = admin(&a.connect).await?;
    let results = admin.delete_topics(std::slice::from_ref(&a.topic)).await?;
    for (name, r) in results {
        match r {
            Ok(()) => println!("Deleted topic {name}."),
            Err(e)
                if a.if_exists
                    && e.code()
                        == Some(gregor_protocol::error::ErrorCode::UNKNOWN_TOPIC_OR_PARTITION) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}
