#!/usr/bin/env bash
# cleaner end to end: sensor-sim publishes every payload format with 5% deliberately invalid
# messages through mosquitto and mqtt-ingestor; the cleaner turns iot.raw into iot.clean and
# iot.rejected. iot.clean must hold exactly the valid readings (batches count per element),
# iot.rejected one record per invalid message with the reason its kind calls for, and the
# cleaner's metrics must count the same. The same raw records cleaned through stdin/stdout
# give the same records, and `sensor-sim --stdout | cleaner --in - --out -` works as a pipe
# whose stdout carries Readings only.
source "$(dirname "$0")/../lib/harness.sh"
harness_init cleaner
# paho (the ingestor's MQTT library) leaks inside itself; see tests/lsan.supp.
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$HARNESS_ROOT/tests/lsan.supp}
require mosquitto curl python3

N=${CLEANER_TEST_N:-20000}
SEED=${CLEANER_TEST_SEED:-41}
D=$HARNESS_DIR
ING=$(harness_bin mqtt-ingestor) || exit 1
SIM=$(harness_bin sensor-sim) || exit 1
CAT=$(harness_bin iot-cat) || exit 1
CLEANER=$(harness_bin cleaner) || exit 1
CHECK="python3 $HARNESS_ROOT/tests/integration/test_cleaner_check.py"
# Back-filled event times (2024) are accepted; the invalid kind "future_ts" lies in 2100.
CLEAN_FLAGS=(--max-age 100000d)
SIM_FLAGS=(--seed "$SEED" --format mixed --sites 3 --devices 5 --sensors 2 --invalid 0.05
	--start-ts 2024-03-01T00:00:00Z --step 1s --no-control)

start_mosquitto || exit 1
start_kafka_mock --topic iot.raw:16 --topic iot.clean:16 --topic iot.rejected:4 || exit 1
iport=$(free_port)
cport=$(free_port)
murl="http://127.0.0.1:$cport/metrics"
start_bg ingestor "$ING" -b "$BOOTSTRAP" --mqtt "$MQTT_URL" -t '#' --client-id ing-cl \
	--source edge --metrics-port "$iport"
start_bg cleaner "$CLEANER" -b "$BOOTSTRAP" "${CLEAN_FLAGS[@]}" --metrics-port "$cport"
wait_for "ingestor ready" 30 curl -fsS "http://127.0.0.1:$iport/readyz" || exit 1
wait_for "cleaner ready" 30 curl -fsS "http://127.0.0.1:$cport/readyz" || exit 1

# --- MQTT -> ingestor -> iot.raw -> cleaner -> iot.clean + iot.rejected ----------------------
check "sensor-sim published $N QoS 1 messages, 5% invalid" \
	"$SIM" "${SIM_FLAGS[@]}" --mqtt "$MQTT_URL" --rate 0 --count "$N" --qos 1 \
	--client-id sim-cl --summary "$D/summary.json"
cleaned() { [ "$(metric "$murl" iotpipe_cleaner_messages_total)" = "$N" ]; }
wait_for "cleaner cleaned $N messages" 120 cleaned
curl -fsS "$murl" >"$D/metrics.txt"
rc=0
stop_bg cleaner || rc=$?
check "cleaner exits 0 on SIGTERM (outputs acknowledged, LSan-clean)" test "$rc" -eq 0
rc=0
stop_bg ingestor || rc=$?
check "ingestor exits 0 on SIGTERM" test "$rc" -eq 0

"$CAT" -b "$BOOTSTRAP" -C -t iot.raw -e >"$D/raw.jsonl" 2>"$D/cat.err"
"$CAT" -b "$BOOTSTRAP" -C -t iot.clean -e >"$D/clean.jsonl" 2>>"$D/cat.err"
"$CAT" -b "$BOOTSTRAP" -C -t iot.rejected -e >"$D/rejected.jsonl" 2>>"$D/cat.err"
check "iot.raw holds the $N published messages" test "$(wc -l <"$D/raw.jsonl")" -eq "$N"
trc=0
$CHECK tally "$D/summary.json" "$D/clean.jsonl" "$D/rejected.jsonl" "$D/metrics.txt" \
	>"$D/tally.txt" 2>&1 || trc=$?
sed 's/^/# /' "$D/tally.txt"
check "iot.clean + iot.rejected account for every message, each invalid kind with its reason; metrics agree" \
	test "$trc" -eq 0
check "every invalid kind was sent at least once" python3 -c '
import json, sys
k = json.load(open(sys.argv[1]))["invalid_by_kind"]
sys.exit(0 if k and all(v > 0 for v in k.values()) else 1)' "$D/summary.json"
check "Rejected records carry the raw message, its origin in iot.raw and stage cleaner" \
	python3 -c '
import json, sys
key = lambda r: (r["topic"], json.dumps(r["payload"]), r["received_at"])
raw = {key(r) for r in map(json.loads, open(sys.argv[1]))}
for line in open(sys.argv[2]):
    r = json.loads(line)
    o = r["origin"]
    assert key(r) in raw, r
    assert r["source"] == "edge" and r["stage"] == "cleaner" and r["reason"], r
    assert o["cluster"] == "local" and o["topic"] == "iot.raw" and o["offset"] >= 0, r' \
	"$D/raw.jsonl" "$D/rejected.jsonl"

# --- the same raw records through stdin and stdout --------------------------------------------
rc=0
"$CLEANER" --in - --out - --rejected "$D/stdio.rejected.jsonl" "${CLEAN_FLAGS[@]}" \
	<"$D/raw.jsonl" >"$D/stdio.clean.jsonl" 2>"$D/stdio.log" || rc=$?
check "cleaner --in - --out - exits 0 at end of input" test "$rc" -eq 0
trc=0
$CHECK same "$D/clean.jsonl" "$D/stdio.clean.jsonl" --exact >"$D/same.txt" 2>&1 || trc=$?
sed 's/^/# /' "$D/same.txt"
check "iot.clean equals what cleaning iot.raw through stdin and stdout gives" test "$trc" -eq 0
check "iot.rejected equals stdio's rejections (origin aside)" \
	$CHECK same "$D/rejected.jsonl" "$D/stdio.rejected.jsonl" --ignore origin --exact

# --- a shell pipe: sensor-sim --stdout | cleaner --in - --out - ---------------------------------
# Without --rejected and without brokers, Rejected records go to stderr: never into stdout.
set -o pipefail
rc=0
"$SIM" "${SIM_FLAGS[@]}" --stdout --rate 0 --count "$N" --summary "$D/pipe.summary.json" \
	2>"$D/pipe.sim.log" |
	"$CLEANER" --in - --out - "${CLEAN_FLAGS[@]}" 2>"$D/pipe.stderr" |
	python3 -c '
import json, sys
n = 0
for line in sys.stdin:
    r = json.loads(line)
    assert "reason" not in r and isinstance(r["value"], (float, int)), line
    sys.stdout.write(line)
    n += 1
' >"$D/pipe.clean.jsonl" || rc=$?
set +o pipefail
check "sensor-sim | cleaner | consumer: every stage exits 0" test "$rc" -eq 0
grep '^{' "$D/pipe.stderr" >"$D/pipe.rejected.jsonl"
trc=0
$CHECK tally "$D/pipe.summary.json" "$D/pipe.clean.jsonl" "$D/pipe.rejected.jsonl" \
	>"$D/pipe.tally.txt" 2>&1 || trc=$?
sed 's/^/# pipe: /' "$D/pipe.tally.txt"
check "pipe: stdout holds the valid readings, stderr the rejections, each with its reason" \
	test "$trc" -eq 0
harness_finish
