"""The client matrix's driver for the Python clients: kafka-python, confluent-kafka, aiokafka.

    matrix_client.py CLIENT STEP BOOTSTRAP TOPIC GROUP N [KEY=VALUE ...] [--OPTION=VALUE ...]

Every driver of the matrix (this one, the Java, Go and Node programs) takes the same arguments
and prints one JSON line on stdout:

    create    creates TOPIC with N partitions            {"ok", "version"}
    produce   N records, keys k0..k<N-1>, values v0..   {"ok", "version", "produced"}
              with the client's default producer settings, but for the KEY=VALUE ones the
              matrix overrides (e.g. enable.idempotence=false)
    consume   joins GROUP on TOPIC (classic protocol), processes records until it has N, commits
              exactly the offsets it processed, leaves   {"ok", "version", "keys"}
    describe  lists topics, describes TOPIC, the cluster, lists groups, describes GROUP
                                                         {"ok", "version", "steps": {name: "ok" | error}}

On failure "ok" is false and "error" says why; a step the client cannot do answers
{"ok": false, "unsupported": why}. The exit code is 0 either way (the JSON is the result).

The --OPTION=VALUE arguments say how every client of the step (admin, producer, consumer)
connects, in librdkafka's words; each driver maps them to its client's own settings:

    --security.protocol=SASL_SSL    PLAINTEXT (the default), SSL, SASL_PLAINTEXT or SASL_SSL
    --sasl.mechanism=SCRAM-SHA-256  PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512
    --sasl.username=U --sasl.password=P
    --ssl.ca.location=FILE          the CA (PEM) that signed the broker's certificate
"""
import asyncio
import json
import sys
import time
import traceback

TIMEOUT = 60.0


def emit(doc):
    sys.stdout.write(json.dumps(doc) + "\n")
    sys.stdout.flush()


def parse_props(extra):
    props = {}
    for kv in extra:
        k, _, v = kv.partition("=")
        props[k] = v
    return props


def parse_options(extra):
    """The --OPTION=VALUE arguments (connection settings) apart from the KEY=VALUE ones."""
    options = {}
    for arg in extra:
        if arg.startswith("--"):
            k, _, v = arg[2:].partition("=")
            options[k] = v
    return options


def python_security(options, ssl_context):
    """The connection options as kafka-python's and aiokafka's keyword arguments; the CA goes
    through ssl_context(cafile), which gives the client's own form of it."""
    kwargs = {}
    if "security.protocol" in options:
        kwargs["security_protocol"] = options["security.protocol"]
    if "sasl.mechanism" in options:
        kwargs["sasl_mechanism"] = options["sasl.mechanism"]
    if "sasl.username" in options:
        kwargs["sasl_plain_username"] = options["sasl.username"]
    if "sasl.password" in options:
        kwargs["sasl_plain_password"] = options["sasl.password"]
    if "ssl.ca.location" in options:
        kwargs.update(ssl_context(options["ssl.ca.location"]))
    return kwargs


def py_value(v):
    """A Java-style setting value as Python: booleans and integers."""
    if v in ("true", "false"):
        return v == "true"
    if v.lstrip("-").isdigit():
        return int(v)
    return v


def step_result(steps, name, fn):
    try:
        fn()
        steps[name] = "ok"
    except Exception as e:  # noqa: BLE001 - every failure is the step's result
        steps[name] = f"{type(e).__name__}: {e}"


# --- kafka-python ---------------------------------------------------------------------------------

def kafka_python(step, bootstrap, topic, group, n, props, options):
    import kafka
    from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
    from kafka.admin import NewTopic
    from kafka.structs import OffsetAndMetadata

    version = kafka.__version__
    security = python_security(options, lambda cafile: {"ssl_cafile": cafile})
    if step == "create":
        admin = KafkaAdminClient(bootstrap_servers=bootstrap, **security)
        admin.create_topics([NewTopic(topic, n, -1)])
        admin.close()
        return {"ok": True, "version": version}
    if step == "produce":
        settings = {k.replace(".", "_"): py_value(v) for k, v in props.items()}
        producer = KafkaProducer(bootstrap_servers=bootstrap, **security, **settings)
        futures = [producer.send(topic, key=f"k{i}".encode(), value=f"v{i}".encode())
                   for i in range(n)]
        producer.flush(TIMEOUT)
        for f in futures:
            f.get(TIMEOUT)
        producer.close()
        return {"ok": True, "version": version, "produced": n}
    if step == "consume":
        consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group,
                                 auto_offset_reset="earliest", enable_auto_commit=False,
                                 **security)
        keys, last = [], {}
        deadline = time.monotonic() + TIMEOUT
        while len(keys) < n and time.monotonic() < deadline:
            for tp, records in consumer.poll(timeout_ms=500).items():
                for r in records:
                    if len(keys) >= n:
                        break
                    keys.append(r.key.decode())
                    last[tp] = r.offset
        consumer.commit({tp: OffsetAndMetadata(o + 1, "", -1) for tp, o in last.items()})
        consumer.close()
        return consumed(version, keys, n)
    if step == "describe":
        admin = KafkaAdminClient(bootstrap_servers=bootstrap, **security)
        steps = {}

        def list_topics():
            if topic not in admin.list_topics():
                raise RuntimeError(f"{topic} not listed")

        def describe_topic():
            [d] = admin.describe_topics([topic])
            if d.get("error_code", 0) != 0 or len(d["partitions"]) == 0:
                raise RuntimeError(f"describe: {d}")

        def describe_cluster():
            c = admin.describe_cluster()
            if not c.get("brokers"):
                raise RuntimeError(f"no brokers: {c}")

        def list_groups():
            listed = admin.list_groups()
            if group not in repr(listed):
                raise RuntimeError(f"{group} not listed: {listed}")

        def describe_group():
            d = admin.describe_groups([group])[group]
            if "Empty" not in repr(d):
                raise RuntimeError(f"describe: {d}")

        for name, fn in (("list topics", list_topics), ("describe topic", describe_topic),
                         ("describe cluster", describe_cluster), ("list groups", list_groups),
                         ("describe group", describe_group)):
            step_result(steps, name, fn)
        admin.close()
        return described(version, steps)
    raise ValueError(f"unknown step {step}")


# --- confluent-kafka ------------------------------------------------------------------------------

def confluent(step, bootstrap, topic, group, n, props, options):
    import confluent_kafka
    from confluent_kafka import Consumer, Producer, TopicPartition
    from confluent_kafka.admin import AdminClient, NewTopic

    version = f"{confluent_kafka.__version__} (librdkafka {confluent_kafka.libversion()[0]})"
    # The connection options are librdkafka's own settings.
    common = {"bootstrap.servers": bootstrap, **options}
    if step == "create":
        admin = AdminClient(common)
        for f in admin.create_topics([NewTopic(topic, n, -1)]).values():
            f.result(TIMEOUT)
        return {"ok": True, "version": version}
    if step == "produce":
        conf = {**common, **props}
        producer = Producer(conf)
        errors = []

        def report(err, _msg):
            if err is not None:
                errors.append(str(err))

        for i in range(n):
            producer.produce(topic, key=f"k{i}", value=f"v{i}", on_delivery=report)
            producer.poll(0)
        left = producer.flush(TIMEOUT)
        if errors or left:
            raise RuntimeError(f"delivery failed: {errors[:3]} ({left} undelivered)")
        return {"ok": True, "version": version, "produced": n}
    if step == "consume":
        consumer = Consumer({**common, "group.id": group,
                             "auto.offset.reset": "earliest", "enable.auto.commit": False,
                             **props})
        consumer.subscribe([topic])
        keys, last = [], {}
        deadline = time.monotonic() + TIMEOUT
        while len(keys) < n and time.monotonic() < deadline:
            m = consumer.poll(0.5)
            if m is None:
                continue
            if m.error():
                raise RuntimeError(str(m.error()))
            keys.append(m.key().decode())
            last[m.partition()] = m.offset()
        if last:
            consumer.commit(offsets=[TopicPartition(topic, p, o + 1) for p, o in last.items()],
                            asynchronous=False)
        consumer.close()
        return consumed(version, keys, n)
    if step == "describe":
        from confluent_kafka import ConsumerGroupState
        admin = AdminClient(common)
        steps = {}

        def list_topics():
            if topic not in admin.list_topics(timeout=TIMEOUT).topics:
                raise RuntimeError(f"{topic} not listed")

        def describe_topic():
            from confluent_kafka import TopicCollection
            for f in admin.describe_topics(TopicCollection([topic])).values():
                d = f.result(TIMEOUT)
                if not d.partitions:
                    raise RuntimeError("no partitions")

        def describe_cluster():
            c = admin.describe_cluster().result(TIMEOUT)
            if not c.nodes:
                raise RuntimeError("no brokers")

        def list_groups():
            r = admin.list_consumer_groups().result(TIMEOUT)
            if group not in [g.group_id for g in r.valid]:
                raise RuntimeError(f"{group} not listed ({r.errors})")

        def describe_group():
            for f in admin.describe_consumer_groups([group]).values():
                d = f.result(TIMEOUT)
                if d.state != ConsumerGroupState.EMPTY:
                    raise RuntimeError(f"state {d.state}")

        for name, fn in (("list topics", list_topics), ("describe topic", describe_topic),
                         ("describe cluster", describe_cluster), ("list groups", list_groups),
                         ("describe group", describe_group)):
            step_result(steps, name, fn)
        return described(version, steps)
    raise ValueError(f"unknown step {step}")


# --- aiokafka -------------------------------------------------------------------------------------

def aiokafka(step, bootstrap, topic, group, n, props, options):
    return asyncio.run(aiokafka_async(step, bootstrap, topic, group, n, props, options))


async def aiokafka_async(step, bootstrap, topic, group, n, props, options):
    import aiokafka as ak
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic
    from aiokafka.helpers import create_ssl_context

    version = ak.__version__
    security = python_security(
        options, lambda cafile: {"ssl_context": create_ssl_context(cafile=cafile)})
    if step == "create":
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **security)
        await admin.start()
        try:
            # aiokafka's NewTopic refuses -1 (the broker's default replication factor, KIP-464),
            # so the driver asks for what the broker default gives: min(3, brokers).
            cluster = await admin.describe_cluster()
            replication = max(1, min(3, len(cluster.get("brokers", []))))
            await admin.create_topics([NewTopic(topic, n, replication)])
        finally:
            await admin.close()
        return {"ok": True, "version": version}
    if step == "produce":
        settings = {k.replace(".", "_"): py_value(v) for k, v in props.items()}
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, **security, **settings)
        await producer.start()
        try:
            futures = [await producer.send(topic, key=f"k{i}".encode(), value=f"v{i}".encode())
                       for i in range(n)]
            await asyncio.wait_for(asyncio.gather(*futures), TIMEOUT)
        finally:
            await producer.stop()
        return {"ok": True, "version": version, "produced": n}
    if step == "consume":
        consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, group_id=group,
                                    auto_offset_reset="earliest", enable_auto_commit=False,
                                    **security)
        await consumer.start()
        keys, last = [], {}
        try:
            deadline = time.monotonic() + TIMEOUT
            while len(keys) < n and time.monotonic() < deadline:
                batch = await consumer.getmany(timeout_ms=500)
                for tp, records in batch.items():
                    for r in records:
                        if len(keys) >= n:
                            break
                        keys.append(r.key.decode())
                        last[tp] = r.offset
            if last:
                await consumer.commit({tp: o + 1 for tp, o in last.items()})
        finally:
            await consumer.stop()
        return consumed(version, keys, n)
    if step == "describe":
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, **security)
        await admin.start()
        steps = {}

        async def run(name, coro):
            try:
                await coro
                steps[name] = "ok"
            except Exception as e:  # noqa: BLE001
                steps[name] = f"{type(e).__name__}: {e}"

        async def list_topics():
            if topic not in await admin.list_topics():
                raise RuntimeError(f"{topic} not listed")

        async def describe_topic():
            [d] = await admin.describe_topics([topic])
            if d.get("error_code", 0) != 0 or not d["partitions"]:
                raise RuntimeError(f"describe: {d}")

        async def describe_cluster():
            c = await admin.describe_cluster()
            if not c.get("brokers"):
                raise RuntimeError(f"no brokers: {c}")

        async def list_groups():
            if group not in [g[0] for g in await admin.list_consumer_groups()]:
                raise RuntimeError(f"{group} not listed")

        async def describe_group():
            [d] = await admin.describe_consumer_groups([group])
            text = repr(d)
            if group not in text or "Empty" not in text:
                raise RuntimeError(f"describe: {text[:300]}")

        try:
            await run("list topics", list_topics())
            await run("describe topic", describe_topic())
            await run("describe cluster", describe_cluster())
            await run("list groups", list_groups())
            await run("describe group", describe_group())
        finally:
            await admin.close()
        return described(version, steps)
    raise ValueError(f"unknown step {step}")


def consumed(version, keys, n):
    doc = {"ok": len(keys) >= n, "version": version, "keys": keys}
    if len(keys) < n:
        doc["error"] = f"consumed {len(keys)} of {n} records in {TIMEOUT:.0f} s"
    return doc


def described(version, steps):
    bad = [f"{k}: {v}" for k, v in steps.items() if v != "ok"]
    doc = {"ok": not bad, "version": version, "steps": steps}
    if bad:
        doc["error"] = bad[0]
    return doc


CLIENTS = {"kafka-python": kafka_python, "confluent-kafka": confluent, "aiokafka": aiokafka}


def main():
    client, step, bootstrap, topic, group, n, *extra = sys.argv[1:]
    try:
        props = parse_props(a for a in extra if not a.startswith("--"))
        doc = CLIENTS[client](step, bootstrap, topic, group, int(n), props, parse_options(extra))
    except Exception as e:  # noqa: BLE001 - the JSON carries the failure
        traceback.print_exc()
        doc = {"ok": False, "error": f"{type(e).__name__}: {e}"}
    emit(doc)


if __name__ == "__main__":
    main()
