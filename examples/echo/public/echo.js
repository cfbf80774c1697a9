// SPDX-License-Identifier: MIT
//
// The luaws echo page: open a WebSocket, send text, show what comes back.
//
// Everything the page shows comes from the socket's own events, so the log is
// a faithful record of the conversation: one row per open, send, receive,
// error and close, appended as it happens. Text from the network or the user
// only ever reaches the page through textContent, never as HTML.
//
// The browser tests rely on these ids and attributes:
//   #stateLabel    text "Ready to connect…" | "Connecting…" | "Open" | "Closing…" | "Closed",
//                  with data-state idle | connecting | open | closing | closed
//   #connectionUrl #connectButton #closeButton #sendMessage #sendButton #clearButton
//   #commsLog      a table; each tbody row has data-kind open | sent | received | closed | error
//                  and cells td.time, td.kind, td.data
'use strict';

(function () {
  const CLOSE_CODE = 1000;
  const CLOSE_REASON = 'Closing from client';
  const MAX_ROWS = 1000; // oldest rows go first, so a long session can't grow the page without bound

  const STATES = {
    idle: 'Ready to connect…',
    connecting: 'Connecting…',
    open: 'Open',
    closing: 'Closing…',
    closed: 'Closed',
  };

  const $ = (id) => document.getElementById(id);
  const stateLabel = $('stateLabel');
  const urlField = $('connectionUrl');
  const connectButton = $('connectButton');
  const closeButton = $('closeButton');
  const messageField = $('sendMessage');
  const sendButton = $('sendButton');
  const clearButton = $('clearButton');
  const logBody = $('commsLog').tBodies[0];
  const logScroll = $('logScroll');
  const logEmpty = $('logEmpty');

  let socket = null;

  // The echo route sits on the same host as the page; a page that came over
  // https must use wss, or the browser blocks the connection as mixed content.
  function defaultUrl() {
    if (!location.host) return 'ws://127.0.0.1:5000/ws'; // opened as a file
    return (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/ws';
  }

  // Shows a state and enables exactly the controls that make sense in it.
  function setState(state) {
    stateLabel.textContent = STATES[state];
    stateLabel.dataset.state = state;
    const idle = state === 'idle' || state === 'closed';
    const open = state === 'open';
    urlField.disabled = !idle;
    connectButton.disabled = !idle;
    closeButton.disabled = !(state === 'connecting' || open);
    messageField.disabled = !open;
    sendButton.disabled = !open;
  }

  function timestamp() {
    const d = new Date();
    const pad = (n, w) => String(n).padStart(w || 2, '0');
    return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
  }

  const KIND_LABELS = { open: 'Open', sent: 'Sent', received: 'Received', closed: 'Closed', error: 'Error' };

  // Appends one row to the Communication Log. `text` is shown as text.
  function log(kind, text) {
    const row = logBody.insertRow();
    row.dataset.kind = kind;
    const cells = [
      ['time', timestamp()],
      ['kind', KIND_LABELS[kind]],
      ['data', text],
    ];
    for (const [cls, value] of cells) {
      const cell = row.insertCell();
      cell.className = cls;
      cell.textContent = value;
    }
    while (logBody.rows.length > MAX_ROWS) logBody.deleteRow(0);
    logEmpty.hidden = true;
    // Follow the newest row unless the reader has scrolled up to look at older ones.
    const nearBottom = logScroll.scrollHeight - logScroll.scrollTop - logScroll.clientHeight < 80;
    if (nearBottom || kind === 'sent') logScroll.scrollTop = logScroll.scrollHeight;
  }

  function describe(data) {
    if (typeof data === 'string') return data;
    const size = data instanceof Blob ? data.size : data.byteLength;
    return `[binary message, ${size} byte${size === 1 ? '' : 's'}]`;
  }

  function connect() {
    const url = urlField.value.trim();
    let ws;
    try {
      ws = new WebSocket(url);
    } catch (err) {
      log('error', `Cannot connect to ${url || '(empty URL)'}: ${err.message}`);
      return;
    }
    ws.binaryType = 'arraybuffer';
    socket = ws;
    setState('connecting');

    // Each handler checks that its socket is still the current one, so a late
    // event from an old socket can't change the state of a new one.
    ws.onopen = () => {
      if (socket !== ws) return;
      setState('open');
      log('open', `Connected to ${ws.url}` + (ws.protocol ? ` (subprotocol ${ws.protocol})` : ''));
      messageField.focus();
    };
    ws.onmessage = (event) => {
      if (socket === ws) log('received', describe(event.data));
    };
    ws.onerror = () => {
      // Browsers deliberately say nothing more specific; the close that
      // follows carries the code (1006 when the connection failed).
      if (socket === ws) log('error', 'WebSocket error');
    };
    ws.onclose = (event) => {
      if (socket !== ws) return;
      socket = null;
      setState('closed');
      const reason = event.reason ? event.reason : '(none)';
      log('closed', `Closed: code ${event.code}, reason: ${reason}` + (event.wasClean ? '' : ' (not clean)'));
      connectButton.focus();
    };
  }

  function send() {
    if (!socket || socket.readyState !== WebSocket.OPEN) return;
    const text = messageField.value;
    socket.send(text);
    log('sent', text);
    messageField.value = '';
    messageField.focus();
  }

  function close() {
    if (!socket) return;
    setState('closing');
    socket.close(CLOSE_CODE, CLOSE_REASON);
  }

  $('connectForm').addEventListener('submit', (event) => {
    event.preventDefault();
    if (!socket) connect();
  });
  $('sendForm').addEventListener('submit', (event) => {
    event.preventDefault();
    send();
  });
  closeButton.addEventListener('click', close);
  clearButton.addEventListener('click', () => {
    logBody.replaceChildren();
    logEmpty.hidden = false;
  });

  urlField.value = defaultUrl();
  setState('idle');
})();
