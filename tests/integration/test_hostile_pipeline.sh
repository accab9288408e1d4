#!/usr/bin/env bash
# The adversarial corpus (tests/fixtures/hostile/cases.jsonl) through the running pipeline:
# mosquitto -> mqtt-ingestor -> iot.raw -> cleaner -> iot.clean / iot.rejected -> raw-saver ->
# PostgreSQL. Huge payloads, deep nesting, invalid UTF-8, NUL bytes, NaN/Infinity, numbers beyond
# double range, times at 0, negative and far in the future, topic injection through identifiers,
# SQL metacharacters in every string field — each followed by a valid message — while one device
# floods the broker on its own topic.
#  - nothing stops: every service is alive afterwards and exits 0 on SIGTERM (LSan-clean);
#  - every message is in raw_messages with its exact bytes, except the one over the ingestor's
#    --max-payload, which is counted as dropped;
#  - every hostile message is rejected with the expected reason_code, once, with a printable
#    reason; the hostile ones that are valid (SQL text, '$SYS', UTF-8 names) are stored byte for
#    byte; no identifier with '/', '+', '#' or a control character reaches readings;
#  - every valid neighbour and every flood message arrives as a Reading, exactly once.
source "$(dirname "$0")/../lib/harness.sh"
harness_init hostile_pipeline
require mosquitto mosquitto_pub psql python3 curl
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$HARNESS_ROOT/tests/lsan.supp}

ING=$(harness_bin mqtt-ingestor) || exit 1
CLEANER=$(harness_bin cleaner) || exit 1
SAVER=$(harness_bin raw-saver) || exit 1
D=$HARNESS_DIR
C=$D/corpus
FLOOD=${HOSTILE_FLOOD:-5000}

check "the corpus was generated" python3 "$HARNESS_ROOT/tests/fixtures/hostile/make_corpus.py" \
	"$C" --flood "$FLOOD"
NMSG=$(wc -l <"$C/plan.jsonl")
NDROP=$(grep -c '"expect": "dropped:' "$C/plan.jsonl")
NREJ=$(grep -c '"expect": "rejected:' "$C/plan.jsonl")

start_pg || exit 1
psql -XqAc 'create database iot' || exit 1
sql() { psql -XqAt -d iot -v ON_ERROR_STOP=1 -c "$1"; }
check "tables created" "$SAVER" --db dbname=iot --migrations "$HARNESS_ROOT/schemas/postgres" \
	--migrate
start_mosquitto || exit 1
start_kafka_mock --topic iot.raw:8 --topic iot.clean:8 --topic iot.rejected:4 \
	--topic iot.deadletter:2 || exit 1

pi=$(free_port) pc=$(free_port) ps=$(free_port)
IMET=http://127.0.0.1:$pi/metrics CMET=http://127.0.0.1:$pc/metrics SMET=http://127.0.0.1:$ps/metrics
start_bg ingestor "$ING" -b "$BOOTSTRAP" --mqtt "$MQTT_URL" -t '#' --client-id hostile-ing \
	--session-expiry 0 --metrics-port "$pi"
start_bg cleaner "$CLEANER" -b "$BOOTSTRAP" --max-payload 64k --metrics-port "$pc" \
	--checkpoint-ms 200ms
start_bg saver "$SAVER" -b "$BOOTSTRAP" --in iot.raw,iot.clean,iot.rejected --db dbname=iot \
	--migrations '' --metrics-port "$ps" --batch-ms 200ms
wait_for "ingestor ready" 30 curl -fsS "http://127.0.0.1:$pi/readyz"
wait_for "cleaner serving metrics" 30 curl -fsS "$CMET"
wait_for "raw-saver ready" 30 curl -fsS "http://127.0.0.1:$ps/readyz"

# The flood runs while the corpus is published, one message after the other.
start_bg --stdin "$C/flood.txt" flood mosquitto_pub -h 127.0.0.1 -p "$MQTT_PORT" -q 1 \
	-t flood/dev1/temperature -l
FLOOD_PID=$BG_PID
publish_corpus() {
	local f
	while IFS= read -r f; do
		mosquitto_pub -h 127.0.0.1 -p "$MQTT_PORT" -q 1 -t "$(cat "$C/$f.topic")" \
			-f "$C/$f.payload" || return 1
	done < <(python3 -c 'import json,sys; [print(json.loads(l)["file"]) for l in open(sys.argv[1])]' \
		"$C/plan.jsonl")
}
check "published the $NMSG corpus messages ($((NMSG / 2)) hostile, each followed by a valid one)" \
	publish_corpus
rc=0
wait_bg "$FLOOD_PID" 60 || rc=$?
check "one device flooded $FLOOD messages meanwhile" test "$rc" -eq 0

TOTAL=$((NMSG + FLOOD))
m_is() { [ "$(metric "$1" "$2")" = "$3" ]; }
wait_for "the ingestor received all $TOTAL" 60 m_is "$IMET" iotpipe_ingestor_received_total "$TOTAL"
raw_rows() { [ "$(sql 'select count(*) from raw_messages')" = "$1" ]; }
wait_for "raw_messages holds $((TOTAL - NDROP)) rows" 90 raw_rows $((TOTAL - NDROP))
rej_rows() { [ "$(sql 'select count(*) from rejected')" = "$1" ]; }
wait_for "rejected holds $NREJ rows" 60 rej_rows "$NREJ"
flood_rows() { [ "$(sql "select count(*) from readings where site = 'flood'")" = "$1" ]; }
wait_for "all $FLOOD flood readings arrived" 90 flood_rows "$FLOOD"

for s in mosquitto ingestor cleaner saver; do
	check "$s is still running" bg_alive "$s"
done
check "the ingestor counted the oversized payload as dropped" \
	m_is "$IMET" 'iotpipe_ingestor_dropped_total{reason="payload_too_large"}' "$NDROP"

# Everything the database holds, for the checks below.
sql "select json_build_object('topic', topic, 'md5', md5(payload)) from raw_messages
	where topic <> 'flood/dev1/temperature'" >"$D/raw.db.jsonl"
sql "select json_build_object('topic', topic, 'code', reason_code, 'reason', reason,
	'stage', stage, 'md5', md5(payload)) from rejected" >"$D/rejected.db.jsonl"
sql "select row_to_json(r) from (select site, device, sensor, metric, unit, value, device_type,
	tags from readings where site <> 'flood') r" >"$D/readings.db.jsonl"
curl -fsS "$CMET" >"$D/cleaner.metrics"

check "every message but the dropped one is in raw_messages with its exact bytes" \
	python3 - "$C" "$D/raw.db.jsonl" <<'PY'
import hashlib, json, sys
c, got = sys.argv[1], {}
for l in open(sys.argv[2]):
    r = json.loads(l)
    assert r["topic"] not in got, "twice: " + r["topic"][:80]
    got[r["topic"]] = r["md5"]
for p in map(json.loads, open(c + "/plan.jsonl")):
    want = hashlib.md5(open("%s/%s.payload" % (c, p["file"]), "rb").read()).hexdigest()
    if p["expect"].startswith("dropped:"):
        assert p["topic"] not in got, p["name"] + " should have been dropped"
    else:
        assert got.get(p["topic"]) == want, p["name"] + ": payload differs or is missing"
PY
check "every hostile message was rejected once, with the expected reason, its bytes and a printable reason" \
	python3 - "$C" "$D/rejected.db.jsonl" <<'PY'
import hashlib, json, re, sys
c, got = sys.argv[1], {}
for l in open(sys.argv[2]):
    r = json.loads(l)
    assert r["topic"] not in got, "rejected twice: " + r["topic"][:80]
    assert r["stage"] == "cleaner", r
    assert re.fullmatch(r"[ -~]+", r["reason"]), "unprintable reason: %r" % r["reason"]
    got[r["topic"]] = r
bad = []
for p in map(json.loads, open(c + "/plan.jsonl")):
    r = got.pop(p["topic"], None)
    if p["expect"].startswith("rejected:"):
        want = hashlib.md5(open("%s/%s.payload" % (c, p["file"]), "rb").read()).hexdigest()
        if not r or r["code"] != p["expect"][9:] or r["md5"] != want:
            bad.append("%s: want %s, got %s" % (p["name"], p["expect"], r and (r["code"], r["reason"])))
    elif r:
        bad.append("%s: rejected (%s), expected %s" % (p["name"], r["reason"], p["expect"]))
assert not bad and not got, (bad, list(got)[:5])
PY
check "every valid message and every valid hostile one is a Reading, stored byte for byte" \
	python3 - "$C" "$D/readings.db.jsonl" <<'PY'
import json, sys
c = sys.argv[1]
rows = [json.loads(l) for l in open(sys.argv[2])]
by_id = {}
for r in rows:
    k = (r["site"], r["device"])
    assert k not in by_id, "twice: %r" % (k,)
    by_id[k] = r
want = [p for p in map(json.loads, open(c + "/plan.jsonl")) if p["row"]]
for p in want:
    w = p["row"]
    r = by_id.pop((w["site"], w["device"]), None)
    assert r, "%s: no reading for %r" % (p["name"], (w["site"], w["device"]))
    for k, v in w.items():
        if k == "tags":
            for tk, tv in v.items():
                assert r["tags"].get(tk) == tv, "%s: tag %r is %r" % (p["name"], tk, r["tags"].get(tk))
        elif k == "value":
            assert abs(r["value"] - v) < 1e-9, (p["name"], r["value"], v)
        else:
            assert r[k] == v, "%s: %s is %r, want %r" % (p["name"], k, r[k], v)
assert not by_id, "readings nobody sent: %r" % list(by_id)[:5]
print(len(want), "readings as expected")
PY
check "no identifier in readings carries '/', '+', '#' or a control character" test "$(sql "
	select count(*) from readings where concat(site, device, sensor, metric) ~ '[/+#[:cntrl:]]'")" = 0
check "the cleaner's metrics count each rejection under its reason" python3 - "$C" \
	"$D/cleaner.metrics" <<'PY'
import collections, json, re, sys
want = collections.Counter(p["expect"][9:] for p in map(json.loads, open(sys.argv[1] + "/plan.jsonl"))
                           if p["expect"].startswith("rejected:"))
got = collections.Counter()
for l in open(sys.argv[2]):
    m = re.match(r'iotpipe_cleaner_rejected_total\{reason="([a-z0-9_]+)"\} (\S+)', l)
    if m:
        got[m.group(1)] += int(float(m.group(2)))
assert all(got[k] == v for k, v in want.items()), (want, got)
PY
for s in saver cleaner ingestor; do
	rc=0
	stop_bg "$s" || rc=$?
	check "$s exits 0 on SIGTERM (LSan-clean)" test "$rc" -eq 0
done
harness_finish
