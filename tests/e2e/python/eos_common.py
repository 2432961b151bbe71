"""What the two exactly-once drivers, kafka_python_eos.py and aiokafka_eos.py, share: their
command line (one for both, described in kafka_python_eos.py), the clients' settings, the
consume-transform-produce loop (over either client, through a small adapter), the log of the
client's warnings, the progress files the tests watch, and the fencing scenario's report.
"""
import argparse
import asyncio
import faulthandler
import logging
import os
import sys
import time

from common import decode, emit, fail

# The clients' request timeout.
TIMEOUT_MS = 30000


class SeenLog(logging.Handler):
    """The client's warnings and errors, each distinct one once with a count (ctp prints them,
    so a run against gregor and one against Kafka can be compared by eye)."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.seen = {}

    def emit(self, record):
        msg = f"{record.levelname} {record.name}: {record.getMessage()}"[:160]
        if msg in self.seen or len(self.seen) < 30:
            self.seen[msg] = self.seen.get(msg, 0) + 1


SEEN = SeenLog()


def producer_conf(args, txn_id, extra):
    """The idempotent producer's settings (both clients name them alike); transactional with
    `txn_id`. `extra` overrides."""
    conf = dict(
        bootstrap_servers=args.bootstrap,
        enable_idempotence=True,
        acks="all",
        linger_ms=5,
        request_timeout_ms=TIMEOUT_MS,
        key_serializer=lambda k: None if k is None else k.encode(),
        value_serializer=lambda v: v.encode(),
    )
    if txn_id is not None:
        conf["transactional_id"] = txn_id
        conf["transaction_timeout_ms"] = args.txn_timeout_ms
    conf.update(extra)
    return conf


def consumer_conf(args, isolation, group):
    """The consumer's settings: no auto-commit, from the earliest offset, at `isolation`."""
    return dict(
        bootstrap_servers=args.bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level=isolation,
        request_timeout_ms=TIMEOUT_MS,
        fetch_max_wait_ms=100,
    )


async def ctp_loop(args, txn):
    """The ctp command's loop (see kafka_python_eos.py) from args.topic partition 0 to
    args.output; `txn` adapts the client: begin(), poll(max_records) -> {tp: [records]},
    send(key, value), flush(), send_offsets(next offset), commit(), abort(), committed() -> the
    group's offset or None (all awaited) and seek(offset). Returns the transactions' log."""
    done, t, log = 0, 0, []
    deadline = time.time() + 90
    while done < args.count:
        if time.time() > deadline:
            fail(f"ctp: only {done} of {args.count} committed: {log}")
        t += 1
        commit = args.plan[(t - 1) % len(args.plan)] == "C"
        await txn.begin()
        n, want, first, last = 0, min(args.per_txn, args.count - done), None, None
        until = time.time() + 30
        while n < want and time.time() < until:
            batch = await txn.poll(want - n)
            for records in batch.values():
                for m in records:
                    await txn.send(decode(m.key), f"t{t}|{decode(m.value)}")
                    first = m.offset if first is None else first
                    last = m.offset
                    n += 1
        if n < want:
            fail(f"ctp: transaction {t} read {n} of {want} input records")
        # Flushed first, so an aborted transaction's records are in the log too (an abort
        # drops what was not sent yet).
        await txn.flush()
        if t == args.pause_in:
            # The transaction stays open, its records in the log, while the test kills and
            # restarts the broker; it goes on once the broker is back. (A transactional request
            # made while the broker is down can be lost by kafka-python 3.0.12: one whose
            # coordinator connection fails at once is neither sent nor retried, and its caller
            # waits for ever.)
            await half_then_wait_for_go(args.progress_file)
        await txn.send_offsets(last + 1)
        if commit:
            await txn.commit()
            done += n
            # The offset is the group's once the commit's marker is in __consumer_offsets.
            until = time.time() + 10
            while await txn.committed() != last + 1 and time.time() < until:
                await asyncio.sleep(0.05)
        else:
            await txn.abort()
        after = await txn.committed()
        log.append([t, "C" if commit else "A", first, n, after])
        if args.progress_file:
            write_progress(args.progress_file, t)
        if not commit:
            txn.seek(after if after is not None else 0)
    return log


def write_progress(path, text):
    """Replaces the progress file `path` (which a test polls) with `text`."""
    with open(path, "w") as f:
        f.write(str(text))


async def half_then_wait_for_go(progress):
    """survive's and ctp's pause: "half" in the progress file, then a wait (at most 120 s) for
    the test's go-ahead, the file `progress`.go."""
    write_progress(progress, "half")
    go = progress + ".go"
    deadline = time.time() + 120
    while not os.path.exists(go):
        if time.time() > deadline:
            fail("never told to go on after the pause")
        await asyncio.sleep(0.05)


def fence_report(send_errors, first_commit, first_state_error, second_commit, fenced):
    """Prints the fencing scenario's answer; fails when a fenced producer's commit succeeded.
    `fenced` is the name of the client's fenced error."""
    if first_commit is None or second_commit is None:
        fail(f"a fenced producer's commit succeeded: {first_commit} {second_commit}")
    emit({"fenced": (len(send_errors) == 4 and all(e == fenced for e in send_errors)
                     and second_commit[0] == fenced),
          "send_errors": send_errors, "first_commit": first_commit,
          "first_state_error": first_state_error, "second_commit": second_commit})


def ends_report(tps, hw, lso):
    """The ends command's answer from the two consumers' end offsets of `tps`."""
    emit({str(tp.partition): {"hw": hw[tp], "lso": lso[tp]} for tp in tps})


def main(commands, kafka_error, call):
    """Parses the command line, sets up logging and runs `call(commands[command], args)`; a
    `kafka_error` escaping it fails the run with the command's name. SIGABRT (a test's
    timeout) prints every thread's stack to stderr first."""
    faulthandler.enable(all_threads=True)
    ap = argparse.ArgumentParser()
    ap.add_argument("bootstrap")
    ap.add_argument("command", choices=list(commands))
    ap.add_argument("topic")
    ap.add_argument("rest", nargs="*")
    ap.add_argument("--count", type=int, default=10)
    ap.add_argument("--per-txn", type=int, default=10)
    ap.add_argument("--plan", default="CA")
    ap.add_argument("--output")
    ap.add_argument("--group")
    ap.add_argument("--partition", type=int, default=0)
    ap.add_argument("--prefix", default="c")
    ap.add_argument("--isolation", default="read_uncommitted")
    ap.add_argument("--subscribe", action="store_true")
    ap.add_argument("--pause-in", type=int, default=0)
    ap.add_argument("--progress-file")
    ap.add_argument("--txn-timeout-ms", type=int, default=60000)
    args = ap.parse_args()
    rest = list(args.rest)
    if args.command == "idempotent":
        args.progress = rest[0]
    elif args.command in ("ctp", "fence", "init", "commit", "outlast"):
        args.txn_id = rest[0]
    elif args.command in ("open", "survive"):
        args.txn_id, args.progress = rest[0], rest[1]
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    logging.getLogger().handlers[0].setLevel(logging.ERROR)
    logging.getLogger().addHandler(SEEN)
    try:
        call(commands[args.command], args)
    except kafka_error as e:
        fail(f"{args.command}: {e!r}")
