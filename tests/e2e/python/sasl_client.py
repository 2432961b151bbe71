#!/usr/bin/env python3
"""confluent-kafka (librdkafka) with SASL/PLAIN, for the gregor e2e tests of `SASL_PLAINTEXT://`
and `SASL_SSL://` listeners.

usage:
  sasl_client.py BOOTSTRAP --user U --password P [--ca CA.pem] produce TOPIC --count N
  sasl_client.py BOOTSTRAP --user U --password P [--ca CA.pem] consume TOPIC GROUP --count N
  sasl_client.py BOOTSTRAP --user U --password P [--ca CA.pem] refused TOPIC
(every form also takes --mechanism PLAIN | SCRAM-SHA-256 | SCRAM-SHA-512)

The client authenticates with sasl.mechanism=PLAIN (or --mechanism) as U with password P, over SASL_SSL when --ca
is given (trusting CA.pem and checking that the broker's certificate names the host it dialled),
else over SASL_PLAINTEXT.

produce sends N keyed records with acks=all (the topic is auto-created) and prints
{"delivered": [[partition, offset, key, value], ...], "brokers": [[id, host, port], ...]}.
consume joins consumer group GROUP, subscribed to TOPIC from the earliest offset, reads N
records, commits their offsets synchronously, and prints {"records": [...], "committed":
{partition: offset}, "brokers": [...]}; it fails if more than N records come. "brokers" is the
broker list of the Metadata the client got, so a test sees which listener it was sent to.
refused expects the broker to turn the client away: it asks for metadata and produces one record
with short timeouts, and prints {"metadata": null | error, "delivery": null | error, "errors":
[distinct errors librdkafka reported]} (null where the step succeeded); it never fails itself.
"""
import argparse
import re
import sys
import time

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

from common import decode, emit, fail, key_of, value_of


def base_conf(args, errors):
    conf = {"bootstrap.servers": args.bootstrap,
            "security.protocol": "SASL_PLAINTEXT",
            "sasl.mechanism": args.mechanism,
            "sasl.username": args.user,
            "sasl.password": args.password,
            "error_cb": lambda err: errors.append(f"{err.name()}: {err.str()}")}
    if args.ca is not None:
        conf.update({"security.protocol": "SASL_SSL",
                     "ssl.ca.location": args.ca,
                     "ssl.endpoint.identification.algorithm": "https"})
    return conf


def brokers_of(md):
    return sorted([b.id, b.host, b.port] for b in md.brokers.values())


def produce(args):
    errors = []
    producer = Producer({**base_conf(args, errors), "acks": "all", "linger.ms": 5,
                         "message.timeout.ms": 30000})
    delivered, failed = [], []

    def on_delivery(err, msg):
        if err is not None:
            failed.append(str(err))
        else:
            delivered.append([msg.partition(), msg.offset(), decode(msg.key()), decode(msg.value())])

    for i in range(args.count):
        while True:
            try:
                producer.produce(args.topic, key=key_of(i, 50), value=value_of(i, 100),
                                 on_delivery=on_delivery)
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    left = producer.flush(60)
    if left or failed or len(delivered) != args.count:
        fail(f"{len(delivered)} of {args.count} delivered, {left} left; delivery errors "
             f"{failed[:5]}; client errors {errors[:5]}")
    emit({"delivered": delivered, "brokers": brokers_of(producer.list_topics(timeout=15))})


def consume(args):
    errors = []
    consumer = Consumer({**base_conf(args, errors), "group.id": args.group,
                         "enable.auto.commit": False, "auto.offset.reset": "earliest",
                         "fetch.wait.max.ms": 100, "session.timeout.ms": 10000,
                         "heartbeat.interval.ms": 500})
    consumer.subscribe([args.topic])
    records = []
    deadline = time.monotonic() + 60
    while len(records) < args.count:
        if time.monotonic() > deadline:
            fail(f"timed out: {len(records)} of {args.count} records read; "
                 f"client errors {errors[:5]}")
        msg = consumer.poll(0.5)
        if msg is None:
            continue
        if msg.error() is not None:
            if msg.error().code() == KafkaError._PARTITION_EOF:
                continue
            fail(f"consume error: {msg.error()}")
        records.append([msg.partition(), msg.offset(), decode(msg.key()), decode(msg.value())])
    # Anything past the N records produced is a record the broker made up or repeated.
    extra = consumer.poll(1.0)
    if extra is not None and extra.error() is None:
        fail(f"a record beyond the {args.count} produced: partition {extra.partition()} "
             f"offset {extra.offset()}")
    try:
        consumer.commit(asynchronous=False)
        assigned = consumer.assignment()
        committed = {str(tp.partition): tp.offset
                     for tp in consumer.committed(assigned, timeout=15)}
    except KafkaException as e:
        fail(f"commit: {e}; client errors {errors[:5]}")
    md = consumer.list_topics(args.topic, timeout=15)
    consumer.close()
    emit({"records": records, "committed": committed, "brokers": brokers_of(md)})


def refused(args):
    errors = []
    producer = Producer({**base_conf(args, errors), "acks": "all", "message.timeout.ms": 3000,
                         "retries": 0})
    try:
        producer.list_topics(timeout=3)
        metadata = None
    except KafkaException as e:
        metadata = str(e)
    delivery = []
    producer.produce(args.topic, key="k", value="v",
                     on_delivery=lambda err, _msg: delivery.append(err and str(err)))
    producer.flush(10)
    # librdkafka reconnects and reports the same failure many times: keep a few distinct ones.
    distinct = list(dict.fromkeys(re.sub(r" \(after \d+ms.*?\)", "", e) for e in errors))
    emit({"metadata": metadata, "delivery": delivery[0] if delivery else "no delivery report",
          "errors": distinct[:5]})


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("bootstrap")
    ap.add_argument("--user", required=True)
    ap.add_argument("--password", required=True)
    ap.add_argument("--ca")
    ap.add_argument("--mechanism", default="PLAIN",
                    help="PLAIN (default), SCRAM-SHA-256 or SCRAM-SHA-512")
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("produce")
    p.add_argument("topic")
    p.add_argument("--count", type=int, required=True)
    c = sub.add_parser("consume")
    c.add_argument("topic")
    c.add_argument("group")
    c.add_argument("--count", type=int, required=True)
    sub.add_parser("refused").add_argument("topic")
    args = ap.parse_args()
    {"produce": produce, "consume": consume, "refused": refused}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
