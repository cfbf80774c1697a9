#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""py_echo.py -- the Python `websockets` echo server the luaws benchmarks compare against.

Usage: /usr/bin/python3 bench/peers/py_echo.py PORT

Debian's python3-websockets (10.4, the asyncio API): listens on 127.0.0.1:PORT,
path /ws, echoes every message with its kind. Compression is off (the generator
never offers it), max_size allows 64 MiB so the 1 MiB scenario fits, and
everything else is the library's default (including its 20 s keepalive ping,
which the generator answers).
"""
import asyncio
import signal
import sys

import websockets


async def echo(ws, path):
    if path != "/ws":
        await ws.close(1008, "unknown path")
        return
    try:
        async for msg in ws:
            await ws.send(msg)
    except websockets.ConnectionClosed:
        pass


async def main(port):
    stop = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set_result, None)
    async with websockets.serve(echo, "127.0.0.1", port, compression=None,
                                max_size=64 * 1024 * 1024, backlog=4096):
        print(f"python websockets echo listening on ws://127.0.0.1:{port}/ws", flush=True)
        await stop


if __name__ == "__main__":
    if len(sys.argv) != 2 or not sys.argv[1].isdigit():
        sys.exit("usage: py_echo.py PORT")
    asyncio.run(main(int(sys.argv[1])))
