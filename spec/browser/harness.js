// SPDX-License-Identifier: MIT
//
// Shared helpers for the browser tests: start an example server and read its
// listening line, serve a directory from an extra origin, and launch headless
// Debian chromium through playwright-core.
//
// Design criteria:
//   - every wait is bounded (WAIT_MS, at most 15 s) and fails with context:
//     the command, and what the server printed so far;
//   - whoever starts a process stops it, by its PID, in a finally block
//     (stop() is idempotent and escalates SIGTERM -> SIGKILL);
//   - the server command comes from an environment variable, so the same test
//     drives the luaws example or the node stand-in (standin_echo.js);
//   - the browser is never downloaded: /usr/bin/chromium (Debian's package) or
//     LUAWS_BROWSER_CHROMIUM, with a fresh temporary profile each launch.
'use strict';

const { spawn } = require('node:child_process');
const fs = require('node:fs');
const http = require('node:http');
const os = require('node:os');
const path = require('node:path');
const { chromium } = require('playwright-core');
const { staticHandler } = require('./static');

const REPO_ROOT = path.resolve(__dirname, '..', '..');
const OUT_DIR = path.join(__dirname, 'out');
const WAIT_MS = 15000;
const STANDIN = `node ${path.join('spec', 'browser', 'standin_echo.js')}`;

// Where each example's server command comes from. `standin` is what
// LUAWS_BROWSER_STANDIN=1 substitutes for the luaws example.
const SERVERS = {
  echo: { env: 'LUAWS_BROWSER_SERVER', luaws: 'lua5.4 examples/echo.lua', standin: STANDIN },
  chat: {
    env: 'LUAWS_BROWSER_CHAT_SERVER',
    luaws: 'lua5.4 examples/chat.lua',
    standin: `${STANDIN} --name chat --public examples/chat/public --tick 2`,
  },
  origin: { env: 'LUAWS_BROWSER_ORIGIN_SERVER', luaws: 'lua5.4 examples/origin.lua', standin: STANDIN },
};

// The argv of the server for `example`: the env variable if set, else the
// stand-in when LUAWS_BROWSER_STANDIN=1, else the luaws example. Commands are
// split on whitespace; there is no shell, so no quoting.
function serverCommand(example) {
  const s = SERVERS[example];
  const cmd = process.env[s.env] || (process.env.LUAWS_BROWSER_STANDIN === '1' ? s.standin : s.luaws);
  return cmd.trim().split(/\s+/);
}

// Starts `argv` plus `--port 0 --host 127.0.0.1` and any `extra` arguments in
// the repo root, and resolves once it prints "... listening on http://H:P/"
// (or https://, for a server given a certificate).
// Resolves to { url, port, pid, stop(), output() }. Rejects, after stopping the
// process, if it exits first or doesn't print the line within WAIT_MS.
function startServer(argv, extra = []) {
  const args = [...argv.slice(1), '--port', '0', '--host', '127.0.0.1', ...extra];
  const env = {
    ...process.env,
    // Let a luaws example find the in-tree modules and the built core.
    LUA_PATH: process.env.LUA_PATH || 'lua/?.lua;lua/?/init.lua;;',
    LUA_CPATH: process.env.LUA_CPATH || 'build/?.so;;',
  };
  const child = spawn(argv[0], args, { cwd: REPO_ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let exited = null;
  const exitPromise = new Promise((resolve) => {
    child.once('exit', (code, signal) => {
      exited = { code, signal };
      resolve();
    });
  });
  const describe = () => `${[argv[0], ...args].join(' ')}\n--- output so far ---\n${out || '(none)'}`;

  async function stop() {
    if (exited || child.pid === undefined) return;
    const signal = (sig) => {
      try { process.kill(child.pid, sig); } catch { /* already gone */ }
    };
    signal('SIGTERM');
    const timer = setTimeout(() => { if (!exited) signal('SIGKILL'); }, 3000);
    await exitPromise;
    clearTimeout(timer);
  }

  return new Promise((resolve, reject) => {
    let buffered = '';
    let settled = false;
    const fail = async (why) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      await stop();
      reject(new Error(`${why}: ${describe()}`));
    };
    const timer = setTimeout(() => fail(`no listening line within ${WAIT_MS} ms`), WAIT_MS);
    child.once('error', (err) => fail(`cannot start server (${err.message})`));
    child.stderr.on('data', (chunk) => { out += chunk; });
    child.stdout.on('data', (chunk) => {
      out += chunk;
      buffered += chunk;
      const m = /listening on (https?:\/\/(?:\[[^\]]+\]|[^\s:/]+):(\d+))\/?\s*$/m.exec(buffered);
      if (!m || settled) return;
      settled = true;
      clearTimeout(timer);
      resolve({ url: `${m[1]}/`, port: Number(m[2]), pid: child.pid, stop, output: () => out });
    });
    exitPromise.then(() => fail(`server exited (${JSON.stringify(exited)}) before listening`));
  });
}

// Serves `dir` over plain HTTP on 127.0.0.1 and a free port: a second origin
// for the origin test. Resolves to { port, close() }.
function startStatic(dir) {
  const server = http.createServer(staticHandler(dir));
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      resolve({
        port: server.address().port,
        close: () => new Promise((done) => {
          server.closeAllConnections();
          server.close(() => done());
        }),
      });
    });
  });
}

// Launches headless chromium with a fresh profile directory. `extraArgs` are
// added to the fixed flag list; `options` to playwright's launch options
// ({ ignoreHTTPSErrors: true } for a self-signed certificate). Resolves to
// { context, close() }; close() ends the browser and removes the profile.
async function launchBrowser(extraArgs = [], options = {}) {
  const executablePath = process.env.LUAWS_BROWSER_CHROMIUM || '/usr/bin/chromium';
  const profile = fs.mkdtempSync(path.join(os.tmpdir(), 'luaws-chromium-'));
  let context;
  try {
    context = await chromium.launchPersistentContext(profile, {
      executablePath,
      headless: true,
      timeout: WAIT_MS,
      viewport: { width: 1100, height: 760 },
      args: [
        '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
        '--disable-background-networking', '--disable-component-update', '--disable-sync',
        ...extraArgs,
      ],
      ...options,
    });
  } catch (err) {
    fs.rmSync(profile, { recursive: true, force: true });
    throw err;
  }
  context.setDefaultTimeout(WAIT_MS);
  return {
    context,
    async close() {
      await context.close().catch(() => {});
      fs.rmSync(profile, { recursive: true, force: true });
    },
  };
}

// Opens a page that records uncaught script errors, so a test can assert the
// page ran cleanly.
async function openPage(context, url) {
  const page = await context.newPage();
  page.errors = [];
  page.on('pageerror', (err) => page.errors.push(err.message));
  await page.goto(url, { timeout: WAIT_MS });
  return page;
}

module.exports = {
  REPO_ROOT, OUT_DIR, WAIT_MS,
  serverCommand, startServer, startStatic, launchBrowser, openPage,
};
