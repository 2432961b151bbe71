// KIP-1071 streams groups as a Kafka Streams application team meets them: two instances of a
// word count on `group.protocol=streams`, one leaving, run as a single source file against the
// toolbox's jars (kafka-streams and kafka-clients 4.4):
//
//   StreamsGroups BOOTSTRAP TOPIC_PREFIX APPLICATION_ID
//
// Creates PREFIX-input (4 partitions) and PREFIX-output (1 partition), produces 2,000 words
// (20-word vocabulary, null keys, a fixed seed: the count of every word is known) and starts two
// KafkaStreams instances A and B of APPLICATION_ID running
//
//   stream(input).selectKey((k, v) -> v).groupByKey().count(Materialized.as("counts"))
//       .toStream().to(output)
//
// whose repartition and changelog topics the broker creates (KIP-1071: the client only declares
// them in its StreamsGroupHeartbeat). Waits until both are RUNNING, the group's description
// (Admin#describeStreamsGroups) is stable with two members that each own some active tasks and
// every task active exactly once, and the output's latest count of every word is the expected
// one. Records that description and the internal topics (names starting with APPLICATION_ID-).
// Then closes B (leaving the group), produces 500 more words and waits until A alone owns every
// task and the output reaches the new counts. Every wait has a deadline; a watchdog answers and
// halts if the whole run outlives WATCHDOG_MS. Prints one JSON line:
//
//   {"ok": true|false, "error": "...", "steps": [{"step": "...", "ms": T}, ...],
//    "initial": {"state": "...", "members": N, "activeTasksPerMember": [...],
//                "standbyTasksPerMember": [...], "subtopologies": N, "tasks": N,
//                "expectedTasks": N, "everyTaskOnce": true|false},
//    "internalTopics": [...], "final": {... as initial ..., "localActiveTasks": N},
//    "countsCorrect": true|false, "millis": T}
//
// The exit code is 0 whenever the JSON line was printed (ok=false included).
//
//   StreamsGroups BOOTSTRAP TOPIC_PREFIX APPLICATION_ID SIGNAL_DIR
//
// is the failover run, for a cluster: topics with three replicas, processing.guarantee
// exactly_once_v2 and a read_committed reader of the output. Once the two instances have counted
// the first batch it writes SIGNAL_DIR/ready holding the node id of the group's coordinator,
// waits for SIGNAL_DIR/go (the test kills that node meanwhile), produces the second batch with
// both instances still running and waits until the group is stable again with both members and
// every task active once, and the output has the new counts, each exactly once.

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.Collections;
import java.util.Comparator;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Random;
import java.util.Set;
import java.util.TreeMap;
import java.util.TreeSet;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.stream.Stream;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.ListTopicsOptions;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.StreamsGroupDescription;
import org.apache.kafka.clients.admin.StreamsGroupMemberAssignment;
import org.apache.kafka.clients.admin.StreamsGroupMemberDescription;
import org.apache.kafka.clients.admin.StreamsGroupSubtopologyDescription;
import org.apache.kafka.clients.admin.TopicDescription;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.serialization.LongDeserializer;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;
import org.apache.kafka.common.utils.Bytes;
import org.apache.kafka.streams.CloseOptions;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.ThreadMetadata;
import org.apache.kafka.streams.Topology;
import org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.Materialized;
import org.apache.kafka.streams.kstream.Produced;
import org.apache.kafka.streams.state.KeyValueStore;

public final class StreamsGroups {
    static final int INPUT_PARTITIONS = 4;
    static final int WORDS = 20;
    static final int FIRST_BATCH = 2_000;
    static final int SECOND_BATCH = 500;
    /** How long the two instances may take to settle and count the first batch. */
    static final long FIRST_WAIT_MS = 60_000;
    /** How long A alone may take to take over B's tasks and count the second batch. */
    static final long SECOND_WAIT_MS = 45_000;
    /** How long the instances may take to recover from the coordinator's death and count. */
    static final long FAILOVER_WAIT_MS = 90_000;
    /** The whole run, after which the watchdog answers ok=false and halts the JVM. */
    static final long WATCHDOG_MS = 240_000;

    static final long started = System.currentTimeMillis();
    static final List<String> errors = new CopyOnWriteArrayList<>();
    static final List<String> steps = new CopyOnWriteArrayList<>();
    static final AtomicBoolean answered = new AtomicBoolean(false);

    static String initial = "null";
    static String finalShape = "null";
    static List<String> internalTopics = new ArrayList<>();
    static boolean countsCorrect = false;
    /** False once a word's count in the output did not grow (a duplicate or a rollback seen). */
    static volatile boolean exactlyOnce = true;
    static volatile String countHistory = "";
    /** The last thing a wait saw, for the error when it times out. */
    static volatile String lastSeen = "";

    public static void main(String[] args) {
        String bootstrap = args[0];
        String prefix = args[1];
        String appId = args[2];
        Path signals = args.length > 3 ? Path.of(args[3]) : null;
        boolean failover = signals != null;
        short replicas = (short) (failover ? 3 : 1);
        String input = prefix + "-input";
        String output = prefix + "-output";

        Thread watchdog = new Thread(() -> {
            try {
                Thread.sleep(WATCHDOG_MS);
            } catch (InterruptedException e) {
                return;
            }
            errors.add("watchdog: the run did not finish in " + WATCHDOG_MS + " ms; last seen: " + lastSeen);
            answer();
            Runtime.getRuntime().halt(0);
        }, "watchdog");
        watchdog.setDaemon(true);
        watchdog.start();

        Path stateRoot = null;
        Admin admin = null;
        KafkaProducer<String, String> producer = null;
        KafkaConsumer<String, Long> reader = null;
        KafkaStreams a = null;
        KafkaStreams b = null;
        try {
            stateRoot = Files.createTempDirectory("streams-groups-");
            Properties ap = new Properties();
            ap.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
            ap.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "15000");
            ap.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, "10000");
            admin = Admin.create(ap);
            admin.createTopics(List.of(
                    new NewTopic(input, INPUT_PARTITIONS, replicas),
                    new NewTopic(output, 1, replicas)))
                .all().get(30, TimeUnit.SECONDS);
            step("topics-created");

            Properties pp = new Properties();
            pp.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
            pp.put(ProducerConfig.ACKS_CONFIG, "all");
            pp.put(ProducerConfig.LINGER_MS_CONFIG, "5");
            pp.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, "30000");
            pp.put(ProducerConfig.REQUEST_TIMEOUT_MS_CONFIG, "10000");
            pp.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, "15000");
            pp.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
            pp.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
            producer = new KafkaProducer<>(pp);
            Map<String, Long> expected = new TreeMap<>();
            Random random = new Random(1071);
            produce(producer, input, FIRST_BATCH, random, expected);
            step("produced-" + FIRST_BATCH);

            Properties cp = new Properties();
            cp.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
            cp.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
            if (failover) {
                cp.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed");
            }
            cp.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
            cp.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, LongDeserializer.class.getName());
            reader = new KafkaConsumer<>(cp);
            TopicPartition out = new TopicPartition(output, 0);
            reader.assign(List.of(out));
            reader.seekToBeginning(List.of(out));
            Map<String, Long> latest = new TreeMap<>();

            Topology topology = wordCount(input, output);
            String guarantee = failover ? StreamsConfig.EXACTLY_ONCE_V2 : StreamsConfig.AT_LEAST_ONCE;
            a = instance(topology, bootstrap, appId, stateRoot, "a", guarantee);
            b = instance(topology, bootstrap, appId, stateRoot, "b", guarantee);
            a.start();
            b.start();
            step("started-a-and-b");

            // Both running, two stable members sharing every task, and the counts of batch one.
            final KafkaStreams fa = a;
            final KafkaStreams fb = b;
            final Admin fadmin = admin;
            final KafkaConsumer<String, Long> freader = reader;
            Shape first = waitFor("both instances running, two members, the first counts", FIRST_WAIT_MS, () -> {
                readOutput(freader, latest);
                if (fa.state() != KafkaStreams.State.RUNNING || fb.state() != KafkaStreams.State.RUNNING) {
                    lastSeen = "a=" + fa.state() + " b=" + fb.state() + " counts=" + latest;
                    return null;
                }
                Shape s = describe(fadmin, appId);
                lastSeen = "a=" + fa.state() + " b=" + fb.state() + " group=" + s + " counts=" + latest;
                boolean settled = s.state.equalsIgnoreCase("stable") && s.members == 2
                    && s.everyTaskOnce && !s.activeTasksPerMember.contains(0) && latest.equals(expected);
                return settled ? s : null;
            });
            if (first == null) {
                return;
            }
            initial = first.json(-1);
            step("two-members-counted");

            Set<String> topics = admin.listTopics(new ListTopicsOptions().listInternal(true))
                .names().get(15, TimeUnit.SECONDS);
            for (String t : new TreeSet<>(topics)) {
                if (t.startsWith(appId + "-")) {
                    internalTopics.add(t);
                }
            }

            if (failover) {
                int coordinator = admin.describeStreamsGroups(List.of(appId)).all()
                    .get(15, TimeUnit.SECONDS).get(appId).coordinator().id();
                Files.writeString(signals.resolve("ready.tmp"), Integer.toString(coordinator));
                Files.move(signals.resolve("ready.tmp"), signals.resolve("ready"));
                step("ready-coordinator-" + coordinator);
                long waitedFrom = System.currentTimeMillis();
                while (!Files.exists(signals.resolve("go"))) {
                    if (System.currentTimeMillis() - waitedFrom > 60_000) {
                        errors.add("no go signal in 60 s");
                        return;
                    }
                    Thread.sleep(50);
                }
                step("go");
                produce(producer, input, SECOND_BATCH, random, expected);
                step("produced-" + SECOND_BATCH);
                final KafkaStreams fb2 = b;
                Shape again = waitFor("both instances running again, two members, the final counts",
                        FAILOVER_WAIT_MS, () -> {
                    readOutput(freader, latest);
                    if (fa.state() != KafkaStreams.State.RUNNING || fb2.state() != KafkaStreams.State.RUNNING) {
                        lastSeen = "a=" + fa.state() + " b=" + fb2.state() + " counts=" + latest;
                        return null;
                    }
                    Shape s = describe(fadmin, appId);
                    lastSeen = "a=" + fa.state() + " b=" + fb2.state() + " group=" + s + " counts=" + latest;
                    boolean settled = s.state.equalsIgnoreCase("stable") && s.members == 2
                        && s.everyTaskOnce && latest.equals(expected);
                    return settled ? s : null;
                });
                if (again == null) {
                    return;
                }
                finalShape = again.json(-1);
                countsCorrect = latest.equals(expected) && exactlyOnce;
                if (!exactlyOnce) {
                    errors.add("a count went backwards or repeated: " + countHistory);
                }
                step("two-members-counted-again");
                return;
            }

            // B leaves; A alone takes every task and counts the second batch.
            boolean closed = b.close(CloseOptions.groupMembershipOperation(CloseOptions.GroupMembershipOperation.LEAVE_GROUP)
                .withTimeout(Duration.ofSeconds(20)));
            b = null;
            step("closed-b" + (closed ? "" : "-timed-out"));
            produce(producer, input, SECOND_BATCH, random, expected);
            step("produced-" + SECOND_BATCH);
            Shape second = waitFor("A alone with every task, the final counts", SECOND_WAIT_MS, () -> {
                readOutput(freader, latest);
                int local = localActiveTasks(fa);
                if (fa.state() != KafkaStreams.State.RUNNING) {
                    lastSeen = "a=" + fa.state() + " local active tasks=" + local + " counts=" + latest;
                    return null;
                }
                Shape s = describe(fadmin, appId);
                lastSeen = "a=" + fa.state() + " local active tasks=" + local + " group=" + s + " counts=" + latest;
                s.localActiveTasks = local;
                boolean settled = s.state.equalsIgnoreCase("stable") && s.members == 1 && s.everyTaskOnce
                    && local == s.expectedTasks && latest.equals(expected);
                return settled ? s : null;
            });
            if (second == null) {
                return;
            }
            finalShape = second.json(second.localActiveTasks);
            countsCorrect = latest.equals(expected);
            step("one-member-counted");
        } catch (Throwable e) {
            errors.add("exception: " + explain(e) + "; last seen: " + lastSeen);
        } finally {
            for (KafkaStreams s : new KafkaStreams[] {b, a}) {
                if (s != null) {
                    try {
                        s.close(CloseOptions.groupMembershipOperation(CloseOptions.GroupMembershipOperation.LEAVE_GROUP)
                            .withTimeout(Duration.ofSeconds(15)));
                    } catch (Throwable e) {
                        errors.add("close streams: " + e);
                    }
                }
            }
            if (reader != null) {
                reader.close(org.apache.kafka.clients.consumer.CloseOptions.timeout(Duration.ofSeconds(5)));
            }
            if (producer != null) {
                producer.close(Duration.ofSeconds(5));
            }
            if (admin != null) {
                admin.close(Duration.ofSeconds(5));
            }
            deleteTree(stateRoot);
            step("closed");
            answer();
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

    /** One instance of the application on the streams protocol, with its own state dir. */
    static KafkaStreams instance(Topology topology, String bootstrap, String appId, Path stateRoot, String name,
            String guarantee) throws IOException {
        Properties p = new Properties();
        p.put(StreamsConfig.APPLICATION_ID_CONFIG, appId);
        p.put(StreamsConfig.CLIENT_ID_CONFIG, appId + "-" + name);
        p.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(StreamsConfig.GROUP_PROTOCOL_CONFIG, "streams");
        p.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, "1");
        p.put(StreamsConfig.STATE_DIR_CONFIG, Files.createDirectories(stateRoot.resolve(name)).toString());
        p.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, "200");
        p.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, guarantee);
        p.put(StreamsConfig.DEFAULT_KEY_SERDE_CLASS_CONFIG, Serdes.StringSerde.class.getName());
        p.put(StreamsConfig.DEFAULT_VALUE_SERDE_CLASS_CONFIG, Serdes.StringSerde.class.getName());
        p.put(StreamsConfig.consumerPrefix(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG), "earliest");
        KafkaStreams streams = new KafkaStreams(topology, p);
        streams.setUncaughtExceptionHandler(e -> {
            errors.add(name + ": stream thread failed: " + explain(e));
            return StreamsUncaughtExceptionHandler.StreamThreadExceptionResponse.SHUTDOWN_CLIENT;
        });
        streams.setStateListener((now, before) -> {
            if (now == KafkaStreams.State.ERROR) {
                errors.add(name + ": went from " + before + " to ERROR");
            }
        });
        return streams;
    }

    /** Produces `n` words from the vocabulary with null keys, and counts them in `expected`. */
    static void produce(KafkaProducer<String, String> producer, String topic, int n, Random random,
            Map<String, Long> expected) throws Exception {
        List<java.util.concurrent.Future<?>> sent = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            String word = "word" + String.format("%02d", random.nextInt(WORDS));
            expected.merge(word, 1L, Long::sum);
            sent.add(producer.send(new ProducerRecord<>(topic, null, word)));
        }
        producer.flush();
        for (java.util.concurrent.Future<?> f : sent) {
            f.get(30, TimeUnit.SECONDS);
        }
    }

    /**
     * Reads what the output has now; keeps the last count of each word. With exactly-once the
     * counts of a word only grow, one by one where records come one at a time, and never repeat:
     * a count that does not grow is a duplicate the failover let through.
     */
    static void readOutput(KafkaConsumer<String, Long> reader, Map<String, Long> latest) {
        for (ConsumerRecord<String, Long> r : reader.poll(Duration.ofMillis(200))) {
            Long before = latest.put(r.key(), r.value());
            if (before != null && r.value() <= before) {
                exactlyOnce = false;
                countHistory = r.key() + ": " + before + " then " + r.value();
            }
        }
    }

    /** Active tasks of the instance's own stream threads. */
    static int localActiveTasks(KafkaStreams streams) {
        int n = 0;
        for (ThreadMetadata t : streams.metadataForLocalThreads()) {
            n += t.activeTasks().size();
        }
        return n;
    }

    /** What the group's description says, reduced to what two brokers can be compared on. */
    static final class Shape {
        String state;
        int members;
        List<Integer> activeTasksPerMember = new ArrayList<>();
        List<Integer> standbyTasksPerMember = new ArrayList<>();
        int subtopologies;
        int tasks;
        int expectedTasks;
        boolean everyTaskOnce;
        int localActiveTasks = -1;

        String json(int local) {
            StringBuilder s = new StringBuilder();
            s.append("{\"state\": ").append(quote(state));
            s.append(", \"members\": ").append(members);
            s.append(", \"activeTasksPerMember\": ").append(activeTasksPerMember);
            s.append(", \"standbyTasksPerMember\": ").append(standbyTasksPerMember);
            s.append(", \"subtopologies\": ").append(subtopologies);
            s.append(", \"tasks\": ").append(tasks);
            s.append(", \"expectedTasks\": ").append(expectedTasks);
            s.append(", \"everyTaskOnce\": ").append(everyTaskOnce);
            if (local >= 0) {
                s.append(", \"localActiveTasks\": ").append(local);
            }
            return s.append("}").toString();
        }

        public String toString() {
            return json(localActiveTasks);
        }
    }

    /**
     * Describes the streams group: its state, members and their active tasks, and whether every
     * task (subtopology, partition), the partitions of a subtopology being those of its source
     * topics, is active on exactly one member.
     */
    static Shape describe(Admin admin, String appId) throws Exception {
        StreamsGroupDescription d = admin.describeStreamsGroups(List.of(appId)).all()
            .get(15, TimeUnit.SECONDS).get(appId);
        Shape s = new Shape();
        s.state = String.valueOf(d.groupState());
        s.members = d.members().size();
        s.subtopologies = d.subtopologies().size();
        Set<String> sources = new TreeSet<>();
        for (StreamsGroupSubtopologyDescription sub : d.subtopologies()) {
            sources.addAll(sub.sourceTopics());
            sources.addAll(sub.repartitionSourceTopics().keySet());
        }
        Map<String, Integer> partitions = new HashMap<>();
        if (!sources.isEmpty()) {
            Map<String, TopicDescription> described = admin.describeTopics(sources).allTopicNames()
                .get(15, TimeUnit.SECONDS);
            for (Map.Entry<String, TopicDescription> e : described.entrySet()) {
                partitions.put(e.getKey(), e.getValue().partitions().size());
            }
        }
        Set<String> expected = new HashSet<>();
        for (StreamsGroupSubtopologyDescription sub : d.subtopologies()) {
            int n = 0;
            for (String t : sub.sourceTopics()) {
                n = Math.max(n, partitions.getOrDefault(t, 0));
            }
            for (String t : sub.repartitionSourceTopics().keySet()) {
                n = Math.max(n, partitions.getOrDefault(t, 0));
            }
            for (int p = 0; p < n; p++) {
                expected.add(sub.subtopologyId() + "_" + p);
            }
        }
        s.expectedTasks = expected.size();
        Map<String, Integer> seen = new HashMap<>();
        List<StreamsGroupMemberDescription> members = new ArrayList<>(d.members());
        members.sort(Comparator.comparing(StreamsGroupMemberDescription::clientId));
        for (StreamsGroupMemberDescription m : members) {
            int active = 0;
            for (StreamsGroupMemberAssignment.TaskIds ids : m.assignment().activeTasks()) {
                for (int p : ids.partitions()) {
                    seen.merge(ids.subtopologyId() + "_" + p, 1, Integer::sum);
                    active++;
                }
            }
            int standby = 0;
            for (StreamsGroupMemberAssignment.TaskIds ids : m.assignment().standbyTasks()) {
                standby += ids.partitions().size();
            }
            s.activeTasksPerMember.add(active);
            s.standbyTasksPerMember.add(standby);
        }
        Collections.sort(s.activeTasksPerMember);
        s.tasks = seen.size();
        boolean once = !expected.isEmpty() && seen.keySet().equals(expected);
        for (int count : seen.values()) {
            once &= count == 1;
        }
        s.everyTaskOnce = once;
        return s;
    }

    interface Check<T> {
        T get() throws Exception;
    }

    /**
     * Polls `check` (which polls the output for 200 ms itself) until it answers, an instance
     * failed, or `ms` passed; null (and an error naming `what` and the last thing seen) then.
     */
    static <T> T waitFor(String what, long ms, Check<T> check) throws Exception {
        long start = System.currentTimeMillis();
        while (System.currentTimeMillis() - start < ms) {
            if (!errors.isEmpty()) {
                return null;
            }
            T t = check.get();
            if (t != null) {
                return t;
            }
            Thread.sleep(100);
        }
        errors.add("timed out after " + ms + " ms waiting for " + what + "; last seen: " + lastSeen);
        return null;
    }

    static void step(String name) {
        steps.add("{\"step\": " + quote(name) + ", \"ms\": " + (System.currentTimeMillis() - started) + "}");
    }

    /** Prints the JSON line (once, whoever comes first: the end of main or the watchdog). */
    static void answer() {
        if (!answered.compareAndSet(false, true)) {
            return;
        }
        boolean ok = errors.isEmpty() && countsCorrect;
        if (errors.isEmpty() && !countsCorrect) {
            errors.add("the counts never became correct");
        }
        StringBuilder out = new StringBuilder();
        out.append("{\"ok\": ").append(ok);
        out.append(", \"error\": ").append(quote(String.join("; ", errors)));
        out.append(", \"steps\": [").append(String.join(", ", steps)).append("]");
        out.append(", \"initial\": ").append(initial);
        out.append(", \"internalTopics\": [");
        for (int i = 0; i < internalTopics.size(); i++) {
            out.append(i == 0 ? "" : ", ").append(quote(internalTopics.get(i)));
        }
        out.append("], \"final\": ").append(finalShape);
        out.append(", \"countsCorrect\": ").append(countsCorrect);
        out.append(", \"millis\": ").append(System.currentTimeMillis() - started).append("}");
        System.out.println(out);
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
