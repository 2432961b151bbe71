// A transactional Java producer (kafka-clients) that runs transactions until told to stop,
// logging each one's outcome as soon as the client knows it: the Java side of the exactly-once
// fault tests (the confluent-kafka side is tests/e2e/python/txn_loop.py, with the same output).
// Run as a single source file against the toolbox's jars:
//
//   TxnLoop BOOTSTRAP TOPIC TRANSACTIONAL_ID PROGRESS PER_TXN SEED
//
// Transaction i (from 1) writes PER_TXN records "t<i:06>-<j:03>", record j to partition j % 2,
// then commits, or one time in four (seeded) flushes them to the log and aborts. On a cluster
// that finalizes transaction.version 2 the client uses transactions version 2 (the partition
// leaders add the partitions through the coordinator). PROGRESS gets a line per transaction:
//   committed i | aborted i | unknown i
// ("unknown": a fatal error or a failed abort; the producer is then replaced by a new one with
// the same id, whose initTransactions() completes or aborts what the old one left). A commit or
// an abort that times out is retried, as the client's contract allows. Stops at a transaction
// boundary once the file PROGRESS.stop exists, and prints one JSON line:
//   {"committed": n, "aborted": n, "unknown": n, "errors": ["..."]}

import java.io.FileWriter;
import java.io.PrintWriter;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Properties;
import java.util.Random;
import java.util.stream.Collectors;

import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.KafkaException;
import org.apache.kafka.common.errors.AuthorizationException;
import org.apache.kafka.common.errors.OutOfOrderSequenceException;
import org.apache.kafka.common.errors.ProducerFencedException;
import org.apache.kafka.common.errors.TimeoutException;
import org.apache.kafka.common.errors.UnsupportedVersionException;
import org.apache.kafka.common.serialization.StringSerializer;

public final class TxnLoop {
    static final List<String> errors = new ArrayList<>();

    static void seen(Exception e) {
        if (errors.size() < 20) {
            errors.add(e.getClass().getSimpleName() + ": " + e.getMessage());
        }
    }

    /** A producer that has initialized the id, or null once the stop file exists. */
    static KafkaProducer<String, String> fresh(String bootstrap, String id, Path stop) {
        while (!Files.exists(stop)) {
            Properties pp = new Properties();
            pp.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
            pp.put(ProducerConfig.TRANSACTIONAL_ID_CONFIG, id);
            pp.put(ProducerConfig.TRANSACTION_TIMEOUT_CONFIG, "30000");
            pp.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, "60000");
            pp.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, "30000");
            pp.put(ProducerConfig.LINGER_MS_CONFIG, "5");
            pp.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
            pp.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
            KafkaProducer<String, String> p = new KafkaProducer<>(pp);
            try {
                p.initTransactions();
                return p;
            } catch (KafkaException e) {
                seen(e);
                p.close(Duration.ZERO);
                sleep(500);
            }
        }
        return null;
    }

    static void sleep(long ms) {
        try {
            Thread.sleep(ms);
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
        }
    }

    /** commitTransaction() / abortTransaction(), retried after a timeout for up to 2 minutes. */
    static void finish(KafkaProducer<String, String> p, boolean commit) {
        long until = System.currentTimeMillis() + 120_000;
        while (true) {
            try {
                if (commit) {
                    p.commitTransaction();
                } else {
                    p.abortTransaction();
                }
                return;
            } catch (TimeoutException e) {
                if (System.currentTimeMillis() > until) {
                    throw e;
                }
                seen(e);
            }
        }
    }

    static boolean fatal(KafkaException e) {
        return e instanceof ProducerFencedException || e instanceof OutOfOrderSequenceException
                || e instanceof AuthorizationException || e instanceof UnsupportedVersionException;
    }

    public static void main(String[] args) throws Exception {
        String bootstrap = args[0];
        String topic = args[1];
        String id = args[2];
        Path progress = Path.of(args[3]);
        int perTxn = Integer.parseInt(args[4]);
        Random rng = new Random(Long.parseLong(args[5]));
        Path stop = Path.of(args[3] + ".stop");
        int committed = 0, aborted = 0, unknown = 0;
        try (PrintWriter log = new PrintWriter(new FileWriter(progress.toFile(), true), true)) {
            KafkaProducer<String, String> p = fresh(bootstrap, id, stop);
            int i = 0;
            while (p != null && !Files.exists(stop)) {
                i++;
                boolean commit = rng.nextDouble() >= 0.25;
                try {
                    p.beginTransaction();
                    for (int j = 0; j < perTxn; j++) {
                        p.send(new ProducerRecord<>(topic, j % 2, null, String.format("t%06d-%03d", i, j)));
                    }
                    if (!commit) {
                        p.flush();
                    }
                    finish(p, commit);
                    if (commit) {
                        committed++;
                        log.println("committed " + i);
                    } else {
                        aborted++;
                        log.println("aborted " + i);
                    }
                } catch (KafkaException e) {
                    seen(e);
                    if (!fatal(e)) {
                        try {
                            finish(p, false);
                            aborted++;
                            log.println("aborted " + i);
                            continue;
                        } catch (KafkaException e2) {
                            seen(e2);
                        }
                    }
                    unknown++;
                    log.println("unknown " + i);
                    p.close(Duration.ZERO);
                    p = fresh(bootstrap, id, stop);
                }
            }
            if (p != null) {
                p.close(Duration.ofSeconds(10));
            }
        }
        String errs = errors.stream()
                .map(e -> "\"" + e.replace("\\", "\\\\").replace("\"", "'").replace("\n", " ") + "\"")
                .collect(Collectors.joining(", ", "[", "]"));
        System.out.println("{\"committed\": " + committed + ", \"aborted\": " + aborted
                + ", \"unknown\": " + unknown + ", \"errors\": " + errs + "}");
    }
}
