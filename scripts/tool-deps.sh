#!/bin/sh
# Install the Debian packages named on the command line when missing, for
# the tool targets (make fuzz: clang libclang-rt-14-dev; make coverage: lcov).
# Like scripts/deps.sh: apt-get as root or through sudo, and nothing at all
# when LUAWS_DEPS=none (a machine you manage yourself).
set -e
[ "${LUAWS_DEPS:-}" = none ] && exit 0
missing=""
for p in "$@"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
echo "tool-deps: installing Debian packages:$missing"
SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
