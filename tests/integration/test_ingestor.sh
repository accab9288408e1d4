#!/usr/bin/env bash
# mqtt-ingestor end to end: 100k QoS 1 messages from sensor-sim through mosquitto land in iot.raw
# exactly once with byte-identical payloads; two ingestors sharing a subscription split the
# stream without duplicates; /metrics is well-formed exposition text.
source "$(dirname "$0")/../lib/harness.sh"
harness_init ingestor
require mosquitto curl python3

N=${INGESTOR_TEST_N:-100000}
start_mosquitto
start_kafka_mock --topic iot.raw:16
ING=$(harness_bin mqtt-ingestor); SIM=$(harness_bin sensor-sim); CAT=$(harness_bin iot-cat)
port=$(free_port)
start_bg ingestor "$ING" -b "$BOOTSTRAP" --mqtt "$MQTT_URL" -t 'sim/#' -t '#' --client-id ing-1 \
	--source north --metrics-port "$port"
wait_for "ingestor ready" 30 curl -fsS "http://127.0.0.1:$port/readyz"

# The same seed and start time give the same messages, so --stdout is the expected content.
sim_flags=(--seed 11 --format mixed --sites 3 --devices 5 --sensors 2 --start-ts 2024-03-01T00:00:00Z
	--step 1s --no-control)
check "sensor-sim published $N QoS 1 messages" \
	"$SIM" "${sim_flags[@]}" --mqtt "$MQTT_URL" --rate 0 --count "$N" --qos 1 --client-id sim-1
wait_for "ingestor forwarded $N" 120 \
	sh -c "[ \"\$(curl -fsS http://127.0.0.1:$port/metrics | awk '/^iotpipe_ingestor_produced_total /{print \$2}')\" = $N ]"

"$CAT" -b "$BOOTSTRAP" -C -t iot.raw -e > "$HARNESS_DIR/raw.jsonl" 2> "$HARNESS_DIR/cat.err"
"$SIM" "${sim_flags[@]}" --stdout --rate 0 --count "$N" > "$HARNESS_DIR/expected.jsonl"
check "iot.raw holds exactly $N records" test "$(wc -l < "$HARNESS_DIR/raw.jsonl")" -eq "$N"
# Compare (topic, payload) multisets: order across partitions is not defined.
python3 - "$HARNESS_DIR/raw.jsonl" "$HARNESS_DIR/expected.jsonl" > "$HARNESS_DIR/cmp.out" <<'PY'
import collections, json, sys
def pairs(path):
    c = collections.Counter()
    for line in open(path):
        r = json.loads(line)
        p = r["payload"]
        c[(r["topic"], json.dumps(p, sort_keys=True))] += 1
    return c
got, want = pairs(sys.argv[1]), pairs(sys.argv[2])
missing = want - got; extra = got - want
print("missing", sum(missing.values()), "extra", sum(extra.values()))
sys.exit(0 if not missing and not extra else 1)
PY
check "payloads byte-identical to what was published ($(cat "$HARNESS_DIR/cmp.out"))" \
	grep -q '^missing 0 extra 0$' "$HARNESS_DIR/cmp.out"
check "records carry source, QoS and receive time" \
	python3 -c "import json,sys; r=json.loads(open(sys.argv[1]).readline()); sys.exit(0 if r['source']=='north' and r['qos']==1 and r['received_at']>0 else 1)" "$HARNESS_DIR/raw.jsonl"

# The exposition text must parse: every sample line is NAME{labels} VALUE with a known TYPE.
curl -fsS "http://127.0.0.1:$port/metrics" > "$HARNESS_DIR/metrics.txt"
check "/metrics is well-formed Prometheus text" python3 - "$HARNESS_DIR/metrics.txt" <<'PY'
import re, sys
types = {}
sample = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{([a-zA-Z_][a-zA-Z0-9_]*="(\\.|[^"\\])*"(,[a-zA-Z_][a-zA-Z0-9_]*="(\\.|[^"\\])*")*)?\})? (-?[0-9.eE+-]+|\+Inf|-Inf|NaN)$')
n = 0
for line in open(sys.argv[1]):
    line = line.rstrip("\n")
    if line.startswith("# TYPE "):
        _, _, name, kind = line.split(" ", 3)
        assert kind in ("counter", "gauge", "histogram", "summary", "untyped"), line
        types[name] = kind
        continue
    if line.startswith("#") or not line:
        continue
    m = sample.match(line)
    assert m, "bad sample line: " + line
    base = re.sub(r'_(bucket|sum|count)$', '', m.group(1))
    assert m.group(1) in types or base in types, "sample without TYPE: " + line
    n += 1
assert n > 10, "too few samples"
PY
rc=0; stop_bg ingestor || rc=$?
check "ingestor exits 0 on SIGTERM (LSan-clean)" test "$rc" -eq 0

# Two replicas on one shared subscription: each message lands once.
start_kafka_mock --name shared --topic iot.raw:8
p1=$(free_port); p2=$(free_port)
start_bg ing-a "$ING" -b "$BOOTSTRAP_SHARED" --mqtt "$MQTT_URL" -t 'share-test/#' --share grp \
	--client-id ing-a --metrics-port "$p1"
start_bg ing-b "$ING" -b "$BOOTSTRAP_SHARED" --mqtt "$MQTT_URL" -t 'share-test/#' --share grp \
	--client-id ing-b --metrics-port "$p2"
wait_for "both replicas ready" 30 sh -c "curl -fsS http://127.0.0.1:$p1/readyz && curl -fsS http://127.0.0.1:$p2/readyz"
for i in $(seq 1 2000); do echo "{\"n\":$i}"; done > "$HARNESS_DIR/share.txt"
mosquitto_pub -p "$MQTT_PORT" -h 127.0.0.1 -q 1 -t share-test/x -l < "$HARNESS_DIR/share.txt"
wait_for "2000 messages forwarded by the pair" 60 sh -c "
	a=\$(curl -fsS http://127.0.0.1:$p1/metrics | awk '/^iotpipe_ingestor_produced_total /{print \$2}')
	b=\$(curl -fsS http://127.0.0.1:$p2/metrics | awk '/^iotpipe_ingestor_produced_total /{print \$2}')
	[ \$((a + b)) -ge 2000 ]"
"$CAT" -b "$BOOTSTRAP_SHARED" -C -t iot.raw -e > "$HARNESS_DIR/shared.jsonl" 2>/dev/null
a=$(metric "http://127.0.0.1:$p1/metrics" iotpipe_ingestor_produced_total)
b=$(metric "http://127.0.0.1:$p2/metrics" iotpipe_ingestor_produced_total)
check "shared subscription: 2000 records, none twice (replicas took $a and $b)" \
	test "$(python3 -c "import json,sys; print(len({json.loads(l)['payload'] for l in open(sys.argv[1])}))" "$HARNESS_DIR/shared.jsonl")" -eq 2000 -a "$(wc -l < "$HARNESS_DIR/shared.jsonl")" -eq 2000
check "both replicas took a share" test "${a%.*}" -gt 0 -a "${b%.*}" -gt 0
harness_finish
