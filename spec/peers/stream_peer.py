#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Peer for spec/integration/streaming_spec.lua and send_utf8_spec.lua:
python3-websockets (10.4: its client reassembles fragmented messages) and a
raw reader that shows the frames themselves.

Usage: stream_peer.py MODE URL

  whole    sends "go", prints the one message that comes back:
           {"kind": "text"|"binary", "data": text or hex} (pings are answered)
  frames   raw socket (spec/support/rawws.py): sends "go", answers pings
           with pongs, prints the frames up to the end of the message:
           {"frames": [{"op": n, "fin": bool, "data": hex}, ...]}
  send     sends one message in three fragments (websockets sends an
           iterable as a fragmented message), prints the reply:
           {"reply": text}
  closed   sends "go", prints how the server's answer ended the connection:
           {"sent": close code websockets sent, "rcvd": the server's or null}

One JSON line on stdout, exit 0; anything unexpected: a line on stderr and
exit 1. Every wait is bounded by TIMEOUT seconds.
"""

import asyncio
import json
import os
import sys
import urllib.parse

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))

import websockets  # noqa: E402
import rawws  # noqa: E402

TIMEOUT = 20.0


def connect(url):
    return websockets.connect(url, compression=None, max_size=None, ping_interval=None,
                              open_timeout=5, close_timeout=3)


async def whole(url):
    async with connect(url) as ws:
        await ws.send("go")
        msg = await asyncio.wait_for(ws.recv(), TIMEOUT)
        if isinstance(msg, str):
            return {"kind": "text", "data": msg}
        return {"kind": "binary", "data": msg.hex()}


async def send(url):
    async with connect(url) as ws:
        await ws.send(["Hello, ", "fragmented ", "world \u20ac"])
        return {"reply": await asyncio.wait_for(ws.recv(), TIMEOUT)}


async def closed(url):
    async with connect(url) as ws:
        await ws.send("go")
        try:
            got = await asyncio.wait_for(ws.recv(), TIMEOUT)
            return {"unexpected": repr(got)[:80]}
        except websockets.ConnectionClosed as e:
            # sent: the close frame websockets sent (1007 when it refused the
            # text); rcvd: the server's, if it came before the TCP close
            return {"sent": e.sent.code if e.sent else None, "rcvd": e.rcvd.code if e.rcvd else None}


def frames(url):
    u = urllib.parse.urlsplit(url)
    conn = rawws.connect(u.port, u.path or "/", host=u.hostname, timeout=TIMEOUT)
    conn.send(rawws.frame(rawws.TEXT, b"go"))
    out = []
    while True:
        fin, op, payload, flaw = conn.read_frame()
        if flaw:
            raise RuntimeError(flaw)
        out.append({"op": op, "fin": fin, "data": payload.hex()})
        if op == rawws.PING:
            conn.send(rawws.frame(rawws.PONG, payload))
        if op == rawws.CLOSE or (op in (rawws.TEXT, rawws.BINARY, rawws.CONT) and fin) or len(out) > 100:
            break
    conn.send(rawws.close_frame(1000))
    conn.sock.close()
    return {"frames": out}


def main():
    mode, url = sys.argv[1], sys.argv[2]
    if mode == "frames":
        result = frames(url)
    else:
        fn = {"whole": whole, "send": send, "closed": closed}[mode]
        result = asyncio.run(asyncio.wait_for(fn(url), TIMEOUT + 5))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # the spec shows stderr when the line is missing
        print("stream_peer.py: %s: %s" % (type(e).__name__, e), file=sys.stderr)
        sys.exit(1)
