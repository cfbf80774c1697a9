// SPDX-License-Identifier: MIT
//
// The luaws chat room page. It connects to /ws on the page's own host as
// soon as it loads and shows every message the server broadcasts.
//
// Wire contract (examples/chat.lua):
//   client -> server  {"name": "...", "text": "..."}
//   server -> clients {"from": "...", "text": "...", "at": "<ISO 8601 time>"}
//   The server also pushes {"from": "server", "text": "tick N", ...} every few seconds.
// The page never shows its own message before the server sends it back, so
// every client sees the room in the same order.
//
// Ids and attributes the browser tests rely on:
//   #stateLabel      "Connecting…" | "Connected" | "Disconnected", data-state connecting | open | closed
//   #chatName #chatMessage #chatSend #reconnectButton
//   #messages        an <ol>; each message is li.message with data-from, containing
//                    .author, time.at and .text; server pushes also have class "server",
//                    your own messages class "mine"; local notes are li.note
'use strict';

(function () {
  const MAX_ITEMS = 500; // the tick alone adds one item every few seconds
  const NAME_KEY = 'luaws-chat-name';

  const $ = (id) => document.getElementById(id);
  const stateLabel = $('stateLabel');
  const reconnectButton = $('reconnectButton');
  const list = $('messages');
  const empty = $('messagesEmpty');
  const nameField = $('chatName');
  const messageField = $('chatMessage');
  const sendButton = $('chatSend');

  let socket = null;

  function roomUrl() {
    if (!location.host) return 'ws://127.0.0.1:5000/ws'; // opened as a file
    return (location.protocol === 'https:' ? 'wss://' : 'ws://') + location.host + '/ws';
  }

  function setState(state, text) {
    stateLabel.dataset.state = state;
    stateLabel.textContent = text;
    const open = state === 'open';
    messageField.disabled = !open;
    sendButton.disabled = !open;
    reconnectButton.hidden = state !== 'closed';
  }

  function clock(date) {
    return date.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit', hour12: false });
  }

  // Appends `item` to the list, drops the oldest past MAX_ITEMS, and follows
  // the newest unless the reader has scrolled up.
  function append(item) {
    const follow = list.scrollHeight - list.scrollTop - list.clientHeight < 60;
    list.append(item);
    while (list.children.length > MAX_ITEMS) list.firstElementChild.remove();
    empty.hidden = true;
    if (follow) list.scrollTop = list.scrollHeight;
  }

  function el(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  // A line from the page itself (connection changes), not from the room.
  function note(text) {
    append(el('li', 'note', text));
  }

  function show(msg) {
    const from = typeof msg.from === 'string' && msg.from !== '' ? msg.from : 'unknown';
    let at = new Date(typeof msg.at === 'string' ? msg.at : NaN);
    if (Number.isNaN(at.getTime())) at = new Date();

    const item = el('li', 'message');
    item.dataset.from = from;
    if (from === 'server') item.classList.add('server');
    else if (from === nameField.value.trim()) item.classList.add('mine');

    const head = el('div', 'head');
    head.append(el('span', 'author', from));
    const time = el('time', 'at', clock(at));
    time.dateTime = at.toISOString();
    head.append(time);
    item.append(head, el('p', 'text', msg.text));
    append(item);
  }

  function connect() {
    const ws = new WebSocket(roomUrl());
    socket = ws;
    setState('connecting', 'Connecting…');
    ws.onopen = () => {
      if (socket !== ws) return;
      setState('open', 'Connected');
      note('Connected to the room.');
      if (nameField.value.trim()) messageField.focus();
      else nameField.focus();
    };
    ws.onmessage = (event) => {
      if (socket !== ws) return;
      let msg = null;
      try {
        msg = typeof event.data === 'string' ? JSON.parse(event.data) : null;
      } catch {
        msg = null;
      }
      if (msg && typeof msg.text === 'string') show(msg);
      else note('The server sent a message this page does not understand.');
    };
    ws.onclose = (event) => {
      if (socket !== ws) return;
      socket = null;
      setState('closed', 'Disconnected');
      note(`Disconnected: code ${event.code}` + (event.reason ? `, reason: ${event.reason}` : '') + '.');
    };
  }

  document.getElementById('chatForm').addEventListener('submit', (event) => {
    event.preventDefault();
    const name = nameField.value.trim();
    const text = messageField.value;
    if (!name) return nameField.focus();
    if (!socket || socket.readyState !== WebSocket.OPEN || text.trim() === '') return;
    socket.send(JSON.stringify({ name, text }));
    messageField.value = '';
    messageField.focus();
  });

  nameField.addEventListener('change', () => {
    try { localStorage.setItem(NAME_KEY, nameField.value.trim()); } catch { /* storage may be off */ }
  });
  reconnectButton.addEventListener('click', () => { if (!socket) connect(); });

  try { nameField.value = localStorage.getItem(NAME_KEY) || ''; } catch { /* storage may be off */ }
  connect();
})();
