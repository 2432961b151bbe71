#!/usr/bin/env python3
"""Exactly-once with aiokafka (the idempotent producer and transactions) for the gregor e2e
tests: the command line and the JSON of kafka_python_eos.py (see there for each command).

usage:
  aiokafka_eos.py BOOTSTRAP idempotent TOPIC PROGRESS --count N
  aiokafka_eos.py BOOTSTRAP ctp INPUT TXN_ID --output OUTPUT --group GROUP --count N
                  [--per-txn K] [--plan CA] [--subscribe] [--hold-ms H]
                  [--progress-file FILE]
  aiokafka_eos.py BOOTSTRAP fence TOPIC TXN_ID
  aiokafka_eos.py BOOTSTRAP open TOPIC TXN_ID PROGRESS --partition P --count N
                  [--txn-timeout-ms T]
  aiokafka_eos.py BOOTSTRAP survive TOPIC TXN_ID PROGRESS --count N
  aiokafka_eos.py BOOTSTRAP outlast TOPIC TXN_ID --txn-timeout-ms T
  aiokafka_eos.py BOOTSTRAP init TOPIC TXN_ID
  aiokafka_eos.py BOOTSTRAP commit TOPIC TXN_ID --count N [--prefix P]
  aiokafka_eos.py BOOTSTRAP consume TOPIC --isolation read_committed|read_uncommitted
  aiokafka_eos.py BOOTSTRAP committed TOPIC --group GROUP
  aiokafka_eos.py BOOTSTRAP ends TOPIC

aiokafka speaks version 0 of InitProducerId, AddPartitionsToTxn, AddOffsetsToTxn, EndTxn and
TxnOffsetCommit. A transactional producer gets its producer id in start() (there is no
init_transactions); send_offsets_to_transaction takes a group id (no group metadata, so no
KIP-447 fencing of a stale consumer: "member" in ctp's answer is always false).
"""
import argparse
import asyncio
import logging
import os
import sys
import time

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
import aiokafka.errors as Errors

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
        key_serializer=lambda k: None if k is None else k.encode(),
        value_serializer=lambda v: v.encode(),
    )
    if txn_id is not None:
        conf["transactional_id"] = txn_id
        conf["transaction_timeout_ms"] = args.txn_timeout_ms
    conf.update(extra)
    return AIOKafkaProducer(**conf)


async def consumer(args, isolation, group=None):
    c = AIOKafkaConsumer(
        bootstrap_servers=args.bootstrap,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level=isolation,
        request_timeout_ms=TIMEOUT_MS,
        fetch_max_wait_ms=100,
    )
    await c.start()
    return c


async def partitions_of(c, topic):
    deadline = time.time() + 30
    while time.time() < deadline:
        # topics() would not keep the answer; the client's metadata call does.
        parts = (await c._client.fetch_all_metadata()).partitions_for_topic(topic)
        if parts:
            return sorted(parts)
        await asyncio.sleep(0.2)
    fail(f"no partitions for {topic}")


async def idempotent(args):
    p = producer(args)
    await p.start()
    counts = {"acked": 0, "failed": 0}
    errors = []

    def done(fut):
        if fut.cancelled() or fut.exception() is not None:
            counts["failed"] += 1
            if len(errors) < 10:
                errors.append(repr(None if fut.cancelled() else fut.exception()))
            return
        counts["acked"] += 1
        if counts["acked"] % 50 == 0 or counts["acked"] == args.count:
            with open(args.progress, "w") as f:
                f.write(str(counts["acked"]))

    futures = []
    for i in range(args.count):
        fut = await p.send(args.topic, value=value_of(i, 40), partition=0)
        fut.add_done_callback(done)
        futures.append(fut)
        if i % 100 == 99:
            # Pace the stream so the test's kill lands in the middle of it.
            await asyncio.sleep(0.02)
    await asyncio.wait_for(asyncio.gather(*futures, return_exceptions=True), 150)
    await p.stop()
    emit({"acked": counts["acked"], "failed": counts["failed"], "errors": errors})


async def ctp(args):
    tp = TopicPartition(args.topic, 0)
    c = await consumer(args, "read_committed", args.group)
    if args.subscribe:
        # A member of the group; aiokafka's offsets still go with the group id only.
        c.subscribe([args.topic])
    else:
        c.assign([tp])
    p = producer(args, args.txn_id)
    await p.start()
    done, t, log = 0, 0, []
    deadline = time.time() + 90
    while done < args.count:
        if time.time() > deadline:
            fail(f"ctp: only {done} of {args.count} committed: {log}")
        t += 1
        commit = args.plan[(t - 1) % len(args.plan)] == "C"
        await p.begin_transaction()
        n, want, first, last = 0, min(args.per_txn, args.count - done), None, None
        until = time.time() + 30
        while n < want and time.time() < until:
            batch = await c.getmany(timeout_ms=200, max_records=want - n)
            for records in batch.values():
                for m in records:
                    await p.send(args.output, key=decode(m.key),
                                 value=f"t{t}|{decode(m.value)}")
                    first = m.offset if first is None else first
                    last = m.offset
                    n += 1
        if n < want:
            fail(f"ctp: transaction {t} read {n} of {want} input records")
        # Flushed first, so an aborted transaction's records are in the log too.
        await p.flush()
        # --hold-ms: the transaction stays open a while, so that a test's kill lands in one.
        await asyncio.sleep(args.hold_ms / 1000)
        await p.send_offsets_to_transaction({tp: last + 1}, args.group)
        if commit:
            await p.commit_transaction()
            done += n
            # The offset is the group's once the commit's marker is in __consumer_offsets.
            until = time.time() + 10
            while await c.committed(tp) != last + 1 and time.time() < until:
                await asyncio.sleep(0.05)
        else:
            await p.abort_transaction()
        after = await c.committed(tp)
        log.append([t, "C" if commit else "A", first, n, after])
        if args.progress_file:
            with open(args.progress_file, "w") as f:
                f.write(str(t))
        if not commit:
            c.seek(tp, after if after is not None else 0)
    await p.stop()
    await c.stop()
    c = await consumer(args, "read_committed", args.group)
    emit({"transactions": log, "committed_offset": await c.committed(tp), "member": False,
          "client_log": SEEN.seen})
    await c.stop()


async def fence(args):
    first = producer(args, args.txn_id)
    await first.start()
    await first.begin_transaction()
    for i in range(3):
        await first.send(args.topic, value=f"before{i}", partition=0)
    await first.flush()
    # The second producer's InitProducerId (in start()) fences the first and aborts its
    # transaction.
    second = producer(args, args.txn_id)
    await second.start()
    await second.begin_transaction()
    for i in range(3):
        await second.send(args.topic, value=f"second{i}", partition=0)
    await second.flush()
    send_errors = []
    futures = [await first.send(args.topic, value=f"after{i}", partition=i % 2)
               for i in range(4)]
    for r in await asyncio.wait_for(asyncio.gather(*futures, return_exceptions=True), 60):
        if isinstance(r, BaseException):
            send_errors.append(type(r).__name__)
    first_commit = await try_commit(first)
    state = first._txn_manager.state.name
    # A third producer fences the second, whose commit then goes to the coordinator (EndTxn).
    third = producer(args, args.txn_id)
    await third.start()
    second_commit = await try_commit(second)
    await third.begin_transaction()
    for i in range(3):
        await third.send(args.topic, value=f"third{i}", partition=i % 2)
    await third.commit_transaction()
    for p in (first, second, third):
        try:
            await asyncio.wait_for(p.stop(), 10)
        except Exception:  # noqa: BLE001 - a fenced producer's sender died with its error
            pass
    if first_commit is None or second_commit is None:
        fail(f"a fenced producer's commit succeeded: {first_commit} {second_commit}")
    fenced = "ProducerFenced"
    emit({"fenced": (len(send_errors) == 4 and all(e == fenced for e in send_errors)
                     and second_commit[0] == fenced),
          "send_errors": send_errors, "first_commit": first_commit,
          "first_state_error": state, "second_commit": second_commit})


async def try_commit(p):
    """None when commit_transaction() succeeds, else [exception type, repr]."""
    try:
        await asyncio.wait_for(p.commit_transaction(), 60)
    except Exception as e:  # noqa: BLE001
        return [type(e).__name__, repr(e)]
    return None


async def open_txn(args):
    p = producer(args, args.txn_id)
    await p.start()
    await p.begin_transaction()
    for i in range(args.count):
        await p.send(args.topic, value=f"open{i}", partition=args.partition)
    await p.flush()
    with open(args.progress, "w") as f:
        f.write("open")
    await asyncio.sleep(3600)


async def survive(args):
    p = producer(args, args.txn_id)
    await p.start()
    await p.begin_transaction()
    for i in range(args.count):
        await p.send(args.topic, value=f"s{i}", partition=i % 2)
    await p.flush()
    with open(args.progress, "w") as f:
        f.write("half")
    go = args.progress + ".go"
    deadline = time.time() + 120
    while not os.path.exists(go):
        if time.time() > deadline:
            fail("survive: never told to go on")
        await asyncio.sleep(0.05)
    for i in range(args.count, 2 * args.count):
        await p.send(args.topic, value=f"s{i}", partition=i % 2)
    await asyncio.wait_for(p.commit_transaction(), 90)
    await p.stop()
    emit({"committed": 2 * args.count})


async def outlast(args):
    p = producer(args, args.txn_id)
    await p.start()
    await p.begin_transaction()
    for i in range(3):
        await p.send(args.topic, value=f"early{i}", partition=0)
    await p.flush()
    # Past the transaction's timeout: the coordinator aborts it under a bumped epoch.
    await asyncio.sleep(args.txn_timeout_ms / 1000 + 4)
    out = {}
    futures = [await p.send(args.topic, value=f"late{i}", partition=0) for i in range(3)]
    results = await asyncio.wait_for(asyncio.gather(*futures, return_exceptions=True), 60)
    out["late_sends"] = sorted({type(r).__name__ if isinstance(r, BaseException) else "ok"
                                for r in results})
    await asyncio.sleep(1)
    for step, call in (("commit", p.commit_transaction), ("abort", p.abort_transaction)):
        try:
            await asyncio.wait_for(call(), 60)
            out[step] = "ok"
        except Exception as e:  # noqa: BLE001
            out[step] = type(e).__name__
    try:
        await p.begin_transaction()
        await p.send(args.topic, value="next0", partition=0)
        await asyncio.wait_for(p.commit_transaction(), 60)
        out["next"] = "ok"
    except Exception as e:  # noqa: BLE001
        out["next"] = type(e).__name__
    try:
        await asyncio.wait_for(p.stop(), 10)
    except Exception:  # noqa: BLE001 - a failed producer's sender died with its error
        pass
    emit(out)


async def init(args):
    p = producer(args, args.txn_id)
    await p.start()
    await p._txn_manager.wait_for_pid()
    out = {"producer_id": p._txn_manager.producer_id, "epoch": p._txn_manager.producer_epoch}
    await p.stop()
    emit(out)


async def commit(args):
    p = producer(args, args.txn_id)
    await p.start()
    parts = sorted(await p.partitions_for(args.topic))
    await p.begin_transaction()
    for i in range(args.count):
        await p.send(args.topic, value=f"{args.prefix}{i}", partition=parts[i % len(parts)])
    await p.commit_transaction()
    await p.stop()
    emit({"committed": args.count})


async def consume(args):
    c = await consumer(args, args.isolation)
    tps = [TopicPartition(args.topic, q) for q in await partitions_of(c, args.topic)]
    c.assign(tps)
    await c.seek_to_beginning(*tps)
    ends = await c.end_offsets(tps)
    out = []
    deadline = time.time() + 30
    while True:
        positions = [await c.position(tp) for tp in tps]
        if all(pos >= ends[tp] for pos, tp in zip(positions, tps)):
            break
        if time.time() > deadline:
            fail(f"consume: positions {positions} short of ends {ends}")
        for records in (await c.getmany(timeout_ms=200)).values():
            for m in records:
                out.append([m.partition, m.offset, decode(m.value)])
    await c.stop()
    emit({"records": out})


async def committed(args):
    c = await consumer(args, "read_committed", args.group)
    emit({"offset": await c.committed(TopicPartition(args.topic, 0))})
    await c.stop()


async def ends(args):
    out = {}
    by = {iso: await consumer(args, iso) for iso in ("read_uncommitted", "read_committed")}
    parts = await partitions_of(by["read_committed"], args.topic)
    tps = [TopicPartition(args.topic, q) for q in parts]
    hw = await by["read_uncommitted"].end_offsets(tps)
    lso = await by["read_committed"].end_offsets(tps)
    for tp in tps:
        out[str(tp.partition)] = {"hw": hw[tp], "lso": lso[tp]}
    for c in by.values():
        await c.stop()
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
        asyncio.run(commands[args.command](args))
    except Errors.KafkaError as e:
        fail(f"{args.command}: {e!r}")


if __name__ == "__main__":
    main()
