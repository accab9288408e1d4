#!/usr/bin/env bash
# aggregator killed with SIGKILL five times while readings keep arriving: its distinct
# aggregates are exactly those of an uninterrupted run over the same readings (no window
# missing, none with another value, none unexpected), every window it sent again carries the
# same values, and its distinct late readings are the uninterrupted run's. Both runs' aggregates
# also go through raw-saver into PostgreSQL, and the two aggregates tables are equal.
#
# Input: AGG_KILL_SECONDS (default 850) seconds of event time of 176 series on 16 sites
# (tests/integration/test_aggregator_ref.py gen: out-of-order, late and duplicate readings,
# about 150 000 in all), each site ending with a reading an hour later that closes its windows.
# The uninterrupted run reads them all at once from ref.clean; the killed run reads iot.clean,
# fed evenly over AGG_KILL_FEED_SECS seconds (default 90: a restart takes about 10 s, the time
# the embedded Kafka keeps a killed member in its group) while it is killed and restarted. The
# uninterrupted run is itself checked against the reference the test computes.
source "$(dirname "$0")/../lib/harness.sh"
harness_init aggregator_kill
require python3 curl

AGG=$(harness_bin aggregator) || exit 1
CAT=$(harness_bin iot-cat) || exit 1
D=$HARNESS_DIR
REF="python3 $HARNESS_ROOT/tests/integration/test_aggregator_ref.py"
SECS=${AGG_KILL_SECONDS:-850}
FEED_SECS=${AGG_KILL_FEED_SECS:-90}
KILLS=5
PARTS=16
# Windows of 10 s, grace 2 s; no idle advance: the runs must close windows by event time alone
# to be comparable (the sentinel readings at the end close the last ones).
GEN_FLAGS=(--seed 5 --sites 16 --devices 5 --seconds "$SECS" --grace 2000 --window 10000
	--sentinel)
AGG_FLAGS=(--window 10s --grace 2s --idle-timeout 0 --checkpoint-ms 200ms --checkpoint-records 2000
	-X session.timeout.ms=6000 -X heartbeat.interval.ms=500)

start_kafka_mock --topic "iot.clean:$PARTS" --topic "iot.aggregates:$PARTS" \
	--topic "iot.late:$PARTS" --topic "ref.clean:$PARTS" --topic "ref.aggregates:$PARTS" \
	--topic "ref.late:$PARTS" || exit 1
produce() { # produce TOPIC < JSON lines
	"$CAT" -b "$BOOTSTRAP" -P -t "$1" -T Reading -k site 2>>"$D/cat.err"
}
consume() { # consume TOPIC FILE
	timeout 120 "$CAT" -b "$BOOTSTRAP" -C -t "$1" -e >"$2" 2>>"$D/cat.err"
}
value() { # value URL METRIC: the metric's value as an integer (0 when unknown)
	local v
	v=$(metric "$1" "$2") || v=0
	printf '%s\n' "${v%.*}"
}

$REF gen "${GEN_FLAGS[@]}" >"$D/in.jsonl"
N=$(wc -l <"$D/in.jsonl")
RATE=$((N / FEED_SECS + 1))

# ---- the killed run: readings arrive at RATE/s while the aggregator dies and restarts ----------
start_bg feed bash -c 'set -o pipefail; $1 pace "$2" <"$3" |
	"$4" -b "$5" -P -t iot.clean -T Reading -k site' _ "$REF" "$RATE" "$D/in.jsonl" "$CAT" \
	"$BOOTSTRAP"
FEED_T0=$SECONDS

# ---- meanwhile: the uninterrupted run on the same readings, all there from the start; the
# reference computed from them in partition order; PostgreSQL and a raw-saver for each run ------
check "$N readings produced to ref.clean" produce ref.clean <"$D/in.jsonl"
rport=$(free_port)
RURL="http://127.0.0.1:$rport/metrics"
start_bg ref "$AGG" -b "$BOOTSTRAP" --group ref --in ref.clean --out ref.aggregates \
	--late ref.late "${AGG_FLAGS[@]}" --metrics-port "$rport"
start_bg model bash -c 'set -e; timeout 120 "$1" -b "$2" -C -E -t ref.clean -e >"$3/env.jsonl"
	$4 ref --window 10000 --grace 2000 "$3/env.jsonl" "$3/model.jsonl" "$3/model-late.jsonl" \
		>"$3/model.txt"' _ "$CAT" "$BOOTSTRAP" "$D" "$REF"
SAVER=$(harness_bin raw-saver 2>/dev/null) || SAVER=
if [ -z "$SAVER" ]; then
	harness_diag "raw-saver is not built: the aggregates tables are not compared"
	SAVER=
elif ! command -v psql >/dev/null || ! harness_pg_bin >/dev/null 2>&1; then
	harness_diag "PostgreSQL is not installed: the aggregates tables are not compared"
	SAVER=
else
	MIG="$HARNESS_ROOT/schemas/postgres"
	start_pg || exit 1
	for db in ref edge; do
		psql -XqAc "create database $db" || exit 1
		check "migrations ($db)" "$SAVER" --db "dbname=$db" --migrations "$MIG" --migrate
	done
	start_bg saver-ref "$SAVER" -b "$BOOTSTRAP" --db dbname=ref --migrations "$MIG" \
		--in ref.aggregates -g saver-ref --batch-ms 200ms
	start_bg saver-edge "$SAVER" -b "$BOOTSTRAP" --db dbname=edge --migrations "$MIG" \
		--in iot.aggregates -g saver-edge --batch-ms 200ms
fi

kport=$(free_port)
KURL="http://127.0.0.1:$kport/metrics"
# Life k is killed no earlier than k/(KILLS+2) of the feed's duration, once it has read
# STEP readings and finished two checkpoints after that (so it committed), at a random moment
# within the next 1.5 s: the kills are spread over the run and land among commits.
STEP=$((RATE / 2))
c0=
life_ready() {
	local c
	[ $SECONDS -ge $((FEED_T0 + life * FEED_SECS / (KILLS + 2))) ] || return 1
	c=$(value "$KURL" iotpipe_checkpoint_seconds_count)
	if [ -z "$c0" ]; then
		[ "$(value "$KURL" iotpipe_aggregator_readings_total)" -ge "$STEP" ] && c0=$c
		return 1
	fi
	[ "$c" -ge $((c0 + 2)) ]
}
killed=0
open_min=
for life in $(seq 1 "$KILLS"); do
	start_bg "agg$life" "$AGG" -b "$BOOTSTRAP" --late iot.late "${AGG_FLAGS[@]}" \
		--metrics-port "$kport"
	c0=
	wait_for "life $life read $STEP readings and committed" 90 life_ready || break
	sleep "$((RANDOM % 2)).$((RANDOM % 10))"
	n=$(value "$KURL" iotpipe_aggregator_readings_total)
	open=$(value "$KURL" iotpipe_aggregator_open_windows)
	sent=$(value "$KURL" iotpipe_aggregator_aggregates_total)
	kill_bg "agg$life" KILL
	killed=$((killed + 1))
	[ -z "$open_min" ] || [ "${open:-0}" -lt "$open_min" ] && open_min=${open:-0}
	harness_diag "life $life: SIGKILL after $n readings and $sent aggregates, $open windows open (at ${SECONDS}s)"
done
check "the aggregator was killed $KILLS times while readings kept arriving" \
	test "$killed" -eq "$KILLS" -a "$(bg_alive feed && echo yes)" = yes
final=$((KILLS + 1))
start_bg "agg$final" "$AGG" -b "$BOOTSTRAP" --late iot.late "${AGG_FLAGS[@]}" \
	--metrics-port "$kport"
rc=0
wait_bg feed $((FEED_SECS * 3 + 60)) || rc=$?
check "$N readings fed to iot.clean at $RATE/s" test "$rc" -eq 0

# Caught up: the consumer lag is 0 on every partition that holds readings, at two looks a
# second apart.
parts=$(timeout 60 "$CAT" -b "$BOOTSTRAP" -C -E -t iot.clean -e 2>>"$D/cat.err" |
	python3 -c 'import json,sys; print(len({json.loads(l)["partition"] for l in sys.stdin}))')
zero_lag() { # zero_lag URL
	local lags
	lags=$(curl -fsS --max-time 5 "$1" | grep '^iotpipe_consumer_lag{') || return 1
	[ "$(wc -l <<<"$lags")" -eq "$parts" ] && ! grep -qv ' 0$' <<<"$lags"
}
caught_up() { # caught_up URL
	zero_lag "$1" || return 1
	sleep 1
	zero_lag "$1"
}
wait_for "the last life caught up with iot.clean" 120 caught_up "$KURL"
wait_for "the uninterrupted run caught up with ref.clean" 120 caught_up "$RURL"
for name in "agg$final" ref; do
	rc=0
	stop_bg "$name" || rc=$?
	check "$name exits 0 on SIGTERM (LSan-clean)" test "$rc" -eq 0
done

consume ref.aggregates "$D/ref.jsonl"
consume iot.aggregates "$D/got.jsonl"
consume ref.late "$D/ref-late.jsonl"
consume iot.late "$D/got-late.jsonl"
rc=0
wait_bg model 120 || rc=$?
check "the reference computed from ref.clean" test "$rc" -eq 0
harness_diag "reference: $(cat "$D/model.txt")"
check "the uninterrupted run's aggregates and late readings equal the reference's" \
	$REF compare "$D/ref.jsonl" "$D/model.jsonl" --late "$D/ref-late.jsonl" "$D/model-late.jsonl"
drc=0
$REF distinct "$D/got.jsonl" "$D/ref.jsonl" --late "$D/got-late.jsonl" "$D/ref-late.jsonl" \
	>"$D/distinct.txt" 2>&1 || drc=$?
sed 's/^/# killed vs uninterrupted: /' "$D/distinct.txt"
read -r _ ref_n _ got_n _ distinct _ resent _ <"$D/distinct.txt"
echo "# MEASURED aggregator kill -9 x$KILLS over $N readings: $resent of $got_n aggregates were re-sent"
check "after $KILLS kills the distinct aggregates equal the uninterrupted run's ($distinct of $ref_n)" \
	test "$drc" -eq 0
# Whether a kill falls between emitting windows and committing that is chance (the gap is one
# checkpoint); the re-sent count above is measured, not required. What every kill must hit is
# open windows, whose state the next life rebuilds from re-read input.
check "every kill landed with windows open (fewest: ${open_min:-none})" \
	test "${open_min:-0}" -gt 0

# ---- both runs through raw-saver into PostgreSQL ---------------------------------------------------
if [ -n "$SAVER" ]; then
	rows_are() { [ "$(psql -XqAt -d "$1" -c 'select count(*) from aggregates')" = "$2" ]; }
	wait_for "the uninterrupted run's $ref_n aggregates saved" 90 rows_are ref "$ref_n"
	wait_for "the killed run's aggregates saved ($ref_n rows from $got_n records)" 90 \
		rows_are edge "$ref_n"
	q='select site, device, sensor, metric, unit, window_start, window_end, window_ms, count,
	   mean, min, max, stddev, first, first_ts, last, last_ts from aggregates order by 1, 2, 3,
	   4, 6, 8'
	psql -XqAt -d ref -c "$q" >"$D/ref-table.txt"
	psql -XqAt -d edge -c "$q" >"$D/edge-table.txt"
	check "the aggregates tables are equal ($(wc -l <"$D/ref-table.txt") rows)" \
		cmp "$D/ref-table.txt" "$D/edge-table.txt"
	for s in saver-ref saver-edge; do
		rc=0
		stop_bg "$s" || rc=$?
		check "$s exits 0 on SIGTERM" test "$rc" -eq 0
	done
fi
harness_finish
