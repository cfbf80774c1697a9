#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# scripts/hardening-controls.sh: show that each limit spec of spec/hardening/
# fails without its limit. For each limit it runs the specs that attack it
# against a server with the limit lifted (LUAWS_HARDENING_OVERRIDE, read by
# spec/hardening/servers/echo.lua), or against a build of luaws.core with
# the compile-time head limits raised (LUAWS_HARDENING_CPATH), and expects
# every one of them to fail. Ends with "controls: N passed, N failed" (a
# control passes when its specs fail). `make hardening-controls`.
set -uo pipefail
cd "$(dirname "$0")/.."
BUSTED=${BUSTED:-busted --lua=lua5.4}
OUT=build/hardening/controls
mkdir -p "$OUT"
pass=0 fail=0

# control NAME ENV SPEC FILTER...: run SPEC's tests matching any FILTER (a
# Lua pattern on the test name) with ENV set; each must be "not ok".
control() {
  local name=$1 env=$2 spec=$3 log="$OUT/$1.tap"
  shift 3
  local args=() f
  # busted splits an option's value at spaces: write them as %s
  for f in "$@"; do args+=(--filter "${f// /%s}"); done
  echo "=== $name: $env $spec ${args[*]}"
  env $env $BUSTED -o TAP "${args[@]}" "$spec" >"$log" 2>&1
  local ran failed
  ran=$(grep -cE '^(not )?ok [0-9]+' "$log")
  failed=$(grep -cE '^not ok [0-9]+' "$log")
  grep -E '^(not )?ok [0-9]+|^# Failure message' "$log" | sed 's/^/    /'
  if [ "$ran" -gt 0 ] && [ "$failed" = "$ran" ]; then
    echo "=== $name: ok, $failed of $ran failed without the limit"
    pass=$((pass + 1))
  else
    echo "=== $name: FAILED, only $failed of $ran failed without the limit (log: $log)"
    fail=$((fail + 1))
  fi
}

control handshake_timeout "LUAWS_HARDENING_OVERRIDE=handshake_timeout=0" \
  spec/hardening/handshake_spec.lua "slowloris"
control max_message_size "LUAWS_HARDENING_OVERRIDE=max_message_size=9e18" \
  spec/hardening/messages_spec.lua "closes with 1009"
control max_backpressure "LUAWS_HARDENING_OVERRIDE=max_backpressure=0" \
  spec/hardening/flood_spec.lua "200 MiB" "max_backpressure 4 MiB"
control keep_alive_timeout "LUAWS_HARDENING_OVERRIDE=keep_alive_timeout=0" \
  spec/hardening/faults_spec.lua "never answers pings"
control max_connections "LUAWS_HARDENING_OVERRIDE=max_connections=0" \
  spec/hardening/capacity_spec.lua "past max_connections"

# The head limits are compile-time: build luaws.core with them raised.
NOLIMIT=build/hardening/nolimit
mkdir -p "$NOLIMIT/obj" "$NOLIMIT/luaws"
for f in csrc/*/*.c; do
  o=${f#csrc/}; o=${o%.c}; o=${o//\//_}   # io/conn.c -> io_conn.o: names unique across layers
  cc -O2 -g -std=c11 -D_GNU_SOURCE -fPIC -fvisibility=hidden -DOPENSSL_API_COMPAT=30000 \
    -DLUAWS_MAX_HEAD_BYTES=1048576 -DLUAWS_MAX_HEADERS=1000 \
    -I/usr/include/lua5.4 -Icsrc -c -o "$NOLIMIT/obj/$o.o" "$f" || exit 1
done
cc -shared -o "$NOLIMIT/luaws/core.so" "$NOLIMIT"/obj/*.o -lev -lssl -lcrypto || exit 1
control head_limits "LUAWS_HARDENING_CPATH=$NOLIMIT/?.so" \
  spec/hardening/handshake_spec.lua "431"

echo "controls: $pass passed, $fail failed"
[ "$fail" = 0 ]
