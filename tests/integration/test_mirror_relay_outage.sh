#!/usr/bin/env bash
# The central cluster goes away for 15 s while the edge keeps producing: the relay stops
# consuming once its producer queue is full (memory stays bounded), the replication-lag gauges
# rise during the outage and fall back to 0 after it, and central ends up with every record.
. "$(dirname "$0")/../lib/harness.sh"
. "$(dirname "$0")/test_mirror_relay_verify.sh"
harness_init mirror_relay_outage
require kcat perl curl
RELAY=$(harness_bin mirror-relay) || exit 1

TOPICS=(iot.clean iot.aggregates iot.events)
relay_start_clusters "${TOPICS[@]}" || exit 1
PORT=$(free_port) || exit 1
M="http://127.0.0.1:$PORT/metrics"

# 36 rounds of 1500 records, ~1 s apart: 54000 records over ~40 s, the outage in the middle.
ROUNDS=36
TOTAL=$((ROUNDS * 1500))
cat >"$HARNESS_DIR/feed.sh" <<FEED
$(declare -f relay_text_lines relay_kcat_produce)
for ((r = 0; r < $ROUNDS; r++)); do
	for t in ${TOPICS[*]}; do
		relay_text_lines \$t \$((r * 500)) \$((r * 500 + 499)) | relay_kcat_produce "$E" \$t || exit 1
	done
	sleep 0.8
done
FEED

# While central is away nothing is acknowledged: the relay keeps reading until its producer
# queue is full (queue.buffering.max.messages, 50 000 by default), then waits inside the
# producer, and the consumer's prefetch stops at queued.max.messages.kbytes (8 MB by default).
# 5000 records and 512 kB here fill early in the outage, so the test sees reading pause and
# memory level off.
start_bg relay "$RELAY" -b "$E" -B "$C" -t '^iot\.(clean|aggregates|events)$' -a edge \
	--metrics-port "$PORT" --lag-interval 1s -X source.queued.max.messages.kbytes=512 \
	-X target.queue.buffering.max.messages=5000
RELAY_PID=$BG_PID
start_bg feed bash "$HARNESS_DIR/feed.sh"
wait_for "relay is relaying" 60 relay_relayed_over "$M" 1000

# One sample per second: seconds since the outage began, RSS (kB), records read from the edge,
# records waiting in the producer, lag in records (sum over partitions) and in seconds (max).
sample() {
	local body rss
	body=$(curl -fsS --max-time 2 "$M") || return 0
	rss=$(awk '/^VmRSS/ { print $2 }' "/proc/$RELAY_PID/status" 2>/dev/null)
	awk -v t="$1" -v rss="${rss:-0}" '
		/^iotpipe_records_in_total/ { inrec += $NF }
		/^iotpipe_relay_queued_records / { q = $NF }
		/^iotpipe_relay_lag_records\{/ { lag += $NF }
		/^iotpipe_relay_lag_seconds\{/ { if ($NF > secs) secs = $NF }
		END { printf "%s %d %d %d %d %.1f\n", t, rss, inrec, q, lag, secs }' <<<"$body"
}
S="$HARNESS_DIR/samples"
for t in -3 -2 -1; do sample "$t" >>"$S"; sleep 1; done
check "central down (down all)" kafka_mock_ctl --name central "down all"
for ((t = 0; t < 15; t++)); do sample "$t" >>"$S"; sleep 1; done
check "central up again (up all)" kafka_mock_ctl --name central "up all"
for ((t = 15; t < 18; t++)); do sample "$t" >>"$S"; sleep 1; done
check "the feeder produced $TOTAL records" wait_bg feed 90
sleep 2 # two lag intervals: the gauges have seen the last records
wait_for "lag back to 0 after the outage" 90 relay_lag_zero "$M" 24
sample after >>"$S"
harness_diag "t rss_kB read queued lag_records lag_seconds"
while read -r line; do harness_diag "$line"; done <"$S"

col() { awk -v c="$1" -v a="$2" -v b="$3" '$1 ~ /^-?[0-9]+$/ && $1 >= a && $1 <= b { print $c }' "$S"; }
max() { sort -n | tail -n 1; }
before_lag=$(col 5 -3 -1 | max)
peak_lag=$(col 5 0 14 | max)
peak_secs=$(col 6 0 14 | max)
check "lag in records rose during the outage ($before_lag before, $peak_lag peak)" \
	test "${peak_lag:-0}" -gt $((${before_lag:-0} + 5000))
check "lag in seconds rose past 10 s during the outage (peak $peak_secs)" \
	awk -v s="${peak_secs:-0}" 'BEGIN { exit !(s >= 10) }'
check "lag fell back to 0 (last sample: $(tail -n 1 "$S"))" \
	test "$(awk '$1 == "after" { print $5 }' "$S")" = 0
# Once the queue is full the relay reads nothing more from the edge until central is back.
read10=$(col 3 10 10)
read14=$(col 3 14 14)
check "consumption paused during the outage (read $read10 at 10 s, $read14 at 14 s)" \
	test -n "$read10" -a "$read10" = "$read14"
rss_before=$(col 2 -3 -1 | max)
rss_9=$(col 2 9 9)
rss_peak=$(col 2 0 14 | max)
harness_diag "RSS: ${rss_before} kB before, ${rss_9} kB at 9 s, ${rss_peak} kB peak during the outage"
check "memory levels off during the outage (grows < 4 MB from 9 s to the end)" \
	test $((${rss_peak:-0} - ${rss_9:-0})) -lt 4096
check "memory bounded: peak RSS during the outage < 256 MB (AddressSanitizer build)" \
	test "${rss_peak:-0}" -lt 262144
harness_diag "target request retries: $(metric "$M" iotpipe_relay_retries_total)"
check "relay stops cleanly" stop_bg relay

relay_dump "$E" "$HARNESS_DIR/src.json" "${TOPICS[@]}" || fail "dump of the edge"
relay_dump "$C" "$HARNESS_DIR/tgt.json" "${TOPICS[@]}" || fail "dump of central"
check "the edge holds the $TOTAL records" test "$(grep -c '^{' "$HARNESS_DIR/src.json")" = "$TOTAL"
relay_verified "nothing lost across the outage: every record unchanged, in place, in order" \
	--alias edge --same-partition --max-duplicates "$TOTAL" \
	"$HARNESS_DIR/src.json" "$HARNESS_DIR/tgt.json"
harness_finish
