#!/usr/bin/env bash
# Actuator benchmark (release build, make): readings per second through the actuator at DEVICES
# devices, and command latency from a reading's received_at to the command's arrival at an MQTT
# subscriber. Prints a table and writes bench/results/actuator-<date>.txt.
#
#   bench/actuator.sh [DEVICES]        (default 10000)
#
# 1. Throughput: DEVICES x 50 Readings waiting in iot.clean (32 partitions); the actuator reads
#    them with the example rules, once publishing its commands to mosquitto (QoS 1, retained)
#    and once recording them only (no --mqtt). Every device's temperature swings between 18.5
#    and 26.5 °C with a 40-reading period, so a heat pump changes state about every 20 readings
#    (the table gives the count).
# 2. Latency, actuator hop: the same kind of readings produced live (2 000/s for 20 s) with
#    received_at = the moment they are written to iot-cat -P; a mosquitto_sub's arrival time of
#    each command minus its reading's received_at.
# 3. Latency, whole loop: sensor-sim (DEVICES rooms starting cold, 2 000 msg/s for 20 s,
#    --time-scale 60 so they warm and are switched off within the run) -> mosquitto ->
#    mqtt-ingestor -> cleaner -> actuator -> mosquitto_sub; received_at is the ingestor's.
# Latencies count the commands of readings received from 2 s into a run on (the first fetches
# and connections are slower), and are measured twice: with the consumers' defaults, and with
# -X fetch.wait.max.ms=10, because kafka-mock holds a fetch that found nothing for the whole
# fetch.wait.max.ms (500 ms) even when records arrive meanwhile; a real broker answers as soon
# as they do.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 1
source tests/lib/harness.sh
harness_init bench_actuator
export IOTPIPE_BIN=bin
require mosquitto mosquitto_sub python3 curl
DEVICES=${1:-10000}
ROUNDS=50
LIVE_RATE=2000
LIVE_SECS=20
WARMUP_MS=2000 # latencies count from 2 s into a run: first fetches and connections are slower
ACT=$(harness_bin actuator) || exit 1
CAT=$(harness_bin iot-cat) || exit 1
SIM=$(harness_bin sensor-sim) || exit 1
ING=$(harness_bin mqtt-ingestor) || exit 1
CLEANER=$(harness_bin cleaner) || exit 1
RULES=examples/rules/actuator.rules
D=$HARNESS_DIR
SITES=100
[ "$DEVICES" -lt 100 ] && SITES=1
PER_SITE=$((DEVICES / SITES))
DEVICES=$((SITES * PER_SITE))
N=$((DEVICES * ROUNDS))
rows=()

cat >"$D/gen.py" <<'EOF'
# Readings of SITES x PER_SITE rooms, round after round. Without a rate: back-dated event times,
# as fast as possible. With one: paced, received_at = ts = the wall clock when written.
import math, sys, time
sites, per_site, rounds = map(int, sys.argv[1:4])
rate = float(sys.argv[4]) if len(sys.argv) > 4 else 0
line = ('{"site":"home%d","device":"room%d","sensor":"t","metric":"temperature","unit":"C",'
        '"value":%.3f,"ts":%d,"received_at":%d,"location":null,"device_type":null,"tags":{}}\n')
out, n, start = sys.stdout, 0, time.time()
ts = 1704067200000
for i in range(rounds):
    for s in range(sites):
        for d in range(per_site):
            j = s * per_site + d
            v = 22.5 + 4.0 * math.sin(2 * math.pi * (i + j) / 40)
            if rate and n % 10 == 0:
                due = start + n / rate
                if due > time.time():
                    time.sleep(due - time.time())
                out.flush()
                ts = int(time.time() * 1000)
            elif not rate:
                ts = 1704067200000 + i * 1000 + j % 1000
            out.write(line % (s, d, v, ts, ts))
            n += 1
out.flush()
EOF

cat >"$D/latency.py" <<'EOF'
# latency.py FROM_MS SUB COMMANDS [CLEAN]: pairs the k-th command on a topic in iot.commands with
# the k-th live (not retained) message mosquitto_sub saw on it; prints n p50 p99 max in ms over
# the commands whose reading was received at or after FROM_MS. received_at is the reading's
# (from CLEAN when given, by identity; else reading_ts, which the live generator sets equal).
import collections, json, sys
since = int(sys.argv[1])
seen = collections.defaultdict(list)
for l in open(sys.argv[2]):
    retained, t, topic, _ = l.split(" ", 3)
    if retained == "0":
        seen[topic].append(float(t) * 1000)
recv = {}
if len(sys.argv) > 4:
    for l in open(sys.argv[4]):
        r = json.loads(l)
        recv[(r["site"], r["device"], r["sensor"], r["ts"])] = r["received_at"]
cmds = collections.defaultdict(list)
for l in open(sys.argv[3]):
    e = json.loads(l)
    c = e["value"]
    ra = recv.get((c["site"], c["device"], c["sensor"], c["reading_ts"]), c["reading_ts"])
    cmds[c["topic"]].append((e["partition"], e["offset"], ra))
lat = []
for topic, cs in cmds.items():
    cs.sort()
    for (_, _, ra), arrived in zip(cs, seen.get(topic, [])):
        if ra >= since:
            lat.append(arrived - ra)
lat.sort()
if not lat:
    print("0 - - -")
    sys.exit(1)
pct = lambda p: lat[min(len(lat) - 1, int(p * len(lat)))]
print("%d %.1f %.1f %.1f" % (len(lat), pct(0.50), pct(0.99), lat[-1]))
EOF

start_mosquitto || exit 1
start_kafka_mock --topic iot.clean:32 --topic iot.live.live:32 --topic iot.live.live10:32 \
	--topic iot.raw.e2e:16 --topic iot.clean.e2e:16 --topic iot.raw.e2e10:16 \
	--topic iot.clean.e2e10:16 || exit 1
port=$(free_port)
murl="http://127.0.0.1:$port/metrics"
now() { date +%s.%N; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
readings() { metric "$murl" iotpipe_actuator_readings_total 2>/dev/null || echo 0; }

# ---- 1. throughput ----
t0=$(now)
python3 "$D/gen.py" "$SITES" "$PER_SITE" "$ROUNDS" |
	"$CAT" -b "$BOOTSTRAP" -P -t iot.clean -T Reading -k site 2>"$D/produce.err" ||
	harness_die "producing the readings failed: $(tail -n 3 "$D/produce.err")"
harness_diag "$N readings in iot.clean ($(printf %.1f "$(echo "$(now) - $t0" | bc -l)") s)"
for mode in mqtt record; do
	flags=()
	[ $mode = mqtt ] && flags=(--mqtt "$MQTT_URL" --client-id "bench-$mode")
	start_bg "act-$mode" "$ACT" -b "$BOOTSTRAP" --rules "$RULES" -g "bench-$mode" \
		--out "iot.commands.$mode" --events "iot.events.$mode" --metrics-port "$port" \
		--log-level warn "${flags[@]}"
	pid=$BG_PID
	# From the first reading processed to the last: group join and start-up not counted.
	r0=0
	until [ "${r0%.*}" -gt 0 ]; do
		r0=$(readings)
		bg_alive "act-$mode" || harness_die "actuator ($mode) exited: $(tail -n 5 "$(harness_log "act-$mode")")"
		sleep 0.01
	done
	t0=$(now)
	c0=$(cpu_ticks "$pid")
	deadline=$((SECONDS + 300))
	while [ "$(readings)" != "$N" ] && [ $SECONDS -lt $deadline ]; do sleep 0.05; done
	t1=$(now)
	c1=$(cpu_ticks "$pid")
	[ "$(readings)" = "$N" ] || harness_die "actuator ($mode) did not process $N readings in 300 s"
	cmds=$(metric "$murl" iotpipe_actuator_commands_total)
	hwm=$(awk '/VmHWM/{print $2}' "/proc/$pid/status")
	rate=$(echo "($N - $r0) / ($t1 - $t0)" | bc -l)
	us=$(echo "($c1 - $c0) * 10000 / ($N - $r0)" | bc -l)
	what="readings/s, commands published (QoS 1)"
	[ $mode = record ] && what="readings/s, commands recorded only"
	rows+=("$what|$(printf %.0f "$rate")|CPU $(printf %.1f "$us") us/reading, $cmds commands, peak RSS $((hwm / 1024)) MiB")
	stop_bg "act-$mode" >/dev/null || harness_diag "actuator ($mode) did not exit 0"
done

# ---- 2. latency through the actuator ----
# commands_sub NAME: records every command the broker passes on, with its arrival time (%U) and
# whether it is a retained one from an earlier run (%r = 1), in $D/sub-NAME.txt.
commands_sub() {
	start_bg --stdout "$D/sub-$1.txt" "sub-$1" mosquitto_sub -h 127.0.0.1 -p "$MQTT_PORT" -q 1 \
		-F '%r %U %t %p' -t '+/+/heatpump/set'
}
# live_hop NAME [FLAGS...]: readings produced live into iot.live.NAME, commands timed at a
# subscriber. FLAGS go to the actuator.
live_hop() {
	local name=$1 nl rounds cmds n p50 p99 max since
	shift
	commands_sub "$name"
	start_bg "act-$name" "$ACT" -b "$BOOTSTRAP" --rules "$RULES" -g "bench-$name" \
		--in "iot.live.$name" --out "iot.commands.$name" --events "iot.events.$name" \
		--metrics-port "$port" --mqtt "$MQTT_URL" --client-id "bench-$name" "$@"
	wait_for "actuator ($name) assigned its partitions" 30 grep -q "assigned iot.live.$name" \
		"$(harness_log "act-$name")" || return 1
	rounds=$((LIVE_RATE * LIVE_SECS / DEVICES))
	[ "$rounds" -ge 1 ] || rounds=1
	nl=$((rounds * DEVICES))
	since=$(($(date +%s%3N) + WARMUP_MS))
	python3 "$D/gen.py" "$SITES" "$PER_SITE" "$rounds" "$LIVE_RATE" |
		"$CAT" -b "$BOOTSTRAP" -P -t "iot.live.$name" -T Reading -k site 2>"$D/live-$name.err"
	wait_for "actuator ($name) processed $nl readings" 60 processed "$nl" || return 1
	cmds=$(metric "$murl" iotpipe_actuator_commands_total)
	wait_for "subscriber saw $cmds live commands" 30 live_seen "$D/sub-$name.txt" "$cmds" ||
		return 1
	"$CAT" -b "$BOOTSTRAP" -C -E -t "iot.commands.$name" -e >"$D/cmds-$name.jsonl" 2>/dev/null
	read -r n p50 p99 max < <(python3 "$D/latency.py" "$since" "$D/sub-$name.txt" \
		"$D/cmds-$name.jsonl")
	rows+=("latency ms, iot.clean -> actuator -> subscriber${*:+ ($*)}|$p50|p99 $p99, max $max; $n commands, $LIVE_RATE readings/s")
	stop_bg "act-$name" >/dev/null
	stop_bg "sub-$name" >/dev/null
}
processed() { [ "$(readings)" = "$1" ]; }
live_seen() { [ "$(grep -c '^0 ' "$1")" -ge "$2" ]; }

# ---- 3. latency of the whole loop ----
# loop_e2e NAME [FLAGS...]: sensor-sim -> ingestor -> cleaner -> actuator; FLAGS go to the
# cleaner and the actuator (the two Kafka consumers on the way).
loop_e2e() {
	local name=$1 sent cmds n p50 p99 max p since
	shift
	commands_sub "$name"
	start_bg "ing-$name" "$ING" -b "$BOOTSTRAP" --mqtt "$MQTT_URL" -t '+/+/temperature' \
		--out "iot.raw.$name" --client-id "bench-ing-$name" --session-expiry 0
	start_bg "cleaner-$name" "$CLEANER" -b "$BOOTSTRAP" --in "iot.raw.$name" \
		--out "iot.clean.$name" --rejected "iot.rejected.$name" -g "bench-cleaner-$name" "$@"
	start_bg "act-$name" "$ACT" -b "$BOOTSTRAP" --rules "$RULES" -g "bench-$name" \
		--in "iot.clean.$name" --out "iot.commands.$name" --events "iot.events.$name" \
		--metrics-port "$port" --mqtt "$MQTT_URL" --client-id "bench-$name" "$@"
	wait_for "ingestor ($name) subscribed" 30 grep -q 'subscribed to' \
		"$(harness_log "ing-$name")" || return 1
	wait_for "actuator ($name) assigned its partitions" 30 grep -q "assigned iot.clean.$name" \
		"$(harness_log "act-$name")" || return 1
	wait_for "cleaner ($name) assigned its partitions" 30 grep -q "assigned iot.raw.$name" \
		"$(harness_log "cleaner-$name")" || return 1
	since=$(($(date +%s%3N) + WARMUP_MS))
	if ! "$SIM" --format home --sites "$SITES" --devices "$PER_SITE" --rate "$LIVE_RATE" \
		--duration "${LIVE_SECS}s" --time-scale 60 --qos 1 --mqtt "$MQTT_URL" \
		--client-id "bench-sim-$name" --summary "$D/sim-$name.json" >"$D/sim-$name.log" 2>&1; then
		fail "sensor-sim ($name): $(tail -n 3 "$D/sim-$name.log")"
		return 1
	fi
	sent=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["messages"])' \
		"$D/sim-$name.json")
	wait_for "actuator ($name) processed $sent readings" 60 processed "$sent" || return 1
	cmds=$(metric "$murl" iotpipe_actuator_commands_total)
	wait_for "subscriber saw $cmds commands" 30 live_seen "$D/sub-$name.txt" "$cmds" || return 1
	"$CAT" -b "$BOOTSTRAP" -C -E -t "iot.commands.$name" -e >"$D/cmds-$name.jsonl" 2>/dev/null
	"$CAT" -b "$BOOTSTRAP" -C -t "iot.clean.$name" -e >"$D/clean-$name.jsonl" 2>/dev/null
	read -r n p50 p99 max < <(python3 "$D/latency.py" "$since" "$D/sub-$name.txt" \
		"$D/cmds-$name.jsonl" "$D/clean-$name.jsonl")
	rows+=("latency ms, ingestor -> cleaner -> actuator -> subscriber${*:+ ($*)}|$p50|p99 $p99, max $max; $n commands, $LIVE_RATE msg/s")
	for p in "act-$name" "cleaner-$name" "ing-$name" "sub-$name"; do stop_bg "$p" >/dev/null; done
}

# As configured by default, and with consumers that poll kafka-mock every 10 ms: the mock
# answers an empty fetch only after fetch.wait.max.ms (500 ms), even when records arrive
# meanwhile, which a real broker does not.
live_hop live
live_hop live10 -X fetch.wait.max.ms=10
loop_e2e e2e
loop_e2e e2e10 -X fetch.wait.max.ms=10

mkdir -p bench/results
out="bench/results/actuator-$(date -u +%Y-%m-%d).txt"
{
	echo "actuator, $DEVICES devices ($SITES sites), examples/rules/actuator.rules, $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), $(date -u +%FT%TZ)"
	echo "command: bench/actuator.sh $DEVICES"
	for row in "${rows[@]}"; do
		IFS='|' read -r a b c <<<"$row"
		printf '%-88s %10s   %s\n' "$a" "$b" "$c"
	done
} | tee "$out"
harness_diag "written to $out"
harness_finish
