// SPDX-License-Identifier: MIT
//
// A small static-file handler for node's http server, shared by the stand-in
// server (standin_echo.js) and the test harness (the origin test serves its
// probe page from two extra origins with it).
//
// It answers GET and HEAD only, maps "/" and any path ending in "/" to
// index.html, refuses paths that leave the root, and names the content type
// from the file extension. It does not do ranges, caching validators or
// directory listings: the example pages don't need them.
'use strict';

const fs = require('node:fs');
const path = require('node:path');

const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.json': 'application/json',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.txt': 'text/plain; charset=utf-8',
};

function plain(res, status, text) {
  res.writeHead(status, { 'Content-Type': 'text/plain; charset=utf-8', 'Content-Length': Buffer.byteLength(text) });
  res.end(text);
}

// Returns a request handler that serves the files below `root`.
function staticHandler(root) {
  const base = path.resolve(root);
  return function serve(req, res) {
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('Allow', 'GET, HEAD');
      return plain(res, 405, 'method not allowed\n');
    }
    let rel;
    try {
      rel = decodeURIComponent(new URL(req.url, 'http://x').pathname);
    } catch {
      return plain(res, 400, 'bad path\n');
    }
    if (rel.endsWith('/')) rel += 'index.html';
    const file = path.resolve(base, '.' + rel);
    if (rel.includes('\0') || path.relative(base, file).startsWith('..')) return plain(res, 404, 'not found\n');
    fs.stat(file, (err, st) => {
      if (err || !st.isFile()) return plain(res, 404, 'not found\n');
      res.writeHead(200, {
        'Content-Type': TYPES[path.extname(file).toLowerCase()] || 'application/octet-stream',
        'Content-Length': st.size,
        'Cache-Control': 'no-store',
        'X-Content-Type-Options': 'nosniff',
      });
      if (req.method === 'HEAD') return res.end();
      fs.createReadStream(file).pipe(res);
    });
  };
}

module.exports = { staticHandler };
