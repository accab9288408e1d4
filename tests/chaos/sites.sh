# shellcheck shell=bash
# The fault suite's PostgreSQL servers, one per site (docs/chaos.md); sourced by lib.sh.

# --- PostgreSQL: one server per site for the whole suite, one database per run ---------------
# The harness manages one server; each site's lives in its own directory, and these wrappers
# swap the harness's variables around its functions.
chaos_pg_in() {
	_PG_SAVE=("$HARNESS_DIR" "$HARNESS_PG_DATA" "$HARNESS_PG_PORT" "$HARNESS_PG_HBA"
		"${PGHOST:-}" "${PGPORT:-}")
	HARNESS_DIR=$CHAOS_TOP/pg-$1
	HARNESS_PG_DATA=${CHAOS_SITE_DATA[$1]:-}
	HARNESS_PG_PORT=${CHAOS_SITE_PORT[$1]:-}
	HARNESS_PG_HBA=$CHAOS_TOP/pg-$1/hba.conf
}
chaos_pg_out() {
	CHAOS_SITE_DATA[$1]=$HARNESS_PG_DATA
	CHAOS_SITE_PORT[$1]=$HARNESS_PG_PORT
	HARNESS_DIR=${_PG_SAVE[0]}
	HARNESS_PG_DATA=${_PG_SAVE[1]}
	HARNESS_PG_PORT=${_PG_SAVE[2]}
	HARNESS_PG_HBA=${_PG_SAVE[3]}
	# start_pg exports the site's PGHOST and PGPORT; put back what was there (nothing: an
	# empty PGPORT is an error to every PostgreSQL program).
	if [ -n "${_PG_SAVE[4]}" ]; then export PGHOST=${_PG_SAVE[4]}; else unset PGHOST; fi
	if [ -n "${_PG_SAVE[5]}" ]; then export PGPORT=${_PG_SAVE[5]}; else unset PGPORT; fi
}
chaos_pg_start() { # chaos_pg_start SITE
	local rc=0
	chaos_pg_in "$1"
	start_pg || rc=1
	chaos_pg_out "$1"
	return $rc
}
chaos_pg_stop() { # chaos_pg_stop SITE
	local rc=0
	[ -n "${CHAOS_SITE_DATA[$1]:-}" ] || return 0
	chaos_pg_in "$1"
	stop_pg || rc=1
	chaos_pg_out "$1"
	return $rc
}
# chaos_psql SITE [DB] ARGS...: psql through the site's socket, as the harness connects.
chaos_psql() {
	local site=$1 db=$2
	shift 2
	PGTZ=UTC psql -XqAt -v ON_ERROR_STOP=1 -h "${CHAOS_SITE_SOCK[$site]}" \
		-p "${CHAOS_SITE_PORT[$site]}" -U postgres -d "$db" "$@"
}
chaos_hba() { # chaos_hba SITE accept|reject: what TCP clients (the savers) get
	local f=$CHAOS_TOP/pg-$1/hba.conf
	{
		printf 'local all all trust\n'
		if [ "$2" = reject ]; then
			printf 'host all all 127.0.0.1/32 reject\n'
		else
			printf 'host all all 127.0.0.1/32 trust\n'
		fi
	} >"$f"
}
# chaos_pg_refuse SITE on|off: the server refuses (or accepts again) new TCP connections, and
# "on" also ends the savers' open sessions, so they must reconnect and are refused. The
# harness and the checks connect through the Unix socket, which stays open.
chaos_pg_refuse() {
	local site=$1 bin
	bin=$(harness_pg_bin) || return 1
	if [ "$2" = on ]; then chaos_hba "$site" reject; else chaos_hba "$site" accept; fi
	cp "$CHAOS_TOP/pg-$site/hba.conf" "${CHAOS_SITE_DATA[$site]}/pg_hba.conf" &&
		chown postgres: "${CHAOS_SITE_DATA[$site]}/pg_hba.conf" 2>/dev/null
	harness_pg_run "$bin/pg_ctl" -D "${CHAOS_SITE_DATA[$site]}" reload >/dev/null 2>&1 || return 1
	# pg_ctl reload only signals: wait until the new rules are in force.
	sleep 0.5
	if [ "$2" = on ]; then
		chaos_psql "$site" postgres -c "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
			WHERE application_name = 'raw-saver'" >/dev/null
	fi
}
