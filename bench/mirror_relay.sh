#!/usr/bin/env bash
# mirror-relay against `kcat -C | kcat -P` between the same two kafka-mock clusters:
#
#   throughput  RECORDS records (about 100-byte values, keyed) already in the source topic
#               (16 partitions) are copied to the target; each pipeline runs BENCH_REPEAT
#               times, alternating. kcat pipe: wall time of the pipe. mirror-relay: from its
#               first record read to the target's acknowledgement of the last one (its own
#               metrics, polled every 20 ms), so the consumer group's join is not counted.
#               CPU is user + system of every process of the pipeline (the relay's threads,
#               both kcats), per record. Peak RSS is the relay's VmHWM, the sum of both kcats'.
#   latency     BENCH_RATE records/s for BENCH_SECONDS through each pipeline while it runs, on a
#               fresh pair of clusters.
#               One consumer on the source and one on the target stamp each record's arrival
#               (kcat -u piped into perl); added latency = target arrival - source arrival of
#               the same key, so both consumers' own delays cancel out.
#
# The embedded Kafka answers a fetch only with the data it has when the request arrives, or after
# fetch.wait.max.ms (librdkafka's default 500 ms) when it has none, where a real broker answers
# as soon as data arrives. Every consumer in the latency runs (both pipelines' and the stamping
# ones) therefore asks with fetch.wait.max.ms=5; with the default, both pipelines add about
# 250-700 ms on this cluster alone.
#
# Latency runs last 10 s: kafka-mock finds a fetch's position by walking the partition's log
# from its start (librdkafka 2.0.2's mock has no index), and at 10 000 records/s in about
# 3 000 message sets a second every fetch gets slower; after 10-15 s the embedded cluster can no
# longer take the feed's 10 000 records/s (the source's own arrival rate falls to about 5 000/s),
# and every pipeline's figures then measure the mock.
#
# The kcat pipe keeps keys and values only; the relay also keeps headers and timestamps, adds
# the origin header and commits source offsets only after the target acknowledged.
#
#   floor       bench/relay_floor.c (built here with cc): the least a relay on librdkafka does
#               per record (batch consume, produce a copy to an idempotent producer, count the
#               delivery reports; nothing committed, no metrics), with and without the origin
#               header the relay adds. Its CPU per record is the yardstick for the relay's; its
#               rate is not (it does not wake a stalled fetcher as the relay does).
#
# mirror-relay runs twice: its default batch path and --data-path client.
#
#   make && bench/mirror_relay.sh                 # 500k records, 3 runs each, 10k/s for 10 s
#   BENCH_REPEAT=1 BENCH_SECONDS=10 bench/mirror_relay.sh 200000
#
# Uses the release binaries in bin/ (BENCH_BIN to change), kcat, perl and curl.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${BENCH_BIN:-$ROOT/bin}
RECORDS=${1:-500000}
REPEAT=${BENCH_REPEAT:-3}
RATE=${BENCH_RATE:-10000}
SECONDS_LAT=${BENCH_SECONDS:-10}
for b in mirror-relay kafka-mock; do
	[ -x "$BIN/$b" ] || { echo "bench: $BIN/$b is not built (make)" >&2; exit 2; }
done
for c in kcat perl curl cc; do
	command -v "$c" >/dev/null || { echo "bench: $c is not installed" >&2; exit 2; }
done

DIR=$(mktemp -d "${TMPDIR:-/tmp}/mirror-relay-bench.XXXXXX")
PIDS=()
cleanup() {
	set +e
	local p
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
	rm -rf "$DIR"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
cc -O2 -o "$DIR/relay_floor" "$ROOT/bench/relay_floor.c" -lrdkafka ||
	{ echo "bench: cannot build bench/relay_floor.c" >&2; exit 2; }
log() { printf '# %s\n' "$*" >&2; }
now() { date +%s.%N; }

# --- clusters -----------------------------------------------------------------------------
start_mock() { # start_mock NAME TOPIC...: sets MOCK_BOOTSTRAP and MOCK_PID
	local name=$1 args=() t
	shift
	for t in "$@"; do args+=(--topic "$t:16"); done
	"$BIN/kafka-mock" "${args[@]}" </dev/null >"$DIR/$name.out" 2>"$DIR/$name.log" &
	MOCK_PID=$!
	PIDS+=($!)
	for _ in $(seq 100); do [ -s "$DIR/$name.out" ] && break; sleep 0.1; done
	MOCK_BOOTSTRAP=$(head -n 1 "$DIR/$name.out")
	[ -n "$MOCK_BOOTSTRAP" ] || { echo "bench: kafka-mock $name did not start" >&2; exit 1; }
}
start_mock source bench
SRC=$MOCK_BOOTSTRAP
SRC_PID=$MOCK_PID
start_mock target bench.relay bench.kcat bench.floor
TGT=$MOCK_BOOTSTRAP
TGT_PID=$MOCK_PID
LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)

log "producing $RECORDS records to the source"
awk -v n="$RECORDS" 'BEGIN { for (i = 0; i < n; i++)
	printf "k%d\tsite=s%d device=d%d metric=temperature unit=C value=%d.5 ts=%d seq=%d\n",
		i % 5000, i % 50, i % 7, i % 1000, 1700000000000 + i, i }' |
	kcat -P -b "$SRC" -t bench -K '\t' -X linger.ms=20 -m 10

# --- throughput ---------------------------------------------------------------------------
metric_sum() { # metric_sum PORT NAME-PREFIX
	{ curl -fsS --max-time 2 "http://127.0.0.1:$1/metrics" 2>/dev/null || true; } |
		awk -v p="$2" 'index($0, p) == 1 { s += $NF } END { printf "%d\n", s }'
}
proc_cpu() { # user+system seconds of a live process (all threads)
	awk -v hz="$(getconf CLK_TCK)" '{ printf "%.3f\n", ($14 + $15) / hz }' "/proc/$1/stat"
}

run=0
RES=() # "name rate cpu_us_per_record rss_kB"
run_kcat() {
	local t0 t1 c p
	t0=$(now)
	/usr/bin/time -f '%U %S %M' -o "$DIR/c.time" kcat -C -b "$SRC" -t bench -o beginning -e -q \
		-K '\t' | /usr/bin/time -f '%U %S %M' -o "$DIR/p.time" kcat -P -b "$TGT" \
		-t bench.kcat -K '\t'
	t1=$(now)
	read -r c <<<"$(cat "$DIR/c.time" "$DIR/p.time" |
		awk '{ cpu += $1 + $2; rss += $3 } END { printf "%.3f %d", cpu, rss }')"
	RES+=("kcat $(echo "$RECORDS / ($t1 - $t0)" | bc) $(echo "${c% *} * 1000000 / $RECORDS" |
		bc -l | xargs printf '%.2f') ${c#* }")
}
run_relay() { # run_relay NAME [mirror-relay args...]
	local name=$1 port t0= t1= in acked pid deadline cpu rss
	shift
	run=$((run + 1))
	port=$((30000 + RANDOM % 10000))
	"$BIN/mirror-relay" -b "$SRC" -B "$TGT" -t bench -T '{topic}.relay' --group "bench-$run" \
		--metrics-port "$port" "$@" 2>"$DIR/relay-$run.log" &
	pid=$!
	PIDS+=("$pid")
	deadline=$((SECONDS + 300))
	while [ $SECONDS -lt $deadline ] && kill -0 "$pid" 2>/dev/null; do
		in=$(metric_sum "$port" iotpipe_records_in_total)
		[ -z "$t0" ] && [ "${in:-0}" -gt 0 ] && t0=$(now)
		acked=$(metric_sum "$port" iotpipe_relay_records_total)
		if [ "${acked:-0}" -ge "$RECORDS" ]; then
			t1=$(now)
			break
		fi
		sleep 0.02
	done
	[ -n "$t0" ] && [ -n "$t1" ] || { echo "bench: the relay did not finish" >&2; exit 1; }
	cpu=$(proc_cpu "$pid")
	rss=$(awk '/^VmHWM/ { print $2 }' "/proc/$pid/status")
	kill "$pid"
	wait "$pid" || true
	RES+=("$name $(echo "$RECORDS / ($t1 - $t0)" | bc) $(echo "$cpu * 1000000 / $RECORDS" |
		bc -l | xargs printf '%.2f') $rss")
}
run_floor() { # run_floor NAME [--origin]: the relay's own source defaults, as the relay runs
	local out
	out=$("$DIR/relay_floor" "$SRC" "$TGT" bench bench.floor "$RECORDS" "${@:2}" \
		-X source.queued.min.messages=40000 -X source.queued.max.messages.kbytes=8192 \
		-X source.fetch.max.bytes=4194304 2>>"$DIR/floor.log") ||
		{ echo "bench: relay_floor failed" >&2; exit 1; }
	RES+=("$1 $out")
}
for ((r = 1; r <= REPEAT; r++)); do
	log "throughput run $r of $REPEAT"
	run_kcat
	run_relay relay
	run_relay relay-client --data-path client
	run_floor floor
	run_floor floor-origin --origin
done

# --- latency ------------------------------------------------------------------------------
# stamp BROKERS TOPIC OUT: prints "key arrival_ms" for every record from now on.
stamp() {
	kcat -C -b "$1" -t "$2" -o end -u -q -f '%k\n' -X fetch.wait.max.ms=5 2>>"$DIR/kcat.log" |
		perl -MTime::HiRes=time -ne 'BEGIN { $| = 1 } chomp; printf "%s %.3f\n", $_, time * 1000' >"$3" &
	PIDS+=($!)
}
# feed TOPIC SECONDS: RATE records/s in 1 ms steps, keys unique per run.
feed() {
	perl -MTime::HiRes=time,sleep -e '
		my ($rate, $secs, $tag) = @ARGV; $| = 1;
		my $t0 = time; my $n = 0; my $total = $rate * $secs;
		while ($n < $total) {
			my $due = int((time - $t0) * $rate);
			while ($n < $due && $n < $total) { print "$tag-$n\tvalue=$n padding-padding-padding\n"; $n++ }
			sleep 0.001;
		}' "$RATE" "$2" "$3" | kcat -P -b "$SRC" -t "$1" -K '\t'
}
added() { # added SRC_STAMPS TGT_STAMPS: prints "matched p50 p99 max" of the added latency (ms)
	perl -e '
		my %s; open my $sf, "<", $ARGV[0] or die; while (<$sf>) { my ($k, $t) = split; $s{$k} = $t }
		my @d; open my $tf, "<", $ARGV[1] or die;
		while (<$tf>) { my ($k, $t) = split; push @d, $t - $s{$k} if exists $s{$k} }
		@d = sort { $a <=> $b } @d; my $n = @d or do { print "0 - - -\n"; exit };
		printf "%d %.1f %.1f %.1f\n", $n, $d[int($n * 0.5)], $d[int($n * 0.99)], $d[-1]' "$1" "$2"
}
# Fresh clusters: the throughput runs left millions of records in the embedded Kafka's memory.
kill "$SRC_PID" "$TGT_PID"
wait "$SRC_PID" "$TGT_PID" 2>/dev/null || true
start_mock lat-source lat
SRC=$MOCK_BOOTSTRAP
start_mock lat-target lat.relay lat.relay-client lat.kcat
TGT=$MOCK_BOOTSTRAP
LAT=()
latency() { # latency NAME TARGET_TOPIC
	log "latency through $1: $RATE records/s for $SECONDS_LAT s"
	stamp "$SRC" lat "$DIR/src-$1.txt"
	stamp "$TGT" "$2" "$DIR/tgt-$1.txt"
	sleep 3
	feed lat "$SECONDS_LAT" "$1"
	sleep 3
	LAT+=("$1 $(added "$DIR/src-$1.txt" "$DIR/tgt-$1.txt")")
}

latency_relay() { # latency_relay NAME [mirror-relay args...]
	local name=$1 port pid
	shift
	port=$((30000 + RANDOM % 10000))
	"$BIN/mirror-relay" -b "$SRC" -B "$TGT" -t lat -T "{topic}.$name" --group "bench-lat-$name" \
		--metrics-port "$port" -X source.fetch.wait.max.ms=5 "$@" 2>"$DIR/$name-lat.log" &
	pid=$!
	PIDS+=("$pid")
	for _ in $(seq 150); do
		[ "$(curl -fsS "http://127.0.0.1:$port/metrics" 2>/dev/null |
			grep -c '^iotpipe_relay_lag_records{')" = 16 ] && break
		sleep 0.2
	done
	latency "$name" "lat.$name"
	kill "$pid"
	wait "$pid" || true
}
latency_relay relay
latency_relay relay-client --data-path client

kcat -C -b "$SRC" -t lat -o end -q -K '\t' -X fetch.wait.max.ms=5 2>>"$DIR/kcat.log" |
	kcat -P -b "$TGT" -t lat.kcat -K '\t' 2>>"$DIR/kcat.log" &
PIDS+=($!)
latency kcat lat.kcat

# --- report -------------------------------------------------------------------------------
best() { # best NAME FIELD: the best run (highest rate) and the median of FIELD
	printf '%s\n' "${RES[@]}" | awk -v n="$1" '$1 == n' | sort -k2 -n -r |
		awk -v f="$2" '{ v[NR] = $f } END { m = v[int((NR + 1) / 2)]; print v[1], m }'
}
row() { # row NAME LABEL LATENCY-NAME
	local rate cpu rss lat
	read -r rate rate_med <<<"$(best "$1" 2)"
	cpu=$(printf '%s\n' "${RES[@]}" | awk -v n="$1" '$1 == n { print $3 }' | sort -n | head -n 1)
	rss=$(printf '%s\n' "${RES[@]}" | awk -v n="$1" '$1 == n { print $4 }' | sort -n | tail -n 1)
	lat=$(printf '%s\n' "${LAT[@]}" | awk -v n="$3" '$1 == n { printf "%s / %s / %s ms (%d records)", $3, $4, $5, $2 }')
	[ -n "$lat" ] || lat='–'
	printf '| %s | %s (median %s) | %s | %d MiB | %s |\n' "$2" "$rate" "$rate_med" "$cpu" \
		$((rss / 1024)) "$lat"
}
echo
echo "mirror-relay benchmark: $RECORDS records, $REPEAT runs each; latency at $RATE records/s"
echo "machine: $(nproc) CPU, load average before: $LOAD0, after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| pipeline | records/s, best run | CPU µs/record, best run | peak RSS | added latency p50 / p99 / max |"
echo "|---|---|---|---|---|"
row kcat '`kcat -C | kcat -P` (keys and values only)' kcat
row relay 'mirror-relay, batch path (headers, timestamps, origin, commits after acks)' relay
row relay-client 'mirror-relay --data-path client (the same through librdkafka)' relay-client
row floor-origin 'librdkafka floor with the origin header (bench/relay_floor.c --origin)' none
row floor 'librdkafka floor, records as they are (bench/relay_floor.c)' none
echo
echo "runs (pipeline records/s cpu-µs/record rss-kB):"
printf '  %s\n' "${RES[@]}"
