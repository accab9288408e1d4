#!/usr/bin/env bash
# raw-saver killed with SIGKILL five times while it writes: every raw message ends up in
# raw_messages exactly once, byte-identical. Offsets are committed only after PostgreSQL's
# COMMIT, so each restart reads again what the killed run may already have written, and the
# primary key (the record's origin) makes that a no-op.
source "$(dirname "$0")/../lib/harness.sh"
harness_init raw_saver_kill
require psql python3 curl

N=${RAW_SAVER_KILL_N:-30000}
KILLS=5
SAVER=$(harness_bin raw-saver) || exit 1
CAT=$(harness_bin iot-cat) || exit 1
GEN="$HARNESS_ROOT/tests/integration/test_raw_saver_gen.py"
MIG="$HARNESS_ROOT/schemas/postgres"
D=$HARNESS_DIR

start_pg || exit 1
psql -XqAc 'create database iot' || exit 1
sql() { psql -XqAt -d iot -v ON_ERROR_STOP=1 -c "$1"; }
start_kafka_mock --topic iot.raw:16 || exit 1
check "migrations" "$SAVER" --db dbname=iot --migrations "$MIG" --migrate

# A killed member stays in the group until its session times out: keep that short.
GROUP_X=(-X session.timeout.ms=6000 -X heartbeat.interval.ms=500)
port=$(free_port)
murl="http://127.0.0.1:$port/metrics"
rows() { sql 'select count(*) from raw_messages'; }
rows_above() { [ "$(rows)" -gt "$1" ]; }

# Each life of the saver is killed while it writes a fresh chunk: right after its first commit
# of that chunk, with the next batches being read, encoded or written.
CHUNK=$((N / (KILLS + 1)))
produced=0
midrun=0
for life in $(seq 1 $((KILLS + 1))); do
	start_bg "saver$life" "$SAVER" -b "$BOOTSTRAP" --db dbname=iot --migrations "$MIG" \
		--metrics-port "$port" --batch 100 --batch-ms 100ms "${GROUP_X[@]}"
	wait_for "life $life is ready" 60 curl -fsS "http://127.0.0.1:$port/readyz" || break
	before=$(rows)
	count=$CHUNK
	[ "$life" -gt "$KILLS" ] && count=$((N - produced))
	python3 "$GEN" --count "$count" --first "$produced" --md5 "$D/want.md5" >"$D/chunk$life.jsonl"
	start_bg --stdin "$D/chunk$life.jsonl" "cat$life" "$CAT" -b "$BOOTSTRAP" -P -t iot.raw \
		-T RawMessage -k topic
	produced=$((produced + count))
	[ "$life" -gt "$KILLS" ] && break
	# Polled without a pause: the kill must come within a few batches of that commit.
	deadline=$((SECONDS + 60))
	until rows_above "$before" || [ $SECONDS -ge $deadline ]; do :; done
	kill_bg "saver$life" KILL
	at=$(rows)
	harness_diag "life $life: killed with SIGKILL after $at of $produced rows produced"
	[ "$at" -lt "$produced" ] && midrun=$((midrun + 1))
	check "chunk $life produced" wait_bg "cat$life" 60
done
# On a loaded machine a chunk can be saved before its kill lands; the test is only meaningful
# when most kills hit a saver that still had rows to write.
check "most of the $KILLS kills came before the saver had written what it could read ($midrun did)" \
	test "$midrun" -ge $(((KILLS + 1) / 2))

rows_are() { [ "$(rows)" = "$1" ]; }
wait_for "after $KILLS kills every record arrived" 120 rows_are "$N"
sql 'select md5(payload) from raw_messages order by 1' >"$D/got.md5"
sort "$D/want.md5" >"$D/want.sorted"
check "exactly $N rows" test "$(rows)" = "$N"
check "no payload twice" test "$(sql 'select count(distinct payload) from raw_messages')" = "$N"
check "payloads byte-identical to what was produced" cmp "$D/want.sorted" "$D/got.md5"
check "every origin is a distinct position of iot.raw" test "$(sql "select count(distinct
	(origin_partition, origin_offset)) from raw_messages where origin_topic = 'iot.raw'")" = "$N"
# Offsets are committed right after each batch's COMMIT, so a kill rarely falls between the two;
# when it does, the next life reads those records again and skips them.
dups=$(cat "$D"/saver*.log | sed -n 's/.*raw_messages: \([0-9]*\) records were already written.*/\1/p' |
	awk '{ s += $1 } END { print s + 0 }')
harness_diag "records read again after a kill and skipped as already written: $dups"
rc=0; stop_bg "saver$((KILLS + 1))" || rc=$?
check "the final run exits 0 on SIGTERM" test "$rc" = 0

harness_finish
