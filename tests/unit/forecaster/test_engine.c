/* The engine: forecasts for the next window with exact error accounting; replays and gaps;
 * a restart that restores the state topic continues exactly as a run that never stopped (and a
 * cold start does measurably worse); the series cap; expiry with tombstones; invalid input. */
#include "fc_test.h"

#include "metrics.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

static struct fc_config config(enum model_kind k, struct test_sink *sink)
{
	return (struct fc_config){.model = k,
	                          .max_series = 100,
	                          .ttl_ms = 0,
	                          .z = 1.96,
	                          .series_gauges = 4,
	                          .emit = test_sink_emit,
	                          .emit_ctx = sink};
}

static struct fc_engine *engine(enum model_kind k, struct test_sink *sink)
{
	char err[256];
	struct fc_config c = config(k, sink);
	struct fc_engine *e = fc_engine_new(&c, err, sizeof(err));
	assert_non_null(e);
	return e;
}

/* The state topic of a test: the newest record per (partition, key), tombstones remove. */
#define TOPIC_MAX 64
struct topic {
	struct {
		int32_t part;
		char key[256];
		struct buf val;
		bool live;
	} r[TOPIC_MAX];
	int n;
	int tombstones;
	int refuse; /* the callback fails */
};

static int topic_put(void *ctx, int32_t partition, const char *key, size_t key_len, const void *val,
                     size_t val_len)
{
	struct topic *t = ctx;
	if (t->refuse)
		return -1;
	assert_true(key_len < 256);
	int i = 0;
	for (; i < t->n; i++)
		if (t->r[i].part == partition && strlen(t->r[i].key) == key_len &&
		    memcmp(t->r[i].key, key, key_len) == 0)
			break;
	if (i == t->n) {
		assert_true(t->n < TOPIC_MAX);
		t->n++;
		t->r[i].part = partition;
		memcpy(t->r[i].key, key, key_len);
		t->r[i].key[key_len] = '\0';
	}
	buf_reset(&t->r[i].val);
	t->r[i].live = val != NULL;
	if (val)
		buf_append(&t->r[i].val, val, val_len);
	else
		t->tombstones++;
	return 0;
}

static void topic_restore(struct topic *t, struct fc_engine *e)
{
	char err[256];
	for (int i = 0; i < t->n; i++)
		assert_int_equal(fc_engine_restore(e, t->r[i].part, t->r[i].key,
		                                   strlen(t->r[i].key),
		                                   t->r[i].live ? t->r[i].val.data : NULL,
		                                   t->r[i].val.len, err, sizeof(err)),
		                 STATE_OK);
}

static void topic_free(struct topic *t)
{
	for (int i = 0; i < t->n; i++)
		buf_free(&t->r[i].val);
}

static double num(const json_t *rec, const char *f)
{
	return json_number_value(json_object_get(rec, f));
}

static void test_forecasts_and_errors(void **state)
{
	(void)state;
	struct test_sink sink = {json_array(), 0};
	struct fc_engine *e = engine(MODEL_NAIVE, &sink);
	int64_t w = TEST_T0;
	assert_int_equal(test_feed(e, 0, "h", "power", w, 10), FC_USED);
	assert_int_equal(test_feed(e, 0, "h", "power", w + TEST_MINUTE, 12), FC_USED);
	assert_int_equal(test_feed(e, 0, "h", "power", w + 2 * TEST_MINUTE, 9), FC_USED);
	assert_int_equal(json_array_size(sink.out), 3);

	const json_t *f = json_array_get(sink.out, 2);
	assert_string_equal(json_string_value(json_object_get(f, "site")), "h");
	assert_string_equal(json_string_value(json_object_get(f, "metric")), "power");
	assert_string_equal(json_string_value(json_object_get(f, "unit")), "W");
	assert_string_equal(json_string_value(json_object_get(f, "model")), "naive");
	assert_int_equal(json_integer_value(json_object_get(f, "window_start")),
	                 w + 3 * TEST_MINUTE);
	assert_int_equal(json_integer_value(json_object_get(f, "window_ms")), TEST_MINUTE);
	assert_int_equal(json_integer_value(json_object_get(f, "horizon")), 1);
	assert_int_equal(json_integer_value(json_object_get(f, "made_at")), w + 3 * TEST_MINUTE);
	assert_true(num(f, "predicted") == 9);
	/* Too few residuals for an interval yet. */
	assert_true(json_is_null(json_object_get(f, "lower")));

	/* Forecast 10 for actual 12, then 12 for actual 9. */
	struct score_totals t;
	score_totals(fc_engine_score(e), &t);
	assert_int_equal(t.scored, 2);
	assert_int_equal(t.pct_scored, 2);
	assert_true(fabs(t.abs_sum - 5) < 1e-12);
	assert_true(fabs(t.pct_sum - (100.0 * 2 / 12 + 100.0 * 3 / 9)) < 1e-9);
	/* The metrics say the same. */
	char *page = metrics_render();
	assert_non_null(strstr(page, "iotpipe_forecaster_scored_total 2"));
	assert_non_null(strstr(page, "iotpipe_forecaster_mae 2.5"));
	assert_non_null(strstr(page, "iotpipe_forecaster_metric_mae{metric=\"power\"} 2.5"));
	assert_non_null(strstr(page, "iotpipe_forecaster_series_mae{site=\"h\",device=\"dev\","
	                             "sensor=\"s1\",metric=\"power\",window_ms=\"60000\"} 2.5"));
	free(page);

	/* An actual of 0 counts for MAE, not for MAPE. */
	assert_int_equal(test_feed(e, 0, "h", "power", w + 3 * TEST_MINUTE, 0), FC_USED);
	score_totals(fc_engine_score(e), &t);
	assert_int_equal(t.scored, 3);
	assert_int_equal(t.pct_scored, 2);

	/* After enough residuals the forecast carries an interval around it. */
	for (int i = 4; i < 40; i++)
		test_feed(e, 0, "h", "power", w + i * TEST_MINUTE, 5 + (i % 3));
	f = json_array_get(sink.out, json_array_size(sink.out) - 1);
	assert_true(num(f, "lower") < num(f, "predicted") && num(f, "upper") > num(f, "predicted"));
	assert_true(fabs((num(f, "upper") - num(f, "predicted")) -
	                 (num(f, "predicted") - num(f, "lower"))) < 1e-9);
	score_totals(fc_engine_score(e), &t);
	assert_true(t.hits > 0 && t.hits <= t.scored);

	fc_engine_free(e);
	json_decref(sink.out);
	metrics_shutdown();
}

static void test_replay_and_gaps(void **state)
{
	(void)state;
	struct test_sink sink = {json_array(), 0};
	struct fc_engine *e = engine(MODEL_HOLT, &sink);
	int64_t w = TEST_T0;
	for (int i = 0; i < 300; i++)
		assert_int_equal(test_feed(e, 0, "h", "power", w + i * TEST_MINUTE, 10 + i),
		                 FC_USED);
	struct score_totals before, after;
	score_totals(fc_engine_score(e), &before);
	/* Re-read windows change nothing and emit nothing. */
	for (int i = 295; i < 300; i++)
		assert_int_equal(test_feed(e, 0, "h", "power", w + i * TEST_MINUTE, 99),
		                 FC_REPLAYED);
	score_totals(fc_engine_score(e), &after);
	assert_memory_equal(&before, &after, sizeof(before));
	assert_int_equal(json_array_size(sink.out), 300);

	/* A missing window: its forecast is never scored; the next one is made for the window
	 * after the one that came. */
	assert_int_equal(test_feed(e, 0, "h", "power", w + 302 * TEST_MINUTE, 312), FC_USED);
	score_totals(fc_engine_score(e), &after);
	assert_int_equal(after.unscored, 1);
	assert_int_equal(after.scored, before.scored);
	const json_t *f = json_array_get(sink.out, json_array_size(sink.out) - 1);
	assert_int_equal(json_integer_value(json_object_get(f, "window_start")),
	                 w + 303 * TEST_MINUTE);
	/* The trend carried across the gap: close to the next value of the line. */
	assert_true(fabs(num(f, "predicted") - 313) < 0.2);

	/* Another window size is another series. */
	char err[256];
	json_t *a = test_aggregate("h", "power", w, 300000, 50);
	assert_int_equal(fc_engine_add(e, 0, a, err, sizeof(err)), FC_USED);
	json_decref(a);
	assert_int_equal(series_table_count(fc_engine_table(e)), 2);
	fc_engine_free(e);
	json_decref(sink.out);
	metrics_shutdown();
}

/* Three series over two partitions, noisy with a trend: enough to give every model state. */
static double value(int s, int i, struct test_rng *r)
{
	return 100 * (s + 1) + 0.3 * i + 2 * sin(i / 40.0) + 0.3 * test_gauss(r);
}

static void feed_range(struct fc_engine *e, int from, int to, double (*vals)[3])
{
	static const char *const sites[3] = {"a", "b", "c"};
	for (int i = from; i < to; i++)
		for (int s = 0; s < 3; s++)
			test_feed(e, s % 2, sites[s], "power", TEST_T0 + i * TEST_MINUTE,
			          vals[i][s]);
}

static void test_restart_restores_state(void **state)
{
	(void)state;
	enum { N = 600, K = 400 };
	static double vals[N][3];
	struct test_rng r = {31};
	for (int i = 0; i < N; i++)
		for (int s = 0; s < 3; s++)
			vals[i][s] = value(s, i, &r);

	for (int k = 0; k < MODEL_KIND_COUNT; k++) {
		struct test_sink sa = {json_array(), 0}, sb = {json_array(), 0},
		                 sc = {json_array(), 0};
		struct topic topic = {0};
		struct fc_checkpoint cp;
		/* A: runs through, checkpointing its state at K. */
		struct fc_engine *a = engine((enum model_kind)k, &sa);
		feed_range(a, 0, K, vals);
		assert_int_equal(fc_engine_checkpoint(a, topic_put, &topic, &cp), 0);
		assert_int_equal(cp.written, 3);
		/* Nothing changed since: nothing more to write. */
		assert_int_equal(fc_engine_checkpoint(a, topic_put, &topic, &cp), 0);
		assert_int_equal(cp.written, 0);
		size_t a_at_k = json_array_size(sa.out);
		feed_range(a, K, N, vals);

		/* B: a restart from the stored state, whose input resumes at an older commit. */
		struct fc_engine *b = engine((enum model_kind)k, &sb);
		topic_restore(&topic, b);
		assert_int_equal(series_table_count(fc_engine_table(b)), 3);
		feed_range(b, K - 20, N, vals);
		/* The replayed windows emitted nothing; from K on, bit-identical forecasts. */
		assert_int_equal(json_array_size(sb.out), json_array_size(sa.out) - a_at_k);
		for (size_t i = 0; i < json_array_size(sb.out); i++)
			assert_true(json_equal(json_array_get(sb.out, i),
			                       json_array_get(sa.out, a_at_k + i)));
		/* And the same error sums per series, carried across the restart. */
		struct series_table *ta = fc_engine_table(a), *tb = fc_engine_table(b);
		for (int s = 0; s < 3; s++) {
			struct buf key = {0};
			series_key_append(&key, (const char *[]){"a", "b", "c"}[s], "dev", "s1",
			                  "power", TEST_MINUTE);
			const struct series *x = series_table_find(ta, (char *)key.data, key.len);
			const struct series *y = series_table_find(tb, (char *)key.data, key.len);
			assert_non_null(x);
			assert_non_null(y);
			assert_memory_equal(&x->err, &y->err, sizeof(x->err));
			assert_int_equal(y->partition, s % 2);
			buf_free(&key);
		}

		/* C: a cold start on the same input after K does worse at first (not naive: its
		 * forecasts do not depend on history). */
		if (k != MODEL_NAIVE) {
			struct fc_engine *c = engine((enum model_kind)k, &sc);
			feed_range(c, K, K + 20, vals);
			struct score_totals tc;
			score_totals(fc_engine_score(c), &tc);
			struct score_totals tb0;
			struct fc_engine *b2 = engine((enum model_kind)k, &sc);
			topic_restore(&topic, b2);
			feed_range(b2, K, K + 20, vals);
			score_totals(fc_engine_score(b2), &tb0);
			double mae_cold = tc.abs_sum / (double)tc.scored;
			double mae_warm = tb0.abs_sum / (double)tb0.scored;
			assert_true(mae_cold > 1.3 * mae_warm);
			fc_engine_free(c);
			fc_engine_free(b2);
		}
		fc_engine_free(a);
		fc_engine_free(b);
		topic_free(&topic);
		json_decref(sa.out);
		json_decref(sb.out);
		json_decref(sc.out);
		metrics_shutdown();
	}
}

static void test_state_of_other_model_and_tombstones(void **state)
{
	(void)state;
	struct test_sink sink = {json_array(), 0};
	struct topic topic = {0};
	char err[256];
	struct fc_engine *a = engine(MODEL_HW, &sink);
	for (int i = 0; i < 10; i++)
		test_feed(a, 1, "x", "t", TEST_T0 + i * TEST_MINUTE, i);
	assert_int_equal(fc_engine_checkpoint(a, topic_put, &topic, NULL), 0);
	assert_int_equal(topic.n, 1);
	struct fc_engine *b = engine(MODEL_HOLT, &sink);
	assert_int_equal(fc_engine_restore(b, 1, topic.r[0].key, strlen(topic.r[0].key),
	                                   topic.r[0].val.data, topic.r[0].val.len, err,
	                                   sizeof(err)),
	                 STATE_OTHER_MODEL);
	assert_int_equal(series_table_count(fc_engine_table(b)), 0);
	/* Garbage is refused with the reason. */
	assert_int_equal(fc_engine_restore(b, 1, "k", 1, "garbage", 7, err, sizeof(err)),
	                 STATE_INVALID);
	assert_non_null(strstr(err, "magic"));
	/* A tombstone removes what a record restored. */
	struct fc_engine *c = engine(MODEL_HW, &sink);
	topic_restore(&topic, c);
	assert_int_equal(series_table_count(fc_engine_table(c)), 1);
	assert_int_equal(fc_engine_restore(c, 1, topic.r[0].key, strlen(topic.r[0].key), NULL, 0,
	                                   err, sizeof(err)),
	                 STATE_OK);
	assert_int_equal(series_table_count(fc_engine_table(c)), 0);
	fc_engine_free(a);
	fc_engine_free(b);
	fc_engine_free(c);
	topic_free(&topic);
	json_decref(sink.out);
	metrics_shutdown();
}

static void test_cap_expiry_and_drop(void **state)
{
	(void)state;
	struct test_sink sink = {json_array(), 0};
	struct topic topic = {0};
	char err[512];
	struct fc_config c = config(MODEL_HOLT, &sink);
	c.max_series = 2;
	c.ttl_ms = 10 * TEST_MINUTE;
	struct fc_engine *e = fc_engine_new(&c, err, sizeof(err));
	assert_non_null(e);
	assert_int_equal(test_feed(e, 0, "old", "m", TEST_T0, 1), FC_USED);
	assert_int_equal(test_feed(e, 0, "new", "m", TEST_T0, 1), FC_USED);
	json_t *a = test_aggregate("third", "m", TEST_T0, TEST_MINUTE, 1);
	assert_int_equal(fc_engine_add(e, 0, a, err, sizeof(err)), FC_REFUSED);
	assert_non_null(strstr(err, "--max-series is 2"));
	assert_non_null(strstr(err, "third/dev/s1/m/60000"));

	/* "new" moves the partition's clock 20 minutes on; "old" is idle past the ttl. */
	for (int i = 1; i <= 20; i++)
		test_feed(e, 0, "new", "m", TEST_T0 + i * TEST_MINUTE, 1 + i);
	/* A refused write keeps it (a tombstone must be stored before the series goes). */
	topic.refuse = 1;
	assert_int_equal(fc_engine_checkpoint(e, topic_put, &topic, NULL), -1);
	assert_int_equal(series_table_count(fc_engine_table(e)), 2);
	topic.refuse = 0;
	struct fc_checkpoint cp;
	assert_int_equal(fc_engine_checkpoint(e, topic_put, &topic, &cp), 0);
	assert_int_equal(cp.expired, 1);
	assert_int_equal(topic.tombstones, 1);
	assert_int_equal(series_table_count(fc_engine_table(e)), 1);
	/* Room again for a new series. */
	json_object_set_new(a, "window_start", json_integer(TEST_T0 + 20 * TEST_MINUTE));
	assert_int_equal(fc_engine_add(e, 0, a, err, sizeof(err)), FC_USED);
	json_decref(a);
	assert_int_equal(series_table_count(fc_engine_table(e)), 2);
	/* Dropping a partition forgets its series, without tombstones. */
	topic.tombstones = 0;
	fc_engine_drop(e, 0);
	assert_int_equal(series_table_count(fc_engine_table(e)), 0);
	/* One partition's clock does not expire another's series. */
	assert_int_equal(test_feed(e, 1, "p1", "m", TEST_T0, 1), FC_USED);
	assert_int_equal(test_feed(e, 0, "p0", "m", TEST_T0 + 100 * TEST_MINUTE, 1), FC_USED);
	assert_int_equal(fc_engine_checkpoint(e, topic_put, &topic, &cp), 0);
	assert_int_equal(cp.expired, 0);
	assert_int_equal(cp.written, 2);
	assert_int_equal(topic.tombstones, 0);
	fc_engine_free(e);
	topic_free(&topic);
	json_decref(sink.out);
	metrics_shutdown();
}

static void test_invalid_and_failures(void **state)
{
	(void)state;
	struct test_sink sink = {json_array(), 0};
	struct fc_engine *e = engine(MODEL_HOLT, &sink);
	char err[512];
	json_t *a = test_aggregate("s", "m", TEST_T0, TEST_MINUTE, 1);

	json_object_del(a, "metric");
	assert_int_equal(fc_engine_add(e, 0, a, err, sizeof(err)), FC_INVALID);
	assert_non_null(strstr(err, "metric"));
	json_object_set_new(a, "metric", json_string("m"));
	json_object_set_new(a, "window_ms", json_integer(0));
	assert_int_equal(fc_engine_add(e, 0, a, err, sizeof(err)), FC_INVALID);
	json_object_set_new(a, "window_ms", json_integer(TEST_MINUTE));
	json_object_set_new(a, "mean", json_real(1e200));
	assert_int_equal(fc_engine_add(e, 0, a, err, sizeof(err)), FC_INVALID);
	json_object_set_new(a, "mean", json_real(3));
	json_object_set_new(a, "window_start", json_integer(INT64_MAX - 10));
	assert_int_equal(fc_engine_add(e, 0, a, err, sizeof(err)), FC_INVALID);
	json_object_set_new(a, "window_start", json_integer(TEST_T0));
	char *big = calloc(1, SERIES_FIELD_MAX + 2);
	memset(big, 'x', SERIES_FIELD_MAX + 1);
	json_object_set_new(a, "site", json_string(big));
	assert_int_equal(fc_engine_add(e, 0, a, err, sizeof(err)), FC_INVALID);
	free(big);
	json_object_set_new(a, "site", json_stringn("a\0b", 3));
	assert_int_equal(fc_engine_add(e, 0, a, err, sizeof(err)), FC_INVALID);
	json_object_set_new(a, "site", json_string("s"));
	assert_int_equal(series_table_count(fc_engine_table(e)), 0);

	/* Extreme values, alternating: forecasts stay finite numbers. */
	for (int i = 0; i < 300; i++)
		assert_int_equal(test_feed(e, 0, "wild", "m", TEST_T0 + i * TEST_MINUTE,
		                           (i % 2 ? 1 : -1) * 1e149 * (1 + i % 7)),
		                 FC_USED);
	for (size_t i = 0; i < json_array_size(sink.out); i++) {
		const json_t *f = json_array_get(sink.out, i);
		assert_true(isfinite(num(f, "predicted")));
		if (!json_is_null(json_object_get(f, "upper")))
			assert_true(isfinite(num(f, "upper")) && isfinite(num(f, "lower")));
	}

	/* An output that refuses is a failure the service stops on. */
	sink.fail = 1;
	assert_int_equal(fc_engine_add(e, 0, a, err, sizeof(err)), FC_FAILED);
	assert_non_null(strstr(err, "sink refused"));
	json_decref(a);
	fc_engine_free(e);
	json_decref(sink.out);
	metrics_shutdown();
}

static void test_metric_labels_bounded(void **state)
{
	(void)state;
	struct test_sink sink = {json_array(), 0};
	struct fc_engine *e = engine(MODEL_NAIVE, &sink);
	char metric[32];
	/* 40 metric names, two windows each: 32 get their own label, the rest share _other. */
	for (int i = 0; i < 40; i++) {
		snprintf(metric, sizeof(metric), "m%d", i);
		test_feed(e, 0, "s", metric, TEST_T0, 1);
		test_feed(e, 0, "s", metric, TEST_T0 + TEST_MINUTE, 2);
	}
	char *page = metrics_render();
	int labels = 0;
	for (const char *p = page; (p = strstr(p, "iotpipe_forecaster_metric_mae{")); p++)
		labels++;
	assert_int_equal(labels, SCORE_METRIC_NAMES + 1);
	assert_non_null(
	    strstr(page, "iotpipe_forecaster_metric_scored_total{metric=\"_other\"} 8"));
	/* Per-series gauges only for the first 4 (series_gauges). */
	int series = 0;
	for (const char *p = page; (p = strstr(p, "iotpipe_forecaster_series_mae{")); p++)
		series++;
	assert_int_equal(series, 4);
	free(page);
	fc_engine_free(e);
	json_decref(sink.out);
	metrics_shutdown();
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_forecasts_and_errors),
	    cmocka_unit_test(test_replay_and_gaps),
	    cmocka_unit_test(test_restart_restores_state),
	    cmocka_unit_test(test_state_of_other_model_and_tombstones),
	    cmocka_unit_test(test_cap_expiry_and_drop),
	    cmocka_unit_test(test_invalid_and_failures),
	    cmocka_unit_test(test_metric_labels_bounded),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
