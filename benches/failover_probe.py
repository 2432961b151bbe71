#!/usr/bin/env python3
"""Failover probe for benches/cluster.sh (confluent-kafka, acks=all).

usage: failover_probe.py BOOTSTRAP TOPIC KILLFILE
       failover_probe.py --leader BOOTSTRAP TOPIC

Produces one record every 5 ms to partition 0 of TOPIC. Once 2 s of records have been
acknowledged it creates KILLFILE (the caller then kills the partition's leader with kill -9 and
writes the kill time, seconds since the epoch, to `killed` beside KILLFILE). It then prints the
milliseconds from the kill to the acknowledgement of the first record produced after the kill,
and the number of records that failed, and exits. `--leader` prints partition 0's leader id.
"""
import os
import sys
import time

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient


def leader(bootstrap, topic):
    md = AdminClient({"bootstrap.servers": bootstrap}).list_topics(topic, timeout=10)
    print(md.topics[topic].partitions[0].leader)


def main():
    if sys.argv[1] == "--leader":
        leader(sys.argv[2], sys.argv[3])
        return
    bootstrap, topic, killfile = sys.argv[1:4]
    killed_file = os.path.join(os.path.dirname(killfile), "killed")
    p = Producer({
        "bootstrap.servers": bootstrap,
        "acks": "all",
        "linger.ms": 0,
        "enable.idempotence": False,
        "message.timeout.ms": 30000,
        "retry.backoff.ms": 20,
        "retry.backoff.max.ms": 100,
        "reconnect.backoff.ms": 20,
        "reconnect.backoff.max.ms": 200,
        "topic.metadata.refresh.interval.ms": 250,
    })
    state = {"acked": 0, "failed": 0, "first_after": None}
    kill_at = None

    def on_delivery(err, msg):
        if err is not None:
            state["failed"] += 1
            return
        state["acked"] += 1
        sent = float(msg.value().decode())
        if kill_at is not None and sent > kill_at and state["first_after"] is None:
            state["first_after"] = time.time()

    started = time.time()
    deadline = started + 60
    while time.time() < deadline:
        p.produce(topic, value=f"{time.time():.6f}".encode(), partition=0, on_delivery=on_delivery)
        p.poll(0.005)
        if kill_at is None:
            if state["acked"] >= 400 and not os.path.exists(killfile):
                open(killfile, "w").close()
            if os.path.exists(killed_file):
                try:
                    kill_at = float(open(killed_file).read().strip())
                except ValueError:
                    pass
        elif state["first_after"] is not None:
            break
    p.flush(5)
    if state["first_after"] is None:
        print(f"timeout failed={state['failed']}")
        return
    print(f"{(state['first_after'] - kill_at) * 1000:.0f} failed={state['failed']}")


if __name__ == "__main__":
    main()
