#!/usr/bin/env bash
# aggregator on Kafka and in a shell pipe, against a reference the test computes itself
# (tests/integration/test_aggregator_ref.py re-implements docs/aggregator.md) from the same
# input:
#
#   - deterministic Readings in iot.clean: 8 sites keyed over 8 partitions, 4 minutes of 2024
#     event time, readings out of order within the grace, late readings beyond it, redelivered
#     duplicates, duplicates with another value, values near 1e9, units that disagree, readings
#     the aggregator refuses, and records that are not Readings at all (dead-lettered);
#   - two aggregators at once, each in its own consumer group: 10 s tumbling windows with the
#     full group-by and late readings to iot.late, and 20 s windows hopping every 5 s grouped
#     by site and metric. Their aggregates, late readings and counters must be the reference's;
#   - the first one, restarted on its group, emits nothing again (the watermark in the commit
#     metadata says what was emitted);
#   - an idle partition: its last window is closed by the wall clock, a restart remembers that
#     advance, and afterwards a reading for that window is late while one just after it is not;
#   - `aggregator --in - --out -` on the same readings: end of input closes every window.
source "$(dirname "$0")/../lib/harness.sh"
harness_init aggregator
require python3 curl kcat

AGG=$(harness_bin aggregator) || exit 1
CAT=$(harness_bin iot-cat) || exit 1
D=$HARNESS_DIR
REF="python3 $HARNESS_ROOT/tests/integration/test_aggregator_ref.py"
GRACE=3000
GEN_FLAGS=(--seed 11 --sites 8 --devices 3 --seconds 240 --grace "$GRACE" --window 20000
	--invalid 0.002)
# Run A: tumbling, full group-by. Run B: hopping, by site and metric.
A_REF=(--window 10000 --grace "$GRACE")
A_FLAGS=(--window 10000ms --grace "${GRACE}ms")
B_REF=(--window 20000 --hop 5000 --grace "$GRACE" --group-by site,metric)
B_FLAGS=(--window 20000ms --hop 5000ms --grace "${GRACE}ms" --group-by site,metric)
# Frequent checkpoints; no idle advance where the reference has none. The embedded Kafka keeps
# even a member that left in its group until its session times out: keep that short, so that
# restarts get their partitions soon.
GROUP_X=(-X session.timeout.ms=6000 -X heartbeat.interval.ms=500)
RUN_FLAGS=(--checkpoint-ms 200ms --idle-timeout 0 "${GROUP_X[@]}")

start_kafka_mock --topic iot.clean:8 --topic iot.aggregates:8 --topic iot.late:8 \
	--topic agg.hop:8 --topic idle.in:1 --topic idle.out:1 --topic idle.late:1 || exit 1

consume() { # consume TOPIC FILE: the topic's records as JSON lines
	timeout 60 "$CAT" -b "$BOOTSTRAP" -C -t "$1" -e >"$2" 2>>"$D/cat.err"
}
produce() { # produce TOPIC < JSON lines
	timeout 60 "$CAT" -b "$BOOTSTRAP" -P -t "$1" -T Reading -k site 2>>"$D/cat.err"
}
count_is() { # count_is URL METRIC N
	local v
	v=$(metric "$1" "$2") || return 1
	[ "${v%.*}" = "$3" ]
}
# ref_field FILE NAME: a number from the reference's summary line.
ref_field() { awk -v k="$2" '{ for (i = 1; i < NF; i++) if ($i == k) print $(i + 1) }' "$1"; }

# ---- the input and its reference --------------------------------------------------------------
# Between the two halves of the readings and after them, records that are not Readings at all
# (the stream dead-letters them; the aggregator's position must still move past them).
$REF gen "${GEN_FLAGS[@]}" --sentinel >"$D/in.jsonl"
N=$(wc -l <"$D/in.jsonl")
garbage() { # garbage: one undecodable record for each of 4 sites
	printf 's0%d	not an Avro record
' 0 3 5 7 |
		timeout 30 kcat -P -b "$BOOTSTRAP" -t iot.clean -K '\t' 2>>"$D/cat.err"
}
GARBAGE=8
check "$N readings produced to iot.clean (key = site), with $GARBAGE undecodable records" \
	eval 'head -n $((N / 2)) "$D/in.jsonl" | produce iot.clean && garbage &&
		tail -n +$((N / 2 + 1)) "$D/in.jsonl" | produce iot.clean && garbage'
# The reference follows each partition in offset order, as a consumer does.
envelopes() {
	timeout 60 "$CAT" -b "$BOOTSTRAP" -C -E -t iot.clean -e >"$D/env.jsonl" 2>>"$D/cat.err"
	[ "$(wc -l <"$D/env.jsonl")" -eq "$N" ]
}
check "iot.clean read back with partitions and offsets" envelopes
$REF ref "${A_REF[@]}" "$D/env.jsonl" "$D/ref-a.jsonl" "$D/ref-a-late.jsonl" >"$D/ref-a.txt"
$REF ref "${B_REF[@]}" "$D/env.jsonl" "$D/ref-b.jsonl" "$D/ref-b-late.jsonl" >"$D/ref-b.txt"
harness_diag "reference, tumbling: $(cat "$D/ref-a.txt")" "reference, hopping: $(cat "$D/ref-b.txt")"
# A test whose input has no late, duplicate or out-of-order reading proves nothing about them.
check "the input has late readings, duplicates and more windows than sites" test \
	"$(ref_field "$D/ref-a.txt" late)" -gt 20 -a "$(ref_field "$D/ref-a.txt" duplicate)" -gt 50 \
	-a "$(ref_field "$D/ref-a.txt" windows)" -gt 1000 -a "$(ref_field "$D/ref-b.txt" late)" -gt 20

# ---- two aggregators on Kafka -------------------------------------------------------------------
pa=$(free_port)
pb=$(free_port)
MA="http://127.0.0.1:$pa/metrics"
MB="http://127.0.0.1:$pb/metrics"
start_bg agg-a "$AGG" -b "$BOOTSTRAP" --group agg-a --out iot.aggregates --late iot.late \
	"${A_FLAGS[@]}" "${RUN_FLAGS[@]}" --metrics-port "$pa"
start_bg agg-b "$AGG" -b "$BOOTSTRAP" --group agg-b --out agg.hop --late drop \
	"${B_FLAGS[@]}" "${RUN_FLAGS[@]}" --metrics-port "$pb"
wait_for "tumbling run read all $N readings" 60 count_is "$MA" iotpipe_aggregator_readings_total "$N"
wait_for "hopping run read all $N readings" 60 count_is "$MB" iotpipe_aggregator_readings_total "$N"
curl -fsS "$MA" >"$D/metrics-a.txt"
curl -fsS "$MB" >"$D/metrics-b.txt"
for r in a b; do
	rc=0
	stop_bg "agg-$r" || rc=$?
	check "run $r exits 0 on SIGTERM (outputs acknowledged, LSan-clean)" test "$rc" -eq 0
done
counters_match() { # counters_match METRICS-FILE REF-SUMMARY
	local what want got
	for what in added duplicate late invalid; do
		want=$(ref_field "$2" "$what")
		got=$(metric "file://$1" "iotpipe_aggregator_readings_total{result=\"$what\"}") || got=0
		[ "${got%.*}" = "$want" ] || { echo "$what: $got, reference $want"; return 1; }
	done
	want=$(ref_field "$2" windows)
	got=$(metric "file://$1" iotpipe_aggregator_aggregates_total)
	[ "${got%.*}" = "$want" ] || { echo "aggregates: $got, reference $want"; return 1; }
	got=$(metric "file://$1" iotpipe_dead_letters_total)
	[ "${got%.*}" = "$GARBAGE" ] || { echo "dead letters: $got, not $GARBAGE"; return 1; }
}
check "tumbling run: readings added, duplicate, late, invalid, aggregates and dead letters counted as in the reference" \
	counters_match "$D/metrics-a.txt" "$D/ref-a.txt"
check "hopping run: readings added, duplicate, late, invalid, aggregates and dead letters counted as in the reference" \
	counters_match "$D/metrics-b.txt" "$D/ref-b.txt"
consume iot.aggregates "$D/got-a.jsonl"
consume iot.late "$D/got-a-late.jsonl"
consume agg.hop "$D/got-b.jsonl"
check "tumbling windows, full group-by: aggregates and late readings equal the reference's" \
	$REF compare "$D/got-a.jsonl" "$D/ref-a.jsonl" --late "$D/got-a-late.jsonl" \
	"$D/ref-a-late.jsonl"
check "hopping windows by site and metric: aggregates equal the reference's" \
	$REF compare "$D/got-b.jsonl" "$D/ref-b.jsonl"

# ---- a restart on the same group emits nothing again ----------------------------------------------
# The sentinels' windows are still open: their readings are all a restart reads again.
SITES=8
start_bg agg-a2 "$AGG" -b "$BOOTSTRAP" --group agg-a --out iot.aggregates --late iot.late \
	"${A_FLAGS[@]}" "${RUN_FLAGS[@]}" --metrics-port "$pa"
wait_for "the restarted run read the $SITES readings of its open windows again" 60 \
	count_is "$MA" iotpipe_aggregator_readings_total "$SITES"
sleep 1
curl -fsS "$MA" >"$D/metrics-a2.txt"
rc=0
stop_bg agg-a2 || rc=$?
check "the restarted run exits 0 on SIGTERM" test "$rc" -eq 0
check "the restart resumed from its commits: it read only the open windows' readings" \
	count_is "file://$D/metrics-a2.txt" iotpipe_aggregator_readings_total "$SITES"
check "the restart emitted no aggregate and reported no late reading" test \
	"$(metric "file://$D/metrics-a2.txt" iotpipe_aggregator_aggregates_total)" = 0 -a \
	"$(metric "file://$D/metrics-a2.txt" 'iotpipe_aggregator_readings_total{result="late"}')" = 0
consume iot.aggregates "$D/got-a2.jsonl"
check "iot.aggregates still holds each window once" \
	$REF compare "$D/got-a2.jsonl" "$D/ref-a.jsonl"

# ---- an idle partition ------------------------------------------------------------------------------
# One series, 4 s windows, grace 1 s: readings every 500 ms for 10 s. [0,4) and [4,8) close by
# event time; [8,12) only when the partition has been idle for a second and the wall clock has
# carried its event time past 12 s. Then: a restart, and readings at 1 s and 11 s (late: their
# windows were emitted) and at 12.5 s and 13 s (a new window, which the idle advance closes too).
T0=1704153600000 # 2024-01-02T00:00:00Z
idle_reading() { # idle_reading OFFSET_MS VALUE
	printf '{"site":"idle","device":"d","sensor":"s","metric":"temperature","unit":"C","value":%s,"ts":%d,"received_at":%d,"location":null,"device_type":null,"tags":{}}\n' \
		"$2" $((T0 + $1)) $((T0 + $1))
}
for ((i = 0; i < 20; i++)); do idle_reading $((i * 500)) "$((20 + i)).25"; done >"$D/idle1.jsonl"
{ idle_reading 1000 99.5; idle_reading 11000 98.5; idle_reading 12500 7.5; idle_reading 13000 8.5; } \
	>"$D/idle2.jsonl"
{ cat "$D/idle1.jsonl"; echo pause; cat "$D/idle2.jsonl"; } >"$D/idle-all.txt"
$REF ref --window 4000 --grace 1000 --stdin --close-idle "$D/idle-all.txt" "$D/ref-idle.jsonl" \
	"$D/ref-idle-late.jsonl" >"$D/ref-idle.txt"
pi=$(free_port)
MI="http://127.0.0.1:$pi/metrics"
IDLE_FLAGS=(-b "$BOOTSTRAP" --group agg-idle --in idle.in --out idle.out --late idle.late
	--window 4s --grace 1s --idle-timeout 1s --checkpoint-ms 200ms --metrics-port "$pi"
	"${GROUP_X[@]}")
check "idle input, part 1 produced" produce idle.in <"$D/idle1.jsonl"
start_bg agg-idle "$AGG" "${IDLE_FLAGS[@]}"
wait_for "the idle partition's three windows were emitted" 60 \
	count_is "$MI" iotpipe_aggregator_aggregates_total 3
rc=0
stop_bg agg-idle || rc=$?
check "idle run exits 0 on SIGTERM" test "$rc" -eq 0
check "idle input, part 2 produced" produce idle.in <"$D/idle2.jsonl"
start_bg agg-idle2 "$AGG" "${IDLE_FLAGS[@]}"
wait_for "after the restart, the late readings were reported" 60 \
	count_is "$MI" 'iotpipe_aggregator_readings_total{result="late"}' 2
wait_for "after the restart, the new window was emitted when idle" 60 \
	count_is "$MI" iotpipe_aggregator_aggregates_total 1
rc=0
stop_bg agg-idle2 || rc=$?
check "second idle run exits 0 on SIGTERM" test "$rc" -eq 0
consume idle.out "$D/got-idle.jsonl"
consume idle.late "$D/got-idle-late.jsonl"
check "idle partition: aggregates and late readings equal the reference's" \
	$REF compare "$D/got-idle.jsonl" "$D/ref-idle.jsonl" --late "$D/got-idle-late.jsonl" \
	"$D/ref-idle-late.jsonl"
check "idle partition: 4 windows, 2 late readings" test \
	"$(ref_field "$D/ref-idle.txt" windows) $(ref_field "$D/ref-idle.txt" late)" = "4 2"

# ---- a shell pipe ----------------------------------------------------------------------------------
# One stream (stdin is partition 0), and end of input closes every window.
$REF ref "${A_REF[@]}" --stdin "$D/in.jsonl" "$D/ref-p.jsonl" "$D/ref-p-late.jsonl" >"$D/ref-p.txt"
$REF ref "${B_REF[@]}" --stdin "$D/in.jsonl" "$D/ref-q.jsonl" "$D/ref-q-late.jsonl" >"$D/ref-q.txt"
# A line that is not JSON is logged and skipped.
$REF gen "${GEN_FLAGS[@]}" --sentinel | sed '100a this is not a reading' |
	"$AGG" --in - --out - "${A_FLAGS[@]}" --late "$D/pipe-late.jsonl" 2>"$D/pipe.log" |
	cat >"$D/pipe.jsonl"
rc=("${PIPESTATUS[@]}")
check "the tumbling pipe exits 0 (${rc[*]})" test "${rc[*]}" = "0 0 0 0"
check "tumbling pipe: aggregates (every window closed at the end) and late readings equal the reference's" \
	$REF compare "$D/pipe.jsonl" "$D/ref-p.jsonl" --late "$D/pipe-late.jsonl" "$D/ref-p-late.jsonl"
"$AGG" --in - --out - "${B_FLAGS[@]}" --late drop <"$D/in.jsonl" 2>"$D/pipe2.log" |
	cat >"$D/pipe2.jsonl"
rc=("${PIPESTATUS[@]}")
check "the hopping pipe exits 0 (${rc[*]})" test "${rc[*]}" = "0 0"
check "hopping pipe by site and metric: aggregates equal the reference's" \
	$REF compare "$D/pipe2.jsonl" "$D/ref-q.jsonl"
harness_finish
