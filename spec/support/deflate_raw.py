#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""A raw permessage-deflate client for spec/integration/deflate_spec.lua:
frames no library would send (a compressed ping, RSV1 on a continuation, a
corrupt deflate stream, text that inflates to invalid UTF-8, a bomb), and a
reader that shows each frame's RSV1 bit. Python's zlib compresses and
inflates; the frames are built by spec/support/rawws.py.

Usage: deflate_raw.py CASE PORT PATH [ARG] | deflate_raw.py fake_server ANSWERS

Prints one JSON line: {"case", "answer": the 101's Sec-WebSocket-Extensions,
"frames": [{"op", "rsv1", "fin", "len", "data": inflated text or hex}] (data
frames, in order), "close": the server's close code (null: none came),
"end": how the stream ended, ...}. Exit 1 with a line on stderr when the
handshake fails.

The offer is "permessage-deflate; client_max_window_bits", or
$DEFLATE_RAW_OFFER when set.

Cases:
  echo         one compressed text, one compressed binary; the echoes
  empty        a compressed empty message (payload 0x00), then "after" plain
  empty_payload  a compressed text, a TEXT with RSV1 and no payload at all, the
               first text again (over the same window unless
               client_no_context_takeover was agreed)
  kept_tail    a compressed text, "hello" compressed with its sync flush's
               00 00 ff ff kept on, the first text again
  threshold    sends "go"; the server answers a small and a large message
  control      a ping with RSV1 set (must be 1002)
  rsv1_cont    uncompressed TEXT (no FIN), then a CONT with RSV1 (1002)
  rsv1_cont2   compressed TEXT (no FIN), then a CONT with RSV1 (1002)
  corrupt      TEXT with RSV1 whose payload is no deflate stream (1002)
  corrupt_bin  the same as BINARY (1002)
  bad_utf8     TEXT with RSV1 that inflates to invalid UTF-8 (1007)
  bomb         ARG MiB (default 1024) of zeros in one compressed BINARY frame
               of about ARG KiB, sent in 16 KiB writes until the server answers
  bomb_frag    the same, one frame per MiB
  upload_frag  ARG MiB (default 64) the same way; reads the one answer
  fragmented   a compressed TEXT in three frames, a ping between; the echo
  bytewise     a compressed TEXT in frames of one byte each; the echo
  size         ARG: one compressed TEXT that inflates to ARG bytes; its echo
               (data cut to 16 bytes, echo_len) or the close
  bfinal       two messages each ending in a BFINAL block, then a usual one
  bad_utf8_frag  compressed TEXT whose second frame inflates to invalid UTF-8 (1007)
  abort_mid    ARG connections, each sends the first frame of a compressed
               message and closes its socket; prints {"aborted": n}
  fake_server  ARG: a file of answers, one line each: the header ("-": none),
               then optionally a tab and what to send after the 101 (good,
               rsv1, ctrl, rsv1_cont, corrupt, bad_utf8, bomb); serves on a
               free port (prints "listening PORT"): a request for /N gets a
               101 with answer N, and "offer N VALUE" is printed; the client's
               first frame gets a close (its own code echoed when it is a
               close: "client N closed CODE" is printed)
  rsv1_plain   TEXT with RSV1 on a connection that agreed no extension (1002)
"""

import json
import os
import select
import socket
import struct
import sys
import zlib
import base64
import hashlib

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rawws  # noqa: E402

TIMEOUT = 20.0
RSV1 = 4   # rawws.frame's rsv is the three bits RSV1..RSV3: RSV1 is 0b100
OFFER = "permessage-deflate; client_max_window_bits"
TAIL = b"\x00\x00\xff\xff"


def handshake(port, path, offer):
    sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    key = base64.b64encode(os.urandom(16)).decode()
    req = ("GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
           "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n" % (path, port, key))
    if offer:
        req += "Sec-WebSocket-Extensions: %s\r\n" % offer
    sock.sendall((req + "\r\n").encode())
    got = bytearray()
    while b"\r\n\r\n" not in got:
        chunk = sock.recv(4096)
        if not chunk:
            raise rawws.HandshakeError("EOF before the response head: %r" % bytes(got))
        got += chunk
    n = got.index(b"\r\n\r\n") + 4
    head = got[:n].decode("latin-1")
    if not head.startswith("HTTP/1.1 101"):
        raise rawws.HandshakeError(head.split("\r\n")[0])
    accept = base64.b64encode(hashlib.sha1(key.encode() + rawws.GUID).digest()).decode()
    if ("sec-websocket-accept: " + accept).lower() not in head.lower():
        raise rawws.HandshakeError("bad Sec-WebSocket-Accept")
    answer = None
    for line in head.split("\r\n")[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "sec-websocket-extensions":
            answer = value.strip()
    c = rawws.Conn(sock)
    c.buf += got[n:]
    return c, answer


def deflate(data, wbits=15):
    """One message's payload as RFC 7692 §7.2.1 sends it: a sync flush, tail removed."""
    co = zlib.compressobj(6, zlib.DEFLATED, -wbits)
    out = co.compress(data) + co.flush(zlib.Z_SYNC_FLUSH)
    assert out.endswith(TAIL)
    return out[:-4]


class Deflater:
    """The client's compressor, kept across messages unless the answer says
    client_no_context_takeover."""

    def __init__(self, answer):
        self.reset_each = bool(answer) and "client_no_context_takeover" in answer
        self.co = None

    def message(self, data, keep_tail=False):
        if self.co is None or self.reset_each:
            self.co = zlib.compressobj(6, zlib.DEFLATED, -15)
        out = self.co.compress(data) + self.co.flush(zlib.Z_SYNC_FLUSH)
        assert out.endswith(TAIL)
        return out if keep_tail else out[:-4]


class Inflater:
    """The server's messages, inflated with the context the answer allows."""

    def __init__(self, answer):
        self.reset_each = bool(answer) and "server_no_context_takeover" in answer
        self.d = zlib.decompressobj(-15)

    def message(self, payload):
        if self.reset_each:
            self.d = zlib.decompressobj(-15)
        return self.d.decompress(payload + TAIL)


def show(op, data):
    if op == rawws.TEXT:
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            return "hex:" + data.hex()
    return "hex:" + data[:64].hex()


def read_until_close(c, out, inflater, want_data=None):
    """Read frames: data messages (inflated) go to out["frames"]; stop at the
    close frame (answered), at the end of the stream, or after want_data
    data messages."""
    parts, first = [], None
    while True:
        try:
            fin, op, payload, flaw = c.read_frame()
        except rawws.Ended as e:
            out["end"] = e.how
            return out
        if flaw == "reserved bits set":
            flaw = None   # RSV1 is ours to read here; rawws only knows plain frames
        if flaw:
            out.setdefault("flaws", []).append(flaw)
        if op == rawws.CLOSE:
            out["close"] = struct.unpack(">H", payload[:2])[0] if len(payload) >= 2 else 1005
            out["reason"] = payload[2:].decode("utf-8", "replace")
            try:
                c.send(rawws.close_frame(out["close"] if out["close"] != 1005 else None))
            except OSError:
                pass
            out["end"] = "close"
            return out
        if op == rawws.PONG:
            out["pongs"] = out.get("pongs", 0) + 1
            continue
        if op == rawws.PING:
            continue
        out.setdefault("raw", []).append({"op": op, "rsv1": c.last_rsv1, "fin": fin, "len": len(payload)})
        if op in (rawws.TEXT, rawws.BINARY):
            first, parts = {"op": op, "rsv1": c.last_rsv1}, [payload]
        else:
            parts.append(payload)
        if not fin:
            continue
        data = b"".join(parts)
        if first["rsv1"]:
            data = inflater.message(data)
        out["frames"].append({"op": first["op"], "rsv1": first["rsv1"], "fin": True,
                              "len": sum(len(p) for p in parts), "data": show(first["op"], data)})
        if want_data is not None and len(out["frames"]) >= want_data:
            return out


class Conn(rawws.Conn):
    """rawws.Conn that remembers the RSV1 bit of the frame it read last."""

    def read_frame(self):
        self._fill(2)
        self.last_rsv1 = bool(self.buf[0] & 0x40)
        return super().read_frame()


def connect(port, path, offer=OFFER):
    c, answer = handshake(port, path, offer)
    conn = Conn(c.sock)
    conn.buf = c.buf
    return conn, answer


def bomb(c, out, mib, fragmented=False):
    # A full flush after each MiB of zeros: the block that follows needs
    # nothing before it, so one MiB's output repeated is a valid stream
    # that inflates to mib MiB. Deflate's ratio ends near 1032:1, so that
    # is about a KiB per MiB. fragmented: one frame per MiB (RSV1 on the first).
    co = zlib.compressobj(9, zlib.DEFLATED, -15)
    unit = co.compress(bytes(1 << 20)) + co.flush(zlib.Z_FULL_FLUSH)
    assert unit.endswith(TAIL)
    payload = unit * mib
    out["compressed_bytes"] = len(payload)
    out["inflates_to"] = mib << 20
    # the message ends without the flush's 4-byte tail (RFC 7692 §7.2.1)
    if fragmented:
        wire = b"".join(rawws.frame(rawws.BINARY if i == 0 else rawws.CONT, unit if i < mib - 1 else unit[:-4],
                                    fin=i == mib - 1, rsv=RSV1 if i == 0 else 0) for i in range(mib))
    else:
        wire = rawws.frame(rawws.BINARY, payload[:-4], rsv=RSV1)
    sent = 0
    c.sock.setblocking(True)
    while sent < len(wire):
        try:
            c.sock.sendall(wire[sent:sent + 16384])
        except (BrokenPipeError, ConnectionResetError):
            out["send_error"] = True
            break
        sent += min(16384, len(wire) - sent)
        r, _, _ = select.select([c.sock], [], [], 0.02)
        if r:   # the server answered (its close, we expect): stop sending
            break
    out["sent_bytes"] = sent


def server_frame(op, payload=b"", fin=True, rsv=0):
    """One unmasked server frame."""
    n = len(payload)
    b0 = (0x80 if fin else 0) | (rsv << 4) | op
    if n < 126:
        head = struct.pack(">BB", b0, n)
    elif n < 65536:
        head = struct.pack(">BBH", b0, 126, n)
    else:
        head = struct.pack(">BBQ", b0, 127, n)
    return head + payload


def after_101(action):
    """What the fake server sends right after its 101, by name."""
    if action == "good":
        return server_frame(rawws.TEXT, deflate(b"hello from the fake server " * 10), rsv=RSV1)
    if action == "rsv1":
        return server_frame(rawws.TEXT, deflate(b"hello"), rsv=RSV1)
    if action == "ctrl":
        return server_frame(rawws.PING, deflate(b"ping"), rsv=RSV1)
    if action == "rsv1_cont":
        return server_frame(rawws.TEXT, b"abc", fin=False) + server_frame(rawws.CONT, b"def", rsv=RSV1)
    if action == "corrupt":
        return server_frame(rawws.BINARY, b"\xff\xff\xff\xff\xff\xff", rsv=RSV1)
    if action == "bad_utf8":
        return server_frame(rawws.TEXT, deflate(b"valid, then \xff\xfe not UTF-8"), rsv=RSV1)
    if action == "bomb":
        co = zlib.compressobj(9, zlib.DEFLATED, -15)
        unit = co.compress(bytes(1 << 20)) + co.flush(zlib.Z_FULL_FLUSH)
        return server_frame(rawws.BINARY, (unit * 1024)[:-4], rsv=RSV1)
    return b""


def fake_server(answers_file):
    import socketserver
    import threading
    with open(answers_file) as f:
        lines = [line.rstrip("\n").split("\t") for line in f]
    answers = [ln[0] for ln in lines]
    actions = [ln[1] if len(ln) > 1 else "" for ln in lines]
    lock = threading.Lock()

    class Handler(socketserver.BaseRequestHandler):
        def handle(self):
            sock = self.request
            sock.settimeout(TIMEOUT)
            got = b""
            while b"\r\n\r\n" not in got:
                chunk = sock.recv(4096)
                if not chunk:
                    return
                got += chunk
            head = got.split(b"\r\n\r\n", 1)[0].decode("latin-1")
            lines = head.split("\r\n")
            path = lines[0].split(" ")[1]
            key, offer = None, None
            for line in lines[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "sec-websocket-key":
                    key = value.strip()
                elif name.strip().lower() == "sec-websocket-extensions":
                    offer = value.strip()
            n = int(path.strip("/"))
            with lock:
                print("offer %d %s" % (n, offer), flush=True)
            accept = base64.b64encode(hashlib.sha1(key.encode() + rawws.GUID).digest()).decode()
            resp = ("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                    "Sec-WebSocket-Accept: %s\r\n" % accept)
            if answers[n] != "-":
                resp += "Sec-WebSocket-Extensions: %s\r\n" % answers[n]
            sock.sendall((resp + "\r\n").encode())
            after = after_101(actions[n])
            try:
                if after:
                    sock.sendall(after)
                # the client's first frame (its close, or a message): we
                # answer with a close (1000), or echo its close code
                got = b""
                while len(got) < 2:
                    chunk = sock.recv(4096)
                    if not chunk:
                        break
                    got += chunk
                code = None
                if len(got) >= 2 and got[0] & 0x0F == rawws.CLOSE and got[1] & 0x7F >= 2:
                    while len(got) < 8:
                        chunk = sock.recv(4096)
                        if not chunk:
                            break
                        got += chunk
                    if len(got) >= 8:
                        code = struct.unpack(">H", bytes(a ^ b for a, b in zip(got[6:8], got[2:4])))[0]
                with lock:
                    print("client %d closed %s" % (n, code), flush=True)
                if got:
                    sock.sendall(server_frame(rawws.CLOSE, struct.pack(">H", code or 1000)))
            except OSError:
                pass

    class Server(socketserver.ThreadingTCPServer):
        daemon_threads = True
        allow_reuse_address = True

    srv = Server(("127.0.0.1", 0), Handler)
    print("listening %d" % srv.server_address[1], flush=True)
    srv.serve_forever()


def abort_mid(port, path, n):
    """n connections that each send the first frame of a compressed message
    and vanish (TCP closed, no close frame)."""
    co = zlib.compressobj(6, zlib.DEFLATED, -15)
    first = co.compress(b"never finished " * 200) + co.flush(zlib.Z_SYNC_FLUSH)
    done = 0
    for _ in range(n):
        c, answer = connect(port, path)
        if not answer:
            break
        c.send(rawws.frame(rawws.TEXT, first, fin=False, rsv=RSV1))
        c.sock.close()
        done += 1
    print(json.dumps({"case": "abort_mid", "aborted": done}), flush=True)


def main():
    if len(sys.argv) == 5 and sys.argv[1] == "abort_mid":
        abort_mid(int(sys.argv[2]), sys.argv[3], int(sys.argv[4]))
        return 0
    if len(sys.argv) == 3 and sys.argv[1] == "fake_server":
        fake_server(sys.argv[2])
        return 0
    if len(sys.argv) < 4:
        print(__doc__, file=sys.stderr)
        return 2
    case, port, path = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    arg = sys.argv[4] if len(sys.argv) > 4 else None
    out = {"case": case, "answer": None, "frames": [], "close": None, "end": None}
    try:
        offer = os.environ.get("DEFLATE_RAW_OFFER", OFFER)
        c, answer = connect(port, path, None if case == "rsv1_plain" else offer)
    except (rawws.HandshakeError, OSError) as e:
        print("handshake: %s" % e, file=sys.stderr)
        return 1
    out["answer"] = answer
    inflater = Inflater(answer)
    send = c.send
    try:
        if case == "echo":
            send(rawws.frame(rawws.TEXT, deflate("hello, compressed world \u20ac".encode()), rsv=RSV1))
            send(rawws.frame(rawws.BINARY, deflate(bytes(range(256)) * 8), rsv=RSV1))
            read_until_close(c, out, inflater, want_data=2)
        elif case == "empty":
            send(rawws.frame(rawws.TEXT, b"\x00", rsv=RSV1))
            send(rawws.frame(rawws.TEXT, b"after"))
            read_until_close(c, out, inflater, want_data=2)
        elif case in ("empty_payload", "kept_tail"):
            # messages already on a block boundary before the tail goes
            # back (Python websockets and node ws take both); the messages
            # around them share the compressor's window
            co = Deflater(answer)
            first = b"the first message, over the same window, " * 8
            z = co.message(first)
            out["first_len"] = len(z)
            send(rawws.frame(rawws.TEXT, z, rsv=RSV1))
            if case == "empty_payload":
                send(rawws.frame(rawws.TEXT, b"", rsv=RSV1))
            else:
                send(rawws.frame(rawws.TEXT, co.message(b"hello", keep_tail=True), rsv=RSV1))
            again = co.message(first)
            out["again_len"] = len(again)
            send(rawws.frame(rawws.TEXT, again, rsv=RSV1))
            read_until_close(c, out, inflater, want_data=3)
        elif case == "threshold":
            send(rawws.frame(rawws.TEXT, b"go"))
            read_until_close(c, out, inflater, want_data=2)
        elif case == "control":
            send(rawws.frame(rawws.PING, deflate(b"ping"), rsv=RSV1))
            read_until_close(c, out, inflater)
        elif case == "rsv1_cont":
            send(rawws.frame(rawws.TEXT, b"abc", fin=False))
            send(rawws.frame(rawws.CONT, b"def", rsv=RSV1))
            read_until_close(c, out, inflater)
        elif case == "rsv1_cont2":
            co = zlib.compressobj(6, zlib.DEFLATED, -15)
            p1 = co.compress(b"abc" * 100) + co.flush(zlib.Z_SYNC_FLUSH)
            p2 = co.compress(b"def" * 100) + co.flush(zlib.Z_SYNC_FLUSH)
            send(rawws.frame(rawws.TEXT, p1, fin=False, rsv=RSV1))
            send(rawws.frame(rawws.CONT, p2[:-4], rsv=RSV1))
            read_until_close(c, out, inflater)
        elif case in ("corrupt", "corrupt_bin"):
            # 0xff: a final block of the reserved type 3 (RFC 1951 §3.2.3)
            op = rawws.TEXT if case == "corrupt" else rawws.BINARY
            send(rawws.frame(op, b"\xff\xff\xff\xff\xff\xff", rsv=RSV1))
            read_until_close(c, out, inflater)
        elif case == "bad_utf8":
            send(rawws.frame(rawws.TEXT, deflate(b"valid, then \xff\xfe not UTF-8"), rsv=RSV1))
            read_until_close(c, out, inflater)
        elif case in ("bomb", "bomb_frag"):
            bomb(c, out, int(arg or 1024), fragmented=case == "bomb_frag")
            read_until_close(c, out, inflater)
        elif case == "upload_frag":
            # ARG MiB of zeros, one compressed frame per MiB; the answer
            bomb(c, out, int(arg or 64), fragmented=True)
            read_until_close(c, out, inflater, want_data=1)
        elif case == "fragmented":
            co = zlib.compressobj(6, zlib.DEFLATED, -15)
            parts = [b"first part, " * 50, "second part \u20ac, ".encode() * 50, b"third part." * 50]
            z = [co.compress(p) + co.flush(zlib.Z_SYNC_FLUSH) for p in parts]
            z[-1] = z[-1][:-4]
            send(rawws.frame(rawws.TEXT, z[0], fin=False, rsv=RSV1))
            send(rawws.frame(rawws.PING, b"between"))
            send(rawws.frame(rawws.CONT, z[1], fin=False))
            send(rawws.frame(rawws.CONT, z[2]))
            out["sent_text"] = b"".join(parts).decode()
            read_until_close(c, out, inflater, want_data=1)
        elif case == "bytewise":
            # one compressed text cut into frames of one byte each: the
            # inflater's input ends anywhere, its output mid-character
            text = "".join("Hello %d, \u20ac%d and \U0001f600 world %x; " % (i, i * i, i * 7919)
                           for i in range(60)).encode()
            z = deflate(text)
            for i in range(len(z)):
                send(rawws.frame(rawws.TEXT if i == 0 else rawws.CONT, z[i:i + 1], fin=i == len(z) - 1,
                                 rsv=RSV1 if i == 0 else 0))
            out["sent_text"] = text.decode()
            out["sent_frames"] = len(z)
            read_until_close(c, out, inflater, want_data=1)
        elif case == "size":
            # one compressed text of ARG bytes (one letter repeated)
            send(rawws.frame(rawws.TEXT, deflate(b"a" * int(arg)), rsv=RSV1))
            read_until_close(c, out, inflater, want_data=1)
            if out["frames"]:
                out["echo_len"] = len(out["frames"][0]["data"])
                out["frames"][0]["data"] = out["frames"][0]["data"][:16]
        elif case == "bfinal":
            # two messages, each a whole deflate stream ending in a block with
            # BFINAL set (RFC 7692 §7.2.3.4), each from a fresh compressor
            for text in (b"first message, " * 20, b"second message, " * 20):
                co = zlib.compressobj(6, zlib.DEFLATED, -15)
                send(rawws.frame(rawws.TEXT, co.compress(text) + co.flush(zlib.Z_FINISH), rsv=RSV1))
            send(rawws.frame(rawws.TEXT, deflate(b"third, the usual way " * 10), rsv=RSV1))
            read_until_close(c, out, inflater, want_data=3)
        elif case == "bad_utf8_frag":
            # invalid UTF-8 in the second frame's inflated bytes: 1007
            co = zlib.compressobj(6, zlib.DEFLATED, -15)
            z1 = co.compress(b"valid start, " * 20) + co.flush(zlib.Z_SYNC_FLUSH)
            z2 = co.compress(b"then \xc3\x28 broken") + co.flush(zlib.Z_SYNC_FLUSH)
            send(rawws.frame(rawws.TEXT, z1, fin=False, rsv=RSV1))
            send(rawws.frame(rawws.CONT, z2[:-4]))
            read_until_close(c, out, inflater)
        elif case == "rsv1_plain":
            send(rawws.frame(rawws.TEXT, deflate(b"hello"), rsv=RSV1))
            read_until_close(c, out, inflater)
        else:
            print("unknown case %s" % case, file=sys.stderr)
            return 2
    except (BrokenPipeError, ConnectionResetError) as e:
        out["end"] = out["end"] or "reset"
        out["error"] = type(e).__name__
    except zlib.error as e:
        out["inflate_error"] = str(e)
    except socket.timeout:
        out["end"] = "timeout"
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
