#!/usr/bin/env bash
# Benchmarks a release `gregor` broker with `gregor perf` and prints one table per run set:
# throughput and latency per load, the broker's CPU cost per record and per GB (from
# /proc/PID/stat utime+stime), its peak RSS, and each MB/s as a fraction of the machine's
# limits measured in the same run (loopback TCP and fdatasync'd sequential writes of the data dir).
# A second table gives the paced end-to-end loads (`gregor perf e2e`): produce and end-to-end
# latency percentiles and how far the producer fell behind its schedule. Last come the ratios the
# performance targets are stated in: acks=all / acks=1 and 1,000 / 8 partitions throughput.
#
# Loads named rdkafka-* are driven by librdkafka (benches/rdkafka-load) instead of gregor perf,
# loads named java-* by the Java client (benches/java/EosLoad.java with the toolbox's Kafka jars,
# scripts/toolbox; skipped without javac or the jars). Loads named share-* are share consumers
# (KIP-932): Kafka's kafka-share-consumer-perf-test with 1 or 4 consumers of a fresh share group
# (share.auto.offset.reset=earliest set by kafka-configs.sh first) reading a topic of 1 or 4
# partitions that `gregor perf produce` wrote once per run; their records/s leave the share
# group's join out (from the tool's first progress line on; the join is in the load's output).
# java-consume-1k-p1/-p4 read the same topics with kafka-consumer-perf-test (its fetch rate,
# the group join left out too) as their reference.
#
# Each run starts by measuring the kernel floor (`gregor perf floor`, in the broker's memory
# cgroup): the CPU per GB a bare thread pays to receive a loopback stream and append it to a file
# (with and without an fdatasync per MiB), and to sendfile a file to loopback. user_ns/rec is the
# broker's user-space CPU alone (its own code); x_floor is the load's broker CPU per GB over the
# matching floor of the same run (acks=all loads: the fdatasync floor; consume: sendfile), the
# figure least moved by this shared machine's minute-to-minute swings.
#
# Steady state: a broker that has run for a while has a full page cache, and new log pages are
# recycled from old ones. A fresh VM instead hands out never-touched (or host-reclaimed) memory,
# and the first touch of each page costs several times the copy itself, billed to whoever writes
# the page: the broker. Where a memory cgroup can be made (root, cgroup v1 or v2), the broker
# runs in one limited to --page-cache MB and a warm-up load fills it before anything is measured,
# so each load meets the recycled pages of a running broker; the table says which mode ran.
#
# Usage: benches/run.sh [--quick] [--runs N] [--bin PATH] [--page-cache MB] [--no-rdkafka]
#                       [--cluster] [--peer kafka] [--only REGEX]
#   --quick          small record counts (smoke test, a few seconds)
#   --runs N         repeat every load N times on fresh topics and print medians
#   --bin            use this gregor binary instead of building target/release/gregor
#   --page-cache MB  memory cgroup limit for the broker (default 3072; 0 = no cgroup, cold pages)
#   --no-rdkafka     skip the librdkafka loads (no build of benches/rdkafka-load)
#   --no-java        skip the Java client's loads
#   --cluster        then benchmark a local 3-node cluster too (benches/cluster.sh: RF=3 vs
#                    RF=1 acks=all, produce latency at a fixed rate, failover time)
#   --compaction     then the log cleaner load (benches/compaction.sh: the cleaner's MB/s of
#                    dirty log, and produce throughput with the cleaner busy vs idle)
#   --compaction-only  only that load (takes --quick, --runs and --bin)
#   --only REGEX     run only the loads whose names match (grep -E), e.g.
#                    'rdkafka-1k-(acks-all|idempotent|transactional)' for the exactly-once ratios
#   --peer kafka     instead of the tables above: the librdkafka loads against gregor and a
#                    single-node Apache Kafka side by side, and their ratios (benches/peer.sh;
#                    takes --quick, --runs, --bin and --only)
set -euo pipefail

QUICK=0
RUNS=1
BIN=""
PAGE_CACHE_MB=3072
RDKAFKA=1
JAVA_LOADS=1
CLUSTER=0
COMPACTION=0
PEER=""
ONLY=""
while [[ $# -gt 0 ]]; do
    case "$1" in
        --quick) QUICK=1 ;;
        --runs) RUNS="$2"; shift ;;
        --bin) BIN="$2"; shift ;;
        --page-cache) PAGE_CACHE_MB="$2"; shift ;;
        --no-rdkafka) RDKAFKA=0 ;;
        --no-java) JAVA_LOADS=0 ;;
        --cluster) CLUSTER=1 ;;
        --compaction) COMPACTION=1 ;;
        --compaction-only) COMPACTION=2 ;;
        --peer) PEER="$2"; shift ;;
        --only) ONLY="$2"; shift ;;
        -h|--help) sed -n '2,51p' "$0"; exit 0 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
    shift
done

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
if [[ -n "$PEER" ]]; then
    [[ "$PEER" == kafka ]] || { echo "unknown peer $PEER (known: kafka)" >&2; exit 2; }
    peer_args=(--runs "$RUNS")
    [[ $QUICK == 1 ]] && peer_args+=(--quick)
    [[ -n "$BIN" ]] && peer_args+=(--bin "$BIN")
    [[ -n "$ONLY" ]] && peer_args+=(--only "$ONLY")
    exec "$ROOT/benches/peer.sh" "${peer_args[@]}"
fi
if [[ -z "$BIN" ]]; then
    (cd "$ROOT" && cargo build --release -q -p gregor-cli)
    BIN="$ROOT/target/release/gregor"
fi
compaction_args=(--runs "$RUNS" --bin "$BIN")
[[ $QUICK == 1 ]] && compaction_args+=(--quick)
if [[ $COMPACTION == 2 ]]; then
    exec "$ROOT/benches/compaction.sh" "${compaction_args[@]}"
fi
RDK=""
if [[ $RDKAFKA == 1 ]]; then
    (cd "$ROOT" && cargo build --release -q -p gregor-rdkafka-load)
    RDK="$(dirname "$BIN")/rdkafka-load"
    [[ -x "$RDK" ]] || RDK="$ROOT/target/release/rdkafka-load"
fi

WORK="$(mktemp -d "${TMPDIR:-/tmp}/gregor-bench.XXXXXX")"
SERVER_PID=""
cleanup() {
    if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
    if [[ -n "$CGROUP" ]]; then rmdir "$CGROUP" 2>/dev/null || true; fi
}
CGROUP=""
trap cleanup EXIT

if [[ $QUICK == 1 ]]; then
    N_100B=100000; N_1K=30000; N_LAT=100000; LOOPBACK_BYTES=$((512 * 1024 * 1024)); DD_MB=256
    FLOOR_BYTES=$((128 * 1024 * 1024))
else
    N_100B=4000000; N_1K=1000000; N_LAT=1000000; LOOPBACK_BYTES=$((2 * 1024 * 1024 * 1024)); DD_MB=1024
    FLOOR_BYTES=$((1024 * 1024 * 1024))
fi
CLK_TCK="$(getconf CLK_TCK)"

# --- machine limits ------------------------------------------------------------------------
mkdir -p "$WORK/data"
echo "measuring loopback TCP bandwidth ..." >&2
LOOPBACK_MBS="$("$BIN" perf loopback --bytes "$LOOPBACK_BYTES" | awk '{print $2}')"
echo "measuring data dir write bandwidth (fdatasync) ..." >&2
DISK_MBS="$(LC_ALL=C dd if=/dev/zero of="$WORK/data/ddtest" bs=1M count="$DD_MB" conv=fdatasync 2>&1 \
    | awk '/copied/ {for (i = 1; i <= NF; i++) if ($i == "s,") s = $(i - 1); printf "%.1f", $1 / s / 1048576}')"
rm -f "$WORK/data/ddtest"
LIMIT_MBS="$(awk -v a="$LOOPBACK_MBS" -v b="$DISK_MBS" 'BEGIN {print (a < b) ? a : b}')"

# --- broker --------------------------------------------------------------------------------
RUST_LOG=info "$BIN" server --listen 127.0.0.1:0 --data-dir "$WORK/data" 2>"$WORK/server.log" &
SERVER_PID=$!
ADDR=""
for _ in $(seq 100); do
    ADDR="$(grep -o 'listening on [^ ]*' "$WORK/server.log" | head -1 | awk '{print $3}')" || true
    [[ -n "$ADDR" ]] && break
    kill -0 "$SERVER_PID" 2>/dev/null || { cat "$WORK/server.log" >&2; exit 1; }
    sleep 0.1
done
[[ -n "$ADDR" ]] || { echo "broker did not report its address" >&2; exit 1; }
echo "broker pid $SERVER_PID on $ADDR" >&2

# --- steady-state page cache (see the header) ----------------------------------------------
MODE="cold pages (no memory cgroup)"
if [[ "$PAGE_CACHE_MB" -gt 0 ]]; then
    limit=$((PAGE_CACHE_MB * 1024 * 1024))
    if [[ -d /sys/fs/cgroup/memory ]] && mkdir -p /sys/fs/cgroup/memory/gregor-bench-$$ 2>/dev/null \
        && echo "$limit" >/sys/fs/cgroup/memory/gregor-bench-$$/memory.limit_in_bytes 2>/dev/null; then
        CGROUP=/sys/fs/cgroup/memory/gregor-bench-$$
    elif [[ -f /sys/fs/cgroup/cgroup.controllers ]] && mkdir -p /sys/fs/cgroup/gregor-bench-$$ 2>/dev/null \
        && echo "$limit" >/sys/fs/cgroup/gregor-bench-$$/memory.max 2>/dev/null; then
        CGROUP=/sys/fs/cgroup/gregor-bench-$$
    fi
    if [[ -n "$CGROUP" ]] && echo "$SERVER_PID" >"$CGROUP/cgroup.procs" 2>/dev/null; then
        MODE="steady state: broker page cache limited to $PAGE_CACHE_MB MB, warmed up first"
        warm=$((PAGE_CACHE_MB * 5 / 4 * 1024))
        [[ $QUICK == 1 ]] && warm=$((warm / 8))
        echo "warming the broker's page cache: $((warm / 1024)) MB ..." >&2
        "$BIN" perf produce --topic warmup --record-size 1024 --acks 1 --partitions 2 --producers 2 \
            --batch-size 65536 --num-records "$warm" --bootstrap-server "$ADDR" >/dev/null 2>&1
        sync
    else
        echo "no memory cgroup available: measuring with cold pages" >&2
        [[ -n "$CGROUP" ]] && rmdir "$CGROUP" 2>/dev/null
        CGROUP=""
    fi
fi

cpu_ticks() { awk '{print $14 + $15}' "/proc/$SERVER_PID/stat"; }
user_ticks() { awk '{print $14}' "/proc/$SERVER_PID/stat"; }

# floor: the kernel's CPU per GB for the work no broker can skip (loopback receive + append,
# with and without an fdatasync per MiB; sendfile to loopback), measured in the broker's
# conditions (its memory cgroup, when there is one) at the start of every run. Prints
# "NOSYNC SYNC CONSUME DIRECT" in s/GB; DIRECT (O_DIRECT appends + fdatasync/MiB) is not a floor of
# this broker, it prices taking the page-cache copy off the produce path.
floor() {
    local line
    line="$(
        if [[ -n "$CGROUP" ]]; then echo "$BASHPID" >"$CGROUP/cgroup.procs"; fi
        "$BIN" perf floor --dir "$WORK/data" --bytes "$FLOOR_BYTES"
    )" || { echo "- - - -"; return; }
    echo "$line" | awk '{print $3, $6, $9, $12}'
}
rss_kb() { awk -v k="$1" '$1 == k":" {print $2}' "/proc/$SERVER_PID/status"; }

# load name | records | record size | gregor perf arguments (@T = this run's topic)
LOADS=(
    "produce-100b-acks-all|$N_100B|100|produce --topic @T-100b --record-size 100 --acks all --partitions 2 --producers 2 --batch-size 900000"
    "produce-1k-acks-1|$N_1K|1000|produce --topic @T-1k1 --record-size 1000 --acks 1 --partitions 2 --producers 2 --batch-size 65536"
    "produce-1k-acks-all|$N_1K|1000|produce --topic @T-1kall --record-size 1000 --acks all --partitions 2 --producers 2 --batch-size 65536"
    "consume-1k|$N_1K|1000|consume --topic @T-1kall"
    "single-conn-1k-acks-1|$N_1K|1024|produce --topic @T-single --record-size 1024 --acks 1 --partitions 1 --producers 1 --batch-size 524288"
    "partitions-8|$N_1K|1024|produce --topic @T-p8 --record-size 1024 --acks 1 --partitions 8 --producers 2 --batch-size 65536"
    "partitions-1000|$N_1K|1024|produce --topic @T-p1000 --record-size 1024 --acks 1 --partitions 1000 --producers 2 --batch-size 65536"
    "latency-1k-50k|$N_LAT|1024|e2e --topic @T-lat --record-size 1024 --acks all --throughput 50000 --partitions 2 --producers 2 --batch-size 65536"
)
if [[ -n "$RDK" ]]; then
    # librdkafka, one partition, linger.ms=5, batch.num.messages=10000 (the issue's peer setup)
    LOADS+=(
        "rdkafka-100b-acks-all|$N_100B|100|rdkafka produce --topic @T-rk100 --record-size 100 --acks all"
        "rdkafka-consume-100b|$N_100B|100|rdkafka consume --topic @T-rk100 --record-size 100"
        "rdkafka-1k-acks-1|$N_1K|1024|rdkafka produce --topic @T-rk1k1 --record-size 1024 --acks 1"
        "rdkafka-1k-acks-all|$N_1K|1024|rdkafka produce --topic @T-rk1kall --record-size 1024 --acks all"
        "rdkafka-1k-idempotent|$N_1K|1024|rdkafka produce --topic @T-rk1kidem --record-size 1024 --acks all --idempotence"
        "rdkafka-1k-transactional|$N_1K|1024|rdkafka produce --topic @T-rk1ktxn --record-size 1024 --acks all --transaction-size 1000"
        # The same three on 4 partitions: librdkafka's idempotent producer keeps one request
        # in flight per partition, so on one partition every request waits for its own fsync.
        "rdkafka-1k-acks-all-p4|$N_1K|1024|rdkafka produce --topic @T-rk1kallp4 --partitions 4 --record-size 1024 --acks all"
        "rdkafka-1k-idempotent-p4|$N_1K|1024|rdkafka produce --topic @T-rk1kidemp4 --partitions 4 --record-size 1024 --acks all --idempotence"
        "rdkafka-1k-transactional-p4|$N_1K|1024|rdkafka produce --topic @T-rk1ktxnp4 --partitions 4 --record-size 1024 --acks all --transaction-size 1000"
        "rdkafka-consume-1k|$N_1K|1024|rdkafka consume --topic @T-rk1kall --record-size 1024"
    )
fi

# shellcheck source=benches/loads.sh
source "$ROOT/benches/loads.sh"
JAVA_CP=""
TOOLBOX="${GREGOR_TOOLBOX:-${XDG_CACHE_HOME:-$HOME/.cache}/gregor-toolbox}"
if [[ $JAVA_LOADS == 1 ]]; then
    JAVA_CP="$(eos_load_classpath "$WORK" "$TOOLBOX")"
fi
if [[ -n "$JAVA_CP" ]]; then
    # The Java client (kafka-clients 4.4, transactions version 2), one partition, linger.ms=5,
    # batch.size=1 MiB: acks=all, idempotent, and transactions of 1000 records, each committed
    # before the next begins (benches/java/EosLoad.java).
    LOADS+=(
        "java-1k-acks-all|$N_1K|1024|java --topic @T-j1kall --record-size 1024 --mode plain"
        "java-1k-idempotent|$N_1K|1024|java --topic @T-j1kidem --record-size 1024 --mode idempotent"
        "java-1k-transactional|$N_1K|1024|java --topic @T-j1ktxn --record-size 1024 --mode transactional --transaction-size 1000"
        # Share consumers and their reference (see the header); @T-share-pN: N partitions.
        "java-consume-1k-p1|$N_1K|1024|jconsume --topic @T-share-p1"
        "share-1k-p1-c1|$N_1K|1024|share --topic @T-share-p1 --threads 1"
        "share-1k-p1-c4|$N_1K|1024|share --topic @T-share-p1 --threads 4"
        "java-consume-1k-p4|$N_1K|1024|jconsume --topic @T-share-p4"
        "share-1k-p4-c1|$N_1K|1024|share --topic @T-share-p4 --threads 1"
        "share-1k-p4-c4|$N_1K|1024|share --topic @T-share-p4 --threads 4"
    )
fi
keep_loads "$ONLY"

RESULTS="$WORK/results.tsv"
: >"$RESULTS"
FLOORS="$WORK/floors.tsv"
: >"$FLOORS"
for run in $(seq "$RUNS"); do
    echo "run $run: kernel floor" >&2
    sync
    read -r floor_nosync floor_sync floor_consume floor_direct <<<"$(floor)"
    echo "  floor s/GB: receive+append $floor_nosync, +fdatasync/MiB $floor_sync, sendfile $floor_consume, O_DIRECT+fdatasync/MiB $floor_direct" >&2
    printf '%s\t%s\t%s\t%s\t%s\n' "$run" "$floor_nosync" "$floor_sync" "$floor_consume" "$floor_direct" >>"$FLOORS"
    for load in "${LOADS[@]}"; do
        IFS='|' read -r name n size args <<<"$load"
        args="${args//@T/bench-r$run}"
        echo "run $run: $name ($n records of $size B)" >&2
        if [[ "$args" == rdkafka* ]]; then
            tool=("$RDK"); args="${args#rdkafka }"; client=rdkafka
            topic="$(echo "$args" | awk '{for (i = 1; i < NF; i++) if ($i == "--topic") print $(i + 1)}')"
            parts="$(echo "$args" | awk '{p = 1; for (i = 1; i < NF; i++) if ($i == "--partitions") p = $(i + 1); print p}')"
            [[ "$args" == produce* ]] && "$BIN" topics create "$topic" --partitions "$parts" \
                --bootstrap-server "$ADDR" >/dev/null 2>&1
        elif [[ "$args" == share* || "$args" == jconsume* ]]; then
            if [[ "$args" == share* ]]; then
                class=org.apache.kafka.tools.ShareConsumerPerformance; args="${args#share }"
            else
                class=org.apache.kafka.tools.ConsumerPerformance; args="${args#jconsume }"
            fi
            tool=("${JAVA:-java}" -Xmx512m "-Dlog4j2.configurationFile=$TOOLBOX/config/tools-log4j2.properties"
                -cp "$TOOLBOX/jars/*" "$class")
            client=kafka-tool
            topic="$(echo "$args" | awk '{for (i = 1; i < NF; i++) if ($i == "--topic") print $(i + 1)}')"
            # The topic, written once per run: 1 KiB records, acks=all, round robin.
            if [[ ! -e "$WORK/source-$topic" ]]; then
                "$BIN" perf produce --topic "$topic" --partitions "${topic##*-p}" --record-size 1024 \
                    --acks all --producers 1 --num-records "$n" --bootstrap-server "$ADDR" >/dev/null 2>&1 \
                    && touch "$WORK/source-$topic"
            fi
            if [[ "$class" == *Share* ]]; then
                # A fresh share group from the earliest offset; --timeout also bounds the whole
                # load (the tool interrupts its consumers after it).
                args+=" --group bench-r$run-$name --timeout 120000 --show-detailed-stats --reporting-interval 100"
                "$TOOLBOX/bin/kafka-configs.sh" --bootstrap-server "$ADDR" --entity-type groups \
                    --entity-name "bench-r$run-$name" --alter --add-config share.auto.offset.reset=earliest \
                    >/dev/null 2>&1 || echo "  group config of bench-r$run-$name failed" >&2
            fi
        elif [[ "$args" == java* ]]; then
            tool=("${JAVA:-java}" -Xmx512m -cp "$JAVA_CP" EosLoad); args="${args#java }"; client=java
            topic="$(echo "$args" | awk '{for (i = 1; i < NF; i++) if ($i == "--topic") print $(i + 1)}')"
            "$BIN" topics create "$topic" --partitions 1 --bootstrap-server "$ADDR" >/dev/null 2>&1
        else
            tool=("$BIN" perf); client=gregor
        fi
        if [[ $client != gregor ]]; then
            :
        elif [[ "$args" != consume* ]]; then
            # Create the topic first so that creating (say) 1,000 partitions is not in the CPU
            # figures: a run of zero records creates it and sends nothing.
            # shellcheck disable=SC2086
            "$BIN" perf $args --num-records 0 --bootstrap-server "$ADDR" >/dev/null 2>&1
        fi
        # Write back the previous loads' dirty pages now, so that their writeback does not
        # land in this load's fsyncs (acks=1 loads leave up to gigabytes unflushed).
        sync
        t0="$(cpu_ticks)"; u0="$(user_ticks)"
        # shellcheck disable=SC2086  # args is a word list on purpose
        out="$("${tool[@]}" $args --num-records "$n" --bootstrap-server "$ADDR" 2>"$WORK/load.err")" \
            || echo "  $name failed: $(tail -1 "$WORK/load.err")" >&2
        if [[ $client == kafka-tool ]]; then
            # Kafka's CSV lines as a summary line: ConsumerPerformance's fetch rate (the group
            # join left out); ShareConsumerPerformance's rate with its join, then without it:
            # from its first progress line (the first records) to the end.
            out="$(awk -F', ' -v size="$size" '
                function ms(t,    a) { split(substr(t, 12), a, ":"); return ((a[1] * 60 + a[2]) * 60 + a[3]) * 1000 + a[4] }
                / for share consumer / { if (!seen++) { t0 = ms($2); r0 = $6 } next }
                NF >= 10 && $10 ~ /^[0-9.]+$/ { line = sprintf("%d records consumed, %.0f records/s, %.2f MB/s", $5, $10, $9) }
                NF == 7 && $5 ~ /^[0-9.]+$/ {
                    line = sprintf("%d records consumed, %.0f records/s with the join", $6, $5)
                    if (seen && ms($2) > t0) {
                        r = ($6 - r0) * 1000 / (ms($2) - t0)
                        line = line sprintf(" of %d ms; after it %.0f records/s, %.2f MB/s", t0 - ms($1), r, r * size / 1048576)
                    }
                }
                END { print line }' <<<"$out")"
        fi
        t1="$(cpu_ticks)"; u1="$(user_ticks)"
        hwm="$(rss_kb VmHWM)"
        case "$args" in
            consume*) load_floor="$floor_consume" ;;
            *"--acks all"*) load_floor="$floor_sync" ;;
            *) load_floor="$floor_nosync" ;;
        esac
        echo "$out" | sed 's/^/  /' >&2
        # One row per load and run from the summary lines: `N records sent|consumed, ...`
        # (throughput, latency), `N records received end-to-end, ...` and `send lag ...` (e2e).
        echo "$out" | awk -v name="$name" -v n="$n" -v size="$size" -v dt="$((t1 - t0))" \
            -v tck="$CLK_TCK" -v hwm="$hwm" -v limit="$LIMIT_MBS" -v run="$run" \
            -v du="$((u1 - u0))" -v floor="$load_floor" '
            BEGIN {
                rate = "-"; mbs = "-"; p50 = "-"; p99 = "-"; p999 = "-"
                e50 = "-"; e99 = "-"; e999 = "-"; lag99 = "-"; lagmax = "-"
            }
            function field(key,    i) {
                for (i = 1; i < NF; i++) if ($i == key) { f = $(i + 1); gsub(/,/, "", f); return f }
                return "-"
            }
            /records received end-to-end/ { e50 = field("p50"); e99 = field("p99"); e999 = field("p99.9"); next }
            /^send lag/ { lag99 = field("p99"); lagmax = field("max"); next }
            {
                for (i = 1; i <= NF; i++) {
                    f = $i; gsub(/[(),]/, "", f)
                    if ($(i + 1) ~ /^records\/s/) rate = f
                    if ($(i + 1) ~ /^MB\/s/) mbs = f
                }
                p50 = field("p50"); p99 = field("p99"); p999 = field("p99.9")
            }
            END {
                cpu = dt / tck
                spg = cpu / (n * size / 1e9)
                printf "%s\t%s\t%s\t%s\t%s\t%.0f\t%.2f\t%.1f\t%.2f\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%.0f\t%s\n",
                    name, rate, mbs, p50, p99, cpu * 1e9 / n, spg, hwm / 1024,
                    (mbs == "-") ? 0 : mbs / limit, p999, e50, e99, e999, lag99, lagmax, run,
                    du / tck * 1e9 / n, (floor + 0 > 0) ? sprintf("%.2f", spg / floor) : "-"
            }' >>"$RESULTS"
    done
done

# --- tables (medians over runs) -----------------------------------------------------------
# median NAME COLUMN: the median of a results column over the runs of one load.
median() {
    awk -F'\t' -v n="$1" -v c="$2" '$1 == n {print $c}' "$RESULTS" | sort -g | awk '
        {v[NR] = $1}
        END {
            if (NR == 0) print "-"
            else if (NR % 2) print v[(NR + 1) / 2]
            else if (v[NR / 2] ~ /^[0-9.]+$/) printf "%.2f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2
            else print v[NR / 2]
        }'
}
# ratio A B: median records/s of load A over that of load B, and the per-run ratios.
ratio() {
    awk -F'\t' -v a="$1" -v b="$2" -v ma="$(median "$1" 2)" -v mb="$(median "$2" 2)" '
        $1 == a {ra[$16] = $2} $1 == b {rb[$16] = $2}
        END {
            printf "%.2f (", (mb > 0) ? ma / mb : 0
            sep = ""
            for (r = 1; r in ra; r++) { printf "%s%.2f", sep, (rb[r] > 0) ? ra[r] / rb[r] : 0; sep = " " }
            printf ")"
        }' "$RESULTS"
}

echo
printf "loopback %.0f MB/s, data dir fdatasync write %.0f MB/s, limit = %.0f MB/s; %s run(s), medians\n" \
    "$LOOPBACK_MBS" "$DISK_MBS" "$LIMIT_MBS" "$RUNS"
echo "$MODE"
# floor_median COLUMN: median of a floors.tsv column (2 nosync, 3 sync, 4 consume, 5 direct).
floor_median() {
    awk -F'\t' -v c="$1" '$c != "-" {print $c}' "$FLOORS" | sort -g | awk '
        {v[NR] = $1}
        END { if (NR == 0) print "-"; else if (NR % 2) print v[(NR + 1) / 2]; else printf "%.3f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
printf "kernel floor, broker CPU s/GB for the unavoidable work (perf floor): receive+append %s, receive+append+fdatasync/MiB %s, sendfile %s\n" \
    "$(floor_median 2)" "$(floor_median 3)" "$(floor_median 4)"
printf "the same receive+append+fdatasync/MiB with O_DIRECT appends (no page-cache copy; not this broker's path): %s\n" \
    "$(floor_median 5)"
printf "%-22s %12s %9s %9s %9s %10s %10s %9s %8s %11s %9s\n" load records/s MB/s p50_ms p99_ms \
    cpu_ns/rec user_ns/rec cpu_s/GB x_floor peak_rss_MB of_limit
for load in "${LOADS[@]}"; do
    name="${load%%|*}"
    row=("$name")
    for col in 2 3 4 5 6 17 7 18 8 9; do
        row+=("$(median "$name" "$col")")
    done
    printf "%-22s %12s %9s %9s %9s %10s %10s %9s %8s %11s %9s\n" "${row[@]}"
done

echo
echo "end-to-end loads (produce: request written -> ack; e2e: send -> consumer receipt), ms, medians"
printf "%-22s %12s %9s %9s %9s %9s %9s %9s %9s %9s\n" load records/s p50 p99 p99.9 e2e_p50 e2e_p99 \
    e2e_p99.9 lag_p99 lag_max
for load in "${LOADS[@]}"; do
    name="${load%%|*}"
    [[ "$(median "$name" 12)" == "-" ]] && continue
    row=("$name")
    for col in 2 4 5 10 11 12 13 14 15; do
        row+=("$(median "$name" "$col")")
    done
    printf "%-22s %12s %9s %9s %9s %9s %9s %9s %9s %9s\n" "${row[@]}"
done

echo
echo "throughput ratios: of medians (per run)"
echo "  acks=all / acks=1 (produce-1k):      $(ratio produce-1k-acks-all produce-1k-acks-1)  target >= 0.50"
echo "  1000 / 8 partitions (partitions-*):  $(ratio partitions-1000 partitions-8)  target >= 0.70"
echo "  one connection 1k acks=1 / loopback: $(awk -v m="$(median single-conn-1k-acks-1 3)" -v l="$LOOPBACK_MBS" 'BEGIN {printf "%.2f", m / l}')  target >= 0.60"
if [[ -n "$RDK" ]]; then
    echo "  rdkafka acks=all / acks=1 (1k):       $(ratio rdkafka-1k-acks-all rdkafka-1k-acks-1)  target >= 0.50"
    echo "  rdkafka idempotent / acks=all (1k):   $(ratio rdkafka-1k-idempotent rdkafka-1k-acks-all)  target >= 0.95"
    echo "  rdkafka transactional / acks=all (1k): $(ratio rdkafka-1k-transactional rdkafka-1k-acks-all)  target >= 0.80 (1000 records per transaction)"
    echo "  rdkafka idempotent / acks=all (1k, 4 partitions):    $(ratio rdkafka-1k-idempotent-p4 rdkafka-1k-acks-all-p4)  target >= 0.95"
    echo "  rdkafka transactional / acks=all (1k, 4 partitions): $(ratio rdkafka-1k-transactional-p4 rdkafka-1k-acks-all-p4)  target >= 0.80 (1000 records per transaction)"
fi
if [[ -n "$JAVA_CP" ]]; then
    echo "  java idempotent / acks=all (1k):      $(ratio java-1k-idempotent java-1k-acks-all)  target >= 0.95"
    echo "  java transactional / acks=all (1k):   $(ratio java-1k-transactional java-1k-acks-all)  target >= 0.80 (1000 records per transaction)"
    echo "  share, 1 consumer / plain consumer (1k, 1 partition):   $(ratio share-1k-p1-c1 java-consume-1k-p1)"
    echo "  share, 4 consumers / plain consumer (1k, 1 partition):  $(ratio share-1k-p1-c4 java-consume-1k-p1)"
    echo "  share, 1 consumer / plain consumer (1k, 4 partitions):  $(ratio share-1k-p4-c1 java-consume-1k-p4)"
    echo "  share, 4 consumers / plain consumer (1k, 4 partitions): $(ratio share-1k-p4-c4 java-consume-1k-p4)"
fi

if [[ $CLUSTER == 1 ]]; then
    echo
    quick_flag=()
    [[ $QUICK == 1 ]] && quick_flag=(--quick)
    "$ROOT/benches/cluster.sh" --runs "$RUNS" --bin "$BIN" "${quick_flag[@]}"
fi

if [[ $COMPACTION == 1 ]]; then
    echo
    "$ROOT/benches/compaction.sh" "${compaction_args[@]}"
fi
