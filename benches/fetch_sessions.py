#!/usr/bin/env python3
"""Follower fetch sessions (KIP-227) on a 3-node cluster with many partitions: what replication
costs with and without them.

    cargo build --release -p gregor-cli -p gregor-rdkafka-load
    python3 benches/fetch_sessions.py [--partitions 300] [--records 20000] [--runs 3]
                                      [--baseline OTHER_GREGOR]

Each run starts `gregor cluster up --nodes 3` (release build, fresh temporary directory) twice,
once as is and once with `max.incremental.fetch.session.cache.slots=0` (no node keeps a
session, so every follower fetch is a full one naming every partition it follows from that
leader, as before sessions), the order alternating per run. On each it creates a topic of
PARTITIONS partitions with replication factor 3, then sends RECORDS records of 100 bytes to its
partition 0 with librdkafka (`benches/rdkafka-load`, acks=all, linger.ms=0, one record per
batch: a produce request per record, each of which wakes the followers' fetches of that leader), and reports records/s
and the CPU time of the three nodes per 1,000 records (user + system, from /proc, over the
load only). The load touches one partition, so everything the other partitions cost is the
fetch rounds' bookkeeping, which a session keeps out of the requests and answers.

With --baseline, the other side is another gregor binary (a copy of an earlier release build),
sessions on in both: an A/B of two builds on the same load.
"""

import argparse
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
GREGOR = os.path.join(ROOT, "target", "release", "gregor")
LOAD = os.path.join(ROOT, "target", "release", "rdkafka-load")
TICK = os.sysconf("SC_CLK_TCK")


def free_port_block(n):
    """A base port with n * 2 consecutive free ports after it (client, then controller)."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            base = s.getsockname()[1]
        if base + 2 * n >= 65535:
            continue
        ok = True
        for p in range(base, base + 2 * n):
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", p))
                except OSError:
                    ok = False
                    break
        if ok:
            return base
    sys.exit("no block of free ports")


def descendants(pid):
    """pid and every process below it."""
    out = [pid]
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except OSError:
            continue
        if ppid == pid:
            out.extend(descendants(int(entry)))
    return out


def cpu_seconds(pids):
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        except OSError:
            pass
    return total / TICK


def run_once(gregor, partitions, records, sessions):
    work = tempfile.mkdtemp(prefix="gregor-fetch-sessions.")
    base = free_port_block(3)
    bootstrap = f"127.0.0.1:{base}"
    args = [gregor, "cluster", "up", "--nodes", "3", "--data-dir", os.path.join(work, "c"),
            "--base-port", str(base)]
    if not sessions:
        args += ["--set", "max.incremental.fetch.session.cache.slots=0"]
    log = open(os.path.join(work, "cluster.log"), "w")
    up = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            r = subprocess.run([gregor, "topics", "create", "--bootstrap-server", bootstrap,
                                "--partitions", str(partitions), "--replication-factor", "3",
                                "t"], capture_output=True, text=True)
            if r.returncode == 0:
                break
            if time.monotonic() > deadline:
                sys.exit(f"cannot create the topic: {r.stderr}")
            time.sleep(1)
        time.sleep(5)  # every ISR full, the fetchers settled
        pids = descendants(up.pid)
        before = cpu_seconds(pids)
        t = time.monotonic()
        r = subprocess.run([LOAD, "produce", "--bootstrap-server", bootstrap, "--topic", "t",
                            "--num-records", str(records), "--record-size", "100",
                            "--acks", "all", "--linger-ms", "0",
                            "--batch-num-messages", "1"],
                           capture_output=True, text=True)
        elapsed = time.monotonic() - t
        if r.returncode != 0:
            sys.exit(f"load failed: {r.stderr}")
        cpu = cpu_seconds(pids) - before
        m = re.search(r"([\d.]+) records/s", r.stdout + r.stderr)
        rate = float(m.group(1)) if m else records / elapsed
        return rate, cpu * 1000 / records
    finally:
        os.killpg(up.pid, signal.SIGTERM)
        try:
            up.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(up.pid, signal.SIGKILL)
        log.close()
        shutil.rmtree(work, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--partitions", type=int, default=300)
    ap.add_argument("--records", type=int, default=20_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--baseline", metavar="GREGOR",
                    help="instead of this build without sessions, another gregor binary with "
                         "them (an A/B of two builds)")
    a = ap.parse_args()
    for binary in [GREGOR, LOAD] + ([a.baseline] if a.baseline else []):
        if not os.access(binary, os.X_OK):
            sys.exit(f"{binary} missing: cargo build --release -p gregor-cli -p gregor-rdkafka-load")
    # (label, binary, sessions): this build with sessions against the other side.
    sides = [("this build", GREGOR, True),
             ("baseline", a.baseline, True) if a.baseline else ("no sessions", GREGOR, False)]
    results = {label: [] for label, _, _ in sides}
    for run in range(a.runs):
        order = sides if run % 2 == 0 else sides[::-1]
        for label, binary, sessions in order:
            rate, cpu = run_once(binary, a.partitions, a.records, sessions)
            results[label].append((rate, cpu))
            print(f"run {run + 1} {label:>11}: {rate:10.0f} records/s, "
                  f"{cpu:.3f} CPU s per 1000 records", flush=True)
    print(f"\n{a.partitions} partitions, RF=3, {a.records} records to one partition, "
          f"medians of {a.runs} runs:")
    for label, _, _ in sides:
        rates = [r for r, _ in results[label]]
        cpus = [c for _, c in results[label]]
        print(f"  {label:>11}: {statistics.median(rates):10.0f} records/s, "
              f"{statistics.median(cpus):.3f} CPU s per 1000 records")
    (first, _, _), (second, _, _) = sides
    ratio = statistics.median([r for r, _ in results[first]]) / statistics.median(
        [r for r, _ in results[second]])
    print(f"  records/s, {first} / {second}: {ratio:.2f}")


if __name__ == "__main__":
    main()
