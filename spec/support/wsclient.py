#!/usr/bin/python3
# SPDX-License-Identifier: MIT
#
# wsclient.py URL TIMEOUT
#
# A python3-websockets client for the integration specs: connects, sends
# "hello", prints "echo MESSAGE" and "ready", then holds the connection until
# the server closes it or TIMEOUT seconds pass, and prints
# "closed CODE REASON" or "timeout". Exit status 0 unless it could not
# connect (1).
import asyncio
import sys

import websockets


async def main(url, timeout):
    try:
        ws = await asyncio.wait_for(websockets.connect(url), 5)
    except Exception as e:  # refused, handshake failure, timeout
        print("connect-failed %s" % type(e).__name__, flush=True)
        return 1
    await ws.send("hello")
    print("echo %s" % await ws.recv(), flush=True)
    print("ready", flush=True)
    try:
        while True:
            await asyncio.wait_for(ws.recv(), timeout)
    except asyncio.TimeoutError:
        print("timeout", flush=True)
        await ws.close()
    except websockets.ConnectionClosed as e:
        rcvd = getattr(e, "rcvd", None)
        code = rcvd.code if rcvd is not None else e.code
        reason = rcvd.reason if rcvd is not None else e.reason
        print("closed %d %s" % (code, reason), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1], float(sys.argv[2]))))
