// KIP-848 online migration as an application team does it (Kafka 4.x's rolling upgrade of
// `group.protocol`), run as a single source file against the toolbox's jars:
//
//   GroupMigration BOOTSTRAP TOPIC GROUP
//
// Creates TOPIC (6 partitions), starts a producer writing a steady stream, and three consumers
// of GROUP (manual commits after each poll) on group.protocol=classic. Then restarts them one
// by one (close, a new consumer) with group.protocol=consumer, and one by one back to classic.
// A restarted consumer has auto.offset.reset=none, so a committed offset that did not carry
// over fails the run. At every settled step: every partition owned by exactly one consumer (the
// consumers' own view and the group's description agree). At the end the producer stops, the
// group commits up to the end of every partition, and every produced offset was consumed at
// least once. Prints one JSON line:
//
//   {"ok": true|false, "errors": [...], "produced": N, "consumed": N, "duplicates": N,
//    "steps": [{"step": "...", "type": "classic|consumer", "state": "...", "ms": T,
//               "members": [{"client": "...", "upgraded": "true|false|-", "partitions": [...]}]}]}

import java.time.Duration;
import java.util.ArrayList;
import java.util.BitSet;
import java.util.Collection;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.TreeSet;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.CopyOnWriteArrayList;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicBoolean;
import java.util.concurrent.atomic.AtomicLong;
import java.util.concurrent.atomic.AtomicLongArray;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.ConsumerGroupDescription;
import org.apache.kafka.clients.admin.MemberDescription;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.consumer.CommitFailedException;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.RebalanceInProgressException;
import org.apache.kafka.common.errors.WakeupException;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

public final class GroupMigration {
    static final int PARTITIONS = 6;
    static final List<String> errors = new CopyOnWriteArrayList<>();
    static final Map<Integer, BitSet> consumed = new ConcurrentHashMap<>();
    static final AtomicLong records = new AtomicLong();
    static final AtomicLong duplicates = new AtomicLong();

    /** One consumer on its own thread; publishes what it owns after each poll. */
    static final class Worker implements Runnable {
        final String name;
        final KafkaConsumer<byte[], byte[]> consumer;
        final AtomicBoolean running = new AtomicBoolean(true);
        volatile Set<Integer> owned = Collections.emptySet();
        final Thread thread;

        Worker(String bootstrap, String topic, String group, String protocol, String name, boolean restarted) {
            this.name = name;
            Properties p = new Properties();
            p.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
            p.put(ConsumerConfig.GROUP_ID_CONFIG, group);
            p.put(ConsumerConfig.CLIENT_ID_CONFIG, name);
            p.put(ConsumerConfig.GROUP_PROTOCOL_CONFIG, protocol);
            p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
            p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, restarted ? "none" : "earliest");
            p.put(ConsumerConfig.MAX_POLL_RECORDS_CONFIG, "200");
            if (protocol.equals("classic")) {
                p.put(ConsumerConfig.SESSION_TIMEOUT_MS_CONFIG, "10000");
                p.put(ConsumerConfig.HEARTBEAT_INTERVAL_MS_CONFIG, "500");
            }
            p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
            p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
            consumer = new KafkaConsumer<>(p);
            consumer.subscribe(Collections.singletonList(topic));
            thread = new Thread(this, name);
            thread.start();
        }

        public void run() {
            try {
                while (running.get()) {
                    ConsumerRecords<byte[], byte[]> batch = consumer.poll(Duration.ofMillis(100));
                    for (ConsumerRecord<byte[], byte[]> r : batch) {
                        BitSet seen = consumed.computeIfAbsent(r.partition(), k -> new BitSet());
                        synchronized (seen) {
                            if (seen.get((int) r.offset())) {
                                duplicates.incrementAndGet();
                            }
                            seen.set((int) r.offset());
                        }
                        records.incrementAndGet();
                    }
                    if (!batch.isEmpty()) {
                        try {
                            consumer.commitSync();
                        } catch (RebalanceInProgressException | CommitFailedException e) {
                            // A rebalance moved on; the next owner re-reads from the last commit.
                        }
                    }
                    Set<Integer> mine = new TreeSet<>();
                    for (TopicPartition tp : consumer.assignment()) {
                        mine.add(tp.partition());
                    }
                    owned = mine;
                }
                try {
                    consumer.commitSync();
                } catch (RebalanceInProgressException | CommitFailedException e) {
                    // as above
                }
            } catch (WakeupException e) {
                // closing
            } catch (Exception e) {
                errors.add(name + ": " + e);
            } finally {
                owned = Collections.emptySet();
                consumer.close(Duration.ofSeconds(5));
            }
        }

        void stop() throws InterruptedException {
            running.set(false);
            thread.join(15_000);
        }
    }

    public static void main(String[] args) throws Exception {
        String bootstrap = args[0];
        String topic = args[1];
        String group = args[2];
        Properties ap = new Properties();
        ap.put(AdminClientConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        List<String> steps = new ArrayList<>();
        AtomicLongArray produced = new AtomicLongArray(PARTITIONS);
        AtomicBoolean producing = new AtomicBoolean(true);
        try (Admin admin = Admin.create(ap)) {
            admin.createTopics(List.of(new NewTopic(topic, PARTITIONS, (short) 1))).all().get(30, TimeUnit.SECONDS);

            Properties pp = new Properties();
            pp.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
            pp.put(ProducerConfig.ACKS_CONFIG, "all");
            pp.put(ProducerConfig.LINGER_MS_CONFIG, "5");
            pp.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
            pp.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
            KafkaProducer<String, String> producer = new KafkaProducer<>(pp);
            Thread writer = new Thread(() -> {
                long seq = 0;
                while (producing.get()) {
                    int partition = (int) (seq % PARTITIONS);
                    producer.send(new ProducerRecord<>(topic, partition, "k" + seq, "v" + seq), (md, e) -> {
                        if (e != null) {
                            errors.add("produce: " + e);
                        } else {
                            produced.accumulateAndGet(md.partition(), md.offset() + 1, Math::max);
                        }
                    });
                    seq++;
                    try {
                        Thread.sleep(2);
                    } catch (InterruptedException e) {
                        return;
                    }
                }
                producer.flush();
            }, "producer");
            writer.start();

            Worker[] workers = new Worker[3];
            for (int i = 0; i < 3; i++) {
                workers[i] = new Worker(bootstrap, topic, group, "classic", "c" + i + "-classic", false);
            }
            boolean ok = settle(admin, group, workers, "all-classic", steps);
            // Every partition has a committed offset before anyone restarts with reset=none.
            long deadline = System.currentTimeMillis() + 20_000;
            while (ok && admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata().get().size() < PARTITIONS) {
                if (System.currentTimeMillis() > deadline) {
                    errors.add("not every partition committed after the first step");
                    ok = false;
                }
                Thread.sleep(100);
            }
            for (String protocol : new String[] {"consumer", "classic"}) {
                for (int i = 0; i < 3 && ok; i++) {
                    workers[i].stop();
                    workers[i] = new Worker(bootstrap, topic, group, protocol, "c" + i + "-" + protocol, true);
                    ok = settle(admin, group, workers, "c" + i + "-to-" + protocol, steps);
                }
            }

            producing.set(false);
            writer.join(10_000);
            producer.close(Duration.ofSeconds(10));
            // The group catches up and commits every partition's end.
            deadline = System.currentTimeMillis() + 30_000;
            while (ok) {
                Map<TopicPartition, OffsetAndMetadata> committed =
                    admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata().get();
                boolean done = true;
                for (int p = 0; p < PARTITIONS; p++) {
                    OffsetAndMetadata o = committed.get(new TopicPartition(topic, p));
                    done &= o != null && o.offset() == produced.get(p);
                }
                if (done) {
                    break;
                }
                if (System.currentTimeMillis() > deadline) {
                    errors.add("committed offsets did not reach the end: " + committed + " produced " + produced);
                    break;
                }
                Thread.sleep(100);
            }
            for (Worker w : workers) {
                w.stop();
            }
        }
        long total = 0;
        for (int p = 0; p < PARTITIONS; p++) {
            long end = produced.get(p);
            total += end;
            BitSet seen = consumed.getOrDefault(p, new BitSet());
            int missing = seen.nextClearBit(0);
            if (missing < end) {
                errors.add("partition " + p + ": offset " + missing + " of " + end + " never consumed");
            }
        }
        if (total < 1000) {
            errors.add("only " + total + " records produced");
        }
        StringBuilder out = new StringBuilder();
        out.append("{\"ok\": ").append(errors.isEmpty());
        out.append(", \"errors\": [");
        for (int i = 0; i < errors.size(); i++) {
            out.append(i == 0 ? "" : ", ").append(quote(errors.get(i)));
        }
        out.append("], \"produced\": ").append(total);
        out.append(", \"consumed\": ").append(records.get());
        out.append(", \"duplicates\": ").append(duplicates.get());
        out.append(", \"steps\": [").append(String.join(", ", steps)).append("]}");
        System.out.println(out);
        System.exit(0);
    }

    /**
     * Waits (up to 30 s) until the three live consumers own every partition exactly once and the
     * group's description says the same; records the step. False (and an error) otherwise.
     */
    static boolean settle(Admin admin, String group, Worker[] workers, String step, List<String> steps) throws Exception {
        long start = System.currentTimeMillis();
        String last = "";
        while (System.currentTimeMillis() - start < 30_000) {
            if (!errors.isEmpty()) {
                return false;
            }
            Map<Integer, String> owner = new HashMap<>();
            boolean disjoint = true;
            for (Worker w : workers) {
                for (int p : w.owned) {
                    disjoint &= owner.put(p, w.name) == null;
                }
            }
            boolean everyoneHasSome = true;
            for (Worker w : workers) {
                everyoneHasSome &= !w.owned.isEmpty();
            }
            if (disjoint && owner.size() == PARTITIONS && everyoneHasSome) {
                ConsumerGroupDescription d = admin.describeConsumerGroups(List.of(group)).all().get().get(group);
                Collection<MemberDescription> members = d.members();
                boolean agrees = members.size() == workers.length;
                List<String> shown = new ArrayList<>();
                for (MemberDescription m : members) {
                    Set<Integer> parts = new TreeSet<>();
                    for (TopicPartition tp : m.assignment().topicPartitions()) {
                        parts.add(tp.partition());
                    }
                    boolean matches = false;
                    for (Worker w : workers) {
                        matches |= w.name.equals(m.clientId()) && w.owned.equals(parts);
                    }
                    agrees &= matches;
                    shown.add("{\"client\": " + quote(m.clientId()) + ", \"upgraded\": "
                        + quote(m.upgraded().map(String::valueOf).orElse("-")) + ", \"partitions\": " + parts + "}");
                }
                agrees &= d.groupState().toString().equalsIgnoreCase("stable");
                last = d.type() + " " + d.groupState() + " " + shown;
                if (agrees) {
                    Collections.sort(shown);
                    steps.add("{\"step\": " + quote(step) + ", \"type\": " + quote(d.type().toString().toLowerCase())
                        + ", \"state\": " + quote(d.groupState().toString()) + ", \"ms\": "
                        + (System.currentTimeMillis() - start) + ", \"members\": [" + String.join(", ", shown) + "]}");
                    return true;
                }
            }
            Thread.sleep(100);
        }
        StringBuilder view = new StringBuilder();
        for (Worker w : workers) {
            view.append(w.name).append("=").append(w.owned).append(" ");
        }
        errors.add("step " + step + " did not settle in 30 s: consumers " + view + "; group " + last);
        return false;
    }

    static String quote(String s) {
        return "\"" + s.replace("\\", "\\\\").replace("\"", "\\\"").replace("\n", " ") + "\"";
    }
}
