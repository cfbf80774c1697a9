#!/usr/bin/env bash
# Run the libFuzzer targets built by `make fuzz-build`, one at a time, each for
# FUZZ_SECONDS (default 60) on a fresh copy of its seed corpus:
#   fuzz/corpus/<t>/  ->  build/fuzz/corpus/<t>/   (new inputs go only there)
# A crash, leak, timeout or invariant failure leaves the input in
# build/fuzz/artifacts/<t>/ and counts as a failed target. Prints per target
# the executions and the coverage reached, then "N passed, N failed" (one per
# target). Usage: scripts/fuzz.sh [TARGET...]   (default: frame http utf8 chunked pmd proxy forwarded)
# `make fuzz` installs clang and libclang-rt-14-dev first when missing
# (scripts/tool-deps.sh), then builds, then runs this.
set -uo pipefail
cd "$(dirname "$0")/.."

SECONDS_EACH=${FUZZ_SECONDS:-60}
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(frame http utf8 chunked pmd proxy forwarded)
out=build/fuzz
pass=0 fail=0
summary=()

for t in "${targets[@]}"; do
  bin=$out/${t}_fuzz
  corpus=$out/corpus/$t
  art=$out/artifacts/$t
  log=$out/$t.log
  if [ ! -x "$bin" ]; then
    echo "fuzz: $bin is not built (make fuzz-build)" >&2
    fail=$((fail + 1)); summary+=("$t: not built"); continue
  fi
  rm -rf "$corpus" "$art" && mkdir -p "$corpus" "$art"
  cp fuzz/corpus/"$t"/* "$corpus"/
  opts=(-max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048
        -print_final_stats=1 -artifact_prefix="$art/")
  case $t in
    http) opts+=(-dict=fuzz/http.dict -max_len=10240) ;;
    chunked) opts+=(-max_len=20000) ;;
    pmd) opts+=(-dict=fuzz/pmd.dict -max_len=8192) ;;
    proxy) opts+=(-max_len=4200) ;;
    forwarded) opts+=(-max_len=9000) ;;
  esac
  echo "=== fuzz $t: $SECONDS_EACH s, seeds $(ls fuzz/corpus/"$t" | wc -l)"
  "$bin" "${opts[@]}" "$corpus" >"$log" 2>&1
  rc=$?
  # The last status line carries the coverage; the final stats the counts.
  status=$(grep -aE '^#[0-9]+[[:space:]]+(DONE|pulse|NEW|REDUCE|INITED)' "$log" | tail -n 1)
  execs=$(grep -aE '^stat::number_of_executed_units:' "$log" | awk '{print $2}')
  rate=$(grep -aE '^stat::average_exec_per_sec:' "$log" | awk '{print $2}')
  cov=$(sed -nE 's/.* cov: ([0-9]+).*/\1/p' <<<"$status")
  ft=$(sed -nE 's/.* ft: ([0-9]+).*/\1/p' <<<"$status")
  corp=$(sed -nE 's/.* corp: ([0-9]+)\/.*/\1/p' <<<"$status")
  crashes=$(find "$art" -maxdepth 1 -type f | wc -l)
  line="$t: ${execs:-?} executions (${rate:-?}/s), cov ${cov:-?} edges, ft ${ft:-?} features, corpus ${corp:-?} inputs"
  if [ "$rc" = 0 ] && [ "$crashes" = 0 ]; then
    pass=$((pass + 1)); line="$line: ok"
  else
    fail=$((fail + 1)); line="$line: FAILED (exit $rc, see $log)"
    grep -aE 'ERROR: |invariant violated|SUMMARY:|^artifact_prefix|Test unit written' "$log" | head -n 8
    find "$art" -maxdepth 1 -type f | sed 's/^/  input: /'
  fi
  echo "$line"
  summary+=("$line")
done

echo "=== fuzz summary"
printf '%s\n' "${summary[@]}"
echo "$pass passed, $fail failed"
[ "$fail" = 0 ]
