// SPDX-License-Identifier: MIT
//
// The chat example in a real browser: two pages join the room, a message typed
// in either appears in both with its author, and the server's periodic push
// ("tick N" from "server") shows up too. Screenshot: spec/browser/out/chat.png.
'use strict';

const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const h = require('./harness');

// Waits until `page` shows a message from `from` whose text is exactly `text`.
function waitForMessage(page, from, text) {
  return page.locator(`#messages li.message[data-from="${from}"] .text`)
    .filter({ hasText: new RegExp(`^${text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`) })
    .first().waitFor();
}

test('chat page: a message typed in one page appears in both', { timeout: 90000 }, async () => {
  let server;
  let browser;
  try {
    server = await h.startServer(h.serverCommand('chat'));
    browser = await h.launchBrowser();
    const alice = await h.openPage(browser.context, server.url);
    const bob = await h.openPage(browser.context, server.url);

    for (const [page, name] of [[alice, 'alice'], [bob, 'bob']]) {
      await page.locator('#stateLabel[data-state="open"]').waitFor();
      assert.equal(await page.textContent('#stateLabel'), 'Connected');
      await page.fill('#chatName', name);
    }

    await alice.fill('#chatMessage', 'hello from alice');
    await alice.press('#chatMessage', 'Enter');
    await bob.fill('#chatMessage', 'hi alice, <i>bob</i> here');
    await bob.click('#chatSend');

    for (const page of [alice, bob]) {
      await waitForMessage(page, 'alice', 'hello from alice');
      await waitForMessage(page, 'bob', 'hi alice, <i>bob</i> here');
      assert.equal(await page.locator('#messages i').count(), 0, 'message text must not become markup');
    }
    // Each page marks its own messages.
    assert.equal(await alice.locator('li.message.mine').count(), 1);
    assert.equal(await alice.locator('li.message.mine[data-from="alice"]').count(), 1);
    assert.equal(await bob.locator('li.message.mine[data-from="bob"]').count(), 1);

    // The server's periodic push reaches the page (bounded by WAIT_MS).
    await bob.locator('#messages li.message.server .text').filter({ hasText: /^tick \d+$/ }).first().waitFor();

    assert.deepEqual(alice.errors, []);
    assert.deepEqual(bob.errors, []);
    fs.mkdirSync(h.OUT_DIR, { recursive: true });
    await alice.screenshot({ path: path.join(h.OUT_DIR, 'chat.png') });
  } finally {
    if (browser) await browser.close();
    if (server) await server.stop();
  }
});
