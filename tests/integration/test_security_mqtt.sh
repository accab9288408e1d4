#!/usr/bin/env bash
# MQTT access control against a mosquitto configured here: a password file, an ACL file, a plain
# listener that needs a password and a TLS listener that also needs a client certificate, with
# a CA, server and client certificates made by openssl for this run.
#  - mqtt-ingestor and sensor-sim carry messages with user name and password over mqtt:// and
#    over mqtts:// (CA + client certificate), the password coming from the environment or a file;
#  - a wrong password makes mqtt-ingestor, actuator and sensor-sim exit 1 at once, with the
#    broker's refusal in the log (and the password nowhere in it);
#  - TLS is refused when the broker's certificate comes from an unknown CA, when its name does
#    not match the URL (paho says why only at --log-level debug), and when the client has no
#    certificate (the broker's log says why; the client only sees the connection fail);
#  - the actuator's user may publish only to heat-pump command topics: commands of a rule
#    aimed elsewhere are refused by the broker (MQTT 5 PUBACK 0x87 from mosquitto 2.0), counted
#    in iotpipe_actuator_publish_failed_total and logged; the permitted ones reach a device.
#    Over MQTT 3.1.1 the same refusal is invisible to a client (PUBACK has no reason code): the
#    test shows it, as docs/SECURITY.md says.
source "$(dirname "$0")/../lib/harness.sh"
harness_init security_mqtt
require mosquitto mosquitto_passwd mosquitto_sub openssl curl python3
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$HARNESS_ROOT/tests/lsan.supp}

ING=$(harness_bin mqtt-ingestor) || exit 1
SIM=$(harness_bin sensor-sim) || exit 1
ACT=$(harness_bin actuator) || exit 1
CAT=$(harness_bin iot-cat) || exit 1
D=$HARNESS_DIR
N=${SECURITY_MQTT_N:-300}

# ---- certificates ---------------------------------------------------------------------------
# The server certificate names only "localhost": mqtts://127.0.0.1 must then fail the name check.
P=$D/pki
check "openssl made a CA, a server and a client certificate" harness_pki "$P"

# ---- the broker -----------------------------------------------------------------------------
# Passwords are distinctive so that a leak into any log would be found by grep.
ING_PW=ingPW-7f3a91c2 ACT_PW=actPW-0b5e44d9 SIM_PW=simPW-c81d2e67 DEV_PW=devPW-5a09f1b3
: >"$D/passwd"
for u in ingestor:$ING_PW actuator:$ACT_PW sim:$SIM_PW device:$DEV_PW; do
	mosquitto_passwd -b "$D/passwd" "${u%%:*}" "${u#*:}" || exit 1
done
printf '%s\n' "$ING_PW" >"$D/ingestor.pw"
printf '%s\n' "$ACT_PW" >"$D/actuator.pw"
printf 'wrong-%s\n' "$ING_PW" >"$D/wrong.pw"
chmod 600 "$D"/*.pw
cat >"$D/acl" <<'EOF'
user ingestor
topic read #
user actuator
topic write +/+/heatpump/set
user sim
topic write +/+/temperature
topic read +/+/heatpump/set
user device
topic read #
EOF
PLAIN=$(free_port) TLS=$(free_port)
cat >"$D/mosquitto.conf" <<EOF
per_listener_settings false
allow_anonymous false
password_file $D/passwd
acl_file $D/acl
user $(id -un)
listener $PLAIN 127.0.0.1
listener $TLS 127.0.0.1
cafile $P/ca.crt
certfile $P/server.crt
keyfile $P/server.key
require_certificate true
log_dest stderr
log_type error
log_type warning
log_type notice
log_type information
EOF
start_bg mosquitto mosquitto -c "$D/mosquitto.conf"
listening() { port_open "$PLAIN" && port_open "$TLS"; }
wait_for "mosquitto listening on $PLAIN and $TLS" 15 listening || exit 1
URL=mqtt://127.0.0.1:$PLAIN
TURL=mqtts://localhost:$TLS
TLS_FLAGS=(--mqtt-ca "$P/ca.crt" --mqtt-cert "$P/client.crt" --mqtt-key "$P/client.key")

# ---- passwords and TLS carry messages -------------------------------------------------------
p1=$(free_port) p2=$(free_port)
export IOTPIPE_MQTT_PASSWORD=$ING_PW
start_bg --stdout "$D/plain.jsonl" ing-plain "$ING" --out - --mqtt "$URL" \
	--mqtt-username ingestor -t '+/+/temperature' --client-id ing-plain --session-expiry 0 \
	--metrics-port "$p1"
unset IOTPIPE_MQTT_PASSWORD
start_bg --stdout "$D/tls.jsonl" ing-tls "$ING" --out - --mqtt "$TURL" "${TLS_FLAGS[@]}" \
	--mqtt-username ingestor --mqtt-password-file "$D/ingestor.pw" -t '+/+/temperature' \
	--client-id ing-tls --session-expiry 0 --metrics-port "$p2"
wait_for "both ingestors connected (password; password + mutual TLS)" 30 sh -c \
	"curl -fsS http://127.0.0.1:$p1/readyz && curl -fsS http://127.0.0.1:$p2/readyz"
sim_flags=(--format home --sites 2 --devices 3 --rate 0 --count "$N" --qos 1 --no-control
	--connect-timeout 10s --mqtt-username sim)
check "sensor-sim published $N messages over mqtt:// (password from \$IOTPIPE_MQTT_PASSWORD)" \
	env IOTPIPE_MQTT_PASSWORD="$SIM_PW" "$SIM" "${sim_flags[@]}" --mqtt "$URL" --client-id sim-1
printf '%s\n' "$SIM_PW" >"$D/sim.pw"
check "sensor-sim published $N messages over mqtts:// (client certificate, password file)" \
	env IOTPIPE_MQTT_PASSWORD_FILE="$D/sim.pw" "$SIM" "${sim_flags[@]}" --mqtt "$TURL" \
	"${TLS_FLAGS[@]}" --client-id sim-2 --seed 2
lines() { [ "$(wc -l <"$1")" -ge "$2" ]; }
wait_for "the ingestor on mqtt:// received all $((2 * N))" 30 lines "$D/plain.jsonl" $((2 * N))
wait_for "the ingestor on mqtts:// received all $((2 * N))" 30 lines "$D/tls.jsonl" $((2 * N))
check "each ingestor received every message exactly once" \
	test "$(wc -l <"$D/plain.jsonl")" -eq $((2 * N)) -a "$(wc -l <"$D/tls.jsonl")" -eq $((2 * N))
check "the TLS ingestor logged its mqtts:// connection" \
	grep -q "mqtts://localhost:$TLS client ing-tls: connected" "$(harness_log ing-tls)"

# ---- wrong passwords: refused at once, exit 1, the reason in the log --------------------------
refused() { # refused NAME CMD...: exits 1 within 20 s and logs the broker's refusal
	local name=$1 rc=0
	shift
	timeout -k 5 20 "$@" >"$D/$name.out" 2>"$D/$name.err" </dev/null || rc=$?
	[ $rc -eq 1 ] &&
		grep -Eq 'refused by the broker: (Not authorized|not authorized|bad user name or password)' \
			"$D/$name.err" && ! grep -q "$ING_PW" "$D/$name.err" "$D/$name.out"
}
RULES=$D/rules
cat >"$RULES" <<'EOF'
# Heat pumps, which the actuator's user may command, and an alarm topic, which it may not.
[rule heating]
metric       = temperature
low          = 20
high         = 25
topic        = {site}/{device}/heatpump/set
low_payload  = {"status":"1"}
high_payload = {"status":"0"}

[rule alarm]
metric       = temperature
low          = 5
high         = 30
topic        = alarms/{site}/{device}
low_payload  = {"frost":true}
high_payload = {"frost":false}
EOF
check "mqtt-ingestor with a wrong password exits 1 with the refusal" \
	refused ing-wrong "$ING" --out - --mqtt "$URL" --mqtt-username ingestor \
	--mqtt-password-file "$D/wrong.pw" --client-id ing-wrong
check "mqtt-ingestor over MQTT 3.1.1 with a wrong password too" \
	refused ing-wrong311 "$ING" --out - --mqtt "$URL" --mqtt-version 3.1.1 \
	--mqtt-username ingestor --mqtt-password-file "$D/wrong.pw" --client-id ing-wrong311
check "actuator with a wrong password exits 1 with the refusal" \
	refused act-wrong env IOTPIPE_MQTT_PASSWORD_FILE="$D/wrong.pw" "$ACT" --in - --out - \
	--rules "$RULES" --mqtt "$URL" --mqtt-username actuator --client-id act-wrong
check "sensor-sim with a wrong password exits 1 with the refusal" \
	refused sim-wrong env IOTPIPE_MQTT_PASSWORD_FILE="$D/wrong.pw" "$SIM" --mqtt "$URL" \
	--mqtt-username sim --count 5 --client-id sim-wrong
check "a wrong password over mqtts:// is refused the same way" \
	refused sim-wrong-tls env IOTPIPE_MQTT_PASSWORD_FILE="$D/wrong.pw" "$SIM" --mqtt "$TURL" \
	"${TLS_FLAGS[@]}" --mqtt-username sim --count 5 --client-id sim-wrong-tls

# ---- TLS refusals ---------------------------------------------------------------------------
tls_refused() { # tls_refused NAME PATTERN CMD...: no connection, exit 1, TLS reason in the log
	local name=$1 pattern=$2 rc=0
	shift 2
	timeout -k 5 30 "$@" --connect-timeout 3s --count 5 --mqtt-username sim --no-control \
		>"$D/$name.out" 2>"$D/$name.err" </dev/null || rc=$?
	[ $rc -eq 1 ] && grep -Eq "$pattern" "$D/$name.err" &&
		! grep -q 'connected (MQTT' "$D/$name.err"
}
export IOTPIPE_MQTT_PASSWORD=$SIM_PW
check "a broker certificate from an unknown CA is refused" \
	tls_refused tls-ca 'certificate verify failed' "$SIM" --mqtt "$TURL" \
	--mqtt-ca "$P/other-ca.crt" --mqtt-cert "$P/client.crt" --mqtt-key "$P/client.key" \
	--client-id sim-ca
check "a broker certificate for another name is refused (mqtts://127.0.0.1, cert for localhost)" \
	tls_refused tls-name 'X509_check_host for hostname 127.0.0.1 failed' "$SIM" \
	--mqtt "mqtts://127.0.0.1:$TLS" "${TLS_FLAGS[@]}" --client-id sim-name --log-level debug
check "a client without a certificate is refused by the mutual-TLS listener" \
	tls_refused tls-nocert 'no connection within 3000 ms' "$SIM" --mqtt "$TURL" \
	--mqtt-ca "$P/ca.crt" --client-id sim-nocert
check "... and the broker logged why" grep -q 'peer did not return a certificate' \
	"$(harness_log mosquitto)"
unset IOTPIPE_MQTT_PASSWORD

# ---- ACL: the actuator may only command heat pumps -----------------------------------------
start_kafka_mock --topic iot.clean:2 --topic iot.commands:2 --topic iot.events:2 || exit 1
start_bg --stdout "$D/device.txt" device mosquitto_sub -h 127.0.0.1 -p "$PLAIN" -u device \
	-P "$DEV_PW" -V mqttv5 -q 1 -v -t '#'
wait_for "the device's subscriber is connected" 15 \
	grep -q "u'device'" "$(harness_log mosquitto)"
aport=$(free_port)
amet="http://127.0.0.1:$aport/metrics"
start_bg actuator "$ACT" -b "$BOOTSTRAP" --rules "$RULES" --mqtt "$TURL" "${TLS_FLAGS[@]}" \
	--mqtt-username actuator --mqtt-password-file "$D/actuator.pw" --client-id act-1 \
	--metrics-port "$aport" --checkpoint-ms 200ms
wait_for "actuator connected over mqtts://" 30 curl -fsS "http://127.0.0.1:$aport/readyz"
now=$(date +%s%3N)
reading() { # reading SITE DEVICE VALUE
	printf '{"site":"%s","device":"%s","sensor":"t","metric":"temperature","unit":"C","value":%s,"ts":%s,"received_at":%s,"location":null,"device_type":null,"tags":{}}\n' \
		"$1" "$2" "$3" "$now" "$now"
}
# kitchen: heating low + alarm low; bath: heating low; attic: heating high + alarm high.
{
	reading home1 kitchen 3
	reading home1 bath 15
	reading home2 attic 40
} >"$D/readings.jsonl"
check "three readings produced to iot.clean" \
	"$CAT" -b "$BOOTSTRAP" -P -t iot.clean -T Reading -k site <"$D/readings.jsonl"
failed_is() { [ "$(metric "$amet" iotpipe_actuator_publish_failed_total)" = "$1" ]; }
wait_for "the two alarm commands were refused and counted" 30 failed_is 2
wait_for "the device received the three heat-pump commands" 20 sh -c \
	"[ \$(grep -c '/heatpump/set' '$D/device.txt') -ge 3 ]"
sleep 1 # anything published on a forbidden topic would have arrived by now
check "the device received exactly the permitted commands, nothing on alarms/" python3 - \
	"$D/device.txt" <<'PY'
import sys
got = sorted(l.strip() for l in open(sys.argv[1]) if l.strip())
want = sorted(['home1/kitchen/heatpump/set {"status":"1"}', 'home1/bath/heatpump/set {"status":"1"}',
               'home2/attic/heatpump/set {"status":"0"}'])
assert got == want, got
PY
check "each refusal was logged with the broker's reason (PUBACK 0x87)" test "$(grep -c \
	'command of rule alarm .* not confirmed: PUBACK reason 0x87 Not authorized' \
	"$(harness_log actuator)")" -eq 2
check "the actuator's commands counter includes the refused ones" \
	test "$(metric "$amet" iotpipe_actuator_commands_total)" = 5
rc=0
stop_bg actuator || rc=$?
check "actuator exits 0 on SIGTERM (LSan-clean)" test "$rc" -eq 0

# The same over MQTT 3.1.1: mosquitto drops the publish but acknowledges it as if delivered.
aport=$(free_port)
amet="http://127.0.0.1:$aport/metrics"
start_bg act311 "$ACT" -b "$BOOTSTRAP" --rules "$RULES" --mqtt "$URL" --mqtt-version 3.1.1 \
	--mqtt-username actuator --mqtt-password-file "$D/actuator.pw" --client-id act-311 \
	--group act311 --metrics-port "$aport" --checkpoint-ms 200ms
wait_for "the 3.1.1 actuator connected" 30 curl -fsS "http://127.0.0.1:$aport/readyz"
commands_is() { [ "$(metric "$amet" iotpipe_actuator_commands_total)" = "$1" ]; }
wait_for "the 3.1.1 actuator issued the same five commands" 30 commands_is 5
sleep 1
check "over MQTT 3.1.1 a refused publish cannot be seen: nothing counted as failed" \
	test "$(metric "$amet" iotpipe_actuator_publish_failed_total)" = 0
check "... and still nothing reached alarms/ (the broker dropped them)" \
	test "$(grep -c '^alarms/' "$D/device.txt")" -eq 0
rc=0
stop_bg act311 || rc=$?
check "the 3.1.1 actuator exits 0 on SIGTERM" test "$rc" -eq 0

# The harness writes each command line atop its log, and the device's password is on
# mosquitto_sub's: those are the test's own.
check "no password appears in any log or output of the programs under test" sh -c "
	! grep -h -v '^=== ' '$D'/*.log '$D'/*.err '$D'/*.out '$D'/*.jsonl | grep -F -e '$ING_PW' \
		-e '$ACT_PW' -e '$SIM_PW' -e '$DEV_PW'"
harness_finish
