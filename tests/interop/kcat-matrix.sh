#!/usr/bin/env bash
# The client matrix's driver for kcat (on the librdkafka it was packaged with). Same arguments
# and JSON line as every matrix driver (tests/e2e/python/matrix_client.py describes them):
#
#   kcat-matrix.sh STEP BOOTSTRAP TOPIC GROUP N [KEY=VALUE ...] [--OPTION=VALUE ...]
#
# kcat has no admin calls but its metadata listing (-L): `create` answers "unsupported", and
# `describe` lists topics, the topic and the brokers with -L and answers "unsupported" for groups.
# Its group consumer (-G) commits what it printed when it exits after N records (-c). The
# --OPTION=VALUE connection settings are librdkafka's own: every kcat run gets them with -X.
set -uo pipefail

step="$1" bootstrap="$2" topic="$3" group="$4" n="$5"
shift 5
props=() conn=()
for kv in "$@"; do
    case "$kv" in
    --*) conn+=(-X "${kv#--}") ;;
    *) props+=(-X "$kv") ;;
    esac
done
version="$(kcat -V 2>&1 | sed -n 's/.*kcat - .* version \([^ ]*\).*/\1/p;s/^Version \([^ ]*\).*/\1/p' | head -1)"
lib="$(kcat -V 2>&1 | sed -n 's/.*librdkafka \([0-9][^ ]*\).*/\1/p' | head -1)"
version="${version:-unknown} (librdkafka ${lib:-unknown})"
err="$(mktemp)"
trap 'rm -f "$err"' EXIT

json_str() { # a JSON string of $1 (quotes, backslashes and control characters escaped)
    local s="${1//\\/\\\\}"
    s="${s//\"/\\\"}"
    s="$(printf '%s' "$s" | tr '\n\t\r' '   ')"
    printf '"%s"' "$s"
}
fail() { printf '{"ok":false,"version":%s,"error":%s}\n' "$(json_str "$version")" "$(json_str "$1")"; exit 0; }

case "$step" in
create)
    printf '{"ok":false,"version":%s,"unsupported":"kcat has no CreateTopics"}\n' "$(json_str "$version")"
    ;;
produce)
    if ! for ((i = 0; i < n; i++)); do printf 'k%d:v%d\n' "$i" "$i"; done |
        timeout 60 kcat -b "$bootstrap" "${conn[@]}" -P -t "$topic" -K: "${props[@]}" 2>"$err"; then
        fail "kcat -P: $(tail -3 "$err")"
    fi
    printf '{"ok":true,"version":%s,"produced":%d}\n' "$(json_str "$version")" "$n"
    ;;
consume)
    keys="$(timeout 60 kcat -b "$bootstrap" "${conn[@]}" -G "$group" -X auto.offset.reset=earliest \
        -c "$n" -f '%k\n' -q "$topic" 2>"$err")"
    status=$?
    list="$(printf '%s\n' "$keys" | sed '/^$/d;s/.*/"&"/' | paste -sd, -)"
    got="$(printf '%s\n' "$keys" | sed '/^$/d' | wc -l)"
    if [ "$status" -ne 0 ] || [ "$got" -lt "$n" ]; then
        printf '{"ok":false,"version":%s,"keys":[%s],"error":%s}\n' "$(json_str "$version")" "$list" \
            "$(json_str "consumed $got of $n records (exit $status): $(tail -3 "$err")")"
        exit 0
    fi
    printf '{"ok":true,"version":%s,"keys":[%s]}\n' "$(json_str "$version")" "$list"
    ;;
describe)
    meta="$(timeout 60 kcat -b "$bootstrap" "${conn[@]}" -L -J 2>"$err")" || fail "kcat -L: $(tail -3 "$err")"
    one="$(timeout 60 kcat -b "$bootstrap" "${conn[@]}" -L -J -t "$topic" 2>"$err")" || fail "kcat -L -t: $(tail -3 "$err")"
    ok() { if "$@"; then printf '"ok"'; else printf '"check failed"'; fi; }
    listed() { grep -q "\"topic\":\"$topic\"" <<<"$meta"; }
    described() { grep -q '"partition":0' <<<"$one" && ! grep -q '"error"' <<<"$one"; }
    brokers() { grep -q '"brokers":\[{"id"' <<<"$meta"; }
    steps="\"list topics\":$(ok listed),\"describe topic\":$(ok described),\"describe cluster\":$(ok brokers)"
    steps="$steps,\"list groups\":\"unsupported\",\"describe group\":\"unsupported\""
    if listed && described && brokers; then
        printf '{"ok":true,"version":%s,"steps":{%s}}\n' "$(json_str "$version")" "$steps"
    else
        printf '{"ok":false,"version":%s,"steps":{%s},"error":"kcat -L: a check failed"}\n' \
            "$(json_str "$version")" "$steps"
    fi
    ;;
*) fail "unknown step $step" ;;
esac
