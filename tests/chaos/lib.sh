# shellcheck shell=bash
# The system-wide fault suite's machinery (docs/chaos.md): the whole edge + central pipeline on
# loopback, a deterministic workload, runs, settling and snapshots. Fault actions and the
# supervisor are in faults.sh, the PostgreSQL servers in sites.sh. Sourced by tests/chaos/run.sh
# (make chaos) and tests/integration/test_chaos_short.sh, after tests/lib/harness.sh and
# harness_init.
#
#   chaos_init                      both PostgreSQL servers and a migrated template database
#   chaos_run NAME SCHEDULE_FILE    one run: fresh brokers, databases and services; the workload
#                                   while the schedule's faults are applied; settle; snapshot
#                                   into $CHAOS_OUT/NAME/; everything stopped again
#   chaos_exit                      the EXIT trap to install after sourcing
# "${CHAOS_CHECK[@]}" check BASE_DIR RUN_DIR ... then compares two runs (chaos.py).
#
# A schedule is a text file, one fault action a line: "SECONDS ACTION [ARGS]", SECONDS counted
# from the start of the workload; lines are run in order (see chaos_action for the actions).
#
# Variables (set before chaos_init; the defaults are the short form's):
#   CHAOS_SEED        sensor-sim seed (default 1)
#   CHAOS_WORKLOAD_S  workload length in seconds at the nominal rate (default 15)
#   CHAOS_SETTLE_S    longest wait for the pipeline to drain, and for the simulators beyond
#                     their nominal time (default 300)
#   CHAOS_OUT         where snapshots and run logs go (default $HARNESS_DIR/out)

CHAOS_LIB_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CHAOS_PY=/usr/bin/python3 # Debian's: it has confluent_kafka
CHAOS_CHECK=("$CHAOS_PY" "$CHAOS_LIB_DIR/chaos.py")
: "${CHAOS_SEED:=1}"
: "${CHAOS_WORKLOAD_S:=15}"
: "${CHAOS_SETTLE_S:=300}"

CHAOS_PARTITIONS=16
CHAOS_ALIAS=edge1
CHAOS_TOPICS=(iot.raw iot.clean iot.rejected iot.aggregates iot.commands iot.events iot.late
	iot.deadletter)
CHAOS_RELAYED=(iot.raw iot.clean iot.rejected iot.aggregates iot.commands iot.events)
# Start of the workload's event times, and of the flush round that closes every window.
CHAOS_START_TS=2024-06-03T00:00:00Z
CHAOS_START_MS=1717372800000
CHAOS_FLUSH_MS=$((CHAOS_START_MS + 86400000))
CHAOS_WINDOW=10s
CHAOS_GRACE=90s
# Services in start order (consumers before the ingestor, so nothing waits long in Kafka).
CHAOS_SERVICES=(saver-edge saver-central mirror-relay cleaner aggregator actuator mqtt-ingestor)
# Consumer group settings of every restartable consumer: a killed member's partitions are
# handed over after at most session.timeout.ms, and the embedded Kafka makes the first member
# of an emptied group wait that long minus one second (docs/kafka-mock.md).
CHAOS_GROUP_X=(-X session.timeout.ms=6000 -X heartbeat.interval.ms=500 -X fetch.wait.max.ms=50)

declare -gA CHAOS_SITE_DATA=() CHAOS_SITE_PORT=() CHAOS_SITE_SOCK=()
declare -gA CHAOS_WANT=()    # service -> 1 while it should be running (the supervisor's view)
declare -gA CHAOS_STARTS=()  # service -> how many times it was started in this run
CHAOS_TOP=
CHAOS_RUN=
CHAOS_RUN_DIR=
CHAOS_DB=
CHAOS_T0_MS=0

chaos_now_ms() { date +%s%3N; }

# chaos_log TEXT: one line in the run's event log (faults, exits, restarts), with the time since
# the workload started.
chaos_log() {
	local t=$(($(chaos_now_ms) - CHAOS_T0_MS))
	[ "$CHAOS_T0_MS" -gt 0 ] || t=0
	printf '%6.1fs %s\n' "$(awk -v t="$t" 'BEGIN { print t / 1000 }')" "$*" >>"$CHAOS_RUN_DIR/events.log"
	printf '#   [%s %6.1fs] %s\n' "$CHAOS_RUN" "$(awk -v t="$t" 'BEGIN { print t / 1000 }')" "$*"
}

source "$CHAOS_LIB_DIR/sites.sh"
source "$CHAOS_LIB_DIR/faults.sh"

# chaos_init: both servers (initdb once), and a template database migrated by raw-saver.
chaos_init() {
	local site saver
	CHAOS_TOP=$HARNESS_DIR
	: "${CHAOS_OUT:=$HARNESS_DIR/out}"
	mkdir -p "$CHAOS_OUT" || return 1
	saver=$(harness_bin raw-saver) || return 1
	for site in edge central; do
		mkdir -p "$CHAOS_TOP/pg-$site" && chmod 755 "$CHAOS_TOP/pg-$site"
		chaos_hba "$site" accept
		chaos_pg_start "$site" || return 1
		CHAOS_SITE_SOCK[$site]=$CHAOS_TOP/pg-$site/pg
		chaos_psql "$site" postgres -c 'CREATE DATABASE chaos_template' || return 1
		"$saver" --db "host=${CHAOS_SITE_SOCK[$site]} port=${CHAOS_SITE_PORT[$site]} user=postgres dbname=chaos_template" \
			--migrations "$HARNESS_ROOT/schemas/postgres" --migrate >>"$CHAOS_TOP/migrate.log" 2>&1 || {
			fail "raw-saver --migrate on the $site template database"
			tail -n 20 "$CHAOS_TOP/migrate.log" | sed 's/^/#   /'
			return 1
		}
	done
}

# --- the workload ------------------------------------------------------------------------------
# Four simulators, one per payload format family, so that every message carries its own event
# time (the bare format has none: its readings would take the ingestor's clock) and no two
# simulators share a device name. Every stream advances 2 s of event time per second at the
# nominal rate; the batched one sends 3 readings per message.
#   name  streams  flags
CHAOS_SIMS=(
	"factory 72 --format factory-human --sites 6 --devices 3 --sensors 4"
	"home 12 --format home --sites 3 --devices 4"
	"power 12 --format power --sites 2 --devices 3 --sensors 2"
	"temperature 12 --format temperature --sites 2 --devices 3 --sensors 2 --batch 3"
)
CHAOS_INVALID=0.03

# chaos_sim_spec LINE: sets SIM_NAME, SIM_STREAMS, SIM_FLAGS, SIM_COUNT, SIM_RATE.
chaos_sim_spec() {
	local -a w
	read -r -a w <<<"$1"
	SIM_NAME=${w[0]}
	SIM_STREAMS=${w[1]}
	SIM_FLAGS=("${w[@]:2}")
	local steps=1 rounds
	[[ " ${SIM_FLAGS[*]} " == *" --batch 3 "* ]] && steps=3
	rounds=$((2 * CHAOS_WORKLOAD_S / steps))
	SIM_COUNT=$((SIM_STREAMS * rounds))
	SIM_RATE=$(((SIM_COUNT + CHAOS_WORKLOAD_S - 1) / CHAOS_WORKLOAD_S))
}

# chaos_workload_start PHASE: the simulators in the background (PHASE main or flush: one valid
# round a day later, whose readings push every partition's watermark past the main windows).
chaos_workload_start() {
	local spec args
	for spec in "${CHAOS_SIMS[@]}"; do
		chaos_sim_spec "$spec"
		args=("${SIM_FLAGS[@]}" --seed "$CHAOS_SEED" --no-control --mqtt "$MQTT_URL" --qos 1
			--client-id "chaos-sim-$SIM_NAME-$1" --session-expiry 1h --drain-timeout 300s
			--connect-timeout 120s --summary "$CHAOS_RUN_DIR/sim-$SIM_NAME-$1.json")
		if [ "$1" = main ]; then
			args+=(--start-ts "$CHAOS_START_TS" --count "$SIM_COUNT" --rate "$SIM_RATE"
				--invalid "$CHAOS_INVALID")
		else
			args+=(--start-ts "$CHAOS_FLUSH_MS" --count "$SIM_STREAMS" --rate 0)
		fi
		start_bg "sim-$SIM_NAME-$1" "$(harness_bin sensor-sim)" "${args[@]}"
	done
}

# chaos_workload_wait PHASE TIMEOUT_S: waits (supervising) for the simulators; 0 when all exited 0.
chaos_workload_wait() {
	local spec deadline=$((SECONDS + $2)) rc ok=0
	for spec in "${CHAOS_SIMS[@]}"; do
		chaos_sim_spec "$spec"
		while bg_alive "sim-$SIM_NAME-$1" && [ $SECONDS -lt $deadline ]; do chaos_sleep 0.5; done
		rc=0
		wait_bg "sim-$SIM_NAME-$1" 1 || rc=$?
		if [ $rc -ne 0 ]; then
			chaos_log "sensor-sim $SIM_NAME ($1) exited with status $rc"
			ok=1
		fi
	done
	return $ok
}

# --- services ----------------------------------------------------------------------------------

chaos_rules() {
	cat <<'EOF'
# The suite's fault runs: commands that toggle often, episodes that open and close often.
[rule speed-band]
metric       = speed
low          = 1420
high         = 1480
topic        = cmd/{site}/{device}/{sensor}
low_payload  = {"speed":"up","at":{value}}
high_payload = {"speed":"down","at":{value}}
qos          = 1
retain       = true

[rule home-heating]
metric       = temperature
site         = home*
low          = 20
high         = 25
topic        = {site}/{device}/heatpump/set
low_payload  = {"status":"1"}
high_payload = {"status":"0"}

[rule overpressure]
metric     = pressure
threshold  = 123
hysteresis = 3

[rule overvoltage]
metric     = voltage
threshold  = 232
hysteresis = 1
EOF
}

# chaos_svc_start NAME: starts a service with the run's settings and a new metrics port.
chaos_svc_start() {
	local name=$1 port db_edge db_central relayed cmd
	port=$(free_port) || return 1
	db_edge="host=127.0.0.1 port=${CHAOS_SITE_PORT[edge]} user=postgres dbname=$CHAOS_DB"
	db_central="host=127.0.0.1 port=${CHAOS_SITE_PORT[central]} user=postgres dbname=$CHAOS_DB"
	relayed=$(IFS=,; echo "${CHAOS_RELAYED[*]}")
	case $name in
	mqtt-ingestor)
		cmd=("$(harness_bin mqtt-ingestor)" -b "$E" --mqtt "$MQTT_URL" --client-id chaos-ingestor
			--session-expiry 1h --source chaos -t 'factory/#' -t '+/+/temperature'
			-t '+/+/energy') ;;
	cleaner)
		cmd=("$(harness_bin cleaner)" -b "$E" --cluster "$CHAOS_ALIAS" --max-age 100000d
			"${CHAOS_GROUP_X[@]}") ;;
	aggregator)
		# No idle advance: an unavailable partition must not let its event time run on, or
		# what it delivers later would be late (docs/aggregator.md); the flush round closes
		# the windows instead.
		cmd=("$(harness_bin aggregator)" -b "$E" --window "$CHAOS_WINDOW" --grace "$CHAOS_GRACE"
			--idle-timeout 0 "${CHAOS_GROUP_X[@]}") ;;
	actuator)
		cmd=("$(harness_bin actuator)" -b "$E" --rules "$CHAOS_RUN_DIR/actuator.rules"
			--mqtt "$MQTT_URL" --client-id chaos-actuator --session-expiry 1h
			"${CHAOS_GROUP_X[@]}") ;;
	saver-edge)
		cmd=("$(harness_bin raw-saver)" -b "$E" --db "$db_edge" --migrations '' --cluster "$CHAOS_ALIAS"
			--in "$relayed" -g saver-edge --batch-ms 200ms --retry-max 2s "${CHAOS_GROUP_X[@]}") ;;
	saver-central)
		cmd=("$(harness_bin raw-saver)" -b "$C" --db "$db_central" --migrations '' --cluster central
			--in "^$CHAOS_ALIAS\\.iot\\..*" -g saver-central --batch-ms 200ms --retry-max 2s
			"${CHAOS_GROUP_X[@]}") ;;
	mirror-relay)
		cmd=("$(harness_bin mirror-relay)" -b "$E" -B "$C" -t "$relayed" -a "$CHAOS_ALIAS"
			-T '{source}.{topic}' --lag-interval 1s -X source.session.timeout.ms=6000
			-X source.heartbeat.interval.ms=500 -X source.fetch.wait.max.ms=50) ;;
	*) harness_die "chaos_svc_start: unknown service $name" ;;
	esac
	start_bg "$name" "${cmd[@]}" --metrics-port "$port"
	CHAOS_WANT[$name]=1
	CHAOS_STARTS[$name]=$((${CHAOS_STARTS[$name]:-0} + 1))
	printf 'service %s %s\n' "$name" "$port" >>"$CHAOS_RUN_DIR/chaos.conf"
}

# --- one run -------------------------------------------------------------------------------------

chaos_conf() { printf '%s\n' "$*" >>"$CHAOS_RUN_DIR/chaos.conf"; }

# chaos_run_start NAME: fresh mosquitto, edge and central kafka-mock, two databases, every
# service; returns when every consumer has its partitions.
chaos_run_start() {
	local t args site n
	CHAOS_RUN=$1
	CHAOS_RUN_DIR=$CHAOS_TOP/run-$1
	mkdir -p "$CHAOS_RUN_DIR" && chmod 755 "$CHAOS_RUN_DIR"
	: >"$CHAOS_RUN_DIR/events.log"
	CHAOS_T0_MS=0
	CHAOS_WANT=()
	CHAOS_STARTS=()
	# Logs, the broker's persistence and kafka-mock's control FIFOs go to the run's directory.
	HARNESS_DIR=$CHAOS_RUN_DIR
	n=$(find "$CHAOS_TOP" -maxdepth 1 -name 'run-*' | wc -l)
	CHAOS_DB=run$n
	for site in edge central; do
		chaos_psql "$site" postgres -c "CREATE DATABASE $CHAOS_DB TEMPLATE chaos_template" || return 1
	done
	chaos_rules >"$CHAOS_RUN_DIR/actuator.rules"
	start_mosquitto --persist || return 1
	args=(--broker-count 3)
	for t in "${CHAOS_TOPICS[@]}"; do args+=(--topic "$t:$CHAOS_PARTITIONS"); done
	start_kafka_mock --name edge "${args[@]}" || return 1
	args=(--broker-count 3 --topic "iot.deadletter:$CHAOS_PARTITIONS")
	for t in "${CHAOS_RELAYED[@]}"; do args+=(--topic "$CHAOS_ALIAS.$t:$CHAOS_PARTITIONS"); done
	start_kafka_mock --name central "${args[@]}" || return 1
	E=$BOOTSTRAP_EDGE
	C=$BOOTSTRAP_CENTRAL
	: >"$CHAOS_RUN_DIR/chaos.conf"
	chaos_conf "bootstrap edge $E"
	chaos_conf "bootstrap central $C"
	for site in edge central; do
		chaos_conf "db $site host=${CHAOS_SITE_SOCK[$site]} port=${CHAOS_SITE_PORT[$site]} user=postgres dbname=$CHAOS_DB"
	done
	chaos_conf "alias $CHAOS_ALIAS"
	for t in "${CHAOS_SERVICES[@]}"; do chaos_svc_start "$t" || return 1; done
	"${CHAOS_CHECK[@]}" ready "$CHAOS_RUN_DIR/chaos.conf" --timeout 90 || {
		fail "$1: the pipeline did not get ready"
		return 1
	}
}

# chaos_run_stop: every service SIGTERMed (their exit statuses recorded: a sanitizer report at
# shutdown is non-zero), then the brokers.
chaos_run_stop() {
	local name rc
	for name in "${CHAOS_SERVICES[@]}"; do
		CHAOS_WANT[$name]=0
		bg_alive "$name" 2>/dev/null && kill -TERM -- "-$(harness_pid_of "$name")" 2>/dev/null
	done
	for name in "${CHAOS_SERVICES[@]}"; do
		[ -n "${HARNESS_NAME_PID[$name]:-}" ] &&
			[ -n "${HARNESS_PID_NAME[${HARNESS_NAME_PID[$name]}]:-}" ] || continue
		rc=0
		stop_bg "$name" 30 || rc=$?
		printf '%s %s\n' "$name" "$rc" >>"$CHAOS_RUN_DIR/final-exits"
	done
	# Simulators still publishing after their deadline (a failure already recorded).
	for name in "${!HARNESS_NAME_PID[@]}"; do
		[[ $name == sim-* ]] && bg_alive "$name" && stop_bg "$name" 5 >/dev/null 2>&1
	done
	stop_bg mosquitto >/dev/null 2>&1
	for name in edge central; do
		[ -n "${HARNESS_KM_FD[$name]:-}" ] || continue
		stop_bg "$name" >/dev/null 2>&1
		eval "exec ${HARNESS_KM_FD[$name]}>&-"
		unset "HARNESS_KM_FD[$name]" "HARNESS_KM_OUT[$name]" "HARNESS_KM_PID[$name]"
	done
	HARNESS_DIR=$CHAOS_TOP
	CHAOS_WANT=()
}

# chaos_settle TIMEOUT_S STABLE: polls (supervising) until the pipeline has drained and the
# tables stayed unchanged over STABLE more polls (chaos.py settle).
chaos_settle() {
	local deadline=$((SECONDS + $1)) why=
	rm -f "$CHAOS_RUN_DIR/settle.state"
	while [ $SECONDS -lt $deadline ]; do
		chaos_supervise
		why=$("${CHAOS_CHECK[@]}" settle "$CHAOS_RUN_DIR/chaos.conf" --stable "$2" \
			--state "$CHAOS_RUN_DIR/settle.state" 2>&1) && return 0
		sleep 1
	done
	chaos_log "did not settle within $1 s: $why"
	printf '%s\n' "$why" >"$CHAOS_RUN_DIR/unsettled"
	return 1
}

# chaos_run NAME SCHEDULE_FILE: one complete run; its snapshot lands in $CHAOS_OUT/NAME/.
chaos_run() {
	local name=$1 schedule=$2 dest=$CHAOS_OUT/$1 t_start=$SECONDS f
	rm -rf "$dest"
	mkdir -p "$dest"
	if ! chaos_run_start "$name"; then
		chaos_run_stop
		printf 'the pipeline did not start\n' >"$dest/unsettled"
		return 1
	fi
	cp "$schedule" "$CHAOS_RUN_DIR/schedule"
	CHAOS_T0_MS=$(chaos_now_ms)
	chaos_log "workload: seed $CHAOS_SEED, ${CHAOS_WORKLOAD_S}s at the nominal rate"
	chaos_workload_start main
	chaos_schedule_run "$schedule"
	chaos_workload_wait main $((CHAOS_WORKLOAD_S * 2 + CHAOS_SETTLE_S)) ||
		printf 'main workload\n' >>"$CHAOS_RUN_DIR/sim-failed"
	# The flush round goes out only once every main reading has been processed: a reading a
	# day later that overtook one of them (from another iot.raw partition, say) would make it
	# late for its window.
	chaos_log "workload published; waiting for the pipeline to drain"
	chaos_settle "$CHAOS_SETTLE_S" 1
	chaos_log "drained; flush round"
	chaos_workload_start flush
	chaos_workload_wait flush "$CHAOS_SETTLE_S" || printf 'flush round\n' >>"$CHAOS_RUN_DIR/sim-failed"
	chaos_settle "$CHAOS_SETTLE_S" 2
	chaos_log "settled; snapshot"
	# For whoever investigates a failure: the derived topics with their positions.
	if [ -n "${CHAOS_DUMP_TOPICS:-}" ]; then
		for t in iot.clean iot.commands iot.events; do
			"$(harness_bin iot-cat)" -b "$E" -C -t "$t" -E -e >"$CHAOS_RUN_DIR/$t.jsonl" \
				2>>"$CHAOS_RUN_DIR/iot-cat.err"
		done
	fi
	"$(harness_bin iot-cat)" -b "$E" -C -t iot.raw -E -e >"$dest/iot.raw.jsonl" 2>"$CHAOS_RUN_DIR/iot-cat.err"
	"$(harness_bin iot-cat)" -b "$E" -C -t iot.late -e 2>>"$CHAOS_RUN_DIR/iot-cat.err" | wc -l >"$dest/late.count"
	# What an undisturbed cleaner makes of exactly what reached iot.raw (the ingestor's loss
	# taken as given).
	"$CHAOS_PY" -c 'import json, sys
for l in sys.stdin:
    if l.strip():
        print(json.dumps(json.loads(l)["value"]))' <"$dest/iot.raw.jsonl" |
		"$(harness_bin cleaner)" --in - --out - --rejected "$dest/offline.rejected.jsonl" \
			--max-age 100000d >"$dest/offline.clean.jsonl" 2>"$CHAOS_RUN_DIR/offline-cleaner.log"
	"${CHAOS_CHECK[@]}" snapshot "$CHAOS_RUN_DIR/chaos.conf" "$dest" ||
		printf 'snapshot failed\n' >>"$CHAOS_RUN_DIR/unsettled"
	chaos_run_stop
	for f in events.log schedule actuator.rules self-exits term-exits final-exits action-errors unsettled sim-failed; do
		[ -f "$CHAOS_RUN_DIR/$f" ] && cp "$CHAOS_RUN_DIR/$f" "$dest/"
	done
	cat "$CHAOS_RUN_DIR"/sim-*.json >"$dest/sim-summaries.jsonl" 2>/dev/null
	# Sanitizer reports anywhere in the services' logs.
	grep -l -E 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$CHAOS_RUN_DIR"/*.log \
		>"$dest/sanitizer" 2>/dev/null || rm -f "$dest/sanitizer"
	printf '%s\n' $((SECONDS - t_start)) >"$dest/seconds"
	printf '%s\n' "$CHAOS_RUN_DIR" >"$dest/logdir"
	return 0
}

# chaos_exit: the EXIT trap: services, both databases, then the harness's own cleanup.
chaos_exit() {
	local rc=$?
	trap '' INT TERM
	if [ -n "$CHAOS_RUN_DIR" ] && [ "$HARNESS_DIR" != "$CHAOS_TOP" ]; then
		chaos_run_stop >/dev/null 2>&1
	fi
	[ -n "$CHAOS_TOP" ] && HARNESS_DIR=$CHAOS_TOP
	chaos_pg_stop edge
	chaos_pg_stop central
	HARNESS_PG_DATA=
	(exit $rc)
	harness_cleanup
}
