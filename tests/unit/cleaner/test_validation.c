/* Every rejection reason, hostile payloads and topics, and the options that tune validation. */
#include "cleaner_test.h"

#define HOME "home1/kitchen/temperature"
#define DAY_MS 86400000LL

static void test_payload_size_and_emptiness(void **state)
{
	(void)state;
	struct cleaner_opts o;
	cleaner_opts_default(&o);
	o.max_payload = 16;
	struct cleaner *c = cl_new_opts(&o);
	expect_reject(c, HOME, "{\"value\":21.123456}", CLEANER_PAYLOAD_TOO_LARGE,
	              "payload: 19 bytes, over max-payload 16");
	expect_reading(c, HOME, "{\"value\":21.125}", "home1", "kitchen", "temperature",
	               "temperature", "C", 21.125, NOW_MS);
	expect_reject(c, HOME, "", CLEANER_PAYLOAD_EMPTY, "payload: empty");
	expect_reject(c, HOME, " \r\n\t", CLEANER_PAYLOAD_EMPTY, "payload: empty");
	expect_reject(c, HOME, "[]", CLEANER_PAYLOAD_EMPTY, "payload: empty array");
	cleaner_free(c);
}

static void test_deep_nesting(void **state)
{
	(void)state;
	struct cleaner *c = cl_new();
	char p[4096];
	/* 33 levels of arrays, then 100000-deep in a bigger buffer: refused before parsing. */
	size_t n = 0;
	for (int i = 0; i < CLEANER_MAX_DEPTH + 1; i++)
		p[n++] = '[';
	p[n] = 0;
	expect_reject(c, HOME, p, CLEANER_PAYLOAD_TOO_DEEP, "nested deeper than 32");
	size_t big = 100000;
	char *q = malloc(big * 2 + 1);
	memset(q, '{', big);
	memset(q + big, '}', big);
	q[2 * big] = 0;
	expect_reject(c, HOME, q, CLEANER_PAYLOAD_TOO_DEEP, "nested deeper");
	free(q);
	/* Brackets inside strings are not nesting. */
	n = (size_t)snprintf(p, sizeof(p), "{\"value\":20,\"note\":\"");
	for (int i = 0; i < 100; i++)
		p[n++] = '[';
	snprintf(p + n, sizeof(p) - n, "\\\"{{{\"}");
	expect_reading(c, HOME, p, "home1", "kitchen", "temperature", "temperature", "C", 20,
	               NOW_MS);
	/* 32 levels are allowed (and then fail for what they are, not for depth). */
	n = 0;
	for (int i = 0; i < CLEANER_MAX_DEPTH; i++)
		p[n++] = '[';
	for (int i = 0; i < CLEANER_MAX_DEPTH; i++)
		p[n++] = ']';
	p[n] = 0;
	struct cleaner_result res;
	assert_int_equal(cleaner_result_init(&res), 0);
	run(c, HOME, p, &res);
	assert_int_equal(res.code, CLEANER_FORMAT_UNKNOWN);
	cleaner_result_free(&res);
	cleaner_free(c);
}

static void test_malformed_and_non_utf8(void **state)
{
	(void)state;
	struct cleaner *c = cl_new();
	expect_reject(c, HOME, "{\"value\":", CLEANER_JSON_MALFORMED, "payload: invalid JSON: ");
	expect_reject(c, HOME, "21.5 C", CLEANER_JSON_MALFORMED, "invalid JSON");
	expect_reject(c, HOME, "{\"value\":21,\"value\":100}", CLEANER_JSON_MALFORMED,
	              "duplicate object key");
	expect_reject(c, HOME, "{\"value\":21,\"x\":\"caf\xC3\"}", CLEANER_PAYLOAD_NOT_UTF8,
	              "invalid UTF-8");
	expect_reject(c, HOME, "\xFF\xFE{}", CLEANER_PAYLOAD_NOT_UTF8, "invalid UTF-8");
	/* Reasons stay printable ASCII whatever the payload held. */
	struct cleaner_result res;
	assert_int_equal(cleaner_result_init(&res), 0);
	run(c, HOME, "{\"v\x01\xC3\xA9\":1", &res);
	for (const char *p = res.reason; *p; p++)
		assert_true(*p >= 0x20 && *p < 0x7F);
	/* Raw bytes: a NUL in the payload. */
	json_t *raw = raw_newn(HOME, "{\"value\":2\0}", 12, NOW_MS);
	assert_int_equal(cleaner_process(c, raw, NOW_MS, &res), 0);
	assert_int_equal(res.code, CLEANER_JSON_MALFORMED);
	assert_string_equal(res.reason, "payload: NUL byte at 10");
	json_decref(raw);
	cleaner_result_free(&res);
	cleaner_free(c);
}

static void test_nan_infinity_and_huge_numbers(void **state)
{
	(void)state;
	struct cleaner *c = cl_new();
	expect_reject(c, HOME, "NaN", CLEANER_VALUE_NOT_FINITE,
	              "value: not a finite number: \"NaN\"");
	expect_reject(c, HOME, " -Infinity\n", CLEANER_VALUE_NOT_FINITE, "\"-Infinity\"");
	expect_reject(c, HOME, "inf", CLEANER_VALUE_NOT_FINITE, "not a finite number");
	expect_reject(c, HOME, "\"nan\"", CLEANER_VALUE_NOT_FINITE, "not a finite number");
	expect_reject(c, HOME, "{\"value\":\"Infinity\"}", CLEANER_VALUE_NOT_FINITE,
	              "value: not a finite number: \"Infinity\"");
	expect_reject(c, HOME, "{\"value\":\"1e999\"}", CLEANER_VALUE_NOT_FINITE,
	              "not a finite number");
	/* Not JSON, but what broken sensors write: named as such, wherever it is. */
	expect_reject(c, HOME, "{\"value\":NaN}", CLEANER_VALUE_NOT_FINITE,
	              "value: not a finite number: \"NaN\" at byte 9 (not valid JSON)");
	expect_reject(c, HOME, "[1, {\"value\":-Infinity}]", CLEANER_VALUE_NOT_FINITE,
	              "\"Infinity\" at byte 14");
	/* ... but not inside strings, nor any other bare word. */
	expect_reject(c, HOME, "{\"note\":\"NaN\",\"value\":}", CLEANER_JSON_MALFORMED,
	              "invalid JSON");
	expect_reject(c, HOME, "{\"value\":nano}", CLEANER_JSON_MALFORMED, "invalid JSON");
	/* Overflowing literals: jansson refuses them; so do we, with its reason. */
	expect_reject(c, HOME, "{\"value\":1e400}", CLEANER_JSON_MALFORMED, "overflow");
	expect_reject(c, HOME, "{\"value\":123456789012345678901234567890}", CLEANER_JSON_MALFORMED,
	              "too big");
	/* Large but finite: a question of range. */
	expect_reject(c, HOME, "{\"value\":1e300}", CLEANER_VALUE_OUT_OF_RANGE,
	              "value: 1e+300 C is outside the temperature range [-100, 200]");
	expect_reading(c, "s/d/energy", "1.7976931348623157e308", "s", "d", "energy", "energy",
	               "kWh", 1.7976931348623157e308, NOW_MS);
	expect_reading(c, "s/d/energy", "4.9e-324", "s", "d", "energy", "energy", "kWh", 4.9e-324,
	               NOW_MS);
	/* A huge timestamp is not a time. */
	expect_reject(c, HOME, "{\"value\":20,\"timestamp\":1e30}", CLEANER_TS_INVALID,
	              "ts: not a valid time");
	/* INT64_MAX read as ns is the year 2262. */
	expect_reject(c, HOME, "{\"value\":20,\"timestamp\":9223372036854775807}",
	              CLEANER_TS_FUTURE, "days in the future");
	cleaner_free(c);
}

static void test_value_reasons(void **state)
{
	(void)state;
	struct cleaner *c = cl_new();
	expect_reject(c, HOME, "{\"value\":\"warm\"}", CLEANER_VALUE_NOT_NUMBER,
	              "value: not a number: \"warm\"");
	expect_reject(c, HOME, "{\"value\":true}", CLEANER_VALUE_NOT_NUMBER,
	              "value: not a number: true");
	expect_reject(c, HOME, "{\"value\":null}", CLEANER_VALUE_NOT_NUMBER, "null");
	expect_reject(c, HOME, "{\"value\":{\"c\":1}}", CLEANER_VALUE_NOT_NUMBER, "an object");
	expect_reject(c, HOME, "{\"value\":\" 21\"}", CLEANER_VALUE_NOT_NUMBER, "not a number");
	expect_reject(
	    c, "f", "{\"metadata\":{\"siteId\":1,\"deviceId\":2,\"sensorId\":3,\"unit\":\"BAR\"}}",
	    CLEANER_VALUE_MISSING, "value: missing");
	/* The home sensors' error value, however it is written. */
	expect_reject(c, HOME, "{\"value\":100.0}", CLEANER_VALUE_ERROR_CODE,
	              "value: 100 is a known error value of temperature");
	expect_reject(c, HOME, "100", CLEANER_VALUE_ERROR_CODE, "known error value");
	expect_reject(c, HOME, "{\"temperature\":1e2}", CLEANER_VALUE_ERROR_CODE, "known error");
	expect_reading(c, HOME, "{\"value\":100.01}", "home1", "kitchen", "temperature",
	               "temperature", "C", 100.01, NOW_MS);
	/* Checked in C: 212 F is 100 C. */
	expect_reject(c, "s/d", "{\"sensor_id\":\"x\",\"temperature\":212,\"unit\":\"F\"}",
	              CLEANER_VALUE_ERROR_CODE, "known error value");
	expect_reject(c, HOME, "{\"value\":250}", CLEANER_VALUE_OUT_OF_RANGE,
	              "value: 250 C is outside the temperature range [-100, 200]");
	expect_reject(c, "s/d", "{\"sensor_id\":\"x\",\"temperature\":-10,\"unit\":\"K\"}",
	              CLEANER_VALUE_OUT_OF_RANGE, "-283.15 C is outside");
	expect_reject(c, "h/bath/humidity", "101", CLEANER_VALUE_OUT_OF_RANGE,
	              "outside the humidity range [0, 100]");
	/* Defaults that hold whatever unit the metric comes in. */
	expect_reject(c, "f",
	              "{\"metadata\":{\"siteId\":1,\"deviceId\":2,\"sensorId\":3,\"unit\":\"BAR\"},"
	              "\"measurement\":-1000000.0}",
	              CLEANER_VALUE_OUT_OF_RANGE,
	              "value: -1000000 BAR is outside the pressure range [-101325, inf]");
	expect_reject(c, "s/meters", "{\"sensor_id\":\"m\",\"sensor_energy_value\":-0.5}",
	              CLEANER_VALUE_OUT_OF_RANGE, "outside the energy range [0, inf]");
	expect_reject(c, "s/d/s1/co2", "-1000000.0", CLEANER_VALUE_OUT_OF_RANGE,
	              "outside the co2 range [0, 1000000]");
	expect_reject(c, "s/d/speed", "-1000000.0", CLEANER_VALUE_OUT_OF_RANGE,
	              "outside the speed range [-100000, 100000]");
	expect_reject(c, "s/d/voltage", "-1000000.0", CLEANER_VALUE_OUT_OF_RANGE,
	              "outside the voltage range [-100000, 100000]");
	expect_reading(c, "s/d/voltage", "-48", "s", "d", "voltage", "voltage", "V", -48, NOW_MS);
	cleaner_free(c);
}

static void test_unit_reasons(void **state)
{
	(void)state;
	struct cleaner *c = cl_new();
	expect_reject(c, HOME, "{\"value\":20,\"unit\":\"X\"}", CLEANER_UNIT_INVALID,
	              "unit: \"X\" is not a temperature unit (C, F or K)");
	expect_reject(c, HOME, "{\"value\":20,\"unit\":5}", CLEANER_UNIT_INVALID,
	              "unit: not a string: 5");
	expect_reject(c, "s/d/pressure", "{\"value\":2,\"unit\":\"b\\u0007ar\"}",
	              CLEANER_UNIT_INVALID, "unit: contains a control character");
	expect_reject(c, "s/d/pressure",
	              "{\"value\":2,\"unit\":\"bar bar bar bar bar bar bar bar bar bar\"}",
	              CLEANER_UNIT_INVALID, "unit: too long");
	/* Units may hold '/', unlike identifiers. */
	expect_reading(c, "s/d/flow", "{\"value\":2,\"unit\":\"m3/h\"}", "s", "d", "flow", "flow",
	               "m3/h", 2, NOW_MS);
	cleaner_free(c);
}

static void test_identifier_injection(void **state)
{
	(void)state;
	struct cleaner *c = cl_new();
	const char *ok = "{\"sensor_id\":\"t1\",\"temperature\":20}";
	/* Topic levels: MQTT brokers refuse wildcards in published topics, but the raw record may
	 * come from anywhere. */
	expect_reject(c, "home#/k", ok, CLEANER_ID_INVALID, "site: contains '#': \"home#\"");
	expect_reject(c, "h/k+", ok, CLEANER_ID_INVALID, "device: contains '+'");
	expect_reject(c, "h//x", ok, CLEANER_ID_INVALID, "device: empty");
	/* Payload identifiers. */
	expect_reject(c, "h/k", "{\"sensor_id\":\"a/b\",\"temperature\":20}", CLEANER_ID_INVALID,
	              "sensor: contains '/': \"a/b\"");
	expect_reject(c, "h/k", "{\"sensor_id\":\"#\",\"temperature\":20}", CLEANER_ID_INVALID,
	              "sensor: contains '#'");
	expect_reject(c, "h/k", "{\"sensor_id\":\"x+y\",\"temperature\":20}", CLEANER_ID_INVALID,
	              "sensor: contains '+'");
	expect_reject(c, "h/k", "{\"sensor_id\":\"a\\u0000b\",\"temperature\":20}",
	              CLEANER_ID_INVALID, "sensor: contains NUL: \"a\\x00b\"");
	expect_reject(c, "h/k", "{\"sensor_id\":\"a\\nb\",\"temperature\":20}", CLEANER_ID_INVALID,
	              "sensor: contains a control character");
	expect_reject(c, "h/k", "{\"sensor_id\":\"a\\u0085b\",\"temperature\":20}",
	              CLEANER_ID_INVALID, "control character");
	expect_reject(c, "h/k", "{\"sensor_id\":\"\",\"temperature\":20}", CLEANER_ID_INVALID,
	              "sensor: empty");
	expect_reject(c, "h/k", "{\"sensor_id\":1.5,\"temperature\":20}", CLEANER_ID_INVALID,
	              "sensor: not a string or integer: 1.5");
	expect_reject(c, "h/k", "{\"sensor_id\":[1],\"temperature\":20}", CLEANER_ID_INVALID,
	              "not a string or integer");
	expect_reject(c, "f",
	              "{\"metadata\":{\"deviceId\":2,\"sensorId\":3,\"unit\":\"BAR\"},"
	              "\"measurement\":1}",
	              CLEANER_ID_MISSING, "site: missing");
	expect_reject(c, "f", "{\"metadata\":5,\"measurement\":1}", CLEANER_ID_INVALID,
	              "metadata: not an object");
	/* 128 bytes pass, 129 do not. */
	char id[200], p[400];
	memset(id, 'x', 128);
	id[128] = 0;
	snprintf(p, sizeof(p), "{\"sensor_id\":\"%s\",\"temperature\":20}", id);
	expect_reading(c, "h/k", p, "h", "k", id, "temperature", "C", 20, NOW_MS);
	id[128] = 'x';
	id[129] = 0;
	snprintf(p, sizeof(p), "{\"sensor_id\":\"%s\",\"temperature\":20}", id);
	expect_reject(c, "h/k", p, CLEANER_ID_INVALID, "sensor: too long (129 bytes, max 128)");
	/* Multi-byte UTF-8 is fine in identifiers. */
	expect_reading(c,
	               "K\xC3\xB6ln/k\xC3\xBC"
	               "che/temperature",
	               "20", "K\xC3\xB6ln",
	               "k\xC3\xBC"
	               "che",
	               "temperature", "temperature", "C", 20, NOW_MS);
	/* Invalid UTF-8 in the topic. */
	expect_reject(c, "h\xC0\xAF/k/temperature", "20", CLEANER_ID_INVALID,
	              "site: invalid UTF-8: \"h\\xC0\\xAF\"");
	expect_reject(c, "h/k/te\xED\xA0\x80mp", "20", CLEANER_ID_INVALID, "sensor: invalid UTF-8");
	/* device_type is not an MQTT level, but still printable text. */
	expect_reject(c, "f",
	              "{\"metadata\":{\"siteId\":1,\"deviceId\":2,\"sensorId\":3,\"unit\":\"BAR\","
	              "\"deviceType\":7},\"measurement\":1}",
	              CLEANER_ID_INVALID, "device_type: not a string: 7");
	cleaner_free(c);
}

static void test_topic_unmapped(void **state)
{
	(void)state;
	struct cleaner *c = cl_new();
	expect_reject(c, "kitchen/temperature", "21", CLEANER_TOPIC_UNMAPPED,
	              "topic: expected site/device/metric or site/device/sensor/metric, got 2 "
	              "levels");
	expect_reject(c, "a/b/c/d/e", "{\"value\":1}", CLEANER_TOPIC_UNMAPPED, "got 5 levels");
	expect_reject(c, "meters", "{\"sensor_id\":\"m\",\"sensor_energy_value\":1}",
	              CLEANER_TOPIC_UNMAPPED, "topic: expected site/device/..., got 1 level");
	cleaner_free(c);
}

static void test_ts_window(void **state)
{
	(void)state;
	struct cleaner *c = cl_new();
	char p[128];
	snprintf(p, sizeof(p), "{\"value\":20,\"timestamp\":%lld}", NOW_MS + 2 * DAY_MS + 5000);
	expect_reject(c, HOME, p, CLEANER_TS_FUTURE,
	              "ts: 2 days in the future (max-skew 5 minutes)");
	snprintf(p, sizeof(p), "{\"value\":20,\"timestamp\":%lld}", NOW_MS + 300000);
	expect_reading(c, HOME, p, "home1", "kitchen", "temperature", "temperature", "C", 20,
	               NOW_MS + 300000);
	snprintf(p, sizeof(p), "{\"value\":20,\"timestamp\":%lld}", NOW_MS + 300001);
	expect_reject(c, HOME, p, CLEANER_TS_FUTURE, "ts: 5 minutes in the future");
	snprintf(p, sizeof(p), "{\"value\":20,\"timestamp\":%lld}", NOW_MS - 7 * DAY_MS);
	expect_reading(c, HOME, p, "home1", "kitchen", "temperature", "temperature", "C", 20,
	               NOW_MS - 7 * DAY_MS);
	snprintf(p, sizeof(p), "{\"value\":20,\"timestamp\":%lld}", NOW_MS - 7 * DAY_MS - 1);
	expect_reject(c, HOME, p, CLEANER_TS_TOO_OLD, "ts: 7 days old (max-age 7 days)");
	expect_reject(c, HOME, "{\"value\":20,\"timestamp\":\"2024-01-01T00:00:00Z\"}",
	              CLEANER_TS_TOO_OLD, "ts: 671 days old");
	expect_reject(c, HOME, "{\"value\":20,\"timestamp\":\"yesterday\"}", CLEANER_TS_INVALID,
	              "ts: not a valid time: \"yesterday\"");
	expect_reject(c, HOME, "{\"value\":20,\"timestamp\":\"2025-13-01T00:00:00Z\"}",
	              CLEANER_TS_INVALID, "ts: not a valid time");
	expect_reject(c, HOME, "{\"value\":20,\"timestamp\":-5}", CLEANER_TS_INVALID,
	              "ts: not a valid time: -5");
	expect_reject(c, HOME, "{\"value\":20,\"timestamp\":true}", CLEANER_TS_INVALID,
	              "ts: not a time: true");
	/* The window is measured from now, also for received_at. */
	struct cleaner_result res;
	assert_int_equal(cleaner_result_init(&res), 0);
	json_t *raw = raw_new(HOME, "{\"value\":20}");
	assert_int_equal(cleaner_process(c, raw, NOW_MS + 8 * DAY_MS, &res), 0);
	assert_int_equal(res.code, CLEANER_TS_TOO_OLD);
	assert_string_equal(res.reason, "ts: 8 days old (max-age 7 days)");
	json_decref(raw);
	cleaner_result_free(&res);
	cleaner_free(c);

	/* Back-fill: a larger max-age lets last year's data in. */
	struct cleaner_opts o;
	cleaner_opts_default(&o);
	o.max_age_ms = 800 * DAY_MS;
	o.max_skew_ms = 0;
	c = cl_new_opts(&o);
	expect_reading(c, HOME, "{\"value\":20,\"timestamp\":\"2024-01-01T00:00:00Z\"}", "home1",
	               "kitchen", "temperature", "temperature", "C", 20, 1704067200000LL);
	snprintf(p, sizeof(p), "{\"value\":20,\"timestamp\":%lld}", NOW_MS + 1);
	expect_reject(c, HOME, p, CLEANER_TS_FUTURE, "ts: 1 ms in the future (max-skew 0 ms)");
	cleaner_free(c);
}

static void test_location_reasons(void **state)
{
	(void)state;
	struct cleaner *c = cl_new();
	const char *fmt = "{\"metadata\":{\"siteId\":1,\"deviceId\":2,\"sensorId\":3,\"unit\":"
	                  "\"BAR\"},\"measurement\":1,\"location\":%s}";
	struct {
		const char *loc, *reason;
	} cases[] = {
	    {"{\"latitude\":95,\"longitude\":1}", "location: latitude 95 outside [-90, 90]"},
	    {"{\"latitude\":5,\"longitude\":-180.5}", "longitude -180.5 outside [-180, 180]"},
	    {"{\"latitude\":5,\"longitude\":\"east\"}", "longitude \"east\" is not a number"},
	    {"{\"latitude\":5}", "location: latitude without longitude"},
	    {"{\"alt\":5}", "location: no latitude/longitude"},
	    {"\"here\"", "location: not an object"},
	};
	char p[512];
	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		snprintf(p, sizeof(p), fmt, cases[i].loc);
		expect_reject(c, "f", p, CLEANER_LOCATION_INVALID, cases[i].reason);
	}
	snprintf(p, sizeof(p), fmt, "null");
	expect_reading(c, "f", p, "1", "2", "3", "pressure", "BAR", 1, NOW_MS);
	snprintf(p, sizeof(p), fmt, "{\"lat\":\"-33.86\",\"lon\":151.21}");
	expect_reading(c, "f", p, "1", "2", "3", "pressure", "BAR", 1, NOW_MS);
	cleaner_free(c);
}

static void test_raw_invalid(void **state)
{
	(void)state;
	struct cleaner *c = cl_new();
	struct cleaner_result res;
	assert_int_equal(cleaner_result_init(&res), 0);
	json_t *raw = json_pack("{s:s, s:i}", "topic", "a/b/c", "received_at", 1);
	assert_int_equal(cleaner_process(c, raw, NOW_MS, &res), 0);
	assert_int_equal(res.code, CLEANER_RAW_INVALID);
	json_decref(raw);
	cleaner_result_free(&res);
	cleaner_free(c);
}

static void test_range_and_error_options(void **state)
{
	(void)state;
	struct cleaner_opts o;
	cleaner_opts_default(&o);
	const char *ranges[] = {"temperature=-20:50", "energy=0:", "pressure=:10"};
	const char *errors[] = {"temperature=-127,85", "temperature=3", "humidity="};
	o.ranges = (struct strlist){ranges, 3};
	o.error_values = (struct strlist){errors, 3};
	struct cleaner *c = cl_new_opts(&o);
	expect_reject(c, HOME, "60", CLEANER_VALUE_OUT_OF_RANGE,
	              "value: 60 C is outside the temperature range [-20, 50]");
	expect_reject(c, "s/d/energy", "-1", CLEANER_VALUE_OUT_OF_RANGE, "[0, inf]");
	expect_reading(c, "s/d/energy", "1e12", "s", "d", "energy", "energy", "kWh", 1e12, NOW_MS);
	expect_reject(c, "s/d/pressure", "11", CLEANER_VALUE_OUT_OF_RANGE, "[-inf, 10]");
	/* The error-value options replace temperature's default, and add up. */
	expect_reject(c, HOME, "85", CLEANER_VALUE_ERROR_CODE, "85 is a known error value");
	expect_reject(c, HOME, "3", CLEANER_VALUE_ERROR_CODE, "3 is a known error value");
	expect_reject(c, "x/y/temperature", "-127", CLEANER_VALUE_ERROR_CODE, "known error");
	o.ranges.len = 0;
	o.error_values = (struct strlist){(const char *[]){"temperature="}, 1};
	cleaner_free(c);
	c = cl_new_opts(&o);
	expect_reading(c, HOME, "100", "home1", "kitchen", "temperature", "temperature", "C", 100,
	               NOW_MS);
	cleaner_free(c);

	struct {
		const char *range, *error, *msg;
	} bad[] = {
	    {"temperature", NULL, "--range 'temperature': expected metric=..."},
	    {"temperature=5", NULL, "expected metric=min:max"},
	    {"temperature=a:5", NULL, "minimum is not a number"},
	    {"temperature=1:x", NULL, "maximum is not a number"},
	    {"temperature=9:5", NULL, "minimum is above maximum"},
	    {"Temperature=1:5", NULL, "metric names are lower case"},
	    {"a/b=1:5", NULL, "metric name contains '/'"},
	    {"=1:5", NULL, "metric name empty"},
	    {NULL, "temperature=1,,2", "'' is not a number"},
	    {NULL, "temperature=1,", "trailing comma"},
	    {NULL, "temperature=hot", "'hot' is not a number"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		cleaner_opts_default(&o);
		if (bad[i].range)
			o.ranges = (struct strlist){&bad[i].range, 1};
		if (bad[i].error)
			o.error_values = (struct strlist){&bad[i].error, 1};
		struct cleaner *x = NULL;
		char err[256];
		assert_int_equal(cleaner_new(&o, &x, err, sizeof(err)), -1);
		assert_null(x);
		if (!strstr(err, bad[i].msg))
			fail_msg("error '%s' lacks '%s'", err, bad[i].msg);
	}
	cleaner_opts_default(&o);
	const char *twice[] = {"energy=0:1", "energy=0:2"};
	o.ranges = (struct strlist){twice, 2};
	struct cleaner *x = NULL;
	char err[256];
	assert_int_equal(cleaner_new(&o, &x, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "metric given twice"));
	cleaner_opts_default(&o);
	o.max_payload = 0;
	assert_int_equal(cleaner_new(&o, &x, err, sizeof(err)), -1);
}

static void test_options_table_defaults_agree(void **state)
{
	(void)state;
	struct cleaner_opts o, d;
	struct opt t[] = {CLEANER_OPTS(&o)};
	cleaner_opts_default(&d);
	/* The table's default strings parse to what cleaner_opts_default sets. */
	for (size_t i = 0; i < sizeof(t) / sizeof(*t); i++) {
		long long v;
		if (!t[i].def)
			continue;
		if (t[i].type == OPT_SIZE) {
			assert_int_equal(config_parse_size(t[i].def, &v), 0);
			assert_int_equal(v, d.max_payload);
		} else if (t[i].type == OPT_DURATION) {
			assert_int_equal(config_parse_duration_ms(t[i].def, &v), 0);
			assert_true(v == d.max_age_ms || v == d.max_skew_ms);
			assert_true((strcmp(t[i].name, "max-age") == 0) == (v == d.max_age_ms));
		} else if (t[i].type == OPT_INT) {
			assert_int_equal(atoll(t[i].def), d.max_batch);
		} else if (t[i].type == OPT_STRING) {
			assert_string_equal(t[i].def, d.format);
		}
		assert_non_null(t[i].help);
	}
	assert_ptr_equal(t[0].dest, &o.format);
}

static void test_stats_count_by_reason(void **state)
{
	(void)state;
	struct cleaner *c = cl_new();
	struct cleaner_result res;
	assert_int_equal(cleaner_result_init(&res), 0);
	run(c, HOME, "21", &res);
	run(c, HOME, "100", &res);
	run(c, HOME, "[1, 100, \"x\", 100]", &res);
	run(c, HOME, "{", &res);
	const struct cleaner_stats *s = cleaner_stats(c);
	assert_int_equal(s->messages, 4);
	assert_int_equal(s->readings, 2);
	assert_int_equal(s->rejected[CLEANER_VALUE_ERROR_CODE], 3);
	assert_int_equal(s->rejected[CLEANER_VALUE_NOT_NUMBER], 0);
	assert_int_equal(s->rejected[CLEANER_FORMAT_UNKNOWN], 1);
	assert_int_equal(s->rejected[CLEANER_JSON_MALFORMED], 1);
	for (int i = 0; i < CLEANER_REASON_COUNT; i++)
		assert_non_null(cleaner_reason_code((enum cleaner_reason)i));
	assert_null(cleaner_reason_code(CLEANER_REASON_COUNT));
	cleaner_result_free(&res);
	cleaner_free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_payload_size_and_emptiness),
	    cmocka_unit_test(test_deep_nesting),
	    cmocka_unit_test(test_malformed_and_non_utf8),
	    cmocka_unit_test(test_nan_infinity_and_huge_numbers),
	    cmocka_unit_test(test_value_reasons),
	    cmocka_unit_test(test_unit_reasons),
	    cmocka_unit_test(test_identifier_injection),
	    cmocka_unit_test(test_topic_unmapped),
	    cmocka_unit_test(test_ts_window),
	    cmocka_unit_test(test_location_reasons),
	    cmocka_unit_test(test_raw_invalid),
	    cmocka_unit_test(test_range_and_error_options),
	    cmocka_unit_test(test_options_table_defaults_agree),
	    cmocka_unit_test(test_stats_count_by_reason),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
