#!/usr/bin/env bash
# raw-saver end to end: migrations are idempotent and create partitions ahead; N raw messages
# with hostile payloads (quotes, backslashes, tabs, newlines, NUL, invalid UTF-8, SQL and COPY
# metacharacters) go from iot.raw into raw_messages as exactly N rows with byte-identical
# payloads; a relayed record is identified by its iotpipe-origin header; records the database
# refuses go to the dead-letter topic as Rejected records and the rest is written; reading
# everything again adds no row; stdin mode works; SIGTERM exits 0 (LeakSanitizer-clean).
source "$(dirname "$0")/../lib/harness.sh"
harness_init raw_saver
require psql pg_dump python3 curl kcat

N=${RAW_SAVER_TEST_N:-20000}
SAVER=$(harness_bin raw-saver) || exit 1
CAT=$(harness_bin iot-cat) || exit 1
GEN="$HARNESS_ROOT/tests/integration/test_raw_saver_gen.py"
MIG="$HARNESS_ROOT/schemas/postgres"
D=$HARNESS_DIR
KCAT_P=(-X message.timeout.ms=10000 -m 10)

start_pg || exit 1
psql -XqAc 'create database iot' || exit 1
DB="dbname=iot"
sql() { psql -XqAt -d iot -v ON_ERROR_STOP=1 -c "$1"; }
start_kafka_mock --topic iot.raw:16 --topic iot.deadletter:2 || exit 1

# --- migrations ---------------------------------------------------------------------------
check "--migrate creates the tables" "$SAVER" --db "$DB" --migrations "$MIG" --migrate
pg_dump -s -d iot | grep -Ev '^(-- Dumped|\\(un)?restrict )' >"$D/schema1.sql"
check "--migrate again exits 0" "$SAVER" --db "$DB" --migrations "$MIG" --migrate
pg_dump -s -d iot | grep -Ev '^(-- Dumped|\\(un)?restrict )' >"$D/schema2.sql"
check "a second --migrate leaves the schema unchanged" cmp "$D/schema1.sql" "$D/schema2.sql"
nmig=$(find "$MIG" -maxdepth 1 -name '*.sql' | wc -l)
check "each of the $nmig migrations is recorded once" \
	test "$(sql 'select count(*), count(distinct version) from iotpipe_migrations')" = "$nmig|$nmig"
for t in raw_messages readings rejected aggregates commands threshold_events forecasts; do
	check "$t: daily partitions from yesterday to 7 days ahead, and a default one" test \
		"$(sql "select (select count(*) from generate_series(current_date - 1, current_date + 7,
			interval '1 day') d where to_regclass('${t}_p' || to_char(d, 'YYYYMMDD')) is not null),
			(select count(*) from pg_inherits where inhparent = '$t'::regclass),
			to_regclass('${t}_default') is not null")" = "9|10|t"
done
check "a start without migrations reports a missing table" \
	bash -c "psql -XqAc 'create database empty' && ! '$SAVER' --db dbname=empty --migrations '' \
		--in - </dev/null 2>'$D/empty.err' && grep -q 'table raw_messages does not exist' '$D/empty.err'"

# --- data ---------------------------------------------------------------------------------
python3 "$GEN" --count "$N" --md5 "$D/want.md5" >"$D/raw.jsonl"
check "iot-cat produced $N raw messages" \
	"$CAT" -b "$BOOTSTRAP" -P -t iot.raw -T RawMessage -k topic <"$D/raw.jsonl"
# A relayed copy of one record: same bytes, origin in the header, delivered twice.
timeout 30 kcat -C -b "$BOOTSTRAP" -t iot.raw -p 0 -o 0 -c 1 -e -q -f '%s' >"$D/one.avro"
check "one record's value read back with kcat" test -s "$D/one.avro"
for i in 1 2; do
	check "relayed copy $i produced with an iotpipe-origin header" timeout 30 kcat -P \
		-b "$BOOTSTRAP" -t iot.raw -p 5 "${KCAT_P[@]}" -H "iotpipe-origin=edge1/iot.raw/3/4242" \
		"$D/one.avro"
done
# Two records the database refuses (a CHECK constraint, a time out of range) and an empty
# payload, which is fine.
now=$(date +%s%3N)
cat >"$D/odd.jsonl" <<EOF
{"source":"north","topic":"bad/qos","payload":"qos-bad","qos":5,"retained":false,"received_at":$now}
{"source":"north","topic":"bad/time","payload":"ts-bad","qos":1,"retained":false,"received_at":9223372036854775807}
{"source":"north","topic":"empty","payload":"","qos":0,"retained":false,"received_at":$now}
EOF
check "iot-cat produced the odd records" \
	"$CAT" -b "$BOOTSTRAP" -P -t iot.raw -T RawMessage -k topic <"$D/odd.jsonl"
ROWS=$((N + 2)) # generated, the relayed copy (once), the empty payload
RECS=$((N + 3)) # records written: the relayed copy was delivered twice

# --- the saver ----------------------------------------------------------------------------
port=$(free_port)
murl="http://127.0.0.1:$port/metrics"
start_bg saver "$SAVER" -b "$BOOTSTRAP" --db "$DB" --migrations "$MIG" --metrics-port "$port" \
	--batch 2000 --batch-ms 200ms
rows_total() { [ "$(metric "$murl" 'iotpipe_db_rows_total{table="raw_messages"}')" = "$1" ]; }
wait_for "raw-saver committed $RECS records" 120 rows_total "$RECS"
check "raw_messages holds exactly $ROWS rows" test "$(sql 'select count(*) from raw_messages')" = "$ROWS"
sql "select md5(payload) from raw_messages where origin_cluster = 'local' and topic like 'factory/%'
	order by 1" >"$D/got.md5"
sort "$D/want.md5" >"$D/want.sorted"
check "the $N payloads are byte-identical (MD5 of every row)" cmp "$D/want.sorted" "$D/got.md5"
check "no payload is stored twice" test "$(sql "select count(distinct payload) from raw_messages
	where origin_cluster = 'local'")" = $((N + 1))
check "the relayed record is one row keyed by its header's origin" test "$(sql "select count(*),
	min(origin_topic), min(origin_partition), min(origin_offset) from raw_messages
	where origin_cluster = 'edge1'")" = "1|iot.raw|3|4242"
check "the relayed row's payload is the original's" test "$(sql "select count(*) from raw_messages a
	join raw_messages b on a.payload = b.payload where a.origin_cluster = 'edge1'
	and b.origin_cluster = 'local' and b.origin_partition = 0 and b.origin_offset = 0")" = 1
check "an empty payload is stored as an empty bytea" \
	test "$(sql "select length(payload) from raw_messages where topic = 'empty'")" = 0
check "local origins are this cluster's positions" test "$(sql "select count(*) from raw_messages
	where origin_cluster = 'local' and origin_topic = 'iot.raw' and origin_partition between 0 and 15
	and origin_offset >= 0")" = $((N + 1))
check "received_at is stored to the millisecond" test "$(sql "select count(*) from raw_messages
	where topic = 'empty' and (extract(epoch from received_at) * 1000)::bigint = $now")" = 1
check "rows are in today's partition" test "$(sql "select count(*) from raw_messages_p$(date -u +%Y%m%d)
	where origin_cluster = 'local' and topic like 'factory/%'")" = "$N"
"$CAT" -b "$BOOTSTRAP" -C -t iot.deadletter -e >"$D/dead.jsonl" 2>"$D/dead.err"
check "the 2 refused records are in the dead-letter topic" test "$(wc -l <"$D/dead.jsonl")" = 2
check "dead letters are Rejected records with the database's reason" python3 - "$D/dead.jsonl" <<'PY'
import json, sys
recs = {r["topic"]: r for r in map(json.loads, open(sys.argv[1]))}
q, t = recs["bad/qos"], recs["bad/time"]
assert q["stage"] == "raw-saver" and q["reason_code"] == "db_23514", q
assert "raw_messages_qos_check" in q["reason"] and q["payload"] == "qos-bad" and q["qos"] == 5, q
assert t["reason_code"] == "db_22008" and "timestamp out of range" in t["reason"], t
assert t["received_at"] == 9223372036854775807 and t["payload"] == "ts-bad", t
assert q["origin"]["cluster"] == "local" and q["origin"]["topic"] == "iot.raw", q
PY
check "the second relayed copy was counted as a duplicate" \
	test "$(metric "$murl" 'iotpipe_db_rows_duplicate_total{table="raw_messages"}')" = 1
check "dead letters are counted" test "$(metric "$murl" 'iotpipe_db_dead_letters_total{table="raw_messages"}')" = 2
check "/readyz answers 200" curl -fsS "http://127.0.0.1:$port/readyz"
check "batch size and latency are exported" test "$(metric "$murl" iotpipe_db_batch_rows_count)" -gt 0 -a \
	"$(metric "$murl" iotpipe_db_batch_seconds_count)" -gt 0
# Once batches meet no duplicate the saver writes with COPY; a record already written (the
# relayed copy, delivered a third time) makes that COPY fail, and the batch is written again
# with INSERT ... ON CONFLICT, with the new records in it.
check "the relayed copy delivered a third time" timeout 30 kcat -P -b "$BOOTSTRAP" -t iot.raw -p 5 \
	"${KCAT_P[@]}" -H "iotpipe-origin=edge1/iot.raw/3/4242" "$D/one.avro"
python3 "$GEN" --count 10 --first 2000000 --md5 "$D/more.md5" >"$D/more.jsonl"
check "and 10 new records" "$CAT" -b "$BOOTSTRAP" -P -t iot.raw -T RawMessage -k topic <"$D/more.jsonl"
wait_for "raw-saver committed them" 60 rows_total $((RECS + 11))
check "a COPY that met a written record fell back to INSERT" \
	test "$(metric "$murl" iotpipe_db_copy_fallbacks_total)" -ge 1
check "the new records were written, the copy skipped" \
	test "$(sql 'select count(*) from raw_messages')" = $((ROWS + 10))
check "two duplicates counted in all" \
	test "$(metric "$murl" 'iotpipe_db_rows_duplicate_total{table="raw_messages"}')" = 2
rc=0; stop_bg saver || rc=$?
check "raw-saver exits 0 on SIGTERM (LeakSanitizer-clean)" test "$rc" = 0

# --- everything again: a new consumer group reads from the start --------------------------
start_bg saver2 "$SAVER" -b "$BOOTSTRAP" --db "$DB" --migrations "$MIG" --metrics-port "$port" \
	--group raw-saver-again --batch 5000 --batch-ms 200ms
wait_for "the second run committed $((RECS + 11)) records again" 120 rows_total $((RECS + 11))
check "reading everything again adds no row" test "$(sql 'select count(*) from raw_messages')" = $((ROWS + 10))
check "the second run counted every record as a duplicate" \
	test "$(metric "$murl" 'iotpipe_db_rows_duplicate_total{table="raw_messages"}')" = $((RECS + 11))
rc=0; stop_bg saver2 || rc=$?
check "the second run exits 0" test "$rc" = 0

# --- stdin --------------------------------------------------------------------------------
python3 "$GEN" --count 50 --first 1000000 --md5 "$D/stdin.md5" >"$D/stdin.jsonl"
check "raw-saver --in - writes JSON lines and exits 0 at the end" \
	"$SAVER" --db "$DB" --migrations "$MIG" --in - --batch 7 <"$D/stdin.jsonl"
check "... again, idempotent" "$SAVER" --db "$DB" --migrations '' --in - <"$D/stdin.jsonl"
sql "select md5(payload) from raw_messages where origin_cluster = '-' order by 1" >"$D/stdin.got"
sort "$D/stdin.md5" >"$D/stdin.sorted"
check "stdin rows: 50, byte-identical, keyed by line number" bash -c "cmp '$D/stdin.sorted' '$D/stdin.got' &&
	test \"\$(psql -XqAt -d iot -c \"select min(origin_offset), max(origin_offset) from raw_messages
	where origin_cluster = '-'\")\" = '1|50'"

harness_finish
