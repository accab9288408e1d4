/* Batches: JSON arrays of readings, where good elements pass and bad ones share one rejection. */
#include "cleaner_test.h"

#define FACTORY(sensor, value)                                                                     \
	"{\"ts\":1762077540000,\"metadata\":{\"siteId\":101,\"deviceId\":1004,"                    \
	"\"sensorId\":" #sensor ",\"unit\":\"BAR\"},\"measurement\":" #value "}"

static void test_all_good(void **state)
{
	(void)state;
	struct cleaner *c = cl_new();
	struct cleaner_result res;
	assert_int_equal(cleaner_result_init(&res), 0);
	run(c, "f", "[" FACTORY(1, 1.5) "," FACTORY(2, 2.5) "," FACTORY(3, 3.5) "]", &res);
	assert_int_equal(res.code, CLEANER_OK);
	assert_string_equal(res.reason, "");
	assert_int_equal(res.elements, 3);
	assert_int_equal(res.rejected, 0);
	assert_int_equal(json_array_size(res.readings), 3);
	for (size_t i = 0; i < 3; i++) {
		json_t *r = json_array_get(res.readings, i);
		assert_reading_shape(r);
		char want[8];
		snprintf(want, sizeof(want), "%zu", i + 1);
		assert_string_equal(field_str(r, "sensor"), want);
		assert_float_equal(json_real_value(json_object_get(r, "value")), 1.5 + (double)i,
		                   0);
	}
	/* The result is reused: the next message replaces the readings. */
	run(c, "h/r/temperature", "[20, 21]", &res);
	assert_int_equal(json_array_size(res.readings), 2);
	assert_int_equal(res.elements, 2);
	cleaner_result_free(&res);
	cleaner_free(c);
}

static void test_mixed_elements(void **state)
{
	(void)state;
	struct cleaner *c = cl_new();
	struct cleaner_result res;
	assert_int_equal(cleaner_result_init(&res), 0);
	/* Mixed formats in one batch, each detected on its own. */
	run(c, "home1/kitchen/temperature",
	    "[21.5, {\"value\":\"x\"}, {\"timestamp\":\"2025-11-02T09:59:00Z\",\"value\":22}, "
	    "100, {\"value\":21,\"timestamp\":\"2030-01-01T00:00:00Z\"}, [1]]",
	    &res);
	assert_int_equal(res.elements, 6);
	assert_int_equal(res.rejected, 4);
	assert_int_equal(json_array_size(res.readings), 2);
	assert_float_equal(
	    json_real_value(json_object_get(json_array_get(res.readings, 0), "value")), 21.5, 0);
	assert_float_equal(
	    json_real_value(json_object_get(json_array_get(res.readings, 1), "value")), 22, 0);
	/* The first bad element's code; every bad element named by index. */
	assert_int_equal(res.code, CLEANER_VALUE_NOT_NUMBER);
	assert_string_equal(res.reason, "[1] value: not a number: \"x\"; "
	                                "[3] value: 100 is a known error value of temperature; "
	                                "[4] ts: 1520 days in the future (max-skew 5 minutes); "
	                                "[5] payload: no known format is an array "
	                                "(4 of 6 elements rejected)");
	const struct cleaner_stats *s = cleaner_stats(c);
	assert_int_equal(s->rejected[CLEANER_VALUE_NOT_NUMBER], 1);
	assert_int_equal(s->rejected[CLEANER_VALUE_ERROR_CODE], 1);
	assert_int_equal(s->rejected[CLEANER_TS_FUTURE], 1);
	assert_int_equal(s->rejected[CLEANER_FORMAT_UNKNOWN], 1);
	assert_int_equal(s->readings, 2);
	cleaner_result_free(&res);
	cleaner_free(c);
}

static void test_all_bad(void **state)
{
	(void)state;
	struct cleaner *c = cl_new();
	struct cleaner_result res;
	assert_int_equal(cleaner_result_init(&res), 0);
	run(c, "h/r/temperature", "[\"a\", null]", &res);
	assert_int_equal(res.rejected, 2);
	assert_int_equal(res.elements, 2);
	assert_int_equal(json_array_size(res.readings), 0);
	assert_int_equal(res.code, CLEANER_FORMAT_UNKNOWN);
	assert_string_equal(res.reason, "[0] payload: no known format is \"a\"; "
	                                "[1] payload: no known format is null "
	                                "(2 of 2 elements rejected)");
	cleaner_result_free(&res);
	cleaner_free(c);
}

static void test_many_bad_elements_fit_one_reason(void **state)
{
	(void)state;
	struct cleaner *c = cl_new();
	struct cleaner_result res;
	assert_int_equal(cleaner_result_init(&res), 0);
	/* 1000 bad elements: the reason names what fits and counts the rest. */
	size_t n = 1000;
	char *p = malloc(n * 6 + 16);
	size_t o = 0;
	p[o++] = '[';
	for (size_t i = 0; i < n; i++)
		o += (size_t)sprintf(p + o, "%s100", i ? "," : "");
	p[o++] = ']';
	p[o] = 0;
	run(c, "h/r/temperature", p, &res);
	free(p);
	assert_int_equal(res.rejected, n);
	assert_true(strlen(res.reason) < CLEANER_REASON_MAX);
	assert_non_null(strstr(res.reason, "[0] value: 100 is a known error value"));
	assert_non_null(strstr(res.reason, " more (1000 of 1000 elements rejected)"));
	assert_int_equal(cleaner_stats(c)->rejected[CLEANER_VALUE_ERROR_CODE], n);
	cleaner_result_free(&res);
	cleaner_free(c);
}

static void test_batch_limit(void **state)
{
	(void)state;
	struct cleaner_opts o;
	cleaner_opts_default(&o);
	o.max_batch = 3;
	struct cleaner *c = cl_new_opts(&o);
	expect_reject(c, "h/r/temperature", "[1,2,3,4]", CLEANER_BATCH_TOO_LARGE,
	              "payload: 4 elements, over max-batch 3");
	struct cleaner_result res;
	assert_int_equal(cleaner_result_init(&res), 0);
	run(c, "h/r/temperature", "[1,2,3]", &res);
	assert_int_equal(json_array_size(res.readings), 3);
	cleaner_result_free(&res);
	cleaner_free(c);
}

static void test_batches_of_every_format(void **state)
{
	(void)state;
	struct cleaner *c = cl_new();
	struct cleaner_result res;
	assert_int_equal(cleaner_result_init(&res), 0);
	run(c, "plant/meters",
	    "[{\"sensor_id\":\"m1\",\"sensor_energy_value\":1,\"sensor_timestamp\":"
	    "\"2025-11-02 09:00:00\"},{\"sensor_id\":\"m2\",\"sensor_energy_value\":2,"
	    "\"sensor_timestamp\":\"2025-11-02 09:00:00\"}]",
	    &res);
	assert_int_equal(json_array_size(res.readings), 2);
	run(c, "lab/fridge",
	    "[{\"sensor_id\":\"t\",\"temperature\":32,\"unit\":\"F\",\"timestamp\":1762077000000},"
	    "{\"sensor_id\":\"t\",\"temperature\":41,\"unit\":\"F\",\"timestamp\":1762077060000}]",
	    &res);
	assert_int_equal(json_array_size(res.readings), 2);
	assert_float_equal(
	    json_real_value(json_object_get(json_array_get(res.readings, 1), "value")), 5, 0);
	assert_int_equal(json_integer_value(json_object_get(json_array_get(res.readings, 1), "ts")),
	                 1762077060000LL);
	cleaner_result_free(&res);
	cleaner_free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_all_good),
	    cmocka_unit_test(test_mixed_elements),
	    cmocka_unit_test(test_all_bad),
	    cmocka_unit_test(test_many_bad_elements_fit_one_reason),
	    cmocka_unit_test(test_batch_limit),
	    cmocka_unit_test(test_batches_of_every_format),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
