#!/usr/bin/env python3
"""confluent-kafka (librdkafka) consumer-group scenarios for the gregor e2e tests.

usage:
  group_client.py BOOTSTRAP split TOPIC GROUP --expect N [--members M]
  group_client.py BOOTSTRAP leave TOPIC GROUP --expect N
  group_client.py BOOTSTRAP kill TOPIC GROUP --session-timeout-ms MS [--wait S]
  group_client.py BOOTSTRAP member TOPIC GROUP --session-timeout-ms MS    (helper for kill)
  group_client.py BOOTSTRAP consume-commit TOPIC GROUP --count N
  group_client.py BOOTSTRAP standalone-commit TOPIC GROUP --offsets P:O,P:O,...

Every scenario takes --group-protocol classic|consumer (KIP-848). With `consumer` the session
timeout and heartbeat interval are the broker's (group.consumer.*), so the client sets neither.

Every scenario prints one JSON document; records are [partition, offset, key, value]. Members
commit synchronously after each record they process, so a record is only re-read by another
member if its commit failed (those are reported in "commit_failed").
"""
import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time

from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

from common import decode, emit, fail, key_of, value_of


def consumer_conf(args, **extra):
    conf = {
        "bootstrap.servers": args.bootstrap,
        "group.id": args.group,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        "fetch.wait.max.ms": 100,
        "heartbeat.interval.ms": 300,
        "session.timeout.ms": 10000,
        "topic.metadata.refresh.interval.ms": 2000,
    }
    conf.update(extra)
    if args.group_protocol == "consumer":
        # KIP-848: the broker decides the session and the heartbeat; librdkafka refuses both.
        conf.pop("session.timeout.ms", None)
        conf.pop("heartbeat.interval.ms", None)
        conf["group.protocol"] = "consumer"
    return conf


class Member:
    """One group member polled by its own thread; all its observations kept for the report."""

    def __init__(self, name, conf, topic):
        self.name = name
        self.topic = topic
        self.consumer = Consumer(conf)
        self.lock = threading.Lock()
        self.generation = 0          # how many assignments this member has received
        self.assignment = []         # current partitions
        self.history = []            # [[t, "assign"|"revoke"|"lost", partitions], ...]
        self.records = []            # [partition, offset, key, value, generation]
        self.commit_failed = []      # [partition, offset, error]
        self.errors = []
        self.final = None            # the assignment when close() was called
        self.limit = None            # stop polling after this many records
        self.stop = threading.Event()
        self.closed = threading.Event()
        self.started = time.monotonic()
        self.thread = threading.Thread(target=self.run, name=name, daemon=True)

    # The classic (eager) protocol revokes everything and assigns the whole new assignment;
    # KIP-848's is incremental (only the partitions added or taken away): both are a union
    # with what is assigned and a difference with what is revoked.
    def on_assign(self, consumer, partitions):
        with self.lock:
            self.generation += 1
            added = {p.partition for p in partitions}
            self.assignment = sorted(set(self.assignment) | added)
            self.history.append([round(time.monotonic() - self.started, 3), "assign",
                                 self.assignment])

    def on_revoke(self, consumer, partitions):
        with self.lock:
            revoked = {p.partition for p in partitions}
            self.assignment = sorted(set(self.assignment) - revoked)
            self.history.append([round(time.monotonic() - self.started, 3), "revoke",
                                 sorted(revoked)])

    def on_lost(self, consumer, partitions):
        with self.lock:
            lost = {p.partition for p in partitions}
            self.assignment = sorted(set(self.assignment) - lost)
            self.history.append([round(time.monotonic() - self.started, 3), "lost",
                                 sorted(lost)])

    def start(self):
        self.consumer.subscribe([self.topic], on_assign=self.on_assign, on_revoke=self.on_revoke,
                                on_lost=self.on_lost)
        self.thread.start()

    def run(self):
        try:
            while not self.stop.is_set():
                if self.limit is not None and len(self.records) >= self.limit:
                    break
                msg = self.consumer.poll(0.2)
                if msg is None:
                    continue
                if msg.error() is not None:
                    if msg.error().code() != KafkaError._PARTITION_EOF:
                        self.errors.append(str(msg.error()))
                    continue
                with self.lock:
                    self.records.append([msg.partition(), msg.offset(), decode(msg.key()),
                                         decode(msg.value()), self.generation])
                try:
                    self.consumer.commit(message=msg, asynchronous=False)
                except KafkaException as e:
                    self.commit_failed.append([msg.partition(), msg.offset(), str(e)])
        finally:
            try:
                self.consumer.close()
            except Exception as e:  # noqa: BLE001
                self.errors.append(f"close: {e}")
            self.closed.set()

    def freeze(self):
        """Records the assignment as the final one (before any member of the group closes: a
        closing member's LeaveGroup starts a rebalance that revokes the others' partitions)."""
        with self.lock:
            self.final = list(self.assignment)

    def close(self, timeout=20):
        with self.lock:
            if self.final is None:
                self.final = list(self.assignment)
        self.stop.set()
        if not self.closed.wait(timeout):
            fail(f"{self.name}: close() did not return within {timeout}s")

    def current(self):
        with self.lock:
            return list(self.assignment)

    def count(self):
        with self.lock:
            return len(self.records)

    def report(self):
        with self.lock:
            assignment = self.assignment if self.final is None else self.final
            return {"name": self.name, "assignment": assignment, "history": self.history,
                    "generations": self.generation, "records": self.records,
                    "commit_failed": self.commit_failed, "errors": self.errors[:20]}


def wait_until(what, pred, timeout, members):
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            fail(f"timed out after {timeout}s waiting for {what}; members: "
                 + json.dumps([{k: v for k, v in m.report().items() if k != "records"}
                               for m in members]))
        time.sleep(0.05)


def partitions_of(args, consumer):
    md = consumer.list_topics(args.topic, timeout=15)
    t = md.topics.get(args.topic)
    if t is None or t.error is not None:
        fail(f"no metadata for {args.topic}")
    return sorted(t.partitions.keys())


def split_ok(members, all_partitions):
    """Every member has >= 1 partition, assignments disjoint, union = every partition."""
    got = [m.current() for m in members]
    flat = [p for a in got for p in a]
    return all(got) and sorted(flat) == all_partitions


def split(args):
    """M members join together, split the partitions, consume `expect` records between them."""
    members = [Member(f"m{i}", consumer_conf(args), args.topic) for i in range(args.members)]
    all_partitions = partitions_of(args, members[0].consumer)
    for m in members:
        m.start()
    wait_until("the partitions to be split between every member",
               lambda: split_ok(members, all_partitions), args.wait, members)
    wait_until(f"{args.expect} records", lambda: sum(m.count() for m in members) >= args.expect,
               args.wait, members)
    time.sleep(0.5)  # anything delivered twice would show up now
    # A rebalance may be under way at this instant (a member's partitions revoked, the new
    # assignment not delivered yet); the final split is the one the group settles on.
    wait_until("the partitions to be split again after any late rebalance",
               lambda: split_ok(members, all_partitions), args.wait, members)
    assignment_at_end = {m.name: m.current() for m in members}
    history_at_end = {m.name: list(m.history) for m in members}
    for m in members:
        m.freeze()
    for m in members:
        m.close()
    emit({"partitions": all_partitions, "final": assignment_at_end,
          "history_at_end": history_at_end,
          "members": [m.report() for m in members]})


def leave(args):
    """Two members split the topic; one closes (LeaveGroup); the survivor gets every partition
    and also consumes records produced after that, on the leaver's former partitions too."""
    a = Member("survivor", consumer_conf(args), args.topic)
    b = Member("leaver", consumer_conf(args), args.topic)
    all_partitions = partitions_of(args, a.consumer)
    a.start()
    b.start()
    wait_until("the partitions to be split between both members",
               lambda: split_ok([a, b], all_partitions), args.wait, [a, b])
    split_seen = {"survivor": a.current(), "leaver": b.current()}
    leaver_partitions = b.current()
    wait_until(f"{args.expect} records", lambda: a.count() + b.count() >= args.expect,
               args.wait, [a, b])
    t0 = time.monotonic()
    b.close()
    wait_until("the survivor to be assigned every partition",
               lambda: a.current() == all_partitions, args.wait, [a, b])
    reassigned_after = time.monotonic() - t0
    # New records, on every partition, must reach the survivor.
    producer = Producer({"bootstrap.servers": args.bootstrap, "acks": "all",
                         "enable.idempotence": False, "message.timeout.ms": 20000})
    extra = 40
    for i in range(args.expect, args.expect + extra):
        producer.produce(args.topic, key=key_of(i, 50), value=value_of(i, 50))
    if producer.flush(30):
        fail("records produced after the leave were not acknowledged")
    wait_until(f"{args.expect + extra} records in all",
               lambda: a.count() + b.count() >= args.expect + extra, args.wait, [a, b])
    time.sleep(0.5)
    a.close()
    emit({"partitions": all_partitions, "split": split_seen, "leaver_partitions": leaver_partitions,
          "reassigned_after_s": round(reassigned_after, 3), "extra": extra,
          "members": [a.report(), b.report()]})


def member(args):
    """Helper process for `kill`: joins the group, prints its assignments as JSON lines."""
    conf = consumer_conf(args, **{"session.timeout.ms": args.session_timeout_ms})
    consumer = Consumer(conf)

    def on_assign(_c, partitions):
        print(json.dumps({"assigned": sorted(p.partition for p in partitions)}), flush=True)

    consumer.subscribe([args.topic], on_assign=on_assign)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        consumer.poll(0.2)


def kill(args):
    """A member process is SIGKILLed; the broker expires it after session.timeout.ms and the
    survivor is rebalanced to every partition."""
    a = Member("survivor", consumer_conf(args, **{"session.timeout.ms": args.session_timeout_ms}),
               args.topic)
    all_partitions = partitions_of(args, a.consumer)
    a.start()
    wait_until("the survivor's first assignment", lambda: a.current() == all_partitions,
               args.wait, [a])
    victim = subprocess.Popen(
        [sys.executable, "-u", "-B", os.path.abspath(__file__), args.bootstrap, "member",
         args.topic, args.group, "--session-timeout-ms", str(args.session_timeout_ms),
         "--group-protocol", args.group_protocol],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_until("the partitions to be split between the survivor and the victim",
                   lambda: a.current() and a.current() != all_partitions, args.wait, [a])
        split_seen = a.current()
        time.sleep(1.0)  # let the victim heartbeat a few times
        os.kill(victim.pid, signal.SIGKILL)
        victim.wait(10)
        t0 = time.monotonic()
        wait_until("the survivor to be assigned every partition after the kill",
                   lambda: a.current() == all_partitions, args.wait, [a])
        took = time.monotonic() - t0
    finally:
        if victim.poll() is None:
            victim.kill()
            victim.wait(10)
    victim_out = victim.stdout.read()
    a.close()
    emit({"partitions": all_partitions, "survivor_during_split": split_seen,
          "victim_stdout": victim_out, "reassigned_after_s": round(took, 3),
          "survivor": {k: v for k, v in a.report().items() if k != "records"}})


def consume_commit(args):
    """Joins the group, reads `count` records (from the committed offsets, else the beginning),
    committing each synchronously, then closes. Reports what it read and what is committed."""
    m = Member("m0", consumer_conf(args), args.topic)
    all_partitions = partitions_of(args, m.consumer)
    m.limit = args.count
    m.start()
    wait_until(f"{args.count} records", lambda: m.count() >= args.count, args.wait, [m])
    if not m.closed.wait(20):
        fail("close() did not return")
    checker = Consumer(consumer_conf(args))
    committed = checker.committed([TopicPartition(args.topic, p) for p in all_partitions],
                                  timeout=15)
    checker.close()
    rep = m.report()
    emit({"records": [r[:4] for r in rep["records"]], "commit_failed": rep["commit_failed"],
          "committed": {str(tp.partition): tp.offset for tp in committed},
          "errors": rep["errors"]})


def standalone_commit(args):
    """assign() without subscribe, commit given offsets with the group id, read them back."""
    wanted = {}
    for item in args.offsets.split(","):
        p, o = item.split(":")
        wanted[int(p)] = int(o)
    c = Consumer(consumer_conf(args))
    tps = [TopicPartition(args.topic, p, o) for p, o in sorted(wanted.items())]
    c.assign([TopicPartition(args.topic, p) for p in sorted(wanted)])
    try:
        c.commit(offsets=tps, asynchronous=False)
    except KafkaException as e:
        fail(f"commit: {e}")
    got = c.committed([TopicPartition(args.topic, p) for p in sorted(wanted)], timeout=15)
    c.close()
    # A fresh consumer (new connection, same group) sees them too.
    c2 = Consumer(consumer_conf(args))
    got2 = c2.committed([TopicPartition(args.topic, p) for p in sorted(wanted)], timeout=15)
    c2.close()
    emit({"committed": {str(tp.partition): tp.offset for tp in got},
          "committed_fresh": {str(tp.partition): tp.offset for tp in got2},
          "errors": [str(tp.error) for tp in list(got) + list(got2) if tp.error is not None]})


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("bootstrap")
    sub = ap.add_subparsers(dest="cmd", required=True)
    for name in ("split", "leave", "kill", "member", "consume-commit", "standalone-commit"):
        s = sub.add_parser(name)
        s.add_argument("topic")
        s.add_argument("group")
        s.add_argument("--wait", type=float, default=30)
        s.add_argument("--expect", type=int, default=0)
        s.add_argument("--members", type=int, default=2)
        s.add_argument("--session-timeout-ms", type=int, default=6000)
        s.add_argument("--count", type=int, default=0)
        s.add_argument("--offsets", default="")
        s.add_argument("--group-protocol", choices=("classic", "consumer"), default="classic")
    args = ap.parse_args()
    {"split": split, "leave": leave, "kill": kill, "member": member,
     "consume-commit": consume_commit, "standalone-commit": standalone_commit}[args.cmd](args)


if __name__ == "__main__":
    sys.exit(main())
