#!/usr/bin/env python3
"""kafka-python consumer group + group admin scenario for the gregor e2e tests.

usage: kafka_python_group.py BOOTSTRAP TOPIC GROUP --expect N

A KafkaConsumer with group_id subscribes to TOPIC, reads N records, commits synchronously and,
still a member, asks KafkaAdminClient for list_groups / describe_groups / list_group_offsets
(kafka-python 3's names for list_consumer_groups / describe_consumer_groups /
list_consumer_group_offsets). Then it closes the consumer, describes the now empty group and
deletes it. Every admin call's result, or its error, is in the JSON document printed.
"""
import argparse
import sys
import time

from kafka import KafkaConsumer
from kafka.admin import KafkaAdminClient

from common import decode, emit, fail

TIMEOUT_MS = 15000


def plain(x):
    """Admin results (namedtuples, enums, TopicPartition keys) as JSON-friendly values."""
    if isinstance(x, dict):
        return {str(plain_key(k)): plain(v) for k, v in x.items()}
    if hasattr(x, "_asdict"):
        return plain(x._asdict())
    if isinstance(x, (list, tuple, set)):
        return [plain(v) for v in x]
    if isinstance(x, (str, int, float, bool)) or x is None:
        return x
    if isinstance(x, bytes):
        return x.hex()
    return str(x)


def plain_key(k):
    if hasattr(k, "topic") and hasattr(k, "partition"):
        return f"{k.topic}:{k.partition}"
    return k


def call(out, name, fn):
    try:
        out[name] = plain(fn())
    except Exception as e:  # noqa: BLE001 - the test reports which call failed and how
        out[name + "_error"] = repr(e)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("bootstrap")
    ap.add_argument("topic")
    ap.add_argument("group")
    ap.add_argument("--expect", type=int, required=True)
    ap.add_argument("--timeout", type=float, default=60)
    args = ap.parse_args()

    consumer = KafkaConsumer(
        args.topic,
        bootstrap_servers=args.bootstrap,
        group_id=args.group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        request_timeout_ms=TIMEOUT_MS,
        fetch_max_wait_ms=100,
        heartbeat_interval_ms=500,
    )
    records = []
    deadline = time.monotonic() + args.timeout
    while len(records) < args.expect:
        if time.monotonic() > deadline:
            fail(f"timed out with {len(records)}/{args.expect} records; "
                 f"assignment {consumer.assignment()}")
        for _tp, msgs in consumer.poll(timeout_ms=500).items():
            for m in msgs:
                records.append([m.partition, m.offset, decode(m.key), decode(m.value)])
    try:
        consumer.commit()
    except Exception as e:  # noqa: BLE001
        fail(f"commit(): {e!r}")
    assignment = sorted(tp.partition for tp in consumer.assignment())
    committed = {str(tp.partition): consumer.committed(tp) for tp in consumer.assignment()}

    out = {"records": records, "assignment": assignment, "committed": committed}
    admin = KafkaAdminClient(bootstrap_servers=args.bootstrap, request_timeout_ms=TIMEOUT_MS)
    call(out, "list_groups", admin.list_groups)
    call(out, "describe_groups", lambda: admin.describe_groups([args.group]))
    call(out, "list_group_offsets", lambda: admin.list_group_offsets(args.group))
    consumer.close()
    call(out, "describe_after_close", lambda: admin.describe_groups([args.group]))
    call(out, "delete_groups", lambda: admin.delete_groups([args.group]))
    call(out, "list_after_delete", admin.list_groups)
    admin.close()
    emit(out)


if __name__ == "__main__":
    sys.exit(main())
