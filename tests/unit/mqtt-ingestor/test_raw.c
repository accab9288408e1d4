/* RawMessage construction and key choice of the ingestor. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "raw.h"
#include "records.h"

static void test_key_rules(void **state)
{
	(void)state;
	struct raw_key_rule r;
	const char *key;
	size_t len;
	const char *t = "factory/101/1004/data";
	assert_int_equal(raw_key_rule_parse("topic", &r), 0);
	raw_key(&r, t, strlen(t), &key, &len);
	assert_int_equal(len, strlen(t));
	assert_int_equal(raw_key_rule_parse("level:2", &r), 0);
	raw_key(&r, t, strlen(t), &key, &len);
	assert_int_equal(len, 4);
	assert_memory_equal(key, "1004", 4);
	assert_int_equal(raw_key_rule_parse("level:0", &r), 0);
	raw_key(&r, t, strlen(t), &key, &len);
	assert_memory_equal(key, "factory", len);
	/* Fewer levels than asked, or an empty level: the whole topic, never an empty key. */
	assert_int_equal(raw_key_rule_parse("level:9", &r), 0);
	raw_key(&r, t, strlen(t), &key, &len);
	assert_int_equal(len, strlen(t));
	raw_key_rule_parse("level:1", &r);
	raw_key(&r, "a//b", 4, &key, &len);
	assert_int_equal(len, 4);
	assert_int_equal(raw_key_rule_parse("level:", &r), -1);
	assert_int_equal(raw_key_rule_parse("level:-1", &r), -1);
	assert_int_equal(raw_key_rule_parse("device", &r), -1);
}

static void test_payload_is_byte_exact(void **state)
{
	(void)state;
	char err[256];
	assert_int_equal(records_init(err, sizeof(err)), 0);
	const uint8_t payload[] = {0xff, 0x00, 'a', 0xc3, 0x28, 0x00, '\n'};
	json_t *rec = raw_message_new("north", "t/1", 3, payload, sizeof(payload), 1, true, 42);
	assert_non_null(rec);
	struct buf b = {0};
	assert_int_equal(records_encode(REC_RAW_MESSAGE, rec, &b, err, sizeof(err)), 0);
	json_t *back;
	assert_int_equal(records_decode_as(REC_RAW_MESSAGE, b.data, b.len, &back, err, sizeof(err)),
			 0);
	const json_t *p = json_object_get(back, "payload");
	assert_int_equal(json_string_length(p), sizeof(payload));
	assert_memory_equal(json_string_value(p), payload, sizeof(payload));
	assert_string_equal(rec_str(back, "source"), "north");
	assert_int_equal(rec_int(back, "received_at", 0), 42);
	assert_true(json_is_true(json_object_get(back, "retained")));
	json_decref(back);
	json_decref(rec);
	buf_free(&b);
	/* An empty payload is a valid message too. */
	rec = raw_message_new("n", "t", 1, NULL, 0, 0, false, 1);
	assert_non_null(rec);
	json_decref(rec);
	records_shutdown();
}

static void test_invalid_topic_refused(void **state)
{
	(void)state;
	assert_null(raw_message_new("n", "a\xff", 2, "x", 1, 1, false, 1));
	assert_null(raw_message_new("n", "a\0b", 3, "x", 1, 1, false, 1));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_key_rules),
		cmocka_unit_test(test_payload_is_byte_exact),
		cmocka_unit_test(test_invalid_topic_refused),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
