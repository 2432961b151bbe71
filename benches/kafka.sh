# Sourced by benches/peer.sh and benches/cluster_peer.sh: starts Apache Kafka nodes from the
# jars `scripts/toolbox` installs (KRaft combined mode, every node a broker and a voter), the
# way kafka-server-start.sh starts them: the given heap and kafka-run-class.sh's G1 options.
#
# Needs TOOLBOX (the toolbox directory) and WORK (this run's temp dir); JAVA may name the java
# binary. Sets KAFKA_VERSION.
# shellcheck shell=bash

JAVA="${JAVA:-java}"
if ! ls "$TOOLBOX"/jars/kafka_2.13-*.jar >/dev/null 2>&1; then
    echo "Apache Kafka's jars are missing: run scripts/toolbox first" >&2
    exit 1
fi
KAFKA_JARS=("$TOOLBOX"/jars/kafka_2.13-*.jar)
KAFKA_VERSION="$(basename "${KAFKA_JARS[0]}" .jar)"
KAFKA_VERSION="${KAFKA_VERSION#kafka_2.13-}"

# A port on 127.0.0.1 nothing listens on (the JVM binds it a few seconds later).
free_port() {
    local p
    for _ in $(seq 200); do
        p=$((20000 + RANDOM % 10000))
        if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
            echo "$p"
            return
        fi
    done
    echo "no free port found" >&2
    exit 1
}

# start_kafka_node DIR ID PORT CONTROLLER_PORT VOTERS HEAP: formats DIR/data for node ID and
# starts it (listeners on 127.0.0.1:PORT and 127.0.0.1:CONTROLLER_PORT, the quorum VOTERS as
# id@host:port,...); sets KAFKA_NODE_PID. The JVM leads its own process group (setsid), so
# `kill -- -PID` stops all of it. One node (VOTERS naming only itself) gets replication factor
# 1 for the internal topics: it cannot hold three replicas.
start_kafka_node() {
    local dir="$1" id="$2" port="$3" cport="$4" voters="$5" heap="$6"
    mkdir -p "$dir"
    cat >"$dir/server.properties" <<EOF
process.roles=broker,controller
node.id=$id
controller.quorum.voters=$voters
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$cport
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT
log.dirs=$dir/data
EOF
    if [[ "$voters" != *,* ]]; then
        cat >>"$dir/server.properties" <<EOF
offsets.topic.replication.factor=1
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
EOF
    fi
    cat >"$dir/log4j2.properties" <<'EOF'
status = error
appender.stdout.type = Console
appender.stdout.name = STDOUT
appender.stdout.layout.type = PatternLayout
appender.stdout.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = info
rootLogger.appenderRef.stdout.ref = STDOUT
EOF
    local log4j="-Dlog4j2.configurationFile=$dir/log4j2.properties"
    # kafka-storage.sh format: the metadata log with the bootstrap records (one cluster id for
    # every node of a cluster).
    if ! "$JAVA" -Xmx256m -XX:+UseSerialGC "$log4j" -cp "$TOOLBOX/jars/*" kafka.tools.StorageTool \
        format -t Z3JlZ29yLXBlZXItMDAwMA -c "$dir/server.properties" \
        </dev/null >"$dir/format.log" 2>&1; then
        cat "$dir/format.log" >&2
        exit 1
    fi
    setsid "$JAVA" "-Xmx$heap" "-Xms$heap" -server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
        -XX:InitiatingHeapOccupancyPercent=35 -XX:+ExplicitGCInvokesConcurrent \
        -XX:MaxInlineLevel=15 -Djava.awt.headless=true "$log4j" -cp "$TOOLBOX/jars/*" kafka.Kafka \
        "$dir/server.properties" </dev/null >"$dir/server.log" 2>&1 &
    KAFKA_NODE_PID=$!
}

# wait_kafka_node DIR PID: waits (90 s at most) for the node to say it started.
wait_kafka_node() {
    local dir="$1" pid="$2"
    for _ in $(seq 900); do
        grep -q 'Kafka Server started' "$dir/server.log" && return 0
        kill -0 "$pid" 2>/dev/null || { tail -40 "$dir/server.log" >&2; exit 1; }
        sleep 0.1
    done
    echo "Apache Kafka did not start:" >&2
    tail -40 "$dir/server.log" >&2
    exit 1
}
