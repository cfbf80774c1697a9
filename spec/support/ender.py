#!/usr/bin/python3
# SPDX-License-Identifier: MIT
#
# ender.py MODE PORT [ARGS...]
#
# The peer side of spec/integration/endings_spec.lua: one way a conversation
# ends, over a raw socket (spec/support/rawws.py), so that the spec controls
# what goes into one write and when the FIN goes out. Prints JSON lines; the
# last one is the result (rawws.read_all's dict plus what was sent).
# Modes:
#   halfclose PORT PATH COUNT SIZE
#       COUNT binary messages of SIZE bytes (rawws.content(0, i, SIZE)),
#       then shutdown(SHUT_WR), and only then read everything.
#   msgclose PORT PATH SPLIT
#       a text message and a close frame (1000 "bye") in one write
#       (SPLIT=0), two writes 50 ms apart (1), or one write and at once
#       shutdown(SHUT_WR) (fin); then read.
#   fragclose PORT PATH SPLIT
#       two fragments of a text message (no FIN bit on either), then a close
#       frame (1000 "bye"), in one write (0), three (1), or one write and at
#       once shutdown(SHUT_WR) (fin); or the two fragments and shutdown
#       with no close frame (fin-only); then read.
#   slow PORT PATH COUNT SIZE CHUNK DELAY
#       asks the server for COUNT messages of SIZE bytes ("send COUNT
#       SIZE"; it sends rawws.pattern(i, SIZE)), then reads CHUNK bytes at
#       a time and sleeps DELAY seconds after each read; answers the close.
#   flood PORT PATH CLIENTS COUNT SIZE GOFILE [DELAY]
#       CLIENTS connections (a thread each) each send COUNT binary messages
#       of SIZE bytes (rawws.content(client, i, SIZE)) without reading.
#       Prints {"phase": "sent"} once every one has sent everything, waits
#       for GOFILE to exist and DELAY more seconds (default 0), then every
#       client reads its echoes (compared as they come), answers the close,
#       and reads to the end.
# Exit status 0 when it could run the mode (whatever the server did), 1 if
# it could not connect or a wait of its own ran out.
import json
import os
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import rawws  # noqa: E402

WAIT = 120   # seconds any wait of ours may take


def out(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def halfclose(port, path, count, size):
    count, size = int(count), int(size)
    c = rawws.connect(int(port), path)
    for i in range(count):
        c.send(rawws.frame(rawws.BINARY, rawws.content(0, i, size)))
    c.sock.shutdown(socket.SHUT_WR)

    def expected(i):
        return (rawws.BINARY, rawws.content(0, i, size)) if i < count else None
    r = rawws.read_all(c, expected)
    r["sent"] = count
    return r


def msgclose(port, path, split):
    msg = "echo me, then goodbye"
    c = rawws.connect(int(port), path)
    a, b = rawws.frame(rawws.TEXT, msg), rawws.close_frame(1000, "bye")
    if split == "1":
        c.send(a)
        time.sleep(0.05)
        c.send(b)
    else:
        c.send(a + b)
        if split == "fin":
            c.sock.shutdown(socket.SHUT_WR)
    return rawws.read_all(c, lambda i: (rawws.TEXT, msg.encode()) if i == 0 else None)


def fragclose(port, path, split):
    c = rawws.connect(int(port), path)
    pieces = [rawws.frame(rawws.TEXT, "first fragment, ", fin=False),
              rawws.frame(rawws.CONT, "second fragment, and no FIN", fin=False),
              rawws.close_frame(1000, "bye")]
    if split == "1":
        for p in pieces:
            c.send(p)
            time.sleep(0.05)
    elif split == "fin-only":
        c.send(b"".join(pieces[:2]))
        c.sock.shutdown(socket.SHUT_WR)
    else:
        c.send(b"".join(pieces))
        if split == "fin":
            c.sock.shutdown(socket.SHUT_WR)
    return rawws.read_all(c, lambda i: None)


def slow(port, path, count, size, chunk, delay):
    count, size = int(count), int(size)
    c = rawws.connect(int(port), path)
    c.send(rawws.frame(rawws.TEXT, "send %d %d" % (count, size)))
    c.recv_size, c.recv_delay = int(chunk), float(delay)
    t0 = time.monotonic()
    r = rawws.read_all(c, lambda i: (rawws.BINARY, rawws.pattern(i, size)), answer_close=True)
    r["seconds"] = round(time.monotonic() - t0, 3)
    return r


def flood(port, path, clients, count, size, gofile, delay="0"):
    clients, count, size = int(clients), int(count), int(size)
    results = [None] * clients
    sent = [threading.Event() for _ in range(clients)]
    go = threading.Event()

    def client(k):
        try:
            c = rawws.connect(int(port), path, timeout=WAIT)
            for i in range(count):
                c.send(rawws.frame(rawws.BINARY, rawws.content(k, i, size)))
        except (OSError, rawws.HandshakeError) as e:
            results[k] = {"error": "send: %s" % e}
            sent[k].set()
            return
        sent[k].set()
        if not go.wait(WAIT):
            results[k] = {"error": "no go"}
            return

        def expected(i):
            return (rawws.BINARY, rawws.content(k, i, size)) if i < count else None
        try:
            results[k] = rawws.read_all(c, expected, answer_close=True)
        except OSError as e:
            results[k] = {"error": "read: %s" % e}
        c.sock.close()

    threads = [threading.Thread(target=client, args=(k,), daemon=True) for k in range(clients)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for e in sent:
        if not e.wait(max(0, WAIT - (time.monotonic() - t0))):
            out({"phase": "error", "error": "the clients did not send everything in time"})
            sys.exit(1)
    out({"phase": "sent", "seconds": round(time.monotonic() - t0, 3)})
    deadline = time.monotonic() + WAIT
    while not os.path.exists(gofile):
        if time.monotonic() > deadline:
            out({"phase": "error", "error": "no go file"})
            sys.exit(1)
        time.sleep(0.01)
    time.sleep(float(delay))
    t1 = time.monotonic()
    go.set()
    for t in threads:
        t.join(max(0, deadline - time.monotonic()))
    return {"phase": "done", "read_seconds": round(time.monotonic() - t1, 3),
            "clients": [r if r is not None else {"error": "still reading"} for r in results]}


MODES = {"halfclose": halfclose, "msgclose": msgclose, "fragclose": fragclose, "slow": slow, "flood": flood}

if __name__ == "__main__":
    if len(sys.argv) < 3 or sys.argv[1] not in MODES:
        sys.stderr.write("usage: ender.py MODE PORT [ARGS...] (modes: %s)\n" % ", ".join(MODES))
        sys.exit(2)
    try:
        result = MODES[sys.argv[1]](*sys.argv[2:])
    except (OSError, rawws.HandshakeError) as e:
        out({"error": "%s: %s" % (type(e).__name__, e)})
        sys.exit(1)
    result.setdefault("phase", "done")
    out(result)
