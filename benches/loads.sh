# shellcheck shell=bash
# Sourced by benches/run.sh and benches/peer.sh: helpers for their LOADS tables
# ("name|records|record size|arguments" per entry).

# keep_loads REGEX: keeps the entries of LOADS whose names match REGEX (grep -E); with an
# empty REGEX, all of them.
keep_loads() {
    [[ -n "$1" ]] || return 0
    local kept=() load
    for load in "${LOADS[@]}"; do
        if grep -Eq -- "$1" <<<"${load%%|*}"; then
            kept+=("$load")
        fi
    done
    LOADS=("${kept[@]}")
}
