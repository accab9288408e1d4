/* Built-in payload formats: detection, identity, units, timestamps and tags. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "cleaner_test.h"

#define TS_MIN_AGO (NOW_MS - 60000)

static void test_reading_fields_follow_schema(void **state)
{
	(void)state;
	struct cleaner *c = cl_new();
	struct cleaner_result res;
	assert_int_equal(cleaner_result_init(&res), 0);
	run(c, "home1/kitchen/temperature", "{\"value\":21.5}", &res);
	assert_fields_follow_schema(one_reading(&res), "schemas/Reading.avsc");
	cleaner_result_free(&res);
	cleaner_free(c);
}

static void test_factory_plain(void **state)
{
	(void)state;
	struct cleaner *c = cl_new();
	/* The architecture's example, cleaned a minute after it was measured. */
	struct cleaner_result res;
	assert_int_equal(cleaner_result_init(&res), 0);
	run_at(c, "factory/line1",
	       "{\"ts\":1729312551000,\"metadata\":{\"siteId\":101,\"deviceId\":1004,"
	       "\"sensorId\":10034,\"unit\":\"BAR\"},\"measurement\":120}",
	       1729312551000LL + 60000, &res);
	json_t *r = one_reading(&res);
	assert_reading_is(
	    r, (struct want){"101", "1004", "10034", "pressure", "BAR", 120.0, 1729312551000LL});
	assert_true(json_is_null(json_object_get(r, "location")));
	assert_true(json_is_null(json_object_get(r, "device_type")));
	assert_int_equal(json_object_size(json_object_get(r, "tags")), 0);
	cleaner_result_free(&res);
	cleaner_free(c);
}

static void test_factory_ts_human_and_location(void **state)
{
	(void)state;
	struct cleaner *c = cl_new();
	struct cleaner_result res;
	assert_int_equal(cleaner_result_init(&res), 0);
	run(c, "factory/line1",
	    "{\"ts\":1762077540000,\"ts_human\":\"2025-11-02T09:59:00Z\","
	    "\"location\":{\"latitude\":48.1374,\"longitude\":11.5755},"
	    "\"metadata\":{\"siteId\":\"munich\",\"deviceId\":\"press-7\",\"sensorId\":3,"
	    "\"unit\":\"C\"},\"measurement\":71.25}",
	    &res);
	json_t *r = one_reading(&res);
	assert_string_equal(field_str(r, "site"), "munich");
	assert_string_equal(field_str(r, "metric"), "temperature");
	assert_string_equal(field_str(r, "unit"), "C");
	json_t *loc = json_object_get(r, "location");
	assert_float_equal(json_real_value(json_object_get(loc, "lat")), 48.1374, 1e-12);
	assert_float_equal(json_real_value(json_object_get(loc, "lon")), 11.5755, 1e-12);
	/* ts_human restates ts: it is not a tag. */
	assert_int_equal(json_object_size(json_object_get(r, "tags")), 0);

	/* Without ts, ts_human is the time (no zone = UTC). */
	run(c, "f",
	    "{\"ts_human\":\"2025-11-02 09:58:30\",\"metadata\":{\"siteId\":1,\"deviceId\":2,"
	    "\"sensorId\":3,\"unit\":\"bar\"},\"measurement\":1.5}",
	    &res);
	r = one_reading(&res);
	assert_int_equal(json_integer_value(json_object_get(r, "ts")), NOW_MS - 90000);
	cleaner_result_free(&res);
	cleaner_free(c);
}

static void test_factory_device_type_and_tags(void **state)
{
	(void)state;
	struct cleaner *c = cl_new();
	struct cleaner_result res;
	assert_int_equal(cleaner_result_init(&res), 0);
	run(c, "f",
	    "{\"ts\":1762077540000,\"metadata\":{\"siteId\":101,\"deviceId\":1004,"
	    "\"sensorId\":10034,\"unit\":\"kWh\",\"deviceType\":\"Siemens S7-1500\","
	    "\"firmware\":\"2.9.4\",\"calib\":{\"offset\":0.25,\"ok\":true,\"by\":null}},"
	    "\"measurement\":5123,\"probes\":[7,8],\"location\":{\"latitude\":1,\"longitude\":2,"
	    "\"alt\":520}}",
	    &res);
	json_t *r = one_reading(&res);
	assert_string_equal(field_str(r, "device_type"), "Siemens S7-1500");
	assert_string_equal(field_str(r, "metric"), "energy");
	assert_string_equal(tag(r, "metadata.firmware"), "2.9.4");
	assert_string_equal(tag(r, "metadata.calib.offset"), "0.25");
	assert_string_equal(tag(r, "metadata.calib.ok"), "true");
	assert_null(tag(r, "metadata.calib.by"));
	assert_string_equal(tag(r, "probes.0"), "7");
	assert_string_equal(tag(r, "probes.1"), "8");
	assert_string_equal(tag(r, "location.alt"), "520");
	/* What became fields is not repeated as tags. */
	assert_null(tag(r, "metadata.siteId"));
	assert_null(tag(r, "metadata.deviceType"));
	assert_null(tag(r, "measurement"));
	assert_null(tag(r, "location.latitude"));
	assert_int_equal(json_object_size(json_object_get(r, "tags")), 6);
	cleaner_result_free(&res);
	cleaner_free(c);
}

static void test_factory_metric_naming(void **state)
{
	(void)state;
	struct cleaner *c = cl_new();
	const char *fmt = "{\"ts\":1762077540000,\"metadata\":{\"siteId\":1,\"deviceId\":2,"
	                  "\"sensorId\":3%s},\"measurement\":10%s}";
	struct {
		const char *md, *top, *metric, *unit;
		double value;
	} cases[] = {
	    {",\"unit\":\"BAR\"", "", "pressure", "BAR", 10},
	    {",\"unit\":\"psi\"", "", "pressure", "psi", 10},
	    {",\"unit\":\"%RH\"", "", "humidity", "%RH", 10},
	    {",\"unit\":\"F\"", "", "temperature", "C", -12.222222},
	    {",\"unit\":\"rpm\"", "", "speed", "rpm", 10},
	    {",\"unit\":\"furlongs\"", "", "measurement", "furlongs", 10},
	    {"", "", "measurement", "", 10},
	    {",\"unit\":\"l/min\",\"metric\":\"Coolant_Flow\"", "", "coolant_flow", "l/min", 10},
	    {",\"unit\":\"BAR\"", ",\"metric\":\"oil_pressure\"", "oil_pressure", "BAR", 10},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		char p[512];
		snprintf(p, sizeof(p), fmt, cases[i].md, cases[i].top);
		expect_reading(c, "f", p, "1", "2", "3", cases[i].metric, cases[i].unit,
		               cases[i].value, TS_MIN_AGO);
	}
	cleaner_free(c);
}

static void test_home_temperature(void **state)
{
	(void)state;
	struct cleaner *c = cl_new();
	const char *t = "home1/kitchen/temperature";
	expect_reading(c, t, "{\"timestamp\":\"2025-11-02T10:00:00Z\",\"value\":21.3}", "home1",
	               "kitchen", "temperature", "temperature", "C", 21.3, NOW_MS);
	/* No zone: UTC. */
	expect_reading(c, t, "{\"timestamp\":\"2025-11-02T09:59:00\",\"value\":21.3}", "home1",
	               "kitchen", "temperature", "temperature", "C", 21.3, TS_MIN_AGO);
	/* Offsets: 11:00+01:00 and 04:00-06:00 are 10:00Z. */
	expect_reading(c, t, "{\"timestamp\":\"2025-11-02T11:00:00+01:00\",\"value\":20}", "home1",
	               "kitchen", "temperature", "temperature", "C", 20, NOW_MS);
	expect_reading(c, t, "{\"timestamp\":\"2025-11-02T04:00:00.250-0600\",\"value\":20}",
	               "home1", "kitchen", "temperature", "temperature", "C", 20, NOW_MS + 250);
	/* The value may be called temperature. */
	expect_reading(c, t, "{\"timestamp\":\"2025-11-02T10:00:00Z\",\"temperature\":19.75}",
	               "home1", "kitchen", "temperature", "temperature", "C", 19.75, NOW_MS);
	/* No time: received_at. */
	expect_reading(c, t, "{\"value\":22}", "home1", "kitchen", "temperature", "temperature",
	               "C", 22, NOW_MS);
	/* Epoch ms and seconds are understood too. */
	expect_reading(c, t, "{\"timestamp\":1762077540000,\"value\":22}", "home1", "kitchen",
	               "temperature", "temperature", "C", 22, TS_MIN_AGO);
	expect_reading(c, t, "{\"timestamp\":1762077540,\"value\":22}", "home1", "kitchen",
	               "temperature", "temperature", "C", 22, TS_MIN_AGO);
	/* Other metrics and a sensor level follow the same topic convention. */
	expect_reading(c, "home1/bath/humidity", "{\"value\":61}", "home1", "bath", "humidity",
	               "humidity", "%", 61, NOW_MS);
	expect_reading(c, "home1/bath/probe2/Temperature", "{\"value\":23,\"unit\":\"F\"}", "home1",
	               "bath", "probe2", "temperature", "C", -5, NOW_MS);
	cleaner_free(c);
}

static void test_home_tags(void **state)
{
	(void)state;
	struct cleaner *c = cl_new();
	struct cleaner_result res;
	assert_int_equal(cleaner_result_init(&res), 0);
	run(c, "h/r/temperature", "{\"value\":21,\"battery\":87,\"rssi\":-71.5,\"fw\":\"1.2\"}",
	    &res);
	json_t *r = one_reading(&res);
	assert_string_equal(tag(r, "battery"), "87");
	assert_string_equal(tag(r, "rssi"), "-71.5");
	assert_string_equal(tag(r, "fw"), "1.2");
	assert_null(tag(r, "value"));
	cleaner_result_free(&res);
	cleaner_free(c);
}

static void test_power_meter(void **state)
{
	(void)state;
	struct cleaner *c = cl_new();
	struct cleaner_result res;
	assert_int_equal(cleaner_result_init(&res), 0);
	/* The architecture's example, cleaned the next day (within max-age). */
	run_at(c, "plant-north/meters/energy",
	       "{\"sensor_id\":\"dev1\",\"sensor_energy_value\":412.5,"
	       "\"sensor_timestamp\":\"2024-01-01 00:01:00\"}",
	       1704067260000LL + 86400000, &res);
	assert_reading_is(one_reading(&res),
	                  (struct want){"plant-north", "meters", "dev1", "energy", "kWh", 412.5,
	                                1704067260000LL});
	cleaner_result_free(&res);
	/* A unit in the payload wins; a meter id may be a number. */
	expect_reading(c, "s1/m1", "{\"sensor_id\":7,\"sensor_energy_value\":3,\"unit\":\"Wh\"}",
	               "s1", "m1", "7", "energy", "Wh", 3, NOW_MS);
	cleaner_free(c);
}

static void test_temperature_units(void **state)
{
	(void)state;
	struct cleaner *c = cl_new();
	const char *t = "lab/fridge";
	expect_reading(c, t,
	               "{\"sensor_id\":\"t-17\",\"timestamp\":1762077540000,\"temperature\":71.6,"
	               "\"unit\":\"F\"}",
	               "lab", "fridge", "t-17", "temperature", "C", 22.0, TS_MIN_AGO);
	expect_reading(c, t,
	               "{\"sensor_id\":\"t-17\",\"timestamp\":1762077540000,\"temperature\":-40,"
	               "\"unit\":\"F\"}",
	               "lab", "fridge", "t-17", "temperature", "C", -40.0, TS_MIN_AGO);
	expect_reading(c, t, "{\"sensor_id\":\"t-18\",\"temperature\":293.15,\"unit\":\"K\"}",
	               "lab", "fridge", "t-18", "temperature", "C", 20.0, NOW_MS);
	expect_reading(c, t, "{\"sensor_id\":\"t-19\",\"temperature\":4.5,\"unit\":\"C\"}", "lab",
	               "fridge", "t-19", "temperature", "C", 4.5, NOW_MS);
	expect_reading(c, t, "{\"sensor_id\":\"t-19\",\"temperature\":4.5,\"unit\":\"celsius\"}",
	               "lab", "fridge", "t-19", "temperature", "C", 4.5, NOW_MS);
	expect_reading(c, t, "{\"sensor_id\":\"t-19\",\"temperature\":4.5}", "lab", "fridge",
	               "t-19", "temperature", "C", 4.5, NOW_MS);
	/* Exact: 71.6 F is 22 C, not 21.999999999999996. */
	struct cleaner_result res;
	assert_int_equal(cleaner_result_init(&res), 0);
	run(c, t, "{\"sensor_id\":\"x\",\"temperature\":71.6,\"unit\":\"F\"}", &res);
	assert_true(json_real_value(json_object_get(one_reading(&res), "value")) == 22.0);
	cleaner_result_free(&res);
	cleaner_free(c);
}

static void test_bare_number(void **state)
{
	(void)state;
	struct cleaner *c = cl_new();
	expect_reading(c, "home1/kitchen/temperature", "21.5", "home1", "kitchen", "temperature",
	               "temperature", "C", 21.5, NOW_MS);
	expect_reading(c, "site9/boiler/flow-in/pressure", " 2.25\n", "site9", "boiler", "flow-in",
	               "pressure", "", 2.25, NOW_MS);
	expect_reading(c, "site9/boiler/power", "-1200", "site9", "boiler", "power", "power", "W",
	               -1200, NOW_MS);
	/* Numeric text sent as a JSON string. */
	expect_reading(c, "site9/boiler/power", "\"1.5e3\"", "site9", "boiler", "power", "power",
	               "W", 1500, NOW_MS);
	cleaner_free(c);
}

static void test_forced_format(void **state)
{
	(void)state;
	struct cleaner_opts o;
	cleaner_opts_default(&o);
	o.format = "power";
	struct cleaner *c = cl_new_opts(&o);
	expect_reading(c, "s/d", "{\"sensor_id\":\"m\",\"sensor_energy_value\":1}", "s", "d", "m",
	               "energy", "kWh", 1, NOW_MS);
	/* Forced, a home payload is not guessed at: the power fields are missing. */
	expect_reject(c, "s/d/temperature", "{\"value\":21}", CLEANER_ID_MISSING,
	              "sensor: missing");
	expect_reject(c, "s/d/temperature", "21", CLEANER_FORMAT_UNKNOWN, "needs an object");
	cleaner_free(c);

	o.format = "bare";
	c = cl_new_opts(&o);
	expect_reject(c, "s/d/temperature", "{\"value\":21}", CLEANER_FORMAT_UNKNOWN,
	              "bare format needs a number");
	cleaner_free(c);

	o.format = "csv";
	struct cleaner *bad = NULL;
	char err[256];
	assert_int_equal(cleaner_new(&o, &bad, err, sizeof(err)), -1);
	assert_null(bad);
	assert_non_null(strstr(err, "--format 'csv'"));
}

static void test_detection_order(void **state)
{
	(void)state;
	json_t *j;
	struct {
		const char *json;
		enum cleaner_format f;
	} cases[] = {
	    {"{\"metadata\":{},\"measurement\":1,\"value\":2}", CLEANER_FORMAT_FACTORY},
	    {"{\"sensor_energy_value\":1,\"sensor_id\":\"a\",\"temperature\":3}",
	     CLEANER_FORMAT_POWER},
	    {"{\"sensor_id\":\"a\",\"temperature\":3,\"value\":1}", CLEANER_FORMAT_TEMPERATURE},
	    {"{\"temperature\":3}", CLEANER_FORMAT_HOME},
	    {"{\"value\":3}", CLEANER_FORMAT_HOME},
	    {"2.5", CLEANER_FORMAT_BARE},
	    {"\"2.5\"", CLEANER_FORMAT_BARE},
	    {"\"NaN\"", CLEANER_FORMAT_BARE},
	    {"\"hello\"", CLEANER_FORMAT_AUTO},
	    {"{\"v\":1}", CLEANER_FORMAT_AUTO},
	    {"[1]", CLEANER_FORMAT_AUTO},
	    {"null", CLEANER_FORMAT_AUTO},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		j = json_loads(cases[i].json, JSON_DECODE_ANY, NULL);
		assert_non_null(j);
		if (format_detect(j) != cases[i].f)
			fail_msg("%s detected as %d", cases[i].json, format_detect(j));
		json_decref(j);
	}
}

static void test_unknown_format_names_keys(void **state)
{
	(void)state;
	struct cleaner *c = cl_new();
	expect_reject(c, "a/b/c", "{\"temp_c\":21,\"dev\":\"x\"}", CLEANER_FORMAT_UNKNOWN,
	              "no known format has the keys \"temp_c\", \"dev\"");
	expect_reject(c, "a/b/c", "{}", CLEANER_FORMAT_UNKNOWN, "(none)");
	expect_reject(c, "a/b/c", "true", CLEANER_FORMAT_UNKNOWN, "no known format is true");
	expect_reject(c, "a/b/c", "\"on\"", CLEANER_FORMAT_UNKNOWN, "\"on\"");
	cleaner_free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_reading_fields_follow_schema),
	    cmocka_unit_test(test_factory_plain),
	    cmocka_unit_test(test_factory_ts_human_and_location),
	    cmocka_unit_test(test_factory_device_type_and_tags),
	    cmocka_unit_test(test_factory_metric_naming),
	    cmocka_unit_test(test_home_temperature),
	    cmocka_unit_test(test_home_tags),
	    cmocka_unit_test(test_power_meter),
	    cmocka_unit_test(test_temperature_units),
	    cmocka_unit_test(test_bare_number),
	    cmocka_unit_test(test_forced_format),
	    cmocka_unit_test(test_detection_order),
	    cmocka_unit_test(test_unknown_format_names_keys),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
