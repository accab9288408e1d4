/* The models on synthetic series whose best forecast is known: a constant (exact), a linear
 * trend (naive is off by one step; a trend model by a small fixed fraction of it), a daily sine
 * with noise and pure noise (no forecast beats the noise: mean absolute error sigma*sqrt(2/pi);
 * naive pays it twice, sigma*2/sqrt(pi)), level shifts (taken at once), missing windows, and
 * states no update can produce. */
#include "fc_test.h"
#include "model.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <cmocka.h>

typedef double (*series_fn)(int64_t t, struct test_rng *r);

static double last_bias; /* mean signed error (actual - forecast) of the last run_mae */

/* Mean absolute one-step error of model k over windows [from, n) of series g. */
static double run_mae(enum model_kind k, series_fn g, int64_t n, int64_t from, struct model *out)
{
	struct test_rng r = {12345};
	struct model m;
	model_init(&m);
	double sum = 0, signed_sum = 0;
	int64_t cnt = 0;
	for (int64_t t = 0; t < n; t++) {
		double y = g(t, &r), p;
		double tod = model_time_of_day(TEST_T0 + t * TEST_MINUTE + TEST_MINUTE / 2);
		if (model_predict(&m, k, 1, tod, &p) && t >= from) {
			sum += fabs(y - p);
			signed_sum += y - p;
			cnt++;
		}
		model_update(&m, k, y, 1, tod);
	}
	if (out)
		*out = m;
	last_bias = signed_sum / (double)cnt;
	return sum / (double)cnt;
}

static double constant(int64_t t, struct test_rng *r)
{
	(void)t;
	(void)r;
	return 42.5;
}

static double trend(int64_t t, struct test_rng *r)
{
	(void)r;
	return 100 + 0.5 * (double)t;
}

static double daily_sine_noisy(int64_t t, struct test_rng *r)
{
	return 50 + 10 * sin(2 * M_PI * (double)t / 1440.0) + 0.2 * test_gauss(r);
}

static double white_noise(int64_t t, struct test_rng *r)
{
	(void)t;
	return 5 + test_gauss(r);
}

static double fast_sine(int64_t t, struct test_rng *r)
{
	(void)r;
	return 50 + 10 * sin(2 * M_PI * (double)t / 60.0);
}

static void test_names(void **state)
{
	(void)state;
	assert_string_equal(model_name(MODEL_NAIVE), "naive");
	assert_string_equal(model_name(MODEL_HOLT), "holt");
	assert_string_equal(model_name(MODEL_HW), "hw");
	assert_null(model_name(MODEL_KIND_COUNT));
	assert_int_equal(model_parse("hw"), MODEL_HW);
	assert_int_equal(model_parse("arima"), -1);
}

static void test_no_forecast_before_data(void **state)
{
	(void)state;
	struct model m;
	double p = -1;
	model_init(&m);
	for (int k = 0; k < MODEL_KIND_COUNT; k++)
		assert_false(model_predict(&m, (enum model_kind)k, 1, 0.5, &p));
	model_update(&m, MODEL_HOLT, 7, 1, 0.5);
	assert_true(model_predict(&m, MODEL_HOLT, 1, 0.5, &p));
	assert_true(p == 7.0);
}

static void test_constant(void **state)
{
	(void)state;
	for (int k = 0; k < MODEL_KIND_COUNT; k++) {
		struct model m;
		assert_true(run_mae((enum model_kind)k, constant, 3000, 1, &m) == 0.0);
		double p;
		assert_true(model_predict(&m, (enum model_kind)k, 1, 0.3, &p));
		assert_true(p == 42.5);
		assert_true(model_valid(&m));
	}
}

static void test_linear_trend(void **state)
{
	(void)state;
	/* Naive is exactly one step behind. */
	assert_true(fabs(run_mae(MODEL_NAIVE, trend, 2000, 1000, NULL) - 0.5) < 1e-9);
	for (int k = MODEL_HOLT; k < MODEL_KIND_COUNT; k++) {
		struct model m;
		double mae = run_mae((enum model_kind)k, trend, 2000, 1000, &m);
		/* The damped trend settles close to the slope: within 10% of one step. */
		assert_true(mae < 0.05);
		assert_true(m.trend > 0.45 && m.trend < 0.5);
		/* Further ahead the damped trend projects less than the slope, never more. */
		double p1, p10;
		model_predict(&m, (enum model_kind)k, 1, 0.5, &p1);
		model_predict(&m, (enum model_kind)k, 10, 0.5, &p10);
		assert_true(p10 > p1 + 8 * 0.45 && p10 < p1 + 9 * 0.5);
	}
}

static void test_daily_sine_with_noise(void **state)
{
	(void)state;
	const double floor_mae = 0.2 * sqrt(2 / M_PI); /* the noise alone */
	double naive = run_mae(MODEL_NAIVE, daily_sine_noisy, 1440 * 5, 1440 * 3, NULL);
	/* Naive pays the noise of two windows plus the slope. */
	assert_true(naive > floor_mae * 1.38 && naive < floor_mae * 1.5);
	for (int k = MODEL_HOLT; k < MODEL_KIND_COUNT; k++) {
		double mae =
		    run_mae((enum model_kind)k, daily_sine_noisy, 1440 * 5, 1440 * 3, NULL);
		assert_true(mae > floor_mae);
		assert_true(mae < floor_mae * 1.15);
	}
}

static void test_white_noise(void **state)
{
	(void)state;
	const double floor_mae = sqrt(2 / M_PI);
	double naive = run_mae(MODEL_NAIVE, white_noise, 6000, 3000, NULL);
	assert_true(fabs(naive - floor_mae * sqrt(2)) < 0.05);
	for (int k = MODEL_HOLT; k < MODEL_KIND_COUNT; k++) {
		struct model m;
		double mae = run_mae((enum model_kind)k, white_noise, 6000, 3000, &m);
		assert_true(mae < floor_mae * 1.1);
		/* It learned to smooth: alpha came down from its start of 0.5. */
		assert_true(m.alpha < 0.2);
		/* Unbiased: on average it forecasts the mean. */
		assert_true(fabs(last_bias) < 0.05);
	}
}

static void test_fast_sine(void **state)
{
	(void)state;
	/* A period of 60 windows: the trend follows the slope, so even without a profile for it
	 * the error is below naive's. */
	double naive = run_mae(MODEL_NAIVE, fast_sine, 3000, 1500, NULL);
	for (int k = MODEL_HOLT; k < MODEL_KIND_COUNT; k++)
		assert_true(run_mae((enum model_kind)k, fast_sine, 3000, 1500, NULL) <
		            naive * 0.95);
}

static void test_level_shift_taken_at_once(void **state)
{
	(void)state;
	struct test_rng r = {7};
	struct model m;
	model_init(&m);
	for (int t = 0; t < 300; t++)
		model_update(&m, MODEL_HOLT, 10 + 0.1 * test_gauss(&r), 1, 0.5);
	model_update(&m, MODEL_HOLT, 50, 1, 0.5);
	double p;
	model_predict(&m, MODEL_HOLT, 1, 0.5, &p);
	assert_true(fabs(p - 50) < 0.5);
	assert_int_equal(m.jumps > 0, 1);
}

static void test_missing_windows(void **state)
{
	(void)state;
	/* Every other window missing: updates of 2 steps keep the trend per window. */
	struct model m;
	model_init(&m);
	for (int t = 0; t < 2000; t += 2)
		model_update(&m, MODEL_HOLT, 100 + 0.5 * t, 2, 0.5);
	double p;
	model_predict(&m, MODEL_HOLT, 2, 0.5, &p);
	assert_true(fabs(p - (100 + 0.5 * 2000)) < 0.2);
}

static void test_time_of_day(void **state)
{
	(void)state;
	assert_true(model_time_of_day(0) == 0.0);
	assert_true(model_time_of_day(43200000) == 0.5);
	assert_true(model_time_of_day(-21600000) == 0.75);
	assert_true(model_time_of_day(86400000LL * 365 + 3600000) == 1.0 / 24);
}

static void test_valid(void **state)
{
	(void)state;
	struct model m;
	model_init(&m);
	assert_true(model_valid(&m));
	m.level = NAN;
	assert_false(model_valid(&m));
	model_init(&m);
	m.alpha = 1.5;
	assert_false(model_valid(&m));
	model_init(&m);
	m.scale = -1;
	assert_false(model_valid(&m));
	model_init(&m);
	m.profile[3] = INFINITY;
	assert_false(model_valid(&m));
	model_init(&m);
	m.weight[0] = 1e9f;
	assert_false(model_valid(&m));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_names),
	    cmocka_unit_test(test_no_forecast_before_data),
	    cmocka_unit_test(test_constant),
	    cmocka_unit_test(test_linear_trend),
	    cmocka_unit_test(test_daily_sine_with_noise),
	    cmocka_unit_test(test_white_noise),
	    cmocka_unit_test(test_fast_sine),
	    cmocka_unit_test(test_level_shift_taken_at_once),
	    cmocka_unit_test(test_missing_windows),
	    cmocka_unit_test(test_time_of_day),
	    cmocka_unit_test(test_valid),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
