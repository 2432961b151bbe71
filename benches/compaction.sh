#!/usr/bin/env bash
# Benchmarks the log cleaner (release build) and prints, medians over --runs runs:
#   - the cleaner's throughput: MB of dirty log cleaned per second, as the broker reports it in
#     its "log compacted" line (dirty bytes mapped / duration of the clean: read, offset map,
#     rewrite, fsync, swap), for one partition of keyed 1 KB records (20,000 keys, so each key
#     is updated many times), 64 MiB segments;
#   - its effect on a concurrent produce load: `gregor perf produce` (1 KB records, acks=1,
#     2 partitions, 2 producers) to another topic while the cleaner is idle (before the clean
#     and again after it, averaged, so neither side gets the warmer run), and the same load
#     while the cleaner compacts the big partition; the ratio busy / idle (target >= 0.90).
#     Each run says whether the clean lasted as long as the busy load (else the overlap is
#     partial and the ratio flatters the cleaner).
# The compacted topic is filled with min.compaction.lag.ms=1 day (nothing cleanable), then the
# lag is lifted with `gregor configs alter` and the busy load starts when the broker logs
# "compacting log" for it.
#
# Usage: benches/compaction.sh [--runs N] [--quick] [--bin PATH]
#   --runs N    repeat on fresh topics N times (default 3)
#   --quick     small sizes (smoke test)
#   --bin PATH  use this gregor binary instead of building target/release/gregor
set -euo pipefail

RUNS=3
QUICK=0
BIN=""
while [[ $# -gt 0 ]]; do
    case "$1" in
        --runs) RUNS="$2"; shift ;;
        --quick) QUICK=1 ;;
        --bin) BIN="$2"; shift ;;
        -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
        *) echo "unknown option $1" >&2; exit 2 ;;
    esac
    shift
done

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
if [[ -z "$BIN" ]]; then
    (cd "$ROOT" && cargo build --release -q -p gregor-cli)
    BIN="$ROOT/target/release/gregor"
fi
if [[ $QUICK == 1 ]]; then
    N_FILL=200000; N_LOAD=100000
else
    N_FILL=2000000; N_LOAD=1000000
fi
KEYS=20000

WORK="$(mktemp -d "${TMPDIR:-/tmp}/gregor-compaction.XXXXXX")"
SERVER_PID=""
cleanup() {
    if [[ -n "$SERVER_PID" ]] && kill -0 "$SERVER_PID" 2>/dev/null; then
        kill "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT

RUST_LOG=info "$BIN" server --listen 127.0.0.1:0 --data-dir "$WORK/data" \
    --set log.cleaner.backoff.ms=100 2>"$WORK/server.log" &
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

# records/s of a `perf produce` summary line.
rate_of() { awk '/records sent,/ {for (i = 1; i < NF; i++) if ($(i + 1) ~ /^records\/sec/) print $i}' | tail -1; }
load() {
    "$BIN" perf produce --topic "$1" --num-records "$2" --record-size 1000 --acks 1 \
        --partitions 2 --producers 2 --batch-size 65536 --bootstrap-server "$ADDR" 2>/dev/null
}
# field NAME LINE: the value of `NAME=value` in a log line.
field() { echo "$2" | grep -o "$1=[^ ]*" | head -1 | cut -d= -f2; }

RESULTS="$WORK/results.tsv"
: >"$RESULTS"
for run in $(seq "$RUNS"); do
    c="cbench-r$run-compacted"
    "$BIN" topics create "$c" --partitions 1 --bootstrap-server "$ADDR" \
        --config cleanup.policy=compact --config segment.bytes=67108864 \
        --config min.cleanable.dirty.ratio=0.01 --config min.compaction.lag.ms=86400000 >/dev/null
    echo "run $run: filling $c with $N_FILL keyed records of 1 KB ($KEYS keys)" >&2
    "$BIN" perf produce --topic "$c" --num-records "$N_FILL" --record-size 1000 --acks 1 \
        --producers 1 --batch-size 65536 --key-count "$KEYS" --bootstrap-server "$ADDR" >/dev/null 2>&1
    # Topics of the produce loads exist before anything is measured.
    load "cbench-r$run-idle" 0 >/dev/null
    load "cbench-r$run-busy" 0 >/dev/null
    load "cbench-r$run-idle2" 0 >/dev/null
    sync
    echo "run $run: produce load, cleaner idle" >&2
    idle1="$(load "cbench-r$run-idle" "$N_LOAD" | rate_of)"
    sync
    "$BIN" configs alter --topic "$c" --set min.compaction.lag.ms=0 --bootstrap-server "$ADDR" >/dev/null
    for _ in $(seq 200); do
        grep -q "compacting log.*$c-0" "$WORK/server.log" && break
        sleep 0.05
    done
    echo "run $run: produce load, cleaner compacting $c" >&2
    busy="$(load "cbench-r$run-busy" "$N_LOAD" | rate_of)"
    load_end="$(date +%s%N)"
    line=""
    for _ in $(seq 1200); do
        line="$(grep "log compacted.*$c-0" "$WORK/server.log" | head -1)" || true
        [[ -n "$line" ]] && break
        sleep 0.1
    done
    clean_end="$(date +%s%N)"
    [[ -n "$line" ]] || { echo "run $run: no clean of $c reported" >&2; tail -5 "$WORK/server.log" >&2; exit 1; }
    sync
    echo "run $run: produce load, cleaner idle again" >&2
    idle2="$(load "cbench-r$run-idle2" "$N_LOAD" | rate_of)"
    idle="$(awk -v a="$idle1" -v b="$idle2" 'BEGIN {printf "%.1f", (a + b) / 2}')"
    mbs="$(field dirty_mb_per_s "$line")"
    ms="$(field elapsed_ms "$line")"
    before="$(field bytes_before "$line")"
    after="$(field bytes_after "$line")"
    # The clean covered the busy load when it was still running once the load ended (it is
    # reported by the first poll after it ends, or later).
    covered=yes
    (( clean_end - load_end < 150000000 )) && covered=partial
    echo "  idle $idle rec/s ($idle1 before, $idle2 after), busy $busy rec/s; clean $ms ms, $mbs MB/s dirty, $before -> $after bytes, overlap $covered" >&2
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$run" "$idle" "$busy" "$mbs" "$ms" "$before" "$after" "$covered" >>"$RESULTS"
done

median() {
    cut -f"$1" "$RESULTS" | sort -g | awk '{v[NR] = $1} END {
        if (NR == 0) print "-"; else if (NR % 2) print v[(NR + 1) / 2]; else printf "%.2f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
echo
echo "log cleaner, $RUNS run(s), medians ($N_FILL keyed 1 KB records over $KEYS keys; load $N_LOAD x 1 KB acks=1)"
printf "  cleaner throughput:        %s MB/s of dirty log (clean of %s ms, %s -> %s bytes)\n" \
    "$(median 4)" "$(median 5)" "$(median 6)" "$(median 7)"
printf "  produce, cleaner idle:     %s records/s\n" "$(median 2)"
printf "  produce, cleaner busy:     %s records/s\n" "$(median 3)"
ratios="$(awk -F'\t' '{printf "%s%.2f", (NR > 1) ? " " : "", ($2 > 0) ? $3 / $2 : 0}' "$RESULTS")"
printf "  busy / idle:               %s (per run: %s; overlap: %s)  target >= 0.90\n" \
    "$(awk -v a="$(median 3)" -v b="$(median 2)" 'BEGIN {printf "%.2f", (b > 0) ? a / b : 0}')" \
    "$ratios" "$(cut -f8 "$RESULTS" | tr '\n' ' ' | sed 's/ $//')"
