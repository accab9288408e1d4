# shellcheck shell=bash
# Integration test harness: throwaway PostgreSQL, mosquitto and kafka-mock on free loopback
# ports, background processes that are always cleaned up, bounded waits, and TAP-like results.
#
#   source "$(dirname "$0")/../lib/harness.sh"
#   harness_init my_test
#   start_pg; start_mosquitto; start_kafka_mock --topic iot.raw:16
#   start_bg cleaner "$(harness_bin cleaner)" -b "$BOOTSTRAP" --in iot.raw --out iot.clean
#   wait_for "cleaner metrics" 20 curl -fsS "http://127.0.0.1:$port/metrics"
#   check "rows arrived" test "$(psql -tAc 'select count(*) from readings')" -gt 0
#   harness_finish
#
# Functions (each documented where it is defined):
#   setup     harness_init NAME, harness_bin NAME, require CMD..., harness_skip REASON,
#             free_port, port_open PORT
#   services  start_pg [--ssl CERT KEY] [--hba FILE] / stop_pg / restart_pg,
#             start_mosquitto [--persist] / restart_mosquitto,
#             start_kafka_mock [--name N] [FLAGS] / kafka_mock_ctl [--name N] "COMMAND"
#   processes start_bg [--stdin F] [--stdout F] NAME CMD... (sets BG_PID), stop_bg, kill_bg,
#             wait_bg, bg_alive, harness_log NAME
#   checks    check NAME CMD..., pass NAME, fail NAME, wait_for DESC SECS CMD...,
#             metric URL NAME[{labels}], harness_diag TEXT..., harness_finish
#   TLS       harness_pki DIR (a CA, server and client certificates made with openssl)
# Variables: HARNESS_DIR (the temp dir), HARNESS_ROOT (the repository), BOOTSTRAP[_NAME],
# KAFKA_MOCK_PID, PGHOST PGPORT PGUSER PGDATABASE PG_URL, MQTT_PORT MQTT_URL.
#
# Rules the functions keep:
# - Every process started here runs in its own process group (setsid) and is tracked; the
#   EXIT/INT/TERM trap stops them all (SIGTERM, then SIGKILL after HARNESS_STOP_S seconds),
#   stops PostgreSQL and removes the temp dir. A tracked process that exits with a status
#   other than 0 or 143 (killed by SIGTERM), or that ignores SIGTERM, is reported as a failure:
#   that is how a leak found by LeakSanitizer at shutdown fails the test.
# - Every wait is bounded. Commands passed to wait_for are bounded per attempt with timeout(1)
#   unless they are shell functions (which must bound themselves).
# - Functions that start things set variables; never call them inside $(...), where what they
#   start would belong to a subshell and escape cleanup (they refuse to run there).
#
# Exit status of a test: 0 pass, 77 skipped (harness_skip), anything else fail. A test that
# recorded a "not ok" never exits 0.

HARNESS_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
: "${HARNESS_STOP_S:=20}"

HARNESS_NAME=
HARNESS_DIR=
HARNESS_OK=0
HARNESS_NOT_OK=0
HARNESS_CLEANED=
HARNESS_PIDS=()
declare -A HARNESS_PID_NAME=()  # pid -> name
declare -A HARNESS_NAME_PID=()  # name -> latest pid
declare -A HARNESS_PORTS=()     # ports handed out by free_port
declare -A HARNESS_KM_FD=()     # kafka-mock name -> fd of its control FIFO
declare -A HARNESS_KM_OUT=()    # kafka-mock name -> file holding its stdout
declare -A HARNESS_KM_PID=()    # kafka-mock name -> pid
HARNESS_PG_DATA=
HARNESS_PG_PORT=
HARNESS_PG_SSL=() # server certificate and key given to start_pg --ssl
HARNESS_PG_HBA=   # pg_hba.conf given to start_pg --hba
HARNESS_MQ_CONF=
HARNESS_MQ_NAME=mosquitto

harness_diag() {
	local line
	for line in "$@"; do printf '# %s\n' "$line"; done
}

harness_die() {
	harness_diag "harness: $*" >&2
	exit 1
}

harness_no_subshell() {
	[ "${BASH_SUBSHELL:-0}" -eq 0 ] ||
		harness_die "$1 must not run in a subshell or \$(...): what it starts would escape cleanup"
}

# harness_init NAME: temp dir, traps, environment.
harness_init() {
	[ $# -eq 1 ] || harness_die "usage: harness_init NAME"
	harness_no_subshell harness_init
	HARNESS_NAME=$1
	set +m # background jobs must stay in the shell's group so setsid(1) never forks
	HARNESS_DIR=$(mktemp -d "${TMPDIR:-/tmp}/iotpipe-$HARNESS_NAME.XXXXXX") ||
		harness_die "cannot create a temp dir under ${TMPDIR:-/tmp}"
	# PostgreSQL runs as another user when the tests run as root; it must reach its dir.
	chmod 755 "$HARNESS_DIR"
	trap 'harness_cleanup' EXIT
	trap 'harness_diag "interrupted"; exit 130' INT
	trap 'harness_diag "terminated"; exit 143' TERM
	: "${IOTPIPE_BIN:=build/asan/bin}"
	export IOTPIPE_BIN
	harness_diag "$HARNESS_NAME: temp dir $HARNESS_DIR"
}

# harness_bin NAME: path of a built binary, from $IOTPIPE_BIN (default build/asan/bin), else bin/.
harness_bin() {
	local dir=${IOTPIPE_BIN:-build/asan/bin} cand
	[[ $dir == /* ]] || dir="$HARNESS_ROOT/$dir"
	for cand in "$dir/$1" "$HARNESS_ROOT/bin/$1"; do
		if [ -x "$cand" ]; then
			printf '%s\n' "$cand"
			return 0
		fi
	done
	harness_diag "harness: no binary '$1' in $dir or $HARNESS_ROOT/bin (run make asan)" >&2
	return 1
}

# --- results ---------------------------------------------------------------------------------

pass() {
	HARNESS_OK=$((HARNESS_OK + 1))
	printf 'ok - %s\n' "$*"
}

fail() {
	HARNESS_NOT_OK=$((HARNESS_NOT_OK + 1))
	printf 'not ok - %s\n' "$*"
}

# check NAME CMD...: runs CMD; ok when it exits 0. Its output is shown only when it fails.
check() {
	local name=$1 out rc
	shift
	out="$HARNESS_DIR/.check.out"
	rc=0
	"$@" >"$out" 2>&1 || rc=$?
	if [ $rc -eq 0 ]; then
		pass "$name"
	else
		fail "$name"
		harness_diag "command: $* (exit $rc)"
		tail -n 20 "$out" | sed 's/^/#   /'
	fi
	return $rc
}

# harness_skip REASON: the test cannot run here (exit 77).
harness_skip() {
	printf '# SKIP %s\n' "$*"
	exit 77
}

# require CMD...: skip unless every command exists.
require() {
	local c
	for c in "$@"; do
		command -v "$c" >/dev/null 2>&1 || harness_skip "'$c' is not installed (make deps)"
	done
}

# harness_finish: prints the tally; exits 0 only when nothing failed.
harness_finish() {
	harness_diag "$HARNESS_NAME: $HARNESS_OK ok, $HARNESS_NOT_OK not ok"
	[ "$HARNESS_NOT_OK" -eq 0 ] && exit 0
	exit 1
}

# --- waiting -------------------------------------------------------------------------------

# wait_for DESC TIMEOUT_S CMD...: polls CMD every 0.2 s until it succeeds. On timeout records
# "not ok - DESC" and returns 1.
wait_for() {
	local desc=$1 secs=$2 deadline left
	shift 2
	[[ $secs =~ ^[0-9]+$ ]] || harness_die "wait_for: timeout '$secs' is not whole seconds"
	deadline=$((SECONDS + secs))
	while :; do
		if declare -F "$1" >/dev/null; then
			"$@" >/dev/null 2>&1 && return 0
		else
			left=$((deadline - SECONDS))
			[ $left -lt 1 ] && left=1
			timeout -k 1 "$left" "$@" >/dev/null 2>&1 && return 0
		fi
		if [ $SECONDS -ge $deadline ]; then
			fail "$desc (timed out after ${secs}s)"
			return 1
		fi
		sleep 0.2
	done
}

# port_open PORT: something accepts TCP connections on 127.0.0.1:PORT.
port_open() {
	timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null
}

# free_port: prints a loopback port nothing listens on, below the kernel's ephemeral range (so
# outgoing connections and kafka-mock's own listeners never take it), not handed out before.
free_port() {
	local lo=32768 p i
	if read -r lo _ </proc/sys/net/ipv4/ip_local_port_range 2>/dev/null; then :; fi
	[ "$lo" -gt 12000 ] || lo=32768
	for ((i = 0; i < 200; i++)); do
		p=$((10000 + RANDOM % (lo - 10000)))
		[ -n "${HARNESS_PORTS[$p]:-}" ] && continue
		port_open "$p" && continue
		HARNESS_PORTS[$p]=1
		printf '%s\n' "$p"
		return 0
	done
	harness_diag "harness: no free port found" >&2
	return 1
}

# --- background processes ------------------------------------------------------------------

# start_bg [--stdin FILE] [--stdout FILE] NAME CMD...: starts CMD in its own process group with
# stdout and stderr appended to $HARNESS_DIR/NAME.log (stdout elsewhere with --stdout) and
# stdin from /dev/null (or FILE). Sets BG_PID. A NAME used again refers to the newest process.
start_bg() {
	harness_no_subshell start_bg
	local in=/dev/null out='' name log fd
	while [ $# -gt 0 ]; do
		case $1 in
		--stdin) in=$2; shift 2 ;;
		--stdout) out=$2; shift 2 ;;
		*) break ;;
		esac
	done
	[ $# -ge 2 ] || harness_die "usage: start_bg [--stdin FILE] [--stdout FILE] NAME CMD..."
	name=$1
	shift
	log="$HARNESS_DIR/$name.log"
	[ -n "$out" ] || out=$log
	printf '=== %s started %s: %s\n' "$name" "$(date -u +%H:%M:%S)" "$*" >>"$log"
	(
		# Control FIFOs of earlier kafka-mocks must not leak into later processes.
		for fd in "${HARNESS_KM_FD[@]}"; do eval "exec $fd>&-"; done
		exec setsid "$@" <"$in" >>"$out" 2>>"$log"
	) &
	BG_PID=$!
	HARNESS_PIDS+=("$BG_PID")
	HARNESS_PID_NAME[$BG_PID]=$name
	HARNESS_NAME_PID[$name]=$BG_PID
	return 0
}

harness_pid_of() {
	if [[ $1 =~ ^[0-9]+$ ]]; then
		printf '%s\n' "$1"
	elif [ -n "${HARNESS_NAME_PID[$1]:-}" ]; then
		printf '%s\n' "${HARNESS_NAME_PID[$1]}"
	else
		harness_diag "harness: no process named '$1'" >&2
		return 1
	fi
}

harness_untrack() {
	local pid=$1 i
	for i in "${!HARNESS_PIDS[@]}"; do
		[ "${HARNESS_PIDS[$i]}" = "$pid" ] && unset 'HARNESS_PIDS[i]'
	done
	HARNESS_PIDS=("${HARNESS_PIDS[@]}")
	unset 'HARNESS_PID_NAME[$pid]'
}

# bg_alive NAME|PID
bg_alive() {
	local pid
	pid=$(harness_pid_of "$1") || return 1
	kill -0 "$pid" 2>/dev/null
}

# harness_log NAME: path of a background process's log.
harness_log() {
	printf '%s\n' "$HARNESS_DIR/$1.log"
}

# stop_bg NAME|PID [TIMEOUT_S]: SIGTERM to its group, SIGKILL after the timeout (default
# HARNESS_STOP_S). Returns the exit status (137 when it had to be killed).
stop_bg() {
	local pid deadline rc
	pid=$(harness_pid_of "$1") || return 1
	deadline=$((SECONDS + ${2:-$HARNESS_STOP_S}))
	kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
	while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.1; done
	if kill -0 "$pid" 2>/dev/null; then
		harness_diag "${HARNESS_PID_NAME[$pid]:-$pid} ignored SIGTERM for ${2:-$HARNESS_STOP_S}s: SIGKILL"
		kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
	fi
	rc=0
	wait "$pid" 2>/dev/null || rc=$?
	kill -KILL -- "-$pid" 2>/dev/null || true # anything it left behind in its group
	harness_untrack "$pid"
	return $rc
}

# kill_bg NAME|PID [SIGNAL]: sends SIGNAL (default KILL) to the group and reaps the process, for
# crash tests. Returns the exit status.
kill_bg() {
	local pid rc
	pid=$(harness_pid_of "$1") || return 1
	kill -"${2:-KILL}" -- "-$pid" 2>/dev/null || kill -"${2:-KILL}" "$pid" 2>/dev/null || true
	rc=0
	timeout_wait "$pid" "$HARNESS_STOP_S" || rc=$?
	harness_untrack "$pid"
	return $rc
}

# wait_bg NAME|PID TIMEOUT_S: waits for a process to end on its own; returns its exit status,
# or 124 (and leaves it running) on timeout.
wait_bg() {
	local pid rc
	pid=$(harness_pid_of "$1") || return 1
	rc=0
	timeout_wait "$pid" "$2" || rc=$?
	[ $rc -eq 124 ] || harness_untrack "$pid"
	return $rc
}

timeout_wait() {
	local pid=$1 deadline=$((SECONDS + $2))
	while kill -0 "$pid" 2>/dev/null; do
		[ $SECONDS -ge $deadline ] && return 124
		sleep 0.1
	done
	wait "$pid" 2>/dev/null
}

# --- certificates ----------------------------------------------------------------------------

# harness_pki DIR: makes, for TLS tests, in DIR: ca.crt/ca.key (the CA the servers' clients
# trust), other-ca.crt (a CA nobody trusts), server.crt/server.key (signed by ca.crt, naming
# only DNS:localhost, so a client connecting to 127.0.0.1 must fail the name check) and
# client.crt/client.key (signed by ca.crt, for client authentication). Runs in a subshell, so
# it can be used with check.
harness_pki() (
	mkdir -p "$1" && cd "$1" || exit 1
	exec 2>pki.log
	openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=iotpipe test CA" \
		-keyout ca.key -out ca.crt &&
		openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj "/CN=unknown CA" \
			-keyout other-ca.key -out other-ca.crt &&
		openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" -keyout server.key \
			-out server.csr &&
		printf 'subjectAltName=DNS:localhost\nextendedKeyUsage=serverAuth\n' >server.ext &&
		openssl x509 -req -in server.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
			-extfile server.ext -out server.crt &&
		openssl req -newkey rsa:2048 -nodes -subj "/CN=iotpipe client" -keyout client.key \
			-out client.csr &&
		printf 'extendedKeyUsage=clientAuth\n' >client.ext &&
		openssl x509 -req -in client.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
			-extfile client.ext -out client.crt
)

# --- PostgreSQL ------------------------------------------------------------------------------

harness_pg_bin() {
	local d
	if [ -n "${PG_BIN:-}" ]; then
		printf '%s\n' "$PG_BIN"
		return 0
	fi
	for d in /usr/lib/postgresql/15/bin /usr/lib/postgresql/*/bin; do
		if [ -x "$d/initdb" ]; then
			printf '%s\n' "$d"
			return 0
		fi
	done
	harness_diag "harness: no PostgreSQL server binaries (initdb) found" >&2
	return 1
}

# Runs a PostgreSQL server command as the postgres user when we are root (initdb refuses root).
harness_pg_run() {
	if [ "$(id -u)" -eq 0 ]; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

# start_pg [--ssl CERT KEY] [--hba FILE]: initdb (first time) and start a server on a free port
# with its socket in the temp dir. Exports PGHOST (the socket dir), PGPORT, PGUSER, PGDATABASE
# and PG_URL (TCP form). --ssl turns TLS on with that certificate and key; --hba replaces
# pg_hba.conf (keep a "local all all trust" line: the harness connects through the socket).
# Both are remembered for later starts (restart_pg).
start_pg() {
	harness_no_subshell start_pg
	local bin dir="$HARNESS_DIR/pg" log ssl_opts='' f
	while [ $# -gt 0 ]; do
		case $1 in
		--ssl) HARNESS_PG_SSL=("$2" "$3"); shift 3 ;;
		--hba) HARNESS_PG_HBA=$2; shift 2 ;;
		*) harness_die "usage: start_pg [--ssl CERT KEY] [--hba FILE]" ;;
		esac
	done
	bin=$(harness_pg_bin) || return 1
	log="$HARNESS_DIR/postgres.log"
	if [ -z "$HARNESS_PG_DATA" ]; then
		mkdir -p "$dir"
		[ "$(id -u)" -eq 0 ] && chown postgres: "$dir"
		HARNESS_PG_PORT=$(free_port) || return 1
		if ! harness_pg_run timeout 120 "$bin/initdb" -D "$dir/data" -U postgres -A trust \
			-E UTF8 --locale=C --no-sync >"$HARNESS_DIR/initdb.txt" 2>&1; then
			harness_diag "initdb failed:" >&2
			sed 's/^/#   /' "$HARNESS_DIR/initdb.txt" >&2
			return 1
		fi
		HARNESS_PG_DATA="$dir/data"
	fi
	# The server reads these as its own user, and refuses a key others can read.
	if [ ${#HARNESS_PG_SSL[@]} -eq 2 ]; then
		cp "${HARNESS_PG_SSL[0]}" "$HARNESS_PG_DATA/server.crt" &&
			cp "${HARNESS_PG_SSL[1]}" "$HARNESS_PG_DATA/server.key" &&
			chmod 600 "$HARNESS_PG_DATA/server.key" || return 1
		ssl_opts="-c ssl=on -c ssl_cert_file=server.crt -c ssl_key_file=server.key"
	fi
	if [ -n "$HARNESS_PG_HBA" ]; then
		cp "$HARNESS_PG_HBA" "$HARNESS_PG_DATA/pg_hba.conf" || return 1
	fi
	if [ "$(id -u)" -eq 0 ]; then
		for f in server.crt server.key pg_hba.conf; do
			[ -f "$HARNESS_PG_DATA/$f" ] && chown postgres: "$HARNESS_PG_DATA/$f"
		done
	fi
	# pg_ctl's log must be writable by the server's user.
	[ "$(id -u)" -eq 0 ] && touch "$log" && chown postgres: "$log"
	if ! harness_pg_run timeout 60 "$bin/pg_ctl" -D "$HARNESS_PG_DATA" -l "$log" -w -t 30 \
		-o "-p $HARNESS_PG_PORT -k $dir -c listen_addresses=127.0.0.1 -c fsync=off \
-c synchronous_commit=off -c full_page_writes=off -c max_connections=100 $ssl_opts" start >/dev/null; then
		harness_diag "PostgreSQL did not start:" >&2
		tail -n 20 "$log" | sed 's/^/#   /' >&2
		return 1
	fi
	export PGHOST=$dir PGPORT=$HARNESS_PG_PORT PGUSER=postgres PGDATABASE=postgres
	export PG_URL="postgresql://postgres@127.0.0.1:$HARNESS_PG_PORT/postgres"
	wait_for "PostgreSQL accepts connections" 30 psql -XqAtc 'select 1'
}

# stop_pg: fast shutdown (immediate after 20 s, then SIGKILL). Data is kept for start_pg.
stop_pg() {
	local bin pid
	[ -n "$HARNESS_PG_DATA" ] && [ -f "$HARNESS_PG_DATA/postmaster.pid" ] || return 0
	bin=$(harness_pg_bin) || return 1
	harness_pg_run timeout 30 "$bin/pg_ctl" -D "$HARNESS_PG_DATA" -m fast -w -t 20 stop \
		>/dev/null 2>&1 && return 0
	harness_pg_run timeout 20 "$bin/pg_ctl" -D "$HARNESS_PG_DATA" -m immediate -w -t 10 stop \
		>/dev/null 2>&1 && return 0
	pid=$(head -n 1 "$HARNESS_PG_DATA/postmaster.pid" 2>/dev/null)
	[[ $pid =~ ^[0-9]+$ ]] && kill -KILL "$pid" 2>/dev/null
	harness_diag "PostgreSQL needed SIGKILL"
	return 1
}

restart_pg() {
	stop_pg && start_pg
}

# --- mosquitto -------------------------------------------------------------------------------

# start_mosquitto [--persist]: a broker on a free loopback port. Exports MQTT_PORT and MQTT_URL.
start_mosquitto() {
	harness_no_subshell start_mosquitto
	local persist=false port conf="$HARNESS_DIR/mosquitto.conf"
	[ "${1:-}" = --persist ] && persist=true
	port=$(free_port) || return 1
	{
		printf 'listener %s 127.0.0.1\n' "$port"
		printf 'allow_anonymous true\n'
		# As root mosquitto would switch to its own user, which cannot write here.
		printf 'user %s\n' "$(id -un)"
		printf 'persistence %s\n' "$persist"
		printf 'persistence_location %s/\n' "$HARNESS_DIR"
		printf 'persistence_file mosquitto.db\n'
		printf 'autosave_interval 1\n'
		# mosquitto's defaults drop QoS 1 messages once 1000 wait for a subscriber and allow
		# only 20 in flight; a pipeline under load needs both raised (see README).
		printf 'max_queued_messages 1000000\n'
		printf 'max_inflight_messages 1000\n'
		printf 'log_dest stderr\n'
		printf 'log_type error\nlog_type warning\nlog_type notice\nlog_type information\n'
		printf 'log_timestamp_format %%Y-%%m-%%dT%%H:%%M:%%S\n'
	} >"$conf"
	HARNESS_MQ_CONF=$conf
	export MQTT_PORT=$port MQTT_URL="mqtt://127.0.0.1:$port"
	harness_mosquitto_run
}

harness_mosquitto_run() {
	start_bg "$HARNESS_MQ_NAME" mosquitto -c "$HARNESS_MQ_CONF"
	wait_for "mosquitto listening on $MQTT_PORT" 15 port_open "$MQTT_PORT"
}

# restart_mosquitto: graceful stop (persistence saved when enabled), then start on the same port.
restart_mosquitto() {
	[ -n "$HARNESS_MQ_CONF" ] || harness_die "restart_mosquitto before start_mosquitto"
	stop_bg "$HARNESS_MQ_NAME" || harness_diag "mosquitto exited with status $? on SIGTERM"
	harness_mosquitto_run
}

# --- kafka-mock ------------------------------------------------------------------------------

# start_kafka_mock [--name NAME] [kafka-mock flags...]: starts kafka-mock (e.g. --broker-count 3
# --topic iot.raw:16), waits for its bootstrap line and exports BOOTSTRAP. Commands go through
# a FIFO held open by this shell; answers are read from its stdout file by kafka_mock_ctl.
# With --name, BOOTSTRAP is also exported as BOOTSTRAP_<NAME> (for edge/central pairs).
start_kafka_mock() {
	harness_no_subshell start_kafka_mock
	local name=kafka-mock bin fifo out fd deadline line var
	if [ "${1:-}" = --name ]; then
		name=$2
		shift 2
	fi
	[ -z "${HARNESS_KM_FD[$name]:-}" ] || harness_die "kafka-mock '$name' already started"
	bin=$(harness_bin kafka-mock) || return 1
	fifo="$HARNESS_DIR/$name.ctl"
	out="$HARNESS_DIR/$name.out"
	mkfifo "$fifo" || return 1
	: >"$out"
	# Read-write, so opening never blocks and kafka-mock never sees end of input.
	exec {fd}<>"$fifo"
	HARNESS_KM_FD[$name]=$fd
	HARNESS_KM_OUT[$name]=$out
	# IOTPIPE_TOPIC may be set for the services under test; it means
	# something else there.
	start_bg --stdin "$fifo" --stdout "$out" "$name" \
		env -u IOTPIPE_TOPIC "$bin" "$@"
	HARNESS_KM_PID[$name]=$BG_PID
	deadline=$((SECONDS + 30))
	line=
	while [ $SECONDS -lt $deadline ]; do
		if [ "$(wc -l <"$out")" -ge 1 ]; then
			IFS= read -r line <"$out"
			break
		fi
		kill -0 "$BG_PID" 2>/dev/null || break
		sleep 0.05
	done
	if [[ ! $line =~ ^[0-9a-zA-Z.:,_-]+:[0-9]+ ]]; then
		fail "kafka-mock '$name' printed its bootstrap list"
		tail -n 20 "$HARNESS_DIR/$name.log" | sed 's/^/#   /'
		return 1
	fi
	export KAFKA_MOCK_PID=$BG_PID
	export BOOTSTRAP=$line
	var="BOOTSTRAP_${name//[^a-zA-Z0-9]/_}"
	[ "$name" = kafka-mock ] || export "${var^^}=$line"
	return 0
}

# kafka_mock_ctl [--name NAME] "COMMAND": sends one control command and prints the answer.
# Returns 0 when the answer starts with "ok", 1 otherwise (or after 15 s without an answer).
kafka_mock_ctl() {
	local name=kafka-mock fd out before deadline n line
	if [ "${1:-}" = --name ]; then
		name=$2
		shift 2
	fi
	fd=${HARNESS_KM_FD[$name]:-}
	out=${HARNESS_KM_OUT[$name]:-}
	[ -n "$fd" ] || harness_die "kafka_mock_ctl: no kafka-mock named '$name'"
	before=$(wc -l <"$out")
	printf '%s\n' "$*" >&"$fd"
	# Commands wait for the mock cluster's thread, which can take up to about a second.
	deadline=$((SECONDS + 15))
	while :; do
		n=$(wc -l <"$out")
		if [ "$n" -gt "$before" ]; then
			line=$(sed -n "$((before + 1))p" "$out")
			printf '%s\n' "$line"
			[[ $line == ok* ]]
			return
		fi
		if ! kill -0 "${HARNESS_KM_PID[$name]}" 2>/dev/null; then
			printf 'error kafka-mock %s is not running\n' "$name"
			return 1
		fi
		if [ $SECONDS -ge $deadline ]; then
			printf 'error no answer from kafka-mock %s within 15s\n' "$name"
			return 1
		fi
		sleep 0.05
	done
}

# --- metrics ---------------------------------------------------------------------------------

# metric URL NAME[{label="v",...}]: prints a sample's value from a Prometheus text endpoint.
# Without labels, sums every series of NAME; with labels, sums the series that carry all of them
# (in any order). Returns 1 when the endpoint fails or nothing matches.
metric() {
	local url=$1 want=$2 body
	body=$(curl -fsS --max-time 5 "$url") || return 1
	awk -v want="$want" '
	function labels(s, out,    n, k, v, c, i, q) {
		# s is the text between { and }; fills out[k] = v; handles escaped quotes
		n = length(s); i = 1
		while (i <= n) {
			while (i <= n && substr(s, i, 1) ~ /[ ,]/) i++
			k = ""
			while (i <= n && (c = substr(s, i, 1)) != "=") { k = k c; i++ }
			i += 2; v = ""; q = 0
			while (i <= n) {
				c = substr(s, i, 1)
				if (q) { v = v c; q = 0 }
				else if (c == "\\") { v = v c; q = 1 }
				else if (c == "\"") break
				else v = v c
				i++
			}
			i++
			if (k != "") out[k] = v
		}
	}
	BEGIN {
		b = index(want, "{")
		if (b) { wname = substr(want, 1, b - 1); labels(substr(want, b + 1, length(want) - b - 1), wl) }
		else wname = want
		found = 0; sum = 0; first = ""
	}
	/^[ \t]*#/ || NF < 2 { next }
	{
		line = $0; sub(/^[ \t]+/, "", line)
		if (!match(line, /^[a-zA-Z_:][a-zA-Z0-9_:]*/)) next
		name = substr(line, 1, RLENGTH); rest = substr(line, RLENGTH + 1)
		if (name != wname) next
		delete got
		if (substr(rest, 1, 1) == "{") {
			# the closing brace is the first one outside a quoted label value
			n = length(rest); q = 0; esc = 0
			for (j = 2; j <= n; j++) {
				c = substr(rest, j, 1)
				if (esc) esc = 0
				else if (c == "\\") esc = 1
				else if (c == "\"") q = !q
				else if (c == "}" && !q) break
			}
			labels(substr(rest, 2, j - 2), got)
			rest = substr(rest, j + 1)
		}
		split(rest, f, /[ \t]+/); val = (f[1] != "") ? f[1] : f[2]
		for (k in wl) if (!(k in got) || got[k] != wl[k]) next
		found++; sum += val; if (found == 1) first = val
	}
	END {
		if (!found) exit 1
		if (found == 1) print first; else printf "%.15g\n", sum
	}' <<<"$body"
}

# --- cleanup ---------------------------------------------------------------------------------

harness_cleanup() {
	local rc=$? pid deadline name status fd f before=$HARNESS_NOT_OK
	[ -n "$HARNESS_CLEANED" ] && return
	HARNESS_CLEANED=1
	set +e
	# A second signal must not cut the cleanup short and leave processes behind.
	trap '' INT TERM
	# Stop everything at once, so their shutdowns overlap.
	for pid in "${HARNESS_PIDS[@]}"; do
		kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null
	done
	deadline=$((SECONDS + HARNESS_STOP_S))
	for pid in "${HARNESS_PIDS[@]}"; do
		while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.1; done
	done
	for pid in "${HARNESS_PIDS[@]}"; do
		name=${HARNESS_PID_NAME[$pid]:-$pid}
		if kill -0 "$pid" 2>/dev/null; then
			kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null
			fail "$name stopped within ${HARNESS_STOP_S}s of SIGTERM"
		fi
		wait "$pid" 2>/dev/null
		status=$?
		kill -KILL -- "-$pid" 2>/dev/null
		case $status in
		0 | 143 | 137) ;;
		*)
			fail "$name exited cleanly (status $status)"
			tail -n 30 "$HARNESS_DIR/$name.log" 2>/dev/null | sed 's/^/#   /'
			;;
		esac
	done
	HARNESS_PIDS=()
	stop_pg
	for fd in "${HARNESS_KM_FD[@]}"; do eval "exec $fd>&-"; done
	HARNESS_KM_FD=()
	[ "$HARNESS_NOT_OK" -gt "$before" ] &&
		harness_diag "$HARNESS_NAME: cleanup found $((HARNESS_NOT_OK - before)) more not ok"
	[ $rc -eq 0 ] && [ "$HARNESS_NOT_OK" -gt 0 ] && rc=1
	if [ $rc -ne 0 ] && [ $rc -ne 77 ] && [ -d "$HARNESS_DIR" ]; then
		for f in "$HARNESS_DIR"/*.log; do
			[ -f "$f" ] || continue
			harness_diag "--- last lines of $(basename "$f")"
			tail -n 40 "$f" | sed 's/^/#   /'
		done
	fi
	if [ -n "${HARNESS_KEEP:-}" ]; then
		harness_diag "kept $HARNESS_DIR"
	elif [ -n "$HARNESS_DIR" ]; then
		rm -rf "$HARNESS_DIR"
	fi
	exit $rc
}
