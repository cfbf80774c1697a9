// SPDX-License-Identifier: MIT
//
// Origin policy seen from a real browser. The server under test is started as
//   <LUAWS_BROWSER_ORIGIN_SERVER> --port 0 --host 127.0.0.1 --allow-origin http://client.test:PORT_A
// and must accept WebSocket handshakes on /ws (echo) only from that origin
// (or with no Origin header at all), answering others with 403.
//
// Two plain static servers on 127.0.0.1 serve the same probe page
// (fixtures/origin_probe.html) on ports A and B; chromium maps the names
// client.test and other.test to 127.0.0.1, so the page runs under three
// origins: http://client.test:A (allowed), http://other.test:B and
// http://client.test:B (refused: another host, and the same host on another port).
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const http = require('node:http');
const path = require('node:path');
const h = require('./harness');

const FIXTURES = path.join(__dirname, 'fixtures');
const RESOLVER = '--host-resolver-rules=MAP client.test 127.0.0.1, MAP other.test 127.0.0.1';

// Opens the probe page at `pageOrigin` against `wsUrl` and returns its result.
async function probe(context, pageOrigin, wsUrl) {
  const page = await h.openPage(context, `${pageOrigin}/origin_probe.html?ws=${encodeURIComponent(wsUrl)}`);
  try {
    assert.equal(await page.textContent('#origin'), pageOrigin);
    const result = await page.evaluate(() => window.probe);
    assert.deepEqual(page.errors, []);
    return result;
  } finally {
    await page.close();
  }
}

// Sends a bare WebSocket handshake with `origin` and resolves to the status
// code of the answer (101 on upgrade). Bounded by WAIT_MS.
function handshakeStatus(port, origin) {
  return new Promise((resolve, reject) => {
    const req = http.request({
      host: '127.0.0.1',
      port,
      path: '/ws',
      headers: {
        Connection: 'Upgrade',
        Upgrade: 'websocket',
        'Sec-WebSocket-Version': '13',
        'Sec-WebSocket-Key': crypto.randomBytes(16).toString('base64'),
        ...(origin ? { Origin: origin } : {}),
      },
      timeout: h.WAIT_MS,
    });
    req.on('upgrade', (res, socket) => { socket.destroy(); resolve(res.statusCode); });
    req.on('response', (res) => { res.resume(); resolve(res.statusCode); });
    req.on('timeout', () => req.destroy(new Error(`no answer to the handshake within ${h.WAIT_MS} ms`)));
    req.on('error', reject);
    req.end();
  });
}

// Starts the two static origins and the server that allows only the first.
async function startAll(stack) {
  const a = await h.startStatic(FIXTURES);
  stack.push(() => a.close());
  const b = await h.startStatic(FIXTURES);
  stack.push(() => b.close());
  const allowed = `http://client.test:${a.port}`;
  const server = await h.startServer(h.serverCommand('origin'), ['--allow-origin', allowed]);
  stack.push(() => server.stop());
  return { a, b, allowed, server };
}

async function unwind(stack) {
  while (stack.length) await stack.pop()();
}

test('origin: the page from the allowed origin connects, others are refused', { timeout: 90000 }, async () => {
  const stack = [];
  try {
    const { a, b, allowed, server } = await startAll(stack);
    const wsUrl = `ws://127.0.0.1:${server.port}/ws`;
    const browser = await h.launchBrowser([RESOLVER]);
    stack.push(() => browser.close());

    const ok = await probe(browser.context, allowed, wsUrl);
    assert.deepEqual(ok, { opened: true, echoed: 'origin check', error: false, code: 1000, timedOut: false });

    for (const refused of [`http://other.test:${b.port}`, `http://client.test:${b.port}`]) {
      const r = await probe(browser.context, refused, wsUrl);
      assert.deepEqual(r, { opened: false, echoed: null, error: true, code: 1006, timedOut: false },
        `a page from ${refused} must not connect`);
    }
    assert.ok(a.port !== b.port);
  } finally {
    await unwind(stack);
  }
});

test('origin: the server answers 403 to a disallowed Origin, 101 to the allowed one or none',
  { timeout: 60000 }, async () => {
    const stack = [];
    try {
      const { b, allowed, server } = await startAll(stack);
      assert.equal(await handshakeStatus(server.port, `http://other.test:${b.port}`), 403);
      assert.equal(await handshakeStatus(server.port, allowed), 101);
      assert.equal(await handshakeStatus(server.port, null), 101);
    } finally {
      await unwind(stack);
    }
  });
