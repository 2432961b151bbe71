// Kafka's Java client (kafka-clients) across SASL session lifetimes (KIP-368), run as a single
// source file against the toolbox's jars (`java -cp 'jars/*' SaslReauth.java ...`):
//
//   SaslReauth BOOTSTRAP TOPIC MECHANISM USER PASSWORD RUN_MS READY_FILE DELETED_FILE
//
// Every client logs in over SASL_PLAINTEXT as USER with MECHANISM (PLAIN with PlainLoginModule,
// SCRAM-SHA-256/512 with ScramLoginModule). The broker gives sessions a lifetime
// (connections.max.reauth.ms), so the clients must re-authenticate on their connections.
//
// Phase 1: for RUN_MS a producer (acks=all) sends a keyed record every 50 ms to TOPIC (which
// must exist) while a consumer in a group reads them; then the consumer reads until it has every
// acknowledged record and commits. Any exception is recorded.
//
// Then it creates READY_FILE and waits for DELETED_FILE (the test deletes the user's credential
// in between). Phase 2: both clients, whose connections are still logged in, go on (a record
// sent and a poll every 100 ms) until one is told its authentication failed, for at most 30 s;
// it records how long after DELETED_FILE that was, the exception, and the other errors of phase
// 2.
//
// Prints one JSON line:
//
//   {"delivered": [[partition, offset, key, value], ...], "records": [...], "errors": [...],
//    "reauth": {"producer": N, "consumer": N, "failed": N},
//    "refused": {"exception": CLASS, "message": MESSAGE, "after_ms": MS, "errors": [...]} | null}
//
// "reauth" sums the clients' successful-reauthentication-total and failed-reauthentication-total
// metrics at the end of phase 1.

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;

import org.apache.kafka.clients.CommonClientConfigs;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.Metric;
import org.apache.kafka.common.MetricName;
import org.apache.kafka.common.config.SaslConfigs;
import org.apache.kafka.common.errors.AuthenticationException;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

public final class SaslReauth {
    public static void main(String[] args) throws Exception {
        String bootstrap = args[0];
        String topic = args[1];
        String mechanism = args[2];
        String user = args[3];
        String password = args[4];
        long runMs = Long.parseLong(args[5]);
        Path ready = Path.of(args[6]);
        Path deleted = Path.of(args[7]);

        Properties common = new Properties();
        common.put(CommonClientConfigs.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        common.put(CommonClientConfigs.SECURITY_PROTOCOL_CONFIG, "SASL_PLAINTEXT");
        common.put(SaslConfigs.SASL_MECHANISM, mechanism);
        String module = mechanism.equals("PLAIN")
                ? "org.apache.kafka.common.security.plain.PlainLoginModule"
                : "org.apache.kafka.common.security.scram.ScramLoginModule";
        common.put(SaslConfigs.SASL_JAAS_CONFIG, module + " required username=\"" + user
                + "\" password=\"" + password + "\";");

        Properties p = new Properties();
        p.putAll(common);
        p.put(ProducerConfig.ACKS_CONFIG, "all");
        p.put(ProducerConfig.LINGER_MS_CONFIG, "0");
        p.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, "20000");
        p.put(ProducerConfig.REQUEST_TIMEOUT_MS_CONFIG, "10000");
        p.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, "10000");
        p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());

        Properties c = new Properties();
        c.putAll(common);
        c.put(ConsumerConfig.GROUP_ID_CONFIG, topic + "-group");
        c.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        c.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        c.put(ConsumerConfig.FETCH_MAX_WAIT_MS_CONFIG, "200");
        c.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        c.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());

        List<String> errors = new ArrayList<>();
        List<String> delivered = new ArrayList<>();
        List<String> records = new ArrayList<>();
        long producerReauth;
        long consumerReauth;
        long failedReauth;
        String refused = "null";
        try (KafkaProducer<String, String> producer = new KafkaProducer<>(p)) {
            List<Future<RecordMetadata>> sends = new ArrayList<>();
            List<String[]> sent = new ArrayList<>();
            try (KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(c)) {
                consumer.subscribe(List.of(topic));
                long end = System.currentTimeMillis() + runMs;
                int i = 0;
                while (System.currentTimeMillis() < end) {
                    // Keys and values as tests/e2e/python/common.py makes them.
                    String key = String.format("k%04d", i % 50);
                    String value = String.format("v%07d|across session lifetimes", i);
                    try {
                        sends.add(producer.send(new ProducerRecord<>(topic, key, value)));
                        sent.add(new String[] {key, value});
                    } catch (Exception e) {
                        errors.add("send: " + e);
                    }
                    i++;
                    poll(consumer, records, errors, 50);
                }
                producer.flush();
                for (int j = 0; j < sends.size(); j++) {
                    try {
                        RecordMetadata m = sends.get(j).get(30, TimeUnit.SECONDS);
                        delivered.add(record(m.partition(), m.offset(), sent.get(j)[0], sent.get(j)[1]));
                    } catch (ExecutionException e) {
                        errors.add("delivery: " + e.getCause());
                    }
                }
                long deadline = System.currentTimeMillis() + 30_000;
                while (records.size() < delivered.size() && System.currentTimeMillis() < deadline) {
                    poll(consumer, records, errors, 200);
                }
                try {
                    consumer.commitSync(Duration.ofSeconds(10));
                } catch (Exception e) {
                    errors.add("commit: " + e);
                }
                consumerReauth = total(consumer.metrics(), "successful-reauthentication-total");
                failedReauth = total(consumer.metrics(), "failed-reauthentication-total");
                producerReauth = total(producer.metrics(), "successful-reauthentication-total");
                failedReauth += total(producer.metrics(), "failed-reauthentication-total");

                Files.writeString(ready, "phase 1 done\n");
                long waitUntil = System.currentTimeMillis() + 60_000;
                while (!Files.exists(deleted) && System.currentTimeMillis() < waitUntil) {
                    Thread.sleep(50);
                }
                // Phase 2: both clients go on until one is told its authentication failed. The
                // consumer's poll throws it; the producer's sends, with the topic's metadata
                // cached, only wait (Kafka's producer fails them at delivery.timeout.ms).
                long deletedAt = System.currentTimeMillis();
                List<Future<RecordMetadata>> after = new ArrayList<>();
                List<String> afterErrors = new ArrayList<>();
                while (refused.equals("null") && System.currentTimeMillis() < deletedAt + 30_000) {
                    Throwable failure = null;
                    try {
                        after.add(producer.send(new ProducerRecord<>(topic, "after", "deletion")));
                        consumer.poll(Duration.ofMillis(100));
                    } catch (AuthenticationException e) {
                        failure = e;
                    } catch (Exception e) {
                        afterErrors.add(e.toString());
                    }
                    for (Future<RecordMetadata> f : after) {
                        if (failure == null && f.isDone()) {
                            try {
                                f.get();
                            } catch (ExecutionException e) {
                                if (e.getCause() instanceof AuthenticationException) {
                                    failure = e.getCause();
                                }
                            }
                        }
                    }
                    if (failure != null) {
                        refused = "{\"exception\": " + quote(failure.getClass().getSimpleName())
                                + ", \"message\": " + quote(String.valueOf(failure.getMessage()))
                                + ", \"after_ms\": " + (System.currentTimeMillis() - deletedAt)
                                + ", \"errors\": [" + String.join(", ",
                                        afterErrors.stream().map(SaslReauth::quote).toList()) + "]}";
                    }
                }
                closeQuietly(() -> consumer.close(Duration.ofSeconds(1)));
            }
            closeQuietly(() -> producer.close(Duration.ofSeconds(1)));
        }
        System.out.println("{\"delivered\": [" + String.join(", ", delivered) + "], \"records\": ["
                + String.join(", ", records) + "], \"errors\": [" + String.join(", ",
                errors.stream().map(SaslReauth::quote).toList()) + "], \"reauth\": {\"producer\": "
                + producerReauth + ", \"consumer\": " + consumerReauth + ", \"failed\": "
                + failedReauth + "}, \"refused\": " + refused + "}");
    }

    static void poll(KafkaConsumer<byte[], byte[]> consumer, List<String> records, List<String> errors,
            long ms) {
        try {
            for (ConsumerRecord<byte[], byte[]> r : consumer.poll(Duration.ofMillis(ms))) {
                records.add(record(r.partition(), r.offset(),
                        new String(r.key(), StandardCharsets.UTF_8),
                        new String(r.value(), StandardCharsets.UTF_8)));
            }
        } catch (Exception e) {
            errors.add("poll: " + e);
        }
    }

    /** Closing a client whose login was refused may throw that refusal again. */
    static void closeQuietly(Runnable close) {
        try {
            close.run();
        } catch (Exception e) {
            // Told already.
        }
    }

    static long total(Map<MetricName, ? extends Metric> metrics, String name) {
        double sum = 0;
        for (Map.Entry<MetricName, ? extends Metric> e : metrics.entrySet()) {
            if (e.getKey().name().equals(name) && e.getValue().metricValue() instanceof Double d) {
                sum += d;
            }
        }
        return (long) sum;
    }

    static String record(int partition, long offset, String key, String value) {
        return "[" + partition + ", " + offset + ", " + quote(key) + ", " + quote(value) + "]";
    }

    static String quote(String s) {
        StringBuilder b = new StringBuilder("\"");
        for (char ch : s.toCharArray()) {
            switch (ch) {
                case '"' -> b.append("\\\"");
                case '\\' -> b.append("\\\\");
                case '\n' -> b.append("\\n");
                default -> {
                    if (ch < 0x20) {
                        b.append(String.format("\\u%04x", (int) ch));
                    } else {
                        b.append(ch);
                    }
                }
            }
        }
        return b.append('"').toString();
    }
}
