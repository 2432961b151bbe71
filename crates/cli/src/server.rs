//! `gregor server`: parses flags and config, sets up logging, runs the broker until SIGINT or
//! SIGTERM, then shuts it down cleanly (flushed logs, clean-shutdown marker).

use std::io::IsTerminal;
use std::path::PathBuf;

use anyhow::Context;
use gregor_broker::BrokerConfig;

/// Flags of `gregor server`.
#[derive(Debug, clap::Args)]
pub struct ServerArgs {
    /// Data directory (Kafka's `log.dirs`); default ./gregor-data.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Listener address HOST:PORT (port 0 picks a free one); default 127.0.0.1:9092.
    #[arg(long)]
    pub listen: Option<String>,
    /// A Kafka `server.properties` file.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Any supported config key as key=value; repeatable; wins over --config.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// This node's id (Kafka's `node.id`); default 1.
    #[arg(long)]
    pub node_id: Option<i32>,
    /// The controller listener HOST:PORT, where the metadata quorum's voters and the brokers
    /// reach this node's controller.
    #[arg(long, value_name = "HOST:PORT")]
    pub controller_listen: Option<String>,
    /// The metadata quorum's voters, `id@host:port,...` (Kafka's `controller.quorum.voters`);
    /// default: this node alone.
    #[arg(long, value_name = "ID@HOST:PORT,...")]
    pub voters: Option<String>,
    /// Serve the broker's metrics over HTTP at HOST:PORT/metrics, in Prometheus' text format
    /// (the `http.listener` config; port 0 picks a free one).
    #[arg(long, value_name = "HOST:PORT")]
    pub http_listen: Option<String>,
    /// A SCRAM credential a new cluster starts with (Kafka's `kafka-storage format
    /// --add-scram`): `SCRAM-SHA-512=[name=USER,password=SECRET]`, optionally with
    /// `iterations=N` (4096-16384, default 4096) and `salt=BASE64`, or
    /// `salt=BASE64,saltedpassword=BASE64` instead of the password; repeatable. Written to the
    /// metadata log once, by the first active controller of a new cluster (give every voter
    /// the same ones); ignored, with a warning, when the log exists already.
    #[arg(long = "add-scram", value_name = "SPEC")]
    pub add_scram: Vec<String>,
    /// A file of `--add-scram` SPECs, one a line (blank lines and lines starting with `#`
    /// skipped): keeps the passwords out of the process list; repeatable.
    #[arg(long = "add-scram-file", value_name = "FILE")]
    pub add_scram_file: Vec<PathBuf>,
    /// With `controller.quorum.bootstrap.servers` (Kafka 4.x's dynamic quorum): this
    /// controller alone is the first voter of a new cluster, as Kafka's `kafka-storage format
    /// --standalone`. Taken only by an empty metadata log; add the other controllers with
    /// `kafka-metadata-quorum add-controller` once they joined.
    #[arg(long, conflicts_with = "initial_controllers")]
    pub standalone: bool,
    /// With `controller.quorum.bootstrap.servers`: the first voters of a new cluster,
    /// `id@host:port[:directoryId],...` (Kafka's `kafka-storage format
    /// --initial-controllers`), the same on each of them. Taken only by an empty metadata log.
    #[arg(long, value_name = "ID@HOST:PORT[:DIR],...")]
    pub initial_controllers: Option<String>,
    /// Kafka's `kafka-storage format --no-initial-controllers`: this controller joins an
    /// existing quorum through the bootstrap servers (gregor's default without the other two).
    #[arg(long, conflicts_with_all = ["standalone", "initial_controllers"])]
    pub no_initial_controllers: bool,
}

/// Builds the broker config from defaults, the file, `--set`, then the dedicated flags.
pub fn build_config(args: &ServerArgs) -> anyhow::Result<BrokerConfig> {
    let mut config = BrokerConfig::default();
    config.load(args.config.as_deref(), &args.set)?;
    if let Some(dir) = &args.data_dir {
        config.data_dir = dir.clone();
        config.extra_log_dirs.clear();
        config.note_given("log.dirs", &dir.display().to_string());
    }
    if let Some(listen) = &args.listen {
        config.listen = gregor_broker::config::resolve_listen("--listen", listen)?;
        config.note_given("listeners", &format!("PLAINTEXT://{listen}"));
    }
    if let Some(id) = args.node_id {
        config.node_id = id;
        config.note_given("node.id", &id.to_string());
    }
    if let Some(addr) = &args.controller_listen {
        config.cluster.controller_listen = Some(gregor_broker::config::resolve_listen(
            "--controller-listen",
            addr,
        )?);
    }
    if let Some(voters) = &args.voters {
        config.cluster.voters = gregor_broker::config::parse_voters("--voters", voters)?;
        config.note_given("controller.quorum.voters", voters);
    }
    if let Some(addr) = &args.http_listen {
        config.set("http.listener", addr)?;
    }
    for (i, spec) in args.add_scram.iter().enumerate() {
        config.add_scram(&format!("--add-scram argument {}", i + 1), spec)?;
    }
    for path in &args.add_scram_file {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("--add-scram-file {}", path.display()))?;
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            config.add_scram(
                &format!("--add-scram-file {} line {}", path.display(), i + 1),
                line,
            )?;
        }
    }
    // Before Kafka's format is read from the metadata log's directory.
    config.place_metadata_log();
    config.resolve_listeners(args.listen.is_some(), args.controller_listen.is_some())?;
    config.set_initial_controllers(args.standalone, args.initial_controllers.as_deref())?;
    // Kafka's `format --no-initial-controllers` wrote no voters; given here, nothing is read.
    if !args.no_initial_controllers {
        config.adopt_kafka_format()?;
    }
    Ok(config)
}

/// Logs to stderr through a filter (RUST_LOG, else gregor's default) that the broker swaps
/// when its BROKER_LOGGER levels change (`gregor_broker::log_levels`), and notes each target
/// that logs (the loggers DescribeConfigs lists).
fn install_logging() {
    use tracing_subscriber::prelude::*;
    use tracing_subscriber::{reload, EnvFilter};
    let directives = std::env::var("RUST_LOG")
        .ok()
        .filter(|d| EnvFilter::try_new(d).is_ok())
        .unwrap_or_else(|| gregor_broker::log_levels::DEFAULT_DIRECTIVES.to_string());
    let (filter, handle) = reload::Layer::new(EnvFilter::new(&directives));
    let levels = gregor_broker::log_levels::install(
        &directives,
        Box::new(move |d: &str| {
            let next = EnvFilter::try_new(d).map_err(|e| e.to_string())?;
            handle.reload(next).map_err(|e| e.to_string())
        }),
    );
    tracing_subscriber::registry()
        .with(filter)
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(std::io::stderr().is_terminal()),
        )
        .with(TargetRecorder(levels))
        .init();
}

/// Notes the target of every callsite the subscriber registers. Outermost, so it sees each
/// callsite before the filter decides; it leaves the decision to the filter.
struct TargetRecorder(std::sync::Arc<gregor_broker::log_levels::LogLevels>);

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for TargetRecorder {
    fn register_callsite(
        &self,
        metadata: &'static tracing::Metadata<'static>,
    ) -> tracing::subscriber::Interest {
        self.0.note_target(metadata.target());
        tracing::subscriber::Interest::always()
    }
}

/// Runs the broker until a shutdown signal.
pub fn run(args: ServerArgs) -> anyhow::Result<()> {
    install_logging();
    let config = build_config(&args)?;
    raise_open_files_limit();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("gregor")
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let (tx, rx) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            wait_for_signal().await;
            let _ = tx.send(true);
        });
        gregor_broker::run(config, rx).await
    })
}

/// Every segment keeps its `.log` open (one descriptor per single-segment partition; indexes
/// hold none), so a broker with thousands of partitions needs more descriptors than the usual
/// soft limit of 1024; raise the soft limit to the hard one, as Kafka's deployment guides tell
/// operators to do.
fn raise_open_files_limit() {
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current < limit.maximum {
        let from = limit.current;
        limit.current = limit.maximum;
        match setrlimit(Resource::Nofile, limit) {
            Ok(()) => tracing::debug!(?from, to = ?limit.current, "raised open files limit"),
            Err(e) => tracing::warn!(error = %e, "cannot raise the open files limit"),
        }
    }
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    match (term, int) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
    tracing::info!("shutdown signal received");
}
