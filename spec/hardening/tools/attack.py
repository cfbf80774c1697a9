#!/usr/bin/python3
# SPDX-License-Identifier: MIT
#
# attack.py MODE --port PORT [options]: hostile peers for spec/hardening/.
#
# Raw sockets on 127.0.0.1 (no WebSocket library: these peers send what a
# correct one never would). Each mode prints one JSON object on its last line
# of stdout and exits 0, unless the attack itself could not run (the server
# refused the TCP connection, a handshake that should succeed did not).
# Frames are masked with the key 00 00 00 00, which leaves the payload as it
# is: the server must accept any key, and the peer stays fast enough to
# send hundreds of MiB.
#
# Modes (python3 attack.py MODE --help for the options):
#   slowloris     many sockets, each sending a request head one byte a second
#   endless-head  sockets sending a head that never ends (no CRLF CRLF)
#   bigframe      a frame header that announces a huge payload
#   utf8deep      a long fragmented text message with one bad byte deep inside
#   nonreader     echo traffic sent, never read
#   pingflood     pings sent, pongs never read
#   abandon       connections opened and dropped at every stage of the handshake
#   storm         many handshakes at once (max_connections)
#   resetmid      a reset (SO_LINGER 0) in the middle of a frame
#   silent        a peer that reads everything and answers nothing (no pongs)
#   emfile        connections until the server runs out of descriptors, then fewer
#   pipe          peers of /flood that vanish while the server writes to them
import argparse
import asyncio
import json
import select
import signal
import socket
import struct
import time

HOST = "127.0.0.1"
KEY = b"dGhlIHNhbXBsZSBub25jZQ=="
ZERO_MASK = b"\0\0\0\0"


def request(path="/ws"):
    return (b"GET " + path.encode() + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Upgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Key: " + KEY + b"\r\nSec-WebSocket-Version: 13\r\n\r\n")


def header(opcode, length, fin=True):
    """A masked (zero key) frame header announcing length payload bytes."""
    b0 = (0x80 if fin else 0) | opcode
    if length < 126:
        h = struct.pack("!BB", b0, 0x80 | length)
    elif length < 65536:
        h = struct.pack("!BBH", b0, 0x80 | 126, length)
    else:
        h = struct.pack("!BBQ", b0, 0x80 | 127, length)
    return h + ZERO_MASK


def frame(opcode, payload, fin=True):
    return header(opcode, len(payload), fin) + payload


def linger0(sock):
    """Make close() send a reset."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


def connect(port, timeout=10):
    s = socket.create_connection((HOST, port), timeout=timeout)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def read_head(sock, timeout=10):
    """Read a response head; returns (status or None, the bytes after it)."""
    sock.settimeout(timeout)
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = sock.recv(4096)
        if not chunk:
            break
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    try:
        return int(head.split(b" ", 2)[1]), rest
    except (IndexError, ValueError):
        return None, rest


def handshake(port, path="/ws"):
    s = connect(port)
    s.sendall(request(path))
    status, rest = read_head(s)
    if status != 101:
        raise SystemExit("handshake: status %r" % status)
    return s, rest


class FrameReader:
    """Server frames (unmasked) from a byte stream."""

    def __init__(self, data=b""):
        self.buf = bytearray(data)

    def feed(self, data):
        self.buf += data

    def frames(self):
        out = []
        while True:
            b = self.buf
            if len(b) < 2:
                return out
            opcode, n, at = b[0] & 0x0F, b[1] & 0x7F, 2
            if n == 126:
                if len(b) < 4:
                    return out
                n, at = struct.unpack("!H", b[2:4])[0], 4
            elif n == 127:
                if len(b) < 10:
                    return out
                n, at = struct.unpack("!Q", b[2:10])[0], 10
            if len(b) < at + n:
                return out
            out.append((opcode, bytes(b[at:at + n])))
            del b[:at + n]


def close_of(payload):
    """(code, reason) of a close frame's payload."""
    if len(payload) >= 2:
        return struct.unpack("!H", payload[:2])[0], payload[2:].decode("utf-8", "replace")
    return 1005, ""


def read_until_close(sock, reader, deadline, done=None):
    """Read frames until EOF, a reset, the deadline or, if given, done(res)
    is true (how is then "done"): the deadline only bounds the wait.
    Returns dict(close_code, close_reason, how, frames={opcode: count}, at)."""
    res = {"close_code": None, "close_reason": None, "how": "timeout", "frames": {}}
    while True:
        for op, payload in reader.frames():
            res["frames"][str(op)] = res["frames"].get(str(op), 0) + 1
            if op == 8 and res["close_code"] is None:
                res["close_code"], res["close_reason"] = close_of(payload)
                res["close_at"] = time.monotonic()
        if done and done(res):
            res["how"] = "done"
            return res
        left = deadline - time.monotonic()
        if left <= 0:
            return res
        sock.settimeout(left)
        try:
            chunk = sock.recv(1 << 20)
        except socket.timeout:
            return res
        except (ConnectionResetError, BrokenPipeError):
            res["how"] = "reset"
            return res
        if not chunk:
            res["how"] = "eof"
            return res
        reader.feed(chunk)


def send_for(sock, data, deadline):
    """Send data until done, an error, or the deadline (the peer stopped
    reading). Returns (bytes sent, "done" | "reset" | "pipe" | "blocked")."""
    sock.setblocking(False)
    view, sent = memoryview(data), 0
    try:
        while sent < len(data):
            left = deadline - time.monotonic()
            if left <= 0:
                return sent, "blocked"
            _, w, _ = select.select([], [sock], [], min(left, 0.5))
            if not w:
                continue
            try:
                sent += sock.send(view[sent:sent + (1 << 20)])
            except BlockingIOError:
                continue
        return sent, "done"
    except ConnectionResetError:
        return sent, "reset"
    except BrokenPipeError:
        return sent, "pipe"
    finally:
        sock.setblocking(True)


def summary(values):
    v = sorted(values)
    if not v:
        return {"n": 0}
    return {"n": len(v), "min": round(v[0], 4), "median": round(v[len(v) // 2], 4), "max": round(v[-1], 4)}


def emit(obj):
    print(json.dumps(obj, sort_keys=True), flush=True)


# ------------------------------------------------------------------ modes

async def slowloris_one(port, interval, t_end, results, connected, total):
    head = b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 4096
    r = {"sent": 0, "how": "open", "answer": b""}
    # From before connect(): the lifetime is never shorter than the server's
    # view of it (accept to drop).
    r["start"] = time.monotonic()
    try:
        reader, writer = await asyncio.open_connection(HOST, port)
    except OSError as e:
        r["how"] = "connect-failed: %s" % e
        del r["start"]
        results.append(r)
        return
    connected.append(r)
    if len(connected) == total:
        print("connected %d" % total, flush=True)
    try:
        while time.monotonic() < t_end:
            writer.write(head[r["sent"]:r["sent"] + 1])
            r["sent"] += 1
            try:
                data = await asyncio.wait_for(reader.read(4096), interval)
            except asyncio.TimeoutError:
                continue
            if not data:
                r["how"] = "eof"
                break
            r["answer"] += data
        else:
            r["how"] = "open"
    except (ConnectionResetError, BrokenPipeError):
        r["how"] = "reset"
    r["end"] = time.monotonic()
    writer.transport.abort()
    results.append(r)


def mode_slowloris(a):
    results, connected = [], []

    async def run():
        t_end = time.monotonic() + a.duration
        await asyncio.gather(*(slowloris_one(a.port, a.interval, t_end, results, connected, a.sockets)
                               for _ in range(a.sockets)))

    t0 = time.monotonic()
    asyncio.run(run())
    dropped = [r for r in results if r["how"] in ("eof", "reset")]
    emit({
        "sockets": a.sockets,
        "connected": sum(1 for r in results if "start" in r),
        "dropped": len(dropped),
        "still_open": sum(1 for r in results if r["how"] == "open"),
        "how": {h: sum(1 for r in results if r["how"] == h) for h in {r["how"] for r in results}},
        "answered": sum(1 for r in results if r["answer"]),
        "lifetime": summary([r["end"] - r["start"] for r in dropped]),
        "bytes_sent": summary([r["sent"] for r in results]),
        "connect_spread": round(max((r.get("start", t0) for r in results), default=t0) - t0, 4),
        "seconds": round(time.monotonic() - t0, 3),
    })


async def endless_one(port, kib, chunk, pause, results):
    r = {"status": None, "how": "open", "sent": 0, "sent_at_answer": None, "send_end": "done"}
    reader, writer = await asyncio.open_connection(HOST, port)
    t0 = time.monotonic()
    total = kib * 1024
    body = b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Endless: "
    got = bytearray()

    async def read_all():
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    r["how"] = "eof"
                    break
                if not got:
                    r["sent_at_answer"] = r["sent"]
                    r["answer_after"] = time.monotonic() - t0
                got.extend(data)
        except (ConnectionResetError, BrokenPipeError):
            r["how"] = "reset"
        r["end_after"] = time.monotonic() - t0

    rd = asyncio.ensure_future(read_all())
    try:
        writer.write(body)
        r["sent"] = len(body)
        while r["sent"] < total:
            n = min(chunk, total - r["sent"])
            writer.write(b"a" * n)
            await writer.drain()
            r["sent"] += n
            await asyncio.sleep(pause)
    except (ConnectionResetError, BrokenPipeError) as e:
        r["send_end"] = type(e).__name__
    try:
        await asyncio.wait_for(rd, 10)
    except asyncio.TimeoutError:
        r["how"] = "timeout"
    head = bytes(got).split(b"\r\n", 1)[0]
    try:
        r["status"] = int(head.split(b" ")[1])
    except (IndexError, ValueError):
        pass
    writer.transport.abort()
    results.append(r)


def mode_endless_head(a):
    results = []

    async def run():
        await asyncio.gather(*(endless_one(a.port, a.kib, a.chunk, a.pause, results)
                               for _ in range(a.sockets)))

    t0 = time.monotonic()
    asyncio.run(run())
    emit({
        "sockets": a.sockets,
        "status": {str(s): sum(1 for r in results if r["status"] == s) for s in {r["status"] for r in results}},
        "how": {h: sum(1 for r in results if r["how"] == h) for h in {r["how"] for r in results}},
        "send_end": {h: sum(1 for r in results if r["send_end"] == h) for h in {r["send_end"] for r in results}},
        "sent_at_answer": summary([r["sent_at_answer"] for r in results if r["sent_at_answer"] is not None]),
        "answer_after": summary([r["answer_after"] for r in results if "answer_after" in r]),
        "end_after": summary([r["end_after"] for r in results if "end_after" in r]),
        "sent": summary([r["sent"] for r in results]),
        "seconds": round(time.monotonic() - t0, 3),
    })


def mode_bigframe(a):
    s, rest = handshake(a.port)
    reader = FrameReader(rest)
    t0 = time.monotonic()
    s.sendall(header(a.opcode, a.announce) + b"x" * a.first)
    # until the close frame, at most --wait seconds: nothing else is sent meanwhile
    res = read_until_close(s, reader, time.monotonic() + a.wait, lambda r: r["close_code"] is not None)
    res["close_after"] = round(res.pop("close_at") - t0, 4) if "close_at" in res else None
    # then keep sending what the header announced, as far as the server lets us
    sent, how = send_for(s, b"y" * (a.then), time.monotonic() + a.wait + 10)
    res["sent_after"], res["send_end"] = sent, how
    # hold the connection open, so what the server keeps for it can be measured
    print("holding", flush=True)
    time.sleep(a.hold)
    linger0(s)
    s.close()
    emit(res)


def mode_utf8deep(a):
    s, rest = handshake(a.port)
    reader = FrameReader(rest)
    payload = bytearray(b"a" * a.total)
    payload[a.bad_at] = 0xFF
    data = bytearray()
    for i in range(0, a.total, a.fragment):
        part = bytes(payload[i:i + a.fragment])
        data += frame(1 if i == 0 else 0, part, fin=i + a.fragment >= a.total)
    t0 = time.monotonic()
    sent, how = send_for(s, bytes(data), time.monotonic() + 20)
    res = read_until_close(s, reader, time.monotonic() + a.wait)
    res["close_after"] = round(res.pop("close_at") - t0, 4) if "close_at" in res else None
    res["sent"], res["send_end"], res["message_bytes"] = sent, how, len(data)
    s.close()
    emit(res)


def mode_nonreader(a):
    """Send --mib MiB of --size messages, never reading; print "holding" and
    hold the connection, still not reading, for --hold seconds or until
    SIGUSR1 (released: "timeout" or "signal"); then read what came back."""
    signal.pthread_sigmask(signal.SIG_BLOCK, [signal.SIGUSR1])   # taken by sigtimedwait below
    s, rest = handshake(a.port)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, a.rcvbuf)
    msg = frame(2, b"m" * a.size)
    count = a.mib * 1024 * 1024 // a.size
    t0 = time.monotonic()
    sent, how = 0, "done"
    batch = msg * 16
    for _ in range(0, count, 16):
        n, how = send_for(s, batch, time.monotonic() + a.block)
        sent += n
        if how != "done":
            break
    send_seconds = time.monotonic() - t0
    print("holding", flush=True)
    released = "signal" if signal.sigtimedwait([signal.SIGUSR1], a.hold) else "timeout"
    # Only now read: what came back, and how the connection ended.
    reader = FrameReader(rest)
    res = read_until_close(s, reader, time.monotonic() + a.wait)
    res.pop("close_at", None)
    res.update(sent=sent, send_end=how, send_seconds=round(send_seconds, 3),
               messages_sent=sent // len(msg), released=released)
    s.close()
    emit(res)


def mode_pingflood(a):
    s, rest = handshake(a.port)
    big = b"p" * 125
    pings = bytearray()
    for i in range(a.count):
        pings += frame(9, big if i % a.big_every == 0 else b"%d" % i)
    t0 = time.monotonic()
    sent, how = send_for(s, bytes(pings), time.monotonic() + a.block)
    send_seconds = time.monotonic() - t0
    print("holding", flush=True)
    time.sleep(a.hold)   # keep the connection, read nothing
    res = {"pings": a.count, "bytes": len(pings), "sent": sent, "send_end": how,
           "send_seconds": round(send_seconds, 3)}
    reader = FrameReader(rest)
    # until every pong or a close frame came, at most --wait seconds
    fin = read_until_close(s, reader, time.monotonic() + a.wait,
                           lambda r: r["close_code"] is not None or r["frames"].get("10", 0) >= a.count)
    res.update(pongs=fin["frames"].get("10", 0), close_code=fin["close_code"], how=fin["how"])
    s.close()
    emit(res)


KINDS = ["fin", "rst", "half-head-fin", "half-head-rst", "head-rst", "open-half-frame-rst", "open-fin"]


def abandon_one(port, kind):
    s = socket.socket()
    s.connect((HOST, port))
    req = request()
    if kind in ("half-head-fin", "half-head-rst"):
        s.sendall(req[:len(req) // 2])
    elif kind == "head-rst":
        s.sendall(req)
    elif kind in ("open-half-frame-rst", "open-fin"):
        s.sendall(req)
        status, _ = read_head(s, 5)
        if status != 101:
            raise SystemExit("abandon: handshake got %r" % status)
        if kind == "open-half-frame-rst":
            s.sendall(header(2, 1000) + b"h" * 500)
    if kind.endswith("rst"):
        linger0(s)
    return s


def mode_abandon(a):
    counts = {k: 0 for k in KINDS}
    t0 = time.monotonic()
    done = 0
    while done < a.count:
        batch = []
        for i in range(min(a.batch, a.count - done)):
            kind = KINDS[(done + i) % len(KINDS)]
            batch.append(abandon_one(a.port, kind))
            counts[kind] += 1
        for s in batch:
            s.close()
        done += len(batch)
    emit({"count": done, "kinds": counts, "seconds": round(time.monotonic() - t0, 3)})


def mode_storm(a):
    statuses = {}
    t0 = time.monotonic()
    done = 0
    while done < a.count:
        socks = []
        for _ in range(min(a.batch, a.count - done)):
            s = connect(a.port)
            s.sendall(request())
            socks.append(s)
        for s in socks:
            try:
                status, _ = read_head(s, 10)
            except (ConnectionResetError, socket.timeout) as e:
                status = type(e).__name__
            statuses[str(status)] = statuses.get(str(status), 0) + 1
            s.close()
        done += len(socks)
    emit({"count": done, "status": statuses, "seconds": round(time.monotonic() - t0, 3)})


def mode_resetmid(a):
    for _ in range(a.count):
        s, _ = handshake(a.port)
        s.sendall(header(2, 1000) + b"r" * 500)
        time.sleep(a.pause)
        linger0(s)
        s.close()
    emit({"count": a.count})


def mode_silent(a):
    # From before connect(): the server's timers start later, so a time
    # measured here is never shorter than the server's.
    t0 = time.monotonic()
    s, rest = handshake(a.port)
    reader = FrameReader(rest)
    pings = []
    res = {"close_code": None, "close_reason": None, "how": "timeout"}
    deadline = t0 + a.wait
    while True:
        for op, payload in reader.frames():
            if op == 9:
                pings.append(round(time.monotonic() - t0, 4))
            elif op == 8 and res["close_code"] is None:
                res["close_code"], res["close_reason"] = close_of(payload)
                res["close_after"] = round(time.monotonic() - t0, 4)
        left = deadline - time.monotonic()
        if left <= 0:
            break
        s.settimeout(left)
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            break
        except ConnectionResetError:
            res["how"] = "reset"
            break
        if not chunk:
            res["how"] = "eof"
            break
        reader.feed(chunk)
    res["end_after"] = round(time.monotonic() - t0, 4)
    res["pings"] = pings
    s.close()
    emit(res)


def try_handshake(port, timeout):
    """Connect and send the request; (socket, True) once the 101 came within
    timeout, else (socket, False): the server has not accepted it (yet)."""
    s = connect(port)
    s.sendall(request())
    s.settimeout(timeout)
    try:
        head = s.recv(4096)
    except socket.timeout:
        return s, False
    if not head.startswith(b"HTTP/1.1 101 "):
        raise SystemExit("emfile: handshake got %r" % head[:40])
    return s, True


def echo_ok(s, timeout=2.0):
    msg = b"echo?"
    try:
        s.settimeout(timeout)
        s.sendall(frame(1, msg))
        reader, deadline = FrameReader(), time.monotonic() + timeout
        while time.monotonic() < deadline:
            chunk = s.recv(4096)
            if not chunk:
                return False
            reader.feed(chunk)
            for op, payload in reader.frames():
                if op == 1:
                    return payload == msg
    except (OSError, socket.timeout):
        return False
    return False


def mode_emfile(a):
    """Open connections (alternating between --port and --port2 if given)
    until the server stops answering handshakes (it is out of descriptors);
    echo on every open one; hold (print "at-limit"); close --free of them;
    then the pending ones must be accepted and answered, and a fresh one too."""
    ports = [a.port] + ([a.port2] if a.port2 else [])
    held, pending, misses, i = [], [], 0, 0
    while len(held) + len(pending) < a.max and misses < a.misses:
        port = ports[i % len(ports)]
        i += 1
        s, ok = try_handshake(port, a.step)
        if ok:
            held.append(s)
            misses = 0
        else:
            pending.append(s)
            misses += 1
    res = {"opened": len(held), "pending": len(pending)}
    res["echo_at_limit"] = sum(1 for s in held if echo_ok(s))
    print("at-limit %d %d" % (len(held), len(pending)), flush=True)
    time.sleep(a.hold)
    for s in held[:a.free]:
        s.close()
    held = held[a.free:]
    t0 = time.monotonic()
    later = 0
    for s in pending:
        s.settimeout(max(0.1, t0 + a.wait - time.monotonic()))
        try:
            if s.recv(4096).startswith(b"HTTP/1.1 101 "):
                later += 1
                held.append(s)
        except (socket.timeout, OSError):
            pass
    res["pending_answered"] = later
    res["pending_answered_after"] = round(time.monotonic() - t0, 3)
    res["echo_after"] = sum(1 for s in held if echo_ok(s))
    res["held_after"] = len(held)
    fresh = {}
    for port in ports:
        try:
            s, ok = try_handshake(port, a.wait)
        except OSError as e:
            ok = "error: %s" % e
        fresh[str(port)] = ok
        s.close()
    res["fresh"] = fresh
    for s in held:
        s.close()
    emit(res)


def mode_pipe(a):
    """Peers of /flood that vanish in three ways while the server writes:
    FIN then a reset with unread data (the server sees FIN, then writes into
    a reset socket: EPIPE), a bare reset, and a shutdown of both directions."""
    ways = {"fin-then-rst": 0, "rst": 0, "shut-rdwr": 0}
    t0 = time.monotonic()
    failed = None
    for i in range(a.count):
        try:
            s, _ = handshake(a.port, a.path)
            s.settimeout(5)
            got = 0
            while got < a.read:
                chunk = s.recv(65536)
                if not chunk:
                    break
                got += len(chunk)
        except (OSError, SystemExit) as e:   # the server went away
            failed = "peer %d: %s" % (i, e)
            break
        way = list(ways)[i % 3]
        if way == "fin-then-rst":
            s.shutdown(socket.SHUT_WR)
            time.sleep(a.pause)
            s.close()               # unread data: the kernel sends a reset
        elif way == "rst":
            linger0(s)
            s.close()
        else:
            s.shutdown(socket.SHUT_RDWR)
            time.sleep(a.pause)
            s.close()
        ways[way] += 1
    emit({"count": sum(ways.values()), "ways": ways, "failed": failed, "seconds": round(time.monotonic() - t0, 3)})


def main():
    p = argparse.ArgumentParser(description=__doc__)
    sub = p.add_subparsers(dest="mode", required=True)

    def mode(name, fn, **opts):
        m = sub.add_parser(name)
        m.add_argument("--port", type=int, required=True)
        for k, (typ, default) in opts.items():
            m.add_argument("--" + k.replace("_", "-"), type=typ, default=default)
        m.set_defaults(fn=fn)

    mode("slowloris", mode_slowloris, sockets=(int, 500), interval=(float, 1.0), duration=(float, 5.0))
    mode("endless-head", mode_endless_head, sockets=(int, 1), kib=(int, 100), chunk=(int, 1024),
         pause=(float, 0.01))
    mode("bigframe", mode_bigframe, announce=(int, 1 << 30), first=(int, 65536), then=(int, 0),
         opcode=(int, 2), wait=(float, 2.0), hold=(float, 0.0))
    mode("utf8deep", mode_utf8deep, total=(int, 8 << 20), fragment=(int, 65536), bad_at=(int, 7 << 20),
         wait=(float, 10.0))
    mode("nonreader", mode_nonreader, mib=(int, 200), size=(int, 65536), block=(float, 10.0),
         wait=(float, 10.0), rcvbuf=(int, 65536), hold=(float, 0.0))
    mode("pingflood", mode_pingflood, count=(int, 100000), big_every=(int, 10), block=(float, 20.0),
         hold=(float, 0.0), wait=(float, 5.0))
    mode("abandon", mode_abandon, count=(int, 10000), batch=(int, 100))
    mode("storm", mode_storm, count=(int, 1000), batch=(int, 100))
    mode("resetmid", mode_resetmid, count=(int, 1), pause=(float, 0.05))
    mode("silent", mode_silent, wait=(float, 5.0))
    mode("emfile", mode_emfile, port2=(int, 0), max=(int, 200), step=(float, 0.5), misses=(int, 5),
         hold=(float, 1.0), free=(int, 20), wait=(float, 3.0))
    mode("pipe", mode_pipe, count=(int, 60), read=(int, 65536), pause=(float, 0.002), path=(str, "/flood"))
    a = p.parse_args()
    a.fn(a)


if __name__ == "__main__":
    main()
