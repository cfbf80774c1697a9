#!/bin/bash
# Instructions per echoed message, user space only (callgrind counts
# instructions, so the figure is repeatable on a noisy machine, unlike a
# timing): the echo example under callgrind, driven by loadgen for a fixed
# time, instructions divided by the messages echoed. The counters are zeroed
# once the server listens (callgrind_control -z), so start-up is not in the
# figure; the connections' handshakes are (a few hundred against 10^5 or
# more messages).
#   bench/profile.sh [REV]      REV: a git revision to build and measure
#                               instead of the working tree
# Output: one line per scenario, and callgrind's files in build/profile/.
set -eu
cd "$(dirname "$0")/.."
make --no-print-directory bench-tools >/dev/null
make --no-print-directory all SANITIZE=0 >/dev/null   # a sanitized core cannot run under valgrind
out=build/profile; mkdir -p "$out"
src=$PWD
if [ $# -gt 0 ]; then
  src=$(mktemp -d); trap 'git worktree remove --force "$src" >/dev/null 2>&1 || true' EXIT
  git worktree add -q --detach "$src" "$1"
  (cd "$src" && make --no-print-directory all >/dev/null)
fi
tag=${1:-worktree}
for scen in "100 16" "10 16384"; do
  set -- $scen
  port=$((20000 + $$ % 20000))
  valgrind --tool=callgrind --callgrind-out-file="$out/callgrind.$tag.$1x$2" \
    lua5.4 "$src/examples/echo.lua" --port $port --host 127.0.0.1 >/dev/null 2>&1 &
  pid=$!
  i=0; while [ $i -lt 200 ] && ! (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null; do sleep 0.1; i=$((i+1)); done
  callgrind_control -z $pid >/dev/null 2>&1 || true   # start-up out of the count
  ops=$(build/bench/loadgen --url ws://127.0.0.1:$port/ws --conns $1 --size $2 --duration 4 --warmup 0 --quiet 2>/dev/null |
        sed -n 's/.*"ops":\([0-9]*\).*/\1/p')
  kill -INT $pid; wait $pid || true
  ir=$(callgrind_annotate "$out/callgrind.$tag.$1x$2" 2>/dev/null | sed -n 's/^\([0-9,]*\) .*PROGRAM TOTALS.*/\1/p' | tr -d ,)
  echo "$tag $1x$2: $ops messages, $ir instructions, $((ir / (ops > 0 ? ops : 1))) per message"
done
