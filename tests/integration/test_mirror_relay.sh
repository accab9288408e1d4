#!/usr/bin/env bash
# mirror-relay between two kafka-mock clusters, edge and central: 50k records on three topics
# (Avro readings, text records with and without keys, with headers and with every kind of
# origin header) arrive exactly once with the same key, value, timestamp, headers, partition and
# per-key order; a topic created on the edge later is picked up; readings decode on the central
# side with iot-cat; a clean stop commits, so a restarted relay sends nothing again.
. "$(dirname "$0")/../lib/harness.sh"
. "$(dirname "$0")/test_mirror_relay_verify.sh"
harness_init mirror_relay
require kcat perl curl jq
RELAY=$(harness_bin mirror-relay) || exit 1
IOTCAT=$(harness_bin iot-cat) || exit 1

TOPICS=(iot.clean iot.aggregates iot.events)
relay_start_clusters "${TOPICS[@]}" || exit 1
PORT=$(free_port) || exit 1
M="http://127.0.0.1:$PORT/metrics"

feed_readings() { relay_reading_lines "$1" "$2" | timeout 60 "$IOTCAT" -b "$E" -P -t iot.clean -T Reading -k site; }
feed_text() { # TOPIC FROM TO [kcat args]
	local t=$1 a=$2 b=$3
	shift 3
	relay_text_lines "$t" "$a" "$b" | relay_kcat_produce "$E" "$t" "$@"
}
feed_events() { # the header variants the relay must treat differently
	feed_text iot.events 1 6000 &&
		feed_text iot.events 6001 10000 -H a=1 -H b=two &&
		feed_text iot.events 10001 10100 -H iotpipe-origin=local/iot.raw/0/17 &&
		feed_text iot.events 10101 10200 -H iotpipe-origin=edge/iot.raw/2/5 &&
		feed_text iot.events 10201 10300 -H iotpipe-origin=other/iot.raw/1/1 -H z=9 &&
		feed_text iot.events 10301 10400 -H iotpipe-origin=no-origin-here &&
		feed_text iot.events 10401 10500 -H iotpipe-origin=-/-/-1/3 &&
		feed_text iot.events 10501 20000 -H trace=abc
}

# A backlog before the relay starts, the rest while it runs.
check "first 5000 readings produced" feed_readings 1 5000
check "first 10000 aggregates produced" feed_text iot.aggregates 1 10000

start_bg relay "$RELAY" -b "$E" -B "$C" -t '^iot\.(clean|aggregates|events|late)$' -a edge \
	--metrics-port "$PORT" --lag-interval 1s --checkpoint-ms 500 \
	-X source.topic.metadata.refresh.interval.ms=1000 -X source.session.timeout.ms=6000 \
	-X target.statistics.interval.ms=1000
wait_for "relay serves metrics" 30 curl -fsS "$M"
# Central refuses some produce requests with a retriable error: the producer retries them
# (idempotently: the exactly-once check below covers them).
check "central fails 5 produce requests (NOT_LEADER_FOR_PARTITION)" \
	kafka_mock_ctl --name central "error Produce NOT_LEADER_FOR_PARTITION 5"

check "last 5000 readings produced" feed_readings 5001 10000
check "last 10000 aggregates produced" feed_text iot.aggregates 10001 20000
check "20000 events produced (7 header variants)" feed_events

# A topic created on the edge while the relay runs; missing on the target, where the relay
# tries to create it (the embedded Kafka does not serve CreateTopics, so it is auto-created).
owns_24() { [ "$(curl -fsS "$M" | grep -c '^iotpipe_relay_lag_records{')" -ge 24 ]; }
wait_for "relay owns the 24 partitions" 60 owns_24
check "topic iot.late created on the edge" kafka_mock_ctl --name edge "topic iot.late 4"
check "1000 records on the new topic" bash -c \
	"$(declare -f relay_text_lines relay_kcat_produce); relay_text_lines iot.late 1 1000 | relay_kcat_produce '$E' iot.late"

TOTAL=51000
relayed_all() { [ "$(metric "$M" iotpipe_relay_records_total)" = "$TOTAL" ]; }
wait_for "relay acknowledged $TOTAL records" 90 relayed_all
sleep 2 # one lag interval after the last acknowledgement
check "replication lag is 0 on every partition" relay_lag_zero "$M" 28
check "per-topic counter: 10000 readings" \
	test "$(metric "$M" 'iotpipe_relay_records_total{topic="iot.clean",target="iot.clean"}')" = 10000
check "per-topic bytes counted" \
	test "$(metric "$M" 'iotpipe_relay_bytes_total{topic="iot.events"}' | cut -d. -f1)" -gt 1000000
check "local origins rewritten: 100" test "$(metric "$M" iotpipe_relay_origins_rewritten_total)" = 100
check "malformed origins replaced: 100" test "$(metric "$M" iotpipe_relay_origins_malformed_total)" = 100
check "nothing skipped without renaming" test "$(metric "$M" iotpipe_relay_skipped_total)" = 0
retried() { local n; n=$(metric "$M" iotpipe_relay_retries_total) && [ "${n%.*}" -ge 1 ]; }
wait_for "the refused requests show as retries" 10 retried
check "latency histogram filled" test "$(metric "$M" iotpipe_relay_latency_seconds_count)" = "$TOTAL"
check "relay stops cleanly on SIGTERM (exit 0, commits, no leaks)" stop_bg relay

ALL=("${TOPICS[@]}" iot.late)
relay_dump "$E" "$HARNESS_DIR/src.json" "${ALL[@]}" || fail "dump of the edge"
relay_dump "$C" "$HARNESS_DIR/tgt.json" "${ALL[@]}" || fail "dump of central"
relay_verified "central holds every record exactly once, unchanged, in place and in order" \
	--alias edge --same-partition "$HARNESS_DIR/src.json" "$HARNESS_DIR/tgt.json"
check "iot.late on central has the source's 4 partitions" bash -c \
	"timeout 10 kcat -L -b '$C' -t iot.late -m 5 | grep -c '^ *partition ' | grep -qx 4"

decoded() { timeout 60 "$IOTCAT" -b "$C" -C -t iot.clean -e -E >"$HARNESS_DIR/decoded.json"; }
check "iot-cat decodes every reading on central (no registry)" decoded
check "10000 readings decoded, values intact" test "$(jq -s '[.[] | .value.value] | add' \
	"$HARNESS_DIR/decoded.json")" = "$(awk 'BEGIN { s = 0; for (i = 1; i <= 10000; i++) s += i + 0.25; print s }')"

# The clean stop committed everything: a new relay in the same group sends nothing again.
start_bg relay "$RELAY" -b "$E" -B "$C" -t '^iot\.(clean|aggregates|events|late)$' -a edge \
	--metrics-port "$PORT" --lag-interval 1s -X source.session.timeout.ms=6000
wait_for "restarted relay owns all 28 partitions with no lag" 40 relay_lag_zero "$M" 28
sleep 2
check "restarted relay relays nothing again" bash -c \
	"$(declare -f metric); ! metric '$M' iotpipe_relay_records_total || test \"\$(metric '$M' iotpipe_relay_records_total)\" = 0"
check "restarted relay stops cleanly" stop_bg relay
harness_finish
