#!/usr/bin/env bash
# actuator killed with SIGKILL while threshold episodes are open: after the restarts, the
# distinct events in iot.events are exactly those of an uninterrupted run over the same input
# (run on a second kafka-mock), every re-sent event repeats its identity with the same content,
# and no command of the uninterrupted run is missing. When raw-saver is built, both runs'
# events also go through it into PostgreSQL, and the threshold_events tables are equal.
#
# The input is deterministic Readings fed straight into iot.clean: 80 pressure sensors on 4
# sites, each swinging across the thresholds with its own period and phase, so at any moment
# many sensors are inside an episode.
source "$(dirname "$0")/../lib/harness.sh"
harness_init actuator_kill
require python3 curl
# paho keeps a client record after destroy when it ever reconnected (tests/lsan.supp).
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$HARNESS_ROOT/tests/lsan.supp}

ACT=$(harness_bin actuator) || exit 1
CAT=$(harness_bin iot-cat) || exit 1
D=$HARNESS_DIR
ROUNDS=${ACTUATOR_KILL_ROUNDS:-250} # readings per sensor
CHUNK=10                            # rounds per produced chunk
KILLS=3

# Two event rules on the same readings (episodes of different lengths overlap) and a command
# rule, all on pressure.
cat >"$D/kill.rules" <<'EOF'
[rule overpressure]
metric     = pressure
threshold  = 150
hysteresis = 5

[rule high-band]
metric     = pressure
site       = s?
threshold  = 165
hysteresis = 20

[rule relief-valve]
metric       = pressure
low          = 100
high         = 160
topic        = {site}/{device}/valve/set
low_payload  = {"open":false,"sensor":"{sensor}"}
high_payload = {"open":true,"at":{value}}
EOF

cat >"$D/gen.py" <<'EOF'
# Readings of rounds [first, first + count): every round has one reading of each of the 80
# sensors, event time 1 s apart. Values depend only on (sensor, round): the same on every run.
import json, math, sys
first, count = int(sys.argv[1]), int(sys.argv[2])
T0 = 1704067200000  # 2024-01-01T00:00:00Z
for i in range(first, first + count):
    n = 0
    for s in range(4):
        for d in range(10):
            for k in range(2):
                n += 1
                period = 40 + (n * 37) % 90
                v = 130 + 45 * math.sin(2 * math.pi * i / period + n) + ((i * 7 + n * 13) % 11 - 5) * 0.4
                # Now and then exactly on a threshold or on threshold - hysteresis.
                if (i + n) % 53 == 0:
                    v = (150.0, 145.0, 165.0, 160.0)[(i + n) % 4]
                ts = T0 + i * 1000 + n
                print(json.dumps({"site": "s%d" % s, "device": "d%d" % d, "sensor": "p%d" % k,
                                  "metric": "pressure", "unit": "bar", "value": round(v, 3),
                                  "ts": ts, "received_at": ts, "location": None,
                                  "device_type": None, "tags": {}}))
EOF
TOTAL=$((ROUNDS * 80))

start_kafka_mock --name edge --topic iot.clean:4 --topic iot.events:4 --topic iot.commands:4 ||
	exit 1
start_kafka_mock --name ref --topic iot.clean:4 --topic iot.events:4 --topic iot.commands:4 ||
	exit 1

port=$(free_port)
murl="http://127.0.0.1:$port/metrics"
# A killed member stays in the group until its session times out: keep that short. Frequent
# checkpoints, so every kill lands after some commits and before others.
act_flags=(--rules "$D/kill.rules" --checkpoint-ms 200ms --checkpoint-records 400
	-X session.timeout.ms=6000 -X heartbeat.interval.ms=500)

# ---- the uninterrupted run ----
python3 "$D/gen.py" 0 "$ROUNDS" >"$D/all.jsonl"
check "reference input produced ($TOTAL readings)" \
	"$CAT" -b "$BOOTSTRAP_REF" -P -t iot.clean -T Reading -k site <"$D/all.jsonl"
start_bg ref "$ACT" -b "$BOOTSTRAP_REF" "${act_flags[@]}" --metrics-port "$port"
processed() { [ "$(metric "$murl" iotpipe_actuator_readings_total)" = "$1" ]; }
wait_for "reference run processed $TOTAL readings" 90 processed "$TOTAL"
rc=0
stop_bg ref || rc=$?
check "reference run exits 0 on SIGTERM" test "$rc" -eq 0

# ---- the run with kills: readings keep arriving while the actuator dies and restarts ----
cat >"$D/produce.sh" <<EOF
set -e
for ((first = 0; first < $ROUNDS; first += $CHUNK)); do
	python3 "$D/gen.py" "\$first" $CHUNK |
		"$CAT" -b "$BOOTSTRAP_EDGE" -P -t iot.clean -T Reading -k site 2>>"$D/cat.err"
	sleep 0.4
done
EOF
start_bg producer bash "$D/produce.sh"

open_episodes() { metric "$murl" iotpipe_actuator_open_episodes; }
has_open() { [ "$(open_episodes)" -gt 0 ] 2>/dev/null; }
midrun=0
for life in $(seq 1 $((KILLS + 1))); do
	start_bg "act$life" "$ACT" -b "$BOOTSTRAP_EDGE" "${act_flags[@]}" --metrics-port "$port"
	[ "$life" -gt "$KILLS" ] && break
	wait_for "life $life: episodes open" 60 has_open || break
	sleep "1.$((RANDOM % 10))"
	open=$(open_episodes)
	done_n=$(metric "$murl" iotpipe_actuator_readings_total)
	replayed=$(metric "$murl" iotpipe_actuator_replayed_total)
	kill_bg "act$life" KILL
	harness_diag "life $life: SIGKILL with $open episodes open, after $done_n readings" \
		"($replayed outputs withheld as already emitted)"
	[ "${open:-0}" -gt 0 ] && midrun=$((midrun + 1))
done
check "all $KILLS kills landed with episodes open ($midrun did)" test "$midrun" -eq "$KILLS"
check "the producer finished" wait_bg producer 120

"$CAT" -b "$BOOTSTRAP_EDGE" -C -E -t iot.clean -e >"$D/edge-in.jsonl" 2>/dev/null
check "the killed run's input is complete ($TOTAL readings)" \
	test "$(wc -l <"$D/edge-in.jsonl")" -eq "$TOTAL"
# Partitions that hold readings (sites may share one).
parts=$(python3 -c 'import json,sys; print(len({json.loads(l)["partition"] for l in open(sys.argv[1])}))' \
	"$D/edge-in.jsonl")
# The last life has caught up when its consumer lag is 0 on each of them.
caught_up() {
	local lags
	lags=$(curl -fsS --max-time 5 "$murl" | grep '^iotpipe_consumer_lag{') || return 1
	[ "$(wc -l <<<"$lags")" -eq "$parts" ] && ! grep -qv ' 0$' <<<"$lags"
}
wait_for "the last life caught up with all $TOTAL readings" 90 caught_up
rc=0 # SIGTERM: outputs acknowledged, then the final commit
stop_bg "act$((KILLS + 1))" || rc=$?
check "the last life exits 0 on SIGTERM" test "$rc" -eq 0

"$CAT" -b "$BOOTSTRAP_REF" -C -t iot.events -e >"$D/ref-events.jsonl" 2>"$D/cat-ref.err"
"$CAT" -b "$BOOTSTRAP_EDGE" -C -t iot.events -e >"$D/edge-events.jsonl" 2>"$D/cat-edge.err"
"$CAT" -b "$BOOTSTRAP_REF" -C -t iot.commands -e >"$D/ref-cmds.jsonl" 2>>"$D/cat-ref.err"
"$CAT" -b "$BOOTSTRAP_EDGE" -C -t iot.commands -e >"$D/edge-cmds.jsonl" 2>>"$D/cat-edge.err"

check "distinct events equal the uninterrupted run's" python3 - "$D/ref-events.jsonl" \
	"$D/edge-events.jsonl" "$D/ref-cmds.jsonl" "$D/edge-cmds.jsonl" "$D/summary.txt" <<'PY'
import collections, json, sys
def load(path):
    return [json.loads(l) for l in open(path)]
ID = ("site", "device", "sensor", "metric", "rule", "started_at", "state")
ref, edge = load(sys.argv[1]), load(sys.argv[2])
def canon(e):
    return json.dumps(e, sort_keys=True)
# Within one run an identity always carries the same content: a re-sent event is a copy.
for run, evs in (("reference", ref), ("killed", edge)):
    by_id = collections.defaultdict(set)
    for e in evs:
        by_id[tuple(e[k] for k in ID)].add(canon(e))
    bad = {k: v for k, v in by_id.items() if len(v) > 1}
    assert not bad, (run, "identity with two contents", list(bad.items())[:3])
r, g = set(map(canon, ref)), set(map(canon, edge))
assert len(ref) == len(r), "the uninterrupted run emitted an event twice"
started = sum(1 for e in ref if e["state"] == "started")
ended = sum(1 for e in ref if e["state"] == "ended")
assert started > 100 and ended > 100, (started, ended)
assert r == g, ("missing", sorted(r - g)[:3], "extra", sorted(g - r)[:3])
# Commands: a restart may repeat a command (same side, same device state) but never lose one.
def cmd_key(c):
    return (c["topic"], c["payload"], c["value"], c["reading_ts"])
rc = collections.Counter(map(cmd_key, load(sys.argv[3])))
gc = collections.Counter(map(cmd_key, load(sys.argv[4])))
assert sum(rc.values()) > 100, sum(rc.values())
missing = rc - gc
assert not missing, ("commands missing", list(missing)[:3])
with open(sys.argv[5], "w") as f:
    print("%d distinct events (%d started, %d ended); the killed run wrote %d records "
          "(%d re-sent); %d commands, %d in the killed run" % (len(r), started, ended,
          len(edge), len(edge) - len(g), sum(rc.values()), sum(gc.values())), file=f)
PY
[ -f "$D/summary.txt" ] && harness_diag "$(cat "$D/summary.txt")"

# ---- the threshold_events table, when raw-saver is available ----
SAVER=$(harness_bin raw-saver 2>/dev/null) || SAVER=
if [ -z "$SAVER" ] || ! "$SAVER" --help 2>/dev/null | grep -q threshold_events; then
	harness_diag "raw-saver is not built: threshold_events not compared"
elif ! command -v psql >/dev/null || ! harness_pg_bin >/dev/null 2>&1; then
	harness_diag "PostgreSQL is not installed: threshold_events not compared"
else
	MIG="$HARNESS_ROOT/schemas/postgres"
	start_pg || exit 1
	for db in ref edge; do
		psql -XqAc "create database $db" || exit 1
		check "migrations ($db)" "$SAVER" --db "dbname=$db" --migrations "$MIG" --migrate
	done
	sport=$(free_port)
	rport=$(free_port)
	start_bg saver-ref "$SAVER" -b "$BOOTSTRAP_REF" --db dbname=ref --migrations "$MIG" \
		--in iot.events -g saver-events --batch-ms 200ms --metrics-port "$rport"
	start_bg saver-edge "$SAVER" -b "$BOOTSTRAP_EDGE" --db dbname=edge --migrations "$MIG" \
		--in iot.events -g saver-events --batch-ms 200ms --metrics-port "$sport"
	rows() { psql -XqAt -d "$1" -c 'select count(*) from threshold_events'; }
	distinct=$(python3 -c 'import json,sys; print(len({l for l in open(sys.argv[1])}))' \
		"$D/ref-events.jsonl")
	rows_are() { [ "$(rows "$1")" = "$2" ]; }
	wait_for "reference events saved ($distinct rows)" 60 rows_are ref "$distinct"
	wait_for "killed run's events saved ($distinct rows)" 30 rows_are edge "$distinct"
	q='select site, device, sensor, metric, rule, threshold, hysteresis, state, started_at,
	   ended_at, exceeded_for_ms, average, max, count from threshold_events order by 1, 2, 3, 4,
	   5, 9, 8'
	psql -XqAt -d ref -c "$q" >"$D/ref-table.txt"
	psql -XqAt -d edge -c "$q" >"$D/edge-table.txt"
	check "threshold_events equal the uninterrupted run's ($(wc -l <"$D/ref-table.txt") rows)" \
		cmp "$D/ref-table.txt" "$D/edge-table.txt"
	for s in saver-ref saver-edge; do
		rc=0
		stop_bg "$s" || rc=$?
		check "$s exits 0 on SIGTERM" test "$rc" -eq 0
	done
fi
harness_finish
