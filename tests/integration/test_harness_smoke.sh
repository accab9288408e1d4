#!/usr/bin/env bash
# The integration harness itself: PostgreSQL, mosquitto and kafka-mock start on free loopback
# ports and work, kafka-mock's control interface changes what clients see, metric() parses
# exposition text, and a harness that ends (normally or by SIGTERM) leaves no process or file.
# shellcheck disable=SC2317 # helpers run through check and wait_for
. "$(dirname "$0")/../lib/harness.sh"
harness_init harness_smoke
require psql kcat mosquitto mosquitto_pub mosquitto_sub curl

# Every kcat call is bounded: librdkafka's own defaults wait up to 5 minutes.
KCAT_P=(-X message.timeout.ms=5000 -X socket.timeout.ms=3000 -m 5)
KCAT_G=(-X session.timeout.ms=6000 -X heartbeat.interval.ms=500)

produce() { # produce TOPIC PARTITION COUNT PREFIX
	seq 1 "$3" | sed "s/^/$4-/" | timeout 30 kcat -P -b "$BOOTSTRAP" -t "$1" -p "$2" "${KCAT_P[@]}"
}
consume_count() { # consume_count TOPIC: records from the beginning of every partition
	timeout 30 kcat -C -b "$BOOTSTRAP" -t "$1" -o beginning -e -q -m 5 | wc -l
}
produce_fails() { ! produce "$@"; }
ctl_refused() { # ctl_refused COMMAND: kafka-mock answers "error ..."
	local answer
	answer=$(kafka_mock_ctl "$1") && return 1
	echo "$answer"
	[[ $answer == error* ]]
}
pids_gone() { # a zombie counts as gone: in containers nobody may reap orphans
	local p state
	for p in "$@"; do
		# The command name in stat may hold spaces and parentheses: the state follows the last ")".
		state=$(sed -n 's/^.*) \([A-Za-z]\) .*$/\1/p' "/proc/$p/stat" 2>/dev/null) || continue
		[ -z "$state" ] || [ "$state" = Z ] || { echo "pid $p is still running"; return 1; }
	done
	return 0
}

# --- PostgreSQL ----------------------------------------------------------------------------
if start_pg; then
	pass "PostgreSQL started on port $PGPORT"
	check "psql runs a query" test "$(psql -XAtc 'select 40 + 2')" = 42
	check "a table takes rows" psql -Xq -v ON_ERROR_STOP=1 \
		-c 'create table t (id int primary key, v text)' \
		-c "insert into t select g, 'x' || g from generate_series(1, 100) g"
	check "rows read back" test "$(psql -XAtc 'select count(*) from t')" = 100
	restart_pg
	check "data survives restart_pg" test "$(psql -XAtc 'select count(*) from t')" = 100
else
	fail "PostgreSQL started"
fi

# --- mosquitto -----------------------------------------------------------------------------
mq_sub_got() { grep -qx "live-$$" "$HARNESS_DIR/sub.out"; }
mq_pub_and_check() {
	timeout 5 mosquitto_pub -h 127.0.0.1 -p "$MQTT_PORT" -q 1 -t smoke/live -m "live-$$" &&
		sleep 0.2 && mq_sub_got
}
if start_mosquitto --persist; then
	pass "mosquitto started on port $MQTT_PORT ($MQTT_URL)"
	start_bg --stdout "$HARNESS_DIR/sub.out" mqsub \
		mosquitto_sub -h 127.0.0.1 -p "$MQTT_PORT" -q 1 -t 'smoke/#' -C 1 -W 20
	# The subscriber gives no sign of being subscribed: publish until it has the message.
	if wait_for "mosquitto_pub reaches mosquitto_sub" 15 mq_pub_and_check; then
		pass "mosquitto_pub -> mosquitto_sub round trip"
	fi
	check "mosquitto_sub exits 0 after its message" wait_bg mqsub 10

	timeout 5 mosquitto_pub -h 127.0.0.1 -p "$MQTT_PORT" -q 1 -r -t smoke/retained -m kept
	restart_mosquitto
	check "retained message survives restart_mosquitto --persist" test "$(timeout 10 \
		mosquitto_sub -h 127.0.0.1 -p "$MQTT_PORT" -t smoke/retained -C 1 -W 5)" = kept
else
	fail "mosquitto started"
fi

# --- kafka-mock ----------------------------------------------------------------------------
if start_kafka_mock --broker-count 2 --topic smoke:2 --topic grp:3; then
	pass "kafka-mock started: $BOOTSTRAP"
	check "bootstrap lists 2 brokers" test "$(tr ',' '\n' <<<"$BOOTSTRAP" | wc -l)" = 2
	check "kcat produces 100 records" produce smoke 0 100 a
	check "kcat consumes the 100 records" test "$(consume_count smoke)" = 100
	check "topic has the partitions from --topic" \
		bash -c "timeout 10 kcat -L -b '$BOOTSTRAP' -t grp -m 5 | grep -c '^ *partition ' | grep -qx 3"

	# Consumer group with commits: a second run of the group sees only what came after. With
	# auto.offset.reset=earliest, lost commits would show up as old "g1-" records.
	check "kcat produces 30 records to 3 partitions" produce grp -1 30 g1
	check "group consumer reads 30 records" test "$(timeout 40 kcat -b "$BOOTSTRAP" -G smoke-g \
		"${KCAT_G[@]}" -o beginning -c 30 -q grp | grep -c '^g1-')" = 30
	check "kcat produces 7 more" produce grp -1 7 g2
	check "group resumes from its committed offsets" test "$(timeout 40 kcat -b "$BOOTSTRAP" \
		-G smoke-g "${KCAT_G[@]}" -X auto.offset.reset=earliest -c 7 -q grp | grep -c '^g2-')" = 7

	# Broker down/up: pin partition leaders, take broker 1 down.
	check "ctl: leader smoke 0 1" kafka_mock_ctl "leader smoke 0 1"
	check "ctl: leader smoke 1 2" kafka_mock_ctl "leader smoke 1 2"
	check "ctl: down 1" kafka_mock_ctl "down 1"
	check "produce to a partition led by the live broker works" produce smoke 1 5 b
	check "produce to a partition led by the down broker fails" produce_fails smoke 0 5 c
	check "ctl: up 1" kafka_mock_ctl "up 1"
	check "produce to partition 0 works again after up" produce smoke 0 5 d

	# Request errors: a non-retriable error fails exactly one produce request.
	check "ctl: error Produce TOPIC_AUTHORIZATION_FAILED 1" \
		kafka_mock_ctl "error Produce TOPIC_AUTHORIZATION_FAILED 1"
	check "the injected error fails a produce" produce_fails smoke 1 1 e
	check "the next produce succeeds" produce smoke 1 1 f
	check "ctl: retriable errors are retried by the producer" \
		kafka_mock_ctl "error Produce NOT_LEADER_FOR_PARTITION 2"
	check "produce succeeds through 2 retriable errors" produce smoke 1 3 h
	check "every delivered record is there" test "$(consume_count smoke)" = $((100 + 5 + 5 + 1 + 3))

	check "ctl: topic creates a topic" kafka_mock_ctl "topic made 5"
	check "created topic has 5 partitions" \
		bash -c "timeout 10 kcat -L -b '$BOOTSTRAP' -t made -m 5 | grep -c '^ *partition ' | grep -qx 5"
	check "ctl: rtt all 0" kafka_mock_ctl "rtt all 0"
	check "ctl: clear" kafka_mock_ctl "clear"
	check "ctl: an unknown broker is refused" ctl_refused "down 9"
	check "ctl: an unknown command is refused" ctl_refused "frobnicate"
	check "ctl: a bad partition count is refused" ctl_refused "topic bad 0"
	check "kafka-mock stops on SIGTERM with status 0 (LeakSanitizer-clean)" stop_bg kafka-mock
else
	fail "kafka-mock started"
fi

# --- metric() ------------------------------------------------------------------------------
cat >"$HARNESS_DIR/metrics.txt" <<'EOF'
# HELP records_in_total Records read.
# TYPE records_in_total counter
records_in_total{topic="iot.raw",partition="0"} 5
records_in_total{partition="1",topic="iot.raw"} 7
records_in_total{topic="iot.clean",partition="0"} 100
errors_total{kind="decode",detail="a \"quoted\", value"} 3
up 1
lag_seconds 0.25 1700000000000
EOF
murl="file://$HARNESS_DIR/metrics.txt"
check "metric: plain sample" test "$(metric "$murl" up)" = 1
check "metric: sample with a timestamp" test "$(metric "$murl" lag_seconds)" = 0.25
check "metric: sum over all series" test "$(metric "$murl" records_in_total)" = 112
check "metric: labels in any order" test "$(metric "$murl" 'records_in_total{topic="iot.raw"}')" = 12
check "metric: exact series" \
	test "$(metric "$murl" 'records_in_total{partition="1",topic="iot.raw"}')" = 7
check "metric: escaped label values" test "$(metric "$murl" 'errors_total{kind="decode"}')" = 3
metric_missing() { ! metric "$@"; }
check "metric: a missing series fails" metric_missing "$murl" nope_total

# --- cleanup, in a nested harness ----------------------------------------------------------
inner="$HARNESS_DIR/inner.sh"
cat >"$inner" <<EOF
. "$HARNESS_ROOT/tests/lib/harness.sh"
harness_init inner
start_pg && start_mosquitto && start_kafka_mock --topic x:1 || exit 1
start_bg sleeper sleep 300
pm=\$(head -n 1 "\$HARNESS_PG_DATA/postmaster.pid")
echo "\$HARNESS_DIR \${HARNESS_PIDS[*]} \$pm" >"\$1"
[ "\$2" = wait ] && sleep 300
exit 0
EOF
for mode in exit wait; do
	info="$HARNESS_DIR/inner-$mode.info"
	start_bg "inner-$mode" bash "$inner" "$info" "$mode"
	if [ $mode = exit ]; then
		check "nested harness exits 0" wait_bg inner-exit 90
	else
		wait_for "nested harness ready" 90 test -s "$info"
		st=0
		stop_bg inner-wait 60 || st=$?
		check "nested harness ends with 143 on SIGTERM" test $st = 143
	fi
	read -r idir ipids <"$info" 2>/dev/null || { fail "nested harness ($mode) wrote its state"; continue; }
	# shellcheck disable=SC2086 # a list of pids
	check "($mode) every process the nested harness started is gone" pids_gone $ipids
	check "($mode) its temp dir is removed" test ! -e "$idir"
done

harness_finish
