#!/usr/bin/env bash
# raw-saver against its naive peers, on the same rows, into the same table, on one machine:
#
#   raw-saver          iot.raw (kafka-mock) -> raw_messages, idempotent (primary key + COPY
#                      that falls back to INSERT ... ON CONFLICT), default --batch 10000, with
#                      --batch-ms 100ms so a last partial batch does not wait a second; timed
#                      from its first record read to its last row committed (its own metrics)
#   raw-saver --no-copy  the same, always INSERT ... SELECT FROM unnest(...) ON CONFLICT
#   INSERT per row, autocommit   one INSERT per row, each its own transaction: the naive loop
#                      (psql; on the first BENCH_AUTOCOMMIT_ROWS rows, 20000, as it is slow)
#   INSERT per row     one INSERT statement per row, all in one transaction (psql)
#   INSERT x1000       multi-row INSERTs of 1000 rows (psql, one transaction)
#   COPY from file     psql \copy of a text file of the rows: PostgreSQL's own ceiling
#
# The peers are plain (no ON CONFLICT); raw-saver keeps its idempotency on. PostgreSQL runs
# with its default settings (fsync and synchronous_commit on) in a temp dir; each run starts
# from an empty table after a CHECKPOINT. Every method runs BENCH_REPEAT times; the table shows
# the best run and the median.
#
#   make && bench/raw_saver.sh                 # 200k rows, 3 runs each
#   BENCH_ROWS=50000 BENCH_REPEAT=1 bench/raw_saver.sh
#
# Uses the release binaries in bin/ (BENCH_BIN to change), PostgreSQL from
# /usr/lib/postgresql/15/bin (PG_BIN), python3 for the input files.
set -euo pipefail

ROOT=$(cd "$(dirname "$0")/.." && pwd)
source "$ROOT/bench/stats.sh"
BIN=${BENCH_BIN:-$ROOT/bin}
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
ROWS=${BENCH_ROWS:-200000}
REPEAT=${BENCH_REPEAT:-3}
AUTO_ROWS=${BENCH_AUTOCOMMIT_ROWS:-20000}
[ "$AUTO_ROWS" -le "$ROWS" ] || AUTO_ROWS=$ROWS
GEN="$ROOT/tests/integration/test_raw_saver_gen.py"
CONV="$ROOT/bench/raw_saver_rows.py"
for b in raw-saver iot-cat kafka-mock; do
	[ -x "$BIN/$b" ] || { echo "bench: $BIN/$b is not built (make)" >&2; exit 2; }
done
[ -x "$PG_BIN/initdb" ] || { echo "bench: no PostgreSQL in $PG_BIN (set PG_BIN)" >&2; exit 2; }

DIR=$(mktemp -d "${TMPDIR:-/tmp}/raw-saver-bench.XXXXXX")
chmod 755 "$DIR"
KM_PID= SAVER_PID= PG_STARTED=
as_pg() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
cleanup() {
	set +e
	[ -n "$SAVER_PID" ] && kill "$SAVER_PID" 2>/dev/null && wait "$SAVER_PID" 2>/dev/null
	[ -n "$KM_PID" ] && kill "$KM_PID" 2>/dev/null && wait "$KM_PID" 2>/dev/null
	[ -n "$PG_STARTED" ] && as_pg "$PG_BIN/pg_ctl" -D "$DIR/pg/data" -m fast -w stop >/dev/null 2>&1
	rm -rf "$DIR"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

now() { date +%s.%N; }
log() { printf '# %s\n' "$*" >&2; }

# --- PostgreSQL ---------------------------------------------------------------------------
mkdir -p "$DIR/pg"
[ "$(id -u)" -eq 0 ] && chown postgres: "$DIR/pg"
PORT=$((20000 + RANDOM % 10000))
as_pg "$PG_BIN/initdb" -D "$DIR/pg/data" -U postgres -A trust -E UTF8 --locale=C >/dev/null
as_pg "$PG_BIN/pg_ctl" -D "$DIR/pg/data" -l "$DIR/pg/log" -w -t 60 \
	-o "-p $PORT -k $DIR/pg -c listen_addresses=127.0.0.1" start >/dev/null
PG_STARTED=1
export PGHOST=$DIR/pg PGPORT=$PORT PGUSER=postgres PGDATABASE=bench
psql -XqAd postgres -c 'create database bench'
"$BIN/raw-saver" --db dbname=bench --migrations "$ROOT/schemas/postgres" --migrate 2>/dev/null
sql() { psql -XqAt -v ON_ERROR_STOP=1 -c "$1"; }
reset_table() { sql 'truncate raw_messages' && sql 'checkpoint'; }

# --- the rows -----------------------------------------------------------------------------
log "generating $ROWS rows"
python3 "$GEN" --count "$ROWS" >"$DIR/raw.jsonl"
python3 "$CONV" copy <"$DIR/raw.jsonl" >"$DIR/rows.tsv"
python3 "$CONV" single <"$DIR/raw.jsonl" >"$DIR/single.sql"
head -n "$AUTO_ROWS" "$DIR/raw.jsonl" | python3 "$CONV" single --autocommit >"$DIR/auto.sql"
python3 "$CONV" multi --rows-per-insert 1000 <"$DIR/raw.jsonl" >"$DIR/multi.sql"

coproc KM { exec "$BIN/kafka-mock" --topic iot.raw:16 2>"$DIR/kafka-mock.log"; }
read -r -u "${KM[0]}" BOOTSTRAP
"$BIN/iot-cat" -b "$BOOTSTRAP" -P -t iot.raw -T RawMessage -k topic <"$DIR/raw.jsonl" 2>/dev/null
log "$ROWS records in iot.raw; $(du -h "$DIR/rows.tsv" | cut -f1) as COPY text"

# --- methods: each sets SEC (not in $(...): the saver must stay this shell's child) -------
run_psql() { # run_psql ARGS...: one psql run
	local t0 t1
	t0=$(now)
	psql -XqA -v ON_ERROR_STOP=1 "$@" >/dev/null
	t1=$(now)
	SEC=$(echo "$t1 - $t0" | bc -l)
}

metric_sum() { # metric_sum PORT NAME-PREFIX: 0 while the endpoint is not up yet
	{ curl -fsS --max-time 2 "http://127.0.0.1:$1/metrics" 2>/dev/null || true; } |
		awk -v p="$2" 'index($0, p) == 1 { s += $NF } END { printf "%d\n", s }'
}

run=0
run_saver() { # run_saver [raw-saver flags...]: from its first record read to its last row committed
	local port t0= t1 in rows deadline
	run=$((run + 1))
	port=$((30000 + RANDOM % 10000))
	"$BIN/raw-saver" -b "$BOOTSTRAP" --db dbname=bench --migrations '' --group "bench-$run" \
		--metrics-port "$port" --batch-ms 100ms "$@" 2>"$DIR/saver-$run.log" &
	SAVER_PID=$!
	deadline=$((SECONDS + 600))
	while [ $SECONDS -lt $deadline ]; do
		in=$(metric_sum "$port" iotpipe_records_in_total)
		[ -z "$t0" ] && [ "${in:-0}" -gt 0 ] && t0=$(now)
		rows=$(metric_sum "$port" 'iotpipe_db_rows_total{table="raw_messages"}')
		if [ "${rows:-0}" -ge "$ROWS" ]; then
			t1=$(now)
			break
		fi
		sleep 0.02
	done
	kill "$SAVER_PID" && wait "$SAVER_PID" || true
	SAVER_PID=
	[ -n "$t0" ] && [ -n "${t1:-}" ] || { echo "bench: raw-saver did not finish" >&2; exit 1; }
	SEC=$(echo "$t1 - $t0" | bc -l)
}

LOAD0=$(cut -d' ' -f1-3 /proc/loadavg)
declare -A SECS=()
methods=("raw-saver" "raw-saver --no-copy" "INSERT per row, autocommit" "INSERT per row"
	"INSERT x1000" "COPY from file")
declare -A NROWS=()
for m in "${methods[@]}"; do NROWS[$m]=$ROWS; done
NROWS["INSERT per row, autocommit"]=$AUTO_ROWS
for ((r = 1; r <= REPEAT; r++)); do
	for m in "${methods[@]}"; do
		reset_table
		case $m in
		"raw-saver") run_saver ;;
		"raw-saver --no-copy") run_saver --no-copy ;;
		"INSERT per row, autocommit") run_psql -f "$DIR/auto.sql" ;;
		"INSERT per row") run_psql -f "$DIR/single.sql" ;;
		"INSERT x1000") run_psql -f "$DIR/multi.sql" ;;
		"COPY from file") run_psql -c "\\copy raw_messages from '$DIR/rows.tsv'" ;;
		esac
		s=$SEC
		n=$(sql 'select count(*) from raw_messages')
		[ "$n" = "${NROWS[$m]}" ] || { echo "bench: $m left $n rows, not ${NROWS[$m]}" >&2; exit 1; }
		SECS[$m]="${SECS[$m]:-} $s"
		log "run $r: $m: $(printf '%.2f' "$s") s"
	done
done

# --- table --------------------------------------------------------------------------------
best() { lowest "$1"; } # the best run is the fastest one
copy_best=$(best "${SECS["COPY from file"]}")
printf '\n%s rows (RawMessage, %s of COPY text), best and median of %s runs\n' \
	"$ROWS" "$(du -h "$DIR/rows.tsv" | cut -f1)" "$REPEAT"
printf 'PostgreSQL %s, %s cores, load average before: %s, after: %s\n' \
	"$(psql -XAtc 'show server_version' | cut -d' ' -f1)" "$(nproc)" "$LOAD0" "$(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-28s %8s %8s %12s %12s %8s\n' method rows "best s" "rows/s best" "rows/s med" "vs COPY"
for m in "${methods[@]}"; do
	b=$(best "${SECS[$m]}")
	md=$(median "${SECS[$m]}")
	n=${NROWS[$m]}
	printf '%-28s %8d %8.2f %12.0f %12.0f %7.0f%%\n' "$m" "$n" "$b" "$(echo "$n / $b" | bc -l)" \
		"$(echo "$n / $md" | bc -l)" "$(echo "100 * ($n / $b) / ($ROWS / $copy_best)" | bc -l)"
done
