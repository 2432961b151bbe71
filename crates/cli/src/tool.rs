//! What every client tool shares: the `--bootstrap-server` flag, the client settings, logging
//! setup (RUST_LOG, default `warn`, to stderr) and a small async runtime.

use std::io::IsTerminal;

/// Connection flags common to all tools.
#[derive(Debug, Clone, clap::Args)]
pub struct ConnectArgs {
    /// Broker(s) to bootstrap from, HOST:PORT[,HOST:PORT...].
    #[arg(
        long,
        short = 'b',
        alias = "bootstrap-servers",
        env = "GREGOR_BOOTSTRAP_SERVER",
        default_value = "127.0.0.1:9092"
    )]
    pub bootstrap_server: String,
}

/// Client settings used by the tools.
pub fn client_config() -> gregor_client::ClientConfig {
    gregor_client::ClientConfig {
        client_id: "gregor-cli".to_owned(),
        ..gregor_client::ClientConfig::default()
    }
}

/// Logging for tools: quiet unless RUST_LOG asks, always on stderr so stdout stays data.
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .try_init();
}

/// Runs a tool's future on a current-thread runtime (tools do one thing at a time).
pub fn block_on<F: std::future::Future<Output = anyhow::Result<()>>>(f: F) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(f)
}
