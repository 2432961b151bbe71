#!/usr/bin/env python3
"""confluent-kafka (librdkafka) load for the client-quota e2e tests.

usage:
  quota_client.py BOOTSTRAP produce TOPIC --client-id C --bytes N [--size S]
  quota_client.py BOOTSTRAP consume TOPIC --client-id C --bytes N

produce sends N bytes of values (records of S bytes, acks=1) as client id C and prints
{"elapsed_s": seconds from the first produce() to the last delivery report, "records": n,
 "throttle_events": how many throttle reports librdkafka passed on (throttle_cb),
 "max_throttle_ms": the largest throttle time the broker reported}.
consume reads partition 0 of TOPIC from the beginning until the value bytes of what produce sends
for the same N and S arrived, and prints
the same document (records read instead of delivered).
"""
import argparse
import time

from confluent_kafka import Consumer, KafkaError, Producer, TopicPartition, OFFSET_BEGINNING

from common import emit, fail


def throttle_tracker():
    seen = {"events": 0, "max_ms": 0}

    def on_throttle(event):
        ms = int(event.throttle_time * 1000)
        if ms > 0:
            seen["events"] += 1
            seen["max_ms"] = max(seen["max_ms"], ms)

    return seen, on_throttle


def produce(args):
    seen, on_throttle = throttle_tracker()
    producer = Producer({
        "bootstrap.servers": args.bootstrap,
        "client.id": args.client_id,
        "acks": "1",
        "linger.ms": 5,
        "enable.idempotence": False,
        "message.timeout.ms": 120000,
        "throttle_cb": on_throttle,
    })
    value = b"q" * args.size
    count = max(1, args.bytes // args.size)
    errors = []

    def on_delivery(err, _msg):
        if err is not None:
            errors.append(str(err))

    # Connect and learn the metadata before the clock starts.
    producer.list_topics(args.topic, timeout=15)
    start = time.monotonic()
    for _ in range(count):
        while True:
            try:
                producer.produce(args.topic, value=value, partition=0, on_delivery=on_delivery)
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    left = producer.flush(180)
    elapsed = time.monotonic() - start
    if left or errors:
        fail(f"{left} undelivered, errors {errors[:5]}")
    emit({"elapsed_s": elapsed, "records": count, "throttle_events": seen["events"],
          "max_throttle_ms": seen["max_ms"]})


def consume(args):
    seen, on_throttle = throttle_tracker()
    consumer = Consumer({
        "bootstrap.servers": args.bootstrap,
        "client.id": args.client_id,
        "group.id": "quota-e2e-unused",
        "enable.auto.commit": False,
        "fetch.max.bytes": 1048576,
        "throttle_cb": on_throttle,
    })
    consumer.assign([TopicPartition(args.topic, 0, OFFSET_BEGINNING)])
    # What produce sends for the same --bytes and --size: whole records.
    want = max(1, args.bytes // args.size) * args.size
    got, records = 0, 0
    start = time.monotonic()
    deadline = start + 180
    while got < want:
        if time.monotonic() > deadline:
            fail(f"read {got} of {want} bytes before the deadline")
        msg = consumer.poll(1.0)
        if msg is None:
            continue
        if msg.error() is not None:
            if msg.error().code() == KafkaError._PARTITION_EOF:
                continue
            fail(f"consume: {msg.error()}")
        got += len(msg.value() or b"")
        records += 1
    elapsed = time.monotonic() - start
    consumer.close()
    emit({"elapsed_s": elapsed, "records": records, "throttle_events": seen["events"],
          "max_throttle_ms": seen["max_ms"]})


def main():
    p = argparse.ArgumentParser()
    p.add_argument("bootstrap")
    sub = p.add_subparsers(dest="cmd", required=True)
    for name in ("produce", "consume"):
        s = sub.add_parser(name)
        s.add_argument("topic")
        s.add_argument("--client-id", required=True)
        s.add_argument("--bytes", type=int, required=True)
        s.add_argument("--size", type=int, default=10000)
    args = p.parse_args()
    {"produce": produce, "consume": consume}[args.cmd](args)


if __name__ == "__main__":
    main()
