/* Table-driven configuration: precedence, parsing of each type, secrets and -X properties.
 * Usage errors exit(2), so those cases run in a child process. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "config.h"

static long long batch, window_ms, size, flush_ms;
static const char *in, *password;
static struct strlist filters;
static bool fast;
static double ratio;

static struct opt table[] = {
	{"batch", 'n', OPT_INT, &batch, "100", "N", "rows", 0, 1, 1000},
	{"window", 'w', OPT_DURATION, &window_ms, "60s", NULL, "window"},
	{"flush-ms", 0, OPT_DURATION, &flush_ms, "250", NULL, "flush interval"},
	{"max-bytes", 0, OPT_SIZE, &size, "1M", NULL, "bytes"},
	{"in", 0, OPT_STRING, &in, "iot.raw", "TOPIC", "input"},
	{"filter", 't', OPT_LIST, &filters, NULL, "F", "filters"},
	{"fast", 0, OPT_FLAG, &fast, NULL, NULL, "fast"},
	{"ratio", 0, OPT_DOUBLE, &ratio, "0.5", NULL, "ratio", 0, 0, 1},
	{"password", 0, OPT_STRING, &password, NULL, NULL, "secret", OPT_SECRET},
	{NULL},
};
static const struct config_spec spec = {"t", "test", NULL, table};

static void reset(void)
{
	config_free();
	batch = window_ms = size = 0;
	in = password = NULL;
	filters = (struct strlist){0};
	fast = false;
	ratio = 0;
	unsetenv("IOTPIPE_BATCH");
	unsetenv("IOTPIPE_FILTER");
	unsetenv("IOTPIPE_PASSWORD");
	unsetenv("IOTPIPE_PASSWORD_FILE");
	unsetenv("IOTPIPE_KAFKA_PROPS");
}

static void parse(int argc, char **argv)
{
	config_parse(&spec, argc, argv);
}

static void test_defaults_env_and_argv(void **state)
{
	(void)state;
	reset();
	char *a0[] = {"t", NULL};
	parse(1, a0);
	assert_int_equal(batch, 100);
	assert_int_equal(window_ms, 60000);
	assert_int_equal(size, 1048576);
	assert_int_equal(flush_ms, 250); /* bare numbers are ms for flags named *-ms */
	assert_string_equal(in, "iot.raw");
	assert_false(fast);
	reset();
	setenv("IOTPIPE_BATCH", "7", 1);
	setenv("IOTPIPE_FILTER", "a/#,b/+", 1);
	char *a1[] = {"t", "--window", "250ms", "--fast", "-X", "linger.ms=1", "--flush-ms", "2s", NULL};
	parse(8, a1);
	assert_int_equal(flush_ms, 2000);
	assert_int_equal(batch, 7);
	assert_int_equal(window_ms, 250);
	assert_true(fast);
	assert_int_equal(filters.len, 2);
	assert_string_equal(filters.items[1], "b/+");
	assert_int_equal(config_kafka_props()->len, 1);
	reset();
	setenv("IOTPIPE_BATCH", "7", 1);
	char *a2[] = {"t", "-n", "9", "-t", "x", "-t", "y", "-t", "z", NULL};
	parse(9, a2); /* argv wins over the environment */
	assert_int_equal(batch, 9);
	assert_int_equal(filters.len, 3);
	reset();
}

static void test_secret_from_env_and_file(void **state)
{
	(void)state;
	reset();
	setenv("IOTPIPE_PASSWORD", "s3cret", 1);
	char *a0[] = {"t", NULL};
	parse(1, a0);
	assert_string_equal(password, "s3cret");
	reset();
	char path[] = "/tmp/iotpipe-test-secret-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "fromfile\n", 9), 9);
	close(fd);
	char *a1[] = {"t", "--password-file", path, NULL};
	parse(3, a1);
	assert_string_equal(password, "fromfile");
	unlink(path);
	reset();
}

/* A properties file: comments and blank lines skipped, spaces around '=' allowed. */
static void test_kafka_config_file(void **state)
{
	(void)state;
	reset();
	char path[] = "/tmp/iotpipe-test-kafka-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	const char text[] = "# client settings\n\nlinger.ms=10\n  sasl.password = p w \nacks =all\n";
	assert_int_equal(write(fd, text, sizeof(text) - 1), (ssize_t)sizeof(text) - 1);
	close(fd);
	char *a0[] = {"t", "--kafka-config", path, NULL};
	parse(3, a0);
	const struct strlist *props = config_kafka_props();
	assert_int_equal(props->len, 3);
	assert_string_equal(props->items[0], "linger.ms=10");
	assert_string_equal(props->items[1], "sasl.password=p w");
	assert_string_equal(props->items[2], "acks=all");
	unlink(path);
	reset();
}

static void test_units(void **state)
{
	(void)state;
	long long v;
	assert_int_equal(config_parse_duration_ms("10s", &v), 0);
	assert_int_equal(v, 10000);
	assert_int_equal(config_parse_duration_ms("5m", &v), 0);
	assert_int_equal(v, 300000);
	assert_int_equal(config_parse_duration_ms("2", &v), 0);
	assert_int_equal(v, 2000);
	assert_int_equal(config_parse_duration_ms("1.5h", &v), 0);
	assert_int_equal(v, 5400000);
	assert_int_equal(config_parse_duration_ms("-1s", &v), -1);
	assert_int_equal(config_parse_duration_ms("10 s", &v), -1);
	assert_int_equal(config_parse_duration_ms("1e400s", &v), -1);
	assert_int_equal(config_parse_size("64k", &v), 0);
	assert_int_equal(v, 65536);
	assert_int_equal(config_parse_size("32MiB", &v), 0);
	assert_int_equal(v, 32 << 20);
	assert_int_equal(config_parse_size("lots", &v), -1);
	bool b;
	assert_int_equal(config_parse_bool("yes", &b), 0);
	assert_true(b);
	assert_int_equal(config_parse_bool("maybe", &b), -1);
}

/* Each bad command line must exit with status 2 (usage error) and say why. */
static void test_usage_errors_exit_2(void **state)
{
	(void)state;
	char *cases[][4] = {
		{"t", "--batch", "0", NULL},      {"t", "--batch", "12x", NULL},
		{"t", "--window", "soon", NULL},  {"t", "--nope", NULL, NULL},
		{"t", "--ratio", "2", NULL},      {"t", "--password", "x", NULL},
		{"t", "-X", "novalue", NULL},     {"t", "extra", NULL, NULL},
		{"t", "--batch", NULL, NULL},
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		int argc = 0;
		while (cases[i][argc])
			argc++;
		pid_t pid = fork();
		if (pid == 0) {
			freopen("/dev/null", "w", stderr);
			reset();
			parse(argc, cases[i]);
			_exit(0);
		}
		int st;
		waitpid(pid, &st, 0);
		if (!WIFEXITED(st) || WEXITSTATUS(st) != 2)
			fail_msg("case %zu (%s %s) should exit 2", i, cases[i][1],
				 cases[i][2] ? cases[i][2] : "");
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults_env_and_argv),
		cmocka_unit_test(test_secret_from_env_and_file),
		cmocka_unit_test(test_kafka_config_file),
		cmocka_unit_test(test_units),
		cmocka_unit_test(test_usage_errors_exit_2),
	};
	int rc = cmocka_run_group_tests(tests, NULL, NULL);
	config_free();
	return rc;
}
