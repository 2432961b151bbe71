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
    /// Kafka client properties for a secured listener (`security.protocol`,
    /// `ssl.truststore.location` (PEM), `sasl.mechanism`, `sasl.jaas.config`, ...), as Kafka's
    /// tools take them. OAUTHBEARER takes `sasl.oauthbearer.token.endpoint.url=file:<token>`
    /// or OAuthBearerLoginModule's `unsecuredLoginStringClaim_sub` in `sasl.jaas.config`.
    #[arg(
        long,
        alias = "producer.config",
        alias = "consumer.config",
        env = "GREGOR_COMMAND_CONFIG",
        value_name = "FILE"
    )]
    pub command_config: Option<std::path::PathBuf>,
}

/// The change of an `alter` subcommand: keys to set and to delete, and whether only to check.
#[derive(Debug, Clone, clap::Args)]
pub struct ChangeArgs {
    /// KEY=VALUE to set (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub sets: Vec<String>,
    /// KEY to delete, back to its default (repeatable).
    #[arg(long = "delete", value_name = "KEY")]
    pub deletes: Vec<String>,
    /// Have the broker check the change without making it.
    #[arg(long)]
    pub validate_only: bool,
}

impl ChangeArgs {
    /// The operations: `set(key, value)` for each `--set`, then `delete(key)` for each
    /// `--delete`; an error when there are none.
    pub fn ops<T>(
        &self,
        set: impl Fn(String, String) -> anyhow::Result<T>,
        delete: impl Fn(String) -> T,
    ) -> anyhow::Result<Vec<T>> {
        let mut ops = Vec::new();
        for s in &self.sets {
            let (k, v) = crate::topics::parse_kv(s)?;
            ops.push(set(k, v)?);
        }
        ops.extend(self.deletes.iter().cloned().map(delete));
        if ops.is_empty() {
            anyhow::bail!("nothing to change: give --set KEY=VALUE or --delete KEY");
        }
        Ok(ops)
    }

    /// What a successful alter prints: `n` changed `what`s of `target`, or that the change was
    /// only checked.
    pub fn report(&self, n: usize, what: &str, target: &str) {
        if self.validate_only {
            println!("the change to {target} is valid (not made: --validate-only)");
        } else {
            println!("updated {n} {what}(s) of {target}");
        }
    }
}

/// Client settings used by the tools: with `--command-config`, its TLS and SASL settings.
pub fn client_config(c: &ConnectArgs) -> anyhow::Result<gregor_client::ClientConfig> {
    let security = match &c.command_config {
        None => None,
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
            // Kafka's clients resolve config providers' variables in their properties too.
            let props = gregor_broker::config::parse_properties(&text)
                .and_then(|props| {
                    gregor_broker::config_providers::resolve(
                        props,
                        &gregor_broker::config_providers::process_env,
                    )
                })
                .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            let security = gregor_client::Security::from_properties(
                props.iter().map(|(k, v)| (k.as_str(), v.as_str())),
            )
            .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
            Some(std::sync::Arc::new(security))
        }
    };
    Ok(gregor_client::ClientConfig {
        client_id: "gregor-cli".to_owned(),
        security,
        ..gregor_client::ClientConfig::default()
    })
}

/// An admin client of the cluster at `--bootstrap-server`.
pub async fn admin(c: &ConnectArgs) -> anyhow::Result<gregor_client::Admin> {
    use anyhow::Context;
    gregor_client::Admin::connect(&c.bootstrap_server, &client_config(c)?)
        .await
        .with_context(|| format!("cannot reach the cluster at {}", c.bootstrap_server))
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
