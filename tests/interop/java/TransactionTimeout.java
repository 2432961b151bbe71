// A Java transactional producer (kafka-clients) whose transaction outlives its timeout, run as a
// single source file against the toolbox's jars (`java -cp 'jars/*' TransactionTimeout.java ...`):
//
//   TransactionTimeout BOOTSTRAP TOPIC TRANSACTIONAL_ID WAIT_MS
//
// With transaction.timeout.ms=1000 it begins a transaction, sends one record ("t") and flushes,
// then waits WAIT_MS (long enough for the coordinator's timer to abort the transaction), sends
// another ("u") and tries to commit. Whatever the commit throws, it does what the client's
// documentation asks of an application: abortTransaction() for an abortable error, give up
// (close) for a fatal one. If it could abort, it runs one more transaction ("c") and commits it.
// A read_committed consumer then reads TOPIC from the start. Prints one JSON line with the class
// of each exception on the way and what was read:
//
//   {"send": "...", "commit": "...", "abort": "...", "next_commit": "...", "read_committed": [...]}
//
// (an empty string where nothing was thrown; "skipped" where the step was not tried).

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.Future;
import java.util.stream.Collectors;

import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.AuthorizationException;
import org.apache.kafka.common.errors.OutOfOrderSequenceException;
import org.apache.kafka.common.errors.ProducerFencedException;
import org.apache.kafka.common.errors.UnsupportedVersionException;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

public final class TransactionTimeout {
    public static void main(String[] args) throws Exception {
        String bootstrap = args[0];
        String topic = args[1];
        String transactionalId = args[2];
        long waitMs = Long.parseLong(args[3]);

        Properties pp = new Properties();
        pp.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        pp.put(ProducerConfig.TRANSACTIONAL_ID_CONFIG, transactionalId);
        pp.put(ProducerConfig.TRANSACTION_TIMEOUT_CONFIG, 1000);
        pp.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, 30_000);
        pp.put(ProducerConfig.REQUEST_TIMEOUT_MS_CONFIG, 10_000);
        pp.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, 30_000);
        pp.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        pp.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        String send = "";
        String commit = "";
        String abort = "skipped";
        String nextCommit = "skipped";
        KafkaProducer<String, String> producer = new KafkaProducer<>(pp);
        try {
            producer.initTransactions();
            producer.beginTransaction();
            producer.send(new ProducerRecord<>(topic, "k", "t")).get();
            Thread.sleep(waitMs);
            Future<RecordMetadata> late = producer.send(new ProducerRecord<>(topic, "k", "u"));
            try {
                late.get();
            } catch (Exception e) {
                send = name(e.getCause() != null ? e.getCause() : e);
            }
            try {
                producer.commitTransaction();
            } catch (Exception e) {
                commit = name(e);
                if (fatal(e)) {
                    producer.close(Duration.ZERO);
                    producer = null;
                }
            }
            if (producer != null && !commit.isEmpty()) {
                abort = "";
                try {
                    producer.abortTransaction();
                } catch (Exception e) {
                    abort = name(e);
                }
            }
            if (producer != null && abort.isEmpty()) {
                nextCommit = "";
                try {
                    producer.beginTransaction();
                    producer.send(new ProducerRecord<>(topic, "k", "c")).get();
                    producer.commitTransaction();
                } catch (Exception e) {
                    nextCommit = name(e);
                }
            }
        } finally {
            if (producer != null) {
                producer.close(Duration.ofSeconds(5));
            }
        }

        Properties cp = new Properties();
        cp.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        cp.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed");
        cp.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        cp.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        cp.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        List<String> seen = new ArrayList<>();
        try (KafkaConsumer<String, String> consumer = new KafkaConsumer<>(cp)) {
            List<TopicPartition> parts = consumer.partitionsFor(topic).stream()
                    .map(p -> new TopicPartition(topic, p.partition()))
                    .collect(Collectors.toList());
            consumer.assign(parts);
            consumer.seekToBeginning(parts);
            Map<TopicPartition, Long> end = consumer.endOffsets(parts);
            long deadline = System.currentTimeMillis() + 30_000;
            while (System.currentTimeMillis() < deadline) {
                boolean done = true;
                for (TopicPartition tp : parts) {
                    if (consumer.position(tp) < end.get(tp)) {
                        done = false;
                    }
                }
                if (done) {
                    break;
                }
                for (ConsumerRecord<String, String> r : consumer.poll(Duration.ofMillis(200))) {
                    seen.add(r.value());
                }
            }
        }
        System.out.println("{\"send\": \"" + send + "\", \"commit\": \"" + commit
                + "\", \"abort\": \"" + abort + "\", \"next_commit\": \"" + nextCommit
                + "\", \"read_committed\": " + seen.stream().map(v -> "\"" + v + "\"")
                        .collect(Collectors.joining(", ", "[", "]")) + "}");
    }

    /** The client's documented fatal errors: the producer can only be closed. */
    private static boolean fatal(Exception e) {
        return e instanceof ProducerFencedException || e instanceof OutOfOrderSequenceException
                || e instanceof UnsupportedVersionException || e instanceof AuthorizationException
                || e instanceof IllegalStateException;
    }

    private static String name(Throwable e) {
        return e.getClass().getSimpleName();
    }
}
