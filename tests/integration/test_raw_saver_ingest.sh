#!/usr/bin/env bash
# The whole bronze path: sensor-sim publishes N QoS 1 messages to mosquitto, mqtt-ingestor
# forwards them to iot.raw, raw-saver (running all along) stores them: exactly N rows whose
# (MQTT topic, payload) pairs are byte for byte what sensor-sim published.
# RAW_SAVER_INGEST_N=200000 runs the full-size version (allow T=600 in tests/run.sh).
source "$(dirname "$0")/../lib/harness.sh"
harness_init raw_saver_ingest
require psql python3 curl mosquitto

N=${RAW_SAVER_INGEST_N:-20000}
SAVER=$(harness_bin raw-saver) || exit 1
ING=$(harness_bin mqtt-ingestor) || exit 1
SIM=$(harness_bin sensor-sim) || exit 1
MIG="$HARNESS_ROOT/schemas/postgres"
D=$HARNESS_DIR

start_pg || exit 1
psql -XqAc 'create database iot' || exit 1
sql() { psql -XqAt -d iot -v ON_ERROR_STOP=1 -c "$1"; }
start_mosquitto || exit 1
start_kafka_mock --topic iot.raw:16 || exit 1
check "migrations" "$SAVER" --db dbname=iot --migrations "$MIG" --migrate

sport=$(free_port)
iport=$(free_port)
start_bg saver "$SAVER" -b "$BOOTSTRAP" --db dbname=iot --migrations "$MIG" --metrics-port "$sport"
start_bg ingestor "$ING" -b "$BOOTSTRAP" --mqtt "$MQTT_URL" -t 'sim/#' -t '#' --client-id ing-rs \
	--source north --metrics-port "$iport"
wait_for "ingestor ready" 30 curl -fsS "http://127.0.0.1:$iport/readyz"
wait_for "raw-saver ready" 30 curl -fsS "http://127.0.0.1:$sport/readyz"

# The same seed and flags give the same messages: --stdout is what was published.
sim_flags=(--seed 5 --format mixed --sites 3 --devices 5 --sensors 2 --start-ts 2024-03-01T00:00:00Z
	--step 1s --no-control)
check "sensor-sim published $N QoS 1 messages" \
	"$SIM" "${sim_flags[@]}" --mqtt "$MQTT_URL" --rate 0 --count "$N" --qos 1 --client-id sim-rs
"$SIM" "${sim_flags[@]}" --stdout --rate 0 --count "$N" >"$D/expected.jsonl"
rows_are() { [ "$(sql 'select count(*) from raw_messages')" = "$1" ]; }
wait_for "raw_messages holds $N rows" 180 rows_are "$N"
check "exactly $N rows" rows_are "$N"

# (topic, payload) pairs as MD5s, compared as multisets.
python3 - "$D/expected.jsonl" >"$D/want.md5" <<'PY'
import base64, hashlib, json, sys
for line in open(sys.argv[1]):
    r = json.loads(line)
    p = r["payload"]
    b = base64.b64decode(p["base64"]) if isinstance(p, dict) else p.encode()
    print(hashlib.md5(r["topic"].encode() + b"\0" + b).hexdigest())
PY
sort "$D/want.md5" >"$D/want.sorted"
sql "select md5(convert_to(topic, 'UTF8') || '\\x00'::bytea || payload) from raw_messages
	order by 1" >"$D/got.md5"
check "topics and payloads are byte-identical to what sensor-sim published" \
	cmp "$D/want.sorted" "$D/got.md5"
check "every row has its own origin in iot.raw" test "$(sql "select count(distinct
	(origin_partition, origin_offset)) from raw_messages where origin_cluster = 'local'")" = "$N"
check "source, QoS and receive time are kept" test "$(sql "select count(*) from raw_messages
	where source = 'north' and qos = 1 and received_at > now() - interval '1 hour'")" = "$N"
for p in saver ingestor; do
	rc=0; stop_bg "$p" || rc=$?
	check "$p exits 0 on SIGTERM" test "$rc" = 0
done

harness_finish
