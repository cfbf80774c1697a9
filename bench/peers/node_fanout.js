// SPDX-License-Identifier: MIT
// node_fanout.js -- the node `ws` fan-out server of bench/fanout.sh.
// Usage: node bench/peers/node_fanout.js PORT [--deflate]
// Listens on 127.0.0.1:PORT, path /ws. Every message from any connection is
// sent to every open client (the sender too): the broadcast loop of ws's own
// README, over wss.clients. No compression, as in node_echo.js; --deflate
// turns on `perMessageDeflate: true` (ws's defaults; each client.send
// compresses on its own, ws has no shared compressed frame).
'use strict';
const { WebSocketServer, WebSocket } = require('ws');

const port = Number(process.argv[2]);
const deflate = process.argv[3] === '--deflate';
if (!Number.isInteger(port) || port <= 0 || port > 65535 ||
    (process.argv.length > 3 && !deflate) || process.argv.length > 4) {
  console.error('usage: node node_fanout.js PORT [--deflate]');
  process.exit(2);
}

const wss = new WebSocketServer({
  host: '127.0.0.1',
  port,
  path: '/ws',
  perMessageDeflate: deflate,
  maxPayload: 64 * 1024 * 1024,
  backlog: 4096,
  clientTracking: true,         // wss.clients: the set the broadcast walks
});

wss.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => {
    for (const client of wss.clients) {
      if (client.readyState === WebSocket.OPEN) client.send(data, { binary: isBinary });
    }
  });
  ws.on('error', () => {});     // a reset peer is the generator's to count
});
wss.on('listening', () => console.log(`node ws fan-out${deflate ? ' (perMessageDeflate)' : ''} listening on ws://127.0.0.1:${port}/ws`));
process.on('SIGTERM', () => process.exit(0));
