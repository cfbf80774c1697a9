#!/bin/sh
# Run the browser tests of the luaws example pages (spec/browser/*.test.js)
# with node's test runner, headless Debian chromium and playwright-core.
#
# Usage: spec/browser/run.sh [--standin] [TEST_FILE...]
#   --standin  run against spec/browser/standin_echo.js instead of the luaws
#              examples (the same as LUAWS_BROWSER_STANDIN=1)
#
# Environment:
#   LUAWS_BROWSER_SERVER         echo server command   (default: lua5.4 examples/echo.lua)
#   LUAWS_BROWSER_CHAT_SERVER    chat server command   (default: lua5.4 examples/chat.lua)
#   LUAWS_BROWSER_ORIGIN_SERVER  origin server command (default: lua5.4 examples/origin.lua)
#   LUAWS_BROWSER_CHROMIUM       browser binary        (default: /usr/bin/chromium)
#   LUAWS_DEPS=none              install nothing
# Each command is run from the repo root with "--port 0 --host 127.0.0.1" added
# and must print "... listening on http://HOST:PORT/".
#
# It installs what is missing first: chromium through apt-get (never a browser
# download), and playwright-core + ws into spec/browser/node_modules from the
# lock file. It prints node's test summary, then one line "N passed, N failed",
# and exits non-zero on any failure. Screenshots and the log (node-test.log) go
# to spec/browser/out/.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)

if [ "${1:-}" = --standin ]; then
  LUAWS_BROWSER_STANDIN=1
  export LUAWS_BROWSER_STANDIN
  shift
fi

if [ "${LUAWS_DEPS:-}" != none ]; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  missing=""
  [ -x "${LUAWS_BROWSER_CHROMIUM:-/usr/bin/chromium}" ] || missing="$missing chromium"
  command -v node >/dev/null 2>&1 || missing="$missing nodejs"
  command -v npm >/dev/null 2>&1 || missing="$missing npm"
  if [ -n "$missing" ]; then
    echo "browser tests: installing Debian packages:$missing"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $missing >/dev/null
  fi
  if [ ! -f "$here/node_modules/playwright-core/package.json" ] || [ ! -f "$here/node_modules/ws/package.json" ]; then
    echo "browser tests: installing playwright-core and ws into spec/browser/node_modules"
    (cd "$here" && npm ci --no-audit --no-fund --silent >/dev/null)
  fi
fi

cd "$root"
if [ $# -eq 0 ]; then
  set -- spec/browser/*.test.js
fi
# One test file at a time: each launches its own chromium, and the machine has two cores.
concurrency=""
node --help | grep -q -- --test-concurrency && concurrency="--test-concurrency=1"

# Run the tests with the output on the terminal and in out/node-test.log, then
# end with one plain line "N passed, N failed" from node's summary
# ("ℹ pass N", "ℹ fail N"; cancelled tests count as failed) for CI to add up.
mkdir -p "$here/out"
log="$here/out/node-test.log"
rcfile="$here/out/node-test.rc"
rm -f "$rcfile"
{ node --test $concurrency --test-reporter=spec "$@"; echo $? > "$rcfile"; } 2>&1 | tee "$log"
rc=$(cat "$rcfile" 2>/dev/null || echo 1)
count() { sed -n "s/^ℹ $1 \([0-9][0-9]*\)\$/\1/p" "$log" | tail -n 1; }
passed=$(count pass)
failed=$(count fail)
cancelled=$(count cancelled)
if [ -z "$passed" ] || [ -z "$failed" ]; then
  echo "browser tests: node --test printed no summary (exit $rc)"
  echo "0 passed, 1 failed"
  exit 1
fi
echo "$passed passed, $((failed + ${cancelled:-0})) failed"
exit "$rc"
