//! The `gregor` binary: `gregor server` runs a broker; the other subcommands are Kafka tools
//! (topics, produce, consume) speaking the wire protocol through `gregor-client`.

mod server;

use clap::{Parser, Subcommand};

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
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Server(args) => server::run(args),
    }
}
