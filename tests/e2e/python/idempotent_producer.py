#!/usr/bin/env python3
"""Produces COUNT records with enable.idempotence=true, logging the number acknowledged.

usage: idempotent_producer.py BOOTSTRAP TOPIC PROGRESS_FILE --count N [--keys K]

Record i has value value_of(i, 40) and, with --keys, key key_of(i, K). After each delivery
report the number of acknowledged records is written to PROGRESS_FILE, so the test can kill
brokers in the middle of the stream. The producer retries through broker restarts and leader
changes (message.timeout.ms is long); at the end it prints {"acked": n, "failed": n, "errors":
[...]}: every record must be acknowledged, and the log must hold each exactly once.
"""
import argparse
import sys

from confluent_kafka import KafkaException, Producer

from common import emit, fail, key_of, value_of


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("bootstrap")
    ap.add_argument("topic")
    ap.add_argument("progress_file")
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--keys", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=120)
    args = ap.parse_args()

    fatal = []

    def on_error(err):
        if err.fatal():
            fatal.append(str(err))

    producer = Producer({
        "bootstrap.servers": args.bootstrap,
        "enable.idempotence": True,
        "linger.ms": 5,
        "batch.num.messages": 100,
        "message.timeout.ms": int(args.timeout * 1000),
        "reconnect.backoff.max.ms": 500,
        "error_cb": on_error,
    })
    counts = {"acked": 0, "failed": 0}
    errors = []

    def on_delivery(err, _msg):
        if err is None:
            counts["acked"] += 1
            if counts["acked"] % 50 == 0 or counts["acked"] == args.count:
                with open(args.progress_file, "w") as f:
                    f.write(str(counts["acked"]))
        else:
            counts["failed"] += 1
            if len(errors) < 10:
                errors.append(str(err))

    i = 0
    while i < args.count:
        if fatal:
            break
        key = key_of(i, args.keys) if args.keys else None
        try:
            producer.produce(args.topic, key=key, value=value_of(i, 40), on_delivery=on_delivery)
            i += 1
        except BufferError:
            producer.poll(0.05)
            continue
        if i % 100 == 0:
            # Pace the stream so the test's kill lands in the middle of it.
            producer.poll(0.02)
        else:
            producer.poll(0)
    remaining = producer.flush(args.timeout)
    if fatal:
        fail(f"fatal producer error: {fatal}")
    emit({"acked": counts["acked"], "failed": counts["failed"], "unflushed": remaining,
          "errors": errors, "fatal": fatal})


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KafkaException as e:
        fail(str(e))
