//! `gregor server`: parses flags and config, sets up logging, runs the broker until SIGINT/SIGTERM.

use std::path::PathBuf;

/// Flags of `gregor server`.
#[derive(Debug, clap::Args)]
pub struct ServerArgs {
    /// Data directory (Kafka's `log.dirs`).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Listener address HOST:PORT (port 0 picks a free one).
    #[arg(long)]
    pub listen: Option<String>,
    /// A Kafka `server.properties` file.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Any supported config key, `key=value`; repeatable; wins over --config.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
}

/// Runs the broker until a shutdown signal.
pub fn run(args: ServerArgs) -> anyhow::Result<()> {
    let _ = args;
    anyhow::bail!("not yet")
}
