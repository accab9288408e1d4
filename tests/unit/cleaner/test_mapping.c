/* Mapping files: JSON paths, topic filters, rules and their load-time errors. */
#include "cleaner_test.h"

#define FIXTURE "tests/fixtures/cleaner/mapping.conf"
#define FIXTURE_BAD "tests/fixtures/cleaner/mapping-bad.conf"

static struct cleaner *cl_mapping(const char *format)
{
	struct cleaner_opts o;
	cleaner_opts_default(&o);
	o.mapping = FIXTURE;
	if (format)
		o.format = format;
	return cl_new_opts(&o);
}

static void test_jpath(void **state)
{
	(void)state;
	json_t *doc = json_loads("{\"a\":{\"b\":[{\"c\":1},{\"c\":2}]},\"x.y\":3,\"q\\\"\":4,"
	                         "\"-\":[5,6,7]}",
	                         0, NULL);
	assert_non_null(doc);
	struct {
		const char *path;
		long long want; /* -1 = not found */
	} cases[] = {
	    {"$.a.b[0].c", 1},   {"$.a.b[1].c", 2}, {"$.a.b[-1].c", 2},  {"$.a.b[2].c", -1},
	    {"$.a.b[-3].c", -1}, {"$[\"x.y\"]", 3}, {"$[\"q\\\"\"]", 4}, {"$.-[2]", 7},
	    {"$.a.c", -1},       {"$.a[0]", -1},    {"$.a.b.c", -1},
	};
	char err[128];
	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		struct jpath p;
		if (jpath_compile(cases[i].path, strlen(cases[i].path), &p, err, sizeof(err)))
			fail_msg("%s: %s", cases[i].path, err);
		const json_t *j = jpath_eval(&p, doc);
		if (cases[i].want < 0)
			assert_null(j);
		else
			assert_int_equal(json_integer_value(j), cases[i].want);
		jpath_free(&p);
	}
	struct jpath p;
	assert_int_equal(jpath_compile("$", 1, &p, err, sizeof(err)), 0);
	assert_ptr_equal(jpath_eval(&p, doc), doc);
	jpath_free(&p);
	struct {
		const char *path, *err;
	} bad[] = {
	    {"", "a JSON path starts with '$'"},
	    {"a.b", "a JSON path starts with '$'"},
	    {"$.", "expected a name after '.' at column 2"},
	    {"$..a", "expected a name after '.' at column 2"},
	    {"$.a[", "expected [number] or [\"name\"] at column 4"},
	    {"$.a[x]", "expected [number] or [\"name\"] at column 4"},
	    {"$.a[1", "expected [number] or [\"name\"]"},
	    {"$[\"a", "unterminated [\"name\"] at column 2"},
	    {"$a", "unexpected 'a' at column 2"},
	    {"$.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a.a", "more than 16 steps"},
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		assert_int_equal(
		    jpath_compile(bad[i].path, strlen(bad[i].path), &p, err, sizeof(err)), -1);
		if (strcmp(err, bad[i].err) != 0 && !strstr(err, bad[i].err))
			fail_msg("%s: error '%s', want '%s'", bad[i].path, err, bad[i].err);
	}
	json_decref(doc);
}

static bool fm(const char *filter, const char *topic)
{
	struct topic t;
	topic_split(&t, topic, strlen(topic));
	return mapping_filter_matches(filter, &t);
}

static void test_filters(void **state)
{
	(void)state;
	assert_true(fm("a/b/c", "a/b/c"));
	assert_false(fm("a/b/c", "a/b"));
	assert_false(fm("a/b", "a/b/c"));
	assert_false(fm("a/b/c", "a/b/cd"));
	assert_true(fm("a/+/c", "a/xyz/c"));
	assert_true(fm("a/+/c", "a//c"));
	assert_false(fm("a/+/c", "a/b/c/d"));
	assert_false(fm("a/+", "a"));
	assert_true(fm("a/+", "a/"));
	assert_true(fm("a/#", "a"));
	assert_true(fm("a/#", "a/b/c/d"));
	assert_false(fm("a/#", "ab/c"));
	assert_true(fm("#", "x/y"));
	assert_true(fm("+/+/+", "x/y/z"));
	assert_true(fm("/+", "/x"));
	assert_false(fm("#", "$SYS/broker"));
	assert_false(fm("+/broker", "$SYS/broker"));
	assert_true(fm("$SYS/#", "$SYS/broker"));
	/* Topics deeper than the levels kept for identity still match. */
	assert_true(fm("a/#", "a/1/2/3/4/5/6/7/8/9/10/11/12/13/14/15/16/17/18/19/20/21/22/23/24/25/"
	                      "26/27/28/29/30/31/32/33/34"));
	assert_true(fm("a/+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/+/z",
	               "a/1/2/3/4/5/6/7/8/9/10/11/12/13/14/15/16/17/18/19/20/21/22/23/24/25/26/27/"
	               "28/29/30/31/32/33/z"));
}

static void test_fixture_rules(void **state)
{
	(void)state;
	struct cleaner *c = cl_mapping(NULL);
	struct cleaner_result res;
	assert_int_equal(cleaner_result_init(&res), 0);
	run(c, "acme/p7/press/left",
	    "{\"kind\":\"Pressure\",\"model\":\"HX-2\",\"time\":\"2025-11-02T09:59:00Z\","
	    "\"gps\":{\"lat\":52.52,\"lon\":13.4},\"fw\":\"9.1\","
	    "\"channels\":[{\"id\":\"c1\",\"v\":4.5,\"unit\":\"psi\"},{\"id\":\"c2\",\"v\":1}]}",
	    &res);
	json_t *r = one_reading(&res);
	assert_reading_is(
	    r, (struct want){"acme", "p7", "c1", "pressure", "psi", 4.5, NOW_MS - 60000});
	assert_string_equal(field_str(r, "device_type"), "HX-2");
	assert_float_equal(json_real_value(json_object_get(json_object_get(r, "location"), "lat")),
	                   52.52, 0);
	/* Used members are not tags; the rest are. */
	assert_string_equal(tag(r, "fw"), "9.1");
	assert_string_equal(tag(r, "channels.1.id"), "c2");
	assert_null(tag(r, "channels.0.v"));
	assert_null(tag(r, "kind"));
	assert_null(tag(r, "gps.lat"));
	assert_int_equal(json_object_size(json_object_get(r, "tags")), 3);

	/* Fallback constants. */
	run(c, "acme/p8/press", "{\"kind\":\"pressure\",\"channels\":[{\"v\":2}]}", &res);
	r = one_reading(&res);
	assert_string_equal(field_str(r, "sensor"), "ch0");
	assert_string_equal(field_str(r, "unit"), "bar");
	assert_int_equal(json_integer_value(json_object_get(r, "ts")), NOW_MS);

	/* Epoch seconds, a dotted key, Fahrenheit, tags off. */
	run(c, "weather/station-9",
	    "{\"sensor.id\":\"s1\",\"t\":68,\"u\":\"F\",\"epoch\":1762077540,\"battery\":3}", &res);
	r = one_reading(&res);
	assert_reading_is(
	    r, (struct want){"weather", "station-9", "s1", "temperature", "C", 20, NOW_MS - 60000});
	assert_int_equal(json_object_size(json_object_get(r, "tags")), 0);
	cleaner_result_free(&res);

	/* A rule that routes to a built-in format; unmatched topics keep auto-detection. */
	expect_reading(c, "legacy/s/d", "{\"sensor_id\":\"m\",\"sensor_energy_value\":9}", "legacy",
	               "s", "m", "energy", "kWh", 9, NOW_MS);
	expect_reject(c, "legacy/s/temperature", "{\"value\":21}", CLEANER_ID_MISSING,
	              "sensor: missing");
	expect_reading(c, "h/r/temperature", "{\"value\":21}", "h", "r", "temperature",
	               "temperature", "C", 21, NOW_MS);

	/* What the rule cannot find is a precise reason. */
	expect_reject(c, "acme/p7/press", "{\"kind\":\"pressure\",\"channels\":[]}",
	              CLEANER_VALUE_MISSING, "value: not found (rule acme-press: $.channels[0].v)");
	expect_reject(c, "acme/p7/press", "{\"channels\":[{\"v\":1}]}", CLEANER_ID_MISSING,
	              "metric: not found (rule acme-press: $.kind)");
	expect_reject(c, "acme/p7/press",
	              "{\"kind\":\"p\",\"channels\":[{\"v\":1}],\"time\":1762077540000}",
	              CLEANER_TS_INVALID, "ts: expected ISO 8601 text, got 1762077540000");
	expect_reject(c, "acme/p7/press",
	              "{\"kind\":\"p\",\"channels\":[{\"v\":1}],\"gps\":{\"lat\":1}}",
	              CLEANER_LOCATION_INVALID, "location: latitude without longitude");
	expect_reject(c, "acme/p7/press", "{\"kind\":\"a/b\",\"channels\":[{\"v\":1}]}",
	              CLEANER_ID_INVALID, "metric: contains '/'");
	cleaner_free(c);
}

static void test_mapping_beats_forced_format_and_splits_arrays(void **state)
{
	(void)state;
	struct cleaner *c = cl_mapping("bare");
	struct cleaner_result res;
	assert_int_equal(cleaner_result_init(&res), 0);
	run(c, "weather/w1",
	    "[{\"sensor.id\":\"a\",\"t\":50,\"u\":\"F\"},{\"sensor.id\":\"b\",\"t\":\"x\",\"u\":"
	    "\"C\"},"
	    "{\"sensor.id\":\"c\",\"t\":5,\"u\":\"C\"}]",
	    &res);
	assert_int_equal(json_array_size(res.readings), 2);
	assert_int_equal(res.code, CLEANER_VALUE_NOT_NUMBER);
	assert_string_equal(res.reason,
	                    "[1] value: not a number: \"x\" (1 of 3 elements rejected)");
	/* Outside the rules the forced format applies. */
	run(c, "s/d/temperature", "{\"value\":1}", &res);
	assert_int_equal(res.code, CLEANER_FORMAT_UNKNOWN);
	cleaner_result_free(&res);
	cleaner_free(c);
}

static void test_inline_rules_and_crlf(void **state)
{
	(void)state;
	struct cleaner_opts o;
	cleaner_opts_default(&o);
	o.mapping_text = "[r]\r\nmatch = x/#\r\nsite = topic[0]\r\ndevice = $.d\r\n"
	                 "sensor = $.s\r\nmetric = \"level\"\r\nunit = topic[-1] \r\n"
	                 "value = $.v\r\nts = $.t\r\nts_format = ms\r\ndevice_type = \"tank\"\r\n";
	struct cleaner *c = cl_new_opts(&o);
	struct cleaner_result res;
	assert_int_equal(cleaner_result_init(&res), 0);
	run(c, "x/cm", "{\"d\":7,\"s\":\"top\",\"v\":\"12.5\",\"t\":1762077540000}", &res);
	json_t *r = one_reading(&res);
	assert_string_equal(field_str(r, "device"), "7");
	assert_string_equal(field_str(r, "unit"), "cm");
	assert_string_equal(field_str(r, "device_type"), "tank");
	assert_float_equal(json_real_value(json_object_get(r, "value")), 12.5, 0);
	assert_int_equal(json_integer_value(json_object_get(r, "ts")), NOW_MS - 60000);
	cleaner_result_free(&res);
	cleaner_free(c);
}

static void expect_load_error(const char *text, const char *want)
{
	struct cleaner_opts o;
	cleaner_opts_default(&o);
	o.mapping_text = text;
	struct cleaner *c = NULL;
	char err[512];
	assert_int_equal(cleaner_new(&o, &c, err, sizeof(err)), -1);
	assert_null(c);
	if (!strstr(err, want))
		fail_msg("rules:\n%s\nerror '%s', want '%s'", text, err, want);
}

static void test_load_errors(void **state)
{
	(void)state;
	const char *full = "site=topic[0]\ndevice=topic[1]\nsensor=topic[2]\nmetric=\"m\"\n";
	char buf[512];
	struct {
		const char *text, *err;
	} cases[] = {
	    {"match = a/#\n", "<inline>:1: 'match' outside a rule (start one with a [name] line)"},
	    {"[r]\nmatch = a/#/b\n", "<inline>:2: match: '#' must be the whole last level"},
	    {"[r]\nmatch = a+/b\n", "<inline>:2: match: '+' must be a whole level"},
	    {"[r]\nmatch = a\nsite = $.a[\n",
	     "<inline>:3: site: JSON path '$.a[': expected [number] or [\"name\"] at column 4"},
	    {"[r]\nmatch = a\nsit = topic[0]\n", "<inline>:3: unknown key 'sit' (expected match"},
	    {"[r]\nmatch = a\nsite = topic[0]\nsite = topic[1]\n",
	     "<inline>:4: duplicate key 'site'"},
	    {"[r]\nmatch = a\nmatch = b\n", "<inline>:3: duplicate key 'match'"},
	    {"[r]\nmatch = a\nsite = topic[99]\n",
	     "<inline>:3: site: topic level 99 out of range (-32..31)"},
	    {"[r]\nmatch = a\nsite = topic[x]\n", "<inline>:3: site: expected topic[N]"},
	    {"[r]\nmatch = a\nsite = \"a/b\"\n", "<inline>:3: site: constant contains '/'"},
	    {"[r]\nmatch = a\nsite = \"\"\n", "<inline>:3: site: constant empty"},
	    {"[r]\nmatch = a\nvalue = \"5\"\n",
	     "<inline>:3: value: a constant is not allowed here"},
	    {"[r]\nmatch = a\nts = topic[1]\n",
	     "<inline>:3: ts: topic levels can give identifiers and units only"},
	    {"[r]\nmatch = a\nsite = topic[0]\n", "<inline>:1: rule 'r' has no 'device'"},
	    {"[r]\nsite = topic[0]\n", "<inline>:1: rule 'r' has no 'match'"},
	    {"[r]\nmatch = a\nformat = power\nsite = topic[0]\n",
	     "<inline>:1: rule 'r': 'format' cannot be combined with 'site'"},
	    {"[r]\nmatch = a\nformat = power\nts_format = s\n",
	     "<inline>:1: rule 'r': 'format' cannot be combined with 'ts_format'"},
	    {"[r]\nmatch = a\nformat = xml\n", "<inline>:3: format: unknown 'xml'"},
	    {"[r]\nmatch = a\nformat = auto\n", "<inline>:3: format: unknown 'auto'"},
	    {"[r]\nmatch = a\nts_format = weeks\n", "<inline>:3: ts_format: unknown 'weeks'"},
	    {"[r]\nmatch = a\ntags = some\n", "<inline>:3: tags: expected 'rest' or 'none'"},
	    {"[r]\nmatch = a\nformat = power\n\n[r]\nmatch = b\nformat = home\n",
	     "<inline>:5: rule 'r' already defined on line 1"},
	    {"[ ]\n", "<inline>:1: a rule needs a name: [name]"},
	    {"[r\n", "<inline>:1: expected '[name]'"},
	    {"[r]\njunk\n", "<inline>:2: expected 'key = value' or '[name]'"},
	    {"# only a comment\n\n", "<inline>: no rules (a rule starts with a [name] line)"},
	    {"", "<inline>: no rules"},
	    {"[r]\nmatch = a\nsite = topic[0] topic[1]\n",
	     "<inline>:3: site: unexpected 't' (alternatives are separated by '|')"},
	    {"[r]\nmatch = a\nsite = topic[0] |\n",
	     "<inline>:3: site: expected a source after '|'"},
	    {"[r]\nmatch = a\nsite = \"abc\n", "<inline>:3: site: unterminated \"constant\""},
	    {"[r]\nmatch = a\nsite = abc\n",
	     "<inline>:3: site: expected a JSON path ($.a.b), topic[N] or \"constant\""},
	    {"[r]\nmatch = a\nsite =\n", "<inline>:3: site: empty value"},
	    {"[r]\nmatch = a\nsite = $.a | $.b | $.c | $.d | $.e\n",
	     "<inline>:3: site: at most 4 alternatives"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++)
		expect_load_error(cases[i].text, cases[i].err);
	snprintf(buf, sizeof(buf), "[r]\nmatch = a\n%svalue = $.v\nlat = $.la\n", full);
	expect_load_error(buf, "<inline>:1: rule 'r': 'lat' and 'lon' go together");
	/* The same rule with lon is fine. */
	snprintf(buf, sizeof(buf), "[r]\nmatch = a\n%svalue = $.v\nlat = $.la\nlon = $.lo\n", full);
	struct cleaner_opts o;
	cleaner_opts_default(&o);
	o.mapping_text = buf;
	cleaner_free(cl_new_opts(&o));
}

static void test_file_errors(void **state)
{
	(void)state;
	struct cleaner_opts o;
	cleaner_opts_default(&o);
	struct cleaner *c = NULL;
	char err[512];
	o.mapping = FIXTURE_BAD;
	assert_int_equal(cleaner_new(&o, &c, err, sizeof(err)), -1);
	assert_string_equal(err, FIXTURE_BAD ":7: match: '#' must be the whole last level");
	o.mapping = "tests/fixtures/cleaner/no-such-file.conf";
	assert_int_equal(cleaner_new(&o, &c, err, sizeof(err)), -1);
	assert_string_equal(err,
	                    "tests/fixtures/cleaner/no-such-file.conf: No such file or directory");
	o.mapping = FIXTURE;
	o.mapping_text = "[r]\n";
	assert_int_equal(cleaner_new(&o, &c, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "exclude each other"));
	assert_null(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_jpath),
	    cmocka_unit_test(test_filters),
	    cmocka_unit_test(test_fixture_rules),
	    cmocka_unit_test(test_mapping_beats_forced_format_and_splits_arrays),
	    cmocka_unit_test(test_inline_rules_and_crlf),
	    cmocka_unit_test(test_load_errors),
	    cmocka_unit_test(test_file_errors),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
