//! `gregor configs describe|alter`: the counterpart of `kafka-configs.sh` for topics, brokers and
//! groups,
//! over the Admin client (DescribeConfigs, IncrementalAlterConfigs).
//!
//! ```text
//! gregor configs describe --topic orders            # the topic's overrides
//! gregor configs describe --broker 1 --all          # every key of broker 1, with its source
//! gregor configs alter --topic orders --set retention.ms=60000 --delete segment.ms
//! gregor configs alter --broker-defaults --set log.retention.ms=3600000
//! gregor configs alter --group orders-workers --set share.auto.offset.reset=earliest
//! gregor configs describe --group orders-workers --all
//! gregor configs describe --broker-logger 1         # broker 1's loggers and their levels
//! gregor configs alter --broker-logger 1 --set gregor_broker.replica_manager=DEBUG
//! ```

use crate::output::Table;
use crate::tool::{admin, ChangeArgs, ConnectArgs};
use gregor_client::{config_source_name, ConfigOp, ConfigResource};

/// `gregor configs` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum ConfigsCommand {
    /// Show a topic's, a broker's or a group's configs: the ones set on it, or every key with
    /// --all.
    Describe(DescribeArgs),
    /// Set or delete configs of a topic, a broker, every broker (--broker-defaults) or a group.
    Alter(AlterArgs),
}

/// Which resource: exactly one of the five.
#[derive(Debug, clap::Args)]
#[group(required = true, multiple = false)]
pub struct Target {
    /// A group (consumer or share group configs: `share.auto.offset.reset`, ...); Kafka's
    /// `--entity-type groups --entity-name G`.
    #[arg(long)]
    group: Option<String>,
    /// A topic.
    #[arg(long)]
    topic: Option<String>,
    /// A broker, by id.
    #[arg(long)]
    broker: Option<i32>,
    /// The dynamic defaults of every broker (Kafka's `--entity-default`).
    #[arg(long)]
    broker_defaults: bool,
    /// A broker's log levels, by broker id (Kafka's `--entity-type broker-loggers`): loggers
    /// are gregor's module paths, dotted (`gregor_broker.replica_manager`), and `root`; levels
    /// FATAL ERROR WARN INFO DEBUG TRACE. Not kept across a restart.
    #[arg(long, value_name = "ID")]
    broker_logger: Option<i32>,
}

impl Target {
    fn resource(&self) -> ConfigResource {
        if let Some(g) = &self.group {
            return ConfigResource::Group(g.clone());
        }
        if let Some(id) = self.broker_logger {
            return ConfigResource::BrokerLogger(id);
        }
        match (&self.topic, self.broker) {
            (Some(t), _) => ConfigResource::Topic(t.clone()),
            (None, Some(id)) => ConfigResource::Broker(Some(id)),
            (None, None) => ConfigResource::Broker(None),
        }
    }
}

/// Flags of `gregor configs describe`.
#[derive(Debug, clap::Args)]
pub struct DescribeArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    #[command(flatten)]
    target: Target,
    /// Every key, defaults included, not only the ones set on the resource.
    #[arg(long)]
    all: bool,
}

/// Flags of `gregor configs alter`.
#[derive(Debug, clap::Args)]
pub struct AlterArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    #[command(flatten)]
    target: Target,
    #[command(flatten)]
    change: ChangeArgs,
}

/// Runs a `gregor configs` subcommand.
pub async fn run(cmd: ConfigsCommand) -> anyhow::Result<()> {
    match cmd {
        ConfigsCommand::Describe(args) => describe(args).await,
        ConfigsCommand::Alter(args) => alter(args).await,
    }
}

/// Whether a config was set on the resource itself (what `describe` shows without `--all`).
fn set_on(resource: &ConfigResource, source: i8) -> bool {
    match resource {
        ConfigResource::Topic(_) => source == 1,
        ConfigResource::Broker(Some(_)) => source == 2,
        ConfigResource::Broker(None) => source == 3,
        ConfigResource::Group(_) => source == 8,
        // Every logger is described with its level.
        ConfigResource::BrokerLogger(_) => true,
    }
}

async fn describe(args: DescribeArgs) -> anyhow::Result<()> {
    let resource = args.target.resource();
    let mut admin = admin(&args.connect).await?;
    let entries = admin.describe_configs(&resource).await?;
    let mut table = Table::new(&["NAME", "VALUE", "SOURCE", "READ-ONLY"]);
    let mut shown = 0;
    for e in entries {
        if !args.all && !set_on(&resource, e.source) {
            continue;
        }
        shown += 1;
        let value = match (&e.value, e.is_sensitive) {
            (_, true) => "(sensitive)".to_owned(),
            (Some(v), false) => v.clone(),
            (None, false) => "(null)".to_owned(),
        };
        table.row(vec![
            e.name,
            value,
            config_source_name(e.source).to_owned(),
            if e.read_only { "yes" } else { "no" }.to_owned(),
        ]);
    }
    if shown == 0 {
        println!(
            "no configs set on {resource}{}",
            if args.all {
                ""
            } else {
                " (--all lists every key)"
            }
        );
    } else {
        print!("{}", table.render());
    }
    Ok(())
}

async fn alter(args: AlterArgs) -> anyhow::Result<()> {
    let resource = args.target.resource();
    let ops = args
        .change
        .ops(|k, v| Ok(ConfigOp::Set(k, v)), ConfigOp::Delete)?;
    let mut admin = admin(&args.connect).await?;
    admin
        .alter_configs(&resource, &ops, args.change.validate_only)
        .await?;
    args.change
        .report(ops.len(), "config", &resource.to_string());
    Ok(())
}
