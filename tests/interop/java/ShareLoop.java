// Kafka's share consumer (KafkaShareConsumer, KIP-932) and a plain producer for the share-group
// end-to-end tests, run as a single source file against the toolbox's jars
// (`java -cp 'jars/*' ShareLoop.java ...`). Every line it prints on stdout is one JSON object.
//
//   ShareLoop produce BOOTSTRAP TOPIC COUNT [--partitions N] [--rf R] [--key-prefix P] [--start I]
//       creates TOPIC (N partitions, default 1; replication factor R, default 1; an existing
//       topic is kept), then produces COUNT records with acks=all: key P<i>, value v<i>, for i
//       from I (default 0), record i to partition i % N. One line per acknowledged record,
//         {"event":"produced","partition":0,"offset":5,"key":"k5"}
//       then {"event":"produce-done","count":COUNT}.
//
//   ShareLoop consume BOOTSTRAP TOPIC GROUP [options]
//       a share consumer of GROUP subscribed to TOPIC. One line per record delivered,
//         {"event":"record","client":"c1","partition":0,"offset":5,"key":"k5","delivery":1}
//       one line per acknowledgement the broker answered (the acknowledgement commit callback),
//         {"event":"ack","client":"c1","partition":0,"offset":5,"type":"accept","error":null}
//       and {"event":"started",...} first, {"event":"error",...} for an exception poll or commit
//       threw, {"event":"holding",...} when it starts to hold records (below), and
//       {"event":"done","client":"c1","delivered":N,...} last.
//     --mode implicit|explicit   share.acknowledgement.mode (default implicit: every record of
//                                a poll is accepted by the next poll, commitSync or close)
//     --reject REGEX             explicit mode: reject the records whose key matches
//     --release-once REGEX       explicit mode: release a matching record on its first
//                                delivery, accept it on a later one
//     --release-always REGEX     explicit mode: release a matching record on every delivery
//                                (the broker archives it at the delivery count limit)
//     --renew REGEX --renew-times N
//                                explicit mode: renew a matching record's acquisition lock
//                                (AcknowledgeType.RENEW, KIP-1222, sent at once with
//                                commitSync) the first N times it is polled (the consumer
//                                polls a renewed record again), accept it then
//     --acquire-mode M           share.acquire.mode: batch_optimized or record_limit (KIP-1206)
//                                (any other record is accepted)
//     --max-records N            stop after N deliveries (acknowledged first)
//     --idle-ms M                stop after M ms without a record (counted from the start too)
//     --timeout-ms T             stop after T ms in all (default 120000)
//     --stop-file PATH           stop once PATH exists
//     --hold-after N --hold-ms M once N records were delivered, print "holding" and sleep M ms
//                                before acknowledging anything (a kill -9 then leaves them
//                                acquired)
//     --poll-sleep-ms S          sleep S ms after each poll that returned records
//                                (each such poll also prints {"event":"poll","count":N,...})
//     --max-poll-records R       max.poll.records
//     --client-id ID             client.id (also the "client" of each line; default share-<pid>)
//     --commit poll|sync|async   how explicit acknowledgements are sent: with the next poll
//                                (default), commitSync or commitAsync after each poll
// At the end it sends what is left (commitSync), closes the consumer and prints "done".

import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Properties;
import java.util.Set;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.Future;
import java.util.regex.Pattern;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.consumer.AcknowledgeType;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaShareConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.KafkaException;
import org.apache.kafka.common.TopicIdPartition;
import org.apache.kafka.common.errors.TopicExistsException;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

public final class ShareLoop {
    /// stdout, UTF-8, flushed per line (the test reads the file while the program runs).
    private static final PrintStream OUT = new PrintStream(
        new java.io.FileOutputStream(java.io.FileDescriptor.out), true, StandardCharsets.UTF_8);

    public static void main(String[] args) throws Exception {
        if (args.length < 1) {
            usage();
        }
        switch (args[0]) {
            case "produce":
                produce(args);
                break;
            case "consume":
                consume(args);
                break;
            default:
                usage();
        }
    }

    private static void usage() {
        System.err.println("usage: ShareLoop produce BOOTSTRAP TOPIC COUNT [options]\n"
            + "       ShareLoop consume BOOTSTRAP TOPIC GROUP [options]");
        System.exit(2);
    }

    /// The `--name value` options after the positional arguments.
    private static Map<String, String> options(String[] args, int from) {
        Map<String, String> opts = new HashMap<>();
        for (int i = from; i < args.length; i += 2) {
            if (!args[i].startsWith("--") || i + 1 >= args.length) {
                System.err.println("bad option: " + args[i]);
                usage();
            }
            opts.put(args[i].substring(2), args[i + 1]);
        }
        return opts;
    }

    // --- produce ---------------------------------------------------------------------------------

    private static void produce(String[] args) throws Exception {
        if (args.length < 4) {
            usage();
        }
        String bootstrap = args[1];
        String topic = args[2];
        int count = Integer.parseInt(args[3]);
        Map<String, String> opts = options(args, 4);
        int partitions = Integer.parseInt(opts.getOrDefault("partitions", "1"));
        short rf = Short.parseShort(opts.getOrDefault("rf", "1"));
        String prefix = opts.getOrDefault("key-prefix", "k");
        int start = Integer.parseInt(opts.getOrDefault("start", "0"));

        Properties ap = new Properties();
        ap.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        try (Admin admin = Admin.create(ap)) {
            try {
                admin.createTopics(List.of(new NewTopic(topic, partitions, rf))).all().get();
            } catch (ExecutionException e) {
                if (!(e.getCause() instanceof TopicExistsException)) {
                    throw e;
                }
            }
            // An existing topic (e.g. created by a consumer's metadata request with the
            // broker's default partition count) must have the partitions asked for.
            int have = admin.describeTopics(List.of(topic)).allTopicNames().get().get(topic)
                .partitions().size();
            if (have != partitions) {
                System.err.println("topic " + topic + " has " + have + " partitions, not " + partitions);
                System.exit(1);
            }
        }

        Properties pp = new Properties();
        pp.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        pp.put(ProducerConfig.ACKS_CONFIG, "all");
        pp.put(ProducerConfig.LINGER_MS_CONFIG, 5);
        pp.put(ProducerConfig.DELIVERY_TIMEOUT_MS_CONFIG, 60_000);
        pp.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, 30_000);
        // Small batches (a few dozen records each), so that a share fetch with a small
        // max.poll.records acquires few records at a time.
        pp.put(ProducerConfig.BATCH_SIZE_CONFIG, 1024);
        pp.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        pp.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        try (KafkaProducer<String, String> producer = new KafkaProducer<>(pp)) {
            List<Future<RecordMetadata>> sent = new ArrayList<>();
            List<String> keys = new ArrayList<>();
            for (int i = start; i < start + count; i++) {
                String key = prefix + i;
                keys.add(key);
                sent.add(producer.send(new ProducerRecord<>(topic, i % partitions, key, "v" + i)));
            }
            producer.flush();
            for (int i = 0; i < sent.size(); i++) {
                RecordMetadata md = sent.get(i).get();
                OUT.println("{\"event\":\"produced\",\"partition\":" + md.partition()
                    + ",\"offset\":" + md.offset() + ",\"key\":" + str(keys.get(i)) + "}");
            }
        }
        OUT.println("{\"event\":\"produce-done\",\"count\":" + count + "}");
    }

    // --- consume ---------------------------------------------------------------------------------

    private static void consume(String[] args) throws Exception {
        if (args.length < 4) {
            usage();
        }
        String bootstrap = args[1];
        String topic = args[2];
        String group = args[3];
        Map<String, String> opts = options(args, 4);
        String mode = opts.getOrDefault("mode", "implicit");
        boolean explicit = mode.equals("explicit");
        Pattern reject = pattern(opts.get("reject"));
        Pattern releaseOnce = pattern(opts.get("release-once"));
        Pattern releaseAlways = pattern(opts.get("release-always"));
        Pattern renew = pattern(opts.get("renew"));
        int renewTimes = Integer.parseInt(opts.getOrDefault("renew-times", "1"));
        Map<String, Integer> renewed = new HashMap<>();
        long maxRecords = Long.parseLong(opts.getOrDefault("max-records", "0"));
        long idleMs = Long.parseLong(opts.getOrDefault("idle-ms", "0"));
        long timeoutMs = Long.parseLong(opts.getOrDefault("timeout-ms", "120000"));
        Path stopFile = opts.containsKey("stop-file") ? Paths.get(opts.get("stop-file")) : null;
        long holdAfter = Long.parseLong(opts.getOrDefault("hold-after", "0"));
        long holdMs = Long.parseLong(opts.getOrDefault("hold-ms", "0"));
        long pollSleepMs = Long.parseLong(opts.getOrDefault("poll-sleep-ms", "0"));
        String commit = opts.getOrDefault("commit", "poll");
        String client = opts.getOrDefault("client-id", "share-" + ProcessHandle.current().pid());

        Properties cp = new Properties();
        cp.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        cp.put(ConsumerConfig.GROUP_ID_CONFIG, group);
        cp.put(ConsumerConfig.CLIENT_ID_CONFIG, client);
        cp.put(ConsumerConfig.SHARE_ACKNOWLEDGEMENT_MODE_CONFIG, mode);
        cp.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        cp.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        if (opts.containsKey("acquire-mode")) {
            cp.put("share.acquire.mode", opts.get("acquire-mode"));
        }
        if (opts.containsKey("max-poll-records")) {
            cp.put(ConsumerConfig.MAX_POLL_RECORDS_CONFIG, Integer.parseInt(opts.get("max-poll-records")));
        }

        // What each explicit acknowledgement was, in order per record, for the callback's lines
        // (a released record can be delivered and acknowledged again before the callback of its
        // first acknowledgement).
        Map<String, ArrayDeque<String>> ackTypes = new HashMap<>();
        long delivered = 0;
        long acked = 0;
        long errors = 0;
        KafkaShareConsumer<String, String> consumer = new KafkaShareConsumer<>(cp);
        long[] ackedBox = {0};
        consumer.setAcknowledgementCommitCallback((Map<TopicIdPartition, Set<Long>> offsets, Exception e) -> {
            for (Map.Entry<TopicIdPartition, Set<Long>> entry : offsets.entrySet()) {
                int partition = entry.getKey().partition();
                for (long offset : entry.getValue()) {
                    String type = "accept";
                    if (explicit) {
                        ArrayDeque<String> types = ackTypes.get(partition + ":" + offset);
                        // Renewals are not queued: a callback for one finds the queue empty
                        // (the record's next type is queued only after it is polled again).
                        type = types != null && !types.isEmpty() ? types.poll()
                            : renewed.containsKey(partition + ":" + offset) ? "renew" : "unknown";
                    }
                    ackedBox[0]++;
                    OUT.println("{\"event\":\"ack\",\"client\":" + str(client) + ",\"partition\":"
                        + partition + ",\"offset\":" + offset + ",\"type\":" + str(type)
                        + ",\"error\":" + (e == null ? "null" : str(describe(e))) + "}");
                }
            }
        });
        consumer.subscribe(List.of(topic));
        OUT.println("{\"event\":\"started\",\"client\":" + str(client) + ",\"group\":" + str(group)
            + ",\"mode\":" + str(mode) + "}");

        long start = System.currentTimeMillis();
        long lastRecord = start;
        boolean held = false;
        String stopReason = "timeout";
        while (true) {
            long now = System.currentTimeMillis();
            if (stopFile != null && Files.exists(stopFile)) {
                stopReason = "stop-file";
                break;
            }
            if (now - start >= timeoutMs) {
                stopReason = "timeout";
                break;
            }
            if (idleMs > 0 && now - lastRecord >= idleMs) {
                stopReason = "idle";
                break;
            }
            if (maxRecords > 0 && delivered >= maxRecords) {
                stopReason = "max-records";
                break;
            }
            ConsumerRecords<String, String> records;
            try {
                records = consumer.poll(Duration.ofMillis(200));
            } catch (KafkaException e) {
                errors++;
                error(client, "poll", e);
                Thread.sleep(200);
                continue;
            }
            if (!records.isEmpty()) {
                OUT.println("{\"event\":\"poll\",\"client\":" + str(client) + ",\"count\":"
                    + records.count() + "}");
            }
            for (ConsumerRecord<String, String> r : records) {
                delivered++;
                lastRecord = System.currentTimeMillis();
                int count = r.deliveryCount().map(Short::intValue).orElse(-1);
                OUT.println("{\"event\":\"record\",\"client\":" + str(client) + ",\"partition\":"
                    + r.partition() + ",\"offset\":" + r.offset() + ",\"key\":" + str(r.key())
                    + ",\"delivery\":" + count + "}");
            }
            if (holdAfter > 0 && !held && delivered >= holdAfter) {
                held = true;
                OUT.println("{\"event\":\"holding\",\"client\":" + str(client) + ",\"delivered\":"
                    + delivered + "}");
                Thread.sleep(holdMs);
            }
            if (explicit) {
                boolean anyRenew = false;
                for (ConsumerRecord<String, String> r : records) {
                    String key = r.key() == null ? "" : r.key();
                    int count = r.deliveryCount().map(Short::intValue).orElse(1);
                    AcknowledgeType type = AcknowledgeType.ACCEPT;
                    String pos = r.partition() + ":" + r.offset();
                    if (matches(renew, key) && renewed.getOrDefault(pos, 0) < renewTimes) {
                        renewed.merge(pos, 1, Integer::sum);
                        type = AcknowledgeType.RENEW;
                        anyRenew = true;
                    } else if (matches(reject, key)) {
                        type = AcknowledgeType.REJECT;
                    } else if (matches(releaseAlways, key)) {
                        type = AcknowledgeType.RELEASE;
                    } else if (matches(releaseOnce, key) && count <= 1) {
                        type = AcknowledgeType.RELEASE;
                    }
                    if (type != AcknowledgeType.RENEW) {
                        ackTypes.computeIfAbsent(pos, k -> new ArrayDeque<>())
                            .add(type.toString().toLowerCase());
                    }
                    try {
                        consumer.acknowledge(r, type);
                    } catch (KafkaException | IllegalStateException e) {
                        errors++;
                        error(client, "acknowledge", e);
                    }
                }
                if (!records.isEmpty()) {
                    errors += send(consumer, anyRenew ? "sync" : commit, client);
                }
            }
            if (pollSleepMs > 0 && !records.isEmpty()) {
                Thread.sleep(pollSleepMs);
            }
        }
        // What is left: the last poll's records (implicit mode) or acknowledgements not sent yet.
        errors += send(consumer, "sync", client);
        try {
            consumer.close(Duration.ofSeconds(30));
        } catch (KafkaException e) {
            errors++;
            error(client, "close", e);
        }
        acked = ackedBox[0];
        OUT.println("{\"event\":\"done\",\"client\":" + str(client) + ",\"delivered\":" + delivered
            + ",\"acked\":" + acked + ",\"errors\":" + errors + ",\"reason\":" + str(stopReason)
            + ",\"ms\":" + (System.currentTimeMillis() - start) + "}");
    }

    /// Sends the acknowledgements made so far: commitSync, commitAsync, or nothing (they go with
    /// the next poll). Returns how many errors it printed.
    private static int send(KafkaShareConsumer<String, String> consumer, String how, String client) {
        try {
            if (how.equals("sync")) {
                Map<TopicIdPartition, Optional<KafkaException>> result =
                    consumer.commitSync(Duration.ofSeconds(30));
                int errors = 0;
                for (Map.Entry<TopicIdPartition, Optional<KafkaException>> e : result.entrySet()) {
                    if (e.getValue().isPresent()) {
                        errors++;
                        error(client, "commitSync " + e.getKey().partition(), e.getValue().get());
                    }
                }
                return errors;
            } else if (how.equals("async")) {
                consumer.commitAsync();
            }
            return 0;
        } catch (KafkaException | IllegalStateException e) {
            error(client, "commit " + how, e);
            return 1;
        }
    }

    private static void error(String client, String where, Exception e) {
        OUT.println("{\"event\":\"error\",\"client\":" + str(client) + ",\"where\":" + str(where)
            + ",\"error\":" + str(describe(e)) + "}");
    }

    private static String describe(Throwable e) {
        String s = e.getClass().getSimpleName() + ": " + e.getMessage();
        if (e.getCause() != null && e.getCause() != e) {
            s += " (caused by " + e.getCause().getClass().getSimpleName() + ": "
                + e.getCause().getMessage() + ")";
        }
        return s;
    }

    private static Pattern pattern(String regex) {
        return regex == null ? null : Pattern.compile(regex);
    }

    private static boolean matches(Pattern p, String key) {
        return p != null && p.matcher(key).matches();
    }

    /// A JSON string.
    private static String str(String s) {
        if (s == null) {
            return "null";
        }
        StringBuilder b = new StringBuilder("\"");
        for (char c : s.toCharArray()) {
            switch (c) {
                case '"': b.append("\\\""); break;
                case '\\': b.append("\\\\"); break;
                case '\n': b.append("\\n"); break;
                case '\r': b.append("\\r"); break;
                case '\t': b.append("\\t"); break;
                default:
                    if (c < 0x20) {
                        b.append(String.format("\\u%04x", (int) c));
                    } else {
                        b.append(c);
                    }
            }
        }
        return b.append('"').toString();
    }
}
