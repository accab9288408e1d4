/* The database side of the tables: migrations, the start-up check, and time partitions.
 *
 * Migrations are the files NNN_name.sql of a directory (schemas/postgres/ in the source tree and
 * in the container image), applied in name order, each in its own transaction, and recorded in
 * iotpipe_migrations with a checksum so each is applied once. An advisory lock makes concurrent
 * savers take turns. The files are written to be re-run safely as well.
 *
 * The check compares every table with the mapping of tables.h: each column with its type, no
 * unknown NOT NULL column without a default, and a unique index on exactly the identity columns
 * (without it, re-delivered records would be stored twice). */
#ifndef RAW_SAVER_SCHEMA_H
#define RAW_SAVER_SCHEMA_H

#include "pg.h"
#include "tables.h"

#include <stddef.h>
#include <stdint.h>

/* Applies the files of dir not yet recorded. Returns the number applied, or -1 with the reason
 * (*transient tells whether the connection failed, as opposed to a broken file). */
int schema_migrate(struct pg *pg, const char *dir, bool *transient, char *err, size_t errlen);

/* Checks table t. Returns 0, or -1 with the reason (*transient as above). */
int schema_check(struct pg *pg, const struct table *t, bool *transient, char *err, size_t errlen);

/* Creates the daily partitions of t from yesterday to days_ahead days from today (UTC) when
 * t is partitioned and iotpipe_ensure_partitions() exists. Returns the number created, or -1. */
int schema_partitions(struct pg *pg, const struct table *t, int days_ahead, char *err,
                      size_t errlen);

/* Drops t's partitions (and deletes default-partition rows) older than retention_ms. Returns the
 * number of partitions dropped, or -1. */
int schema_retention(struct pg *pg, const struct table *t, int64_t retention_ms, char *err,
                     size_t errlen);

#endif
