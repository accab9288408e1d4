/* Acknowledgement watermarks: in-order and out-of-order acknowledgements, chunk boundaries and
 * reuse, a record taken back, and partitions sharing one pool. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>

#include "acks.h"

static void test_in_order(void **state)
{
	(void)state;
	struct ack_pool pool = {0};
	struct ack_queue q;
	ack_queue_init(&q, &pool);
	assert_int_equal(ack_watermark(&q, 7), 7);
	struct ack_slot *a = ack_push(&q, 10, 1000);
	struct ack_slot *b = ack_push(&q, 11, 1001);
	assert_int_equal(a->ts, 1000);
	assert_int_equal(q.pending, 2);
	assert_int_equal(ack_watermark(&q, 12), 10);
	ack_done(a);
	assert_int_equal(ack_watermark(&q, 12), 11);
	ack_done(b);
	assert_int_equal(q.pending, 0);
	assert_int_equal(ack_watermark(&q, 12), 12);
	ack_queue_clear(&q);
	ack_pool_free(&pool);
}

/* Records of one partition spread over target partitions come back in any order: the watermark
 * stays at the oldest record not acknowledged. */
static void test_out_of_order(void **state)
{
	(void)state;
	struct ack_pool pool = {0};
	struct ack_queue q;
	ack_queue_init(&q, &pool);
	struct ack_slot *s[5];
	for (int i = 0; i < 5; i++)
		s[i] = ack_push(&q, 100 + 2 * i, 0); /* offsets with gaps (skipped records) */
	ack_done(s[3]);
	ack_done(s[1]);
	assert_int_equal(ack_watermark(&q, 110), 100);
	ack_done(s[0]);
	assert_int_equal(ack_watermark(&q, 110), 104); /* 100 and 102 done, 104 not */
	ack_done(s[4]);
	assert_int_equal(ack_watermark(&q, 110), 104);
	ack_done(s[2]);
	assert_int_equal(ack_watermark(&q, 110), 110);
	assert_int_equal(q.pending, 0);
	ack_queue_clear(&q);
	ack_pool_free(&pool);
}

/* Many records: chunks fill, empty and go back to the pool, and two partitions share it. */
static void test_chunks(void **state)
{
	(void)state;
	struct ack_pool pool = {0};
	struct ack_queue a, b;
	ack_queue_init(&a, &pool);
	ack_queue_init(&b, &pool);
	enum { N = 5000, WINDOW = 3000 };
	struct ack_slot **sa = calloc(N, sizeof(*sa)), **sb = calloc(N, sizeof(*sb));
	assert_non_null(sa);
	assert_non_null(sb);
	for (int i = 0; i < N; i++) {
		sa[i] = ack_push(&a, i, i);
		sb[i] = ack_push(&b, 1000000 + i, i);
		assert_non_null(sa[i]);
		assert_non_null(sb[i]);
		if (i >= WINDOW) {
			/* a in order, b newest-first within pairs */
			ack_done(sa[i - WINDOW]);
			assert_int_equal(ack_watermark(&a, i + 1), i - WINDOW + 1);
		}
	}
	for (int i = 0; i + 1 < N; i += 2) {
		ack_done(sb[i + 1]);
		assert_int_equal(ack_watermark(&b, 1000000 + N), 1000000 + i);
		ack_done(sb[i]);
		assert_int_equal(ack_watermark(&b, 1000000 + N), 1000000 + i + 2);
	}
	size_t allocated = pool.nchunks;
	for (int i = N - WINDOW; i < N; i++)
		ack_done(sa[i]);
	assert_int_equal(ack_watermark(&a, N), N);
	assert_int_equal(a.pending, 0);
	assert_int_equal(b.pending, 0);
	/* Steady state allocates nothing more: the pool serves the chunks emptied above. */
	for (int i = 0; i < N; i++)
		ack_done(ack_push(&a, N + i, 0));
	assert_int_equal(pool.nchunks, allocated);
	assert_int_equal(ack_watermark(&a, 2 * N), 2 * N);
	ack_queue_clear(&a);
	ack_queue_clear(&b);
	ack_pool_free(&pool);
	free(sa);
	free(sb);
}

/* A record the producer refused is taken back: the watermark does not wait for it. */
static void test_unpush(void **state)
{
	(void)state;
	struct ack_pool pool = {0};
	struct ack_queue q;
	ack_queue_init(&q, &pool);
	struct ack_slot *a = ack_push(&q, 5, 0);
	ack_push(&q, 6, 0);
	ack_unpush(&q);
	assert_int_equal(q.pending, 1);
	assert_int_equal(ack_watermark(&q, 6), 5);
	ack_done(a);
	assert_int_equal(ack_watermark(&q, 6), 6);
	ack_push(&q, 6, 0);
	ack_unpush(&q);
	assert_int_equal(ack_watermark(&q, 6), 6);
	ack_unpush(&q); /* nothing left to take back */
	assert_int_equal(q.pending, 0);
	ack_queue_clear(&q);
	ack_pool_free(&pool);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_in_order),
		cmocka_unit_test(test_out_of_order),
		cmocka_unit_test(test_chunks),
		cmocka_unit_test(test_unpush),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
