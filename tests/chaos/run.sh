#!/usr/bin/env bash
# make chaos: the system-wide fault suite (docs/chaos.md). The whole edge + central pipeline
# runs a deterministic workload once undisturbed, then once per scenario while that scenario's
# faults are applied; after each run every table at both sites is compared with the undisturbed
# run and with what the run's own inputs imply. Prints a table and writes it to
# build/chaos/<time>/report.txt (and report.json); exit status 0 only when every scenario passed.
#
#   tests/chaos/run.sh                          every scenario, then all of them together
#   CHAOS_SCENARIOS="kill-cleaner pg-restart" tests/chaos/run.sh      a selection
#   CHAOS_SEED=7 tests/chaos/run.sh             another workload and other fault moments
#   CHAOS_WORKLOAD_S=30 tests/chaos/run.sh      a shorter workload (default 60 s)
#   tests/chaos/run.sh --list                   the scenarios and what they do
#
# The seed decides the workload (sensor-sim --seed) and every random choice of the schedules
# (which moment, which partition, which broker); the printed schedule of a failed scenario and
# CHAOS_SEED reproduce it, up to the machine's timing. IOTPIPE_BIN picks the binaries (default
# build/asan/bin, so that sanitizers watch every fault); HARNESS_KEEP=1 keeps the temp dir.
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT" || exit 2
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:halt_on_error=1:strict_string_checks=1:check_initialization_order=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$ROOT/tests/lsan.supp:print_suppressions=0}
: "${CHAOS_WORKLOAD_S:=60}"
: "${CHAOS_SEED:=$(date +%s)}"
[[ $CHAOS_SEED =~ ^[0-9]+$ ]] || { echo "chaos: CHAOS_SEED must be a number" >&2; exit 2; }
[[ $CHAOS_WORKLOAD_S =~ ^[0-9]+$ ]] && [ "$CHAOS_WORKLOAD_S" -ge 20 ] ||
	{ echo "chaos: CHAOS_WORKLOAD_S must be a number of seconds, at least 20" >&2; exit 2; }
W=$CHAOS_WORKLOAD_S

# name | what it does (the schedule functions below make the lines)
SCENARIOS=(
	"kill-cleaner|kill -9 of the cleaner at 3 random moments, restarted at once or after up to 2 s"
	"kill-aggregator|kill -9 of the aggregator at 3 random moments"
	"kill-actuator|kill -9 of the actuator at 3 random moments"
	"kill-saver-edge|kill -9 of the edge raw-saver at 3 random moments"
	"kill-relay|kill -9 of mirror-relay at 3 random moments"
	"kill-saver-central|kill -9 of the central raw-saver at 3 random moments"
	"kill-ingestor|kill -9 of mqtt-ingestor at 3 random moments (the documented loss window: measured)"
	"rolling-restart|SIGTERM and start of every service, one after the other"
	"kafka-edge|edge Kafka: a broker down and up, partition leaders gone and back, injected request errors, all brokers down"
	"kafka-central|central Kafka: a broker down and up, a leader gone and back, injected request errors"
	"pg-restart|PostgreSQL stopped and started, edge then central"
	"pg-refuse|PostgreSQL refuses connections (pg_hba.conf reject, sessions ended), edge then central"
	"mqtt-restart|mosquitto restarted twice (persistence on)"
	"link-cut|the central cluster unreachable for 30 s (all its brokers down)"
	"combined|several of the above at once: kills, a rolling restart, Kafka, PostgreSQL, mosquitto, the link"
)

usage_list() {
	local s
	for s in "${SCENARIOS[@]}"; do printf '  %-20s %s\n' "${s%%|*}" "${s#*|}"; done
}
if [ "${1:-}" = --list ]; then
	usage_list
	exit 0
fi

# at FRACTION: a moment of the workload, as whole seconds (FRACTION of W, in hundredths).
at() { echo $((W * $1 / 100)); }
# rand_moments N FROM TO: sets MOMENTS to N sorted random whole seconds in [FROM, TO] (given
# as percentages of W). Not for $(...): the generator's state must advance in this shell.
MOMENTS=()
rand_moments() {
	local n=$1 lo hi i out=()
	lo=$(at "$2")
	hi=$(at "$3")
	for ((i = 0; i < n; i++)); do
		chaos_rand $((hi - lo + 1))
		out+=($((lo + REPLY)))
	done
	mapfile -t MOMENTS < <(printf '%s\n' "${out[@]}" | sort -n)
}
kills() { # kills SERVICE: three kill -9 at random moments, each restarted after 0-2 s
	local t
	rand_moments 3 8 85
	for t in "${MOMENTS[@]}"; do
		chaos_rand 3
		printf '%s kill %s %s\n' "$t" "$1" "$REPLY"
	done
}

schedule_kill-cleaner() { kills cleaner; }
schedule_kill-aggregator() { kills aggregator; }
schedule_kill-actuator() { kills actuator; }
schedule_kill-saver-edge() { kills saver-edge; }
schedule_kill-relay() { kills mirror-relay; }
schedule_kill-saver-central() { kills saver-central; }
schedule_kill-ingestor() { kills mqtt-ingestor; }
schedule_rolling-restart() {
	local i=0 n=${#CHAOS_SERVICES[@]} s
	for s in "${CHAOS_SERVICES[@]}"; do
		printf '%s term %s\n' $((W * 8 / 100 + i * W * 80 / 100 / n)) "$s"
		i=$((i + 1))
	done
}
# No injected Produce errors: on kafka-mock they make idempotent producers lose records
# (docs/kafka-mock.md); the produce path meets brokers going down and leaders moving instead.
schedule_kafka-edge() {
	local b p q
	chaos_rand 3
	b=$((REPLY + 1))
	chaos_rand "$CHAOS_PARTITIONS"
	p=$REPLY
	chaos_rand "$CHAOS_PARTITIONS"
	q=$REPLY
	cat <<EOF
$(at 8) km edge down $b
$(at 30) km edge up $b
$(at 33) km edge leader iot.raw $p none
$(at 33) km edge leader iot.clean $q none
$(at 48) km edge leader iot.raw $p $((b % 3 + 1))
$(at 48) km edge leader iot.clean $q $(((b + 1) % 3 + 1))
$(at 52) km edge error Fetch NOT_LEADER_FOR_PARTITION 5
$(at 52) km edge error OffsetCommit COORDINATOR_NOT_AVAILABLE 3
$(at 52) km edge error Heartbeat REBALANCE_IN_PROGRESS 2
$(at 60) km edge down all
$(at 78) km edge up all
EOF
}
schedule_kafka-central() {
	local b p
	chaos_rand 3
	b=$((REPLY + 1))
	chaos_rand "$CHAOS_PARTITIONS"
	p=$REPLY
	cat <<EOF
$(at 10) km central down $b
$(at 35) km central up $b
$(at 45) km central leader $CHAOS_ALIAS.iot.clean $p none
$(at 65) km central leader $CHAOS_ALIAS.iot.clean $p $((b % 3 + 1))
$(at 70) km central error Fetch NOT_LEADER_FOR_PARTITION 5
$(at 70) km central error OffsetCommit COORDINATOR_NOT_AVAILABLE 3
EOF
}
schedule_pg-restart() {
	cat <<EOF
$(at 15) pg-stop edge
$(at 40) pg-start edge
$(at 50) pg-stop central
$(at 75) pg-start central
EOF
}
schedule_pg-refuse() {
	cat <<EOF
$(at 15) pg-refuse edge
$(at 40) pg-accept edge
$(at 50) pg-refuse central
$(at 75) pg-accept central
EOF
}
schedule_mqtt-restart() {
	local t
	rand_moments 2 15 80
	for t in "${MOMENTS[@]}"; do printf '%s mqtt-restart\n' "$t"; done
}
schedule_link-cut() {
	local t
	t=$(at 20)
	printf '%s km central down all\n%s km central up all\n' "$t" $((t + 30))
}
schedule_combined() {
	local t1 t2 t3
	rand_moments 1 5 30
	t1=${MOMENTS[0]}
	rand_moments 1 35 60
	t2=${MOMENTS[0]}
	rand_moments 1 65 85
	t3=${MOMENTS[0]}
	{
		printf '%s kill cleaner 1\n' "$t1"
		printf '%s mqtt-restart\n' "$(at 12)"
		printf '%s km central down all\n%s km central up all\n' "$(at 15)" "$(($(at 15) + 30))"
		printf '%s pg-stop edge\n%s pg-start edge\n' "$(at 25)" "$(at 40)"
		printf '%s kill aggregator\n' "$t2"
		printf '%s km edge down 2\n%s km edge up 2\n' "$(at 45)" "$(at 60)"
		printf '%s term actuator\n' "$(at 50)"
		printf '%s kill saver-central\n' "$(at 55)"
		printf '%s pg-refuse central\n%s pg-accept central\n' "$(at 62)" "$(at 75)"
		printf '%s kill mirror-relay\n' "$t3"
		printf '%s term mqtt-ingestor\n' "$(at 80)"
	} | sort -s -n -k1,1
}

# check flags per scenario: MQTT redeliveries allowed where the broker or the ingestor restarts
flags_for() {
	case $1 in
	kill-ingestor) echo "--lossy --mqtt-dups" ;;
	mqtt-restart | combined) echo "--mqtt-dups" ;;
	rolling-restart) echo "--mqtt-dups --strict-term" ;;
	*) echo "" ;;
	esac
}

known() {
	local s
	for s in "${SCENARIOS[@]}"; do [ "${s%%|*}" = "$1" ] && return 0; done
	return 1
}
SELECTED=()
for name in ${CHAOS_SCENARIOS:-all}; do
	name=${name//,/ }
	for n in $name; do
		if [ "$n" = all ]; then
			for s in "${SCENARIOS[@]}"; do SELECTED+=("${s%%|*}"); done
		elif known "$n"; then
			SELECTED+=("$n")
		else
			echo "chaos: unknown scenario '$n'; the scenarios are:" >&2
			usage_list >&2
			exit 2
		fi
	done
done

source "$ROOT/tests/lib/harness.sh"
harness_init chaos
require mosquitto psql curl
[ -x /usr/bin/python3 ] || harness_skip "no /usr/bin/python3"
/usr/bin/python3 -c 'import confluent_kafka' 2>/dev/null || harness_skip "no python3-confluent-kafka"
source "$ROOT/tests/chaos/lib.sh"
trap chaos_exit EXIT
STAMP=$(date -u +%Y%m%dT%H%M%SZ)
OUT_DIR=$ROOT/build/chaos/$STAMP
CHAOS_OUT=$OUT_DIR/runs
CHAOS_DUMP_TOPICS=1
mkdir -p "$CHAOS_OUT" || exit 1
ln -sfn "$STAMP" "$ROOT/build/chaos/latest"
harness_diag "chaos: seed $CHAOS_SEED, workload ${W}s, scenarios: ${SELECTED[*]}" \
	"  reproduce: CHAOS_SEED=$CHAOS_SEED CHAOS_WORKLOAD_S=$W CHAOS_SCENARIOS=\"${SELECTED[*]}\" make chaos" \
	"  binaries: $IOTPIPE_BIN; results in $OUT_DIR"

chaos_init || exit 1
RUNS=()
# run_scenario NAME FAULTS FLAGS: one run, its check, and its files kept or trimmed.
run_scenario() {
	local name=$1 faults=$2 flags=$3 rc=0
	chaos_run "$name" "$OUT_DIR/$name.schedule" || true
	# shellcheck disable=SC2086 # flags are words
	"${CHAOS_CHECK[@]}" check "$CHAOS_OUT/baseline" "$CHAOS_OUT/$name" --scenario "$name" \
		--faults "$faults" --rules "$CHAOS_OUT/baseline/actuator.rules" \
		--window-ms 10000 --flush-ms "$CHAOS_FLUSH_MS" $flags \
		>"$CHAOS_OUT/$name/check.txt" 2>&1 || rc=$?
	grep -E '^(not ok|# MEASURED)' "$CHAOS_OUT/$name/check.txt" | sed 's/^/#   /'
	if [ $rc -eq 0 ]; then
		pass "$name"
		# The big inputs of the comparison are only worth keeping when something failed; the
		# tables' dumps stay, compressed (the baseline's as they are: every check reads them).
		if [ "$name" != baseline ]; then
			rm -f "$CHAOS_OUT/$name"/iot.raw.jsonl "$CHAOS_OUT/$name"/offline.*.jsonl
			gzip -q "$CHAOS_OUT/$name"/{edge,central}/*.csv
		fi
	else
		fail "$name (details: $CHAOS_OUT/$name/check.txt)"
		mkdir -p "$CHAOS_OUT/$name/logs"
		cp "$(cat "$CHAOS_OUT/$name/logdir" 2>/dev/null || echo /nonexistent)"/*.{log,jsonl} \
			"$CHAOS_OUT/$name/logs/" 2>/dev/null
	fi
	RUNS+=("$CHAOS_OUT/$name")
}

: >"$OUT_DIR/baseline.schedule"
harness_diag "baseline: the undisturbed run"
run_scenario baseline "none" ""
for name in "${SELECTED[@]}"; do
	chaos_rng_seed "$name"
	# In this shell, not $(...): a schedule advances the generator.
	"schedule_$name" >"$OUT_DIR/$name.schedule"
	desc=
	for s in "${SCENARIOS[@]}"; do [ "${s%%|*}" = "$name" ] && desc=${s#*|}; done
	mapfile -t lines < <(sed 's/^/    at /' "$OUT_DIR/$name.schedule")
	harness_diag "$name: $desc" "${lines[@]}"
	faults="$desc. Schedule (s from the workload's start): $(paste -sd ';' "$OUT_DIR/$name.schedule" | sed 's/;/; /g')"
	run_scenario "$name" "$faults" "$(flags_for "$name")"
done

{
	printf 'iotpipe chaos suite, %s; seed %s, workload %ss, binaries %s; load average %s\n' \
		"$STAMP" "$CHAOS_SEED" "$W" "$IOTPIPE_BIN" "$(cut -d' ' -f1-3 /proc/loadavg)"
	printf 'reproduce: CHAOS_SEED=%s CHAOS_WORKLOAD_S=%s CHAOS_SCENARIOS="%s" make chaos\n\n' \
		"$CHAOS_SEED" "$W" "${SELECTED[*]}"
} >"$OUT_DIR/report.head"
"${CHAOS_CHECK[@]}" report --out "$OUT_DIR/report.body" --json "$OUT_DIR/report.json" \
	"${RUNS[@]}" >/dev/null
cat "$OUT_DIR/report.head" "$OUT_DIR/report.body" >"$OUT_DIR/report.txt"
rm -f "$OUT_DIR/report.head" "$OUT_DIR/report.body"
cat "$OUT_DIR/report.txt"
harness_diag "report: $OUT_DIR/report.txt"
harness_finish
