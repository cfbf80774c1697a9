#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""py_echo.py -- the Python `websockets` echo server the luaws benchmarks compare against.

Usage: /usr/bin/python3 bench/peers/py_echo.py PORT [--deflate]

Debian's python3-websockets (10.4, the asyncio API): listens on 127.0.0.1:PORT,
path /ws, echoes every message with its kind. Compression is off by default
(so the uncompressed scenarios compare framing, not zlib); --deflate leaves it
at the library's default, compression="deflate" (permessage-deflate with
server_max_window_bits=12, client_max_window_bits=12, memLevel 5, every
message compressed). max_size allows 64 MiB so the 1 MiB scenario fits, and
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


async def main(port, compression):
    stop = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set_result, None)
    async with websockets.serve(echo, "127.0.0.1", port, compression=compression,
                                max_size=64 * 1024 * 1024, backlog=4096):
        print(f"python websockets echo{' (deflate)' if compression else ''} listening on "
              f"ws://127.0.0.1:{port}/ws", flush=True)
        await stop


if __name__ == "__main__":
    deflate = sys.argv[2:] == ["--deflate"]
    if len(sys.argv) not in (2, 3) or not sys.argv[1].isdigit() or (len(sys.argv) == 3 and not deflate):
        sys.exit("usage: py_echo.py PORT [--deflate]")
    asyncio.run(main(int(sys.argv[1]), "deflate" if deflate else None))
