#!/usr/bin/env bash
# Benchmarks a release `gregor` broker with `gregor perf` and prints one table per run set:
# throughput and latency per load, the broker's CPU cost per record and per GB (from
# /proc/PID/stat utime+stime), its peak RSS, and each MB/s as a fraction of the machine's
# limits measured in the same run (loopback TCP and fdatasync'd sequential writes of the data dir).
#
# Usage: benches/run.sh [--quick] [--runs N] [--bin PATH]
#   --quick   small record counts (smoke test, a few seconds)
#   --runs N  repeat every load N times on fresh topics and print medians
#   --bin     use this gregor binary instead of building target/release/gregor
set -euo pipefail

QUICK=0
RUNS=1
BIN=""
while [[ $# -gt 0 ]]; do
    case "$1" in
        --quick) QUICK=1 ;;
        --runs) RUNS="$2"; shift ;;
        --bin) BIN="$2"; shift ;;
        -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
    shift
done

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
if [[ -z "$BIN" ]]; then
    (cd "$ROOT" && cargo build --release -q -p gregor-cli)
    BIN="$ROOT/target/release/gregor"
fi

WORK="$(mktemp -d "${TMPDIR:-/tmp}/gregor-bench.XXXXXX")"
SERVER_PID=""
cleanup() {
    if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

if [[ $QUICK == 1 ]]; then
    N_100B=100000; N_1K=30000; LOOPBACK_BYTES=$((512 * 1024 * 1024)); DD_MB=256
else
    N_100B=4000000; N_1K=1000000; LOOPBACK_BYTES=$((2 * 1024 * 1024 * 1024)); DD_MB=1024
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

cpu_ticks() { awk '{print $14 + $15}' "/proc/$SERVER_PID/stat"; }
rss_kb() { awk -v k="$1" '$1 == k":" {print $2}' "/proc/$SERVER_PID/status"; }

# load name | records | record size | gregor perf arguments (@T = this run's topic)
LOADS=(
    "produce-100b-acks-all|$N_100B|100|produce --topic @T-100b --record-size 100 --acks all --partitions 2 --producers 2 --batch-size 65536"
    "produce-1k-acks-1|$N_1K|1000|produce --topic @T-1k1 --record-size 1000 --acks 1 --partitions 2 --producers 2 --batch-size 65536"
    "produce-1k-acks-all|$N_1K|1000|produce --topic @T-1kall --record-size 1000 --acks all --partitions 2 --producers 2 --batch-size 65536"
    "consume-1k|$N_1K|1000|consume --topic @T-1kall"
)

RESULTS="$WORK/results.tsv"
: >"$RESULTS"
for run in $(seq "$RUNS"); do
    for load in "${LOADS[@]}"; do
        IFS='|' read -r name n size args <<<"$load"
        args="${args//@T/bench-r$run}"
        echo "run $run: $name ($n records of $size B)" >&2
        t0="$(cpu_ticks)"
        # shellcheck disable=SC2086  # args is a word list on purpose
        out="$("$BIN" perf $args --num-records "$n" --bootstrap-server "$ADDR" 2>/dev/null)"
        t1="$(cpu_ticks)"
        hwm="$(rss_kb VmHWM)"
        echo "  $out" >&2
        # records/s, MB/s, p50, p99 from either summary format
        echo "$out" | awk -v name="$name" -v n="$n" -v size="$size" -v dt="$((t1 - t0))" \
            -v tck="$CLK_TCK" -v hwm="$hwm" -v limit="$LIMIT_MBS" '
            {
                rate = "-"; mbs = "-"; p50 = "-"; p99 = "-"
                for (i = 1; i <= NF; i++) {
                    f = $i; gsub(/[(),]/, "", f)
                    if ($(i + 1) ~ /^records\/sec/) rate = f
                    if ($(i + 1) ~ /^MB\/sec/) mbs = f
                    if ($i == "p50") { p50 = $(i + 1) }
                    if ($i == "p99") { p99 = $(i + 1) }
                }
                cpu = dt / tck
                printf "%s\t%s\t%s\t%s\t%s\t%.0f\t%.2f\t%.1f\t%.2f\n", name, rate, mbs, p50, p99,
                    cpu * 1e9 / n, cpu / (n * size / 1e9), hwm / 1024, mbs / limit
            }' >>"$RESULTS"
    done
done

# --- table (medians over runs) ------------------------------------------------------------
echo
printf "loopback %.0f MB/s, data dir fdatasync write %.0f MB/s, limit = %.0f MB/s; %s run(s), medians\n" \
    "$LOOPBACK_MBS" "$DISK_MBS" "$LIMIT_MBS" "$RUNS"
printf "%-22s %12s %9s %9s %9s %14s %12s %10s %9s\n" load records/s MB/s p50_ms p99_ms \
    cpu_ns/rec cpu_s/GB peak_rss_MB of_limit
for load in "${LOADS[@]}"; do
    name="${load%%|*}"
    row=("$name")
    for col in 2 3 4 5 6 7 8 9; do
        row+=("$(awk -F'\t' -v n="$name" -v c="$col" '$1 == n {print $c}' "$RESULTS" \
            | sort -g | awk '{v[NR] = $1} END {if (NR == 0) print "-"; else if (NR % 2) print v[(NR + 1) / 2]; else if (v[NR / 2] ~ /^[0-9.]+$/) printf "%.2f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2; else print v[NR/2]}')")
    done
    printf "%-22s %12s %9s %9s %9s %14s %12s %10s %9s\n" "${row[@]}"
done
