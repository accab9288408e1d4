/* Kafka wire encodings: varints at their edges, Fetch v4 and Produce v3 requests byte for byte,
 * and responses decoded whole, with nulls and several topics, and cut at every byte. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "kwire.h"

static void test_varint_edges(void **state)
{
	(void)state;
	static const struct {
		int64_t v;
		size_t size;
	} cases[] = {
	    {0, 1},          {-1, 1},
	    {1, 1},          {63, 1},
	    {-64, 1},        {64, 2},
	    {-65, 2},        {8191, 2},
	    {8192, 3},       {INT32_MAX, 5},
	    {INT32_MIN, 5},  {INT64_MAX, 10},
	    {INT64_MIN, 10}, {INT64_MIN + 1, 10},
	};
	struct wbuf b = {0};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		wbuf_reset(&b);
		wbuf_varint(&b, cases[i].v);
		assert_false(b.oom);
		assert_int_equal(b.len, cases[i].size);
		assert_int_equal(kwire_varint_size(cases[i].v), cases[i].size);
		struct rbuf r = {b.p, b.p + b.len, false};
		assert_true(rbuf_varint(&r) == cases[i].v);
		assert_false(r.bad);
		assert_ptr_equal(r.p, r.end);
		/* one byte short is bad, and stays bad */
		r = (struct rbuf){b.p, b.p + b.len - 1, false};
		assert_int_equal(rbuf_varint(&r), 0);
		assert_true(r.bad);
		assert_int_equal(rbuf_i8(&r), 0);
	}
	/* zig-zag bytes */
	wbuf_reset(&b);
	wbuf_varint(&b, 0);
	wbuf_varint(&b, -1);
	wbuf_varint(&b, 1);
	wbuf_varint(&b, INT64_MIN);
	static const uint8_t zz[] = {0x00, 0x01, 0x02, 0xff, 0xff, 0xff, 0xff,
	                             0xff, 0xff, 0xff, 0xff, 0xff, 0x01};
	assert_int_equal(b.len, sizeof(zz));
	assert_memory_equal(b.p, zz, sizeof(zz));
	wbuf_free(&b);

	/* eleven bytes, and a tenth byte with more than the one bit left, are bad */
	static const uint8_t eleven[] = {0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
	                                 0x80, 0x80, 0x80, 0x80, 0x00};
	struct rbuf r = {eleven, eleven + sizeof(eleven), false};
	(void)rbuf_varint(&r);
	assert_true(r.bad);
	static const uint8_t wide[] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02};
	r = (struct rbuf){wide, wide + sizeof(wide), false};
	(void)rbuf_varint(&r);
	assert_true(r.bad);
}

static void test_fixed_and_strings(void **state)
{
	(void)state;
	struct wbuf b = {0};
	wbuf_i8(&b, -2);
	wbuf_i16(&b, -2);
	wbuf_i32(&b, 0x01020304);
	wbuf_i64(&b, INT64_MIN);
	wbuf_str(&b, "xy", 2);
	wbuf_i16(&b, -1); /* null string */
	wbuf_i16(&b, -2); /* impossible length */
	static const uint8_t want[] = {0xfe, 0xff, 0xfe, 1, 2, 3,   4,   0x80, 0,    0,    0,   0,
	                               0,    0,    0,    0, 2, 'x', 'y', 0xff, 0xff, 0xff, 0xfe};
	assert_int_equal(b.len, sizeof(want));
	assert_memory_equal(b.p, want, sizeof(want));
	struct rbuf r = {b.p, b.p + b.len, false};
	assert_int_equal(rbuf_i8(&r), -2);
	assert_int_equal(rbuf_i16(&r), -2);
	assert_int_equal(rbuf_i32(&r), 0x01020304);
	assert_true(rbuf_i64(&r) == INT64_MIN);
	const char *s;
	size_t n;
	rbuf_str(&r, &s, &n);
	assert_int_equal(n, 2);
	assert_memory_equal(s, "xy", 2);
	rbuf_str(&r, &s, &n);
	assert_null(s);
	assert_int_equal(n, 0);
	assert_false(r.bad);
	rbuf_str(&r, &s, &n);
	assert_true(r.bad);
	assert_null(rbuf_skip(&r, 0));
	wbuf_set_i32(&b, 1, -1);
	assert_memory_equal(b.p + 1, "\xff\xff\xff\xff", 4);
	wbuf_free(&b);
}

static void test_fetch_request_bytes(void **state)
{
	(void)state;
	const struct kwire_fetch_part parts[] = {{2, 0x0102030405060708}};
	const struct kwire_fetch_topic topics[] = {{"t", parts, 1}};
	const struct kwire_fetch_req q = {.max_wait_ms = 500,
	                                  .min_bytes = 1,
	                                  .max_bytes = 1 << 20,
	                                  .part_max_bytes = 1 << 16,
	                                  .isolation = 1,
	                                  .topics = topics,
	                                  .ntopics = 1};
	static const uint8_t want[] = {
	    0,    0,    0,    56,                 /* size */
	    0,    1,    0,    4,    0, 0, 0,   7, /* fetch v4, correlation 7 */
	    0,    2,    'a',  'b',                /* client id */
	    0xff, 0xff, 0xff, 0xff,               /* replica id */
	    0,    0,    0x01, 0xf4,               /* max wait */
	    0,    0,    0,    1,                  /* min bytes */
	    0,    0x10, 0,    0,                  /* max bytes */
	    1,                                    /* read committed */
	    0,    0,    0,    1,    0, 1, 't',    /* one topic */
	    0,    0,    0,    1,    0, 0, 0,   2, /* one partition: 2 */
	    1,    2,    3,    4,    5, 6, 7,   8, /* fetch offset */
	    0,    1,    0,    0,                  /* partition max bytes */
	};
	struct wbuf b = {0};
	wbuf_put(&b, "junk", 4); /* begin resets */
	assert_int_equal(kwire_fetch_request(&b, 7, "ab", &q), 0);
	assert_int_equal(b.len, sizeof(want));
	assert_memory_equal(b.p, want, sizeof(want));
	wbuf_free(&b);
}

static void test_produce_request_bytes(void **state)
{
	(void)state;
	const struct kwire_produce_part parts[] = {{1, (const uint8_t *)"\x01\x02\x03", 3}};
	const struct kwire_produce_topic topics[] = {{"u", parts, 1}};
	static const uint8_t want[] = {
	    0,    0,    0,    40,                 /* size */
	    0,    0,    0,    3,    0, 0, 0,   9, /* produce v3, correlation 9 */
	    0xff, 0xff,                           /* null client id */
	    0xff, 0xff,                           /* null transactional id */
	    0xff, 0xff,                           /* acks all */
	    0,    0,    0x03, 0xe8,               /* timeout */
	    0,    0,    0,    1,    0, 1, 'u',    /* one topic */
	    0,    0,    0,    1,    0, 0, 0,   1, /* one partition: 1 */
	    0,    0,    0,    3,    1, 2, 3,      /* records */
	};
	struct wbuf b = {0};
	assert_int_equal(kwire_produce_request(&b, 9, NULL, -1, 1000, topics, 1), 0);
	assert_int_equal(b.len, sizeof(want));
	assert_memory_equal(b.p, want, sizeof(want));
	wbuf_free(&b);
}

/* ---- Fetch response ---- */

struct fetch_seen {
	int n;
	struct kwire_fetch_result r[8];
	int stop_after;
};

static int on_fetch(void *ctx, const struct kwire_fetch_result *f)
{
	struct fetch_seen *s = ctx;
	if (s->n < 8)
		s->r[s->n] = *f;
	s->n++;
	return s->stop_after && s->n == s->stop_after ? 42 : 0;
}

/* Two topics: t with a plain partition and one with aborted transactions and null records,
 * uu with an empty aborted list and empty records. */
static void build_fetch_response(struct wbuf *b)
{
	wbuf_i32(b, 0);
	wbuf_i32(b, 2);
	wbuf_str(b, "t", 1);
	wbuf_i32(b, 2);
	wbuf_i32(b, 0);
	wbuf_i16(b, 0);
	wbuf_i64(b, 10);
	wbuf_i64(b, 9);
	wbuf_i32(b, -1);
	wbuf_i32(b, 5);
	wbuf_put(b, "hello", 5);
	wbuf_i32(b, 1);
	wbuf_i16(b, 1);
	wbuf_i64(b, 20);
	wbuf_i64(b, 15);
	wbuf_i32(b, 2);
	wbuf_i64(b, 1000);
	wbuf_i64(b, 11);
	wbuf_i64(b, -5);
	wbuf_i64(b, INT64_MAX);
	wbuf_i32(b, -1);
	wbuf_str(b, "uu", 2);
	wbuf_i32(b, 1);
	wbuf_i32(b, 3);
	wbuf_i16(b, 6);
	wbuf_i64(b, -1);
	wbuf_i64(b, -1);
	wbuf_i32(b, 0);
	wbuf_i32(b, 0);
}

static void test_fetch_response(void **state)
{
	(void)state;
	struct wbuf b = {0};
	build_fetch_response(&b);
	assert_false(b.oom);
	struct fetch_seen s = {0};
	char err[128];
	assert_int_equal(kwire_fetch_response(b.p, b.len, on_fetch, &s, err, sizeof(err)), 0);
	assert_int_equal(s.n, 3);
	assert_int_equal(s.r[0].topic_len, 1);
	assert_memory_equal(s.r[0].topic, "t", 1);
	assert_int_equal(s.r[0].partition, 0);
	assert_int_equal(s.r[0].error, 0);
	assert_int_equal(s.r[0].high_watermark, 10);
	assert_int_equal(s.r[0].last_stable_offset, 9);
	assert_int_equal(s.r[0].naborted, -1);
	assert_int_equal(s.r[0].records_len, 5);
	assert_memory_equal(s.r[0].records, "hello", 5);

	assert_int_equal(s.r[1].partition, 1);
	assert_int_equal(s.r[1].error, KERR_OFFSET_OUT_OF_RANGE);
	assert_int_equal(s.r[1].high_watermark, 20);
	assert_int_equal(s.r[1].last_stable_offset, 15);
	assert_int_equal(s.r[1].naborted, 2);
	struct kwire_aborted a;
	kwire_aborted_at(&s.r[1], 0, &a);
	assert_int_equal(a.producer_id, 1000);
	assert_int_equal(a.first_offset, 11);
	kwire_aborted_at(&s.r[1], 1, &a);
	assert_int_equal(a.producer_id, -5);
	assert_true(a.first_offset == INT64_MAX);
	assert_null(s.r[1].records);
	assert_int_equal(s.r[1].records_len, 0);

	assert_int_equal(s.r[2].topic_len, 2);
	assert_memory_equal(s.r[2].topic, "uu", 2);
	assert_int_equal(s.r[2].partition, 3);
	assert_int_equal(s.r[2].error, KERR_NOT_LEADER_OR_FOLLOWER);
	assert_int_equal(s.r[2].naborted, 0);
	assert_non_null(s.r[2].records);
	assert_int_equal(s.r[2].records_len, 0);

	/* the callback stops the walk */
	s = (struct fetch_seen){.stop_after = 2};
	assert_int_equal(kwire_fetch_response(b.p, b.len, on_fetch, &s, err, sizeof(err)), 42);
	assert_int_equal(s.n, 2);

	/* every cut is malformed, and nothing past the cut is read */
	for (size_t len = 0; len < b.len; len++) {
		uint8_t *cut = malloc(len ? len : 1);
		assert_non_null(cut);
		memcpy(cut, b.p, len);
		s = (struct fetch_seen){0};
		err[0] = 0;
		assert_int_equal(kwire_fetch_response(cut, len, on_fetch, &s, err, sizeof(err)),
		                 -1);
		assert_true(err[0] != 0);
		free(cut);
	}
	/* a byte too many */
	wbuf_i8(&b, 0);
	assert_int_equal(kwire_fetch_response(b.p, b.len, on_fetch, &s, err, sizeof(err)), -1);
	wbuf_free(&b);
}

static void test_fetch_response_hostile_counts(void **state)
{
	(void)state;
	struct fetch_seen s = {0};
	char err[128];
	struct wbuf b = {0};
	/* negative and oversized topic counts */
	static const int32_t counts[] = {-1, -2, INT32_MIN, 1, INT32_MAX};
	for (size_t i = 0; i < sizeof(counts) / sizeof(counts[0]); i++) {
		wbuf_reset(&b);
		wbuf_i32(&b, 0);
		wbuf_i32(&b, counts[i]);
		wbuf_put(&b, "\0\0\0\0\0", 5); /* fewer than one topic's 6 bytes */
		assert_int_equal(kwire_fetch_response(b.p, b.len, on_fetch, &s, err, sizeof(err)),
		                 -1);
	}
	/* aborted count -2 and huge, records length -2 and past the end */
	for (int which = 0; which < 4; which++) {
		wbuf_reset(&b);
		wbuf_i32(&b, 0);
		wbuf_i32(&b, 1);
		wbuf_str(&b, "t", 1);
		wbuf_i32(&b, 1);
		wbuf_i32(&b, 0);
		wbuf_i16(&b, 0);
		wbuf_i64(&b, 0);
		wbuf_i64(&b, 0);
		wbuf_i32(&b, which == 0 ? -2 : which == 1 ? 1 << 28 : 0);
		wbuf_i32(&b, which == 2 ? -2 : which == 3 ? 100 : 0);
		wbuf_put(&b, "0123456789abcdef", 16);
		s = (struct fetch_seen){0};
		assert_int_equal(kwire_fetch_response(b.p, b.len, on_fetch, &s, err, sizeof(err)),
		                 -1);
		assert_int_equal(s.n, 0);
	}
	/* null topic name */
	wbuf_reset(&b);
	wbuf_i32(&b, 0);
	wbuf_i32(&b, 1);
	wbuf_i16(&b, -1);
	wbuf_i32(&b, 0);
	assert_int_equal(kwire_fetch_response(b.p, b.len, on_fetch, &s, err, sizeof(err)), -1);
	wbuf_free(&b);
}

/* ---- Produce response ---- */

struct produce_seen {
	int n;
	struct kwire_produce_result r[8];
};

static int on_produce(void *ctx, const struct kwire_produce_result *p)
{
	struct produce_seen *s = ctx;
	if (s->n < 8)
		s->r[s->n] = *p;
	s->n++;
	return 0;
}

static void test_produce_response(void **state)
{
	(void)state;
	/* t: partitions 0 (ok at 100) and 1 (NOT_LEADER); v: partition 7 (ok at 0); throttle 5 */
	static const uint8_t resp[] = {
	    0,    0,    0,    2,                   /* topics */
	    0,    1,    't',  0,    0,    0,    2, /* t, two partitions */
	    0,    0,    0,    0,    0,    0,    0,    0,    0,    0,    0,    0,
	    0,    100,                                      /* 0, ok, base 100 */
	    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, /* log append time -1 */
	    0,    0,    0,    1,    0,    6,    0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	    0xff, 0xff, /* 1, err 6 */
	    0,    0,    0,    0,    0,    0,    0,    0,    0,    1,    'v',  0,
	    0,    0,    1, /* v, one partition */
	    0,    0,    0,    7,    0,    0,    0,    0,    0,    0,    0,    0,
	    0,    0,                                                             /* 7, ok, base 0 */
	    0,    0,    0,    0,    0,    0,    0,    0,    0,    0,    0,    5, /* throttle */
	};
	struct produce_seen s = {0};
	char err[128];
	assert_int_equal(
	    kwire_produce_response(resp, sizeof(resp), on_produce, &s, err, sizeof(err)), 0);
	assert_int_equal(s.n, 3);
	assert_memory_equal(s.r[0].topic, "t", 1);
	assert_int_equal(s.r[0].topic_len, 1);
	assert_int_equal(s.r[0].partition, 0);
	assert_int_equal(s.r[0].error, 0);
	assert_int_equal(s.r[0].base_offset, 100);
	assert_int_equal(s.r[1].partition, 1);
	assert_int_equal(s.r[1].error, KERR_NOT_LEADER_OR_FOLLOWER);
	assert_int_equal(s.r[1].base_offset, -1);
	assert_memory_equal(s.r[2].topic, "v", 1);
	assert_int_equal(s.r[2].partition, 7);
	assert_int_equal(s.r[2].base_offset, 0);
	for (size_t len = 0; len < sizeof(resp); len++) {
		uint8_t *cut = malloc(len ? len : 1);
		assert_non_null(cut);
		memcpy(cut, resp, len);
		s = (struct produce_seen){0};
		assert_int_equal(kwire_produce_response(cut, len, on_produce, &s, err, sizeof(err)),
		                 -1);
		free(cut);
	}
	/* oversized partition count */
	uint8_t bad[sizeof(resp)];
	memcpy(bad, resp, sizeof(resp));
	bad[7] = 0x7f;
	assert_int_equal(kwire_produce_response(bad, sizeof(bad), on_produce, &s, err, sizeof(err)),
	                 -1);
}

static void test_errors(void **state)
{
	(void)state;
	assert_string_equal(kwire_error_name(6), "NOT_LEADER_OR_FOLLOWER");
	assert_string_equal(kwire_error_name(0), "NONE");
	assert_string_equal(kwire_error_name(-1), "UNKNOWN_SERVER_ERROR");
	assert_string_equal(kwire_error_name(30000), "UNKNOWN");
	assert_string_equal(kwire_error_name(-7), "UNKNOWN");
	static const int16_t retriable[] = {2, 3, 5, 6, 7, 13, 14, 15, 16, 19, 20, 56, 74, 75};
	for (size_t i = 0; i < sizeof(retriable) / sizeof(retriable[0]); i++)
		assert_true(kwire_retriable(retriable[i]));
	static const int16_t fatal[] = {0, 1, 10, 29, 35, 87, -1};
	for (size_t i = 0; i < sizeof(fatal) / sizeof(fatal[0]); i++)
		assert_false(kwire_retriable(fatal[i]));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_varint_edges),
	    cmocka_unit_test(test_fixed_and_strings),
	    cmocka_unit_test(test_fetch_request_bytes),
	    cmocka_unit_test(test_produce_request_bytes),
	    cmocka_unit_test(test_fetch_response),
	    cmocka_unit_test(test_fetch_response_hostile_counts),
	    cmocka_unit_test(test_produce_response),
	    cmocka_unit_test(test_errors),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
