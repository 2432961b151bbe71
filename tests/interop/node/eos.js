// Exactly-once (issue 12) with the Node.js clients: kafkajs and @platformatic/kafka, one
// subcommand per scenario, the same program against gregor and against Apache Kafka.
//
//   node eos.js SCENARIO --client=kafkajs|platformatic --bootstrap=HOST:PORT [--NAME=VALUE ...]
//
//   create      --topic --partitions            the client's admin creates a topic
//   fill        --topic --n                     n plain records, keys k0.., values v0..
//   idempotent  --topic --n --batch --pause-ms  an idempotent producer sends n records, batch
//                                               at a time, one send after the other, and
//                                               writes `acked K` on stderr after each; a send
//                                               that fails is reported, never sent again;
//                                               `sends`: each acknowledged send's first key
//                                               and the offset the broker gave it
//   ctp         --in --out --group --txn-id --n --chunk --abort-every
//               a consume-transform-produce loop: a consumer in the group reads n records of
//               `in`; each chunk of them is one transaction that sends the transformed records
//               (value "t-" + input value) to `out` and the chunk's input offsets
//               (AddOffsetsToTxn + TxnOffsetCommit); every abort-every'th chunk (the 3rd, the
//               6th, ...) is aborted, the others committed (0: none aborted); no chunk is
//               processed again. --hang-at=I: transaction I (from 0), its outputs and offsets
//               sent, writes `stage sent` on stderr and waits for stdin (the test kills it)
//   fence       --topic --txn-id               producer A commits a0..a4 and sends a5..a9 in an
//                                               open transaction; B with the same transactional
//                                               id starts (fencing A), commits b0..b4; then A
//                                               sends a10..a14 and commits: the errors it gets
//   txn-open    --topic --txn-id --prefix --timeout-ms
//               begins a transaction, sends PREFIX0..4 (acknowledged), writes `stage sent` on
//               stderr and waits for a line on stdin; then sends PREFIX5..9 and commits (or,
//               when the line is `abort`, aborts). The test kills the broker (or this process)
//               in the pause.
//   txn-commit  --topic --txn-id --prefix       a producer with the transactional id starts
//                                               (InitProducerId) and commits PREFIX0..4
//   read        --topic --isolation=committed|uncommitted --expect --linger-ms
//               the client's consumer (a fresh group, from the beginning) until it has
//               `expect` records and linger-ms more passed without a new one (or 30 s)
//   offsets     --group --topic                 the group's committed offsets (the admin)
//
// --retries=default leaves the clients' retry settings at their defaults (otherwise raised to
// outlast a broker restart). --fresh-producer=true (fence, txn-open, txn-commit, ctp): the
// @platformatic/kafka producer sends producer id and epoch -1 in InitProducerId instead of its
// default 0 and 0, which the coordinator fences when the transactional id has another producer.
//
// One JSON line on stdout: { ok, client, version, error?, ...what the scenario reports }.
// The clients come from the toolbox (scripts/toolbox installs them; NODE_PATH points there).
'use strict';

const readline = require('readline');

const { loadPlatformatic } = require('./options');

const READ_TIMEOUT_MS = 30000;

function parseArgs(argv) {
  const [scenario, ...rest] = argv;
  const opts = {};
  for (const arg of rest) {
    if (!arg.startsWith('--') || !arg.includes('=')) throw new Error(`bad argument ${arg}`);
    const i = arg.indexOf('=');
    opts[arg.slice(2, i)] = arg.slice(i + 1);
  }
  return { scenario, opts };
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** An error as the report shows it: the class, Kafka's error type or code when known. */
function describe(e) {
  if (!e) return null;
  const parts = [e.name || 'Error'];
  if (e.type) parts.push(e.type);
  if (e.apiCode !== undefined) parts.push(`code ${e.apiCode}`);
  else if (e.code !== undefined && typeof e.code !== 'string') parts.push(`code ${e.code}`);
  else if (typeof e.code === 'string') parts.push(e.code);
  let text = `${parts.join(' ')}: ${e.message}`;
  const inner = e.errors || (e.cause && [e.cause]);
  if (inner && inner.length) text += ` (${inner.map((x) => describe(x)).join('; ')})`;
  return text;
}

/** A queue the consumers push into and the scenarios take from. */
class Queue {
  constructor() { this.items = []; this.waiters = []; }
  push(item) {
    this.items.push(item);
    for (const w of this.waiters.splice(0)) w();
  }
  /** Up to `count` items, waiting at most `timeoutMs` for the first ones. */
  async take(count, timeoutMs) {
    const deadline = Date.now() + timeoutMs;
    while (this.items.length < count && Date.now() < deadline) {
      await new Promise((resolve) => {
        this.waiters.push(resolve);
        setTimeout(resolve, Math.max(1, deadline - Date.now()));
      });
    }
    return this.items.splice(0, count);
  }
}

// --- kafkajs -------------------------------------------------------------------------------

function kafkajsClient(bootstrap, defaultRetries) {
  const { Kafka, logLevel } = require('kafkajs');
  const kafka = new Kafka({
    clientId: 'gregor-eos',
    brokers: bootstrap.split(','),
    logLevel: logLevel.NOTHING,
    // Enough retries to outlast a broker restart (a kill -9 and a start take a few seconds),
    // unless --retries=default.
    ...(!defaultRetries && { retry: { retries: 30, initialRetryTime: 200, maxRetryTime: 2000 } }),
  });
  const version = require('kafkajs/package.json').version;

  return {
    version,
    async create(topic, partitions) {
      const admin = kafka.admin();
      await admin.connect();
      try {
        await admin.createTopics({ topics: [{ topic, numPartitions: partitions }], waitForLeaders: true });
      } finally {
        await admin.disconnect();
      }
    },
    async producer({ idempotent }) {
      const producer = kafka.producer({ idempotent, maxInFlightRequests: idempotent ? 1 : undefined });
      await producer.connect();
      return {
        // The offset the broker gave the send's first record.
        send: async (topic, messages) => {
          const metadata = await producer.send({ topic, messages, acks: idempotent ? -1 : undefined });
          return Number(metadata[0]?.baseOffset ?? -1);
        },
        close: () => producer.disconnect(),
      };
    },
    async txnProducer(txnId, timeoutMs) {
      // connect() sends InitProducerId for the transactional id (fencing earlier producers).
      const producer = kafka.producer({
        transactionalId: txnId,
        idempotent: true,
        maxInFlightRequests: 1,
        transactionTimeout: timeoutMs,
      });
      await producer.connect();
      let txn = null;
      return {
        async begin() { txn = await producer.transaction(); },
        send: (topic, messages) => txn.send({ topic, messages }),
        async sendOffsets(consumer, last) {
          const topics = new Map();
          for (const m of last) {
            if (!topics.has(m.topic)) topics.set(m.topic, []);
            topics.get(m.topic).push({ partition: m.partition, offset: (BigInt(m.offset) + 1n).toString() });
          }
          await txn.sendOffsets({
            consumerGroupId: consumer.group,
            topics: [...topics].map(([topic, partitions]) => ({ topic, partitions })),
          });
        },
        commit: () => txn.commit(),
        abort: () => txn.abort(),
        close: () => producer.disconnect(),
      };
    },
    async consumer(group, topic, committed) {
      const consumer = kafka.consumer({
        groupId: group,
        readUncommitted: !committed,
        maxWaitTimeInMs: 500,
        // A restarted loop joins the group of a killed one: short timeouts (Kafka's minimum
        // session timeout) so that the join does not wait a minute for the dead member.
        sessionTimeout: 6000,
        rebalanceTimeout: 6000,
        heartbeatInterval: 1000,
        retry: { retries: 30, initialRetryTime: 200, maxRetryTime: 2000 },
      });
      await consumer.connect();
      const queue = new Queue();
      await consumer.subscribe({ topics: [topic], fromBeginning: true });
      await consumer.run({
        autoCommit: false,
        eachMessage: async ({ topic: t, partition, message }) => {
          queue.push({
            topic: t,
            partition,
            offset: message.offset,
            key: message.key && message.key.toString(),
            value: message.value && message.value.toString(),
          });
        },
      });
      return { group, queue, close: () => consumer.disconnect() };
    },
    async committedOffsets(group, topic) {
      const admin = kafka.admin();
      await admin.connect();
      try {
        const [entry] = await admin.fetchOffsets({ groupId: group, topics: [topic] });
        const out = {};
        for (const p of entry.partitions) out[p.partition] = Number(p.offset);
        return out;
      } finally {
        await admin.disconnect();
      }
    },
  };
}

// --- @platformatic/kafka -------------------------------------------------------------------

async function platformaticClient(bootstrap, defaultRetries) {
  const { kafka, version } = await loadPlatformatic();
  // retries/retryDelay: enough to outlast a broker restart, unless --retries=default.
  const base = {
    clientId: 'gregor-eos',
    bootstrapBrokers: bootstrap.split(','),
    ...(!defaultRetries && { retries: 30, retryDelay: 250 }),
  };
  const asMessages = (topic, messages) => messages.map((m) => ({ topic, key: m.key, value: m.value }));

  return {
    version,
    async create(topic, partitions) {
      const admin = new kafka.Admin(base);
      try {
        await admin.createTopics({ topics: [topic], partitions, replicas: -1 });
      } finally {
        await admin.close();
      }
    },
    async producer({ idempotent }) {
      const producer = new kafka.Producer({ ...base, idempotent, serializers: kafka.stringSerializers });
      return {
        send: async (topic, messages) => {
          const result = await producer.send({ messages: asMessages(topic, messages) });
          return Number(result.offsets?.[0]?.offset ?? -1);
        },
        close: () => producer.close(),
      };
    },
    async txnProducer(txnId, timeoutMs, { fresh } = {}) {
      // `timeout` is both the request timeout and the transaction timeout InitProducerId sends.
      // InitProducerId sends the options' producerId and producerEpoch, 0 and 0 when not set:
      // the coordinator takes them as the id and epoch of the producer being restarted (KIP-360)
      // and fences a new producer of a transactional id whose producer is another one.
      // `fresh` sends -1 and -1 instead, as a new producer (the Java client's) does.
      const producer = new kafka.Producer({
        ...base,
        idempotent: true,
        transactionalId: txnId,
        timeout: timeoutMs,
        serializers: kafka.stringSerializers,
        ...(fresh && { producerId: -1n, producerEpoch: -1 }),
      });
      let txn = null;
      return {
        // The first beginTransaction sends FindCoordinator and InitProducerId.
        async begin() { txn = await producer.beginTransaction(); },
        send: (topic, messages) => txn.send({ messages: asMessages(topic, messages) }),
        async sendOffsets(consumer, last) {
          await txn.addConsumer(consumer.client);
          for (const m of last) await txn.addOffset(m.raw);
        },
        commit: () => txn.commit(),
        abort: () => txn.abort(),
        close: () => producer.close(true),
      };
    },
    async consumer(group, topic, committed) {
      const consumer = new kafka.Consumer({
        ...base,
        groupId: group,
        deserializers: kafka.stringDeserializers,
        maxWaitTime: 500,
        // As for kafkajs: a restarted loop does not wait long for the killed one's member.
        sessionTimeout: 6000,
        rebalanceTimeout: 6000,
        heartbeatInterval: 1000,
        isolationLevel: committed ? kafka.FetchIsolationLevels.READ_COMMITTED
          : kafka.FetchIsolationLevels.READ_UNCOMMITTED,
      });
      const queue = new Queue();
      const stream = await consumer.consume({
        topics: [topic],
        autocommit: false,
        mode: kafka.MessagesStreamModes.COMMITTED,
        fallbackMode: kafka.MessagesStreamFallbackModes.EARLIEST,
      });
      stream.on('error', (e) => queue.push({ error: e }));
      stream.on('data', (m) => queue.push({
        topic: m.topic, partition: m.partition, offset: m.offset.toString(), key: m.key, value: m.value, raw: m,
      }));
      return {
        group,
        queue,
        client: consumer,
        async close() {
          await stream.close();
          await consumer.close(true);
        },
      };
    },
    async committedOffsets(group, topic) {
      const admin = new kafka.Admin(base);
      try {
        const groups = await admin.listConsumerGroupOffsets({ groups: [group] });
        const out = {};
        for (const g of groups) {
          for (const t of g.topics) {
            if (t.name !== topic) continue;
            for (const p of t.partitions) out[p.partitionIndex] = Number(p.committedOffset);
          }
        }
        return out;
      } finally {
        await admin.close();
      }
    },
  };
}

// --- the scenarios ---------------------------------------------------------------------------

/** --fresh-producer=true: @platformatic/kafka's InitProducerId sends -1/-1 (see txnProducer). */
const fresh = (o) => ({ fresh: o['fresh-producer'] === 'true' });

const records = (prefix, from, to) => {
  const out = [];
  for (let i = from; i < to; i++) out.push({ key: `${prefix}${i}`, value: `${prefix}${i}` });
  return out;
};

/** Takes `count` records from a consumer's queue, failing on a consumer error. */
async function take(consumer, count, timeoutMs) {
  const items = await consumer.queue.take(count, timeoutMs);
  const failed = items.find((m) => m.error);
  if (failed) throw failed.error;
  return items;
}

async function scenarioIdempotent(client, o, doc) {
  const n = Number(o.n);
  const batch = Number(o.batch || 10);
  const pause = Number(o['pause-ms'] || 0);
  const producer = await client.producer({ idempotent: true });
  doc.acked = [];
  doc.failed = [];
  // Each acknowledged send: its first key and the offset the broker answered with.
  doc.sends = [];
  try {
    for (let i = 0; i < n; i += batch) {
      const messages = records('k', i, Math.min(n, i + batch));
      try {
        const offset = await producer.send(o.topic, messages);
        doc.acked.push(...messages.map((m) => m.key));
        doc.sends.push([messages[0].key, offset]);
      } catch (e) {
        doc.failed.push({ keys: messages.map((m) => m.key), error: describe(e) });
      }
      process.stderr.write(`acked ${doc.acked.length}\n`);
      if (pause) await sleep(pause);
    }
  } finally {
    await producer.close().catch(() => {});
  }
}

async function scenarioCtp(client, o, doc) {
  const n = Number(o.n);
  const chunk = Number(o.chunk || 10);
  // 0: never abort.
  const abortEvery = Number(o['abort-every'] ?? 3);
  const hangAt = o['hang-at'] === undefined ? -1 : Number(o['hang-at']);
  const consumer = await client.consumer(o.group, o.in, true);
  const producer = await client.txnProducer(o['txn-id'], Number(o['timeout-ms'] || 30000), fresh(o));
  doc.transactions = [];
  try {
    let done = 0;
    for (let i = 0; done < n; i++) {
      const inputs = await take(consumer, Math.min(chunk, n - done), READ_TIMEOUT_MS);
      if (!inputs.length) throw new Error(`read ${done} of ${n} input records in ${READ_TIMEOUT_MS} ms`);
      done += inputs.length;
      const commit = abortEvery === 0 || (i + 1) % abortEvery !== 0;
      await producer.begin();
      await producer.send(o.out, inputs.map((m) => ({ key: m.key, value: `t-${m.value}` })));
      // The last input record of each partition: its offset + 1 is what the group commits.
      const last = new Map();
      for (const m of inputs) last.set(m.partition, m);
      await producer.sendOffsets(consumer, [...last.values()]);
      if (i === hangAt) {
        // The transaction is open with its outputs and offsets sent: the test kills us here.
        process.stderr.write('stage sent\n');
        await waitForLine();
      }
      if (commit) await producer.commit();
      else await producer.abort();
      doc.transactions.push({
        outcome: commit ? 'commit' : 'abort',
        inputs: inputs.map((m) => [m.partition, Number(m.offset)]),
        outputs: inputs.map((m) => `t-${m.value}`),
      });
    }
  } finally {
    await producer.close().catch(() => {});
    await consumer.close().catch(() => {});
  }
}

async function scenarioFence(client, o, doc) {
  const topic = o.topic;
  const a = await client.txnProducer(o['txn-id'], 30000, fresh(o));
  await a.begin();
  await a.send(topic, records('a', 0, 5));
  await a.commit();
  await a.begin();
  await a.send(topic, records('a', 5, 10));
  doc.a_open = 'a5..a9 sent in an open transaction';
  const b = await client.txnProducer(o['txn-id'], 30000, fresh(o));
  try {
    await b.begin();
    await b.send(topic, records('b', 0, 5));
    await b.commit();
    doc.b = 'committed b0..b4';
    try {
      await a.send(topic, records('a', 10, 15));
      doc.a_send_after_fence = 'ok';
    } catch (e) {
      doc.a_send_after_fence = describe(e);
    }
    try {
      await a.commit();
      doc.a_commit_after_fence = 'ok';
    } catch (e) {
      doc.a_commit_after_fence = describe(e);
    }
  } finally {
    await b.close().catch(() => {});
    await a.close().catch(() => {});
  }
}

async function waitForLine() {
  const rl = readline.createInterface({ input: process.stdin });
  const line = await new Promise((resolve) => {
    rl.once('line', resolve);
    rl.once('close', () => resolve(null));
  });
  rl.close();
  return line;
}

async function scenarioTxnOpen(client, o, doc) {
  const prefix = o.prefix || 't';
  const producer = await client.txnProducer(o['txn-id'], Number(o['timeout-ms'] || 30000), fresh(o));
  try {
    await producer.begin();
    await producer.send(o.topic, records(prefix, 0, 5));
    process.stderr.write('stage sent\n');
    const line = await waitForLine();
    doc.told = line;
    try {
      await producer.send(o.topic, records(prefix, 5, 10));
      doc.second_send = 'ok';
    } catch (e) {
      doc.second_send = describe(e);
    }
    if (line === 'abort' || doc.second_send !== 'ok') {
      try {
        await producer.abort();
        doc.outcome = 'aborted';
      } catch (e) {
        doc.outcome = `abort failed: ${describe(e)}`;
      }
    } else {
      try {
        await producer.commit();
        doc.outcome = 'committed';
      } catch (e) {
        doc.outcome = `commit failed: ${describe(e)}`;
        try {
          await producer.abort();
        } catch (e2) {
          doc.abort_after_failed_commit = describe(e2);
        }
      }
    }
  } finally {
    await producer.close().catch(() => {});
  }
}

async function scenarioTxnCommit(client, o, doc) {
  const producer = await client.txnProducer(o['txn-id'], Number(o['timeout-ms'] || 30000), fresh(o));
  try {
    await producer.begin();
    await producer.send(o.topic, records(o.prefix || 'r', 0, 5));
    await producer.commit();
    doc.outcome = 'committed';
  } finally {
    await producer.close().catch(() => {});
  }
}

async function scenarioRead(client, o, doc) {
  const expect = Number(o.expect);
  const linger = Number(o['linger-ms'] || 2000);
  const group = `eos-read-${process.pid}-${Date.now()}`;
  const consumer = await client.consumer(group, o.topic, o.isolation === 'committed');
  doc.records = [];
  try {
    const deadline = Date.now() + READ_TIMEOUT_MS;
    while (Date.now() < deadline) {
      const wait = doc.records.length >= expect ? linger : Math.min(1000, deadline - Date.now());
      const got = await take(consumer, 1000, wait);
      for (const m of got) doc.records.push([m.partition, Number(m.offset), m.key, m.value]);
      if (!got.length && doc.records.length >= expect) break;
    }
  } finally {
    await consumer.close().catch(() => {});
  }
}

async function main() {
  const doc = { ok: false, client: 'unknown', version: 'unknown' };
  try {
    const { scenario, opts } = parseArgs(process.argv.slice(2));
    doc.client = opts.client;
    doc.scenario = scenario;
    let client;
    const defaultRetries = opts.retries === 'default';
    if (opts.client === 'kafkajs') client = kafkajsClient(opts.bootstrap, defaultRetries);
    else if (opts.client === 'platformatic') client = await platformaticClient(opts.bootstrap, defaultRetries);
    else throw new Error(`--client=kafkajs|platformatic, not ${opts.client}`);
    doc.version = client.version;
    if (scenario === 'create') await client.create(opts.topic, Number(opts.partitions || 1));
    else if (scenario === 'fill') {
      const producer = await client.producer({ idempotent: false });
      try {
        await producer.send(opts.topic, records('', 0, Number(opts.n)).map((m) => ({ key: `k${m.key}`, value: `v${m.value}` })));
      } finally {
        await producer.close();
      }
    } else if (scenario === 'idempotent') await scenarioIdempotent(client, opts, doc);
    else if (scenario === 'ctp') await scenarioCtp(client, opts, doc);
    else if (scenario === 'fence') await scenarioFence(client, opts, doc);
    else if (scenario === 'txn-open') await scenarioTxnOpen(client, opts, doc);
    else if (scenario === 'txn-commit') await scenarioTxnCommit(client, opts, doc);
    else if (scenario === 'read') await scenarioRead(client, opts, doc);
    else if (scenario === 'offsets') doc.offsets = await client.committedOffsets(opts.group, opts.topic);
    else throw new Error(`unknown scenario ${scenario}`);
    doc.ok = !doc.error;
  } catch (e) {
    doc.ok = false;
    doc.error = describe(e);
  }
  process.stdout.write(JSON.stringify(doc) + '\n', () => process.exit(0));
}

main();
