/* How the relay classifies a record's iotpipe-origin header (see origin_hdr.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "origin_hdr.h"

static enum origin_kind classify(const char *v, const char *alias, struct origin *o)
{
	return origin_hdr_classify(v, v ? strlen(v) : 0, alias, o);
}

static void test_kinds(void **state)
{
	(void)state;
	struct origin o;
	assert_int_equal(classify(NULL, "edge", &o), ORIGIN_ABSENT);
	assert_int_equal(classify("edge/iot.raw/3/42", "edge", &o), ORIGIN_OWN);
	assert_string_equal(o.topic, "iot.raw");
	assert_int_equal(o.partition, 3);
	assert_int_equal(o.offset, 42);
	assert_int_equal(classify("-/-/-1/7", "edge", &o), ORIGIN_OWN);
	assert_int_equal(classify("local/iot.raw/0/1", "edge", &o), ORIGIN_LOCAL);
	assert_string_equal(o.cluster, "local");
	assert_int_equal(classify("local/iot.raw/0/1", "local", &o), ORIGIN_OWN);
	assert_int_equal(classify("central/iot.raw/0/1", "edge", &o), ORIGIN_FOREIGN);
	assert_string_equal(o.cluster, "central");
	/* An alias that is a prefix of another is still another cluster. */
	assert_int_equal(classify("edge2/iot.raw/0/1", "edge", &o), ORIGIN_FOREIGN);
}

static void test_malformed(void **state)
{
	(void)state;
	struct origin o;
	const char *bad[] = {"",	   "garbage",	     "edge/iot.raw/1",	"edge/iot.raw/x/1",
			     "edge/iot.raw/1/", "/iot.raw/1/1", "edge//1/1",	"edge/t/1/1x",
			     "edge/t/-2/1",	"edge/t/99999999999/1"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++)
		assert_int_equal(classify(bad[i], "edge", &o), ORIGIN_MALFORMED);
	/* Header values are bytes: an embedded NUL, or a value too long to be an origin. */
	assert_int_equal(origin_hdr_classify("edge/t/1/1\0x", 12, "edge", &o), ORIGIN_MALFORMED);
	char big[600];
	memset(big, 'a', sizeof(big));
	memcpy(big, "edge/", 5);
	assert_int_equal(origin_hdr_classify(big, sizeof(big), "edge", &o), ORIGIN_MALFORMED);
	/* Not NUL-terminated: only len bytes count. */
	assert_int_equal(origin_hdr_classify("edge/t/1/123456", 10, "edge", &o), ORIGIN_OWN);
	assert_int_equal(o.offset, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_kinds),
		cmocka_unit_test(test_malformed),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
