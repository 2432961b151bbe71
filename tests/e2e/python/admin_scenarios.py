#!/usr/bin/env python3
"""The admin scenarios of issue 13, with librdkafka's (confluent-kafka) or kafka-python's admin
client, for the gregor e2e tests.

usage:
  admin_scenarios.py BOOTSTRAP CLIENT retention TOPIC
  admin_scenarios.py BOOTSTRAP CLIENT grow TOPIC
  admin_scenarios.py BOOTSTRAP CLIENT delete-records TOPIC
  admin_scenarios.py BOOTSTRAP CLIENT set-config TOPIC KEY=VALUE
  admin_scenarios.py BOOTSTRAP CLIENT get-config TOPIC KEY

CLIENT is `confluent` or `kafka-python`: the admin calls go through that client's admin API;
records are produced and read with confluent-kafka in both cases.

retention: creates TOPIC with small segments (segment.bytes=16384), produces 200 records of
1 KB, then sets retention.ms=1 with the admin client and waits (30 s at most) for the log start
to move: {"before": low, "after": low, "high": high, "segments_before": n}.
grow: creates TOPIC with one partition, grows it to three with the admin client, produces one
record to each new partition and reads it back: {"partitions": n, "read": {p: [offset, value]}}.
delete-records: creates TOPIC, produces 10 records, deletes those before offset 4 with the admin
client: {"low_watermark": from the answer, "earliest": earliest offset, "offsets": read back}.
set-config / get-config: sets one topic config with the admin client (creating the topic first
if needed) / describes it: {"value": v}.
validate-only (confluent only): CreateTopics, IncrementalAlterConfigs and CreatePartitions
with validate_only, each answered without error, and nothing changed: {"created": does TOPIC-v
exist, "retention": TOPIC's retention.ms, "partitions": TOPIC's partition count}.
"""
import sys
import time

from confluent_kafka import Consumer, Producer, TopicPartition, OFFSET_BEGINNING
from confluent_kafka.admin import (
    AdminClient,
    AlterConfigOpType,
    ConfigEntry,
    ConfigResource,
    NewPartitions,
    NewTopic,
    ResourceType,
)

from common import decode, emit, fail


class Confluent:
    def __init__(self, bootstrap):
        self.admin = AdminClient({"bootstrap.servers": bootstrap})

    def create(self, topic, partitions, configs):
        fs = self.admin.create_topics(
            [NewTopic(topic, num_partitions=partitions, replication_factor=1, config=configs)],
            request_timeout=30,
        )
        for f in fs.values():
            f.result()

    def set_config(self, topic, key, value):
        res = ConfigResource(
            ResourceType.TOPIC,
            topic,
            incremental_configs=[
                ConfigEntry(key, value, incremental_operation=AlterConfigOpType.SET)
            ],
        )
        for f in self.admin.incremental_alter_configs([res]).values():
            f.result()

    def get_config(self, topic, key):
        res = ConfigResource(ResourceType.TOPIC, topic)
        for f in self.admin.describe_configs([res]).values():
            entries = f.result()
            return entries[key].value if key in entries else None

    def grow(self, topic, total):
        for f in self.admin.create_partitions([NewPartitions(topic, total)]).values():
            f.result()

    def delete_records(self, topic, partition, before):
        tp = TopicPartition(topic, partition, before)
        for f in self.admin.delete_records([tp]).values():
            return f.result().low_watermark


class KafkaPython:
    def __init__(self, bootstrap):
        from kafka.admin import KafkaAdminClient

        self.admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30000)

    def create(self, topic, partitions, configs):
        from kafka.admin import NewTopic as KNewTopic

        self.admin.create_topics(
            [KNewTopic(topic, num_partitions=partitions, replication_factor=1, topic_configs=configs)]
        )

    def set_config(self, topic, key, value):
        from kafka.admin import ConfigResource as KRes, ConfigResourceType

        # AlterConfigs (not incremental): the topic's overrides become exactly these.
        current = self.describe(topic)
        current[key] = value
        self.admin.alter_configs([KRes(ConfigResourceType.TOPIC, topic, configs=current)])

    def entries(self, topic):
        """{key: {"value": v, "config_source": name, ...}} as kafka-python 3 describes them."""
        from kafka.admin import ConfigResource as KRes, ConfigResourceType

        resp = self.admin.describe_configs([KRes(ConfigResourceType.TOPIC, topic)])
        return resp["topic"][topic]

    def describe(self, topic):
        """The topic's overrides (source DYNAMIC_TOPIC_CONFIG)."""
        return {
            k: e["value"]
            for k, e in self.entries(topic).items()
            if e["config_source"] == "DYNAMIC_TOPIC_CONFIG"
        }

    def get_config(self, topic, key):
        e = self.entries(topic).get(key)
        return None if e is None else e["value"]

    def grow(self, topic, total):
        from kafka.admin import NewPartitions as KNewPartitions

        self.admin.create_partitions({topic: KNewPartitions(total_count=total)})

    def delete_records(self, topic, partition, before):
        from kafka import TopicPartition as KTP

        out = self.admin.delete_records({KTP(topic, partition): before})
        return out[KTP(topic, partition)]["low_watermark"]


def produce(bootstrap, topic, n, size, partition=None):
    p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5,
                  "batch.num.messages": 10})
    errors = []
    done = [0]

    def on_delivery(err, msg):
        if err is not None:
            errors.append(str(err))
        done[0] += 1

    for i in range(n):
        kwargs = {"partition": partition} if partition is not None else {}
        p.produce(topic, value=(f"r{i:05d}|" + "x" * size)[:size], on_delivery=on_delivery,
                  **kwargs)
        p.poll(0)
    p.flush(30)
    if errors or done[0] != n:
        fail(f"produce to {topic}: {done[0]} of {n} delivered, errors {errors[:3]}")


def watermarks(bootstrap, topic, partition):
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "admin-scenarios",
                  "enable.auto.commit": False})
    try:
        return c.get_watermark_offsets(TopicPartition(topic, partition), timeout=10, cached=False)
    finally:
        c.close()


def read_all(bootstrap, topic, partition):
    low, high = watermarks(bootstrap, topic, partition)
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": "admin-scenarios",
                  "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    c.assign([TopicPartition(topic, partition, OFFSET_BEGINNING)])
    out = []
    deadline = time.time() + 30
    while (not out or out[-1][0] < high - 1) and time.time() < deadline and high > low:
        m = c.poll(0.5)
        if m is None or m.error():
            continue
        out.append([m.offset(), decode(m.value())])
    c.close()
    return out


def main():
    bootstrap, client_name, command, topic = sys.argv[1:5]
    rest = sys.argv[5:]
    client = {"confluent": Confluent, "kafka-python": KafkaPython}[client_name](bootstrap)
    if command == "retention":
        client.create(topic, 1, {"segment.bytes": "16384"})
        produce(bootstrap, topic, 200, 1000)
        before, high = watermarks(bootstrap, topic, 0)
        client.set_config(topic, "retention.ms", "1")
        deadline = time.time() + 30
        after = before
        while time.time() < deadline:
            after, high = watermarks(bootstrap, topic, 0)
            if after > before:
                break
            time.sleep(0.5)
        emit({"before": before, "after": after, "high": high})
    elif command == "grow":
        client.create(topic, 1, {})
        client.grow(topic, 3)
        deadline = time.time() + 30
        while True:
            md = AdminClient({"bootstrap.servers": bootstrap}).list_topics(topic, timeout=10)
            n = len(md.topics[topic].partitions)
            if n == 3 or time.time() > deadline:
                break
            time.sleep(0.3)
        for p in (1, 2):
            produce(bootstrap, topic, 1, 20, partition=p)
        read = {str(p): read_all(bootstrap, topic, p) for p in (1, 2)}
        emit({"partitions": n, "read": read})
    elif command == "delete-records":
        client.create(topic, 1, {})
        produce(bootstrap, topic, 10, 20)
        low = client.delete_records(topic, 0, 4)
        earliest, _ = watermarks(bootstrap, topic, 0)
        emit({"low_watermark": low, "earliest": earliest,
              "offsets": [o for o, _ in read_all(bootstrap, topic, 0)]})
    elif command == "set-config":
        key, value = rest[0].split("=", 1)
        try:
            client.create(topic, 1, {})
        except Exception:  # noqa: BLE001 - it may exist already
            pass
        client.set_config(topic, key, value)
        emit({"value": client.get_config(topic, key)})
    elif command == "validate-only":
        a = client.admin
        for f in a.create_topics([NewTopic(topic + "-v", 1, 1)], validate_only=True).values():
            f.result()
        client.create(topic, 1, {"retention.ms": "600000"})
        res = ConfigResource(ResourceType.TOPIC, topic, incremental_configs=[
            ConfigEntry("retention.ms", "999", incremental_operation=AlterConfigOpType.SET)])
        for f in a.incremental_alter_configs([res], validate_only=True).values():
            f.result()
        for f in a.create_partitions([NewPartitions(topic, 3)], validate_only=True).values():
            f.result()
        md = a.list_topics(timeout=10)
        emit({"created": (topic + "-v") in md.topics,
              "retention": client.get_config(topic, "retention.ms"),
              "partitions": len(md.topics[topic].partitions)})
    elif command == "get-config":
        emit({"value": client.get_config(topic, rest[0])})
    else:
        fail(f"unknown command {command}")


if __name__ == "__main__":
    main()
