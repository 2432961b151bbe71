// What the Node.js drivers share: the client matrix's connection options (the --OPTION=VALUE
// arguments, librdkafka's names, as tests/e2e/python/matrix_client.py describes them, apart from
// the KEY=VALUE client settings, and what they mean for TLS and SASL), and the loading of
// @platformatic/kafka.
'use strict';

const fs = require('fs');
const path = require('path');
const { pathToFileURL } = require('url');

/**
 * Splits the arguments after N: `props` (KEY=VALUE) and `security`: `{ tls, sasl }`, where
 * `tls` is false or `{ ca: [PEM] }` (Node's tls options) and `sasl` false or
 * `{ mechanism, username, password }` with the mechanism as the matrix names it.
 */
function parseExtra(extra) {
  const props = {};
  const options = {};
  for (const arg of extra) {
    const option = arg.startsWith('--');
    const kv = option ? arg.slice(2) : arg;
    const i = kv.indexOf('=');
    (option ? options : props)[kv.slice(0, i)] = kv.slice(i + 1);
  }
  const protocol = options['security.protocol'] || 'PLAINTEXT';
  let tls = false;
  if (protocol.endsWith('SSL')) {
    const ca = options['ssl.ca.location'];
    tls = ca ? { ca: [fs.readFileSync(ca, 'utf8')] } : {};
  }
  const sasl = protocol.startsWith('SASL_') && {
    mechanism: options['sasl.mechanism'] || 'PLAIN',
    username: options['sasl.username'],
    password: options['sasl.password'],
  };
  return { props, security: { tls, sasl } };
}

/**
 * Loads @platformatic/kafka, `{ kafka, version }`: an ES module, which import() does not look
 * up in NODE_PATH, so it is taken from the first NODE_PATH entry that has it.
 */
async function loadPlatformatic() {
  for (const dir of (process.env.NODE_PATH || '').split(path.delimiter).filter(Boolean)) {
    const pkg = path.join(dir, '@platformatic', 'kafka');
    if (fs.existsSync(path.join(pkg, 'package.json'))) {
      const { version } = JSON.parse(fs.readFileSync(path.join(pkg, 'package.json'), 'utf8'));
      return { kafka: await import(pathToFileURL(path.join(pkg, 'dist', 'index.js')).href), version };
    }
  }
  return { kafka: await import('@platformatic/kafka'), version: 'unknown' };
}

module.exports = { parseExtra, loadPlatformatic };
