#!/usr/bin/env python3
"""confluent-kafka (librdkafka) over TLS, for the gregor e2e tests of `SSL://` listeners.

usage:
  tls_client.py BOOTSTRAP [--ca CA.pem [--cert CERT.pem --key KEY.pem]] produce TOPIC --count N
  tls_client.py BOOTSTRAP [--ca CA.pem [--cert CERT.pem --key KEY.pem]] consume TOPIC
  tls_client.py BOOTSTRAP [--ca CA.pem [--cert CERT.pem --key KEY.pem]] refused TOPIC
  tls_client.py BOOTSTRAP --ca CA.pem [--cert CERT.pem --key KEY.pem] api-versions

With --ca the client speaks TLS (security.protocol=SSL), trusts CA.pem and checks that the
broker's certificate names the host it dialled (ssl.endpoint.identification.algorithm=https);
--cert/--key present a client certificate. Without --ca it speaks PLAINTEXT.

produce sends N keyed records with acks=all (the topic is auto-created) and prints
{"delivered": [[partition, offset, key, value], ...], "brokers": [[id, host, port], ...]};
consume reads every partition from the beginning up to the high watermark it saw at the start
and prints {"records": [[partition, offset, key, value], ...], "brokers": [...]}. "brokers" is
the broker list of the Metadata the client got, so a test sees which listener it was sent to.
refused expects the broker to turn the client away: it asks for metadata and produces one
record with short timeouts, and prints {"metadata": null | error, "delivery": null | error,
"errors": [distinct errors librdkafka reported]} (null where the step succeeded); it never
fails itself.
api-versions sends one ApiVersions v0 request over Python's own TLS (OpenSSL, which presents
--cert whatever CAs the broker names, where librdkafka holds back a certificate no named CA
issued) and prints {"answered": true, "error_code": n} or {"answered": false, "error": "..."}.
"""
import argparse
import re
import socket
import ssl
import struct
import sys

from confluent_kafka import Consumer, KafkaException, Producer

from common import brokers_of, emit, fail, produce_and_emit
from confluent_client import read_to_high_watermarks


def base_conf(args, errors):
    conf = {"bootstrap.servers": args.bootstrap,
            "error_cb": lambda err: errors.append(str(err))}
    if args.ca is not None:
        conf.update({"security.protocol": "SSL",
                     "ssl.ca.location": args.ca,
                     "ssl.endpoint.identification.algorithm": "https"})
    if args.cert is not None:
        conf.update({"ssl.certificate.location": args.cert, "ssl.key.location": args.key})
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


def api_versions(args):
    if args.ca is None:
        fail("api-versions speaks TLS only: give --ca")
    context = ssl.create_default_context(cafile=args.ca)
    if args.cert is not None:
        context.load_cert_chain(args.cert, args.key)
    host, port = args.bootstrap.rsplit(":", 1)
    client_id = b"gregor-e2e"
    body = struct.pack(">hhih", 18, 0, 7, len(client_id)) + client_id
    try:
        with socket.create_connection((host, int(port)), timeout=10) as raw:
            with context.wrap_socket(raw, server_hostname=host) as tls:
                tls.sendall(struct.pack(">i", len(body)) + body)
                head = b""
                while len(head) < 10:
                    chunk = tls.recv(10 - len(head))
                    if not chunk:
                        raise ConnectionError("closed by the broker")
                    head += chunk
    except (OSError, ssl.SSLError) as e:
        emit({"answered": False, "error": f"{type(e).__name__}: {e}"})
        return
    _size, correlation, error_code = struct.unpack(">iih", head)
    if correlation != 7:
        fail(f"ApiVersions answered with correlation id {correlation}")
    emit({"answered": True, "error_code": error_code})


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("bootstrap")
    ap.add_argument("--ca")
    ap.add_argument("--cert")
    ap.add_argument("--key")
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("produce")
    p.add_argument("topic")
    p.add_argument("--count", type=int, required=True)
    sub.add_parser("consume").add_argument("topic")
    sub.add_parser("refused").add_argument("topic")
    sub.add_parser("api-versions")
    args = ap.parse_args()
    if (args.cert is None) != (args.key is None):
        fail("--cert and --key go together")
    {"produce": produce, "consume": consume, "refused": refused,
     "api-versions": api_versions}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
