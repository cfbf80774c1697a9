#!/usr/bin/python3
# SPDX-License-Identifier: MIT
#
# hostloop_echo.py URL N
#
# A python3-websockets client for spec/integration/hostloop_spec.lua: sends N
# text messages one at a time, each after the echo of the one before, checks
# every echo, then closes normally. Prints "done N P50_MS P99_MS" (its own
# round-trip times) and "closed CODE", or "failed WHAT" and exits 1.
import asyncio
import sys
import time

import websockets


async def main(url, n):
    try:
        ws = await asyncio.wait_for(websockets.connect(url), 10)
    except Exception as e:  # refused, handshake failure, timeout
        print("failed connect %s" % type(e).__name__, flush=True)
        return 1
    rtts = []
    for i in range(n):
        msg = "py %d" % i
        t0 = time.perf_counter()
        await ws.send(msg)
        got = await asyncio.wait_for(ws.recv(), 10)
        rtts.append(time.perf_counter() - t0)
        if got != msg:
            print("failed echo %r for %r" % (got, msg), flush=True)
            return 1
    rtts.sort()
    p50 = rtts[max(0, (len(rtts) + 1) // 2 - 1)] * 1000
    p99 = rtts[max(0, -(-len(rtts) * 99 // 100) - 1)] * 1000
    print("done %d %.3f %.3f" % (n, p50, p99), flush=True)
    await asyncio.wait_for(ws.close(), 10)
    print("closed %d" % ws.close_code, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1], int(sys.argv[2]))))
