#!/usr/bin/env python3
"""Exactly-once with kafka-python (the idempotent producer and transactions) for the gregor e2e
tests; aiokafka_eos.py has the same command line for aiokafka.

usage:
  kafka_python_eos.py BOOTSTRAP idempotent TOPIC PROGRESS --count N
  kafka_python_eos.py BOOTSTRAP ctp INPUT TXN_ID --output OUTPUT --group GROUP --count N
                      [--per-txn K] [--plan CA] [--subscribe] [--hold-ms H]
                      [--progress-file FILE]
  kafka_python_eos.py BOOTSTRAP fence TOPIC TXN_ID
  kafka_python_eos.py BOOTSTRAP open TOPIC TXN_ID PROGRESS --partition P --count N
                      [--txn-timeout-ms T]
  kafka_python_eos.py BOOTSTRAP survive TOPIC TXN_ID PROGRESS --count N
  kafka_python_eos.py BOOTSTRAP outlast TOPIC TXN_ID --txn-timeout-ms T
  kafka_python_eos.py BOOTSTRAP init TOPIC TXN_ID
  kafka_python_eos.py BOOTSTRAP commit TOPIC TXN_ID --count N [--prefix P]
  kafka_python_eos.py BOOTSTRAP consume TOPIC --isolation read_committed|read_uncommitted
  kafka_python_eos.py BOOTSTRAP committed TOPIC --group GROUP
  kafka_python_eos.py BOOTSTRAP ends TOPIC

idempotent: N records (value_of(i, 40)) to partition 0 with enable_idempotence=True; the
  number acknowledged goes to PROGRESS every 50, so the test can kill -9 the broker mid-stream.
  Prints {"acked", "failed", "errors"}.
ctp: consume-transform-produce from INPUT partition 0 to OUTPUT (keyed), K input records per
  transaction, the consumer's position sent in the transaction (send_offsets_to_transaction:
  AddOffsetsToTxn + TxnOffsetCommit; with --subscribe the consumer joins GROUP and the offsets
  go with its group metadata, else it assigns the partition). The plan's letters, cycled,
  say whether transaction t (from 1) commits (C) or aborts (A); after an abort the consumer
  seeks back to the group's committed offset and the records are transformed again in the
  next transaction. Output value
  "t<t>|<input value>". Prints {"transactions": [[t, "C"|"A", first input offset, records,
  group offset after]], "committed_offset": the group's offset read by the consumer at the end,
  "member": whether the offsets went with a generation (a member of the group)}. --hold-ms
  keeps each transaction open H ms after its records are flushed; --progress-file gets the
  number of transactions finished.
fence: a first producer opens a transaction and writes "before" records to partition 0; a
  second producer with the same id initializes (which aborts the first one's transaction) and
  writes "second" records; the first then sends "after" records to partitions 0 (already in
  its transaction: a Produce) and 1 (AddPartitionsToTxn), and commits. A third producer
  initializes, and the second (which sent nothing since) commits: EndTxn with the old epoch.
  The third commits "third" records. Prints {"fenced": every "after" send and the second's
  commit failed with the client's fenced error, "send_errors", "first_commit",
  "first_state_error", "second_commit": [exception type, repr]}.
open: init, begin, N records "open<i>" to partition P, flushed (in the log, transaction open),
  then "open" in PROGRESS and sleep until killed.
survive: init, begin, N records "s<i>" over partitions 0 and 1, flushed, then "half" in
  PROGRESS; once PROGRESS.go exists (the test killed and restarted the broker meanwhile), N
  more records in the same transaction, and commit. Prints {"committed": 2N}.
outlast: a transaction that outlasts its timeout, its producer alive: 3 records to partition
  0, flushed, a sleep of T + 4 s (the coordinator aborts it), 3 more, a second's pause (the
  client's own recovery), then commit, abort, and one more transaction. Prints each step's
  outcome ("ok" or the exception's class).
init: init_transactions only (completes or aborts what an earlier producer with the id left).
commit: init, begin, N records "<prefix><i>" (round robin over the partitions), commit.
consume: every data record from the beginning to the end offset (the LSO for read_committed):
  {"records": [[partition, offset, value], ...]}.
committed: {"offset": the group's committed offset of TOPIC partition 0, or null}.
ends: {"<partition>": {"hw": high watermark, "lso": last stable offset}}, from ListOffsets as
  a read_uncommitted and a read_committed consumer send it.
"""
import argparse
import logging
import os
import sys
import time

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.structs import OffsetAndMetadata
import kafka.errors as Errors

from common import decode, emit, fail, value_of

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


def producer(args, txn_id=None, **extra):
    conf = dict(
        bootstrap_servers=args.bootstrap,
        enable_idempotence=True,
        acks="all",
        linger_ms=5,
        request_timeout_ms=TIMEOUT_MS,
        max_block_ms=60000,
        key_serializer=lambda k: None if k is None else k.encode(),
        value_serializer=lambda v: v.encode(),
    )
    if txn_id is not None:
        conf["transactional_id"] = txn_id
        conf["transaction_timeout_ms"] = args.txn_timeout_ms
    conf.update(extra)
    return KafkaProducer(**conf)


def consumer(args, isolation, group=None):
    return KafkaConsumer(
        bootstrap_servers=args.bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level=isolation,
        request_timeout_ms=TIMEOUT_MS,
        fetch_max_wait_ms=100,
    )


def partitions_of(c, topic):
    deadline = time.time() + 30
    while time.time() < deadline:
        parts = c.partitions_for_topic(topic)
        if parts:
            return sorted(parts)
        time.sleep(0.2)
    fail(f"no partitions for {topic}")


def idempotent(args):
    p = producer(args, delivery_timeout_ms=120000, reconnect_backoff_max_ms=500)
    counts = {"acked": 0, "failed": 0}
    errors = []

    def on_ok(_md):
        counts["acked"] += 1
        if counts["acked"] % 50 == 0 or counts["acked"] == args.count:
            with open(args.progress, "w") as f:
                f.write(str(counts["acked"]))

    def on_err(e):
        counts["failed"] += 1
        if len(errors) < 10:
            errors.append(repr(e))

    for i in range(args.count):
        fut = p.send(args.topic, value=value_of(i, 40), partition=0)
        fut.add_callback(on_ok)
        fut.add_errback(on_err)
        if i % 100 == 99:
            # Pace the stream so the test's kill lands in the middle of it.
            time.sleep(0.02)
    p.flush(timeout=150)
    p.close(timeout=5)
    emit({"acked": counts["acked"], "failed": counts["failed"], "errors": errors})


def committed_offset(c, tp):
    got = c.committed(tp)
    return None if got is None else got


def ctp(args):
    tp = TopicPartition(args.topic, 0)
    c = consumer(args, "read_committed", args.group)
    if args.subscribe:
        # A member of the group: the offsets go with its generation and member id (KIP-447).
        c.subscribe([args.topic])
    else:
        c.assign([tp])
    p = producer(args, args.txn_id)
    p.init_transactions()
    done, t, log = 0, 0, []
    deadline = time.time() + 90
    while done < args.count:
        if time.time() > deadline:
            fail(f"ctp: only {done} of {args.count} committed: {log}")
        t += 1
        commit = args.plan[(t - 1) % len(args.plan)] == "C"
        p.begin_transaction()
        n, want, first, last = 0, min(args.per_txn, args.count - done), None, None
        until = time.time() + 30
        while n < want and time.time() < until:
            batch = c.poll(timeout_ms=200, max_records=want - n)
            for records in batch.values():
                for m in records:
                    p.send(args.output, key=decode(m.key), value=f"t{t}|{decode(m.value)}")
                    first = m.offset if first is None else first
                    last = m.offset
                    n += 1
        if n < want:
            fail(f"ctp: transaction {t} read {n} of {want} input records")
        # Flushed first, so an aborted transaction's records are in the log too (an abort
        # drops what was not sent yet).
        p.flush(timeout=30)
        # --hold-ms: the transaction stays open a while, so that a test's kill lands in one.
        time.sleep(args.hold_ms / 1000)
        p.send_offsets_to_transaction({tp: OffsetAndMetadata(last + 1, "", -1)},
                                      c.group_metadata())
        if commit:
            p.commit_transaction()
            done += n
            # The offset is the group's once the commit's marker is in __consumer_offsets.
            until = time.time() + 10
            while committed_offset(c, tp) != last + 1 and time.time() < until:
                time.sleep(0.05)
        else:
            p.abort_transaction()
        after = committed_offset(c, tp)
        log.append([t, "C" if commit else "A", first, n, after])
        if args.progress_file:
            with open(args.progress_file, "w") as f:
                f.write(str(t))
        if not commit:
            c.seek(tp, after if after is not None else 0)
    generation = c.group_metadata().generation_id
    p.close(timeout=5)
    c.close()
    c = consumer(args, "read_committed", args.group)
    emit({"transactions": log, "committed_offset": committed_offset(c, tp),
          "member": generation >= 0, "client_log": SEEN.seen})
    c.close()


def fence(args):
    first = producer(args, args.txn_id)
    first.init_transactions()
    first.begin_transaction()
    for i in range(3):
        first.send(args.topic, value=f"before{i}", partition=0)
    first.flush(timeout=30)
    # The second producer's init_transactions fences the first and aborts its transaction.
    second = producer(args, args.txn_id)
    second.init_transactions()
    second.begin_transaction()
    for i in range(3):
        second.send(args.topic, value=f"second{i}", partition=0)
    second.flush(timeout=30)
    send_errors = []
    futures = [first.send(args.topic, value=f"after{i}", partition=i % 2) for i in range(4)]
    try:
        first.flush(timeout=30)
    except Exception as e:  # noqa: BLE001 - whatever the client raises is the finding
        send_errors.append(f"flush: {e!r}")
    for f in futures:
        if f.is_done and f.exception is not None:
            send_errors.append(type(f.exception).__name__)
    first_commit = try_commit(first)
    last = first._transaction_manager.last_error
    # A third producer fences the second, whose commit then goes to the coordinator (EndTxn).
    third = producer(args, args.txn_id)
    third.init_transactions()
    second_commit = try_commit(second)
    third.begin_transaction()
    for i in range(3):
        third.send(args.topic, value=f"third{i}", partition=i % 2)
    third.commit_transaction()
    for p in (first, second, third):
        p.close(timeout=1)
    if first_commit is None or second_commit is None:
        fail(f"a fenced producer's commit succeeded: {first_commit} {second_commit}")
    fenced = "ProducerFencedError"
    emit({"fenced": (len(send_errors) == 4 and all(e == fenced for e in send_errors)
                     and second_commit[0] == fenced),
          "send_errors": send_errors, "first_commit": first_commit,
          "first_state_error": None if last is None else type(last).__name__,
          "second_commit": second_commit})


def try_commit(p):
    """None when commit_transaction() succeeds, else [exception type, repr]."""
    try:
        p.commit_transaction()
    except Exception as e:  # noqa: BLE001
        return [type(e).__name__, repr(e)]
    return None


def open_txn(args):
    p = producer(args, args.txn_id)
    p.init_transactions()
    p.begin_transaction()
    for i in range(args.count):
        p.send(args.topic, value=f"open{i}", partition=args.partition)
    p.flush(timeout=30)
    with open(args.progress, "w") as f:
        f.write("open")
    time.sleep(3600)


def survive(args):
    p = producer(args, args.txn_id)
    p.init_transactions()
    p.begin_transaction()
    for i in range(args.count):
        p.send(args.topic, value=f"s{i}", partition=i % 2)
    p.flush(timeout=30)
    with open(args.progress, "w") as f:
        f.write("half")
    go = args.progress + ".go"
    deadline = time.time() + 120
    while not os.path.exists(go):
        if time.time() > deadline:
            fail("survive: never told to go on")
        time.sleep(0.05)
    for i in range(args.count, 2 * args.count):
        p.send(args.topic, value=f"s{i}", partition=i % 2)
    p.commit_transaction()
    p.close(timeout=5)
    emit({"committed": 2 * args.count})


def outlast(args):
    p = producer(args, args.txn_id)
    p.init_transactions()
    p.begin_transaction()
    for i in range(3):
        p.send(args.topic, value=f"early{i}", partition=0)
    p.flush(timeout=30)
    # Past the transaction's timeout: the coordinator aborts it under a bumped epoch.
    time.sleep(args.txn_timeout_ms / 1000 + 4)
    out = {}
    futures = [p.send(args.topic, value=f"late{i}", partition=0) for i in range(3)]
    try:
        p.flush(timeout=30)
    except Exception as e:  # noqa: BLE001
        out["flush"] = type(e).__name__
    out["late_sends"] = sorted({"ok" if f.exception is None else type(f.exception).__name__
                                for f in futures})
    # kafka-python answers a failed send with an epoch bump (KIP-360, InitProducerId with the
    # producer's id and epoch); a commit or abort while it is in flight fails on the client's
    # own state machine, so the steps below start once it had time to finish.
    time.sleep(1)
    for step, call in (("commit", p.commit_transaction), ("abort", p.abort_transaction)):
        try:
            call()
            out[step] = "ok"
        except Exception as e:  # noqa: BLE001
            out[step] = type(e).__name__
    try:
        p.begin_transaction()
        p.send(args.topic, value="next0", partition=0)
        p.commit_transaction()
        out["next"] = "ok"
    except Exception as e:  # noqa: BLE001
        out["next"] = type(e).__name__
    p.close(timeout=1)
    emit(out)


def init(args):
    p = producer(args, args.txn_id)
    p.init_transactions()
    pe = p._transaction_manager.producer_id_and_epoch
    p.close(timeout=5)
    emit({"producer_id": pe.producer_id, "epoch": pe.epoch})


def commit(args):
    p = producer(args, args.txn_id)
    p.init_transactions()
    p.begin_transaction()
    parts = p.partitions_for(args.topic)
    parts = sorted(parts)
    for i in range(args.count):
        p.send(args.topic, value=f"{args.prefix}{i}", partition=parts[i % len(parts)])
    p.commit_transaction()
    p.close(timeout=5)
    emit({"committed": args.count})


def consume(args):
    c = consumer(args, args.isolation)
    tps = [TopicPartition(args.topic, q) for q in partitions_of(c, args.topic)]
    c.assign(tps)
    c.seek_to_beginning(*tps)
    ends = c.end_offsets(tps)
    out = []
    deadline = time.time() + 30
    while any(c.position(tp) < ends[tp] for tp in tps):
        if time.time() > deadline:
            fail(f"consume: positions {[c.position(tp) for tp in tps]} short of ends {ends}")
        for records in c.poll(timeout_ms=200).values():
            for m in records:
                out.append([m.partition, m.offset, decode(m.value)])
    c.close()
    emit({"records": out})


def committed(args):
    c = consumer(args, "read_committed", args.group)
    emit({"offset": committed_offset(c, TopicPartition(args.topic, 0))})
    c.close()


def ends(args):
    out = {}
    by = {iso: consumer(args, iso) for iso in ("read_uncommitted", "read_committed")}
    tps = [TopicPartition(args.topic, q) for q in partitions_of(by["read_committed"], args.topic)]
    hw = by["read_uncommitted"].end_offsets(tps)
    lso = by["read_committed"].end_offsets(tps)
    for tp in tps:
        out[str(tp.partition)] = {"hw": hw[tp], "lso": lso[tp]}
    for c in by.values():
        c.close()
    emit(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("bootstrap")
    ap.add_argument("command", choices=["idempotent", "ctp", "fence", "open", "survive",
                                        "outlast", "init", "commit", "consume", "committed",
                                        "ends"])
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
    ap.add_argument("--hold-ms", type=int, default=0)
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
    commands = {"idempotent": idempotent, "ctp": ctp, "fence": fence, "open": open_txn,
                "survive": survive, "outlast": outlast, "init": init, "commit": commit,
                "consume": consume, "committed": committed, "ends": ends}
    try:
        commands[args.command](args)
    except Errors.KafkaError as e:
        fail(f"{args.command}: {e!r}")


if __name__ == "__main__":
    main()
