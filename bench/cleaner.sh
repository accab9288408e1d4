#!/usr/bin/env bash
# cleaner throughput, Kafka -> cleaner -> Kafka, next to the plain copy ceiling on the same records
# in the same run:
#
#   kcat -C | kcat -P   the RawMessage records of iot.raw copied byte for byte (keys kept) into
#                       another topic: what a consume -> produce pair costs with no work at all
#   cleaner             iot.raw -> Reading records in iot.clean (+ Rejected in iot.rejected), its
#                       own consumer group each run, at-least-once (outputs acknowledged before
#                       offsets are committed, checkpoints every second as deployed)
#
# Timing: kcat from its start to the exit of both ends; cleaner from its first record read
# (its metrics) until it exited after SIGTERM, which comes once it has cleaned every record
# and includes the last checkpoint (outputs acknowledged, offsets committed) and leaving the
# group. The group join before the first record is not counted (the embedded Kafka delays a new
# group's first assignment by about 3 s). CPU is user + system time of the measured processes
# (both kcats; the cleaner with all its threads), per input record.
#
# With BENCH_PIN=1 (the default) the measured processes run on CPU 0 and kafka-mock on CPU 1,
# so records/s is what one core does; BENCH_PIN=0 lets the scheduler place everything.
#
#   make && bench/cleaner.sh                       # 200k records, 3 runs of each
#   BENCH_N=100000 BENCH_REPEAT=1 bench/cleaner.sh
#
# Input: sensor-sim --stdout, every format of the mixed profile, 5% invalid messages (a batch
# becomes several readings, an invalid message one Rejected record). Release binaries (bin/,
# BENCH_BIN to change); kcat from the system. Prints a table and writes
# bench/results/cleaner-<date>.txt.
set -uo pipefail
cd "$(dirname "$0")/.."
source tests/lib/harness.sh
source bench/stats.sh
harness_init bench_cleaner
export IOTPIPE_BIN=${BENCH_BIN:-bin}
require kcat curl bc taskset
N=${BENCH_N:-200000}
REPEAT=${BENCH_REPEAT:-3}
PIN=${BENCH_PIN:-1}
PARTS=32
D=$HARNESS_DIR
SIM=$(harness_bin sensor-sim) || exit 1
CAT=$(harness_bin iot-cat) || exit 1
CLEANER=$(harness_bin cleaner) || exit 1
[ "$(nproc)" -ge 2 ] || PIN=0

topics=(--topic "iot.raw:$PARTS")
for ((r = 1; r <= REPEAT; r++)); do
	topics+=(--topic "copy.$r:$PARTS" --topic "clean.$r:$PARTS" --topic "rejected.$r:8")
done
start_kafka_mock "${topics[@]}" || exit 1
[ "$PIN" = 1 ] && taskset -a -p -c 1 "$KAFKA_MOCK_PID" >/dev/null
on_core() { if [ "$PIN" = 1 ]; then taskset -c 0 "$@"; else "$@"; fi; }

"$SIM" --stdout --rate 0 --count "$N" --seed 1 --format mixed --sites 20 --devices 5 \
	--sensors 2 --invalid 0.05 --start-ts 2024-01-01T00:00:00Z --no-control \
	--summary "$D/summary.json" >"$D/raw.jsonl" 2>"$D/sim.log" || exit 1
"$CAT" -b "$BOOTSTRAP" -P -t iot.raw -T RawMessage -k topic <"$D/raw.jsonl" 2>"$D/feed.log" ||
	{ echo "bench: feeding iot.raw failed" >&2; exit 1; }
readings=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["valid_readings"])' \
	"$D/summary.json")
bytes=$(kcat -C -b "$BOOTSTRAP" -t iot.raw -o beginning -e -q -f '%S\n' | awk '{s += $1} END {print s}')
harness_diag "$N raw records in iot.raw ($((bytes / N)) bytes of Avro each on average)"

now() { date +%s.%N; }
cpu_of() { awk '{print $1 + $2}' "$1"; } # /usr/bin/time -f '%U %S' output
# Delimiters for kcat that never occur in these records (checked by counting the copy).
DL='\x1e\x1f\x1d\x1c\x1b\x1a'
KD='\x1c\x1d\x1f\x1e\x1b\x1a'

declare -A RATES=() CPUS=()
run_copy() { # run_copy R
	local t0 t1 n
	t0=$(now)
	on_core /usr/bin/time -o "$D/copy-c.$1" -f '%U %S' kcat -C -b "$BOOTSTRAP" -t iot.raw \
		-o beginning -e -q -D "$DL" -K "$KD" |
		on_core /usr/bin/time -o "$D/copy-p.$1" -f '%U %S' kcat -P -b "$BOOTSTRAP" \
			-t "copy.$1" -D "$DL" -K "$KD"
	t1=$(now)
	n=$(kcat -C -b "$BOOTSTRAP" -t "copy.$1" -o beginning -e -q -f 'x\n' | wc -l)
	[ "$n" = "$N" ] || { echo "bench: the copy holds $n records, not $N" >&2; exit 1; }
	RATES[copy]+=" $(echo "$N / ($t1 - $t0)" | bc -l)"
	CPUS[copy]+=" $(echo "($(cpu_of "$D/copy-c.$1") + $(cpu_of "$D/copy-p.$1")) * 1000000 / $N" | bc -l)"
}

run_cleaner() { # run_cleaner R
	local port url t0= tdone t1 v deadline n pid pin=()
	port=$(free_port)
	url="http://127.0.0.1:$port/metrics"
	[ "$PIN" = 1 ] && pin=(taskset -c 0)
	# /usr/bin/time reports the CPU of the whole process (every thread) when it exits.
	start_bg "cleaner$1" /usr/bin/time -o "$D/cleaner.$1" -f '%U %S' "${pin[@]}" "$CLEANER" \
		-b "$BOOTSTRAP" --group "bench-$1" --out "clean.$1" --rejected "rejected.$1" \
		--max-age 100000d --metrics-port "$port" --log-level warn
	deadline=$((SECONDS + 300))
	while [ $SECONDS -lt $deadline ]; do
		v=$(curl -fsS --max-time 2 "$url" 2>/dev/null |
			awk '/^iotpipe_cleaner_messages_total /{print $2}')
		[ -z "$t0" ] && [ "${v:-0}" -gt 0 ] && t0=$(now)
		[ "${v:-0}" -ge "$N" ] && break
		sleep 0.01
	done
	[ -n "$t0" ] && [ "${v:-0}" -ge "$N" ] || { echo "bench: the cleaner did not finish" >&2; exit 1; }
	tdone=$(now)
	# SIGTERM to the cleaner alone: time must outlive it to write its report.
	pid=$(pgrep -P "$(harness_pid_of "cleaner$1")")
	kill -TERM "$pid"
	while kill -0 "$pid" 2>/dev/null; do sleep 0.005; done
	t1=$(now)
	wait_bg "cleaner$1" 60 || { echo "bench: the cleaner did not stop cleanly" >&2; exit 1; }
	harness_diag "cleaner run $1: cleaned all in $(echo "$tdone - $t0" | bc) s, stopped $(echo "$t1 - $tdone" | bc) s later"
	n=$(kcat -C -b "$BOOTSTRAP" -t "clean.$1" -o beginning -e -q -f 'x\n' | wc -l)
	[ "$n" = "$readings" ] || { echo "bench: clean.$1 holds $n readings, not $readings" >&2; exit 1; }
	RATES[cleaner]+=" $(echo "$N / ($t1 - $t0)" | bc -l)"
	CPUS[cleaner]+=" $(echo "$(cpu_of "$D/cleaner.$1") * 1000000 / $N" | bc -l)"
}

LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
for ((r = 1; r <= REPEAT; r++)); do
	run_copy "$r"
	run_cleaner "$r"
	harness_diag "run $r: copy $(printf %.0f "${RATES[copy]##* }")/s, cleaner $(printf %.0f "${RATES[cleaner]##* }")/s"
done

best() { highest "$1"; }
low() { lowest "$1"; }
copy_best=$(best "${RATES[copy]}")
out="bench/results/cleaner-$(date -u +%Y-%m-%d).txt"
mkdir -p bench/results
{
	printf 'Kafka -> cleaner -> Kafka, %s RawMessage records (%s readings out), %s runs, %s\n' \
		"$N" "$readings" "$REPEAT" "$(date -u +%FT%TZ)"
	printf '%s cores; %s; load average before: %s, after: %s\n' "$(nproc)" \
		"$([ "$PIN" = 1 ] && echo 'measured processes on CPU 0, kafka-mock on CPU 1' || echo 'not pinned')" \
		"$LOAD0" "$(cut -d' ' -f1-3 /proc/loadavg)"
	printf '%-34s %12s %12s %14s %10s\n' pipeline "rec/s best" "rec/s median" "CPU us/rec best" "vs copy"
	for m in copy cleaner; do
		name=$([ $m = copy ] && echo "kcat -C | kcat -P (plain copy)" || echo "cleaner (RawMessage -> Reading)")
		printf '%-34s %12.0f %12.0f %14.2f %9.0f%%\n' "$name" "$(best "${RATES[$m]}")" \
			"$(median "${RATES[$m]}")" "$(low "${CPUS[$m]}")" \
			"$(echo "100 * $(best "${RATES[$m]}") / $copy_best" | bc -l)"
	done
	printf 'cleaner, one core at its CPU cost: %.0f records/s\n' "$(echo "1000000 / $(low "${CPUS[cleaner]}")" | bc -l)"
} | tee "$out"
harness_finish
