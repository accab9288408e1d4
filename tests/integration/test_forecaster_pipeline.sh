#!/usr/bin/env bash
# The forecaster in the pipeline: sensor-sim's energy meters -> cleaner -> aggregator (1-minute
# windows) -> iot.aggregates -> forecaster -> iot.forecasts -> raw-saver -> PostgreSQL. The
# forecasts table fills with one forecast per aggregate, a view puts each prediction next to
# the actual mean of its window, and the MAE computed in SQL from the saved rows is the MAE the
# forecaster reported in its metrics.
. "$(dirname "$0")/../lib/harness.sh"
harness_init forecaster_pipeline
require python3 curl psql

SIM=$(harness_bin sensor-sim) || exit 1
CLEANER=$(harness_bin cleaner) || exit 1
AGG=$(harness_bin aggregator) || exit 1
FC=$(harness_bin forecaster) || exit 1
SAVER=$(harness_bin raw-saver) || exit 1
CAT=$(harness_bin iot-cat) || exit 1
D=$HARNESS_DIR
HOURS=6
METERS=4

# Six hours of readings every 10 s from 4 meters, yesterday.
START=$(date -u -d "@$(( ($(date -u +%s) / 86400 - 1) * 86400 ))" +%Y-%m-%dT%H:%M:%SZ)
"$SIM" --stdout --format power --sites 2 --devices 2 --sensors 1 --seed 5 --start-ts "$START" \
	--step 10s --rate 0 --count $((HOURS * 360 * METERS)) --log-level warn 2>"$D/sim.log" |
	"$CLEANER" --in - --out - --max-age 3d --log-level warn 2>"$D/cleaner.log" |
	"$AGG" --in - --out - --window 1m --grace 0 --late drop --log-level warn \
		>"$D/aggregates.jsonl" 2>"$D/aggregator.log"
N=$(wc -l <"$D/aggregates.jsonl")
check "the aggregator made $((HOURS * 60 * METERS)) aggregates" test "$N" = $((HOURS * 60 * METERS))

start_pg || exit 1
start_kafka_mock --topic iot.aggregates:4 --topic iot.forecasts:4 --topic iot.forecaster-state:4 ||
	exit 1
check "tables created" "$SAVER" --db "$PG_URL" --migrate \
	--migrations "$HARNESS_ROOT/schemas/postgres" --log-level warn
# The view comes with the migrations (schemas/postgres/003_forecast_views.sql).
check "view forecast_vs_actual created" psql -XqAt -v ON_ERROR_STOP=1 \
	-c "SELECT count(*) FROM forecast_vs_actual"

PORT=$(free_port)
M="http://127.0.0.1:$PORT/metrics"
start_bg forecaster "$FC" -b "$BOOTSTRAP" --metrics-port "$PORT" --checkpoint-ms 200ms
start_bg saver "$SAVER" -b "$BOOTSTRAP" --in iot.aggregates,iot.forecasts --db "$PG_URL" \
	--migrations "" --batch-ms 200ms
check "aggregates produced to Kafka" timeout 60 "$CAT" -b "$BOOTSTRAP" -P -t iot.aggregates \
	-T Aggregate -k site <"$D/aggregates.jsonl"

rows() { psql -XAtc "select count(*) from $1"; }
rows_are() { [ "$(rows "$1")" = "$2" ]; }
wait_for "aggregates table holds $N rows" 120 rows_are aggregates "$N"
wait_for "forecasts table holds $N rows (one per aggregate)" 120 rows_are forecasts "$N"
check "forecasts name their model and horizon" \
	test "$(psql -XAtc "select count(*) from forecasts where model = 'holt' and horizon = 1")" = "$N"
check "every forecast but each meter's last has its actual beside it" \
	test "$(psql -XAtc 'select count(actual) from forecast_vs_actual')" = $((N - METERS))

psql -XAc "select site, device, window_start, round(predicted::numeric, 3) as predicted,
	round(actual::numeric, 3) as actual, round(abs_error::numeric, 4) as abs_error, in_interval
	from forecast_vs_actual where site = 'site1' and device = 'dev1'
	order by window_start desc limit 5" >"$D/sample.txt"
harness_diag "prediction next to actual:"
sed 's/^/#   /' "$D/sample.txt"
check "the query shows predictions next to actuals" grep -q 'site1' "$D/sample.txt"

sql_mae=$(psql -XAtc 'select avg(abs_error) from forecast_vs_actual where actual is not null')
metric_mae=$(python3 -c "print($(metric "$M" iotpipe_forecaster_abs_error_total) / $(metric "$M" iotpipe_forecaster_scored_total))")
harness_diag "MAE from the table: $sql_mae, from the forecaster's metrics: $metric_mae"
check "the MAE from the saved rows is the forecaster's" python3 -c \
	"import sys; a, b = float(sys.argv[1]), float(sys.argv[2]); sys.exit(0 if abs(a - b) <= 1e-9 * max(1, abs(b)) else 1)" \
	"$sql_mae" "$metric_mae"
check "per-series accuracy by query" test "$(psql -XAtc "select count(*) from (
	select site, device, sensor, metric, avg(abs_error) from forecast_vs_actual
	where actual is not null group by 1, 2, 3, 4) s")" = "$METERS"

rc=0
stop_bg forecaster || rc=$?
check "forecaster exits 0 on SIGTERM (LeakSanitizer-clean)" test "$rc" = 0
harness_finish
