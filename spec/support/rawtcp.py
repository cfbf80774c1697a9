#!/usr/bin/python3
# SPDX-License-Identifier: MIT
#
# rawtcp.py HOST PORT REQUEST_FILE TIMEOUT [head]
#
# A plain TCP peer for the integration specs (spec/support/proc.lua raw()):
# connect, send the bytes of REQUEST_FILE exactly as they are (nothing if it
# is empty), then read until the server closes or TIMEOUT seconds pass, or,
# with "head", until a whole response head (CRLF CRLF) came.
# Prints one line "eof|reset|timeout|head ELAPSED" (seconds), then
# every byte received. Exit status 0 unless the connect itself failed.
# ELAPSED counts from just before connect(): the server's timers start at
# its accept, later, so ELAPSED is never shorter than the server's view.
import socket
import sys
import time


def main():
    host, port, reqfile, timeout = sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4])
    until_head = len(sys.argv) > 5 and sys.argv[5] == "head"
    with open(reqfile, "rb") as f:
        request = f.read()
    start = time.monotonic()
    sock = socket.create_connection((host, port), timeout=timeout)
    if request:
        sock.sendall(request)
    got = bytearray()
    how = "eof"
    while True:
        left = timeout - (time.monotonic() - start)
        if left <= 0:
            how = "timeout"
            break
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except socket.timeout:
            how = "timeout"
            break
        except ConnectionResetError:
            how = "reset"
            break
        if not chunk:
            break
        got += chunk
        if until_head and b"\r\n\r\n" in got:
            how = "head"
            break
    elapsed = time.monotonic() - start
    sock.close()
    out = sys.stdout.buffer
    out.write(("%s %.3f\n" % (how, elapsed)).encode())
    out.write(bytes(got))
    out.flush()


if __name__ == "__main__":
    main()
