#!/usr/bin/env python3
"""kafka-python client for the gregor e2e tests (pure-Python protocol implementation).

usage:
  kafka_python_client.py BOOTSTRAP create-topic TOPIC PARTITIONS
  kafka_python_client.py BOOTSTRAP list-topics
  kafka_python_client.py BOOTSTRAP produce TOPIC --count N [--keys K] [--size S] [--compression C]
  kafka_python_client.py BOOTSTRAP consume TOPIC [--timeout SECONDS]
  kafka_python_client.py BOOTSTRAP consume-to-end TOPIC --isolation read_committed|read_uncommitted

Same JSON output as confluent_client.py. The consumer has group_id=None and uses assign().
"""
import argparse
import sys
import time

from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient

from common import decode, emit, fail, key_of, value_of

TIMEOUT_MS = 15000


def create_topic(args):
    admin = KafkaAdminClient(bootstrap_servers=args.bootstrap, request_timeout_ms=TIMEOUT_MS)
    try:
        admin.create_topics({args.topic: {"num_partitions": args.partitions,
                                          "replication_factor": 1}}, timeout_ms=10000)
    except Exception as e:  # noqa: BLE001 - report whatever the client raised
        fail(f"create_topics({args.topic}): {e!r}")
    finally:
        admin.close()
    emit({"created": args.topic})


def list_topics(args):
    admin = KafkaAdminClient(bootstrap_servers=args.bootstrap, request_timeout_ms=TIMEOUT_MS)
    topics = {}
    for t in admin.describe_topics():
        if t.get("error_code", 0) != 0:
            fail(f"topic {t.get('name')}: error {t['error_code']}")
        topics[t["name"]] = {"partitions": sorted(p["partition_index"] for p in t["partitions"])}
    names = admin.list_topics()
    admin.close()
    if sorted(names) != sorted(topics):
        fail(f"list_topics {sorted(names)} != describe_topics {sorted(topics)}")
    emit({"topics": topics})


def produce(args):
    producer = KafkaProducer(
        bootstrap_servers=args.bootstrap,
        acks="all",
        # kafka-python 3 is idempotent by default (InitProducerId, producer sequences).
        enable_idempotence=True,
        linger_ms=5,
        compression_type=None if args.compression == "none" else args.compression,
        request_timeout_ms=TIMEOUT_MS,
        key_serializer=str.encode,
        value_serializer=str.encode,
    )
    futures = [(producer.send(args.topic, key=key_of(i, args.keys), value=value_of(i, args.size)),
                key_of(i, args.keys), value_of(i, args.size)) for i in range(args.count)]
    producer.flush(timeout=60)
    delivered = []
    for fut, key, value in futures:
        try:
            md = fut.get(timeout=30)
        except Exception as e:  # noqa: BLE001
            fail(f"send failed: {e!r}")
        delivered.append([md.partition, md.offset, key, value])
    producer.close(timeout=10)
    emit({"delivered": delivered})


def consume(args):
    consumer = KafkaConsumer(
        bootstrap_servers=args.bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        request_timeout_ms=TIMEOUT_MS,
        fetch_max_wait_ms=100,
    )
    deadline = time.monotonic() + args.timeout
    partitions = consumer.partitions_for_topic(args.topic)
    while not partitions:
        if time.monotonic() > deadline:
            fail(f"no partitions for {args.topic}")
        time.sleep(0.1)
        partitions = consumer.partitions_for_topic(args.topic)
    tps = [TopicPartition(args.topic, p) for p in sorted(partitions)]
    consumer.assign(tps)
    consumer.seek_to_beginning(*tps)
    high = consumer.end_offsets(tps)
    records = []
    next_offset = {tp: 0 for tp in tps}
    while any(next_offset[tp] < high[tp] for tp in tps):
        if time.monotonic() > deadline:
            fail(f"timed out: read up to {next_offset}, high watermarks {high}")
        for tp, msgs in consumer.poll(timeout_ms=500).items():
            for m in msgs:
                records.append([m.partition, m.offset, decode(m.key), decode(m.value)])
                next_offset[tp] = m.offset + 1
    consumer.close()
    emit({"records": records, "high_watermarks": {str(tp.partition): h for tp, h in high.items()}})


def consume_to_end(args):
    """Reads every partition until the consumer's position reaches the end offset its
    isolation level sees (the last stable offset for read_committed)."""
    consumer = KafkaConsumer(
        bootstrap_servers=args.bootstrap,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        request_timeout_ms=TIMEOUT_MS,
        fetch_max_wait_ms=100,
        isolation_level=args.isolation,
    )
    deadline = time.monotonic() + args.timeout
    partitions = consumer.partitions_for_topic(args.topic)
    while not partitions:
        if time.monotonic() > deadline:
            fail(f"no partitions for {args.topic}")
        time.sleep(0.1)
        partitions = consumer.partitions_for_topic(args.topic)
    tps = [TopicPartition(args.topic, p) for p in sorted(partitions)]
    consumer.assign(tps)
    consumer.seek_to_beginning(*tps)
    end = consumer.end_offsets(tps)
    records = []
    while any(consumer.position(tp) < end[tp] for tp in tps):
        if time.monotonic() > deadline:
            fail(f"timed out: at {[consumer.position(tp) for tp in tps]}, ends {end}")
        for tp, msgs in consumer.poll(timeout_ms=500).items():
            for m in msgs:
                records.append([m.partition, m.offset, decode(m.key), decode(m.value)])
    consumer.close()
    emit({"records": records,
          "watermarks": {str(tp.partition): [0, h] for tp, h in end.items()}})


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("bootstrap")
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("create-topic")
    c.add_argument("topic")
    c.add_argument("partitions", type=int)
    sub.add_parser("list-topics")
    p = sub.add_parser("produce")
    p.add_argument("topic")
    p.add_argument("--count", type=int, required=True)
    p.add_argument("--keys", type=int, default=50)
    p.add_argument("--size", type=int, default=100)
    p.add_argument("--compression", default="none")
    r = sub.add_parser("consume")
    r.add_argument("topic")
    r.add_argument("--timeout", type=float, default=60)
    e = sub.add_parser("consume-to-end")
    e.add_argument("topic")
    e.add_argument("--isolation", required=True,
                   choices=["read_committed", "read_uncommitted"])
    e.add_argument("--timeout", type=float, default=60)
    args = ap.parse_args()
    {"create-topic": create_topic, "list-topics": list_topics, "produce": produce,
     "consume": consume, "consume-to-end": consume_to_end}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
