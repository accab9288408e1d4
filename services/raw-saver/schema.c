/* Migrations, the start-up check of the tables, and partition maintenance (see schema.h). */
#include "schema.h"

#include "avro.h"
#include "config.h"
#include "log.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Migration files are DDL of a few kilobytes; anything this large is not one. */
#define MIGRATION_MAX (1u << 20)
/* Advisory lock key shared by every saver running migrations ("iotp" in ASCII). */
#define MIGRATION_LOCK "1769238384"

static int sql_file_filter(const struct dirent *d)
{
	size_t n = strlen(d->d_name);
	return d->d_name[0] != '.' && n > 4 && strcmp(d->d_name + n - 4, ".sql") == 0;
}

/* Runs sql with text parameters and checks for `want`; the result is returned on success (the
 * caller clears it) and NULL on failure with the reason, *transient telling its kind. */
static PGresult *run(struct pg *pg, const char *sql, int nparams, const char *const *params,
                     ExecStatusType want, bool *transient, char *err, size_t errlen)
{
	PGconn *conn = pg_conn(pg, err, errlen);
	if (!conn) {
		*transient = true;
		return NULL;
	}
	PGresult *res = PQexecParams(conn, sql, nparams, NULL, params, NULL, NULL, 0);
	if (pg_check(pg, res, want, err, errlen, NULL) == PG_OK)
		return res;
	*transient = !pg_connected(pg);
	PQclear(res);
	return NULL;
}

static int apply_file(struct pg *pg, const char *dir, const char *name, bool *transient, char *err,
                      size_t errlen)
{
	char path[4096], why[1024], sum[24];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	errno = 0;
	char *text = config_read_file(path, MIGRATION_MAX, false);
	if (!text) {
		snprintf(err, errlen, "%s: %s", path, errno ? strerror(errno) : "cannot read");
		return -1;
	}
	snprintf(sum, sizeof(sum), "%016" PRIx64, avro_crc64(text, strlen(text)));
	int rc = -1;
	const char *const key[] = {name, sum};
	PGresult *res = run(pg, "SELECT checksum FROM iotpipe_migrations WHERE version = $1", 1,
	                    key, PGRES_TUPLES_OK, transient, err, errlen);
	if (!res)
		goto out;
	if (PQntuples(res) == 1) {
		if (strcmp(PQgetvalue(res, 0, 0), sum) != 0)
			log_warn("migration %s changed after it was applied (checksum %s, now %s); "
			         "it is not applied again: write a new file instead",
			         path, PQgetvalue(res, 0, 0), sum);
		PQclear(res);
		rc = 0;
		goto out;
	}
	PQclear(res);
	if (pg_exec(pg, "BEGIN", err, errlen) != PG_OK) {
		*transient = true;
		goto out;
	}
	/* The file may hold several statements: the simple query protocol runs them all in
	 * our transaction and reports the first error. */
	PGconn *conn = pg_conn(pg, why, sizeof(why));
	res = conn ? PQexec(conn, text) : NULL;
	if (pg_check(pg, res,
	             PQresultStatus(res) == PGRES_TUPLES_OK ? PGRES_TUPLES_OK : PGRES_COMMAND_OK,
	             why, sizeof(why), NULL) != PG_OK) {
		PQclear(res);
		*transient = !pg_connected(pg);
		snprintf(err, errlen, "migration %s failed: %s", path, why);
		pg_exec(pg, "ROLLBACK", why, sizeof(why));
		goto out;
	}
	PQclear(res);
	res = run(pg, "INSERT INTO iotpipe_migrations (version, checksum) VALUES ($1, $2)", 2, key,
	          PGRES_COMMAND_OK, transient, err, errlen);
	if (!res) {
		pg_exec(pg, "ROLLBACK", why, sizeof(why));
		goto out;
	}
	PQclear(res);
	if (pg_exec(pg, "COMMIT", err, errlen) != PG_OK) {
		*transient = true;
		goto out;
	}
	log_info("applied migration %s", path);
	rc = 1;
out:
	free(text);
	return rc;
}

int schema_migrate(struct pg *pg, const char *dir, bool *transient, char *err, size_t errlen)
{
	*transient = false;
	struct dirent **names = NULL;
	int n = scandir(dir, &names, sql_file_filter, alphasort);
	if (n < 0) {
		snprintf(err, errlen, "cannot read the migrations in %s: %s", dir, strerror(errno));
		return -1;
	}
	int applied = 0;
	PGresult *res = run(pg, "SELECT pg_advisory_lock(" MIGRATION_LOCK ")", 0, NULL,
	                    PGRES_TUPLES_OK, transient, err, errlen);
	if (!res) {
		applied = -1;
		goto out;
	}
	PQclear(res);
	res = run(pg,
	          "CREATE TABLE IF NOT EXISTS iotpipe_migrations (version text PRIMARY KEY, "
	          "checksum text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())",
	          0, NULL, PGRES_COMMAND_OK, transient, err, errlen);
	if (!res)
		applied = -1;
	PQclear(res);
	for (int i = 0; i < n && applied >= 0; i++) {
		int rc = apply_file(pg, dir, names[i]->d_name, transient, err, errlen);
		applied = rc < 0 ? -1 : applied + rc;
	}
	char why[256];
	if (pg_connected(pg))
		PQclear(run(pg, "SELECT pg_advisory_unlock(" MIGRATION_LOCK ")", 0, NULL,
		            PGRES_TUPLES_OK, &(bool){false}, why, sizeof(why)));
out:
	for (int i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return applied;
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The identity columns of t as PostgreSQL prints a sorted name[] array: {a,b,c}. */
static void key_text(const struct table *t, char *out, size_t outlen)
{
	const char *names[64];
	size_t n = 0;
	for (size_t i = 0; i < t->ncols && n < 64; i++)
		if (t->cols[i].key)
			names[n++] = t->cols[i].name;
	qsort(names, n, sizeof(*names), name_cmp);
	size_t len = (size_t)snprintf(out, outlen, "{");
	for (size_t i = 0; i < n && len < outlen; i++)
		len += (size_t)snprintf(out + len, outlen - len, "%s%s", i ? "," : "", names[i]);
	if (len < outlen)
		snprintf(out + len, outlen - len, "}");
}

int schema_check(struct pg *pg, const struct table *t, bool *transient, char *err, size_t errlen)
{
	*transient = false;
	const char *const p[] = {t->name};
	PGresult *res = run(pg,
	                    "SELECT a.attname, a.atttypid::int, a.attnotnull, a.atthasdef "
	                    "FROM pg_attribute a WHERE a.attrelid = to_regclass($1) "
	                    "AND a.attnum > 0 AND NOT a.attisdropped",
	                    1, p, PGRES_TUPLES_OK, transient, err, errlen);
	if (!res)
		return -1;
	int rc = -1;
	int n = PQntuples(res);
	if (n == 0) {
		snprintf(err, errlen, "table %s does not exist (run raw-saver --migrate)", t->name);
		goto out;
	}
	for (size_t c = 0; c < t->ncols; c++) {
		int i = 0;
		while (i < n && strcmp(PQgetvalue(res, i, 0), t->cols[c].name) != 0)
			i++;
		if (i == n) {
			snprintf(err, errlen, "table %s has no column %s (%s)", t->name,
			         t->cols[c].name, col_kind_sql(t->cols[c].kind));
			goto out;
		}
		if ((uint32_t)strtoul(PQgetvalue(res, i, 1), NULL, 10) !=
		    col_kind_oid(t->cols[c].kind)) {
			snprintf(err, errlen, "column %s.%s is not of type %s", t->name,
			         t->cols[c].name, col_kind_sql(t->cols[c].kind));
			goto out;
		}
	}
	for (int i = 0; i < n; i++) {
		const char *name = PQgetvalue(res, i, 0);
		size_t c = 0;
		while (c < t->ncols && strcmp(t->cols[c].name, name) != 0)
			c++;
		if (c == t->ncols && PQgetvalue(res, i, 2)[0] == 't' &&
		    PQgetvalue(res, i, 3)[0] != 't') {
			snprintf(err, errlen,
			         "column %s.%s is NOT NULL without a default, and "
			         "records have no such field",
			         t->name, name);
			goto out;
		}
	}
	PQclear(res);
	res = run(pg,
	          "SELECT array_agg(a.attname::text ORDER BY a.attname COLLATE \"C\")::text "
	          "FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid "
	          "AND a.attnum = ANY (i.indkey) WHERE i.indrelid = to_regclass($1) "
	          "AND i.indisunique GROUP BY i.indexrelid",
	          1, p, PGRES_TUPLES_OK, transient, err, errlen);
	if (!res)
		return -1;
	char want[1024];
	key_text(t, want, sizeof(want));
	bool found = false;
	for (int i = 0; i < PQntuples(res) && !found; i++)
		found = strcmp(PQgetvalue(res, i, 0), want) == 0;
	if (!found) {
		snprintf(err, errlen,
		         "table %s has no unique index on exactly %s: re-delivered "
		         "records would be stored twice",
		         t->name, want);
		goto out;
	}
	rc = 0;
out:
	PQclear(res);
	return rc;
}

/* Calls a partition function of 002_partitions.sql on t: sql takes the table as $1 and arg as
 * $2, and returns an integer. Tables that are not partitioned (managed elsewhere, or a
 * hypertable) and databases without the function are left alone (0). Returns the function's
 * result, or -1 with the reason. */
static int partition_call(struct pg *pg, const struct table *t, const char *signature,
                          const char *sql, const char *arg, char *err, size_t errlen)
{
	const char *const check[] = {t->name, signature};
	const char *const params[] = {t->name, arg};
	bool transient = false;
	PGresult *res = run(pg,
	                    "SELECT c.relkind = 'p' AND to_regprocedure($2) IS NOT NULL "
	                    "FROM pg_class c WHERE c.oid = to_regclass($1)",
	                    2, check, PGRES_TUPLES_OK, &transient, err, errlen);
	if (!res)
		return -1;
	bool applies = PQntuples(res) == 1 && PQgetvalue(res, 0, 0)[0] == 't';
	PQclear(res);
	if (!applies)
		return 0;
	res = run(pg, sql, 2, params, PGRES_TUPLES_OK, &transient, err, errlen);
	if (!res)
		return -1;
	int n = atoi(PQgetvalue(res, 0, 0));
	PQclear(res);
	return n;
}

int schema_partitions(struct pg *pg, const struct table *t, int days_ahead, char *err,
                      size_t errlen)
{
	char ahead[16];
	snprintf(ahead, sizeof(ahead), "%d", days_ahead);
	int made = partition_call(pg, t, "iotpipe_ensure_partitions(regclass,date,date)",
	                          "SELECT iotpipe_ensure_partitions(to_regclass($1), "
	                          "(now() AT TIME ZONE 'UTC')::date - 1, "
	                          "(now() AT TIME ZONE 'UTC')::date + $2::int)",
	                          ahead, err, errlen);
	if (made > 0)
		log_info("%s: created %d partitions", t->name, made);
	return made;
}

int schema_retention(struct pg *pg, const struct table *t, int64_t retention_ms, char *err,
                     size_t errlen)
{
	char ms[32];
	snprintf(ms, sizeof(ms), "%" PRId64, retention_ms);
	int dropped = partition_call(pg, t, "iotpipe_drop_partitions(regclass,timestamptz)",
	                             "SELECT iotpipe_drop_partitions(to_regclass($1), "
	                             "now() - $2::bigint * interval '1 millisecond')",
	                             ms, err, errlen);
	if (dropped > 0)
		log_info("%s: dropped %d partitions older than the retention period", t->name,
		         dropped);
	return dropped;
}
