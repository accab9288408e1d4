#!/usr/bin/env bash
# actuator, closed loop: sensor-sim's rooms start cold and heat when their heat pump is on;
# sensor-sim -> mosquitto -> mqtt-ingestor -> cleaner -> actuator (examples/rules/actuator.rules)
# switches every heat pump on, the rooms warm, it switches them off, they cool, it switches them
# on again. The commands seen on the broker and the audit log in iot.commands are both exactly
# the state changes an independent model of the rule finds in iot.clean: one per change, on the
# right topic, QoS 1 and retained. Readings whose device id holds '#' or '/' publish nothing
# and are counted.
source "$(dirname "$0")/../lib/harness.sh"
harness_init actuator
require mosquitto mosquitto_sub curl python3
# paho keeps a client record after destroy when it ever reconnected (tests/lsan.supp).
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$HARNESS_ROOT/tests/lsan.supp}

ACT=$(harness_bin actuator) || exit 1
CLEANER=$(harness_bin cleaner) || exit 1
ING=$(harness_bin mqtt-ingestor) || exit 1
SIM=$(harness_bin sensor-sim) || exit 1
CAT=$(harness_bin iot-cat) || exit 1
RULES="$HARNESS_ROOT/examples/rules/actuator.rules"
D=$HARNESS_DIR
# 2 homes x 4 rooms, 10 readings per room and second. At --time-scale 600 a room heats from
# 17 to 25 °C in about 1.3 s and cools from 25 to 20 °C in about 1.2 s, so 12 s give every
# room several on/off cycles even with a second of pipeline latency.
SECS=${ACTUATOR_TEST_SECS:-12}

# ---- the example rules act on the demo's data (sensor-sim as tools/demo.sh runs it) ----
"$SIM" --format mixed --sites 4 --devices 8 --sensors 2 --invalid 0.02 --time-scale 60 \
	--stdout --rate 0 --count 2000 --seed 2 2>/dev/null |
	"$CLEANER" --in - --out - --rejected "$D/demo-rejected.jsonl" 2>"$D/demo-cleaner.err" |
	tee "$D/demo-clean.jsonl" |
	"$ACT" --in - --out - --rules "$RULES" --events "$D/demo-events.jsonl" \
		>"$D/demo-commands.jsonl" 2>"$D/demo-actuator.err"
# Every home room in the cleaned data (they all start cold) is switched on once; nothing else.
check "example rules switch every home heat pump of the demo's data on" \
	python3 - "$D/demo-clean.jsonl" "$D/demo-commands.jsonl" <<'PY'
import json, sys
rooms = set()
for l in open(sys.argv[1]):
    r = json.loads(l)
    if r["site"].startswith("home") and r["metric"] == "temperature":
        rooms.add("%s/%s/heatpump/set" % (r["site"], r["device"]))
c = [json.loads(l) for l in open(sys.argv[2])]
topics = [x["topic"] for x in c]
assert len(rooms) >= 4, rooms
assert sorted(topics) == sorted(rooms), (topics, rooms)
assert all(x["payload"] == '{"status":"1"}' and x["rule"] == "home-heating" for x in c), c
PY

start_mosquitto || exit 1
start_kafka_mock --topic iot.raw:4 --topic iot.clean:4 --topic iot.commands:4 \
	--topic iot.events:4 || exit 1

# The command subscribers come first, so they see every command. MQTT 5 with
# retain-as-published shows the retain flag the actuator published with.
start_bg --stdout "$D/sub.txt" sub mosquitto_sub -h 127.0.0.1 -p "$MQTT_PORT" -V mqttv5 -q 1 \
	--retain-as-published -F '%r %q %t %p' -t '+/+/heatpump/set'
# Everything else on the broker: a command on any other topic would show up here.
start_bg --stdout "$D/all.txt" suball mosquitto_sub -h 127.0.0.1 -p "$MQTT_PORT" -q 1 -v -t '#'

aport=$(free_port)
cport=$(free_port)
amet="http://127.0.0.1:$aport/metrics"
cmet="http://127.0.0.1:$cport/metrics"
start_bg ingestor "$ING" -b "$BOOTSTRAP" --mqtt "$MQTT_URL" -t '+/+/temperature' \
	--client-id ing-act --session-expiry 0
start_bg cleaner "$CLEANER" -b "$BOOTSTRAP" --metrics-port "$cport" --checkpoint-ms 200ms
start_bg actuator "$ACT" -b "$BOOTSTRAP" --rules "$RULES" --mqtt "$MQTT_URL" \
	--client-id act-1 --metrics-port "$aport" --checkpoint-ms 200ms
wait_for "actuator ready (MQTT connected)" 30 curl -fsS "http://127.0.0.1:$aport/readyz" || exit 1
wait_for "cleaner serving metrics" 30 curl -fsS "$cmet" || exit 1
wait_for "ingestor subscribed" 30 grep -q 'subscribed to' "$(harness_log ingestor)" || exit 1
sleep 1 # subscribers and consumer groups settle

start_bg sim "$SIM" --format home --sites 2 --devices 4 --rate 80 --duration "${SECS}s" \
	--time-scale 600 --qos 1 --mqtt "$MQTT_URL" --client-id sim-act --summary "$D/sim.json"
rc=0
wait_bg sim $((SECS + 60)) || rc=$?
check "sensor-sim ran ${SECS}s and exited 0" test "$rc" -eq 0
sent=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["messages"])' "$D/sim.json")
harness_diag "sensor-sim sent $sent readings"

cleaned_all() { [ "$(metric "$cmet" iotpipe_cleaner_readings_total)" = "$sent" ]; }
wait_for "cleaner turned all $sent messages into readings" 60 cleaned_all
processed() { [ "$(metric "$amet" iotpipe_actuator_readings_total)" = "$1" ]; }
wait_for "actuator processed $sent readings" 60 processed "$sent"

# ---- identifiers that cannot go into a topic: no publish, counted ----
now=$(date +%s%3N)
python3 - "$now" >"$D/bad.jsonl" <<'PY'
import json, sys
now = int(sys.argv[1])
def reading(site, device, value, dt):
    return {"site": site, "device": device, "sensor": "temperature", "metric": "temperature",
            "unit": "C", "value": value, "ts": now + dt, "received_at": now + dt,
            "location": None, "device_type": None, "tags": {}}
# Cold readings (below 20 °C): each would switch a heat pump on.
for i, dev in enumerate(["k#1", "#", "a/b", "bad/#", "/"]):
    print(json.dumps(reading("home1", dev, 12.5, i)))
# Then a good one, last in its partition: once it is published, the bad ones were handled.
print(json.dumps(reading("home1", "probe", 12.5, 10)))
PY
check "injected 6 readings into iot.clean" \
	"$CAT" -b "$BOOTSTRAP" -P -t iot.clean -T Reading -k site <"$D/bad.jsonl"
wait_for "actuator processed the injected readings" 30 processed $((sent + 6))
probe_seen() { grep -q '^1 1 home1/probe/heatpump/set {"status":"1"}$' "$D/sub.txt"; }
wait_for "the good injected reading's command reached the broker" 20 probe_seen
check "5 refused readings counted in iotpipe_actuator_refused_total" \
	test "$(metric "$amet" iotpipe_actuator_refused_total)" = 5
check "the refusals are logged with the identifier" \
	grep -q 'device "k#1" contains' "$(harness_log actuator)"

# ---- what left the actuator ----
commands=$(metric "$amet" iotpipe_actuator_commands_total)
subs_have() { [ "$(wc -l <"$D/sub.txt")" -ge "$commands" ]; }
wait_for "mosquitto_sub saw all $commands commands" 20 subs_have
sleep 1 # a command more than counted would arrive now
"$CAT" -b "$BOOTSTRAP" -C -E -t iot.clean -e >"$D/clean.jsonl" 2>"$D/cat-clean.err"
"$CAT" -b "$BOOTSTRAP" -C -E -t iot.commands -e >"$D/commands.jsonl" 2>"$D/cat-cmd.err"
timeout 10 mosquitto_sub -h 127.0.0.1 -p "$MQTT_PORT" -t '+/+/heatpump/set' --retained-only \
	-W 3 -F '%r %t %p' >"$D/retained.txt" 2>/dev/null
harness_diag "$commands commands for $sent readings"

# The model: the rule as documented (docs/actuator.md), applied to iot.clean in partition
# order. Commands must equal its state changes, per topic and in order, on both sides.
check "commands equal the rule's state changes, once each, on broker and in iot.commands" \
	python3 - "$D/clean.jsonl" "$D/commands.jsonl" "$D/sub.txt" "$D/all.txt" "$D/retained.txt" \
	"$D/loop.txt" <<'PY'
import collections, fnmatch, json, sys
clean = [json.loads(l) for l in open(sys.argv[1])]
clean.sort(key=lambda e: (e["partition"], e["offset"]))
want = collections.defaultdict(list)          # topic -> [(payload, value, ts)]
side = {}
for e in clean:
    r = e["value"]
    if r["metric"] != "temperature" or not fnmatch.fnmatchcase(r["site"], "home*"):
        continue
    k = (r["site"], r["device"], r["sensor"])
    v = r["value"]
    s = "low" if v < 20 else "high" if v > 25 else None
    if s is None or side.get(k) == s:
        continue
    if any(c in x for x in (r["site"], r["device"]) for c in "+#/") or not r["device"]:
        continue                                    # refused: no publish, state unchanged
    side[k] = s
    topic = "%s/%s/heatpump/set" % (r["site"], r["device"])
    want[topic].append(('{"status":"1"}' if s == "low" else '{"status":"0"}', v, r["ts"]))

cmds = [json.loads(l) for l in open(sys.argv[2])]
cmds.sort(key=lambda e: (e["partition"], e["offset"]))
got = collections.defaultdict(list)
for e in cmds:
    c = e["value"]
    assert c["rule"] == "home-heating" and c["qos"] == 1 and c["retained"] is True, c
    assert c["side"] == ("low" if c["payload"] == '{"status":"1"}' else "high"), c
    assert e["key"] == c["site"], e
    got[c["topic"]].append((c["payload"], c["value"], c["reading_ts"]))

seen = collections.defaultdict(list)
for line in open(sys.argv[3]):
    retain, qos, topic, payload = line.rstrip("\n").split(" ", 3)
    assert retain == "1" and qos == "1", line
    seen[topic].append(payload)

n = sum(map(len, want.values()))
assert n > 0, "no state change in iot.clean"
for t in sorted(set(want) | set(got) | set(seen)):
    w = want.get(t, [])
    assert got.get(t, []) == w, (t, "iot.commands", got.get(t), w)
    assert seen.get(t, []) == [p for p, _, _ in w], (t, "mosquitto_sub", seen.get(t), w)

# No command anywhere else on the broker (a '/' in an identifier would add levels).
for line in open(sys.argv[4]):
    topic = line.split(" ", 1)[0]
    if "heatpump" in topic:
        assert topic in want, ("unexpected command topic", topic)

# The broker keeps each room's last command.
last = {t: w[-1][0] for t, w in want.items()}
ret = {}
for line in open(sys.argv[5]):
    flag, topic, payload = line.rstrip("\n").split(" ", 2)
    assert flag == "1", line
    ret[topic] = payload
assert ret == last, (ret, last)

# The loop itself: every simulated room went on, warmed past 25 °C and went off, cooled below
# 20 °C and went on again.
rooms = {t: [p for p, _, _ in w] for t, w in want.items() if "/probe/" not in t}
with open(sys.argv[6], "w") as f:
    for t in sorted(rooms):
        print(t, "".join("1" if p.endswith('"1"}') else "0" for p in rooms[t]), file=f)
assert len(rooms) == 8, sorted(rooms)
for t, seq in rooms.items():
    assert len(seq) >= 3 and seq[0] == '{"status":"1"}', (t, seq)
print("%d commands on %d topics" % (n, len(want)))
PY
harness_diag "commands per room (1 = on, 0 = off):"
sed 's/^/#   /' "$D/loop.txt" 2>/dev/null

# Stopped in pipeline order while Kafka is still up, so each can commit.
for p in actuator cleaner ingestor; do
	rc=0
	stop_bg "$p" || rc=$?
	check "$p exits 0 on SIGTERM (LSan-clean)" test "$rc" -eq 0
done
harness_finish
