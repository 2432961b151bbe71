#!/usr/bin/env python3
"""confluent-kafka (librdkafka) with SASL/OAUTHBEARER, for gregor's e2e tests of OAUTHBEARER
listeners (tests/e2e/tests/oauthbearer.rs).

usage:
  oauth_client.py BOOTSTRAP LOGIN produce TOPIC --count N
  oauth_client.py BOOTSTRAP LOGIN consume TOPIC GROUP --count N
  oauth_client.py BOOTSTRAP LOGIN refused TOPIC
  oauth_client.py BOOTSTRAP LOGIN stream TOPIC --seconds S

Every form takes --ca CA.pem for SASL_SSL (else SASL_PLAINTEXT). LOGIN is one of
  --unsecured SUB [--scope S1,S2] [--lifetime-s N]
        librdkafka's own unsecured JWT (enable.sasl.oauthbearer.unsecure.jwt=true,
        sasl.oauthbearer.config "principal=SUB scope=... lifeSeconds=N")
  --token-file FILE
        an oauth_cb that hands librdkafka the JWT in FILE (its expiry from the exp claim)
  --oidc-token-file FILE
        sasl.oauthbearer.method=oidc (KIP-768's client credentials grant) against a token
        endpoint this script serves on 127.0.0.1, which answers every POST with the JWT in FILE;
        the request it got is reported as "token_requests"

produce sends N keyed records with acks=all and prints {"delivered": [...], "brokers": [...]}.
consume reads N records in consumer group GROUP from the earliest offset, commits, and prints
{"records": [...], "committed": {...}, "brokers": [...]}.
refused expects the broker to turn the client away: it asks for metadata and produces one
record with short timeouts, and prints {"metadata": null | error, "delivery": null | error,
"errors": [distinct errors librdkafka reported]}; it never fails itself.
stream sends a keyed record every 50 ms for S seconds on one producer (across SASL session
lifetimes, which librdkafka renews on its connections), waits for every acknowledgement, and
prints {"sent": n, "delivered": n, "failed": [first errors], "errors": [client errors]}.
"""
import argparse
import base64
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, HTTPServer
from urllib.parse import parse_qs

from confluent_kafka import Consumer, KafkaException, Producer

from common import brokers_of, emit, fail, produce_and_emit
from confluent_client import read_count

TOKEN_REQUESTS = []


def jwt_claims(token):
    payload = token.split(".")[1]
    payload += "=" * (-len(payload) % 4)
    return json.loads(base64.urlsafe_b64decode(payload))


def serve_token_endpoint(token_file):
    """A client_credentials token endpoint on 127.0.0.1: its URL."""

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            length = int(self.headers.get("Content-Length", "0"))
            form = parse_qs(self.rfile.read(length).decode())
            TOKEN_REQUESTS.append({"grant_type": form.get("grant_type", [None])[0],
                                   "authorization": self.headers.get("Authorization")})
            with open(token_file) as f:
                token = f.read().strip()
            body = json.dumps({"access_token": token, "token_type": "bearer",
                               "expires_in": 600}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}/token"


def base_conf(args, errors):
    conf = {"bootstrap.servers": args.bootstrap,
            "security.protocol": "SASL_PLAINTEXT",
            "sasl.mechanism": "OAUTHBEARER",
            "error_cb": lambda err: errors.append(f"{err.name()}: {err.str()}")}
    if args.ca is not None:
        conf.update({"security.protocol": "SASL_SSL",
                     "ssl.ca.location": args.ca,
                     "ssl.endpoint.identification.algorithm": "https"})
    if args.unsecured is not None:
        config = f"principal={args.unsecured} lifeSeconds={args.lifetime_s}"
        if args.scope:
            config += f" scope={args.scope}"
        conf.update({"enable.sasl.oauthbearer.unsecure.jwt": True,
                     "sasl.oauthbearer.config": config})
    elif args.token_file is not None:
        def oauth_cb(_config):
            with open(args.token_file) as f:
                token = f.read().strip()
            claims = jwt_claims(token)
            return token, float(claims["exp"]), claims.get("sub", ""), {}
        conf["oauth_cb"] = oauth_cb
    elif args.oidc_token_file is not None:
        conf.update({"sasl.oauthbearer.method": "oidc",
                     "sasl.oauthbearer.client.id": "gregor-test",
                     "sasl.oauthbearer.client.secret": "gregor-test-secret",
                     "sasl.oauthbearer.token.endpoint.url":
                         serve_token_endpoint(args.oidc_token_file)})
    else:
        fail("no login: --unsecured, --token-file or --oidc-token-file")
    return conf


def produce(args):
    errors = []
    producer = Producer({**base_conf(args, errors), "acks": "all", "linger.ms": 5,
                         "message.timeout.ms": 30000})
    if args.oidc_token_file is not None:
        # The token endpoint's requests go into the same JSON line as the records.
        import common
        original = common.emit

        def emit_with_requests(doc):
            doc["token_requests"] = TOKEN_REQUESTS
            original(doc)
        common.emit = emit_with_requests
    produce_and_emit(producer, args.topic, args.count, errors)


def consume(args):
    errors = []
    consumer = Consumer({**base_conf(args, errors), "group.id": args.group,
                         "enable.auto.commit": False, "auto.offset.reset": "earliest",
                         "fetch.wait.max.ms": 100, "session.timeout.ms": 10000,
                         "heartbeat.interval.ms": 500})
    consumer.subscribe([args.topic])
    records = read_count(consumer, args.count, errors)
    try:
        consumer.commit(asynchronous=False)
        committed = {str(tp.partition): tp.offset
                     for tp in consumer.committed(consumer.assignment(), timeout=15)}
    except KafkaException as e:
        fail(f"commit: {e}; client errors {errors[:5]}")
    md = consumer.list_topics(args.topic, timeout=15)
    consumer.close()
    emit({"records": records, "committed": committed, "brokers": brokers_of(md)})


def refused(args):
    errors = []
    producer = Producer({**base_conf(args, errors), "acks": "all",
                         "message.timeout.ms": 6000, "socket.timeout.ms": 3000,
                         "reconnect.backoff.ms": 200})
    doc = {"metadata": None, "delivery": None}
    try:
        producer.list_topics(args.topic, timeout=5)
    except KafkaException as e:
        doc["metadata"] = str(e)
    outcome = []
    try:
        producer.produce(args.topic, b"v", key=b"k",
                         on_delivery=lambda err, msg: outcome.append(err))
    except KafkaException as e:
        # librdkafka refuses at once a topic its metadata says is not authorized.
        outcome.append(e)
    producer.flush(10)
    if outcome and outcome[0] is not None:
        doc["delivery"] = str(outcome[0])
    elif not outcome:
        doc["delivery"] = "not delivered within 10 s"
    doc["errors"] = sorted(set(errors))
    emit(doc)


def stream(args):
    errors = []
    producer = Producer({**base_conf(args, errors), "acks": "all", "linger.ms": 0,
                         "message.timeout.ms": 30000})
    delivered, failed = [], []

    def on_delivery(err, msg):
        (failed if err is not None else delivered).append(str(err) if err else msg.offset())

    sent = 0
    end = time.monotonic() + args.seconds
    while time.monotonic() < end:
        producer.produce(args.topic, f"v{sent}".encode(), key=f"k{sent % 10}".encode(),
                         on_delivery=on_delivery)
        sent += 1
        producer.poll(0)
        time.sleep(0.05)
    producer.flush(30)
    emit({"sent": sent, "delivered": len(delivered), "failed": failed[:5],
          "errors": sorted(set(errors))})


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("bootstrap")
    ap.add_argument("--unsecured")
    ap.add_argument("--scope", default="")
    ap.add_argument("--lifetime-s", type=int, default=3600)
    ap.add_argument("--token-file")
    ap.add_argument("--oidc-token-file")
    ap.add_argument("--ca", help="SASL_SSL, trusting this CA (PEM); else SASL_PLAINTEXT")
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("produce")
    p.add_argument("topic")
    p.add_argument("--count", type=int, required=True)
    c = sub.add_parser("consume")
    c.add_argument("topic")
    c.add_argument("group")
    c.add_argument("--count", type=int, required=True)
    r = sub.add_parser("refused")
    r.add_argument("topic")
    st = sub.add_parser("stream")
    st.add_argument("topic")
    st.add_argument("--seconds", type=float, required=True)
    args = ap.parse_args()
    {"produce": produce, "consume": consume, "refused": refused,
     "stream": stream}[args.cmd](args)


if __name__ == "__main__":
    main()
