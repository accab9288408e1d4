/* raw-saver's PostgreSQL connection: opened lazily, dropped when it breaks, and errors sorted
 * into the two kinds the saver treats differently:
 *   - the database refuses a record (its data: a value out of range, a violated constraint):
 *     only that record is set aside, the rest of the batch is written;
 *   - anything else (connection lost, server restarting, deadlock, a missing table, bad
 *     credentials): the whole batch waits and is retried, nothing is dropped.
 *
 * Connection parameters are a libpq conninfo string or URI; whatever it leaves out comes from
 * the PG* environment variables (PGHOST, PGPASSWORD, PGSSLMODE, ...) and ~/.pgpass, so sslmode
 * and TLS settings are libpq's own. */
#ifndef RAW_SAVER_PG_H
#define RAW_SAVER_PG_H

#include <libpq-fe.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum pg_fault {
	PG_OK = 0,
	PG_RECORD,    /* the statement's data was refused (SQLSTATE classes 22, 23, 54) */
	PG_TRANSIENT, /* anything else: retry the batch later */
};

struct pg;

/* conninfo: "" or NULL for the environment's defaults; borrowed, must outlive the pg. */
struct pg *pg_new(const char *conninfo);
/* Closes the connection; accepts NULL. */
void pg_free(struct pg *pg);

/* The open connection, connecting first when there is none. NULL with the reason when the
 * server cannot be reached or refuses us; it does not wait or retry (the caller paces that). */
PGconn *pg_conn(struct pg *pg, char *err, size_t errlen);
/* True while a connection is open and healthy (pg_check closes a broken one). */
bool pg_connected(const struct pg *pg);
/* Closes the connection after a failure, so the next pg_conn opens a new one. */
void pg_reset(struct pg *pg);
/* Increases with every new connection: statements prepared on an older one must be prepared
 * again. 0 before the first connection. */
uint64_t pg_generation(const struct pg *pg);

/* Classifies a result (NULL counts as a lost connection) against the status the caller
 * expected, and writes "SQLSTATE: message (detail)" into err when it is not PG_OK. The
 * SQLSTATE is copied into sqlstate (6 bytes) when given. Resets the connection when it is bad. */
enum pg_fault pg_check(struct pg *pg, PGresult *res, ExecStatusType want, char *err, size_t errlen,
                       char *sqlstate);

/* Runs a command without parameters (BEGIN, COMMIT, SAVEPOINT...). */
enum pg_fault pg_exec(struct pg *pg, const char *sql, char *err, size_t errlen);

/* Exponential backoff for retries: the first delay is min_ms, doubled up to max_ms, with
 * jitter so that several savers do not reconnect in step. */
struct backoff {
	int64_t min_ms, max_ms, cur_ms, next_at;
};
void backoff_init(struct backoff *b, int64_t min_ms, int64_t max_ms);
/* Records a failure at now; returns the delay chosen. */
int64_t backoff_fail(struct backoff *b, int64_t now);
void backoff_reset(struct backoff *b);
/* Milliseconds left before the next attempt (0 when it is due). */
int64_t backoff_wait_ms(const struct backoff *b, int64_t now);

#endif
