#!/usr/bin/env python3
"""confluent-kafka (librdkafka) transactions with offsets, for the gregor e2e tests.

usage:
  txn_offsets_client.py BOOTSTRAP produce TOPIC --count N
  txn_offsets_client.py BOOTSTRAP ctp IN OUT GROUP TXID --count N --batch B
  txn_offsets_client.py BOOTSTRAP committed TOPIC GROUP
  txn_offsets_client.py BOOTSTRAP read TOPIC --isolation read_committed|read_uncommitted

`ctp` is a consume-transform-produce loop over the single partition of IN: for every B records
it begins a transaction, writes them to OUT, sends the consumer's position with
send_offsets_to_transaction (TxnOffsetCommit) and commits the odd-numbered transactions
(1st, 3rd, ...) and aborts the others. `committed` reads the group's offset the way a
read_committed consumer does (OffsetFetch with require_stable). Every command prints one JSON
document; `ctp` prints {"error": reason} when the transactional producer cannot start.
"""
import argparse
import time

from confluent_kafka import Consumer, KafkaException, Producer, TopicPartition

from common import decode, emit, fail


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("bootstrap")
    ap.add_argument("command")
    ap.add_argument("names", nargs="*")
    ap.add_argument("--count", type=int, default=0)
    ap.add_argument("--batch", type=int, default=5)
    ap.add_argument("--isolation", default="read_committed")
    args = ap.parse_args()
    if args.command == "produce":
        produce(args)
    elif args.command == "ctp":
        ctp(args)
    elif args.command == "committed":
        committed(args)
    elif args.command == "read":
        read(args)
    else:
        fail(f"unknown command {args.command}")


def produce(args):
    (topic,) = args.names
    p = Producer({"bootstrap.servers": args.bootstrap})
    for i in range(args.count):
        p.produce(topic, value=f"v{i}".encode())
    if p.flush(30) != 0:
        fail("records not delivered")
    emit({"produced": args.count})


def ctp(args):
    topic_in, topic_out, group, txid = args.names
    consumer = Consumer(
        {
            "bootstrap.servers": args.bootstrap,
            "group.id": group,
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "isolation.level": "read_committed",
            "fetch.wait.max.ms": 100,
        }
    )
    producer = Producer({"bootstrap.servers": args.bootstrap, "transactional.id": txid})
    try:
        producer.init_transactions(30)
    except KafkaException as e:
        emit({"error": f"init_transactions: {e}"})
        return
    consumer.subscribe([topic_in])
    batch, transactions = [], []
    deadline = time.time() + 90
    while len(transactions) * args.batch < args.count and time.time() < deadline:
        m = consumer.poll(0.5)
        if m is None or m.error():
            continue
        batch.append(m)
        if len(batch) < args.batch:
            continue
        producer.begin_transaction()
        for r in batch:
            producer.produce(topic_out, value=b"T" + r.value())
        position = [TopicPartition(topic_in, 0, batch[-1].offset() + 1)]
        producer.send_offsets_to_transaction(position, consumer.consumer_group_metadata(), 30)
        commit = len(transactions) % 2 == 0
        if commit:
            producer.commit_transaction(30)
        else:
            producer.abort_transaction(30)
        transactions.append({"committed": commit, "position": batch[-1].offset() + 1})
        batch = []
    consumer.close()
    emit({"transactions": transactions})


def committed(args):
    topic, group = args.names
    c = Consumer(
        {
            "bootstrap.servers": args.bootstrap,
            "group.id": group,
            "enable.auto.commit": False,
            "isolation.level": "read_committed",
        }
    )
    offsets = c.committed([TopicPartition(topic, 0)], 30)
    c.close()
    emit({"offset": offsets[0].offset})


def read(args):
    (topic,) = args.names
    c = Consumer(
        {
            "bootstrap.servers": args.bootstrap,
            "group.id": "txn-offsets-reader",
            "enable.auto.commit": False,
            "isolation.level": args.isolation,
            "fetch.wait.max.ms": 100,
        }
    )
    c.assign([TopicPartition(topic, 0, 0)])
    values, idle_since = [], time.time()
    while time.time() - idle_since < 3:
        m = c.poll(0.3)
        if m is None or m.error():
            continue
        values.append(decode(m.value()))
        idle_since = time.time()
    c.close()
    emit({"values": values})


if __name__ == "__main__":
    main()
