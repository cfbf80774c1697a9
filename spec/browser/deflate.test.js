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

// A TCP relay on 127.0.0.1 and a free port to `port`. Each accepted
// connection is recorded: bytes up (browser -> server), bytes down, and the
// first 4 KiB that came down (where a 101 shows). Resolves to
// { port, conns, close() }.
function startRelay(port) {
  const conns = [];
  const sockets = new Set();
  const server = net.createServer((down) => {
    const rec = { up: 0, down: 0, head: '' };
    conns.push(rec);
    const up = net.connect(port, '127.0.0.1');
    sockets.add(down);
    sockets.add(up);
    down.on('data', (b) => { rec.up += b.length; up.write(b); });
    up.on('data', (b) => {
      rec.down += b.length;
      if (rec.head.length < 4096) rec.head += b.subarray(0, 4096 - rec.head.length).toString('latin1');
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
