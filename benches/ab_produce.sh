#!/usr/bin/env bash
# A/B of produce throughput and broker CPU between two gregor binaries (e.g. before and after a
# change on the produce path). Each round starts broker A and broker B in turn (fresh data dir,
# same loads, same `gregor perf produce` client: the A binary's), and a load's figures are the
# medians over the rounds; B/A is the ratio of the medians. Alternating A and B within a round
# (ABBA) spreads this shared machine's minute-to-minute swings over both.
#
# cpu_us/rec is the broker's user+system CPU (/proc/PID/stat) per record over the load.
# `gregor perf produce` sends random values, which no codec shrinks: the compressed loads price
# the codecs' framing and the walk, not their decoding of well-compressed data (the criterion
# bench `cargo bench -p gregor-protocol --bench batch` has text-like values for that).
#
# Usage: benches/ab_produce.sh [--runs N] [--quick] BIN_A BIN_B
#   --runs N   rounds (default 3)
#   --quick    small record counts (smoke test)
set -euo pipefail

RUNS=3
QUICK=0
while [[ $# -gt 2 ]]; do
    case "$1" in
        --runs) RUNS="$2"; shift ;;
        --quick) QUICK=1 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
    shift
done
[[ $# -eq 2 ]] || { sed -n '2,13p' "$0"; exit 2; }
A="$1"
B="$2"

if [[ $QUICK == 1 ]]; then N_100B=200000; N_1K=50000; N_C=100000; else N_100B=20000000; N_1K=3000000; N_C=5000000; fi
# name|records|perf produce arguments (the topic is added per run)
LOADS=(
    "100b-acks1|$N_100B|--record-size 100 --acks 1 --partitions 2 --producers 2 --batch-size 900000"
    "100b-acksall|$N_100B|--record-size 100 --acks all --partitions 2 --producers 2 --batch-size 900000"
    "1k-acks1|$N_1K|--record-size 1024 --acks 1 --partitions 2 --producers 2 --batch-size 65536"
    "100b-lz4|$N_C|--record-size 100 --acks 1 --partitions 2 --producers 2 --batch-size 900000 --compression lz4"
    "100b-zstd|$N_C|--record-size 100 --acks 1 --partitions 2 --producers 2 --batch-size 900000 --compression zstd"
    "100b-snappy|$N_C|--record-size 100 --acks 1 --partitions 2 --producers 2 --batch-size 900000 --compression snappy"
    "100b-gzip|$N_C|--record-size 100 --acks 1 --partitions 2 --producers 2 --batch-size 900000 --compression gzip"
)

WORK="$(mktemp -d "${TMPDIR:-/tmp}/gregor-ab.XXXXXX")"
PID=""
cleanup() {
    if [[ -n "$PID" ]] && kill -0 "$PID" 2>/dev/null; then kill "$PID"; wait "$PID" 2>/dev/null || true; fi
    rm -rf "$WORK"
}
trap cleanup EXIT
TICK="$(getconf CLK_TCK)"

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

# run_load BIN NAME N ARGS: starts BIN, runs the load, prints "records/s cpu_us_per_record".
run_load() {
    local bin="$1" name="$2" n="$3" args="$4"
    rm -rf "$WORK/data"
    # A fresh log file per run: the previous broker's "listening on" must never be read.
    local log
    log="$(mktemp "$WORK/server.XXXXXX")"
    "$bin" server --listen 127.0.0.1:0 --data-dir "$WORK/data" 2>"$log" &
    PID=$!
    local addr=""
    for _ in $(seq 100); do
        addr="$(grep -o 'listening on [^ ]*' "$log" 2>/dev/null | head -1 | awk '{print $3}')" || true
        [[ -n "$addr" ]] && break
        sleep 0.1
    done
    [[ -n "$addr" ]] || { cat "$log" >&2; kill "$PID"; exit 1; }
    local t0 c0 c1 out
    c0="$(cpu_ticks "$PID")"
    # shellcheck disable=SC2086
    out="$(timeout 600 "$A" perf produce --topic "ab-$name" --num-records "$n" $args --bootstrap-server "$addr" 2>&1 | tail -1)"
    c1="$(cpu_ticks "$PID")"
    kill "$PID"; wait "$PID" 2>/dev/null || true; PID=""
    local rps
    rps="$(grep -o '[0-9.]* records/sec' <<<"$out" | awk '{print $1}')"
    [[ -n "$rps" ]] || { echo "no throughput in: $out" >&2; exit 1; }
    awk -v r="$rps" -v c=$((c1 - c0)) -v t="$TICK" -v n="$n" 'BEGIN { printf "%s %.3f\n", r, c / t * 1e6 / n }'
}

median() { sort -g | awk '{a[NR]=$1} END { if (NR % 2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2 }'; }

for ((round = 1; round <= RUNS; round++)); do
    for load in "${LOADS[@]}"; do
        IFS='|' read -r name n args <<<"$load"
        # A first in odd rounds, B first in even ones: neither always follows the other.
        order="A B"; ((round % 2 == 0)) && order="B A"
        for side in $order; do
            bin="$A"; [[ $side == B ]] && bin="$B"
            read -r rps cpu < <(run_load "$bin" "$name" "$n" "$args")
            echo "$name $side $rps $cpu" >>"$WORK/results"
            echo "round $round $name $side: $rps records/s, $cpu cpu_us/rec" >&2
        done
    done
done

printf '\n%-12s %12s %12s %7s %12s %12s %7s\n' load A_rec/s B_rec/s B/A A_cpu_us/rec B_cpu_us/rec B/A
for load in "${LOADS[@]}"; do
    IFS='|' read -r name _ _ <<<"$load"
    ar="$(awk -v l="$name" '$1 == l && $2 == "A" {print $3}' "$WORK/results" | median)"
    br="$(awk -v l="$name" '$1 == l && $2 == "B" {print $3}' "$WORK/results" | median)"
    ac="$(awk -v l="$name" '$1 == l && $2 == "A" {print $4}' "$WORK/results" | median)"
    bc="$(awk -v l="$name" '$1 == l && $2 == "B" {print $4}' "$WORK/results" | median)"
    awk -v n="$name" -v ar="$ar" -v br="$br" -v ac="$ac" -v bc="$bc" \
        'BEGIN { printf "%-12s %12.0f %12.0f %7.3f %12.3f %12.3f %7.3f\n", n, ar, br, br / ar, ac, bc, bc / ac }'
done
