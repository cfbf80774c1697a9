#!/usr/bin/python3
# SPDX-License-Identifier: MIT
#
# rawsteps.py HOST PORT STEPS_FILE TIMEOUT
#
# A plain TCP peer that plays a script (spec/support/proc.lua raw_steps()):
# connect, then run STEPS_FILE line by line:
#   send HEX     send these bytes (hex-encoded, so any byte goes)
#   sleep S      wait S seconds, reading what arrives meanwhile
#   hold S       wait S seconds without reading (a peer that does not read)
#   shut         shut the write side (a half-close)
# then read until the server closes or TIMEOUT seconds (from the connect)
# pass. Prints one line "eof|reset|timeout|broken ELAPSED" (broken: a send
# failed because the server had closed), then every byte received.
# Exit status 0 unless the connect itself failed.
import select
import socket
import sys
import time


def main():
    host, port, stepfile, timeout = sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4])
    with open(stepfile) as f:
        steps = [line.split() for line in f if line.strip()]
    start = time.monotonic()
    sock = socket.create_connection((host, port), timeout=timeout)
    got = bytearray()
    how = None

    def drain(until):
        nonlocal how
        while how is None:
            left = until - time.monotonic()
            if left <= 0:
                return
            r, _, _ = select.select([sock], [], [], left)
            if not r:
                return
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                how = "reset"
                return
            if not chunk:
                how = "eof"
                return
            got.extend(chunk)

    for step in steps:
        if how is not None:
            break
        if step[0] == "send":
            try:
                sock.sendall(bytes.fromhex(step[1]) if len(step) > 1 else b"")
            except (BrokenPipeError, ConnectionResetError):
                how = "broken"
        elif step[0] == "sleep":
            drain(time.monotonic() + float(step[1]))
        elif step[0] == "hold":
            time.sleep(float(step[1]))
        elif step[0] == "shut":
            sock.shutdown(socket.SHUT_WR)
    if how is None:
        drain(start + timeout)
    if how is None:
        how = "timeout"
    elapsed = time.monotonic() - start
    sock.close()
    out = sys.stdout.buffer
    out.write(("%s %.3f\n" % (how, elapsed)).encode())
    out.write(bytes(got))
    out.flush()


if __name__ == "__main__":
    main()
