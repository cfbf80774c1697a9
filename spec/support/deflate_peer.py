#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Peer for spec/integration/deflate_spec.lua: python3-websockets (10.4) with
permessage-deflate (RFC 7692), as a client of a luaws server and as a server
for a luaws client.

Usage:
  deflate_peer.py client CASES.json
      CASES.json: a list of {"name", "url", "offer", "steps"[, "ca"]} (ca: the
      certificate to trust for a wss:// url). offer: null (no
      extension offered), "default" (websockets' own default offer), or
      {"server_no_context_takeover": bool, "client_no_context_takeover": bool,
       "server_max_window_bits": N|null, "client_max_window_bits": N|true|null}.
      steps: names from STEPS below, run in order on one connection; what
      some measure goes in "results" (takeover: the echoes' records and the
      server's "?stats" before, after the first, after the last; small, big,
      stream: the echo's record).
      Prints one JSON line per case:
        {"name", "ok", "detail", "ext": our view of what was agreed (null: none),
         "answer": the server's Sec-WebSocket-Extensions, "server": what the
         server said on "?ext", "stats": its answers to "?stats" (in order),
         "in": [{"rsv1", "size", "frames"}] per message received: compressed or not,
         its payload bytes on the wire, the frames [opcode, rsv1, fin]}
  deflate_peer.py server CONFIGS.json
      CONFIGS.json: {"name": null | "default" | {server factory parameters}}.
      Serves each on 127.0.0.1 and a free port; prints "listening NAME PORT"
      for each, then "ready", then serves until SIGTERM. A text "?ext" gets
      {"ext": our view, "offer": the request's Sec-WebSocket-Extensions,
      "answer": ours}; "?stats" gets {"in": [...]} as above (every message
      before it on this connection); "?stream" gets STREAM_PIECES as one
      fragmented message; anything else is echoed.

Exit 0 with the lines (the verdicts are in them); 3 if websockets is missing.
"""

import asyncio
import json
import os
import signal
import sys

try:
    import websockets
    from websockets.extensions import permessage_deflate as pmd
except ImportError:
    print("python3-websockets is not installed", file=sys.stderr)
    sys.exit(3)

TIMEOUT = 30.0
MAX_SIZE = 64 * 1024 * 1024

# The pieces luaws's "?stream" sends and the ones we send for "?stream" as a
# server; the Lua side builds the same strings.
STREAM_PIECES = [("piece %d of a compressed stream; " % i) * 300 for i in (1, 2, 3)]
FRAGMENTS = ["part one " * 200, "part two " * 200, "part three \u20ac " * 200]

# What each connection received, frame by frame: the frames are seen in
# PerMessageDeflate.decode (before inflating) when the extension is in use,
# and in the message reader otherwise.
_received = {}


def _note_frame(ext, frame):
    conn = getattr(ext, "_luaws_conn", None)
    if conn is None or frame.opcode.value >= 8:
        return
    log = _received.setdefault(conn, [])
    if frame.opcode.value != 0 or not log or log[-1]["done"]:
        log.append({"rsv1": bool(frame.rsv1), "size": 0, "frames": [], "done": False})
    m = log[-1]
    m["size"] += len(frame.data)
    m["frames"].append([frame.opcode.value, bool(frame.rsv1), bool(frame.fin)])
    if frame.fin:
        m["done"] = True


_orig_decode = pmd.PerMessageDeflate.decode


def _decode(self, frame, *, max_size=None):
    _note_frame(self, frame)
    return _orig_decode(self, frame, max_size=max_size)


pmd.PerMessageDeflate.decode = _decode


def attach(ws):
    """Tag the connection's extension so that _decode knows whose frames it sees."""
    for e in ws.extensions:
        e._luaws_conn = ws
    _received[ws] = []


def received(ws):
    return [{k: m[k] for k in ("rsv1", "size", "frames")} for m in _received.get(ws, [])]


def view(ws, is_client):
    """What was agreed, as this side applies it, in RFC 7692 names."""
    for e in ws.extensions:
        if isinstance(e, pmd.PerMessageDeflate):
            if is_client:
                return {"server_no_context_takeover": e.remote_no_context_takeover,
                        "client_no_context_takeover": e.local_no_context_takeover,
                        "server_max_window_bits": e.remote_max_window_bits,
                        "client_max_window_bits": e.local_max_window_bits}
            return {"server_no_context_takeover": e.local_no_context_takeover,
                    "client_no_context_takeover": e.remote_no_context_takeover,
                    "server_max_window_bits": e.local_max_window_bits,
                    "client_max_window_bits": e.remote_max_window_bits}
    return None


def text100k():
    s = "".join("The quick brown fox %05d jumps over the lazy dog. " % i for i in range(2200))
    return s[:100 * 1024]


def same(what, got, want):
    if type(got) is not type(want):
        return "%s: got a %s, expected a %s" % (what, type(got).__name__, type(want).__name__)
    if got != want:
        return "%s: got %d units %r, expected %d %r" % (what, len(got), got[:40], len(want), want[:40])
    return None


async def recv(ws):
    return await asyncio.wait_for(ws.recv(), TIMEOUT)


async def echo(ws, what, data):
    await ws.send(data)
    return same(what, await recv(ws), data)


class Case:
    def __init__(self, ws):
        self.ws = ws
        self.server = None
        self.stats = []
        self.results = {}   # what steps measured, by step name

    def last_in(self):
        """The record of the message received last (None without the extension)."""
        log = _received.get(self.ws)
        return {k: log[-1][k] for k in ("rsv1", "size", "frames")} if log else None


async def step_ext(c):
    await c.ws.send("?ext")
    c.server = json.loads(await recv(c.ws))


async def step_stats(c):
    await c.ws.send("?stats")
    c.stats.append(json.loads(await recv(c.ws)))


async def step_text100k(c):
    return await echo(c.ws, "100 KiB text", text100k())


async def step_binary(c):
    return await echo(c.ws, "64 KiB random binary", os.urandom(65536))


def window_bytes():
    """For each k in 8..15 a random block of 2^k + 64 bytes, twice: a repeat
    just out of reach of a window of k bits. A compressor that uses a larger
    window than agreed reaches it, and an inflater held to the agreed window
    fails ("invalid distance too far back")."""
    return b"".join(os.urandom((1 << k) + 64) * 2 for k in range(8, 16))


async def step_window(c):
    return await echo(c.ws, "window binary", window_bytes())


async def step_takeover(c):
    # the same 2 KiB of random hex five times, "?stats" after the first and
    # the last: with context takeover the repeats cost a few bytes each
    msg = os.urandom(1024).hex()
    r = c.results["takeover"] = {"in": [], "stats": []}
    await step_stats(c)
    r["stats"].append(c.stats[-1])
    for i in range(5):
        err = await echo(c.ws, "takeover message %d" % (i + 1), msg)
        if err:
            return err
        r["in"].append(c.last_in())
        if i == 0:
            await step_stats(c)
            r["stats"].append(c.stats[-1])
    await step_stats(c)
    r["stats"].append(c.stats[-1])


async def step_fragmented(c):
    await c.ws.send(FRAGMENTS)   # an iterable: one frame per item, RSV1 on the first
    return same("fragmented message", await recv(c.ws), "".join(FRAGMENTS))


async def step_stream(c):
    await c.ws.send("?stream")
    err = same("streamed message", await recv(c.ws), "".join(STREAM_PIECES))
    c.results["stream"] = c.last_in()
    return err


async def step_small(c):
    err = await echo(c.ws, "small text", "tiny")
    c.results["small"] = c.last_in()
    return err


async def step_big(c):
    err = await echo(c.ws, "text over the threshold", "b" * 300)
    c.results["big"] = c.last_in()
    return err


async def step_many(c):
    for i in range(50):
        err = await echo(c.ws, "message %d" % i, '{"seq": %d, "user": "u%d", "text": "hello %s"}' % (i, i % 7, "x" * i))
        if err:
            return err


STEPS = {"ext": step_ext, "stats": step_stats, "text100k": step_text100k, "binary": step_binary,
         "window": step_window, "takeover": step_takeover, "fragmented": step_fragmented,
         "stream": step_stream, "small": step_small, "big": step_big, "many": step_many}


def client_factory(o):
    return pmd.ClientPerMessageDeflateFactory(
        server_no_context_takeover=bool(o.get("server_no_context_takeover")),
        client_no_context_takeover=bool(o.get("client_no_context_takeover")),
        server_max_window_bits=o.get("server_max_window_bits"),
        client_max_window_bits=o.get("client_max_window_bits", True),
    )


async def run_case(case):
    out = {"name": case["name"], "ok": False, "detail": None, "ext": None, "answer": None,
           "server": None, "stats": [], "in": [], "results": {}}
    offer = case.get("offer")
    kw = dict(max_size=MAX_SIZE, ping_interval=None, open_timeout=10, close_timeout=5)
    if case.get("ca"):   # wss:// with the spec's own CA
        import ssl
        kw["ssl"] = ssl.create_default_context(cafile=case["ca"])
    if offer is None:
        kw["compression"] = None
    elif offer == "default":
        kw["compression"] = "deflate"
    else:
        kw["compression"] = None
        kw["extensions"] = [client_factory(offer)]
    try:
        async with websockets.connect(case["url"], **kw) as ws:
            attach(ws)
            out["ext"] = view(ws, True)
            out["answer"] = ws.response_headers.get("Sec-WebSocket-Extensions")
            c = Case(ws)
            err = None
            for name in case["steps"]:
                err = await STEPS[name](c)
                if err:
                    break
            out["server"], out["stats"], out["in"] = c.server, c.stats, received(ws)
            out["results"] = c.results
            out["ok"], out["detail"] = err is None, err
    except Exception as e:  # the verdict goes in the line
        out["detail"] = "%s: %s" % (type(e).__name__, e)
    return out


async def client(path):
    with open(path) as f:
        cases = json.load(f)
    for case in cases:
        print(json.dumps(await run_case(case)), flush=True)


def server_factory(o):
    return pmd.ServerPerMessageDeflateFactory(
        server_no_context_takeover=bool(o.get("server_no_context_takeover")),
        client_no_context_takeover=bool(o.get("client_no_context_takeover")),
        server_max_window_bits=o.get("server_max_window_bits"),
        client_max_window_bits=o.get("client_max_window_bits"),
    )


async def handler(ws, path=None):
    attach(ws)
    try:
        async for msg in ws:
            if msg == "?ext":
                await ws.send(json.dumps({"ext": view(ws, False),
                                          "offer": ws.request_headers.get("Sec-WebSocket-Extensions"),
                                          "answer": ws.response_headers.get("Sec-WebSocket-Extensions")}))
            elif msg == "?stats":
                await ws.send(json.dumps({"in": received(ws)[:-1]}))   # not "?stats" itself
            elif msg == "?stream":
                await ws.send(STREAM_PIECES)
            else:
                await ws.send(msg)
    except websockets.ConnectionClosed:
        pass
    finally:
        _received.pop(ws, None)


async def server(path):
    with open(path) as f:
        configs = json.load(f)
    servers = []
    for name, cfg in configs.items():
        kw = dict(max_size=MAX_SIZE, ping_interval=None, close_timeout=5)
        if cfg is None:
            kw["compression"] = None
        elif cfg == "default":
            kw["compression"] = "deflate"
        else:
            kw["compression"] = None
            kw["extensions"] = [server_factory(cfg)]
        s = await websockets.serve(handler, "127.0.0.1", 0, **kw)
        servers.append(s)
        print("listening %s %d" % (name, s.sockets[0].getsockname()[1]), flush=True)
    print("ready", flush=True)
    stop = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set_result, None)
    await stop
    for s in servers:
        s.close()


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in ("client", "server"):
        print(__doc__, file=sys.stderr)
        return 2
    asyncio.run((client if sys.argv[1] == "client" else server)(sys.argv[2]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
