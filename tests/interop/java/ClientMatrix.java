// The client matrix's driver for Apache Kafka's Java clients (kafka-clients, kafka-streams),
// compiled by scripts/toolbox against the toolbox's jars. Same arguments and JSON line as every
// matrix driver (tests/e2e/python/matrix_client.py describes them):
//
//   ClientMatrix create|produce|consume|describe BOOTSTRAP TOPIC GROUP N [KEY=VALUE ...]
//       [--OPTION=VALUE ...]
//   ClientMatrix streams-wordcount BOOTSTRAP TOPIC APPLICATION_ID ROUND [KEY=VALUE ...]
//
// streams-wordcount produces the ROUND-th batch of sentences to TOPIC, runs a Kafka Streams word
// count (at-least-once) from TOPIC to TOPIC-counts until the counts of rounds 1..ROUND all show,
// closes the application, and says whether the counts are exact: a round that re-reads input
// the last one committed counts a word twice, one that loses its state or input counts too few.
// Client settings are the defaults, except the KEY=VALUE settings the matrix passes to the
// producer (produce) or the consumer (consume). The --OPTION=VALUE connection settings
// (security.protocol, sasl.mechanism, sasl.username, sasl.password, ssl.ca.location) apply to
// every client of the step; see security().

import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collection;
import java.util.HashMap;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.TreeMap;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.ConsumerGroupDescription;
import org.apache.kafka.clients.admin.GroupListing;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.TopicExistsException;
import org.apache.kafka.common.serialization.LongDeserializer;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;
import org.apache.kafka.common.utils.internals.AppInfoParser;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.kstream.Grouped;
import org.apache.kafka.streams.kstream.KStream;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.kstream.Produced;

public final class ClientMatrix {
    static final long TIMEOUT_MS = 60_000;

    /** The connection settings of every client of this run (security()). */
    static final Properties SECURITY = new Properties();

    public static void main(String[] args) {
        Map<String, Object> doc = new LinkedHashMap<>();
        doc.put("ok", false);
        doc.put("version", AppInfoParser.getVersion());
        try {
            String step = args[0], bootstrap = args[1], topic = args[2], group = args[3];
            int n = Integer.parseInt(args[4]);
            Map<String, String> props = new LinkedHashMap<>();
            Map<String, String> options = new LinkedHashMap<>();
            for (String kv : Arrays.asList(args).subList(5, args.length)) {
                boolean option = kv.startsWith("--");
                int eq = kv.indexOf('=');
                (option ? options : props)
                        .put(kv.substring(option ? 2 : 0, eq), kv.substring(eq + 1));
            }
            SECURITY.putAll(security(options));
            switch (step) {
                case "create" -> create(bootstrap, topic, n, doc);
                case "produce" -> produce(bootstrap, topic, n, props, doc);
                case "consume" -> consume(bootstrap, topic, group, n, props, doc);
                case "describe" -> describe(bootstrap, topic, group, doc);
                case "streams-wordcount" -> wordCount(bootstrap, topic, group, n, props, doc);
                default -> throw new IllegalArgumentException("unknown step " + step);
            }
        } catch (Throwable e) {
            e.printStackTrace();
            doc.put("ok", false);
            doc.put("error", reason(e));
        }
        System.out.println(json(doc));
        System.out.flush();
        // Lingering client threads must not keep the JVM up.
        System.exit(0);
    }

    /** The innermost cause's class and message: what a user would search for. */
    static String reason(Throwable e) {
        Throwable t = e;
        while (t.getCause() != null && t.getCause() != t) {
            t = t.getCause();
        }
        return t.getClass().getSimpleName() + ": " + t.getMessage();
    }

    /**
     * The matrix's connection options (librdkafka's names) as kafka-clients settings: the user
     * and password become a JAAS line of the mechanism's login module, the CA a PEM truststore.
     */
    static Properties security(Map<String, String> options) {
        Properties p = new Properties();
        for (String key : List.of("security.protocol", "sasl.mechanism")) {
            if (options.containsKey(key)) {
                p.put(key, options.get(key));
            }
        }
        if (options.containsKey("sasl.username")) {
            String module = options.getOrDefault("sasl.mechanism", "PLAIN").startsWith("SCRAM-")
                    ? "org.apache.kafka.common.security.scram.ScramLoginModule"
                    : "org.apache.kafka.common.security.plain.PlainLoginModule";
            p.put("sasl.jaas.config", module + " required username=\""
                    + options.get("sasl.username") + "\" password=\""
                    + options.getOrDefault("sasl.password", "") + "\";");
        }
        if (options.containsKey("ssl.ca.location")) {
            p.put("ssl.truststore.type", "PEM");
            p.put("ssl.truststore.location", options.get("ssl.ca.location"));
        }
        return p;
    }

    static Properties common(String bootstrap) {
        Properties p = new Properties();
        p.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.putAll(SECURITY);
        return p;
    }

    static void create(String bootstrap, String topic, int partitions, Map<String, Object> doc)
            throws Exception {
        try (Admin admin = Admin.create(common(bootstrap))) {
            try {
                admin.createTopics(List.of(new NewTopic(topic, partitions, (short) -1)))
                        .all().get(TIMEOUT_MS, TimeUnit.MILLISECONDS);
            } catch (java.util.concurrent.ExecutionException e) {
                if (!(e.getCause() instanceof TopicExistsException)) {
                    throw e;
                }
            }
        }
        doc.put("ok", true);
    }

    static KafkaProducer<String, String> producer(String bootstrap, Map<String, String> props) {
        Properties p = common(bootstrap);
        p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        p.putAll(props);
        return new KafkaProducer<>(p);
    }

    static void produce(String bootstrap, String topic, int n, Map<String, String> props,
            Map<String, Object> doc) throws Exception {
        try (KafkaProducer<String, String> producer = producer(bootstrap, props)) {
            List<Future<RecordMetadata>> sent = new ArrayList<>();
            for (int i = 0; i < n; i++) {
                sent.add(producer.send(new ProducerRecord<>(topic, "k" + i, "v" + i)));
            }
            producer.flush();
            for (Future<RecordMetadata> f : sent) {
                f.get(TIMEOUT_MS, TimeUnit.MILLISECONDS);
            }
        }
        doc.put("ok", true);
        doc.put("produced", n);
    }

    static void consume(String bootstrap, String topic, String group, int n,
            Map<String, String> props, Map<String, Object> doc) {
        Properties p = common(bootstrap);
        p.put(ConsumerConfig.GROUP_ID_CONFIG, group);
        p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        p.putAll(props);
        List<String> keys = new ArrayList<>();
        Map<TopicPartition, OffsetAndMetadata> processed = new HashMap<>();
        try (KafkaConsumer<String, String> consumer = new KafkaConsumer<>(p)) {
            consumer.subscribe(List.of(topic));
            long deadline = System.currentTimeMillis() + TIMEOUT_MS;
            while (keys.size() < n && System.currentTimeMillis() < deadline) {
                for (ConsumerRecord<String, String> r : consumer.poll(Duration.ofMillis(500))) {
                    if (keys.size() >= n) {
                        break;
                    }
                    keys.add(r.key());
                    processed.put(new TopicPartition(r.topic(), r.partition()),
                            new OffsetAndMetadata(r.offset() + 1));
                }
            }
            if (!processed.isEmpty()) {
                consumer.commitSync(processed);
            }
        }
        doc.put("ok", keys.size() >= n);
        doc.put("keys", keys);
        if (keys.size() < n) {
            doc.put("error", "consumed " + keys.size() + " of " + n + " records in 60 s");
        }
    }

    interface Check {
        void run() throws Exception;
    }

    static void describe(String bootstrap, String topic, String group, Map<String, Object> doc)
            throws Exception {
        Map<String, Object> steps = new LinkedHashMap<>();
        try (Admin admin = Admin.create(common(bootstrap))) {
            Map<String, Check> checks = new LinkedHashMap<>();
            checks.put("list topics", () -> {
                if (!admin.listTopics().names().get(TIMEOUT_MS, TimeUnit.MILLISECONDS)
                        .contains(topic)) {
                    throw new IllegalStateException(topic + " not listed");
                }
            });
            checks.put("describe topic", () -> {
                TopicDescription d = admin.describeTopics(List.of(topic)).allTopicNames()
                        .get(TIMEOUT_MS, TimeUnit.MILLISECONDS).get(topic);
                if (d == null || d.partitions().isEmpty()) {
                    throw new IllegalStateException("no partitions: " + d);
                }
            });
            checks.put("describe cluster", () -> {
                if (admin.describeCluster().nodes().get(TIMEOUT_MS, TimeUnit.MILLISECONDS)
                        .isEmpty()) {
                    throw new IllegalStateException("no brokers");
                }
            });
            checks.put("list groups", () -> {
                Collection<GroupListing> groups =
                        admin.listGroups().all().get(TIMEOUT_MS, TimeUnit.MILLISECONDS);
                if (groups.stream().noneMatch(g -> g.groupId().equals(group))) {
                    throw new IllegalStateException(group + " not listed");
                }
            });
            checks.put("describe group", () -> {
                ConsumerGroupDescription d = admin.describeConsumerGroups(List.of(group)).all()
                        .get(TIMEOUT_MS, TimeUnit.MILLISECONDS).get(group);
                if (d == null || !d.groupState().toString().equalsIgnoreCase("Empty")) {
                    throw new IllegalStateException("describe: " + d);
                }
            });
            for (Map.Entry<String, Check> c : checks.entrySet()) {
                try {
                    c.getValue().run();
                    steps.put(c.getKey(), "ok");
                } catch (Exception e) {
                    steps.put(c.getKey(), reason(e));
                    doc.putIfAbsent("error", c.getKey() + ": " + reason(e));
                }
            }
        }
        doc.put("steps", steps);
        doc.put("ok", !doc.containsKey("error"));
    }

    /** The sentences of one round of the word count. */
    static List<String> sentences(int round) {
        List<String> out = new ArrayList<>();
        for (int i = 0; i < 30; i++) {
            out.add("round" + round + " all streams gregor word" + (i % 5));
        }
        return out;
    }

    static void wordCount(String bootstrap, String input, String applicationId, int round,
            Map<String, String> props, Map<String, Object> doc) throws Exception {
        String output = input + "-counts";
        try (Admin admin = Admin.create(common(bootstrap))) {
            try {
                admin.createTopics(List.of(new NewTopic(input, 3, (short) -1),
                        new NewTopic(output, 3, (short) -1)))
                        .all().get(TIMEOUT_MS, TimeUnit.MILLISECONDS);
            } catch (java.util.concurrent.ExecutionException e) {
                if (!(e.getCause() instanceof TopicExistsException)) {
                    throw e;
                }
            }
        }
        Map<String, Long> expected = new TreeMap<>();
        for (int r = 1; r <= round; r++) {
            for (String s : sentences(r)) {
                for (String w : s.split(" ")) {
                    expected.merge(w, 1L, Long::sum);
                }
            }
        }
        try (KafkaProducer<String, String> producer = producer(bootstrap, props)) {
            for (String s : sentences(round)) {
                producer.send(new ProducerRecord<>(input, null, s)).get(TIMEOUT_MS,
                        TimeUnit.MILLISECONDS);
            }
        }

        Properties p = common(bootstrap);
        p.put(StreamsConfig.APPLICATION_ID_CONFIG, applicationId);
        p.put(StreamsConfig.DEFAULT_KEY_SERDE_CLASS_CONFIG, Serdes.StringSerde.class);
        p.put(StreamsConfig.DEFAULT_VALUE_SERDE_CLASS_CONFIG, Serdes.StringSerde.class);
        p.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, StreamsConfig.AT_LEAST_ONCE);
        // A round's members do not leave the group when they close (Streams' default), so the
        // next round's rebalance waits for their sessions to expire: keep that short, as a test
        // against Apache Kafka would.
        p.put(StreamsConfig.consumerPrefix(ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG), 6000);
        p.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, 1000);
        java.nio.file.Path stateDir = java.nio.file.Files.createTempDirectory("gregor-streams");
        p.put(StreamsConfig.STATE_DIR_CONFIG, stateDir.toString());
        // processing.guarantee is the application's; every other setting is its producer's.
        for (Map.Entry<String, String> e : props.entrySet()) {
            if (e.getKey().equals(StreamsConfig.PROCESSING_GUARANTEE_CONFIG)) {
                p.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, e.getValue());
            } else {
                p.put(StreamsConfig.producerPrefix(e.getKey()), e.getValue());
            }
        }
        StreamsBuilder builder = new StreamsBuilder();
        KStream<String, String> lines = builder.stream(input);
        lines.flatMapValues(v -> Arrays.asList(v.split(" ")))
                .groupBy((k, w) -> w, Grouped.with(Serdes.String(), Serdes.String()))
                .count(Materialized.as("counts"))
                .toStream()
                .to(output, Produced.with(Serdes.String(), Serdes.Long()));

        Map<String, Long> seen = new TreeMap<>();
        KafkaStreams streams = new KafkaStreams(builder.build(), p);
        Throwable[] failed = new Throwable[1];
        streams.setUncaughtExceptionHandler(e -> {
            failed[0] = e;
            return org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler
                    .StreamThreadExceptionResponse.SHUTDOWN_CLIENT;
        });
        streams.start();
        System.err.println("ClientMatrix: streams started");
        Properties c = common(bootstrap);
        c.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        c.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, LongDeserializer.class.getName());
        try (KafkaConsumer<String, Long> reader = new KafkaConsumer<>(c)) {
            List<TopicPartition> parts = new ArrayList<>();
            for (int i = 0; i < 3; i++) {
                parts.add(new TopicPartition(output, i));
            }
            reader.assign(parts);
            reader.seekToBeginning(parts);
            long deadline = System.currentTimeMillis() + TIMEOUT_MS;
            while (System.currentTimeMillis() < deadline && failed[0] == null
                    && !reached(seen, expected)) {
                for (ConsumerRecord<String, Long> r : reader.poll(Duration.ofMillis(500))) {
                    seen.put(r.key(), r.value());
                }
            }
            System.err.println("ClientMatrix: counts reached or timed out");
            // A re-read would keep counting: give it a moment to show.
            long settle = System.currentTimeMillis() + 2_000;
            while (System.currentTimeMillis() < settle) {
                for (ConsumerRecord<String, Long> r : reader.poll(Duration.ofMillis(200))) {
                    seen.put(r.key(), r.value());
                }
            }
        } finally {
            streams.close(Duration.ofSeconds(30));
            // The state directory is this run's alone: nothing is left behind in the temp dir.
            try (java.util.stream.Stream<java.nio.file.Path> all = java.nio.file.Files.walk(stateDir)) {
                all.sorted(java.util.Comparator.reverseOrder()).forEach(f -> f.toFile().delete());
            } catch (java.io.IOException e) {
                // Best effort: a leftover directory changes no outcome.
            }
        }
        doc.put("counts", seen);
        if (failed[0] != null) {
            doc.put("error", "the stream thread died: " + reason(failed[0]));
        } else if (!seen.equals(expected)) {
            Map<String, String> diff = new TreeMap<>();
            for (String w : expected.keySet()) {
                if (!expected.get(w).equals(seen.get(w))) {
                    diff.put(w, seen.get(w) + " (want " + expected.get(w) + ")");
                }
            }
            doc.put("error", "counts differ: " + diff);
        } else {
            doc.put("ok", true);
        }
    }

    static boolean reached(Map<String, Long> seen, Map<String, Long> expected) {
        for (Map.Entry<String, Long> e : expected.entrySet()) {
            Long got = seen.get(e.getKey());
            if (got == null || got < e.getValue()) {
                return false;
            }
        }
        return true;
    }

    static String json(Object o) {
        if (o == null) {
            return "null";
        } else if (o instanceof Boolean || o instanceof Number) {
            return o.toString();
        } else if (o instanceof Map<?, ?> m) {
            List<String> parts = new ArrayList<>();
            for (Map.Entry<?, ?> e : m.entrySet()) {
                parts.add(json(e.getKey().toString()) + ":" + json(e.getValue()));
            }
            return "{" + String.join(",", parts) + "}";
        } else if (o instanceof Collection<?> c) {
            List<String> parts = new ArrayList<>();
            for (Object x : c) {
                parts.add(json(x));
            }
            return "[" + String.join(",", parts) + "]";
        }
        StringBuilder b = new StringBuilder("\"");
        for (char ch : o.toString().toCharArray()) {
            switch (ch) {
                case '"' -> b.append("\\\"");
                case '\\' -> b.append("\\\\");
                case '\n' -> b.append("\\n");
                case '\r' -> b.append("\\r");
                case '\t' -> b.append("\\t");
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
