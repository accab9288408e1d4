/* Target topic names: template checks, expansion, and the limits of topic names and aliases. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "naming.h"

static void test_check(void **state)
{
	(void)state;
	char err[256];
	assert_int_equal(naming_check("{topic}", err, sizeof(err)), 0);
	assert_int_equal(naming_check("{source}.{topic}", err, sizeof(err)), 0);
	assert_int_equal(naming_check("central_{source}-{topic}.v1", err, sizeof(err)), 0);
	assert_int_equal(naming_check("{source}", err, sizeof(err)), -1);
	assert_non_null(strstr(err, "{topic}"));
	assert_int_equal(naming_check("{source}.{topc}", err, sizeof(err)), -1);
	assert_non_null(strstr(err, "placeholder"));
	assert_int_equal(naming_check("{topic", err, sizeof(err)), -1);
	assert_int_equal(naming_check("a/{topic}", err, sizeof(err)), -1);
	assert_non_null(strstr(err, "'/'"));
	assert_int_equal(naming_check("", err, sizeof(err)), -1);
	assert_true(naming_uses_source("{source}.{topic}"));
	assert_false(naming_uses_source("x.{topic}"));
	assert_false(naming_renames("{topic}"));
	assert_true(naming_renames("{topic}.copy"));
}

static void test_expand(void **state)
{
	(void)state;
	char out[NAMING_TOPIC_MAX + 1];
	assert_int_equal(naming_expand("{topic}", "edge1", "iot.clean", out, sizeof(out)), 0);
	assert_string_equal(out, "iot.clean");
	assert_int_equal(naming_expand("{source}.{topic}", "edge1", "iot.clean", out, sizeof(out)), 0);
	assert_string_equal(out, "edge1.iot.clean");
	assert_int_equal(naming_expand("{topic}-{source}-{topic}", "e", "t", out, sizeof(out)), 0);
	assert_string_equal(out, "t-e-t");
	/* A result past Kafka's 249 characters, or past the buffer, is refused. */
	char topic[246];
	memset(topic, 'a', sizeof(topic) - 1);
	topic[sizeof(topic) - 1] = 0;
	assert_int_equal(naming_expand("{source}.{topic}", "abc", topic, out, sizeof(out)), 0);
	assert_int_equal(strlen(out), 249);
	assert_int_equal(naming_expand("{source}.{topic}", "abcd", topic, out, sizeof(out)), -1);
	char small[8];
	assert_int_equal(naming_expand("{source}.{topic}", "edge", "iot.x", small, sizeof(small)),
			 -1);
	assert_int_equal(naming_expand("{topic}", "e", "t", small, 0), -1);
}

static void test_names(void **state)
{
	(void)state;
	assert_true(naming_topic_valid("iot.clean"));
	assert_true(naming_topic_valid("A-b_c.9"));
	assert_false(naming_topic_valid(""));
	assert_false(naming_topic_valid("."));
	assert_false(naming_topic_valid(".."));
	assert_false(naming_topic_valid("a b"));
	assert_false(naming_topic_valid("a/b"));
	assert_true(naming_alias_valid("factory-1"));
	assert_false(naming_alias_valid(""));
	assert_false(naming_alias_valid("a/b"));
	assert_false(naming_alias_valid("ü"));
	char alias[NAMING_ALIAS_MAX + 2];
	memset(alias, 'x', sizeof(alias) - 1);
	alias[sizeof(alias) - 1] = 0;
	assert_false(naming_alias_valid(alias));
	alias[NAMING_ALIAS_MAX] = 0;
	assert_true(naming_alias_valid(alias));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_check),
		cmocka_unit_test(test_expand),
		cmocka_unit_test(test_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
