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

# eos_load_classpath WORKDIR TOOLBOX: compiles benches/java/EosLoad.java against the toolbox's
# Kafka jars into WORKDIR/eos-load and prints the classpath that runs it (`java -cp CP
# EosLoad ...`); prints nothing, with the reason on stderr, when javac or the jars are missing.
# Compiled once per bench run: Java's single-file source launcher compiles at every start and
# now and then fails there.
eos_load_classpath() {
    local dir="$1/eos-load" toolbox="$2" root
    root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
    if ! command -v "${JAVAC:-javac}" >/dev/null 2>&1; then
        echo "no javac: the Java client's loads are skipped" >&2
        return 0
    fi
    if ! compgen -G "$toolbox/jars/kafka-clients-*.jar" >/dev/null; then
        echo "no Kafka jars in $toolbox (scripts/toolbox installs them): the Java client's loads are skipped" >&2
        return 0
    fi
    mkdir -p "$dir"
    if ! "${JAVAC:-javac}" -nowarn -cp "$toolbox/jars/*" -d "$dir" "$root/benches/java/EosLoad.java" >&2; then
        echo "EosLoad.java does not compile: the Java client's loads are skipped" >&2
        return 0
    fi
    echo "$dir:$toolbox/jars/*"
}
