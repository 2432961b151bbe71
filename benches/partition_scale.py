#!/usr/bin/env python3
"""Partition scale check: how many descriptors and how much memory an idle broker needs per
partition, and how long a restart after a clean shutdown takes.

    cargo build --release -p gregor-cli
    python3 benches/partition_scale.py [--topics 10] [--partitions 1000] [--restarts 3]

Starts `target/release/gregor server` on an ephemeral port with a fresh temporary data
directory, creates TOPICS topics of PARTITIONS partitions each with `gregor topics create`,
reads VmRSS and the number of open descriptors from /proc after the first topic and after the
last one (idle, after a short settle), then stops the server with SIGTERM and times RESTARTS
restarts until the server logs `listening on`.
"""

import argparse
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BINARY = os.path.join(ROOT, "target", "release", "gregor")


class Server:
    """A `gregor server` process; `addr` once it logged `listening on`."""

    live = []

    def __init__(self, data_dir):
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            [BINARY, "server", "--listen", "127.0.0.1:0", "--data-dir", data_dir],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        Server.live.append(self)
        self.addr = None
        self.ready_after = None
        self.ready = threading.Event()
        threading.Thread(target=self._read_stderr, daemon=True).start()
        if not self.ready.wait(120):
            self.proc.kill()
            sys.exit("server did not log `listening on`")

    def _read_stderr(self):
        for line in self.proc.stderr:
            m = re.search(r"listening on (\S+)", line)
            if m and not self.ready.is_set():
                self.ready_after = time.monotonic() - self.started
                self.addr = m.group(1)
                self.ready.set()

    def status(self):
        """(VmRSS in MiB, open descriptors)."""
        with open(f"/proc/{self.proc.pid}/status") as f:
            rss_kib = int(re.search(r"VmRSS:\s+(\d+) kB", f.read()).group(1))
        fds = len(os.listdir(f"/proc/{self.proc.pid}/fd"))
        return rss_kib / 1024, fds

    def stop(self):
        """SIGTERM, wait; returns the seconds the shutdown took."""
        t = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(300)
        if code != 0:
            sys.exit(f"server exited with {code}")
        return time.monotonic() - t


def create_topic(addr, name, partitions):
    subprocess.run(
        [BINARY, "topics", "create", "--bootstrap-server", addr, "--partitions", str(partitions),
         name],
        check=True,
        stdout=subprocess.DEVNULL,
    )


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--topics", type=int, default=10)
    ap.add_argument("--partitions", type=int, default=1000)
    ap.add_argument("--restarts", type=int, default=3)
    ap.add_argument("--settle", type=float, default=3.0, help="seconds idle before reading RSS")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="gregor-scale-") as data_dir:
        try:
            run(args, data_dir)
        finally:
            for server in Server.live:
                if server.proc.poll() is None:
                    server.proc.kill()
                    server.proc.wait()


def run(args, data_dir):
    server = Server(data_dir)
    for i in range(args.topics):
        t = time.monotonic()
        create_topic(server.addr, f"scale-{i}", args.partitions)
        total = (i + 1) * args.partitions
        print(f"created scale-{i}: {total} partitions ({time.monotonic() - t:.2f} s)", flush=True)
        if i == 0:
            time.sleep(args.settle)
            rss, fds = server.status()
            print(f"idle, {total} partitions: VmRSS {rss:.1f} MiB, {fds} descriptors", flush=True)
    time.sleep(args.settle)
    rss, fds = server.status()
    total = args.topics * args.partitions
    print(f"idle, {total} partitions: VmRSS {rss:.1f} MiB, {fds} descriptors")
    print(f"clean shutdown: {server.stop():.2f} s", flush=True)

    times = []
    for _ in range(args.restarts):
        server = Server(data_dir)
        times.append(server.ready_after)
        time.sleep(args.settle)
        rss, fds = server.status()
        print(f"restart: listening after {server.ready_after:.2f} s; idle VmRSS {rss:.1f} MiB,"
              f" {fds} descriptors; shutdown {server.stop():.2f} s", flush=True)
    print(f"restart, median of {len(times)}: {statistics.median(times):.2f} s")


if __name__ == "__main__":
    main()
