#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""luaws conformance suite: a raw-socket WebSocket client that checks a server
against RFC 6455, case by case.

Usage: suite.py ws://127.0.0.1:PORT/ws [--case ID-prefix] [--list]

Prints one JSON object per line per case,
    {"id": "1.1.1", "desc": "...", "result": "OK"|"NON-STRICT"|"FAILED", "detail": "..."}
and exits 0: the lines carry the verdicts. Exit 2 means a usage error.

Design criteria
  * The server is a black box at a URL: everything is checked on the wire,
    byte for byte, from RFC 6455 alone. The case categories follow the shape of
    the Autobahn|Testsuite (1 framing, 2 ping/pong, 3 reserved bits, 4 opcodes,
    5 fragmentation, 6 UTF-8, 7 close; plus 9 size and H handshake), but the
    cases, numbering and code are our own.
  * Every case opens its own connection, masks every frame with a fresh random
    key and never waits longer than READ_TIMEOUT for one read. Nothing loops
    without a bound; the whole run stops at SUITE_DEADLINE.
  * Verdicts: OK when the behaviour is exactly right; NON-STRICT when the
    server did the safe thing but not the precise one (closed TCP without a
    close frame, another failure code, an empty close where a code was due);
    FAILED for anything else (a wrong echo, a missing close, a hang).
  * Standard library only, so it runs with any python3 >= 3.6.

What it does not do: TLS (wss://), extensions (nothing is offered except in
the one case that checks an unknown extension is refused), performance.
"""

import base64
import hashlib
import json
import os
import socket
import struct
import sys
import time

READ_TIMEOUT = 10.0         # seconds for any single expected event (a bound, far above what a busy machine needs)
FAIL_FAST_FRAGMENT_WAIT = 2.0   # seconds to wait for a close before the next fragment (informational)
FAIL_FAST_WAIT = 1.0        # seconds to wait for a close inside a frame (informational)
BIG_TIMEOUT = 30.0          # seconds for the 16 MiB cases
SUITE_DEADLINE = 90.0       # seconds for the whole run (a case started before it may finish)
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"   # RFC 6455 §1.3

OP_CONT, OP_TEXT, OP_BINARY = 0x0, 0x1, 0x2
OP_CLOSE, OP_PING, OP_PONG = 0x8, 0x9, 0xA
OP_NAMES = {0: "continuation", 1: "text", 2: "binary", 8: "close", 9: "ping", 10: "pong"}

# Codes a server may use to fail a connection (RFC 6455 §7.4.1). Receiving one
# of these instead of the precise code is NON-STRICT, not FAILED.
FAILURE_CODES = {1002, 1003, 1007, 1008, 1009, 1011}

RSV1, RSV2, RSV3 = 4, 2, 1  # values of the 3-bit rsv field


class Failed(Exception):
    """The case failed; the message is the detail."""


# ---------------------------------------------------------------------------
# Byte helpers

def show(data, limit=32):
    """Short printable description of a payload for details."""
    data = bytes(data)
    head = data[:limit]
    more = "..." if len(data) > limit else ""
    return f"{len(data)} bytes {head!r}{more}"


def apply_mask(data, key):
    """XOR data with the 4-byte key (RFC 6455 §5.3), a whole int at a time."""
    n = len(data)
    if n == 0:
        return b""
    keys = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "big") ^ int.from_bytes(keys, "big")).to_bytes(n, "big")


def frame(op, payload=b"", fin=True, rsv=0, mask=True, length=None):
    """Encode one frame (RFC 6455 §5.2). `length` overrides the length field
    (the payload is still what is sent after it)."""
    if isinstance(payload, str):
        payload = payload.encode("utf-8")
    n = len(payload) if length is None else length
    b0 = (0x80 if fin else 0) | ((rsv & 7) << 4) | (op & 0xF)
    mbit = 0x80 if mask else 0
    if n < 126:
        head = struct.pack("!BB", b0, mbit | n)
    elif n < 65536:
        head = struct.pack("!BBH", b0, mbit | 126, n)
    else:
        head = struct.pack("!BBQ", b0, mbit | 127, n)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + apply_mask(payload, key)


def close_payload(code=None, reason=b""):
    if code is None:
        return b""
    if isinstance(reason, str):
        reason = reason.encode("utf-8")
    return struct.pack("!H", code) + reason


def accept_for(key):
    return base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()


def new_key():
    return base64.b64encode(os.urandom(16)).decode()


def fragments(op, data, sizes):
    """Frames carrying `data` split at the given sizes (the last takes the rest)."""
    out, pos = [], 0
    cuts = []
    for s in sizes:
        cuts.append(data[pos:pos + s])
        pos += s
    cuts.append(data[pos:])
    for i, part in enumerate(cuts):
        out.append(frame(op if i == 0 else OP_CONT, part, fin=(i == len(cuts) - 1)))
    return out


def split_every(op, data, n=1):
    """Frames carrying `data` in fragments of n bytes."""
    if len(data) <= n:
        return [frame(op, data)]
    return fragments(op, data, [n] * ((len(data) - 1) // n))


# ---------------------------------------------------------------------------
# A client connection

class Peer:
    """One TCP connection to the server, with a frame reader for what comes back."""

    def __init__(self, host, port, timeout=READ_TIMEOUT):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        self.eof = None         # None, "fin" or "reset"
        self.send_error = None
        self.msg_op = None      # opcode of a server message being reassembled
        self.msg_parts = []

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    # -- sending

    def send(self, data, chop=None, delay=None, timeout=READ_TIMEOUT):
        """Write data, in pieces of `chop` bytes when given (each its own
        write, TCP_NODELAY). A write error is remembered, not raised: a server
        may close early and the case decides what that means."""
        if self.send_error:
            return False
        if isinstance(data, list):
            data = b"".join(data)
        try:
            self.sock.settimeout(timeout)
            if not chop:
                self.sock.sendall(data)
                return True
            pieces = (len(data) + chop - 1) // chop
            if delay is None:
                delay = 0.001 if pieces <= 400 else 0
            for i in range(0, len(data), chop):
                self.sock.sendall(data[i:i + chop])
                if delay:
                    time.sleep(delay)
            return True
        except OSError as exc:
            self.send_error = f"{type(exc).__name__}: {exc}"
            return False

    # -- receiving

    def fill(self, deadline, size=1 << 20):
        """One recv into the buffer. False on timeout; sets self.eof on EOF."""
        if self.eof:
            return False
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        self.sock.settimeout(left)
        try:
            chunk = self.sock.recv(size)
        except socket.timeout:
            return False
        except (ConnectionResetError, BrokenPipeError, ConnectionAbortedError):
            self.eof = "reset"
            return True
        except OSError as exc:
            self.eof = f"error {exc}"
            return True
        if not chunk:
            self.eof = "fin"
            return True
        self.buf += chunk
        return True

    def parse_frame(self):
        """Take one whole frame off the buffer: (fin, rsv, op, masked, payload), or None."""
        buf = self.buf
        if len(buf) < 2:
            return None
        b0, b1 = buf[0], buf[1]
        n, pos = b1 & 0x7F, 2
        if n == 126:
            if len(buf) < 4:
                return None
            n, pos = struct.unpack_from("!H", buf, 2)[0], 4
        elif n == 127:
            if len(buf) < 10:
                return None
            n, pos = struct.unpack_from("!Q", buf, 2)[0], 10
        masked = bool(b1 & 0x80)
        key = None
        if masked:
            if len(buf) < pos + 4:
                return None
            key = bytes(buf[pos:pos + 4])
            pos += 4
        if len(buf) < pos + n:
            return None
        payload = bytes(buf[pos:pos + n])
        del buf[:pos + n]
        if masked:
            payload = apply_mask(payload, key)
        return bool(b0 & 0x80), (b0 >> 4) & 7, b0 & 0xF, masked, payload

    def next_event(self, timeout=READ_TIMEOUT):
        """The next thing the server did, as a tuple:
             ("message", op, payload)   a whole text or binary message
             ("pong", payload) / ("ping", payload)
             ("close", code or None, reason bytes)
             ("eof", "fin"|"reset")     the TCP connection ended
             ("timeout",)
             ("bad", text)              the server broke RFC 6455 itself
        Waits at most `timeout` seconds in all."""
        deadline = time.monotonic() + timeout
        for _ in range(1 << 20):              # bounded; each turn reads or returns
            f = self.parse_frame()
            if f is not None:
                ev = self.classify(*f)
                if ev is not None:
                    return ev
                continue
            if self.eof:
                if self.buf:
                    return ("bad", f"connection ended inside a frame ({len(self.buf)} bytes left)")
                return ("eof", self.eof)
            if not self.fill(deadline):
                return ("timeout",)
        return ("timeout",)

    def classify(self, fin, rsv, op, masked, payload):
        if masked:
            return ("bad", "server sent a masked frame (RFC 6455 §5.1)")
        if rsv:
            return ("bad", f"server frame has reserved bits {rsv:03b}")
        if op in (OP_PING, OP_PONG, OP_CLOSE):
            if not fin:
                return ("bad", "server sent a fragmented control frame")
            if len(payload) > 125:
                return ("bad", f"server control frame of {len(payload)} bytes")
            if op == OP_PING:
                return ("ping", payload)
            if op == OP_PONG:
                return ("pong", payload)
            if len(payload) == 0:
                return ("close", None, b"")
            if len(payload) == 1:
                return ("bad", "server close frame with a 1-byte payload")
            return ("close", struct.unpack("!H", payload[:2])[0], payload[2:])
        if op not in (OP_CONT, OP_TEXT, OP_BINARY):
            return ("bad", f"server sent reserved opcode {op:#x}")
        if op == OP_CONT:
            if self.msg_op is None:
                return ("bad", "server sent a continuation frame with no message started")
        else:
            if self.msg_op is not None:
                return ("bad", "server started a new message inside a fragmented one")
            self.msg_op = op
            self.msg_parts = []
        self.msg_parts.append(payload)
        if not fin:
            return None
        msg = ("message", self.msg_op, b"".join(self.msg_parts))
        self.msg_op, self.msg_parts = None, []
        return msg


def describe(ev):
    kind = ev[0]
    if kind == "message":
        return f"{OP_NAMES.get(ev[1], ev[1])} message {show(ev[2])}"
    if kind in ("ping", "pong"):
        return f"{kind} {show(ev[1])}"
    if kind == "close":
        return "close frame " + ("without code" if ev[1] is None else f"code {ev[1]} reason {ev[2][:40]!r}")
    if kind == "eof":
        return f"TCP close ({ev[1]})"
    if kind == "timeout":
        return "nothing (timeout)"
    return ev[1]


# ---------------------------------------------------------------------------
# The context a case runs in

class Case:
    def __init__(self, target):
        self.host, self.port, self.path = target
        self.notes = []          # reasons for NON-STRICT
        self.peers = []

    def nonstrict(self, why):
        self.notes.append(why)

    def cleanup(self):
        for p in self.peers:
            p.close()

    # -- HTTP

    def request(self, path=None, method="GET", version="HTTP/1.1", key=None, headers=None, drop=()):
        """Bytes of an opening-handshake request. `headers` (a list of pairs)
        is added; names in `drop` (lower case) are left out of the defaults."""
        key = key or new_key()
        base = [("Host", f"{self.host}:{self.port}"), ("Upgrade", "websocket"),
                ("Connection", "Upgrade"), ("Sec-WebSocket-Key", key),
                ("Sec-WebSocket-Version", "13")]
        lines = [f"{method} {path or self.path} {version}"]
        lines += [f"{k}: {v}" for k, v in base if k.lower() not in drop]
        lines += [f"{k}: {v}" for k, v in (headers or [])]
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def http(self, raw, chop=None, extra=b""):
        """Send raw request bytes on a new connection and read the response
        head: (peer, status or None, reason, headers{lower: [values]}).
        Bytes after the head stay in peer.buf."""
        peer = self.connect_tcp()
        peer.send(raw + extra, chop=chop)
        deadline = time.monotonic() + READ_TIMEOUT
        for _ in range(1000):
            end = peer.buf.find(b"\r\n\r\n")
            if end >= 0 or len(peer.buf) > 65536:
                break
            if not peer.fill(deadline) or peer.eof:
                end = peer.buf.find(b"\r\n\r\n")
                break
        if end < 0:
            if peer.buf:
                return peer, None, f"incomplete response {show(peer.buf)}", {}
            if peer.eof:
                return peer, None, f"connection closed ({peer.eof}) without a response", {}
            return peer, None, "no response within timeout", {}
        head = bytes(peer.buf[:end]).decode("latin-1")
        del peer.buf[:end + 4]
        lines = head.split("\r\n")
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
            return peer, None, f"bad status line {lines[0]!r}", {}
        hdrs = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            hdrs.setdefault(name.strip().lower(), []).append(value.strip())
        return peer, int(parts[1]), parts[2] if len(parts) > 2 else "", hdrs

    def connect_tcp(self):
        try:
            peer = Peer(self.host, self.port)
        except OSError as exc:
            raise Failed(f"cannot connect: {exc}")
        self.peers.append(peer)
        return peer

    def check_101(self, status, reason, hdrs, key):
        if status != 101:
            raise Failed(f"handshake answered {status} {reason}, expected 101")
        accept = hdrs.get("sec-websocket-accept", [])
        if accept != [accept_for(key)]:
            raise Failed(f"Sec-WebSocket-Accept {accept}, expected {accept_for(key)}")
        if [v.lower() for v in hdrs.get("upgrade", [])] != ["websocket"]:
            raise Failed(f"Upgrade header {hdrs.get('upgrade')}, expected websocket")
        conn = {t.strip().lower() for v in hdrs.get("connection", []) for t in v.split(",")}
        if "upgrade" not in conn:
            raise Failed(f"Connection header {hdrs.get('connection')} lacks Upgrade")

    def open(self, **kw):
        """Open a WebSocket connection with a valid handshake."""
        key = new_key()
        peer, status, reason, hdrs = self.http(self.request(key=key, **kw))
        self.check_101(status, reason, hdrs, key)
        return peer

    # -- expectations

    def expect(self, peer, *wanted, timeout=READ_TIMEOUT):
        """Each wanted event must come next, exactly: ("message", op, payload)
        or ("pong", payload). Server pings are answered and skipped."""
        for i, want in enumerate(wanted):
            ev = self.next(peer, timeout)
            if ev != want:
                raise Failed(f"expected {describe(want)} (event {i + 1} of {len(wanted)}), got {describe(ev)}")

    def next(self, peer, timeout=READ_TIMEOUT):
        for _ in range(100):
            ev = peer.next_event(timeout)
            if ev[0] != "ping":
                return ev
            peer.send(frame(OP_PONG, ev[1]))
        return ("bad", "server sent over 100 pings")

    def expect_eof(self, peer):
        """After the close exchange the server must close TCP (RFC 6455 §7.1.1)."""
        ev = self.next(peer)
        if ev[0] == "eof":
            return
        if ev[0] == "timeout":
            raise Failed(f"TCP still open {READ_TIMEOUT:g} s after the close exchange")
        raise Failed(f"got {describe(ev)} after the close exchange")

    def close_normal(self, peer, code=1000, reason=b"", ok=None, chop=None):
        """Start the closing handshake; the server must answer with a close
        frame (the same code: `ok`) and then close TCP."""
        ok = (code,) if ok is None else ok
        peer.send(frame(OP_CLOSE, close_payload(code, reason)), chop=chop)
        ev = self.next(peer)
        if ev[0] == "close":
            if ev[1] not in ok:
                got = "no code" if ev[1] is None else ev[1]
                want = " or ".join("no code" if c is None else str(c) for c in ok)
                if ev[1] is None or ev[1] == 1000 or ev[1] in FAILURE_CODES:
                    self.nonstrict(f"close answered with {got}, expected {want}")
                else:
                    raise Failed(f"close answered with {got}, expected {want}")
            self.expect_eof(peer)
        elif ev[0] == "eof":
            self.nonstrict("TCP closed without a close frame answering ours")
        elif ev[0] == "timeout":
            raise Failed(f"no answer to our close within {READ_TIMEOUT:g} s")
        else:
            raise Failed(f"expected a close frame, got {describe(ev)}")

    def expect_unordered(self, peer, *wanted):
        """All wanted events must come next, in any order (for replies whose
        relative order RFC 6455 leaves open, such as a pong and an echo)."""
        left = list(wanted)
        for _ in range(len(wanted)):
            ev = self.next(peer)
            if ev not in left:
                raise Failed(f"expected one of {', '.join(describe(w) for w in left)}, got {describe(ev)}")
            left.remove(ev)

    def expect_before_fail(self, peer, wanted, codes=(1002,)):
        """The wanted replies (echoes of valid messages sent in the same write
        as a bad frame) should come before the failure close. A server that
        fails the connection as soon as it reads the bad frame, before its
        application answered, is NON-STRICT: RFC 6455 §7.1.7 lets it stop
        processing at once."""
        for i, want in enumerate(wanted):
            ev = self.next(peer)
            if ev == want:
                continue
            if ev[0] in ("close", "eof"):
                self.nonstrict(f"the connection was failed before {describe(want)} came back")
                return self.expect_fail(peer, codes, first=ev)
            raise Failed(f"expected {describe(want)} (event {i + 1} of {len(wanted)}), got {describe(ev)}")
        return self.expect_fail(peer, codes)

    def expect_fail(self, peer, codes=(1002,), timeout=READ_TIMEOUT, wait_only=False, first=None):
        """The server must fail the connection: a close frame with one of
        `codes`, then a TCP close, and nothing else before it. With wait_only,
        a timeout returns False instead of failing (for fail-fast cases).
        `first` is an event already read."""
        want = " or ".join(str(c) for c in codes)
        ev = first or self.next(peer, timeout)
        if ev[0] == "timeout":
            if wait_only:
                return False
            raise Failed(f"no close (expected {want}) within {timeout:g} s")
        if ev[0] == "eof":
            self.nonstrict(f"TCP closed ({ev[1]}) without a close frame (expected {want})")
            return True
        if ev[0] != "close":
            raise Failed(f"expected a close with {want}, got {describe(ev)}")
        code = ev[1]
        if code not in codes:
            if code in FAILURE_CODES:
                self.nonstrict(f"closed with {code}, expected {want}")
            else:
                raise Failed(f"closed with {'no code' if code is None else code}, expected {want}")
        # Complete the closing handshake as a client should, echoing the code.
        peer.send(frame(OP_CLOSE, close_payload(code)))
        self.expect_eof(peer)
        return True


# ---------------------------------------------------------------------------
# Case tables

CASES = []   # (id, desc, fn(case))


def add(cid, desc, fn):
    CASES.append((cid, desc, fn))


def text_payload(n):
    pattern = b"The quick brown fox jumps over the lazy dog, 0123456789. "
    return (pattern * (n // len(pattern) + 1))[:n]


def binary_payload(n):
    return (bytes(range(256)) * (n // 256 + 1))[:n]


def echo(frames, *expected, chop=None, close=True):
    """Send frames (one write, or pieces of `chop`), expect events, close normally."""
    def run(c):
        p = c.open()
        p.send(list(frames), chop=chop)
        c.expect(p, *expected)
        if close:
            c.close_normal(p)
    return run


def fail_after(frames, codes=(1002,), before=(), chop=None, then=()):
    """Send frames, expect the events in `before`, then a failure close with
    one of `codes`. `then` frames are sent after the bad ones in the same
    write (they must not be answered)."""
    def run(c):
        p = c.open()
        p.send(list(frames) + list(then), chop=chop)
        c.expect_before_fail(p, before, codes)
    return run


def msg(op, data):
    return ("message", op, data.encode("utf-8") if isinstance(data, str) else data)


def pong(data):
    return ("pong", data.encode("utf-8") if isinstance(data, str) else data)


# 1 -- framing ---------------------------------------------------------------

SIZES = [0, 125, 126, 127, 128, 65535, 65536]
for gi, (op, name, gen) in enumerate([(OP_TEXT, "text", text_payload), (OP_BINARY, "binary", binary_payload)], 1):
    for i, n in enumerate(SIZES, 1):
        data = gen(n)
        add(f"1.{gi}.{i}", f"{name} message of {n} bytes is echoed", echo([frame(op, data)], msg(op, data)))
    data = gen(65536)
    add(f"1.{gi}.{len(SIZES) + 1}", f"{name} message of 65536 bytes sent in 997-byte writes is echoed",
        echo([frame(op, data)], msg(op, data), chop=997))

add("1.3.1", "text message of 125 bytes sent one byte per write is echoed",
    echo([frame(OP_TEXT, text_payload(125))], msg(OP_TEXT, text_payload(125)), chop=1))
add("1.3.2", "binary message of 126 bytes sent one byte per write is echoed (16-bit length split)",
    echo([frame(OP_BINARY, binary_payload(126))], msg(OP_BINARY, binary_payload(126)), chop=1))
add("1.3.3", "binary message of 65536 bytes sent in 3-byte writes is echoed (64-bit length split)",
    echo([frame(OP_BINARY, binary_payload(65536))], msg(OP_BINARY, binary_payload(65536)), chop=3, ))
add("1.3.4", "two text messages in one write are echoed in order",
    echo([frame(OP_TEXT, "first"), frame(OP_TEXT, "second")], msg(OP_TEXT, "first"), msg(OP_TEXT, "second")))
add("1.3.5", "ten messages of both kinds in one write are echoed in order",
    echo([frame(OP_TEXT if i % 2 else OP_BINARY, text_payload(i * 30)) for i in range(10)],
         *[msg(OP_TEXT if i % 2 else OP_BINARY, text_payload(i * 30)) for i in range(10)]))


def echo_and_pong(c):
    p = c.open()
    p.send([frame(OP_TEXT, "hello"), frame(OP_PING, "are you there")])
    c.expect_unordered(p, msg(OP_TEXT, "hello"), pong("are you there"))
    c.close_normal(p)


add("1.3.6", "a text message and a ping in one write: the echo and the pong, in either order", echo_and_pong)
add("1.4.1", "unmasked text frame is refused with 1002",
    fail_after([frame(OP_TEXT, "not masked", mask=False)]))
add("1.4.2", "unmasked binary frame is refused with 1002",
    fail_after([frame(OP_BINARY, b"\x00\x01\x02", mask=False)]))
add("1.4.3", "unmasked ping is refused with 1002 and not answered",
    fail_after([frame(OP_PING, "ping", mask=False)]))


def huge_length(c):
    """A 64-bit length with the most significant bit set (RFC 6455 §5.2)."""
    p = c.open()
    p.send(struct.pack("!BBQ", 0x82, 0xFF, 1 << 63) + os.urandom(4) + b"\x00" * 16)
    c.expect_fail(p, (1002, 1009))


add("1.4.4", "frame length with the 64-bit most significant bit set fails the connection", huge_length)

# 2 -- ping / pong -------------------------------------------------------------

add("2.1", "ping without payload gets a pong without payload", echo([frame(OP_PING)], pong(b"")))
add("2.2", "ping with a text payload gets the same pong", echo([frame(OP_PING, "Hello, world!")], pong("Hello, world!")))
add("2.3", "ping with a binary payload gets the same pong",
    echo([frame(OP_PING, b"\x00\xff\xfe\xfd\xfc\xfb\x00\xff")], pong(b"\x00\xff\xfe\xfd\xfc\xfb\x00\xff")))
add("2.4", "ping with a 125-byte payload gets the same pong",
    echo([frame(OP_PING, binary_payload(125))], pong(binary_payload(125))))
add("2.5", "ping with a 126-byte payload is refused with 1002",
    fail_after([frame(OP_PING, binary_payload(126))]))
add("2.6", "ping with a 125-byte payload sent one byte per write gets the same pong",
    echo([frame(OP_PING, binary_payload(125))], pong(binary_payload(125)), chop=1))
add("2.7", "unsolicited empty pong is ignored", echo([frame(OP_PONG)]))
add("2.8", "unsolicited pong with payload is ignored", echo([frame(OP_PONG, "unsolicited pong payload")]))
add("2.9", "unsolicited pong then a ping: exactly one pong for the ping",
    echo([frame(OP_PONG, "unsolicited"), frame(OP_PING, "solicited")], pong("solicited")))
TEN_PINGS = [frame(OP_PING, f"payload-{i}") for i in range(10)]
add("2.10", "ten pings in one write get ten pongs in order", echo(TEN_PINGS, *[pong(f"payload-{i}") for i in range(10)]))
add("2.11", "ten pings sent one byte per write get ten pongs in order",
    echo(TEN_PINGS, *[pong(f"payload-{i}") for i in range(10)], chop=1))

# 3 -- reserved bits -----------------------------------------------------------

RSV_KINDS = [
    ("text frame", lambda rsv: frame(OP_TEXT, "Hello, reserved bits", rsv=rsv)),
    ("binary frame", lambda rsv: frame(OP_BINARY, b"\x00\x01\x02\x03", rsv=rsv)),
    ("ping", lambda rsv: frame(OP_PING, "rsv ping", rsv=rsv)),
    ("close", lambda rsv: frame(OP_CLOSE, close_payload(1000), rsv=rsv)),
    ("pong", lambda rsv: frame(OP_PONG, "rsv pong", rsv=rsv)),
]
for gi, (kind, make) in enumerate(RSV_KINDS, 1):
    for rsv in range(1, 8):
        add(f"3.{gi}.{rsv}", f"{kind} with reserved bits {rsv:03b} is refused with 1002", fail_after([make(rsv)]))
for i, rsv in enumerate((RSV1, RSV2, RSV3), 1):
    add(f"3.6.{i}", f"continuation frame with reserved bits {rsv:03b} is refused with 1002, nothing echoed",
        fail_after([frame(OP_TEXT, "Hello, ", fin=False), frame(OP_CONT, "world", rsv=rsv)]))


def rsv_after_echo(rsv):
    def run(c):
        p = c.open()
        p.send(frame(OP_TEXT, "valid first"))
        c.expect(p, msg(OP_TEXT, "valid first"))
        p.send([frame(OP_TEXT, "invalid second", rsv=rsv), frame(OP_PING, "must not be answered")])
        c.expect_fail(p)
    return run


for i, rsv in enumerate((RSV1, RSV2, RSV3), 1):
    add(f"3.7.{i}", f"valid text echoed, then a text frame with reserved bits {rsv:03b} is refused with 1002",
        rsv_after_echo(rsv))
    add(f"3.8.{i}", f"valid text, text with reserved bits {rsv:03b} and a ping in one write: echo, then 1002, no pong",
        fail_after([frame(OP_TEXT, "valid first")], before=[msg(OP_TEXT, "valid first")],
                   then=[frame(OP_TEXT, "invalid second", rsv=rsv), frame(OP_PING, "must not be answered")]))

# 4 -- opcodes -------------------------------------------------------------------

for gi, (ops, kind) in enumerate([((3, 4, 5, 6, 7), "reserved data opcode"),
                                  ((0xB, 0xC, 0xD, 0xE, 0xF), "reserved control opcode")], 1):
    for i, op in enumerate(ops, 1):
        add(f"4.{gi}.{i}", f"{kind} {op:#x} without payload is refused with 1002",
            fail_after([frame(op)]))
        add(f"4.{gi}.{i + 5}", f"{kind} {op:#x} with payload is refused with 1002",
            fail_after([frame(op, "reserved opcode payload")]))
        add(f"4.{gi}.{i + 10}", f"valid text, then {kind} {op:#x}, then a ping: echo, 1002, no pong",
            fail_after([frame(OP_TEXT, "valid first")], before=[msg(OP_TEXT, "valid first")],
                       then=[frame(op, "reserved"), frame(OP_PING, "must not be answered")]))

# 5 -- fragmentation -------------------------------------------------------------

HELLO = "Hello, fragmented world! "
add("5.1", "ping in two fragments is refused with 1002, no pong",
    fail_after([frame(OP_PING, "frag", fin=False), frame(OP_CONT, "mented ping")]))
add("5.2", "pong in two fragments is refused with 1002",
    fail_after([frame(OP_PONG, "frag", fin=False), frame(OP_CONT, "mented pong")]))
add("5.3", "text in two fragments is echoed as one message",
    echo(fragments(OP_TEXT, HELLO, [7]), msg(OP_TEXT, HELLO)))
add("5.4", "text in two fragments sent one byte per write is echoed as one message",
    echo(fragments(OP_TEXT, HELLO, [7]), msg(OP_TEXT, HELLO), chop=1))
add("5.5", "binary in two fragments is echoed as one message",
    echo(fragments(OP_BINARY, binary_payload(300), [100]), msg(OP_BINARY, binary_payload(300))))
add("5.6", "binary in two fragments sent one byte per write is echoed as one message",
    echo(fragments(OP_BINARY, binary_payload(300), [100]), msg(OP_BINARY, binary_payload(300)), chop=1))


def with_between(frames, extra):
    """Insert `extra` frames after the first frame."""
    return [frames[0]] + list(extra) + list(frames[1:])


add("5.7", "text in two fragments with a ping between: pong first, then the echo",
    echo(with_between(fragments(OP_TEXT, HELLO, [7]), [frame(OP_PING, "between")]),
         pong("between"), msg(OP_TEXT, HELLO)))
add("5.8", "the same sent one byte per write",
    echo(with_between(fragments(OP_TEXT, HELLO, [7]), [frame(OP_PING, "between")]),
         pong("between"), msg(OP_TEXT, HELLO), chop=1))
add("5.9", "binary in two fragments with a ping between: pong first, then the echo",
    echo(with_between(fragments(OP_BINARY, binary_payload(200), [50]), [frame(OP_PING, b"\x01\x02")]),
         pong(b"\x01\x02"), msg(OP_BINARY, binary_payload(200))))
add("5.10", "text in two fragments with an unsolicited pong between: only the echo",
    echo(with_between(fragments(OP_TEXT, HELLO, [7]), [frame(OP_PONG, "unsolicited")]), msg(OP_TEXT, HELLO)))
add("5.11", "continuation (fin) with no message started is refused with 1002",
    fail_after([frame(OP_CONT, "no start")], then=[frame(OP_TEXT, "must not be echoed")]))
add("5.12", "the same sent one byte per write",
    fail_after([frame(OP_CONT, "no start")], chop=1))
add("5.13", "continuation (not fin) with no message started is refused with 1002",
    fail_after([frame(OP_CONT, "no start", fin=False)], then=[frame(OP_CONT, "end")]))
add("5.14", "the same sent one byte per write",
    fail_after([frame(OP_CONT, "no start", fin=False)], chop=1))
add("5.15", "a whole text message, then a stray continuation: echo, then 1002",
    fail_after([frame(OP_TEXT, "whole")], before=[msg(OP_TEXT, "whole")], then=[frame(OP_CONT, "stray")]))
add("5.16", "text fragment, then a new text frame inside the message is refused with 1002",
    fail_after([frame(OP_TEXT, "start", fin=False), frame(OP_TEXT, "new start")]))
add("5.17", "text fragment, then a binary frame inside the message is refused with 1002",
    fail_after([frame(OP_TEXT, "start", fin=False), frame(OP_BINARY, b"\x00")]))
add("5.18", "binary fragment, then a new text fragment inside the message is refused with 1002",
    fail_after([frame(OP_BINARY, b"\x00", fin=False), frame(OP_TEXT, "new start", fin=False), frame(OP_CONT, "end")]))
add("5.19", "text in two fragments, a continuation, then a new text start is refused with 1002",
    fail_after([frame(OP_TEXT, "a", fin=False), frame(OP_CONT, "b", fin=False), frame(OP_TEXT, "c", fin=False)]))
add("5.20", "text in 10 fragments is echoed as one message",
    echo(fragments(OP_TEXT, text_payload(1000), [100] * 9), msg(OP_TEXT, text_payload(1000))))
add("5.21", "binary in 100 fragments is echoed as one message",
    echo(fragments(OP_BINARY, binary_payload(10000), [100] * 99), msg(OP_BINARY, binary_payload(10000))))
add("5.22", "text in 1-byte fragments is echoed as one message",
    echo(split_every(OP_TEXT, HELLO.encode()), msg(OP_TEXT, HELLO)))
add("5.23", "binary in 1-byte fragments is echoed as one message",
    echo(split_every(OP_BINARY, binary_payload(64)), msg(OP_BINARY, binary_payload(64))))
add("5.24", "text in 1-byte fragments sent one byte per write is echoed as one message",
    echo(split_every(OP_TEXT, HELLO.encode()), msg(OP_TEXT, HELLO), chop=1))
FIVE = fragments(OP_TEXT, "fragment1fragment2fragment3fragment4fragment5", [9] * 4)
FIVE_PINGED = [FIVE[0]]
for i, f in enumerate(FIVE[1:], 1):
    FIVE_PINGED += [frame(OP_PING, f"ping{i}"), f]
add("5.25", "text in 5 fragments with pings between: 4 pongs in order, then the echo",
    echo(FIVE_PINGED, *[pong(f"ping{i}") for i in range(1, 5)],
         msg(OP_TEXT, "fragment1fragment2fragment3fragment4fragment5")))
add("5.26", "the same sent one byte per write",
    echo(FIVE_PINGED, *[pong(f"ping{i}") for i in range(1, 5)],
         msg(OP_TEXT, "fragment1fragment2fragment3fragment4fragment5"), chop=1))


def fragments_one_by_one(c):
    """Each fragment is its own write, the next sent only after a pause: the
    server must hold the partial message across reads."""
    p = c.open()
    for f in fragments(OP_TEXT, HELLO, [5, 5, 5]):
        p.send(f)
        time.sleep(0.05)
    c.expect(p, msg(OP_TEXT, HELLO))
    c.close_normal(p)


add("5.27", "text in 4 fragments sent with pauses between is echoed as one message", fragments_one_by_one)
add("5.28", "empty first fragment: text '' + continuation 'abc' is echoed as 'abc'",
    echo([frame(OP_TEXT, "", fin=False), frame(OP_CONT, "abc")], msg(OP_TEXT, "abc")))
add("5.29", "empty last fragment: text 'abc' + continuation '' is echoed as 'abc'",
    echo([frame(OP_TEXT, "abc", fin=False), frame(OP_CONT, "")], msg(OP_TEXT, "abc")))
add("5.30", "empty middle fragment is echoed as the joined message",
    echo([frame(OP_TEXT, "ab", fin=False), frame(OP_CONT, "", fin=False), frame(OP_CONT, "cd")], msg(OP_TEXT, "abcd")))
add("5.31", "text in three empty fragments is echoed as an empty text message",
    echo([frame(OP_TEXT, "", fin=False), frame(OP_CONT, "", fin=False), frame(OP_CONT, "")], msg(OP_TEXT, "")))
add("5.32", "binary in two empty fragments is echoed as an empty binary message",
    echo([frame(OP_BINARY, b"", fin=False), frame(OP_CONT, b"")], msg(OP_BINARY, b"")))
add("5.33", "binary of 65536 bytes in two 16-bit-length fragments is echoed",
    echo(fragments(OP_BINARY, binary_payload(65536), [32768]), msg(OP_BINARY, binary_payload(65536))))
add("5.34", "text of 70000 bytes with a 64-bit-length first fragment is echoed",
    echo(fragments(OP_TEXT, text_payload(70000), [65536]), msg(OP_TEXT, text_payload(70000))))
add("5.35", "text fragment, pong, ping, last fragment: one pong, then the echo",
    echo([frame(OP_TEXT, "split ", fin=False), frame(OP_PONG, "x"), frame(OP_PING, "y"), frame(OP_CONT, "message")],
         pong("y"), msg(OP_TEXT, "split message")))

# 6 -- UTF-8 -----------------------------------------------------------------------

HELLO_UTF8 = "Hello-\u00b5@\u00df\u00f6\u00e4\u00fc\u00e0\u00e1-UTF-8!!".encode("utf-8")
KOSME = "\u03ba\u1f79\u03c3\u03bc\u03b5".encode("utf-8")     # "κόσμε", 11 bytes

add("6.1.1", "empty text message is echoed", echo([frame(OP_TEXT, b"")], msg(OP_TEXT, b"")))
add("6.1.2", "empty text in two empty fragments is echoed",
    echo([frame(OP_TEXT, b"", fin=False), frame(OP_CONT, b"")], msg(OP_TEXT, b"")))

for gi, (name, data) in enumerate([("Hello-\u00b5@\u00df\u00f6\u00e4\u00fc\u00e0\u00e1-UTF-8!!", HELLO_UTF8),
                                   ("\u03ba\u1f79\u03c3\u03bc\u03b5", KOSME)], 2):
    add(f"6.{gi}.1", f"valid text {name!r} is echoed", echo([frame(OP_TEXT, data)], msg(OP_TEXT, data)))
    add(f"6.{gi}.2", f"valid text {name!r} in 1-byte fragments is echoed",
        echo(split_every(OP_TEXT, data), msg(OP_TEXT, data)))
    for cut in range(1, len(data)):
        add(f"6.{gi}.{cut + 2}", f"valid text {name!r} in two fragments split at byte {cut} is echoed",
            echo(fragments(OP_TEXT, data, [cut]), msg(OP_TEXT, data)))

VALID_POINTS = [
    ("U+0000", "\u0000"), ("U+007F", "\u007f"), ("U+0080", "\u0080"), ("U+07FF", "\u07ff"),
    ("U+0800", "\u0800"), ("U+D7FF", "\ud7ff"), ("U+E000", "\ue000"), ("U+FFFD", "\ufffd"),
    ("U+FFFE", "\ufffe"), ("U+FFFF", "\uffff"), ("U+10000", "\U00010000"), ("U+1F600", "\U0001f600"),
    ("U+10FFFE", "\U0010fffe"), ("U+10FFFF", "\U0010ffff"),
]
for i, (name, ch) in enumerate(VALID_POINTS, 1):
    data = ch.encode("utf-8")
    add(f"6.4.{i}", f"valid boundary code point {name} ({data.hex(' ')}) is echoed",
        echo([frame(OP_TEXT, data)], msg(OP_TEXT, data)))
    wrapped = b"a" + data + b"z" + data * 3
    add(f"6.5.{i}", f"text with {name} between ASCII, in 1-byte fragments, is echoed",
        echo(split_every(OP_TEXT, wrapped), msg(OP_TEXT, wrapped)))

INVALID = [
    ("lone continuation byte 80", b"\x80"),
    ("lone continuation byte BF", b"\xbf"),
    ("two continuation bytes", b"\x80\xbf"),
    ("three continuation bytes", b"\x80\xbf\x80"),
    ("all 64 continuation bytes", bytes(range(0x80, 0xC0))),
    ("start byte C2 followed by space", b"\xc2 "),
    ("start byte DF followed by space", b"\xdf "),
    ("start byte E0 followed by space", b"\xe0 "),
    ("start byte EF followed by space", b"\xef "),
    ("start byte F0 followed by space", b"\xf0 "),
    ("start byte F4 followed by space", b"\xf4 "),
    ("2-byte sequence missing its last byte", b"\xc2"),
    ("3-byte sequence missing its last byte", b"\xe0\xa0"),
    ("3-byte sequence EF BF missing its last byte", b"\xef\xbf"),
    ("4-byte sequence missing its last byte", b"\xf0\x90\x80"),
    ("4-byte sequence F4 8F BF missing its last byte", b"\xf4\x8f\xbf"),
    ("concatenated truncated sequences", b"\xc2\xe0\xa0\xf0\x90\x80"),
    ("overlong '/' in 2 bytes (C0 AF)", b"\xc0\xaf"),
    ("overlong '/' in 3 bytes (E0 80 AF)", b"\xe0\x80\xaf"),
    ("overlong '/' in 4 bytes (F0 80 80 AF)", b"\xf0\x80\x80\xaf"),
    ("largest overlong 2-byte (C1 BF)", b"\xc1\xbf"),
    ("largest overlong 3-byte (E0 9F BF)", b"\xe0\x9f\xbf"),
    ("largest overlong 4-byte (F0 8F BF BF)", b"\xf0\x8f\xbf\xbf"),
    ("overlong NUL in 2 bytes (C0 80)", b"\xc0\x80"),
    ("overlong NUL in 3 bytes (E0 80 80)", b"\xe0\x80\x80"),
    ("overlong NUL in 4 bytes (F0 80 80 80)", b"\xf0\x80\x80\x80"),
    ("5-byte sequence (F8 88 80 80 80)", b"\xf8\x88\x80\x80\x80"),
    ("6-byte sequence (FC 84 80 80 80 80)", b"\xfc\x84\x80\x80\x80\x80"),
    ("surrogate U+D800 (ED A0 80)", b"\xed\xa0\x80"),
    ("surrogate U+DB7F (ED AD BF)", b"\xed\xad\xbf"),
    ("surrogate U+DB80 (ED AE 80)", b"\xed\xae\x80"),
    ("surrogate U+DBFF (ED AF BF)", b"\xed\xaf\xbf"),
    ("surrogate U+DC00 (ED B0 80)", b"\xed\xb0\x80"),
    ("surrogate U+DF80 (ED BE 80)", b"\xed\xbe\x80"),
    ("surrogate U+DFFF (ED BF BF)", b"\xed\xbf\xbf"),
    ("surrogate pair U+D800 U+DC00", b"\xed\xa0\x80\xed\xb0\x80"),
    ("surrogate pair U+DBFF U+DFFF", b"\xed\xaf\xbf\xed\xbf\xbf"),
    ("above U+10FFFF (F4 90 80 80)", b"\xf4\x90\x80\x80"),
    ("F5 80 80 80", b"\xf5\x80\x80\x80"),
    ("F7 BF BF BF", b"\xf7\xbf\xbf\xbf"),
    ("byte C0", b"\xc0"),
    ("byte C1", b"\xc1"),
    ("byte F5", b"\xf5"),
    ("byte F8", b"\xf8"),
    ("byte FC", b"\xfc"),
    ("byte FE", b"\xfe"),
    ("byte FF", b"\xff"),
    ("FE FE FF FF", b"\xfe\xfe\xff\xff"),
    ("FF inside valid text", KOSME + b"\xff" + KOSME),
    ("C0 inside ASCII text", b"Hello\xc0world"),
    ("surrogate after 1000 valid bytes", text_payload(1000) + b"\xed\xa0\x80" + b"tail"),
    ("'\u03ba\u1f79\u03c3\u03bc\u03b5' then a truncated 2-byte sequence at the end", KOSME + b"\xce"),
    ("valid text then a truncated 4-byte sequence at the end", HELLO_UTF8 + b"\xf0\x9f\x98"),
    ("10000 valid bytes then FF at the end", text_payload(10000) + b"\xff"),
    ("'\u03ba\u1f79\u03c3\u03bc\u03b5' then surrogate at the end", KOSME + b"\xed\xa0\x80"),
]
for i, (name, data) in enumerate(INVALID, 1):
    add(f"6.6.{i}", f"invalid UTF-8, {name}: refused with 1007, not echoed",
        fail_after([frame(OP_TEXT, data)], codes=(1007,)))

SPLIT_INVALID = [
    ("surrogate split across fragments", [KOSME + b"\xed", b"\xa0\x80"]),
    ("F4 90 80 80 split after F4", [KOSME + b"\xf4", b"\x90\x80\x80"]),
    ("overlong C0 AF split across fragments", [b"abc\xc0", b"\xafdef"]),
    ("valid first fragment, FF in the last", [KOSME, b"\xff"]),
    ("message ends inside a 2-byte sequence (empty last fragment)", [KOSME + b"\xce", b""]),
    ("message ends inside a 3-byte sequence spread over fragments", [b"\xe2", b"\x82"]),
    ("truncated sequence in a middle fragment, completed wrongly", [b"ab\xe2\x82", b"c", b"d"]),
]
for i, (name, parts) in enumerate(SPLIT_INVALID, 1):
    frames = [frame(OP_TEXT if j == 0 else OP_CONT, part, fin=(j == len(parts) - 1)) for j, part in enumerate(parts)]
    add(f"6.7.{i}", f"fragmented invalid UTF-8, {name}: refused with 1007, not echoed",
        fail_after(frames, codes=(1007,)))


def fail_fast(parts, name_bad_index=0, chop_first=None):
    """Send fragments one at a time. Fragment `name_bad_index` makes the text
    invalid; the server must close with 1007 before any later fragment is
    sent. If it waits for the whole message, the verdict is NON-STRICT."""
    def run(c):
        p = c.open()
        frames = [frame(OP_TEXT if j == 0 else OP_CONT, part, fin=(j == len(parts) - 1))
                  for j, part in enumerate(parts)]
        for j, f in enumerate(frames):
            p.send(f, chop=chop_first if j == 0 else None)
            if j < name_bad_index:
                time.sleep(0.05)
                continue
            if j == name_bad_index and j < len(frames) - 1:
                if c.expect_fail(p, (1007,), timeout=FAIL_FAST_FRAGMENT_WAIT, wait_only=True):
                    return
                c.nonstrict(f"no close within {FAIL_FAST_FRAGMENT_WAIT:g} s after the invalid fragment "
                            "(not fail-fast): the rest of the message was sent")
        c.expect_fail(p, (1007,))
    return run


add("6.8.1", "fail fast: first fragment '\u03ba\u1f79\u03c3\u03bc\u03b5' + F4 90 80 80, close 1007 before the next fragment",
    fail_fast([KOSME + b"\xf4\x90\x80\x80" + KOSME, KOSME, KOSME]))
add("6.8.2", "fail fast: first fragment is FF, close 1007 before the next fragment",
    fail_fast([b"\xff", b"more", b"end"]))
add("6.8.3", "fail fast: 200 valid bytes then C0 AF in the first fragment, close 1007 before the next",
    fail_fast([text_payload(200) + b"\xc0\xaf", b"more", b"end"]))
add("6.8.4", "fail fast: '\u03ba\u1f79\u03c3\u03bc\u03b5' F4 (valid so far), then 90 (invalid): close 1007 before the third fragment",
    fail_fast([KOSME + b"\xf4", b"\x90", b"\x80\x80" + KOSME], name_bad_index=1))
add("6.8.5", "fail fast: first fragment holds a surrogate ED A0 80, close 1007 before the next fragment",
    fail_fast([KOSME + b"\xed\xa0\x80", b"more", b"end"]))
add("6.8.6", "fail fast: first fragment holds 5-byte F8 88 80 80 80, close 1007 before the next fragment",
    fail_fast([b"abc\xf8\x88\x80\x80\x80", b"more", b"end"]))


def fail_fast_in_frame(prefix, total):
    """One text frame whose first bytes are invalid, its payload sent in two
    writes with a pause. Closing before the frame is complete is the strict
    behaviour; closing only after it is NON-STRICT (informational)."""
    def run(c):
        p = c.open()
        data = prefix + text_payload(total - len(prefix))
        f = frame(OP_TEXT, data)
        cut = len(f) - len(data) + len(prefix)
        p.send(f[:cut])
        if c.expect_fail(p, (1007,), timeout=FAIL_FAST_WAIT, wait_only=True):
            return
        c.nonstrict(f"not fail-fast inside a frame: no close within {FAIL_FAST_WAIT:g} s of the invalid bytes")
        p.send(f[cut:])
        c.expect_fail(p, (1007,))
    return run


add("6.9.1", "fail fast inside one frame: invalid bytes first, rest of the payload after a pause",
    fail_fast_in_frame(KOSME + b"\xf4\x90\x80\x80", 4096))
add("6.9.2", "fail fast inside one frame: FF first, rest of the payload after a pause",
    fail_fast_in_frame(b"\xff", 4096))

# 7 -- close -----------------------------------------------------------------------


def close_then(frames, label):
    def run(c):
        p = c.open()
        p.send([frame(OP_CLOSE, close_payload(1000))] + list(frames))
        ev = c.next(p)
        if ev[0] != "close":
            raise Failed(f"expected the close reply, got {describe(ev)} ({label})")
        if ev[1] != 1000:
            c.nonstrict(f"close answered with {ev[1]}, expected 1000")
        c.expect_eof(p)
    return run


add("7.1.1", "text message then close: echo, then close 1000 and TCP close",
    echo([frame(OP_TEXT, "Hello, world!")], msg(OP_TEXT, "Hello, world!")))
add("7.1.2", "close then close again: one close back, TCP close", close_then([frame(OP_CLOSE, close_payload(1000))], "second close"))
add("7.1.3", "close then ping: no pong", close_then([frame(OP_PING, "after close")], "ping after close"))
add("7.1.4", "close then text: no echo", close_then([frame(OP_TEXT, "after close")], "text after close"))


def close_mid_message(c):
    """RFC 6455 §5.4: control frames may come between fragments; a close
    there ends the connection normally, the partial message is dropped."""
    p = c.open()
    p.send([frame(OP_TEXT, "never ", fin=False), frame(OP_CLOSE, close_payload(1000)), frame(OP_CONT, "finished")])
    ev = c.next(p)
    if ev[0] != "close":
        raise Failed(f"expected a close, got {describe(ev)}")
    if ev[1] != 1000:
        if ev[1] in FAILURE_CODES or ev[1] is None:
            c.nonstrict(f"close inside a fragmented message answered with {ev[1]}, expected 1000")
        else:
            raise Failed(f"close answered with {ev[1]}")
    c.expect_eof(p)


add("7.1.5", "close between fragments: close 1000, the partial message is not echoed", close_mid_message)


def close_chopped(c):
    p = c.open()
    c.close_normal(p, 1000, b"one byte at a time", chop=1)


add("7.1.6", "close frame sent one byte per write is answered", close_chopped)


def big_then_close(c):
    p = c.open()
    data = binary_payload(256 * 1024)
    p.send([frame(OP_BINARY, data), frame(OP_CLOSE, close_payload(1000))])
    ev = c.next(p)
    if ev[0] == "close":
        # RFC 6455 §5.5.1 lets an endpoint answer a close before it sends the
        # replies it owes; the message is then lost. Safe, not precise.
        c.nonstrict("the close reply came without the echo of the message before it")
    elif ev != msg(OP_BINARY, data):
        raise Failed(f"expected the echo of 256 KiB, got {describe(ev)}")
    else:
        ev = c.next(p)
    if ev[0] != "close" or ev[1] != 1000:
        raise Failed(f"expected close 1000 after the echo, got {describe(ev)}")
    c.expect_eof(p)


add("7.1.7", "256 KiB binary message and close in one write: the whole echo, then close 1000", big_then_close)


def close_case(payload, ok):
    def run(c):
        p = c.open()
        p.send(frame(OP_CLOSE, payload))
        ev = c.next(p)
        if ev[0] == "eof":
            raise Failed(f"TCP closed without answering the close (expected {ok})")
        if ev[0] != "close":
            raise Failed(f"expected a close frame, got {describe(ev)}")
        if ev[1] not in ok:
            if ev[1] in FAILURE_CODES or ev[1] in (None, 1000):
                c.nonstrict(f"close answered with {ev[1]}, expected {' or '.join(map(str, ok))}")
            else:
                raise Failed(f"close answered with {ev[1]}, expected {ok}")
        c.expect_eof(p)
    return run


add("7.2.1", "close without payload: empty close or 1000 back, TCP close", close_case(b"", (None, 1000)))
add("7.2.2", "close with a 1-byte payload is refused with 1002",
    fail_after([frame(OP_CLOSE, b"\x03")]))
add("7.2.3", "close 1000 without reason: 1000 back", close_case(close_payload(1000), (1000,)))
add("7.2.4", "close 1000 with a reason: 1000 back", close_case(close_payload(1000, "Goodbye"), (1000,)))
add("7.2.5", "close 1000 with a 123-byte reason (payload 125): 1000 back",
    close_case(close_payload(1000, "*" * 123), (1000,)))
add("7.2.6", "close 1000 with a 124-byte reason (payload 126) is refused with 1002",
    fail_after([frame(OP_CLOSE, close_payload(1000, "*" * 124))]))
add("7.2.7", "fragmented close frame is refused with 1002",
    fail_after([frame(OP_CLOSE, close_payload(1000), fin=False), frame(OP_CONT, b"")]))
add("7.3.1", "close reason with invalid UTF-8 is refused with 1007",
    fail_after([frame(OP_CLOSE, close_payload(1000) + b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80edited")],
               codes=(1007,)))
add("7.3.2", "close reason '\u03ba\u1f79\u03c3\u03bc\u03b5' (valid UTF-8): 1000 back",
    close_case(close_payload(1000) + KOSME, (1000,)))
add("7.3.3", "close reason ending in a truncated sequence is refused with 1007",
    fail_after([frame(OP_CLOSE, close_payload(1000) + KOSME + b"\xce")], codes=(1007,)))

VALID_CODES = [1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 3999, 4000, 4999]
for i, code in enumerate(VALID_CODES, 1):
    add(f"7.4.{i}", f"close with valid code {code} is echoed",
        close_case(close_payload(code, f"code {code}"), (code,)))
INVALID_CODES = [0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535]
for i, code in enumerate(INVALID_CODES, 1):
    add(f"7.5.{i}", f"close with invalid code {code} is refused with 1002",
        fail_after([frame(OP_CLOSE, close_payload(code))]))

# 9 -- size --------------------------------------------------------------------------

MIB16 = 16 * 1024 * 1024


def big_echo(c):
    p = c.open()
    data = text_payload(MIB16)
    if not p.send(frame(OP_TEXT, data), timeout=BIG_TIMEOUT):
        raise Failed(f"sending 16 MiB failed: {p.send_error}")
    c.expect(p, msg(OP_TEXT, data), timeout=BIG_TIMEOUT)
    c.close_normal(p)


add("9.1.1", "text message of 16 MiB is echoed intact", big_echo)
add("9.1.2", "binary message of 1 MiB in 16 fragments is echoed intact",
    echo(fragments(OP_BINARY, binary_payload(1 << 20), [1 << 16] * 15), msg(OP_BINARY, binary_payload(1 << 20))))


def too_big(declared, first=b""):
    """Declare a frame longer than the limit and send only its start; a server
    should refuse from the header (1009) rather than buffer 16 MiB first."""
    def run(c):
        p = c.open()
        if first:
            p.send(frame(OP_BINARY, first, fin=False), timeout=BIG_TIMEOUT)
        p.send(frame(OP_CONT if first else OP_BINARY, b"\x00" * 1024, length=declared))
        if c.expect_fail(p, (1009,), wait_only=True):
            return
        c.nonstrict("no close from the frame header alone; sent the whole payload")
        p.send(b"\x00" * (declared - 1024), timeout=BIG_TIMEOUT)
        c.expect_fail(p, (1009,), timeout=BIG_TIMEOUT)
    return run


add("9.2.1", "a frame declaring 16 MiB + 1 byte is refused with 1009", too_big(MIB16 + 1))
add("9.2.2", "a message growing past 16 MiB over two fragments is refused with 1009",
    too_big(MIB16 - (1 << 20) + 1, first=binary_payload(1 << 20)))

# H -- opening handshake ----------------------------------------------------------------


def expect_status(c, raw, ok, nonstrict=(), chop=None, need_header=None):
    peer, status, reason, hdrs = c.http(raw, chop=chop)
    if status is None:
        raise Failed(f"no HTTP response: {reason}")
    if status in ok:
        pass
    elif status in nonstrict:
        c.nonstrict(f"answered {status} {reason}, expected {' or '.join(map(str, ok))}")
    else:
        raise Failed(f"answered {status} {reason}, expected {' or '.join(map(str, ok))}")
    if need_header and status in ok:
        name, value = need_header
        if value not in hdrs.get(name.lower(), []):
            c.nonstrict(f"{status} without '{name}: {value}' (had {hdrs.get(name.lower())})")
    return peer, status, hdrs


def handshake_ok(drop=(), headers=None, chop=None, check=None):
    def run(c):
        key = new_key()
        peer, status, reason, hdrs = c.http(c.request(key=key, drop=drop, headers=headers), chop=chop)
        if status is None:
            raise Failed(f"no HTTP response: {reason}")
        c.check_101(status, reason, hdrs, key)
        if check:
            check(c, hdrs)
        peer.send(frame(OP_TEXT, "after the handshake"))
        c.expect(peer, msg(OP_TEXT, "after the handshake"))
        c.close_normal(peer)
    return run


def no_protocol(c, hdrs):
    if "sec-websocket-protocol" in hdrs:
        raise Failed(f"server chose a subprotocol it does not speak: {hdrs['sec-websocket-protocol']}")


def no_extension(c, hdrs):
    if "sec-websocket-extensions" in hdrs:
        raise Failed(f"server accepted an extension that was not offered or unknown: {hdrs['sec-websocket-extensions']}")


add("H.1", "valid upgrade: 101, Sec-WebSocket-Accept, Upgrade: websocket, Connection: Upgrade, no extension",
    handshake_ok(check=no_extension))
add("H.2", "'Connection: keep-alive, Upgrade' is accepted",
    handshake_ok(drop=("connection",), headers=[("Connection", "keep-alive, Upgrade")]))
add("H.3", "'Upgrade: WebSocket' (other case) is accepted",
    handshake_ok(drop=("upgrade",), headers=[("Upgrade", "WebSocket")]))
def lower_case_names(c):
    key = new_key()
    raw = c.request(key=key).decode("latin-1").split("\r\n")
    raw = [raw[0]] + [l.split(":", 1)[0].lower() + ":" + l.split(":", 1)[1] if ":" in l else l for l in raw[1:]]
    peer, status, reason, hdrs = c.http("\r\n".join(raw).encode("latin-1"))
    c.check_101(status, reason, hdrs, key)
    c.close_normal(peer)


add("H.4", "header names in lower case are accepted", lower_case_names)
add("H.5", "GET /ws without Upgrade and Connection headers gets 400",
    lambda c: expect_status(c, c.request(drop=("upgrade", "connection")), (400,), (426,)))
add("H.6", "Upgrade: websocket without Connection: Upgrade gets 400",
    lambda c: expect_status(c, c.request(drop=("connection",)), (400,), (426,)))
add("H.7", "Sec-WebSocket-Version: 8 gets 426 with Sec-WebSocket-Version: 13",
    lambda c: expect_status(c, c.request(drop=("sec-websocket-version",), headers=[("Sec-WebSocket-Version", "8")]),
                            (426,), (400,), need_header=("Sec-WebSocket-Version", "13")))
add("H.8", "missing Sec-WebSocket-Version gets 426 (400 is non-strict)",
    lambda c: expect_status(c, c.request(drop=("sec-websocket-version",)), (426,), (400,),
                            need_header=("Sec-WebSocket-Version", "13")))
add("H.9", "missing Sec-WebSocket-Key gets 400",
    lambda c: expect_status(c, c.request(drop=("sec-websocket-key",)), (400,)))
add("H.10", "Sec-WebSocket-Key decoding to 15 bytes gets 400",
    lambda c: expect_status(c, c.request(key=base64.b64encode(os.urandom(15)).decode()), (400,)))
add("H.11", "Sec-WebSocket-Key that is not base64 gets 400",
    lambda c: expect_status(c, c.request(key="not base64 at all!!!!!!!"), (400,)))
add("H.12", "POST with upgrade headers gets 405 (400 is non-strict)",
    lambda c: expect_status(c, c.request(method="POST"), (405,), (400,)))
add("H.13", "HTTP/1.0 upgrade request gets 400",
    lambda c: expect_status(c, c.request(version="HTTP/1.0"), (400,), (426, 505)))
add("H.14", "a 9 KiB header gets 431",
    lambda c: expect_status(c, c.request(headers=[("X-Filler", "a" * 9216)]), (431,), (400, 413)))
add("H.15", "100 headers of 100 bytes (head over 8 KiB) get 431",
    lambda c: expect_status(c, c.request(headers=[(f"X-Filler-{i:03d}", "b" * 84) for i in range(100)]),
                            (431,), (400, 413)))
add("H.16", "upgrade request sent one byte per write gets 101", handshake_ok(chop=1))
add("H.17", "upgrade to an unknown path gets 404",
    lambda c: expect_status(c, c.request(path="/no-such-endpoint"), (404,)))
add("H.18", "Sec-WebSocket-Protocol offered, none spoken: 101 without a protocol header",
    handshake_ok(headers=[("Sec-WebSocket-Protocol", "chat, superchat")], check=no_protocol))
add("H.19", "unknown extension offered: 101 without an extensions header",
    handshake_ok(headers=[("Sec-WebSocket-Extensions", "x-luaws-unknown; foo=1")], check=no_extension))


def pipelined(c):
    key = new_key()
    peer, status, reason, hdrs = c.http(c.request(key=key), extra=frame(OP_TEXT, "right behind the head"))
    c.check_101(status, reason, hdrs, key)
    c.expect(peer, msg(OP_TEXT, "right behind the head"))
    c.close_normal(peer)


add("H.20", "handshake and a masked text frame in one write: 101, then the echo", pipelined)


def root_page(c):
    raw = f"GET / HTTP/1.1\r\nHost: {c.host}:{c.port}\r\n\r\n".encode()
    peer, status, hdrs = expect_status(c, raw, (200,))
    ctype = ",".join(hdrs.get("content-type", []))
    if "text/html" not in ctype:
        c.nonstrict(f"GET / Content-Type is {ctype!r}, expected text/html")


add("H.21", "plain GET / serves an HTML page (200)", root_page)
add("H.22", "plain GET of an unknown path gets 404",
    lambda c: expect_status(c, f"GET /no-such-page HTTP/1.1\r\nHost: {c.host}\r\n\r\n".encode(), (404,)))
add("H.23", "an Origin header from a browser is accepted by the echo app",
    handshake_ok(headers=[("Origin", "http://127.0.0.1")]))


def query_string(c):
    key = new_key()
    peer, status, reason, hdrs = c.http(c.request(key=key, path=c.path + "?x=1"))
    c.check_101(status, reason, hdrs, key)
    c.close_normal(peer)


add("H.24", "a query string on /ws is accepted", query_string)


# ---------------------------------------------------------------------------
# Runner

def parse_url(url):
    if not url.startswith("ws://"):
        raise ValueError("only ws:// URLs are supported")
    rest = url[5:]
    hostport, _, path = rest.partition("/")
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError("URL needs an explicit host:port")
    return host.strip("[]"), int(port), "/" + path


def run_case(target, cid, desc, fn):
    c = Case(target)
    try:
        fn(c)
        result = "NON-STRICT" if c.notes else "OK"
        detail = "; ".join(c.notes) if c.notes else "ok"
    except Failed as exc:
        result, detail = "FAILED", str(exc)
        if c.notes:
            detail += " (also: " + "; ".join(c.notes) + ")"
    except Exception as exc:   # a bug in a case or an unexpected socket state
        result, detail = "FAILED", f"client error {type(exc).__name__}: {exc}"
    finally:
        c.cleanup()
    return {"id": cid, "desc": desc, "result": result, "detail": detail}


def main(argv):
    args = argv[1:]
    prefix, listing = "", False
    url = None
    i = 0
    while i < len(args):
        a = args[i]
        if a == "--case" and i + 1 < len(args):
            prefix = args[i + 1]
            i += 2
            continue
        if a == "--list":
            listing = True
        elif a.startswith("--case="):
            prefix = a[len("--case="):]
        elif url is None and not a.startswith("--"):
            url = a
        else:
            print(__doc__.split("\n\n")[1], file=sys.stderr)
            return 2
        i += 1
    selected = [(cid, d, f) for cid, d, f in CASES if cid == prefix or cid.startswith(prefix)]
    if prefix and prefix[-1].isdigit():
        # "--case 1.1" means 1.1 and 1.1.x, not 1.10
        selected = [(cid, d, f) for cid, d, f in selected if cid == prefix or cid[len(prefix)] == "."]
    if listing:
        for cid, desc, _ in selected:
            print(json.dumps({"id": cid, "desc": desc}))
        return 0
    if url is None:
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    try:
        target = parse_url(url)
    except ValueError as exc:
        print(f"suite.py: {exc}", file=sys.stderr)
        return 2
    start = time.monotonic()
    for cid, desc, fn in selected:
        if time.monotonic() - start > SUITE_DEADLINE:
            out = {"id": cid, "desc": desc, "result": "FAILED",
                   "detail": f"not run: the suite passed its {SUITE_DEADLINE:g} s deadline"}
        else:
            out = run_case(target, cid, desc, fn)
        print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
