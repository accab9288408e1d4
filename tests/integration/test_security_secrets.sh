#!/usr/bin/env bash
# Secrets given the ways the suite supports — $IOTPIPE_MQTT_PASSWORD, --mqtt-password-file,
# $IOTPIPE_MQTT_PASSWORD_FILE, a --kafka-config file, $IOTPIPE_KAFKA_PROPS, a password inside
# $IOTPIPE_DB — never show up in --help, in logs (at debug level, with librdkafka's conf and
# security debugging on, through connection failures), in /metrics or in /proc/<pid>/cmdline of
# any service. Kafka properties pass through to librdkafka: SASL_PLAINTEXT from a --kafka-config
# file is what the clients speak (kafka-mock has no SASL, so they report the failed handshake),
# and librdkafka prints the SASL credentials as [redacted]. A property librdkafka does not know
# or a value it refuses is a configuration error: exit status 2 with the reason, before
# anything starts; a malformed --kafka-config line is refused without echoing it.
source "$(dirname "$0")/../lib/harness.sh"
harness_init security_secrets
require mosquitto mosquitto_passwd curl
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$HARNESS_ROOT/tests/lsan.supp}

D=$HARNESS_DIR
MQTT_PW=mqttSECRET-61c0a7e2 KAFKA_PW=kafkaSECRET-9d44b1f0 KAFKA_PW2=kafkaSECRET-env-27ab
PG_PW=pgSECRET-e5f8c3d6
SECRETS=(-e "$MQTT_PW" -e "$KAFKA_PW" -e "$KAFKA_PW2" -e "$PG_PW")
PROGS=(mqtt-ingestor cleaner aggregator actuator forecaster mirror-relay raw-saver sensor-sim
	iot-cat kafka-mock)
declare -A BIN
for p in "${PROGS[@]}"; do BIN[$p]=$(harness_bin "$p") || exit 1; done

printf '%s\n' "$MQTT_PW" >"$D/mqtt.pw"
cat >"$D/kafka.properties" <<EOF
# SASL credentials for every Kafka client of the service
security.protocol=SASL_PLAINTEXT
sasl.mechanism=PLAIN
sasl.username=iotpipe
sasl.password=$KAFKA_PW
EOF
chmod 600 "$D/mqtt.pw" "$D/kafka.properties"
RULES="$HARNESS_ROOT/examples/rules/actuator.rules"

# ---- --help, with every secret in the environment --------------------------------------------
export IOTPIPE_MQTT_PASSWORD=$MQTT_PW IOTPIPE_DB="postgresql://iot:$PG_PW@127.0.0.1:1/iot"
export IOTPIPE_KAFKA_PROPS="sasl.password=$KAFKA_PW2"
for p in "${PROGS[@]}"; do
	"${BIN[$p]}" --help >"$D/help-$p.txt" 2>&1
done
unset IOTPIPE_MQTT_PASSWORD IOTPIPE_DB IOTPIPE_KAFKA_PROPS
check "every program printed its --help" sh -c "for f in '$D'/help-*.txt; do
	grep -q '^Usage: ' \"\$f\" || exit 1; done"
check "no secret in any --help output" sh -c "! cat '$D'/help-*.txt | grep -F ${SECRETS[*]}"
check "--help tells where secrets come from, never argv" \
	grep -q 'secret: from \$IOTPIPE_MQTT_PASSWORD or \$IOTPIPE_MQTT_PASSWORD_FILE, never from argv' \
	"$D/help-mqtt-ingestor.txt"
check "a secret option is refused on the command line" sh -c "
	'${BIN[mqtt-ingestor]}' --mqtt-password x >/dev/null 2>&1; [ \$? -eq 2 ]"

# ---- Kafka properties: passed through, or refused with exit 2 ----------------------------------
usage_error() { # usage_error PATTERN CMD...: exit 2, PATTERN in stderr, no secret in it
	local pattern=$1 rc=0
	shift
	timeout -k 5 20 "$@" </dev/null >"$D/usage.out" 2>"$D/usage.err" || rc=$?
	[ $rc -eq 2 ] && grep -q "$pattern" "$D/usage.err" &&
		! grep -F -q "${SECRETS[@]}" "$D/usage.err" "$D/usage.out"
}
for p in mqtt-ingestor cleaner aggregator actuator forecaster raw-saver iot-cat; do
	extra=()
	[ "$p" = actuator ] && extra=(--rules "$RULES")
	[ "$p" = iot-cat ] && extra=(-t iot.raw)
	check "$p: an unknown -X property is a configuration error (exit 2)" usage_error \
		'Kafka property no.such.property: No such configuration property' \
		"${BIN[$p]}" -b 127.0.0.1:1 -X no.such.property=1 "${extra[@]}"
done
check "mirror-relay: an unknown target.-prefixed property too" usage_error \
	'Kafka property no.such.property' "${BIN[mirror-relay]}" -b 127.0.0.1:1 -B 127.0.0.1:2 \
	-t iot.clean -X target.no.such.property=1
check "an invalid value is refused with librdkafka's reason" usage_error \
	'Invalid value "bogus" for configuration property "security.protocol"' \
	"${BIN[cleaner]}" -b 127.0.0.1:1 -X security.protocol=bogus
printf 'security.protocol=SASL_SSL\nsasl.password: %s\n' "$KAFKA_PW" >"$D/bad.properties"
check "a --kafka-config line without '=' is refused without echoing it" usage_error \
	"kafka-config $D/bad.properties:2: expected PROP=VALUE" \
	"${BIN[cleaner]}" -b 127.0.0.1:1 --kafka-config "$D/bad.properties"

# ---- services running with their secrets ------------------------------------------------------
start_kafka_mock --topic iot.raw:2 --topic iot.clean:2 --topic iot.aggregates:2 || exit 1
: >"$D/passwd"
mosquitto_passwd -b "$D/passwd" iotpipe "$MQTT_PW" || exit 1
MQ=$(free_port)
cat >"$D/mosquitto.conf" <<EOF
allow_anonymous false
password_file $D/passwd
user $(id -un)
listener $MQ 127.0.0.1
log_dest stderr
EOF
start_bg mosquitto mosquitto -c "$D/mosquitto.conf"
wait_for "mosquitto listening on $MQ" 15 port_open "$MQ" || exit 1
URL=mqtt://127.0.0.1:$MQ

KAFKA=(-b "$BOOTSTRAP" --kafka-config "$D/kafka.properties" --log-level debug
	-X debug=conf,security,broker)
declare -A PORT
run() { # run NAME CMD...: a service with a metrics port
	local name=$1
	shift
	PORT[$name]=$(free_port)
	start_bg "$name" "$@" --metrics-port "${PORT[$name]}"
	PID[$name]=$BG_PID
}
declare -A PID
export IOTPIPE_MQTT_PASSWORD=$MQTT_PW
run mqtt-ingestor "${BIN[mqtt-ingestor]}" "${KAFKA[@]}" --mqtt "$URL" --mqtt-username iotpipe \
	--client-id sec-ing
unset IOTPIPE_MQTT_PASSWORD
run actuator "${BIN[actuator]}" "${KAFKA[@]}" --rules "$RULES" --mqtt "$URL" \
	--mqtt-username iotpipe --mqtt-password-file "$D/mqtt.pw" --client-id sec-act
run cleaner "${BIN[cleaner]}" "${KAFKA[@]}"
run forecaster "${BIN[forecaster]}" "${KAFKA[@]}" --state-topic none
run mirror-relay "${BIN[mirror-relay]}" -b "$BOOTSTRAP" -B "$BOOTSTRAP" -t iot.clean \
	-T 'copy.{topic}' --kafka-config "$D/kafka.properties" --log-level debug \
	-X debug=conf,security
# The environment form of -X, as the Helm chart sets it (used when argv has no -X at all).
export IOTPIPE_KAFKA_PROPS="security.protocol=SASL_PLAINTEXT;sasl.mechanism=PLAIN;sasl.username=u;sasl.password=$KAFKA_PW2;debug=conf,security"
run aggregator "${BIN[aggregator]}" -b "$BOOTSTRAP" --log-level debug
unset IOTPIPE_KAFKA_PROPS
# raw-saver opens the database before Kafka; this one never reaches it.
export IOTPIPE_DB="postgresql://iot:$PG_PW@127.0.0.1:1/iot"
run raw-saver "${BIN[raw-saver]}" -b "$BOOTSTRAP" --log-level debug --migrations ''
unset IOTPIPE_DB
SERVICES=(mqtt-ingestor actuator cleaner aggregator forecaster mirror-relay raw-saver)

check "sensor-sim publishes with its password from \$IOTPIPE_MQTT_PASSWORD_FILE (debug log)" \
	sh -c "IOTPIPE_MQTT_PASSWORD_FILE='$D/mqtt.pw' '${BIN[sensor-sim]}' --mqtt '$URL' \
	--mqtt-username iotpipe --count 50 --rate 0 --no-control --log-level debug \
	>'$D/sensor-sim.err' 2>&1"

served() { curl -fsS "http://127.0.0.1:$1/metrics" >/dev/null; }
for s in "${SERVICES[@]}"; do
	wait_for "$s serves /metrics" 30 served "${PORT[$s]}"
done
# What reached librdkafka: every Kafka client dumps its configuration and tries SASL.
for s in cleaner aggregator forecaster mirror-relay mqtt-ingestor actuator; do
	wait_for "$s: SASL_PLAINTEXT reached librdkafka, which tried the handshake" 30 \
		grep -q 'sasl_plaintext://.*SASL' "$(harness_log "$s")"
done
check "librdkafka's configuration dump shows the password as [redacted]" \
	grep -q 'sasl.password = \[redacted\]' "$(harness_log cleaner)"
check "aggregator took them from \$IOTPIPE_KAFKA_PROPS" \
	grep -q 'sasl.password = \[redacted\]' "$(harness_log aggregator)"
wait_for "raw-saver logged its failing database connection" 30 \
	grep -q 'cannot connect to PostgreSQL' "$(harness_log raw-saver)"
check "the MQTT services connected with their passwords" sh -c "
	grep -q 'client sec-ing: connected' '$(harness_log mqtt-ingestor)' &&
	grep -q 'client sec-act: connected' '$(harness_log actuator)'"

for s in "${SERVICES[@]}"; do
	curl -fsS "http://127.0.0.1:${PORT[$s]}/metrics" >"$D/metrics-$s.txt"
	tr '\0' ' ' <"/proc/${PID[$s]}/cmdline" >"$D/cmdline-$s.txt"
done
check "the services' /metrics hold no secret" sh -c "! cat '$D'/metrics-*.txt | grep -F ${SECRETS[*]}"
check "no service has a secret in /proc/<pid>/cmdline" \
	sh -c "! cat '$D'/cmdline-*.txt | grep -F ${SECRETS[*]}"
for s in "${SERVICES[@]}"; do stop_bg "$s" >/dev/null || true; done
check "no secret in any service's log (debug level, through refusals and failures)" sh -c "
	! cat '$D'/*.log '$D'/sensor-sim.err | grep -F ${SECRETS[*]}"
check "the logs were written at debug level, so the check saw everything" \
	grep -q ' DEBUG ' "$(harness_log cleaner)"
harness_finish
