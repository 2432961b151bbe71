// The training run for the toolbox's class-data sharing archive of Kafka's tools
// (scripts/toolbox, "class-data sharing"): runs the main classes the e2e tests start most
// often, one after another in this one JVM, against the Kafka broker at BOOTSTRAP, so that the
// JVM's archive written at exit (-XX:ArchiveClassesAtExit) holds the classes they load. What
// each tool prints is dropped; a tool that fails is named on stderr and the next one runs.
//
//   java -cp 'jars/*' -XX:ArchiveClassesAtExit=tools.jsa ToolsTraining.java BOOTSTRAP
//
// Run with the single-file source launcher, so the class path is exactly the tools' own.

import java.io.ByteArrayInputStream;
import java.io.OutputStream;
import java.io.PrintStream;
import java.lang.reflect.InvocationTargetException;
import java.nio.charset.StandardCharsets;

import org.apache.kafka.common.utils.internals.Exit;

public class ToolsTraining {
    /** The code the last tool gave Kafka's Exit (which returns here instead of ending the JVM). */
    static volatile int exitCode;

    public static void main(String[] args) {
        if (args.length != 1) {
            System.err.println("usage: ToolsTraining BOOTSTRAP");
            System.exit(2);
        }
        String bs = args[0];
        String topic = "tools-training";
        String group = "tools-training-group";
        Exit.setExitProcedure((code, message) -> exitCode = code);
        PrintStream out = System.out;
        PrintStream err = System.err;
        PrintStream dropped = new PrintStream(OutputStream.nullOutputStream());
        System.setOut(dropped);
        System.setErr(dropped);
        run("org.apache.kafka.tools.TopicCommand", "--bootstrap-server", bs, "--create",
                "--topic", topic, "--partitions", "2");
        run("org.apache.kafka.tools.TopicCommand", "--bootstrap-server", bs, "--describe",
                "--topic", topic);
        run("org.apache.kafka.tools.TopicCommand", "--bootstrap-server", bs, "--list");
        System.setIn(new ByteArrayInputStream("k1:a\nk2:b\n".getBytes(StandardCharsets.UTF_8)));
        run("org.apache.kafka.tools.ConsoleProducer", "--bootstrap-server", bs, "--topic",
                topic, "--property", "parse.key=true", "--property", "key.separator=:");
        run("org.apache.kafka.tools.consumer.ConsoleConsumer", "--bootstrap-server", bs,
                "--topic", topic, "--group", group, "--from-beginning", "--max-messages", "2",
                "--timeout-ms", "20000", "--property", "print.key=true");
        run("org.apache.kafka.tools.consumer.group.ConsumerGroupCommand",
                "--bootstrap-server", bs, "--describe", "--group", group);
        run("org.apache.kafka.tools.consumer.group.ShareGroupCommand",
                "--bootstrap-server", bs, "--list");
        run("org.apache.kafka.tools.ConfigCommand", "--bootstrap-server", bs, "--describe",
                "--entity-type", "topics", "--entity-name", topic);
        run("org.apache.kafka.tools.ConfigCommand", "--bootstrap-server", bs, "--alter",
                "--entity-type", "topics", "--entity-name", topic, "--add-config", "retention.ms=60000");
        run("org.apache.kafka.tools.GetOffsetShell", "--bootstrap-server", bs, "--topic", topic);
        run("org.apache.kafka.tools.TransactionsCommand", "--bootstrap-server", bs, "list");
        run("org.apache.kafka.tools.MetadataQuorumCommand", "--bootstrap-server", bs,
                "describe", "--status");
        run("org.apache.kafka.tools.FeatureCommand", "--bootstrap-server", bs, "describe");
        run("org.apache.kafka.tools.TopicCommand", "--bootstrap-server", bs, "--delete",
                "--topic", topic);
        System.setOut(out);
        System.setErr(err);
        for (String f : FAILED) {
            System.err.println("ToolsTraining: " + f);
        }
        System.out.println("ToolsTraining: " + (runs - FAILED.size()) + " of " + runs + " tool runs succeeded");
        Exit.resetExitProcedure();
        // Ends the JVM (and with it the tools' leftover threads): the archive is written now.
        System.exit(0);
    }

    /** How many tool runs were made. */
    static int runs;

    /** The tools that failed, with how. */
    static final java.util.List<String> FAILED = new java.util.ArrayList<>();

    /** Runs CLASS's main with ARGS; a failure is kept in FAILED. */
    static void run(String cls, String... args) {
        runs++;
        exitCode = 0;
        try {
            Class.forName(cls).getMethod("main", String[].class).invoke(null, (Object) args);
        } catch (InvocationTargetException e) {
            FAILED.add(cls + ": " + e.getCause());
            return;
        } catch (ReflectiveOperationException e) {
            FAILED.add(cls + ": " + e);
            return;
        }
        if (exitCode != 0) {
            FAILED.add(cls + " " + String.join(" ", args) + ": exit " + exitCode);
        }
    }
}
