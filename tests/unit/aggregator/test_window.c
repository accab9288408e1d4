/* Window assignment and per-window statistics. */
#include "window.h"

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

static size_t assign(int64_t size, int64_t hop, int64_t ts, int64_t *first)
{
	struct agg_window_spec w = {.size_ms = size, .hop_ms = hop};
	return agg_window_assign(&w, ts, first);
}

static void test_floor_div(void **state)
{
	(void)state;
	assert_int_equal(agg_floor_div(0, 60000), 0);
	assert_int_equal(agg_floor_div(59999, 60000), 0);
	assert_int_equal(agg_floor_div(60000, 60000), 1);
	assert_int_equal(agg_floor_div(-1, 60000), -1);
	assert_int_equal(agg_floor_div(-60000, 60000), -1);
	assert_int_equal(agg_floor_div(-60001, 60000), -2);
}

static void test_tumbling_boundaries(void **state)
{
	(void)state;
	int64_t first;
	/* Start inclusive. */
	assert_int_equal(assign(60000, 60000, 60000, &first), 1);
	assert_int_equal(first, 60000);
	/* End exclusive: the last millisecond belongs to the window, the next one does not. */
	assert_int_equal(assign(60000, 60000, 119999, &first), 1);
	assert_int_equal(first, 60000);
	assert_int_equal(assign(60000, 60000, 120000, &first), 1);
	assert_int_equal(first, 120000);
	/* A real timestamp. */
	assert_int_equal(assign(60000, 60000, 1729312551000, &first), 1);
	assert_int_equal(first, 1729312500000);
}

static void test_tumbling_epoch_and_negative(void **state)
{
	(void)state;
	int64_t first;
	assert_int_equal(assign(60000, 60000, 0, &first), 1);
	assert_int_equal(first, 0);
	/* Before the epoch a time belongs to the window below it (floor), not the one toward 0. */
	assert_int_equal(assign(60000, 60000, -1, &first), 1);
	assert_int_equal(first, -60000);
	assert_int_equal(assign(60000, 60000, -60000, &first), 1);
	assert_int_equal(first, -60000);
	assert_int_equal(assign(60000, 60000, -60001, &first), 1);
	assert_int_equal(first, -120000);
	/* The extremes of the accepted range do not overflow. */
	assert_int_equal(assign(AGG_SPAN_LIMIT, AGG_SPAN_LIMIT, -AGG_TS_LIMIT, &first), 1);
	assert_true(first <= -AGG_TS_LIMIT && first + AGG_SPAN_LIMIT > -AGG_TS_LIMIT);
	assert_int_equal(assign(AGG_SPAN_LIMIT, AGG_SPAN_LIMIT, AGG_TS_LIMIT, &first), 1);
	assert_true(first <= AGG_TS_LIMIT && first + AGG_SPAN_LIMIT > AGG_TS_LIMIT);
}

static void test_hopping(void **state)
{
	(void)state;
	int64_t first;
	/* 60 s windows every 20 s: each time is in three windows. */
	assert_int_equal(assign(60000, 20000, 0, &first), 3);
	assert_int_equal(first, -40000);
	assert_int_equal(assign(60000, 20000, 19999, &first), 3);
	assert_int_equal(first, -40000);
	assert_int_equal(assign(60000, 20000, 20000, &first), 3);
	assert_int_equal(first, -20000);
	assert_int_equal(assign(60000, 20000, -1, &first), 3);
	assert_int_equal(first, -60000);
	/* A hop that does not divide the size: 2 or 3 windows. */
	assert_int_equal(assign(60000, 25000, 0, &first), 3);
	assert_int_equal(first, -50000);
	assert_int_equal(assign(60000, 25000, 10000, &first), 2);
	assert_int_equal(first, -25000);
	/* Every window returned contains ts, and the neighbours outside do not. */
	for (int64_t ts = -130000; ts <= 130000; ts += 1237) {
		size_t n = assign(60000, 25000, ts, &first);
		for (size_t i = 0; i < n; i++) {
			int64_t s = first + (int64_t)i * 25000;
			assert_true(s <= ts && ts < s + 60000);
			assert_int_equal(agg_floor_div(s, 25000) * 25000, s);
		}
		assert_false(first - 25000 + 60000 > ts);
		assert_false(first + (int64_t)n * 25000 <= ts);
	}
}

static void test_spec_check(void **state)
{
	(void)state;
	char err[200];
	struct agg_window_spec ok = {60000, 60000}, hop = {60000, 15000};
	struct agg_window_spec gap = {60000, 90000}, zero = {0, 0}, many = {60000, 1};
	assert_int_equal(agg_window_spec_check(&ok, err, sizeof(err)), 0);
	assert_int_equal(agg_window_spec_check(&hop, err, sizeof(err)), 0);
	assert_int_equal(agg_window_spec_check(&gap, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "hop"));
	assert_int_equal(agg_window_spec_check(&zero, err, sizeof(err)), -1);
	assert_int_equal(agg_window_spec_check(&many, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "60000 windows"));
}

static void test_stats_basic(void **state)
{
	(void)state;
	struct agg_stats s = {0};
	double v[] = {2, 4, 4, 4, 5, 5, 7, 9};
	for (int i = 0; i < 8; i++)
		agg_stats_add(&s, v[i], 1000 + i);
	assert_int_equal(s.count, 8);
	assert_true(s.mean == 5.0);
	assert_true(fabs(agg_stats_stddev(&s) - 2.0) < 1e-12);
	assert_true(s.min == 2 && s.max == 9);
	assert_true(s.first == 2 && s.first_ts == 1000);
	assert_true(s.last == 9 && s.last_ts == 1007);

	struct agg_stats one = {0};
	agg_stats_add(&one, -3.5, -10);
	assert_true(one.mean == -3.5 && agg_stats_stddev(&one) == 0.0);
	assert_true(one.first == -3.5 && one.last == -3.5 && one.first_ts == -10);
}

static void test_stats_order(void **state)
{
	(void)state;
	struct agg_stats s = {0};
	/* Out of event-time order: first/last follow event time, not arrival. */
	agg_stats_add(&s, 10, 5000);
	agg_stats_add(&s, 20, 3000);
	agg_stats_add(&s, 30, 7000);
	agg_stats_add(&s, 40, 4000);
	assert_true(s.first == 20 && s.first_ts == 3000);
	assert_true(s.last == 30 && s.last_ts == 7000);
	/* Ties: the earlier arrival stays first, the later arrival becomes last. */
	agg_stats_add(&s, 50, 3000);
	agg_stats_add(&s, 60, 7000);
	assert_true(s.first == 20);
	assert_true(s.last == 60);
}

static void test_stats_stable_variance(void **state)
{
	(void)state;
	/* Large offset plus small noise: a sum of squares loses every digit here. */
	struct agg_stats s = {0};
	double noise[] = {4, 7, 13, 16};
	for (int rep = 0; rep < 250000; rep++)
		for (int i = 0; i < 4; i++)
			agg_stats_add(&s, 1e9 + noise[i], rep);
	assert_int_equal(s.count, 1000000);
	assert_true(fabs(s.mean - (1e9 + 10)) < 1e-6);
	assert_true(fabs(agg_stats_stddev(&s) - sqrt(22.5)) < 1e-6);

	/* Values spread over many magnitudes still give the exact answer for a simple case. */
	struct agg_stats t = {0};
	agg_stats_add(&t, 1e15, 0);
	agg_stats_add(&t, 1e15 + 2, 1);
	assert_true(t.mean == 1e15 + 1);
	assert_true(agg_stats_stddev(&t) == 1.0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_floor_div),
	    cmocka_unit_test(test_tumbling_boundaries),
	    cmocka_unit_test(test_tumbling_epoch_and_negative),
	    cmocka_unit_test(test_hopping),
	    cmocka_unit_test(test_spec_check),
	    cmocka_unit_test(test_stats_basic),
	    cmocka_unit_test(test_stats_order),
	    cmocka_unit_test(test_stats_stable_variance),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
