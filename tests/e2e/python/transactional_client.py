#!/usr/bin/env python3
"""Transactions with confluent-kafka (librdkafka) for the gregor e2e tests.

usage:
  transactional_client.py BOOTSTRAP init TOPIC TXN_ID
  transactional_client.py BOOTSTRAP commit TOPIC TXN_ID --count N
  transactional_client.py BOOTSTRAP commit-abort TOPIC TXN_ID --count N
  transactional_client.py BOOTSTRAP fence TOPIC TXN_ID
  transactional_client.py BOOTSTRAP consume TOPIC --isolation read_committed|read_uncommitted
  transactional_client.py BOOTSTRAP ctp INPUT TXN_ID --output OUTPUT --group GROUP --count N
  transactional_client.py BOOTSTRAP ends TOPIC

init: init_transactions only (the id gets a producer id and epoch from its coordinator).
commit: init_transactions, begin, N records ("c" values), commit.
commit-abort: that, then begin, N records ("a" values), abort.
fence: a first producer opens a transaction and produces; a second producer with the same
  transactional id calls init_transactions (which aborts the first one's transaction); the first
  producer's commit must then fail as fenced.
ctp: consume-transform-produce with the offsets in the transaction (send_offsets_to_transaction):
  a first pass over half of INPUT's N records is aborted, a second pass over all of them (from
  the group's committed offsets: none, so from the start) is committed; prints the group's
  committed offset of INPUT partition 0 afterwards.
ends: {"<partition>": {"hw": high watermark, "lso": last stable offset}} for every partition
  (ListOffsets as a read_uncommitted and as a read_committed consumer sends it).
Each prints one JSON document; consume prints {"values": [...]} of every data record (control
records are never handed to applications) read from the beginning up to the end.
"""
import argparse
import time

from confluent_kafka import (Consumer, KafkaError, KafkaException, Producer, TopicPartition,
                             OFFSET_BEGINNING)

from common import emit, fail
from confluent_client import high_watermark


def producer(bootstrap, txn_id):
    return Producer({
        "bootstrap.servers": bootstrap,
        "transactional.id": txn_id,
        "transaction.timeout.ms": 60000,
        "linger.ms": 5,
        "message.timeout.ms": 30000,
    })


def produce_in_txn(p, topic, prefix, count):
    for i in range(count):
        p.produce(topic, key=f"k{i}", value=f"{prefix}{i:06d}")
        p.poll(0)
    p.flush(30)


def init(args):
    p = producer(args.bootstrap, args.txn_id)
    p.init_transactions(30)
    emit({"initialized": args.txn_id})


def commit(args):
    p = producer(args.bootstrap, args.txn_id)
    p.init_transactions(30)
    p.begin_transaction()
    produce_in_txn(p, args.topic, "c", args.count)
    p.commit_transaction(30)
    done = {"committed": args.count}
    if args.command == "commit-abort":
        p.begin_transaction()
        produce_in_txn(p, args.topic, "a", args.count)
        p.abort_transaction(30)
        done["aborted"] = args.count
    emit(done)


def fence(args):
    first = producer(args.bootstrap, args.txn_id)
    first.init_transactions(30)
    first.begin_transaction()
    produce_in_txn(first, args.topic, "z", 3)
    second = producer(args.bootstrap, args.txn_id)
    second.init_transactions(60)
    try:
        first.commit_transaction(30)
    except KafkaException as e:
        err = e.args[0]
        emit({"fenced": err.code() in (KafkaError._FENCED, KafkaError.PRODUCER_FENCED,
                                       KafkaError.INVALID_PRODUCER_EPOCH),
              "error": str(err), "fatal": err.fatal()})
        return
    fail("the fenced producer's commit succeeded")


def ctp(args):
    def consumer():
        c = Consumer({
            "bootstrap.servers": args.bootstrap,
            "group.id": args.group,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
            "fetch.queue.backoff.ms": 10,
        })
        c.assign([TopicPartition(args.topic, 0)])
        return c

    def one_pass(p, limit, commit):
        c = consumer()
        done, deadline = 0, time.time() + 30
        p.begin_transaction()
        while done < limit and time.time() < deadline:
            m = c.poll(0.2)
            if m is None or m.error():
                continue
            p.produce(args.output, key=m.key(), value=b"t-" + m.value())
            done += 1
        p.flush(30)
        p.send_offsets_to_transaction(c.position(c.assignment()), c.consumer_group_metadata(), 30)
        if commit:
            p.commit_transaction(30)
        else:
            p.abort_transaction(30)
        c.close()
        return done

    p = producer(args.bootstrap, args.txn_id)
    p.init_transactions(30)
    aborted = one_pass(p, args.count // 2, False)
    committed = one_pass(p, args.count, True)
    c = consumer()
    offset = c.committed([TopicPartition(args.topic, 0)], timeout=15)[0].offset
    c.close()
    emit({"aborted": aborted, "committed": committed, "committed_offset": offset})


def consume(args):
    c = Consumer({
        "bootstrap.servers": args.bootstrap,
        "group.id": f"txn-check-{time.time()}",
        "enable.auto.commit": False,
        "isolation.level": args.isolation,
        "fetch.queue.backoff.ms": 10,
    })
    md = c.list_topics(args.topic, timeout=15)
    parts = sorted(md.topics[args.topic].partitions.keys())
    ends = {}
    for p in parts:
        ends[p] = high_watermark(c, TopicPartition(args.topic, p))
    c.assign([TopicPartition(args.topic, p, OFFSET_BEGINNING) for p in parts])
    values, done = [], set(p for p in parts if ends[p] == 0)
    deadline = time.time() + 30
    while len(done) < len(parts) and time.time() < deadline:
        m = c.poll(0.2)
        if m is None:
            # read_committed stops at the last stable offset, maybe below the high watermark.
            for p in parts:
                pos = c.position([TopicPartition(args.topic, p)])[0].offset
                if pos >= ends[p]:
                    done.add(p)
            continue
        if m.error():
            if m.error().code() == KafkaError._PARTITION_EOF:
                done.add(m.partition())
                continue
            fail(f"consume: {m.error()}")
        values.append(m.value().decode())
        if m.offset() + 1 >= ends[m.partition()]:
            done.add(m.partition())
    c.close()
    emit({"values": values})


def ends(args):
    out = {}
    consumers = {}
    for isolation in ("read_uncommitted", "read_committed"):
        consumers[isolation] = Consumer({
            "bootstrap.servers": args.bootstrap,
            "group.id": "txn-ends-unused",
            "enable.auto.commit": False,
            "isolation.level": isolation,
        })
    md = consumers["read_committed"].list_topics(args.topic, timeout=15)
    for p in sorted(md.topics[args.topic].partitions.keys()):
        tp = TopicPartition(args.topic, p)
        out[str(p)] = {"hw": high_watermark(consumers["read_uncommitted"], tp),
                       "lso": high_watermark(consumers["read_committed"], tp)}
    for c in consumers.values():
        c.close()
    emit(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("bootstrap")
    ap.add_argument("command",
                    choices=["init", "commit", "commit-abort", "fence", "consume", "ctp",
                             "ends"])
    ap.add_argument("topic")
    ap.add_argument("txn_id", nargs="?")
    ap.add_argument("--count", type=int, default=10)
    ap.add_argument("--isolation", default="read_uncommitted")
    ap.add_argument("--output")
    ap.add_argument("--group")
    args = ap.parse_args()
    try:
        if args.command == "init":
            init(args)
        elif args.command in ("commit", "commit-abort"):
            commit(args)
        elif args.command == "fence":
            fence(args)
        elif args.command == "ctp":
            ctp(args)
        elif args.command == "ends":
            ends(args)
        else:
            consume(args)
    except KafkaException as e:
        fail(f"{args.command}: {e}")


if __name__ == "__main__":
    main()
