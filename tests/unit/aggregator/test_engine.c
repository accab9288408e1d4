/* The engine: emit-final windows, watermark and grace, late readings, duplicates, group-by,
 * idle partitions, the open-window cap, refusals, and the hash tables under it. */
#include "agg_test.h"
#include "engine.h"
#include "fpset.h"
#include "hashidx.h"

#include <jansson.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

struct fixture {
	struct test_sink sink;
	struct agg_engine *e;
	int64_t offset;
	struct agg_outcome out;
	char err[512];
};

static struct fixture *fx_new(struct agg_config c)
{
	struct fixture *f = calloc(1, sizeof(*f));
	assert_non_null(f);
	f->sink.out = json_array();
	c.emit_ctx = &f->sink;
	f->e = agg_engine_new(&c, f->err, sizeof(f->err));
	assert_non_null(f->e);
	return f;
}

static struct fixture *fx_tumbling(int64_t size, int64_t grace)
{
	struct agg_config c = test_config(NULL, size, size, grace);
	return fx_new(c);
}

static void fx_free(struct fixture *f)
{
	agg_engine_free(f->e);
	json_decref(f->sink.out);
	free(f);
}

/* Adds a reading of series (site s, device d) at the next offset of partition 0. */
static enum agg_status fx_add(struct fixture *f, const char *site, const char *dev, double v,
                              int64_t ts)
{
	struct agg_reading r = test_reading(site, dev, "t1", "temperature", v, ts);
	return agg_engine_add(f->e, 0, f->offset++, &r, &f->out, f->err, sizeof(f->err));
}

static size_t emitted(const struct fixture *f)
{
	return json_array_size(f->sink.out);
}

static void test_emit_final_with_grace(void **state)
{
	(void)state;
	struct fixture *f = fx_tumbling(1000, 200);
	assert_int_equal(fx_add(f, "s", "d", 10, 100), AGG_OK);
	assert_int_equal(f->out.added, 1);
	assert_int_equal(fx_add(f, "s", "d", 30, 500), AGG_OK);
	assert_int_equal(fx_add(f, "s", "d", 99, 1100), AGG_OK); /* watermark 900 */
	assert_int_equal(emitted(f), 0);
	/* Inside the grace: still counted in the first window. */
	assert_int_equal(fx_add(f, "s", "d", 20, 999), AGG_OK);
	assert_int_equal(f->out.added, 1);
	assert_int_equal(fx_add(f, "s", "d", 98, 1199), AGG_OK); /* watermark 999 */
	assert_int_equal(emitted(f), 0);
	assert_int_equal(fx_add(f, "s", "d", 97, 1200), AGG_OK); /* watermark 1000: closes */
	assert_int_equal(emitted(f), 1);
	assert_int_equal(test_int(&f->sink, 0, "window_start"), 0);
	assert_int_equal(test_int(&f->sink, 0, "window_end"), 1000);
	assert_int_equal(test_int(&f->sink, 0, "window_ms"), 1000);
	assert_int_equal(test_int(&f->sink, 0, "count"), 3);
	assert_true(test_real(&f->sink, 0, "mean") == 20.0);
	assert_true(test_real(&f->sink, 0, "min") == 10.0);
	assert_true(test_real(&f->sink, 0, "max") == 30.0);
	assert_true(fabs(test_real(&f->sink, 0, "stddev") - sqrt(200.0 / 3)) < 1e-12);
	assert_true(test_real(&f->sink, 0, "first") == 10.0);
	assert_int_equal(test_int(&f->sink, 0, "first_ts"), 100);
	assert_true(test_real(&f->sink, 0, "last") == 20.0);
	assert_int_equal(test_int(&f->sink, 0, "last_ts"), 999);
	assert_string_equal(test_text(&f->sink, 0, "site"), "s");
	assert_string_equal(test_text(&f->sink, 0, "device"), "d");
	assert_string_equal(test_text(&f->sink, 0, "sensor"), "t1");
	assert_string_equal(test_text(&f->sink, 0, "metric"), "temperature");
	assert_string_equal(test_text(&f->sink, 0, "unit"), "C");
	/* More input never emits the same window again. */
	for (int i = 0; i < 5; i++)
		assert_int_equal(fx_add(f, "s", "d", 1, 1300 + i), AGG_OK);
	assert_int_equal(emitted(f), 1);
	fx_free(f);
}

/* The output has exactly the fields of schemas/Aggregate.avsc, with matching JSON types. */
static void test_output_matches_schema(void **state)
{
	(void)state;
	json_error_t jerr;
	json_t *schema = json_load_file("schemas/Aggregate.avsc", 0, &jerr);
	if (!schema)
		fail_msg("schemas/Aggregate.avsc (run from the repository root): %s", jerr.text);
	struct fixture *f = fx_tumbling(1000, 0);
	assert_int_equal(fx_add(f, "s", "d", 1, 10), AGG_OK);
	assert_int_equal(fx_add(f, "s", "d", 1, 2000), AGG_OK);
	assert_int_equal(emitted(f), 1);
	json_t *agg = json_array_get(f->sink.out, 0);

	json_t *fields = json_object_get(schema, "fields");
	assert_int_equal(json_object_size(agg), json_array_size(fields));
	size_t i;
	json_t *fd;
	json_array_foreach(fields, i, fd)
	{
		const char *name = json_string_value(json_object_get(fd, "name"));
		json_t *type = json_object_get(fd, "type");
		const char *t = json_is_string(type)
		                    ? json_string_value(type)
		                    : json_string_value(json_object_get(type, "type"));
		json_t *v = json_object_get(agg, name);
		if (!v)
			fail_msg("field %s missing from the aggregate", name);
		if (strcmp(t, "string") == 0)
			assert_true(json_is_string(v));
		else if (strcmp(t, "long") == 0)
			assert_true(json_is_integer(v));
		else if (strcmp(t, "double") == 0)
			assert_true(json_is_real(v));
		else
			fail_msg("unexpected schema type %s for %s", t, name);
	}
	json_decref(schema);
	fx_free(f);
}

static void test_late(void **state)
{
	(void)state;
	struct fixture *f = fx_tumbling(1000, 0);
	assert_int_equal(fx_add(f, "s", "d", 1, 500), AGG_OK);
	assert_int_equal(fx_add(f, "s", "d", 2, 1000), AGG_OK); /* closes [0,1000) */
	assert_int_equal(emitted(f), 1);
	assert_int_equal(fx_add(f, "s", "d", 5, 999), AGG_OK);
	assert_int_equal(f->out.late, 1);
	assert_int_equal(f->out.added, 0);
	/* A window that never had a reading is late too once the watermark is past its end. */
	assert_int_equal(fx_add(f, "s", "other", 5, -5), AGG_OK);
	assert_int_equal(f->out.late, 1);
	/* The window of the watermark itself is open. */
	assert_int_equal(fx_add(f, "s", "d", 3, 1000), AGG_OK);
	assert_int_equal(f->out.added, 0); /* same identity as the reading at 1000: duplicate */
	assert_int_equal(f->out.duplicate, 1);
	assert_int_equal(fx_add(f, "s", "d", 4, 1001), AGG_OK);
	assert_int_equal(f->out.added, 1);
	assert_int_equal(emitted(f), 1);
	assert_int_equal(test_int(&f->sink, 0, "count"), 1);

	struct agg_counters c;
	agg_engine_counters(f->e, &c);
	assert_int_equal(c.readings, 6);
	assert_int_equal(c.late, 2);
	assert_int_equal(c.duplicates, 1);
	assert_int_equal(c.added, 3);
	assert_int_equal(c.emitted, 1);
	assert_int_equal(c.open_windows, 1);

	assert_int_equal(agg_engine_close_all(f->e, f->err, sizeof(f->err)), AGG_OK);
	assert_int_equal(emitted(f), 2);
	assert_int_equal(test_int(&f->sink, 1, "count"), 2);
	assert_true(test_real(&f->sink, 1, "mean") == 3.0);
	fx_free(f);
}

static void test_negative_times(void **state)
{
	(void)state;
	struct fixture *f = fx_tumbling(1000, 0);
	assert_int_equal(fx_add(f, "s", "d", 1, -1000), AGG_OK);
	assert_int_equal(fx_add(f, "s", "d", 2, -1), AGG_OK);
	assert_int_equal(fx_add(f, "s", "d", 3, 0), AGG_OK);
	assert_int_equal(emitted(f), 1);
	assert_int_equal(test_int(&f->sink, 0, "window_start"), -1000);
	assert_int_equal(test_int(&f->sink, 0, "window_end"), 0);
	assert_int_equal(test_int(&f->sink, 0, "count"), 2);
	assert_int_equal(test_int(&f->sink, 0, "first_ts"), -1000);
	assert_int_equal(test_int(&f->sink, 0, "last_ts"), -1);
	fx_free(f);
}

static void test_group_by_subset(void **state)
{
	(void)state;
	struct agg_config c = test_config(NULL, 1000, 1000, 0);
	c.group_by = AGG_BY_SITE | AGG_BY_METRIC;
	struct fixture *f = fx_new(c);
	assert_int_equal(fx_add(f, "home", "kitchen", 20, 100), AGG_OK);
	assert_int_equal(fx_add(f, "home", "bedroom", 18, 100), AGG_OK); /* same ts, other device */
	assert_int_equal(f->out.added, 1);
	assert_int_equal(fx_add(f, "home", "kitchen", 21, 100), AGG_OK); /* a duplicate */
	assert_int_equal(f->out.duplicate, 1);
	assert_int_equal(fx_add(f, "away", "kitchen", 5, 200), AGG_OK);
	assert_int_equal(fx_add(f, "home", "kitchen", 22, 5000), AGG_OK);
	assert_int_equal(emitted(f), 2);
	/* Emitted in (end, creation) order: home's window was created first. */
	assert_string_equal(test_text(&f->sink, 0, "site"), "home");
	assert_string_equal(test_text(&f->sink, 0, "device"), "*");
	assert_string_equal(test_text(&f->sink, 0, "sensor"), "*");
	assert_string_equal(test_text(&f->sink, 0, "metric"), "temperature");
	assert_int_equal(test_int(&f->sink, 0, "count"), 2);
	assert_true(test_real(&f->sink, 0, "mean") == 19.0);
	assert_true(test_real(&f->sink, 0, "first") == 20.0); /* tie on ts: first arrival */
	assert_true(test_real(&f->sink, 0, "last") == 18.0);  /* tie on ts: last arrival */
	assert_string_equal(test_text(&f->sink, 1, "site"), "away");
	assert_int_equal(test_int(&f->sink, 1, "count"), 1);
	fx_free(f);
}

static void test_duplicates(void **state)
{
	(void)state;
	struct fixture *f = fx_tumbling(60000, 5000);
	/* Redelivered readings (same identity) count once, with the value first seen. */
	for (int rep = 0; rep < 3; rep++)
		for (int i = 0; i < 50; i++)
			assert_int_equal(fx_add(f, "s", "d", i + rep * 100.0, 1000 + i * 100),
			                 AGG_OK);
	/* Another metric of the same device at the same times is another series. */
	struct agg_reading r = test_reading("s", "d", "t1", "humidity", 1, 1000);
	assert_int_equal(agg_engine_add(f->e, 0, f->offset++, &r, &f->out, f->err, sizeof(f->err)),
	                 AGG_OK);
	assert_int_equal(f->out.added, 1);
	struct agg_counters c;
	agg_engine_counters(f->e, &c);
	assert_int_equal(c.duplicates, 100);
	assert_int_equal(agg_engine_close_all(f->e, f->err, sizeof(f->err)), AGG_OK);
	assert_int_equal(emitted(f), 2);
	assert_int_equal(test_int(&f->sink, 0, "count"), 50);
	assert_true(test_real(&f->sink, 0, "mean") == 24.5);
	assert_int_equal(test_int(&f->sink, 1, "count"), 1);
	fx_free(f);
}

static void test_hopping_engine(void **state)
{
	(void)state;
	struct fixture *f = fx_new(test_config(NULL, 1000, 500, 0));
	assert_int_equal(fx_add(f, "s", "d", 10, 700), AGG_OK); /* [0,1000) and [500,1500) */
	assert_int_equal(f->out.added, 2);
	assert_int_equal(fx_add(f, "s", "d", 10, 700), AGG_OK);
	assert_int_equal(f->out.duplicate, 2);
	assert_int_equal(fx_add(f, "s", "d", 20, 1200), AGG_OK); /* closes [0,1000) */
	assert_int_equal(f->out.added, 2);
	assert_int_equal(emitted(f), 1);
	assert_int_equal(test_int(&f->sink, 0, "window_start"), 0);
	assert_int_equal(test_int(&f->sink, 0, "count"), 1);
	/* Late for [0,1000) but still counted in the open [500,1500). */
	assert_int_equal(fx_add(f, "s", "d", 40, 900), AGG_OK);
	assert_int_equal(f->out.late, 1);
	assert_int_equal(f->out.added, 1);
	assert_int_equal(fx_add(f, "s", "d", 0, 2600), AGG_OK);
	assert_int_equal(emitted(f), 3);
	assert_int_equal(test_int(&f->sink, 1, "window_start"), 500);
	assert_int_equal(test_int(&f->sink, 1, "count"), 3);
	assert_true(fabs(test_real(&f->sink, 1, "mean") - 70.0 / 3) < 1e-12);
	assert_int_equal(test_int(&f->sink, 2, "window_start"), 1000);
	assert_int_equal(test_int(&f->sink, 2, "count"), 1);
	fx_free(f);
}

static void test_idle_advance(void **state)
{
	(void)state;
	struct agg_config c = test_config(NULL, 1000, 1000, 100);
	c.idle_timeout_ms = 5000;
	struct fixture *f = fx_new(c);
	struct agg_commit cp;
	char *e = f->err;
	size_t el = sizeof(f->err);

	assert_int_equal(fx_add(f, "s", "d", 1, 100), AGG_OK);
	assert_int_equal(fx_add(f, "s", "d", 2, 1500), AGG_OK); /* watermark 1400 */
	assert_int_equal(emitted(f), 1);
	assert_int_equal(agg_engine_advance_idle(f->e, 10000, e, el), 0); /* first look */
	assert_int_equal(agg_engine_advance_idle(f->e, 14999, e, el), 0); /* not idle long enough */
	/* Idle for 5 s: event time is taken to be 1400 + 5000, which closes [1000,2000). */
	assert_int_equal(agg_engine_advance_idle(f->e, 15000, e, el), 1);
	/* Held until a commit says the advance is durable. */
	assert_int_equal(emitted(f), 1);
	struct agg_counters cnt;
	agg_engine_counters(f->e, &cnt);
	assert_int_equal(cnt.held_windows, 1);
	assert_int_equal(cnt.open_windows, 1);
	assert_int_equal(agg_engine_commit_point(f->e, 0, &cp), 1);
	assert_int_equal(cp.offset, 1); /* the held window still needs offset 1 */
	assert_string_equal(cp.metadata, "wm=1400;next=2;adv=2000@2");
	/* Only one advance at a time. */
	assert_int_equal(agg_engine_advance_idle(f->e, 99000, e, el), 0);
	/* A commit without the advance releases nothing. */
	assert_int_equal(agg_engine_committed(f->e, 0, "wm=1400;next=2", e, el), AGG_OK);
	assert_int_equal(emitted(f), 1);
	assert_int_equal(agg_engine_committed(f->e, 0, cp.metadata, e, el), AGG_OK);
	assert_int_equal(emitted(f), 2);
	agg_engine_counters(f->e, &cnt);
	assert_int_equal(cnt.held_windows, 0);
	assert_int_equal(cnt.open_windows, 0);
	assert_int_equal(test_int(&f->sink, 1, "window_start"), 1000);
	assert_int_equal(agg_engine_commit_point(f->e, 0, &cp), 1);
	assert_int_equal(cp.offset, 2);
	assert_string_equal(cp.metadata, "wm=2000;next=2");
	/* The watermark stopped at the end of the closed window: later windows are not late. */
	assert_int_equal(fx_add(f, "s", "d", 3, 1999), AGG_OK);
	assert_int_equal(f->out.late, 1);
	assert_int_equal(fx_add(f, "s", "d", 4, 2000), AGG_OK);
	assert_int_equal(f->out.added, 1);
	/* Activity resets the idle clock. */
	assert_int_equal(agg_engine_advance_idle(f->e, 100000, e, el), 0);
	assert_int_equal(agg_engine_advance_idle(f->e, 104999, e, el), 0);
	assert_int_equal(agg_engine_advance_idle(f->e, 105000, e, el), 1);
	assert_int_equal(agg_engine_commit_point(f->e, 0, &cp), 1);
	assert_string_equal(cp.metadata, "wm=2000;next=4;adv=3000@4");
	/* Held windows are emitted at the end of input too. */
	assert_int_equal(agg_engine_close_all(f->e, e, el), AGG_OK);
	assert_int_equal(emitted(f), 3);
	assert_int_equal(test_int(&f->sink, 2, "window_start"), 2000);

	/* Idle timeout 0: partitions never advance by themselves. */
	struct fixture *g = fx_tumbling(1000, 0);
	assert_int_equal(fx_add(g, "s", "d", 1, 100), AGG_OK);
	assert_int_equal(agg_engine_advance_idle(g->e, 0, e, el), 0);
	assert_int_equal(agg_engine_advance_idle(g->e, INT64_MAX, e, el), 0);
	assert_int_equal(emitted(g), 0);
	fx_free(g);
	fx_free(f);
}

static void test_cap(void **state)
{
	(void)state;
	struct agg_config c = test_config(NULL, 1000, 1000, 0);
	c.max_windows = 3;
	struct fixture *f = fx_new(c);
	assert_int_equal(fx_add(f, "s", "a", 1, 10), AGG_OK);
	assert_int_equal(fx_add(f, "s", "b", 1, 10), AGG_OK);
	assert_int_equal(fx_add(f, "s", "c", 1, 10), AGG_OK);
	assert_int_equal(fx_add(f, "s", "d", 1, 10), AGG_FULL);
	assert_non_null(strstr(f->err, "--max-windows is 3"));
	assert_non_null(strstr(f->err, "open-window cap reached"));
	/* Nothing changed: the same offset can be given again, existing windows still count. */
	f->offset--;
	struct agg_commit cp;
	assert_int_equal(agg_engine_commit_point(f->e, 0, &cp), 1);
	assert_string_equal(cp.metadata, "wm=10;next=3");
	assert_int_equal(fx_add(f, "s", "a", 2, 20), AGG_OK);
	assert_int_equal(f->out.added, 1);
	/* A hopping reading needing two windows with one free is refused whole. */
	struct fixture *h;
	c.window.hop_ms = 500;
	h = fx_new(c);
	assert_int_equal(fx_add(h, "s", "a", 1, 700), AGG_OK); /* two windows */
	assert_int_equal(fx_add(h, "s", "b", 1, 700), AGG_FULL);
	struct agg_counters cnt;
	agg_engine_counters(h->e, &cnt);
	assert_int_equal(cnt.open_windows, 2);
	fx_free(h);
	/* Once windows close, new ones can open. */
	assert_int_equal(fx_add(f, "s", "a", 1, 1000), AGG_FULL); /* would need a 4th first */
	f->offset--;
	assert_int_equal(agg_engine_close_all(f->e, f->err, sizeof(f->err)), AGG_OK);
	assert_int_equal(fx_add(f, "s", "d", 1, 1000), AGG_OK);
	fx_free(f);
}

static void test_refusals(void **state)
{
	(void)state;
	struct fixture *f = fx_tumbling(1000, 0);
	struct agg_reading r = test_reading("s", "d", "t", "m", 1, AGG_TS_LIMIT + 1);
	assert_int_equal(agg_engine_add(f->e, 0, 0, &r, &f->out, f->err, sizeof(f->err)),
	                 AGG_INVALID);
	assert_non_null(strstr(f->err, "Reading.ts"));
	r = test_reading("s\xff", "d", "t", "m", 1, 5);
	assert_int_equal(agg_engine_add(f->e, 0, 1, &r, &f->out, f->err, sizeof(f->err)),
	                 AGG_INVALID);
	assert_string_equal(f->err, "Reading.site: not valid UTF-8");
	r = test_reading("s", "d", "t", "m", 1, 5);
	r.unit = test_str("\xc3(");
	assert_int_equal(agg_engine_add(f->e, 0, 2, &r, &f->out, f->err, sizeof(f->err)),
	                 AGG_INVALID);
	r = test_reading("s", "d", "t", "m", NAN, 5);
	assert_int_equal(agg_engine_add(f->e, 0, 3, &r, &f->out, f->err, sizeof(f->err)),
	                 AGG_INVALID);
	/* Refused records are consumed: the position moved past them. */
	struct agg_commit cp;
	assert_int_equal(agg_engine_commit_point(f->e, 0, &cp), 1);
	assert_int_equal(cp.offset, 4);
	/* Offsets going backwards are the caller's bug. */
	r = test_reading("s", "d", "t", "m", 1, 5);
	assert_int_equal(agg_engine_add(f->e, 0, 3, &r, &f->out, f->err, sizeof(f->err)),
	                 AGG_FAILED);
	assert_non_null(strstr(f->err, "offsets must increase"));
	assert_int_equal(agg_engine_add(f->e, -1, 0, &r, &f->out, f->err, sizeof(f->err)),
	                 AGG_FAILED);
	assert_int_equal(agg_engine_skip(f->e, 0, 9, f->err, sizeof(f->err)), AGG_OK);
	assert_int_equal(agg_engine_commit_point(f->e, 0, &cp), 1);
	assert_int_equal(cp.offset, 10);
	assert_int_equal(agg_engine_skip(f->e, 0, 2, f->err, sizeof(f->err)), AGG_OK);
	assert_int_equal(agg_engine_commit_point(f->e, 0, &cp), 1);
	assert_int_equal(cp.offset, 10);
	struct agg_counters c;
	agg_engine_counters(f->e, &c);
	assert_int_equal(c.invalid, 4);
	assert_int_equal(c.open_windows, 0);
	fx_free(f);
}

static void test_emit_failure_and_drop(void **state)
{
	(void)state;
	struct fixture *f = fx_tumbling(1000, 0);
	assert_int_equal(fx_add(f, "s", "d", 1, 10), AGG_OK);
	f->sink.fail = true;
	assert_int_equal(fx_add(f, "s", "d", 1, 1010), AGG_FAILED);
	assert_string_equal(f->err, "sink refused");
	f->sink.fail = false;

	/* Partitions are independent; dropping one forgets its windows without emitting them. */
	struct agg_reading r = test_reading("t", "d", "x", "m", 1, 10);
	assert_int_equal(agg_engine_add(f->e, 3, 0, &r, &f->out, f->err, sizeof(f->err)), AGG_OK);
	struct agg_counters c;
	agg_engine_counters(f->e, &c);
	assert_int_equal(c.open_windows, 2);
	agg_engine_drop(f->e, 3);
	agg_engine_drop(f->e, 77);
	agg_engine_counters(f->e, &c);
	assert_int_equal(c.open_windows, 1);
	struct agg_commit cp;
	assert_int_equal(agg_engine_commit_point(f->e, 3, &cp), 0);
	assert_int_equal(agg_engine_close_all(f->e, f->err, sizeof(f->err)), AGG_OK);
	assert_int_equal(emitted(f), 1);
	fx_free(f);
}

static void test_config_check(void **state)
{
	(void)state;
	char err[300];
	struct agg_config c = test_config(NULL, 60000, 60000, 0);
	assert_int_equal(agg_config_check(&c, err, sizeof(err)), 0);
	c.group_by = AGG_BY_DEVICE | AGG_BY_METRIC;
	assert_int_equal(agg_config_check(&c, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "--group-by: group-by must include site"));
	c = test_config(NULL, 60000, 90000, 0);
	assert_int_equal(agg_config_check(&c, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "--window/--hop"));
	c = test_config(NULL, 60000, 60000, -1);
	assert_int_equal(agg_config_check(&c, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "--grace"));
	c = test_config(NULL, 60000, 60000, 0);
	c.max_windows = 0;
	assert_int_equal(agg_config_check(&c, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "--max-windows"));
	c = test_config(NULL, 60000, 60000, 0);
	c.idle_timeout_ms = -5;
	assert_null(agg_engine_new(&c, err, sizeof(err)));
	assert_non_null(strstr(err, "--idle-timeout"));
}

/* The index against a plain model, with many collisions of the home slot. */
static void test_index(void **state)
{
	(void)state;
	struct agg_index x;
	enum { N = 5000 };
	static uint64_t hash_of[N];
	static bool present[N];
	assert_int_equal(agg_index_init(&x, 1), 0);
	uint64_t rnd = 88172645463325252ULL;
	for (int step = 0; step < 200000; step++) {
		rnd ^= rnd << 13, rnd ^= rnd >> 7, rnd ^= rnd << 17;
		uint32_t ref = (uint32_t)(rnd % N);
		if (!present[ref]) {
			/* Few distinct low bits: long probe runs that wrap around. */
			hash_of[ref] = (rnd >> 20) & 0xff;
			assert_int_equal(agg_index_insert(&x, hash_of[ref], ref), 0);
			present[ref] = true;
		} else {
			agg_index_remove(&x, hash_of[ref], ref);
			present[ref] = false;
		}
		if (step % 997 == 0) {
			size_t count = 0;
			for (uint32_t r = 0; r < N; r++) {
				if (!present[r])
					continue;
				count++;
				size_t pos = agg_index_start(&x, hash_of[r]);
				uint32_t got;
				bool found = false;
				while ((got = agg_index_next(&x, hash_of[r], &pos)) !=
				       AGG_INDEX_NONE)
					found |= got == r;
				assert_true(found);
			}
			assert_int_equal(count, x.len);
		}
	}
	agg_index_free(&x);
}

static void test_fpset(void **state)
{
	(void)state;
	struct agg_fpset s = {0};
	for (int64_t ts = -500; ts < 20000; ts++)
		assert_int_equal(agg_fpset_add(&s, agg_fingerprint(42, ts)), 1);
	for (int64_t ts = -500; ts < 20000; ts += 7)
		assert_int_equal(agg_fpset_add(&s, agg_fingerprint(42, ts)), 0);
	assert_int_equal(agg_fpset_add(&s, agg_fingerprint(43, 0)), 1);
	assert_int_equal(agg_fpset_add(&s, 0), 1);
	assert_int_equal(agg_fpset_add(&s, 0), 0);
	assert_int_equal(s.len, 20501);
	agg_fpset_free(&s);
	assert_int_equal(agg_fpset_add(&s, 5), 1);
	agg_fpset_free(&s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_emit_final_with_grace),
	    cmocka_unit_test(test_output_matches_schema),
	    cmocka_unit_test(test_late),
	    cmocka_unit_test(test_negative_times),
	    cmocka_unit_test(test_group_by_subset),
	    cmocka_unit_test(test_duplicates),
	    cmocka_unit_test(test_hopping_engine),
	    cmocka_unit_test(test_idle_advance),
	    cmocka_unit_test(test_cap),
	    cmocka_unit_test(test_refusals),
	    cmocka_unit_test(test_emit_failure_and_drop),
	    cmocka_unit_test(test_config_check),
	    cmocka_unit_test(test_index),
	    cmocka_unit_test(test_fpset),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
