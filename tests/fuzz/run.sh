#!/usr/bin/env bash
# Runs every libFuzzer target for a while (default 600 s each; `make fuzz FUZZ_SECONDS=30` for a
# short run). Corpora start from tests/fuzz/corpus/<name>/ (seeded from the test fixtures) and
# grow in build/fuzz/corpus/<name>/; a crash leaves its input in build/fuzz/artifacts/ and fails.
set -uo pipefail
cd "$(dirname "$0")/../.."
secs=${1:-${FUZZ_SECONDS:-600}}
status=0
for bin in build/fuzz/fuzz/fuzz_*; do
  [ -x "$bin" ] || continue
  name=$(basename "$bin"); short=${name#fuzz_}
  work=build/fuzz/corpus/$short; art=build/fuzz/artifacts/$short
  mkdir -p "$work" "$art"
  seeds=tests/fuzz/corpus/$short; [ -d "$seeds" ] || seeds=
  echo "fuzz: $name for ${secs}s"
  if ! ASAN_OPTIONS=detect_leaks=1:allocator_may_return_null=1 UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1 \
      timeout -k 10 $((secs + 60)) "$bin" -max_total_time="$secs" -rss_limit_mb=2048 -max_len=8192 \
      -artifact_prefix="$art/" -print_final_stats=1 "$work" $seeds > "build/fuzz/$name.log" 2>&1; then
    echo "fuzz: $name FAILED (see build/fuzz/$name.log and $art/)"; tail -30 "build/fuzz/$name.log"; status=1
  else
    grep -E 'stat::number_of_executed_units|cov:' "build/fuzz/$name.log" | tail -2 | sed "s/^/fuzz: $name: /"
  fi
done
exit $status
