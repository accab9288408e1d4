#!/usr/bin/env bash
# Every other suite topic lands in its table with the right types: timestamps as timestamptz to
# the millisecond, locations as two doubles, tags as jsonb, NULLs where the record has none.
# Identities hold: a re-delivered reading is skipped, aggregates and forecasts are upserted (the
# last version wins, within a batch and across batches), a rejection without an origin is keyed
# by its own Kafka position. A record of any type the database refuses goes to the dead-letter
# topic. Partitions: rows for a day without a partition are moved into it when it is created,
# and --retention drops old partitions and old rows of the default partition.
source "$(dirname "$0")/../lib/harness.sh"
harness_init raw_saver_topics
require psql python3 curl

SAVER=$(harness_bin raw-saver) || exit 1
CAT=$(harness_bin iot-cat) || exit 1
MIG="$HARNESS_ROOT/schemas/postgres"
D=$HARNESS_DIR

start_pg || exit 1
psql -XqAc 'create database iot' || exit 1
sql() { psql -XqAt -d iot -v ON_ERROR_STOP=1 -c "$1"; }
TOPICS=(iot.clean iot.aggregates iot.commands iot.events iot.rejected iot.forecasts)
start_kafka_mock --topic iot.clean:4 --topic iot.aggregates:4 --topic iot.commands:2 \
	--topic iot.events:2 --topic iot.rejected:2 --topic iot.forecasts:2 --topic iot.deadletter:1 ||
	exit 1
check "migrations" "$SAVER" --db dbname=iot --migrations "$MIG" --migrate

# An hour ago, to the millisecond (today's or yesterday's partition).
T0=$(($(date +%s%3N) - 3600000 - 123))
produce() { # produce TOPIC TYPE: JSON lines on stdin
	"$CAT" -b "$BOOTSTRAP" -P -t "$1" -T "$2" -k site
}
produce iot.clean Reading <<EOF
{"site":"s1","device":"d1","sensor":"t0","metric":"temperature","unit":"C","value":21.3,"ts":$T0,"received_at":$((T0 + 42)),"location":{"lat":59.91,"lon":10.75},"device_type":"thermo-x","tags":{"fw":"1.2","room.floor":"2","quote":"it's \"x\" \\\\ tab\t"}}
{"site":"s1","device":"d2","sensor":"p","metric":"pressure","unit":"BAR","value":120.5,"ts":$((T0 + 1000)),"received_at":$((T0 + 1001))}
{"site":"s1","device":"d1","sensor":"t0","metric":"temperature","unit":"C","value":99,"ts":$T0,"received_at":$((T0 + 77))}
{"site":"s1","device":"d9","sensor":"x","metric":"temperature","unit":"C","value":1,"ts":9223372036854775807,"received_at":$T0}
EOF
produce iot.aggregates Aggregate <<EOF
{"site":"s1","device":"*","sensor":"*","metric":"temperature","unit":"C","window_start":$((T0 / 60000 * 60000)),"window_end":$((T0 / 60000 * 60000 + 60000)),"window_ms":60000,"count":12,"mean":21.25,"min":20.5,"max":22,"stddev":0.43,"first":20.5,"first_ts":$((T0 / 60000 * 60000 + 1000)),"last":22,"last_ts":$((T0 / 60000 * 60000 + 59000))}
{"site":"s1","device":"*","sensor":"*","metric":"temperature","unit":"C","window_start":$((T0 / 60000 * 60000)),"window_end":$((T0 / 60000 * 60000 + 60000)),"window_ms":60000,"count":13,"mean":21.3,"min":20.5,"max":22,"stddev":0.45,"first":20.5,"first_ts":$((T0 / 60000 * 60000 + 1000)),"last":22,"last_ts":$((T0 / 60000 * 60000 + 59500))}
{"site":"s1","device":"*","sensor":"*","metric":"temperature","unit":"C","window_start":$((T0 / 60000 * 60000)),"window_end":$((T0 / 60000 * 60000 + 300000)),"window_ms":300000,"count":50,"mean":21,"min":20,"max":22,"stddev":0.5,"first":20,"first_ts":$((T0 / 60000 * 60000)),"last":21,"last_ts":$((T0 / 60000 * 60000 + 299000))}
EOF
produce iot.commands Command <<EOF
{"topic":"s1/d1/heatpump/set","payload":"{\"status\":\"1\"}","qos":1,"retained":true,"rule":"heat","side":"low","site":"s1","device":"d1","sensor":"t0","metric":"temperature","value":19.5,"reading_ts":$T0,"issued_at":$((T0 + 100))}
EOF
produce iot.events ThresholdEvent <<EOF
{"site":"f1","device":"d1","sensor":"s1","metric":"pressure","rule":"over","threshold":10,"hysteresis":0.5,"state":"started","started_at":$T0,"ended_at":null,"exceeded_for_ms":0,"average":10.5,"max":10.5,"count":1}
{"site":"f1","device":"d1","sensor":"s1","metric":"pressure","rule":"over","threshold":10,"hysteresis":0.5,"state":"ended","started_at":$T0,"ended_at":$((T0 + 60000)),"exceeded_for_ms":60000,"average":10.75,"max":11.2,"count":7}
EOF
produce iot.rejected Rejected <<EOF
{"source":"south","topic":"x/y","payload":{"base64":"bm90IGpzb24gw6kA/w=="},"qos":1,"retained":false,"received_at":$T0,"origin":{"cluster":"edge1","topic":"iot.raw","partition":3,"offset":12345},"stage":"cleaner","reason":"json: invalid","reason_code":"json_malformed"}
{"source":"south","topic":"x/z","payload":"","qos":2,"retained":false,"received_at":$((T0 + 5)),"origin":null,"stage":"cleaner","reason":"payload: empty","reason_code":"payload_empty"}
EOF
produce iot.forecasts Forecast <<EOF
{"site":"h1","device":"m1","sensor":"*","metric":"energy","unit":"kWh","window_start":$((T0 / 60000 * 60000 + 60000)),"window_ms":60000,"horizon":1,"predicted":0.41,"lower":0.3,"upper":0.52,"model":"holt-winters","made_at":$((T0 / 60000 * 60000 + 60000))}
{"site":"h1","device":"m1","sensor":"*","metric":"energy","unit":"kWh","window_start":$((T0 / 60000 * 60000 + 60000)),"window_ms":60000,"horizon":1,"predicted":0.40,"lower":null,"upper":null,"model":"naive","made_at":$((T0 / 60000 * 60000 + 60000))}
EOF

port=$(free_port)
murl="http://127.0.0.1:$port/metrics"
IN=$(IFS=,; echo "${TOPICS[*]}")
start_bg saver "$SAVER" -b "$BOOTSTRAP" --db dbname=iot --migrations "$MIG" --in "$IN" \
	--metrics-port "$port" --batch 100 --batch-ms 200ms
total() { [ "$(metric "$murl" iotpipe_db_rows_total)" = "$1" ]; }
# 3 readings, 3 aggregates, 1 command, 2 events, 2 rejections, 2 forecasts (the bad reading is refused)
wait_for "every record was committed" 90 total 13

ms() { echo "(extract(epoch from $1) * 1000)::bigint"; }
check "readings: 2 rows, the re-delivered identity skipped" test "$(sql 'select count(*) from readings')" = 2
check "readings: column types" test "$(sql "select pg_typeof(ts), pg_typeof(received_at),
	pg_typeof(value), pg_typeof(location_lat), pg_typeof(location_lon), pg_typeof(tags),
	pg_typeof(device_type) from readings limit 1")" = \
	"timestamp with time zone|timestamp with time zone|double precision|double precision|double precision|jsonb|text"
check "readings: the first version of an identity stays, times to the millisecond" \
	test "$(sql "select value, $(ms ts), $(ms received_at) from readings where device = 'd1'")" = \
	"21.3|$T0|$((T0 + 42))"
check "readings: location, device type, tags as jsonb" test "$(sql "select location_lat,
	location_lon, device_type, tags->>'fw', tags->>'room.floor', tags->>'quote',
	jsonb_typeof(tags) from readings where device = 'd1'")" = \
	"59.91|10.75|thermo-x|1.2|2|it's \"x\" \\ tab	|object"
check "readings: no location, no device type, empty tags" test "$(sql "select location_lat is null,
	location_lon is null, device_type is null, tags = '{}'::jsonb from readings
	where device = 'd2'")" = "t|t|t|t"
check "aggregates: 2 rows, the later version of a window replaced the earlier" \
	test "$(sql "select count(*), sum(count) from aggregates")" = "2|63"
check "aggregates: values and types" test "$(sql "select mean, stddev, pg_typeof(window_start),
	$(ms last_ts) - $(ms window_start), window_ms from aggregates where window_ms = 60000")" = \
	"21.3|0.45|timestamp with time zone|59500|60000"
check "commands: the audit row" test "$(sql "select topic, payload, qos, retained, rule, side,
	$(ms issued_at) - $(ms reading_ts), pg_typeof(issued_at) from commands")" = \
	's1/d1/heatpump/set|{"status":"1"}|1|t|heat|low|100|timestamp with time zone'
check "threshold_events: started and ended" test "$(sql "select string_agg(state || ':' ||
	coalesce(($(ms ended_at) - $(ms started_at))::text, 'open') || ':' || exceeded_for_ms, ','
	order by state) from threshold_events")" = "ended:60000:60000,started:open:0"
check "rejected: origin from the record" test "$(sql "select origin_cluster, origin_topic,
	origin_partition, origin_offset, encode(payload, 'hex') from rejected where topic = 'x/y'")" = \
	"edge1|iot.raw|3|12345|6e6f74206a736f6e20c3a900ff"
check "rejected: no origin in the record: keyed by its own Kafka position" test "$(sql "select
	origin_cluster, origin_topic, origin_offset >= 0, length(payload), stage from rejected
	where topic = 'x/z'")" = "local|iot.rejected|t|0|cleaner"
check "forecasts: interval bounds, NULL when the model gives none" test "$(sql "select
	string_agg(model || ':' || coalesce(lower::text, 'null') || ':' || coalesce(upper::text, 'null'),
	',' order by model) from forecasts")" = "holt-winters:0.3:0.52,naive:null:null"

"$CAT" -b "$BOOTSTRAP" -C -t iot.deadletter -e >"$D/dead.jsonl" 2>"$D/dead.err"
check "the refused reading is a Rejected record in the dead-letter topic" python3 - "$D/dead.jsonl" <<'PY'
import json, sys
recs = [json.loads(l) for l in open(sys.argv[1])]
assert len(recs) == 1, recs
r = recs[0]
assert r["source"] == "Reading" and r["topic"] == "iot.clean" and r["stage"] == "raw-saver", r
assert r["reason_code"] == "db_22008" and r["reason"].startswith("readings: 22008"), r
line = json.loads(r["payload"])
assert line["device"] == "d9" and line["ts"] == 9223372036854775807, line
assert r["origin"]["topic"] == "iot.clean", r
PY

# A later version of a window arrives in another batch; a re-delivered reading again.
produce iot.aggregates Aggregate <<EOF
{"site":"s1","device":"*","sensor":"*","metric":"temperature","unit":"C","window_start":$((T0 / 60000 * 60000)),"window_end":$((T0 / 60000 * 60000 + 60000)),"window_ms":60000,"count":14,"mean":21.4,"min":20.5,"max":22.5,"stddev":0.5,"first":20.5,"first_ts":$((T0 / 60000 * 60000 + 1000)),"last":22.5,"last_ts":$((T0 / 60000 * 60000 + 59900))}
EOF
produce iot.clean Reading <<EOF
{"site":"s1","device":"d2","sensor":"p","metric":"pressure","unit":"BAR","value":0,"ts":$((T0 + 1000)),"received_at":$((T0 + 9999))}
EOF
wait_for "the second round was committed" 60 total 15
check "aggregates: updated across batches" test "$(sql "select count, mean, max from aggregates
	where window_ms = 60000")" = "14|21.4|22.5"
check "readings: still 2 rows, unchanged" test "$(sql "select count(*), sum(value) from readings")" = "2|141.8"
rc=0; stop_bg saver || rc=$?
check "raw-saver exits 0 on SIGTERM" test "$rc" = 0

# Everything again from the start (a new group): nothing changes.
sql "select (select count(*) from readings) + (select count(*) from aggregates) +
	(select count(*) from commands) + (select count(*) from threshold_events) +
	(select count(*) from rejected) + (select count(*) from forecasts)" >"$D/before"
start_bg saver2 "$SAVER" -b "$BOOTSTRAP" --db dbname=iot --migrations "$MIG" --in "$IN" \
	--metrics-port "$port" --batch 100 --batch-ms 3s --group again
wait_for "the replay was committed" 90 total 15
check "a replay of every topic adds no row" test "$(sql "select (select count(*) from readings) +
	(select count(*) from aggregates) + (select count(*) from commands) +
	(select count(*) from threshold_events) + (select count(*) from rejected) +
	(select count(*) from forecasts)")" = "$(cat "$D/before")"
check "the replay ends with the last version of the window" test "$(sql "select count from aggregates
	where window_ms = 60000")" = 14
check "the replay changed no row" test "$(metric "$murl" iotpipe_db_rows_written_total)" = 0
rc=0; stop_bg saver2 || rc=$?
check "the replay exits 0" test "$rc" = 0

# --- partitions and retention ---------------------------------------------------------------
DAY=86400000
NOW=$(date +%s%3N)
day_of() { date -u -d "@$(($1 / 1000))" +%Y%m%d; }
check "partitions for two old days created by hand" test \
	"$(sql "select iotpipe_ensure_partitions('readings', current_date - 45, current_date - 44)")" = 2
"$SAVER" --db dbname=iot --migrations '' --in - --type Reading 2>"$D/stdin.err" <<EOF
{"site":"old","device":"d","sensor":"s","metric":"m","unit":"u","value":1,"ts":$((NOW - 45 * DAY)),"received_at":$NOW}
{"site":"old","device":"d","sensor":"s","metric":"m","unit":"u","value":2,"ts":$((NOW - 40 * DAY)),"received_at":$NOW}
{"site":"new","device":"d","sensor":"s","metric":"m","unit":"u","value":3,"ts":$NOW,"received_at":$NOW}
{"site":"future","device":"d","sensor":"s","metric":"m","unit":"u","value":4,"ts":$((NOW + 10 * DAY)),"received_at":$NOW}
EOF
where() { sql "select tableoid::regclass from readings where value = $1"; }
check "a reading lands in its day's partition" test "$(where 1)" = "readings_p$(day_of $((NOW - 45 * DAY)))"
check "days without a partition land in the default one" \
	test "$(where 2) $(where 4)" = "readings_default readings_default"
parts() { sql "select count(*) from pg_inherits where inhparent = '$1'::regclass"; }
raw_parts=$(parts raw_messages)
check "--migrate --partitions-ahead 12 --retention readings=30d" "$SAVER" --db dbname=iot \
	--migrations "$MIG" --migrate --partitions-ahead 12 --retention readings=30d
check "the future day's partition was created and its row moved out of the default" \
	test "$(where 4)" = "readings_p$(day_of $((NOW + 10 * DAY)))"
check "partitions older than 30 days are dropped" test "$(sql "select count(*) from pg_class
	where relname in ('readings_p$(day_of $((NOW - 45 * DAY)))', 'readings_p$(day_of $((NOW - 44 * DAY)))')")" = 0
check "old rows of the default partition are deleted, recent ones kept" \
	test "$(sql "select string_agg(value::text, ',' order by value) from readings where site in ('old', 'new', 'future')")" = "3,4"
check "other tables keep their partitions (retention was for readings only)" \
	test "$(parts raw_messages)" -ge "$raw_parts"

harness_finish
