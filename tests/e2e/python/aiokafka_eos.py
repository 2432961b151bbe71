"""Exactly-once with aiokafka (the idempotent producer and transactions) for the gregor e2e
tests: the command line and the JSON of kafka_python_eos.py (see there for each command; the
command line itself is eos_common.main), as

  aiokafka_eos.py BOOTSTRAP COMMAND TOPIC [ARG ...] [--OPTION VALUE ...]

aiokafka speaks version 0 of InitProducerId, AddPartitionsToTxn, AddOffsetsToTxn, EndTxn and
TxnOffsetCommit. A transactional producer gets its producer id in start() (there is no
init_transactions); send_offsets_to_transaction takes a group id (no group metadata, so no
KIP-447 fencing of a stale consumer: "member" in ctp's answer is always false).
"""
import asyncio
import time

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
import aiokafka.errors as Errors

from common import decode, emit, fail, value_of
from eos_common import (SEEN, consumer_conf, ctp_loop, ends_report, fence_report,
                        half_then_wait_for_go, main, producer_conf, write_progress)


def producer(args, txn_id=None, **extra):
    return AIOKafkaProducer(**producer_conf(args, txn_id, extra))


async def consumer(args, isolation, group=None):
    c = AIOKafkaConsumer(**consumer_conf(args, isolation, group))
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
            write_progress(args.progress, counts["acked"])

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


class CtpTxn:
    """eos_common.ctp_loop over aiokafka's consumer `c` and transactional producer `p`."""

    def __init__(self, args, c, p, tp):
        self.args, self.c, self.p, self.tp = args, c, p, tp

    async def begin(self):
        await self.p.begin_transaction()

    async def poll(self, max_records):
        return await self.c.getmany(timeout_ms=200, max_records=max_records)

    async def send(self, key, value):
        await self.p.send(self.args.output, key=key, value=value)

    async def flush(self):
        await self.p.flush()

    async def send_offsets(self, offset):
        await self.p.send_offsets_to_transaction({self.tp: offset}, self.args.group)

    async def commit(self):
        await self.p.commit_transaction()

    async def abort(self):
        await self.p.abort_transaction()

    async def committed(self):
        return await self.c.committed(self.tp)

    def seek(self, offset):
        self.c.seek(self.tp, offset)


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
    log = await ctp_loop(args, CtpTxn(args, c, p, tp))
    await p.stop()
    await c.stop()
    c = await consumer(args, "read_committed", args.group)
    emit({"transactions": log, "committed_offset": await c.committed(tp), "member": False,
          "client_log": SEEN.seen})
    await c.stop()


async def in_open_txn(args, prefix, count, partition_of):
    """A producer of args.txn_id, started (InitProducerId), in a transaction that holds the
    records "<prefix><i>" (i < count) to partition `partition_of(i)`, flushed."""
    p = producer(args, args.txn_id)
    await p.start()
    await p.begin_transaction()
    for i in range(count):
        await p.send(args.topic, value=f"{prefix}{i}", partition=partition_of(i))
    await p.flush()
    return p


async def fence(args):
    first = await in_open_txn(args, "before", 3, lambda _: 0)
    # The second producer's InitProducerId (in start()) fences the first and aborts its
    # transaction.
    second = await in_open_txn(args, "second", 3, lambda _: 0)
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
    fence_report(send_errors, first_commit, state, second_commit, "ProducerFenced")


async def try_commit(p):
    """None when commit_transaction() succeeds, else [exception type, repr]."""
    try:
        await asyncio.wait_for(p.commit_transaction(), 60)
    except Exception as e:  # noqa: BLE001
        return [type(e).__name__, repr(e)]
    return None


async def open_txn(args):
    # Held until the process is killed: a producer collected by the GC would close.
    p = await in_open_txn(args, "open", args.count, lambda _: args.partition)
    write_progress(args.progress, "open")
    await asyncio.sleep(3600)
    await p.stop()


async def survive(args):
    p = await in_open_txn(args, "s", args.count, lambda i: i % 2)
    await half_then_wait_for_go(args.progress)
    for i in range(args.count, 2 * args.count):
        await p.send(args.topic, value=f"s{i}", partition=i % 2)
    await asyncio.wait_for(p.commit_transaction(), 90)
    await p.stop()
    emit({"committed": 2 * args.count})


async def outlast(args):
    p = await in_open_txn(args, "early", 3, lambda _: 0)
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
    by = {iso: await consumer(args, iso) for iso in ("read_uncommitted", "read_committed")}
    parts = await partitions_of(by["read_committed"], args.topic)
    tps = [TopicPartition(args.topic, q) for q in parts]
    hw = await by["read_uncommitted"].end_offsets(tps)
    lso = await by["read_committed"].end_offsets(tps)
    for c in by.values():
        await c.stop()
    ends_report(tps, hw, lso)


COMMANDS = {"idempotent": idempotent, "ctp": ctp, "fence": fence, "open": open_txn,
            "survive": survive, "outlast": outlast, "init": init, "commit": commit,
            "consume": consume, "committed": committed, "ends": ends}


if __name__ == "__main__":
    main(COMMANDS, Errors.KafkaError, lambda command, args: asyncio.run(command(args)))
