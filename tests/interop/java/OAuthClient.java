// Kafka's Java client (kafka-clients) with SASL/OAUTHBEARER and its unsecured login
// (OAuthBearerLoginModule with unsecuredLoginStringClaim_sub), run as a single source file
// against the toolbox's jars (`java -cp 'jars/*' OAuthClient.java ...`):
//
//   OAuthClient BOOTSTRAP TOPIC COUNT SUB SCOPE
//   OAuthClient BOOTSTRAP TOPIC COUNT --token-file GOOD_JWT BAD_JWT
//
// Over SASL_PLAINTEXT, logged in as SUB with scope SCOPE (an unsecured token), or with the
// signed JWT in GOOD_JWT (handed to the client by TokenFileHandler, a login callback handler
// defined below): produces COUNT keyed records with acks=all (keys and values as
// tests/e2e/python/common.py makes them) and reads them back in a consumer group. Then a
// producer whose token has only the scope "other" (or the JWT in BAD_JWT) tries to send one
// record and reports the exception it gets. Prints one JSON line:
//
//   {"delivered": [[partition, offset, key, value], ...], "records": [...],
//    "refused": {"exception": CLASS, "message": MESSAGE} | null}

import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Properties;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;

import org.apache.kafka.clients.CommonClientConfigs;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.clients.producer.RecordMetadata;
import org.apache.kafka.common.config.SaslConfigs;
import org.apache.kafka.common.errors.AuthenticationException;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

public final class OAuthClient {
    public static void main(String[] args) throws Exception {
        String bootstrap = args[0];
        String topic = args[1];
        int count = Integer.parseInt(args[2]);
        boolean signed = args[3].equals("--token-file");
        String sub = args[4 - (signed ? 0 : 1)];
        String scope = signed ? "" : args[4];

        Properties login = signed ? signed(bootstrap, args[4]) : connection(bootstrap, sub, scope);
        List<String> delivered = new ArrayList<>();
        try (KafkaProducer<String, String> producer = new KafkaProducer<>(producerConfig(login))) {
            List<Future<RecordMetadata>> acks = new ArrayList<>();
            List<String[]> sent = new ArrayList<>();
            for (int i = 0; i < count; i++) {
                String key = String.format("k%04d", i % 50);
                String value = valueOf(i, 100);
                acks.add(producer.send(new ProducerRecord<>(topic, key, value)));
                sent.add(new String[] {key, value});
            }
            producer.flush();
            for (int i = 0; i < count; i++) {
                RecordMetadata m = acks.get(i).get();
                delivered.add(record(m.partition(), m.offset(), sent.get(i)[0], sent.get(i)[1]));
            }
        }

        List<String> records = new ArrayList<>();
        Properties cp = new Properties();
        cp.putAll(login);
        cp.put(ConsumerConfig.GROUP_ID_CONFIG, "oauth-java-" + topic);
        cp.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        cp.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        cp.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        try (KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(cp)) {
            consumer.subscribe(List.of(topic));
            long deadline = System.currentTimeMillis() + 60_000;
            while (records.size() < count) {
                if (System.currentTimeMillis() > deadline) {
                    throw new IllegalStateException(
                            "timed out: " + records.size() + " of " + count + " records read");
                }
                for (ConsumerRecord<byte[], byte[]> r : consumer.poll(Duration.ofMillis(500))) {
                    records.add(record(r.partition(), r.offset(), text(r.key()), text(r.value())));
                }
            }
            consumer.commitSync();
        }

        String refused = "null";
        Properties wrong = producerConfig(
                signed ? signed(bootstrap, args[5]) : connection(bootstrap, sub, "other"));
        wrong.put(ProducerConfig.MAX_BLOCK_MS_CONFIG, "15000");
        try (KafkaProducer<String, String> producer = new KafkaProducer<>(wrong)) {
            try {
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
        }

        System.out.println("{\"delivered\": " + delivered + ", \"records\": " + records
                + ", \"refused\": " + refused + "}");
    }

    /** A client logging in with an unsecured token for sub, with one scope. */
    static Properties connection(String bootstrap, String sub, String scope) {
        Properties p = new Properties();
        p.put(CommonClientConfigs.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(CommonClientConfigs.SECURITY_PROTOCOL_CONFIG, "SASL_PLAINTEXT");
        p.put(SaslConfigs.SASL_MECHANISM, "OAUTHBEARER");
        p.put(SaslConfigs.SASL_JAAS_CONFIG,
                "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required"
                        + " unsecuredLoginStringClaim_sub=" + quote(sub)
                        + " unsecuredLoginListClaim_scope=" + quote("," + scope) + ";");
        return p;
    }

    /** A client handing the broker the JWT in tokenFile (TokenFileHandler). */
    static Properties signed(String bootstrap, String tokenFile) {
        Properties p = new Properties();
        p.put(CommonClientConfigs.BOOTSTRAP_SERVERS_CONFIG, bootstrap);
        p.put(CommonClientConfigs.SECURITY_PROTOCOL_CONFIG, "SASL_PLAINTEXT");
        p.put(SaslConfigs.SASL_MECHANISM, "OAUTHBEARER");
        p.put(SaslConfigs.SASL_JAAS_CONFIG,
                "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required"
                        + " tokenFile=" + quote(tokenFile) + ";");
        // The class itself, not its name (which Java's source launcher could not load).
        p.put(SaslConfigs.SASL_LOGIN_CALLBACK_HANDLER_CLASS, TokenFileHandler.class);
        return p;
    }

    /** Hands the login module the JWT of the JAAS option tokenFile, as it is. */
    public static final class TokenFileHandler
            implements org.apache.kafka.common.security.auth.AuthenticateCallbackHandler {
        private String file;

        @Override
        public void configure(java.util.Map<String, ?> configs, String mechanism,
                List<javax.security.auth.login.AppConfigurationEntry> entries) {
            file = (String) entries.get(0).getOptions().get("tokenFile");
        }

        @Override
        public void handle(javax.security.auth.callback.Callback[] callbacks)
                throws javax.security.auth.callback.UnsupportedCallbackException {
            for (javax.security.auth.callback.Callback c : callbacks) {
                if (!(c instanceof org.apache.kafka.common.security.oauthbearer.OAuthBearerTokenCallback)) {
                    throw new javax.security.auth.callback.UnsupportedCallbackException(c);
                }
                String jwt;
                try {
                    jwt = java.nio.file.Files.readString(java.nio.file.Path.of(file)).trim();
                } catch (java.io.IOException e) {
                    throw new IllegalStateException(e);
                }
                String payload = new String(java.util.Base64.getUrlDecoder().decode(jwt.split("\\.")[1]),
                        StandardCharsets.UTF_8);
                java.util.regex.Matcher m = java.util.regex.Pattern
                        .compile("\"exp\"\\s*:\\s*(\\d+)").matcher(payload);
                long exp = m.find() ? Long.parseLong(m.group(1)) * 1000 : System.currentTimeMillis() + 600_000;
                java.util.regex.Matcher s = java.util.regex.Pattern
                        .compile("\"sub\"\\s*:\\s*\"([^\"]*)\"").matcher(payload);
                String principal = s.find() ? s.group(1) : "unknown";
                ((org.apache.kafka.common.security.oauthbearer.OAuthBearerTokenCallback) c).token(
                        new org.apache.kafka.common.security.oauthbearer.OAuthBearerToken() {
                            public String value() { return jwt; }
                            public java.util.Set<String> scope() { return java.util.Set.of(); }
                            public long lifetimeMs() { return exp; }
                            public String principalName() { return principal; }
                            public Long startTimeMs() { return null; }
                        });
            }
        }

        @Override
        public void close() {}
    }

    static Properties producerConfig(Properties connection) {
        Properties pp = new Properties();
        pp.putAll(connection);
        pp.put(ProducerConfig.ACKS_CONFIG, "all");
        pp.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        pp.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        return pp;
    }

    /** Value of record i, as common.py's value_of makes it. */
    static String valueOf(int i, int size) {
        StringBuilder v = new StringBuilder(String.format("v%07d|", i));
        while (v.length() < size) {
            v.append("gregor-e2e ");
        }
        return v.substring(0, Math.max(size, 9));
    }

    static String record(int partition, long offset, String key, String value) {
        return "[" + partition + ", " + offset + ", " + quote(key) + ", " + quote(value) + "]";
    }

    static String text(byte[] b) {
        return b == null ? null : new String(b, StandardCharsets.UTF_8);
    }

    static String quote(String s) {
        if (s == null) {
            return "null";
        }
        return "\"" + s.replace("\\", "\\\\").replace("\"", "\\\"").replace("\n", "\\n")
                + "\"";
    }
}
