// One Kafka Streams 4.4 instance on `group.protocol=streams` (KIP-1071), held running so that a
// test can look at its streams group with Kafka's own tools (kafka-streams-groups.sh) meanwhile;
// run as a single source file against the toolbox's jars (kafka-streams and kafka-clients 4.4):
//
//   StreamsGroupHold BOOTSTRAP TOPIC_PREFIX APPLICATION_ID [STOP_FILE]
//
// Creates PREFIX-input (3 partitions) and PREFIX-output (1 partition) and produces 100 words to
// each input partition (20-word vocabulary, null keys, a fixed seed, explicit partitions: every
// partition's end offset, and the repartition topic's, is the same on every broker). Starts one
// KafkaStreams instance of APPLICATION_ID running the word count
//
//   stream(input).selectKey((k, v) -> v).groupByKey().count(Materialized.as("counts"))
//       .toStream().to(output)
//
// (two subtopologies: input → APPLICATION_ID-counts-repartition, repartition → count, whose
// store is backed by APPLICATION_ID-counts-changelog; the broker creates both topics). Waits
// until the instance is RUNNING, its group (Admin#describeStreamsGroups) is Stable with this one
// member owning every task, and the group's committed offsets on the input and repartition
// topics reach their end offsets. Then prints one JSON line
//
//   {"ready": true|false, "error": "...", "inputEnd": [..], "repartitionEnd": [..],
//    "internalTopics": [...], "ms": T}
//
// and (when ready) keeps running until its stdin closes, STOP_FILE appears or HOLD_MS pass; then
// closes the instance, leaving the group, and prints a final JSON line
//
//   {"closed": true|false, "state": "...", "error": "...", "ms": T}
//
// Every wait has a deadline; a watchdog halts the JVM (after one JSON line) at WATCHDOG_MS. The
// exit code is 0 whenever the final line was printed.

import java.io.IOException;
import java.io.InputStream;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Random;
import java.util.TreeSet;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.stream.Stream;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.ListOffsetsResult;
import org.apache.kafka.clients.admin.ListStreamsGroupOffsetsSpec;
import org.apache.kafka.clients.admin.ListTopicsOptions;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.OffsetSpec;
import org.apache.kafka.clients.admin.StreamsGroupDescription;
import org.apache.kafka.clients.admin.StreamsGroupMemberAssignment;
import org.apache.kafka.clients.admin.StreamsGroupMemberDescription;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.common.serialization.StringSerializer;
import org.apache.kafka.common.utils.Bytes;
import org.apache.kafka.streams.CloseOptions;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.Topology;
import org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.kstream.Produced;
import org.apache.kafka.streams.state.KeyValueStore;

public final class StreamsGroupHold {
    static final int PARTITIONS = 3;
    static final int WORDS_PER_PARTITION = 100;
    static final int WORDS = 20;
    /** How long the instance may take to run, settle and commit the input. */
    static final long READY_WAIT_MS = 60_000;
    /** How long it is held running at most, waiting for stdin to close or the stop file. */
    static final long HOLD_MS = 120_000;
    /** The whole run, after which the watchdog answers and halts the JVM. */
    static final long WATCHDOG_MS = 200_000;

    static final long started = System.currentTimeMillis();
    static final List<String> errors = new CopyOnWriteArrayList<>();
    static final AtomicBoolean finished = new AtomicBoolean(false);
    static volatile String lastSeen = "";

    public static void main(String[] args) throws Exception {
        String bootstrap = args[0];
        String prefix = args[1];
        String appId = args[2];
        Path stopFile = args.length > 3 ? Path.of(args[3]) : null;
        String input = prefix + "-input";
        String output = prefix + "-output";
        String repartition = appId + "-counts-repartition";

        Thread watchdog = new Thread(() -> {
            try {
                Thread.sleep(WATCHDOG_MS);
            } catch (InterruptedException e) {
                return;
            }
            errors.add("watchdog: the run did not finish in " + WATCHDOG_MS + " ms; last seen: " + lastSeen);
            finish(false, "unknown");
            Runtime.getRuntime().halt(1);
        }, "watchdog");
        watchdog.setDaemon(true);
        watchdog.start();

        // Stdin closing is the test's cue to stop.
        CountDownLatch stdinClosed = new CountDownLatch(1);
        Thread stdinReader = new Thread(() -> {
            try {
                InputStream in = System.in;
                byte[] buf = new byte[256];
                while (in.read(buf) >= 0) {
                    // what the test writes is of no interest, only the end
                }
            } catch (IOException e) {
                // a closed stdin too
            }
            stdinClosed.countDown();
        }, "stdin");
        stdinReader.setDaemon(true);
        stdinReader.start();

        Path stateDir = null;
        Admin admin = null;
        KafkaStreams streams = null;
        boolean ready = false;
        try {
            stateDir = Files.createTempDirectory("streams-group-hold-");
            Properties ap = new Properties();
            ap.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
            ap.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "15000");
            ap.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, "10000");
            admin = Admin.create(ap);
            admin.createTopics(List.of(
                    new NewTopic(input, PARTITIONS, (short) 1),
                    new NewTopic(output, 1, (short) 1)))
                .all().get(30, TimeUnit.SECONDS);
            produce(bootstrap, input);

            streams = new KafkaStreams(wordCount(input, output), config(bootstrap, appId, stateDir));
            streams.setUncaughtExceptionHandler(e -> {
                errors.add("stream thread failed: " + explain(e));
                return StreamsUncaughtExceptionHandler.StreamThreadExceptionResponse.SHUTDOWN_CLIENT;
            });
            streams.setStateListener((now, before) -> {
                if (now == KafkaStreams.State.ERROR) {
                    errors.add("went from " + before + " to ERROR");
                }
            });
            streams.start();

            Map<TopicPartition, Long> inputEnd = null;
            Map<TopicPartition, Long> repartitionEnd = null;
            long deadline = System.currentTimeMillis() + READY_WAIT_MS;
            while (errors.isEmpty() && System.currentTimeMillis() < deadline) {
                if (streams.state() != KafkaStreams.State.RUNNING) {
                    lastSeen = "state=" + streams.state();
                    Thread.sleep(200);
                    continue;
                }
                String group = settled(admin, appId);
                if (group != null) {
                    lastSeen = "state=RUNNING group=" + group;
                    Thread.sleep(200);
                    continue;
                }
                inputEnd = endOffsets(admin, input);
                repartitionEnd = endOffsets(admin, repartition);
                Map<TopicPartition, Long> want = new HashMap<>(inputEnd);
                want.putAll(repartitionEnd);
                Map<TopicPartition, Long> committed = committed(admin, appId, want.keySet());
                lastSeen = "state=RUNNING group=Stable end=" + want + " committed=" + committed;
                if (committed.equals(want)) {
                    ready = true;
                    break;
                }
                Thread.sleep(200);
            }
            if (!ready && errors.isEmpty()) {
                errors.add("not ready after " + READY_WAIT_MS + " ms; last seen: " + lastSeen);
            }
            List<String> internal = new ArrayList<>();
            if (ready) {
                for (String t : new TreeSet<>(admin.listTopics(new ListTopicsOptions().listInternal(true))
                        .names().get(15, TimeUnit.SECONDS))) {
                    if (t.startsWith(appId + "-")) {
                        internal.add(t);
                    }
                }
            }
            StringBuilder line = new StringBuilder();
            line.append("{\"ready\": ").append(ready);
            line.append(", \"error\": ").append(quote(String.join("; ", errors)));
            line.append(", \"inputEnd\": ").append(ready ? offsets(inputEnd) : "[]");
            line.append(", \"repartitionEnd\": ").append(ready ? offsets(repartitionEnd) : "[]");
            line.append(", \"internalTopics\": [");
            for (int i = 0; i < internal.size(); i++) {
                line.append(i == 0 ? "" : ", ").append(quote(internal.get(i)));
            }
            line.append("], \"ms\": ").append(System.currentTimeMillis() - started).append("}");
            System.out.println(line);
            System.out.flush();

            if (ready) {
                long holdUntil = System.currentTimeMillis() + HOLD_MS;
                while (errors.isEmpty() && System.currentTimeMillis() < holdUntil
                        && !stdinClosed.await(100, TimeUnit.MILLISECONDS)
                        && (stopFile == null || !Files.exists(stopFile))) {
                    // held
                }
                if (System.currentTimeMillis() >= holdUntil) {
                    errors.add("held " + HOLD_MS + " ms without a cue to stop");
                }
            }
        } catch (Throwable e) {
            errors.add("exception: " + explain(e) + "; last seen: " + lastSeen);
        } finally {
            boolean closed = false;
            String state = "none";
            if (streams != null) {
                try {
                    closed = streams.close(CloseOptions
                        .groupMembershipOperation(CloseOptions.GroupMembershipOperation.LEAVE_GROUP)
                        .withTimeout(Duration.ofSeconds(20)));
                    state = String.valueOf(streams.state());
                } catch (Throwable e) {
                    errors.add("close streams: " + explain(e));
                }
            }
            if (admin != null) {
                admin.close(Duration.ofSeconds(5));
            }
            deleteTree(stateDir);
            finish(closed, state);
            System.exit(0);
        }
    }

    /** The word count; selectKey + groupByKey needs a repartition topic, count() a changelog. */
    static Topology wordCount(String input, String output) {
        StreamsBuilder builder = new StreamsBuilder();
        builder.stream(input, Consumed.with(Serdes.String(), Serdes.String()))
            .selectKey((k, v) -> v)
            .groupByKey()
            .count(Materialized.<String, Long, KeyValueStore<Bytes, byte[]>>as("counts"))
            .toStream()
            .to(output, Produced.with(Serdes.String(), Serdes.Long()));
        return builder.build();
    }

    static Properties config(String bootstrap, String appId, Path stateDir) {
        Properties p = new Properties();
        p.put(StreamsConfig.APPLICATION_ID_CONFIG, appId);
        p.put(StreamsConfig.CLIENT_ID_CONFIG, appId + "-client");
        p.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(StreamsConfig.GROUP_PROTOCOL_CONFIG, "streams");
        p.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, "1");
        p.put(StreamsConfig.STATE_DIR_CONFIG, stateDir.toString());
        p.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, "200");
        p.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, StreamsConfig.AT_LEAST_ONCE);
        p.put(StreamsConfig.DEFAULT_KEY_SERDE_CLASS_CONFIG, Serdes.StringSerde.class.getName());
        p.put(StreamsConfig.DEFAULT_VALUE_SERDE_CLASS_CONFIG, Serdes.StringSerde.class.getName());
        p.put(StreamsConfig.consumerPrefix(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG), "earliest");
        return p;
    }

    /** WORDS_PER_PARTITION words to each partition of `topic`, null keys, a fixed seed. */
    static void produce(String bootstrap, String topic) throws Exception {
        Properties pp = new Properties();
        pp.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        pp.put(ProducerConfig.ACKS_CONFIG, "all");
        pp.put(ProducerConfig.LINGER_MS_CONFIG, "5");
        pp.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, "30000");
        pp.put(ProducerConfig.REQUEST_TIMEOUT_MS_CONFIG, "10000");
        pp.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, "15000");
        pp.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        pp.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        try (KafkaProducer<String, String> producer = new KafkaProducer<>(pp)) {
            Random random = new Random(1071);
            List<java.util.concurrent.Future<?>> sent = new ArrayList<>();
            for (int p = 0; p < PARTITIONS; p++) {
                for (int i = 0; i < WORDS_PER_PARTITION; i++) {
                    String word = "word" + String.format("%02d", random.nextInt(WORDS));
                    sent.add(producer.send(new ProducerRecord<>(topic, p, null, word)));
                }
            }
            producer.flush();
            for (java.util.concurrent.Future<?> f : sent) {
                f.get(30, TimeUnit.SECONDS);
            }
        }
    }

    /**
     * null when the group is Stable with one member that owns every task of its subtopologies
     * (each with PARTITIONS partitions), else what it is now.
     */
    static String settled(Admin admin, String appId) throws Exception {
        StreamsGroupDescription d = admin.describeStreamsGroups(List.of(appId)).all()
            .get(15, TimeUnit.SECONDS).get(appId);
        int active = 0;
        for (StreamsGroupMemberDescription m : d.members()) {
            for (StreamsGroupMemberAssignment.TaskIds ids : m.assignment().activeTasks()) {
                active += ids.partitions().size();
            }
        }
        String now = d.groupState() + " members=" + d.members().size() + " subtopologies="
            + d.subtopologies().size() + " active=" + active;
        boolean settled = String.valueOf(d.groupState()).equalsIgnoreCase("stable") && d.members().size() == 1
            && d.subtopologies().size() == 2 && active == 2 * PARTITIONS;
        return settled ? null : now;
    }

    /** The latest offset of every partition of `topic`. */
    static Map<TopicPartition, Long> endOffsets(Admin admin, String topic) throws Exception {
        int n = admin.describeTopics(List.of(topic)).allTopicNames().get(15, TimeUnit.SECONDS)
            .get(topic).partitions().size();
        Map<TopicPartition, OffsetSpec> specs = new HashMap<>();
        for (int p = 0; p < n; p++) {
            specs.put(new TopicPartition(topic, p), OffsetSpec.latest());
        }
        Map<TopicPartition, Long> end = new HashMap<>();
        for (Map.Entry<TopicPartition, ListOffsetsResult.ListOffsetsResultInfo> e
                : admin.listOffsets(specs).all().get(15, TimeUnit.SECONDS).entrySet()) {
            end.put(e.getKey(), e.getValue().offset());
        }
        return end;
    }

    /** The group's committed offsets of `partitions` (those it has). */
    static Map<TopicPartition, Long> committed(Admin admin, String appId, java.util.Set<TopicPartition> partitions)
            throws Exception {
        Map<TopicPartition, OffsetAndMetadata> got = admin
            .listStreamsGroupOffsets(Map.of(appId, new ListStreamsGroupOffsetsSpec().topicPartitions(partitions)))
            .partitionsToOffsetAndMetadata(appId).get(15, TimeUnit.SECONDS);
        Map<TopicPartition, Long> out = new HashMap<>();
        for (Map.Entry<TopicPartition, OffsetAndMetadata> e : got.entrySet()) {
            if (e.getValue() != null) {
                out.put(e.getKey(), e.getValue().offset());
            }
        }
        return out;
    }

    /** The offsets by partition number, as a JSON array. */
    static String offsets(Map<TopicPartition, Long> byPartition) {
        List<Long> out = new ArrayList<>();
        for (int p = 0; p < byPartition.size(); p++) {
            for (Map.Entry<TopicPartition, Long> e : byPartition.entrySet()) {
                if (e.getKey().partition() == p) {
                    out.add(e.getValue());
                }
            }
        }
        return out.toString();
    }

    /** Prints the final JSON line (once, whoever comes first: main or the watchdog). */
    static void finish(boolean closed, String state) {
        if (!finished.compareAndSet(false, true)) {
            return;
        }
        System.out.println("{\"closed\": " + closed + ", \"state\": " + quote(state) + ", \"error\": "
            + quote(String.join("; ", errors)) + ", \"ms\": " + (System.currentTimeMillis() - started) + "}");
        System.out.flush();
    }

    static void deleteTree(Path root) {
        if (root == null) {
            return;
        }
        try (Stream<Path> walk = Files.walk(root)) {
            walk.sorted(Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
        } catch (IOException e) {
            // a temp dir left behind
        }
    }

    /** The exception and, when it says more, its cause. */
    static String explain(Throwable e) {
        Throwable cause = e.getCause();
        if (cause == null || String.valueOf(e.getMessage()).contains(String.valueOf(cause.getMessage()))) {
            return e.toString();
        }
        return e + " caused by " + cause;
    }

    static String quote(String s) {
        return "\"" + s.replace("\\", "\\\\").replace("\"", "\\\"").replace("\n", " ") + "\"";
    }
}
