//! `gregor topics create|list|describe|delete`: the counterpart of `kafka-topics.sh`, over the
//! Admin client (CreateTopics, Metadata, DescribeConfigs, DeleteTopics).

use crate::output::Table;
use crate::tool::{client_config, ConnectArgs};
use anyhow::Context;
use gregor_client::{Admin, NewTopic};

/// `gregor topics` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum TopicsCommand {
    /// Create a topic.
    Create(CreateArgs),
    /// List topic names, one per line.
    List(ListArgs),
    /// Show partitions, leaders, replicas and ISR (all topics when none is named).
    Describe(DescribeArgs),
    /// Delete a topic.
    Delete(DeleteArgs),
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
        TopicsCommand::Delete(a) => delete(a).await,
    }
}

async fn admin(c: &ConnectArgs) -> anyhow::Result<Admin> {
    Admin::connect(&c.bootstrap_server, &client_config())
        .await
        .with_context(|| format!("cannot reach the cluster at {}", c.bootstrap_server))
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
    let with_configs = admin.supports_describe_configs().await.unwrap_or(false);
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
        let mut table = Table::new(&["TOPIC", "PARTITION", "LEADER", "REPLICAS", "ISR"]);
        for p in &t.partitions {
            table.row(vec![
                t.name.clone(),
                p.partition.to_string(),
                if p.leader < 0 {
                    "none".to_owned()
                } else {
                    p.leader.to_string()
                },
                join(&p.replicas),
                join(&p.isr),
            ]);
        }
        print!("{}", table.render());
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
