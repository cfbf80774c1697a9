#!/bin/sh
# Install what building and testing luaws needs, and say what it installs.
# Debian packages through apt-get (root, or sudo when there is one), and the
# npm peer used by the peer specs into spec/peers/node_modules.
# Set LUAWS_DEPS=none to skip (a machine you manage yourself).
set -e
[ "${LUAWS_DEPS:-}" = none ] && exit 0
cd "$(dirname "$0")/.."

PKGS="gcc make lua5.4 liblua5.4-dev libev-dev libssl-dev zlib1g-dev libhiredis-dev lua-busted luarocks lua-cjson lua-cqueues lua-luv python3-websockets python3-prometheus-client python3-yaml redis-server nginx openssl valgrind"
missing=""
for p in $PKGS; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
# node and npm may come from elsewhere than Debian (a newer nodejs): only the
# commands matter.
command -v node >/dev/null 2>&1 || missing="$missing nodejs"
command -v npm >/dev/null 2>&1 || missing="$missing npm"
if [ -n "$missing" ]; then
  echo "deps: installing Debian packages:$missing"
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
fi

if [ ! -d spec/peers/node_modules/ws ]; then
  echo "deps: installing npm ws into spec/peers/node_modules"
  (cd spec/peers && npm install --no-audit --no-fund --silent >/dev/null)
fi
