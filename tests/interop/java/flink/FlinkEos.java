import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Properties;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;
import java.util.stream.Stream;

import org.apache.flink.api.common.eventtime.WatermarkStrategy;
import org.apache.flink.api.common.functions.RichMapFunction;
import org.apache.flink.api.common.serialization.SimpleStringSchema;
import org.apache.flink.api.common.state.CheckpointListener;
import org.apache.flink.configuration.Configuration;
import org.apache.flink.core.execution.JobClient;
import org.apache.flink.core.execution.SavepointFormatType;
import org.apache.flink.connector.base.DeliveryGuarantee;
import org.apache.flink.connector.kafka.sink.KafkaRecordSerializationSchema;
import org.apache.flink.connector.kafka.sink.KafkaSink;
import org.apache.flink.connector.kafka.sink.KafkaSinkBuilder;
import org.apache.flink.connector.kafka.source.KafkaSource;
import org.apache.flink.connector.kafka.source.enumerator.initializer.OffsetsInitializer;
import org.apache.flink.runtime.state.FunctionInitializationContext;
import org.apache.flink.runtime.state.FunctionSnapshotContext;
import org.apache.flink.streaming.api.checkpoint.CheckpointedFunction;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.serialization.StringSerializer;

/**
 * Apache Flink's Kafka connector doing exactly-once against a broker: a job on a local
 * MiniCluster (parallelism 2, a checkpoint every second) reads an input topic with a
 * read_committed KafkaSource, upper-cases each record in a map, and writes the result with a
 * KafkaSink in EXACTLY_ONCE mode (one Kafka transaction per checkpoint and subtask, committed
 * when the checkpoint completes).
 *
 * <pre>
 *   FlinkEos BOOTSTRAP produce INPUT OUTPUT COUNT REPLICATION
 *       creates INPUT and OUTPUT (2 partitions each) and writes COUNT records "r-00000"...
 *       to INPUT (idempotent producer, acks=all)
 *   FlinkEos BOOTSTRAP run INPUT OUTPUT PREFIX CHECKPOINT_DIR [options]
 *       --fail-after N   subtask 0's first attempt throws N records after its first completed
 *                        checkpoint: Flink restarts it from that checkpoint and the open
 *                        transaction of the failed attempt is aborted
 *       --halt-after N   subtask 0's later attempt halts the whole JVM (no clean-up, as a
 *                        kill -9 would) N records after a completed checkpoint: a transaction
 *                        with data stays open on the broker
 *       --halt-before-commit   subtask 0's later attempt halts the JVM once a checkpoint
 *                        it took part in is complete (its _metadata written) but before the
 *                        task is told so: the sink's transaction of that checkpoint is
 *                        pre-committed (flushed, open on the broker) and not committed; the
 *                        map blocks the task meanwhile, so the notification cannot slip in
 *       --restore        start from the newest retained checkpoint under CHECKPOINT_DIR: the
 *                        sink commits that checkpoint's transactions by resuming them
 *                        (producer id and epoch put into a new producer, EndTxn with no
 *                        InitProducerId) and aborts the lingering ones of its prefix
 *       --naming incrementing|pooling   the sink's TransactionNamingStrategy (pooling lists
 *                        the prefix's open transactions with ListTransactions on recovery)
 *       --sleep-ms N     per record in the map, so that checkpoints fall inside the input
 *       --count N        the input's record count: once the map has seen both partitions'
 *                        last records and the job has not ended within 1.5 s, it is stopped
 *                        with a savepoint (a restored bounded source may not end by itself)
 * </pre>
 *
 * The source is bounded (it stops at the input's end offsets as of its start), so a job that
 * is not halted finishes, and its final checkpoint commits the last transactions. Each run
 * prints JSON lines; the last one is the report.
 */
public class FlinkEos {
    /** Records the maps of this JVM have transformed (all attempts). */
    static final AtomicLong MAPPED = new AtomicLong();
    /** Failures the maps injected. */
    static final AtomicLong FAILURES = new AtomicLong();
    /** The highest attempt number a map subtask ran as. */
    static final AtomicLong MAX_ATTEMPT = new AtomicLong();
    /** Checkpoints a map was told are complete. */
    static final AtomicLong CHECKPOINTS = new AtomicLong();
    /** The last input record of each partition, once a map has transformed it. */
    static final Set<String> LAST_SEEN = ConcurrentHashMap.newKeySet();

    public static void main(String[] args) throws Exception {
        if (args.length < 2) {
            usage();
        }
        String bootstrap = args[0];
        switch (args[1]) {
            case "produce" -> produce(bootstrap, args);
            case "run" -> run(bootstrap, args);
            default -> usage();
        }
    }

    static void usage() {
        System.err.println("usage: FlinkEos BOOTSTRAP produce INPUT OUTPUT COUNT REPLICATION");
        System.err.println("       FlinkEos BOOTSTRAP run INPUT OUTPUT PREFIX CHECKPOINT_DIR"
                + " [--fail-after N] [--halt-after N] [--restore] [--naming incrementing|pooling]"
                + " [--sleep-ms N] [--count N]");
        System.exit(2);
    }

    static void produce(String bootstrap, String[] args) throws Exception {
        if (args.length != 6) {
            usage();
        }
        String input = args[2];
        String output = args[3];
        int count = Integer.parseInt(args[4]);
        short replication = Short.parseShort(args[5]);
        Properties ap = new Properties();
        ap.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        try (Admin admin = Admin.create(ap)) {
            admin.createTopics(List.of(new NewTopic(input, 2, replication),
                    new NewTopic(output, 2, replication))).all().get();
        }
        Properties pp = new Properties();
        pp.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        pp.put(ProducerConfig.ACKS_CONFIG, "all");
        pp.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, "true");
        pp.put(ProducerConfig.LINGER_MS_CONFIG, "5");
        try (KafkaProducer<String, String> p =
                new KafkaProducer<>(pp, new StringSerializer(), new StringSerializer())) {
            for (int i = 0; i < count; i++) {
                String v = String.format("r-%05d", i);
                p.send(new ProducerRecord<>(input, i % 2, v, v));
            }
            p.flush();
        }
        System.out.println("{\"produced\":" + count + "}");
    }

    static void run(String bootstrap, String[] args) throws Exception {
        if (args.length < 6) {
            usage();
        }
        String input = args[2];
        String output = args[3];
        String prefix = args[4];
        Path checkpoints = Path.of(args[5]).toAbsolutePath();
        int failAfter = 0;
        int haltAfter = 0;
        boolean haltBeforeCommit = false;
        boolean restore = false;
        long sleepMs = 10;
        int count = -1;
        String naming = "incrementing";
        for (int i = 6; i < args.length; i++) {
            switch (args[i]) {
                case "--fail-after" -> failAfter = Integer.parseInt(args[++i]);
                case "--halt-after" -> haltAfter = Integer.parseInt(args[++i]);
                case "--halt-before-commit" -> haltBeforeCommit = true;
                case "--restore" -> restore = true;
                case "--sleep-ms" -> sleepMs = Long.parseLong(args[++i]);
                case "--count" -> count = Integer.parseInt(args[++i]);
                case "--naming" -> naming = args[++i];
                default -> usage();
            }
        }

        Map<String, String> conf = new HashMap<>();
        conf.put("execution.checkpointing.interval", "1 s");
        conf.put("execution.checkpointing.dir", checkpoints.toUri().toString());
        conf.put("execution.checkpointing.externalized-checkpoint-retention",
                "RETAIN_ON_CANCELLATION");
        conf.put("restart-strategy.type", "fixed-delay");
        // Enough attempts to outlast a broker restart (a few seconds).
        conf.put("restart-strategy.fixed-delay.attempts", "10");
        conf.put("restart-strategy.fixed-delay.delay", "500 ms");
        conf.put("rest.bind-port", "0");
        conf.put("rest.port", "0");
        String restoredFrom = null;
        if (restore) {
            Optional<Path> newest = newestCheckpoint(checkpoints);
            if (newest.isEmpty()) {
                System.out.println("{\"error\":\"no retained checkpoint under "
                        + checkpoints + "\"}");
                System.exit(1);
            }
            restoredFrom = newest.get().toString();
            conf.put("execution.state-recovery.path", newest.get().toUri().toString());
        }
        StreamExecutionEnvironment env =
                StreamExecutionEnvironment.createLocalEnvironment(2, Configuration.fromMap(conf));

        KafkaSource<String> source = KafkaSource.<String>builder()
                .setBootstrapServers(bootstrap)
                .setTopics(input)
                .setGroupId(prefix + "-source")
                .setStartingOffsets(OffsetsInitializer.earliest())
                .setBounded(OffsetsInitializer.latest())
                .setValueOnlyDeserializer(new SimpleStringSchema())
                .setProperty("isolation.level", "read_committed")
                .build();
        KafkaSinkBuilder<String> builder = KafkaSink.<String>builder()
                .setBootstrapServers(bootstrap)
                .setRecordSerializer(KafkaRecordSerializationSchema.builder()
                        .setTopic(output)
                        .setValueSerializationSchema(new SimpleStringSchema())
                        .build())
                .setDeliveryGuarantee(DeliveryGuarantee.EXACTLY_ONCE)
                .setTransactionalIdPrefix(prefix)
                .setProperty("transaction.timeout.ms", "60000");
        naming = setNaming(builder, naming);
        KafkaSink<String> sink = builder.build();
        env.fromSource(source, WatermarkStrategy.noWatermarks(), "input")
                .map(new Transform(failAfter, haltAfter, haltBeforeCommit ? checkpoints.toString()
                        : null, sleepMs, count))
                .name("transform")
                .sinkTo(sink)
                .name("output");

        long start = System.nanoTime();
        String status = "finished";
        String ended = "end-of-input";
        String error = null;
        try {
            JobClient job = env.executeAsync("flink-eos " + prefix);
            java.util.concurrent.CompletableFuture<?> result = job.getJobExecutionResult();
            // A bounded KafkaSource restored from a checkpoint may never report its end after
            // its splits are read (its enumerator does not signal "no more splits" again), so
            // once both partitions' last records went through the map, and the job has not
            // finished on its own within 1.5 s, it is stopped with a savepoint: that
            // checkpoint commits the sink's transactions as the final one would.
            long lastSeenAt = -1;
            while (!result.isDone()) {
                if (count > 0 && LAST_SEEN.size() == 2 && "end-of-input".equals(ended)) {
                    if (lastSeenAt < 0) {
                        lastSeenAt = System.nanoTime();
                    } else if (System.nanoTime() - lastSeenAt
                            > TimeUnit.MILLISECONDS.toNanos(1500)) {
                        ended = "stop-with-savepoint";
                        try {
                            job.stopWithSavepoint(false,
                                    checkpoints.resolve("savepoints").toUri().toString(),
                                    SavepointFormatType.CANONICAL).get(60, TimeUnit.SECONDS);
                        } catch (Exception e) {
                            ended = "stop-with-savepoint failed: " + rootCause(e);
                        }
                    }
                }
                Thread.sleep(100);
            }
            result.get();
        } catch (Exception e) {
            status = "failed";
            error = rootCause(e);
        }
        long ms = (System.nanoTime() - start) / 1_000_000;
        StringBuilder out = new StringBuilder("{\"result\":\"").append(status).append('"');
        out.append(",\"restored_from\":").append(quote(restoredFrom));
        out.append(",\"naming\":\"").append(naming).append('"');
        out.append(",\"ended\":").append(quote(ended));
        out.append(",\"mapped\":").append(MAPPED.get());
        out.append(",\"failures_injected\":").append(FAILURES.get());
        out.append(",\"max_attempt\":").append(MAX_ATTEMPT.get());
        out.append(",\"checkpoints_seen\":").append(CHECKPOINTS.get());
        out.append(",\"elapsed_ms\":").append(ms);
        out.append(",\"error\":").append(quote(error)).append('}');
        System.out.println(out);
        System.out.flush();
        // The MiniCluster's threads may linger; the report is out, so leave now.
        System.exit("finished".equals(status) ? 0 : 1);
    }

    /**
     * Sets the sink's TransactionNamingStrategy (connector 4.0 and later) by reflection, so
     * that the same source compiles against the 3.x connector too, which has no such setting
     * (it always names transactions prefix-subtask-checkpoint and probes them on recovery).
     * Returns the naming in effect.
     */
    static String setNaming(KafkaSinkBuilder<String> builder, String naming) throws Exception {
        Class<?> strategy;
        try {
            strategy = Class.forName(
                    "org.apache.flink.connector.kafka.sink.TransactionNamingStrategy");
        } catch (ClassNotFoundException e) {
            if (!"incrementing".equals(naming)) {
                throw new IllegalArgumentException(
                        "this connector has no TransactionNamingStrategy: " + naming);
            }
            return "incrementing (connector 3.x, no naming strategy)";
        }
        Object value = null;
        for (Object constant : strategy.getEnumConstants()) {
            if (((Enum<?>) constant).name().equalsIgnoreCase(naming)) {
                value = constant;
            }
        }
        if (value == null) {
            throw new IllegalArgumentException("no TransactionNamingStrategy " + naming);
        }
        builder.getClass().getMethod("setTransactionNamingStrategy", strategy)
                .invoke(builder, value);
        return naming;
    }

    static String rootCause(Throwable e) {
        Throwable t = e;
        while (t.getCause() != null) {
            t = t.getCause();
        }
        return t.toString();
    }

    /** The chk-N directory with a _metadata file and the highest N under `root`. */
    static Optional<Path> newestCheckpoint(Path root) throws Exception {
        if (!Files.isDirectory(root)) {
            return Optional.empty();
        }
        List<Path> found = new ArrayList<>();
        try (Stream<Path> walk = Files.walk(root, 3)) {
            walk.filter(p -> p.getFileName().toString().startsWith("chk-"))
                    .filter(p -> Files.isRegularFile(p.resolve("_metadata")))
                    .forEach(found::add);
        }
        return found.stream().max((a, b) -> Long.compare(chk(a), chk(b)));
    }

    static long chk(Path p) {
        try {
            return Long.parseLong(p.getFileName().toString().substring(4));
        } catch (NumberFormatException e) {
            return -1;
        }
    }

    static String quote(String s) {
        if (s == null) {
            return "null";
        }
        return '"' + s.replace("\\", "\\\\").replace("\"", "\\\"").replace("\n", "\\n") + '"';
    }

    /**
     * Upper-cases each record. Subtask 0 fails once (its first attempt) or halts the JVM (a
     * later attempt) a given number of records after a checkpoint it was told completed.
     */
    static final class Transform extends RichMapFunction<String, String>
            implements CheckpointListener, CheckpointedFunction {
        private final int failAfter;
        private final int haltAfter;
        /** The checkpoint directory, with --halt-before-commit; else null. */
        private final String haltBeforeCommit;
        /** The checkpoint whose completion subtask 0 waits for to halt; -1: none. */
        private transient volatile long haltAt;
        private final long sleepMs;
        /** The input's record count, to know each partition's last record; -1: unknown. */
        private final int count;
        /** Records since the last completed checkpoint; -1 until one completed. */
        private transient long sinceCheckpoint;
        private transient long lastCheckpoint;

        Transform(int failAfter, int haltAfter, String haltBeforeCommit, long sleepMs,
                int count) {
            this.failAfter = failAfter;
            this.haltAfter = haltAfter;
            this.haltBeforeCommit = haltBeforeCommit;
            this.sleepMs = sleepMs;
            this.count = count;
        }

        @Override
        public void open(org.apache.flink.api.common.functions.OpenContext ctx) {
            sinceCheckpoint = -1;
            haltAt = -1;
            MAX_ATTEMPT.accumulateAndGet(
                    getRuntimeContext().getTaskInfo().getAttemptNumber(), Math::max);
        }

        @Override
        public String map(String value) throws Exception {
            if (sleepMs > 0) {
                Thread.sleep(sleepMs);
            }
            int attempt = getRuntimeContext().getTaskInfo().getAttemptNumber();
            int subtask = getRuntimeContext().getTaskInfo().getIndexOfThisSubtask();
            if (haltAt >= 0) {
                // Block the task (its mailbox, where the completion notification would be
                // handled) until the halting thread ends the JVM.
                Thread.sleep(60_000);
            }
            if (sinceCheckpoint >= 0) {
                sinceCheckpoint++;
            }
            if (subtask == 0 && sinceCheckpoint >= 0) {
                if (failAfter > 0 && attempt == 0 && sinceCheckpoint >= failAfter) {
                    FAILURES.incrementAndGet();
                    System.out.println("{\"event\":\"fail\",\"after_checkpoint\":"
                            + lastCheckpoint + ",\"records_since\":" + sinceCheckpoint + "}");
                    throw new RuntimeException("injected failure after checkpoint "
                            + lastCheckpoint);
                }
                if (haltAfter > 0 && attempt >= 1 && sinceCheckpoint >= haltAfter) {
                    System.out.println("{\"event\":\"halt\",\"after_checkpoint\":"
                            + lastCheckpoint + ",\"records_since\":" + sinceCheckpoint
                            + ",\"mapped\":" + MAPPED.get() + "}");
                    System.out.flush();
                    Runtime.getRuntime().halt(3);
                }
            }
            MAPPED.incrementAndGet();
            if (count > 1 && (value.equals(String.format("r-%05d", count - 1))
                    || value.equals(String.format("r-%05d", count - 2)))) {
                LAST_SEEN.add(value);
            }
            return value.toUpperCase(java.util.Locale.ROOT);
        }

        @Override
        public void initializeState(FunctionInitializationContext ctx) {}

        @Override
        public void snapshotState(FunctionSnapshotContext ctx) {
            int attempt = getRuntimeContext().getTaskInfo().getAttemptNumber();
            int subtask = getRuntimeContext().getTaskInfo().getIndexOfThisSubtask();
            if (haltBeforeCommit == null || subtask != 0 || haltAt >= 0
                    || (failAfter > 0 && attempt == 0)) {
                return;
            }
            long id = ctx.getCheckpointId();
            haltAt = id;
            Path root = Path.of(haltBeforeCommit);
            Thread halter = new Thread(() -> {
                long deadline = System.nanoTime() + TimeUnit.SECONDS.toNanos(30);
                while (System.nanoTime() < deadline) {
                    try (Stream<Path> walk = Files.walk(root, 3)) {
                        boolean complete = walk.anyMatch(p ->
                                p.getFileName().toString().equals("chk-" + id)
                                        && Files.isRegularFile(p.resolve("_metadata")));
                        if (complete) {
                            // The file may still be being written; the task stays blocked,
                            // so waiting a little more cannot let the commit through.
                            Thread.sleep(300);
                            System.out.println("{\"event\":\"halt-before-commit\","
                                    + "\"checkpoint\":" + id + ",\"mapped\":" + MAPPED.get()
                                    + "}");
                            System.out.flush();
                            Runtime.getRuntime().halt(3);
                        }
                        Thread.sleep(20);
                    } catch (Exception e) {
                        // The directory is being written; look again.
                    }
                }
                System.out.println("{\"event\":\"halt-before-commit-gave-up\",\"checkpoint\":"
                        + id + "}");
                Runtime.getRuntime().halt(4);
            }, "halt-before-commit");
            halter.setDaemon(true);
            halter.start();
        }

        @Override
        public void notifyCheckpointComplete(long checkpointId) {
            CHECKPOINTS.incrementAndGet();
            sinceCheckpoint = 0;
            lastCheckpoint = checkpointId;
        }
    }
}
