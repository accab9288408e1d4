/* raw-saver: the suite's database writer. It saves records as they are, one table per record
 * type: by default the bronze copy of iot.raw into raw_messages (payload bytes unchanged), and,
 * started with another --in, any suite topic into the table its records' schema names.
 *
 * Records are written in batches (--batch rows or --batch-ms), one transaction each, and input
 * offsets are committed only after PostgreSQL's COMMIT. Tables are keyed by the records'
 * identities, so what a crash makes it read twice is written once. While the database is
 * unreachable it holds its batch, stops reading, reports not ready, and retries. */
#include "schema.h"
#include "service.h"
#include "tables.h"
#include "writer.h"

#include "lifecycle.h"
#include "log.h"
#include "metrics.h"
#include "retention.h"

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

struct saver_opts {
	const char *db;
	const char *type;
	long long batch;
	long long batch_ms;
	const char *dead_letter_db;
	bool migrate;
	const char *migrations;
	struct strlist retention;
	long long partitions_ahead;
	long long maintenance_ms;
	long long retry_max_ms;
	bool no_copy;
};

static struct service_opts so;
static struct saver_opts opts;

static struct opt saver_table[] = {
    SERVICE_OPTS(&so, "iot.raw", NULL, "raw-saver"),
    {"db", 'd', OPT_STRING, &opts.db, "", "CONNINFO",
     "PostgreSQL conninfo or URI; what it leaves out comes from PGHOST, PGUSER, PGPASSWORD, "
     "PGSSLMODE... and ~/.pgpass"},
    {"type", 't', OPT_STRING, &opts.type, NULL, "RECORD",
     "accept only this record type (default: RawMessage on stdin, any type from Kafka)"},
    {"batch", 0, OPT_INT, &opts.batch, "10000", "N", "write at most N records per transaction", 0,
     1, 1000000},
    {"batch-ms", 0, OPT_DURATION, &opts.batch_ms, "1s", NULL,
     "write what has arrived at least this often", 0, 1, 3600000},
    {"dead-letter-db", 0, OPT_STRING, &opts.dead_letter_db, "", "TOPIC",
     "where records PostgreSQL refuses go, as Rejected records (default: --dead-letter)"},
    {"migrate", 0, OPT_FLAG, &opts.migrate, NULL, NULL,
     "create or upgrade the tables and partitions, apply --retention, and exit"},
    {"migrations", 0, OPT_STRING, &opts.migrations, "schemas/postgres", "DIR",
     "migration files (NNN_name.sql) applied at start; empty: only check the tables"},
    {"retention", 0, OPT_LIST, &opts.retention, NULL, "[TABLE=]PERIOD",
     "drop partitions older than PERIOD, for every table or one (repeatable; 0: keep)"},
    {"partitions-ahead", 0, OPT_INT, &opts.partitions_ahead, "7", "DAYS",
     "create daily partitions this many days ahead", 0, 0, 366},
    {"maintenance-interval", 0, OPT_DURATION, &opts.maintenance_ms, "1h", NULL,
     "how often partitions are created and retention applied", 0, 1000, 86400000},
    {"retry-max", 0, OPT_DURATION, &opts.retry_max_ms, "5s", NULL,
     "longest wait between attempts while PostgreSQL is unreachable", 0, 100, 600000},
    {"no-copy", 0, OPT_FLAG, &opts.no_copy, NULL, NULL,
     "always write with INSERT ... ON CONFLICT instead of trying COPY first"},
    {NULL},
};

static const struct config_spec saver_spec = {
    "raw-saver",
    "Save the suite's records into PostgreSQL, batched and idempotent, one table per type.",
    "Tables: RawMessage -> raw_messages, Reading -> readings, Rejected -> rejected,\n"
    "Aggregate -> aggregates (upserted), Command -> commands, ThresholdEvent ->\n"
    "threshold_events, Forecast -> forecasts (upserted). Offsets are committed after each\n"
    "batch's COMMIT, so --batch and --batch-ms replace --checkpoint-records/--checkpoint-ms.\n"
    "\n"
    "Examples:\n"
    "  raw-saver -b kafka:9092 -d postgresql://iot@db/iot            # iot.raw -> raw_messages\n"
    "  raw-saver -b kafka:9092 -d ... --in iot.clean -g saver-clean  # readings\n"
    "  raw-saver -d ... --migrate --retention 30d --retention raw_messages=7d\n"
    "  iot-cat -b kafka:9092 -C -t iot.raw -e | raw-saver --in - -d ...",
    saver_table};

static void sleep_ms(int64_t ms)
{
	if (ms > 0)
		poll(NULL, 0, (int)ms);
}

static bool is_dir(const char *path)
{
	struct stat st;
	return path && *path && stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* Creates partitions ahead and applies retention; failures are logged and retried next time. */
static void maintain(struct pg *pg, const struct table *tables, const int64_t *retention)
{
	char err[1024];
	for (int t = 0; t < REC_TYPE_COUNT; t++) {
		if (schema_partitions(pg, &tables[t], (int)opts.partitions_ahead, err,
		                      sizeof(err)) < 0)
			log_warn("cannot create partitions of %s: %s", tables[t].name, err);
		if (retention[t] > 0 &&
		    schema_retention(pg, &tables[t], retention[t], err, sizeof(err)) < 0)
			log_warn("cannot apply the retention of %s: %s", tables[t].name, err);
	}
}

/* Migrations and checks, waiting for the database as long as it is unreachable. Returns 0, or
 * -1 when the schema is wrong or the process is asked to stop. */
static int database_prepare(struct pg *pg, const struct table *tables, enum rec_type type,
                            const int64_t *retention)
{
	char err[1024];
	struct backoff bo;
	backoff_init(&bo, 200, opts.retry_max_ms);
	bool migrations = is_dir(opts.migrations);
	if (!migrations && opts.migrations && *opts.migrations)
		log_warn("no migrations directory %s: only checking the tables", opts.migrations);
	metrics_set_ready(false);
	while (lifecycle_running()) {
		bool transient = false;
		int rc = 0;
		if (!pg_conn(pg, err, sizeof(err))) {
			transient = true;
			rc = -1;
		}
		if (rc == 0 && migrations &&
		    schema_migrate(pg, opts.migrations, &transient, err, sizeof(err)) < 0)
			rc = -1;
		for (int t = 0; t < REC_TYPE_COUNT && rc == 0; t++)
			if ((type == REC_UNKNOWN || type == (enum rec_type)t) &&
			    schema_check(pg, &tables[t], &transient, err, sizeof(err)) < 0)
				rc = -1;
		if (rc == 0) {
			maintain(pg, tables, retention);
			return 0;
		}
		if (!transient) {
			log_error("%s", err);
			return -1;
		}
		int64_t delay = backoff_fail(&bo, now_mono_ms());
		log_warn("%s; retrying in %lld ms", err, (long long)delay);
		for (int64_t end = now_mono_ms() + delay;
		     lifecycle_running() && now_mono_ms() < end;)
			sleep_ms(100);
	}
	return -1;
}

/* Reads records into batches until stopped or stdin ends. Returns 0, or -1 on a failure. */
static int run(struct stream *s, struct writer *w, struct pg *pg, const struct table *tables,
               const int64_t *retention)
{
	int64_t next_maintenance = now_mono_ms() + opts.maintenance_ms;
	bool at_end = false;
	while (lifecycle_running() && !stream_failed(s)) {
		if (writer_due(w)) {
			writer_checkpoint(w, s);
			/* Both batches full: read nothing more (Kafka keeps it) until the
			 * database takes them. */
			if (writer_pending(w) >= (size_t)opts.batch) {
				int64_t wait = writer_retry_in_ms(w);
				sleep_ms(wait < 100 ? wait : 100);
				continue;
			}
		}
		if (now_mono_ms() >= next_maintenance && !writer_busy(w)) {
			maintain(pg, tables, retention);
			next_maintenance = now_mono_ms() + opts.maintenance_ms;
		}
		struct stream_msg *m;
		int rc = stream_poll(s, &m, 100);
		if (rc == STREAM_END) {
			at_end = true;
			break;
		}
		if (rc != STREAM_RECORD)
			continue;
		struct origin o;
		stream_msg_origin(s, m, &o);
		if (writer_add(w, m, &o) < 0) {
			log_error(
			    "out of memory queueing a record; stopping (it will be read again)");
			return -1;
		}
	}
	/* End of stdin: everything read must be written before exiting 0. */
	while (at_end && writer_unwritten(w) && lifecycle_running() && !stream_failed(s)) {
		stream_checkpoint(s);
		int64_t wait = writer_retry_in_ms(w);
		if (writer_unwritten(w))
			sleep_ms(wait < 100 ? wait : 100);
	}
	return 0;
}

int main(int argc, char **argv)
{
	config_parse(&saver_spec, argc, argv);
	if (so.out && *so.out)
		config_die("--out: raw-saver writes to PostgreSQL and has no output topic");
	enum rec_type type = REC_UNKNOWN;
	if (opts.type && *opts.type) {
		type = records_type_by_name(opts.type);
		if (type == REC_UNKNOWN)
			config_die("--type '%s': not a record type (RawMessage, Reading, Rejected, "
			           "Aggregate, Command, ThresholdEvent, Forecast)",
			           opts.type);
	} else if (so.in && strcmp(so.in, "-") == 0) {
		type = REC_RAW_MESSAGE;
	}
	char err[1024];
	int64_t retention[REC_TYPE_COUNT];
	if (retention_parse(&opts.retention, retention, err, sizeof(err)) < 0)
		config_die("%s", err);
	if (opts.migrate && !is_dir(opts.migrations))
		config_die("--migrate: no migrations directory '%s' (see --migrations)",
		           opts.migrations ? opts.migrations : "");
	const char *dead_topic =
	    opts.dead_letter_db && *opts.dead_letter_db ? opts.dead_letter_db : so.dead_letter;
	/* The saver takes its checkpoints itself, one per batch (writer.h): the stream's own
	 * remain for rebalances and shutdown. */
	so.checkpoint_records = 1000000000;
	so.checkpoint_ms = 3600000;

	if (service_start(&so) < 0)
		return 1;
	int rc = 1;
	struct table tables[REC_TYPE_COUNT] = {0};
	struct pg *pg = NULL;
	struct writer *w = NULL;
	struct stream *s = NULL;
	for (int t = 0; t < REC_TYPE_COUNT; t++)
		if (table_init(&tables[t], (enum rec_type)t, err, sizeof(err)) < 0) {
			log_error("%s", err);
			goto out;
		}
	pg = pg_new(opts.db);
	if (!pg) {
		log_error("out of memory");
		goto out;
	}
	if (database_prepare(pg, tables, opts.migrate ? REC_UNKNOWN : type, retention) < 0) {
		/* Stopped while waiting for the database: nothing was read, a clean stop. */
		if (!lifecycle_running() && !opts.migrate)
			rc = 0;
		goto out;
	}
	if (opts.migrate) {
		log_info("tables and partitions are ready");
		rc = 0;
		goto out;
	}
	struct writer_config wc = {.pg = pg,
	                           .tables = tables,
	                           .retry_min_ms = 100,
	                           .retry_max_ms = opts.retry_max_ms,
	                           .copy = !opts.no_copy,
	                           .batch = (size_t)opts.batch,
	                           .batch_ms = opts.batch_ms};
	w = writer_new(&wc, err, sizeof(err));
	if (!w) {
		log_error("%s", err);
		goto out;
	}
	struct stream_hooks hooks = {.ctx = w,
	                             .on_assign = writer_assign_hook,
	                             .commit_position = writer_commit_position_hook,
	                             .flush = writer_flush_hook};
	s = service_stream(&so, type, &hooks);
	if (!s)
		goto out;
	struct stream_out *dead =
	    dead_topic && *dead_topic ? service_output(s, dead_topic, REC_REJECTED) : NULL;
	if (dead_topic && *dead_topic && !dead)
		goto out;
	writer_set_dead_letter(w, s, dead, so.brokers && *so.brokers ? dead_topic : NULL);
	log_info("saving %s from %s into PostgreSQL in batches of up to %lld records or %lld ms",
	         type == REC_UNKNOWN ? "every record type" : records_name(type), so.in, opts.batch,
	         opts.batch_ms);
	int run_rc = run(s, w, pg, tables, retention);
	/* The final checkpoint in service_stop gets one more attempt, whatever the backoff. */
	writer_retry_now(w);
	rc = service_stop(s);
	s = NULL;
	if (run_rc < 0)
		rc = 1;
	writer_free(w);
	pg_free(pg);
	for (int t = 0; t < REC_TYPE_COUNT; t++)
		table_free(&tables[t]);
	return rc;
out:
	if (s) {
		service_stop(s);
	} else {
		metrics_shutdown();
		records_shutdown();
		config_free();
	}
	writer_free(w);
	pg_free(pg);
	for (int t = 0; t < REC_TYPE_COUNT; t++)
		table_free(&tables[t]);
	return rc;
}
