// Kafka's Java client (kafka-clients) logging in with a delegation token (KIP-48), run as a
// single source file against the toolbox's jars (`java -cp 'jars/*' TokenClient.java ...`):
//
//   TokenClient BOOTSTRAP TOPIC COUNT TOKEN_ID HMAC MODE
//
// Every client uses SASL_PLAINTEXT and SCRAM-SHA-512 with
// `ScramLoginModule required username="<TOKEN_ID>" password="<HMAC>" tokenauth="true";`.
// MODE `ok`: produces COUNT records with acks=all to TOPIC, reads them back (no group) and
// tries to create a delegation token with the token's own login, which Kafka refuses. MODE
// `refused`: a producer tries to send one record. Prints one JSON line:
//
//   {"delivered": N, "read": N, "token_create": EXCEPTION_CLASS | null,
//    "refused": {"exception": CLASS, "message": MESSAGE} | null}

import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Properties;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;

import org.apache.kafka.clients.CommonClientConfigs;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.config.SaslConfigs;
import org.apache.kafka.common.errors.AuthenticationException;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

public final class TokenClient {
    public static void main(String[] args) throws Exception {
        String bootstrap = args[0];
        String topic = args[1];
        int count = Integer.parseInt(args[2]);
        Properties login = new Properties();
        login.put(CommonClientConfigs.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        login.put(CommonClientConfigs.SECURITY_PROTOCOL_CONFIG, "SASL_PLAINTEXT");
        login.put(SaslConfigs.SASL_MECHANISM, "SCRAM-SHA-512");
        login.put(SaslConfigs.SASL_JAAS_CONFIG,
                "org.apache.kafka.common.security.scram.ScramLoginModule required username=\""
                        + args[3] + "\" password=\"" + args[4] + "\" tokenauth=\"true\";");
        Properties pp = new Properties();
        pp.putAll(login);
        pp.put(ProducerConfig.ACKS_CONFIG, "all");
        pp.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        pp.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        pp.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, "20000");

        if (args[5].equals("refused")) {
            String refused = "null";
            try (KafkaProducer<String, String> producer = new KafkaProducer<>(pp)) {
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
            System.out.println("{\"delivered\": 0, \"read\": 0, \"token_create\": null, \"refused\": "
                    + refused + "}");
            return;
        }

        int delivered = 0;
        try (KafkaProducer<String, String> producer = new KafkaProducer<>(pp)) {
            List<Future<RecordMetadata>> acks = new ArrayList<>();
            for (int i = 0; i < count; i++) {
                acks.add(producer.send(new ProducerRecord<>(topic, "k" + i, "v" + i)));
            }
            producer.flush();
            for (Future<RecordMetadata> f : acks) {
                f.get();
                delivered++;
            }
        }

        int read = 0;
        Properties cp = new Properties();
        cp.putAll(login);
        cp.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        cp.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        try (KafkaConsumer<String, String> consumer = new KafkaConsumer<>(cp)) {
            List<TopicPartition> parts = new ArrayList<>();
            consumer.partitionsFor(topic).forEach(p -> parts.add(new TopicPartition(topic, p.partition())));
            consumer.assign(parts);
            consumer.seekToBeginning(parts);
            long deadline = System.currentTimeMillis() + 60_000;
            while (read < count && System.currentTimeMillis() < deadline) {
                read += consumer.poll(Duration.ofMillis(500)).count();
            }
        }

        String tokenCreate = "null";
        try (Admin admin = Admin.create(login)) {
            admin.createDelegationToken().delegationToken().get(30, TimeUnit.SECONDS);
        } catch (Exception e) {
            Throwable cause = e.getCause() == null ? e : e.getCause();
            tokenCreate = quote(cause.getClass().getSimpleName());
        }
        System.out.println("{\"delivered\": " + delivered + ", \"read\": " + read
                + ", \"token_create\": " + tokenCreate + ", \"refused\": null}");
    }

    static String quote(String s) {
        if (s == null) {
            return "null";
        }
        return "\"" + s.replace("\\", "\\\\").replace("\"", "\\\"").replace("\n", "\\n") + "\"";
    }
}
