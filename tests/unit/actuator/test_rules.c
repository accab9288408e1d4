/* The rules file: the accepted format, every error message with its line, and matching. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "helpers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define HEADER "[rule r]\nmetric = temperature\n"
#define COMMANDS                                                                                   \
	"low = 20\nhigh = 25\ntopic = {site}/{device}/set\nlow_payload = on\nhigh_payload = off\n"

static void parse_fails(const char *text, const char *want)
{
	char err[512] = "";
	struct ruleset *rs = rules_parse("test.rules", text, err, sizeof(err));
	if (rs) {
		rules_free(rs);
		fail_msg("parsed but should fail with: %s\n---\n%s", want, text);
	}
	if (strcmp(err, want) != 0)
		fail_msg("error\n  got:  %s\n  want: %s\n---\n%s", err, want, text);
}

static void test_every_error(void **state)
{
	(void)state;
	static const char *const cases[][2] = {
	    {"", "test.rules: no rules (a rule starts with \"[rule NAME]\")"},
	    {"# only a comment\n\n", "test.rules: no rules (a rule starts with \"[rule NAME]\")"},
	    {"[rule r\n", "test.rules:1: section header must end with ']'"},
	    {"[heating]\n", "test.rules:1: expected \"[rule NAME]\""},
	    {"[rule]\n", "test.rules:1: expected \"[rule NAME]\""},
	    {"[rule a b]\n",
	     "test.rules:1: invalid rule name \"a b\" (1 to 128 letters, digits, '_', '-' or '.')"},
	    {"[rule r]\nmetric temperature\n",
	     "test.rules:2: expected \"[rule NAME]\", \"key = value\", a comment or a blank line"},
	    {HEADER "lwo = 20\n", "test.rules:3: unknown key \"lwo\""},
	    {"metric = temperature\n",
	     "test.rules:1: \"metric\" outside a rule: start one with \"[rule NAME]\""},
	    {HEADER "metric = pressure\n",
	     "test.rules:3: \"metric\" given twice in rule \"r\" (first at line 2)"},
	    {HEADER "threshold = 1\n[rule r]\nmetric = x\nthreshold = 2\n",
	     "test.rules:4: duplicate rule \"r\" (first defined at line 1)"},
	    {"[rule r]\nthreshold = 1\n",
	     "test.rules:1: rule \"r\": missing \"metric\" (which readings the rule watches)"},
	    {"[rule r]\nmetric =\nthreshold = 1\n", "test.rules:2: metric: must not be empty"},
	    {HEADER "site =\nthreshold = 1\n", "test.rules:3: site: empty pattern (use * for any)"},
	    {HEADER "device = a\\\nthreshold = 1\n",
	     "test.rules:3: device: pattern ends with a lone '\\'"},
	    {HEADER "sensor = t\\\nthreshold = 1\n",
	     "test.rules:3: sensor: pattern ends with a lone '\\'"},
	    {HEADER, "test.rules:1: rule \"r\": does nothing: give low/high (commands) or "
	             "threshold (events), or both"},
	    {HEADER "high = 25\n",
	     "test.rules:1: rule \"r\": missing \"low\" (commands need low, high, topic and both "
	     "payloads)"},
	    {HEADER "low = 20\n",
	     "test.rules:1: rule \"r\": missing \"high\" (commands need low, high, topic and both "
	     "payloads)"},
	    {HEADER "qos = 1\n",
	     "test.rules:1: rule \"r\": missing \"low\" (commands need low, high, topic and both "
	     "payloads)"},
	    {HEADER "low = 20\nhigh = 25\nhigh_payload = off\n",
	     "test.rules:1: rule \"r\": missing \"low_payload\" (commands need low, high, topic "
	     "and both payloads)"},
	    {HEADER "low = 20\nhigh = 25\nlow_payload = on\n",
	     "test.rules:1: rule \"r\": missing \"high_payload\" (commands need low, high, topic "
	     "and both payloads)"},
	    {HEADER "low = 20\nhigh = 25\nlow_payload = on\nhigh_payload = off\nlow_topic = a\n",
	     "test.rules:1: rule \"r\": missing \"topic\" (or \"low_topic\" and \"high_topic\")"},
	    {HEADER COMMANDS "high_topic = x\n",
	     "test.rules:8: \"high_topic\" conflicts with \"topic\" (line 5)"},
	    {HEADER "low = warm\nhigh = 25\ntopic = t\nlow_payload = on\nhigh_payload = off\n",
	     "test.rules:3: low: expected a finite number, got \"warm\""},
	    {HEADER "low = 20\nhigh = inf\ntopic = t\nlow_payload = on\nhigh_payload = off\n",
	     "test.rules:4: high: expected a finite number, got \"inf\""},
	    {HEADER "low = nan\nhigh = 1\ntopic = t\nlow_payload = on\nhigh_payload = off\n",
	     "test.rules:3: low: expected a finite number, got \"nan\""},
	    {HEADER "low = 1e999\nhigh = 1\ntopic = t\nlow_payload = on\nhigh_payload = off\n",
	     "test.rules:3: low: expected a finite number, got \"1e999\""},
	    {HEADER "low = 20 C\nhigh = 1\ntopic = t\nlow_payload = on\nhigh_payload = off\n",
	     "test.rules:3: low: expected a finite number, got \"20 C\""},
	    {HEADER "low = 25\nhigh = 20\ntopic = t\nlow_payload = on\nhigh_payload = off\n",
	     "test.rules:4: high (20) is below low (25)"},
	    {HEADER COMMANDS "payload_format = xml\n",
	     "test.rules:8: payload_format: expected auto, json or text, got \"xml\""},
	    {HEADER "low = 20\nhigh = 25\ntopic = {site}/+/set\nlow_payload = on\nhigh_payload = "
	            "off\n",
	     "test.rules:5: topic: '+' is not allowed in a topic (wildcards only subscribe)"},
	    {HEADER "low = 20\nhigh = 25\nlow_topic = a/{device}\nhigh_topic = b/{devcie}\n"
	            "low_payload = on\nhigh_payload = off\n",
	     "test.rules:6: high_topic: unknown placeholder {devcie} (known: {site} {device} "
	     "{sensor} {metric} {value} {rule})"},
	    {HEADER "low = 20\nhigh = 25\ntopic = {site}/{value}\nlow_payload = on\n"
	            "high_payload = off\n",
	     "test.rules:5: topic: {value} is not allowed in a topic"},
	    {HEADER "low = 20\nhigh = 25\ntopic = t\nlow_payload = {\"status\":\"1\"\n"
	            "high_payload = off\n",
	     "test.rules:6: low_payload: not valid JSON once filled in ('}' expected "
	     "near end of file): {\"status\":\"1\""},
	    {HEADER "low = 20\nhigh = 25\ntopic = t\nlow_payload = on\n"
	            "high_payload = {\"d\":{device}}\n",
	     "test.rules:7: high_payload: {device} must be inside a JSON string (\"{device}\"); "
	     "only {value} may stand alone"},
	    {HEADER COMMANDS "payload_format = json\n",
	     "test.rules:6: low_payload: not valid JSON once filled in (invalid token near "
	     "'on'): on"},
	    {HEADER COMMANDS "qos = 3\n", "test.rules:8: qos: expected 0, 1 or 2, got \"3\""},
	    {HEADER COMMANDS "qos = 01\n", "test.rules:8: qos: expected 0, 1 or 2, got \"01\""},
	    {HEADER COMMANDS "retain = maybe\n",
	     "test.rules:8: retain: expected true or false, got \"maybe\""},
	    {HEADER "hysteresis = 1\n",
	     "test.rules:1: rule \"r\": missing \"threshold\" (events need a threshold)"},
	    {HEADER "threshold = high\n",
	     "test.rules:3: threshold: expected a finite number, got \"high\""},
	    {HEADER "threshold = 1\nhysteresis = -1\n",
	     "test.rules:4: hysteresis: must not be negative"},
	    {HEADER "threshold = -1e308\nhysteresis = 1e308\n",
	     "test.rules:4: hysteresis: threshold - hysteresis is not finite"},
	    {HEADER "threshold = 1\nsite = caf\xC3\n", "test.rules:4: not valid UTF-8"},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++)
		parse_fails(cases[i][0], cases[i][1]);
}

/* The first error of the file is reported, and the rule before it does not leak. */
static void test_error_after_good_rule(void **state)
{
	(void)state;
	parse_fails("[rule ok]\nmetric = m\nthreshold = 1\n\n[rule bad]\nmetric = m\nlow = 1\n",
	            "test.rules:5: rule \"bad\": missing \"high\" (commands need low, high, topic "
	            "and both payloads)");
}

static char *write_temp(const void *data, size_t len)
{
	char *path = strdup("/tmp/actuator-rules-XXXXXX");
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, data, len), (ssize_t)len);
	close(fd);
	return path;
}

static void test_file_errors(void **state)
{
	(void)state;
	char err[512];
	assert_null(rules_load("/nonexistent/actuator.rules", err, sizeof(err)));
	assert_string_equal(err, "/nonexistent/actuator.rules: No such file or directory");

	static const char nul[] = "[rule r]\nmetric = m\nthreshold = 1\n\0[rule s]\n";
	char *path = write_temp(nul, sizeof(nul) - 1);
	assert_null(rules_load(path, err, sizeof(err)));
	assert_non_null(strstr(err, ": contains a NUL byte"));
	assert_int_equal(strncmp(err, path, strlen(path)), 0);
	unlink(path);
	free(path);

	size_t big = (1 << 20) + 10;
	char *blob = malloc(big);
	memset(blob, '#', big);
	path = write_temp(blob, big);
	free(blob);
	assert_null(rules_load(path, err, sizeof(err)));
	assert_non_null(strstr(err, ": larger than 1048576 bytes"));
	unlink(path);
	free(path);

	/* Errors carry the file's path. */
	static const char bad[] = "[rule r]\nmetric = m\nthreshold = x\n";
	path = write_temp(bad, sizeof(bad) - 1);
	assert_null(rules_load(path, err, sizeof(err)));
	char want[256];
	snprintf(want, sizeof(want), "%s:3: threshold: expected a finite number, got \"x\"", path);
	assert_string_equal(err, want);
	unlink(path);
	free(path);
}

/* The example shipped in the repository parses and means what its comments say. */
static void test_example_file(void **state)
{
	(void)state;
	char path[512];
	const char *here = __FILE__; /* tests/unit/actuator/test_rules.c */
	const char *cut = strstr(here, "tests/unit/actuator/");
	assert_non_null(cut);
	snprintf(path, sizeof(path), "%.*sexamples/rules/actuator.rules", (int)(cut - here), here);
	char err[512] = "";
	struct ruleset *rs = rules_load(path, err, sizeof(err));
	if (!rs)
		fail_msg("%s", err);
	const struct rule *h = rules_find(rs, "home-heating");
	assert_non_null(h);
	assert_true(h->has_commands);
	assert_false(h->has_events);
	assert_true(h->low == 20 && h->high == 25);
	assert_int_equal(h->qos, 1);
	assert_true(h->retain);
	assert_string_equal(tmpl_text(h->topic[SIDE_LOW]), "{site}/{device}/heatpump/set");
	assert_string_equal(tmpl_text(h->payload[SIDE_LOW]), "{\"status\":\"1\"}");
	assert_string_equal(tmpl_text(h->payload[SIDE_HIGH]), "{\"status\":\"0\"}");
	assert_int_equal(tmpl_kind_of(h->payload[SIDE_LOW]), TMPL_JSON);
	assert_true(rule_matches(h, "home-3", "kitchen", "t", "temperature"));
	assert_false(rule_matches(h, "101", "1004", "10034", "temperature"));
	const struct rule *f = rules_find(rs, "factory-overpressure");
	assert_non_null(f);
	assert_false(f->has_commands);
	assert_true(f->has_events);
	assert_true(f->threshold == 150 && f->hysteresis == 5);
	assert_true(rule_matches(f, "101", "1004", "10034", "pressure"));
	assert_null(rules_find(rs, "nope"));
	rules_free(rs);
}

static void test_format_details(void **state)
{
	(void)state;
	/* CRLF, ';' comments, indentation, '=' and '#' inside values, defaults, per-side topics. */
	const char *text = "; heating\r\n"
	                   "  [rule  r1 ]\r\n"
	                   "\tmetric=temperature\r\n"
	                   "low=-5.5\r\nhigh = 1e1\r\n"
	                   "low_topic = a/{device}\r\nhigh_topic = b/{device}\r\n"
	                   "low_payload = mode=heat #1\r\nhigh_payload = {value}\r\n"
	                   "retain = false\r\nqos = 0\r\n"
	                   "[rule r2]\nmetric = pressure\nthreshold = 3\n";
	struct ruleset *rs = rules_from(text);
	assert_int_equal(rs->len, 2);
	const struct rule *r = &rs->rules[0];
	assert_string_equal(r->name, "r1");
	assert_int_equal(r->line, 2);
	assert_true(r->low == -5.5 && r->high == 10);
	assert_int_equal(r->qos, 0);
	assert_false(r->retain);
	assert_string_equal(tmpl_text(r->topic[SIDE_LOW]), "a/{device}");
	assert_string_equal(tmpl_text(r->topic[SIDE_HIGH]), "b/{device}");
	assert_string_equal(tmpl_text(r->payload[SIDE_LOW]), "mode=heat #1");
	assert_int_equal(tmpl_kind_of(r->payload[SIDE_LOW]), TMPL_TEXT);
	assert_int_equal(tmpl_kind_of(r->payload[SIDE_HIGH]), TMPL_TEXT);
	assert_null(r->site);
	assert_true(rs->rules[1].has_events && rs->rules[1].hysteresis == 0);
	assert_false(rs->rules[1].has_commands);
	rules_free(rs);
	rules_free(NULL);

	/* low == high is allowed (no dead band); payload_format forces a kind. */
	rs = rules_from(HEADER "low = 20\nhigh = 20\ntopic = t\nlow_payload = {X}\n"
	                       "high_payload = [1]\npayload_format = text\n");
	assert_int_equal(tmpl_kind_of(rs->rules[0].payload[SIDE_HIGH]), TMPL_TEXT);
	rules_free(rs);
	rs = rules_from(HEADER "low = 20\nhigh = 21\ntopic = t\nlow_payload = 1\n"
	                       "high_payload = 0\npayload_format = json\n");
	assert_int_equal(tmpl_kind_of(rs->rules[0].payload[SIDE_LOW]), TMPL_JSON);
	rules_free(rs);
}

static void test_matching(void **state)
{
	(void)state;
	struct ruleset *rs = rules_from("[rule any]\nmetric = temperature\nthreshold = 1\n"
	                                "[rule star]\nmetric = temperature\nsite = *\ndevice = *\n"
	                                "sensor = *\nthreshold = 1\n"
	                                "[rule some]\nmetric = temperature\nsite = home-?\n"
	                                "device = bed*\nsensor = t\\*\nthreshold = 1\n");
	const struct rule *any = &rs->rules[0], *star = &rs->rules[1], *some = &rs->rules[2];
	assert_true(rule_matches(any, "x", "y", "z", "temperature"));
	assert_false(rule_matches(any, "x", "y", "z", "temperature2"));
	assert_false(rule_matches(any, "x", "y", "z", "Temperature"));
	assert_true(rule_matches(some, "home-1", "bedroom", "t*", "temperature"));
	assert_false(rule_matches(some, "home-12", "bedroom", "t*", "temperature"));
	assert_false(rule_matches(some, "home-1", "kitchen", "t*", "temperature"));
	assert_false(rule_matches(some, "home-1", "bedroom", "t1", "temperature"));
	/* "*" is stored as no pattern, so these two watch the same readings. */
	assert_true(rule_same_match(any, star));
	assert_false(rule_same_match(any, some));
	rules_free(rs);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_every_error),    cmocka_unit_test(test_error_after_good_rule),
	    cmocka_unit_test(test_file_errors),    cmocka_unit_test(test_example_file),
	    cmocka_unit_test(test_format_details), cmocka_unit_test(test_matching),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
