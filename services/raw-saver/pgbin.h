/* PostgreSQL's binary wire format for the values raw-saver sends: every value is a 4-byte
 * big-endian length (-1 for NULL) followed by the type's binary representation, which is the
 * same inside an array parameter and in a binary COPY row.
 *
 * Binary values are used so that record bytes (payloads with quotes, backslashes, tabs, newlines
 * or invalid UTF-8) never pass through a text syntax that would need escaping: the server reads
 * them by length, byte for byte. */
#ifndef RAW_SAVER_PGBIN_H
#define RAW_SAVER_PGBIN_H

#include "buf.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Type OIDs of the built-in types raw-saver writes (fixed in every PostgreSQL release). */
enum {
	PG_OID_BOOL = 16,
	PG_OID_BYTEA = 17,
	PG_OID_INT8 = 20,
	PG_OID_INT4 = 23,
	PG_OID_TEXT = 25,
	PG_OID_FLOAT4 = 700,
	PG_OID_FLOAT8 = 701,
	PG_OID_TIMESTAMPTZ = 1184,
	PG_OID_JSONB = 3802,
};

/* Microseconds between the Unix epoch and PostgreSQL's epoch (2000-01-01 UTC). */
#define PG_EPOCH_OFFSET_US INT64_C(946684800000000)

/* Each appends one length-prefixed value and returns 0, or -1 when memory runs out. */
int pgbin_null(struct buf *b);
int pgbin_bytes(struct buf *b, const void *p, size_t n); /* text, bytea */
int pgbin_bool(struct buf *b, bool v);
int pgbin_int4(struct buf *b, int32_t v);
int pgbin_int8(struct buf *b, int64_t v);
int pgbin_float4(struct buf *b, float v);
int pgbin_float8(struct buf *b, double v);
/* A timestamptz from milliseconds since the Unix epoch. Values beyond what int64 microseconds
 * can hold are sent as an out-of-range timestamp (never as +-infinity), so the server refuses
 * that record with "timestamp out of range" instead of storing a wrong time. */
int pgbin_timestamptz_ms(struct buf *b, int64_t ms);
/* A jsonb from a JSON value (compact text behind the jsonb version byte). */
int pgbin_jsonb(struct buf *b, const json_t *v);

/* The microseconds since 2000-01-01 pgbin_timestamptz_ms sends for ms. */
int64_t pgbin_timestamp_us(int64_t ms);

/* A one-dimensional array parameter being built in a buffer: begin reserves the header, values
 * are appended with the functions above, end fills the header in. */
struct pgbin_array {
	size_t start;
	int32_t n;
	bool has_null;
	uint32_t elem_oid;
};
int pgbin_array_begin(struct buf *b, struct pgbin_array *a, uint32_t elem_oid);
void pgbin_array_count(struct pgbin_array *a, bool is_null);
void pgbin_array_end(struct buf *b, const struct pgbin_array *a);

/* Binary COPY framing: the signature header, and the trailer (-1 field count). */
int pgbin_copy_header(struct buf *b);
int pgbin_copy_row(struct buf *b, int16_t nfields);
int pgbin_copy_trailer(struct buf *b);

#endif
