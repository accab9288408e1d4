#!/usr/bin/env bash
# End-to-end benchmark: MQTT publish -> row in the central readings table, through the whole
# system of `make demo` (tools/demo.sh: mosquitto, edge and central kafka-mock, a PostgreSQL per
# site, every service) on this machine, release build.
#
#   bench/e2e.sh [STEP_SECONDS]      (default 20)
#
# sensor-sim publishes factory readings (one reading a message, millisecond event times taken
# when the message is made, no invalid ones) at a series of rates, STEP_SECONDS each; after each
# step the pipeline drains and the step is measured:
#   - loss and duplicates: the rows each step added to raw_messages (edge) must equal the
#     messages the broker confirmed, and those it added to readings (edge and central) the
#     distinct reading identities among them; any difference fails the benchmark (exit 1) after
#     the table is printed;
#   - latency, publish (the reading's ts) -> row committed (saved_at, a column this benchmark
#     adds with a clock_timestamp() default), p50 / p99 / max, at the edge and at the centre;
#   - steady: sensor-sim kept at least 97 % of the rate, and 99 % of the readings of the step's
#     last third reached the central table within 2 s (a growing backlog shows there first);
#   - CPU and resident memory of every process, idle (before any load) and during each step.
# The rates: 1000, then up by 1000 until a rate is not steady twice in a row, then once halfway
# back (the highest steady rate is the pipeline's throughput), and always 10000. Prints a table
# and writes it to bench/results/e2e-<date>.txt. E2E_INFLIGHT sets sensor-sim's --inflight
# (default 100); DEMO_BATCH_MS and DEMO_FETCH_WAIT the savers' batching and the consumers' fetch
# wait, as for the demo (200ms, 50).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
STEP_S=${1:-20}
[[ $STEP_S =~ ^[0-9]+$ ]] && [ "$STEP_S" -ge 5 ] || {
	echo "usage: bench/e2e.sh [STEP_SECONDS >= 5]" >&2
	exit 2
}
: "${IOTPIPE_BIN:=bin}"
export IOTPIPE_BIN
source tools/demo.sh
demo_deps || exit 1
# Per-minute windows as in the demo; savers write every 200 ms and consumers wait at most 50 ms
# for a fetch (tools/demo.sh explains why the embedded Kafka needs that) unless told otherwise.
DEMO_WINDOW=60s demo_start bench_e2e || exit 1
# Interrupted, a benchmark has no result (the demo itself ends with Ctrl-C).
trap 'exit 130' INT

pids=()
for name in "${DEMO_SERVICES[@]}" mosquitto edge central; do
	pids+=("$name=${HARNESS_NAME_PID[$name]}")
done
for site in edge central; do
	pids+=("postgres-$site=$(head -n 1 "${SITE_PGDATA[$site]}/postmaster.pid")")
done
mkdir -p bench/results
out="bench/results/e2e-$(date -u +%Y-%m-%d).txt"
rc=0
cmd="bench/e2e.sh${*:+ $*}"
for v in E2E_INFLIGHT DEMO_BATCH_MS DEMO_FETCH_WAIT; do
	[ -n "${!v:-}" ] && cmd="$v=${!v} $cmd"
done
"$DEMO_PY" bench/e2e.py --conf "$DEMO_CONF" --mqtt "$MQTT_URL" --sim "$(harness_bin sensor-sim)" \
	--step "$STEP_S" --out "$out" --logs "$HARNESS_DIR" --command "$cmd" \
	"${pids[@]}" || rc=$?
[ $rc -eq 0 ] || fail "end-to-end benchmark (exit $rc): see above"
[ "$HARNESS_NOT_OK" -eq 0 ]
