#!/usr/bin/env python3
"""confluent-kafka (librdkafka) with SASL/PLAIN, for the gregor e2e tests of `SASL_PLAINTEXT://`
and `SASL_SSL://` listeners.

usage:
  sasl_client.py BOOTSTRAP --user U --password P [--ca CA.pem] produce TOPIC --count N
  sasl_client.py BOOTSTRAP --user U --password P [--ca CA.pem] consume TOPIC GROUP --count N
  sasl_client.py BOOTSTRAP --user U --password P [--ca CA.pem] refused TOPIC
  sasl_client.py BOOTSTRAP --user U --password P [--ca CA.pem] stream TOPIC ACK_FILE --seconds S
                 [--idempotent]
  sasl_client.py BOOTSTRAP --user U --password P [--ca CA.pem] read TOPIC
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

stream produces a steady, paced stream of keyed records with acks=all (idempotent with
--idempotent) to an existing TOPIC until SIGTERM or S seconds, appending "partition offset value"
to ACK_FILE as each record is acknowledged (so a test watches the stream while it runs), then
prints {"produced": n, "delivered": [[partition, offset, key, value], ...], "failed": n,
"failures": [...], "errors": ["<unix time first seen> <error>", ...], "fatal": null | error,
"brokers": [...], "brokers_at_start": [...], "learned": [...]}. read reads every partition of
TOPIC from the beginning up to the high watermark it saw at the start (no group) and prints
{"records": [...], "brokers": [...], "learned": [...]}. "learned" is every broker librdkafka's
statistics listed while the client ran, as [node id, "host:port", name] ("name" starts with the
security protocol), so a test sees every endpoint the client was ever told of, not only the
last Metadata's.
"""
import argparse
import json
import re
import sys
import time

from confluent_kafka import Consumer, KafkaException, Producer

from common import (StopOnTerm, brokers_of, decode, emit, fail, key_of, produce_and_emit,
                    value_of)
from confluent_client import read_count, read_to_high_watermarks


def add_login_args(ap):
    """BOOTSTRAP and the login every SASL script takes (read by base_conf)."""
    ap.add_argument("bootstrap")
    ap.add_argument("--user", required=True)
    ap.add_argument("--password", required=True)
    ap.add_argument("--ca")
    ap.add_argument("--mechanism", default="PLAIN",
                    help="PLAIN (default), SCRAM-SHA-256 or SCRAM-SHA-512")


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


def produce(args):
    errors = []
    producer = Producer({**base_conf(args, errors), "acks": "all", "linger.ms": 5,
                         "message.timeout.ms": 30000})
    produce_and_emit(producer, args.topic, args.count, errors)


def consume(args):
    errors = []
    consumer = Consumer({**base_conf(args, errors), "group.id": args.group,
                         "enable.auto.commit": False, "auto.offset.reset": "earliest",
                         "fetch.wait.max.ms": 100, "session.timeout.ms": 10000,
                         "heartbeat.interval.ms": 500})
    consumer.subscribe([args.topic])
    records = read_count(consumer, args.count, errors)
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


class Learned:
    """The brokers librdkafka's statistics name (its `stats_cb`): every endpoint the client was
    told of by Metadata while it ran, bootstrap and internal entries left out."""

    def __init__(self):
        self.brokers = set()
        self.reports = 0

    def conf(self, interval_ms):
        return {"statistics.interval.ms": interval_ms, "stats_cb": self.on_stats}

    def on_stats(self, text):
        self.reports += 1
        for b in json.loads(text).get("brokers", {}).values():
            if b.get("source") == "learned":
                self.brokers.add((b.get("nodeid", -1), b.get("nodename", ""), b.get("name", "")))

    def sorted(self):
        return sorted([n, host, name] for n, host, name in self.brokers)


def stream(args):
    stop = StopOnTerm()
    errors, learned = [], Learned()
    fatal, first_seen = [], {}

    def on_error(err):
        errors.append(f"{err.name()}: {err.str()}")
        # When each distinct error came first (wall clock), to set beside the test's faults.
        first_seen.setdefault(re.sub(r" \(after \d+ms.*?\)", "", errors[-1]), time.time())
        if err.fatal():
            fatal.append(f"{err.name()}: {err.str()}")

    producer = Producer({**base_conf(args, errors), "error_cb": on_error, **learned.conf(500),
                         "acks": "all", "enable.idempotence": args.idempotent, "linger.ms": 2,
                         "message.timeout.ms": 30000, "reconnect.backoff.max.ms": 500})
    try:
        brokers_at_start = brokers_of(producer.list_topics(args.topic, timeout=15))
    except KafkaException as e:
        fail(f"metadata for {args.topic}: {e}; client errors {errors[:5]}")
    delivered, failures = [], []
    out = open(args.ack_file, "w", buffering=1)

    def on_delivery(err, msg):
        if err is not None:
            failures.append(str(err))
            return
        value = decode(msg.value())
        out.write(f"{msg.partition()} {msg.offset()} {value}\n")
        out.flush()
        delivered.append([msg.partition(), msg.offset(), decode(msg.key()), value])

    deadline = time.monotonic() + args.seconds
    i = 0
    while not stop.requested and not fatal and time.monotonic() < deadline:
        try:
            producer.produce(args.topic, key=key_of(i, 30), value=value_of(i, 60),
                             on_delivery=on_delivery)
            i += 1
        except BufferError:
            producer.poll(0.05)
            continue
        # Paced (at most ~2000 records a second) so that a kill lands in the middle of the
        # stream and the read-back stays short.
        producer.poll(0.01 if i % 20 == 0 else 0)
    left = producer.flush(40)
    out.close()
    try:
        brokers = brokers_of(producer.list_topics(args.topic, timeout=15))
    except KafkaException as e:
        brokers = f"metadata: {e}"
    # One more statistics report, taken after the last delivery.
    seen = learned.reports
    wait = time.monotonic() + 5
    while learned.reports <= seen and time.monotonic() < wait:
        producer.poll(0.1)
    distinct = [f"{at:.3f} {e}" for e, at in list(first_seen.items())[:10]]
    emit({"produced": i, "delivered": delivered, "failed": len(failures) + left,
          "failures": list(dict.fromkeys(failures))[:5], "errors": distinct,
          "fatal": fatal[0] if fatal else None, "brokers": brokers,
          "brokers_at_start": brokers_at_start, "learned": learned.sorted()})


def read(args):
    errors, learned = [], Learned()
    consumer = Consumer({**base_conf(args, errors), **learned.conf(200),
                         # librdkafka wants a group.id even for assign(); it is never joined.
                         "group.id": "gregor-e2e-unused", "enable.auto.commit": False,
                         "auto.offset.reset": "earliest", "fetch.wait.max.ms": 100})
    records, _, md = read_to_high_watermarks(consumer, args.topic, 60, errors)
    # One statistics report, taken after the last record (nothing more is produced).
    seen = learned.reports
    wait = time.monotonic() + 5
    while learned.reports <= seen and time.monotonic() < wait:
        msg = consumer.poll(0.1)
        if msg is not None and msg.error() is None:
            fail(f"a record beyond the high watermark: partition {msg.partition()} "
                 f"offset {msg.offset()}")
    consumer.close()
    emit({"records": records, "brokers": brokers_of(md), "learned": learned.sorted()})


def main():
    ap = argparse.ArgumentParser()
    add_login_args(ap)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("produce")
    p.add_argument("topic")
    p.add_argument("--count", type=int, required=True)
    c = sub.add_parser("consume")
    c.add_argument("topic")
    c.add_argument("group")
    c.add_argument("--count", type=int, required=True)
    sub.add_parser("refused").add_argument("topic")
    st = sub.add_parser("stream")
    st.add_argument("topic")
    st.add_argument("ack_file")
    st.add_argument("--seconds", type=float, required=True)
    st.add_argument("--idempotent", action="store_true")
    sub.add_parser("read").add_argument("topic")
    args = ap.parse_args()
    {"produce": produce, "consume": consume, "refused": refused, "stream": stream,
     "read": read}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
