/* Series state as bytes: a round trip gives back every field bit for bit, for each model; keys
 * of distinct identities differ; damaged, truncated, foreign or mutated blobs are refused with
 * a reason and never crash; the state file round-trips and refuses damage. */
#include "fc_test.h"
#include "model.h"
#include "series.h"
#include "state.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

/* A series with every field set to something other than its default. */
static struct series *series_busy(enum model_kind k)
{
	struct series *s = series_new("home/1", "meter%1", "s", "power", "W", 60000, 3);
	assert_non_null(s);
	struct test_rng r = {99};
	for (int t = 0; t < 3000; t++) {
		double y =
		    300 + 100 * sin(t / 200.0) + 5 * test_gauss(&r) + (t % 500 < 30 ? 2000 : 0);
		model_update(&s->model, k, y, 1, model_time_of_day(TEST_T0 + t * TEST_MINUTE));
	}
	s->last_ws = TEST_T0 + 2999 * TEST_MINUTE;
	s->last_end = s->last_ws + TEST_MINUTE;
	s->pending = true;
	s->pending_interval = true;
	s->pending_ws = s->last_end;
	s->pending_value = 301.25;
	s->pending_lower = 280.5;
	s->pending_upper = 322.0;
	s->res_var = 112.75;
	s->res_n = 2999;
	s->err = (struct series_errors){2998, 2990, 2800, 3, 12345.5, 987.25};
	return s;
}

static void assert_same_series(const struct series *a, const struct series *b, enum model_kind k)
{
	assert_string_equal(a->site, b->site);
	assert_string_equal(a->device, b->device);
	assert_string_equal(a->sensor, b->sensor);
	assert_string_equal(a->metric, b->metric);
	assert_string_equal(a->unit, b->unit);
	assert_string_equal(a->key, b->key);
	assert_int_equal(a->window_ms, b->window_ms);
	assert_int_equal(a->last_ws, b->last_ws);
	assert_int_equal(a->last_end, b->last_end);
	assert_int_equal(a->pending, b->pending);
	assert_int_equal(a->pending_interval, b->pending_interval);
	assert_int_equal(a->pending_ws, b->pending_ws);
	assert_memory_equal(&a->pending_value, &b->pending_value, sizeof(double));
	assert_memory_equal(&a->pending_lower, &b->pending_lower, sizeof(double));
	assert_memory_equal(&a->pending_upper, &b->pending_upper, sizeof(double));
	assert_memory_equal(&a->res_var, &b->res_var, sizeof(double));
	assert_int_equal(a->res_n, b->res_n);
	assert_memory_equal(&a->err, &b->err, sizeof(a->err));
	const struct model *x = &a->model, *y = &b->model;
	assert_int_equal(x->n, y->n);
	assert_int_equal(x->jumps, y->jumps);
	assert_memory_equal(&x->last, &y->last, sizeof(double));
	assert_memory_equal(&x->level, &y->level, sizeof(double));
	assert_memory_equal(&x->trend, &y->trend, sizeof(double));
	assert_memory_equal(&x->alpha, &y->alpha, sizeof(double));
	assert_memory_equal(&x->grad, &y->grad, sizeof(double));
	assert_memory_equal(&x->scale, &y->scale, sizeof(double));
	if (k == MODEL_HW) {
		assert_memory_equal(x->profile, y->profile, sizeof(x->profile));
		assert_memory_equal(x->weight, y->weight, sizeof(x->weight));
	}
}

static void test_round_trip(void **state)
{
	(void)state;
	for (int k = 0; k < MODEL_KIND_COUNT; k++) {
		struct series *s = series_busy((enum model_kind)k), *d = NULL;
		struct buf b = {0};
		char err[256];
		assert_int_equal(state_blob_encode(s, (enum model_kind)k, &b), 0);
		assert_int_equal(state_blob_decode(b.data, b.len, s->key, s->key_len,
		                                   (enum model_kind)k, 7, &d, err, sizeof(err)),
		                 STATE_OK);
		assert_same_series(s, d, (enum model_kind)k);
		assert_int_equal(d->partition, 7);
		/* A decoded series forecasts exactly what the original would. */
		double p1, p2;
		assert_true(model_predict(&s->model, (enum model_kind)k, 1, 0.25, &p1));
		assert_true(model_predict(&d->model, (enum model_kind)k, 1, 0.25, &p2));
		assert_memory_equal(&p1, &p2, sizeof(double));
		/* The profile is only stored for hw. */
		assert_true(k == MODEL_HW ? b.len > 500 : b.len < 250);
		series_free(d);
		series_free(s);
		buf_free(&b);
	}
}

static void test_keys(void **state)
{
	(void)state;
	struct buf a = {0}, b = {0};
	assert_int_equal(series_key_append(&a, "a/b", "c", "d", "e", 60000), 0);
	assert_int_equal(series_key_append(&b, "a", "b/c", "d", "e", 60000), 0);
	assert_int_equal(a.len, strlen("a%2Fb/c/d/e/60000"));
	assert_memory_equal(a.data, "a%2Fb/c/d/e/60000", a.len);
	assert_false(a.len == b.len && memcmp(a.data, b.data, a.len) == 0);
	buf_reset(&a);
	buf_reset(&b);
	assert_int_equal(series_key_append(&a, "x%2Fy", "", "", "m", 1), 0);
	assert_int_equal(series_key_append(&b, "x/y", "", "", "m", 1), 0);
	assert_false(a.len == b.len && memcmp(a.data, b.data, a.len) == 0);
	buf_free(&a);
	buf_free(&b);
}

static void test_refused(void **state)
{
	(void)state;
	struct series *s = series_busy(MODEL_HW), *d = NULL;
	struct buf b = {0};
	char err[256];
	assert_int_equal(state_blob_encode(s, MODEL_HW, &b), 0);

	/* Another model's state is recognised as such. */
	assert_int_equal(
	    state_blob_decode(b.data, b.len, NULL, 0, MODEL_HOLT, 0, &d, err, sizeof(err)),
	    STATE_OTHER_MODEL);
	assert_non_null(strstr(err, "model hw"));
	/* A key that is not the series'. */
	assert_int_equal(
	    state_blob_decode(b.data, b.len, "other", 5, MODEL_HW, 0, &d, err, sizeof(err)),
	    STATE_INVALID);
	assert_non_null(strstr(err, "key"));
	/* Every truncation. */
	for (size_t n = 0; n < b.len; n++)
		assert_int_equal(
		    state_blob_decode(b.data, n, NULL, 0, MODEL_HW, 0, &d, err, sizeof(err)),
		    STATE_INVALID);
	/* A trailing byte. */
	buf_putc(&b, 0);
	assert_int_equal(
	    state_blob_decode(b.data, b.len, NULL, 0, MODEL_HW, 0, &d, err, sizeof(err)),
	    STATE_INVALID);
	assert_non_null(strstr(err, "trailing"));
	b.len--;
	/* An unknown version. */
	b.data[2] = 9;
	assert_int_equal(
	    state_blob_decode(b.data, b.len, NULL, 0, MODEL_HW, 0, &d, err, sizeof(err)),
	    STATE_INVALID);
	assert_non_null(strstr(err, "version 9"));
	b.data[2] = STATE_VERSION;
	assert_null(d);
	series_free(s);

	/* A NaN where a number must be finite. */
	s = series_busy(MODEL_HOLT);
	s->model.level = NAN;
	buf_reset(&b);
	assert_int_equal(state_blob_encode(s, MODEL_HOLT, &b), 0);
	assert_int_equal(
	    state_blob_decode(b.data, b.len, NULL, 0, MODEL_HOLT, 0, &d, err, sizeof(err)),
	    STATE_INVALID);
	assert_non_null(strstr(err, "model parameters"));
	/* Error sums that cannot be. */
	s->model.level = 1;
	s->err.hits = s->err.scored + 1;
	buf_reset(&b);
	assert_int_equal(state_blob_encode(s, MODEL_HOLT, &b), 0);
	assert_int_equal(
	    state_blob_decode(b.data, b.len, NULL, 0, MODEL_HOLT, 0, &d, err, sizeof(err)),
	    STATE_INVALID);
	/* Window times beyond what the engine accepts (their arithmetic could overflow). */
	s->err.hits = 0;
	s->last_ws = INT64_MAX - 5;
	s->last_end = INT64_MAX;
	buf_reset(&b);
	assert_int_equal(state_blob_encode(s, MODEL_HOLT, &b), 0);
	assert_int_equal(
	    state_blob_decode(b.data, b.len, NULL, 0, MODEL_HOLT, 0, &d, err, sizeof(err)),
	    STATE_INVALID);
	assert_non_null(strstr(err, "window times"));
	series_free(s);
	buf_free(&b);
}

static void test_mutations_never_crash(void **state)
{
	(void)state;
	struct series *s = series_busy(MODEL_HW), *d = NULL;
	struct buf b = {0}, m = {0};
	char err[256];
	assert_int_equal(state_blob_encode(s, MODEL_HW, &b), 0);
	struct test_rng r = {2024};
	size_t ok = 0;
	for (int i = 0; i < 20000; i++) {
		buf_reset(&m);
		buf_append(&m, b.data, b.len);
		int flips = 1 + (int)(test_unit(&r) * 4);
		for (int f = 0; f < flips; f++)
			m.data[(size_t)(test_unit(&r) * (double)m.len)] =
			    (uint8_t)(test_unit(&r) * 256);
		enum state_status st =
		    state_blob_decode(m.data, m.len, NULL, 0, MODEL_HW, 0, &d, err, sizeof(err));
		if (st == STATE_OK) {
			/* What is accepted is usable: a finite forecast. */
			double p;
			assert_true(model_valid(&d->model));
			if (model_predict(&d->model, MODEL_HW, 1, 0.5, &p))
				assert_true(isfinite(p));
			series_free(d);
			ok++;
		} else {
			assert_null(d);
			assert_true(err[0] != '\0');
		}
	}
	/* Most flips land in numbers that are still valid: the check is not refusing all. */
	assert_true(ok > 1000);
	series_free(s);
	buf_free(&b);
	buf_free(&m);
}

static void test_file(void **state)
{
	(void)state;
	char dir[] = "/tmp/fc-state-XXXXXX", path[128], err[512];
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/state", dir);
	size_t skipped;

	struct series_table *t = series_table_new(10);
	/* A missing file is an empty state. */
	assert_int_equal(state_file_load(path, t, MODEL_HOLT, &skipped, err, sizeof(err)), 0);
	struct series *a = series_busy(MODEL_HOLT);
	struct series *b = series_new("b", "d", "s", "m", "C", 300000, 0);
	assert_int_equal(series_table_add(t, a), 0);
	assert_int_equal(series_table_add(t, b), 0);
	assert_int_equal(state_file_save(path, t, MODEL_HOLT, err, sizeof(err)), 0);

	struct series_table *u = series_table_new(10);
	assert_int_equal(state_file_load(path, u, MODEL_HOLT, &skipped, err, sizeof(err)), 2);
	assert_int_equal(skipped, 0);
	const struct series *a2 = series_table_find(u, a->key, a->key_len);
	assert_non_null(a2);
	assert_same_series(a, a2, MODEL_HOLT);
	assert_non_null(series_table_find(u, b->key, b->key_len));
	series_table_free(u);

	/* Another model skips them; a smaller cap is an error. */
	u = series_table_new(10);
	assert_int_equal(state_file_load(path, u, MODEL_HW, &skipped, err, sizeof(err)), 0);
	assert_int_equal(skipped, 2);
	series_table_free(u);
	u = series_table_new(1);
	assert_int_equal(state_file_load(path, u, MODEL_HOLT, &skipped, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "--max-series"));
	series_table_free(u);

	/* A file cut short is refused. */
	FILE *f = fopen(path, "r+b");
	assert_non_null(f);
	fseek(f, 0, SEEK_END);
	long len = ftell(f);
	fclose(f);
	assert_int_equal(truncate(path, len - 3), 0);
	u = series_table_new(10);
	assert_int_equal(state_file_load(path, u, MODEL_HOLT, &skipped, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "truncated"));
	series_table_free(u);
	/* Not a state file at all. */
	f = fopen(path, "wb");
	fputs("hello\n", f);
	fclose(f);
	u = series_table_new(10);
	assert_int_equal(state_file_load(path, u, MODEL_HOLT, &skipped, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "not a forecaster state file"));
	series_table_free(u);

	series_table_free(t);
	unlink(path);
	rmdir(dir);
}

static void test_table(void **state)
{
	(void)state;
	struct series_table *t = series_table_new(1000);
	char site[32];
	for (int i = 0; i < 1000; i++) {
		snprintf(site, sizeof(site), "site-%d", i);
		assert_int_equal(
		    series_table_add(t, series_new(site, "d", "s", "m", "u", 60000, i % 4)), 0);
	}
	/* At the cap: refused, and the caller keeps the series. */
	struct series *extra = series_new("one-more", "d", "s", "m", "u", 60000, 0);
	assert_int_equal(series_table_add(t, extra), -1);
	assert_int_equal(series_table_count(t), 1000);
	/* A duplicate is refused as such. */
	struct series *dup = series_new("site-5", "d", "s", "m", "u", 60000, 0);
	assert_int_equal(series_table_add(t, dup), -2);
	/* put replaces at the cap. */
	assert_int_equal(series_table_put(t, dup), 0);
	assert_int_equal(series_table_count(t), 1000);
	assert_ptr_equal(series_table_find(t, dup->key, dup->key_len), dup);
	for (int i = 0; i < 1000; i++) {
		snprintf(site, sizeof(site), "site-%d", i);
		struct series *s = series_new(site, "d", "s", "m", "u", 60000, 0);
		assert_non_null(series_table_find(t, s->key, s->key_len));
		series_free(s);
	}
	assert_true(series_table_remove(t, extra->key, extra->key_len) == false);
	assert_true(series_table_remove(t, dup->key, dup->key_len));
	assert_int_equal(series_table_add(t, extra), 0);
	assert_true(series_table_bytes(t) > 1000 * sizeof(struct series));
	series_table_free(t);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_round_trip), cmocka_unit_test(test_keys),
	    cmocka_unit_test(test_refused),    cmocka_unit_test(test_mutations_never_crash),
	    cmocka_unit_test(test_file),       cmocka_unit_test(test_table),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
