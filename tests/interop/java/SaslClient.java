// Kafka's Java client (kafka-clients) with SASL/PLAIN, run as a single source file against the
// toolbox's jars (`java -cp 'jars/*' SaslClient.java ...`):
//
//   SaslClient PROTOCOL BOOTSTRAP TOPIC COUNT USER PASSWORD WRONG_PASSWORD [CA_PEM|- [MECHANISM]]
//
// PROTOCOL is SASL_PLAINTEXT or SASL_SSL; with SASL_SSL the clients trust the PEM certificates in
// CA_PEM (ssl.truststore.type=PEM) and check the broker's name (the default
// ssl.endpoint.identification.algorithm=https). Every client logs in as USER with MECHANISM
// (default PLAIN, with PlainLoginModule; SCRAM-SHA-256 or SCRAM-SHA-512 with ScramLoginModule).
//
// With PASSWORD: produces COUNT keyed records with acks=all (the topic is auto-created; keys and
// values as tests/e2e/python/common.py makes them), reads them back in a consumer group
// subscribed to TOPIC, commits, and asks an Admin for the cluster's nodes. With WRONG_PASSWORD:
// a producer tries to send one record and reports the exception it gets. Prints one JSON line:
//
//   {"delivered": [[partition, offset, key, value], ...], "records": [...],
//    "committed": COUNT_COMMITTED, "brokers": [[id, host, port], ...],
//    "refused": {"exception": CLASS, "message": MESSAGE} | null}

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Properties;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;

import org.apache.kafka.clients.CommonClientConfigs;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.Node;
import org.apache.kafka.common.config.SaslConfigs;
import org.apache.kafka.common.config.SslConfigs;
import org.apache.kafka.common.errors.AuthenticationException;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

public final class SaslClient {
    /** The SASL mechanism every client logs in with. */
    static String mechanism = "PLAIN";

    public static void main(String[] args) throws Exception {
        String protocol = args[0];
        String bootstrap = args[1];
        String topic = args[2];
        int count = Integer.parseInt(args[3]);
        String user = args[4];
        String password = args[5];
        String wrongPassword = args[6];
        String ca = args.length > 7 && !args[7].equals("-") ? args[7] : null;
        mechanism = args.length > 8 ? args[8] : "PLAIN";

        Properties sasl = connection(protocol, bootstrap, ca, user, password);

        List<String> delivered = new ArrayList<>();
        Properties pp = producerConfig(sasl);
        try (KafkaProducer<String, String> producer = new KafkaProducer<>(pp)) {
            List<Future<RecordMetadata>> acks = new ArrayList<>();
            List<String[]> sent = new ArrayList<>();
            for (int i = 0; i < count; i++) {
                String key = String.format("k%04d", i % 50);
                String value = valueOf(i, 100);
                acks.add(producer.send(new ProducerRecord<>(topic, key, value)));
                sent.add(new String[] {key, value});
            }
            producer.flush();
            for (int i = 0; i < count; i++) {
                RecordMetadata m = acks.get(i).get();
                delivered.add(record(m.partition(), m.offset(), sent.get(i)[0], sent.get(i)[1]));
            }
        }

        List<String> records = new ArrayList<>();
        long committed = 0;
        Properties cp = new Properties();
        cp.putAll(sasl);
        cp.put(ConsumerConfig.GROUP_ID_CONFIG, "sasl-java-" + topic);
        cp.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        cp.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        cp.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        cp.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        try (KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(cp)) {
            consumer.subscribe(List.of(topic));
            long deadline = System.currentTimeMillis() + 60_000;
            while (records.size() < count) {
                if (System.currentTimeMillis() > deadline) {
                    throw new IllegalStateException(
                            "timed out: " + records.size() + " of " + count + " records read");
                }
                for (ConsumerRecord<byte[], byte[]> r : consumer.poll(Duration.ofMillis(500))) {
                    records.add(record(r.partition(), r.offset(), text(r.key()), text(r.value())));
                }
            }
            consumer.commitSync();
            for (OffsetAndMetadata o : consumer.committed(consumer.assignment()).values()) {
                committed += o == null ? 0 : o.offset();
            }
        }

        List<String> brokers = new ArrayList<>();
        try (Admin admin = Admin.create(sasl)) {
            for (Node n : admin.describeCluster().nodes().get()) {
                brokers.add("[" + n.id() + ", " + quote(n.host()) + ", " + n.port() + "]");
            }
        }

        String refused = "null";
        Properties wrong = producerConfig(connection(protocol, bootstrap, ca, user, wrongPassword));
        wrong.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, "15000");
        try (KafkaProducer<String, String> producer = new KafkaProducer<>(wrong)) {
            try {
                producer.send(new ProducerRecord<>(topic, "k", "v")).get(30, TimeUnit.SECONDS);
            } catch (Exception e) {
                Throwable cause = e;
                while (cause != null && !(cause instanceof AuthenticationException)) {
                    cause = cause.getCause();
                }
                Throwable reported = cause == null ? e : cause;
                refused = "{\"exception\": " + quote(reported.getClass().getSimpleName())
                        + ", \"message\": " + quote(reported.getMessage()) + "}";
            }
        }

        System.out.println("{\"delivered\": " + delivered + ", \"records\": " + records
                + ", \"committed\": " + committed + ", \"brokers\": " + brokers
                + ", \"refused\": " + refused + "}");
    }

    /** The connection settings of a client logging in as user with password. */
    static Properties connection(
            String protocol, String bootstrap, String ca, String user, String password) {
        Properties p = new Properties();
        p.put(CommonClientConfigs.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(CommonClientConfigs.SECURITY_PROTOCOL_CONFIG, protocol);
        p.put(SaslConfigs.SASL_MECHANISM, mechanism);
        String module = mechanism.startsWith("SCRAM-")
                ? "org.apache.kafka.common.security.scram.ScramLoginModule"
                : "org.apache.kafka.common.security.plain.PlainLoginModule";
        p.put(SaslConfigs.SASL_JAAS_CONFIG,
                module + " required username=" + quote(user) + " password=" + quote(password)
                        + ";");
        if (ca != null) {
            p.put(SslConfigs.SSL_TRUSTSTORE_TYPE_CONFIG, "PEM");
            p.put(SslConfigs.SSL_TRUSTSTORE_LOCATION_CONFIG, ca);
        }
        return p;
    }

    static Properties producerConfig(Properties connection) {
        Properties pp = new Properties();
        pp.putAll(connection);
        pp.put(ProducerConfig.ACKS_CONFIG, "all");
        pp.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        pp.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        return pp;
    }

    /** Value of record i, as common.py's value_of makes it. */
    static String valueOf(int i, int size) {
        StringBuilder v = new StringBuilder(String.format("v%07d|", i));
        while (v.length() < size) {
            v.append("gregor-e2e ");
        }
        return v.substring(0, Math.max(size, 9));
    }

    static String record(int partition, long offset, String key, String value) {
        return "[" + partition + ", " + offset + ", " + quote(key) + ", " + quote(value) + "]";
    }

    static String text(byte[] b) {
        return b == null ? null : new String(b, StandardCharsets.UTF_8);
    }

    static String quote(String s) {
        if (s == null) {
            return "null";
        }
        return "\"" + s.replace("\\", "\\\\").replace("\"", "\\\"").replace("\n", "\\n")
                + "\"";
    }
}
