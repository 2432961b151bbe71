//! The `gregor` binary: `gregor server` runs a broker; the other subcommands are Kafka tools
//! (topics, groups, transactions, produce, consume) speaking the wire protocol through `gregor-client`.

mod acls;
mod cluster;
mod cluster_describe;
mod configs;
mod consume;
mod features;
mod groups;
mod output;
mod perf;
mod produce;
mod quotas;
mod records_cmd;
mod server;
mod share_groups;
mod streams_groups;
mod tool;
mod topics;
mod transactions;

use clap::{Parser, Subcommand};

/// mimalloc keeps freed memory for reuse instead of returning every large request buffer to the
/// kernel: with the system allocator each megabyte-sized produce frame was page-faulted in anew.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// gregor: a Kafka-compatible distributed commit log.
#[derive(Debug, Parser)]
#[command(name = "gregor", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a broker (single node by default: 127.0.0.1:9092, data in ./gregor-data).
    Server(server::ServerArgs),
    /// A local cluster for trying things out (`gregor cluster up --nodes 3`), and what a
    /// cluster looks like (`gregor cluster describe`).
    #[command(subcommand)]
    Cluster(cluster::ClusterCommand),
    /// Create, list, describe and delete topics.
    #[command(subcommand)]
    Topics(topics::TopicsCommand),
    /// Describe and change topic and broker configs (`kafka-configs.sh`).
    #[command(subcommand)]
    Configs(configs::ConfigsCommand),
    /// Describe and change client quotas (`kafka-configs.sh --entity-type clients|users`).
    #[command(subcommand)]
    Quotas(quotas::QuotasCommand),
    /// List, add and remove ACLs (`kafka-acls.sh`).
    #[command(subcommand)]
    Acls(acls::AclsCommand),
    /// List, describe, reset offsets of and delete consumer groups.
    #[command(subcommand)]
    Groups(groups::GroupsCommand),
    /// List, describe, reset offsets of and delete share groups (KIP-932,
    /// `kafka-share-groups.sh`).
    #[command(subcommand)]
    ShareGroups(share_groups::ShareGroupsCommand),
    /// List, describe (offsets, members, state, topology) and delete streams groups
    /// (KIP-1071, `kafka-streams-groups.sh`).
    #[command(subcommand)]
    StreamsGroups(streams_groups::StreamsGroupsCommand),
    /// List and describe transactional ids.
    #[command(subcommand)]
    Transactions(transactions::TransactionsCommand),
    /// Describe the cluster's features and change their finalized levels
    /// (`kafka-features.sh`).
    #[command(subcommand)]
    Features(features::FeaturesCommand),
    /// Delete a partition's records below an offset (`kafka-delete-records.sh`).
    #[command(subcommand)]
    Records(records_cmd::RecordsCommand),
    /// A partition's producers (`kafka-transactions.sh describe-producers`).
    #[command(subcommand)]
    Producers(records_cmd::ProducersCommand),
    /// Log directories and partition sizes on disk (`kafka-log-dirs.sh`).
    #[command(subcommand)]
    LogDirs(records_cmd::LogDirsCommand),
    /// Write stdin lines to a topic, one record per line.
    Produce(produce::ProduceArgs),
    /// Print records of a topic to stdout.
    Consume(consume::ConsumeArgs),
    /// Load generators: produce / consume throughput and latency.
    #[command(subcommand)]
    Perf(perf::PerfCommand),
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Server(args) => server::run(args),
        tool => {
            tool::init_logging();
            tool::block_on(async move {
                match tool {
                    Command::Cluster(cmd) => cluster::run(cmd).await,
                    Command::Topics(cmd) => topics::run(cmd).await,
                    Command::Groups(cmd) => groups::run(cmd).await,
                    Command::ShareGroups(cmd) => share_groups::run(cmd).await,
                    Command::StreamsGroups(cmd) => streams_groups::run(cmd).await,
                    Command::Transactions(cmd) => transactions::run(cmd).await,
                    Command::Features(cmd) => features::run(cmd).await,
                    Command::Configs(cmd) => configs::run(cmd).await,
                    Command::Quotas(cmd) => quotas::run(cmd).await,
                    Command::Acls(cmd) => acls::run(cmd).await,
                    Command::Records(cmd) => records_cmd::run_records(cmd).await,
                    Command::LogDirs(cmd) => records_cmd::run_log_dirs(cmd).await,
                    Command::Producers(cmd) => records_cmd::run_producers(cmd).await,
                    Command::Produce(args) => produce::run(args).await,
                    Command::Consume(args) => consume::run(args).await,
                    Command::Perf(cmd) => perf::run(cmd).await,
                    Command::Server(_) => unreachable!("handled above"),
                }
            })
        }
    };
    if let Err(e) = result {
        eprintln!("gregor: error: {e:#}");
        std::process::exit(1);
    }
}
