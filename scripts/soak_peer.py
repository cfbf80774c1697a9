#!/usr/bin/python3
# SPDX-License-Identifier: MIT
#
# soak_peer.py URL CLIENTS SECONDS SEED: the python3-websockets half of
# `make soak` (scripts/soak.lua runs it). CLIENTS asyncio clients, each in a
# loop until SECONDS have passed: connect, then rounds of a burst of 1-4
# messages of random size (0 B - 64 KiB, text or binary) whose echoes must
# come back intact and in order, a pause of 0-400 ms, and now and then a
# deliberate drop: a clean close or an abort (TCP reset) right after a
# burst, before its echoes, or a clean close between rounds; then a new
# connection. At the end each client closes cleanly (1000).
#
# Prints one JSON line: connections, sent, echoed, dropped (sent on a
# connection this client dropped before the echo), corrupt (an echo that
# differs from what was due: changed, or out of order), lost (sent, not
# dropped, never echoed intact: sent - echoed - dropped - corrupt), timeouts
# (echoes not back within 10 s) and unexpected (connections that ended
# without this client asking), with the first few problems in "problems".
import asyncio
import json
import random
import sys
import time

import websockets

ECHO_TIMEOUT = 10


def payload(rng, client, seq):
    """A message of random size; its first bytes name it."""
    r = rng.random()
    size = rng.randint(0, 256) if r < 0.6 else rng.randint(257, 8192) if r < 0.9 else rng.randint(8193, 65536)
    head = "p%d:%d:" % (client, seq)
    if rng.random() < 0.5:
        body = (head + "abcdefghijklmnopqrstuvwxyz0123456789" * (size // 36 + 1))[:max(size, len(head))]
        return body
    return (head.encode() + rng.randbytes(max(0, size - len(head))))


async def client(cid, url, deadline, rng, st):
    seq = 0
    while time.monotonic() < deadline:
        try:
            ws = await websockets.connect(url, max_size=None, open_timeout=10, close_timeout=5)
        except Exception as e:
            st["connect_failed"] += 1
            st["problems"].append("client %d: connect: %r" % (cid, e))
            await asyncio.sleep(0.5)
            continue
        st["connections"] += 1
        dropped = False
        try:
            while time.monotonic() < deadline:
                burst = []
                for _ in range(rng.randint(1, 4)):
                    seq += 1
                    msg = payload(rng, cid, seq)
                    await ws.send(msg)
                    burst.append(msg)
                st["sent"] += len(burst)
                drop = rng.random()
                if drop < 0.01:        # close before the echoes
                    st["dropped"] += len(burst)
                    await ws.close(1000, "dropping")
                    dropped = True
                    break
                if drop < 0.02:        # reset before the echoes
                    st["dropped"] += len(burst)
                    ws.transport.abort()
                    dropped = True
                    break
                late = False
                for want in burst:
                    try:
                        got = await asyncio.wait_for(ws.recv(), ECHO_TIMEOUT)
                    except asyncio.TimeoutError:
                        st["timeouts"] += 1
                        st["problems"].append("client %d: no echo within %d s" % (cid, ECHO_TIMEOUT))
                        late = True
                        break
                    if got != want:
                        st["corrupt"] += 1
                        st["problems"].append("client %d: echo differs (%d vs %d bytes)" % (cid, len(got), len(want)))
                    else:
                        st["echoed"] += 1
                if late:               # what is missing stays lost; start afresh
                    ws.transport.abort()
                    dropped = True
                    break
                if drop < 0.03:        # clean close between rounds
                    await ws.close(1000, "between rounds")
                    dropped = True
                    break
                await asyncio.sleep(rng.random() * 0.4)
            if not dropped:
                await ws.close(1000, "done")
                if ws.close_code != 1000:
                    st["unexpected"] += 1
                    st["problems"].append("client %d: close code %r" % (cid, ws.close_code))
        except websockets.ConnectionClosed as e:
            st["unexpected"] += 1
            st["problems"].append("client %d: closed by the server: %s" % (cid, e))
        except Exception as e:
            st["unexpected"] += 1
            st["problems"].append("client %d: %r" % (cid, e))


async def main():
    url, n, seconds, seed = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
    st = {k: 0 for k in ("connections", "sent", "echoed", "dropped", "corrupt", "unexpected", "timeouts",
                         "connect_failed")}
    st["problems"] = []
    deadline = time.monotonic() + seconds
    print("started", flush=True)
    await asyncio.gather(*(client(i, url, deadline, random.Random(seed * 100003 + i), st) for i in range(n)))
    st["clients"] = n
    # sent on a connection this client did not drop, and never echoed intact
    st["lost"] = st["sent"] - st["echoed"] - st["dropped"] - st["corrupt"]
    st["problems"] = st["problems"][:10]
    print(json.dumps(st, sort_keys=True), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
