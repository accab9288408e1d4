#!/usr/bin/env bash
# cleaner killed with SIGKILL five times while raw messages keep arriving: every Reading an
# undisturbed cleaner produces from the same records is in iot.clean (none lost), nothing else
# is, and the distinct readings are the same; what the kills cost is reported as duplicates
# (outputs of batches cleaned again after a restart). Rejected records likewise, by origin.
#
# This is also the suite's kill -9 smoke test of consume -> produce on the shared stream
# (common/stream.c): input offsets are committed only after Kafka acknowledged every output
# produced from them, so a kill between produce and commit re-sends a batch and never loses one,
# and a restart resumes from the committed offsets instead of starting over.
#
# The undisturbed reference runs at the same time on the same input, in its own consumer group,
# into ref.clean and ref.rejected; it is itself checked against sensor-sim's summary.
# CLEANER_KILL_N messages (default 50000) are fed over CLEANER_KILL_SECS seconds (default 45);
# a full-scale run is CLEANER_KILL_N=200000.
source "$(dirname "$0")/../lib/harness.sh"
harness_init cleaner_kill
require curl python3

N=${CLEANER_KILL_N:-50000}
SECS=${CLEANER_KILL_SECS:-45}
RATE=$(((N + SECS - 1) / SECS))
KILLS=5
D=$HARNESS_DIR
SIM=$(harness_bin sensor-sim) || exit 1
CAT=$(harness_bin iot-cat) || exit 1
CLEANER=$(harness_bin cleaner) || exit 1
CHECK="python3 $HARNESS_ROOT/tests/integration/test_cleaner_check.py"
CLEAN_FLAGS=(--max-age 100000d)
# A killed member stays in the group until its session times out: keep that short.
GROUP_X=(-X session.timeout.ms=3000 -X heartbeat.interval.ms=300)
# Many sites and topics spread the keys over the partitions, keeping each partition well under
# the embedded Kafka's 5 MB (docs/kafka-mock.md).
SIM_FLAGS=(--seed 43 --format mixed --sites 20 --devices 5 --sensors 2 --invalid 0.05
	--start-ts 2024-03-01T00:00:00Z --step 1s --no-control)

start_kafka_mock --topic iot.raw:32 --topic iot.clean:32 --topic iot.rejected:8 \
	--topic ref.clean:32 --topic ref.rejected:8 || exit 1

# The feed: sensor-sim paced at RATE messages/s into iot.raw, for the whole run.
start_bg feed bash -c 'set -o pipefail; "$1" "${@:4}" | "$2" -b "$3" -P -t iot.raw -T RawMessage -k topic' \
	_ "$SIM" "$CAT" "$BOOTSTRAP" "${SIM_FLAGS[@]}" --stdout --rate "$RATE" --count "$N" \
	--summary "$D/summary.json"
FEED_T0=$SECONDS

rport=$(free_port)
rurl="http://127.0.0.1:$rport/metrics"
start_bg ref "$CLEANER" -b "$BOOTSTRAP" --group ref --out ref.clean --rejected ref.rejected \
	--metrics-port "$rport" "${CLEAN_FLAGS[@]}" "${GROUP_X[@]}"

port=$(free_port)
murl="http://127.0.0.1:$port/metrics"
messages() { metric "$murl" iotpipe_cleaner_messages_total || echo 0; }
# Frequent checkpoints: each life commits several times before its kill, and the kill lands
# among commits, as it would in a long run.
LIFE_FLAGS=(-b "$BOOTSTRAP" --metrics-port "$port" --checkpoint-ms 250ms "${CLEAN_FLAGS[@]}"
	"${GROUP_X[@]}")
# Life k is killed no earlier than k/(KILLS+2) of the feed's duration, once it has cleaned a
# second's worth of input and then finished two checkpoints: the second began after that point,
# so what came before it is committed, and the kill lands among outputs produced since. Every
# kill is mid-run, with progress behind it; the kills are spread over the run.
STEP=$RATE
c0=
committed_step() {
	local c
	[ $SECONDS -ge $((FEED_T0 + life * SECS / (KILLS + 2))) ] || return 1
	c=$(metric "$murl" iotpipe_checkpoint_seconds_count || echo 0)
	if [ -z "$c0" ]; then
		[ "$(messages)" -ge "$STEP" ] && c0=${c%.*}
		return 1
	fi
	[ "${c%.*}" -ge $((c0 + 2)) ]
}
killed_at=()
for life in $(seq 1 "$KILLS"); do
	start_bg "cleaner$life" "$CLEANER" "${LIFE_FLAGS[@]}"
	c0=
	wait_for "life $life cleaned and committed $STEP messages" 60 committed_step || break
	m=$(messages)
	kill_bg "cleaner$life" KILL
	killed_at+=("$m")
done
harness_diag "killed with SIGKILL after each life cleaned ${killed_at[*]} messages (at ${SECONDS}s)"
check "the cleaner was killed $KILLS times while messages kept arriving" \
	test "${#killed_at[@]}" -eq "$KILLS" -a "$(bg_alive feed && echo yes)" = yes

final=$((KILLS + 1))
start_bg "cleaner$final" "$CLEANER" "${LIFE_FLAGS[@]}"
rc=0
wait_bg feed $((SECS * 3 + 60)) || rc=$?
check "$N raw messages produced to iot.raw at $RATE/s" test "$rc" -eq 0
# Done when the final life has its partitions, its input lag is zero (or it found nothing left
# to read) and nothing moved for three seconds.
last=-1
stable=0
settled() {
	local lag m
	grep -q 'assigned iot.raw' "$(harness_log "cleaner$final")" || return 1
	lag=$(metric "$murl" iotpipe_consumer_lag || echo none)
	m=$(messages)
	if [ "$m" = "$last" ] && { [ "${lag%.*}" = 0 ] || { [ "$lag" = none ] && [ "$m" = 0 ]; }; }; then
		stable=$((stable + 1))
	else
		stable=0
	fi
	last=$m
	[ "$stable" -ge 3 ] && return 0
	sleep 1
	return 1
}
wait_for "the last life caught up with iot.raw" 120 settled
total=$last
for m in "${killed_at[@]}"; do total=$((total + m)); done
harness_diag "the last life cleaned $last messages; all lives $total for $N in iot.raw (at ${SECONDS}s)"
# Without committed offsets every life would start over and clean several times N in all.
check "restarts resumed from committed offsets ($total messages cleaned in all lives for $N)" \
	test "$total" -lt $((N + N / 2))
ref_done() { [ "$(metric "$rurl" iotpipe_cleaner_messages_total)" = "$N" ]; }
wait_for "the undisturbed cleaner cleaned all $N messages" 120 ref_done
for name in "cleaner$final" ref; do
	rc=0
	stop_bg "$name" || rc=$?
	check "$name exits 0 on SIGTERM (LSan-clean)" test "$rc" -eq 0
done

for t in iot.clean iot.rejected ref.clean ref.rejected; do
	"$CAT" -b "$BOOTSTRAP" -C -t "$t" -e >"$D/$t.jsonl" 2>>"$D/cat.err"
done
trc=0
$CHECK tally "$D/summary.json" "$D/ref.clean.jsonl" "$D/ref.rejected.jsonl" >"$D/ref.txt" 2>&1 ||
	trc=$?
sed 's/^/# reference: /' "$D/ref.txt"
check "the undisturbed run holds every valid reading once and every invalid message's reason" \
	test "$trc" -eq 0

trc=0
$CHECK same "$D/iot.clean.jsonl" "$D/ref.clean.jsonl" >"$D/clean.txt" 2>&1 || trc=$?
sed 's/^/# iot.clean vs reference: /' "$D/clean.txt"
read -r _ ref _ ref_distinct _ ref_ids _ got _ distinct _ ids _ missing _ dups _ unexpected \
	<"$D/clean.txt"
echo "# MEASURED cleaner kill -9 x$KILLS over $N messages: $dups duplicate readings, $missing lost"
check "after $KILLS kills no reading is lost and none unexpected ($missing missing of $ref)" \
	test "$trc" -eq 0
check "distinct readings equal the undisturbed run's ($distinct distinct, $ids identities)" \
	test "$distinct" -eq "$ref_distinct" -a "$ids" -eq "$ref_ids"
check "the kills landed between produce and commit: $dups readings were written twice" \
	test "$dups" -gt 0
trc=0
$CHECK same "$D/iot.rejected.jsonl" "$D/ref.rejected.jsonl" >"$D/rejected.txt" 2>&1 || trc=$?
sed 's/^/# iot.rejected vs reference: /' "$D/rejected.txt"
check "every rejection is in iot.rejected, with the same origin and reason" test "$trc" -eq 0
harness_finish
