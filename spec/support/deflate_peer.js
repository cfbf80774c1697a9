#!/usr/bin/env node
// SPDX-License-Identifier: MIT
//
// Peer for spec/integration/deflate_spec.lua: the npm `ws` (spec/peers/node_modules)
// with permessage-deflate (RFC 7692), as a client of a luaws server and as a
// server for a luaws client. The same protocol as deflate_peer.py:
//
//   node deflate_peer.js client CASES.json
//     CASES.json: a list of {name, url, offer, steps}. offer: null (no offer),
//     "default" (perMessageDeflate: true), or {server_no_context_takeover,
//     client_no_context_takeover, server_max_window_bits, client_max_window_bits}
//     (threshold 0: every message compressed). One JSON line per case:
//     {name, ok, detail, ext (our view of what was agreed, RFC 7692 names, 15
//     and false where unsaid; null: none), answer (the server's
//     Sec-WebSocket-Extensions), server (its answer to "?ext"), stats (its
//     answers to "?stats"), in: [{rsv1, size, frames}] per message received}
//   node deflate_peer.js server CONFIGS.json
//     CONFIGS.json: {name: null | "default" | {the same four names}}: one
//     server each on 127.0.0.1 and a free port; prints "listening NAME PORT"
//     for each, then "ready"; serves until SIGTERM. "?ext" gets {ext, offer,
//     answer}, "?stats" gets {in: [...]}, "?stream" gets STREAM_PIECES as one
//     fragmented message; anything else is echoed.
//
// Exit 0 with the lines; 3 if ws is missing.
'use strict';

const path = require('node:path');
const crypto = require('node:crypto');
const fs = require('node:fs');

const WS_DIR = path.join(__dirname, '..', 'peers', 'node_modules', 'ws');
let WebSocket;
let PerMessageDeflate;
try {
  WebSocket = require(WS_DIR);
  PerMessageDeflate = require(path.join(WS_DIR, 'lib', 'permessage-deflate'));
} catch (err) {
  process.stderr.write('npm ws is not installed in spec/peers/node_modules\n');
  process.exit(3);
}

const TIMEOUT_MS = 30000;
const MAX_PAYLOAD = 64 * 1024 * 1024;
const STREAM_PIECES = [1, 2, 3].map((i) => `piece ${i} of a compressed stream; `.repeat(300));
const FRAGMENTS = ['part one '.repeat(200), 'part two '.repeat(200), 'part three \u20ac '.repeat(200)];

// Count what arrives compressed: ws inflates each frame of a compressed
// message through decompress(data, fin, cb), in order, before the message
// event, so the message events can be matched with the compressed ones.
const origDecompress = PerMessageDeflate.prototype.decompress;
PerMessageDeflate.prototype.decompress = function decompress(data, fin, cb) {
  const log = this.luawsLog;
  if (log) {
    log.cur += data.length;
    log.frames += 1;
    if (fin) {
      log.done.push({ size: log.cur, frames: log.frames });
      log.cur = 0;
      log.frames = 0;
    }
  }
  return origDecompress.call(this, data, fin, cb);
};

function pmdOf(ws) {
  return ws._extensions && ws._extensions[PerMessageDeflate.extensionName];
}

// What was agreed, as this side applies it.
function view(ws) {
  const p = pmdOf(ws);
  if (!p || !p.params) return null;
  const bits = (v) => (typeof v === 'number' ? v : 15);
  return {
    server_no_context_takeover: !!p.params.server_no_context_takeover,
    client_no_context_takeover: !!p.params.client_no_context_takeover,
    server_max_window_bits: bits(p.params.server_max_window_bits),
    client_max_window_bits: bits(p.params.client_max_window_bits),
  };
}

// Message log and inbox of one connection.
function track(ws) {
  const log = { cur: 0, frames: 0, done: [] };
  const p = pmdOf(ws);
  if (p) p.luawsLog = log;
  ws.received = [];
  ws.inbox = [];
  ws.waiting = [];
  ws.closedWith = null;
  ws.on('close', (code) => {
    ws.closedWith = code;
    for (const w of ws.waiting.splice(0)) w(null);
  });
  ws.on('message', (data, isBinary) => {
    const c = log.done.shift();
    ws.received.push(c ? { rsv1: true, size: c.size, frames: c.frames } : { rsv1: false, size: data.length, frames: 1 });
    const item = { data, isBinary };
    if (ws.waiting.length) ws.waiting.shift()(item);
    else ws.inbox.push(item);
  });
}

// The next message; rejects when the connection closes first or after TIMEOUT_MS.
function next(ws) {
  return new Promise((resolve, reject) => {
    if (ws.inbox.length) { resolve(ws.inbox.shift()); return; }
    if (ws.closedWith !== null) { reject(new Error(`closed with ${ws.closedWith}`)); return; }
    const timer = setTimeout(() => reject(new Error('no message within 30 s')), TIMEOUT_MS);
    ws.waiting.push((item) => {
      clearTimeout(timer);
      if (item) resolve(item);
      else reject(new Error(`closed with ${ws.closedWith}`));
    });
  });
}

function same(what, got, data, isBinary) {
  if (got.isBinary !== isBinary) return `${what}: got a ${got.isBinary ? 'binary' : 'text'} message`;
  const want = Buffer.isBuffer(data) ? data : Buffer.from(data, 'utf8');
  if (!got.data.equals(want)) {
    return `${what}: got ${got.data.length} bytes ${JSON.stringify(got.data.subarray(0, 40).toString('latin1'))}, expected ${want.length}`;
  }
  return null;
}

async function echo(ws, what, data, isBinary) {
  ws.send(data, { binary: isBinary });
  return same(what, await next(ws), data, isBinary);
}

function text100k() {
  const parts = [];
  for (let i = 0; i < 2200; i++) parts.push(`The quick brown fox ${String(i).padStart(5, '0')} jumps over the lazy dog. `);
  return parts.join('').slice(0, 100 * 1024);
}

// The record of the message received last.
function lastIn(c) {
  const r = c.ws.received;
  return r.length ? r[r.length - 1] : null;
}

// For each k in 8..15 a random block of 2^k + 64 bytes, twice: a repeat just
// out of reach of a window of k bits (a compressor that uses a larger window
// than agreed reaches it, and an inflater held to the agreed one fails).
function windowBytes() {
  const parts = [];
  for (let k = 8; k <= 15; k++) {
    const b = crypto.randomBytes((1 << k) + 64);
    parts.push(b, b);
  }
  return Buffer.concat(parts);
}

async function askJson(ws, q) {
  ws.send(q);
  const got = await next(ws);
  return JSON.parse(got.data.toString('utf8'));
}

const STEPS = {
  async ext(c) { c.server = await askJson(c.ws, '?ext'); },
  async stats(c) { c.stats.push(await askJson(c.ws, '?stats')); },
  text100k: (c) => echo(c.ws, '100 KiB text', text100k(), false),
  binary: (c) => echo(c.ws, '64 KiB random binary', crypto.randomBytes(65536), true),
  window: (c) => echo(c.ws, 'window binary', windowBytes(), true),
  async takeover(c) {
    const msg = crypto.randomBytes(1024).toString('hex');
    const r = { in: [], stats: [] };
    c.results.takeover = r;
    await STEPS.stats(c);
    r.stats.push(c.stats[c.stats.length - 1]);
    for (let i = 0; i < 5; i++) {
      const err = await echo(c.ws, `takeover message ${i + 1}`, msg, false);
      if (err) return err;
      r.in.push(lastIn(c));
      if (i === 0) {
        await STEPS.stats(c);
        r.stats.push(c.stats[c.stats.length - 1]);
      }
    }
    await STEPS.stats(c);
    r.stats.push(c.stats[c.stats.length - 1]);
    return null;
  },
  async fragmented(c) {
    FRAGMENTS.forEach((f, i) => c.ws.send(f, { fin: i === FRAGMENTS.length - 1 }));
    return same('fragmented message', await next(c.ws), FRAGMENTS.join(''), false);
  },
  async stream(c) {
    c.ws.send('?stream');
    const err = same('streamed message', await next(c.ws), STREAM_PIECES.join(''), false);
    c.results.stream = lastIn(c);
    return err;
  },
  async small(c) {
    const err = await echo(c.ws, 'small text', 'tiny', false);
    c.results.small = lastIn(c);
    return err;
  },
  async big(c) {
    const err = await echo(c.ws, 'text over the threshold', 'b'.repeat(300), false);
    c.results.big = lastIn(c);
    return err;
  },
  async many(c) {
    for (let i = 0; i < 50; i++) {
      const err = await echo(c.ws, `message ${i}`, JSON.stringify({ seq: i, user: `u${i % 7}`, text: `hello ${'x'.repeat(i)}` }), false);
      if (err) return err;
    }
    return null;
  },
};

function pmdOptions(o) {
  if (o === null || o === undefined) return false;
  if (o === 'default') return true;
  const opts = { threshold: 0 };
  if (o.server_no_context_takeover) opts.serverNoContextTakeover = true;
  if (o.client_no_context_takeover) opts.clientNoContextTakeover = true;
  if (o.server_max_window_bits) opts.serverMaxWindowBits = o.server_max_window_bits;
  if (o.client_max_window_bits !== undefined && o.client_max_window_bits !== null) {
    opts.clientMaxWindowBits = o.client_max_window_bits;
  }
  return opts;
}

function open(url, offer) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, { perMessageDeflate: pmdOptions(offer), handshakeTimeout: 10000, maxPayload: MAX_PAYLOAD });
    ws.once('upgrade', (res) => { ws.answer = res.headers['sec-websocket-extensions'] || null; });
    ws.once('open', () => { track(ws); resolve(ws); });
    ws.once('error', reject);
  });
}

async function runCase(kase) {
  const out = { name: kase.name, ok: false, detail: null, ext: null, answer: null, server: null, stats: [], in: [], results: {} };
  let ws;
  try {
    ws = await open(kase.url, kase.offer);
    ws.on('error', () => {});
    out.ext = view(ws);
    out.answer = ws.answer;
    const c = { ws, server: null, stats: [], results: {} };
    let err = null;
    for (const name of kase.steps) {
      err = await STEPS[name](c);
      if (err) break;
    }
    out.server = c.server;
    out.stats = c.stats;
    out.in = ws.received;
    out.results = c.results;
    out.ok = !err;
    out.detail = err || null;
    await new Promise((resolve) => {
      const t = setTimeout(resolve, 5000);
      ws.once('close', () => { clearTimeout(t); resolve(); });
      ws.close(1000);
    });
  } catch (e) {
    out.detail = `${e.name}: ${e.message}`;
    if (ws) ws.terminate();
  }
  return out;
}

async function client(file) {
  const cases = JSON.parse(fs.readFileSync(file, 'utf8'));
  for (const kase of cases) process.stdout.write(`${JSON.stringify(await runCase(kase))}\n`);
}

function server(file) {
  const configs = JSON.parse(fs.readFileSync(file, 'utf8'));
  const servers = [];
  const names = Object.keys(configs);
  let listening = 0;
  for (const name of names) {
    const wss = new WebSocket.Server({
      host: '127.0.0.1', port: 0, perMessageDeflate: pmdOptions(configs[name]), maxPayload: MAX_PAYLOAD,
    });
    servers.push(wss);
    wss.on('headers', (headers, req) => {
      req.luawsAnswer = null;
      for (const h of headers) {
        const m = /^sec-websocket-extensions:\s*(.*)$/i.exec(h);
        if (m) req.luawsAnswer = m[1];
      }
    });
    wss.on('connection', (ws, req) => {
      track(ws);
      ws.on('error', () => {});
      ws.on('message', (data, isBinary) => {
        const text = isBinary ? null : data.toString('utf8');
        if (text === '?ext') {
          ws.send(JSON.stringify({ ext: view(ws), offer: req.headers['sec-websocket-extensions'] || null, answer: req.luawsAnswer }));
        } else if (text === '?stats') {
          ws.send(JSON.stringify({ in: ws.received.slice(0, -1) }));
        } else if (text === '?stream') {
          STREAM_PIECES.forEach((p, i) => ws.send(p, { fin: i === STREAM_PIECES.length - 1 }));
        } else {
          ws.send(data, { binary: isBinary });
        }
      });
    });
    wss.on('listening', () => {
      process.stdout.write(`listening ${name} ${wss.address().port}\n`);
      listening += 1;
      if (listening === names.length) process.stdout.write('ready\n');
    });
  }
  process.on('SIGTERM', () => {
    for (const s of servers) {
      for (const c of s.clients) c.terminate();
      s.close();
    }
    process.exit(0);
  });
}

const [mode, file] = process.argv.slice(2);
if (mode === 'client') {
  client(file).catch((e) => { process.stderr.write(`${e.stack}\n`); process.exit(1); });
} else if (mode === 'server') {
  server(file);
} else {
  process.stderr.write('usage: deflate_peer.js client CASES.json | server CONFIGS.json\n');
  process.exit(2);
}
