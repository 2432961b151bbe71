"""Third-party load: confluent-kafka (librdkafka) produces then consumes N records and prints
records/s and MB/s for each phase. Usage: python_load.py BOOTSTRAP TOPIC N SIZE ACKS"""
import sys
import time

from confluent_kafka import Consumer, Producer, TopicPartition

bootstrap, topic, n, size, acks = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5]
payload = b"x" * size
p = Producer({"bootstrap.servers": bootstrap, "acks": acks, "linger.ms": 5,
              "batch.num.messages": 10000, "queue.buffering.max.messages": 1000000,
              "queue.buffering.max.kbytes": 2097151})
t0 = time.time()
for i in range(n):
    while True:
        try:
            p.produce(topic, payload, partition=0)
            break
        except BufferError:
            p.poll(0.01)
p.flush()
dt = time.time() - t0
print(f"produce acks={acks}: {n} records of {size} B in {dt:.2f}s = {n/dt:,.0f} records/s, {n*size/dt/1e6:.1f} MB/s")
c = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench", "enable.auto.commit": False,
              "fetch.queue.backoff.ms": 1, "fetch.wait.max.ms": 10})
c.assign([TopicPartition(topic, 0, 0)])
got = 0
t0 = time.time()
while got < n and time.time() - t0 < 120:
    msgs = c.consume(10000, 0.5)
    got += sum(1 for m in msgs if not m.error())
dt = time.time() - t0
print(f"consume: {got} records in {dt:.2f}s = {got/dt:,.0f} records/s, {got*size/dt/1e6:.1f} MB/s")
c.close()
