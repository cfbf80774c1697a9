#!/usr/bin/python3
# SPDX-License-Identifier: MIT
#
# sigterm_traffic.py PORT SEED SECONDS [WORKERS]
#
# Conformance-like traffic against an echo server at 127.0.0.1:PORT/ws for
# spec/hardening/sigterm_spec.lua, which sends the server SIGTERM at a random
# moment while this runs. WORKERS threads (default 6) each run random
# scenarios (random.Random(SEED + worker)) one after another: small and big
# echoes, fragmented messages with a ping between the fragments, pings,
# handshakes sent in pieces or abandoned, frames cut off or stalled, a close
# frame with data behind it, clients that never read, half-closes, and
# clients that never answer the server's close. A worker stops once a
# connect is refused (the server stopped listening) or after SECONDS.
#
# Every echo that arrives is compared with what was sent, in order, as it
# comes. Prints one JSON line at the end:
#   {"phase": "done", "scenarios": {name: runs}, "closes": {code: count},
#    "ends": {how: count}, "echoes": N, "bad": N, "bad_list": [...],
#    "cut": N, "cut_by": {name: N}, "errors": {name/kind: count}, "refused": N,
#    "stuck": threads still running at the end}
# bad: an echo that differs from what was sent, or a frame that breaks
# RFC 6455 (never acceptable); cut: a reading client whose stream ended
# without a close frame or inside a frame (what a grace period that ran out
# does). Exit status 0 unless the driver itself failed.
import json
import os
import random
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rawws  # noqa: E402

KiB = 1024


class Tally:
    def __init__(self):
        self.lock = threading.Lock()
        self.scenarios, self.closes, self.ends, self.errors, self.cut_by = {}, {}, {}, {}, {}
        self.echoes = self.bad = self.cut = self.refused = 0
        self.bad_list = []

    @staticmethod
    def _inc(d, k, n=1):
        d[k] = d.get(k, 0) + n

    def ran(self, name):
        with self.lock:
            self._inc(self.scenarios, name)

    def error(self, name, kind):
        with self.lock:
            self._inc(self.errors, "%s/%s" % (name, kind))

    def result(self, name, r, reading=True):
        """r: a rawws.read_all dict."""
        with self.lock:
            self.echoes += r["echoes"]
            self._inc(self.closes, str(r["close"]))
            self._inc(self.ends, r["end"])
            bad = r["bad"] + len(r["flaws"])
            if bad:
                self.bad += bad
                if len(self.bad_list) < 10:
                    self.bad_list.append({"scenario": name, "bad_list": r["bad_list"], "flaws": r["flaws"]})
            if reading and (r["close"] is None or r["trailing"]):
                self.cut += 1
                self._inc(self.cut_by, name)


def text_or_binary(rng, size):
    if rng.random() < 0.5:
        return rawws.TEXT, bytes(rng.choice(b"abcdefghijklmnopqrstuvwxyz ") for _ in range(size))
    return rawws.BINARY, rng.randbytes(size)


def expect(msgs):
    return lambda i: msgs[i] if i < len(msgs) else None


class Worker:
    def __init__(self, port, seed, tally, stop, deadline):
        self.port, self.rng, self.tally, self.stop, self.deadline = port, random.Random(seed), tally, stop, deadline

    def connect(self, **kw):
        """The opening handshake; a failure other than a refused connect
        (which ends the worker) is reported as a handshake error."""
        try:
            return rawws.connect(self.port, "/ws", timeout=15, **kw)
        except ConnectionRefusedError:
            raise
        except OSError as e:
            raise rawws.HandshakeError(type(e).__name__)

    # -- scenarios: each a conversation; what the server does is read back --
    def small(self):
        c = self.connect()
        msgs = [text_or_binary(self.rng, self.rng.randint(0, 300)) for _ in range(self.rng.randint(1, 20))]
        wire = [rawws.frame(op, p) for op, p in msgs] + [rawws.close_frame(1000, "done")]
        if self.rng.random() < 0.5:
            c.send(b"".join(wire))
        else:
            for w in wire:
                c.send(w)
        c.close_sent = True
        return c, msgs, True

    def big(self):
        c = self.connect()
        msgs = [(rawws.BINARY, self.rng.randbytes(self.rng.choice([64 * KiB, 256 * KiB, 1024 * KiB])))]
        c.send(rawws.frame(*msgs[0]))
        if self.rng.random() < 0.5:
            time.sleep(self.rng.uniform(0, 0.1))   # the echo is on its way when the close goes
        c.send(rawws.close_frame(1000))
        c.close_sent = True
        return c, msgs, True

    def fragmented(self):
        c = self.connect()
        op, payload = text_or_binary(self.rng, self.rng.randint(1, 40 * KiB))
        cuts = sorted(self.rng.sample(range(1, len(payload) + 1), min(len(payload), self.rng.randint(1, 5))))
        pieces, at = [], 0
        for cut in cuts:
            pieces.append(payload[at:cut])
            at = cut
        pieces[-1] += payload[at:]
        for k, piece in enumerate(pieces):
            c.send(rawws.frame(op if k == 0 else rawws.CONT, piece, fin=(k == len(pieces) - 1)))
            if k == 0 and self.rng.random() < 0.7:
                c.send(rawws.frame(rawws.PING, b"between fragments"))
            if self.rng.random() < 0.3:
                time.sleep(self.rng.uniform(0, 0.05))
        c.send(rawws.close_frame(1000))
        c.close_sent = True
        return c, [(op, payload)], True

    def pings(self):
        c = self.connect()
        for k in range(self.rng.randint(1, 10)):
            c.send(rawws.frame(rawws.PING, b"ping %d" % k))
        c.send(rawws.close_frame(1000))
        c.close_sent = True
        return c, [], True

    def handshake_pieces(self):
        sock = socket.create_connection(("127.0.0.1", self.port), timeout=15)
        req = rawws.request(self.port, "/ws", "dGhlIHNhbXBsZSBub25jZQ==")
        cut = self.rng.randint(1, len(req) - 1)
        sock.sendall(req[:cut])
        time.sleep(self.rng.uniform(0, 0.3))
        if self.rng.random() < 0.5:
            sock.close()   # abandoned in the middle of its head
            return None
        sock.sendall(req[cut:] + rawws.frame(rawws.TEXT, "after a slow head") + rawws.close_frame(1000))
        got = bytearray()
        while b"\r\n\r\n" not in got:
            chunk = sock.recv(4096)
            if not chunk:
                sock.close()
                return None   # the server went away before answering: fine in a shutdown
            got += chunk
        if not got.startswith(b"HTTP/1.1 101"):
            raise rawws.HandshakeError(bytes(got[:40]).decode("latin-1"))
        c = rawws.Conn(sock)
        c.buf += got[got.index(b"\r\n\r\n") + 4:]
        c.close_sent = True
        return c, [(rawws.TEXT, b"after a slow head")], True

    def partial_frame(self):
        c = self.connect()
        payload = self.rng.randbytes(self.rng.randint(10, 8 * KiB))
        f = rawws.frame(rawws.BINARY, payload)
        cut = self.rng.randint(1, len(f) - 1)
        c.send(f[:cut])
        time.sleep(self.rng.uniform(0, 0.3))
        what = self.rng.random()
        if what < 0.4:   # the rest comes late
            c.send(f[cut:] + rawws.close_frame(1000))
            c.close_sent = True
            return c, [(rawws.BINARY, payload)], True
        if what < 0.7:   # gone in the middle of a frame
            c.sock.close()
            return None
        return c, [], False   # stalls there: only the server can end it

    def close_in_flight(self):
        c = self.connect()
        msgs = [(rawws.TEXT, b"just before the close")]
        c.send(rawws.frame(*msgs[0]) + rawws.close_frame(1000, "bye") + rawws.frame(rawws.TEXT, "after the close"))
        c.close_sent = True
        return c, msgs, True

    def never_reads(self):
        c = self.connect()
        # up to 10 MiB of echoes: past what the kernel takes, so that some
        # wait in the server's queue when the grace runs out
        for _ in range(self.rng.randint(1, 160)):
            c.send(rawws.frame(rawws.BINARY, self.rng.randbytes(64 * KiB)))
        self.stop.wait(self.rng.uniform(0.2, 3))
        c.sock.close()
        return None

    def half_close(self):
        c = self.connect()
        msgs = [text_or_binary(self.rng, self.rng.choice([16, 1000, 64 * KiB])) for _ in range(self.rng.randint(1, 10))]
        c.send(b"".join(rawws.frame(op, p) for op, p in msgs))
        c.sock.shutdown(socket.SHUT_WR)
        c.close_sent = True   # it cannot answer a close any more
        return c, msgs, True

    def never_answers(self):
        c = self.connect()
        msgs = [(rawws.TEXT, b"then silence")]
        c.send(rawws.frame(*msgs[0]))
        c.sock.settimeout(self.rng.uniform(0.5, 3))
        c.close_sent = True   # read_all must not answer the server's close
        return c, msgs, False

    SCENARIOS = ["small", "small", "big", "fragmented", "pings", "handshake_pieces", "partial_frame",
                 "close_in_flight", "never_reads", "half_close", "never_answers"]

    def run(self):
        while not self.stop.is_set() and time.monotonic() < self.deadline:
            name = self.rng.choice(self.SCENARIOS)
            self.tally.ran(name)
            try:
                conv = getattr(self, name)()
                if conv is None:
                    continue
                c, msgs, reading = conv
                r = rawws.read_all(c, expect(msgs), answer_close=not c.close_sent)
                c.sock.close()
                self.tally.result(name, r, reading)
            except ConnectionRefusedError:
                with self.tally.lock:
                    self.tally.refused += 1
                self.stop.set()   # the server no longer listens: its shutdown began
                return
            except rawws.HandshakeError as e:
                self.tally.error(name, "handshake " + str(e)[:40])
            except OSError as e:
                self.tally.error(name, type(e).__name__)


def main():
    port, seed, seconds = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
    workers = int(sys.argv[4]) if len(sys.argv) > 4 else 6
    tally, stop = Tally(), threading.Event()
    deadline = time.monotonic() + seconds
    threads = [threading.Thread(target=Worker(port, seed * 100 + k, tally, stop, deadline).run, daemon=True)
               for k in range(workers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(max(0, deadline + 30 - time.monotonic()))
    still = sum(1 for t in threads if t.is_alive())
    with tally.lock:
        print(json.dumps({"phase": "done", "scenarios": tally.scenarios, "closes": tally.closes,
                          "ends": tally.ends, "echoes": tally.echoes, "bad": tally.bad,
                          "bad_list": tally.bad_list, "cut": tally.cut, "cut_by": tally.cut_by, "errors": tally.errors,
                          "refused": tally.refused, "stuck": still}), flush=True)


if __name__ == "__main__":
    main()
