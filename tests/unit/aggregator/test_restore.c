/* Commit points, restore, and crashes: a run killed at any step and restarted from its last
 * commit emits exactly the aggregates of a run that never stopped, and a window emitted twice
 * has the same values both times.
 *
 * The simulation follows the caller's contract (engine.h): a deterministic script of readings,
 * undecodable records, idle pauses and commits over two partitions. A commit stores every
 * partition's offset and metadata at once (one OffsetCommit request), then confirms them to the
 * engine. A crash drops the engine at any step. The restarted run re-reads each partition from
 * its committed offset. Idle pauses are wall-clock events: the restarted run does not live
 * through the pauses its predecessor already made durable in a commit; the others it lives
 * through again at the same place in the input. */
#include "agg_test.h"
#include "engine.h"

#include <inttypes.h>
#include <jansson.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#define NPART 2
#define MAX_STEPS 700

enum step_kind { S_READ, S_BAD, S_PAUSE, S_STORE, S_CONFIRM };

struct step {
	enum step_kind kind;
	int32_t part;
	int64_t offset;
	struct agg_reading r;
	int64_t clock_a, clock_b;
};

struct script {
	struct step s[MAX_STEPS];
	int n;
};

struct durable {
	bool has[NPART];
	int64_t offset[NPART];
	char meta[NPART][AGG_META_MAX];
	int frontier; /* largest script index of a stored commit */
	int wall;     /* pauses up to this index are in the past for a restarted run */
};

static uint64_t rng_state;

static uint64_t rng(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return rng_state;
}

static int64_t rng_range(int64_t lo, int64_t hi)
{
	return lo + (int64_t)(rng() % (uint64_t)(hi - lo + 1));
}

static const char *const sites[NPART][2] = {{"home-a", "home-c"}, {"plant-b", "plant-d"}};
static const char *const devices[] = {"d0", "d1", "d2"};
static const char *const metrics[] = {"temperature", "humidity"};

static void push(struct script *sc, struct step st)
{
	assert_true(sc->n < MAX_STEPS);
	sc->s[sc->n++] = st;
}

static void push_read(struct script *sc, int32_t q, int64_t *next_offset, int64_t *clock_ts)
{
	struct step st = {.kind = S_READ, .part = q, .offset = next_offset[q]++};
	/* Redelivery: the same identity again, sometimes with another value. */
	if (rng() % 100 < 6) {
		for (int i = sc->n - 1; i >= 0; i--) {
			if (sc->s[i].kind == S_READ && sc->s[i].part == q) {
				st.r = sc->s[i].r;
				if (rng() % 2)
					st.r.value += 1;
				push(sc, st);
				return;
			}
		}
	}
	clock_ts[q] += rng_range(0, 70);
	/* Out of order: mostly within the grace, sometimes beyond it (late). */
	int64_t ts = clock_ts[q] - (rng() % 100 < 85 ? rng_range(0, 150) : rng_range(150, 900));
	double value = (double)rng_range(0, 10000) / 100.0;
	if (rng() % 10 == 0)
		value += 1e9; /* large offsets */
	st.r = test_reading(sites[q][rng() % 2], devices[rng() % 3], "s1", metrics[rng() % 2],
	                    value, ts);
	push(sc, st);
}

static void push_commit(struct script *sc)
{
	push(sc, (struct step){.kind = S_STORE});
	push(sc, (struct step){.kind = S_CONFIRM});
}

static void script_build(struct script *sc, uint64_t seed, int64_t idle_timeout)
{
	int64_t next_offset[NPART] = {0, 0};
	int64_t clock_ts[NPART] = {-3000, -2500}; /* crosses the epoch */
	int64_t wall = 0;

	rng_state = seed;
	sc->n = 0;
	while (sc->n < MAX_STEPS - 40) {
		/* Every partition reads something between two pauses (see the header comment). */
		for (int32_t q = 0; q < NPART; q++)
			push_read(sc, q, next_offset, clock_ts);
		int len = (int)rng_range(10, 70);
		for (int i = 0; i < len && sc->n < MAX_STEPS - 40; i++) {
			int32_t q = (int32_t)(rng() % NPART);
			if (rng() % 40 == 0)
				push(sc, (struct step){
				             .kind = S_BAD, .part = q, .offset = next_offset[q]++});
			else
				push_read(sc, q, next_offset, clock_ts);
			if (rng() % 15 == 0)
				push_commit(sc);
		}
		/* A pause: the input stops long enough for the idle timeout, then commits. */
		int64_t gap = rng_range(0, 3000);
		push(sc, (struct step){.kind = S_PAUSE,
		                       .clock_a = wall,
		                       .clock_b = wall + idle_timeout + gap});
		wall += idle_timeout + gap;
		push_commit(sc);
	}
}

struct run_stats {
	struct agg_counters c;
	int idle_started;
};

/* Runs the script from the durable state until step crash_at (-1: to the end, then end of
 * input). Every aggregate emitted is appended to log. Returns true when it crashed. */
static bool run(const struct script *sc, const struct agg_config *base, struct durable *d,
                int crash_at, json_t *log, struct run_stats *rs)
{
	struct test_sink sink = {.out = log};
	struct agg_config cfg = *base;
	char err[512];
	int64_t start[NPART];
	struct agg_outcome out;

	cfg.emit_ctx = &sink;
	struct agg_engine *e = agg_engine_new(&cfg, err, sizeof(err));
	assert_non_null(e);
	for (int32_t q = 0; q < NPART; q++) {
		start[q] = d->has[q] ? d->offset[q] : 0;
		if (agg_engine_restore(e, q, start[q], d->has[q] ? d->meta[q] : NULL, err,
		                       sizeof(err)) != AGG_OK)
			fail_msg("restore: %s", err);
	}
	for (int i = 0; i < sc->n; i++) {
		if (i == crash_at) {
			if (rs)
				agg_engine_counters(e, &rs->c);
			agg_engine_free(e);
			return true;
		}
		const struct step *st = &sc->s[i];
		enum agg_status rc = AGG_OK;
		switch (st->kind) {
		case S_READ:
			if (st->offset >= start[st->part])
				rc = agg_engine_add(e, st->part, st->offset, &st->r, &out, err,
				                    sizeof(err));
			break;
		case S_BAD:
			if (st->offset >= start[st->part])
				rc = agg_engine_skip(e, st->part, st->offset, err, sizeof(err));
			break;
		case S_PAUSE:
			if (i > d->frontier && i > d->wall) {
				int n1 = agg_engine_advance_idle(e, st->clock_a, err, sizeof(err));
				int n2 = agg_engine_advance_idle(e, st->clock_b, err, sizeof(err));
				assert_true(n1 >= 0 && n2 >= 0);
				if (rs)
					rs->idle_started += n1 + n2;
			}
			break;
		case S_STORE:
			/* Every aggregate emitted so far is "acknowledged": the sink is
			 * synchronous. */
			for (int32_t q = 0; q < NPART; q++) {
				struct agg_commit cp;
				if (!agg_engine_commit_point(e, q, &cp))
					continue;
				d->has[q] = true;
				d->offset[q] = cp.offset;
				snprintf(d->meta[q], sizeof(d->meta[q]), "%s", cp.metadata);
			}
			if (i > d->frontier)
				d->frontier = i;
			break;
		case S_CONFIRM:
			for (int32_t q = 0; q < NPART && rc == AGG_OK; q++)
				if (d->has[q])
					rc = agg_engine_committed(e, q, d->meta[q], err,
					                          sizeof(err));
			break;
		}
		if (rc != AGG_OK)
			fail_msg("step %d: status %d: %s", i, rc, err);
	}
	assert_int_equal(agg_engine_close_all(e, err, sizeof(err)), AGG_OK);
	if (rs)
		agg_engine_counters(e, &rs->c);
	agg_engine_free(e);
	return false;
}

static char *identity(json_t *agg)
{
	char *s = NULL;
	int n = asprintf(&s, "%s|%s|%s|%s|%" PRId64 "|%" PRId64,
	                 json_string_value(json_object_get(agg, "site")),
	                 json_string_value(json_object_get(agg, "device")),
	                 json_string_value(json_object_get(agg, "sensor")),
	                 json_string_value(json_object_get(agg, "metric")),
	                 (int64_t)json_integer_value(json_object_get(agg, "window_start")),
	                 (int64_t)json_integer_value(json_object_get(agg, "window_ms")));
	assert_true(n > 0);
	return s;
}

/* Aggregates by identity; fails when one identity was emitted with two different values. */
static json_t *by_identity(json_t *log, int *resent)
{
	json_t *map = json_object();
	size_t i;
	json_t *agg;
	*resent = 0;
	json_array_foreach(log, i, agg)
	{
		char *id = identity(agg);
		json_t *seen = json_object_get(map, id);
		if (seen) {
			if (!json_equal(seen, agg)) {
				char *a = json_dumps(seen, JSON_COMPACT | JSON_SORT_KEYS);
				char *b = json_dumps(agg, JSON_COMPACT | JSON_SORT_KEYS);
				fail_msg("%s emitted twice with different values:\n%s\n%s", id, a,
				         b);
			}
			(*resent)++;
		} else {
			json_object_set(map, id, agg);
		}
		free(id);
	}
	return map;
}

/* The union of what every run emitted is the uninterrupted run's output, value for value. */
static void expect_same(json_t *reference, json_t *log, const char *what, int *resent_total)
{
	int resent;
	json_t *got = by_identity(log, &resent);
	*resent_total += resent;
	if (!json_equal(got, reference)) {
		const char *k;
		json_t *v;
		json_object_foreach(reference, k, v) if (!json_equal(json_object_get(got, k), v))
		    fail_msg("%s: %s missing or different", what, k);
		json_object_foreach(got, k, v) if (!json_object_get(reference, k))
		    fail_msg("%s: %s emitted but not in the uninterrupted run", what, k);
	}
	json_decref(got);
}

static void crash_scenario(const struct agg_config *cfg, uint64_t seed)
{
	static struct script sc;
	script_build(&sc, seed, cfg->idle_timeout_ms);

	struct durable d0 = {.frontier = -1, .wall = -1};
	json_t *ref_log = json_array();
	struct run_stats ref_stats = {0};
	assert_false(run(&sc, cfg, &d0, -1, ref_log, &ref_stats));
	int resent;
	json_t *reference = by_identity(ref_log, &resent);
	assert_int_equal(resent, 0);
	/* The script exercises what it is meant to. */
	assert_true(json_object_size(reference) > 50);
	assert_true(ref_stats.c.late > 10);
	assert_true(ref_stats.c.duplicates > 10);
	assert_true(ref_stats.c.invalid == 0);
	assert_true(ref_stats.idle_started > 3);

	int resent_total = 0;
	uint64_t replayed = 0;
	/* One crash at every step. */
	for (int i = 0; i < sc.n; i++) {
		struct durable d = {.frontier = -1, .wall = -1};
		json_t *log = json_array();
		struct run_stats rs = {0};
		char what[64];
		assert_true(run(&sc, cfg, &d, i, log, NULL));
		assert_false(run(&sc, cfg, &d, -1, log, &rs));
		replayed += rs.c.replayed;
		snprintf(what, sizeof(what), "crash at step %d", i);
		expect_same(reference, log, what, &resent_total);
		json_decref(log);
	}
	/* Two and three crashes, the later ones often while re-reading. */
	rng_state = seed ^ 0x5deece66dULL;
	for (int k = 0; k < 150; k++) {
		struct durable d = {.frontier = -1, .wall = -1};
		json_t *log = json_array();
		char what[96];
		int c1 = (int)rng_range(0, sc.n - 1), c2 = (int)rng_range(0, sc.n - 1);
		int c3 = k % 3 ? -1 : (int)rng_range(0, sc.n - 1);
		assert_true(run(&sc, cfg, &d, c1, log, NULL));
		assert_true(run(&sc, cfg, &d, c2, log, NULL));
		if (c3 >= 0)
			assert_true(run(&sc, cfg, &d, c3, log, NULL));
		assert_false(run(&sc, cfg, &d, -1, log, NULL));
		snprintf(what, sizeof(what), "crashes at steps %d, %d, %d", c1, c2, c3);
		expect_same(reference, log, what, &resent_total);
		json_decref(log);
	}
	/* A restart after a different wall-clock history: pauses the crashed run went through are
	 * over, and only those made durable by a commit are replayed (from the metadata). The
	 * output may then differ from the uninterrupted run's (other readings are late), but no
	 * window may ever be emitted twice with different values. */
	for (int i = 0; i < sc.n; i++) {
		struct durable d = {.frontier = -1, .wall = -1};
		json_t *log = json_array();
		json_t *map;
		int r;
		assert_true(run(&sc, cfg, &d, i, log, NULL));
		d.wall = i;
		assert_false(run(&sc, cfg, &d, -1, log, NULL));
		map = by_identity(log, &r);
		json_decref(map);
		json_decref(log);
	}
	/* Restarts did re-read emitted windows (skipped) and re-send some windows (identical). */
	assert_true(replayed > 0);
	assert_true(resent_total > 0);
	json_decref(reference);
	json_decref(ref_log);
}

static void test_crash_tumbling(void **state)
{
	(void)state;
	struct agg_config c = test_config(NULL, 1000, 1000, 300);
	c.idle_timeout_ms = 1000;
	crash_scenario(&c, 0x9e3779b97f4a7c15ULL);
}

static void test_crash_hopping_grouped(void **state)
{
	(void)state;
	struct agg_config c = test_config(NULL, 1000, 400, 200);
	c.idle_timeout_ms = 1000;
	c.group_by = AGG_BY_SITE | AGG_BY_METRIC;
	crash_scenario(&c, 0x243f6a8885a308d3ULL);
}

/* The commit point by hand: the oldest offset an open window needs, and what was emitted. */
static void test_commit_point(void **state)
{
	(void)state;
	struct test_sink sink = {.out = json_array()};
	struct agg_config c = test_config(&sink, 1000, 1000, 0);
	char err[300];
	struct agg_engine *e = agg_engine_new(&c, err, sizeof(err));
	struct agg_commit cp;
	struct agg_outcome out;
	struct agg_reading r;

	assert_int_equal(agg_engine_commit_point(e, 0, &cp), 0); /* nothing consumed */
	r = test_reading("s", "a", "x", "m", 1, 100);
	assert_int_equal(agg_engine_add(e, 0, 10, &r, &out, err, sizeof(err)), AGG_OK);
	r = test_reading("s", "b", "x", "m", 1, 1100);
	assert_int_equal(agg_engine_add(e, 0, 11, &r, &out, err, sizeof(err)), AGG_OK);
	/* [0,1000) of a closed at 11; b's window needs 11. */
	assert_int_equal(agg_engine_commit_point(e, 0, &cp), 1);
	assert_int_equal(cp.offset, 11);
	assert_string_equal(cp.metadata, "wm=1100;next=12");
	r = test_reading("s", "b", "x", "m", 1, 1200);
	assert_int_equal(agg_engine_add(e, 0, 12, &r, &out, err, sizeof(err)), AGG_OK);
	r = test_reading("s", "a", "x", "m", 1, 1300);
	assert_int_equal(agg_engine_add(e, 0, 13, &r, &out, err, sizeof(err)), AGG_OK);
	assert_int_equal(agg_engine_commit_point(e, 0, &cp), 1);
	assert_int_equal(cp.offset, 11);
	r = test_reading("s", "a", "x", "m", 1, 2000);
	assert_int_equal(agg_engine_add(e, 0, 20, &r, &out, err, sizeof(err)), AGG_OK);
	assert_int_equal(json_array_size(sink.out), 3);
	assert_int_equal(agg_engine_commit_point(e, 0, &cp), 1);
	assert_int_equal(cp.offset, 20);
	assert_string_equal(cp.metadata, "wm=2000;next=21");
	/* No open window: the next offset. */
	assert_int_equal(agg_engine_close_all(e, err, sizeof(err)), AGG_OK);
	assert_int_equal(agg_engine_commit_point(e, 0, &cp), 1);
	assert_int_equal(cp.offset, 21);
	assert_string_equal(cp.metadata, "wm=3000;next=21");
	agg_engine_free(e);
	json_decref(sink.out);
}

/* After a restore, a re-read reading of an emitted window is a replay, a new one is late. */
static void test_restore_replay_vs_late(void **state)
{
	(void)state;
	struct test_sink sink = {.out = json_array()};
	struct agg_config c = test_config(&sink, 1000, 1000, 0);
	char err[300];
	struct agg_engine *e = agg_engine_new(&c, err, sizeof(err));
	struct agg_outcome out;
	struct agg_reading r;

	assert_int_equal(agg_engine_restore(e, 0, 5, "wm=1000;next=9", err, sizeof(err)), AGG_OK);
	r = test_reading("s", "a", "x", "m", 1, 500); /* offset 5 < 9, window emitted */
	assert_int_equal(agg_engine_add(e, 0, 5, &r, &out, err, sizeof(err)), AGG_OK);
	assert_int_equal(out.replayed, 1);
	assert_int_equal(out.late, 0);
	r = test_reading("s", "a", "x", "m", 2, 1500); /* open window: rebuilt */
	assert_int_equal(agg_engine_add(e, 0, 6, &r, &out, err, sizeof(err)), AGG_OK);
	assert_int_equal(out.added, 1);
	r = test_reading("s", "a", "x", "m", 3, 999); /* offset 9: new, and late */
	assert_int_equal(agg_engine_add(e, 0, 9, &r, &out, err, sizeof(err)), AGG_OK);
	assert_int_equal(out.late, 1);
	assert_int_equal(out.replayed, 0);
	struct agg_commit cp;
	assert_int_equal(agg_engine_commit_point(e, 0, &cp), 1);
	assert_int_equal(cp.offset, 6);
	assert_string_equal(cp.metadata, "wm=1500;next=10");

	/* While re-reading, the commit keeps the earlier run's frontier and the partition is not
	 * idle. */
	struct agg_config ci = c;
	ci.idle_timeout_ms = 10;
	struct agg_engine *f = agg_engine_new(&ci, err, sizeof(err));
	assert_int_equal(agg_engine_restore(f, 0, 3, "wm=1000;next=50", err, sizeof(err)), AGG_OK);
	r = test_reading("s", "a", "x", "m", 2, 1500);
	assert_int_equal(agg_engine_add(f, 0, 3, &r, &out, err, sizeof(err)), AGG_OK);
	assert_int_equal(agg_engine_commit_point(f, 0, &cp), 1);
	assert_int_equal(cp.offset, 3);
	assert_string_equal(cp.metadata, "wm=1500;next=50");
	assert_int_equal(agg_engine_advance_idle(f, 0, err, sizeof(err)), 0);
	assert_int_equal(agg_engine_advance_idle(f, 1000000, err, sizeof(err)), 0);

	/* A restored idle advance takes effect at its offset (once the record before it has been
	 * processed, as in the run that decided it), and its windows are emitted then. */
	assert_int_equal(agg_engine_restore(f, 1, 6, "wm=1000;next=9;adv=2000@8", err, sizeof(err)),
	                 AGG_OK);
	r = test_reading("t", "a", "x", "m", 4, 1700);
	assert_int_equal(agg_engine_add(f, 1, 6, &r, &out, err, sizeof(err)), AGG_OK);
	assert_int_equal(json_array_size(sink.out), 0);
	assert_int_equal(agg_engine_commit_point(f, 1, &cp), 1);
	assert_int_equal(cp.offset, 6);
	assert_string_equal(cp.metadata, "wm=1700;next=9;adv=2000@8");
	r = test_reading("t", "a", "x", "m", 5, 1800);
	assert_int_equal(agg_engine_add(f, 1, 7, &r, &out, err, sizeof(err)), AGG_OK);
	assert_int_equal(out.added, 1);
	assert_int_equal(json_array_size(sink.out), 1);
	assert_int_equal(test_int(&sink, 0, "count"), 2);
	assert_int_equal(agg_engine_commit_point(f, 1, &cp), 1);
	assert_string_equal(cp.metadata, "wm=2000;next=9");
	r = test_reading("t", "a", "x", "m", 6, 1900);
	assert_int_equal(agg_engine_add(f, 1, 8, &r, &out, err, sizeof(err)), AGG_OK);
	assert_int_equal(out.late, 1);
	/* Records before the advance's offset that never come (the first read is past it): it
	 * applies before the first one that does. */
	assert_int_equal(agg_engine_restore(f, 2, 2, "wm=1000;next=9;adv=2000@8", err, sizeof(err)),
	                 AGG_OK);
	r = test_reading("u", "a", "x", "m", 4, 1700);
	assert_int_equal(agg_engine_add(f, 2, 2, &r, &out, err, sizeof(err)), AGG_OK);
	assert_int_equal(agg_engine_add(f, 2, 12, &r, &out, err, sizeof(err)), AGG_OK);
	assert_int_equal(json_array_size(sink.out), 2);
	assert_int_equal(out.late, 1);

	/* Malformed metadata changes nothing and says why. */
	assert_int_equal(agg_engine_restore(f, 1, 0, "garbage", err, sizeof(err)), AGG_INVALID);
	assert_non_null(strstr(err, "commit metadata"));
	assert_int_equal(agg_engine_commit_point(f, 1, &cp), 1);
	assert_int_equal(cp.offset, 9);
	agg_engine_free(f);
	agg_engine_free(e);
	json_decref(sink.out);
}

/* A record the engine never sees (dead-lettered by the stream) just before a restored advance's
 * offset: skipping past it, which the service does while it takes a checkpoint, brings the
 * advance due and emits its windows then. The emitted counter tells the caller, which must not
 * commit that partition in the same checkpoint (its flush came before these aggregates). */
static void test_skip_brings_restored_advance_due(void **state)
{
	(void)state;
	struct test_sink sink = {.out = json_array()};
	struct agg_config c = test_config(&sink, 1000, 1000, 0);
	char err[300];
	struct agg_engine *e = agg_engine_new(&c, err, sizeof(err));
	struct agg_outcome out;
	struct agg_counters before, after;
	struct agg_commit cp;

	assert_int_equal(agg_engine_restore(e, 0, 4, "wm=1000;next=9;adv=2000@8", err, sizeof(err)),
	                 AGG_OK);
	struct agg_reading r = test_reading("s", "a", "x", "m", 1, 1500);
	for (int64_t off = 4; off < 7; off++)
		assert_int_equal(agg_engine_add(e, 0, off, &r, &out, err, sizeof(err)), AGG_OK);
	assert_int_equal(json_array_size(sink.out), 0);
	agg_engine_counters(e, &before);
	/* Offset 7 was dead-lettered; the stream's position says 8 is next. */
	assert_int_equal(agg_engine_skip(e, 0, 7, err, sizeof(err)), AGG_OK);
	agg_engine_counters(e, &after);
	assert_int_equal(json_array_size(sink.out), 1);
	assert_int_equal(after.emitted, before.emitted + 1);
	assert_int_equal(test_int(&sink, 0, "count"), 1);
	assert_int_equal(agg_engine_commit_point(e, 0, &cp), 1);
	assert_int_equal(cp.offset, 8);
	assert_string_equal(cp.metadata, "wm=2000;next=9");
	/* Skipping what is already behind the position changes nothing. */
	assert_int_equal(agg_engine_skip(e, 0, 7, err, sizeof(err)), AGG_OK);
	agg_engine_counters(e, &before);
	assert_int_equal(before.emitted, after.emitted);
	agg_engine_free(e);
	json_decref(sink.out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_commit_point),
	    cmocka_unit_test(test_restore_replay_vs_late),
	    cmocka_unit_test(test_skip_brings_restored_advance_due),
	    cmocka_unit_test(test_crash_tumbling),
	    cmocka_unit_test(test_crash_hopping_grouped),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
