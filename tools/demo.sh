#!/usr/bin/env bash
# make demo: the whole suite on this machine, on loopback ports, until Ctrl-C or for a fixed time.
#
#   tools/demo.sh [SECONDS]        (make demo [DURATION=SECONDS]); no SECONDS: until Ctrl-C
#
# What runs (every process, port and file is this run's own, and goes away at the end):
#   sensor-sim ─MQTT─► mosquitto ─► mqtt-ingestor ─► edge kafka-mock (iot.raw)
#   edge: cleaner, actuator (heat-pump commands back over MQTT), aggregator, forecaster;
#         one raw-saver per topic into the edge PostgreSQL
#   mirror-relay: iot.clean, .rejected, .aggregates, .commands, .events, .forecasts
#         ─► central kafka-mock as edge1.<topic> ─► one raw-saver ─► the central PostgreSQL
#
# A live summary (tools/demo-status) is refreshed every 2 s. With SECONDS, sensor-sim stops after
# that long, the pipeline drains, a final report is printed, and the exit status is 0 only when
# the report found no loss, no difference between edge and centre, and no error. Ctrl-C prints
# what was done so far and stops everything (exit status 0 when everything stopped cleanly).
#
# Environment:
#   IOTPIPE_BIN      directory of the binaries (default bin/, built first by `make`)
#   DEMO_RATE        messages per second sensor-sim publishes (default 200)
#   DEMO_WINDOW      aggregation window (default 60s: per-minute aggregates)
#   DEMO_REPORT      also write the final report as JSON to this file
#   DEMO_FETCH_WAIT  consumers' fetch.wait.max.ms (default 50, see below)
#   DEMO_BATCH_MS    raw-savers' --batch-ms (default 200ms)
#   HARNESS_KEEP     keep the temp dir (logs, databases) after the end
# Needs Debian 12 packages (tools/deps.sh); missing ones are installed first.
#
# Sourced (bench/e2e.sh does), it only defines the functions: demo_start starts everything but
# the simulator, and the caller drives the load.

DEMO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
DEMO_PY=/usr/bin/python3 # Debian's: demo-status needs nothing outside the standard library
# kafka-mock keeps about 5 MB per partition: 16 partitions per topic keep every backlog of the
# demo and the benchmark far below that.
DEMO_PARTITIONS=16
DEMO_EDGE_TOPICS=(iot.raw iot.clean iot.rejected iot.aggregates iot.commands iot.events iot.late
	iot.forecasts iot.forecaster-state iot.deadletter)
DEMO_MIRRORED=(iot.clean iot.rejected iot.aggregates iot.commands iot.events iot.forecasts)
DEMO_SERVICES=()
declare -gA SITE_DB=() SITE_PGDATA=()
# The harness's state must be global, so it is sourced here, at the top level.
source "$DEMO_ROOT/tests/lib/harness.sh"

# demo_deps: installs the Debian packages when something the demo needs is missing, then builds
# the release binaries when they are the ones used (nothing to do under `make demo`).
demo_deps() {
	local missing=() c
	for c in mosquitto psql curl cc pkg-config; do
		command -v "$c" >/dev/null 2>&1 || missing+=("$c")
	done
	[ -x "$DEMO_PY" ] || missing+=(python3)
	compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || missing+=(postgresql)
	pkg-config --exists rdkafka jansson libpq libmicrohttpd 2>/dev/null || missing+=("C libraries")
	if [ ${#missing[@]} -gt 0 ]; then
		echo "demo: missing ${missing[*]}: installing the dependencies (tools/deps.sh)" >&2
		(cd "$DEMO_ROOT" && bash tools/deps.sh) || return 1
	fi
	if [ "${IOTPIPE_BIN:-bin}" = bin ]; then
		make -C "$DEMO_ROOT" --no-print-directory -s all || return 1
	fi
}

# --- PostgreSQL: one throwaway server per site ---------------------------------------------
# The harness manages one server; each site's runs in a subdirectory of the temp dir. The
# harness's cleanup stops the one started last (central), demo_exit the edge one.
start_site_pg() {
	local site=$1 top=$HARNESS_DIR rc=0
	HARNESS_DIR=$top/$site
	mkdir -p "$HARNESS_DIR" && chmod 755 "$HARNESS_DIR"
	HARNESS_PG_DATA=
	start_pg || rc=1
	HARNESS_DIR=$top
	SITE_PGDATA[$site]=$HARNESS_PG_DATA
	SITE_DB[$site]="host=$PGHOST port=$PGPORT user=postgres dbname=postgres"
	return $rc
}
stop_site_pg() {
	[ -n "${SITE_PGDATA[$1]:-}" ] || return 0
	local keep=$HARNESS_PG_DATA
	HARNESS_PG_DATA=${SITE_PGDATA[$1]}
	stop_pg
	HARNESS_PG_DATA=$keep
}

# --- stopping -------------------------------------------------------------------------------
# sensor-sim first, so nothing new enters; then every service at once, so their shutdowns
# overlap; then the harness stops the brokers and the databases, which the services needed
# until they had committed.
demo_tracked() {
	local pid=${HARNESS_NAME_PID[$1]:-}
	[ -n "$pid" ] && [ -n "${HARNESS_PID_NAME[$pid]:-}" ]
}
demo_stop() { # demo_stop NAME: stop_bg, and a failure unless it exits 0
	local status=0
	demo_tracked "$1" || return 0
	stop_bg "$1" || status=$?
	[ $status -eq 0 ] || fail "$1 exited with status $status on SIGTERM (log: $(harness_log "$1"))"
}
demo_exit() {
	local rc=$? name
	trap '' INT TERM
	demo_stop sensor-sim
	for name in "${DEMO_SERVICES[@]}"; do
		demo_tracked "$name" && kill -TERM -- "-${HARNESS_NAME_PID[$name]}" 2>/dev/null
	done
	for name in "${DEMO_SERVICES[@]}"; do demo_stop "$name"; done
	stop_site_pg edge
	(exit $rc)
	harness_cleanup
}

# Ctrl-C: what the pipeline did so far, then the same stop as at the end. Stopping is how a
# run without SECONDS ends, so the exit status is 0 when everything stopped cleanly.
DEMO_STATUS=()
DEMO_T0=$SECONDS
demo_interrupt() {
	trap '' INT
	printf '\n'
	harness_diag "interrupted: stopping everything"
	[ ${#DEMO_STATUS[@]} -gt 0 ] && "${DEMO_STATUS[@]}" snapshot --elapsed $((SECONDS - DEMO_T0))
	exit 0
}

demo_conf() { printf '%s\n' "$*" >>"$DEMO_CONF"; }

# demo_service NAME BINARY ARGS...: starts it with a metrics port, for demo-status.
demo_service() {
	local name=$1 port
	shift
	port=$(free_port) || return 1
	start_bg "$name" "$@" --metrics-port "$port"
	DEMO_SERVICES+=("$name")
	demo_conf "service $name $port"
}

# demo_start NAME: temp dir and traps (harness_init NAME), brokers, both databases and every
# service but the simulator; returns when every consumer has its partitions. Sets E and C (the
# edge and central bootstrap lists), SITE_DB[edge|central] (conninfo), DEMO_CONF (the file
# demo-status reads) and DEMO_STATUS (the command that runs demo-status on it).
demo_start() {
	local p t site saver args fetch=${DEMO_FETCH_WAIT:-50} batch=${DEMO_BATCH_MS:-200ms}
	local window=${DEMO_WINDOW:-60s} consumer relay_topics forecaster rules
	harness_init "$1"
	trap demo_exit EXIT
	trap demo_interrupt INT
	for p in kafka-mock raw-saver mirror-relay cleaner actuator aggregator mqtt-ingestor sensor-sim; do
		harness_bin "$p" >/dev/null || return 1
	done
	forecaster=$(harness_bin forecaster 2>/dev/null) || forecaster=
	saver=$(harness_bin raw-saver)

	start_mosquitto || return 1
	args=()
	for t in "${DEMO_EDGE_TOPICS[@]}"; do args+=(--topic "$t:$DEMO_PARTITIONS"); done
	start_kafka_mock --name edge "${args[@]}" || return 1
	args=(--topic "iot.deadletter:$DEMO_PARTITIONS")
	for t in "${DEMO_MIRRORED[@]}"; do args+=(--topic "edge1.$t:$DEMO_PARTITIONS"); done
	start_kafka_mock --name central "${args[@]}" || return 1
	E=$BOOTSTRAP_EDGE
	C=$BOOTSTRAP_CENTRAL

	start_site_pg edge || return 1
	start_site_pg central || return 1
	for site in edge central; do
		"$saver" --db "${SITE_DB[$site]}" --migrations "$DEMO_ROOT/schemas/postgres" --migrate \
			>>"$HARNESS_DIR/migrate.log" 2>&1 || {
			fail "raw-saver --migrate on the $site database"
			tail -n 20 "$HARNESS_DIR/migrate.log" >&2
			return 1
		}
		# The tables keep no arrival time; this column, filled by PostgreSQL as each row is
		# written, is what end-to-end latency is measured with. raw-saver leaves columns
		# with a default alone.
		psql -XqAt -v ON_ERROR_STOP=1 -d "${SITE_DB[$site]}" -c "
			ALTER TABLE readings ADD COLUMN IF NOT EXISTS
				saved_at timestamptz NOT NULL DEFAULT clock_timestamp();
			ALTER TABLE raw_messages ADD COLUMN IF NOT EXISTS
				saved_at timestamptz NOT NULL DEFAULT clock_timestamp();" \
			>>"$HARNESS_DIR/migrate.log" 2>&1 || {
			fail "saved_at column on the $site database"
			return 1
		}
	done

	DEMO_CONF=$HARNESS_DIR/demo-status.conf
	: >"$DEMO_CONF"
	demo_conf "logs $HARNESS_DIR"
	demo_conf "db edge ${SITE_DB[edge]}"
	demo_conf "db central ${SITE_DB[central]}"
	demo_conf "window $window"

	# The embedded Kafka answers a fetch that finds no data only after fetch.wait.max.ms (a
	# real broker answers as soon as data arrives), so librdkafka's default of 500 ms would
	# add up to half a second per hop. librdkafka logs a CONFWARN at start-up for this
	# consumer property in the services' producers, which ignore it.
	consumer=(-X "fetch.wait.max.ms=$fetch")
	demo_service saver-raw "$saver" -b "$E" --db "${SITE_DB[edge]}" --migrations '' \
		--cluster edge1 --in iot.raw -g saver-raw --batch-ms "$batch" "${consumer[@]}" || return 1
	for t in clean rejected aggregates commands events forecasts; do
		[ "$t" = forecasts ] && [ -z "$forecaster" ] && continue
		demo_service "saver-$t" "$saver" -b "$E" --db "${SITE_DB[edge]}" --migrations '' \
			--cluster edge1 --in "iot.$t" -g "saver-$t" --batch-ms "$batch" \
			"${consumer[@]}" || return 1
	done
	demo_service saver-central "$saver" -b "$C" --db "${SITE_DB[central]}" --migrations '' \
		--cluster central --in '^edge1\.iot\..*' -g saver-central --batch-ms "$batch" \
		"${consumer[@]}" || return 1
	relay_topics=$(IFS=,; echo "${DEMO_MIRRORED[*]}")
	[ -n "$forecaster" ] || relay_topics=${relay_topics/,iot.forecasts/}
	demo_service mirror-relay "$(harness_bin mirror-relay)" -b "$E" -B "$C" -t "$relay_topics" \
		-a edge1 -T '{source}.{topic}' --lag-interval 1s \
		-X "source.fetch.wait.max.ms=$fetch" || return 1
	demo_service cleaner "$(harness_bin cleaner)" -b "$E" --cluster edge1 "${consumer[@]}" ||
		return 1
	# The home rules of the example file, and one episode rule the rooms' heating cycle crosses.
	rules=$HARNESS_DIR/demo.rules
	{
		cat "$DEMO_ROOT/examples/rules/actuator.rules"
		printf '\n# Demo: each episode in which a home gets warmer than 24 °C; it ends below 22 °C.\n'
		printf '[rule home-warm]\nmetric     = temperature\nsite       = home*\n'
		printf 'threshold  = 24\nhysteresis = 2\n'
	} >"$rules"
	demo_service actuator "$(harness_bin actuator)" -b "$E" --rules "$rules" --mqtt "$MQTT_URL" \
		--client-id demo-actuator "${consumer[@]}" || return 1
	demo_service aggregator "$(harness_bin aggregator)" -b "$E" --window "$window" --grace 5s \
		"${consumer[@]}" || return 1
	if [ -n "$forecaster" ]; then
		demo_service forecaster "$forecaster" -b "$E" "${consumer[@]}" || return 1
	else
		harness_diag "forecaster is not built: running without forecasts"
	fi
	# Only the simulator's reading topics: '#' would also take the actuator's commands.
	demo_service mqtt-ingestor "$(harness_bin mqtt-ingestor)" -b "$E" --mqtt "$MQTT_URL" \
		--client-id demo-ingestor --source demo -t 'factory/#' -t '+/+/temperature' \
		-t '+/+/energy' -t '+/+/+/temperature' -t '+/+/+/humidity' -t '+/+/+/co2' || return 1

	DEMO_STATUS=("$DEMO_PY" "$DEMO_ROOT/tools/demo-status" "$DEMO_CONF")
	"${DEMO_STATUS[@]}" ready --timeout 90
}

demo_main() {
	local duration=${1:-0} rate=${DEMO_RATE:-200} sim_args rc report
	[[ $duration =~ ^[0-9]+$ ]] || {
		echo "demo: DURATION must be whole seconds (0: until Ctrl-C), not '$duration'" >&2
		exit 2
	}
	[[ $rate =~ ^[0-9]+$ ]] && [ "$rate" -gt 0 ] || {
		echo "demo: DEMO_RATE must be a positive whole number, not '$rate'" >&2
		exit 2
	}
	: "${IOTPIPE_BIN:=bin}"
	export IOTPIPE_BIN
	demo_deps || exit 1
	demo_start demo || exit 1
	demo_conf "rate $rate"
	demo_conf "duration $duration"
	demo_conf "sim_summary $HARNESS_DIR/sim.json"
	demo_conf "poke $IOTPIPE_BIN/iot-cat -b $E -C -t iot.clean -o end        # readings as they come"
	demo_conf "poke $IOTPIPE_BIN/iot-cat -b $C -C -t edge1.iot.commands -e   # the centre's copy"
	demo_conf "poke mosquitto_sub -h 127.0.0.1 -p $MQTT_PORT -t '+/+/heatpump/set' -v"
	demo_conf "poke psql \"${SITE_DB[edge]}\" -c 'select issued_at, topic, payload, value from commands order by issued_at desc limit 5'"
	demo_conf "poke psql \"${SITE_DB[central]}\" -c 'select count(*) from readings'"

	# Four sites of every kind (factories, homes, meters, plain sensors), 2 % broken messages,
	# and room physics 60 times faster than the clock, so that the heat pumps' on/off cycle
	# shows within seconds.
	sim_args=(--mqtt "$MQTT_URL" --client-id demo-sim --format mixed --sites 4 --devices 8
		--sensors 2 --rate "$rate" --invalid 0.02 --time-scale 60 --summary "$HARNESS_DIR/sim.json")
	[ "$duration" -gt 0 ] && sim_args+=(--duration "${duration}s")
	start_bg sensor-sim "$(harness_bin sensor-sim)" "${sim_args[@]}"
	DEMO_T0=$SECONDS
	if [ "$duration" -gt 0 ]; then
		harness_diag "running for ${duration}s; Ctrl-C stops everything (temp dir $HARNESS_DIR)"
	else
		harness_diag "running until Ctrl-C (temp dir $HARNESS_DIR)"
	fi
	"${DEMO_STATUS[@]}" watch --pid "$(harness_pid_of sensor-sim)" || exit 1

	# sensor-sim has ended (fixed duration), after the broker's last acknowledgements.
	rc=0
	wait_bg sensor-sim 60 || rc=$?
	[ $rc -eq 0 ] || fail "sensor-sim exited with status $rc (log: $(harness_log sensor-sim))"
	report=(report --drain-timeout 60)
	[ -n "${DEMO_REPORT:-}" ] && report+=(--json "$DEMO_REPORT")
	"${DEMO_STATUS[@]}" "${report[@]}" || fail "the final report found problems (above)"
	[ "$HARNESS_NOT_OK" -eq 0 ]
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
	set -uo pipefail
	cd "$DEMO_ROOT" || exit 2
	demo_main "$@"
fi
