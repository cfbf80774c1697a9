#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Many raw WebSocket subscribers in one asyncio process, for the fan-out
specs (spec/hardening/fanout_spec.lua) against spec/support/pubsub_server.lua.

Usage:
  pubsub_clients.py --port P --count N [--path /sub?topic=all] [--never K]
                    [--paused K] [--concurrency 200] [--timeout 300] [--drain 5]

The first K connections (--never) never read after their handshake; the next
K (--paused) do not read until SIGUSR1; the rest read from the start. The
never-readers and the paused ones set SO_RCVBUF=1024 and TCP_MAXSEG=536
before they connect, so the kernel holds only some tens of KiB for them and
what is published to them stays in the server's queues. Plain sockets: no
WebSocket library, so 10,000 connections cost little.

What the server publishes (pubsub_server.lua, "publish") is binary messages
"SEQ:SIZE:" (8 digits each) followed by SIZE - 18 times chr(65 + SEQ % 26);
then a text "end:N", N being how many were published. Every connection
checks each message: the next sequence number (0, 1, ...), the exact size,
every byte. A reader is complete once it has "end:N" after exactly N intact
messages in order.

It prints "ready CONNECTED FAILED" once every handshake is done, then, once
every reader (and every paused one, after SIGUSR1) is complete or --timeout
seconds passed, one JSON line:
  {"connected", "failed", "readers", "complete", "intact", "end", "min", "max",
   "errors": [first few], "closes": {code: n} (close frames the readers got),
   "never": [{"messages", "intact", "close", "eof"}], "seconds"}
At the end the never-readers read what reached them until EOF (at most
--drain seconds): "messages" intact ones in order, "close" the code of a
close frame if one came, "eof" whether the server had closed the socket.
"""

import argparse
import asyncio
import base64
import json
import os
import signal
import socket
import struct
import sys
import time

TEXT, BINARY, CLOSE, PING = 1, 2, 8, 9


class Sub(asyncio.Protocol):
    def __init__(self, kind, done):
        self.kind = kind            # "reader", "paused", "never"
        self.done = done            # called once complete
        self.transport = None
        self.head = bytearray()
        self.buf = bytearray()
        self.opened = asyncio.get_running_loop().create_future()
        self.next = 0
        self.end = None
        self.error = None
        self.close_code = None
        self.eof = False
        self.complete = False
        self.lost = asyncio.get_running_loop().create_future()

    def connection_made(self, transport):
        self.transport = transport

    def fail(self, why):
        if self.error is None:
            self.error = why

    def data_received(self, data):
        if not self.opened.done():
            self.head += data
            i = self.head.find(b"\r\n\r\n")
            if i < 0:
                if len(self.head) > 8192:
                    self.opened.set_exception(RuntimeError("head too long"))
                return
            status = bytes(self.head[:i]).split(b"\r\n", 1)[0]
            rest = self.head[i + 4:]
            self.head = None
            if not status.startswith(b"HTTP/1.1 101"):
                self.opened.set_exception(RuntimeError(status.decode("latin1")))
                return
            if self.kind != "reader":
                self.transport.pause_reading()
            self.opened.set_result(True)
            data = rest
            if not data:
                return
        self.buf += data
        self.parse()

    def parse(self):
        b = self.buf
        off, n = 0, len(b)
        while n - off >= 2:
            b0, b1 = b[off], b[off + 1]
            ln = b1 & 0x7F
            p = off + 2
            if b1 & 0x80:
                self.fail("masked server frame")
            if ln == 126:
                if n - p < 2:
                    break
                ln = struct.unpack_from(">H", b, p)[0]
                p += 2
            elif ln == 127:
                if n - p < 8:
                    break
                ln = struct.unpack_from(">Q", b, p)[0]
                p += 8
            if n - p < ln:
                break
            op = b0 & 0x0F
            if not (b0 & 0x80):
                self.fail("fragmented message (opcode %d)" % op)
            payload = bytes(b[p:p + ln])
            off = p + ln
            self.frame(op, payload)
        if off:
            del b[:off]

    def frame(self, op, p):
        if op == BINARY:
            self.message(p)
        elif op == TEXT:
            if p.startswith(b"end:"):
                self.end = int(p[4:])
                if self.next != self.end:
                    self.fail("end:%d after %d messages" % (self.end, self.next))
                elif self.error is None and not self.complete:
                    self.complete = True
                    self.done(self)
            else:
                self.fail("unexpected text %r" % p[:40])
        elif op == CLOSE:
            self.close_code = struct.unpack(">H", p[:2])[0] if len(p) >= 2 else 1005
            self.transport.close()
        elif op == PING:
            pass   # the specs turn the server's pings off
        else:
            self.fail("opcode %d" % op)

    def message(self, p):
        seq = self.next
        self.next += 1
        if self.error is not None:
            return
        if len(p) < 18 or p[8:9] != b":" or p[17:18] != b":":
            self.fail("message %d: bad head %r" % (seq, p[:18]))
            return
        try:
            got, size = int(p[0:8]), int(p[9:17])
        except ValueError:
            self.fail("message %d: bad head %r" % (seq, p[:18]))
            return
        if got != seq:
            self.fail("message %d: got sequence number %d" % (seq, got))
        elif size != len(p):
            self.fail("message %d: %d bytes, its head says %d" % (seq, len(p), size))
        elif p.count(65 + seq % 26, 18) != size - 18:
            self.fail("message %d: a byte differs" % seq)

    def connection_lost(self, exc):
        self.eof = True
        if not self.lost.done():
            self.lost.set_result(True)


def request(port, path):
    key = base64.b64encode(os.urandom(16)).decode()
    return ("GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n"
            % (path, port, key)).encode()


async def open_one(loop, args, kind, done, sem):
    async with sem:
        for attempt in range(5):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            if kind != "reader":
                s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
                s.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, 536)
            s.setblocking(False)
            try:
                await asyncio.wait_for(loop.sock_connect(s, ("127.0.0.1", args.port)), 20)
                _, proto = await loop.create_connection(lambda: Sub(kind, done), sock=s)
                proto.transport.write(request(args.port, args.path))
                await asyncio.wait_for(proto.opened, 20)
                return proto
            except (OSError, asyncio.TimeoutError, RuntimeError) as e:
                s.close()
                last = e
                await asyncio.sleep(0.2 * (attempt + 1))
        print("connect failed: %r" % (last,), file=sys.stderr)
        return None


def widen(sub):
    """A larger receive buffer once the connection reads, so that what
    waited for it comes quickly."""
    sock = sub.transport.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        except OSError:
            pass


async def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--path", default="/sub?topic=all")
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--never", type=int, default=0)
    ap.add_argument("--paused", type=int, default=0)
    ap.add_argument("--concurrency", type=int, default=200)
    ap.add_argument("--timeout", type=float, default=300)
    ap.add_argument("--drain", type=float, default=5)
    args = ap.parse_args()
    loop = asyncio.get_running_loop()
    t0 = time.monotonic()

    kinds = ["never"] * args.never + ["paused"] * args.paused
    kinds += ["reader"] * (args.count - len(kinds))
    waiting = {"n": 0}
    all_done = loop.create_future()
    resumed = {"paused": False}

    def done(sub):
        waiting["n"] -= 1
        if waiting["n"] == 0 and not all_done.done():
            all_done.set_result(True)

    sem = asyncio.Semaphore(args.concurrency)
    subs = await asyncio.gather(*(open_one(loop, args, k, done, sem) for k in kinds))
    ok = [s for s in subs if s is not None]
    waiting["n"] += sum(1 for s in ok if s.kind != "never" and not s.complete)
    if waiting["n"] == 0 and not all_done.done():
        all_done.set_result(True)
    print("ready %d %d" % (len(ok), len(subs) - len(ok)), flush=True)

    def resume():
        resumed["paused"] = True
        for s in ok:
            if s.kind == "paused" and s.transport and not s.transport.is_closing():
                widen(s)
                s.transport.resume_reading()
    loop.add_signal_handler(signal.SIGUSR1, resume)

    try:
        await asyncio.wait_for(asyncio.shield(all_done), args.timeout)
    except asyncio.TimeoutError:
        pass

    never = [s for s in ok if s.kind == "never"]
    for s in never:
        if not s.eof:
            widen(s)
            s.transport.resume_reading()
    if never:
        try:
            await asyncio.wait_for(asyncio.gather(*(s.lost for s in never)), args.drain)
        except asyncio.TimeoutError:
            pass

    readers = [s for s in ok if s.kind != "never"]
    counts = [s.next for s in readers]
    ends = {}
    closes = {}
    for s in readers:
        ends[s.end] = ends.get(s.end, 0) + 1
        if s.close_code is not None:
            closes[str(s.close_code)] = closes.get(str(s.close_code), 0) + 1
    errors = []
    for i, s in enumerate(readers):
        if s.error and len(errors) < 5:
            errors.append("%s #%d: %s" % (s.kind, i, s.error))
        if not s.complete and s.error is None and len(errors) < 5:
            errors.append("%s #%d: incomplete: %d messages, end %r, eof %s" % (s.kind, i, s.next, s.end, s.eof))
    common_end = max(ends.items(), key=lambda kv: kv[1])[0] if ends else None
    report = {
        "connected": len(ok), "failed": len(subs) - len(ok),
        "readers": len(readers), "complete": sum(1 for s in readers if s.complete),
        "intact": sum(1 for s in readers if s.error is None),
        "end": common_end, "min": min(counts) if counts else 0, "max": max(counts) if counts else 0,
        "errors": errors, "closes": closes,
        "never": [{"messages": s.next, "intact": s.error is None, "error": s.error,
                   "close": s.close_code, "eof": s.eof} for s in never],
        "resumed": resumed["paused"], "seconds": round(time.monotonic() - t0, 3),
    }
    for s in ok:
        if s.transport:
            s.transport.abort()
    print(json.dumps(report), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
