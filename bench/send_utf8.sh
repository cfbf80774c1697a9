#!/bin/sh
# SPDX-License-Identifier: MIT
#
# bench/send_utf8.sh [N]: instructions per 16 KiB text ws:send, with and
# without the UTF-8 check (check_send_utf8), for three kinds of text, under
# callgrind (bench/send_utf8.lua says what runs). Needs valgrind and `make`.
# Prints a markdown table; the callgrind files stay in build/cg/.
set -eu
cd "$(dirname "$0")/.."
n=${1:-1000}
mkdir -p build/cg
echo "| text | check on | check off | the check |"
echo "| --- | ---: | ---: | ---: |"
for kind in ascii latin cjk; do
  for check in on off; do
    out=build/cg/send-$check-$kind.out
    valgrind --tool=callgrind --callgrind-out-file="$out" lua5.4 bench/send_utf8.lua "$check" "$kind" "$n" \
      >/dev/null 2>&1
    # inclusive instructions of lconn_send (the C side of ws:send), all calls
    ir=$(callgrind_annotate --inclusive=yes --threshold=100 "$out" 2>/dev/null |
      awk '/:lconn_send( |$)/ { gsub(",", "", $1); print $1; exit }')
    eval "ir_$check=$ir"
  done
  # the client's n two-byte "go" sends are in both counts: the difference is the check
  awk -v k="$kind" -v on="$ir_on" -v off="$ir_off" -v n="$n" 'BEGIN {
    printf "| %s | %.0f | %.0f | %.0f |\n", k, on / n, off / n, (on - off) / n }'
done
