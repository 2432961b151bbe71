#!/usr/bin/env bash
# Benchmarks a local 3-node gregor cluster (release build; every node a broker and a voter, all
# on this machine, so the three share its cores) and prints:
#   - acks=all throughput to a replication-factor-3 topic (min.insync.replicas=2) against a
#     replication-factor-1 topic, in the same run, interleaved, and their ratio (with three nodes
#     on one machine a third is the physical ceiling: every record is received, written and
#     fsynced three times);
#   - acks=all produce latency (p50/p99) at a fixed rate to the RF=3 topic;
#   - failover time: kill -9 of the leader of a single-partition RF=3 topic while a
#     confluent-kafka producer sends acks=all records, to the first record produced after the
#     kill that the new leader acknowledges.
# Medians over --runs runs (the machine is shared: one run is not a figure).
#
# With --peer kafka, a 3-node Apache Kafka cluster (KRaft, every node a broker and a voter,
# Kafka's defaults apart from the listeners, -Xmx1G each, from the toolbox's jars) takes turns
# with the 3-node gregor cluster, one cluster running at a time, the order rotating per run.
# Both get the same loads from a neutral client, Kafka's own kafka-producer-perf-test (1000 B
# records, acks=all, linger.ms=5, batch.size=1 MiB): RF=1 and RF=3 throughput, p50/p99 at a
# fixed rate to the RF=3 topic, and the failover probe above; plus each cluster's CPU per
# record (all three processes) and resident memory (summed) after the loads. Kafka never fsyncs
# on the produce path: its acks=all waits for the replicas' page caches, gregor's for each
# replica's fsync.
#
# Usage: benches/cluster.sh [--runs N] [--quick] [--bin PATH] [--peer kafka]
#   --runs N      repeat everything N times on fresh clusters (default 3)
#   --quick       small record counts (smoke test)
#   --bin PATH    use this gregor binary instead of building target/release/gregor
#   --peer kafka  gregor and a 3-node Apache Kafka side by side (needs scripts/toolbox, Java 17)
# Needs the Python venv of scripts/test (.venv with confluent-kafka) for the failover probe.
set -euo pipefail

RUNS=3
QUICK=0
BIN=""
PEER=""
while [[ $# -gt 0 ]]; do
    case "$1" in
        --runs) RUNS="$2"; shift ;;
        --quick) QUICK=1 ;;
        --bin) BIN="$2"; shift ;;
        --peer) PEER="$2"; shift ;;
        -h|--help) sed -n '2,28p' "$0"; exit 0 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
    shift
done

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
if [[ -z "$BIN" ]]; then
    (cd "$ROOT" && cargo build --release -q -p gregor-cli)
    BIN="$ROOT/target/release/gregor"
fi
PY="${GREGOR_PYTHON:-$ROOT/.venv/bin/python}"
[[ -x "$PY" ]] || { echo "no Python venv at $PY: run scripts/test once (it makes .venv)" >&2; exit 2; }

if [[ $QUICK == 1 ]]; then N=20000; N_LAT=5000; RATE=2000; else N=300000; N_LAT=60000; RATE=10000; fi

WORK="$(mktemp -d -t gregor-cluster-bench.XXXXXX)"
PIDS=()
KPIDS=()
cleanup() {
    for p in "${PIDS[@]:-}"; do [[ -n "$p" ]] && kill -9 "$p" 2>/dev/null || true; done
    for p in "${KPIDS[@]:-}"; do [[ -n "$p" ]] && kill -9 -- "-$p" 2>/dev/null || true; done
    rm -rf "$WORK"
}
trap cleanup EXIT

# start_cluster BASE: three nodes on BASE..BASE+2 (clients) and BASE+10.. (controllers).
start_cluster() {
    local base="$1" voters="" i
    PIDS=()
    for i in 1 2 3; do voters+="${voters:+,}$i@127.0.0.1:$((base + 10 + i))"; done
    for i in 1 2 3; do
        mkdir -p "$WORK/n$i"
        RUST_LOG=info,openraft=warn "$BIN" server --node-id "$i" --data-dir "$WORK/n$i" \
            --listen "127.0.0.1:$((base + i))" --controller-listen "127.0.0.1:$((base + 10 + i))" \
            --voters "$voters" >"$WORK/n$i.log" 2>&1 &
        PIDS[$i]=$!
    done
    for i in 1 2 3; do
        for _ in $(seq 1 300); do
            grep -q "listening on" "$WORK/n$i.log" && break
            sleep 0.1
        done
        grep -q "listening on" "$WORK/n$i.log" || { echo "node $i did not start:" >&2; tail -20 "$WORK/n$i.log" >&2; exit 1; }
    done
    BOOT="127.0.0.1:$((base + 1)),127.0.0.1:$((base + 2)),127.0.0.1:$((base + 3))"
}

stop_cluster() {
    local i
    for i in 1 2 3; do [[ -n "${PIDS[$i]:-}" ]] && kill -9 "${PIDS[$i]}" 2>/dev/null || true; done
    wait 2>/dev/null || true
    PIDS=()
    rm -rf "$WORK"/n1 "$WORK"/n2 "$WORK"/n3
}

# rate_of OUTPUT: records/s of a `gregor perf produce` summary line.
# The summary is the last `records sent` line (the others are progress windows).
rate_of() { grep 'records sent' | tail -1 | awk '{ for (i = 1; i < NF; i++) if ($(i+1) ~ /^records\/sec/) { v = $i; gsub(/,/, "", v); print v } }'; }
field_of() { grep 'records sent' | tail -1 | awk -v k="$1" '{ for (i = 1; i < NF; i++) if ($i == k) { v = $(i+1); gsub(/,/, "", v); print v } }'; }

if [[ "$PEER" == kafka ]]; then
    TOOLBOX="${GREGOR_TOOLBOX:-${XDG_CACHE_HOME:-$HOME/.cache}/gregor-toolbox}"
    # shellcheck source=benches/kafka.sh
    source "$ROOT/benches/kafka.sh"
    CLK_TCK="$(getconf CLK_TCK)"
    # start_kafka_cluster: three Kafka nodes; sets KPIDS[1..3] and BOOT.
    start_kafka_cluster() {
        local i voters="" ports=() cports=()
        for i in 1 2 3; do
            ports[i]="$(free_port)"
            cports[i]="$(free_port)"
            voters+="${voters:+,}$i@127.0.0.1:${cports[i]}"
        done
        KPIDS=()
        for i in 1 2 3; do
            start_kafka_node "$WORK/k$i" "$i" "${ports[i]}" "${cports[i]}" "$voters" 1G
            KPIDS[i]=$KAFKA_NODE_PID
        done
        for i in 1 2 3; do wait_kafka_node "$WORK/k$i" "${KPIDS[i]}"; done
        BOOT="127.0.0.1:${ports[1]},127.0.0.1:${ports[2]},127.0.0.1:${ports[3]}"
    }
    stop_kafka_cluster() {
        local i
        for i in 1 2 3; do [[ -n "${KPIDS[i]:-}" ]] && kill -9 -- "-${KPIDS[i]}" 2>/dev/null || true; done
        wait 2>/dev/null || true
        KPIDS=()
        rm -rf "$WORK"/k1 "$WORK"/k2 "$WORK"/k3
    }
    cluster_ticks() { local t=0 p; for p in "$@"; do t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done; echo "$t"; }
    cluster_rss() { local m=0 p; for p in "$@"; do m=$((m + $(awk '/^VmRSS:/ {print $2}' "/proc/$p/status"))); done; echo $((m / 1024)); }
    perf() {
        "$JAVA" -Xmx512m -cp "$TOOLBOX/jars/*" org.apache.kafka.tools.ProducerPerformance \
            --topic "$1" --num-records "$2" --record-size 1000 --throughput "$3" \
            --producer-props acks=all linger.ms=5 batch.size=1048576 "bootstrap.servers=$BOOT" 2>&1 | tail -1
    }
    : >"$WORK/all.tsv"
    for run in $(seq 1 "$RUNS"); do
        if (( run % 2 )); then order=(gregor kafka); else order=(kafka gregor); fi
        for target in "${order[@]}"; do
            echo "run $run: $target" >&2
            if [[ $target == gregor ]]; then
                start_cluster $((21000 + (RANDOM % 200) * 50))
                pids=("${PIDS[1]}" "${PIDS[2]}" "${PIDS[3]}")
            else
                start_kafka_cluster
                pids=("${KPIDS[1]}" "${KPIDS[2]}" "${KPIDS[3]}")
            fi
            "$BIN" topics create rf3 --bootstrap-server "$BOOT" --partitions 2 --replication-factor 3 \
                --config min.insync.replicas=2 >/dev/null
            "$BIN" topics create rf1 --bootstrap-server "$BOOT" --partitions 2 --replication-factor 1 >/dev/null
            "$BIN" topics create fo --bootstrap-server "$BOOT" --partitions 1 --replication-factor 3 \
                --config min.insync.replicas=2 >/dev/null
            # Kafka elects the new partitions' leaders a moment after CreateTopics answers.
            for _ in $(seq 100); do
                l="$("$PY" "$ROOT/benches/failover_probe.py" --leader "$BOOT" fo 2>/dev/null || echo -1)"
                [[ "$l" =~ ^[1-3]$ ]] && break
                sleep 0.3
            done
            t0="$(cluster_ticks "${pids[@]}")"
            for topic in rf1 rf3; do
                out="$(perf "$topic" "$N" -1)"
                echo "  [$topic] $out" >&2
                rate="$(echo "$out" | awk '{for (i = 2; i <= NF; i++) if ($i ~ /^records\/sec/) print $(i - 1)}')"
                printf '%s\t%s\tthroughput\t%s\n' "$target" "$topic" "$rate" >>"$WORK/all.tsv"
            done
            t1="$(cluster_ticks "${pids[@]}")"
            printf '%s\tall\tcpu_us\t%s\n' "$target" \
                "$(awk -v d=$((t1 - t0)) -v t="$CLK_TCK" -v n=$((2 * N)) 'BEGIN {printf "%.2f", d / t * 1e6 / n}')" >>"$WORK/all.tsv"
            out="$(perf rf3 "$N_LAT" "$RATE")"
            echo "  [latency] $out" >&2
            for k in 50th 99th; do
                printf '%s\trf3\t%s\t%s\n' "$target" "$k" \
                    "$(echo "$out" | awk -v k="$k" '{for (i = 3; i <= NF; i++) if ($i ~ "^" k) print $(i - 2)}')" >>"$WORK/all.tsv"
            done
            printf '%s\tall\trss_mb\t%s\n' "$target" "$(cluster_rss "${pids[@]}")" >>"$WORK/all.tsv"
            fo=$("$PY" "$ROOT/benches/failover_probe.py" "$BOOT" fo "$WORK/kill" 2>"$WORK/probe.err" &
                probe=$!
                for _ in $(seq 1 200); do [[ -f "$WORK/kill" ]] && break; sleep 0.05; done
                leader_now=$("$PY" "$ROOT/benches/failover_probe.py" --leader "$BOOT" fo)
                if [[ $target == gregor ]]; then
                    kill -9 "${PIDS[$leader_now]}"
                else
                    kill -9 -- "-${KPIDS[$leader_now]}"
                fi
                date +%s.%N >"$WORK/killed"
                wait "$probe")
            echo "  [failover] $fo" >&2
            printf '%s\tfo\tfailover_ms\t%s\n' "$target" "$(echo "$fo" | awk '{print $1}')" >>"$WORK/all.tsv"
            if [[ $target == gregor ]]; then stop_cluster; else stop_kafka_cluster; fi
            rm -f "$WORK/kill" "$WORK/killed"
        done
    done
    pmed() { awk -F'\t' -v c="$1" -v t="$2" -v k="$3" '$1 == c && $2 == t && $3 == k && $4 != "" {print $4}' "$WORK/all.tsv" | sort -g \
        | awk '{v[NR] = $1} END { if (NR == 0) print "-"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
    ratio() { awk -v a="$1" -v b="$2" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }'; }
    echo
    echo "3-node gregor vs 3-node Apache Kafka $KAFKA_VERSION on one machine, medians of $RUNS runs"
    echo "(kafka-producer-perf-test, $N records of 1000 B per topic, acks=all, 2 partitions)"
    printf "%-36s %12s %12s %8s\n" "figure" "gregor" "kafka" "g/k"
    for row in "RF=1 acks=all records/s|rf1|throughput" "RF=3 acks=all records/s|rf3|throughput" \
        "RF=3 p50 ms at $RATE rec/s|rf3|50th" "RF=3 p99 ms at $RATE rec/s|rf3|99th" \
        "failover ms (kill -9 leader)|fo|failover_ms" "cluster CPU us per record|all|cpu_us" \
        "cluster RSS MB (3 processes)|all|rss_mb"; do
        IFS='|' read -r label topic key <<<"$row"
        g="$(pmed gregor "$topic" "$key")"; k="$(pmed kafka "$topic" "$key")"
        printf "%-36s %12s %12s %8s\n" "$label" "$g" "$k" "$(ratio "$g" "$k")"
    done
    for c in gregor kafka; do
        printf "RF=3 / RF=1, %s: %s\n" "$c" "$(ratio "$(pmed "$c" rf3 throughput)" "$(pmed "$c" rf1 throughput)")"
    done
    echo "per-run rows (cluster, topic, figure, value):"
    sed 's/^/  /' "$WORK/all.tsv"
    exit 0
fi

RESULTS="$WORK/results.tsv"
: >"$WORK/all.tsv"
for run in $(seq 1 "$RUNS"); do
    base=$((21000 + (RANDOM % 200) * 50))
    start_cluster "$base"
    "$BIN" topics create rf3 --bootstrap-server "$BOOT" --partitions 2 --replication-factor 3 \
        --config min.insync.replicas=2 >/dev/null
    "$BIN" topics create rf1 --bootstrap-server "$BOOT" --partitions 2 --replication-factor 1 >/dev/null
    "$BIN" topics create fo --bootstrap-server "$BOOT" --partitions 1 --replication-factor 3 \
        --config min.insync.replicas=2 >/dev/null
    for topic in rf1 rf3; do
        out=$("$BIN" perf produce --bootstrap-server "$BOOT" --topic "$topic" --num-records "$N" \
            --record-size 1000 --acks all --producers 2 --batch-size 65536 2>&1)
        echo "$out" | sed "s/^/  [$topic] /" >&2
        printf '%s\tthroughput\t%s\n' "$topic" "$(echo "$out" | rate_of)" >>"$WORK/all.tsv"
    done
    out=$("$BIN" perf produce --bootstrap-server "$BOOT" --topic rf3 --num-records "$N_LAT" \
        --record-size 1000 --acks all --producers 1 --throughput "$RATE" 2>&1)
    echo "$out" | sed 's/^/  [latency] /' >&2
    printf 'rf3\tp50\t%s\n' "$(echo "$out" | field_of p50)" >>"$WORK/all.tsv"
    printf 'rf3\tp99\t%s\n' "$(echo "$out" | field_of p99)" >>"$WORK/all.tsv"
    # Failover: the probe writes its kill request to a file once it produces steadily; the
    # leader of `fo` is killed then; the probe reports the time to the first acknowledgement
    # of a record produced after the kill.
    fo=$("$PY" "$ROOT/benches/failover_probe.py" "$BOOT" fo "$WORK/kill" 2>"$WORK/probe.err" &
        probe=$!
        for _ in $(seq 1 200); do [[ -f "$WORK/kill" ]] && break; sleep 0.05; done
        leader_now=$("$PY" "$ROOT/benches/failover_probe.py" --leader "$BOOT" fo)
        kill -9 "${PIDS[$leader_now]}"
        date +%s.%N >"$WORK/killed"
        wait "$probe")
    echo "  [failover] $fo" >&2
    printf 'fo\tfailover_ms\t%s\n' "$(echo "$fo" | awk '{print $1}')" >>"$WORK/all.tsv"
    stop_cluster
    rm -f "$WORK/kill" "$WORK/killed"
done

med() { awk -F'\t' -v t="$1" -v k="$2" '$1 == t && $2 == k && $3 != "" {print $3}' "$WORK/all.tsv" | sort -g \
    | awk '{v[NR] = $1} END { if (NR == 0) print "-"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
rf1=$(med rf1 throughput); rf3=$(med rf3 throughput)
echo
echo "3-node cluster on one machine, medians of $RUNS runs ($N records of 1000 B, acks=all, 2 producers, 2 partitions)"
printf "%-34s %14s\n" "load" "value"
printf "%-34s %14s\n" "RF=1 acks=all records/s" "$rf1"
printf "%-34s %14s\n" "RF=3 acks=all records/s" "$rf3"
printf "%-34s %14s\n" "RF=3 / RF=1 (target >= 0.28)" "$(awk -v a="$rf3" -v b="$rf1" 'BEGIN { if (b > 0) printf "%.2f", a / b; else print "-" }')"
printf "%-34s %14s\n" "RF=3 produce p50 ms at $RATE rec/s" "$(med rf3 p50)"
printf "%-34s %14s\n" "RF=3 produce p99 ms at $RATE rec/s" "$(med rf3 p99)"
printf "%-34s %14s\n" "failover ms (kill -9 leader)" "$(med fo failover_ms)"
echo "failover runs (ms): $(awk -F'\t' '$2 == "failover_ms" {printf "%s ", $3}' "$WORK/all.tsv")"
