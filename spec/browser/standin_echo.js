#!/usr/bin/env node
// SPDX-License-Identifier: MIT
//
// Stand-in for the luaws example servers, so the browser tests can run before
// (and independently of) the Lua ones. It speaks the same contract as
// examples/echo.lua, examples/chat.lua and examples/origin.lua:
//
//   node spec/browser/standin_echo.js --port N --host 127.0.0.1
//        [--public DIR] [--name LABEL] [--allow-origin ORIGIN]... [--tick SECONDS]
//
//   - plain GETs get the files of DIR (default examples/echo/public; "/" is index.html);
//   - /ws echoes every message back, text as text and binary as binary;
//   - /chat is a broadcast room: a text message {"name": n, "text": t} goes to
//     every client as {"from": n, "text": t, "at": iso_time}, and every
//     --tick seconds (default 3) the server pushes {"from": "server", "text": "tick N", "at": ...};
//   - with one or more --allow-origin, a WebSocket handshake whose Origin header
//     is present and not in the list is refused with 403 (no Origin passes,
//     as in DESIGN.md's allowed_origins);
//   - once listening it prints exactly one line to stdout:
//       luaws LABEL listening on http://HOST:PORT/
//     (LABEL defaults to "echo"; --port 0 picks a free port and the line carries it).
//
// It is a test fixture, not a model for luaws: no TLS, no limits beyond ws's defaults.
'use strict';

const http = require('node:http');
const path = require('node:path');
const { WebSocketServer } = require('ws');
const { staticHandler } = require('./static');

function parseArgs(argv) {
  const opts = {
    port: 5000,
    host: '127.0.0.1',
    public: path.join(__dirname, '..', '..', 'examples', 'echo', 'public'),
    name: 'echo',
    allowOrigins: [],
    tick: 3,
  };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const value = argv[i + 1];
    if (value === undefined) throw new Error(`${flag} needs a value`);
    switch (flag) {
      case '--port': opts.port = Number(value); break;
      case '--host': opts.host = value; break;
      case '--public': opts.public = path.resolve(value); break;
      case '--name': opts.name = value; break;
      case '--allow-origin': opts.allowOrigins.push(value); break;
      case '--tick': opts.tick = Number(value); break;
      default: throw new Error(`unknown option ${flag}`);
    }
    i++;
  }
  if (!Number.isInteger(opts.port) || opts.port < 0 || opts.port > 65535) throw new Error('--port must be 0..65535');
  if (!(opts.tick > 0)) throw new Error('--tick must be a positive number of seconds');
  return opts;
}

// Writes a bare HTTP error on a socket that asked to upgrade, then closes it.
function refuse(socket, status, text) {
  socket.end(`HTTP/1.1 ${status} ${text}\r\nConnection: close\r\nContent-Type: text/plain\r\n` +
    `Content-Length: ${text.length + 1}\r\n\r\n${text}\n`);
}

function main() {
  let opts;
  try {
    opts = parseArgs(process.argv.slice(2));
  } catch (err) {
    process.stderr.write(`standin_echo: ${err.message}\n`);
    process.exit(2);
  }

  const server = http.createServer(staticHandler(opts.public));
  const echo = new WebSocketServer({ noServer: true });
  const chat = new WebSocketServer({ noServer: true });

  server.on('upgrade', (req, socket, head) => {
    const route = new URL(req.url, 'http://x').pathname;
    const wss = route === '/ws' ? echo : route === '/chat' ? chat : null;
    if (!wss) return refuse(socket, 404, 'Not Found');
    const origin = req.headers.origin;
    if (opts.allowOrigins.length && origin !== undefined && !opts.allowOrigins.includes(origin)) {
      return refuse(socket, 403, 'Forbidden');
    }
    wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req));
  });

  echo.on('connection', (ws) => {
    ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
  });

  const broadcast = (msg) => {
    const text = JSON.stringify(msg);
    for (const client of chat.clients) if (client.readyState === client.OPEN) client.send(text);
  };
  chat.on('connection', (ws) => {
    ws.on('message', (data, isBinary) => {
      if (isBinary) return;
      let msg;
      try { msg = JSON.parse(data.toString('utf8')); } catch { return; }
      if (!msg || typeof msg.text !== 'string') return;
      const name = typeof msg.name === 'string' && msg.name.trim() ? msg.name.trim() : 'anonymous';
      broadcast({ from: name, text: msg.text, at: new Date().toISOString() });
    });
  });
  let ticks = 0;
  setInterval(() => {
    ticks++;
    broadcast({ from: 'server', text: `tick ${ticks}`, at: new Date().toISOString() });
  }, opts.tick * 1000).unref();

  server.on('error', (err) => {
    process.stderr.write(`standin_echo: ${err.message}\n`);
    process.exit(1);
  });
  server.listen(opts.port, opts.host, () => {
    const { port } = server.address();
    const host = opts.host.includes(':') ? `[${opts.host}]` : opts.host;
    process.stdout.write(`luaws ${opts.name} listening on http://${host}:${port}/\n`);
  });
  const stop = () => process.exit(0);
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main();
