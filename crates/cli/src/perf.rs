//! `gregor perf`: load generators for any Kafka-compatible broker, the counterparts of
//! `kafka-producer-perf-test` and `kafka-consumer-perf-test`, plus a hidden loopback socket pump
//! that `benches/run.sh` uses to measure the machine's TCP ceiling.
//!
//! ```text
//! perf produce ─► N tasks, each one pipelined connection per leader (≤ max-in-flight requests)
//!                 pre-built RecordBatches ─► Produce ─► ack ─► latency histogram (per record)
//! perf consume ─► Consumer from earliest over every partition until --num-records
//! perf e2e     ─► consumer at the end, then a paced perf produce whose values carry the send
//!                 time ─► produce (ack) and end-to-end latency histograms
//! perf loopback ─► 2 GB through 127.0.0.1, MB/s
//! perf floor    ─► kernel CPU per GB of receive + append (+ fdatasync, + O_DIRECT) and of sendfile
//! ```

mod consume;
mod e2e;
mod floor;
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
    /// Produce at a fixed rate while consuming the same topic; report produce and end-to-end
    /// latency.
    ///
    /// The consumer is positioned at the end of the topic before the first send. Each record's
    /// value starts with its send time (8 bytes, µs since the Unix epoch, big-endian; the
    /// record's CreateTime is the same instant in ms), taken right before the Produce request is
    /// written. The consumer records now − send time for every record it receives.
    ///
    /// Prints three lines: `N records sent, …` with the produce (ack) latency, `N records
    /// received end-to-end, …` with the end-to-end latency, and how far the producer fell
    /// behind its --throughput schedule. Use --throughput: unlimited load measures queueing.
    E2e(e2e::E2ePerfArgs),
    /// Stream bytes over a loopback TCP socket and print MB/s (the machine's ceiling).
    #[command(hide = true)]
    Loopback(loopback::LoopbackArgs),
    /// Print the kernel's CPU cost per GB of the work no broker can skip (loopback receive and
    /// file append, with and without fdatasync; sendfile to loopback), and of the same durable
    /// append through O_DIRECT.
    #[command(hide = true)]
    Floor(floor::FloorArgs),
}

/// Runs one perf tool.
pub async fn run(cmd: PerfCommand) -> anyhow::Result<()> {
    match cmd {
        PerfCommand::Produce(args) => produce::run(args).await,
        PerfCommand::Consume(args) => consume::run(args).await,
        PerfCommand::E2e(args) => e2e::run(args).await,
        PerfCommand::Loopback(args) => loopback::run(args).await,
        PerfCommand::Floor(args) => floor::run(args).await,
    }
}
