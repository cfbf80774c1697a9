#!/usr/bin/env bash
# Line and branch coverage of csrc/ by the specs; `make coverage` runs it
# after building the instrumented core.
#   scripts/coverage.sh COV_CORE COV_DIR
# COV_CORE: the --coverage build of core.so; COV_DIR: its object directory
# (the .gcno/.gcda files). From the environment: BUSTED, COV_SPECS (default
# spec), COV_CODECS, COV_MIN_CODEC, COV_MIN_TOTAL (see the Makefile).
#
# The instrumented core stands in for build/luaws/core.so during the run, so
# specs that start examples/echo.lua in a subprocess are measured too; the
# plain core is relinked on exit. Writes build/coverage/: specs.tap,
# coverage.info (lcov, with branches), html/ (genhtml) and summary.txt,
# which is also printed: per file lines and branches hit, the line numbers
# no spec reaches, totals, and the threshold verdict. A failing spec is
# reported but does not stop the report; a threshold miss fails the run.
set -uo pipefail
cd "$(dirname "$0")/.."

core=${1:?usage: coverage.sh COV_CORE COV_DIR}
objdir=${2:?usage: coverage.sh COV_CORE COV_DIR}
busted=${BUSTED:-busted --lua=lua5.4}
specs=${COV_SPECS:-spec}
codecs=${COV_CODECS:-proto/frame.c proto/utf8.c proto/http.c proto/handshake.c}
min_codec=${COV_MIN_CODEC:-95}
min_total=${COV_MIN_TOTAL:-85}
out=build/coverage
rc_branch=(--rc lcov_branch_coverage=1)

rm -rf "$out" && mkdir -p "$out"
lcov --quiet --zerocounters --directory "$objdir"

# Put the instrumented core where every process looks, and the plain one
# back whatever happens; the kind marker tells make to relink it too.
restore() {
  rm -f build/.kind-cov
  make --no-print-directory all >/dev/null || echo "coverage: could not relink the plain core (run make)" >&2
}
trap restore EXIT
mkdir -p build/luaws
rm -f build/.kind-* && touch build/.kind-cov
cp "$core" build/luaws/core.so

echo "=== coverage: $busted $specs"
# shellcheck disable=SC2086  # BUSTED and COV_SPECS are word lists
$busted -o TAP $specs >"$out/specs.tap" 2>&1
spec_line=$(scripts/tap-summary "$out/specs.tap" 2>&1 | tail -n 1)

grep -a '^not ok' "$out/specs.tap" | head -n 20

# (lcov 1.16's geninfo warns "Subroutine ... redefined" on Debian 12: noise.)
lcov --quiet "${rc_branch[@]}" --capture --directory "$objdir" --base-directory . \
  --output-file "$out/all.info" 2> >(grep -v 'redefined at' >&2) || exit 1
lcov --quiet "${rc_branch[@]}" --extract "$out/all.info" "$PWD/csrc/*" \
  --output-file "$out/coverage.info" || exit 1
genhtml --quiet --branch-coverage --legend --output-directory "$out/html" "$out/coverage.info" \
  >/dev/null || echo "coverage: genhtml failed (the summary below is still right)" >&2

# Per file from the .info records: LF/LH lines found/hit, BRF/BRH branches,
# DA:<line>,0 the lines never run, shown as ranges.
awk -v codecs="$codecs" -v min_codec="$min_codec" -v min_total="$min_total" '
  function pct(h, f) { return f ? sprintf("%6.2f%%", 100 * h / f) : "   n/a " }
  function ranges(list,   n, a, i, out, s, e) {
    n = split(list, a, " "); out = ""
    for (i = 1; i <= n; i++) {
      s = a[i]; e = s
      while (i < n && a[i + 1] == e + 1) { i++; e = a[i] }
      out = out (out == "" ? "" : ",") (s == e ? s : s "-" e)
    }
    return out
  }
  BEGIN { ncodec = split(codecs, want, " "); for (i = 1; i <= ncodec; i++) is_codec[want[i]] = 1 }
  /^SF:/   { file = $0; sub(/^SF:.*\/csrc\//, "", file); files[++nf] = file; miss[file] = "" }
  /^DA:/   { split(substr($0, 4), d, ","); if (d[2] == 0) miss[file] = miss[file] " " d[1] }
  /^LF:/   { lf[file] = substr($0, 4) }
  /^LH:/   { lh[file] = substr($0, 4) }
  /^BRF:/  { brf[file] = substr($0, 5) }
  /^BRH:/  { brh[file] = substr($0, 5) }
  END {
    printf "%-20s %18s %20s\n", "file", "lines hit/found", "branches hit/found"
    for (i = 1; i <= nf; i++) {
      f = files[i]
      printf "%-20s %7s %9s  %7s %11s\n", f, pct(lh[f], lf[f]), lh[f] + 0 "/" lf[f] + 0,
             pct(brh[f], brf[f]), brh[f] + 0 "/" brf[f] + 0
      tlf += lf[f]; tlh += lh[f]; tbf += brf[f]; tbh += brh[f]
    }
    printf "%-20s %7s %9s  %7s %11s\n", "total", pct(tlh, tlf), tlh "/" tlf, pct(tbh, tbf), tbh "/" tbf
    print ""
    print "lines no spec reaches:"
    for (i = 1; i <= nf; i++) {
      f = files[i]
      if (miss[f] != "") printf "  %-20s %s\n", f, ranges(miss[f])
    }
    print ""
    bad = 0
    for (i = 1; i <= ncodec; i++) {
      f = want[i]
      ok = lf[f] && 100 * lh[f] / lf[f] >= min_codec
      printf "threshold: %-18s lines %s >= %d%%: %s\n", f, pct(lh[f], lf[f]), min_codec, ok ? "ok" : "BELOW"
      if (!ok) bad = 1
    }
    ok = tlf && 100 * tlh / tlf >= min_total
    printf "threshold: %-18s lines %s >= %d%%: %s\n", "total", pct(tlh, tlf), min_total, ok ? "ok" : "BELOW"
    if (!ok) bad = 1
    exit bad
  }' "$out/coverage.info" >"$out/summary.txt"
verdict=$?
echo "specs: $spec_line" >>"$out/summary.txt"
cat "$out/summary.txt"
echo "report: $out/html/index.html"
exit $verdict
