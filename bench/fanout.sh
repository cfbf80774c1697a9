#!/bin/sh
# SPDX-License-Identifier: MIT
# bench/fanout.sh -- the fan-out scenarios (bench/run.sh runs this after the
# echo matrix; it also runs alone).
#
# 1. installs what it lacks (unless BENCH_DEPS=none): Debian's redis-server,
#    and node ws, socket.io, @socket.io/redis-adapter and ioredis into
#    bench/peers/node_modules (npm ci, the versions pinned in package.json and
#    package-lock.json);
# 2. builds build/bench/fanout and loadgen (bench/Makefile.inc) and luaws
#    (`make all`), unless bench/run.sh did already (BENCH_BUILT=1);
# 3. runs bench/fanout.py, which writes its section of bench/results/latest.md
#    (and every JSON line to bench/results/fanout.raw).
#
# Knobs: FANOUT_SCENARIOS (inproc,redis,mem,inprocz: the last is the compressed
# fan-out, 1 KiB JSON with permessage-deflate without context takeover),
# FANOUT_SERVERS (luaws,node,floor,corked,sio), FANOUT_ZSIZES (1024),
# FANOUT_SUBS (10000), FANOUT_SIZES (16,1024), FANOUT_WINDOW (8),
# FANOUT_DURATION (3), FANOUT_WARMUP (1), FANOUT_REPEATS (3), FANOUT_BUDGET
# (720 s), FANOUT_QUIET_TOTAL (90 s); see bench/fanout.py. A full run takes
# about 5 minutes on a quiet machine.
set -eu
cd "$(dirname "$0")/.."

have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }

if [ "${BENCH_DEPS:-}" != none ]; then
  missing=""
  command -v redis-server >/dev/null 2>&1 || missing="$missing redis-server"
  command -v node >/dev/null 2>&1 || missing="$missing nodejs"
  command -v npm >/dev/null 2>&1 || missing="$missing npm"
  for p in gcc make libssl-dev lua5.4 liblua5.4-dev libev-dev libhiredis-dev; do
    have_pkg "$p" || missing="$missing $p"
  done
  if [ -n "$missing" ]; then
    echo "fanout: installing Debian packages:$missing"
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
  fi
  for m in ws socket.io @socket.io/redis-adapter ioredis; do
    if [ ! -d "bench/peers/node_modules/$m" ]; then
      echo "fanout: installing the node peers into bench/peers/node_modules (npm ci)"
      (cd bench/peers && npm ci --no-audit --no-fund --silent >/dev/null)
      break
    fi
  done
fi

if [ "${BENCH_BUILT:-}" != 1 ]; then
  make --no-print-directory -f bench/Makefile.inc bench-tools
  mkdir -p build/bench
  rm -f build/bench/luaws-build.failed
  echo "fanout: building luaws (make all)"
  if ! make --no-print-directory all >build/bench/luaws-build.log 2>&1; then
    echo "fanout: luaws build failed (build/bench/luaws-build.log); luaws is skipped"
    touch build/bench/luaws-build.failed
  fi
fi

exec /usr/bin/python3 bench/fanout.py "$@"
