/* Heat-pump commands: the documented shape is accepted, anything else refused with a reason. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "control.h"

static int parse(const char *topic, const char *payload, struct control_cmd *c, char *err)
{
	return control_parse(topic, strlen(topic), payload, strlen(payload), c, err, 160);
}

static void test_accepts_commands(void **state)
{
	(void)state;
	struct control_cmd c;
	char err[160];
	assert_int_equal(parse("home1/kitchen/heatpump/set", "{\"status\":\"1\"}", &c, err), 0);
	assert_true(c.on);
	assert_int_equal(c.site_len, 5);
	assert_memory_equal(c.site, "home1", 5);
	assert_int_equal(c.device_len, 7);
	assert_memory_equal(c.device, "kitchen", 7);
	assert_int_equal(parse("101/1001/heatpump/set", "{\"status\":\"0\"}", &c, err), 0);
	assert_false(c.on);
	assert_memory_equal(c.device, "1001", 4);
	assert_int_equal(parse("a/b/heatpump/set", "{\"status\":1,\"x\":2}", &c, err), 0);
	assert_true(c.on);
	assert_int_equal(parse("a/b/heatpump/set", "{\"status\":false}", &c, err), 0);
	assert_false(c.on);
}

static void test_refuses_the_rest(void **state)
{
	(void)state;
	struct control_cmd c;
	char err[160];
	static const char *const bad_topics[] = {
	    "heatpump/set",     "/b/heatpump/set",    "a//heatpump/set", "a/b/c/heatpump/set",
	    "a/b/heatpump/get", "a/b/heatpump/set/x", "a/heatpump/set",  ""};
	for (size_t i = 0; i < sizeof(bad_topics) / sizeof(*bad_topics); i++) {
		err[0] = 0;
		assert_int_equal(parse(bad_topics[i], "{\"status\":\"1\"}", &c, err), -1);
		assert_non_null(strstr(err, "topic"));
	}
	static const char *const bad_payloads[] = {"",
	                                           "1",
	                                           "{\"status\":\"2\"}",
	                                           "{\"status\":\"on\"}",
	                                           "{\"state\":\"1\"}",
	                                           "{\"status\":1.5}",
	                                           "[{\"status\":\"1\"}]",
	                                           "{\"status\":\"1\"",
	                                           "{\"status\":null}"};
	for (size_t i = 0; i < sizeof(bad_payloads) / sizeof(*bad_payloads); i++) {
		err[0] = 0;
		assert_int_equal(parse("a/b/heatpump/set", bad_payloads[i], &c, err), -1);
		assert_true(strlen(err) > 0);
	}
	/* Bytes, not strings: an embedded NUL is refused, never read past. */
	static const char nul[] = "{\"status\":\"1\0\"}";
	assert_int_equal(control_parse("a/b/heatpump/set", 16, nul, sizeof(nul) - 1, &c, err, 160),
	                 -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_accepts_commands),
	    cmocka_unit_test(test_refuses_the_rest),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
