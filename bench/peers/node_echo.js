// SPDX-License-Identifier: MIT
// node_echo.js -- the node `ws` echo server the luaws benchmarks compare against.
// Usage: node bench/peers/node_echo.js PORT
// Listens on 127.0.0.1:PORT, path /ws, and echoes every message back with the
// same kind (text or binary). No compression: the generator never offers it,
// and disabling it keeps the comparison about framing, not zlib.
'use strict';
const { WebSocketServer } = require('ws');

const port = Number(process.argv[2]);
if (!Number.isInteger(port) || port <= 0 || port > 65535) {
  console.error('usage: node node_echo.js PORT');
  process.exit(2);
}

const wss = new WebSocketServer({
  host: '127.0.0.1',
  port,
  path: '/ws',
  perMessageDeflate: false,
  maxPayload: 64 * 1024 * 1024,
  backlog: 4096,
  clientTracking: false,        // the server keeps no Set of sockets it does not need
});

wss.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  ws.on('error', () => {});     // a reset peer is the generator's to count
});
wss.on('listening', () => console.log(`node ws echo listening on ws://127.0.0.1:${port}/ws`));
process.on('SIGTERM', () => process.exit(0));
