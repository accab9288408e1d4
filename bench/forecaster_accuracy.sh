#!/usr/bin/env bash
# Forecast accuracy of each forecaster model on per-minute series, through the real pipeline
# (readings -> aggregator -> forecaster, as JSON lines on pipes):
#
#   household  per-minute power of N homes with a daily cycle (bench/forecaster_accuracy.py)
#   feeder     a feeder's load with the shape of a standard household load profile (same helper)
#   meters     sensor-sim's energy meters (--format power: cumulative kWh), through the cleaner
#
# For every data set and model it prints MAE, MAPE and interval coverage over the windows after
# the first day (the models' warm-up), judged by joining each forecast with the aggregate of the
# window it predicted. Then the memory held for 10 000 series. Nothing here is asserted.
#
#   bench/forecaster_accuracy.sh [DAYS] [HOMES]      (defaults: 14 days, 6 homes)
#
# Uses the release build (make); IOTPIPE_BIN overrides where the binaries are.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=${IOTPIPE_BIN:-$ROOT/bin}
DAYS=${1:-14}
HOMES=${2:-6}
SEED=${SEED:-1}
MODELS=(naive holt hw)
HELPER="$ROOT/bench/forecaster_accuracy.py"

for b in sensor-sim cleaner aggregator forecaster; do
	[ -x "$BIN/$b" ] || { echo "no $BIN/$b: run make" >&2; exit 2; }
done
command -v python3 >/dev/null || { echo "python3 is needed" >&2; exit 2; }

mkdir -p "$ROOT/bench/results"
WORK=$(mktemp -d "${TMPDIR:-/tmp}/fc-accuracy.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
# Event times end a day before today, so the cleaner's age limit is the only one to lift.
START_S=$(( ($(date -u +%s) / 86400 - DAYS - 1) * 86400 ))
START_MS=$((START_S * 1000))
START_ISO=$(date -u -d "@$START_S" +%Y-%m-%dT%H:%M:%SZ)

aggregate() { # aggregate < readings > aggregates
	"$BIN/aggregator" --in - --out - --window 1m --grace 0 --late drop --log-level warn
}

echo "generating $DAYS days of per-minute data (seed $SEED) ..." >&2
python3 "$HELPER" household --homes "$HOMES" --days "$DAYS" --start "$START_MS" --seed "$SEED" |
	aggregate >"$WORK/household.jsonl"
python3 "$HELPER" feeder --days "$DAYS" --start "$START_MS" --seed "$SEED" |
	aggregate >"$WORK/feeder.jsonl"
# 2 sites x 2 meters, one reading every 10 s each.
"$BIN/sensor-sim" --stdout --format power --sites 2 --devices 2 --sensors 1 --seed "$SEED" \
	--start-ts "$START_ISO" --step 10s --rate 0 --count $((DAYS * 8640 * 4)) --log-level warn |
	"$BIN/cleaner" --in - --out - --max-age "$((DAYS + 2))d" --log-level warn 2>/dev/null |
	aggregate >"$WORK/meters.jsonl"

declare -A DESC=(
	[household]="household power, $HOMES homes (W)"
	[feeder]="feeder load profile (kW)"
	[meters]="sensor-sim energy meters, 4 (kWh)"
)
field() { # field NAME < score.json: a number of the score, 4 significant digits (counts whole)
	python3 -c "import json,sys; v=json.load(sys.stdin)['$1']; print('-' if v is None else v if isinstance(v, int) else '%.4g' % v)"
}

{
	printf '## Forecast accuracy, one window ahead (1-minute windows, day 1 excluded)\n\n'
	printf '`bench/forecaster_accuracy.sh %s %s` (seed %s), %s\n\n' "$DAYS" "$HOMES" "$SEED" \
		"$(date -u +%Y-%m-%d)"
	printf '| series | windows scored | model | MAE | MAE / naive | MAPE %% | interval coverage |\n'
	printf '|---|---|---|---|---|---|---|\n'
	for set in household feeder meters; do
		naive_mae=
		for m in "${MODELS[@]}"; do
			"$BIN/forecaster" --in - --out - --model "$m" --log-level warn \
				<"$WORK/$set.jsonl" >"$WORK/$set.$m.jsonl"
			python3 "$HELPER" score --aggregates "$WORK/$set.jsonl" \
				--forecasts "$WORK/$set.$m.jsonl" --skip-days 1 >"$WORK/$set.$m.score"
			mae=$(field mae <"$WORK/$set.$m.score")
			[ "$m" = naive ] && naive_mae=$mae
			ratio=$(python3 -c "print('%.3f' % ($mae / $naive_mae))")
			printf '| %s | %s | %s | %s | %s | %s | %s |\n' "${DESC[$set]}" \
				"$(field scored <"$WORK/$set.$m.score")" "$m" "$mae" "$ratio" \
				"$(field mape <"$WORK/$set.$m.score")" \
				"$(field coverage <"$WORK/$set.$m.score")"
		done
	done

	# Memory: 10 000 series (one aggregate each, then a second so every one holds a pending
	# forecast), peak RSS of the whole process.
	python3 - "$START_MS" >"$WORK/many.jsonl" <<'PY'
import json, sys
t0 = int(sys.argv[1])
for w in range(2):
    for i in range(10000):
        ws = t0 + w * 60000
        print(json.dumps({"site": "site%d" % (i // 10), "device": "dev%d" % (i % 10),
                          "sensor": "s1", "metric": "power", "unit": "W", "window_start": ws,
                          "window_end": ws + 60000, "window_ms": 60000, "count": 6,
                          "mean": 100.0 + i % 7 + w, "min": 0, "max": 0, "stddev": 0,
                          "first": 0, "first_ts": ws, "last": 0, "last_ts": ws}))
PY
	printf '\n## Memory for 10 000 series\n\n| model | peak RSS, 10 000 series | peak RSS, 1 series | per series |\n|---|---|---|---|\n'
	head -n 1 "$WORK/many.jsonl" >"$WORK/one.jsonl"
	for m in holt hw; do
		/usr/bin/time -f %M -o "$WORK/rss.many" "$BIN/forecaster" --in - --out - --model "$m" \
			--log-level warn <"$WORK/many.jsonl" >/dev/null
		/usr/bin/time -f %M -o "$WORK/rss.one" "$BIN/forecaster" --in - --out - --model "$m" \
			--log-level warn <"$WORK/one.jsonl" >/dev/null
		many=$(tail -n 1 "$WORK/rss.many") one=$(tail -n 1 "$WORK/rss.one")
		printf '| %s | %.1f MiB | %.1f MiB | %d bytes |\n' "$m" "$(echo "$many / 1024" | bc -l)" \
			"$(echo "$one / 1024" | bc -l)" $(((many - one) * 1024 / 10000))
	done
} | tee "$ROOT/bench/results/forecaster_accuracy.md"
