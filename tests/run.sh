#!/usr/bin/env bash
# The test command behind `make test` (which builds the sanitized variant first).
#
#   tests/run.sh [PATTERN...]    run every test, or those whose name contains a PATTERN (- and _ alike)
#                                (names look like unit/common/test_avro, integration/test_x)
#
# Unit tests: every tests/unit/<dir>/test_*.c is a cmocka binary in build/asan/unit/<dir>/; each
# of its cases counts. Integration tests: every tests/integration/test_*.sh counts once; exit 0
# passes, 77 is skipped, anything else fails; JOBS of them (default: the number of cores) run at
# once, JOBS=1 runs them one by one. Each runs under a timeout (UT, default 120 s, for a unit
# binary; T, default 300 s, for a script). Outputs go to build/test-logs/<run>/ (also
# build/test-logs/latest) and are shown when a test fails. A test that leaves a process running
# fails too.
#
# The last line is always "N passed, N failed" (", N skipped" when some were); the exit status is
# 0 only when nothing failed.
set -uo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT" || exit 2

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0:halt_on_error=1:strict_string_checks=1:check_initialization_order=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
# Leaks inside third-party libraries (never ours) are listed, with the reason, in tests/lsan.supp.
export LSAN_OPTIONS=${LSAN_OPTIONS:-suppressions=$ROOT/tests/lsan.supp:print_suppressions=0}
export IOTPIPE_BIN=${IOTPIPE_BIN:-$ROOT/build/asan/bin}
export CMOCKA_MESSAGE_OUTPUT=STDOUT
UNIT_DIR=build/asan/unit
# One log directory per run, so runs in parallel (two people on one tree) never mix their logs;
# build/test-logs/latest points at the newest, and only the five newest are kept.
mkdir -p build/test-logs || exit 2
LOG_DIR=$(mktemp -d "build/test-logs/$(date -u +%Y%m%dT%H%M%SZ).XXXX") || exit 2
ln -sfn "$(basename "$LOG_DIR")" build/test-logs/latest
# shellcheck disable=SC2012 # names are ours: a timestamp and mktemp's suffix
ls -1d build/test-logs/2*/ 2>/dev/null | sort | head -n -5 | xargs -r rm -rf

# Every temp file of the run lives under one directory, removed at the end even when a test
# was killed before its own cleanup. PostgreSQL (another user when we are root) must reach it.
RUN_TMP=$(mktemp -d "${TMPDIR:-/tmp}/iotpipe-test.XXXXXX") || exit 2
chmod 755 "$RUN_TMP"
export TMPDIR=$RUN_TMP
trap 'rm -rf "$RUN_TMP"' EXIT
trap 'exit 130' INT
trap 'exit 143' TERM


passed=0 failed=0 skipped=0 ran=0
failures=()

# Folders are named after programs (mirror-relay), scripts with underscores (test_mirror_relay):
# a pattern matches either spelling.
selected() {
	local p name=${1//-/_}
	[ $# -gt 1 ] || return 0
	for p in "${@:2}"; do [[ $name == *"${p//-/_}"* ]] && return 0; done
	return 1
}

now_ms() { date +%s%3N; }
secs_since() { # secs_since START_MS: "1.2s"
	local d=$(($(now_ms) - $1))
	printf '%d.%ds' $((d / 1000)) $((d % 1000 / 100))
}

show_log() { # show_log FILE: a failed test's "not ok" lines, then the end of its output
	local n
	if grep -q '^not ok ' "$1"; then
		awk '/^not ok / { p = 1; print "    " $0; next }
			p && /^# (command: |  )/ { print "    " $0; next }
			{ p = 0 }' "$1" | head -n 80
		echo "    --- end of the output:"
	fi
	n=$(wc -l <"$1")
	[ "$n" -gt 150 ] && printf '    ... %d earlier lines in %s\n' $((n - 150)) "$1"
	tail -n 150 "$1" | sed 's/^/    /'
}

# Processes a test leaves behind carry its tag in their environment: find them, kill them.
leftovers_kill() { # leftovers_kill TAG: prints "pid(comm)" of each process it had to kill
	local f pid comm
	# shellcheck disable=SC2013 # /proc paths have no spaces
	for f in $(grep -lzx "IOTPIPE_TEST_TAG=$1" /proc/[0-9]*/environ 2>/dev/null); do
		pid=${f#/proc/}
		pid=${pid%/environ}
		[ "$pid" = $$ ] && continue
		comm=$(cat "/proc/$pid/comm" 2>/dev/null) || continue
		kill -KILL "$pid" 2>/dev/null && printf '%s(%s) ' "$pid" "$comm"
	done
}

run_unit() { # run_unit NAME BINARY
	local name=$1 bin=$2 log="$LOG_DIR/$1.log" t0 rc=0 p f
	mkdir -p "$(dirname "$log")"
	t0=$(now_ms)
	if [ ! -x "$bin" ]; then
		echo "FAIL $name: $bin is not built (make asan)"
		failed=$((failed + 1))
		failures+=("$name")
		return
	fi
	timeout -k 5 "${UT:-120}" "$bin" </dev/null >"$log" 2>&1 || rc=$?
	p=$(sed -n 's/^\[  PASSED  \] \([0-9]\{1,\}\) test(s)\..*/\1/p' "$log" | awk '{ s += $1 } END { print s + 0 }')
	f=$(sed -n 's/^\[  FAILED  \] \([0-9]\{1,\}\) test(s), listed below:.*/\1/p' "$log" | awk '{ s += $1 } END { print s + 0 }')
	ran=$((ran + 1))
	passed=$((passed + p))
	failed=$((failed + f))
	if [ "$rc" -ne 0 ] && [ "$f" -eq 0 ]; then
		# Crashed, timed out or leaked after its cases passed: one more failure.
		failed=$((failed + 1))
		f=1
	fi
	if [ "$f" -eq 0 ] && [ "$p" -gt 0 ]; then
		echo "PASS $name: $p cases ($(secs_since "$t0"))"
	elif [ "$f" -eq 0 ]; then
		echo "FAIL $name: no cmocka summary ($(secs_since "$t0"))"
		failed=$((failed + 1))
		failures+=("$name")
		show_log "$log"
	else
		echo "FAIL $name: $p passed, $f failed, exit $rc ($(secs_since "$t0"))"
		[ "$rc" -eq 124 ] && echo "    timed out after ${UT:-120}s"
		failures+=("$name")
		show_log "$log"
	fi
}

# An integration test runs in the background and leaves its verdict in RESULT: the first line
# is pass/fail/skip, the rest is what to print. Most of a test's time is spent waiting (on a
# consumer group, an outage, a restart), so JOBS of them (default: the number of cores) run at
# once; each has its own ports, temp dir and tag, so they do not meet.
integration_job() { # integration_job NAME SCRIPT TAG RESULT
	local name=$1 script=$2 tag=$3 result=$4 log="$LOG_DIR/$1.log" t0 rc=0 left reason
	mkdir -p "$(dirname "$log")"
	t0=$(now_ms)
	IOTPIPE_TEST_TAG="$tag" timeout -k 10 "${T:-300}" bash "$script" </dev/null >"$log" 2>&1 || rc=$?
	left=$(leftovers_kill "$tag")
	{
		if [ "$rc" -eq 77 ]; then
			reason=$(sed -n 's/^# SKIP //p' "$log" | tail -n 1)
			echo skip
			echo "SKIP $name: ${reason:-no reason given} ($(secs_since "$t0"))"
		elif [ "$rc" -eq 0 ] && [ -z "$left" ]; then
			echo pass
			echo "PASS $name: $(grep -c '^ok ' "$log") checks ($(secs_since "$t0"))"
		else
			echo fail
			echo "FAIL $name: exit $rc, $(grep -c '^not ok ' "$log") failed checks ($(secs_since "$t0"))"
			[ "$rc" -eq 124 ] && echo "    timed out after ${T:-300}s"
			[ -n "$left" ] && echo "    left processes running (killed): $left"
			show_log "$log"
		fi
	} >"$result.tmp"
	mv "$result.tmp" "$result"
}

declare -A running=() # result file -> test name
integration_collect() { # prints and counts the verdicts of the finished tests
	local result verdict
	for result in "${!running[@]}"; do
		[ -f "$result" ] || continue
		verdict=$(head -n 1 "$result")
		tail -n +2 "$result"
		case $verdict in
		pass) passed=$((passed + 1)) ;;
		skip) skipped=$((skipped + 1)) ;;
		*)
			failed=$((failed + 1))
			failures+=("${running[$result]}")
			;;
		esac
		unset "running[$result]"
	done
}

jobs_max=${JOBS:-$(nproc 2>/dev/null || echo 1)}
[[ $jobs_max =~ ^[1-9][0-9]*$ ]] || jobs_max=1
run_integration() { # run_integration NAME SCRIPT: starts it once fewer than JOBS run
	local result="$LOG_DIR/.result.$ran"
	while [ ${#running[@]} -ge "$jobs_max" ]; do
		wait -n 2>/dev/null || true
		integration_collect
	done
	running[$result]=$1
	integration_job "$1" "$2" "iotpipe-test-$$-$ran" "$result" &
	ran=$((ran + 1))
}

integration_wait_all() {
	while [ ${#running[@]} -gt 0 ]; do
		wait -n 2>/dev/null || sleep 0.2
		integration_collect
	done
}

t_start=$(now_ms)
for src in tests/unit/*/test_*.c; do
	[ -e "$src" ] || continue
	rel=${src#tests/unit/}
	rel=${rel%.c}
	selected "unit/$rel" "$@" || continue
	run_unit "unit/$rel" "$UNIT_DIR/$rel"
done
for script in tests/integration/test_*.sh; do
	[ -e "$script" ] || continue
	name=integration/$(basename "$script" .sh)
	selected "$name" "$@" || continue
	run_integration "$name" "$script"
done
integration_wait_all

[ "$ran" -eq 0 ] && echo "no test matched${1:+ '$*'}" && failed=$((failed + 1))
[ ${#failures[@]} -gt 0 ] && echo "failed: ${failures[*]} (logs in $LOG_DIR/)"
echo "total $(secs_since "$t_start")"
summary="$passed passed, $failed failed"
[ "$skipped" -gt 0 ] && summary+=", $skipped skipped"
echo "$summary"
[ "$failed" -eq 0 ]
