#!/usr/bin/env bash
# A stateful service whose committed offsets (and the watermark kept with them) cannot be read
# when partitions are assigned must not start them from a guessed position: it would emit again,
# or wrongly, what it had emitted before. With every OffsetFetch refused, the aggregator stops
# with exit 1 and says why; once Kafka answers again it starts and takes its partitions.
source "$(dirname "$0")/../lib/harness.sh"
harness_init committed_unreadable

AGG=$(harness_bin aggregator) || exit 1
D=$HARNESS_DIR
start_kafka_mock --topic iot.clean:2 --topic iot.aggregates:2 || exit 1
flags=(-b "$BOOTSTRAP" --in iot.clean --out iot.aggregates -g agg-cu -X session.timeout.ms=6000)

kafka_mock_ctl "error OffsetFetch GROUP_AUTHORIZATION_FAILED 1000" >/dev/null
rc=0
timeout -k 5 90 "$AGG" "${flags[@]}" 2>"$D/refused.log" || rc=$?
check "with committed offsets unreadable the aggregator exits 1 (got $rc)" [ "$rc" -eq 1 ]
check "it says why" grep -q "cannot read the committed offsets" "$D/refused.log"
check "it never took the partitions" bash -c "! grep -q 'assigned iot.clean' '$D/refused.log'"

kafka_mock_ctl "clear" >/dev/null
start_bg agg "$AGG" "${flags[@]}"
wait_for "the aggregator takes its partitions once Kafka answers" 60 \
	grep -q "assigned iot.clean" "$(harness_log agg)"
check "the aggregator stops cleanly" stop_bg agg
harness_finish
