#!/usr/bin/env python3
"""A transactional producer (confluent-kafka) that runs transactions until told to stop, logging
each one's outcome as soon as the client knows it, for the exactly-once fault tests.

usage:
  txn_loop.py BOOTSTRAP TOPIC TXN_ID PROGRESS --partitions P --per-txn K --seed S [--seconds N]

Transaction i (from 1) writes K records "t<i:06>-<j:03>" (j = 0..K-1), record j to partition
j % P, then commits, or one time in four (seeded) flushes them to the log and aborts. PROGRESS gets a line per transaction
once its outcome is known:
  committed i   commit_transaction() returned
  aborted i     abort_transaction() returned (the plan, or after an abortable error)
  unknown i     a fatal error, or an abort that failed: the producer is replaced by a new one with
                the same transactional id, whose init_transactions() completes or aborts what the
                old one left, so the transaction is either wholly there or wholly not
Retriable errors from a commit or an abort are retried (librdkafka's contract). Stops on SIGTERM
or after --seconds, at a transaction boundary, and prints {"committed": n, "aborted": n,
"unknown": n, "errors": [the first few errors seen]}.
"""
import argparse
import random
import time

from confluent_kafka import KafkaException, Producer

from common import StopOnTerm, emit

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("bootstrap")
    ap.add_argument("topic")
    ap.add_argument("txn_id")
    ap.add_argument("progress")
    ap.add_argument("--partitions", type=int, default=2)
    ap.add_argument("--per-txn", type=int, default=20)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--seconds", type=float, default=600)
    args = ap.parse_args()
    stop = StopOnTerm()
    rng = random.Random(args.seed)
    deadline = time.monotonic() + args.seconds
    counts = {"committed": 0, "aborted": 0, "unknown": 0}
    errors = []
    log = open(args.progress, "a", buffering=1)

    def note(what, i):
        counts[what] += 1
        log.write(f"{what} {i}\n")

    def seen(e):
        if len(errors) < 20:
            errors.append(str(e))

    def fresh():
        # A new producer under the same id: init_transactions() fences the old one and completes
        # or aborts its transaction. Retried until it works (the coordinator may be moving), or
        # until the loop is told to stop (None).
        while not stop.requested and time.monotonic() < deadline:
            p = Producer({
                "bootstrap.servers": args.bootstrap,
                "transactional.id": args.txn_id,
                "transaction.timeout.ms": 30000,
                "message.timeout.ms": 30000,
                "linger.ms": 5,
            })
            try:
                p.init_transactions(30)
                return p
            except KafkaException as e:
                seen(e)
                time.sleep(0.5)
        return None

    def finish(p, commit):
        # commit_transaction()/abort_transaction(), retried while the error is retriable.
        until = time.monotonic() + 120
        while True:
            try:
                if commit:
                    p.commit_transaction(30)
                else:
                    p.abort_transaction(30)
                return
            except KafkaException as e:
                err = e.args[0]
                if err.retriable() and time.monotonic() < until:
                    seen(e)
                    time.sleep(0.2)
                    continue
                raise

    p = fresh()
    i = 0
    while p is not None and not stop.requested and time.monotonic() < deadline:
        i += 1
        commit = rng.random() >= 0.25
        try:
            p.begin_transaction()
            for j in range(args.per_txn):
                while True:
                    try:
                        p.produce(args.topic, partition=j % args.partitions,
                                  value=f"t{i:06d}-{j:03d}")
                        break
                    except BufferError:
                        p.poll(0.1)
                p.poll(0)
            if not commit:
                # Sent first, so the abort has records in the log to mark (librdkafka would
                # otherwise drop the ones still queued).
                p.flush(30)
            finish(p, commit)
            note("committed" if commit else "aborted", i)
        except KafkaException as e:
            err = e.args[0]
            seen(e)
            if err.txn_requires_abort():
                try:
                    finish(p, False)
                    note("aborted", i)
                    continue
                except KafkaException as e2:
                    seen(e2)
            note("unknown", i)
            p = fresh()
    emit({**counts, "errors": errors})


if __name__ == "__main__":
    main()
