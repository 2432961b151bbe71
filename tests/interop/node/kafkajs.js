// The client matrix's driver for kafkajs, with its default settings apart from manual commits.
// Same arguments and JSON line as every matrix driver (tests/e2e/python/matrix_client.py):
//
//   node kafkajs.js STEP BOOTSTRAP TOPIC GROUP N [KEY=VALUE ...] [--OPTION=VALUE ...]
//
// kafkajs comes from the toolbox (scripts/toolbox installs it; NODE_PATH points there).
'use strict';

const { parseExtra } = require('./options');

const TIMEOUT_MS = 60000;

async function main() {
  const [step, bootstrap, topic, group, nArg, ...extra] = process.argv.slice(2);
  const n = Number(nArg);
  const { props, security } = parseExtra(extra);
  const doc = { ok: false, version: 'unknown' };
  try {
    const { Kafka, logLevel } = require('kafkajs');
    doc.version = require('kafkajs/package.json').version;
    const kafka = new Kafka({
      clientId: 'gregor-matrix',
      brokers: bootstrap.split(','),
      logLevel: logLevel.WARN,
      ...(security.tls && { ssl: security.tls }),
      // kafkajs names its mechanisms in lower case (plain, scram-sha-256, scram-sha-512).
      ...(security.sasl && {
        sasl: { ...security.sasl, mechanism: security.sasl.mechanism.toLowerCase() },
      }),
    });
    await run(kafka, step, topic, group, n, props, doc);
    doc.ok = !doc.error;
  } catch (e) {
    doc.ok = false;
    doc.error = `${e.name}: ${e.message}`;
  }
  process.stdout.write(JSON.stringify(doc) + '\n', () => process.exit(0));
}

async function run(kafka, step, topic, group, n, props, doc) {
  if (step === 'create') {
    const admin = kafka.admin();
    await admin.connect();
    try {
      await admin.createTopics({ topics: [{ topic, numPartitions: n }], waitForLeaders: true });
    } finally {
      await admin.disconnect();
    }
  } else if (step === 'produce') {
    const settings = {};
    for (const [k, v] of Object.entries(props)) {
      if (k === 'enable.idempotence') settings.idempotent = v === 'true';
      else if (k !== 'acks') throw new Error(`producer setting ${k}=${v} not mapped to kafkajs`);
    }
    const acks = props.acks === undefined ? undefined : props.acks === 'all' ? -1 : Number(props.acks);
    const producer = kafka.producer(settings);
    await producer.connect();
    try {
      const messages = [];
      for (let i = 0; i < n; i++) messages.push({ key: `k${i}`, value: `v${i}` });
      await producer.send({ topic, messages, acks });
    } finally {
      await producer.disconnect();
    }
    doc.produced = n;
  } else if (step === 'consume') {
    const consumer = kafka.consumer({ groupId: group });
    await consumer.connect();
    const keys = [];
    const last = new Map();
    let finish;
    const finished = new Promise((resolve) => { finish = resolve; });
    const timer = setTimeout(() => finish(), TIMEOUT_MS);
    try {
      await consumer.subscribe({ topics: [topic], fromBeginning: true });
      await consumer.run({
        autoCommit: false,
        eachMessage: async ({ partition, message }) => {
          if (keys.length >= n) return;
          keys.push(message.key.toString());
          last.set(partition, message.offset);
          if (keys.length >= n) finish();
        },
      });
      await finished;
      clearTimeout(timer);
      await consumer.pause([{ topic }]);
      const offsets = [...last].map(([partition, offset]) => ({
        topic, partition, offset: (BigInt(offset) + 1n).toString(),
      }));
      if (offsets.length) await consumer.commitOffsets(offsets);
    } finally {
      await consumer.disconnect();
    }
    doc.keys = keys;
    if (keys.length < n) doc.error = `consumed ${keys.length} of ${n} records in 60 s`;
  } else if (step === 'describe') {
    const admin = kafka.admin();
    await admin.connect();
    doc.steps = {};
    const check = async (name, f) => {
      try {
        await f();
        doc.steps[name] = 'ok';
      } catch (e) {
        doc.steps[name] = `${e.name}: ${e.message}`;
        if (!doc.error) doc.error = `${name}: ${doc.steps[name]}`;
      }
    };
    try {
      await check('list topics', async () => {
        if (!(await admin.listTopics()).includes(topic)) throw new Error(`${topic} not listed`);
      });
      await check('describe topic', async () => {
        const m = await admin.fetchTopicMetadata({ topics: [topic] });
        if (!m.topics.length || !m.topics[0].partitions.length) throw new Error('no partitions');
      });
      await check('describe cluster', async () => {
        if (!(await admin.describeCluster()).brokers.length) throw new Error('no brokers');
      });
      await check('list groups', async () => {
        const { groups } = await admin.listGroups();
        if (!groups.some((g) => g.groupId === group)) throw new Error(`${group} not listed`);
      });
      await check('describe group', async () => {
        const { groups } = await admin.describeGroups([group]);
        if (groups.length !== 1 || groups[0].state !== 'Empty') {
          throw new Error(`describe: ${JSON.stringify(groups)}`);
        }
      });
    } finally {
      await admin.disconnect();
    }
  } else {
    throw new Error(`unknown step ${step}`);
  }
}

main();
