#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""Peer check: the python3-websockets asyncio client against the server under test.

Usage: python_client.py ws://127.0.0.1:PORT/ws

Prints one JSON object per check, {"name": "...", "ok": true|false, "detail": "..."},
and exits 0 (the lines carry the verdicts); exit 3 if websockets is missing.
Each check opens its own connection and is bounded by CHECK_TIMEOUT.
Compression is off: the server under test does not negotiate it.
"""

import asyncio
import json
import os
import sys

try:
    import websockets
except ImportError:  # the spec checks this first and marks itself pending
    print("python3-websockets is not installed", file=sys.stderr)
    sys.exit(3)

CHECK_TIMEOUT = 10.0
CHECKS = []


def check(name):
    def register(fn):
        CHECKS.append((name, fn))
        return fn
    return register


def connect(url):
    return websockets.connect(url, compression=None, max_size=32 * 1024 * 1024,
                              ping_interval=None, open_timeout=5, close_timeout=3)


async def roundtrip(url, message):
    async with connect(url) as ws:
        await ws.send(message)
        return await ws.recv()


def same(got, want):
    if type(got) is not type(want):
        return f"got a {type(got).__name__}, expected a {type(want).__name__}"
    if got != want:
        return f"got {len(got)} {type(got).__name__} units {got[:40]!r}, expected {len(want)} {want[:40]!r}"
    return None


@check("text echo")
async def text_echo(url):
    want = "Hello, luaws! \u03ba\u1f79\u03c3\u03bc\u03b5 \U0001f600"
    return same(await roundtrip(url, want), want)


@check("binary echo")
async def binary_echo(url):
    want = bytes(range(256)) * 4
    return same(await roundtrip(url, want), want)


@check("empty text echo")
async def empty_text(url):
    return same(await roundtrip(url, ""), "")


@check("empty binary echo")
async def empty_binary(url):
    return same(await roundtrip(url, b""), b"")


@check("1 MiB binary echo")
async def mib(url):
    want = os.urandom(1 << 20)
    return same(await roundtrip(url, want), want)


@check("fragmented text message echoed whole")
async def fragmented(url):
    parts = ["first fragment, ", "second \u03ba\u1f79\u03c3\u03bc\u03b5, ", "third"]
    async with connect(url) as ws:
        await ws.send(parts)              # an iterable: one frame per item
        return same(await ws.recv(), "".join(parts))


@check("100 messages echoed in order")
async def hundred(url):
    async with connect(url) as ws:
        for i in range(100):
            await ws.send(f"message {i}" if i % 2 else f"message {i}".encode())
        for i in range(100):
            got = await ws.recv()
            want = f"message {i}" if i % 2 else f"message {i}".encode()
            bad = same(got, want)
            if bad:
                return f"message {i}: {bad}"
    return None


@check("ping answered by a pong")
async def ping(url):
    async with connect(url) as ws:
        waiter = await ws.ping(b"peer ping")
        await asyncio.wait_for(waiter, 3)
    return None


@check("close 1000 with a reason: the server closes with 1000")
async def close_1000(url):
    ws = await connect(url)
    await ws.close(1000, "bye from python")
    if ws.close_code != 1000:
        return f"server close code {ws.close_code} ({ws.close_reason!r}), expected 1000"
    return None


@check("close 4001: the server echoes 4001")
async def close_4001(url):
    ws = await connect(url)
    await ws.close(4001, "custom code")
    if ws.close_code != 4001:
        return f"server close code {ws.close_code} ({ws.close_reason!r}), expected 4001"
    return None


async def main(url):
    for name, fn in CHECKS:
        try:
            problem = await asyncio.wait_for(fn(url), CHECK_TIMEOUT)
        except asyncio.TimeoutError:
            problem = f"timed out after {CHECK_TIMEOUT:g} s"
        except Exception as exc:
            problem = f"{type(exc).__name__}: {exc}"
        print(json.dumps({"name": name, "ok": problem is None, "detail": problem or "ok"}), flush=True)


if __name__ == "__main__":
    if len(sys.argv) != 2 or not sys.argv[1].startswith("ws://"):
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        sys.exit(2)
    asyncio.run(main(sys.argv[1]))
