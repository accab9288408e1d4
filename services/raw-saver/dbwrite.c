/* One transaction per batch (see dbwrite.h). */
#include "dbwrite.h"

#include "log.h"
#include "pgbin.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ERR_MAX 1024
#define COPY_CHUNK ((size_t)1 << 20)

enum mode { MODE_COPY, MODE_INSERT, MODE_CAREFUL };

/* Outcome of writing one table's rows: a pg_fault, or a duplicate met by COPY. */
enum { WRITE_DUPLICATE = 100 };

struct dbwrite {
	struct pg *pg;
	const struct table *tables;
	bool copy;
	bool copy_ok;                      /* no duplicate met since the last COPY fallback */
	uint64_t prepared[REC_TYPE_COUNT]; /* connection generation a statement was prepared on */
	/* Parameters of the statement being sent: one array per column. */
	size_t max_cols;
	struct buf *cols;
	const char **values;
	int *lengths, *formats;
	struct buf copy_buf; /* a COPY stream without the refused rows */
	long affected[REC_TYPE_COUNT];
};

struct dbwrite *dbwrite_new(struct pg *pg, const struct table *tables, bool copy)
{
	struct dbwrite *d = calloc(1, sizeof(*d));
	if (!d)
		return NULL;
	d->pg = pg;
	d->tables = tables;
	d->copy = copy;
	for (int t = 0; t < REC_TYPE_COUNT; t++)
		if (tables[t].ncols > d->max_cols)
			d->max_cols = tables[t].ncols;
	d->cols = calloc(d->max_cols, sizeof(*d->cols));
	d->values = calloc(d->max_cols, sizeof(*d->values));
	d->lengths = calloc(d->max_cols, sizeof(*d->lengths));
	d->formats = calloc(d->max_cols, sizeof(*d->formats));
	if (!d->cols || !d->values || !d->lengths || !d->formats) {
		dbwrite_free(d);
		return NULL;
	}
	for (size_t i = 0; i < d->max_cols; i++)
		d->formats[i] = 1;
	return d;
}

void dbwrite_free(struct dbwrite *d)
{
	if (!d)
		return;
	for (size_t i = 0; d->cols && i < d->max_cols; i++)
		buf_free(&d->cols[i]);
	free(d->cols);
	buf_free(&d->copy_buf);
	free(d->values);
	free(d->lengths);
	free(d->formats);
	free(d);
}

static uint32_t read_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Turns the tuples of rows idx[lo..hi) of table t into one array parameter per column,
 * skipping refused rows. Sets *count to the rows included. Returns 0, or -1 when memory runs
 * out. */
static int encode_arrays(struct dbwrite *d, const struct batch *b, const struct table *t,
                         const size_t *idx, size_t lo, size_t hi, size_t *count)
{
	const struct buf *tuples = &b->tb[t->type].tuples;
	struct pgbin_array arr[t->ncols];
	for (size_t c = 0; c < t->ncols; c++) {
		buf_reset(&d->cols[c]);
		if (pgbin_array_begin(&d->cols[c], &arr[c], col_kind_oid(t->cols[c].kind)) < 0)
			return -1;
	}
	*count = 0;
	for (size_t i = lo; i < hi; i++) {
		const struct batch_row *r = &b->rows[idx[i]];
		if (r->refused)
			continue;
		const uint8_t *p = tuples->data + r->tuple_off + 2; /* after the field count */
		for (size_t c = 0; c < t->ncols; c++) {
			uint32_t len = read_be32(p);
			bool null = len == UINT32_MAX;
			size_t size = 4 + (null ? 0 : len);
			if (buf_append(&d->cols[c], p, size) < 0)
				return -1;
			pgbin_array_count(&arr[c], null);
			p += size;
		}
		(*count)++;
	}
	for (size_t c = 0; c < t->ncols; c++) {
		pgbin_array_end(&d->cols[c], &arr[c]);
		d->values[c] = (const char *)d->cols[c].data;
		d->lengths[c] = (int)d->cols[c].len;
	}
	return 0;
}

/* The binary COPY stream of table t's rows, trailer included: the table's buffer itself (the
 * caller takes the trailer off again), or a copy without the refused rows. NULL when memory
 * runs out. */
static struct buf *copy_stream(struct dbwrite *d, struct batch *b, const struct table *t)
{
	struct batch_table *tb = &b->tb[t->type];
	struct buf *out = &tb->tuples;
	bool refused = false;
	for (size_t i = 0; i < tb->n && !refused; i++)
		refused = b->rows[tb->idx[i]].refused;
	if (refused) {
		out = &d->copy_buf;
		buf_reset(out);
		if (pgbin_copy_header(out) < 0)
			return NULL;
		for (size_t i = 0; i < tb->n; i++) {
			const struct batch_row *r = &b->rows[tb->idx[i]];
			if (!r->refused &&
			    buf_append(out, tb->tuples.data + r->tuple_off, r->tuple_len) < 0)
				return NULL;
		}
	}
	return pgbin_copy_trailer(out) == 0 ? out : NULL;
}

static enum pg_fault prepare(struct dbwrite *d, PGconn *conn, const struct table *t,
                             const char *stmt, char *err, size_t errlen)
{
	if (d->prepared[t->type] == pg_generation(d->pg))
		return PG_OK;
	PGresult *res =
	    PQprepare(conn, stmt, t->insert_sql, (int)t->ncols, (const Oid *)t->param_types);
	enum pg_fault f = pg_check(d->pg, res, PGRES_COMMAND_OK, err, errlen, NULL);
	PQclear(res);
	if (f != PG_OK) {
		/* Not the records' fault, whatever the SQLSTATE: the statement is ours. */
		char why[ERR_MAX];
		snprintf(why, sizeof(why), "%s", err);
		int room = errlen > 64 ? (int)errlen - 64 : 0;
		snprintf(err, errlen, "cannot prepare the insert into %s: %.*s", t->name, room,
		         why);
		return PG_TRANSIENT;
	}
	d->prepared[t->type] = pg_generation(d->pg);
	return PG_OK;
}

/* INSERT of rows idx[lo..hi) of table t. */
static enum pg_fault insert_rows(struct dbwrite *d, const struct batch *b, const struct table *t,
                                 const size_t *idx, size_t lo, size_t hi, char *err, size_t errlen,
                                 char *sqlstate)
{
	char stmt[64];
	size_t count;
	PGconn *conn = pg_conn(d->pg, err, errlen);
	if (!conn)
		return PG_TRANSIENT;
	snprintf(stmt, sizeof(stmt), "iotpipe_insert_%s", t->name);
	enum pg_fault f = prepare(d, conn, t, stmt, err, errlen);
	if (f != PG_OK)
		return f;
	if (encode_arrays(d, b, t, idx, lo, hi, &count) < 0) {
		snprintf(err, errlen, "out of memory encoding a batch for %s", t->name);
		return PG_TRANSIENT;
	}
	if (count == 0)
		return PG_OK;
	PGresult *res =
	    PQexecPrepared(conn, stmt, (int)t->ncols, d->values, d->lengths, d->formats, 0);
	f = pg_check(d->pg, res, PGRES_COMMAND_OK, err, errlen, sqlstate);
	if (f == PG_OK)
		d->affected[t->type] += atol(PQcmdTuples(res));
	PQclear(res);
	return f;
}

/* COPY of all rows of table t; WRITE_DUPLICATE when one was already in the table. */
static int copy_rows(struct dbwrite *d, struct batch *b, const struct table *t, char *err,
                     size_t errlen, char *sqlstate)
{
	PGconn *conn = pg_conn(d->pg, err, errlen);
	if (!conn)
		return PG_TRANSIENT;
	struct buf *data = copy_stream(d, b, t);
	if (!data) {
		snprintf(err, errlen, "out of memory encoding a batch for %s", t->name);
		return PG_TRANSIENT;
	}
	size_t len = data->len;
	data->len -= 2; /* the trailer is appended again at the next attempt */
	PGresult *res = PQexec(conn, t->copy_sql);
	enum pg_fault f = pg_check(d->pg, res, PGRES_COPY_IN, err, errlen, sqlstate);
	PQclear(res);
	if (f != PG_OK)
		return f;
	/* Sent in pieces: libpq takes an int length. The trailer is still in place after
	 * data->len, as nothing was appended since. */
	int sent = 1;
	for (size_t at = 0; at < len && sent == 1; at += COPY_CHUNK)
		sent = PQputCopyData(conn, (const char *)data->data + at,
		                     (int)(len - at < COPY_CHUNK ? len - at : COPY_CHUNK));
	if (sent != 1 || PQputCopyEnd(conn, NULL) != 1) {
		snprintf(err, errlen, "COPY into %s: %s", t->name, PQerrorMessage(conn));
		pg_reset(d->pg);
		return PG_TRANSIENT;
	}
	res = PQgetResult(conn);
	/* libpq needs the NULL that ends a command's results before the next one is sent. */
	for (PGresult *more; (more = PQgetResult(conn));)
		PQclear(more);
	f = pg_check(d->pg, res, PGRES_COMMAND_OK, err, errlen, sqlstate);
	if (f == PG_OK)
		d->affected[t->type] += atol(PQcmdTuples(res));
	PQclear(res);
	if (f == PG_RECORD && strcmp(sqlstate, "23505") == 0)
		return WRITE_DUPLICATE;
	return f;
}

/* Writes rows idx[lo..hi) in savepoints, halving on refusal, refusing single records. */
static enum pg_fault bisect(struct dbwrite *d, struct batch *b, const struct table *t,
                            const size_t *idx, size_t lo, size_t hi, char *err, size_t errlen)
{
	char state[6];
	long before = d->affected[t->type];
	if (pg_exec(d->pg, "SAVEPOINT iotpipe_part", err, errlen) != PG_OK)
		return PG_TRANSIENT;
	enum pg_fault f = insert_rows(d, b, t, idx, lo, hi, err, errlen, state);
	if (f == PG_TRANSIENT)
		return f;
	if (f == PG_OK)
		return pg_exec(d->pg, "RELEASE SAVEPOINT iotpipe_part", err, errlen) == PG_OK
		           ? PG_OK
		           : PG_TRANSIENT;
	d->affected[t->type] = before;
	char why[ERR_MAX];
	snprintf(why, sizeof(why), "%s", err);
	if (pg_exec(d->pg, "ROLLBACK TO SAVEPOINT iotpipe_part", err, errlen) != PG_OK ||
	    pg_exec(d->pg, "RELEASE SAVEPOINT iotpipe_part", err, errlen) != PG_OK)
		return PG_TRANSIENT;
	if (hi - lo == 1) {
		struct batch_row *r = &b->rows[idx[lo]];
		batch_refuse(r, t->name, state, why);
		log_warn("%s refused a %s record from %s/%s/%d/%lld: %s", t->name,
		         records_name(r->type), r->origin.cluster, r->origin.topic,
		         (int)r->origin.partition, (long long)r->origin.offset, why);
		return PG_OK;
	}
	size_t mid = lo + (hi - lo) / 2;
	f = bisect(d, b, t, idx, lo, mid, err, errlen);
	return f == PG_OK ? bisect(d, b, t, idx, mid, hi, err, errlen) : f;
}

/* One attempt at the whole batch in one transaction. Returns a pg_fault or WRITE_DUPLICATE. */
static int write_once(struct dbwrite *d, struct batch *b, enum mode mode, char *err, size_t errlen)
{
	char state[6];
	memset(d->affected, 0, sizeof(d->affected));
	if (pg_exec(d->pg, "BEGIN", err, errlen) != PG_OK)
		return PG_TRANSIENT;
	int rc = PG_OK;
	for (int type = 0; type < REC_TYPE_COUNT && rc == PG_OK; type++) {
		const struct batch_table *tb = &b->tb[type];
		const struct table *t = &d->tables[type];
		if (!tb->n)
			continue;
		if (mode == MODE_CAREFUL)
			rc = bisect(d, b, t, tb->idx, 0, tb->n, err, errlen);
		else if (mode == MODE_COPY && !t->upsert)
			rc = copy_rows(d, b, t, err, errlen, state);
		else
			rc = insert_rows(d, b, t, tb->idx, 0, tb->n, err, errlen, state);
	}
	if (rc == PG_OK)
		return pg_exec(d->pg, "COMMIT", err, errlen) == PG_OK ? PG_OK : PG_TRANSIENT;
	char ignore[ERR_MAX];
	if (pg_connected(d->pg))
		pg_exec(d->pg, "ROLLBACK", ignore, sizeof(ignore));
	return rc;
}

void dbwrite_batch(struct dbwrite *d, struct batch *b, struct dbwrite_result *res)
{
	memset(res, 0, sizeof(*res));
	if (!pg_conn(d->pg, res->err, sizeof(res->err))) {
		res->fault = PG_TRANSIENT;
		return;
	}
	/* Refusals by the database are found again at each attempt; a record that could not be
	 * encoded stays refused. */
	for (size_t i = 0; i < b->n; i++)
		b->rows[i].refused = b->rows[i].tuple_len == 0;
	enum mode mode = d->copy && d->copy_ok ? MODE_COPY : MODE_INSERT;
	int rc = write_once(d, b, mode, res->err, sizeof(res->err));
	if (rc == WRITE_DUPLICATE) {
		res->copy_fallback = true;
		d->copy_ok = false;
		mode = MODE_INSERT;
		rc = write_once(d, b, mode, res->err, sizeof(res->err));
	}
	if (rc == PG_RECORD) {
		mode = MODE_CAREFUL;
		rc = write_once(d, b, mode, res->err, sizeof(res->err));
	}
	if (rc != PG_OK) {
		/* Whatever the SQLSTATE of the last attempt, the batch is retried whole. */
		res->fault = PG_TRANSIENT;
		return;
	}
	memcpy(res->affected, d->affected, sizeof(res->affected));
	if (mode == MODE_INSERT && d->copy) {
		/* Back to COPY once a batch met no duplicate in the tables COPY would write. */
		bool duplicates = false;
		for (int t = 0; t < REC_TYPE_COUNT; t++) {
			if (d->tables[t].upsert)
				continue;
			long submitted = 0;
			for (size_t i = 0; i < b->tb[t].n; i++)
				submitted += !b->rows[b->tb[t].idx[i]].refused;
			duplicates = duplicates || submitted > d->affected[t];
		}
		d->copy_ok = !duplicates;
	}
	res->fault = PG_OK;
}
