/* PostgreSQL connection handling and error classification (see pg.h). */
#include "pg.h"

#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct pg {
	const char *conninfo;
	PGconn *conn;
	uint64_t generation;
};

struct pg *pg_new(const char *conninfo)
{
	struct pg *pg = calloc(1, sizeof(*pg));
	if (pg)
		pg->conninfo = conninfo ? conninfo : "";
	return pg;
}

void pg_free(struct pg *pg)
{
	if (!pg)
		return;
	if (pg->conn)
		PQfinish(pg->conn);
	free(pg);
}

void pg_reset(struct pg *pg)
{
	if (pg->conn)
		PQfinish(pg->conn);
	pg->conn = NULL;
}

bool pg_connected(const struct pg *pg)
{
	return pg->conn && PQstatus(pg->conn) == CONNECTION_OK;
}

uint64_t pg_generation(const struct pg *pg)
{
	return pg->generation;
}

/* Copies libpq's message without its trailing newline. */
static void copy_message(char *err, size_t errlen, const char *prefix, const char *msg)
{
	size_t n = msg ? strlen(msg) : 0;
	while (n && (msg[n - 1] == '\n' || msg[n - 1] == ' '))
		n--;
	snprintf(err, errlen, "%s%.*s", prefix, (int)n, msg ? msg : "");
}

/* Server warnings go to our log instead of libpq's bare stderr lines. */
static void on_notice(void *arg, const char *message)
{
	(void)arg;
	size_t n = strlen(message);
	while (n && message[n - 1] == '\n')
		n--;
	log_warn("PostgreSQL: %.*s", (int)n, message);
}

PGconn *pg_conn(struct pg *pg, char *err, size_t errlen)
{
	if (pg->conn && PQstatus(pg->conn) == CONNECTION_OK)
		return pg->conn;
	pg_reset(pg);
	/* The user's conninfo comes after our defaults, so anything it sets wins; the
	 * application name only fills in when neither it nor PGAPPNAME gives one. Keepalives
	 * and the TCP user timeout make a silently vanished server (a network partition) an
	 * error within about a minute instead of a connection that hangs for hours. */
	static const char *const params[][2] = {
	    {"connect_timeout", "10"},
	    {"keepalives_idle", "30"},
	    {"keepalives_interval", "10"},
	    {"keepalives_count", "3"},
	    {"tcp_user_timeout", "60000"},
	    {"dbname", NULL}, /* the conninfo, expanded */
	    {"fallback_application_name", "raw-saver"},
	    {"client_encoding", "UTF8"},
	};
	enum { NPARAMS = sizeof(params) / sizeof(*params) };
	const char *keys[NPARAMS + 1] = {0}, *vals[NPARAMS + 1] = {0};
	for (size_t i = 0; i < NPARAMS; i++) {
		keys[i] = params[i][0];
		vals[i] = params[i][1] ? params[i][1] : pg->conninfo;
	}
	PGconn *c = PQconnectdbParams(keys, vals, 1);
	if (!c) {
		snprintf(err, errlen, "cannot connect to PostgreSQL: out of memory");
		return NULL;
	}
	if (PQstatus(c) != CONNECTION_OK) {
		copy_message(err, errlen, "cannot connect to PostgreSQL: ", PQerrorMessage(c));
		PQfinish(c);
		return NULL;
	}
	/* Timestamps are sent as binary UTC instants; the session zone only affects text that
	 * the saver logs (partition bounds), which is clearer in UTC. */
	PQsetNoticeProcessor(c, on_notice, NULL);
	PGresult *r = PQexec(c, "SET TIME ZONE 'UTC'; SET client_min_messages = warning");
	bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
	PQclear(r);
	if (!ok) {
		copy_message(err, errlen,
		             "cannot set up the PostgreSQL session: ", PQerrorMessage(c));
		PQfinish(c);
		return NULL;
	}
	pg->conn = c;
	pg->generation++;
	log_info("connected to PostgreSQL %s:%s database %s as %s%s", PQhost(c), PQport(c), PQdb(c),
	         PQuser(c), PQsslInUse(c) ? " (TLS)" : "");
	return c;
}

enum pg_fault pg_check(struct pg *pg, PGresult *res, ExecStatusType want, char *err, size_t errlen,
                       char *sqlstate)
{
	if (sqlstate)
		snprintf(sqlstate, 6, "%s", "");
	if (res && PQresultStatus(res) == want)
		return PG_OK;
	const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	const char *msg = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY) : NULL;
	const char *detail = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_DETAIL) : NULL;
	if (msg)
		snprintf(err, errlen, "%s: %s%s%s%s", state ? state : "?????", msg,
		         detail ? " (" : "", detail ? detail : "", detail ? ")" : "");
	else
		copy_message(err, errlen, "",
		             pg->conn ? PQerrorMessage(pg->conn) : "no connection");
	if (!err[0])
		snprintf(err, errlen, "unexpected result %s",
		         res ? PQresStatus(PQresultStatus(res)) : "(none)");
	if (sqlstate && state)
		snprintf(sqlstate, 6, "%.5s", state);
	if (!pg->conn || PQstatus(pg->conn) != CONNECTION_OK) {
		pg_reset(pg);
		return PG_TRANSIENT;
	}
	/* Data exceptions, integrity constraint violations and program limits (a key too long
	 * for its index) belong to the record; everything else is about the server or the
	 * schema, and waiting (or an operator) fixes it. */
	if (state && (strncmp(state, "22", 2) == 0 || strncmp(state, "23", 2) == 0 ||
	              strncmp(state, "54", 2) == 0))
		return PG_RECORD;
	return PG_TRANSIENT;
}

enum pg_fault pg_exec(struct pg *pg, const char *sql, char *err, size_t errlen)
{
	if (!pg->conn) {
		snprintf(err, errlen, "no connection");
		return PG_TRANSIENT;
	}
	PGresult *r = PQexec(pg->conn, sql);
	enum pg_fault f = pg_check(pg, r, PGRES_COMMAND_OK, err, errlen, NULL);
	PQclear(r);
	return f;
}

void backoff_init(struct backoff *b, int64_t min_ms, int64_t max_ms)
{
	*b = (struct backoff){.min_ms = min_ms > 0 ? min_ms : 1,
	                      .max_ms = max_ms > min_ms ? max_ms : min_ms};
}

int64_t backoff_fail(struct backoff *b, int64_t now)
{
	b->cur_ms = b->cur_ms ? b->cur_ms * 2 : b->min_ms;
	if (b->cur_ms > b->max_ms)
		b->cur_ms = b->max_ms;
	/* Up to a quarter less, so savers that failed together spread out. */
	int64_t delay = b->cur_ms - (b->cur_ms / 4) * (rand() % 1000) / 1000;
	b->next_at = now + delay;
	return delay;
}

void backoff_reset(struct backoff *b)
{
	b->cur_ms = 0;
	b->next_at = 0;
}

int64_t backoff_wait_ms(const struct backoff *b, int64_t now)
{
	return b->next_at > now ? b->next_at - now : 0;
}
