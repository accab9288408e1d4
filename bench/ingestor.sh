#!/usr/bin/env bash
# Ingestion benchmark: the broker's ceiling (mosquitto_sub > /dev/null), mosquitto_sub | kcat -P,
# a Python paho + confluent-kafka ingestor, and mqtt-ingestor, each fed the same N QoS 1 messages
# by sensor-sim on this machine. Prints a table and writes bench/results/ingestor-<date>.txt.
# Release binaries (make). Usage: bench/ingestor.sh [N]
set -uo pipefail
cd "$(dirname "$0")/.."
source tests/lib/harness.sh
harness_init bench_ingestor
export IOTPIPE_BIN=bin
N=${1:-200000}
SIM=$(harness_bin sensor-sim); ING=$(harness_bin mqtt-ingestor)
start_mosquitto
start_kafka_mock --topic iot.raw:16 --topic bench.pipe:16 --topic bench.py:16
sim() { "$SIM" --seed 1 --format home --sites 10 --devices 10 --sensors 1 --no-control \
	--mqtt "$MQTT_URL" --rate 0 --count "$N" --qos 1 --client-id "bench-pub-$1" >/dev/null 2>&1; }
now() { date +%s.%N; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
rows=()

# 1. The broker's ceiling.
start_bg sub mosquitto_sub -h 127.0.0.1 -p "$MQTT_PORT" -t '#' -q 1 -C "$N"
sleep 0.5
t0=$(now); sim ceiling; wait_bg sub 300 >/dev/null; t1=$(now)
ceiling=$(echo "$N / ($t1 - $t0)" | bc -l)
rows+=("mosquitto_sub > /dev/null (broker ceiling)|$(printf %.0f "$ceiling")|-|-")

# 2. mosquitto_sub | kcat -P.
start_bg pipe sh -c "mosquitto_sub -h 127.0.0.1 -p $MQTT_PORT -t '#' -q 1 -C $N | kcat -P -b $BOOTSTRAP -t bench.pipe -X linger.ms=5"
sleep 0.5
pids=$(pgrep -g "$(harness_pid_of pipe)" | tr '\n' ' ')
t0=$(now); sim pipe; wait_bg pipe 300 >/dev/null; t1=$(now)
r=$(echo "$N / ($t1 - $t0)" | bc -l)
rows+=("mosquitto_sub piped into kcat -P|$(printf %.0f "$r")|-|-")

# 3. Python paho + confluent-kafka.
if /usr/bin/python3 -c 'import paho.mqtt.client, confluent_kafka' 2>/dev/null; then
	start_bg py /usr/bin/python3 bench/peers/py_ingestor.py 127.0.0.1 "$MQTT_PORT" "$BOOTSTRAP" bench.py "$N"
	pypid=$BG_PID
	wait_for "python ingestor ready" 20 grep -q ready "$(harness_log py)"
	c0=$(cpu_ticks "$pypid"); t0=$(now); sim py
	hwm=0
	while bg_alive py; do
		h=$(awk '/VmHWM/{print $2}' "/proc/$pypid/status" 2>/dev/null || echo 0)
		[ "${h:-0}" -gt "$hwm" ] && hwm=$h
		c1=$(cpu_ticks "$pypid"); sleep 0.2
	done
	t1=$(now)
	r=$(echo "$N / ($t1 - $t0)" | bc -l)
	us=$(echo "($c1 - $c0) * 10000 / $N" | bc -l)
	rows+=("python paho + confluent-kafka|$(printf %.0f "$r")|$(printf %.1f "$us")|$((hwm / 1024))")
fi

# 4. mqtt-ingestor (Avro RawMessage records, keyed by topic).
port=$(free_port)
start_bg ing "$ING" -b "$BOOTSTRAP" --mqtt "$MQTT_URL" -t '#' --client-id bench-ing --metrics-port "$port"
ingpid=$BG_PID
wait_for "ingestor ready" 30 curl -fsS "http://127.0.0.1:$port/readyz"
c0=$(cpu_ticks "$ingpid"); t0=$(now); sim ing
while :; do
	v=$(metric "http://127.0.0.1:$port/metrics" iotpipe_ingestor_produced_total || echo 0)
	[ "${v%.*}" -ge "$N" ] && break
	sleep 0.05
done
t1=$(now); c1=$(cpu_ticks "$ingpid")
hwm=$(awk '/VmHWM/{print $2}' "/proc/$ingpid/status")
r=$(echo "$N / ($t1 - $t0)" | bc -l)
us=$(echo "($c1 - $c0) * 10000 / $N" | bc -l)
rows+=("mqtt-ingestor|$(printf %.0f "$r")|$(printf %.1f "$us")|$((hwm / 1024))")
stop_bg ing >/dev/null

out="bench/results/ingestor-$(date -u +%Y-%m-%d).txt"
{
	echo "ingestion, $N QoS 1 messages (sensor-sim --format home), $(nproc) cores, $(date -u +%FT%TZ)"
	printf '%-42s %12s %14s %12s\n' "pipeline" "msgs/s" "CPU us/msg" "peak RSS MiB"
	for row in "${rows[@]}"; do
		IFS='|' read -r a b c d <<<"$row"
		printf '%-42s %12s %14s %12s\n' "$a" "$b" "$c" "$d"
	done
	echo "mqtt-ingestor vs broker ceiling: $(echo "100 * $r / $ceiling" | bc -l | xargs printf %.0f)%"
} | tee "$out"
harness_finish
