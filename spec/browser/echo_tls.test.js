// SPDX-License-Identifier: MIT
//
// The echo example once more over TLS: `examples/echo.lua --tls-cert FILE
// --tls-key FILE` serves the page over https:// and the echo over wss://.
// The certificate is a throwaway self-signed one for 127.0.0.1, made with
// the openssl command into a temporary directory; chromium is told to
// accept it (playwright's ignoreHTTPSErrors, and --ignore-certificate-errors
// for the WebSocket). The page connects to wss:// by itself (an https page
// may not open ws://), echoes three messages and closes with 1000. Skipped
// with the node stand-in, which has no TLS.
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const h = require('./harness');

const MESSAGES = ['hello over tls', 'κόσμε wss', '<i>3</i>'];
const standin = process.env.LUAWS_BROWSER_STANDIN === '1' || !!process.env.LUAWS_BROWSER_SERVER;

function logRows(page) {
  return page.$$eval('#commsLog tbody tr', (rows) =>
    rows.map((r) => [r.dataset.kind, r.querySelector('td.data').textContent]));
}

test('echo page over https: connects to wss://, echoes three messages, closes with 1000',
  { timeout: 90000, skip: standin && 'the stand-in has no TLS' }, async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'luaws-browser-tls-'));
    const cert = path.join(dir, 'cert.pem');
    const key = path.join(dir, 'key.pem');
    let server;
    let browser;
    try {
      execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1',
        '-nodes', '-days', '2', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1',
        '-keyout', key, '-out', cert], { stdio: 'ignore', timeout: 30000 });
      server = await h.startServer(h.serverCommand('echo'), ['--tls-cert', cert, '--tls-key', key]);
      assert.match(server.url, /^https:\/\/127\.0\.0\.1:\d+\/$/);
      browser = await h.launchBrowser(['--ignore-certificate-errors'], { ignoreHTTPSErrors: true });
      const page = await h.openPage(browser.context, server.url);

      // The page itself came over TLS, with our certificate.
      const response = await page.reload();
      const security = await response.securityDetails();
      assert.equal(security.subjectName, '127.0.0.1');
      assert.match(security.protocol, /^TLS 1\.[23]$/);
      assert.equal(await page.evaluate(() => location.protocol), 'https:');

      await page.locator('#stateLabel').filter({ hasText: 'Ready to connect…' }).waitFor();
      const wssUrl = `wss://127.0.0.1:${server.port}/ws`;
      assert.equal(await page.inputValue('#connectionUrl'), wssUrl);
      const cssRules = await page.$eval('link[rel=stylesheet]', (l) => (l.sheet ? l.sheet.cssRules.length : 0));
      assert.ok(cssRules > 0, 'echo.css did not load over https');

      await page.click('#connectButton');
      await page.locator('#stateLabel').filter({ hasText: /^Open$/ }).waitFor();
      for (const [i, text] of MESSAGES.entries()) {
        await page.fill('#sendMessage', text);
        await page.click('#sendButton');
        await page.locator('#commsLog tr[data-kind="received"] td.data').nth(i).filter({ hasText: text }).waitFor();
      }
      await page.click('#closeButton');
      await page.locator('#stateLabel').filter({ hasText: /^Closed$/ }).waitFor();
      await page.locator('#commsLog tr[data-kind="closed"]').waitFor();

      const expected = [['open', `Connected to ${wssUrl}`]];
      for (const text of MESSAGES) expected.push(['sent', text], ['received', text]);
      expected.push(['closed', 'Closed: code 1000, reason: Closing from client']);
      assert.deepEqual(await logRows(page), expected);
      assert.deepEqual(page.errors, []);

      fs.mkdirSync(h.OUT_DIR, { recursive: true });
      await page.screenshot({ path: path.join(h.OUT_DIR, 'echo_tls.png'), fullPage: true });
    } finally {
      if (browser) await browser.close();
      if (server) await server.stop();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
