#!/usr/bin/python3
# SPDX-License-Identifier: MIT
#
# proxied_client.py URL [--from ADDR] [--unix PATH] [--header "Name: value"]...
#
# A python3-websockets client for the proxy specs
# (spec/integration/proxy_spec.lua): connects to URL, from the local
# address ADDR (127.0.0.2: a client other than the proxy on the same
# loopback) or over the unix socket PATH, with extra request headers (a
# spoofed X-Forwarded-For), sends "hello" and prints "reply MESSAGE" for
# the server's answer, then closes. Exit status 0, or 1 with
# "connect-failed WHY" when it could not connect.
import asyncio
import sys

import websockets


async def main(argv):
    url, rest = argv[0], argv[1:]
    local, unix, headers = None, None, []
    i = 0
    while i < len(rest):
        if rest[i] == "--from":
            local = (rest[i + 1], 0)
        elif rest[i] == "--unix":
            unix = rest[i + 1]
        elif rest[i] == "--header":
            name, _, value = rest[i + 1].partition(":")
            headers.append((name.strip(), value.strip()))
        i += 2
    try:
        if unix:
            ws = await asyncio.wait_for(websockets.unix_connect(unix, url, extra_headers=headers), 10)
        else:
            kw = {"local_addr": local} if local else {}
            ws = await asyncio.wait_for(websockets.connect(url, extra_headers=headers, **kw), 10)
    except Exception as e:  # refused, handshake failure, timeout
        print("connect-failed %s %s" % (type(e).__name__, e), flush=True)
        return 1
    await ws.send("hello")
    print("reply %s" % await asyncio.wait_for(ws.recv(), 10), flush=True)
    await ws.close()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1:])))
