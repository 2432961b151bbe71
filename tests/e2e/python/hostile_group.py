#!/usr/bin/env python3
"""confluent-kafka (librdkafka) group steps for the hostile-request e2e tests.

usage:
  hostile_group.py BOOTSTRAP join-leave TOPIC GROUP
  hostile_group.py BOOTSTRAP list-groups

join-leave subscribes one consumer to TOPIC in GROUP, waits for its assignment, and closes it
(LeaveGroup) without committing anything; it prints {"assigned": [partitions]}.
list-groups prints {"groups": {group_id: state}} from the admin API's ListGroups and
{"described": {group_id: state}} from its DescribeGroups of those groups.
"""
import argparse
import time

from confluent_kafka import Consumer
from confluent_kafka.admin import AdminClient

from common import emit, fail


def join_leave(args):
    consumer = Consumer({
        "bootstrap.servers": args.bootstrap,
        "group.id": args.group,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "session.timeout.ms": 10000,
        "heartbeat.interval.ms": 300,
    })
    consumer.subscribe([args.topic])
    deadline = time.time() + 30
    assigned = []
    while time.time() < deadline and not assigned:
        consumer.poll(0.2)
        assigned = [tp.partition for tp in consumer.assignment()]
    consumer.close()
    if not assigned:
        fail("no assignment within 30 s")
    emit({"assigned": sorted(assigned)})


def list_groups(args):
    admin = AdminClient({"bootstrap.servers": args.bootstrap})
    result = admin.list_consumer_groups(request_timeout=15).result()
    if result.errors:
        fail(f"ListGroups errors: {result.errors}")
    groups = {g.group_id: g.state.name for g in result.valid}
    described = {}
    if groups:
        futures = admin.describe_consumer_groups(list(groups), request_timeout=15)
        for group_id, future in futures.items():
            described[group_id] = future.result().state.name
    emit({"groups": groups, "described": described})


def main():
    p = argparse.ArgumentParser()
    p.add_argument("bootstrap")
    sub = p.add_subparsers(dest="cmd", required=True)
    jl = sub.add_parser("join-leave")
    jl.add_argument("topic")
    jl.add_argument("group")
    sub.add_parser("list-groups")
    args = p.parse_args()
    {"join-leave": join_leave, "list-groups": list_groups}[args.cmd](args)


if __name__ == "__main__":
    main()
