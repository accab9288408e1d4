#!/usr/bin/env bash
# make demo in its short form: the whole system (tools/demo.sh) for 20 s with 10 s aggregation
# windows, so that windows close and rooms complete a heating cycle. The final report's numbers
# are checked: every table has rows, the centre holds exactly the edge's rows for every mirrored
# table, every published message was saved, no errors, exit status 0. Then a run without a
# duration is stopped by Ctrl-C (SIGINT to its process group, as a terminal sends it). Neither
# run may leave a process or a temp dir behind.
source "$(dirname "$0")/../lib/harness.sh"
harness_init demo
require mosquitto psql
[ -x /usr/bin/python3 ] || harness_skip "no /usr/bin/python3"
DEMO_SECONDS=${DEMO_TEST_SECONDS:-20}
D=$HARNESS_DIR
# The demo's own temp dirs go here, so what it leaves behind can be seen.
mkdir -p "$D/tmp" && chmod 755 "$D/tmp"
TAG="demo-test-$$-$RANDOM"

# start_demo NAME SECONDS: the demo in its own process group (start_bg), with SIGINT at its
# default action: a background job of a script inherits SIGINT ignored, and bash cannot trap a
# signal ignored at its start.
start_demo() {
	start_bg "$1" env TMPDIR="$D/tmp" DEMO_TEST_TAG="$TAG" DEMO_WINDOW=10s \
		DEMO_REPORT="$D/$1.json" IOTPIPE_BIN="$IOTPIPE_BIN" \
		/usr/bin/python3 -c 'import os, signal, sys
signal.signal(signal.SIGINT, signal.SIG_DFL)
os.execvp(sys.argv[1], sys.argv[1:])' bash "$HARNESS_ROOT/tools/demo.sh" "$2"
}

# leftovers: processes that carry the run's tag or name its temp dir (PostgreSQL may not keep
# the environment: its data directory is in its command line).
leftovers() {
	local f pid
	for f in /proc/[0-9]*/environ; do
		pid=${f#/proc/}
		pid=${pid%/environ}
		[ "$pid" = $$ ] && continue
		if grep -qzx "DEMO_TEST_TAG=$TAG" "$f" 2>/dev/null ||
			tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF "$D/tmp/"; then
			printf '%s(%s) ' "$pid" "$(cat "/proc/$pid/comm" 2>/dev/null)"
		fi
	done
}
harness_diag_stdin() { sed 's/^/# /'; }
no_leftovers() {
	local left
	left=$(leftovers)
	[ -z "$left" ] || { echo "still running: $left"; return 1; }
	[ -z "$(ls -A "$D/tmp")" ] || { echo "left in TMPDIR: $(ls -A "$D/tmp")"; return 1; }
}

# --- a fixed-time run -----------------------------------------------------------------------
start_demo demo "$DEMO_SECONDS"
rc=0
wait_bg demo 150 || rc=$?
LOG=$(harness_log demo)
check "the ${DEMO_SECONDS}s demo exits 0 (exit $rc)" test "$rc" -eq 0
check "the live summary was printed while it ran" \
	test "$(grep -cE '^\[ *[0-9]+s\] mqtt [0-9.]+/s' "$LOG")" -ge 3
check "the final report was printed, with its verdict" grep -q '^result: OK$' "$LOG"
check "no process and no temp dir left behind" no_leftovers
# The report as printed, for whoever reads this test's log.
sed -n '/=* final report =*/,/^result: /p' "$LOG" | harness_diag_stdin
check "the report's numbers, in its JSON form" /usr/bin/python3 - "$D/demo.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
bad = []
def want(ok, what):
    if not ok:
        bad.append(what)
t = r["tables"]
for name, v in t.items():
    want(v["edge"] and v["edge"] > 0, "%s has rows at the edge (%s)" % (name, v["edge"]))
    if name != "raw_messages":
        want(v["central"] == v["edge"], "%s: central %s = edge %s" % (name, v["central"], v["edge"]))
sim = r["sensor_sim"]
want(sim and sim["confirmed"] == sim["messages"] > 0, "sensor-sim's messages all confirmed")
want(t["raw_messages"]["edge"] == sim["messages"],
     "raw_messages %s = messages published %s" % (t["raw_messages"]["edge"], sim["messages"]))
want(r["stages"]["cleaner: readings out"] == sim["valid_readings"],
     "readings cleaned %s = valid readings sent %s" % (r["stages"]["cleaner: readings out"],
                                                      sim["valid_readings"]))
want(t["rejected"]["edge"] == sim["invalid"] > 0,
     "one rejected row per broken message: %s, sent %s" % (t["rejected"]["edge"], sim["invalid"]))
want(r["commands"]["on"] > 0 and r["commands"]["off"] > 0, "heat pumps switched on and off")
want(r["events"].get("started", 0) > 0, "threshold episodes started")
want(r["errors"]["metrics"] == 0 and not r["errors"]["log_errors"], "no errors")
for k in ("edge_raw", "edge_readings", "central_readings"):
    lat = r["latency_ms"][k]
    want(lat["n"] > 0 and 0 <= lat["p50"] <= lat["p99"] <= lat["max"], "latency %s measured" % k)
want(all(c["ok"] for c in r["checks"]) and r["ok"], "every check of the report passed")
for b in bad:
    print("FAILED:", b)
sys.exit(1 if bad else 0)
PY

# --- Ctrl-C ---------------------------------------------------------------------------------
start_demo demo-int 0
flowing() { grep -qE 'rows edge [1-9]' "$(harness_log demo-int)"; }
if wait_for "the demo without a duration runs" 90 flowing; then
	kill -INT -- "-$(harness_pid_of demo-int)"
	rc=0
	wait_bg demo-int 60 || rc=$?
	check "Ctrl-C: the demo stops and exits 0 (exit $rc)" test "$rc" -eq 0
	check "Ctrl-C: it shows what was done before stopping" \
		grep -q '=* stopped =*' "$(harness_log demo-int)"
	check "Ctrl-C: no process and no temp dir left behind" no_leftovers
fi
harness_finish
