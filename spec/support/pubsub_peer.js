#!/usr/bin/env node
// SPDX-License-Identifier: MIT
// A node `ws` subscriber for spec/integration/pubsub_spec.lua (the npm ws
// of spec/peers/node_modules, perMessageDeflate off).
//
// Usage: node pubsub_peer.js URL NAME
//
// Prints one JSON object a line, as spec/support/pubsub_peer.py does:
//   {"event": "open"}
//   {"event": "message", "kind": "text"|"binary", "len": BYTES, "hex": ..., "pattern": ...}
//   {"event": "close", "code": CODE}
// A text "say:NAME" makes it send the text "hello from NAME"; a text "bye"
// makes it close with 1000. It gives up after 60 s (exit 1); exit 3 if ws
// is missing.
'use strict';
const path = require('path');

let WebSocket;
try {
  WebSocket = require(path.join(__dirname, '..', 'peers', 'node_modules', 'ws'));
} catch (err) {
  process.stderr.write('npm ws is not installed in spec/peers/node_modules\n');
  process.exit(3);
}

const [url, name] = process.argv.slice(2);
const out = (obj) => process.stdout.write(JSON.stringify(obj) + '\n');

function describe(buf, kind) {
  const rec = { event: 'message', kind, len: buf.length, hex: null, pattern: null };
  if (buf.length <= 64) {
    rec.hex = buf.toString('hex');
  } else {
    let ok = true;
    for (let i = 0; i < buf.length && ok; i++) ok = buf[i] === i % 251;
    rec.pattern = ok;
  }
  return rec;
}

const ws = new WebSocket(url, { perMessageDeflate: false, maxPayload: 64 * 1024 * 1024, handshakeTimeout: 10000 });
ws.on('open', () => out({ event: 'open' }));
ws.on('message', (data, isBinary) => {
  const buf = Buffer.isBuffer(data) ? data : Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data);
  out(describe(buf, isBinary ? 'binary' : 'text'));
  if (!isBinary) {
    const text = buf.toString('utf8');
    if (text === 'say:' + name) ws.send('hello from ' + name);
    else if (text === 'bye') ws.close(1000, 'bye');
  }
});
ws.on('close', (code) => {
  out({ event: 'close', code });
  process.exit(0);
});
ws.on('error', (err) => {
  out({ event: 'error', message: String(err) });
});
setTimeout(() => {
  out({ event: 'timeout' });
  process.exit(1);
}, 60000).unref();
