#!/usr/bin/env bash
# raw-saver and PostgreSQL over verified TLS: a throwaway server with a certificate from a CA made
# here, pg_hba.conf accepting only TLS connections with a SCRAM password over TCP, and
# sslmode=verify-full on the client side.
#  - --migrate and the stdin and Kafka modes write through verify-full, with the password from a
#    passfile, from PGPASSWORD, or inside the URL given as $IOTPIPE_DB; the server reports the
#    saver's session as TLS (pg_stat_ssl);
#  - an unknown CA, a host name the certificate does not name, a connection without TLS and a
#    wrong password are all refused: nothing is written, the reason is logged, and the saver keeps
#    retrying (not ready) as it does while the database is unreachable;
#  - the password appears nowhere: not in the logs, /metrics or /proc/<pid>/cmdline.
source "$(dirname "$0")/../lib/harness.sh"
harness_init security_pg
require psql openssl curl
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$HARNESS_ROOT/tests/lsan.supp}

SAVER=$(harness_bin raw-saver) || exit 1
CAT=$(harness_bin iot-cat) || exit 1
MIG="$HARNESS_ROOT/schemas/postgres"
D=$HARNESS_DIR
P=$D/pki
PW=pgPW-3e9d0c71a8
N=${SECURITY_PG_N:-500}

check "openssl made a CA and a server certificate for localhost only" harness_pki "$P"
# Over TCP only TLS with a password; the socket stays open to the harness for administration.
cat >"$D/pg_hba.conf" <<'EOF'
local     all all               trust
hostssl   all all 127.0.0.1/32  scram-sha-256
hostssl   all all ::1/128       scram-sha-256
EOF
start_pg --ssl "$P/server.crt" "$P/server.key" --hba "$D/pg_hba.conf" || exit 1
psql -XqAc "create role iot login password '$PW'" && psql -XqAc 'create database iot owner iot' ||
	exit 1
sql() { psql -XqAt -d iot -c "$1"; }
CA=$P/ca.crt
DB="host=localhost port=$PGPORT dbname=iot user=iot sslmode=verify-full sslrootcert=$CA"
printf 'localhost:%s:iot:iot:%s\n' "$PGPORT" "$PW" >"$D/pgpass"
chmod 600 "$D/pgpass"

migrate() { PGPASSFILE="$D/pgpass" "$SAVER" --db "$DB" --migrations "$MIG" --migrate \
	2>"$D/migrate.err"; }
check "--migrate through sslmode=verify-full (password from PGPASSFILE)" migrate
check "... over TLS, as the saver logs" \
	grep -q "connected to PostgreSQL localhost:$PGPORT database iot as iot (TLS)" "$D/migrate.err"

now=$(date +%s%3N)
raw_lines() { # raw_lines N TAG: N RawMessage JSON lines
	local i
	for ((i = 0; i < $1; i++)); do
		printf '{"source":"%s","topic":"home1/r%d/temperature","payload":"%d.5","qos":1,"retained":false,"received_at":%s}\n' \
			"$2" $((i % 7)) "$i" "$now"
	done
}
raw_lines "$N" stdin >"$D/stdin.jsonl"
from_stdin() { PGPASSWORD="$PW" "$SAVER" --in - --db "$DB" --migrations '' \
	<"$D/stdin.jsonl" 2>"$D/stdin.err"; }
check "stdin mode writes $N rows through verify-full (password from PGPASSWORD)" from_stdin
check "... all $N of them" test "$(sql "select count(*) from raw_messages where source = 'stdin'")" = "$N"

# Kafka mode, the password inside the URL in $IOTPIPE_DB (as the Helm chart passes a Secret).
start_kafka_mock --topic iot.raw:2 || exit 1
raw_lines "$N" kafka >"$D/kafka.jsonl"
check "$N raw messages produced to iot.raw" \
	"$CAT" -b "$BOOTSTRAP" -P -t iot.raw -T RawMessage -k topic <"$D/kafka.jsonl"
port=$(free_port)
export IOTPIPE_DB="postgresql://iot:$PW@localhost:$PGPORT/iot?sslmode=verify-full&sslrootcert=$CA"
start_bg saver "$SAVER" -b "$BOOTSTRAP" --metrics-port "$port" --migrations '' --batch-ms 200ms
unset IOTPIPE_DB
SAVER_PID=$BG_PID
kafka_rows() { [ "$(sql "select count(*) from raw_messages where source = 'kafka'")" = "$N" ]; }
wait_for "the Kafka-mode saver wrote $N rows" 60 kafka_rows
check "the server sees the saver's session as TLS (pg_stat_ssl)" test "$(psql -XqAt -c "
	select bool_and(s.ssl) and count(*) > 0 from pg_stat_ssl s
	join pg_stat_activity a using (pid) where a.application_name = 'raw-saver'")" = t
curl -fsS "http://127.0.0.1:$port/metrics" >"$D/metrics.txt"
tr '\0' ' ' <"/proc/$SAVER_PID/cmdline" >"$D/cmdline.txt"
check "/metrics was served" grep -q '^iotpipe_' "$D/metrics.txt"
check "the password is not in /metrics" sh -c "! grep -F -q '$PW' '$D/metrics.txt'"
check "the password is not in /proc/<pid>/cmdline" sh -c "! grep -F -q '$PW' '$D/cmdline.txt'"
rc=0
stop_bg saver || rc=$?
check "the saver exits 0 on SIGTERM (LSan-clean)" test "$rc" -eq 0

# ---- refusals: nothing is written, the reason is logged, the saver waits ---------------------
refused() { # refused NAME PATTERN PASSWORD CONNINFO: 4 s of retrying, logging the reason
	local name=$1 pattern=$2 pw=$3 db=$4 rc=0 before
	before=$(sql 'select count(*) from raw_messages')
	PGPASSWORD=$pw timeout -k 5 4 "$SAVER" --in - --db "$db" --migrations '' \
		<"$D/stdin.jsonl" >/dev/null 2>"$D/$name.err" || rc=$?
	[ $rc -eq 124 ] && grep -q "$pattern" "$D/$name.err" && grep -q 'retrying' "$D/$name.err" &&
		[ "$(sql 'select count(*) from raw_messages')" = "$before" ]
}
check "a server certificate from an unknown CA is refused" refused bad-ca \
	'certificate verify failed' "$PW" "${DB/sslrootcert=$CA/sslrootcert=$P/other-ca.crt}"
check "a server certificate for another host name is refused" refused bad-name \
	'server certificate for "localhost".* does not match host name "127.0.0.1"' "$PW" \
	"${DB/host=localhost/host=127.0.0.1}"
check "a connection without TLS is refused by the server" refused no-tls \
	'no pg_hba.conf entry for host "127.0.0.1", user "iot", database "iot", no encryption' \
	"$PW" "host=127.0.0.1 port=$PGPORT dbname=iot user=iot sslmode=disable"
check "a wrong password is refused" refused bad-pw \
	'password authentication failed for user "iot"' "wrong-$PW" "$DB"
check "the password appears in no log" sh -c "
	! grep -h -v '^=== ' '$D'/saver.log '$D'/*.err | grep -F -q '$PW'"
harness_finish
