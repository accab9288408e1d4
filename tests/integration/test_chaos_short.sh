#!/usr/bin/env bash
# The fault suite in its short form (the full one is `make chaos`, docs/chaos.md): the whole
# edge + central pipeline (sensor-sim -> mosquitto -> mqtt-ingestor -> edge Kafka -> cleaner,
# aggregator, actuator -> raw-saver -> edge PostgreSQL; mirror-relay -> central Kafka ->
# raw-saver -> central PostgreSQL) runs a deterministic workload once undisturbed, then again
# while the cleaner is killed with SIGKILL and the edge PostgreSQL is stopped and started under
# the savers. Every table at both sites must equal the undisturbed run's (compared on record
# identities and values), the centre must hold the edge's rows, and every derived table must be
# what its inputs imply. CHAOS_SEED picks another workload.
source "$(dirname "$0")/../lib/harness.sh"
harness_init chaos_short
require mosquitto psql
[ -x /usr/bin/python3 ] || harness_skip "no /usr/bin/python3"
/usr/bin/python3 -c 'import confluent_kafka' 2>/dev/null || harness_skip "no python3-confluent-kafka"
: "${CHAOS_WORKLOAD_S:=10}"
# Bounded so that a pipeline that never drains fails here, well within tests/run.sh's timeout.
: "${CHAOS_SETTLE_S:=60}"
source "$HARNESS_ROOT/tests/chaos/lib.sh"
trap chaos_exit EXIT
harness_diag "seed $CHAOS_SEED (CHAOS_SEED=$CHAOS_SEED reproduces this workload)"

chaos_init || exit 1
D=$HARNESS_DIR
: >"$D/baseline.schedule"
chaos_run baseline "$D/baseline.schedule"
# The cleaner dies between its produce and its commit; the edge database goes away under the
# savers for 4 s and comes back (with the cleaner's restart still replaying).
cat >"$D/faults.schedule" <<'EOF'
3 kill cleaner
5 pg-stop edge
9 pg-start edge
EOF
chaos_run faults "$D/faults.schedule"

check_run() { # check_run NAME FAULTS FLAGS...
	local name=$1 faults=$2 rc=0
	shift 2
	"${CHAOS_CHECK[@]}" check "$CHAOS_OUT/baseline" "$CHAOS_OUT/$name" --scenario "$name" \
		--faults "$faults" --rules "$CHAOS_OUT/baseline/actuator.rules" \
		--window-ms 10000 --flush-ms "$CHAOS_FLUSH_MS" "$@" >"$D/$name.check" 2>&1 || rc=$?
	sed 's/^/# /' "$D/$name.check"
	return $rc
}
check "the undisturbed run agrees with itself and with the models" check_run baseline none
check "kill -9 cleaner + edge PostgreSQL restart: every table as undisturbed" \
	check_run faults "kill -9 cleaner at 3s; edge PostgreSQL stopped 5s-9s"
"${CHAOS_CHECK[@]}" report "$CHAOS_OUT/baseline" "$CHAOS_OUT/faults" | sed 's/^/# /'
harness_finish
