#!/usr/bin/env python3
"""A short, realistic client session for the protocol fuzzer to record (through its proxy).

usage: fuzz_session.py BOOTSTRAP TOPIC GROUP

With confluent-kafka (librdkafka): create TOPIC (2 partitions), produce 4 records with each
codec (none, gzip, snappy, lz4, zstd), join GROUP, read them all and commit. With kafka-python:
produce 4 gzip records, read everything in GROUP-kp and commit. Prints
{"produced": N, "consumed": {"confluent": N, "kafka_python": N}}.
"""
import sys
import time

from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient, NewTopic
from kafka import KafkaConsumer, KafkaProducer

from common import emit, fail

CODECS = ("none", "gzip", "snappy", "lz4", "zstd")
PER_CODEC = 4


def confluent(bootstrap, topic, group):
    admin = AdminClient({"bootstrap.servers": bootstrap})
    fs = admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)],
                             operation_timeout=10, request_timeout=15)
    try:
        fs[topic].result(timeout=20)
    except Exception as e:  # noqa: BLE001 - report whatever the client raised
        fail(f"create_topics: {e}")
    produced = 0
    for codec in CODECS:
        p = Producer({"bootstrap.servers": bootstrap, "acks": "all", "linger.ms": 5,
                      "compression.type": codec, "enable.idempotence": False})
        errors = []
        for i in range(PER_CODEC):
            p.produce(topic, key=f"{codec}-{i}", value=f"{codec} value {i} " * 8,
                      on_delivery=lambda err, _m: errors.append(err) if err else None)
        if p.flush(30) or errors:
            fail(f"produce {codec}: {errors[:3]}")
        produced += PER_CODEC
    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group,
                  "enable.auto.commit": False, "auto.offset.reset": "earliest",
                  "fetch.wait.max.ms": 100, "heartbeat.interval.ms": 300,
                  "session.timeout.ms": 10000})
    c.subscribe([topic])
    got = 0
    deadline = time.monotonic() + 30
    while got < produced and time.monotonic() < deadline:
        m = c.poll(0.2)
        if m is None or m.error() is not None:
            continue
        got += 1
        c.commit(message=m, asynchronous=False)
    c.close()
    if got < produced:
        fail(f"confluent consumer read {got} of {produced}")
    return produced, got


def kafka_python(bootstrap, topic, group, before):
    # kafka-python 3 is idempotent by default, which needs InitProducerId (not served).
    p = KafkaProducer(bootstrap_servers=bootstrap, acks="all", compression_type="gzip",
                      linger_ms=5, enable_idempotence=False)
    futures = [p.send(topic, key=f"kp-{i}".encode(), value=f"kafka-python value {i}".encode())
               for i in range(PER_CODEC)]
    p.flush(30)
    for f in futures:
        try:
            f.get(timeout=10)
        except Exception as e:  # noqa: BLE001 - report whatever the client raised
            fail(f"kafka-python produce: {e!r}")
    p.close(10)
    want = before + PER_CODEC
    c = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group,
                      auto_offset_reset="earliest", enable_auto_commit=False,
                      consumer_timeout_ms=15000, fetch_max_wait_ms=100)
    got = 0
    seen = []
    for m in c:
        got += 1
        seen.append((m.partition, m.offset))
        if got >= want:
            break
    c.commit()
    c.close()
    if got < want:
        fail(f"kafka-python consumer read {got} of {want}: {sorted(seen)}")
    return PER_CODEC, got


def main():
    bootstrap, topic, group = sys.argv[1:4]
    produced, got = confluent(bootstrap, topic, group)
    produced_kp, got_kp = kafka_python(bootstrap, topic, group + "-kp", produced)
    emit({"produced": produced + produced_kp,
          "consumed": {"confluent": got, "kafka_python": got_kp}})


if __name__ == "__main__":
    main()
