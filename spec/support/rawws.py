# SPDX-License-Identifier: MIT
#
# rawws.py: a raw WebSocket client side for the spec helpers (ender.py,
# sigterm_traffic.py) that must control what goes into one write and when
# the FIN goes out, which no client library lets us do. Plain sockets,
# masked client frames (RFC 6455 §5.3), the handshake of §4.1, and a reader
# of the server's frames that tells how the conversation ended.
#
# Not a WebSocket library: no extensions, no TLS, and it trusts nothing it
# reads (a masked or reserved-bit server frame is reported, not obeyed).
import base64
import hashlib
import os
import random
import socket
import struct
import time

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
TEXT, BINARY, CONT, CLOSE, PING, PONG = 1, 2, 0, 8, 9, 10


class HandshakeError(Exception):
    pass


def mask(data, key):
    """data XOR the 4-byte key repeated (RFC 6455 §5.3), a whole buffer at a time."""
    n = len(data)
    if n == 0:
        return b""
    k = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "little") ^ int.from_bytes(k, "little")).to_bytes(n, "little")


def frame(opcode, payload=b"", fin=True, key=None, rsv=0):
    """One masked client frame."""
    if isinstance(payload, str):
        payload = payload.encode()
    key = key if key is not None else os.urandom(4)
    n = len(payload)
    b0 = (0x80 if fin else 0) | (rsv << 4) | opcode
    if n < 126:
        head = struct.pack(">BB", b0, 0x80 | n)
    elif n < 65536:
        head = struct.pack(">BBH", b0, 0x80 | 126, n)
    else:
        head = struct.pack(">BBQ", b0, 0x80 | 127, n)
    return head + key + mask(payload, key)


def close_frame(code=None, reason=b""):
    if code is None:
        return frame(CLOSE, b"")
    if isinstance(reason, str):
        reason = reason.encode()
    return frame(CLOSE, struct.pack(">H", code) + reason)


def request(port, path, key, host="127.0.0.1"):
    return ("GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n" % (path, host, port, key)).encode()


class Conn:
    """A client connection after the 101; buf holds bytes read past the head."""

    def __init__(self, sock):
        self.sock = sock
        self.buf = bytearray()
        self.recv_size = 1 << 20   # bytes per recv
        self.recv_delay = 0.0      # seconds to sleep after each recv (a slow reader)
        self.close_sent = False

    def send(self, data):
        self.sock.sendall(data)

    def _fill(self, n):
        """Read until buf holds n bytes; raise Ended when the stream ends first."""
        while len(self.buf) < n:
            try:
                chunk = self.sock.recv(self.recv_size)
            except socket.timeout:
                raise Ended("timeout", len(self.buf))
            except (ConnectionResetError, BrokenPipeError):
                raise Ended("reset", len(self.buf))
            if not chunk:
                raise Ended("eof", len(self.buf))
            self.buf += chunk
            if self.recv_delay:
                time.sleep(self.recv_delay)

    def read_frame(self):
        """-> (fin, opcode, payload, flaw): flaw names a rule the server broke, or None."""
        self._fill(2)
        b0, b1 = self.buf[0], self.buf[1]
        n, at = b1 & 0x7F, 2
        if n == 126:
            self._fill(4)
            n, at = struct.unpack_from(">H", self.buf, 2)[0], 4
        elif n == 127:
            self._fill(10)
            n, at = struct.unpack_from(">Q", self.buf, 2)[0], 10
        flaw = None
        if b1 & 0x80:
            flaw = "masked server frame"
            self._fill(at + 4)
            at += 4
        elif b0 & 0x70:
            flaw = "reserved bits set"
        self._fill(at + n)
        payload = bytes(self.buf[at:at + n])
        del self.buf[:at + n]
        return bool(b0 & 0x80), b0 & 0x0F, payload, flaw


class Ended(Exception):
    def __init__(self, how, trailing):
        super().__init__(how)
        self.how = how            # "eof", "reset", "timeout"
        self.trailing = trailing  # bytes of an unfinished frame left when it ended


def connect(port, path="/ws", host="127.0.0.1", timeout=30, head=None):
    """TCP connect and the opening handshake; -> Conn. head: extra bytes sent
    in the same write as the request (frames right behind the handshake)."""
    sock = socket.create_connection((host, port), timeout=timeout)
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(request(port, path, key, host) + (head or b""))
    got = bytearray()
    while b"\r\n\r\n" not in got:
        chunk = sock.recv(4096)
        if not chunk:
            sock.close()
            raise HandshakeError("EOF before the response head: %r" % bytes(got))
        got += chunk
        if len(got) > 16384:
            raise HandshakeError("response head too long")
    headlen = got.index(b"\r\n\r\n") + 4
    head_text = got[:headlen].decode("latin-1")
    if not head_text.startswith("HTTP/1.1 101"):
        sock.close()
        raise HandshakeError(head_text.split("\r\n")[0])
    accept = base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()
    if ("sec-websocket-accept: " + accept).lower() not in head_text.lower():
        sock.close()
        raise HandshakeError("bad Sec-WebSocket-Accept")
    c = Conn(sock)
    c.buf += got[headlen:]
    return c


def read_all(conn, expected=None, answer_close=False, max_bad=5):
    """Read the server's frames until the stream ends.

    expected(i) -> (opcode, payload) of the i-th message we should get, or
    None when no more are expected. A data message counts as an echo while
    every one so far equalled its expected one, in order; the first one that
    does not (or is not expected at all) and each after it go to bad.
    answer_close: echo the server's close code back (the close handshake
    done from our side), as a well-behaved client does.

    Returns a dict: echoes, data (data messages received), bad (count),
    bad_list (the first few, described), close (code, None if no close frame
    came; 1005 for an empty one), reason, after_close (frames after the
    close frame), pings, flaws, end ("eof", "reset", "timeout"), trailing
    (bytes of a frame cut by the end), order (the kinds of frames as they
    came, run-length encoded: [["data", 10], ["close", 1]]).
    """
    r = {"echoes": 0, "data": 0, "bad": 0, "bad_list": [], "close": None, "reason": None,
         "after_close": 0, "pings": 0, "flaws": [], "end": None, "trailing": 0, "order": []}
    parts, part_op, in_order = [], None, True

    def note(kind):
        if r["order"] and r["order"][-1][0] == kind:
            r["order"][-1][1] += 1
        else:
            r["order"].append([kind, 1])

    while True:
        try:
            fin, op, payload, flaw = conn.read_frame()
        except Ended as e:
            r["end"], r["trailing"] = e.how, e.trailing
            if parts:
                r["trailing"] += sum(len(p) for p in parts)
                note("unfinished message")
            return r
        if flaw and len(r["flaws"]) < 5:
            r["flaws"].append(flaw)
        if r["close"] is not None:
            r["after_close"] += 1
            note("after close")
            continue
        if op == CLOSE:
            note("close")
            if len(payload) >= 2:
                r["close"] = struct.unpack(">H", payload[:2])[0]
                r["reason"] = payload[2:].decode("utf-8", "replace")
            else:
                r["close"] = 1005
                r["reason"] = ""
            if answer_close and not conn.close_sent:
                conn.close_sent = True
                try:
                    conn.send(close_frame(r["close"] if r["close"] != 1005 else None))
                except OSError:
                    pass
            continue
        if op == PING:
            r["pings"] += 1
            note("ping")
            continue
        if op == PONG:
            note("pong")
            continue
        if op in (TEXT, BINARY):
            part_op, parts = op, [payload]
        elif op == CONT and parts:
            parts.append(payload)
        else:
            r["flaws"].append("unexpected opcode %d" % op)
            continue
        if not fin:
            continue
        msg = parts[0] if len(parts) == 1 else b"".join(parts)
        parts = []
        r["data"] += 1
        note("data")
        want = expected(r["echoes"]) if (expected and in_order) else None
        if want is not None and want[0] == part_op and want[1] == msg:
            r["echoes"] += 1
            continue
        in_order = False
        r["bad"] += 1
        if len(r["bad_list"]) < max_bad:
            desc = {"at": r["data"] - 1, "opcode": part_op, "len": len(msg), "head": msg[:16].hex()}
            if want is not None:
                desc["want_len"] = len(want[1])
                desc["want_head"] = want[1][:16].hex()
            r["bad_list"].append(desc)


# Deterministic, distinct message contents, so that a reader can check an
# echo without keeping what it sent: content(c, i, size) is the same bytes
# for the same (client, index, size) in every process.
_BLOCK = random.Random(6455).randbytes((2 << 20) + 4096)


def content(c, i, size):
    head = struct.pack(">II", c, i)
    if size <= len(head):
        return head[:size]
    room = len(_BLOCK) - (size - len(head)) + 1
    off = (c * 7919 + i * 104729) % room
    return head + _BLOCK[off:off + size - len(head)]


# The messages the in-process Lua servers of the specs send on request:
# the index (4 bytes, big-endian), then bytes 0..250 cycled from i % 251
# (spec/integration/endings_spec.lua builds the same).
_CYCLE = bytes(range(251))


def pattern(i, size):
    body = _CYCLE * ((size // 251) + 2)
    off = i % 251
    return struct.pack(">I", i) + body[off:off + size - 4]
