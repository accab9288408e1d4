# shellcheck shell=bash
# The fault suite's fault actions, the supervisor that restarts services which exit by
# themselves, the schedule runner and its deterministic random numbers (docs/chaos.md);
# sourced by lib.sh.

# --- deterministic choices -------------------------------------------------------------------
# A linear congruential generator of its own, seeded from CHAOS_SEED and a name: $RANDOM is also
# used by the harness (free_port), which would shift the sequence.
CHAOS_RNG=1
chaos_rng_seed() { # chaos_rng_seed NAME
	local s=$CHAOS_SEED c i
	for ((i = 0; i < ${#1}; i++)); do
		printf -v c '%d' "'${1:i:1}"
		s=$(((s * 31 + c) % 2147483647))
	done
	CHAOS_RNG=$((s % 2147483646 + 1))
}
chaos_rand() { # chaos_rand N: sets REPLY to a number in [0, N)
	CHAOS_RNG=$(((CHAOS_RNG * 48271) % 2147483647))
	REPLY=$((CHAOS_RNG % $1))
}

# --- the supervisor ---------------------------------------------------------------------------
# chaos_supervise: what a process supervisor (Kubernetes, systemd) does: a service that exited
# by itself is logged with its status and started again. Sanitizer reports are failures.
chaos_supervise() {
	local name rc
	for name in "${!CHAOS_WANT[@]}"; do
		[ "${CHAOS_WANT[$name]}" = 1 ] || continue
		bg_alive "$name" && continue
		rc=0
		wait_bg "$name" 1 || rc=$?
		chaos_log "$name exited by itself with status $rc: restarted"
		printf '%s %s\n' "$name" "$rc" >>"$CHAOS_RUN_DIR/self-exits"
		chaos_svc_start "$name"
	done
}

# chaos_sleep SECONDS: sleeps while supervising.
chaos_sleep() {
	local end=$(($(chaos_now_ms) + ${1%.*} * 1000)) left
	[[ $1 == *.* ]] && end=$((end + 10#${1#*.} * 100))
	while :; do
		chaos_supervise
		left=$((end - $(chaos_now_ms)))
		[ $left -le 0 ] && return 0
		[ $left -gt 500 ] && left=500
		sleep "$(awk -v l="$left" 'BEGIN { printf "%.3f", l / 1000 }')"
	done
}

# --- fault actions -------------------------------------------------------------------------------
# chaos_action ACTION [ARGS]: one line of a schedule.
#   kill SERVICE [PAUSE_S]   SIGKILL, then start again after PAUSE_S (default 0)
#   term SERVICE             SIGTERM, wait for the exit (status logged), start again
#   stop SERVICE / start SERVICE
#   km edge|central COMMAND  a kafka-mock control command (docs/kafka-mock.md)
#   pg-stop SITE / pg-start SITE            PostgreSQL stopped (fast shutdown) and started
#   pg-refuse SITE / pg-accept SITE         new connections refused (pg_hba.conf), and accepted
#   mqtt-restart             mosquitto stopped (SIGTERM, persistence saved) and started again
chaos_action() {
	local act=$1 rc=0 out
	shift
	case $act in
	kill)
		# (stderr: bash reports the killed job there)
		kill_bg "$1" KILL 2>/dev/null || true
		CHAOS_WANT[$1]=0
		chaos_log "kill -9 $1"
		[ -n "${2:-}" ] && chaos_sleep "$2"
		chaos_svc_start "$1" ;;
	term)
		CHAOS_WANT[$1]=0
		stop_bg "$1" || rc=$?
		chaos_log "SIGTERM $1: exit status $rc"
		printf '%s %s\n' "$1" "$rc" >>"$CHAOS_RUN_DIR/term-exits"
		chaos_svc_start "$1" ;;
	stop)
		CHAOS_WANT[$1]=0
		stop_bg "$1" || rc=$?
		chaos_log "SIGTERM $1 (stays down): exit status $rc"
		printf '%s %s\n' "$1" "$rc" >>"$CHAOS_RUN_DIR/term-exits" ;;
	start)
		chaos_log "start $1"
		chaos_svc_start "$1" ;;
	km)
		out=$(kafka_mock_ctl --name "$1" "${*:2}") || rc=1
		chaos_log "kafka-mock $1: ${*:2} -> $out"
		[ $rc -eq 0 ] || printf 'km %s %s: %s\n' "$1" "${*:2}" "$out" >>"$CHAOS_RUN_DIR/action-errors" ;;
	pg-stop)
		chaos_pg_stop "$1" || rc=1
		chaos_log "PostgreSQL $1 stopped (rc $rc)" ;;
	pg-start)
		chaos_pg_start "$1" || rc=1
		chaos_log "PostgreSQL $1 started (rc $rc)" ;;
	pg-refuse)
		chaos_pg_refuse "$1" on || rc=1
		chaos_log "PostgreSQL $1 refuses connections, sessions ended (rc $rc)" ;;
	pg-accept)
		chaos_pg_refuse "$1" off || rc=1
		chaos_log "PostgreSQL $1 accepts connections (rc $rc)" ;;
	mqtt-restart)
		restart_mosquitto || rc=1
		chaos_log "mosquitto restarted (rc $rc)" ;;
	*) harness_die "unknown fault action '$act'" ;;
	esac
	[ $rc -eq 0 ] || [ "$act" = term ] || [ "$act" = stop ] ||
		printf '%s %s: rc %s\n' "$act" "$*" "$rc" >>"$CHAOS_RUN_DIR/action-errors"
	return 0
}

# chaos_schedule_run FILE: runs its lines at their times (from the workload's start).
chaos_schedule_run() {
	local at act args wait_ms
	while read -r at act args; do
		[ -z "$at" ] || [[ $at == \#* ]] && continue
		wait_ms=$(awk -v a="$at" -v t0="$CHAOS_T0_MS" -v now="$(chaos_now_ms)" \
			'BEGIN { w = t0 + a * 1000 - now; print (w > 0 ? int(w) : 0) }')
		[ "$wait_ms" -gt 0 ] && chaos_sleep "$((wait_ms / 1000)).$(((wait_ms % 1000) / 100))"
		# shellcheck disable=SC2086 # the arguments are words
		chaos_action "$act" $args
	done <"$1"
}
