#!/bin/sh
# SPDX-License-Identifier: MIT
# bench/run.sh -- what `make bench` runs.
#
# 1. installs what the benchmark lacks: Debian packages through apt-get
#    (gnuplot-nox, python3-websockets, lua5.1 + lua-http, the C toolchain and
#    the luaws build deps, redis-server, nginx + libnginx-mod-http-lua +
#    lua-nginx-websocket for lua-resty-websocket, libwebsockets-dev) and node `ws`, socket.io and its Redis
#    adapter into bench/peers/node_modules (npm ci); BENCH_DEPS=none skips
#    this on a machine you manage yourself;
# 2. builds build/bench/loadgen, c_echo and fanout, and lws_echo (the
#    libwebsockets peer) when libwebsockets-dev is there (bench/Makefile.inc);
# 3. builds luaws with `make all` when examples/echo.lua exists (a failed
#    build is logged to build/bench/luaws-build.log and luaws is skipped);
# 4. runs bench/runner.py under Debian's /usr/bin/python3, which starts every
#    server pinned to core 0 with the generator on core 1, and writes
#    bench/results/latest.md and latest.png;
# 5. runs bench/fanout.sh (the fan-out scenarios: 10,000 subscribers, in one
#    process and through Redis, and the RSS of a subscription), which adds its
#    section to latest.md. BENCH_FANOUT=none skips it; BENCH_FANOUT=only runs
#    it alone.
# 6. runs bench/scale.sh (luaws at 100 to 100,000 connections, idle and with 1%
#    echoing; RSS per connection, CPU per message, a fresh client's p99), which
#    writes bench/results/scale.md and scale.png and may raise kernel limits
#    (it prints each change). BENCH_SCALE=none skips it; BENCH_SCALE=only runs
#    it alone (3-5 minutes).
#
# wss: the 100 x 16 B and 100 x 16 KiB echoes also run over TLS (luaws with
# examples/echo.lua --tls-cert/--tls-key, node ws on https; a self-signed
# certificate made once with openssl into build/bench-tls/), interleaved with
# the plain runs, in a "wss" section of latest.md. BENCH_WSS=none leaves them
# out; BENCH_WSS=only runs just those scenarios (luaws and node, ws and wss;
# no fan-out) and writes bench/results/wss.md, leaving latest.md alone:
#     BENCH_WSS=only bench/run.sh          # about 5 minutes with 3 repeats
# BENCH_TLS_KEY=ecdsa (P-256, the default) or rsa (2048) picks the certificate.
#
# Knobs (environment): BENCH_DURATION (5 s window), BENCH_WARMUP (1 s),
# BENCH_REPEATS (3), BENCH_SERVERS and BENCH_SCENARIOS (comma lists of keys to
# run; `bench/runner.py --list` shows them), BENCH_BUDGET (3600 s: no run starts
# after that), BENCH_QUIET_WAIT (20 s) and BENCH_QUIET_TOTAL (300 s): how long to
# wait, per run and in all, for other processes to leave the CPU; BENCH_DEPS=none;
# BENCH_WSS and BENCH_TLS_KEY (above); BENCH_RESULTS (a directory to write the
# report to instead of bench/results, for a partial or trial run).
#
# The compressed scenarios (c100x1kz: 100 x 1 KiB JSON-like text with
# permessage-deflate as a browser offers it; c100x1kzn: the same without
# context takeover either way; idle10kz and idle10kzn: 10,000 idle connections with it,
# with and without context takeover, each after one echoed message; idle10k1:
# the same without compression, their baseline) run luaws, node ws and Python
# websockets only, each with compression on; the fan-out part's inprocz is the
# compressed fan-out.
set -eu
cd "$(dirname "$0")/.."

have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }

if [ "${BENCH_DEPS:-}" != none ]; then
  missing=""
  for p in gcc make libssl-dev openssl python3-websockets lua5.1 lua-http lua5.4 liblua5.4-dev libev-dev \
           libhiredis-dev redis-server nginx libnginx-mod-http-lua lua-nginx-websocket libwebsockets-dev; do
    have_pkg "$p" || missing="$missing $p"
  done
  command -v gnuplot >/dev/null 2>&1 || missing="$missing gnuplot-nox"
  command -v node >/dev/null 2>&1 || missing="$missing nodejs"
  command -v npm >/dev/null 2>&1 || missing="$missing npm"
  if [ -n "$missing" ]; then
    echo "bench: installing Debian packages:$missing"
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
  fi
  for m in ws socket.io @socket.io/redis-adapter ioredis; do
    if [ ! -d "bench/peers/node_modules/$m" ]; then
      echo "bench: installing the node peers into bench/peers/node_modules (npm ci)"
      (cd bench/peers && npm ci --no-audit --no-fund --silent >/dev/null)
      break
    fi
  done
fi

make --no-print-directory -f bench/Makefile.inc bench-tools

rm -f build/bench/luaws-build.failed
if [ -f examples/echo.lua ]; then
  echo "bench: building luaws (make all)"
  if ! make --no-print-directory all >build/bench/luaws-build.log 2>&1; then
    echo "bench: luaws build failed (build/bench/luaws-build.log); luaws is skipped"
    touch build/bench/luaws-build.failed
  fi
fi

rc=0
if [ "${BENCH_FANOUT:-}" != only ] && [ "${BENCH_SCALE:-}" != only ]; then
  /usr/bin/python3 bench/runner.py "$@" || rc=$?
fi
if [ "${BENCH_FANOUT:-}" != none ] && [ "${BENCH_WSS:-}" != only ] && [ "${BENCH_SCALE:-}" != only ]; then
  BENCH_DEPS=none BENCH_BUILT=1 bench/fanout.sh || rc=$?
fi
if [ "${BENCH_SCALE:-}" != none ] && [ "${BENCH_WSS:-}" != only ] && [ "${BENCH_FANOUT:-}" != only ] &&
   [ ! -e build/bench/luaws-build.failed ]; then
  SCALE_RESULTS="${BENCH_RESULTS:-bench/results}" BENCH_BUILT=1 bench/scale.sh || rc=$?
fi
exit $rc
