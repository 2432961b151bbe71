// The client matrix's connection options for the Node.js drivers: the --OPTION=VALUE arguments
// (librdkafka's names, as tests/e2e/python/matrix_client.py describes them) apart from the
// KEY=VALUE client settings, and what they mean for TLS and SASL.
'use strict';

const fs = require('fs');

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

module.exports = { parseExtra };
