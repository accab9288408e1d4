/* Exactly-once episodes across kill -9: a deterministic input is run once without interruption
 * and then again with crashes at many points (the engine thrown away, outputs since the last
 * commit kept or lost at random, restart from the committed offsets and metadata). The distinct
 * events must equal the uninterrupted run's, and no command may be missing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "helpers.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PARTS 3
#define DEVICES 4 /* per partition */
#define PER_PART 400
#define MAX_CRASHES 64

static const char rules_text[] =
    /* Commands and events on every sensor of metric m. */
    "[rule both]\nmetric = m\nlow = 140\nhigh = 160\ntopic = {site}/{device}/set\n"
    "low_payload = {\"on\":true,\"v\":{value}}\nhigh_payload = {\"on\":false}\n"
    "threshold = 150\nhysteresis = 5\n"
    /* Events only, no hysteresis, on some devices. */
    "[rule spike]\nmetric = m\ndevice = d?\nthreshold = 165\n"
    /* Commands only, on one partition's sites. */
    "[rule cool]\nmetric = m\nsite = site-1\nlow = 130\nhigh = 170\ntopic = {device}/fan\n"
    "low_payload = off\nhigh_payload = on\n";

struct input {
	char site[24], device[24];
	struct act_reading r;
};

static struct input inputs[PARTS][PER_PART];

static uint64_t rng_next(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static double rng_unit(uint64_t *s)
{
	return (double)(rng_next(s) >> 11) / 9007199254740992.0;
}

/* Random walks that cross every threshold often, with repeated readings (an upstream
 * redelivery) now and then. */
static void inputs_make(void)
{
	uint64_t seed = 0x2545F4914F6CDD1Dull;
	for (int p = 0; p < PARTS; p++) {
		double level[DEVICES];
		int64_t ts[DEVICES];
		for (int d = 0; d < DEVICES; d++)
			level[d] = 150, ts[d] = 1700000000000 + d;
		for (int i = 0; i < PER_PART; i++) {
			struct input *in = &inputs[p][i];
			int d = (int)(rng_next(&seed) % DEVICES);
			snprintf(in->site, sizeof(in->site), "site-%d", p);
			snprintf(in->device, sizeof(in->device), d == 3 ? "dev%d" : "d%d", d);
			bool repeat = i > 0 && rng_unit(&seed) < 0.05;
			if (repeat) {
				*in = inputs[p][i - 1];
			} else {
				level[d] += (rng_unit(&seed) - 0.5) * 30;
				if (level[d] < 120)
					level[d] = 120;
				if (level[d] > 180)
					level[d] = 180;
				ts[d] += 1000 + (int64_t)(rng_next(&seed) % 500);
				in->r = (struct act_reading){NULL, NULL, "s", "m", level[d], ts[d]};
			}
			in->r.site = in->site;
			in->r.device = in->device;
		}
	}
}

/* One consumer incarnation after another, over the same partitions. */
struct run {
	struct recorder out; /* everything that reached the output topics */
	size_t acked;        /* outputs known to be acknowledged (at the last checkpoint) */
	int64_t committed[PARTS];
	char meta[PARTS][ACT_META_MAX];
	size_t crashes;
};

static struct actuator *incarnation_start(struct run *run)
{
	struct actuator *a = actuator_from(rules_text, 1000);
	char err[256];
	for (int p = 0; p < PARTS; p++)
		if (actuator_partition_restore(a, p, run->meta[p], err, sizeof(err)) < 0)
			fail_msg("restore: %s", err);
	return a;
}

static void checkpoint(struct run *run, struct actuator *a)
{
	/* Outputs are acknowledged first, then offsets are committed (stream.h's rule). */
	run->acked = run->out.len;
	for (int p = 0; p < PARTS; p++) {
		int64_t off;
		char meta[ACT_META_MAX];
		if (actuator_commit_point(a, p, &off, meta, sizeof(meta)) == 1) {
			assert_true(off >= run->committed[p]); /* commits never go backwards */
			run->committed[p] = off;
			memcpy(run->meta[p], meta, sizeof(meta));
		}
	}
}

/* Runs the whole input, crashing after the processed-reading counts listed in crash_at
 * (ascending). lose selects, per crash, whether unacknowledged outputs are lost. */
static void run_input(struct run *run, const size_t *crash_at, size_t ncrash, uint64_t lose,
                      size_t checkpoint_every)
{
	memset(run, 0, sizeof(*run));
	struct actuator *a = incarnation_start(run);
	struct act_sink sink = recorder_sink(&run->out);
	int64_t pos[PARTS] = {0};
	size_t steps = 0, next_crash = 0;
	char err[256];
	for (;;) {
		bool any = false;
		for (int p = 0; p < PARTS; p++) {
			if (pos[p] >= PER_PART)
				continue;
			any = true;
			const struct input *in = &inputs[p][pos[p]];
			if (actuator_process(a, p, pos[p], &in->r, in->r.ts + 1, &sink, err,
			                     sizeof(err)) < 0)
				fail_msg("process: %s", err);
			pos[p]++;
			steps++;
			if (steps % checkpoint_every == 0)
				checkpoint(run, a);
			if (next_crash < ncrash && steps == crash_at[next_crash]) {
				/* kill -9: state gone; unacknowledged outputs maybe lost. */
				if (lose >> (next_crash % 64) & 1) {
					for (size_t i = run->acked; i < run->out.len; i++)
						free(run->out.lines[i]);
					run->out.len = run->acked;
				}
				actuator_free(a);
				a = incarnation_start(run);
				for (int q = 0; q < PARTS; q++)
					pos[q] = run->committed[q];
				run->crashes++;
				next_crash++;
			}
		}
		if (!any)
			break;
	}
	actuator_free(a);
}

static int cmp_str(const void *x, const void *y)
{
	return strcmp(*(char *const *)x, *(char *const *)y);
}

/* Sorted, distinct lines of one kind (events have "state", commands "topic"). */
static size_t distinct(const struct recorder *rec, const char *kind, char ***out)
{
	char **v = malloc((rec->len + 1) * sizeof(*v));
	size_t n = 0;
	for (size_t i = 0; i < rec->len; i++)
		if (strstr(rec->lines[i], kind))
			v[n++] = rec->lines[i];
	qsort(v, n, sizeof(*v), cmp_str);
	size_t u = 0;
	for (size_t i = 0; i < n; i++)
		if (u == 0 || strcmp(v[u - 1], v[i]) != 0)
			v[u++] = v[i];
	*out = v;
	return u;
}

static bool contains(char **sorted, size_t n, const char *s)
{
	return bsearch(&s, sorted, n, sizeof(*sorted), cmp_str) != NULL;
}

/* The side the uninterrupted run's device (topic) was in after the reading at ts. */
static const char *reference_side(const struct recorder *ref, const char *topic, int64_t ts)
{
	const char *side = NULL;
	int64_t best = INT64_MIN;
	for (size_t i = 0; i < ref->len; i++) {
		json_t *j = json_loads(ref->lines[i], 0, NULL);
		const char *t = json_string_value(json_object_get(j, "topic"));
		int64_t rts = json_integer_value(json_object_get(j, "reading_ts"));
		if (t && strcmp(t, topic) == 0 && rts <= ts && rts >= best) {
			best = rts;
			side = strcmp(json_string_value(json_object_get(j, "side")), "low") == 0
			           ? "low"
			           : "high";
		}
		json_decref(j);
	}
	return side;
}

struct totals {
	size_t scenarios, crashes, extra_commands, repeated_events;
};

static void compare(const struct run *ref, const struct run *run, struct totals *tot)
{
	char **re, **ce, **rc, **cc;
	size_t nre = distinct(&ref->out, "\"state\"", &re);
	size_t nce = distinct(&run->out, "\"state\"", &ce);
	size_t nrc = distinct(&ref->out, "\"topic\"", &rc);
	size_t ncc = distinct(&run->out, "\"topic\"", &cc);
	/* Events: the same set, so the same identities with the same content. */
	if (nre != nce)
		fail_msg("%zu distinct events after %zu crashes, %zu without", nce, run->crashes,
		         nre);
	for (size_t i = 0; i < nre; i++)
		if (strcmp(re[i], ce[i]) != 0)
			fail_msg("event differs after %zu crashes:\n  got  %s\n  want %s",
			         run->crashes, ce[i], re[i]);
	/* Commands: none missing; extras only repeat the state the device was already in. */
	for (size_t i = 0; i < nrc; i++)
		if (!contains(cc, ncc, rc[i]))
			fail_msg("command missing after %zu crashes: %s", run->crashes, rc[i]);
	size_t extra = 0;
	for (size_t i = 0; i < ncc; i++) {
		if (contains(rc, nrc, cc[i]))
			continue;
		extra++;
		json_t *j = json_loads(cc[i], 0, NULL);
		const char *want =
		    reference_side(&ref->out, json_string_value(json_object_get(j, "topic")),
		                   json_integer_value(json_object_get(j, "reading_ts")));
		if (!want || strcmp(want, json_string_value(json_object_get(j, "side"))) != 0)
			fail_msg("extra command changes state: %s", cc[i]);
		json_decref(j);
	}
	assert_true(extra <= run->crashes * PARTS * DEVICES * 2);
	/* Events sent twice (same identity and content) can only be the unacknowledged ones a
	 * crash left behind; count them to see replay keeps them few. */
	size_t all_events = 0;
	for (size_t i = 0; i < run->out.len; i++)
		all_events += strstr(run->out.lines[i], "\"state\"") != NULL;
	tot->repeated_events += all_events - nce;
	tot->scenarios++;
	tot->crashes += run->crashes;
	tot->extra_commands += extra;
	free(re);
	free(ce);
	free(rc);
	free(cc);
}

static struct run reference;

static int setup(void **state)
{
	(void)state;
	inputs_make();
	run_input(&reference, NULL, 0, 0, 25);
	/* The input really exercises what is tested. */
	size_t events = 0, commands = 0;
	for (size_t i = 0; i < reference.out.len; i++)
		strstr(reference.out.lines[i], "\"state\"") ? events++ : commands++;
	char **d;
	assert_int_equal(distinct(&reference.out, "\"state\"", &d), events); /* no repeats */
	free(d);
	if (events < 100 || commands < 50)
		fail_msg("input too tame: %zu events, %zu commands", events, commands);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	recorder_clear(&reference.out);
	return 0;
}

static void test_single_crash_everywhere(void **state)
{
	(void)state;
	struct totals tot = {0};
	size_t total = PARTS * PER_PART;
	/* Unacknowledged outputs are lost at one point and kept at the next. */
	for (size_t at = 1; at < total; at += 3) {
		struct run run;
		run_input(&run, &at, 1, at & 1 ? ~0ull : 0, 25);
		compare(&reference, &run, &tot);
		recorder_clear(&run.out);
	}
	print_message("single crashes: %zu scenarios, %zu crashes, %zu commands and %zu events "
	              "sent again\n",
	              tot.scenarios, tot.crashes, tot.extra_commands, tot.repeated_events);
}

/* Many crashes per run, some while still replaying what the previous one emitted, with
 * checkpoints at varying intervals. */
static void test_repeated_crashes(void **state)
{
	(void)state;
	struct totals tot = {0};
	uint64_t seed = 0x9E3779B97F4A7C15ull;
	size_t total = PARTS * PER_PART;
	for (int scenario = 0; scenario < 150; scenario++) {
		size_t crash_at[MAX_CRASHES];
		size_t n = 1 + rng_next(&seed) % 20, at = 0;
		size_t spacing = 1 + rng_next(&seed) % 120;
		size_t k = 0;
		for (; k < n; k++) {
			at += 1 + rng_next(&seed) % spacing;
			if (at >= total)
				break;
			crash_at[k] = at;
		}
		size_t every = 1 + rng_next(&seed) % 60;
		struct run run;
		run_input(&run, crash_at, k, rng_next(&seed), every);
		compare(&reference, &run, &tot);
		recorder_clear(&run.out);
	}
	print_message("repeated crashes: %zu scenarios, %zu crashes, %zu commands and %zu events "
	              "sent again\n",
	              tot.scenarios, tot.crashes, tot.extra_commands, tot.repeated_events);
}

/* Commit points: the earliest open episode holds the offset back; the metadata keeps the
 * emitted watermark through a replay; foreign metadata is refused. */
static void test_commit_point_and_metadata(void **state)
{
	(void)state;
	struct actuator *a = actuator_from(rules_text, 100);
	struct recorder rec = {0};
	struct act_sink sink = recorder_sink(&rec);
	char err[256], meta[ACT_META_MAX];
	int64_t off;
	/* Each reading is a new one (its time is its offset): the engine ignores a reading no
	 * newer than its sensor's last. */
	struct act_reading r = {"site-0", "d1", "s", "m", 145, 10};
	assert_int_equal(actuator_process(a, 0, 10, &r, 0, &sink, err, sizeof(err)), 0);
	assert_int_equal(actuator_commit_point(a, 0, &off, meta, sizeof(meta)), 1);
	assert_int_equal(off, 11);
	assert_string_equal(meta, "actuator v1 emitted=11");
	r.value = 155; /* opens "both" at offset 11 */
	r.ts = 11;
	assert_int_equal(actuator_process(a, 0, 11, &r, 0, &sink, err, sizeof(err)), 0);
	r.device = "d2"; /* opens another at 12 */
	r.ts = 12;
	assert_int_equal(actuator_process(a, 0, 12, &r, 0, &sink, err, sizeof(err)), 0);
	r.value = 100;
	r.ts = 13;
	assert_int_equal(actuator_process(a, 0, 13, &r, 0, &sink, err, sizeof(err)), 0);
	assert_int_equal(actuator_commit_point(a, 0, &off, meta, sizeof(meta)), 1);
	assert_int_equal(off, 11);
	assert_string_equal(meta, "actuator v1 emitted=14");
	r.device = "d1"; /* closes the one from offset 11: nothing open */
	r.ts = 14;
	assert_int_equal(actuator_process(a, 0, 14, &r, 0, &sink, err, sizeof(err)), 0);
	assert_int_equal(actuator_commit_point(a, 0, &off, meta, sizeof(meta)), 1);
	assert_int_equal(off, 15);

	/* Restart from a commit at 11 whose outputs went up to 14: replay emits nothing below. */
	actuator_free(a);
	a = actuator_from(rules_text, 100);
	assert_int_equal(
	    actuator_partition_restore(a, 0, "actuator v1 emitted=14", err, sizeof(err)), 0);
	size_t before = rec.len;
	r = (struct act_reading){"site-0", "d1", "s", "m", 155, 11};
	assert_int_equal(actuator_process(a, 0, 11, &r, 0, &sink, err, sizeof(err)), 0);
	assert_int_equal(rec.len, before);
	assert_int_equal(actuator_stats(a)->replayed, 1); /* the started event */
	/* A commit in the middle of the replay keeps the watermark. */
	assert_int_equal(actuator_commit_point(a, 0, &off, meta, sizeof(meta)), 1);
	assert_int_equal(off, 11);
	assert_string_equal(meta, "actuator v1 emitted=14");
	/* From the watermark on, outputs flow again: the same command and "ended" event as the
	 * first run made at offset 14. */
	r.value = 100;
	r.ts = 14;
	assert_int_equal(actuator_process(a, 0, 14, &r, 0, &sink, err, sizeof(err)), 0);
	assert_int_equal(rec.len, before + 2);
	assert_string_equal(rec.lines[before], rec.lines[before - 2]);
	assert_string_equal(rec.lines[before + 1], rec.lines[before - 1]);

	static const char *const foreign[] = {
	    "aggregator v1 wm=5", "actuator v1 emitted=", "actuator v1 emitted=-4",
	    "actuator v1 emitted=12x", "actuator v1 emitted=99999999999999999999"};
	for (size_t i = 0; i < sizeof(foreign) / sizeof(*foreign); i++) {
		assert_int_equal(actuator_partition_restore(a, 1, foreign[i], err, sizeof(err)),
		                 -1);
		assert_non_null(strstr(err, "partition 1: commit metadata"));
	}
	assert_int_equal(actuator_partition_restore(a, 1, NULL, err, sizeof(err)), 0);
	assert_int_equal(actuator_partition_restore(a, 1, "", err, sizeof(err)), 0);
	assert_int_equal(actuator_partition_restore(a, -1, "", err, sizeof(err)), -1);

	/* Revocation forgets the partition's states and episodes. */
	r = (struct act_reading){"site-1", "d1", "s", "m", 155, 1};
	assert_int_equal(actuator_process(a, 1, 0, &r, 0, &sink, err, sizeof(err)), 0);
	assert_int_equal(actuator_open_episodes(a), 1);
	size_t states = actuator_state_count(a);
	actuator_partition_drop(a, 1);
	assert_int_equal(actuator_open_episodes(a), 0);
	assert_true(actuator_state_count(a) < states);
	assert_int_equal(actuator_commit_point(a, 1, &off, meta, sizeof(meta)), 0);
	assert_int_equal(actuator_commit_point(a, 0, &off, meta, sizeof(meta)), 1);
	actuator_partition_drop(a, 77);
	actuator_free(a);
	recorder_clear(&rec);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_commit_point_and_metadata),
	    cmocka_unit_test(test_single_crash_everywhere),
	    cmocka_unit_test(test_repeated_crashes),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
