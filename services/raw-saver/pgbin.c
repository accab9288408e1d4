/* Binary encodings of PostgreSQL values (see pgbin.h). All integers on the wire are big-endian. */
#include "pgbin.h"

#include <stdlib.h>
#include <string.h>

static int put_be32(struct buf *b, uint32_t v)
{
	uint8_t x[4] = {(uint8_t)(v >> 24), (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v};
	return buf_append(b, x, sizeof(x));
}

static int put_be64(struct buf *b, uint64_t v)
{
	uint8_t x[8];
	for (int i = 0; i < 8; i++)
		x[i] = (uint8_t)(v >> (56 - 8 * i));
	return buf_append(b, x, sizeof(x));
}

static void set_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

int pgbin_null(struct buf *b)
{
	return put_be32(b, UINT32_MAX);
}

int pgbin_bytes(struct buf *b, const void *p, size_t n)
{
	/* PostgreSQL values are limited to 1 GB; a longer one could not be sent anyway. */
	if (n > INT32_MAX || buf_reserve(b, 4 + n) < 0)
		return -1;
	put_be32(b, (uint32_t)n);
	return buf_append(b, p, n);
}

int pgbin_bool(struct buf *b, bool v)
{
	uint8_t x[5] = {0, 0, 0, 1, v ? 1 : 0};
	return buf_append(b, x, sizeof(x));
}

int pgbin_int4(struct buf *b, int32_t v)
{
	if (buf_reserve(b, 8) < 0)
		return -1;
	put_be32(b, 4);
	return put_be32(b, (uint32_t)v);
}

int pgbin_int8(struct buf *b, int64_t v)
{
	if (buf_reserve(b, 12) < 0)
		return -1;
	put_be32(b, 8);
	return put_be64(b, (uint64_t)v);
}

int pgbin_float4(struct buf *b, float v)
{
	uint32_t bits;
	memcpy(&bits, &v, sizeof(bits));
	if (buf_reserve(b, 8) < 0)
		return -1;
	put_be32(b, 4);
	return put_be32(b, bits);
}

int pgbin_float8(struct buf *b, double v)
{
	uint64_t bits;
	memcpy(&bits, &v, sizeof(bits));
	if (buf_reserve(b, 12) < 0)
		return -1;
	put_be32(b, 8);
	return put_be64(b, bits);
}

int64_t pgbin_timestamp_us(int64_t ms)
{
	/* INT64_MAX and INT64_MIN mean +-infinity to PostgreSQL; one step inside them is still
	 * far outside its valid range (4713 BC .. 294276 AD), so the server refuses the value. */
	const int64_t epoch_ms = PG_EPOCH_OFFSET_US / 1000;
	const int64_t limit = INT64_MAX / 1000 - 1;
	if (ms < INT64_MIN + epoch_ms)
		return INT64_MIN + 1;
	int64_t rel = ms - epoch_ms;
	if (rel > limit)
		return INT64_MAX - 1;
	if (rel < -limit)
		return INT64_MIN + 1;
	return rel * 1000;
}

int pgbin_timestamptz_ms(struct buf *b, int64_t ms)
{
	return pgbin_int8(b, pgbin_timestamp_us(ms));
}

int pgbin_jsonb(struct buf *b, const json_t *v)
{
	char *text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
	if (!text)
		return -1;
	size_t n = strlen(text);
	int rc = -1;
	if (n < INT32_MAX && buf_reserve(b, 5 + n) == 0) {
		put_be32(b, (uint32_t)(n + 1));
		buf_putc(b, 1); /* jsonb binary format version */
		rc = buf_append(b, text, n);
	}
	free(text);
	return rc;
}

int pgbin_array_begin(struct buf *b, struct pgbin_array *a, uint32_t elem_oid)
{
	*a = (struct pgbin_array){.start = b->len, .elem_oid = elem_oid};
	static const uint8_t zeros[20];
	return buf_append(b, zeros, sizeof(zeros));
}

void pgbin_array_count(struct pgbin_array *a, bool is_null)
{
	a->n++;
	if (is_null)
		a->has_null = true;
}

void pgbin_array_end(struct buf *b, const struct pgbin_array *a)
{
	/* ndim, has-null flag, element type, then (size, lower bound) of the one dimension.
	 * An empty array keeps ndim 1 with size 0, which the server reads as '{}'. */
	uint8_t *h = b->data + a->start;
	set_be32(h, 1);
	set_be32(h + 4, a->has_null ? 1 : 0);
	set_be32(h + 8, a->elem_oid);
	set_be32(h + 12, (uint32_t)a->n);
	set_be32(h + 16, 1);
}

int pgbin_copy_header(struct buf *b)
{
	static const uint8_t sig[19] = {'P', 'G', 'C', 'O', 'P', 'Y', '\n', 0xff, '\r', '\n',
	                                0,   0,   0,   0,   0,   0,   0,    0,    0};
	return buf_append(b, sig, sizeof(sig));
}

int pgbin_copy_row(struct buf *b, int16_t nfields)
{
	uint8_t x[2] = {(uint8_t)((uint16_t)nfields >> 8), (uint8_t)nfields};
	return buf_append(b, x, sizeof(x));
}

int pgbin_copy_trailer(struct buf *b)
{
	return pgbin_copy_row(b, -1);
}
