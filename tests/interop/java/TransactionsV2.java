// A transactional Java producer (kafka-clients) as the transactions e2e test drives it, run as a
// single source file against the toolbox's jars (`java -cp 'jars/*' TransactionsV2.java ...`):
//
//   TransactionsV2 BOOTSTRAP TOPIC TRANSACTIONAL_ID ROUNDS GROUP
//
// Reads the cluster's finalized `transaction.version` (Admin.describeFeatures: the ApiVersions
// answer), then runs ROUNDS transactions of 5 records each, back to back: even rounds commit,
// odd rounds abort. Each transaction also sends an offset of TOPIC-0 for GROUP
// (sendOffsetsToTransaction: with transactions version 2 a TxnOffsetCommit v5 and no
// AddOffsetsToTxn), the round number. Then a read_committed consumer reads TOPIC from the
// start, and Admin reads the producer's epoch (DescribeTransactions: with transactions version
// 2 every EndTxn bumps it) and GROUP's committed offset. Prints one JSON line:
//
//   {"transaction_version": 2, "committed": [...], "aborted": [...], "read_committed": [...],
//    "producer_epoch": N, "group_offset": N}

import java.time.Duration;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.stream.Collectors;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.FeatureMetadata;
import org.apache.kafka.clients.admin.FinalizedVersionRange;
import org.apache.kafka.clients.admin.TransactionDescription;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerGroupMetadata;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

public final class TransactionsV2 {
    public static void main(String[] args) throws Exception {
        String bootstrap = args[0];
        String topic = args[1];
        String transactionalId = args[2];
        int rounds = Integer.parseInt(args[3]);
        String group = args[4];

        Properties ap = new Properties();
        ap.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        int transactionVersion;
        try (Admin admin = Admin.create(ap)) {
            FeatureMetadata features = admin.describeFeatures().featureMetadata().get();
            FinalizedVersionRange tv = features.finalizedFeatures().get("transaction.version");
            transactionVersion = tv == null ? 0 : tv.maxVersionLevel();
        }

        Properties pp = new Properties();
        pp.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        pp.put(ProducerConfig.TRANSACTIONAL_ID_CONFIG, transactionalId);
        pp.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        pp.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        List<String> committed = new ArrayList<>();
        List<String> aborted = new ArrayList<>();
        long expectedOffset = -1;
        try (KafkaProducer<String, String> producer = new KafkaProducer<>(pp)) {
            producer.initTransactions();
            for (int round = 0; round < rounds; round++) {
                boolean commit = round % 2 == 0;
                producer.beginTransaction();
                List<String> values = new ArrayList<>();
                for (int i = 0; i < 5; i++) {
                    String value = (commit ? "c" : "a") + round + "-" + i;
                    producer.send(new ProducerRecord<>(topic, Integer.toString(i), value));
                    values.add(value);
                }
                producer.sendOffsetsToTransaction(
                        Map.of(new TopicPartition(topic, 0), new OffsetAndMetadata(round)),
                        new ConsumerGroupMetadata(group));
                if (commit) {
                    producer.commitTransaction();
                    committed.addAll(values);
                    expectedOffset = round;
                } else {
                    producer.abortTransaction();
                    aborted.addAll(values);
                }
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
            long deadline = System.currentTimeMillis() + 60_000;
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
        Collections.sort(seen);
        Collections.sort(committed);

        short epoch;
        long groupOffset = -1;
        try (Admin admin = Admin.create(ap)) {
            TransactionDescription d = admin.describeTransactions(List.of(transactionalId))
                    .description(transactionalId).get();
            epoch = (short) d.producerEpoch();
            OffsetAndMetadata o = admin.listConsumerGroupOffsets(group)
                    .partitionsToOffsetAndMetadata().get()
                    .get(new TopicPartition(topic, 0));
            if (o != null) {
                groupOffset = o.offset();
            }
        }
        System.out.println("{\"transaction_version\": " + transactionVersion
                + ", \"committed\": " + json(committed)
                + ", \"aborted\": " + json(aborted)
                + ", \"read_committed\": " + json(seen)
                + ", \"producer_epoch\": " + epoch
                + ", \"expected_group_offset\": " + expectedOffset
                + ", \"group_offset\": " + groupOffset + "}");
    }

    static String json(List<String> values) {
        return values.stream().map(v -> "\"" + v + "\"")
                .collect(Collectors.joining(", ", "[", "]"));
    }
}
