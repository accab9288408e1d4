/* Rejected records: the raw message, its origin, the stage and the reason. */
#include "cleaner_test.h"

static void test_rejected_from_result(void **state)
{
	(void)state;
	struct cleaner *c = cl_new();
	struct cleaner_result res;
	assert_int_equal(cleaner_result_init(&res), 0);
	/* Payload bytes that are not UTF-8 travel unchanged. */
	json_t *raw = raw_newn("home1/kitchen/temperature", "\xFF\x00\x01", 3, NOW_MS - 5);
	json_object_set_new(raw, "retained", json_true());
	assert_int_equal(cleaner_process(c, raw, NOW_MS, &res), 0);
	assert_int_equal(res.code, CLEANER_JSON_MALFORMED);
	json_t *origin = json_pack("{s:s, s:s, s:i, s:I}", "cluster", "edge", "topic", "iot.raw",
	                           "partition", 3, "offset", (json_int_t)123456789012LL);
	json_t *rej = cleaner_rejected_new(raw, origin, res.code, res.reason);
	assert_non_null(rej);
	assert_fields_follow_schema(rej, "schemas/Rejected.avsc");
	assert_string_equal(field_str(rej, "source"), "test");
	assert_string_equal(field_str(rej, "topic"), "home1/kitchen/temperature");
	json_t *p = json_object_get(rej, "payload");
	assert_ptr_equal(p, json_object_get(raw, "payload")); /* shared, not copied */
	assert_int_equal(json_string_length(p), 3);
	assert_memory_equal(json_string_value(p), "\xFF\x00\x01", 3);
	assert_int_equal(json_integer_value(json_object_get(rej, "qos")), 1);
	assert_true(json_is_true(json_object_get(rej, "retained")));
	assert_int_equal(json_integer_value(json_object_get(rej, "received_at")), NOW_MS - 5);
	assert_ptr_equal(json_object_get(rej, "origin"), origin);
	assert_string_equal(field_str(rej, "stage"), "cleaner");
	assert_string_equal(field_str(rej, "reason"), res.reason);
	assert_string_equal(field_str(rej, "reason_code"), "json_malformed");
	json_decref(rej);
	json_decref(origin);

	/* Without an origin (stdin), origin is null. */
	rej = cleaner_rejected_new(raw, NULL, CLEANER_TS_FUTURE, "ts: 2 days in the future");
	assert_true(json_is_null(json_object_get(rej, "origin")));
	assert_string_equal(field_str(rej, "reason_code"), "ts_future");
	json_decref(rej);
	json_decref(raw);

	/* A hand-built raw record missing fields still gives a complete Rejected. */
	json_t *partial = json_pack("{s:s}", "topic", "t");
	rej = cleaner_rejected_new(partial, NULL, CLEANER_RAW_INVALID, "raw: incomplete");
	assert_fields_follow_schema(rej, "schemas/Rejected.avsc");
	assert_string_equal(field_str(rej, "payload"), "");
	json_decref(rej);
	json_decref(partial);
	assert_null(cleaner_rejected_new(raw, NULL, CLEANER_REASON_COUNT, "x"));
	cleaner_result_free(&res);
	cleaner_free(c);
}

static void test_every_reason_is_valid_utf8_text(void **state)
{
	(void)state;
	/* Hostile bytes in every place a reason quotes from. */
	struct cleaner *c = cl_new();
	struct cleaner_result res;
	assert_int_equal(cleaner_result_init(&res), 0);
	const char *payloads[] = {
	    "{\"value\":\"\xC3\xA9\\u0001\"}",
	    "{\"sensor_id\":\"\\u00e9/\\u0000\",\"temperature\":1}",
	    "{\"value\":1,\"timestamp\":\"\\u2028\"}",
	    "{\"value\":1,\"unit\":\"\\u0085\"}",
	    "{\"\xE2\x82\xAC\":1}",
	    "[\"\\ud83d\\ude00\"]",
	};
	for (size_t i = 0; i < sizeof(payloads) / sizeof(*payloads); i++) {
		run(c, "h\xC3\xA9/r/temperature", payloads[i], &res);
		assert_int_not_equal(res.code, CLEANER_OK);
		for (const char *p = res.reason; *p; p++)
			if (!(*p >= 0x20 && *p < 0x7F))
				fail_msg("reason of %zu has byte 0x%02X: %s", i, (unsigned char)*p,
				         res.reason);
		json_t *raw = raw_new("t", payloads[i]);
		json_t *rej = cleaner_rejected_new(raw, NULL, res.code, res.reason);
		assert_non_null(rej);
		json_decref(rej);
		json_decref(raw);
	}
	cleaner_result_free(&res);
	cleaner_free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_rejected_from_result),
	    cmocka_unit_test(test_every_reason_is_valid_utf8_text),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
