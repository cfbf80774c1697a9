// SPDX-License-Identifier: MIT
// node_echo.js -- the node `ws` echo server the luaws benchmarks compare against.
// Usage: node bench/peers/node_echo.js PORT [--deflate]
// Listens on 127.0.0.1:PORT, path /ws, and echoes every message back with the
// same kind (text or binary). No compression by default, which keeps the
// comparison about framing, not zlib; --deflate turns on `perMessageDeflate:
// true` for the compressed scenarios, with ws's defaults: context takeover
// both ways, the window the client allows, messages under 1024 bytes sent
// uncompressed, node's zlib defaults (level 6, memLevel 8), at most 10 zlib
// jobs at once.
'use strict';
const { WebSocketServer } = require('ws');

const port = Number(process.argv[2]);
const deflate = process.argv[3] === '--deflate';
if (!Number.isInteger(port) || port <= 0 || port > 65535 ||
    (process.argv.length > 3 && !deflate) || process.argv.length > 4) {
  console.error('usage: node node_echo.js PORT [--deflate]');
  process.exit(2);
}

const wss = new WebSocketServer({
  host: '127.0.0.1',
  port,
  path: '/ws',
  perMessageDeflate: deflate,
  maxPayload: 64 * 1024 * 1024,
  backlog: 4096,
  clientTracking: false,        // the server keeps no Set of sockets it does not need
});

wss.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  ws.on('error', () => {});     // a reset peer is the generator's to count
});
wss.on('listening', () => console.log(`node ws echo${deflate ? ' (perMessageDeflate)' : ''} listening on ws://127.0.0.1:${port}/ws`));
process.on('SIGTERM', () => process.exit(0));
