#!/usr/bin/env bash
# aggregator throughput and memory, Kafka -> aggregator -> Kafka, next to the plain copy ceiling
# on the same records in the same run:
#
#   kcat -C | kcat -P   the Reading records of iot.clean copied byte for byte (keys kept) into
#                       another topic: what a consume -> produce pair costs with no work at all
#   aggregator          iot.clean -> Aggregate records, 1-minute tumbling windows (grace 5 s),
#                       its own consumer group each run, at-least-once (aggregates acknowledged
#                       before offsets and window metadata are committed, every second as
#                       deployed)
#
# Input: 10 000 distinct series (1000 sites x 2 devices x 5 sensors, keyed by site over 64
# partitions), one reading per series per second of event time for BENCH_SECONDS (default 90)
# seconds from a minute boundary, in time order: 900 000 records by default. Every minute's
# 10 000 windows close and are emitted during the run except the last one's, which stays open
# (the aggregator holds 20 000 windows at its peak, during the grace).
#
# Timing: kcat from its start to the exit of both ends; aggregator from its first record read
# (its metrics) until it exited after SIGTERM, which comes once it has read every record and
# includes the last checkpoint and leaving the group. The group join before the first record is
# not counted (the embedded Kafka delays a new group's first assignment by about 3 s). CPU is
# user + system time of the measured processes (both kcats; the aggregator with all its
# threads, group join included), per input record. Peak RSS is the aggregator's maximum
# resident set, and the sum of both kcats'.
#
# With BENCH_PIN=1 (the default) the measured processes run on CPU 0 and kafka-mock on CPU 1,
# so records/s is what one core does; BENCH_PIN=0 lets the scheduler place everything.
#
#   make && bench/aggregator.sh                        # 900k records, 3 runs of each
#   BENCH_SECONDS=70 BENCH_REPEAT=1 bench/aggregator.sh
#   BENCH_AGG_ARGS='-X queued.min.messages=20000' bench/aggregator.sh   # extra aggregator flags
#
# Release binaries (bin/, BENCH_BIN to change); kcat from the system. Prints a table and writes
# bench/results/aggregator-<date>.txt.
set -uo pipefail
cd "$(dirname "$0")/.."
source tests/lib/harness.sh
source bench/stats.sh
harness_init bench_aggregator
export IOTPIPE_BIN=${BENCH_BIN:-bin}
require kcat curl bc taskset python3
SECS=${BENCH_SECONDS:-90}
REPEAT=${BENCH_REPEAT:-3}
PIN=${BENCH_PIN:-1}
PARTS=64
SERIES=10000
N=$((SERIES * SECS))
# Windows closed by the end: those ending at or before the last event time minus the grace.
CLOSED=$((SERIES * (((SECS - 1) * 1000 + 999 - 5000) / 60000)))
D=$HARNESS_DIR
CAT=$(harness_bin iot-cat) || exit 1
AGG=$(harness_bin aggregator) || exit 1
[ "$(nproc)" -ge 2 ] || PIN=0
[ "$SECS" -ge 66 ] || { echo "bench: BENCH_SECONDS must be at least 66 (the first minute must close)" >&2; exit 2; }

topics=(--topic "iot.clean:$PARTS")
for ((r = 1; r <= REPEAT; r++)); do
	topics+=(--topic "copy.$r:$PARTS" --topic "agg.$r:$PARTS")
done
start_kafka_mock "${topics[@]}" || exit 1
[ "$PIN" = 1 ] && taskset -a -p -c 1 "$KAFKA_MOCK_PID" >/dev/null
on_core() { if [ "$PIN" = 1 ]; then taskset -c 0 "$@"; else "$@"; fi; }

python3 - "$SECS" >"$D/readings.jsonl" <<'PY'
import random, sys
secs = int(sys.argv[1])
t0 = 1704067200000  # 2024-01-01T00:00:00Z, a minute boundary
rnd = random.Random(1)
series = [("s%03d" % s, "d%d" % d, "k%d" % k) for s in range(1000) for d in range(2)
          for k in range(5)]
base = [15 + rnd.random() * 10 for _ in series]
out = sys.stdout
for t in range(secs):
    for i, (site, dev, sen) in enumerate(series):
        ts = t0 + t * 1000 + i % 1000
        out.write('{"site":"%s","device":"%s","sensor":"%s","metric":"temperature",'
                  '"unit":"C","value":%.3f,"ts":%d,"received_at":%d,"location":null,'
                  '"device_type":null,"tags":{}}\n'
                  % (site, dev, sen, base[i] + rnd.random(), ts, ts))
PY
"$CAT" -b "$BOOTSTRAP" -P -t iot.clean -T Reading -k site <"$D/readings.jsonl" 2>"$D/feed.log" ||
	{ echo "bench: feeding iot.clean failed" >&2; exit 1; }
bytes=$(kcat -C -b "$BOOTSTRAP" -t iot.clean -o beginning -e -q -f '%S\n' | awk '{s += $1} END {print s}')
harness_diag "$N Reading records in iot.clean ($((bytes / N)) bytes of Avro each on average)"

now() { date +%s.%N; }
# Delimiters for kcat that never occur in these records (checked by counting the copy).
DL='\x1e\x1f\x1d\x1c\x1b\x1a'
KD='\x1c\x1d\x1f\x1e\x1b\x1a'

declare -A RATES=() CPUS=() RSS=()
run_copy() { # run_copy R
	local t0 t1 n
	t0=$(now)
	on_core /usr/bin/time -o "$D/copy-c.$1" -f '%U %S %M' kcat -C -b "$BOOTSTRAP" \
		-t iot.clean -o beginning -e -q -D "$DL" -K "$KD" |
		on_core /usr/bin/time -o "$D/copy-p.$1" -f '%U %S %M' kcat -P -b "$BOOTSTRAP" \
			-t "copy.$1" -D "$DL" -K "$KD"
	t1=$(now)
	n=$(kcat -C -b "$BOOTSTRAP" -t "copy.$1" -o beginning -e -q -f 'x\n' | wc -l)
	[ "$n" = "$N" ] || { echo "bench: the copy holds $n records, not $N" >&2; exit 1; }
	RATES[copy]+=" $(echo "$N / ($t1 - $t0)" | bc -l)"
	CPUS[copy]+=" $(cat "$D/copy-c.$1" "$D/copy-p.$1" |
		awk -v n="$N" '{c += $1 + $2} END {printf "%.4f", c * 1000000 / n}')"
	RSS[copy]+=" $(cat "$D/copy-c.$1" "$D/copy-p.$1" | awk '{m += $3} END {print m}')"
}

run_aggregator() { # run_aggregator R
	local port url t0= tdone t1 v deadline n pid pin=()
	port=$(free_port)
	url="http://127.0.0.1:$port/metrics"
	[ "$PIN" = 1 ] && pin=(taskset -c 0)
	# /usr/bin/time reports the CPU of the whole process (every thread) when it exits.
	start_bg "aggregator$1" /usr/bin/time -o "$D/agg.$1" -f '%U %S %M' "${pin[@]}" "$AGG" \
		-b "$BOOTSTRAP" --group "bench-$1" --out "agg.$1" --late drop --window 1m \
		--grace 5s --metrics-port "$port" --log-level warn ${BENCH_AGG_ARGS:-}
	deadline=$((SECONDS + 300))
	while [ $SECONDS -lt $deadline ]; do
		v=$(curl -fsS --max-time 2 "$url" 2>/dev/null |
			awk '/^iotpipe_aggregator_readings_total/ {s += $2} END {printf "%d\n", s}')
		[ -z "$t0" ] && [ "${v:-0}" -gt 0 ] && t0=$(now)
		[ "${v:-0}" -ge "$N" ] && break
		sleep 0.01
	done
	[ -n "$t0" ] && [ "${v:-0}" -ge "$N" ] || { echo "bench: the aggregator did not finish" >&2; exit 1; }
	tdone=$(now)
	# SIGTERM to the aggregator alone: time must outlive it to write its report.
	pid=$(pgrep -P "$(harness_pid_of "aggregator$1")")
	kill -TERM "$pid"
	wait_bg "aggregator$1" 60 || { echo "bench: the aggregator did not stop cleanly" >&2; exit 1; }
	t1=$(now)
	harness_diag "aggregator run $1: read all in $(echo "$tdone - $t0" | bc) s, stopped $(echo "$t1 - $tdone" | bc) s later"
	n=$(kcat -C -b "$BOOTSTRAP" -t "agg.$1" -o beginning -e -q -f 'x\n' | wc -l)
	[ "$n" = "$CLOSED" ] || { echo "bench: agg.$1 holds $n aggregates, not $CLOSED" >&2; exit 1; }
	RATES[aggregator]+=" $(echo "$N / ($t1 - $t0)" | bc -l)"
	CPUS[aggregator]+=" $(awk -v n="$N" '{printf "%.4f", ($1 + $2) * 1000000 / n}' "$D/agg.$1")"
	RSS[aggregator]+=" $(awk '{print $3}' "$D/agg.$1")"
}

LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
for ((r = 1; r <= REPEAT; r++)); do
	run_copy "$r"
	run_aggregator "$r"
	harness_diag "run $r: copy $(printf %.0f "${RATES[copy]##* }")/s, aggregator $(printf %.0f "${RATES[aggregator]##* }")/s, ${CPUS[aggregator]##* } us CPU/record, ${RSS[aggregator]##* } KiB peak RSS"
done

best() { highest "$1"; }
low() { lowest "$1"; }
copy_best=$(best "${RATES[copy]}")
out="bench/results/aggregator-$(date -u +%Y-%m-%d).txt"
mkdir -p bench/results
{
	printf 'Kafka -> aggregator -> Kafka, %s Reading records of %s series (1-minute windows, %s aggregates out), %s runs, %s\n' \
		"$N" "$SERIES" "$CLOSED" "$REPEAT" "$(date -u +%FT%TZ)"
	[ -z "${BENCH_AGG_ARGS:-}" ] || printf 'aggregator run with %s\n' "$BENCH_AGG_ARGS"
	printf '%s cores; %s; load average before: %s, after: %s\n' "$(nproc)" \
		"$([ "$PIN" = 1 ] && echo 'measured processes on CPU 0, kafka-mock on CPU 1' || echo 'not pinned')" \
		"$LOAD0" "$(cut -d' ' -f1-3 /proc/loadavg)"
	printf '%-34s %12s %12s %15s %13s %8s\n' pipeline "rec/s best" "rec/s median" \
		"CPU us/rec best" "peak RSS MiB" "vs copy"
	for m in copy aggregator; do
		name=$([ $m = copy ] && echo "kcat -C | kcat -P (plain copy)" || echo "aggregator (Reading -> Aggregate)")
		printf '%-34s %12.0f %12.0f %15.2f %13.1f %7.0f%%\n' "$name" "$(best "${RATES[$m]}")" \
			"$(median "${RATES[$m]}")" "$(low "${CPUS[$m]}")" \
			"$(echo "$(best "${RSS[$m]}") / 1024" | bc -l)" \
			"$(echo "100 * $(best "${RATES[$m]}") / $copy_best" | bc -l)"
	done
	printf 'aggregator, one core at its CPU cost: %.0f records/s; peak RSS over the runs: %s KiB\n' \
		"$(echo "1000000 / $(low "${CPUS[aggregator]}")" | bc -l)" "$(best "${RSS[aggregator]}")"
} | tee "$out"
harness_finish
