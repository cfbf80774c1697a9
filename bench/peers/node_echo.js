// SPDX-License-Identifier: MIT
// node_echo.js -- the node `ws` echo server the luaws benchmarks compare against.
// Usage: node bench/peers/node_echo.js PORT [--tls CERT.pem KEY.pem]
// Listens on 127.0.0.1:PORT, path /ws, and echoes every message back with the
// same kind (text or binary). No compression: the generator never offers it,
// and disabling it keeps the comparison about framing, not zlib.
// With --tls it serves wss:// instead: the same WebSocketServer on node's own
// `https` server (OpenSSL inside node; node's default TLS settings), which is
// how a node ws app terminates TLS itself.
'use strict';
const fs = require('fs');
const { WebSocketServer } = require('ws');

const port = Number(process.argv[2]);
const args = process.argv.slice(3);
const tls = args[0] === '--tls' && args.length === 3;
if (!Number.isInteger(port) || port <= 0 || port > 65535 || (args.length > 0 && !tls)) {
  console.error('usage: node node_echo.js PORT [--tls CERT.pem KEY.pem]');
  process.exit(2);
}

const common = {
  path: '/ws',
  perMessageDeflate: false,
  maxPayload: 64 * 1024 * 1024,
  clientTracking: false,        // the server keeps no Set of sockets it does not need
};
let wss;
if (tls) {
  const server = require('https').createServer({
    cert: fs.readFileSync(args[1]),
    key: fs.readFileSync(args[2]),
  });
  wss = new WebSocketServer({ server, ...common });
  server.listen({ host: '127.0.0.1', port, backlog: 4096 },
    () => console.log(`node ws echo listening on wss://127.0.0.1:${port}/ws`));
} else {
  wss = new WebSocketServer({ host: '127.0.0.1', port, backlog: 4096, ...common });
  wss.on('listening', () => console.log(`node ws echo listening on ws://127.0.0.1:${port}/ws`));
}

wss.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  ws.on('error', () => {});     // a reset peer is the generator's to count
});
process.on('SIGTERM', () => process.exit(0));
