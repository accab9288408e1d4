/* Writing one batch to PostgreSQL in one transaction, in one of three modes:
 *
 *   COPY    tables that skip duplicates get a binary COPY straight into the table, the fastest
 *           path PostgreSQL has. A re-delivered record makes it fail on the primary key; the
 *           batch is then written again in INSERT mode, which stays on until a batch meets no
 *           duplicate. Upserted tables are always written in INSERT mode.
 *   INSERT  per table, one INSERT ... SELECT FROM unnest(<one array per column>) ON CONFLICT.
 *   CAREFUL after the database refused some record: INSERTs of halves of the batch inside
 *           savepoints, down to the single refused records, which are marked in the batch.
 * It starts in INSERT mode, because what the saver reads first after a restart is what the
 * previous run may already have written. */
#ifndef RAW_SAVER_DBWRITE_H
#define RAW_SAVER_DBWRITE_H

#include "batch.h"
#include "pg.h"
#include "tables.h"

#include <stdbool.h>

struct dbwrite;

struct dbwrite_result {
	enum pg_fault fault;           /* PG_OK (committed) or PG_TRANSIENT (retry later) */
	char err[1024];                /* why, when not committed */
	long affected[REC_TYPE_COUNT]; /* rows inserted or updated, per table */
	bool copy_fallback;            /* COPY met a duplicate and INSERT took over */
};

/* pg and tables are borrowed. copy: allow the COPY mode. NULL when memory runs out. */
struct dbwrite *dbwrite_new(struct pg *pg, const struct table *tables, bool copy);
void dbwrite_free(struct dbwrite *d);

/* Writes every row of b not refused in one transaction; marks the rows the database refuses.
 * Refusals found in an earlier attempt are cleared first (they are found again). */
void dbwrite_batch(struct dbwrite *d, struct batch *b, struct dbwrite_result *res);

#endif
