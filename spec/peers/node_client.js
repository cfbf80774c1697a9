#!/usr/bin/env node
// SPDX-License-Identifier: MIT
// Peer check: the npm `ws` client (spec/peers/node_modules) against the server under test.
//
// Usage: node node_client.js ws://127.0.0.1:PORT/ws
//
// Prints one JSON object per check, {"name": "...", "ok": true|false, "detail": "..."},
// and exits 0 (the lines carry the verdicts); exit 3 if `ws` is missing.
// Each check opens its own connection and is bounded by CHECK_TIMEOUT_MS.
// perMessageDeflate is off: the server under test does not negotiate it.
'use strict';

let WebSocket;
try {
  WebSocket = require('ws');
} catch (err) {
  process.stderr.write('npm ws is not installed in spec/peers/node_modules\n');
  process.exit(3);
}
const crypto = require('crypto');

const CHECK_TIMEOUT_MS = 10000;
const checks = [];
const check = (name, fn) => checks.push([name, fn]);

// A connection whose incoming messages, pongs and close are queued as promises.
function open(url) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: false, handshakeTimeout: 5000, maxPayload: 32 * 1024 * 1024 });
    const inbox = [];
    const waiting = [];
    const deliver = (item) => (waiting.length ? waiting.shift()(item) : inbox.push(item));
    ws.on('message', (data, isBinary) => deliver({ kind: 'message', data, isBinary }));
    ws.on('pong', (data) => deliver({ kind: 'pong', data }));
    ws.closed = new Promise((res) => ws.on('close', (code, reason) => res({ code, reason: reason.toString() })));
    ws.next = () => new Promise((res) => (inbox.length ? res(inbox.shift()) : waiting.push(res)));
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  });
}

function same(got, data, isBinary) {
  if (got.kind !== 'message') return `got a ${got.kind}, expected a message`;
  if (got.isBinary !== isBinary) return `got a ${got.isBinary ? 'binary' : 'text'} message, expected ${isBinary ? 'binary' : 'text'}`;
  const want = Buffer.isBuffer(data) ? data : Buffer.from(data, 'utf8');
  if (!got.data.equals(want)) {
    return `got ${got.data.length} bytes ${JSON.stringify(got.data.subarray(0, 40).toString('latin1'))}, expected ${want.length}`;
  }
  return null;
}

async function roundtrip(url, data, isBinary) {
  const ws = await open(url);
  try {
    ws.send(data, { binary: isBinary });
    return same(await ws.next(), data, isBinary);
  } finally {
    ws.terminate();
  }
}

check('text echo', (url) => roundtrip(url, 'Hello, luaws! \u03ba\u1f79\u03c3\u03bc\u03b5 \u{1f600}', false));
check('binary echo', (url) => roundtrip(url, Buffer.from([...Array(1024).keys()].map((i) => i % 256)), true));
check('empty text echo', (url) => roundtrip(url, '', false));
check('empty binary echo', (url) => roundtrip(url, Buffer.alloc(0), true));
check('1 MiB binary echo', (url) => roundtrip(url, crypto.randomBytes(1 << 20), true));

check('fragmented text message echoed whole', async (url) => {
  const ws = await open(url);
  try {
    const parts = ['first fragment, ', 'second \u03ba\u1f79\u03c3\u03bc\u03b5, ', 'third'];
    parts.forEach((p, i) => ws.send(p, { binary: false, fin: i === parts.length - 1 }));
    return same(await ws.next(), parts.join(''), false);
  } finally {
    ws.terminate();
  }
});

check('100 messages echoed in order', async (url) => {
  const ws = await open(url);
  try {
    for (let i = 0; i < 100; i++) ws.send(`message ${i}`, { binary: i % 2 === 0 });
    for (let i = 0; i < 100; i++) {
      const bad = same(await ws.next(), `message ${i}`, i % 2 === 0);
      if (bad) return `message ${i}: ${bad}`;
    }
    return null;
  } finally {
    ws.terminate();
  }
});

check('ping answered by a pong', async (url) => {
  const ws = await open(url);
  try {
    ws.ping(Buffer.from('peer ping'));
    const got = await ws.next();
    if (got.kind !== 'pong') return `got a ${got.kind}, expected a pong`;
    if (got.data.toString() !== 'peer ping') return `pong payload ${JSON.stringify(got.data.toString())}`;
    return null;
  } finally {
    ws.terminate();
  }
});

async function closeWith(url, code, reason) {
  const ws = await open(url);
  ws.close(code, reason);
  const closed = await ws.closed;
  if (closed.code !== code) return `server close code ${closed.code} (${JSON.stringify(closed.reason)}), expected ${code}`;
  return null;
}

check('close 1000 with a reason: the server closes with 1000', (url) => closeWith(url, 1000, 'bye from node'));
check('close 4001: the server echoes 4001', (url) => closeWith(url, 4001, 'custom code'));

async function main(url) {
  for (const [name, fn] of checks) {
    let problem;
    let timer;
    try {
      const timeout = new Promise((resolve) => {
        timer = setTimeout(() => resolve(`timed out after ${CHECK_TIMEOUT_MS / 1000} s`), CHECK_TIMEOUT_MS);
      });
      problem = await Promise.race([fn(url), timeout]);
    } catch (err) {
      problem = `${err.name}: ${err.message}`;
    } finally {
      clearTimeout(timer);
    }
    process.stdout.write(JSON.stringify({ name, ok: problem == null, detail: problem || 'ok' }) + '\n');
  }
}

const url = process.argv[2];
if (!url || !url.startsWith('ws://')) {
  process.stderr.write('Usage: node node_client.js ws://127.0.0.1:PORT/ws\n');
  process.exit(2);
}
// A check that timed out may leave a socket open: exit explicitly when done.
main(url).then(() => process.exit(0));
