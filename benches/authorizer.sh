#!/usr/bin/env bash
# What the authorizer costs on the produce path: librdkafka (benches/rdkafka-load) produces
# 1,000,000 records of 1 KiB (acks=all, one partition) to a release gregor without an
# authorizer ("off") and with the standard authorizer ("on": 200 unrelated ACLs on another
# topic, or --acls N on N/200 other topics, half literal and half prefixed, and a prefixed ALLOW
# on this one, so every Produce is checked against N+1 ACLs), rounds alternating; a consumer then reads every record back, so a refused produce cannot pass for a
# fast one. Prints each run and the medians' ratio on/off.
#
# Usage: benches/authorizer.sh [--runs N] [--acls N]   (default 3 rounds, 200 ACLs; needs
#                                              target/release/gregor and target/release/rdkafka-load)
set -euo pipefail

RUNS=3
ACLS=200
while (( $# >= 2 )); do
    case "$1" in
        --runs) RUNS="$2" ;;
        --acls) ACLS="$2" ;;
        *) echo "usage: $0 [--runs N] [--acls N]" >&2; exit 2 ;;
    esac
    shift 2
done
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
G="$ROOT/target/release/gregor"
L="$ROOT/target/release/rdkafka-load"
[[ -x "$G" && -x "$L" ]] || {
    echo "needs $G and $L (cargo build --release -p gregor-cli; benches/rdkafka-load)" >&2
    exit 2
}

run() { # mode port -> records/s
    local mode=$1 port=$2 dir pid out
    dir=$(mktemp -d)
    local args=(server --data-dir "$dir" --listen "127.0.0.1:$port")
    if [[ "$mode" == on ]]; then
        args+=(--set authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
            --set allow.everyone.if.no.acl.found=true)
    fi
    "$G" "${args[@]}" >"$dir.log" 2>&1 &
    pid=$!
    for _ in $(seq 1 100); do (echo >"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
    "$G" topics create -b "127.0.0.1:$port" bench --partitions 1 >/dev/null
    if [[ "$mode" == on ]]; then
        local principals=() made=0 k=0 call=0 topics pattern
        for i in $(seq 1 200); do principals+=(--allow-principal "User:user$i"); done
        while (( made < ACLS )); do # 200 ACLs per topic, 10 topics per request
            topics=()
            while (( made < ACLS && ${#topics[@]} < 20 )); do
                topics+=(--topic "other-$k."); k=$((k + 1)); made=$((made + 200))
            done
            pattern=literal; (( call % 2 )) && pattern=prefixed; call=$((call + 1))
            "$G" acls add -b "127.0.0.1:$port" "${principals[@]}" --operation Read \
                "${topics[@]}" --resource-pattern-type "$pattern" >/dev/null
        done
        "$G" acls add -b "127.0.0.1:$port" --allow-principal User:ANONYMOUS --operation All \
            --topic bench --resource-pattern-type prefixed >/dev/null
    fi
    out=$("$L" produce --bootstrap-server "127.0.0.1:$port" --topic bench \
        --num-records 1000000 --record-size 1024 2>&1 | tail -1)
    "$L" consume --bootstrap-server "127.0.0.1:$port" --topic bench --num-records 1000000 \
        >/dev/null 2>&1 || { echo "$mode: the records did not all come back" >&2; exit 1; }
    kill "$pid"; wait "$pid" 2>/dev/null || true
    rm -rf "$dir" "$dir.log"
    grep -o '[0-9]* records/s' <<<"$out" | grep -o '[0-9]*'
}

median() { sort -n | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

off=() on=()
for r in $(seq 1 "$RUNS"); do
    port=$((29000 + RANDOM % 900))
    if (( r % 2 )); then
        off+=("$(run off "$port")"); on+=("$(run on $((port + 1)))")
    else
        on+=("$(run on "$port")"); off+=("$(run off $((port + 1)))")
    fi
    echo "round $r: off ${off[-1]} records/s, on ${on[-1]} records/s"
done
m_off=$(printf '%s\n' "${off[@]}" | median)
m_on=$(printf '%s\n' "${on[@]}" | median)
awk -v a="$m_off" -v b="$m_on" 'BEGIN { printf "median off %.0f, on %.0f records/s: on/off %.2f\n", a, b, b / a }'
