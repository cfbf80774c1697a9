#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""A python3-websockets subscriber for spec/integration/pubsub_spec.lua.

Usage: pubsub_peer.py URL NAME

Connects (compression off, no pings), prints one JSON object a line:
  {"event": "open"}
  {"event": "message", "kind": "text"|"binary", "len": BYTES,
   "hex": the bytes in hex (messages up to 64 bytes, else null),
   "pattern": true when every byte i is i % 251 (longer messages)}
  {"event": "close", "code": CODE}
A text "say:NAME" makes it send the text "hello from NAME"; a text "bye"
makes it close with 1000. It gives up after 60 s (exit 1).
"""
import asyncio
import json
import sys

import websockets

PATTERN = bytes(i % 251 for i in range(251))


def out(obj):
    print(json.dumps(obj), flush=True)


def describe(data, kind):
    rec = {"event": "message", "kind": kind, "len": len(data), "hex": None, "pattern": None}
    if len(data) <= 64:
        rec["hex"] = data.hex()
    else:
        n = len(data)
        want = (PATTERN * (n // 251 + 1))[:n]
        rec["pattern"] = data == want
    return rec


async def main(url, name):
    async with websockets.connect(url, compression=None, max_size=None, ping_interval=None,
                                  open_timeout=10, close_timeout=5) as ws:
        out({"event": "open"})
        async for msg in ws:
            text = isinstance(msg, str)
            out(describe(msg.encode() if text else msg, "text" if text else "binary"))
            if text and msg == "say:" + name:
                await ws.send("hello from " + name)
            elif text and msg == "bye":
                await ws.close(1000, "bye")
                break
        out({"event": "close", "code": ws.close_code})


if __name__ == "__main__":
    try:
        asyncio.run(asyncio.wait_for(main(sys.argv[1], sys.argv[2]), 60))
    except asyncio.TimeoutError:
        out({"event": "timeout"})
        sys.exit(1)
