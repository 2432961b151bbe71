#!/usr/bin/env bash
# gregor side by side with Apache Kafka: the same librdkafka loads (benches/rdkafka-load, the
# neutral client) against a release gregor broker and a single-node Apache Kafka 4.4 broker,
# started next to each other on this machine, each load run on fresh topics against both in turn.
#
# Three targets per load:
#   gregor        `gregor server`, default settings (acks=all answers after an fdatasync of the
#                 batch, group-committed; acks=1 answers before the write reaches the disk)
#   kafka         Apache Kafka with its default settings: it never fsyncs on the produce path
#                 (log.flush.interval.messages is Long.MAX_VALUE), its durability comes from
#                 replication; a single node acknowledges acks=all once the batch is in its page
#                 cache, so this is NOT the same durability as gregor's acks=all
#   kafka-fsync   the same Kafka broker, topics created with flush.messages=1 (the topic-level
#                 log.flush.interval.messages=1): Kafka fsyncs the log after every appended batch
#                 before it answers, the durability gregor's acks=all gives (Kafka fsyncs each
#                 append on its own, gregor group-commits concurrent appends)
#
# Kafka is started from the jars `scripts/toolbox` installs (KRaft combined mode, node 1, data
# dir in this run's temp dir, 127.0.0.1 ports chosen free at start) the way
# kafka-server-start.sh does: -Xmx1G -Xms1G and Kafka's G1 options. Settings that differ from
# Kafka's built-in defaults, and why:
#   process.roles, node.id, controller.quorum.voters, listeners, advertised.listeners,
#   controller.listener.names, listener.security.protocol.map   one combined node on loopback
#   log.dirs                                                   the run's temp dir
#   offsets.topic.replication.factor=1, transaction.state.log.replication.factor=1,
#   transaction.state.log.min.isr=1, share.coordinator.state.topic.replication.factor=1,
#   share.coordinator.state.topic.min.isr=1                    a single node cannot hold 3 replicas
# gregor runs with its defaults. Neither broker gets a memory cgroup or a page-cache warm-up
# (benches/run.sh does that for gregor alone): both start cold on the same disk.
#
# The loads are those benches/run.sh runs with librdkafka (one partition, linger.ms=5,
# batch.num.messages=10000): 100 B acks=all, its consume, 1 KiB acks=1, acks=all, idempotent
# (acks=all), transactional, and the consume of the 1 KiB acks=all topic; then the same kind of
# loads driven by Apache Kafka's own kafka-producer-perf-test and kafka-consumer-perf-test (the
# Java client, its defaults apart from linger.ms=5 and batch.size=1 MiB): 1 KiB acks=all,
# idempotent (the Java producer's default), a paced load at a fixed rate whose p50/p99 are the
# latency comparison, and the consume. The Java tool reports p50 and p99 send-to-ack latency;
# rdkafka-load reports none (its loads enqueue as fast as librdkafka accepts, so a latency would
# measure the client's own queue).
#
# Share groups (KIP-932), the share-* loads: Apache Kafka's kafka-share-consumer-perf-test
# (ShareConsumerPerformance: KafkaShareConsumer, implicit acknowledgement, 1 MiB fetches) reads
# N records of 1 KiB already on a topic of 1 or 4 partitions (written once per broker with
# rdkafka-load, acks=all, outside any load's figures), with 1, 2 or 4 share consumers of one
# fresh group, share.auto.offset.reset=earliest set on the group first with kafka-configs.sh
# (--entity-type groups). Its records/s include joining the share group. The reference is
# java-consume-1k-p1/-p4, kafka-consumer-perf-test (one consumer, a classic group, its fetch
# rate) on the same topic of the same broker. kafka-fsync, for the share loads: Kafka with
# flush.messages=1 on __share_group_state (set before, deleted after each such load), so that
# Kafka fsyncs every share-state write as gregor does; the reference consume has no
# kafka-fsync run (reading does not depend on flushes).
#
# rss is each broker's resident memory after the load. Each run goes through the loads in
# order and runs every load against the three targets back to back, in an order that rotates
# from run to run, so the shared machine's swings hit every broker alike. The brokers' CPU per
# record comes from /proc/PID/stat (utime+stime of the whole process, every thread).
#
# Usage: benches/peer.sh [--quick] [--runs N] [--bin PATH] [--kafka-heap SIZE] [--only REGEX]
#   --quick            small record counts (smoke test)
#   --runs N           repeat every load N times (fresh topics) and print medians (default 1)
#   --bin PATH         this gregor binary instead of building target/release/gregor
#   --kafka-heap SIZE  Kafka's -Xmx/-Xms (default 1G, kafka-server-start.sh's)
#   --only REGEX       run only the loads whose names match (grep -E), e.g.
#                      'idempotent|transactional|acks-all' for the exactly-once ratios, or
#                      'share|consume-1k-p' for the share consumers and their reference
# Needs Java 17+ and the toolbox's jars (scripts/toolbox; GREGOR_TOOLBOX names its directory).
set -euo pipefail

QUICK=0
RUNS=1
BIN=""
HEAP=1G
ONLY=""
while [[ $# -gt 0 ]]; do
    case "$1" in
        --quick) QUICK=1 ;;
        --runs) RUNS="$2"; shift ;;
        --bin) BIN="$2"; shift ;;
        --kafka-heap) HEAP="$2"; shift ;;
        --only) ONLY="$2"; shift ;;
        -h|--help) sed -n '2,66p' "$0"; exit 0 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
    shift
done

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
# One cargo invocation for both, so that they share one feature resolution (no rebuild).
if [[ -z "$BIN" ]]; then
    (cd "$ROOT" && cargo build --release -q -p gregor-cli -p gregor-rdkafka-load)
    BIN="$ROOT/target/release/gregor"
fi
RDK="$(dirname "$BIN")/rdkafka-load"
if [[ ! -x "$RDK" ]]; then
    (cd "$ROOT" && cargo build --release -q -p gregor-cli -p gregor-rdkafka-load)
    RDK="$ROOT/target/release/rdkafka-load"
fi

TOOLBOX="${GREGOR_TOOLBOX:-${XDG_CACHE_HOME:-$HOME/.cache}/gregor-toolbox}"

WORK="$(mktemp -d "${TMPDIR:-/tmp}/gregor-peer.XXXXXX")"
GREGOR_PID=""
KAFKA_PID=""
LOAD_PID=""
cleanup() {
    if [[ -n "$LOAD_PID" ]]; then kill "$LOAD_PID" 2>/dev/null || true; fi
    if [[ -n "$GREGOR_PID" ]] && kill -0 "$GREGOR_PID" 2>/dev/null; then
        kill "$GREGOR_PID" 2>/dev/null || true
        wait "$GREGOR_PID" 2>/dev/null || true
    fi
    if [[ -n "$KAFKA_PID" ]]; then
        # The JVM leads its own process group (setsid): kill the group, then reap it.
        kill -KILL -- "-$KAFKA_PID" 2>/dev/null || true
        wait "$KAFKA_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

if [[ $QUICK == 1 ]]; then
    N_100B=200000; N_1K=50000; PACED_RATE=5000; N_PACED=25000; N_SHARE=50000
else
    N_100B=4000000; N_1K=1000000; PACED_RATE=10000; N_PACED=200000; N_SHARE=1000000
fi
JPROPS="linger.ms=5 batch.size=1048576"
CLK_TCK="$(getconf CLK_TCK)"
# shellcheck source=benches/kafka.sh
source "$ROOT/benches/kafka.sh"

# --- gregor --------------------------------------------------------------------------------
mkdir -p "$WORK/gregor"
RUST_LOG=info "$BIN" server --listen 127.0.0.1:0 --data-dir "$WORK/gregor" 2>"$WORK/gregor.log" &
GREGOR_PID=$!
GREGOR_ADDR=""
for _ in $(seq 100); do
    GREGOR_ADDR="$(grep -o 'listening on [^ ]*' "$WORK/gregor.log" | head -1 | awk '{print $3}')" || true
    [[ -n "$GREGOR_ADDR" ]] && break
    kill -0 "$GREGOR_PID" 2>/dev/null || { cat "$WORK/gregor.log" >&2; exit 1; }
    sleep 0.1
done
[[ -n "$GREGOR_ADDR" ]] || { echo "gregor did not report its address" >&2; exit 1; }
echo "gregor pid $GREGOR_PID on $GREGOR_ADDR" >&2

# --- Apache Kafka --------------------------------------------------------------------------
KPORT="$(free_port)"
CPORT="$(free_port)"
while [[ "$CPORT" == "$KPORT" ]]; do CPORT="$(free_port)"; done
KAFKA_ADDR="127.0.0.1:$KPORT"
start_kafka_node "$WORK/kafka" 1 "$KPORT" "$CPORT" "1@127.0.0.1:$CPORT" "$HEAP"
KAFKA_PID=$KAFKA_NODE_PID
wait_kafka_node "$WORK/kafka" "$KAFKA_PID"
echo "Apache Kafka $KAFKA_VERSION pid $KAFKA_PID on $KAFKA_ADDR (heap $HEAP)" >&2

# --- loads ---------------------------------------------------------------------------------
TARGETS=(gregor kafka kafka-fsync)
# load name | records | record size | rdkafka-load arguments (@T = this run's and target's topic)
LOADS=(
    "rdkafka-100b-acks-all|$N_100B|100|produce --topic @T-rk100 --record-size 100 --acks all"
    "rdkafka-consume-100b|$N_100B|100|consume --topic @T-rk100 --record-size 100"
    "rdkafka-1k-acks-1|$N_1K|1024|produce --topic @T-rk1k1 --record-size 1024 --acks 1"
    "rdkafka-1k-acks-all|$N_1K|1024|produce --topic @T-rk1kall --record-size 1024 --acks all"
    "rdkafka-1k-idempotent|$N_1K|1024|produce --topic @T-rk1kidem --record-size 1024 --acks all --idempotence"
    "rdkafka-1k-transactional|$N_1K|1024|produce --topic @T-rk1ktxn --record-size 1024 --acks all --transaction-size 1000"
    "rdkafka-consume-1k|$N_1K|1024|consume --topic @T-rk1kall --record-size 1024"
    "java-1k-acks-all|$N_1K|1024|jproduce --topic @T-j1kall --throughput -1 --producer-props acks=all enable.idempotence=false $JPROPS"
    "java-1k-idempotent|$N_1K|1024|jproduce --topic @T-j1kidem --throughput -1 --producer-props acks=all enable.idempotence=true $JPROPS"
    "java-1k-paced-$PACED_RATE/s|$N_PACED|1024|jproduce --topic @T-j1kpaced --throughput $PACED_RATE --producer-props acks=all $JPROPS"
    "java-consume-1k|$N_1K|1024|jconsume --topic @T-j1kall"
    # The Java client's exactly-once loads with a fixed transaction size (benches/java/EosLoad.java;
    # the perf tool above commits by time): acks=all without idempotence, and transactions of
    # 1000 records, each committed before the next begins.
    "java-eos-1k-acks-all|$N_1K|1024|jeos --topic @T-je1kall --mode plain"
    "java-eos-1k-transactional|$N_1K|1024|jeos --topic @T-je1ktxn --mode transactional --transaction-size 1000"
    # Share groups (see the header): @S-pN is a topic of N partitions holding $N_SHARE records of
    # 1 KiB, written once per broker; every share load reads it with a fresh share group.
    "java-consume-1k-p1|$N_SHARE|1024|jconsume --topic @S-p1"
    "share-1k-p1-c1|$N_SHARE|1024|jshare --topic @S-p1 --threads 1"
    "share-1k-p1-c2|$N_SHARE|1024|jshare --topic @S-p1 --threads 2"
    "share-1k-p1-c4|$N_SHARE|1024|jshare --topic @S-p1 --threads 4"
    "java-consume-1k-p4|$N_SHARE|1024|jconsume --topic @S-p4"
    "share-1k-p4-c1|$N_SHARE|1024|jshare --topic @S-p4 --threads 1"
    "share-1k-p4-c2|$N_SHARE|1024|jshare --topic @S-p4 --threads 2"
    "share-1k-p4-c4|$N_SHARE|1024|jshare --topic @S-p4 --threads 4"
)
# shellcheck source=benches/loads.sh
source "$ROOT/benches/loads.sh"
keep_loads "$ONLY"
EOS_CP=""
if printf '%s\n' "${LOADS[@]}" | grep -q '|jeos '; then
    EOS_CP="$(eos_load_classpath "$WORK" "$TOOLBOX")"
    [[ -n "$EOS_CP" ]] || { echo "the java-eos loads need javac and the toolbox's jars" >&2; exit 1; }
fi

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# Resident memory of a process tree's leader, MB.
rss_mb() { awk '/^VmRSS:/ {printf "%.0f", $2 / 1024}' "/proc/$1/status"; }
# The command line of one load, into CMD: rdkafka-load, or one of Kafka's perf tools
# (jproduce, jconsume) run from the toolbox's jars (the classpath's * is Java's, not a glob).
load_command() {
    local targs="$1" n="$2" size="$3" addr="$4" words
    read -r -a words <<<"$targs"
    case "${words[0]}" in
        jproduce)
            CMD=("$JAVA" -Xmx512m -cp "$TOOLBOX/jars/*" org.apache.kafka.tools.ProducerPerformance
                "${words[@]:1}" "bootstrap.servers=$addr" --num-records "$n" --record-size "$size")
            ;;
        jeos)
            CMD=("$JAVA" -Xmx512m -cp "$EOS_CP" EosLoad
                "${words[@]:1}" --bootstrap-server "$addr" --num-records "$n" --record-size "$size")
            ;;
        jconsume)
            CMD=("$JAVA" -Xmx512m -cp "$TOOLBOX/jars/*" org.apache.kafka.tools.ConsumerPerformance
                "${words[@]:1}" --bootstrap-server "$addr" --messages "$n")
            ;;
        jshare)
            # Kafka's tools log configuration: its warnings to stderr, stdout keeps the figures.
            # Progress lines every 100 ms: the first one marks the end of the group join.
            # --timeout is also how long the tool waits for its consumers' threads in all: at
            # its default (10 s) a load longer than 10 s is interrupted and fails.
            CMD=("$JAVA" -Xmx512m "-Dlog4j2.configurationFile=$TOOLBOX/config/tools-log4j2.properties"
                -cp "$TOOLBOX/jars/*" org.apache.kafka.tools.ShareConsumerPerformance
                "${words[@]:1}" --bootstrap-server "$addr" --num-records "$n" --timeout 120000
                --show-detailed-stats --reporting-interval 100)
            ;;
        *) CMD=("$RDK" "${words[@]}" --num-records "$n" --bootstrap-server "$addr") ;;
    esac
}

# share_source TOPIC ADDR: the share loads' source topic, written once per broker: as many
# partitions as TOPIC's -pN suffix says, N_SHARE records of 1 KiB round robin, acks=all, with
# rdkafka-load (before any load's clock and CPU figures).
share_source() {
    local topic="$1" addr="$2" parts
    [[ -e "$WORK/source-$topic" ]] && return 0
    parts="${topic##*-p}"
    echo "  writing $N_SHARE records of 1 KiB to $topic ($parts partitions)" >&2
    "$BIN" topics create "$topic" --partitions "$parts" --replication-factor 1 \
        --bootstrap-server "$addr" >/dev/null 2>"$WORK/create.err" \
        || { echo "  create $topic failed: $(tail -1 "$WORK/create.err")" >&2; return 1; }
    sleep 1
    "$RDK" produce --topic "$topic" --partitions "$parts" --record-size 1024 --acks all \
        --num-records "$N_SHARE" --bootstrap-server "$addr" >"$WORK/source.out" 2>&1 \
        || { echo "  writing $topic failed: $(tail -1 "$WORK/source.out")" >&2; return 1; }
    touch "$WORK/source-$topic"
}
# kafka_configs ADDR ARGS...: Kafka's kafka-configs.sh from the toolbox, its output kept in
# WORK/configs.err.
kafka_configs() {
    local addr="$1"
    shift
    "$TOOLBOX/bin/kafka-configs.sh" --bootstrap-server "$addr" "$@" >"$WORK/configs.err" 2>&1
}

RESULTS="$WORK/results.tsv"
: >"$RESULTS"
for run in $(seq "$RUNS"); do
    # Rotate the targets' order from run to run.
    order=()
    for i in "${!TARGETS[@]}"; do
        order+=("${TARGETS[$(((i + run - 1) % ${#TARGETS[@]}))]}")
    done
    for load in "${LOADS[@]}"; do
        IFS='|' read -r name n size args <<<"$load"
        for target in "${order[@]}"; do
            case "$target" in
                gregor) addr="$GREGOR_ADDR"; pid="$GREGOR_PID"; config=() ;;
                kafka) addr="$KAFKA_ADDR"; pid="$KAFKA_PID"; config=() ;;
                kafka-fsync) addr="$KAFKA_ADDR"; pid="$KAFKA_PID"; config=(--config flush.messages=1) ;;
            esac
            targs="${args//@T/peer-r$run-$target}"
            # The share loads' topics: one per broker (kafka and kafka-fsync read Kafka's).
            if [[ "$target" == gregor ]]; then targs="${targs//@S/peer-share-gregor}"; else targs="${targs//@S/peer-share-kafka}"; fi
            # Reading does not depend on flush.messages: no kafka-fsync run of the reference.
            [[ "$args" == *@S* && "$targs" == jconsume* && "$target" == kafka-fsync ]] && continue
            topic="$(echo "$targs" | awk '{for (i = 1; i < NF; i++) if ($i == "--topic") print $(i + 1)}')"
            echo "run $run: $name on $target ($n records of $size B)" >&2
            if [[ "$args" == *@S* ]] && ! share_source "$topic" "$addr"; then continue; fi
            state_flush=0
            if [[ "$targs" == jshare* ]]; then
                group="peer-r$run-$target-$name"
                targs+=" --group $group"
                kafka_configs "$addr" --entity-type groups --entity-name "$group" --alter \
                    --add-config share.auto.offset.reset=earliest \
                    || { echo "  group config of $group failed: $(tail -1 "$WORK/configs.err")" >&2; continue; }
                if [[ "$target" == kafka-fsync ]]; then
                    kafka_configs "$addr" --entity-type topics --entity-name __share_group_state \
                        --alter --add-config flush.messages=1 \
                        || { echo "  flush.messages=1 on __share_group_state failed: $(tail -1 "$WORK/configs.err")" >&2; continue; }
                    state_flush=1
                fi
            fi
            if [[ "$targs" == produce* || "$targs" == jproduce* || "$targs" == jeos* ]]; then
                "$BIN" topics create "$topic" --partitions 1 --replication-factor 1 "${config[@]}" \
                    --bootstrap-server "$addr" >/dev/null 2>"$WORK/create.err" \
                    || { echo "  create $topic failed: $(tail -1 "$WORK/create.err")" >&2; continue; }
                # Kafka answers CreateTopics before its broker side has the partition's leader.
                sleep 1
            fi
            # Write back the previous loads' dirty pages so they do not land in this load.
            sync
            t0="$(cpu_ticks "$pid")"
            # In the background, so that a signal's trap runs (and stops it) at once.
            load_command "$targs" "$n" "$size" "$addr"
            "${CMD[@]}" >"$WORK/load.out" 2>"$WORK/load.err" &
            LOAD_PID=$!
            ok=1
            wait "$LOAD_PID" || ok=0
            LOAD_PID=""
            t1="$(cpu_ticks "$pid")"
            if [[ $state_flush == 1 ]]; then
                kafka_configs "$addr" --entity-type topics --entity-name __share_group_state \
                    --alter --delete-config flush.messages \
                    || echo "  deleting flush.messages on __share_group_state failed: $(tail -1 "$WORK/configs.err")" >&2
            fi
            if [[ $ok == 0 ]]; then
                echo "  $name on $target failed: $(tail -1 "$WORK/load.err")" >&2
                continue
            fi
            out="$(tail -1 "$WORK/load.out")"
            echo "  $out" >&2
            # ShareConsumerPerformance stops after --timeout (10 s) without records, short of N.
            if [[ "$targs" == jshare* ]] && ! awk -F', ' -v n="$n" '$6 + 0 >= n {ok = 1} END {exit !ok}' <<<"$out"; then
                echo "  $name on $target failed: fewer than $n records ($(grep -c WARNING "$WORK/load.out") warnings)" >&2
                continue
            fi
            # The share loads' join (start to the first records, the first progress line) and
            # their rate after it: (records - those of the first line) / (end - its time).
            fetch="-"; join_ms="-"
            if [[ "$targs" == jshare* ]]; then
                read -r fetch join_ms < <(awk -F', ' '
                    function ms(t,    a) { split(substr(t, 12), a, ":"); return ((a[1] * 60 + a[2]) * 60 + a[3]) * 1000 + a[4] }
                    / for share consumer / { if (!seen++) { t0 = ms($2); r0 = $6 } next }
                    NF == 7 && $5 ~ /^[0-9.]+$/ { start = ms($1); end = ms($2); total = $6 }
                    END {
                        if (seen && end > t0) printf "%.0f %d\n", (total - r0) * 1000 / (end - t0), t0 - start
                        else print "- -"
                    }' "$WORK/load.out")
            fi
            # rdkafka-load: `produce: N records of S B in T s: R records/s, M MB/s`;
            # ProducerPerformance: `N records sent, R records/sec (M MB/sec), A ms avg latency,
            # X ms max latency, P50 ms 50th, P95 ms 95th, P99 ms 99th, P999 ms 99.9th.`;
            # ConsumerPerformance: a CSV line whose 9th and 10th fields are MB/s and records/s
            # of the fetching (the group join before it left out); ShareConsumerPerformance: 7
            # fields, the 4th and 5th MB/s and records/s from before the share group's join.
            echo "$out" | awk -v run="$run" -v name="$name" -v target="$target" -v n="$n" \
                -v dt="$((t1 - t0))" -v tck="$CLK_TCK" -v rss="$(rss_mb "$pid")" -v fetch="$fetch" \
                -v join_ms="$join_ms" '
                {
                    p50 = "-"; p99 = "-"
                    if ($0 ~ /records sent/) {
                        for (i = 2; i <= NF; i++) {
                            if ($i ~ /^records\/sec/) rate = $(i - 1)
                            if ($i ~ /^\(/ && $(i + 1) ~ /^MB\/sec/) { mbs = $i; gsub(/\(/, "", mbs) }
                            if ($i ~ /^50th/) p50 = $(i - 2)
                            if ($i ~ /^99th/) p99 = $(i - 2)
                        }
                    } else if (split($0, f, ", ") >= 10 && f[10] ~ /^[0-9.]+$/) {
                        mbs = f[9]; rate = f[10]
                    } else if (split($0, f, ", ") == 7 && f[5] ~ /^[0-9.]+$/) {
                        mbs = f[4]; rate = f[5]
                    } else {
                        for (i = 2; i <= NF; i++) {
                            if ($i ~ /^records\/s/) { rate = $(i - 1); gsub(/,/, "", rate) }
                            if ($i ~ /^MB\/s/) mbs = $(i - 1)
                        }
                    }
                }
                END {
                    printf "%s\t%s\t%s\t%.0f\t%s\t%.0f\t%s\t%s\t%s\t%s\t%s\n", run, name, target, rate,
                        mbs, dt / tck * 1e9 / n, p50, p99, rss, fetch, join_ms
                }' >>"$RESULTS"
        done
    done
done

# --- tables --------------------------------------------------------------------------------
# median: the median of the numbers on stdin ("-" when none).
median() {
    sort -g | awk '
        {v[NR] = $1}
        END {
            if (NR == 0) print "-"
            else if (NR % 2) print v[(NR + 1) / 2]
            else printf "%.2f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2
        }'
}
# col LOAD TARGET COLUMN: that column of every run of one load on one target.
col() { awk -F'\t' -v l="$1" -v t="$2" -v c="$3" '$2 == l && $3 == t {print $c}' "$RESULTS"; }
# ratios LOAD TARGET: per run, gregor's records/s over TARGET's.
ratios() {
    awk -F'\t' -v l="$1" -v t="$2" '
        $2 == l && $3 == "gregor" {g[$1] = $4}
        $2 == l && $3 == t {k[$1] = $4}
        END { for (r in g) if ((r in k) && k[r] > 0) printf "%.2f\n", g[r] / k[r] }' "$RESULTS" | sort -g
}
spread() { awk 'NR == 1 {lo = $1} {hi = $1} END {if (NR) printf "%s-%s", lo, hi; else printf "-"}'; }

echo
echo "gregor vs Apache Kafka $KAFKA_VERSION, one node each, librdkafka loads (one partition,"
echo "linger.ms=5, batch.num.messages=10000), $RUNS run(s); records/s are medians, g/k is the median"
echo "of the per-run ratios gregor/Kafka (their range in brackets); cpu is each broker's CPU time"
echo "per record (us, median). kafka: Kafka defaults (no fsync); kafka-fsync: flush.messages=1."
echo "p50/p99: send-to-ack latency in ms (Kafka's perf tool only; rdkafka-load reports none);"
echo "rss: each broker's resident MB after the load (median)."
printf "%-24s %10s %10s %16s %11s %16s %7s %7s %7s %11s %11s %11s %6s %6s\n" load gregor kafka "g/k" \
    kafka-fsync "g/k-fsync" cpu_g cpu_k cpu_kf p50/99_g p50/99_k p50/99_kf rss_g rss_k
for load in "${LOADS[@]}"; do
    name="${load%%|*}"
    g="$(col "$name" gregor 4 | median)"
    k="$(col "$name" kafka 4 | median)"
    kf="$(col "$name" kafka-fsync 4 | median)"
    rk="$(ratios "$name" kafka | median) [$(ratios "$name" kafka | spread)]"
    rkf="$(ratios "$name" kafka-fsync | median) [$(ratios "$name" kafka-fsync | spread)]"
    cg="$(col "$name" gregor 6 | median | awk '$1 != "-" {printf "%.2f", $1 / 1000; next} {print}')"
    ck="$(col "$name" kafka 6 | median | awk '$1 != "-" {printf "%.2f", $1 / 1000; next} {print}')"
    ckf="$(col "$name" kafka-fsync 6 | median | awk '$1 != "-" {printf "%.2f", $1 / 1000; next} {print}')"
    lat() { echo "$(col "$name" "$1" 7 | grep -v '^-$' | median)/$(col "$name" "$1" 8 | grep -v '^-$' | median)"; }
    printf "%-24s %10s %10s %16s %11s %16s %7s %7s %7s %11s %11s %11s %6s %6s\n" "$name" "$g" "$k" "$rk" \
        "$kf" "$rkf" "$cg" "$ck" "$ckf" "$(lat gregor)" "$(lat kafka)" "$(lat kafka-fsync)" \
        "$(col "$name" gregor 9 | median)" "$(col "$name" kafka 9 | median)"
done

echo
echo "median over the loads of the median ratios (gregor/Kafka records/s):"
for t in kafka kafka-fsync; do
    all="$(for load in "${LOADS[@]}"; do ratios "${load%%|*}" "$t" | median; done | { grep -v '^-$' || true; } | median)"
    prod="$(for load in "${LOADS[@]}"; do
        if [[ "$load" == *"|produce "* ]]; then ratios "${load%%|*}" "$t" | median; fi
    done | { grep -v '^-$' || true; } | median)"
    printf "  vs %-12s all loads %s, produce loads %s\n" "$t:" "$all" "$prod"
done
# within LOAD BASE TARGET [BASE_TARGET]: per run, LOAD's records/s on TARGET over BASE's on
# BASE_TARGET (default TARGET).
within() {
    awk -F'\t' -v l="$1" -v b="$2" -v t="$3" -v bt="${4:-$3}" '
        $2 == l && $3 == t {x[$1] = $4}
        $2 == b && $3 == bt {y[$1] = $4}
        END { for (r in x) if ((r in y) && y[r] > 0) printf "%.2f\n", x[r] / y[r] }' "$RESULTS" | sort -g
}
if printf '%s\n' "${LOADS[@]}" | grep -qE '^(rdkafka|java|java-eos)-1k-(idempotent|transactional)\|'; then
echo
echo "exactly-once loads over acks=all, each broker against itself (same client, same run; median"
echo "of the per-run ratios, range in brackets; targets: idempotent >= 0.95, transactional >= 0.80):"
for pair in "rdkafka-1k-idempotent rdkafka-1k-acks-all" "rdkafka-1k-transactional rdkafka-1k-acks-all" \
    "java-1k-idempotent java-1k-acks-all" "java-eos-1k-transactional java-eos-1k-acks-all"; do
    read -r l b <<<"$pair"
    row="  $(printf '%-26s' "$l")"
    for t in "${TARGETS[@]}"; do
        row+="  $t $(within "$l" "$b" "$t" | median) [$(within "$l" "$b" "$t" | spread)]"
    done
    echo "$row"
done
fi
if printf '%s\n' "${LOADS[@]}" | grep -q '|jshare '; then
    echo
    echo "share consumers over the plain consumer (kafka-consumer-perf-test's fetch rate) on the same"
    echo "topic, each broker against itself (median of the per-run ratios, range in brackets;"
    echo "kafka-fsync's reference is kafka's run: the same broker and topic):"
    for load in "${LOADS[@]}"; do
        [[ "$load" == *"|jshare "* ]] || continue
        l="${load%%|*}"
        b="java-consume-1k-${l#share-1k-}"
        b="${b%-c*}"
        row="  $(printf '%-16s' "$l") over $b:"
        for t in "${TARGETS[@]}"; do
            bt="$t"
            [[ "$t" == kafka-fsync ]] && bt=kafka
            row+="  $t $(within "$l" "$b" "$t" "$bt" | median) [$(within "$l" "$b" "$t" "$bt" | spread)]"
        done
        echo "$row"
    done
    echo
    echo "share loads without their join: records/s from the first records on (medians), the join"
    echo "(start to the first records, ms, median) and the ratio gregor/Kafka of those rates:"
    printf "%-16s %10s %10s %11s %16s %8s %8s %8s\n" load gregor kafka kafka-fsync "g/k" join_g join_k join_kf
    for load in "${LOADS[@]}"; do
        [[ "$load" == *"|jshare "* ]] || continue
        l="${load%%|*}"
        fr="$(awk -F'\t' -v l="$l" '
            $2 == l && $3 == "gregor" {g[$1] = $10}
            $2 == l && $3 == "kafka" {k[$1] = $10}
            END { for (r in g) if ((r in k) && k[r] > 0) printf "%.2f\n", g[r] / k[r] }' "$RESULTS" | sort -g)"
        printf "%-16s %10s %10s %11s %16s %8s %8s %8s\n" "$l" "$(col "$l" gregor 10 | median)" \
            "$(col "$l" kafka 10 | median)" "$(col "$l" kafka-fsync 10 | median)" \
            "$(median <<<"$fr") [$(spread <<<"$fr")]" "$(col "$l" gregor 11 | median)" \
            "$(col "$l" kafka 11 | median)" "$(col "$l" kafka-fsync 11 | median)"
    done
fi
echo
echo "per-run rows (run, load, target, records/s, MB/s, broker cpu ns/record, p50 ms, p99 ms, rss MB,"
echo "share loads: records/s after the join, join ms):"
sed 's/^/  /' "$RESULTS"
