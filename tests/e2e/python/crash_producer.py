#!/usr/bin/env python3
"""Produces with acks=all until told to stop, logging every ACKNOWLEDGED record as it is acked.

usage: crash_producer.py BOOTSTRAP TOPIC ACK_FILE [--max N] [--seconds S]

Each delivery report without error appends "partition offset value\n" to ACK_FILE and flushes
it, so whatever the file holds was acknowledged by the broker before the test killed it. Stops
on SIGTERM, after --max records or --seconds; then waits briefly for outstanding reports (they
fail once the broker is gone) and prints {"produced": n, "acked": n, "failed": n}.
"""
import argparse
import sys
import time

from confluent_kafka import Producer

from common import StopOnTerm, emit, key_of, value_of

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("bootstrap")
    ap.add_argument("topic")
    ap.add_argument("ack_file")
    ap.add_argument("--max", type=int, default=2_000_000)
    ap.add_argument("--seconds", type=float, default=90)
    args = ap.parse_args()
    stop = StopOnTerm()

    producer = Producer({
        "bootstrap.servers": args.bootstrap,
        "acks": "all",
        "linger.ms": 2,
        "enable.idempotence": False,
        "message.timeout.ms": 5000,
        "reconnect.backoff.max.ms": 500,
    })
    counts = {"acked": 0, "failed": 0}
    out = open(args.ack_file, "w", buffering=1)

    def on_delivery(err, msg):
        if err is None:
            out.write(f"{msg.partition()} {msg.offset()} {msg.value().decode()}\n")
            out.flush()
            counts["acked"] += 1
        else:
            counts["failed"] += 1

    deadline = time.monotonic() + args.seconds
    i = 0
    while not stop.requested and i < args.max and time.monotonic() < deadline:
        try:
            producer.produce(args.topic, key=key_of(i, 20), value=value_of(i, 60),
                             on_delivery=on_delivery)
            i += 1
        except BufferError:
            producer.poll(0.05)
            continue
        if i % 200 == 0:
            # Pace the stream so the test's kill lands in the middle of it.
            producer.poll(0.01)
        else:
            producer.poll(0)
    producer.flush(8)
    out.close()
    emit({"produced": i, **counts})


if __name__ == "__main__":
    sys.exit(main())
