// A Java consumer (kafka-clients) in a rack (KIP-392), run as a single source file against the
// toolbox's jars (`java -cp 'jars/*' RackConsumer.java ...`):
//
//   RackConsumer BOOTSTRAP TOPIC COUNT RACK
//
// Reads the brokers' racks (Admin.describeCluster), then reads COUNT records of TOPIC-0 from the
// start with client.rack=RACK, and prints one JSON line with the racks and the bytes the
// consumer received from each node (its `consumer-node-metrics` `incoming-byte-total`, which
// counts every response from that node):
//
//   {"racks": {"1": "RACK1", ...}, "consumed": N, "bytes": {"1": B, ...}}

import java.time.Duration;
import java.util.Collections;
import java.util.Map;
import java.util.Properties;
import java.util.TreeMap;
import java.util.stream.Collectors;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.common.Metric;
import org.apache.kafka.common.MetricName;
import org.apache.kafka.common.Node;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;

public final class RackConsumer {
    public static void main(String[] args) throws Exception {
        String bootstrap = args[0];
        String topic = args[1];
        int count = Integer.parseInt(args[2]);
        String rack = args[3];

        Map<String, String> racks = new TreeMap<>();
        Properties ap = new Properties();
        ap.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        try (Admin admin = Admin.create(ap)) {
            for (Node n : admin.describeCluster().nodes().get()) {
                racks.put(String.valueOf(n.id()), n.rack());
            }
        }

        Properties cp = new Properties();
        cp.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        cp.put(ConsumerConfig.CLIENT_RACK_CONFIG, rack);
        cp.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        cp.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        cp.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        int consumed = 0;
        Map<String, Double> bytes = new TreeMap<>();
        try (KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(cp)) {
            TopicPartition tp = new TopicPartition(topic, 0);
            consumer.assign(Collections.singletonList(tp));
            consumer.seekToBeginning(Collections.singletonList(tp));
            long deadline = System.currentTimeMillis() + 60_000;
            while (consumed < count && System.currentTimeMillis() < deadline) {
                consumed += consumer.poll(Duration.ofMillis(500)).count();
            }
            for (Map.Entry<MetricName, ? extends Metric> e : consumer.metrics().entrySet()) {
                MetricName m = e.getKey();
                String node = m.tags().get("node-id");
                if (m.group().equals("consumer-node-metrics") && m.name().equals("incoming-byte-total")
                        && node != null && node.startsWith("node-") && !node.startsWith("node--")) {
                    bytes.put(node.substring("node-".length()), (Double) e.getValue().metricValue());
                }
            }
        }
        String racksJson = racks.entrySet().stream()
                .map(e -> "\"" + e.getKey() + "\": " + (e.getValue() == null ? "null" : "\"" + e.getValue() + "\""))
                .collect(Collectors.joining(", ", "{", "}"));
        String bytesJson = bytes.entrySet().stream()
                .map(e -> "\"" + e.getKey() + "\": " + e.getValue().longValue())
                .collect(Collectors.joining(", ", "{", "}"));
        System.out.println("{\"racks\": " + racksJson + ", \"consumed\": " + consumed + ", \"bytes\": " + bytesJson + "}");
    }
}
