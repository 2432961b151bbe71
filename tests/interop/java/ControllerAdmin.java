// A Java AdminClient (kafka-clients) bootstrapped from a controller listener (KIP-919:
// `bootstrap.controllers`), run as a single source file against the toolbox's jars
// (`java -cp 'jars/*' ControllerAdmin.java ...`):
//
//   ControllerAdmin BOOTSTRAP_CONTROLLERS STEP...
//
// Each STEP is one admin call, made in order whatever the previous ones did:
//
//   create:TOPIC:PARTITIONS     createTopics (replication factor 1)
//   partitions:TOPIC:COUNT      createPartitions (increaseTo COUNT)
//   list                        listPartitionReassignments (all partitions)
//   cancel:TOPIC:PARTITION      alterPartitionReassignments, cancelling that partition's move
//   delete:TOPIC                deleteTopics
//
// Prints one JSON line with each step's outcome, "ok" or the simple class name of what it threw
// (the cause of an ExecutionException), and the number of reassignments `list` found (-1
// when it failed or was not asked):
//
//   {"steps": [["create:t:1", "..."], ...], "reassignments": 0}

import java.util.ArrayList;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.Properties;
import java.util.Set;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.NewPartitionReassignment;
import org.apache.kafka.clients.admin.NewPartitions;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.common.TopicPartition;

public final class ControllerAdmin {
    public static void main(String[] args) throws Exception {
        Properties props = new Properties();
        props.put(AdminClientConfig.BOOTSTRAP_CONTROLLERS_CONFIG, args[0]);
        props.put(AdminClientConfig.REQUEST_TIMEOUT_MS_CONFIG, 15_000);
        props.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, 30_000);
        List<String> outcomes = new ArrayList<>();
        int reassignments = -1;
        try (Admin admin = Admin.create(props)) {
            for (int i = 1; i < args.length; i++) {
                String step = args[i];
                String[] parts = step.split(":");
                String outcome = "ok";
                try {
                    switch (parts[0]) {
                        case "create":
                            admin.createTopics(List.of(new NewTopic(
                                    parts[1], Integer.parseInt(parts[2]), (short) 1)))
                                .all().get(40, TimeUnit.SECONDS);
                            break;
                        case "partitions":
                            admin.createPartitions(Map.of(
                                    parts[1], NewPartitions.increaseTo(Integer.parseInt(parts[2]))))
                                .all().get(40, TimeUnit.SECONDS);
                            break;
                        case "list":
                            reassignments = admin.listPartitionReassignments()
                                .reassignments().get(40, TimeUnit.SECONDS).size();
                            break;
                        case "cancel":
                            admin.alterPartitionReassignments(Map.of(
                                    new TopicPartition(parts[1], Integer.parseInt(parts[2])),
                                    Optional.<NewPartitionReassignment>empty()))
                                .all().get(40, TimeUnit.SECONDS);
                            break;
                        case "delete":
                            admin.deleteTopics(Set.of(parts[1])).all().get(40, TimeUnit.SECONDS);
                            break;
                        default:
                            outcome = "unknown step";
                    }
                } catch (ExecutionException e) {
                    outcome = name(e.getCause() != null ? e.getCause() : e);
                } catch (Exception e) {
                    outcome = name(e);
                }
                outcomes.add("[\"" + step + "\", \"" + outcome + "\"]");
            }
        }
        System.out.println("{\"steps\": [" + String.join(", ", outcomes) + "], \"reassignments\": "
                + reassignments + "}");
    }

    private static String name(Throwable t) {
        return t.getClass().getSimpleName();
    }
}
