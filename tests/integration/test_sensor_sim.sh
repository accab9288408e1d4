#!/usr/bin/env bash
# sensor-sim end to end: deterministic JSON lines, every message published at QoS 1 arrives
# byte-identical, refused publishes (ACL, MQTT 5 PUBACK 0x87) are counted and fail the run, the
# heat-pump closed loop warms a room, SIGTERM drains cleanly, and a broker restart loses nothing
# with a persistent session.
source "$(dirname "$0")/../lib/harness.sh"
harness_init sensor_sim
require mosquitto mosquitto_sub mosquitto_pub mosquitto_passwd python3

SIM=$(harness_bin sensor-sim) || exit 1
D=$HARNESS_DIR
N=${SENSOR_SIM_TEST_N:-20000}

# ---- --stdout: same seed and flags, same bytes ----
flags=(--format mixed --sites 2 --devices 8 --sensors 2 --start-ts 2024-05-01T00:00:00Z --step 10s
	--invalid 0.05 --rate 0)
"$SIM" "${flags[@]}" --seed 5 --stdout --count 5000 --summary "$D/s1.json" >"$D/a.jsonl" 2>"$D/a.err"
"$SIM" "${flags[@]}" --seed 5 --stdout --count 5000 >"$D/b.jsonl" 2>/dev/null
"$SIM" "${flags[@]}" --seed 6 --stdout --count 5000 >"$D/c.jsonl" 2>/dev/null
check "same seed and flags: byte-identical output" cmp "$D/a.jsonl" "$D/b.jsonl"
check "another seed: other output" bash -c "! cmp -s '$D/a.jsonl' '$D/c.jsonl'"
check "5000 RawMessage lines" test "$(wc -l <"$D/a.jsonl")" -eq 5000
# The summary's invalid count is 5% (within one), and exactly the malformed and NaN messages
# are refused by a strict JSON parser.
check "summary matches the invalid messages written" python3 - "$D/a.jsonl" "$D/s1.json" <<'PY'
import json, sys
def strict(s):
    def bad(c): raise ValueError(c)
    return json.loads(s, parse_constant=bad)
lines = [json.loads(l) for l in open(sys.argv[1])]
s = json.load(open(sys.argv[2]))
assert s["messages"] == 5000, s
assert abs(s["invalid"] - 250) <= 1, s
k = s["invalid_by_kind"]
assert sum(k.values()) == s["invalid"], s
unparsable = 0
for r in lines:
    assert set(r) == {"source", "topic", "payload", "qos", "retained", "received_at"}, r
    try:
        strict(r["payload"])
    except ValueError:
        unparsable += 1
assert unparsable == k["malformed"] + k["nan"], (unparsable, k)
PY

# ---- the cleaner agrees: every invalid kind is rejected for its reason, every good reading kept ----
if CLEANER=$(harness_bin cleaner 2>/dev/null); then
	for b in 1 4; do
		"$SIM" --format mixed --sites 3 --devices 8 --sensors 3 --invalid 0.05 --batch "$b" \
			--seed 4 --rate 0 --count 10000 --stdout --summary "$D/pipe$b.json" 2>/dev/null |
			"$CLEANER" --in - --out - --rejected "$D/rej$b.jsonl" >"$D/clean$b.jsonl" 2>"$D/cleaner$b.err"
		check "sensor-sim | cleaner (batch $b): readings and rejects by reason match the summary" \
			python3 - "$D/pipe$b.json" "$D/clean$b.jsonl" "$D/rej$b.jsonl" <<'PY'
import collections, json, sys
s = json.load(open(sys.argv[1]))
readings = sum(1 for _ in open(sys.argv[2]))
reasons = collections.Counter(json.loads(l)["reason_code"] for l in open(sys.argv[3]))
kinds = s["invalid_by_kind"]
want = {"json_malformed": kinds["malformed"], "value_error_code": kinds["error_value"],
        "value_not_finite": kinds["nan"], "value_out_of_range": kinds["out_of_range"],
        "ts_future": kinds["future_ts"], "id_invalid": kinds["bad_id"]}
want = {k: v for k, v in want.items() if v}
print("readings", readings, "expected", s["valid_readings"], dict(reasons), want)
assert readings == s["valid_readings"]
assert dict(reasons) == want
PY
	done
fi

# ---- MQTT: every QoS 1 message arrives, byte-identical ----
start_mosquitto --persist
start_bg --stdout "$D/sub.txt" sub mosquitto_sub -h 127.0.0.1 -p "$MQTT_PORT" -i sim-test-sub \
	-q 1 -v -t '#'
sub_ready() {
	timeout 5 mosquitto_pub -h 127.0.0.1 -p "$MQTT_PORT" -t probe/ready -m 1 -q 1 &&
		grep -q '^probe/ready ' "$D/sub.txt"
}
wait_for "subscriber ready" 20 sub_ready
pub_flags=(--seed 9 --format mixed --sites 2 --devices 8 --sensors 2 --invalid 0.05
	--start-ts 2024-05-01T00:00:00Z --no-control)
check "sensor-sim published $N QoS 1 messages, all confirmed" \
	"$SIM" "${pub_flags[@]}" --mqtt "$MQTT_URL" --rate 0 --count "$N" --qos 1 \
	--client-id sim-pub --summary "$D/pub.json"
"$SIM" "${pub_flags[@]}" --stdout --rate 0 --count "$N" >"$D/expected.jsonl" 2>/dev/null
count_data() { test "$(grep -vc '^probe/' "$D/sub.txt")" -ge "$N"; }
wait_for "subscriber received $N" 60 count_data
check "received (topic, payload) pairs equal the published ones" \
	python3 - "$D/sub.txt" "$D/expected.jsonl" <<'PY'
import collections, json, sys
got = collections.Counter()
for line in open(sys.argv[1], encoding="utf-8", errors="surrogateescape"):
    topic, _, payload = line.rstrip("\n").partition(" ")
    if not topic.startswith("probe/"):
        got[(topic, payload)] += 1
want = collections.Counter((r["topic"], r["payload"]) for r in map(json.loads, open(sys.argv[2])))
missing, extra = want - got, got - want
print("missing", sum(missing.values()), "extra", sum(extra.values()), list(missing)[:3])
sys.exit(0 if not missing and not extra else 1)
PY
check "summary: published = confirmed = $N, none failed" python3 -c "
import json,sys; s=json.load(open(sys.argv[1]))
sys.exit(0 if s['published']==s['confirmed']==$N and s['failed']==0 and s['unconfirmed']==0 else 1)" \
	"$D/pub.json"

# ---- refused publishes are failures, with the broker's reason ----
acl_port=$(free_port)
mosquitto_passwd -c -b "$D/pw" sim s3cret >/dev/null 2>&1
printf 'user sim\ntopic write factory/#\ntopic read +/+/heatpump/set\n' >"$D/acl"
chmod 644 "$D/pw" "$D/acl"
printf 'listener %s 127.0.0.1\nallow_anonymous false\npassword_file %s/pw\nacl_file %s/acl\nuser %s\n' \
	"$acl_port" "$D" "$D" "$(id -un)" >"$D/acl.conf"
start_bg mosquitto-acl mosquitto -c "$D/acl.conf"
wait_for "mosquitto with ACL listening" 15 port_open "$acl_port"
printf 's3cret\n' >"$D/secret"
acl_flags=(--seed 3 --format mixed --devices 8 --sensors 1 --count 64 --rate 0)
rc=0
"$SIM" "${acl_flags[@]}" --mqtt "mqtt://127.0.0.1:$acl_port" --mqtt-username sim \
	--mqtt-password-file "$D/secret" --summary "$D/acl.json" >"$D/acl.out" 2>&1 || rc=$?
check "a run with refused publishes exits 1" test "$rc" -eq 1
"$SIM" "${acl_flags[@]}" --stdout >"$D/acl-expected.jsonl" 2>/dev/null
check "every publish outside factory/# failed with PUBACK 0x87, the rest confirmed" python3 - \
	"$D/acl.json" "$D/acl-expected.jsonl" "$D/acl.out" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
topics = [json.loads(l)["topic"] for l in open(sys.argv[2])]
factory = sum(t.startswith("factory/") for t in topics)
assert s["published"] == 64 and s["confirmed"] == factory and s["failed"] == 64 - factory, (s, factory)
assert "PUBACK reason 0x87 Not authorized" in open(sys.argv[3]).read()
PY
check "the password never appears in the output" bash -c "! grep -q s3cret '$D/acl.out'"
rc=0
IOTPIPE_MQTT_PASSWORD=wrong "$SIM" --mqtt "mqtt://127.0.0.1:$acl_port" --mqtt-username sim \
	--count 1 --connect-timeout 20s >"$D/badpw.out" 2>&1 || rc=$?
check "bad credentials: refused at once, exit 1, reason given" \
	bash -c "[ $rc -eq 1 ] && grep -q 'Not authorized (0x87)' '$D/badpw.out'"

# ---- closed loop: a heat pump switched on warms its room ----
start_bg --stdout "$D/temps.txt" temps mosquitto_sub -h 127.0.0.1 -p "$MQTT_PORT" -v \
	-t 'home1/+/temperature'
sleep 0.5
start_bg loop "$SIM" --format home --devices 2 --rate 20 --duration 10s --time-scale 120 \
	--mqtt "$MQTT_URL" --client-id sim-loop --summary "$D/loop.json"
wait_for "sensor-sim subscribed to commands" 20 grep -q 'subscribed to +/+/heatpump/set' \
	"$(harness_log loop)"
sleep 1
mosquitto_pub -h 127.0.0.1 -p "$MQTT_PORT" -q 1 -t home1/livingroom/heatpump/set -m '{"status":"1"}'
rc=0
wait_bg loop 60 || rc=$?
check "closed-loop run exits 0" test "$rc" -eq 0
check "the command reached the room: 1 of 2 heat pumps on" python3 -c "
import json,sys; s=json.load(open(sys.argv[1]))
sys.exit(0 if s['commands']==1 and s['heatpumps_on']==1 and s['rooms']==2 else 1)" "$D/loop.json"
check "the heated room warms, the other keeps cooling" python3 - "$D/temps.txt" <<'PY'
import json, sys
series = {}
for line in open(sys.argv[1]):
    topic, _, payload = line.partition(" ")
    p = json.loads(payload)
    series.setdefault(topic.split("/")[1], []).append(p.get("value", p.get("temperature")))
heated, other = series["livingroom"], series["kitchen"]
print(heated[0], heated[-1], other[0], other[-1])
assert heated[-1] > heated[0] + 2.0, heated
assert other[-1] < other[0], other
PY
stop_bg temps || true

# ---- SIGTERM: stop, drain, report, exit 0 (LSan-clean) ----
start_bg term "$SIM" --format mixed --rate 2000 --mqtt "$MQTT_URL" --client-id sim-term \
	--summary "$D/term.json"
wait_for "sensor-sim publishing" 20 grep -q 'subscribed to' "$(harness_log term)"
sleep 2
rc=0
stop_bg term || rc=$?
check "SIGTERM: exit 0" test "$rc" -eq 0
check "SIGTERM: everything published was confirmed" python3 -c "
import json,sys; s=json.load(open(sys.argv[1]))
sys.exit(0 if s['published']>1000 and s['published']==s['confirmed'] and s['unconfirmed']==0 else 1)" \
	"$D/term.json"

# ---- broker restart: a persistent session loses nothing ----
start_bg restart "$SIM" --format factory --rate 1000 --duration 8s --mqtt "$MQTT_URL" \
	--client-id sim-restart --session-expiry 5m --no-control --summary "$D/restart.json"
wait_for "sensor-sim connected" 20 grep -q 'connected (MQTT 5' "$(harness_log restart)"
sleep 2
restart_mosquitto
rc=0
wait_bg restart 60 || rc=$?
check "broker restart: exit 0" test "$rc" -eq 0
check "broker restart: reconnected, every publish confirmed" python3 -c "
import json,sys; s=json.load(open(sys.argv[1]))
sys.exit(0 if s['reconnects']>=1 and s['published']==s['confirmed'] and s['failed']==0 else 1)" \
	"$D/restart.json"
check "the reconnect was logged" grep -q 'reconnected (automatic reconnect' "$(harness_log restart)"

stop_bg sub || true
stop_bg mosquitto-acl || true
harness_finish
