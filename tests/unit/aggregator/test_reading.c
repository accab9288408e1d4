/* Reading fields, the group-by, and the commit metadata text. */
#include "meta.h"
#include "reading.h"
#include "window.h"

#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

static void test_group_by_parse(void **state)
{
	(void)state;
	char err[300];
	unsigned m = 0;
	assert_int_equal(agg_group_by_parse("site,device,sensor,metric", &m, err, sizeof(err)), 0);
	assert_int_equal(m, AGG_BY_ALL);
	assert_int_equal(agg_group_by_parse("metric,site", &m, err, sizeof(err)), 0);
	assert_int_equal(m, AGG_BY_SITE | AGG_BY_METRIC);
	assert_int_equal(agg_group_by_parse("site", &m, err, sizeof(err)), 0);
	assert_int_equal(m, AGG_BY_SITE);

	m = 77;
	assert_int_equal(agg_group_by_parse("device,sensor,metric", &m, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "must include site"));
	assert_non_null(strstr(err, "partitioned by site"));
	assert_int_equal(m, 77);
	assert_int_equal(agg_group_by_parse("site,room", &m, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "unknown field \"room\""));
	assert_int_equal(agg_group_by_parse("site,site", &m, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "twice"));
	assert_int_equal(agg_group_by_parse("", &m, err, sizeof(err)), -1);
	assert_int_equal(agg_group_by_parse("site,", &m, err, sizeof(err)), -1);
	assert_int_equal(agg_group_by_parse("Site", &m, err, sizeof(err)), -1);

	assert_int_equal(agg_group_by_check(AGG_BY_SITE | AGG_BY_DEVICE, err, sizeof(err)), 0);
	assert_int_equal(agg_group_by_check(AGG_BY_DEVICE, err, sizeof(err)), -1);
	assert_int_equal(agg_group_by_check(AGG_BY_ALL | 0x100, err, sizeof(err)), -1);
}

static json_t *reading_json(void)
{
	return json_pack("{s:s, s:s, s:s, s:s, s:s, s:f, s:I, s:I}", "site", "101", "device",
	                 "1004", "sensor", "10034", "metric", "pressure", "unit", "BAR", "value",
	                 120.5, "ts", (json_int_t)1729312551000, "received_at",
	                 (json_int_t)1729312551200);
}

static void test_from_json(void **state)
{
	(void)state;
	char err[300];
	struct agg_reading r;
	json_t *rec = reading_json();
	assert_int_equal(agg_reading_from_json(rec, &r, err, sizeof(err)), 0);
	assert_int_equal(r.key[AGG_SITE].len, 3);
	assert_memory_equal(r.key[AGG_METRIC].s, "pressure", 8);
	assert_memory_equal(r.unit.s, "BAR", 3);
	assert_true(r.value == 120.5);
	assert_int_equal(r.ts, 1729312551000);

	/* An integer value is a number too. */
	json_object_set_new(rec, "value", json_integer(7));
	assert_int_equal(agg_reading_from_json(rec, &r, err, sizeof(err)), 0);
	assert_true(r.value == 7.0);

	json_object_del(rec, "device");
	assert_int_equal(agg_reading_from_json(rec, &r, err, sizeof(err)), -1);
	assert_string_equal(err, "Reading.device: missing");
	json_object_set_new(rec, "device", json_integer(1004));
	assert_int_equal(agg_reading_from_json(rec, &r, err, sizeof(err)), -1);
	assert_string_equal(err, "Reading.device: expected a string");
	json_object_set_new(rec, "device", json_string("1004"));

	json_object_set_new(rec, "ts", json_real(1.5));
	assert_int_equal(agg_reading_from_json(rec, &r, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "Reading.ts"));
	json_object_set_new(rec, "ts", json_integer(AGG_TS_LIMIT + 1));
	assert_int_equal(agg_reading_from_json(rec, &r, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "outside the accepted range"));
	json_object_set_new(rec, "ts", json_integer(-AGG_TS_LIMIT));
	assert_int_equal(agg_reading_from_json(rec, &r, err, sizeof(err)), 0);

	json_object_set_new(rec, "value", json_real(1e200));
	assert_int_equal(agg_reading_from_json(rec, &r, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "Reading.value"));
	json_object_set_new(rec, "value", json_string("1"));
	assert_int_equal(agg_reading_from_json(rec, &r, err, sizeof(err)), -1);
	json_object_set_new(rec, "value", json_real(1));

	char big[AGG_FIELD_MAX + 2];
	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = 0;
	json_object_set_new(rec, "sensor", json_string(big));
	assert_int_equal(agg_reading_from_json(rec, &r, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "Reading.sensor"));
	big[AGG_FIELD_MAX] = 0;
	json_object_set_new(rec, "sensor", json_string(big));
	assert_int_equal(agg_reading_from_json(rec, &r, err, sizeof(err)), 0);

	assert_int_equal(agg_reading_from_json(json_array_get(rec, 0), &r, err, sizeof(err)), -1);
	json_decref(rec);
}

static void test_utf8(void **state)
{
	(void)state;
	assert_true(agg_utf8_valid("", 0));
	assert_true(agg_utf8_valid("k\xc3\xbc"
	                           "che",
	                           6));                     /* ü */
	assert_true(agg_utf8_valid("\xe2\x82\xac", 3));     /* € */
	assert_true(agg_utf8_valid("\xf0\x9f\x8c\xa1", 4)); /* U+1F321 */
	assert_true(agg_utf8_valid("a\0b", 3));
	assert_false(agg_utf8_valid("\xc3", 1));             /* truncated */
	assert_false(agg_utf8_valid("\xc0\xaf", 2));         /* overlong */
	assert_false(agg_utf8_valid("\xed\xa0\x80", 3));     /* surrogate */
	assert_false(agg_utf8_valid("\xf4\x90\x80\x80", 4)); /* beyond U+10FFFF */
	assert_false(agg_utf8_valid("\xff", 1));
	assert_false(agg_utf8_valid("\xe2\x28\xa1", 3));
}

static void test_meta_roundtrip(void **state)
{
	(void)state;
	char err[300], text[AGG_META_MAX];
	struct agg_meta in[] = {
	    {.has_wm = true, .wm = 1729312560000, .next = 1234},
	    {.has_wm = false, .next = 0},
	    {.has_wm = true,
	     .wm = -120000,
	     .next = 7,
	     .has_adv = true,
	     .adv_wm = -60000,
	     .adv_at = 5},
	    {.has_wm = true,
	     .wm = INT64_MIN + 1,
	     .next = INT64_MAX,
	     .has_adv = true,
	     .adv_wm = INT64_MAX,
	     .adv_at = INT64_MAX},
	};
	for (size_t i = 0; i < sizeof(in) / sizeof(*in); i++) {
		struct agg_meta out;
		agg_meta_format(&in[i], text, sizeof(text));
		assert_int_equal(agg_meta_parse(text, &out, err, sizeof(err)), 0);
		assert_int_equal(out.has_wm, in[i].has_wm);
		if (in[i].has_wm)
			assert_int_equal(out.wm, in[i].wm);
		assert_int_equal(out.next, in[i].next);
		assert_int_equal(out.has_adv, in[i].has_adv);
		if (in[i].has_adv) {
			assert_int_equal(out.adv_wm, in[i].adv_wm);
			assert_int_equal(out.adv_at, in[i].adv_at);
		}
	}
	agg_meta_format(&in[0], text, sizeof(text));
	assert_string_equal(text, "wm=1729312560000;next=1234");
	agg_meta_format(&in[1], text, sizeof(text));
	assert_string_equal(text, "wm=-;next=0");
}

static void test_meta_malformed(void **state)
{
	(void)state;
	char err[300];
	struct agg_meta m = {.next = 99};
	assert_int_equal(agg_meta_parse(NULL, &m, err, sizeof(err)), 0);
	assert_false(m.has_wm);
	assert_int_equal(m.next, -1);
	assert_int_equal(agg_meta_parse("", &m, err, sizeof(err)), 0);

	const char *bad[] = {
	    "wm=1",
	    "wm=;next=1",
	    "wm=x;next=1",
	    "next=1;wm=2",
	    "wm=1;next=-1",
	    "wm=1;next=1;",
	    "wm=1;next=1;adv=2",
	    "wm=1;next=1;adv=2@",
	    "wm=1;next=1;adv=2@3x",
	    "wm=99999999999999999999;next=1",
	    "wm=1;next=1 ",
	    "wm= 1;next=1",
	    "wm=1;next=+1",
	    "wm=1;next=1;adv=2@-3",
	    "{\"wm\":1}",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		m.next = 42;
		if (agg_meta_parse(bad[i], &m, err, sizeof(err)) != -1)
			fail_msg("accepted \"%s\"", bad[i]);
		assert_non_null(strstr(err, "commit metadata"));
		assert_int_equal(m.next, 42);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_group_by_parse), cmocka_unit_test(test_from_json),
	    cmocka_unit_test(test_utf8),           cmocka_unit_test(test_meta_roundtrip),
	    cmocka_unit_test(test_meta_malformed),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
