#!/usr/bin/env bash
# A short run of every libFuzzer target (make fuzz runs them for 10 minutes each): builds the
# fuzz variant with clang and gives each target FUZZ_SECONDS (default 4) under ASan + UBSan.
# The regression inputs of past findings must still pass.
source "$(dirname "$0")/../lib/harness.sh"
harness_init fuzz_short
require clang
cd "$HARNESS_ROOT" || exit 1
check "fuzz targets build" make -s VARIANT=fuzz fuzzers
for f in tests/fuzz/regressions/*/*; do
	[ -f "$f" ] || continue
	target=$(basename "$(dirname "$f")")
	check "regression $target/$(basename "$f")" "build/fuzz/fuzz/fuzz_$target" "$f"
done
check "every target runs clean for ${FUZZ_SECONDS:-4}s" bash tests/fuzz/run.sh "${FUZZ_SECONDS:-4}"
harness_finish
