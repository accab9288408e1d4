/* Acknowledgement epochs: an epoch is complete only when it and every earlier one were
 * acknowledged, whatever order the delivery reports come in; slots are reused only when free. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>

#include "ack_epochs.h"

static void test_out_of_order(void **state)
{
	(void)state;
	struct ack_epochs e = {0};
	void *a = ack_epochs_tag(&e), *b = ack_epochs_tag(&e);
	assert_non_null(a);
	assert_true(ack_epochs_can_close(&e));
	uint64_t first = ack_epochs_close(&e);
	void *c = ack_epochs_tag(&e);
	uint64_t second = ack_epochs_close(&e);
	assert_false(ack_epochs_complete(&e, first));
	/* The later epoch's record is acknowledged first: still nothing is complete. */
	ack_epochs_done(&e, c);
	assert_false(ack_epochs_complete(&e, second));
	ack_epochs_done(&e, b);
	assert_false(ack_epochs_complete(&e, first));
	ack_epochs_done(&e, a);
	assert_true(ack_epochs_complete(&e, first));
	assert_true(ack_epochs_complete(&e, second));
	/* The open epoch is never complete. */
	assert_false(ack_epochs_complete(&e, e.open));
}

static void test_untracked_and_empty(void **state)
{
	(void)state;
	struct ack_epochs e = {0};
	ack_epochs_done(&e, NULL); /* a record produced without a tag */
	uint64_t empty = ack_epochs_close(&e);
	assert_true(ack_epochs_complete(&e, empty));
	void *t = ack_epochs_tag(&e);
	ack_epochs_done(&e, t);
	ack_epochs_done(&e, t); /* a second report for the same record must not go below zero */
	void *u = ack_epochs_tag(&e);
	uint64_t closed = ack_epochs_close(&e);
	assert_false(ack_epochs_complete(&e, closed));
	ack_epochs_done(&e, u);
	assert_true(ack_epochs_complete(&e, closed));
}

static void test_ring_full(void **state)
{
	(void)state;
	struct ack_epochs e = {0};
	void *oldest = ack_epochs_tag(&e);
	uint64_t first = ack_epochs_close(&e);
	for (int i = 1; i < ACK_EPOCHS_RING - 1; i++) {
		assert_true(ack_epochs_can_close(&e));
		ack_epochs_close(&e);
	}
	/* The next epoch would take the oldest one's slot, which still waits. */
	assert_false(ack_epochs_can_close(&e));
	ack_epochs_done(&e, oldest);
	assert_true(ack_epochs_complete(&e, first));
	assert_true(ack_epochs_can_close(&e));
	/* Many rounds through the ring keep counting right. */
	for (int i = 0; i < 10 * ACK_EPOCHS_RING; i++) {
		void *t = ack_epochs_tag(&e);
		assert_true(ack_epochs_can_close(&e));
		uint64_t k = ack_epochs_close(&e);
		assert_false(ack_epochs_complete(&e, k));
		ack_epochs_done(&e, t);
		assert_true(ack_epochs_complete(&e, k));
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {cmocka_unit_test(test_out_of_order),
	                                   cmocka_unit_test(test_untracked_and_empty),
	                                   cmocka_unit_test(test_ring_full)};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
