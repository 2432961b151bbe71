//! `gregor perf`: load generators for any Kafka-compatible broker, the counterparts of
//! `kafka-producer-perf-test` and `kafka-consumer-perf-test`, plus a hidden loopback socket pump
//! that `benches/run.sh` uses to measure the machine's TCP ceiling.
//!
//! ```text
//! perf produce ─► N tasks, each one pipelined connection per leader (≤ max-in-flight requests)
//!                 pre-built RecordBatches ─► Produce ─► ack ─► latency histogram (per record)
//! perf consume ─► Consumer from earliest over every partition until --num-records
//! perf loopback ─► 2 GB through 127.0.0.1, MB/s
//! ```

mod consume;
mod loopback;
mod produce;
mod stats;

/// The `gregor perf` subcommands.
#[derive(Debug, clap::Subcommand)]
pub enum PerfCommand {
    /// Produce records as fast as allowed and report throughput and ack latency.
    Produce(produce::ProducePerfArgs),
    /// Consume records from the earliest offset and report throughput.
    Consume(consume::ConsumePerfArgs),
    /// Stream bytes over a loopback TCP socket and print MB/s (the machine's ceiling).
    #[command(hide = true)]
    Loopback(loopback::LoopbackArgs),
}

/// Runs one perf tool.
pub async fn run(cmd: PerfCommand) -> anyhow::Result<()> {
    match cmd {
        PerfCommand::Produce(args) => produce::run(args).await,
        PerfCommand::Consume(args) => consume::run(args).await,
        PerfCommand::Loopback(args) => loopback::run(args).await,
    }
}
