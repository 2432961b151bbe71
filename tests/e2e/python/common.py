"""Helpers shared by the e2e client scripts: the records the tests produce, and JSON output.

Every script takes the bootstrap address first, prints one JSON document on stdout and exits
non-zero with a message on stderr when something is wrong.
"""
import json
import signal
import sys


def key_of(i, keys):
    return f"k{i % keys:04d}"


def value_of(i, size):
    """Value of record i: a unique, sortable prefix, padded with compressible text to `size`."""
    head = f"v{i:07d}|"
    pad = max(0, size - len(head))
    return head + ("gregor-e2e " * (pad // 11 + 1))[:pad]


def index_of(value):
    return int(value[1:8])


def emit(doc):
    json.dump(doc, sys.stdout)
    sys.stdout.write("\n")
    sys.stdout.flush()


def fail(msg):
    sys.stderr.write(f"FAIL: {msg}\n")
    sys.stderr.flush()
    sys.exit(1)


def decode(b):
    return None if b is None else b.decode("utf-8", "replace")


def brokers_of(md):
    """The brokers of a Metadata answer, [[id, host, port], ...] sorted."""
    return sorted([b.id, b.host, b.port] for b in md.brokers.values())


def produce_and_emit(producer, topic, count, errors):
    """Produces records 0..count (50 keys, 100-byte values), fails unless every one is
    delivered, and prints {"delivered": [...], "brokers": [...]}; `errors` are the client's."""
    delivered, failed, left = produce_keyed(producer, topic, count, 50, 100)
    if left or failed or len(delivered) != count:
        fail(f"{len(delivered)} of {count} delivered, {left} left; delivery errors "
             f"{failed[:5]}; client errors {errors[:5]}")
    emit({"delivered": delivered, "brokers": brokers_of(producer.list_topics(timeout=15))})


def produce_keyed(producer, topic, count, keys, size):
    """Sends records 0..count (key_of, value_of) through a confluent-kafka `producer` and flushes:
    ([[partition, offset, key, value], ...] delivered, [delivery errors], records left unflushed)."""
    delivered, failed = [], []

    def on_delivery(err, msg):
        if err is not None:
            failed.append(str(err))
        else:
            delivered.append([msg.partition(), msg.offset(), decode(msg.key()), decode(msg.value())])

    for i in range(count):
        while True:
            try:
                producer.produce(topic, key=key_of(i, keys), value=value_of(i, size),
                                 on_delivery=on_delivery)
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    left = producer.flush(60)
    return delivered, failed, left


class StopOnTerm:
    """Set by SIGTERM: a loop that runs until the test stops it checks `stop.requested` between
    units of work, so it ends at a boundary and can still report."""

    def __init__(self):
        self.requested = False
        signal.signal(signal.SIGTERM, self._on_term)

    def _on_term(self, _sig, _frame):
        self.requested = True
