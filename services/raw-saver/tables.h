/* Where each record type is stored: one table per type, one column per schema field, taken from
 * the Avro schema compiled into the binary so a new field needs no code here.
 *
 * Field types map to columns as: string, enum -> text; bytes, fixed -> bytea; int -> integer;
 * long -> bigint, or timestamptz when its logicalType is timestamp-millis; float -> real;
 * double -> double precision; boolean -> boolean; map, array -> jsonb; ["null", X] -> X, nullable;
 * a nested record becomes one column per field named <field>_<subfield> (Reading.location ->
 * location_lat, location_lon).
 *
 * What the schema cannot say is in a small table per type (tables.c): the table's name, its
 * partition (time) column, its primary key (the record's identity), whether a re-delivered
 * record is skipped or upserted, and where the Kafka origin goes. */
#ifndef RAW_SAVER_TABLES_H
#define RAW_SAVER_TABLES_H

#include "buf.h"
#include "records.h"
#include "stream.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum col_kind {
	COL_TEXT,
	COL_BYTEA,
	COL_BOOL,
	COL_INT4,
	COL_INT8,
	COL_FLOAT4,
	COL_FLOAT8,
	COL_TIMESTAMPTZ,
	COL_JSONB
};

/* Which part of a record's origin fills a column (when its field is absent or null). */
enum origin_part {
	ORIGIN_NONE = -1,
	ORIGIN_CLUSTER,
	ORIGIN_TOPIC,
	ORIGIN_PARTITION,
	ORIGIN_OFFSET
};

struct table_col {
	char name[128]; /* SQL column name */
	enum col_kind kind;
	bool nullable;
	bool key;          /* part of the primary key */
	const char *field; /* top-level field (owned by the schema); NULL for origin-only columns */
	const char *sub;   /* field of a nested record, or NULL */
	int origin;        /* enum origin_part: fallback when the field is absent or null */
};

struct table {
	enum rec_type type;
	const char *name;     /* "raw_messages" */
	const char *time_col; /* partition key column */
	bool upsert;          /* re-delivered identities update the row instead of being skipped */
	struct table_col *cols;
	size_t ncols;
	uint32_t *param_types; /* one array type OID per column */
	char *insert_sql;      /* INSERT ... SELECT FROM unnest($1::..[], ...) ON CONFLICT ... */
	char *copy_sql;        /* COPY name (cols) FROM STDIN (FORMAT binary) */
};

/* Builds the mapping of a record type (records_init must have run). Returns 0, or -1 with the
 * reason (a schema field of a type with no column mapping, a key column that is missing).
 * table_free releases it and accepts NULL or a zeroed table. */
int table_init(struct table *t, enum rec_type type, char *err, size_t errlen);
void table_free(struct table *t);

/* The table name of a record type ("raw_messages"), or NULL. */
const char *table_name(enum rec_type type);
/* The record type stored in a table, or REC_UNKNOWN. */
enum rec_type table_type_by_name(const char *name);

uint32_t col_kind_oid(enum col_kind k);
uint32_t col_kind_array_oid(enum col_kind k);
/* The SQL type name ("timestamp with time zone"), as PostgreSQL's format_type() prints it. */
const char *col_kind_sql(enum col_kind k);

/* Appends the binary value (pgbin.h) of column c for record rec with origin o. Returns 0, or
 * -1 with the reason when the record's value does not fit (wrong JSON type, NULL in a NOT NULL
 * column): decoded records always fit, so this only catches records built some other way. */
int table_col_put(const struct table_col *c, const json_t *rec, const struct origin *o,
                  struct buf *b, char *err, size_t errlen);

#endif
