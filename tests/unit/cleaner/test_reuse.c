/* Readings are rebuilt in place from one message to the next: the result must be exactly what a
 * fresh cleaner builds, and what a caller still holds must not change under it. */
#include "cleaner_test.h"

static const char *const messages[][2] = {
    {"factory/101/1001/data",
     "{\"ts\":1762077500000,\"ts_human\":\"x\",\"metadata\":{\"siteId\":101,\"deviceId\":1001,"
     "\"sensorId\":10001,\"unit\":\"BAR\",\"deviceType\":\"press\",\"fw\":\"1.2\"},"
     "\"measurement\":120,\"location\":{\"latitude\":47.5,\"longitude\":8.5},\"extra\":[1,true]}"},
    {"home1/kitchen/temperature", "{\"timestamp\":\"2025-11-02T09:59:00Z\",\"value\":21.5}"},
    {"site1/dev1/energy",
     "{\"sensor_id\":\"m1\",\"sensor_energy_value\":412.5,\"sensor_timestamp\":\"2025-11-02 "
     "09:58:00\"}"},
    {"home2/bath/temperature",
     "[{\"timestamp\":\"2025-11-02T09:57:00Z\",\"value\":21.1,\"battery\":80},"
     "{\"timestamp\":\"2025-11-02T09:58:00Z\",\"value\":\"x\"},"
     "{\"timestamp\":\"2025-11-02T09:59:00Z\",\"temperature\":71.6,\"unit\":\"F\"}]"},
    {"factory/102/1002/data",
     "{\"ts\":1762077590000,\"metadata\":{\"siteId\":102,\"deviceId\":1002,\"sensorId\":10003,"
     "\"unit\":\"C\"},\"measurement\":19.25}"},
    {"s/d/s1/humidity", "55"},
    {"factory/101/1001/data",
     "{\"ts\":1762077500000,\"metadata\":{\"siteId\":101,\"deviceId\":1001,\"sensorId\":10001,"
     "\"unit\":\"BAR\",\"deviceType\":\"press\"},\"measurement\":121,"
     "\"location\":{\"latitude\":-33.9,\"longitude\":151.2}}"},
    {"home1/kitchen/temperature", "not json"},
    {"home1/kitchen/temperature", "{\"timestamp\":\"2025-11-02T09:59:30Z\",\"value\":22}"},
};

static void test_rebuilt_readings_equal_fresh_ones(void **state)
{
	(void)state;
	struct cleaner *reused = cl_new();
	struct cleaner_result res, fresh_res;
	assert_int_equal(cleaner_result_init(&res), 0);
	assert_int_equal(cleaner_result_init(&fresh_res), 0);
	size_t reuses = 0;
	for (int round = 0; round < 3; round++)
		for (size_t i = 0; i < sizeof(messages) / sizeof(messages[0]); i++) {
			struct cleaner *fresh = cl_new();
			const json_t *before = json_array_get(res.readings, 0);
			run(reused, messages[i][0], messages[i][1], &res);
			/* The object itself came back, filled anew. */
			reuses += before && json_array_get(res.readings, 0) == before;
			run(fresh, messages[i][0], messages[i][1], &fresh_res);
			if (!payload_tree_same(res.readings, fresh_res.readings))
				fail_msg(
				    "round %d message %zu: readings differ from a fresh cleaner's",
				    round, i);
			assert_int_equal(res.code, fresh_res.code);
			assert_string_equal(res.reason, fresh_res.reason);
			cleaner_free(fresh);
		}
	assert_true(reuses > 10);
	cleaner_result_free(&res);
	cleaner_result_free(&fresh_res);
	cleaner_free(reused);
}

static void test_what_the_caller_holds_stays(void **state)
{
	(void)state;
	struct cleaner *c = cl_new();
	struct cleaner_result res;
	assert_int_equal(cleaner_result_init(&res), 0);
	run(c, messages[0][0], messages[0][1], &res);
	json_t *held = json_incref(json_array_get(res.readings, 0));
	json_t *copy = json_deep_copy(held);
	run(c, messages[1][0], messages[1][1], &res);
	assert_true(payload_tree_same(held, copy));
	json_decref(held);
	json_decref(copy);

	/* Members held on their own keep their values too. */
	run(c, messages[0][0], messages[0][1], &res);
	json_t *r = json_array_get(res.readings, 0);
	json_t *site = json_incref(json_object_get(r, "site"));
	json_t *tags = json_incref(json_object_get(r, "tags"));
	json_t *loc = json_incref(json_object_get(r, "location"));
	json_t *tags_copy = json_deep_copy(tags), *loc_copy = json_deep_copy(loc);
	run(c, messages[4][0], messages[4][1], &res);
	assert_string_equal(json_string_value(site), "101");
	assert_true(payload_tree_same(tags, tags_copy));
	assert_true(payload_tree_same(loc, loc_copy));
	assert_string_equal(field_str(json_array_get(res.readings, 0), "site"), "102");
	json_decref(site);
	json_decref(tags);
	json_decref(loc);
	json_decref(tags_copy);
	json_decref(loc_copy);
	cleaner_result_free(&res);
	cleaner_free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_rebuilt_readings_equal_fresh_ones),
	    cmocka_unit_test(test_what_the_caller_holds_stays),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
