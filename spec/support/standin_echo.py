#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Stand-in for luaws's examples/echo.lua, for developing the conformance suite
and the peer specs before luaws exists, and for comparisons afterwards.

It speaks the same contract as the luaws sample app (see spec/conformance/README.md):

  * started as `standin_echo.py --port 0 --host 127.0.0.1`, it prints exactly one
    line, `luaws echo listening on http://HOST:PORT/`, once it listens;
  * WebSocket echo at /ws: whole messages, text as text, binary as binary, up to
    16 MiB; pings are answered; the close handshake echoes the peer's code;
  * protocol errors get a close frame (1002, 1007, 1009) and then a TCP close;
  * plain HTTP: GET / is a small HTML page (200), unknown paths 404, a
    non-WebSocket GET to /ws 400, a wrong or missing Sec-WebSocket-Version 426
    with `Sec-WebSocket-Version: 13`, a missing or bad key 400, another method
    405, anything but HTTP/1.1 400, a request head over 8 KiB 431.

Design: one thread per connection with blocking sockets. The HTTP checks that
decide the status codes above are ours, because python-websockets answers them
differently (400 or 426 for most). A request that passes them is handed, bytes
and all, to the sans-I/O `websockets.server.ServerConnection` of
python3-websockets 10.4, which computes the 101 response and does the framing,
ping/pong and close rules. That layer does not check UTF-8 (its asyncio layer
does), so text messages are validated here with an incremental decoder, one
fragment at a time, which fails as soon as Python's decoder can tell.

Deliberately not done: TLS, subprotocols, extensions (permessage-deflate is not
negotiated), keep-alive pings, HTTP keep-alive for the plain pages.
"""

import argparse
import base64
import binascii
import codecs
import signal
import socket
import sys
import threading

from websockets.connection import SEND_EOF, State
from websockets.frames import OP_BINARY, OP_CONT, OP_TEXT
from websockets.server import ServerConnection

MAX_HEAD = 8 * 1024          # request head limit: over it, 431
MAX_MESSAGE = 16 * 1024 * 1024
HANDSHAKE_TIMEOUT = 10.0     # seconds to receive a whole request head
IDLE_TIMEOUT = 120.0         # seconds without input before we drop a connection
LINGER = 2.0                 # seconds to drain input after our TCP half-close

PAGE = b"""<!doctype html>
<html><head><meta charset="utf-8"><title>luaws echo (stand-in)</title></head>
<body><h1>luaws echo</h1><p>WebSocket echo at <code>/ws</code>.</p></body></html>
"""

REASONS = {200: "OK", 400: "Bad Request", 404: "Not Found", 405: "Method Not Allowed",
           426: "Upgrade Required", 431: "Request Header Fields Too Large"}


def linger_close(sock):
    """Half-close, then read and drop input until the peer closes or LINGER
    passes, then close. Closing with unread input would make the kernel send
    a reset, which can destroy the response the peer has not read yet."""
    try:
        sock.shutdown(socket.SHUT_WR)
    except OSError:
        pass
    try:
        sock.settimeout(LINGER)
        for _ in range(1024):            # bounded: at most 64 MiB drained
            if not sock.recv(65536):
                break
    except OSError:
        pass
    sock.close()


def respond(sock, status, body=b"", ctype="text/plain; charset=utf-8", extra=()):
    head = [f"HTTP/1.1 {status} {REASONS[status]}",
            f"Content-Type: {ctype}",
            f"Content-Length: {len(body)}",
            "Connection: close"]
    head.extend(extra)
    try:
        sock.sendall(("\r\n".join(head) + "\r\n\r\n").encode() + body)
    except OSError:
        pass
    linger_close(sock)


def read_head(sock):
    """Return (head, rest) or (None, reason); reason is "too big" or "closed"."""
    buf = b""
    while True:
        end = buf.find(b"\r\n\r\n")
        if end >= 0:
            if end + 4 > MAX_HEAD:
                return None, "too big"
            return buf[:end + 4], buf[end + 4:]
        if len(buf) > MAX_HEAD:
            return None, "too big"
        chunk = sock.recv(4096)
        if not chunk:
            return None, "closed"
        buf += chunk


def tokens(value):
    return {t.strip().lower() for t in value.split(",") if t.strip()}


def check_request(head):
    """Our part of the handshake: return None to hand over to websockets, or
    (status, body, extra_headers) to answer with plain HTTP."""
    try:
        lines = head.decode("latin-1").split("\r\n")
        method, target, version = lines[0].split(" ")
    except ValueError:
        return 400, b"bad request line\n", ()
    headers = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            return 400, b"bad header line\n", ()
        name = name.lower()
        value = value.strip()
        headers[name] = headers[name] + ", " + value if name in headers else value
    if version != "HTTP/1.1":
        return 400, b"HTTP/1.1 only\n", ()
    path = target.split("?", 1)[0]
    if path == "/":
        if method != "GET":
            return 405, b"GET only\n", ("Allow: GET",)
        return 200, PAGE, ()
    if path != "/ws":
        return 404, b"not found\n", ()
    if method != "GET":
        return 405, b"GET only\n", ("Allow: GET",)
    if ("websocket" not in tokens(headers.get("upgrade", ""))
            or "upgrade" not in tokens(headers.get("connection", ""))):
        return 400, b"this is a WebSocket endpoint\n", ()
    if headers.get("sec-websocket-version") != "13":
        return 426, b"WebSocket version 13 only\n", ("Sec-WebSocket-Version: 13",)
    try:
        if len(base64.b64decode(headers.get("sec-websocket-key", ""), validate=True)) != 16:
            raise ValueError("key length")
    except (binascii.Error, ValueError):
        return 400, b"missing or bad Sec-WebSocket-Key\n", ()
    return None


class Echo:
    """Application state of one WebSocket connection: message reassembly and
    the UTF-8 check that the sans-I/O layer leaves to us."""

    def __init__(self, conn):
        self.conn = conn
        self.op = None        # opcode of the message being received
        self.parts = []
        self.decoder = None

    def frame(self, frame):
        conn = self.conn
        if conn.state is not State.OPEN:
            return
        if frame.opcode in (OP_TEXT, OP_BINARY):
            self.op, self.parts = frame.opcode, []
            if frame.opcode is OP_TEXT:
                self.decoder = codecs.getincrementaldecoder("utf-8")()
        elif frame.opcode is not OP_CONT:
            return                           # ping, pong, close: done by websockets
        if self.op is OP_TEXT:
            try:
                self.decoder.decode(frame.data, frame.fin)
            except UnicodeDecodeError as exc:  # RFC 6455 §8.1: fail, 1007
                conn.fail(1007, f"invalid UTF-8: {exc.reason}")
                return
        self.parts.append(frame.data)
        if frame.fin:
            data, self.parts = b"".join(self.parts), []
            if self.op is OP_TEXT:
                conn.send_text(data)
            else:
                conn.send_binary(data)
            self.op = None


def flush(sock, conn):
    """Write what the connection has queued; True once it sent its EOF."""
    for data in conn.data_to_send():
        if data is SEND_EOF or data == b"":
            return True
        sock.sendall(data)
    return False


def serve_websocket(sock, data):
    conn = ServerConnection(max_size=MAX_MESSAGE)
    conn.receive_data(data)
    events = conn.events_received()
    if not events:                       # cannot happen: the head was complete
        linger_close(sock)
        return
    conn.send_response(conn.accept(events[0]))
    echo = Echo(conn)
    if conn.state is not State.OPEN:     # websockets refused what we let through
        flush(sock, conn)
        linger_close(sock)
        return
    sock.settimeout(IDLE_TIMEOUT)
    pending = events[1:]                 # frames pipelined after the head
    while True:
        for ev in pending:
            echo.frame(ev)
        if flush(sock, conn):
            break
        try:
            chunk = sock.recv(1 << 20)
        except OSError:
            chunk = b""
        if chunk:
            conn.receive_data(chunk)
        else:
            conn.receive_eof()
        pending = conn.events_received()
        if not chunk:
            flush(sock, conn)
            break
    linger_close(sock)


def handle(sock):
    try:
        sock.settimeout(HANDSHAKE_TIMEOUT)
        head, rest = read_head(sock)
        if head is None:
            if rest == "too big":
                respond(sock, 431, b"request head over 8 KiB\n")
            else:
                sock.close()
            return
        answer = check_request(head)
        if answer is not None:
            status, body, extra = answer
            respond(sock, status, body,
                    "text/html; charset=utf-8" if status == 200 else "text/plain; charset=utf-8",
                    extra)
            return
        serve_websocket(sock, head + rest)
    except OSError:
        sock.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=5000)
    args = ap.parse_args()

    def stop(signum, _frame):
        sys.exit(0)
    signal.signal(signal.SIGTERM, stop)

    server = socket.create_server((args.host, args.port), backlog=128)
    port = server.getsockname()[1]
    print(f"luaws echo listening on http://{args.host}:{port}/", flush=True)
    try:
        while True:
            sock, _ = server.accept()
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=handle, args=(sock,), daemon=True).start()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()


if __name__ == "__main__":
    main()
