#!/usr/bin/env bash
# mirror-relay's batch path and compressed records: gzip batches are inflated and relayed by the
# batch path itself; the first lz4 batch makes the relay commit what it relayed and carry on
# through the Kafka client in the same process. Every record arrives exactly once, unchanged,
# in place and in order, across the switch.
. "$(dirname "$0")/../lib/harness.sh"
. "$(dirname "$0")/test_mirror_relay_verify.sh"
harness_init mirror_relay_codecs
require kcat perl curl
RELAY=$(harness_bin mirror-relay) || exit 1

TOPICS=(t.plain t.gzip t.lz4)
relay_start_clusters "${TOPICS[@]}" || exit 1
PORT=$(free_port) || exit 1
M="http://127.0.0.1:$PORT/metrics"

check "3000 uncompressed records" bash -c "$(declare -f relay_text_lines relay_kcat_produce);
	relay_text_lines t.plain 1 3000 | relay_kcat_produce '$E' t.plain -H h=1"
check "3000 gzip records" bash -c "$(declare -f relay_text_lines relay_kcat_produce);
	relay_text_lines t.gzip 1 3000 | relay_kcat_produce '$E' t.gzip -z gzip -H h=2"

start_bg relay "$RELAY" -b "$E" -B "$C" -t '^t\.' -a edge --metrics-port "$PORT" \
	--lag-interval 1s -X source.session.timeout.ms=6000
relayed() { [ "$(metric "$M" iotpipe_relay_records_total)" = "$1" ]; }
wait_for "6000 records relayed" 60 relayed 6000
check "the batch path relayed them (no switch to the client)" \
	bash -c "! grep -q 'relaying through the Kafka client' '$(harness_log relay)'"

check "2000 lz4 records" bash -c "$(declare -f relay_text_lines relay_kcat_produce);
	relay_text_lines t.lz4 1 2000 | relay_kcat_produce '$E' t.lz4 -z lz4"
wait_for "8000 records relayed" 60 relayed 8000
check "the relay switched to the Kafka client at the lz4 batch" \
	grep -q 'compressed with lz4, which the batch path does not decode' "$(harness_log relay)"
check "1000 more uncompressed records" bash -c "$(declare -f relay_text_lines relay_kcat_produce);
	relay_text_lines t.plain 3001 4000 | relay_kcat_produce '$E' t.plain"
wait_for "9000 records relayed" 60 relayed 9000
check "relay stops cleanly" stop_bg relay

relay_dump "$E" "$HARNESS_DIR/src.json" "${TOPICS[@]}" || fail "dump of the edge"
relay_dump "$C" "$HARNESS_DIR/tgt.json" "${TOPICS[@]}" || fail "dump of central"
relay_verified "every record once, unchanged, in place and in order across the switch" \
	--alias edge --same-partition "$HARNESS_DIR/src.json" "$HARNESS_DIR/tgt.json"
harness_finish
