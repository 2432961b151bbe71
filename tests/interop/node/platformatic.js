// The client matrix's driver for @platformatic/kafka, a pure-JavaScript client that fetches by
// topic id (Fetch v13+), with its default settings apart from manual commits. Same arguments
// and JSON line as every matrix driver (tests/e2e/python/matrix_client.py):
//
//   node platformatic.js STEP BOOTSTRAP TOPIC GROUP N [KEY=VALUE ...] [--OPTION=VALUE ...]
//
// The client comes from the toolbox (scripts/toolbox installs it; NODE_PATH points there). It
// is an ES module, which import() does not look up in NODE_PATH: the driver finds it there.
'use strict';

const { loadPlatformatic, parseExtra } = require('./options');

const TIMEOUT_MS = 60000;

async function main() {
  const [step, bootstrap, topic, group, nArg, ...extra] = process.argv.slice(2);
  const n = Number(nArg);
  const { props, security } = parseExtra(extra);
  const doc = { ok: false, version: 'unknown' };
  try {
    const { kafka, version } = await loadPlatformatic();
    doc.version = version;
    await run(kafka, step, bootstrap.split(','), topic, group, n, props, security, doc);
    doc.ok = !doc.error;
  } catch (e) {
    doc.ok = false;
    doc.error = `${e.name}: ${e.message}${e.errors ? ` (${e.errors.map((x) => x.message).join('; ')})` : ''}`;
  }
  process.stdout.write(JSON.stringify(doc) + '\n', () => process.exit(0));
}

async function run(kafka, step, brokers, topic, group, n, props, security, doc) {
  const base = {
    clientId: 'gregor-matrix',
    bootstrapBrokers: brokers,
    ...(security.tls && { tls: security.tls }),
    ...(security.sasl && { sasl: security.sasl }),
  };
  if (step === 'create') {
    const admin = new kafka.Admin(base);
    try {
      // replicas -1: the broker's default replication factor (KIP-464).
      await admin.createTopics({ topics: [topic], partitions: n, replicas: -1 });
    } finally {
      await admin.close();
    }
  } else if (step === 'produce') {
    const settings = {};
    for (const [k, v] of Object.entries(props)) {
      if (k === 'enable.idempotence') settings.idempotent = v === 'true';
      else if (k === 'acks') settings.acks = v === 'all' ? -1 : Number(v);
      else throw new Error(`producer setting ${k}=${v} not mapped to @platformatic/kafka`);
    }
    const producer = new kafka.Producer({ ...base, serializers: kafka.stringSerializers, ...settings });
    try {
      const messages = [];
      for (let i = 0; i < n; i++) messages.push({ topic, key: `k${i}`, value: `v${i}` });
      await producer.send({ messages });
    } finally {
      await producer.close();
    }
    doc.produced = n;
  } else if (step === 'consume') {
    const settings = {};
    for (const [k, v] of Object.entries(props)) {
      if (k === 'group.protocol') settings.groupProtocol = v;
      else throw new Error(`consumer setting ${k}=${v} not mapped to @platformatic/kafka`);
    }
    const consumer = new kafka.Consumer({
      ...base, groupId: group, deserializers: kafka.stringDeserializers, ...settings,
    });
    const keys = [];
    const last = new Map();
    let stream;
    try {
      stream = await consumer.consume({
        topics: [topic],
        autocommit: false,
        mode: kafka.MessagesStreamModes.COMMITTED,
        fallbackMode: kafka.MessagesStreamFallbackModes.EARLIEST,
      });
      await new Promise((resolve, reject) => {
        const timer = setTimeout(resolve, TIMEOUT_MS);
        stream.on('error', (e) => { clearTimeout(timer); reject(e); });
        stream.on('data', (message) => {
          if (keys.length >= n) return;
          keys.push(message.key);
          last.set(message.partition, message);
          if (keys.length >= n) { clearTimeout(timer); resolve(); }
        });
      });
      stream.pause();
      // Each message's commit() commits its offset + 1 with its leader epoch.
      for (const message of last.values()) await message.commit();
    } finally {
      if (stream) await stream.close();
      await consumer.close(true);
    }
    doc.keys = keys;
    if (keys.length < n) doc.error = `consumed ${keys.length} of ${n} records in 60 s`;
  } else if (step === 'describe') {
    const admin = new kafka.Admin(base);
    doc.steps = {};
    const check = async (name, f) => {
      try {
        await f();
        doc.steps[name] ??= 'ok';
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
        const m = await admin.metadata({ topics: [topic] });
        const t = m.topics.get(topic);
        if (!t || !t.partitionsCount) throw new Error('no partitions');
      });
      await check('describe cluster', async () => {
        if (!(await admin.metadata({ topics: [] })).brokers.size) throw new Error('no brokers');
      });
      // The consumer's settings tell which protocol the group was formed with.
      const consumerProtocol = props['group.protocol'] === 'consumer';
      await check('list groups', async () => {
        // listGroups lists classic groups unless told the types.
        const groups = await admin.listGroups(consumerProtocol ? { types: ['consumer'] } : {});
        if (!groups.has(group)) throw new Error(`${group} not listed`);
      });
      await check('describe group', async () => {
        const groups = await admin.describeGroups({ groups: [group] });
        const g = groups.get(group);
        if (consumerProtocol && g && g.state === 'DEAD') {
          // DescribeGroups describes classic groups only (a consumer group is Dead there, as
          // from Kafka 4.x); this client has no ConsumerGroupDescribe.
          doc.steps['describe group'] = 'unsupported';
          return;
        }
        if (!g || g.state !== 'EMPTY') throw new Error(`describe: state ${g && g.state}`);
      });
    } finally {
      await admin.close();
    }
  } else {
    throw new Error(`unknown step ${step}`);
  }
}

main();
