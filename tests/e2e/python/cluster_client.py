#!/usr/bin/env python3
"""confluent-kafka (librdkafka) helpers for the multi-node cluster tests.

usage:
  cluster_client.py BOOTSTRAP create-topic TOPIC PARTITIONS RF [--config K=V ...]
  cluster_client.py BOOTSTRAP describe TOPIC
  cluster_client.py BOOTSTRAP produce-one TOPIC [--timeout SECONDS] [--acks all|1]
  cluster_client.py BOOTSTRAP consume-from-rack TOPIC COUNT --rack RACK
  cluster_client.py BOOTSTRAP watermarks TOPIC

create-topic prints {"created": TOPIC}.
describe prints {"brokers": [ids], "controller": id, "partitions": {"0": {"leader": id,
"replicas": [..], "isr": [..]}}} from a Metadata request (an unknown topic gives "partitions": {}).
produce-one sends one record to partition 0 with acks=all (or --acks) and no retries, and prints
{"error": null | "NOT_ENOUGH_REPLICAS" | ..., "offset": n, "seconds": s}.
consume-from-rack reads COUNT records of partition 0 from the start as a consumer with
client.rack=RACK (KIP-392) and prints {"consumed": n, "rxbytes": {"<node id>": bytes}}: the bytes
the client received from each broker, from librdkafka's statistics taken after the last record.
watermarks prints {"low": n, "high": n}: partition 0's log start and high watermark, asked of its
leader (retried a while on OFFSET_NOT_AVAILABLE and transport errors, as confluent_client.py).
"""
import argparse
import json
import sys
import time

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from common import emit, fail
from confluent_client import watermarks as read_watermarks


def create_topic(args):
    admin = AdminClient({"bootstrap.servers": args.bootstrap})
    configs = dict(c.split("=", 1) for c in args.config)
    futures = admin.create_topics(
        [NewTopic(args.topic, num_partitions=args.partitions, replication_factor=args.rf,
                  config=configs)],
        operation_timeout=10, request_timeout=15)
    try:
        futures[args.topic].result(timeout=20)
    except Exception as e:  # noqa: BLE001 - report whatever the client raised
        fail(f"create_topics({args.topic}): {e}")
    emit({"created": args.topic})


def describe(args):
    admin = AdminClient({"bootstrap.servers": args.bootstrap})
    md = admin.list_topics(topic=args.topic, timeout=10)
    partitions = {}
    t = md.topics.get(args.topic)
    if t is not None and t.error is None:
        for p in t.partitions.values():
            partitions[str(p.id)] = {"leader": p.leader, "replicas": list(p.replicas),
                                     "isr": sorted(p.isrs)}
    emit({"brokers": sorted(b.id for b in md.brokers.values()),
          "controller": md.controller_id, "partitions": partitions})


def produce_one(args):
    producer = Producer({
        "bootstrap.servers": args.bootstrap,
        "acks": args.acks,
        "retries": 0,
        "enable.idempotence": False,
        "message.timeout.ms": int(args.timeout * 1000),
        "request.timeout.ms": int(args.timeout * 1000),
    })
    result = {}

    def on_delivery(err, msg):
        if err is None:
            result.update(error=None, offset=msg.offset())
        else:
            name = err.name()
            if err.code() == KafkaError.NOT_ENOUGH_REPLICAS:
                name = "NOT_ENOUGH_REPLICAS"
            elif err.code() == KafkaError.NOT_ENOUGH_REPLICAS_AFTER_APPEND:
                name = "NOT_ENOUGH_REPLICAS_AFTER_APPEND"
            result.update(error=name, offset=-1)

    start = time.monotonic()
    producer.produce(args.topic, value=b"probe", partition=0, on_delivery=on_delivery)
    producer.flush(args.timeout + 10)
    if not result:
        fail("no delivery report")
    result["seconds"] = round(time.monotonic() - start, 3)
    emit(result)


def consume_from_rack(args):
    stats = []
    consumer = Consumer({
        "bootstrap.servers": args.bootstrap,
        "group.id": f"rack-{args.topic}",
        "client.rack": args.rack,
        "enable.auto.commit": False,
        "statistics.interval.ms": 200,
        "stats_cb": lambda text: stats.append(json.loads(text)),
    })
    consumer.assign([TopicPartition(args.topic, 0, 0)])
    consumed = 0
    deadline = time.monotonic() + 60
    while consumed < args.count and time.monotonic() < deadline:
        msg = consumer.poll(0.5)
        if msg is None:
            continue
        if msg.error():
            fail(f"consume: {msg.error()}")
        consumed += 1
    # Statistics taken after the last record.
    seen = len(stats)
    while len(stats) <= seen + 1 and time.monotonic() < deadline + 10:
        consumer.poll(0.2)
    consumer.close()
    rxbytes = {}
    for b in stats[-1]["brokers"].values():
        if b.get("nodeid", -1) >= 0:
            rxbytes[str(b["nodeid"])] = b["rxbytes"]
    emit({"consumed": consumed, "rxbytes": rxbytes})


def watermarks(args):
    consumer = Consumer({"bootstrap.servers": args.bootstrap, "group.id": "cluster-client-watermarks"})
    try:
        low, high = read_watermarks(consumer, TopicPartition(args.topic, 0))
    finally:
        consumer.close()
    emit({"low": low, "high": high})


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("bootstrap")
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("create-topic")
    c.add_argument("topic")
    c.add_argument("partitions", type=int)
    c.add_argument("rf", type=int)
    c.add_argument("--config", action="append", default=[])
    d = sub.add_parser("describe")
    d.add_argument("topic")
    p = sub.add_parser("produce-one")
    p.add_argument("topic")
    p.add_argument("--timeout", type=float, default=10)
    p.add_argument("--acks", default="all")
    r = sub.add_parser("consume-from-rack")
    r.add_argument("topic")
    r.add_argument("count", type=int)
    r.add_argument("--rack", required=True)
    w = sub.add_parser("watermarks")
    w.add_argument("topic")
    args = ap.parse_args()
    {"create-topic": create_topic, "describe": describe, "produce-one": produce_one,
     "consume-from-rack": consume_from_rack, "watermarks": watermarks}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
