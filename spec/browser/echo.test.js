// SPDX-License-Identifier: MIT
//
// The echo example in a real browser: the page loads from the server, connects
// to /ws, sends three messages (ASCII, Greek, and markup that must stay text),
// sees each one sent and echoed in the Communication Log, closes with 1000, and
// leaves a screenshot in spec/browser/out/echo.png.
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const net = require('node:net');
const path = require('node:path');
const h = require('./harness');

const MESSAGES = ['hello 1', 'κόσμε 2', '<b>3</b>'];

// The rows of the Communication Log as [kind, data] pairs.
function logRows(page) {
  return page.$$eval('#commsLog tbody tr', (rows) =>
    rows.map((r) => [r.dataset.kind, r.querySelector('td.data').textContent]));
}

async function controls(page) {
  return page.evaluate(() => Object.fromEntries(
    ['connectionUrl', 'connectButton', 'closeButton', 'sendMessage', 'sendButton']
      .map((id) => [id, !document.getElementById(id).disabled])));
}

test('echo page: connect, echo three messages, close with 1000', { timeout: 90000 }, async () => {
  let server;
  let browser;
  try {
    server = await h.startServer(h.serverCommand('echo'));
    browser = await h.launchBrowser();
    const page = await h.openPage(browser.context, server.url);

    // Before connecting: prefilled URL, idle state, only Connect usable.
    await page.locator('#stateLabel').filter({ hasText: 'Ready to connect…' }).waitFor();
    assert.equal(await page.inputValue('#connectionUrl'), `ws://127.0.0.1:${server.port}/ws`);
    assert.deepEqual(await controls(page), {
      connectionUrl: true, connectButton: true, closeButton: false, sendMessage: false, sendButton: false,
    });
    // The stylesheet arrived as CSS (a wrong Content-Type would leave it empty).
    const cssRules = await page.$eval('link[rel=stylesheet]', (l) => (l.sheet ? l.sheet.cssRules.length : 0));
    assert.ok(cssRules > 0, 'echo.css did not load as a stylesheet');

    await page.click('#connectButton');
    await page.locator('#stateLabel').filter({ hasText: /^Open$/ }).waitFor();
    assert.deepEqual(await controls(page), {
      connectionUrl: false, connectButton: false, closeButton: true, sendMessage: true, sendButton: true,
    });

    for (const [i, text] of MESSAGES.entries()) {
      await page.fill('#sendMessage', text);
      if (i === 1) await page.press('#sendMessage', 'Enter'); // Enter sends too
      else await page.click('#sendButton');
      await page.locator('#commsLog tr[data-kind="received"] td.data').nth(i).filter({ hasText: text }).waitFor();
      assert.equal(await page.inputValue('#sendMessage'), '', 'the message field is cleared after a send');
    }
    // Markup from the network stays text.
    assert.equal(await page.locator('#commsLog tbody b').count(), 0);

    await page.click('#closeButton');
    await page.locator('#stateLabel').filter({ hasText: /^Closed$/ }).waitFor();
    await page.locator('#commsLog tr[data-kind="closed"]').waitFor();

    const rows = await logRows(page);
    const expected = [['open', `Connected to ws://127.0.0.1:${server.port}/ws`]];
    for (const text of MESSAGES) expected.push(['sent', text], ['received', text]);
    // The close row shows the server's close frame: luaws (like node's ws)
    // echoes the code and the reason the page sent.
    expected.push(['closed', 'Closed: code 1000, reason: Closing from client']);
    assert.deepEqual(rows, expected);
    assert.deepEqual(await controls(page), {
      connectionUrl: true, connectButton: true, closeButton: false, sendMessage: false, sendButton: false,
    });
    assert.deepEqual(page.errors, []);

    fs.mkdirSync(h.OUT_DIR, { recursive: true });
    await page.screenshot({ path: path.join(h.OUT_DIR, 'echo.png'), fullPage: true });
  } finally {
    if (browser) await browser.close();
    if (server) await server.stop();
  }
});

// A port that nothing listens on: bind port 0, note the port, close.
function deadPort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

test('echo page: a refused connection shows Closed with 1006, and Connect works again', { timeout: 60000 }, async () => {
  let server;
  let browser;
  try {
    server = await h.startServer(h.serverCommand('echo'));
    browser = await h.launchBrowser();
    const page = await h.openPage(browser.context, server.url);
    const good = await page.inputValue('#connectionUrl');

    await page.fill('#connectionUrl', `ws://127.0.0.1:${await deadPort()}/ws`);
    await page.press('#connectionUrl', 'Enter'); // Enter in the URL field connects
    await page.locator('#stateLabel').filter({ hasText: /^Closed$/ }).waitFor();
    const rows = await logRows(page);
    assert.deepEqual(rows.map((r) => r[0]), ['error', 'closed']);
    assert.match(rows[1][1], /^Closed: code 1006, reason: \(none\) \(not clean\)$/);
    assert.deepEqual(await controls(page), {
      connectionUrl: true, connectButton: true, closeButton: false, sendMessage: false, sendButton: false,
    });

    await page.fill('#connectionUrl', good);
    await page.click('#connectButton');
    await page.locator('#stateLabel').filter({ hasText: /^Open$/ }).waitFor();
    await page.click('#closeButton');
    await page.locator('#stateLabel').filter({ hasText: /^Closed$/ }).waitFor();
    assert.deepEqual(page.errors, []);
  } finally {
    if (browser) await browser.close();
    if (server) await server.stop();
  }
});
