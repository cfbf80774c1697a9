// SPDX-License-Identifier: MIT
// sio_fanout.js -- the socket.io fan-out server of bench/fanout.sh.
// Usage: node bench/peers/sio_fanout.js PORT [REDIS_PORT]
// Listens on 127.0.0.1:PORT (socket.io's default path /socket.io/), the
// websocket transport only, no compression. Every "msg" event from any
// socket is sent to all sockets with io.emit (the sender too). With
// REDIS_PORT, @socket.io/redis-adapter (ioredis clients) joins this process
// to the others on that Redis, so io.emit reaches their sockets as well; the
// "listening" line is printed once both Redis clients are ready.
'use strict';
const http = require('http');
const { Server } = require('socket.io');

const port = Number(process.argv[2]);
const redisPort = process.argv[3] ? Number(process.argv[3]) : 0;
if (!Number.isInteger(port) || port <= 0 || port > 65535 || !Number.isInteger(redisPort)) {
  console.error('usage: node sio_fanout.js PORT [REDIS_PORT]');
  process.exit(2);
}

const httpServer = http.createServer();
const io = new Server(httpServer, {
  transports: ['websocket'],
  perMessageDeflate: false,
  httpCompression: false,
  maxHttpBufferSize: 64 * 1024 * 1024,
  serveClient: false,
});

io.on('connection', (socket) => {
  socket.on('msg', (data) => io.emit('msg', data));
});

function listen() {
  httpServer.listen({ host: '127.0.0.1', port, backlog: 4096 }, () => {
    const how = redisPort ? `, redis adapter on 127.0.0.1:${redisPort}` : '';
    console.log(`socket.io fan-out${how} listening on ws://127.0.0.1:${port}/socket.io/`);
  });
}

if (redisPort) {
  const { Redis } = require('ioredis');
  const { createAdapter } = require('@socket.io/redis-adapter');
  const pub = new Redis({ host: '127.0.0.1', port: redisPort, lazyConnect: true });
  const sub = pub.duplicate();
  Promise.all([pub.connect(), sub.connect()]).then(() => {
    io.adapter(createAdapter(pub, sub));
    listen();
  }, (e) => {
    console.error(`redis: ${e.message}`);
    process.exit(1);
  });
} else {
  listen();
}
process.on('SIGTERM', () => process.exit(0));
