#!/usr/bin/env python3
"""confluent-kafka (librdkafka) with any client properties, for the gregor e2e tests of key and
trust stores (tests/e2e/tests/tls_stores.rs): librdkafka reads a PKCS#12 keystore
(ssl.keystore.location, ssl.keystore.password) and a PEM CA (ssl.ca.location).

usage:
  store_client.py BOOTSTRAP [-X KEY=VALUE ...] produce TOPIC --count N
  store_client.py BOOTSTRAP [-X KEY=VALUE ...] consume TOPIC

produce sends N keyed records with acks=all (the topic is auto-created) and prints
{"delivered": [[partition, offset, key, value], ...], "brokers": [[id, host, port], ...]};
consume reads every partition from the beginning up to the high watermark it saw at the start
and prints {"records": [...], "brokers": [...]}.
"""
import argparse
import sys

from confluent_kafka import Consumer, Producer

from common import brokers_of, emit, fail, produce_and_emit
from confluent_client import read_to_high_watermarks


def base_conf(args, errors):
    conf = {"bootstrap.servers": args.bootstrap,
            "error_cb": lambda err: errors.append(str(err))}
    for setting in args.X:
        key, sep, value = setting.partition("=")
        if not sep:
            fail(f"-X {setting}: expected KEY=VALUE")
        conf[key] = value
    return conf


def produce(args):
    errors = []
    producer = Producer({**base_conf(args, errors), "acks": "all", "linger.ms": 5,
                         "message.timeout.ms": 30000})
    produce_and_emit(producer, args.topic, args.count, errors)


def consume(args):
    errors = []
    consumer = Consumer({**base_conf(args, errors),
                         # librdkafka wants a group.id even for assign(); it is never joined.
                         "group.id": "gregor-e2e-unused", "enable.auto.commit": False,
                         "auto.offset.reset": "earliest", "fetch.wait.max.ms": 100})
    records, _, md = read_to_high_watermarks(consumer, args.topic, 60, errors)
    consumer.close()
    emit({"records": records, "brokers": brokers_of(md)})


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("bootstrap")
    ap.add_argument("-X", action="append", default=[])
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("produce")
    p.add_argument("topic")
    p.add_argument("--count", type=int, required=True)
    sub.add_parser("consume").add_argument("topic")
    args = ap.parse_args()
    {"produce": produce, "consume": consume}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
