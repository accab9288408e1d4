/* --retention parsing and the retry backoff. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "pg.h"
#include "retention.h"

#define DAY INT64_C(86400000)

static int parse(int64_t out[REC_TYPE_COUNT], char *err, size_t errlen, size_t n, ...)
{
	const char *items[8];
	va_list ap;
	va_start(ap, n);
	for (size_t i = 0; i < n; i++)
		items[i] = va_arg(ap, const char *);
	va_end(ap);
	struct strlist l = {items, n};
	return retention_parse(&l, out, err, errlen);
}

static void test_retention(void **state)
{
	(void)state;
	int64_t r[REC_TYPE_COUNT];
	char err[256];
	assert_int_equal(parse(r, err, sizeof(err), 0), 0);
	for (int t = 0; t < REC_TYPE_COUNT; t++)
		assert_true(r[t] == 0);
	assert_int_equal(parse(r, err, sizeof(err), 1, "30d"), 0);
	for (int t = 0; t < REC_TYPE_COUNT; t++)
		assert_true(r[t] == 30 * DAY);
	/* Later entries override earlier ones; tables by table or record name. */
	assert_int_equal(parse(r, err, sizeof(err), 3, "30d", "raw_messages=7d", "Aggregate=0"), 0);
	assert_true(r[REC_RAW_MESSAGE] == 7 * DAY);
	assert_true(r[REC_AGGREGATE] == 0);
	assert_true(r[REC_READING] == 30 * DAY);
	assert_int_equal(parse(r, err, sizeof(err), 2, "readings=12h", "1d"), 0);
	assert_true(r[REC_READING] == DAY);

	assert_int_equal(parse(r, err, sizeof(err), 1, "nosuch=7d"), -1);
	assert_non_null(strstr(err, "no table or record called nosuch"));
	assert_int_equal(parse(r, err, sizeof(err), 1, "readings=soon"), -1);
	assert_non_null(strstr(err, "'soon' is not a duration"));
	assert_int_equal(parse(r, err, sizeof(err), 1, "-5d"), -1);
	assert_int_equal(parse(r, err, sizeof(err), 1,
	                       "a_table_name_much_longer_than_any_table_name_could_be_at_all=1d"),
	                 -1);
}

static void test_backoff(void **state)
{
	(void)state;
	struct backoff b;
	backoff_init(&b, 100, 1000);
	assert_true(backoff_wait_ms(&b, 5000) == 0);
	int64_t prev_cap = 0;
	for (int i = 0; i < 10; i++) {
		int64_t d = backoff_fail(&b, 5000);
		int64_t cap = i < 4 ? (int64_t)100 << i : 1000;
		/* Jitter takes off up to a quarter, never more, never adds. */
		assert_true(d <= cap && d >= cap - cap / 4);
		assert_true(cap >= prev_cap);
		prev_cap = cap;
		assert_true(backoff_wait_ms(&b, 5000) == d);
		assert_true(backoff_wait_ms(&b, 5000 + d) == 0);
	}
	backoff_reset(&b);
	assert_true(backoff_wait_ms(&b, 0) == 0);
	assert_true(backoff_fail(&b, 0) <= 100);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_retention),
	    cmocka_unit_test(test_backoff),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
