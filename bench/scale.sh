#!/bin/sh
# SPDX-License-Identifier: MIT
# bench/scale.sh -- the cost curve with scale (issue 14): luaws (examples/echo.lua,
# callback style) at 100, 1,000, 10,000 and 100,000 connections, all idle and with
# 1% of them echoing 16 B closed-loop; server RSS per connection, server CPU per
# echoed message and a fresh client's echo p50/p99 at each level. bench/run.sh runs
# it last (BENCH_SCALE=none skips it; BENCH_SCALE=only runs it alone).
#
#   bench/scale.sh                      # about 3 minutes with 3 repeats, plus at most 2 of waiting for a quiet CPU
#   SCALE_LEVELS=100,1000 SCALE_REPEATS=1 SCALE_RESULTS=/tmp/s bench/scale.sh
#
# Writes bench/results/scale.md and scale.png (committed), scale.dat (gnuplot's
# input) and build/bench/scale.raw (every loadgen JSON line; neither committed).
# Knobs: SCALE_LEVELS, SCALE_REPEATS (3), SCALE_SRC (16 source addresses
# 127.0.0.1-16), SCALE_WINDOW (3 s echo window), SCALE_FRESH (1 s of fresh-client
# echoes), SCALE_QUIET_WAIT / SCALE_QUIET_TOTAL (20 / 120 s of waiting for a quiet
# CPU), SCALE_RESULTS (bench/results), SCALE_PLOT_ONLY=1 (only draw scale.png again
# from the last scale.dat); see bench/scale.py.
#
# The machine: it raises a kernel limit only when it is below what the largest
# level needs, prints every change, and restores nothing (a disposable bench VM):
# the change is listed at the end and in scale.md. RLIMIT_NOFILE is raised by
# scale.py for its own processes only (server and loadgen); without
# CAP_SYS_RESOURCE its hard limit cannot go up, and then scale.py runs the
# largest level that fits instead of those that do not (there also with 1% of the
# largest level asked for echoing: 1,000 for 100,000), and says so.
set -eu
cd "$(dirname "$0")/.."

levels=${SCALE_LEVELS:-100,1000,10000,100000}
src=${SCALE_SRC:-16}
results=${SCALE_RESULTS:-bench/results}
max=$(echo "$levels" | tr ',' '\n' | sort -n | tail -1)

if [ "${BENCH_BUILT:-}" != 1 ]; then
  make --no-print-directory -f bench/Makefile.inc bench-tools
  echo "scale: building luaws (make all)"
  make --no-print-directory all >build/bench/luaws-build.log 2>&1 ||
    { echo "scale: luaws build failed (build/bench/luaws-build.log)"; exit 1; }
fi

changed=""
# raise KEY to at least WANT (a single number)
need() {
  key=$1 want=$2
  have=$(sysctl -n "$key" 2>/dev/null) || { echo "scale: sysctl $key: cannot read, left alone"; return 0; }
  if [ "$have" -lt "$want" ]; then
    if sysctl -q -w "$key=$want" >/dev/null 2>&1; then
      echo "scale: sysctl $key: $have -> $want (left so)"
      changed="$changed- sysctl $key: $have -> $want
"
    else
      echo "scale: sysctl $key is $have, wanted $want, and cannot be set: the largest level may fail"
    fi
  else
    echo "scale: sysctl $key = $have (>= $want, unchanged)"
  fi
}
need fs.nr_open $((max + 10000))            # one process's RLIMIT_NOFILE ceiling
need fs.file-max $((2 * max + 100000))       # both ends of every connection, machine-wide
need net.core.somaxconn 1024                 # luaws listens with a backlog of 511
need net.ipv4.tcp_max_syn_backlog 1024       # 500 handshakes in flight per loadgen

# ephemeral ports: the generators spread over $src source addresses, so each address
# needs max/src ports, plus the TIME_WAIT of a previous run (x2), plus slack
range=$(sysctl -n net.ipv4.ip_local_port_range)
lo=$(echo "$range" | awk '{print $1}'); hi=$(echo "$range" | awk '{print $2}')
want=$((2 * max / src + 2000))
if [ $((hi - lo)) -lt "$want" ]; then
  if sysctl -q -w net.ipv4.ip_local_port_range="1024 65000" >/dev/null 2>&1; then
    echo "scale: sysctl net.ipv4.ip_local_port_range: $lo $hi -> 1024 65000 (left so)"
    changed="$changed- sysctl net.ipv4.ip_local_port_range: $lo $hi -> 1024 65000
"
  else
    echo "scale: net.ipv4.ip_local_port_range $lo-$hi is short of $want ports and cannot be set"
  fi
else
  echo "scale: sysctl net.ipv4.ip_local_port_range = $lo $hi ($((hi - lo)) ports x $src addresses, unchanged)"
fi
[ -n "$changed" ] || changed="- no kernel setting (every one was already enough)
"

rc=0
if [ "${SCALE_PLOT_ONLY:-}" != 1 ]; then      # SCALE_PLOT_ONLY=1: plot the last scale.dat again
  SCALE_CHANGES="$changed" /usr/bin/python3 bench/scale.py || rc=$?
fi

if command -v gnuplot >/dev/null 2>&1 && [ -s "$results/scale.dat" ]; then
  gnuplot <<EOF || rc=$?
set terminal pngcairo size 1500,500 font "sans,10" noenhanced
set output "$results/scale.png"
set datafile missing "NaN"
set multiplot layout 1,3 title "luaws (examples/echo.lua, callback) by concurrent connections; bench/scale.sh"
set logscale x
set xrange [50:200000]
set xtics ("100" 100, "1k" 1000, "10k" 10000, "100k" 100000)
set grid
set key top right
set xlabel "connections (log)"
set ylabel "server CPU us per echoed 16 B message"
set yrange [0:*]
set title "CPU per message, 1% of the connections echoing"
plot "$results/scale.dat" using 1:4 with linespoints lw 2 pt 7 title "server CPU us/msg", \
     "" using 1:9 with points pt 9 ps 2 title "1% of the level that could not run, echoing"
set ylabel "server RSS per connection, bytes"
set title "RSS per connection"
plot "$results/scale.dat" using 1:2 with linespoints lw 2 pt 7 title "all idle", \
     "" using 1:3 with linespoints lw 2 pt 5 title "1% echoing", \
     "" using 1:10 with points pt 9 ps 2 title "1% of the level that could not run, echoing"
set logscale y
set yrange [*:*]
set ylabel "fresh client echo p99, ms (log)"
set title "A fresh client's 16 B echo p99 (target: < 5 ms)"
plot "$results/scale.dat" using 1:5 with linespoints lw 2 pt 7 title "core 0, all idle", \
     "" using 1:6 with linespoints lw 2 pt 5 title "core 0, 1% echoing", \
     "" using 1:7 with linespoints lw 2 pt 6 dt 2 title "core 1, all idle", \
     "" using 1:8 with linespoints lw 2 pt 4 dt 2 title "core 1, 1% echoing", \
     "" using 1:11 with points pt 9 ps 2 title "core 0, that 1% echoing", \
     "" using 1:12 with points pt 8 ps 2 title "core 1, that 1% echoing", \
     5 with lines lc rgb "red" dt 3 title "5 ms"
unset multiplot
EOF
  echo "scale: wrote $results/scale.png"
fi
echo "scale: left changed on this machine:"
printf '%s' "$changed"
exit $rc
