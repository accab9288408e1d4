/* Templates and the text helpers under them: placeholder substitution, JSON escaping, topic
 * injection refusal, number formatting, globs, UTF-8 and the keyed hash. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "glob.h"
#include "siphash.h"
#include "template.h"
#include "fmt.h"
#include "text.h"

#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static const struct tmpl_vars home = {"home-1", "kitchen", "t1", "temperature", "heating", 19.5};

static struct tmpl *compile_ok(const char *text, enum tmpl_kind kind)
{
	char err[512] = "";
	struct tmpl *t = tmpl_compile(text, kind, err, sizeof(err));
	if (!t)
		fail_msg("%s: %s", text, err);
	return t;
}

static void compile_fails(const char *text, enum tmpl_kind kind, const char *reason)
{
	char err[512] = "";
	struct tmpl *t = tmpl_compile(text, kind, err, sizeof(err));
	if (t) {
		tmpl_free(t);
		fail_msg("%s compiled but should not", text);
	}
	if (!strstr(err, reason))
		fail_msg("%s: error \"%s\" lacks \"%s\"", text, err, reason);
}

/* Renders and returns a copy of the output, or fails the test. */
static char *render_ok(const struct tmpl *t, const struct tmpl_vars *v)
{
	struct buf out = {0};
	char err[256] = "";
	int rc = tmpl_render(t, v, &out, err, sizeof(err));
	if (rc != TMPL_OK)
		fail_msg("render: %s", err);
	char *s = strdup((const char *)out.data);
	assert_int_equal(strlen(s), out.len);
	buf_free(&out);
	return s;
}

static void render_refused(const char *text, enum tmpl_kind kind, const struct tmpl_vars *v,
                           const char *reason)
{
	struct tmpl *t = compile_ok(text, kind);
	struct buf out = {0};
	char err[256] = "";
	int rc = tmpl_render(t, v, &out, err, sizeof(err));
	buf_free(&out);
	tmpl_free(t);
	if (rc != TMPL_REFUSED)
		fail_msg("%s rendered but should have been refused", text);
	if (!strstr(err, reason))
		fail_msg("refusal \"%s\" lacks \"%s\"", err, reason);
}

static void test_topic_render(void **state)
{
	(void)state;
	struct tmpl *t = compile_ok("{site}/{device}/heatpump/set", TMPL_TOPIC);
	char *s = render_ok(t, &home);
	assert_string_equal(s, "home-1/kitchen/heatpump/set");
	free(s);
	assert_true(tmpl_uses(t, "site"));
	assert_false(tmpl_uses(t, "value"));
	assert_string_equal(tmpl_text(t), "{site}/{device}/heatpump/set");
	tmpl_free(t);

	t = compile_ok("cmd/{rule}/{metric}/{sensor}", TMPL_TOPIC);
	s = render_ok(t, &home);
	assert_string_equal(s, "cmd/heating/temperature/t1");
	free(s);
	tmpl_free(t);
	tmpl_free(NULL);
}

static void test_topic_injection_refused(void **state)
{
	(void)state;
	const char *topic = "{site}/{device}/heatpump/set";
	static const char *const bad[][2] = {
	    {"a/b", "contains '/'"}, {"a+", "contains '+'"},          {"#", "contains '#'"},
	    {"", "is empty"},        {"\xC0\xAF", "not valid UTF-8"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		struct tmpl_vars v = home;
		v.device = bad[i][0];
		render_refused(topic, TMPL_TOPIC, &v, bad[i][1]);
		v = home;
		v.site = bad[i][0];
		render_refused(topic, TMPL_TOPIC, &v, bad[i][1]);
	}
	/* The refusal names the field and quotes the value safely. */
	struct tmpl_vars v = home;
	v.device = "x/\n\x01";
	render_refused(topic, TMPL_TOPIC, &v, "device \"x/\\x0A\\x01\" contains '/'");
	/* A site starting with '$' would land in the broker's reserved space. */
	v = home;
	v.site = "$SYS";
	render_refused(topic, TMPL_TOPIC, &v, "starts with '$'");
	/* Over MQTT's limit. */
	char *longname = malloc(70000);
	memset(longname, 'a', 69999);
	longname[69999] = 0;
	v = home;
	v.device = longname;
	render_refused(topic, TMPL_TOPIC, &v, "longer than 65535");
	free(longname);
	/* The same texts are fine in a payload: only topics have levels and wildcards. */
	struct tmpl *t = compile_ok("{\"device\":\"{device}\"}", TMPL_JSON);
	v = home;
	v.device = "a/b+#";
	char *s = render_ok(t, &v);
	assert_string_equal(s, "{\"device\":\"a/b+#\"}");
	free(s);
	tmpl_free(t);
}

static void test_topic_compile_errors(void **state)
{
	(void)state;
	compile_fails("{site}/+/set", TMPL_TOPIC, "'+' is not allowed in a topic");
	compile_fails("{site}/#", TMPL_TOPIC, "'#' is not allowed in a topic");
	compile_fails("{site}/{value}", TMPL_TOPIC, "{value} is not allowed in a topic");
	compile_fails("", TMPL_TOPIC, "must not be empty");
	compile_fails("$SYS/{site}", TMPL_TOPIC, "must not start with '$'");
	compile_fails("{site}/{sitee}", TMPL_TOPIC, "unknown placeholder {sitee}");
	compile_fails("a\xFF", TMPL_TOPIC, "not valid UTF-8");
}

/* Every string substituted inside a JSON string reads back as itself. */
static void test_json_escaping(void **state)
{
	(void)state;
	struct tmpl *t = compile_ok(
	    "{\"site\":\"{site}\",\"device\":\"{device}\",\"v\":{value},\"s\":\"{value}\"}",
	    TMPL_JSON);
	static const char *const devices[] = {
	    "plain",        "quote\"inside", "back\\slash", "new\nline\ttab\rcr",
	    "\x01\x1f ctl", "unicode é€😀",   "}{\"",        "\\\"",
	    "\\u0041",
	};
	for (size_t i = 0; i < sizeof(devices) / sizeof(*devices); i++) {
		struct tmpl_vars v = home;
		v.device = devices[i];
		v.value = -0.1;
		char *s = render_ok(t, &v);
		json_error_t jerr;
		json_t *j = json_loads(s, 0, &jerr);
		if (!j)
			fail_msg("not JSON: %s (%s)", s, jerr.text);
		assert_string_equal(json_string_value(json_object_get(j, "device")), devices[i]);
		assert_string_equal(json_string_value(json_object_get(j, "site")), "home-1");
		assert_true(json_real_value(json_object_get(j, "v")) == -0.1);
		assert_string_equal(json_string_value(json_object_get(j, "s")), "-0.1");
		json_decref(j);
		free(s);
	}
	/* Invalid UTF-8 would make the payload (and its audit record) unreadable. */
	struct tmpl_vars v = home;
	v.device = "bad\xC3";
	struct buf out = {0};
	char err[256];
	assert_int_equal(tmpl_render(t, &v, &out, err, sizeof(err)), TMPL_REFUSED);
	assert_non_null(strstr(err, "not valid UTF-8"));
	buf_free(&out);
	tmpl_free(t);
}

static void test_json_payloads(void **state)
{
	(void)state;
	/* The home example: no placeholders at all. */
	struct tmpl *t = compile_ok("{\"status\":\"1\"}", TMPL_JSON);
	char *s = render_ok(t, &home);
	assert_string_equal(s, "{\"status\":\"1\"}");
	free(s);
	tmpl_free(t);
	/* A bare {value} payload and a JSON array. */
	t = compile_ok("{value}", TMPL_JSON);
	s = render_ok(t, &home);
	assert_string_equal(s, "19.5");
	free(s);
	tmpl_free(t);
	t = compile_ok("[{value}, \"{rule}\"]", TMPL_JSON);
	s = render_ok(t, &home);
	assert_string_equal(s, "[19.5, \"heating\"]");
	free(s);
	tmpl_free(t);
	/* "{{" writes one '{', so a literal "{site}" stays possible. */
	t = compile_ok("{\"note\":\"{{site} is {site}\"}", TMPL_JSON);
	s = render_ok(t, &home);
	assert_string_equal(s, "{\"note\":\"{site} is home-1\"}");
	free(s);
	tmpl_free(t);

	compile_fails("{\"d\":{device}}", TMPL_JSON, "{device} must be inside a JSON string");
	compile_fails("{\"d\":\"\\{device}\"}", TMPL_JSON, "follows a backslash");
	compile_fails("{\"status\":1", TMPL_JSON, "not valid JSON");
	/* Only valid for some numbers: caught by filling in a negative sample. */
	compile_fails("{\"v\":-{value}}", TMPL_JSON, "not valid JSON");
	compile_fails("{\"v\":1{value}}", TMPL_JSON, "not valid JSON");
	compile_fails("{\"v\":{valeu}}", TMPL_JSON, "unknown placeholder {valeu}");
}

static void test_text_payloads(void **state)
{
	(void)state;
	struct tmpl *t = compile_ok("ON {device} {value}", TMPL_TEXT);
	struct tmpl_vars v = home;
	v.device = "a\"b/c";
	char *s = render_ok(t, &v);
	assert_string_equal(s, "ON a\"b/c 19.5");
	free(s);
	assert_int_equal(tmpl_kind_of(t), TMPL_TEXT);
	tmpl_free(t);
	/* An unmatched brace is literal text. */
	t = compile_ok("{ {site", TMPL_TEXT);
	s = render_ok(t, &home);
	assert_string_equal(s, "{ {site");
	free(s);
	tmpl_free(t);

	assert_true(tmpl_looks_json("{\"status\":\"1\"}"));
	assert_true(tmpl_looks_json("  [1]"));
	assert_true(tmpl_looks_json("{ }"));
	assert_false(tmpl_looks_json("{value}"));
	assert_false(tmpl_looks_json("{{x"));
	assert_false(tmpl_looks_json("ON"));
}

static void test_value_format(void **state)
{
	(void)state;
	static const struct {
		double v;
		const char *s;
	} cases[] = {
	    {21.3, "21.3"},
	    {20, "20"},
	    {0.1 + 0.2, "0.30000000000000004"},
	    {-0.5, "-0.5"},
	    {1e21, "1e+21"},
	    {5e-324, "4.94065645841247e-324"},
	    {1.0 / 3, "0.3333333333333333"},
	    {-0.0, "-0"},
	};
	char buf[32];
	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		fmt_double(cases[i].v, buf, sizeof(buf));
		assert_string_equal(buf, cases[i].s);
	}
	/* Every finite double reads back exactly. */
	uint64_t x = 0x9E3779B97F4A7C15ull;
	for (int i = 0; i < 20000; i++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		double d;
		memcpy(&d, &x, sizeof(d));
		if (!isfinite(d))
			continue;
		size_t n = fmt_double(d, buf, sizeof(buf));
		assert_true(n > 0 && n < sizeof(buf));
		assert_true(strtod(buf, NULL) == d);
		json_t *j = json_loads(buf, JSON_DECODE_ANY, NULL);
		assert_non_null(j); /* also a valid JSON number */
		json_decref(j);
	}
	/* Non-finite values never reach a payload. */
	struct tmpl *t = compile_ok("{value}", TMPL_TEXT);
	struct tmpl_vars v = home;
	v.value = NAN;
	struct buf out = {0};
	char err[128];
	assert_int_equal(tmpl_render(t, &v, &out, err, sizeof(err)), TMPL_REFUSED);
	buf_free(&out);
	tmpl_free(t);
}

static void test_glob(void **state)
{
	(void)state;
	static const struct {
		const char *p, *s;
		bool m;
	} cases[] = {
	    {"home*", "home-1", true},
	    {"home*", "home", true},
	    {"home*", "hom", false},
	    {"*", "", true},
	    {"", "", true},
	    {"", "a", false},
	    {"a?c", "abc", true},
	    {"a?c", "ac", false},
	    {"a?c", "aéc", true},
	    {"*-?", "room-7", true},
	    {"*-?", "room-", false},
	    {"a*b*c", "axxbyyc", true},
	    {"a*b*c", "axxbyy", false},
	    {"\\*", "*", true},
	    {"\\*", "x", false},
	    {"a\\?", "a?", true},
	    {"a\\?", "ab", false},
	    {"**x", "yyx", true},
	    {"kitchen", "kitchen", true},
	    {"kitchen", "Kitchen", false},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++)
		if (glob_match(cases[i].p, cases[i].s) != cases[i].m)
			fail_msg("glob \"%s\" vs \"%s\": expected %d", cases[i].p, cases[i].s,
			         cases[i].m);
	/* Pathological pattern against a long string finishes (and does not match). */
	char s[4001];
	memset(s, 'a', 4000);
	s[4000] = 0;
	assert_false(glob_match("*a*a*a*a*a*a*a*a*a*b", s));

	char err[64];
	assert_int_equal(glob_check("ok\\*", err, sizeof(err)), 0);
	assert_int_equal(glob_check("bad\\", err, sizeof(err)), -1);
	assert_non_null(strstr(err, "lone"));
	assert_true(glob_is_literal("a\\*b"));
	assert_false(glob_is_literal("a*b"));
}

static void test_utf8_and_quote(void **state)
{
	(void)state;
	assert_true(utf8_valid("h\xC3\xA9llo \xE2\x82\xAC \xF0\x9F\x98\x80", 15));
	static const char *const bad[] = {"\xC0\xAF", "\xED\xA0\x80", "\xF4\x90\x80\x80",
	                                  "\xE2\x82", "\x80",         "\xF8\x88\x80\x80\x80"};
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++)
		assert_false(utf8_valid(bad[i], strlen(bad[i])));

	char q[96];
	assert_string_equal(fmt_quote("a\"b\\c\x01\xFF", q, sizeof(q)), "a\\\"b\\\\c\\x01\\xFF");
	char longs[200];
	memset(longs, 'x', 199);
	longs[199] = 0;
	fmt_quote(longs, q, sizeof(q));
	assert_int_equal(strlen(q), 48 + 3);
	assert_string_equal(q + 48, "...");
	char tiny[8];
	fmt_quote(longs, tiny, sizeof(tiny));
	assert_true(strlen(tiny) < sizeof(tiny));
}

static void test_siphash(void **state)
{
	(void)state;
	/* Reference vectors of SipHash-2-4 (key 00..0f, message 00..n-1). */
	uint8_t key[16], msg[15];
	for (int i = 0; i < 16; i++)
		key[i] = (uint8_t)i;
	for (int i = 0; i < 15; i++)
		msg[i] = (uint8_t)i;
	struct siphash h;
	siphash_init(&h, key);
	assert_true(siphash_final(&h) == 0x726fdb47dd0e0e31ull);
	siphash_init(&h, key);
	siphash_update(&h, msg, 15);
	assert_true(siphash_final(&h) == 0xa129ca6149be45e5ull);
	/* Fed in pieces, the same. */
	siphash_init(&h, key);
	siphash_update(&h, msg, 3);
	siphash_update(&h, msg + 3, 0);
	siphash_update(&h, msg + 3, 6);
	siphash_update(&h, msg + 9, 6);
	assert_true(siphash_final(&h) == 0xa129ca6149be45e5ull);
	uint8_t k1[16], k2[16];
	siphash_key_random(k1);
	siphash_key_random(k2);
	assert_memory_not_equal(k1, k2, 16);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_topic_render),
	    cmocka_unit_test(test_topic_injection_refused),
	    cmocka_unit_test(test_topic_compile_errors),
	    cmocka_unit_test(test_json_escaping),
	    cmocka_unit_test(test_json_payloads),
	    cmocka_unit_test(test_text_payloads),
	    cmocka_unit_test(test_value_format),
	    cmocka_unit_test(test_glob),
	    cmocka_unit_test(test_utf8_and_quote),
	    cmocka_unit_test(test_siphash),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
