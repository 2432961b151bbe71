#!/usr/bin/env bash
# What metrics cost on the produce path: librdkafka (benches/rdkafka-load) produces to a release
# gregor without `--http-listen` ("off": no recorder, every metric call a no-op) and with it
# ("on": a curl loop scrapes /metrics once a second during the load, as Prometheus would), a
# fresh broker per run. Two loads (acks=all, one partition), each in rounds of an off and an on
# run, the order alternating from round to round:
#   large  1,000,000 records of 1 KiB, rdkafka-load's defaults (linger.ms=5,
#          batch.num.messages=10000): about 1,000 records (1 MB) per Produce request, so
#          mostly the per-partition meters
#   small  300,000 records of 100 B, linger.ms=0, batch.num.messages=1: one record per Produce
#          request, so the per-request counter lookup and summary sample weigh the most
# A consumer then reads every record back, so a failed produce cannot pass for a fast one; with
# metrics on, the scraped MessagesInPerSec of the topic must count them too.
#
# Each run reports the producer's records/s and the broker's CPU time (user + system, from
# /proc/PID/stat, scrapes included) per record during the produce: on a shared machine the
# throughput swings with the neighbours, the CPU a record costs much less. Prints each run and,
# per load, the medians and their ratios on/off.
#
# Last, what one scrape costs on a broker with a 1,000-partition topic (10 lines a partition):
# the median of 10 `curl -w %{time_total}`, the page's size, and the broker's CPU per scrape.
#
# Usage: benches/metrics.sh [--runs N]      (default 3 rounds; needs target/release/gregor,
#                                          target/release/rdkafka-load, curl and Linux /proc)
set -euo pipefail
shopt -s inherit_errexit

RUNS=3
[[ "${1:-}" == --runs ]] && RUNS="$2"
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
G="$ROOT/target/release/gregor"
L="$ROOT/target/release/rdkafka-load"
[[ -x "$G" && -x "$L" ]] || {
    echo "needs $G and $L (cargo build --release -p gregor-cli -p gregor-rdkafka-load)" >&2
    exit 2
}
command -v curl >/dev/null || { echo "needs curl" >&2; exit 2; }
TICK=$(getconf CLK_TCK)

# load -> rdkafka-load produce options
load_args() {
    case $1 in
    large) echo --num-records 1000000 --record-size 1024 ;;
    small) echo --num-records 300000 --record-size 100 --linger-ms 0 --batch-num-messages 1 ;;
    esac
}

# pid -> the process's user + system CPU time in clock ticks (fields 14 and 15 of
# /proc/PID/stat, counted after the parenthesised command name)
cpu_ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{print $12 + $13}'; }

run() { # mode load port -> "records/s cpu-µs/record"
    local mode=$1 load=$2 port=$3 dir pid scraper="" out n args cpu0 cpu1
    local http="127.0.0.1:$((port + 1000))"
    n=$(load_args "$load" | awk '{print $2}')
    dir=$(mktemp -d)
    args=(server --data-dir "$dir" --listen "127.0.0.1:$port")
    [[ "$mode" == on ]] && args+=(--http-listen "$http")
    "$G" "${args[@]}" >"$dir.log" 2>&1 &
    pid=$!
    for _ in $(seq 1 100); do (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
    "$G" topics create -b "127.0.0.1:$port" bench --partitions 1 >/dev/null
    if [[ "$mode" == on ]]; then
        # Once a second: more often than a Prometheus setup would, so the worst case.
        (while kill -0 "$pid" 2>/dev/null; do
            curl -sf -o /dev/null "http://$http/metrics" || true
            sleep 1
        done) &
        scraper=$!
    fi
    cpu0=$(cpu_ticks "$pid")
    # shellcheck disable=SC2046 # the options are words
    out=$("$L" produce --bootstrap-server "127.0.0.1:$port" --topic bench $(load_args "$load") \
        2>&1 | tail -1)
    cpu1=$(cpu_ticks "$pid")
    if [[ -n "$scraper" ]]; then kill "$scraper" 2>/dev/null || true; wait "$scraper" || true; fi
    "$L" consume --bootstrap-server "127.0.0.1:$port" --topic bench --num-records "$n" \
        >/dev/null 2>&1 || { echo "$mode $load: the records did not all come back" >&2; exit 1; }
    if [[ "$mode" == on ]]; then
        local counted
        counted=$(curl -sf "http://$http/metrics" |
            awk '$1 == "kafka_server_brokertopicmetrics_messagesin_total{topic=\"bench\"}" {print $2}')
        ((${counted:-0} >= n)) ||
            { echo "on $load: /metrics counted ${counted:-no} records in, not $n" >&2; exit 1; }
    fi
    kill "$pid"; wait "$pid" 2>/dev/null || true
    rm -rf "$dir" "$dir.log"
    # The deleted log's writeback must not land on the next run.
    sync
    awk -v out="$out" -v c0="$cpu0" -v c1="$cpu1" -v t="$TICK" -v n="$n" 'BEGIN {
        if (!match(out, /[0-9]+ records\/s/)) exit 1
        printf "%d %.2f\n", substr(out, RSTART, RLENGTH - 10), (c1 - c0) / t * 1e6 / n }'
}

median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

declare -A rate cpu # "load,mode" -> the runs' records/s, CPU µs/record; space-separated
# A large run right after a small one cost the broker 2-3x the CPU per record of the large run
# that followed it: 20 of 20 pairs, whichever mode went first (most likely the page cache the
# first fills with pages the VM has not touched lately, where the second reuses the pages the
# first freed). So one uncounted large run comes first, and each load's rounds run back to back.
run off large $((29000 + RANDOM % 900)) >/dev/null
for load in large small; do
    for r in $(seq 1 "$RUNS"); do
        port=$((29000 + RANDOM % 900))
        if ((r % 2)); then order=(off on); else order=(on off); fi
        line="round $r $load:"
        for mode in "${order[@]}"; do
            read -r x c <<<"$(run "$mode" "$load" "$port")"
            rate[$load,$mode]+="$x " cpu[$load,$mode]+="$c "
            line+=" $mode $x records/s $c µs/record,"
            port=$((port + 1))
        done
        echo "${line%,}"
    done
done
med() { tr ' ' '\n' <<<"$1" | grep . | median; }
for load in large small; do
    awk -v l="$load" -v a="$(med "${rate[$load,off]}")" -v b="$(med "${rate[$load,on]}")" \
        -v c="$(med "${cpu[$load,off]}")" -v d="$(med "${cpu[$load,on]}")" 'BEGIN {
        printf "%s: median off %.0f, on %.0f records/s: on/off %.3f; ", l, a, b, b / a
        printf "broker CPU off %.2f, on %.2f µs/record: on/off %.3f\n", c, d, d / c }'
done

# One scrape of a broker holding a 1,000-partition topic (plus __consumer_offsets' 50).
port=$((29000 + RANDOM % 900))
http="127.0.0.1:$((port + 1000))"
dir=$(mktemp -d)
"$G" server --data-dir "$dir" --listen "127.0.0.1:$port" --http-listen "$http" >"$dir.log" 2>&1 &
pid=$!
for _ in $(seq 1 100); do (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
"$G" topics create -b "127.0.0.1:$port" wide --partitions 1000 >/dev/null
"$L" produce --bootstrap-server "127.0.0.1:$port" --topic wide --partitions 1000 \
    --num-records 100000 >/dev/null 2>&1
curl -sf -o /dev/null "http://$http/metrics" # the first scrape drains the summaries' samples
cpu0=$(cpu_ticks "$pid")
times=$(for _ in $(seq 1 10); do
    curl -sf -o /dev/null -w '%{time_total}\n' "http://$http/metrics"
done)
cpu1=$(cpu_ticks "$pid")
bytes=$(curl -sf -o /dev/null -w '%{size_download}' "http://$http/metrics")
lines=$(curl -sf "http://$http/metrics" | wc -l)
kill "$pid"; wait "$pid" 2>/dev/null || true
rm -rf "$dir" "$dir.log"
awk -v t="$(median <<<"$times")" -v b="$bytes" -v l="$lines" \
    -v c="$(((cpu1 - cpu0) * 1000 / TICK))" 'BEGIN {
    printf "scrape, 1,000 partitions: median of 10 %.1f ms, page %d bytes (%d lines), ", t * 1000, b, l
    printf "broker CPU %.1f ms a scrape (10 ms ticks over the 10)\n", c / 10 }'
