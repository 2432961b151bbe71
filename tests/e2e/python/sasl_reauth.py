#!/usr/bin/env python3
"""confluent-kafka (librdkafka, which re-authenticates since 2.2.0) across SASL session
lifetimes (KIP-368), for gregor's e2e test of `connections.max.reauth.ms`.

usage:
  sasl_reauth.py BOOTSTRAP --user U --password P [--ca CA.pem] [--mechanism M] \
      TOPIC --seconds S --ready FILE --deleted FILE

The clients log in as sasl_client.py's do (SASL_SSL when --ca is given, else SASL_PLAINTEXT).

Phase 1: for S seconds a producer (acks=all) sends a keyed record every 50 ms to TOPIC while a
consumer in a group reads them; then the consumer reads until it has every acknowledged record,
commits and closes. Then the script creates FILE --ready and waits (at most 60 s) for FILE
--deleted: the test deletes the user's credential in between. Phase 2: the producer, still
connected, sends a record every 100 ms until librdkafka reports an authentication error or a
delivery fails, for at most 30 s.

Prints {"delivered": [[partition, offset, key, value], ...], "records": [...], "errors": [errors
the clients reported in phase 1], "refused": {"after_ms": MS, "errors": [...]} | null}.
"""
import argparse
import os
import time

from confluent_kafka import Consumer, KafkaError, Producer

from common import decode, emit, key_of, value_of
from sasl_client import add_login_args, base_conf


def poll(consumer, records, errors, timeout):
    msg = consumer.poll(timeout)
    if msg is None:
        return
    if msg.error():
        if msg.error().code() != KafkaError._PARTITION_EOF:
            errors.append(f"consume: {msg.error()}")
        return
    records.append([msg.partition(), msg.offset(), decode(msg.key()), decode(msg.value())])


def main():
    ap = argparse.ArgumentParser()
    add_login_args(ap)
    ap.add_argument("topic")
    ap.add_argument("--seconds", type=float, required=True)
    ap.add_argument("--ready", required=True)
    ap.add_argument("--deleted", required=True)
    args = ap.parse_args()

    errors = []
    producer = Producer({**base_conf(args, errors), "acks": "all", "linger.ms": 0,
                         "message.timeout.ms": 20000})
    consumer = Consumer({**base_conf(args, errors), "group.id": f"{args.topic}-group",
                         "enable.auto.commit": False, "auto.offset.reset": "earliest",
                         "fetch.wait.max.ms": 100, "session.timeout.ms": 10000,
                         "heartbeat.interval.ms": 500})
    consumer.subscribe([args.topic])

    delivered, records = [], []

    def report(err, msg):
        if err is not None:
            errors.append(f"delivery: {err}")
        else:
            delivered.append([msg.partition(), msg.offset(), decode(msg.key()),
                              decode(msg.value())])

    end = time.monotonic() + args.seconds
    i = 0
    while time.monotonic() < end:
        producer.produce(args.topic, key=key_of(i, 50), value=value_of(i, 100),
                         on_delivery=report)
        i += 1
        producer.poll(0)
        poll(consumer, records, errors, 0.05)
    left = producer.flush(30)
    if left:
        errors.append(f"{left} records not acknowledged within 30 s")
    deadline = time.monotonic() + 30
    while len(records) < len(delivered) and time.monotonic() < deadline:
        poll(consumer, records, errors, 0.2)
    try:
        consumer.commit(asynchronous=False)
    except Exception as e:  # reported, not fatal: the test decides
        errors.append(f"commit: {e}")
    consumer.close()
    phase1_errors = list(errors)

    with open(args.ready, "w") as f:
        f.write("phase 1 done\n")
    wait_until = time.monotonic() + 60
    while not os.path.exists(args.deleted) and time.monotonic() < wait_until:
        time.sleep(0.05)

    errors.clear()
    failed = []

    def after_deletion(err, msg):
        if err is not None:
            failed.append(f"delivery: {err}")

    deleted_at = time.monotonic()
    refused = None
    while time.monotonic() < deleted_at + 30:
        producer.produce(args.topic, key="after", value="deletion", on_delivery=after_deletion)
        producer.poll(0.1)
        told = [e for e in errors if "AUTHENTICATION" in e.upper()] + failed
        if told:
            refused = {"after_ms": int((time.monotonic() - deleted_at) * 1000),
                       "errors": sorted(set(errors + failed))}
            break
    emit({"delivered": delivered, "records": records, "errors": phase1_errors,
          "refused": refused})


if __name__ == "__main__":
    main()
