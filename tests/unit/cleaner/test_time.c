/* Event-time parsing: ISO 8601 with and without zones, epoch numbers of every unit, durations. */
#include "cleaner_test.h"

#include <math.h>

static int64_t iso(const char *s)
{
	int64_t ms = -1;
	if (ts_parse_iso(s, strlen(s), &ms))
		return INT64_MIN;
	return ms;
}

static void test_iso_zones(void **state)
{
	(void)state;
	const int64_t t = 1762077600000LL; /* 2025-11-02T10:00:00Z */
	assert_int_equal(iso("2025-11-02T10:00:00Z"), t);
	assert_int_equal(iso("2025-11-02t10:00:00z"), t);
	assert_int_equal(iso("2025-11-02T10:00:00"), t); /* no zone: UTC */
	assert_int_equal(iso("2025-11-02 10:00:00"), t); /* the power meters' form */
	assert_int_equal(iso("2025-11-02T10:00Z"), t);   /* no seconds */
	assert_int_equal(iso("2025-11-02T11:00:00+01:00"), t);
	assert_int_equal(iso("2025-11-02T11:00:00+0100"), t);
	assert_int_equal(iso("2025-11-02T11:00:00+01"), t);
	assert_int_equal(iso("2025-11-02T15:30:00+05:30"), t);
	assert_int_equal(iso("2025-11-02T02:00:00-08:00"), t);
	assert_int_equal(iso("2025-11-01T23:00:00-11:00"), t); /* crosses the date */
	assert_int_equal(iso("2025-11-02T10:00:00.5Z"), t + 500);
	assert_int_equal(iso("2025-11-02T10:00:00,25Z"), t + 250);
	assert_int_equal(iso("2025-11-02T10:00:00.123456789Z"), t + 123);
	assert_int_equal(iso("2025-11-02T10:00:00.999+00:00"), t + 999);
	assert_int_equal(iso("1970-01-01T00:00:00Z"), 0);
	assert_int_equal(iso("2000-02-29T00:00:00Z"), 951782400000LL);
	assert_int_equal(iso("2024-02-29T12:00:00Z"), 1709208000000LL);
	assert_int_equal(iso("2016-12-31T23:59:60Z"), 1483228800000LL); /* leap second */
	assert_int_equal(iso("9999-12-31T23:59:59Z"), 253402300799000LL);
}

static void test_iso_invalid(void **state)
{
	(void)state;
	const char *bad[] = {
	    "",
	    "2025-11-02",
	    "2025-11-02T",
	    "2025-11-02T10",
	    "2025-11-02T10:00:00ZZ",
	    "2025-11-02T10:00:00 ",
	    "2025-13-02T10:00:00Z",
	    "2025-00-02T10:00:00Z",
	    "2025-02-29T10:00:00Z",
	    "1900-02-29T10:00:00Z",
	    "2025-04-31T10:00:00Z",
	    "2025-11-02T24:00:00Z",
	    "2025-11-02T10:60:00Z",
	    "2025-11-02T10:00:61Z",
	    "2025-11-02T10:00:00.Z",
	    "2025-11-02T10:00:00.1234567891Z",
	    "2025-11-02T10:00:00+5",
	    "2025-11-02T10:00:00+05:",
	    "2025-11-02T10:00:00+24:00",
	    "2025-11-02T10:00:00+05:60",
	    "25-11-02T10:00:00Z",
	    "2025/11/02T10:00:00Z",
	    "2025-11-02X10:00:00Z",
	    "+2025-11-02T10:00:00Z",
	    "1762077600000",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++)
		if (iso(bad[i]) != INT64_MIN)
			fail_msg("'%s' parsed as %lld", bad[i], (long long)iso(bad[i]));
	/* Length-bounded: bytes after len are not read. */
	int64_t ms;
	assert_int_equal(ts_parse_iso("2025-11-02T10:00:00Zjunk", 20, &ms), 0);
	assert_int_equal(ms, 1762077600000LL);
}

static void test_epoch_numbers(void **state)
{
	(void)state;
	int64_t ms;
	const int64_t t = 1762077600000LL;
	assert_int_equal(ts_from_number(1762077600.0, TS_AUTO, &ms), 0);
	assert_int_equal(ms, t);
	assert_int_equal(ts_from_number(1762077600.25, TS_AUTO, &ms), 0);
	assert_int_equal(ms, t + 250);
	assert_int_equal(ts_from_number(1762077600000.0, TS_AUTO, &ms), 0);
	assert_int_equal(ms, t);
	assert_int_equal(ts_from_number(1762077600000000.0, TS_AUTO, &ms), 0);
	assert_int_equal(ms, t);
	assert_int_equal(ts_from_number(1762077600000000000.0, TS_AUTO, &ms), 0);
	assert_int_equal(ms, t);
	/* Explicit units are taken as said, even when the magnitude suggests otherwise. */
	assert_int_equal(ts_from_number(5, TS_MS, &ms), 0);
	assert_int_equal(ms, 5);
	assert_int_equal(ts_from_number(1762077600, TS_S, &ms), 0);
	assert_int_equal(ms, t);
	assert_int_equal(ts_from_number(1762077600000000.0, TS_US, &ms), 0);
	assert_int_equal(ms, t);
	assert_int_equal(ts_from_number(-1, TS_AUTO, &ms), -1);
	assert_int_equal(ts_from_number(1e300, TS_MS, &ms), -1);
	assert_int_equal(ts_from_number(NAN, TS_AUTO, &ms), -1);
	assert_int_equal(ts_from_number(1, TS_ISO8601, &ms), -1);
}

static void test_ts_from_json(void **state)
{
	(void)state;
	struct verdict v;
	int64_t ms;
	json_t *j = json_integer(1762077600123LL);
	assert_int_equal(ts_from_json(j, TS_AUTO, &ms, &v), 0);
	assert_int_equal(ms, 1762077600123LL);
	json_decref(j);
	/* ns as an integer keeps its ms exactly (a double would round). */
	j = json_integer(1762077600123456789LL);
	assert_int_equal(ts_from_json(j, TS_AUTO, &ms, &v), 0);
	assert_int_equal(ms, 1762077600123LL);
	assert_int_equal(ts_from_json(j, TS_ISO8601, &ms, &v), -1);
	assert_int_equal(v.code, CLEANER_TS_INVALID);
	assert_non_null(strstr(v.text, "expected ISO 8601 text"));
	json_decref(j);
	j = json_integer(1762077600123999999LL);
	assert_int_equal(ts_from_json(j, TS_AUTO, &ms, &v), 0);
	assert_int_equal(ms, 1762077600123LL);
	assert_int_equal(ts_from_json(j, TS_MS, &ms, &v), -1);
	assert_int_equal(ts_from_json(j, TS_S, &ms, &v), -1);
	json_decref(j);
	j = json_string("1762077600");
	assert_int_equal(ts_from_json(j, TS_AUTO, &ms, &v), 0);
	assert_int_equal(ms, 1762077600000LL);
	assert_int_equal(ts_from_json(j, TS_S, &ms, &v), 0);
	assert_int_equal(ms, 1762077600000LL);
	assert_int_equal(ts_from_json(j, TS_ISO8601, &ms, &v), -1);
	json_decref(j);
	j = json_string("2025-11-02T10:00:00Z");
	assert_int_equal(ts_from_json(j, TS_MS, &ms, &v), -1);
	assert_string_equal(v.text, "ts: not a valid time: \"2025-11-02T10:00:00Z\"");
	json_decref(j);
	assert_int_equal(ts_from_json(json_null(), TS_AUTO, &ms, &v), -1);
	assert_string_equal(v.text, "ts: not a time: null");
}

static void test_unit_names(void **state)
{
	(void)state;
	assert_int_equal(ts_unit_parse("auto"), TS_AUTO);
	assert_int_equal(ts_unit_parse("ms"), TS_MS);
	assert_int_equal(ts_unit_parse("s"), TS_S);
	assert_int_equal(ts_unit_parse("us"), TS_US);
	assert_int_equal(ts_unit_parse("ns"), TS_NS);
	assert_int_equal(ts_unit_parse("iso8601"), TS_ISO8601);
	assert_int_equal(ts_unit_parse("seconds"), -1);
}

static void test_durations(void **state)
{
	(void)state;
	char b[48];
	struct {
		int64_t ms;
		const char *s;
	} cases[] = {
	    {0, "0 ms"},
	    {999, "999 ms"},
	    {1000, "1 second"},
	    {59999, "59 seconds"},
	    {60000, "1 minute"},
	    {300000, "5 minutes"},
	    {3600000, "1 hour"},
	    {86399999, "23 hours"},
	    {86400000, "1 day"},
	    {2 * 86400000LL + 5, "2 days"},
	    {-2 * 86400000LL, "2 days"},
	    {INT64_MIN, "106751991167 days"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		ts_duration_format(cases[i].ms, b, sizeof(b));
		assert_string_equal(b, cases[i].s);
	}
}

static void test_home_payload_zones(void **state)
{
	(void)state;
	/* End to end: the same instant written four ways gives one ts. */
	struct cleaner *c = cl_new();
	const char *p[] = {
	    "{\"timestamp\":\"2025-11-02T09:30:00Z\",\"value\":21}",
	    "{\"timestamp\":\"2025-11-02T09:30:00\",\"value\":21}",
	    "{\"timestamp\":\"2025-11-02T10:30:00+01:00\",\"value\":21}",
	    "{\"timestamp\":\"2025-11-02T04:30:00-05:00\",\"value\":21}",
	};
	for (size_t i = 0; i < sizeof(p) / sizeof(*p); i++)
		expect_reading(c, "h/r/temperature", p[i], "h", "r", "temperature", "temperature",
		               "C", 21, NOW_MS - 1800000);
	cleaner_free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_iso_zones),          cmocka_unit_test(test_iso_invalid),
	    cmocka_unit_test(test_epoch_numbers),      cmocka_unit_test(test_ts_from_json),
	    cmocka_unit_test(test_unit_names),         cmocka_unit_test(test_durations),
	    cmocka_unit_test(test_home_payload_zones),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
