#!/usr/bin/env bash
# Two sites mirror each other with renaming: relay a->b sends a's topics to b as "a.<topic>",
# relay b->a sends b's to a as "b.<topic>". Both subscribe with a regex that also matches the
# mirrored topics, so only the origin header keeps records from going round: each record
# arrives once on the other site, and no "a.b.<topic>" or "b.a.<topic>" ever appears.
# Relay a->b moves records through the Kafka client (--data-path client), relay b->a as record
# batches (the default): each reads what the other wrote.
. "$(dirname "$0")/../lib/harness.sh"
. "$(dirname "$0")/test_mirror_relay_verify.sh"
harness_init mirror_relay_loop
require kcat perl curl
RELAY=$(harness_bin mirror-relay) || exit 1

start_kafka_mock --name site_a --topic iot.clean:4 --topic iot.events:4 --topic b.iot.clean:4 \
	--topic b.iot.events:4 || exit 1
start_kafka_mock --name site_b --topic iot.clean:4 --topic iot.events:4 --topic a.iot.clean:4 \
	--topic a.iot.events:4 || exit 1
A=$BOOTSTRAP_SITE_A
B=$BOOTSTRAP_SITE_B
PA=$(free_port) || exit 1
PB=$(free_port) || exit 1

relay_flags=(-t '^(.*\.)?iot\.(clean|events)$' -T '{source}.{topic}' --lag-interval 1s
	-X source.topic.metadata.refresh.interval.ms=1000)
start_bg relay_ab "$RELAY" -b "$A" -B "$B" -a a --metrics-port "$PA" "${relay_flags[@]}" \
	--data-path client
start_bg relay_ba "$RELAY" -b "$B" -B "$A" -a b --metrics-port "$PB" "${relay_flags[@]}"

feed() { # BROKERS SITE: 5000 records on each local topic, some with headers
	local t
	for t in iot.clean iot.events; do
		relay_text_lines "$2-$t" 1 3000 | relay_kcat_produce "$1" "$t" || return 1
		relay_text_lines "$2-$t" 3001 5000 | relay_kcat_produce "$1" "$t" -H site="$2" || return 1
	done
}
check "10000 records produced on site a" feed "$A" a
check "10000 records produced on site b" feed "$B" b

relayed() { # PORT COUNT
	local n
	n=$(metric "http://127.0.0.1:$1/metrics" iotpipe_relay_records_total) && [ "$n" = "$2" ]
}
wait_for "relay a->b relayed 10000 records" 60 relayed "$PA" 10000
wait_for "relay b->a relayed 10000 records" 60 relayed "$PB" 10000
skipped() { # PORT COUNT
	local n
	n=$(metric "http://127.0.0.1:$1/metrics" iotpipe_relay_skipped_total) && echo "$n" &&
		[ "$n" = "$2" ]
}
wait_for "relay a->b skipped the 10000 records that came from b" 60 skipped "$PA" 10000
wait_for "relay b->a skipped the 10000 records that came from a" 60 skipped "$PB" 10000
sleep 3 # time for a loop to show, if there were one
check "relay a->b still relayed exactly 10000" relayed "$PA" 10000
check "relay b->a still relayed exactly 10000" relayed "$PB" 10000

topics() { timeout 10 kcat -L -b "$1" -m 5 | sed -n 's/^  topic "\([^"]*\)".*/\1/p' | sort | tr '\n' ' '; }
check "site a has only its topics and b's mirrors ($(topics "$A"))" \
	test "$(topics "$A")" = "b.iot.clean b.iot.events iot.clean iot.events "
check "site b has only its topics and a's mirrors ($(topics "$B"))" \
	test "$(topics "$B")" = "a.iot.clean a.iot.events iot.clean iot.events "
check "relay a->b stops cleanly" stop_bg relay_ab
check "relay b->a stops cleanly" stop_bg relay_ba

D=$HARNESS_DIR
# shellcheck disable=SC2046 # topic lists
relay_dump "$A" "$D/a.json" $(topics "$A") || fail "dump of site a"
# shellcheck disable=SC2046
relay_dump "$B" "$D/b.json" $(topics "$B") || fail "dump of site b"
# Everything on a is the source of relay a->b, everything on b its target, and the other way.
relay_verified "a->b: each of a's records once on b, none of b's own records sent back" \
	--alias a --skip-foreign --same-partition \
	--map iot.clean:a.iot.clean,iot.events:a.iot.events,b.iot.clean:a.b.iot.clean,b.iot.events:a.b.iot.events \
	"$D/a.json" <(grep -h '"topic":"a\.' "$D/b.json")
relay_verified "b->a: each of b's records once on a, none of a's own records sent back" \
	--alias b --skip-foreign --same-partition \
	--map iot.clean:b.iot.clean,iot.events:b.iot.events,a.iot.clean:b.a.iot.clean,a.iot.events:b.a.iot.events \
	"$D/b.json" <(grep -h '"topic":"b\.' "$D/a.json")
harness_finish
