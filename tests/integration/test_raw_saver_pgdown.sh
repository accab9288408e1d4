#!/usr/bin/env bash
# PostgreSQL stopped for 15 s in the middle of a run and started again: raw-saver keeps running,
# reports not ready, retries with backoff, stops reading (holding at most two batches), commits
# nothing, and when the database is back it writes everything, each record once, without
# being restarted.
source "$(dirname "$0")/../lib/harness.sh"
harness_init raw_saver_pgdown
require psql python3 curl

N=${RAW_SAVER_PGDOWN_N:-20000}
BATCH=1000
OUTAGE=15
SAVER=$(harness_bin raw-saver) || exit 1
CAT=$(harness_bin iot-cat) || exit 1
GEN="$HARNESS_ROOT/tests/integration/test_raw_saver_gen.py"
MIG="$HARNESS_ROOT/schemas/postgres"
D=$HARNESS_DIR

start_pg || exit 1
psql -XqAc 'create database iot' || exit 1
sql() { psql -XqAt -d iot -v ON_ERROR_STOP=1 -c "$1"; }
rows() { sql 'select count(*) from raw_messages'; }
start_kafka_mock --topic iot.raw:16 || exit 1
check "migrations" "$SAVER" --db dbname=iot --migrations "$MIG" --migrate

# Records keep arriving before, during and after the outage: 40 chunks over about 30 s (a chunk
# takes about 0.2 s; the pauses alone outlast the outage, however fast the machine).
CHUNK=$((N / 40))
cat >"$D/produce.sh" <<EOF
set -e
for ((first = 0; first < $N; first += $CHUNK)); do
	n=\$(( $N - first < $CHUNK ? $N - first : $CHUNK ))
	python3 "$GEN" --count "\$n" --first "\$first" --md5 "$D/want.md5" |
		"$CAT" -b "$BOOTSTRAP" -P -t iot.raw -T RawMessage -k topic 2>>"$D/cat.err"
	sleep 0.5
done
EOF

port=$(free_port)
murl="http://127.0.0.1:$port/metrics"
start_bg saver "$SAVER" -b "$BOOTSTRAP" --db dbname=iot --migrations "$MIG" \
	--metrics-port "$port" --batch "$BATCH" --batch-ms 200ms --retry-max 1s
SAVER_PID=$BG_PID
wait_for "raw-saver ready" 60 curl -fsS "http://127.0.0.1:$port/readyz"
start_bg producer bash "$D/produce.sh"
rows_above() { [ "$(rows)" -gt "$1" ]; }
wait_for "rows are being written" 60 rows_above $((N / 10))

m() { metric "$murl" "$1"; }
not_ready() { [ "$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$port/readyz")" = 503 ]; }
ready() { curl -fsS "http://127.0.0.1:$port/readyz" >/dev/null; }

stop_pg
t0=$SECONDS
harness_diag "PostgreSQL stopped with $(m 'iotpipe_db_rows_total{table="raw_messages"}') records committed"
wait_for "/readyz turns 503 while PostgreSQL is down" 10 not_ready
check "iotpipe_db_up is 0" test "$(m iotpipe_db_up)" = 0
sleep 6
in1=$(m iotpipe_records_in_total)
retries1=$(m iotpipe_db_retries_total)
committed=$(m 'iotpipe_db_rows_total{table="raw_messages"}')
sleep $((OUTAGE - (SECONDS - t0) - 1))
in2=$(m iotpipe_records_in_total)
pending=$(m iotpipe_db_pending_rows)
check "raw-saver is still running during the outage" bg_alive saver
check "it retries: retries went up from $retries1 to $(m iotpipe_db_retries_total)" \
	test "$(m iotpipe_db_retries_total)" -gt "$retries1"
check "it stopped reading: records in stayed at $in1 (now $in2) while the producer went on" \
	test "$in1" = "$in2"
check "it holds at most two batches ($pending pending)" test "$pending" -le $((2 * BATCH))
check "nothing was committed during the outage" \
	test "$(m 'iotpipe_db_rows_total{table="raw_messages"}')" = "$committed"
check "the producer kept producing into Kafka" bg_alive producer
check "/readyz is still 503" not_ready
harness_diag "outage: $((SECONDS - t0)) s; records in: $in2; pending: $pending"

start_pg
wait_for "/readyz is 200 again" 60 ready
check "iotpipe_db_up is 1 again" test "$(m iotpipe_db_up)" = 1
check "the producer finished" wait_bg producer 120
rows_are() { [ "$(rows)" = "$1" ]; }
wait_for "all $N records arrived" 120 rows_are "$N"
check "the same raw-saver process did it (pid $SAVER_PID)" \
	test "$(harness_pid_of saver)" = "$SAVER_PID" -a -d "/proc/$SAVER_PID"
check "exactly $N rows" test "$(rows)" = "$N"
check "no payload twice" test "$(sql 'select count(distinct payload) from raw_messages')" = "$N"
sql 'select md5(payload) from raw_messages order by 1' >"$D/got.md5"
sort "$D/want.md5" >"$D/want.sorted"
check "payloads byte-identical to what was produced" cmp "$D/want.sorted" "$D/got.md5"
check "the log says it resumed" grep -q 'PostgreSQL is writable again' "$(harness_log saver)"
rc=0; stop_bg saver || rc=$?
check "raw-saver exits 0 on SIGTERM" test "$rc" = 0

harness_finish
