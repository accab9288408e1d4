/* Topic metadata and creation against librdkafka's in-process mock cluster: existing topics
 * report their partitions, missing ones are told apart from a cluster that does not answer, and
 * creation through a cluster that does not serve CreateTopics fails within its timeout. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <string.h>
#include <time.h>

#include "target.h"

struct fixture {
	rd_kafka_t *mock_rk;
	rd_kafka_mock_cluster_t *mc;
	rd_kafka_t *producer;
	rd_kafka_t *consumer;
};

static rd_kafka_t *client(rd_kafka_type_t type, const char *bootstrap)
{
	char err[512];
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	rd_kafka_conf_set(conf, "bootstrap.servers", bootstrap, err, sizeof(err));
	rd_kafka_conf_set(conf, "log_level", "0", err, sizeof(err));
	if (type == RD_KAFKA_CONSUMER)
		rd_kafka_conf_set(conf, "group.id", "t", err, sizeof(err));
	rd_kafka_t *rk = rd_kafka_new(type, conf, err, sizeof(err));
	assert_non_null(rk);
	return rk;
}

static int setup(void **state)
{
	static struct fixture f;
	char err[512];
	rd_kafka_conf_t *conf = rd_kafka_conf_new();
	rd_kafka_conf_set(conf, "log_level", "0", err, sizeof(err));
	f.mock_rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
	assert_non_null(f.mock_rk);
	f.mc = rd_kafka_mock_cluster_new(f.mock_rk, 1);
	assert_non_null(f.mc);
	assert_int_equal(rd_kafka_mock_topic_create(f.mc, "six", 6, 1), 0);
	const char *bs = rd_kafka_mock_cluster_bootstraps(f.mc);
	f.producer = client(RD_KAFKA_PRODUCER, bs);
	f.consumer = client(RD_KAFKA_CONSUMER, bs);
	*state = &f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	rd_kafka_destroy(f->consumer);
	rd_kafka_destroy(f->producer);
	rd_kafka_mock_cluster_destroy(f->mc);
	rd_kafka_destroy(f->mock_rk);
	return 0;
}

static void test_exists(void **state)
{
	struct fixture *f = *state;
	char err[512];
	int n = 0;
	assert_int_equal(target_topic_exists(f->producer, "six", &n, 5000, err, sizeof(err)), 1);
	assert_int_equal(n, 6);
	assert_int_equal(target_topic_exists(f->producer, "absent", &n, 5000, err, sizeof(err)), 0);
	/* Asking for the list created nothing. */
	assert_int_equal(target_topic_exists(f->producer, "absent", &n, 5000, err, sizeof(err)), 0);
}

static void test_partitions(void **state)
{
	struct fixture *f = *state;
	char err[512];
	assert_int_equal(target_topic_partitions(f->consumer, "six", 5000, err, sizeof(err)), 6);
	assert_int_equal(target_topic_partitions(f->producer, "six", 5000, err, sizeof(err)), 6);
	/* Asking for a missing topic by name lets the embedded cluster create it (4 partitions by
	 * default; it does so for any client, where a real cluster only auto-creates for
	 * producers when allowed). */
	int n = 0;
	for (int i = 0; i < 20 && n <= 0; i++)
		n = target_topic_partitions(f->producer, "auto", 5000, err, sizeof(err));
	assert_int_equal(n, 4);
}

static void test_create_without_admin_api(void **state)
{
	struct fixture *f = *state;
	char err[512];
	struct timespec a, b;
	clock_gettime(CLOCK_MONOTONIC, &a);
	assert_int_equal(target_topic_create(f->producer, "made", 3, -1, 500, err, sizeof(err)), -1);
	clock_gettime(CLOCK_MONOTONIC, &b);
	assert_non_null(strstr(err, "cannot create made"));
	assert_true(b.tv_sec - a.tv_sec < 5);
	/* Bad arguments are refused before any request. */
	assert_int_equal(target_topic_create(f->producer, "bad", 0, -1, 500, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "cannot create bad"));
}

static void test_unreachable(void **state)
{
	(void)state;
	char err[512];
	int n = 0;
	rd_kafka_t *rk = client(RD_KAFKA_PRODUCER, "127.0.0.1:1");
	assert_int_equal(target_topic_exists(rk, "six", &n, 300, err, sizeof(err)), -1);
	assert_int_equal(target_topic_partitions(rk, "six", 300, err, sizeof(err)), 0);
	rd_kafka_destroy(rk);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_exists),
		cmocka_unit_test(test_partitions),
		cmocka_unit_test(test_create_without_admin_api),
		cmocka_unit_test(test_unreachable),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
