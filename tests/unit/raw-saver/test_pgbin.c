/* PostgreSQL binary values: byte-exact encodings of every type raw-saver sends, timestamps at
 * and beyond PostgreSQL's range, array headers and binary COPY framing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <string.h>

#include "pgbin.h"

static void expect_bytes(const struct buf *b, const uint8_t *want, size_t n)
{
	assert_int_equal(b->len, n);
	assert_memory_equal(b->data, want, n);
}

static void test_scalars(void **state)
{
	(void)state;
	struct buf b = {0};
	assert_int_equal(pgbin_null(&b), 0);
	expect_bytes(&b, (const uint8_t[]){0xff, 0xff, 0xff, 0xff}, 4);

	buf_reset(&b);
	assert_int_equal(pgbin_bool(&b, true), 0);
	assert_int_equal(pgbin_bool(&b, false), 0);
	expect_bytes(&b, (const uint8_t[]){0, 0, 0, 1, 1, 0, 0, 0, 1, 0}, 10);

	buf_reset(&b);
	assert_int_equal(pgbin_int4(&b, -2), 0);
	expect_bytes(&b, (const uint8_t[]){0, 0, 0, 4, 0xff, 0xff, 0xff, 0xfe}, 8);

	buf_reset(&b);
	assert_int_equal(pgbin_int8(&b, 0x0102030405060708LL), 0);
	expect_bytes(&b, (const uint8_t[]){0, 0, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8}, 12);

	buf_reset(&b);
	assert_int_equal(pgbin_float8(&b, 1.5), 0); /* 0x3FF8000000000000 */
	expect_bytes(&b, (const uint8_t[]){0, 0, 0, 8, 0x3f, 0xf8, 0, 0, 0, 0, 0, 0}, 12);

	buf_reset(&b);
	assert_int_equal(pgbin_float4(&b, -2.0f), 0); /* 0xC0000000 */
	expect_bytes(&b, (const uint8_t[]){0, 0, 0, 4, 0xc0, 0, 0, 0}, 8);
	buf_free(&b);
}

/* Bytes go through untouched: quotes, backslashes, tabs, newlines, NUL, invalid UTF-8. */
static void test_bytes_verbatim(void **state)
{
	(void)state;
	static const uint8_t payload[] = {'\'', '"',  '\\', '\t', '\n', '\r', 0,  0xff,
	                                  0xc3, 0x28, ';',  '-',  '-',  '\\', 'N'};
	struct buf b = {0};
	assert_int_equal(pgbin_bytes(&b, payload, sizeof(payload)), 0);
	assert_int_equal(b.len, 4 + sizeof(payload));
	assert_memory_equal(b.data, ((const uint8_t[]){0, 0, 0, sizeof(payload)}), 4);
	assert_memory_equal(b.data + 4, payload, sizeof(payload));

	buf_reset(&b);
	assert_int_equal(pgbin_bytes(&b, "", 0), 0);
	expect_bytes(&b, (const uint8_t[]){0, 0, 0, 0}, 4);
	buf_free(&b);
}

static void test_timestamps(void **state)
{
	(void)state;
	/* The Unix epoch is 30 years before PostgreSQL's. */
	assert_true(pgbin_timestamp_us(0) == -INT64_C(946684800000000));
	assert_true(pgbin_timestamp_us(INT64_C(946684800000)) == 0);
	assert_true(pgbin_timestamp_us(INT64_C(946684800001)) == 1000);
	assert_true(pgbin_timestamp_us(INT64_C(1729312551123)) ==
	            (INT64_C(1729312551123) - INT64_C(946684800000)) * 1000);
	assert_true(pgbin_timestamp_us(-1) == -INT64_C(946684800001000));
	/* Beyond int64 microseconds: a value the server refuses, never +-infinity, never UB. */
	assert_true(pgbin_timestamp_us(INT64_MAX) == INT64_MAX - 1);
	assert_true(pgbin_timestamp_us(INT64_MIN) == INT64_MIN + 1);
	assert_true(pgbin_timestamp_us(-INT64_MAX) == INT64_MIN + 1);
	int64_t limit = INT64_MAX / 1000 - 1;
	int64_t epoch_ms = INT64_C(946684800000);
	assert_true(pgbin_timestamp_us(limit + epoch_ms) == limit * 1000);
	assert_true(pgbin_timestamp_us(limit + epoch_ms + 1) == INT64_MAX - 1);
	assert_true(pgbin_timestamp_us(-limit + epoch_ms) == -limit * 1000);
	assert_true(pgbin_timestamp_us(-limit + epoch_ms - 1) == INT64_MIN + 1);

	struct buf b = {0};
	assert_int_equal(pgbin_timestamptz_ms(&b, INT64_C(946684800000)), 0);
	expect_bytes(&b, (const uint8_t[]){0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 0}, 12);
	buf_free(&b);
}

static void test_jsonb(void **state)
{
	(void)state;
	json_t *tags = json_pack("{s:s, s:s}", "fw", "1.2", "q\"uote", "tab\there");
	struct buf b = {0};
	assert_int_equal(pgbin_jsonb(&b, tags), 0);
	char *text = json_dumps(tags, JSON_COMPACT);
	size_t n = strlen(text);
	assert_int_equal(b.len, 4 + 1 + n);
	assert_int_equal(b.data[3], n + 1);
	assert_int_equal(b.data[4], 1); /* jsonb binary version */
	assert_memory_equal(b.data + 5, text, n);
	/* What was sent parses back to the same object. */
	json_t *back = json_loadb((const char *)b.data + 5, n, 0, NULL);
	assert_non_null(back);
	assert_true(json_equal(back, tags));
	json_decref(back);
	free(text);
	json_decref(tags);
	buf_free(&b);
}

static void test_array(void **state)
{
	(void)state;
	struct buf b = {0};
	struct pgbin_array a;
	assert_int_equal(pgbin_bytes(&b, "xx", 2), 0); /* something before: the array's start */
	assert_int_equal(pgbin_array_begin(&b, &a, PG_OID_INT4), 0);
	pgbin_int4(&b, 7);
	pgbin_array_count(&a, false);
	pgbin_null(&b);
	pgbin_array_count(&a, true);
	pgbin_array_end(&b, &a);
	static const uint8_t want[] = {
	    0,    0,    0,    1,                /* ndim */
	    0,    0,    0,    1,                /* has nulls */
	    0,    0,    0,    23,               /* int4 */
	    0,    0,    0,    2,                /* 2 elements */
	    0,    0,    0,    1,                /* lower bound */
	    0,    0,    0,    4,    0, 0, 0, 7, /* 7 */
	    0xff, 0xff, 0xff, 0xff,             /* NULL */
	};
	assert_int_equal(b.len - a.start, sizeof(want));
	assert_memory_equal(b.data + a.start, want, sizeof(want));

	/* No NULL: the flag stays 0; empty: one dimension of size 0. */
	buf_reset(&b);
	pgbin_array_begin(&b, &a, PG_OID_TEXT);
	pgbin_array_end(&b, &a);
	static const uint8_t empty[] = {0, 0,  0, 1, 0, 0, 0, 0, 0, 0,
	                                0, 25, 0, 0, 0, 0, 0, 0, 0, 1};
	expect_bytes(&b, empty, sizeof(empty));
	buf_free(&b);
}

static void test_copy_framing(void **state)
{
	(void)state;
	struct buf b = {0};
	assert_int_equal(pgbin_copy_header(&b), 0);
	static const uint8_t sig[] = {'P', 'G', 'C', 'O', 'P', 'Y', '\n', 0xff, '\r', '\n',
	                              0,   0,   0,   0,   0,   0,   0,    0,    0};
	expect_bytes(&b, sig, sizeof(sig));
	buf_reset(&b);
	assert_int_equal(pgbin_copy_row(&b, 10), 0);
	assert_int_equal(pgbin_copy_trailer(&b), 0);
	expect_bytes(&b, (const uint8_t[]){0, 10, 0xff, 0xff}, 4);
	buf_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_scalars),    cmocka_unit_test(test_bytes_verbatim),
	    cmocka_unit_test(test_timestamps), cmocka_unit_test(test_jsonb),
	    cmocka_unit_test(test_array),      cmocka_unit_test(test_copy_framing),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
