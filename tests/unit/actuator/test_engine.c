/* The decision engine: the command state machine (edges, values exactly on a threshold,
 * repeats), topic refusal, the state cap, re-assertion, episodes, end of input, reloads, and the
 * records it produces. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include "helpers.h"
#include "records.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define HEATING                                                                                    \
	"[rule heating]\nmetric = temperature\nlow = 20\nhigh = 25\n"                              \
	"topic = {site}/{device}/heatpump/set\nlow_payload = {\"status\":\"1\"}\n"                 \
	"high_payload = {\"status\":\"0\"}\n"
#define PRESSURE "[rule overpressure]\nmetric = pressure\nthreshold = 150\nhysteresis = 5\n"

struct fixture {
	struct actuator *a;
	struct recorder rec;
	struct act_sink sink;
	int64_t offset;
	char err[512];
};

static void fx_init(struct fixture *fx, const char *rules, size_t max_states)
{
	memset(fx, 0, sizeof(*fx));
	fx->a = actuator_from(rules, max_states);
	fx->sink = recorder_sink(&fx->rec);
}

static void fx_free(struct fixture *fx)
{
	actuator_free(fx->a);
	recorder_clear(&fx->rec);
}

/* Feeds one reading at the next offset of partition 0; returns the engine's status. */
static int feed(struct fixture *fx, const char *device, const char *metric, double value,
                int64_t ts)
{
	struct act_reading r = {"home-1", device, "s1", metric, value, ts};
	fx->err[0] = 0;
	return actuator_process(fx->a, 0, fx->offset++, &r, 1000 + ts, &fx->sink, fx->err,
	                        sizeof(fx->err));
}

static void feed_ok(struct fixture *fx, const char *device, const char *metric, double value,
                    int64_t ts)
{
	if (feed(fx, device, metric, value, ts) != 0)
		fail_msg("process: %s", fx->err);
}

static const char *str(const json_t *j, const char *k)
{
	const char *s = json_string_value(json_object_get(j, k));
	if (!s)
		fail_msg("no string field %s", k);
	return s;
}

static double num(const json_t *j, const char *k)
{
	const json_t *v = json_object_get(j, k);
	if (!json_is_number(v))
		fail_msg("no number field %s", k);
	return json_number_value(v);
}

static void expect_command(const struct fixture *fx, size_t i, const char *side, double value)
{
	json_t *j = recorder_get(&fx->rec, i);
	assert_string_equal(str(j, "side"), side);
	assert_true(num(j, "value") == value);
	assert_string_equal(str(j, "payload"),
	                    strcmp(side, "low") == 0 ? "{\"status\":\"1\"}" : "{\"status\":\"0\"}");
	json_decref(j);
}

static void test_commands_edges(void **state)
{
	(void)state;
	struct fixture fx;
	fx_init(&fx, HEATING, 100);
	/* Unknown state and a value in the band: nothing to say yet. */
	feed_ok(&fx, "kitchen", "temperature", 22, 1);
	feed_ok(&fx, "kitchen", "temperature", 20, 2); /* exactly low: still in the band */
	assert_int_equal(fx.rec.len, 0);
	assert_int_equal(actuator_state_count(fx.a), 0); /* nothing remembered, nothing allocated */
	feed_ok(&fx, "kitchen", "temperature", 19.99, 3);
	assert_int_equal(fx.rec.len, 1);
	expect_command(&fx, 0, "low", 19.99);
	/* Staying low, repeating the same reading, going back into the band: no command. */
	feed_ok(&fx, "kitchen", "temperature", 19, 4);
	feed_ok(&fx, "kitchen", "temperature", 19, 4);
	feed_ok(&fx, "kitchen", "temperature", 22, 5);
	feed_ok(&fx, "kitchen", "temperature", 25, 6); /* exactly high: still in the band */
	assert_int_equal(fx.rec.len, 1);
	feed_ok(&fx, "kitchen", "temperature", 25.01, 7);
	assert_int_equal(fx.rec.len, 2);
	expect_command(&fx, 1, "high", 25.01);
	feed_ok(&fx, "kitchen", "temperature", 30, 8);
	feed_ok(&fx, "kitchen", "temperature", 20, 9);
	assert_int_equal(fx.rec.len, 2);
	feed_ok(&fx, "kitchen", "temperature", 19.5, 10);
	assert_int_equal(fx.rec.len, 3);
	expect_command(&fx, 2, "low", 19.5);
	/* Another metric on the same device is not this rule's business. */
	feed_ok(&fx, "kitchen", "humidity", 5, 11);
	assert_int_equal(fx.rec.len, 3);
	assert_int_equal(actuator_stats(fx.a)->commands, 3);
	assert_int_equal(actuator_state_count(fx.a), 1);
	fx_free(&fx);
}

static void test_commands_first_high_and_per_device(void **state)
{
	(void)state;
	struct fixture fx;
	fx_init(&fx, HEATING, 100);
	feed_ok(&fx, "bedroom", "temperature", 26, 1); /* first reading above high: "high" */
	feed_ok(&fx, "kitchen", "temperature", 10, 2);
	feed_ok(&fx, "bedroom", "temperature", 26, 3);
	feed_ok(&fx, "kitchen", "temperature", 10, 4);
	assert_int_equal(fx.rec.len, 2);
	expect_command(&fx, 0, "high", 26);
	expect_command(&fx, 1, "low", 10);
	json_t *j = recorder_get(&fx.rec, 0);
	assert_string_equal(str(j, "topic"), "home-1/bedroom/heatpump/set");
	assert_string_equal(str(j, "rule"), "heating");
	assert_string_equal(str(j, "site"), "home-1");
	assert_string_equal(str(j, "device"), "bedroom");
	assert_string_equal(str(j, "sensor"), "s1");
	assert_string_equal(str(j, "metric"), "temperature");
	assert_int_equal(json_integer_value(json_object_get(j, "qos")), 1);
	assert_true(json_is_true(json_object_get(j, "retained")));
	assert_int_equal(json_integer_value(json_object_get(j, "reading_ts")), 1);
	assert_int_equal(json_integer_value(json_object_get(j, "issued_at")), 1001);
	json_decref(j);
	fx_free(&fx);
}

static void test_topic_injection_counted(void **state)
{
	(void)state;
	struct fixture fx;
	fx_init(&fx, HEATING, 100);
	static const char *const bad[] = {"a#b", "a/b", "+", ""};
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		assert_int_equal(feed(&fx, bad[i], "temperature", 10, (int64_t)i), -1);
		assert_non_null(strstr(fx.err, "not allowed in a topic"));
		assert_non_null(strstr(fx.err, "rule \"heating\""));
	}
	/* Every such reading is counted, none is published, nothing is remembered. */
	assert_int_equal(fx.rec.len, 0);
	assert_int_equal(actuator_stats(fx.a)->refused, 4);
	assert_int_equal(actuator_state_count(fx.a), 0);
	assert_int_equal(feed(&fx, "a#b", "temperature", 10, 9), -1);
	assert_int_equal(actuator_stats(fx.a)->refused, 5);
	/* The hostile text is quoted in the error, never raw. */
	assert_int_equal(feed(&fx, "x/\n", "temperature", 10, 10), -1);
	assert_null(strchr(fx.err, '\n'));
	/* A good device still works. */
	feed_ok(&fx, "kitchen", "temperature", 10, 11);
	assert_int_equal(fx.rec.len, 1);
	fx_free(&fx);
}

static void test_state_cap(void **state)
{
	(void)state;
	struct fixture fx;
	fx_init(&fx, HEATING, 2);
	feed_ok(&fx, "d1", "temperature", 10, 1);
	feed_ok(&fx, "d2", "temperature", 10, 2);
	feed_ok(&fx, "d3", "temperature", 22, 3); /* in the band: needs no state */
	assert_int_equal(feed(&fx, "d3", "temperature", 10, 4), -1);
	assert_non_null(strstr(fx.err, "state table full (2 states"));
	assert_int_equal(actuator_stats(fx.a)->state_full, 1);
	assert_int_equal(fx.rec.len, 2);
	assert_int_equal(actuator_state_count(fx.a), 2);
	/* Known sensors keep working at the cap. */
	feed_ok(&fx, "d1", "temperature", 30, 5);
	assert_int_equal(fx.rec.len, 3);
	fx_free(&fx);
	char err[128];
	struct ruleset *rs = rules_from(HEATING);
	assert_null(actuator_new(rs, 0, err, sizeof(err)));
	rules_free(rs);
}

static void test_reassert(void **state)
{
	(void)state;
	struct fixture fx;
	fx_init(&fx, HEATING, 100);
	feed_ok(&fx, "kitchen", "temperature", 10, 0);    /* issued at 1000 */
	feed_ok(&fx, "bedroom", "temperature", 30, 5000); /* issued at 6000 */
	feed_ok(&fx, "hall", "temperature", 22, 5000);    /* nothing sent: nothing to repeat */
	assert_int_equal(actuator_reassert(fx.a, 10999, 10000, &fx.sink), 0);
	assert_int_equal(actuator_reassert(fx.a, 11000, 10000, &fx.sink), 1);
	assert_int_equal(fx.rec.len, 3);
	json_t *j = recorder_get(&fx.rec, 2);
	assert_string_equal(str(j, "device"), "kitchen");
	assert_string_equal(str(j, "side"), "low");
	assert_true(num(j, "value") == 10);
	assert_int_equal(json_integer_value(json_object_get(j, "reading_ts")), 0);
	assert_int_equal(json_integer_value(json_object_get(j, "issued_at")), 11000);
	json_decref(j);
	/* The clock restarts at each re-assertion. */
	assert_int_equal(actuator_reassert(fx.a, 12000, 10000, &fx.sink), 0);
	assert_int_equal(actuator_reassert(fx.a, 16000, 10000, &fx.sink), 1);
	assert_int_equal(actuator_reassert(fx.a, 21000, 10000, &fx.sink), 1);
	assert_int_equal(actuator_stats(fx.a)->reasserted, 3);
	assert_int_equal(actuator_stats(fx.a)->commands, 2);
	fx_free(&fx);
}

/* A command the broker refused is forgotten, so the next reading beyond the threshold sends it
 * again; a stale report (the device has moved on) changes nothing. */
static void test_command_forget(void **state)
{
	(void)state;
	struct fixture fx;
	fx_init(&fx, PRESSURE HEATING, 100);
	feed_ok(&fx, "k", "temperature", 10, 1);
	assert_int_equal(fx.rec.len, 1);
	assert_false(actuator_command_forget(fx.a, "heating", "home-1", "k", "s1", SIDE_HIGH));
	assert_false(actuator_command_forget(fx.a, "nope", "home-1", "k", "s1", SIDE_LOW));
	assert_false(actuator_command_forget(fx.a, "heating", "home-1", "x", "s1", SIDE_LOW));
	assert_true(actuator_command_forget(fx.a, "heating", "home-1", "k", "s1", SIDE_LOW));
	assert_int_equal(actuator_state_count(fx.a), 0);
	feed_ok(&fx, "k", "temperature", 22, 2); /* in the band: nothing to resend yet */
	assert_int_equal(fx.rec.len, 1);
	feed_ok(&fx, "k", "temperature", 11, 3);
	assert_int_equal(fx.rec.len, 2);
	expect_command(&fx, 1, "low", 11);
	assert_false(actuator_command_forget(fx.a, "heating", "home-1", "k", "s1", SIDE_HIGH));
	feed_ok(&fx, "k", "temperature", 12, 4);
	assert_int_equal(fx.rec.len, 2);
	fx_free(&fx);
}

static void test_offsets_and_bad_input(void **state)
{
	(void)state;
	struct fixture fx;
	fx_init(&fx, HEATING, 100);
	struct act_reading r = {"home-1", "kitchen", "s1", "temperature", 10, 1};
	assert_int_equal(actuator_process(fx.a, 0, 5, &r, 0, &fx.sink, fx.err, sizeof(fx.err)), 0);
	r.value = 30;
	/* A redelivered or older offset changes nothing. */
	assert_int_equal(actuator_process(fx.a, 0, 5, &r, 0, &fx.sink, fx.err, sizeof(fx.err)), 0);
	assert_int_equal(actuator_process(fx.a, 0, 2, &r, 0, &fx.sink, fx.err, sizeof(fx.err)), 0);
	assert_int_equal(actuator_stats(fx.a)->duplicates, 2);
	assert_int_equal(fx.rec.len, 1);
	/* Partitions are independent (a newer reading: the same one again would be a repeat). */
	r.ts = 2;
	assert_int_equal(actuator_process(fx.a, 3, 2, &r, 0, &fx.sink, fx.err, sizeof(fx.err)), 0);
	assert_int_equal(fx.rec.len, 2);
	r.value = NAN;
	assert_int_equal(actuator_process(fx.a, 0, 6, &r, 0, &fx.sink, fx.err, sizeof(fx.err)), -1);
	assert_non_null(strstr(fx.err, "not a finite number"));
	r.value = 1;
	assert_int_equal(actuator_process(fx.a, -1, 7, &r, 0, &fx.sink, fx.err, sizeof(fx.err)),
	                 -1);
	assert_non_null(strstr(fx.err, "out of range"));
	assert_int_equal(
	    actuator_process(fx.a, 1 << 20, 7, &r, 0, &fx.sink, fx.err, sizeof(fx.err)), -1);
	assert_int_equal(actuator_process(fx.a, 0, -3, &r, 0, &fx.sink, fx.err, sizeof(fx.err)),
	                 -1);
	/* A skipped (undecodable) record moves the commit point on. */
	int64_t off;
	char meta[ACT_META_MAX];
	assert_int_equal(actuator_skip(fx.a, 0, 9, fx.err, sizeof(fx.err)), 0);
	assert_int_equal(actuator_commit_point(fx.a, 0, &off, meta, sizeof(meta)), 1);
	assert_int_equal(off, 10);
	assert_int_equal(actuator_commit_point(fx.a, 1, &off, meta, sizeof(meta)), 0);
	assert_int_equal(actuator_commit_point(fx.a, 99, &off, meta, sizeof(meta)), 0);
	fx_free(&fx);
	actuator_free(NULL);
}

static void expect_event(const struct fixture *fx, size_t i, const char *st, int64_t started,
                         int64_t ended, double avg, double max, int64_t count)
{
	json_t *j = recorder_get(&fx->rec, i);
	assert_string_equal(str(j, "state"), st);
	assert_int_equal(json_integer_value(json_object_get(j, "started_at")), started);
	if (ended < 0) {
		assert_true(json_is_null(json_object_get(j, "ended_at")));
		assert_int_equal(json_integer_value(json_object_get(j, "exceeded_for_ms")), 0);
	} else {
		assert_int_equal(json_integer_value(json_object_get(j, "ended_at")), ended);
		assert_int_equal(json_integer_value(json_object_get(j, "exceeded_for_ms")),
		                 ended > started ? ended - started : 0);
	}
	if (fabs(num(j, "average") - avg) > 1e-9)
		fail_msg("average %.17g, want %.17g", num(j, "average"), avg);
	assert_true(num(j, "max") == max);
	assert_int_equal(json_integer_value(json_object_get(j, "count")), count);
	json_decref(j);
}

static void test_episode(void **state)
{
	(void)state;
	struct fixture fx;
	fx_init(&fx, PRESSURE, 100);
	feed_ok(&fx, "pump", "pressure", 150, 500); /* exactly the threshold: not above it */
	assert_int_equal(fx.rec.len, 0);
	feed_ok(&fx, "pump", "pressure", 150.5, 1000);
	assert_int_equal(fx.rec.len, 1);
	expect_event(&fx, 0, "started", 1000, -1, 150.5, 150.5, 1);
	feed_ok(&fx, "pump", "pressure", 160, 2000);
	feed_ok(&fx, "pump", "pressure", 145, 3000); /* exactly threshold - hysteresis: goes on */
	feed_ok(&fx, "pump", "pressure", 149, 4000);
	assert_int_equal(fx.rec.len, 1);
	assert_int_equal(actuator_open_episodes(fx.a), 1);
	feed_ok(&fx, "pump", "pressure", 144.9, 5000);
	assert_int_equal(fx.rec.len, 2);
	/* The ending reading is not part of the episode. */
	expect_event(&fx, 1, "ended", 1000, 5000, (150.5 + 160 + 145 + 149) / 4, 160, 4);
	assert_int_equal(actuator_open_episodes(fx.a), 0);
	/* The state stays: it remembers the time of the sensor's last reading. */
	assert_int_equal(actuator_state_count(fx.a), 1);
	feed_ok(&fx, "pump", "pressure", 150, 6000);
	assert_int_equal(fx.rec.len, 2);
	feed_ok(&fx, "pump", "pressure", 151, 7000);
	expect_event(&fx, 2, "started", 7000, -1, 151, 151, 1);
	json_t *j = recorder_get(&fx.rec, 2);
	assert_string_equal(str(j, "rule"), "overpressure");
	assert_string_equal(str(j, "metric"), "pressure");
	assert_string_equal(str(j, "device"), "pump");
	assert_true(num(j, "threshold") == 150 && num(j, "hysteresis") == 5);
	json_decref(j);
	fx_free(&fx);
}

static void test_episode_zero_hysteresis_and_disorder(void **state)
{
	(void)state;
	struct fixture fx;
	fx_init(&fx, "[rule t]\nmetric = pressure\nthreshold = 10\n", 100);
	feed_ok(&fx, "p", "pressure", 11, 1000);
	feed_ok(&fx, "p", "pressure", 10, 2000); /* exactly the threshold: still open */
	assert_int_equal(fx.rec.len, 1);
	/* Arrives late, stamped before the episode's last reading: ignored, like a repeat. */
	feed_ok(&fx, "p", "pressure", 9.99, 500);
	feed_ok(&fx, "p", "pressure", 9.99, 2000);
	assert_int_equal(fx.rec.len, 1);
	assert_int_equal(actuator_stats(fx.a)->stale, 2);
	feed_ok(&fx, "p", "pressure", 9.99, 2500);
	assert_int_equal(fx.rec.len, 2);
	expect_event(&fx, 1, "ended", 1000, 2500, 10.5, 11, 2);
	fx_free(&fx);
}

/* An upstream stage killed between its produce and its commit writes readings again, at new
 * offsets, after the originals. Acting on them again would count them twice in an open
 * episode, open a second episode inside one that has ended, or undo a command: they change
 * nothing, and the outputs are those of the readings once. */
static void test_replayed_readings(void **state)
{
	(void)state;
	struct fixture fx;
	fx_init(&fx, PRESSURE HEATING, 100);
	static const struct {
		const char *device, *metric;
		double v;
		int64_t ts;
	} in[] = {
	    {"pump", "pressure", 151, 1000}, /* opens */
	    {"pump", "pressure", 152, 2000},
	    {"k", "temperature", 19, 1000},  /* low */
	    {"k", "temperature", 26, 2000},  /* high */
	    {"pump", "pressure", 149, 3000}, /* in the episode */
	    {"pump", "pressure", 140, 4000}, /* ends it */
	    {"pump2", "pressure", 160, 1000}, /* opens, stays open */
	};
	size_t n = sizeof(in) / sizeof(*in);
	for (size_t i = 0; i < n; i++)
		feed_ok(&fx, in[i].device, in[i].metric, in[i].v, in[i].ts);
	assert_int_equal(fx.rec.len, 5);
	/* Every reading again from the second on (as a cleaner restarted from an earlier commit
	 * would write them), then the original once more. */
	for (size_t i = 1; i < n; i++)
		feed_ok(&fx, in[i].device, in[i].metric, in[i].v, in[i].ts);
	for (size_t i = 0; i < n; i++)
		feed_ok(&fx, in[i].device, in[i].metric, in[i].v, in[i].ts);
	assert_int_equal(fx.rec.len, 5);
	assert_int_equal(actuator_stats(fx.a)->stale, (n - 1) + n);
	/* The episode goes on with new readings only, and ends with the count of distinct ones. */
	feed_ok(&fx, "pump2", "pressure", 158, 2000);
	feed_ok(&fx, "pump2", "pressure", 100, 3000);
	assert_int_equal(fx.rec.len, 6);
	expect_event(&fx, 5, "ended", 1000, 3000, 159, 160, 2);
	fx_free(&fx);
}

static void test_end_of_input(void **state)
{
	(void)state;
	struct fixture fx;
	fx_init(&fx, PRESSURE HEATING, 100);
	feed_ok(&fx, "a", "pressure", 200, 1000);
	feed_ok(&fx, "a", "pressure", 210, 4000);
	feed_ok(&fx, "b", "pressure", 151, 2000);
	feed_ok(&fx, "k", "temperature", 10, 2000);
	assert_int_equal(fx.rec.len, 3);
	assert_int_equal(actuator_close_all(fx.a, &fx.sink), 2);
	assert_int_equal(fx.rec.len, 5);
	/* Closed at the last reading seen, whatever order they come in. */
	for (size_t i = 3; i < 5; i++) {
		json_t *j = recorder_get(&fx.rec, i);
		if (strcmp(str(j, "device"), "a") == 0)
			expect_event(&fx, i, "ended", 1000, 4000, 205, 210, 2);
		else
			expect_event(&fx, i, "ended", 2000, 2000, 151, 151, 1);
		json_decref(j);
	}
	assert_int_equal(actuator_open_episodes(fx.a), 0);
	assert_int_equal(actuator_state_count(fx.a), 1); /* the heat pump's state stays */
	assert_int_equal(actuator_close_all(fx.a, &fx.sink), 0);
	fx_free(&fx);
}

/* One rule with both parts: the command comes before the event of the same reading. */
static void test_commands_and_events_together(void **state)
{
	(void)state;
	struct fixture fx;
	fx_init(
	    &fx,
	    "[rule both]\nmetric = temperature\nlow = 18\nhigh = 24\ntopic = {site}/{device}/set\n"
	    "low_payload = on\nhigh_payload = off\nthreshold = 28\nhysteresis = 1\n",
	    100);
	feed_ok(&fx, "k", "temperature", 29, 1);
	assert_int_equal(fx.rec.len, 2);
	json_t *c = recorder_get(&fx.rec, 0), *e = recorder_get(&fx.rec, 1);
	assert_string_equal(str(c, "side"), "high");
	assert_string_equal(str(c, "payload"), "off");
	assert_string_equal(str(e, "state"), "started");
	json_decref(c);
	json_decref(e);
	feed_ok(&fx, "k", "temperature", 26.5, 2);
	assert_int_equal(fx.rec.len, 3);
	assert_int_equal(actuator_state_count(fx.a), 1);
	fx_free(&fx);
}

/* Every record the engine makes encodes with the suite's schema. */
static void test_records_match_schemas(void **state)
{
	(void)state;
	char err[256];
	if (records_init(err, sizeof(err)) < 0)
		fail_msg("records_init: %s", err);
	struct fixture fx;
	fx_init(&fx, PRESSURE HEATING, 100);
	feed_ok(&fx, "k", "temperature", 10, 1);
	feed_ok(&fx, "p", "pressure", 160, 2);
	feed_ok(&fx, "p", "pressure", 100, 3);
	assert_int_equal(fx.rec.len, 3);
	static const enum rec_type types[] = {REC_COMMAND, REC_THRESHOLD_EVENT,
	                                      REC_THRESHOLD_EVENT};
	static const size_t nfields[] = {13, 14, 14};
	for (size_t i = 0; i < 3; i++) {
		json_t *j = recorder_get(&fx.rec, i);
		assert_int_equal(json_object_size(j), nfields[i]);
		struct buf out = {0};
		if (records_encode(types[i], j, &out, err, sizeof(err)) < 0)
			fail_msg("%s: %s", fx.rec.lines[i], err);
		json_t *back = NULL;
		enum rec_type t;
		if (records_decode(out.data, out.len, &t, &back, err, sizeof(err)) < 0)
			fail_msg("decode: %s", err);
		assert_int_equal(t, types[i]);
		assert_true(json_equal(j, back));
		json_decref(back);
		buf_free(&out);
		json_decref(j);
	}
	fx_free(&fx);
	records_shutdown();
}

static void test_reading_from_json(void **state)
{
	(void)state;
	struct act_reading r;
	char err[128];
	json_t *j =
	    json_pack("{s:s, s:s, s:s, s:s, s:f, s:I}", "site", "h", "device", "d", "sensor", "s",
	              "metric", "temperature", "value", 21.5, "ts", (json_int_t)1700000000000);
	assert_int_equal(act_reading_from_json(j, &r, err, sizeof(err)), 0);
	assert_string_equal(r.device, "d");
	assert_true(r.value == 21.5 && r.ts == 1700000000000);
	json_object_set_new(j, "value", json_integer(21)); /* an integer value is a number too */
	assert_int_equal(act_reading_from_json(j, &r, err, sizeof(err)), 0);
	assert_true(r.value == 21);
	/* A NUL inside a string would make "a\0/b" look like "a". */
	json_object_set_new(j, "device", json_stringn("a\0/b", 4));
	assert_int_equal(act_reading_from_json(j, &r, err, sizeof(err)), -1);
	assert_string_equal(err, "Reading.device: contains a NUL character");
	json_object_set_new(j, "device", json_string("d"));
	json_object_del(j, "ts");
	assert_int_equal(act_reading_from_json(j, &r, err, sizeof(err)), -1);
	assert_string_equal(err, "Reading.ts: missing or not an integer");
	json_object_set_new(j, "ts", json_integer(1));
	json_object_set_new(j, "value", json_string("21"));
	assert_int_equal(act_reading_from_json(j, &r, err, sizeof(err)), -1);
	assert_string_equal(err, "Reading.value: missing or not a finite number");
	json_object_del(j, "site");
	assert_int_equal(act_reading_from_json(j, &r, err, sizeof(err)), -1);
	assert_string_equal(err, "Reading.site: missing or not a string");
	json_decref(j);
	assert_int_equal(act_reading_from_json(NULL, &r, err, sizeof(err)), -1);
}

/* ---- reload ---- */

static struct ruleset *load_text(const char *text, char *err, size_t errlen)
{
	char path[] = "/tmp/actuator-reload-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	struct ruleset *rs = rules_load(path, err, errlen);
	unlink(path);
	return rs;
}

static void test_reload(void **state)
{
	(void)state;
	struct fixture fx;
	fx_init(&fx, HEATING PRESSURE, 100);
	feed_ok(&fx, "k", "temperature", 10, 1); /* heating: low */
	feed_ok(&fx, "p", "pressure", 160, 2);   /* overpressure: open */
	assert_int_equal(fx.rec.len, 2);
	const struct ruleset *before = actuator_rules(fx.a);

	/* A bad file is refused by the parser; the engine never sees it and goes on unchanged. */
	char err[512];
	assert_null(load_text(HEATING "qos = 7\n", err, sizeof(err)));
	assert_non_null(strstr(err, ":8: qos: expected 0, 1 or 2"));
	assert_ptr_equal(actuator_rules(fx.a), before);
	feed_ok(&fx, "k", "temperature", 10, 3);
	assert_int_equal(fx.rec.len, 2);

	/* Same rule, new thresholds: its state carries over; a removed rule's state goes. */
	struct ruleset *rs = load_text("[rule heating]\nmetric = temperature\nlow = 12\nhigh = 22\n"
	                               "topic = {site}/{device}/heatpump/set\n"
	                               "low_payload = {\"status\":\"1\"}\n"
	                               "high_payload = {\"status\":\"0\"}\n",
	                               err, sizeof(err));
	if (!rs)
		fail_msg("%s", err);
	struct act_reload_report rep;
	assert_int_equal(actuator_rules_replace(fx.a, rs, &rep, err, sizeof(err)), 0);
	assert_int_equal(rep.rules_kept, 1);
	assert_int_equal(rep.states_dropped, 1);
	assert_int_equal(rep.episodes_dropped, 1);
	assert_int_equal(actuator_open_episodes(fx.a), 0);
	assert_int_equal(actuator_state_count(fx.a), 1);
	feed_ok(&fx, "k", "temperature", 11, 4); /* already low: nothing */
	assert_int_equal(fx.rec.len, 2);
	feed_ok(&fx, "k", "temperature", 23, 5); /* above the new high */
	assert_int_equal(fx.rec.len, 3);
	expect_command(&fx, 2, "high", 23);
	feed_ok(&fx, "p", "pressure", 160, 6); /* no pressure rule any more */
	assert_int_equal(fx.rec.len, 3);

	/* Same name but watching other readings: starts afresh. */
	rs = rules_from("[rule heating]\nmetric = temperature\nsite = home-*\nlow = 12\nhigh = 22\n"
	                "topic = {site}/{device}/heatpump/set\nlow_payload = {\"status\":\"1\"}\n"
	                "high_payload = {\"status\":\"0\"}\n");
	assert_int_equal(actuator_rules_replace(fx.a, rs, &rep, err, sizeof(err)), 0);
	assert_int_equal(rep.rules_kept, 0);
	assert_int_equal(rep.states_dropped, 1);
	feed_ok(&fx, "k", "temperature", 23, 7);
	assert_int_equal(fx.rec.len, 4);

	/* A rule that loses its commands forgets its sides but keeps its episodes. */
	rs = rules_from("[rule heating]\nmetric = temperature\nsite = home-*\nthreshold = 30\n");
	feed_ok(&fx, "k", "temperature", 23, 8);
	assert_int_equal(actuator_rules_replace(fx.a, rs, &rep, err, sizeof(err)), 0);
	assert_int_equal(rep.rules_kept, 1);
	assert_int_equal(rep.states_dropped, 1);
	assert_int_equal(actuator_state_count(fx.a), 0);
	feed_ok(&fx, "k", "temperature", 31, 9);
	assert_int_equal(fx.rec.len, 5);
	rs = rules_from("[rule heating]\nmetric = temperature\nsite = home-*\nthreshold = 40\n"
	                "low = 1\nhigh = 2\ntopic = t\nlow_payload = a\nhigh_payload = b\n");
	assert_int_equal(actuator_rules_replace(fx.a, rs, &rep, err, sizeof(err)), 0);
	assert_int_equal(rep.episodes_dropped, 0);
	assert_int_equal(actuator_open_episodes(fx.a), 1); /* still open under the new threshold */
	assert_int_equal(actuator_rules_replace(fx.a, rules_from(PRESSURE), NULL, err, sizeof(err)),
	                 0);
	assert_int_equal(actuator_open_episodes(fx.a), 0);
	assert_int_equal(actuator_state_count(fx.a), 0);
	fx_free(&fx);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_commands_edges),
	    cmocka_unit_test(test_commands_first_high_and_per_device),
	    cmocka_unit_test(test_topic_injection_counted),
	    cmocka_unit_test(test_state_cap),
	    cmocka_unit_test(test_reassert),
	    cmocka_unit_test(test_command_forget),
	    cmocka_unit_test(test_offsets_and_bad_input),
	    cmocka_unit_test(test_episode),
	    cmocka_unit_test(test_episode_zero_hysteresis_and_disorder),
	    cmocka_unit_test(test_replayed_readings),
	    cmocka_unit_test(test_end_of_input),
	    cmocka_unit_test(test_commands_and_events_together),
	    cmocka_unit_test(test_records_match_schemas),
	    cmocka_unit_test(test_reading_from_json),
	    cmocka_unit_test(test_reload),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
