#!/bin/sh
# Run the echo example under valgrind (permessage-deflate on), drive an
# echo session of 1,000 messages (text, binary, fragmented, a ping, the
# close) with Python's websockets client, uncompressed, then the same
# compressed with context takeover and without it (each session's
# connections stay open until the end, so the pool's saved windows are
# used), stop the server with SIGTERM, and check valgrind's
# leak summary: nothing definitely or indirectly lost, no errors.
# Prints "valgrind: 1 passed, 0 failed" (or 0/1) and exits non-zero on failure.
set -u
cd "$(dirname "$0")/.."
PY=/usr/bin/python3
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
valgrind --leak-check=full --show-leak-kinds=definite,indirect --errors-for-leak-kinds=definite,indirect \
  --error-exitcode=99 --log-file="$out/vg.log" \
  lua5.4 examples/echo.lua --port 0 --host 127.0.0.1 --compression > "$out/server.out" 2>&1 &
pid=$!
port=""
i=0
while [ $i -lt 300 ] && [ -z "$port" ]; do
  port=$(sed -n 's|^luaws echo listening on http://127.0.0.1:\([0-9]*\)/$|\1|p' "$out/server.out")
  [ -n "$port" ] || sleep 0.1
  i=$((i + 1))
done
fail=0
if [ -z "$port" ]; then
  echo "valgrind: the echo server did not start"; fail=1
else
  "$PY" - "$port" <<'PYEOF' || fail=1
import asyncio, sys, websockets
from websockets.extensions.permessage_deflate import ClientPerMessageDeflateFactory as Deflate
async def session(port, ext, n):
    kw = {"compression": None, "extensions": [ext]} if ext else {"compression": None}
    async with websockets.connect(f"ws://127.0.0.1:{port}/ws", max_size=None, **kw) as ws:
        for i in range(n):
            m = f"message {i} " * (i % 50) if i % 3 else bytes(range(i % 256))
            if i % 100 == 7:
                await ws.send([f"frag{i}-a", f"frag{i}-b"]); m = f"frag{i}-afrag{i}-b"
            else:
                await ws.send(m)
            got = await asyncio.wait_for(ws.recv(), 10)
            assert got == m, (i, got[:40])
        await asyncio.wait_for(await ws.ping(b"p"), 10)
    assert ws.close_code == 1000, ws.close_code
async def main(port):
    await session(port, None, 1000)
    print("valgrind: 1000 messages echoed")
    await asyncio.gather(session(port, Deflate(), 300), session(port, Deflate(), 300),
                         session(port, Deflate(server_no_context_takeover=True, client_no_context_takeover=True,
                                               server_max_window_bits=9, client_max_window_bits=10), 300))
    print("valgrind: 900 compressed messages echoed")
asyncio.run(main(int(sys.argv[1])))
PYEOF
fi
kill -TERM "$pid" 2>/dev/null
wait "$pid"; rc=$?
if [ "$rc" != 0 ]; then echo "valgrind: server exit status $rc (99 = valgrind errors)"; fail=1; fi
grep -E "definitely lost|indirectly lost|ERROR SUMMARY" "$out/vg.log" | sed 's/^==[0-9]*== /valgrind: /'
if ! grep -q "ERROR SUMMARY: 0 errors" "$out/vg.log"; then fail=1; sed -n '1,80p' "$out/vg.log"; fi
if [ $fail = 0 ]; then echo "valgrind: 1 passed, 0 failed"; else echo "valgrind: 0 passed, 1 failed"; exit 1; fi
