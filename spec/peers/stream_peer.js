#!/usr/bin/env node
// SPDX-License-Identifier: MIT
// Peer for spec/integration/streaming_spec.lua and send_utf8_spec.lua: the
// npm `ws` client (spec/peers/node_modules, perMessageDeflate off), which
// reassembles fragmented messages and sends fragments with
// ws.send(data, {fin: false}).
//
// Usage: node stream_peer.js MODE URL
//
//   whole    sends "go", prints the one message that comes back:
//            {"kind": "text"|"binary", "data": text or hex} (pings are answered)
//   send     sends "Hello, " and "fragmented " with {fin: false}, a ping
//            between them, then "world €" (fin): prints the reply and
//            whether the ping's pong came: {"reply": text, "pong": text}
//   closed   sends "go", prints how the server's answer ended the
//            connection: {"code": n, "reason": text, "error": what ws refused}
//
// One JSON line on stdout, exit 0; anything unexpected: a line on stderr and
// exit 1. Everything is bounded by TIMEOUT_MS.
'use strict';

const WebSocket = require('ws');

const TIMEOUT_MS = 20000;
const [mode, url] = process.argv.slice(2);

function fail(why) {
  process.stderr.write(`stream_peer.js: ${why}\n`);
  process.exit(1);
}

function done(result) {
  process.stdout.write(JSON.stringify(result) + '\n', () => process.exit(0));
}

setTimeout(() => fail(`no result within ${TIMEOUT_MS} ms`), TIMEOUT_MS).unref();

const ws = new WebSocket(url, { perMessageDeflate: false, handshakeTimeout: 5000, maxPayload: 0 });
let error = null;   // in closed mode a frame the client refuses is expected: it fails the connection itself
ws.on('error', (err) => (mode === 'closed' ? (error = err.message) : fail(err.message)));

ws.on('open', () => {
  if (mode === 'whole') {
    ws.on('message', (data, isBinary) => {
      done({ kind: isBinary ? 'binary' : 'text', data: isBinary ? data.toString('hex') : data.toString('utf8') });
      ws.close(1000);
    });
    ws.send('go');
  } else if (mode === 'send') {
    const got = {};
    const finish = () => {
      if (got.reply !== undefined && got.pong !== undefined) {
        done(got);
        ws.close(1000);
      }
    };
    ws.on('message', (data) => { got.reply = data.toString('utf8'); finish(); });
    ws.on('pong', (data) => { got.pong = data.toString('utf8'); finish(); });
    ws.send('Hello, ', { fin: false });
    ws.ping('between');
    ws.send('fragmented ', { fin: false });
    ws.send('world \u20ac', { fin: true });
  } else if (mode === 'closed') {
    ws.on('message', (data) => fail(`unexpected message ${data.toString('latin1').slice(0, 40)}`));
    ws.on('close', (code, reason) => done({ code, reason: reason.toString(), error }));
    ws.send('go');
  } else {
    fail(`unknown mode ${mode}`);
  }
});
