#!/usr/bin/env python3
"""confluent-kafka (librdkafka) client for the gregor e2e tests.

usage:
  confluent_client.py BOOTSTRAP create-topic TOPIC PARTITIONS
  confluent_client.py BOOTSTRAP list-topics
  confluent_client.py BOOTSTRAP produce TOPIC --count N [--keys K] [--size S] [--compression C]
  confluent_client.py BOOTSTRAP consume TOPIC [--timeout SECONDS]
  confluent_client.py BOOTSTRAP consume-to-end TOPIC --isolation read_committed|read_uncommitted

produce prints {"delivered": [[partition, offset, key, value], ...]} in delivery-report order;
consume prints {"records": [[partition, offset, key, value], ...], "high_watermarks": {p: hw}}
after reading every partition from the beginning up to the high watermark it saw at the start.
consume-to-end reads every partition from the beginning until librdkafka reports its end
(the high watermark, or the last stable offset for read_committed) and prints {"records": ...,
"watermarks": {p: [low, high]}} (the watermarks as the consumer's isolation level sees them).
Consumer groups are not used: partitions are assigned explicitly and nothing is committed.
"""
import argparse
import sys
import time

from confluent_kafka import (Consumer, KafkaError, KafkaException, Producer, TopicPartition,
                             OFFSET_BEGINNING)
from confluent_kafka.admin import AdminClient, NewTopic

from common import decode, emit, fail, produce_keyed


def create_topic(args):
    admin = AdminClient({"bootstrap.servers": args.bootstrap})
    futures = admin.create_topics(
        [NewTopic(args.topic, num_partitions=args.partitions, replication_factor=1)],
        operation_timeout=10, request_timeout=15)
    try:
        futures[args.topic].result(timeout=20)
    except Exception as e:  # noqa: BLE001 - report whatever the client raised
        fail(f"create_topics({args.topic}): {e}")
    emit({"created": args.topic})


def list_topics(args):
    admin = AdminClient({"bootstrap.servers": args.bootstrap})
    md = admin.list_topics(timeout=15)
    topics = {}
    for name, t in md.topics.items():
        if t.error is not None:
            fail(f"topic {name}: {t.error}")
        topics[name] = {"partitions": sorted(t.partitions.keys()),
                        "leaders": sorted({p.leader for p in t.partitions.values()})}
    emit({"topics": topics, "brokers": sorted(b.id for b in md.brokers.values())})


def produce(args):
    conf = {
        "bootstrap.servers": args.bootstrap,
        "acks": "all",
        "linger.ms": 5,
        "enable.idempotence": False,
        "message.timeout.ms": 30000,
        "compression.type": args.compression,
    }
    producer = Producer(conf)
    delivered, errors, left = produce_keyed(producer, args.topic, args.count, args.keys, args.size)
    if left:
        fail(f"{left} records still undelivered after flush; errors: {errors[:5]}")
    if errors:
        fail(f"{len(errors)} delivery errors, e.g. {errors[:5]}")
    if len(delivered) != args.count:
        fail(f"{len(delivered)} delivery reports for {args.count} records")
    emit({"delivered": delivered})


def watermarks(consumer, tp):
    """The partition's (low, high) watermarks, retried for a while as an application would:
    right after a failover the client may still route the query to a broker that has just left
    the cluster (_DESTROY_BROKER, _TRANSPORT), see the partition without a leader for a moment,
    or ask a new leader whose high watermark has not caught up with its epoch yet
    (OFFSET_NOT_AVAILABLE, retriable, as from Kafka)."""
    deadline = time.monotonic() + 30
    while True:
        try:
            return consumer.get_watermark_offsets(tp, timeout=15)
        except KafkaException as e:
            transient = e.args[0].code() in (
                KafkaError._DESTROY_BROKER, KafkaError._TRANSPORT, KafkaError._UNKNOWN_PARTITION,
                KafkaError.LEADER_NOT_AVAILABLE, KafkaError.NOT_LEADER_FOR_PARTITION,
                KafkaError.OFFSET_NOT_AVAILABLE, KafkaError._TIMED_OUT)
            if not transient or time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def high_watermark(consumer, tp):
    """The partition's high watermark (see `watermarks`)."""
    return watermarks(consumer, tp)[1]


def read_to_high_watermarks(consumer, topic_name, timeout, errors=()):
    """Assigns every partition of `topic_name` from the beginning and reads up to the high
    watermark each had at the start: ([[partition, offset, key, value], ...], {partition:
    high watermark}, the Metadata). `errors`, the client's errors so far, go into a failure."""
    try:
        md = consumer.list_topics(topic_name, timeout=15)
    except KafkaException as e:
        fail(f"metadata for {topic_name}: {e}; client errors {list(errors)[:5]}")
    topic = md.topics.get(topic_name)
    if topic is None or topic.error is not None:
        fail(f"no metadata for {topic_name}: {None if topic is None else topic.error}")
    partitions = sorted(topic.partitions.keys())
    high = {p: high_watermark(consumer, TopicPartition(topic_name, p)) for p in partitions}
    consumer.assign([TopicPartition(topic_name, p, OFFSET_BEGINNING) for p in partitions])
    records, next_offset = [], {p: 0 for p in partitions}
    deadline = time.monotonic() + timeout
    while any(next_offset[p] < high[p] for p in partitions):
        if time.monotonic() > deadline:
            fail(f"timed out: read up to {next_offset}, high watermarks {high}; "
                 f"client errors {list(errors)[:5]}")
        msg = consumer.poll(0.5)
        if msg is None:
            continue
        if msg.error() is not None:
            if msg.error().code() == KafkaError._PARTITION_EOF:
                continue
            fail(f"consume error: {msg.error()}")
        records.append([msg.partition(), msg.offset(), decode(msg.key()), decode(msg.value())])
        next_offset[msg.partition()] = msg.offset() + 1
    return records, high, md


def read_count(consumer, count, errors, timeout=60):
    """Polls a subscribed `consumer` until it has read `count` records: [[partition, offset,
    key, value], ...]. Fails after `timeout` seconds, with `errors` (the client's so far)."""
    records = []
    deadline = time.monotonic() + timeout
    while len(records) < count:
        if time.monotonic() > deadline:
            fail(f"timed out: {len(records)} of {count} records read; "
                 f"client errors {errors[:5]}")
        msg = consumer.poll(0.5)
        if msg is None:
            continue
        if msg.error() is not None:
            if msg.error().code() == KafkaError._PARTITION_EOF:
                continue
            fail(f"consume error: {msg.error()}")
        records.append([msg.partition(), msg.offset(), decode(msg.key()), decode(msg.value())])
    return records


def consume(args):
    consumer = Consumer({
        "bootstrap.servers": args.bootstrap,
        # librdkafka wants a group.id even for assign(); the group is never joined or committed.
        "group.id": "gregor-e2e-unused",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "fetch.wait.max.ms": 100,
    })
    records, high, _ = read_to_high_watermarks(consumer, args.topic, args.timeout)
    consumer.close()
    emit({"records": records, "high_watermarks": {str(p): h for p, h in high.items()}})


def consume_to_end(args):
    consumer = Consumer({
        "bootstrap.servers": args.bootstrap,
        "group.id": "gregor-e2e-unused",
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "auto.offset.reset": "earliest",
        "fetch.wait.max.ms": 100,
        "isolation.level": args.isolation,
        "enable.partition.eof": True,
    })
    md = consumer.list_topics(args.topic, timeout=15)
    topic = md.topics.get(args.topic)
    if topic is None or topic.error is not None:
        fail(f"no metadata for {args.topic}: {None if topic is None else topic.error}")
    partitions = sorted(topic.partitions.keys())
    marks = {}
    for p in partitions:
        marks[str(p)] = list(watermarks(consumer, TopicPartition(args.topic, p)))
    consumer.assign([TopicPartition(args.topic, p, OFFSET_BEGINNING) for p in partitions])
    records = []
    at_end = set()
    deadline = time.monotonic() + args.timeout
    while len(at_end) < len(partitions):
        if time.monotonic() > deadline:
            fail(f"timed out: at the end of {sorted(at_end)} of {partitions}")
        msg = consumer.poll(0.5)
        if msg is None:
            continue
        if msg.error() is not None:
            if msg.error().code() == KafkaError._PARTITION_EOF:
                at_end.add(msg.partition())
                continue
            fail(f"consume error: {msg.error()}")
        records.append([msg.partition(), msg.offset(), decode(msg.key()), decode(msg.value())])
    consumer.close()
    emit({"records": records, "watermarks": marks})


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
