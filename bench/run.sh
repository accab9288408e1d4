#!/usr/bin/env bash
# Runs every benchmark (release build) and collects their tables into bench/results/<date>.md.
# Each script exits non-zero when its pipeline lost or duplicated anything; this one then does too.
set -uo pipefail
cd "$(dirname "$0")/.."
out="bench/results/$(date -u +%Y-%m-%d).md"
status=0
{
	echo "# Benchmarks $(date -u +%FT%TZ), $(nproc) cores, $(uname -srm)"
} > "$out"
for b in ingestor.sh cleaner.sh raw_saver.sh aggregator.sh actuator.sh mirror_relay.sh forecaster_accuracy.sh e2e.sh; do
	[ -f "bench/$b" ] || continue
	echo "== bench/$b"
	{ echo; echo "## $b"; echo '```'; } >> "$out"
	if ! bash "bench/$b" 2>&1 | grep -v '^#' | tee -a "$out"; then status=1; fi
	[ "${PIPESTATUS[0]}" -eq 0 ] || status=1
	echo '```' >> "$out"
done
echo "results: $out"
exit $status
