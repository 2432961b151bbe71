#!/usr/bin/env python3
"""confluent-kafka (librdkafka) admin calls over SASL, for the gregor e2e tests of clusters whose
only client listener is SASL_PLAINTEXT or SASL_SSL.

usage:
  sasl_admin.py BOOTSTRAP --user U --password P [--ca CA.pem] [--mechanism M] \
      create-topic TOPIC PARTITIONS RF [--config K=V ...]
  sasl_admin.py BOOTSTRAP ... describe TOPIC
  sasl_admin.py BOOTSTRAP ... add-scram USER PASSWORD [--scram-mechanism SCRAM-SHA-256]

The client logs in as sasl_client.py does (SASL_SSL when --ca is given, else SASL_PLAINTEXT).
create-topic prints {"created": TOPIC}. describe prints {"brokers": [ids], "controller": id,
"partitions": {"0": {"leader": id, "replicas": [..], "isr": [..]}}} from a Metadata request (an
unknown topic gives "partitions": {}; a failed request fails). add-scram makes a SCRAM credential
with AlterUserScramCredentials (4096 iterations) and prints {"added": USER}.
"""
import argparse
import sys

from confluent_kafka.admin import (AdminClient, NewTopic, ScramCredentialInfo, ScramMechanism,
                                   UserScramCredentialUpsertion)

from common import emit, fail
from sasl_client import add_login_args, base_conf


def admin(args, errors):
    return AdminClient(base_conf(args, errors))


def create_topic(args):
    errors = []
    configs = dict(c.split("=", 1) for c in args.config)
    client = admin(args, errors)  # kept alive until the futures resolve
    futures = client.create_topics(
        [NewTopic(args.topic, num_partitions=args.partitions, replication_factor=args.rf,
                  config=configs)],
        operation_timeout=10, request_timeout=15)
    try:
        futures[args.topic].result(timeout=20)
    except Exception as e:  # noqa: BLE001 - report whatever the client raised
        fail(f"create_topics({args.topic}): {e}; client errors {errors[:5]}")
    emit({"created": args.topic})


def describe(args):
    errors = []
    try:
        md = admin(args, errors).list_topics(topic=args.topic, timeout=10)
    except Exception as e:  # noqa: BLE001
        fail(f"metadata: {e}; client errors {errors[:5]}")
    partitions = {}
    t = md.topics.get(args.topic)
    if t is not None and t.error is None:
        for p in t.partitions.values():
            partitions[str(p.id)] = {"leader": p.leader, "replicas": list(p.replicas),
                                     "isr": sorted(p.isrs)}
    emit({"brokers": sorted(b.id for b in md.brokers.values()),
          "controller": md.controller_id, "partitions": partitions})


def add_scram(args):
    errors = []
    mechanism = {"SCRAM-SHA-256": ScramMechanism.SCRAM_SHA_256,
                 "SCRAM-SHA-512": ScramMechanism.SCRAM_SHA_512}[args.scram_mechanism]
    upsert = UserScramCredentialUpsertion(args.name, ScramCredentialInfo(mechanism, 4096),
                                          args.secret.encode())
    client = admin(args, errors)  # kept alive until the futures resolve
    futures = client.alter_user_scram_credentials([upsert], request_timeout=15)
    try:
        futures[args.name].result(timeout=20)
    except Exception as e:  # noqa: BLE001
        fail(f"alter_user_scram_credentials({args.name}): {e}; client errors {errors[:5]}")
    emit({"added": args.name})


def main():
    ap = argparse.ArgumentParser()
    add_login_args(ap)
    sub = ap.add_subparsers(dest="cmd", required=True)
    c = sub.add_parser("create-topic")
    c.add_argument("topic")
    c.add_argument("partitions", type=int)
    c.add_argument("rf", type=int)
    c.add_argument("--config", action="append", default=[])
    sub.add_parser("describe").add_argument("topic")
    s = sub.add_parser("add-scram")
    s.add_argument("name")
    s.add_argument("secret")
    s.add_argument("--scram-mechanism", default="SCRAM-SHA-256")
    args = ap.parse_args()
    {"create-topic": create_topic, "describe": describe, "add-scram": add_scram}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
