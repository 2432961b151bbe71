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
# Usage: benches/cluster.sh [--runs N] [--quick] [--bin PATH]
#   --runs N    repeat everything N times on fresh clusters (default 3)
#   --quick     small record counts (smoke test)
#   --bin PATH  use this gregor binary instead of building target/release/gregor
# Needs the Python venv of scripts/test (.venv with confluent-kafka) for the failover probe.
set -euo pipefail

RUNS=3
QUICK=0
BIN=""
while [[ $# -gt 0 ]]; do
    case "$1" in
        --runs) RUNS="$2"; shift ;;
        --quick) QUICK=1 ;;
        --bin) BIN="$2"; shift ;;
        -h|--help) sed -n '2,17p' "$0"; exit 0 ;;
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
cleanup() {
    for p in "${PIDS[@]:-}"; do [[ -n "$p" ]] && kill -9 "$p" 2>/dev/null || true; done
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
