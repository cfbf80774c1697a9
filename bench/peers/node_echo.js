// SPDX-License-Identifier: MIT
// node_echo.js -- the node `ws` echo server the luaws benchmarks compare against.
// Usage: node bench/peers/node_echo.js PORT [--deflate] [--tls CERT.pem KEY.pem]
// (the options in any order after PORT).
// Listens on 127.0.0.1:PORT, path /ws, and echoes every message back with the
// same kind (text or binary). No compression by default, which keeps the
// comparison about framing, not zlib; --deflate turns on `perMessageDeflate:
// true` for the compressed scenarios, with ws's defaults: context takeover
// both ways, the window the client allows, messages under 1024 bytes sent
// uncompressed, node's zlib defaults (level 6, memLevel 8), at most 10 zlib
// jobs at once.
// With --tls it serves wss:// instead: the same WebSocketServer on node's own
// `https` server (OpenSSL inside node; node's default TLS settings), which is
// how a node ws app terminates TLS itself.
'use strict';
const fs = require('fs');
const { WebSocketServer } = require('ws');

const usage = 'usage: node node_echo.js PORT [--deflate] [--tls CERT.pem KEY.pem]';
const port = Number(process.argv[2]);
let deflate = false;
let tls = null;                 // { cert, key } file names
let bad = !Number.isInteger(port) || port <= 0 || port > 65535;
const args = process.argv.slice(3);
for (let i = 0; i < args.length && !bad; i++) {
  if (args[i] === '--deflate' && !deflate) {
    deflate = true;
  } else if (args[i] === '--tls' && !tls && i + 2 < args.length) {
    tls = { cert: args[i + 1], key: args[i + 2] };
    i += 2;
  } else {
    bad = true;
  }
}
if (bad) {
  console.error(usage);
  process.exit(2);
}

const common = {
  path: '/ws',
  perMessageDeflate: deflate,
  maxPayload: 64 * 1024 * 1024,
  clientTracking: false,        // the server keeps no Set of sockets it does not need
};
const what = `node ws echo${deflate ? ' (perMessageDeflate)' : ''} listening on`;
let wss;
if (tls) {
  const server = require('https').createServer({
    cert: fs.readFileSync(tls.cert),
    key: fs.readFileSync(tls.key),
  });
  wss = new WebSocketServer({ server, ...common });
  server.listen({ host: '127.0.0.1', port, backlog: 4096 },
    () => console.log(`${what} wss://127.0.0.1:${port}/ws`));
} else {
  wss = new WebSocketServer({ host: '127.0.0.1', port, backlog: 4096, ...common });
  wss.on('listening', () => console.log(`${what} ws://127.0.0.1:${port}/ws`));
}

wss.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  ws.on('error', () => {});     // a reset peer is the generator's to count
});
process.on('SIGTERM', () => process.exit(0));
