#!/bin/bash
# Instructions per echoed message, user space only (callgrind counts
# instructions, so the figure is repeatable on a noisy machine, unlike a
# timing): the echo example under callgrind, driven by loadgen for a fixed
# time, instructions divided by the messages echoed. The counters are zeroed
# once the server listens (callgrind_control -z), so start-up is not in the
# figure; the 20 handshakes are (about 0.1% of a run).
#   bench/profile.sh [REV]      REV: a git revision to build and measure
#                               instead of the working tree
# The workload (issue 14): 20 connections, closed loop (1 in flight each),
# 16 B and 16 KiB messages, text (ASCII) and binary, the callback style and
# the coroutine style (examples/echo.lua --coroutine).
#   PROFILE_STYLES="callback coroutine"   PROFILE_SIZES="16 16384"
#   PROFILE_KINDS="binary text"           PROFILE_CONNS=20   PROFILE_SECONDS=4
# glibc's memcpy copies large blocks with `rep movsb`, which callgrind counts
# as one instruction per byte (the copy of a 16 KiB message into its Lua
# string is then 16,384 of them); GLIBC_TUNABLES=glibc.cpu.x86_rep_movsb_threshold=4194304
# in the environment makes it use 32-byte vector moves, counted as such.
# PROFILE_SIZES=handshake counts a connect -> upgrade -> close cycle instead
# (issue 14 item 5: loadgen --mode handshake, PROFILE_HS_CONNS=4 at a time,
# one run per style; "per cycle"), e.g.
#   PROFILE_SIZES=handshake bench/profile.sh
# Output: one line per run ("callback 16384 text: N messages, I instructions,
# K per message"), and callgrind's files in build/profile/ for
# callgrind_annotate (the functions that cost).
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
conns=${PROFILE_CONNS:-20}
secs=${PROFILE_SECONDS:-4}
for style in ${PROFILE_STYLES:-callback coroutine}; do
  for size in ${PROFILE_SIZES:-16 16384}; do
    kinds=${PROFILE_KINDS:-binary text}
    [ "$size" = handshake ] && kinds=cycle
    for kind in $kinds; do
      port=$((20000 + $$ % 20000))
      opt=; [ "$style" = coroutine ] && opt=--coroutine
      txt=; [ "$kind" = text ] && txt=--text
      file="$out/callgrind.$tag.$style.$size.$kind"
      valgrind --tool=callgrind --callgrind-out-file="$file" \
        lua5.4 "$src/examples/echo.lua" --port $port --host 127.0.0.1 $opt >/dev/null 2>&1 &
      pid=$!
      i=0; while [ $i -lt 300 ] && ! (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null; do sleep 0.1; i=$((i+1)); done
      callgrind_control -z $pid >/dev/null 2>&1 || true   # start-up out of the count
      if [ "$size" = handshake ]; then
        load=(--mode handshake --conns "${PROFILE_HS_CONNS:-4}"); unit=cycle
      else
        load=(--conns "$conns" --size "$size" $txt); unit=message
      fi
      ops=$(build/bench/loadgen --url ws://127.0.0.1:$port/ws "${load[@]}" \
              --duration "$secs" --warmup 0 --quiet 2>/dev/null | sed -n 's/.*"ops":\([0-9]*\).*/\1/p')
      kill -INT $pid; wait $pid || true
      ir=$(callgrind_annotate "$file" 2>/dev/null | sed -n 's/^\([0-9,]*\) .*PROGRAM TOTALS.*/\1/p' | tr -d ,)
      if [ "$size" = handshake ]; then
        echo "$tag $style handshake: $ops cycles, $ir instructions, $((ir / (ops > 0 ? ops : 1))) per cycle"
      else
        echo "$tag $style $size $kind: $ops ${unit}s, $ir instructions, $((ir / (ops > 0 ? ops : 1))) per $unit"
      fi
    done
  done
done
