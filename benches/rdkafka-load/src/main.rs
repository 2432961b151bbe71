//! `rdkafka-load`: produce or consume with librdkafka, so benchmarks never measure gregor only
//! with its own client. Settings follow librdkafka's rdkafka_performance defaults the issue
//! quotes (linger.ms=5, batch.num.messages=10000). Prints one summary line per phase.

use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{Message, Offset, TopicPartitionList};

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Mode {
    Produce,
    Consume,
}

/// librdkafka load generator.
#[derive(Debug, Parser)]
struct Args {
    /// produce or consume.
    mode: Mode,
    /// Broker address.
    #[arg(long, default_value = "127.0.0.1:9092")]
    bootstrap_server: String,
    /// Topic.
    #[arg(long)]
    topic: String,
    /// Partitions to produce to, round robin (0..N; the topic must have them).
    #[arg(long, default_value_t = 1)]
    partitions: u32,
    /// Records to send or read.
    #[arg(long, default_value_t = 1_000_000)]
    num_records: u64,
    /// Payload size in bytes.
    #[arg(long, default_value_t = 100)]
    record_size: usize,
    /// acks: 0, 1 or all.
    #[arg(long, default_value = "all")]
    acks: String,
    /// linger.ms.
    #[arg(long, default_value_t = 5)]
    linger_ms: u32,
    /// batch.num.messages.
    #[arg(long, default_value_t = 10_000)]
    batch_num_messages: u32,
    /// compression.codec.
    #[arg(long, default_value = "none")]
    compression: String,
    /// enable.idempotence (needs acks=all): the idempotent producer's load.
    #[arg(long)]
    idempotence: bool,
    /// Records per transaction (a transactional producer, `transactional.id` set; each
    /// transaction is committed before the next begins); 0: no transactions.
    #[arg(long, default_value_t = 0)]
    transaction_size: u64,
    /// Any other librdkafka producer property, `key=value` (repeatable).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
}

fn produce(a: &Args) -> anyhow::Result<()> {
    let mut config = ClientConfig::new();
    for kv in &a.set {
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| anyhow::anyhow!("--set {kv}: expected key=value"))?;
        config.set(k, v);
    }
    config
        .set("bootstrap.servers", &a.bootstrap_server)
        .set("acks", &a.acks)
        .set("linger.ms", a.linger_ms.to_string())
        .set("batch.num.messages", a.batch_num_messages.to_string())
        .set("compression.codec", &a.compression)
        .set(
            "enable.idempotence",
            (a.idempotence || a.transaction_size > 0).to_string(),
        )
        .set("queue.buffering.max.messages", "2000000")
        .set("queue.buffering.max.kbytes", "2097151");
    if a.transaction_size > 0 {
        config.set(
            "transactional.id",
            format!("rdkafka-load-{}-{}", a.topic, std::process::id()),
        );
    }
    let producer: ThreadedProducer<DefaultProducerContext> = config.create()?;
    let txn_timeout = Duration::from_secs(60);
    if a.transaction_size > 0 {
        producer.init_transactions(txn_timeout)?;
    }
    let payload = vec![b'x'; a.record_size];
    let partitions = a.partitions.max(1);
    // One record to each partition before the clock starts (in a transaction of its own when
    // transactional), so that the figures leave out the client's start: metadata, connections
    // and, for an idempotent producer, the producer id it fetches in the background (about half
    // a second with librdkafka, during which the first records wait).
    if a.transaction_size > 0 {
        producer.begin_transaction()?;
    }
    for p in 0..partitions {
        send(&producer, &a.topic, p as i32, &payload)?;
    }
    flush(&producer, txn_timeout)?;
    if a.transaction_size > 0 {
        producer.commit_transaction(txn_timeout)?;
    }
    let start = Instant::now();
    for i in 0..a.num_records {
        if a.transaction_size > 0 && i % a.transaction_size == 0 {
            if i > 0 {
                flush(&producer, txn_timeout)?;
                producer.commit_transaction(txn_timeout)?;
            }
            producer.begin_transaction()?;
        }
        send(
            &producer,
            &a.topic,
            (i % u64::from(partitions)) as i32,
            &payload,
        )?;
    }
    if a.transaction_size > 0 && a.num_records > 0 {
        flush(&producer, txn_timeout)?;
        producer.commit_transaction(txn_timeout)?;
    }
    flush(&producer, Duration::from_secs(120))?;
    report("produce", a, start.elapsed());
    Ok(())
}

/// Queues one record for `partition`, waiting while librdkafka's queue is full.
fn send(
    producer: &ThreadedProducer<DefaultProducerContext>,
    topic: &str,
    partition: i32,
    payload: &[u8],
) -> anyhow::Result<()> {
    let mut record = BaseRecord::<(), [u8]>::to(topic)
        .payload(payload)
        .partition(partition);
    loop {
        match producer.send(record) {
            Ok(()) => return Ok(()),
            Err((e, r)) => {
                if !matches!(
                    e,
                    rdkafka::error::KafkaError::MessageProduction(
                        rdkafka::types::RDKafkaErrorCode::QueueFull
                    )
                ) {
                    anyhow::bail!("produce failed: {e}");
                }
                record = r;
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }
}

/// librdkafka's own `rd_kafka_flush`, as an application's commit does it: with its "flushing"
/// flag up for the whole wait, so a transaction's tail goes out at once instead of after
/// linger.ms, and it returns as soon as the producer's poll thread has served the last delivery.
/// (The rdkafka crate's flush calls it with no wait and then polls in steps of up to 100 ms,
/// competing with the poll thread: about 100 ms per transaction; waiting for the queue to drain
/// before the commit instead waits out linger.ms on every transaction.)
#[allow(unsafe_code)]
fn flush(p: &ThreadedProducer<DefaultProducerContext>, timeout: Duration) -> anyhow::Result<()> {
    let ms = i32::try_from(timeout.as_millis()).unwrap_or(i32::MAX);
    // SAFETY: the handle is the live producer's, valid for the duration of the call;
    // rd_kafka_flush is thread-safe and only waits on the producer's message count.
    let err = unsafe { rdkafka::bindings::rd_kafka_flush(p.client().native_ptr(), ms) };
    if err != rdkafka::bindings::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR {
        anyhow::bail!("flush failed: {err:?}");
    }
    Ok(())
}

fn consume(a: &Args) -> anyhow::Result<()> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", &a.bootstrap_server)
        .set("group.id", "rdkafka-load")
        .set("enable.auto.commit", "false")
        .set("fetch.queue.backoff.ms", "1")
        .set("fetch.wait.max.ms", "10")
        .create()?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..a.partitions.max(1) {
        tpl.add_partition_offset(&a.topic, p as i32, Offset::Beginning)?;
    }
    consumer.assign(&tpl)?;
    let start = Instant::now();
    let mut got = 0u64;
    while got < a.num_records && start.elapsed() < Duration::from_secs(300) {
        match consumer.poll(Duration::from_millis(500)) {
            Some(Ok(m)) if m.payload().is_some() => got += 1,
            Some(Ok(_)) => {}
            Some(Err(e)) => anyhow::bail!("consume failed: {e}"),
            None => {}
        }
    }
    if got < a.num_records {
        anyhow::bail!("only {got} of {} records arrived", a.num_records);
    }
    report("consume", a, start.elapsed());
    Ok(())
}

fn report(what: &str, a: &Args, elapsed: Duration) {
    let secs = elapsed.as_secs_f64().max(1e-9);
    let n = a.num_records as f64;
    println!(
        "{what}: {} records of {} B in {:.2} s: {:.0} records/s, {:.1} MB/s",
        a.num_records,
        a.record_size,
        secs,
        n / secs,
        n * a.record_size as f64 / secs / 1e6
    );
}

fn main() -> anyhow::Result<()> {
    let a = Args::parse();
    match a.mode {
        Mode::Produce => produce(&a),
        Mode::Consume => consume(&a),
    }
}
