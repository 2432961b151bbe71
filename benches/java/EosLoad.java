// EosLoad: the Java client's exactly-once loads for the benchmarks — plain acks=all, idempotent,
// or transactional with a fixed number of records per transaction (Kafka's
// kafka-producer-perf-test commits by time, not by count). benches/run.sh and benches/peer.sh
// compile it once (benches/loads.sh); by hand, Java's source launcher runs it:
//
//   java -cp "$GREGOR_TOOLBOX/jars/*" benches/java/EosLoad.java --bootstrap-server HOST:PORT \
//       --topic T --num-records N --record-size S --mode plain|idempotent|transactional \
//       [--transaction-size 1000] [--partitions P] [--producer-props k=v ...]
//
// Producer settings: acks=all, linger.ms=5, batch.size=1 MiB (the peer bench's Java settings),
// enable.idempotence=false for plain, true otherwise; --producer-props overrides them. Records go
// round robin over partitions 0..P-1; one record per partition goes first, before the clock
// starts. Prints the line rdkafka-load prints:
//   produce: N records of S B in T s: R records/s, M MB/s
// and, for transactional loads, the transactions committed and their mean commit time (the
// flush of the transaction's records, then commitTransaction's EndTxn).

import java.util.ArrayList;
import java.util.List;
import java.util.Properties;
import java.util.concurrent.atomic.AtomicReference;

import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.serialization.ByteArraySerializer;

public class EosLoad {
    public static void main(String[] args) throws Exception {
        String bootstrap = "127.0.0.1:9092";
        String topic = null;
        String mode = "plain";
        long numRecords = 1_000_000;
        int recordSize = 1024;
        long txnSize = 1000;
        int partitions = 1;
        List<String> props = new ArrayList<>();
        for (int i = 0; i < args.length; i++) {
            switch (args[i]) {
                case "--bootstrap-server" -> bootstrap = args[++i];
                case "--topic" -> topic = args[++i];
                case "--mode" -> mode = args[++i];
                case "--num-records" -> numRecords = Long.parseLong(args[++i]);
                case "--record-size" -> recordSize = Integer.parseInt(args[++i]);
                case "--transaction-size" -> txnSize = Long.parseLong(args[++i]);
                case "--partitions" -> partitions = Integer.parseInt(args[++i]);
                case "--producer-props" -> {
                    while (i + 1 < args.length && !args[i + 1].startsWith("--")) {
                        props.add(args[++i]);
                    }
                }
                default -> throw new IllegalArgumentException("unknown argument " + args[i]);
            }
        }
        if (topic == null) {
            throw new IllegalArgumentException("--topic is required");
        }
        boolean transactional = mode.equals("transactional");
        Properties config = new Properties();
        config.put("bootstrap.servers", bootstrap);
        config.put("acks", "all");
        config.put("linger.ms", "5");
        config.put("batch.size", "1048576");
        config.put("enable.idempotence", mode.equals("plain") ? "false" : "true");
        config.put("key.serializer", ByteArraySerializer.class.getName());
        config.put("value.serializer", ByteArraySerializer.class.getName());
        if (transactional) {
            config.put("transactional.id", "eos-load-" + topic + "-" + ProcessHandle.current().pid());
        }
        for (String kv : props) {
            int eq = kv.indexOf('=');
            if (eq <= 0) {
                throw new IllegalArgumentException("--producer-props " + kv + ": expected key=value");
            }
            config.put(kv.substring(0, eq), kv.substring(eq + 1));
        }
        byte[] payload = new byte[recordSize];
        java.util.Arrays.fill(payload, (byte) 'x');
        AtomicReference<Exception> failure = new AtomicReference<>();
        // Transactions committed, then the nanoseconds of their commits and of the flushes in them.
        long[] times = new long[3];
        try (KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(config)) {
            if (transactional) {
                producer.initTransactions();
            }
            // One record to each partition before the clock starts (in a transaction of its
            // own when transactional): the figures leave out the client's start (metadata,
            // connections, the producer id).
            if (transactional) {
                producer.beginTransaction();
            }
            for (int p = 0; p < partitions; p++) {
                producer.send(new ProducerRecord<>(topic, p, null, payload)).get();
            }
            if (transactional) {
                producer.commitTransaction();
            }
            long start = System.nanoTime();
            for (long i = 0; i < numRecords; i++) {
                if (transactional && i % txnSize == 0) {
                    if (i > 0) {
                        commit(producer, times);
                    }
                    producer.beginTransaction();
                }
                int partition = (int) (i % partitions);
                producer.send(new ProducerRecord<>(topic, partition, null, payload), (md, e) -> {
                    if (e != null) {
                        failure.compareAndSet(null, e);
                    }
                });
                if (failure.get() != null) {
                    break;
                }
            }
            if (transactional && numRecords > 0 && failure.get() == null) {
                commit(producer, times);
            }
            producer.flush();
            double secs = Math.max((System.nanoTime() - start) / 1e9, 1e-9);
            if (failure.get() != null) {
                System.err.println("produce failed: " + failure.get());
                System.exit(1);
            }
            if (transactional) {
                double n = Math.max(times[0], 1);
                System.out.printf("transactions: %d committed, commit %.2f ms mean (flush %.2f ms, then EndTxn %.2f ms)%n",
                    times[0], times[1] / 1e6 / n, times[2] / 1e6 / n, (times[1] - times[2]) / 1e6 / n);
            }
            System.out.printf("produce: %d records of %d B in %.2f s: %.0f records/s, %.1f MB/s%n",
                numRecords, recordSize, secs, numRecords / secs, numRecords * (double) recordSize / secs / 1e6);
        }
    }

    /** Flushes the transaction's records, then commits it; counts it and times both into times. */
    private static void commit(KafkaProducer<byte[], byte[]> producer, long[] times) {
        long c = System.nanoTime();
        producer.flush();
        long f = System.nanoTime();
        producer.commitTransaction();
        times[0]++;
        times[1] += System.nanoTime() - c;
        times[2] += f - c;
    }
}
