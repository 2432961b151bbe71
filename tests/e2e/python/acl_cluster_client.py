#!/usr/bin/env python3
"""confluent-kafka (librdkafka) as the users of an ACL-protected cluster, for the gregor e2e test
`cluster_acls`: an admin who sets the cluster up, and users whose requests the StandardAuthorizer
allows or refuses. Every form logs in over SASL_SSL (SASL_PLAINTEXT without --ca) as sasl_client.py
does; the producer's stream is sasl_client.py's own `stream`.

usage (every form: BOOTSTRAP --user U --password P [--mechanism M] [--ca CA.pem] ...):
  scram USER:PASSWORD ...          AlterUserScramCredentials: a SCRAM-SHA-256 credential each
  create-acls SPEC ...             CreateAcls (host "*"); SPEC is "principal|permission|
                                   operation|resource type|pattern type|name", e.g.
                                   "User:bob|ALLOW|READ|GROUP|LITERAL|billing"
  describe-acls                    DescribeAcls of everything: {"acls": [SPEC, ...]} sorted
  create-topic TOPIC PARTITIONS RF [--config K=V ...]
  describe TOPIC                   {"brokers": [ids], "error": null | name,
                                    "partitions": {p: {"leader", "replicas", "isr"}}}
  metadata TOPIC                   {"error": null | name, "partitions": n} from the first
                                   Metadata answer (the bootstrap broker's)
  probe TOPIC --partitions N [--produce] [--group G] [--fetch]
  group-read TOPIC GROUP           one session of consumer group GROUP (below)

probe tries what a user may be refused and prints what the broker answered, never failing itself:
{"metadata": null | error name of TOPIC in Metadata,
 "produce": {p: null | error name} (one record to each partition, each by a producer of
            its own, no retries),
 "group": {"errors": [...], "records": n} (subscribed in group G, enable.auto.commit off),
 "fetch": {"partitions": {p: error name}, "errors": [...], "records": n} (each partition
          assigned from the beginning to a consumer of its own, no group offsets used)}
"errors" are the distinct error names librdkafka reported (consumer errors and its error
callback); a step not asked for is null.

group-read joins GROUP subscribed to TOPIC, waits for its assignment, notes each partition's high
watermark, reads from the group's committed offsets (the earliest offset without one) up to those
watermarks, keeps nothing at or past them, commits exactly the watermarks synchronously, leaves
the group and prints {"records": [[partition, offset, key, value], ...], "started": {p: offset},
"committed": {p: offset}}. Two sessions one after the other thus read every record once.
"""
import argparse
import sys
import time

from confluent_kafka import (Consumer, KafkaError, KafkaException, Producer, TopicPartition,
                             OFFSET_BEGINNING)
from confluent_kafka.admin import (AclBinding, AclBindingFilter, AclOperation, AclPermissionType,
                                   AdminClient, NewTopic, ResourcePatternType, ResourceType,
                                   ScramCredentialInfo, ScramMechanism,
                                   UserScramCredentialUpsertion)

from common import decode, emit, fail
from sasl_client import add_login_args, base_conf

# How long a probe waits for each refusal to come.
PROBE_SECONDS = 8


def admin_client(args, errors):
    return AdminClient(base_conf(args, errors))


def results(futures, what, errors):
    """Waits for every future of an admin call; fails with the first error."""
    for key, f in futures.items():
        try:
            f.result(timeout=30)
        except Exception as e:  # noqa: BLE001 - report whatever the client raised
            fail(f"{what} {key}: {e}; client errors {errors[:5]}")


def scram(args):
    errors = []
    admin = admin_client(args, errors)
    upserts = []
    for entry in args.entries:
        user, _, password = entry.partition(":")
        upserts.append(UserScramCredentialUpsertion(
            user, ScramCredentialInfo(ScramMechanism.SCRAM_SHA_256, 4096),
            password.encode()))
    results(admin.alter_user_scram_credentials(upserts), "alter_user_scram_credentials", errors)
    emit({"users": sorted(u.user for u in upserts)})


def spec_of(b):
    return "|".join([b.principal, b.permission_type.name, b.operation.name,
                     b.restype.name, b.resource_pattern_type.name, b.name])


def binding_of(spec):
    principal, permission, operation, restype, pattern, name = spec.split("|")
    return AclBinding(ResourceType[restype], name, ResourcePatternType[pattern], principal, "*",
                      AclOperation[operation], AclPermissionType[permission])


def create_acls(args):
    errors = []
    admin = admin_client(args, errors)
    bindings = [binding_of(s) for s in args.specs]
    results(admin.create_acls(bindings, request_timeout=30), "create_acls", errors)
    emit({"created": sorted(spec_of(b) for b in bindings)})


def describe_acls(args):
    errors = []
    admin = admin_client(args, errors)
    everything = AclBindingFilter(ResourceType.ANY, None, ResourcePatternType.ANY, None, None,
                                  AclOperation.ANY, AclPermissionType.ANY)
    try:
        found = admin.describe_acls(everything, request_timeout=30).result(timeout=30)
    except Exception as e:  # noqa: BLE001
        fail(f"describe_acls: {e}; client errors {errors[:5]}")
    emit({"acls": sorted(spec_of(b) for b in found)})


def create_topic(args):
    errors = []
    admin = admin_client(args, errors)
    configs = dict(c.split("=", 1) for c in args.config)
    topic = NewTopic(args.topic, num_partitions=args.partitions,
                     replication_factor=args.replication_factor, config=configs)
    results(admin.create_topics([topic], operation_timeout=20, request_timeout=30),
            "create_topics", errors)
    emit({"created": args.topic})


def describe(args):
    errors = []
    admin = admin_client(args, errors)
    try:
        md = admin.list_topics(args.topic, timeout=15)
    except KafkaException as e:
        fail(f"metadata for {args.topic}: {e}; client errors {errors[:5]}")
    topic = md.topics.get(args.topic)
    error = None if topic is None or topic.error is None else topic.error.name()
    partitions = {}
    if topic is not None:
        for p, s in topic.partitions.items():
            partitions[str(p)] = {"leader": s.leader, "replicas": list(s.replicas),
                                  "isr": sorted(s.isrs)}
    emit({"brokers": sorted(md.brokers), "error": error, "partitions": partitions})


def metadata(args):
    errors = []
    producer = Producer({**base_conf(args, errors), "topic.metadata.refresh.interval.ms": -1})
    try:
        md = producer.list_topics(args.topic, timeout=15)
    except KafkaException as e:
        fail(f"metadata for {args.topic}: {e}; client errors {errors[:5]}")
    topic = md.topics.get(args.topic)
    error = None if topic is None or topic.error is None else topic.error.name()
    emit({"error": error, "partitions": 0 if topic is None else len(topic.partitions),
          "brokers": sorted(md.brokers)})


def probe_metadata(args, errors):
    producer = Producer(base_conf(args, errors))
    try:
        topic = producer.list_topics(args.topic, timeout=10).topics.get(args.topic)
    except KafkaException as e:
        return f"list_topics: {e}"
    if topic is None:
        return "no such topic in the answer"
    return None if topic.error is None else topic.error.name()


def probe_produce(args, errors):
    # One producer per partition: a TOPIC_AUTHORIZATION_FAILED answer puts librdkafka's whole
    # topic in error, and a record still queued for another partition then fails in the client
    # (_UNKNOWN_PARTITION, _DESTROY) without ever reaching its leader.
    outcome = {}
    for p in range(args.partitions):
        producer = Producer({**base_conf(args, errors), "acks": "all", "retries": 0,
                             "enable.idempotence": False, "message.timeout.ms": 10000})
        reports = []
        producer.produce(args.topic, key=f"probe-{p}", value=f"probe-{p}", partition=p,
                         on_delivery=lambda err, _msg: reports.append(err))
        left = producer.flush(15)
        if left or not reports:
            outcome[str(p)] = f"no delivery report ({left} unflushed)"
        else:
            outcome[str(p)] = None if reports[0] is None else reports[0].name()
    return outcome


def probe_consumer(args, errors, group):
    """A consumer whose consumer errors (and error callback) are gathered by name."""
    seen = []

    def on_error(err):
        errors.append(f"{err.name()}: {err.str()}")
        seen.append(err.name())

    consumer = Consumer({**base_conf(args, errors), "error_cb": on_error, "group.id": group,
                         "enable.auto.commit": False, "auto.offset.reset": "earliest",
                         "fetch.wait.max.ms": 100, "session.timeout.ms": 10000,
                         "heartbeat.interval.ms": 500})
    return consumer, seen


def probe_group(args, errors):
    consumer, seen = probe_consumer(args, errors, args.group)
    consumer.subscribe([args.topic])
    records = 0
    deadline = time.monotonic() + PROBE_SECONDS
    while time.monotonic() < deadline and "GROUP_AUTHORIZATION_FAILED" not in seen:
        msg = consumer.poll(0.2)
        if msg is None:
            continue
        if msg.error() is not None:
            seen.append(msg.error().name())
        else:
            records += 1
    consumer.close()
    return {"errors": sorted(set(seen)), "records": records}


def probe_fetch(args, errors):
    # One consumer per partition, so that one leader's refusal cannot stand for another's.
    refused, records, seen = {}, 0, []
    for p in range(args.partitions):
        # librdkafka wants a group.id even for assign(); no offsets of it are read or committed.
        consumer, errs = probe_consumer(args, errors, "acl-probe-unused")
        consumer.assign([TopicPartition(args.topic, p, OFFSET_BEGINNING)])
        deadline = time.monotonic() + PROBE_SECONDS
        while time.monotonic() < deadline and str(p) not in refused:
            msg = consumer.poll(0.2)
            if msg is None:
                continue
            err = msg.error()
            if err is None:
                records += 1
                continue
            if err.code() == KafkaError._PARTITION_EOF:
                continue
            errs.append(err.name())
            # The group's own errors (its coordinator lookup) name no topic.
            if msg.topic() == args.topic and msg.partition() == p:
                refused[str(p)] = err.name()
        consumer.close()
        seen.extend(errs)
    return {"partitions": refused, "errors": sorted(set(seen)), "records": records}


def probe(args):
    errors = []
    emit({"metadata": probe_metadata(args, errors),
          "produce": probe_produce(args, errors) if args.produce else None,
          "group": probe_group(args, errors) if args.group else None,
          "fetch": probe_fetch(args, errors) if args.fetch else None})


def group_read(args):
    errors = []
    consumer = Consumer({**base_conf(args, errors), "group.id": args.group,
                         "enable.auto.commit": False, "enable.auto.offset.store": False,
                         "auto.offset.reset": "earliest", "fetch.wait.max.ms": 100,
                         "session.timeout.ms": 10000, "heartbeat.interval.ms": 500})
    consumer.subscribe([args.topic])
    deadline = time.monotonic() + 60

    def check_deadline(what):
        if time.monotonic() > deadline:
            fail(f"timed out {what}; client errors {errors[:5]}")

    pending = []
    while not consumer.assignment():
        check_deadline("waiting for an assignment")
        msg = consumer.poll(0.2)
        if msg is not None:
            pending.append(msg)
    assigned = sorted(tp.partition for tp in consumer.assignment())
    high = {}
    for p in assigned:
        try:
            high[p] = consumer.get_watermark_offsets(TopicPartition(args.topic, p),
                                                     timeout=15)[1]
        except KafkaException as e:
            fail(f"high watermark of partition {p}: {e}; client errors {errors[:5]}")
    try:
        committed = consumer.committed([TopicPartition(args.topic, p) for p in assigned],
                                       timeout=15)
    except KafkaException as e:
        fail(f"committed offsets: {e}; client errors {errors[:5]}")
    started = {tp.partition: max(tp.offset, 0) for tp in committed}
    next_offset = dict(started)
    records = []

    def take(msg):
        err = msg.error()
        if err is not None:
            if err.code() != KafkaError._PARTITION_EOF:
                fail(f"consume error: {err}; client errors {errors[:5]}")
            return
        p, o = msg.partition(), msg.offset()
        if o >= high[p]:
            return
        if o != next_offset[p]:
            fail(f"partition {p}: offset {o} read where {next_offset[p]} was next")
        records.append([p, o, decode(msg.key()), decode(msg.value())])
        next_offset[p] = o + 1

    for msg in pending:
        take(msg)
    while any(next_offset[p] < high[p] for p in assigned):
        check_deadline(f"reading: at {next_offset}, high watermarks {high}")
        msg = consumer.poll(0.2)
        if msg is not None:
            take(msg)
    try:
        consumer.commit(offsets=[TopicPartition(args.topic, p, high[p]) for p in assigned],
                        asynchronous=False)
    except KafkaException as e:
        fail(f"commit: {e}; client errors {errors[:5]}")
    consumer.close()
    emit({"records": records, "started": {str(p): o for p, o in started.items()},
          "committed": {str(p): o for p, o in high.items()}})


def main():
    ap = argparse.ArgumentParser()
    add_login_args(ap)
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("scram").add_argument("entries", nargs="+")
    sub.add_parser("create-acls").add_argument("specs", nargs="+")
    sub.add_parser("describe-acls")
    ct = sub.add_parser("create-topic")
    ct.add_argument("topic")
    ct.add_argument("partitions", type=int)
    ct.add_argument("replication_factor", type=int)
    ct.add_argument("--config", action="append", default=[])
    sub.add_parser("describe").add_argument("topic")
    sub.add_parser("metadata").add_argument("topic")
    pr = sub.add_parser("probe")
    pr.add_argument("topic")
    pr.add_argument("--partitions", type=int, required=True)
    pr.add_argument("--produce", action="store_true")
    pr.add_argument("--group")
    pr.add_argument("--fetch", action="store_true")
    gr = sub.add_parser("group-read")
    gr.add_argument("topic")
    gr.add_argument("group")
    args = ap.parse_args()
    {"scram": scram, "create-acls": create_acls, "describe-acls": describe_acls,
     "create-topic": create_topic, "describe": describe, "metadata": metadata, "probe": probe,
     "group-read": group_read}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
