#!/usr/bin/env python3
"""Exactly-once with kafka-python (the idempotent producer and transactions) for the gregor e2e
tests; aiokafka_eos.py has the same command line for aiokafka (both parse it in eos_common.py,
which also holds the ctp command's loop).

usage:
  kafka_python_eos.py BOOTSTRAP idempotent TOPIC PROGRESS --count N
  kafka_python_eos.py BOOTSTRAP ctp INPUT TXN_ID --output OUTPUT --group GROUP --count N
                      [--per-txn K] [--plan CA] [--subscribe]
                      [--progress-file FILE [--pause-in T]]
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
  "member": whether the offsets went with a generation (a member of the group)}.
  --progress-file gets the number of transactions finished; with --pause-in, transaction T
  pauses once its records are flushed: "half" in FILE, and it goes on (offsets, then commit
  or abort) once FILE.go exists.
fence: a first producer opens a transaction and writes "before" records to partition 0; a
  second producer with the same id initializes (which aborts the first one's transaction) and
  writes "second" records; the first then sends "after" records to partitions 1
  (AddPartitionsToTxn) and 0 (already in its transaction), and commits. A third producer
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
import asyncio
import time

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.structs import OffsetAndMetadata
import kafka.errors as Errors

from common import decode, emit, fail, value_of
from eos_common import (SEEN, consumer_conf, ctp_loop, ends_report, fence_report,
                        half_then_wait_for_go, main, producer_conf, write_progress)


def producer(args, txn_id=None, **extra):
    return KafkaProducer(**producer_conf(args, txn_id, {"max_block_ms": 60000, **extra}))


def consumer(args, isolation, group=None):
    return KafkaConsumer(**consumer_conf(args, isolation, group))


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
            write_progress(args.progress, counts["acked"])

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


class CtpTxn:
    """eos_common.ctp_loop over kafka-python's consumer `c` and transactional producer `p`
    (blocking calls, so the loop's awaits wait for them)."""

    def __init__(self, args, c, p, tp):
        self.args, self.c, self.p, self.tp = args, c, p, tp

    async def begin(self):
        self.p.begin_transaction()

    async def poll(self, max_records):
        return self.c.poll(timeout_ms=200, max_records=max_records)

    async def send(self, key, value):
        self.p.send(self.args.output, key=key, value=value)

    async def flush(self):
        self.p.flush(timeout=30)

    async def send_offsets(self, offset):
        self.p.send_offsets_to_transaction({self.tp: OffsetAndMetadata(offset, "", -1)},
                                           self.c.group_metadata())

    async def commit(self):
        self.p.commit_transaction()

    async def abort(self):
        self.p.abort_transaction()

    async def committed(self):
        return committed_offset(self.c, self.tp)

    def seek(self, offset):
        self.c.seek(self.tp, offset)


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
    log = asyncio.run(ctp_loop(args, CtpTxn(args, c, p, tp)))
    generation = c.group_metadata().generation_id
    p.close(timeout=5)
    c.close()
    c = consumer(args, "read_committed", args.group)
    emit({"transactions": log, "committed_offset": committed_offset(c, tp),
          "member": generation >= 0, "client_log": SEEN.seen})
    c.close()


def in_open_txn(args, prefix, count, partition_of):
    """A producer of args.txn_id, initialized, in a transaction that holds the records
    "<prefix><i>" (i < count) to partition `partition_of(i)`, flushed."""
    p = producer(args, args.txn_id)
    p.init_transactions()
    p.begin_transaction()
    for i in range(count):
        p.send(args.topic, value=f"{prefix}{i}", partition=partition_of(i))
    p.flush(timeout=30)
    return p


def fence(args):
    first = in_open_txn(args, "before", 3, lambda _: 0)
    # The second producer's init_transactions fences the first and aborts its transaction.
    second = in_open_txn(args, "second", 3, lambda _: 0)
    send_errors = []
    futures = []
    for i in range(4):
        try:
            # Partition 1 first: its AddPartitionsToTxn goes out before any Produce (the client
            # holds produce requests while one is in flight), so the fenced answer fails every
            # batch alike. Partition 0 first could send after0 alone, with the old epoch, and
            # the client reports the broker's INVALID_PRODUCER_EPOCH for it as it is.
            futures.append(first.send(args.topic, value=f"after{i}", partition=(i + 1) % 2))
        except Exception as e:  # noqa: BLE001
            # The fenced answer to an earlier send's AddPartitionsToTxn can arrive before this
            # send: the client then refuses it at once, naming that error as its cause.
            cause = e.args[-1] if e.args and isinstance(e.args[-1], Exception) else e
            send_errors.append(type(cause).__name__)
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
    fence_report(send_errors, first_commit, None if last is None else type(last).__name__,
                 second_commit, "ProducerFencedError")


def try_commit(p):
    """None when commit_transaction() succeeds, else [exception type, repr]."""
    try:
        p.commit_transaction()
    except Exception as e:  # noqa: BLE001
        return [type(e).__name__, repr(e)]
    return None


def open_txn(args):
    # Held until the process is killed: a producer collected by the GC would close.
    p = in_open_txn(args, "open", args.count, lambda _: args.partition)
    write_progress(args.progress, "open")
    time.sleep(3600)
    p.close()


def survive(args):
    p = in_open_txn(args, "s", args.count, lambda i: i % 2)
    # The producer's own thread keeps its connections meanwhile.
    asyncio.run(half_then_wait_for_go(args.progress))
    for i in range(args.count, 2 * args.count):
        p.send(args.topic, value=f"s{i}", partition=i % 2)
    p.commit_transaction()
    p.close(timeout=5)
    emit({"committed": 2 * args.count})


def outlast(args):
    p = in_open_txn(args, "early", 3, lambda _: 0)
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
    by = {iso: consumer(args, iso) for iso in ("read_uncommitted", "read_committed")}
    tps = [TopicPartition(args.topic, q) for q in partitions_of(by["read_committed"], args.topic)]
    hw = by["read_uncommitted"].end_offsets(tps)
    lso = by["read_committed"].end_offsets(tps)
    for c in by.values():
        c.close()
    ends_report(tps, hw, lso)


COMMANDS = {"idempotent": idempotent, "ctp": ctp, "fence": fence, "open": open_txn,
            "survive": survive, "outlast": outlast, "init": init, "commit": commit,
            "consume": consume, "committed": committed, "ends": ends}


if __name__ == "__main__":
    main(COMMANDS, Errors.KafkaError, lambda command, args: command(args))
