/* The fast payload parser: on what it takes it builds exactly jansson's tree; everything else it
 * declines (NULL), so jansson decides. tests/fuzz/fuzz_cleaner_json.c checks the same promise on
 * arbitrary bytes. */
#include "cleaner_test.h"

#define FLAGS (JSON_DECODE_ANY | JSON_ALLOW_NUL | JSON_REJECT_DUPLICATES)

static void expect_taken(const char *s, size_t len)
{
	json_error_t e;
	json_t *fast = payload_parse(s, len);
	json_t *ref = json_loadb(s, len, FLAGS, &e);
	if (!fast)
		fail_msg("declined %.*s", (int)len, s);
	if (!ref)
		fail_msg("took what jansson refuses (%s): %.*s", e.text, (int)len, s);
	if (!payload_tree_same(fast, ref))
		fail_msg("tree differs from jansson's: %.*s", (int)len, s);
	json_decref(fast);
	json_decref(ref);
}

static void expect_declined(const char *s, size_t len)
{
	json_t *fast = payload_parse(s, len);
	if (fast)
		fail_msg("took %.*s", (int)len, s);
}

#define TAKEN(s) expect_taken(s, sizeof(s) - 1)
#define DECLINED(s) expect_declined(s, sizeof(s) - 1)

static void test_payloads_as_jansson_builds_them(void **state)
{
	(void)state;
	TAKEN("{\"ts\":1729312551000,\"metadata\":{\"siteId\":101,\"deviceId\":1004,"
	      "\"sensorId\":10034,\"unit\":\"BAR\"},\"measurement\":120}");
	TAKEN("[{\"timestamp\":\"2025-11-02T10:00:00+01:00\",\"value\":21.3},"
	      "{\"temperature\":71.6,\"unit\":\"F\"}, 21.5, \"22\", true, false, null, [], {}]");
	TAKEN(" \t\r\n21.5 \n");
	TAKEN("-0");
	TAKEN("0.1");
	TAKEN("[1e5, 1E+5, -1.5e-300, 1.7976931348623157e308, 123456789.123456789]");
	TAKEN("[9223372036854775807, -9223372036854775808, 0, -1]");
	/* Members keep their order; later keys of nested objects do not clash with outer ones. */
	TAKEN("{\"z\":1,\"a\":{\"z\":2,\"a\":[{\"z\":3}]},\"m\":null}");
	/* Escapes, including surrogate pairs and an escaped NUL in a value. */
	TAKEN("{\"s\":\"a\\\"b\\\\c\\/d\\b\\f\\n\\r\\t\\u00e9\\u20AC\\ud83d\\ude00\\u0000x\"}");
	TAKEN("{\"k\\u00e9y\":\"v\"}");
	TAKEN("\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"");
	/* DEL is not a control character for JSON. */
	TAKEN("\"a\x7f"
	      "b\"");
	/* A string with escapes longer than the stack buffer. */
	char big[2000];
	size_t n = 0;
	big[n++] = '"';
	while (n < sizeof(big) - 8) {
		memcpy(big + n, "ab\\n", 4);
		n += 4;
	}
	big[n++] = '"';
	expect_taken(big, n);
}

static void test_declines_what_jansson_must_judge(void **state)
{
	(void)state;
	/* Errors: jansson's reasons are the reference. */
	DECLINED("");
	DECLINED("   ");
	DECLINED("{\"value\":");
	DECLINED("21.5 C");
	DECLINED("{\"a\":1,\"a\":2}");
	DECLINED("{\"a\":1,}");
	DECLINED("[1,]");
	DECLINED("[1 2]");
	DECLINED("{\"a\" 1}");
	DECLINED("{a:1}");
	DECLINED("01");
	DECLINED("-");
	DECLINED("1.");
	DECLINED(".5");
	DECLINED("1e");
	DECLINED("+1");
	DECLINED("NaN");
	DECLINED("{\"value\":Infinity}");
	DECLINED("truex");
	DECLINED("nul");
	DECLINED("\"abc");
	DECLINED("\"a\tb\"");
	DECLINED("\"\\x\"");
	DECLINED("\"\\u12G4\"");
	DECLINED("\"\\ud83d\"");
	DECLINED("\"\\ud83dx\"");
	DECLINED("\"\\ude00\"");
	DECLINED("\"\\ud83d\\u0041\"");
	DECLINED("\xef\xbb\xbf{}");
	DECLINED("\"\xc0\xaf\"");
	DECLINED("\"\xed\xa0\x80\"");
	DECLINED("\"\xf4\x90\x80\x80\"");
	DECLINED("[1]\0");
	/* What it leaves to jansson although jansson may take it or say why not. */
	DECLINED("{\"a\\u0000b\":1}");
	DECLINED("12345678901234567890");
	DECLINED("1e400");
	DECLINED("1e-400");
	DECLINED("4.9e-324");
	DECLINED("0.00000000000000000000000000000000000000000000000000000000000000001");
	char deep[200];
	memset(deep, '[', 100);
	memset(deep + 100, ']', 100);
	expect_declined(deep, sizeof(deep));
	expect_taken(deep + 36, sizeof(deep) - 72);
}

/* The cleaner's verdicts do not change: errors still carry jansson's reasons. */
static void test_cleaner_reasons_unchanged(void **state)
{
	(void)state;
	struct cleaner *c = cl_new();
	struct cleaner_result res;
	assert_int_equal(cleaner_result_init(&res), 0);
	json_t *raw = raw_new("home1/kitchen/temperature", "{\"value\":1,\"value\":2}");
	assert_int_equal(cleaner_process(c, raw, NOW_MS, &res), 0);
	assert_int_equal(res.code, CLEANER_JSON_MALFORMED);
	assert_non_null(strstr(res.reason, "duplicate object key"));
	json_decref(raw);
	raw = raw_new("home1/kitchen/temperature",
	              "{\"timestamp\":\"2025-11-02T09:59:00Z\",\"value\":21.5}");
	assert_int_equal(cleaner_process(c, raw, NOW_MS, &res), 0);
	assert_int_equal(res.code, CLEANER_OK);
	assert_int_equal(json_array_size(res.readings), 1);
	json_decref(raw);
	cleaner_result_free(&res);
	cleaner_free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_payloads_as_jansson_builds_them),
	    cmocka_unit_test(test_declines_what_jansson_must_judge),
	    cmocka_unit_test(test_cleaner_reasons_unchanged),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
