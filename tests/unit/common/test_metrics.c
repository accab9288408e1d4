/* Prometheus exposition text: names, labels (escaped), histograms cumulative with +Inf. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "metrics.h"

static void test_render(void **state)
{
	(void)state;
	char labels[128];
	metrics_label(labels, sizeof(labels), "reason", "value: \"bad\"\\x");
	struct metric *c = metrics_counter("t_total", "a counter", labels);
	assert_ptr_equal(c, metrics_counter("t_total", "a counter", labels));
	metric_add(c, 2);
	metric_add(c, 1.5);
	struct metric *g = metrics_gauge("t_gauge", "a gauge", NULL);
	metric_set(g, 7);
	const double b[] = {0.1, 1};
	struct metric *h = metrics_histogram("t_seconds", "a histogram", NULL, b, 2);
	metric_observe(h, 0.05);
	metric_observe(h, 0.5);
	metric_observe(h, 5);
	char *text = metrics_render();
	assert_non_null(text);
	assert_non_null(strstr(text, "# TYPE t_total counter\n"));
	assert_non_null(strstr(text, "t_total{reason=\"value: \\\"bad\\\"\\\\x\"} 3.5\n"));
	assert_non_null(strstr(text, "t_gauge 7\n"));
	assert_non_null(strstr(text, "t_seconds_bucket{le=\"0.1\"} 1\n"));
	assert_non_null(strstr(text, "t_seconds_bucket{le=\"1\"} 2\n"));
	assert_non_null(strstr(text, "t_seconds_bucket{le=\"+Inf\"} 3\n"));
	assert_non_null(strstr(text, "t_seconds_count 3\n"));
	free(text);
	metrics_shutdown();
}

int main(void)
{
	const struct CMUnitTest tests[] = {cmocka_unit_test(test_render)};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
