// Kafka's Java client (kafka-clients) over TLS, run as a single source file against the toolbox's
// jars (`java -cp 'jars/*' TlsClient.java ...`):
//
//   TlsClient BOOTSTRAP TOPIC COUNT CA_PEM
//
// Every client speaks TLS (security.protocol=SSL), trusts the PEM certificates in CA_PEM
// (ssl.truststore.type=PEM) and checks the broker's name (the default
// ssl.endpoint.identification.algorithm=https). Produces COUNT keyed records with acks=all (the
// topic is auto-created; keys and values as tests/e2e/python/common.py makes them), reads every
// partition back from the beginning to its end offset, asks an Admin for the cluster's nodes,
// and prints one JSON line:
//
//   {"delivered": [[partition, offset, key, value], ...], "records": [...],
//    "brokers": [[id, host, port], ...]}

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.Future;
import java.util.stream.Collectors;

import org.apache.kafka.clients.CommonClientConfigs;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.Node;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.config.SslConfigs;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

public final class TlsClient {
    public static void main(String[] args) throws Exception {
        String bootstrap = args[0];
        String topic = args[1];
        int count = Integer.parseInt(args[2]);
        String ca = args[3];

        Properties tls = new Properties();
        tls.put(CommonClientConfigs.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        tls.put(CommonClientConfigs.SECURITY_PROTOCOL_CONFIG, "SSL");
        tls.put(SslConfigs.SSL_TRUSTSTORE_TYPE_CONFIG, "PEM");
        tls.put(SslConfigs.SSL_TRUSTSTORE_LOCATION_CONFIG, ca);

        List<String> delivered = new ArrayList<>();
        Properties pp = new Properties();
        pp.putAll(tls);
        pp.put(ProducerConfig.ACKS_CONFIG, "all");
        pp.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        pp.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
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
        Properties cp = new Properties();
        cp.putAll(tls);
        cp.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        cp.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        cp.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        try (KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(cp)) {
            List<TopicPartition> partitions = consumer.partitionsFor(topic).stream()
                    .map(p -> new TopicPartition(topic, p.partition()))
                    .collect(Collectors.toList());
            consumer.assign(partitions);
            consumer.seekToBeginning(partitions);
            Map<TopicPartition, Long> end = consumer.endOffsets(partitions);
            long deadline = System.currentTimeMillis() + 60_000;
            while (partitions.stream().anyMatch(tp -> consumer.position(tp) < end.get(tp))) {
                if (System.currentTimeMillis() > deadline) {
                    throw new IllegalStateException("timed out reading " + topic + " up to " + end);
                }
                for (ConsumerRecord<byte[], byte[]> r : consumer.poll(Duration.ofMillis(500))) {
                    records.add(record(r.partition(), r.offset(), text(r.key()), text(r.value())));
                }
            }
        }

        List<String> brokers = new ArrayList<>();
        try (Admin admin = Admin.create(tls)) {
            for (Node n : admin.describeCluster().nodes().get()) {
                brokers.add("[" + n.id() + ", " + quote(n.host()) + ", " + n.port() + "]");
            }
        }

        System.out.println("{\"delivered\": " + delivered + ", \"records\": " + records
                + ", \"brokers\": " + brokers + "}");
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
        return "\"" + s.replace("\\", "\\\\").replace("\"", "\\\"") + "\"";
    }
}
