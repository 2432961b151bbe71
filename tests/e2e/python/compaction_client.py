#!/usr/bin/env python3
"""confluent-kafka (librdkafka) against a compacted topic, for the gregor e2e tests.

usage:
  compaction_client.py BOOTSTRAP create TOPIC --config KEY=VALUE ...
  compaction_client.py BOOTSTRAP alter TOPIC --config KEY=VALUE ...
  compaction_client.py BOOTSTRAP describe TOPIC
  compaction_client.py BOOTSTRAP produce TOPIC --keys K --rounds R --tombstones T
                       [--prefix P] [--compression C]
  compaction_client.py BOOTSTRAP read TOPIC

`produce` writes R rounds of one update to each of K keys (`key-NNN`, values
`key-NNN@round|padding`), then a tombstone (null value) for each of the first T keys, in small
batches, and prints the offset and value of the last record of each key as the broker
acknowledged it: {"latest": {key: {"offset": o, "value": v or null}}}. `read` consumes the
partition from the beginning to its end and prints every record: {"records": [[offset, key,
value], ...]}. `describe` prints the topic's configs: {"configs": {name: value}}.
"""
import argparse

from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewTopic,
    ResourceType,
)

from common import decode, emit, fail


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("bootstrap")
    ap.add_argument("command")
    ap.add_argument("topic")
    ap.add_argument("--config", action="append", default=[])
    ap.add_argument("--keys", type=int, default=10)
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--tombstones", type=int, default=0)
    ap.add_argument("--prefix", default="key")
    ap.add_argument("--compression", default="none")
    args = ap.parse_args()
    configs = dict(c.split("=", 1) for c in args.config)
    admin = AdminClient({"bootstrap.servers": args.bootstrap})
    if args.command == "create":
        fs = admin.create_topics(
            [NewTopic(args.topic, num_partitions=1, replication_factor=1, config=configs)],
            request_timeout=30,
        )
        for f in fs.values():
            f.result()
        emit({"created": args.topic})
    elif args.command == "alter":
        entries = [
            ConfigEntry(k, v, incremental_operation=AlterConfigOpType.SET)
            for k, v in configs.items()
        ]
        res = ConfigResource(ResourceType.TOPIC, args.topic, incremental_configs=entries)
        for f in admin.incremental_alter_configs([res]).values():
            f.result()
        emit({"altered": args.topic})
    elif args.command == "describe":
        res = ConfigResource(ResourceType.TOPIC, args.topic)
        out = {}
        for f in admin.describe_configs([res]).values():
            for name, entry in f.result().items():
                out[name] = entry.value
        emit({"configs": out})
    elif args.command == "produce":
        produce(args)
    elif args.command == "read":
        read(args)
    else:
        fail(f"unknown command {args.command}")


def produce(args):
    p = Producer(
        {
            "bootstrap.servers": args.bootstrap,
            "compression.type": args.compression,
            "batch.num.messages": 10,
            "linger.ms": 1,
            "acks": "all",
        }
    )
    latest = {}
    errors = []

    def report(err, msg):
        if err is not None:
            errors.append(str(err))
            return
        key = decode(msg.key())
        latest[key] = {"offset": msg.offset(), "value": decode(msg.value())}

    pad = "x" * 80
    for r in range(args.rounds):
        for k in range(args.keys):
            key = f"{args.prefix}-{k:03d}"
            p.produce(args.topic, key=key, value=f"{key}@{r}|{pad}", on_delivery=report)
        # Rounds in order: a later round's record always gets a later offset.
        p.flush(30)
    for k in range(args.tombstones):
        key = f"{args.prefix}-{k:03d}"
        p.produce(args.topic, key=key, value=None, on_delivery=report)
    if p.flush(30) != 0:
        fail("records not delivered")
    if errors:
        fail(f"delivery errors: {errors[:5]}")
    emit({"latest": latest})


def read(args):
    c = Consumer(
        {
            "bootstrap.servers": args.bootstrap,
            "group.id": "compaction-reader",
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            "fetch.queue.backoff.ms": 10,
        }
    )
    c.assign([TopicPartition(args.topic, 0, OFFSET_BEGINNING)])
    out = []
    idle = 0
    while True:
        m = c.poll(1.0)
        if m is None:
            idle += 1
            if idle > 30:
                fail("no end of partition seen")
            continue
        if m.error():
            if m.error().code() == KafkaError._PARTITION_EOF:
                break
            fail(str(m.error()))
        out.append([m.offset(), decode(m.key()), decode(m.value())])
    c.close()
    emit({"records": out})


if __name__ == "__main__":
    main()
