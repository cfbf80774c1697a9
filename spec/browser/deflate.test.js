// SPDX-License-Identifier: MIT
//
// permessage-deflate (RFC 7692) in a real browser: the echo example started
// with --compression, its page in headless chromium. The page sends 100 KiB
// of repetitive text with its own controls; the echo must come back intact,
// chromium must say it agreed permessage-deflate (WebSocket.extensions), and
// the bytes must have crossed the wire compressed in both directions. The
// wire is measured by a TCP relay of the spec's own between chromium and
// the server, which counts every byte each way; the page and the socket both
// go through it. The control: the same page and message without
// --compression move more than 100 KiB each way.
//
// The second test takes chromium through every window size (8..15, each
// side) and takeover mode that a server can impose on its offer
// (spec/support/deflate_echo_server.lua, one route each): every echo comes
// back intact, chromium's WebSocket.extensions and the server's
// ws.compression say what the route asks, both directions shrink, and the
// same 2 KiB sent five times costs a few bytes after the first only where the
// context is kept and the window reaches 2 KiB back (the relay reads the
// server's frames; the server logs what each message cost on the wire).
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const net = require('node:net');
const h = require('./harness');

const KiB = 1024;

// The text the page sends: 100 KiB, repetitive as chat or JSON is.
function text100k() {
  const parts = [];
  for (let i = 0; i < 2200; i++) parts.push(`The quick brown fox ${String(i).padStart(5, '0')} jumps over the lazy dog. `);
  return parts.join('').slice(0, 100 * KiB);
}

// Reads the server's side of a connection: skips the HTTP head, then parses
// the (unmasked) frames, pushing {op, rsv1, fin, len} of each into out.
function frameReader(out) {
  let buf = Buffer.alloc(0);
  let inHead = true;
  return (chunk) => {
    buf = Buffer.concat([buf, chunk]);
    if (inHead) {
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) return;
      if (!/^HTTP\/1\.1 101/.test(buf.subarray(0, 12).toString('latin1'))) { inHead = null; return; }
      buf = buf.subarray(end + 4);
      inHead = false;
    }
    if (inHead === null) { buf = Buffer.alloc(0); return; }
    for (;;) {
      if (buf.length < 2) return;
      let len = buf[1] & 0x7f;
      let at = 2;
      if (len === 126) { if (buf.length < 4) return; len = buf.readUInt16BE(2); at = 4; }
      else if (len === 127) { if (buf.length < 10) return; len = Number(buf.readBigUInt64BE(2)); at = 10; }
      if (buf[1] & 0x80) at += 4;
      if (buf.length < at + len) return;
      out.push({ op: buf[0] & 0x0f, rsv1: !!(buf[0] & 0x40), fin: !!(buf[0] & 0x80), len });
      buf = buf.subarray(at + len);
    }
  };
}

// A TCP relay on 127.0.0.1 and a free port to `port`. Each accepted
// connection is recorded: bytes up (browser -> server), bytes down, and the
// first 4 KiB that came down (where a 101 shows). Resolves to
// { port, conns, close() }.
function startRelay(port) {
  const conns = [];
  const sockets = new Set();
  const server = net.createServer((down) => {
    const rec = { up: 0, down: 0, head: '', request: '', frames: [] };
    conns.push(rec);
    const up = net.connect(port, '127.0.0.1');
    sockets.add(down);
    sockets.add(up);
    const frames = frameReader(rec.frames);
    down.on('data', (b) => {
      rec.up += b.length;
      if (rec.request.length < 512) rec.request += b.subarray(0, 512 - rec.request.length).toString('latin1');
      up.write(b);
    });
    up.on('data', (b) => {
      rec.down += b.length;
      if (rec.head.length < 4096) rec.head += b.subarray(0, 4096 - rec.head.length).toString('latin1');
      frames(b);
      down.write(b);
    });
    const end = () => { down.destroy(); up.destroy(); };
    down.on('close', end);
    up.on('close', end);
    down.on('error', end);
    up.on('error', end);
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve({
      port: server.address().port,
      conns,
      close: () => new Promise((done) => {
        for (const s of sockets) s.destroy();
        server.close(() => done());
      }),
    }));
  });
}

// Loads the page through the relay, connects with its button, sends `text`
// with its field and button, waits for the echo in the log, closes.
// Returns { echoed, extensions, ws }: the echo as the log shows it, what
// chromium agreed, and the relay's record of the WebSocket connection.
async function echoThroughPage(context, relay, text) {
  const page = await context.newPage();
  page.errors = [];
  page.on('pageerror', (err) => page.errors.push(err.message));
  // Keep the page's sockets where the test can ask them for .extensions.
  await page.addInitScript(() => {
    const Native = window.WebSocket;
    window.luawsSockets = [];
    window.WebSocket = class extends Native {
      constructor(...args) {
        super(...args);
        window.luawsSockets.push(this);
      }
    };
  });
  await page.goto(`http://127.0.0.1:${relay.port}/`, { timeout: h.WAIT_MS });
  assert.equal(await page.inputValue('#connectionUrl'), `ws://127.0.0.1:${relay.port}/ws`);
  await page.click('#connectButton');
  await page.locator('#stateLabel').filter({ hasText: /^Open$/ }).waitFor();
  await page.fill('#sendMessage', text);
  await page.click('#sendButton');
  const received = page.locator('#commsLog tr[data-kind="received"] td.data').first();
  await received.waitFor();
  const echoed = await received.textContent();
  const extensions = await page.evaluate(() => window.luawsSockets[0].extensions);
  await page.click('#closeButton');
  await page.locator('#stateLabel').filter({ hasText: /^Closed$/ }).waitFor();
  assert.deepEqual(page.errors, []);
  await page.close();
  const ws = relay.conns.find((c) => /^HTTP\/1\.1 101/.test(c.head));
  assert.ok(ws, `no connection through the relay got a 101: ${JSON.stringify(relay.conns.map((c) => c.head.slice(0, 80)))}`);
  return { echoed, extensions, ws };
}

test('echo page with --compression: 100 KiB of text comes back intact and crossed the wire compressed',
  { timeout: 120000, skip: process.env.LUAWS_BROWSER_STANDIN === '1' && 'the stand-in has no --compression' },
  async () => {
    const text = text100k();
    let server;
    let plain;
    let relay;
    let plainRelay;
    let browser;
    try {
      server = await h.startServer(h.serverCommand('echo'), ['--compression']);
      plain = await h.startServer(h.serverCommand('echo'));
      relay = await startRelay(server.port);
      plainRelay = await startRelay(plain.port);
      browser = await h.launchBrowser();

      const on = await echoThroughPage(browser.context, relay, text);
      assert.equal(on.echoed.length, text.length, 'the echo has the length of what was sent');
      assert.ok(on.echoed === text, 'the echo is what was sent');
      assert.match(on.extensions, /^permessage-deflate\b/, `chromium agreed "${on.extensions}"`);
      assert.match(on.ws.head, /\r\nsec-websocket-extensions:\s*permessage-deflate/i, 'the 101 names permessage-deflate');
      // 100 KiB of this text deflates to a few KiB; with the handshake and
      // the close, each way stays far below a quarter of it.
      process.stdout.write(`# chromium, compressed: ${on.ws.up} bytes up, ${on.ws.down} bytes down for a ${text.length}-byte echo\n`);
      assert.ok(on.ws.up < 25 * KiB, `browser -> server carried ${on.ws.up} bytes`);
      assert.ok(on.ws.down < 25 * KiB, `server -> browser carried ${on.ws.down} bytes`);

      // The control: without --compression the same echo is the text itself each way.
      const off = await echoThroughPage(browser.context, plainRelay, text);
      assert.ok(off.echoed === text, 'the uncompressed echo is what was sent');
      assert.equal(off.extensions, '', 'no extension without --compression');
      process.stdout.write(`# chromium, uncompressed: ${off.ws.up} bytes up, ${off.ws.down} bytes down\n`);
      assert.ok(off.ws.up > 100 * KiB && off.ws.down > 100 * KiB, `the control moved ${off.ws.up} up, ${off.ws.down} down`);
    } finally {
      if (browser) await browser.close();
      if (relay) await relay.close();
      if (plainRelay) await plainRelay.close();
      if (server) await server.stop();
      if (plain) await plain.stop();
    }
  });

// "permessage-deflate; b=1; a" -> ["permessage-deflate", "a", "b=1"]
function parts(answer) {
  const list = answer.split(';').map((p) => p.trim().toLowerCase().replace(/\s*=\s*/, '=')).filter((p) => p);
  const name = list.shift();
  return [name, ...list.sort()];
}

// Every route of spec/support/deflate_echo_server.lua with what chromium's
// offer ("permessage-deflate; client_max_window_bits") must get there.
function routes() {
  const list = [
    { path: '/ws', answer: 'permessage-deflate', agreed: {} },
    { path: '/snct', answer: 'permessage-deflate; server_no_context_takeover', agreed: { server_no_context_takeover: true } },
    { path: '/cnct', answer: 'permessage-deflate; client_no_context_takeover', agreed: { client_no_context_takeover: true } },
    { path: '/both', answer: 'permessage-deflate; server_no_context_takeover; client_no_context_takeover',
      agreed: { server_no_context_takeover: true, client_no_context_takeover: true } },
  ];
  for (let n = 8; n <= 15; n++) {
    list.push({ path: `/sw${n}`, answer: n < 15 ? `permessage-deflate; server_max_window_bits=${n}` : 'permessage-deflate',
      agreed: { server_max_window_bits: n } });
    list.push({ path: `/cw${n}`, answer: n < 15 ? `permessage-deflate; client_max_window_bits=${n}` : 'permessage-deflate',
      agreed: { client_max_window_bits: n } });
  }
  for (const r of list) {
    r.agreed = { server_no_context_takeover: false, client_no_context_takeover: false,
      server_max_window_bits: 15, client_max_window_bits: 15, ...r.agreed };
  }
  return list;
}

// In the page: for each path, a WebSocket that sends the 100 KiB text, a
// binary with a repeat just past each window size, and the same 2 KiB text
// five times; checks each echo; reports what chromium agreed.
async function pageConversations({ paths, text }) {
  const results = [];
  const hex = (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
  const random = (n) => crypto.getRandomValues(new Uint8Array(n));
  for (const path of paths) {
    const ws = new WebSocket(`ws://${location.host}${path}`);
    ws.binaryType = 'arraybuffer';
    const inbox = [];
    const waiting = [];
    ws.onmessage = (e) => (waiting.length ? waiting.shift()(e.data) : inbox.push(e.data));
    const next = () => new Promise((resolve) => (inbox.length ? resolve(inbox.shift()) : waiting.push(resolve)));
    const closed = new Promise((resolve) => { ws.onclose = (e) => resolve(e.code); });
    const opened = await new Promise((resolve) => { ws.onopen = () => resolve(true); ws.onerror = () => resolve(false); });
    const r = { path, opened, extensions: ws.extensions, errors: [] };
    if (opened) {
      ws.send(text);
      if ((await next()) !== text) r.errors.push('the 100 KiB text came back changed');
      const blocks = [];
      for (let k = 8; k <= 15; k++) { const b = random((1 << k) + 64); blocks.push(b, b); }
      const bin = new Uint8Array(blocks.reduce((n, b) => n + b.length, 0));
      let at = 0;
      for (const b of blocks) { bin.set(b, at); at += b.length; }
      ws.send(bin);
      const back = new Uint8Array(await next());
      if (back.length !== bin.length || back.some((v, i) => v !== bin[i])) r.errors.push('the window binary came back changed');
      const m = hex(random(1024));
      for (let i = 0; i < 5; i++) {
        ws.send(m);
        if ((await next()) !== m) r.errors.push(`takeover message ${i + 1} came back changed`);
      }
      ws.close(1000);
    }
    r.closeCode = await closed;
    results.push(r);
  }
  return results;
}

test('chromium against every window size and takeover mode: echoes intact, agreed as the server says, compressed both ways',
  { timeout: 180000, skip: process.env.LUAWS_BROWSER_STANDIN === '1' && 'luaws only' },
  async () => {
    const text = text100k();
    let server;
    let relay;
    let browser;
    try {
      server = await h.startServer(['lua5.4', 'spec/support/deflate_echo_server.lua']);
      relay = await startRelay(server.port);
      browser = await h.launchBrowser();
      const page = await browser.context.newPage();
      page.errors = [];
      page.on('pageerror', (err) => page.errors.push(err.message));
      await page.goto(`http://127.0.0.1:${relay.port}/`, { timeout: h.WAIT_MS });
      const list = routes();
      const results = await page.evaluate(pageConversations, { paths: list.map((r) => r.path), text });
      await page.close();
      // the server prints one line per connection when it ends
      const deadline = Date.now() + h.WAIT_MS;
      const lines = () => server.output().split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l));
      while (lines().length < list.length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
      const logged = new Map(lines().map((l) => [l.path, l]));
      const figures = [];
      for (const [i, want] of list.entries()) {
        const got = results[i];
        const where = `${want.path}: `;
        assert.ok(got.opened, `${where}the connection did not open`);
        assert.deepEqual(got.errors, [], where + got.errors.join('; '));
        assert.equal(got.closeCode, 1000, `${where}closed with ${got.closeCode}`);
        assert.deepEqual(parts(got.extensions), parts(want.answer), `${where}chromium agreed "${got.extensions}"`);
        const srv = logged.get(want.path);
        assert.ok(srv, `${where}the server printed no line for it: ${server.output().slice(-1500)}`);
        assert.match(String(srv.offer), /^permessage-deflate/, `${where}chromium offered ${srv.offer}`);
        assert.deepEqual(srv.compression, want.agreed, `${where}ws.compression on the server`);
        const st = srv.stats;
        assert.ok(st.decompressions >= 7 && st.compressions >= 7, `${where}stats ${JSON.stringify(st)}`);
        assert.ok(st.bytes_in - st.wire_bytes_in > 64 * KiB, `${where}chromium's messages did not shrink: ${JSON.stringify(st)}`);
        assert.ok(st.bytes_out - st.wire_bytes_out > 64 * KiB, `${where}luaws's messages did not shrink: ${JSON.stringify(st)}`);

        // context takeover and windows, each way: the 2 KiB repeats are
        // cheap only with the context kept and a window that reaches them
        const a = want.agreed;
        const conn = relay.conns.find((c) => c.request.startsWith(`GET ${want.path} `));
        assert.ok(conn, `${where}the relay saw no request for it`);
        const data = conn.frames.filter((f) => f.op === 1 || f.op === 2);
        assert.equal(data.length, 7, `${where}the server sent ${data.length} data frames`);
        assert.ok(data.every((f) => f.rsv1), `${where}a message went out uncompressed: ${JSON.stringify(data)}`);
        const out = data.slice(2).map((f) => f.len);
        const inn = srv.sizes.slice(2);
        const mean = (xs) => xs.slice(1).reduce((x, y) => x + y, 0) / (xs.length - 1);
        figures.push(`${want.path} out ${out[0]}/${mean(out).toFixed(0)} in ${inn[0]}/${mean(inn).toFixed(0)}`);
        if (a.server_no_context_takeover || a.server_max_window_bits <= 10) {
          assert.ok(mean(out) > out[0] / 2, `${where}luaws -> chromium repeats ${out}: no context to take over`);
        } else if (a.server_max_window_bits >= 12) {
          assert.ok(mean(out) < out[0] / 4, `${where}luaws -> chromium repeats ${out}: context takeover`);
        }
        if (a.client_no_context_takeover || a.client_max_window_bits <= 10) {
          assert.ok(mean(inn) > inn[0] / 2, `${where}chromium -> luaws repeats ${inn}: no context to take over`);
        } else if (a.client_max_window_bits >= 12) {
          assert.ok(mean(inn) < inn[0] / 4, `${where}chromium -> luaws repeats ${inn}: context takeover`);
        }
      }
      process.stdout.write(`# chromium takeover figures (first copy / mean of repeats, wire bytes): ${figures.join('; ')}\n`);
      assert.deepEqual(page.errors, []);
    } finally {
      if (browser) await browser.close();
      if (relay) await relay.close();
      if (server) await server.stop();
    }
  });
