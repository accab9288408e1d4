/* Record batches: CRC-32C vectors and both code paths, a batch built and read back field by
 * field, and hostile batches (lying lengths and counts, old magics, cut-short tails). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kbatch.h"

static void test_crc32c(void **state)
{
	(void)state;
	assert_int_equal(kbatch_crc32c(0, "123456789", 9), 0xE3069283u);
	assert_int_equal(kbatch_crc32c_sw(0, "123456789", 9), 0xE3069283u);
	assert_int_equal(kbatch_crc32c(0, "", 0), 0);
	uint8_t b[32];
	memset(b, 0, sizeof(b));
	assert_int_equal(kbatch_crc32c(0, b, 32), 0x8A9136AAu); /* RFC 3720 B.4 */
	memset(b, 0xff, sizeof(b));
	assert_int_equal(kbatch_crc32c(0, b, 32), 0x62A8AB43u);
	for (int i = 0; i < 32; i++)
		b[i] = (uint8_t)i;
	assert_int_equal(kbatch_crc32c(0, b, 32), 0x46DD794Eu);
	assert_int_equal(kbatch_crc32c_sw(0, b, 32), 0x46DD794Eu);
	/* chaining at every split point */
	for (size_t k = 0; k <= 32; k++)
		assert_int_equal(kbatch_crc32c(kbatch_crc32c(0, b, k), b + k, 32 - k), 0x46DD794Eu);

	/* hardware (when present) and table agree on random data, any length and alignment */
	enum { N = 4096 };
	uint8_t *r = malloc(N);
	assert_non_null(r);
	srand(12345);
	for (int i = 0; i < N; i++)
		r[i] = (uint8_t)rand();
	for (size_t off = 0; off < 9; off++)
		for (size_t n = 0; n + off <= N; n += 1 + n / 8) {
			uint32_t hw = kbatch_crc32c(0, r + off, n),
			         sw = kbatch_crc32c_sw(0, r + off, n);
			assert_int_equal(hw, sw);
			assert_int_equal(kbatch_crc32c(hw, r, off), kbatch_crc32c_sw(sw, r, off));
		}
	free(r);
}

/* Raw header entries as they sit in a record: h1="x", h2=null. */
static const uint8_t raw_hdrs[] = {0x04, 'h', '1', 0x02, 'x', 0x04, 'h', '2', 0x01};

struct want {
	int64_t ts;
	const char *key; /* NULL: null */
	size_t key_len;
	const char *value;
	size_t value_len;
	bool raw, extra;
};

static char big[300];

static void build(struct wbuf *out, const struct want *w, int n)
{
	struct kbuilder k;
	kbuilder_begin(&k, out);
	assert_int_equal(kbuilder_size(&k), KBATCH_HEADER_SIZE);
	for (int i = 0; i < n; i++) {
		size_t before = kbuilder_size(&k);
		kbuilder_add(&k, w[i].ts, (const uint8_t *)w[i].key,
		             w[i].key ? (int32_t)w[i].key_len : -1, (const uint8_t *)w[i].value,
		             w[i].value ? (int32_t)w[i].value_len : -1, w[i].raw ? raw_hdrs : NULL,
		             w[i].raw ? sizeof(raw_hdrs) : 0, w[i].raw ? 2 : 0,
		             w[i].extra ? "origin" : NULL, w[i].extra ? 6 : 0,
		             (const uint8_t *)"a:1", w[i].extra ? 3 : 0);
		assert_true(kbuilder_size(&k) > before);
	}
	assert_int_equal(kbuilder_finish(&k), 0);
	assert_false(out->oom);
}

static const struct want recs[] = {
    {1000, "k1", 2, "v1", 2, false, false},
    {990, NULL, 0, "value-two", 9, true, true}, /* earlier than the first: negative delta */
    {2000, "", 0, NULL, 0, false, true},
    {1500, "k4", 2, big, sizeof(big), true, false}, /* two-byte lengths */
    {-7, "k5", 2, "", 0, false, false},             /* before the epoch */
};
enum { NRECS = sizeof(recs) / sizeof(recs[0]) };

static void check_headers(const struct krec *r, const struct want *w)
{
	size_t pos = 0;
	struct khdr h;
	if (w->raw) {
		assert_int_equal(khdr_next(r, &pos, &h), 1);
		assert_int_equal(h.key_len, 2);
		assert_memory_equal(h.key, "h1", 2);
		assert_int_equal(h.value_len, 1);
		assert_memory_equal(h.value, "x", 1);
		assert_ptr_equal(h.raw, r->headers);
		assert_int_equal(h.raw_len, 5);
		assert_int_equal(khdr_next(r, &pos, &h), 1);
		assert_memory_equal(h.key, "h2", 2);
		assert_int_equal(h.value_len, -1);
		assert_null(h.value);
		assert_int_equal(h.raw_len, 4);
	}
	if (w->extra) {
		assert_int_equal(khdr_next(r, &pos, &h), 1);
		assert_int_equal(h.key_len, 6);
		assert_memory_equal(h.key, "origin", 6);
		assert_int_equal(h.value_len, 3);
		assert_memory_equal(h.value, "a:1", 3);
	}
	assert_int_equal(khdr_next(r, &pos, &h), 0);
	assert_int_equal(pos, r->headers_len);
}

static void check_batch(const uint8_t *p, size_t len, size_t *pos, int64_t base_offset)
{
	struct kbatch b;
	char err[256];
	assert_int_equal(kbatch_next(p, len, pos, &b, err, sizeof(err)), 1);
	assert_int_equal(b.base_offset, base_offset);
	assert_int_equal(b.leader_epoch, -1);
	assert_int_equal(b.magic, 2);
	assert_int_equal(b.attributes, 0);
	assert_int_equal(b.last_offset_delta, NRECS - 1);
	assert_int_equal(b.base_ts, 1000);
	assert_int_equal(b.max_ts, 2000);
	assert_int_equal(b.producer_id, -1);
	assert_int_equal(b.producer_epoch, -1);
	assert_int_equal(b.base_sequence, -1);
	assert_int_equal(b.count, NRECS);
	assert_true(kbatch_crc_ok(&b));
	size_t rp = 0;
	struct krec r;
	for (int i = 0; i < NRECS; i++) {
		assert_int_equal(krec_next(&b, &rp, &r, err, sizeof(err)), 1);
		assert_int_equal(r.offset, base_offset + i);
		assert_int_equal(r.ts, recs[i].ts);
		if (recs[i].key) {
			assert_int_equal(r.key_len, recs[i].key_len);
			assert_non_null(r.key);
			assert_memory_equal(r.key, recs[i].key, recs[i].key_len);
		} else {
			assert_int_equal(r.key_len, -1);
			assert_null(r.key);
		}
		if (recs[i].value) {
			assert_int_equal(r.value_len, recs[i].value_len);
			assert_memory_equal(r.value, recs[i].value, recs[i].value_len);
		} else {
			assert_int_equal(r.value_len, -1);
			assert_null(r.value);
		}
		assert_int_equal(r.nheaders, (recs[i].raw ? 2 : 0) + (recs[i].extra ? 1 : 0));
		check_headers(&r, &recs[i]);
	}
	assert_int_equal(krec_next(&b, &rp, &r, err, sizeof(err)), 0);
	assert_int_equal(rp, b.records_len);
}

static void test_roundtrip(void **state)
{
	(void)state;
	memset(big, 'b', sizeof(big));
	struct wbuf out = {0};
	wbuf_put(&out, "pre", 3); /* a batch need not start the buffer */
	build(&out, recs, NRECS);
	size_t one = out.len - 3;
	build(&out, recs, NRECS);
	/* the broker assigns base offsets; they are outside the CRC */
	memcpy(out.p + 3 + one, "\0\0\0\0\0\0\0\x64", 8);
	size_t full = out.len - 3;
	/* a third batch cut short, as a fetch size limit leaves it */
	build(&out, recs, NRECS);
	for (size_t tail = 0; tail < one; tail++) {
		size_t len = full + tail;
		uint8_t *p = malloc(len);
		assert_non_null(p);
		memcpy(p, out.p + 3, len);
		size_t pos = 0;
		check_batch(p, len, &pos, 0);
		check_batch(p, len, &pos, 100);
		struct kbatch b;
		char err[128];
		assert_int_equal(kbatch_next(p, len, &pos, &b, err, sizeof(err)), 0);
		free(p);
	}
	wbuf_free(&out);

	/* empty batch: nothing to finish */
	struct kbuilder k;
	kbuilder_begin(&k, &out);
	assert_int_equal(kbuilder_finish(&k), -1);
	wbuf_free(&out);
}

/* One record: key "k", value "v", no headers, at the batch's timestamp. Its bytes after the
 * header: 61 length, 62 attributes, 63 ts delta, 64 offset delta, 65 key length, 66 'k',
 * 67 value length, 68 'v', 69 header count. */
static void one_record(struct wbuf *out)
{
	wbuf_reset(out);
	struct kbuilder k;
	kbuilder_begin(&k, out);
	kbuilder_add(&k, 5, (const uint8_t *)"k", 1, (const uint8_t *)"v", 1, NULL, 0, 0, NULL, 0,
	             NULL, 0);
	assert_int_equal(kbuilder_finish(&k), 0);
	assert_int_equal(out->len, 70);
	static const uint8_t rec[] = {0x10, 0, 0, 0, 2, 'k', 2, 'v', 0};
	assert_memory_equal(out->p + 61, rec, sizeof(rec));
}

/* kbatch_next then krec_next until the end or an error; returns the last result. Works on an
 * exact-size copy, so a read past len is an ASan fault. */
static int walk_in(const uint8_t *p, size_t len, char *err, size_t errlen);
static int walk(const uint8_t *p, size_t len, char *err, size_t errlen)
{
	uint8_t *copy = malloc(len ? len : 1);
	assert_non_null(copy);
	if (len)
		memcpy(copy, p, len);
	int rc = walk_in(copy, len, err, errlen);
	free(copy);
	return rc;
}

static int walk_in(const uint8_t *p, size_t len, char *err, size_t errlen)
{
	size_t pos = 0;
	struct kbatch b;
	int rc;
	while ((rc = kbatch_next(p, len, &pos, &b, err, errlen)) == 1) {
		size_t rp = 0;
		struct krec r;
		while ((rc = krec_next(&b, &rp, &r, err, errlen)) == 1) {
			size_t hp = 0;
			struct khdr h;
			int hr;
			while ((hr = khdr_next(&r, &hp, &h)) == 1)
				;
			assert_int_equal(hr, 0); /* krec_next checked the headers already */
		}
		if (rc < 0)
			return rc;
	}
	return rc;
}

/* Enough records for multi-byte offset deltas and timestamp deltas of every size, appended
 * after other data so the buffer grows under the builder. */
static void test_many(void **state)
{
	(void)state;
	enum { N = 3000 };
	struct wbuf out = {0};
	wbuf_put(&out, "x", 1);
	struct kbuilder k;
	kbuilder_begin(&k, &out);
	char key[16];
	for (int i = 0; i < N; i++) {
		int64_t ts = 1700000000000 + (i % 2 ? -1 : 1) * ((int64_t)i * i * i * 997);
		int n = snprintf(key, sizeof(key), "k%d", i);
		kbuilder_add(&k, ts, (const uint8_t *)key, n, (const uint8_t *)key, i % 7 ? n : -1,
		             NULL, 0, 0, i % 3 ? NULL : "o", 1, (const uint8_t *)key, (size_t)n);
	}
	assert_int_equal(kbuilder_size(&k), out.len - 1);
	assert_int_equal(kbuilder_finish(&k), 0);
	size_t pos = 0, rp = 0;
	struct kbatch b;
	struct krec r;
	char err[256];
	assert_int_equal(kbatch_next(out.p + 1, out.len - 1, &pos, &b, err, sizeof(err)), 1);
	assert_true(kbatch_crc_ok(&b));
	assert_int_equal(b.count, N);
	assert_int_equal(b.last_offset_delta, N - 1);
	assert_int_equal(b.base_ts, 1700000000000);
	int64_t max = INT64_MIN;
	for (int i = 0; i < N; i++) {
		int64_t ts = 1700000000000 + (i % 2 ? -1 : 1) * ((int64_t)i * i * i * 997);
		if (ts > max)
			max = ts;
		int n = snprintf(key, sizeof(key), "k%d", i);
		assert_int_equal(krec_next(&b, &rp, &r, err, sizeof(err)), 1);
		assert_int_equal(r.offset, i);
		assert_true(r.ts == ts);
		assert_int_equal(r.key_len, n);
		assert_memory_equal(r.key, key, (size_t)n);
		assert_int_equal(r.value_len, i % 7 ? n : -1);
		assert_int_equal(r.nheaders, i % 3 ? 0 : 1);
	}
	assert_true(b.max_ts == max);
	assert_int_equal(krec_next(&b, &rp, &r, err, sizeof(err)), 0);
	wbuf_free(&out);
}

static void test_hostile(void **state)
{
	(void)state;
	struct wbuf out = {0};
	char err[256];
	static const struct {
		size_t at;
		uint8_t byte;
		int rc;
		const char *what;
	} cases[] = {
	    {61, 0x12, -1, "length"},        /* record longer than the batch */
	    {61, 0x0e, -1, "headers count"}, /* record shorter than its fields */
	    {61, 0x01, -1, "length"},        /* negative length */
	    {69, 0x02, -1, "headers count"}, /* header count lies */
	    {69, 0x01, -1, "headers count"}, /* negative header count */
	    {65, 0x14, -1, "keyLength"},     /* key past the record */
	    {65, 0x03, -1, "keyLength"},     /* key length -2 */
	    {67, 0x03, -1, "valueLength"},   /* value length -2 */
	    {67, 0x06, -1, "valueLength"},   /* value past the record */
	    {64, 0x01, -1, "offsetDelta"},   /* negative offset delta */
	    {16, 0x00, -1, "magic 0"},       /* old formats */
	    {16, 0x01, -1, "magic 1"},
	    {11, 0x30, -1, "shorter than the header"}, /* batchLength 48 */
	    {11, 0x3b, 0, NULL},                       /* batchLength past the end: cut short */
	    {60, 0x05, -1, "do not fit"},              /* count larger than the bytes */
	    {60, 0x00, -1, "do not fit"},              /* count 0 with a record */
	    {22, 0x01, -1, "compressed"},              /* gzip */
	    {63, 0x7f, 0, NULL},                       /* ts delta: any value is a timestamp */
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		one_record(&out);
		out.p[cases[i].at] = cases[i].byte;
		err[0] = 0;
		assert_int_equal(walk(out.p, out.len, err, sizeof(err)), cases[i].rc);
		if (cases[i].what && !strstr(err, cases[i].what))
			fail_msg("case %zu: \"%s\" does not name %s", i, err, cases[i].what);
	}
	/* batchLength one short of the record: the record overruns the batch */
	one_record(&out);
	out.p[11]--;
	assert_int_equal(walk(out.p, out.len - 1, err, sizeof(err)), -1);
	/* a header whose value length lies */
	wbuf_reset(&out);
	struct kbuilder k;
	kbuilder_begin(&k, &out);
	kbuilder_add(&k, 5, NULL, -1, NULL, -1, NULL, 0, 0, "a", 1, (const uint8_t *)"b", 1);
	assert_int_equal(kbuilder_finish(&k), 0);
	assert_int_equal(walk(out.p, out.len, err, sizeof(err)), 0);
	out.p[out.len - 2] = 0x04;
	assert_int_equal(walk(out.p, out.len, err, sizeof(err)), -1);
	out.p[out.len - 2] = 0x03;
	assert_int_equal(walk(out.p, out.len, err, sizeof(err)), -1);

	/* every prefix of a batch is a cut-short tail, and reads nothing past the cut */
	one_record(&out);
	for (size_t len = 0; len < out.len; len++) {
		uint8_t *p = malloc(len ? len : 1);
		assert_non_null(p);
		memcpy(p, out.p, len);
		assert_int_equal(walk(p, len, err, sizeof(err)), 0);
		free(p);
	}
	wbuf_free(&out);
}

/* LOG_APPEND_TIME: every record carries the batch's max timestamp. */
static void test_log_append_time(void **state)
{
	(void)state;
	memset(big, 'b', sizeof(big));
	struct wbuf out = {0};
	build(&out, recs, NRECS);
	out.p[22] |= KBATCH_ATTR_LOG_APPEND_TIME;
	size_t pos = 0, rp = 0;
	struct kbatch b;
	struct krec r;
	char err[128];
	assert_int_equal(kbatch_next(out.p, out.len, &pos, &b, err, sizeof(err)), 1);
	assert_false(kbatch_crc_ok(&b)); /* attributes are under the CRC */
	int n = 0;
	while (krec_next(&b, &rp, &r, err, sizeof(err)) == 1) {
		assert_int_equal(r.ts, 2000);
		n++;
	}
	assert_int_equal(n, NRECS);
	wbuf_free(&out);
}

/* Random damage to a valid pair of batches never reads out of bounds (ASan watches). */
static void test_mutations(void **state)
{
	(void)state;
	memset(big, 'b', sizeof(big));
	struct wbuf out = {0};
	build(&out, recs, NRECS);
	build(&out, recs, NRECS);
	uint8_t *p = malloc(out.len);
	assert_non_null(p);
	char err[256];
	srand(777);
	int bad = 0;
	for (int it = 0; it < 20000; it++) {
		memcpy(p, out.p, out.len);
		int flips = 1 + rand() % 4;
		for (int f = 0; f < flips; f++)
			p[(size_t)rand() % out.len] = (uint8_t)rand();
		size_t len = out.len - (size_t)(rand() % 8 == 0 ? rand() % (int)out.len : 0);
		bad += walk(p, len, err, sizeof(err)) < 0;
	}
	assert_true(bad > 0);
	free(p);
	wbuf_free(&out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_crc32c),
	    cmocka_unit_test(test_roundtrip),
	    cmocka_unit_test(test_many),
	    cmocka_unit_test(test_hostile),
	    cmocka_unit_test(test_log_append_time),
	    cmocka_unit_test(test_mutations),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
